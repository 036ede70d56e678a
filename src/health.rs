//! Liveness and readiness for the kubelet: `/healthz` answers while the process serves HTTP; `/readyz` answers
//! 200 once this replica is useful — standing by for the leader Lease, or leading with its watches synced — and 503
//! while it starts, waits for CRDs it was built for, syncs or shuts down.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

/// Where this replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Connecting to the API server, setting up leader election.
    Starting = 0,
    /// Another replica holds the Lease; this one waits to take over.
    StandingBy = 1,
    /// Leading (or running without leader election); the controller's first list has not finished.
    Syncing = 2,
    /// Leading with the controller's cache filled: reconciling.
    Leading = 3,
    /// SIGTERM received: finishing in-flight reconciles and releasing the Lease.
    Stopping = 4,
    /// The installed CRDs are not the ones this build was made for: nothing is reconciled until they are.
    CrdsOutdated = 5,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Phase::StandingBy,
            2 => Phase::Syncing,
            3 => Phase::Leading,
            4 => Phase::Stopping,
            5 => Phase::CrdsOutdated,
            _ => Phase::Starting,
        }
    }

    /// Whether the kubelet should count this replica as ready.
    pub fn is_ready(self) -> bool {
        matches!(self, Phase::StandingBy | Phase::Leading)
    }

    /// A word for the probe's body and the logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::StandingBy => "standing by",
            Phase::Syncing => "syncing watches",
            Phase::Leading => "leading",
            Phase::Stopping => "stopping",
            Phase::CrdsOutdated => "CRDs do not match this operator",
        }
    }
}

/// The replica's phase, shared between the lifecycle code that sets it and the probes that read it.
#[derive(Debug, Default)]
pub struct Health {
    phase: AtomicU8,
    /// Why the replica is in its phase, when the phase name alone does not say what to do (`/readyz` prints it).
    detail: Mutex<String>,
}

impl Health {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase`, except out of `Stopping`, which is final; clears the detail.
    pub fn set(&self, phase: Phase) {
        self.set_with_detail(phase, String::new());
    }

    /// Moves to `phase` with a detail for `/readyz` (what is wrong and what to do), except out of `Stopping`.
    pub fn set_with_detail(&self, phase: Phase, detail: String) {
        let moved = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current != Phase::Stopping as u8).then_some(phase as u8)
            })
            .is_ok();
        if moved && let Ok(mut current) = self.detail.lock() {
            *current = detail;
        }
    }

    /// The detail set with the phase (empty when none).
    pub fn detail(&self) -> String {
        self.detail
            .lock()
            .map(|detail| detail.clone())
            .unwrap_or_default()
    }
}

/// A router serving `GET /healthz` and `GET /readyz`.
pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    let phase = health.phase();
    let code = if phase.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let detail = health.detail();
    let body = if detail.is_empty() {
        format!("{}\n", phase.name())
    } else {
        format!("{}: {detail}\n", phase.name())
    };
    (code, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_standing_by_or_leading_with_synced_watches() {
        let health = Health::default();
        assert!(!health.phase().is_ready());
        health.set(Phase::StandingBy);
        assert!(health.phase().is_ready());
        health.set(Phase::Syncing);
        assert!(!health.phase().is_ready());
        health.set(Phase::Leading);
        assert!(health.phase().is_ready());
    }

    #[test]
    fn outdated_crds_are_not_ready_and_say_why_until_the_next_phase() {
        let health = Health::default();
        health.set_with_detail(Phase::CrdsOutdated, "upgrade the CRDs".to_owned());
        assert!(!health.phase().is_ready());
        assert_eq!(health.detail(), "upgrade the CRDs");
        health.set(Phase::Leading);
        assert_eq!(health.detail(), "");
    }

    #[test]
    fn stopping_is_final() {
        let health = Health::default();
        health.set(Phase::Stopping);
        health.set(Phase::Leading);
        assert_eq!(health.phase(), Phase::Stopping);
        assert!(!health.phase().is_ready());
    }
}
