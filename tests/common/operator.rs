//! The real `eiam-operator` binary, started the way a user starts it: flags (`--namespace`, `--default-endpoint`,
//! `--resync-interval`, ...), the default provider's AccessKey in `ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET`, and
//! `KUBECONFIG` pointing at the test control plane. Logs are JSON lines, captured for assertions and leak scans.
//!
//! Give every test its own namespace and `--namespace`, so operators of tests running in parallel never see each
//! other's resources.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::process::{Process, ProcessSpec};

/// Environment variables of the operator (and of the Alibaba Cloud credential chain, and the pod identity the
/// leader election reads) that must not leak in from the environment of whoever runs the tests.
pub const INHERITED_ENV_TO_DROP: &[&str] = &[
    "POD_NAME",
    "POD_NAMESPACE",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_ROLE_SESSION_NAME",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
    "ALIBABA_CLOUD_STS_REGION",
    "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED",
    "EIAM_OPERATOR_NAMESPACE",
    "EIAM_OPERATOR_RESYNC_INTERVAL",
    "EIAM_OPERATOR_CONCURRENCY",
    "EIAM_OPERATOR_DEFAULT_REGION",
    "EIAM_OPERATOR_DEFAULT_ENDPOINT",
    "EIAM_OPERATOR_DEFAULT_SIGNATURE_VERSION",
    "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_NAMESPACES",
    "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_APPLICATIONS",
    "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOW_IMPORT",
    "EIAM_OPERATOR_NAMESPACED_PROVIDERS_AMBIENT_CREDENTIALS",
    "EIAM_OPERATOR_LOG_FORMAT",
    "EIAM_OPERATOR_FAILPOINT",
    "EIAM_OPERATOR_METRICS_ADDR",
    "EIAM_OPERATOR_HEALTH_ADDR",
    "EIAM_OPERATOR_LEADER_ELECTION",
    "EIAM_OPERATOR_LEADER_ELECTION_NAMESPACE",
    "EIAM_OPERATOR_LEADER_ELECTION_LEASE_NAME",
    "EIAM_OPERATOR_LEADER_ELECTION_LEASE_DURATION",
    "EIAM_OPERATOR_SHUTDOWN_TIMEOUT",
];

/// How to start one operator process.
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    kubeconfig: PathBuf,
    namespace: Option<String>,
    default_endpoint: Option<String>,
    access_key: Option<(String, String)>,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    rust_log: String,
    /// Elect a leader on a Lease in the watched namespace, valid this long (`None`: `--leader-election=false`).
    leader_election: Option<String>,
}

impl OperatorSpec {
    /// An operator for the control plane whose admin kubeconfig is `kubeconfig`, watching all namespaces until
    /// [`OperatorSpec::namespace`] narrows it.
    pub fn new(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: kubeconfig.to_owned(),
            namespace: None,
            default_endpoint: None,
            access_key: None,
            args: Vec::new(),
            env: Vec::new(),
            rust_log: "info,eiam_operator=debug".to_owned(),
            leader_election: None,
        }
    }

    /// `--namespace NS`: watch only this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// `--default-endpoint URL`: the default provider's EIAM endpoint.
    pub fn default_endpoint(mut self, url: &str) -> Self {
        self.default_endpoint = Some(url.to_owned());
        self
    }

    /// Grants the default provider to `namespace` (`*`: every namespace) for every application, as a cluster admin
    /// would for a trusted team: `--default-provider-allowed-namespaces NS --default-provider-allowed-applications
    /// '*/*'`. Without a grant the default provider serves nobody.
    pub fn grant_default_provider(self, namespace: &str) -> Self {
        self.arg("--default-provider-allowed-namespaces")
            .arg(namespace)
            .arg("--default-provider-allowed-applications")
            .arg("*/*")
    }

    /// The default provider's AccessKey, in `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET`.
    pub fn access_key(mut self, id: &str, secret: &str) -> Self {
        self.access_key = Some((id.to_owned(), secret.to_owned()));
        self
    }

    /// Any other flag, e.g. `--resync-interval`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// An extra environment variable, e.g. `EIAM_OPERATOR_FAILPOINT`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs with leader election on a Lease in the watched namespace valid for `lease_duration` (e.g. `4s`), so
    /// that several such operators elect one leader among them (the default is no election: one operator per
    /// test).
    pub fn leader_election(mut self, lease_duration: &str) -> Self {
        self.leader_election = Some(lease_duration.to_owned());
        self
    }

    /// `RUST_LOG` (default `info,eiam_operator=debug`).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_owned();
        self
    }

    /// Starts the operator and waits until it has started its controller.
    pub async fn start(&self) -> Operator {
        let mut spec = ProcessSpec::new("eiam-operator", env!("CARGO_BIN_EXE_eiam-operator"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", &self.rust_log)
            .arg("--log-format")
            .arg("json")
            // Tests run many operators side by side: free ports, and no shared leader Lease (each test's
            // operator is the only one for its namespace).
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--health-addr",
                "127.0.0.1:0",
            ]);
        spec = match &self.leader_election {
            None => spec.arg("--leader-election=false"),
            Some(lease_duration) => spec
                .arg("--leader-election=true")
                .arg("--leader-election-lease-duration")
                .arg(lease_duration)
                .arg("--leader-election-namespace")
                .arg(self.namespace.as_deref().unwrap_or("default")),
        };
        for key in INHERITED_ENV_TO_DROP {
            spec = spec.env_remove(key);
        }
        // No instance metadata service in tests: the credential chain must not wait for one.
        spec = spec.env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
        if let Some(namespace) = &self.namespace {
            spec = spec.arg("--namespace").arg(namespace);
        }
        if let Some(url) = &self.default_endpoint {
            spec = spec.arg("--default-endpoint").arg(url);
        }
        if let Some((id, secret)) = &self.access_key {
            spec = spec
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", id)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret);
        }
        for (key, value) in &self.env {
            spec = spec.env(key, value);
        }
        spec = spec.args(&self.args);
        let mut process = spec.spawn();
        process
            .wait_for_line("eiam-operator starting", Duration::from_secs(30))
            .await;
        Operator { process }
    }
}

/// A running operator. Dropping it kills it.
pub struct Operator {
    process: Process,
}

impl Operator {
    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Everything it printed (JSON log lines, plus anything else on stdout/stderr).
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// A scrape of its `/metrics`, at the address it logged when it started serving them.
    pub async fn scrape(&self) -> String {
        let addr = self
            .records_with("serving metrics", None)
            .first()
            .and_then(|record| record["fields"]["addr"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no metrics address logged:\n{}", self.output()));
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("the body of /metrics: {e}"))
    }

    /// The API-server requests it sent with `method` (`GET`, `WATCH`, `PATCH`, ...), from its own counter.
    pub async fn kube_requests(&self, method: &str) -> f64 {
        let prefix = format!("eiam_operator_kube_requests_total{{method=\"{method}\",");
        self.scrape()
            .await
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| line.rsplit_once(' '))
            .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
            .sum()
    }

    /// Its log lines that parse as JSON.
    pub fn log_records(&self) -> Vec<Value> {
        self.output()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Log records whose message is `message` and, if given, that are about the resource `name` (the reconcile
    /// span's or the record's own `resource` field).
    pub fn records_with(&self, message: &str, name: Option<&str>) -> Vec<Value> {
        self.log_records()
            .into_iter()
            .filter(|r| r["fields"]["message"] == message)
            .filter(|r| {
                name.is_none_or(|n| r["span"]["resource"] == n || r["fields"]["resource"] == n)
            })
            .collect()
    }

    /// Waits until the process exits on its own; returns how it exited.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.process.try_wait() {
                return status;
            }
            if start.elapsed() >= timeout {
                panic!(
                    "the operator did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
