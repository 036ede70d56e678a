//! Rotation windows: the spans of time in which a *scheduled* renewal may happen (change freezes stay quiet).
//! Pure: every answer derives from the windows and the instant asked about, so the planner stays free of clocks.
//!
//! A window opens at each time its 5-field cron schedule names, in its IANA time zone, and stays open for its
//! duration. Schedules are evaluated by `jiff-cron` (a port of the `cron` crate), with the time zone database
//! bundled into the binary (the image has no `/usr/share/zoneinfo`).

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use jiff_cron::Schedule;

/// A window that never opens within this long is refused: it would hold renewals forever.
pub const WINDOW_HORIZON: Duration = Duration::from_secs(366 * 24 * 3600);

/// One entry of `spec.rotation.windows`, unparsed.
#[derive(Debug, Clone, Copy)]
pub struct WindowSpec<'a> {
    pub schedule: &'a str,
    pub duration: Duration,
    pub time_zone: &'a str,
}

/// Why a window list is unusable; the message names the entry and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.rotation.windows[{index}].{field}: {reason}")]
pub struct WindowError {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

/// The parsed windows; empty means renewals happen whenever due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationWindows {
    windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    schedule: Schedule,
    duration: Duration,
    zone: TimeZone,
}

impl RotationWindows {
    /// Parses the windows. A schedule has five fields (`minute hour day-of-month month day-of-week`); the
    /// day of week is given by name (`MON-FRI`, `SAT,SUN`) or `*`.
    pub fn parse(specs: &[WindowSpec<'_>]) -> Result<Self, WindowError> {
        let windows = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let error = |field: &'static str, reason: String| WindowError {
                    index,
                    field,
                    reason,
                };
                let fields: Vec<&str> = spec.schedule.split_whitespace().collect();
                let [_, _, _, _, day_of_week] = fields.as_slice() else {
                    return Err(error(
                        "schedule",
                        format!(
                            "{:?} has {} fields; a schedule has five: minute hour day-of-month month day-of-week",
                            spec.schedule,
                            fields.len()
                        ),
                    ));
                };
                if day_of_week.chars().any(|c| c.is_ascii_digit()) {
                    // Numbers mean different days to different cron dialects (0 or 1 for Sunday): names only.
                    return Err(error(
                        "schedule",
                        format!(
                            "day of week {day_of_week:?}: use names (MON-FRI, SAT,SUN) or *, not numbers"
                        ),
                    ));
                }
                let schedule = Schedule::from_str(&format!("0 {}", fields.join(" ")))
                    .map_err(|e| error("schedule", format!("{:?}: {e}", spec.schedule)))?;
                let zone = TimeZone::get(spec.time_zone).map_err(|_| {
                    error(
                        "timeZone",
                        format!("{:?} is not an IANA time zone (for example Asia/Shanghai)", spec.time_zone),
                    )
                })?;
                if spec.duration < Duration::from_secs(60) {
                    return Err(error("duration", "must be at least 1m".to_owned()));
                }
                Ok(Window {
                    schedule,
                    duration: spec.duration,
                    zone,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { windows })
    }

    /// No windows: renewals happen whenever due.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether a window is open at `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        self.windows.iter().any(|w| w.open_at(t))
    }

    /// The first instant at or after `t` at which a window is open; `None` if none ever opens.
    pub fn next_open(&self, t: Timestamp) -> Option<Timestamp> {
        if self.is_open(t) {
            return Some(t);
        }
        self.windows.iter().filter_map(|w| w.start_after(t)).min()
    }

    /// The first window that does not open within [`WINDOW_HORIZON`] of `now`, with its index.
    pub fn never_opening(&self, now: Timestamp) -> Option<WindowError> {
        let horizon = now.saturating_add(WINDOW_HORIZON).unwrap_or(Timestamp::MAX);
        self.windows
            .iter()
            .position(|w| w.start_after(now).is_none_or(|start| start > horizon))
            .map(|index| WindowError {
                index,
                field: "schedule",
                reason: "never opens within a year; fix the schedule or remove the window"
                    .to_owned(),
            })
    }
}

impl Window {
    /// Open at `t`: the first start after `t − duration` (if any) is not after `t`.
    fn open_at(&self, t: Timestamp) -> bool {
        let from = t.saturating_sub(self.duration).unwrap_or(Timestamp::MIN);
        self.start_after(from).is_some_and(|start| start <= t)
    }

    /// The first time the window opens strictly after `t`.
    fn start_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.schedule
            .after(t.to_zoned(self.zone.clone()))
            .next()
            .map(|start| start.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(specs: &[(&str, u64, &str)]) -> RotationWindows {
        let specs: Vec<WindowSpec<'_>> = specs
            .iter()
            .map(|(schedule, minutes, zone)| WindowSpec {
                schedule,
                duration: Duration::from_secs(minutes * 60),
                time_zone: zone,
            })
            .collect();
        RotationWindows::parse(&specs).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_weekday_night_window_in_a_time_zone() {
        // 01:00-03:00 Shanghai time (UTC+8) on weekdays = 17:00-19:00 UTC the evening before.
        let w = windows(&[("0 1 * * MON-FRI", 120, "Asia/Shanghai")]);
        assert!(
            w.is_open(at("2026-11-30T17:30:00Z")),
            "Tuesday 01:30 in Shanghai"
        );
        assert!(!w.is_open(at("2026-11-30T19:00:00Z")), "closed at 03:00");
        assert!(
            !w.is_open(at("2026-11-28T17:30:00Z")),
            "Sunday 01:30 is not a weekday"
        );
        assert_eq!(
            w.next_open(at("2026-11-30T19:00:00Z")),
            Some(at("2026-12-01T17:00:00Z"))
        );
        assert_eq!(
            w.next_open(at("2026-11-30T17:30:00Z")),
            Some(at("2026-11-30T17:30:00Z"))
        );
        // Friday evening UTC after the window: next is Sunday 17:00 UTC (Monday 01:00 in Shanghai).
        assert_eq!(
            w.next_open(at("2026-12-04T20:00:00Z")),
            Some(at("2026-12-06T17:00:00Z"))
        );
    }

    #[test]
    fn several_windows_open_at_the_earliest() {
        let w = windows(&[("0 3 * * SAT", 60, "UTC"), ("30 22 * * *", 30, "UTC")]);
        assert_eq!(
            w.next_open(at("2026-12-05T01:00:00Z")),
            Some(at("2026-12-05T03:00:00Z"))
        );
        assert_eq!(
            w.next_open(at("2026-12-05T04:00:00Z")),
            Some(at("2026-12-05T22:30:00Z"))
        );
    }

    #[test]
    fn daylight_saving_time_follows_the_zone() {
        // 02:30 local in Berlin: UTC+1 in winter, UTC+2 in summer.
        let w = windows(&[("30 2 * * *", 10, "Europe/Berlin")]);
        assert!(w.is_open(at("2026-01-15T01:35:00Z")));
        assert!(w.is_open(at("2026-07-15T00:35:00Z")));
    }

    #[test]
    fn bad_windows_are_refused_naming_the_entry_and_field() {
        let parse = |schedule: &str, minutes: u64, zone: &str| {
            RotationWindows::parse(&[
                WindowSpec {
                    schedule: "* * * * *",
                    duration: Duration::from_secs(60),
                    time_zone: "UTC",
                },
                WindowSpec {
                    schedule,
                    duration: Duration::from_secs(minutes * 60),
                    time_zone: zone,
                },
            ])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert!(parse("0 1 * *", 60, "UTC").starts_with("spec.rotation.windows[1].schedule:"));
        assert!(parse("0 25 * * *", 60, "UTC").starts_with("spec.rotation.windows[1].schedule:"));
        assert!(parse("0 1 * * 1-5", 60, "UTC").contains("use names"));
        assert!(
            parse("0 1 * * *", 60, "Mars/Olympus")
                .starts_with("spec.rotation.windows[1].timeZone:")
        );
        assert!(parse("0 1 * * *", 0, "UTC").starts_with("spec.rotation.windows[1].duration:"));
    }

    #[test]
    fn a_window_that_never_opens_is_found() {
        // 30 February never comes.
        let w = windows(&[("* * * * *", 1, "UTC"), ("0 0 30 FEB *", 60, "UTC")]);
        let error = w
            .never_opening(at("2026-11-29T00:00:00Z"))
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "spec.rotation.windows[1].schedule: never opens within a year; fix the schedule or remove the window"
            )
        );
        assert_eq!(
            windows(&[("0 0 1 1 *", 60, "UTC")]).never_opening(at("2026-11-29T00:00:00Z")),
            None
        );
    }
}
