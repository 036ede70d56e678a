//! The test control plane is a real Kubernetes API server, not a mock: it reports the pinned version, accepts our
//! CRDs, enforces their CEL rules, separates status from the main resource, streams watches, garbage-collects
//! owned objects, deletes namespaces, authorises with RBAC and issues ServiceAccount tokens.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

use common::control_plane;
use eiam_operator::api::ApplicationClientSecret;

const GROUP_VERSION: &str = "eiam-operator.io/v1alpha1";

fn secrets_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<ApplicationClientSecret>(&());
    Api::namespaced_with(client.clone(), namespace, &resource)
}

fn application_client_secret(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": GROUP_VERSION,
        "kind": "ApplicationClientSecret",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("ApplicationClientSecret object")
}

fn valid_spec() -> Value {
    json!({
        "instanceId": "idaas_testenv",
        "applicationId": "app_testenv",
        "expiresAfter": "2160h",
    })
}

/// The API error behind a kube error, or a panic naming what was expected instead.
fn api_error(
    result: Result<impl std::fmt::Debug, kube::Error>,
    expected: &str,
) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected {expected}, got {other:?}"),
    }
}

/// The Kubernetes version tests/testenv/go.mod pins, e.g. `v1.36.3`.
fn pinned_kubernetes_version() -> String {
    let go_mod =
        std::fs::read_to_string(common::control_plane::manifest_dir().join("tests/testenv/go.mod"))
            .expect("read tests/testenv/go.mod");
    go_mod
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("k8s.io/kubernetes")).then(|| words.next().map(str::to_owned))?
        })
        .expect("tests/testenv/go.mod requires k8s.io/kubernetes")
}

#[tokio::test]
async fn the_server_is_the_pinned_kube_apiserver() {
    let cp = control_plane().await;
    let info = cp.client().await.apiserver_version().await.unwrap();
    println!(
        "kube-apiserver {} ({}, {}, built {}) at {}",
        info.git_version, info.go_version, info.platform, info.build_date, cp.server
    );
    assert_eq!(
        info.git_version,
        pinned_kubernetes_version(),
        "the control plane runs another Kubernetes than tests/testenv/go.mod pins; restart it"
    );
    assert_eq!(info.major, "1");
    let minor: u32 = info.minor.trim_end_matches('+').parse().unwrap();
    assert!(minor >= 34, "Kubernetes 1.{minor} is older than 1.34");
}

#[tokio::test]
async fn the_crds_from_the_repository_are_established_and_served() {
    let cp = control_plane().await;
    let client = cp.client().await;
    for expected in [
        "applicationclientsecrets.eiam-operator.io",
        "eiamproviders.eiam-operator.io",
        "clustereiamproviders.eiam-operator.io",
    ] {
        assert!(
            cp.crds.iter().any(|n| n == expected),
            "{expected} not in crds/: {:?}",
            cp.crds
        );
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in &cp.crds {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        for wanted in ["NamesAccepted", "Established"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == wanted && c.status == "True"),
                "{name}: {wanted} is not True: {conditions:?}"
            );
        }
    }
    // Served: the new resource is in discovery and can be listed.
    let namespace = cp.namespace("crds").await;
    let listed = secrets_api(&client, namespace.name())
        .list(&Default::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

#[tokio::test]
async fn cel_rules_refuse_an_invalid_resource_with_a_message_naming_the_field() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespace = cp.namespace("cel").await;
    let api = secrets_api(&client, namespace.name());

    let mut spec = valid_spec();
    spec["expiresAfter"] = json!("1h");
    let status = api_error(
        api.create(
            &PostParams::default(),
            &application_client_secret("too-short", spec),
        )
        .await,
        "the API server to refuse expiresAfter: 1h",
    );
    println!("refused: {}", status.message);
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status.message.contains("spec.expiresAfter"),
        "{}",
        status.message
    );
    assert!(status.message.contains("24h"), "{}", status.message);

    // A transition rule (oldSelf) too: the instance cannot change after creation.
    api.create(
        &PostParams::default(),
        &application_client_secret("valid", valid_spec()),
    )
    .await
    .unwrap();
    let status = api_error(
        api.patch(
            "valid",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "instanceId": "idaas_other" } })),
        )
        .await,
        "the API server to refuse changing spec.instanceId",
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.instanceId is immutable"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn status_goes_through_the_status_subresource_only() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespace = cp.namespace("status").await;
    let api = secrets_api(&client, namespace.name());
    let created = api
        .create(
            &PostParams::default(),
            &application_client_secret("app", valid_spec()),
        )
        .await
        .unwrap();
    let generation = created.metadata.generation;

    let patched = api
        .patch_status(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "clientId": "written-through-status" } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["clientId"], "written-through-status");

    // A status change sent to the main resource is dropped; the rest of the patch applies.
    let patched = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "labels": { "touched": "yes" } },
                "status": { "clientId": "written-to-main-resource" },
            })),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["touched"], "yes");

    let stored = api.get("app").await.unwrap();
    assert_eq!(stored.data["status"]["clientId"], "written-through-status");
    assert_eq!(
        stored.metadata.generation, generation,
        "status and labels must not bump the generation"
    );

    // A spec change does bump it, and leaves status alone.
    let changed = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "deletionPolicy": "Retain" } })),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, generation.map(|g| g + 1));
    assert_eq!(changed.data["status"]["clientId"], "written-through-status");
}

#[tokio::test]
async fn a_watch_sees_creation_change_and_deletion() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespace = cp.namespace("watch").await;
    let api = secrets_api(&client, namespace.name());
    let version = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(60), &version)
        .await
        .unwrap()
        .boxed();

    api.create(
        &PostParams::default(),
        &application_client_secret("watched", valid_spec()),
    )
    .await
    .unwrap();
    api.patch(
        "watched",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "deletionPolicy": "Retain" } })),
    )
    .await
    .unwrap();
    api.delete("watched", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.try_next())
            .await
            .unwrap_or_else(|_| panic!("no watch event within 30s; seen so far: {seen:?}"))
            .unwrap()
            .expect("watch ended early");
        match event {
            WatchEvent::Added(o) => seen.push(("ADDED", o.data["spec"]["deletionPolicy"].clone())),
            WatchEvent::Modified(o) => {
                seen.push(("MODIFIED", o.data["spec"]["deletionPolicy"].clone()))
            }
            WatchEvent::Deleted(o) => {
                seen.push(("DELETED", o.data["spec"]["deletionPolicy"].clone()))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error: {e:?}"),
        }
    }
    println!("watch events: {seen:?}");
    // deletionPolicy defaults to Delete: the CRD's structural defaulting is in effect as well.
    assert_eq!(
        seen,
        [
            ("ADDED", json!("Delete")),
            ("MODIFIED", json!("Retain")),
            ("DELETED", json!("Retain"))
        ]
    );
}

#[tokio::test]
async fn the_garbage_collector_deletes_a_secret_whose_owner_is_gone() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespace = cp.namespace("gc").await;
    let api = secrets_api(&client, namespace.name());
    let secrets: Api<Secret> = namespace.api(&client);
    let owner = api
        .create(
            &PostParams::default(),
            &application_client_secret("owner", valid_spec()),
        )
        .await
        .unwrap();
    let owned: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "owned",
            "ownerReferences": [{
                "apiVersion": GROUP_VERSION,
                "kind": "ApplicationClientSecret",
                "name": "owner",
                "uid": owner.metadata.uid.clone().unwrap(),
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "stringData": { "clientSecret": "not-a-real-secret" },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &owned)
        .await
        .unwrap();
    let unowned: Secret = serde_json::from_value(
        json!({ "metadata": { "name": "unowned" }, "stringData": { "k": "v" } }),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &unowned)
        .await
        .unwrap();

    api.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    common::wait_until(
        "the garbage collector to delete the owned Secret",
        Duration::from_secs(90),
        || async {
            secrets
                .get_opt("owned")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    println!(
        "owned Secret collected {:.1}s after its owner was deleted",
        started.elapsed().as_secs_f64()
    );
    assert!(
        secrets.get_opt("unowned").await.unwrap().is_some(),
        "a Secret without owner must stay"
    );
}

#[tokio::test]
async fn deleting_a_namespace_removes_it_and_its_contents() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = cp.namespace("nsdel").await;
    let configmaps: Api<ConfigMap> = namespace.api(&client);
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "content" } })).unwrap();
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    namespaces
        .delete(namespace.name(), &DeleteParams::background())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    common::wait_until(
        "the namespace controller to finish deleting the namespace",
        Duration::from_secs(90),
        || async {
            namespaces
                .get_opt(namespace.name())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    println!(
        "namespace gone {:.1}s after deletion",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn the_token_user_gets_only_what_rbac_grants() {
    let cp = control_plane().await;
    let admin = cp.client().await;
    let user = cp.user_client().await;
    let namespace = cp.namespace("rbac").await;

    let review = Api::<SelfSubjectReview>::all(user.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let me = review.status.and_then(|s| s.user_info).unwrap();
    assert_eq!(me.username.as_deref(), Some("eiam-test-user"));
    assert!(
        me.groups
            .unwrap_or_default()
            .iter()
            .any(|g| g == "eiam-test-users")
    );

    let status = api_error(
        namespace
            .api::<Secret>(&user)
            .list(&Default::default())
            .await,
        "the token user to be forbidden to list Secrets",
    );
    println!("refused: {}", status.message);
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains("eiam-test-user"),
        "{}",
        status.message
    );

    // Grant reading ConfigMaps in this namespace only.
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "read-configmaps" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"] }],
    }))
    .unwrap();
    namespace
        .api::<Role>(&admin)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "read-configmaps" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "eiam-test-user" }],
    }))
    .unwrap();
    namespace
        .api::<RoleBinding>(&admin)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let configmaps: Api<ConfigMap> = namespace.api(&user);
    // RBAC reads bindings from an informer: allow it a moment to see the new one.
    common::wait_until(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        || async { configmaps.list(&Default::default()).await.ok() },
    )
    .await;
    let status = api_error(
        namespace
            .api::<Secret>(&user)
            .list(&Default::default())
            .await,
        "Secrets to stay forbidden",
    );
    assert_eq!(status.code, 403);
    let status = api_error(
        Api::<ConfigMap>::namespaced(user.clone(), "default")
            .list(&Default::default())
            .await,
        "ConfigMaps in another namespace to stay forbidden",
    );
    assert_eq!(status.code, 403);
}

#[tokio::test]
async fn a_service_account_token_from_token_request_authenticates() {
    let cp = control_plane().await;
    let admin = cp.client().await;
    let namespace = cp.namespace("sa").await;
    let accounts: Api<ServiceAccount> = namespace.api(&admin);
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "robot" } })).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();

    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = accounts
        .create_token_request("robot", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;

    let kc = Kubeconfig::read_from(&cp.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = serde_json::from_value::<AuthInfo>(json!({ "token": token })).unwrap();
    let robot = Client::try_from(config).unwrap();
    let review = Api::<SelfSubjectReview>::all(robot)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let expected = format!("system:serviceaccount:{}:robot", namespace.name());
    assert_eq!(
        review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username),
        Some(expected)
    );
}

#[tokio::test]
async fn server_side_apply_tracks_field_owners_and_reports_conflicts() {
    let cp = control_plane().await;
    let client = cp.client().await;
    let namespace = cp.namespace("ssa").await;
    let configmaps: Api<ConfigMap> = namespace.api(&client);
    let apply = |value: &str| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "shared" }, "data": { "key": value } });
    configmaps
        .patch(
            "shared",
            &PatchParams::apply("alice"),
            &Patch::Apply(apply("from-alice")),
        )
        .await
        .unwrap();
    let status = api_error(
        configmaps
            .patch(
                "shared",
                &PatchParams::apply("bob"),
                &Patch::Apply(apply("from-bob")),
            )
            .await,
        "a conflict when bob applies a field alice owns",
    );
    println!("conflict: {}", status.message);
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("alice") && status.message.contains(".data.key"),
        "{}",
        status.message
    );

    let forced = configmaps
        .patch(
            "shared",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(apply("from-bob")),
        )
        .await
        .unwrap();
    assert_eq!(
        forced.data.unwrap(),
        BTreeMap::from([("key".to_owned(), "from-bob".to_owned())])
    );
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"bob".to_owned()), "{managers:?}");
}
