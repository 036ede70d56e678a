//! The EIAM client logs every call (action, secret id, RequestId, duration) and never a secret value.
//!
//! A separate test binary because it installs a process-wide tracing subscriber: with a thread-scoped one,
//! tracing's per-callsite interest cache races with tests running in parallel and events go missing.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use eiam_operator::eiam::{ClientConfig, EiamClient, Endpoint, SignatureVersion, StaticProvider};

const CLIENT_SECRET: &str = "CSEHDcHcrUKHw1CuxkJEHPveWRXBGqVqRsxxxx";
const AK_SECRET: &str = "ak-secret-value-123";
const TOKEN: &str = "sts-token-value-456";

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Answers by action (V1 query `Action` or V3 `x-acs-action`), without verifying signatures: this test is about
/// logging, the signature tests live next to the client.
async fn canned(RawQuery(query): RawQuery, headers: HeaderMap) -> axum::response::Response {
    let query = query.unwrap_or_default();
    let action = headers
        .get("x-acs-action")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let secret = serde_json::json!({"SecretId": "sci_42", "ClientSecret": CLIENT_SECRET, "Status": "enabled"});
    match action.as_str() {
        "CreateApplicationClientSecret" => axum::Json(serde_json::json!({
            "RequestId": "RID-create", "ApplicationClientSecret": {"ClientId": "app_1", "SecretId": "sci_42", "ClientSecret": CLIENT_SECRET}
        }))
        .into_response(),
        "ObtainApplicationClientSecret" => {
            axum::Json(serde_json::json!({"RequestId": "RID-obtain", "ApplicationClientSecret": secret})).into_response()
        }
        _ => (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"Code": "Throttling.User", "Message": "slow down", "RequestId": "RID-throttled"})),
        )
            .into_response(),
    }
}

#[tokio::test]
async fn calls_are_logged_with_action_and_request_id_but_never_a_secret() {
    let logs = LogBuffer::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(canned))
            .await
            .unwrap()
    });
    let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();

    for version in [SignatureVersion::V1, SignatureVersion::V3] {
        let mut config = ClientConfig::new(
            endpoint.clone(),
            Arc::new(StaticProvider::sts("AKID", AK_SECRET, TOKEN)),
        );
        config.signature_version = version;
        let client = EiamClient::new(config).unwrap();
        client
            .create_secret("idaas_1", "app_1", None)
            .await
            .unwrap();
        client
            .obtain_secret("idaas_1", "app_1", "sci_42")
            .await
            .unwrap();
        let err = client.list_secrets("idaas_1", "app_1").await.unwrap_err();
        assert_eq!(err.code(), Some("Throttling.User"));
    }

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let client_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("eiam_operator::eiam::client"))
        .collect();
    let has = |needles: &[&str]| {
        client_lines
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&["CreateApplicationClientSecret", "RID-create", "duration_ms"]),
        "{text}"
    );
    assert!(
        has(&[
            "CreateApplicationClientSecret",
            "secret_id=sci_42",
            "RID-create"
        ]),
        "{text}"
    );
    assert!(
        has(&[
            "ObtainApplicationClientSecret",
            "sci_42",
            "RID-obtain",
            "duration_ms"
        ]),
        "{text}"
    );
    assert!(
        has(&[
            "ListApplicationClientSecrets",
            "Throttling.User",
            "RID-throttled"
        ]),
        "{text}"
    );
    for secret in [CLIENT_SECRET, AK_SECRET, TOKEN] {
        assert!(!text.contains(secret), "log leaked a secret: {text}");
    }
}
