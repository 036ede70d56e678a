//! Behaviour 16: no secret leaks. Every scenario of this suite ends with `Scenario::finish`, which scans the
//! operator's logs, every Event in the namespace and every resource (status included) for every value the fake EIAM
//! ever held. This test adds one scenario that walks through every path that handles a value — mint, Obtain
//! (drift and import), rotation, retirement, a permanent error, deletion — with the operator logging at `trace`,
//! and proves the scan would catch a leak.

use kube::api::DeleteParams;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b16_no_secret_value_reaches_logs_events_or_status() {
    const APP: &str = "app_leaky";
    const IMPORTED_APP: &str = "app_leaky_import";
    let mut s = Scenario::new("b16-no-leaks", &[APP, IMPORTED_APP]).await;
    let chatty = s
        .operator_spec()
        .rust_log("debug,eiam_operator=trace")
        .arg("--resync-interval")
        .arg("5s")
        // This scenario imports too (the admin granted it).
        .arg("--default-provider-allow-import");
    s.start_operator_with(chatty).await;

    // Mint, then re-publish through Obtain after the Secret is deleted.
    s.create(
        "leaky",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                "rotation": { "gracePeriod": "1s" } }),
    )
    .await;
    let first = s.wait_ready("leaky").await;
    let a = current_id(&first).expect("A");
    s.secret_api()
        .delete("leaky", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    s.wait_event("leaky", "Normal", "Repaired").await;

    // Rotate, retire A.
    s.request_rotation("leaky", "2026-11-26T00:00:00Z").await;
    s.wait_for("leaky", "rotated and A retired", SOON, |o| {
        (current_id(o).is_some_and(|id| id != a) && previous_id(o).is_none()).then_some(())
    })
    .await;

    // Import (Obtain of a value the operator did not mint).
    let existing = s
        .fake
        .insert_secret(INSTANCE, IMPORTED_APP, json!({}))
        .await;
    s.create(
        "imported",
        json!({ "instanceId": INSTANCE, "applicationId": IMPORTED_APP, "secretId": existing.secret_id }),
    )
    .await;
    s.wait_ready("imported").await;

    // A permanent error, and a deletion that disables and deletes the current secret.
    s.create(
        "broken",
        json!({ "instanceId": INSTANCE, "applicationId": "app_missing" }),
    )
    .await;
    s.wait_for("broken", "Stalled=True", SOON, |o| {
        (kstatus(o) == KStatus::Failed).then_some(())
    })
    .await;
    let published = s.secret_api().get("leaky").await.expect("Secret");
    s.scanned_later
        .push(serde_json::to_string(&s.get("leaky").await).unwrap_or_default());
    s.delete("leaky").await;
    s.wait_gone("leaky").await;
    assert!(s.fake.secrets(INSTANCE, APP).await.is_empty());

    // The scan has something to find, and finds a value where one is: the Secret's data holds one.
    let values = s.fake.every_value_held().await;
    assert!(
        values.len() >= 3,
        "A, B and the imported value were collected: {}",
        values.len()
    );
    assert!(values.contains(&existing.client_secret));
    let published_value = data(&published, "clientSecret");
    assert!(values.contains(&published_value));
    let planted = scan_for_values(
        &values,
        &[(
            "the published Secret's data".to_owned(),
            published_value.clone(),
        )],
    );
    assert_eq!(planted.len(), 1, "the scan detects a value: {planted:?}");
    let operator_lines = s.operator().output().lines().count();
    assert!(
        operator_lines > 50,
        "trace logging produced a real log to scan: {operator_lines} lines"
    );
    eprintln!(
        "[b16] scanning {} values against {operator_lines} trace-level log lines",
        values.len()
    );
    s.finish().await;
}
