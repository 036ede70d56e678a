//! Reconcile metrics: how many ran and how they ended, how long they took, how many run right now.
//!
//! A [`ReconcileTimer`] is a drop guard: it counts the reconcile in flight while it lives and records the
//! duration and result when it ends, also when the reconcile future is dropped half-way (result `cancelled`).

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Reconcile durations: from a no-op check (milliseconds) to a rotation with slow EIAM calls (tens of seconds).
const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Reconcile counters, the duration histogram and the in-flight gauge.
#[derive(Debug, Clone)]
pub struct ReconcileMetrics {
    total: Family<ResultLabels, Counter>,
    duration: Histogram,
    in_flight: Gauge,
    deferrals: Family<ReasonLabels, Counter>,
    panics: Counter,
}

impl ReconcileMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            total: Family::default(),
            duration: Histogram::new(DURATION_BUCKETS),
            in_flight: Gauge::default(),
            deferrals: Family::default(),
            panics: Counter::default(),
        };
        // Zero series up front, so rate() and alerts work before the first one.
        for reason in ["seats", "budget"] {
            drop(metrics.deferrals.get_or_create(&ReasonLabels { reason }));
        }
        registry.register(
            "reconcile_deferrals",
            "Reconciles that gave their worker back before doing anything, by reason: seats (every concurrent EIAM \
             call of the provider taken) or budget (the provider's next budget slot more than 150 ms away); each \
             comes back when its provider may have room",
            metrics.deferrals.clone(),
        );
        registry.register(
            "reconcile_panics",
            "Reconciles that panicked (a bug): the panic was caught, the process went on, the resource is retried",
            metrics.panics.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles of ApplicationClientSecrets by result: success, or the kind of error (eiam_error, \
             kubernetes_error, invalid_spec, invalid_template, not_converged, panicked), conflict (the resource \
             changed meanwhile and is reconciled again), fenced (this replica no longer holds the leader Lease: nothing \
             sent), deferred (its provider's seats or budget were busy: see reconcile_deferrals), or cancelled \
             (abandoned at shutdown)",
            metrics.total.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long one reconcile took, including its EIAM and Kubernetes calls",
            metrics.duration.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running right now",
            metrics.in_flight.clone(),
        );
        metrics
    }

    /// Starts timing one reconcile.
    pub fn start(&self) -> ReconcileTimer {
        self.in_flight.inc();
        ReconcileTimer {
            metrics: self.clone(),
            started: Instant::now(),
            result: "cancelled",
        }
    }

    /// Reconciles counted with `result` so far.
    pub fn count(&self, result: &'static str) -> u64 {
        self.total.get_or_create(&ResultLabels { result }).get()
    }

    /// A reconcile was deferred for `reason` (`seats` or `budget`).
    pub fn deferred(&self, reason: &'static str) {
        self.deferrals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// A reconcile panicked.
    pub fn panicked(&self) {
        self.panics.inc();
    }

    /// Reconciles running right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}

/// Times one reconcile; records it when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: ReconcileMetrics,
    started: Instant,
    result: &'static str,
}

impl ReconcileTimer {
    /// Sets the result label (`success` or an error kind) and records the reconcile.
    pub fn finish(mut self, result: &'static str) {
        self.result = result;
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .total
            .get_or_create(&ResultLabels {
                result: self.result,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_counts_in_flight_then_records_its_result() {
        let metrics = ReconcileMetrics::register(&mut Registry::default());
        let timer = metrics.start();
        assert_eq!(metrics.in_flight(), 1);
        timer.finish("success");
        assert_eq!(metrics.in_flight(), 0);
        assert_eq!(metrics.count("success"), 1);
    }

    #[test]
    fn a_dropped_reconcile_counts_as_cancelled() {
        let metrics = ReconcileMetrics::register(&mut Registry::default());
        drop(metrics.start());
        assert_eq!(metrics.count("cancelled"), 1);
        assert_eq!(metrics.in_flight(), 0);
    }
}
