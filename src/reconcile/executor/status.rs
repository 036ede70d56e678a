//! Converting between the CRD status and the planner's status, and stamping conditions the kstatus way:
//! `lastTransitionTime` moves only when a condition's status changes, and every condition carries the
//! generation it describes.

use crate::api::ApplicationClientSecretStatus;
use crate::reconcile::planner::{
    Condition as PlanCondition, ConditionStatus, ConditionType, CurrentSecret, PlanStatus,
    PreviousSecret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Reads the persisted status into planner terms. Unknown condition types are ignored.
pub fn to_plan(status: Option<&ApplicationClientSecretStatus>) -> PlanStatus {
    let Some(status) = status else {
        return PlanStatus::default();
    };
    let current = status
        .current_secret_id
        .clone()
        .map(|secret_id| CurrentSecret {
            secret_id,
            client_id: status.client_id.clone().unwrap_or_default(),
            not_after: status.not_after.as_ref().map(|t| t.0),
        });
    let previous = match (&status.previous_secret_id, &status.previous_retire_at) {
        (Some(secret_id), Some(retire_at)) => Some(PreviousSecret {
            secret_id: secret_id.clone(),
            retire_at: retire_at.0,
            last_used: status.previous_last_used_time.as_ref().map(|t| t.0),
        }),
        // A previous id without a retire time cannot come from us; retire it at once rather than forget it.
        (Some(secret_id), None) => Some(PreviousSecret {
            secret_id: secret_id.clone(),
            retire_at: Timestamp::UNIX_EPOCH,
            last_used: None,
        }),
        _ => None,
    };
    let conditions = status
        .conditions
        .iter()
        .filter_map(|c| {
            let kind = match c.type_.as_str() {
                "Ready" => ConditionType::Ready,
                "Reconciling" => ConditionType::Reconciling,
                "Stalled" => ConditionType::Stalled,
                "RotationBlocked" => ConditionType::RotationBlocked,
                _ => return None,
            };
            let status = match c.status.as_str() {
                "True" => ConditionStatus::True,
                "False" => ConditionStatus::False,
                _ => ConditionStatus::Unknown,
            };
            Some(PlanCondition {
                kind,
                status,
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
        })
        .collect();
    PlanStatus {
        current,
        previous,
        renewal_time: status.renewal_time.as_ref().map(|t| t.0),
        last_rotation_time: status.last_rotation_time.as_ref().map(|t| t.0),
        last_handled_rotate_at: status.last_handled_rotate_at.clone(),
        pending_create_since: status.pending_create_since.as_ref().map(|t| t.0),
        unmanaged_secret_ids: status.unmanaged_secret_ids.clone().unwrap_or_default(),
        observed_generation: status.observed_generation,
        conditions,
    }
}

/// Renders the planner's status as the CRD status, keeping the transition times of conditions whose status did
/// not change (so an unchanged plan renders to an identical status and no patch is sent).
pub fn from_plan(
    planned: &PlanStatus,
    previous: Option<&ApplicationClientSecretStatus>,
    secret_name: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ApplicationClientSecretStatus {
    let old_conditions = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions = planned
        .conditions
        .iter()
        .map(|c| {
            let status = c.status.as_str().to_owned();
            let last_transition_time = old_conditions
                .iter()
                .find(|old| old.type_ == c.kind.as_str() && old.status == status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.kind.as_str().to_owned(),
                status,
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    let unmanaged =
        (!planned.unmanaged_secret_ids.is_empty()).then(|| planned.unmanaged_secret_ids.clone());
    ApplicationClientSecretStatus {
        observed_generation: planned.observed_generation,
        conditions,
        client_id: planned
            .current
            .as_ref()
            .map(|c| c.client_id.clone())
            .filter(|id| !id.is_empty()),
        current_secret_id: planned.current.as_ref().map(|c| c.secret_id.clone()),
        previous_secret_id: planned.previous.as_ref().map(|p| p.secret_id.clone()),
        not_after: planned.current.as_ref().and_then(|c| c.not_after).map(Time),
        renewal_time: planned.renewal_time.map(Time),
        previous_retire_at: planned.previous.as_ref().map(|p| Time(p.retire_at)),
        previous_last_used_time: planned
            .previous
            .as_ref()
            .and_then(|p| p.last_used)
            .map(Time),
        last_rotation_time: planned.last_rotation_time.map(Time),
        last_handled_rotate_at: planned.last_handled_rotate_at.clone(),
        pending_create_since: planned.pending_create_since.map(Time),
        secret_name: planned.current.as_ref().map(|_| secret_name.to_owned()),
        unmanaged_secret_ids: unmanaged,
        // The executor's to fill in: only it sees the Secret.
        secret_resource_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned() -> PlanStatus {
        PlanStatus {
            current: Some(CurrentSecret {
                secret_id: "sci_1".into(),
                client_id: "app_1".into(),
                not_after: Some(Timestamp::from_second(2_000_000_000).expect("valid")),
            }),
            observed_generation: Some(3),
            conditions: vec![PlanCondition {
                kind: ConditionType::Ready,
                status: ConditionStatus::True,
                reason: "Issued".into(),
                message: "published".into(),
            }],
            ..PlanStatus::default()
        }
    }

    #[test]
    fn a_status_round_trips_through_the_planner_form() {
        let now = Timestamp::from_second(1_900_000_000).expect("valid");
        let rendered = from_plan(&planned(), None, "creds", Some(3), now);
        let back = to_plan(Some(&rendered));
        assert_eq!(back, planned());
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let first = Timestamp::from_second(1_900_000_000).expect("valid");
        let later = Timestamp::from_second(1_900_000_100).expect("valid");
        let rendered = from_plan(&planned(), None, "creds", Some(3), first);
        let again = from_plan(&planned(), Some(&rendered), "creds", Some(3), later);
        assert_eq!(rendered, again);
    }
}
