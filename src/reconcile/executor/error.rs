//! How a reconcile fails — one error type for its Kubernetes and EIAM calls, which failures are permanent — and the
//! in-place retry of an EIAM call that certainly had no effect.

use crate::api::conditions::reasons;
use crate::eiam::{Deferral, EiamError};
use crate::reconcile::planner::ActionFailure;
use std::time::Duration;

/// EIAM's refusal of an ExpirationTime outside its bounds (`InvalidParameter.ExpirationTime`).
pub(super) const EXPIRATION_TIME_INVALID: &str = "InvalidParameter.ExpirationTime";

/// Create refusals that EIAM calls permanent but that the next attempt decides with new facts: the ExpirationTime is
/// recomputed at every attempt, inside EIAM's bounds with a margin (a refusal means latency or clock skew ate the
/// margin). A refusal because both slots are taken is not even a failure: `Run::execute` hands it to the planner,
/// which lists in the same pass and finds out by whom (it is kept here should one ever escape as an error: the next
/// reconcile would list, since the write-ahead marker says a Create was attempted).
pub(super) fn create_retried_with_new_facts(source: &EiamError) -> bool {
    source.code() == Some(EXPIRATION_TIME_INVALID) || source.is_quota_exceeded()
}

/// How many plan/execute rounds one reconcile may take (List, Create and the publish that follows need three; a
/// Create EIAM refuses for quota, the List after it, a Create and its publish four; five when a List came first).
pub(super) const MAX_ROUNDS: usize = 6;

/// A reconcile failed. Transient failures are retried with backoff; permanent ones wait for a human.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// EIAM answered with an error or could not be reached.
    // The EIAM error's own message already names the action, Code, Message and RequestId.
    #[error("{source}")]
    Eiam {
        action: &'static str,
        #[source]
        source: Box<EiamError>,
    },
    /// The Kubernetes API server refused or failed a request.
    #[error("Kubernetes {what} failed: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The spec passed admission but cannot be used (e.g. an API server without the CEL rules).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// `spec.target.template` did not render with the real values (the message never quotes them).
    #[error("{0}")]
    InvalidTemplate(#[from] crate::reconcile::executor::template::TemplateError),
    /// The planner did not converge within the round limit; retried later.
    #[error("reconcile did not converge in {MAX_ROUNDS} rounds; will retry")]
    NotConverged,
    /// A Create waited (for the provider's budget, retries) past the signing window after its write-ahead marker:
    /// not sent, since adoption after a crash recognises only Creates signed within it. Transient: the next pass
    /// lists and writes a new marker.
    #[error(
        "CreateApplicationClientSecret was not sent: it waited more than {}s after its write-ahead marker ({since}); \
         the next attempt lists first and writes a new marker",
        crate::reconcile::planner::CREATE_SIGNING_WINDOW.as_secs()
    )]
    CreateTooLate { since: jiff::Timestamp },
    /// This replica can no longer vouch that it leads (its token expired or the Lease was lost): the pass stopped
    /// with nothing sent. Not the resource's failure, so nothing is written about it: the leader reconciles it.
    #[error(transparent)]
    Fenced(#[from] crate::fence::Fenced),
    /// The pass was not admitted to its provider's seats or budget in time: it did nothing and comes back later.
    /// Not a failure (no status, no backoff).
    #[error("waiting for {provider}: {}", match .deferral {
        Deferral::NoSeat => "every one of its concurrent EIAM calls is taken".to_owned(),
        Deferral::Budget(wait) => format!("its QPS budget has a token in {} ms", wait.as_millis()),
    })]
    Deferred {
        /// The provider's display name.
        provider: String,
        /// Why.
        deferral: Deferral,
    },
    /// The reconcile panicked; the panic was caught, and the resource is retried with backoff.
    #[error("the reconcile panicked (a bug: please report it with the operator's log): {0}")]
    Panicked(String),
}

/// How long a pass that found every seat of its provider taken waits before it comes back: long enough that a
/// provider whose endpoint hangs costs other providers little, short enough for a busy healthy one.
const NO_SEAT_RETRY: Duration = Duration::from_secs(5);

impl ExecError {
    /// Retrying soon will not help.
    pub fn is_permanent(&self) -> bool {
        match self {
            ExecError::Eiam { action, source } if *action == "CreateApplicationClientSecret" => {
                !(source.is_retryable() || create_retried_with_new_facts(source))
            }
            ExecError::Eiam { source, .. } => !source.is_retryable(),
            ExecError::InvalidSpec(_) | ExecError::InvalidTemplate(_) => true,
            ExecError::Kube { .. }
            | ExecError::NotConverged
            | ExecError::Fenced(_)
            | ExecError::CreateTooLate { .. }
            | ExecError::Deferred { .. }
            | ExecError::Panicked(_) => false,
        }
    }

    /// For a pass that was deferred (not a failure): when to come back, and the reason as a metric label.
    pub fn deferred(&self) -> Option<(Duration, &'static str)> {
        match self {
            ExecError::Deferred {
                deferral: Deferral::NoSeat,
                ..
            } => Some((NO_SEAT_RETRY, "seats")),
            ExecError::Deferred {
                deferral: Deferral::Budget(wait),
                ..
            } => Some((*wait, "budget")),
            _ => None,
        }
    }

    /// The pass stopped because this replica may no longer act (see [`ExecError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, ExecError::Fenced(_))
    }

    /// The resource changed since this reconcile read it (HTTP 409 on a write that carries the resourceVersion it
    /// read): nothing is wrong, the reconcile of the newer version follows at once.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ExecError::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
    }

    /// A wait EIAM asked for (`x-acs-retry-after`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExecError::Eiam { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    pub(super) fn failure(&self) -> ActionFailure {
        let reason = match self {
            ExecError::Eiam { .. } | ExecError::CreateTooLate { .. } => reasons::EIAM_ERROR,
            ExecError::Kube { .. } => reasons::KUBERNETES_ERROR,
            ExecError::InvalidSpec(_) => reasons::INVALID_SPEC,
            ExecError::InvalidTemplate(_) => reasons::INVALID_TEMPLATE,
            // Never recorded: a fenced pass writes nothing (see `executor::reconcile`).
            ExecError::NotConverged
            | ExecError::Fenced(_)
            | ExecError::Deferred { .. }
            | ExecError::Panicked(_) => reasons::NOT_CONVERGED,
        };
        ActionFailure {
            permanent: self.is_permanent(),
            reason: reason.to_owned(),
            message: self.to_string(),
        }
    }
}

pub(super) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ExecError {
    let what = what.into();
    move |source| ExecError::Kube { what, source }
}

pub(super) fn eiam_err(action: &'static str) -> impl FnOnce(EiamError) -> ExecError {
    move |source| match source {
        // Nothing was sent: not a failure, the pass comes back when the provider may have a seat.
        EiamError::Busy { endpoint, .. } => ExecError::Deferred {
            provider: format!("EIAM at {endpoint}"),
            deferral: Deferral::NoSeat,
        },
        source => ExecError::Eiam {
            action,
            source: Box::new(source),
        },
    }
}

/// Waits before each in-place retry of an EIAM call (at least what EIAM asks for with `x-acs-retry-after`).
const IN_PLACE_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
/// The longest `x-acs-retry-after` honoured in place; a longer one fails the reconcile, and the controller retries it
/// after that wait without holding a worker (an endpoint asking for long waits must not hold workers with them).
const IN_PLACE_MAX_WAIT: Duration = Duration::from_secs(2);
/// A failure that took longer than this is not retried in place (see [`retrying`]).
const IN_PLACE_SLOW_FAILURE: Duration = Duration::from_secs(2);

/// Runs an EIAM call, retrying it in place (with backoff) while it fails in a way that certainly had no effect:
/// throttling, or a transient failure of a read. Retrying only the failed call, not the whole pass, matters: a
/// pass that always makes two calls would meet a fault on every second call forever. An ambiguous failure of a
/// mutation (a Create that may have minted a secret) is never retried here: the next pass lists first.
pub(super) async fn retrying<T, F, Fut>(
    metrics: &crate::metrics::eiam::EiamMetrics,
    action: &'static str,
    mut call: F,
) -> Result<T, ExecError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EiamError>>,
{
    let mut waits = IN_PLACE_BACKOFF.iter();
    loop {
        let started = std::time::Instant::now();
        let err = match call().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        // A call that failed slowly (a timeout, an endpoint that hangs or drips) is not retried in place: that
        // would hold the worker for several more deadlines. The controller's backoff retries it without one.
        let slow = started.elapsed() > IN_PLACE_SLOW_FAILURE
            || matches!(
                err,
                EiamError::Timeout { .. }
                    | EiamError::ResponseTooLarge { .. }
                    | EiamError::Busy { .. }
            );
        let wait = waits
            .next()
            .filter(|_| err.is_retryable() && !err.is_ambiguous() && !slow)
            .filter(|_| err.retry_after().unwrap_or_default() <= IN_PLACE_MAX_WAIT)
            .map(|base| (*base).max(err.retry_after().unwrap_or_default()));
        let Some(wait) = wait else {
            return Err(eiam_err(action)(err));
        };
        let wait = crate::reconcile::jitter::jittered(wait);
        tracing::info!(
            action,
            error = %err,
            retry_in_ms = wait.as_millis() as u64,
            "EIAM call failed without effect; retrying it"
        );
        metrics.backoff_retry(action);
        tokio::time::sleep(wait).await;
    }
}
