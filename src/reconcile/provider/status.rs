//! `Ready` and `Stalled` on EiamProviders and ClusterEiamProviders — what `kubectl get eiamp` shows and what a
//! GitOps health check reads: whether the operator can build an EIAM client from the provider (its endpoint is
//! usable and its credentials resolve: the AccessKey Secret exists with its keys, the RRSA settings are complete) —
//! and `status.budget`, where the provider's adaptive EIAM budget stands (issue 23), with an Event when it backed
//! off. The budget moves with every answer EIAM gives, so it is compared with the status only every
//! `--provider-status-interval`, and written only when it moved by more than a tenth or backed off since.
//!
//! No EIAM call is made: no EIAM action checks credentials without naming an application, and the resources that
//! use a provider report what EIAM itself answered. ClusterEiamProviders get a status only from an operator that
//! watches all namespaces: operators confined to some namespaces (the chart's `watchNamespaces`) may see a
//! cluster provider differently and would overwrite each other.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{
    BudgetView, ProviderProblem, TenancyPolicy, check_cluster_provider, check_eiam_provider,
};
use crate::api::conditions::{READY, STALLED, reasons};
use crate::api::{
    BudgetStatus, ClusterEiamProvider, EiamProvider, FIELD_MANAGER, ProviderSettings,
    ProviderStatus,
};
use crate::eiam::budget::BudgetSnapshot;
use crate::fence::LeaderToken;
use crate::reconcile::executor::events::{EventPublisher, EventType};
use crate::reconcile::watch::scope::{WatchScope, from_store};

/// How soon a provider is checked again when it is usable (its credentials Secret changing re-checks it at once).
const RECHECK_READY: Duration = Duration::from_secs(600);
/// ... and when it is not (e.g. the operator's own environment lacks credentials, or a transient error).
const RECHECK_NOT_READY: Duration = Duration::from_secs(30);
/// ... and after its status write met a newer version.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// The Event reason of a budget that backed off.
pub const BUDGET_BACKED_OFF: &str = "BudgetBackedOff";

struct Context {
    kube: Client,
    /// Whether namespaced providers may use the operator's own credentials.
    policy: TenancyPolicy,
    budgets: BudgetView,
    token: LeaderToken,
    events: EventPublisher,
}

/// Where the providers' budgets come from, and how often they are compared with the status.
pub struct BudgetReports {
    /// The budgets of the resources' provider clients.
    pub budgets: BudgetView,
    /// `--provider-status-interval`.
    pub interval: Duration,
    /// Whether this process may still write (see [`crate::fence`]).
    pub token: LeaderToken,
}

/// Readers of the operator's shared Secret metadata watch (see `super::fanout`), one per providers' controller.
pub struct SecretReaders {
    pub namespaced: BoxStream<'static, watcher::Result<watcher::Event<PartialObjectMeta<Secret>>>>,
    /// Only when every namespace is watched: ClusterEiamProviders get a status only then.
    pub cluster:
        Option<BoxStream<'static, watcher::Result<watcher::Event<PartialObjectMeta<Secret>>>>>,
}

/// Keeps the providers' status current until `shutdown` resolves, for the providers in `scope` (`--namespace`).
/// Credentials Secrets come as metadata from `secrets`: one appearing, changing or going away re-checks the
/// providers that name it at once.
pub async fn run<F>(
    kube: Client,
    scope: &WatchScope,
    secrets: SecretReaders,
    policy: TenancyPolicy,
    reports: BudgetReports,
    shutdown: F,
) where
    F: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let context = Arc::new(Context {
        kube: kube.clone(),
        policy,
        budgets: reports.budgets.clone(),
        token: reports.token,
        events: EventPublisher::new(kube.clone(), "eiam-operator"),
    });
    let (store, writer) = reflector::store::<EiamProvider>();
    let providers = reflector(
        writer,
        scope.watch(&kube, watcher::Config::default(), from_store(&store)),
    )
    .applied_objects();
    let referenced = store.clone();
    let budgets = reports.budgets.clone();
    let moved = budget_moved(store.clone(), reports.interval, move |provider| {
        budgets.of_eiam_provider(
            &provider.namespace().unwrap_or_default(),
            &provider.name_any(),
        )
    });
    let namespaced = Controller::for_stream(providers, store)
        .watches_stream(secrets.namespaced.touched_objects(), move |secret| {
            referencing(&referenced, &secret)
        })
        .reconcile_on(moved)
        .with_config(controller::Config::default().concurrency(2))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_namespaced, error_policy, context.clone())
        .for_each(|_| async {});
    let cluster = async {
        if let Some(cluster_secrets) = secrets.cluster {
            let controller = Controller::new(
                Api::<ClusterEiamProvider>::all(kube.clone()),
                watcher::Config::default(),
            );
            let store = controller.store();
            let budgets = reports.budgets.clone();
            let moved = budget_moved(store.clone(), reports.interval, move |provider| {
                budgets.of_cluster_provider(&provider.name_any())
            });
            controller
                .watches_stream(cluster_secrets.touched_objects(), move |secret| {
                    referencing(&store, &secret)
                })
                .reconcile_on(moved)
                .with_config(controller::Config::default().concurrency(2))
                .graceful_shutdown_on(shutdown)
                .run(reconcile_cluster, error_policy, context.clone())
                .for_each(|_| async {})
                .await;
        }
    };
    tokio::join!(namespaced, cluster);
}

/// The providers in `store` whose AccessKey lives in `secret` (an EiamProvider's reference without a namespace
/// means its own).
fn referencing<K>(store: &Store<K>, secret: &PartialObjectMeta<Secret>) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + ProviderObject + Clone + 'static,
{
    let (namespace, name) = (secret.namespace(), secret.name_any());
    store
        .state()
        .iter()
        .filter(|provider| {
            provider
                .settings()
                .access_key_ref()
                .is_some_and(|reference| {
                    reference.name == name
                        && reference.namespace.clone().or_else(|| provider.namespace()) == namespace
                })
        })
        .map(|provider| ObjectRef::from_obj(provider.as_ref()))
        .collect()
}

/// Every `interval`, the providers in `store` whose budget (`budget_of`) moved away from their `status.budget`
/// (see [`budget_status`]): only they are checked and written again.
fn budget_moved<K>(
    store: Store<K>,
    interval: Duration,
    budget_of: impl Fn(&K) -> Option<BudgetSnapshot> + Send + 'static,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Resource<DynamicType = ()> + ProviderObject + Clone + Send + Sync + 'static,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold(ticks, |mut ticks| async move {
        ticks.tick().await;
        Some(((), ticks))
    })
    .flat_map(move |()| {
        let moved: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|provider| {
                let stored = provider.status().and_then(|status| status.budget.as_ref());
                budget_status(stored, budget_of(provider).as_ref()).as_ref() != stored
            })
            .map(|provider| ObjectRef::from_obj(provider.as_ref()))
            .collect();
        futures::stream::iter(moved)
    })
}

/// Both provider kinds, seen through their shared settings.
trait ProviderObject {
    fn settings(&self) -> ProviderSettings<'_>;
    fn status(&self) -> Option<&ProviderStatus>;
}

impl ProviderObject for EiamProvider {
    fn settings(&self) -> ProviderSettings<'_> {
        self.spec.settings()
    }

    fn status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
}

impl ProviderObject for ClusterEiamProvider {
    fn settings(&self) -> ProviderSettings<'_> {
        self.spec.settings()
    }

    fn status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
}

async fn reconcile_namespaced(
    provider: Arc<EiamProvider>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let verdict = check_eiam_provider(&context.kube, &context.policy, &provider).await;
    let namespace = provider.namespace().unwrap_or_default();
    let budget = context
        .budgets
        .of_eiam_provider(&namespace, &provider.name_any());
    let api = Api::namespaced(context.kube.clone(), &namespace);
    write_status(&api, provider.as_ref(), verdict, budget, &context).await
}

async fn reconcile_cluster(
    provider: Arc<ClusterEiamProvider>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let verdict = check_cluster_provider(&context.kube, &provider).await;
    let budget = context.budgets.of_cluster_provider(&provider.name_any());
    let api = Api::all(context.kube.clone());
    write_status(&api, provider.as_ref(), verdict, budget, &context).await
}

fn error_policy<K>(provider: Arc<K>, error: &kube::Error, _context: Arc<Context>) -> Action
where
    K: ResourceExt,
{
    if matches!(error, kube::Error::Api(status) if status.code == 409) {
        // The provider changed since it was checked; the change's own watch event checks it again, this is only a
        // safety net.
        tracing::debug!(provider = %provider.name_any(), "provider changed during its check; checking it again");
        return Action::requeue(CONFLICT_RETRY);
    }
    tracing::warn!(provider = %provider.name_any(), error = %error, "cannot write the provider's status");
    Action::requeue(RECHECK_NOT_READY)
}

/// Writes `Ready` from `verdict` and the budget from `budget` unless the stored status already says the same (and
/// an Event if the budget backed off since); schedules the next check. A replica that no longer holds the leader
/// Lease writes nothing.
async fn write_status<K>(
    api: &Api<K>,
    provider: &K,
    verdict: Result<String, ProviderProblem>,
    budget: Option<BudgetSnapshot>,
    context: &Context,
) -> Result<Action, kube::Error>
where
    K: Resource<DynamicType = ()> + ProviderObject + Clone + DeserializeOwned + Debug + Serialize,
{
    let stored = provider.status();
    let stored_budget = stored.and_then(|status| status.budget.as_ref());
    let desired = desired_status(
        provider.meta().generation,
        stored,
        &verdict,
        Time(jiff::Timestamp::now()),
        budget_status(stored_budget, budget.as_ref()),
    );
    if stored != Some(&desired) {
        if !context.token.holds() {
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
        // Conditional on the version checked (server-side apply honours metadata.resourceVersion): a provider that
        // changed since, or that another replica wrote meanwhile, fails with a conflict and is checked again fresh.
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": { "resourceVersion": provider.meta().resource_version },
            "status": desired,
        });
        api.patch_status(
            &provider.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        if let Some(note) = backoff_note(stored_budget, desired.budget.as_ref())
            && context.token.holds()
            && let Err(error) = context
                .events
                .publish(
                    &provider.object_ref(&()),
                    EventType::Normal,
                    BUDGET_BACKED_OFF,
                    "Throttle",
                    &note,
                )
                .await
        {
            tracing::warn!(provider = %provider.name_any(), %error, "cannot post the budget's back-off Event");
        }
    }
    Ok(Action::requeue(if verdict.is_ok() {
        RECHECK_READY
    } else {
        RECHECK_NOT_READY
    }))
}

/// `status.budget` for a budget that stands at `now`, given what the status holds: the stored one while the budget
/// stayed within a tenth of it (at least 0.5/s) on the same account, ceiling and last back-off, so that a rate
/// that wobbles writes nothing; else the new one. Without a budget (no resource of the provider needed EIAM since
/// the operator started) the stored one stays: the status says "as the operator last saw it".
fn budget_status(
    stored: Option<&BudgetStatus>,
    now: Option<&BudgetSnapshot>,
) -> Option<BudgetStatus> {
    let Some(now) = now else {
        return stored.cloned();
    };
    // Two decimals: a `spec.qps` may be 0.01.
    let round = |rate: f64| (rate * 100.0).round() / 100.0;
    let fresh = BudgetStatus {
        account: now.account.clone(),
        qps: round(now.qps),
        ceiling: round(now.ceiling),
        last_backoff_time: now.last_backoff.map(Time),
    };
    match stored {
        Some(stored)
            if stored.account == fresh.account
                && stored.ceiling == fresh.ceiling
                && stored.last_backoff_time == fresh.last_backoff_time
                && (stored.qps - fresh.qps).abs() <= (stored.qps / 10.0).max(0.5) =>
        {
            Some(stored.clone())
        }
        _ => Some(fresh),
    }
}

/// The Event's note when the budget written backed off since the one stored, else `None`.
fn backoff_note(stored: Option<&BudgetStatus>, written: Option<&BudgetStatus>) -> Option<String> {
    let written = written?;
    let at = written.last_backoff_time.as_ref()?;
    if stored.and_then(|s| s.last_backoff_time.as_ref()) == Some(at) {
        return None;
    }
    Some(format!(
        "EIAM throttled account {} at {}: its budget backed off, this provider may now send {} requests/s (ceiling {})",
        written.account, at.0, written.qps, written.ceiling
    ))
}

/// The status a provider should have, kstatus-style like the resources': `Ready` True (reason `Resolved`, what it
/// resolved to) and `Stalled` False; or `Ready` False and `Stalled` True with the problem's reason and message (a
/// provider does not fix itself: someone must create the Secret or correct the spec). A condition's transition
/// time moves only when its status changes, so a repeated verdict equals the stored status and nothing is written.
fn desired_status(
    generation: Option<i64>,
    stored: Option<&ProviderStatus>,
    verdict: &Result<String, ProviderProblem>,
    now: Time,
    budget: Option<BudgetStatus>,
) -> ProviderStatus {
    let (ready, stalled, reason, message) = match verdict {
        Ok(resolved) => (
            "True",
            "False",
            reasons::PROVIDER_RESOLVED,
            resolved.clone(),
        ),
        Err(problem) => ("False", "True", problem.reason, problem.message.clone()),
    };
    let condition = |type_: &str, status: &str| {
        let previous = stored.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
        let last_transition_time = match previous {
            Some(previous) if previous.status == status => previous.last_transition_time.clone(),
            _ => now.clone(),
        };
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.clone(),
            observed_generation: generation,
            last_transition_time,
        }
    };
    ProviderStatus {
        observed_generation: generation,
        conditions: vec![condition(READY, ready), condition(STALLED, stalled)],
        budget,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).unwrap())
    }

    fn problem() -> ProviderProblem {
        ProviderProblem {
            reason: reasons::CREDENTIALS_MISSING,
            message: "Secret ns/ak does not exist".to_owned(),
        }
    }

    #[test]
    fn a_usable_provider_is_ready_and_a_broken_one_says_why() {
        let ready = desired_status(Some(3), None, &Ok("EIAM at https://x".into()), at(10), None);
        let condition = &ready.conditions[0];
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            ("Ready", "True")
        );
        assert_eq!(condition.reason, "Resolved");
        assert_eq!(condition.message, "EIAM at https://x");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(condition.observed_generation, Some(3));

        assert_eq!(
            (
                ready.conditions[1].type_.as_str(),
                ready.conditions[1].status.as_str()
            ),
            ("Stalled", "False")
        );

        let broken = desired_status(Some(3), None, &Err(problem()), at(10), None);
        let condition = &broken.conditions[0];
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason, "CredentialsMissing");
        assert_eq!(condition.message, "Secret ns/ak does not exist");
        // Stalled=True: kstatus (Flux) calls it Failed, Argo CD's health check Degraded.
        let stalled = &broken.conditions[1];
        assert_eq!(
            (stalled.type_.as_str(), stalled.status.as_str()),
            ("Stalled", "True")
        );
        assert_eq!(stalled.reason, "CredentialsMissing");
    }

    #[test]
    fn the_same_verdict_later_equals_the_stored_status_so_nothing_is_written() {
        let first = desired_status(Some(1), None, &Err(problem()), at(10), None);
        let again = desired_status(Some(1), Some(&first), &Err(problem()), at(99), None);
        assert_eq!(again, first);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let broken = desired_status(Some(1), None, &Err(problem()), at(10), None);
        let fixed = desired_status(Some(1), Some(&broken), &Ok("ok".into()), at(20), None);
        assert_eq!(fixed.conditions[0].last_transition_time, at(20));
        assert_eq!(fixed.conditions[1].last_transition_time, at(20));
        let edited = desired_status(Some(2), Some(&fixed), &Ok("ok".into()), at(30), None);
        assert_eq!(edited.conditions[0].last_transition_time, at(20));
        assert_eq!(edited.observed_generation, Some(2));
    }

    fn snapshot(qps: f64, last_backoff: Option<i64>) -> BudgetSnapshot {
        BudgetSnapshot {
            account: "acct-0a1b2c3d".to_owned(),
            qps,
            ceiling: 100.0,
            last_backoff: last_backoff.map(|second| at(second).0),
        }
    }

    #[test]
    fn a_budget_is_written_when_it_moves_by_more_than_a_tenth_not_when_it_wobbles() {
        let first = budget_status(None, Some(&snapshot(40.123, None))).expect("a budget");
        assert_eq!(
            (first.account.as_str(), first.qps, first.ceiling),
            ("acct-0a1b2c3d", 40.12, 100.0)
        );
        assert_eq!(first.last_backoff_time, None);
        // Within a tenth: what is stored stays, so the status equals the stored one and nothing is written.
        assert_eq!(
            budget_status(Some(&first), Some(&snapshot(43.9, None))),
            Some(first.clone())
        );
        assert_eq!(
            budget_status(Some(&first), Some(&snapshot(36.2, None))),
            Some(first.clone())
        );
        // More than a tenth either way, or any other field: the new one.
        assert_eq!(
            budget_status(Some(&first), Some(&snapshot(44.2, None))).map(|b| b.qps),
            Some(44.2)
        );
        assert_eq!(
            budget_status(Some(&first), Some(&snapshot(35.0, None))).map(|b| b.qps),
            Some(35.0)
        );
        let other = BudgetSnapshot {
            account: "acct-ffffffff".to_owned(),
            ..snapshot(40.12, None)
        };
        assert_eq!(
            budget_status(Some(&first), Some(&other)).map(|b| b.account),
            Some("acct-ffffffff".to_owned())
        );
        // A small budget moves by at least 0.5/s before it is written; a tiny ceiling keeps its two decimals.
        let small = budget_status(None, Some(&snapshot(1.0, None)));
        assert_eq!(
            budget_status(small.as_ref(), Some(&snapshot(1.4, None))),
            small
        );
        let tiny = BudgetSnapshot {
            qps: 0.01,
            ceiling: 0.01,
            ..snapshot(0.0, None)
        };
        assert_eq!(
            budget_status(None, Some(&tiny)).map(|b| (b.qps, b.ceiling)),
            Some((0.01, 0.01))
        );
        // No budget (no resource needed EIAM since the start): the last one seen stays.
        assert_eq!(budget_status(Some(&first), None), Some(first.clone()));
        assert_eq!(budget_status(None, None), None);
    }

    #[test]
    fn a_back_off_is_written_and_told_once() {
        let calm = budget_status(None, Some(&snapshot(50.0, None)));
        let backed_off = budget_status(calm.as_ref(), Some(&snapshot(49.0, Some(100))));
        assert_eq!(
            backed_off
                .as_ref()
                .and_then(|b| b.last_backoff_time.clone()),
            Some(at(100)),
            "a back-off is written even when the rate barely moved"
        );
        let note = backoff_note(calm.as_ref(), backed_off.as_ref()).expect("an Event");
        assert!(
            note.contains("acct-0a1b2c3d")
                && note.contains("49 requests/s")
                && note.contains("ceiling 100"),
            "{note}"
        );
        // The same back-off again (the next interval): no Event; a later one: an Event.
        assert_eq!(backoff_note(backed_off.as_ref(), backed_off.as_ref()), None);
        let later = budget_status(backed_off.as_ref(), Some(&snapshot(40.0, Some(130))));
        assert!(backoff_note(backed_off.as_ref(), later.as_ref()).is_some());
        // No back-off yet: no Event.
        assert_eq!(backoff_note(None, calm.as_ref()), None);
    }

    #[test]
    fn the_budget_is_part_of_the_desired_status() {
        let budget = budget_status(None, Some(&snapshot(12.0, Some(100))));
        let status = desired_status(Some(1), None, &Ok("ok".into()), at(10), budget.clone());
        assert_eq!(status.budget, budget);
        let json = serde_json::to_value(&status).expect("json");
        assert_eq!(
            json["budget"],
            serde_json::json!({
                "account": "acct-0a1b2c3d", "qps": 12.0, "ceiling": 100.0,
                "lastBackoffTime": "1970-01-01T00:01:40Z"
            })
        );
    }
}
