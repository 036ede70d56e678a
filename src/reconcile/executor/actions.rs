//! One planned action's I/O: the EIAM call, the Secret, the restart patches, the finalizer — each checked
//! against the leadership token immediately before it is sent.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Run<'_> {
    pub(super) async fn execute(
        &mut self,
        action: &PlanAction,
    ) -> Result<ActionOutcome, ExecError> {
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
                    self.secret_fields_to_fold.take(),
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
}
