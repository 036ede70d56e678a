//! Behaviour 11: cloud faults. Transient ones (throttling, 503, latency, a dropped Create) end in Ready, with
//! backoff visible in the call log and a List before any Create that follows an ambiguous one; permanent ones
//! (unknown AccessKey, unknown application) stall with EIAM's Code, Message and RequestId, without a retry storm.

use std::time::Duration;

use eiam_operator::fake::RecordedCall;
use serde_json::{Value, json};

use crate::common::fake_eiam::short_action;
use crate::support::*;

/// Runs one transient-fault scenario: faults set before the operator starts, then a first issue that must end
/// Ready. Returns the scenario (for more assertions) and the call log.
async fn ready_despite(name: &str, rules: Value) -> (Scenario, Vec<RecordedCall>) {
    const APP: &str = "app_faulty";
    let mut s = Scenario::new(name, &[APP]).await;
    s.fake.set_faults(rules).await;
    s.start_operator().await;
    s.create(
        "faulty",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let acs = s
        .wait_for(
            "faulty",
            "Ready despite the faults",
            Duration::from_secs(90),
            |o| (kstatus(o) == KStatus::Current).then(|| o.clone()),
        )
        .await;
    s.wait_reconciled("faulty").await;
    let calls = s.fake.calls().await;
    eprintln!("[{name}] calls: {}", render(&calls));

    // Exactly one secret, the published one.
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "{name}: one secret: {held:?}");
    assert_eq!(current_id(&acs), Some(held[0].secret_id.clone()));
    let secret = s.secret_api().get("faulty").await.expect("Secret");
    assert_eq!(data(&secret, "clientSecret"), held[0].client_secret);

    // Backoff: after every failed call the next one waits, honouring x-acs-retry-after (1 s by default).
    for pair in calls.windows(2) {
        if pair[0].outcome != "OK" {
            let gap = call_time(&pair[1]).duration_since(call_time(&pair[0]));
            assert!(
                gap.as_secs_f64() >= 0.9,
                "{name}: call {} came {gap:?} after failed call {} ({}): no backoff\n{}",
                pair[1].seq,
                pair[0].seq,
                pair[0].outcome,
                render(&calls)
            );
        }
    }
    (s, calls)
}

fn render(calls: &[RecordedCall]) -> String {
    calls
        .iter()
        .map(|c| {
            format!(
                "#{} {} {} {}",
                c.seq,
                &c.time[11..23.min(c.time.len())],
                short_action(&c.action),
                c.outcome
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Transient faults, four scenarios side by side: the first two calls throttled; 503 for the first three calls; 3 s of
/// latency on every call; the first Create's connection dropped after EIAM applied it (an ambiguous Create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_transient_cloud_faults_end_ready_with_backoff() {
    let throttled = ready_despite(
        "b11-throttle",
        json!([{ "kind": "throttle", "next": 2, "retryAfterMs": 1000 }]),
    );
    let unavailable = ready_despite(
        "b11-unavailable",
        json!([{ "kind": "serverError", "status": 503, "next": 3 }]),
    );
    let slow = ready_despite(
        "b11-latency",
        json!([{ "kind": "latency", "latencyMs": 3000 }]),
    );
    let ambiguous = ready_despite(
        "b11-ambiguous-create",
        json!([{ "kind": "dropConnection", "when": "after",
                 "action": "CreateApplicationClientSecret", "next": 1 }]),
    );
    let (
        (throttled, throttled_calls),
        (unavailable, unavailable_calls),
        (slow, slow_calls),
        (ambiguous, ambiguous_calls),
    ) = tokio::join!(throttled, unavailable, slow, ambiguous);

    // Throttling: some calls were throttled, and there was no burst of retries.
    let throttles = throttled_calls
        .iter()
        .filter(|c| c.outcome.starts_with("Throttling"))
        .count();
    assert!(throttles >= 1, "the fault fired");
    assert!(
        throttled_calls.len() <= 8,
        "no retry storm under throttling: {}",
        render(&throttled_calls)
    );
    // 503: the three failures were retried with growing waits.
    let failures: Vec<&RecordedCall> = unavailable_calls
        .iter()
        .filter(|c| c.outcome != "OK")
        .collect();
    assert_eq!(failures.len(), 3, "{}", render(&unavailable_calls));
    // The first is the Create (ambiguous: the reconcile fails, the controller backs off, the marker makes the
    // next reconcile List); the List is then retried in place with growing waits.
    let waits: Vec<f64> = unavailable_calls
        .windows(2)
        .take(3)
        .filter(|p| p[0].action == p[1].action)
        .map(|p| {
            call_time(&p[1])
                .duration_since(call_time(&p[0]))
                .as_secs_f64()
        })
        .collect();
    assert!(
        waits.len() >= 2 && waits.windows(2).all(|w| w[1] >= w[0] * 1.5),
        "exponential backoff between the retries of one call: {waits:?}\n{}",
        render(&unavailable_calls)
    );
    // Latency: every call took 3 s and the operator waited for the answers.
    assert!(
        slow_calls.iter().all(|c| c.outcome == "OK"),
        "{}",
        render(&slow_calls)
    );
    assert_eq!(
        slow_calls
            .iter()
            .filter(|c| short_action(&c.action) == "Create")
            .count(),
        1
    );
    // Ambiguous Create: the next call is a List, and the minted secret is adopted — no second Create.
    let dropped = ambiguous_calls
        .iter()
        .position(|c| c.outcome.starts_with("ConnectionDropped"))
        .expect("the Create was dropped");
    assert_eq!(short_action(&ambiguous_calls[dropped].action), "Create");
    assert_eq!(
        short_action(&ambiguous_calls[dropped + 1].action),
        "List",
        "a List comes before anything else after an ambiguous Create: {}",
        render(&ambiguous_calls)
    );
    assert_eq!(
        ambiguous_calls
            .iter()
            .filter(|c| short_action(&c.action) == "Create")
            .count(),
        1,
        "the secret the dropped Create minted was adopted: {}",
        render(&ambiguous_calls)
    );
    throttled.finish().await;
    unavailable.finish().await;
    slow.finish().await;
    ambiguous.finish().await;
}

/// Permanent errors stall: `Stalled=True` with EIAM's Code, Message and RequestId, and no retry storm.
async fn stalls_on(
    name: &str,
    app_in_fake: bool,
    access_key: (&str, &str),
    code: &str,
    eiam_message: &str,
) -> Scenario {
    const APP: &str = "app_permanent";
    let apps: &[&str] = if app_in_fake {
        &[APP]
    } else {
        &["app_something_else"]
    };
    let mut s = Scenario::new(name, apps).await;
    let spec = s.operator_spec().access_key(access_key.0, access_key.1);
    s.start_operator_with(spec).await;
    s.create(
        "doomed",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h" }),
    )
    .await;
    let stalled = s
        .wait_for("doomed", "Stalled=True", SOON, |o| {
            (condition_status(o, "Stalled") == "True").then(|| o.clone())
        })
        .await;
    assert_eq!(kstatus(&stalled), KStatus::Failed);
    let message = condition(&stalled, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let calls = s.fake.calls().await;
    let failed = calls.first().expect("one call was made");
    assert_eq!(failed.outcome, code, "{name}");
    assert!(
        message.contains(code),
        "{name}: the Code in the message: {message}"
    );
    assert!(
        message.contains(&failed.request_id),
        "{name}: the RequestId {} in the message: {message}",
        failed.request_id
    );
    assert!(
        message.contains(eiam_message),
        "{name}: EIAM's Message in the message: {message}"
    );

    // No retry storm: over the next 10 s (a time-based property), at most one more attempt.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = s.fake.calls().await;
    eprintln!(
        "[{name}] calls in the 10 s after stalling: {}",
        later.len() - calls.len()
    );
    assert!(
        later.len() <= 2,
        "{name}: no retry storm after a permanent error: {} calls",
        later.len()
    );
    // One Warning event on the transition into Stalled, carrying the same Code, not one per retry.
    let warnings: Vec<_> = s
        .events("doomed")
        .await
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("EiamError")
        })
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "{name}: one EiamError Warning event: {warnings:?}"
    );
    assert!(
        warnings[0].series.is_none(),
        "{name}: the Warning was recorded once, not repeated: {:?}",
        warnings[0].series
    );
    let note = warnings[0].note.clone().unwrap_or_default();
    assert!(note.contains(code), "{name}: the Code in the event: {note}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_permanent_cloud_errors_stall_with_code_message_and_request_id() {
    let (bad_key, unknown_app) = tokio::join!(
        stalls_on(
            "b11-bad-access-key",
            true,
            ("LTAI5tUnknownKey", "whatever"),
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found."
        ),
        stalls_on(
            "b11-unknown-application",
            false,
            (AK_ID, AK_SECRET),
            "EntityNotExists.Application",
            "The specified application app_permanent does not exist."
        ),
    );
    bad_key.finish().await;
    unknown_app.finish().await;
}

/// Issue 12.1: `expiresAfter: 24h`, the documented minimum, with EIAM's clock two minutes ahead, three seconds of
/// latency on every Create and a throttled first attempt: the ExpirationTime is computed when each request is
/// signed and kept inside EIAM's bounds, so the resource ends Ready instead of stalling on
/// `InvalidParameter.ExpirationTime`; the secret lives a little over a day and renews when the spec says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i12_the_minimum_lifetime_survives_latency_retries_and_clock_skew() {
    const APP: &str = "app_one_day";
    let mut s = Scenario::new("i12-one-day", &[APP]).await;
    s.fake.admin("clock", json!({ "skewMs": 120_000 })).await;
    s.fake
        .set_faults(json!([
            { "kind": "latency", "action": "CreateApplicationClientSecret", "latencyMs": 3000 },
            { "kind": "throttle", "action": "CreateApplicationClientSecret", "next": 1 }
        ]))
        .await;
    s.start_operator().await;
    s.create(
        "one-day",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "24h", "renewBefore": "8h" }),
    )
    .await;
    let acs = s
        .wait_for("one-day", "Ready", Duration::from_secs(90), |o| {
            (kstatus(o) == KStatus::Current).then(|| o.clone())
        })
        .await;
    let creates = s.calls_of("Create").await;
    assert!(
        creates
            .iter()
            .all(|c| c.outcome != "InvalidParameter.ExpirationTime"),
        "no Create refused for its ExpirationTime: {}",
        render(&creates)
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(current_id(&acs), Some(held[0].secret_id.clone()));
    // The renewal is 16 h after issue, as the spec says, although the secret got a few minutes more than a day.
    let status = acs.status.clone().expect("status");
    let issued = status.last_rotation_time.expect("lastRotationTime").0;
    let renewal = status.renewal_time.expect("renewalTime").0;
    let not_after = status.not_after.expect("notAfter").0;
    let renews_in = issued.duration_until(renewal).as_secs();
    assert!(
        (16 * 3600 - 60..=16 * 3600 + 60).contains(&renews_in),
        "renewal {renews_in} s after issue"
    );
    let lives = issued.duration_until(not_after).as_secs();
    assert!(
        (24 * 3600..24 * 3600 + 15 * 60).contains(&lives),
        "lives {lives} s"
    );
    s.finish().await;
}
