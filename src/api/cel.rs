//! The admission rules of the CRDs: every CEL `x-kubernetes-validations` rule and the OpenAPI patterns they share.
//!
//! They live in one module, as data, so the types can attach them with `#[schemars(extend(...))]`, the tests can
//! check that every message names its field, and the README can list them. The API server enforces them;
//! nothing in the operator re-implements them (the operator still parses defensively, see [`super::duration`]).

use serde::Serialize;

/// One `x-kubernetes-validations` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CelRule {
    /// The CEL expression; `self` is the value of the field (or object) the rule is attached to.
    pub rule: &'static str,
    /// What the API server answers when the rule is false. Always names the field.
    pub message: &'static str,
    /// Where the API server reports the error, relative to the object the rule is attached to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_path: Option<&'static str>,
    /// A CEL expression for a message that names what failed (the offending key, say); `message` is the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expression: Option<&'static str>,
}

/// A Go duration as the API accepts it: one or more `<number><unit>` pairs, no sign (`2160h`, `1h30m`, `1.5h`).
/// Stricter than Go (no sign, no bare `0`) because every duration in this API is positive or `0s`.
/// Written with `[.]` rather than `\.` so the same text is valid inside a CEL string literal.
pub const DURATION_PATTERN: &str = "^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// An EIAM id (`idaas_…`, `app_…`, `sci_…`): opaque, but never empty and never containing whitespace.
pub const ID_PATTERN: &str = r"^\S+$";

/// An allow-list entry: an id or a glob over ids (`*` any run of characters, `?` one character).
pub const ID_GLOB_PATTERN: &str = r"^\S+$";

/// An Alibaba Cloud region id (`cn-hangzhou`, `ap-southeast-1`).
pub const REGION_PATTERN: &str = "^[a-z0-9]+(-[a-z0-9]+)*$";

/// An endpoint URL: scheme, host (no user info), optional port, no path (EIAM is always `POST /`).
/// Loopback-only http is a CEL rule.
pub const ENDPOINT_PATTERN: &str = r"^https?://[^\s/?#@]+/?$";

/// A Kubernetes object name (DNS-1123 subdomain).
pub const DNS_SUBDOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Secret data key.
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";

/// A Secret type: `Opaque`, or a qualified name such as `kubernetes.io/basic-auth`.
pub const SECRET_TYPE_PATTERN: &str = "^[-._a-zA-Z0-9]+(/[-._a-zA-Z0-9]+)?$";

/// `spec.instanceId` cannot change: the resource's secrets live in that instance.
pub const INSTANCE_ID_IMMUTABLE: CelRule = CelRule {
    rule: "self == oldSelf",
    message: "spec.instanceId is immutable: create a new ApplicationClientSecret for another instance",
    field_path: None,
    message_expression: None,
};

/// `spec.applicationId` cannot change: the resource's secrets belong to that application.
pub const APPLICATION_ID_IMMUTABLE: CelRule = CelRule {
    rule: "self == oldSelf",
    message: "spec.applicationId is immutable: create a new ApplicationClientSecret for another application",
    field_path: None,
    message_expression: None,
};

/// `spec.secretId` names the secret adopted at creation; pointing it elsewhere later has no meaning.
pub const SECRET_ID_IMMUTABLE: CelRule = CelRule {
    rule: "self == oldSelf",
    message: "spec.secretId is immutable: it names the EIAM secret adopted when the resource was created",
    field_path: None,
    message_expression: None,
};

/// EIAM accepts an `ExpirationTime` between 1 day and 3 years from now.
pub const EXPIRES_AFTER_RANGE: CelRule = CelRule {
    rule: "!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('24h') && duration(self) <= duration('26280h'))",
    message: "spec.expiresAfter must be between 24h and 26280h (3 years), the lifetime EIAM accepts",
    field_path: None,
    message_expression: None,
};

/// Rotating less than a minute before expiry leaves no time to publish and roll workloads.
pub const RENEW_BEFORE_MINIMUM: CelRule = CelRule {
    rule: "!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1m')",
    message: "spec.renewBefore must be at least 1m",
    field_path: None,
    message_expression: None,
};

/// A renewal window only makes sense for a secret that expires.
pub const RENEW_BEFORE_NEEDS_EXPIRES_AFTER: CelRule = CelRule {
    rule: "!has(self.renewBefore) || has(self.expiresAfter)",
    message: "spec.renewBefore requires spec.expiresAfter: a secret that never expires is never renewed",
    field_path: Some(".renewBefore"),
    message_expression: None,
};

/// Renewing at or before issuance would rotate in a loop.
pub const RENEW_BEFORE_LESS_THAN_EXPIRES_AFTER: CelRule = CelRule {
    rule: "!has(self.renewBefore) || !has(self.expiresAfter) || !self.renewBefore.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || !self.expiresAfter.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.renewBefore) < duration(self.expiresAfter)",
    message: "spec.renewBefore must be shorter than spec.expiresAfter",
    field_path: Some(".renewBefore"),
    message_expression: None,
};

/// Keeping a retired secret alive for more than 30 days defeats rotation.
pub const GRACE_PERIOD_MAXIMUM: CelRule = CelRule {
    rule: "!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) <= duration('720h')",
    message: "spec.rotation.gracePeriod must be at most 720h (30 days)",
    field_path: None,
    message_expression: None,
};

/// Both values go into one Secret; the same key would make one overwrite the other.
pub const TARGET_KEYS_DISTINCT: CelRule = CelRule {
    rule: "self.clientId != self.clientSecret",
    message: "spec.target.keys.clientId and spec.target.keys.clientSecret must be different keys",
    field_path: None,
    message_expression: None,
};

/// Template data keys become Secret data keys.
pub const TEMPLATE_KEYS_VALID: CelRule = CelRule {
    rule: "self.all(k, k.matches('^[-._a-zA-Z0-9]+$'))",
    message: "spec.target.template.data keys must be valid Secret data keys: letters, digits, '-', '_' and '.'",
    field_path: None,
    message_expression: None,
};

/// One template text as admission accepts it: plain characters, a lone `{`, or `{{` (with `-` and spaces) followed by
/// a known name that ends there, or by a character no name starts with (a literal, a bracket). A macro, not a
/// constant, so that the rule and its message expression can both be spelled from it with `concat!`.
macro_rules! template_reference_pattern {
    () => {
        r"^(?:[^{]|[{](?:[^{]|$)|[{][{]+-?\s*(?:(?:clientId|clientSecret|secretId|expiresAt|instanceId|applicationId|true|false|none|True|False|None)(?:[^A-Za-z0-9_{]|$)|[^A-Za-z_\s{-]|$))*$"
    };
}

/// What admission can tell about a template without a template engine: every `{{ name` prints one of the six
/// variables (or a literal). A typo is refused here, naming the variables; everything else (syntax, filters) is
/// checked by the operator before it mints anything (condition `Stalled`, reason `InvalidTemplate`).
pub const TEMPLATE_VARIABLES_KNOWN: CelRule = CelRule {
    // One linear match over the whole text (findAll over every reference exceeds the API server's cost budget): the
    // text is read as plain characters, a lone `{`, or `{{` (with `-` and spaces) followed by a known name that
    // ends there, or by a character no name starts with (a literal, a bracket). Only the first name of an
    // expression is checked: `{{ clientId | upper }}` passes, `{{ clientSecert }}` does not.
    rule: concat!(
        "self.all(k, self[k].matches(r'",
        template_reference_pattern!(),
        "'))"
    ),
    message: "spec.target.template.data: a template prints an unknown variable; the variables are clientId, clientSecret, secretId, expiresAt, instanceId and applicationId",
    field_path: None,
    // The same match, to name the first key that fails it (as the operator's InvalidTemplate status does).
    message_expression: Some(concat!(
        "'spec.target.template.data[\"' + self.filter(k, !self[k].matches(r'",
        template_reference_pattern!(),
        "'))[0] + '\"]: the template prints an unknown variable; the variables are clientId, clientSecret, \
         secretId, expiresAt, instanceId and applicationId'"
    )),
};

/// The operator finds its Secrets by this label; a user value would hide or steal them.
pub const TARGET_LABELS_RESERVED: CelRule = CelRule {
    rule: "!('app.kubernetes.io/managed-by' in self)",
    message: "spec.target.labels must not set app.kubernetes.io/managed-by: the operator sets it",
    field_path: None,
    message_expression: None,
};

/// The operator records the secret id and expiry in these annotations.
pub const TARGET_ANNOTATIONS_RESERVED: CelRule = CelRule {
    rule: "self.all(k, !k.startsWith('eiam-operator.io/'))",
    message: "spec.target.annotations must not set eiam-operator.io/ annotations: the operator sets them",
    field_path: None,
    message_expression: None,
};

/// A provider must say where EIAM is.
pub const PROVIDER_REGION_OR_ENDPOINT: CelRule = CelRule {
    rule: "has(self.region) || has(self.endpoint)",
    message: "spec.region or spec.endpoint must be set (for example region: cn-hangzhou)",
    field_path: None,
    message_expression: None,
};

/// Credentials and secrets travel over TLS, except to a test endpoint on the same machine.
pub const PROVIDER_ENDPOINT_HTTPS: CelRule = CelRule {
    rule: "self.startsWith('https://') || self.matches('^http://(localhost|127[.][0-9]+[.][0-9]+[.][0-9]+|\\\\[::1\\\\])(:[0-9]+)?/?$')",
    message: "spec.endpoint must use https:// (http:// is accepted only for loopback hosts: localhost, 127.0.0.0/8, [::1])",
    field_path: None,
    message_expression: None,
};

/// `spec.auth`, when present, picks one way to authenticate.
pub const PROVIDER_AUTH_EXACTLY_ONE: CelRule = CelRule {
    rule: "has(self.accessKey) != has(self.rrsa)",
    message: "spec.auth must set exactly one of accessKey or rrsa (omit spec.auth to use the operator's own credentials)",
    field_path: None,
    message_expression: None,
};

/// A namespaced provider reads its credentials from its own namespace only.
pub const EIAM_PROVIDER_SECRET_REF_LOCAL: CelRule = CelRule {
    rule: "!has(self.auth) || !has(self.auth.accessKey) || !has(self.auth.accessKey.secretRef.namespace)",
    message: "spec.auth.accessKey.secretRef.namespace must not be set on an EiamProvider: the Secret is read from the provider's own namespace",
    field_path: Some(".auth.accessKey.secretRef.namespace"),
    message_expression: None,
};

/// A cluster-scoped provider has no namespace of its own, so the Secret's namespace must be explicit.
pub const CLUSTER_PROVIDER_SECRET_REF_NAMESPACED: CelRule = CelRule {
    rule: "!has(self.auth) || !has(self.auth.accessKey) || has(self.auth.accessKey.secretRef.namespace)",
    message: "spec.auth.accessKey.secretRef.namespace is required on a ClusterEiamProvider",
    field_path: Some(".auth.accessKey.secretRef"),
    message_expression: None,
};

/// The schema's `minimum: 0.01` alone lets an integer `0` through: the API server compares integers with the
/// bound truncated to an integer (found by tests/crd_admission.rs on kube-apiserver 1.36). CEL compares as doubles.
pub const PROVIDER_QPS_RANGE: CelRule = CelRule {
    rule: "self >= 0.01 && self <= 1000.0",
    message: "spec.qps must be between 0.01 and 1000 requests per second",
    field_path: None,
    message_expression: None,
};

/// `maxGracePeriod` bounds the wait that `retireWhenUnusedFor` starts; alone it means nothing.
pub const MAX_GRACE_PERIOD_NEEDS_RETIRE_WHEN_UNUSED: CelRule = CelRule {
    rule: "!has(self.maxGracePeriod) || has(self.retireWhenUnusedFor)",
    message: "spec.rotation.maxGracePeriod requires spec.rotation.retireWhenUnusedFor",
    field_path: Some(".maxGracePeriod"),
    message_expression: None,
};

/// The usage-aware wait starts when the grace period ends: its upper bound cannot come earlier.
pub const MAX_GRACE_PERIOD_AT_LEAST_GRACE_PERIOD: CelRule = CelRule {
    rule: "!has(self.maxGracePeriod) || !has(self.gracePeriod) || !self.maxGracePeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || !self.gracePeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.maxGracePeriod) >= duration(self.gracePeriod)",
    message: "spec.rotation.maxGracePeriod must be at least spec.rotation.gracePeriod",
    field_path: Some(".maxGracePeriod"),
    message_expression: None,
};

/// EIAM holds two secrets: the previous one must be gone before the next renewal needs its slot. The next renewal
/// comes `expiresAfter − renewBefore` after a publication (`renewBefore` defaults to a third of `expiresAfter`).
pub const MAX_GRACE_PERIOD_BEFORE_RENEWAL: CelRule = CelRule {
    rule: "!has(self.rotation) || !has(self.rotation.maxGracePeriod) || !has(self.expiresAfter) || !self.rotation.maxGracePeriod.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || !self.expiresAfter.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (has(self.renewBefore) ? (!self.renewBefore.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.rotation.maxGracePeriod) < duration(self.expiresAfter) - duration(self.renewBefore)) : duration(self.rotation.maxGracePeriod).getSeconds() * 3 < duration(self.expiresAfter).getSeconds() * 2)",
    message: "spec.rotation.maxGracePeriod must be shorter than spec.expiresAfter minus spec.renewBefore (by default two thirds of expiresAfter): the previous secret must retire before the next renewal needs its slot",
    field_path: Some(".rotation.maxGracePeriod"),
    message_expression: None,
};

/// A 5-field cron schedule: minute, hour, day of month, month (numbers, names, `*`, ranges, lists, steps), and a
/// day of week by name only (`MON-FRI`, `SAT,SUN`) or `*`.
pub const CRON_SCHEDULE_PATTERN: &str =
    r"^[0-9*,/-]+ [0-9*,/-]+ [0-9*,/-]+ [0-9A-Za-z*,/-]+ (\*|[A-Za-z]{3}([-,][A-Za-z]{3})*)$";

/// An IANA time zone name (`UTC`, `Asia/Shanghai`, `America/Argentina/Buenos_Aires`); the operator checks that it
/// exists.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";

/// A window shorter than a minute cannot be hit by a scheduled reconcile.
pub const WINDOW_DURATION_MINIMUM: CelRule = CelRule {
    rule: "!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1m')",
    message: "spec.rotation.windows[].duration must be at least 1m",
    field_path: None,
    message_expression: None,
};

/// Every rule, for tests and documentation.
pub const ALL_RULES: &[CelRule] = &[
    INSTANCE_ID_IMMUTABLE,
    APPLICATION_ID_IMMUTABLE,
    SECRET_ID_IMMUTABLE,
    EXPIRES_AFTER_RANGE,
    RENEW_BEFORE_MINIMUM,
    RENEW_BEFORE_NEEDS_EXPIRES_AFTER,
    RENEW_BEFORE_LESS_THAN_EXPIRES_AFTER,
    GRACE_PERIOD_MAXIMUM,
    MAX_GRACE_PERIOD_NEEDS_RETIRE_WHEN_UNUSED,
    MAX_GRACE_PERIOD_AT_LEAST_GRACE_PERIOD,
    MAX_GRACE_PERIOD_BEFORE_RENEWAL,
    WINDOW_DURATION_MINIMUM,
    TARGET_KEYS_DISTINCT,
    TARGET_LABELS_RESERVED,
    TARGET_ANNOTATIONS_RESERVED,
    TEMPLATE_KEYS_VALID,
    TEMPLATE_VARIABLES_KNOWN,
    PROVIDER_REGION_OR_ENDPOINT,
    PROVIDER_ENDPOINT_HTTPS,
    PROVIDER_AUTH_EXACTLY_ONE,
    PROVIDER_QPS_RANGE,
    EIAM_PROVIDER_SECRET_REF_LOCAL,
    CLUSTER_PROVIDER_SECRET_REF_NAMESPACED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_names_a_spec_field() {
        for rule in ALL_RULES {
            assert!(
                rule.message.starts_with("spec."),
                "message does not name its field: {}",
                rule.message
            );
        }
    }

    #[test]
    fn duration_guards_use_the_schema_pattern() {
        // The CEL guards repeat DURATION_PATTERN literally (CEL cannot reference a constant); keep them in sync.
        for rule in ALL_RULES.iter().filter(|r| r.rule.contains("duration(")) {
            assert!(
                rule.rule
                    .contains(&format!("matches('{DURATION_PATTERN}')")),
                "rule does not guard duration() with DURATION_PATTERN: {}",
                rule.rule
            );
        }
    }
}
