//! Retiring: whether the current secret is healthy, the previous one's retirement (after grace, and with
//! `retireWhenUnusedFor` only once EIAM shows it unused), and which listed secrets are someone else's.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    pub(super) fn classify(&self, view: &EiamView, current: &CurrentSecret) -> CurrentState {
        let now = self.now();
        match view.lookup(&current.secret_id) {
            Seen::Absent => CurrentState::Missing,
            Seen::Unknown => CurrentState::Unseen,
            Seen::Shown(s) if !s.enabled => CurrentState::Disabled,
            Seen::Shown(s) if s.expires_at.is_some_and(|t| now >= t) => CurrentState::Expired,
            Seen::Shown(_) => CurrentState::Usable,
        }
    }

    /// Disables (if enabled, or not known to be disabled) then deletes an owned secret. One a partial view does
    /// not show may be gone already: EIAM then answers that it does not exist, which counts as done.
    pub(super) fn retire(&mut self, view: &EiamView, secret_id: &str) {
        if self.retiring.iter().any(|id| id == secret_id) {
            return;
        }
        let enabled = match view.lookup(secret_id) {
            Seen::Absent => return,
            Seen::Shown(secret) => secret.enabled,
            Seen::Unknown => true,
        };
        if enabled {
            self.push(Action::DisableSecret {
                secret_id: secret_id.to_string(),
            });
        }
        self.push(Action::DeleteSecret {
            secret_id: secret_id.to_string(),
        });
        self.retiring.push(secret_id.to_string());
    }

    /// Listed secrets that still take a slot once this plan's retirements ran.
    pub(super) fn occupied<'l>(&self, listed: &'l [ObservedSecret]) -> Vec<&'l ObservedSecret> {
        listed
            .iter()
            .filter(|s| !self.retiring.contains(&s.secret_id))
            .collect()
    }

    /// Listed secrets this resource does not own, sorted.
    pub(super) fn unmanaged(&self, listed: &[ObservedSecret]) -> Vec<String> {
        let owned = self.status.owned_secret_ids();
        let mut ids: Vec<String> = self
            .occupied(listed)
            .iter()
            .filter(|s| !owned.contains(&s.secret_id.as_str()))
            .map(|s| s.secret_id.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether the previous secret, past its grace period, may retire: with `retireWhenUnusedFor`, only once
    /// EIAM shows it unused that long (no `LastUsedTime` counts as unused), or at `maxGracePeriod` regardless.
    pub(super) fn usage(&self, previous: &PreviousSecret) -> Usage {
        let spec = &self.input.spec;
        let Some(unused_for) = spec.retire_when_unused_for else {
            return Usage::Idle;
        };
        let Some(last_used) = previous.last_used else {
            return Usage::Idle;
        };
        let now = self.now();
        let idle_at = add(last_used, unused_for);
        if now >= idle_at {
            return Usage::Idle;
        }
        // `retire_at` is the publication plus the grace period.
        let published = sub(previous.retire_at, spec.grace_period);
        let deadline = add(published, spec.max_grace_period.max(spec.grace_period));
        if now >= deadline {
            return Usage::Overdue { last_used };
        }
        let look_again = idle_at.min(deadline).min(add(now, usage_poll(unused_for)));
        Usage::InUse {
            look_again,
            deadline,
        }
    }
}
