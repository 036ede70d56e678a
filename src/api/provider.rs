//! `EiamProvider` (namespaced) and `ClusterEiamProvider` (cluster-scoped): where EIAM is, how to authenticate,
//! and — the multi-tenancy boundary — which namespaces and applications may use them.
//!
//! The two kinds share their field types; [`ProviderSettings`] is a borrowed view of the shared part so the
//! operator handles both kinds with one code path. The allow-list checks are pure functions here.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel::{
    self, DNS_SUBDOMAIN_PATTERN, ENDPOINT_PATTERN, ID_GLOB_PATTERN, REGION_PATTERN,
    SECRET_KEY_PATTERN,
};

/// Connection and credentials for EIAM, usable by ApplicationClientSecrets in the same namespace.
// kube's repeated `printcolumn(...)` entries trip clippy's duplicate-attribute lint; they are distinct columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "eiam-operator.io",
    version = "v1alpha1",
    kind = "EiamProvider",
    namespaced,
    status = "ProviderStatus",
    shortname = "eiamp",
    category = "eiam",
    derive = "PartialEq",
    doc = "EiamProvider tells the operator where Alibaba Cloud IDaaS EIAM is and which credentials to use, for ApplicationClientSecrets in its own namespace.",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint"),
    printcolumn(
        name = "Signature",
        type_ = "string",
        json_path = ".spec.signatureVersion"
    ),
    printcolumn(name = "QPS", type_ = "number", json_path = ".status.budget.qps"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    cel::PROVIDER_REGION_OR_ENDPOINT,
    cel::EIAM_PROVIDER_SECRET_REF_LOCAL
]))]
pub struct EiamProviderSpec {
    /// Alibaba Cloud region of the EIAM instance, for example `cn-hangzhou`; the endpoint is then
    /// `https://eiam.<region>.aliyuncs.com`. Set `region`, `endpoint`, or both (`endpoint` wins for EIAM calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(REGION_PATTERN))]
    pub region: Option<String>,

    /// Explicit EIAM endpoint URL, for VPC endpoints or tests, for example
    /// `https://eiam-vpc.cn-hangzhou.aliyuncs.com`: scheme, host and optional port, no path. Must be `https://`;
    /// `http://` is accepted only for loopback hosts (localhost, 127.0.0.0/8, [::1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 256), pattern(ENDPOINT_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::PROVIDER_ENDPOINT_HTTPS]))]
    pub endpoint: Option<String>,

    /// Request signature: `v1` (RPC style, HMAC-SHA1; the default) or `v3` (ACS3-HMAC-SHA256).
    #[serde(default)]
    pub signature_version: SignatureVersion,

    /// Extra certificate authorities to trust for TLS to EIAM, base64-encoded PEM (one or more `CERTIFICATE`
    /// blocks): for a private endpoint with its own CA, or a TLS-inspecting proxy. They are added to the system
    /// roots (the image's CA bundle), not used instead of them. STS and the ECS metadata service are reached with
    /// the system roots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "byte"))]
    pub ca_bundle: Option<ByteString>,

    /// How to authenticate: exactly one of `accessKey` (a RAM AccessKey in a Secret of this namespace: the
    /// way for a team to bring its own identity) or `rrsa`. Without `auth`, or with `rrsa`, the provider would act
    /// with the operator's own identity (its ambient credentials: ALIBABA_CLOUD_* variables, RRSA, the ECS RAM
    /// role); the operator refuses that for namespaced providers (reason `NotAllowed`) unless it runs with
    /// `--namespaced-providers-ambient-credentials`. Ask the cluster admin for a ClusterEiamProvider instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,

    /// Ceiling on requests per second to EIAM through this provider, 0.01..1000 (for example `5`). When absent,
    /// the operator's `--default-qps` applies (default `auto`: only its `--max-qps`). Below the ceiling the rate is
    /// adaptive and shared by every provider on the same EIAM account (the same AccessKey or RAM role): it starts
    /// at 10/s (at `spec.qps` when set), grows while EIAM accepts and backs off when EIAM throttles; `status.budget`
    /// shows where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1000.0))]
    #[schemars(extend("x-kubernetes-validations" = [cel::PROVIDER_QPS_RANGE]))]
    pub qps: Option<f64>,

    /// At most this many EIAM calls through this provider at once, waits for its QPS budget included, 1..64.
    /// When absent, the operator's `--provider-max-concurrent-calls` (default 4) applies. A reconcile that finds
    /// them all taken gives its worker back and comes back later, so one provider never holds more than its share
    /// of the operator's workers. An EiamProvider may ask for fewer than the operator's default, not more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_calls: Option<u16>,

    /// Which applications this provider may mint secrets for, as `{instanceId, applicationId}` globs
    /// (`*` matches any run of characters, `?` one character). When absent, any application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub allowed_applications: Option<Vec<ApplicationPattern>>,

    /// Whether `spec.secretId` may import an existing EIAM secret through this provider. Importing reads the
    /// secret's value with `ObtainApplicationClientSecret`, which is more than minting a new one: it hands over a
    /// credential someone else may be using. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_import: bool,
}

/// Connection and credentials for EIAM, usable by ApplicationClientSecrets in the namespaces it allows.
// kube's repeated `printcolumn(...)` entries trip clippy's duplicate-attribute lint; they are distinct columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "eiam-operator.io",
    version = "v1alpha1",
    kind = "ClusterEiamProvider",
    status = "ProviderStatus",
    shortname = "ceiamp",
    category = "eiam",
    derive = "PartialEq",
    doc = "ClusterEiamProvider tells the operator where Alibaba Cloud IDaaS EIAM is and which credentials to use, for ApplicationClientSecrets in the namespaces and for the applications it allows.",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint"),
    printcolumn(
        name = "Signature",
        type_ = "string",
        json_path = ".spec.signatureVersion"
    ),
    printcolumn(name = "QPS", type_ = "number", json_path = ".status.budget.qps"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    cel::PROVIDER_REGION_OR_ENDPOINT,
    cel::CLUSTER_PROVIDER_SECRET_REF_NAMESPACED
]))]
pub struct ClusterEiamProviderSpec {
    /// Alibaba Cloud region of the EIAM instance, for example `cn-hangzhou`; the endpoint is then
    /// `https://eiam.<region>.aliyuncs.com`. Set `region`, `endpoint`, or both (`endpoint` wins for EIAM calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(REGION_PATTERN))]
    pub region: Option<String>,

    /// Explicit EIAM endpoint URL, for VPC endpoints or tests, for example
    /// `https://eiam-vpc.cn-hangzhou.aliyuncs.com`: scheme, host and optional port, no path. Must be `https://`;
    /// `http://` is accepted only for loopback hosts (localhost, 127.0.0.0/8, [::1]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 256), pattern(ENDPOINT_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::PROVIDER_ENDPOINT_HTTPS]))]
    pub endpoint: Option<String>,

    /// Request signature: `v1` (RPC style, HMAC-SHA1; the default) or `v3` (ACS3-HMAC-SHA256).
    #[serde(default)]
    pub signature_version: SignatureVersion,

    /// Extra certificate authorities to trust for TLS to EIAM, base64-encoded PEM (one or more `CERTIFICATE`
    /// blocks): for a private endpoint with its own CA, or a TLS-inspecting proxy. They are added to the system
    /// roots (the image's CA bundle), not used instead of them. STS and the ECS metadata service are reached with
    /// the system roots only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "byte"))]
    pub ca_bundle: Option<ByteString>,

    /// How to authenticate: exactly one of `accessKey` (whose secretRef must name a namespace) or `rrsa`.
    /// When absent, the operator's own credentials are used (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/
    /// _SECURITY_TOKEN, the RRSA environment variables, or the ECS RAM role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,

    /// Ceiling on requests per second to EIAM through this provider, 0.01..1000 (for example `5`). When absent,
    /// the operator's `--default-qps` applies (default `auto`: only its `--max-qps`). Below the ceiling the rate is
    /// adaptive and shared by every provider on the same EIAM account (the same AccessKey or RAM role): it starts
    /// at 10/s (at `spec.qps` when set), grows while EIAM accepts and backs off when EIAM throttles; `status.budget`
    /// shows where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.01, max = 1000.0))]
    #[schemars(extend("x-kubernetes-validations" = [cel::PROVIDER_QPS_RANGE]))]
    pub qps: Option<f64>,

    /// At most this many EIAM calls through this provider at once, waits for its QPS budget included, 1..64.
    /// When absent, the operator's `--provider-max-concurrent-calls` (default 4) applies. A reconcile that finds
    /// them all taken gives its worker back and comes back later, so one provider never holds more than its share
    /// of the operator's workers. A ClusterEiamProvider may ask for up to the operator's `--concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_calls: Option<u16>,

    /// Which applications this provider may mint secrets for, as `{instanceId, applicationId}` globs
    /// (`*` matches any run of characters, `?` one character). When absent, any application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub allowed_applications: Option<Vec<ApplicationPattern>>,

    /// Whether `spec.secretId` may import an existing EIAM secret through this provider. Importing reads the
    /// secret's value with `ObtainApplicationClientSecret`, which is more than minting a new one: it hands over a
    /// credential someone else may be using. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_import: bool,

    /// Which namespaces may reference this provider: those listed in `names` and those matching `selector`.
    /// When absent, every namespace may. An empty object (`{}`) allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,
}

/// The request signature algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// RPC signature V1: HMAC-SHA1 over the sorted query (`SignatureVersion=1.0`).
    #[default]
    V1,
    /// ACS3-HMAC-SHA256 in the `Authorization` header.
    V3,
}

impl From<SignatureVersion> for crate::eiam::SignatureVersion {
    fn from(value: SignatureVersion) -> Self {
        match value {
            SignatureVersion::V1 => crate::eiam::SignatureVersion::V1,
            SignatureVersion::V3 => crate::eiam::SignatureVersion::V3,
        }
    }
}

/// How the provider authenticates to Alibaba Cloud. Exactly one member is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::PROVIDER_AUTH_EXACTLY_ONE]))]
pub struct ProviderAuth {
    /// A RAM AccessKey (optionally an STS token) read from a Kubernetes Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKeyAuth>,
    /// RRSA: exchange the operator pod's OIDC token for STS credentials of a RAM role
    /// (AssumeRoleWithOIDC), refreshed before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrsa: Option<RrsaAuth>,
}

/// AccessKey credentials from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeyAuth {
    /// The Secret holding the AccessKey. It is re-read when it changes.
    pub secret_ref: AccessKeySecretRef,
}

/// Where the AccessKey lives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the Secret: required on a ClusterEiamProvider, not allowed on an EiamProvider (which reads
    /// its own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub namespace: Option<String>,
    /// Data key of the AccessKey ID. Default `accessKeyId`.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub access_key_id_key: String,
    /// Data key of the AccessKey secret. Default `accessKeySecret`.
    #[serde(default = "default_access_key_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub access_key_secret_key: String,
    /// Data key of an STS security token, when the AccessKey is temporary (`STS.` prefix). No default: when
    /// absent, no token is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub security_token_key: Option<String>,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".to_owned()
}

fn default_access_key_secret_key() -> String {
    "accessKeySecret".to_owned()
}

/// RRSA (RAM Roles for Service Accounts) through STS AssumeRoleWithOIDC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RrsaAuth {
    /// ARN of the RAM role to assume, for example `acs:ram::1234567890123456:role/eiam-operator`. The role's
    /// trust policy must trust the OIDC provider and the operator's ServiceAccount.
    #[schemars(length(min = 1, max = 512))]
    pub role_arn: String,
    /// ARN of the cluster's OIDC provider, for example `acs:ram::1234567890123456:oidc-provider/ack-rrsa-c123`.
    #[schemars(length(min = 1, max = 512))]
    pub oidc_provider_arn: String,
    /// Path of the projected ServiceAccount token in the operator pod; re-read on every refresh.
    /// Default `/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token` (where ACK's pod identity webhook
    /// mounts it).
    #[serde(default = "default_rrsa_token_file")]
    #[schemars(length(min = 1, max = 1024))]
    pub token_file: String,
    /// RoleSessionName sent to STS; shows up in ActionTrail. Default `eiam-operator`.
    #[serde(default = "default_rrsa_session_name")]
    #[schemars(length(min = 2, max = 64), pattern("^[-._@=,a-zA-Z0-9]+$"))]
    pub session_name: String,
}

/// Where ACK's pod identity webhook projects the RRSA token.
pub const DEFAULT_RRSA_TOKEN_FILE: &str = "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token";

fn default_rrsa_token_file() -> String {
    DEFAULT_RRSA_TOKEN_FILE.to_owned()
}

fn default_rrsa_session_name() -> String {
    "eiam-operator".to_owned()
}

/// An application (or a glob over applications) a provider may mint secrets for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPattern {
    /// Instance id or glob, for example `idaas_ue2jvisn35ea5lmthk267xxxxx` or `*`.
    #[schemars(length(min = 1, max = 128), pattern(ID_GLOB_PATTERN))]
    pub instance_id: String,
    /// Application id or glob, for example `app_mkv7rgt4d7i4u7zqtzev2mxxxx` or `app_team-a-*`.
    #[schemars(length(min = 1, max = 128), pattern(ID_GLOB_PATTERN))]
    pub application_id: String,
}

impl ApplicationPattern {
    /// Whether this entry allows the given instance and application.
    pub fn matches(&self, instance_id: &str, application_id: &str) -> bool {
        glob_match(&self.instance_id, instance_id)
            && glob_match(&self.application_id, application_id)
    }
}

/// Namespaces allowed to reference a ClusterEiamProvider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,
    /// A label selector over namespaces (matchLabels / matchExpressions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl AllowedNamespaces {
    /// Whether a namespace with this name and these labels is allowed: listed by name, or matched by the
    /// selector. An invalid selector (unknown operator) matches nothing, so a typo never widens access.
    pub fn allows(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.iter().any(|n| n == namespace)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, labels))
    }
}

/// Whether `labels` satisfy a Kubernetes label selector (all of matchLabels and matchExpressions).
/// An empty selector matches everything, as in Kubernetes; an unknown operator matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// Glob match with `*` (any run, including empty) and `?` (exactly one character); everything else literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Iterative matcher with single backtrack point: linear in practice, no recursion on user input.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// What the operator observed about a provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` when the provider's endpoint and credentials were resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The EIAM request budget this provider's resources draw from, as the operator last saw it: absent until one
    /// of them needed EIAM. Refreshed when it changes by more than a tenth, at most every
    /// `--provider-status-interval` (default 30s); a back-off is also an Event (reason `BudgetBackedOff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetStatus>,
}

/// The EIAM request budget of a provider (README "The EIAM budget").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// The EIAM account's budget, shared by every provider on the same credentials and endpoint: `acct-` and 8 hex
    /// digits of a digest of the public identity (the `account` label of the `eiam_operator_eiam_budget_*` metrics).
    pub account: String,
    /// Requests per second this provider may send to EIAM now, to one decimal: the account's adaptive rate (it grows
    /// while EIAM accepts and backs off when EIAM throttles), at most `ceiling`, shared with the other providers on
    /// the account.
    pub qps: f64,
    /// This provider's ceiling in requests per second: `spec.qps`, else the operator's `--default-qps`, else its
    /// `--max-qps`.
    pub ceiling: f64,
    /// When EIAM last throttled the account and its budget backed off (absent: not since the operator started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backoff_time: Option<Time>,
}

/// The part of a provider both kinds share, borrowed: one code path for `EiamProvider` and
/// `ClusterEiamProvider`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderSettings<'a> {
    /// `spec.region`.
    pub region: Option<&'a str>,
    /// `spec.endpoint`.
    pub endpoint: Option<&'a str>,
    /// `spec.signatureVersion`.
    pub signature_version: SignatureVersion,
    /// `spec.caBundle`, decoded: PEM text.
    pub ca_bundle: Option<&'a [u8]>,
    /// `spec.auth`.
    pub auth: Option<&'a ProviderAuth>,
    /// `spec.qps`.
    pub qps: Option<f64>,
    /// `spec.maxConcurrentCalls`.
    pub max_concurrent_calls: Option<u16>,
    /// `spec.allowedApplications`.
    pub allowed_applications: Option<&'a [ApplicationPattern]>,
    /// `spec.allowImport`.
    pub allow_import: bool,
}

impl<'a> ProviderSettings<'a> {
    /// The EIAM endpoint URL: `spec.endpoint`, else `https://eiam.<region>.aliyuncs.com`; `None` if neither
    /// is set (admission prevents that).
    pub fn endpoint_url(&self) -> Option<String> {
        match (self.endpoint, self.region) {
            (Some(endpoint), _) => Some(endpoint.to_owned()),
            (None, Some(region)) => Some(format!("https://eiam.{region}.aliyuncs.com")),
            (None, None) => None,
        }
    }

    /// The AccessKey Secret reference, when the provider authenticates with one.
    pub fn access_key_ref(&self) -> Option<&'a AccessKeySecretRef> {
        self.auth?.access_key.as_ref().map(|a| &a.secret_ref)
    }

    /// Whether the provider may mint secrets for this application (absent list = any application).
    pub fn allows_application(&self, instance_id: &str, application_id: &str) -> bool {
        self.allowed_applications
            .is_none_or(|list| list.iter().any(|p| p.matches(instance_id, application_id)))
    }
}

impl EiamProviderSpec {
    /// The shared settings.
    pub fn settings(&self) -> ProviderSettings<'_> {
        ProviderSettings {
            region: self.region.as_deref(),
            endpoint: self.endpoint.as_deref(),
            signature_version: self.signature_version,
            ca_bundle: self.ca_bundle.as_ref().map(|bundle| bundle.0.as_slice()),
            auth: self.auth.as_ref(),
            qps: self.qps,
            max_concurrent_calls: self.max_concurrent_calls,
            allowed_applications: self.allowed_applications.as_deref(),
            allow_import: self.allow_import,
        }
    }
}

impl ClusterEiamProviderSpec {
    /// The shared settings.
    pub fn settings(&self) -> ProviderSettings<'_> {
        ProviderSettings {
            region: self.region.as_deref(),
            endpoint: self.endpoint.as_deref(),
            signature_version: self.signature_version,
            ca_bundle: self.ca_bundle.as_ref().map(|bundle| bundle.0.as_slice()),
            auth: self.auth.as_ref(),
            qps: self.qps,
            max_concurrent_calls: self.max_concurrent_calls,
            allowed_applications: self.allowed_applications.as_deref(),
            allow_import: self.allow_import,
        }
    }

    /// Whether a namespace with these labels may reference this provider (absent `allowedNamespaces` = all).
    pub fn allows_namespace(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.allowed_namespaces
            .as_ref()
            .is_none_or(|a| a.allows(namespace, labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn glob_matches_star_and_question_mark() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "app_x"));
        assert!(glob_match("app_*", "app_x"));
        assert!(glob_match("app_team-a-*", "app_team-a-42"));
        assert!(!glob_match("app_team-a-*", "app_team-b-42"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*x*y", "axxbxy"));
        assert!(!glob_match("app_1", "app_12"));
        assert!(glob_match("app_1", "app_1"));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn allowed_namespaces_by_name_and_selector() {
        let labels: BTreeMap<String, String> =
            [("team".to_owned(), "a".to_owned())].into_iter().collect();
        let none = BTreeMap::new();
        let by_name = AllowedNamespaces {
            names: vec!["payments".into()],
            selector: None,
        };
        assert!(by_name.allows("payments", &none));
        assert!(!by_name.allows("other", &labels));

        let by_selector = AllowedNamespaces {
            names: vec![],
            selector: Some(LabelSelector {
                match_labels: Some([("team".to_owned(), "a".to_owned())].into_iter().collect()),
                match_expressions: None,
            }),
        };
        assert!(by_selector.allows("x", &labels));
        assert!(!by_selector.allows("x", &none));

        let expr = |operator: &str, values: Option<Vec<String>>| AllowedNamespaces {
            names: vec![],
            selector: Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "team".into(),
                    operator: operator.into(),
                    values,
                }]),
            }),
        };
        assert!(expr("In", Some(vec!["a".into()])).allows("x", &labels));
        assert!(!expr("NotIn", Some(vec!["a".into()])).allows("x", &labels));
        assert!(expr("NotIn", Some(vec!["a".into()])).allows("x", &none));
        assert!(expr("Exists", None).allows("x", &labels));
        assert!(expr("DoesNotExist", None).allows("x", &none));
        assert!(!expr("Bogus", None).allows("x", &labels));

        assert!(!AllowedNamespaces::default().allows("x", &labels));
    }

    #[test]
    fn endpoint_from_region_or_explicit() {
        let mut spec = EiamProviderSpec {
            region: Some("cn-hangzhou".into()),
            endpoint: None,
            signature_version: SignatureVersion::V1,
            ca_bundle: None,
            auth: None,
            qps: None,
            max_concurrent_calls: None,
            allowed_applications: None,
            allow_import: false,
        };
        assert_eq!(
            spec.settings().endpoint_url().as_deref(),
            Some("https://eiam.cn-hangzhou.aliyuncs.com")
        );
        spec.endpoint = Some("http://127.0.0.1:8080".into());
        assert_eq!(
            spec.settings().endpoint_url().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert!(spec.settings().allows_application("idaas_1", "app_1"));
        spec.allowed_applications = Some(vec![ApplicationPattern {
            instance_id: "idaas_1".into(),
            application_id: "app_team-*".into(),
        }]);
        assert!(spec.settings().allows_application("idaas_1", "app_team-x"));
        assert!(!spec.settings().allows_application("idaas_2", "app_team-x"));
        assert!(!spec.settings().allows_application("idaas_1", "app_other"));
    }
}
