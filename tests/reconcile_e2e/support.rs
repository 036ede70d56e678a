//! What every end-to-end test of the reconciler needs: a scenario (namespace, fresh fake EIAM, the real operator
//! binary), typed access to the objects, polling waits, the kstatus reading, recorded object histories, and the
//! leak scan every scenario ends with.
//!
//! Shared by all the test modules; not every module uses every helper.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eiam_operator::api::ApplicationClientSecret;
use eiam_operator::fake::RecordedCall;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::common::fake_eiam::{FakeEiam, FakeSpec, full_action};
use crate::common::operator::{Operator, OperatorSpec};
use crate::common::{ControlPlane, TestNamespace, control_plane, wait_until};

/// The EIAM instance every scenario's applications live in.
pub const INSTANCE: &str = "idaas_e2einstance";
/// The operator's own AccessKey (the default provider's), accepted by every scenario's fake.
pub const AK_ID: &str = "LTAI5tE2eOperatorKey";
pub const AK_SECRET: &str = "e2e-operator-access-key-secret";

/// How long a resource may take to get somewhere it should get "within seconds" on a shared 2-core machine.
pub const SOON: Duration = Duration::from_secs(45);

/// One end-to-end scenario: a namespace of its own, a fresh fake EIAM, and the operators it started (all kept, so
/// their logs can be scanned after a restart).
pub struct Scenario {
    pub name: String,
    pub cp: &'static ControlPlane,
    pub client: Client,
    pub ns: TestNamespace,
    pub fake: FakeEiam,
    pub operators: Vec<Operator>,
    /// Extra texts (status, events) gathered from objects that no longer exist when `finish` runs.
    pub scanned_later: Vec<String>,
    /// Secret values from other fakes the scenario used, scanned for as well.
    pub extra_values: BTreeSet<String>,
    started: Instant,
}

impl Scenario {
    /// A namespace and a fake EIAM holding `applications` in [`INSTANCE`] and accepting [`AK_ID`].
    pub async fn new(name: &str, applications: &[&str]) -> Self {
        Self::with_fake(name, applications, FakeSpec::new()).await
    }

    /// Like [`Scenario::new`], with more fake settings (more AccessKeys, flags).
    pub async fn with_fake(name: &str, applications: &[&str], fake: FakeSpec) -> Self {
        let cp = control_plane().await;
        Self::on(cp, name, applications, fake).await
    }

    /// A scenario on a given control plane.
    pub async fn on(
        cp: &'static ControlPlane,
        name: &str,
        applications: &[&str],
        fake: FakeSpec,
    ) -> Self {
        let started = Instant::now();
        let mut fake = fake.access_key(AK_ID, AK_SECRET);
        for application in applications {
            fake = fake.application(INSTANCE, application);
        }
        let fake = fake.start().await;
        let ns = cp.namespace(name).await;
        let client = cp.client().await;
        Self {
            name: name.to_owned(),
            cp,
            client,
            ns,
            fake,
            operators: Vec::new(),
            scanned_later: Vec::new(),
            extra_values: BTreeSet::new(),
            started,
        }
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// The operator as a user would run it for this namespace: `--namespace`, `--default-endpoint` at the fake
    /// and granted to this namespace, the AccessKey in the environment.
    pub fn operator_spec(&self) -> OperatorSpec {
        self.operator_spec_without_grant()
            .grant_default_provider(self.namespace())
    }

    /// [`Scenario::operator_spec`] as installed with no grant: the default provider serves nobody.
    pub fn operator_spec_without_grant(&self) -> OperatorSpec {
        OperatorSpec::new(&self.cp.kubeconfig)
            .namespace(self.namespace())
            .default_endpoint(self.fake.url())
            .access_key(AK_ID, AK_SECRET)
    }

    /// Starts the standard operator.
    pub async fn start_operator(&mut self) {
        let spec = self.operator_spec();
        self.start_operator_with(spec).await;
    }

    pub async fn start_operator_with(&mut self, spec: OperatorSpec) {
        let operator = spec.start().await;
        self.operators.push(operator);
    }

    /// The operator started last.
    pub fn operator(&self) -> &Operator {
        self.operators.last().expect("an operator was started")
    }

    pub fn operator_mut(&mut self) -> &mut Operator {
        self.operators.last_mut().expect("an operator was started")
    }

    pub fn acs_api(&self) -> Api<ApplicationClientSecret> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    pub fn secret_api(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), self.namespace())
    }

    /// Creates an `ApplicationClientSecret` with this spec.
    pub async fn create(&self, name: &str, spec: Value) -> ApplicationClientSecret {
        self.create_with_metadata(name, json!({}), spec).await
    }

    /// Creates an `ApplicationClientSecret` with extra metadata (labels, annotations) and this spec.
    pub async fn create_with_metadata(
        &self,
        name: &str,
        metadata: Value,
        spec: Value,
    ) -> ApplicationClientSecret {
        let mut meta = json!({ "name": name, "namespace": self.namespace() });
        if let (Some(meta), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
            meta.extend(extra.clone());
        }
        let object: ApplicationClientSecret = serde_json::from_value(json!({
            "apiVersion": "eiam-operator.io/v1alpha1",
            "kind": "ApplicationClientSecret",
            "metadata": meta,
            "spec": spec,
        }))
        .expect("a valid ApplicationClientSecret");
        self.acs_api()
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create ApplicationClientSecret {name}: {e}"))
    }

    pub async fn get(&self, name: &str) -> ApplicationClientSecret {
        self.acs_api()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get ApplicationClientSecret {name}: {e}"))
    }

    /// JSON merge patch of an `ApplicationClientSecret` (metadata or spec).
    pub async fn patch(&self, name: &str, patch: Value) -> ApplicationClientSecret {
        self.acs_api()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("patch ApplicationClientSecret {name} with {patch}: {e}"))
    }

    /// Sets `eiam-operator.io/rotate-requested-at`.
    pub async fn request_rotation(&self, name: &str, value: &str) -> ApplicationClientSecret {
        self.patch(
            name,
            json!({ "metadata": { "annotations": { "eiam-operator.io/rotate-requested-at": value } } }),
        )
        .await
    }

    pub async fn delete(&self, name: &str) {
        self.acs_api()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete ApplicationClientSecret {name}: {e}"));
    }

    /// Polls the resource until `accept` returns `Some`.
    pub async fn wait_for<T>(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&ApplicationClientSecret) -> Option<T>,
    ) -> T {
        let api = self.acs_api();
        let description = format!(
            "ApplicationClientSecret {}/{name}: {what}",
            self.namespace()
        );
        let start = Instant::now();
        loop {
            if let Ok(Some(object)) = api.get_opt(name).await
                && let Some(value) = accept(&object)
            {
                return value;
            }
            if start.elapsed() >= timeout {
                let last = api.get_opt(name).await.ok().flatten();
                panic!(
                    "timed out after {timeout:?} waiting for {description}; last seen:\n{}\n--- operator output ---\n{}",
                    last.map(|o| serde_json::to_string_pretty(&o).unwrap_or_default())
                        .unwrap_or_else(|| "(absent)".into()),
                    self.operators
                        .last()
                        .map(|o| tail(&o.output(), 60))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits for `Ready=True` at the current generation (kstatus Current) and returns the object.
    pub async fn wait_ready(&self, name: &str) -> ApplicationClientSecret {
        self.wait_for(name, "Ready=True at its generation", SOON, |o| {
            (kstatus(o) == KStatus::Current).then(|| o.clone())
        })
        .await
    }

    /// Waits for `Stalled=True` with `reason` and returns the object.
    pub async fn wait_stalled(&self, name: &str, reason: &str) -> ApplicationClientSecret {
        self.wait_for(name, &format!("Stalled=True, reason {reason}"), SOON, |o| {
            condition(o, "Stalled")
                .filter(|c| c.status == "True" && c.reason == reason)
                .map(|_| o.clone())
        })
        .await
    }

    /// Waits until the resource no longer exists.
    pub async fn wait_gone(&self, name: &str) {
        let api = self.acs_api();
        wait_until(
            format!(
                "ApplicationClientSecret {}/{name} to be gone",
                self.namespace()
            ),
            SOON,
            || {
                let api = api.clone();
                async move {
                    match api.get_opt(name).await {
                        Ok(None) => Some(()),
                        _ => None,
                    }
                }
            },
        )
        .await;
    }

    /// Waits until the Secret `name` exists and `accept` holds for it.
    pub async fn wait_secret(
        &self,
        name: &str,
        what: &str,
        mut accept: impl FnMut(&Secret) -> bool,
    ) -> Secret {
        let api = self.secret_api();
        let start = Instant::now();
        loop {
            if let Ok(Some(secret)) = api.get_opt(name).await
                && accept(&secret)
            {
                return secret;
            }
            if start.elapsed() >= SOON {
                panic!(
                    "timed out after {SOON:?} waiting for Secret {}/{name}: {what}\n--- operator output ---\n{}",
                    self.namespace(),
                    self.operators
                        .last()
                        .map(|o| tail(&o.output(), 60))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until the operator logged a completed reconcile of `name` that started from the resource's current
    /// resourceVersion (or a later one): whatever the current version asks for has been handled.
    pub async fn wait_reconciled(&self, name: &str) -> ApplicationClientSecret {
        let start = Instant::now();
        loop {
            let object = self.get(name).await;
            let version: u64 = object
                .resource_version()
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            let done = self
                .operator()
                .records_with("reconciled", Some(name))
                .iter()
                .any(|r| {
                    r["fields"]["resource_version"]
                        .as_str()
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|v| v >= version)
                });
            if done {
                // Nothing was written by that reconcile if the version is unchanged; if it changed, go again.
                let again = self.get(name).await;
                if again.resource_version() == object.resource_version() {
                    return again;
                }
            }
            if start.elapsed() >= SOON {
                panic!(
                    "timed out after {SOON:?}: no completed reconcile of {}/{name} at resourceVersion {version}\n--- operator output ---\n{}",
                    self.namespace(),
                    tail(&self.operator().output(), 60)
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until the current operator has completed more than `than` reconciles of `name`.
    pub async fn wait_more_reconciles(&self, name: &str, than: usize) {
        wait_until(
            format!("a reconcile of {name} after the change"),
            SOON,
            || async move { (self.reconciles(name) > than).then_some(()) },
        )
        .await;
    }

    /// How many reconciles of `name` the current operator completed or logged as failed.
    pub fn reconcile_outcomes(&self, name: &str) -> usize {
        self.operator().records_with("reconciled", Some(name)).len()
            + self
                .operator()
                .records_with("reconcile failed", Some(name))
                .len()
    }

    /// Waits until the current operator has completed or failed more than `than` reconciles of `name`.
    pub async fn wait_reconcile_outcomes(&self, name: &str, than: usize) {
        wait_until(
            format!("a completed or failed reconcile of {name}"),
            SOON,
            || async move { (self.reconcile_outcomes(name) > than).then_some(()) },
        )
        .await;
    }

    /// The requeue the current operator logged with its last completed reconcile of `name`, and how long after that
    /// log line the resource's drift-check slot came (`--resync-interval` 1h, phased by the resource's uid).
    pub async fn requeue_and_drift_slot(&self, name: &str) -> (Duration, Duration) {
        let record = self
            .operator()
            .records_with("reconciled", Some(name))
            .pop()
            .unwrap_or_else(|| panic!("no reconcile of {name} was logged"));
        let requeue = Duration::from_millis(
            record["fields"]["requeue_in_ms"]
                .as_u64()
                .expect("requeue_in_ms"),
        );
        let logged: jiff::Timestamp = record["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a timestamp");
        let hour = Duration::from_secs(3600);
        let uid = self.get(name).await.metadata.uid.expect("uid");
        let slot = eiam_operator::reconcile::watch::drift::next_slot(
            logged,
            eiam_operator::reconcile::watch::drift::phase(&uid, hour),
            hour,
        );
        let until_slot = Duration::try_from(logged.duration_until(slot)).expect("ahead");
        (requeue, until_slot)
    }

    /// How many completed reconciles of `name` the current operator logged.
    pub fn reconciles(&self, name: &str) -> usize {
        self.operator().records_with("reconciled", Some(name)).len()
    }

    /// The events.k8s.io/v1 Events about the resource `name`, oldest first.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("ApplicationClientSecret")
                        && r.name.as_deref() == Some(name)
                })
            })
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        events
    }

    /// Waits for an Event of `type_` and `reason` about `name`.
    pub async fn wait_event(&self, name: &str, type_: &str, reason: &str) -> Event {
        let start = Instant::now();
        loop {
            if let Some(event) =
                self.events(name).await.into_iter().find(|e| {
                    e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason)
                })
            {
                return event;
            }
            if start.elapsed() >= SOON {
                let seen: Vec<String> =
                    self.events(name).await.iter().map(describe_event).collect();
                panic!(
                    "timed out after {SOON:?} waiting for a {type_} event {reason} about {}/{name}; events: {seen:#?}",
                    self.namespace()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Events about `name` with this reason, counting a series as its `count`.
    pub async fn event_count(&self, name: &str, type_: &str, reason: &str) -> i32 {
        self.events(name)
            .await
            .iter()
            .filter(|e| e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
            .sum()
    }

    /// The fake's calls of one action (`List`, `Create`, ...).
    pub async fn calls_of(&self, action: &str) -> Vec<RecordedCall> {
        let full = full_action(action);
        self.fake
            .calls()
            .await
            .into_iter()
            .filter(|c| c.action == full)
            .collect()
    }

    /// Ends the scenario: scans every log, Event and status it produced for every secret value the fake held.
    pub async fn finish(self) {
        let mut values = self.fake.every_value_held().await;
        values.extend(self.extra_values.iter().cloned());
        let mut texts: Vec<(String, String)> = Vec::new();
        for (index, operator) in self.operators.iter().enumerate() {
            texts.push((format!("operator #{index} output"), operator.output()));
        }
        let events = self
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .expect("list events");
        for event in &events.items {
            texts.push((
                format!("Event {}", event.name_any()),
                serde_json::to_string(event).unwrap_or_default(),
            ));
        }
        let core_events = self
            .api::<k8s_openapi::api::core::v1::Event>()
            .list(&ListParams::default())
            .await
            .expect("list core events");
        for event in &core_events.items {
            texts.push((
                format!("core Event {}", event.name_any()),
                serde_json::to_string(event).unwrap_or_default(),
            ));
        }
        let resources = self
            .acs_api()
            .list(&ListParams::default())
            .await
            .expect("list ApplicationClientSecrets");
        for resource in &resources.items {
            texts.push((
                format!("ApplicationClientSecret {}", resource.name_any()),
                serde_json::to_string(resource).unwrap_or_default(),
            ));
        }
        for (index, text) in self.scanned_later.iter().enumerate() {
            texts.push((format!("recorded object #{index}"), text.clone()));
        }
        let leaks = scan_for_values(&values, &texts);
        assert!(
            leaks.is_empty(),
            "{}: secret values leaked into: {leaks:#?}",
            self.name
        );
        eprintln!(
            "[{}] leak scan clean: {} secret values checked against {} operator log lines, {} events, {} resources ({:.1}s)",
            self.name,
            values.len(),
            self.operators
                .iter()
                .map(|o| o.output().lines().count())
                .sum::<usize>(),
            events.items.len() + core_events.items.len(),
            resources.items.len() + self.scanned_later.len(),
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Where each value occurs, as `(value prefix, place)`; never the whole value (the report is printed).
pub fn scan_for_values(values: &BTreeSet<String>, texts: &[(String, String)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for value in values {
        for (place, text) in texts {
            if text.contains(value.as_str()) {
                leaks.push(format!(
                    "value {}… in {place}",
                    value.chars().take(4).collect::<String>()
                ));
            }
        }
    }
    leaks
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn describe_event(e: &Event) -> String {
    format!(
        "{} {} (x{}): {}",
        e.type_.as_deref().unwrap_or(""),
        e.reason.as_deref().unwrap_or(""),
        e.series.as_ref().map(|s| s.count).unwrap_or(1),
        e.note.as_deref().unwrap_or("")
    )
}

/// A condition of the resource's status.
pub fn condition<'a>(object: &'a ApplicationClientSecret, type_: &str) -> Option<&'a Condition> {
    object
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// `status` of a condition, `""` when absent.
pub fn condition_status(object: &ApplicationClientSecret, type_: &str) -> String {
    condition(object, type_)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// What kstatus (Flux, `kubectl wait`, Argo CD's health) reads from a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KStatus {
    Terminating,
    InProgress,
    Failed,
    Current,
}

/// kstatus' rules, in its order: being deleted → Terminating; observedGeneration behind → InProgress;
/// `Reconciling=True` → InProgress; `Stalled=True` → Failed; `Ready=True` → Current; else InProgress.
pub fn kstatus(object: &ApplicationClientSecret) -> KStatus {
    if object.metadata.deletion_timestamp.is_some() {
        return KStatus::Terminating;
    }
    let Some(status) = &object.status else {
        return KStatus::InProgress;
    };
    if status.observed_generation != object.metadata.generation {
        return KStatus::InProgress;
    }
    if condition_status(object, "Reconciling") == "True" {
        return KStatus::InProgress;
    }
    if condition_status(object, "Stalled") == "True" {
        return KStatus::Failed;
    }
    if condition_status(object, "Ready") == "True" {
        return KStatus::Current;
    }
    KStatus::InProgress
}

/// Every version of one object, as a watch delivers them, recorded in the background.
pub struct History<K> {
    items: Arc<Mutex<Vec<K>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> History<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default,
{
    /// Starts recording the object `name` of `api` (including versions before it exists: none).
    pub async fn record(api: Api<K>, name: &str) -> Self {
        let items = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&items);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        sink.lock().unwrap_or_else(|e| e.into_inner()).push(object);
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), ready_rx).await;
        Self { items, task }
    }

    /// The versions seen so far, oldest first.
    pub fn versions(&self) -> Vec<K> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl<K> Drop for History<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Secret's data value as text.
pub fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// A Secret's annotation.
pub fn annotation(secret: &Secret, key: &str) -> String {
    secret.annotations().get(key).cloned().unwrap_or_default()
}

/// The time of a recorded call.
pub fn call_time(call: &RecordedCall) -> jiff::Timestamp {
    call.time
        .parse()
        .unwrap_or_else(|e| panic!("call time {:?}: {e}", call.time))
}

/// The current secret id in status.
pub fn current_id(object: &ApplicationClientSecret) -> Option<String> {
    object.status.as_ref()?.current_secret_id.clone()
}

/// The previous secret id in status.
pub fn previous_id(object: &ApplicationClientSecret) -> Option<String> {
    object.status.as_ref()?.previous_secret_id.clone()
}
