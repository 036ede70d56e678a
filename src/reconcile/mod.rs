//! Reconciliation: the pure rotation planner, the executor that performs its actions, and status.

pub mod claims;
pub mod context;
pub mod controller;
pub mod drift;
pub mod events;
pub mod executor;
pub mod fanout;
pub mod jitter;
pub mod planner;
pub mod provider;
pub mod provider_status;
pub mod publish;
pub mod restart;
pub mod scope;
pub mod secret_versions;
pub mod status;
pub mod synced;
pub mod template;
