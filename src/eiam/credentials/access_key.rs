//! A fixed AccessKey (optionally with an STS token), e.g. from a Kubernetes Secret or the CLI's environment.

use futures::future::{self, BoxFuture};

use super::{CredentialError, CredentialProvider, Credentials};
use crate::eiam::secret::SecretString;

/// Always returns the same credentials.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    credentials: Credentials,
    kind: Option<&'static str>,
}

impl StaticProvider {
    /// A long-lived AccessKey.
    pub fn access_key(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<SecretString>,
    ) -> Self {
        Self::new(Credentials {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
        })
    }

    /// Temporary STS credentials.
    pub fn sts(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<SecretString>,
        security_token: impl Into<SecretString>,
    ) -> Self {
        Self::new(Credentials {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: Some(security_token.into()),
        })
    }

    /// Wraps ready-made credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            kind: None,
        }
    }

    /// Overrides the label [`CredentialProvider::kind`] reports (e.g. `env` for the environment chain).
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }
}

impl CredentialProvider for StaticProvider {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialError>> {
        Box::pin(future::ready(Ok(self.credentials.clone())))
    }

    fn kind(&self) -> &'static str {
        if let Some(kind) = self.kind {
            kind
        } else if self.credentials.security_token.is_some() {
            "static_sts"
        } else {
            "static_ak"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_provider_returns_its_key_and_redacts_it() {
        let p = StaticProvider::sts("AKID", "sekrit", "tok3n");
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.access_key_secret.expose(), "sekrit");
        assert_eq!(c.security_token.as_ref().unwrap().expose(), "tok3n");
        let debug = format!("{p:?} {c:?}");
        assert!(
            !debug.contains("sekrit") && !debug.contains("tok3n"),
            "{debug}"
        );
        assert_eq!(p.kind(), "static_sts");
        assert_eq!(StaticProvider::access_key("a", "b").kind(), "static_ak");
        assert!(!p.invalidate());
    }
}
