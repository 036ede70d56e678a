//! Running the Go tools the chart tests need — `helm`, `kubectl` and the kstatus helper, built from source into
//! `target/tools/` by `make tools` — and reading what `helm template` renders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `charts/eiam-operator`.
pub fn chart() -> PathBuf {
    repo().join("charts/eiam-operator")
}

/// A tool from `target/tools/`, or a panic that says how to build it.
pub fn tool(name: &str) -> PathBuf {
    let path = repo().join("target/tools").join(name);
    assert!(
        path.exists(),
        "{} does not exist: run `make tools` (builds helm, kubectl and kstatus from source with Go 1.26)",
        path.display()
    );
    path
}

/// Runs a tool and returns its output, whatever the exit status.
pub fn run(name: &str, args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut command = Command::new(tool(name));
    command.args(args).current_dir(repo());
    // Helm keeps caches and its registry config under HOME; give it a throwaway one so tests never touch the
    // developer's and never race each other.
    let home = tempfile::tempdir().expect("temporary HOME");
    command
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"));
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", home.path().join("no-cluster")),
    };
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    drop(home);
    output
}

/// Runs a tool and returns its stdout; panics with both streams when it fails.
pub fn run_ok(name: &str, args: &[&str], kubeconfig: Option<&Path>) -> String {
    let output = run(name, args, kubeconfig);
    assert!(
        output.status.success(),
        "{name} {} failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `helm template` of the chart with extra arguments (`--set ...`, `-f ...`), as JSON objects.
pub fn render(extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "eiam",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        "eiam-system",
    ];
    args.extend_from_slice(extra);
    parse_documents(&run_ok("helm", &args, None))
}

/// `helm template` that is expected to fail; returns stderr.
pub fn render_err(extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "eiam", chart.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let output = run("helm", &args, None);
    assert!(
        !output.status.success(),
        "helm template {} should have failed, rendered:\n{}",
        extra.join(" "),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every non-empty YAML document of a multi-document stream.
pub fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The objects of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The one object of `kind` named `name` (in `namespace`, when given).
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str, namespace: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && namespace.is_none_or(|ns| d["metadata"]["namespace"] == ns)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name} in {namespace:?}, found {}: {:#?}",
        found.len(),
        docs.iter()
            .map(|d| format!("{} {}", d["kind"], d["metadata"]["name"]))
            .collect::<Vec<_>>()
    );
    found[0]
}

/// A rule reduced to comparable `(apiGroup, resource, verb, resourceName)` grants.
pub fn grants(rules: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        let strings = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let names = {
            let n = strings("resourceNames");
            if n.is_empty() { vec![String::new()] } else { n }
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    for name in &names {
                        out.push((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out.sort();
    out
}
