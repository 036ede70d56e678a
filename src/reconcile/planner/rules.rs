//! The two-slot rotation state machine: one observation in, the next actions and status out.
//!
//! Every decision is re-derived from the observation and the persisted status, so that a plan
//! interrupted after any action is completed by the next one: the re-plan the executor does
//! after a Create is exactly the path that recovers a crash after a Create.

use std::time::Duration;

use jiff::Timestamp;

use crate::eiam::expiration::expiration_for;

use super::conditions;
use super::model::{
    Action, CurrentSecret, DeletionPolicy, EiamView, Event, EventKind, ObservedSecret, Plan,
    PlanInput, PlanStatus, PreviousSecret, ProviderState, Seen,
};
use super::reasons;

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

    fn with_view(&mut self, view: &EiamView) -> Outcome {
        let now = self.now();

        // A previous secret EIAM no longer lists needs no retirement; one it lists shows when it was last used.
        if let Some(previous) = self.status.previous.as_mut() {
            match view.lookup(&previous.secret_id) {
                Seen::Absent => self.status.previous = None,
                Seen::Shown(listed) => previous.last_used = listed.last_used,
                Seen::Unknown => {}
            }
        }

        // An interrupted (or just completed) Create: adopt its secret, never mint a third one.
        if let Some(since) = self.status.pending_create_since {
            match self.find_pending(view.secrets(), since) {
                PendingCreate::Ambiguous(ids) => {
                    return Self::stalled(
                        reasons::ADOPTION_AMBIGUOUS,
                        format!(
                            "a Create was interrupted and EIAM now lists several unknown secrets ({}); \
                             delete the ones this resource did not mint, or import one with spec.secretId",
                            ids.join(", ")
                        ),
                    );
                }
                PendingCreate::Found(secret) => self.adopt_created(view, secret),
                PendingCreate::NotFound => {}
            }
            self.status.pending_create_since = None;
        }

        // Is the current secret still good? (No repeated Warning while a replacement is pending.)
        let warn = self.input.status.pending_create_since.is_none();
        if let Some(current) = self.status.current.clone() {
            let id = current.secret_id.clone();
            let (reason, note) = match self.classify(view, &current) {
                CurrentState::Usable => {
                    if let Seen::Shown(secret) = view.lookup(&id) {
                        let refreshed = CurrentSecret {
                            secret_id: id.clone(),
                            client_id: secret.client_id.clone(),
                            not_after: secret.expires_at.map(floor_to_second),
                        };
                        self.status.current = Some(refreshed);
                    }
                    (None, String::new())
                }
                CurrentState::Unseen => (None, String::new()),
                CurrentState::Missing => (
                    Some(reasons::SECRET_DELETED_IN_EIAM),
                    format!("current secret {id} no longer exists in EIAM; minting a replacement"),
                ),
                CurrentState::Disabled => (
                    Some(reasons::SECRET_DISABLED_IN_EIAM),
                    format!(
                        "current secret {id} was disabled in EIAM; deleting it and minting a replacement"
                    ),
                ),
                CurrentState::Expired => (
                    Some(reasons::SECRET_EXPIRED),
                    format!(
                        "current secret {id} expired before it was renewed; deleting it and minting a replacement"
                    ),
                ),
            };
            if let Some(reason) = reason {
                if warn {
                    self.event(EventKind::Warning, reason, note);
                }
                // Ours and useless: free its slot now (a no-op when it is gone).
                self.retire(view, &id);
                self.broken = true;
                self.new_current = None;
            }
        }

        // Retire the previous secret once its grace period is over (not one that became previous
        // in this very plan: its successor is published first, the retirement comes next pass).
        if let Some(previous) = self.status.previous.clone()
            && now >= previous.retire_at
            && self
                .new_current
                .as_ref()
                .is_none_or(|n| n.replaces.as_deref() != Some(previous.secret_id.as_str()))
        {
            if !view.is_complete() && self.input.spec.retire_when_unused_for.is_some() {
                // Whether it is still in use is EIAM's LastUsedTime, which only a List shows.
                return self.list();
            }
            match self.usage(&previous) {
                Usage::Idle => {
                    self.retire(view, &previous.secret_id);
                    self.status.previous = None;
                    self.event(
                        EventKind::Normal,
                        reasons::RETIRED,
                        format!(
                            "disabled and deleted previous secret {} after its grace period",
                            previous.secret_id
                        ),
                    );
                }
                Usage::Overdue { last_used } => {
                    self.retire(view, &previous.secret_id);
                    self.status.previous = None;
                    self.event(
                        EventKind::Warning,
                        reasons::RETIRED_WHILE_IN_USE,
                        format!(
                            "disabled and deleted previous secret {} at spec.rotation.maxGracePeriod although \
                             EIAM shows it last used at {last_used}: whatever still uses it must pick up the \
                             current secret",
                            previous.secret_id
                        ),
                    );
                }
                Usage::InUse {
                    look_again,
                    deadline,
                } => self.held_in_use = Some((look_again, deadline)),
            }
        }

        // Make sure there is a valid current secret that is not due.
        let mut stall = None;
        let mut deferred = false;
        if self.status.current.is_none() || self.broken {
            let EiamView::Listed(listed) = view else {
                // Importing, or minting a replacement into whatever slot is free, takes the whole picture.
                return self.list();
            };
            let import = self.input.spec.import_secret_id.clone();
            match import {
                Some(import) if self.status.last_rotation_time.is_none() => {
                    if let Err(outcome) = self.adopt_import(listed, &import) {
                        return outcome;
                    }
                }
                _ => match self.mint(view, true) {
                    Ok(outcome) => return outcome,
                    Err(outcome) => stall = Some(outcome),
                },
            }
        } else if self.rotation_due() {
            if self.status.previous.is_some() {
                deferred = true;
            } else {
                let outside = self.outside_window();
                let before_mint = self.actions.len();
                match self.mint(view, false) {
                    Ok(outcome) => {
                        // Before the write-ahead marker and the Create: the plan must end with the Create barrier.
                        let creates =
                            matches!(self.actions.last(), Some(Action::CreateSecret { .. }));
                        if let Some(note) = outside.filter(|_| creates) {
                            self.actions.insert(
                                before_mint,
                                Action::Event(Event {
                                    kind: EventKind::Warning,
                                    reason: reasons::ROTATED_OUTSIDE_WINDOW.to_string(),
                                    note,
                                }),
                            );
                        }
                        return outcome;
                    }
                    Err(Outcome::Stalled { reason, message })
                        if reason == reasons::SLOTS_EXHAUSTED && !self.about_to_expire() =>
                    {
                        self.blocked = Some(message);
                    }
                    Err(outcome) => stall = Some(outcome),
                }
            }
        }

        // Publish the current secret where it is not (first issue, rotation, drift), only on EIAM's word that it
        // is usable: the Create of this pass, or the List.
        if let Some(current) = self.status.current.clone().filter(|_| !self.broken) {
            let shown = matches!(view.lookup(&current.secret_id), Seen::Shown(_));
            if !shown && !self.input.kube_secret.holds(&current.secret_id) {
                return self.list();
            }
            self.publish(&current);
        }

        // Only a List tells which secrets are someone else's; a partial view keeps what the last one said.
        if view.is_complete() {
            self.status.unmanaged_secret_ids = self.unmanaged(view.secrets());
        }
        if let Some(outcome) = stall {
            return outcome;
        }
        match self.status.current.as_ref().filter(|_| !self.broken) {
            Some(current) => {
                let message = match (&self.status.previous, self.held_in_use, deferred) {
                    (Some(previous), Some((_, deadline)), _) => {
                        self.held_message(current, previous, deadline, deferred)
                    }
                    (Some(previous), None, true) => deferred_message(current, previous),
                    _ => self.ready_message(current),
                };
                Outcome::Ready { message }
            }
            // Not reached: without a current secret the pass mints, imports or stalls above.
            None => Self::stalled(
                reasons::ISSUING,
                "no usable secret and nothing planned to mint one".to_string(),
            ),
        }
    }

    /// Which listed secret an interrupted Create minted, if any. Ours is not current, previous or
    /// unmanaged (recorded just before the Create), and carries the `ExpirationTime` we sent —
    /// which the client computed when it signed the request: after the marker, and after any wait
    /// for the provider's budget and any in-place retry, which at a low `qps` can be minutes or
    /// hours later. So ours expires within `[expiration_for(since), expiration_for(latest)]`: the
    /// marker is persisted before the Create is signed, and `latest` is this plan's `now` (which
    /// comes after the List or the answer it reads), or [`CREATE_SIGNING_WINDOW`] after the marker
    /// if that is earlier (the executor signs no Create later). Nothing but the marker needs
    /// persisting for that.
    fn find_pending<'l>(
        &self,
        listed: &'l [ObservedSecret],
        since: Timestamp,
    ) -> PendingCreate<'l> {
        if self.input.create_refused {
            // EIAM refused it (QuotaExceeded): it minted nothing to look for.
            return PendingCreate::NotFound;
        }
        let known = self.status.owned_secret_ids();
        let latest_signing = self.now().max(since).min(add(since, CREATE_SIGNING_WINDOW));
        let expected = self.input.spec.expires_after.map(|lifetime| {
            (
                expiration_for(since, lifetime),
                expiration_for(latest_signing, lifetime),
            )
        });
        let matching: Vec<&ObservedSecret> = listed
            .iter()
            .filter(|s| !known.contains(&s.secret_id.as_str()))
            .filter(|s| {
                !self
                    .input
                    .status
                    .unmanaged_secret_ids
                    .contains(&s.secret_id)
            })
            .filter(|s| expiration_matches(s.expires_at, expected))
            .collect();
        match matching.as_slice() {
            [] => PendingCreate::NotFound,
            [one] => PendingCreate::Found(one),
            many => PendingCreate::Ambiguous(many.iter().map(|s| s.secret_id.clone()).collect()),
        }
    }

    /// Makes the secret our Create minted the current one; a valid old current becomes previous.
    fn adopt_created(&mut self, view: &EiamView, secret: &ObservedSecret) {
        let old = self.status.current.take();
        let mut rotated = false;
        if let Some(old) = &old {
            match self.classify(view, old) {
                // Unseen: a Create without a List does not show the old current; nothing says it stopped working.
                CurrentState::Usable | CurrentState::Unseen => {
                    // EIAM holds at most two: a previous still listed next to both is an anomaly;
                    // it is ours, so retire it rather than lose track of it.
                    if let Some(stale) = self.status.previous.take() {
                        self.retire(view, &stale.secret_id);
                    }
                    self.status.previous = Some(PreviousSecret {
                        secret_id: old.secret_id.clone(),
                        retire_at: ceil_to_second(add(self.stamp, self.input.spec.grace_period)),
                        last_used: None,
                    });
                    rotated = true;
                }
                CurrentState::Disabled | CurrentState::Expired => self.retire(view, &old.secret_id),
                CurrentState::Missing => {}
            }
        }
        self.status.current = Some(CurrentSecret {
            secret_id: secret.secret_id.clone(),
            client_id: secret.client_id.clone(),
            not_after: secret.expires_at.map(floor_to_second),
        });
        self.status.last_rotation_time = Some(self.stamp);
        self.status.last_handled_rotate_at = self.input.rotate_request.clone();
        let id = &secret.secret_id;
        let (reason, note) = match (&old, rotated) {
            (Some(old), true) => (
                reasons::ROTATED,
                format!(
                    "rotated to new secret {id}; previous secret {} stays enabled for the grace period",
                    old.secret_id
                ),
            ),
            (Some(old), false) => (
                reasons::ISSUED,
                format!("minted secret {id} to replace {}", old.secret_id),
            ),
            (None, _) => (reasons::ISSUED, format!("minted secret {id}")),
        };
        self.new_current = Some(NewCurrent {
            reason,
            replaces: old.map(|o| o.secret_id),
            note,
        });
    }

    /// First issue with `spec.secretId`: adopt the existing secret, no Create.
    fn adopt_import(&mut self, listed: &[ObservedSecret], import: &str) -> Result<(), Outcome> {
        let now = self.now();
        let usable =
            find(listed, import).filter(|s| s.enabled && s.expires_at.is_none_or(|t| now < t));
        let Some(secret) = usable else {
            return Err(Self::stalled(
                reasons::IMPORT_NOT_FOUND,
                format!(
                    "spec.secretId {import} is not an enabled, unexpired secret of this application in EIAM; \
                     fix spec.secretId or remove it to mint a new secret"
                ),
            ));
        };
        self.status.current = Some(CurrentSecret {
            secret_id: secret.secret_id.clone(),
            client_id: secret.client_id.clone(),
            not_after: secret.expires_at.map(floor_to_second),
        });
        self.status.last_rotation_time = Some(self.stamp);
        self.status.last_handled_rotate_at = self.input.rotate_request.clone();
        self.new_current = Some(NewCurrent {
            reason: reasons::IMPORTED,
            replaces: None,
            note: format!("adopted existing secret {import} (spec.secretId)"),
        });
        Ok(())
    }

    /// A Create may go out on the status's word, without a List: a List before it would only tell what EIAM
    /// answers anyway (`QuotaExceeded` when something the status does not record holds the free slot; the re-plan
    /// then lists and waits or stalls as after any List). The List is needed when a Create may already have
    /// happened (the write-ahead marker: adopt, never mint a third), when secrets of someone else were seen (a
    /// SlotsExhausted stall, a blocked rotation: list, do not knock again), and for a secret that never expires:
    /// after a crash its adoption tells ours from a foreign secret by the ExpirationTime it sent, which a
    /// never-expiring foreign secret would match too unless recorded before.
    fn create_needs_no_list(&self) -> bool {
        self.status.pending_create_since.is_none()
            && self.status.unmanaged_secret_ids.is_empty()
            && self.input.spec.expires_after.is_some()
    }

    /// A first issue needs one EIAM call, the Create (see [`Self::create_needs_no_list`]); an import lists to find
    /// the secret it names.
    fn first_issue_needs_no_list(&self) -> bool {
        self.status.last_rotation_time.is_none()
            && self.status.previous.is_none()
            && self.input.spec.import_secret_id.is_none()
            && self.create_needs_no_list()
    }

    /// A Create without a List: the write-ahead marker, then the Create barrier. The plan after it sees only the
    /// new secret (a partial view), which is all an issue or a rotation needs; the drift check lists the rest
    /// later.
    fn mint_unlisted(&mut self) -> Outcome {
        let since = self.stamp;
        self.status.pending_create_since = Some(since);
        self.push(Action::WritePendingCreate {
            since,
            unmanaged_secret_ids: self.status.unmanaged_secret_ids.clone(),
        });
        self.push(Action::CreateSecret {
            lifetime: self.input.spec.expires_after,
        });
        Outcome::Replan
    }

    /// Writes the write-ahead marker and mints a secret into a free slot. `Ok`: the plan ends with
    /// the Create barrier (or, in a partial view that cannot vouch for a free slot, with a List). `Err`: stalled
    /// (slots exhausted). `broken`: there is no usable current secret, so an owned previous secret may be retired
    /// early to make room.
    fn mint(&mut self, view: &EiamView, broken: bool) -> Result<Outcome, Outcome> {
        let EiamView::Listed(listed) = view else {
            // Without a List, only on the status's word: ours that stay and the unmanaged ones recorded leave a slot.
            let taken =
                self.status.owned_secret_ids().len() + self.status.unmanaged_secret_ids.len();
            if broken || !self.create_needs_no_list() || taken >= SLOT_LIMIT {
                return Ok(self.list());
            }
            return Ok(self.mint_unlisted());
        };
        if self.occupied(listed).len() >= SLOT_LIMIT
            && broken
            && let Some(previous) = self.status.previous.take()
        {
            self.retire(view, &previous.secret_id);
            self.event(
                EventKind::Warning,
                reasons::RETIRED_EARLY,
                format!(
                    "retired previous secret {} before its grace period ended to make room for a replacement",
                    previous.secret_id
                ),
            );
        }
        let occupied = self.occupied(listed);
        if occupied.len() >= SLOT_LIMIT {
            // Name only what blocks: the secrets this resource does not own (its own current one it keeps).
            let owned = self.status.owned_secret_ids();
            let mut foreign: Vec<&str> = occupied
                .iter()
                .map(|s| s.secret_id.as_str())
                .filter(|id| !owned.contains(id))
                .collect();
            foreign.sort_unstable();
            return Err(Self::stalled(
                reasons::SLOTS_EXHAUSTED,
                format!(
                    "EIAM allows {SLOT_LIMIT} secrets per application and {} that this resource did not \
                     create and cannot free ({}) take the free slot; delete the one that is not in use",
                    if foreign.len() == 1 {
                        "a secret"
                    } else {
                        "secrets"
                    },
                    foreign.join(", ")
                ),
            ));
        }
        let since = self.stamp;
        let unmanaged = self.unmanaged(listed);
        self.status.pending_create_since = Some(since);
        self.status.unmanaged_secret_ids = unmanaged.clone();
        self.push(Action::WritePendingCreate {
            since,
            unmanaged_secret_ids: unmanaged,
        });
        self.push(Action::CreateSecret {
            lifetime: self.input.spec.expires_after,
        });
        Ok(Outcome::Replan)
    }

    /// Publishes the (usable) current secret where the Secret does not hold it, then restarts
    /// targets and records the transition.
    fn publish(&mut self, current: &CurrentSecret) {
        let kube = &self.input.kube_secret;
        if !kube.holds(&current.secret_id) {
            self.push(Action::Publish {
                secret_id: current.secret_id.clone(),
                client_id: current.client_id.clone(),
                not_after: current.not_after,
            });
            if self.new_current.is_none() {
                self.event(
                    EventKind::Normal,
                    reasons::REPAIRED,
                    format!(
                        "re-published secret {}: the Secret was missing or out of sync",
                        current.secret_id
                    ),
                );
            }
        }
        if let Some(new) = self.new_current.take() {
            // Consumers may hold another value: the replaced current, or whatever the Secret held.
            let replaces_value = new.replaces.is_some()
                || kube.secret_id().is_some_and(|id| id != current.secret_id);
            if self.input.spec.has_restart_targets && replaces_value {
                self.push(Action::RestartTargets {
                    secret_id: current.secret_id.clone(),
                });
            }
            self.event(EventKind::Normal, new.reason, new.note);
        }
    }

    fn classify(&self, view: &EiamView, current: &CurrentSecret) -> CurrentState {
        let now = self.now();
        match view.lookup(&current.secret_id) {
            Seen::Absent => CurrentState::Missing,
            Seen::Unknown => CurrentState::Unseen,
            Seen::Shown(s) if !s.enabled => CurrentState::Disabled,
            Seen::Shown(s) if s.expires_at.is_some_and(|t| now >= t) => CurrentState::Expired,
            Seen::Shown(_) => CurrentState::Usable,
        }
    }

    /// Disables (if enabled, or not known to be disabled) then deletes an owned secret. One a partial view does
    /// not show may be gone already: EIAM then answers that it does not exist, which counts as done.
    fn retire(&mut self, view: &EiamView, secret_id: &str) {
        if self.retiring.iter().any(|id| id == secret_id) {
            return;
        }
        let enabled = match view.lookup(secret_id) {
            Seen::Absent => return,
            Seen::Shown(secret) => secret.enabled,
            Seen::Unknown => true,
        };
        if enabled {
            self.push(Action::DisableSecret {
                secret_id: secret_id.to_string(),
            });
        }
        self.push(Action::DeleteSecret {
            secret_id: secret_id.to_string(),
        });
        self.retiring.push(secret_id.to_string());
    }

    /// Listed secrets that still take a slot once this plan's retirements ran.
    fn occupied<'l>(&self, listed: &'l [ObservedSecret]) -> Vec<&'l ObservedSecret> {
        listed
            .iter()
            .filter(|s| !self.retiring.contains(&s.secret_id))
            .collect()
    }

    /// Listed secrets this resource does not own, sorted.
    fn unmanaged(&self, listed: &[ObservedSecret]) -> Vec<String> {
        let owned = self.status.owned_secret_ids();
        let mut ids: Vec<String> = self
            .occupied(listed)
            .iter()
            .filter(|s| !owned.contains(&s.secret_id.as_str()))
            .map(|s| s.secret_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The published secret expires within the stall threshold: a blocked rotation is then a failure, not a wait.
    /// The threshold is a quarter of the renewal window (`notAfter` − renewal time), at least [`BLOCKED_STALL_MIN`].
    fn about_to_expire(&self) -> bool {
        let Some(current) = &self.status.current else {
            return true;
        };
        let Some(not_after) = current.not_after else {
            return false;
        };
        let threshold = renewal_time(&self.status, &self.input.spec)
            .map_or(BLOCKED_STALL_MIN, |renewal| {
                expiry_margin(renewal, not_after)
            });
        self.now() >= sub(not_after, threshold)
    }

    /// Whether the previous secret, past its grace period, may retire: with `retireWhenUnusedFor`, only once
    /// EIAM shows it unused that long (no `LastUsedTime` counts as unused), or at `maxGracePeriod` regardless.
    fn usage(&self, previous: &PreviousSecret) -> Usage {
        let spec = &self.input.spec;
        let Some(unused_for) = spec.retire_when_unused_for else {
            return Usage::Idle;
        };
        let Some(last_used) = previous.last_used else {
            return Usage::Idle;
        };
        let now = self.now();
        let idle_at = add(last_used, unused_for);
        if now >= idle_at {
            return Usage::Idle;
        }
        // `retire_at` is the publication plus the grace period.
        let published = sub(previous.retire_at, spec.grace_period);
        let deadline = add(published, spec.max_grace_period.max(spec.grace_period));
        if now >= deadline {
            return Usage::Overdue { last_used };
        }
        let look_again = idle_at.min(deadline).min(add(now, usage_poll(unused_for)));
        Usage::InUse {
            look_again,
            deadline,
        }
    }

    /// Why a due rotation happens outside `spec.rotation.windows`, if it does: a scheduled one (a requested
    /// rotation is never held by windows) while no window is open, because the next one opens too late.
    fn outside_window(&self) -> Option<String> {
        let input = self.input;
        let requested = input.rotate_request.is_some()
            && input.rotate_request != self.status.last_handled_rotate_at;
        let Ok(windows) = &input.spec.windows else {
            return None;
        };
        if requested || windows.is_empty() || windows.is_open(self.now()) {
            return None;
        }
        let current = self.status.current.as_ref()?;
        let next = windows
            .next_open(self.now())
            .map_or_else(|| "never".to_owned(), |t| t.to_string());
        let expires = current
            .not_after
            .map_or_else(|| "its renewal time".to_owned(), |t| t.to_string());
        Some(format!(
            "rotating secret {} outside spec.rotation.windows: the next window opens at {next}, too close to its \
             expiry at {expires}",
            current.secret_id
        ))
    }

    fn rotation_due(&self) -> bool {
        let input = self.input;
        let requested = input.rotate_request.is_some()
            && input.rotate_request != self.status.last_handled_rotate_at;
        let scheduled = renewal_time(&self.status, &input.spec).is_some_and(|t| self.now() >= t);
        requested || scheduled
    }

    /// The Ready message while the previous secret is kept because EIAM shows it in use.
    fn held_message(
        &self,
        current: &CurrentSecret,
        previous: &PreviousSecret,
        deadline: Timestamp,
        rotation_waits: bool,
    ) -> String {
        let last_used = previous
            .last_used
            .map_or_else(|| "never".to_owned(), |t| t.to_string());
        let unused_for = self
            .input
            .spec
            .retire_when_unused_for
            .map(crate::api::format_duration)
            .unwrap_or_default();
        let waits = if rotation_waits {
            "; the rotation that is due waits for it (never a third secret)"
        } else {
            ""
        };
        format!(
            "secret {} is published; the previous secret {} is still in use (EIAM last saw it used at {last_used}) \
             and stays enabled until unused for {unused_for}, at the latest until {deadline}{waits}",
            current.secret_id, previous.secret_id
        )
    }

    fn ready_message(&self, current: &CurrentSecret) -> String {
        match renewal_time(&self.status, &self.input.spec) {
            Some(renewal) => format!(
                "secret {} is published; it is renewed at {}",
                current.secret_id, renewal
            ),
            None => format!(
                "secret {} is published and never expires",
                current.secret_id
            ),
        }
    }

    // ---------------------------------------------------------------- the resource is deleted

    fn finalize(&mut self) -> Outcome {
        let input = self.input;
        if !input.has_finalizer {
            return Outcome::Finalized;
        }
        let kube_ours = input.kube_secret.is_ours();
        if input.spec.deletion_policy == DeletionPolicy::Retain {
            if kube_ours {
                self.push(Action::OrphanKubeSecret);
            }
            let owned = self.status.owned_secret_ids().join(", ");
            self.event(
                EventKind::Normal,
                reasons::RETAINED,
                format!("kept EIAM secrets [{owned}] and the Secret (deletionPolicy: Retain)"),
            );
            self.push(Action::RemoveFinalizer);
            return Outcome::Finalized;
        }

        // deletionPolicy: Delete. Only what this resource recorded as its own is deleted, so a
        // conflicting resource (which never minted or recorded anything) deletes nothing in EIAM.
        let nothing_recorded = self.status.current.is_none()
            && self.status.previous.is_none()
            && self.status.pending_create_since.is_none();
        if !nothing_recorded {
            match &input.provider {
                ProviderState::Ready => {}
                ProviderState::NotAllowed { message } => {
                    return Self::stalled(reasons::NOT_ALLOWED, deletion_blocked(message));
                }
                ProviderState::Unavailable { reason, message } => {
                    return Self::stalled(reason, deletion_blocked(message));
                }
            }
            // Deletion lists first: what an interrupted Create minted, and what is gone already.
            let view = &input.eiam;
            let EiamView::Listed(listed) = view else {
                return self.list();
            };
            let mut owned: Vec<String> = self
                .status
                .owned_secret_ids()
                .into_iter()
                .map(str::to_string)
                .collect();
            if let Some(since) = self.status.pending_create_since {
                match self.find_pending(listed, since) {
                    PendingCreate::Found(secret) => owned.push(secret.secret_id.clone()),
                    PendingCreate::NotFound => {}
                    PendingCreate::Ambiguous(ids) => {
                        return Self::stalled(
                            reasons::ADOPTION_AMBIGUOUS,
                            format!(
                                "a Create was interrupted and EIAM lists several unknown secrets ({}); \
                                 delete the one this resource minted by hand, or set deletionPolicy: Retain",
                                ids.join(", ")
                            ),
                        );
                    }
                }
            }
            for id in &owned {
                self.retire(view, id);
            }
            if !self.retiring.is_empty() {
                let deleted = self.retiring.join(", ");
                self.event(
                    EventKind::Normal,
                    reasons::DELETED,
                    format!(
                        "disabled and deleted EIAM secrets [{deleted}] (deletionPolicy: Delete)"
                    ),
                );
            }
        }
        if kube_ours {
            self.push(Action::DeleteKubeSecret);
        }
        self.push(Action::RemoveFinalizer);
        Outcome::Finalized
    }

    // ---------------------------------------------------------------- the resulting plan

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
