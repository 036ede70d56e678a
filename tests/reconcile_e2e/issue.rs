//! Behaviours 1, 2 and 7: the first secret — minted, minted without expiry, or imported.

use kube::ResourceExt;
use serde_json::json;

use crate::support::*;

/// Behaviour 1: create a resource → within seconds a Secret with the value EIAM holds, the annotations, the
/// managed-by label and the ownerReference; status Ready with the ids and times; exactly one List and one Create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b01_first_issue_publishes_the_secret_eiam_holds() {
    const APP: &str = "app_first_issue";
    let mut s = Scenario::new("b01-first-issue", &[APP]).await;
    s.start_operator().await;
    let created = s
        .create(
            "creds",
            json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
        )
        .await;
    let acs = s.wait_ready("creds").await;
    let acs = s.wait_reconciled(&acs.name_any()).await;

    // EIAM calls, counted before this test makes any call of its own.
    let counts = s.fake.counts().await;
    eprintln!("[b01] EIAM calls for a first issue: {counts:?}");
    assert_eq!(
        counts,
        [("Create".to_owned(), 1)].into(),
        "a first issue sends exactly one EIAM call, the Create (no List, no Obtain)"
    );

    // What EIAM holds, through the fake's state and through a real signed Obtain.
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "one secret: {held:?}");
    let held = &held[0];
    let obtained = s
        .fake
        .client(AK_ID, AK_SECRET)
        .obtain_secret(INSTANCE, APP, &held.secret_id)
        .await
        .expect("Obtain the published secret")
        .application_client_secret;

    // The Secret.
    let secret = s
        .secret_api()
        .get("creds")
        .await
        .expect("the Secret exists");
    assert_eq!(data(&secret, "clientId"), obtained.client_id);
    assert_eq!(
        data(&secret, "clientId"),
        APP,
        "the fake's ClientId is the application id"
    );
    assert_eq!(
        data(&secret, "clientSecret"),
        obtained.client_secret.expose()
    );
    assert_eq!(data(&secret, "clientSecret"), held.client_secret);
    assert_eq!(
        secret.data.as_ref().map(|d| d.len()),
        Some(2),
        "only clientId and clientSecret"
    );
    assert_eq!(
        annotation(&secret, "eiam-operator.io/secret-id"),
        held.secret_id
    );
    let status = acs.status.clone().expect("status");
    let not_after = status.not_after.clone().expect("status.notAfter").0;
    assert_eq!(
        annotation(&secret, "eiam-operator.io/expires-at"),
        not_after.to_string()
    );
    assert_eq!(
        Some(not_after.as_millisecond() / 1000),
        held.expiration_time.map(|ms| ms / 1000),
        "notAfter is the ExpirationTime EIAM holds"
    );
    let creates = s.calls_of("Create").await;
    assert_eq!(
        creates[0].params.get("ExpirationTime").map(String::as_str),
        held.expiration_time.map(|ms| ms.to_string()).as_deref(),
        "Create sent ExpirationTime = now + expiresAfter"
    );
    let lifetime = not_after.duration_since(created.metadata.creation_timestamp.clone().unwrap().0);
    assert!(
        (lifetime.as_secs() - 720 * 3600).abs() <= 120,
        "notAfter is 720h after creation: {lifetime:?}"
    );
    assert_eq!(
        secret
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("eiam-operator")
    );
    let owners = secret.owner_references();
    assert_eq!(owners.len(), 1, "one ownerReference: {owners:?}");
    assert_eq!(owners[0].kind, "ApplicationClientSecret");
    assert_eq!(owners[0].api_version, "eiam-operator.io/v1alpha1");
    assert_eq!(owners[0].name, "creds");
    assert_eq!(Some(owners[0].uid.as_str()), acs.uid().as_deref());
    assert_eq!(
        owners[0].controller,
        Some(true),
        "creationPolicy Owner: a controller ref"
    );

    // The status.
    assert_eq!(condition_status(&acs, "Ready"), "True");
    assert_eq!(condition_status(&acs, "Reconciling"), "False");
    assert_eq!(condition_status(&acs, "Stalled"), "False");
    for c in &status.conditions {
        assert_eq!(
            c.observed_generation, acs.metadata.generation,
            "condition {} carries the generation",
            c.type_
        );
    }
    assert_eq!(
        status.current_secret_id.as_deref(),
        Some(held.secret_id.as_str())
    );
    assert_eq!(status.client_id.as_deref(), Some(APP));
    assert_eq!(status.observed_generation, acs.metadata.generation);
    assert_eq!(status.secret_name.as_deref(), Some("creds"));
    assert_eq!(status.pending_create_since, None);
    let renewal = status.renewal_time.clone().expect("status.renewalTime").0;
    assert_eq!(
        not_after.duration_since(renewal).as_secs(),
        240 * 3600,
        "renewBefore defaults to a third of expiresAfter"
    );

    let issued = s.wait_event("creds", "Normal", "Issued").await;
    assert!(
        issued
            .note
            .as_deref()
            .unwrap_or("")
            .contains(&held.secret_id),
        "the Issued event names the secret id: {issued:?}"
    );
    s.finish().await;
}

/// Behaviour 2: without `expiresAfter` no ExpirationTime is sent and no renewal is scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b02_no_expiry_sends_no_expiration_time_and_schedules_no_renewal() {
    const APP: &str = "app_no_expiry";
    let mut s = Scenario::new("b02-no-expiry", &[APP]).await;
    s.start_operator().await;
    s.create(
        "forever",
        json!({ "instanceId": INSTANCE, "applicationId": APP }),
    )
    .await;
    let acs = s.wait_ready("forever").await;
    let acs = s.wait_reconciled(&acs.name_any()).await;

    let creates = s.calls_of("Create").await;
    assert_eq!(creates.len(), 1);
    assert!(
        !creates[0].params.contains_key("ExpirationTime"),
        "no ExpirationTime sent: {:?}",
        creates[0].params
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].expiration_time, None,
        "EIAM holds a never-expiring secret"
    );

    let status = acs.status.clone().expect("status");
    assert_eq!(status.not_after, None, "no notAfter");
    assert_eq!(status.renewal_time, None, "no renewal scheduled");
    let secret = s.secret_api().get("forever").await.expect("Secret");
    assert_eq!(annotation(&secret, "eiam-operator.io/expires-at"), "never");
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);
    assert!(
        condition(&acs, "Ready").is_some_and(|c| c.message.contains("never expires")),
        "Ready says it never expires: {:?}",
        condition(&acs, "Ready")
    );

    // Nothing is due: the operator looks again only at the periodic drift check, at this resource's own slot of
    // the hour (--resync-interval 1h, phased by uid), not earlier for a renewal.
    let (requeue, until_slot) = s.requeue_and_drift_slot("forever").await;
    assert!(
        requeue.abs_diff(until_slot) < std::time::Duration::from_secs(2),
        "next look at the drift slot ({until_slot:?}), not before: {requeue:?}"
    );
    s.finish().await;
}

/// Behaviour 7: `spec.secretId` of an existing EIAM secret → adopted and published (value via Obtain), no Create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b07_import_adopts_an_existing_secret_without_create() {
    const APP: &str = "app_import";
    let mut s = Scenario::new("b07-import", &[APP]).await;
    let existing = s.fake.insert_secret(INSTANCE, APP, json!({})).await;
    // Import reads an existing secret: the admin granted it for the default provider.
    let spec = s.operator_spec().arg("--default-provider-allow-import");
    s.start_operator_with(spec).await;
    s.create(
        "imported",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "secretId": existing.secret_id }),
    )
    .await;
    let acs = s.wait_ready("imported").await;
    s.wait_reconciled("imported").await;

    let counts = s.fake.counts().await;
    eprintln!("[b07] EIAM calls for an import: {counts:?}");
    assert_eq!(counts.get("Create"), None, "no Create: {counts:?}");
    assert_eq!(
        counts.get("Obtain"),
        Some(&1),
        "the value comes from one Obtain"
    );
    let obtain = &s.calls_of("Obtain").await[0];
    assert_eq!(obtain.params.get("SecretId"), Some(&existing.secret_id));

    let status = acs.status.clone().expect("status");
    assert_eq!(
        status.current_secret_id.as_deref(),
        Some(existing.secret_id.as_str())
    );
    assert_eq!(status.client_id.as_deref(), Some(APP));
    let secret = s.secret_api().get("imported").await.expect("Secret");
    assert_eq!(data(&secret, "clientSecret"), existing.client_secret);
    assert_eq!(data(&secret, "clientId"), APP);
    assert_eq!(
        annotation(&secret, "eiam-operator.io/secret-id"),
        existing.secret_id
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(
        held,
        vec![existing.clone()],
        "EIAM still holds exactly the imported secret"
    );
    let imported = s.wait_event("imported", "Normal", "Imported").await;
    assert!(
        imported
            .note
            .unwrap_or_default()
            .contains(&existing.secret_id)
    );
    s.finish().await;
}
