//! Behaviour 14: steady state costs nothing.

use kube::ResourceExt;
use serde_json::json;

use crate::support::*;

/// Behaviour 14: with nothing due, reconciles triggered by unrelated updates (a label on the resource, a label on
/// its Secret) send zero EIAM calls and write nothing: the resource's and the Secret's resourceVersions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b14_steady_state_costs_no_eiam_call_and_no_write() {
    const APP: &str = "app_steady";
    let mut s = Scenario::new("b14-steady-state", &[APP]).await;
    s.start_operator().await;
    s.create(
        "steady",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    s.wait_ready("steady").await;
    let settled = s.wait_reconciled("steady").await;
    let counts_before = s.fake.counts().await;
    let secret_before = s.secret_api().get("steady").await.expect("Secret");
    eprintln!("[b14] EIAM calls after the first issue: {counts_before:?}");

    // An unrelated update of the resource itself: a label (metadata only; the generation stays).
    let labelled = s
        .patch(
            "steady",
            json!({ "metadata": { "labels": { "unrelated": "change" } } }),
        )
        .await;
    assert_ne!(labelled.resource_version(), settled.resource_version());
    assert_eq!(labelled.metadata.generation, settled.metadata.generation);
    let reconciles = s.reconciles("steady");
    let after = s.wait_reconciled("steady").await;
    assert!(
        s.reconciles("steady") > reconciles,
        "the label triggered a reconcile"
    );
    assert_eq!(
        after.resource_version(),
        labelled.resource_version(),
        "the reconcile wrote nothing to the resource (no status patch)"
    );

    // An unrelated update of the Secret: a label of someone else's.
    let reconciles = s.reconciles("steady");
    s.secret_api()
        .patch(
            "steady",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "metadata": { "labels": { "backup": "yes" } } })),
        )
        .await
        .expect("label the Secret");
    let secret_labelled = s.secret_api().get("steady").await.expect("Secret");
    s.wait_more_reconciles("steady", reconciles).await;
    let after_secret = s.wait_reconciled("steady").await;

    let counts_after = s.fake.counts().await;
    eprintln!("[b14] EIAM calls after two unrelated updates: {counts_after:?}");
    assert_eq!(
        counts_after, counts_before,
        "unrelated updates cost zero EIAM calls"
    );
    assert_eq!(
        after_secret.resource_version(),
        labelled.resource_version(),
        "still no status write"
    );
    let secret_after = s.secret_api().get("steady").await.expect("Secret");
    assert_eq!(
        secret_after.resource_version(),
        secret_labelled.resource_version(),
        "the Secret was not rewritten"
    );
    assert_eq!(secret_after.data, secret_before.data);
    assert_eq!(
        secret_after.labels().get("backup").map(String::as_str),
        Some("yes"),
        "someone else's label is left alone"
    );
    s.finish().await;
}

/// Issue 11: a restart (or failover) costs no EIAM call for resources that are not due. The new process reconciles
/// every resource, finds nothing due, and schedules each drift check at the resource's own phased slot within
/// `--resync-interval`, spread over the interval, instead of re-checking everything at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i11_a_restart_sends_no_eiam_call_for_resources_that_are_not_due() {
    const APPS: [&str; 6] = [
        "app_restart_0",
        "app_restart_1",
        "app_restart_2",
        "app_restart_3",
        "app_restart_4",
        "app_restart_5",
    ];
    let mut s = Scenario::new("i11-restart", &APPS).await;
    s.start_operator().await;
    for (i, app) in APPS.iter().enumerate() {
        s.create(
            &format!("r{i}"),
            json!({ "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "720h" }),
        )
        .await;
    }
    for i in 0..APPS.len() {
        s.wait_ready(&format!("r{i}")).await;
    }
    let before = s.fake.counts().await;
    let status = s.operator_mut().process_mut().terminate(SOON).await;
    assert!(
        status.success(),
        "SIGTERM ends the first operator: {status}"
    );

    s.start_operator().await;
    for i in 0..APPS.len() {
        s.wait_more_reconciles(&format!("r{i}"), 0).await;
    }
    let after = s.fake.counts().await;
    assert_eq!(
        after, before,
        "the restart reconciled every resource without one EIAM call"
    );
    // ... and without reading any of them or their Secrets: the resources come from the watch's list, and each
    // Secret is still at the version its status recorded (`status.secretResourceVersion`). Lists and watches
    // are per kind, not per resource.
    // The only GETs are the start-up check of the operator's CRDs, one per CRD, whatever the number of resources.
    let gets = s.operator().kube_requests("GET").await;
    assert_eq!(
        gets,
        crd_check_gets(),
        "the restarted operator sent no GET for {} resources (beyond the CRD check)",
        APPS.len()
    );
    // Each resource looks again at its own slot of the hour, derived from its uid (how evenly the slots spread is
    // the drift module's unit test): not all at once, and not at a jittered time the new process picked.
    for i in 0..APPS.len() {
        let (requeue, until_slot) = s.requeue_and_drift_slot(&format!("r{i}")).await;
        assert!(
            requeue.abs_diff(until_slot) < std::time::Duration::from_secs(2),
            "r{i}: next look at its drift slot ({until_slot:?}), not {requeue:?}"
        );
    }
    s.finish().await;
}

/// Issue 11: resources that use a provider with an AccessKey cost nothing per resource on a restart either: the
/// provider comes from the watch cache and its AccessKey Secret is read once per provider, then not again while its
/// version (from the Secret metadata watch) is the one the client was built from. A new key in that Secret (a new
/// version) is read and used at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i11_a_restart_reads_no_provider_and_no_access_key_one_by_one() {
    const APPS: [&str; 6] = [
        "app_provider_0",
        "app_provider_1",
        "app_provider_2",
        "app_provider_3",
        "app_provider_4",
        "app_provider_5",
    ];
    const KEY: (&str, &str) = ("LTAI5tE2eRestartKeyOne", "restart-key-one");
    const NEW_KEY: (&str, &str) = ("LTAI5tE2eRestartKeyTwo", "restart-key-two");
    let mut s = Scenario::with_fake(
        "i11-provider-restart",
        &APPS,
        crate::common::fake_eiam::FakeSpec::new()
            .access_key(KEY.0, KEY.1)
            .access_key(NEW_KEY.0, NEW_KEY.1),
    )
    .await;
    let access_key = |key: (&str, &str)| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(json!({
            "metadata": { "name": "team-ak" },
            "stringData": { "accessKeyId": key.0, "accessKeySecret": key.1 }
        }))
        .expect("a Secret")
    };
    s.secret_api()
        .create(&Default::default(), &access_key(KEY))
        .await
        .expect("create the AccessKey Secret");
    let provider: eiam_operator::api::EiamProvider = serde_json::from_value(json!({
        "metadata": { "name": "team" },
        "spec": { "endpoint": s.fake.url(),
                  "auth": { "accessKey": { "secretRef": { "name": "team-ak" } } } }
    }))
    .expect("an EiamProvider");
    s.api::<eiam_operator::api::EiamProvider>()
        .create(&Default::default(), &provider)
        .await
        .expect("create the EiamProvider");
    s.start_operator().await;
    for (i, app) in APPS.iter().enumerate() {
        s.create(
            &format!("p{i}"),
            json!({ "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "720h",
                    "providerRef": { "kind": "EiamProvider", "name": "team" } }),
        )
        .await;
    }
    for i in 0..APPS.len() {
        s.wait_ready(&format!("p{i}")).await;
    }
    let before = s.fake.counts().await;
    let status = s.operator_mut().process_mut().terminate(SOON).await;
    assert!(status.success(), "SIGTERM ends the operator: {status}");

    s.start_operator().await;
    for i in 0..APPS.len() {
        s.wait_more_reconciles(&format!("p{i}"), 0).await;
    }
    assert_eq!(s.fake.counts().await, before, "no EIAM call on restart");
    // The new process has no client yet: it reads the AccessKey Secret once to build the provider's client (the
    // resources starting together wait for that one read), and the provider's own status check reads it when the
    // provider and when its Secret first show up in their watches. Nothing is read per resource.
    let gets = s.operator().kube_requests("GET").await - crd_check_gets();
    assert!(
        gets <= 3.0,
        "{gets} GETs (beyond the CRD check) for {} resources of one provider: one to build its client, at most two \
         for its status",
        APPS.len()
    );

    // A new AccessKey in the Secret: the next call is signed with it.
    s.secret_api()
        .replace("team-ak", &Default::default(), &{
            let mut replaced = access_key(NEW_KEY);
            replaced.metadata.resource_version = s
                .secret_api()
                .get("team-ak")
                .await
                .expect("the AccessKey Secret")
                .metadata
                .resource_version;
            replaced
        })
        .await
        .expect("put a new key in the AccessKey Secret");
    let calls_before = s.fake.calls().await.len();
    s.request_rotation("p0", "2026-11-29T00:00:00Z").await;
    s.wait_event("p0", "Normal", "Rotated").await;
    let calls = s.fake.calls().await;
    let after_key_change = &calls[calls_before..];
    assert!(!after_key_change.is_empty());
    assert!(
        after_key_change
            .iter()
            .all(|c| c.access_key_id.as_deref() == Some(NEW_KEY.0)),
        "every call after the key change signed with the new key: {:?}",
        after_key_change
            .iter()
            .map(|c| (&c.action, &c.access_key_id))
            .collect::<Vec<_>>()
    );
    s.finish().await;
}

/// GETs of the operator's start-up check that the installed CRDs are its own (src/installed_crds.rs): one per CRD.
fn crd_check_gets() -> f64 {
    eiam_operator::api::crds::expected_schema_hashes().len() as f64
}
