//! Behaviour 6: drift is repaired — a deleted or edited Secret is re-published from EIAM (Obtain, no Create), and a
//! current secret deleted in EIAM behind the operator's back is replaced by a new one, with a Warning.

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b06_drift_in_the_secret_or_in_eiam_is_repaired() {
    const APP: &str = "app_drift";
    let mut s = Scenario::new("b06-drift", &[APP]).await;
    // A short drift check, so that a change in EIAM (which sends no watch event) is noticed within seconds.
    let spec = s.operator_spec().arg("--resync-interval").arg("3s");
    s.start_operator_with(spec).await;
    s.create(
        "drifting",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let acs = s.wait_ready("drifting").await;
    let a = current_id(&acs).expect("A");
    let original = s.secret_api().get("drifting").await.expect("Secret");
    let value = data(&original, "clientSecret");

    // 1. The Secret is deleted → recreated with the same value through Obtain; no Create.
    let creates = s.fake.count("Create").await;
    let obtains = s.fake.count("Obtain").await;
    s.secret_api()
        .delete("drifting", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    let recreated = s
        .wait_secret("drifting", "recreated", |sec| sec.uid() != original.uid())
        .await;
    assert_eq!(data(&recreated, "clientSecret"), value, "the same value");
    assert_eq!(annotation(&recreated, "eiam-operator.io/secret-id"), a);
    assert_eq!(
        recreated.owner_references().len(),
        1,
        "ownerReference again"
    );
    assert_eq!(s.fake.count("Create").await, creates, "no Create");
    assert_eq!(s.fake.count("Obtain").await, obtains + 1, "one Obtain");
    s.wait_event("drifting", "Normal", "Repaired").await;

    // 2. A data key is edited → restored.
    let obtains = s.fake.count("Obtain").await;
    s.secret_api()
        .patch(
            "drifting",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "clientSecret": "tampered" } })),
        )
        .await
        .expect("edit the Secret");
    let restored = s
        .wait_secret("drifting", "restored", |sec| {
            data(sec, "clientSecret") == value
        })
        .await;
    assert_eq!(annotation(&restored, "eiam-operator.io/secret-id"), a);
    assert_eq!(s.fake.count("Create").await, creates, "still no Create");
    assert_eq!(s.fake.count("Obtain").await, obtains + 1, "one Obtain");

    // 3. The current secret is deleted in EIAM → a new one is minted and published, with a Warning.
    s.fake.delete_secret(INSTANCE, APP, &a).await;
    let replaced = s
        .wait_for(
            "drifting",
            "a replacement for the deleted secret",
            SOON,
            |o| {
                (current_id(o).is_some_and(|id| id != a) && kstatus(o) == KStatus::Current)
                    .then(|| o.clone())
            },
        )
        .await;
    let b = current_id(&replaced).expect("B");
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].secret_id, b);
    let secret = s
        .wait_secret("drifting", "B published", |sec| {
            annotation(sec, "eiam-operator.io/secret-id") == b
        })
        .await;
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);
    assert_eq!(
        s.fake.count("Create").await,
        creates + 1,
        "one Create for the replacement"
    );
    let warning = s
        .wait_event("drifting", "Warning", "SecretDeletedInEiam")
        .await;
    assert!(warning.note.unwrap_or_default().contains(&a));
    eprintln!("[b06] EIAM calls: {:?}", s.fake.counts().await);
    s.finish().await;
}

/// Issue 12.3: a key another field manager adds to the Secret (a mutating webhook, another tool's apply) is that
/// manager's: the Secret still counts as in sync, the key stays, and no Obtain, re-apply or `Repaired` follows —
/// neither on the change itself nor on later reconciles. An edit of one of the operator's own keys is still
/// repaired, once, and the foreign key survives the repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i12_keys_of_other_field_managers_are_left_alone_and_cost_nothing() {
    const APP: &str = "app_foreign_key";
    let mut s = Scenario::new("i12-foreign-key", &[APP]).await;
    s.start_operator().await;
    s.create(
        "shared",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    s.wait_ready("shared").await;
    s.wait_reconciled("shared").await;
    let counts = s.fake.counts().await;

    let reconciles = s.reconciles("shared");
    s.secret_api()
        .patch(
            "shared",
            &PatchParams::apply("another-tool").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "shared" },
                "stringData": { "ca.crt": "-----BEGIN CERTIFICATE-----" }
            })),
        )
        .await
        .expect("another field manager adds a key");
    s.wait_more_reconciles("shared", reconciles).await;
    // Two more reconciles (an unrelated label), as later resyncs would be.
    for round in 0..2 {
        let reconciles = s.reconciles("shared");
        s.patch(
            "shared",
            json!({ "metadata": { "labels": { "round": round.to_string() } } }),
        )
        .await;
        s.wait_more_reconciles("shared", reconciles).await;
    }
    assert_eq!(
        s.fake.counts().await,
        counts,
        "no EIAM call for a key that is not the operator's"
    );
    assert_eq!(s.event_count("shared", "Normal", "Repaired").await, 0);
    let secret = s.secret_api().get("shared").await.expect("Secret");
    assert_eq!(data(&secret, "ca.crt"), "-----BEGIN CERTIFICATE-----");

    // The operator's own key edited: one repair, the foreign key kept.
    let value = s.fake.secrets(INSTANCE, APP).await[0].client_secret.clone();
    s.secret_api()
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "clientSecret": "tampered" } })),
        )
        .await
        .expect("edit the Secret");
    let repaired = s
        .wait_secret("shared", "repaired", |sec| {
            data(sec, "clientSecret") == value
        })
        .await;
    assert_eq!(data(&repaired, "ca.crt"), "-----BEGIN CERTIFICATE-----");
    s.wait_reconciled("shared").await;
    assert_eq!(s.event_count("shared", "Normal", "Repaired").await, 1);
    assert_eq!(
        s.fake.count("Obtain").await,
        counts.get("Obtain").copied().unwrap_or(0) + 1,
        "one Obtain for the one repair"
    );
    s.finish().await;
}
