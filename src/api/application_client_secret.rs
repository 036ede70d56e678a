//! `ApplicationClientSecret`: one EIAM application's client secret, published as a Kubernetes Secret and
//! rotated before it expires. The spec is what the user asks for; the status is the operator's memory.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cel::{
    self, DNS_SUBDOMAIN_PATTERN, DURATION_PATTERN, ID_PATTERN, SECRET_KEY_PATTERN,
    SECRET_TYPE_PATTERN,
};
use super::conditions;
use super::duration::{DurationError, parse_duration};

/// Which EIAM application's client secret to manage, how long each secret lives, and where to publish it.
/// EIAM allows two client secrets per application; the operator rotates within that limit.
// kube's repeated `printcolumn(...)` entries trip clippy's duplicate-attribute lint; they are distinct columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "eiam-operator.io",
    version = "v1alpha1",
    kind = "ApplicationClientSecret",
    namespaced,
    status = "ApplicationClientSecretStatus",
    shortname = "acsecret",
    category = "eiam",
    derive = "PartialEq",
    doc = "ApplicationClientSecret mints an Alibaba Cloud IDaaS EIAM application client secret, publishes it into a Kubernetes Secret and rotates it before it expires.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the Secret holds a valid current client secret"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".status.secretName",
        description = "The Kubernetes Secret the client secret is published to"
    ),
    printcolumn(
        name = "Expires",
        // A "date" column prints future instants as "<invalid>"; show the RFC 3339 time instead.
        type_ = "string",
        json_path = ".status.notAfter",
        description = "When the current client secret expires"
    ),
    printcolumn(
        name = "Renews",
        // A "date" column prints future instants as "<invalid>"; show the RFC 3339 time instead.
        type_ = "string",
        json_path = ".status.renewalTime",
        description = "When the operator will rotate the client secret"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the resource is or is not ready",
        priority = 1
    ),
    printcolumn(
        name = "Application",
        type_ = "string",
        json_path = ".spec.applicationId",
        description = "The EIAM application",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    cel::RENEW_BEFORE_NEEDS_EXPIRES_AFTER,
    cel::RENEW_BEFORE_LESS_THAN_EXPIRES_AFTER,
    cel::MAX_GRACE_PERIOD_BEFORE_RENEWAL
]))]
pub struct ApplicationClientSecretSpec {
    /// The EIAM instance that holds the application, for example `idaas_ue2jvisn35ea5lmthk267xxxxx`.
    /// Immutable.
    #[schemars(length(min = 1, max = 128), pattern(ID_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::INSTANCE_ID_IMMUTABLE]))]
    pub instance_id: String,

    /// The EIAM application whose client secret is managed, for example `app_mkv7rgt4d7i4u7zqtzev2mxxxx`.
    /// Immutable. At most one ApplicationClientSecret in the cluster may manage an application.
    #[schemars(length(min = 1, max = 128), pattern(ID_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::APPLICATION_ID_IMMUTABLE]))]
    pub application_id: String,

    /// Import: adopt this existing EIAM client secret (`sci_...`) instead of minting a new one. Its value is
    /// read with ObtainApplicationClientSecret and published; later rotations mint new secrets as usual.
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(ID_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::SECRET_ID_IMMUTABLE]))]
    pub secret_id: Option<String>,

    /// Where the EIAM endpoint and cloud credentials come from. When absent, the operator's default provider
    /// is used (its `--default-region`/`--default-endpoint` flags and its own credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_ref: Option<ProviderRef>,

    /// Lifetime of each minted secret, as a Go duration (`2160h` = 90 days). Sent to EIAM as ExpirationTime =
    /// now + this. Must be between `24h` and `26280h` (3 years). When absent, secrets never expire and are
    /// never renewed automatically (rotate manually with the `eiam-operator.io/rotate-requested-at` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::EXPIRES_AFTER_RANGE]))]
    pub expires_after: Option<String>,

    /// How long before expiry to rotate, as a Go duration (`720h`). Rotation happens when
    /// now >= notAfter - renewBefore. Defaults to one third of `expiresAfter`; must be at least `1m` and
    /// shorter than `expiresAfter`, and requires `expiresAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::RENEW_BEFORE_MINIMUM]))]
    pub renew_before: Option<String>,

    /// What happens around a rotation: how long the previous secret stays valid, which workloads restart.
    #[serde(default)]
    pub rotation: Rotation,

    /// The Kubernetes Secret the client id and secret are written to, in the resource's namespace.
    #[serde(default)]
    pub target: SecretTarget,

    /// What happens to the EIAM secrets when this resource is deleted. `Delete` (default) disables and deletes
    /// every EIAM secret this resource created, then the Secret. `Retain` keeps both and drops the Secret's
    /// ownerReference. Secrets the resource did not create are never deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// A reference to an `EiamProvider` in the same namespace or a `ClusterEiamProvider`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// `EiamProvider` (in this namespace; the default) or `ClusterEiamProvider`.
    #[serde(default)]
    pub kind: ProviderKind,
    /// The provider's name.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// The kinds a `providerRef` may name.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ProviderKind {
    /// A namespaced `EiamProvider` in the resource's own namespace.
    #[default]
    EiamProvider,
    /// A cluster-scoped `ClusterEiamProvider`, subject to its allow-lists.
    ClusterEiamProvider,
}

/// Rotation behaviour.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    cel::MAX_GRACE_PERIOD_NEEDS_RETIRE_WHEN_UNUSED,
    cel::MAX_GRACE_PERIOD_AT_LEAST_GRACE_PERIOD
]))]
pub struct Rotation {
    /// How long the previous secret stays valid after its replacement is published, as a Go duration
    /// (default `1h`, at most `720h`). Give workloads this long to pick up the new value; afterwards the
    /// previous secret is disabled and deleted in EIAM.
    #[serde(default = "default_grace_period")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::GRACE_PERIOD_MAXIMUM]))]
    pub grace_period: String,

    /// Retire the previous secret only once EIAM shows it unused for this long, as a Go duration (for example
    /// `6h`). After `gracePeriod` the operator lists the application's secrets and keeps the previous one
    /// enabled while its `LastUsedTime` is more recent than this (no `LastUsedTime` counts as unused), up to
    /// `maxGracePeriod`. Meanwhile the resource stays Ready and `status.previousLastUsedTime` shows the last
    /// use; the List is repeated every half of this duration (between 10s and 5m), from the provider's QPS
    /// budget. EIAM does not publish how often it updates `LastUsedTime`: choose hours rather than minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub retire_when_unused_for: Option<String>,

    /// With `retireWhenUnusedFor`: how long after its successor was published the previous secret is retired
    /// even if EIAM still shows it in use, with a Warning event `RetiredWhileInUse` naming its last use. At
    /// least `gracePeriod`, and shorter than the time from one publication to the next scheduled renewal
    /// (`expiresAfter` − `renewBefore`), so that a renewal never waits for it. Default: the lesser of `168h`
    /// and that time (but at least `gracePeriod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    pub max_grace_period: Option<String>,

    /// When scheduled renewals may happen. A renewal that comes due outside every window waits for the next one
    /// to open (`status.renewalTime` shows when), unless waiting would bring the published secret within a quarter
    /// of its renewal window (at least 1h) of expiry: then it rotates when due, with a Warning event
    /// `RotatedOutsideWindow`. A rotation requested with `eiam-operator.io/rotate-requested-at` is never held.
    /// Empty: renewals happen whenever due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub windows: Vec<RotationWindow>,

    /// Workloads in this namespace to restart (as `kubectl rollout restart` does) after a new secret is
    /// published, so pods that read the Secret only at start-up pick it up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["kind", "name"]))]
    pub restart_targets: Vec<RestartTarget>,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            grace_period: default_grace_period(),
            retire_when_unused_for: None,
            max_grace_period: None,
            windows: Vec::new(),
            restart_targets: Vec::new(),
        }
    }
}

fn default_grace_period() -> String {
    "1h".to_owned()
}

/// A span of time in which scheduled renewals may happen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationWindow {
    /// When the window opens: a 5-field cron schedule, `minute hour day-of-month month day-of-week`, in
    /// `timeZone` (for example `0 1 * * MON-FRI`: 01:00 on weekdays). The day of week is given by name
    /// (`MON-FRI`, `SAT,SUN`) or `*`, never by number (cron dialects disagree on which number is Sunday); when both
    /// day fields are restricted, a day must match both.
    #[schemars(length(min = 9, max = 128), pattern(cel::CRON_SCHEDULE_PATTERN))]
    pub schedule: String,

    /// How long the window stays open, as a Go duration (at least `1m`, for example `2h`).
    #[schemars(length(min = 2, max = 32), pattern(DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [cel::WINDOW_DURATION_MINIMUM]))]
    pub duration: String,

    /// The IANA time zone of the schedule (default `UTC`), for example `Asia/Shanghai`. Daylight saving time is
    /// followed: the window opens at the schedule's local time.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64), pattern(cel::TIME_ZONE_PATTERN))]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// A workload to restart after a rotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: RestartTargetKind,
    /// The workload's name, in the resource's namespace.
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
}

/// The workload kinds that can be restarted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum RestartTargetKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

/// The Kubernetes Secret to write.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTarget {
    /// Name of the Secret, in the resource's namespace. Defaults to the resource's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,

    /// The data keys the client id and client secret are written under (default `clientId` and
    /// `clientSecret`). With a `template`, these plain keys are written only when `keys` is set: the rendered
    /// keys replace them otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SecretKeys>,

    /// Templated data: each entry of `template.data` is rendered and written under its key, for applications
    /// that want a config file (`application.yaml`, `.env`, JSON) rather than two keys. Only the rendered keys
    /// are written, plus the plain keys when `keys` is set explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,

    /// Labels copied onto the Secret (the operator adds `app.kubernetes.io/managed-by: eiam-operator`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "x-kubernetes-validations" = [cel::TARGET_LABELS_RESERVED]))]
    pub labels: BTreeMap<String, String>,

    /// Annotations copied onto the Secret (the operator adds `eiam-operator.io/secret-id` and
    /// `eiam-operator.io/expires-at`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64, "x-kubernetes-validations" = [cel::TARGET_ANNOTATIONS_RESERVED]))]
    pub annotations: BTreeMap<String, String>,

    /// `Owner` (default): the Secret gets a controller ownerReference to this resource, so Kubernetes deletes
    /// it with the resource. `Orphan`: no ownerReference; the Secret outlives the resource.
    #[serde(default)]
    pub creation_policy: CreationPolicy,
}

/// The Secret's data rendered from templates (Jinja2 syntax, rendered by minijinja in strict mode).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// The Secret's `type`, for example `Opaque` (the default) or `kubernetes.io/basic-auth`. Kubernetes cannot
    /// change the type of an existing Secret: when it changes, the operator deletes the Secret and writes it again.
    #[serde(rename = "type", default = "default_secret_type")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_TYPE_PATTERN))]
    pub type_: String,

    /// Data key → template. The templates see `clientId`, `clientSecret`, `secretId`, `expiresAt` (RFC 3339,
    /// empty when the secret never expires), `instanceId` and `applicationId`, for example
    /// `{"application.yaml": "client-id: {{ clientId }}\nclient-secret: {{ clientSecret }}\n"}`. An unknown
    /// variable or a syntax error is refused (at admission where it can tell, else condition Stalled with reason
    /// InvalidTemplate naming the key and line) before anything is minted.
    #[schemars(extend(
        "minProperties" = 1,
        "maxProperties" = 32,
        "additionalProperties" = {"type": "string", "maxLength": 16384},
        "x-kubernetes-validations" = [cel::TEMPLATE_KEYS_VALID, cel::TEMPLATE_VARIABLES_KNOWN]
    ))]
    pub data: BTreeMap<String, String>,
}

fn default_secret_type() -> String {
    "Opaque".to_owned()
}

/// The Secret data keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::TARGET_KEYS_DISTINCT]))]
pub struct SecretKeys {
    /// Data key for the application's client id (the OAuth `client_id`). Default `clientId`.
    #[serde(default = "default_client_id_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub client_id: String,
    /// Data key for the client secret (the OAuth `client_secret`). Default `clientSecret`.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub client_secret: String,
}

impl Default for SecretKeys {
    fn default() -> Self {
        Self {
            client_id: default_client_id_key(),
            client_secret: default_client_secret_key(),
        }
    }
}

fn default_client_id_key() -> String {
    "clientId".to_owned()
}

fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}

/// Whether the Secret is owned by the resource.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum CreationPolicy {
    /// The Secret carries a controller ownerReference to the resource.
    #[default]
    Owner,
    /// The Secret carries no ownerReference.
    Orphan,
}

/// What deleting the resource does to the EIAM secrets it created.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Disable and delete the EIAM secrets this resource created, then the Secret.
    #[default]
    Delete,
    /// Keep the EIAM secrets and the Secret (the Secret's ownerReference is dropped).
    Retain,
}

/// `spec.rotation.maxGracePeriod` when absent (and a renewal is not sooner): a week.
pub const DEFAULT_MAX_GRACE_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the operator last observed and did. Never holds a secret value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationClientSecretStatus {
    /// The `metadata.generation` the status describes. Lags behind while a spec change is being handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Reconciling` and `Stalled` (kstatus conventions), each with observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The application's OAuth client id, as EIAM reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// The EIAM SecretId of the secret currently published in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_secret_id: Option<String>,

    /// The EIAM SecretId of the secret being retired after a rotation (valid until `previousRetireAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_id: Option<String>,

    /// When EIAM last saw the previous secret used (`LastUsedTime`, RFC 3339), as last listed. With
    /// `spec.rotation.retireWhenUnusedFor` the previous secret is retired only once this is old enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_last_used_time: Option<Time>,

    /// When the current secret expires (RFC 3339). Absent when it never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,

    /// When the operator will rotate: notAfter - renewBefore (RFC 3339). Absent when no renewal is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,

    /// When the previous secret will be disabled and deleted: publish time + gracePeriod (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_retire_at: Option<Time>,

    /// When a new secret was last published (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,

    /// The last value of the `eiam-operator.io/rotate-requested-at` annotation that was acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_rotate_at: Option<String>,

    /// Write-ahead marker: set just before CreateApplicationClientSecret is called and cleared once the new
    /// secret is recorded. When present after a crash, the operator adopts the secret that appeared in EIAM
    /// (compared with `unmanagedSecretIds`) instead of minting another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create_since: Option<Time>,

    /// The name of the Secret the client secret is published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// SecretIds of the application's secrets that this resource does not own, as last listed in EIAM.
    /// They are never disabled or deleted. Recorded so that a Create interrupted by a crash can be
    /// recovered unambiguously: a secret that is neither owned nor in this list must be the pending one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_secret_ids: Option<Vec<String>>,

    /// The `resourceVersion` of the Secret when the operator last saw it (or wrote it) holding exactly the
    /// current secret. While the Secret still has this version nothing has changed it, so a restart or a failover
    /// need not read it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_resource_version: Option<String>,
}

impl ApplicationClientSecret {
    /// The Secret to write: `spec.target.name`, or the resource's own name.
    pub fn secret_name(&self) -> String {
        self.spec
            .target
            .name
            .clone()
            .unwrap_or_else(|| self.name_any())
    }

    /// The value of the `eiam-operator.io/rotate-requested-at` annotation, if any.
    pub fn rotate_requested_at(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::ANNOTATION_ROTATE))
            .map(String::as_str)
    }

    /// The first issue's write-ahead marker ([`super::ANNOTATION_FIRST_CREATE_SINCE`]), if set and readable.
    pub fn first_create_since(&self) -> Option<jiff::Timestamp> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::ANNOTATION_FIRST_CREATE_SINCE))
            .and_then(|value| value.parse().ok())
    }

    /// The status condition of the given type (see [`conditions`]), if any.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
    }

    /// Whether the `Ready` condition is `True` and describes the current generation.
    pub fn is_ready(&self) -> bool {
        self.condition(conditions::READY).is_some_and(|c| {
            c.status == "True"
                && c.observed_generation.is_some()
                && c.observed_generation == self.metadata.generation
        })
    }
}

impl SecretTarget {
    /// The plain keys the client id and secret are written under: `keys` (or its defaults) without a template;
    /// with a template only an explicitly set `keys`.
    pub fn plain_keys(&self) -> Option<SecretKeys> {
        match (&self.template, &self.keys) {
            (None, keys) => Some(keys.clone().unwrap_or_default()),
            (Some(_), keys) => keys.clone(),
        }
    }

    /// Every data key the operator writes (and checks for drift): the plain keys and the template's keys.
    pub fn data_keys(&self) -> std::collections::BTreeSet<String> {
        let mut keys: std::collections::BTreeSet<String> = self
            .plain_keys()
            .map(|k| [k.client_id, k.client_secret].into_iter().collect())
            .unwrap_or_default();
        if let Some(template) = &self.template {
            keys.extend(template.data.keys().cloned());
        }
        keys
    }

    /// The Secret's type: the template's, else `Opaque`.
    pub fn secret_type(&self) -> &str {
        self.template
            .as_ref()
            .map(|t| t.type_.as_str())
            .unwrap_or("Opaque")
    }
}

impl ApplicationClientSecretSpec {
    /// A spec with only the two required ids; everything else at its default.
    pub fn new(instance_id: impl Into<String>, application_id: impl Into<String>) -> Self {
        Self {
            instance_id: instance_id.into(),
            application_id: application_id.into(),
            secret_id: None,
            provider_ref: None,
            expires_after: None,
            renew_before: None,
            rotation: Rotation::default(),
            target: SecretTarget::default(),
            deletion_policy: DeletionPolicy::default(),
        }
    }

    /// `spec.expiresAfter` parsed; `None` when the secret never expires.
    pub fn expires_after(&self) -> Result<Option<Duration>, DurationError> {
        self.expires_after
            .as_deref()
            .map(parse_duration)
            .transpose()
    }

    /// `spec.renewBefore` or its default, one third of `expiresAfter`; `None` when nothing expires.
    pub fn effective_renew_before(&self) -> Result<Option<Duration>, DurationError> {
        let Some(expires_after) = self.expires_after()? else {
            return Ok(None);
        };
        match self.renew_before.as_deref() {
            Some(renew_before) => parse_duration(renew_before).map(Some),
            None => Ok(Some(expires_after / 3)),
        }
    }

    /// `spec.rotation.gracePeriod` parsed.
    pub fn grace_period(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.rotation.grace_period)
    }

    /// `spec.rotation.retireWhenUnusedFor` parsed.
    pub fn retire_when_unused_for(&self) -> Result<Option<Duration>, DurationError> {
        self.rotation
            .retire_when_unused_for
            .as_deref()
            .map(parse_duration)
            .transpose()
    }

    /// `spec.rotation.maxGracePeriod` parsed, or its default: the lesser of [`DEFAULT_MAX_GRACE_PERIOD`] and the
    /// time from a publication to the next scheduled renewal, but at least `gracePeriod`.
    pub fn effective_max_grace_period(&self) -> Result<Duration, DurationError> {
        if let Some(max) = &self.rotation.max_grace_period {
            return parse_duration(max);
        }
        let until_renewal = match (self.expires_after()?, self.effective_renew_before()?) {
            (Some(lifetime), Some(renew_before)) => lifetime.saturating_sub(renew_before),
            _ => DEFAULT_MAX_GRACE_PERIOD,
        };
        Ok(DEFAULT_MAX_GRACE_PERIOD
            .min(until_renewal)
            .max(self.grace_period()?))
    }
}
