//! A local stand-in for STS `AssumeRoleWithOIDC` (eiam-api.md section 6), for RRSA credential tests and for the
//! fake EIAM to mount.
//!
//! It answers `GET /?Action=AssumeRoleWithOIDC&...` exactly as STS shapes the answer, validates the parameters
//! STS requires, records every call (and the OIDC token it carried, so tests can prove the token file is re-read),
//! and can be told to fail the next calls with an Alibaba error body.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use jiff::SignedDuration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::eiam::clock::{Clock, SystemClock, format_acs_timestamp, parse_acs_timestamp};
use crate::eiam::error::ErrorBody;
use crate::eiam::secret::SecretString;

/// The credentials the stand-in hands out and the rules it enforces.
#[derive(Debug, Clone)]
pub struct StsConfig {
    /// AccessKey ID of issued credentials (STS ids start with `STS.`).
    pub access_key_id: String,
    /// AccessKey secret of issued credentials.
    pub access_key_secret: SecretString,
    /// Security token of issued credentials.
    pub security_token: SecretString,
    /// Append `-<call number>` to the id, secret and token so each issue is distinguishable.
    pub unique_per_call: bool,
    /// Lifetime of issued credentials; `None` means the requested `DurationSeconds`.
    pub lifetime: Option<SignedDuration>,
    /// If set, `RoleArn` must equal it (`EntityNotExist.Role` otherwise).
    pub role_arn: Option<String>,
    /// If set, `OIDCProviderArn` must equal it (`EntityNotExist.OIDCProvider` otherwise).
    pub oidc_provider_arn: Option<String>,
    /// Clock for `Expiration`.
    pub clock: Arc<dyn Clock>,
}

impl Default for StsConfig {
    fn default() -> Self {
        Self {
            access_key_id: "STS.FakeAccessKeyId".into(),
            access_key_secret: SecretString::new("fake-sts-access-key-secret"),
            security_token: SecretString::new("fake-sts-security-token"),
            unique_per_call: false,
            lifetime: None,
            role_arn: None,
            oidc_provider_arn: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// One `AssumeRoleWithOIDC` call as received.
#[derive(Debug, Clone)]
pub struct StsCall {
    /// All query parameters (the OIDC token included: it is a test token).
    pub params: HashMap<String, String>,
    /// The answer's HTTP status.
    pub status: u16,
}

#[derive(Debug)]
struct StsState {
    config: Mutex<StsConfig>,
    calls: Mutex<Vec<StsCall>>,
    failures: Mutex<VecDeque<(u16, String)>>,
}

/// The STS stand-in. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct StsStandIn {
    state: Arc<StsState>,
}

impl StsStandIn {
    /// A stand-in issuing `config`'s credentials.
    pub fn new(config: StsConfig) -> Self {
        Self {
            state: Arc::new(StsState {
                config: Mutex::new(config),
                calls: Mutex::new(Vec::new()),
                failures: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// The router: `GET /` with the STS query parameters.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(assume_role_with_oidc))
            .with_state(self.state.clone())
    }

    /// Serves the router on `127.0.0.1:0`.
    pub async fn start(&self) -> std::io::Result<StandInServer> {
        StandInServer::start(self.router()).await
    }

    /// Number of calls received (failed ones included).
    pub fn call_count(&self) -> usize {
        lock(&self.state.calls).len()
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<StsCall> {
        lock(&self.state.calls).clone()
    }

    /// The `OIDCToken` of every call, in order.
    pub fn received_tokens(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| c.params.get("OIDCToken").cloned())
            .collect()
    }

    /// Answers the next `count` calls with HTTP `status` and error `code`.
    pub fn fail_next(&self, count: usize, status: u16, code: &str) {
        let mut failures = lock(&self.state.failures);
        failures.extend(std::iter::repeat_n((status, code.to_owned()), count));
    }

    /// Changes the configuration (e.g. issue different credentials from now on).
    pub fn update_config(&self, change: impl FnOnce(&mut StsConfig)) {
        change(&mut lock(&self.state.config));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn error(status: u16, code: &str, message: String) -> Response {
    let body = ErrorBody {
        code: code.to_owned(),
        message,
        request_id: request_id(),
        host_id: Some("sts.aliyuncs.com".into()),
        recommend: Some(format!(
            "https://api.aliyun.com/troubleshoot?q={code}&product=Sts"
        )),
        access_denied_detail: None,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(body)).into_response()
}

/// Claims of the OIDC token, when it is a JWT (tests may send any string).
fn jwt_claims(token: &str) -> serde_json::Value {
    token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Checks the request the way STS does; `Err` is (status, code, message).
fn validate(
    params: &HashMap<String, String>,
    config: &StsConfig,
) -> Result<i64, (u16, &'static str, String)> {
    let param = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    match param("Action") {
        Some("AssumeRoleWithOIDC") => {}
        Some(other) => {
            return Err((
                404,
                "InvalidAction.NotFound",
                format!("Specified api {other} is not found."),
            ));
        }
        None => {
            return Err((
                400,
                "MissingAction",
                "Action is mandatory for this action.".into(),
            ));
        }
    }
    if param("Version") != Some("2015-04-01") {
        return Err((
            400,
            "InvalidVersion",
            "Specified parameter Version is not valid.".into(),
        ));
    }
    if param("Format").is_some_and(|f| !f.eq_ignore_ascii_case("JSON")) {
        return Err((
            400,
            "InvalidParameter.Format",
            "This stand-in answers JSON only: send Format=JSON.".into(),
        ));
    }
    if let Some(ts) = param("Timestamp")
        && parse_acs_timestamp(ts).is_none()
    {
        return Err((
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.".into(),
        ));
    }
    for required in ["RoleArn", "OIDCProviderArn", "OIDCToken"] {
        if param(required).is_none() {
            return Err((
                400,
                missing_code(required),
                format!("{required} is mandatory for this action."),
            ));
        }
    }
    let token_len = param("OIDCToken").map_or(0, str::len);
    if !(4..=20_000).contains(&token_len) {
        return Err((
            400,
            "InvalidParameter.OIDCToken",
            "The parameter OIDCToken must be 4 to 20000 characters.".into(),
        ));
    }
    if let Some(name) = param("RoleSessionName")
        && (name.len() < 2
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'-' | b'_')))
    {
        return Err((
            400,
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is invalid.".into(),
        ));
    }
    if let Some(policy) = param("Policy")
        && policy.len() > 2048
    {
        return Err((
            400,
            "InvalidParameter.PolicyGrammar",
            "The policy is longer than 2048 characters.".into(),
        ));
    }
    let duration = match param("DurationSeconds") {
        None => 3600,
        Some(d) => match d.parse::<i64>() {
            Ok(d) if (900..=43_200).contains(&d) => d,
            _ => {
                return Err((
                    400,
                    "InvalidParameter.DurationSeconds",
                    "The Min/Max value of DurationSeconds is 15min/12hr.".into(),
                ));
            }
        },
    };
    if let Some(expected) = &config.role_arn
        && param("RoleArn") != Some(expected.as_str())
    {
        return Err((
            404,
            "EntityNotExist.Role",
            "The role does not exist.".into(),
        ));
    }
    if let Some(expected) = &config.oidc_provider_arn
        && param("OIDCProviderArn") != Some(expected.as_str())
    {
        return Err((
            404,
            "EntityNotExist.OIDCProvider",
            "The OIDC provider does not exist.".into(),
        ));
    }
    Ok(duration)
}

fn missing_code(param: &str) -> &'static str {
    match param {
        "RoleArn" => "MissingRoleArn",
        "OIDCProviderArn" => "MissingOIDCProviderArn",
        _ => "MissingOIDCToken",
    }
}

async fn assume_role_with_oidc(
    State(state): State<Arc<StsState>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let config = lock(&state.config).clone();
    let call_number = lock(&state.calls).len() + 1;
    let injected = lock(&state.failures).pop_front();
    let (status, response) = if let Some((status, code)) = injected {
        (
            status,
            error(
                status,
                &code,
                format!("{code} (injected by the STS stand-in)"),
            ),
        )
    } else {
        match validate(&params, &config) {
            Err((status, code, message)) => (status, error(status, code, message)),
            Ok(duration) => (200, issue(&params, &config, call_number, duration)),
        }
    };
    lock(&state.calls).push(StsCall { params, status });
    response
}

fn issue(
    params: &HashMap<String, String>,
    config: &StsConfig,
    call_number: usize,
    duration: i64,
) -> Response {
    let suffix = if config.unique_per_call {
        format!("-{call_number}")
    } else {
        String::new()
    };
    let now = config.clock.now();
    let lifetime = config
        .lifetime
        .unwrap_or(SignedDuration::from_secs(duration));
    let role_arn = params.get("RoleArn").cloned().unwrap_or_default();
    let session = params
        .get("RoleSessionName")
        .cloned()
        .unwrap_or_else(|| "session".into());
    let claims = jwt_claims(params.get("OIDCToken").map(String::as_str).unwrap_or(""));
    let claim = |name: &str| match &claims[name] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    };
    let claim_time = |name: &str| {
        claims[name]
            .as_i64()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(format_acs_timestamp)
            .unwrap_or_default()
    };
    let body = serde_json::json!({
        "RequestId": request_id(),
        "AssumedRoleUser": {
            "AssumedRoleId": format!("3{:017}:{session}", call_number),
            "Arn": format!("{role_arn}/{session}"),
        },
        "Credentials": {
            "AccessKeyId": format!("{}{suffix}", config.access_key_id),
            "AccessKeySecret": format!("{}{suffix}", config.access_key_secret.expose()),
            "SecurityToken": format!("{}{suffix}", config.security_token.expose()),
            "Expiration": format_acs_timestamp(now + lifetime),
        },
        "OIDCTokenInfo": {
            "Subject": claim("sub"),
            "Issuer": claim("iss"),
            "ClientIds": claim("aud"),
            "ExpirationTime": claim_time("exp"),
            "IssuanceTime": claim_time("iat"),
            "VerificationInfo": "Success",
        },
        "SourceIdentity": "",
    });
    axum::Json(body).into_response()
}

/// A stand-in served on `127.0.0.1:<free port>`; stops when dropped.
#[derive(Debug)]
pub struct StandInServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl StandInServer {
    /// Serves `router` on `127.0.0.1:0`.
    pub async fn start(router: Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "stand-in server stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StandInServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
