//! The fake cloud's data: instances, applications and their client secrets, with EIAM's rules applied.
//!
//! Pure: no clock, no randomness, no I/O. The caller passes `now_ms` and freshly minted ids/values, so every rule
//! (two secrets per application, ExpirationTime bounds, disable-before-delete) is testable without a server.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::eiam::secret::SecretString;
use crate::eiam::types::SecretStatus;

/// One day in milliseconds: the minimum validity of a client secret.
pub const MIN_VALIDITY_MS: i64 = 24 * 60 * 60 * 1000;
/// Three years (3 × 365 days) in milliseconds: the maximum validity of a client secret (eiam-api.md 9.2).
pub const MAX_VALIDITY_MS: i64 = 1095 * MIN_VALIDITY_MS;

/// Why an operation on the directory was refused. The server maps each to a configurable EIAM error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    /// No instance with this id.
    #[error("The specified instance {0} does not exist.")]
    InstanceNotFound(String),
    /// No application with this id in the instance.
    #[error("The specified application {0} does not exist.")]
    ApplicationNotFound(String),
    /// No secret with this id in the application.
    #[error("The specified application client secret {0} does not exist.")]
    SecretNotFound(String),
    /// The application already holds the maximum number of secrets.
    #[error(
        "The application {application_id} already has {limit} client secrets, the maximum; delete one before creating another."
    )]
    QuotaExceeded {
        /// The application that is full.
        application_id: String,
        /// The per-application limit.
        limit: usize,
    },
    /// ExpirationTime outside `[now + 1 day, now + 3 years]`.
    #[error(
        "The specified ExpirationTime {expiration_ms} is invalid: it must be a UNIX time in milliseconds between {earliest_ms} (now + 1 day) and {latest_ms} (now + 3 years)."
    )]
    ExpirationOutOfRange {
        /// The rejected value.
        expiration_ms: i64,
        /// The earliest accepted value at the time of the request.
        earliest_ms: i64,
        /// The latest accepted value at the time of the request.
        latest_ms: i64,
    },
    /// Delete of an enabled secret while the fake requires Disable first.
    #[error("The application client secret {0} is enabled; disable it before deleting it.")]
    SecretStillEnabled(String),
}

/// Checks EIAM's bounds for `ExpirationTime`: at least one day and at most three years after `now_ms`, inclusive.
pub fn check_expiration(now_ms: i64, expiration_ms: i64) -> Result<(), RuleViolation> {
    let earliest_ms = now_ms.saturating_add(MIN_VALIDITY_MS);
    let latest_ms = now_ms.saturating_add(MAX_VALIDITY_MS);
    if expiration_ms < earliest_ms || expiration_ms > latest_ms {
        return Err(RuleViolation::ExpirationOutOfRange {
            expiration_ms,
            earliest_ms,
            latest_ms,
        });
    }
    Ok(())
}

/// Masks a client secret as List returns it: the first 4 and last 2 characters kept, every other one `*`.
///
/// The rule is inferred from the single documented example (eiam-api.md 2.2 and 9.4). Values too short to hide
/// anything are masked completely.
pub fn mask_client_secret(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let hidden = chars.len() - 6;
    let mut masked: String = chars[..4].iter().collect();
    masked.push_str(&"*".repeat(hidden));
    masked.extend(&chars[chars.len() - 2..]);
    masked
}

/// A client secret as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    /// `sci_...`
    pub secret_id: String,
    /// The value, in clear (the admin state endpoint shows it: the fake's secrets protect nothing).
    pub client_secret: SecretString,
    /// `enabled` or `disabled`.
    pub status: SecretStatus,
    /// UNIX ms; `None` = never expires.
    pub expiration_time: Option<i64>,
    /// UNIX ms of the last (simulated) use.
    pub last_used_time: Option<i64>,
    /// UNIX ms of creation (not part of the EIAM API; shown by the admin state endpoint).
    pub create_time: i64,
    /// Who made it: `api` for the signed API, `admin` for a behind-the-back mutation.
    pub created_by: &'static str,
}

/// An EIAM application: its OAuth client id and its secrets in creation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The OAuth client id; the docs' examples show it equal to the ApplicationId.
    pub client_id: String,
    /// Secrets, oldest first.
    pub secrets: Vec<StoredSecret>,
}

/// An EIAM instance and its applications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Applications by id.
    pub applications: BTreeMap<String, Application>,
}

/// A secret about to be created: its id and value, minted by the caller (the server uses a CSPRNG).
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// `sci_...`
    pub secret_id: String,
    /// The clear value.
    pub client_secret: SecretString,
}

/// Every instance the fake knows, with EIAM's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// Instances by id.
    pub instances: BTreeMap<String, Instance>,
    /// Maximum number of secrets per application (EIAM: 2).
    #[serde(skip)]
    pub max_secrets_per_application: usize,
    /// Whether Delete refuses an enabled secret (unverified in EIAM; off by default).
    #[serde(skip)]
    pub require_disable_before_delete: bool,
}

impl Directory {
    /// An empty directory with EIAM's limit of two secrets per application.
    pub fn new(max_secrets_per_application: usize, require_disable_before_delete: bool) -> Self {
        Self {
            instances: BTreeMap::new(),
            max_secrets_per_application,
            require_disable_before_delete,
        }
    }

    /// Adds an instance if it is missing.
    pub fn ensure_instance(&mut self, instance_id: &str) {
        self.instances.entry(instance_id.to_owned()).or_default();
    }

    /// Adds an application (and its instance) if missing; an existing application keeps its secrets.
    pub fn ensure_application(&mut self, instance_id: &str, application_id: &str, client_id: &str) {
        self.instances
            .entry(instance_id.to_owned())
            .or_default()
            .applications
            .entry(application_id.to_owned())
            .or_insert_with(|| Application {
                client_id: client_id.to_owned(),
                secrets: Vec::new(),
            });
    }

    /// Removes an application with all its secrets. Returns whether it existed.
    pub fn remove_application(&mut self, instance_id: &str, application_id: &str) -> bool {
        self.instances
            .get_mut(instance_id)
            .and_then(|i| i.applications.remove(application_id))
            .is_some()
    }

    /// The application, or the error EIAM gives for a missing instance or application.
    pub fn application(
        &self,
        instance_id: &str,
        application_id: &str,
    ) -> Result<&Application, RuleViolation> {
        self.instances
            .get(instance_id)
            .ok_or_else(|| RuleViolation::InstanceNotFound(instance_id.to_owned()))?
            .applications
            .get(application_id)
            .ok_or_else(|| RuleViolation::ApplicationNotFound(application_id.to_owned()))
    }

    fn application_mut(
        &mut self,
        instance_id: &str,
        application_id: &str,
    ) -> Result<&mut Application, RuleViolation> {
        self.instances
            .get_mut(instance_id)
            .ok_or_else(|| RuleViolation::InstanceNotFound(instance_id.to_owned()))?
            .applications
            .get_mut(application_id)
            .ok_or_else(|| RuleViolation::ApplicationNotFound(application_id.to_owned()))
    }

    /// One secret of an application.
    pub fn secret(
        &self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<&StoredSecret, RuleViolation> {
        self.application(instance_id, application_id)?
            .secrets
            .iter()
            .find(|s| s.secret_id == secret_id)
            .ok_or_else(|| RuleViolation::SecretNotFound(secret_id.to_owned()))
    }

    fn secret_mut(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<&mut StoredSecret, RuleViolation> {
        self.application_mut(instance_id, application_id)?
            .secrets
            .iter_mut()
            .find(|s| s.secret_id == secret_id)
            .ok_or_else(|| RuleViolation::SecretNotFound(secret_id.to_owned()))
    }

    /// `CreateApplicationClientSecret`: checks the quota and, when given, the expiration bounds, then stores an
    /// enabled secret. Returns the application's client id.
    pub fn create_secret(
        &mut self,
        instance_id: &str,
        application_id: &str,
        expiration_ms: Option<i64>,
        now_ms: i64,
        minted: NewSecret,
    ) -> Result<String, RuleViolation> {
        let limit = self.max_secrets_per_application;
        let app = self.application_mut(instance_id, application_id)?;
        if app.secrets.len() >= limit {
            return Err(RuleViolation::QuotaExceeded {
                application_id: application_id.to_owned(),
                limit,
            });
        }
        if let Some(expiration_ms) = expiration_ms {
            check_expiration(now_ms, expiration_ms)?;
        }
        app.secrets.push(StoredSecret {
            secret_id: minted.secret_id,
            client_secret: minted.client_secret,
            status: SecretStatus::Enabled,
            expiration_time: expiration_ms,
            last_used_time: None,
            create_time: now_ms,
            created_by: "api",
        });
        Ok(app.client_id.clone())
    }

    /// A secret made behind the operator's back (console, another tool): same quota, no expiration bounds so
    /// tests can build nearly expired secrets.
    pub fn insert_secret_unchecked(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret: StoredSecret,
    ) -> Result<(), RuleViolation> {
        let limit = self.max_secrets_per_application;
        let app = self.application_mut(instance_id, application_id)?;
        if app.secrets.len() >= limit {
            return Err(RuleViolation::QuotaExceeded {
                application_id: application_id.to_owned(),
                limit,
            });
        }
        app.secrets.push(secret);
        Ok(())
    }

    /// `EnableApplicationClientSecret` / `DisableApplicationClientSecret`. Idempotent, as a toggle to the state
    /// the caller asked for.
    pub fn set_status(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        status: SecretStatus,
    ) -> Result<(), RuleViolation> {
        self.secret_mut(instance_id, application_id, secret_id)?
            .status = status;
        Ok(())
    }

    /// `DeleteApplicationClientSecret`, refusing an enabled secret when Disable-before-Delete is required.
    pub fn delete_secret(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<StoredSecret, RuleViolation> {
        self.delete_secret_inner(instance_id, application_id, secret_id, true)
    }

    /// Deletes a secret without the Disable-first rule (a behind-the-back deletion).
    pub fn delete_secret_unchecked(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
    ) -> Result<StoredSecret, RuleViolation> {
        self.delete_secret_inner(instance_id, application_id, secret_id, false)
    }

    fn delete_secret_inner(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        enforce_disable_first: bool,
    ) -> Result<StoredSecret, RuleViolation> {
        let require_disabled = enforce_disable_first && self.require_disable_before_delete;
        let app = self.application_mut(instance_id, application_id)?;
        let index = app
            .secrets
            .iter()
            .position(|s| s.secret_id == secret_id)
            .ok_or_else(|| RuleViolation::SecretNotFound(secret_id.to_owned()))?;
        if require_disabled && app.secrets[index].status == SecretStatus::Enabled {
            return Err(RuleViolation::SecretStillEnabled(secret_id.to_owned()));
        }
        Ok(app.secrets.remove(index))
    }

    /// `UpdateApplicationClientSecretExpirationTime`, with the same bounds as Create.
    pub fn update_expiration(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        expiration_ms: i64,
        now_ms: i64,
    ) -> Result<(), RuleViolation> {
        // Existence first: a missing secret is reported as missing whatever the value.
        self.secret(instance_id, application_id, secret_id)?;
        check_expiration(now_ms, expiration_ms)?;
        self.secret_mut(instance_id, application_id, secret_id)?
            .expiration_time = Some(expiration_ms);
        Ok(())
    }

    /// Records a (simulated) use of the secret by an OAuth client: sets `LastUsedTime`.
    pub fn mark_used(
        &mut self,
        instance_id: &str,
        application_id: &str,
        secret_id: &str,
        now_ms: i64,
    ) -> Result<(), RuleViolation> {
        self.secret_mut(instance_id, application_id, secret_id)?
            .last_used_time = Some(now_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_760_000_000_000;
    const MINUTE: i64 = 60_000;

    fn directory() -> Directory {
        let mut d = Directory::new(2, false);
        d.ensure_application("idaas_1", "app_1", "app_1");
        d
    }

    fn minted(n: u32) -> NewSecret {
        NewSecret {
            secret_id: format!("sci_{n}"),
            client_secret: SecretString::new(format!("CS{n:040}")),
        }
    }

    #[test]
    fn third_secret_exceeds_the_quota() {
        let mut d = directory();
        d.create_secret("idaas_1", "app_1", None, NOW, minted(1))
            .unwrap();
        d.create_secret("idaas_1", "app_1", None, NOW, minted(2))
            .unwrap();
        let err = d
            .create_secret("idaas_1", "app_1", None, NOW, minted(3))
            .unwrap_err();
        assert!(matches!(err, RuleViolation::QuotaExceeded { limit: 2, .. }));
        // Deleting one frees the slot.
        d.delete_secret("idaas_1", "app_1", "sci_1").unwrap();
        d.create_secret("idaas_1", "app_1", None, NOW, minted(3))
            .unwrap();
    }

    #[test]
    fn expiration_bounds_are_one_day_to_three_years_inclusive() {
        assert!(check_expiration(NOW, NOW + 23 * 60 * MINUTE).is_err());
        assert!(check_expiration(NOW, NOW + MIN_VALIDITY_MS - 1).is_err());
        assert!(check_expiration(NOW, NOW + MIN_VALIDITY_MS).is_ok());
        assert!(check_expiration(NOW, NOW + MIN_VALIDITY_MS + MINUTE).is_ok());
        assert!(check_expiration(NOW, NOW + MAX_VALIDITY_MS - MINUTE).is_ok());
        assert!(check_expiration(NOW, NOW + MAX_VALIDITY_MS).is_ok());
        assert!(check_expiration(NOW, NOW + MAX_VALIDITY_MS + 1).is_err());
        assert!(check_expiration(NOW, NOW + MAX_VALIDITY_MS + MIN_VALIDITY_MS).is_err());
        assert!(check_expiration(NOW, 0).is_err());
        assert!(check_expiration(NOW, -1).is_err());
    }

    #[test]
    fn mask_keeps_first_four_and_last_two() {
        assert_eq!(mask_client_secret("eyJhABCDEFGOQ"), "eyJh*******OQ");
        assert_eq!(mask_client_secret("abcdefg"), "abcd*fg");
        assert_eq!(mask_client_secret("abcdef"), "******");
        assert_eq!(mask_client_secret(""), "");
    }

    #[test]
    fn unknown_ids_name_what_is_missing() {
        let mut d = directory();
        assert_eq!(
            d.application("idaas_x", "app_1").unwrap_err(),
            RuleViolation::InstanceNotFound("idaas_x".into())
        );
        assert_eq!(
            d.application("idaas_1", "app_x").unwrap_err(),
            RuleViolation::ApplicationNotFound("app_x".into())
        );
        assert_eq!(
            d.set_status("idaas_1", "app_1", "sci_x", SecretStatus::Disabled)
                .unwrap_err(),
            RuleViolation::SecretNotFound("sci_x".into())
        );
    }

    #[test]
    fn disable_before_delete_when_required() {
        let mut d = Directory::new(2, true);
        d.ensure_application("idaas_1", "app_1", "app_1");
        d.create_secret("idaas_1", "app_1", None, NOW, minted(1))
            .unwrap();
        assert_eq!(
            d.delete_secret("idaas_1", "app_1", "sci_1").unwrap_err(),
            RuleViolation::SecretStillEnabled("sci_1".into())
        );
        d.set_status("idaas_1", "app_1", "sci_1", SecretStatus::Disabled)
            .unwrap();
        d.delete_secret("idaas_1", "app_1", "sci_1").unwrap();
        assert!(
            d.application("idaas_1", "app_1")
                .unwrap()
                .secrets
                .is_empty()
        );
    }

    #[test]
    fn update_expiration_checks_existence_then_bounds() {
        let mut d = directory();
        d.create_secret("idaas_1", "app_1", None, NOW, minted(1))
            .unwrap();
        assert!(matches!(
            d.update_expiration("idaas_1", "app_1", "sci_x", 0, NOW),
            Err(RuleViolation::SecretNotFound(_))
        ));
        assert!(matches!(
            d.update_expiration("idaas_1", "app_1", "sci_1", NOW, NOW),
            Err(RuleViolation::ExpirationOutOfRange { .. })
        ));
        d.update_expiration("idaas_1", "app_1", "sci_1", NOW + 2 * MIN_VALIDITY_MS, NOW)
            .unwrap();
        assert_eq!(
            d.secret("idaas_1", "app_1", "sci_1")
                .unwrap()
                .expiration_time,
            Some(NOW + 2 * MIN_VALIDITY_MS)
        );
    }
}
