//! A Helm release of the chart in the test control plane, and the operator's ServiceAccount as a kubeconfig.
//! Included by the end-to-end chart tests next to `mod common;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use kube::config::Kubeconfig;
use serde_json::{Value, json};

use crate::helm_support::{self, find, parse_documents, run, run_ok};

/// An installed release. Dropping it uninstalls it (if a test did not already), so cluster-scoped objects
/// (ClusterRole, ClusterRoleBinding, ClusterEiamProvider) never outlive the test that made them.
pub struct Release {
    pub name: String,
    pub namespace: String,
    kubeconfig: PathBuf,
    installed: bool,
}

impl Release {
    /// `helm install NAME charts/eiam-operator -n NAMESPACE` with extra arguments; returns it and helm's output
    /// (stdout with NOTES, then stderr with any API server warnings).
    pub fn install(
        kubeconfig: &Path,
        name: &str,
        namespace: &str,
        extra: &[&str],
    ) -> (Self, String) {
        Self::install_chart(kubeconfig, &helm_support::chart(), name, namespace, extra)
    }

    /// [`Release::install`] of another chart directory, e.g. the previous release's chart in tests/fixtures.
    pub fn install_chart(
        kubeconfig: &Path,
        chart: &Path,
        name: &str,
        namespace: &str,
        extra: &[&str],
    ) -> (Self, String) {
        let mut args = vec![
            "install",
            name,
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        let output = helm(kubeconfig, &args);
        (
            Self {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                kubeconfig: kubeconfig.to_owned(),
                installed: true,
            },
            output,
        )
    }

    /// `helm upgrade` with new values (not reusing the old ones); returns helm's output.
    pub fn upgrade(&self, extra: &[&str]) -> String {
        let chart = helm_support::chart();
        let mut args = vec![
            "upgrade",
            &self.name,
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            &self.namespace,
        ];
        args.extend_from_slice(extra);
        helm(&self.kubeconfig, &args)
    }

    /// `helm uninstall`.
    pub fn uninstall(&mut self) -> String {
        self.installed = false;
        helm(
            &self.kubeconfig,
            &[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
            ],
        )
    }

    /// The objects of the release as Helm recorded them (`helm get manifest`).
    pub fn manifest(&self) -> Vec<Value> {
        parse_documents(&run_ok(
            "helm",
            &[
                "get",
                "manifest",
                &self.name,
                "--namespace",
                &self.namespace,
            ],
            Some(&self.kubeconfig),
        ))
    }

    /// The chart's full name for this release (`RELEASE-eiam-operator`).
    pub fn fullname(&self) -> String {
        if self.name.contains("eiam-operator") {
            self.name.clone()
        } else {
            format!("{}-eiam-operator", self.name)
        }
    }

    /// The environment the chart gives the operator container: literal values only (secretKeyRef and fieldRef
    /// entries are resolved by the kubelet, which the test control plane does not run).
    pub fn operator_env(&self) -> Vec<(String, String)> {
        let manifest = self.manifest();
        let deployment = find(&manifest, "Deployment", &self.fullname(), None);
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .expect("container env")
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let output = run(
                "helm",
                &["uninstall", &self.name, "--namespace", &self.namespace],
                Some(&self.kubeconfig),
            );
            if !output.status.success() {
                eprintln!(
                    "helm uninstall {}: {}",
                    self.name,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

/// Runs helm against the control plane and returns stdout followed by stderr; panics when it fails.
pub fn helm(kubeconfig: &Path, args: &[&str]) -> String {
    let output = run("helm", args, Some(kubeconfig));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "helm {} failed ({}):\n{text}",
        args.join(" "),
        output.status
    );
    text
}

/// A kubeconfig that authenticates as `namespace/service_account` with a token from the TokenRequest API — what
/// the kubelet mounts into the operator's pod — against the same API server as `admin_kubeconfig`.
pub async fn service_account_kubeconfig(
    admin: &kube::Client,
    admin_kubeconfig: &Path,
    namespace: &str,
    service_account: &str,
    out: &Path,
) -> PathBuf {
    let request: TokenRequest = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{service_account}: {e}"))
        .status
        .expect("TokenRequest status")
        .token;
    let admin_config = Kubeconfig::read_from(admin_kubeconfig).expect("read the admin kubeconfig");
    let cluster = admin_config
        .clusters
        .first()
        .and_then(|c| c.cluster.clone())
        .expect("a cluster in the admin kubeconfig");
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "testenv", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "operator", "context": { "cluster": "testenv", "user": user } }],
        "current-context": "operator",
    });
    let path = out.join(format!("{service_account}.kubeconfig"));
    std::fs::write(
        &path,
        serde_yaml::to_string(&config).expect("kubeconfig YAML"),
    )
    .expect("write the ServiceAccount kubeconfig");
    path
}

/// A control plane of its own, for a test whose operator watches every namespace: on the shared control plane it
/// would reconcile the resources of every other test running at the same time. Stops when dropped.
pub struct IsolatedControlPlane {
    pub kubeconfig: PathBuf,
    process: crate::common::Process,
    dir: tempfile::TempDir,
}

impl Drop for IsolatedControlPlane {
    fn drop(&mut self) {
        // testenv stops when its stdin closes and then removes its data directory; give it the time to.
        self.process.close_stdin();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.process.try_wait().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl IsolatedControlPlane {
    /// Starts `target/testenv/testenv` with the CRDs of `crds/` installed.
    pub async fn start() -> Self {
        Self::start_with_crds(Some(&helm_support::repo().join("crds"))).await
    }

    /// Starts `target/testenv/testenv` with the CRDs of `crds` installed, or none (for a chart that installs them).
    pub async fn start_with_crds(crds: Option<&Path>) -> Self {
        Self::start_with(crds, &[]).await
    }

    /// Starts `target/testenv/testenv` with the CRDs of `crds/` and a node (`--node`, tests/testenv/node.go):
    /// containerd, the kubelet, kube-proxy and kube-scheduler, with the pause image and `make image`'s image
    /// loaded. Panics, naming the command that provides it, when a piece is missing: a test that needs the node
    /// fails instead of skipping.
    pub async fn start_with_node() -> Self {
        let repo = helm_support::repo();
        let node = repo.join("target/node");
        for (path, make) in [
            (node.join("kubelet"), "make node"),
            (node.join("kube-proxy"), "make node"),
            (node.join("pause.oci.tar"), "make node"),
            (
                repo.join("target/image/eiam-operator.oci.tar"),
                "make image",
            ),
        ] {
            assert!(
                path.exists(),
                "{} does not exist: run `{make}` (`make test` does)",
                path.display()
            );
        }
        let args = [
            "--node".to_owned(),
            "--node-bin".to_owned(),
            node.display().to_string(),
            "--node-image".to_owned(),
            node.join("pause.oci.tar").display().to_string(),
            "--node-image".to_owned(),
            repo.join("target/image/eiam-operator.oci.tar")
                .display()
                .to_string(),
        ];
        Self::start_with(Some(&repo.join("crds")), &args).await
    }

    async fn start_with(crds: Option<&Path>, extra: &[String]) -> Self {
        let binary = helm_support::repo().join("target/testenv/testenv");
        assert!(
            binary.exists(),
            "{} does not exist: run `make testenv`",
            binary.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("isolated-testenv-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a directory for the control plane");
        let mut spec = crate::common::ProcessSpec::new("testenv-isolated", &binary)
            .arg("--out-dir")
            .arg(dir.path());
        if let Some(crds) = crds {
            spec = spec.arg("--crds").arg(crds);
        }
        let mut process = spec
            .arg("--log-file")
            .arg(dir.path().join("control-plane.log"))
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .args(extra)
            .arg("--exit-on-stdin-close")
            .pipe_stdin()
            .parent_death_signal(libc::SIGTERM)
            .spawn();
        process
            .wait_for_line("testenv ready", std::time::Duration::from_secs(120))
            .await;
        Self {
            kubeconfig: dir.path().join("kubeconfig"),
            process,
            dir,
        }
    }

    pub async fn client(&self) -> kube::Client {
        crate::common::control_plane::client_from(&self.kubeconfig).await
    }

    /// What testenv wrote about itself (testenv.json): `server`, `caFile`, `node` (with `--node`) and more.
    pub fn info(&self) -> Value {
        let path = self.dir.path().join("testenv.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).expect("testenv.json is JSON")
    }

    /// The last `lines` lines of each node component's log, for a failure message.
    pub fn node_logs(&self, lines: usize) -> String {
        let dir = self.dir.path().join("node-logs");
        let mut out = String::new();
        for name in ["kubelet", "kube-proxy", "containerd"] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name} (last {lines} lines)\n"));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Creates a namespace (the whole control plane goes away with the test, so no clean-up).
    pub async fn namespace(&self, name: &str) -> String {
        let namespace: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name } })).expect("namespace");
        Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client().await)
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        name.to_owned()
    }
}
