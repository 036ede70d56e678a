//! Behaviour 13: deleting a resource. `deletionPolicy: Delete` disables and deletes every EIAM secret it created
//! (current and previous), deletes the Secret and removes the finalizer; `Retain` keeps the EIAM secret and the
//! Secret, and drops the Secret's ownerReference so the garbage collector leaves it alone.

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b13_deletion_policy_delete_cleans_up_and_retain_keeps() {
    const DELETED: &str = "app_deleted";
    const RETAINED: &str = "app_retained";
    let mut s = Scenario::new("b13-deletion", &[DELETED, RETAINED]).await;
    s.start_operator().await;
    s.create(
        "doomed",
        json!({ "instanceId": INSTANCE, "applicationId": DELETED, "rotation": { "gracePeriod": "1h" } }),
    )
    .await;
    s.create(
        "kept",
        json!({ "instanceId": INSTANCE, "applicationId": RETAINED, "deletionPolicy": "Retain" }),
    )
    .await;
    let doomed = s.wait_ready("doomed").await;
    let a = current_id(&doomed).expect("A");
    let kept = s.wait_ready("kept").await;
    let k = current_id(&kept).expect("K");
    assert!(
        doomed
            .finalizers()
            .iter()
            .any(|f| f == "eiam-operator.io/cleanup"),
        "the finalizer is on: {:?}",
        doomed.finalizers()
    );

    // Two secrets for "doomed": current B and previous A (in its 1 h grace period).
    s.request_rotation("doomed", "2026-11-26T00:00:00Z").await;
    let rotated = s
        .wait_for("doomed", "rotated", SOON, |o| {
            (current_id(o).is_some_and(|id| id != a) && kstatus(o) == KStatus::Current)
                .then(|| o.clone())
        })
        .await;
    let b = current_id(&rotated).expect("B");
    assert_eq!(previous_id(&rotated).as_deref(), Some(a.as_str()));
    assert_eq!(s.fake.secrets(INSTANCE, DELETED).await.len(), 2);
    s.scanned_later
        .push(serde_json::to_string(&s.get("doomed").await).unwrap_or_default());
    s.scanned_later
        .push(serde_json::to_string(&s.get("kept").await).unwrap_or_default());

    // Delete: every EIAM secret of the resource disabled and deleted, the Secret gone, the resource gone.
    s.delete("doomed").await;
    s.wait_gone("doomed").await;
    assert!(
        s.fake.secrets(INSTANCE, DELETED).await.is_empty(),
        "no secret left in EIAM"
    );
    for id in [&a, &b] {
        let disables = s.calls_of("Disable").await;
        let deletes = s.calls_of("Delete").await;
        let disable = disables
            .iter()
            .find(|c| c.params.get("SecretId") == Some(id));
        let delete = deletes
            .iter()
            .find(|c| c.params.get("SecretId") == Some(id));
        let (Some(disable), Some(delete)) = (disable, delete) else {
            panic!("{id} was not disabled and deleted: {disables:?} {deletes:?}");
        };
        assert!(disable.seq < delete.seq, "{id} disabled before deleted");
    }
    let api = s.secret_api();
    common_wait_absent(&api, "doomed").await;
    assert_eq!(
        s.event_count("doomed", "Normal", "Deleted").await,
        1,
        "a Deleted event"
    );

    // Retain: the EIAM secret and the Secret stay; the Secret loses its ownerReference.
    s.delete("kept").await;
    s.wait_gone("kept").await;
    let held = s.fake.secrets(INSTANCE, RETAINED).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].secret_id, k);
    assert_eq!(held[0].status, "enabled", "still usable");
    // Give the garbage collector time to act on a dangling ownerReference (a time-based property).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let secret = s
        .secret_api()
        .get_opt("kept")
        .await
        .expect("get")
        .expect("the retained Secret still exists");
    assert!(
        secret.owner_references().is_empty(),
        "ownerReference dropped"
    );
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);
    assert!(
        s.calls_of("Disable")
            .await
            .iter()
            .chain(s.calls_of("Delete").await.iter())
            .all(|c| c.params.get("SecretId") != Some(&k)),
        "the retained secret was neither disabled nor deleted"
    );
    assert_eq!(s.event_count("kept", "Normal", "Retained").await, 1);
    eprintln!("[b13] EIAM calls: {:?}", s.fake.counts().await);
    s.finish().await;
}

async fn common_wait_absent(api: &kube::Api<k8s_openapi::api::core::v1::Secret>, name: &str) {
    crate::common::wait_until(format!("Secret {name} to be deleted"), SOON, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await;
}
