//! Acting on EIAM's answer: with the application's secrets listed (or a partial view), what the current,
//! previous and pending secrets are, and what to do about each.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    pub(super) fn with_view(&mut self, view: &EiamView) -> Outcome {
        let now = self.now();

        // A previous secret EIAM no longer lists needs no retirement; one it lists shows when it was last used.
        if let Some(previous) = self.status.previous.as_mut() {
            match view.lookup(&previous.secret_id) {
                Seen::Absent => self.status.previous = None,
                Seen::Shown(listed) => previous.last_used = listed.last_used,
                Seen::Unknown => {}
            }
        }

        // An interrupted (or just completed) Create: adopt its secret, never mint a third one.
        if let Some(since) = self.status.pending_create_since {
            match self.find_pending(view.secrets(), since) {
                PendingCreate::Ambiguous(ids) => {
                    return Self::stalled(
                        reasons::ADOPTION_AMBIGUOUS,
                        format!(
                            "a Create was interrupted and EIAM now lists several unknown secrets ({}); \
                             delete the ones this resource did not mint, or import one with spec.secretId",
                            ids.join(", ")
                        ),
                    );
                }
                PendingCreate::Found(secret) => self.adopt_created(view, secret),
                PendingCreate::NotFound => {}
            }
            self.status.pending_create_since = None;
        }

        // Is the current secret still good? (No repeated Warning while a replacement is pending.)
        let warn = self.input.status.pending_create_since.is_none();
        if let Some(current) = self.status.current.clone() {
            let id = current.secret_id.clone();
            let (reason, note) = match self.classify(view, &current) {
                CurrentState::Usable => {
                    if let Seen::Shown(secret) = view.lookup(&id) {
                        let refreshed = CurrentSecret {
                            secret_id: id.clone(),
                            client_id: secret.client_id.clone(),
                            not_after: secret.expires_at.map(floor_to_second),
                        };
                        self.status.current = Some(refreshed);
                    }
                    (None, String::new())
                }
                CurrentState::Unseen => (None, String::new()),
                CurrentState::Missing => (
                    Some(reasons::SECRET_DELETED_IN_EIAM),
                    format!("current secret {id} no longer exists in EIAM; minting a replacement"),
                ),
                CurrentState::Disabled => (
                    Some(reasons::SECRET_DISABLED_IN_EIAM),
                    format!(
                        "current secret {id} was disabled in EIAM; deleting it and minting a replacement"
                    ),
                ),
                CurrentState::Expired => (
                    Some(reasons::SECRET_EXPIRED),
                    format!(
                        "current secret {id} expired before it was renewed; deleting it and minting a replacement"
                    ),
                ),
            };
            if let Some(reason) = reason {
                if warn {
                    self.event(EventKind::Warning, reason, note);
                }
                // Ours and useless: free its slot now (a no-op when it is gone).
                self.retire(view, &id);
                self.broken = true;
                self.new_current = None;
            }
        }

        // Retire the previous secret once its grace period is over (not one that became previous
        // in this very plan: its successor is published first, the retirement comes next pass).
        if let Some(previous) = self.status.previous.clone()
            && now >= previous.retire_at
            && self
                .new_current
                .as_ref()
                .is_none_or(|n| n.replaces.as_deref() != Some(previous.secret_id.as_str()))
        {
            if !view.is_complete() && self.input.spec.retire_when_unused_for.is_some() {
                // Whether it is still in use is EIAM's LastUsedTime, which only a List shows.
                return self.list();
            }
            match self.usage(&previous) {
                Usage::Idle => {
                    self.retire(view, &previous.secret_id);
                    self.status.previous = None;
                    self.event(
                        EventKind::Normal,
                        reasons::RETIRED,
                        format!(
                            "disabled and deleted previous secret {} after its grace period",
                            previous.secret_id
                        ),
                    );
                }
                Usage::Overdue { last_used } => {
                    self.retire(view, &previous.secret_id);
                    self.status.previous = None;
                    self.event(
                        EventKind::Warning,
                        reasons::RETIRED_WHILE_IN_USE,
                        format!(
                            "disabled and deleted previous secret {} at spec.rotation.maxGracePeriod although \
                             EIAM shows it last used at {last_used}: whatever still uses it must pick up the \
                             current secret",
                            previous.secret_id
                        ),
                    );
                }
                Usage::InUse {
                    look_again,
                    deadline,
                } => self.held_in_use = Some((look_again, deadline)),
            }
        }

        // Make sure there is a valid current secret that is not due.
        let mut stall = None;
        let mut deferred = false;
        if self.status.current.is_none() || self.broken {
            let EiamView::Listed(listed) = view else {
                // Importing, or minting a replacement into whatever slot is free, takes the whole picture.
                return self.list();
            };
            let import = self.input.spec.import_secret_id.clone();
            match import {
                Some(import) if self.status.last_rotation_time.is_none() => {
                    if let Err(outcome) = self.adopt_import(listed, &import) {
                        return outcome;
                    }
                }
                _ => match self.mint(view, true) {
                    Ok(outcome) => return outcome,
                    Err(outcome) => stall = Some(outcome),
                },
            }
        } else if self.rotation_due() {
            if self.status.previous.is_some() {
                deferred = true;
            } else {
                let outside = self.outside_window();
                let before_mint = self.actions.len();
                match self.mint(view, false) {
                    Ok(outcome) => {
                        // Before the write-ahead marker and the Create: the plan must end with the Create barrier.
                        let creates =
                            matches!(self.actions.last(), Some(Action::CreateSecret { .. }));
                        if let Some(note) = outside.filter(|_| creates) {
                            self.actions.insert(
                                before_mint,
                                Action::Event(Event {
                                    kind: EventKind::Warning,
                                    reason: reasons::ROTATED_OUTSIDE_WINDOW.to_string(),
                                    note,
                                }),
                            );
                        }
                        return outcome;
                    }
                    Err(Outcome::Stalled { reason, message })
                        if reason == reasons::SLOTS_EXHAUSTED && !self.about_to_expire() =>
                    {
                        self.blocked = Some(message);
                    }
                    Err(outcome) => stall = Some(outcome),
                }
            }
        }

        // Publish the current secret where it is not (first issue, rotation, drift), only on EIAM's word that it
        // is usable: the Create of this pass, or the List.
        if let Some(current) = self.status.current.clone().filter(|_| !self.broken) {
            let shown = matches!(view.lookup(&current.secret_id), Seen::Shown(_));
            if !shown && !self.input.kube_secret.holds(&current.secret_id) {
                return self.list();
            }
            self.publish(&current);
        }

        // Only a List tells which secrets are someone else's; a partial view keeps what the last one said.
        if view.is_complete() {
            self.status.unmanaged_secret_ids = self.unmanaged(view.secrets());
        }
        if let Some(outcome) = stall {
            return outcome;
        }
        match self.status.current.as_ref().filter(|_| !self.broken) {
            Some(current) => {
                let message = match (&self.status.previous, self.held_in_use, deferred) {
                    (Some(previous), Some((_, deadline)), _) => {
                        self.held_message(current, previous, deadline, deferred)
                    }
                    (Some(previous), None, true) => deferred_message(current, previous),
                    _ => self.ready_message(current),
                };
                Outcome::Ready { message }
            }
            // Not reached: without a current secret the pass mints, imports or stalls above.
            None => Self::stalled(
                reasons::ISSUING,
                "no usable secret and nothing planned to mint one".to_string(),
            ),
        }
    }
}
