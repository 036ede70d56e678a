//! The control plane every integration test talks to: a real kube-apiserver with etcd and the garbage-collector,
//! namespace and service-account controllers (tests/testenv, built from the Kubernetes Go modules).
//!
//! `EIAM_TESTENV_KUBECONFIG` names the admin kubeconfig of a control plane that is already running (`make test`
//! starts one for the whole run; developers can keep one up, see README). Without it, the first test of each
//! test binary starts `target/testenv/testenv` (build it with `make testenv`); it stops when the test binary
//! exits, however it exits. Either way `crds/` is server-side applied once per test binary.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};
use serde::Deserialize;

use super::namespace::TestNamespace;
use super::process::{Process, ProcessSpec};

/// Names an already running control plane's admin kubeconfig.
pub const KUBECONFIG_ENV: &str = "EIAM_TESTENV_KUBECONFIG";
/// Overrides the testenv binary the harness starts (default `target/testenv/testenv`).
pub const BINARY_ENV: &str = "EIAM_TESTENV_BIN";
/// The field manager the harness applies with.
pub const FIELD_MANAGER: &str = "eiam-operator-tests";

/// A running control plane.
pub struct ControlPlane {
    /// Admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// Kubeconfig of a static-token user with no RBAC grants (`eiam-test-user`, group `eiam-test-users`), when
    /// known: testenv writes `user.kubeconfig` next to the admin kubeconfig.
    pub user_kubeconfig: Option<PathBuf>,
    /// The API server's `gitVersion`, e.g. `v1.36.3`.
    pub version: String,
    /// The API server URL.
    pub server: String,
    /// Names of the CustomResourceDefinitions applied from `crds/`.
    pub crds: Vec<String>,
    /// The testenv process when this test binary started it. Never dropped: it goes away with the test binary
    /// (its stdin pipe closes and its parent disappears).
    process: Option<Mutex<Process>>,
}

/// The shared control plane, started (or found) and prepared on first use.
pub async fn control_plane() -> &'static ControlPlane {
    static CONTROL_PLANE: tokio::sync::OnceCell<ControlPlane> = tokio::sync::OnceCell::const_new();
    CONTROL_PLANE.get_or_init(ControlPlane::prepare).await
}

/// A control plane of the caller's own, always started fresh (never the one `EIAM_TESTENV_KUBECONFIG` names), for
/// a test that needs a cluster to itself — e.g. an operator watching all namespaces, which must not see the
/// resources of tests running in parallel. Stop it with [`ControlPlane::stop`] (it also dies with the test binary).
pub async fn private_control_plane() -> ControlPlane {
    eiam_operator::eiam::install_crypto_provider();
    let (kubeconfig, process) = start_testenv().await;
    ControlPlane::ready(kubeconfig, Some(Mutex::new(process))).await
}

impl ControlPlane {
    async fn prepare() -> Self {
        eiam_operator::eiam::install_crypto_provider();
        let (kubeconfig, process) = match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty())
        {
            Some(path) => (PathBuf::from(path), None),
            None => {
                let (kubeconfig, process) = start_testenv().await;
                (kubeconfig, Some(Mutex::new(process)))
            }
        };
        Self::ready(kubeconfig, process).await
    }

    /// Checks that the control plane answers and applies the CRDs.
    async fn ready(kubeconfig: PathBuf, process: Option<Mutex<Process>>) -> Self {
        let user_kubeconfig = kubeconfig
            .parent()
            .map(|dir| dir.join("user.kubeconfig"))
            .filter(|p| p.exists());
        let client = client_from(&kubeconfig).await;
        let info = client.apiserver_version().await.unwrap_or_else(|e| {
            panic!(
                "the control plane of {} does not answer: {e}",
                kubeconfig.display()
            )
        });
        let server = Kubeconfig::read_from(&kubeconfig)
            .ok()
            .and_then(|kc| kc.clusters.into_iter().next())
            .and_then(|c| c.cluster)
            .and_then(|c| c.server)
            .unwrap_or_default();
        let crds = apply_crds(&client, &crd_dir()).await;
        eprintln!(
            "control plane: kube-apiserver {} at {server} ({}), CRDs: {}",
            info.git_version,
            if process.is_some() {
                "started by this test binary"
            } else {
                "from EIAM_TESTENV_KUBECONFIG"
            },
            crds.join(", ")
        );
        Self {
            kubeconfig,
            user_kubeconfig,
            version: info.git_version,
            server,
            crds,
            process,
        }
    }

    /// A client acting as the cluster admin. Make one per test: a client belongs to the runtime it was made in.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A client acting as the static-token user, who may do nothing RBAC does not grant.
    pub async fn user_client(&self) -> Client {
        let path = self.user_kubeconfig.as_ref().unwrap_or_else(|| {
            panic!(
                "no user.kubeconfig next to {}: start the control plane with target/testenv/testenv",
                self.kubeconfig.display()
            )
        });
        client_from(path).await
    }

    /// A fresh namespace for one test, deleted when the returned guard drops.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        TestNamespace::create(self, prefix).await
    }

    /// Stops the control plane if this test binary started it (SIGTERM, so it removes its data directory).
    pub fn stop(&self) {
        if let Some(process) = &self.process {
            let mut process = process.lock().unwrap_or_else(|e| e.into_inner());
            process.close_stdin();
            process.signal(libc::SIGTERM);
        }
    }

    /// The testenv process's output, when this test binary started it.
    pub fn testenv_output(&self) -> Option<String> {
        self.process
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).output())
    }
}

/// Starts target/testenv/testenv for this test binary and waits until it is ready.
async fn start_testenv() -> (PathBuf, Process) {
    let binary = std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/testenv/testenv"));
    if !binary.exists() {
        panic!(
            "{} does not exist: run `make testenv` (needs Go 1.26), or set {KUBECONFIG_ENV} to a running control plane",
            binary.display()
        );
    }
    prune_old_runs(Path::new(env!("CARGO_TARGET_TMPDIR")), "testenv-");
    let out_dir = tempfile::Builder::new()
        .prefix("testenv-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create the control plane's output directory")
        .keep();
    let mut process = ProcessSpec::new("testenv", &binary)
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--crds")
        .arg(crd_dir())
        .arg("--log-file")
        .arg(out_dir.join("control-plane.log"))
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .arg("--exit-on-stdin-close")
        .pipe_stdin()
        // SIGTERM, not SIGKILL, so it removes its data directory on the way out.
        .parent_death_signal(libc::SIGTERM)
        .spawn();
    let ready = process
        .wait_for_line("testenv ready", Duration::from_secs(120))
        .await;
    eprintln!("{ready}");
    (out_dir.join("kubeconfig"), process)
}

/// A client for `kubeconfig`.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("load kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("build a kube client")
}

/// Server-side applies every CustomResourceDefinition in `dir/*.yaml` and waits until each is Established.
pub async fn apply_crds(client: &Client, dir: &Path) -> Vec<String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for document in serde_yaml::Deserializer::from_str(&text) {
            let crd = CustomResourceDefinition::deserialize(document).unwrap_or_else(|e| {
                panic!("{} is not a CustomResourceDefinition: {e}", file.display())
            });
            let name = crd.metadata.name.clone().expect("CRD without a name");
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {name} from {}: {e}", file.display()));
            names.push(name);
        }
    }
    for name in &names {
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .unwrap_or_else(|e| panic!("watch CRD {name}: {e}"));
    }
    names
}

/// The repository root.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `crds/`, generated by `make crds`.
pub fn crd_dir() -> PathBuf {
    manifest_dir().join("crds")
}

/// Removes `dir/PREFIX*` entries untouched for a day: old runs' control-plane logs, kept that long for post-mortems.
pub fn prune_old_runs(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old && entry.file_name().to_string_lossy().starts_with(prefix) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
