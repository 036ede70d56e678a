//! Issue 14, part 2: rotation windows. A scheduled renewal that comes due outside every window waits for the next
//! one to open (`status.renewalTime` says when); one whose next window opens too close to the secret's expiry
//! rotates when due, with a Warning `RotatedOutsideWindow`.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_a_scheduled_renewal_is_held_until_a_window_opens() {
    const APP: &str = "app_window_held";
    let mut s = Scenario::new("i14-window-held", &[APP]).await;
    s.start_operator().await;
    // Due 30 s after the first issue; the only window opens at the start of a minute at least 45 s from now (once
    // an hour, for one minute): the renewal must wait for it.
    let opens = jiff::Timestamp::from_second(
        (jiff::Timestamp::now().as_second() + 45).div_euclid(60) * 60 + 60,
    )
    .expect("a minute boundary");
    let minute = opens.to_zoned(jiff::tz::TimeZone::UTC).minute();
    s.create(
        "held",
        json!({ "instanceId": INSTANCE, "applicationId": APP,
                "expiresAfter": "24h", "renewBefore": "23h59m30s",
                "rotation": { "gracePeriod": "5s",
                              "windows": [{ "schedule": format!("{minute} * * * *"), "duration": "1m" }] } }),
    )
    .await;
    let issued = s.wait_ready("held").await;
    let first = current_id(&issued).expect("first secret");
    let planned = issued
        .status
        .as_ref()
        .and_then(|s| s.renewal_time.clone())
        .map(|t| t.0);
    assert_eq!(
        planned,
        Some(opens),
        "status.renewalTime is the window's opening, not the due time"
    );
    let rotated = s
        .wait_for(
            "held",
            "the rotation in the window",
            Duration::from_secs(150),
            |o| {
                current_id(o)
                    .is_some_and(|id| id != first)
                    .then(|| o.clone())
            },
        )
        .await;
    assert!(current_id(&rotated).is_some());
    let creates = s.calls_of("Create").await;
    assert_eq!(creates.len(), 2, "{creates:?}");
    let rotated_at = call_time(&creates[1]);
    assert!(
        rotated_at >= opens && rotated_at < opens + jiff::SignedDuration::from_secs(60),
        "rotated at {rotated_at}, not in the window opening at {opens}"
    );
    assert_eq!(
        s.event_count("held", "Warning", "RotatedOutsideWindow")
            .await,
        0
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_a_renewal_whose_window_opens_after_expiry_rotates_when_due_with_a_warning() {
    const APP: &str = "app_window_forced";
    let mut s = Scenario::new("i14-window-forced", &[APP]).await;
    s.start_operator().await;
    // The only window opens on 1 January: long after this 24h secret expires.
    s.create(
        "forced",
        json!({ "instanceId": INSTANCE, "applicationId": APP,
                "expiresAfter": "24h", "renewBefore": "23h59m45s",
                "rotation": { "gracePeriod": "5s",
                              "windows": [{ "schedule": "0 0 1 JAN *", "duration": "1h",
                                            "timeZone": "Asia/Shanghai" }] } }),
    )
    .await;
    let issued = s.wait_ready("forced").await;
    let first = current_id(&issued).expect("first secret");
    let warning = s
        .wait_event("forced", "Warning", "RotatedOutsideWindow")
        .await;
    let note = warning.note.clone().unwrap_or_default();
    assert!(
        note.contains(&first) && note.contains("outside spec.rotation.windows"),
        "{note}"
    );
    s.wait_for("forced", "the forced rotation published", SOON, |o| {
        (current_id(o).is_some_and(|id| id != first) && kstatus(o) == KStatus::Current)
            .then(|| o.clone())
    })
    .await;
    s.finish().await;
}
