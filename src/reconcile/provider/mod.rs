//! Resolving an `ApplicationClientSecret`'s provider: which EIAM endpoint, which credentials, and whether the
//! provider allows this namespace and application at all (the multi-tenancy boundary, [`tenancy`]). The
//! credentials are built in [`credentials`]; the providers' own `Ready` status is kept by [`status`]. It may use
//! `watch` (provider caches, Secret versions) and the `eiam` client; the executor and the controller use it.
//!
//! Clients are cached per provider and reused across reconciles, so connection pools, the QPS cap and RRSA
//! credential caches survive; a change to the provider or to its credentials Secret builds a new client.
//! Providers come from the controller's watch caches, and a credentials Secret is read only when its version (from
//! the Secret metadata watch) is not the one the cached client was built from: a reconcile, and a restart of
//! thousands, reads neither one by one.

use crate::api::conditions::reasons;
use crate::api::{
    AccessKeySecretRef, ApplicationClientSecret, ApplicationPattern, ClusterEiamProvider,
    EiamProvider, ProviderKind, ProviderSettings, SignatureVersion,
};
use crate::eiam::budget::{Budget, BudgetRegistry, BudgetSnapshot};
use crate::eiam::{
    EiamClient, SecretString,
    client::ClientConfig,
    credentials::{
        ChainConfig, CredentialProvider, RrsaConfig, RrsaProvider, StaticProvider, default_chain,
        env::sts_endpoint_from_env, process_env,
    },
    endpoint::Endpoint,
};
use crate::reconcile::watch::secret_versions::SecretVersions;
use crate::reconcile::watch::synced::Synced;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

mod credentials;
pub mod status;
mod tenancy;

use credentials::{credentials_fingerprint, credentials_for, credentials_namespace};
pub use tenancy::{DefaultProvider, TenancyPolicy, parse_application_pattern};
use tenancy::{
    Request, check_application, check_default_provider, check_import, check_namespaced_identity,
};

/// How long a reconcile right after a start waits for a watch's first list before it reads instead.
const CACHE_PATIENCE: Duration = Duration::from_secs(10);

/// What the controller's watches know about providers and credentials Secrets.
pub struct ProviderSources {
    pub namespaced: Store<EiamProvider>,
    pub namespaced_synced: Arc<Synced>,
    pub cluster: Store<ClusterEiamProvider>,
    pub cluster_synced: Arc<Synced>,
    /// Versions of the Secrets the operator does not publish (credentials among them).
    pub credentials: Arc<SecretVersions>,
}

/// Why a resource cannot use its provider. `reason` becomes the condition reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderProblem {
    /// `NotAllowed`, `ProviderNotFound`, `CredentialsMissing` or `ProviderInvalid`.
    pub reason: &'static str,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl ProviderProblem {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// The provider refused this namespace or application (as opposed to being unusable).
    pub fn is_not_allowed(&self) -> bool {
        self.reason == reasons::NOT_ALLOWED
    }
}

/// A usable provider: its client and a display name for messages and metrics.
#[derive(Clone, Debug)]
pub struct ResolvedProvider {
    pub display: String,
    pub client: EiamClient,
}

/// The cached clients by provider (`EiamProvider/<namespace>/<name>`, `ClusterEiamProvider/<name>`), each with the
/// fingerprint of what it was built from.
type Clients = Arc<Mutex<HashMap<String, (String, EiamClient)>>>;

/// What the cache's clients say of their budgets, by provider: the providers' status reports it (see
/// [`status`]). Read-only; cheap to clone.
#[derive(Clone, Default)]
pub struct BudgetView {
    clients: Clients,
}

impl BudgetView {
    /// The budget of an EiamProvider's client, once one of its resources needed it.
    pub fn of_eiam_provider(&self, namespace: &str, name: &str) -> Option<BudgetSnapshot> {
        self.of(&format!("EiamProvider/{namespace}/{name}"))
    }

    /// The budget of a ClusterEiamProvider's client, once one of its resources needed it.
    pub fn of_cluster_provider(&self, name: &str) -> Option<BudgetSnapshot> {
        self.of(&format!("ClusterEiamProvider/{name}"))
    }

    fn of(&self, key: &str) -> Option<BudgetSnapshot> {
        let clients = self.clients.lock().ok()?;
        clients.get(key)?.1.budget().map(Budget::snapshot)
    }
}

/// Caches one client per provider, keyed by a fingerprint of everything the client is built from. A client carries
/// its provider's QPS budget, so every resource of the provider (and every retry) draws from the same one.
pub struct ProviderCache {
    clients: Clients,
    /// One lock per provider around building its client, so that the reconciles right after a start, which all
    /// find the cache empty at once, read its credentials once, not once each.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The budget, seats and deadline of every client.
    limits: ClientLimits,
    /// One adaptive budget per EIAM account, shared by the clients of every provider on it.
    budgets: Arc<BudgetRegistry>,
    /// Watch caches to read from; without them (or before they are synced) providers and Secrets are read.
    sources: Option<ProviderSources>,
}

/// What every client of the cache gets unless its provider says otherwise, and the bounds of what it may say.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// `--default-qps`: the ceiling of a provider without `spec.qps`; `None` (`auto`): only `max_qps`.
    pub default_qps: Option<f64>,
    /// `--max-qps`: the ceiling of every account's adaptive budget, and of every provider's `spec.qps`.
    pub max_qps: f64,
    /// `--provider-max-concurrent-calls`: the concurrent EIAM calls of a provider without
    /// `spec.maxConcurrentCalls`, and the most a namespaced EiamProvider (a tenant's) may ask for.
    pub default_seats: u16,
    /// `--concurrency`: the most a ClusterEiamProvider (an admin's) may ask for.
    pub max_seats: u16,
    /// `--eiam-call-timeout`: one deadline for each request, connect to last byte.
    pub call_deadline: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            default_qps: None,
            max_qps: DEFAULT_MAX_QPS,
            default_seats: DEFAULT_MAX_CONCURRENT_CALLS,
            max_seats: DEFAULT_MAX_CONCURRENT_CALLS,
            call_deadline: crate::eiam::limits::DEFAULT_CALL_DEADLINE,
        }
    }
}

/// The most requests per second any EIAM account's budget grows to, unless `--max-qps` says otherwise.
pub const DEFAULT_MAX_QPS: f64 = 100.0;
/// Concurrent EIAM calls of a provider without `spec.maxConcurrentCalls`, unless
/// `--provider-max-concurrent-calls` says otherwise: a quarter of the default `--concurrency` of 16.
pub const DEFAULT_MAX_CONCURRENT_CALLS: u16 = 4;

impl ClientLimits {
    /// The ceiling of a provider that asks for `asked` requests per second (`spec.qps`): what it asks, else
    /// `--default-qps`, else `--max-qps`, never above `--max-qps`.
    pub fn ceiling(&self, asked: Option<f64>) -> f64 {
        asked
            .or(self.default_qps)
            .unwrap_or(self.max_qps)
            .min(self.max_qps)
    }

    /// The seats of a provider that asks for `asked`: a tenant's (namespaced) provider may only lower the
    /// operator's default, an admin's may raise it up to `--concurrency`.
    fn seats(&self, asked: Option<u16>, namespaced: bool) -> usize {
        let ceiling = if namespaced {
            self.default_seats
        } else {
            self.max_seats.max(self.default_seats)
        };
        usize::from(asked.unwrap_or(self.default_seats).clamp(1, ceiling.max(1)))
    }
}

/// The effective settings of a provider, whichever kind it is.
struct Settings<'a> {
    display: String,
    provider: ProviderSettings<'a>,
    /// Namespace a credentials Secret is read from when the reference does not name one.
    secret_namespace: Option<&'a str>,
    fingerprint: String,
    /// A tenant's provider (an EiamProvider): it may lower the operator's limits, not raise them.
    namespaced: bool,
}

impl<'a> Settings<'a> {
    /// An EiamProvider's settings; its AccessKey Secret lives in `namespace`, its own.
    fn of_eiam_provider(provider: &'a EiamProvider, namespace: &'a str) -> Self {
        Self {
            display: format!("EiamProvider {namespace}/{}", provider.name_any()),
            provider: provider.spec.settings(),
            secret_namespace: Some(namespace),
            fingerprint: fingerprint(&provider.metadata),
            namespaced: true,
        }
    }

    /// A ClusterEiamProvider's settings; its AccessKey reference names the Secret's namespace.
    fn of_cluster_provider(provider: &'a ClusterEiamProvider) -> Self {
        Self {
            display: format!("ClusterEiamProvider {}", provider.name_any()),
            provider: provider.spec.settings(),
            secret_namespace: None,
            fingerprint: fingerprint(&provider.metadata),
            namespaced: false,
        }
    }
}

impl ProviderCache {
    /// An empty cache whose clients get `limits` unless their provider says otherwise.
    pub fn new(limits: ClientLimits) -> Self {
        Self {
            clients: Clients::default(),
            building: Mutex::default(),
            limits,
            budgets: Arc::new(BudgetRegistry::new(limits.max_qps)),
            sources: None,
        }
    }

    /// The account budgets of its clients (for the metrics).
    pub fn budgets(&self) -> Arc<BudgetRegistry> {
        self.budgets.clone()
    }

    /// Each provider's budget, as its client holds it (for the providers' status).
    pub fn budget_view(&self) -> BudgetView {
        BudgetView {
            clients: self.clients.clone(),
        }
    }

    /// Reads providers and credentials versions from these watch caches.
    pub fn with_sources(mut self, sources: ProviderSources) -> Self {
        self.sources = Some(sources);
        self
    }

    /// How many clients it holds, and how many per-provider build locks.
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.clients.lock().map(|c| c.len()).unwrap_or_default(),
            self.building.lock().map(|b| b.len()).unwrap_or_default(),
        )
    }

    /// Drops the client (its connection pool, credentials and budget) and build lock of every provider the watch
    /// caches no longer hold: a deleted provider's memory is given back.
    pub fn forget_missing(&self) {
        let Some(sources) = &self.sources else {
            return;
        };
        let exists = |key: &str| match key.split('/').collect::<Vec<_>>().as_slice() {
            ["EiamProvider", namespace, name] => sources
                .namespaced
                .get(&ObjectRef::new(name).within(namespace))
                .is_some(),
            ["ClusterEiamProvider", name] => sources.cluster.get(&ObjectRef::new(name)).is_some(),
            _ => true,
        };
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain(|key, _| exists(key));
        }
        if let Ok(mut building) = self.building.lock() {
            // A lock someone holds or waits on stays: its build is under way.
            building.retain(|key, lock| exists(key) || Arc::strong_count(lock) > 1);
        }
    }

    /// An EiamProvider from the watch cache once synced, else from the API server.
    async fn eiam_provider(
        &self,
        kube: &Client,
        namespace: &str,
        name: &str,
    ) -> Result<EiamProvider, ProviderProblem> {
        if let Some(sources) = &self.sources
            && sources.namespaced_synced.wait(CACHE_PATIENCE).await
        {
            let key = ObjectRef::new(name).within(namespace);
            return match sources.namespaced.get(&key) {
                Some(provider) => Ok((*provider).clone()),
                None => Err(provider_not_found("EiamProvider", name, namespace)),
            };
        }
        let api: Api<EiamProvider> = Api::namespaced(kube.clone(), namespace);
        get_provider(&api, name, "EiamProvider", namespace).await
    }

    /// A ClusterEiamProvider from the watch cache once synced, else from the API server.
    async fn cluster_provider(
        &self,
        kube: &Client,
        name: &str,
    ) -> Result<ClusterEiamProvider, ProviderProblem> {
        if let Some(sources) = &self.sources
            && sources.cluster_synced.wait(CACHE_PATIENCE).await
        {
            return match sources.cluster.get(&ObjectRef::new(name)) {
                Some(provider) => Ok((*provider).clone()),
                None => Err(provider_not_found("ClusterEiamProvider", name, "")),
            };
        }
        let api: Api<ClusterEiamProvider> = Api::all(kube.clone());
        get_provider(&api, name, "ClusterEiamProvider", "").await
    }

    /// The cached client of `key`, if it was built from exactly these settings and the credentials Secret's
    /// current version (as the watch shows it): then nothing needs reading.
    async fn unchanged_client(&self, key: &str, settings: &Settings<'_>) -> Option<EiamClient> {
        let sources = self.sources.as_ref()?;
        let reference = settings.provider.access_key_ref()?;
        let namespace = credentials_namespace(settings, reference)?;
        let version = sources
            .credentials
            .get(namespace, &reference.name, CACHE_PATIENCE)
            .await?;
        let fingerprint = format!(
            "{}|{}",
            settings.fingerprint,
            credentials_fingerprint(namespace, &reference.name, &version)
        );
        let cache = self.clients.lock().ok()?;
        let (cached_fingerprint, client) = cache.get(key)?;
        (*cached_fingerprint == fingerprint).then(|| client.clone())
    }

    /// Resolves the provider of `resource`, checks that it may be used, and returns a client for it.
    ///
    /// Every refusal happens here, before any credential is read or EIAM called: the namespace and application
    /// allow-lists, import without `allowImport`, and a namespaced provider that would act with the operator's
    /// own identity. The CRDs' CEL rules say some of this too; it is checked again because an older CRD (Helm
    /// never upgrades CRDs) may lack them.
    pub async fn resolve(
        &self,
        kube: &Client,
        policy: &TenancyPolicy,
        resource: &ApplicationClientSecret,
    ) -> Result<ResolvedProvider, ProviderProblem> {
        let namespace = resource.namespace().unwrap_or_default();
        let spec = &resource.spec;
        let request = Request {
            namespace: &namespace,
            instance_id: &spec.instance_id,
            application_id: &spec.application_id,
            // Import reads an existing secret: it needs its own grant. A resource on its way out reads nothing.
            import: spec.secret_id.as_deref().is_some_and(|id| !id.is_empty())
                && resource.metadata.deletion_timestamp.is_none(),
        };
        match &spec.provider_ref {
            None => {
                let default = &policy.default_provider;
                check_default_provider(default, &request)?;
                let settings = Settings {
                    display: "the operator's default provider".to_owned(),
                    provider: ProviderSettings {
                        region: default.region.as_deref(),
                        endpoint: default.endpoint.as_deref(),
                        signature_version: default.signature_version,
                        ca_bundle: None,
                        auth: None,
                        qps: None,
                        max_concurrent_calls: None,
                        allowed_applications: None,
                        allow_import: default.allow_import,
                    },
                    secret_namespace: None,
                    namespaced: false,
                    fingerprint: format!(
                        "default/{:?}/{:?}/{:?}",
                        default.region, default.endpoint, default.signature_version
                    ),
                };
                self.client_for("default".to_owned(), kube, settings).await
            }
            Some(reference) if reference.kind == ProviderKind::EiamProvider => {
                let provider = self
                    .eiam_provider(kube, &namespace, &reference.name)
                    .await?;
                let settings = Settings::of_eiam_provider(&provider, &namespace);
                check_namespaced_identity(&settings, policy)?;
                check_application(&settings, &request)?;
                check_import(&settings, &request)?;
                self.client_for(
                    format!("EiamProvider/{namespace}/{}", reference.name),
                    kube,
                    settings,
                )
                .await
            }
            Some(reference) => {
                let provider = self.cluster_provider(kube, &reference.name).await?;
                let settings = Settings::of_cluster_provider(&provider);
                // The namespace's labels are read only when a selector could need them.
                if provider.spec.allowed_namespaces.is_some() {
                    let labels = namespace_labels(kube, &namespace).await?;
                    if !provider.spec.allows_namespace(&namespace, &labels) {
                        return Err(ProviderProblem::new(
                            reasons::NOT_ALLOWED,
                            format!(
                                "{} does not allow namespace {namespace} (spec.allowedNamespaces); ask its \
                                 owner to add the namespace or use another provider",
                                settings.display
                            ),
                        ));
                    }
                }
                check_application(&settings, &request)?;
                check_import(&settings, &request)?;
                self.client_for(
                    format!("ClusterEiamProvider/{}", reference.name),
                    kube,
                    settings,
                )
                .await
            }
        }
    }

    async fn client_for(
        &self,
        key: String,
        kube: &Client,
        settings: Settings<'_>,
    ) -> Result<ResolvedProvider, ProviderProblem> {
        let building = self
            .building
            .lock()
            .map(|mut locks| locks.entry(key.clone()).or_default().clone())
            .ok();
        let _one_at_a_time = match &building {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        if let Some(client) = self.unchanged_client(&key, &settings).await {
            return Ok(ResolvedProvider {
                display: settings.display,
                client,
            });
        }
        let (credentials, credentials_fingerprint, identity) =
            credentials_for(kube, &settings).await?;
        let fingerprint = format!("{}|{credentials_fingerprint}", settings.fingerprint);
        if let Ok(cache) = self.clients.lock()
            && let Some((cached_fingerprint, client)) = cache.get(&key)
            && *cached_fingerprint == fingerprint
        {
            return Ok(ResolvedProvider {
                display: settings.display,
                client: client.clone(),
            });
        }
        // One account budget per identity and endpoint: throttling answers from one endpoint say nothing about
        // another's limit (and a team's hostile endpoint cannot slow another team's budget).
        let endpoint = settings.provider.endpoint_url().unwrap_or_default();
        let budget = self.budgets.budget_starting_at(
            &format!("{}@{endpoint}", identity.key),
            &format!("{}@{endpoint}", identity.public),
            self.limits.ceiling(settings.provider.qps),
            settings.provider.qps.or(self.limits.default_qps),
        );
        let client = build_client(&settings, credentials, Some(budget), &self.limits)?;
        if let Ok(mut cache) = self.clients.lock() {
            cache.insert(key, (fingerprint, client.clone()));
        }
        Ok(ResolvedProvider {
            display: settings.display,
            client,
        })
    }
}

/// An EIAM client for `settings` with `credentials`: the endpoint must parse and the client settings be valid.
/// Without `spec.qps` it sends at most `limits.default_qps` requests per second; its seats follow
/// [`ClientLimits::seats`].
fn build_client(
    settings: &Settings<'_>,
    credentials: Arc<dyn CredentialProvider>,
    budget: Option<Budget>,
    limits: &ClientLimits,
) -> Result<EiamClient, ProviderProblem> {
    let invalid = |err: String| {
        ProviderProblem::new(
            reasons::PROVIDER_INVALID,
            format!("{}: {err}", settings.display),
        )
    };
    let endpoint = match (settings.provider.endpoint, settings.provider.region) {
        (Some(url), _) => Endpoint::parse(url),
        (None, Some(region)) => Endpoint::from_region(region),
        (None, None) => {
            return Err(ProviderProblem::new(
                reasons::PROVIDER_INVALID,
                format!(
                    "{} names neither a region nor an endpoint",
                    settings.display
                ),
            ));
        }
    }
    .map_err(|err| invalid(err.to_string()))?;
    let mut config = ClientConfig::new(endpoint, credentials);
    config.signature_version = settings.provider.signature_version.into();
    config.qps = Some(limits.ceiling(settings.provider.qps));
    config.budget = budget;
    config.seats = Some(limits.seats(settings.provider.max_concurrent_calls, settings.namespaced));
    config.call_deadline = limits.call_deadline;
    config.ca_bundle = settings.provider.ca_bundle.map(<[u8]>::to_vec);
    EiamClient::new(config).map_err(|err| invalid(err.to_string()))
}

/// A provider's own verdict, for its status: what the operator would call EIAM with (endpoint and the kind of
/// credentials), or why it cannot. Reads the AccessKey Secret when there is one; makes no EIAM call.
pub async fn check_eiam_provider(
    kube: &Client,
    policy: &TenancyPolicy,
    provider: &EiamProvider,
) -> Result<String, ProviderProblem> {
    let namespace = provider.namespace().unwrap_or_default();
    let settings = Settings::of_eiam_provider(provider, &namespace);
    check_namespaced_identity(&settings, policy)?;
    check(kube, &settings).await
}

/// [`check_eiam_provider`] for a ClusterEiamProvider.
pub async fn check_cluster_provider(
    kube: &Client,
    provider: &ClusterEiamProvider,
) -> Result<String, ProviderProblem> {
    check(kube, &Settings::of_cluster_provider(provider)).await
}

async fn check(kube: &Client, settings: &Settings<'_>) -> Result<String, ProviderProblem> {
    let (credentials, _, _) = credentials_for(kube, settings).await?;
    let kind = credentials.kind();
    // Only validated here (the check calls nothing), so the limits are immaterial.
    let client = build_client(settings, credentials, None, &ClientLimits::default())?;
    Ok(format!(
        "EIAM at {}, credentials: {kind}",
        client.endpoint().url()
    ))
}

fn fingerprint(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.uid.as_deref().unwrap_or_default(),
        meta.generation.unwrap_or_default()
    )
}

async fn get_provider<K>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    namespace: &str,
) -> Result<K, ProviderProblem>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(provider)) => Ok(provider),
        Ok(None) => Err(provider_not_found(kind, name, namespace)),
        Err(err) => Err(ProviderProblem::new(
            reasons::PROVIDER_NOT_FOUND,
            format!("cannot read {kind} {name}: {err}"),
        )),
    }
}

fn provider_not_found(kind: &str, name: &str, namespace: &str) -> ProviderProblem {
    let place = if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace}")
    };
    ProviderProblem::new(
        reasons::PROVIDER_NOT_FOUND,
        format!("{kind} {name} does not exist{place}: create it or fix spec.providerRef"),
    )
}

async fn namespace_labels(
    kube: &Client,
    namespace: &str,
) -> Result<std::collections::BTreeMap<String, String>, ProviderProblem> {
    let api: Api<Namespace> = Api::all(kube.clone());
    match api.get_opt(namespace).await {
        Ok(found) => Ok(found.and_then(|ns| ns.metadata.labels).unwrap_or_default()),
        Err(err) => Err(ProviderProblem::new(
            reasons::PROVIDER_NOT_FOUND,
            format!("cannot read namespace {namespace}: {err}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AccessKeyAuth, ProviderAuth, RrsaAuth};

    fn request(
        namespace: &'static str,
        application_id: &'static str,
        import: bool,
    ) -> Request<'static> {
        Request {
            namespace,
            instance_id: "idaas_1",
            application_id,
            import,
        }
    }

    fn default_provider(
        namespaces: &[&str],
        applications: &[&str],
        allow_import: bool,
    ) -> DefaultProvider {
        DefaultProvider {
            allowed_namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            allowed_applications: applications
                .iter()
                .map(|a| parse_application_pattern(a).expect("a pattern"))
                .collect(),
            allow_import,
            ..DefaultProvider::default()
        }
    }

    fn refusal(result: Result<(), ProviderProblem>) -> String {
        let problem = result.expect_err("refused");
        assert_eq!(problem.reason, reasons::NOT_ALLOWED);
        problem.message
    }

    #[test]
    fn application_patterns_parse_instance_slash_app() {
        let pattern = parse_application_pattern("idaas_1/app_team-a-*").expect("valid");
        assert_eq!(pattern.instance_id, "idaas_1");
        assert_eq!(pattern.application_id, "app_team-a-*");
        assert!(parse_application_pattern("*/*").is_ok());
        for bad in ["app_1", "/app_1", "idaas_1/", "a/b/c", "a /b", ""] {
            let err = parse_application_pattern(bad).expect_err(bad);
            assert!(err.contains("INSTANCE/APP"), "{err}");
        }
    }

    #[test]
    fn the_default_provider_serves_nobody_until_granted() {
        let message = refusal(check_default_provider(
            &DefaultProvider::default(),
            &request("team-a", "app_1", false),
        ));
        assert!(message.contains("granted to no namespace"), "{message}");
        assert!(
            message.contains("--default-provider-allowed-namespaces"),
            "{message}"
        );
        assert!(
            message.contains("operator.defaultProvider.allowedNamespaces"),
            "{message}"
        );

        // A namespace alone grants no application.
        let namespace_only = default_provider(&["team-a"], &[], false);
        let message = refusal(check_default_provider(
            &namespace_only,
            &request("team-a", "app_1", false),
        ));
        assert!(
            message.contains("--default-provider-allowed-applications"),
            "{message}"
        );
        assert!(message.contains("idaas_1/app_1"), "{message}");
    }

    #[test]
    fn the_default_provider_checks_namespace_application_and_import() {
        let granted = default_provider(&["team-a"], &["idaas_1/app_team-a-*"], false);
        assert!(
            check_default_provider(&granted, &request("team-a", "app_team-a-1", false)).is_ok()
        );
        let message = refusal(check_default_provider(
            &granted,
            &request("team-b", "app_team-a-1", false),
        ));
        assert!(
            message.contains("does not allow this namespace") && message.contains("team-b"),
            "{message}"
        );
        let message = refusal(check_default_provider(
            &granted,
            &request("team-a", "app_team-b-1", false),
        ));
        assert!(message.contains("idaas_1/app_team-b-1"), "{message}");
        let message = refusal(check_default_provider(
            &granted,
            &request("team-a", "app_team-a-1", true),
        ));
        assert!(
            message.contains("--default-provider-allow-import"),
            "{message}"
        );

        let everyone = default_provider(&["*"], &["*/*"], true);
        assert!(check_default_provider(&everyone, &request("any", "app_x", true)).is_ok());
    }

    fn eiam_provider(auth: Option<ProviderAuth>, allow_import: bool) -> EiamProvider {
        let mut provider = EiamProvider::new(
            "team",
            crate::api::EiamProviderSpec {
                region: Some("cn-hangzhou".into()),
                endpoint: None,
                signature_version: SignatureVersion::V1,
                ca_bundle: None,
                auth,
                qps: None,
                max_concurrent_calls: None,
                allowed_applications: None,
                allow_import,
            },
        );
        provider.metadata.namespace = Some("team-a".into());
        provider
    }

    #[test]
    fn a_ca_bundle_without_a_certificate_makes_the_provider_invalid() {
        let mut provider = eiam_provider(None, false);
        provider.spec.ca_bundle = Some(k8s_openapi::ByteString(b"not a certificate".to_vec()));
        let settings = Settings::of_eiam_provider(&provider, "team-a");
        let credentials: Arc<dyn CredentialProvider> =
            Arc::new(crate::eiam::StaticProvider::access_key("LTAIid", "secret"));
        let problem =
            build_client(&settings, credentials, None, &ClientLimits::default()).unwrap_err();
        assert_eq!(problem.reason, reasons::PROVIDER_INVALID);
        assert!(
            problem
                .message
                .contains("EiamProvider team-a/team: invalid caBundle"),
            "{}",
            problem.message
        );
    }

    fn access_key(namespace: Option<&str>) -> Option<ProviderAuth> {
        Some(ProviderAuth {
            access_key: Some(AccessKeyAuth {
                secret_ref: AccessKeySecretRef {
                    name: "ak".into(),
                    namespace: namespace.map(str::to_owned),
                    access_key_id_key: "accessKeyId".into(),
                    access_key_secret_key: "accessKeySecret".into(),
                    security_token_key: None,
                },
            }),
            rrsa: None,
        })
    }

    #[test]
    fn namespaced_providers_bring_their_own_identity() {
        let strict = TenancyPolicy::default();
        let lenient = TenancyPolicy {
            namespaced_providers_ambient_credentials: true,
            ..TenancyPolicy::default()
        };
        let check = |provider: &EiamProvider, policy: &TenancyPolicy| {
            check_namespaced_identity(&Settings::of_eiam_provider(provider, "team-a"), policy)
        };

        let ambient = eiam_provider(None, false);
        let message = refusal(check(&ambient, &strict));
        assert!(message.contains("no spec.auth"), "{message}");
        assert!(
            message.contains("--namespaced-providers-ambient-credentials"),
            "{message}"
        );
        assert!(message.contains("ClusterEiamProvider"), "{message}");
        assert!(check(&ambient, &lenient).is_ok());

        let rrsa = eiam_provider(
            Some(ProviderAuth {
                access_key: None,
                rrsa: Some(RrsaAuth {
                    role_arn: "acs:ram::1:role/x".into(),
                    oidc_provider_arn: "acs:ram::1:oidc-provider/y".into(),
                    token_file: "/token".into(),
                    session_name: "s".into(),
                }),
            }),
            false,
        );
        let message = refusal(check(&rrsa, &strict));
        assert!(message.contains("spec.auth.rrsa"), "{message}");

        assert!(check(&eiam_provider(access_key(None), false), &strict).is_ok());
        assert!(check(&eiam_provider(access_key(Some("team-a")), false), &strict).is_ok());
        // Another namespace's Secret is refused even when ambient credentials are allowed (an old CRD without
        // the CEL rule would let it through admission).
        let message = refusal(check(
            &eiam_provider(access_key(Some("kube-system")), false),
            &lenient,
        ));
        assert!(
            message.contains("secretRef.namespace") && message.contains("kube-system"),
            "{message}"
        );
    }

    #[test]
    fn import_needs_allow_import() {
        let closed = eiam_provider(access_key(None), false);
        let open = eiam_provider(access_key(None), true);
        let settings = |p| Settings::of_eiam_provider(p, "team-a");
        assert!(check_import(&settings(&closed), &request("team-a", "app_1", false)).is_ok());
        let message = refusal(check_import(
            &settings(&closed),
            &request("team-a", "app_1", true),
        ));
        assert!(message.contains("spec.allowImport"), "{message}");
        assert!(check_import(&settings(&open), &request("team-a", "app_1", true)).is_ok());
    }
}
