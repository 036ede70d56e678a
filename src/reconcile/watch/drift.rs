//! When each resource's periodic drift check against EIAM (one List) is due, so that a restart, a rolling upgrade
//! or a leader failover costs no EIAM call for resources that are not due.
//!
//! Every resource has a fixed *phase* within `--resync-interval`, derived from its uid by a stable hash: its drift
//! checks fall at `phase + k × interval`. The phases spread the checks evenly over the interval whatever the
//! starting point, and a new process computes the same schedule as the one before it — so nothing needs to be
//! persisted, and a restart does not re-check everything at once (the startup storm of ESO and friends). A process
//! that has not itself checked a resource yet assumes the previous slot was handled; at worst one check is skipped
//! by a crash, and the next slot (at most one interval later) makes up for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// What this process knows about one resource's drift check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// It listed the application at this instant.
    At(Timestamp),
    /// Something made the last observation doubtful (an Obtain failed): check at the next reconcile.
    Forced,
}

/// The drift-check schedule of every resource this process reconciles, by a caller-chosen key.
#[derive(Debug)]
pub struct DriftSchedule<K> {
    interval: Duration,
    checks: Mutex<HashMap<K, Checked>>,
}

impl<K: std::hash::Hash + Eq + Clone> DriftSchedule<K> {
    /// A schedule with one check per `interval` per resource.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            checks: Mutex::default(),
        }
    }

    /// Whether the resource (`identity`: its uid) should list EIAM now.
    pub fn is_due(&self, key: &K, identity: &str, now: Timestamp) -> bool {
        let slot = previous_slot(now, phase(identity, self.interval), self.interval);
        let Ok(mut checks) = self.checks.lock() else {
            return false;
        };
        match checks.get(key).copied() {
            Some(Checked::Forced) => true,
            Some(Checked::At(at)) => at < slot,
            None => {
                // Not checked by this process: the previous slot was the previous process's (or, for a new
                // resource, its first issue's). Counting from now makes the next slot due; without this a resource
                // that never needs a List for anything else (no rotation does) would never be checked.
                checks.insert(key.clone(), Checked::At(now));
                false
            }
        }
    }

    /// The resource listed EIAM at `now`.
    pub fn checked(&self, key: &K, now: Timestamp) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(key.clone(), Checked::At(now));
        }
    }

    /// Make the next reconcile of the resource list EIAM.
    pub fn force(&self, key: &K) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(key.clone(), Checked::Forced);
        }
    }

    /// The resource is gone: drop what is known about it, so the map does not grow with churn.
    pub fn forget(&self, key: &K) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.remove(key);
        }
    }

    /// How long until the resource's next slot (never zero: a wake-up lands just after the slot).
    pub fn until_next(&self, identity: &str, now: Timestamp) -> Duration {
        let next = next_slot(now, phase(identity, self.interval), self.interval);
        Duration::try_from(now.duration_until(next)).unwrap_or(Duration::ZERO) + SLOT_MARGIN
    }

    /// Keeps only the resources `exists` says are still there (after a relist, whose deletions come as no event).
    pub fn retain(&self, exists: impl Fn(&K) -> bool) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.retain(|key, _| exists(key));
        }
    }

    /// How many resources the schedule holds (for tests of the pruning).
    pub fn len(&self) -> usize {
        self.checks.lock().map(|c| c.len()).unwrap_or_default()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Added to a wake-up so that it lands after its slot, not a hair before it.
const SLOT_MARGIN: Duration = Duration::from_millis(500);

/// The resource's offset within the interval: FNV-1a of its identity, stable across processes and versions.
pub fn phase(identity: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in identity.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let period = interval.as_millis().max(1) as u64;
    Duration::from_millis(hash % period)
}

/// The latest `phase + k × interval` (since the UNIX epoch) at or before `now`.
pub fn previous_slot(now: Timestamp, phase: Duration, interval: Duration) -> Timestamp {
    let period = interval.as_millis().max(1) as i128;
    let offset = phase.as_millis() as i128;
    let now_ms = now.as_millisecond() as i128;
    let slot = now_ms - (now_ms - offset).rem_euclid(period);
    Timestamp::from_millisecond(slot as i64).unwrap_or(now)
}

/// The earliest slot strictly after `now`.
pub fn next_slot(now: Timestamp, phase: Duration, interval: Duration) -> Timestamp {
    let interval = SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX);
    previous_slot(now, phase, interval.unsigned_abs())
        .checked_add(interval)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + seconds).expect("a timestamp")
    }

    #[test]
    fn slots_bracket_now_and_repeat_every_interval() {
        let phase = Duration::from_secs(600);
        for now in [at(0), at(1), at(3599), at(86_400 * 3 + 17)] {
            let previous = previous_slot(now, phase, HOUR);
            let next = next_slot(now, phase, HOUR);
            assert!(
                previous <= now && now < next,
                "{previous} <= {now} < {next}"
            );
            assert_eq!(previous.duration_until(next), SignedDuration::from_hours(1));
            // Every slot sits at the same offset within the hour grid.
            assert_eq!(
                (previous.as_millisecond() - 600_000).rem_euclid(3_600_000),
                0
            );
        }
        let exactly = previous_slot(at(0), phase, HOUR);
        assert_eq!(
            previous_slot(exactly, phase, HOUR),
            exactly,
            "a slot is its own previous slot"
        );
    }

    #[test]
    fn phases_are_stable_and_spread_over_the_interval() {
        assert_eq!(phase("uid-1", HOUR), phase("uid-1", HOUR));
        // 10,000 uids over 10 buckets of the hour: each bucket within 10% of a tenth.
        let mut buckets = [0usize; 10];
        for i in 0..10_000 {
            let uid = format!("5f0c4d1e-{i:04x}-4b7a-9c3e-1a2b3c4d5e6f");
            let p = phase(&uid, HOUR);
            assert!(p < HOUR);
            buckets[(p.as_secs() / 360) as usize] += 1;
        }
        for count in buckets {
            assert!((900..=1100).contains(&count), "{buckets:?}");
        }
    }

    #[test]
    fn a_new_process_checks_nothing_until_each_resource_reaches_its_slot() {
        let schedule = DriftSchedule::<&str>::new(HOUR);
        let now = at(0);
        assert!(!schedule.is_due(&"a", "uid-a", now), "not at start");
        // It wakes up at its slot, checks, and is not due again until the following slot: without having listed
        // in between (a resource that needs no List for anything else still gets its drift check).
        let wake = now
            .checked_add(schedule.until_next("uid-a", now))
            .expect("a time");
        assert!(schedule.is_due(&"a", "uid-a", wake));
        schedule.checked(&"a", wake);
        assert!(!schedule.is_due(&"a", "uid-a", wake));
        let before_next = wake
            .checked_add(SignedDuration::from_mins(59))
            .expect("a time");
        assert!(!schedule.is_due(&"a", "uid-a", before_next));
        assert!(schedule.until_next("uid-a", wake) <= HOUR + SLOT_MARGIN);
    }

    #[test]
    fn forcing_makes_it_due_and_forgetting_prunes_it() {
        let schedule = DriftSchedule::<&str>::new(HOUR);
        schedule.checked(&"a", at(0));
        schedule.force(&"a");
        assert!(schedule.is_due(&"a", "uid-a", at(1)));
        assert_eq!(schedule.len(), 1);
        schedule.forget(&"a");
        assert!(schedule.is_empty());
    }
}
