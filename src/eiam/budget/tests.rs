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
fn slow_start_doubles_while_accepted_then_backs_off_to_beta_of_what_was_sent() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(INITIAL_RATE, 1000.0, t0);
    let now = run_accepted(&mut cubic, t0, 2.1);
    assert!(
        cubic.rate() >= 80.0,
        "{} after 2 s of slow start",
        cubic.rate()
    );
    let sent = cubic.sent_last_window(now);
    assert!(cubic.throttled(now, now));
    assert!(
        cubic.rate() <= BETA * sent + 1e-9,
        "{} vs sent {sent}",
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
    // Ten more answers to requests sent before the drop, or within EIAM's second of counting after it while it
    // still accepts some.
    cubic.accepted(t1 + secs(0.05));
    for i in 0..10 {
        assert!(!cubic.throttled(t0 + secs(0.9 + f64::from(i) * 0.05), t1 + secs(0.6)));
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
    let mut now = t0;
    assert!(cubic.throttled(now, now));
    let mut drops = 1;
    while now < t0 + secs(1.0) {
        now += secs(1.0 / cubic.rate());
        if cubic.throttled(now, now + secs(0.005)) {
            drops += 1;
        }
    }
    // Five drops in EIAM's second, not one per refusal: a third of the rate, not the floor.
    assert_eq!(drops, 5);
    assert!(
        cubic.rate() < 17.0 && cubic.rate() > 10.0,
        "{} after a second of refusals",
        cubic.rate()
    );
}

#[test]
fn after_a_drop_the_rate_climbs_back_to_the_throttled_rate_in_k_seconds_then_probes_past_it() {
    let t0 = Instant::now();
    let mut cubic = Cubic::new(50.0, 1000.0, t0);
    cubic.slow_start = false;
    assert!(cubic.throttled(t0, t0));
    let k = (50.0 * (1.0 - BETA) / SCALE).cbrt();
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
                        cubic.throttled(now, now);
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
