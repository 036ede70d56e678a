//! Deletion: disabling and deleting every secret the resource created, the Secret, then the finalizer.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    pub(super) fn finalize(&mut self) -> Outcome {
        let input = self.input;
        if !input.has_finalizer {
            return Outcome::Finalized;
        }
        let kube_ours = input.kube_secret.is_ours();
        if input.spec.deletion_policy == DeletionPolicy::Retain {
            if kube_ours {
                self.push(Action::OrphanKubeSecret);
            }
            let owned = self.status.owned_secret_ids().join(", ");
            self.event(
                EventKind::Normal,
                reasons::RETAINED,
                format!("kept EIAM secrets [{owned}] and the Secret (deletionPolicy: Retain)"),
            );
            self.push(Action::RemoveFinalizer);
            return Outcome::Finalized;
        }

        // deletionPolicy: Delete. Only what this resource recorded as its own is deleted, so a
        // conflicting resource (which never minted or recorded anything) deletes nothing in EIAM.
        let nothing_recorded = self.status.current.is_none()
            && self.status.previous.is_none()
            && self.status.pending_create_since.is_none();
        if !nothing_recorded {
            match &input.provider {
                ProviderState::Ready => {}
                ProviderState::NotAllowed { message } => {
                    return Self::stalled(reasons::NOT_ALLOWED, deletion_blocked(message));
                }
                ProviderState::Unavailable { reason, message } => {
                    return Self::stalled(reason, deletion_blocked(message));
                }
            }
            // Deletion lists first: what an interrupted Create minted, and what is gone already.
            let view = &input.eiam;
            let EiamView::Listed(listed) = view else {
                return self.list();
            };
            let mut owned: Vec<String> = self
                .status
                .owned_secret_ids()
                .into_iter()
                .map(str::to_string)
                .collect();
            if let Some(since) = self.status.pending_create_since {
                match self.find_pending(listed, since) {
                    PendingCreate::Found(secret) => owned.push(secret.secret_id.clone()),
                    PendingCreate::NotFound => {}
                    PendingCreate::Ambiguous(ids) => {
                        return Self::stalled(
                            reasons::ADOPTION_AMBIGUOUS,
                            format!(
                                "a Create was interrupted and EIAM lists several unknown secrets ({}); \
                                 delete the one this resource minted by hand, or set deletionPolicy: Retain",
                                ids.join(", ")
                            ),
                        );
                    }
                }
            }
            for id in &owned {
                self.retire(view, id);
            }
            if !self.retiring.is_empty() {
                let deleted = self.retiring.join(", ");
                self.event(
                    EventKind::Normal,
                    reasons::DELETED,
                    format!(
                        "disabled and deleted EIAM secrets [{deleted}] (deletionPolicy: Delete)"
                    ),
                );
            }
        }
        if kube_ours {
            self.push(Action::DeleteKubeSecret);
        }
        self.push(Action::RemoveFinalizer);
        Outcome::Finalized
    }

    // ---------------------------------------------------------------- the resulting plan
}
