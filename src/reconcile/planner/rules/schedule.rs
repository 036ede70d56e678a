//! When: how close to expiry, whether a rotation is due and whether a window holds it, and the messages that
//! say so.

// The pass's own types and imports: this is one room of it.
use super::*;

impl Pass<'_> {
    /// The published secret expires within the stall threshold: a blocked rotation is then a failure, not a wait.
    /// The threshold is a quarter of the renewal window (`notAfter` − renewal time), at least [`BLOCKED_STALL_MIN`].
    pub(super) fn about_to_expire(&self) -> bool {
        let Some(current) = &self.status.current else {
            return true;
        };
        let Some(not_after) = current.not_after else {
            return false;
        };
        let threshold = renewal_time(&self.status, &self.input.spec)
            .map_or(BLOCKED_STALL_MIN, |renewal| {
                expiry_margin(renewal, not_after)
            });
        self.now() >= sub(not_after, threshold)
    }

    /// Why a due rotation happens outside `spec.rotation.windows`, if it does: a scheduled one (a requested
    /// rotation is never held by windows) while no window is open, because the next one opens too late.
    pub(super) fn outside_window(&self) -> Option<String> {
        let input = self.input;
        let requested = input.rotate_request.is_some()
            && input.rotate_request != self.status.last_handled_rotate_at;
        let Ok(windows) = &input.spec.windows else {
            return None;
        };
        if requested || windows.is_empty() || windows.is_open(self.now()) {
            return None;
        }
        let current = self.status.current.as_ref()?;
        let next = windows
            .next_open(self.now())
            .map_or_else(|| "never".to_owned(), |t| t.to_string());
        let expires = current
            .not_after
            .map_or_else(|| "its renewal time".to_owned(), |t| t.to_string());
        Some(format!(
            "rotating secret {} outside spec.rotation.windows: the next window opens at {next}, too close to its \
             expiry at {expires}",
            current.secret_id
        ))
    }

    pub(super) fn rotation_due(&self) -> bool {
        let input = self.input;
        let requested = input.rotate_request.is_some()
            && input.rotate_request != self.status.last_handled_rotate_at;
        let scheduled = renewal_time(&self.status, &input.spec).is_some_and(|t| self.now() >= t);
        requested || scheduled
    }

    /// The Ready message while the previous secret is kept because EIAM shows it in use.
    pub(super) fn held_message(
        &self,
        current: &CurrentSecret,
        previous: &PreviousSecret,
        deadline: Timestamp,
        rotation_waits: bool,
    ) -> String {
        let last_used = previous
            .last_used
            .map_or_else(|| "never".to_owned(), |t| t.to_string());
        let unused_for = self
            .input
            .spec
            .retire_when_unused_for
            .map(crate::api::format_duration)
            .unwrap_or_default();
        let waits = if rotation_waits {
            "; the rotation that is due waits for it (never a third secret)"
        } else {
            ""
        };
        format!(
            "secret {} is published; the previous secret {} is still in use (EIAM last saw it used at {last_used}) \
             and stays enabled until unused for {unused_for}, at the latest until {deadline}{waits}",
            current.secret_id, previous.secret_id
        )
    }

    pub(super) fn ready_message(&self, current: &CurrentSecret) -> String {
        match renewal_time(&self.status, &self.input.spec) {
            Some(renewal) => format!(
                "secret {} is published; it is renewed at {}",
                current.secret_id, renewal
            ),
            None => format!(
                "secret {} is published and never expires",
                current.secret_id
            ),
        }
    }

    // ---------------------------------------------------------------- the resource is deleted
}
