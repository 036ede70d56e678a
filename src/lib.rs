//! eiam-operator: declarative Alibaba Cloud IDaaS EIAM application client secrets for Kubernetes.
//!
//! The crate is a library with thin binaries on top: `eiam-operator` (the operator and its admin CLI),
//! `crdgen` (prints the CRD YAML) and `fake-eiam` (a faithful stand-in for the EIAM OpenAPI used by tests).
//! The fake and the crash failpoint are test-only code behind the `testing` feature, which release builds and the
//! container image leave off.

pub mod api;
pub mod cli;
pub mod eiam;
#[cfg(feature = "testing")]
pub mod failpoint;
#[cfg(feature = "testing")]
pub mod fake;
pub mod fence;
pub mod health;
pub mod installed_crds;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod reconcile;
pub mod telemetry;
pub mod tls;
