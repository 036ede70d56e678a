//! The fake EIAM server: state behind one lock, the `POST /` API handler, and the handle tests hold.
//!
//! One request goes: decode → envelope (scheme, action, format) → injected latency → authenticate → injected
//! fault → action → response. Every step but the sleep runs under the state lock, so calls are serialised like
//! a single consistent backend.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::actions::{self, ActionContext};
use super::auth::{self, Envelope, ReceivedRequest, Verifier};
use super::calls::{CallLog, RecordedCall};
use super::config::{AccessKeyConfig, FakeConfig};
use super::directory::{Directory, Instance, RuleViolation, StoredSecret};
use super::faults::{
    DropWhen, FaultEngine, FaultKind, FaultPlan, FaultPlanError, Injected, RuleReport,
};
use super::keyring::{AccessKeySummary, Keyring};
use super::listener::{AbortableListener, ConnectionControl, tls_acceptor};
use super::metadata::MetadataStandIn;
use super::nonces::NonceCache;
use super::stand_ins::{self, RunningStandIn};
use super::sts::StsStandIn;
use super::wire::{self, Rendered};
use crate::eiam::secret::SecretString;
use crate::eiam::types::SecretStatus;

/// Why the fake could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("fake-eiam cannot listen on {addr}: {source}; pick another address or port 0")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `tls` names files that do not make a TLS server.
    #[error("fake-eiam cannot serve HTTPS: {0}")]
    Tls(#[from] super::listener::TlsSetupError),
}

/// Everything the fake knows, guarded by one lock.
pub(crate) struct Core {
    config: FakeConfig,
    pub(crate) directory: Directory,
    pub(crate) keyring: Keyring,
    nonces: NonceCache,
    calls: CallLog,
    faults: FaultEngine,
    clock_skew_ms: i64,
}

impl Core {
    fn new(config: FakeConfig) -> Self {
        let mut directory = Directory::new(
            config.max_secrets_per_application,
            config.require_disable_before_delete,
        );
        for instance in &config.instances {
            directory.ensure_instance(&instance.id);
            for app in &instance.applications {
                let client_id = app.client_id.as_deref().unwrap_or(&app.id);
                directory.ensure_application(&instance.id, &app.id, client_id);
            }
        }
        let window_ms =
            i64::try_from(config.timestamp_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut keyring = Keyring::from_config(&config.access_keys);
        for key in super::stand_ins::issued_keys(&config) {
            keyring.insert(key);
        }
        Self {
            keyring,
            nonces: NonceCache::new(window_ms),
            calls: CallLog::default(),
            faults: FaultEngine::default(),
            clock_skew_ms: config.clock_skew_ms,
            directory,
            config,
        }
    }

    /// Server time: the system clock plus the configured skew, UNIX ms.
    pub(crate) fn now_ms(&self) -> i64 {
        jiff::Timestamp::now()
            .as_millisecond()
            .saturating_add(self.clock_skew_ms)
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.config.timestamp_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn handle(
        &mut self,
        request: &ReceivedRequest,
        envelope: &Envelope,
        monotonic_ms: u64,
    ) -> Outcome {
        let request_id = wire::new_request_id();
        let now_ms = self.now_ms();
        let host_id = self
            .config
            .host_id
            .clone()
            .or_else(|| request.headers.get("host").cloned())
            .unwrap_or_else(|| "eiam.cn-hangzhou.aliyuncs.com".to_owned());
        let mut call = RecordedCall {
            seq: self.calls.next_seq(),
            time: jiff::Timestamp::from_millisecond(now_ms)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            method: request.method.clone(),
            action: envelope.action.clone(),
            signature_version: envelope.version.as_str().to_owned(),
            access_key_id: envelope.access_key_id.clone(),
            params: envelope.params.clone(),
            outcome: String::new(),
            status: 0,
            request_id: request_id.clone(),
            fault: None,
        };

        let window_ms = self.window_ms();
        let mut verifier = Verifier {
            keyring: &self.keyring,
            nonces: &mut self.nonces,
            now_ms,
            window_ms,
        };
        let result = match verifier.authenticate(request, envelope) {
            Err(error) => Err(error),
            Ok(authenticated) => {
                call.access_key_id = Some(authenticated.access_key_id.clone());
                let fault = self.faults.decide_for(
                    authenticated.action.name(),
                    &authenticated.access_key_id,
                    monotonic_ms,
                );
                let mut ctx = ActionContext {
                    directory: &mut self.directory,
                    codes: &self.config.error_codes,
                    never_expires_as: self.config.never_expires_as,
                    now_ms,
                };
                match fault {
                    Some((kind, Injected::Error(error))) => {
                        call.fault = Some(kind_label(kind, None));
                        Err(error)
                    }
                    Some((kind, Injected::Drop(when))) => {
                        if when == DropWhen::After {
                            // Applied, but the caller never hears of it: an ambiguous outcome.
                            let applied = actions::perform(
                                &mut ctx,
                                authenticated.action,
                                &authenticated.params,
                                actions::mint_secret,
                            );
                            call.outcome = match applied {
                                Ok(_) => "ConnectionDropped(applied)".to_owned(),
                                Err(e) => format!("ConnectionDropped({})", e.code),
                            };
                        } else {
                            call.outcome = "ConnectionDropped".to_owned();
                        }
                        call.fault = Some(kind_label(kind, Some(when)));
                        self.calls.push(call);
                        return Outcome::Drop;
                    }
                    Some((kind, misbehaviour)) => {
                        // The call is not applied: a hostile endpoint's answer, not EIAM's.
                        call.outcome = "Misbehaved".to_owned();
                        call.fault = Some(kind_label(kind, None));
                        self.calls.push(call);
                        return Outcome::Misbehave(misbehaviour);
                    }
                    None => actions::perform(
                        &mut ctx,
                        authenticated.action,
                        &authenticated.params,
                        actions::mint_secret,
                    ),
                }
            }
        };
        let rendered = match result {
            Ok(fields) => {
                call.outcome = "OK".to_owned();
                let root = format!("{}Response", envelope.action);
                wire::render_success(envelope.format, &request_id, &root, fields)
            }
            Err(error) => {
                call.outcome = error.code.clone();
                wire::render_error(envelope.format, &request_id, &host_id, &error)
            }
        };
        call.status = rendered.status.as_u16();
        tracing::info!(
            seq = call.seq,
            action = %call.action,
            signature = %call.signature_version,
            outcome = %call.outcome,
            status = call.status,
            request_id = %call.request_id,
            "fake-eiam call"
        );
        self.calls.push(call);
        Outcome::Respond(rendered)
    }
}

fn kind_label(kind: FaultKind, when: Option<DropWhen>) -> String {
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match when {
        Some(DropWhen::Before) => format!("{name}(before)"),
        Some(DropWhen::After) => format!("{name}(after)"),
        None => name,
    }
}

enum Outcome {
    Respond(Rendered),
    Drop,
    /// Hang, drip or stream without end (see [`Injected`]).
    Misbehave(Injected),
}

/// State shared by the API handler, the admin endpoints and the handle.
pub(crate) struct Shared {
    core: Mutex<Core>,
    initial: FakeConfig,
    started: Instant,
}

/// A consistent view of the fake for tests: server time, applications with their secrets (values in clear),
/// AccessKeys without secrets, and the fault rules with their counters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    /// Server time, UNIX ms.
    pub server_time_ms: i64,
    /// Current clock skew, ms.
    pub clock_skew_ms: i64,
    /// Instances by id, each with applications and secrets.
    pub instances: BTreeMap<String, Instance>,
    /// Known AccessKeys (ids only).
    pub access_keys: Vec<AccessKeySummary>,
    /// Active fault rules.
    pub faults: Vec<RuleReport>,
}

/// A secret to create behind the operator's back (`POST /_fake/secrets`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectedSecret {
    /// Instance id.
    pub instance_id: String,
    /// Application id.
    pub application_id: String,
    /// Secret id; default: a fresh `sci_...`.
    #[serde(default)]
    pub secret_id: Option<String>,
    /// Value; default: a fresh random value.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// `enabled` (default) or `disabled`.
    #[serde(default)]
    pub status: Option<SecretStatus>,
    /// UNIX ms, any value (no bounds check, so tests can make nearly expired secrets); default never.
    #[serde(default)]
    pub expiration_time: Option<i64>,
    /// UNIX ms.
    #[serde(default)]
    pub last_used_time: Option<i64>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn calls(&self, action: Option<&str>) -> Vec<RecordedCall> {
        self.lock().calls.list(action)
    }

    pub(crate) fn state(&self) -> StateSnapshot {
        let core = self.lock();
        StateSnapshot {
            server_time_ms: core.now_ms(),
            clock_skew_ms: core.clock_skew_ms,
            instances: core.directory.instances.clone(),
            access_keys: core.keyring.summaries(),
            faults: core.faults.report(),
        }
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) -> Result<Vec<RuleReport>, FaultPlanError> {
        let mut core = self.lock();
        core.faults.set(plan)?;
        Ok(core.faults.report())
    }

    pub(crate) fn reset(&self) {
        *self.lock() = Core::new(self.initial.clone());
    }

    pub(crate) fn set_clock_skew_ms(&self, skew_ms: i64) {
        self.lock().clock_skew_ms = skew_ms;
    }

    pub(crate) fn insert_secret(
        &self,
        secret: InjectedSecret,
    ) -> Result<StoredSecret, RuleViolation> {
        let mut core = self.lock();
        let now_ms = core.now_ms();
        let minted = actions::mint_secret();
        let stored = StoredSecret {
            secret_id: secret.secret_id.unwrap_or(minted.secret_id),
            client_secret: secret.client_secret.unwrap_or(minted.client_secret),
            status: secret.status.unwrap_or(SecretStatus::Enabled),
            expiration_time: secret.expiration_time,
            last_used_time: secret.last_used_time,
            create_time: now_ms,
            created_by: "admin",
        };
        core.directory.insert_secret_unchecked(
            &secret.instance_id,
            &secret.application_id,
            stored.clone(),
        )?;
        Ok(stored)
    }

    pub(crate) fn add_access_key(&self, key: AccessKeyConfig) {
        self.lock().keyring.insert(key);
    }
}

/// Starts fake EIAM servers.
pub struct FakeEiam;

impl FakeEiam {
    /// Binds `config.listen` and serves until the returned handle is dropped.
    pub async fn start(config: FakeConfig) -> Result<FakeHandle, StartError> {
        Self::start_with(config, Router::new()).await
    }

    /// Like [`FakeEiam::start`], with extra routes merged in (for example stand-ins for STS or ECS metadata).
    pub async fn start_with(config: FakeConfig, extra: Router) -> Result<FakeHandle, StartError> {
        let addr = config.listen;
        let acceptor = match &config.tls {
            Some(files) => Some(tls_acceptor(&files.cert_file, &files.key_file)?),
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let listener = match acceptor {
            Some(acceptor) => AbortableListener::with_tls(listener, acceptor),
            None => AbortableListener::new(listener),
        }
        .map_err(|source| StartError::Bind { addr, source })?;
        let local = axum::serve::Listener::local_addr(&listener)
            .map_err(|source| StartError::Bind { addr, source })?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(Core::new(config.clone())),
            initial: config,
            started: Instant::now(),
        });
        let router = Router::new()
            .route("/", get(api).post(api))
            .nest("/_fake", super::admin::router())
            .with_state(shared.clone())
            .merge(extra);
        let sts = match &shared.initial.sts {
            Some(settings) => Some(stand_ins::start_sts(settings).await?),
            None => None,
        };
        let metadata = match &shared.initial.metadata {
            Some(settings) => Some(stand_ins::start_metadata(settings).await?),
            None => None,
        };
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<ConnectionControl>();
            let server = axum::serve(listener, service).with_graceful_shutdown(async {
                let _ = signal.await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "fake-eiam server stopped");
            }
        });
        Ok(FakeHandle {
            addr: local,
            scheme,
            shared,
            shutdown: Some(shutdown),
            task,
            sts,
            metadata,
        })
    }
}

/// A running fake EIAM (and its credential stand-ins, if configured). Dropping it stops them all.
pub struct FakeHandle {
    addr: SocketAddr,
    /// `http`, or `https` when serving with a certificate.
    scheme: &'static str,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    sts: Option<RunningStandIn<StsStandIn>>,
    metadata: Option<RunningStandIn<MetadataStandIn>>,
}

impl std::fmt::Debug for FakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeHandle {
    /// The API endpoint, e.g. `http://127.0.0.1:34567` (`https://` when serving with a certificate).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The STS `AssumeRoleWithOIDC` endpoint, when `sts` is configured.
    pub fn sts_url(&self) -> Option<String> {
        self.sts.as_ref().map(RunningStandIn::url)
    }

    /// The STS stand-in (its calls, injected failures), when configured.
    pub fn sts(&self) -> Option<&StsStandIn> {
        self.sts.as_ref().map(|s| &s.stand_in)
    }

    /// The ECS metadata endpoint, when `metadata` is configured.
    pub fn metadata_url(&self) -> Option<String> {
        self.metadata.as_ref().map(RunningStandIn::url)
    }

    /// The ECS metadata stand-in, when configured.
    pub fn metadata(&self) -> Option<&MetadataStandIn> {
        self.metadata.as_ref().map(|s| &s.stand_in)
    }

    /// Every recorded API call, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.calls(None)
    }

    /// The recorded calls of one action.
    pub fn calls_of(&self, action: &str) -> Vec<RecordedCall> {
        self.shared.calls(Some(action))
    }

    /// Applications, secrets, keys and faults as they are now.
    pub fn state(&self) -> StateSnapshot {
        self.shared.state()
    }

    /// Replaces the fault plan; an empty plan turns faults off.
    pub fn set_faults(&self, plan: FaultPlan) -> Result<Vec<RuleReport>, FaultPlanError> {
        self.shared.set_faults(plan)
    }

    /// Back to the configuration the fake started with: no secrets, no calls, no faults, no nonces.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Moves the server clock: server time = system time + `skew_ms`.
    pub fn set_clock_skew_ms(&self, skew_ms: i64) {
        self.shared.set_clock_skew_ms(skew_ms);
    }

    /// Creates a secret behind the operator's back (as the console would), within the per-application quota.
    pub fn insert_secret(&self, secret: InjectedSecret) -> Result<StoredSecret, RuleViolation> {
        self.shared.insert_secret(secret)
    }

    /// Deletes a secret behind the operator's back (no Disable-first rule).
    pub fn delete_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<(), RuleViolation> {
        self.shared
            .lock()
            .directory
            .delete_secret_unchecked(instance_id, application_id, secret_id)
            .map(|_| ())
    }

    /// Enables or disables a secret behind the operator's back.
    pub fn set_secret_status(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        status: SecretStatus,
    ) -> Result<(), RuleViolation> {
        self.shared
            .lock()
            .directory
            .set_status(instance_id, application_id, secret_id, status)
    }

    /// Adds an application (and its instance) if missing.
    pub fn add_application(
        &self,
        instance_id: &str,
        application_id: &str,
        client_id: Option<&str>,
    ) {
        self.shared.lock().directory.ensure_application(
            instance_id,
            application_id,
            client_id.unwrap_or(application_id),
        );
    }

    /// Adds or replaces an AccessKey (for example freshly minted STS credentials).
    pub fn add_access_key(&self, key: AccessKeyConfig) {
        self.shared.add_access_key(key);
    }

    /// Removes an AccessKey; returns whether it existed.
    pub fn remove_access_key(&self, id: &str) -> bool {
        self.shared.lock().keyring.remove(id)
    }
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // Connections still open (a client holding keep-alive) must not keep the server alive after the test.
        self.task.abort();
    }
}

/// `POST /` (and `GET /`): one EIAM API call.
async fn api(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<ConnectionControl>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = decode_request(&method, &uri, &headers, &body);
    let envelope = auth::envelope(&request);
    let latency_ms = shared.lock().faults.latency_ms(&envelope.action);
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    let monotonic_ms = shared.monotonic_ms();
    let outcome = shared.lock().handle(&request, &envelope, monotonic_ms);
    match outcome {
        Outcome::Respond(rendered) => rendered.into_response(),
        Outcome::Drop => {
            connection.abort();
            // Never written: the aborted connection fails the write and hyper closes the socket.
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Outcome::Misbehave(misbehaviour) => misbehave(misbehaviour).await,
    }
}

/// A hostile endpoint's answer: none at all, a body dripping a byte at a time, or a body without end. Each ends
/// only when the client gives up (and closes the connection, which drops this future or its stream).
async fn misbehave(misbehaviour: Injected) -> Response {
    use futures::StreamExt;
    let streaming = |body: axum::body::Body| {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    match misbehaviour {
        Injected::Drip { interval_ms } => {
            let interval = Duration::from_millis(interval_ms);
            let drip = futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(interval).await;
                Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b" ")),
                    (),
                ))
            });
            streaming(axum::body::Body::from_stream(drip))
        }
        Injected::EndlessBody => {
            static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];
            let endless = futures::stream::repeat_with(|| {
                Ok::<_, std::convert::Infallible>(Bytes::from_static(&CHUNK))
            })
            // Yield between chunks so one endless body cannot monopolise a runtime thread.
            .then(|chunk| async move {
                tokio::task::yield_now().await;
                chunk
            });
            streaming(axum::body::Body::from_stream(endless))
        }
        // Hang, and anything else that reaches here: never answer.
        _ => std::future::pending().await,
    }
}

fn decode_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ReceivedRequest {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let is_form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        BTreeMap::new()
    };
    let mut header_map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    ReceivedRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query,
        form,
        headers: header_map,
        body: body.to_vec(),
    }
}
