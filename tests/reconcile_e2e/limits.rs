//! Behaviours 8 and 9: the limits the operator must respect — EIAM's two slots, and one resource per application.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// Behaviour 8: both slots taken by secrets the resource does not own → `Stalled=True`, reason `SlotsExhausted`,
/// nothing disabled or deleted, one Warning event (not one per reconcile), slow requeue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b08_slots_exhausted_stalls_without_touching_foreign_secrets() {
    const APP: &str = "app_full";
    let mut s = Scenario::new("b08-slots-exhausted", &[APP]).await;
    let first = s.fake.insert_secret(INSTANCE, APP, json!({})).await;
    let second = s.fake.insert_secret(INSTANCE, APP, json!({})).await;
    s.start_operator().await;
    s.create(
        "crowded",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let stalled = s.wait_stalled("crowded", "SlotsExhausted").await;
    let message = condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&first.secret_id) && message.contains(&second.secret_id),
        "the message names the secrets that hold the slots: {message}"
    );
    assert_eq!(condition_status(&stalled, "Ready"), "False");
    assert_eq!(kstatus(&stalled), KStatus::Failed);
    s.wait_reconciled("crowded").await;

    // Look again (an unrelated change triggers a reconcile): still one Warning, still nothing touched.
    let reconciles = s.reconciles("crowded");
    s.patch(
        "crowded",
        json!({ "metadata": { "labels": { "poke": "1" } } }),
    )
    .await;
    s.wait_more_reconciles("crowded", reconciles).await;
    s.wait_reconciled("crowded").await;

    let counts = s.fake.counts().await;
    eprintln!("[b08] EIAM calls: {counts:?}");
    for action in [
        "Create",
        "Disable",
        "Delete",
        "Enable",
        "UpdateExpirationTime",
    ] {
        assert_eq!(counts.get(action), None, "no {action}: {counts:?}");
    }
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(
        held,
        vec![first.clone(), second.clone()],
        "both foreign secrets untouched"
    );
    assert!(
        s.secret_api()
            .get_opt("crowded")
            .await
            .expect("get")
            .is_none(),
        "no Secret"
    );
    assert_eq!(
        s.event_count("crowded", "Warning", "SlotsExhausted").await,
        1,
        "exactly one Warning event: {:?}",
        s.events("crowded")
            .await
            .iter()
            .map(describe_event)
            .collect::<Vec<_>>()
    );
    // Slow requeue: the next look is minutes away, not a hot loop.
    let last = s
        .operator()
        .records_with("reconciled", Some("crowded"))
        .pop()
        .expect("a reconcile");
    let requeue = Duration::from_millis(last["fields"]["requeue_in_ms"].as_u64().expect("requeue"));
    assert!(
        requeue >= Duration::from_secs(600),
        "slow requeue: {requeue:?}"
    );
    s.finish().await;
}

/// Behaviour 9: a second resource for the same instance/application — in another namespace or the same one — is
/// `Stalled`, reason `Conflict`, naming the resource that owns the application; it mints and deletes nothing.
///
/// Seeing another namespace takes an operator that watches all namespaces, which on the shared control plane would
/// also reconcile the resources of every test running in parallel: this test brings a control plane of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b09_a_second_resource_for_the_same_application_is_a_conflict() {
    const APP: &str = "app_contested";
    let cp: &'static crate::common::ControlPlane =
        Box::leak(Box::new(crate::common::private_control_plane().await));
    let mut s = Scenario::on(
        cp,
        "b09-owner",
        &[APP],
        crate::common::fake_eiam::FakeSpec::new(),
    )
    .await;
    let cluster_wide = crate::common::operator::OperatorSpec::new(&cp.kubeconfig)
        .default_endpoint(s.fake.url())
        .grant_default_provider("*")
        .access_key(AK_ID, AK_SECRET);
    s.start_operator_with(cluster_wide).await;
    s.create(
        "owner",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let owner = s.wait_ready("owner").await;
    let owner_name = format!("{}/owner", s.namespace());

    // Another namespace.
    let other = cp.namespace("b09-other").await;
    let intruders: kube::Api<eiam_operator::api::ApplicationClientSecret> =
        kube::Api::namespaced(s.client.clone(), other.name());
    let intruder: eiam_operator::api::ApplicationClientSecret = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": "intruder" },
        "spec": { "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }
    }))
    .expect("an ApplicationClientSecret");
    intruders
        .create(&kube::api::PostParams::default(), &intruder)
        .await
        .expect("create the second resource");
    let stalled = crate::common::wait_until(
        "the second resource (other namespace) to stall with Conflict",
        SOON,
        || {
            let intruders = intruders.clone();
            async move {
                let o = intruders.get("intruder").await.ok()?;
                condition(&o, "Stalled")
                    .is_some_and(|c| c.status == "True" && c.reason == "Conflict")
                    .then_some(o)
            }
        },
    )
    .await;
    let message = condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&owner_name),
        "names the owner {owner_name}: {message}"
    );
    assert_eq!(kstatus(&stalled), KStatus::Failed);

    // The same namespace.
    s.create(
        "twin",
        json!({ "instanceId": INSTANCE, "applicationId": APP }),
    )
    .await;
    let twin = s.wait_stalled("twin", "Conflict").await;
    let message = condition(&twin, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&owner_name),
        "names the owner {owner_name}: {message}"
    );
    assert_eq!(s.event_count("twin", "Warning", "Conflict").await, 1);

    // Neither minted, published or touched anything; the owner is unaffected.
    let counts = s.fake.counts().await;
    assert_eq!(counts.get("Create"), Some(&1), "{counts:?}");
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1);
    assert_eq!(current_id(&owner), Some(held[0].secret_id.clone()));
    assert!(
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(s.client.clone(), other.name())
            .get_opt("intruder")
            .await
            .expect("get")
            .is_none(),
        "no Secret for the conflicting resource"
    );
    assert!(s.secret_api().get_opt("twin").await.expect("get").is_none());
    assert_eq!(kstatus(&s.get("owner").await), KStatus::Current);

    // Deleting a conflicting resource deletes nothing in EIAM.
    s.scanned_later.push(
        serde_json::to_string(&intruders.get("intruder").await.expect("get")).unwrap_or_default(),
    );
    intruders
        .delete("intruder", &kube::api::DeleteParams::default())
        .await
        .expect("delete the second resource");
    crate::common::wait_until("the second resource to be gone", SOON, || {
        let intruders = intruders.clone();
        async move { matches!(intruders.get_opt("intruder").await, Ok(None)).then_some(()) }
    })
    .await;
    s.delete("twin").await;
    s.wait_gone("twin").await;
    let counts = s.fake.counts().await;
    assert_eq!(counts.get("Disable"), None, "{counts:?}");
    assert_eq!(counts.get("Delete"), None, "{counts:?}");
    assert_eq!(
        s.fake.secrets(INSTANCE, APP).await,
        held,
        "the owner's secret is untouched"
    );
    eprintln!("[b09] EIAM calls: {counts:?}");
    s.finish().await;
    drop(other);
    cp.stop();
}
