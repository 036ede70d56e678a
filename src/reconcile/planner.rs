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

#[cfg(test)]
mod tests;

pub use conditions::status_after_failure;
pub use model::{
    Action, ActionFailure, Condition, ConditionStatus, ConditionType, CurrentSecret,
    DeletionPolicy, Event, EventKind, KubeSecret, ObservedSecret, Plan, PlanInput, PlanSpec,
    PlanStatus, PreviousSecret, ProviderState,
};
pub use observe::ActionOutcome;
pub use rules::{ADOPTION_TOLERANCE, SLOT_LIMIT, STALLED_REQUEUE, plan, renewal_time};
