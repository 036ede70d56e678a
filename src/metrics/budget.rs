//! Each EIAM account budget's current rate, read at every scrape (issue 23): what the adaptive budget found the
//! account's limit to be, how often it backed off, and how many throttling answers its requests met.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::eiam::budget::BudgetRegistry;

/// At most this many accounts get series of their own: a tenant with a thousand AccessKeys of its own cannot make
/// a thousand series (the rest are not exported; `eiam_operator_eiam_budget_accounts` counts them all).
pub const MAX_ACCOUNT_SERIES: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

/// The budget gauges; empty until the controller runs.
#[derive(Debug, Default)]
pub struct BudgetMetrics {
    source: Mutex<Option<Arc<BudgetRegistry>>>,
}

impl BudgetMetrics {
    /// Starts exporting the budgets of `registry`.
    pub fn watch(&self, registry: Arc<BudgetRegistry>) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(registry);
    }
}

impl Collector for BudgetMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(registry) = self
            .source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Ok(());
        };
        let accounts = registry.accounts();
        ConstGauge::new(i64::try_from(accounts.len()).unwrap_or(i64::MAX)).encode(
            encoder.encode_descriptor(
                "eiam_budget_accounts",
                "EIAM accounts (identities) some provider's client uses now, each with one budget",
                None,
                MetricType::Gauge,
            )?,
        )?;
        let shown = &accounts[..accounts.len().min(MAX_ACCOUNT_SERIES)];
        let mut rate = encoder.encode_descriptor(
            "eiam_budget_qps",
            "The rate each EIAM account's adaptive budget allows now, requests per second (it grows while EIAM \
             accepts and drops on throttling)",
            None,
            MetricType::Gauge,
        )?;
        for account in shown {
            let labels = AccountLabels {
                account: account.label().to_owned(),
            };
            ConstGauge::new(account.rate()).encode(rate.encode_family(&labels)?)?;
        }
        let mut backoffs = encoder.encode_descriptor(
            "eiam_budget_backoffs",
            "Times each EIAM account's budget dropped its rate on a throttling answer",
            None,
            MetricType::Counter,
        )?;
        for account in shown {
            let labels = AccountLabels {
                account: account.label().to_owned(),
            };
            ConstCounter::new(account.backoffs()).encode(backoffs.encode_family(&labels)?)?;
        }
        let mut throttled = encoder.encode_descriptor(
            "eiam_budget_throttled",
            "Throttling answers each EIAM account's requests met",
            None,
            MetricType::Counter,
        )?;
        for account in shown {
            let labels = AccountLabels {
                account: account.label().to_owned(),
            };
            ConstCounter::new(account.throttled()).encode(throttled.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
