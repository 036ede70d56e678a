//! Each EIAM account budget's current rate, read at every scrape (issue 23): what the adaptive budget found the
//! account's limit to be, how often it backed off, and how many throttling answers its requests met.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::eiam::budget::{AccountBudget, BudgetRegistry};

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
        let per_account =
            |encoder: &mut DescriptorEncoder,
             name: &str,
             help: &str,
             metric_type: MetricType,
             encode: &dyn Fn(&AccountBudget, MetricEncoder<'_>) -> Result<(), std::fmt::Error>|
             -> Result<(), std::fmt::Error> {
                let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
                for account in shown {
                    let labels = AccountLabels {
                        account: account.label().to_owned(),
                    };
                    encode(account, family.encode_family(&labels)?)?;
                }
                Ok(())
            };
        per_account(
            &mut encoder,
            "eiam_budget_qps",
            "The rate each EIAM account's adaptive budget allows now, requests per second (it grows while EIAM \
             accepts and drops on throttling)",
            MetricType::Gauge,
            &|account, metric| ConstGauge::new(account.rate()).encode(metric),
        )?;
        per_account(
            &mut encoder,
            "eiam_budget_backoffs",
            "Times each EIAM account's budget dropped its rate on a throttling answer",
            MetricType::Counter,
            &|account, metric| ConstCounter::new(account.backoffs()).encode(metric),
        )?;
        per_account(
            &mut encoder,
            "eiam_budget_throttled",
            "Throttling answers each EIAM account's requests met",
            MetricType::Counter,
            &|account, metric| ConstCounter::new(account.throttled()).encode(metric),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eiam::budget::Answer;
    use prometheus_client::registry::Registry;

    #[test]
    fn each_account_in_use_has_its_rate_drops_and_throttling_answers() {
        let budgets = Arc::new(BudgetRegistry::new(100.0));
        let metrics = Arc::new(BudgetMetrics::default());
        let mut registry = Registry::with_prefix("eiam_operator");
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoded");
        assert!(
            !text.contains("eiam_budget"),
            "nothing before the controller runs:\n{text}"
        );

        metrics.watch(budgets.clone());
        let budget = budgets.budget_starting_at("key", "accessKey:LTAIa", 20.0, Some(20.0));
        let sent = budget.sent();
        budget.answered(sent, Answer::Throttled);
        let label = budget.account().label().to_owned();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encoded");
        for line in [
            "eiam_operator_eiam_budget_accounts 1".to_owned(),
            // 0.8 × the rate it had: EIAM accepted nothing yet, so nothing tells where its limit is.
            format!("eiam_operator_eiam_budget_qps{{account=\"{label}\"}} 16.0"),
            format!("eiam_operator_eiam_budget_backoffs_total{{account=\"{label}\"}} 1"),
            format!("eiam_operator_eiam_budget_throttled_total{{account=\"{label}\"}} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
