//! The seven client-secret actions: required parameters, EIAM's rules via the directory, and the documented
//! response shapes (eiam-api.md section 2).

use std::collections::BTreeMap;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::config::{ErrorCodes, NeverExpiresAs};
use super::directory::{Directory, NewSecret, RuleViolation, StoredSecret, mask_client_secret};
use super::wire::ApiError;
use crate::eiam::secret::SecretString;
use crate::eiam::types::{Action, SecretStatus};

/// Everything an action needs besides its parameters.
pub struct ActionContext<'a> {
    /// The fake cloud's data.
    pub directory: &'a mut Directory,
    /// Codes for rule violations.
    pub codes: &'a ErrorCodes,
    /// How a permanent secret's ExpirationTime is shown.
    pub never_expires_as: NeverExpiresAs,
    /// Server time, UNIX ms.
    pub now_ms: i64,
}

/// A new secret id and value from the thread-local CSPRNG: `sci_` + 26 lowercase alphanumerics, and `CS` + 40
/// alphanumerics (~238 bits).
pub fn mint_secret() -> NewSecret {
    let mut rng = rand::rng();
    let id: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(26)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect();
    let value: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    NewSecret {
        secret_id: format!("sci_{id}"),
        client_secret: SecretString::new(format!("CS{value}")),
    }
}

/// Maps a rule violation to its configured code and status.
pub fn violation_error(codes: &ErrorCodes, violation: &RuleViolation) -> ApiError {
    let code = match violation {
        RuleViolation::InstanceNotFound(_) => &codes.instance_not_found,
        RuleViolation::ApplicationNotFound(_) => &codes.application_not_found,
        RuleViolation::SecretNotFound(_) => &codes.secret_not_found,
        RuleViolation::QuotaExceeded { .. } => &codes.quota_exceeded,
        RuleViolation::ExpirationOutOfRange { .. } => &codes.invalid_expiration_time,
        RuleViolation::SecretStillEnabled(_) => &codes.secret_still_enabled,
    };
    ApiError::new(code.code.clone(), code.status, violation.to_string())
}

struct Params<'a>(&'a BTreeMap<String, String>);

impl Params<'_> {
    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::missing(name))
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

fn parse_expiration(codes: &ErrorCodes, value: &str) -> Result<i64, ApiError> {
    value.parse::<i64>().map_err(|_| {
        ApiError::new(
            codes.invalid_expiration_time.code.clone(),
            codes.invalid_expiration_time.status,
            format!("The specified ExpirationTime {value:?} is invalid: it must be a UNIX time in milliseconds."),
        )
    })
}

/// Performs an authenticated action; returns the response fields besides `RequestId`.
pub fn perform(
    ctx: &mut ActionContext<'_>,
    action: Action,
    params: &BTreeMap<String, String>,
    mint: impl FnOnce() -> NewSecret,
) -> Result<Value, ApiError> {
    let p = Params(params);
    let codes = ctx.codes;
    let rule = |v: RuleViolation| violation_error(codes, &v);
    let instance_id = p.required("InstanceId")?;
    let application_id = p.required("ApplicationId")?;
    match action {
        Action::Create => {
            let expiration = p
                .optional("ExpirationTime")
                .map(|v| parse_expiration(codes, v))
                .transpose()?;
            let minted = mint();
            let secret_id = minted.secret_id.clone();
            let client_secret = minted.client_secret.expose().to_owned();
            let client_id = ctx
                .directory
                .create_secret(instance_id, application_id, expiration, ctx.now_ms, minted)
                .map_err(rule)?;
            Ok(json!({
                "ApplicationClientSecret": {
                    "ClientId": client_id,
                    "SecretId": secret_id,
                    "ClientSecret": client_secret,
                }
            }))
        }
        Action::List => {
            let app = ctx
                .directory
                .application(instance_id, application_id)
                .map_err(rule)?;
            let items: Vec<Value> = app
                .secrets
                .iter()
                .map(|s| {
                    describe(
                        instance_id,
                        application_id,
                        &app.client_id,
                        s,
                        mask_client_secret(s.client_secret.expose()),
                        ctx.never_expires_as,
                    )
                })
                .collect();
            Ok(json!({"TotalCount": items.len(), "ApplicationClientSecrets": items}))
        }
        Action::Obtain => {
            let secret_id = p.required("SecretId")?;
            let app = ctx
                .directory
                .application(instance_id, application_id)
                .map_err(rule)?;
            let secret = ctx
                .directory
                .secret(instance_id, application_id, secret_id)
                .map_err(rule)?;
            let item = describe(
                instance_id,
                application_id,
                &app.client_id,
                secret,
                secret.client_secret.expose().to_owned(),
                ctx.never_expires_as,
            );
            Ok(json!({ "ApplicationClientSecret": item }))
        }
        Action::Enable | Action::Disable => {
            let secret_id = p.required("SecretId")?;
            let status = if action == Action::Enable {
                SecretStatus::Enabled
            } else {
                SecretStatus::Disabled
            };
            ctx.directory
                .set_status(instance_id, application_id, secret_id, status)
                .map_err(rule)?;
            Ok(json!({}))
        }
        Action::Delete => {
            let secret_id = p.required("SecretId")?;
            ctx.directory
                .delete_secret(instance_id, application_id, secret_id)
                .map_err(rule)?;
            Ok(json!({}))
        }
        Action::UpdateExpirationTime => {
            let secret_id = p.required("SecretId")?;
            let expiration = parse_expiration(codes, p.required("ExpirationTime")?)?;
            ctx.directory
                .update_expiration(
                    instance_id,
                    application_id,
                    secret_id,
                    expiration,
                    ctx.now_ms,
                )
                .map_err(rule)?;
            Ok(json!({}))
        }
    }
}

/// A List item / Obtain object.
fn describe(
    instance_id: &str,
    application_id: &str,
    client_id: &str,
    secret: &StoredSecret,
    shown_value: String,
    never_expires_as: NeverExpiresAs,
) -> Value {
    let mut item = json!({
        "InstanceId": instance_id,
        "ApplicationId": application_id,
        "ClientId": client_id,
        "SecretId": secret.secret_id,
        "ClientSecret": shown_value,
        "Status": match secret.status {
            SecretStatus::Enabled => "enabled",
            SecretStatus::Disabled => "disabled",
        },
    });
    if let Some(ms) = never_expires_as.render(secret.expiration_time) {
        item["ExpirationTime"] = json!(ms);
    }
    if let Some(ms) = secret.last_used_time {
        item["LastUsedTime"] = json!(ms);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000_000;
    const DAY: i64 = 86_400_000;

    fn run(
        directory: &mut Directory,
        action: Action,
        params: &[(&str, &str)],
        never: NeverExpiresAs,
    ) -> Result<Value, ApiError> {
        let codes = ErrorCodes::default();
        let mut ctx = ActionContext {
            directory,
            codes: &codes,
            never_expires_as: never,
            now_ms: NOW,
        };
        let params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        perform(&mut ctx, action, &params, mint_secret)
    }

    fn directory() -> Directory {
        let mut d = Directory::new(2, false);
        d.ensure_application("idaas_1", "app_1", "app_1");
        d
    }

    const APP: [(&str, &str); 2] = [("InstanceId", "idaas_1"), ("ApplicationId", "app_1")];

    #[test]
    fn minted_secrets_have_the_documented_shapes() {
        let a = mint_secret();
        let b = mint_secret();
        assert!(a.secret_id.starts_with("sci_") && a.secret_id.len() == 30);
        assert!(a.client_secret.expose().len() >= 40);
        assert_ne!(a.client_secret, b.client_secret);
        assert_ne!(a.secret_id, b.secret_id);
    }

    #[test]
    fn create_answers_exactly_the_documented_fields() {
        let mut d = directory();
        let v = run(&mut d, Action::Create, &APP, NeverExpiresAs::Omit).unwrap();
        let secret = v["ApplicationClientSecret"].as_object().unwrap();
        let mut keys: Vec<_> = secret.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["ClientId", "ClientSecret", "SecretId"]);
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(secret["ClientId"], "app_1");
    }

    #[test]
    fn list_masks_and_obtain_shows_clear() {
        let mut d = directory();
        let exp = (NOW + 2 * DAY).to_string();
        let mut create = APP.to_vec();
        create.push(("ExpirationTime", &exp));
        let created = run(&mut d, Action::Create, &create, NeverExpiresAs::Omit).unwrap();
        let clear = created["ApplicationClientSecret"]["ClientSecret"]
            .as_str()
            .unwrap()
            .to_owned();
        let id = created["ApplicationClientSecret"]["SecretId"]
            .as_str()
            .unwrap()
            .to_owned();

        let listed = run(&mut d, Action::List, &APP, NeverExpiresAs::Omit).unwrap();
        assert_eq!(listed["TotalCount"], 1);
        let item = &listed["ApplicationClientSecrets"][0];
        assert_eq!(item["ClientSecret"], mask_client_secret(&clear));
        assert_ne!(item["ClientSecret"], clear.as_str());
        assert_eq!(item["Status"], "enabled");
        assert_eq!(item["ExpirationTime"], NOW + 2 * DAY);

        let mut obtain = APP.to_vec();
        obtain.push(("SecretId", &id));
        let obtained = run(&mut d, Action::Obtain, &obtain, NeverExpiresAs::Omit).unwrap();
        assert_eq!(
            obtained["ApplicationClientSecret"]["ClientSecret"],
            clear.as_str()
        );
        assert_eq!(obtained["ApplicationClientSecret"]["InstanceId"], "idaas_1");
    }

    #[test]
    fn never_expiring_secret_rendering_is_configurable() {
        for (mode, expected) in [
            (NeverExpiresAs::Omit, Value::Null),
            (NeverExpiresAs::Zero, json!(0)),
            (
                NeverExpiresAs::FarFuture,
                json!(NeverExpiresAs::FAR_FUTURE_MS),
            ),
        ] {
            let mut d = directory();
            run(&mut d, Action::Create, &APP, mode).unwrap();
            let listed = run(&mut d, Action::List, &APP, mode).unwrap();
            assert_eq!(
                listed["ApplicationClientSecrets"][0]["ExpirationTime"], expected,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn missing_parameters_are_named() {
        let mut d = directory();
        let err = run(
            &mut d,
            Action::List,
            &[("ApplicationId", "app_1")],
            NeverExpiresAs::Omit,
        )
        .unwrap_err();
        assert_eq!(err.code, "MissingInstanceId");
        let err = run(&mut d, Action::Obtain, &APP, NeverExpiresAs::Omit).unwrap_err();
        assert_eq!(err.code, "MissingSecretId");
        let mut update = APP.to_vec();
        update.push(("SecretId", "sci_x"));
        let err = run(
            &mut d,
            Action::UpdateExpirationTime,
            &update,
            NeverExpiresAs::Omit,
        )
        .unwrap_err();
        assert_eq!(err.code, "MissingExpirationTime");
    }

    #[test]
    fn bad_expiration_values_use_the_expiration_code() {
        let mut d = directory();
        let mut create = APP.to_vec();
        create.push(("ExpirationTime", "tomorrow"));
        let err = run(&mut d, Action::Create, &create, NeverExpiresAs::Omit).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.status),
            ("InvalidParameter.ExpirationTime", 400)
        );
    }

    #[test]
    fn enable_disable_toggle_status() {
        let mut d = directory();
        let created = run(&mut d, Action::Create, &APP, NeverExpiresAs::Omit).unwrap();
        let id = created["ApplicationClientSecret"]["SecretId"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut with_id = APP.to_vec();
        with_id.push(("SecretId", &id));
        run(&mut d, Action::Disable, &with_id, NeverExpiresAs::Omit).unwrap();
        let listed = run(&mut d, Action::List, &APP, NeverExpiresAs::Omit).unwrap();
        assert_eq!(listed["ApplicationClientSecrets"][0]["Status"], "disabled");
        run(&mut d, Action::Enable, &with_id, NeverExpiresAs::Omit).unwrap();
        let listed = run(&mut d, Action::List, &APP, NeverExpiresAs::Omit).unwrap();
        assert_eq!(listed["ApplicationClientSecrets"][0]["Status"], "enabled");
        run(&mut d, Action::Delete, &with_id, NeverExpiresAs::Omit).unwrap();
        let err = run(&mut d, Action::Delete, &with_id, NeverExpiresAs::Omit).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.status),
            ("EntityNotExists.ApplicationClientSecret", 404)
        );
    }
}
