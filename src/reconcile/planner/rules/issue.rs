//! Issuing: when a Create needs no List first, minting into a free slot (never a third secret), and publishing.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    /// A Create may go out on the status's word, without a List: a List before it would only tell what EIAM
    /// answers anyway (`QuotaExceeded` when something the status does not record holds the free slot; the re-plan
    /// then lists and waits or stalls as after any List). The List is needed when a Create may already have
    /// happened (the write-ahead marker: adopt, never mint a third), when secrets of someone else were seen (a
    /// SlotsExhausted stall, a blocked rotation: list, do not knock again), and for a secret that never expires:
    /// after a crash its adoption tells ours from a foreign secret by the ExpirationTime it sent, which a
    /// never-expiring foreign secret would match too unless recorded before.
    pub(super) fn create_needs_no_list(&self) -> bool {
        self.status.pending_create_since.is_none()
            && self.status.unmanaged_secret_ids.is_empty()
            && self.input.spec.expires_after.is_some()
    }

    /// A first issue needs one EIAM call, the Create (see [`Self::create_needs_no_list`]); an import lists to find
    /// the secret it names.
    pub(super) fn first_issue_needs_no_list(&self) -> bool {
        self.status.last_rotation_time.is_none()
            && self.status.previous.is_none()
            && self.input.spec.import_secret_id.is_none()
            && self.create_needs_no_list()
    }

    /// A Create without a List: the write-ahead marker, then the Create barrier. The plan after it sees only the
    /// new secret (a partial view), which is all an issue or a rotation needs; the drift check lists the rest
    /// later.
    pub(super) fn mint_unlisted(&mut self) -> Outcome {
        let since = self.stamp;
        self.status.pending_create_since = Some(since);
        self.push(Action::WritePendingCreate {
            since,
            unmanaged_secret_ids: self.status.unmanaged_secret_ids.clone(),
        });
        self.push(Action::CreateSecret {
            lifetime: self.input.spec.expires_after,
        });
        Outcome::Replan
    }

    /// Writes the write-ahead marker and mints a secret into a free slot. `Ok`: the plan ends with
    /// the Create barrier (or, in a partial view that cannot vouch for a free slot, with a List). `Err`: stalled
    /// (slots exhausted). `broken`: there is no usable current secret, so an owned previous secret may be retired
    /// early to make room.
    pub(super) fn mint(&mut self, view: &EiamView, broken: bool) -> Result<Outcome, Outcome> {
        let EiamView::Listed(listed) = view else {
            // Without a List, only on the status's word: ours that stay and the unmanaged ones recorded leave a slot.
            let taken =
                self.status.owned_secret_ids().len() + self.status.unmanaged_secret_ids.len();
            if broken || !self.create_needs_no_list() || taken >= SLOT_LIMIT {
                return Ok(self.list());
            }
            return Ok(self.mint_unlisted());
        };
        if self.occupied(listed).len() >= SLOT_LIMIT
            && broken
            && let Some(previous) = self.status.previous.take()
        {
            self.retire(view, &previous.secret_id);
            self.event(
                EventKind::Warning,
                reasons::RETIRED_EARLY,
                format!(
                    "retired previous secret {} before its grace period ended to make room for a replacement",
                    previous.secret_id
                ),
            );
        }
        let occupied = self.occupied(listed);
        if occupied.len() >= SLOT_LIMIT {
            // Name only what blocks: the secrets this resource does not own (its own current one it keeps).
            let owned = self.status.owned_secret_ids();
            let mut foreign: Vec<&str> = occupied
                .iter()
                .map(|s| s.secret_id.as_str())
                .filter(|id| !owned.contains(id))
                .collect();
            foreign.sort_unstable();
            return Err(Self::stalled(
                reasons::SLOTS_EXHAUSTED,
                format!(
                    "EIAM allows {SLOT_LIMIT} secrets per application and {} that this resource did not \
                     create and cannot free ({}) take the free slot; delete the one that is not in use",
                    if foreign.len() == 1 {
                        "a secret"
                    } else {
                        "secrets"
                    },
                    foreign.join(", ")
                ),
            ));
        }
        let since = self.stamp;
        let unmanaged = self.unmanaged(listed);
        self.status.pending_create_since = Some(since);
        self.status.unmanaged_secret_ids = unmanaged.clone();
        self.push(Action::WritePendingCreate {
            since,
            unmanaged_secret_ids: unmanaged,
        });
        self.push(Action::CreateSecret {
            lifetime: self.input.spec.expires_after,
        });
        Ok(Outcome::Replan)
    }

    /// Publishes the (usable) current secret where the Secret does not hold it, then restarts
    /// targets and records the transition.
    pub(super) fn publish(&mut self, current: &CurrentSecret) {
        let kube = &self.input.kube_secret;
        if !kube.holds(&current.secret_id) {
            self.push(Action::Publish {
                secret_id: current.secret_id.clone(),
                client_id: current.client_id.clone(),
                not_after: current.not_after,
            });
            if self.new_current.is_none() {
                self.event(
                    EventKind::Normal,
                    reasons::REPAIRED,
                    format!(
                        "re-published secret {}: the Secret was missing or out of sync",
                        current.secret_id
                    ),
                );
            }
        }
        if let Some(new) = self.new_current.take() {
            // Consumers may hold another value: the replaced current, or whatever the Secret held.
            let replaces_value = new.replaces.is_some()
                || kube.secret_id().is_some_and(|id| id != current.secret_id);
            if self.input.spec.has_restart_targets && replaces_value {
                self.push(Action::RestartTargets {
                    secret_id: current.secret_id.clone(),
                });
            }
            self.event(EventKind::Normal, new.reason, new.note);
        }
    }
}
