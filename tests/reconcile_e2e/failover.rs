//! Issue 21: the failover round of the chaos suite. Two replicas elect a leader on a short Lease while resources
//! rotate under every fault the fake EIAM has; the leader is frozen (SIGSTOP) past its Lease again and again — at
//! seeded moments, and at the worst one: right after a write-ahead marker is stored, while its Create waits for the
//! provider's budget — and let go on (SIGCONT) once the standby has taken over. A replica that exits (a leader that
//! finds its Lease lost does) is started again, as its Deployment would. Then the invariants of the SIGKILL round
//! (`chaos.rs`), plus the ones a second actor would break: no Create refused for quota on an application without a
//! foreign secret, every secret a Create minted ends up recorded in the status or retired, and nothing of ours is
//! left in EIAM after deletion.
//!
//! `make test` runs a small round with a fixed seed; `make chaos` a large one (`FAILOVER_RESOURCES`,
//! `FAILOVER_FREEZES`, `FAILOVER_QPS`, `CHAOS_SEED`). The seed is printed first.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::chaos::{chaos_scenario, converged_invariants, fault_plan, ids};
use crate::common::operator::OperatorSpec;
use crate::support::*;

/// Short, so that a round is quick (production defaults to 15 s).
const LEASE: &str = "4s";
const LEASE_SECONDS: u64 = 4;

/// The round's size, from the environment (the `make test` defaults are small).
struct Plan {
    seed: u64,
    resources: usize,
    freezes: usize,
    /// `--default-qps` of both replicas: low, so that Creates wait in the budget.
    qps: String,
}

impl Plan {
    /// The budget's requests per second.
    fn qps_value(&self) -> f64 {
        self.qps.parse().unwrap_or(10.0)
    }

    /// `--resync-interval`: every 5 s, or as often as the budget allows two calls per resource (at a low `qps` a
    /// drift check every 5 s alone would take more than the whole budget, and resources would wait their turn
    /// for minutes).
    fn resync_seconds(&self) -> u64 {
        (2.0 * self.resources as f64 / self.qps_value())
            .ceil()
            .max(5.0) as u64
    }

    /// How long a resource may take to be Ready once the faults stop: a drift check and a pass or two each, in
    /// turn, through the budget.
    fn settle(&self) -> Duration {
        Duration::from_secs(120)
            + Duration::from_secs_f64(4.0 * self.resources as f64 / self.qps_value())
    }

    fn from_env() -> Self {
        let var = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            seed: var("CHAOS_SEED", 20_261_207),
            resources: var("FAILOVER_RESOURCES", 6) as usize,
            freezes: var("FAILOVER_FREEZES", 4) as usize,
            qps: std::env::var("FAILOVER_QPS").unwrap_or_else(|_| "10".to_owned()),
        }
    }
}

/// The two replicas: indexes into `Scenario::operators` (every process started is kept there for the leak scan).
struct Replicas {
    spec: OperatorSpec,
    live: [usize; 2],
    restarts: usize,
}

impl Replicas {
    async fn start(s: &mut Scenario, spec: OperatorSpec) -> Self {
        s.start_operator_with(spec.clone()).await;
        s.start_operator_with(spec.clone()).await;
        let n = s.operators.len();
        Self {
            spec,
            live: [n - 2, n - 1],
            restarts: 0,
        }
    }

    /// Starts again every replica that exited.
    async fn restart_exited(&mut self, s: &mut Scenario) {
        for slot in 0..2 {
            if s.operators[self.live[slot]]
                .process_mut()
                .try_wait()
                .is_some()
            {
                s.start_operator_with(self.spec.clone()).await;
                self.live[slot] = s.operators.len() - 1;
                self.restarts += 1;
            }
        }
    }

    /// The live replica that holds the Lease, once one does.
    async fn leader(&mut self, s: &mut Scenario) -> usize {
        let leases: Api<Lease> = s.api();
        let started = Instant::now();
        loop {
            self.restart_exited(s).await;
            let holder = leases
                .get_opt(eiam_operator::leader::LEASE_NAME)
                .await
                .ok()
                .flatten()
                .and_then(|lease| lease.spec)
                .and_then(|spec| spec.holder_identity);
            if let Some(holder) = &holder {
                let leading = self.live.iter().copied().find(|&index| {
                    s.operators[index]
                        .records_with("standing by for the leader Lease", None)
                        .first()
                        .is_some_and(|r| r["fields"]["identity"] == holder.as_str())
                });
                // A holder that is neither live replica is a frozen or exited one whose Lease has not run out.
                if let Some(index) = leading {
                    return index;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no live replica took the Lease within a minute (holder {holder:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether any resource holds a write-ahead marker now (a Create is about to be sent, or waits for the budget).
async fn marker_stored(s: &Scenario) -> bool {
    let Ok(list) = s.acs_api().list(&ListParams::default()).await else {
        return false;
    };
    list.items.iter().any(|o| {
        o.status
            .as_ref()
            .is_some_and(|st| st.pending_create_since.is_some())
            || o.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("eiam-operator.io/first-create-since"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i21_chaos_failover_frozen_leaders_keep_every_invariant() {
    let plan = Plan::from_env();
    eprintln!(
        "[failover] seed {} ({} resources, {} freezes, qps {}); replay with CHAOS_SEED={}",
        plan.seed, plan.resources, plan.freezes, plan.qps, plan.seed
    );
    let mut rng = StdRng::seed_from_u64(plan.seed);
    // A quarter of the applications hold a secret somebody else minted.
    let (mut s, apps, foreign) = chaos_scenario("i21-failover", "failover", plan.resources).await;
    let spec = s
        .operator_spec()
        .leader_election(LEASE)
        .arg("--resync-interval")
        .arg(format!("{}s", plan.resync_seconds()))
        .arg("--concurrency")
        .arg("8")
        .arg("--default-qps")
        .arg(&plan.qps);
    let mut replicas = Replicas::start(&mut s, spec).await;
    for (i, app) in apps.iter().enumerate() {
        s.create(
            &format!("failover-{i}"),
            json!({ "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "24h",
                    "renewBefore": "23h59m45s", "rotation": { "gracePeriod": "5s" } }),
        )
        .await;
    }

    // Chaos: faults on, the leader frozen past its Lease, let go on, exited replicas started again.
    s.fake.set_faults(fault_plan(&mut rng)).await;
    let mut at_marker = 0;
    for freeze in 0..plan.freezes {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..4000))).await;
        let leader = replicas.leader(&mut s).await;
        // Every other freeze waits for the worst moment: a marker stored, its Create not sent yet.
        if freeze % 2 == 1 {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if marker_stored(&s).await {
                    at_marker += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let frozen = s.operators[leader].process();
        frozen.signal(libc::SIGSTOP);
        // Past the Lease (and the standby's random wait before it takes an expired one over).
        let held = Duration::from_millis(LEASE_SECONDS * 1000 + rng.random_range(1500..4000));
        tokio::time::sleep(held).await;
        s.operators[leader].process().signal(libc::SIGCONT);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    replicas.restart_exited(&mut s).await;
    let calls_in_chaos = s.fake.calls().await;
    let faulted = calls_in_chaos.iter().filter(|c| c.fault.is_some()).count();
    s.fake.set_faults(json!([])).await;
    eprintln!(
        "[failover] {} EIAM calls under faults, {faulted} of them faulted; {} freezes ({at_marker} right after a \
         marker), {} replicas restarted",
        calls_in_chaos.len(),
        plan.freezes,
        replicas.restarts
    );

    // No second actor: a Create is refused for quota only where a secret of someone else holds a slot.
    for call in calls_in_chaos
        .iter()
        .filter(|c| c.outcome.contains("QuotaExceeded"))
    {
        let app = call
            .params
            .get("ApplicationId")
            .cloned()
            .unwrap_or_default();
        assert!(
            foreign.contains_key(&app),
            "{app}: a Create asked EIAM for a third secret with only secrets of ours held (call {})",
            call.seq
        );
    }
    for app in &apps {
        assert!(s.fake.max_secrets_held(INSTANCE, app) <= 2, "{app}");
    }

    // Faults off, rotations slowed down: every resource Ready at its new generation, its Secret EIAM's current one.
    for i in 0..plan.resources {
        s.patch(
            &format!("failover-{i}"),
            json!({ "spec": { "renewBefore": "1h" } }),
        )
        .await;
    }
    converged_invariants(&s, "failover", &apps, &foreign, plan.settle()).await;

    // Deletion: nothing of ours left, and every secret a Create minted was retired by a Delete.
    for i in 0..plan.resources {
        s.delete(&format!("failover-{i}")).await;
    }
    for i in 0..plan.resources {
        s.wait_gone(&format!("failover-{i}")).await;
    }
    let calls = s.fake.calls().await;
    let took_effect = |outcome: &str| outcome == "OK" || outcome == "ConnectionDropped(applied)";
    let mut minted = 0;
    for app in &apps {
        let held = ids(&s.fake.secrets(INSTANCE, app).await);
        let expected: BTreeSet<String> = foreign
            .get(app)
            .map(|f| f.secret_id.clone())
            .into_iter()
            .collect();
        assert_eq!(
            held, expected,
            "{app}: deletion leaves only the foreign secret"
        );
        let of_app = |c: &&eiam_operator::fake::RecordedCall| {
            c.params.get("ApplicationId") == Some(app) && took_effect(&c.outcome)
        };
        let creates = calls
            .iter()
            .filter(of_app)
            .filter(|c| c.action == "CreateApplicationClientSecret")
            .count();
        let deleted: BTreeSet<&String> = calls
            .iter()
            .filter(of_app)
            .filter(|c| c.action == "DeleteApplicationClientSecret")
            .filter_map(|c| c.params.get("SecretId"))
            .collect();
        assert_eq!(
            creates,
            deleted.len(),
            "{app}: {creates} secrets minted, {} retired: a Create the status never recorded",
            deleted.len()
        );
        minted += creates;
    }
    eprintln!(
        "[failover] seed {}: all invariants held ({} resources, {} foreign secrets, {} freezes, {at_marker} at a \
         marker, {} restarts, {minted} Creates, qps {})",
        plan.seed,
        plan.resources,
        foreign.len(),
        plan.freezes,
        replicas.restarts,
        plan.qps
    );
    s.finish().await;
}

/// The targeted version of the round: the leader (its own AccessKey, so that EIAM's call log tells the replicas
/// apart) is frozen as soon as a write-ahead marker is stored, at a budget so low that its Creates wait for it, and
/// let go on once the standby has taken over and settled. It must sign nothing after the freeze: whatever its
/// passes were about to send finds its token expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i21_a_leader_frozen_past_its_lease_sends_nothing_once_it_wakes() {
    const AK_STALE: &str = "LTAI5tE2eStaleReplica";
    const AK_STALE_SECRET: &str = "e2e-stale-replica-secret";
    let apps = [
        "app_frozen_0",
        "app_frozen_1",
        "app_frozen_2",
        "app_frozen_3",
    ];
    let mut s = Scenario::with_fake(
        "i21-frozen",
        &apps,
        crate::common::fake_eiam::FakeSpec::new().access_key(AK_STALE, AK_STALE_SECRET),
    )
    .await;
    // One Create every 4 s: most of the first issues wait for the budget with their marker stored.
    let spec = s
        .operator_spec()
        .leader_election(LEASE)
        .arg("--default-qps")
        .arg("0.25");
    s.start_operator_with(spec.clone().access_key(AK_STALE, AK_STALE_SECRET))
        .await;
    let first = s.operators.len() - 1;
    s.operators[first]
        .process_mut()
        .wait_for_line("leader Lease acquired", Duration::from_secs(30))
        .await;
    s.start_operator_with(spec).await;
    let standby = s.operators.len() - 1;
    for (i, app) in apps.iter().enumerate() {
        s.create(
            &format!("frozen-{i}"),
            json!({ "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "24h" }),
        )
        .await;
    }
    let started = Instant::now();
    while !marker_stored(&s).await {
        assert!(started.elapsed() < SOON, "no write-ahead marker was stored");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let frozen_at = jiff::Timestamp::now();
    s.operators[first].process().signal(libc::SIGSTOP);
    s.operators[standby]
        .process_mut()
        .wait_for_line("leader Lease acquired", Duration::from_secs(30))
        .await;
    s.wait_reconciled("frozen-0").await;
    let stale_calls = |calls: Vec<eiam_operator::fake::RecordedCall>| {
        calls
            .into_iter()
            .filter(|c| c.access_key_id.as_deref() == Some(AK_STALE))
            .collect::<Vec<_>>()
    };
    let before: BTreeSet<u64> = stale_calls(s.fake.calls().await)
        .iter()
        .map(|c| c.seq)
        .collect();
    s.operators[first].process().signal(libc::SIGCONT);
    let status = s.operators[first]
        .wait_for_exit(Duration::from_secs(30))
        .await;
    assert_eq!(
        status.code(),
        Some(1),
        "the stale leader exits to rejoin as a standby"
    );
    // What the token promises: nothing passes its check, so nothing is signed, once the leader is frozen past its
    // Lease. (The V1 signature's Timestamp, whole seconds of this host's clock, says when it was signed.) A request
    // signed before the freeze can still reach EIAM after it, when the freeze fell between the check and the write
    // to the connection: the residual window README "Operations" documents, counted here.
    let stale = stale_calls(s.fake.calls().await);
    for call in &stale {
        let signed: jiff::Timestamp = call
            .params
            .get("Timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("call #{} has no V1 Timestamp: {:?}", call.seq, call.params));
        assert!(
            signed.as_second() <= frozen_at.as_second(),
            "the frozen leader signed {} #{} at {signed}, after it was frozen at {frozen_at}:\n{}",
            call.action,
            call.seq,
            tail(&s.operators[first].output(), 40)
        );
    }
    let late: Vec<&eiam_operator::fake::RecordedCall> =
        stale.iter().filter(|c| !before.contains(&c.seq)).collect();
    let fenced = s.operators[first].records_with("reconcile stopped: not leading", None);
    eprintln!(
        "[frozen] the stale leader signed {} EIAM calls, all before the freeze ({} of them reached EIAM only after \
         the takeover); {} of its passes stopped at the fence when it woke",
        stale.len(),
        late.len(),
        fenced.len()
    );
    for i in 0..apps.len() {
        s.wait_ready(&format!("frozen-{i}")).await;
    }
    let calls = s.fake.calls().await;
    let minted = |c: &&eiam_operator::fake::RecordedCall, app: &str| {
        c.action == "CreateApplicationClientSecret"
            && c.params.get("ApplicationId").map(String::as_str) == Some(app)
            && (c.outcome == "OK" || c.outcome == "ConnectionDropped(applied)")
    };
    for app in apps {
        let creates = calls.iter().filter(|c| minted(c, app)).count();
        let landed_late = late.iter().filter(|c| minted(c, app)).count();
        assert_eq!(
            creates,
            1 + landed_late,
            "{app}: one secret minted across both leaders, besides a Create signed before the freeze that landed \
             after the takeover"
        );
    }
    s.finish().await;
}
