//! An EIAM budget per account that finds the account's limit by itself (issue 23).
//!
//! EIAM's flow control counts requests per account and is not published. Every provider whose credentials resolve
//! to the same identity draws from one [`AccountBudget`], so two providers on one account cannot together exceed
//! what the account allows. The budget's rate is adaptive, CUBIC as in the AWS SDKs' adaptive retry mode: it
//! starts from a rate known to be safe, doubles while EIAM accepts (slow start, until the first throttling answer),
//! drops to `BETA` × the limit on a `Throttling` answer, and then grows back along a cubic curve towards and past
//! that limit. A provider's `spec.qps` (or the operator's `--max-qps`) stays a hard ceiling.
//!
//! Tuned on the fake's cap (EIAM's per-second count) where the AWS constants spend too many refusals (README "The
//! EIAM budget"; `tests.rs` simulates the bench's phases):
//! - the limit is what EIAM *accepted* in its last second when it throttled (what was sent includes the requests
//!   over it), and the curve levels off at `PLATEAU` of it, so it dwells just under the limit, not on it; never
//!   below `BETA` × what was sent (on a shared account, what EIAM accepted of one client is only its share);
//! - a limit lower than the last one levels off at `FAST_CONVERGENCE` of it (CUBIC's fast convergence), leaving
//!   room for a client that joined;
//! - a limit found again within `SAME_LIMIT` is probed more slowly (the cubic's constant halves, once): a stable
//!   limit costs fewer refusals;
//! - a budget that has not sent for a second yet (new, or woken up) takes nothing it sent or had accepted as the
//!   limit: with other clients on the account, its first requests meet a count they filled;
//! - requests planned at the new rate and refused more often than accepted (at once while EIAM accepts nothing,
//!   else from a quarter second after the drop, and never right after slow start ends, whose burst still fills
//!   EIAM's count) mean the limit fell below the new rate (a cap that dropped): the rate halves and grows back along
//!   the cubic's convex side;
//! - a drop forgets the slots planned at the old rate ([`Schedule::forget_after`]); their requests plan again at
//!   the new rate ([`Budget::dropped_since`]) rather than being spent on refusals or leaving empty slots;
//! - a reconcile reserves its slot at most [`LOOKAHEAD`] ahead, so that every change of the rate takes effect
//!   within that, not a second later.
//!
//! Requests are not bursted: each one gets a slot in the account's schedule, no two slots of an account closer
//! than `(1 + JITTER_MARGIN) / rate`, and no two of one provider closer than its ceiling allows. Evenly spaced
//! requests keep every one-second window (EIAM counts per second) under the rate, where a bucket of `rate` tokens
//! would let a full bucket and its refill land in the same second. The margin is there because requests spaced
//! exactly `1/rate` apart put the first and the `rate + 1`-th exactly one second apart when sent, and any network or
//! scheduling delay on the first puts both in one second when they arrive (measured on a loaded 2-core machine at a
//! cap of 50/s: 13 of 1,013 calls throttled without a margin, 5 of 1,005 with 50 ms). Providers that contend for the account share it evenly: a provider with a backlog
//! spaces its own slots by the number of providers with a backlog, so the others' requests fit between them.
//!
//! The arithmetic ([`Cubic`], [`Schedule`]) is pure and takes `now`, so it is tested without sleeping;
//! [`AccountBudget`] and [`Budget`] are the thin shell that sleeps.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// How much wider than `1/rate` requests are spaced: 10 %, so `rate + 1` requests span 1.1 s and up to 100 ms of
/// delay cannot put them in one second; a budget uses at most 91 % of the rate it allows.
pub const JITTER_MARGIN: f64 = 0.10;

/// The rate after a throttling answer, as a share of the rate that was throttled. The AWS SDKs use 0.7; 0.8 gave
/// the same share of throttled answers on the fake at a cap of 50/s with more of the cap used (README
/// "Benchmarks").
pub const BETA: f64 = 0.8;
/// How fast the rate grows back along the cubic curve (requests per second per second³). The AWS SDKs use 0.4;
/// half that keeps the rate near the limit it found twice as long before it probes past it again, which halved
/// the throttling answers on the fake's cap of 50/s at the same share of the cap (README "Benchmarks").
pub const SCALE: f64 = 0.2;
/// How far ahead a reconcile pass may reserve its first request's slot while its budget's rate may still change
/// (below its ceiling; the admission's own patience, a second, bounds it otherwise). A slot keeps the spacing of the rate it was planned at,
/// so a queue of slots a second long made each of slow start's doublings take effect a second late: 10, 15, 23, 48
/// requests in the first four seconds against an unknown cap of 50/s on the bench. A pass whose slot would be
/// further away comes back when it is due instead.
pub const LOOKAHEAD: Duration = Duration::from_millis(150);
/// The lowest rate a budget falls to, however often it is throttled (the AWS SDKs' minimum fill rate).
pub const MIN_RATE: f64 = 0.5;
/// The rate a new account budget starts from: the operator's former fixed default, safe for any account.
pub const INITIAL_RATE: f64 = 10.0;
/// How often slow start doubles the rate while EIAM accepts and the budget is used.
const SLOW_START_DOUBLING: Duration = Duration::from_millis(250);
/// Time without a request counts this much at most towards the cubic's growth: an idle budget does not grow.
const IDLE_GAP: Duration = Duration::from_secs(1);
/// EIAM counts requests per second: what was sent in the last second is what it counted when it throttled, and a
/// lower rate shows in its count only a second later. So the rate drops at most once per second of sending (the
/// throttling answers to requests sent within a second of a drop describe the rate before it), and the rate that
/// was throttled is what was really sent in the second before (slow start may have allowed more).
const FLOW_WINDOW: Duration = Duration::from_secs(1);
/// Where the curve levels off after a limit lower than the last one (by more than `SAME_LIMIT`), as a share of
/// it: CUBIC's fast convergence. Another client took a share of the account; leaving it room lets a budget that
/// joined late reach its share sooner.
const FAST_CONVERGENCE: f64 = 0.9;
/// How long after a drop refusals that outnumber acceptances (while EIAM accepts some) say the rate is still over
/// the limit.
const STILL_OVER_AFTER: Duration = Duration::from_millis(250);
/// While EIAM accepts nothing, each refusal of a request planned after the last drop takes the rate to this share.
const REFUSED_BETA: f64 = 0.5;
/// A limit found again within this share of the last one is stable: the cubic probes past it more slowly each time.
const SAME_LIMIT: f64 = 0.15;
/// Where the curve levels off, as a share of the rate EIAM accepted when it throttled: requests then leave at
/// `PLATEAU / (1 + JITTER_MARGIN)` of it (95 %), the rest of the jitter margin still below the limit.
const PLATEAU: f64 = 1.045;
/// The slowest probing of a stable limit, as a share of [`SCALE`]: half. (An eighth cost a cap that fell fewer
/// refusals, but a client that joined an account another one already used stayed below its share for ten seconds.)
const SLOWEST_SCALE: f64 = 0.5;

/// The adaptive rate of one account: pure state, driven by the answers EIAM gives.
#[derive(Debug, Clone)]
pub struct Cubic {
    rate: f64,
    ceiling: f64,
    /// The rate that was last throttled (`W_max`).
    last_max: f64,
    /// Seconds the curve takes from `BETA × last_max` back to `last_max`.
    k: f64,
    /// The cubic's growth constant now: [`SCALE`], halved each time the same limit is found again.
    scale: f64,
    /// The limit the last back-off found (not one after a fall: that rate was only a step down).
    last_limit: Option<f64>,
    /// Seconds of activity since the last back-off (idle time counts at most `IDLE_GAP`).
    active: f64,
    last_event: Instant,
    /// When the rate last dropped: throttling answers to requests sent before it describe the old rate.
    last_backoff: Option<Instant>,
    /// Whether EIAM accepted a request since the rate last dropped.
    accepted_since_backoff: bool,
    /// Slow start: the rate doubles until the first throttling answer.
    slow_start: bool,
    slow_start_since: Instant,
    /// Send times of the last [`FLOW_WINDOW`] (at most the ceiling's worth).
    recent: VecDeque<Instant>,
    /// Times EIAM accepted a request in the last [`FLOW_WINDOW`].
    accepted: VecDeque<Instant>,
    /// When the requests of [`Cubic::recent`] began (after a second without any).
    sending_since: Instant,
    /// Whether the last drop ended slow start.
    left_slow_start: bool,
    /// Answers to requests planned after the last drop: accepted, refused.
    accepted_after_drop: u32,
    refused_after_drop: u32,
}

impl Cubic {
    /// A budget starting at `initial` (at most `ceiling`), in slow start.
    pub fn new(initial: f64, ceiling: f64, now: Instant) -> Self {
        let ceiling = ceiling.max(MIN_RATE);
        let rate = initial.clamp(MIN_RATE, ceiling);
        Self {
            rate,
            ceiling,
            last_max: rate,
            k: 0.0,
            scale: SCALE,
            last_limit: None,
            active: 0.0,
            last_event: now,
            last_backoff: None,
            accepted_since_backoff: false,
            slow_start: true,
            slow_start_since: now,
            recent: VecDeque::new(),
            accepted: VecDeque::new(),
            sending_since: now,
            left_slow_start: false,
            accepted_after_drop: 0,
            refused_after_drop: 0,
        }
    }

    /// The rate requests were sent at in the [`FLOW_WINDOW`] before `now` (see [`per_second`]).
    fn sent_last_window(&mut self, now: Instant) -> f64 {
        per_second(&mut self.recent, now)
    }

    /// The rate requests may be sent at now, per second (before the jitter margin).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How far ahead a slot may be reserved now: [`LOOKAHEAD`] while the rate may still change (below its ceiling:
    /// a slot keeps the spacing of the rate it was reserved at), else without a bound of its own.
    pub fn lookahead(&self) -> Duration {
        if self.rate < self.ceiling {
            LOOKAHEAD
        } else {
            Duration::MAX
        }
    }

    /// Whether the rate dropped after `at`: a slot reserved then was spaced for a rate EIAM refused.
    pub fn dropped_since(&self, at: Instant) -> bool {
        self.last_backoff.is_some_and(|dropped| dropped > at)
    }

    /// The highest rate this budget may reach.
    pub fn ceiling(&self) -> f64 {
        self.ceiling
    }

    /// Lowers or raises the ceiling (a provider with a lower `spec.qps` joined or left); the rate follows down.
    pub fn set_ceiling(&mut self, ceiling: f64) {
        self.ceiling = ceiling.max(MIN_RATE);
        self.rate = self.rate.min(self.ceiling);
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_event).min(IDLE_GAP);
        self.active += dt.as_secs_f64();
        self.last_event = self.last_event.max(now);
    }

    /// A request was sent at `now` (its slot came).
    pub fn sent(&mut self, now: Instant) {
        self.sent_last_window(now);
        if self.recent.is_empty() {
            self.sending_since = now;
        }
        // Bounded: the schedule never sends faster than the ceiling.
        if self.recent.len() < 4096 {
            self.recent.push_back(now);
        }
    }

    /// EIAM accepted a request (or answered anything but throttling): the rate may grow, but never beyond twice
    /// what is actually sent, so that a budget used lightly does not grow into a burst.
    pub fn accepted(&mut self, now: Instant) {
        self.accepted_since_backoff = true;
        per_second(&mut self.accepted, now);
        if self.accepted.len() < 4096 {
            self.accepted.push_back(now);
        }
        self.advance(now);
        let target = if self.slow_start {
            let doublings = now
                .saturating_duration_since(self.slow_start_since)
                .as_secs_f64()
                / SLOW_START_DOUBLING.as_secs_f64();
            if doublings >= 1.0 {
                self.slow_start_since = now;
                self.rate * 2.0
            } else {
                self.rate
            }
        } else {
            self.scale * (self.active - self.k).powi(3) + self.last_max
        };
        let sent = self.sent_last_window(now);
        let grown = if target > self.rate {
            target.min(self.rate.max(2.0 * sent))
        } else {
            target
        };
        self.rate = grown.clamp(MIN_RATE, self.ceiling);
    }

    /// EIAM answered `Throttling` to a request reserved at `sent_at`: the rate drops to `BETA` × the limit EIAM
    /// held to (what it accepted in the last second), unless the answer describes a rate already dropped from — the
    /// request was planned before the last drop, or within a second of it while EIAM mostly accepts the new rate's
    /// requests (its count of the second before the drop runs out). If the new rate's requests are refused more
    /// often than accepted, the limit fell below it too (a cap that dropped): the rate halves ([`REFUSED_BETA`]).
    /// Returns whether it dropped.
    pub fn throttled(&mut self, sent_at: Instant, now: Instant) -> bool {
        if let Some(at) = self.last_backoff {
            let planned_after = sent_at >= at;
            if planned_after {
                self.refused_after_drop += 1;
            }
            // Requests planned at the new rate and refused more often than accepted: the new rate is still well
            // over the limit (a limit that fell, or slow start far past it).
            let still_over = if self.accepted_since_backoff {
                // Not at once: slow start's last burst may still fill EIAM's count.
                now >= at + STILL_OVER_AFTER
                    && self.refused_after_drop >= 2
                    && self.refused_after_drop > self.accepted_after_drop
            } else if self.left_slow_start {
                // The drop ended slow start, whose last burst (and, on a shared account, other clients' bursts)
                // still fills EIAM's count: a refusal right after it says nothing yet.
                planned_after && now >= at + STILL_OVER_AFTER && self.refused_after_drop >= 2
            } else {
                planned_after
            };
            if still_over {
                return self.fell(now);
            }
            // Otherwise the answer describes the rate before the drop: planned before it, or within EIAM's second
            // after it while EIAM accepts the new rate's requests (its count of the second before runs out).
            if !planned_after || sent_at < at + FLOW_WINDOW {
                return false;
            }
        }
        self.advance(now);
        let accepted = per_second(&mut self.accepted, now);
        let sent = self.sent_last_window(now);
        let fresh = now.saturating_duration_since(self.sending_since) < FLOW_WINDOW;
        let (base, beta) = if fresh {
            // Not a second of requests yet (a budget that just started, or woke up): what was sent and accepted
            // says nothing of the limit. (With other clients on the account, the first requests meet a count
            // they filled.)
            (self.rate, BETA)
        } else if sent > 0.0 {
            // What EIAM accepted in its last second is the limit it holds to (what was sent includes the requests
            // over it): the curve comes back to it and stays there a while, the jitter margin below it. But with
            // other clients on the account, what it accepted of a newcomer's few requests says nothing of the
            // limit: never less than `BETA` × what was sent.
            let limit = (accepted * PLATEAU).max(BETA * sent);
            (self.rate.min(limit.max(MIN_RATE)), BETA)
        } else {
            (self.rate, BETA)
        };
        self.scale = match self.last_limit {
            Some(last) if (base - last).abs() <= SAME_LIMIT * last => {
                (self.scale / 2.0).max(SCALE * SLOWEST_SCALE)
            }
            _ => SCALE,
        };
        // Fast convergence (CUBIC's): a limit lower than the last one means another client took a share of the
        // account; level off below it, so that the newcomer finds room sooner.
        let shrunk = !fresh
            && self
                .last_limit
                .is_some_and(|last| base < last * (1.0 - SAME_LIMIT));
        self.last_limit = Some(base);
        self.left_slow_start = self.slow_start;
        self.slow_start = fresh && self.slow_start;
        self.slow_start_since = now;
        self.last_max = if shrunk {
            base * FAST_CONVERGENCE
        } else {
            base
        };
        self.rate = (base * beta).clamp(MIN_RATE, self.ceiling);
        self.k = ((self.last_max - self.rate).max(0.0) / self.scale).cbrt();
        self.dropped(now);
        true
    }

    /// The limit fell below the rate (a cap that dropped, or slow start far past it): the rate halves, and grows
    /// back from there along the cubic's convex side, not by slow start's doublings (which went straight back over
    /// the limit on the bench).
    fn fell(&mut self, now: Instant) -> bool {
        self.advance(now);
        self.rate = (self.rate * REFUSED_BETA).clamp(MIN_RATE, self.ceiling);
        self.last_max = self.rate;
        self.last_limit = None;
        self.scale = SCALE;
        self.k = 0.0;
        self.slow_start = false;
        self.left_slow_start = false;
        self.dropped(now);
        true
    }

    fn dropped(&mut self, now: Instant) {
        self.active = 0.0;
        self.last_backoff = Some(now);
        self.accepted_since_backoff = false;
        self.accepted_after_drop = 0;
        self.refused_after_drop = 0;
    }

    /// EIAM accepted a request planned at `planned`: [`Cubic::accepted`], counted for the rate since the last drop.
    pub fn accepted_planned(&mut self, planned: Instant, now: Instant) {
        if self.last_backoff.is_some_and(|at| planned >= at) {
            self.accepted_after_drop += 1;
        }
        self.accepted(now);
    }
}

/// The rate of the events in `times` in the [`FLOW_WINDOW`] before `now` (older ones are dropped): their count
/// over the time they span, at least half the window, so that one event is not read as a high rate.
fn per_second(times: &mut VecDeque<Instant>, now: Instant) -> f64 {
    while times
        .front()
        .is_some_and(|at| now.saturating_duration_since(*at) >= FLOW_WINDOW)
    {
        times.pop_front();
    }
    let span = times
        .front()
        .map_or(Duration::ZERO, |first| {
            now.saturating_duration_since(*first)
        })
        .max(FLOW_WINDOW / 2);
    times.len() as f64 / span.as_secs_f64()
}

/// Reserved send times of one account's requests, and each provider's next allowed time.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Future slots, in order, with the provider that holds each.
    slots: VecDeque<(Instant, u64)>,
    /// Each provider's earliest next slot (its ceiling, its fair share).
    next: HashMap<u64, Instant>,
    /// Of each provider in `next`: the spacing its ceiling asks for, and the latest of its slots that left `slots`.
    /// What [`Schedule::forget_after`] keeps of `next`: the ceiling is hard, a drop or not.
    own: HashMap<u64, (Duration, Option<Instant>)>,
}

impl Schedule {
    /// Reserves the earliest slot for `provider` at most `patience` away: no closer than `account_spacing` to any
    /// other slot, and no closer than `own_spacing` (its ceiling), or its fair share when other providers have
    /// slots waiting, to its previous one. `Err`: the wait it would have had; nothing is reserved.
    pub fn reserve(
        &mut self,
        provider: u64,
        own_spacing: Duration,
        account_spacing: Duration,
        now: Instant,
        patience: Duration,
    ) -> Result<Instant, Duration> {
        while self
            .slots
            .front()
            .is_some_and(|(at, _)| *at + account_spacing <= now)
        {
            if let Some((at, holder)) = self.slots.pop_front()
                && let Some((_, left)) = self.own.get_mut(&holder)
            {
                *left = Some(at);
            }
        }
        self.next.retain(|_, at| *at > now);
        // A provider whose next slot is due has nothing left to keep apart.
        let next = &self.next;
        self.own.retain(|holder, _| next.contains_key(holder));
        self.own.entry(provider).or_insert((own_spacing, None)).0 = own_spacing;
        let mut candidate = self.next.get(&provider).copied().unwrap_or(now).max(now);
        for (slot, _) in &self.slots {
            if *slot + account_spacing <= candidate {
                continue;
            }
            if candidate + account_spacing <= *slot {
                break;
            }
            candidate = *slot + account_spacing;
        }
        let wait = candidate.saturating_duration_since(now);
        if wait > patience {
            return Err(wait);
        }
        let position = self.slots.partition_point(|(at, _)| *at <= candidate);
        self.slots.insert(position, (candidate, provider));
        // Providers with requests waiting share the account evenly: this one leaves room for each of them.
        let contending = 1 + self
            .slots
            .iter()
            .filter(|(at, holder)| *holder != provider && *at > now)
            .map(|(_, holder)| *holder)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let share = account_spacing.saturating_mul(u32::try_from(contending).unwrap_or(u32::MAX));
        self.next
            .insert(provider, candidate + own_spacing.max(share));
        Ok(candidate)
    }

    /// Forgets every slot after `now`: after a drop they were planned at a rate EIAM refused, and each request that
    /// held one plans again at the new rate when its time comes (see [`Budget::dropped_since`]). Kept, they would
    /// stand empty between the new ones: a gap of up to a second of the budget after every back-off. Each
    /// provider's next allowed time goes back to what its ceiling asks after its latest slot that stays.
    pub fn forget_after(&mut self, now: Instant) {
        self.slots.retain(|(at, _)| *at <= now);
        let (slots, own) = (&self.slots, &self.own);
        self.next.retain(|holder, next| {
            let Some((spacing, left)) = own.get(holder) else {
                return false;
            };
            let latest = slots
                .iter()
                .filter(|(_, h)| h == holder)
                .map(|(at, _)| *at)
                .max()
                .max(*left);
            match latest.map(|latest| latest + *spacing) {
                Some(allowed) if allowed > now => {
                    *next = allowed;
                    true
                }
                _ => false,
            }
        });
    }

    /// How many slots are reserved and not yet past.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is reserved.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// How far apart requests at `rate` leave (a provider's `spec.qps` may be as low as 0.01: 110 s).
fn spacing(rate: f64) -> Duration {
    Duration::try_from_secs_f64((1.0 + JITTER_MARGIN) / rate.max(f64::MIN_POSITIVE))
        .unwrap_or(Duration::MAX)
}

/// One account's budget, shared by every provider whose credentials resolve to that identity.
#[derive(Debug)]
pub struct AccountBudget {
    /// A short, stable name for the account that reveals nothing of the identity: `acct-` and 8 hex digits of a
    /// SHA-256 of its public part (metrics labels, logs).
    label: String,
    state: Mutex<State>,
    backoffs: AtomicU64,
    throttled: AtomicU64,
}

#[derive(Debug)]
struct State {
    cubic: Cubic,
    schedule: Schedule,
    /// When the rate last dropped, on the wall clock (for status), to the second.
    last_backoff: Option<jiff::Timestamp>,
}

/// What a provider's budget looks like now, for its status: nothing here is secret.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSnapshot {
    /// The account's label (`acct-…`), as in the metrics.
    pub account: String,
    /// Requests per second the provider may send now: its account's rate, at most its own ceiling.
    pub qps: f64,
    /// The provider's own ceiling.
    pub ceiling: f64,
    /// When EIAM last throttled the account and its rate dropped, to the second.
    pub last_backoff: Option<jiff::Timestamp>,
}

/// `acct-` and 8 hex digits of a SHA-256 of `public` (which holds nothing secret).
fn label_of(public: &str) -> String {
    let digest = Sha256::digest(public.as_bytes());
    format!(
        "acct-{}",
        digest[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

impl AccountBudget {
    fn new(label: String, initial: f64, ceiling: f64) -> Self {
        Self {
            label,
            state: Mutex::new(State {
                cubic: Cubic::new(initial, ceiling, Instant::now()),
                schedule: Schedule::default(),
                last_backoff: None,
            }),
            backoffs: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account's name in metrics, status and logs.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The rate requests may be sent at now, per second.
    pub fn rate(&self) -> f64 {
        self.state().cubic.rate()
    }

    /// How often the rate dropped on a throttling answer.
    pub fn backoffs(&self) -> u64 {
        self.backoffs.load(Ordering::Relaxed)
    }

    /// How many throttling answers the account's requests met.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// A provider's handle on its account's budget: its own ceiling, its fair share.
#[derive(Debug, Clone)]
pub struct Budget {
    account: Arc<AccountBudget>,
    provider: u64,
    ceiling: f64,
}

/// What EIAM's answer to a request says about the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Anything but throttling (an error of the request itself says nothing about the rate).
    Accepted,
    /// `Throttling*`.
    Throttled,
}

impl Budget {
    /// A budget of its own (no other provider shares it): a client built outside a provider cache, the CLI.
    pub fn standalone(ceiling: f64) -> Self {
        BudgetRegistry::new(ceiling).budget_starting_at(
            "standalone",
            "standalone",
            ceiling,
            Some(ceiling),
        )
    }

    /// The account this budget draws from.
    pub fn account(&self) -> &Arc<AccountBudget> {
        &self.account
    }

    /// The budget as it stands now.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let state = self.account.state();
        BudgetSnapshot {
            account: self.account.label.clone(),
            qps: state.cubic.rate().min(self.ceiling),
            ceiling: self.ceiling,
            last_backoff: state.last_backoff,
        }
    }

    /// This provider's ceiling, requests per second.
    pub fn ceiling(&self) -> f64 {
        self.ceiling
    }

    /// Reserves a send time at most `patience` away; otherwise reserves nothing and returns the wait.
    pub fn reserve_within(&self, patience: Duration) -> Result<Instant, Duration> {
        let now = Instant::now();
        let mut state = self.account.state();
        let account = spacing(state.cubic.rate());
        state
            .schedule
            .reserve(self.provider, spacing(self.ceiling), account, now, patience)
    }

    /// Waits for a send time; returns when the slot it went with was reserved.
    pub async fn acquire(&self) -> Instant {
        loop {
            let reserved = Instant::now();
            let at = self.reserve_within(Duration::MAX).unwrap_or(reserved);
            tokio::time::sleep_until(at).await;
            if !self.dropped_since(reserved) {
                return reserved;
            }
        }
    }

    /// How far ahead this provider may reserve a slot now (see [`Cubic::lookahead`]): below the ceiling the rate's
    /// changes take effect within [`LOOKAHEAD`]; at the ceiling (a told `spec.qps` or `--default-qps`) the rate
    /// does not change and the admission's own patience bounds it, so fewer passes come back (each return re-reads
    /// what its plan needs: reserving only 150 ms ahead at a told cap of 50/s cost 0.37 more API requests per
    /// rotation).
    pub fn lookahead(&self) -> Duration {
        let state = self.account.state();
        if self.ceiling <= state.cubic.rate() {
            return Duration::MAX;
        }
        state.cubic.lookahead()
    }

    /// Whether the account's rate dropped after `at`: a slot reserved then was spaced for a rate EIAM refused since,
    /// and is planned again at the new one rather than spent. (Each of the requests planned ahead at the old rate
    /// would meet a refusal while EIAM's count of the last second is over its limit: after a cap fell, that was
    /// most of the refusals.)
    pub fn dropped_since(&self, at: Instant) -> bool {
        self.account.state().cubic.dropped_since(at)
    }

    /// A request leaves now.
    pub fn sent(&self) -> Instant {
        let now = Instant::now();
        self.account.state().cubic.sent(now);
        now
    }

    /// EIAM answered a request whose slot was reserved at `sent_at` (slots reserved before a drop were spaced for
    /// the rate before it). Returns the new rate when it dropped.
    pub fn answered(&self, sent_at: Instant, answer: Answer) -> Option<f64> {
        let now = Instant::now();
        let mut state = self.account.state();
        match answer {
            Answer::Accepted => {
                state.cubic.accepted_planned(sent_at, now);
                None
            }
            Answer::Throttled => {
                self.account.throttled.fetch_add(1, Ordering::Relaxed);
                let dropped = state.cubic.throttled(sent_at, now);
                if dropped {
                    state.schedule.forget_after(now);
                    self.account.backoffs.fetch_add(1, Ordering::Relaxed);
                    // Whole seconds: a status stores no more, and the copy it holds must compare equal.
                    state.last_backoff =
                        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).ok();
                }
                dropped.then(|| state.cubic.rate())
            }
        }
    }
}

/// Every account budget of the process, by identity. An account's budget lives as long as a provider's client
/// holds it, and is shared by every provider resolving to the same identity.
pub struct BudgetRegistry {
    /// The highest rate any account may reach (`--max-qps`).
    max_rate: f64,
    accounts: Mutex<HashMap<String, Weak<AccountBudget>>>,
    providers: AtomicU64,
}

// By hand: the map's keys hold a digest of an AccessKey secret, which no log line may carry.
impl std::fmt::Debug for BudgetRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .accounts()
            .iter()
            .map(|account| account.label.clone())
            .collect();
        f.debug_struct("BudgetRegistry")
            .field("max_rate", &self.max_rate)
            .field("accounts", &labels)
            .finish()
    }
}

impl BudgetRegistry {
    /// No account may exceed `max_rate` requests per second.
    pub fn new(max_rate: f64) -> Self {
        Self {
            max_rate,
            accounts: Mutex::default(),
            providers: AtomicU64::new(0),
        }
    }

    /// A budget for one provider on the account of `identity` (e.g. `accessKey:LTAI…` with a digest of its
    /// secret and the endpoint, see `reconcile::provider`), at most `ceiling` requests per second for this
    /// provider.
    /// `key` tells accounts apart (it may hold a digest of a secret and is never shown); its label is a digest of
    /// `public`, made unique with a suffix when two keys share a public part (the same AccessKey id with another
    /// secret).
    pub fn budget(&self, key: &str, public: &str, ceiling: f64) -> Budget {
        self.budget_starting_at(key, public, ceiling, None)
    }

    /// [`BudgetRegistry::budget`] of a provider whose ceiling was set explicitly (`spec.qps`, a number for
    /// `--default-qps`): whoever set it says the account allows that much, so a new account starts there rather
    /// than at [`INITIAL_RATE`] (it still backs off when EIAM throttles).
    pub fn budget_starting_at(
        &self,
        key: &str,
        public: &str,
        ceiling: f64,
        start: Option<f64>,
    ) -> Budget {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        accounts.retain(|_, account| account.strong_count() > 0);
        let account = match accounts.get(key).and_then(Weak::upgrade) {
            Some(account) => account,
            None => {
                let base = label_of(public);
                let taken = |label: &str| {
                    accounts
                        .values()
                        .filter_map(Weak::upgrade)
                        .any(|account| account.label == label)
                };
                let mut label = base.clone();
                let mut n = 2;
                while taken(&label) {
                    label = format!("{base}-{n}");
                    n += 1;
                }
                let initial = start.map_or(INITIAL_RATE, |start| start.min(self.max_rate));
                let account = Arc::new(AccountBudget::new(label, initial, self.max_rate));
                accounts.insert(key.to_owned(), Arc::downgrade(&account));
                account
            }
        };
        Budget {
            account,
            provider: self.providers.fetch_add(1, Ordering::Relaxed),
            // A provider's own ceiling may be below the account's floor (`spec.qps: 0.01`): it is a hard one.
            ceiling: ceiling.min(self.max_rate),
        }
    }

    /// The accounts some provider uses now.
    pub fn accounts(&self) -> Vec<Arc<AccountBudget>> {
        let accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut live: Vec<_> = accounts.values().filter_map(Weak::upgrade).collect();
        live.sort_by(|a, b| a.label.cmp(&b.label));
        live
    }
}

#[cfg(test)]
mod tests;
