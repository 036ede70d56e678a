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

/// Condition reasons. The doc line of each says when it is used and what the user should do.
pub mod reasons {
    /// Ready: the current secret is published and not due for renewal.
    pub const ISSUED: &str = "Issued";
    /// Ready: an existing EIAM secret (`spec.secretId`) was adopted and published.
    pub const IMPORTED: &str = "Imported";
    /// Reconciling: no secret yet; minting and publishing the first one.
    pub const ISSUING: &str = "Issuing";
    /// Reconciling: a renewal is in flight (new secret minted or being published).
    pub const ROTATING: &str = "Rotating";
    /// Reconciling: the previous secret is within its grace period and will be disabled and deleted.
    pub const RETIRING: &str = "Retiring";
    /// Reconciling: the Secret or the EIAM secret drifted and is being repaired.
    pub const REPAIRING: &str = "Repairing";
    /// Reconciling: a transient EIAM error (throttling, 5xx, timeout); retrying with backoff.
    pub const RETRYING: &str = "Retrying";
    /// Reconciling: the resource is being deleted and the `deletionPolicy` is being carried out.
    pub const DELETING: &str = "Deleting";
    /// Stalled: both EIAM slots hold secrets this resource does not own; delete one in EIAM to continue.
    pub const SLOTS_EXHAUSTED: &str = "SlotsExhausted";
    /// Stalled: another `ApplicationClientSecret` already manages this application; the message names it.
    pub const CONFLICT: &str = "Conflict";
    /// Stalled: the provider's `allowedNamespaces` / `allowedApplications` do not include this resource.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    /// Stalled: the referenced provider does not exist or is invalid.
    pub const PROVIDER_NOT_READY: &str = "ProviderNotReady";
    /// Stalled: the provider's credentials Secret or key is missing; recovers once it appears.
    pub const CREDENTIALS_MISSING: &str = "CredentialsMissing";
    /// Stalled: EIAM refused permanently (auth, not found, invalid); the message carries Code, Message, RequestId.
    pub const EIAM_ERROR: &str = "EiamError";
    /// Stalled: `spec.secretId` names a secret EIAM does not list for the application.
    pub const IMPORT_NOT_FOUND: &str = "ImportNotFound";
    /// Stalled: the spec is invalid in a way admission could not catch (for example on an old API server).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Provider conditions: the provider's spec and credentials were resolved.
    pub const PROVIDER_READY: &str = "ProviderReady";
}
