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
