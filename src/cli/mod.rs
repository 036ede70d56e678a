//! The admin command line: what a platform engineer runs by hand, next to the operator in the same binary.
//!
//! `eiam-operator eiam ...` calls the EIAM client-secret actions directly, to check that credentials, endpoint
//! and RAM permissions work before deploying the operator, and to inspect or repair an application by hand.

//!
//! `eiam-operator status|rotate` (also `kubectl eiam status|rotate`, through a `kubectl-eiam` link to the binary)
//! read and poke one `ApplicationClientSecret` with the user's kubeconfig.

pub mod eiam;
pub mod resource;

pub use eiam::{EiamArgs, run as run_eiam};
pub use resource::{RotateArgs, StatusArgs, run_rotate, run_status};
