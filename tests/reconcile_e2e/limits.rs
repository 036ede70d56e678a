//! Behaviours 8 and 9: the limits the operator must respect — EIAM's two slots, and one resource per application.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// Behaviour 8: both slots taken by secrets the resource does not own → `Stalled=True`, reason `SlotsExhausted`,
/// nothing disabled or deleted, one Warning event (not one per reconcile), slow requeue. The first issue creates
/// without listing (one call per new resource); EIAM refuses that Create for quota, and the List that follows
/// finds out by whom.
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
    for action in ["Disable", "Delete", "Enable", "UpdateExpirationTime"] {
        assert_eq!(counts.get(action), None, "no {action}: {counts:?}");
    }
    let creates = s.calls_of("Create").await;
    assert_eq!(creates.len(), 1, "one Create, never repeated: {creates:?}");
    assert!(
        creates[0].outcome.starts_with("QuotaExceeded"),
        "refused by EIAM: {creates:?}"
    );
    let lists = s.calls_of("List").await;
    assert!(
        lists.first().is_some_and(|l| l.seq > creates[0].seq),
        "the refusal is followed by a List"
    );
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
    // Slow requeue: the next look is the 10-minute stall recheck, or the resource's own drift-check slot of the
    // hour if that comes first — never a hot loop.
    let (requeue, until_slot) = s.requeue_and_drift_slot("crowded").await;
    assert!(
        requeue >= Duration::from_secs(600)
            || requeue.abs_diff(until_slot) < Duration::from_secs(2),
        "slow requeue: {requeue:?} (drift slot in {until_slot:?})"
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

/// Issue 12.2: a due rotation blocked by a secret the operator did not create keeps a working resource working:
/// `Ready=True`, `Stalled=False` (Argo CD and Flux see Healthy), a `RotationBlocked` condition and one Warning event
/// naming only the foreign secret. Close to expiry it turns `Stalled` (`SlotsExhausted`). Once the foreign secret is
/// gone, the rotation happens at the next look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i12_a_blocked_rotation_stays_ready_until_the_secret_nears_expiry() {
    const APP: &str = "app_blocked";
    const EXPIRING_APP: &str = "app_blocked_expiring";
    let mut s = Scenario::new("i12-blocked", &[APP, EXPIRING_APP]).await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    // Imported secrets, already due for renewal (renewBefore 23h): one valid 20 more hours, one 30 minutes.
    let imported = s
        .fake
        .insert_secret(
            INSTANCE,
            APP,
            json!({ "expirationTime": now_ms + 20 * 3_600_000 }),
        )
        .await;
    let foreign = s.fake.insert_secret(INSTANCE, APP, json!({})).await;
    let expiring = s
        .fake
        .insert_secret(
            INSTANCE,
            EXPIRING_APP,
            json!({ "expirationTime": now_ms + 30 * 60_000 }),
        )
        .await;
    let foreign_too = s
        .fake
        .insert_secret(INSTANCE, EXPIRING_APP, json!({}))
        .await;
    let spec = s.operator_spec().arg("--default-provider-allow-import");
    s.start_operator_with(spec).await;
    for (name, app, secret_id) in [
        ("blocked", APP, &imported.secret_id),
        ("expiring", EXPIRING_APP, &expiring.secret_id),
    ] {
        s.create(
            name,
            json!({ "instanceId": INSTANCE, "applicationId": app, "secretId": secret_id,
                    "expiresAfter": "24h", "renewBefore": "23h" }),
        )
        .await;
    }

    let blocked = s
        .wait_for("blocked", "RotationBlocked=True", SOON, |o| {
            condition(o, "RotationBlocked")
                .filter(|c| c.status == "True")
                .map(|_| o.clone())
        })
        .await;
    assert_eq!(condition_status(&blocked, "Ready"), "True");
    assert_eq!(condition_status(&blocked, "Stalled"), "False");
    assert_eq!(
        kstatus(&blocked),
        KStatus::Current,
        "GitOps health: Healthy"
    );
    assert_eq!(current_id(&blocked), Some(imported.secret_id.clone()));
    let message = condition(&blocked, "RotationBlocked")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&foreign.secret_id) && !message.contains(&imported.secret_id),
        "names only the foreign secret: {message}"
    );
    let warning = s.wait_event("blocked", "Warning", "RotationBlocked").await;
    assert!(
        warning
            .note
            .as_deref()
            .unwrap_or_default()
            .contains(&foreign.secret_id),
        "{warning:?}"
    );
    let stalled = s.wait_stalled("expiring", "SlotsExhausted").await;
    let message = condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&foreign_too.secret_id) && !message.contains(&expiring.secret_id),
        "the stall names only the foreign secret: {message}"
    );

    // The foreign secret goes; the next look (here: an unrelated change) rotates.
    s.fake
        .delete_secret(INSTANCE, APP, &foreign.secret_id)
        .await;
    s.patch(
        "blocked",
        json!({ "metadata": { "labels": { "poke": "1" } } }),
    )
    .await;
    let rotated = s
        .wait_for("blocked", "rotated", SOON, |o| {
            (current_id(o) != Some(imported.secret_id.clone())
                && condition_status(o, "Ready") == "True")
                .then(|| o.clone())
        })
        .await;
    assert!(
        condition(&rotated, "RotationBlocked").is_none(),
        "the block is over: {:?}",
        rotated.status
    );
    assert_eq!(
        s.event_count("blocked", "Warning", "RotationBlocked").await,
        1,
        "one Warning for the whole block"
    );
    let held: Vec<String> = s
        .fake
        .secrets(INSTANCE, EXPIRING_APP)
        .await
        .into_iter()
        .map(|h| h.secret_id)
        .collect();
    assert!(
        held.contains(&foreign_too.secret_id),
        "foreign secret untouched"
    );
    s.finish().await;
}
