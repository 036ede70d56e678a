//! Configuration of the fake EIAM: where it listens, which AccessKeys and applications exist, and the knobs for
//! behaviour EIAM does not document (error codes, how a permanent secret's ExpirationTime is shown, clock skew).
//!
//! The same struct is read from a JSON file (`--config`) and built from command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::eiam::secret::SecretString;

/// Everything the fake needs to start. Every field has a default, so `{}` is a valid (empty) configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FakeConfig {
    /// Address to listen on; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// AccessKeys the fake accepts.
    pub access_keys: Vec<AccessKeyConfig>,
    /// Instances and their applications.
    pub instances: Vec<InstanceConfig>,
    /// EIAM-specific error codes and statuses (unverified in EIAM, so configurable).
    pub error_codes: ErrorCodes,
    /// How List and Obtain show the ExpirationTime of a secret that never expires (unverified in EIAM).
    pub never_expires_as: NeverExpiresAs,
    /// Whether Delete refuses an enabled secret (unverified in EIAM).
    pub require_disable_before_delete: bool,
    /// Maximum client secrets per application (EIAM: 2).
    pub max_secrets_per_application: usize,
    /// Milliseconds added to the system clock to get the fake's "server time" (negative = server behind).
    pub clock_skew_ms: i64,
    /// Accepted distance between the request's timestamp and server time, in seconds (EIAM: 900).
    pub timestamp_window_secs: u64,
    /// `HostId` in error bodies; default: the request's `Host` header.
    pub host_id: Option<String>,
    /// Also serve STS `AssumeRoleWithOIDC` on its own listener; its credentials are accepted by the fake EIAM.
    pub sts: Option<StandInSettings>,
    /// Also serve the ECS metadata RAM-role endpoints on their own listener; their credentials are accepted.
    pub metadata: Option<StandInSettings>,
    /// Serve the EIAM API over HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its PEM private key, for serving HTTPS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsFiles {
    /// The server certificate, then any intermediates.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// A credential stand-in (STS or ECS metadata) served next to the fake EIAM. Omitted fields keep the stand-in's
/// defaults. The issued AccessKey is registered in the fake EIAM's keyring (without expiry, since every issue
/// repeats it with a later `Expiration`), so a client using RRSA or an ECS RAM role can call the fake end to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StandInSettings {
    /// Address to listen on; default `127.0.0.1:0`.
    #[serde(default = "loopback_any_port")]
    pub listen: SocketAddr,
    /// AccessKey ID issued.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AccessKey secret issued.
    #[serde(default)]
    pub access_key_secret: Option<SecretString>,
    /// Security token issued.
    #[serde(default)]
    pub security_token: Option<SecretString>,
    /// Lifetime of issued credentials in seconds (STS default: the requested DurationSeconds; ECS: 6 hours).
    #[serde(default)]
    pub lifetime_secs: Option<i64>,
    /// STS: the only `RoleArn` accepted (default: any).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// STS: the only `OIDCProviderArn` accepted (default: any).
    #[serde(default)]
    pub oidc_provider_arn: Option<String>,
    /// Metadata: the RAM role name served (default `EcsRamRoleForEiam`).
    #[serde(default)]
    pub role_name: Option<String>,
    /// Metadata: refuse reads without an IMDSv2 token (default true).
    #[serde(default)]
    pub require_token: Option<bool>,
}

fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl StandInSettings {
    /// Settings with every default, listening on `listen`.
    pub fn listening_on(listen: SocketAddr) -> Self {
        Self {
            listen,
            access_key_id: None,
            access_key_secret: None,
            security_token: None,
            lifetime_secs: None,
            role_arn: None,
            oidc_provider_arn: None,
            role_name: None,
            require_token: None,
        }
    }
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            listen: loopback_any_port(),
            access_keys: Vec::new(),
            instances: Vec::new(),
            error_codes: ErrorCodes::default(),
            never_expires_as: NeverExpiresAs::default(),
            require_disable_before_delete: false,
            max_secrets_per_application: 2,
            clock_skew_ms: 0,
            timestamp_window_secs: 15 * 60,
            host_id: None,
            sts: None,
            metadata: None,
            tls: None,
        }
    }
}

/// An AccessKey pair, optionally an STS credential (then the matching `securityToken` is required).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// The AccessKey ID.
    pub id: String,
    /// The AccessKey secret.
    pub secret: SecretString,
    /// Present for STS credentials: requests must carry exactly this token.
    #[serde(default)]
    pub security_token: Option<SecretString>,
    /// For STS credentials: UNIX ms after which the token is rejected as `InvalidSecurityToken.Expired`.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

/// An instance and its applications.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceConfig {
    /// `idaas_...`
    pub id: String,
    /// Applications of the instance.
    #[serde(default)]
    pub applications: Vec<ApplicationConfig>,
}

/// An application.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationConfig {
    /// `app_...`
    pub id: String,
    /// The OAuth client id; default: the application id (as in the docs' examples).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// How List/Obtain render the ExpirationTime of a never-expiring secret (eiam-api.md 9.3: unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NeverExpiresAs {
    /// The field is left out.
    #[default]
    Omit,
    /// `"ExpirationTime": 0`.
    Zero,
    /// `"ExpirationTime": 253402300799000` (9999-12-31T23:59:59Z).
    FarFuture,
}

impl NeverExpiresAs {
    /// 9999-12-31T23:59:59Z in UNIX ms.
    pub const FAR_FUTURE_MS: i64 = 253_402_300_799_000;

    /// The value to put in `ExpirationTime`, or `None` to leave the field out.
    pub fn render(self, expiration_ms: Option<i64>) -> Option<i64> {
        match (expiration_ms, self) {
            (Some(ms), _) => Some(ms),
            (None, Self::Omit) => None,
            (None, Self::Zero) => Some(0),
            (None, Self::FarFuture) => Some(Self::FAR_FUTURE_MS),
        }
    }
}

/// An error code with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorCode {
    /// The `Code` of the error body.
    pub code: String,
    /// The HTTP status.
    pub status: u16,
}

impl ErrorCode {
    fn new(code: &str, status: u16) -> Self {
        Self {
            code: code.to_owned(),
            status,
        }
    }
}

/// The EIAM-specific codes that EIAM's pages do not publish (eiam-api.md section 3), with the defaults named there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ErrorCodes {
    /// Default `EntityNotExists.Instance` / 404.
    pub instance_not_found: ErrorCode,
    /// Default `EntityNotExists.Application` / 404.
    pub application_not_found: ErrorCode,
    /// Default `EntityNotExists.ApplicationClientSecret` / 404.
    pub secret_not_found: ErrorCode,
    /// Default `QuotaExceeded.ApplicationClientSecret` / 400.
    pub quota_exceeded: ErrorCode,
    /// Default `InvalidParameter.ExpirationTime` / 400.
    pub invalid_expiration_time: ErrorCode,
    /// Delete of an enabled secret with `requireDisableBeforeDelete`. Default
    /// `OperationDenied.ApplicationClientSecretEnabled` / 400 (invented: EIAM publishes nothing).
    pub secret_still_enabled: ErrorCode,
}

impl Default for ErrorCodes {
    fn default() -> Self {
        Self {
            instance_not_found: ErrorCode::new("EntityNotExists.Instance", 404),
            application_not_found: ErrorCode::new("EntityNotExists.Application", 404),
            secret_not_found: ErrorCode::new("EntityNotExists.ApplicationClientSecret", 404),
            quota_exceeded: ErrorCode::new("QuotaExceeded.ApplicationClientSecret", 400),
            invalid_expiration_time: ErrorCode::new("InvalidParameter.ExpirationTime", 400),
            secret_still_enabled: ErrorCode::new(
                "OperationDenied.ApplicationClientSecretEnabled",
                400,
            ),
        }
    }
}

/// A command-line value that could not be parsed; the message names the flag and the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: expected {expected}")]
pub struct FlagError {
    /// The flag, e.g. `--access-key`.
    pub flag: &'static str,
    /// What was given (never a secret: only the part before the first `:` is echoed).
    pub value: String,
    /// The expected shape.
    pub expected: &'static str,
}

impl AccessKeyConfig {
    /// Parses `ID:SECRET` (`--access-key`) or `ID:SECRET:TOKEN` (`--sts-key`; the token may contain `:`).
    pub fn parse_flag(flag: &'static str, value: &str, sts: bool) -> Result<Self, FlagError> {
        let expected = if sts {
            "ID:SECRET:TOKEN with all three parts non-empty"
        } else {
            "ID:SECRET with both parts non-empty"
        };
        let err = || FlagError {
            flag,
            value: format!("{}:<redacted>", value.split(':').next().unwrap_or_default()),
            expected,
        };
        let parts: Vec<&str> = value.splitn(if sts { 3 } else { 2 }, ':').collect();
        match (sts, parts.as_slice()) {
            (false, [id, secret]) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                id: (*id).to_owned(),
                secret: SecretString::new(*secret),
                security_token: None,
                expires_at_ms: None,
            }),
            (true, [id, secret, token])
                if !id.is_empty() && !secret.is_empty() && !token.is_empty() =>
            {
                Ok(Self {
                    id: (*id).to_owned(),
                    secret: SecretString::new(*secret),
                    security_token: Some(SecretString::new(*token)),
                    expires_at_ms: None,
                })
            }
            _ => Err(err()),
        }
    }
}

impl FakeConfig {
    /// Adds an instance from `--instance ID` (no-op if it exists).
    pub fn add_instance(&mut self, instance_id: &str) {
        if !self.instances.iter().any(|i| i.id == instance_id) {
            self.instances.push(InstanceConfig {
                id: instance_id.to_owned(),
                applications: Vec::new(),
            });
        }
    }

    /// Adds an application from `--application INSTANCE_ID/APPLICATION_ID[/CLIENT_ID]`, creating the instance
    /// if needed.
    pub fn add_application_flag(&mut self, value: &str) -> Result<(), FlagError> {
        let parts: Vec<&str> = value.split('/').collect();
        let (instance_id, application_id, client_id) = match parts.as_slice() {
            [i, a] if !i.is_empty() && !a.is_empty() => (*i, *a, None),
            [i, a, c] if !i.is_empty() && !a.is_empty() && !c.is_empty() => (*i, *a, Some(*c)),
            _ => {
                return Err(FlagError {
                    flag: "--application",
                    value: value.to_owned(),
                    expected: "INSTANCE_ID/APPLICATION_ID or INSTANCE_ID/APPLICATION_ID/CLIENT_ID",
                });
            }
        };
        self.add_instance(instance_id);
        if let Some(instance) = self.instances.iter_mut().find(|i| i.id == instance_id) {
            instance.applications.retain(|a| a.id != application_id);
            instance.applications.push(ApplicationConfig {
                id: application_id.to_owned(),
                client_id: client_id.map(str::to_owned),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_is_a_valid_config() {
        let c: FakeConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.max_secrets_per_application, 2);
        assert_eq!(c.timestamp_window_secs, 900);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(
            c.error_codes.quota_exceeded.code,
            "QuotaExceeded.ApplicationClientSecret"
        );
    }

    #[test]
    fn full_json_config_parses() {
        let c: FakeConfig = serde_json::from_str(
            r#"{"listen":"127.0.0.1:0",
                "accessKeys":[{"id":"AK","secret":"S"},{"id":"STS.1","secret":"S2","securityToken":"T","expiresAtMs":5}],
                "instances":[{"id":"idaas_1","applications":[{"id":"app_1"},{"id":"app_2","clientId":"c2"}]}],
                "errorCodes":{"quotaExceeded":{"code":"ExceedLimit.Secret","status":409}},
                "neverExpiresAs":"farFuture","requireDisableBeforeDelete":true,"clockSkewMs":-1000}"#,
        )
        .unwrap();
        assert_eq!(
            c.access_keys[1].security_token.as_ref().unwrap().expose(),
            "T"
        );
        assert_eq!(c.error_codes.quota_exceeded.status, 409);
        assert_eq!(
            c.error_codes.instance_not_found.code,
            "EntityNotExists.Instance"
        );
        assert_eq!(c.never_expires_as, NeverExpiresAs::FarFuture);
        assert_eq!(
            c.instances[0].applications[1].client_id.as_deref(),
            Some("c2")
        );
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = serde_json::from_str::<FakeConfig>(r#"{"acessKeys":[]}"#).unwrap_err();
        assert!(err.to_string().contains("acessKeys"), "{err}");
    }

    #[test]
    fn access_key_flags() {
        let ak = AccessKeyConfig::parse_flag("--access-key", "AK:se:cret", false).unwrap();
        assert_eq!((ak.id.as_str(), ak.secret.expose()), ("AK", "se:cret"));
        let sts = AccessKeyConfig::parse_flag("--sts-key", "STS.1:S:to:ken", true).unwrap();
        assert_eq!(sts.security_token.unwrap().expose(), "to:ken");
        let err = AccessKeyConfig::parse_flag("--access-key", "AK", false).unwrap_err();
        assert!(err.to_string().contains("--access-key"));
        let err = AccessKeyConfig::parse_flag("--sts-key", "AK:hunter2", true).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn application_flag_adds_instance() {
        let mut c = FakeConfig::default();
        c.add_application_flag("idaas_1/app_1").unwrap();
        c.add_application_flag("idaas_1/app_2/client_2").unwrap();
        assert_eq!(c.instances.len(), 1);
        assert_eq!(c.instances[0].applications.len(), 2);
        assert!(c.add_application_flag("app_1").is_err());
    }

    #[test]
    fn never_expires_rendering() {
        assert_eq!(NeverExpiresAs::Omit.render(None), None);
        assert_eq!(NeverExpiresAs::Zero.render(None), Some(0));
        assert_eq!(NeverExpiresAs::FarFuture.render(Some(7)), Some(7));
    }
}
