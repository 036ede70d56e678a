//! "This watch has completed its first list": a flag reconciles can wait on for a bounded time before they trust
//! a cache built from the watch (and fall back to a read when it is late).

use std::time::Duration;

use tokio::sync::watch;

/// Set once, on the watch's first complete list.
pub struct Synced(watch::Sender<bool>);

impl Default for Synced {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl Synced {
    /// The first list is complete.
    pub fn mark(&self) {
        self.0.send_replace(true);
    }

    /// Whether the first list completed, waiting at most `patience` for it.
    pub async fn wait(&self, patience: Duration) -> bool {
        let mut synced = self.0.subscribe();
        matches!(
            tokio::time::timeout(patience, synced.wait_for(|synced| *synced)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_mark_at_most_its_patience() {
        let synced = std::sync::Arc::new(Synced::default());
        assert!(!synced.wait(Duration::from_millis(10)).await);
        let waiter = {
            let synced = synced.clone();
            tokio::spawn(async move { synced.wait(Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        synced.mark();
        assert!(waiter.await.unwrap_or(false));
        assert!(synced.wait(Duration::ZERO).await);
    }
}
