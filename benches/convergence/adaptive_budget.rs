//! Issue 23's phases of `make bench`: the adaptive EIAM budget against caps the operator is not told about, with
//! its shipped defaults (`--default-qps auto`). Skip them with `BENCH_ADAPTIVE=0`.
//!
//! 1. **Unknown cap**: `BENCH_ADAPTIVE_N` (default 1,000) new resources against a fake capped at 50 calls/s.
//! 2. **Two operators, one account**: two operator processes, each with half of them in its own namespace, both
//!    on the same AccessKey against the same cap of 50/s (the fake counts the cap per AccessKey, as EIAM does).
//! 3. **A cap that drops**: 600 new resources at 50/s; after 200 calls went through the cap drops to 10/s.
//!
//! `BENCH_ADAPTIVE_TRACE=1` also prints each second's admitted and throttled calls (per operator in (2)) to stderr.
//!
//! Each prints the cap used (admitted calls over the cap times the time from the first call to the last), the share
//! of throttled answers, and for (2) each operator's share, for (3) how soon the rate followed the drop.

use super::*;

const CAP: u32 = 50;
const DROPPED_CAP: u32 = 10;

pub async fn run(cp: &ControlPlane, client: &Client) {
    let n: usize = std::env::var("BENCH_ADAPTIVE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!();
    println!(
        "| adaptive budget (issue 23), shipped defaults | EIAM calls | converged | cap used | throttled | detail |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    unknown_cap(cp, client, n).await;
    two_operators(cp, client, n).await;
    dropping_cap(cp, client, 600).await;
}

/// The time of a recorded call, on the fake's clock.
fn at(call: &RecordedCall) -> jiff::Timestamp {
    call.time.parse().expect("an RFC 3339 call time")
}

fn is_throttled(call: &RecordedCall) -> bool {
    call.outcome.starts_with("Throttling")
}

/// Admitted calls over `cap` times the span from the first call to the last (one interval more: n calls at the cap
/// span n − 1 intervals).
fn cap_used(calls: &[RecordedCall], cap: u32) -> f64 {
    let admitted = calls.iter().filter(|c| !is_throttled(c)).count();
    let (Some(first), Some(last)) = (calls.first(), calls.last()) else {
        return 0.0;
    };
    let span = (at(last) - at(first))
        .total(jiff::Unit::Second)
        .unwrap_or(0.0)
        + 1.0 / f64::from(cap);
    admitted as f64 / (f64::from(cap) * span)
}

/// With `BENCH_ADAPTIVE_TRACE=1`: each second's admitted and throttled calls of each group (`label`, its
/// ApplicationId prefix), from the first call on, to stderr.
fn trace(phase: &str, calls: &[RecordedCall], groups: &[(&str, &str)]) {
    if std::env::var("BENCH_ADAPTIVE_TRACE").map_or(true, |v| v != "1") {
        return;
    }
    let Some(first) = calls.first().map(at) else {
        return;
    };
    let mut seconds: Vec<Vec<(usize, usize)>> = Vec::new();
    for call in calls {
        let second = (at(call) - first).total(jiff::Unit::Second).unwrap_or(0.0) as usize;
        if seconds.len() <= second {
            seconds.resize(second + 1, vec![(0, 0); groups.len()]);
        }
        let application = call.params.get("ApplicationId").map_or("", String::as_str);
        if let Some(group) = groups
            .iter()
            .position(|(_, prefix)| application.starts_with(prefix))
        {
            let cell = &mut seconds[second][group];
            if is_throttled(call) {
                cell.1 += 1;
            } else {
                cell.0 += 1;
            }
        }
    }
    eprintln!(
        "{phase}: per second, admitted/throttled of {:?}",
        groups.iter().map(|g| g.0).collect::<Vec<_>>()
    );
    for (second, cells) in seconds.iter().enumerate() {
        let cells: Vec<String> = cells
            .iter()
            .map(|(a, t)| format!("{a:>3}/{t:<2}"))
            .collect();
        eprintln!("  {second:>3} s  {}", cells.join("  "));
    }
}

fn capped_fake_plan(cap: u32) -> FaultPlan {
    serde_json::from_value(json!({ "rules": [{ "kind": "qpsCap", "qps": cap }] }))
        .expect("a qpsCap plan")
}

/// Starts an operator with the shipped defaults for `namespace`, creates `names` resources there (each on the
/// application of the same name) and returns it with the Api.
async fn start(
    cp: &ControlPlane,
    client: &Client,
    namespace: &str,
    fake: &FakeHandle,
) -> (support::Operator, Api<ApplicationClientSecret>) {
    let operator = OperatorSpec::new(cp, namespace, &fake.url())
        .arg("--leader-election=false")
        .start()
        .await;
    wait_ready_probe(&operator).await;
    tokio::time::sleep(SETTLE).await;
    (operator, Api::namespaced(client.clone(), namespace))
}

async fn create_all(api: &Api<ApplicationClientSecret>, applications: &[String]) {
    stream::iter(applications.iter())
        .map(|application| {
            let api = api.clone();
            async move {
                let name = application.replace('_', "-");
                api.create(&PostParams::default(), &resource(&name, application))
                    .await
                    .unwrap_or_else(|e| panic!("create {name}: {e}"));
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// Waits until all `n` resources of `api` are Ready; panics if any is Stalled.
async fn all_ready(
    api: &Api<ApplicationClientSecret>,
    operator: &support::Operator,
    n: usize,
    start: Instant,
) {
    let mut ready = std::collections::HashSet::new();
    watch_until(
        api,
        operator,
        start,
        Duration::from_secs(120 + n as u64),
        |resource| {
            let name = resource.metadata.name.clone().unwrap_or_default();
            let stalled = resource.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            });
            assert!(!stalled, "{name} is Stalled: {:?}", resource.status);
            if is_ready(resource) {
                ready.insert(name);
            }
            (ready.len() >= n)
                .then_some(())
                .ok_or_else(|| format!("{} of {n} Ready", ready.len()))
        },
    )
    .await;
}

async fn unknown_cap(cp: &ControlPlane, client: &Client, n: usize) {
    let ns = cp.namespace("bench-adaptive").await;
    let applications: Vec<String> = (0..n).map(|i| format!("app_adaptive_{i:05}")).collect();
    let fake = start_fake(&applications).await;
    fake.set_faults(capped_fake_plan(CAP))
        .expect("the fake accepts the plan");
    let (operator, api) = start(cp, client, ns.name(), &fake).await;
    let start = Instant::now();
    create_all(&api, &applications).await;
    all_ready(&api, &operator, n, start).await;
    let converged = start.elapsed();
    let calls = fake.calls();
    trace("unknown cap", &calls, &[("all", "app_")]);
    let throttled = calls.iter().filter(|c| is_throttled(c)).count();
    let requests: f64 = kube_requests(&operator.scrape().await).values().sum();
    println!(
        "| {n} new resources, unknown cap of {CAP}/s | {} | {:.1} s | {:.0} % | {} ({:.2} %) | budget at the end: {}; {:.2} API requests per resource, start-up included |",
        calls.len(),
        converged.as_secs_f64(),
        100.0 * cap_used(&calls, CAP),
        throttled,
        100.0 * throttled as f64 / calls.len().max(1) as f64,
        budget_qps(&operator).await,
        requests / n as f64,
    );
}

/// The operator's `eiam_budget_qps` series.
async fn budget_qps(operator: &support::Operator) -> String {
    let scrape = operator.scrape().await;
    let rates: Vec<String> = scrape
        .lines()
        .filter(|line| line.starts_with("eiam_operator_eiam_budget_qps{"))
        .filter_map(|line| line.rsplit(' ').next())
        .map(|rate| format!("{:.1}/s", rate.parse::<f64>().unwrap_or(f64::NAN)))
        .collect();
    rates.join(", ")
}

async fn two_operators(cp: &ControlPlane, client: &Client, n: usize) {
    let half = n / 2;
    let apps_a: Vec<String> = (0..half).map(|i| format!("app_a_{i:05}")).collect();
    let apps_b: Vec<String> = (0..half).map(|i| format!("app_b_{i:05}")).collect();
    let fake = start_fake(&[apps_a.clone(), apps_b.clone()].concat()).await;
    fake.set_faults(capped_fake_plan(CAP))
        .expect("the fake accepts the plan");
    let ns_a = cp.namespace("bench-adaptive-a").await;
    let ns_b = cp.namespace("bench-adaptive-b").await;
    let (operator_a, api_a) = start(cp, client, ns_a.name(), &fake).await;
    let (operator_b, api_b) = start(cp, client, ns_b.name(), &fake).await;
    let start = Instant::now();
    tokio::join!(create_all(&api_a, &apps_a), create_all(&api_b, &apps_b));
    tokio::join!(
        all_ready(&api_a, &operator_a, half, start),
        all_ready(&api_b, &operator_b, half, start)
    );
    let converged = start.elapsed();
    let calls = fake.calls();
    trace("two operators", &calls, &[("A", "app_a_"), ("B", "app_b_")]);
    let throttled = calls.iter().filter(|c| is_throttled(c)).count();
    let of = |prefix: &str| -> Vec<RecordedCall> {
        calls
            .iter()
            .filter(|c| {
                c.params
                    .get("ApplicationId")
                    .is_some_and(|a| a.starts_with(prefix))
            })
            .cloned()
            .collect()
    };
    let (a, b) = (of("app_a_"), of("app_b_"));
    // Each one's share while both were busy: until the first of them made its last call.
    let both_until = at(a.last().expect("a's calls")).min(at(b.last().expect("b's calls")));
    let first = at(calls.first().expect("calls"));
    let window = (both_until - first)
        .total(jiff::Unit::Second)
        .unwrap_or(0.0)
        .max(0.001);
    let share = |mine: &[RecordedCall]| {
        let admitted = mine
            .iter()
            .filter(|c| !is_throttled(c) && at(c) <= both_until)
            .count();
        100.0 * admitted as f64 / (f64::from(CAP) * window)
    };
    println!(
        "| two operators on one account, {half} new resources each, cap {CAP}/s | {} | {:.1} s | {:.0} % | {} ({:.2} %) | while both were busy ({window:.1} s): A {:.0} %, B {:.0} % of the cap; budgets at the end: A {}, B {} |",
        calls.len(),
        converged.as_secs_f64(),
        100.0 * cap_used(&calls, CAP),
        throttled,
        100.0 * throttled as f64 / calls.len().max(1) as f64,
        share(&a),
        share(&b),
        budget_qps(&operator_a).await,
        budget_qps(&operator_b).await,
    );
}

async fn dropping_cap(cp: &ControlPlane, client: &Client, n: usize) {
    let ns = cp.namespace("bench-adaptive-drop").await;
    let applications: Vec<String> = (0..n).map(|i| format!("app_drop_{i:05}")).collect();
    let fake = start_fake(&applications).await;
    fake.set_faults(capped_fake_plan(CAP))
        .expect("the fake accepts the plan");
    let (operator, api) = start(cp, client, ns.name(), &fake).await;
    let start = Instant::now();
    let creating = create_all(&api, &applications);
    let dropping = async {
        while fake.calls().iter().filter(|c| !is_throttled(c)).count() < 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fake.set_faults(capped_fake_plan(DROPPED_CAP))
            .expect("the fake accepts the plan");
        fake.calls().len()
    };
    let ((), dropped_after) = tokio::join!(creating, dropping);
    all_ready(&api, &operator, n, start).await;
    let converged = start.elapsed();
    let calls = fake.calls();
    trace("dropping cap", &calls, &[("all", "app_")]);
    let after = &calls[dropped_after..];
    let drop_at = at(&after[0]);
    let throttled_after = after.iter().filter(|c| is_throttled(c)).count();
    // Followed: from the drop until the first two seconds in which no more than 20 % over the new cap arrived
    // (throttled calls and their retries included).
    let seconds = |c: &RecordedCall| (at(c) - drop_at).total(jiff::Unit::Second).unwrap_or(0.0);
    let last = after.last().map_or(0.0, seconds);
    let mut per_second = vec![0usize; last as usize + 1];
    for call in after {
        per_second[seconds(call) as usize] += 1;
    }
    let limit = (f64::from(DROPPED_CAP) * 1.2).ceil() as usize;
    let followed = (0..per_second.len().saturating_sub(1))
        .find(|&s| per_second[s] + per_second[s + 1] <= 2 * limit)
        .map_or("never".to_owned(), |s| format!("{s} s"));
    println!(
        "| {n} new resources, cap {CAP}/s dropping to {DROPPED_CAP}/s after 200 calls | {} | {:.1} s | {:.0} % of {DROPPED_CAP}/s after the drop | {throttled_after} of {} after the drop ({:.2} %) | sending at most {DROPPED_CAP} × 1.2/s over two seconds from {followed} after the drop; budget at the end: {} |",
        calls.len(),
        converged.as_secs_f64(),
        100.0 * cap_used(after, DROPPED_CAP),
        after.len(),
        100.0 * throttled_after as f64 / after.len().max(1) as f64,
        budget_qps(&operator).await,
    );
}
