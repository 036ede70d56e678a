//! The `fake-eiam` binary as a test's EIAM: spawned per test on a free port, driven and inspected through its
//! unsigned admin API (`/_fake/...`, see README "The fake EIAM"), and read with a real signed `Obtain` when a test
//! compares what the operator published with what EIAM holds.
//!
//! A background task polls `/_fake/state` and remembers every `ClientSecret` the fake ever held, including the
//! ones the operator deleted a moment later: the leak scans need every value that existed, not only the last ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eiam_operator::eiam::credentials::StaticProvider;
use eiam_operator::eiam::{ClientConfig, EiamClient, Endpoint, SignatureVersion};
use eiam_operator::fake::RecordedCall;
use serde_json::{Value, json};

use super::process::{Process, ProcessSpec};

/// How a test's fake EIAM starts: AccessKeys it accepts and applications it holds.
#[derive(Debug, Clone, Default)]
pub struct FakeSpec {
    access_keys: Vec<(String, String)>,
    applications: Vec<(String, String)>,
    args: Vec<String>,
    /// A CA (PEM) the test's own client trusts, for a fake serving HTTPS with a private certificate.
    trusted_ca: Option<String>,
}

impl FakeSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept this AccessKey pair.
    pub fn access_key(mut self, id: &str, secret: &str) -> Self {
        self.access_keys.push((id.to_owned(), secret.to_owned()));
        self
    }

    /// Hold this application (its ClientId is the application id).
    pub fn application(mut self, instance_id: &str, application_id: &str) -> Self {
        self.applications
            .push((instance_id.to_owned(), application_id.to_owned()));
        self
    }

    /// Any other `fake-eiam` flag.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Serve HTTPS with this certificate and key, and trust `ca_pem` (their CA) in the test's own client.
    pub fn tls(mut self, cert: &std::path::Path, key: &std::path::Path, ca_pem: &str) -> Self {
        self.args.extend([
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ]);
        self.trusted_ca = Some(ca_pem.to_owned());
        self
    }

    /// Starts the fake and waits until it listens.
    pub async fn start(self) -> FakeEiam {
        eiam_operator::eiam::install_crypto_provider();
        let mut spec = ProcessSpec::new("fake-eiam", env!("CARGO_BIN_EXE_fake-eiam"))
            .env_remove("FAKE_EIAM_ACCESS_KEYS")
            .env_remove("FAKE_EIAM_STS_KEYS")
            .env("RUST_LOG", "info");
        for (id, secret) in &self.access_keys {
            spec = spec.arg("--access-key").arg(format!("{id}:{secret}"));
        }
        for (instance, application) in &self.applications {
            spec = spec
                .arg("--application")
                .arg(format!("{instance}/{application}"));
        }
        spec = spec.args(&self.args);
        let mut process = spec.spawn();
        let line = process
            .wait_for_line("fake-eiam listening on ", Duration::from_secs(30))
            .await;
        let url = line
            .split("fake-eiam listening on ")
            .nth(1)
            .map(|rest| rest.trim().to_owned())
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &self.trusted_ca {
            builder = builder.tls_certs_merge(
                reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("the fake's CA is PEM"),
            );
        }
        let http = builder
            .build()
            .expect("build an HTTP client for the fake's admin API");
        let values = Arc::new(Mutex::new(SeenValues::default()));
        let collector = tokio::spawn(collect(http.clone(), url.clone(), Arc::clone(&values)));
        FakeEiam {
            process,
            url,
            http,
            values,
            collector,
        }
    }
}

/// What the collector saw over the fake's lifetime.
#[derive(Debug, Default)]
struct SeenValues {
    /// Every ClientSecret value the fake held at some poll.
    client_secrets: BTreeSet<String>,
    /// The most secrets any one application held at once, by `instance/application`.
    max_per_application: BTreeMap<String, usize>,
}

impl SeenValues {
    fn absorb(&mut self, state: &Value) {
        for (instance, instance_state) in objects(&state["instances"]) {
            for (application, app_state) in objects(&instance_state["applications"]) {
                let secrets = app_state["secrets"].as_array().cloned().unwrap_or_default();
                let key = format!("{instance}/{application}");
                let max = self.max_per_application.entry(key).or_default();
                *max = (*max).max(secrets.len());
                for secret in secrets {
                    if let Some(value) = secret["clientSecret"].as_str() {
                        self.client_secrets.insert(value.to_owned());
                    }
                }
            }
        }
    }
}

fn objects(value: &Value) -> Vec<(String, Value)> {
    value
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

async fn collect(http: reqwest::Client, url: String, values: Arc<Mutex<SeenValues>>) {
    loop {
        if let Ok(response) = http.get(format!("{url}/_fake/state")).send().await
            && let Ok(state) = response.json::<Value>().await
        {
            values
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .absorb(&state);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One secret as the fake holds it (value in clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSecret {
    pub secret_id: String,
    pub client_secret: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// UNIX ms; `None`: never expires.
    pub expiration_time: Option<i64>,
    /// `api` (minted by a Create) or `admin` (inserted by a test).
    pub created_by: String,
}

/// A running fake EIAM. Dropping it stops the process and the collector.
pub struct FakeEiam {
    process: Process,
    url: String,
    http: reqwest::Client,
    values: Arc<Mutex<SeenValues>>,
    collector: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEiam {
    fn drop(&mut self) {
        self.collector.abort();
    }
}

impl FakeEiam {
    /// `http://127.0.0.1:PORT`: the endpoint for the operator's `--default-endpoint` or a provider's `endpoint`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the fake: {e}"));
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the fake: body is not JSON: {e}"));
        assert!(
            status.is_success(),
            "GET {path} on the fake: {status} {body}"
        );
        body
    }

    /// POSTs to the admin API; panics unless it succeeds. Returns the body (`Null` when empty).
    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_fake/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /_fake/{path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST /_fake/{path} {body}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Every call the fake answered (or dropped), in order.
    pub async fn calls(&self) -> Vec<RecordedCall> {
        serde_json::from_value(self.get("/_fake/calls").await).expect("calls are RecordedCalls")
    }

    /// How many calls of `action` were made (`Create`, `List`, ...: the name without `ApplicationClientSecret(s)`).
    pub async fn count(&self, action: &str) -> usize {
        let full = full_action(action);
        self.calls()
            .await
            .iter()
            .filter(|c| c.action == full)
            .count()
    }

    /// Call counts by short action name, for printing and exact comparisons.
    pub async fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.calls().await {
            *counts.entry(short_action(&call.action)).or_default() += 1;
        }
        counts
    }

    /// The fake's state (`/_fake/state`), values in clear.
    pub async fn state(&self) -> Value {
        let state = self.get("/_fake/state").await;
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .absorb(&state);
        state
    }

    /// The secrets an application holds now.
    pub async fn secrets(&self, instance_id: &str, application_id: &str) -> Vec<HeldSecret> {
        let state = self.state().await;
        let secrets = &state["instances"][instance_id]["applications"][application_id]["secrets"];
        secrets
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| HeldSecret {
                secret_id: s["secretId"].as_str().unwrap_or_default().to_owned(),
                client_secret: s["clientSecret"].as_str().unwrap_or_default().to_owned(),
                status: s["status"].as_str().unwrap_or_default().to_owned(),
                expiration_time: s["expirationTime"].as_i64(),
                created_by: s["createdBy"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Replaces the fault plan (`{"rules": [...]}`; `[]` turns faults off).
    pub async fn set_faults(&self, rules: Value) {
        self.admin("faults", json!({ "rules": rules })).await;
    }

    /// Creates a secret behind the operator's back; `extra` may set `secretId`, `status`, `expirationTime`.
    pub async fn insert_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        extra: Value,
    ) -> HeldSecret {
        let mut body = json!({ "instanceId": instance_id, "applicationId": application_id });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let stored = self.admin("secrets", body).await;
        let secret_id = stored["secretId"].as_str().expect("secretId").to_owned();
        self.secrets(instance_id, application_id)
            .await
            .into_iter()
            .find(|s| s.secret_id == secret_id)
            .expect("the inserted secret is held")
    }

    /// Deletes a secret behind the operator's back.
    pub async fn delete_secret(&self, instance_id: &str, application_id: &str, secret_id: &str) {
        self.admin(
            "secrets/delete",
            json!({ "instanceId": instance_id, "applicationId": application_id, "secretId": secret_id }),
        )
        .await;
    }

    /// Every ClientSecret value the fake held at any time since it started (as far as 100 ms polling can tell,
    /// plus every explicit state read).
    pub async fn every_value_held(&self) -> BTreeSet<String> {
        self.state().await;
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .client_secrets
            .clone()
    }

    /// The most secrets the application ever held at once (polled every 100 ms).
    pub fn max_secrets_held(&self, instance_id: &str, application_id: &str) -> usize {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_per_application
            .get(&format!("{instance_id}/{application_id}"))
            .copied()
            .unwrap_or(0)
    }

    /// A real, signed client for this fake with the given AccessKey (V3, as the SDK signs by default).
    pub fn client(&self, access_key_id: &str, access_key_secret: &str) -> EiamClient {
        let endpoint = Endpoint::parse(&self.url).expect("the fake's URL is a loopback endpoint");
        let mut config = ClientConfig::new(
            endpoint,
            Arc::new(StaticProvider::access_key(
                access_key_id,
                access_key_secret.to_owned(),
            )),
        );
        config.signature_version = SignatureVersion::V3;
        EiamClient::new(config).expect("build an EIAM client for the fake")
    }
}

/// `Create` → `CreateApplicationClientSecret`, `List` → `ListApplicationClientSecrets`; full names pass through.
pub fn full_action(short: &str) -> String {
    match short {
        "List" => "ListApplicationClientSecrets".to_owned(),
        "Create" | "Obtain" | "Enable" | "Disable" | "Delete" => {
            format!("{short}ApplicationClientSecret")
        }
        "UpdateExpirationTime" => "UpdateApplicationClientSecretExpirationTime".to_owned(),
        other => other.to_owned(),
    }
}

/// The inverse of [`full_action`].
pub fn short_action(full: &str) -> String {
    if full == "ListApplicationClientSecrets" {
        return "List".to_owned();
    }
    if full == "UpdateApplicationClientSecretExpirationTime" {
        return "UpdateExpirationTime".to_owned();
    }
    full.strip_suffix("ApplicationClientSecret")
        .unwrap_or(full)
        .to_owned()
}
