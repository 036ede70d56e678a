//! The EIAM layer's reports reach the metrics, in-process and over real HTTP: the real client against the fake
//! EIAM, RRSA credentials from its STS stand-in and ECS RAM-role credentials from its metadata stand-in.

use std::sync::{Arc, OnceLock};

use eiam_operator::eiam::credentials::{
    EcsRamRoleConfig, EcsRamRoleProvider, RrsaConfig, RrsaProvider,
};
use eiam_operator::eiam::{ClientConfig, CredentialProvider, EiamClient, Endpoint};
use eiam_operator::fake::{FakeConfig, FakeEiam, FakeHandle, StandInSettings};
use eiam_operator::metrics::{Format, Metrics};
use serde_json::json;

use crate::support::sample;

const INSTANCE: &str = "idaas_observed";
const APP: &str = "app_observed";
const ROLE: &str = "acs:ram::1:role/eiam-operator";

/// The process-wide observer of this test binary (the EIAM layer takes one per process, like the operator).
fn metrics() -> &'static Arc<Metrics> {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    METRICS.get_or_init(|| {
        let metrics = Arc::new(Metrics::new());
        assert!(
            eiam_operator::eiam::observe::install(metrics.eiam.clone()),
            "another observer was installed first"
        );
        metrics
    })
}

async fn fake_with_stand_ins() -> FakeHandle {
    let mut config = FakeConfig::default();
    config
        .add_application_flag(&format!("{INSTANCE}/{APP}"))
        .expect("application");
    let mut sts = StandInSettings::listening_on("127.0.0.1:0".parse().expect("address"));
    sts.role_arn = Some(ROLE.into());
    config.sts = Some(sts);
    config.metadata = Some(StandInSettings::listening_on(
        "127.0.0.1:0".parse().expect("address"),
    ));
    FakeEiam::start(config).await.expect("start the fake")
}

fn client(fake: &FakeHandle, credentials: Arc<dyn CredentialProvider>) -> EiamClient {
    let endpoint = Endpoint::parse_allowing_http(&fake.url()).expect("endpoint");
    EiamClient::new(ClientConfig::new(endpoint, credentials)).expect("client")
}

fn rrsa(
    fake: &FakeHandle,
    role: &str,
    token_file: &std::path::Path,
) -> Arc<dyn CredentialProvider> {
    let mut config = RrsaConfig::new(role, "acs:ram::1:oidc-provider/ack", token_file);
    config.sts_endpoint = Some(
        Endpoint::parse_allowing_http(&fake.sts_url().expect("STS stand-in")).expect("endpoint"),
    );
    Arc::new(RrsaProvider::new(config).expect("RRSA provider"))
}

fn value(series: &str) -> f64 {
    let text = metrics()
        .encode(Format::PrometheusText)
        .expect("encode metrics");
    sample(&text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eiam_calls_throttling_and_credential_refreshes_are_counted() {
    eiam_operator::eiam::install_crypto_provider();
    let metrics = metrics();
    let fake = fake_with_stand_ins().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "header.payload.signature").expect("token file");
    let refreshes = |provider: &str, outcome: &str| {
        value(&format!(
            "eiam_operator_credential_refreshes_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"
        ))
    };
    let calls = |action: &str, outcome: &str| {
        value(&format!(
            "eiam_operator_eiam_calls_total{{action=\"{action}\",outcome=\"{outcome}\"}}"
        ))
    };
    let before = (
        refreshes("rrsa", "success"),
        refreshes("rrsa", "error"),
        refreshes("ecs_ram_role", "success"),
        calls("CreateApplicationClientSecret", "ok"),
        calls("ListApplicationClientSecrets", "Throttling.User"),
    );

    // RRSA: one STS fetch serves both calls.
    let with_rrsa = client(&fake, rrsa(&fake, ROLE, &token_file));
    with_rrsa
        .create_secret(INSTANCE, APP, None)
        .await
        .expect("create");
    with_rrsa.list_secrets(INSTANCE, APP).await.expect("list");
    // A role STS refuses: the refresh fails and nothing is sent to EIAM.
    let refused = client(&fake, rrsa(&fake, "acs:ram::1:role/other", &token_file));
    assert!(refused.list_secrets(INSTANCE, APP).await.is_err());
    // The ECS RAM role.
    let with_ecs = client(
        &fake,
        Arc::new(
            EcsRamRoleProvider::new(EcsRamRoleConfig {
                metadata_endpoint: Some(
                    Endpoint::parse_allowing_http(&fake.metadata_url().expect("metadata"))
                        .expect("endpoint"),
                ),
                ..EcsRamRoleConfig::default()
            })
            .expect("ECS provider"),
        ),
    );
    fake.set_faults(
        serde_json::from_value(json!({ "rules": [{
            "kind": "throttle", "code": "Throttling.User",
            "action": "ListApplicationClientSecrets", "next": 1
        }]}))
        .expect("fault plan"),
    )
    .expect("faults");
    assert!(with_ecs.list_secrets(INSTANCE, APP).await.is_err());

    let after = (
        refreshes("rrsa", "success"),
        refreshes("rrsa", "error"),
        refreshes("ecs_ram_role", "success"),
        calls("CreateApplicationClientSecret", "ok"),
        calls("ListApplicationClientSecrets", "Throttling.User"),
    );
    assert_eq!(after.0 - before.0, 1.0, "one RRSA fetch, then the cache");
    assert_eq!(after.1 - before.1, 1.0, "the refused role");
    assert_eq!(after.2 - before.2, 1.0, "one metadata fetch");
    assert_eq!(after.3 - before.3, 1.0, "one Create");
    assert_eq!(after.4 - before.4, 1.0, "one throttled List");
    assert!(
        value("eiam_operator_eiam_throttled_total{action=\"ListApplicationClientSecrets\"}") >= 1.0
    );
    assert_eq!(metrics.reconcile.in_flight(), 0);
}
