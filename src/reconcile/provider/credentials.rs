//! A provider's credentials: an AccessKey Secret (read only when its version changes), RRSA, or the operator's
//! environment — and a fingerprint of what they were built from (never of a secret value).

// The resolver's own types and imports: this is one room of it.
use super::*;
use sha2::Digest as _;

/// Who a provider's credentials act as, for its EIAM account budget (issue 23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// What may be shown (hashed) in metrics and logs: `accessKey:<id>`, `role:<arn>` or `ambient`.
    pub public: String,
    /// What the budget is keyed by: the public part and, for an AccessKey, a digest of its secret, held in memory
    /// only. The id is no secret: with it alone a team could put its provider (and a hostile endpoint's throttling
    /// answers) on another team's budget.
    pub key: String,
}

impl Identity {
    fn public(public: String) -> Self {
        Self {
            key: public.clone(),
            public,
        }
    }
}

/// Builds the credential provider of a provider and a fingerprint of its inputs (never of a secret value).
/// A provider's credentials, what the client built from them depends on (its fingerprint), and the identity they
/// act as: the AccessKey id, the RAM role of RRSA, or `ambient` for the operator's own. Providers of one identity
/// share one EIAM account budget (issue 23).
pub(super) async fn credentials_for(
    kube: &Client,
    settings: &Settings<'_>,
) -> Result<(Arc<dyn CredentialProvider>, String, Identity), ProviderProblem> {
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
        return Ok((
            Arc::new(provider),
            format!("rrsa/{rrsa:?}"),
            Identity::public(format!("role:{}", rrsa.role_arn)),
        ));
    }
    let chain = environment_chain().map_err(|err| {
        ProviderProblem::new(
            reasons::CREDENTIALS_MISSING,
            format!("{}: {err}", settings.display),
        )
    })?;
    Ok((
        chain,
        "environment".to_owned(),
        Identity::public("ambient".to_owned()),
    ))
}

/// The operator's own credentials (environment, RRSA, ECS RAM role), built once so their cache is shared.
pub(super) fn environment_chain()
-> Result<Arc<dyn CredentialProvider>, crate::eiam::CredentialError> {
    static CHAIN: OnceLock<Arc<dyn CredentialProvider>> = OnceLock::new();
    if let Some(chain) = CHAIN.get() {
        return Ok(chain.clone());
    }
    let chain = default_chain(ChainConfig::new(process_env()))?;
    Ok(CHAIN.get_or_init(|| chain).clone())
}

pub(super) async fn access_key_credentials(
    kube: &Client,
    settings: &Settings<'_>,
    reference: &AccessKeySecretRef,
) -> Result<(Arc<dyn CredentialProvider>, String, Identity), ProviderProblem> {
    let Some(namespace) = credentials_namespace(settings, reference) else {
        return Err(ProviderProblem::new(
            reasons::PROVIDER_INVALID,
            format!(
                "{}: spec.auth.accessKey.secretRef.namespace is required on a ClusterEiamProvider",
                settings.display
            ),
        ));
    };
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
    let public = format!("accessKey:{access_key_id}");
    let identity = Identity {
        key: format!(
            "{public}:{:x}",
            sha2::Sha256::digest(access_key_secret.expose().as_bytes())
        ),
        public,
    };
    let provider = match &reference.security_token_key {
        Some(key) => StaticProvider::sts(
            access_key_id,
            access_key_secret,
            SecretString::new(read(key)?),
        ),
        None => StaticProvider::access_key(access_key_id, access_key_secret),
    };
    let fingerprint = credentials_fingerprint(
        namespace,
        &reference.name,
        secret
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or_default(),
    );
    Ok((Arc::new(provider), fingerprint, identity))
}

/// The namespace of a provider's AccessKey Secret. An EiamProvider reads its own namespace whatever its reference
/// says (the tenancy check refuses another one first); a ClusterEiamProvider's reference must name the namespace.
pub(super) fn credentials_namespace<'s>(
    settings: &'s Settings<'_>,
    reference: &'s AccessKeySecretRef,
) -> Option<&'s str> {
    settings
        .secret_namespace
        .or(reference.namespace.as_deref())
        .filter(|namespace| !namespace.is_empty())
}

/// What a client built from an AccessKey Secret depends on: the Secret and its version (never its value).
pub(super) fn credentials_fingerprint(namespace: &str, name: &str, version: &str) -> String {
    format!("secret/{namespace}/{name}/{version}")
}
