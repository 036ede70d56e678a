//! Unit tests of the planner, one rule of DESIGN.md §2 at a time.

use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::eiam::expiration::expiration_for;

const HOUR: Duration = Duration::from_secs(3600);

fn hours(n: u64) -> Duration {
    HOUR * n as u32
}

/// A fixed epoch so that tests read in offsets.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn spec() -> PlanSpec {
    PlanSpec {
        expires_after: Some(hours(2160)),
        renew_before: hours(720),
        grace_period: HOUR,
        retire_when_unused_for: None,
        max_grace_period: HOUR,
        windows: Ok(RotationWindows::default()),
        import_secret_id: None,
        deletion_policy: DeletionPolicy::Delete,
        has_restart_targets: true,
    }
}

fn fresh() -> PlanInput {
    PlanInput {
        now: at(0),
        generation: 1,
        deleting: false,
        has_finalizer: true,
        spec: spec(),
        rotate_request: None,
        status: PlanStatus::default(),
        eiam: EiamView::Unobserved,
        create_refused: false,
        kube_secret: KubeSecret::Missing,
        provider: ProviderState::Ready,
        conflict: None,
        restart_denied: None,
        invalid_template: None,
        drift_check_due: false,
    }
}

fn secret(id: &str, enabled: bool, expires_at: Option<Timestamp>) -> ObservedSecret {
    ObservedSecret {
        secret_id: id.to_string(),
        client_id: "app_1".to_string(),
        enabled,
        expires_at,
        last_used: None,
    }
}

fn holding(id: &str) -> KubeSecret {
    KubeSecret::Present {
        secret_id: Some(id.to_string()),
        data_in_sync: true,
        owned_by_us: true,
    }
}

/// A minimal EIAM for walking a pass: the list, and ids for what Create mints.
struct Eiam {
    secrets: Vec<ObservedSecret>,
    minted: usize,
    calls: Vec<&'static str>,
}

impl Eiam {
    fn with(secrets: Vec<ObservedSecret>) -> Self {
        Eiam {
            secrets,
            minted: 0,
            calls: Vec::new(),
        }
    }
}

/// Runs one reconcile pass the way the executor does (plan, act, observe, re-plan after a
/// barrier) and returns every action and the status it would persist, and updates `input` to
/// the state the next pass starts from (persisted status, Secret; EIAM not listed).
fn pass(input: &mut PlanInput, eiam: &mut Eiam) -> (Vec<Action>, Plan) {
    let mut all = Vec::new();
    input.eiam = EiamView::Unobserved;
    input.create_refused = false;
    for _ in 0..5 {
        let plan = plan(input);
        for action in &plan.actions {
            let outcome = match action {
                Action::ListSecrets => {
                    eiam.calls.push("List");
                    ActionOutcome::Listed(eiam.secrets.clone())
                }
                Action::CreateSecret { lifetime } => {
                    let expiration = lifetime.map(|l| expiration_for(input.now, l));
                    eiam.calls.push("Create");
                    if eiam.secrets.len() >= SLOT_LIMIT {
                        // EIAM refuses (QuotaExceeded): nothing minted; the re-plan lists.
                        ActionOutcome::QuotaExceeded
                    } else {
                        eiam.minted += 1;
                        let created = secret(&format!("sci_new{}", eiam.minted), true, expiration);
                        eiam.secrets.push(created.clone());
                        ActionOutcome::Created(created)
                    }
                }
                Action::DisableSecret { secret_id } => {
                    eiam.calls.push("Disable");
                    for s in eiam
                        .secrets
                        .iter_mut()
                        .filter(|s| &s.secret_id == secret_id)
                    {
                        s.enabled = false;
                    }
                    ActionOutcome::Done
                }
                Action::DeleteSecret { secret_id } => {
                    eiam.calls.push("Delete");
                    eiam.secrets.retain(|s| &s.secret_id != secret_id);
                    ActionOutcome::Done
                }
                Action::Publish { secret_id, .. } => {
                    let listed = eiam.secrets.iter().find(|s| &s.secret_id == secret_id);
                    assert!(
                        listed.is_some_and(|s| s.enabled),
                        "published an unlisted secret"
                    );
                    ActionOutcome::Done
                }
                _ => ActionOutcome::Done,
            };
            input.observe(action, outcome);
            all.push(action.clone());
        }
        if !plan.needs_replan() {
            input.status = plan.status.clone();
            input.eiam = EiamView::Unobserved;
            input.create_refused = false;
            return (all, plan);
        }
        input.status = plan.status.clone();
    }
    panic!("the pass did not converge in 5 plans: {all:?}");
}

fn eiam_calls(actions: &[Action]) -> usize {
    actions.iter().filter(|a| a.calls_eiam()).count()
}

fn events(actions: &[Action]) -> Vec<(EventKind, &str)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some((e.kind, e.reason.as_str())),
            _ => None,
        })
        .collect()
}

fn condition(status: &PlanStatus, kind: ConditionType) -> (ConditionStatus, String) {
    let c = status.condition(kind).expect("condition present");
    (c.status, c.reason.clone())
}

/// A resource issued at `at(0)` with secret `sci_a`, Secret in sync.
fn issued() -> (PlanInput, Eiam) {
    let mut input = fresh();
    let mut eiam = Eiam::with(vec![]);
    pass(&mut input, &mut eiam);
    assert_eq!(input.status.current.as_ref().unwrap().secret_id, "sci_new1");
    (input, eiam)
}

fn current_id(input: &PlanInput) -> &str {
    &input.status.current.as_ref().unwrap().secret_id
}

// ------------------------------------------------------------------------- first issue

#[test]
fn first_issue_creates_without_listing() {
    let input = fresh();
    let second = plan(&input);
    let expiration = at(0).checked_add(hours(2160)).unwrap();
    assert_eq!(
        second.actions,
        vec![
            Action::WritePendingCreate {
                since: at(0),
                unmanaged_secret_ids: vec![]
            },
            Action::CreateSecret {
                lifetime: Some(hours(2160))
            },
        ]
    );
    assert_eq!(second.status.pending_create_since, Some(at(0)));

    let mut input = fresh();
    let mut eiam = Eiam::with(vec![]);
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.calls, vec!["Create"], "one EIAM call per new resource");
    assert!(actions.contains(&Action::Publish {
        secret_id: "sci_new1".into(),
        client_id: "app_1".into(),
        not_after: Some(expiration),
    }));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RestartTargets { .. })),
        "nothing consumed a previous value: no restart at first issue"
    );
    assert_eq!(events(&actions), vec![(EventKind::Normal, reasons::ISSUED)]);
    let status = &plan.status;
    assert_eq!(status.pending_create_since, None);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.last_rotation_time, Some(at(0)));
    assert_eq!(
        status.renewal_time,
        Some(expiration.checked_sub(hours(720)).unwrap())
    );
    assert_eq!(
        condition(status, ConditionType::Ready),
        (ConditionStatus::True, reasons::SECRET_PUBLISHED.into())
    );
    assert_eq!(
        condition(status, ConditionType::Reconciling).0,
        ConditionStatus::False
    );
    assert_eq!(
        condition(status, ConditionType::Stalled).0,
        ConditionStatus::False
    );
    assert_eq!(plan.requeue_after, Some(hours(2160 - 720)));
}

#[test]
fn missing_finalizer_is_added_before_anything_else() {
    let mut input = fresh();
    input.has_finalizer = false;
    assert_eq!(
        plan(&input).actions,
        vec![
            Action::AddFinalizer,
            Action::WritePendingCreate {
                since: at(0),
                unmanaged_secret_ids: vec![]
            },
            Action::CreateSecret {
                lifetime: Some(hours(2160))
            }
        ]
    );
}

#[test]
fn a_first_issue_lists_first_when_a_create_may_have_happened_or_cannot_be_told_apart() {
    let listed_first = |input: &PlanInput| plan(input).actions == vec![Action::ListSecrets];
    let mut pending = fresh();
    pending.status.pending_create_since = Some(at(0));
    assert!(
        listed_first(&pending),
        "write-ahead marker: adopt, never mint a third"
    );
    let mut import = fresh();
    import.spec.import_secret_id = Some("sci_x".into());
    assert!(listed_first(&import), "import");
    let mut forever = fresh();
    forever.spec.expires_after = None;
    forever.spec.renew_before = Duration::ZERO;
    assert!(
        listed_first(&forever),
        "never-expiring: adoption could not tell ours apart"
    );
    let mut seen = fresh();
    seen.status.unmanaged_secret_ids = vec!["sci_f".into()];
    assert!(listed_first(&seen), "foreign secrets already seen");
}

#[test]
fn no_expiry_sends_no_expiration_and_schedules_nothing() {
    let mut input = fresh();
    input.spec.expires_after = None;
    input.spec.renew_before = Duration::ZERO;
    let mut eiam = Eiam::with(vec![]);
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::CreateSecret { lifetime: None }));
    assert_eq!(plan.status.renewal_time, None);
    assert_eq!(plan.status.current.as_ref().unwrap().not_after, None);
    assert_eq!(plan.requeue_after, None);

    input.now = at(10 * 365 * 24 * 3600);
    let later = super::plan(&input);
    assert!(
        later.actions.is_empty(),
        "never renewed: {:?}",
        later.actions
    );
}

#[test]
fn first_issue_records_the_unmanaged_secrets_before_create() {
    let mut input = fresh();
    input.eiam = EiamView::Listed(vec![secret("sci_foreign", true, None)]);
    let plan = plan(&input);
    assert_eq!(
        plan.actions[0],
        Action::WritePendingCreate {
            since: at(0),
            unmanaged_secret_ids: vec!["sci_foreign".into()]
        }
    );
    assert_eq!(
        plan.status.unmanaged_secret_ids,
        vec!["sci_foreign".to_string()]
    );
}

#[test]
fn write_ahead_timestamps_are_whole_seconds() {
    let mut input = fresh();
    input.now = at(0).checked_add(Duration::from_millis(1500)).unwrap();
    input.eiam = EiamView::Listed(vec![]);
    let plan = plan(&input);
    assert_eq!(plan.status.pending_create_since, Some(at(2)));
    assert_eq!(
        plan.actions[1],
        Action::CreateSecret {
            lifetime: Some(hours(2160))
        }
    );
}

// ------------------------------------------------------------------------- crash safety

#[test]
fn crash_after_create_adopts_instead_of_minting() {
    let mut input = fresh();
    input.eiam = EiamView::Listed(vec![secret("sci_foreign", true, None)]);
    let write_ahead = plan(&input);
    // Persisted: the write-ahead marker. The Create went through, then the process died.
    let mut restarted = fresh();
    restarted.status = write_ahead.status.clone();
    restarted.now = at(30);
    assert_eq!(plan(&restarted).actions, vec![Action::ListSecrets]);
    let expiration = at(0).checked_add(hours(2160)).unwrap();
    restarted.eiam = EiamView::Listed(vec![
        secret("sci_foreign", true, None),
        secret("sci_ours", true, Some(expiration)),
    ]);
    let recovered = plan(&restarted);
    assert!(
        !recovered
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateSecret { .. })),
        "minted again: {:?}",
        recovered.actions
    );
    assert_eq!(
        recovered.actions[0],
        Action::Publish {
            secret_id: "sci_ours".into(),
            client_id: "app_1".into(),
            not_after: Some(expiration)
        }
    );
    assert_eq!(
        recovered.status.current.as_ref().unwrap().secret_id,
        "sci_ours"
    );
    assert_eq!(recovered.status.pending_create_since, None);
    assert_eq!(
        recovered.status.unmanaged_secret_ids,
        vec!["sci_foreign".to_string()]
    );
}

#[test]
fn crash_between_write_ahead_and_create_mints_again() {
    let mut input = fresh();
    input.status.pending_create_since = Some(at(0));
    input.now = at(60);
    input.eiam = EiamView::Listed(vec![]);
    let plan = plan(&input);
    assert_eq!(
        plan.actions,
        vec![
            Action::WritePendingCreate {
                since: at(60),
                unmanaged_secret_ids: vec![]
            },
            Action::CreateSecret {
                lifetime: Some(hours(2160))
            },
        ]
    );
}

#[test]
fn foreign_secret_appearing_during_a_pending_create_is_not_adopted() {
    let mut input = fresh();
    input.status.pending_create_since = Some(at(0));
    input.now = at(60);
    // Someone else minted a secret with another lifetime while our Create failed.
    input.eiam = EiamView::Listed(vec![secret("sci_theirs", true, Some(at(86_400 * 7)))]);
    let plan = plan(&input);
    assert!(matches!(plan.actions[1], Action::CreateSecret { .. }));
    assert_eq!(
        plan.actions[0],
        Action::WritePendingCreate {
            since: at(60),
            unmanaged_secret_ids: vec!["sci_theirs".into()]
        }
    );
}

#[test]
fn two_indistinguishable_candidates_stall_as_ambiguous_and_touch_nothing() {
    let mut input = fresh();
    input.spec.expires_after = None;
    input.status.pending_create_since = Some(at(0));
    input.eiam = EiamView::Listed(vec![
        secret("sci_x", true, None),
        secret("sci_y", true, None),
    ]);
    let plan = plan(&input);
    assert!(plan.actions.iter().all(|a| matches!(a, Action::Event(_))));
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::ADOPTION_AMBIGUOUS.into())
    );
    assert_eq!(
        plan.status.pending_create_since,
        Some(at(0)),
        "the marker stays"
    );
}

#[test]
fn candidate_within_tolerance_of_the_sent_expiration_is_adopted() {
    let mut input = fresh();
    input.status.pending_create_since = Some(at(0));
    let sent = at(0).checked_add(hours(2160)).unwrap();
    // The server rounded the expiration a little; a foreign one is far off.
    input.eiam = EiamView::Listed(vec![
        secret(
            "sci_ours",
            true,
            Some(sent.checked_add(Duration::from_secs(1)).unwrap()),
        ),
        secret(
            "sci_theirs",
            true,
            Some(sent.checked_add(hours(5)).unwrap()),
        ),
    ]);
    let plan = plan(&input);
    assert_eq!(plan.status.current.as_ref().unwrap().secret_id, "sci_ours");
    assert_eq!(
        plan.status.unmanaged_secret_ids,
        vec!["sci_theirs".to_string()]
    );
}

/// Issue 21: the client stamps the ExpirationTime when it signs, after the wait for the provider's budget and any
/// in-place retry. At a low `qps` that is long after the marker: the secret is still this Create's.
#[test]
fn a_create_signed_long_after_its_marker_is_adopted_not_minted_again() {
    let mut input = fresh();
    input.status.pending_create_since = Some(at(0));
    // Signed 50 minutes after the marker (a queue at qps 0.01 and three throttled tries), listed 2 h after it.
    let signed = expiration_for(at(3000), hours(2160));
    input.now = at(7200);
    input.eiam = EiamView::Listed(vec![secret("sci_late", true, Some(signed))]);
    let plan = plan(&input);
    assert_eq!(plan.status.current.as_ref().unwrap().secret_id, "sci_late");
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateSecret { .. })),
        "a second Create for the same slot: {:?}",
        plan.actions
    );
    assert_eq!(plan.status.pending_create_since, None);
    assert!(plan.status.unmanaged_secret_ids.is_empty());
}

/// The window of expiries our Create can have sent ends at the plan that looks: a secret expiring before the
/// marker's or after the List's `expiration_for` (beyond the rounding tolerance) was minted by someone else.
#[test]
fn only_expiries_between_the_marker_and_the_list_pass_for_ours() {
    let lifetime = hours(2160);
    let tolerance = ADOPTION_TOLERANCE.as_secs() as i64;
    let adopts = |expires_at: Timestamp| {
        let mut input = fresh();
        input.status.pending_create_since = Some(at(0));
        input.now = at(600);
        input.eiam = EiamView::Listed(vec![secret("sci_x", true, Some(expires_at))]);
        plan(&input)
            .status
            .current
            .is_some_and(|c| c.secret_id == "sci_x")
    };
    let earliest = expiration_for(at(0), lifetime);
    let latest = expiration_for(at(600), lifetime);
    assert!(adopts(at_after(earliest, -tolerance)));
    assert!(adopts(at_after(earliest, 300)));
    assert!(adopts(at_after(latest, tolerance)));
    assert!(!adopts(at_after(earliest, -tolerance - 1)));
    assert!(!adopts(at_after(latest, tolerance + 1)));
}

/// However late the List comes, the window ends where the executor stops signing a Create: a secret expiring as
/// one signed later would was minted by someone else.
#[test]
fn the_window_ends_at_the_signing_window_however_late_the_list() {
    let lifetime = hours(2160);
    let tolerance = ADOPTION_TOLERANCE.as_secs() as i64;
    let window = CREATE_SIGNING_WINDOW.as_secs() as i64;
    let adopts = |expires_at: Timestamp| {
        let mut input = fresh();
        input.status.pending_create_since = Some(at(0));
        input.now = at(86_400 * 30);
        input.eiam = EiamView::Listed(vec![secret("sci_x", true, Some(expires_at))]);
        plan(&input)
            .status
            .current
            .is_some_and(|c| c.secret_id == "sci_x")
    };
    assert!(adopts(expiration_for(at(window), lifetime)));
    assert!(!adopts(at_after(
        expiration_for(at(window), lifetime),
        tolerance + 1
    )));
}

#[test]
fn failed_create_keeps_the_write_ahead_marker_so_the_next_pass_lists_first() {
    let mut input = fresh();
    input.eiam = EiamView::Listed(vec![]);
    let plan = plan(&input);
    let failure = ActionFailure {
        permanent: false,
        reason: "EiamError".into(),
        message: "ServiceUnavailable (RequestId r-1)".into(),
    };
    let status = status_after_failure(&input, &plan, 1, &failure);
    assert_eq!(status.pending_create_since, Some(at(0)));
    assert_eq!(
        condition(&status, ConditionType::Reconciling),
        (ConditionStatus::True, "EiamError".into())
    );
    assert_eq!(
        status.observed_generation, None,
        "transient: still in progress"
    );
    let mut next = fresh();
    next.status = status;
    assert_eq!(super::plan(&next).actions, vec![Action::ListSecrets]);
}

#[test]
fn permanent_failure_stalls_with_the_message_and_handles_the_generation() {
    let mut input = fresh();
    input.eiam = EiamView::Listed(vec![]);
    let plan = plan(&input);
    let failure = ActionFailure {
        permanent: true,
        reason: "EiamError".into(),
        message: "Forbidden.RAM: denied (RequestId r-2)".into(),
    };
    let status = status_after_failure(&input, &plan, 0, &failure);
    assert_eq!(
        status.pending_create_since, None,
        "WritePendingCreate itself failed"
    );
    let stalled = status.condition(ConditionType::Stalled).unwrap();
    assert_eq!(stalled.status, ConditionStatus::True);
    assert!(stalled.message.contains("RequestId r-2"));
    assert_eq!(status.observed_generation, Some(1));
}

// ------------------------------------------------------------------------- steady state

#[test]
fn steady_state_plans_nothing_and_keeps_the_status() {
    let (mut input, _) = issued();
    input.kube_secret = holding("sci_new1");
    input.now = at(3600);
    let plan = plan(&input);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.status, input.status, "no status patch in steady state");
    assert_eq!(plan.requeue_after, Some(hours(2160 - 720) - HOUR));
}

#[test]
fn drift_check_lists_once_and_changes_nothing_when_all_is_well() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.drift_check_due = true;
    let before = input.status.clone();
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(actions, vec![Action::ListSecrets]);
    assert_eq!(plan.status, before);
}

// ------------------------------------------------------------------------- drift

#[test]
fn secret_deleted_in_kubernetes_is_republished_without_minting_or_restarting() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = KubeSecret::Missing;
    let (actions, _) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.calls, vec!["Create", "List"]);
    assert!(matches!(&actions[1], Action::Publish { secret_id, .. } if secret_id == "sci_new1"));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RestartTargets { .. }))
    );
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::REPAIRED)]
    );
}

#[test]
fn edited_secret_is_restored() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = KubeSecret::Present {
        secret_id: Some("sci_new1".into()),
        data_in_sync: false,
        owned_by_us: true,
    };
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(matches!(&actions[1], Action::Publish { secret_id, .. } if secret_id == "sci_new1"));
}

#[test]
fn current_deleted_in_eiam_is_replaced_with_a_warning_and_a_restart() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    eiam.secrets.clear();
    input.drift_check_due = true;
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_new2");
    assert_eq!(
        events(&actions),
        vec![
            (EventKind::Warning, reasons::SECRET_DELETED_IN_EIAM),
            (EventKind::Normal, reasons::ISSUED)
        ]
    );
    assert!(actions.contains(&Action::RestartTargets {
        secret_id: "sci_new2".into()
    }));
    assert_eq!(plan.status.previous, None);
}

#[test]
fn current_disabled_in_eiam_is_deleted_and_replaced() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    eiam.secrets[0].enabled = false;
    input.drift_check_due = true;
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DeleteSecret {
        secret_id: "sci_new1".into()
    }));
    assert!(!actions.contains(&Action::DisableSecret {
        secret_id: "sci_new1".into()
    }));
    assert_eq!(current_id(&input), "sci_new2");
    assert_eq!(eiam.secrets.len(), 1);
}

#[test]
fn target_secret_written_by_someone_else_is_never_overwritten() {
    let mut input = fresh();
    input.kube_secret = KubeSecret::Present {
        secret_id: None,
        data_in_sync: false,
        owned_by_us: false,
    };
    let plan = plan(&input);
    assert!(plan.actions.iter().all(|a| matches!(a, Action::Event(_))));
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::TARGET_NOT_OWNED.into())
    );
}

// ------------------------------------------------------------------------- renewal

#[test]
fn due_renewal_rotates_into_the_free_slot_and_restarts_targets() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(
        eiam.calls[1..],
        ["Create"],
        "no List: the status shows the free slot"
    );
    assert_eq!(current_id(&input), "sci_new2");
    let previous = plan.status.previous.as_ref().unwrap();
    assert_eq!(previous.secret_id, "sci_new1");
    assert_eq!(previous.retire_at, input.now.checked_add(HOUR).unwrap());
    assert!(actions.contains(&Action::RestartTargets {
        secret_id: "sci_new2".into()
    }));
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::ROTATED)]
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Ready).0,
        ConditionStatus::True
    );
    assert_eq!(plan.requeue_after, Some(HOUR), "next: the retirement");
}

/// EIAM shows `secret_id` last used at `when`.
fn mark_used(eiam: &mut Eiam, secret_id: &str, when: Option<Timestamp>) {
    for secret in &mut eiam.secrets {
        if secret.secret_id == secret_id {
            secret.last_used = when;
        }
    }
}

/// Rotated once under `retireWhenUnusedFor: 1h, maxGracePeriod: 24h`, at the end of the grace period, with EIAM
/// showing the previous secret (`sci_new1`) last used at `last_used`.
fn past_grace_with_usage(last_used: Option<Timestamp>) -> (PlanInput, Eiam) {
    let (mut input, mut eiam) = issued();
    input.spec.retire_when_unused_for = Some(HOUR);
    input.spec.max_grace_period = hours(24);
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    pass(&mut input, &mut eiam);
    input.kube_secret = holding("sci_new2");
    input.now = input.status.previous.as_ref().unwrap().retire_at;
    mark_used(&mut eiam, "sci_new1", last_used);
    (input, eiam)
}

#[test]
fn a_previous_secret_in_use_is_kept_past_the_grace_period_and_polled() {
    let (mut input, mut eiam) = past_grace_with_usage(None);
    let used = input.now - Duration::from_secs(600);
    mark_used(&mut eiam, "sci_new1", Some(used));
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(
        actions,
        vec![Action::ListSecrets],
        "listed, nothing retired"
    );
    let previous = plan.status.previous.as_ref().expect("kept");
    assert_eq!(previous.secret_id, "sci_new1");
    assert_eq!(previous.last_used, Some(used), "previousLastUsedTime");
    let ready = plan.status.condition(ConditionType::Ready).expect("Ready");
    assert_eq!(ready.status, ConditionStatus::True, "Ready while waiting");
    assert!(ready.message.contains("still in use"), "{ready:?}");
    // Look again after half of retireWhenUnusedFor, at most 5 minutes: here 5 minutes.
    assert_eq!(plan.requeue_after, Some(USAGE_POLL_MAX));
    // Unused for an hour since that use: retired.
    input.now = used + HOUR;
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DisableSecret {
        secret_id: "sci_new1".into()
    }));
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::RETIRED)]
    );
    assert_eq!(plan.status.previous, None);
}

#[test]
fn a_previous_secret_never_used_retires_after_the_grace_period() {
    let (mut input, mut eiam) = past_grace_with_usage(None);
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DeleteSecret {
        secret_id: "sci_new1".into()
    }));
    assert_eq!(plan.status.previous, None);
}

#[test]
fn a_previous_secret_still_used_at_max_grace_period_retires_with_a_warning() {
    let (mut input, mut eiam) = past_grace_with_usage(None);
    let published = input.status.previous.as_ref().unwrap().retire_at - HOUR;
    input.now = published + hours(24);
    let used = input.now - Duration::from_secs(60);
    mark_used(&mut eiam, "sci_new1", Some(used));
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DisableSecret {
        secret_id: "sci_new1".into()
    }));
    assert_eq!(
        events(&actions),
        vec![(EventKind::Warning, reasons::RETIRED_WHILE_IN_USE)]
    );
    let note = actions
        .iter()
        .find_map(|a| match a {
            Action::Event(e) => Some(e.note.clone()),
            _ => None,
        })
        .unwrap_or_default();
    assert!(
        note.contains(&used.to_string()),
        "names the last use: {note}"
    );
    assert_eq!(plan.status.previous, None);
}

#[test]
fn a_rotation_due_while_the_previous_is_in_use_waits_and_says_so() {
    let (mut input, mut eiam) = past_grace_with_usage(None);
    input.rotate_request = Some("now".into());
    let used = input.now;
    mark_used(&mut eiam, "sci_new1", Some(used));
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(
        actions,
        vec![Action::ListSecrets],
        "no Create: never a third secret"
    );
    assert_eq!(current_id(&input), "sci_new2");
    let message = &plan
        .status
        .condition(ConditionType::Ready)
        .expect("Ready")
        .message;
    assert!(
        message.contains("still in use") && message.contains("waits"),
        "{message}"
    );
}

#[test]
fn rotation_without_restart_targets_restarts_nothing() {
    let (mut input, mut eiam) = issued();
    input.spec.has_restart_targets = false;
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RestartTargets { .. }))
    );
}

#[test]
fn previous_is_disabled_then_deleted_after_the_grace_period() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    pass(&mut input, &mut eiam);
    input.kube_secret = holding("sci_new2");
    input.now = input.status.previous.as_ref().unwrap().retire_at;
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(
        actions,
        vec![
            Action::DisableSecret {
                secret_id: "sci_new1".into()
            },
            Action::DeleteSecret {
                secret_id: "sci_new1".into()
            },
            actions[2].clone(),
        ],
        "no List: the status names the secret to retire"
    );
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::RETIRED)]
    );
    assert_eq!(plan.status.previous, None);
    assert_eq!(eiam.secrets.len(), 1);
}

#[test]
fn rotation_due_during_a_grace_period_waits_without_calling_eiam() {
    let mut input = fresh();
    input.kube_secret = holding("sci_a");
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_a".into(),
        client_id: "app_1".into(),
        not_after: Some(at(100)),
    });
    input.status.last_rotation_time = Some(at(0));
    input.status.previous = Some(PreviousSecret {
        secret_id: "sci_p".into(),
        retire_at: at(3600),
        last_used: None,
    });
    input.now = at(50);
    let plan = plan(&input);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(3550)));
    let ready = plan.status.condition(ConditionType::Ready).unwrap();
    assert_eq!(ready.status, ConditionStatus::True);
    assert!(ready.message.contains("waits"));
}

#[test]
fn manual_rotation_happens_once_per_request_value() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.rotate_request = Some("2026-11-26T10:00:00Z".into());
    let (_, plan) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_new2");
    assert_eq!(
        plan.status.last_handled_rotate_at.as_deref(),
        Some("2026-11-26T10:00:00Z")
    );
    input.kube_secret = holding("sci_new2");
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(actions.is_empty(), "same value again: nothing, {actions:?}");
}

#[test]
fn rotate_request_present_at_first_issue_is_recorded_not_repeated() {
    let mut input = fresh();
    input.rotate_request = Some("r1".into());
    let mut eiam = Eiam::with(vec![]);
    pass(&mut input, &mut eiam);
    input.kube_secret = holding("sci_new1");
    assert_eq!(input.status.last_handled_rotate_at.as_deref(), Some("r1"));
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(actions.is_empty());
    assert_eq!(eiam.minted, 1);
}

#[test]
fn slots_held_by_foreign_secrets_stall_once_and_delete_nothing() {
    let mut input = fresh();
    let mut eiam = Eiam::with(vec![
        secret("sci_f1", true, None),
        secret("sci_f2", true, None),
    ]);
    // The first issue creates without listing; EIAM refuses, and the same pass lists and stalls.
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.minted, 0);
    assert_eq!(eiam.calls, vec!["Create", "List"]);
    assert_eq!(plan.status.pending_create_since, None, "nothing to adopt");
    assert_eq!(
        events(&actions),
        vec![(EventKind::Warning, reasons::SLOTS_EXHAUSTED)]
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::SLOTS_EXHAUSTED.into())
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Ready).0,
        ConditionStatus::False
    );
    assert_eq!(plan.status.observed_generation, Some(1));
    assert_eq!(plan.requeue_after, Some(STALLED_REQUEUE));
    let (again, replan) = pass(&mut input, &mut eiam);
    assert_eq!(again, vec![Action::ListSecrets], "no second Warning");
    assert_eq!(replan.status, plan.status, "no status patch");
}

#[test]
fn rotation_blocked_by_a_foreign_secret_stays_ready_until_the_secret_nears_expiry() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    eiam.secrets.push(secret("sci_f", true, None));
    let renewal = input.status.renewal_time.unwrap();
    input.now = renewal;
    let (actions, plan) = pass(&mut input, &mut eiam);
    // The status records no foreign secret, so the rotation creates without listing; EIAM refuses, the same pass
    // lists and finds out by whom.
    assert_eq!(eiam.calls[1..], ["Create", "List"]);
    assert_eq!(eiam.minted, 1, "the refused Create minted nothing");
    assert!(!actions.iter().any(|a| matches!(
        a,
        Action::DisableSecret { .. } | Action::DeleteSecret { .. }
    )));
    assert_eq!(current_id(&input), "sci_new1");
    assert_eq!(plan.status.unmanaged_secret_ids, ["sci_f"]);
    // Nothing is broken yet: Ready, not Stalled; the block has a condition and a Warning of its own.
    assert_eq!(
        condition(&plan.status, ConditionType::Ready),
        (ConditionStatus::True, reasons::SECRET_PUBLISHED.into())
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled).0,
        ConditionStatus::False
    );
    assert_eq!(
        condition(&plan.status, ConditionType::RotationBlocked),
        (ConditionStatus::True, reasons::SLOTS_EXHAUSTED.into())
    );
    let blocked = plan
        .status
        .condition(ConditionType::RotationBlocked)
        .unwrap()
        .message
        .clone();
    assert!(
        blocked.contains("sci_f") && !blocked.contains("sci_new1"),
        "{blocked}"
    );
    let warnings: Vec<&Action> = actions
        .iter()
        .filter(|a| matches!(a, Action::Event(e) if e.kind == EventKind::Warning))
        .collect();
    assert_eq!(warnings.len(), 1);
    assert!(matches!(warnings[0], Action::Event(e)
        if e.reason == reasons::ROTATION_BLOCKED && e.note.contains("sci_f") && !e.note.contains("sci_new1")));
    assert_eq!(plan.requeue_after, Some(BLOCKED_RETRY));

    // Still blocked a minute later: no second Warning.
    input.now = at_after(renewal, 60);
    let (again, _) = pass(&mut input, &mut eiam);
    assert!(events(&again).is_empty(), "{again:?}");

    // Close to expiry (a quarter of the renewal window left): now it is a failure.
    let not_after = input.status.current.as_ref().unwrap().not_after.unwrap();
    let window = renewal.duration_until(not_after).as_secs();
    input.now = at_after(not_after, -(window / 4));
    let (_, stalled) = pass(&mut input, &mut eiam);
    assert_eq!(
        condition(&stalled.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::SLOTS_EXHAUSTED.into())
    );

    // The foreign secret is deleted: the rotation happens at the next look.
    eiam.secrets.retain(|s| s.secret_id != "sci_f");
    let (rotated, after) = pass(&mut input, &mut eiam);
    assert!(
        rotated
            .iter()
            .any(|a| matches!(a, Action::CreateSecret { .. }))
    );
    assert_eq!(
        condition(&after.status, ConditionType::Ready).0,
        ConditionStatus::True
    );
    assert!(
        after
            .status
            .condition(ConditionType::RotationBlocked)
            .is_none()
    );
}

fn at_after(t: Timestamp, seconds: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap()
}

#[test]
fn broken_current_with_full_slots_retires_the_previous_early() {
    let mut input = fresh();
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_a".into(),
        client_id: "app_1".into(),
        not_after: Some(at(86_400 * 90)),
    });
    input.status.last_rotation_time = Some(at(0));
    input.status.previous = Some(PreviousSecret {
        secret_id: "sci_p".into(),
        retire_at: at(3600),
        last_used: None,
    });
    input.kube_secret = holding("sci_a");
    input.now = at(60);
    // The current vanished; the previous and a foreign secret hold both slots.
    input.eiam = EiamView::Listed(vec![
        secret("sci_p", true, None),
        secret("sci_f", true, None),
    ]);
    let plan = plan(&input);
    let kinds: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Event(_)))
        .cloned()
        .collect();
    assert_eq!(
        kinds[0],
        Action::DisableSecret {
            secret_id: "sci_p".into()
        }
    );
    assert_eq!(
        kinds[1],
        Action::DeleteSecret {
            secret_id: "sci_p".into()
        }
    );
    assert!(
        matches!(kinds[2], Action::WritePendingCreate { ref unmanaged_secret_ids, .. } if unmanaged_secret_ids == &["sci_f".to_string()])
    );
    assert!(matches!(kinds[3], Action::CreateSecret { .. }));
}

#[test]
fn never_expiring_current_is_renewed_once_the_spec_wants_expiry() {
    let mut input = fresh();
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_a".into(),
        client_id: "app_1".into(),
        not_after: None,
    });
    input.status.last_rotation_time = Some(at(0));
    input.kube_secret = holding("sci_a");
    // expiresAfter 2160h, renewBefore 720h: renew 1440h after the last rotation.
    assert_eq!(
        renewal_time(&input.status, &input.spec),
        Some(at(0).checked_add(hours(1440)).unwrap())
    );
    input.now = at(3600);
    assert!(plan(&input).actions.is_empty());
}

#[test]
fn zero_grace_retires_the_previous_on_the_next_pass_after_publishing() {
    let (mut input, mut eiam) = issued();
    input.spec.grace_period = Duration::ZERO;
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::DeleteSecret { .. }))
    );
    assert_eq!(plan.requeue_after, Some(Duration::ZERO));
    input.kube_secret = holding("sci_new2");
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DeleteSecret {
        secret_id: "sci_new1".into()
    }));
}

// ------------------------------------------------------------------------- without a List

/// Issued as `sci_new1`, published, and due for renewal.
fn due() -> (PlanInput, Eiam) {
    let (mut input, eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    (input, eiam)
}

#[test]
fn a_due_rotation_with_a_clean_status_creates_without_listing() {
    let (input, _) = due();
    let plan = plan(&input);
    // The renewal time is a whole second, so the marker is `now` itself.
    let since = input.now;
    assert_eq!(
        plan.actions,
        vec![
            Action::WritePendingCreate {
                since,
                unmanaged_secret_ids: vec![],
            },
            Action::CreateSecret {
                lifetime: input.spec.expires_after,
            },
        ]
    );
    assert_eq!(plan.status.pending_create_since, Some(since));
}

/// After a Create without a List the view shows only the new secret: the current one it does not show is unknown,
/// not deleted in EIAM: it becomes the previous secret (no Warning, no Delete), and the new one is published.
#[test]
fn a_partial_view_takes_an_unseen_current_for_unknown_not_missing() {
    let (mut input, _) = due();
    let first = plan(&input);
    for action in &first.actions {
        let outcome = match action {
            Action::CreateSecret { lifetime } => ActionOutcome::Created(secret(
                "sci_b",
                true,
                lifetime.map(|l| expiration_for(input.now, l)),
            )),
            _ => ActionOutcome::Done,
        };
        input.observe(action, outcome);
    }
    input.status = first.status;
    assert!(
        matches!(&input.eiam, EiamView::Partial(shown) if shown.len() == 1 && shown[0].secret_id == "sci_b"),
        "{:?}",
        input.eiam
    );
    let plan = plan(&input);
    assert!(
        !plan.actions.iter().any(|a| matches!(
            a,
            Action::ListSecrets | Action::DisableSecret { .. } | Action::DeleteSecret { .. }
        )),
        "{:?}",
        plan.actions
    );
    assert_eq!(
        events(&plan.actions),
        vec![(EventKind::Normal, reasons::ROTATED)]
    );
    assert!(plan.actions.contains(&Action::Publish {
        secret_id: "sci_b".into(),
        client_id: "app_1".into(),
        not_after: plan.status.current.as_ref().unwrap().not_after,
    }));
    assert_eq!(plan.status.current.as_ref().unwrap().secret_id, "sci_b");
    assert_eq!(plan.status.previous.as_ref().unwrap().secret_id, "sci_new1");
    assert_eq!(plan.status.pending_create_since, None);
    assert!(plan.status.unmanaged_secret_ids.is_empty());
    assert_eq!(
        condition(&plan.status, ConditionType::Ready).0,
        ConditionStatus::True
    );
}

/// A partial view never vouches for a secret it does not show: publishing one takes a List first.
#[test]
fn a_partial_view_lists_before_publishing_a_secret_it_does_not_show() {
    let (mut input, _) = issued();
    input.now = at(60);
    input.kube_secret = KubeSecret::Missing;
    input.eiam = EiamView::Partial(vec![]);
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
}

#[test]
fn a_rotation_lists_first_when_the_status_cannot_vouch_for_a_free_slot() {
    // Someone else's secret recorded by the last List: list, do not knock.
    let (mut input, _) = due();
    input.status.unmanaged_secret_ids = vec!["sci_f".into()];
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
    // A never-expiring secret could not be told from a foreign one after a crash.
    let (mut input, _) = due();
    input.spec.expires_after = None;
    input.spec.renew_before = Duration::ZERO;
    input.rotate_request = Some("now".into());
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
    // A drift check, a Secret out of sync, an expired current: list as before.
    let (mut input, _) = due();
    input.drift_check_due = true;
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
    let (mut input, _) = due();
    input.kube_secret = KubeSecret::Missing;
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
    let (mut input, _) = due();
    input.now = input.status.current.as_ref().unwrap().not_after.unwrap();
    assert_eq!(plan(&input).actions, vec![Action::ListSecrets]);
}

/// A retirement due together with a rotation: the previous secret is retired, then the rotation creates into the
/// slot it freed, all on the status's word (the write-ahead status no longer records the retired secret).
#[test]
fn a_retirement_and_a_rotation_due_together_need_no_list() {
    let (mut input, mut eiam) = due();
    pass(&mut input, &mut eiam);
    input.kube_secret = holding("sci_new2");
    input.rotate_request = Some("again".into());
    input.now = input.status.previous.as_ref().unwrap().retire_at;
    let plan = plan(&input);
    let calls: Vec<&Action> = plan
        .actions
        .iter()
        .filter(|a| !matches!(a, Action::Event(_)))
        .collect();
    assert!(
        matches!(
            calls.as_slice(),
            [
                Action::DisableSecret { secret_id: d },
                Action::DeleteSecret { secret_id: x },
                Action::WritePendingCreate { .. },
                Action::CreateSecret { .. },
            ] if d == "sci_new1" && x == "sci_new1"
        ),
        "{:?}",
        plan.actions
    );
    assert_eq!(plan.status.previous, None, "written ahead of the Create");
    let (_, after) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.calls[2..], ["Disable", "Delete", "Create"]);
    assert_eq!(current_id(&input), "sci_new3");
    assert_eq!(
        after.status.previous.as_ref().unwrap().secret_id,
        "sci_new2"
    );
}

/// The previous secret was deleted behind the operator's back: a retirement without a List still names it (EIAM
/// answers that it does not exist, which the executor counts as done) and forgets it.
#[test]
fn a_retirement_without_a_list_names_a_previous_secret_already_gone() {
    let (mut input, mut eiam) = due();
    pass(&mut input, &mut eiam);
    input.kube_secret = holding("sci_new2");
    eiam.secrets.retain(|s| s.secret_id != "sci_new1");
    input.now = input.status.previous.as_ref().unwrap().retire_at;
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.calls[2..], ["Disable", "Delete"]);
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::RETIRED)]
    );
    assert_eq!(plan.status.previous, None);
}

// ------------------------------------------------------------------------- import

#[test]
fn an_import_already_due_for_renewal_is_looked_at_again_at_once() {
    let mut input = fresh();
    input.spec.import_secret_id = Some("sci_existing".into());
    // Expires in 10 days; the spec renews 30 days ahead: due the moment it is adopted.
    let mut eiam = Eiam::with(vec![secret("sci_existing", true, Some(at(86_400 * 10)))]);
    let (_, plan) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_existing");
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(1)),
        "not at the next drift check"
    );
    input.kube_secret = holding("sci_existing");
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::CreateSecret { .. }))
    );
}

#[test]
fn import_adopts_the_listed_secret_without_create() {
    let mut input = fresh();
    input.spec.import_secret_id = Some("sci_existing".into());
    let mut eiam = Eiam::with(vec![secret("sci_existing", true, Some(at(86_400 * 400)))]);
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert_eq!(eiam.calls, vec!["List"]);
    assert!(
        matches!(&actions[1], Action::Publish { secret_id, .. } if secret_id == "sci_existing")
    );
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::IMPORTED)]
    );
    assert_eq!(
        plan.status.current.as_ref().unwrap().not_after,
        Some(at(86_400 * 400))
    );
}

#[test]
fn import_of_a_missing_or_disabled_secret_stalls_without_minting() {
    for listed in [vec![], vec![secret("sci_existing", false, None)]] {
        let mut input = fresh();
        input.spec.import_secret_id = Some("sci_existing".into());
        let mut eiam = Eiam::with(listed);
        let (_, plan) = pass(&mut input, &mut eiam);
        assert_eq!(eiam.calls, vec!["List"]);
        assert_eq!(
            condition(&plan.status, ConditionType::Stalled),
            (ConditionStatus::True, reasons::IMPORT_NOT_FOUND.into())
        );
    }
}

// ------------------------------------------------------------------------- stalls

#[test]
fn conflict_not_allowed_and_unavailable_provider_stall_without_eiam_calls() {
    let cases = [
        (
            Some("team-a/other".to_string()),
            ProviderState::Ready,
            reasons::CONFLICT,
        ),
        (
            None,
            ProviderState::NotAllowed {
                message: "namespace team-b is not allowed".into(),
            },
            reasons::NOT_ALLOWED,
        ),
        (
            None,
            ProviderState::Unavailable {
                reason: "CredentialsNotFound".into(),
                message: "Secret team-b/ak not found".into(),
            },
            "CredentialsNotFound",
        ),
    ];
    for (conflict, provider, reason) in cases {
        let mut input = fresh();
        input.conflict = conflict;
        input.provider = provider;
        let plan = plan(&input);
        assert_eq!(eiam_calls(&plan.actions), 0);
        assert_eq!(events(&plan.actions), vec![(EventKind::Warning, reason)]);
        assert_eq!(
            condition(&plan.status, ConditionType::Stalled),
            (ConditionStatus::True, reason.into())
        );
        let mut again = input.clone();
        again.status = plan.status.clone();
        assert!(
            super::plan(&again).actions.is_empty(),
            "Warning only on transition"
        );
    }
}

#[test]
fn an_invalid_template_stalls_before_minting_or_publishing_but_not_deletion() {
    let message = "spec.target.template.data[\"app.env\"] line 2: undefined value".to_owned();
    // At first issue: nothing minted.
    let mut input = fresh();
    input.invalid_template = Some(message.clone());
    let plan = plan(&input);
    assert_eq!(eiam_calls(&plan.actions), 0);
    assert_eq!(
        events(&plan.actions),
        vec![(EventKind::Warning, reasons::INVALID_TEMPLATE)]
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::INVALID_TEMPLATE.into())
    );
    let stalled = plan
        .status
        .condition(ConditionType::Stalled)
        .map(|c| c.message.clone());
    assert_eq!(stalled.as_deref(), Some(message.as_str()));

    // With a published secret whose Secret no longer matches (the template was edited): no publish either.
    let (mut published, mut eiam) = issued();
    published.kube_secret = KubeSecret::Present {
        secret_id: Some("sci_new1".into()),
        data_in_sync: false,
        owned_by_us: true,
    };
    published.invalid_template = Some(message);
    let calls_before = eiam.calls.len();
    let (actions, _) = pass(&mut published, &mut eiam);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Publish { .. })),
        "{actions:?}"
    );
    assert_eq!(eiam.calls.len(), calls_before, "no EIAM call");
    // Fixed: the edited template is published again, without minting.
    published.invalid_template = None;
    let (actions, _) = pass(&mut published, &mut eiam);
    assert!(matches!(&actions[1], Action::Publish { secret_id, .. } if secret_id == "sci_new1"));
    assert!(
        !eiam.calls[calls_before..].contains(&"Create"),
        "{:?}",
        eiam.calls
    );

    // Once fixed, the same resource mints; deletion never needed a template.
    let mut fixed = input.clone();
    fixed.invalid_template = None;
    assert!(eiam_calls(&super::plan(&fixed).actions) > 0);
    let mut deleting = input.clone();
    deleting.deleting = true;
    assert_eq!(
        super::plan(&deleting).actions,
        vec![Action::RemoveFinalizer]
    );
}

#[test]
fn restart_targets_the_operator_may_not_patch_stall_before_minting_but_not_deletion() {
    let mut input = fresh();
    input.restart_denied =
        Some("the operator may not patch deployments in namespace team-a".into());
    let plan = plan(&input);
    assert_eq!(
        eiam_calls(&plan.actions),
        0,
        "nothing minted that could not be rolled out"
    );
    assert_eq!(
        events(&plan.actions),
        vec![(EventKind::Warning, reasons::RESTART_NOT_PERMITTED)]
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Stalled),
        (ConditionStatus::True, reasons::RESTART_NOT_PERMITTED.into())
    );
    assert_eq!(
        condition(&plan.status, ConditionType::Ready),
        (
            ConditionStatus::False,
            reasons::RESTART_NOT_PERMITTED.into()
        )
    );

    // Once permitted, the same resource mints.
    let mut permitted = input.clone();
    permitted.status = plan.status.clone();
    permitted.restart_denied = None;
    assert!(eiam_calls(&super::plan(&permitted).actions) > 0);

    // Deletion rolls nothing, so it needs no such permission.
    let mut deleting = input.clone();
    deleting.deleting = true;
    assert_eq!(
        super::plan(&deleting).actions,
        vec![Action::RemoveFinalizer]
    );
}

#[test]
fn conflict_message_names_the_owner() {
    let mut input = fresh();
    input.conflict = Some("team-a/payments".into());
    let plan = plan(&input);
    assert!(
        plan.status
            .condition(ConditionType::Stalled)
            .unwrap()
            .message
            .contains("team-a/payments")
    );
}

// ------------------------------------------------------------------------- deletion

#[test]
fn deletion_with_delete_policy_removes_owned_secrets_then_the_secret_then_the_finalizer() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.now = input.status.renewal_time.unwrap();
    pass(&mut input, &mut eiam);
    eiam.secrets.push(secret("sci_foreign", true, None));
    input.kube_secret = holding("sci_new2");
    input.deleting = true;
    let (actions, _) = pass(&mut input, &mut eiam);
    let deleted: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteSecret { secret_id } => Some(secret_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec!["sci_new2", "sci_new1"]);
    assert_eq!(eiam.secrets, vec![secret("sci_foreign", true, None)]);
    let tail = &actions[actions.len() - 2..];
    assert_eq!(tail, [Action::DeleteKubeSecret, Action::RemoveFinalizer]);
}

#[test]
fn deletion_with_retain_orphans_the_secret_and_keeps_eiam() {
    let (mut input, mut eiam) = issued();
    input.kube_secret = holding("sci_new1");
    input.deleting = true;
    input.spec.deletion_policy = DeletionPolicy::Retain;
    let (actions, _) = pass(&mut input, &mut eiam);
    assert_eq!(eiam_calls(&actions), 0);
    assert_eq!(actions[0], Action::OrphanKubeSecret);
    assert_eq!(actions.last(), Some(&Action::RemoveFinalizer));
    assert_eq!(eiam.secrets.len(), 1);
}

#[test]
fn deletion_during_a_pending_create_deletes_the_adopted_secret_too() {
    let mut input = fresh();
    input.status.pending_create_since = Some(at(0));
    input.deleting = true;
    let sent = at(0).checked_add(hours(2160)).unwrap();
    let mut eiam = Eiam::with(vec![
        secret("sci_ours", true, Some(sent)),
        secret("sci_foreign", true, None),
    ]);
    let (actions, _) = pass(&mut input, &mut eiam);
    assert!(actions.contains(&Action::DeleteSecret {
        secret_id: "sci_ours".into()
    }));
    assert_eq!(eiam.secrets, vec![secret("sci_foreign", true, None)]);
}

#[test]
fn deletion_keeps_the_finalizer_while_the_provider_is_unavailable() {
    let (mut input, _) = issued();
    input.deleting = true;
    input.provider = ProviderState::Unavailable {
        reason: "ProviderNotFound".into(),
        message: "EiamProvider team-a/main not found".into(),
    };
    let plan = plan(&input);
    assert!(!plan.actions.contains(&Action::RemoveFinalizer));
    assert_eq!(eiam_calls(&plan.actions), 0);
    let stalled = plan.status.condition(ConditionType::Stalled).unwrap();
    assert_eq!(stalled.reason, "ProviderNotFound");
    assert!(stalled.message.contains("deletionPolicy: Retain"));
}

#[test]
fn deletion_of_a_resource_that_owns_nothing_needs_no_provider() {
    let mut input = fresh();
    input.deleting = true;
    input.conflict = Some("team-a/other".into());
    input.provider = ProviderState::NotAllowed {
        message: "no".into(),
    };
    assert_eq!(plan(&input).actions, vec![Action::RemoveFinalizer]);
}

#[test]
fn deleted_resource_without_finalizer_needs_nothing() {
    let mut input = fresh();
    input.deleting = true;
    input.has_finalizer = false;
    assert!(plan(&input).actions.is_empty());
}

#[test]
fn expiring_current_under_a_never_expiring_spec_renews_with_a_third_of_its_lifetime_left() {
    let mut input = fresh();
    input.spec.expires_after = None;
    input.spec.renew_before = Duration::ZERO;
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_imported".into(),
        client_id: "app_1".into(),
        not_after: Some(at(3 * 3600)),
    });
    input.status.last_rotation_time = Some(at(0));
    assert_eq!(renewal_time(&input.status, &input.spec), Some(at(2 * 3600)));
}

#[test]
fn no_repeated_warning_while_the_replacement_is_being_minted() {
    let mut input = fresh();
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_gone".into(),
        client_id: "app_1".into(),
        not_after: None,
    });
    input.status.last_rotation_time = Some(at(0));
    input.kube_secret = holding("sci_gone");
    input.eiam = EiamView::Listed(vec![]);
    let first = plan(&input);
    assert_eq!(
        events(&first.actions),
        vec![(EventKind::Warning, reasons::SECRET_DELETED_IN_EIAM)]
    );
    // The Create failed; the next pass retries from the persisted write-ahead status.
    let mut retry = input.clone();
    retry.status = first.status.clone();
    retry.now = at(60);
    let second = plan(&retry);
    assert!(events(&second.actions).is_empty(), "{:?}", second.actions);
    assert!(matches!(
        second.actions.last(),
        Some(Action::CreateSecret { .. })
    ));
}

#[test]
fn the_write_ahead_status_keeps_the_broken_current_so_its_replacement_restarts_targets() {
    let mut input = fresh();
    input.status.current = Some(CurrentSecret {
        secret_id: "sci_gone".into(),
        client_id: "app_1".into(),
        not_after: None,
    });
    input.status.last_rotation_time = Some(at(0));
    input.kube_secret = holding("sci_gone");
    input.eiam = EiamView::Listed(vec![]);
    let write_ahead = plan(&input);
    assert_eq!(
        write_ahead.status.current.as_ref().unwrap().secret_id,
        "sci_gone"
    );
    // Crash after the Create and after the Publish, before RestartTargets ran.
    let mut restarted = input.clone();
    restarted.status = write_ahead.status.clone();
    restarted.kube_secret = holding("sci_new");
    let sent = at(0).checked_add(hours(2160)).unwrap();
    restarted.eiam = EiamView::Listed(vec![secret("sci_new", true, Some(sent))]);
    let recovered = plan(&restarted);
    assert!(recovered.actions.contains(&Action::RestartTargets {
        secret_id: "sci_new".into()
    }));
}

#[test]
fn an_adopted_secret_already_due_is_rotated_and_the_adoption_is_written_ahead() {
    // Crash after a Create whose secret renews 15 s after minting; back 10 minutes later.
    let mut input = fresh();
    input.spec.expires_after = Some(hours(24));
    input.spec.renew_before = hours(24) - Duration::from_secs(15);
    input.status.pending_create_since = Some(at(0));
    input.now = at(600);
    // Signed a few seconds after the marker was written, with the margin a 24h lifetime gets.
    let sent = expiration_for(at(3), hours(24));
    input.eiam = EiamView::Listed(vec![secret("sci_late", true, Some(sent))]);
    let plan = plan(&input);
    assert!(matches!(
        plan.actions.last(),
        Some(Action::CreateSecret { .. })
    ));
    // The status written ahead of the second Create records the first one as current, so the
    // second Create's secret is the only unknown one and the first is never orphaned.
    assert_eq!(plan.status.current.as_ref().unwrap().secret_id, "sci_late");
    assert_eq!(plan.status.pending_create_since, Some(at(600)));
}

#[test]
fn fractional_durations_still_give_whole_second_instants_in_status() {
    let mut input = fresh();
    input.spec.expires_after = Some(hours(24));
    input.spec.renew_before = hours(24) - Duration::from_millis(15_500);
    input.spec.grace_period = Duration::from_millis(10_250);
    let mut eiam = Eiam::with(vec![]);
    pass(&mut input, &mut eiam);
    let renewal = input.status.renewal_time.unwrap();
    assert_eq!(renewal.subsec_nanosecond(), 0);
    input.kube_secret = holding("sci_new1");
    input.now = renewal;
    pass(&mut input, &mut eiam);
    let previous = input.status.previous.as_ref().unwrap();
    assert_eq!(previous.retire_at.subsec_nanosecond(), 0);
    assert!(previous.retire_at >= renewal.checked_add(Duration::from_millis(10_250)).unwrap());
}

// ------------------------------------------------------------------------- rotation windows

fn with_windows(input: &mut PlanInput, specs: &[(&str, u64)]) {
    let specs: Vec<WindowSpec<'_>> = specs
        .iter()
        .map(|(schedule, minutes)| WindowSpec {
            schedule,
            duration: Duration::from_secs(minutes * 60),
            time_zone: "UTC",
        })
        .collect();
    input.spec.windows = RotationWindows::parse(&specs);
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn a_scheduled_renewal_waits_for_the_next_window() {
    let (mut input, mut eiam) = issued();
    // Due on Tuesday 2027-03-16 08:00 UTC; the window opens on Saturdays at 02:00 for two hours.
    let due = input.status.renewal_time.unwrap();
    assert_eq!(due, ts("2027-03-16T08:00:00Z"));
    with_windows(&mut input, &[("0 2 * * SAT", 120)]);
    input.kube_secret = holding("sci_new1");
    input.now = due;
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(actions.is_empty(), "held by the window: {actions:?}");
    assert_eq!(
        plan.status.renewal_time,
        Some(ts("2027-03-20T02:00:00Z")),
        "status.renewalTime shows the real planned time"
    );
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(3 * 86_400 + 18 * 3600))
    );
    input.now = ts("2027-03-20T02:00:00Z");
    let (actions, _) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_new2", "rotated in the window");
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::ROTATED)]
    );
}

#[test]
fn a_renewal_rotates_outside_the_windows_rather_than_let_the_secret_expire() {
    let (mut input, mut eiam) = issued();
    // The only window opens on 1 January: after the secret expires (2027-04-15).
    with_windows(&mut input, &[("0 0 1 JAN *", 60)]);
    input.kube_secret = holding("sci_new1");
    let due = renewal_time(&input.status, &input.spec).unwrap();
    assert_eq!(due, ts("2027-03-16T08:00:00Z"), "not moved past expiry");
    input.now = due;
    let (actions, _) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_new2");
    assert_eq!(
        events(&actions),
        vec![
            (EventKind::Warning, reasons::ROTATED_OUTSIDE_WINDOW),
            (EventKind::Normal, reasons::ROTATED)
        ]
    );
}

#[test]
fn a_requested_rotation_is_not_held_by_windows() {
    let (mut input, mut eiam) = issued();
    with_windows(&mut input, &[("0 2 * * SAT", 120)]);
    input.kube_secret = holding("sci_new1");
    input.now = ts("2027-02-02T12:00:00Z"); // a Tuesday, no window open
    input.rotate_request = Some("now".into());
    let (actions, _) = pass(&mut input, &mut eiam);
    assert_eq!(current_id(&input), "sci_new2");
    assert_eq!(
        events(&actions),
        vec![(EventKind::Normal, reasons::ROTATED)]
    );
}

#[test]
fn unusable_windows_stall_naming_the_entry_without_calling_eiam() {
    let mut input = fresh();
    with_windows(&mut input, &[("0 2 * * SAT", 120), ("0 0 30 FEB *", 60)]);
    let mut eiam = Eiam::with(vec![]);
    let (actions, plan) = pass(&mut input, &mut eiam);
    assert!(eiam.calls.is_empty(), "{:?}", eiam.calls);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::CreateSecret { .. }))
    );
    let stalled = plan.status.condition(ConditionType::Stalled).unwrap();
    assert_eq!(stalled.reason, reasons::INVALID_ROTATION_WINDOW);
    assert!(
        stalled
            .message
            .starts_with("spec.rotation.windows[1].schedule: never opens"),
        "{stalled:?}"
    );
    let mut input = fresh();
    input.spec.windows = RotationWindows::parse(&[WindowSpec {
        schedule: "0 2 * * SAT",
        duration: HOUR,
        time_zone: "Nowhere/Atlantis",
    }]);
    let (_, plan) = pass(&mut input, &mut Eiam::with(vec![]));
    let stalled = plan.status.condition(ConditionType::Stalled).unwrap();
    assert!(
        stalled
            .message
            .starts_with("spec.rotation.windows[0].timeZone:"),
        "{stalled:?}"
    );
}
