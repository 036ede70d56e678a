//! The CamelCase reasons the planner writes into conditions and Events, in one place so that
//! tests, docs and dashboards agree on the spelling.

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
/// Normal: on deletion with `deletionPolicy: Delete`, the owned EIAM secrets were deleted.
pub const DELETED: &str = "Deleted";
/// Normal: on deletion with `deletionPolicy: Retain`, EIAM secrets and the Secret were kept.
pub const RETAINED: &str = "Retained";
