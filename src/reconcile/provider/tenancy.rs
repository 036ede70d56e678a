//! The multi-tenancy boundary: who may use the operator's own identity (the default provider, ambient
//! credentials) and which namespaces and applications a provider serves. Pure checks on settings and a request;
//! every refusal happens here, before any credential is read or EIAM called.

// The resolver's own types and imports: this is one room of it.
use super::*;

/// Where the operator's own default provider points (flags `--default-region` / `--default-endpoint`) and whom it
/// serves (`--default-provider-allowed-namespaces` / `-applications` / `-allow-import`). It acts with the operator's
/// own credentials, so with no allow-list configured it serves nobody.
#[derive(Clone, Debug, Default)]
pub struct DefaultProvider {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub signature_version: SignatureVersion,
    /// Namespace names, or `*` for every namespace.
    pub allowed_namespaces: Vec<String>,
    /// `INSTANCE/APP` globs.
    pub allowed_applications: Vec<ApplicationPattern>,
    /// Whether `spec.secretId` may import (read) an existing secret through it.
    pub allow_import: bool,
}

/// Who may act with the operator's own identity: the rules of the multi-tenancy boundary that are the operator's
/// configuration rather than a provider's spec.
#[derive(Clone, Debug, Default)]
pub struct TenancyPolicy {
    /// The provider of resources without `spec.providerRef`.
    pub default_provider: DefaultProvider,
    /// `--namespaced-providers-ambient-credentials`: EiamProviders without `spec.auth.accessKey` may use the
    /// operator's own credentials (off by default, as cert-manager's `--issuer-ambient-credentials`).
    pub namespaced_providers_ambient_credentials: bool,
}

/// Parses `INSTANCE/APP` (each part a glob, e.g. `idaas_1/app_team-a-*` or `*/*`) into an application pattern.
pub fn parse_application_pattern(text: &str) -> Result<ApplicationPattern, String> {
    match text.split_once('/') {
        Some((instance, application))
            if !instance.is_empty()
                && !application.is_empty()
                && !application.contains('/')
                && !text.chars().any(char::is_whitespace) =>
        {
            Ok(ApplicationPattern {
                instance_id: instance.to_owned(),
                application_id: application.to_owned(),
            })
        }
        _ => Err(format!(
            "{text:?} is not INSTANCE/APP (globs allowed, e.g. idaas_1/app_team-a-* or */*)"
        )),
    }
}

/// What a resource asks of its provider: the tenancy checks need nothing else.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request<'a> {
    pub(super) namespace: &'a str,
    pub(super) instance_id: &'a str,
    pub(super) application_id: &'a str,
    /// `spec.secretId` is set: adopt (and so read) an existing secret.
    pub(super) import: bool,
}

pub(super) fn not_allowed(message: String) -> ProviderProblem {
    ProviderProblem::new(reasons::NOT_ALLOWED, message)
}

/// The default provider acts with the operator's own identity: only the namespaces and applications the operator's
/// flags name may use it, and with none named, nobody may.
pub(super) fn check_default_provider(
    default: &DefaultProvider,
    request: &Request<'_>,
) -> Result<(), ProviderProblem> {
    let Request {
        namespace,
        instance_id,
        application_id,
        import,
    } = *request;
    if !default
        .allowed_namespaces
        .iter()
        .any(|allowed| allowed == "*" || allowed == namespace)
    {
        let granted = if default.allowed_namespaces.is_empty() {
            "is granted to no namespace"
        } else {
            "does not allow this namespace"
        };
        return Err(not_allowed(format!(
            "the operator's default provider {granted} ({namespace} is not in \
             --default-provider-allowed-namespaces, Helm value operator.defaultProvider.allowedNamespaces); use \
             spec.providerRef, or ask the cluster admin to grant the namespace"
        )));
    }
    if !default
        .allowed_applications
        .iter()
        .any(|pattern| pattern.matches(instance_id, application_id))
    {
        return Err(not_allowed(format!(
            "the operator's default provider does not allow application {instance_id}/{application_id} (not in \
             --default-provider-allowed-applications, Helm value operator.defaultProvider.allowedApplications); \
             use spec.providerRef, or ask the cluster admin to grant the application"
        )));
    }
    if import && !default.allow_import {
        return Err(not_allowed(
            "spec.secretId imports (and so reads) an existing EIAM secret, which the operator's default \
             provider does not allow (--default-provider-allow-import, Helm value \
             operator.defaultProvider.allowImport); remove spec.secretId to mint a new secret, or ask the \
             cluster admin"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A namespaced provider may not act with the operator's own identity (no `auth`, or `auth.rrsa`, which assumes a
/// role with the operator pod's OIDC token), nor read an AccessKey Secret outside its namespace.
pub(super) fn check_namespaced_identity(
    settings: &Settings<'_>,
    policy: &TenancyPolicy,
) -> Result<(), ProviderProblem> {
    let auth = settings.provider.auth;
    if let Some(reference) = settings.provider.access_key_ref() {
        let own = settings.secret_namespace.unwrap_or_default();
        return match reference.namespace.as_deref() {
            Some(other) if other != own => Err(not_allowed(format!(
                "{} may read an AccessKey Secret only in its own namespace, not in {other} \
                 (spec.auth.accessKey.secretRef.namespace); remove the namespace and keep the Secret beside \
                 the provider",
                settings.display
            ))),
            _ => Ok(()),
        };
    }
    if policy.namespaced_providers_ambient_credentials {
        return Ok(());
    }
    let how = if auth.is_some_and(|auth| auth.rrsa.is_some()) {
        "its spec.auth.rrsa would assume a RAM role with the operator's own OIDC identity"
    } else {
        "it has no spec.auth, so it would use the operator's own credentials"
    };
    Err(not_allowed(format!(
        "{}: {how}, which namespaced providers may not (the operator runs without \
         --namespaced-providers-ambient-credentials); give it spec.auth.accessKey with a RAM AccessKey of your \
         team, or ask the cluster admin for a ClusterEiamProvider that allows this namespace",
        settings.display
    )))
}

pub(super) fn check_application(
    settings: &Settings<'_>,
    request: &Request<'_>,
) -> Result<(), ProviderProblem> {
    if settings
        .provider
        .allows_application(request.instance_id, request.application_id)
    {
        return Ok(());
    }
    Err(not_allowed(format!(
        "{} does not allow application {}/{} (spec.allowedApplications); ask its owner to add it",
        settings.display, request.instance_id, request.application_id
    )))
}

pub(super) fn check_import(
    settings: &Settings<'_>,
    request: &Request<'_>,
) -> Result<(), ProviderProblem> {
    if !request.import || settings.provider.allow_import {
        return Ok(());
    }
    Err(not_allowed(format!(
        "spec.secretId imports (and so reads) an existing EIAM secret, which {} does not allow \
         (spec.allowImport is false); remove spec.secretId to mint a new secret, or ask the provider's owner to \
         set allowImport",
        settings.display
    )))
}
