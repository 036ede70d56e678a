//! Issue 15.3: `eiam-operator status` and `eiam-operator rotate`, run as a user runs them (the real binary, the
//! user's kubeconfig), also through the `kubectl-eiam` name that makes them `kubectl eiam ...`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// Runs the binary (or a link to it named `program`) with `args` against the scenario's control plane.
fn run(program: &Path, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("EIAM_OPERATOR_NAMESPACE")
        .output()
        .expect("run eiam-operator");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i15_status_and_rotate_from_the_command_line() {
    const APP: &str = "app_cli";
    let mut s = Scenario::new("i15-cli", &[APP]).await;
    s.start_operator().await;
    s.create(
        "web",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                "rotation": { "gracePeriod": "2s" } }),
    )
    .await;
    let ready = s.wait_ready("web").await;
    let current = current_id(&ready).expect("a current secret");
    let binary = Path::new(env!("CARGO_BIN_EXE_eiam-operator"));
    let kubeconfig = s.cp.kubeconfig.clone();
    let ns = s.namespace().to_owned();

    // status, for people: exit 0, the ids, the Secret in sync, the Issued event; never a value.
    let (code, out, err) = run(binary, &kubeconfig, &["status", "-n", &ns, "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{ns}/web: Ready")), "{out}");
    assert!(
        out.contains(&current) && out.contains("holds the current secret"),
        "{out}"
    );
    assert!(out.contains("Issued"), "{out}");
    let value = s.fake.secrets(INSTANCE, APP).await[0].client_secret.clone();
    assert!(!out.contains(&value), "no secret value in the output");

    // rotate --wait: prints the new secret id once it is published, which status then shows.
    let (code, out, err) = run(
        binary,
        &kubeconfig,
        &["rotate", "-n", &ns, "web", "--wait", "--timeout", "60s"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let rotated = s.get("web").await;
    let new = current_id(&rotated).expect("a current secret");
    assert_ne!(new, current);
    assert!(
        out.contains(&format!("new secret {new} published")),
        "{out}"
    );

    // The same through kubectl's plugin name, as JSON for scripts.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plugin = dir.path().join("kubectl-eiam");
    std::os::unix::fs::symlink(binary, &plugin).expect("link kubectl-eiam");
    let (code, out, err) = run(
        &plugin,
        &kubeconfig,
        &["status", "-n", &ns, "web", "-o", "json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let summary: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(summary["currentSecretId"], new.as_str());
    assert_eq!(summary["ready"], true);

    // A resource that is not Ready: exit 1, and the reason shown.
    s.create(
        "broken",
        json!({ "instanceId": INSTANCE, "applicationId": "app_elsewhere",
                "providerRef": { "kind": "EiamProvider", "name": "missing" } }),
    )
    .await;
    s.wait_stalled("broken", "ProviderNotFound").await;
    let (code, out, _) = run(binary, &kubeconfig, &["status", "-n", &ns, "broken"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("NOT Ready") && out.contains("ProviderNotFound"),
        "{out}"
    );
    s.finish().await;
}
