//! The `resourceVersion` of every Secret the operator publishes, as its metadata watch last saw it: proof that a
//! Secret is unchanged since the operator last saw it in sync, without reading it (or its value) again.
//!
//! A resource's status records the version of its Secret when the Secret last held exactly the current secret
//! (`status.secretResourceVersion`). Any change to a Secret — an edit of its data, a label, a deletion — gives it
//! another version, so while the watch still shows the recorded one the Secret needs no GET: after a restart or a
//! failover the operator re-reads none of them. Versions are only compared for equality, as the API allows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;

use super::synced::Synced;

type Key = (String, String);

/// Versions by namespace and name, kept from a watch's events.
#[derive(Default)]
pub struct SecretVersions {
    state: Mutex<State>,
    synced: Synced,
}

#[derive(Default)]
struct State {
    versions: HashMap<Key, String>,
    /// A relist in progress: it replaces `versions` when complete, so a Secret deleted while the watch was
    /// down does not linger.
    relisting: Option<HashMap<Key, String>>,
}

fn key(secret: &PartialObjectMeta<Secret>) -> Option<(Key, String)> {
    let version = secret.metadata.resource_version.clone()?;
    Some((
        (secret.namespace().unwrap_or_default(), secret.name_any()),
        version,
    ))
}

impl SecretVersions {
    /// How many Secrets it knows a version of.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.versions.len())
            .unwrap_or_default()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event.
    pub fn observe(&self, event: &Event<PartialObjectMeta<Secret>>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match event {
            Event::Init => state.relisting = Some(HashMap::new()),
            Event::InitApply(secret) => {
                if let (Some(relisting), Some((key, version))) =
                    (state.relisting.as_mut(), key(secret))
                {
                    relisting.insert(key, version);
                }
            }
            Event::InitDone => {
                if let Some(listed) = state.relisting.take() {
                    state.versions = listed;
                }
                drop(state);
                self.synced.mark();
            }
            Event::Apply(secret) => {
                if let Some((key, version)) = key(secret) {
                    state.versions.insert(key, version);
                }
            }
            Event::Delete(secret) => {
                state
                    .versions
                    .remove(&(secret.namespace().unwrap_or_default(), secret.name_any()));
            }
        }
    }

    /// The version the watch last saw of `namespace/name`, once the first list is complete (before that, or for a
    /// Secret it has not seen, `None`: read the Secret). Waits at most `patience` for that first list.
    pub async fn get(&self, namespace: &str, name: &str, patience: Duration) -> Option<String> {
        self.lookup(namespace, name, patience).await.flatten()
    }

    /// What the watch knows of `namespace/name` once its first list is complete: `Some(Some(version))` a Secret it
    /// saw, `Some(None)` none of that name. `None` before that first list (or on a poisoned lock): it knows nothing
    /// yet. Waits at most `patience` for that first list.
    pub async fn lookup(
        &self,
        namespace: &str,
        name: &str,
        patience: Duration,
    ) -> Option<Option<String>> {
        // Right after a start every resource asks at once; the list of all Secret metadata takes a moment, and
        // waiting for it is cheaper than a GET each.
        if !self.synced.wait(patience).await {
            return None;
        }
        let state = self.state.lock().ok()?;
        Some(
            state
                .versions
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn secret(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some(name.into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            _phantom: Default::default(),
        }
    }

    const NOW: Duration = Duration::ZERO;

    #[tokio::test]
    async fn nothing_is_known_before_the_first_list_completes() {
        let versions = SecretVersions::default();
        versions.observe(&Event::Init);
        versions.observe(&Event::InitApply(secret("a", "1")));
        assert_eq!(versions.get("ns", "a", NOW).await, None);
        versions.observe(&Event::InitDone);
        assert_eq!(versions.get("ns", "a", NOW).await.as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn a_secret_never_seen_is_known_absent_only_after_the_first_list() {
        let versions = SecretVersions::default();
        versions.observe(&Event::Init);
        assert_eq!(versions.lookup("ns", "a", NOW).await, None, "unsynced");
        versions.observe(&Event::InitDone);
        assert_eq!(versions.lookup("ns", "a", NOW).await, Some(None));
        versions.observe(&Event::Apply(secret("a", "1")));
        assert_eq!(
            versions.lookup("ns", "a", NOW).await,
            Some(Some("1".to_owned()))
        );
    }

    #[tokio::test]
    async fn changes_and_deletions_follow_the_watch() {
        let versions = SecretVersions::default();
        versions.observe(&Event::Init);
        versions.observe(&Event::InitApply(secret("a", "1")));
        versions.observe(&Event::InitDone);
        versions.observe(&Event::Apply(secret("a", "2")));
        assert_eq!(versions.get("ns", "a", NOW).await.as_deref(), Some("2"));
        assert_eq!(versions.get("other", "a", NOW).await, None);
        versions.observe(&Event::Delete(secret("a", "3")));
        assert_eq!(versions.get("ns", "a", NOW).await, None);
    }

    #[tokio::test]
    async fn a_relist_forgets_secrets_deleted_while_the_watch_was_down() {
        let versions = SecretVersions::default();
        versions.observe(&Event::Init);
        versions.observe(&Event::InitApply(secret("gone", "1")));
        versions.observe(&Event::InitApply(secret("kept", "1")));
        versions.observe(&Event::InitDone);
        versions.observe(&Event::Init);
        versions.observe(&Event::InitApply(secret("kept", "5")));
        // Until the relist completes, the last complete view answers.
        assert_eq!(versions.get("ns", "gone", NOW).await.as_deref(), Some("1"));
        versions.observe(&Event::InitDone);
        assert_eq!(versions.get("ns", "gone", NOW).await, None);
        assert_eq!(versions.get("ns", "kept", NOW).await.as_deref(), Some("5"));
    }

    #[tokio::test]
    async fn a_caller_waits_for_the_first_list_at_most_its_patience() {
        let versions = std::sync::Arc::new(SecretVersions::default());
        let waiter = {
            let versions = versions.clone();
            tokio::spawn(async move { versions.get("ns", "a", Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        versions.observe(&Event::Init);
        versions.observe(&Event::InitApply(secret("a", "7")));
        versions.observe(&Event::InitDone);
        assert_eq!(waiter.await.ok().flatten().as_deref(), Some("7"));
        let never = SecretVersions::default();
        assert_eq!(never.get("ns", "a", Duration::from_millis(10)).await, None);
    }
}
