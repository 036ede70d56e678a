//! Leader election between two real operator processes: one reconciles, the other stands by (ready, idle); when
//! the leader is SIGKILLed the standby takes the Lease over within the lease duration and carries on alone.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{control_plane, wait_until};
use crate::support::{
    OTHER_APPLICATION, OperatorSpec, create_resource, create_resource_for, fake, lease_holder,
    sample, wait_ready,
};

/// Short, so that the test is quick; production defaults to 15 s.
const LEASE_SECONDS: u64 = 6;
/// kube-lease-manager waits up to 1 s at random before taking an expired Lease (to avoid collisions), and the API
/// calls take a moment (more on a loaded CI machine).
const TAKEOVER_SLACK: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_within_the_lease_duration_after_the_leader_is_killed() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-leader").await;
    let client = cp.client().await;
    let fake = fake(json!([])).await;
    let lease = format!("{LEASE_SECONDS}s");
    let spec = |name: &str| {
        OperatorSpec::new(cp, ns.name(), &fake.url())
            .named(name)
            .arg("--leader-election-lease-duration")
            .arg(&lease)
    };

    let mut first = spec("operator-a").start().await;
    first
        .process
        .wait_for_line("leader Lease acquired", Duration::from_secs(30))
        .await;
    let mut second = spec("operator-b").start().await;
    second
        .process
        .wait_for_line("standing by for the leader Lease", Duration::from_secs(30))
        .await;
    let (leader_id, standby_id) = (first.identity(), second.identity());
    assert_ne!(leader_id, standby_id);
    assert_eq!(
        lease_holder(&client, ns.name()).await.as_deref(),
        Some(leader_id.as_str())
    );

    // Both are ready: one leads, the other stands by.
    wait_until(
        "the leader to be ready",
        Duration::from_secs(30),
        || async { (first.probe("/readyz").await == (200, "leading\n".to_owned())).then_some(()) },
    )
    .await;
    assert_eq!(
        second.probe("/readyz").await,
        (200, "standing by\n".to_owned())
    );

    // Only the leader reconciles.
    create_resource(&client, ns.name(), "first").await;
    wait_ready(&client, ns.name(), "first", Duration::from_secs(60)).await;
    assert!(!first.reconcile_records().is_empty());
    assert!(
        second.reconcile_records().is_empty(),
        "the standby reconciled:\n{}",
        second.process.output()
    );
    let standby_metrics = second.scrape().await;
    assert_eq!(sample(&standby_metrics, "eiam_operator_leader"), Some(0.0));
    assert!(
        !standby_metrics.contains("eiam_operator_eiam_calls_total{"),
        "the standby called EIAM:\n{standby_metrics}"
    );
    assert_eq!(
        sample(&first.scrape().await, "eiam_operator_leader"),
        Some(1.0)
    );

    // SIGKILL: no chance to release the Lease; the standby must wait for it to expire.
    let killed_at = Instant::now();
    first.process.kill();
    second
        .process
        .wait_for_line(
            "leader Lease acquired",
            Duration::from_secs(LEASE_SECONDS * 3),
        )
        .await;
    let takeover = killed_at.elapsed();
    println!(
        "leader takeover after SIGKILL: {:.2} s (lease duration {LEASE_SECONDS} s)",
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS) + TAKEOVER_SLACK,
        "takeover took {takeover:?}, more than the {LEASE_SECONDS} s lease (+{TAKEOVER_SLACK:?})"
    );
    assert_eq!(
        lease_holder(&client, ns.name()).await.as_deref(),
        Some(standby_id.as_str())
    );

    // The new leader carries on: it reconciles a new resource, and EIAM saw exactly one Create per resource.
    create_resource_for(&client, ns.name(), "second", OTHER_APPLICATION).await;
    wait_ready(&client, ns.name(), "second", Duration::from_secs(60)).await;
    assert!(
        second
            .reconcile_records()
            .iter()
            .any(|r| r["span"]["resource"] == "second"),
        "the new leader did not reconcile:\n{}",
        second.process.output()
    );
    assert_eq!(
        fake.calls_of("CreateApplicationClientSecret").len(),
        2,
        "one Create per resource, none twice"
    );
    wait_until(
        "the new leader to be ready",
        Duration::from_secs(30),
        || async { (second.probe("/readyz").await == (200, "leading\n".to_owned())).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_and_exits_non_zero() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-lost-lease").await;
    let client = cp.client().await;
    let fake = fake(json!([])).await;
    let mut leader = OperatorSpec::new(cp, ns.name(), &fake.url())
        .arg("--leader-election-lease-duration")
        .arg(&format!("{LEASE_SECONDS}s"))
        .start()
        .await;
    leader
        .process
        .wait_for_line("watches synced", Duration::from_secs(30))
        .await;

    // Another party takes the Lease (as a replica with a skewed clock or a manual edit would).
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
    let patch = json!({ "spec": {
        "holderIdentity": "intruder",
        "acquireTime": now,
        "renewTime": now,
        "leaseDurationSeconds": 3600,
    }});
    kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), ns.name())
        .patch(
            eiam_operator::leader::LEASE_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("take the Lease");
    let taken_at = Instant::now();
    let status = wait_until(
        "the leader to exit",
        Duration::from_secs(LEASE_SECONDS * 3),
        || {
            let status = leader.process.try_wait();
            async move { status }
        },
    )
    .await;
    println!(
        "leader noticed the lost Lease and exited after {:.2} s",
        taken_at.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(1), "{}", leader.process.output());
    assert!(
        !leader
            .records_with("leader Lease lost: cancelling in-flight reconciles")
            .is_empty(),
        "{}",
        leader.process.output()
    );
    assert_eq!(
        lease_holder(&client, ns.name()).await.as_deref(),
        Some("intruder"),
        "the exiting leader must not release someone else's Lease"
    );
}
