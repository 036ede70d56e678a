//! The `ExpirationTime` sent with `CreateApplicationClientSecret`, computed when the request is signed.
//!
//! EIAM accepts an ExpirationTime between now + 1 day and now + 1095 days, by *its own* clock at the moment it
//! handles the request. A time fixed earlier (when the reconcile planned the Create) falls below the lower bound
//! by the time a request for the documented minimum lifetime (`24h`) arrives: rate-limiter waits, retries, network
//! latency and clock skew all eat into it. So the time is computed at signing, and kept [`MARGIN`] inside both
//! bounds: a 24h lifetime becomes 24h + 10 min, a three-year one three years − 10 min.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The shortest lifetime EIAM accepts.
pub const MIN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The longest lifetime EIAM accepts (1095 days).
pub const MAX_LIFETIME: Duration = Duration::from_secs(1095 * 24 * 3600);
/// How far inside EIAM's bounds a computed ExpirationTime stays: covers the time between signing and EIAM's check
/// (limiter, latency) and a clock skew of several minutes (EIAM itself refuses timestamps 15 minutes off).
pub const MARGIN: Duration = Duration::from_secs(600);

/// The ExpirationTime for a secret of `lifetime`, requested at `signed_at`: `signed_at + lifetime`, kept at least
/// [`MARGIN`] above the lower bound and below the upper one.
pub fn expiration_for(signed_at: Timestamp, lifetime: Duration) -> Timestamp {
    let lifetime = lifetime.clamp(MIN_LIFETIME + MARGIN, MAX_LIFETIME - MARGIN);
    SignedDuration::try_from(lifetime)
        .ok()
        .and_then(|lifetime| signed_at.checked_add(lifetime).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How much longer than `lifetime` a secret minted for it lives: the part of the lower margin the lifetime does
/// not already have (zero for lifetimes of a day and ten minutes or more). A renewal planned as `notAfter −
/// renewBefore` moves back by it, so it happens when the spec says.
pub fn stretch(lifetime: Duration) -> Duration {
    (MIN_LIFETIME + MARGIN).saturating_sub(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + seconds).expect("a timestamp")
    }

    fn lifetime(from: Timestamp, to: Timestamp) -> Duration {
        Duration::try_from(from.duration_until(to)).expect("positive")
    }

    #[test]
    fn ordinary_lifetimes_are_sent_as_they_are() {
        let ninety_days = Duration::from_secs(90 * 24 * 3600);
        assert_eq!(
            lifetime(at(0), expiration_for(at(0), ninety_days)),
            ninety_days
        );
    }

    #[test]
    fn the_bounds_keep_a_margin_so_latency_and_skew_never_cross_them() {
        let minimum = expiration_for(at(0), MIN_LIFETIME);
        assert_eq!(lifetime(at(0), minimum), MIN_LIFETIME + MARGIN);
        // EIAM checks later than we signed (latency, a retry) or with a clock ahead of ours: still inside.
        let eiam_now = at(0)
            .checked_add(SignedDuration::from_mins(9))
            .expect("a time");
        assert!(lifetime(eiam_now, minimum) > MIN_LIFETIME);

        let maximum = expiration_for(at(0), MAX_LIFETIME);
        assert_eq!(lifetime(at(0), maximum), MAX_LIFETIME - MARGIN);
        let eiam_behind = at(0)
            .checked_sub(SignedDuration::from_mins(9))
            .expect("a time");
        assert!(lifetime(eiam_behind, maximum) < MAX_LIFETIME);
    }

    #[test]
    fn the_stretch_is_what_the_lower_margin_added() {
        assert_eq!(stretch(MIN_LIFETIME), MARGIN);
        assert_eq!(
            stretch(MIN_LIFETIME + Duration::from_secs(60)),
            MARGIN - Duration::from_secs(60)
        );
        assert_eq!(stretch(Duration::from_secs(90 * 24 * 3600)), Duration::ZERO);
        for lifetime in [
            MIN_LIFETIME,
            MIN_LIFETIME + Duration::from_secs(300),
            MAX_LIFETIME,
        ] {
            let sent = lifetime_of(expiration_for(at(0), lifetime));
            assert!(sent >= lifetime.saturating_sub(MARGIN));
            if lifetime < MAX_LIFETIME - MARGIN {
                assert_eq!(sent, lifetime + stretch(lifetime));
            }
        }
    }

    fn lifetime_of(expiration: Timestamp) -> Duration {
        lifetime(at(0), expiration)
    }

    #[test]
    fn computed_later_is_later_by_the_same_amount() {
        let later = at(0)
            .checked_add(SignedDuration::from_secs(42))
            .expect("a time");
        assert_eq!(
            expiration_for(at(0), MIN_LIFETIME).duration_until(expiration_for(later, MIN_LIFETIME)),
            SignedDuration::from_secs(42)
        );
    }
}
