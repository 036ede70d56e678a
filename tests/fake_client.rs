//! The operator's own `EiamClient` against the fake EIAM: all seven actions in both signature versions with
//! AccessKey and STS credentials, and the client's error classification for what the fake injects.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::sync::Arc;
use std::time::Duration;

use eiam_operator::eiam::{
    ClientConfig, CredentialProvider, EiamClient, Endpoint, SignatureVersion, StaticProvider,
};
use eiam_operator::fake::{
    AccessKeyConfig, FakeConfig, FakeEiam, FakeHandle, FaultPlan, MIN_VALIDITY_MS,
};

const INSTANCE: &str = "idaas_client";
const APP: &str = "app_client";

async fn start() -> FakeHandle {
    let mut config = FakeConfig::default();
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
