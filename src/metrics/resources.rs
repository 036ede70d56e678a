//! Per-resource metrics, labelled only with the resource's `namespace` and `name` (never a secret id or value).
//!
//! Gauges are computed on each scrape from the controller's cache of `ApplicationClientSecret`s, the way
//! kube-state-metrics does: they always match the stored status, a new leader exports them at once, and a deleted
//! resource's series vanish with it. Rotations are counted when a status write replaces the current secret, and
//! forgotten when the resource leaves the cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::{ApplicationClientSecret, ApplicationClientSecretStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ResourceLabels {
    namespace: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    namespace: String,
    name: String,
    condition: &'static str,
}

/// The values of one resource at scrape time.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    labels: ResourceLabels,
    expiration: Option<f64>,
    renewal: Option<f64>,
    previous_last_used: Option<f64>,
    ready: &'static str,
    stalled: &'static str,
    rotations: u64,
}

/// Per-resource series; a [`Collector`] registered in the operator's registry.
#[derive(Debug, Default)]
pub struct ResourceMetrics {
    /// The controller's cache; `None` until this replica runs the controller (a standby exports nothing).
    store: Mutex<Option<Store<ApplicationClientSecret>>>,
    /// Rotations per resource UID since this process started.
    rotations: Mutex<HashMap<String, u64>>,
}

impl ResourceMetrics {
    /// Starts exporting the resources in `store` (called when this replica starts the controller).
    pub fn watch(&self, store: Store<ApplicationClientSecret>) {
        *self.store.lock().unwrap_or_else(PoisonError::into_inner) = Some(store);
    }

    /// Counts a rotation when a status write replaces one current secret with another.
    pub fn status_written(
        &self,
        resource: &ApplicationClientSecret,
        before: Option<&ApplicationClientSecretStatus>,
        after: &ApplicationClientSecretStatus,
    ) {
        let before = before.and_then(|s| s.current_secret_id.as_deref());
        let after = after.current_secret_id.as_deref();
        if let (Some(before), Some(after)) = (before, after)
            && before != after
            && let Some(uid) = resource.uid()
        {
            *self
                .rotations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(uid)
                .or_insert(0) += 1;
        }
    }

    /// One snapshot per cached resource, sorted by namespace and name; forgets rotations of resources gone.
    fn snapshots(&self) -> Vec<Snapshot> {
        let Some(store) = self
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Vec::new();
        };
        let resources = store.state();
        let mut rotations = self
            .rotations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A set, not a scan per entry: with 10,000 resources rotated, a scan made every scrape O(N²).
        let alive: std::collections::HashSet<&str> = resources
            .iter()
            .filter_map(|r| r.metadata.uid.as_deref())
            .collect();
        rotations.retain(|uid, _| alive.contains(uid.as_str()));
        let mut snapshots: Vec<Snapshot> = resources
            .iter()
            .map(|resource| {
                let count = resource
                    .uid()
                    .and_then(|uid| rotations.get(&uid).copied())
                    .unwrap_or(0);
                snapshot(resource, count)
            })
            .collect();
        snapshots.sort_by(|a, b| a.labels.cmp(&b.labels));
        snapshots
    }
}

fn snapshot(resource: &ApplicationClientSecret, rotations: u64) -> Snapshot {
    let status = resource.status.as_ref();
    let seconds =
        |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| -> Option<f64> {
            t.as_ref().map(|t| t.0.as_millisecond() as f64 / 1000.0)
        };
    Snapshot {
        labels: ResourceLabels {
            namespace: resource.namespace().unwrap_or_default(),
            name: resource.name_any(),
        },
        expiration: status.and_then(|s| seconds(&s.not_after)),
        renewal: status.and_then(|s| seconds(&s.renewal_time)),
        previous_last_used: status.and_then(|s| seconds(&s.previous_last_used_time)),
        ready: condition_status(status, "Ready"),
        stalled: condition_status(status, "Stalled"),
        rotations,
    }
}

/// `True`, `False` or `Unknown` (also when the condition is absent or says something else).
fn condition_status(status: Option<&ApplicationClientSecretStatus>, kind: &str) -> &'static str {
    let value = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
        .map(|c| c.status.as_str());
    match value {
        Some("True") => "True",
        Some("False") => "False",
        _ => "Unknown",
    }
}

const CONDITION_VALUES: [&str; 3] = ["True", "False", "Unknown"];

impl Collector for ResourceMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots = self.snapshots();
        encode_gauge(
            &mut encoder,
            "secret_expiration_timestamp_seconds",
            "When the resource's current EIAM client secret expires (status.notAfter), as a UNIX time; absent \
             for a secret that never expires.",
            &snapshots,
            |s| s.expiration,
        )?;
        encode_gauge(
            &mut encoder,
            "secret_renewal_timestamp_seconds",
            "When the operator plans to rotate the resource's secret (status.renewalTime), as a UNIX time.",
            &snapshots,
            |s| s.renewal,
        )?;
        encode_gauge(
            &mut encoder,
            "previous_secret_last_used_timestamp_seconds",
            "When EIAM last saw the resource's previous secret used (status.previousLastUsedTime), as a UNIX \
             time; absent without a previous secret or a recorded use. With spec.rotation.retireWhenUnusedFor the \
             previous secret is retired only once this is old enough.",
            &snapshots,
            |s| s.previous_last_used,
        )?;
        encode_condition(
            &mut encoder,
            "ready_status",
            "The resource's Ready condition: 1 for the label condition (True, False, Unknown) it has, else 0.",
            &snapshots,
            |s| s.ready,
        )?;
        encode_condition(
            &mut encoder,
            "stalled_status",
            "The resource's Stalled condition (needs a human): 1 for the label condition it has, else 0.",
            &snapshots,
            |s| s.stalled,
        )?;
        let mut family = encoder.encode_descriptor(
            "rotations",
            "Times this operator process replaced the resource's current secret with a new one.",
            None,
            MetricType::Counter,
        )?;
        for snapshot in &snapshots {
            ConstCounter::new(snapshot.rotations)
                .encode(family.encode_family(&snapshot.labels)?)?;
        }
        Ok(())
    }
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshots: &[Snapshot],
    value: impl Fn(&Snapshot) -> Option<f64>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for snapshot in snapshots {
        if let Some(value) = value(snapshot) {
            ConstGauge::new(value).encode(family.encode_family(&snapshot.labels)?)?;
        }
    }
    Ok(())
}

fn encode_condition(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshots: &[Snapshot],
    value: impl Fn(&Snapshot) -> &'static str,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for snapshot in snapshots {
        let actual = value(snapshot);
        for condition in CONDITION_VALUES {
            let labels = ConditionLabels {
                namespace: snapshot.labels.namespace.clone(),
                name: snapshot.labels.name.clone(),
                condition,
            };
            ConstGauge::new(i64::from(condition == actual))
                .encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;

    fn resource(
        name: &str,
        uid: &str,
        status: Option<ApplicationClientSecretStatus>,
    ) -> ApplicationClientSecret {
        let mut resource: ApplicationClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "eiam-operator.io/v1alpha1",
            "kind": "ApplicationClientSecret",
            "metadata": { "name": name, "namespace": "team-a", "uid": uid },
            "spec": { "instanceId": "idaas_x", "applicationId": "app_x" }
        }))
        .expect("a minimal resource");
        resource.status = status;
        resource
    }

    fn status(secret: &str, ready: &str) -> ApplicationClientSecretStatus {
        ApplicationClientSecretStatus {
            current_secret_id: Some(secret.to_owned()),
            not_after: Some(Time("2030-01-01T00:00:00Z".parse().unwrap())),
            renewal_time: Some(Time("2029-12-01T00:00:00Z".parse().unwrap())),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: "Reconciled".into(),
                message: String::new(),
                last_transition_time: Time("2029-01-01T00:00:00Z".parse().unwrap()),
                observed_generation: None,
            }],
            ..ApplicationClientSecretStatus::default()
        }
    }

    fn scrape(metrics: &Arc<ResourceMetrics>) -> String {
        let mut registry = Registry::with_prefix("eiam_operator");
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn series_follow_the_cache_and_vanish_with_the_resource() {
        let (reader, mut writer) = store::<ApplicationClientSecret>();
        let metrics = Arc::new(ResourceMetrics::default());
        metrics.watch(reader);
        let issued = resource("web", "uid-1", Some(status("sec_1", "True")));
        writer.apply_watcher_event(&Event::Apply(issued.clone()));
        let rotated = status("sec_2", "True");
        metrics.status_written(&issued, issued.status.as_ref(), &rotated);

        let text = scrape(&metrics);
        for expected in [
            "eiam_operator_secret_expiration_timestamp_seconds{namespace=\"team-a\",name=\"web\"} 1893456000",
            "eiam_operator_secret_renewal_timestamp_seconds{namespace=\"team-a\",name=\"web\"} 1890777600",
            "eiam_operator_ready_status{namespace=\"team-a\",name=\"web\",condition=\"True\"} 1",
            "eiam_operator_ready_status{namespace=\"team-a\",name=\"web\",condition=\"False\"} 0",
            "eiam_operator_stalled_status{namespace=\"team-a\",name=\"web\",condition=\"Unknown\"} 1",
            "eiam_operator_rotations_total{namespace=\"team-a\",name=\"web\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
        assert!(
            !text.contains("sec_"),
            "a secret id leaked into a label:\n{text}"
        );

        writer.apply_watcher_event(&Event::Delete(issued));
        let text = scrape(&metrics);
        assert!(
            !text.contains("name=\"web\""),
            "series of a deleted resource remain:\n{text}"
        );
        assert!(metrics.rotations.lock().unwrap().is_empty());
    }

    #[test]
    fn the_first_issue_is_not_a_rotation() {
        let metrics = ResourceMetrics::default();
        let fresh = resource("web", "uid-1", None);
        metrics.status_written(&fresh, None, &status("sec_1", "True"));
        metrics.status_written(
            &fresh,
            Some(&status("sec_1", "False")),
            &status("sec_1", "True"),
        );
        assert!(metrics.rotations.lock().unwrap().is_empty());
    }

    #[test]
    fn a_standby_without_a_cache_exports_no_resources() {
        let metrics = Arc::new(ResourceMetrics::default());
        let text = scrape(&metrics);
        assert!(!text.contains("namespace="), "{text}");
        assert!(
            text.contains("# TYPE eiam_operator_ready_status gauge"),
            "{text}"
        );
    }
}
