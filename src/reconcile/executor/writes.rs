//! The pass's writes to the resource and the Secret: the finalizer and marker patch, the orphaning patch, Events,
//! the status (server-side apply, conditional on the version the pass read), and the Secret apply.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Run<'_> {
    pub(super) fn forget_last_list(&self) {
        self.context.drift.force(&self.key);
    }

    /// Sets the finalizers and, with them, any `annotations` (a JSON object merged into the resource's).
    pub(super) async fn patch_metadata(
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
        let written_over =
            std::mem::replace(&mut self.resource_version, patched.resource_version());
        self.record_written(patched, written_over);
        Ok(())
    }

    /// Remembers what this write returned (see `Written`). The watch may have delivered the write before it is
    /// recorded here; then its `seen` has passed it by, and the cache already shows it: forgotten at once, or the
    /// next reconcile after someone else's write would read the resource.
    fn record_written(&self, patched: ApplicationClientSecret, written_over: Option<String>) {
        let written = &self.context.written;
        written.record(&self.key, patched, written_over);
        if let Some(cached) = self.context.store.get(&self.key) {
            written.seen(&self.key, cached.metadata.resource_version.as_deref());
        }
    }

    pub(super) async fn orphan_secret(&self) -> Result<(), ExecError> {
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

    pub(super) async fn event(&self, kind: EventKind, reason: &str, note: &str) {
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
    pub(super) async fn write_status(
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
        let written_over =
            std::mem::replace(&mut self.resource_version, patched.resource_version());
        self.record_written(patched, written_over);
        let metrics = &self.context.metrics.resources;
        metrics.status_written(self.resource, stored, &rendered);
        Ok(rendered)
    }
}

/// Whether the operator lacks the permission to roll the resource's restart targets (not asked on deletion,
/// which rolls nothing).
pub(super) async fn restart_denied(
    resource: &ApplicationClientSecret,
    context: &Context,
) -> Option<String> {
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

/// Writes the Secret: creates it when the pass saw none (`version` is `None`), else server-side applies it,
/// conditional on `version` (the one the pass read or last wrote). A create never lands on a Secret that appeared
/// meanwhile (409, and the next pass reads it), where an apply would take it over. `fold`: the managed fields to
/// set first, conditional on `version`, so that the operator's create and its applies are one owner
/// (see [`super::ownership`]). Kubernetes cannot change a Secret's `type` in place (422, field is immutable): when
/// `spec.target.template.type` changed, the old Secret is deleted (only the version just read) and the new one
/// created, each after checking `token`.
pub(super) async fn apply_secret(
    secrets: &Api<Secret>,
    name: &str,
    mut desired: Secret,
    version: Option<&str>,
    fold: Option<Vec<ManagedFieldsEntry>>,
    token: &LeaderToken,
) -> Result<Secret, ExecError> {
    let what = || format!("apply Secret {name}");
    let create = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let Some(mut version) = version.map(str::to_owned) else {
        desired.metadata.resource_version = None;
        return secrets
            .create(&create, &desired)
            .await
            .map_err(kube_err(format!("create Secret {name}")));
    };
    if let Some(fields) = fold {
        let patch = json!({ "metadata": { "managedFields": fields, "resourceVersion": version } });
        let folded = secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(format!(
                "fold the operator's field ownership of Secret {name}"
            )))?;
        version = folded.metadata.resource_version.unwrap_or(version);
        token.check(|| format!("the Secret {name}"))?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    desired.metadata.resource_version = Some(version);
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
                .create(&create, &desired)
                .await
                .map_err(kube_err(what()))
        }
        result => result.map_err(kube_err(what())),
    }
}
