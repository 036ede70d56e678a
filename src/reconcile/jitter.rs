//! Random jitter on every wait, so that many resources (or retries) never wake up in lockstep.

use std::time::Duration;

/// Adds up to +10% of random jitter so that many resources never wake up in lockstep.
pub fn jittered(delay: Duration) -> Duration {
    let spread = delay.as_millis() as u64 / 10;
    if spread == 0 {
        return delay;
    }
    delay + Duration::from_millis(rand::random_range(0..=spread))
}
