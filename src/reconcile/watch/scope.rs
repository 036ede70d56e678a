//! Which namespaces the operator watches (`--namespace`: all, one, or several), and how several per-namespace
//! watches become the one event stream a reflector store and a controller expect.
//!
//! A watcher restarts with a relist (`Init`, `InitApply`…, `InitDone`), and a reflector store answers an `InitDone`
//! by *replacing* its content with what the relist saw. Fed by several watches, the store would lose every other
//! namespace's objects each time one watch relists (after a dropped connection, an expired resourceVersion). So the
//! watches are merged by [`merge`]: one `Init`, every namespace's first list as `InitApply`, and one `InitDone` once
//! every namespace has listed — readiness means every watch has synced. After that, a namespace's relist is replayed
//! as `Apply` for what it lists and `Delete` for what it no longer lists, which touches that namespace only.

use std::collections::{HashSet, VecDeque};
use std::fmt::Debug;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

/// The namespaces whose resources the operator reconciles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchScope {
    /// Sorted, without duplicates; empty means every namespace.
    namespaces: Vec<String>,
}

impl WatchScope {
    /// From the `--namespace` values (repeated or comma-separated; blanks ignored). None: every namespace.
    pub fn new<I, S>(namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut namespaces: Vec<String> = namespaces
            .into_iter()
            .map(|ns| ns.as_ref().trim().to_owned())
            .filter(|ns| !ns.is_empty())
            .collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        Self { namespaces }
    }

    /// Every namespace is watched (no `--namespace`).
    pub fn is_all(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// The watched namespaces; empty when all are.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Whether resources in `namespace` are watched.
    pub fn contains(&self, namespace: &str) -> bool {
        self.is_all() || self.namespaces.iter().any(|ns| ns == namespace)
    }

    /// One API handle per watched namespace (a single cluster-wide one when all are).
    pub fn apis<K>(&self, kube: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        if self.is_all() {
            return vec![Api::all(kube.clone())];
        }
        self.namespaces
            .iter()
            .map(|ns| Api::namespaced(kube.clone(), ns))
            .collect()
    }

    /// Watches `K` in every watched namespace as one stream (see the module doc). `lookup` finds an object the
    /// stream announced earlier, to name it in a `Delete` after a relist no longer lists it: the reflector store the
    /// stream feeds, or [`metadata_key`] where nothing downstream needs more than the name.
    pub fn watch<K, L>(
        &self,
        kube: &Client,
        config: watcher::Config,
        lookup: L,
    ) -> BoxStream<'static, watcher::Result<Event<K>>>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
        L: Fn(&ObjectRef<K>) -> Option<K> + Send + 'static,
    {
        let watches = self
            .apis::<K>(kube)
            .into_iter()
            // Each namespace backs off on its own: one failing watch does not hold up the others.
            .map(|api| watcher(api, config.clone()).default_backoff().boxed())
            .collect();
        merge(watches, lookup)
    }
}

/// A Secret's metadata carrying only its namespace and name: enough for a `Delete` that consumers key by name.
pub fn metadata_key<K>(key: &ObjectRef<PartialObjectMeta<K>>) -> Option<PartialObjectMeta<K>>
where
    K: Resource,
    PartialObjectMeta<K>: Resource<DynamicType = ()> + Default,
{
    let mut meta = PartialObjectMeta::<K>::default();
    meta.metadata.name = Some(key.name.clone());
    meta.metadata.namespace = key.namespace.clone();
    Some(meta)
}

/// Finds an object in the reflector store a merged watch feeds, for the `Delete` it replays after a relist.
pub fn from_store<K>(
    store: &kube::runtime::reflector::Store<K>,
) -> impl Fn(&ObjectRef<K>) -> Option<K> + Send + 'static
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let store = store.clone();
    move |key| store.get(key).map(|object| object.as_ref().clone())
}

/// Merges per-namespace watch streams into one (see the module doc). A single stream is returned as it is.
pub fn merge<K, L>(
    mut watches: Vec<BoxStream<'static, watcher::Result<Event<K>>>>,
    lookup: L,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Resource<DynamicType = ()> + Clone + Send + 'static,
    L: Fn(&ObjectRef<K>) -> Option<K> + Send + 'static,
{
    if watches.len() == 1
        && let Some(single) = watches.pop()
    {
        return single;
    }
    let merger = Merger::new(watches.len());
    let tagged = stream::select_all(
        watches
            .into_iter()
            .enumerate()
            .map(|(index, watch)| watch.map(move |event| (index, event))),
    );
    stream::unfold(
        (tagged, merger, lookup),
        |(mut tagged, mut merger, lookup)| async move {
            loop {
                // Queued output first, one item per poll: the store downstream applies each before the next is
                // made, so a `Delete` looked up after an `InitDone` finds what that `InitDone` stored.
                match merger.out.pop_front() {
                    Some(Out::Event(event)) => return Some((event, (tagged, merger, lookup))),
                    Some(Out::DeleteKey(key)) => {
                        if let Some(object) = lookup(&key) {
                            return Some((Ok(Event::Delete(object)), (tagged, merger, lookup)));
                        }
                        continue;
                    }
                    None => {}
                }
                let (index, event) = tagged.next().await?;
                merger.push(index, event);
            }
        },
    )
    .boxed()
}

/// What the merged stream emits next.
enum Out<K: Resource> {
    Event(watcher::Result<Event<K>>),
    /// A `Delete` of an object known only by key (the relist that dropped it did not carry it).
    DeleteKey(ObjectRef<K>),
}

/// One namespace's watch, as the merger tracks it.
struct WatchState<K: Resource> {
    /// Every object this watch has announced and not deleted.
    known: HashSet<ObjectRef<K>>,
    /// What the list in progress has returned so far.
    listing: Option<HashSet<ObjectRef<K>>>,
    /// Its first list is complete.
    listed: bool,
}

impl<K: Resource> Default for WatchState<K> {
    fn default() -> Self {
        Self {
            known: HashSet::new(),
            listing: None,
            listed: false,
        }
    }
}

/// The merge itself, pure: events in (tagged by watch), events out.
struct Merger<K: Resource> {
    watches: Vec<WatchState<K>>,
    /// The merged `Init` was sent.
    started: bool,
    /// The merged `InitDone` was sent: from then on relists are replayed as `Apply`/`Delete`.
    live: bool,
    /// Deletions seen before the merged `InitDone`: the objects sit in the store's buffer until then, so they are
    /// deleted right after it.
    deferred: HashSet<ObjectRef<K>>,
    out: VecDeque<Out<K>>,
}

impl<K: Resource<DynamicType = ()>> Merger<K> {
    fn new(watches: usize) -> Self {
        Self {
            watches: (0..watches).map(|_| WatchState::default()).collect(),
            started: false,
            live: false,
            deferred: HashSet::new(),
            out: VecDeque::new(),
        }
    }

    fn push(&mut self, index: usize, event: watcher::Result<Event<K>>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                self.out.push_back(Out::Event(Err(error)));
                return;
            }
        };
        let Some(watch) = self.watches.get_mut(index) else {
            return;
        };
        match event {
            Event::Init => {
                watch.listing = Some(HashSet::new());
                if !self.started {
                    self.started = true;
                    self.out.push_back(Out::Event(Ok(Event::Init)));
                }
            }
            Event::InitApply(object) | Event::Apply(object) => {
                let key = ObjectRef::from_obj(&object);
                if let Some(listing) = watch.listing.as_mut() {
                    listing.insert(key.clone());
                }
                watch.known.insert(key.clone());
                self.deferred.remove(&key);
                let event = if self.live {
                    Event::Apply(object)
                } else {
                    // Before the merged InitDone everything goes to the store's buffer, or the swap would lose it.
                    Event::InitApply(object)
                };
                self.out.push_back(Out::Event(Ok(event)));
            }
            Event::InitDone => {
                let stale: Vec<ObjectRef<K>> = match watch.listing.take() {
                    Some(listed) => {
                        let stale = watch.known.difference(&listed).cloned().collect();
                        watch.known = listed;
                        stale
                    }
                    None => Vec::new(),
                };
                watch.listed = true;
                if self.live {
                    self.out.extend(stale.into_iter().map(Out::DeleteKey));
                } else {
                    self.deferred.extend(stale);
                    if self.watches.iter().all(|watch| watch.listed) {
                        self.live = true;
                        self.out.push_back(Out::Event(Ok(Event::InitDone)));
                        self.out.extend(self.deferred.drain().map(Out::DeleteKey));
                    }
                }
            }
            Event::Delete(object) => {
                let key = ObjectRef::from_obj(&object);
                watch.known.remove(&key);
                if let Some(listing) = watch.listing.as_mut() {
                    listing.remove(&key);
                }
                if self.live {
                    self.out.push_back(Out::Event(Ok(Event::Delete(object))));
                } else {
                    self.deferred.insert(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    fn object(namespace: &str, name: &str, value: &str) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.namespace = Some(namespace.to_owned());
        object.metadata.name = Some(name.to_owned());
        object.data = Some([("v".to_owned(), value.to_owned())].into());
        object
    }

    /// Feeds `events` through a merger into a reflector store the way the stream does, and returns the store's
    /// content as `ns/name=value`, sorted, plus whether the store became ready.
    fn run(watches: usize, events: Vec<(usize, Event<ConfigMap>)>) -> (Vec<String>, bool) {
        let (store, mut writer) = reflector::store::<ConfigMap>();
        let mut merger = Merger::new(watches);
        let mut ready = false;
        for (index, event) in events {
            merger.push(index, Ok(event));
            while let Some(out) = merger.out.pop_front() {
                let event = match out {
                    Out::Event(Ok(event)) => event,
                    Out::Event(Err(_)) => continue,
                    Out::DeleteKey(key) => match store.get(&key) {
                        Some(object) => Event::Delete(object.as_ref().clone()),
                        None => continue,
                    },
                };
                ready |= matches!(event, Event::InitDone);
                writer.apply_watcher_event(&event);
            }
        }
        let mut content: Vec<String> = store
            .state()
            .iter()
            .map(|o| {
                let value = o
                    .data
                    .as_ref()
                    .and_then(|d| d.get("v").cloned())
                    .unwrap_or_default();
                format!(
                    "{}/{}={value}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect();
        content.sort();
        (content, ready)
    }

    fn listed(index: usize, objects: &[ConfigMap]) -> Vec<(usize, Event<ConfigMap>)> {
        let mut events = vec![(index, Event::Init)];
        events.extend(objects.iter().map(|o| (index, Event::InitApply(o.clone()))));
        events.push((index, Event::InitDone));
        events
    }

    #[test]
    fn the_scope_is_sorted_deduplicated_and_all_when_empty() {
        let scope = WatchScope::new(["team-b", " team-a", "team-b", ""]);
        assert_eq!(scope.namespaces(), ["team-a", "team-b"]);
        assert!(scope.contains("team-a") && !scope.contains("team-c"));
        let all = WatchScope::new(Vec::<String>::new());
        assert!(all.is_all() && all.contains("anything"));
    }

    #[test]
    fn ready_only_once_every_namespace_has_listed() {
        let mut events = listed(0, &[object("a", "x", "1")]);
        let (content, ready) = run(2, events.clone());
        assert!(!ready, "one of two watches listed: not ready");
        assert!(
            content.is_empty(),
            "nothing reaches the store before the merged InitDone"
        );
        events.extend(listed(1, &[object("b", "y", "1")]));
        let (content, ready) = run(2, events);
        assert!(ready);
        assert_eq!(content, ["a/x=1", "b/y=1"]);
    }

    #[test]
    fn changes_during_the_first_lists_are_not_lost_by_the_swap() {
        let mut events = listed(0, &[object("a", "x", "1"), object("a", "gone", "1")]);
        // Watch 0 is live while watch 1 still lists: its changes must survive the store's swap.
        events.push((0, Event::Apply(object("a", "x", "2"))));
        events.push((0, Event::Apply(object("a", "new", "1"))));
        events.push((0, Event::Delete(object("a", "gone", "1"))));
        events.extend(listed(1, &[object("b", "y", "1")]));
        let (content, ready) = run(2, events);
        assert!(ready);
        assert_eq!(content, ["a/new=1", "a/x=2", "b/y=1"]);
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others_and_drops_what_it_no_longer_lists() {
        let mut events = listed(0, &[object("a", "x", "1"), object("a", "old", "1")]);
        events.extend(listed(1, &[object("b", "y", "1")]));
        // Watch 0 reconnects: "old" was deleted while it was down, "x" changed.
        events.extend(listed(0, &[object("a", "x", "2")]));
        let (content, _) = run(2, events);
        assert_eq!(content, ["a/x=2", "b/y=1"]);
    }

    #[test]
    fn a_first_list_restarted_before_it_completed_drops_what_the_restart_no_longer_lists() {
        let mut events = vec![
            (0, Event::Init),
            (0, Event::InitApply(object("a", "old", "1"))),
        ];
        // The list failed halfway and restarts; "old" is gone by then.
        events.extend(listed(0, &[object("a", "x", "1")]));
        events.extend(listed(1, &[]));
        let (content, ready) = run(2, events);
        assert!(ready);
        assert_eq!(content, ["a/x=1"]);
    }

    #[test]
    fn a_deletion_and_recreation_before_the_merged_init_done_keeps_the_object() {
        let mut events = listed(0, &[object("a", "x", "1")]);
        events.push((0, Event::Delete(object("a", "x", "1"))));
        events.push((0, Event::Apply(object("a", "x", "2"))));
        events.extend(listed(1, &[]));
        let (content, _) = run(2, events);
        assert_eq!(content, ["a/x=2"]);
    }

    #[test]
    fn live_events_pass_through_in_order() {
        let mut events = listed(0, &[]);
        events.extend(listed(1, &[]));
        events.push((1, Event::Apply(object("b", "y", "1"))));
        events.push((0, Event::Apply(object("a", "x", "1"))));
        events.push((1, Event::Delete(object("b", "y", "1"))));
        let (content, _) = run(2, events);
        assert_eq!(content, ["a/x=1"]);
    }
}
