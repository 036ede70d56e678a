//! Benchmark: how the real operator converges N resources, and what it costs — time until every resource is
//! Ready, EIAM calls and API-server requests per resource, calls while idle, the operator's CPU time and memory —
//! then what one rotation of all of them at once costs, through the grace period to retirement, and finally what a
//! restart of the operator costs (a rolling upgrade or a leader failover: EIAM calls and API requests in the first
//! `BENCH_RESTART_SECONDS`, time until every resource was reconciled again, peak memory).
//!
//! `make bench` (`cargo bench --bench convergence`) runs it for `BENCH_SIZES` (default `10,100,500`) resources,
//! each against its own application in the fake EIAM, on the test control plane (tests/testenv) with the real
//! `eiam-operator` binary, and prints one table row per size. Numbers, not assertions: nothing here is timed as a
//! pass/fail test.
//!
//! `BENCH_QPS_CAP=N` puts the fake EIAM behind a flow-control cap of N calls per second (`Throttling.User` beyond
//! it, as EIAM's per-account limit) and gives the operator the same budget (`--default-qps N`): the run then shows
//! how much of the cap the operator uses (the ideal is one call per new resource at N per second) and how many
//! calls were throttled (none should be). Without it the budget is lifted (`--default-qps 1000`), so the numbers
//! are the operator's own cost.
//!
//! A "noisy neighbour" phase follows (skip it with `BENCH_NOISY=0`): another team's 5 new resources are timed on
//! an idle operator, then again while a tenant's own providers misbehave every way issue 20 measured (a `qps` of
//! 0.01 with 40 resources, an endpoint that never answers with 30, one that drips bytes, one that streams an endless
//! body, one that answers `x-acs-retry-after: 1e300` and one that answers a fresh error code, 10 each), all with the
//! operator's shipped defaults; it prints both times, their ratio, the operator's memory and its deferrals.
//!
//! Then issue 23's adaptive budget phases (skip them with `BENCH_ADAPTIVE=0`; see `adaptive_budget.rs`): new
//! resources against a cap the operator is not told about, two operators on one account's cap, a cap that drops.
//!
//! Under `cargo test` (no `--bench` argument) it runs once with 3 resources as a smoke test and asserts what must
//! hold at any size: every resource Ready, exactly one EIAM call (the Create) per new resource, zero EIAM calls and
//! zero API-server writes while idle, one Create, Disable and Delete per rotation and one secret per application
//! afterwards, and zero EIAM calls in a restart — so the benchmark cannot rot unnoticed. The smoke test runs the
//! operator with a `--resync-interval` of a year, so that no drift check falls in its seconds; a benchmark keeps the
//! default hour, and its idle and restart windows then see the drift checks whose slots fall in them (printed next
//! to the number expected: N × window / 1h).

#![allow(dead_code, unused_imports)]

#[cfg(not(feature = "testing"))]
compile_error!(
    "this test needs the fake EIAM and the failpoint: run it with `--features testing` (as `make test` does)"
);

#[path = "convergence/adaptive_budget.rs"]
mod adaptive_budget;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/ops_e2e/support.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use eiam_operator::api::{ANNOTATION_ROTATE, ApplicationClientSecret};
use eiam_operator::fake::{FakeConfig, FakeEiam, FakeHandle, FaultPlan, RecordedCall};
use futures::{StreamExt, stream};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

use common::{ControlPlane, control_plane};
use support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, OperatorSpec};

const INSTANCE: &str = "idaas_bench";
/// Pause between the operator's readiness and the first create.
const SETTLE: Duration = Duration::from_secs(3);
/// `spec.rotation.gracePeriod` of every resource: how long a replaced secret stays valid.
const GRACE: Duration = Duration::from_secs(5);

/// One run's settings.
#[derive(Debug, Clone)]
struct Settings {
    sizes: Vec<usize>,
    /// How long the operator is watched doing nothing after convergence.
    idle: Duration,
    /// `--concurrency` of the operator (its default when unset).
    concurrency: Option<usize>,
    /// Smoke-test mode (`cargo test`): assert the invariants.
    smoke: bool,
    /// How long a restart is watched.
    restart_window: Duration,
    /// `BENCH_QPS_CAP`: the fake's flow-control cap and the operator's budget, calls per second.
    qps_cap: Option<u32>,
    /// The operator's `--resync-interval`: 1h (its default) in a benchmark, a year in the smoke test, whose
    /// assertions would otherwise meet a drift check whose slot happens to fall in its few seconds.
    resync: Duration,
    /// Run the noisy-neighbour phase (a benchmark, unless `BENCH_NOISY=0`).
    noisy: bool,
    /// Run the adaptive budget's phases (a benchmark, unless `BENCH_ADAPTIVE=0`; see `adaptive_budget`).
    adaptive: bool,
}

impl Settings {
    fn from_env() -> Self {
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        let sizes = match std::env::var("BENCH_SIZES") {
            // Only the other phases (`BENCH_SIZES= make bench`).
            Ok(list) if !smoke && list.trim().is_empty() => Vec::new(),
            Ok(list) if !smoke => list
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .unwrap_or_else(|e| panic!("BENCH_SIZES: {n:?}: {e}"))
                })
                .collect(),
            _ if smoke => vec![3],
            _ => vec![10, 100, 500],
        };
        let idle = Duration::from_secs(
            std::env::var("BENCH_IDLE_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(if smoke { 3 } else { 10 }),
        );
        let concurrency = std::env::var("BENCH_CONCURRENCY")
            .ok()
            .and_then(|s| s.parse().ok());
        let restart_window = Duration::from_secs(
            std::env::var("BENCH_RESTART_SECONDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(if smoke { 5 } else { 60 }),
        );
        let qps_cap = std::env::var("BENCH_QPS_CAP").ok().map(|cap| {
            cap.trim()
                .parse()
                .unwrap_or_else(|e| panic!("BENCH_QPS_CAP: {cap:?}: {e}"))
        });
        let resync = Duration::from_secs(if smoke { 365 * 24 * 3600 } else { 3600 });
        let noisy = !smoke && std::env::var("BENCH_NOISY").map_or(true, |v| v != "0");
        let adaptive = !smoke && std::env::var("BENCH_ADAPTIVE").map_or(true, |v| v != "0");
        Self {
            sizes,
            idle,
            concurrency,
            smoke,
            restart_window,
            qps_cap,
            resync,
            noisy,
            adaptive,
        }
    }
}

/// What one size measured.
#[derive(Debug)]
struct Measurement {
    resources: usize,
    /// From the first create request until every resource was seen Ready.
    converged: Duration,
    /// Per-resource time from its create request until a watch saw it Ready.
    latency_p50: Duration,
    latency_p95: Duration,
    /// EIAM calls by action during convergence.
    eiam_calls: BTreeMap<String, usize>,
    /// Calls the fake answered `Throttling*` during convergence (under `BENCH_QPS_CAP`).
    throttled: usize,
    /// API-server requests by method during convergence, from the operator's own counter.
    kube_requests: BTreeMap<String, f64>,
    /// During the idle period.
    idle_eiam_calls: usize,
    idle_kube_writes: f64,
    /// The operator's CPU time during convergence, and its resident memory afterwards.
    cpu: Duration,
    rss_kib: u64,
    peak_rss_kib: u64,
    /// The operator's memory high-water mark once the rotation of all resources was done.
    rotation_peak_rss_kib: u64,
    /// One rotation of every resource at once.
    rotation: Rotation,
    /// A restart of the operator afterwards.
    restart: Restart,
}

/// What restarting the operator (SIGTERM, then a new process) cost, with nothing due.
#[derive(Debug)]
struct Restart {
    /// From the new process's start until it had reconciled every resource once.
    all_reconciled: Duration,
    /// EIAM calls and the new process's API-server requests within the window.
    eiam_calls: usize,
    kube_requests: BTreeMap<String, f64>,
    window: Duration,
    peak_rss_kib: u64,
}

/// What rotating every resource at once measured.
#[derive(Debug)]
struct Rotation {
    /// From the first rotation request until every resource published its new secret.
    published: Duration,
    /// ... until every resource also retired (disabled and deleted) the previous one, [`GRACE`] later.
    retired: Duration,
    eiam_calls: BTreeMap<String, usize>,
    kube_requests: BTreeMap<String, f64>,
    /// The most secrets any application held once it was over (the fake's state).
    most_secrets_held: usize,
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(settings));
}

async fn run(settings: Settings) {
    let cp = control_plane().await;
    let client = cp.client().await;
    eprintln!(
        "convergence benchmark: sizes {:?}, idle {:?}, concurrency {}, {} cores",
        settings.sizes,
        settings.idle,
        settings
            .concurrency
            .map_or("default".to_owned(), |c| c.to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut rows = Vec::new();
    for &n in &settings.sizes {
        let measurement = measure(cp, &client, n, &settings).await;
        eprintln!("{measurement:?}");
        if settings.smoke {
            check_invariants(&measurement);
        }
        rows.push(measurement);
    }
    if !rows.is_empty() {
        print_table(&rows, &settings);
    }
    if let Some(cap) = settings.qps_cap {
        print_cap_table(&rows, cap);
    }
    if settings.adaptive {
        adaptive_budget::run(cp, &client).await;
    }
    if settings.noisy {
        noisy_neighbour(cp, &client).await;
    }
    cp.stop();
}

/// The other team's resources in the noisy-neighbour phase, timed once idle and once beside the tenant.
const NOISY_VICTIMS: usize = 5;

/// The tenant's hostile providers: name, `spec.qps` (or none), fault plan of its endpoint (or none), resources.
fn hostile_providers() -> Vec<(&'static str, Option<f64>, Option<serde_json::Value>, usize)> {
    vec![
        ("tiny-qps", Some(0.01), None, 40),
        ("hangs", None, Some(json!([{ "kind": "hang" }])), 30),
        (
            "drips",
            None,
            Some(json!([{ "kind": "drip", "latencyMs": 200 }])),
            10,
        ),
        (
            "endless",
            None,
            Some(json!([{ "kind": "endlessBody" }])),
            10,
        ),
        (
            "retry-forever",
            None,
            Some(json!([{ "kind": "throttle", "retryAfterText": "1e300" }])),
            10,
        ),
        (
            "fresh-codes",
            None,
            Some(json!([{ "kind": "freshCode" }])),
            10,
        ),
    ]
}

/// Issue 20's "noisy neighbour": the other team's time to Ready beside a hostile tenant, against an idle operator.
async fn noisy_neighbour(cp: &ControlPlane, client: &Client) {
    let victim_ns = cp.namespace("bench-noisy-victim").await;
    let tenant_ns = cp.namespace("bench-noisy-tenant").await;
    let mut applications: Vec<String> = Vec::new();
    for phase in ["idle", "busy"] {
        applications.extend((0..NOISY_VICTIMS).map(|i| format!("app_{phase}_{i}")));
    }
    let hostiles = hostile_providers();
    for (name, _, faults, count) in &hostiles {
        if faults.is_none() {
            applications.extend((0..*count).map(|i| format!("app_{name}_{i}")));
        }
    }
    let healthy = start_fake(&applications).await;
    let mut fakes = Vec::new();
    let mut urls = Vec::new();
    for (name, _, faults, count) in &hostiles {
        match faults {
            None => urls.push(healthy.url()),
            Some(rules) => {
                let apps: Vec<String> = (0..*count).map(|i| format!("app_{name}_{i}")).collect();
                let fake = start_fake(&apps).await;
                fake.set_faults(
                    serde_json::from_value(json!({ "rules": rules })).expect("a fault plan"),
                )
                .expect("the fake accepts the plan");
                urls.push(fake.url());
                fakes.push(fake);
            }
        }
    }
    // The shipped defaults (budget, concurrency, per-provider calls, call deadline): only the namespaces are ours.
    let operator = OperatorSpec::new(cp, victim_ns.name(), &healthy.url())
        .arg("--namespace")
        .arg(tenant_ns.name())
        .arg("--leader-election=false")
        .start()
        .await;
    wait_ready_probe(&operator).await;
    tokio::time::sleep(SETTLE).await;
    let victims: Api<ApplicationClientSecret> = Api::namespaced(client.clone(), victim_ns.name());
    let idle = victims_ready(&victims, &operator, "idle").await;

    let tenant: Api<ApplicationClientSecret> = Api::namespaced(client.clone(), tenant_ns.name());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), tenant_ns.name());
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "tenant-ak" },
                "stringData": { "accessKeyId": ACCESS_KEY_ID, "accessKeySecret": ACCESS_KEY_SECRET }
            }))
            .expect("a Secret"),
        )
        .await
        .expect("create the tenant's AccessKey Secret");
    let providers: Api<eiam_operator::api::EiamProvider> =
        Api::namespaced(client.clone(), tenant_ns.name());
    for ((name, qps, _, count), url) in hostiles.iter().zip(&urls) {
        let mut spec = json!({ "endpoint": url,
            "auth": { "accessKey": { "secretRef": { "name": "tenant-ak" } } } });
        if let Some(qps) = qps {
            spec["qps"] = json!(qps);
        }
        providers
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec }))
                    .expect("an EiamProvider"),
            )
            .await
            .expect("create a hostile provider");
        for i in 0..*count {
            let mut object = resource(&format!("{name}-{i}"), &format!("app_{name}_{i}"));
            object.spec.provider_ref =
                serde_json::from_value(json!({ "kind": "EiamProvider", "name": name })).ok();
            tenant
                .create(&PostParams::default(), &object)
                .await
                .expect("create a hostile resource");
        }
    }
    // Let the tenant's load build up: every hostile endpoint called, the hanging ones holding their calls.
    let start = Instant::now();
    while fakes.iter().any(|fake| fake.calls().is_empty())
        && start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let busy = victims_ready(&victims, &operator, "busy").await;
    let pid = operator.process.pid();
    let (rss_kib, peak_rss_kib) = memory(pid);
    let scrape = operator.scrape().await;
    let deferrals: f64 = scrape
        .lines()
        .filter(|line| line.starts_with("eiam_operator_reconcile_deferrals_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let panics = scrape
        .lines()
        .find_map(|line| line.strip_prefix("eiam_operator_reconcile_panics_total "))
        .unwrap_or("?")
        .to_owned();
    println!();
    println!(
        "| noisy neighbour (issue 20) | other team's {NOISY_VICTIMS} new resources Ready | ratio | operator RSS (peak) | deferrals | panics |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!("| idle operator | {:.2} s | | | | |", idle.as_secs_f64());
    println!(
        "| beside the hostile tenant ({} resources on 6 providers) | {:.2} s | {:.1}x | {:.1} MiB ({:.1} MiB) | {deferrals} | {panics} |",
        hostiles.iter().map(|h| h.3).sum::<usize>(),
        busy.as_secs_f64(),
        busy.as_secs_f64() / idle.as_secs_f64().max(0.001),
        rss_kib as f64 / 1024.0,
        peak_rss_kib as f64 / 1024.0,
    );
    drop(operator);
    drop(fakes);
}

/// Creates [`NOISY_VICTIMS`] resources named `{phase}-N` and returns how long until all were Ready.
async fn victims_ready(
    api: &Api<ApplicationClientSecret>,
    operator: &support::Operator,
    phase: &str,
) -> Duration {
    let start = Instant::now();
    for i in 0..NOISY_VICTIMS {
        api.create(
            &PostParams::default(),
            &resource(&format!("{phase}-{i}"), &format!("app_{phase}_{i}")),
        )
        .await
        .unwrap_or_else(|e| panic!("create {phase}-{i}: {e}"));
    }
    let mut ready: std::collections::HashSet<String> = std::collections::HashSet::new();
    watch_until(api, operator, start, Duration::from_secs(300), |resource| {
        if is_ready(resource)
            && let Some(name) = resource.metadata.name.clone()
            && name.starts_with(phase)
        {
            ready.insert(name);
        }
        (ready.len() >= NOISY_VICTIMS)
            .then_some(())
            .ok_or_else(|| format!("{} of {NOISY_VICTIMS} {phase} resources Ready", ready.len()))
    })
    .await;
    start.elapsed()
}

async fn measure(cp: &ControlPlane, client: &Client, n: usize, settings: &Settings) -> Measurement {
    let ns = cp.namespace(&format!("bench-{n}")).await;
    let applications: Vec<String> = (0..n).map(|i| format!("app_bench_{i:05}")).collect();
    let fake = start_fake(&applications).await;
    if let Some(cap) = settings.qps_cap {
        let plan = serde_json::from_value(json!({ "rules": [{ "kind": "qpsCap", "qps": cap }] }))
            .expect("a qpsCap fault plan");
        fake.set_faults(plan)
            .expect("the fake accepts the qpsCap plan");
    }
    let operator = operator_spec(cp, ns.name(), &fake.url(), settings)
        .start()
        .await;
    wait_ready_probe(&operator).await;
    // Measure steady operation, not start-up: a resource created within moments of the operator's first list can
    // wait ~2 s for the API server's watch cache to deliver it (seen in about half the runs without this pause).
    tokio::time::sleep(SETTLE).await;
    let pid = operator.process.pid();

    let api: Api<ApplicationClientSecret> = Api::namespaced(client.clone(), ns.name());
    let kube_before = kube_requests(&operator.scrape().await);
    let eiam_before = fake.calls().len();
    let cpu_before = cpu_time(pid);
    let start = Instant::now();

    // Create all resources, 16 requests in flight, remembering when each was sent.
    let created: HashMap<String, Instant> = stream::iter(applications.iter().enumerate())
        .map(|(i, application)| {
            let api = api.clone();
            async move {
                let name = format!("bench-{i:05}");
                let sent = Instant::now();
                api.create(&PostParams::default(), &resource(&name, application))
                    .await
                    .unwrap_or_else(|e| panic!("create {name}: {e}"));
                (name, sent)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut ready_at: HashMap<String, Instant> = HashMap::new();
    watch_until(
        &api,
        &operator,
        start,
        Duration::from_secs(60 + n as u64),
        |resource| {
            if is_ready(resource)
                && let Some(name) = resource.metadata.name.clone()
            {
                ready_at.entry(name).or_insert_with(Instant::now);
            }
            (ready_at.len() >= n)
                .then_some(())
                .ok_or_else(|| format!("{} of {n} resources Ready", ready_at.len()))
        },
    )
    .await;
    let converged = start.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let mut latencies: Vec<Duration> = ready_at
        .iter()
        .map(|(name, at)| at.duration_since(created[name]))
        .collect();
    latencies.sort();

    // Let the last status patches and events land before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = fake.calls();
    let mut eiam_calls = BTreeMap::new();
    let mut throttled = 0;
    for call in &calls[eiam_before..] {
        *eiam_calls.entry(short(&call.action)).or_default() += 1;
        if call.outcome.starts_with("Throttling") {
            throttled += 1;
        }
    }
    let kube_after = kube_requests(&operator.scrape().await);
    let kube_delta = delta(&kube_before, &kube_after);

    tokio::time::sleep(settings.idle).await;
    let idle_eiam_calls = fake.calls().len() - calls.len();
    let idle = delta(&kube_after, &kube_requests(&operator.scrape().await));
    let idle_kube_writes = ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|method| idle.get(*method).copied().unwrap_or(0.0))
        .sum();
    let (rss_kib, peak_rss_kib) = memory(pid);
    let rotation = rotate_all(&api, &fake, &operator, n).await;
    // The high-water mark since start, read once every rotation has retired its previous secret.
    let (_, rotation_peak_rss_kib) = memory(pid);
    let restart = restart(
        operator,
        operator_spec(cp, ns.name(), &fake.url(), settings),
        &fake,
        n,
        settings.restart_window,
    )
    .await;

    Measurement {
        resources: n,
        converged,
        latency_p50: percentile(&latencies, 50),
        latency_p95: percentile(&latencies, 95),
        eiam_calls,
        throttled,
        kube_requests: kube_delta,
        idle_eiam_calls,
        idle_kube_writes,
        cpu,
        rss_kib,
        peak_rss_kib,
        rotation_peak_rss_kib,
        rotation,
        restart,
    }
}

/// The operator as the benchmark runs it. Without leader election: its Lease renewals are a per-process cost, not a
/// per-resource one.
fn operator_spec(
    cp: &ControlPlane,
    namespace: &str,
    fake_url: &str,
    settings: &Settings,
) -> OperatorSpec {
    let qps = settings
        .qps_cap
        .map_or_else(|| "1000".to_owned(), |cap| cap.to_string());
    // The cap, when the run has one, is the operator's ceiling too (it is told the limit); `--max-qps` lets the
    // adaptive budget reach it (or 1000/s without a cap).
    let mut spec = OperatorSpec::new(cp, namespace, fake_url)
        .arg("--leader-election=false")
        .arg("--default-qps")
        .arg(&qps)
        .arg("--max-qps")
        .arg("1000")
        .arg("--resync-interval")
        .arg(&format!("{}s", settings.resync.as_secs()));
    if let Some(concurrency) = settings.concurrency {
        spec = spec.arg("--concurrency").arg(&concurrency.to_string());
    }
    spec
}

/// Stops the operator with SIGTERM and starts another, as a rolling upgrade or a failover would, with every
/// resource converged and nothing due; watches the new process for `window`.
async fn restart(
    old: support::Operator,
    spec: OperatorSpec,
    fake: &FakeHandle,
    n: usize,
    window: Duration,
) -> Restart {
    let mut old = old;
    let status = old.process.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "the operator exits 0 on SIGTERM: {status}"
    );
    let eiam_before = fake.calls().len();
    let start = Instant::now();
    let operator = spec.start().await;
    let deadline = Duration::from_secs(60 + n as u64);
    let all_reconciled = loop {
        if reconciles(&operator.scrape().await) >= n as f64 {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "the restarted operator did not reconcile every resource:\n{}",
            tail(&operator.process.output(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Some(rest) = window.checked_sub(start.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let eiam_calls = fake.calls().len() - eiam_before;
    let kube_requests = kube_requests(&operator.scrape().await);
    let (_, peak_rss_kib) = memory(operator.process.pid());
    Restart {
        all_reconciled,
        eiam_calls,
        kube_requests,
        window: start.elapsed(),
        peak_rss_kib,
    }
}

/// `eiam_operator_reconciles_total`, summed over results.
fn reconciles(scrape: &str) -> f64 {
    scrape
        .lines()
        .filter(|line| line.starts_with("eiam_operator_reconciles_total"))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

/// Asks every resource for one rotation at once (the `rotate-requested-at` annotation) and waits until each has
/// published a new secret and, after the grace period, retired the previous one.
async fn rotate_all(
    api: &Api<ApplicationClientSecret>,
    fake: &FakeHandle,
    operator: &support::Operator,
    n: usize,
) -> Rotation {
    let before: HashMap<String, String> = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list resources: {e}"))
        .items
        .into_iter()
        .filter_map(|r| Some((r.metadata.name?, r.status?.current_secret_id?)))
        .collect();
    assert_eq!(before.len(), n, "every resource has a current secret");
    let requested = jiff::Timestamp::now().to_string();
    let kube_before = kube_requests(&operator.scrape().await);
    let eiam_before = fake.calls().len();
    let start = Instant::now();
    stream::iter(before.keys())
        .map(|name| {
            let patch = json!({ "metadata": { "annotations": { ANNOTATION_ROTATE: requested } } });
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap_or_else(|e| panic!("annotate {name}: {e}"));
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;

    let mut published: HashMap<String, Instant> = HashMap::new();
    let mut retired: HashMap<String, Instant> = HashMap::new();
    let deadline = Duration::from_secs(60 + n as u64) + GRACE;
    watch_until(api, operator, start, deadline, |resource| {
        if let (Some(name), Some(status)) = (&resource.metadata.name, &resource.status) {
            let handled = status.last_handled_rotate_at.as_deref() == Some(requested.as_str());
            let replaced = status.current_secret_id.is_some()
                && status.current_secret_id.as_ref() != before.get(name);
            if handled && replaced {
                let now = Instant::now();
                published.entry(name.clone()).or_insert(now);
                if status.previous_secret_id.is_none() {
                    retired.entry(name.clone()).or_insert(now);
                }
            }
        }
        (retired.len() >= n).then_some(()).ok_or_else(|| {
            format!(
                "{} of {n} resources rotated and {} retired",
                published.len(),
                retired.len()
            )
        })
    })
    .await;
    let last = |at: &HashMap<String, Instant>| {
        at.values()
            .map(|t| t.duration_since(start))
            .max()
            .unwrap_or_default()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut eiam_calls = BTreeMap::new();
    for call in &fake.calls()[eiam_before..] {
        *eiam_calls.entry(short(&call.action)).or_default() += 1;
    }
    let state = serde_json::to_value(fake.state()).expect("fake state");
    let most_secrets_held = state["instances"][INSTANCE]["applications"]
        .as_object()
        .map(|apps| {
            apps.values()
                .map(|app| app["secrets"].as_array().map_or(0, Vec::len))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    Rotation {
        published: last(&published),
        retired: last(&retired),
        eiam_calls,
        kube_requests: delta(&kube_before, &kube_requests(&operator.scrape().await)),
        most_secrets_held,
    }
}

/// Feeds every change of the resources (a watch, starting with their current state) to `observe` until it returns
/// `Ok`; panics with its last `Err` (the progress so far) and the operator's output once `deadline` has passed
/// since `start`.
async fn watch_until(
    api: &Api<ApplicationClientSecret>,
    operator: &support::Operator,
    start: Instant,
    deadline: Duration,
    mut observe: impl FnMut(&ApplicationClientSecret) -> Result<(), String>,
) {
    let mut changes =
        std::pin::pin!(watcher(api.clone(), watcher::Config::default()).applied_objects());
    let mut progress = "nothing seen yet".to_owned();
    loop {
        let remaining = deadline.saturating_sub(start.elapsed());
        let change = tokio::time::timeout(remaining, changes.next()).await;
        let Ok(Some(Ok(resource))) = change else {
            panic!(
                "{progress} after {:?} ({change:?}); operator output:\n{}",
                start.elapsed(),
                tail(&operator.process.output(), 40)
            );
        };
        match observe(&resource) {
            Ok(()) => return,
            Err(now) => progress = now,
        }
    }
}

/// What must hold at any size; checked in smoke mode.
fn check_invariants(m: &Measurement) {
    let expected: BTreeMap<String, usize> = [("Create".to_owned(), m.resources)].into();
    assert_eq!(
        m.eiam_calls, expected,
        "one EIAM call, the Create, per new resource"
    );
    assert_eq!(
        m.restart.eiam_calls, 0,
        "a restart with nothing due sends no EIAM call"
    );
    assert!(m.restart.all_reconciled > Duration::ZERO);
    // The only GETs are the start-up check of the operator's CRDs (src/installed_crds.rs): one per CRD.
    assert_eq!(
        m.restart.kube_requests.get("GET").copied().unwrap_or(0.0),
        eiam_operator::api::crds::expected_schema_hashes().len() as f64,
        "a restart reads no resource and no Secret one by one (lists and watches only): {:?}",
        m.restart.kube_requests
    );
    assert_eq!(
        m.throttled, 0,
        "calls throttled within the operator's budget"
    );
    assert_eq!(m.idle_eiam_calls, 0, "EIAM calls while idle");
    assert_eq!(m.idle_kube_writes, 0.0, "API-server writes while idle");
    assert!(
        m.kube_requests.get("PATCH").copied().unwrap_or(0.0) >= m.resources as f64,
        "every resource's status was patched at least once: {:?}",
        m.kube_requests
    );
    assert!(m.peak_rss_kib > 0, "memory was read from /proc");
    for action in ["Create", "Disable", "Delete"] {
        assert_eq!(
            m.rotation.eiam_calls.get(action),
            Some(&m.resources),
            "one {action} per rotation: {:?}",
            m.rotation.eiam_calls
        );
    }
    assert_eq!(
        m.rotation.most_secrets_held, 1,
        "after retirement each application holds only its new secret"
    );
    assert!(
        m.rotation.retired >= GRACE,
        "the previous secret outlived the grace period"
    );
}

/// How many drift checks (one List each) fall due among `n` resources in `window`: their slots are spread evenly over
/// the resync interval, so these calls are expected, not overhead.
fn drift_checks_due(n: usize, window: Duration, settings: &Settings) -> f64 {
    n as f64 * window.as_secs_f64() / settings.resync.as_secs_f64()
}

fn print_table(rows: &[Measurement], settings: &Settings) {
    println!();
    println!(
        "| resources | converged | p50 ready | p95 ready | EIAM calls/resource | API requests/resource (by method) | idle EIAM calls | idle API writes | operator CPU | RSS | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|");
    for m in rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {} | {} | {} (drift checks due: {:.1}) | {} | {:.2} s | {:.1} MiB | {:.1} MiB |",
            m.resources,
            m.converged.as_secs_f64(),
            m.latency_p50.as_secs_f64(),
            m.latency_p95.as_secs_f64(),
            per_resource_counts(&m.eiam_calls, m.resources),
            per_resource_requests(&m.kube_requests, m.resources),
            m.idle_eiam_calls,
            drift_checks_due(m.resources, settings.idle, settings),
            m.idle_kube_writes,
            m.cpu.as_secs_f64(),
            m.rss_kib as f64 / 1024.0,
            m.peak_rss_kib as f64 / 1024.0,
        );
    }
    println!();
    println!(
        "| resources | all rotated | all retired (grace {} s) | EIAM calls/rotation | API requests/rotation (by method) | secrets held after | peak RSS |",
        GRACE.as_secs()
    );
    println!("|---:|---:|---:|---|---|---:|---:|");
    for m in rows {
        let r = &m.rotation;
        println!(
            "| {} | {:.2} s | {:.2} s | {} | {} | {} | {:.1} MiB |",
            m.resources,
            r.published.as_secs_f64(),
            r.retired.as_secs_f64(),
            per_resource_counts(&r.eiam_calls, m.resources),
            per_resource_requests(&r.kube_requests, m.resources),
            r.most_secrets_held,
            m.rotation_peak_rss_kib as f64 / 1024.0,
        );
    }
    println!();
    println!(
        "| resources | restart: all reconciled | EIAM calls in the window | API requests/resource in the window (by method) | window | peak RSS |"
    );
    println!("|---:|---:|---:|---|---:|---:|");
    for m in rows {
        let r = &m.restart;
        println!(
            "| {} | {:.2} s | {} (drift checks due: {:.1}) | {} | {:.0} s | {:.1} MiB |",
            m.resources,
            r.all_reconciled.as_secs_f64(),
            r.eiam_calls,
            drift_checks_due(m.resources, r.window, settings),
            per_resource_requests(&r.kube_requests, m.resources),
            r.window.as_secs_f64(),
            r.peak_rss_kib as f64 / 1024.0,
        );
    }
}

/// How much of the flow-control cap the first issue of every resource used: the ideal is every EIAM call back to
/// back at the cap, `calls / cap` seconds.
fn print_cap_table(rows: &[Measurement], cap: u32) {
    println!();
    println!(
        "| resources | EIAM cap (= --default-qps) | EIAM calls | ideal at the cap | converged | cap used | throttled |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for m in rows {
        let calls: usize = m.eiam_calls.values().sum();
        let ideal = calls as f64 / f64::from(cap);
        println!(
            "| {} | {cap}/s | {calls} | {ideal:.1} s | {:.1} s | {:.0} % | {} |",
            m.resources,
            m.converged.as_secs_f64(),
            100.0 * ideal / m.converged.as_secs_f64(),
            m.throttled,
        );
    }
}

fn per_resource_counts(calls: &BTreeMap<String, usize>, n: usize) -> String {
    let parts: Vec<String> = calls
        .iter()
        .map(|(action, count)| format!("{action} {:.2}", *count as f64 / n as f64))
        .collect();
    parts.join(", ")
}

fn per_resource_requests(requests: &BTreeMap<String, f64>, n: usize) -> String {
    let n = n as f64;
    let total: f64 = requests.values().sum();
    let parts: Vec<String> = requests
        .iter()
        .filter(|(_, count)| **count > 0.0)
        .map(|(method, count)| format!("{method} {:.2}", count / n))
        .collect();
    format!("{:.2} ({})", total / n, parts.join(", "))
}

/// A fake EIAM holding one application per resource.
async fn start_fake(applications: &[String]) -> FakeHandle {
    eiam_operator::eiam::install_crypto_provider();
    let apps: Vec<_> = applications.iter().map(|id| json!({ "id": id })).collect();
    let config: FakeConfig = serde_json::from_value(json!({
        "accessKeys": [{ "id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET }],
        "instances": [{ "id": INSTANCE, "applications": apps }],
    }))
    .expect("fake configuration");
    FakeEiam::start(config).await.expect("start the fake EIAM")
}

fn resource(name: &str, application: &str) -> ApplicationClientSecret {
    serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1",
        "kind": "ApplicationClientSecret",
        "metadata": { "name": name },
        "spec": {
            "instanceId": INSTANCE,
            "applicationId": application,
            "expiresAfter": "2160h",
            "renewBefore": "360h",
            "rotation": { "gracePeriod": format!("{}s", GRACE.as_secs()) },
        }
    }))
    .expect("resource")
}

fn is_ready(resource: &ApplicationClientSecret) -> bool {
    let Some(status) = &resource.status else {
        return false;
    };
    status.observed_generation == resource.metadata.generation
        && status.current_secret_id.is_some()
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn wait_ready_probe(operator: &support::Operator) {
    let start = Instant::now();
    while operator.probe("/readyz").await.0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the operator never became ready:\n{}",
            tail(&operator.process.output(), 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `eiam_operator_kube_requests_total` summed by method.
fn kube_requests(scrape: &str) -> BTreeMap<String, f64> {
    let mut by_method = BTreeMap::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("eiam_operator_kube_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let method = labels
            .split(',')
            .find_map(|label| label.strip_prefix("method=\""))
            .map(|m| m.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        *by_method.entry(method).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    by_method
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(method, value)| {
            (
                method.clone(),
                value - before.get(method).copied().unwrap_or(0.0),
            )
        })
        .collect()
}

/// `CreateApplicationClientSecret` → `Create`.
fn short(action: &str) -> String {
    action
        .strip_suffix("ApplicationClientSecrets")
        .or_else(|| action.strip_suffix("ApplicationClientSecret"))
        .unwrap_or(action)
        .to_owned()
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p) / 100]
}

/// User plus system CPU time of a process, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// `VmRSS` and `VmHWM` (peak) of a process in KiB, from `/proc/PID/status`.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
