//! The pure rotation planner: from what is observed (spec, status, EIAM's list, the Secret, the
//! provider, `now`) to the ordered actions that converge it, and the status to persist.
//!
//! No I/O and no clock: everything is an input, so the two-slot state machine of DESIGN.md §2 is
//! unit- and property-tested without a cluster or EIAM.
//!
//! # The executor's loop
//!
//! ```text
//! input = observe(resource, status, Secret, provider, now)   // eiam: None
//! for _ in 0..MAX_PLANS {                                     // a few: List → Create → publish
//!     let plan = plan(&input);
//!     for (i, action) in plan.actions.iter().enumerate() {
//!         match execute(action) {           // WritePendingCreate: persist plan.status
//!             Ok(outcome) => input.observe(action, outcome),
//!             Err(e) => { persist(status_after_failure(&input, &plan, i, &e)); backoff; return }
//!         }
//!     }
//!     if !plan.needs_replan() { persist_if_changed(plan.status); requeue(plan.requeue_after); return }
//!     input.status = plan.status;                             // = what is persisted (see below)
//! }
//! ```
//!
//! A pass needs at most three plans (List → write-ahead + Create → adopt + publish); the
//! property tests check that bound.
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
//! 3. Without a List, list only when something needs EIAM: no current secret, a pending Create,
//!    a due renewal (unless the previous secret's grace period holds both slots: then wait), a
//!    due retirement, an expired current, a Secret that is missing or out of sync, the periodic
//!    drift check. Otherwise: no action, unchanged status, requeue at the next due instant.
//! 4. With the List: adopt the secret of a pending Create; a current secret missing, disabled or
//!    expired in EIAM gets a Warning, is deleted (it is ours) and replaced; a previous secret past
//!    its grace period is disabled and deleted.
//! 5. No usable current: import `spec.secretId` at first issue (`ImportNotFound` if it is not
//!    listed enabled), else mint. A due rotation (`now >= notAfter - renewBefore`, or a new
//!    `rotate-requested-at` value) mints into the free slot, and the old current becomes previous
//!    until `now + gracePeriod`; while a previous secret is in its grace period the rotation
//!    waits. Minting needs a free slot: an owned previous is retired early only when there is no
//!    usable current; slots held by secrets that are not ours stall with `SlotsExhausted`.
//! 6. Publish the current secret where the Secret does not hold it (`Repaired` when it is the
//!    same secret); after adopting a new one, restart the targets if consumers may hold an older
//!    value, and record `Issued`/`Rotated`/`Imported`.
//!
//! # Crash safety
//!
//! A plan that needs a re-plan ends with a barrier (`ListSecrets` or `CreateSecret`), and its
//! status is exactly what is persisted at that point: the input status, or what
//! `WritePendingCreate` wrote just before the Create. So the next plan starts from what a crash
//! right after the barrier would leave behind, plus the observation: the re-plan after a Create
//! *is* the crash-recovery path. A Create is always preceded, in the same pass, by a List and by
//! the persisted write-ahead marker `pendingCreateSince` (with the secrets this resource does not
//! own); the secret a Create minted is then recognised in the List as the one that is not
//! current, previous or unmanaged and that carries the `ExpirationTime` that was sent — and
//! adopted, never minted again.
//!
//! # What it guarantees (tested in `tests/planner_props.rs`)
//! - At most two secrets: a Create is only planned when the List shows a free slot.
//! - Disable and Delete only ever name a secret this resource minted or imported.
//! - Publish only names a secret EIAM lists as enabled and unexpired in this pass.
//! - Steady state (nothing due, Secret in sync) plans no action and an unchanged status.

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
    DeletionPolicy, Event, EventKind, KubeSecret, ObservedSecret, Plan, PlanInput, PlanSpec,
    PlanStatus, PreviousSecret, ProviderState,
};
pub use observe::ActionOutcome;
pub use rules::{
    ADOPTION_TOLERANCE, BLOCKED_RETRY, BLOCKED_STALL_MIN, SLOT_LIMIT, STALLED_REQUEUE,
    USAGE_POLL_MAX, USAGE_POLL_MIN, plan, renewal_time, usage_poll,
};
pub use windows::{RotationWindows, WindowError, WindowSpec};
