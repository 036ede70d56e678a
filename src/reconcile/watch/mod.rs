//! What the operator sees: the watched namespaces ([`scope`]), one Secret metadata watch shared by every reader
//! ([`fanout`]), the versions of Secrets ([`secret_versions`]), which resource claims which application
//! ([`claims`]), when each resource's drift check is due ([`drift`]), and whether a watch has listed ([`synced`]).
//!
//! These hold and index what watches deliver; they make no decision and no write. They depend on `api` and
//! kube-runtime only.

pub mod claims;
pub mod drift;
pub mod fanout;
pub mod scope;
pub mod secret_versions;
pub mod synced;
