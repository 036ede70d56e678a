//! The two-slot rotation state machine: one observation in, the next actions and status out.
//!
//! Every decision is re-derived from the observation and the persisted status, so that a plan
//! interrupted after any action is completed by the next one: the re-plan the executor does
//! after a Create is exactly the path that recovers a crash after a Create.
//!
//! One pass ([`Pass`]) is split by concern: acting on EIAM's list ([`observed`]), adopting this resource's own
//! interrupted Create or an import ([`adopt`]), issuing ([`issue`]), retiring ([`retire`]), when a rotation is due
//! ([`schedule`]) and deletion ([`deletion`]); this file holds the pass's skeleton and the status it leaves.

use std::time::Duration;

use jiff::Timestamp;

use crate::eiam::expiration::expiration_for;

use super::conditions;
use super::model::{
    Action, CurrentSecret, DeletionPolicy, EiamView, Event, EventKind, ObservedSecret, Plan,
    PlanInput, PlanStatus, PreviousSecret, ProviderState, Seen,
};
use super::reasons;

mod adopt;
mod deletion;
mod issue;
mod observed;
mod retire;
mod schedule;

/// EIAM allows at most this many client secrets per application.
pub const SLOT_LIMIT: usize = 2;

/// Requeue of a stalled resource: slow, so a state that needs a human is not a hot loop.
pub const STALLED_REQUEUE: Duration = Duration::from_secs(600);

/// How far outside the window of ExpirationTimes our interrupted Create may have sent a listed
/// `ExpirationTime` may be and still be recognised as that Create's secret (covers server-side
/// rounding). The window itself runs from what `expiration_for` gives at the marker to what it
/// gives at the plan that looks (see `Rules::find_pending`).
pub const ADOPTION_TOLERANCE: Duration = Duration::from_secs(60);
/// A Create is signed within this long after its write-ahead marker, or not sent at all (the
/// executor's gate refuses to sign it later; the next pass lists and writes a new marker). So the
/// expiries our Create can carry are bounded however late the List that looks for it comes, and a
/// secret of someone else minted after that with the same lifetime is not taken for ours.
pub const CREATE_SIGNING_WINDOW: Duration = Duration::from_secs(3600);
/// How soon a pass that leaves a renewal due (an adopted or imported secret already due) looks again.
const DUE_AGAIN: Duration = Duration::from_secs(1);
/// How often a resource whose rotation is blocked by someone else's secret looks again (one List each time).
pub const BLOCKED_RETRY: Duration = Duration::from_secs(60);
/// The least time before expiry at which a blocked rotation turns the resource `Stalled`.
pub const BLOCKED_STALL_MIN: Duration = Duration::from_secs(3600);
/// While a previous secret is kept because EIAM shows it in use, the List that checks again is repeated every
/// half of `retireWhenUnusedFor`, bounded by these.
pub const USAGE_POLL_MIN: Duration = Duration::from_secs(10);
pub const USAGE_POLL_MAX: Duration = Duration::from_secs(300);

/// How often the List is repeated while a previous secret is kept in use: half of `retireWhenUnusedFor`, between
/// [`USAGE_POLL_MIN`] and [`USAGE_POLL_MAX`].
pub fn usage_poll(retire_when_unused_for: Duration) -> Duration {
    (retire_when_unused_for / 2).clamp(USAGE_POLL_MIN, USAGE_POLL_MAX)
}

/// What EIAM's `LastUsedTime` says about retiring the previous secret once its grace period is over.
enum Usage {
    /// Unused for `retireWhenUnusedFor` (or no usage rule): retire.
    Idle,
    /// Still used, and `maxGracePeriod` is over: retire anyway, with a Warning.
    Overdue { last_used: Timestamp },
    /// Still used: keep it, and look again then.
    InUse {
        look_again: Timestamp,
        deadline: Timestamp,
    },
}

/// Decides the next actions and the status to persist. Pure: no I/O, no clock.
pub fn plan(input: &PlanInput) -> Plan {
    let mut pass = Pass::new(input);
    let outcome = if input.deleting {
        pass.finalize()
    } else {
        pass.reconcile()
    };
    pass.finish(outcome)
}

/// When the current secret is due for renewal; `None` when it never is.
///
/// A current secret that never expires under a spec that wants expiring secrets (the spec changed,
/// or a never-expiring secret was imported) is renewed as if it had been minted with that
/// lifetime at `lastRotationTime`.
pub fn renewal_time(status: &PlanStatus, spec: &super::model::PlanSpec) -> Option<Timestamp> {
    let current = status.current.as_ref()?;
    let not_after = match (current.not_after, spec.expires_after) {
        (Some(not_after), _) => not_after,
        (None, Some(lifetime)) => {
            let issued = status.last_rotation_time.unwrap_or(Timestamp::UNIX_EPOCH);
            add(issued, lifetime)
        }
        (None, None) => return None,
    };
    let renew_before = if spec.renew_before.is_zero() {
        // No renewBefore (the spec never expires, the current secret does: imported, or the spec
        // changed): renew with a third of the lifetime it had when it became current left.
        let since = status.last_rotation_time.unwrap_or(not_after);
        Duration::try_from(since.duration_until(not_after)).unwrap_or(Duration::ZERO) / 3
    } else {
        // A lifetime near EIAM's 1-day minimum is minted a little longer (the margin that keeps the request above
        // the bound); the renewal stays where the spec puts it.
        spec.renew_before
            + spec
                .expires_after
                .map(crate::eiam::expiration::stretch)
                .unwrap_or_default()
    };
    // Whole seconds, like every instant the status stores (RFC 3339 seconds in the CRD), so that
    // a fractional renewBefore does not make the status differ after each round trip.
    let due = floor_to_second(sub(not_after, renew_before));
    Some(within_window(due, not_after, spec))
}

/// A scheduled renewal due at `due` moved to the next opening of a rotation window, unless no window is open then
/// and waiting would bring the published secret within [`expiry_margin`] of its expiry: then it stays at `due`
/// (safety first; the rotation then says `RotatedOutsideWindow`).
fn within_window(due: Timestamp, not_after: Timestamp, spec: &super::model::PlanSpec) -> Timestamp {
    let Ok(windows) = &spec.windows else {
        return due;
    };
    if windows.is_empty() || windows.is_open(due) {
        return due;
    }
    let latest = sub(not_after, expiry_margin(due, not_after));
    match windows.next_open(due) {
        Some(open) if open <= latest => ceil_to_second(open),
        _ => due,
    }
}

/// How close to expiry a secret may get before a rotation stops waiting (for a window) or a blocked rotation
/// stalls: a quarter of the time between the renewal and expiry, at least [`BLOCKED_STALL_MIN`].
pub fn expiry_margin(renewal: Timestamp, not_after: Timestamp) -> Duration {
    let window = Duration::try_from(renewal.duration_until(not_after)).unwrap_or_default();
    (window / 4).max(BLOCKED_STALL_MIN)
}

/// How a pass ends.
enum Outcome {
    /// The actions end with a barrier; the executor re-plans.
    Replan,
    /// A valid current secret is (or will be, once the actions ran) published.
    Ready { message: String },
    /// A state that needs a human (or a provider that works again).
    Stalled { reason: String, message: String },
    /// Deletion: the finalizer is (being) removed, nothing more to do.
    Finalized,
}

/// The state of the recorded current secret in EIAM's view.
enum CurrentState {
    Usable,
    /// A partial view does not show it: usable as far as we know (nothing says otherwise since the last List),
    /// but not published on that word alone.
    Unseen,
    Missing,
    Disabled,
    Expired,
}

/// What the List says about an interrupted Create.
enum PendingCreate<'l> {
    Found(&'l ObservedSecret),
    NotFound,
    Ambiguous(Vec<String>),
}

/// A new current secret adopted during this pass.
struct NewCurrent {
    reason: &'static str,
    /// The recorded current it replaces (consumers may hold that value: restart them).
    replaces: Option<String>,
    note: String,
}

/// One planning pass: the input, a working copy of the status and the actions so far.
struct Pass<'a> {
    input: &'a PlanInput,
    /// `input.now` rounded up to the second: every instant the planner stores derives from it, so
    /// the status survives a round trip through RFC 3339 seconds unchanged.
    stamp: Timestamp,
    status: PlanStatus,
    actions: Vec<Action>,
    /// Ids disabled/deleted by this plan (they free their slot and are no longer owned).
    retiring: Vec<String>,
    new_current: Option<NewCurrent>,
    /// The recorded current secret is missing, disabled or expired in EIAM. It stays recorded
    /// until its replacement is adopted (so the adoption knows what it replaces), but is never
    /// published, and is dropped from a final status.
    broken: bool,
    /// A due rotation cannot mint: secrets of someone else hold the free slot (why, naming them). The published
    /// secret is still valid, so the resource stays Ready and says so in `RotationBlocked`.
    blocked: Option<String>,
    /// The previous secret is past its grace period but kept because EIAM shows it in use: when to look again,
    /// and the `maxGracePeriod` deadline.
    held_in_use: Option<(Timestamp, Timestamp)>,
}

impl<'a> Pass<'a> {
    fn new(input: &'a PlanInput) -> Self {
        Pass {
            input,
            stamp: ceil_to_second(input.now),
            status: input.status.clone(),
            actions: Vec::new(),
            retiring: Vec::new(),
            new_current: None,
            broken: false,
            blocked: None,
            held_in_use: None,
        }
    }

    fn now(&self) -> Timestamp {
        self.input.now
    }

    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    fn event(&mut self, kind: EventKind, reason: &str, note: String) {
        self.push(Action::Event(Event {
            kind,
            reason: reason.to_string(),
            note,
        }));
    }

    fn stalled(reason: &str, message: String) -> Outcome {
        Outcome::Stalled {
            reason: reason.to_string(),
            message,
        }
    }

    fn list(&mut self) -> Outcome {
        self.push(Action::ListSecrets);
        Outcome::Replan
    }

    // ---------------------------------------------------------------- the resource exists

    fn reconcile(&mut self) -> Outcome {
        let input = self.input;
        if !input.has_finalizer {
            self.push(Action::AddFinalizer);
        }
        if let Some(owner) = &input.conflict {
            return Self::stalled(
                reasons::CONFLICT,
                format!(
                    "this EIAM application is already managed by {owner}; delete one of the two resources"
                ),
            );
        }
        match &input.provider {
            ProviderState::Ready => {}
            ProviderState::NotAllowed { message } => {
                return Self::stalled(reasons::NOT_ALLOWED, message.clone());
            }
            ProviderState::Unavailable { reason, message } => {
                return Self::stalled(reason, message.clone());
            }
        }
        if let Some(message) = &input.restart_denied {
            return Self::stalled(reasons::RESTART_NOT_PERMITTED, message.clone());
        }
        let unusable_window = match &input.spec.windows {
            Err(error) => Some(error.clone()),
            Ok(windows) => windows.never_opening(self.now()),
        };
        if let Some(error) = unusable_window {
            return Self::stalled(
                reasons::INVALID_ROTATION_WINDOW,
                format!("{error}: renewals cannot be scheduled"),
            );
        }
        if let Some(message) = &input.invalid_template {
            return Self::stalled(reasons::INVALID_TEMPLATE, message.clone());
        }
        if input.kube_secret != super::model::KubeSecret::Missing && !input.kube_secret.is_ours() {
            return Self::stalled(
                reasons::TARGET_NOT_OWNED,
                "the target Secret exists and was not written by eiam-operator for this resource; \
                 delete it or choose another spec.target.name"
                    .to_string(),
            );
        }
        match &input.eiam {
            EiamView::Unobserved => self.without_list(),
            view => self.with_view(view),
        }
    }

    /// Nothing observed yet: list only when a decision needs the whole of EIAM's view; act on the status alone
    /// when it is enough (a first issue, a scheduled rotation, a retirement); else steady state.
    fn without_list(&mut self) -> Outcome {
        let input = self.input;
        let now = self.now();
        let Some(current) = self.status.current.clone() else {
            if self.first_issue_needs_no_list() {
                return self.mint_unlisted();
            }
            return self.list();
        };
        let expired = current.not_after.is_some_and(|t| now >= t);
        if input.drift_check_due
            || self.status.pending_create_since.is_some()
            || expired
            || !input.kube_secret.holds(&current.secret_id)
        {
            return self.list();
        }
        let retire_due = self
            .status
            .previous
            .as_ref()
            .is_some_and(|p| now >= p.retire_at);
        let rotation_due = self.rotation_due();
        if !retire_due {
            match &self.status.previous {
                // Both slots are ours (current + previous in grace): nothing to list, just wait.
                Some(previous) if rotation_due => {
                    return Outcome::Ready {
                        message: deferred_message(&current, previous),
                    };
                }
                _ if !rotation_due => {
                    return Outcome::Ready {
                        message: self.ready_message(&current),
                    };
                }
                _ => {}
            }
        }
        // Something is due. A retirement under retireWhenUnusedFor needs EIAM's LastUsedTime; a rotation needs
        // the List unless a Create may go out on the status's word.
        if (retire_due && input.spec.retire_when_unused_for.is_some())
            || (rotation_due && !self.create_needs_no_list())
        {
            return self.list();
        }
        self.with_view(&EiamView::Partial(Vec::new()))
    }

    fn finish(mut self, outcome: Outcome) -> Plan {
        let input = self.input;
        let now = self.now();
        if self.broken && !matches!(outcome, Outcome::Replan) {
            // A final status does not keep a current secret that no longer works.
            self.status.current = None;
        }
        let requeue_at = match outcome {
            Outcome::Replan => {
                // What WritePendingCreate persists (everything decided so far, including a broken
                // current that its replacement will replace) or, before a List, the input status:
                // the next plan starts from exactly what a crash would leave behind.
                if self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::WritePendingCreate { .. }))
                {
                    self.status.renewal_time = renewal_time(&self.status, &input.spec);
                } else {
                    self.status = input.status.clone();
                }
                self.status.observed_generation = input.status.observed_generation;
                self.status.conditions = input.status.conditions.clone();
                None
            }
            Outcome::Finalized => None,
            Outcome::Ready { message } => {
                self.status.renewal_time = renewal_time(&self.status, &input.spec);
                self.status.observed_generation = Some(input.generation);
                // A renewal that is due here is deferred behind the previous secret's retirement;
                // a retirement due here (zero grace period) is the next pass's work. One due without a
                // previous secret (a secret adopted or imported already due) is the next pass's too: in a
                // second (never zero, so that nothing unforeseen can spin).
                let renewal = match &self.status.previous {
                    None => self.status.renewal_time.map(|t| t.max(add(now, DUE_AGAIN))),
                    Some(_) => self.status.renewal_time.filter(|t| *t > now),
                };
                let retirement = match self.held_in_use {
                    Some((look_again, _)) => Some(look_again),
                    None => self.status.previous.as_ref().map(|p| p.retire_at),
                };
                let next = renewal.into_iter().chain(retirement).min();
                match self.blocked.take() {
                    None => {
                        self.status.conditions = conditions::ready(message);
                        next
                    }
                    Some(blocked) => {
                        let already = input
                            .status
                            .condition(super::model::ConditionType::RotationBlocked)
                            .is_some_and(|c| c.status == super::model::ConditionStatus::True);
                        if !already {
                            self.event(
                                EventKind::Warning,
                                reasons::ROTATION_BLOCKED,
                                blocked.clone(),
                            );
                        }
                        let message =
                            format!("{message}; its rotation is due but blocked: {blocked}");
                        self.status.conditions = conditions::ready_but_blocked(message, blocked);
                        // Look again soon: the rotation happens as soon as the slot is free.
                        Some(add(now, BLOCKED_RETRY))
                    }
                }
            }
            Outcome::Stalled { reason, message } => {
                let recorded = input.status.condition(super::model::ConditionType::Stalled);
                let already = recorded.is_some_and(|c| {
                    c.status == super::model::ConditionStatus::True && c.reason == reason
                });
                if !already {
                    self.event(EventKind::Warning, &reason, message.clone());
                }
                self.status.renewal_time = renewal_time(&self.status, &input.spec);
                self.status.observed_generation = Some(input.generation);
                self.status.conditions = conditions::stalled(&reason, message);
                Some(add(now, STALLED_REQUEUE))
            }
        };
        let requeue_after =
            requeue_at.map(|t| Duration::try_from(now.duration_until(t)).unwrap_or(Duration::ZERO));
        Plan {
            actions: self.actions,
            status: self.status,
            requeue_after,
        }
    }
}

fn deferred_message(current: &CurrentSecret, previous: &PreviousSecret) -> String {
    format!(
        "secret {} is published; its rotation is due and waits until the previous secret {} retires at {}",
        current.secret_id, previous.secret_id, previous.retire_at
    )
}

fn deletion_blocked(message: &str) -> String {
    format!(
        "cannot delete the EIAM secrets of this resource: {message}; the finalizer stays until the \
         provider works again (or set spec.deletionPolicy: Retain to keep them and let the resource go)"
    )
}

fn find<'l>(listed: &'l [ObservedSecret], secret_id: &str) -> Option<&'l ObservedSecret> {
    listed.iter().find(|s| s.secret_id == secret_id)
}

/// Whether a listed expiry is one our Create can have sent: none for a secret that never expires, else within
/// `[earliest, latest]` widened by [`ADOPTION_TOLERANCE`].
fn expiration_matches(actual: Option<Timestamp>, expected: Option<(Timestamp, Timestamp)>) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(actual), Some((earliest, latest))) => {
            sub(earliest, ADOPTION_TOLERANCE) <= actual && actual <= add(latest, ADOPTION_TOLERANCE)
        }
        _ => false,
    }
}

/// `t + d`, saturating (lifetimes are bounded by admission, this only guards absurd inputs).
pub(super) fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, saturating.
pub(super) fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_sub(d).unwrap_or(Timestamp::MIN)
}

fn floor_to_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn ceil_to_second(t: Timestamp) -> Timestamp {
    if t.subsec_nanosecond() == 0 {
        t
    } else {
        Timestamp::from_second(t.as_second().saturating_add(1)).unwrap_or(t)
    }
}
