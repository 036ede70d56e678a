//! eiam-operator: declarative Alibaba Cloud IDaaS EIAM application client secrets for Kubernetes.
//!
//! The crate is a library with thin binaries on top: `eiam-operator` (the operator and its admin CLI),
//! `crdgen` (prints the CRD YAML) and `fake-eiam` (a faithful stand-in for the EIAM OpenAPI used by tests).

pub mod api;
pub mod cli;
pub mod eiam;
pub mod failpoint;
pub mod fake;
pub mod health;
pub mod installed_crds;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod reconcile;
pub mod telemetry;
