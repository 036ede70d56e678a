//! Shared support for the integration tests: a real control plane (tests/testenv), a namespace per test, child
//! processes with captured output, and polling helpers. Every test file pulls it in with `mod common;`.
//!
//! Not every test binary uses every helper, hence the `dead_code` and `unused_imports` allowances.
#![allow(dead_code, unused_imports)]

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

pub mod control_plane;
pub mod fake_eiam;
pub mod namespace;
pub mod operator;
pub mod process;
pub mod tls;
pub mod wait;

pub use control_plane::{ControlPlane, control_plane, private_control_plane};
pub use namespace::TestNamespace;
pub use process::{Process, ProcessSpec};
pub use wait::{free_port, wait_until};
