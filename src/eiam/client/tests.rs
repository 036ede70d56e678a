//! Client tests against a scripted local HTTP server that verifies every signature with the signer functions and
//! answers from a script, so each test controls exactly what EIAM says.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap as AxumHeaders, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::eiam::clock::FixedClock;
use crate::eiam::credentials::{CredentialError, Credentials, StaticProvider};
use crate::eiam::secret::SecretString;
use crate::eiam::signer::{
    EMPTY_PAYLOAD_SHA256, V3Authorization, v1_signature, v1_string_to_sign, v3_canonical_request,
    v3_signature, v3_string_to_sign,
};

const AK: &str = "LTAI-test-id";
const SECRET: &str = "ak-secret-value-123";
const TOKEN_1: &str = "sts-token-one";
const TOKEN_2: &str = "sts-token-two";
const CLIENT_SECRET: &str = "CSEHDcHcrUKHw1CuxkJEHPveWRXBGqVqRsxxxx";

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    action: String,
    nonce: String,
    peer: SocketAddr,
}

/// A scripted answer.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Answer {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn error(status: u16, code: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({"Code": code, "Message": format!("{code} says the server"), "RequestId": "ERR-RID"}),
        )
    }
}

#[derive(Default)]
struct ServerState {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Answer>>,
    /// Tokens the server accepts; empty means AK credentials (no token allowed).
    valid_tokens: Mutex<Vec<String>>,
}

/// Verifies the request's signature like EIAM does; returns the action and nonce or an error code.
fn verify(
    method: &Method,
    query: &BTreeMap<String, String>,
    headers: &BTreeMap<String, String>,
) -> Result<(String, String, Option<String>), &'static str> {
    if method != Method::POST {
        return Err("UnexpectedMethod");
    }
    if let Some(auth) = headers.get("authorization") {
        let auth = V3Authorization::parse(auth).map_err(|_| "IncompleteSignature")?;
        if auth.access_key_id != AK {
            return Err("InvalidAccessKeyId.NotFound");
        }
        let mut signed = BTreeMap::new();
        for name in &auth.signed_headers {
            signed.insert(
                name.clone(),
                headers.get(name).ok_or("IncompleteSignature")?.clone(),
            );
        }
        for required in [
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        ] {
            if !signed.contains_key(required) {
                return Err("IncompleteSignature");
            }
        }
        if headers.contains_key("x-acs-security-token")
            && !signed.contains_key("x-acs-security-token")
        {
            return Err("IncompleteSignature");
        }
        let canonical = v3_canonical_request("POST", "/", query, &signed, EMPTY_PAYLOAD_SHA256);
        if v3_signature(SECRET, &v3_string_to_sign(&canonical)) != auth.signature {
            return Err("SignatureDoesNotMatch");
        }
        Ok((
            headers["x-acs-action"].clone(),
            headers["x-acs-signature-nonce"].clone(),
            headers.get("x-acs-security-token").cloned(),
        ))
    } else {
        if query.get("AccessKeyId").map(String::as_str) != Some(AK) {
            return Err("InvalidAccessKeyId.NotFound");
        }
        if query.get("Format").map(String::as_str) != Some("JSON")
            || query.get("SignatureVersion").map(String::as_str) != Some("1.0")
            || query.get("SignatureMethod").map(String::as_str) != Some("HMAC-SHA1")
            || query.get("Version").map(String::as_str) != Some(API_VERSION)
        {
            return Err("MissingParameter");
        }
        let expected = v1_signature(SECRET, &v1_string_to_sign("POST", query));
        if query.get("Signature") != Some(&expected) {
            return Err("SignatureDoesNotMatch");
        }
        Ok((
            query["Action"].clone(),
            query["SignatureNonce"].clone(),
            query.get("SecurityToken").cloned(),
        ))
    }
}

fn default_answer(action: &str) -> Answer {
    let secret = serde_json::json!({
        "InstanceId": "idaas_1", "ApplicationId": "app_1", "ClientId": "app_1", "SecretId": "sci_1",
        "ClientSecret": CLIENT_SECRET, "Status": "enabled", "ExpirationTime": 1735530123762_i64
    });
    let body = match action {
        "CreateApplicationClientSecret" => serde_json::json!({
            "RequestId": "RID-create",
            "ApplicationClientSecret": {"ClientId": "app_1", "SecretId": "sci_1", "ClientSecret": CLIENT_SECRET}
        }),
        "ListApplicationClientSecrets" => {
            let mut masked = secret.clone();
            masked["ClientSecret"] = "CSEH*****xx".into();
            serde_json::json!({"RequestId": "RID-list", "TotalCount": 1, "ApplicationClientSecrets": [masked]})
        }
        "ObtainApplicationClientSecret" => {
            serde_json::json!({"RequestId": "RID-obtain", "ApplicationClientSecret": secret})
        }
        other => serde_json::json!({"RequestId": format!("RID-{other}")}),
    };
    Answer::json(200, body)
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: AxumHeaders,
    body: Bytes,
) -> Response {
    assert!(body.is_empty(), "EIAM requests carry an empty body");
    assert_eq!(uri.path(), "/");
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let (action, nonce, token) = match verify(&method, &query, &headers) {
        Ok(ok) => ok,
        Err(code) => return answer(Answer::error(400, code)).await,
    };
    state.seen.lock().unwrap().push(Seen {
        query,
        headers,
        action: action.clone(),
        nonce,
        peer,
    });
    let valid_tokens = state.valid_tokens.lock().unwrap().clone();
    match (&token, valid_tokens.is_empty()) {
        (Some(_), true) => {
            return answer(Answer::error(400, "InvalidSecurityToken.Malformed")).await;
        }
        (Some(t), false) if !valid_tokens.contains(t) => {
            return answer(Answer::error(400, "InvalidSecurityToken.Expired")).await;
        }
        (None, false) => return answer(Answer::error(400, "InvalidSecurityToken.Malformed")).await,
        _ => {}
    }
    let scripted = state.script.lock().unwrap().pop_front();
    answer(scripted.unwrap_or_else(|| default_answer(&action))).await
}

async fn answer(a: Answer) -> Response {
    if !a.delay.is_zero() {
        tokio::time::sleep(a.delay).await;
    }
    let mut response = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
    for (k, v) in a.headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

struct TestServer {
    state: Arc<ServerState>,
    endpoint: Endpoint,
}

impl TestServer {
    async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            state,
            endpoint: Endpoint::parse(&format!("http://{addr}")).unwrap(),
        }
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    fn accept_tokens(&self, tokens: &[&str]) {
        *self.state.valid_tokens.lock().unwrap() = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn client(&self, version: SignatureVersion) -> EiamClient {
        self.client_with(
            version,
            Arc::new(StaticProvider::access_key(AK, SECRET)),
            |_| {},
        )
    }

    fn client_with(
        &self,
        version: SignatureVersion,
        credentials: Arc<dyn CredentialProvider>,
        tweak: impl FnOnce(&mut ClientConfig),
    ) -> EiamClient {
        let mut config = ClientConfig::new(self.endpoint.clone(), credentials);
        config.signature_version = version;
        tweak(&mut config);
        EiamClient::new(config).unwrap()
    }
}

#[tokio::test]
async fn v1_create_is_a_signed_post_with_common_parameters_in_the_query() {
    let server = TestServer::start().await;
    let client = server.client(SignatureVersion::V1);
    let created = client
        .create_secret("idaas_1", "app_1", Some(1735530123762))
        .await
        .unwrap();
    assert_eq!(created.request_id, "RID-create");
    assert_eq!(created.application_client_secret.secret_id, "sci_1");
    assert_eq!(
        created.application_client_secret.client_secret.expose(),
        CLIENT_SECRET
    );
    assert!(!format!("{created:?}").contains(CLIENT_SECRET));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let q = &seen[0].query;
    assert_eq!(seen[0].action, "CreateApplicationClientSecret");
    assert_eq!(q["InstanceId"], "idaas_1");
    assert_eq!(q["ApplicationId"], "app_1");
    assert_eq!(q["ExpirationTime"], "1735530123762");
    assert_eq!(seen[0].nonce.len(), 32);
    assert!(!q.contains_key("SecurityToken"));
    assert!(!seen[0].headers.contains_key("authorization"));
}

#[tokio::test]
async fn v3_sts_performs_all_seven_actions() {
    let server = TestServer::start().await;
    server.accept_tokens(&[TOKEN_1]);
    let client = server.client_with(
        SignatureVersion::V3,
        Arc::new(StaticProvider::sts(AK, SECRET, TOKEN_1)),
        |_| {},
    );
    let created = client
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap();
    assert_eq!(
        created.application_client_secret.client_secret.expose(),
        CLIENT_SECRET
    );
    let listed = client.list_secrets("idaas_1", "app_1").await.unwrap();
    assert_eq!(listed.request_id, "RID-list");
    assert_eq!(
        listed.application_client_secrets[0].client_secret.expose(),
        "CSEH*****xx"
    );
    let obtained = client
        .obtain_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap();
    assert_eq!(
        obtained.application_client_secret.client_secret.expose(),
        CLIENT_SECRET
    );
    assert_eq!(
        obtained.application_client_secret.expires_at_ms(),
        Some(1735530123762)
    );
    let disabled = client
        .disable_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap();
    assert_eq!(disabled.request_id, "RID-DisableApplicationClientSecret");
    client
        .enable_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap();
    client
        .update_expiration_time("idaas_1", "app_1", "sci_1", 1900000000000)
        .await
        .unwrap();
    client
        .delete_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap();

    let seen = server.seen();
    let actions: Vec<&str> = seen.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "CreateApplicationClientSecret",
            "ListApplicationClientSecrets",
            "ObtainApplicationClientSecret",
            "DisableApplicationClientSecret",
            "EnableApplicationClientSecret",
            "UpdateApplicationClientSecretExpirationTime",
            "DeleteApplicationClientSecret",
        ]
    );
    for s in &seen {
        // V3: no Action/Version/Format in the query, token header present and signed.
        assert!(!s.query.contains_key("Action") && !s.query.contains_key("Signature"));
        assert_eq!(s.headers["x-acs-version"], API_VERSION);
        assert_eq!(s.headers["x-acs-security-token"], TOKEN_1);
        assert_eq!(s.headers["x-acs-accesskey-id"], AK);
        assert_eq!(s.headers["x-acs-content-sha256"], EMPTY_PAYLOAD_SHA256);
        assert_eq!(s.headers["content-length"], "0");
    }
    assert_eq!(seen[5].query["ExpirationTime"], "1900000000000");
    assert!(
        !seen[0].query.contains_key("ExpirationTime"),
        "absent expiration means never expires"
    );
    // Every attempt gets a fresh nonce.
    let mut nonces: Vec<&str> = seen.iter().map(|s| s.nonce.as_str()).collect();
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(nonces.len(), seen.len());
    // Connections are reused.
    assert!(
        seen.iter().all(|s| s.peer == seen[0].peer),
        "expected one pooled connection"
    );
}

#[tokio::test]
async fn signing_time_comes_from_the_injected_clock() {
    let server = TestServer::start().await;
    let t: Timestamp = "2020-02-03T04:05:06Z".parse().unwrap();
    for version in [SignatureVersion::V1, SignatureVersion::V3] {
        let client = server.client_with(
            version,
            Arc::new(StaticProvider::access_key(AK, SECRET)),
            |c| {
                c.clock = Arc::new(FixedClock::new(t));
            },
        );
        client.list_secrets("idaas_1", "app_1").await.unwrap();
    }
    let seen = server.seen();
    assert_eq!(seen[0].query["Timestamp"], "2020-02-03T04:05:06Z");
    assert_eq!(seen[1].headers["x-acs-date"], "2020-02-03T04:05:06Z");
}

#[tokio::test]
async fn a_lifetime_becomes_an_expiration_time_computed_at_signing_inside_the_bounds() {
    let server = TestServer::start().await;
    let t: Timestamp = "2026-11-29T10:00:00Z".parse().unwrap();
    let client = server.client_with(
        SignatureVersion::V1,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
        |c| {
            c.clock = Arc::new(FixedClock::new(t));
        },
    );
    let day = Duration::from_secs(24 * 3600);
    let (_, sent) = client
        .create_secret_with_lifetime("idaas_1", "app_1", Some(day))
        .await
        .unwrap();
    let expected = crate::eiam::expiration::expiration_for(t, day);
    assert_eq!(sent, Some(expected));
    assert!(
        t.duration_until(expected) > jiff::SignedDuration::from_hours(24),
        "the documented minimum gets a margin above EIAM's bound"
    );
    let (_, never) = client
        .create_secret_with_lifetime("idaas_1", "app_1", None)
        .await
        .unwrap();
    assert_eq!(never, None);
    let seen = server.seen();
    assert_eq!(
        seen[0].query["ExpirationTime"],
        expected.as_millisecond().to_string()
    );
    assert!(!seen[1].query.contains_key("ExpirationTime"));
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_by_a_verifying_server() {
    let server = TestServer::start().await;
    for version in [SignatureVersion::V1, SignatureVersion::V3] {
        let client = server.client_with(
            version,
            Arc::new(StaticProvider::access_key(AK, "wrong")),
            |_| {},
        );
        let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{version}");
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn throttling_decodes_code_request_id_and_retry_after() {
    let server = TestServer::start().await;
    let mut throttled = Answer::error(400, "Throttling.User");
    throttled.headers.push(("x-acs-retry-after", "1500".into()));
    server.script([throttled]);
    let err = server
        .client(SignatureVersion::V3)
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Throttling.User"));
    assert_eq!(err.request_id(), Some("ERR-RID"));
    assert_eq!(err.http_status(), Some(400));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    assert!(err.is_retryable() && err.is_throttled());
    assert_eq!(
        server.seen().len(),
        1,
        "the client does not retry by itself"
    );
    let text = err.to_string();
    assert!(
        text.contains("Throttling.User")
            && text.contains("ERR-RID")
            && text.contains("Throttling.User says the server"),
        "{text}"
    );
}

#[tokio::test]
async fn error_bodies_decode_in_both_casings_with_all_fields() {
    let server = TestServer::start().await;
    server.script([
        Answer::json(
            403,
            serde_json::json!({"code": "NoPermission", "message": "denied", "requestId": "r-camel",
                "accessDeniedDetail": {"AuthAction": "eiam:ObtainApplicationClientSecret"}}),
        ),
        Answer::json(
            404,
            serde_json::json!({"Code": "EntityNotExists.ApplicationClientSecret", "Message": "no such secret",
                "RequestId": "r-pascal", "HostId": "eiam.cn-hangzhou.aliyuncs.com", "Recommend": "https://r"}),
        ),
    ]);
    let client = server.client(SignatureVersion::V3);
    let err = client
        .obtain_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoPermission"));
    assert_eq!(err.request_id(), Some("r-camel"));
    let EiamError::Api { body, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        body.access_denied_detail.as_ref().unwrap()["AuthAction"],
        "eiam:ObtainApplicationClientSecret"
    );
    assert!(
        err.to_string()
            .contains("grant the RAM action eiam:ObtainApplicationClientSecret")
    );
    let err = client
        .obtain_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable());
    let EiamError::Api { body, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        body.host_id.as_deref(),
        Some("eiam.cn-hangzhou.aliyuncs.com")
    );
    assert_eq!(body.recommend.as_deref(), Some("https://r"));
}

#[tokio::test]
async fn nonce_reuse_is_resigned_once_with_a_fresh_nonce() {
    let server = TestServer::start().await;
    server.script([Answer::error(400, "SignatureNonceUsed")]);
    let client = server.client(SignatureVersion::V1);
    client
        .delete_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0].nonce, seen[1].nonce);

    // Twice in a row: give up after the one re-sign and report it as retryable.
    server.script([
        Answer::error(400, "SignatureNonceUsed"),
        Answer::error(400, "SignatureNonceUsed"),
    ]);
    let err = client
        .delete_secret("idaas_1", "app_1", "sci_1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureNonceUsed"));
    assert!(err.is_retryable());
    assert_eq!(server.seen().len(), 4);
}

/// A refreshable provider: hands out `TOKEN_1` until invalidated, then `TOKEN_2`.
#[derive(Debug, Default)]
struct RotatingProvider {
    invalidations: AtomicUsize,
    fetches: AtomicUsize,
}

impl CredentialProvider for RotatingProvider {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let token = if self.invalidations.load(Ordering::SeqCst) == 0 {
            TOKEN_1
        } else {
            TOKEN_2
        };
        Box::pin(async move {
            Ok(Credentials {
                access_key_id: AK.into(),
                access_key_secret: SecretString::new(SECRET),
                security_token: Some(SecretString::new(token)),
            })
        })
    }

    fn kind(&self) -> &'static str {
        "rotating"
    }

    fn invalidate(&self) -> bool {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[tokio::test]
async fn a_rejected_sts_token_is_refreshed_and_retried_once() {
    let server = TestServer::start().await;
    server.accept_tokens(&[TOKEN_2]);
    let provider = Arc::new(RotatingProvider::default());
    let client = server.client_with(SignatureVersion::V3, provider.clone(), |_| {});
    let listed = client.list_secrets("idaas_1", "app_1").await.unwrap();
    assert_eq!(listed.request_id, "RID-list");
    assert_eq!(provider.invalidations.load(Ordering::SeqCst), 1);
    assert_eq!(provider.fetches.load(Ordering::SeqCst), 2);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["x-acs-security-token"], TOKEN_1);
    assert_eq!(seen[1].headers["x-acs-security-token"], TOKEN_2);

    // If the fresh token is rejected too, the error comes back after exactly one refresh.
    server.accept_tokens(&["neither"]);
    let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSecurityToken.Expired"));
    assert_eq!(provider.invalidations.load(Ordering::SeqCst), 2);
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_static_token_is_not_retried() {
    let server = TestServer::start().await;
    server.accept_tokens(&[TOKEN_2]);
    let client = server.client_with(
        SignatureVersion::V1,
        Arc::new(StaticProvider::sts(AK, SECRET, TOKEN_1)),
        |_| {},
    );
    let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSecurityToken.Expired"));
    assert_eq!(server.seen().len(), 1);
    assert_eq!(server.seen()[0].query["SecurityToken"], TOKEN_1);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_makes_create_ambiguous() {
    let server = TestServer::start().await;
    let mut slow = default_answer("CreateApplicationClientSecret");
    slow.delay = Duration::from_millis(1000);
    server.script([slow]);
    let client = server.client_with(
        SignatureVersion::V3,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
        |c| {
            c.read_timeout = Duration::from_millis(150);
        },
    );
    let err = client
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::Timeout { sent: true, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(
        err.is_ambiguous(),
        "the secret may have been created: List before retrying"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retryable_but_not_ambiguous() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
    let client = EiamClient::new(ClientConfig::new(
        endpoint,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
    ))
    .unwrap();
    let err = client
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::Transport { sent: false, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!err.is_ambiguous(), "nothing reached EIAM");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// Reads one request head, then closes the connection without answering.
async fn start_hanging_up_server() -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let mut read = Vec::new();
            while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read.extend_from_slice(&buf[..n]),
                }
            }
            let _ = socket.shutdown().await;
        }
    });
    Endpoint::parse(&format!("http://{addr}")).unwrap()
}

#[tokio::test]
async fn a_connection_dropped_after_sending_makes_create_ambiguous() {
    let endpoint = start_hanging_up_server().await;
    let mut config =
        ClientConfig::new(endpoint, Arc::new(StaticProvider::sts(AK, SECRET, TOKEN_1)));
    config.signature_version = SignatureVersion::V1;
    let client = EiamClient::new(config).unwrap();
    let err = client
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::Transport { sent: true, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable() && err.is_ambiguous());
    // The V1 query holds the STS token and the signature: the error must not echo the URL.
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(TOKEN_1) && !text.contains("Signature="),
        "{text}"
    );
    // The same failure on a read is not ambiguous.
    let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
    assert!(err.is_retryable() && !err.is_ambiguous());
}

#[tokio::test]
async fn a_5xx_without_an_error_document_is_retryable_and_ambiguous_for_create() {
    let server = TestServer::start().await;
    server.script([Answer {
        status: 502,
        headers: vec![("x-acs-request-id", "HDR-RID".into())],
        body: "<html>Bad Gateway</html>".into(),
        delay: Duration::ZERO,
    }]);
    let err = server
        .client(SignatureVersion::V3)
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::UnexpectedStatus { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(err.request_id(), Some("HDR-RID"));
    assert!(err.is_retryable() && err.is_ambiguous());
}

#[tokio::test]
async fn an_internal_error_on_create_is_retryable_and_ambiguous() {
    let server = TestServer::start().await;
    server.script([Answer::error(500, "InternalError")]);
    let err = server
        .client(SignatureVersion::V3)
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
    assert!(err.is_retryable() && err.is_ambiguous());
}

#[tokio::test]
async fn an_undecodable_success_never_echoes_the_body() {
    let server = TestServer::start().await;
    server.script([Answer::json(
        200,
        serde_json::json!({"RequestId": "RID-odd", "ApplicationClientSecret": {"SecretId": 7, "ClientSecret": CLIENT_SECRET}}),
    )]);
    let err = server
        .client(SignatureVersion::V3)
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::Decode { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.request_id(), Some("RID-odd"));
    assert!(err.is_ambiguous() && !err.is_retryable());
    let text = format!("{err} {err:?}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
}

#[tokio::test]
async fn empty_ids_are_rejected_before_anything_is_sent() {
    let server = TestServer::start().await;
    let client = server.client(SignatureVersion::V3);
    let err = client.list_secrets("", "app_1").await.unwrap_err();
    assert!(err.to_string().contains("instanceId"), "{err}");
    let err = client
        .obtain_secret("idaas_1", "app_1", " ")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secretId"), "{err}");
    let err = client.create_secret("idaas_1", "", None).await.unwrap_err();
    assert!(err.to_string().contains("applicationId"), "{err}");
    assert!(server.seen().is_empty());
}

#[test]
fn a_nonsense_qps_is_rejected() {
    for qps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut config = ClientConfig::new(
            Endpoint::from_region("cn-hangzhou").unwrap(),
            Arc::new(StaticProvider::access_key(AK, SECRET)),
        );
        config.qps = Some(qps);
        let err = EiamClient::new(config).unwrap_err();
        assert!(err.to_string().contains("qps"), "{err}");
    }
}

#[test]
fn an_https_client_builds_with_the_ring_provider_and_clones_share_state() {
    let mut config = ClientConfig::new(
        Endpoint::from_region("cn-hangzhou").unwrap(),
        Arc::new(StaticProvider::access_key(AK, SECRET)),
    );
    config.qps = Some(5.0);
    let client = EiamClient::new(config).unwrap();
    let clone = client.clone();
    assert!(Arc::ptr_eq(&client.inner, &clone.inner));
    assert_eq!(
        clone.endpoint().host_header(),
        "eiam.cn-hangzhou.aliyuncs.com"
    );
    assert_eq!(clone.signature_version(), SignatureVersion::V3);
    assert_eq!(clone.credentials_kind(), "static_ak");
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<EiamClient>();
}

#[tokio::test]
async fn a_retry_after_no_number_fits_is_clamped_not_a_panic() {
    let server = TestServer::start().await;
    let mut throttled = Answer::error(400, "Throttling.User");
    throttled
        .headers
        .push((RETRY_AFTER_HEADER, "1e300".to_owned()));
    server.script([throttled]);
    let err = server
        .client(SignatureVersion::V3)
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(limits::MAX_RETRY_AFTER));
}

#[tokio::test]
async fn a_body_past_the_cap_is_abandoned_with_an_error_naming_the_endpoint_and_limit() {
    let server = TestServer::start().await;
    let mut huge = default_answer("ListApplicationClientSecrets");
    huge.body = " ".repeat(MAX_RESPONSE_BYTES + 1);
    server.script([huge]);
    let err = server
        .client(SignatureVersion::V3)
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, EiamError::ResponseTooLarge { limit, .. } if limit == MAX_RESPONSE_BYTES),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1") && text.contains("1048576"),
        "{text}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn one_deadline_bounds_the_whole_call() {
    let server = TestServer::start().await;
    let mut slow = default_answer("ListApplicationClientSecrets");
    slow.delay = Duration::from_secs(5);
    server.script([slow]);
    let client = server.client_with(
        SignatureVersion::V3,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
        |c| {
            c.read_timeout = Duration::from_secs(60);
            c.call_deadline = Duration::from_millis(200);
        },
    );
    let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
    assert!(matches!(err, EiamError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn huge_error_fields_are_cut_before_they_travel_on() {
    let server = TestServer::start().await;
    server.script([Answer::json(
        400,
        serde_json::json!({
            "Code": "X".repeat(10_000),
            "Message": "M".repeat(100_000),
            "RequestId": "R".repeat(10_000),
        }),
    )]);
    let err = server
        .client(SignatureVersion::V3)
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert!(err.code().unwrap().chars().count() <= limits::MAX_CODE_CHARS + 1);
    assert!(err.message().unwrap().chars().count() <= limits::MAX_MESSAGE_CHARS + 1);
    assert!(err.request_id().unwrap().chars().count() <= limits::MAX_REQUEST_ID_CHARS + 1);
}

#[tokio::test]
async fn a_pass_is_admitted_only_when_a_seat_and_a_token_are_near() {
    let server = TestServer::start().await;
    let mut slow = default_answer("ListApplicationClientSecrets");
    slow.delay = Duration::from_millis(1500);
    server.script([slow]);
    let client = server.client_with(
        SignatureVersion::V3,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
        |c| c.seats = Some(1),
    );
    // A call in flight holds the only seat: no pass is admitted, and an admitted one that finds the seat taken
    // when its token is due gives up unsent.
    let early = client.admit(Duration::from_millis(100)).await.unwrap();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.list_secrets("idaas_1", "app_1").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client.admit(Duration::from_millis(100)).await.unwrap_err(),
        Deferral::NoSeat
    );
    let busy = client
        .gated(early.gate(None))
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert!(matches!(busy, EiamError::Busy { .. }), "{busy:?}");
    in_flight.await.unwrap().unwrap();
    assert_eq!(server.seen().len(), 1, "the busy call sent nothing");

    // A budget of 0.01/s: the first pass gets its token at once, the next is deferred with the wait.
    let budgeted = server.client_with(
        SignatureVersion::V3,
        Arc::new(StaticProvider::access_key(AK, SECRET)),
        |c| {
            c.qps = Some(0.01);
            c.seats = Some(1);
        },
    );
    let first = budgeted.admit(Duration::from_millis(100)).await.unwrap();
    budgeted
        .gated(first.gate(None))
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap();
    match budgeted
        .admit(Duration::from_millis(100))
        .await
        .unwrap_err()
    {
        Deferral::Budget(wait) => assert!(wait > Duration::from_secs(100), "{wait:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_fenced_mutation_sends_nothing() {
    let server = TestServer::start().await;
    let fence: Fence = Arc::new(|| false);
    let gate = CallGate::fenced(fence);
    let client = server.client(SignatureVersion::V3).gated(gate);
    let err = client
        .create_secret("idaas_1", "app_1", None)
        .await
        .unwrap_err();
    assert!(matches!(err, EiamError::Fenced { .. }), "{err:?}");
    assert!(!err.is_retryable() && !err.is_ambiguous());
    // Reads are not fenced.
    client.list_secrets("idaas_1", "app_1").await.unwrap();
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_list_no_application_could_answer_is_refused() {
    let server = TestServer::start().await;
    let many: Vec<serde_json::Value> = (0..17)
        .map(|i| serde_json::json!({"SecretId": format!("sci_{i}"), "ClientId": "c", "Status": "enabled"}))
        .collect();
    server.script([Answer::json(
        200,
        serde_json::json!({"RequestId": "RID", "ApplicationClientSecrets": many}),
    )]);
    let err = server
        .client(SignatureVersion::V3)
        .list_secrets("idaas_1", "app_1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EiamError::Decode { reason, .. } if reason.contains("17 secrets")),
        "{err:?}"
    );
}
