//! Serves the STS and ECS metadata stand-ins (`sts.rs`, `metadata.rs`) next to the fake EIAM, each on its own
//! listener (STS answers at `/`, metadata at `/latest/...`, just like the real hosts), and registers the
//! credentials they issue in the fake's keyring so that RRSA and ECS-RAM-role clients work end to end.

use std::net::SocketAddr;

use axum::Router;
use jiff::SignedDuration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::config::{AccessKeyConfig, FakeConfig, StandInSettings};
use super::metadata::{MetadataConfig, MetadataStandIn};
use super::server::StartError;
use super::sts::{StsConfig, StsStandIn};

/// The STS stand-in's configuration from the fake's settings (omitted fields keep the stand-in's defaults).
pub fn sts_config(settings: &StandInSettings) -> StsConfig {
    let mut config = StsConfig::default();
    if let Some(id) = &settings.access_key_id {
        config.access_key_id.clone_from(id);
    }
    if let Some(secret) = &settings.access_key_secret {
        config.access_key_secret = secret.clone();
    }
    if let Some(token) = &settings.security_token {
        config.security_token = token.clone();
    }
    config.lifetime = settings.lifetime_secs.map(SignedDuration::from_secs);
    config.role_arn.clone_from(&settings.role_arn);
    config
        .oidc_provider_arn
        .clone_from(&settings.oidc_provider_arn);
    // The keyring holds one fixed credential per stand-in.
    config.unique_per_call = false;
    config
}

/// The metadata stand-in's configuration from the fake's settings.
pub fn metadata_config(settings: &StandInSettings) -> MetadataConfig {
    let mut config = MetadataConfig::default();
    if let Some(id) = &settings.access_key_id {
        config.access_key_id.clone_from(id);
    }
    if let Some(secret) = &settings.access_key_secret {
        config.access_key_secret = secret.clone();
    }
    if let Some(token) = &settings.security_token {
        config.security_token = token.clone();
    }
    if let Some(secs) = settings.lifetime_secs {
        config.lifetime = SignedDuration::from_secs(secs);
    }
    if let Some(role) = &settings.role_name {
        config.role_name = Some(role.clone());
    }
    if let Some(require) = settings.require_token {
        config.require_token = require;
    }
    config.unique_per_call = false;
    config
}

/// The AccessKeys the configured stand-ins hand out, for the keyring.
pub fn issued_keys(config: &FakeConfig) -> Vec<AccessKeyConfig> {
    let mut keys = Vec::new();
    if let Some(settings) = &config.sts {
        let sts = sts_config(settings);
        keys.push(AccessKeyConfig {
            id: sts.access_key_id,
            secret: sts.access_key_secret,
            security_token: Some(sts.security_token),
            expires_at_ms: None,
        });
    }
    if let Some(settings) = &config.metadata {
        let metadata = metadata_config(settings);
        keys.push(AccessKeyConfig {
            id: metadata.access_key_id,
            secret: metadata.access_key_secret,
            security_token: Some(metadata.security_token),
            expires_at_ms: None,
        });
    }
    keys
}

/// A stand-in being served; stops when dropped.
pub struct RunningStandIn<T> {
    /// The stand-in, for tests to inspect (calls, counts) or to make fail.
    pub stand_in: T,
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl<T> RunningStandIn<T> {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl<T> Drop for RunningStandIn<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listen: SocketAddr,
    router: Router,
) -> Result<(SocketAddr, JoinHandle<()>), StartError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "credential stand-in stopped");
        }
    });
    Ok((addr, task))
}

/// Starts the STS stand-in.
pub async fn start_sts(
    settings: &StandInSettings,
) -> Result<RunningStandIn<StsStandIn>, StartError> {
    let stand_in = StsStandIn::new(sts_config(settings));
    let (addr, task) = serve(settings.listen, stand_in.router()).await?;
    Ok(RunningStandIn {
        stand_in,
        addr,
        task,
    })
}

/// Starts the ECS metadata stand-in.
pub async fn start_metadata(
    settings: &StandInSettings,
) -> Result<RunningStandIn<MetadataStandIn>, StartError> {
    let stand_in = MetadataStandIn::new(metadata_config(settings));
    let (addr, task) = serve(settings.listen, stand_in.router()).await?;
    Ok(RunningStandIn {
        stand_in,
        addr,
        task,
    })
}
