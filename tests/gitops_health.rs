//! GitOps health, read from live objects: the real operator drives ApplicationClientSecrets into the states a
//! GitOps tool meets — Ready, rotating (a renewal retrying through EIAM throttling), stalled (both EIAM slots
//! taken by secrets it does not own), spec not yet observed (generation ahead of status), never observed — and
//! each object, as fetched from the API server, is judged by the Argo CD health check
//! (`examples/argocd/health.lua`, run by Debian's `lua5.4`) and by kstatus (`tests/kstatus`, the library Flux
//! uses). Both must agree with what the state means.

mod common;
mod helm_support;

use std::time::Duration;

use eiam_operator::api::{ApplicationClientSecret, EiamProvider};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use common::fake_eiam::FakeSpec;
use common::operator::OperatorSpec;
use common::wait_until;

const INSTANCE: &str = "idaas_gitops";
const AK_ID: &str = "LTAI5tGitopsKey";
const AK_SECRET: &str = "gitops-access-key-secret";
const SOON: Duration = Duration::from_secs(60);

/// A JSON value as a Lua table constructor (strings byte-escaped, `null` members left out).
fn to_lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for byte in s.bytes() {
                match byte {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7e => out.push(byte as char),
                    _ => out.push_str(&format!("\\{byte:03}")),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(to_lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", to_lua(&Value::String(k.clone())), to_lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs the Argo CD health check on `object` the way Argo CD does: the script is a function body that sees the
/// live object as the global `obj` and returns `{status, message}`.
fn argo_health(object: &Value) -> (String, String) {
    let script = helm_support::repo().join("examples/argocd/health.lua");
    let driver = format!(
        "local obj = {}\n\
         local env = setmetatable({{ obj = obj }}, {{ __index = _G }})\n\
         local check = assert(loadfile(arg[1], \"t\", env))\n\
         local hs = check()\n\
         io.write(hs.status, \"\\t\", hs.message or \"\", \"\\n\")\n",
        to_lua(object)
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), driver).unwrap();
    let output = std::process::Command::new("lua5.4")
        .arg(file.path())
        .arg(&script)
        .output()
        .expect("run lua5.4 (make test installs it: `make lua`)");
    assert!(
        output.status.success(),
        "health.lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned();
    let (status, message) = text.split_once('\t').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// kstatus of each object (`eval`), or Flux's verdict through the example Kustomization's healthCheckExprs
/// (`eval-flux examples/flux/secrets.yaml`).
fn kstatus(args: &[&str], objects: &[Value]) -> Vec<(String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(helm_support::tool("kstatus"))
        .args(args)
        .current_dir(helm_support::repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kstatus");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kstatus: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let result: Value = serde_json::from_str(line).unwrap();
            (
                result["status"].as_str().unwrap().to_owned(),
                result["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn condition(acs: &ApplicationClientSecret, kind: &str) -> Option<String> {
    acs.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

/// Waits until `kind` is True at the current generation.
async fn wait_condition(api: &Api<ApplicationClientSecret>, name: &str, kind: &str) {
    wait_until(format!("{name}: {kind}=True"), SOON, || async {
        let acs = api.get(name).await.ok()?;
        let current = acs.status.as_ref()?.observed_generation == acs.metadata.generation;
        (current && condition(&acs, kind).as_deref() == Some("True")).then_some(())
    })
    .await;
}

/// The object exactly as the API server returns it (what Argo CD and Flux read), not a typed round trip.
async fn live(client: &kube::Client, namespace: &str, name: &str) -> Value {
    live_as::<ApplicationClientSecret>(client, namespace, name).await
}

async fn live_as<K: kube::Resource<DynamicType = ()>>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Value {
    let resource = kube::api::ApiResource::erase::<K>(&());
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_kstatus_and_flux_read_the_live_states() {
    let cp = common::control_plane().await;
    let admin = cp.client().await;
    let ns = cp.namespace("gitops-health").await;
    let fake = FakeSpec::new()
        .access_key(AK_ID, AK_SECRET)
        .application(INSTANCE, "app_ready")
        .application(INSTANCE, "app_rotating")
        .application(INSTANCE, "app_stalled")
        .application(INSTANCE, "app_new")
        .start()
        .await;
    // Both slots of app_stalled are taken by secrets the operator did not create.
    for _ in 0..2 {
        fake.insert_secret(INSTANCE, "app_stalled", json!({})).await;
    }
    let mut operator = OperatorSpec::new(&cp.kubeconfig)
        .namespace(ns.name())
        .default_endpoint(fake.url())
        .grant_default_provider(ns.name())
        .access_key(AK_ID, AK_SECRET)
        .start()
        .await;
    let api: Api<ApplicationClientSecret> = ns.api(&admin);
    for (name, app) in [
        ("ready", "app_ready"),
        ("rotating", "app_rotating"),
        ("stalled", "app_stalled"),
    ] {
        let object = json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": name },
            "spec": { "instanceId": INSTANCE, "applicationId": app, "expiresAfter": "720h" }
        });
        api.patch(
            name,
            &PatchParams::apply("gitops-test"),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }
    wait_condition(&api, "ready", "Ready").await;
    wait_condition(&api, "rotating", "Ready").await;
    wait_condition(&api, "stalled", "Stalled").await;
    let mut states = vec![
        (
            "Ready",
            live(&admin, ns.name(), "ready").await,
            "Healthy",
            "Current",
            "Current",
        ),
        (
            "stalled",
            live(&admin, ns.name(), "stalled").await,
            "Degraded",
            "Failed",
            "Failed",
        ),
    ];

    // Providers: one usable (an AccessKey Secret beside it), one whose AccessKey Secret does not exist.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = ns.api(&admin);
    secrets
        .patch(
            "usable-ak",
            &PatchParams::apply("gitops-test"),
            &Patch::Apply(&json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "usable-ak" },
                "stringData": { "accessKeyId": AK_ID, "accessKeySecret": AK_SECRET }
            })),
        )
        .await
        .unwrap();
    let providers: Api<EiamProvider> = ns.api(&admin);
    for (name, auth) in [
        (
            "usable",
            json!({ "accessKey": { "secretRef": { "name": "usable-ak" } } }),
        ),
        (
            "broken",
            json!({ "accessKey": { "secretRef": { "name": "no-such-secret" } } }),
        ),
    ] {
        let mut object = json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "EiamProvider",
            "metadata": { "name": name },
            "spec": { "endpoint": fake.url() }
        });
        if !auth.is_null() {
            object["spec"]["auth"] = auth;
        }
        providers
            .patch(
                name,
                &PatchParams::apply("gitops-test"),
                &Patch::Apply(&object),
            )
            .await
            .unwrap();
    }
    for (name, kind) in [("usable", "Ready"), ("broken", "Stalled")] {
        wait_until(format!("provider {name}: {kind}=True"), SOON, || async {
            let status = providers.get(name).await.ok()?.status?;
            status
                .conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
                .then_some(())
        })
        .await;
    }
    states.push((
        "provider usable",
        live_as::<EiamProvider>(&admin, ns.name(), "usable").await,
        "Healthy",
        "Current",
        "Current",
    ));
    states.push((
        "provider broken",
        live_as::<EiamProvider>(&admin, ns.name(), "broken").await,
        "Degraded",
        "Failed",
        "Failed",
    ));

    // Rotating: a rotation is requested while EIAM throttles every Create; the current secret stays valid
    // (Ready=True) while the operator retries (Reconciling=True).
    fake.set_faults(json!([{ "kind": "throttle", "action": "CreateApplicationClientSecret" }]))
        .await;
    api.patch(
        "rotating",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "annotations": {
            "eiam-operator.io/rotate-requested-at": "gitops-test-1" } } })),
    )
    .await
    .unwrap();
    wait_until("rotating: Reconciling=True", SOON, || async {
        let acs = api.get("rotating").await.ok()?;
        (condition(&acs, "Reconciling").as_deref() == Some("True")
            && condition(&acs, "Ready").as_deref() == Some("True"))
        .then_some(())
    })
    .await;
    let rotating = live(&admin, ns.name(), "rotating").await;
    assert_eq!(
        rotating["metadata"]["annotations"]["eiam-operator.io/rotate-requested-at"],
        "gitops-test-1"
    );
    states.push((
        "rotating",
        rotating,
        "Progressing",
        "InProgress",
        "InProgress",
    ));

    // Spec not yet observed: the operator is stopped, then the spec changes (generation ahead of status); and a
    // resource it never saw at all.
    operator.process().signal(libc::SIGTERM);
    operator.wait_for_exit(SOON).await;
    let changed = api
        .patch(
            "ready",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "rotation": { "gracePeriod": "2h" } } })),
        )
        .await
        .unwrap();
    assert!(
        changed.metadata.generation > changed.status.as_ref().unwrap().observed_generation,
        "the spec change is not observed yet"
    );
    states.push((
        "spec not yet observed",
        live(&admin, ns.name(), "ready").await,
        "Progressing",
        "InProgress",
        "InProgress",
    ));
    let never = json!({
        "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
        "metadata": { "name": "new" },
        "spec": { "instanceId": INSTANCE, "applicationId": "app_new" }
    });
    api.patch(
        "new",
        &PatchParams::apply("gitops-test"),
        &Patch::Apply(&never),
    )
    .await
    .unwrap();
    // Generic kstatus cannot tell "no controller wrote a status yet" from "this kind has no status": it says
    // Current. That is why the Flux example carries healthCheckExprs, under which Flux keeps waiting (Unknown).
    states.push((
        "never observed",
        live(&admin, ns.name(), "new").await,
        "Progressing",
        "Current",
        "Unknown",
    ));

    let objects: Vec<Value> = states.iter().map(|s| s.1.clone()).collect();
    let generic = kstatus(&["eval"], &objects);
    let flux = kstatus(&["eval-flux", "examples/flux/secrets.yaml"], &objects);
    eprintln!(
        "{:<24} {:<12} {:<11} {:<11} Argo CD message",
        "state", "Argo CD", "kstatus", "Flux exprs"
    );
    let mut failures = Vec::new();
    for (i, (state, object, want_argo, want_kstatus, want_flux)) in states.iter().enumerate() {
        let (got_argo, argo_message) = argo_health(object);
        let (got_kstatus, got_flux) = (&generic[i].0, &flux[i].0);
        eprintln!("{state:<24} {got_argo:<12} {got_kstatus:<11} {got_flux:<11} {argo_message}");
        if got_argo != *want_argo || got_kstatus != want_kstatus || got_flux != want_flux {
            failures.push(format!(
                "{state} ({}): Argo CD {got_argo} (want {want_argo}), kstatus {got_kstatus} (want \
                 {want_kstatus}), Flux {got_flux} (want {want_flux}); messages: {:?} {:?}\n{}",
                object["metadata"]["name"],
                generic[i].1,
                flux[i].1,
                serde_json::to_string_pretty(&object["status"]).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The messages say why: the stall names its reason.
    let (_, stalled_message) = argo_health(&states[1].1);
    assert!(
        stalled_message.contains("SlotsExhausted"),
        "{stalled_message}"
    );
}
