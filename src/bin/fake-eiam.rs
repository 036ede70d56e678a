//! `fake-eiam`: the fake EIAM client-secret API as a process, for tests that run real binaries and for `make demo`.
//!
//! Prints `fake-eiam listening on http://ADDR` (`https://` with `--tls-cert`) as the first line on stdout once it accepts connections (so a
//! caller using port 0 can parse the URL), then `fake-eiam sts on ...` / `fake-eiam metadata on ...` for the
//! credential stand-ins it was asked to serve; logs calls to stderr, and stops on SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use eiam_operator::fake::{
    AccessKeyConfig, FakeConfig, FakeEiam, NeverExpiresAs, StandInSettings, TlsFiles,
};

/// A faithful stand-in for Alibaba Cloud IDaaS EIAM's client-secret API (2021-12-01), for tests.
#[derive(Debug, Parser)]
#[command(name = "fake-eiam", version)]
struct Args {
    /// JSON configuration file (see README, "The fake EIAM"); flags below add to it or override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. Default 127.0.0.1:0.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// An AccessKey pair to accept, `ID:SECRET`. Repeatable.
    #[arg(
        long = "access-key",
        value_name = "ID:SECRET",
        env = "FAKE_EIAM_ACCESS_KEYS",
        value_delimiter = ','
    )]
    access_keys: Vec<String>,
    /// An STS credential to accept, `ID:SECRET:TOKEN`; requests must carry the token. Repeatable.
    #[arg(
        long = "sts-key",
        value_name = "ID:SECRET:TOKEN",
        env = "FAKE_EIAM_STS_KEYS",
        value_delimiter = ','
    )]
    sts_keys: Vec<String>,
    /// An EIAM instance. Repeatable.
    #[arg(long = "instance", value_name = "INSTANCE_ID")]
    instances: Vec<String>,
    /// An application, `INSTANCE_ID/APPLICATION_ID[/CLIENT_ID]` (creates the instance too). Repeatable.
    #[arg(long = "application", value_name = "INSTANCE/APP[/CLIENT]")]
    applications: Vec<String>,
    /// Milliseconds added to the system clock to get server time.
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    clock_skew_ms: Option<i64>,
    /// Refuse to delete an enabled secret (disable it first).
    #[arg(long)]
    require_disable_before_delete: bool,
    /// How List/Obtain show a never-expiring secret's ExpirationTime.
    #[arg(long, value_enum, value_name = "MODE")]
    never_expires_as: Option<NeverExpiresFlag>,
    /// `HostId` in error bodies (default: the request's Host header).
    #[arg(long, value_name = "HOST")]
    host_id: Option<String>,
    /// Also serve STS AssumeRoleWithOIDC here (e.g. 127.0.0.1:0); its credentials are accepted by the fake.
    #[arg(long, value_name = "ADDR")]
    sts_listen: Option<SocketAddr>,
    /// Also serve the ECS metadata RAM-role endpoints here; their credentials are accepted by the fake.
    #[arg(long, value_name = "ADDR")]
    metadata_listen: Option<SocketAddr>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NeverExpiresFlag {
    /// Leave ExpirationTime out.
    Omit,
    /// ExpirationTime 0.
    Zero,
    /// ExpirationTime 9999-12-31T23:59:59Z.
    FarFuture,
}

fn build_config(args: &Args) -> Result<FakeConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config {}: cannot read: {e}", path.display()))?;
            serde_json::from_str::<FakeConfig>(&text)
                .map_err(|e| format!("--config {}: {e}", path.display()))?
        }
        None => FakeConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    for value in &args.access_keys {
        let key =
            AccessKeyConfig::parse_flag("--access-key", value, false).map_err(|e| e.to_string())?;
        config.access_keys.push(key);
    }
    for value in &args.sts_keys {
        let key =
            AccessKeyConfig::parse_flag("--sts-key", value, true).map_err(|e| e.to_string())?;
        config.access_keys.push(key);
    }
    for instance in &args.instances {
        config.add_instance(instance);
    }
    for app in &args.applications {
        config
            .add_application_flag(app)
            .map_err(|e| e.to_string())?;
    }
    if let Some(skew) = args.clock_skew_ms {
        config.clock_skew_ms = skew;
    }
    if args.require_disable_before_delete {
        config.require_disable_before_delete = true;
    }
    if let Some(mode) = args.never_expires_as {
        config.never_expires_as = match mode {
            NeverExpiresFlag::Omit => NeverExpiresAs::Omit,
            NeverExpiresFlag::Zero => NeverExpiresAs::Zero,
            NeverExpiresFlag::FarFuture => NeverExpiresAs::FarFuture,
        };
    }
    if args.host_id.is_some() {
        config.host_id.clone_from(&args.host_id);
    }
    if let Some(listen) = args.sts_listen {
        config
            .sts
            .get_or_insert_with(|| StandInSettings::listening_on(listen))
            .listen = listen;
    }
    if let Some(listen) = args.metadata_listen {
        config
            .metadata
            .get_or_insert_with(|| StandInSettings::listening_on(listen))
            .listen = listen;
    }
    if let (Some(cert_file), Some(key_file)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some(TlsFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    }
    Ok(config)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = match build_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("fake-eiam: {message}");
            return ExitCode::from(2);
        }
    };
    if !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "the admin API under /_fake/ is unauthenticated; prefer a loopback address");
    }
    let handle = match FakeEiam::start(config).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("fake-eiam: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("fake-eiam listening on {}", handle.url());
    if let Some(url) = handle.sts_url() {
        println!("fake-eiam sts on {url}");
    }
    if let Some(url) = handle.metadata_url() {
        println!("fake-eiam metadata on {url}");
    }
    let _ = std::io::stdout().flush();
    shutdown_signal().await;
    drop(handle);
    ExitCode::SUCCESS
}
