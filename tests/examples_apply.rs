//! Every file in examples/ against the real API server: each is accepted (server-side dry run, so CRD schemas
//! and CEL rules run), the Argo CD patch installs health.lua verbatim, the Flux objects decode strictly into
//! Flux's API types and their kustomization renders and applies, and the minimal, import and restart-target
//! examples really work with the operator and the fake EIAM.

mod common;
mod helm_support;

use std::path::Path;
use std::time::Duration;

use eiam_operator::api::ApplicationClientSecret;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use common::fake_eiam::FakeSpec;
use common::operator::OperatorSpec;
use common::wait_until;
use helm_support::{repo, run, run_ok};

const SOON: Duration = Duration::from_secs(60);

/// The YAML files directly under examples/ (the demo folder belongs to `make demo`).
fn top_level_examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.strip_prefix(repo()).unwrap().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    run_ok("kubectl", args, Some(kubeconfig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_is_accepted_by_the_api_server() {
    let cp = common::control_plane().await;
    let ns = cp.namespace("examples-dry-run").await;
    let files = top_level_examples();
    for expected in [
        "examples/clusterprovider-rrsa.yaml",
        "examples/import.yaml",
        "examples/minimal.yaml",
        "examples/provider-accesskey.yaml",
        "examples/restart-targets.yaml",
        "examples/rotation-policy.yaml",
        "examples/templated.yaml",
    ] {
        assert!(
            files.contains(&expected.to_owned()),
            "{expected} missing from {files:?}"
        );
    }
    for file in &files {
        let out = kubectl(
            &cp.kubeconfig,
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "-n",
                ns.name(),
                "-f",
                file,
            ],
        );
        assert!(out.contains("(server dry run)"), "{file}: {out}");
        eprintln!("{file}:\n{out}");
    }
    // The dry run is not a formality: a broken copy of an example is refused, naming the field.
    let broken = std::fs::read_to_string(repo().join("examples/minimal.yaml"))
        .unwrap()
        .replace("expiresAfter: 2160h", "expiresAfter: 2160 hours");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), broken).unwrap();
    let refused = run(
        "kubectl",
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            ns.name(),
            "-f",
            file.path().to_str().unwrap(),
        ],
        Some(&cp.kubeconfig),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("spec.expiresAfter"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_argo_cd_patch_installs_health_lua_verbatim() {
    let cp = common::control_plane().await;
    let admin = cp.client().await;
    let ns = cp.namespace("examples-argocd").await;
    let configmaps: Api<ConfigMap> = ns.api(&admin);
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "argocd-cm" }, "data": { "url": "https://argocd.example.com" }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // The README's command, in this test's namespace instead of argocd.
    kubectl(
        &cp.kubeconfig,
        &[
            "-n",
            ns.name(),
            "patch",
            "configmap",
            "argocd-cm",
            "--patch-file",
            "examples/argocd/argocd-cm-patch.yaml",
        ],
    );
    let data = configmaps.get("argocd-cm").await.unwrap().data.unwrap();
    let script = std::fs::read_to_string(repo().join("examples/argocd/health.lua")).unwrap();
    for kind in [
        "ApplicationClientSecret",
        "EiamProvider",
        "ClusterEiamProvider",
    ] {
        assert_eq!(
            data.get(&format!(
                "resource.customizations.health.eiam-operator.io_{kind}"
            )),
            Some(&script),
            "argocd-cm-patch.yaml carries health.lua byte for byte for {kind}"
        );
    }
    assert_eq!(
        data.get("url").map(String::as_str),
        Some("https://argocd.example.com"),
        "a patch, not a replace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flux_examples_are_valid_flux_objects_and_their_resources_apply() {
    let cp = common::control_plane().await;
    let ns = cp.namespace("examples-flux").await;
    let out = run_ok(
        "kstatus",
        &[
            "validate-flux",
            "examples/flux/operator.yaml",
            "examples/flux/secrets.yaml",
        ],
        None,
    );
    for object in [
        "GitRepository eiam-operator",
        "HelmRelease eiam-operator",
        "Kustomization team-a-eiam-secrets",
    ] {
        assert!(out.contains(object), "{object} not validated: {out}");
    }
    // The Kustomization points at ./examples/flux/secrets and health-checks the objects found there.
    let rendered = kubectl(&cp.kubeconfig, &["kustomize", "examples/flux/secrets"]);
    let objects = helm_support::parse_documents(&rendered);
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    let kustomization: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("examples/flux/secrets.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(kustomization["spec"]["path"], "./examples/flux/secrets");
    for check in kustomization["spec"]["healthChecks"].as_array().unwrap() {
        assert!(
            names.contains(&check["name"].as_str().unwrap()),
            "health check for {} which the path does not contain",
            check["name"]
        );
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &rendered).unwrap();
    let out = kubectl(
        &cp.kubeconfig,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-n",
            ns.name(),
            "-f",
            file.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.matches("(server dry run)").count(),
        objects.len(),
        "{out}"
    );
    // The helm chart path the HelmRelease installs exists.
    let helm_release = helm_support::parse_documents(
        &std::fs::read_to_string(repo().join("examples/flux/operator.yaml")).unwrap(),
    )
    .into_iter()
    .find(|o| o["kind"] == "HelmRelease")
    .unwrap();
    let chart = helm_release["spec"]["chart"]["spec"]["chart"]
        .as_str()
        .unwrap();
    assert!(repo().join(chart).join("Chart.yaml").exists(), "{chart}");
}

const EXAMPLE_INSTANCE: &str = "idaas_ue2jvisn35ea5lmthk267xxxxx";
const AK_ID: &str = "LTAI5tExamplesKey";
const AK_SECRET: &str = "examples-access-key-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minimal_import_and_restart_target_examples_work() {
    let cp = common::control_plane().await;
    let admin = cp.client().await;
    let ns = cp.namespace("examples-live").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(EXAMPLE_INSTANCE, "app_mkv7rgt4d7i4u7zqtzev2mxxxx")
        .application(EXAMPLE_INSTANCE, "app_legacy000000000000000000xxx")
        .application(EXAMPLE_INSTANCE, "app_web00000000000000000000xxxx")
        .application(EXAMPLE_INSTANCE, "app_orders000000000000000000xxx")
        .start()
        .await;
    // The secret examples/import.yaml adopts, made in EIAM "by hand" beforehand.
    let existing = fake
        .insert_secret(
            EXAMPLE_INSTANCE,
            "app_legacy000000000000000000xxx",
            json!({ "secretId": "sci_k52x2ru63rlkflina5utgkxxxx" }),
        )
        .await;
    // The admin grants the default provider to this namespace, import included (examples/import.yaml).
    let operator = OperatorSpec::new(&cp.kubeconfig)
        .namespace(ns.name())
        .default_endpoint(fake.url())
        .grant_default_provider(ns.name())
        .arg("--default-provider-allow-import")
        .access_key(AK_ID, AK_SECRET)
        .start()
        .await;
    for file in [
        "examples/minimal.yaml",
        "examples/import.yaml",
        "examples/restart-targets.yaml",
        "examples/templated.yaml",
    ] {
        kubectl(
            &cp.kubeconfig,
            &["apply", "--server-side", "-n", ns.name(), "-f", file],
        );
    }
    let api: Api<ApplicationClientSecret> = ns.api(&admin);
    for name in ["my-app", "legacy-app", "web", "orders"] {
        wait_until(
            format!("{name} Ready; operator:\n{}", operator.output()),
            SOON,
            || async {
                let acs = api.get(name).await.ok()?;
                acs.status
                    .as_ref()?
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
    let secrets: Api<Secret> = ns.api(&admin);
    let value = |secret: &Secret, key: &str| {
        String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
    };
    // minimal.yaml: Secret "my-app" with clientId/clientSecret, a 90-day secret in EIAM.
    let my_app = secrets.get("my-app").await.unwrap();
    let held = fake
        .secrets(EXAMPLE_INSTANCE, "app_mkv7rgt4d7i4u7zqtzev2mxxxx")
        .await;
    assert_eq!(held.len(), 1);
    assert_eq!(value(&my_app, "clientSecret"), held[0].client_secret);
    assert!(held[0].expiration_time.is_some(), "expiresAfter: 2160h");
    // import.yaml: the existing secret is published, nothing is minted.
    let legacy = secrets.get("legacy-app").await.unwrap();
    assert_eq!(value(&legacy, "clientSecret"), existing.client_secret);
    assert_eq!(
        fake.secrets(EXAMPLE_INSTANCE, "app_legacy000000000000000000xxx")
            .await
            .len(),
        1,
        "imported, not minted"
    );
    assert!(
        legacy
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "creationPolicy Orphan: no ownerReference"
    );
    // restart-targets.yaml: the Secret the Deployment reads is "web-oauth".
    let web = secrets.get("web-oauth").await.unwrap();
    assert!(!value(&web, "clientSecret").is_empty());
    // templated.yaml: only the two rendered files, the secret quoted for YAML in one and plain in the other.
    let orders = secrets.get("orders-oauth").await.unwrap();
    let held = fake
        .secrets(EXAMPLE_INSTANCE, "app_orders000000000000000000xxx")
        .await;
    assert_eq!(
        orders.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
        [".env", "application.yaml"]
    );
    let yaml: serde_json::Value =
        serde_yaml::from_str(&value(&orders, "application.yaml")).unwrap();
    let registration = &yaml["spring"]["security"]["oauth2"]["client"]["registration"]["eiam"];
    assert_eq!(
        registration["client-secret"],
        held[0].client_secret.as_str()
    );
    assert_eq!(registration["client-id"], "app_orders000000000000000000xxx");
    assert!(
        value(&orders, ".env")
            .contains(&format!("OAUTH_CLIENT_SECRET={}\n", held[0].client_secret)),
        "the .env file holds the secret"
    );

    // Clean up while the operator runs, so the finalizers are honoured.
    for name in ["my-app", "legacy-app", "web", "orders"] {
        api.delete(name, &Default::default()).await.unwrap();
    }
    wait_until("examples deleted", SOON, || async {
        api.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    // deletionPolicy Retain (import.yaml) kept the adopted secret in EIAM.
    assert_eq!(
        fake.secrets(EXAMPLE_INSTANCE, "app_legacy000000000000000000xxx")
            .await
            .len(),
        1
    );
}
