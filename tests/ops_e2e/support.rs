//! What the operations tests share: an in-process fake EIAM, the real operator binary started with its
//! operations flags (metrics and probes on port 0, leader election in the test's namespace), its JSON log records,
//! HTTP reads of its endpoints, Prometheus text parsing, and `promtool`.

use std::path::PathBuf;
use std::time::Duration;

use eiam_operator::api::{ANNOTATION_ROTATE, ApplicationClientSecret};
use eiam_operator::fake::{FakeConfig, FakeEiam, FakeHandle};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::common::operator::INHERITED_ENV_TO_DROP;
use crate::common::{ControlPlane, Process, ProcessSpec, wait_until};

/// The default provider's AccessKey, known to the fake.
pub const ACCESS_KEY_ID: &str = "LTAI5tOpsTestKey";
pub const ACCESS_KEY_SECRET: &str = "ops-test-AccessKeySecret-9f3c1a";
pub const INSTANCE: &str = "idaas_ops";
pub const APPLICATION: &str = "app_ops";
/// A second application, for a second resource (one resource per application).
pub const OTHER_APPLICATION: &str = "app_ops_other";

/// A fake EIAM holding two applications, accepting [`ACCESS_KEY_ID`]; `faults` is its initial fault plan.
pub async fn fake(faults: Value) -> FakeHandle {
    eiam_operator::eiam::install_crypto_provider();
    let config: FakeConfig = serde_json::from_value(json!({
        "accessKeys": [{ "id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET }],
        "instances": [{
            "id": INSTANCE,
            "applications": [{ "id": APPLICATION }, { "id": OTHER_APPLICATION }],
        }],
    }))
    .expect("fake configuration");
    let fake = FakeEiam::start(config).await.expect("start the fake EIAM");
    fake.set_faults(serde_json::from_value(json!({ "rules": faults })).expect("fault plan"))
        .expect("the fake accepts the fault plan");
    fake
}

/// How to start one operator process for a test namespace.
pub struct OperatorSpec {
    name: String,
    args: Vec<String>,
    kubeconfig: PathBuf,
}

impl OperatorSpec {
    /// Watches `namespace`, uses the fake at `fake_url` as its default provider, serves metrics and probes on free
    /// loopback ports, and elects its leader on a Lease in `namespace` (so parallel tests never compete).
    pub fn new(cp: &ControlPlane, namespace: &str, fake_url: &str) -> Self {
        Self {
            name: "eiam-operator".to_owned(),
            kubeconfig: cp.kubeconfig.clone(),
            args: [
                "--namespace",
                namespace,
                "--default-endpoint",
                fake_url,
                "--default-provider-allowed-namespaces",
                namespace,
                "--default-provider-allowed-applications",
                "*/*",
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
                "--leader-election-namespace",
                namespace,
                "--log-format",
                "json",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    /// Labels the process's captured output (`operator-a`, `operator-b`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// `--metrics-addr ADDR` instead of a loopback port (a non-loopback address serves HTTPS with token review).
    pub fn metrics_on(mut self, addr: &str) -> Self {
        if let Some(at) = self.args.iter().position(|arg| arg == "--metrics-addr") {
            self.args[at + 1] = addr.to_owned();
        }
        self
    }

    /// Any other flag.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Starts the operator and waits until its endpoints listen.
    pub async fn start(self) -> Operator {
        let mut spec = ProcessSpec::new(&self.name, env!("CARGO_BIN_EXE_eiam-operator"))
            .env("KUBECONFIG", &self.kubeconfig)
            // `EIAM_TEST_OPERATOR_LOG` overrides the filter, e.g. `info,eiam_operator::metrics::kube=trace` to log
            // every API request when a bench count needs explaining.
            .env(
                "RUST_LOG",
                std::env::var("EIAM_TEST_OPERATOR_LOG")
                    .unwrap_or_else(|_| "info,eiam_operator=debug".to_owned()),
            )
            .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
        for key in INHERITED_ENV_TO_DROP {
            spec = spec.env_remove(key);
        }
        spec = spec
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .args(&self.args);
        let mut process = spec.spawn();
        let metrics = address(
            &process
                .wait_for_line("serving metrics", Duration::from_secs(30))
                .await,
        );
        let health = address(
            &process
                .wait_for_line("serving health probes", Duration::from_secs(30))
                .await,
        );
        eiam_operator::eiam::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A secure /metrics serves a self-signed certificate; what is tested there is the token review.
            .tls_danger_accept_invalid_certs(true)
            .build()
            .expect("HTTP client");
        Operator {
            process,
            metrics,
            health,
            http,
        }
    }
}

/// The URL of the `addr` (and `scheme`) fields of a JSON log line.
fn address(line: &str) -> String {
    let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let addr = record["fields"]["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no addr in {line}"));
    let scheme = record["fields"]["scheme"].as_str().unwrap_or("http");
    format!("{scheme}://{addr}")
}

/// A running operator; dropping it kills it.
pub struct Operator {
    pub process: Process,
    /// `http://127.0.0.1:PORT` of `/metrics`.
    pub metrics: String,
    /// `http://127.0.0.1:PORT` of `/healthz` and `/readyz`.
    pub health: String,
    http: reqwest::Client,
}

impl Operator {
    /// Its JSON log records so far.
    pub fn records(&self) -> Vec<Value> {
        self.process
            .output()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Records whose message is `message`.
    pub fn records_with(&self, message: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["fields"]["message"] == message)
            .collect()
    }

    /// The Lease identity it logged when it started competing.
    pub fn identity(&self) -> String {
        self.records_with("standing by for the leader Lease")
            .first()
            .and_then(|r| r["fields"]["identity"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no identity logged:\n{}", self.process.output()))
    }

    /// Log records written inside a reconcile span.
    pub fn reconcile_records(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["span"]["name"] == "reconcile")
            .collect()
    }

    /// Status code and body of `GET {health}{path}`.
    pub async fn probe(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.health))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// A scrape in the Prometheus text format (what `promtool check metrics` reads).
    pub async fn scrape(&self) -> String {
        self.scrape_as(None).await.1
    }

    /// A scrape with an `Accept` header; returns the `Content-Type` and the body.
    pub async fn scrape_as(&self, accept: Option<&str>) -> (String, String) {
        let mut request = self.http.get(format!("{}/metrics", self.metrics));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.expect("scrape /metrics");
        assert_eq!(response.status().as_u16(), 200, "GET /metrics");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (content_type, response.text().await.expect("metrics body"))
    }
}

/// The value of the sample `series` (name plus labels exactly as exposed, e.g. `x_total{a="b"}`), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// An `ApplicationClientSecret` for the fake's [`APPLICATION`].
pub async fn create_resource(client: &Client, namespace: &str, name: &str) {
    create_resource_for(client, namespace, name, APPLICATION).await;
}

/// An `ApplicationClientSecret` for one of the fake's applications.
pub async fn create_resource_for(client: &Client, namespace: &str, name: &str, application: &str) {
    let resource: ApplicationClientSecret = serde_json::from_value(json!({
        "apiVersion": "eiam-operator.io/v1alpha1",
        "kind": "ApplicationClientSecret",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "instanceId": INSTANCE,
            "applicationId": application,
            "expiresAfter": "48h",
            "renewBefore": "24h",
            "rotation": { "gracePeriod": "1h" },
        }
    }))
    .expect("resource");
    Api::<ApplicationClientSecret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &resource)
        .await
        .unwrap_or_else(|e| panic!("create ApplicationClientSecret {namespace}/{name}: {e}"));
}

/// The resource as stored.
pub async fn get_resource(client: &Client, namespace: &str, name: &str) -> ApplicationClientSecret {
    Api::<ApplicationClientSecret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get {namespace}/{name}: {e}"))
}

/// Waits until the resource is Ready with a current secret; returns it.
pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> ApplicationClientSecret {
    wait_until(
        format!("{namespace}/{name} to be Ready"),
        timeout,
        || async {
            let resource = get_resource(client, namespace, name).await;
            let status = resource.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (ready && status.current_secret_id.is_some()).then_some(resource)
        },
    )
    .await
}

/// Asks for a rotation now (the `rotate-requested-at` annotation); returns the value written.
pub async fn request_rotation(client: &Client, namespace: &str, name: &str) -> String {
    let value = jiff::Timestamp::now().to_string();
    let patch = json!({ "metadata": { "annotations": { ANNOTATION_ROTATE: value } } });
    Api::<ApplicationClientSecret>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("annotate {namespace}/{name}: {e}"));
    value
}

/// The holder of the leader Lease in `namespace`, if any.
pub async fn lease_holder(client: &Client, namespace: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(eiam_operator::leader::LEASE_NAME)
        .await
        .unwrap_or_else(|e| panic!("get the Lease in {namespace}: {e}"))
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

/// Every client secret value the fake holds now.
pub fn secret_values(fake: &FakeHandle) -> Vec<String> {
    let mut values = Vec::new();
    collect_strings(
        &serde_json::to_value(fake.state()).expect("fake state"),
        "clientSecret",
        &mut values,
    );
    values
}

fn collect_strings(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == key => out.push(s.clone()),
                    other => collect_strings(other, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, key, out)),
        _ => {}
    }
}

/// `promtool`: `$PROMTOOL`, else on `PATH`, else `target/tools/promtool` (`make promtool` provides one).
pub fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMTOOL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/promtool");
    on_path
        .or_else(|| built.is_file().then_some(built))
        .unwrap_or_else(|| {
            panic!("promtool not found (PROMTOOL, PATH, target/tools): run `make promtool`")
        })
}
