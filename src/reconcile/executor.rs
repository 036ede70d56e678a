//! The executor: turns one reconcile into observations for the planner, runs the actions it returns, and
//! persists status. All I/O of a reconcile happens here; every decision happens in the planner. How a reconcile
//! fails is [`error`], the translation into the planner's vocabulary [`input`], the one-owner-per-application rule
//! [`conflict`].

mod conflict;
mod error;
mod input;

pub use error::ExecError;
pub use input::identity;

use super::context::Context;
use super::events::EventType;
use super::planner::{
    self, Action as PlanAction, ActionOutcome, ConditionStatus, ConditionType, EiamView, EventKind,
    KubeSecret, PlanInput, ProviderState,
};
use super::provider::ResolvedProvider;
use super::publish::{self, PublishedSecret, SecretLayout};
use super::restart::{self, WorkloadKind};
use super::status;
use crate::api::conditions::reasons;
use crate::api::{
    ANNOTATION_FIRST_CREATE_SINCE, ApplicationClientSecret, ApplicationClientSecretStatus,
    CreationPolicy, FIELD_MANAGER, FINALIZER,
};
use crate::eiam::{Admission, CallGate, Fence, SecretString};
use crate::fence::LeaderToken;
use conflict::conflicting_owner;
use error::{MAX_ROUNDS, kube_err, retrying};
use input::{
    first_issue_marker, kube_secret, observed_secret, owner_reference, plan_spec, planned_status,
    provider_state, workload_kind,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::reflector::ObjectRef,
};
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
        resources
            .get_opt(&cached.name_any())
            .await
            .map_err(kube_err(format!(
                "get ApplicationClientSecret {}",
                cached.name_any()
            )))?
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
    let (observed_secret, secret_version, secret_uid) = match unchanged {
        Some((observed, version)) => (observed, version, None),
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
            (
                kube_secret(existing.as_ref(), &layout, owner.as_ref()),
                version,
                uid,
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
            .and_then(|t| super::template::validate(t).err())
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

    async fn execute(&mut self, action: &PlanAction) -> Result<ActionOutcome, ExecError> {
        let instance_id = self.resource.spec.instance_id.clone();
        let application_id = self.resource.spec.application_id.clone();
        match action {
            PlanAction::AddFinalizer => {
                let mut finalizers = self.resource.finalizers().to_vec();
                if !finalizers.iter().any(|f| f == FINALIZER) {
                    finalizers.push(FINALIZER.to_owned());
                }
                let marker = self
                    .first_create_since
                    .map(|since| json!({ ANNOTATION_FIRST_CREATE_SINCE: since.to_string() }));
                self.patch_metadata(finalizers, marker).await?;
            }
            PlanAction::ListSecrets => {
                let client = &self.client()?;
                let listed = retrying(
                    &self.context.metrics.eiam,
                    "ListApplicationClientSecrets",
                    || client.list_secrets(&instance_id, &application_id),
                )
                .await?;
                self.context
                    .drift
                    .checked(&self.key, jiff::Timestamp::now());
                return Ok(ActionOutcome::Listed(
                    listed
                        .application_client_secrets
                        .iter()
                        .map(observed_secret)
                        .collect(),
                ));
            }
            PlanAction::WritePendingCreate { .. } => {
                // Persisted by the caller, which holds the status, before the Create that follows.
            }
            PlanAction::CreateSecret { lifetime } => {
                let client = &self.client()?;
                self.fence(|| "CreateApplicationClientSecret".to_owned())?;
                if let Some(since) = self.create_marker
                    && !within_signing_window(since)
                {
                    return Err(ExecError::CreateTooLate { since });
                }
                let sent = retrying(
                    &self.context.metrics.eiam,
                    "CreateApplicationClientSecret",
                    || client.create_secret_with_lifetime(&instance_id, &application_id, *lifetime),
                )
                .await
                .map_err(|err| self.refused(err, || "CreateApplicationClientSecret".to_owned()));
                // Whatever came of it, this marker's Create is over: later mutations of the pass are not bound to
                // its signing window.
                self.create_marker = None;
                let (created, expiration) = match sent {
                    // A Create sent without a List (the status said a slot was free) meets a secret it did not
                    // know of. Nothing was minted: the planner lists next, in this same pass, and finds out by whom.
                    Err(ExecError::Eiam { source, .. }) if source.is_quota_exceeded() => {
                        tracing::info!(
                            error = %source,
                            "EIAM refused the Create: both slots are taken; listing to find out by whom"
                        );
                        return Ok(ActionOutcome::QuotaExceeded);
                    }
                    sent => sent?,
                };
                let secret = created.application_client_secret;
                #[cfg(feature = "testing")]
                crate::failpoint::hit("after-create");
                self.held.insert(
                    secret.secret_id.clone(),
                    (secret.client_id.clone(), secret.client_secret.clone()),
                );
                return Ok(ActionOutcome::Created(planner::ObservedSecret {
                    secret_id: secret.secret_id,
                    client_id: secret.client_id,
                    enabled: true,
                    expires_at: expiration,
                    last_used: None,
                }));
            }
            PlanAction::Publish {
                secret_id,
                client_id,
                not_after,
            } => {
                let (client_id, value) = match self.held.get(secret_id) {
                    Some(held) => held.clone(),
                    None => {
                        let client = &self.client()?;
                        let obtained = match retrying(
                            &self.context.metrics.eiam,
                            "ObtainApplicationClientSecret",
                            || client.obtain_secret(&instance_id, &application_id, secret_id),
                        )
                        .await
                        {
                            Ok(obtained) => obtained,
                            Err(err) => {
                                // The secret may be gone behind our back: make the next reconcile list.
                                self.forget_last_list();
                                return Err(err);
                            }
                        };
                        let secret = obtained.application_client_secret;
                        let id = if secret.client_id.is_empty() {
                            client_id.clone()
                        } else {
                            secret.client_id
                        };
                        (id, secret.client_secret)
                    }
                };
                let desired = publish::desired_secret(
                    self.layout,
                    &PublishedSecret {
                        secret_id,
                        client_id: &client_id,
                        client_secret: value.expose(),
                        not_after: *not_after,
                    },
                )?;
                self.fence(|| format!("the Secret {}", self.layout.name))?;
                let written = apply_secret(
                    self.secrets,
                    self.layout.name,
                    desired,
                    self.secret_version.as_deref(),
                    &self.context.token,
                )
                .await?;
                self.secret_version = written.metadata.resource_version.clone();
                self.secret_uid = written.metadata.uid.clone();
                self.secret_written = true;
                self.context.own_writes.record(
                    self.layout.namespace,
                    self.layout.name,
                    written.metadata.resource_version,
                );
            }
            PlanAction::RestartTargets { secret_id } => {
                let namespace = self.layout.namespace;
                for target in &self.resource.spec.rotation.restart_targets {
                    let kind = workload_kind(target.kind);
                    self.fence(|| format!("the restart of {:?} {}", target.kind, target.name))?;
                    let found = restart::restart(
                        &self.context.kube,
                        namespace,
                        kind,
                        &target.name,
                        secret_id,
                    )
                    .await
                    .map_err(kube_err(format!(
                        "restart {:?} {}",
                        target.kind, target.name
                    )))?;
                    if !found {
                        let note = format!(
                            "{:?} {} does not exist; nothing to roll",
                            target.kind, target.name
                        );
                        self.event(EventKind::Warning, reasons::RESTART_TARGET_MISSING, &note)
                            .await;
                    }
                }
            }
            PlanAction::DisableSecret { secret_id } => {
                let client = &self.client()?;
                self.fence(|| format!("DisableApplicationClientSecret {secret_id}"))?;
                // Already gone is as good as done (a retirement without a List names a secret it has not seen
                // since the last one). Only the secret's own not-found code: a missing instance or application
                // says nothing about the secret (a wrong endpoint or region must not make us forget a live one).
                retrying(
                    &self.context.metrics.eiam,
                    "DisableApplicationClientSecret",
                    || async {
                        match client
                            .disable_secret(&instance_id, &application_id, secret_id)
                            .await
                        {
                            Err(err) if !err.is_secret_not_found() => Err(err),
                            _ => Ok(()),
                        }
                    },
                )
                .await
                .map_err(|err| {
                    self.refused(err, || {
                        format!("DisableApplicationClientSecret {secret_id}")
                    })
                })?;
            }
            PlanAction::DeleteSecret { secret_id } => {
                let client = &self.client()?;
                self.fence(|| format!("DeleteApplicationClientSecret {secret_id}"))?;
                // Already gone is as good as done (see Disable).
                retrying(
                    &self.context.metrics.eiam,
                    "DeleteApplicationClientSecret",
                    || async {
                        match client
                            .delete_secret(&instance_id, &application_id, secret_id)
                            .await
                        {
                            Err(err) if !err.is_secret_not_found() => Err(err),
                            _ => Ok(()),
                        }
                    },
                )
                .await
                .map_err(|err| {
                    self.refused(err, || format!("DeleteApplicationClientSecret {secret_id}"))
                })?;
            }
            PlanAction::DeleteKubeSecret => {
                self.fence(|| format!("the deletion of Secret {}", self.layout.name))?;
                // Only the Secret this pass saw: one replaced or changed since (by a user, or by another replica
                // that led meanwhile) fails with a conflict, and the next reconcile reads it fresh.
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: self.secret_version.clone(),
                        uid: self.secret_uid.clone(),
                    }),
                    ..DeleteParams::default()
                };
                match self.secrets.delete(self.layout.name, &params).await {
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(err) => {
                        return Err(kube_err(format!("delete Secret {}", self.layout.name))(err));
                    }
                    Ok(_) => {}
                }
            }
            PlanAction::OrphanKubeSecret => self.orphan_secret().await?,
            PlanAction::RemoveFinalizer => {
                let finalizers: Vec<String> = self
                    .resource
                    .finalizers()
                    .iter()
                    .filter(|f| *f != FINALIZER)
                    .cloned()
                    .collect();
                self.patch_metadata(finalizers, None).await?;
                // The resource is about to disappear; what the process remembers about it goes with it.
                self.context.forget(&self.key);
            }
            PlanAction::Event(event) => self.event(event.kind, &event.reason, &event.note).await,
        }
        Ok(ActionOutcome::Done)
    }

    fn forget_last_list(&self) {
        self.context.drift.force(&self.key);
    }

    /// Sets the finalizers and, with them, any `annotations` (a JSON object merged into the resource's).
    async fn patch_metadata(
        &mut self,
        finalizers: Vec<String>,
        annotations: Option<serde_json::Value>,
    ) -> Result<(), ExecError> {
        self.fence(|| format!("the finalizer of {}", self.resource.name_any()))?;
        // The resourceVersion makes this a compare-and-swap: a concurrent finalizer change fails it and retries.
        let mut patch = json!({
            "metadata": { "finalizers": finalizers, "resourceVersion": self.resource_version }
        });
        if let Some(annotations) = annotations {
            patch["metadata"]["annotations"] = annotations;
        }
        let patched = self
            .resources
            .patch(
                &self.resource.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(kube_err("update finalizers"))?;
        self.resource_version = patched.resource_version();
        self.context
            .written
            .record(&self.key, self.resource_version.clone());
        Ok(())
    }

    async fn orphan_secret(&self) -> Result<(), ExecError> {
        let Some(secret) = self
            .secrets
            .get_opt(self.layout.name)
            .await
            .map_err(kube_err(format!("get Secret {}", self.layout.name)))?
        else {
            return Ok(());
        };
        let uid = self.resource.uid().unwrap_or_default();
        // Conditional on the version this pass decided on (else the one just read, from which `kept` is computed):
        // a Secret changed since fails with a conflict, and the next reconcile reads it fresh.
        let version = self
            .secret_version
            .clone()
            .or(secret.metadata.resource_version.clone());
        let kept: Vec<OwnerReference> = secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.uid != uid)
            .collect();
        let patch = json!({ "metadata": { "ownerReferences": kept, "resourceVersion": version } });
        self.fence(|| format!("the orphaning of Secret {}", self.layout.name))?;
        self.secrets
            .patch(
                self.layout.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(kube_err(format!("orphan Secret {}", self.layout.name)))?;
        Ok(())
    }

    async fn event(&self, kind: EventKind, reason: &str, note: &str) {
        if !self.context.token.holds() {
            // A fenced pass writes nothing; its next mutation stops it.
            tracing::debug!(reason, "not recording an event: not leading");
            return;
        }
        // The log keeps the audit trail when Events have expired (notes name secret ids, never values).
        tracing::info!(kind = ?kind, reason, note, "event");
        let type_ = match kind {
            EventKind::Normal => EventType::Normal,
            EventKind::Warning => EventType::Warning,
        };
        if let Err(err) = self
            .context
            .events
            .publish(
                &self.resource.object_ref(&()),
                type_,
                reason,
                "Reconcile",
                note,
            )
            .await
        {
            tracing::warn!(error = %err, reason, "cannot record event");
        }
    }

    /// Persists the planned status with server-side apply, unless it equals what is stored. `secret` is the
    /// Secret as this reconcile last saw or left it: its version is recorded when it holds the current secret.
    async fn write_status(
        &mut self,
        planned: &planner::PlanStatus,
        stored: Option<&ApplicationClientSecretStatus>,
        secret: &KubeSecret,
    ) -> Result<ApplicationClientSecretStatus, ExecError> {
        let mut rendered = status::from_plan(
            planned,
            stored,
            self.layout.name,
            self.resource.metadata.generation,
            Timestamp::now(),
        );
        rendered.secret_resource_version = planned
            .current
            .as_ref()
            .filter(|current| secret.holds(&current.secret_id))
            .and(self.secret_version.clone());
        if stored == Some(&rendered) {
            return Ok(rendered);
        }
        // A Secret someone else touched (a label, an annotation) has a new version but needs nothing: that alone
        // is not worth a write (steady state writes nothing), and the stale version only costs a read of that
        // Secret after a restart. A version is recorded where none was (resources from before this field), and
        // whenever the status or the Secret is written anyway.
        if let Some(stored) = stored
            && stored.secret_resource_version.is_some()
            && !self.secret_written
            && *stored
                == (ApplicationClientSecretStatus {
                    secret_resource_version: stored.secret_resource_version.clone(),
                    ..rendered.clone()
                })
        {
            return Ok(stored.clone());
        }
        self.fence(|| format!("the status of {}", self.resource.name_any()))?;
        // Server-side apply honours metadata.resourceVersion as a precondition: the write fails with a conflict
        // when the resource changed since this reconcile read it (see `Run::resource_version`).
        let patch = json!({
            "apiVersion": ApplicationClientSecret::api_version(&()),
            "kind": ApplicationClientSecret::kind(&()),
            "metadata": { "resourceVersion": self.resource_version },
            "status": rendered,
        });
        let patched = self
            .resources
            .patch_status(
                &self.resource.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(kube_err("apply status"))?;
        self.resource_version = patched.resource_version();
        self.context
            .written
            .record(&self.key, self.resource_version.clone());
        let metrics = &self.context.metrics.resources;
        metrics.status_written(self.resource, stored, &rendered);
        Ok(rendered)
    }
}

/// Whether the operator lacks the permission to roll the resource's restart targets (not asked on deletion,
/// which rolls nothing).
async fn restart_denied(resource: &ApplicationClientSecret, context: &Context) -> Option<String> {
    let targets = &resource.spec.rotation.restart_targets;
    if targets.is_empty() || resource.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let kinds: Vec<WorkloadKind> = targets
        .iter()
        .map(|target| workload_kind(target.kind))
        .collect();
    let namespace = resource.namespace().unwrap_or_default();
    context
        .restart_permissions
        .denied(&context.kube, &namespace, &kinds)
        .await
}

/// Server-side applies the Secret, conditional on `version` (the one the pass read or last wrote; `None`: the pass
/// saw no Secret). Kubernetes cannot change a Secret's `type` in place (422, field is immutable): when
/// `spec.target.template.type` changed, the old Secret is deleted (only the version just read) and the new one
/// written, each after checking `token`.
async fn apply_secret(
    secrets: &Api<Secret>,
    name: &str,
    mut desired: Secret,
    version: Option<&str>,
    token: &LeaderToken,
) -> Result<Secret, ExecError> {
    let what = || format!("apply Secret {name}");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    desired.metadata.resource_version = version.map(str::to_owned);
    match secrets.patch(name, &params, &Patch::Apply(&desired)).await {
        Err(kube::Error::Api(status)) if status.code == 422 => {
            let existing = secrets.get_opt(name).await.map_err(kube_err(what()))?;
            let Some(existing) = existing.filter(|s| s.type_ != desired.type_) else {
                return Err(kube_err(what())(kube::Error::Api(status)));
            };
            tracing::info!(secret = name, "the Secret's type changed: re-creating it");
            token.check(|| format!("the deletion of Secret {name}"))?;
            let only_that_one = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: existing.metadata.resource_version.clone(),
                    uid: existing.metadata.uid.clone(),
                }),
                ..DeleteParams::default()
            };
            secrets
                .delete(name, &only_that_one)
                .await
                .map_err(kube_err(what()))?;
            token.check(|| format!("the Secret {name}"))?;
            desired.metadata.resource_version = None;
            secrets
                .patch(name, &params, &Patch::Apply(&desired))
                .await
                .map_err(kube_err(what()))
        }
        result => result.map_err(kube_err(what())),
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

/// How long a reconcile right after a start waits for the watch's first list of Secret metadata before it reads
/// its Secret instead.
const SECRET_VERSIONS_PATIENCE: Duration = Duration::from_secs(10);

/// The Secret as the status recorded it, with its version, when nothing can have changed either since: the watch
/// shows the version `status.secretResourceVersion` recorded, and the spec that shapes the Secret is the one the
/// status describes. `None`: read the Secret.
async fn unchanged_secret(
    resource: &ApplicationClientSecret,
    secret_name: &str,
    context: &Context,
) -> Option<(KubeSecret, Option<String>)> {
    let status = resource.status.as_ref()?;
    let recorded = status.secret_resource_version.as_deref()?;
    let current = status.current_secret_id.as_deref()?;
    if status.observed_generation != resource.metadata.generation
        || status.secret_name.as_deref() != Some(secret_name)
    {
        return None;
    }
    let namespace = resource.namespace().unwrap_or_default();
    let seen = context
        .secret_versions
        .get(&namespace, secret_name, SECRET_VERSIONS_PATIENCE)
        .await?;
    (seen == recorded).then(|| {
        (
            KubeSecret::Present {
                secret_id: Some(current.to_owned()),
                data_in_sync: true,
                owned_by_us: true,
            },
            Some(seen),
        )
    })
}
