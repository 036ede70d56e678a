//! `eiam-operator eiam list|create|obtain|enable|disable|delete|update-expiration`: one EIAM call per run,
//! printed as JSON.
//!
//! The parsing and rendering are pure ([`EiamArgs`] via clap, [`render`]); [`run`] is the edge that reads the
//! environment, calls EIAM and writes stdout/stderr. A client secret is printed only with `--show-secret`.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::api::parse_duration;
use crate::eiam::credentials::{ChainConfig, default_chain, process_env};
use crate::eiam::{ClientConfig, EiamClient, EiamError, Endpoint, SignatureVersion};

/// Exit code for an EIAM, network or credential failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for unusable arguments (nothing was sent). clap uses the same code for its own usage errors.
pub const EXIT_USAGE: u8 = 2;

/// `eiam-operator eiam`: call EIAM's client-secret actions directly.
#[derive(Debug, Args)]
#[command(
    about = "Call the EIAM client-secret actions directly (check credentials and RAM permissions)",
    long_about = "Call the EIAM client-secret actions directly: check that credentials, endpoint and RAM \
                  permissions work before deploying the operator, or inspect and repair an application by hand.\n\n\
                  Credentials come from the environment, as for the operator: ALIBABA_CLOUD_ACCESS_KEY_ID and \
                  ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), or the RRSA variables \
                  ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE, or the \
                  ECS instance's RAM role.\n\nOutput is EIAM's response as JSON. Client secrets are masked unless \
                  --show-secret is given. On failure the exit code is 1 and stderr carries EIAM's Code, Message and \
                  RequestId (and stdout a JSON {\"Error\": ...} document when EIAM answered)."
)]
pub struct EiamArgs {
    /// Region of the EIAM instance, e.g. cn-hangzhou (endpoint https://eiam.<region>.aliyuncs.com).
    #[arg(long, global = true, env = "EIAM_REGION")]
    pub region: Option<String>,

    /// Explicit EIAM endpoint URL (https://, or http:// for a loopback test endpoint); wins over --region.
    #[arg(long, global = true, env = "EIAM_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Request signature algorithm.
    #[arg(long, global = true, value_enum, default_value_t = SignatureArg::V1, env = "EIAM_SIGNATURE_VERSION")]
    pub signature_version: SignatureArg,

    /// Print client secret values in clear (Create and Obtain return them; masked otherwise).
    #[arg(long, global = true)]
    pub show_secret: bool,

    /// The action to perform.
    #[command(subcommand)]
    pub action: EiamAction,
}

/// `--signature-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignatureArg {
    /// RPC signature V1, HMAC-SHA1 (the operator's default).
    V1,
    /// ACS3-HMAC-SHA256 (the official SDK's default).
    V3,
}

impl From<SignatureArg> for SignatureVersion {
    fn from(value: SignatureArg) -> Self {
        match value {
            SignatureArg::V1 => SignatureVersion::V1,
            SignatureArg::V3 => SignatureVersion::V3,
        }
    }
}

/// The application an action is about.
#[derive(Debug, Clone, Args)]
pub struct ApplicationArgs {
    /// EIAM instance id, e.g. idaas_ue2jvisn35ea5lmthk267xxxxx.
    #[arg(long, env = "EIAM_INSTANCE_ID")]
    pub instance_id: String,
    /// EIAM application id, e.g. app_mkv7rgt4d7i4u7zqtzev2mxxxx.
    #[arg(long, env = "EIAM_APPLICATION_ID")]
    pub application_id: String,
}

/// One client secret of an application.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub application: ApplicationArgs,
    /// The client secret's id, e.g. sci_k52x2ru63rlkflina5utgkxxxx (see `list`).
    #[arg(long)]
    pub secret_id: String,
}

/// The seven actions.
#[derive(Debug, Clone, Subcommand)]
pub enum EiamAction {
    /// ListApplicationClientSecrets: every secret of the application (values masked by EIAM).
    List(ApplicationArgs),
    /// CreateApplicationClientSecret: mint a new secret (at most two per application).
    Create {
        #[command(flatten)]
        #[allow(missing_docs)]
        application: ApplicationArgs,
        /// Lifetime as a Go duration, e.g. 2160h (EIAM accepts 24h..26280h); omit for a secret that never expires.
        #[arg(long)]
        expires_after: Option<String>,
    },
    /// ObtainApplicationClientSecret: one secret, value included (masked unless --show-secret).
    Obtain(SecretArgs),
    /// EnableApplicationClientSecret.
    Enable(SecretArgs),
    /// DisableApplicationClientSecret.
    Disable(SecretArgs),
    /// DeleteApplicationClientSecret.
    Delete(SecretArgs),
    /// UpdateApplicationClientSecretExpirationTime: set the expiry to now + --expires-after.
    UpdateExpiration {
        #[command(flatten)]
        #[allow(missing_docs)]
        secret: SecretArgs,
        /// New lifetime from now as a Go duration, e.g. 720h (EIAM accepts 24h..26280h).
        #[arg(long)]
        expires_after: String,
    },
}

/// Why the CLI stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument is unusable; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// EIAM, the network or the credentials failed (boxed: the error document is large).
    #[error(transparent)]
    Eiam(Box<EiamError>),
}

impl From<EiamError> for CliError {
    fn from(err: EiamError) -> Self {
        CliError::Eiam(Box::new(err))
    }
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Eiam(_) => EXIT_FAILURE,
        }
    }
}

/// Runs one action and prints its result; returns the process exit code.
pub async fn run(args: EiamArgs) -> ExitCode {
    match execute(&args, jiff::Timestamp::now()).await {
        Ok(output) => {
            // serde_json of a Value cannot fail; fall back to the compact form just in case.
            let text = serde_json::to_string_pretty(&output).unwrap_or_else(|_| output.to_string());
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            if let CliError::Eiam(eiam) = &err
                && let EiamError::Api { body, .. } = eiam.as_ref()
            {
                println!("{}", json!({ "Error": body }));
            }
            eprintln!("eiam-operator eiam: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Builds the client from the arguments and the process environment, performs the action and renders it.
async fn execute(args: &EiamArgs, now: jiff::Timestamp) -> Result<Value, CliError> {
    let endpoint = endpoint(args)?;
    let expiration_ms = match &args.action {
        EiamAction::Create { expires_after, .. } => expires_after
            .as_deref()
            .map(|d| expiration_ms(now, d))
            .transpose()?,
        EiamAction::UpdateExpiration { expires_after, .. } => {
            Some(expiration_ms(now, expires_after)?)
        }
        _ => None,
    };
    let credentials = default_chain(ChainConfig::new(process_env()))
        .map_err(|e| CliError::Usage(format!("no usable credentials: {e}")))?;
    let mut config = ClientConfig::new(endpoint, credentials);
    config.signature_version = args.signature_version.into();
    let client = EiamClient::new(config)?;
    let response = call(&client, &args.action, expiration_ms).await?;
    Ok(render(response, args.show_secret))
}

/// `--region` or `--endpoint` as an [`Endpoint`].
fn endpoint(args: &EiamArgs) -> Result<Endpoint, CliError> {
    match (&args.endpoint, &args.region) {
        (Some(endpoint), _) => {
            Endpoint::parse(endpoint).map_err(|e| CliError::Usage(format!("--endpoint: {e}")))
        }
        (None, Some(region)) => {
            Endpoint::from_region(region).map_err(|e| CliError::Usage(format!("--region: {e}")))
        }
        (None, None) => Err(CliError::Usage(
            "set --region (e.g. cn-hangzhou) or --endpoint (or EIAM_REGION / EIAM_ENDPOINT)"
                .to_owned(),
        )),
    }
}

/// `now + expires_after` in UNIX milliseconds, the unit of EIAM's ExpirationTime.
pub fn expiration_ms(now: jiff::Timestamp, expires_after: &str) -> Result<i64, CliError> {
    let lifetime = parse_duration(expires_after)
        .map_err(|e| CliError::Usage(format!("--expires-after: {e}")))?;
    let lifetime_ms = i64::try_from(lifetime.as_millis())
        .map_err(|_| CliError::Usage(format!("--expires-after {expires_after:?} is too large")))?;
    now.as_millisecond()
        .checked_add(lifetime_ms)
        .ok_or_else(|| CliError::Usage(format!("--expires-after {expires_after:?} is too large")))
}

/// The typed response of one action, before rendering.
#[derive(Debug)]
pub enum ActionResponse {
    /// List.
    List(crate::eiam::types::ListSecretsResponse),
    /// Create.
    Create(crate::eiam::types::CreateSecretResponse),
    /// Obtain.
    Obtain(crate::eiam::types::ObtainSecretResponse),
    /// Enable, Disable, Delete, UpdateExpirationTime: only a RequestId; the action and secret are echoed.
    Ack {
        /// The EIAM action name.
        action: &'static str,
        /// The response.
        response: crate::eiam::types::AckResponse,
        /// The secret acted on.
        secret_id: String,
        /// The expiration set, for UpdateExpirationTime.
        expiration_time: Option<i64>,
    },
}

async fn call(
    client: &EiamClient,
    action: &EiamAction,
    expiration_ms: Option<i64>,
) -> Result<ActionResponse, EiamError> {
    use crate::eiam::types::Action;
    let ack = |action: Action, response, s: &SecretArgs, expiration_time| ActionResponse::Ack {
        action: action.name(),
        response,
        secret_id: s.secret_id.clone(),
        expiration_time,
    };
    Ok(match action {
        EiamAction::List(a) => ActionResponse::List(
            client
                .list_secrets(&a.instance_id, &a.application_id)
                .await?,
        ),
        EiamAction::Create { application: a, .. } => ActionResponse::Create(
            client
                .create_secret(&a.instance_id, &a.application_id, expiration_ms)
                .await?,
        ),
        EiamAction::Obtain(s) => {
            let a = &s.application;
            ActionResponse::Obtain(
                client
                    .obtain_secret(&a.instance_id, &a.application_id, &s.secret_id)
                    .await?,
            )
        }
        EiamAction::Enable(s) => {
            let a = &s.application;
            let r = client
                .enable_secret(&a.instance_id, &a.application_id, &s.secret_id)
                .await?;
            ack(Action::Enable, r, s, None)
        }
        EiamAction::Disable(s) => {
            let a = &s.application;
            let r = client
                .disable_secret(&a.instance_id, &a.application_id, &s.secret_id)
                .await?;
            ack(Action::Disable, r, s, None)
        }
        EiamAction::Delete(s) => {
            let a = &s.application;
            let r = client
                .delete_secret(&a.instance_id, &a.application_id, &s.secret_id)
                .await?;
            ack(Action::Delete, r, s, None)
        }
        EiamAction::UpdateExpiration { secret: s, .. } => {
            let a = &s.application;
            let ms = expiration_ms.unwrap_or_default();
            let r = client
                .update_expiration_time(&a.instance_id, &a.application_id, &s.secret_id, ms)
                .await?;
            ack(Action::UpdateExpirationTime, r, s, Some(ms))
        }
    })
}

/// What a masked client secret looks like: the first four and last two characters, as EIAM's List shows them,
/// so the value can be recognised but not used. Short values are masked entirely.
pub fn mask_secret(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 12 {
        return "*****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}*****{tail}")
}

/// Renders a response as EIAM's JSON (PascalCase), masking `ClientSecret` unless `show_secret`.
/// List values are already masked by EIAM and printed as received.
pub fn render(response: ActionResponse, show_secret: bool) -> Value {
    let mask = |value: &mut Value| {
        if show_secret {
            return;
        }
        if let Some(secret) = value
            .get_mut("ApplicationClientSecret")
            .and_then(|s| s.get_mut("ClientSecret"))
        {
            let masked = mask_secret(secret.as_str().unwrap_or_default());
            *secret = Value::String(masked);
        }
    };
    // Serialising these plain data types cannot fail; Null would only hide a bug, never a secret.
    match response {
        ActionResponse::List(r) => serde_json::to_value(r).unwrap_or(Value::Null),
        ActionResponse::Create(r) => {
            let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
            mask(&mut value);
            value
        }
        ActionResponse::Obtain(r) => {
            let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
            mask(&mut value);
            value
        }
        ActionResponse::Ack {
            action,
            response,
            secret_id,
            expiration_time,
        } => {
            let mut value = json!({
                "RequestId": response.request_id,
                "Action": action,
                "SecretId": secret_id,
            });
            if let Some(ms) = expiration_time {
                value["ExpirationTime"] = json!(ms);
            }
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eiam::SecretString;
    use crate::eiam::types::{CreateSecretResponse, CreatedSecret};

    #[test]
    fn masks_created_secret_unless_asked() {
        let response = || {
            ActionResponse::Create(CreateSecretResponse {
                request_id: "req-1".into(),
                application_client_secret: CreatedSecret {
                    client_id: "app_1".into(),
                    secret_id: "sci_1".into(),
                    client_secret: SecretString::new("CSEHDcHcrUKHw1CuxkJEHPveWRXBGqVqRs"),
                },
            })
        };
        let masked = render(response(), false);
        assert_eq!(
            masked["ApplicationClientSecret"]["ClientSecret"],
            "CSEH*****Rs"
        );
        assert_eq!(masked["ApplicationClientSecret"]["SecretId"], "sci_1");
        assert_eq!(masked["RequestId"], "req-1");
        let clear = render(response(), true);
        assert_eq!(
            clear["ApplicationClientSecret"]["ClientSecret"],
            "CSEHDcHcrUKHw1CuxkJEHPveWRXBGqVqRs"
        );
        assert_eq!(mask_secret("short"), "*****");
    }

    #[test]
    fn expiration_is_now_plus_lifetime_in_ms() {
        let now = jiff::Timestamp::from_millisecond(1_700_000_000_000).unwrap();
        assert_eq!(
            expiration_ms(now, "24h").unwrap(),
            1_700_000_000_000 + 86_400_000
        );
        let err = expiration_ms(now, "3d").unwrap_err();
        assert!(err.to_string().contains("--expires-after"), "{err}");
        assert_eq!(err.exit_code(), EXIT_USAGE);
    }
}
