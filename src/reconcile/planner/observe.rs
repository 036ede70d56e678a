//! Folding the result of an executed action back into the observation, so that the plan that
//! follows a barrier in the same pass sees what the actions did (the executor's in-memory view).

use super::model::{Action, EiamView, KubeSecret, ObservedSecret, PlanInput};

/// What an action that succeeded produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Nothing the planner needs beyond the fact that it succeeded.
    Done,
    /// `ListSecrets`: the application's secrets.
    Listed(Vec<ObservedSecret>),
    /// `CreateSecret`: the new secret (enabled, with the expiration that was sent).
    Created(ObservedSecret),
    /// `CreateSecret`: EIAM refused it because the application already holds two secrets (`QuotaExceeded`), so
    /// it minted nothing. Not a failure: the re-plan lists to find out by whom, and waits or stalls.
    QuotaExceeded,
}

impl PlanInput {
    /// Records the effect of `action`, which succeeded with `outcome`. After the last action of a
    /// plan that needs a re-plan, also set `self.status = plan.status` before planning again.
    pub fn observe(&mut self, action: &Action, outcome: ActionOutcome) {
        match (action, outcome) {
            (Action::ListSecrets, ActionOutcome::Listed(secrets)) => {
                self.eiam = EiamView::Listed(secrets);
                self.drift_check_due = false;
            }
            (Action::CreateSecret { .. }, ActionOutcome::Created(secret)) => {
                self.eiam.add(secret);
                self.create_refused = false;
            }
            (Action::CreateSecret { .. }, ActionOutcome::QuotaExceeded) => {
                // Whatever this pass saw is outdated (something holds the slot it thought free).
                self.eiam = EiamView::Unobserved;
                self.create_refused = true;
            }
            (
                Action::WritePendingCreate {
                    since,
                    unmanaged_secret_ids,
                },
                _,
            ) => {
                // The executor persisted `plan.status` (which has these and what the plan already
                // did); it becomes `self.status` after the barrier. The two fields are set here
                // too so that the marker is visible in the input right away.
                self.status.pending_create_since = Some(*since);
                self.status.unmanaged_secret_ids = unmanaged_secret_ids.clone();
            }
            (Action::Publish { secret_id, .. }, _) => {
                self.kube_secret = KubeSecret::Present {
                    secret_id: Some(secret_id.clone()),
                    data_in_sync: true,
                    owned_by_us: true,
                };
            }
            (Action::DisableSecret { secret_id }, _) => {
                if let Some(secrets) = self.eiam.secrets_mut() {
                    for secret in secrets.iter_mut().filter(|s| &s.secret_id == secret_id) {
                        secret.enabled = false;
                    }
                }
            }
            (Action::DeleteSecret { secret_id }, _) => {
                if let Some(secrets) = self.eiam.secrets_mut() {
                    secrets.retain(|s| &s.secret_id != secret_id);
                }
            }
            (Action::DeleteKubeSecret, _) => self.kube_secret = KubeSecret::Missing,
            (Action::AddFinalizer, _) => self.has_finalizer = true,
            (Action::RemoveFinalizer, _) => self.has_finalizer = false,
            _ => {}
        }
    }
}
