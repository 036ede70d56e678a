//! The RAM role attached to the ECS instance, read from the instance metadata service (eiam-api.md section 6).
//!
//! IMDSv2 first: a session token from `PUT /latest/api/token`, sent with every metadata read. If the token
//! request fails the provider falls back to IMDSv1 like Alibaba's SDK, unless `ALIBABA_CLOUD_IMDSV1_DISABLED`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use reqwest::Url;
use serde::Deserialize;

use super::cache::RefreshCache;
use super::http;
use super::{CredentialError, CredentialProvider, Credentials};
use crate::eiam::clock::{Clock, SystemClock};
use crate::eiam::endpoint::Endpoint;
use crate::eiam::secret::SecretString;

const PROVIDER: &str = "ecs_ram_role";
/// The link-local metadata service.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";
/// Header asking for an IMDSv2 token with this lifetime (seconds).
pub const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
/// Header carrying the IMDSv2 token on metadata reads.
pub const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
/// Token lifetime requested, as the SDK.
pub const TOKEN_TTL_SECONDS: u32 = 21600;
const TOKEN_PATH: &str = "latest/api/token";
const CREDENTIALS_PATH: &str = "latest/meta-data/ram/security-credentials/";

/// Settings of an [`EcsRamRoleProvider`].
#[derive(Debug, Clone)]
pub struct EcsRamRoleConfig {
    /// The metadata service; `None` means `http://100.100.100.200`.
    pub metadata_endpoint: Option<Endpoint>,
    /// The role name (`ALIBABA_CLOUD_ECS_METADATA`); `None` means ask the metadata service.
    pub role_name: Option<String>,
    /// Refuse IMDSv1 (`ALIBABA_CLOUD_IMDSV1_DISABLED=true`).
    pub imdsv1_disabled: bool,
    /// Clock for the refresh rule.
    pub clock: Arc<dyn Clock>,
}

impl Default for EcsRamRoleConfig {
    fn default() -> Self {
        Self {
            metadata_endpoint: None,
            role_name: None,
            imdsv1_disabled: false,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The instance's RAM role credentials, cached and refreshed 15 minutes before they expire.
#[derive(Debug)]
pub struct EcsRamRoleProvider {
    base: Url,
    role_name: Option<String>,
    imdsv1_disabled: bool,
    http: reqwest::Client,
    cache: RefreshCache,
}

impl EcsRamRoleProvider {
    /// Validates the settings; nothing is fetched until the first `credentials()` call.
    pub fn new(config: EcsRamRoleConfig) -> Result<Self, CredentialError> {
        let endpoint = match config.metadata_endpoint {
            Some(endpoint) => endpoint,
            None => Endpoint::parse_allowing_http(DEFAULT_METADATA_ENDPOINT)?,
        };
        if let Some(role) = &config.role_name
            && (role.is_empty() || role.contains('/'))
        {
            return Err(CredentialError::Invalid {
                field: "ALIBABA_CLOUD_ECS_METADATA".into(),
                reason: format!("`{role}` is not a RAM role name"),
            });
        }
        Ok(Self {
            base: endpoint.url().clone(),
            role_name: config.role_name,
            imdsv1_disabled: config.imdsv1_disabled,
            // The metadata service is local: fail fast, as the SDK does (1 s / 1 s).
            http: http::client(Duration::from_secs(1), Duration::from_secs(1))?,
            cache: RefreshCache::new(config.clock, PROVIDER),
        })
    }

    fn url(&self, path: &str) -> Result<Url, CredentialError> {
        self.base
            .join(path)
            .map_err(|e| http::malformed(PROVIDER, &self.base, e.to_string()))
    }

    /// An IMDSv2 token, or `None` to use IMDSv1.
    async fn session_token(&self) -> Result<Option<SecretString>, CredentialError> {
        let url = self.url(TOKEN_PATH)?;
        let result = async {
            let response = self
                .http
                .put(url.clone())
                .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS.to_string())
                .send()
                .await
                .map_err(|e| http::transport(PROVIDER, &url, e))?;
            let status = response.status();
            let body = http::read_body(PROVIDER, &url, response).await?;
            if !status.is_success() {
                return Err(http::rejected(PROVIDER, &url, status.as_u16(), &body));
            }
            let token = String::from_utf8(body.to_vec())
                .map_err(|_| http::malformed(PROVIDER, &url, "the token is not UTF-8"))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(http::malformed(PROVIDER, &url, "the token is empty"));
            }
            Ok(SecretString::new(token))
        }
        .await;
        match result {
            Ok(token) => Ok(Some(token)),
            Err(e) if self.imdsv1_disabled => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "IMDSv2 token request failed; falling back to IMDSv1 (set ALIBABA_CLOUD_IMDSV1_DISABLED=true to forbid)");
                Ok(None)
            }
        }
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&SecretString>,
    ) -> Result<(Url, Vec<u8>), CredentialError> {
        let url = self.url(path)?;
        let mut request = self.http.get(url.clone());
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| http::transport(PROVIDER, &url, e))?;
        let status = response.status();
        let body = http::read_body(PROVIDER, &url, response).await?;
        if !status.is_success() {
            return Err(http::rejected(PROVIDER, &url, status.as_u16(), &body));
        }
        Ok((url, body.to_vec()))
    }

    async fn fetch(&self) -> Result<(Credentials, Timestamp), CredentialError> {
        let token = self.session_token().await?;
        let role = match &self.role_name {
            Some(role) => role.clone(),
            None => {
                let (url, body) = self.get(CREDENTIALS_PATH, token.as_ref()).await?;
                let listing = String::from_utf8_lossy(&body);
                listing
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        http::malformed(PROVIDER, &url, "no RAM role is attached to this instance")
                    })?
            }
        };
        let (url, body) = self
            .get(&format!("{CREDENTIALS_PATH}{role}"), token.as_ref())
            .await?;
        parse_metadata_credentials(&body).map_err(|reason| http::malformed(PROVIDER, &url, reason))
    }
}

#[derive(Deserialize)]
struct MetadataCredentials {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(flatten)]
    credentials: http::TemporaryCredentials,
}

fn parse_metadata_credentials(body: &[u8]) -> Result<(Credentials, Timestamp), String> {
    let answer: MetadataCredentials = http::parse_json(body)?;
    if answer.code.as_deref() != Some("Success") {
        return Err(format!(
            "`Code` is {:?}, not \"Success\"",
            answer.code.as_deref().unwrap_or("missing")
        ));
    }
    answer.credentials.into_credentials(None)
}

impl CredentialProvider for EcsRamRoleProvider {
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
