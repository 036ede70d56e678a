//! The chart's RBAC is enough, and no more: the real operator binary runs as the chart's ServiceAccount (a token
//! from the TokenRequest API, as the kubelet would mount) with the environment the chart renders, and carries out
//! the first issue, a scheduled renewal with a restart target and the deletion against the fake EIAM. In
//! namespaced mode the same ServiceAccount works through a ClusterEiamProvider and is refused every other
//! namespace.

mod common;
mod helm_support;
#[path = "helm_support/release.rs"]
mod release;

use std::time::Duration;

use eiam_operator::api::ApplicationClientSecret;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use common::fake_eiam::{FakeEiam, FakeSpec};
use common::{Process, ProcessSpec, wait_until};
use release::{IsolatedControlPlane, Release, service_account_kubeconfig};

const INSTANCE: &str = "idaas_helmrbac";
const AK_ID: &str = "LTAI5tHelmRbacKey";
const AK_SECRET: &str = "helm-rbac-access-key-secret";
/// How long a step may take on a shared 2-core machine.
const SOON: Duration = Duration::from_secs(60);

/// Applies an object from JSON with the admin client (server-side apply).
async fn apply<K>(api: &Api<K>, object: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = object["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply("eiam-operator-tests").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

fn condition<'a>(acs: &'a ApplicationClientSecret, kind: &str) -> Option<&'a str> {
    acs.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// The operator as the chart's ServiceAccount, configured by the chart's environment (plus what the kubelet
/// would add: the pod's name and namespace from the downward API). Started directly rather than through
/// `common::operator`, which turns leader election off: here the chart's Lease and its RBAC are under test.
async fn start_operator_as_service_account(
    admin_kubeconfig: &std::path::Path,
    admin: &Client,
    release: &Release,
    dir: &std::path::Path,
) -> Process {
    let kubeconfig = service_account_kubeconfig(
        admin,
        admin_kubeconfig,
        &release.namespace,
        &release.fullname(),
        dir,
    )
    .await;
    let mut spec = ProcessSpec::new("eiam-operator-as-sa", env!("CARGO_BIN_EXE_eiam-operator"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", &release.namespace)
        .env("POD_NAME", format!("{}-0", release.fullname()))
        // No instance metadata service here: the credential chain must not wait for one.
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    for (key, _) in std::env::vars() {
        if key.starts_with("EIAM_OPERATOR_") || key.starts_with("ALIBABA_CLOUD_") {
            spec = spec.env_remove(key);
        }
    }
    for (key, value) in release.operator_env() {
        spec = spec.env(key, value);
    }
    // Tests run in parallel on one machine: loopback and free ports instead of the pod's 0.0.0.0:8080/8081.
    spec = spec.args([
        "--metrics-addr",
        "127.0.0.1:0",
        "--health-addr",
        "127.0.0.1:0",
    ]);
    let mut operator = spec.spawn();
    // Leader election on the chart's Lease, with the chart's RBAC.
    operator.wait_for_line("leader Lease acquired", SOON).await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &release.namespace);
    let lease = leases
        .get(&release.fullname())
        .await
        .expect("the Lease named by the chart exists in the release namespace");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        holder.starts_with(&format!("{}-0-", release.fullname())),
        "the Lease is held by the pod: {holder}"
    );
    operator
}

/// Stops the operator with SIGTERM, as the kubelet would, and checks it released the Lease and exited cleanly.
async fn stop(mut operator: Process) {
    let status = operator.terminate(SOON).await;
    assert!(
        status.success(),
        "the operator exits 0 on SIGTERM: {status}\n{}",
        operator.output()
    );
    assert!(
        operator.output().contains("leader Lease released"),
        "the operator released its Lease:\n{}",
        operator.output()
    );
    assert_never_forbidden(&operator);
}

/// Fails with the operator's output when it logged an authorization failure: the chart's RBAC must cover
/// everything the operator does.
fn assert_never_forbidden(operator: &Process) {
    let output = operator.output();
    let denied: Vec<&str> = output
        .lines()
        .filter(|l| {
            l.contains("forbidden") || l.contains("Forbidden") || l.contains("\"code\":403")
        })
        .collect();
    assert!(
        denied.is_empty(),
        "the operator was denied by RBAC:\n{}",
        denied.join("\n")
    );
}

async fn wait_ready(
    api: &Api<ApplicationClientSecret>,
    name: &str,
    operator: &Process,
) -> ApplicationClientSecret {
    wait_until(
        format!("{name} Ready; operator output:\n{}", operator.output()),
        SOON,
        || async {
            let acs = api.get(name).await.ok()?;
            (condition(&acs, "Ready") == Some("True")
                && acs.status.as_ref()?.observed_generation == acs.metadata.generation)
                .then_some(acs)
        },
    )
    .await
}

fn data(secret: &Secret, key: &str) -> String {
    let bytes = &secret.data.as_ref().expect("data")[key].0;
    String::from_utf8(bytes.clone()).expect("utf-8")
}

/// Waits until the resource is gone, then checks EIAM and the Secret were cleaned up (deletionPolicy Delete).
async fn delete_and_check_cleanup(
    api: &Api<ApplicationClientSecret>,
    secrets: &Api<Secret>,
    fake: &FakeEiam,
    name: &str,
    application: &str,
    operator: &Process,
) {
    api.delete(name, &Default::default()).await.expect("delete");
    wait_until(
        format!("{name} deleted; operator output:\n{}", operator.output()),
        SOON,
        || async { api.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
    assert!(
        fake.secrets(INSTANCE, application).await.is_empty(),
        "deletionPolicy Delete removed every EIAM secret the resource created"
    );
    wait_until("the Secret deleted", SOON, || async {
        secrets.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_rbac_is_enough_for_issue_renewal_and_deletion() {
    const APP: &str = "app_helm_rbac_cluster";
    // An operator that watches every namespace gets a control plane of its own, without CRDs: the chart installs
    // them, and the operator's start-up check reads them with the chart's RBAC.
    let cp = IsolatedControlPlane::start_with_crds(None).await;
    let admin = cp.client().await;
    let release_ns = cp.namespace("eiam-system").await;
    let apps = cp.namespace("apps").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(INSTANCE, APP)
        .start()
        .await;
    // Rolling restart targets is opt-in (rbac.restartTargets); this release grants it.
    let (release, _) = Release::install(
        &cp.kubeconfig,
        "eiam-operator",
        &release_ns,
        &["--set", "rbac.restartTargets=true"],
    );
    let dir = tempfile::tempdir().unwrap();
    let operator =
        start_operator_as_service_account(&cp.kubeconfig, &admin, &release, dir.path()).await;

    // An EiamProvider with an AccessKey Secret next to it, a restart target, and a resource that renews 10 s
    // after it is issued and retires the previous secret 3 s after the new one is published.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &apps);
    apply(
        &secrets,
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "eiam-ak" },
            "stringData": { "accessKeyId": AK_ID, "accessKeySecret": AK_SECRET }
        }),
    )
    .await;
    let providers: Api<eiam_operator::api::EiamProvider> = Api::namespaced(admin.clone(), &apps);
    apply(&providers, json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider", "metadata": { "name": "eiam" },
        "spec": { "endpoint": fake.url(), "auth": { "accessKey": { "secretRef": { "name": "eiam-ak" } } } }
    }))
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &apps);
    apply(&deployments, json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
        "spec": { "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } },
                                "spec": { "containers": [{ "name": "web", "image": "registry.example.com/web:1" }] } } }
    }))
    .await;
    let api: Api<ApplicationClientSecret> = Api::namespaced(admin.clone(), &apps);
    apply(&api, json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": "creds" },
        "spec": {
            "instanceId": INSTANCE, "applicationId": APP,
            "providerRef": { "kind": "EiamProvider", "name": "eiam" },
            "expiresAfter": "24h", "renewBefore": "23h59m50s",
            "rotation": { "gracePeriod": "3s", "restartTargets": [{ "kind": "Deployment", "name": "web" }] }
        }
    }))
    .await;

    // First issue.
    let issued = wait_ready(&api, "creds", &operator).await;
    let first = issued
        .status
        .as_ref()
        .unwrap()
        .current_secret_id
        .clone()
        .expect("currentSecretId");
    let secret = secrets.get("creds").await.expect("the Secret was written");
    // The provider's own status is written with the chart's rules too.
    wait_until(
        format!(
            "EiamProvider eiam Ready; operator output:\n{}",
            operator.output()
        ),
        SOON,
        || async {
            let status = providers.get("eiam").await.ok()?.status?;
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await;
    let held = fake.secrets(INSTANCE, APP).await;
    let first_held = held
        .iter()
        .find(|s| s.secret_id == first)
        .expect("EIAM holds the published secret");
    assert_eq!(data(&secret, "clientSecret"), first_held.client_secret);

    // Renewal: a new secret is published, the Deployment rolled for it, the previous secret retired.
    let renewed = wait_until(
        format!("renewal; operator output:\n{}", operator.output()),
        SOON,
        || async {
            let acs = api.get("creds").await.ok()?;
            let status = acs.status.as_ref()?;
            (status.current_secret_id.as_deref() != Some(first.as_str())
                && status.previous_secret_id.is_none()
                && condition(&acs, "Ready") == Some("True"))
            .then(|| status.current_secret_id.clone())
            .flatten()
        },
    )
    .await;
    let secret = secrets.get("creds").await.unwrap();
    let held = fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "the previous secret was retired: {held:?}");
    assert_eq!(held[0].secret_id, renewed);
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);
    let web = deployments.get("web").await.unwrap();
    let annotations = web
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations.get("eiam-operator.io/restarted-for-secret-id"),
        Some(&renewed),
        "the restart target was rolled for the new secret"
    );
    let events: Api<Event> = Api::namespaced(admin.clone(), &apps);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("creds"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Issued", "Rotated"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }

    // Deletion.
    delete_and_check_cleanup(&api, &secrets, &fake, "creds", APP, &operator).await;
    stop(operator).await;
}

/// The chart in namespaced mode, installed into `release_ns` and watching `watched`, with the ClusterEiamProvider it
/// creates: its AccessKey (`eiam-ak`, created here) lives in the release namespace, and it allows the namespaces
/// in `allowed` (labelled here as the release's tenants) and the applications matching `applications`. Returns the
/// release and the provider's name.
async fn install_namespaced_release(
    cp: &common::ControlPlane,
    admin: &Client,
    release_ns: &common::TestNamespace,
    watched: &[&common::TestNamespace],
    allowed: &[&common::TestNamespace],
    fake: &FakeEiam,
    applications: &str,
) -> (Release, String) {
    let tenant = json!({ "eiam-operator.io/tenant": release_ns.name() });
    for ns in allowed {
        Api::<Namespace>::all(admin.clone())
            .patch(
                ns.name(),
                &PatchParams::default(),
                &Patch::Merge(&json!({ "metadata": { "labels": tenant } })),
            )
            .await
            .unwrap();
    }
    let provider_name = format!("{}-shared", release_ns.name());
    let provider_spec = json!({
        "endpoint": fake.url(),
        "auth": { "accessKey": { "secretRef": { "name": "eiam-ak", "namespace": release_ns.name() } } },
        "allowedNamespaces": { "selector": { "matchLabels": tenant } },
        "allowedApplications": [{ "instanceId": INSTANCE, "applicationId": applications }]
    });
    let names: Vec<&str> = watched.iter().map(|ns| ns.name()).collect();
    let (release, _) = Release::install(
        &cp.kubeconfig,
        release_ns.name(),
        release_ns.name(),
        &[
            // The shared control plane already has the CRDs (applied by the harness, cluster-wide).
            "--set",
            "crds.enabled=false",
            "--set",
            &format!("watchNamespaces={{{}}}", names.join(",")),
            "--set",
            "clusterEiamProvider.create=true",
            "--set",
            &format!("clusterEiamProvider.name={provider_name}"),
            "--set-json",
            &format!("clusterEiamProvider.spec={provider_spec}"),
        ],
    );
    apply(
        &Api::<Secret>::namespaced(admin.clone(), release_ns.name()),
        json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "eiam-ak" },
            "stringData": { "accessKeyId": AK_ID, "accessKeySecret": AK_SECRET }
        }),
    )
    .await;
    (release, provider_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_mode_rbac_serves_its_namespace_and_is_refused_the_others() {
    const APP: &str = "app_helm_rbac_namespaced";
    const RESTART_APP: &str = "app_helm_rbac_restart";
    let cp = common::control_plane().await;
    let admin = cp.client().await;
    let release_ns = cp.namespace("rbac-nsop").await;
    let watched = cp.namespace("rbac-watched").await;
    let other = cp.namespace("rbac-other").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(INSTANCE, APP)
        .application(INSTANCE, RESTART_APP)
        .start()
        .await;

    let (release, provider_name) = install_namespaced_release(
        cp,
        &admin,
        &release_ns,
        &[&watched],
        &[&watched],
        &fake,
        "app_helm_rbac_*",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let operator =
        start_operator_as_service_account(&cp.kubeconfig, &admin, &release, dir.path()).await;

    // Issue and delete in the watched namespace, through the ClusterEiamProvider.
    let api: Api<ApplicationClientSecret> = watched.api(&admin);
    let secrets: Api<Secret> = watched.api(&admin);
    apply(
        &api,
        json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "creds" },
            "spec": { "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                      "providerRef": { "kind": "ClusterEiamProvider", "name": provider_name } }
        }),
    )
    .await;
    let issued = wait_ready(&api, "creds", &operator).await;
    let current = issued.status.unwrap().current_secret_id.unwrap();
    let secret = secrets.get("creds").await.unwrap();
    assert_eq!(
        secret.annotations().get("eiam-operator.io/secret-id"),
        Some(&current)
    );
    delete_and_check_cleanup(&api, &secrets, &fake, "creds", APP, &operator).await;

    // Without rbac.restartTargets (this release's default) a resource with restart targets says so in its
    // status before anything is minted, instead of failing after a rotation.
    apply(
        &api,
        json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "rolls" },
            "spec": { "instanceId": INSTANCE, "applicationId": RESTART_APP, "expiresAfter": "720h",
                      "providerRef": { "kind": "ClusterEiamProvider", "name": provider_name },
                      "rotation": { "restartTargets": [{ "kind": "Deployment", "name": "web" }] } }
        }),
    )
    .await;
    let refused_restart = wait_until(
        format!(
            "rolls: RestartNotPermitted; operator output:\n{}",
            operator.output()
        ),
        SOON,
        || async {
            let acs = api.get("rolls").await.ok()?;
            let stalled = acs
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Stalled" && c.status == "True")?;
            (stalled.reason == "RestartNotPermitted").then_some(stalled.message)
        },
    )
    .await;
    assert!(
        refused_restart.contains("deployments") && refused_restart.contains("rbac.restartTargets"),
        "{refused_restart}"
    );
    assert!(
        fake.secrets(INSTANCE, RESTART_APP).await.is_empty(),
        "nothing minted for a resource whose workloads could not be rolled"
    );
    api.delete("rolls", &Default::default())
        .await
        .expect("delete rolls");
    wait_until("rolls deleted", SOON, || async {
        api.get_opt("rolls").await.ok()?.is_none().then_some(())
    })
    .await;
    stop(operator).await;

    // The ServiceAccount itself: allowed in the watched namespace, refused everywhere else.
    let sa_kubeconfig = dir
        .path()
        .join(format!("{}.kubeconfig", release.fullname()));
    let sa = common::control_plane::client_from(&sa_kubeconfig).await;
    Api::<Secret>::namespaced(sa.clone(), watched.name())
        .list(&ListParams::default())
        .await
        .expect("the watched namespace's Secrets are readable");
    let refused = |result: Result<(), kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    };
    refused(
        Api::<Secret>::namespaced(sa.clone(), other.name())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list Secrets in another namespace",
    );
    refused(
        Api::<Secret>::namespaced(sa.clone(), other.name())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": { "name": "stolen" }, "stringData": { "k": "v" } }))
                .unwrap(),
            )
            .await
            .map(|_| ()),
        "create a Secret in another namespace",
    );
    refused(
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list Secrets cluster-wide",
    );
    refused(
        Api::<ApplicationClientSecret>::namespaced(sa.clone(), other.name())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list ApplicationClientSecrets in another namespace",
    );
    refused(
        Api::<Deployment>::namespaced(sa.clone(), other.name())
            .patch("web", &PatchParams::default(), &Patch::Merge(&json!({})))
            .await
            .map(|_| ()),
        "patch a Deployment in another namespace",
    );
    refused(
        Api::<Deployment>::namespaced(sa.clone(), watched.name())
            .patch("web", &PatchParams::default(), &Patch::Merge(&json!({})))
            .await
            .map(|_| ()),
        "patch a Deployment in the watched namespace without rbac.restartTargets",
    );
    refused(
        Api::<Secret>::namespaced(sa.clone(), release_ns.name())
            .list(&ListParams::default())
            .await
            .map(|_| ()),
        "list Secrets in its own namespace (it may only get them)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watched_namespaces_are_both_served_under_their_roles_and_a_third_is_not() {
    const APP_A: &str = "app_helm_rbac_multi_a";
    const APP_B: &str = "app_helm_rbac_multi_b";
    const APP_C: &str = "app_helm_rbac_multi_c";
    let cp = common::control_plane().await;
    let admin = cp.client().await;
    let release_ns = cp.namespace("rbac-multi-op").await;
    let first = cp.namespace("rbac-multi-a").await;
    let second = cp.namespace("rbac-multi-b").await;
    let unwatched = cp.namespace("rbac-multi-c").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(INSTANCE, APP_A)
        .application(INSTANCE, APP_B)
        .application(INSTANCE, APP_C)
        .start()
        .await;

    // Every namespace, the unwatched one included, is allowed by the ClusterEiamProvider: only the watch scope
    // keeps the third one out.
    let (release, provider_name) = install_namespaced_release(
        cp,
        &admin,
        &release_ns,
        &[&first, &second],
        &[&first, &second, &unwatched],
        &fake,
        "app_helm_rbac_multi_*",
    )
    .await;
    let access_key = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "eiam-ak" },
        "stringData": { "accessKeyId": AK_ID, "accessKeySecret": AK_SECRET }
    });
    for ns in [&second, &unwatched] {
        apply(
            &Api::<Secret>::namespaced(admin.clone(), ns.name()),
            access_key.clone(),
        )
        .await;
    }
    // The second namespace uses its own EiamProvider: namespaced providers are watched per namespace too.
    let own_provider = json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider",
        "metadata": { "name": "own" },
        "spec": { "endpoint": fake.url(), "auth": { "accessKey": { "secretRef": { "name": "eiam-ak" } } } }
    });
    for ns in [&second, &unwatched] {
        apply(
            &Api::<eiam_operator::api::EiamProvider>::namespaced(admin.clone(), ns.name()),
            own_provider.clone(),
        )
        .await;
    }
    let resource = |app: &str, provider: Value| {
        json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "creds" },
            "spec": { "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "720h",
                      "providerRef": provider }
        })
    };
    let cluster_ref = json!({ "kind": "ClusterEiamProvider", "name": provider_name });
    let own_ref = json!({ "kind": "EiamProvider", "name": "own" });
    // The unwatched namespace's resource exists before the operator starts, so it is in any list the operator
    // could make of it.
    let third: Api<ApplicationClientSecret> = unwatched.api(&admin);
    apply(&third, resource(APP_C, cluster_ref.clone())).await;

    let dir = tempfile::tempdir().unwrap();
    let operator =
        start_operator_as_service_account(&cp.kubeconfig, &admin, &release, dir.path()).await;
    let a: Api<ApplicationClientSecret> = first.api(&admin);
    let b: Api<ApplicationClientSecret> = second.api(&admin);
    apply(&a, resource(APP_A, cluster_ref)).await;
    apply(&b, resource(APP_B, own_ref)).await;
    for (api, secrets, app) in [
        (&a, first.api::<Secret>(&admin), APP_A),
        (&b, second.api::<Secret>(&admin), APP_B),
    ] {
        let issued = wait_ready(api, "creds", &operator).await;
        let current = issued.status.unwrap().current_secret_id.unwrap();
        let secret = secrets.get("creds").await.unwrap();
        assert_eq!(
            secret.annotations().get("eiam-operator.io/secret-id"),
            Some(&current)
        );
        assert_eq!(fake.secrets(INSTANCE, app).await.len(), 1, "{app}");
    }
    // The watched namespace's EiamProvider gets a status; the unwatched one's does not.
    let providers =
        |ns: &str| Api::<eiam_operator::api::EiamProvider>::namespaced(admin.clone(), ns);
    wait_until(
        format!("EiamProvider own Ready in {}", second.name()),
        SOON,
        || async {
            let provider = providers(second.name()).get("own").await.ok()?;
            provider
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        },
    )
    .await;

    // Both watched namespaces are served, so both watches have listed and the operator has been reconciling for
    // a while: the unwatched namespace's resource, older than both, was never touched.
    let untouched = third.get("creds").await.unwrap();
    assert!(untouched.status.is_none(), "{:?}", untouched.status);
    assert!(
        untouched.finalizers().is_empty(),
        "{:?}",
        untouched.finalizers()
    );
    assert!(fake.secrets(INSTANCE, APP_C).await.is_empty());
    assert!(
        providers(unwatched.name())
            .get("own")
            .await
            .unwrap()
            .status
            .is_none(),
        "the unwatched namespace's EiamProvider has no status"
    );
    assert!(
        !operator.output().contains(unwatched.name()),
        "the operator never named the unwatched namespace:\n{}",
        operator.output()
    );
    // Cluster provider status is left to an operator that watches every namespace.
    let cluster_provider = Api::<eiam_operator::api::ClusterEiamProvider>::all(admin.clone())
        .get(&provider_name)
        .await
        .unwrap();
    assert!(
        cluster_provider.status.is_none(),
        "{:?}",
        cluster_provider.status
    );

    delete_and_check_cleanup(&a, &first.api(&admin), &fake, "creds", APP_A, &operator).await;
    delete_and_check_cleanup(&b, &second.api(&admin), &fake, "creds", APP_B, &operator).await;
    stop(operator).await;
}
