//! The operator's own `EiamClient` against the fake EIAM: all seven actions in both signature versions with
//! AccessKey and STS credentials, and the client's error classification for what the fake injects.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::sync::Arc;
use std::time::Duration;

use eiam_operator::eiam::{
    ClientConfig, CredentialProvider, EiamClient, EiamError, Endpoint, SignatureVersion,
    StaticProvider,
};
use eiam_operator::fake::{
    AccessKeyConfig, FakeConfig, FakeEiam, FakeHandle, FaultPlan, MIN_VALIDITY_MS, TlsFiles,
};

#[path = "common/tls.rs"]
mod tls;

const INSTANCE: &str = "idaas_client";
const APP: &str = "app_client";

async fn start() -> FakeHandle {
    start_with(FakeConfig::default()).await
}

async fn start_with(mut config: FakeConfig) -> FakeHandle {
    config.access_keys.push(
        AccessKeyConfig::parse_flag("--access-key", "LTAIclient:client-secret", false).unwrap(),
    );
    config.access_keys.push(
        AccessKeyConfig::parse_flag("--sts-key", "STS.client:sts-secret:sts+token/=", true)
            .unwrap(),
    );
    config
        .add_application_flag(&format!("{INSTANCE}/{APP}"))
        .unwrap();
    FakeEiam::start(config).await.unwrap()
}

fn client(fake: &FakeHandle, version: SignatureVersion, credentials: StaticProvider) -> EiamClient {
    let endpoint = Endpoint::parse_allowing_http(&fake.url()).unwrap();
    let credentials: Arc<dyn CredentialProvider> = Arc::new(credentials);
    let mut config = ClientConfig::new(endpoint, credentials);
    config.signature_version = version;
    config.read_timeout = Duration::from_secs(5);
    EiamClient::new(config).unwrap()
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn the_client_performs_all_seven_actions_in_every_mode() {
    let fake = start().await;
    let modes = [
        (
            "v3/ak",
            SignatureVersion::V3,
            StaticProvider::access_key("LTAIclient", "client-secret"),
        ),
        (
            "v1/ak",
            SignatureVersion::V1,
            StaticProvider::access_key("LTAIclient", "client-secret"),
        ),
        (
            "v3/sts",
            SignatureVersion::V3,
            StaticProvider::sts("STS.client", "sts-secret", "sts+token/="),
        ),
        (
            "v1/sts",
            SignatureVersion::V1,
            StaticProvider::sts("STS.client", "sts-secret", "sts+token/="),
        ),
    ];
    for (mode, version, credentials) in modes {
        let c = client(&fake, version, credentials);
        let expiry = now_ms() + 2 * MIN_VALIDITY_MS;
        let created = c
            .create_secret(INSTANCE, APP, Some(expiry))
            .await
            .expect(mode);
        let id = created.application_client_secret.secret_id.clone();
        let listed = c.list_secrets(INSTANCE, APP).await.expect(mode);
        assert_eq!(listed.total_count, 1, "{mode}");
        assert_ne!(
            listed.application_client_secrets[0].client_secret,
            created.application_client_secret.client_secret,
            "{mode}: masked"
        );
        let obtained = c.obtain_secret(INSTANCE, APP, &id).await.expect(mode);
        assert_eq!(
            obtained.application_client_secret.client_secret,
            created.application_client_secret.client_secret,
            "{mode}"
        );
        assert_eq!(
            obtained.application_client_secret.expires_at_ms(),
            Some(expiry)
        );
        c.disable_secret(INSTANCE, APP, &id).await.expect(mode);
        assert!(
            !c.obtain_secret(INSTANCE, APP, &id)
                .await
                .unwrap()
                .application_client_secret
                .is_enabled()
        );
        c.enable_secret(INSTANCE, APP, &id).await.expect(mode);
        c.update_expiration_time(INSTANCE, APP, &id, expiry + MIN_VALIDITY_MS)
            .await
            .expect(mode);
        c.disable_secret(INSTANCE, APP, &id).await.expect(mode);
        c.delete_secret(INSTANCE, APP, &id).await.expect(mode);
        assert_eq!(
            c.list_secrets(INSTANCE, APP).await.unwrap().total_count,
            0,
            "{mode}"
        );
    }
    let versions: Vec<String> = fake
        .calls()
        .iter()
        .map(|c| c.signature_version.clone())
        .collect();
    assert!(versions.iter().any(|v| v == "v1") && versions.iter().any(|v| v == "v3"));
    assert!(
        fake.calls().iter().all(|c| c.outcome == "OK"),
        "{:?}",
        fake.calls()
    );
}

#[tokio::test]
async fn the_client_classifies_what_the_fake_answers() {
    let fake = start().await;
    let c = client(
        &fake,
        SignatureVersion::V3,
        StaticProvider::access_key("LTAIclient", "client-secret"),
    );

    let err = c
        .obtain_secret(INSTANCE, APP, "sci_missing")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.code(), Some("EntityNotExists.ApplicationClientSecret"));
    assert!(err.request_id().is_some_and(|id| id.len() == 36), "{err}");

    let err = c
        .create_secret(INSTANCE, APP, Some(now_ms() + 1000))
        .await
        .unwrap_err();
    assert!(err.is_invalid_parameter(), "{err}");

    c.create_secret(INSTANCE, APP, None).await.unwrap();
    c.create_secret(INSTANCE, APP, None).await.unwrap();
    let err = c.create_secret(INSTANCE, APP, None).await.unwrap_err();
    assert!(err.is_quota_exceeded(), "{err}");

    let plan: FaultPlan =
        serde_json::from_str(r#"{"rules":[{"kind":"throttle","next":1,"retryAfterMs":1500}]}"#)
            .unwrap();
    fake.set_faults(plan).unwrap();
    let err = c.list_secrets(INSTANCE, APP).await.unwrap_err();
    assert!(err.is_throttled() && err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));

    let plan: FaultPlan =
        serde_json::from_str(r#"{"rules":[{"kind":"serverError","next":1}]}"#).unwrap();
    fake.set_faults(plan).unwrap();
    let err = c.list_secrets(INSTANCE, APP).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.http_status(), Some(503));

    let plan: FaultPlan = serde_json::from_str(
        r#"{"rules":[{"kind":"dropConnection","when":"after","action":"DeleteApplicationClientSecret","next":1}]}"#,
    )
    .unwrap();
    fake.set_faults(plan).unwrap();
    let id = c
        .list_secrets(INSTANCE, APP)
        .await
        .unwrap()
        .application_client_secrets[0]
        .secret_id
        .clone();
    let err = c.delete_secret(INSTANCE, APP, &id).await.unwrap_err();
    assert!(
        err.is_ambiguous(),
        "a dropped connection is ambiguous: {err}"
    );
    assert_eq!(
        c.list_secrets(INSTANCE, APP).await.unwrap().total_count,
        1,
        "applied anyway"
    );

    let wrong = client(
        &fake,
        SignatureVersion::V1,
        StaticProvider::access_key("LTAIclient", "wrong"),
    );
    let err = wrong.list_secrets(INSTANCE, APP).await.unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn over_https_the_client_trusts_the_system_roots_plus_a_ca_bundle() {
    let pki = tls::test_pki(&["localhost"]);
    let fake = start_with(FakeConfig {
        tls: Some(TlsFiles {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
        }),
        ..FakeConfig::default()
    })
    .await;
    assert!(fake.url().starts_with("https://"), "{}", fake.url());
    let url = format!("https://localhost:{}", fake.addr().port());
    let client_with = |ca_bundle: Option<Vec<u8>>| {
        let credentials: Arc<dyn CredentialProvider> =
            Arc::new(StaticProvider::access_key("LTAIclient", "client-secret"));
        let mut config = ClientConfig::new(Endpoint::parse(&url).unwrap(), credentials);
        config.ca_bundle = ca_bundle;
        EiamClient::new(config).map_err(|e| e.to_string())
    };

    let untrusting = client_with(None).unwrap();
    let refused = untrusting.list_secrets(INSTANCE, APP).await.unwrap_err();
    assert!(
        matches!(refused, EiamError::Transport { sent: false, .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("spec.caBundle"), "{refused}");
    assert!(
        fake.calls().is_empty(),
        "no request got past the TLS handshake"
    );

    let trusting = client_with(Some(pki.ca_pem_text().into_bytes())).unwrap();
    let listed = trusting.list_secrets(INSTANCE, APP).await.unwrap();
    assert!(listed.application_client_secrets.is_empty());

    let not_pem = client_with(Some(b"MIIB not PEM".to_vec())).unwrap_err();
    assert!(
        not_pem.contains("invalid caBundle") && not_pem.contains("PEM"),
        "{not_pem}"
    );
}
