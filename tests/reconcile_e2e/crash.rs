//! Behaviour 10: crash safety. The operator dies (abort, like SIGKILL: no destructors, no status write) right after
//! a Create returned and before anything was published; the next operator adopts the minted secret from List
//! (write-ahead: `pendingCreateSince`, or on a first issue the `eiam-operator.io/first-create-since` annotation set with
//! the finalizer) instead of minting another.

use std::os::unix::process::ExitStatusExt;

use serde_json::json;

use eiam_operator::api::FINALIZER;
use kube::ResourceExt;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_a_crash_after_create_is_recovered_by_adoption_not_a_new_secret() {
    const APP: &str = "app_crash";
    let mut s = Scenario::new("b10-crash", &[APP]).await;
    let crashing = s
        .operator_spec()
        .env("EIAM_OPERATOR_FAILPOINT", "after-create");

    // First issue: the operator dies right after the Create.
    s.start_operator_with(crashing.clone()).await;
    s.create(
        "survivor",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let died = s.operator_mut().wait_for_exit(SOON).await;
    assert_eq!(
        died.signal(),
        Some(libc::SIGABRT),
        "died at the failpoint: {died}"
    );
    assert!(
        s.operator()
            .output()
            .contains("failpoint after-create reached")
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "the Create went through: {held:?}");
    let a = held[0].clone();
    // A first issue's write-ahead marker rides on the finalizer's patch (one write fewer): the annotation, while
    // the status records nothing yet.
    let pending = s.get("survivor").await;
    assert!(
        pending.first_create_since().is_some(),
        "the marker was written with the finalizer before the Create: {:?}",
        pending.metadata
    );
    assert!(pending.finalizers().iter().any(|f| f == FINALIZER));
    let status = pending.status.clone().unwrap_or_default();
    assert_eq!(
        status.current_secret_id, None,
        "nothing recorded after the Create"
    );
    assert!(
        s.secret_api()
            .get_opt("survivor")
            .await
            .expect("get")
            .is_none(),
        "nothing published"
    );

    // Restart: adopt A from the List.
    s.start_operator().await;
    let ready = s.wait_ready("survivor").await;
    assert_eq!(
        current_id(&ready).as_deref(),
        Some(a.secret_id.as_str()),
        "A adopted"
    );
    let status = ready.status.clone().expect("status");
    assert_eq!(status.pending_create_since, None);
    let secret = s.secret_api().get("survivor").await.expect("Secret");
    assert_eq!(
        data(&secret, "clientSecret"),
        a.client_secret,
        "the right value"
    );
    assert_eq!(s.fake.count("Create").await, 1, "no second Create");
    assert_eq!(s.fake.secrets(INSTANCE, APP).await.len(), 1);
    s.wait_event("survivor", "Normal", "Issued").await;

    // A rotation, with the operator dying after the rotation's Create.
    s.operator_mut().process_mut().kill();
    s.start_operator_with(crashing).await;
    s.wait_reconciled("survivor").await;
    s.request_rotation("survivor", "2026-11-26T00:00:00Z").await;
    let died = s.operator_mut().wait_for_exit(SOON).await;
    assert_eq!(
        died.signal(),
        Some(libc::SIGABRT),
        "died at the failpoint: {died}"
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(
        held.len(),
        2,
        "the rotation's Create went through: {held:?}"
    );
    let b = held
        .iter()
        .find(|h| h.secret_id != a.secret_id)
        .expect("B")
        .clone();

    s.start_operator().await;
    let rotated = s
        .wait_for("survivor", "B adopted as current, A previous", SOON, |o| {
            (current_id(o).as_deref() == Some(b.secret_id.as_str())
                && kstatus(o) == KStatus::Current)
                .then(|| o.clone())
        })
        .await;
    assert_eq!(previous_id(&rotated).as_deref(), Some(a.secret_id.as_str()));
    assert_eq!(s.fake.count("Create").await, 2, "no third secret minted");
    assert!(s.fake.max_secrets_held(INSTANCE, APP) <= 2);
    let secret = s
        .wait_secret("survivor", "B published", |sec| {
            annotation(sec, "eiam-operator.io/secret-id") == b.secret_id
        })
        .await;
    assert_eq!(data(&secret, "clientSecret"), b.client_secret);
    s.finish().await;
}
