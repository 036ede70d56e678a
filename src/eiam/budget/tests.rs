use super::*;
use proptest::prelude::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Drives `cubic` with one accepted request every `1 / rate` for `seconds`, as a budget in use would.
fn run_accepted(cubic: &mut Cubic, start: Instant, seconds: f64) -> Instant {
    let mut now = start;
    let end = start + secs(seconds);
    while now < end {
        cubic.sent(now);
        cubic.accepted(now);
        now += secs(1.0 / cubic.rate());
    }
    now
}

#[test]
fn slow_start_doubles_while_accepted_then_backs_off_to_beta_of_what_was_accepted() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(INITIAL_RATE, 1000.0, t0);
    let now = run_accepted(&mut cubic, t0, 2.1);
    assert!(
        cubic.rate() >= 80.0,
        "{} after 2 s of slow start",
        cubic.rate()
    );
    let accepted = per_second(&mut cubic.accepted, now);
    assert!(cubic.throttled(now, now));
    assert!(
        (cubic.rate() - BETA * PLATEAU * accepted).abs() < 1e-9,
        "{} vs accepted {accepted}",
        cubic.rate()
    );
}

#[test]
fn throttling_answers_to_requests_sent_before_the_drop_drop_nothing_more() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(50.0, 1000.0, t0);
    cubic.slow_start = false;
    let t1 = t0 + secs(1.0);
    assert!(cubic.throttled(t0 + secs(0.9), t1));
    let after = cubic.rate();
    assert!((after - 40.0).abs() < 1e-9, "{after}");
    // Answers to requests planned before the drop drop nothing more.
    for i in 0..5 {
        assert!(!cubic.throttled(t0 + secs(0.9 + f64::from(i) * 0.01), t1 + secs(0.05)));
    }
    // Nor do refusals within EIAM's second after it while the new rate's requests are mostly accepted.
    for i in 0..10 {
        let planned = t1 + secs(0.05 * f64::from(i));
        cubic.accepted_planned(planned, planned + secs(0.01));
        cubic.accepted_planned(planned, planned + secs(0.01));
        assert!(!cubic.throttled(planned, planned + secs(0.02)));
    }
    assert!((cubic.rate() - after).abs() < 1.0, "{}", cubic.rate());
    let after = cubic.rate();
    // A request sent a second after the drop and still throttled: the new rate is too high as well.
    assert!(cubic.throttled(t1 + secs(1.1), t1 + secs(1.2)));
    assert!(
        (cubic.rate() - BETA * after).abs() < 1e-9,
        "{}",
        cubic.rate()
    );
}

#[test]
fn a_limit_that_fell_far_below_the_rate_is_followed_at_once() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(50.0, 1000.0, t0);
    cubic.slow_start = false;
    // The account's limit falls from 50 to 10: nothing is accepted any more, every request is throttled.
    assert!(cubic.throttled(t0, t0));
    let first = cubic.rate();
    assert!((first - BETA * 50.0).abs() < 1e-9, "{first}");
    // Refusals of requests planned before the drop say nothing new.
    for i in 1..=4 {
        assert!(!cubic.throttled(t0 - secs(0.01 * f64::from(i)), t0 + secs(0.01)));
    }
    assert!(cubic.dropped_since(t0 - secs(0.01)) && !cubic.dropped_since(t0));
    // Planned after it and refused all the same: the limit fell below the new rate too. Halved at each.
    assert!(cubic.throttled(t0 + secs(0.02), t0 + secs(0.03)));
    assert!((cubic.rate() - first * REFUSED_BETA).abs() < 1e-9);
    assert!(cubic.throttled(t0 + secs(0.04), t0 + secs(0.05)));
    let fallen = cubic.rate();
    assert!((fallen - first * REFUSED_BETA * REFUSED_BETA).abs() < 1e-9);
    // Then it grows back from there, along the convex side of the curve.
    run_accepted(&mut cubic, t0 + secs(0.05), 0.4);
    assert!(cubic.rate() > fallen, "{} after {fallen}", cubic.rate());
}

#[test]
fn a_limit_found_again_is_probed_more_slowly_and_a_lower_one_leaves_room() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(50.0, 1000.0, t0);
    cubic.slow_start = false;
    let mut now = t0;
    let mut scales = Vec::new();
    for _ in 0..5 {
        now = run_accepted(&mut cubic, now, 1.5);
        assert!(cubic.throttled(now, now));
        scales.push(cubic.scale);
    }
    assert_eq!(
        scales,
        [SCALE, SCALE / 2.0, SCALE / 2.0, SCALE / 2.0, SCALE / 2.0]
    );
    // A limit elsewhere: probing at full speed again. Lower (another client took a share): the curve levels off
    // below it.
    now = run_accepted(&mut cubic, now, 1.5);
    cubic.accepted.clear();
    cubic.rate = 20.0;
    assert!(cubic.throttled(now, now));
    assert_eq!(cubic.scale, SCALE);
    assert!((cubic.last_max - FAST_CONVERGENCE * 20.0).abs() < 1e-9);
}

#[test]
fn after_a_drop_the_rate_climbs_back_to_the_throttled_rate_in_k_seconds_then_probes_past_it() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(50.0, 1000.0, t0);
    cubic.slow_start = false;
    assert!(cubic.throttled(t0, t0));
    let k = (50.0 * (1.0 - BETA) / SCALE).cbrt();
    assert!((cubic.k - k).abs() < 1e-9);
    let now = run_accepted(&mut cubic, t0, k);
    assert!(
        (cubic.rate() - 50.0).abs() < 1.0,
        "{} after k = {k:.2} s",
        cubic.rate()
    );
    run_accepted(&mut cubic, now, 3.0);
    assert!(
        cubic.rate() > 52.0,
        "{}: probing past the last limit",
        cubic.rate()
    );
}

#[test]
fn an_idle_budget_does_not_grow_and_growth_follows_what_is_sent() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(20.0, 1000.0, t0);
    cubic.slow_start = false;
    assert!(cubic.throttled(t0, t0));
    let rate = cubic.rate();
    // An hour later, one request: one second of activity counts, not an hour (which would have grown the curve
    // to thousands): the rate is still below the one throttled.
    let later = t0 + Duration::from_secs(3600);
    cubic.sent(later);
    cubic.accepted(later);
    assert!(
        cubic.rate() >= rate && cubic.rate() < 20.0,
        "{} after idling at {rate}",
        cubic.rate()
    );
    // A trickle of one request a second never lets the rate grow beyond twice that.
    let mut cubic = Cubic::new(5.0, 1000.0, t0);
    let mut now = t0;
    for _ in 0..120 {
        now += Duration::from_secs(1);
        cubic.sent(now);
        cubic.accepted(now);
    }
    assert!(cubic.rate() <= 5.0, "{}", cubic.rate());
}

#[test]
fn the_rate_stays_between_the_floor_and_the_ceiling() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(10.0, 30.0, t0);
    run_accepted(&mut cubic, t0, 30.0);
    assert_eq!(cubic.rate(), 30.0);
    let mut now = t0 + secs(31.0);
    for _ in 0..100 {
        now += secs(1.5);
        cubic.throttled(now, now);
    }
    assert_eq!(cubic.rate(), MIN_RATE);
}

#[test]
fn one_provider_is_spaced_evenly_and_two_with_a_backlog_share_the_account() {
    let t0 = Instant::now();
    let mut schedule = Schedule::default();
    let spacing = Duration::from_millis(20);
    let own = Duration::from_millis(1);
    let alone: Vec<Instant> = (0..5)
        .map(|_| {
            schedule
                .reserve(1, own, spacing, t0, Duration::MAX)
                .unwrap()
        })
        .collect();
    for pair in alone.windows(2) {
        assert_eq!(pair[1] - pair[0], spacing);
    }
    // Provider 2 arrives with a backlog: its first slot fits right after 1's; from then on each gets every other.
    let t1 = t0 + Duration::from_secs(1);
    let mut by_provider: HashMap<u64, usize> = HashMap::new();
    let mut all = Vec::new();
    for _ in 0..50 {
        for provider in [1, 2] {
            let at = schedule
                .reserve(provider, own, spacing, t1, Duration::MAX)
                .unwrap();
            all.push(at);
            *by_provider.entry(provider).or_default() += 1;
        }
    }
    all.sort();
    for pair in all.windows(2) {
        assert!(
            pair[1] - pair[0] >= spacing,
            "slots closer than the account allows"
        );
    }
    let horizon = t1 + Duration::from_secs(1);
    let in_first_second = |p: u64| {
        schedule
            .slots
            .iter()
            .filter(|(at, holder)| *holder == p && *at < horizon)
            .count()
    };
    let (a, b) = (in_first_second(1), in_first_second(2));
    assert!(a.abs_diff(b) <= 1, "unfair: {a} against {b}");
}

#[test]
fn requests_are_spaced_ten_percent_wider_than_the_rate() {
    assert!(spacing(50.0).abs_diff(Duration::from_millis(22)) < Duration::from_micros(1));
    assert!(spacing(0.01).abs_diff(Duration::from_secs(110)) < Duration::from_micros(1));
}

#[test]
fn the_registry_shows_labels_never_the_keys_that_hold_a_digest_of_a_secret() {
    let registry = BudgetRegistry::new(100.0);
    let _budget = registry.budget("accessKey:LTAIa:0123abcd", "accessKey:LTAIa", 5.0);
    let shown = format!("{registry:?}");
    assert!(
        shown.contains("acct-") && !shown.contains("0123abcd"),
        "{shown}"
    );
}

#[test]
fn an_account_whose_ceiling_was_set_starts_there() {
    let registry = BudgetRegistry::new(100.0);
    let told = registry.budget_starting_at("k", "p", 50.0, Some(50.0));
    assert_eq!(told.account().rate(), 50.0);
    let joined = registry.budget_starting_at("k", "p", 5.0, Some(5.0));
    assert_eq!(
        joined.account().rate(),
        50.0,
        "an existing account keeps its rate"
    );
    assert_eq!(
        registry.budget("other", "o", 50.0).account().rate(),
        INITIAL_RATE
    );
}

#[test]
fn a_provider_ceiling_below_the_account_floor_is_still_hard() {
    let registry = BudgetRegistry::new(100.0);
    let tiny = registry.budget("k", "p", 0.01);
    assert_eq!(tiny.ceiling(), 0.01);
    assert!(tiny.reserve_within(Duration::ZERO).is_ok());
    let wait = tiny.reserve_within(Duration::ZERO).unwrap_err();
    assert!(
        wait >= Duration::from_secs(109),
        "{wait:?}: 1.1 / 0.01 s apart"
    );
}

#[test]
fn a_provider_never_beats_its_own_ceiling_and_patience_reserves_nothing() {
    let t0 = Instant::now();
    let mut schedule = Schedule::default();
    let own = Duration::from_millis(500);
    let account = Duration::from_millis(10);
    assert_eq!(
        schedule.reserve(7, own, account, t0, Duration::ZERO),
        Ok(t0)
    );
    let refused = schedule.reserve(7, own, account, t0, Duration::from_millis(100));
    assert_eq!(refused, Err(own));
    assert_eq!(schedule.len(), 1, "nothing reserved");
    // Another provider is not held back by 7's ceiling.
    assert_eq!(
        schedule.reserve(8, own, account, t0, Duration::from_secs(1)),
        Ok(t0 + account)
    );
}

#[tokio::test]
async fn providers_of_one_identity_share_one_account_and_a_dropped_account_is_forgotten() {
    let registry = BudgetRegistry::new(100.0);
    let a = registry.budget("accessKey:LTAIa:1", "accessKey:LTAIa", 50.0);
    let b = registry.budget("accessKey:LTAIa:1", "accessKey:LTAIa", 5.0);
    let c = registry.budget("accessKey:LTAIc:1", "accessKey:LTAIc", 5.0);
    // The same id with another secret: another budget, under another label.
    let d = registry.budget("accessKey:LTAIa:2", "accessKey:LTAIa", 5.0);
    assert!(Arc::ptr_eq(a.account(), b.account()));
    assert!(!Arc::ptr_eq(a.account(), c.account()));
    assert!(!Arc::ptr_eq(a.account(), d.account()));
    assert_eq!(d.account().label(), format!("{}-2", a.account().label()));
    drop(d);
    assert_eq!(registry.accounts().len(), 2);
    assert!(a.account().label().starts_with("acct-") && a.account().label().len() == 13);
    assert!(!a.account().label().contains("LTAI"));
    let sent = a.sent();
    assert!(
        b.answered(sent, Answer::Throttled).is_some(),
        "b's throttle drops a's rate"
    );
    assert!(a.account().rate() < INITIAL_RATE);
    assert_eq!(a.account().backoffs(), 1);
    // Each provider's snapshot: the account's rate under its own ceiling, and when the account backed off.
    let (a_now, b_now, c_now) = (a.snapshot(), b.snapshot(), c.snapshot());
    assert_eq!(a_now.account, a.account().label());
    assert_eq!((a_now.qps, a_now.ceiling), (a.account().rate(), 50.0));
    assert_eq!(
        (b_now.qps, b_now.ceiling),
        (a.account().rate().min(5.0), 5.0)
    );
    let backed_off = a_now.last_backoff.expect("when the account backed off");
    assert_eq!(backed_off.subsec_nanosecond(), 0, "whole seconds");
    assert!((jiff::Timestamp::now() - backed_off).get_seconds() <= 2);
    assert_eq!(b_now.last_backoff, Some(backed_off));
    assert_eq!(c_now.last_backoff, None, "another account did not back off");
    drop((a, b));
    assert_eq!(registry.accounts().len(), 1);
}

#[derive(Debug, Clone)]
enum Step {
    Reserve { provider: u64, after_ms: u16 },
    Answer { throttled: bool, after_ms: u16 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u64..3, 0u16..200).prop_map(|(provider, after_ms)| Step::Reserve { provider, after_ms }),
        1 => (any::<bool>(), 0u16..500).prop_map(|(throttled, after_ms)| Step::Answer { throttled, after_ms }),
    ]
}

proptest! {
    /// Whatever EIAM answers and whenever providers ask: no one-second window holds more of a provider's slots
    /// than its ceiling (its `spec.qps`), nor more of the account's than the account's ceiling.
    #[test]
    fn no_ceiling_is_ever_exceeded(
        ceilings in proptest::collection::vec(0.01f64..40.0, 3),
        account_ceiling in 1.0f64..60.0,
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        let t0 = Instant::now();
        let mut cubic = Cubic::new(INITIAL_RATE, account_ceiling, t0);
        let mut schedule = Schedule::default();
        let mut now = t0;
        let mut slots: Vec<(Instant, u64)> = Vec::new();
        for step in steps {
            match step {
                Step::Reserve { provider, after_ms } => {
                    now += Duration::from_millis(u64::from(after_ms));
                    let own = spacing(ceilings[usize::try_from(provider).unwrap()]);
                    let at = schedule
                        .reserve(provider, own, spacing(cubic.rate()), now, Duration::MAX)
                        .unwrap();
                    cubic.sent(at);
                    slots.push((at, provider));
                }
                Step::Answer { throttled, after_ms } => {
                    now += Duration::from_millis(u64::from(after_ms));
                    if throttled {
                        // As `Budget::answered`: a drop forgets the slots planned ahead (their requests plan again).
                        if cubic.throttled(now, now) {
                            schedule.forget_after(now);
                            slots.retain(|(at, _)| *at <= now);
                        }
                    } else {
                        cubic.accepted(now);
                    }
                }
            }
        }
        slots.sort();
        let window = Duration::from_secs(1);
        for (i, (start, _)) in slots.iter().enumerate() {
            let in_window: Vec<u64> = slots[i..]
                .iter()
                .take_while(|(at, _)| *at - *start < window)
                .map(|(_, p)| *p)
                .collect();
            prop_assert!(in_window.len() as f64 <= account_ceiling.max(MIN_RATE).ceil(),
                "{} slots in a second, account ceiling {account_ceiling}", in_window.len());
            for (p, ceiling) in ceilings.iter().enumerate() {
                let mine = in_window.iter().filter(|q| **q == p as u64).count();
                prop_assert!(mine as f64 <= ceiling.ceil(),
                    "provider {p}: {mine} slots in a second, ceiling {ceiling}");
            }
        }
    }
}

/// A discrete-event simulation of account budgets against EIAM's flow control as the fake models it (a call is
/// refused while the account's admitted calls of the last second reach the cap). Each client runs `WORKERS` passes
/// (the operator's `--concurrency`) through its own [`Cubic`] and [`Schedule`], as `Budget` does: a pass is admitted
/// with a slot at most [`LOOKAHEAD`] away or comes back when it is due, slots planned before a drop are planned
/// again, each way takes 2 ms plus up to `jitter` (a fixed pseudo-random sequence), and a throttled request is tried
/// again `RETRY` later (the first in-place retry). Deterministic, on a synthetic clock.
mod simulation {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    const WORKERS: usize = 16;
    const LATENCY: Duration = Duration::from_millis(2);
    const RETRY: Duration = Duration::from_secs(1);

    /// The admission's: a second (and at most [`LOOKAHEAD`] during slow start, see [`Cubic::lookahead`]).
    pub fn patience() -> Duration {
        Duration::from_secs(1)
    }

    pub struct Outcome {
        /// Per client: admitted, throttled.
        pub clients: Vec<(usize, usize)>,
        /// Every call: (time since start, client, admitted).
        pub calls: Vec<(Duration, usize, bool)>,
    }

    impl Outcome {
        pub fn throttled_share(&self) -> f64 {
            let throttled = self.calls.iter().filter(|c| !c.2).count();
            throttled as f64 / self.calls.len().max(1) as f64
        }

        /// Admitted calls over `cap` × the span of the calls from `from` on.
        pub fn cap_used(&self, cap: f64, from: usize) -> f64 {
            let calls = &self.calls[from..];
            let admitted = calls.iter().filter(|c| c.2).count();
            let span = calls.last().map_or(0.0, |c| c.0.as_secs_f64())
                - calls.first().map_or(0.0, |c| c.0.as_secs_f64())
                + 1.0 / cap;
            admitted as f64 / (cap * span)
        }

        /// Each client's share of `cap` while all were busy (until the first made its last call).
        pub fn shares(&self, cap: f64) -> Vec<f64> {
            let clients = self.clients.len();
            let until = (0..clients)
                .map(|client| {
                    self.calls
                        .iter()
                        .rev()
                        .find(|c| c.1 == client)
                        .map_or(Duration::ZERO, |c| c.0)
                })
                .min()
                .unwrap_or_default();
            let from = (0..clients)
                .map(|client| {
                    self.calls
                        .iter()
                        .find(|c| c.1 == client)
                        .map_or(Duration::ZERO, |c| c.0)
                })
                .max()
                .unwrap_or_default();
            let span = until.saturating_sub(from).as_secs_f64().max(0.001);
            (0..clients)
                .map(|client| {
                    let admitted = self
                        .calls
                        .iter()
                        .filter(|c| c.1 == client && c.2 && c.0 >= from && c.0 <= until)
                        .count();
                    admitted as f64 / (cap * span)
                })
                .collect()
        }
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Phase {
        /// The worker is free: it plans a slot for the next piece of work.
        Free,
        /// Its slot came (planned at the given microsecond).
        Send(u64),
        /// The answer arrives.
        Answer(u64, bool),
    }

    /// How a run goes: the work of each client, when each starts, how much each way may be delayed.
    pub struct Run {
        pub work: Vec<usize>,
        pub stagger: Duration,
        pub jitter: Duration,
        /// Of the pseudo-random delays.
        pub seed: u64,
        /// How far ahead a pass may reserve its slot (the admission's).
        pub patience: Duration,
    }

    impl Run {
        /// `cap(admitted so far)` is the cap in force.
        pub fn go(&self, cap: impl Fn(usize) -> usize) -> Outcome {
            let work = &self.work;
            let t0 = Instant::now();
            let at = |us: u64| t0 + Duration::from_micros(us);
            let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let mut random = self.seed;
            let jitter = us(self.jitter).max(1);
            let mut delay = move || {
                random = random
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                us(LATENCY) + (random >> 33) % jitter
            };
            let mut cubics: Vec<Cubic> = work
                .iter()
                .map(|_| Cubic::new(INITIAL_RATE, 100.0, t0))
                .collect();
            let mut schedules: Vec<Schedule> = work.iter().map(|_| Schedule::default()).collect();
            let mut backlog: Vec<usize> = work.clone();
            let mut retries: Vec<VecDeque<u64>> = work.iter().map(|_| VecDeque::new()).collect();
            let mut left: Vec<usize> = work.clone();
            let mut admitted_at: VecDeque<u64> = VecDeque::new();
            let mut admitted = 0usize;
            let mut outcome = Outcome {
                clients: vec![(0, 0); work.len()],
                calls: Vec::new(),
            };
            let mut queue = BinaryHeap::new();
            let mut seq = 0u64;
            for client in 0..work.len() {
                for worker in 0..WORKERS {
                    let start = us(self.stagger) * client as u64;
                    queue.push(Reverse((start, seq, client, worker, Phase::Free)));
                    seq += 1;
                }
            }
            let plan = |cubic: &Cubic, schedule: &mut Schedule, now: u64| {
                let slot = schedule
                    .reserve(
                        0,
                        spacing(100.0),
                        spacing(cubic.rate()),
                        at(now),
                        Duration::MAX,
                    )
                    .unwrap_or(at(now));
                us(slot - t0)
            };
            while let Some(Reverse((now, _, client, worker, phase))) = queue.pop() {
                assert!(
                    now < 600_000_000,
                    "the simulation did not finish in 600 s: {left:?} left"
                );
                let next = match phase {
                    Phase::Free => {
                        if left[client] == 0 {
                            continue;
                        }
                        let retry_due = retries[client].front().is_some_and(|t| *t <= now);
                        if !retry_due && backlog[client] == 0 {
                            // Nothing due: look again when the next retry is.
                            let wake = retries[client].front().copied().unwrap_or(now + 100_000);
                            queue.push(Reverse((
                                wake.max(now + 1),
                                seq,
                                client,
                                worker,
                                Phase::Free,
                            )));
                            seq += 1;
                            continue;
                        }
                        // The admission: a slot at most `patience` away, else the pass comes back when its token
                        // is due (at least 100 ms later).
                        let slot = schedules[client].reserve(
                            0,
                            spacing(100.0),
                            spacing(cubics[client].rate()),
                            at(now),
                            self.patience.min(cubics[client].lookahead()),
                        );
                        let slot = match slot {
                            Ok(slot) => us(slot - t0),
                            Err(wait) => {
                                let back = now + us(wait).max(100_000);
                                queue.push(Reverse((back, seq, client, worker, Phase::Free)));
                                seq += 1;
                                continue;
                            }
                        };
                        if retry_due {
                            retries[client].pop_front();
                        } else {
                            backlog[client] -= 1;
                        }
                        (slot, Phase::Send(now))
                    }
                    // Planned for a rate EIAM refused since: planned again at the new one.
                    Phase::Send(planned) if cubics[client].dropped_since(at(planned)) => (
                        plan(&cubics[client], &mut schedules[client], now),
                        Phase::Send(now),
                    ),
                    Phase::Send(planned) => {
                        cubics[client].sent(at(now));
                        let arrives = now + delay();
                        while admitted_at
                            .front()
                            .is_some_and(|t| arrives.saturating_sub(*t) >= 1_000_000)
                        {
                            admitted_at.pop_front();
                        }
                        let ok = admitted_at.len() < cap(admitted);
                        if ok {
                            // Arrivals are out of order under jitter: keep the window sorted.
                            let position = admitted_at.partition_point(|t| *t <= arrives);
                            admitted_at.insert(position, arrives);
                            admitted += 1;
                        }
                        outcome
                            .calls
                            .push((Duration::from_micros(arrives), client, ok));
                        (arrives + delay(), Phase::Answer(planned, ok))
                    }
                    Phase::Answer(planned, ok) => {
                        if ok {
                            cubics[client].accepted_planned(at(planned), at(now));
                            outcome.clients[client].0 += 1;
                            left[client] -= 1;
                        } else {
                            if cubics[client].throttled(at(planned), at(now)) {
                                schedules[client].forget_after(at(now));
                            }
                            outcome.clients[client].1 += 1;
                            retries[client].push_back(now + us(RETRY));
                        }
                        (now, Phase::Free)
                    }
                };
                queue.push(Reverse((next.0, seq, client, worker, next.1)));
                seq += 1;
            }
            outcome.calls.sort_by_key(|c| c.0);
            outcome
        }
    }
}

/// The bench's phases, simulated with `jitter` and one `seed` of delays: unknown cap used and throttled; two
/// clients' use, throttled and smaller share; the same with the second client 3 s late (use, smaller share); and
/// the share of throttled answers after a cap falls from 50/s to 10/s.
fn phases(jitter: Duration, seed: u64) -> [f64; 9] {
    let run = |work: &[usize], stagger: u64| simulation::Run {
        work: work.to_vec(),
        stagger: Duration::from_secs(stagger),
        jitter,
        seed: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        patience: simulation::patience(),
    };
    let one = run(&[1000], 0).go(|_| 50);
    let two = run(&[500, 500], 0).go(|_| 50);
    let late = run(&[500, 500], 3).go(|_| 50);
    let uneven = run(&[300, 700], 0).go(|_| 50);
    let drop = run(&[600], 0).go(|admitted| if admitted < 200 { 50 } else { 10 });
    let from = drop
        .calls
        .iter()
        .scan(0, |admitted, c| {
            *admitted += usize::from(c.2);
            Some(*admitted)
        })
        .position(|admitted| admitted >= 200)
        .map_or(0, |i| i + 1);
    let after = &drop.calls[from..];
    let smaller_share =
        |o: &simulation::Outcome| o.shares(50.0).into_iter().fold(1.0_f64, f64::min);
    [
        one.cap_used(50.0, 0),
        one.throttled_share(),
        two.cap_used(50.0, 0),
        two.throttled_share(),
        smaller_share(&two),
        late.cap_used(50.0, 0),
        smaller_share(&late),
        after.iter().filter(|c| !c.2).count() as f64 / after.len().max(1) as f64,
        uneven.cap_used(50.0, 0),
    ]
}

/// [`phases`] over eight seeds: the mean and the worst of each.
fn phases_over_seeds(jitter: Duration) -> ([f64; 9], [f64; 9]) {
    let rows: Vec<[f64; 9]> = (1..=8).map(|seed| phases(jitter, seed)).collect();
    let mut mean = [0.0; 9];
    let mut worst = [0.0; 9];
    for i in 0..9 {
        mean[i] = rows.iter().map(|r| r[i]).sum::<f64>() / rows.len() as f64;
        // Throttled shares are worst high, the others low.
        let high_is_worse = matches!(i, 1 | 3 | 7);
        worst[i] = rows.iter().map(|r| r[i]).fold(
            if high_is_worse { 0.0 } else { 1.0 },
            |a: f64, b: f64| {
                if high_is_worse { a.max(b) } else { a.min(b) }
            },
        );
    }
    (mean, worst)
}

/// Prints the simulated phases at two jitters, mean and worst over eight seeds (a tuning aid:
/// `cargo test --lib explore_budget -- --ignored --nocapture`).
#[test]
#[ignore = "a tuning aid that prints, asserts nothing"]
fn explore_budget() {
    for jitter in [20u64, 50] {
        let (mean, worst) = phases_over_seeds(Duration::from_millis(jitter));
        let p = |i: usize| format!("{:.1} ({:.1})", 100.0 * mean[i], 100.0 * worst[i]);
        eprintln!(
            "jitter {jitter} ms, mean (worst) % | one {} used, {} thr | two {} used, {} thr, share {} | late {} used, share {} | drop {} thr | uneven {} used",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7),
            p(8)
        );
    }
}

/// Issue 23's goals on the bench's three phases, simulated with 20 ms of delay jitter and averaged over eight
/// seeds (the bench itself measures the real thing; README "Benchmarks"). The simulation's 16 passes reserving
/// their slots ahead reproduce the bench's per-second traces within a few calls.
#[test]
fn simulated_caps_are_used_with_few_throttling_answers() {
    let (mean, _) = phases_over_seeds(Duration::from_millis(20));
    eprintln!("{mean:?}");
    assert!(mean[0] >= 0.85 && mean[1] <= 0.01, "unknown cap: {mean:?}");
    assert!(
        mean[2] >= 0.85 && mean[3] <= 0.02 && mean[4] >= 0.35,
        "two clients: {mean:?}"
    );
    assert!(mean[7] <= 0.05, "a cap that falls: {mean:?}");
}

#[test]
fn refusals_right_after_slow_start_ends_are_not_read_as_a_fallen_limit() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(INITIAL_RATE, 1000.0, t0);
    let now = run_accepted(&mut cubic, t0, 1.1);
    assert!(cubic.slow_start);
    assert!(cubic.throttled(now, now), "slow start ends");
    let rate = cubic.rate();
    // Its last burst (and other clients' on a shared account) still fills EIAM's count: refusals of requests
    // planned after the drop say nothing yet.
    assert!(!cubic.throttled(now + secs(0.02), now + secs(0.03)));
    assert!(!cubic.throttled(now + secs(0.05), now + secs(0.06)));
    assert_eq!(cubic.rate(), rate);
    // A quarter second on, still nothing accepted and more refused: the limit is far below.
    assert!(cubic.throttled(now + secs(0.3), now + secs(0.31)));
    assert!((cubic.rate() - rate * REFUSED_BETA).abs() < 1e-9);
}
