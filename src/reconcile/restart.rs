//! Rolling restart of the workloads that consume a secret, the way `kubectl rollout restart` does it.
//!
//! The pod-template annotation carries the id of the secret that was published, not a timestamp: patching the same
//! id twice changes nothing, so a retried reconcile can never roll a workload twice for one rotation.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

/// The pod-template annotation that records which EIAM secret a workload was last rolled for.
pub const RESTARTED_FOR_ANNOTATION: &str = "eiam-operator.io/restarted-for-secret-id";

/// A workload kind that can be rolled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
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
