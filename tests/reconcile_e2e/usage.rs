//! Issue 14, part 1: usage-aware retirement. With `spec.rotation.retireWhenUnusedFor` the previous secret outlives
//! its grace period while EIAM's `LastUsedTime` says something still uses it (the fake's `/_fake/secrets/use`
//! records a use, as an OAuth client's token request would), and is retired once idle, or at `maxGracePeriod`
//! regardless with a Warning.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A use of `secret_id` by an OAuth client, as EIAM records it.
async fn use_secret(s: &Scenario, application: &str, secret_id: &str) {
    s.fake
        .admin(
            "secrets/use",
            json!({ "instanceId": INSTANCE, "applicationId": application, "secretId": secret_id }),
        )
        .await;
}

/// Rotates `name` once and returns (previous, current) secret ids and when the rotation was seen published.
async fn rotate(s: &Scenario, name: &str) -> (String, String, jiff::Timestamp) {
    let before = s.wait_ready(name).await;
    let old = current_id(&before).expect("a current secret");
    s.request_rotation(name, "2026-11-29T12:00:00Z").await;
    let rotated = s
        .wait_for(name, "the rotation published", SOON, |o| {
            (current_id(o).is_some_and(|id| id != old) && kstatus(o) == KStatus::Current)
                .then(|| o.clone())
        })
        .await;
    let new = current_id(&rotated).expect("the new secret");
    assert_eq!(previous_id(&rotated).as_deref(), Some(old.as_str()));
    (old, new, jiff::Timestamp::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_a_previous_secret_in_use_is_kept_past_its_grace_period_and_retired_once_idle() {
    const APP: &str = "app_usage_idle";
    let mut s = Scenario::new("i14-usage-idle", &[APP]).await;
    s.start_operator().await;
    s.create(
        "used",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                "rotation": { "gracePeriod": "2s", "retireWhenUnusedFor": "10s", "maxGracePeriod": "120s" } }),
    )
    .await;
    let (old, new, _) = rotate(&s, "used").await;
    // A client still uses the old secret right after the rotation.
    use_secret(&s, APP, &old).await;
    let last_use = jiff::Timestamp::now();

    // Past the grace period: kept, Ready, and the status shows the use.
    let held = s
        .wait_for(
            "used",
            "the previous secret kept with its last use",
            SOON,
            |o| {
                let status = o.status.as_ref()?;
                (status.previous_secret_id.as_deref() == Some(old.as_str())
                    && status.previous_last_used_time.is_some()
                    && condition(o, "Ready").is_some_and(|c| c.message.contains("still in use")))
                .then(|| o.clone())
            },
        )
        .await;
    assert_eq!(kstatus(&held), KStatus::Current, "Ready while waiting");
    assert_eq!(current_id(&held).as_deref(), Some(new.as_str()));
    assert!(
        s.calls_of("Disable").await.is_empty(),
        "nothing retired while in use"
    );

    // Idle for retireWhenUnusedFor: retired.
    let retired = s
        .wait_for(
            "used",
            "the previous secret retired once idle",
            Duration::from_secs(60),
            |o| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.previous_secret_id.is_none())
                    .then(|| o.clone())
            },
        )
        .await;
    assert_eq!(current_id(&retired).as_deref(), Some(new.as_str()));
    let disables = s.calls_of("Disable").await;
    assert_eq!(disables.len(), 1, "one Disable: {disables:?}");
    let idle_for = call_time(&disables[0]).duration_since(last_use);
    assert!(
        idle_for >= jiff::SignedDuration::from_secs(9),
        "retired {idle_for:?} after the last use, not before retireWhenUnusedFor (10s, 1s of clock rounding)"
    );
    s.wait_event("used", "Normal", "Retired").await;
    assert_eq!(s.fake.secrets(INSTANCE, APP).await.len(), 1);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i14_a_previous_secret_still_in_use_is_retired_at_max_grace_period_with_a_warning() {
    const APP: &str = "app_usage_max";
    let mut s = Scenario::new("i14-usage-max", &[APP]).await;
    s.start_operator().await;
    s.create(
        "busy",
        json!({ "instanceId": INSTANCE, "applicationId": APP, "expiresAfter": "720h",
                "rotation": { "gracePeriod": "2s", "retireWhenUnusedFor": "1h", "maxGracePeriod": "12s" } }),
    )
    .await;
    let (old, new, published) = rotate(&s, "busy").await;
    use_secret(&s, APP, &old).await;

    let warning = s.wait_event("busy", "Warning", "RetiredWhileInUse").await;
    let note = warning.note.clone().unwrap_or_default();
    assert!(
        note.contains(&old) && note.contains("last used"),
        "the Warning names the secret and its last use: {note}"
    );
    let disables = s.calls_of("Disable").await;
    assert_eq!(disables.len(), 1, "{disables:?}");
    let held_for = call_time(&disables[0]).duration_since(published);
    assert!(
        held_for >= jiff::SignedDuration::from_secs(10),
        "retired {held_for:?} after the rotation was published: not before maxGracePeriod (12s)"
    );
    let held = s.fake.secrets(INSTANCE, APP).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].secret_id, new);
    s.finish().await;
}
