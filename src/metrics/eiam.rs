//! EIAM call metrics: calls by action and outcome, their durations, throttling, retries, and refreshes of
//! temporary credentials. Fed by the EIAM layer through [`crate::eiam::observe`] and by the reconciler's backoff.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::eiam::observe::{CallOutcome, EiamObserver, RetryReason};
use crate::eiam::types::Action;

/// EIAM answers in tens of milliseconds; the read timeout is 10 s.
const DURATION_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The providers that fetch temporary credentials (their `CredentialProvider::kind`).
const TEMPORARY_CREDENTIAL_PROVIDERS: [&str; 2] = ["rrsa", "ecs_ram_role"];

/// `reason` of a retry the reconciler schedules (with backoff) after a retryable EIAM error.
pub const RETRY_BACKOFF: &str = "backoff";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    action: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    action: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    provider: &'static str,
    outcome: &'static str,
}

/// EIAM call and credential metrics.
#[derive(Debug)]
pub struct EiamMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<ActionLabels, Histogram>,
    throttled: Family<ActionLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    refreshes: Family<RefreshLabels, Counter>,
}

impl EiamMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            throttled: Family::default(),
            retries: Family::default(),
            refreshes: Family::default(),
        };
        registry.register(
            "eiam_calls",
            "HTTP requests sent to EIAM, by action and outcome: ok, EIAM's error Code when eiam-api.md documents it \
             (e.g. Throttling.User), other for any other Code, or timeout, transport_error, unexpected_status, \
             decode_error, response_too_large when EIAM's answer carried no Code",
            metrics.calls.clone(),
        );
        registry.register(
            "eiam_call_duration_seconds",
            "How long one request to EIAM took, by action",
            metrics.duration.clone(),
        );
        registry.register(
            "eiam_throttled",
            "Requests EIAM refused with a Throttling.* code, by action",
            metrics.throttled.clone(),
        );
        registry.register(
            "eiam_retries",
            "EIAM calls sent again, by action and reason: signature_nonce_used and credentials_rejected (the client \
             re-sends at once), backoff (the reconciler sends it again after a wait: in place after throttling or a \
             failed read, or in a later reconcile after another retryable error)",
            metrics.retries.clone(),
        );
        // Zero series up front, so rate() and absent-series alerts work before the first refresh.
        for provider in TEMPORARY_CREDENTIAL_PROVIDERS {
            for outcome in ["success", "error"] {
                drop(
                    metrics
                        .refreshes
                        .get_or_create(&RefreshLabels { provider, outcome }),
                );
            }
        }
        registry.register(
            "credential_refreshes",
            "Fetches of temporary credentials, by provider kind (rrsa, ecs_ram_role) and outcome (success, error)",
            metrics.refreshes.clone(),
        );
        metrics
    }

    /// Records that the reconciler will retry after a retryable failure of the EIAM action named `action`.
    pub fn backoff_retry(&self, action: &'static str) {
        self.retries
            .get_or_create(&RetryLabels {
                action,
                reason: RETRY_BACKOFF,
            })
            .inc();
    }

    /// Requests counted for `action` (its API name) with `outcome`.
    pub fn calls(&self, action: &'static str, outcome: &str) -> u64 {
        self.calls
            .get_or_create(&CallLabels {
                action,
                outcome: outcome.to_owned(),
            })
            .get()
    }
}

impl EiamObserver for EiamMetrics {
    fn call_finished(&self, action: Action, outcome: CallOutcome<'_>, elapsed: Duration) {
        let action = action.name();
        self.calls
            .get_or_create(&CallLabels {
                action,
                outcome: outcome.label().to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&ActionLabels { action })
            .observe(elapsed.as_secs_f64());
        if outcome.is_throttled() {
            self.throttled.get_or_create(&ActionLabels { action }).inc();
        }
    }

    fn call_retried(&self, action: Action, reason: RetryReason) {
        self.retries
            .get_or_create(&RetryLabels {
                action: action.name(),
                reason: reason.label(),
            })
            .inc();
    }

    fn credentials_refreshed(&self, provider: &'static str, ok: bool) {
        let outcome = if ok { "success" } else { "error" };
        self.refreshes
            .get_or_create(&RefreshLabels { provider, outcome })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_codes_count_as_calls_and_as_throttled() {
        let mut registry = Registry::with_prefix("eiam_operator");
        let metrics = EiamMetrics::register(&mut registry);
        metrics.call_finished(Action::Create, CallOutcome::Ok, Duration::from_millis(20));
        metrics.call_finished(
            Action::Create,
            CallOutcome::Code("Throttling.User"),
            Duration::from_millis(5),
        );
        metrics.call_retried(Action::List, RetryReason::SignatureNonceUsed);
        metrics.credentials_refreshed("rrsa", false);
        assert_eq!(metrics.calls("CreateApplicationClientSecret", "ok"), 1);
        assert_eq!(
            metrics.calls("CreateApplicationClientSecret", "Throttling.User"),
            1
        );
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for expected in [
            "eiam_operator_eiam_throttled_total{action=\"CreateApplicationClientSecret\"} 1",
            "eiam_operator_eiam_retries_total{action=\"ListApplicationClientSecrets\",reason=\"signature_nonce_used\"} 1",
            "eiam_operator_credential_refreshes_total{provider=\"rrsa\",outcome=\"error\"} 1",
            "eiam_operator_eiam_call_duration_seconds_count{action=\"CreateApplicationClientSecret\"} 2",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
