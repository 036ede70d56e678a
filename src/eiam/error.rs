//! EIAM's error body and the client's error type.
//!
//! `ErrorBody` is the JSON Alibaba Cloud returns with every 4xx/5xx; the fake EIAM serialises this exact type, so
//! both sides agree on the shape. `EiamError` classifies failures by `Code` (never by HTTP status, which differs
//! between Alibaba's own pages) into retryable or not, and marks the ones that may have taken effect anyway.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::credentials::CredentialError;
use super::endpoint::EndpointError;
use super::types::Action;

/// The error body of an Alibaba Cloud OpenAPI response (eiam-api.md section 3).
///
/// Serialises with PascalCase keys; deserialisation also accepts the camelCase keys some gateways send (the
/// official SDK reads both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// Machine-readable error code, e.g. `Throttling.User`. Branch on this, not on the HTTP status.
    #[serde(default, alias = "code")]
    pub code: String,
    /// Human-readable explanation.
    #[serde(default, alias = "message")]
    pub message: String,
    /// The request id to quote to Alibaba Cloud support.
    #[serde(default, alias = "requestId")]
    pub request_id: String,
    /// The host that answered, e.g. `eiam.cn-hangzhou.aliyuncs.com`.
    #[serde(default, alias = "hostId", skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// A troubleshooting URL.
    #[serde(default, alias = "recommend", skip_serializing_if = "Option::is_none")]
    pub recommend: Option<String>,
    /// RAM denial details (`AuthAction`, `EncodedDiagnosticMessage`, ...), present on permission errors.
    #[serde(
        default,
        alias = "accessDeniedDetail",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_denied_detail: Option<serde_json::Value>,
}

impl ErrorBody {
    /// Removes what must never reach a log, event or status from `message`. A V1 `SignatureDoesNotMatch` quotes
    /// the server's string to sign, which holds the query, including an STS `SecurityToken`; the quote is cut.
    pub fn redact_credentials(&mut self) {
        let lower = self.message.to_ascii_lowercase();
        if let Some(at) = lower.find("string to sign") {
            self.message.truncate(at);
            self.message = self.message.trim_end().to_owned();
            self.message
                .push_str(" [string to sign withheld: it carries request credentials]");
        }
        if let Some(at) = self.message.find("SecurityToken") {
            self.message.truncate(at);
            self.message.push_str("[withheld]");
        }
    }

    /// Cuts `Code`, `Message` and `RequestId` to the sizes of [`super::limits`]: they travel on into status, events
    /// and logs, and a hostile endpoint may send a megabyte of each.
    pub fn bound(&mut self) {
        use super::limits::{MAX_CODE_CHARS, MAX_MESSAGE_CHARS, MAX_REQUEST_ID_CHARS, bounded};
        self.code = bounded(std::mem::take(&mut self.code), MAX_CODE_CHARS);
        self.message = bounded(std::mem::take(&mut self.message), MAX_MESSAGE_CHARS);
        self.request_id = bounded(std::mem::take(&mut self.request_id), MAX_REQUEST_ID_CHARS);
        self.host_id = self
            .host_id
            .take()
            .map(|h| bounded(h, MAX_REQUEST_ID_CHARS));
        self.recommend = self.recommend.take().map(|r| bounded(r, MAX_MESSAGE_CHARS));
        // Free-form JSON of any size and depth: kept only when small.
        if self
            .access_denied_detail
            .as_ref()
            .is_some_and(|detail| detail.to_string().len() > MAX_MESSAGE_CHARS)
        {
            self.access_denied_detail = None;
        }
    }
}

/// A failed EIAM call.
#[derive(Debug, thiserror::Error)]
pub enum EiamError {
    /// EIAM answered with an error document.
    #[error(
        "EIAM {action} failed: {code}: {message} (RequestId: {request_id}, HTTP {status}){hint}",
        code = .body.code, message = .body.message, request_id = .body.request_id, hint = hint(*.action, &.body.code)
    )]
    Api {
        /// The action called.
        action: Action,
        /// HTTP status (informational: branch on `body.code`).
        status: u16,
        /// The decoded error document (boxed: it is large and errors travel through `Result`s).
        body: Box<ErrorBody>,
        /// The `x-acs-retry-after` header, if EIAM sent one.
        retry_after: Option<Duration>,
    },
    /// A non-success status without an Alibaba error document (e.g. a proxy's HTML page).
    #[error("EIAM {action} answered HTTP {status} without an error document (RequestId: {}); check the endpoint and any proxy in between",
        .request_id.as_deref().unwrap_or("unknown"))]
    UnexpectedStatus {
        /// The action called.
        action: Action,
        /// HTTP status.
        status: u16,
        /// The `x-acs-request-id` header, if any.
        request_id: Option<String>,
        /// The `x-acs-retry-after` header, if any.
        retry_after: Option<Duration>,
    },
    /// No answer within the connect or read timeout.
    #[error("EIAM {action} to {endpoint} timed out{} (limits: connect and each read, and the whole call within \
        --eiam-call-timeout); EIAM may be slow or unreachable, try again",
        if *.sent { " waiting for the response (the request may have taken effect)" } else { " connecting" })]
    Timeout {
        /// The action called.
        action: Action,
        /// The endpoint.
        endpoint: String,
        /// Whether the request may have reached EIAM (false: the connection never opened).
        sent: bool,
    },
    /// The connection failed or broke.
    #[error("EIAM {action}: cannot talk to {endpoint}: {source}{}{}; {}",
        transport_causes(.source),
        if *.sent { " (the request may have taken effect)" } else { "" },
        transport_next_step(.source))]
    Transport {
        /// The action called.
        action: Action,
        /// The endpoint.
        endpoint: String,
        /// Whether the request may have reached EIAM (false: the connection never opened).
        sent: bool,
        /// The transport error, stripped of the URL (its query may hold a security token).
        #[source]
        source: reqwest::Error,
    },
    /// The answer's body exceeded [`super::limits::MAX_RESPONSE_BYTES`]: not an EIAM answer.
    #[error(
        "EIAM {action}: {endpoint} answered with a body over {limit} bytes (EIAM answers are a few KiB), read \
        no further (the request may have taken effect); check the provider's endpoint"
    )]
    ResponseTooLarge {
        /// The action called.
        action: Action,
        /// The endpoint.
        endpoint: String,
        /// The cap.
        limit: usize,
    },
    /// Every concurrent call of this client's provider stayed taken while the request waited for one; nothing was
    /// sent (the caller should come back later rather than wait).
    #[error("EIAM {action} to {endpoint} not sent: every concurrent call of its provider is taken")]
    Busy {
        /// The action not sent.
        action: Action,
        /// The endpoint.
        endpoint: String,
    },
    /// The call's fence refused it (this process may no longer hold the leader Lease); nothing was sent.
    #[error("EIAM {action} not sent: this process may no longer be the leader")]
    Fenced {
        /// The action not sent.
        action: Action,
    },
    /// A success response that does not decode.
    #[error("EIAM {action} answered HTTP {status} with a response that does not decode (RequestId: {}): {reason}",
        .request_id.as_deref().unwrap_or("unknown"))]
    Decode {
        /// The action called.
        action: Action,
        /// HTTP status.
        status: u16,
        /// The request id, if it could be read.
        request_id: Option<String>,
        /// The decoder's complaint (never the body: it may hold a secret).
        reason: String,
    },
    /// Credentials could not be obtained.
    #[error("EIAM {action}: no usable credentials: {source}")]
    Credentials {
        /// The action called.
        action: Action,
        /// Why.
        #[source]
        source: CredentialError,
    },
    /// The endpoint is not usable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A caller-supplied value is unusable; nothing was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, e.g. `instanceId`.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client for EIAM: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// The error codes eiam-api.md documents (the gateway's common codes and the EIAM codes the fake uses): the only
/// codes that become metric label values (see [`super::observe::CallOutcome::label`]).
const DOCUMENTED_CODES: [&str; 28] = [
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "InvalidSecurityToken.Expired",
    "InvalidSecurityToken.MismatchWithAccessKey",
    "InvalidSecurityToken.Malformed",
    "InvalidTimeStamp.Format",
    "InvalidTimeStamp.Expired",
    "SignatureNonceUsed",
    "MissingInstanceId",
    "MissingApplicationId",
    "MissingSecretId",
    "InvalidParameter",
    "InvalidApi.NotFound",
    "InvalidAction.NotFound",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "Forbidden.RAM",
    "NoPermission",
    "InternalError",
    "ServiceUnavailable",
    "EntityNotExists.Instance",
    "EntityNotExists.Application",
    "EntityNotExists.ApplicationClientSecret",
    "QuotaExceeded.ApplicationClientSecret",
    "InvalidParameter.ExpirationTime",
];

/// `code` as a `'static` label if eiam-api.md documents it.
pub fn documented_code(code: &str) -> Option<&'static str> {
    DOCUMENTED_CODES
        .iter()
        .copied()
        .find(|known| *known == code)
}

/// A next step for the operator's user, by code.
fn hint(action: Action, code: &str) -> String {
    let text = match code {
        "SignatureDoesNotMatch" | "IncompleteSignature" => "check the AccessKey secret".to_owned(),
        c if c.starts_with("InvalidAccessKeyId") => {
            "check the AccessKey ID and that it is enabled".to_owned()
        }
        c if c.starts_with("InvalidSecurityToken") => {
            "the STS token is invalid or expired: refresh the credentials".to_owned()
        }
        c if c.starts_with("InvalidTimeStamp") => "check the system clock (NTP)".to_owned(),
        "Forbidden.RAM" | "NoPermission" => {
            format!("grant the RAM action eiam:{} to the caller", action.name())
        }
        c if c.starts_with("Throttling") => {
            "EIAM is throttling: retry later or lower the QPS".to_owned()
        }
        c if c.starts_with("QuotaExceeded") || c.starts_with("ExceedLimit") => {
            "the application already has two client secrets: delete one first".to_owned()
        }
        _ => return String::new(),
    };
    format!("; {text}")
}

impl EiamError {
    /// EIAM's error `Code`, if EIAM answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            EiamError::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    /// EIAM's error `Message`, if EIAM answered with one.
    pub fn message(&self) -> Option<&str> {
        match self {
            EiamError::Api { body, .. } => Some(&body.message),
            _ => None,
        }
    }

    /// EIAM's `RequestId`, if the failure got that far.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            EiamError::Api { body, .. } => Some(&body.request_id)
                .filter(|r| !r.is_empty())
                .map(String::as_str),
            EiamError::UnexpectedStatus { request_id, .. }
            | EiamError::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, if a response arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            EiamError::Api { status, .. }
            | EiamError::UnexpectedStatus { status, .. }
            | EiamError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long EIAM asked us to wait (`x-acs-retry-after`, in ms on the wire).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            EiamError::Api { retry_after, .. }
            | EiamError::UnexpectedStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the same call may succeed later: throttling, server errors, timeouts, connection errors, a reused
    /// nonce (re-signed with a fresh one), and credential fetches that failed for network reasons.
    pub fn is_retryable(&self) -> bool {
        match self {
            EiamError::Api { status, body, .. } => {
                let code = body.code.as_str();
                code.starts_with("Throttling")
                    || code.starts_with("InternalError")
                    || code.starts_with("ServiceUnavailable")
                    || code == "SignatureNonceUsed"
                    || *status >= 500
            }
            EiamError::UnexpectedStatus { status, .. } => *status >= 500 || *status == 429,
            EiamError::Timeout { .. }
            | EiamError::Transport { .. }
            | EiamError::ResponseTooLarge { .. }
            | EiamError::Busy { .. } => true,
            EiamError::Credentials { source, .. } => source.is_retryable(),
            EiamError::Fenced { .. } => false,
            EiamError::Decode { .. }
            | EiamError::Endpoint(_)
            | EiamError::InvalidInput { .. }
            | EiamError::HttpClient(_) => false,
        }
    }

    /// Whether a mutating call (Create above all) may have taken effect although it failed: a timeout or broken
    /// connection after the request was sent, a server error, or an undecodable success. EIAM has no idempotency
    /// token, so after an ambiguous Create the caller must List before creating again.
    pub fn is_ambiguous(&self) -> bool {
        let action = match self {
            EiamError::Api { action, .. }
            | EiamError::UnexpectedStatus { action, .. }
            | EiamError::Timeout { action, .. }
            | EiamError::Transport { action, .. }
            | EiamError::ResponseTooLarge { action, .. }
            | EiamError::Decode { action, .. } => *action,
            _ => return false,
        };
        if !action.is_mutation() {
            return false;
        }
        match self {
            EiamError::Api { status, body, .. } => {
                *status >= 500
                    || body.code.starts_with("InternalError")
                    || body.code.starts_with("ServiceUnavailable")
            }
            EiamError::UnexpectedStatus { status, .. } => *status >= 500,
            EiamError::Timeout { sent, .. } | EiamError::Transport { sent, .. } => *sent,
            EiamError::Decode { .. } | EiamError::ResponseTooLarge { .. } => true,
            _ => false,
        }
    }

    /// EIAM says the instance, application or secret does not exist (`EntityNotExist*`).
    pub fn is_not_found(&self) -> bool {
        self.code().is_some_and(|c| c.starts_with("EntityNotExist"))
    }

    /// EIAM says the client secret named in the request does not exist (`EntityNotExist*` for a secret entity,
    /// `EntityNotExists.ApplicationClientSecret` in eiam-api.md), as opposed to its instance or application: only
    /// that makes a Disable or Delete of it as good as done.
    pub fn is_secret_not_found(&self) -> bool {
        self.code().is_some_and(|c| {
            c.starts_with("EntityNotExist")
                && c.split_once('.')
                    .is_some_and(|(_, entity)| entity.ends_with("Secret"))
        })
    }

    /// EIAM says the application already has its two secrets (`QuotaExceeded*` / `ExceedLimit*`).
    pub fn is_quota_exceeded(&self) -> bool {
        self.code()
            .is_some_and(|c| c.starts_with("QuotaExceeded") || c.starts_with("ExceedLimit"))
    }

    /// EIAM rejected a parameter value (`InvalidParameter*`).
    pub fn is_invalid_parameter(&self) -> bool {
        self.code()
            .is_some_and(|c| c.starts_with("InvalidParameter"))
    }

    /// EIAM is throttling (`Throttling*`).
    pub fn is_throttled(&self) -> bool {
        self.code().is_some_and(|c| c.starts_with("Throttling"))
    }

    /// A short CamelCase label for metrics and Kubernetes event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            EiamError::Api { body, status, .. } => {
                let c = body.code.as_str();
                if c.starts_with("Throttling") {
                    "Throttled"
                } else if c.starts_with("EntityNotExist") {
                    "NotFound"
                } else if c.starts_with("QuotaExceeded") || c.starts_with("ExceedLimit") {
                    "QuotaExceeded"
                } else if c.starts_with("InvalidParameter") {
                    "InvalidParameter"
                } else if c == "SignatureDoesNotMatch"
                    || c == "IncompleteSignature"
                    || c.starts_with("InvalidAccessKeyId")
                    || c.starts_with("InvalidSecurityToken")
                {
                    "AuthenticationFailed"
                } else if c == "Forbidden.RAM" || c == "NoPermission" {
                    "PermissionDenied"
                } else if c.starts_with("InvalidTimeStamp") {
                    "ClockSkew"
                } else if *status >= 500
                    || c.starts_with("InternalError")
                    || c.starts_with("ServiceUnavailable")
                {
                    "ServerError"
                } else {
                    "ApiError"
                }
            }
            EiamError::UnexpectedStatus { .. } => "UnexpectedStatus",
            EiamError::Timeout { .. } => "Timeout",
            EiamError::Transport { .. } => "Transport",
            EiamError::Decode { .. } => "DecodeError",
            EiamError::ResponseTooLarge { .. } => "ResponseTooLarge",
            EiamError::Fenced { .. } => "Fenced",
            EiamError::Busy { .. } => "Busy",
            EiamError::Credentials { .. } => "CredentialsUnavailable",
            EiamError::Endpoint(_) => "InvalidEndpoint",
            EiamError::InvalidInput { .. } => "InvalidInput",
            EiamError::HttpClient(_) => "HttpClient",
        }
    }
}

/// The causes under a transport error: reqwest's own message ("error sending request") says nothing of DNS,
/// refused connections or certificates.
fn transport_causes(error: &reqwest::Error) -> String {
    let mut causes = String::new();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        causes.push_str(": ");
        causes.push_str(&inner.to_string());
        cause = inner.source();
    }
    causes
}

/// What to do about a transport error: an untrusted certificate needs a CA, anything else network access.
fn transport_next_step(error: &reqwest::Error) -> &'static str {
    if transport_causes(error).contains("certificate") {
        "the endpoint's certificate is not trusted: if a private CA or a TLS-inspecting proxy signs it, give that \
         CA in the provider's spec.caBundle"
    } else {
        "check network access to the endpoint"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(action: Action, status: u16, code: &str) -> EiamError {
        EiamError::Api {
            action,
            status,
            body: Box::new(ErrorBody {
                code: code.into(),
                message: "msg".into(),
                request_id: "RID-1".into(),
                ..Default::default()
            }),
            retry_after: None,
        }
    }

    #[test]
    fn display_names_code_message_and_request_id() {
        let e = api(Action::Create, 400, "QuotaExceeded.ApplicationClientSecret");
        let text = e.to_string();
        assert!(text.contains("CreateApplicationClientSecret"), "{text}");
        assert!(
            text.contains("QuotaExceeded.ApplicationClientSecret: msg"),
            "{text}"
        );
        assert!(text.contains("RequestId: RID-1"), "{text}");
        assert!(text.contains("delete one first"), "{text}");
        let text = api(Action::List, 403, "NoPermission").to_string();
        assert!(text.contains("eiam:ListApplicationClientSecrets"), "{text}");
    }

    #[test]
    fn classification_branches_on_code_not_status() {
        // Throttling comes as HTTP 400 and must be retryable.
        for code in [
            "Throttling",
            "Throttling.User",
            "Throttling.Api",
            "SignatureNonceUsed",
            "InternalError",
            "ServiceUnavailable",
        ] {
            assert!(api(Action::List, 400, code).is_retryable(), "{code}");
        }
        // Any 5xx is retryable, whatever the code.
        assert!(api(Action::List, 503, "Whatever").is_retryable());
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId.NotFound",
            "InvalidTimeStamp.Expired",
            "Forbidden.RAM",
            "NoPermission",
            "EntityNotExists.Application",
            "QuotaExceeded.ApplicationClientSecret",
            "InvalidParameter.ExpirationTime",
            "SomethingNew",
        ] {
            assert!(!api(Action::List, 400, code).is_retryable(), "{code}");
            assert!(!api(Action::List, 404, code).is_retryable(), "{code}");
        }
        assert!(
            api(
                Action::Obtain,
                404,
                "EntityNotExists.ApplicationClientSecret"
            )
            .is_not_found()
        );
        // A Disable or Delete counts as done only when the secret itself is missing, not its application.
        for (code, secret) in [
            ("EntityNotExists.ApplicationClientSecret", true),
            ("EntityNotExist.Secret", true),
            ("EntityNotExists.Application", false),
            ("EntityNotExists.Instance", false),
            ("EntityNotExists", false),
            ("InvalidParameter.Secret", false),
        ] {
            assert_eq!(
                api(Action::Disable, 404, code).is_secret_not_found(),
                secret,
                "{code}"
            );
        }
        assert!(
            api(Action::Create, 400, "QuotaExceeded.ApplicationClientSecret").is_quota_exceeded()
        );
        assert!(api(Action::Create, 400, "ExceedLimit.Secret").is_quota_exceeded());
        assert!(api(Action::Create, 400, "InvalidParameter.ExpirationTime").is_invalid_parameter());
        assert!(api(Action::Create, 400, "Throttling.User").is_throttled());
        assert_eq!(
            api(Action::Create, 400, "Throttling.User").reason(),
            "Throttled"
        );
        assert_eq!(
            api(Action::Create, 403, "NoPermission").reason(),
            "PermissionDenied"
        );
        assert_eq!(
            api(Action::Create, 400, "SignatureDoesNotMatch").reason(),
            "AuthenticationFailed"
        );
    }

    #[test]
    fn server_errors_make_mutations_ambiguous_but_not_reads() {
        assert!(api(Action::Create, 500, "InternalError").is_ambiguous());
        assert!(api(Action::Create, 400, "ServiceUnavailable").is_ambiguous());
        assert!(!api(Action::List, 500, "InternalError").is_ambiguous());
        // A rejected request is not ambiguous: EIAM refused before doing anything.
        assert!(!api(Action::Create, 400, "Throttling.User").is_ambiguous());
        assert!(!api(Action::Create, 400, "QuotaExceeded.ApplicationClientSecret").is_ambiguous());
        let sent = EiamError::Timeout {
            action: Action::Create,
            endpoint: "e".into(),
            sent: true,
        };
        assert!(sent.is_ambiguous() && sent.is_retryable());
        let unsent = EiamError::Timeout {
            action: Action::Create,
            endpoint: "e".into(),
            sent: false,
        };
        assert!(!unsent.is_ambiguous() && unsent.is_retryable());
        let decode = EiamError::Decode {
            action: Action::Create,
            status: 200,
            request_id: None,
            reason: "x".into(),
        };
        assert!(decode.is_ambiguous() && !decode.is_retryable());
    }

    #[test]
    fn accessors_expose_code_request_id_and_retry_after() {
        let e = EiamError::Api {
            action: Action::List,
            status: 400,
            body: Box::new(ErrorBody {
                code: "Throttling.User".into(),
                request_id: "R".into(),
                ..Default::default()
            }),
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(e.code(), Some("Throttling.User"));
        assert_eq!(e.request_id(), Some("R"));
        assert_eq!(e.http_status(), Some(400));
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn error_body_decodes_pascal_case() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"RequestId":"6BE5","HostId":"eiam.cn-hangzhou.aliyuncs.com","Code":"Throttling.User",
                "Message":"Request was denied due to user flow control.","Recommend":"https://x",
                "AccessDeniedDetail":{"AuthAction":"eiam:ListApplicationClientSecrets"}}"#,
        )
        .unwrap();
        assert_eq!(body.code, "Throttling.User");
        assert_eq!(body.request_id, "6BE5");
        assert_eq!(
            body.host_id.as_deref(),
            Some("eiam.cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(body.recommend.as_deref(), Some("https://x"));
        assert_eq!(
            body.access_denied_detail.unwrap()["AuthAction"],
            "eiam:ListApplicationClientSecrets"
        );
    }

    #[test]
    fn error_body_decodes_camel_case() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"requestId":"r1","code":"NoPermission","message":"denied","accessDeniedDetail":{"AuthAction":"a"}}"#,
        )
        .unwrap();
        assert_eq!(body.code, "NoPermission");
        assert_eq!(body.message, "denied");
        assert_eq!(body.request_id, "r1");
        assert!(body.access_denied_detail.is_some());
    }

    #[test]
    fn error_body_serialises_pascal_case_and_omits_absent_fields() {
        let body = ErrorBody {
            code: "SignatureDoesNotMatch".into(),
            message: "m".into(),
            request_id: "r".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"Code":"SignatureDoesNotMatch","Message":"m","RequestId":"r"}"#
        );
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::ErrorBody;

    #[test]
    fn a_quoted_string_to_sign_with_an_sts_token_is_cut_from_the_message() {
        let mut body = ErrorBody {
            code: "SignatureDoesNotMatch".into(),
            message:
                "Specified signature is not matched with our calculation. server string to sign is:\
                      POST&%2F&AccessKeyId%3DSTS.X%26SecurityToken%3Dsts-token-value"
                    .into(),
            ..ErrorBody::default()
        };
        body.redact_credentials();
        assert!(
            !body.message.contains("sts-token-value"),
            "{}",
            body.message
        );
        assert!(
            body.message
                .starts_with("Specified signature is not matched with our calculation.")
        );
    }

    #[test]
    fn an_ordinary_message_is_left_alone() {
        let mut body = ErrorBody {
            message: "Request was denied due to user flow control.".into(),
            ..ErrorBody::default()
        };
        body.redact_credentials();
        assert_eq!(body.message, "Request was denied due to user flow control.");
    }
}
