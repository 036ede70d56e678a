//! Which resources name each EIAM application: an index kept from the resource watch, so the one-resource-per-
//! application rule looks at the few resources of one application instead of scanning every resource on every
//! reconcile (a scan that made 10,000 first issues cost O(N²)).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::api::ApplicationClientSecret;

type Application = (String, String);
type Key = ObjectRef<ApplicationClientSecret>;

/// Resources by the `(instanceId, applicationId)` they name.
#[derive(Default)]
pub struct Claims {
    state: Mutex<State>,
}

#[derive(Default)]
struct Index {
    by_application: HashMap<Application, HashSet<Key>>,
    of: HashMap<Key, Application>,
}

#[derive(Default)]
struct State {
    index: Index,
    /// A relist in progress: it replaces the index when complete, so a resource deleted while the watch was down
    /// does not linger.
    relisting: Option<Index>,
}

impl Index {
    fn insert(&mut self, resource: &ApplicationClientSecret) {
        let key = key_of(resource);
        let application = (
            resource.spec.instance_id.clone(),
            resource.spec.application_id.clone(),
        );
        // The ids are immutable (CEL), but an older CRD may not say so: re-key rather than trust it.
        if let Some(old) = self.of.get(&key)
            && *old != application
        {
            self.remove(&key);
        }
        self.by_application
            .entry(application.clone())
            .or_default()
            .insert(key.clone());
        self.of.insert(key, application);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(application) = self.of.remove(key)
            && let Some(keys) = self.by_application.get_mut(&application)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_application.remove(&application);
            }
        }
    }
}

/// Namespace and name only: the uid and resourceVersion `ObjectRef::from_obj` also carries are not compared by
/// lookups, and at 10,000 resources held twice they are megabytes.
fn key_of(resource: &ApplicationClientSecret) -> Key {
    let name = resource.metadata.name.as_deref().unwrap_or_default();
    match resource.metadata.namespace.as_deref() {
        Some(namespace) => ObjectRef::new(name).within(namespace),
        None => ObjectRef::new(name),
    }
}

impl Claims {
    /// How many resources it indexes.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.index.of.len())
            .unwrap_or_default()
    }

    /// Whether it indexes none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event of the resource watch.
    pub fn observe(&self, event: &Event<ApplicationClientSecret>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match event {
            Event::Init => state.relisting = Some(Index::default()),
            Event::InitApply(resource) => {
                if let Some(relisting) = state.relisting.as_mut() {
                    relisting.insert(resource);
                }
            }
            Event::InitDone => {
                if let Some(listed) = state.relisting.take() {
                    state.index = listed;
                }
            }
            Event::Apply(resource) => state.index.insert(resource),
            Event::Delete(resource) => state.index.remove(&key_of(resource)),
        }
    }

    /// The resources that name this application (the caller looks each up in the store).
    pub fn of(&self, instance_id: &str, application_id: &str) -> Vec<Key> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .index
            .by_application
            .get(&(instance_id.to_owned(), application_id.to_owned()))
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(name: &str, application: &str) -> ApplicationClientSecret {
        serde_json::from_value(json!({
            "apiVersion": "eiam-operator.io/v1alpha1",
            "kind": "ApplicationClientSecret",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "instanceId": "idaas_1", "applicationId": application }
        }))
        .unwrap_or_else(|e| panic!("a resource: {e}"))
    }

    fn names(claims: &Claims, application: &str) -> Vec<String> {
        let mut names: Vec<String> = claims
            .of("idaas_1", application)
            .into_iter()
            .map(|key| key.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn resources_are_found_by_the_application_they_name() {
        let claims = Claims::default();
        claims.observe(&Event::Init);
        claims.observe(&Event::InitApply(resource("a", "app_1")));
        claims.observe(&Event::InitApply(resource("b", "app_1")));
        claims.observe(&Event::InitApply(resource("c", "app_2")));
        assert!(
            names(&claims, "app_1").is_empty(),
            "not before the list is complete"
        );
        claims.observe(&Event::InitDone);
        assert_eq!(names(&claims, "app_1"), ["a", "b"]);
        assert_eq!(names(&claims, "app_2"), ["c"]);
        assert!(names(&claims, "app_3").is_empty());
    }

    #[test]
    fn deletions_changes_and_relists_follow_the_watch() {
        let claims = Claims::default();
        claims.observe(&Event::Init);
        claims.observe(&Event::InitApply(resource("a", "app_1")));
        claims.observe(&Event::InitApply(resource("gone", "app_1")));
        claims.observe(&Event::InitDone);
        claims.observe(&Event::Delete(resource("a", "app_1")));
        assert_eq!(names(&claims, "app_1"), ["gone"]);
        // An application id changed under an older CRD without the immutability rule.
        claims.observe(&Event::Apply(resource("gone", "app_2")));
        assert!(names(&claims, "app_1").is_empty());
        assert_eq!(names(&claims, "app_2"), ["gone"]);
        // A relist that no longer holds it (deleted while the watch was down).
        claims.observe(&Event::Init);
        claims.observe(&Event::InitApply(resource("new", "app_2")));
        claims.observe(&Event::InitDone);
        assert_eq!(names(&claims, "app_2"), ["new"]);
    }
}
