//! The pure rotation planner: from what is observed (spec, status, EIAM's list, the Secret, the
//! provider, `now`) to the ordered actions that converge it, and the status to persist.
//!
//! No I/O and no clock: everything is an input, so the two-slot state machine of DESIGN.md §2 is
//! unit- and property-tested without a cluster or EIAM.
//!
//! # The executor's loop
//!
//! ```text
//! input = observe(resource, status, Secret, provider, now)   // eiam: EiamView::Unobserved
//! for _ in 0..MAX_PLANS {                                     // a few: (List →) Create → publish
//!     let plan = plan(&input);
//!     for (i, action) in plan.actions.iter().enumerate() {
//!         match execute(action) {           // WritePendingCreate: persist plan.status
//!             Ok(outcome) => input.observe(action, outcome),   // QuotaExceeded is an outcome too
//!             Err(e) => { persist(status_after_failure(&input, &plan, i, &e)); backoff; return }
//!         }
//!     }
//!     if !plan.needs_replan() { persist_if_changed(plan.status); requeue(plan.requeue_after); return }
//!     input.status = plan.status;                             // = what is persisted (see below)
//! }
//! ```
//!
//! A pass needs at most three plans (List → write-ahead + Create → adopt + publish), four when EIAM
//! refuses a Create for quota (Create → List → Create → adopt + publish, should a slot free up in
//! between), five when the refused Create followed a List of the same pass (someone else's secret
//! took the free slot between the two: List → Create → List → Create → adopt + publish); the
//! property tests check that bound.
//!
//! # What a plan knows of EIAM ([`EiamView`])
//!
//! Nothing at the start of a pass (`Unobserved`); after a List, every secret of the application
//! (`Listed`: complete); after a Create sent without a List, only the secret it minted
//! (`Partial`). A rule that acts on a secret's absence (the current secret was deleted in EIAM, a
//! previous one needs no retirement, a slot is free, a secret is someone else's) does so only in a
//! complete view: in a partial one an absent secret is unknown, not missing. What the rules do
//! without a List, they do on the status's word, and only where EIAM's answer covers a wrong word
//! (`QuotaExceeded`, "does not exist").
//!
//! # Rules, in the order a plan applies them
//!
//! 1. Deleting: `Retain` orphans the Secret and removes the finalizer (no EIAM call). `Delete`
//!    lists, disables and deletes what this resource recorded as its own (current, previous, the
//!    secret of an interrupted Create), deletes the Secret, removes the finalizer. With nothing
//!    recorded no provider is needed; otherwise a broken provider keeps the finalizer and the
//!    resource `Stalled` (set `deletionPolicy: Retain` to let go), as Crossplane does.
//! 2. Conflict, provider not allowed/unavailable, or a target Secret that is not ours: `Stalled`
//!    with that reason, no EIAM call (a Warning Event only when the stall reason changes).
//! 3. Without a List, list only when a decision needs the whole view: a pending Create (adopt),
//!    an expired current, a Secret that is missing or out of sync, the periodic drift check, a
//!    due retirement under `retireWhenUnusedFor` (EIAM's `LastUsedTime`), an import, and a Create
//!    the status cannot vouch for (secrets of someone else recorded, or a spec whose secrets
//!    never expire). Otherwise act on the status's word in a partial view: a first issue or a
//!    due rotation sends the Create at once (write-ahead marker first), a due retirement disables
//!    and deletes the previous secret; a rotation due while the previous secret's grace period
//!    holds both slots waits. Nothing due: no action, unchanged status, requeue at the next due
//!    instant.
//! 4. With a view: adopt the secret of a pending Create (none after EIAM refused that Create for
//!    quota: it minted nothing); a current secret missing (complete view only), disabled or
//!    expired gets a Warning, is deleted (it is ours) and replaced; a current secret a partial
//!    view does not show is taken for usable, as the status says; a previous secret past its
//!    grace period is disabled and deleted (by name in a partial view: EIAM's "does not exist"
//!    counts as done).
//! 5. No usable current: import `spec.secretId` at first issue (`ImportNotFound` if it is not
//!    listed enabled), else mint — both after a List. A due rotation (`now >= notAfter -
//!    renewBefore`, or a new `rotate-requested-at` value) mints into the free slot, and the old
//!    current becomes previous until `now + gracePeriod`; while a previous secret is in its grace
//!    period the rotation waits. Minting needs a free slot: in a complete view one the List
//!    shows, in a partial view one the status shows (ours + recorded unmanaged < 2); an owned
//!    previous is retired early only when there is no usable current; slots held by secrets that
//!    are not ours stall with `SlotsExhausted` (or, while the published secret is far from
//!    expiry, block the rotation with `RotationBlocked`).
//! 6. Publish the current secret where the Secret does not hold it (`Repaired` when it is the
//!    same secret), only if the view shows it (a partial view that does not lists first); after
//!    adopting a new one, restart the targets if consumers may hold an older value, and record
//!    `Issued`/`Rotated`/`Imported`.
//!
//! # Crash safety
//!
//! A plan that needs a re-plan ends with a barrier (`ListSecrets` or `CreateSecret`), and its
//! status is exactly what is persisted at that point: the input status, or what
//! `WritePendingCreate` wrote just before the Create. So the next plan starts from what a crash
//! right after the barrier would leave behind, plus the observation: the re-plan after a Create
//! *is* the crash-recovery path. A Create is always preceded, in the same pass, by the persisted
//! write-ahead marker `pendingCreateSince` (with the secrets this resource does not own, as far
//! as the last List showed), and by a List unless rule 3 lets it go on the status's word. After a
//! crash the marker makes the next pass list, and the secret the Create minted is recognised as
//! the one that is not current, previous or unmanaged and that carries an `ExpirationTime` the
//! Create can have sent: the client stamps it when it signs, after the marker and before the plan
//! that looks, so anything `expiration_for` gives between the marker and that plan's `now` (within
//! [`ADOPTION_TOLERANCE`]), however long the budget and the retries held the Create — up to
//! [`CREATE_SIGNING_WINDOW`], past which the executor does not sign it at all. It is
//! adopted, never minted again. (EIAM has no idempotency key: a secret of someone else minted
//! between the marker and the List with the same lifetime cannot be told apart from it; that is
//! why a spec whose secrets never expire always lists first.)
//!
//! # What it guarantees (tested in `tests/planner_props.rs`)
//! - At most two secrets: a Create is only planned when the List shows a free slot, or, without
//!   a List, when the status records fewer than two (EIAM refuses it with `QuotaExceeded` when
//!   something unrecorded holds the slot; the same pass then lists and waits or stalls, and the
//!   refused Create adopts nothing).
//! - Disable and Delete only ever name a secret this resource minted or imported.
//! - Publish only names a secret EIAM shows enabled and unexpired in this pass (listed, or just
//!   returned by this pass's Create).
//! - Steady state (nothing due, Secret in sync) plans no action and an unchanged status.
//! - A scheduled rotation with a clean status costs one Create and no List; a retirement without
//!   `retireWhenUnusedFor` costs a Disable and a Delete and no List.

mod conditions;
mod model;
mod observe;
pub mod reasons;
mod rules;
pub mod windows;

#[cfg(test)]
mod tests;

pub use conditions::status_after_failure;
pub use model::{
    Action, ActionFailure, Condition, ConditionStatus, ConditionType, CurrentSecret,
    DeletionPolicy, EiamView, Event, EventKind, KubeSecret, ObservedSecret, Plan, PlanInput,
    PlanSpec, PlanStatus, PreviousSecret, ProviderState, Seen,
};
pub use observe::ActionOutcome;
pub use rules::{
    ADOPTION_TOLERANCE, BLOCKED_RETRY, BLOCKED_STALL_MIN, CREATE_SIGNING_WINDOW, SLOT_LIMIT,
    STALLED_REQUEUE, USAGE_POLL_MAX, USAGE_POLL_MIN, plan, renewal_time, usage_poll,
};
pub use windows::{RotationWindows, WindowError, WindowSpec};
