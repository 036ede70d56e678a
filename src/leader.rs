//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one reconciles.
//!
//! kube-lease-manager does the Lease work (acquire with server-side apply, renew before expiry, take over an
//! expired Lease, release); this module names the Lease and the identity and turns the manager's state channel
//! into the three moments the operator cares about: leadership acquired, leadership lost, Lease released.
//!
//! Holding the Lease object is not enough to act: a leader frozen past its Lease keeps believing it leads until it
//! notices. So the election also keeps the process's [`LeaderToken`]: [`ConfirmedRenewals`], a layer on the
//! election's own kube client, extends it on every Lease write the API server answers with this replica as the
//! holder, and losing the Lease revokes it. Every mutation checks the token immediately before it is sent
//! (see [`crate::fence`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_layer::Layer;
use tower_service::Service;

use crate::fence::LeaderToken;

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

    /// How long before the Lease would expire the leadership token stops holding: half the renewal lead, so that a
    /// renewal answered within the other half extends the token before it lapses, and a standby whose clock runs
    /// up to this much ahead of ours still cannot take the Lease over while the token holds.
    pub fn token_margin(&self) -> Duration {
        Duration::from_secs(self.renew_before_seconds()) / 2
    }

    /// The duration written to the Lease (kube-lease-manager counts whole seconds, at least two).
    fn lease_seconds(&self) -> u64 {
        self.lease_duration.as_secs().max(2)
    }
}

/// A running election: the Lease is kept by a background task while this value lives.
#[derive(Debug)]
pub struct Election {
    state: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    identity: String,
    /// Revoked when the Lease is found lost or given up.
    token: LeaderToken,
}

impl Election {
    /// Creates the Lease if needed and starts competing for it. `client` must carry [`ConfirmedRenewals`] for
    /// `token`, which this election revokes when it loses the Lease.
    pub async fn start(
        client: Client,
        config: &ElectionConfig,
        token: LeaderToken,
    ) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, &config.lease_name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_seconds())
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
            token,
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

    /// Resolves when this replica stops holding the Lease (or the task keeping it ends), revoking its token first.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut state = self.state.clone();
        let token = self.token.clone();
        async move {
            // An error means the task ended: leadership is gone either way.
            let _ = state.wait_for(|leader| !*leader).await;
            // The deadline already stops a frozen leader; this stops one that learned of the loss early.
            token.revoke();
        }
    }

    /// Gives the Lease up (if held) and stops competing, waiting at most `timeout` for the API server. The token is
    /// revoked first: nothing is sent once the Lease may be someone else's.
    pub async fn release(self, timeout: Duration) -> Result<(), LeaderError> {
        self.token.revoke();
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

/// A layer for the election's own kube client that extends the [`LeaderToken`] on every confirmed renewal: a
/// Lease write (acquire or renew, both PATCH) that the API server answers with this replica as the holder extends
/// it to `min(when the request was sent, its renewTime) + leaseDuration − margin` on the monotonic clock.
///
/// Why the answer and not the manager's own bookkeeping: kube-lease-manager reports only transitions, and a
/// renewal patch it sends while it still believes it leads succeeds even after another replica took the Lease over
/// (it carries no precondition); only the answer tells whose Lease it renewed. Why the earlier of the two times: the
/// standby counts from the `renewTime` written, which a pause between stamping it and sending could make older
/// than the send.
#[derive(Debug, Clone)]
pub struct ConfirmedRenewals {
    identity: String,
    token: LeaderToken,
    margin: Duration,
}

impl ConfirmedRenewals {
    /// Extends `token` for renewals of `config.identity`.
    pub fn new(config: &ElectionConfig, token: LeaderToken) -> Self {
        Self {
            identity: config.identity.clone(),
            token,
            margin: config.token_margin(),
        }
    }

    /// A successful PATCH of the Lease, sent at `sent`, answered with `body`.
    fn observe(&self, sent: Instant, body: &[u8]) {
        let Ok(lease) = serde_json::from_slice::<Lease>(body) else {
            return;
        };
        let Some(spec) = lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let (Some(renewed), Some(seconds)) = (spec.renew_time, spec.lease_duration_seconds) else {
            return;
        };
        let Ok(seconds) = u64::try_from(seconds) else {
            return;
        };
        // `renewTime` is this replica's own wall clock: read both clocks together to place it on the monotonic one.
        let (mono_now, wall_now) = (Instant::now(), jiff::Timestamp::now());
        let stamped = Duration::try_from(renewed.0.duration_until(wall_now))
            .ok()
            .and_then(|ago| mono_now.checked_sub(ago))
            .unwrap_or(sent);
        let until = sent.min(stamped) + Duration::from_secs(seconds).saturating_sub(self.margin);
        self.token.extend(until);
        tracing::trace!(
            holds_for_ms = self.token.remaining().unwrap_or_default().as_millis() as u64,
            "leader Lease renewal confirmed"
        );
    }
}

impl<S> Layer<S> for ConfirmedRenewals {
    type Service = ConfirmRenewals<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConfirmRenewals {
            inner,
            renewals: self.clone(),
        }
    }
}

/// The service [`ConfirmedRenewals`] wraps around the election client's stack.
#[derive(Debug, Clone)]
pub struct ConfirmRenewals<S> {
    inner: S,
    renewals: ConfirmedRenewals,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body handed on: the Lease answers read here, the rest as they come.
type PassedBody = UnsyncBoxBody<Bytes, BoxError>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ConfirmRenewals<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<PassedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let write = request.method() == Method::PATCH;
        // Taken before the request leaves: the Lease cannot have been renewed earlier than this.
        let sent = Instant::now();
        let response = self.inner.call(request);
        let renewals = self.renewals.clone();
        Box::pin(async move {
            let response = response.await?;
            if !write || !response.status().is_success() {
                return Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()));
            }
            let (parts, body) = response.into_parts();
            let body = match body.collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    renewals.observe(sent, &bytes);
                    http_body_util::Full::new(bytes)
                        .map_err(|never| match never {})
                        .boxed_unsync()
                }
                // Handed on for the client to report; nothing is confirmed.
                Err(err) => {
                    let failed: Result<http_body::Frame<Bytes>, BoxError> = Err(err.into());
                    http_body_util::StreamBody::new(futures::stream::iter([failed])).boxed_unsync()
                }
            };
            Ok(Response::from_parts(parts, body))
        })
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

    fn lease_answer(holder: &str, renewed: jiff::Timestamp, seconds: i32) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": LEASE_NAME, "namespace": "ns" },
            "spec": {
                "holderIdentity": holder,
                "renewTime": renewed.to_string(),
                "leaseDurationSeconds": seconds,
            },
        }))
        .expect("a Lease serialises")
    }

    fn renewals(token: &LeaderToken) -> ConfirmedRenewals {
        let config = ElectionConfig {
            namespace: "ns".into(),
            lease_name: LEASE_NAME.into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
        };
        assert_eq!(config.token_margin(), Duration::from_millis(2500));
        ConfirmedRenewals::new(&config, token.clone())
    }

    #[test]
    fn a_renewal_answered_with_this_replica_as_holder_extends_the_token() {
        let token = LeaderToken::new();
        renewals(&token).observe(
            Instant::now(),
            &lease_answer("me", jiff::Timestamp::now(), 15),
        );
        let left = token.remaining().expect("a deadline");
        assert!(
            left > Duration::from_secs(12) && left <= Duration::from_millis(12_500),
            "{left:?}"
        );
    }

    #[test]
    fn a_renewal_that_landed_on_someone_elses_lease_extends_nothing() {
        let token = LeaderToken::new();
        renewals(&token).observe(
            Instant::now(),
            &lease_answer("other", jiff::Timestamp::now(), 15),
        );
        assert!(!token.holds());
    }

    #[test]
    fn the_deadline_counts_from_the_renew_time_written_when_it_is_older_than_the_send() {
        // Stamped 14 s before it was sent (a pause between the two): the standby counts from the stamp.
        let token = LeaderToken::new();
        let stamped = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(14))
            .expect("a time");
        renewals(&token).observe(Instant::now(), &lease_answer("me", stamped, 15));
        assert!(!token.holds(), "{:?} left", token.remaining());
    }

    #[test]
    fn identities_differ_between_processes_on_the_same_host() {
        assert_ne!(default_identity(), default_identity());
    }
}
