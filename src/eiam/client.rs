//! The typed EIAM client: one signed `POST /` per call, decoded into the wire types or a classified `EiamError`.
//!
//! The client makes ONE attempt per call, with two exceptions that are part of getting a single request through
//! rather than retry policy: a `SignatureNonceUsed` answer is re-signed once with a fresh nonce, and a rejected STS
//! token (`InvalidSecurityToken.*`, `InvalidAccessKeyId.NotFound`) from a refreshable provider is refreshed and
//! retried once. Backoff and retry decisions belong to the reconciler, which has the context to make them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, HeaderMap};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::budget::{Answer, Budget};
use super::clock::{Clock, SystemClock};
use super::credentials::CredentialProvider;
use super::endpoint::Endpoint;
use super::error::{EiamError, ErrorBody};
use super::expiration::expiration_for;
use super::limits::{self, BodyError, MAX_RESPONSE_BYTES, bounded};
use super::observe::{CallOutcome, RetryReason};
use super::request::{RequestToSign, SignatureVersion, new_nonce, sign};
use super::types::{
    API_VERSION, AckResponse, Action, CreateSecretResponse, EiamResponse, ListSecretsResponse,
    ObtainSecretResponse,
};
use call::{
    app_params, describe_json_error, extra_roots, log_attempt, rejects_temporary_credentials,
    request_id_of, retry_after, secret_params, transport_error,
};
use gate::Prepaid;
pub use gate::{Admission, CallGate, Deferral, Fence};

/// Default TCP/TLS connect timeout, as the official SDK's.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default read timeout (each read, including waiting for the response head), as the official SDK's.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

const USER_AGENT: &str = concat!("eiam-operator/", env!("CARGO_PKG_VERSION"));
/// Response header carrying the server's requested wait, in milliseconds.
pub const RETRY_AFTER_HEADER: &str = "x-acs-retry-after";
const REQUEST_ID_HEADER: &str = "x-acs-request-id";

/// How to build an [`EiamClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where EIAM is.
    pub endpoint: Endpoint,
    /// V3 (default, as the official SDK) or V1.
    pub signature_version: SignatureVersion,
    /// Where the signing key comes from.
    pub credentials: Arc<dyn CredentialProvider>,
    /// At most this many requests per second from this client (and its clones); `None` for no cap. Without
    /// `budget`, the client gets an adaptive budget of its own with this ceiling.
    pub qps: Option<f64>,
    /// The account budget this client draws from, shared with every client on the same account (see
    /// [`super::budget`]); its ceiling is this client's `qps`.
    pub budget: Option<Budget>,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// One deadline for a whole request: connect, headers and body ([`limits::DEFAULT_CALL_DEADLINE`]).
    pub call_deadline: Duration,
    /// At most this many requests of this client (and its clones) in flight at once, waits for the budget
    /// included ([`EiamClient::admit`]); `None` for no limit.
    pub seats: Option<usize>,
    /// The signing clock (tests inject a fixed or skewed one).
    pub clock: Arc<dyn Clock>,
    /// Extra CA certificates (PEM) to trust besides the system roots: a provider's `spec.caBundle`.
    pub ca_bundle: Option<Vec<u8>>,
}

impl ClientConfig {
    /// V3 signing, no QPS cap, the SDK's default timeouts, the system clock.
    pub fn new(endpoint: Endpoint, credentials: Arc<dyn CredentialProvider>) -> Self {
        Self {
            endpoint,
            signature_version: SignatureVersion::V3,
            credentials,
            qps: None,
            budget: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            call_deadline: limits::DEFAULT_CALL_DEADLINE,
            seats: None,
            clock: Arc::new(SystemClock),
            ca_bundle: None,
        }
    }
}

/// A typed client for the seven EIAM client-secret actions. Cheap to clone (one `Arc`); clones share the
/// connection pool, the QPS cap and the seats.
#[derive(Debug, Clone)]
pub struct EiamClient {
    inner: Arc<Inner>,
    gate: CallGate,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    endpoint: Endpoint,
    host_header: String,
    signature_version: SignatureVersion,
    credentials: Arc<dyn CredentialProvider>,
    limiter: Option<Budget>,
    seats: Option<Arc<tokio::sync::Semaphore>>,
    clock: Arc<dyn Clock>,
}

impl EiamClient {
    /// Builds a client. Fails on an unusable QPS or if the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Self, EiamError> {
        let limiter = match (config.budget, config.qps) {
            (Some(budget), _) => Some(budget),
            (None, None) => None,
            (None, Some(qps)) if qps.is_finite() && qps > 0.0 => Some(Budget::standalone(qps)),
            (None, Some(qps)) => {
                return Err(EiamError::InvalidInput {
                    field: "qps",
                    reason: format!("{qps} is not a positive number of requests per second"),
                });
            }
        };
        super::install_crypto_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &config.ca_bundle {
            builder = builder.tls_certs_merge(extra_roots(pem)?);
        }
        let http = builder
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.call_deadline)
            // HTTP/1.1 like the official SDK: the `host` header we sign is then exactly the one on the wire.
            .http1_only()
            // A redirect would replay a signed request (and an STS token) to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(EiamError::HttpClient)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                host_header: config.endpoint.host_header(),
                endpoint: config.endpoint,
                signature_version: config.signature_version,
                credentials: config.credentials,
                limiter,
                seats: config
                    .seats
                    .map(|seats| Arc::new(tokio::sync::Semaphore::new(seats.max(1)))),
                clock: config.clock,
            }),
            gate: CallGate::default(),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The budget its requests draw from.
    pub fn budget(&self) -> Option<&Budget> {
        self.inner.limiter.as_ref()
    }

    /// The signature algorithm in use.
    pub fn signature_version(&self) -> SignatureVersion {
        self.inner.signature_version
    }

    /// The credential provider's kind, for metrics.
    pub fn credentials_kind(&self) -> &'static str {
        self.inner.credentials.kind()
    }

    /// `CreateApplicationClientSecret`: a new secret, returned in clear. `expiration_ms` is a UNIX time in ms
    /// (1 day to 3 years ahead); `None` means it never expires.
    ///
    /// EIAM has no idempotency token: if the error [`EiamError::is_ambiguous`], List before creating again.
    pub async fn create_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        expiration_ms: Option<i64>,
    ) -> Result<CreateSecretResponse, EiamError> {
        let mut params = app_params(instance_id, application_id)?;
        if let Some(ms) = expiration_ms {
            params.insert("ExpirationTime".into(), ms.to_string());
        }
        let response: CreateSecretResponse = self.call(Action::Create, params, None).await?;
        tracing::info!(
            action = %Action::Create,
            secret_id = %response.application_client_secret.secret_id,
            request_id = %response.request_id,
            "EIAM client secret created"
        );
        Ok(response)
    }

    /// `CreateApplicationClientSecret` for a secret of `lifetime` (`None`: never expires). The ExpirationTime is
    /// computed when the request is signed — after any wait for the rate limiter, again on every re-signed attempt —
    /// with [`crate::eiam::expiration::expiration_for`], and returned with the response: it is the secret's expiry.
    ///
    /// EIAM has no idempotency token: if the error [`EiamError::is_ambiguous`], List before creating again.
    pub async fn create_secret_with_lifetime(
        &self,
        instance_id: &str,
        application_id: &str,
        lifetime: Option<Duration>,
    ) -> Result<(CreateSecretResponse, Option<Timestamp>), EiamError> {
        let params = app_params(instance_id, application_id)?;
        let (response, expiration): (CreateSecretResponse, _) = self
            .call_expiring(Action::Create, params, None, lifetime)
            .await?;
        tracing::info!(
            action = %Action::Create,
            secret_id = %response.application_client_secret.secret_id,
            request_id = %response.request_id,
            expiration_ms = expiration.map(|t| t.as_millisecond()),
            "EIAM client secret created"
        );
        Ok((response, expiration))
    }

    /// `ListApplicationClientSecrets`: every secret of the application, values masked. An answer no application
    /// can give (more than [`limits::MAX_LISTED_SECRETS`] secrets, or ids longer than [`limits::MAX_ID_CHARS`]) is
    /// refused as undecodable: what a List says travels on into status.
    pub async fn list_secrets(
        &self,
        instance_id: &str,
        application_id: &str,
    ) -> Result<ListSecretsResponse, EiamError> {
        let params = app_params(instance_id, application_id)?;
        let listed: ListSecretsResponse = self.call(Action::List, params, None).await?;
        let secrets = &listed.application_client_secrets;
        let implausible = if secrets.len() > limits::MAX_LISTED_SECRETS {
            Some(format!(
                "it lists {} secrets, more than the {} any application can hold",
                secrets.len(),
                limits::MAX_LISTED_SECRETS
            ))
        } else if secrets.iter().any(|secret| {
            secret.secret_id.len() > limits::MAX_ID_CHARS
                || secret.client_id.len() > limits::MAX_ID_CHARS
        }) {
            Some(format!(
                "it lists an id longer than {} characters",
                limits::MAX_ID_CHARS
            ))
        } else {
            None
        };
        match implausible {
            Some(reason) => Err(EiamError::Decode {
                action: Action::List,
                status: 200,
                request_id: Some(bounded(listed.request_id, limits::MAX_REQUEST_ID_CHARS)),
                reason: format!("{reason}; check the provider's endpoint"),
            }),
            None => Ok(listed),
        }
    }

    /// `ObtainApplicationClientSecret`: one secret with its value in clear.
    pub async fn obtain_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<ObtainSecretResponse, EiamError> {
        let params = secret_params(instance_id, application_id, secret_id)?;
        self.call(Action::Obtain, params, Some(secret_id)).await
    }

    /// `EnableApplicationClientSecret`.
    pub async fn enable_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<AckResponse, EiamError> {
        let params = secret_params(instance_id, application_id, secret_id)?;
        self.call(Action::Enable, params, Some(secret_id)).await
    }

    /// `DisableApplicationClientSecret`.
    pub async fn disable_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<AckResponse, EiamError> {
        let params = secret_params(instance_id, application_id, secret_id)?;
        self.call(Action::Disable, params, Some(secret_id)).await
    }

    /// `DeleteApplicationClientSecret`.
    pub async fn delete_secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<AckResponse, EiamError> {
        let params = secret_params(instance_id, application_id, secret_id)?;
        self.call(Action::Delete, params, Some(secret_id)).await
    }

    /// `UpdateApplicationClientSecretExpirationTime`: `expiration_ms` is a UNIX time in ms.
    pub async fn update_expiration_time(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        expiration_ms: i64,
    ) -> Result<AckResponse, EiamError> {
        let mut params = secret_params(instance_id, application_id, secret_id)?;
        params.insert("ExpirationTime".into(), expiration_ms.to_string());
        self.call(Action::UpdateExpirationTime, params, Some(secret_id))
            .await
    }

    /// Signs and sends one call, re-signing once on a reused nonce and refreshing credentials once when EIAM
    /// rejects a temporary token.
    async fn call<T: DeserializeOwned + EiamResponse>(
        &self,
        action: Action,
        params: BTreeMap<String, String>,
        secret_id: Option<&str>,
    ) -> Result<T, EiamError> {
        self.call_expiring(action, params, secret_id, None)
            .await
            .map(|(response, _)| response)
    }

    /// [`EiamClient::call`], stamping `ExpirationTime` for `lifetime` at each signing; returns the time it sent.
    async fn call_expiring<T: DeserializeOwned + EiamResponse>(
        &self,
        action: Action,
        mut params: BTreeMap<String, String>,
        secret_id: Option<&str>,
        lifetime: Option<Duration>,
    ) -> Result<(T, Option<Timestamp>), EiamError> {
        let inner = &*self.inner;
        let mut resigned_for_nonce = false;
        let mut refreshed_credentials = false;
        loop {
            // The budget first, then one seat per request in flight, held until its answer is read.
            let mut reserved_at = tokio::time::Instant::now();
            let _seat = match self.gate.take_prepaid() {
                Some(Prepaid {
                    at,
                    seat_patience,
                    reserved_at: prepaid_at,
                }) => {
                    reserved_at = prepaid_at;
                    if let Some(at) = at {
                        tokio::time::sleep_until(at).await;
                    }
                    if let Some(limiter) = &inner.limiter
                        && limiter.dropped_since(reserved_at)
                    {
                        reserved_at = limiter.acquire().await;
                    }
                    match &inner.seats {
                        Some(seats) => Some(
                            tokio::time::timeout(seat_patience, seats.clone().acquire_owned())
                                .await
                                .ok()
                                .and_then(Result::ok)
                                .ok_or_else(|| EiamError::Busy {
                                    action,
                                    endpoint: inner.endpoint.to_string(),
                                })?,
                        ),
                        None => None,
                    }
                }
                None => {
                    if let Some(limiter) = &inner.limiter {
                        reserved_at = limiter.acquire().await;
                    }
                    match &inner.seats {
                        Some(seats) => seats.clone().acquire_owned().await.ok(),
                        None => None,
                    }
                }
            };
            let credentials = inner
                .credentials
                .credentials()
                .await
                .map_err(|source| EiamError::Credentials { action, source })?;
            // The last moment before anything leaves (after every wait: the budget, a seat, a credentials refresh
            // from STS or the metadata service): a process that may have lost its Lease signs no mutation.
            if action.is_mutation()
                && let Some(fence) = &self.gate.fence
                && !fence()
            {
                return Err(EiamError::Fenced { action });
            }
            let expiration = lifetime.map(|lifetime| expiration_for(inner.clock.now(), lifetime));
            if let Some(expiration) = expiration {
                params.insert(
                    "ExpirationTime".into(),
                    expiration.as_millisecond().to_string(),
                );
            }
            let nonce = new_nonce();
            let signed = sign(
                inner.signature_version,
                &RequestToSign {
                    action: action.name(),
                    version: API_VERSION,
                    params: &params,
                    host: &inner.host_header,
                    timestamp: inner.clock.now(),
                    nonce: &nonce,
                },
                &credentials,
            );
            let started = Instant::now();
            // The budget judges a throttling answer by when the request's slot was planned (see `Cubic::throttled`).
            let sent_at = inner.limiter.as_ref().map(|budget| {
                budget.sent();
                reserved_at
            });
            let result = self
                .send::<T>(action, signed.query_string(), signed.headers)
                .await;
            let elapsed = started.elapsed();
            if let (Some(budget), Some(sent_at)) = (&inner.limiter, sent_at) {
                // Only answers say anything about the account's rate: a timeout or a dropped connection does not.
                let answer = match &result {
                    Err(e) if e.is_throttled() => Some(Answer::Throttled),
                    Ok(_) | Err(EiamError::Api { .. }) => Some(Answer::Accepted),
                    Err(_) => None,
                };
                if let Some(answer) = answer
                    && let Some(rate) = budget.answered(sent_at, answer)
                {
                    tracing::info!(
                        account = budget.account().label(),
                        qps = format!("{rate:.2}"),
                        "EIAM throttled this account: its budget backs off"
                    );
                }
            }
            log_attempt(action, secret_id, elapsed, &result);
            let observer = super::observe::observer();
            if let (Some(observer), Some(outcome)) = (observer, CallOutcome::of(&result)) {
                observer.call_finished(action, outcome, elapsed);
            }
            let retry = match result {
                Err(e) if e.code() == Some("SignatureNonceUsed") && !resigned_for_nonce => {
                    resigned_for_nonce = true;
                    RetryReason::SignatureNonceUsed
                }
                Err(e)
                    if rejects_temporary_credentials(&e)
                        && !refreshed_credentials
                        && inner.credentials.invalidate() =>
                {
                    refreshed_credentials = true;
                    RetryReason::CredentialsRejected
                }
                other => return other.map(|response| (response, expiration)),
            };
            if let Some(observer) = observer {
                observer.call_retried(action, retry);
            }
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        action: Action,
        query: String,
        headers: Vec<(String, String)>,
    ) -> Result<T, EiamError> {
        let inner = &*self.inner;
        let mut url = inner.endpoint.url().clone();
        url.set_query(Some(&query));
        let mut request = inner
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            // An explicit zero length, as the official SDK sends it; some gateways reject a bodiless POST without.
            .header(CONTENT_LENGTH, "0")
            .body(Vec::<u8>::new());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let transport = |e: reqwest::Error| transport_error(action, &inner.endpoint, e);
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let header_request_id = response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|id| bounded(id.to_owned(), limits::MAX_REQUEST_ID_CHARS));
        // Reading the body can only fail after the request went out.
        // Reading the body can only fail after the request went out; a hostile endpoint's endless or dripping body
        // ends at the cap or at the call deadline.
        let body = limits::read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge { limit } => EiamError::ResponseTooLarge {
                    action,
                    endpoint: inner.endpoint.to_string(),
                    limit,
                },
                BodyError::Transport(e) => {
                    let mut err = transport(e);
                    if let EiamError::Timeout { sent, .. } | EiamError::Transport { sent, .. } =
                        &mut err
                    {
                        *sent = true;
                    }
                    err
                }
            })?;
        if status.is_success() {
            return serde_json::from_slice::<T>(&body).map_err(|e| EiamError::Decode {
                action,
                status: status.as_u16(),
                request_id: request_id_of(&body)
                    .map(|id| bounded(id, limits::MAX_REQUEST_ID_CHARS))
                    .or(header_request_id),
                reason: describe_json_error(&e),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(mut error) if !error.code.is_empty() => {
                error.redact_credentials();
                error.bound();
                if error.request_id.is_empty() {
                    error.request_id = header_request_id.unwrap_or_default();
                }
                Err(EiamError::Api {
                    action,
                    status: status.as_u16(),
                    body: Box::new(error),
                    retry_after,
                })
            }
            _ => Err(EiamError::UnexpectedStatus {
                action,
                status: status.as_u16(),
                request_id: header_request_id,
                retry_after,
            }),
        }
    }
}

mod call;
mod gate;
#[cfg(test)]
mod tests;
