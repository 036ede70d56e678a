//! A token-bucket QPS cap: callers wait for a token instead of being throttled by EIAM.
//!
//! The operator's bucket holds a single token: requests leave evenly spaced, so no one-second window anywhere
//! (EIAM's flow control counts requests per second, per account) sees more than `qps` of them. A bucket of `qps`
//! tokens would let a full bucket and its refill land in the same second: twice the cap. The spacing is
//! [`JITTER_MARGIN`] wider than `1/qps`: requests spaced exactly `1/qps` apart put the first and the `qps+1`-th
//! exactly one second apart when sent, and any network or scheduling delay on the first puts both in the same
//! second when they arrive. The margin tolerates 100 ms of such delay (measured on a loaded 2-core machine at a
//! cap of 50/s: 13 of 1,013 calls throttled without a margin, 5 of 1,005 with 50 ms).
//!
//! The bucket arithmetic is pure (it takes `now`), so it is tested without sleeping; `RateLimiter` is the thin
//! async shell that sleeps for the wait the bucket computes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Token-bucket state: `rate` tokens per second, at most `burst` saved up.
///
/// A reservation may drive the token count negative; each caller then waits for its own share of the deficit,
/// so concurrent callers queue fairly without holding a lock while they sleep.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be finite and positive (the client validates it); `burst` is at least 1.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token and returns how long the caller must wait before using it (zero if one was available).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Takes one token if the caller would wait at most `patience` for it, and returns that wait; otherwise takes
    /// nothing and returns how long the caller would have waited, so it can come back then instead of sleeping.
    pub fn reserve_within(
        &mut self,
        now: Instant,
        patience: Duration,
    ) -> Result<Duration, Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let left = self.tokens - 1.0;
        let wait = if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-left / self.rate).unwrap_or(Duration::MAX)
        };
        if wait > patience {
            return Err(wait);
        }
        self.tokens = left;
        Ok(wait)
    }
}

/// How much wider than `1/qps` the operator spaces its requests: 10 %, so `qps + 1` requests span 1.1 s and up to
/// 100 ms of delay cannot put them in one second; the operator uses at most 91 % of a cap.
pub const JITTER_MARGIN: f64 = 0.10;

/// An async QPS cap shared by every clone of a client.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<TokenBucket>,
}

impl RateLimiter {
    /// At most `qps` requests in any one-second window, even if any of them arrives up to 100 ms late: one request
    /// every `1.1/qps` seconds, no burst.
    pub fn new(qps: f64) -> Self {
        Self {
            bucket: Mutex::new(TokenBucket::new(
                qps / (1.0 + JITTER_MARGIN),
                1.0,
                Instant::now(),
            )),
        }
    }

    /// Reserves the next request's token if it is at most `patience` away, and returns when it may be sent;
    /// otherwise reserves nothing and returns how long until a token would be free (see
    /// [`TokenBucket::reserve_within`]).
    pub fn reserve_within(&self, patience: Duration) -> Result<Instant, Duration> {
        let now = Instant::now();
        self.bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .reserve_within(now, patience)
            .map(|wait| now + wait)
    }

    /// Waits until the caller may send one request.
    pub async fn acquire(&self) {
        let wait = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn burst_is_free_then_callers_queue_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2.0, t0);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        // Third, fourth and fifth callers at the same instant queue 100 ms apart.
        assert!(close(bucket.reserve(t0), ms(100)));
        assert!(close(bucket.reserve(t0), ms(200)));
        assert!(close(bucket.reserve(t0), ms(300)));
    }

    #[test]
    fn tokens_refill_with_time_up_to_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 1.0, t0);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        assert!(close(bucket.reserve(t0), ms(500)));
        // Long idle: refills only up to the burst of 1.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert!(close(bucket.reserve(later), ms(500)));
    }

    #[test]
    fn no_one_second_window_sees_more_than_the_rate() {
        // The operator's bucket (burst 1) under a crowd arriving at once, then a straggler after an idle spell:
        // count the send times in every one-second window.
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(50.0, 1.0, t0);
        let mut sends: Vec<Instant> = (0..200).map(|_| t0 + bucket.reserve(t0)).collect();
        let later = t0 + Duration::from_secs(10);
        sends.extend((0..100).map(|_| later + bucket.reserve(later)));
        for (i, start) in sends.iter().enumerate() {
            let in_window = sends[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 50,
                "{in_window} sends in the second after send {i}"
            );
        }
        // And the rate is used: 200 sends take 199 intervals of 20 ms.
        assert!(close(sends[199].duration_since(t0), ms(3980)));
    }

    #[test]
    fn the_operator_spaces_requests_with_a_margin_for_jitter() {
        let limiter = RateLimiter::new(50.0);
        let mut bucket = limiter.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let t0 = Instant::now();
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        // 22 ms, not 20: the 51st request leaves 1.1 s after the first.
        assert!(close(bucket.reserve(t0), ms(22)));
    }

    #[test]
    fn a_caller_that_would_wait_too_long_takes_nothing_and_learns_the_wait() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.01, 1.0, t0);
        assert_eq!(bucket.reserve_within(t0, ms(1000)), Ok(Duration::ZERO));
        // The next token is 100 s away: refused, and nothing taken, however often it is asked.
        for _ in 0..3 {
            let refused = bucket.reserve_within(t0, ms(1000)).unwrap_err();
            assert!(close(refused, Duration::from_secs(100)), "{refused:?}");
        }
        // Within the patience it is taken, with its wait.
        let later = t0 + Duration::from_millis(99_500);
        assert!(close(
            bucket.reserve_within(later, ms(1000)).unwrap(),
            ms(500)
        ));
        assert!(bucket.reserve_within(later, ms(1000)).is_err());
    }

    #[test]
    fn fractional_qps_is_honoured() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.5, 0.5, t0);
        assert_eq!(bucket.reserve(t0), Duration::ZERO);
        assert!(close(bucket.reserve(t0), Duration::from_secs(2)));
    }
}
