//! A local stand-in for the ECS instance metadata service's RAM-role endpoints (eiam-api.md section 6), for ECS
//! RAM role credential tests and for the fake EIAM to mount.
//!
//! `PUT /latest/api/token` issues IMDSv2 session tokens (the TTL header is required); the role listing and the
//! role's credentials under `/latest/meta-data/ram/security-credentials/` require a valid token unless IMDSv1 is
//! allowed. Calls are counted per endpoint and the next calls can be made to fail.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use jiff::{SignedDuration, Timestamp};

use super::sts::StandInServer;
use crate::eiam::clock::{Clock, SystemClock, format_acs_timestamp};
use crate::eiam::secret::SecretString;

/// Header asking for a token with this lifetime (seconds).
pub const TOKEN_TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
/// Header carrying the token on metadata reads.
pub const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";

/// The role and credentials the stand-in serves.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// The RAM role attached to the "instance"; `None` means no role (the listing is empty).
    pub role_name: Option<String>,
    /// AccessKey ID of the role's credentials.
    pub access_key_id: String,
    /// AccessKey secret of the role's credentials.
    pub access_key_secret: SecretString,
    /// Security token of the role's credentials.
    pub security_token: SecretString,
    /// Append `-<request number>` to id, secret and token so each issue is distinguishable.
    pub unique_per_call: bool,
    /// Lifetime of issued credentials (ECS issues 6 hours).
    pub lifetime: SignedDuration,
    /// Refuse metadata reads without a valid IMDSv2 token (hardened mode). `false` also accepts IMDSv1.
    pub require_token: bool,
    /// Serve `PUT /latest/api/token`; `false` simulates a service without IMDSv2.
    pub token_endpoint_enabled: bool,
    /// Clock for `Expiration` and token lifetimes.
    pub clock: Arc<dyn Clock>,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            role_name: Some("EcsRamRoleForEiam".into()),
            access_key_id: "STS.FakeEcsAccessKeyId".into(),
            access_key_secret: SecretString::new("fake-ecs-access-key-secret"),
            security_token: SecretString::new("fake-ecs-security-token"),
            unique_per_call: false,
            lifetime: SignedDuration::from_hours(6),
            require_token: true,
            token_endpoint_enabled: true,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Requests served, per endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataCounts {
    /// `PUT /latest/api/token`
    pub token: usize,
    /// `GET .../security-credentials/` (role listing)
    pub role_listing: usize,
    /// `GET .../security-credentials/<role>`
    pub credentials: usize,
    /// Reads refused for a missing or invalid token.
    pub unauthorized: usize,
}

#[derive(Debug)]
struct MetadataState {
    config: Mutex<MetadataConfig>,
    tokens: Mutex<HashMap<String, Timestamp>>,
    counts: Mutex<MetadataCounts>,
    failures: Mutex<VecDeque<u16>>,
}

/// The metadata stand-in. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct MetadataStandIn {
    state: Arc<MetadataState>,
}

impl MetadataStandIn {
    /// A stand-in serving `config`.
    pub fn new(config: MetadataConfig) -> Self {
        Self {
            state: Arc::new(MetadataState {
                config: Mutex::new(config),
                tokens: Mutex::new(HashMap::new()),
                counts: Mutex::new(MetadataCounts::default()),
                failures: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// The router: the token and RAM-role credential paths under `/latest/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/latest/api/token", put(issue_token))
            .route(
                "/latest/meta-data/ram/security-credentials/",
                get(list_role),
            )
            .route(
                "/latest/meta-data/ram/security-credentials/{role}",
                get(role_credentials),
            )
            .with_state(self.state.clone())
    }

    /// Serves the router on `127.0.0.1:0`.
    pub async fn start(&self) -> std::io::Result<StandInServer> {
        StandInServer::start(self.router()).await
    }

    /// Requests served so far.
    pub fn counts(&self) -> MetadataCounts {
        *lock(&self.state.counts)
    }

    /// Answers the next `count` credential reads (listing or role) with HTTP `status`.
    pub fn fail_next(&self, count: usize, status: u16) {
        lock(&self.state.failures).extend(std::iter::repeat_n(status, count));
    }

    /// Changes the configuration.
    pub fn update_config(&self, change: impl FnOnce(&mut MetadataConfig)) {
        change(&mut lock(&self.state.config));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, body.to_owned()).into_response()
}

async fn issue_token(State(state): State<Arc<MetadataState>>, headers: HeaderMap) -> Response {
    let config = lock(&state.config).clone();
    if !config.token_endpoint_enabled {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    lock(&state.counts).token += 1;
    let ttl = headers
        .get(TOKEN_TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "X-aliyun-ecs-metadata-token-ttl-seconds is required and must be 1 to 21600",
        );
    };
    let token = hex::encode(rand::random::<[u8; 24]>());
    let expires = config.clock.now() + SignedDuration::from_secs(ttl);
    lock(&state.tokens).insert(token.clone(), expires);
    text(StatusCode::OK, &token)
}

/// `Some(refusal)` when the read must be refused (no valid token in hardened mode, or an injected failure).
fn refusal(
    state: &MetadataState,
    headers: &HeaderMap,
    config: &MetadataConfig,
) -> Option<Response> {
    let token = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
    let valid = token.is_some_and(|t| {
        lock(&state.tokens)
            .get(t)
            .is_some_and(|expires| config.clock.now() < *expires)
    });
    // A token that is sent must be valid even when IMDSv1 is allowed, as on ECS.
    if (config.require_token || token.is_some()) && !valid {
        lock(&state.counts).unauthorized += 1;
        return Some(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    let injected = lock(&state.failures).pop_front()?;
    let status = StatusCode::from_u16(injected).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Some(text(status, "injected failure"))
}

async fn list_role(State(state): State<Arc<MetadataState>>, headers: HeaderMap) -> Response {
    let config = lock(&state.config).clone();
    if let Some(refused) = refusal(&state, &headers, &config) {
        return refused;
    }
    lock(&state.counts).role_listing += 1;
    match &config.role_name {
        Some(role) => text(StatusCode::OK, role),
        None => text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn role_credentials(
    State(state): State<Arc<MetadataState>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let config = lock(&state.config).clone();
    if let Some(refused) = refusal(&state, &headers, &config) {
        return refused;
    }
    let n = {
        let mut counts = lock(&state.counts);
        counts.credentials += 1;
        counts.credentials
    };
    if config.role_name.as_deref() != Some(role.as_str()) {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    let suffix = if config.unique_per_call {
        format!("-{n}")
    } else {
        String::new()
    };
    let now = config.clock.now();
    axum::Json(serde_json::json!({
        "AccessKeyId": format!("{}{suffix}", config.access_key_id),
        "AccessKeySecret": format!("{}{suffix}", config.access_key_secret.expose()),
        "Expiration": format_acs_timestamp(now + config.lifetime),
        "SecurityToken": format!("{}{suffix}", config.security_token.expose()),
        "LastUpdated": format_acs_timestamp(now),
        "Code": "Success",
    }))
    .into_response()
}
