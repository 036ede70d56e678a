//! Reconciliation: the pure rotation planner, the executor that performs its actions, and status.
pub mod planner;
