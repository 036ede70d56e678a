//! The executor: turns one reconcile into observations for the planner, runs the actions it returns, and
//! persists status. All I/O of a reconcile happens here; every decision happens in the planner.
//!
//! This file holds the pass itself (observe, plan, act, record) and its admission and fencing. The rooms: the
//! actions' I/O ([`actions`]), the writes to the resource and the Secret ([`writes`]), what the watch vouches for
//! without a read ([`observe`]), how a pass fails and retries ([`error`]), the translation into the planner's
//! vocabulary ([`input`]), the one-owner-per-application rule ([`conflict`]), and what a pass writes: the Secret's
//! shape ([`publish`], [`template`]), workload restarts ([`restart`]), Events ([`events`]), status ([`status`]).
//! It may use `planner`, `provider`, `watch`, `context` and the `eiam` client; nothing here is used by them.

mod actions;
mod conflict;
mod error;
pub mod events;
mod input;
mod observe;
mod ownership;
pub mod publish;
pub mod restart;
pub mod status;
pub mod template;
mod writes;

pub use error::ExecError;
pub use input::identity;

use observe::unchanged_secret;
use writes::{apply_secret, restart_denied};

use super::context::Context;
use super::planner::{
    self, Action as PlanAction, ActionOutcome, ConditionStatus, ConditionType, EiamView, EventKind,
    KubeSecret, PlanInput, ProviderState,
};
use super::provider::ResolvedProvider;
use crate::api::conditions::reasons;
use crate::api::{
    ANNOTATION_FIRST_CREATE_SINCE, ApplicationClientSecret, ApplicationClientSecretStatus,
    CreationPolicy, FIELD_MANAGER, FINALIZER,
};
use crate::eiam::{Admission, CallGate, Fence, SecretString};
use crate::fence::LeaderToken;
use conflict::conflicting_owner;
use error::{MAX_ROUNDS, kube_err, retrying};
use events::EventType;
use input::{
    first_issue_marker, kube_secret, observed_secret, owner_reference, plan_spec, planned_status,
    provider_state, workload_kind,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
    runtime::reflector::ObjectRef,
};
use publish::{PublishedSecret, SecretLayout};
use restart::WorkloadKind;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// When to look again (before jitter and the resync cap).
    pub requeue: Duration,
    /// The resource's resourceVersion once this reconcile's own writes were done: everything up to this version
    /// has been handled.
    pub resource_version: Option<String>,
}

/// One reconcile of one resource.
pub async fn reconcile(
    cached: &ApplicationClientSecret,
    context: &Context,
) -> Result<Reconciled, ExecError> {
    let namespace = cached.namespace().unwrap_or_default();
    let key = ObjectRef::from_obj(cached);
    let resources: Api<ApplicationClientSecret> = Api::namespaced(context.kube.clone(), &namespace);
    // The controller hands us its cached copy, which can lag behind our own last write (the watch event that
    // triggered this reconcile may already be outdated). Decisions about EIAM must start from the status as
    // stored, so a resource this process has written is read fresh until the cache shows its write. One it has not
    // written (every resource right after a start or failover, a new resource) is as fresh in the cache as a read
    // would be: the cache was filled by a list or a watch event after any earlier writer's write. The writes below are conditional on the version
    // read in any case, so a stale copy can only fail a write (and be reconciled again), never act on old state.
    let fresh = if context
        .written
        .cache_may_lag(&key, cached.metadata.resource_version.as_deref())
    {
        // What this process's last write returned is what a read would return (unless someone wrote since: then
        // the first write of this pass fails its precondition, the copy is dropped, and the next pass reads).
        if let Some(written) = context
            .written
            .last_written(&key, cached.metadata.resource_version.as_deref())
        {
            Some(written)
        } else {
            resources
                .get_opt(&cached.name_any())
                .await
                .map_err(kube_err(format!(
                    "get ApplicationClientSecret {}",
                    cached.name_any()
                )))?
        }
    } else {
        Some(cached.clone())
    };
    let Some(fresh) = fresh else {
        context.forget(&key);
        return Ok(Reconciled {
            requeue: context.resync_interval,
            resource_version: None,
        });
    };
    let resource = &fresh;
    let secrets: Api<Secret> = Api::namespaced(context.kube.clone(), &namespace);
    let secret_name = resource.secret_name();

    let spec = plan_spec(resource)?;
    let owner = owner_reference(resource);
    let layout = SecretLayout {
        namespace: &namespace,
        name: &secret_name,
        instance_id: &resource.spec.instance_id,
        application_id: &resource.spec.application_id,
        plain_keys: resource.spec.target.plain_keys(),
        template: resource.spec.target.template.as_ref(),
        labels: &resource.spec.target.labels,
        annotations: &resource.spec.target.annotations,
        owner: match resource.spec.target.creation_policy {
            CreationPolicy::Owner => owner.clone(),
            CreationPolicy::Orphan => None,
        },
    };

    let resolved = context
        .providers
        .resolve(&context.kube, &context.tenancy, resource)
        .await;
    let provider_state = match &resolved {
        Ok(_) => ProviderState::Ready,
        Err(problem) => provider_state(problem),
    };
    let provider_ready = resolved.is_ok();
    let drift_check_due = context
        .drift
        .is_due(&key, &identity(resource), jiff::Timestamp::now());
    // The Secret is read only when the watch cannot vouch for it; the periodic drift check reads it regardless.
    let unchanged = if drift_check_due {
        None
    } else {
        unchanged_secret(resource, &secret_name, context).await
    };
    let (observed_secret, secret_version, secret_uid, secret_fields_to_fold) = match unchanged {
        Some((observed, version)) => (observed, version, None, None),
        None => {
            let existing = secrets
                .get_opt(&secret_name)
                .await
                .map_err(kube_err(format!("get Secret {secret_name}")))?;
            let version = existing
                .as_ref()
                .and_then(|secret| secret.metadata.resource_version.clone());
            let uid = existing
                .as_ref()
                .and_then(|secret| secret.metadata.uid.clone());
            let fold = existing
                .as_ref()
                .and_then(|secret| secret.metadata.managed_fields.as_deref())
                .and_then(ownership::fold_create_entry);
            (
                kube_secret(existing.as_ref(), &layout, owner.as_ref()),
                version,
                uid,
                fold,
            )
        }
    };

    let mut input = PlanInput {
        now: Timestamp::now(),
        generation: resource.metadata.generation.unwrap_or_default(),
        deleting: resource.metadata.deletion_timestamp.is_some(),
        has_finalizer: resource.finalizers().iter().any(|f| f == FINALIZER),
        spec,
        rotate_request: resource.rotate_requested_at().map(str::to_owned),
        status: planned_status(resource),
        eiam: EiamView::Unobserved,
        create_refused: false,
        kube_secret: observed_secret,
        provider: provider_state,
        // A resource its provider refuses claims nothing: it says NotAllowed, not Conflict.
        conflict: provider_ready
            .then(|| conflicting_owner(resource, context))
            .flatten(),
        // Asked only of a resource its provider allows: a refused one stalls on that first.
        restart_denied: if provider_ready {
            restart_denied(resource, context).await
        } else {
            None
        },
        // Checked with placeholder values before anything is minted or published.
        invalid_template: resource
            .spec
            .target
            .template
            .as_ref()
            .and_then(|t| template::validate(t).err())
            .map(|err| err.to_string()),
        drift_check_due,
    };

    let mut run = Run {
        context,
        resource,
        resources: &resources,
        secrets: &secrets,
        layout: &layout,
        provider: resolved.ok(),
        held: HashMap::new(),
        key: key.clone(),
        resource_version: resource.resource_version(),
        secret_version,
        secret_uid,
        secret_fields_to_fold,
        secret_written: false,
        first_create_since: None,
        create_marker: None,
        admission: None,
    };

    let mut persisted = resource.status.clone();
    for _round in 0..MAX_ROUNDS {
        input.now = Timestamp::now();
        let plan = planner::plan(&input);
        // Admitted to EIAM before anything of the round is done, so a pass that must come back later leaves
        // nothing half-done (not even a first issue's marker).
        run.admit(&plan.actions).await?;
        run.first_create_since = first_issue_marker(&input, &plan.actions);
        for (index, action) in plan.actions.iter().enumerate() {
            if let PlanAction::WritePendingCreate { since, .. } = action {
                run.create_marker = Some(*since);
                if run.first_create_since.is_some() {
                    // A first issue's marker went out with the finalizer, in the same patch.
                    input.observe(action, ActionOutcome::Done);
                    continue;
                }
                // Write-ahead: the whole planned status (which records any secret adopted earlier in this
                // pass as well as the marker) must be stored before the Create that follows is sent.
                persisted = Some(
                    run.write_status(&plan.status, persisted.as_ref(), &input.kube_secret)
                        .await?,
                );
                input.observe(action, ActionOutcome::Done);
                continue;
            }
            match run.execute(action).await {
                Ok(outcome) => input.observe(action, outcome),
                // None is a failure to record: the newer version, or a seat, comes back, and a fenced pass must
                // write nothing at all.
                Err(err) if err.is_conflict() || err.is_fenced() || err.deferred().is_some() => {
                    return Err(err);
                }
                Err(err) => {
                    let failure = err.failure();
                    let failed = planner::status_after_failure(&input, &plan, index, &failure);
                    // A permanent failure needs a human: say so once, on the transition into Stalled, as the
                    // planner does for its own stall reasons. The message carries EIAM's Code, Message and
                    // RequestId, never a secret value.
                    let already_stalled = input
                        .status
                        .condition(ConditionType::Stalled)
                        .is_some_and(|c| {
                            c.status == ConditionStatus::True && c.reason == failure.reason
                        });
                    if failure.permanent && !already_stalled {
                        run.event(EventKind::Warning, &failure.reason, &failure.message)
                            .await;
                    }
                    if let Err(status_err) = run
                        .write_status(&failed, persisted.as_ref(), &input.kube_secret)
                        .await
                    {
                        tracing::warn!(error = %status_err, "cannot record the failure in status");
                    }
                    return Err(err);
                }
            }
        }
        if plan.needs_replan() {
            input.status = plan.status;
            continue;
        }
        if input.has_finalizer || !input.deleting {
            run.write_status(&plan.status, persisted.as_ref(), &input.kube_secret)
                .await?;
        }
        return Ok(Reconciled {
            requeue: plan.requeue_after.unwrap_or(context.resync_interval),
            resource_version: run.resource_version,
        });
    }
    Err(ExecError::NotConverged)
}

/// Everything one reconcile's actions need.
struct Run<'a> {
    context: &'a Context,
    resource: &'a ApplicationClientSecret,
    resources: &'a Api<ApplicationClientSecret>,
    secrets: &'a Api<Secret>,
    layout: &'a SecretLayout<'a>,
    provider: Option<ResolvedProvider>,
    /// Clear values minted in this reconcile, by secret id: publishing them needs no Obtain.
    held: HashMap<String, (String, SecretString)>,
    key: ObjectRef<ApplicationClientSecret>,
    /// The resourceVersion this reconcile last read or wrote. Every write to the resource carries it, so a
    /// reconcile that started from a stale cached copy (a watch event that is already outdated) fails with a
    /// conflict instead of acting on old status, e.g. minting a second secret because it does not yet see the
    /// write-ahead marker or the current secret that the previous reconcile recorded.
    resource_version: Option<String>,
    /// The Secret's resourceVersion as this reconcile last read or wrote it (see `status.secretResourceVersion`).
    secret_version: Option<String>,
    /// The Secret's uid when this reconcile read it (`None` when the watch vouched for its version instead).
    secret_uid: Option<String>,
    /// The Secret's managed fields with the operator's create folded into its applies, when the Secret was read
    /// and still shows that create (see [`ownership`]): set before the Secret is next written.
    secret_fields_to_fold: Option<Vec<ManagedFieldsEntry>>,
    /// This reconcile wrote the Secret.
    secret_written: bool,
    /// The first issue's write-ahead marker, to set with the finalizer (see [`first_issue_marker`]).
    first_create_since: Option<Timestamp>,
    /// The write-ahead marker this pass stored before its Create: the Create is signed within
    /// [`planner::CREATE_SIGNING_WINDOW`] of it or not at all.
    create_marker: Option<Timestamp>,
    /// This pass's admission to its provider's seats and budget, once it has an EIAM call to make.
    admission: Option<Admission>,
}

/// How long a pass waits, holding its worker, for its provider's seat or budget token before it gives the worker
/// back and comes back later (issue 20: a provider's tiny budget or hanging endpoint must not hold the workers
/// other providers' resources need).
const ADMISSION_PATIENCE: Duration = Duration::from_secs(1);

impl Run<'_> {
    /// `Ok` while this process may act: called immediately before every mutation it sends (an EIAM Create,
    /// Disable or Delete — which the EIAM client checks again after its wait for the budget, immediately before
    /// signing — and every write to the resource, the Secret, a workload or an Event). Fenced: the pass stops with
    /// nothing sent.
    fn fence(&self, what: impl FnOnce() -> String) -> Result<(), ExecError> {
        Ok(self.context.token.check(what)?)
    }

    /// The EIAM client's last check before a mutation leaves (after its wait for the budget): this process still
    /// leads, and a Create is still within the signing window of the marker this pass stored before it.
    fn gate_check(&self) -> Fence {
        let token = self.context.token.clone();
        let marker = self.create_marker;
        Arc::new(move || token.holds() && marker.is_none_or(within_signing_window))
    }

    /// What a mutation the client's gate refused becomes: not leading (nothing written about the resource), or a
    /// Create that waited past its signing window (a transient failure; the next pass lists first).
    fn refused(&self, err: ExecError, what: impl FnOnce() -> String) -> ExecError {
        let ExecError::Eiam { source, .. } = &err else {
            return err;
        };
        if !matches!(**source, crate::eiam::EiamError::Fenced { .. }) {
            return err;
        }
        match self.fence(|| format!("{} (checked again after its wait for the budget)", what())) {
            Err(fenced) => fenced,
            Ok(()) => match self.create_marker {
                Some(since) => ExecError::CreateTooLate { since },
                None => err,
            },
        }
    }

    fn client(&self) -> Result<crate::eiam::EiamClient, ExecError> {
        // The planner never asks for an EIAM action while the provider is unusable.
        let provider = self.provider.as_ref().ok_or_else(|| {
            ExecError::InvalidSpec("EIAM action planned without a usable provider".to_owned())
        })?;
        let gate = match &self.admission {
            Some(admission) => admission.gate(Some(self.gate_check())),
            None => {
                let mut gate = CallGate::default();
                gate.fence = Some(self.gate_check());
                gate
            }
        };
        Ok(provider.client.gated(gate))
    }

    /// Admits the pass to its provider's seats and budget before the first round with an EIAM call: within
    /// [`ADMISSION_PATIENCE`], or not at all (the pass ends, to come back when the budget has a token for it).
    async fn admit(&mut self, actions: &[PlanAction]) -> Result<(), ExecError> {
        if self.admission.is_some() || !actions.iter().any(|action| self.calls_eiam(action)) {
            return Ok(());
        }
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        match provider.client.admit(ADMISSION_PATIENCE).await {
            Ok(admission) => {
                self.admission = Some(admission);
                Ok(())
            }
            Err(deferral) => Err(ExecError::Deferred {
                provider: provider.display.clone(),
                deferral,
            }),
        }
    }

    /// Whether running `action` calls EIAM.
    fn calls_eiam(&self, action: &PlanAction) -> bool {
        match action {
            PlanAction::ListSecrets
            | PlanAction::CreateSecret { .. }
            | PlanAction::DisableSecret { .. }
            | PlanAction::DeleteSecret { .. } => true,
            PlanAction::Publish { secret_id, .. } => !self.held.contains_key(secret_id),
            _ => false,
        }
    }
}

/// Whether a Create whose write-ahead marker was stored at `since` may still be signed now (see
/// [`planner::CREATE_SIGNING_WINDOW`]).
fn within_signing_window(since: Timestamp) -> bool {
    Timestamp::now()
        < since
            .saturating_add(planner::CREATE_SIGNING_WINDOW)
            .unwrap_or(Timestamp::MAX)
}
