//! What one reconcile pass lends its client: the leadership fence checked immediately before a mutation is signed,
//! and its admission to the provider's seats and budget — reserved only when both are near, so that a pass never
//! holds a worker waiting for a provider's tiny budget or hanging endpoint (issue 20).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::EiamClient;

/// A check that must pass immediately before a mutating request leaves the process (leader fencing): `false` sends
/// nothing and fails the call with [`EiamError::Fenced`].
pub type Fence = Arc<dyn Fn() -> bool + Send + Sync>;

/// What one reconcile pass lends its client ([`EiamClient::gated`]): the fence, and the token its admission paid.
#[derive(Clone, Default)]
pub struct CallGate {
    /// Checked after the wait for the budget, immediately before a mutation (Create, Enable, Disable, Delete,
    /// UpdateExpirationTime) is signed and sent.
    pub fence: Option<Fence>,
    /// The budget token the pass's [`Admission`] reserved: the next request takes it instead of waiting for its
    /// own, and waits for its seat with the admission's patience only.
    prepaid: Option<Arc<Mutex<Option<Prepaid>>>>,
}

/// A budget token reserved for one request.
#[derive(Debug)]
pub(super) struct Prepaid {
    /// When the token may be used (`None`: the client has no budget).
    pub(super) at: Option<tokio::time::Instant>,
    /// When it was reserved: a throttling answer to a request whose slot was planned before the budget's last
    /// drop describes the rate before it.
    pub(super) reserved_at: tokio::time::Instant,
    /// How long the request may wait for a seat before it gives up unsent ([`EiamError::Busy`]).
    pub(super) seat_patience: Duration,
}

impl std::fmt::Debug for CallGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallGate")
            .field("fenced", &self.fence.is_some())
            .field("prepaid", &self.prepaid.is_some())
            .finish()
    }
}

impl CallGate {
    /// A gate that only fences (no admission).
    pub fn fenced(fence: Fence) -> Self {
        Self {
            fence: Some(fence),
            prepaid: None,
        }
    }

    /// Takes the prepaid token, if left.
    pub(super) fn take_prepaid(&self) -> Option<Prepaid> {
        self.prepaid
            .as_ref()?
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// A reconcile pass admitted to call EIAM through one provider: a seat was free and the budget token of its first
/// request is reserved (later requests of the pass wait for their own).
#[derive(Debug)]
pub struct Admission {
    prepaid: Arc<Mutex<Option<Prepaid>>>,
}

impl Admission {
    /// The gate that spends the reserved token on the pass's first request.
    pub fn gate(&self, fence: Option<Fence>) -> CallGate {
        CallGate {
            fence,
            prepaid: Some(self.prepaid.clone()),
        }
    }
}

/// Why a pass was not admitted: come back later rather than wait while holding a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferral {
    /// Every seat of the provider is taken by other passes.
    NoSeat,
    /// The provider's next budget token is this far away.
    Budget(Duration),
}

impl EiamClient {
    /// This client with `gate` for its calls (same pool, budget and seats).
    pub fn gated(&self, gate: CallGate) -> EiamClient {
        EiamClient {
            inner: self.inner.clone(),
            gate,
        }
    }

    /// Admits one reconcile pass to call EIAM: a seat must come free within `patience` (seats are taken for the
    /// exchange itself, not for the wait for the budget: a seat held through token waits would halve a busy
    /// provider's throughput), and the budget token of its first request is reserved if it is at most `patience`
    /// away, and at most [`LOOKAHEAD`](super::super::budget::LOOKAHEAD) while the budget is below its ceiling (see
    /// [`Budget::lookahead`](super::super::budget::Budget::lookahead)). Otherwise nothing is kept, and the pass should
    /// come back later instead of holding a worker while it waits: one provider's budget or slow endpoint must not
    /// hold the workers other providers' resources need.
    pub async fn admit(&self, patience: Duration) -> Result<Admission, Deferral> {
        if let Some(seats) = &self.inner.seats {
            // A probe: a seat came free within the patience; the request takes its own when its token is due.
            drop(
                tokio::time::timeout(patience, seats.acquire())
                    .await
                    .map_err(|_| Deferral::NoSeat)?
                    .map_err(|_| Deferral::NoSeat)?,
            );
        }
        let at = match &self.inner.limiter {
            Some(limiter) => Some(
                limiter
                    .reserve_within(patience.min(limiter.lookahead()))
                    .map_err(Deferral::Budget)?,
            ),
            None => None,
        };
        Ok(Admission {
            prepaid: Arc::new(Mutex::new(Some(Prepaid {
                reserved_at: tokio::time::Instant::now(),
                at,
                seat_patience: patience,
            }))),
        })
    }
}
