//! The admin command line: what a platform engineer runs by hand, next to the operator in the same binary.
//!
//! `eiam-operator eiam ...` calls the EIAM client-secret actions directly, to check that credentials, endpoint
//! and RAM permissions work before deploying the operator, and to inspect or repair an application by hand.

pub mod eiam;

pub use eiam::{EiamArgs, run as run_eiam};
