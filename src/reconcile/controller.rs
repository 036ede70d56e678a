//! The kube-runtime controller: what is watched, how reconciles are scheduled, and how failures back off.
//!
//! Watches `ApplicationClientSecret`s in the watched namespaces ([`super::watch::scope`]), Secret metadata through one watch
//! shared by every reader ([`super::watch::fanout`]: the Secrets they own, labelled `app.kubernetes.io/managed-by:
//! eiam-operator`, and providers' credentials), and both provider kinds, so that fixing a provider re-reconciles the
//! resources that use it. The work of one reconcile lives in [`super::executor`]; the providers' own `Ready` status
//! is kept beside it by [`super::provider::status`].

use super::context::{Context, OwnWrites, Written};
use super::executor::events::EventPublisher;
use super::executor::restart::RestartPermissions;
use super::executor::{self, ExecError};
use super::provider::{ClientLimits, ProviderCache, ProviderSources, TenancyPolicy};
use super::watch::claims::Claims;
use super::watch::drift::DriftSchedule;
use super::watch::fanout::Fanout;
use super::watch::scope::{WatchScope, from_store, metadata_key};
use super::watch::secret_versions::SecretVersions;
use super::watch::synced::Synced;
use crate::api::conditions::reasons::CREDENTIALS_MISSING;
use crate::api::{
    ANNOTATION_FIRST_CREATE_SINCE, ApplicationClientSecret, ClusterEiamProvider, EiamProvider,
    LABEL_MANAGED_BY, ProviderKind,
};
use crate::fence::LeaderToken;
use crate::health::{Health, Phase};
use crate::metrics::Metrics;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Action},
        reflector::{self, ObjectRef, Store, reflector},
        watcher::{self, watcher},
    },
};

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the process around the controller provides: metrics, the readiness it reports, when to stop.
pub struct Operations {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Resolves when the controller should stop taking new work and return once in-flight reconciles finish.
    pub shutdown: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Whether this process may still act: checked before every mutation (see [`crate::fence`]).
    pub token: LeaderToken,
}

/// Runs the controller until `operations.shutdown` resolves and in-flight reconciles have finished.
/// What the controller is told by the operator's flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The namespaces watched (`--namespace`).
    pub scope: WatchScope,
    /// `--resync-interval`.
    pub resync_interval: Duration,
    /// `--concurrency`.
    pub concurrency: u16,
    /// `--default-qps`, `--provider-max-concurrent-calls`, `--eiam-call-timeout`.
    pub client_limits: ClientLimits,
    /// Who may use which provider.
    pub tenancy: TenancyPolicy,
    /// `--provider-status-interval`: how often providers' budgets are compared with their status.
    pub provider_status_interval: Duration,
}

pub async fn run(kube: Client, settings: Settings, operations: Operations) {
    let scope = settings.scope.clone();
    let cluster_providers: Api<ClusterEiamProvider> = Api::all(kube.clone());

    // Our own reflector rather than `Controller::new`, to see the first list complete (readiness): the store's
    // `wait_until_ready` wakes only its latest waiter, so waiting on it beside the controller can stall either.
    let (store, writer) = reflector::store();
    let claims = Arc::new(Claims::default());
    let health = operations.health;

    // Providers are cached (the executor reads them from here, not with a GET per reconcile), and so are the
    // versions of the Secrets the operator does not publish: a provider's client is rebuilt, and its AccessKey
    // Secret read, only when that Secret's version changes.
    let (eiam_providers, eiam_providers_writer) = reflector::store();
    let eiam_providers_reader = eiam_providers.clone();
    let (cluster_providers_store, cluster_providers_writer) = reflector::store();
    let eiam_providers_synced = Arc::new(Synced::default());
    let cluster_providers_synced = Arc::new(Synced::default());
    let credential_versions = Arc::new(SecretVersions::default());
    let providers_cache =
        ProviderCache::new(settings.client_limits).with_sources(ProviderSources {
            namespaced: eiam_providers,
            namespaced_synced: eiam_providers_synced.clone(),
            cluster: cluster_providers_store,
            cluster_synced: cluster_providers_synced.clone(),
            credentials: credential_versions.clone(),
        });
    let context = Arc::new(Context {
        events: EventPublisher::new(kube.clone(), "eiam-operator"),
        kube: kube.clone(),
        providers: providers_cache,
        restart_permissions: RestartPermissions::default(),
        tenancy: settings.tenancy.clone(),
        resync_interval: settings.resync_interval,
        store: store.clone(),
        claims: claims.clone(),
        drift: DriftSchedule::new(settings.resync_interval),
        written: Written::default(),
        failures: Mutex::default(),
        metrics: operations.metrics.clone(),
        own_writes: OwnWrites::default(),
        secret_versions: SecretVersions::default(),
        other_secret_versions: credential_versions.clone(),
        token: operations.token.clone(),
    });
    operations.metrics.resources.watch(store.clone());
    operations.metrics.caches.watch(context.clone());
    operations
        .metrics
        .budgets
        .watch(context.providers.budgets());
    let budget_view = context.providers.budget_view();
    let status_token = operations.token.clone();

    let primary = reflector(
        writer,
        scope
            .watch(
                &kube,
                // A consistent list (not `resourceVersion=0` from the API server's cache, which may lag): the
                // executor trusts a resource this process has not written to be as fresh as a read, which after a
                // start or a failover means at least as fresh as the previous leader's last write.
                watcher::Config::default(),
                from_store(&store),
            )
            // Nothing reads them, and on objects applied with kubectl they are the bulk of the memory a cached
            // resource takes.
            .modify(|resource: &mut ApplicationClientSecret| {
                resource.managed_fields_mut().clear();
                resource
                    .annotations_mut()
                    .remove("kubectl.kubernetes.io/last-applied-configuration");
            }),
    )
    .inspect({
        let claims = claims.clone();
        let context = context.clone();
        move |event| {
            if let Ok(event) = event {
                claims.observe(event);
                // Memory follows the resources that exist, finalizer or not.
                match event {
                    watcher::Event::Delete(resource) => {
                        context.forget(&ObjectRef::from_obj(resource));
                    }
                    // The cache now holds this process's last write (or something later): its next reconcile
                    // need not read the resource again, whoever writes it next (issue 25: a rotation requested
                    // by an annotation read every resource once).
                    watcher::Event::Apply(resource) | watcher::Event::InitApply(resource) => {
                        context.written.seen(
                            &ObjectRef::from_obj(resource),
                            resource.metadata.resource_version.as_deref(),
                        );
                    }
                    watcher::Event::InitDone => context.forget_missing(),
                    _ => {}
                }
            }
        }
    })
    .inspect(move |event| {
        if let Ok(watcher::Event::InitDone) = event
            && health.phase() == Phase::Syncing
        {
            // Logged before readiness flips, so the log line always precedes a 200 from /readyz.
            tracing::info!("watches synced: reconciling");
            health.set(Phase::Leading);
        }
    })
    .applied_objects()
    // Only changes worth a reconcile trigger one; our own status writes do not (see `trigger_hash`).
    .predicate_filter(trigger_hash, Default::default());
    let controller = Controller::for_stream(primary, store.clone());

    let namespaced_users = store.clone();
    let cluster_users = store.clone();
    let credential_waiters = store.clone();
    // Secrets are watched as metadata only (`Api<PartialObjectMeta<_>>` asks the server for no `data`): the
    // executor reads the one Secret it needs fresh, so no Secret value sits in the operator's caches or crosses the
    // wire on a watch. One watch serves every reader (see `super::fanout`).
    let mut secret_watch = Fanout::new(
        "Secret metadata",
        scope
            .watch(&kube, watcher::Config::default(), metadata_key)
            // Every reader needs names, labels, owners and versions only. Annotations go too: kubectl's
            // last-applied-configuration of a Secret applied with kubectl holds its data.
            .modify(|secret| {
                secret.metadata.managed_fields = None;
                secret.metadata.annotations = None;
            })
            .boxed(),
    );
    // The Secrets we publish carry the managed-by label; their changes wake their owner (drift).
    let owned_secrets = secret_watch
        .reader()
        .filter_map(|event| std::future::ready(event.map(published_only).transpose()))
        .inspect_ok({
            let context = context.clone();
            move |event| {
                context.secret_versions.observe(event);
                if let watcher::Event::Delete(secret) = event {
                    context.own_writes.forget(secret);
                }
            }
        })
        .touched_objects()
        .try_filter({
            let context = context.clone();
            move |secret| std::future::ready(!context.own_writes.take_if_own(secret))
        });
    // Credentials Secrets are not labelled: read all Secret metadata, and wake only the resources stalled because
    // their provider's credentials are missing, so they recover as soon as the Secret appears (not at the next
    // slow retry).
    let credential_secrets = secret_watch
        .reader()
        .inspect_ok(move |event| match event {
            // The Secrets we publish have their own map (`Context::secret_versions`); keep the rest.
            watcher::Event::Apply(secret) | watcher::Event::InitApply(secret)
                if published(secret) => {}
            event => credential_versions.observe(event),
        })
        .touched_objects()
        // A Secret we publish is never anyone's credentials: its many writes wake nobody.
        .try_filter(|secret| std::future::ready(!published(secret)));
    let eiam_provider_events = reflector(
        eiam_providers_writer,
        scope
            .watch(
                &kube,
                watcher::Config::default(),
                from_store(&eiam_providers_reader),
            )
            .modify(|provider| provider.managed_fields_mut().clear()),
    )
    .inspect_ok({
        let context = context.clone();
        move |event| match event {
            watcher::Event::InitDone => {
                eiam_providers_synced.mark();
                context.providers.forget_missing();
            }
            // A deleted provider's client, credentials and connection pool go with it.
            watcher::Event::Delete(_) => context.providers.forget_missing(),
            _ => {}
        }
    })
    .touched_objects();
    let cluster_provider_events = reflector(
        cluster_providers_writer,
        watcher(cluster_providers, watcher::Config::default())
            .default_backoff()
            .modify(|provider| provider.managed_fields_mut().clear()),
    )
    .inspect_ok({
        let context = context.clone();
        move |event| match event {
            watcher::Event::InitDone => {
                cluster_providers_synced.mark();
                context.providers.forget_missing();
            }
            watcher::Event::Delete(_) => context.providers.forget_missing(),
            _ => {}
        }
    })
    .touched_objects();
    let shutdown = operations.shutdown.shared();
    let controller = controller
        .owns_stream(owned_secrets)
        .watches_stream(
            credential_secrets,
            move |secret: PartialObjectMeta<Secret>| {
                waiting_for_credentials(&credential_waiters, secret.namespace())
            },
        )
        .watches_stream(eiam_provider_events, move |provider: EiamProvider| {
            users_of(
                &namespaced_users,
                ProviderKind::EiamProvider,
                provider.namespace(),
                &provider.name_any(),
            )
        })
        .watches_stream(
            cluster_provider_events,
            move |provider: ClusterEiamProvider| {
                users_of(
                    &cluster_users,
                    ProviderKind::ClusterEiamProvider,
                    None,
                    &provider.name_any(),
                )
            },
        )
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "reconcile loop event");
            }
        });
    let provider_status = super::provider::status::run(
        kube,
        &scope,
        super::provider::status::SecretReaders {
            namespaced: secret_watch.reader(),
            // Cluster providers get a status only from an operator that watches every namespace; a reader nobody
            // reads would hold the watch back.
            cluster: scope.is_all().then(|| secret_watch.reader()),
        },
        settings.tenancy.clone(),
        super::provider::status::BudgetReports {
            budgets: budget_view,
            interval: settings.provider_status_interval,
            token: status_token,
        },
        shutdown,
    );
    let secret_watch = secret_watch.spawn();
    // Once the resources' controller has drained, the providers' status loop is not waited for: it only writes
    // provider conditions, which the next leader rewrites. (A kube controller told to shut down before its store
    // finished its first list waits for a readiness that never comes — a stop seconds after start hung until the
    // shutdown timeout.)
    let mut controller = std::pin::pin!(controller);
    let mut provider_status = std::pin::pin!(provider_status);
    tokio::select! {
        () = &mut controller => {}
        () = &mut provider_status => controller.await,
    }
    secret_watch.abort();
    tracing::info!("controller stopped");
}

/// What, in an `ApplicationClientSecret`, is worth a reconcile when it changes: the spec (generation), the
/// annotations (a rotation request), the labels, and deletion. Not the status: the operator writes it itself, and a
/// reconcile triggered by its own status write would bypass the backoff that `error_policy` asked for (each failure
/// writes a status with a new RequestId, whose watch event reconciled again at once: a retry storm).
fn trigger_hash(resource: &ApplicationClientSecret) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    resource.metadata.generation.hash(&mut hasher);
    // Not the first issue's write-ahead marker: the operator sets it itself, with the finalizer.
    resource
        .annotations()
        .iter()
        .filter(|(key, _)| key.as_str() != ANNOTATION_FIRST_CREATE_SINCE)
        .for_each(|annotation| annotation.hash(&mut hasher));
    resource.labels().hash(&mut hasher);
    resource
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// The shared Secret watch as a watch of the Secrets the operator publishes would see it (its label selector): a
/// Secret that loses the label leaves the view as a deletion, so the version last seen of it is forgotten and its
/// owner looks at it again.
fn published_only(
    event: watcher::Event<PartialObjectMeta<Secret>>,
) -> Option<watcher::Event<PartialObjectMeta<Secret>>> {
    match event {
        watcher::Event::InitApply(secret) if !published(&secret) => None,
        watcher::Event::Apply(secret) if !published(&secret) => {
            Some(watcher::Event::Delete(secret))
        }
        event => Some(event),
    }
}

/// Whether a Secret is one the operator publishes (its managed-by label).
fn published(secret: &PartialObjectMeta<Secret>) -> bool {
    secret
        .labels()
        .get(LABEL_MANAGED_BY.0)
        .is_some_and(|value| value == LABEL_MANAGED_BY.1)
}

/// The resources stalled for missing provider credentials that a Secret in `namespace` could unblock: those in the
/// same namespace (an EiamProvider reads its own namespace) and those using a ClusterEiamProvider (whose secretRef
/// names any namespace).
fn waiting_for_credentials(
    store: &Store<ApplicationClientSecret>,
    namespace: Option<String>,
) -> Vec<ObjectRef<ApplicationClientSecret>> {
    store
        .state()
        .iter()
        .filter(|resource| {
            resource.status.as_ref().is_some_and(|status| {
                status.conditions.iter().any(|c| {
                    c.type_ == "Stalled" && c.status == "True" && c.reason == CREDENTIALS_MISSING
                })
            })
        })
        .filter(|resource| {
            resource.namespace() == namespace
                || resource
                    .spec
                    .provider_ref
                    .as_ref()
                    .is_some_and(|r| r.kind == ProviderKind::ClusterEiamProvider)
        })
        .map(|resource| ObjectRef::from_obj(resource.as_ref()))
        .collect()
}

/// The resources that reference a provider.
fn users_of(
    store: &Store<ApplicationClientSecret>,
    kind: ProviderKind,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<ApplicationClientSecret>> {
    store
        .state()
        .iter()
        .filter(|resource| {
            resource
                .spec
                .provider_ref
                .as_ref()
                .is_some_and(|r| r.kind == kind && r.name == name)
                && (namespace.is_none() || resource.namespace() == namespace)
        })
        .map(|resource| ObjectRef::from_obj(resource.as_ref()))
        .collect()
}

async fn reconcile(
    resource: Arc<ApplicationClientSecret>,
    context: Arc<Context>,
) -> Result<Action, ExecError> {
    let key = ObjectRef::from_obj(resource.as_ref());
    let timer = context.metrics.reconcile.start();
    let span = tracing::info_span!(
        "reconcile",
        namespace = %resource.namespace().unwrap_or_default(),
        resource = %resource.name_any(),
        trace_id = %trace_id(),
    );
    let work = async {
        // A panic in one reconcile (a bug, or an answer no parser foresaw) must not take down the process that
        // rotates every team's secrets: it is caught, logged, counted, and the resource retried with backoff.
        let done = std::panic::AssertUnwindSafe(executor::reconcile(&resource, &context))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let message = panic_message(panic.as_ref());
                tracing::error!(panic = %message, "reconcile panicked; the resource is retried with backoff");
                context.metrics.reconcile.panicked();
                Err(ExecError::Panicked(message))
            })?;
        // Due work (renewal, retirement) jittered so that resources never wake in lockstep; the drift check at the
        // resource's own phased slot, which is spread already.
        let until_drift_check = context
            .drift
            .until_next(&executor::identity(&resource), jiff::Timestamp::now());
        let requeue = super::jitter::jittered(done.requeue).min(until_drift_check);
        // One line per completed reconcile, naming the version it left the resource at: tests (and people) can
        // tell that a given change has been handled, and when the resource is looked at next.
        tracing::debug!(
            resource_version = done.resource_version.unwrap_or_default(),
            requeue_in_ms = requeue.as_millis() as u64,
            "reconciled"
        );
        Ok::<_, ExecError>(requeue)
    };
    let outcome = tracing::Instrument::instrument(work, span).await;
    // A resource deleted while this reconcile ran (its deletion event already forgot it) must not be remembered
    // again by what the reconcile recorded on its way out.
    if context.store.get(&key).is_none() {
        context.forget(&key);
    }
    if let Err(err) = &outcome
        && let Some((_, reason)) = err.deferred()
    {
        context.metrics.reconcile.deferred(reason);
    }
    timer.finish(match &outcome {
        Ok(_) => "success",
        Err(err) => result_label(err),
    });
    match outcome {
        Ok(requeue) => {
            if let Ok(mut failures) = context.failures.lock() {
                failures.remove(&key);
            }
            Ok(Action::requeue(requeue))
        }
        Err(err) => Err(err),
    }
}

/// Exponential backoff with jitter for transient failures; a slow, steady retry for permanent ones.
fn error_policy(
    resource: Arc<ApplicationClientSecret>,
    error: &ExecError,
    context: Arc<Context>,
) -> Action {
    if let Some((wait, _)) = error.deferred() {
        // Not a failure either: the provider's seats or budget are busy; come back when they may not be.
        tracing::debug!(
            namespace = %resource.namespace().unwrap_or_default(),
            resource = %resource.name_any(),
            reason = %error,
            "deferred"
        );
        return Action::requeue(super::jitter::jittered(wait.max(DEFERRAL_MIN)));
    }
    if error.is_conflict() {
        // Not a failure: the resource changed under this reconcile. The change's own watch event reconciles the
        // new version right away; this requeue is only a safety net. The copy of our own last write is outdated
        // too: the next pass starts from the cache or a read.
        context
            .written
            .forget(&ObjectRef::from_obj(resource.as_ref()));
        tracing::debug!(
            namespace = %resource.namespace().unwrap_or_default(),
            resource = %resource.name_any(),
            error = %error,
            "resource changed during the reconcile; reconciling the new version"
        );
        return Action::requeue(CONFLICT_RETRY);
    }
    if error.is_fenced() {
        // Not the resource's failure: this replica stopped leading (the process exits once the Lease is lost), or
        // its token lapsed for a moment because a renewal was late (the next try finds it renewed).
        tracing::info!(
            namespace = %resource.namespace().unwrap_or_default(),
            resource = %resource.name_any(),
            error = %error,
            "reconcile stopped: not leading"
        );
        return Action::requeue(CONFLICT_RETRY);
    }
    let key = ObjectRef::from_obj(resource.as_ref());
    if context.store.get(&key).is_none() {
        // Gone: nothing to retry, and nothing to remember about it.
        return Action::await_change();
    }
    let attempt = match context.failures.lock() {
        Ok(mut failures) => {
            let count = failures.entry(key).or_insert(0);
            *count = count.saturating_add(1);
            *count
        }
        Err(_) => 1,
    };
    if let ExecError::Eiam { action, .. } = error
        && !error.is_permanent()
    {
        context.metrics.eiam.backoff_retry(action);
    }
    let delay = if error.is_permanent() {
        PERMANENT_RETRY
    } else {
        let exponential = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(8).saturating_sub(1));
        exponential
            .min(BACKOFF_MAX)
            .max(error.retry_after().unwrap_or_default())
    };
    tracing::warn!(
        namespace = %resource.namespace().unwrap_or_default(),
        resource = %resource.name_any(),
        error = %error,
        attempt,
        retry_in_ms = delay.as_millis() as u64,
        "reconcile failed"
    );
    Action::requeue(super::jitter::jittered(delay))
}

/// The shortest wait before a deferred pass comes back (a budget token due "now" still leaves a moment for the
/// passes that took the earlier ones).
const DEFERRAL_MIN: Duration = Duration::from_millis(100);

/// The text of a caught panic (`panic!` payloads are a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Safety-net requeue after a write conflict (the newer version's watch event normally comes first).
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// The `result` label of a failed reconcile.
fn result_label(error: &ExecError) -> &'static str {
    if error.is_conflict() {
        return "conflict";
    }
    match error {
        ExecError::Eiam { .. } | ExecError::CreateTooLate { .. } => "eiam_error",
        ExecError::Kube { .. } => "kubernetes_error",
        ExecError::InvalidSpec(_) => "invalid_spec",
        ExecError::InvalidTemplate(_) => "invalid_template",
        ExecError::NotConverged => "not_converged",
        ExecError::Fenced(_) => "fenced",
        ExecError::Deferred { .. } => "deferred",
        ExecError::Panicked(_) => "panicked",
    }
}

/// First retry after a transient failure.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest wait between retries of a transient failure.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Retry interval of a permanent failure: it needs a human, but recovers by itself once fixed.
const PERMANENT_RETRY: Duration = Duration::from_secs(600);

fn trace_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
