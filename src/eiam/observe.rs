//! How the EIAM layer reports what it did — each call's outcome and duration, retries inside a call, credential
//! refreshes — without knowing about any metrics library.
//!
//! Like `tracing`'s global subscriber, one process-wide observer is installed at start-up (the operator installs
//! its Prometheus metrics); until then, and in tests that install none, reports go nowhere.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::error::EiamError;
use super::types::Action;

/// How one HTTP attempt against EIAM ended, as a low-cardinality label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome<'a> {
    /// EIAM answered with success.
    Ok,
    /// EIAM answered with an error document carrying this `Code` (e.g. `Throttling.User`).
    Code(&'a str),
    /// No EIAM error code: `timeout`, `transport_error`, `unexpected_status` or `decode_error`.
    Failed(&'static str),
}

impl<'a> CallOutcome<'a> {
    /// The outcome of a call's result. Errors raised before a request went out (credentials, input) are not
    /// calls and have no outcome.
    pub fn of<T>(result: &'a Result<T, EiamError>) -> Option<Self> {
        match result {
            Ok(_) => Some(CallOutcome::Ok),
            Err(EiamError::Api { body, .. }) => Some(CallOutcome::Code(&body.code)),
            Err(EiamError::Timeout { .. }) => Some(CallOutcome::Failed("timeout")),
            Err(EiamError::Transport { .. }) => Some(CallOutcome::Failed("transport_error")),
            Err(EiamError::UnexpectedStatus { .. }) => {
                Some(CallOutcome::Failed("unexpected_status"))
            }
            Err(EiamError::Decode { .. }) => Some(CallOutcome::Failed("decode_error")),
            Err(EiamError::ResponseTooLarge { .. }) => {
                Some(CallOutcome::Failed("response_too_large"))
            }
            Err(_) => None,
        }
    }

    /// The label value, from a closed set: `ok`, an EIAM code eiam-api.md documents, `other` for any other code
    /// (an endpoint can answer a fresh one on every call: as label values they would grow without bound; the code
    /// itself stays in status, events and logs), or the failure kind (lower case, so it never collides with a code).
    pub fn label(&self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Code(code) => super::error::documented_code(code).unwrap_or("other"),
            CallOutcome::Failed(kind) => kind,
        }
    }

    /// EIAM answered with a `Throttling*` code (documented or not).
    pub fn is_throttled(&self) -> bool {
        matches!(self, CallOutcome::Code(code) if code.starts_with("Throttling"))
    }
}

/// Why the client sent a call again within the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// EIAM saw the nonce before (`SignatureNonceUsed`): re-signed with a fresh one.
    SignatureNonceUsed,
    /// EIAM rejected temporary credentials: refreshed them and sent again.
    CredentialsRejected,
}

impl RetryReason {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::SignatureNonceUsed => "signature_nonce_used",
            RetryReason::CredentialsRejected => "credentials_rejected",
        }
    }
}

/// Receives the EIAM layer's reports. Implementations must be cheap: they run on every call.
pub trait EiamObserver: Send + Sync + 'static {
    /// One HTTP attempt finished.
    fn call_finished(&self, action: Action, outcome: CallOutcome<'_>, elapsed: Duration);
    /// The client is about to send the same call again.
    fn call_retried(&self, action: Action, reason: RetryReason);
    /// A provider of temporary credentials (`rrsa`, `ecs_ram_role`) fetched new ones, or failed to.
    fn credentials_refreshed(&self, provider: &'static str, ok: bool);
}

static OBSERVER: OnceLock<Arc<dyn EiamObserver>> = OnceLock::new();

/// Installs the process-wide observer. Returns `false` (and keeps the first) if one is already installed.
pub fn install(observer: Arc<dyn EiamObserver>) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// The installed observer, if any.
pub(crate) fn observer() -> Option<&'static dyn EiamObserver> {
    OBSERVER.get().map(|o| o.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eiam::error::ErrorBody;

    #[test]
    fn outcomes_label_ok_codes_and_failure_kinds() {
        let ok: Result<(), EiamError> = Ok(());
        assert_eq!(CallOutcome::of(&ok).map(|o| o.label()), Some("ok"));
        let throttled: Result<(), EiamError> = Err(EiamError::Api {
            action: Action::Create,
            status: 400,
            body: Box::new(ErrorBody {
                code: "Throttling.User".into(),
                ..ErrorBody::default()
            }),
            retry_after: None,
        });
        assert_eq!(
            CallOutcome::of(&throttled).map(|o| o.label()),
            Some("Throttling.User")
        );
        let timeout: Result<(), EiamError> = Err(EiamError::Timeout {
            action: Action::List,
            endpoint: "x".into(),
            sent: true,
        });
        assert_eq!(
            CallOutcome::of(&timeout).map(|o| o.label()),
            Some("timeout")
        );
        let fresh: Result<(), EiamError> = Err(EiamError::Api {
            action: Action::Create,
            status: 400,
            body: Box::new(ErrorBody {
                code: "Nonsense.7f3a9c".into(),
                ..ErrorBody::default()
            }),
            retry_after: None,
        });
        assert_eq!(CallOutcome::of(&fresh).map(|o| o.label()), Some("other"));
        let input: Result<(), EiamError> = Err(EiamError::InvalidInput {
            field: "instanceId",
            reason: "empty".into(),
        });
        assert_eq!(CallOutcome::of(&input), None, "nothing was sent");
    }
}
