//! The refresh rule shared by the temporary-credential providers (RRSA and the ECS RAM role).
//!
//! Credentials are reused until 15 minutes before they expire (Alibaba's own rule), then refreshed by one caller
//! while the others wait. If a refresh fails while the old credentials have not actually expired yet, the old ones
//! are served (and the failure logged), so a short STS or metadata outage does not stop the operator.

use std::future::Future;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use super::{CredentialError, Credentials};
use crate::eiam::clock::Clock;

/// Refresh this long before `Expiration`.
pub const REFRESH_BEFORE_EXPIRY: SignedDuration = SignedDuration::from_mins(15);

#[derive(Debug, Clone)]
struct Cached {
    credentials: Credentials,
    expiration: Timestamp,
    /// When to fetch new ones: `expiration - 15 min`, but never before half the lifetime has passed, so that
    /// credentials that live 15 minutes or less are not fetched again on every call.
    stale_at: Timestamp,
}

/// Cached temporary credentials with single-flight refresh.
#[derive(Debug)]
pub(crate) struct RefreshCache {
    cached: Mutex<Option<Cached>>,
    refresh: tokio::sync::Mutex<()>,
    clock: Arc<dyn Clock>,
    provider: &'static str,
}

impl RefreshCache {
    pub(crate) fn new(clock: Arc<dyn Clock>, provider: &'static str) -> Self {
        Self {
            cached: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            clock,
            provider,
        }
    }

    fn snapshot(&self) -> Option<Cached> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn fresh(&self, now: Timestamp) -> Option<Credentials> {
        self.snapshot()
            .filter(|c| now < c.stale_at)
            .map(|c| c.credentials)
    }

    /// The cached credentials if they are not stale; otherwise the result of `fetch` (credentials and their
    /// expiration), falling back to the old ones if `fetch` fails before they expire.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Credentials, CredentialError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Credentials, Timestamp), CredentialError>>,
    {
        if let Some(credentials) = self.fresh(self.clock.now()) {
            return Ok(credentials);
        }
        let _single_flight = self.refresh.lock().await;
        // Someone else may have refreshed while we waited.
        if let Some(credentials) = self.fresh(self.clock.now()) {
            return Ok(credentials);
        }
        let fetched_at = self.clock.now();
        let fetched = fetch().await;
        if let Some(observer) = crate::eiam::observe::observer() {
            observer.credentials_refreshed(self.provider, fetched.is_ok());
        }
        match fetched {
            Ok((credentials, expiration)) => {
                let half_life = fetched_at + (expiration.duration_since(fetched_at) / 2);
                let stale_at = (expiration - REFRESH_BEFORE_EXPIRY).max(half_life);
                tracing::info!(
                    provider = self.provider,
                    access_key_id = %credentials.access_key_id,
                    expiration = %expiration,
                    "fetched temporary credentials"
                );
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
                    credentials: credentials.clone(),
                    expiration,
                    stale_at,
                });
                Ok(credentials)
            }
            Err(error) => match self.snapshot().filter(|c| self.clock.now() < c.expiration) {
                Some(old) => {
                    tracing::warn!(
                        provider = self.provider,
                        error = %error,
                        expiration = %old.expiration,
                        "refreshing temporary credentials failed; using the current ones until they expire"
                    );
                    Ok(old.credentials)
                }
                None => Err(error),
            },
        }
    }

    /// Forgets the cached credentials.
    pub(crate) fn invalidate(&self) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::eiam::clock::FixedClock;
    use crate::eiam::secret::SecretString;

    fn creds(n: usize) -> Credentials {
        Credentials {
            access_key_id: format!("STS.{n}"),
            access_key_secret: SecretString::new("s"),
            security_token: Some(SecretString::new("t")),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn reuses_until_fifteen_minutes_before_expiry_then_refreshes() {
        let clock = Arc::new(FixedClock::new(at("2024-01-01T00:00:00Z")));
        let cache = RefreshCache::new(clock.clone(), "test");
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok((creds(n), at("2024-01-01T01:00:00Z")))
        };
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.0");
        clock.set(at("2024-01-01T00:44:59Z"));
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.0");
        clock.set(at("2024-01-01T00:45:00Z"));
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.1");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_credentials_are_kept_for_half_their_life() {
        let clock = Arc::new(FixedClock::new(at("2024-01-01T00:00:00Z")));
        let cache = RefreshCache::new(clock.clone(), "test");
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok((creds(n), clock.now() + SignedDuration::from_mins(10)))
        };
        cache.get(fetch).await.unwrap();
        clock.set(at("2024-01-01T00:04:59Z"));
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.0");
        clock.set(at("2024-01-01T00:05:00Z"));
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.1");
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_unexpired_credentials_but_not_expired_ones() {
        let clock = Arc::new(FixedClock::new(at("2024-01-01T00:00:00Z")));
        let cache = RefreshCache::new(clock.clone(), "test");
        cache
            .get(|| async { Ok((creds(0), at("2024-01-01T01:00:00Z"))) })
            .await
            .unwrap();
        let failing = || async {
            Err(CredentialError::Invalid {
                field: "x".into(),
                reason: "down".into(),
            })
        };
        clock.set(at("2024-01-01T00:50:00Z"));
        assert_eq!(cache.get(failing).await.unwrap().access_key_id, "STS.0");
        clock.set(at("2024-01-01T01:00:00Z"));
        assert!(cache.get(failing).await.is_err());
    }

    #[tokio::test]
    async fn invalidate_forces_a_fetch() {
        let clock = Arc::new(FixedClock::new(at("2024-01-01T00:00:00Z")));
        let cache = RefreshCache::new(clock, "test");
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            Ok((creds(n), at("2024-01-01T01:00:00Z")))
        };
        cache.get(fetch).await.unwrap();
        cache.invalidate();
        assert_eq!(cache.get(fetch).await.unwrap().access_key_id, "STS.1");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let clock = Arc::new(FixedClock::new(at("2024-01-01T00:00:00Z")));
        let cache = RefreshCache::new(clock, "test");
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok((creds(n), at("2024-01-01T01:00:00Z")))
        };
        let results = futures::future::join_all((0..8).map(|_| cache.get(fetch))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap().access_key_id == "STS.0")
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
