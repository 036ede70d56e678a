//! `/metrics` for who may read it: HTTPS with a mounted certificate (cert-manager's `tls.crt`/`tls.key`) or a
//! self-signed one, and every scrape authenticated with a TokenReview and authorized with a SubjectAccessReview
//! (`get` on the non-resource URL `/metrics`), as Kubebuilder's scaffolds and ESO's `--metrics-auth` do.
//!
//! The series name every team's resources and schedules, so a pod that merely reaches the port must not read them.
//! Answers are cached for a minute per token (by its SHA-256, never the token itself), so a scraper costs the API
//! server at most two requests a minute (a refusal by RBAC for ten seconds, so a new binding counts soon); the cache
//! is bounded, so a flood of made-up tokens cannot grow it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long an answer about a token is reused.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a refusal by RBAC is reused: short, so that binding the scraper's role takes effect within seconds.
const FORBIDDEN_TTL: Duration = Duration::from_secs(10);
/// The most tokens remembered at once (a scraper or two; more means someone is trying tokens).
const CACHE_CAPACITY: usize = 256;
/// How long a client gets for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once (and connections handed to the server but not yet taken): beyond it new
/// connections wait in the kernel's backlog, so a flood of half-open connections cannot spawn tasks without bound.
const PENDING_CONNECTIONS: usize = 64;

/// Why HTTPS for `/metrics` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A certificate file could not be read or held nothing usable.
    #[error(
        "{path}: {reason}; --metrics-cert-dir must hold tls.crt (PEM certificate chain) and tls.key (PEM private \
         key), as a cert-manager Certificate's Secret does"
    )]
    Pem { path: String, reason: String },
    /// No self-signed certificate could be made.
    #[error("cannot make a self-signed certificate for /metrics: {0}")]
    SelfSigned(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("the metrics certificate and key do not make a TLS server: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS server configuration: the PEM pair in `cert_dir` (`tls.crt`, `tls.key`), else a fresh self-signed
/// certificate for `localhost` and this host's name (scrapers then skip verification, or pin nothing: the token
/// still authenticates them; mount a certificate to let them verify the operator).
pub fn server_config(cert_dir: Option<&Path>) -> Result<rustls::ServerConfig, TlsSetupError> {
    let (chain, key) = match cert_dir {
        Some(dir) => crate::tls::read_pem_pair(&dir.join("tls.crt"), &dir.join("tls.key"))
            .map_err(|problem| TlsSetupError::Pem {
                path: problem.path.display().to_string(),
                reason: problem.reason,
            })?,
        None => {
            let mut names = vec!["localhost".to_owned()];
            if let Ok(host) = std::env::var("HOSTNAME")
                && !host.is_empty()
            {
                names.push(host);
            }
            let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(names)?;
            (
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
            )
        }
    };
    Ok(crate::tls::http1_server(chain, key)?)
}

/// A listener that hands axum TLS connections: handshakes run in their own tasks with a deadline, so a client
/// that never finishes one holds nobody else up.
pub struct TlsListener {
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and completes handshakes with `config`.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (send, connections) = mpsc::channel(PENDING_CONNECTIONS);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(PENDING_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::debug!(error = %err, "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, handed) = (acceptor.clone(), send.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "metrics: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "metrics: TLS handshake timed out"),
                    }
                });
                if send.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { connections, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is gone; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What a token may do with `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The API server does not know the token.
    Unauthenticated,
    /// Known, but RBAC does not grant `get` on `/metrics`.
    Forbidden,
    /// May scrape.
    Allowed,
}

/// Decides scrapes with the API server, remembering answers for [`CACHE_TTL`].
pub struct Authorizer {
    kube: kube::Client,
    cache: Mutex<DecisionCache>,
}

impl Authorizer {
    /// An authorizer asking the API server `kube` talks to.
    pub fn new(kube: kube::Client) -> Self {
        Self {
            kube,
            cache: Mutex::new(DecisionCache::default()),
        }
    }

    /// What `token` may do, from the cache or the API server (an error when it cannot be asked: not cached).
    pub async fn decide(&self, token: &str) -> Result<Decision, kube::Error> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(decision) = self.lock().get(&key, now) {
            return Ok(decision);
        }
        let decision = self.ask(token).await?;
        self.lock().put(key, decision, Instant::now());
        Ok(decision)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn ask(&self, token: &str) -> Result<Decision, kube::Error> {
        let reviews: Api<TokenReview> = Api::all(self.kube.clone());
        let review = reviews
            .create(
                &PostParams::default(),
                &TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token.to_owned()),
                        ..TokenReviewSpec::default()
                    },
                    ..TokenReview::default()
                },
            )
            .await?;
        let status = review.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Decision::Unauthenticated);
        };
        let access: Api<SubjectAccessReview> = Api::all(self.kube.clone());
        let answer = access
            .create(
                &PostParams::default(),
                &SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: user.username,
                        uid: user.uid,
                        groups: user.groups,
                        extra: user.extra,
                        non_resource_attributes: Some(NonResourceAttributes {
                            path: Some("/metrics".to_owned()),
                            verb: Some("get".to_owned()),
                        }),
                        ..SubjectAccessReviewSpec::default()
                    },
                    ..SubjectAccessReview::default()
                },
            )
            .await?;
        Ok(if answer.status.is_some_and(|s| s.allowed) {
            Decision::Allowed
        } else {
            Decision::Forbidden
        })
    }
}

/// How long `decision` is reused.
fn ttl(decision: Decision) -> Duration {
    match decision {
        Decision::Forbidden => FORBIDDEN_TTL,
        Decision::Allowed | Decision::Unauthenticated => CACHE_TTL,
    }
}

/// Decisions by token hash, each for its [`ttl`], at most [`CACHE_CAPACITY`] of them.
#[derive(Debug, Default)]
struct DecisionCache {
    entries: HashMap<[u8; 32], (Instant, Decision)>,
}

impl DecisionCache {
    fn get(&self, key: &[u8; 32], now: Instant) -> Option<Decision> {
        self.entries
            .get(key)
            .filter(|(at, decision)| now.saturating_duration_since(*at) < ttl(*decision))
            .map(|(_, decision)| *decision)
    }

    fn put(&mut self, key: [u8; 32], decision: Decision, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY {
            self.entries
                .retain(|_, (at, decision)| now.saturating_duration_since(*at) < ttl(*decision));
        }
        if self.entries.len() >= CACHE_CAPACITY {
            // All fresh: someone is trying tokens. Forgetting costs the real scrapers one review each.
            self.entries.clear();
        }
        self.entries.insert(key, (now, decision));
    }
}

/// The axum middleware in front of `/metrics`: 401 without a token the API server knows, 403 without the RBAC
/// to `get` `/metrics`, 503 when the API server cannot be asked.
pub async fn authorize(
    State(authorizer): State<Arc<Authorizer>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        return unauthorized();
    };
    match authorizer.decide(token).await {
        Ok(Decision::Allowed) => next.run(request).await,
        Ok(Decision::Unauthenticated) => unauthorized(),
        Ok(Decision::Forbidden) => (
            StatusCode::FORBIDDEN,
            "forbidden: the token's user may not get /metrics (bind it to the metrics-reader ClusterRole)\n",
        )
            .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "metrics: cannot review a scraper's token");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot review the token with the API server; retry\n",
            )
                .into_response()
        }
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "unauthorized: send a Kubernetes bearer token\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_reused_for_a_minute_and_the_cache_stays_bounded() {
        let mut cache = DecisionCache::default();
        let t0 = Instant::now();
        cache.put([1; 32], Decision::Allowed, t0);
        assert_eq!(
            cache.get(&[1; 32], t0 + Duration::from_secs(59)),
            Some(Decision::Allowed)
        );
        assert_eq!(cache.get(&[1; 32], t0 + CACHE_TTL), None);
        cache.put([2; 32], Decision::Forbidden, t0);
        assert_eq!(
            cache.get(&[2; 32], t0 + Duration::from_secs(9)),
            Some(Decision::Forbidden)
        );
        assert_eq!(
            cache.get(&[2; 32], t0 + FORBIDDEN_TTL),
            None,
            "a new binding counts within seconds"
        );
        for i in 0..(CACHE_CAPACITY * 3) {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            cache.put(key, Decision::Unauthenticated, t0);
            assert!(cache.entries.len() <= CACHE_CAPACITY);
        }
    }

    #[test]
    fn a_self_signed_certificate_makes_a_server_and_a_bad_dir_says_what_to_mount() {
        crate::eiam::install_crypto_provider();
        assert!(server_config(None).is_ok());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let err = server_config(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("tls.crt") && err.contains("cert-manager"),
            "{err}"
        );
    }
}
