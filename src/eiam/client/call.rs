//! The pieces of one call around the signer: the parameters, the extra CA roots, what a transport failure or an
//! answer's headers and body mean, and the log line of each attempt.

// The client's own imports: this is one room of it.
use super::*;

pub(super) fn non_empty(field: &'static str, value: &str) -> Result<String, EiamError> {
    if value.trim().is_empty() {
        return Err(EiamError::InvalidInput {
            field,
            reason: "must not be empty".into(),
        });
    }
    Ok(value.to_owned())
}

/// The certificates of a `caBundle`: PEM `CERTIFICATE` blocks, at least one.
pub(super) fn extra_roots(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, EiamError> {
    let invalid = |reason: String| EiamError::InvalidInput {
        field: "caBundle",
        reason,
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
        invalid(format!(
            "not a PEM certificate bundle ({e}); give base64-encoded PEM CERTIFICATE blocks"
        ))
    })?;
    if certs.is_empty() {
        return Err(invalid(
            "holds no PEM CERTIFICATE block; give base64-encoded PEM (-----BEGIN CERTIFICATE-----...)"
                .to_owned(),
        ));
    }
    Ok(certs)
}

pub(super) fn app_params(
    instance_id: &str,
    application_id: &str,
) -> Result<BTreeMap<String, String>, EiamError> {
    Ok(BTreeMap::from([
        (
            "InstanceId".to_owned(),
            non_empty("instanceId", instance_id)?,
        ),
        (
            "ApplicationId".to_owned(),
            non_empty("applicationId", application_id)?,
        ),
    ]))
}

pub(super) fn secret_params(
    instance_id: &str,
    application_id: &str,
    secret_id: &str,
) -> Result<BTreeMap<String, String>, EiamError> {
    let mut params = app_params(instance_id, application_id)?;
    params.insert("SecretId".to_owned(), non_empty("secretId", secret_id)?);
    Ok(params)
}

/// EIAM rejected a temporary token that a refresh may fix.
pub(super) fn rejects_temporary_credentials(e: &EiamError) -> bool {
    e.code().is_some_and(|c| {
        c.starts_with("InvalidSecurityToken") || c == "InvalidAccessKeyId.NotFound"
    })
}

pub(super) fn transport_error(action: Action, endpoint: &Endpoint, e: reqwest::Error) -> EiamError {
    // A connect failure means nothing reached EIAM; anything later may have.
    let sent = !e.is_connect();
    let endpoint = endpoint.to_string();
    if e.is_timeout() {
        EiamError::Timeout {
            action,
            endpoint,
            sent,
        }
    } else {
        // The URL's query carries the signature and, for V1 STS, the security token: never show it.
        EiamError::Transport {
            action,
            endpoint,
            sent,
            source: e.without_url(),
        }
    }
}

/// `x-acs-retry-after` in ms; only positive values count, as in the official SDK, clamped to
/// [`limits::MAX_RETRY_AFTER`].
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    limits::retry_after_from_ms(headers.get(RETRY_AFTER_HEADER)?.to_str().ok()?)
}

pub(super) fn request_id_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct OnlyRequestId {
        #[serde(rename = "RequestId", alias = "requestId")]
        request_id: Option<String>,
    }
    serde_json::from_slice::<OnlyRequestId>(body)
        .ok()?
        .request_id
}

/// A decode error without any value from the body (it may be a client secret).
pub(super) fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

pub(super) fn log_attempt<T: EiamResponse>(
    action: Action,
    secret_id: Option<&str>,
    elapsed: Duration,
    result: &Result<T, EiamError>,
) {
    let duration_ms = elapsed.as_millis() as u64;
    let secret_id = secret_id.unwrap_or("");
    match result {
        Ok(response) if action.is_mutation() => tracing::info!(
            action = %action, secret_id, request_id = response.request_id(), duration_ms, "EIAM call succeeded"
        ),
        Ok(response) => tracing::debug!(
            action = %action, secret_id, request_id = response.request_id(), duration_ms, "EIAM call succeeded"
        ),
        Err(e) => tracing::info!(
            action = %action,
            secret_id,
            code = e.code().unwrap_or(""),
            request_id = e.request_id().unwrap_or(""),
            duration_ms,
            error = %e,
            "EIAM call failed"
        ),
    }
}
