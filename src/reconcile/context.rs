//! What every reconcile shares: the clients, caches and indexes the controller builds once, and what this process
//! remembers about each resource between reconciles.

use super::executor::events::EventPublisher;
use super::executor::restart::RestartPermissions;
use super::provider::{ProviderCache, TenancyPolicy};
use super::watch::claims::Claims;
use super::watch::drift::DriftSchedule;
use super::watch::secret_versions::SecretVersions;
use crate::api::ApplicationClientSecret;
use crate::fence::LeaderToken;
use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared state of all reconciles.
pub struct Context {
    pub kube: Client,
    pub events: EventPublisher,
    pub providers: ProviderCache,
    pub tenancy: TenancyPolicy,
    /// What the operator may patch to roll restart targets, asked of the API server and remembered.
    pub restart_permissions: RestartPermissions,
    pub resync_interval: Duration,
    /// Every resource the controller knows.
    pub store: Store<ApplicationClientSecret>,
    /// The resources of each application, for the one-resource-per-application rule.
    pub claims: Arc<Claims>,
    /// When each resource's periodic drift check (one List) is due: phased by uid, so a restart checks nothing
    /// that is not due.
    pub drift: DriftSchedule<ObjectRef<ApplicationClientSecret>>,
    /// The resources this process has written (finalizer, status), with the version its last write returned, until
    /// the cache shows that version: only their cached copy can lag behind what this process knows, so only they are
    /// read fresh before a reconcile acts.
    pub written: Written,
    /// Consecutive transient failures per resource (drives the backoff).
    pub failures: Mutex<HashMap<ObjectRef<ApplicationClientSecret>, u32>>,
    /// The process's Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The Secret versions this process wrote, so their own watch events do not wake their owner again.
    pub own_writes: OwnWrites,
    /// Every published Secret's current version, from the watch: a Secret still at the version its owner's status
    /// recorded is not read again.
    pub secret_versions: SecretVersions,
    /// Every other Secret's version, from the same watch (the providers' credentials waiters keep it): with
    /// `secret_versions`, whether any Secret of a name exists at all, so a new resource's Secret is not read to
    /// learn that there is none.
    pub other_secret_versions: Arc<SecretVersions>,
    /// Whether this process still leads: checked immediately before every EIAM mutation and every write to a
    /// resource, Secret or workload (see [`crate::fence`]).
    pub token: LeaderToken,
}

impl Context {
    /// Drops what the process remembers about a resource that is gone (its drift schedule and failure count), so
    /// memory does not grow with churn. Called when the watch reports the deletion (finalizer or not) and when a
    /// reconcile finds it gone.
    pub fn forget(&self, key: &ObjectRef<ApplicationClientSecret>) {
        self.drift.forget(key);
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
        self.written.forget(key);
    }

    /// Drops what the process remembers about every resource the store no longer holds: after a relist, a
    /// resource deleted while the watch was down comes as no deletion event.
    pub fn forget_missing(&self) {
        let exists = |key: &ObjectRef<ApplicationClientSecret>| self.store.get(key).is_some();
        self.drift.retain(exists);
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|key, _| exists(key));
        }
        if let Ok(mut written) = self.written.0.lock() {
            written.retain(|key, _| exists(key));
        }
        self.providers.forget_missing();
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl crate::metrics::caches::CacheSizes for Context {
    fn sizes(&self) -> Vec<(&'static str, usize)> {
        let failures = self.failures.lock().map(|f| f.len()).unwrap_or_default();
        let written = self.written.0.lock().map(|w| w.len()).unwrap_or_default();
        let own_writes = self
            .own_writes
            .0
            .lock()
            .map(|w| w.len())
            .unwrap_or_default();
        let (clients, building) = self.providers.sizes();
        vec![
            ("drift_schedule", self.drift.len()),
            ("failures", failures),
            ("written", written),
            ("own_writes", own_writes),
            ("claims", self.claims.len()),
            ("secret_versions", self.secret_versions.len()),
            ("provider_clients", clients),
            ("provider_builds", building),
            ("restart_permissions", self.restart_permissions.len()),
        ]
    }
}

/// The resources this process has written (finalizer, status), each as its last write returned it, until the
/// cache shows that version.
#[derive(Default)]
pub struct Written(Mutex<HashMap<ObjectRef<ApplicationClientSecret>, WrittenEntry>>);

#[derive(Clone)]
struct WrittenEntry {
    version: Option<String>,
    /// The resource as the write returned it: what a read would return, unless someone wrote since.
    object: Arc<ApplicationClientSecret>,
    /// Versions known to come before it: the ones this process's writes were conditional on. A cache at one of
    /// them lags behind our write; a cache at any other version may hold someone else's later write, so the
    /// resource is read.
    older: Vec<String>,
}

/// How many versions before the last write an entry remembers (a pass writes the resource two or three times).
const OLDER_VERSIONS: usize = 4;

impl Written {
    /// This process wrote the resource, and the API server answered with `object`: a reconcile that comes before
    /// the cache shows it starts from this copy instead of reading the resource (issue 25: the reconcile that
    /// follows a first issue's own finalizer write read it once per new resource).
    /// `written_over` is the version the write was conditional on.
    pub fn record(
        &self,
        key: &ObjectRef<ApplicationClientSecret>,
        mut object: ApplicationClientSecret,
        written_over: Option<String>,
    ) {
        // As the cache keeps it: what nobody reads is not kept.
        object.managed_fields_mut().clear();
        object
            .annotations_mut()
            .remove("kubectl.kubernetes.io/last-applied-configuration");
        self.insert(
            key,
            WrittenEntry {
                version: object.metadata.resource_version.clone(),
                object: Arc::new(object),
                older: written_over.into_iter().collect(),
            },
        );
    }

    fn insert(&self, key: &ObjectRef<ApplicationClientSecret>, mut entry: WrittenEntry) {
        if let Ok(mut written) = self.0.lock() {
            // Without the uid and version a reference carries: equality ignores them, and 10,000 keys hold them.
            let key =
                ObjectRef::new(&key.name).within(key.namespace.as_deref().unwrap_or_default());
            // A write over our own previous one: everything before that one came before this one too.
            if let Some(previous) = written.get(&key)
                && previous
                    .version
                    .as_ref()
                    .is_some_and(|version| entry.older.contains(version))
            {
                entry.older.extend(previous.older.iter().cloned());
                entry.older.truncate(OLDER_VERSIONS);
            }
            // No version (never from the API server): nothing to recognise, so always read fresh.
            written.insert(key, entry);
        }
    }

    /// Whether the cached copy of the resource, at `cached_version`, may lag behind this process's own last write
    /// to it (a poisoned lock answers yes: read fresh). Once the cache shows that write's version it is forgotten:
    /// versions are compared for equality only, and anyone else's later write is a lag the cache has for every
    /// resource, which the conditional writes already guard against.
    pub fn cache_may_lag(
        &self,
        key: &ObjectRef<ApplicationClientSecret>,
        cached_version: Option<&str>,
    ) -> bool {
        let Ok(mut written) = self.0.lock() else {
            return true;
        };
        match written.get(key) {
            None => false,
            Some(WrittenEntry {
                version: Some(version),
                ..
            }) if cached_version == Some(version.as_str()) => {
                written.remove(key);
                false
            }
            Some(_) => true,
        }
    }

    /// The resource as this process's last write left it, when that write returned it and the cache, at
    /// `cached_version`, is known to lag behind it (it shows a version the write came after). Otherwise `None`, and
    /// the copy is dropped: the cache may hold someone else's later write, so read the resource.
    pub fn last_written(
        &self,
        key: &ObjectRef<ApplicationClientSecret>,
        cached_version: Option<&str>,
    ) -> Option<ApplicationClientSecret> {
        let mut written = self.0.lock().ok()?;
        let entry = written.get(key)?;
        match cached_version {
            Some(cached) if entry.older.iter().any(|v| v == cached) => {
                Some(entry.object.as_ref().clone())
            }
            _ => {
                written.remove(key);
                None
            }
        }
    }

    /// The watch delivered the resource at `version` (the store already holds it): when that is this process's
    /// last write, the cache no longer lags behind it. A watch event that overtakes the `record` of its own write
    /// leaves the entry in place, which costs one read at most.
    pub fn seen(&self, key: &ObjectRef<ApplicationClientSecret>, version: Option<&str>) {
        if let (Ok(mut written), Some(version)) = (self.0.lock(), version)
            && written
                .get(key)
                .is_some_and(|entry| entry.version.as_deref() == Some(version))
        {
            written.remove(key);
        }
    }

    /// Drops a resource that is gone, or whose copy a write found outdated.
    pub fn forget(&self, key: &ObjectRef<ApplicationClientSecret>) {
        if let Ok(mut written) = self.0.lock() {
            written.remove(key);
        }
    }
}

/// The `resourceVersion` of each Secret as this process last wrote it, by namespace and name. The watch event of
/// our own write carries that version and is dropped; any other change to the Secret (an edit, a deletion, a write
/// by another client) has another version and wakes the owner, which repairs the drift.
#[derive(Default)]
pub struct OwnWrites(Mutex<HashMap<(String, String), String>>);

impl OwnWrites {
    /// Remembers that we wrote `namespace/name` at `resource_version`.
    pub fn record(&self, namespace: &str, name: &str, resource_version: Option<String>) {
        if let (Ok(mut writes), Some(version)) = (self.0.lock(), resource_version) {
            writes.insert((namespace.to_owned(), name.to_owned()), version);
        }
    }

    /// The Secret is gone: whatever we wrote of it will never be seen.
    pub fn forget(&self, secret: &PartialObjectMeta<Secret>) {
        if let Ok(mut writes) = self.0.lock() {
            writes.remove(&(secret.namespace().unwrap_or_default(), secret.name_any()));
        }
    }

    /// Whether `secret` is exactly what we last wrote (forgotten once seen, so the map stays small).
    pub fn take_if_own(&self, secret: &PartialObjectMeta<Secret>) -> bool {
        let key = (secret.namespace().unwrap_or_default(), secret.name_any());
        let Ok(mut writes) = self.0.lock() else {
            return false;
        };
        let own = writes.get(&key).is_some_and(|version| {
            secret.metadata.resource_version.as_deref() == Some(version.as_str())
        });
        if own {
            writes.remove(&key);
        }
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(namespace: &str, name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.namespace = Some(namespace.to_owned());
        meta.metadata.name = Some(name.to_owned());
        meta.metadata.resource_version = Some(version.to_owned());
        meta
    }

    #[test]
    fn only_the_version_we_wrote_is_ours_and_only_once() {
        let writes = OwnWrites::default();
        writes.record("team", "creds", Some("41".to_owned()));
        // Someone else's change to the same Secret, or the same version of another Secret: not ours.
        assert!(!writes.take_if_own(&secret("team", "creds", "42")));
        assert!(!writes.take_if_own(&secret("other", "creds", "41")));
        // Our write's own event: dropped once; the same version seen again (a relist) wakes the owner.
        assert!(writes.take_if_own(&secret("team", "creds", "41")));
        assert!(!writes.take_if_own(&secret("team", "creds", "41")));
    }

    /// A resource as a write returns it, at `version`.
    fn resource_at(version: Option<&str>) -> ApplicationClientSecret {
        let mut resource: ApplicationClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "web", "namespace": "team" },
            "spec": { "instanceId": "idaas_x", "applicationId": "app_x" }
        }))
        .expect("a resource");
        resource.metadata.resource_version = version.map(str::to_owned);
        resource
    }

    #[test]
    fn a_written_resource_is_read_fresh_until_the_cache_shows_the_version_written() {
        let written = Written::default();
        let key = ObjectRef::<ApplicationClientSecret>::new("web").within("team");
        assert!(
            !written.cache_may_lag(&key, Some("10")),
            "never written: the cache is as fresh as a read"
        );
        written.record(&key, resource_at(Some("12")), None);
        assert!(
            written.cache_may_lag(&key, Some("11")),
            "the cache has not seen our write yet"
        );
        assert!(
            !written.cache_may_lag(&key, Some("12")),
            "the cache shows our write"
        );
        assert!(
            !written.cache_may_lag(&key, Some("11")),
            "forgotten once seen"
        );
        written.record(&key, resource_at(None), None);
        assert!(written.cache_may_lag(&key, Some("12")) && written.cache_may_lag(&key, None));
    }

    #[test]
    fn a_reconcile_before_the_cache_catches_up_starts_from_what_our_last_write_returned() {
        let written = Written::default();
        let key = ObjectRef::<ApplicationClientSecret>::new("web").within("team");
        let mut object: ApplicationClientSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "eiam-operator.io/v1alpha1", "kind": "ApplicationClientSecret",
            "metadata": { "name": "web", "namespace": "team", "resourceVersion": "12",
                          "managedFields": [{ "manager": "eiam-operator" }] },
            "spec": { "instanceId": "idaas_x", "applicationId": "app_x" }
        }))
        .expect("a resource");
        written.record(&key, object.clone(), Some("11".to_owned()));
        assert!(written.cache_may_lag(&key, Some("11")));
        object.managed_fields_mut().clear();
        object.annotations_mut();
        assert_eq!(
            written.last_written(&key, Some("11")),
            Some(object.clone()),
            "the cache is at the version the write was made over: our copy, as the cache keeps it"
        );
        written.seen(&key, Some("12"));
        assert_eq!(
            written.last_written(&key, Some("12")),
            None,
            "forgotten once the watch shows it"
        );
        // A second write over our first: the cache at either earlier version lags behind.
        written.record(&key, object.clone(), Some("12".to_owned()));
        object.metadata.resource_version = Some("14".to_owned());
        written.record(&key, object.clone(), Some("13".to_owned()));
        assert_eq!(
            written.last_written(&key, Some("12")),
            None,
            "12 is not known to precede 14"
        );
        written.record(&key, object.clone(), Some("11".to_owned()));
        object.metadata.resource_version = Some("15".to_owned());
        written.record(&key, object.clone(), Some("14".to_owned()));
        assert!(written.last_written(&key, Some("11")).is_some());
        assert!(written.last_written(&key, Some("14")).is_some());
        // A version nobody said comes before ours (someone else's write, maybe later): read, and forget the copy.
        assert_eq!(written.last_written(&key, Some("16")), None);
        assert!(!written.cache_may_lag(&key, Some("16")), "forgotten");
    }

    #[test]
    fn the_watch_showing_our_write_forgets_it_so_a_later_write_by_someone_else_is_not_read() {
        let written = Written::default();
        let key = ObjectRef::<ApplicationClientSecret>::new("web").within("team");
        written.record(&key, resource_at(Some("12")), None);
        written.seen(&key, Some("11"));
        assert!(
            written.cache_may_lag(&key, Some("11")),
            "an older version: still lagging"
        );
        written.seen(&key, Some("12"));
        assert!(
            !written.cache_may_lag(&key, Some("13")),
            "the cache showed our write; 13 is someone else's later one, which the cache holds"
        );
    }
}
