//! Wire types of the EIAM client-secret actions (eiam-api.md section 2), shared by the client and the fake EIAM.
//!
//! Every type serialises with the PascalCase keys EIAM uses. Client secret values are `SecretString`, so they
//! never show up in `Debug` output; List returns them masked, Create and Obtain in clear.

use serde::{Deserialize, Serialize};

use super::secret::SecretString;

/// EIAM OpenAPI version of every client-secret action.
pub const API_VERSION: &str = "2021-12-01";

/// The seven client-secret actions the operator and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `CreateApplicationClientSecret`
    Create,
    /// `ListApplicationClientSecrets`
    List,
    /// `ObtainApplicationClientSecret`
    Obtain,
    /// `EnableApplicationClientSecret`
    Enable,
    /// `DisableApplicationClientSecret`
    Disable,
    /// `DeleteApplicationClientSecret`
    Delete,
    /// `UpdateApplicationClientSecretExpirationTime`
    UpdateExpirationTime,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 7] = [
        Action::Create,
        Action::List,
        Action::Obtain,
        Action::Enable,
        Action::Disable,
        Action::Delete,
        Action::UpdateExpirationTime,
    ];

    /// The API name sent as `Action` (V1) or `x-acs-action` (V3).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "CreateApplicationClientSecret",
            Action::List => "ListApplicationClientSecrets",
            Action::Obtain => "ObtainApplicationClientSecret",
            Action::Enable => "EnableApplicationClientSecret",
            Action::Disable => "DisableApplicationClientSecret",
            Action::Delete => "DeleteApplicationClientSecret",
            Action::UpdateExpirationTime => "UpdateApplicationClientSecretExpirationTime",
        }
    }

    /// Whether the action changes state in EIAM (everything but List and Obtain).
    pub fn is_mutation(self) -> bool {
        !matches!(self, Action::List | Action::Obtain)
    }

    /// The action with this API name, if it is one of the seven.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a client secret can be used to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretStatus {
    /// `enabled`
    Enabled,
    /// `disabled`
    Disabled,
}

/// The `ApplicationClientSecret` object of a Create response: the only place besides Obtain where the secret is
/// in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedSecret {
    /// The application's OAuth client id.
    pub client_id: String,
    /// The new secret's id, e.g. `sci_k52x2ru63rlkflina5utgkxxxx`.
    pub secret_id: String,
    /// The secret value, in clear.
    pub client_secret: SecretString,
}

/// Response of `CreateApplicationClientSecret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretResponse {
    /// EIAM's request id.
    pub request_id: String,
    /// The created secret.
    pub application_client_secret: CreatedSecret,
}

/// One client secret as List (masked value) or Obtain (clear value) describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedSecret {
    /// EIAM instance id.
    #[serde(default)]
    pub instance_id: String,
    /// Application id.
    #[serde(default)]
    pub application_id: String,
    /// The application's OAuth client id.
    #[serde(default)]
    pub client_id: String,
    /// The secret's id.
    pub secret_id: String,
    /// The value: masked in List (`eyJh*****OQ`), clear in Obtain.
    #[serde(default)]
    pub client_secret: SecretString,
    /// `enabled` or `disabled`.
    pub status: SecretStatus,
    /// UNIX ms. Absent, `0` or far future for a permanent secret (eiam-api.md section 9.3); see
    /// [`ListedSecret::expires_at_ms`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<i64>,
    /// UNIX ms of the last use, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_time: Option<i64>,
}

impl ListedSecret {
    /// When the secret expires, in UNIX ms; `None` for a secret that never expires (absent or `0`/negative).
    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expiration_time.filter(|&t| t > 0)
    }

    /// Whether EIAM reports the secret as enabled.
    pub fn is_enabled(&self) -> bool {
        self.status == SecretStatus::Enabled
    }
}

/// Obtain returns the same fields as a List item, with the value in clear.
pub type ObtainedSecret = ListedSecret;

/// Response of `ListApplicationClientSecrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsResponse {
    /// EIAM's request id.
    pub request_id: String,
    /// Number of secrets.
    #[serde(default)]
    pub total_count: i64,
    /// The secrets, values masked.
    #[serde(default)]
    pub application_client_secrets: Vec<ListedSecret>,
}

/// Response of `ObtainApplicationClientSecret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObtainSecretResponse {
    /// EIAM's request id.
    pub request_id: String,
    /// The secret, value in clear.
    pub application_client_secret: ObtainedSecret,
}

/// Response of Enable, Disable, Delete and UpdateExpirationTime: only the request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AckResponse {
    /// EIAM's request id.
    pub request_id: String,
}

/// A decoded EIAM success response: every one carries the `RequestId` to log.
pub trait EiamResponse {
    /// EIAM's request id.
    fn request_id(&self) -> &str;
}

macro_rules! impl_eiam_response {
    ($($t:ty),*) => {$(
        impl EiamResponse for $t {
            fn request_id(&self) -> &str {
                &self.request_id
            }
        }
    )*};
}

impl_eiam_response!(
    CreateSecretResponse,
    ListSecretsResponse,
    ObtainSecretResponse,
    AckResponse
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_response_decodes_the_documented_example() {
        let r: CreateSecretResponse = serde_json::from_str(
            r#"{"RequestId":"0441BD79","ApplicationClientSecret":{"ClientId":"app_1","SecretId":"sci_1","ClientSecret":"CSEHD"}}"#,
        )
        .unwrap();
        assert_eq!(r.request_id, "0441BD79");
        assert_eq!(r.application_client_secret.secret_id, "sci_1");
        assert_eq!(r.application_client_secret.client_secret.expose(), "CSEHD");
        assert!(!format!("{r:?}").contains("CSEHD"));
    }

    #[test]
    fn list_response_decodes_the_documented_example() {
        let r: ListSecretsResponse = serde_json::from_str(
            r#"{"RequestId":"r","TotalCount":1,"ApplicationClientSecrets":[{"InstanceId":"idaas_1","ApplicationId":"app_1",
                "ClientId":"app_1","SecretId":"sci_1","ClientSecret":"eyJh*****OQ","Status":"enabled",
                "ExpirationTime":1735530123762,"LastUsedTime":1735530123762}]}"#,
        )
        .unwrap();
        let s = &r.application_client_secrets[0];
        assert_eq!(r.total_count, 1);
        assert!(s.is_enabled());
        assert_eq!(s.expires_at_ms(), Some(1735530123762));
        assert_eq!(s.client_secret.expose(), "eyJh*****OQ");
    }

    #[test]
    fn permanent_secret_expiration_forms() {
        for json in [
            r#"{"SecretId":"s","Status":"disabled"}"#,
            r#"{"SecretId":"s","Status":"disabled","ExpirationTime":0}"#,
        ] {
            let s: ListedSecret = serde_json::from_str(json).unwrap();
            assert_eq!(s.expires_at_ms(), None, "{json}");
            assert!(!s.is_enabled());
        }
    }

    #[test]
    fn serialises_pascal_case() {
        let r = AckResponse {
            request_id: "r".into(),
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"RequestId":"r"}"#);
    }

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_name("RunInstances"), None);
    }
}
