//! The small HTTP helpers the credential providers share: a client with tight timeouts and error mapping that
//! never echoes a URL query (it may hold an OIDC token) or a response body (it holds credentials).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::CredentialError;

/// A client for STS or the metadata service.
pub(crate) fn client(
    connect: Duration,
    read: Duration,
) -> Result<reqwest::Client, CredentialError> {
    crate::eiam::install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
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
    let fields: Fields = serde_json::from_slice(body).unwrap_or_default();
    CredentialError::Rejected {
        provider,
        url: display_url(url),
        status,
        code: fields.code,
        message: fields.message,
        request_id: fields.request_id,
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
