//! The operator process: command-line flags (each with an environment equivalent) and start-up.

use crate::api::SignatureVersion;
use crate::reconcile::provider::DefaultProvider;
use crate::telemetry::{self, LogFormat};
use std::time::Duration;

/// Flags of the operator. Every flag can also be set through the environment variable named in its help.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "EIAM_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,

    /// How often every resource is checked against EIAM even when nothing is due (one List call), jittered.
    #[arg(long, env = "EIAM_OPERATOR_RESYNC_INTERVAL", default_value = "1h", value_parser = parse_flag_duration)]
    pub resync_interval: Duration,

    /// How many resources are reconciled at the same time.
    #[arg(long, env = "EIAM_OPERATOR_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,

    /// Region of the default provider, used by resources without `spec.providerRef`.
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Endpoint URL of the default provider (overrides `--default-region`); `http://` only for loopback hosts.
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_ENDPOINT")]
    pub default_endpoint: Option<String>,

    /// Signature version the default provider uses toward EIAM: `v1` (HMAC-SHA1) or `v3` (ACS3-HMAC-SHA256).
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_SIGNATURE_VERSION", default_value = "v1", value_parser = parse_signature_version)]
    pub default_signature_version: SignatureVersion,

    /// Log output format.
    #[arg(long, env = "EIAM_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Errors that stop the operator process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kubernetes client could not be configured.
    #[error("cannot configure the Kubernetes client (set KUBECONFIG or run in a pod): {0}")]
    KubeConfig(#[source] kube::Error),
}

fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    crate::api::parse_duration(text).map_err(|err| err.to_string())
}

fn parse_signature_version(text: &str) -> Result<SignatureVersion, String> {
    match text {
        "v1" => Ok(SignatureVersion::V1),
        "v3" => Ok(SignatureVersion::V3),
        other => Err(format!("unknown signature version {other:?}: use v1 or v3")),
    }
}

impl RunArgs {
    /// The provider used by resources without `spec.providerRef`.
    pub fn default_provider(&self) -> DefaultProvider {
        DefaultProvider {
            region: self.default_region.clone(),
            endpoint: self.default_endpoint.clone(),
            signature_version: self.default_signature_version,
        }
    }
}

/// Runs the operator until it is told to stop.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init(args.log_format);
    crate::eiam::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .map_err(RunError::KubeConfig)?;
    tracing::info!(namespace = ?args.namespace, "eiam-operator starting");
    crate::reconcile::controller::run(client, args).await;
    Ok(())
}
