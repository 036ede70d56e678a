//! A namespace per test, so tests can run in parallel against one control plane without seeing each other's
//! objects. The namespace is deleted when the guard drops (set `EIAM_TEST_KEEP_NAMESPACES=1` to keep them for
//! debugging); the namespace controller then removes everything in it.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use rand::Rng;

use super::control_plane::{ControlPlane, client_from};

/// Label on every test namespace, to find leftovers: `kubectl get ns -l eiam-operator.io/test`.
pub const TEST_LABEL: &str = "eiam-operator.io/test";

/// A namespace that exists for the duration of one test.
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    pub(super) async fn create(cp: &ControlPlane, prefix: &str) -> Self {
        let suffix: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(6)
            .map(|c| char::from(c).to_ascii_lowercase())
            .collect();
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(50)
            .collect();
        let name = format!("{}-{suffix}", prefix.trim_matches('-'));
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { TEST_LABEL: "true" } }
        }))
        .expect("namespace object");
        Api::<Namespace>::all(cp.client().await)
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        Self {
            name,
            kubeconfig: cp.kubeconfig.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An `Api` for a namespaced kind in this namespace.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("EIAM_TEST_KEEP_NAMESPACES").is_some_and(|v| !v.is_empty()) {
            eprintln!("keeping namespace {}", self.name);
            return;
        }
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        // Drop cannot await, and the test's runtime may be the one dropping us: delete from a thread of its own.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for namespace deletion");
            runtime.block_on(async {
                Api::<Namespace>::all(client_from(&kubeconfig).await)
                    .delete(&name, &DeleteParams::background())
                    .await
                    .map(|_| ())
                    .or_else(|e| match e {
                        // The test deleted it itself.
                        kube::Error::Api(status) if status.code == 404 => Ok(()),
                        e => Err(format!("delete namespace {name}: {e}")),
                    })
            })
        })
        .join();
        if let Ok(Err(e)) = deleted {
            eprintln!("{e}");
        }
    }
}
