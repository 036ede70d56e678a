//! The operator process: command-line flags (each with an environment equivalent) and start-up.

use crate::api::ApplicationPattern;
use crate::api::SignatureVersion;
use crate::fence::LeaderToken;
use crate::health::{Health, Phase};
use crate::leader::{self, Election, ElectionConfig, LeaderError};
use crate::metrics::Metrics;
use crate::reconcile::provider::{DefaultProvider, TenancyPolicy, parse_application_pattern};
use crate::telemetry::{self, LogFormat};
use clap::ArgAction;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Flags of the operator. Every flag can also be set through the environment variable named in its help.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only these namespaces: repeatable, or comma-separated (default: all namespaces). One watch per
    /// namespace; the operator is ready once every one has listed. ClusterEiamProvider status is written only by an
    /// operator that watches all namespaces.
    #[arg(long, env = "EIAM_OPERATOR_NAMESPACE", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// How often every resource is checked against EIAM even when nothing is due (one List call), each at a fixed
    /// phase of the interval derived from its uid: checks spread evenly, and a restart checks nothing early.
    #[arg(long, env = "EIAM_OPERATOR_RESYNC_INTERVAL", default_value = "1h", value_parser = parse_flag_duration)]
    pub resync_interval: Duration,

    /// How many resources are reconciled at the same time. A reconcile waiting for its provider's QPS budget
    /// holds its slot, so this is sized to keep the budget busy, not to bound EIAM traffic (`--default-qps` and
    /// `spec.qps` do that).
    #[arg(long, env = "EIAM_OPERATOR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// The ceiling on requests per second to EIAM through each provider without `spec.qps` (the default provider
    /// included): `auto` (only `--max-qps`), or a number 0.01..1000. Below it, every EIAM account's budget is
    /// adaptive: shared by all providers whose credentials are the same identity, it starts at 10/s, grows while
    /// EIAM accepts and backs off when EIAM throttles (README "The EIAM budget"). Requests leave evenly spaced.
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_QPS", default_value = "auto", value_parser = parse_default_qps)]
    pub default_qps: DefaultQps,

    /// The most requests per second any EIAM account's adaptive budget grows to, and the ceiling of every
    /// provider's `spec.qps`, 0.5..1000.
    #[arg(long, env = "EIAM_OPERATOR_MAX_QPS", default_value_t = DEFAULT_MAX_QPS, value_parser = parse_max_qps)]
    pub max_qps: f64,

    /// At most this many EIAM calls through one provider at once (its waits for the QPS budget included), for
    /// providers without `spec.maxConcurrentCalls`, 1..64. A namespaced EiamProvider (a tenant's) may ask for fewer,
    /// never more; a ClusterEiamProvider may ask for up to `--concurrency`. A reconcile that finds its provider's
    /// calls all taken, or its budget's next slot more than 150 ms away, gives its worker back and comes back
    /// later: one team's provider (a tiny `qps`, an endpoint that hangs) holds at most this many workers.
    #[arg(long, env = "EIAM_OPERATOR_PROVIDER_MAX_CONCURRENT_CALLS", default_value_t = DEFAULT_MAX_CONCURRENT_CALLS,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub provider_max_concurrent_calls: u16,

    /// How often each provider's EIAM budget is compared with its `status.budget`, 1s..1h. The status is written
    /// when the budget moved by more than a tenth or backed off since, so at most once per interval per provider,
    /// with one Event (reason `BudgetBackedOff`) when it backed off.
    #[arg(long, env = "EIAM_OPERATOR_PROVIDER_STATUS_INTERVAL", default_value = "30s",
        value_parser = parse_provider_status_interval)]
    pub provider_status_interval: Duration,

    /// One deadline for each request to EIAM, STS or the metadata service, from connecting to the last byte of
    /// the answer (whose body is read up to 1 MiB). Past it the call fails as a timeout naming the endpoint.
    #[arg(long, env = "EIAM_OPERATOR_EIAM_CALL_TIMEOUT", default_value = "30s", value_parser = parse_call_timeout)]
    pub eiam_call_timeout: Duration,

    /// Region of the default provider, used by resources without `spec.providerRef`.
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_REGION")]
    pub default_region: Option<String>,

    /// Endpoint URL of the default provider (overrides `--default-region`); `http://` only for loopback hosts.
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_ENDPOINT")]
    pub default_endpoint: Option<String>,

    /// Signature version the default provider uses toward EIAM: `v1` (HMAC-SHA1) or `v3` (ACS3-HMAC-SHA256).
    #[arg(long, env = "EIAM_OPERATOR_DEFAULT_SIGNATURE_VERSION", default_value = "v1", value_parser = parse_signature_version)]
    pub default_signature_version: SignatureVersion,

    /// Namespaces whose resources may use the default provider (and so the operator's own credentials): names,
    /// or `*` for every namespace. Repeatable or comma-separated. None (the default): no namespace may.
    #[arg(
        long,
        env = "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_NAMESPACES",
        value_delimiter = ','
    )]
    pub default_provider_allowed_namespaces: Vec<String>,

    /// Applications the default provider may serve, as `INSTANCE/APP` globs (`*` any run of characters, `?` one),
    /// e.g. `idaas_1/app_team-a-*` or `*/*`. Repeatable or comma-separated. None (the default): no application.
    #[arg(
        long,
        env = "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOWED_APPLICATIONS",
        value_delimiter = ',',
        value_parser = parse_application_pattern
    )]
    pub default_provider_allowed_applications: Vec<ApplicationPattern>,

    /// Let `spec.secretId` import (and so read) an existing EIAM secret through the default provider.
    #[arg(
        long,
        env = "EIAM_OPERATOR_DEFAULT_PROVIDER_ALLOW_IMPORT",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub default_provider_allow_import: bool,

    /// Let EiamProviders (namespaced) without `spec.auth.accessKey` act with the operator's own credentials
    /// (environment, RRSA, ECS RAM role). Off by default: whoever may create an EiamProvider could otherwise
    /// mint or read any application's secret the operator's identity reaches.
    #[arg(
        long,
        env = "EIAM_OPERATOR_NAMESPACED_PROVIDERS_AMBIENT_CREDENTIALS",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub namespaced_providers_ambient_credentials: bool,

    /// Log output format.
    #[arg(long, env = "EIAM_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(
        long,
        env = "EIAM_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,

    /// Serve `/metrics` over HTTPS and let only scrapers whose bearer token (TokenReview) may `get` the non-resource
    /// URL `/metrics` (SubjectAccessReview) read it. A loopback `--metrics-addr` is always plain HTTP without
    /// authentication (a sidecar, local tools); `--metrics-secure=false` on any other address is the explicit
    /// choice of plain, unauthenticated metrics for anyone who can reach the port.
    #[arg(long, env = "EIAM_OPERATOR_METRICS_SECURE", default_value_t = true, action = ArgAction::Set)]
    pub metrics_secure: bool,

    /// A directory with `tls.crt` and `tls.key` (a cert-manager Certificate's Secret, mounted) for HTTPS on
    /// `/metrics`; without it the operator makes a self-signed certificate at start.
    #[arg(long, env = "EIAM_OPERATOR_METRICS_CERT_DIR")]
    pub metrics_cert_dir: Option<std::path::PathBuf>,

    /// Address of the `/healthz` (alive) and `/readyz` (ready) probes.
    #[arg(
        long,
        env = "EIAM_OPERATOR_HEALTH_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub health_addr: SocketAddr,

    /// Elect a leader among replicas on a `coordination.k8s.io` Lease (`--leader-election-lease-name`); only the
    /// leader reconciles. `--leader-election=false` runs the controller at once (only ever run one such replica).
    #[arg(long, env = "EIAM_OPERATOR_LEADER_ELECTION", default_value_t = true, action = ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the leader Lease (default: the pod's own namespace — `POD_NAMESPACE` or the service-account
    /// mount — else `default`).
    #[arg(long, env = "EIAM_OPERATOR_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// Name of the leader Lease; replicas with the same Lease elect one leader among them.
    #[arg(long, env = "EIAM_OPERATOR_LEADER_ELECTION_LEASE_NAME", default_value = leader::LEASE_NAME)]
    pub leader_election_lease_name: String,

    /// How long the leader's Lease stays valid without renewal: a standby takes over at most this long after the
    /// leader dies. The leader renews a third of it before expiry.
    #[arg(long, env = "EIAM_OPERATOR_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_flag_duration)]
    pub leader_election_lease_duration: Duration,

    /// On SIGTERM, how long in-flight reconciles may take to finish before they are abandoned (their
    /// write-ahead status lets the next leader finish safely).
    #[arg(long, env = "EIAM_OPERATOR_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_flag_duration)]
    pub shutdown_timeout: Duration,
}

/// Errors that stop the operator process.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kubernetes client could not be configured.
    #[error("cannot configure the Kubernetes client (set KUBECONFIG or run in a pod): {0}")]
    KubeConfig(#[source] kube::Error),
    /// An HTTP endpoint could not listen.
    #[error("cannot listen on {addr} for {what}: {source}; pick a free address with --{flag}")]
    Listen {
        what: &'static str,
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// HTTPS for /metrics could not be set up.
    #[error(transparent)]
    MetricsTls(crate::metrics::secure::TlsSetupError),
    /// The SIGTERM/SIGINT handler could not be installed.
    #[error("cannot install the signal handler: {0}")]
    Signal(#[source] std::io::Error),
    /// Leader election could not start.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// Another replica took the Lease while this one led: exit so that a fresh start rejoins as a standby.
    #[error(
        "lost the leader Lease {namespace}/{name}; exiting so that a restart rejoins as a standby"
    )]
    LeadershipLost { namespace: String, name: String },
}

fn parse_flag_duration(text: &str) -> Result<Duration, String> {
    crate::api::parse_duration(text).map_err(|err| err.to_string())
}

pub use crate::reconcile::provider::{DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_MAX_QPS};

/// `--provider-status-interval`: at least a second (each interval may write every provider), at most an hour.
fn parse_provider_status_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_flag_duration(text)?;
    if (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&interval) {
        Ok(interval)
    } else {
        Err(format!("{text} is not between 1s and 1h"))
    }
}

/// `--eiam-call-timeout`: at least a second (a shorter one would fail healthy calls), at most ten minutes.
fn parse_call_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_flag_duration(text)?;
    if (Duration::from_secs(1)..=Duration::from_secs(600)).contains(&timeout) {
        Ok(timeout)
    } else {
        Err(format!("{text} is not between 1s and 10m"))
    }
}

/// The range the CRDs allow for `spec.qps`, for the flag too.
/// `--default-qps`: `auto` or a fixed ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultQps {
    /// Only `--max-qps` bounds a provider without `spec.qps`.
    Auto,
    /// This many requests per second at most.
    Ceiling(f64),
}

impl DefaultQps {
    fn ceiling(self) -> Option<f64> {
        match self {
            DefaultQps::Auto => None,
            DefaultQps::Ceiling(qps) => Some(qps),
        }
    }
}

fn parse_qps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(qps) if (0.01..=1000.0).contains(&qps) => Ok(qps),
        _ => Err(format!(
            "{text:?} is not a number of requests per second between 0.01 and 1000"
        )),
    }
}

fn parse_default_qps(text: &str) -> Result<DefaultQps, String> {
    if text.trim() == "auto" {
        return Ok(DefaultQps::Auto);
    }
    parse_qps(text)
        .map(DefaultQps::Ceiling)
        .map_err(|err| format!("{err}, or auto"))
}

fn parse_max_qps(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(qps) if (0.5..=1000.0).contains(&qps) => Ok(qps),
        _ => Err(format!(
            "{text:?} is not a number of requests per second between 0.5 and 1000"
        )),
    }
}

fn parse_signature_version(text: &str) -> Result<SignatureVersion, String> {
    match text {
        "v1" => Ok(SignatureVersion::V1),
        "v3" => Ok(SignatureVersion::V3),
        other => Err(format!("unknown signature version {other:?}: use v1 or v3")),
    }
}

impl RunArgs {
    /// The namespaces `--namespace` names (all when none).
    pub fn watch_scope(&self) -> crate::reconcile::watch::scope::WatchScope {
        crate::reconcile::watch::scope::WatchScope::new(&self.namespace)
    }

    /// The provider used by resources without `spec.providerRef`, and what ambient credentials may serve.
    pub fn tenancy_policy(&self) -> TenancyPolicy {
        TenancyPolicy {
            default_provider: DefaultProvider {
                region: self.default_region.clone(),
                endpoint: self.default_endpoint.clone(),
                signature_version: self.default_signature_version,
                allowed_namespaces: self.default_provider_allowed_namespaces.clone(),
                allowed_applications: self.default_provider_allowed_applications.clone(),
                allow_import: self.default_provider_allow_import,
            },
            namespaced_providers_ambient_credentials: self.namespaced_providers_ambient_credentials,
        }
    }
}

/// Runs the operator until SIGTERM/SIGINT (exit 0) or a lost leadership (an error).
///
/// Order of events: the metrics and health endpoints come up first, so the kubelet sees a live process; then the
/// replica competes for the Lease (standing by counts as ready); the leader runs the controller; on SIGTERM it
/// stops taking new work, lets in-flight reconciles finish for at most `--shutdown-timeout`, releases the Lease
/// and returns.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init(args.log_format);
    crate::eiam::install_crypto_provider();
    let metrics = Arc::new(Metrics::new());
    crate::eiam::observe::install(metrics.eiam.clone());
    let health = Arc::new(Health::default());
    serve(
        "health probes",
        "health-addr",
        args.health_addr,
        Listening::Plain,
        crate::health::router(health.clone()),
    )
    .await?;
    let stop = StopSignal::install().map_err(RunError::Signal)?;

    let kube_config = kube::Config::infer()
        .await
        .map_err(|err| RunError::KubeConfig(kube::Error::InferConfig(err)))?;
    let client = kube::client::ClientBuilder::try_from(kube_config.clone())
        .map_err(RunError::KubeConfig)?
        .with_layer(&metrics.kube.layer())
        .build();
    // After the client: a secure /metrics asks the API server about every scraper's token.
    let secure = args.metrics_secure && !args.metrics_addr.ip().is_loopback();
    let (listening, router) = if secure {
        let tls = crate::metrics::secure::server_config(args.metrics_cert_dir.as_deref())
            .map_err(RunError::MetricsTls)?;
        let authorizer = Arc::new(crate::metrics::secure::Authorizer::new(client.clone()));
        (
            Listening::Tls(Box::new(tls)),
            crate::metrics::http::secure_router(metrics.clone(), authorizer),
        )
    } else {
        if !args.metrics_addr.ip().is_loopback() {
            tracing::warn!(
                addr = %args.metrics_addr,
                "serving /metrics over plain HTTP without authentication (--metrics-secure=false): anyone who \
                 reaches the port reads every team's resource names and schedules"
            );
        }
        (
            Listening::Plain,
            crate::metrics::http::router(metrics.clone()),
        )
    };
    serve(
        "metrics",
        "metrics-addr",
        args.metrics_addr,
        listening,
        router,
    )
    .await?;
    tracing::info!(
        namespaces = ?args.watch_scope().namespaces(),
        version = env!("CARGO_PKG_VERSION"),
        leader_election = args.leader_election,
        "eiam-operator starting"
    );
    // Nothing is reconciled, and the replica does not even stand by, until the installed CRDs are the ones this
    // binary was built with (src/installed_crds.rs says why).
    if !crate::installed_crds::wait_until_current(&client, &metrics, &health, stop.wait()).await {
        tracing::info!("eiam-operator stopped (waiting for matching CRDs)");
        return Ok(());
    }
    if !args.leader_election {
        let controller = ControllerRun {
            client: client.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            stop: stop.clone(),
            // The only replica (see `--leader-election`): nobody else acts, so nothing to fence against.
            token: LeaderToken::unconditional(),
        };
        metrics.leader.set(1);
        controller.run(args, std::future::pending()).await;
        return Ok(());
    }

    let config = ElectionConfig {
        namespace: args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(leader::default_namespace),
        lease_name: args.leader_election_lease_name.clone(),
        identity: leader::default_identity(),
        lease_duration: args.leader_election_lease_duration,
    };
    // The election has a client of its own, whose answers to Lease writes extend the leadership token.
    let token = LeaderToken::new();
    let election_client = kube::client::ClientBuilder::try_from(kube_config)
        .map_err(RunError::KubeConfig)?
        .with_layer(&metrics.kube.layer())
        .with_layer(&leader::ConfirmedRenewals::new(&config, token.clone()))
        .build();
    let mut election = tokio::select! {
        started = Election::start(election_client, &config, token.clone()) => started?,
        () = stop.wait() => {
            tracing::info!("eiam-operator stopped (before joining the leader election)");
            return Ok(());
        }
    };
    health.set(Phase::StandingBy);
    tracing::info!(
        identity = election.identity(),
        lease = %format!("{}/{}", config.namespace, config.lease_name),
        "standing by for the leader Lease"
    );
    tokio::select! {
        acquired = election.acquired() => acquired?,
        () = stop.wait() => {
            health.set(Phase::Stopping);
            release(election).await;
            tracing::info!("eiam-operator stopped (was standing by)");
            return Ok(());
        }
    }
    tracing::info!(
        identity = election.identity(),
        token_ms = token.remaining().unwrap_or_default().as_millis() as u64,
        "leader Lease acquired: starting the controller"
    );
    let controller = ControllerRun {
        client,
        metrics: metrics.clone(),
        health: health.clone(),
        stop: stop.clone(),
        token,
    };
    metrics.leader.set(1);
    let lost = election.lost();
    let lost_leadership = Arc::new(AtomicBool::new(false));
    let noted = lost_leadership.clone();
    controller
        .run(args, async move {
            lost.await;
            noted.store(true, Ordering::Release);
        })
        .await;
    metrics.leader.set(0);
    release(election).await;
    if lost_leadership.load(Ordering::Acquire) && !stop.is_stopping() {
        return Err(RunError::LeadershipLost {
            namespace: config.namespace,
            name: config.lease_name,
        });
    }
    tracing::info!("eiam-operator stopped");
    Ok(())
}

/// How long releasing the Lease may take on the way out; past it the Lease simply expires.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

async fn release(election: Election) {
    match election.release(RELEASE_TIMEOUT).await {
        Ok(()) => tracing::info!("leader Lease released"),
        Err(err) => {
            tracing::warn!(error = %err, "cannot release the leader Lease; it expires by itself")
        }
    }
}

/// What the controller needs from the process around it.
struct ControllerRun {
    client: kube::Client,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: StopSignal,
    /// Checked before every mutation the controller sends.
    token: LeaderToken,
}

impl ControllerRun {
    /// Runs the controller until SIGTERM, then drains in-flight reconciles for at most `--shutdown-timeout`; or
    /// until `lost` resolves, which cancels them at once.
    ///
    /// Why cancel rather than drain on a lost Lease: another replica leads by then, and a reconcile that goes on
    /// would act on what it read before the takeover (the token already stops its mutations; cancelling also stops
    /// its reads and its waits for the budget). On SIGTERM the Lease is still held and renewed until it is released,
    /// after the drain: finishing what was started is then the safe thing.
    async fn run(self, args: RunArgs, lost: impl Future<Output = ()> + Send + Sync + 'static) {
        let shutdown_timeout = args.shutdown_timeout;
        let (draining_tx, mut draining) = tokio::sync::watch::channel(false);
        let stop = self.stop.clone();
        let health = self.health.clone();
        let trigger = async move {
            stop.wait().await;
            health.set(Phase::Stopping);
            tracing::info!(
                timeout_ms = shutdown_timeout.as_millis() as u64,
                "shutting down: no new reconciles, waiting for in-flight ones"
            );
            let _ = draining_tx.send(true);
        };
        self.health.set(Phase::Syncing);
        let controller = crate::reconcile::controller::run(
            self.client,
            crate::reconcile::controller::Settings {
                scope: args.watch_scope(),
                resync_interval: args.resync_interval,
                concurrency: args.concurrency,
                client_limits: crate::reconcile::provider::ClientLimits {
                    default_qps: args.default_qps.ceiling(),
                    max_qps: args.max_qps,
                    default_seats: args.provider_max_concurrent_calls,
                    max_seats: args.concurrency.max(1),
                    call_deadline: args.eiam_call_timeout,
                },
                tenancy: args.tenancy_policy(),
                provider_status_interval: args.provider_status_interval,
            },
            crate::reconcile::controller::Operations {
                metrics: self.metrics.clone(),
                health: self.health.clone(),
                shutdown: Box::pin(trigger),
                token: self.token,
            },
        );
        let deadline = async move {
            let _ = draining.wait_for(|draining| *draining).await;
            tokio::time::sleep(shutdown_timeout).await;
        };
        tokio::select! {
            () = controller => {}
            () = deadline => tracing::warn!(
                in_flight = self.metrics.reconcile.in_flight(),
                "in-flight reconciles did not finish within the shutdown timeout; abandoning them"
            ),
            () = lost => {
                self.health.set(Phase::Stopping);
                tracing::warn!(
                    in_flight = self.metrics.reconcile.in_flight(),
                    "leader Lease lost: cancelling in-flight reconciles"
                );
            }
        }
    }
}

/// SIGTERM or SIGINT, observed once and shared.
#[derive(Clone, Debug)]
struct StopSignal {
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl StopSignal {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "stop requested");
            let _ = tx.send(true);
        });
        Ok(Self { stopping })
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves once a stop was requested.
    fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut stopping = self.stopping.clone();
        async move {
            // An error means the sender is gone, which only happens after it sent.
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }
    }
}

/// Binds `addr` and serves `router` on it in the background; logs the bound address (port 0 picks a free one).
/// How an endpoint speaks: plain HTTP, or HTTPS with this configuration.
enum Listening {
    Plain,
    Tls(Box<rustls::ServerConfig>),
}

async fn serve(
    what: &'static str,
    flag: &'static str,
    addr: SocketAddr,
    listening: Listening,
    router: axum::Router,
) -> Result<SocketAddr, RunError> {
    let listen_error = |source| RunError::Listen {
        what,
        flag,
        addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    let scheme = match listening {
        Listening::Plain => "http",
        Listening::Tls(_) => "https",
    };
    tracing::info!(addr = %bound, scheme, "serving {what}");
    match listening {
        Listening::Plain => {
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(error = %err, "the {what} server stopped");
                }
            });
        }
        Listening::Tls(config) => {
            let listener = crate::metrics::secure::TlsListener::new(listener, *config)
                .map_err(listen_error)?;
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(error = %err, "the {what} server stopped");
                }
            });
        }
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn namespaces_are_repeated_or_comma_separated_and_none_means_all() {
        let flags = Flags::try_parse_from([
            "eiam-operator",
            "--namespace",
            "team-b,team-a",
            "--namespace",
            "team-c",
        ])
        .expect("valid flags");
        assert_eq!(
            flags.run.watch_scope().namespaces(),
            ["team-a", "team-b", "team-c"]
        );
        let none = Flags::try_parse_from(["eiam-operator"]).expect("valid flags");
        assert!(none.run.watch_scope().is_all());
    }
}
