//! Reconciliation, in four rooms and the wiring between them. Data flows one way:
//!
//! ```text
//!   watch/ ──► controller ──► executor/ ──► planner/ (pure) ──► executor/ ──► EIAM, Kubernetes
//!                   │              ▲
//!                   └──context─────┘ ◄── provider/ (which client, which credentials, who may use it)
//! ```
//!
//! - [`watch`]: what the operator sees — the watched namespaces, the shared Secret metadata watch, caches of Secret
//!   versions and of which resource claims which application, and each resource's drift-check slot.
//! - [`planner`]: what to do — a pure function from observations to actions and status; no I/O, no clock.
//! - [`executor`]: one pass's I/O — observe, plan, run the actions (EIAM calls, the Secret, restarts, events,
//!   status), with its error and retry policy.
//! - [`provider`]: whom to ask — resolving a resource's provider to an EIAM client, the tenancy rules, and the
//!   providers' own status controllers.
//! - [`controller`] wires them into kube-runtime's controller; [`context`] is the state every pass shares.
//!
//! Dependencies point down: `controller` uses everything; `executor` uses `planner`, `provider`, `watch` and
//! `context`; `provider` uses `watch`; `planner` and `watch` use nothing of the operator but `api` and `eiam`.
//! Settings come down from `crate::operator`; nothing here reaches back up.

pub mod context;
pub mod controller;
pub mod executor;
pub mod jitter;
pub mod planner;
pub mod provider;
pub mod watch;
