//! Replay protection: the `SignatureNonce` / `x-acs-signature-nonce` values already accepted.
//!
//! A nonce must be remembered for as long as a request carrying it could still pass the timestamp check: a request
//! stamped `window` in the future stays valid until `window` in the past, so nonces are kept for twice the window
//! (plus a minute of margin) and forgotten after that.

use std::collections::{HashSet, VecDeque};

/// Nonces seen recently, oldest first.
#[derive(Debug, Clone)]
pub struct NonceCache {
    seen: HashSet<String>,
    order: VecDeque<(i64, String)>,
    retention_ms: i64,
}

impl NonceCache {
    /// A cache that keeps nonces for twice the timestamp window plus a minute.
    pub fn new(timestamp_window_ms: i64) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            retention_ms: timestamp_window_ms.saturating_mul(2).saturating_add(60_000),
        }
    }

    /// Whether this nonce was accepted within the retention period.
    pub fn is_used(&self, nonce: &str) -> bool {
        self.seen.contains(nonce)
    }

    /// Remembers an accepted nonce and forgets the ones past retention.
    pub fn record(&mut self, nonce: &str, now_ms: i64) {
        while let Some((at, _)) = self.order.front() {
            if now_ms.saturating_sub(*at) <= self.retention_ms {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.insert(nonce.to_owned()) {
            self.order.push_back((now_ms, nonce.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_retention_and_forgets_after() {
        let mut c = NonceCache::new(900_000);
        c.record("a", 0);
        assert!(c.is_used("a"));
        assert!(!c.is_used("b"));
        c.record("b", 1_860_000);
        assert!(c.is_used("a"), "31 minutes is still within 2x15m+1m");
        c.record("c", 1_860_001);
        assert!(!c.is_used("a"));
        assert!(c.is_used("b") && c.is_used("c"));
    }
}
