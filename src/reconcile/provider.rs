//! Resolving an `ApplicationClientSecret`'s provider: which EIAM endpoint, which credentials, and whether the
//! provider allows this namespace and application at all (the multi-tenancy boundary).
//!
//! Clients are cached per provider and reused across reconciles, so connection pools, the QPS cap and RRSA
//! credential caches survive; a change to the provider or to its credentials Secret builds a new client.

use crate::api::conditions::reasons;
use crate::api::{
    AccessKeySecretRef, ApplicationClientSecret, ClusterEiamProvider, EiamProvider, ProviderKind,
    ProviderSettings, SignatureVersion,
};
use crate::eiam::{
    EiamClient, SecretString,
    client::ClientConfig,
    credentials::{
        ChainConfig, CredentialProvider, RrsaConfig, RrsaProvider, StaticProvider, default_chain,
        env::sts_endpoint_from_env, process_env,
    },
    endpoint::Endpoint,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Where the operator's own default provider points (flags `--default-region` / `--default-endpoint`).
#[derive(Clone, Debug, Default)]
pub struct DefaultProvider {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub signature_version: SignatureVersion,
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

/// Caches one client per provider, keyed by a fingerprint of everything the client is built from.
#[derive(Default)]
pub struct ProviderCache {
    clients: Mutex<HashMap<String, (String, EiamClient)>>,
}

/// The effective settings of a provider, whichever kind it is.
struct Settings<'a> {
    display: String,
    provider: ProviderSettings<'a>,
    /// Namespace a credentials Secret is read from when the reference does not name one.
    secret_namespace: Option<&'a str>,
    fingerprint: String,
}

impl<'a> Settings<'a> {
    /// An EiamProvider's settings; its AccessKey Secret lives in `namespace`, its own.
    fn of_eiam_provider(provider: &'a EiamProvider, namespace: &'a str) -> Self {
        Self {
            display: format!("EiamProvider {namespace}/{}", provider.name_any()),
            provider: provider.spec.settings(),
            secret_namespace: Some(namespace),
            fingerprint: fingerprint(&provider.metadata),
        }
    }

    /// A ClusterEiamProvider's settings; its AccessKey reference names the Secret's namespace.
    fn of_cluster_provider(provider: &'a ClusterEiamProvider) -> Self {
        Self {
            display: format!("ClusterEiamProvider {}", provider.name_any()),
            provider: provider.spec.settings(),
            secret_namespace: None,
            fingerprint: fingerprint(&provider.metadata),
        }
    }
}

impl ProviderCache {
    /// Resolves the provider of `resource`, checks that it may be used, and returns a client for it.
    pub async fn resolve(
        &self,
        kube: &Client,
        default: &DefaultProvider,
        resource: &ApplicationClientSecret,
    ) -> Result<ResolvedProvider, ProviderProblem> {
        let namespace = resource.namespace().unwrap_or_default();
        let spec = &resource.spec;
        match &spec.provider_ref {
            None => {
                let settings = Settings {
                    display: "the operator's default provider".to_owned(),
                    provider: ProviderSettings {
                        region: default.region.as_deref(),
                        endpoint: default.endpoint.as_deref(),
                        signature_version: default.signature_version,
                        auth: None,
                        qps: None,
                        allowed_applications: None,
                    },
                    secret_namespace: None,
                    fingerprint: format!("default/{default:?}"),
                };
                self.client_for("default".to_owned(), kube, settings).await
            }
            Some(reference) if reference.kind == ProviderKind::EiamProvider => {
                let api: Api<EiamProvider> = Api::namespaced(kube.clone(), &namespace);
                let provider =
                    get_provider(&api, &reference.name, "EiamProvider", &namespace).await?;
                let settings = Settings::of_eiam_provider(&provider, &namespace);
                check_application(&settings, resource)?;
                self.client_for(
                    format!("EiamProvider/{namespace}/{}", reference.name),
                    kube,
                    settings,
                )
                .await
            }
            Some(reference) => {
                let api: Api<ClusterEiamProvider> = Api::all(kube.clone());
                let provider =
                    get_provider(&api, &reference.name, "ClusterEiamProvider", "").await?;
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
                check_application(&settings, resource)?;
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
        let (credentials, credentials_fingerprint) = credentials_for(kube, &settings).await?;
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
        let client = build_client(&settings, credentials)?;
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
fn build_client(
    settings: &Settings<'_>,
    credentials: Arc<dyn CredentialProvider>,
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
    config.qps = settings.provider.qps;
    EiamClient::new(config).map_err(|err| invalid(err.to_string()))
}

/// A provider's own verdict, for its status: what the operator would call EIAM with (endpoint and the kind of
/// credentials), or why it cannot. Reads the AccessKey Secret when there is one; makes no EIAM call.
pub async fn check_eiam_provider(
    kube: &Client,
    provider: &EiamProvider,
) -> Result<String, ProviderProblem> {
    let namespace = provider.namespace().unwrap_or_default();
    check(kube, &Settings::of_eiam_provider(provider, &namespace)).await
}

/// [`check_eiam_provider`] for a ClusterEiamProvider.
pub async fn check_cluster_provider(
    kube: &Client,
    provider: &ClusterEiamProvider,
) -> Result<String, ProviderProblem> {
    check(kube, &Settings::of_cluster_provider(provider)).await
}

async fn check(kube: &Client, settings: &Settings<'_>) -> Result<String, ProviderProblem> {
    let (credentials, _) = credentials_for(kube, settings).await?;
    let kind = credentials.kind();
    let client = build_client(settings, credentials)?;
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
        Ok(None) => {
            let place = if namespace.is_empty() {
                String::new()
            } else {
                format!(" in namespace {namespace}")
            };
            Err(ProviderProblem::new(
                reasons::PROVIDER_NOT_FOUND,
                format!("{kind} {name} does not exist{place}: create it or fix spec.providerRef"),
            ))
        }
        Err(err) => Err(ProviderProblem::new(
            reasons::PROVIDER_NOT_FOUND,
            format!("cannot read {kind} {name}: {err}"),
        )),
    }
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

fn check_application(
    settings: &Settings<'_>,
    resource: &ApplicationClientSecret,
) -> Result<(), ProviderProblem> {
    let spec = &resource.spec;
    if settings
        .provider
        .allows_application(&spec.instance_id, &spec.application_id)
    {
        return Ok(());
    }
    Err(ProviderProblem::new(
        reasons::NOT_ALLOWED,
        format!(
            "{} does not allow application {}/{} (spec.allowedApplications); ask its owner to add it",
            settings.display, spec.instance_id, spec.application_id
        ),
    ))
}

/// Builds the credential provider of a provider and a fingerprint of its inputs (never of a secret value).
async fn credentials_for(
    kube: &Client,
    settings: &Settings<'_>,
) -> Result<(Arc<dyn CredentialProvider>, String), ProviderProblem> {
    let auth = settings.provider.auth;
    if let Some(reference) = settings.provider.access_key_ref() {
        return access_key_credentials(kube, settings, reference).await;
    }
    if let Some(rrsa) = auth.and_then(|auth| auth.rrsa.as_ref()) {
        let mut config = RrsaConfig::new(&rrsa.role_arn, &rrsa.oidc_provider_arn, &rrsa.token_file);
        if !rrsa.session_name.is_empty() {
            config.role_session_name = rrsa.session_name.clone();
        }
        config.sts_endpoint = sts_endpoint_from_env(&process_env()).map_err(|err| {
            ProviderProblem::new(
                reasons::PROVIDER_INVALID,
                format!("{}: {err}", settings.display),
            )
        })?;
        let provider = RrsaProvider::new(config).map_err(|err| {
            ProviderProblem::new(
                reasons::PROVIDER_INVALID,
                format!("{}: {err}", settings.display),
            )
        })?;
        return Ok((Arc::new(provider), format!("rrsa/{rrsa:?}")));
    }
    let chain = environment_chain().map_err(|err| {
        ProviderProblem::new(
            reasons::CREDENTIALS_MISSING,
            format!("{}: {err}", settings.display),
        )
    })?;
    Ok((chain, "environment".to_owned()))
}

/// The operator's own credentials (environment, RRSA, ECS RAM role), built once so their cache is shared.
fn environment_chain() -> Result<Arc<dyn CredentialProvider>, crate::eiam::CredentialError> {
    static CHAIN: OnceLock<Arc<dyn CredentialProvider>> = OnceLock::new();
    if let Some(chain) = CHAIN.get() {
        return Ok(chain.clone());
    }
    let chain = default_chain(ChainConfig::new(process_env()))?;
    Ok(CHAIN.get_or_init(|| chain).clone())
}

async fn access_key_credentials(
    kube: &Client,
    settings: &Settings<'_>,
    reference: &AccessKeySecretRef,
) -> Result<(Arc<dyn CredentialProvider>, String), ProviderProblem> {
    let namespace = reference
        .namespace
        .as_deref()
        .or(settings.secret_namespace)
        .unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let missing = |what: String| {
        ProviderProblem::new(
            reasons::CREDENTIALS_MISSING,
            format!(
                "{}: {what}; retried as soon as it appears",
                settings.display
            ),
        )
    };
    let secret = match api.get_opt(&reference.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(missing(format!(
                "Secret {namespace}/{} does not exist",
                reference.name
            )));
        }
        Err(err) => {
            return Err(missing(format!(
                "cannot read Secret {namespace}/{}: {err}",
                reference.name
            )));
        }
    };
    let data = secret.data.clone().unwrap_or_default();
    let read = |key: &str| -> Result<String, ProviderProblem> {
        let value = data.get(key).ok_or_else(|| {
            missing(format!(
                "Secret {namespace}/{} has no key {key}",
                reference.name
            ))
        })?;
        String::from_utf8(value.0.clone())
            .map(|text| text.trim().to_owned())
            .map_err(|_| {
                missing(format!(
                    "key {key} of Secret {namespace}/{} is not UTF-8",
                    reference.name
                ))
            })
    };
    let access_key_id = read(&reference.access_key_id_key)?;
    let access_key_secret = SecretString::new(read(&reference.access_key_secret_key)?);
    let provider = match &reference.security_token_key {
        Some(key) => StaticProvider::sts(
            access_key_id,
            access_key_secret,
            SecretString::new(read(key)?),
        ),
        None => StaticProvider::access_key(access_key_id, access_key_secret),
    };
    let fingerprint = format!(
        "secret/{namespace}/{}/{}",
        reference.name,
        secret
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
    );
    Ok((Arc::new(provider), fingerprint))
}
