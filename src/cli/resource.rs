//! `eiam-operator status` and `eiam-operator rotate` (also `kubectl eiam status|rotate` through the `kubectl-eiam`
//! name): what a person asks of one `ApplicationClientSecret` — is it healthy, which secret is out there, what
//! happened lately — and a manual rotation that waits until the new secret is published.
//!
//! They talk to the API server with the user's kubeconfig and context, as kubectl does; never to EIAM. The summary is
//! built by a pure function ([`summarize`]) from the resource, its Secret and its Events; no secret value is read
//! into it (the Secret is compared through its annotations and the hash of the operator's keys).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::api::{ANNOTATION_ROTATE, ANNOTATION_SECRET_ID, ApplicationClientSecret};
use crate::reconcile::executor::publish::data_as_written;

/// Exit code when the resource is not Ready, or a command failed.
const EXIT_NOT_READY: u8 = 1;
/// How many recent Events `status` shows.
const EVENTS_SHOWN: usize = 5;

/// Output format of `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A summary for people.
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// `eiam-operator status [-n NAMESPACE] NAME`.
#[derive(Debug, Args)]
#[command(
    about = "Show an ApplicationClientSecret: conditions, secrets, expiry, its Secret and recent events",
    long_about = "Show one ApplicationClientSecret the way a person reads it: its conditions, the current and previous \
                  EIAM secret ids, when the secret expires and is renewed, the Secret it writes and whether that Secret \
                  holds the current secret, and its latest Events. Uses your kubeconfig and context, like kubectl. \
                  Exits 1 when the resource is not Ready."
)]
pub struct StatusArgs {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Name of the ApplicationClientSecret.
    pub name: String,
}

/// `eiam-operator rotate [-n NAMESPACE] NAME | --all [-l SELECTOR]`.
#[derive(Debug, Args)]
#[command(
    about = "Rotate ApplicationClientSecrets now (sets eiam-operator.io/rotate-requested-at)",
    long_about = "Ask the operator for one rotation of each named ApplicationClientSecret (or every one in the \
                  namespace with --all, narrowed by -l) by setting the annotation eiam-operator.io/rotate-requested-at \
                  to the current time. With --wait, waits until each has published its new secret and prints the new \
                  secret ids; exits 1 if that did not happen within --timeout."
)]
pub struct RotateArgs {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Rotate every ApplicationClientSecret of the namespace.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
    /// With --all: only those matching this label selector.
    #[arg(short = 'l', long, requires = "all")]
    pub selector: Option<String>,
    /// Wait until the new secret is published.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, as a duration (e.g. 2m).
    #[arg(long, default_value = "2m", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Name of the ApplicationClientSecret (or --all).
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::api::parse_duration(text).map_err(|err| err.to_string())
}

/// What `status` knows about the Secret a resource writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretView {
    /// The Secret does not exist.
    Missing,
    /// It exists: the secret id it says it holds, and whether the operator's keys are as it wrote them.
    Present {
        secret_id: Option<String>,
        data_as_written: bool,
    },
}

impl SecretView {
    /// Reads the view of a Secret without keeping any of its values.
    pub fn of(secret: Option<&Secret>, resource: &ApplicationClientSecret) -> Self {
        let Some(secret) = secret else {
            return SecretView::Missing;
        };
        SecretView::Present {
            secret_id: secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_SECRET_ID))
                .cloned(),
            data_as_written: data_as_written(secret, &resource.spec.target.data_keys()),
        }
    }
}

/// The summary `status` prints: pure, from what was read.
pub fn summarize(
    resource: &ApplicationClientSecret,
    secret: &SecretView,
    events: &[Event],
) -> Value {
    let status = resource.status.clone().unwrap_or_default();
    let condition = |kind: &str| status.conditions.iter().find(|c| c.type_ == kind);
    let ready = condition("Ready").is_some_and(|c| c.status == "True");
    let in_sync = match secret {
        SecretView::Missing => false,
        SecretView::Present {
            secret_id,
            data_as_written,
        } => *data_as_written && secret_id.is_some() && *secret_id == status.current_secret_id,
    };
    let mut recent: Vec<&Event> = events.iter().collect();
    recent.sort_by_key(|e| {
        e.series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let recent: Vec<Value> = recent
        .iter()
        .rev()
        .take(EVENTS_SHOWN)
        .map(|e| {
            json!({
                "type": e.type_, "reason": e.reason, "note": e.note,
                "count": e.series.as_ref().map_or(1, |s| s.count),
            })
        })
        .collect();
    json!({
        "name": resource.name_any(),
        "namespace": resource.namespace(),
        "ready": ready,
        "observedGeneration": status.observed_generation,
        "generation": resource.metadata.generation,
        "conditions": status.conditions.iter().map(|c| json!({
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
        })).collect::<Vec<_>>(),
        "application": format!("{}/{}", resource.spec.instance_id, resource.spec.application_id),
        "currentSecretId": status.current_secret_id,
        "previousSecretId": status.previous_secret_id,
        "previousRetireAt": status.previous_retire_at.map(|t| t.0.to_string()),
        "notAfter": status.not_after.map(|t| t.0.to_string()),
        "renewalTime": status.renewal_time.map(|t| t.0.to_string()),
        "lastRotationTime": status.last_rotation_time.map(|t| t.0.to_string()),
        "secret": {
            "name": resource.secret_name(),
            "exists": *secret != SecretView::Missing,
            "holdsCurrent": in_sync,
        },
        "events": recent,
    })
}

/// Renders the summary for people.
pub fn render_text(summary: &Value) -> String {
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "-".to_owned())
    };
    let mut out = String::new();
    out.push_str(&format!(
        "ApplicationClientSecret {}/{}: {}\n",
        text(&summary["namespace"]),
        text(&summary["name"]),
        if summary["ready"] == true {
            "Ready"
        } else {
            "NOT Ready"
        }
    ));
    out.push_str(&format!(
        "  Application:     {}\n",
        text(&summary["application"])
    ));
    out.push_str("  Conditions:\n");
    for c in summary["conditions"].as_array().into_iter().flatten() {
        let message = c["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or("");
        out.push_str(&format!(
            "    {:<16} {:<6} {:<18} {}\n",
            text(&c["type"]),
            text(&c["status"]),
            text(&c["reason"]),
            message
        ));
    }
    out.push_str(&format!(
        "  Current secret:  {}\n",
        text(&summary["currentSecretId"])
    ));
    if !summary["previousSecretId"].is_null() {
        out.push_str(&format!(
            "  Previous secret: {} (retired at {})\n",
            text(&summary["previousSecretId"]),
            text(&summary["previousRetireAt"])
        ));
    }
    out.push_str(&format!(
        "  Expires:         {}\n",
        summary["notAfter"].as_str().unwrap_or("never")
    ));
    out.push_str(&format!(
        "  Renews:          {}\n",
        summary["renewalTime"].as_str().unwrap_or("never")
    ));
    let secret = &summary["secret"];
    let secret_state = match (secret["exists"] == true, secret["holdsCurrent"] == true) {
        (false, _) => "missing",
        (true, true) => "holds the current secret",
        (true, false) => "out of sync (the operator repairs it)",
    };
    out.push_str(&format!(
        "  Secret:          {} ({secret_state})\n",
        text(&secret["name"])
    ));
    out.push_str("  Recent events:\n");
    let events = summary["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        out.push_str("    (none)\n");
    }
    for e in &events {
        out.push_str(&format!(
            "    {:<8} {:<22} {}{}\n",
            text(&e["type"]),
            text(&e["reason"]),
            text(&e["note"]),
            if e["count"].as_i64().unwrap_or(1) > 1 {
                format!(" (x{})", e["count"])
            } else {
                String::new()
            }
        ));
    }
    out
}

async fn client_and_namespace(namespace: Option<String>) -> Result<(Client, String), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|err| format!("cannot load the kubeconfig: {err}"))?;
    let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config)
        .map_err(|err| format!("cannot build the Kubernetes client: {err}"))?;
    Ok((client, namespace))
}

/// `eiam-operator status`.
pub async fn run_status(args: StatusArgs) -> ExitCode {
    crate::eiam::install_crypto_provider();
    match status(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_NOT_READY),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_NOT_READY)
        }
    }
}

async fn status(args: StatusArgs) -> Result<bool, String> {
    let (client, namespace) = client_and_namespace(args.namespace).await?;
    let resources: Api<ApplicationClientSecret> = Api::namespaced(client.clone(), &namespace);
    let resource = resources.get(&args.name).await.map_err(|err| {
        format!(
            "cannot read ApplicationClientSecret {namespace}/{}: {err}",
            args.name
        )
    })?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    // Whoever may read the resource may not be allowed to read Secrets: then the Secret is reported unknown.
    let secret = secrets.get_opt(&resource.secret_name()).await;
    let view = match &secret {
        Ok(found) => SecretView::of(found.as_ref(), &resource),
        Err(_) => SecretView::Present {
            secret_id: None,
            data_as_written: false,
        },
    };
    let events: Api<Event> = Api::namespaced(client, &namespace);
    let selector = format!(
        "regarding.kind=ApplicationClientSecret,regarding.name={}",
        resource.name_any()
    );
    let events = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let mut summary = summarize(&resource, &view, &events);
    if let Err(err) = &secret {
        summary["secret"]["error"] = json!(format!("cannot read the Secret: {err}"));
    }
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
        Output::Text => print!("{}", render_text(&summary)),
    }
    Ok(summary["ready"] == true)
}

/// `eiam-operator rotate`.
pub async fn run_rotate(args: RotateArgs) -> ExitCode {
    crate::eiam::install_crypto_provider();
    match rotate(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_NOT_READY)
        }
    }
}

async fn rotate(args: RotateArgs) -> Result<(), String> {
    let (client, namespace) = client_and_namespace(args.namespace).await?;
    let api: Api<ApplicationClientSecret> = Api::namespaced(client, &namespace);
    let targets: Vec<ApplicationClientSecret> = match &args.name {
        Some(name) => vec![api.get(name).await.map_err(|err| {
            format!("cannot read ApplicationClientSecret {namespace}/{name}: {err}")
        })?],
        None => {
            let mut params = ListParams::default();
            if let Some(selector) = &args.selector {
                params = params.labels(selector);
            }
            api.list(&params)
                .await
                .map_err(|err| {
                    format!("cannot list ApplicationClientSecrets in {namespace}: {err}")
                })?
                .items
        }
    };
    if targets.is_empty() {
        return Err(format!(
            "no ApplicationClientSecret to rotate in {namespace}"
        ));
    }
    // A value no earlier request used: the operator rotates once per new value.
    let requested = jiff::Timestamp::now().to_string();
    let patch = json!({ "metadata": { "annotations": { ANNOTATION_ROTATE: requested } } });
    for target in &targets {
        api.patch(
            &target.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|err| format!("cannot annotate {}: {err}", target.name_any()))?;
        println!(
            "{}: rotation requested ({ANNOTATION_ROTATE}={requested})",
            target.name_any()
        );
    }
    if !args.wait {
        return Ok(());
    }
    let started = Instant::now();
    let mut pending: Vec<(String, Option<String>)> = targets
        .iter()
        .map(|t| {
            let before = t.status.as_ref().and_then(|s| s.current_secret_id.clone());
            (t.name_any(), before)
        })
        .collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (name, before) in pending {
            let now = api
                .get(&name)
                .await
                .map_err(|err| format!("cannot read {name}: {err}"))?;
            let status = now.status.clone().unwrap_or_default();
            let done = status.last_handled_rotate_at.as_deref() == Some(requested.as_str())
                && status.current_secret_id.is_some()
                && status.current_secret_id != before;
            if done {
                println!(
                    "{name}: new secret {} published",
                    status.current_secret_id.unwrap_or_default()
                );
            } else {
                still.push((name, before));
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if started.elapsed() >= args.timeout {
            let names: Vec<&str> = pending.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "not rotated within {:?}: {} (see `eiam-operator status NAME`)",
                args.timeout,
                names.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::executor::publish::{ANNOTATION_DATA_HASH, data_hash};
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn resource(current: Option<&str>, ready: bool) -> ApplicationClientSecret {
        serde_json::from_value(json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "web", "namespace": "team-a", "generation": 1 },
            "spec": { "instanceId": "idaas_1", "applicationId": "app_1" },
            "status": {
                "observedGeneration": 1,
                "currentSecretId": current,
                "notAfter": "2027-01-01T00:00:00Z",
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" },
                                 "reason": "SecretPublished", "message": "published",
                                 "lastTransitionTime": "2026-11-29T00:00:00Z" }]
            }
        }))
        .expect("a resource")
    }

    fn secret(id: &str, value: &str, hash_of: &str) -> Secret {
        let data = |v: &str| {
            BTreeMap::from([
                ("clientId".to_owned(), ByteString(b"app_1".to_vec())),
                ("clientSecret".to_owned(), ByteString(v.as_bytes().to_vec())),
            ])
        };
        let mut s = Secret::default();
        s.metadata.annotations = Some(BTreeMap::from([
            (ANNOTATION_SECRET_ID.to_owned(), id.to_owned()),
            (ANNOTATION_DATA_HASH.to_owned(), data_hash(&data(hash_of))),
        ]));
        s.data = Some(data(value));
        s
    }

    #[test]
    fn a_ready_resource_whose_secret_holds_the_current_secret() {
        let resource = resource(Some("sci_1"), true);
        let view = SecretView::of(Some(&secret("sci_1", "v", "v")), &resource);
        let summary = summarize(&resource, &view, &[]);
        assert_eq!(summary["ready"], true);
        assert_eq!(summary["secret"]["holdsCurrent"], true);
        let text = render_text(&summary);
        assert!(text.contains("team-a/web: Ready"), "{text}");
        assert!(
            text.contains("sci_1") && text.contains("holds the current secret"),
            "{text}"
        );
        assert!(!text.contains("\"v\""), "no value");
    }

    #[test]
    fn an_edited_or_stale_or_missing_secret_is_not_in_sync_and_not_ready_says_so() {
        let resource = resource(Some("sci_2"), false);
        for view in [
            SecretView::of(Some(&secret("sci_1", "v", "v")), &resource),
            SecretView::of(Some(&secret("sci_2", "edited", "v")), &resource),
            SecretView::of(None, &resource),
        ] {
            let summary = summarize(&resource, &view, &[]);
            assert_eq!(summary["secret"]["holdsCurrent"], false, "{view:?}");
            assert!(render_text(&summary).contains("NOT Ready"));
        }
    }
}
