//! The Kubernetes API of the operator: `ApplicationClientSecret`, `EiamProvider`, `ClusterEiamProvider`
//! (group `eiam-operator.io`, version `v1alpha1`), their admission rules, and the names the operator writes.
//!
//! The CRD YAML in `crds/` is generated from these types by the `crdgen` binary; doc comments here become
//! `kubectl explain` text, so they are written for users.

pub mod application_client_secret;
pub mod cel;
pub mod conditions;
pub mod crds;
pub mod duration;
pub mod provider;

pub use application_client_secret::{
    ApplicationClientSecret, ApplicationClientSecretSpec, ApplicationClientSecretStatus,
    CreationPolicy, DeletionPolicy, ProviderKind, ProviderRef, RestartTarget, RestartTargetKind,
    Rotation, RotationWindow, SecretKeys, SecretTarget, SecretTemplate,
};
pub use duration::{DurationError, format_duration, parse_duration};
pub use provider::{
    AccessKeyAuth, AccessKeySecretRef, AllowedNamespaces, ApplicationPattern, BudgetStatus,
    ClusterEiamProvider, ClusterEiamProviderSpec, EiamProvider, EiamProviderSpec, ProviderAuth,
    ProviderSettings, ProviderStatus, RrsaAuth, SignatureVersion,
};

/// The API group of every kind here.
pub const GROUP: &str = "eiam-operator.io";
/// The API version of every kind here.
pub const VERSION: &str = "v1alpha1";

/// Finalizer that holds an `ApplicationClientSecret` until its EIAM secrets are cleaned up per `deletionPolicy`.
pub const FINALIZER: &str = "eiam-operator.io/cleanup";
/// Annotation on the published Secret: the EIAM `SecretId` whose value the Secret holds.
pub const ANNOTATION_SECRET_ID: &str = "eiam-operator.io/secret-id";
/// Annotation on the published Secret: when that EIAM secret expires (RFC 3339), absent if it never expires.
pub const ANNOTATION_EXPIRES_AT: &str = "eiam-operator.io/expires-at";
/// Annotation on an `ApplicationClientSecret`: set it to any new value to request one rotation.
pub const ANNOTATION_ROTATE: &str = "eiam-operator.io/rotate-requested-at";
/// Annotation the operator sets on an `ApplicationClientSecret` with its finalizer, in the same write, just before
/// the resource's first Create (RFC 3339): the first issue's write-ahead marker. It means what
/// `status.pendingCreateSince` means, but only while the status records no secret yet; after the first issue it is
/// inert. Riding on the finalizer's patch saves the first issue one API write.
pub const ANNOTATION_FIRST_CREATE_SINCE: &str = "eiam-operator.io/first-create-since";
/// Pod-template annotation the operator sets on restart targets after publishing (like `kubectl rollout restart`).
pub const ANNOTATION_RESTARTED_AT: &str = "eiam-operator.io/restarted-at";
/// Label on every Secret the operator writes, and the value; the operator watches only Secrets carrying it.
pub const LABEL_MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "eiam-operator");
/// Annotation on each CRD written by `crdgen`: the hash of its spec ([`crds::schema_hash`]); the operator refuses to
/// reconcile until the installed CRDs carry the hashes it was built with.
pub const ANNOTATION_SCHEMA_HASH: &str = "eiam-operator.io/schema-hash";
/// Field manager for server-side apply of Secrets and status.
pub const FIELD_MANAGER: &str = "eiam-operator";
