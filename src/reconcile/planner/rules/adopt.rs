//! Adoption: recognising this resource's own interrupted Create (by the window of expiries it can have been
//! signed with) and an imported secret (`spec.secretId`).

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    /// Which listed secret an interrupted Create minted, if any. Ours is not current, previous or
    /// unmanaged (recorded just before the Create), and carries the `ExpirationTime` we sent —
    /// which the client computed when it signed the request: after the marker, and after any wait
    /// for the provider's budget and any in-place retry, which at a low `qps` can be minutes or
    /// hours later. So ours expires within `[expiration_for(since), expiration_for(latest)]`: the
    /// marker is persisted before the Create is signed, and `latest` is this plan's `now` (which
    /// comes after the List or the answer it reads), or [`CREATE_SIGNING_WINDOW`] after the marker
    /// if that is earlier (the executor signs no Create later). Nothing but the marker needs
    /// persisting for that.
    pub(super) fn find_pending<'l>(
        &self,
        listed: &'l [ObservedSecret],
        since: Timestamp,
    ) -> PendingCreate<'l> {
        if self.input.create_refused {
            // EIAM refused it (QuotaExceeded): it minted nothing to look for.
            return PendingCreate::NotFound;
        }
        let known = self.status.owned_secret_ids();
        let latest_signing = self.now().max(since).min(add(since, CREATE_SIGNING_WINDOW));
        let expected = self.input.spec.expires_after.map(|lifetime| {
            (
                expiration_for(since, lifetime),
                expiration_for(latest_signing, lifetime),
            )
        });
        let matching: Vec<&ObservedSecret> = listed
            .iter()
            .filter(|s| !known.contains(&s.secret_id.as_str()))
            .filter(|s| {
                !self
                    .input
                    .status
                    .unmanaged_secret_ids
                    .contains(&s.secret_id)
            })
            .filter(|s| expiration_matches(s.expires_at, expected))
            .collect();
        match matching.as_slice() {
            [] => PendingCreate::NotFound,
            [one] => PendingCreate::Found(one),
            many => PendingCreate::Ambiguous(many.iter().map(|s| s.secret_id.clone()).collect()),
        }
    }

    /// Makes the secret our Create minted the current one; a valid old current becomes previous.
    pub(super) fn adopt_created(&mut self, view: &EiamView, secret: &ObservedSecret) {
        let old = self.status.current.take();
        let mut rotated = false;
        if let Some(old) = &old {
            match self.classify(view, old) {
                // Unseen: a Create without a List does not show the old current; nothing says it stopped working.
                CurrentState::Usable | CurrentState::Unseen => {
                    // EIAM holds at most two: a previous still listed next to both is an anomaly;
                    // it is ours, so retire it rather than lose track of it.
                    if let Some(stale) = self.status.previous.take() {
                        self.retire(view, &stale.secret_id);
                    }
                    self.status.previous = Some(PreviousSecret {
                        secret_id: old.secret_id.clone(),
                        retire_at: ceil_to_second(add(self.stamp, self.input.spec.grace_period)),
                        last_used: None,
                    });
                    rotated = true;
                }
                CurrentState::Disabled | CurrentState::Expired => self.retire(view, &old.secret_id),
                CurrentState::Missing => {}
            }
        }
        self.status.current = Some(CurrentSecret {
            secret_id: secret.secret_id.clone(),
            client_id: secret.client_id.clone(),
            not_after: secret.expires_at.map(floor_to_second),
        });
        self.status.last_rotation_time = Some(self.stamp);
        self.status.last_handled_rotate_at = self.input.rotate_request.clone();
        let id = &secret.secret_id;
        let (reason, note) = match (&old, rotated) {
            (Some(old), true) => (
                reasons::ROTATED,
                format!(
                    "rotated to new secret {id}; previous secret {} stays enabled for the grace period",
                    old.secret_id
                ),
            ),
            (Some(old), false) => (
                reasons::ISSUED,
                format!("minted secret {id} to replace {}", old.secret_id),
            ),
            (None, _) => (reasons::ISSUED, format!("minted secret {id}")),
        };
        self.new_current = Some(NewCurrent {
            reason,
            replaces: old.map(|o| o.secret_id),
            note,
        });
    }

    /// First issue with `spec.secretId`: adopt the existing secret, no Create.
    pub(super) fn adopt_import(
        &mut self,
        listed: &[ObservedSecret],
        import: &str,
    ) -> Result<(), Outcome> {
        let now = self.now();
        let usable =
            find(listed, import).filter(|s| s.enabled && s.expires_at.is_none_or(|t| now < t));
        let Some(secret) = usable else {
            return Err(Self::stalled(
                reasons::IMPORT_NOT_FOUND,
                format!(
                    "spec.secretId {import} is not an enabled, unexpired secret of this application in EIAM; \
                     fix spec.secretId or remove it to mint a new secret"
                ),
            ));
        };
        self.status.current = Some(CurrentSecret {
            secret_id: secret.secret_id.clone(),
            client_id: secret.client_id.clone(),
            not_after: secret.expires_at.map(floor_to_second),
        });
        self.status.last_rotation_time = Some(self.stamp);
        self.status.last_handled_rotate_at = self.input.rotate_request.clone();
        self.new_current = Some(NewCurrent {
            reason: reasons::IMPORTED,
            replaces: None,
            note: format!("adopted existing secret {import} (spec.secretId)"),
        });
        Ok(())
    }
}
