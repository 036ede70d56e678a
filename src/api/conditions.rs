//! Condition types and reasons: the vocabulary of `status.conditions`, shared by the operator, the docs and
//! the GitOps health checks.
//!
//! The types follow kstatus (`Ready`, `Reconciling`, `Stalled`) so Flux, Argo CD and `kubectl wait` can read
//! health without knowing this operator. Reasons are CamelCase and stable: dashboards and alerts match on them.

/// `True` when the Secret holds a valid, current client secret. Stays `True` during a scheduled rotation.
pub const READY: &str = "Ready";
/// `True` while the operator is working toward the spec (first issue, a rotation in flight, a retry).
pub const RECONCILING: &str = "Reconciling";
/// `True` when the operator cannot make progress without a human (bad credentials, not allowed, slots taken).
pub const STALLED: &str = "Stalled";

/// Condition and Event reasons: the one list the planner, the executor, the docs and the health checks share.
pub mod reasons {
    // Condition reasons while things are fine.
    /// `Ready=True`: a valid current secret is published.
    pub const SECRET_PUBLISHED: &str = "SecretPublished";
    /// `Reconciling=False` / `Stalled=False`: the last reconcile completed.
    pub const RECONCILED: &str = "Reconciled";
    /// `Ready=False` before the first secret is published (only ever seen after a transient failure).
    pub const ISSUING: &str = "Issuing";

    // Stall reasons (condition `Stalled=True`; a Warning Event of the same reason on transition).
    /// Both EIAM slots are taken by secrets this resource does not own (or cannot free yet).
    pub const SLOTS_EXHAUSTED: &str = "SlotsExhausted";
    /// Warning Event: a due rotation cannot mint because secrets this resource does not own hold the free slot;
    /// the published secret stays valid (`Ready=True`) and the condition `RotationBlocked=True` says why, until
    /// the secret comes close to expiry (then `Stalled`, reason `SlotsExhausted`).
    pub const ROTATION_BLOCKED: &str = "RotationBlocked";
    /// Another resource already manages this instance/application.
    pub const CONFLICT: &str = "Conflict";
    /// The provider does not allow this namespace or application.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    /// `spec.secretId` is not listed by EIAM, or is disabled or expired.
    pub const IMPORT_NOT_FOUND: &str = "ImportNotFound";
    /// After an interrupted Create, more than one unknown secret could be the one minted.
    pub const ADOPTION_AMBIGUOUS: &str = "AdoptionAmbiguous";
    /// The target Secret exists and was not written by this resource.
    pub const TARGET_NOT_OWNED: &str = "TargetNotOwned";

    // Events on transitions.
    /// Normal: a first secret was minted and published.
    pub const ISSUED: &str = "Issued";
    /// Normal: `spec.secretId` was adopted and published.
    pub const IMPORTED: &str = "Imported";
    /// Normal: a new secret replaced a valid current one; the old one is in its grace period.
    pub const ROTATED: &str = "Rotated";
    /// Normal: the previous secret was disabled and deleted after its grace period.
    pub const RETIRED: &str = "Retired";
    /// Normal: the Secret was re-published (it was missing or edited), same EIAM secret.
    pub const REPAIRED: &str = "Repaired";
    /// Warning: the current secret no longer exists in EIAM.
    pub const SECRET_DELETED_IN_EIAM: &str = "SecretDeletedInEiam";
    /// Warning: the current secret was disabled in EIAM.
    pub const SECRET_DISABLED_IN_EIAM: &str = "SecretDisabledInEiam";
    /// Warning: the current secret expired before it could be renewed.
    pub const SECRET_EXPIRED: &str = "SecretExpired";
    /// Warning: the previous secret was retired before its grace period ended, to free a slot for
    /// the replacement of a current secret that stopped working.
    pub const RETIRED_EARLY: &str = "RetiredEarly";
    /// Warning: with `retireWhenUnusedFor`, the previous secret was retired at `maxGracePeriod` although EIAM
    /// still showed it in use.
    pub const RETIRED_WHILE_IN_USE: &str = "RetiredWhileInUse";
    /// Warning: a scheduled renewal happened outside `spec.rotation.windows`, because waiting for the next window
    /// would have let the published secret come too close to its expiry.
    pub const ROTATED_OUTSIDE_WINDOW: &str = "RotatedOutsideWindow";
    /// Stalled: `spec.rotation.windows` cannot be used (a bad schedule or time zone, or a window that never opens).
    pub const INVALID_ROTATION_WINDOW: &str = "InvalidRotationWindow";
    /// Normal: on deletion with `deletionPolicy: Delete`, the owned EIAM secrets were deleted.
    pub const DELETED: &str = "Deleted";
    /// Normal: on deletion with `deletionPolicy: Retain`, EIAM secrets and the Secret were kept.
    pub const RETAINED: &str = "Retained";

    // Set by the executor when an action fails (Stalled=True if permanent, Reconciling=True otherwise).
    /// EIAM refused or could not be reached; the message carries EIAM's Code, Message and RequestId.
    pub const EIAM_ERROR: &str = "EiamError";
    /// The Kubernetes API server refused or failed a request (RBAC, conflicts, outages).
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The spec passed admission but cannot be used (for example on an API server without the CEL rules).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// One reconcile did not settle within its round limit; it is retried.
    pub const NOT_CONVERGED: &str = "NotConverged";
    /// Warning Event: a restart target does not exist, so nothing was rolled.
    pub const RESTART_TARGET_MISSING: &str = "RestartTargetMissing";
    /// Stalled: the operator may not patch the kind of a restart target in this namespace (RBAC), so it could
    /// not roll the workloads after a rotation; nothing is minted until it may (or the targets are removed).
    pub const RESTART_NOT_PERMITTED: &str = "RestartNotPermitted";
    /// Stalled: a `spec.target.template` entry does not render (syntax error, unknown variable); the message names
    /// the key and line, never a value. Nothing is minted or published until the template is fixed.
    pub const INVALID_TEMPLATE: &str = "InvalidTemplate";

    // Provider problems (Stalled=True; the resource recovers by itself once the provider is fixed).
    /// The referenced EiamProvider/ClusterEiamProvider does not exist or cannot be read.
    pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";
    /// The provider names no usable endpoint or credential settings.
    pub const PROVIDER_INVALID: &str = "ProviderInvalid";
    /// The provider's credentials Secret or key is missing, or the operator's environment has no credentials.
    pub const CREDENTIALS_MISSING: &str = "CredentialsMissing";

    // A provider's own status (`Ready` on EiamProvider/ClusterEiamProvider); when False, its reason is one of the
    // provider problems above.
    /// The provider's endpoint is usable and its credentials resolved.
    pub const PROVIDER_RESOLVED: &str = "Resolved";
}
