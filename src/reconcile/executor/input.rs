//! The resource and what was read about it, in the planner's vocabulary: pure translations from the API types
//! (the spec with its defaults, the status, the Secret, EIAM's list, the provider) into [`PlanInput`]'s parts.

use super::error::ExecError;
use crate::api::{ApplicationClientSecret, DeletionPolicy, LABEL_MANAGED_BY, RestartTargetKind};
use crate::reconcile::executor::publish::{self, SecretLayout};
use crate::reconcile::executor::restart::WorkloadKind;
use crate::reconcile::executor::status;
use crate::reconcile::planner::{
    self, Action as PlanAction, KubeSecret, PlanInput, PlanSpec, ProviderState,
};
use crate::reconcile::provider::ProviderProblem;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use std::time::Duration;

pub(super) fn observed_secret(
    listed: &crate::eiam::types::ListedSecret,
) -> planner::ObservedSecret {
    planner::ObservedSecret {
        secret_id: listed.secret_id.clone(),
        client_id: listed.client_id.clone(),
        enabled: listed.is_enabled(),
        // EIAM has not said how a never-expiring secret is listed: absent, 0 and far-future all mean "never".
        expires_at: listed
            .expires_at_ms()
            .filter(|ms| *ms > 0)
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        last_used: listed
            .last_used_time
            .filter(|ms| *ms > 0)
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
    }
}

pub(super) fn provider_state(problem: &ProviderProblem) -> ProviderState {
    if problem.is_not_allowed() {
        ProviderState::NotAllowed {
            message: problem.message.clone(),
        }
    } else {
        ProviderState::Unavailable {
            reason: problem.reason.to_owned(),
            message: problem.message.clone(),
        }
    }
}

/// What a resource's drift-check phase derives from: its uid (stable for its lifetime), else its name.
pub fn identity(resource: &ApplicationClientSecret) -> String {
    resource.uid().unwrap_or_else(|| {
        format!(
            "{}/{}",
            resource.namespace().unwrap_or_default(),
            resource.name_any()
        )
    })
}

pub(super) fn workload_kind(kind: RestartTargetKind) -> WorkloadKind {
    match kind {
        RestartTargetKind::Deployment => WorkloadKind::Deployment,
        RestartTargetKind::StatefulSet => WorkloadKind::StatefulSet,
        RestartTargetKind::DaemonSet => WorkloadKind::DaemonSet,
    }
}

pub(super) fn plan_spec(resource: &ApplicationClientSecret) -> Result<PlanSpec, ExecError> {
    let spec = &resource.spec;
    let invalid = |field: &str, err: crate::api::DurationError| {
        ExecError::InvalidSpec(format!("{field}: {err}"))
    };
    let expires_after = spec
        .expires_after()
        .map_err(|e| invalid("spec.expiresAfter", e))?;
    let renew_before = spec
        .effective_renew_before()
        .map_err(|e| invalid("spec.renewBefore", e))?;
    let grace_period = spec
        .grace_period()
        .map_err(|e| invalid("spec.rotation.gracePeriod", e))?;
    let retire_when_unused_for = spec
        .retire_when_unused_for()
        .map_err(|e| invalid("spec.rotation.retireWhenUnusedFor", e))?;
    let max_grace_period = spec
        .effective_max_grace_period()
        .map_err(|e| invalid("spec.rotation.maxGracePeriod", e))?;
    let windows = rotation_windows(&spec.rotation.windows);
    Ok(PlanSpec {
        expires_after,
        // Imported secrets may expire under a never-expiring spec: renew them an hour ahead.
        renew_before: renew_before.unwrap_or(Duration::from_secs(3600)),
        grace_period,
        retire_when_unused_for,
        max_grace_period,
        windows,
        import_secret_id: spec.secret_id.clone().filter(|id| !id.is_empty()),
        deletion_policy: match spec.deletion_policy {
            DeletionPolicy::Delete => planner::DeletionPolicy::Delete,
            DeletionPolicy::Retain => planner::DeletionPolicy::Retain,
        },
        has_restart_targets: !spec.rotation.restart_targets.is_empty(),
    })
}

/// `spec.rotation.windows` parsed; an unusable entry makes the resource `Stalled` (`InvalidRotationWindow`).
pub(super) fn rotation_windows(
    windows: &[crate::api::RotationWindow],
) -> Result<planner::RotationWindows, planner::WindowError> {
    let durations = windows
        .iter()
        .enumerate()
        .map(|(index, window)| {
            crate::api::parse_duration(&window.duration).map_err(|e| planner::WindowError {
                index,
                field: "duration",
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let specs: Vec<planner::WindowSpec<'_>> = windows
        .iter()
        .zip(durations)
        .map(|(window, duration)| planner::WindowSpec {
            schedule: &window.schedule,
            duration,
            time_zone: &window.time_zone,
        })
        .collect();
    planner::RotationWindows::parse(&specs)
}

pub(super) fn owner_reference(resource: &ApplicationClientSecret) -> Option<OwnerReference> {
    resource.controller_owner_ref(&())
}

pub(super) fn kube_secret(
    existing: Option<&Secret>,
    layout: &SecretLayout<'_>,
    owner: Option<&OwnerReference>,
) -> KubeSecret {
    let Some(secret) = existing else {
        return KubeSecret::Missing;
    };
    let observed = publish::observe(Some(secret), layout);
    let managed = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL_MANAGED_BY.0))
        .is_some_and(|value| value == LABEL_MANAGED_BY.1);
    let foreign_controller = secret
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.controller == Some(true) && Some(&r.uid) != owner.map(|o| &o.uid))
        });
    KubeSecret::Present {
        secret_id: observed.as_ref().and_then(|o| o.secret_id.clone()),
        data_in_sync: observed.is_some_and(|o| o.in_sync),
        owned_by_us: managed && !foreign_controller,
    }
}

/// The status as the planner sees it: what is stored, plus the first issue's write-ahead marker while the status
/// records no secret yet (a crash between the first Create and the status write leaves only that marker).
pub(super) fn planned_status(resource: &ApplicationClientSecret) -> planner::PlanStatus {
    let mut planned = status::to_plan(resource.status.as_ref());
    if records_nothing(&planned) {
        planned.pending_create_since = resource.first_create_since();
    }
    planned
}

/// No secret, marker or foreign secret recorded: the state before a first issue.
pub(super) fn records_nothing(status: &planner::PlanStatus) -> bool {
    status.current.is_none()
        && status.previous.is_none()
        && status.last_rotation_time.is_none()
        && status.pending_create_since.is_none()
        && status.unmanaged_secret_ids.is_empty()
}

/// A first issue's plan starts by adding the finalizer and writing the write-ahead marker. Both must be stored
/// before the Create; they go in one patch of the resource's metadata (the marker as
/// `eiam-operator.io/first-create-since`) instead of a metadata patch and a status patch. Only when the marker
/// records no foreign secrets: those must be in the status before the Create.
pub(super) fn first_issue_marker(input: &PlanInput, actions: &[PlanAction]) -> Option<Timestamp> {
    match actions {
        [
            PlanAction::AddFinalizer,
            PlanAction::WritePendingCreate {
                since,
                unmanaged_secret_ids,
            },
            ..,
        ] if unmanaged_secret_ids.is_empty() && records_nothing(&input.status) => Some(*since),
        _ => None,
    }
}
