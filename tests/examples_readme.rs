//! The README's install, GitOps, RBAC and troubleshooting commands, run as written: every `sh` block in those
//! sections carries a `<!-- tested-by: tests/examples_readme.rs#NAME -->` marker and is executed here, verbatim,
//! with bash against a control plane of its own (the blocks create and delete cluster-wide objects: the CRDs, the
//! `eiam-system` namespace). The operator the installed Deployment would run (no kubelet here) is the real binary,
//! started next to it. The troubleshooting table is checked against every reason in the source.

mod common;
mod helm_support;
#[path = "helm_support/release.rs"]
mod release;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use eiam_operator::api::ApplicationClientSecret;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use common::fake_eiam::FakeSpec;
use common::operator::OperatorSpec;
use common::wait_until;
use helm_support::repo;
use release::IsolatedControlPlane;

/// The sections whose commands this file owns, and the blocks it runs, in the order it runs them.
const SECTIONS: &[&str] = &["Install", "GitOps health", "RBAC", "Troubleshooting"];
const BLOCKS: &[&str] = &[
    "install-kubectl",
    "install-crds",
    "first-secret",
    "troubleshoot",
    "argocd",
    "uninstall-kubectl",
    "upgrade-helm",
    "install-helm",
];
const MARKER: &str = "<!-- tested-by: tests/examples_readme.rs#";
const SOON: Duration = Duration::from_secs(60);

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The text of a `## NAME` section (up to the next `## `).
fn section(readme: &str, name: &str) -> String {
    let start = readme
        .find(&format!("\n## {name}\n"))
        .unwrap_or_else(|| panic!("README has no section {name}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|i| i + 4).unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// `(marker name or None, code)` of every ```sh block in `text`.
fn shell_blocks(text: &str) -> Vec<(Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| l.trim().strip_prefix(MARKER))
                .and_then(|l| l.strip_suffix(" -->"))
                .map(str::to_owned);
            let end = i
                + 1
                + lines[i + 1..]
                    .iter()
                    .position(|l| l.trim() == "```")
                    .expect("closed block");
            blocks.push((marker, lines[i + 1..end].join("\n")));
            i = end;
        }
        i += 1;
    }
    blocks
}

fn marked_blocks() -> BTreeMap<String, String> {
    let readme = readme();
    SECTIONS
        .iter()
        .flat_map(|s| shell_blocks(&section(&readme, s)))
        .filter_map(|(marker, code)| Some((marker?, code)))
        .collect()
}

#[test]
fn every_command_in_the_install_gitops_rbac_and_troubleshooting_sections_is_run_here() {
    let readme = readme();
    let mut names = Vec::new();
    for name in SECTIONS {
        for (marker, code) in shell_blocks(&section(&readme, name)) {
            let marker = marker.unwrap_or_else(|| {
                panic!("README section {name}: a sh block without a tested-by marker:\n{code}")
            });
            names.push(marker);
        }
    }
    let mut expected: Vec<String> = BLOCKS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    names.sort();
    assert_eq!(
        names, expected,
        "every marked block is run, and nothing else is claimed"
    );
}

/// `pub const X: &str = "Reason";` values of a source file.
fn string_constants(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    text.lines()
        .filter(|l| l.trim_start().starts_with("pub const") && l.contains(": &str = \""))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn the_troubleshooting_table_explains_every_reason_in_the_source() {
    let table = section(&readme(), "Troubleshooting");
    // src/api/conditions.rs holds the one list of reasons (its `reasons` module); the other constants there are
    // the condition types.
    let reasons: Vec<String> = string_constants("src/api/conditions.rs")
        .into_iter()
        .filter(|r| !["Ready", "Reconciling", "Stalled"].contains(&r.as_str()))
        .collect();
    assert!(reasons.len() > 25, "found only {reasons:?}");
    let missing: Vec<&String> = reasons
        .iter()
        .filter(|r| !table.contains(&format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README Troubleshooting does not explain {missing:?}"
    );
}

/// Runs one README block with bash (`set -euo pipefail`), the tools of target/tools first on PATH.
fn run_block(name: &str, kubeconfig: &Path, home: &Path) -> String {
    let code = marked_blocks()
        .remove(name)
        .unwrap_or_else(|| panic!("no README block {name}"));
    let path = format!(
        "{}:{}",
        repo().join("target/tools").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{code}"))
        .current_dir(repo())
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "README block {name} failed ({}):\n{code}\n---\n{text}",
        output.status
    );
    eprintln!("--- README block {name} ---\n{code}\n--- output ---\n{text}");
    text
}

const INSTANCE: &str = "idaas_ue2jvisn35ea5lmthk267xxxxx";
const APP: &str = "app_mkv7rgt4d7i4u7zqtzev2mxxxx";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_work_as_written() {
    helm_support::tool("helm");
    helm_support::tool("kubectl");
    let cp = IsolatedControlPlane::start().await;
    let admin = cp.client().await;
    let home = tempfile::tempdir().unwrap();
    let fake = FakeSpec::new()
        .access_key("LTAI5tReadmeKey", "readme-access-key-secret")
        .application(INSTANCE, APP)
        .start()
        .await;

    // Install with kubectl; the CRDs-only variant is idempotent on top.
    let out = run_block("install-kubectl", &cp.kubeconfig, home.path());
    assert!(
        out.contains("deployment.apps/eiam-operator serverside-applied"),
        "{out}"
    );
    assert!(out.contains("condition met"), "{out}");
    run_block("install-crds", &cp.kubeconfig, home.path());

    // The operator the Deployment would run, for the namespace the README's commands use.
    let operator = OperatorSpec::new(&cp.kubeconfig)
        .namespace("default")
        .default_endpoint(fake.url())
        .grant_default_provider("default")
        .access_key("LTAI5tReadmeKey", "readme-access-key-secret")
        .start()
        .await;

    let out = run_block("first-secret", &cp.kubeconfig, home.path());
    assert!(out.contains("condition met"), "{out}");
    assert!(
        out.trim_end().ends_with(APP),
        "the decoded clientId is printed: {out}"
    );

    let api: Api<ApplicationClientSecret> = Api::namespaced(admin.clone(), "default");
    let before = api
        .get("my-app")
        .await
        .unwrap()
        .status
        .unwrap()
        .current_secret_id;
    let out = run_block("troubleshoot", &cp.kubeconfig, home.path());
    assert!(out.contains("Ready=True SecretPublished"), "{out}");
    assert!(out.contains("Issued"), "the Issued event is listed: {out}");
    assert!(out.contains("annotated"), "{out}");
    wait_until(
        format!("the manual rotation; operator:\n{}", operator.output()),
        SOON,
        || async {
            let status = api.get("my-app").await.ok()?.status?;
            (status.last_handled_rotate_at.is_some() && status.current_secret_id != before)
                .then_some(())
        },
    )
    .await;

    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), &cp.namespace("argocd").await);
    configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "argocd-cm" } })).unwrap(),
        )
        .await
        .unwrap();
    run_block("argocd", &cp.kubeconfig, home.path());
    let data = configmaps.get("argocd-cm").await.unwrap().data.unwrap();
    assert!(
        data.contains_key(
            "resource.customizations.health.eiam-operator.io_ApplicationClientSecret"
        )
    );

    let out = run_block("uninstall-kubectl", &cp.kubeconfig, home.path());
    assert!(
        out.contains("applicationclientsecret.eiam-operator.io \"my-app\" deleted"),
        "{out}"
    );
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io \"applicationclientsecrets.eiam-operator.io\" deleted"), "{out}");
    assert!(
        fake.secrets(INSTANCE, APP).await.is_empty(),
        "deleting my-app while the operator ran deleted its EIAM secrets"
    );
    drop(operator);

    // The upgrade from a chart that still shipped crds/ (tests/fixtures/previous-chart): Helm installed those CRDs
    // outside the release, and the README's command lets the release take them over.
    let (mut previous, out) = release::Release::install_chart(
        &cp.kubeconfig,
        &repo().join("tests/fixtures/previous-chart"),
        "eiam-operator",
        "eiam-system",
        &["--create-namespace"],
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    let out = run_block("upgrade-helm", &cp.kubeconfig, home.path());
    assert!(
        out.contains("STATUS: deployed") && out.contains("REVISION: 2"),
        "{out}"
    );
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(admin.clone());
    let crd = crds
        .get("applicationclientsecrets.eiam-operator.io")
        .await
        .unwrap();
    let annotations = crd.metadata.annotations.unwrap_or_default();
    assert!(
        annotations.contains_key(eiam_operator::api::ANNOTATION_SCHEMA_HASH)
            && annotations
                .get("meta.helm.sh/release-name")
                .map(String::as_str)
                == Some("eiam-operator"),
        "the upgrade replaced the CRDs and the release owns them: {annotations:?}"
    );
    previous.uninstall();

    let out = run_block("install-helm", &cp.kubeconfig, home.path());
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(out.contains("REVISION: 2"), "{out}");
    let secrets_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("secrets "))
        .unwrap_or_else(|| panic!("kubectl auth can-i lists secrets in team-a: {out}"));
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        assert!(secrets_line.contains(verb), "{secrets_line}");
    }
    assert!(
        out.contains("release \"eiam-operator\" uninstalled"),
        "{out}"
    );
}
