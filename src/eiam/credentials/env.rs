//! The default credential chain, resolved from environment variables in Alibaba's order (eiam-api.md section 6):
//! an AccessKey in the environment, then RRSA when all three of its variables are set, then the ECS RAM role.
//!
//! The environment is passed in as a map, so tests never touch the process environment; `process_env()` reads the
//! real one once.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::ecs_ram_role::{EcsRamRoleConfig, EcsRamRoleProvider};
use super::rrsa::{RrsaConfig, RrsaProvider};
use super::{CredentialError, CredentialProvider, Credentials, StaticProvider};
use crate::eiam::clock::{Clock, SystemClock};
use crate::eiam::endpoint::Endpoint;
use crate::eiam::secret::SecretString;

/// `ALIBABA_CLOUD_ACCESS_KEY_ID`
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
/// `ALIBABA_CLOUD_ACCESS_KEY_SECRET`
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
/// `ALIBABA_CLOUD_SECURITY_TOKEN`
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
/// `ALIBABA_CLOUD_ROLE_ARN`
pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
/// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
/// `ALIBABA_CLOUD_OIDC_TOKEN_FILE`
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
/// `ALIBABA_CLOUD_ROLE_SESSION_NAME`
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
/// `ALIBABA_CLOUD_STS_REGION`
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
/// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`
pub const ENV_VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
/// `ALIBABA_CLOUD_ECS_METADATA` (role name)
pub const ENV_ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
/// `ALIBABA_CLOUD_ECS_METADATA_DISABLED`
pub const ENV_ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
/// `ALIBABA_CLOUD_IMDSV1_DISABLED`
pub const ENV_IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";

/// The `ALIBABA_CLOUD_*` variables of this process.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("ALIBABA_CLOUD_"))
        .collect()
}

/// Inputs of [`default_chain`].
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// The environment to read (use [`process_env`] outside tests).
    pub env: HashMap<String, String>,
    /// Overrides the STS endpoint the environment implies (tests point it at a stand-in).
    pub sts_endpoint: Option<Endpoint>,
    /// Overrides the ECS metadata endpoint (tests point it at a stand-in).
    pub metadata_endpoint: Option<Endpoint>,
    /// Clock for STS timestamps and refresh decisions.
    pub clock: Arc<dyn Clock>,
}

impl ChainConfig {
    /// The chain over `env` with the real endpoints and the system clock.
    pub fn new(env: HashMap<String, String>) -> Self {
        Self {
            env,
            sts_endpoint: None,
            metadata_endpoint: None,
            clock: Arc::new(SystemClock),
        }
    }
}

fn var<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn flag(env: &HashMap<String, String>, name: &str) -> bool {
    var(env, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Picks the provider the environment asks for, in Alibaba's default-chain order:
/// 1. `ALIBABA_CLOUD_ACCESS_KEY_ID` + `_SECRET` (+ `_SECURITY_TOKEN`);
/// 2. RRSA when `ALIBABA_CLOUD_ROLE_ARN`, `_OIDC_PROVIDER_ARN` and `_OIDC_TOKEN_FILE` are all set;
/// 3. the ECS RAM role, unless `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`.
///
/// A half-set AccessKey is an error naming the missing variable rather than a silent fall-through.
pub fn default_chain(config: ChainConfig) -> Result<Arc<dyn CredentialProvider>, CredentialError> {
    let env = &config.env;
    match (var(env, ENV_ACCESS_KEY_ID), var(env, ENV_ACCESS_KEY_SECRET)) {
        (Some(id), Some(secret)) => {
            let credentials = Credentials {
                access_key_id: id.to_owned(),
                access_key_secret: SecretString::new(secret),
                security_token: var(env, ENV_SECURITY_TOKEN).map(SecretString::new),
            };
            return Ok(Arc::new(StaticProvider::new(credentials).with_kind("env")));
        }
        (Some(_), None) => return Err(missing(ENV_ACCESS_KEY_SECRET, ENV_ACCESS_KEY_ID)),
        (None, Some(_)) => return Err(missing(ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET)),
        (None, None) => {}
    }
    if let (Some(role_arn), Some(provider_arn), Some(token_file)) = (
        var(env, ENV_ROLE_ARN),
        var(env, ENV_OIDC_PROVIDER_ARN),
        var(env, ENV_OIDC_TOKEN_FILE),
    ) {
        let mut rrsa = RrsaConfig::new(role_arn, provider_arn, token_file);
        rrsa.clock = config.clock.clone();
        if let Some(name) = var(env, ENV_ROLE_SESSION_NAME) {
            rrsa.role_session_name = name.to_owned();
        }
        rrsa.sts_endpoint = match &config.sts_endpoint {
            Some(endpoint) => Some(endpoint.clone()),
            None => sts_endpoint_from_env(env)?,
        };
        return Ok(Arc::new(RrsaProvider::new(rrsa)?));
    }
    if flag(env, ENV_ECS_METADATA_DISABLED) {
        return Err(CredentialError::NotFound {
            tried: format!(
                "environment AccessKey: not set; RRSA: not all of {ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN}, \
                 {ENV_OIDC_TOKEN_FILE} set; ECS RAM role: disabled by {ENV_ECS_METADATA_DISABLED}"
            ),
        });
    }
    let ecs = EcsRamRoleProvider::new(EcsRamRoleConfig {
        metadata_endpoint: config.metadata_endpoint.clone(),
        role_name: var(env, ENV_ECS_METADATA).map(str::to_owned),
        imdsv1_disabled: flag(env, ENV_IMDSV1_DISABLED),
        clock: config.clock.clone(),
    })?;
    Ok(Arc::new(LastResort { ecs }))
}

/// The STS endpoint the environment asks for: `sts.<ALIBABA_CLOUD_STS_REGION>.aliyuncs.com`, or
/// `sts-vpc.<region>.aliyuncs.com` with `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true`; `None` for the global endpoint.
pub fn sts_endpoint_from_env(
    env: &HashMap<String, String>,
) -> Result<Option<Endpoint>, CredentialError> {
    let Some(region) = var(env, ENV_STS_REGION) else {
        return Ok(None);
    };
    let service = if flag(env, ENV_VPC_ENDPOINT_ENABLED) {
        "sts-vpc"
    } else {
        "sts"
    };
    Endpoint::for_service(service, region)
        .map(Some)
        .map_err(|e| CredentialError::Invalid {
            field: ENV_STS_REGION.into(),
            reason: e.to_string(),
        })
}

fn missing(absent: &str, present: &str) -> CredentialError {
    CredentialError::Invalid {
        field: absent.into(),
        reason: format!("is not set although {present} is; set both or neither"),
    }
}

/// The ECS RAM role as the chain's last resort: when the metadata service cannot be reached at all, the error
/// says that nothing earlier in the chain was configured either, which is the usual cause off ECS.
#[derive(Debug)]
struct LastResort {
    ecs: EcsRamRoleProvider,
}

impl CredentialProvider for LastResort {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CredentialError>> {
        Box::pin(async {
            self.ecs.credentials().await.map_err(|e| match e {
                CredentialError::Transport { ref url, .. } => CredentialError::NotFound {
                    tried: format!(
                        "environment AccessKey: not set; RRSA: not all of {ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN}, \
                         {ENV_OIDC_TOKEN_FILE} set; ECS RAM role: metadata service {url} unreachable ({e})"
                    ),
                },
                other => other,
            })
        })
    }

    fn kind(&self) -> &'static str {
        self.ecs.kind()
    }

    fn invalidate(&self) -> bool {
        self.ecs.invalidate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const RRSA: [(&str, &str); 3] = [
        (ENV_ROLE_ARN, "acs:ram::123:role/eiam"),
        (ENV_OIDC_PROVIDER_ARN, "acs:ram::123:oidc-provider/ack-rrsa"),
        (
            ENV_OIDC_TOKEN_FILE,
            "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token",
        ),
    ];

    #[tokio::test]
    async fn an_access_key_in_the_environment_comes_first() {
        let mut pairs = vec![
            (ENV_ACCESS_KEY_ID, "AKID"),
            (ENV_ACCESS_KEY_SECRET, "sekrit"),
        ];
        pairs.extend(RRSA);
        let provider = default_chain(ChainConfig::new(env(&pairs))).unwrap();
        assert_eq!(provider.kind(), "env");
        let c = provider.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert_eq!(c.access_key_secret.expose(), "sekrit");
        assert!(c.security_token.is_none());
        assert!(!provider.invalidate());
    }

    #[tokio::test]
    async fn an_environment_security_token_makes_sts_credentials() {
        let provider = default_chain(ChainConfig::new(env(&[
            (ENV_ACCESS_KEY_ID, "STS.id"),
            (ENV_ACCESS_KEY_SECRET, "s"),
            (ENV_SECURITY_TOKEN, "tok"),
        ])))
        .unwrap();
        let c = provider.credentials().await.unwrap();
        assert_eq!(c.security_token.unwrap().expose(), "tok");
    }

    #[test]
    fn a_half_set_access_key_names_the_missing_variable() {
        let err = default_chain(ChainConfig::new(env(&[(ENV_ACCESS_KEY_ID, "AKID")]))).unwrap_err();
        assert!(err.to_string().contains(ENV_ACCESS_KEY_SECRET), "{err}");
        let err = default_chain(ChainConfig::new(env(&[
            (ENV_ACCESS_KEY_SECRET, "s"),
            (ENV_ACCESS_KEY_ID, " "),
        ])))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("invalid credential setting `{ENV_ACCESS_KEY_ID}`")),
            "{err}"
        );
    }

    #[test]
    fn rrsa_needs_all_three_variables() {
        assert_eq!(
            default_chain(ChainConfig::new(env(&RRSA))).unwrap().kind(),
            "rrsa"
        );
        for (left_out, _) in RRSA {
            let partial: Vec<_> = RRSA
                .into_iter()
                .filter(|(name, _)| *name != left_out)
                .collect();
            let provider = default_chain(ChainConfig::new(env(&partial))).unwrap();
            assert_eq!(provider.kind(), "ecs_ram_role", "without {left_out}");
        }
    }

    #[test]
    fn a_bad_session_name_is_reported_by_variable() {
        let mut pairs = RRSA.to_vec();
        pairs.push((ENV_ROLE_SESSION_NAME, "has space"));
        let err = default_chain(ChainConfig::new(env(&pairs))).unwrap_err();
        assert!(err.to_string().contains(ENV_ROLE_SESSION_NAME), "{err}");
    }

    #[test]
    fn sts_region_and_vpc_flag_choose_the_endpoint() {
        assert_eq!(sts_endpoint_from_env(&env(&[])).unwrap(), None);
        let regional = sts_endpoint_from_env(&env(&[(ENV_STS_REGION, "cn-shanghai")]))
            .unwrap()
            .unwrap();
        assert_eq!(regional.to_string(), "https://sts.cn-shanghai.aliyuncs.com");
        let vpc = sts_endpoint_from_env(&env(&[
            (ENV_STS_REGION, "cn-shanghai"),
            (ENV_VPC_ENDPOINT_ENABLED, "true"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(vpc.to_string(), "https://sts-vpc.cn-shanghai.aliyuncs.com");
        let err = sts_endpoint_from_env(&env(&[(ENV_STS_REGION, "evil.com/")])).unwrap_err();
        assert!(err.to_string().contains(ENV_STS_REGION), "{err}");
    }

    #[test]
    fn nothing_configured_and_ecs_disabled_says_what_to_set() {
        let err = default_chain(ChainConfig::new(env(&[(
            ENV_ECS_METADATA_DISABLED,
            "true",
        )])))
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CredentialError::NotFound { .. }));
        assert!(
            text.contains(ENV_ACCESS_KEY_ID)
                && text.contains(ENV_ROLE_ARN)
                && text.contains(ENV_ECS_METADATA_DISABLED),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_metadata_service_as_last_resort_says_nothing_was_configured() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = ChainConfig::new(env(&[]));
        config.metadata_endpoint = Some(Endpoint::parse(&format!("http://{addr}")).unwrap());
        let provider = default_chain(config).unwrap();
        let err = provider.credentials().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CredentialError::NotFound { .. }), "{err:?}");
        assert!(
            text.contains(ENV_ACCESS_KEY_ID) && text.contains(&addr.to_string()),
            "{text}"
        );
    }
}
