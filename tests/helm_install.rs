//! The chart against the real API server (tests/testenv): `helm install` is accepted object for object in a
//! namespace that enforces the restricted Pod Security Standard, `helm upgrade` to namespaced mode with every
//! optional object switched on is accepted, and `helm uninstall` leaves no operator object behind.
//! No kubelet runs, so no pod starts: what is proven is that the API server accepts everything the chart renders.
//! tests/helm_node.rs runs the chart's pods, on a control plane with a node.

mod common;
mod helm_support;
#[path = "helm_support/release.rs"]
mod release;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use helm_support::{find, run};
use release::Release;

/// Every kind the chart can render, with its plural and scope.
const KINDS: &[(&str, &str, &str, &str, bool)] = &[
    // (group, version, kind, plural, namespaced)
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Service", "services", true),
    ("apps", "v1", "Deployment", "deployments", true),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    (
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    (
        "eiam-operator.io",
        "v1alpha1",
        "ClusterEiamProvider",
        "clustereiamproviders",
        false,
    ),
];

fn api_resource(kind: &str) -> (ApiResource, bool) {
    let (group, version, kind, plural, namespaced) = KINDS
        .iter()
        .find(|k| k.2 == kind)
        .unwrap_or_else(|| panic!("the chart renders a {kind}, which KINDS does not list"));
    (
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural),
        *namespaced,
    )
}

/// `(kind, namespace, name)` of every object labelled with the release, across the whole cluster.
async fn objects_of_release(client: &Client, release: &str) -> BTreeSet<(String, String, String)> {
    let selector = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let mut found = BTreeSet::new();
    for (_, _, kind, _, _) in KINDS {
        let (resource, _) = api_resource(kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for object in api
            .list(&selector)
            .await
            .unwrap_or_else(|e| panic!("list {kind}: {e}"))
        {
            found.insert((
                kind.to_string(),
                object.metadata.namespace.clone().unwrap_or_default(),
                object.metadata.name.clone().unwrap_or_default(),
            ));
        }
    }
    found
}

/// `(kind, namespace, name)` of every object in a Helm manifest (namespace defaulted like Helm does).
fn objects_of_manifest(
    manifest: &[Value],
    release_namespace: &str,
) -> BTreeSet<(String, String, String)> {
    manifest
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap().to_owned();
            let (_, namespaced) = api_resource(&kind);
            let namespace = if namespaced {
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(release_namespace)
                    .to_owned()
            } else {
                String::new()
            };
            (
                kind,
                namespace,
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The Prometheus Operator's ServiceMonitor kind, reduced to what the API server needs to accept objects of it.
/// The test control plane has no Prometheus Operator; the chart's ServiceMonitor only needs the kind to exist.
async fn ensure_service_monitor_kind(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "servicemonitors.monitoring.coreos.com" },
        "spec": {
            "group": "monitoring.coreos.com",
            "names": { "kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor",
                       "listKind": "ServiceMonitorList" },
            "scope": "Namespaced",
            "versions": [{ "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } } }]
        }
    }))
    .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        "servicemonitors.monitoring.coreos.com",
        &PatchParams::apply("eiam-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the ServiceMonitor CRD");
    common::wait_until(
        "ServiceMonitor kind served",
        std::time::Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let (resource, _) = api_resource("ServiceMonitor");
                let api: Api<DynamicObject> = Api::all_with(client, &resource);
                api.list(&ListParams::default().limit(1))
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await;
}

/// Makes a namespace enforce (and warn about) the restricted Pod Security Standard.
async fn restrict(client: &Client, namespace: &str) {
    let patch = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label the namespace restricted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_upgrade_and_uninstall_against_the_real_api_server() {
    let cp = common::control_plane().await;
    let client = cp.client().await;
    let ns = cp.namespace("helm-install").await;
    let watched = cp.namespace("helm-watched").await;
    restrict(&client, ns.name()).await;
    ensure_service_monitor_kind(&client).await;
    let name = ns.name().to_owned();

    // Install with the defaults: every object accepted, no Pod Security warning, NOTES that say what next. The
    // shared control plane already has the CRDs (cluster-wide, applied by the harness), so this release leaves
    // them out, as any release but one per cluster must; tests/crd_upgrade.rs installs the chart with its CRDs.
    let (mut release, output) = Release::install(
        &cp.kubeconfig,
        &name,
        ns.name(),
        &["--set", "crds.enabled=false"],
    );
    assert!(output.contains("STATUS: deployed"), "{output}");
    assert!(
        !output.contains("would violate PodSecurity"),
        "the pod template is not restricted:\n{output}"
    );
    assert!(
        output.contains("kubectl wait --for=condition=Ready applicationclientsecret/my-app"),
        "NOTES say what to apply next:\n{output}"
    );
    let manifest = release.manifest();
    let expected = objects_of_manifest(&manifest, ns.name());
    let kinds: BTreeSet<&str> = expected.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ])
    );
    assert_eq!(objects_of_release(&client, &name).await, expected);
    // What the API server stored is what the chart rendered (defaulting aside).
    let (deployments, _) = api_resource("Deployment");
    let stored = Api::<DynamicObject>::namespaced_with(client.clone(), ns.name(), &deployments)
        .get(&release.fullname())
        .await
        .expect("the Deployment");
    let stored = serde_json::to_value(&stored).unwrap();
    let rendered = find(&manifest, "Deployment", &release.fullname(), None);
    assert_eq!(stored["spec"]["replicas"], 2);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["securityContext"],
        rendered["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    );

    // The Pod Security check above can fail: the same chart with privilege escalation allowed draws a warning
    // from this namespace's admission.
    let chart = helm_support::chart();
    let rendered_bad = helm_support::run_ok(
        "helm",
        &[
            "template",
            "bad",
            chart.to_str().unwrap(),
            "--namespace",
            ns.name(),
            "--set",
            "securityContext.allowPrivilegeEscalation=true",
            "--show-only",
            "templates/deployment.yaml",
        ],
        None,
    );
    let manifest_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(manifest_file.path(), rendered_bad).unwrap();
    let dry_run = run(
        "kubectl",
        &[
            "apply",
            "--dry-run=server",
            "-n",
            ns.name(),
            "-f",
            manifest_file.path().to_str().unwrap(),
        ],
        Some(&cp.kubeconfig),
    );
    let stderr = String::from_utf8_lossy(&dry_run.stderr);
    assert!(
        stderr.contains("would violate PodSecurity") && stderr.contains("allowPrivilegeEscalation"),
        "a privileged template draws a Pod Security warning: {stderr}"
    );

    // Upgrade to namespaced mode with every optional object on.
    let provider_name = format!("{name}-default");
    let output = release.upgrade(&[
        "--set",
        "crds.enabled=false",
        "--set",
        &format!("watchNamespaces={{{}}}", watched.name()),
        "--set",
        "replicaCount=3",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "clusterEiamProvider.create=true",
        "--set",
        &format!("clusterEiamProvider.name={provider_name}"),
        "--set",
        "cloudCredentials.mode=rrsa",
        "--set",
        "cloudCredentials.rrsa.roleName=eiam-operator",
    ]);
    assert!(
        output.contains("STATUS: deployed") && output.contains("REVISION: 2"),
        "{output}"
    );
    assert!(!output.contains("would violate PodSecurity"), "{output}");
    let manifest = release.manifest();
    let expected = objects_of_manifest(&manifest, ns.name());
    for object in [
        (
            "Role".to_owned(),
            watched.name().to_owned(),
            release.fullname(),
        ),
        (
            "RoleBinding".to_owned(),
            watched.name().to_owned(),
            release.fullname(),
        ),
        (
            "ServiceMonitor".to_owned(),
            ns.name().to_owned(),
            release.fullname(),
        ),
        (
            "NetworkPolicy".to_owned(),
            ns.name().to_owned(),
            release.fullname(),
        ),
        (
            "Service".to_owned(),
            ns.name().to_owned(),
            format!("{}-metrics", release.fullname()),
        ),
        (
            "ClusterEiamProvider".to_owned(),
            String::new(),
            provider_name.clone(),
        ),
    ] {
        assert!(expected.contains(&object), "{object:?} not in {expected:?}");
    }
    assert_eq!(objects_of_release(&client, &name).await, expected);
    let stored = Api::<DynamicObject>::namespaced_with(client.clone(), ns.name(), &deployments)
        .get(&release.fullname())
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&stored).unwrap()["spec"]["replicas"],
        3
    );
    let (cluster_roles, _) = api_resource("ClusterRole");
    let cluster_role = Api::<DynamicObject>::all_with(client.clone(), &cluster_roles)
        .get(&release.fullname())
        .await
        .unwrap();
    let rules = &cluster_role.data["rules"];
    assert!(
        helm_support::grants(rules)
            .iter()
            .all(|(_, resource, _, _)| resource != "secrets"),
        "namespaced mode: the ClusterRole no longer grants Secrets: {rules}"
    );

    // Uninstall: nothing of the operator's is left; the CRDs, which this release did not install, stay.
    let output = release.uninstall();
    assert!(output.contains("uninstalled"), "{output}");
    let left = objects_of_release(&client, &name).await;
    assert!(
        left.is_empty(),
        "left behind after helm uninstall: {left:?}"
    );
    let helm_records =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns.name())
            .list(&ListParams::default().labels(&format!("owner=helm,name={name}")))
            .await
            .unwrap();
    assert!(
        helm_records.items.is_empty(),
        "Helm's release records are gone"
    );
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    assert!(
        crds.get_opt("applicationclientsecrets.eiam-operator.io")
            .await
            .unwrap()
            .is_some()
    );
}
