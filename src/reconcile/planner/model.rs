//! The planner's vocabulary: the normalised observation it reads, the actions it asks for and the
//! status it wants persisted. Plain data only: no serde, no Kubernetes types, no secret values.

use std::time::Duration;

use jiff::Timestamp;

/// Everything the planner needs to decide one reconcile step. The executor builds it from the
/// `ApplicationClientSecret`, its status, the provider, the target Secret and (when listed) EIAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// The instant the decision is made for; the planner never reads a clock.
    pub now: Timestamp,
    /// `metadata.generation` of the resource.
    pub generation: i64,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The finalizer `eiam-operator.io/cleanup` is present.
    pub has_finalizer: bool,
    /// The spec, with defaults already applied.
    pub spec: PlanSpec,
    /// The annotation `eiam-operator.io/rotate-requested-at`, if present.
    pub rotate_request: Option<String>,
    /// The status as last persisted (or as the previous plan of the same pass left it, see
    /// [`Plan::needs_replan`]).
    pub status: PlanStatus,
    /// What this pass knows of the application's secrets in EIAM: nothing yet, only what its own Create returned,
    /// or a List.
    pub eiam: EiamView,
    /// EIAM refused this pass's Create because both slots are taken (`QuotaExceeded`): that Create minted nothing,
    /// so the write-ahead marker it left adopts nothing (a secret of someone else whose expiry happens to match
    /// the one sent must not pass for ours). Reset by the next Create.
    pub create_refused: bool,
    /// The target Kubernetes Secret as observed.
    pub kube_secret: KubeSecret,
    /// Whether the provider may be used for this resource.
    pub provider: ProviderState,
    /// `Some("ns/name")` when another resource already manages this instance/application.
    pub conflict: Option<String>,
    /// `Some(message)` when the operator may not patch the kind of a restart target (RBAC): nothing is minted
    /// that it could not roll out.
    pub restart_denied: Option<String>,
    /// `Some(message)` when `spec.target.template` does not render: nothing is minted or published that could
    /// not be written.
    pub invalid_template: Option<String>,
    /// The periodic drift check is due: list EIAM once even if nothing else needs it.
    pub drift_check_due: bool,
}

/// The resource's spec as the planner needs it, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    /// Lifetime of a minted secret; `None`: minted secrets never expire.
    pub expires_after: Option<Duration>,
    /// Rotate when `now >= notAfter - renew_before` (already defaulted to `expires_after / 3`).
    /// Zero (no `expiresAfter`): a current secret that expires anyway (imported, or minted under
    /// an earlier spec) is renewed when a third of its lifetime since `lastRotationTime` is left.
    pub renew_before: Duration,
    /// How long the previous secret stays enabled after its successor was published.
    pub grace_period: Duration,
    /// `spec.rotation.retireWhenUnusedFor`: after the grace period, retire the previous secret only once EIAM
    /// shows it unused for this long.
    pub retire_when_unused_for: Option<Duration>,
    /// With `retire_when_unused_for`: retire regardless this long after the successor was published (defaulted).
    pub max_grace_period: Duration,
    /// `spec.rotation.windows`: when a scheduled renewal may happen (empty: whenever due), or why they are unusable.
    pub windows: Result<super::windows::RotationWindows, super::windows::WindowError>,
    /// `spec.secretId`: adopt this existing EIAM secret at first issue instead of minting one.
    pub import_secret_id: Option<String>,
    /// What deletion of the resource does to the EIAM secrets and the Secret.
    pub deletion_policy: DeletionPolicy,
    /// `spec.rotation.restartTargets` is non-empty.
    pub has_restart_targets: bool,
}

/// `spec.deletionPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete every EIAM secret this resource created or adopted, then the Secret.
    #[default]
    Delete,
    /// Keep the EIAM secrets and the Secret; drop the Secret's ownerReference.
    Retain,
}

/// What one pass knows of the application's secrets in EIAM.
///
/// A List shows every secret; a Create sent without a List shows only the secret it minted. Rules that would act
/// on a secret's absence (it was deleted behind our back, it frees a slot) may only do so in a complete view: in a
/// partial one an absent secret is unknown, not missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EiamView {
    /// No EIAM call in this pass yet.
    #[default]
    Unobserved,
    /// Only what this pass's own calls returned (a Create sent without a List, what it disabled or deleted since):
    /// a secret absent from it may exist.
    Partial(Vec<ObservedSecret>),
    /// A List in this pass (with what this pass's calls did since): a secret absent from it does not exist.
    Listed(Vec<ObservedSecret>),
}

/// A secret looked up in an [`EiamView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'v> {
    /// The view shows it.
    Shown(&'v ObservedSecret),
    /// The view is complete and does not show it: it does not exist.
    Absent,
    /// The view is partial and does not show it: it may or may not exist.
    Unknown,
}

impl EiamView {
    /// The secrets the view shows (none when unobserved).
    pub fn secrets(&self) -> &[ObservedSecret] {
        match self {
            EiamView::Unobserved => &[],
            EiamView::Partial(secrets) | EiamView::Listed(secrets) => secrets,
        }
    }

    /// The view shows every secret of the application (a List in this pass).
    pub fn is_complete(&self) -> bool {
        matches!(self, EiamView::Listed(_))
    }

    /// What the view says about one secret.
    pub fn lookup(&self, secret_id: &str) -> Seen<'_> {
        match self.secrets().iter().find(|s| s.secret_id == secret_id) {
            Some(secret) => Seen::Shown(secret),
            None if self.is_complete() => Seen::Absent,
            None => Seen::Unknown,
        }
    }

    /// Adds a secret this pass minted.
    pub(super) fn add(&mut self, secret: ObservedSecret) {
        match self {
            EiamView::Unobserved => *self = EiamView::Partial(vec![secret]),
            EiamView::Partial(secrets) | EiamView::Listed(secrets) => secrets.push(secret),
        }
    }

    /// The secrets, to record what this pass did to them.
    pub(super) fn secrets_mut(&mut self) -> Option<&mut Vec<ObservedSecret>> {
        match self {
            EiamView::Unobserved => None,
            EiamView::Partial(secrets) | EiamView::Listed(secrets) => Some(secrets),
        }
    }
}

/// One secret of the application as `ListApplicationClientSecrets` returns it (value masked, so
/// not carried at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSecret {
    pub secret_id: String,
    pub client_id: String,
    /// `Status == "enabled"`.
    pub enabled: bool,
    /// `ExpirationTime`; `None` when the secret never expires.
    pub expires_at: Option<Timestamp>,
    /// `LastUsedTime`; `None` when EIAM has not seen it used.
    pub last_used: Option<Timestamp>,
}

/// The target Kubernetes Secret as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeSecret {
    /// No Secret of that name exists.
    #[default]
    Missing,
    /// A Secret of that name exists.
    Present {
        /// Its `eiam-operator.io/secret-id` annotation.
        secret_id: Option<String>,
        /// Its data keys, value hash and labels are what a publish of `secret_id` would write.
        data_in_sync: bool,
        /// It was written by eiam-operator for this resource (managed-by label, and no controller
        /// ownerReference to another object). The planner never overwrites, orphans or deletes a
        /// Secret that is not ours.
        owned_by_us: bool,
    },
}

impl KubeSecret {
    /// The Secret holds exactly what publishing `secret_id` would write.
    pub fn holds(&self, secret_id: &str) -> bool {
        matches!(self, KubeSecret::Present { secret_id: Some(id), data_in_sync: true, owned_by_us: true } if id == secret_id)
    }

    /// A Secret exists and is ours to write, orphan or delete.
    pub fn is_ours(&self) -> bool {
        matches!(
            self,
            KubeSecret::Present {
                owned_by_us: true,
                ..
            }
        )
    }

    /// The secret id the Secret currently advertises, if any.
    pub fn secret_id(&self) -> Option<&str> {
        match self {
            KubeSecret::Present { secret_id, .. } => secret_id.as_deref(),
            KubeSecret::Missing => None,
        }
    }
}

/// The executor's verdict on the provider referenced by the resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProviderState {
    /// Credentials resolved and the provider allows this namespace and application.
    #[default]
    Ready,
    /// The provider exists but does not allow this namespace or application (multi-tenancy).
    NotAllowed { message: String },
    /// The provider cannot be used yet (not found, credentials Secret missing, ...). `reason` is a
    /// CamelCase condition reason such as `ProviderNotFound` or `CredentialsNotFound`.
    Unavailable { reason: String, message: String },
}

/// The resource's status in planner terms: the executor converts it to and from the CRD status.
/// The same type is the planner's input (`PlanInput::status`) and output (`Plan::status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanStatus {
    /// The secret published in the Secret (`currentSecretId`, `clientId`, `notAfter`).
    pub current: Option<CurrentSecret>,
    /// The secret being retired (`previousSecretId`, `previousRetireAt`).
    pub previous: Option<PreviousSecret>,
    /// `renewalTime`: when the current secret is renewed; `None` when it never is. Derived: the
    /// planner recomputes it and ignores the input value.
    pub renewal_time: Option<Timestamp>,
    /// When the current secret was first adopted as current.
    pub last_rotation_time: Option<Timestamp>,
    /// The last `rotate-requested-at` value acted upon.
    pub last_handled_rotate_at: Option<String>,
    /// Write-ahead marker: a Create may have been sent at or after this instant and its result
    /// not yet recorded.
    pub pending_create_since: Option<Timestamp>,
    /// Secrets of the application this resource does not own, as of the last List (sorted).
    pub unmanaged_secret_ids: Vec<String>,
    /// The generation whose spec has been handled.
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled`, in that order (the input may hold any subset).
    pub conditions: Vec<Condition>,
}

impl PlanStatus {
    /// The recorded condition of a type, if any.
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// The ids of the EIAM secrets recorded as this resource's (current and previous).
    pub fn owned_secret_ids(&self) -> Vec<&str> {
        let current = self.current.iter().map(|c| c.secret_id.as_str());
        let previous = self.previous.iter().map(|p| p.secret_id.as_str());
        current.chain(previous).collect()
    }
}

/// The secret this resource publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSecret {
    pub secret_id: String,
    pub client_id: String,
    /// `None` when the secret never expires.
    pub not_after: Option<Timestamp>,
}

/// The secret this resource published before the current one, kept enabled for the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret_id: String,
    pub retire_at: Timestamp,
    /// When EIAM last saw it used, as last listed (`previousLastUsedTime`).
    pub last_used: Option<Timestamp>,
}

/// The kstatus condition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionType {
    Ready,
    Reconciling,
    Stalled,
    /// A due rotation waits for a slot that a secret of someone else holds (Ready stays True meanwhile).
    RotationBlocked,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Reconciling => "Reconciling",
            ConditionType::Stalled => "Stalled",
            ConditionType::RotationBlocked => "RotationBlocked",
        }
    }
}

/// A condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// A status condition without its timestamps and observedGeneration (the executor adds those:
/// `lastTransitionTime` changes only when `status` changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionType,
    pub status: ConditionStatus,
    /// CamelCase, never empty.
    pub reason: String,
    /// Human-readable; names ids, never secret values.
    pub message: String,
}

/// What the executor does, in order. It stops at the first failing action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add the finalizer `eiam-operator.io/cleanup` (before any EIAM side effect).
    AddFinalizer,
    /// Barrier: call `ListApplicationClientSecrets` and re-plan with the result.
    ListSecrets,
    /// Write-ahead: persist `Plan::status` now, before the Create that follows. It records
    /// `pendingCreateSince = since` and `unmanagedSecretIds` (shown here for logs and tests) and
    /// whatever this plan already did (a retired previous secret, an adopted one): patching only
    /// the two fields is not enough. A plan with this action always ends with `CreateSecret`.
    WritePendingCreate {
        since: Timestamp,
        unmanaged_secret_ids: Vec<String>,
    },
    /// Barrier: call `CreateApplicationClientSecret` for a secret of this lifetime (`None`: never expires; the
    /// executor computes `ExpirationTime` when it signs the request, see [`crate::eiam::expiration`]), add the
    /// created secret (enabled, with the expiration sent) to the observation, keep its value in memory, re-plan.
    CreateSecret { lifetime: Option<Duration> },
    /// Server-side apply the Secret for this EIAM secret: value from the Create of this pass or
    /// from `ObtainApplicationClientSecret`; annotations secret-id and expires-at (`not_after`).
    Publish {
        secret_id: String,
        client_id: String,
        not_after: Option<Timestamp>,
    },
    /// Roll the restart targets. Must be idempotent per `secret_id` (e.g. the pod-template
    /// annotation's value is the secret id), because a crash may make the planner ask again.
    RestartTargets { secret_id: String },
    /// `DisableApplicationClientSecret`; only ever for a secret this resource owns.
    DisableSecret { secret_id: String },
    /// `DeleteApplicationClientSecret`; only ever for a secret this resource owns.
    DeleteSecret { secret_id: String },
    /// Delete the target Secret (only planned when it is ours).
    DeleteKubeSecret,
    /// Drop this resource's ownerReference from the target Secret (only planned when it is ours).
    OrphanKubeSecret,
    /// Remove the finalizer: cleanup is complete.
    RemoveFinalizer,
    /// Record a Kubernetes Event.
    Event(Event),
}

impl Action {
    /// After a barrier the executor must re-plan with the updated observation.
    pub fn is_barrier(&self) -> bool {
        matches!(self, Action::ListSecrets | Action::CreateSecret { .. })
    }

    /// The action calls the EIAM API (Publish may: Obtain, when no value is held).
    pub fn calls_eiam(&self) -> bool {
        matches!(
            self,
            Action::ListSecrets
                | Action::CreateSecret { .. }
                | Action::Publish { .. }
                | Action::DisableSecret { .. }
                | Action::DeleteSecret { .. }
        )
    }
}

/// A Kubernetes Event to record. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// CamelCase, one of [`super::reasons`].
    pub reason: String,
    pub note: String,
}

/// The Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Normal => "Normal",
            EventKind::Warning => "Warning",
        }
    }
}

/// The planner's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Run in order; stop at the first failure.
    pub actions: Vec<Action>,
    /// The complete status to persist once every action succeeded (skip the patch when it equals
    /// what is persisted). For a plan that [needs a re-plan](Plan::needs_replan) it is what is
    /// already persisted (the input status, or what `WritePendingCreate` wrote): make it the next
    /// plan's input status.
    pub status: PlanStatus,
    /// Reconcile again after this long (the executor adds jitter and caps it at its resync
    /// interval); `None`: nothing is ever due.
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// The last action is a barrier: after running the actions, fold their results into the
    /// observation, set `input.status = plan.status` and call `plan` again.
    pub fn needs_replan(&self) -> bool {
        self.actions.last().is_some_and(Action::is_barrier)
    }
}

/// How an action failed, as far as the status is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFailure {
    /// Not worth retrying until something changes (auth, not found, invalid): `Stalled=True`.
    /// Otherwise (throttling, 5xx, timeouts): `Reconciling=True`, retried with backoff.
    pub permanent: bool,
    /// CamelCase condition reason, e.g. `EiamError` or `KubernetesError`.
    pub reason: String,
    /// For EIAM errors: Code, Message and RequestId.
    pub message: String,
}
