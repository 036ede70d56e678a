//! The operator's Prometheus metrics: one registry, every name prefixed `eiam_operator_`, served on `/metrics`.
//!
//! Process-wide series (reconciles, EIAM calls, credential refreshes, leadership, build info) are updated where
//! things happen; per-resource series are read from the controller's cache on each scrape, so a deleted resource
//! disappears from the scrape by itself. README "Metrics" lists every series.

pub mod budget;
pub mod caches;
pub mod eiam;
pub mod http;
pub mod kube;
pub mod reconcile;
pub mod resources;
pub mod secure;

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text, text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use eiam::EiamMetrics;
pub use kube::KubeMetrics;
pub use reconcile::{ReconcileMetrics, ReconcileTimer};
pub use resources::ResourceMetrics;

/// Every metric name starts with this (plus `_`).
pub const PREFIX: &str = "eiam_operator";

/// The two text formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, what Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` and plain `curl` get).
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics only when named, as Prometheus does.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrdLabels {
    crd: String,
}

/// All metrics of one operator process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile counts, durations and concurrency.
    pub reconcile: ReconcileMetrics,
    /// EIAM calls and credential refreshes (installed as the EIAM layer's observer).
    pub eiam: Arc<EiamMetrics>,
    /// Requests to the Kubernetes API server (a layer on the kube client).
    pub kube: KubeMetrics,
    /// Per-resource series, read from the controller's cache.
    pub resources: Arc<ResourceMetrics>,
    /// The sizes of the process's own maps.
    pub caches: Arc<caches::CacheMetrics>,
    /// Each EIAM account budget's rate.
    pub budgets: Arc<budget::BudgetMetrics>,
    /// 1 while this process holds the leader Lease (or runs without leader election), else 0.
    pub leader: Gauge,
    /// Per CRD: 1 when the installed CRD carries the schema hash this build expects, else 0.
    crd_schema_current: Family<CrdLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered and build info set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconcile = ReconcileMetrics::register(&mut registry);
        let eiam = Arc::new(EiamMetrics::register(&mut registry));
        let kube = KubeMetrics::register(&mut registry);
        let resources = Arc::new(ResourceMetrics::default());
        registry.register_collector(Box::new(resources.clone()));
        let caches = Arc::new(caches::CacheMetrics::default());
        registry.register_collector(Box::new(caches.clone()));
        let budgets = Arc::new(budget::BudgetMetrics::default());
        registry.register_collector(Box::new(budgets.clone()));

        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controller (always 1 without leader \
             election), 0 while it stands by",
            leader.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which build of the operator runs",
            build_info,
        );
        let crd_schema_current = Family::<CrdLabels, Gauge>::default();
        registry.register(
            "crd_schema_current",
            "Per CRD: 1 when the installed CRD is the one this operator was built with (its eiam-operator.io/\
             schema-hash annotation matches), 0 when it is missing, older or newer; the operator reconciles nothing \
             until every one is 1",
            crd_schema_current.clone(),
        );
        Self {
            registry,
            reconcile,
            eiam,
            kube,
            resources,
            caches,
            budgets,
            leader,
            crd_schema_current,
        }
    }

    /// Records whether the installed CRD `name` is the one this build expects.
    pub fn set_crd_current(&self, name: &str, current: bool) {
        self.crd_schema_current
            .get_or_create(&CrdLabels {
                crd: name.to_owned(),
            })
            .set(i64::from(current));
    }

    /// The current values of every metric in `format`.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match format {
            Format::OpenMetrics => text::encode(&mut out, &self.registry)?,
            Format::PrometheusText => prometheus_text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_prefixed_and_build_info_is_one() {
        let metrics = Metrics::new();
        let text = metrics.encode(Format::PrometheusText).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let name = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
                .unwrap_or(line);
            assert!(name.starts_with("eiam_operator_"), "unprefixed: {line}");
        }
        assert!(
            text.contains(&format!(
                "eiam_operator_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }

    #[test]
    fn counters_carry_total_in_help_and_type_in_the_prometheus_format() {
        let metrics = Metrics::new();
        metrics.reconcile.start().finish("success");
        let text = metrics.encode(Format::PrometheusText).unwrap();
        assert!(
            text.contains("# TYPE eiam_operator_reconciles_total counter"),
            "{text}"
        );
        assert!(
            text.contains("eiam_operator_reconciles_total{result=\"success\"} 1"),
            "{text}"
        );
        let open = metrics.encode(Format::OpenMetrics).unwrap();
        assert!(
            open.contains("# TYPE eiam_operator_reconciles counter"),
            "{open}"
        );
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    #[test]
    fn openmetrics_only_when_the_scraper_names_it() {
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
