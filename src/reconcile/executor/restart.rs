//! Rolling restart of the workloads that consume a secret, the way `kubectl rollout restart` does it.
//!
//! The pod-template annotation carries the id of the secret that was published, not a timestamp: patching the same
//! id twice changes nothing, so a retried reconcile can never roll a workload twice for one rotation.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pod-template annotation that records which EIAM secret a workload was last rolled for.
pub const RESTARTED_FOR_ANNOTATION: &str = "eiam-operator.io/restarted-for-secret-id";

/// A workload kind that can be rolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    /// The resource name RBAC rules use.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
        }
    }
}

/// How long an answer about the operator's own permissions is reused: RBAC changes rarely, and asking once per
/// reconcile would cost an API request per resource.
const PERMISSION_TTL: Duration = Duration::from_secs(300);

/// Whether the operator may patch workloads of a kind in a namespace, asked of the API server
/// (SelfSubjectAccessReview, which every authenticated identity may create) and remembered for a while.
///
/// Rolling a workload is a grant of code execution in its namespace, so the chart gives it only on request
/// (`rbac.restartTargets`); a resource that names restart targets the operator may not patch says so before it
/// mints anything, instead of failing after a rotation with the old secret about to be retired.
#[derive(Default)]
pub struct RestartPermissions {
    answers: Mutex<HashMap<(String, WorkloadKind), (Instant, bool)>>,
}

impl RestartPermissions {
    /// How many answers it remembers (one per namespace and workload kind).
    pub fn len(&self) -> usize {
        self.answers.lock().map(|a| a.len()).unwrap_or_default()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RestartPermissions {
    /// `Some(message)` naming what is missing when any of `kinds` may not be patched in `namespace`. An API server
    /// that cannot answer blocks nothing: the restart itself then reports its error.
    pub async fn denied(
        &self,
        client: &Client,
        namespace: &str,
        kinds: &[WorkloadKind],
    ) -> Option<String> {
        let mut missing = Vec::new();
        for &kind in kinds {
            if missing.contains(&kind.resource()) {
                continue;
            }
            if !self.allowed(client, namespace, kind).await {
                missing.push(kind.resource());
            }
        }
        if missing.is_empty() {
            return None;
        }
        Some(format!(
            "the operator may not patch {} in namespace {namespace}, so it could not roll \
             spec.rotation.restartTargets after a rotation; grant it (Helm value rbac.restartTargets=true, or a \
             Role allowing patch on them for the operator's ServiceAccount) or remove the restart targets",
            missing.join(", ")
        ))
    }

    async fn allowed(&self, client: &Client, namespace: &str, kind: WorkloadKind) -> bool {
        let key = (namespace.to_owned(), kind);
        if let Ok(answers) = self.answers.lock()
            && let Some((at, allowed)) = answers.get(&key)
            && at.elapsed() < PERMISSION_TTL
        {
            return *allowed;
        }
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some("apps".to_owned()),
                    resource: Some(kind.resource().to_owned()),
                    verb: Some("patch".to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
        let allowed = match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer.status.is_some_and(|status| status.allowed),
            Err(err) => {
                tracing::warn!(error = %err, namespace, resource = kind.resource(),
                    "cannot ask the API server whether restart targets may be patched; assuming they may");
                return true;
            }
        };
        if let Ok(mut answers) = self.answers.lock() {
            answers.insert(key, (Instant::now(), allowed));
        }
        allowed
    }
}

/// Builds the merge patch that rolls a workload for `secret_id`.
pub fn restart_patch(secret_id: &str) -> serde_json::Value {
    json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_FOR_ANNOTATION: secret_id } } } } })
}

/// Rolls one workload. A workload that does not exist is reported as `Ok(false)`: the user may create it later,
/// and a missing consumer must not block the rotation of the secret.
pub async fn restart(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
    secret_id: &str,
) -> Result<bool, kube::Error> {
    let patch = Patch::Merge(restart_patch(secret_id));
    let params = PatchParams::default();
    let result = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .patch(name, &params, &patch)
            .await
            .map(|_| ()),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .patch(name, &params, &patch)
            .await
            .map(|_| ()),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .patch(name, &params, &patch)
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_patch_sets_the_pod_template_annotation_to_the_secret_id() {
        let patch = restart_patch("sci_new");
        assert_eq!(
            patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_FOR_ANNOTATION],
            "sci_new"
        );
    }
}
