//! Behaviours 3, 4 and 5: rotation — scheduled renewal within two slots, rolling restart targets, and manual
//! rotation through the annotation.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::json;

use crate::support::*;

const RESTARTED_FOR: &str = "eiam-operator.io/restarted-for-secret-id";

/// Behaviour 3: `expiresAfter: 24h`, `renewBefore: 23h59m45s`, `gracePeriod: 10s` → after ~15 s a second secret is
/// minted and published; the previous one stays enabled for the grace period, then is disabled and deleted; Ready
/// stays True throughout; never more than two secrets; a Normal event for each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b03_renewal_rotates_within_two_slots_and_retires_after_grace() {
    const APP: &str = "app_renewal";
    let mut s = Scenario::new("b03-renewal", &[APP]).await;
    s.start_operator().await;
    let history = History::record(s.acs_api(), "renewing").await;
    s.create(
        "renewing",
        json!({
            "instanceId": INSTANCE, "applicationId": APP,
            "expiresAfter": "24h", "renewBefore": "23h59m45s",
            "rotation": { "gracePeriod": "10s" }
        }),
    )
    .await;
    let first = s.wait_ready("renewing").await;
    let a = current_id(&first).expect("a first secret");
    let issued = s.fake.counts().await;

    // The renewal: a new current secret, the old one becomes previous.
    let rotated = s
        .wait_for(
            "renewing",
            "a second secret after the renewal time",
            Duration::from_secs(60),
            |o| current_id(o).filter(|id| *id != a).map(|_| o.clone()),
        )
        .await;
    let b = current_id(&rotated).expect("current");
    assert_eq!(previous_id(&rotated).as_deref(), Some(a.as_str()));
    let held = s.fake.secrets(INSTANCE, APP).await;
    let held_a = held
        .iter()
        .find(|h| h.secret_id == a)
        .expect("A is still held");
    let held_b = held.iter().find(|h| h.secret_id == b).expect("B is held");
    assert_eq!(
        held_a.status, "enabled",
        "the previous secret stays valid during the grace period"
    );
    assert_eq!(held_b.status, "enabled");
    let creates = s.calls_of("Create").await;
    assert_eq!(creates.len(), 2, "one Create per secret");
    let renewal_after = call_time(&creates[1]).duration_since(call_time(&creates[0]));
    assert!(
        renewal_after.as_secs_f64() >= 14.0 && renewal_after.as_secs_f64() <= 30.0,
        "the renewal came ~15 s after the first issue (notAfter - renewBefore): {renewal_after:?}"
    );
    let secret = s
        .wait_secret("renewing", "the new secret published", |sec| {
            annotation(sec, "eiam-operator.io/secret-id") == b
        })
        .await;
    assert_eq!(data(&secret, "clientSecret"), held_b.client_secret);
    let status = rotated.status.clone().expect("status");
    let retire_at = status
        .previous_retire_at
        .clone()
        .expect("previousRetireAt")
        .0;
    let rotated_at = status
        .last_rotation_time
        .clone()
        .expect("lastRotationTime")
        .0;
    assert_eq!(
        retire_at.duration_since(rotated_at).as_secs(),
        10,
        "previousRetireAt = rotation + gracePeriod"
    );

    // The retirement after the grace period (before the next renewal, 15 s after B's issue).
    let retired = s
        .wait_for(
            "renewing",
            "the previous secret retired",
            Duration::from_secs(40),
            |o| {
                (previous_id(o).is_none() && current_id(o).as_deref() == Some(b.as_str()))
                    .then(|| o.clone())
            },
        )
        .await;
    let counts = s.fake.counts().await;
    eprintln!("[b03] EIAM calls for issue + one renewal + one retirement: {counts:?}");
    // One rotation and one retirement cost exactly the Create and the Disable and Delete: the status says which
    // slot is free and which secret to retire, so neither lists first, and the new value comes from the Create
    // (no Obtain). The only List allowed is the periodic drift check, if this resource's slot of the hour (phased
    // by its uid) happened to fall within the test.
    let spent = |action: &str| {
        counts.get(action).copied().unwrap_or_default()
            - issued.get(action).copied().unwrap_or_default()
    };
    let created = first
        .metadata
        .creation_timestamp
        .clone()
        .expect("creationTimestamp")
        .0;
    let hour = Duration::from_secs(3600);
    let drift_slot = eiam_operator::reconcile::watch::drift::next_slot(
        created,
        eiam_operator::reconcile::watch::drift::phase(&first.uid().expect("uid"), hour),
        hour,
    );
    let drift_checks = usize::from(drift_slot <= jiff::Timestamp::now());
    assert_eq!(
        (
            spent("Create"),
            spent("Disable"),
            spent("Delete"),
            spent("Obtain")
        ),
        (1, 1, 1, 0),
        "one rotation + one retirement: Create 1, Disable 1, Delete 1, no Obtain: {counts:?} (after the first issue: \
         {issued:?})"
    );
    assert_eq!(
        spent("List"),
        drift_checks,
        "no List for the rotation or the retirement (drift checks due in between: {drift_checks}): {counts:?}"
    );
    let disables = s.calls_of("Disable").await;
    let deletes = s.calls_of("Delete").await;
    assert_eq!(disables.len(), 1, "one Disable: {disables:?}");
    assert_eq!(deletes.len(), 1, "one Delete: {deletes:?}");
    assert_eq!(
        disables[0].params.get("SecretId"),
        Some(&a),
        "Disable names A"
    );
    assert_eq!(
        deletes[0].params.get("SecretId"),
        Some(&a),
        "Delete names A"
    );
    assert!(disables[0].seq < deletes[0].seq, "disabled before deleted");
    let grace_used = call_time(&disables[0]).duration_since(call_time(&creates[1]));
    assert!(
        grace_used.as_secs_f64() >= 9.0,
        "A was disabled only after the 10 s grace period: {grace_used:?}"
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert!(
        held.iter().all(|h| h.secret_id != a),
        "A is gone from EIAM: {held:?}"
    );
    assert!(
        held.iter()
            .any(|h| h.secret_id == b && h.status == "enabled")
    );
    assert_eq!(
        current_id(&retired).as_deref(),
        Some(b.as_str()),
        "B is still current"
    );

    // Ready stayed True, and the resource never went InProgress/Failed, across every version written.
    let versions = history.versions();
    let from_first_ready = versions
        .iter()
        .skip_while(|v| condition_status(v, "Ready") != "True")
        .collect::<Vec<_>>();
    assert!(
        from_first_ready.len() >= 3,
        "issue, rotation and retirement were recorded"
    );
    for version in &from_first_ready {
        assert_eq!(
            condition_status(version, "Ready"),
            "True",
            "Ready stays True through renewal and retirement (resourceVersion {:?})",
            version.resource_version()
        );
        assert_ne!(condition_status(version, "Reconciling"), "True");
        assert_eq!(kstatus(version), KStatus::Current);
    }
    assert!(
        s.fake.max_secrets_held(INSTANCE, APP) <= 2,
        "never more than two secrets"
    );

    for reason in ["Issued", "Rotated", "Retired"] {
        s.wait_event("renewing", "Normal", reason).await;
    }
    let rotated_event = s.wait_event("renewing", "Normal", "Rotated").await;
    let note = rotated_event.note.unwrap_or_default();
    assert!(
        note.contains(&b) && note.contains(&a),
        "Rotated names both: {note}"
    );
    s.finish().await;
}

/// Behaviour 4: a Deployment in `rotation.restartTargets` gets a new pod-template annotation after each publish
/// that replaces a value — exactly once per rotation (its generation moves by one per rotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b04_restart_targets_roll_exactly_once_per_rotation() {
    const APP: &str = "app_restart";
    let mut s = Scenario::new("b04-restart-targets", &[APP]).await;
    let deployments = s.api::<Deployment>();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "consumer" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "consumer" } },
            "template": {
                "metadata": { "labels": { "app": "consumer" } },
                "spec": { "containers": [{
                    "name": "app", "image": "registry.invalid/consumer:1",
                    "envFrom": [{ "secretRef": { "name": "consumer-creds" } }]
                }] }
            }
        }
    }))
    .expect("a Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    let rollouts = History::record(deployments.clone(), "consumer").await;
    s.start_operator().await;
    s.create(
        "consumer-creds",
        json!({
            "instanceId": INSTANCE, "applicationId": APP,
            "rotation": { "gracePeriod": "1s",
                          "restartTargets": [{ "kind": "Deployment", "name": "consumer" }] }
        }),
    )
    .await;
    let first = s.wait_ready("consumer-creds").await;
    let a = current_id(&first).expect("A");
    s.wait_reconciled("consumer-creds").await;
    let d = deployments.get("consumer").await.expect("Deployment");
    assert_eq!(
        template_annotation(&d),
        None,
        "the first publish replaces no value: nothing to restart"
    );
    assert_eq!(d.metadata.generation, Some(1));

    let mut ids = vec![a.clone()];
    for (round, request) in ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]
        .iter()
        .enumerate()
    {
        let before = ids.last().cloned().expect("an id");
        s.request_rotation("consumer-creds", request).await;
        let rotated = s
            .wait_for(
                "consumer-creds",
                "rotated and the previous secret retired",
                SOON,
                |o| {
                    (current_id(o).is_some_and(|id| id != before)
                        && previous_id(o).is_none()
                        && kstatus(o) == KStatus::Current)
                        .then(|| o.clone())
                },
            )
            .await;
        let new = current_id(&rotated).expect("new");
        s.wait_reconciled("consumer-creds").await;
        let d = deployments.get("consumer").await.expect("Deployment");
        assert_eq!(
            template_annotation(&d).as_deref(),
            Some(new.as_str()),
            "round {round}: the pod template names the secret just published"
        );
        assert_eq!(
            d.metadata.generation,
            Some(2 + round as i64),
            "round {round}: exactly one template change per rotation"
        );
        ids.push(new);
    }

    // Every version of the Deployment: generation 1 without the annotation, then one generation per rotation.
    let seen: Vec<(Option<i64>, Option<String>)> = rollouts
        .versions()
        .iter()
        .map(|d| (d.metadata.generation, template_annotation(d)))
        .collect();
    for (generation, value) in &seen {
        let expected = match generation {
            Some(1) => None,
            Some(2) => Some(ids[1].clone()),
            Some(3) => Some(ids[2].clone()),
            other => panic!("unexpected Deployment generation {other:?}: {seen:?}"),
        };
        assert_eq!(value, &expected, "generation {generation:?}: {seen:?}");
    }
    assert_eq!(s.fake.count("Create").await, 3);
    s.finish().await;
}

fn template_annotation(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_FOR)
        .cloned()
}

/// Behaviour 5: setting `eiam-operator.io/rotate-requested-at` rotates once and records the value in
/// `status.lastHandledRotateAt`; the same value again (re-applied, or removed and set back) does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b05_manual_rotation_happens_once_per_requested_value() {
    const APP: &str = "app_manual";
    let mut s = Scenario::new("b05-manual-rotation", &[APP]).await;
    s.start_operator().await;
    s.create(
        "manual",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "rotation": { "gracePeriod": "1s" } }),
    )
    .await;
    let first = s.wait_ready("manual").await;
    let a = current_id(&first).expect("A");
    assert_eq!(s.fake.count("Create").await, 1);

    const REQUEST: &str = "2026-11-26T12:00:00Z";
    s.request_rotation("manual", REQUEST).await;
    let rotated = s
        .wait_for("manual", "rotated once and settled", SOON, |o| {
            (current_id(o).is_some_and(|id| id != a)
                && previous_id(o).is_none()
                && kstatus(o) == KStatus::Current)
                .then(|| o.clone())
        })
        .await;
    let b = current_id(&rotated).expect("B");
    let status = rotated.status.clone().expect("status");
    assert_eq!(status.last_handled_rotate_at.as_deref(), Some(REQUEST));
    assert_eq!(s.fake.count("Create").await, 2, "exactly one rotation");
    let secret = s.secret_api().get("manual").await.expect("Secret");
    assert_eq!(annotation(&secret, "eiam-operator.io/secret-id"), b);
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(
        held.len(),
        1,
        "A retired after its 1 s grace period: {held:?}"
    );
    assert_eq!(held[0].secret_id, b);
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);
    s.wait_event("manual", "Normal", "Rotated").await;

    // The same value again, with another change that makes the operator look: nothing happens.
    let reconciles = s.reconciles("manual");
    s.patch(
        "manual",
        json!({ "metadata": { "annotations": {
            "eiam-operator.io/rotate-requested-at": REQUEST, "note": "touched" } } }),
    )
    .await;
    s.wait_more_reconciles("manual", reconciles).await;
    s.wait_reconciled("manual").await;
    // Removed, then set back to the value already handled.
    s.patch(
        "manual",
        json!({ "metadata": { "annotations": { "eiam-operator.io/rotate-requested-at": null } } }),
    )
    .await;
    s.wait_reconciled("manual").await;
    s.request_rotation("manual", REQUEST).await;
    let settled = s.wait_reconciled("manual").await;
    assert_eq!(
        s.fake.count("Create").await,
        2,
        "the handled value does not rotate again"
    );
    assert_eq!(current_id(&settled).as_deref(), Some(b.as_str()));
    assert_eq!(
        s.event_count("manual", "Normal", "Rotated").await,
        1,
        "one Rotated event"
    );
    s.finish().await;
}
