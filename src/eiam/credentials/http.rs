//! The small HTTP helpers the credential providers share: a client with tight timeouts and error mapping that
//! never echoes a URL query (it may hold an OIDC token) or a response body (it holds credentials).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{CredentialError, Credentials};
use crate::eiam::clock::parse_acs_timestamp;
use crate::eiam::secret::SecretString;

/// A client for STS or the metadata service.
pub(crate) fn client(
    connect: Duration,
    read: Duration,
) -> Result<reqwest::Client, CredentialError> {
    crate::eiam::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        // One deadline for the whole request, body included: an endpoint that drips bytes cannot hold a call.
        .timeout(crate::eiam::limits::DEFAULT_CALL_DEADLINE)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("eiam-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CredentialError::Invalid {
            field: "http client".into(),
            reason: e.without_url().to_string(),
        })
}

/// `scheme://host[:port]/path` without the query.
pub(crate) fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

pub(crate) fn transport(provider: &'static str, url: &Url, e: reqwest::Error) -> CredentialError {
    CredentialError::Transport {
        provider,
        url: display_url(url),
        source: e.without_url(),
    }
}

/// The body of an answer, read up to [`crate::eiam::limits::MAX_RESPONSE_BYTES`] (credential answers are a few
/// hundred bytes).
pub(crate) async fn read_body(
    provider: &'static str,
    url: &Url,
    response: reqwest::Response,
) -> Result<Vec<u8>, CredentialError> {
    use crate::eiam::limits::{BodyError, MAX_RESPONSE_BYTES, read_capped};
    read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => malformed(
                provider,
                url,
                format!("the answer exceeds {limit} bytes; check the endpoint"),
            ),
            BodyError::Transport(e) => transport(provider, url, e),
        })
}

/// Maps a non-success answer, reading Alibaba's error fields if the body has them.
pub(crate) fn rejected(
    provider: &'static str,
    url: &Url,
    status: u16,
    body: &[u8],
) -> CredentialError {
    #[derive(Deserialize, Default)]
    struct Fields {
        #[serde(default, rename = "Code", alias = "code")]
        code: String,
        #[serde(default, rename = "Message", alias = "message")]
        message: String,
        #[serde(default, rename = "RequestId", alias = "requestId")]
        request_id: String,
    }
    use crate::eiam::limits::{MAX_CODE_CHARS, MAX_MESSAGE_CHARS, MAX_REQUEST_ID_CHARS, bounded};
    let fields: Fields = serde_json::from_slice(body).unwrap_or_default();
    CredentialError::Rejected {
        provider,
        url: display_url(url),
        status,
        code: bounded(fields.code, MAX_CODE_CHARS),
        message: bounded(fields.message, MAX_MESSAGE_CHARS),
        request_id: bounded(fields.request_id, MAX_REQUEST_ID_CHARS),
    }
}

pub(crate) fn malformed(
    provider: &'static str,
    url: &Url,
    reason: impl Into<String>,
) -> CredentialError {
    CredentialError::Malformed {
        provider,
        url: display_url(url),
        reason: reason.into(),
    }
}

/// A JSON answer, or why it is not one — never the body itself, which holds credentials.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "not JSON ({:?} error at column {})",
            e.classify(),
            e.column()
        )
    })
}

/// The temporary AccessKey that STS (inside `Credentials`) and the ECS metadata service (at the top level) answer
/// with: all three parts and an `Expiration` are required.
#[derive(Deserialize)]
pub(crate) struct TemporaryCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "AccessKeySecret")]
    access_key_secret: Option<SecretString>,
    #[serde(rename = "SecurityToken")]
    security_token: Option<SecretString>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

impl TemporaryCredentials {
    /// The credentials and when they expire. `object` names the JSON object that held them in error messages
    /// (`Some("Credentials")` for STS, `None` for an answer whose top level holds them).
    pub(crate) fn into_credentials(
        self,
        object: Option<&str>,
    ) -> Result<(Credentials, Timestamp), String> {
        let (holder, expiration_field) = match object {
            Some(name) => (format!("`{name}`"), format!("`{name}.Expiration`")),
            None => ("the answer".to_owned(), "`Expiration`".to_owned()),
        };
        match (
            self.access_key_id,
            self.access_key_secret,
            self.security_token,
        ) {
            (Some(id), Some(secret), Some(token))
                if !id.is_empty() && !secret.is_empty() && !token.is_empty() =>
            {
                let expiration = self
                    .expiration
                    .as_deref()
                    .and_then(parse_acs_timestamp)
                    .ok_or_else(|| {
                        format!("{expiration_field} is missing or not a yyyy-MM-ddTHH:mm:ssZ time")
                    })?;
                Ok((
                    Credentials {
                        access_key_id: id,
                        access_key_secret: secret,
                        security_token: Some(token),
                    },
                    expiration,
                ))
            }
            _ => Err(format!(
                "{holder} lacks AccessKeyId, AccessKeySecret or SecurityToken"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, object: Option<&str>) -> Result<(Credentials, Timestamp), String> {
        parse_json::<TemporaryCredentials>(body.as_bytes())?.into_credentials(object)
    }

    #[test]
    fn complete_temporary_credentials_are_accepted_with_their_expiry() {
        let (credentials, expiration) = parse(
            r#"{"AccessKeyId":"STS.id","AccessKeySecret":"s3cr3t","SecurityToken":"t0k3n",
                "Expiration":"2026-11-27T03:00:00Z"}"#,
            None,
        )
        .expect("valid credentials");
        assert_eq!(credentials.access_key_id, "STS.id");
        assert_eq!(credentials.access_key_secret.expose(), "s3cr3t");
        assert_eq!(
            credentials
                .security_token
                .as_ref()
                .map(SecretString::expose),
            Some("t0k3n")
        );
        assert_eq!(expiration.to_string(), "2026-11-27T03:00:00Z");
    }

    #[test]
    fn a_missing_or_empty_part_is_refused_naming_where_it_was_expected() {
        let no_token = r#"{"AccessKeyId":"id","AccessKeySecret":"s3cr3t","Expiration":"2026-11-27T03:00:00Z"}"#;
        assert_eq!(
            parse(no_token, Some("Credentials")).unwrap_err(),
            "`Credentials` lacks AccessKeyId, AccessKeySecret or SecurityToken"
        );
        let empty_id = r#"{"AccessKeyId":"","AccessKeySecret":"s3cr3t","SecurityToken":"t","Expiration":"2026-11-27T03:00:00Z"}"#;
        assert_eq!(
            parse(empty_id, None).unwrap_err(),
            "the answer lacks AccessKeyId, AccessKeySecret or SecurityToken"
        );
    }

    #[test]
    fn an_unreadable_expiration_is_refused() {
        let body = r#"{"AccessKeyId":"id","AccessKeySecret":"s3cr3t","SecurityToken":"t","Expiration":"tomorrow"}"#;
        assert_eq!(
            parse(body, Some("Credentials")).unwrap_err(),
            "`Credentials.Expiration` is missing or not a yyyy-MM-ddTHH:mm:ssZ time"
        );
        assert_eq!(
            parse(&body.replace(r#","Expiration":"tomorrow""#, ""), None).unwrap_err(),
            "`Expiration` is missing or not a yyyy-MM-ddTHH:mm:ssZ time"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_described_never_echoed() {
        let err = parse(r#"AccessKeySecret=s3cr3t"#, None).unwrap_err();
        assert!(err.starts_with("not JSON ("), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
