//! A faithful in-process stand-in for the EIAM client-secret API, used by tests and `make demo`.
//!
//! It verifies V1 and V3 signatures with the crate's own signer, enforces EIAM's rules (two secrets per
//! application, ExpirationTime bounds, masking), answers with Alibaba's error bodies, records calls, and injects
//! faults on request. Start it with [`FakeEiam::start`]; the `fake-eiam` binary is a thin wrapper. The admin API
//! under `/_fake/` is documented in README.md ("The fake EIAM").

mod actions;
mod admin;
mod auth;
mod calls;
pub mod config;
mod directory;
mod faults;
mod keyring;
mod listener;
pub mod metadata;
mod nonces;
mod server;
mod stand_ins;
pub mod sts;
mod wire;

pub use actions::mint_secret;
pub use auth::SignatureVersion;
pub use calls::RecordedCall;
pub use config::{
    AccessKeyConfig, ApplicationConfig, ErrorCode, ErrorCodes, FakeConfig, InstanceConfig,
    NeverExpiresAs, StandInSettings, TlsFiles,
};
pub use directory::{
    MAX_VALIDITY_MS, MIN_VALIDITY_MS, RuleViolation, StoredSecret, mask_client_secret,
};
pub use faults::{DropWhen, FaultKind, FaultPlan, FaultPlanError, FaultRule, RuleReport};
pub use listener::TlsSetupError;
pub use server::{FakeEiam, FakeHandle, InjectedSecret, StartError, StateSnapshot};
