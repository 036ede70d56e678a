//! The wall clock, injectable so tests can sign with a fixed or skewed time and expire credentials on demand.

use std::fmt::Debug;
use std::sync::Mutex;

use jiff::Timestamp;

/// A source of the current UTC time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that says what it is told: a fixed time that tests may move.
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    /// A clock stopped at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self(Mutex::new(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: Timestamp) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Formats `t` as Alibaba Cloud expects in `Timestamp` and `x-acs-date`: `yyyy-MM-ddTHH:mm:ssZ` in UTC.
pub fn format_acs_timestamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an `yyyy-MM-ddTHH:mm:ssZ` timestamp (also any RFC 3339 instant), as STS and ECS metadata return them.
pub fn parse_acs_timestamp(s: &str) -> Option<Timestamp> {
    s.trim().parse::<Timestamp>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acs_timestamp_format_round_trips() {
        let t: Timestamp = "2023-03-13T08:34:30.999Z".parse().unwrap();
        assert_eq!(format_acs_timestamp(t), "2023-03-13T08:34:30Z");
        assert_eq!(
            parse_acs_timestamp("2023-03-13T08:34:30Z"),
            Some("2023-03-13T08:34:30Z".parse().unwrap())
        );
        assert_eq!(parse_acs_timestamp("yesterday"), None);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let t: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let clock = FixedClock::new(t);
        assert_eq!(clock.now(), t);
        let later: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        clock.set(later);
        assert_eq!(clock.now(), later);
    }
}
