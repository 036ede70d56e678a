//! The CamelCase reasons the planner writes into conditions and Events. They live with the API
//! (`crate::api::conditions::reasons`) so that the planner, the executor, docs and dashboards share one list.

pub use crate::api::conditions::reasons::*;
