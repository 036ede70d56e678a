//! `Ready` and `Stalled` on EiamProviders and ClusterEiamProviders — what `kubectl get eiamp` shows and what a
//! GitOps health check reads: whether the operator can build an EIAM client from the provider (its endpoint is
//! usable and its credentials resolve: the AccessKey Secret exists with its keys, the RRSA settings are complete).
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

use super::{ProviderProblem, TenancyPolicy, check_cluster_provider, check_eiam_provider};
use crate::api::conditions::{READY, STALLED, reasons};
use crate::api::{
    ClusterEiamProvider, EiamProvider, FIELD_MANAGER, ProviderSettings, ProviderStatus,
};
use crate::reconcile::watch::scope::{WatchScope, from_store};

/// How soon a provider is checked again when it is usable (its credentials Secret changing re-checks it at once).
const RECHECK_READY: Duration = Duration::from_secs(600);
/// ... and when it is not (e.g. the operator's own environment lacks credentials, or a transient error).
const RECHECK_NOT_READY: Duration = Duration::from_secs(30);
/// ... and after its status write met a newer version.
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

struct Context {
    kube: Client,
    /// Whether namespaced providers may use the operator's own credentials.
    policy: TenancyPolicy,
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
    shutdown: F,
) where
    F: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let context = Arc::new(Context {
        kube: kube.clone(),
        policy,
    });
    let (store, writer) = reflector::store::<EiamProvider>();
    let providers = reflector(
        writer,
        scope.watch(&kube, watcher::Config::default(), from_store(&store)),
    )
    .applied_objects();
    let referenced = store.clone();
    let namespaced = Controller::for_stream(providers, store)
        .watches_stream(secrets.namespaced.touched_objects(), move |secret| {
            referencing(&referenced, &secret)
        })
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
            controller
                .watches_stream(cluster_secrets.touched_objects(), move |secret| {
                    referencing(&store, &secret)
                })
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

/// Both provider kinds, seen through their shared settings.
trait ProviderObject {
    fn settings(&self) -> ProviderSettings<'_>;
}

impl ProviderObject for EiamProvider {
    fn settings(&self) -> ProviderSettings<'_> {
        self.spec.settings()
    }
}

impl ProviderObject for ClusterEiamProvider {
    fn settings(&self) -> ProviderSettings<'_> {
        self.spec.settings()
    }
}

async fn reconcile_namespaced(
    provider: Arc<EiamProvider>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let verdict = check_eiam_provider(&context.kube, &context.policy, &provider).await;
    let api = Api::namespaced(
        context.kube.clone(),
        &provider.namespace().unwrap_or_default(),
    );
    write_status(&api, provider.as_ref(), provider.status.as_ref(), verdict).await
}

async fn reconcile_cluster(
    provider: Arc<ClusterEiamProvider>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let verdict = check_cluster_provider(&context.kube, &provider).await;
    let api = Api::all(context.kube.clone());
    write_status(&api, provider.as_ref(), provider.status.as_ref(), verdict).await
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

/// Writes `Ready` from `verdict` unless the stored status already says the same; schedules the next check.
async fn write_status<K>(
    api: &Api<K>,
    provider: &K,
    stored: Option<&ProviderStatus>,
    verdict: Result<String, ProviderProblem>,
) -> Result<Action, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Serialize,
{
    let desired = desired_status(
        provider.meta().generation,
        stored,
        &verdict,
        Time(jiff::Timestamp::now()),
    );
    if stored != Some(&desired) {
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
    }
    Ok(Action::requeue(if verdict.is_ok() {
        RECHECK_READY
    } else {
        RECHECK_NOT_READY
    }))
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
        let ready = desired_status(Some(3), None, &Ok("EIAM at https://x".into()), at(10));
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

        let broken = desired_status(Some(3), None, &Err(problem()), at(10));
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
        let first = desired_status(Some(1), None, &Err(problem()), at(10));
        let again = desired_status(Some(1), Some(&first), &Err(problem()), at(99));
        assert_eq!(again, first);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_changes() {
        let broken = desired_status(Some(1), None, &Err(problem()), at(10));
        let fixed = desired_status(Some(1), Some(&broken), &Ok("ok".into()), at(20));
        assert_eq!(fixed.conditions[0].last_transition_time, at(20));
        assert_eq!(fixed.conditions[1].last_transition_time, at(20));
        let edited = desired_status(Some(2), Some(&fixed), &Ok("ok".into()), at(30));
        assert_eq!(edited.conditions[0].last_transition_time, at(20));
        assert_eq!(edited.observed_generation, Some(2));
    }
}
