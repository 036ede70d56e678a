//! The JSON logs of an issue and a rotation: the expected events in order, EIAM's RequestId on every cloud call
//! line, the reconcile span's namespace/resource/trace id, and no secret value anywhere.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{control_plane, wait_until};
use crate::support::{
    ACCESS_KEY_SECRET, OperatorSpec, create_resource, fake, get_resource, request_rotation, sample,
    secret_values, wait_ready,
};

const CREATE: &str = "CreateApplicationClientSecret";

fn message(record: &Value) -> &str {
    record["fields"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_logs_its_steps_with_request_ids_and_never_a_secret_value() {
    let cp = control_plane().await;
    let ns = cp.namespace("ops-logs").await;
    let client = cp.client().await;
    let fake = fake(json!([])).await;
    let operator = OperatorSpec::new(cp, ns.name(), &fake.url()).start().await;

    create_resource(&client, ns.name(), "web").await;
    let issued = wait_ready(&client, ns.name(), "web", Duration::from_secs(60)).await;
    let first = issued
        .status
        .and_then(|s| s.current_secret_id)
        .expect("first secret");
    let asked = request_rotation(&client, ns.name(), "web").await;
    let second = wait_until("the rotation", Duration::from_secs(60), || async {
        let status = get_resource(&client, ns.name(), "web").await.status?;
        let done = status.last_handled_rotate_at.as_deref() == Some(asked.as_str())
            && status.current_secret_id.as_deref() != Some(first.as_str());
        done.then_some(status.current_secret_id?)
    })
    .await;
    let values = secret_values(&fake);
    assert_eq!(
        values.len(),
        2,
        "both secrets are held during the grace period"
    );
    // Let the reconcile that wrote the rotation finish logging.
    wait_until(
        "the rotation's reconcile to end",
        Duration::from_secs(30),
        || async {
            let in_flight = sample(
                &operator.scrape().await,
                "eiam_operator_reconciles_in_flight",
            );
            (in_flight == Some(0.0)).then_some(())
        },
    )
    .await;
    let records = operator.records();

    // The expected events, in order: two Creates (each logged with its RequestId and secret id) and the two
    // Events the planner emits for them.
    let steps: Vec<String> = records
        .iter()
        .filter_map(|r| match message(r) {
            "EIAM client secret created" => Some(format!(
                "created {}",
                r["fields"]["secret_id"].as_str().unwrap_or_default()
            )),
            "event" => Some(format!(
                "event {}",
                r["fields"]["reason"].as_str().unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            format!("created {first}"),
            "event Issued".to_owned(),
            format!("created {second}"),
            "event Rotated".to_owned(),
        ],
        "log steps"
    );

    // Every cloud call line names EIAM's RequestId; the Creates also appear as call lines.
    let call_lines: Vec<&Value> = records
        .iter()
        .filter(|r| r["fields"]["action"].is_string() && message(r).starts_with("EIAM "))
        .collect();
    assert!(
        call_lines
            .iter()
            .filter(|r| r["fields"]["action"] == CREATE && message(r) == "EIAM call succeeded")
            .count()
            == 2,
        "{call_lines:#?}"
    );
    let recorded: Vec<String> = fake.calls().iter().map(|c| c.request_id.clone()).collect();
    for line in &call_lines {
        let request_id = line["fields"]["request_id"].as_str().unwrap_or_default();
        assert!(!request_id.is_empty(), "no RequestId: {line}");
        assert!(
            recorded.iter().any(|r| r == request_id),
            "RequestId {request_id} is not one the fake answered: {line}"
        );
    }

    // Lines logged inside a reconcile carry the resource and a trace id.
    let in_reconcile: Vec<&Value> = records
        .iter()
        .filter(|r| r["span"]["name"] == "reconcile")
        .collect();
    assert!(!in_reconcile.is_empty());
    for record in &in_reconcile {
        assert_eq!(record["span"]["namespace"], ns.name(), "{record}");
        assert_eq!(record["span"]["resource"], "web", "{record}");
        let trace_id = record["span"]["trace_id"].as_str().unwrap_or_default();
        assert_eq!(trace_id.len(), 16, "{record}");
    }
    assert!(
        call_lines.iter().all(|r| r["span"]["name"] == "reconcile"),
        "an EIAM call outside a reconcile span"
    );

    // No secret value (nor the AccessKey secret) in any line, on either stream.
    let output = operator.process.output();
    for value in values.iter().map(String::as_str).chain([ACCESS_KEY_SECRET]) {
        assert!(
            !output.contains(value),
            "a secret value leaked into the logs"
        );
    }
    println!(
        "rotation logs: {} lines, {} EIAM call lines with RequestIds, {} secret values checked absent",
        output.lines().count(),
        call_lines.len(),
        values.len() + 1
    );

    let metrics = operator.scrape().await;
    let web = format!("{{namespace=\"{}\",name=\"web\"}}", ns.name());
    assert_eq!(
        sample(&metrics, &format!("eiam_operator_rotations_total{web}")),
        Some(1.0),
        "{metrics}"
    );
}
