//! The RRSA and ECS RAM role providers against the STS and metadata stand-ins on 127.0.0.1:0, with a shared fixed
//! clock so that refresh timing is tested by moving time rather than by sleeping.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::collections::HashMap;
use std::sync::Arc;

use eiam_operator::eiam::Endpoint;
use eiam_operator::eiam::clock::FixedClock;
use eiam_operator::eiam::credentials::env::{
    ENV_OIDC_PROVIDER_ARN, ENV_OIDC_TOKEN_FILE, ENV_ROLE_ARN, ENV_ROLE_SESSION_NAME,
};
use eiam_operator::eiam::credentials::{
    ChainConfig, CredentialError, CredentialProvider, EcsRamRoleConfig, EcsRamRoleProvider,
    RrsaConfig, RrsaProvider, default_chain,
};
use eiam_operator::fake::metadata::{MetadataConfig, MetadataStandIn};
use eiam_operator::fake::sts::{StsConfig, StsStandIn};
use jiff::{SignedDuration, Timestamp};

const ROLE_ARN: &str = "acs:ram::1234567890:role/eiam-operator";
const PROVIDER_ARN: &str = "acs:ram::1234567890:oidc-provider/ack-rrsa-c1";
const TOKEN_A: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZWlhbTpvcGVyYXRvciIsImF1ZCI6WyJzdHMuYWxpeXVuY3MuY29tIl0sImlzcyI6Imh0dHBzOi8vb2lkYy5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMDAwLCJpYXQiOjE2OTk5OTY0MDB9.sig-a";
const TOKEN_B: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb3RhdGVkIn0.sig-b";

fn t0() -> Timestamp {
    "2025-01-01T00:00:00Z".parse().unwrap()
}

struct Rrsa {
    sts: StsStandIn,
    _server: eiam_operator::fake::sts::StandInServer,
    clock: Arc<FixedClock>,
    token_dir: tempfile::TempDir,
    endpoint: Endpoint,
}

impl Rrsa {
    async fn start() -> Self {
        let clock = Arc::new(FixedClock::new(t0()));
        let sts = StsStandIn::new(StsConfig {
            unique_per_call: true,
            role_arn: Some(ROLE_ARN.into()),
            oidc_provider_arn: Some(PROVIDER_ARN.into()),
            clock: clock.clone(),
            ..StsConfig::default()
        });
        let server = sts.start().await.unwrap();
        let token_dir = tempfile::tempdir().unwrap();
        std::fs::write(token_dir.path().join("token"), format!("{TOKEN_A}\n")).unwrap();
        let endpoint = Endpoint::parse(&server.url()).unwrap();
        Self {
            sts,
            _server: server,
            clock,
            token_dir,
            endpoint,
        }
    }

    fn token_file(&self) -> std::path::PathBuf {
        self.token_dir.path().join("token")
    }

    fn provider(&self, role_arn: &str) -> RrsaProvider {
        let mut config = RrsaConfig::new(role_arn, PROVIDER_ARN, self.token_file());
        config.sts_endpoint = Some(self.endpoint.clone());
        config.role_session_name = "eiam-operator-test".into();
        config.clock = self.clock.clone();
        RrsaProvider::new(config).unwrap()
    }
}

#[tokio::test]
async fn rrsa_sends_the_documented_unsigned_request_and_returns_sts_credentials() {
    let rrsa = Rrsa::start().await;
    let provider = rrsa.provider(ROLE_ARN);
    let c = provider.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "STS.FakeAccessKeyId-1");
    assert_eq!(c.access_key_secret.expose(), "fake-sts-access-key-secret-1");
    assert_eq!(
        c.security_token.as_ref().unwrap().expose(),
        "fake-sts-security-token-1"
    );
    assert_eq!(provider.kind(), "rrsa");
    let debug = format!("{c:?} {provider:?}");
    assert!(
        !debug.contains("fake-sts-access-key-secret") && !debug.contains("fake-sts-security-token"),
        "{debug}"
    );

    let calls = rrsa.sts.calls();
    assert_eq!(calls.len(), 1);
    let p = &calls[0].params;
    assert_eq!(calls[0].status, 200);
    assert_eq!(p["Action"], "AssumeRoleWithOIDC");
    assert_eq!(p["Format"], "JSON");
    assert_eq!(p["Version"], "2015-04-01");
    assert_eq!(p["DurationSeconds"], "3600");
    assert_eq!(p["RoleArn"], ROLE_ARN);
    assert_eq!(p["OIDCProviderArn"], PROVIDER_ARN);
    assert_eq!(p["OIDCToken"], TOKEN_A, "the token file's content, trimmed");
    assert_eq!(p["RoleSessionName"], "eiam-operator-test");
    assert_eq!(p["Timestamp"], "2025-01-01T00:00:00Z");
    for signed_only in [
        "AccessKeyId",
        "Signature",
        "SignatureNonce",
        "SecurityToken",
    ] {
        assert!(
            !p.contains_key(signed_only),
            "AssumeRoleWithOIDC is anonymous: {signed_only} sent"
        );
    }
}

#[tokio::test]
async fn rrsa_caches_until_fifteen_minutes_before_expiry_and_rereads_the_token_file() {
    let rrsa = Rrsa::start().await;
    let provider = rrsa.provider(ROLE_ARN);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-1"
    );
    // The kubelet rotates the projected token; the cached credentials are still used.
    std::fs::write(rrsa.token_file(), TOKEN_B).unwrap();
    rrsa.clock
        .set(t0() + SignedDuration::from_secs(44 * 60 + 59));
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-1"
    );
    assert_eq!(rrsa.sts.call_count(), 1);
    // Expiration (1 h) minus 15 min: refresh, with the new token.
    rrsa.clock.set(t0() + SignedDuration::from_mins(45));
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-2"
    );
    assert_eq!(
        rrsa.sts.received_tokens(),
        vec![TOKEN_A.to_owned(), TOKEN_B.to_owned()]
    );
}

#[tokio::test]
async fn rrsa_invalidate_fetches_new_credentials_on_the_next_call() {
    let rrsa = Rrsa::start().await;
    let provider = rrsa.provider(ROLE_ARN);
    provider.credentials().await.unwrap();
    assert!(provider.invalidate());
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-2"
    );
}

#[tokio::test]
async fn rrsa_reports_sts_errors_with_code_and_request_id() {
    let rrsa = Rrsa::start().await;
    let err = rrsa
        .provider("acs:ram::1234567890:role/other")
        .credentials()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, CredentialError::Rejected { status: 404, code, request_id, .. } if code == "EntityNotExist.Role" && !request_id.is_empty()),
        "{err:?}"
    );
    assert!(
        text.contains("EntityNotExist.Role") && text.contains("RequestId"),
        "{text}"
    );
    assert!(
        !text.contains(TOKEN_A),
        "the URL query (with the OIDC token) must not be shown: {text}"
    );
    assert!(!err.is_retryable());

    rrsa.sts.fail_next(1, 503, "ServiceUnavailable");
    let err = rrsa.provider(ROLE_ARN).credentials().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn rrsa_keeps_unexpired_credentials_when_a_refresh_fails() {
    let rrsa = Rrsa::start().await;
    let provider = rrsa.provider(ROLE_ARN);
    provider.credentials().await.unwrap();
    rrsa.clock.set(t0() + SignedDuration::from_mins(50));
    rrsa.sts.fail_next(1, 500, "InternalError");
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-1"
    );
    rrsa.clock.set(t0() + SignedDuration::from_mins(60));
    rrsa.sts.fail_next(1, 500, "InternalError");
    assert!(
        provider.credentials().await.is_err(),
        "expired credentials are never served"
    );
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-4"
    );
}

#[tokio::test]
async fn rrsa_names_a_missing_token_file() {
    let rrsa = Rrsa::start().await;
    std::fs::remove_file(rrsa.token_file()).unwrap();
    let err = rrsa.provider(ROLE_ARN).credentials().await.unwrap_err();
    assert!(matches!(err, CredentialError::TokenFile { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&rrsa.token_file().display().to_string()),
        "{err}"
    );
    assert_eq!(rrsa.sts.call_count(), 0);
}

#[tokio::test]
async fn the_env_chain_reaches_sts_through_rrsa() {
    let rrsa = Rrsa::start().await;
    let env: HashMap<String, String> = [
        (ENV_ROLE_ARN, ROLE_ARN.to_owned()),
        (ENV_OIDC_PROVIDER_ARN, PROVIDER_ARN.to_owned()),
        (ENV_OIDC_TOKEN_FILE, rrsa.token_file().display().to_string()),
        (ENV_ROLE_SESSION_NAME, "from-env".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut config = ChainConfig::new(env);
    config.sts_endpoint = Some(rrsa.endpoint.clone());
    config.clock = rrsa.clock.clone();
    let provider = default_chain(config).unwrap();
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeAccessKeyId-1"
    );
    assert_eq!(rrsa.sts.calls()[0].params["RoleSessionName"], "from-env");
}

#[tokio::test]
async fn the_sts_stand_in_rejects_incomplete_requests() {
    let rrsa = Rrsa::start().await;
    let http = reqwest::Client::new();
    let base = rrsa.endpoint.to_string();
    let cases = [
        (
            "Action=AssumeRoleWithOIDC&Version=2015-04-01&OIDCProviderArn=p&OIDCToken=abcd",
            "MissingRoleArn",
        ),
        (
            "Action=AssumeRoleWithOIDC&Version=2015-04-01&RoleArn=r&OIDCToken=abcd",
            "MissingOIDCProviderArn",
        ),
        (
            "Action=AssumeRoleWithOIDC&Version=2015-04-01&RoleArn=r&OIDCProviderArn=p",
            "MissingOIDCToken",
        ),
        (
            "Action=AssumeRoleWithOIDC&Version=2015-04-01&RoleArn=r&OIDCProviderArn=p&OIDCToken=abc",
            "InvalidParameter.OIDCToken",
        ),
        (
            "Action=AssumeRoleWithOIDC&Version=2015-04-01&RoleArn=r&OIDCProviderArn=p&OIDCToken=abcd&DurationSeconds=899",
            "InvalidParameter.DurationSeconds",
        ),
        (
            "Action=AssumeRoleWithOIDC&Version=2014-01-01&RoleArn=r&OIDCProviderArn=p&OIDCToken=abcd",
            "InvalidVersion",
        ),
        (
            "Action=AssumeRole&Version=2015-04-01",
            "InvalidAction.NotFound",
        ),
    ];
    for (query, code) in cases {
        let response = http.get(format!("{base}/?{query}")).send().await.unwrap();
        assert!(response.status().is_client_error(), "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["Code"], code, "{query}");
        assert!(body["RequestId"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ECS RAM role

struct Ecs {
    metadata: MetadataStandIn,
    _server: eiam_operator::fake::sts::StandInServer,
    clock: Arc<FixedClock>,
    endpoint: Endpoint,
}

impl Ecs {
    async fn start(change: impl FnOnce(&mut MetadataConfig)) -> Self {
        let clock = Arc::new(FixedClock::new(t0()));
        let mut config = MetadataConfig {
            unique_per_call: true,
            clock: clock.clone(),
            ..MetadataConfig::default()
        };
        change(&mut config);
        let metadata = MetadataStandIn::new(config);
        let server = metadata.start().await.unwrap();
        let endpoint = Endpoint::parse(&server.url()).unwrap();
        Self {
            metadata,
            _server: server,
            clock,
            endpoint,
        }
    }

    fn provider(&self, change: impl FnOnce(&mut EcsRamRoleConfig)) -> EcsRamRoleProvider {
        let mut config = EcsRamRoleConfig {
            metadata_endpoint: Some(self.endpoint.clone()),
            clock: self.clock.clone(),
            ..EcsRamRoleConfig::default()
        };
        change(&mut config);
        EcsRamRoleProvider::new(config).unwrap()
    }
}

#[tokio::test]
async fn ecs_uses_an_imdsv2_token_discovers_the_role_and_reads_its_credentials() {
    let ecs = Ecs::start(|_| {}).await;
    let provider = ecs.provider(|_| {});
    let c = provider.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "STS.FakeEcsAccessKeyId-1");
    assert_eq!(c.access_key_secret.expose(), "fake-ecs-access-key-secret-1");
    assert_eq!(
        c.security_token.as_ref().unwrap().expose(),
        "fake-ecs-security-token-1"
    );
    assert_eq!(provider.kind(), "ecs_ram_role");
    let counts = ecs.metadata.counts();
    assert_eq!(
        (
            counts.token,
            counts.role_listing,
            counts.credentials,
            counts.unauthorized
        ),
        (1, 1, 1, 0)
    );
}

#[tokio::test]
async fn the_metadata_stand_in_requires_the_token_header_and_the_ttl_header() {
    let ecs = Ecs::start(|_| {}).await;
    let http = reqwest::Client::new();
    let base = ecs.endpoint.to_string();
    let listing = format!("{base}/latest/meta-data/ram/security-credentials/");
    assert_eq!(http.get(&listing).send().await.unwrap().status(), 401);
    let bogus = http
        .get(&listing)
        .header("X-aliyun-ecs-metadata-token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), 401);
    let no_ttl = http
        .put(format!("{base}/latest/api/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_ttl.status(), 400);
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aliyun-ecs-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ok = http
        .get(&listing)
        .header("X-aliyun-ecs-metadata-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "EcsRamRoleForEiam");
    // Tokens expire.
    ecs.clock.set(t0() + SignedDuration::from_secs(61));
    let expired = http
        .get(&listing)
        .header("X-aliyun-ecs-metadata-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
}

#[tokio::test]
async fn ecs_credentials_are_cached_until_fifteen_minutes_before_expiry() {
    let ecs = Ecs::start(|_| {}).await;
    let provider = ecs.provider(|_| {});
    provider.credentials().await.unwrap();
    ecs.clock.set(
        t0() + SignedDuration::from_hours(6)
            - SignedDuration::from_mins(15)
            - SignedDuration::from_secs(1),
    );
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeEcsAccessKeyId-1"
    );
    assert_eq!(ecs.metadata.counts().credentials, 1);
    ecs.clock
        .set(t0() + SignedDuration::from_hours(6) - SignedDuration::from_mins(15));
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeEcsAccessKeyId-2"
    );
    assert_eq!(
        ecs.metadata.counts().token,
        2,
        "a fresh IMDSv2 token per refresh"
    );
}

#[tokio::test]
async fn a_configured_role_name_skips_discovery() {
    let ecs = Ecs::start(|_| {}).await;
    ecs.provider(|c| c.role_name = Some("EcsRamRoleForEiam".into()))
        .credentials()
        .await
        .unwrap();
    assert_eq!(ecs.metadata.counts().role_listing, 0);
    let err = ecs
        .provider(|c| c.role_name = Some("OtherRole".into()))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn without_imdsv2_the_provider_falls_back_to_imdsv1_unless_forbidden() {
    let ecs = Ecs::start(|c| {
        c.token_endpoint_enabled = false;
        c.require_token = false;
    })
    .await;
    let c = ecs.provider(|_| {}).credentials().await.unwrap();
    assert_eq!(c.access_key_id, "STS.FakeEcsAccessKeyId-1");
    let err = ecs
        .provider(|c| c.imdsv1_disabled = true)
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/latest/api/token"), "{err}");
}

#[tokio::test]
async fn an_instance_without_a_role_is_a_clear_error() {
    let ecs = Ecs::start(|c| c.role_name = None).await;
    let err = ecs.provider(|_| {}).credentials().await.unwrap_err();
    assert!(err.to_string().contains("security-credentials"), "{err}");
}

#[tokio::test]
async fn ecs_metadata_failures_are_retryable_and_the_stale_value_is_kept() {
    let ecs = Ecs::start(|_| {}).await;
    let provider = ecs.provider(|_| {});
    provider.credentials().await.unwrap();
    ecs.clock
        .set(t0() + SignedDuration::from_hours(5) + SignedDuration::from_mins(50));
    ecs.metadata.fail_next(1, 500);
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        "STS.FakeEcsAccessKeyId-1"
    );

    let fresh = ecs.provider(|_| {});
    ecs.metadata.fail_next(1, 503);
    let err = fresh.credentials().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn secrets_in_stand_in_configs_are_redacted() {
    let debug = format!("{:?} {:?}", StsConfig::default(), MetadataConfig::default());
    assert!(
        !debug.contains("fake-sts-access-key-secret") && !debug.contains("fake-ecs-security-token"),
        "{debug}"
    );
}
