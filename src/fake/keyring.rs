//! The AccessKeys the fake accepts, and the STS token rules that decide whether a request may use one.

use std::collections::HashMap;

use serde::Serialize;

use super::config::AccessKeyConfig;
use crate::eiam::secret::SecretString;

/// Why a request's AccessKeyId / SecurityToken pair is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// The AccessKeyId is unknown.
    UnknownKey,
    /// An STS AccessKeyId without its SecurityToken.
    MissingToken,
    /// A SecurityToken that belongs to another AccessKeyId.
    TokenMismatch,
    /// A SecurityToken the fake never issued.
    TokenMalformed,
    /// The STS credential's expiry has passed.
    TokenExpired,
}

#[derive(Debug, Clone)]
struct AccessKey {
    secret: SecretString,
    security_token: Option<SecretString>,
    expires_at_ms: Option<i64>,
}

/// A public view of one AccessKey for the admin state endpoint: no secret, no token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySummary {
    /// The AccessKey ID.
    pub id: String,
    /// Whether it is an STS credential.
    pub sts: bool,
    /// STS expiry, UNIX ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
}

/// Every AccessKey the fake accepts, by id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: HashMap<String, AccessKey>,
}

impl Keyring {
    /// A keyring holding the configured keys.
    pub fn from_config(keys: &[AccessKeyConfig]) -> Self {
        let mut ring = Self::default();
        for key in keys {
            ring.insert(key.clone());
        }
        ring
    }

    /// Adds or replaces a key (for example STS credentials minted by the fake STS endpoint).
    pub fn insert(&mut self, key: AccessKeyConfig) {
        self.keys.insert(
            key.id,
            AccessKey {
                secret: key.secret,
                security_token: key.security_token,
                expires_at_ms: key.expires_at_ms,
            },
        );
    }

    /// Removes a key; returns whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        self.keys.remove(id).is_some()
    }

    /// The keys, sorted by id, without secrets.
    pub fn summaries(&self) -> Vec<AccessKeySummary> {
        let mut out: Vec<_> = self
            .keys
            .iter()
            .map(|(id, k)| AccessKeySummary {
                id: id.clone(),
                sts: k.security_token.is_some(),
                expires_at_ms: k.expires_at_ms,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The secret to verify the signature with, once the id and the STS token rules pass.
    pub fn authorize(
        &self,
        id: &str,
        token: Option<&str>,
        now_ms: i64,
    ) -> Result<&SecretString, KeyRejection> {
        let key = self.keys.get(id).ok_or(KeyRejection::UnknownKey)?;
        let belongs_elsewhere = |t: &str| {
            self.keys.iter().any(|(other, k)| {
                other != id && k.security_token.as_ref().is_some_and(|x| x.expose() == t)
            })
        };
        match (&key.security_token, token) {
            (None, None) => Ok(&key.secret),
            (Some(_), None) => Err(KeyRejection::MissingToken),
            (Some(expected), Some(given)) if expected.expose() == given => {
                if key.expires_at_ms.is_some_and(|exp| now_ms >= exp) {
                    Err(KeyRejection::TokenExpired)
                } else {
                    Ok(&key.secret)
                }
            }
            (_, Some(given)) if belongs_elsewhere(given) => Err(KeyRejection::TokenMismatch),
            (_, Some(_)) => Err(KeyRejection::TokenMalformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::from_config(&[
            AccessKeyConfig::parse_flag("--access-key", "AK:secret", false).unwrap(),
            AccessKeyConfig::parse_flag("--sts-key", "STS.A:sa:tokenA", true).unwrap(),
            AccessKeyConfig::parse_flag("--sts-key", "STS.B:sb:tokenB", true).unwrap(),
        ])
    }

    #[test]
    fn permanent_key_needs_no_token() {
        assert_eq!(ring().authorize("AK", None, 0).unwrap().expose(), "secret");
        assert_eq!(
            ring().authorize("nope", None, 0).unwrap_err(),
            KeyRejection::UnknownKey
        );
    }

    #[test]
    fn sts_key_needs_its_own_token() {
        let r = ring();
        assert_eq!(
            r.authorize("STS.A", Some("tokenA"), 0).unwrap().expose(),
            "sa"
        );
        assert_eq!(
            r.authorize("STS.A", None, 0).unwrap_err(),
            KeyRejection::MissingToken
        );
        assert_eq!(
            r.authorize("STS.A", Some("tokenB"), 0).unwrap_err(),
            KeyRejection::TokenMismatch
        );
        assert_eq!(
            r.authorize("STS.A", Some("junk"), 0).unwrap_err(),
            KeyRejection::TokenMalformed
        );
        assert_eq!(
            r.authorize("AK", Some("junk"), 0).unwrap_err(),
            KeyRejection::TokenMalformed
        );
    }

    #[test]
    fn expired_sts_token_is_refused() {
        let mut r = ring();
        let mut key = AccessKeyConfig::parse_flag("--sts-key", "STS.C:sc:tokenC", true).unwrap();
        key.expires_at_ms = Some(1000);
        r.insert(key);
        assert!(r.authorize("STS.C", Some("tokenC"), 999).is_ok());
        assert_eq!(
            r.authorize("STS.C", Some("tokenC"), 1000).unwrap_err(),
            KeyRejection::TokenExpired
        );
    }
}
