//! A string that must never be printed: AccessKey secrets, STS tokens and EIAM client secrets.
//!
//! `Debug` and `Display` print `<redacted>`, so a secret that ends up in a log line, an event or a panic message
//! gives nothing away. Serde is transparent (the clear value), because the fake EIAM and the Kubernetes Secret
//! writer must put the real value on the wire; reading it in code takes an explicit `expose()`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The text printed in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret value with redacting `Debug`/`Display`; `expose()` gives the clear text.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value. Call this only where the value leaves the process on purpose (signing, a Kubernetes
    /// Secret, an explicit `--show-secret`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes the wrapper and returns the clear value.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Whether the value is empty (safe to ask: it reveals nothing about a non-empty secret).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        secret: SecretString,
    }

    #[test]
    fn debug_and_display_redact_the_value() {
        let s = SecretString::new("CS-very-secret");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        let holder = Holder { secret: s.clone() };
        let debug = format!("{holder:?} {holder:#?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert_eq!(s.expose(), "CS-very-secret");
    }

    #[test]
    fn serde_is_transparent() {
        let holder: Holder = serde_json::from_str(r#"{"secret":"abc"}"#).unwrap();
        assert_eq!(holder.secret.expose(), "abc");
        assert_eq!(
            serde_json::to_string(&holder).unwrap(),
            r#"{"secret":"abc"}"#
        );
    }
}
