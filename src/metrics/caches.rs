//! How many entries each of the process's own maps holds, read at every scrape: memory that churn must give back
//! (a deleted resource's drift schedule, a deleted provider's client and connection pool) is visible, and tested.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

/// Something that can count its maps' entries: `(cache name, entries)`, names from a fixed set.
pub trait CacheSizes: Send + Sync + std::fmt::Debug {
    /// Each map's name and size now.
    fn sizes(&self) -> Vec<(&'static str, usize)>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

/// The `cache_entries` gauge family; empty until the controller runs.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    source: Mutex<Option<Arc<dyn CacheSizes>>>,
}

impl CacheMetrics {
    /// Starts exporting the sizes of `source`'s maps.
    pub fn watch(&self, source: Arc<dyn CacheSizes>) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    /// The sizes now (none before [`CacheMetrics::watch`]).
    pub fn sizes(&self) -> Vec<(&'static str, usize)> {
        self.source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|source| source.sizes())
            .unwrap_or_default()
    }
}

impl Collector for CacheMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sizes = self.sizes();
        if sizes.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "cache_entries",
            "Entries in each of the operator's own in-memory maps, by cache: they follow the resources and \
             providers that exist, and fall back when they are deleted",
            None,
            MetricType::Gauge,
        )?;
        for (cache, entries) in sizes {
            ConstGauge::new(i64::try_from(entries).unwrap_or(i64::MAX))
                .encode(family.encode_family(&CacheLabels { cache })?)?;
        }
        Ok(())
    }
}
