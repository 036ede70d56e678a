//! Behaviour 15: what kstatus (Flux, `kubectl wait`, Argo CD) reads. observedGeneration moves only once a spec
//! change is handled; a scheduled rotation keeps Ready=True and never sets Reconciling; a permanent error sets
//! Stalled=True (Failed); a resource being deleted is Terminating.

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b15_kstatus_reads_current_inprogress_failed_and_terminating_correctly() {
    const APP: &str = "app_kstatus";
    let mut s = Scenario::new("b15-kstatus", &[APP]).await;
    s.start_operator().await;
    let history = History::record(s.acs_api(), "watched").await;
    let created = s
        .create(
            "watched",
            json!({
                "instanceId": INSTANCE, "applicationId": APP,
                "expiresAfter": "24h", "renewBefore": "23h59m45s",
                "rotation": { "gracePeriod": "5s" }
            }),
        )
        .await;
    assert_eq!(kstatus(&created), KStatus::InProgress, "no status yet");
    let first = s.wait_ready("watched").await;
    let a = current_id(&first).expect("A");

    // A spec change: InProgress until handled, and handled means the Secret already carries it.
    let changed = s
        .patch(
            "watched",
            json!({ "spec": { "target": { "labels": { "team": "a" } } } }),
        )
        .await;
    assert_eq!(changed.metadata.generation, Some(2));
    assert_eq!(
        kstatus(&changed),
        KStatus::InProgress,
        "observedGeneration 1 != generation 2"
    );
    let handled = s
        .wait_for("watched", "observedGeneration 2", SOON, |o| {
            (o.status.as_ref().and_then(|st| st.observed_generation) == Some(2)).then(|| o.clone())
        })
        .await;
    assert_eq!(kstatus(&handled), KStatus::Current);
    let secret = s.secret_api().get("watched").await.expect("Secret");
    assert_eq!(
        secret.labels().get("team").map(String::as_str),
        Some("a"),
        "observedGeneration moved only after the change reached the Secret"
    );

    // The scheduled rotation (~15 s after the first issue) and the retirement 5 s later.
    let rotated = s
        .wait_for(
            "watched",
            "the scheduled rotation",
            Duration::from_secs(60),
            |o| current_id(o).filter(|id| *id != a).map(|_| o.clone()),
        )
        .await;
    let b = current_id(&rotated).expect("B");
    s.wait_for("watched", "the previous secret retired", SOON, |o| {
        (previous_id(o).is_none() && current_id(o).as_deref() == Some(b.as_str())).then_some(())
    })
    .await;
    let versions = history.versions();
    let mut seen_current = false;
    for version in &versions {
        let state = kstatus(version);
        assert_ne!(
            condition_status(version, "Reconciling"),
            "True",
            "a scheduled rotation never sets Reconciling (resourceVersion {:?})",
            version.resource_version()
        );
        assert_ne!(state, KStatus::Failed);
        seen_current |= state == KStatus::Current;
        if seen_current {
            assert_eq!(
                condition_status(version, "Ready"),
                "True",
                "Ready stays True from the first issue on (resourceVersion {:?})",
                version.resource_version()
            );
        }
        if state == KStatus::InProgress && seen_current {
            assert_ne!(
                version
                    .status
                    .as_ref()
                    .and_then(|st| st.observed_generation),
                version.metadata.generation,
                "InProgress after the first issue only while a spec change is pending"
            );
        }
    }
    eprintln!(
        "[b15] kstatus over {} versions: {:?}",
        versions.len(),
        versions.iter().map(kstatus).collect::<Vec<_>>()
    );

    // A permanent error: the application is gone from EIAM → Stalled=True → Failed, at the current generation.
    s.fake
        .admin(
            "applications/delete",
            json!({ "instanceId": INSTANCE, "applicationId": APP }),
        )
        .await;
    s.request_rotation("watched", "2026-11-26T00:00:00Z").await;
    let failed = s
        .wait_for(
            "watched",
            "Stalled=True after a permanent error",
            SOON,
            |o| (kstatus(o) == KStatus::Failed).then(|| o.clone()),
        )
        .await;
    assert_eq!(condition_status(&failed, "Ready"), "False");
    assert_eq!(
        failed.status.as_ref().and_then(|st| st.observed_generation),
        failed.metadata.generation
    );
    let message = condition(&failed, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("EntityNotExists.Application"), "{message}");

    // Deletion that cannot finish yet (the finalizer waits for EIAM): Terminating, whatever the conditions say.
    s.scanned_later
        .push(serde_json::to_string(&failed).unwrap_or_default());
    let outcomes = s.reconcile_outcomes("watched");
    s.delete("watched").await;
    let terminating = s.get("watched").await;
    assert_eq!(kstatus(&terminating), KStatus::Terminating);
    s.wait_reconcile_outcomes("watched", outcomes).await;
    let still = s.get("watched").await;
    assert_eq!(
        kstatus(&still),
        KStatus::Terminating,
        "the finalizer holds it"
    );

    // EIAM is back: a poke (any annotation) and the deletion completes.
    s.fake
        .admin(
            "applications",
            json!({ "instanceId": INSTANCE, "applicationId": APP }),
        )
        .await;
    s.patch(
        "watched",
        json!({ "metadata": { "annotations": { "poke": "1" } } }),
    )
    .await;
    s.wait_gone("watched").await;
    s.finish().await;
}
