//! RRSA (RAM Roles for Service Accounts): trade the pod's projected OIDC token for STS credentials with an
//! unsigned `AssumeRoleWithOIDC` call (eiam-api.md section 6).
//!
//! The token file is read again on every refresh because the kubelet rotates the projected token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::Deserialize;

use super::cache::RefreshCache;
use super::http;
use super::{CredentialError, CredentialProvider, Credentials};
use crate::eiam::clock::{Clock, SystemClock, format_acs_timestamp};
use crate::eiam::endpoint::Endpoint;
use crate::eiam::request::encode_query;

const PROVIDER: &str = "rrsa";
/// The global STS endpoint, used when no region is set.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";
/// STS API version of `AssumeRoleWithOIDC`.
pub const STS_VERSION: &str = "2015-04-01";
/// Default session duration, as Alibaba's SDK.
pub const DEFAULT_DURATION_SECONDS: u32 = 3600;
/// STS's minimum session duration.
pub const MIN_DURATION_SECONDS: u32 = 900;

/// Settings of an [`RrsaProvider`].
#[derive(Debug, Clone)]
pub struct RrsaConfig {
    /// `acs:ram::<account>:role/<name>` (`ALIBABA_CLOUD_ROLE_ARN`).
    pub role_arn: String,
    /// `acs:ram::<account>:oidc-provider/<name>` (`ALIBABA_CLOUD_OIDC_PROVIDER_ARN`).
    pub oidc_provider_arn: String,
    /// The projected service-account token (`ALIBABA_CLOUD_OIDC_TOKEN_FILE`).
    pub token_file: PathBuf,
    /// `RoleSessionName` (`ALIBABA_CLOUD_ROLE_SESSION_NAME`), shown in ActionTrail.
    pub role_session_name: String,
    /// Requested lifetime, at least 900 s.
    pub duration_seconds: u32,
    /// An optional inline policy narrowing the role.
    pub policy: Option<String>,
    /// STS endpoint; `None` means the global `https://sts.aliyuncs.com`. The env chain sets
    /// `sts.<ALIBABA_CLOUD_STS_REGION>.aliyuncs.com` when that variable is set.
    pub sts_endpoint: Option<Endpoint>,
    /// Clock for `Timestamp` and for the refresh rule.
    pub clock: Arc<dyn Clock>,
}

impl RrsaConfig {
    /// The required settings with defaults for the rest: the global STS endpoint, 3600 s, session name
    /// `eiam-operator-<unix time>`.
    pub fn new(
        role_arn: impl Into<String>,
        oidc_provider_arn: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self {
            role_arn: role_arn.into(),
            oidc_provider_arn: oidc_provider_arn.into(),
            token_file: token_file.into(),
            role_session_name: format!("eiam-operator-{}", clock.now().as_second()),
            duration_seconds: DEFAULT_DURATION_SECONDS,
            policy: None,
            sts_endpoint: None,
            clock,
        }
    }
}

/// STS credentials from the pod's OIDC token, cached and refreshed 15 minutes before they expire.
#[derive(Debug)]
pub struct RrsaProvider {
    config: RrsaConfig,
    sts_endpoint: Endpoint,
    http: reqwest::Client,
    cache: RefreshCache,
}

impl RrsaProvider {
    /// Validates the settings; nothing is fetched until the first `credentials()` call.
    pub fn new(config: RrsaConfig) -> Result<Self, CredentialError> {
        let invalid = |field: &str, reason: &str| CredentialError::Invalid {
            field: field.into(),
            reason: reason.into(),
        };
        if config.role_arn.trim().is_empty() {
            return Err(invalid("ALIBABA_CLOUD_ROLE_ARN", "must not be empty"));
        }
        if config.oidc_provider_arn.trim().is_empty() {
            return Err(invalid(
                "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                "must not be empty",
            ));
        }
        if config.token_file.as_os_str().is_empty() {
            return Err(invalid(
                "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
                "must not be empty",
            ));
        }
        let name = &config.role_session_name;
        if name.len() < 2
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'-' | b'_'))
        {
            return Err(invalid(
                "ALIBABA_CLOUD_ROLE_SESSION_NAME",
                "must be 2 to 64 characters of letters, digits, `.`, `@`, `-` and `_`",
            ));
        }
        if config.duration_seconds < MIN_DURATION_SECONDS {
            return Err(invalid("durationSeconds", "must be at least 900"));
        }
        let sts_endpoint = match &config.sts_endpoint {
            Some(endpoint) => endpoint.clone(),
            None => Endpoint::parse(DEFAULT_STS_ENDPOINT)?,
        };
        let http = http::client(Duration::from_secs(5), Duration::from_secs(10))?;
        let cache = RefreshCache::new(config.clock.clone(), PROVIDER);
        Ok(Self {
            config,
            sts_endpoint,
            http,
            cache,
        })
    }

    async fn fetch(&self) -> Result<(Credentials, Timestamp), CredentialError> {
        let path = &self.config.token_file;
        let token =
            tokio::fs::read_to_string(path)
                .await
                .map_err(|source| CredentialError::TokenFile {
                    path: path.display().to_string(),
                    source,
                })?;
        let token = token.trim();
        if token.len() < 4 || token.len() > 20_000 {
            return Err(CredentialError::Invalid {
                field: "ALIBABA_CLOUD_OIDC_TOKEN_FILE".into(),
                reason: format!(
                    "the token in `{}` is {} characters long; STS accepts 4 to 20000",
                    path.display(),
                    token.len()
                ),
            });
        }
        let mut query = std::collections::BTreeMap::from([
            ("Action".to_owned(), "AssumeRoleWithOIDC".to_owned()),
            ("Format".to_owned(), "JSON".to_owned()),
            ("Version".to_owned(), STS_VERSION.to_owned()),
            (
                "DurationSeconds".to_owned(),
                self.config.duration_seconds.to_string(),
            ),
            ("RoleArn".to_owned(), self.config.role_arn.clone()),
            (
                "OIDCProviderArn".to_owned(),
                self.config.oidc_provider_arn.clone(),
            ),
            ("OIDCToken".to_owned(), token.to_owned()),
            (
                "RoleSessionName".to_owned(),
                self.config.role_session_name.clone(),
            ),
            (
                "Timestamp".to_owned(),
                format_acs_timestamp(self.config.clock.now()),
            ),
        ]);
        if let Some(policy) = &self.config.policy {
            query.insert("Policy".to_owned(), policy.clone());
        }
        let mut url = self.sts_endpoint.url().clone();
        url.set_query(Some(&encode_query(&query)));
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &url, e))?;
        let status = response.status();
        let body = http::read_body(PROVIDER, &url, response).await?;
        if status != reqwest::StatusCode::OK {
            return Err(http::rejected(PROVIDER, &url, status.as_u16(), &body));
        }
        parse_sts_response(&body).map_err(|reason| http::malformed(PROVIDER, &url, reason))
    }
}

/// The parts of the `AssumeRoleWithOIDC` answer we use.
#[derive(Deserialize)]
struct AssumeRoleResponse {
    #[serde(rename = "Credentials")]
    credentials: Option<http::TemporaryCredentials>,
}

fn parse_sts_response(body: &[u8]) -> Result<(Credentials, Timestamp), String> {
    let response: AssumeRoleResponse = http::parse_json(body)?;
    response
        .credentials
        .ok_or("no `Credentials` object")?
        .into_credentials(Some("Credentials"))
}

impl CredentialProvider for RrsaProvider {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialError>> {
        Box::pin(self.cache.get(|| self.fetch()))
    }

    fn kind(&self) -> &'static str {
        PROVIDER
    }

    fn invalidate(&self) -> bool {
        self.cache.invalidate();
        true
    }
}
