//! Where the AccessKey that signs EIAM requests comes from: a static key, the environment, RRSA (OIDC to STS) or
//! the ECS instance's RAM role, in Alibaba's own default-chain order.
//!
//! Providers hand out short-lived copies of [`Credentials`]; the refreshable ones cache them and refresh 15
//! minutes before they expire, so a signer never holds an expired token.

mod access_key;
mod cache;
pub mod ecs_ram_role;
pub mod env;
mod http;
pub mod rrsa;

pub use access_key::StaticProvider;
pub use cache::REFRESH_BEFORE_EXPIRY;
pub use ecs_ram_role::{EcsRamRoleConfig, EcsRamRoleProvider};
pub use env::{ChainConfig, default_chain, process_env};
pub use rrsa::{RrsaConfig, RrsaProvider};

use std::fmt::Debug;

use futures::future::BoxFuture;

use super::endpoint::EndpointError;
use super::secret::SecretString;

/// One AccessKey, optionally with an STS security token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The AccessKey ID (an STS AccessKey ID when `security_token` is set). Not secret; safe to log.
    pub access_key_id: String,
    /// The AccessKey secret.
    pub access_key_secret: SecretString,
    /// The STS security token of temporary credentials.
    pub security_token: Option<SecretString>,
}

/// A source of credentials. Implementations are cheap to call repeatedly: they cache what they fetch.
pub trait CredentialProvider: Send + Sync + Debug {
    /// Credentials valid for at least the next few minutes.
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialError>>;

    /// A short label for logs and metrics, e.g. `static_ak`, `env`, `rrsa`, `ecs_ram_role`.
    fn kind(&self) -> &'static str;

    /// Drops cached credentials because EIAM rejected them (e.g. `InvalidSecurityToken.Expired`), so the next
    /// [`CredentialProvider::credentials`] call fetches fresh ones. Returns `false` when the provider has nothing
    /// to refresh (a static key), in which case retrying would be pointless.
    fn invalidate(&self) -> bool {
        false
    }
}

/// Credentials could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The default chain found nothing to use.
    #[error(
        "no Alibaba Cloud credentials found ({tried}): set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, \
         or ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE (RRSA), \
         or run on an ECS instance with a RAM role"
    )]
    NotFound {
        /// What the chain tried, in order.
        tried: String,
    },
    /// A setting is present but unusable.
    #[error("invalid credential setting `{field}`: {reason}")]
    Invalid {
        /// The setting (an environment variable or a config field).
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The OIDC token file could not be read.
    #[error(
        "cannot read the OIDC token file `{path}`: {source}; check ALIBABA_CLOUD_OIDC_TOKEN_FILE and the projected service-account token volume"
    )]
    TokenFile {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// STS or the metadata service could not be reached.
    #[error("{provider}: request to {url} failed: {source}; check network access to it")]
    Transport {
        /// Which provider.
        provider: &'static str,
        /// The URL without its query (the query may hold a token).
        url: String,
        /// The transport error, stripped of its URL.
        #[source]
        source: reqwest::Error,
    },
    /// STS or the metadata service answered with an error.
    #[error(
        "{provider}: {url} answered HTTP {status}: {code}: {message} (RequestId: {request_id})"
    )]
    Rejected {
        /// Which provider.
        provider: &'static str,
        /// The URL without its query.
        url: String,
        /// HTTP status.
        status: u16,
        /// Error code from the body, or empty.
        code: String,
        /// Error message from the body, or empty.
        message: String,
        /// Request id from the body, or empty.
        request_id: String,
    },
    /// The answer did not have the expected shape.
    #[error("{provider}: unexpected response from {url}: {reason}")]
    Malformed {
        /// Which provider.
        provider: &'static str,
        /// The URL without its query.
        url: String,
        /// What was wrong (never the body: it may hold credentials).
        reason: String,
    },
    /// The STS or metadata endpoint is not usable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl CredentialError {
    /// Whether trying again later may succeed (network trouble, throttling, server errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            CredentialError::Transport { .. } => true,
            CredentialError::Rejected { status, code, .. } => {
                *status >= 500 || code.starts_with("Throttling")
            }
            _ => false,
        }
    }
}
