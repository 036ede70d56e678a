//! The fake EIAM serves the STS and ECS metadata stand-ins next to itself, and accepts the credentials they
//! issue: an operator using RRSA or an ECS RAM role can run end to end against the fake.

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

use std::sync::Arc;

use eiam_operator::eiam::credentials::{
    EcsRamRoleConfig, EcsRamRoleProvider, RrsaConfig, RrsaProvider,
};
use eiam_operator::eiam::{ClientConfig, CredentialProvider, EiamClient, Endpoint};
use eiam_operator::fake::{FakeConfig, FakeEiam, FakeHandle, StandInSettings};

const INSTANCE: &str = "idaas_creds";
const APP: &str = "app_creds";

async fn start() -> FakeHandle {
    let mut config = FakeConfig::default();
    config
        .add_application_flag(&format!("{INSTANCE}/{APP}"))
        .unwrap();
    let mut sts = StandInSettings::listening_on("127.0.0.1:0".parse().unwrap());
    sts.role_arn = Some("acs:ram::1:role/eiam-operator".into());
    config.sts = Some(sts);
    config.metadata = Some(StandInSettings::listening_on(
        "127.0.0.1:0".parse().unwrap(),
    ));
    FakeEiam::start(config).await.unwrap()
}

fn client(fake: &FakeHandle, credentials: Arc<dyn CredentialProvider>) -> EiamClient {
    let endpoint = Endpoint::parse_allowing_http(&fake.url()).unwrap();
    EiamClient::new(ClientConfig::new(endpoint, credentials)).unwrap()
}

#[tokio::test]
async fn rrsa_credentials_from_the_sts_stand_in_are_accepted() {
    let fake = start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "header.payload.signature").unwrap();
    let mut rrsa = RrsaConfig::new(
        "acs:ram::1:role/eiam-operator",
        "acs:ram::1:oidc-provider/ack",
        &token_file,
    );
    rrsa.sts_endpoint = Some(Endpoint::parse_allowing_http(&fake.sts_url().unwrap()).unwrap());
    let provider: Arc<dyn CredentialProvider> = Arc::new(RrsaProvider::new(rrsa).unwrap());
    let c = client(&fake, provider);
    let created = c.create_secret(INSTANCE, APP, None).await.unwrap();
    assert_eq!(c.list_secrets(INSTANCE, APP).await.unwrap().total_count, 1);
    assert!(
        created
            .application_client_secret
            .secret_id
            .starts_with("sci_")
    );
    assert_eq!(
        fake.sts().unwrap().call_count(),
        1,
        "cached after the first call"
    );
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.access_key_id.as_deref() == Some("STS.FakeAccessKeyId"))
    );

    // A role the stand-in does not know is refused by STS, so nothing reaches EIAM.
    let mut wrong = RrsaConfig::new(
        "acs:ram::1:role/other",
        "acs:ram::1:oidc-provider/ack",
        &token_file,
    );
    wrong.sts_endpoint = Some(Endpoint::parse_allowing_http(&fake.sts_url().unwrap()).unwrap());
    let c = client(&fake, Arc::new(RrsaProvider::new(wrong).unwrap()));
    assert!(c.list_secrets(INSTANCE, APP).await.is_err());
    assert_eq!(fake.calls().len(), calls.len());
}

#[tokio::test]
async fn ecs_ram_role_credentials_from_the_metadata_stand_in_are_accepted() {
    let fake = start().await;
    let config = EcsRamRoleConfig {
        metadata_endpoint: Some(
            Endpoint::parse_allowing_http(&fake.metadata_url().unwrap()).unwrap(),
        ),
        ..EcsRamRoleConfig::default()
    };
    let c = client(&fake, Arc::new(EcsRamRoleProvider::new(config).unwrap()));
    assert_eq!(c.list_secrets(INSTANCE, APP).await.unwrap().total_count, 0);
    let counts = fake.metadata().unwrap().counts();
    assert_eq!((counts.token, counts.credentials), (1, 1), "{counts:?}");
    assert_eq!(
        fake.calls()[0].access_key_id.as_deref(),
        Some("STS.FakeEcsAccessKeyId")
    );
    assert_eq!(fake.calls()[0].outcome, "OK");
}
