//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) for each way a pass can end, and the
//! status to persist when an action fails.
//!
//! kstatus reads: `Stalled=True` → Failed, `Reconciling=True` → InProgress, observedGeneration
//! behind → InProgress, else `Ready=True` → Current. So a stall (including a permanent action
//! failure) moves observedGeneration to the handled generation; a transient failure does not.

use super::model::{
    Action, ActionFailure, Condition, ConditionStatus, ConditionType, Plan, PlanInput, PlanStatus,
};
use super::reasons;
use super::rules::renewal_time;

fn condition(
    kind: ConditionType,
    status: ConditionStatus,
    reason: &str,
    message: String,
) -> Condition {
    Condition {
        kind,
        status,
        reason: reason.to_string(),
        message,
    }
}

/// A valid current secret is published (also during a scheduled rotation and a grace period).
pub(super) fn ready(message: String) -> Vec<Condition> {
    vec![
        condition(
            ConditionType::Ready,
            ConditionStatus::True,
            reasons::SECRET_PUBLISHED,
            message,
        ),
        condition(
            ConditionType::Reconciling,
            ConditionStatus::False,
            reasons::RECONCILED,
            String::new(),
        ),
        condition(
            ConditionType::Stalled,
            ConditionStatus::False,
            reasons::RECONCILED,
            String::new(),
        ),
    ]
}

/// A valid current secret is published, but its due rotation waits for a slot held by someone else's secret.
pub(super) fn ready_but_blocked(message: String, blocked: String) -> Vec<Condition> {
    let mut conditions = ready(message);
    conditions.push(condition(
        ConditionType::RotationBlocked,
        ConditionStatus::True,
        reasons::SLOTS_EXHAUSTED,
        blocked,
    ));
    conditions
}

/// A state that needs a human: not Ready, not making progress.
pub(super) fn stalled(reason: &str, message: String) -> Vec<Condition> {
    vec![
        condition(
            ConditionType::Ready,
            ConditionStatus::False,
            reason,
            message.clone(),
        ),
        condition(
            ConditionType::Reconciling,
            ConditionStatus::False,
            reason,
            String::new(),
        ),
        condition(
            ConditionType::Stalled,
            ConditionStatus::True,
            reason,
            message,
        ),
    ]
}

/// The status to persist when `plan.actions[failed_at]` failed: the input status (or, if
/// `WritePendingCreate` already ran, the status it persisted), with conditions saying why. Nothing
/// else the failed plan would have recorded is kept: the next pass re-derives it from EIAM, which
/// is what makes any failure (or crash) safe to resume from.
pub fn status_after_failure(
    input: &PlanInput,
    plan: &Plan,
    failed_at: usize,
    failure: &ActionFailure,
) -> PlanStatus {
    let write_ahead_done = plan
        .actions
        .iter()
        .take(failed_at)
        .any(|a| matches!(a, Action::WritePendingCreate { .. }));
    let mut status = if write_ahead_done {
        plan.status.clone()
    } else {
        input.status.clone()
    };
    status.renewal_time = renewal_time(&status, &input.spec);
    if failure.permanent {
        status.observed_generation = Some(input.generation);
        status.conditions = stalled(&failure.reason, failure.message.clone());
        return status;
    }
    // Transient: still serving whatever was Ready; retried with backoff.
    let ready = match input.status.condition(ConditionType::Ready) {
        Some(ready) if ready.status == ConditionStatus::True => ready.clone(),
        _ => condition(
            ConditionType::Ready,
            ConditionStatus::False,
            reasons::ISSUING,
            format!("no secret published yet: {}", failure.message),
        ),
    };
    status.conditions = vec![
        ready,
        condition(
            ConditionType::Reconciling,
            ConditionStatus::True,
            &failure.reason,
            format!("retrying: {}", failure.message),
        ),
        condition(
            ConditionType::Stalled,
            ConditionStatus::False,
            reasons::RECONCILED,
            String::new(),
        ),
    ];
    status
}
