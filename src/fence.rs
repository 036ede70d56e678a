//! The leadership token: whether this process may still act, as a deadline on the monotonic clock.
//!
//! Holding the Lease object is not enough to act safely: a leader frozen (SIGSTOP, a stalled VM, a long GC-like
//! pause of the node) past its Lease wakes up still believing it leads, while a standby has taken over. So every
//! mutation (an EIAM Create, Disable or Delete; a write to a Secret, a workload or a resource) first asks
//! [`LeaderToken::holds`], which compares `Instant::now()` with a deadline that only a renewal the API server confirmed can
//! move: `min(when the renewal was sent, the renewTime it wrote) + leaseDuration − margin`. A frozen process
//! reads the clock when it wakes up, so its deadline has passed and it sends nothing. Losing the Lease revokes the
//! token for good (the process then exits and restarts as a standby).
//!
//! The bound this gives (README "Operations"): a request passes its check no later than `margin` before the Lease
//! can expire by the Lease's own `renewTime`, so no later than `margin − skew` before a standby whose wall clock is
//! `skew` ahead of ours can take it over. What leaves after the check is only the signing and the write to the
//! connection, which take microseconds unless the process is frozen in exactly that window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A mutation was about to be sent without a valid leadership token: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not sending {what}: this replica no longer holds the leader Lease (or cannot vouch for it)"
)]
pub struct Fenced {
    /// What was about to be sent.
    pub what: String,
}

/// The leadership token, shared by every reconcile of the process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaderToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The origin of `deadline` (an `Instant` cannot be stored in an atomic).
    origin: Instant,
    /// Nanoseconds after `origin` until which the token is valid; 0: never granted.
    deadline: AtomicU64,
    /// Leadership was lost: never valid again, whatever renewal is observed late.
    revoked: AtomicBool,
    /// No election (`--leader-election=false`): the only replica always acts.
    unconditional: bool,
}

impl LeaderToken {
    /// A token not held yet: [`LeaderToken::extend`] grants it.
    pub fn new() -> Self {
        Self::with(false)
    }

    /// A token that always holds, for a process that runs without leader election (which must be the only one).
    pub fn unconditional() -> Self {
        Self::with(true)
    }

    fn with(unconditional: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                deadline: AtomicU64::new(0),
                revoked: AtomicBool::new(false),
                unconditional,
            }),
        }
    }

    /// Whether this process may act now.
    pub fn holds(&self) -> bool {
        self.holds_at(Instant::now())
    }

    /// Whether this process may act at `now`.
    pub fn holds_at(&self, now: Instant) -> bool {
        if self.inner.unconditional {
            return true;
        }
        if self.inner.revoked.load(Ordering::Acquire) {
            return false;
        }
        let deadline = self.inner.deadline.load(Ordering::Acquire);
        deadline != 0 && self.nanos(now) < deadline
    }

    /// `Ok` when this process may act now; else what was about to be sent, as the error.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<(), Fenced> {
        if self.holds() {
            Ok(())
        } else {
            Err(Fenced { what: what() })
        }
    }

    /// How long the token stays valid from now (zero when it does not hold; `None` when it always does).
    pub fn remaining(&self) -> Option<Duration> {
        if self.inner.unconditional {
            return None;
        }
        let now = Instant::now();
        if !self.holds_at(now) {
            return Some(Duration::ZERO);
        }
        let deadline = self.inner.deadline.load(Ordering::Acquire);
        Some(Duration::from_nanos(
            deadline.saturating_sub(self.nanos(now)),
        ))
    }

    /// A renewal was confirmed: the token holds until `until` (never moved back: an older renewal observed late
    /// changes nothing).
    pub fn extend(&self, until: Instant) {
        let nanos = self.nanos(until).max(1);
        self.inner.deadline.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Leadership is lost: the token never holds again.
    pub fn revoke(&self) {
        self.inner.revoked.store(true, Ordering::Release);
    }

    /// Whether [`LeaderToken::revoke`] was called.
    pub fn is_revoked(&self) -> bool {
        self.inner.revoked.load(Ordering::Acquire)
    }

    /// The token as the EIAM client's fence (`CallGate::fence`): checked after the wait for the budget,
    /// immediately before a mutation is signed and sent.
    pub fn as_check(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let token = self.clone();
        Arc::new(move || token.holds())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.inner.origin).as_nanos())
            .unwrap_or(u64::MAX)
    }
}

impl Default for LeaderToken {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_only_until_its_deadline() {
        let token = LeaderToken::new();
        let now = Instant::now();
        assert!(!token.holds_at(now), "never granted");
        token.extend(now + Duration::from_secs(5));
        assert!(token.holds_at(now + Duration::from_secs(4)));
        assert!(!token.holds_at(now + Duration::from_secs(5)));
        assert!(
            !token.holds_at(now + Duration::from_secs(3600)),
            "a frozen process wakes up fenced"
        );
    }

    #[test]
    fn an_older_renewal_observed_late_never_moves_the_deadline_back() {
        let token = LeaderToken::new();
        let now = Instant::now();
        token.extend(now + Duration::from_secs(10));
        token.extend(now + Duration::from_secs(2));
        assert!(token.holds_at(now + Duration::from_secs(9)));
    }

    #[test]
    fn a_revoked_token_never_holds_again_whatever_renewal_comes_after() {
        let token = LeaderToken::new();
        let now = Instant::now();
        token.extend(now + Duration::from_secs(10));
        token.revoke();
        assert!(!token.holds_at(now));
        token.extend(now + Duration::from_secs(20));
        assert!(!token.holds_at(now));
        assert_eq!(token.remaining(), Some(Duration::ZERO));
        assert!(token.check(|| "a Create".to_owned()).is_err());
    }

    #[test]
    fn without_election_the_token_always_holds() {
        let token = LeaderToken::unconditional();
        assert!(token.holds_at(Instant::now() + Duration::from_secs(86_400)));
        assert_eq!(token.remaining(), None);
    }
}
