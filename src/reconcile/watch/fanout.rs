//! One watch, several readers: the operator's controllers all need Secret metadata (the Secrets it publishes, the
//! providers' AccessKey Secrets), and each opening its own watch made the API server list and stream every Secret
//! of the cluster four times over — at 10,000 resources, four lists of 10,000 Secrets on every restart. One watch is
//! opened instead, and each reader gets every event of it, in order.
//!
//! Readers are fed through bounded channels: a reader that stops reading holds the others back rather than let
//! memory grow, so every reader handed out must be read (a controller drains its trigger streams even while all its
//! reconcile slots are busy). A reader that is dropped is simply no longer fed; the watch stops when none is left.

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;

/// Events a reader may be behind the watch before it holds the watch (and the other readers) back. Small: every
/// buffered event is a copy per reader, and a first list of 10,000 Secrets would otherwise sit in memory four times.
const READER_BUFFER: usize = 64;

/// A watch stream shared by several readers.
pub struct Fanout<K> {
    source: BoxStream<'static, watcher::Result<Event<K>>>,
    readers: Vec<mpsc::Sender<Event<K>>>,
    what: &'static str,
}

impl<K: Clone + Send + 'static> Fanout<K> {
    /// Shares `source`; `what` names it in logs.
    pub fn new(what: &'static str, source: BoxStream<'static, watcher::Result<Event<K>>>) -> Self {
        Self {
            source,
            readers: Vec::new(),
            what,
        }
    }

    /// A new reader: every event of the watch from its start (take all readers before [`Fanout::spawn`]).
    pub fn reader(&mut self) -> BoxStream<'static, watcher::Result<Event<K>>> {
        let (sender, receiver) = mpsc::channel(READER_BUFFER);
        self.readers.push(sender);
        stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|event| (Ok(event), receiver))
        })
        .boxed()
    }

    /// Runs the watch in the background until it ends, no reader is left, or the returned handle aborts it.
    pub fn spawn(self) -> tokio::task::AbortHandle {
        tokio::spawn(self.run()).abort_handle()
    }

    async fn run(mut self) {
        while let Some(item) = self.source.next().await {
            let event = match item {
                Ok(event) => event,
                // The watch retries by itself (with backoff); readers need not see its failures.
                Err(error) => {
                    tracing::warn!(error = %error, watch = self.what, "watch failed; retrying");
                    continue;
                }
            };
            let mut open = Vec::with_capacity(self.readers.len());
            for reader in std::mem::take(&mut self.readers) {
                if reader.send(event.clone()).await.is_ok() {
                    open.push(reader);
                }
            }
            self.readers = open;
            if self.readers.is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(
        events: Vec<watcher::Result<Event<u32>>>,
    ) -> BoxStream<'static, watcher::Result<Event<u32>>> {
        stream::iter(events).boxed()
    }

    fn applied(items: Vec<watcher::Result<Event<u32>>>) -> Vec<u32> {
        items
            .into_iter()
            .filter_map(|item| match item {
                Ok(Event::Apply(n) | Event::InitApply(n)) => Some(n),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_reader_gets_every_event_in_order_even_beyond_its_buffer() {
        let count = READER_BUFFER as u32 * 3;
        let mut events = vec![Ok(Event::Init)];
        events.extend((0..count).map(|n| Ok(Event::InitApply(n))));
        events.push(Ok(Event::InitDone));
        let mut fanout = Fanout::new("test", source(events));
        let first = fanout.reader();
        let second = fanout.reader();
        fanout.spawn();
        let (first, second) = tokio::join!(first.collect::<Vec<_>>(), second.collect::<Vec<_>>());
        let expected: Vec<u32> = (0..count).collect();
        assert_eq!(applied(first), expected);
        assert_eq!(applied(second), expected);
    }

    #[tokio::test]
    async fn a_dropped_reader_does_not_hold_the_others_back() {
        let count = READER_BUFFER as u32 * 2;
        let events = (0..count).map(|n| Ok(Event::Apply(n))).collect();
        let mut fanout = Fanout::new("test", source(events));
        let kept = fanout.reader();
        drop(fanout.reader());
        fanout.spawn();
        assert_eq!(
            applied(kept.collect().await),
            (0..count).collect::<Vec<_>>()
        );
    }
}
