//! SIGTERM: the operator stops taking work, lets the in-flight reconcile finish (at most `--shutdown-timeout`),
//! releases the Lease and exits 0. Exit times are measured from the signal and printed.

use std::time::{Duration, Instant};

use eiam_operator::api::ApplicationClientSecret;
use serde_json::json;

use crate::common::{control_plane, wait_until};
use crate::support::{
    Operator, OperatorSpec, create_resource, fake, get_resource, lease_holder, sample, wait_ready,
};

const CREATE: &str = "CreateApplicationClientSecret";

/// The exit code, or the signal that ended the process.
fn exit_code(status: std::process::ExitStatus) -> String {
    status
        .code()
        .map(|code| code.to_string())
        .unwrap_or_else(|| status.to_string())
}

/// Sends SIGTERM and waits for the exit; returns the exit status and how long it took.
async fn terminate(operator: &mut Operator) -> (std::process::ExitStatus, Duration) {
    let signalled = Instant::now();
    operator.process.signal(libc::SIGTERM);
    let status = wait_until("the operator to exit", Duration::from_secs(30), || {
        let status = operator.process.try_wait();
        async move { status }
    })
    .await;
    (status, signalled.elapsed())
}

/// Whether the resource carries the write-ahead marker of a Create: `status.pendingCreateSince`, or on a first
/// issue the annotation set with the finalizer while the status records no secret yet.
fn write_ahead_marker(resource: &ApplicationClientSecret) -> bool {
    let status = resource.status.clone().unwrap_or_default();
    status.pending_create_since.is_some()
        || (status.current_secret_id.is_none() && resource.first_create_since().is_some())
}

/// Waits until a reconcile is inside a Create: the write-ahead marker is stored and one reconcile is in flight.
async fn wait_for_create_in_flight(operator: &Operator, client: &kube::Client, namespace: &str) {
    wait_until("a Create in flight", Duration::from_secs(30), || async {
        let resource = get_resource(client, namespace, "web").await;
        let marked = write_ahead_marker(&resource);
        let in_flight = sample(
            &operator.scrape().await,
            "eiam_operator_reconciles_in_flight",
        );
        (marked && in_flight == Some(1.0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_rotation_releases_the_lease_and_exits_zero() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-sigterm").await;
    let client = cp.client().await;
    let create_latency = Duration::from_millis(2500);
    let fake = fake(json!([{
        "kind": "latency", "latencyMs": create_latency.as_millis() as u64, "action": CREATE
    }]))
    .await;
    let mut operator = OperatorSpec::new(cp, ns.name(), &fake.url()).start().await;
    operator
        .process
        .wait_for_line("leader Lease acquired", Duration::from_secs(30))
        .await;

    create_resource(&client, ns.name(), "web").await;
    wait_for_create_in_flight(&operator, &client, ns.name()).await;
    let (status, took) = terminate(&mut operator).await;
    println!(
        "graceful shutdown with a Create in flight: exit code {} after {:.2} s (Create takes {:.1} s)",
        exit_code(status),
        took.as_secs_f64(),
        create_latency.as_secs_f64()
    );
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        operator.process.output()
    );
    assert!(took < Duration::from_secs(5), "took {took:?} to exit");

    // The rotation was finished, not cut: the secret is published and the write-ahead marker cleared.
    let resource = get_resource(&client, ns.name(), "web").await;
    let stored = resource.status.expect("status");
    assert!(stored.pending_create_since.is_none(), "{stored:?}");
    assert!(stored.current_secret_id.is_some(), "{stored:?}");
    assert!(
        stored
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert_eq!(fake.calls_of(CREATE).len(), 1);
    assert_eq!(
        lease_holder(&client, ns.name()).await,
        None,
        "Lease not released"
    );
    let messages: Vec<String> = operator
        .records()
        .iter()
        .filter_map(|r| r["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    let position = |m: &str| {
        messages
            .iter()
            .position(|x| x == m)
            .unwrap_or_else(|| panic!("no {m:?} in {messages:#?}"))
    };
    assert!(position("stop requested") < position("controller stopped"));
    assert!(position("controller stopped") < position("leader Lease released"));
    assert!(position("leader Lease released") < position("eiam-operator stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_a_stuck_reconcile_after_the_timeout_and_the_next_leader_finishes_it() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-stuck").await;
    let client = cp.client().await;
    // Slower than the shutdown timeout, faster than the client's read timeout.
    let fake = fake(json!([{
        "kind": "latency", "latencyMs": 8000, "action": CREATE, "next": 1
    }]))
    .await;
    let mut operator = OperatorSpec::new(cp, ns.name(), &fake.url())
        .arg("--shutdown-timeout")
        .arg("1s")
        .start()
        .await;
    operator
        .process
        .wait_for_line("leader Lease acquired", Duration::from_secs(30))
        .await;
    create_resource(&client, ns.name(), "web").await;
    wait_for_create_in_flight(&operator, &client, ns.name()).await;
    let (status, took) = terminate(&mut operator).await;
    println!(
        "shutdown with a stuck reconcile (--shutdown-timeout 1s): exit code {} after {:.2} s",
        exit_code(status),
        took.as_secs_f64()
    );
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        operator.process.output()
    );
    assert!(took < Duration::from_secs(4), "took {took:?} to exit");
    assert!(
        !operator
            .records_with(
                "in-flight reconciles did not finish within the shutdown timeout; abandoning them"
            )
            .is_empty(),
        "{}",
        operator.process.output()
    );
    // The write-ahead marker survived the cut...
    let cut = get_resource(&client, ns.name(), "web").await;
    assert!(write_ahead_marker(&cut), "{cut:?}");

    // ...so the next leader lists before it creates, and finishes the job.
    let successor = OperatorSpec::new(cp, ns.name(), &fake.url())
        .named("successor")
        .start()
        .await;
    let resource = wait_ready(&client, ns.name(), "web", Duration::from_secs(60)).await;
    let stored = resource.status.expect("status");
    assert!(stored.pending_create_since.is_none());
    let current = stored.current_secret_id.expect("current secret");
    let held: Vec<String> = fake
        .state()
        .instances
        .values()
        .flat_map(|i| i.applications.values())
        .flat_map(|a| a.secrets.iter().map(|s| s.secret_id.clone()))
        .collect();
    assert!(held.contains(&current), "{current} not in EIAM: {held:?}");
    assert!(held.len() <= 2, "{held:?}");
    drop(successor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_an_idle_leader_and_on_a_standby_exits_zero_at_once() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-idle").await;
    let fake = fake(json!([])).await;
    let mut leader = OperatorSpec::new(cp, ns.name(), &fake.url())
        .named("leader")
        .start()
        .await;
    leader
        .process
        .wait_for_line("watches synced", Duration::from_secs(30))
        .await;
    let mut standby = OperatorSpec::new(cp, ns.name(), &fake.url())
        .named("standby")
        .start()
        .await;
    standby
        .process
        .wait_for_line("standing by for the leader Lease", Duration::from_secs(30))
        .await;

    let (status, took) = terminate(&mut standby).await;
    println!(
        "standby shutdown: exit code {} after {:.3} s",
        exit_code(status),
        took.as_secs_f64()
    );
    assert!(
        status.success() && took < Duration::from_secs(3),
        "{status} after {took:?}"
    );
    let (status, took) = terminate(&mut leader).await;
    println!(
        "idle leader shutdown: exit code {} after {:.3} s",
        exit_code(status),
        took.as_secs_f64()
    );
    assert!(
        status.success() && took < Duration::from_secs(3),
        "{status} after {took:?}"
    );
}
