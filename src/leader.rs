//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one reconciles.
//!
//! kube-lease-manager does the Lease work (acquire with server-side apply, renew before expiry, take over an
//! expired Lease, release); this module names the Lease and the identity and turns the manager's state channel
//! into the three moments the operator cares about: leadership acquired, leadership lost, Lease released.
//!
//! A leader cut off from the API server keeps believing it leads until it notices; that is safe here because
//! every EIAM Create is preceded by a status write (the write-ahead marker), which such a leader cannot make.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Default name of the Lease the replicas compete for.
pub const LEASE_NAME: &str = "eiam-operator";

/// Where the service-account namespace is mounted in a pod.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read or created.
    #[error(
        "cannot set up the leader Lease {namespace}/{name}: {source}; check that the operator may get, create \
         and patch leases.coordination.k8s.io in that namespace (or pass --leader-election=false)"
    )]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    /// The background task that keeps the Lease ended before leadership was given up.
    #[error("the leader election task stopped unexpectedly: {0}")]
    TaskEnded(String),
}

/// How to elect.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity, unique among replicas (`holderIdentity` while it leads).
    pub identity: String,
    /// How long a Lease stays valid after its last renewal: a standby takes over at most this long after the
    /// leader died.
    pub lease_duration: Duration,
}

impl ElectionConfig {
    /// Seconds before expiry at which the leader renews: a third of the duration, at least one second.
    pub fn renew_before_seconds(&self) -> u64 {
        (self.lease_duration.as_secs() / 3).max(1)
    }
}

/// A running election: the Lease is kept by a background task while this value lives.
#[derive(Debug)]
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    identity: String,
}

impl Election {
    /// Creates the Lease if needed and starts competing for it.
    pub async fn start(client: Client, config: &ElectionConfig) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_duration.as_secs().max(2))
            .with_grace(config.renew_before_seconds())
            .build()
            .await
            .map_err(|source| LeaderError::Setup {
                namespace: config.namespace.clone(),
                name: config.lease_name.clone(),
                source,
            })?;
        let (state, task) = manager.watch().await;
        Ok(Self {
            state,
            task,
            identity: config.identity.clone(),
        })
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquired(&mut self) -> Result<(), LeaderError> {
        self.state
            .wait_for(|leader| *leader)
            .await
            .map(|_| ())
            .map_err(|_| LeaderError::TaskEnded("while waiting for leadership".to_owned()))
    }

    /// Resolves when this replica stops holding the Lease (or the task keeping it ends).
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut state = self.state.clone();
        async move {
            // An error means the task ended: leadership is gone either way.
            let _ = state.wait_for(|leader| !*leader).await;
        }
    }

    /// Gives the Lease up (if held) and stops competing, waiting at most `timeout` for the API server.
    pub async fn release(self, timeout: Duration) -> Result<(), LeaderError> {
        // Closing the channel makes the task release the Lease and end.
        drop(self.state);
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(Ok(_manager))) => Ok(()),
            Ok(Ok(Err(err))) => Err(LeaderError::TaskEnded(err.to_string())),
            Ok(Err(join)) => Err(LeaderError::TaskEnded(join.to_string())),
            Err(_) => Err(LeaderError::TaskEnded(format!(
                "releasing the Lease took longer than {timeout:?}"
            ))),
        }
    }
}

/// This replica's identity: the pod name (`POD_NAME`, else `HOSTNAME`, else the host name) plus a random suffix,
/// so that a restarted pod with the same name never mistakes the old holder's Lease for its own.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "eiam-operator".to_owned());
    format!("{base}-{:08x}", rand::random::<u32>())
}

/// The namespace the operator runs in (`POD_NAMESPACE` from the downward API, else the service-account mount),
/// else `default`.
pub fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(POD_NAMESPACE_FILE).ok())
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_renews_a_third_of_the_lease_before_expiry() {
        let config = |secs| ElectionConfig {
            namespace: "ns".into(),
            lease_name: LEASE_NAME.into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(secs),
        };
        assert_eq!(config(15).renew_before_seconds(), 5);
        assert_eq!(config(2).renew_before_seconds(), 1);
    }

    #[test]
    fn identities_differ_between_processes_on_the_same_host() {
        assert_ne!(default_identity(), default_identity());
    }
}
