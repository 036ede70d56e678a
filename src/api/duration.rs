//! Go duration strings (`2160h`, `23h59m45s`, `1.5h`): the syntax of every duration field in the API.
//!
//! The CRD stores durations as strings because the API server's CEL `duration()` function (which the admission
//! rules use) and `kubectl` users both speak Go's `time.ParseDuration` syntax. This module parses exactly that
//! syntax so the operator reads a field the same way the API server validated it.

use std::time::Duration;

/// Why a duration string could not be parsed. Each message quotes the input and shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration: write a Go duration such as \"2160h\", \"90m\" or \"1h30m\"")]
    Empty,
    /// Something other than a number followed by a unit was found.
    #[error(
        "invalid duration {input:?}: write a Go duration such as \"2160h\", \"90m\" or \"1h30m\""
    )]
    Invalid {
        /// The rejected input.
        input: String,
    },
    /// A number was not followed by a unit.
    #[error(
        "missing unit in duration {input:?}: add one of h, m, s, ms, us, ns (for example \"24h\")"
    )]
    MissingUnit {
        /// The rejected input.
        input: String,
    },
    /// A unit other than h, m, s, ms, us/µs, ns.
    #[error("unknown unit {unit:?} in duration {input:?}: use one of h, m, s, ms, us, ns")]
    UnknownUnit {
        /// The unknown unit as written.
        unit: String,
        /// The rejected input.
        input: String,
    },
    /// A negative duration (Go accepts them; no field of this API does).
    #[error("negative duration {input:?}: durations in this API must be positive")]
    Negative {
        /// The rejected input.
        input: String,
    },
    /// More than Go's maximum of 2562047h47m16.854775807s.
    #[error("duration {input:?} is too large: the maximum is about 2562047h")]
    Overflow {
        /// The rejected input.
        input: String,
    },
}

/// Go's `time.Duration` is an `int64` of nanoseconds; stay within it so both sides agree on what is valid.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a Go duration string (`time.ParseDuration` syntax, which is also what the API server's CEL
/// `duration()` accepts): an optional sign, then one or more `<number><unit>` pairs with units
/// `h`, `m`, `s`, `ms`, `us` (or `µs`/`μs`), `ns`; numbers may have a fraction (`1.5h`, `.5s`); the bare
/// string `"0"` is zero. Negative durations are rejected because no field of this API may be negative.
///
/// ```
/// use std::time::Duration;
/// use eiam_operator::api::parse_duration;
/// assert_eq!(parse_duration("2160h").unwrap(), Duration::from_secs(2160 * 3600));
/// assert_eq!(parse_duration("23h59m45s").unwrap(), Duration::from_secs(24 * 3600 - 15));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert!(parse_duration("10").is_err());
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, rest) = match input.as_bytes()[0] {
        b'-' => (true, &input[1..]),
        b'+' => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: u128 = 0;
    let mut s = rest;
    while !s.is_empty() {
        // The number: digits, optionally '.', optionally more digits; at least one digit overall.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = s.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }

        // The unit: everything up to the next digit or '.'.
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: input.to_owned(),
                });
            }
        };

        let overflow = || DurationError::Overflow {
            input: input.to_owned(),
        };
        // Integer part: any value beyond MAX_NANOS overflows, so parse with a cap instead of trusting length.
        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole * 10 + u128::from(digit - b'0');
            if whole > MAX_NANOS {
                return Err(overflow());
            }
        }
        let mut value = whole * unit_nanos;
        // Fraction: exact integer arithmetic, truncated to whole nanoseconds. Digits beyond the 18th cannot
        // change the result by a nanosecond for any unit up to an hour, so they are read but ignored.
        let mut fraction: u128 = 0;
        let mut scale: u128 = 1;
        for digit in frac_digits.bytes().take(18) {
            fraction = fraction * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        value += fraction * unit_nanos / scale;
        total += value;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        s = after_unit;
    }

    if negative && total != 0 {
        return Err(DurationError::Negative {
            input: input.to_owned(),
        });
    }
    // total <= i64::MAX, so both conversions are lossless.
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration the way Go's `time.Duration.String()` does for whole seconds and above (`2160h0m0s`,
/// `1h30m0s`, `45s`), falling back to fractional seconds (`1.5s`) and `ms`/`us`/`ns` below one second. The
/// output parses back with [`parse_duration`] and with CEL `duration()`.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_owned();
    }
    if total < 1_000 {
        return format!("{total}ns");
    }
    if total < 1_000_000 {
        return format!("{}us", trim_fraction(total, 1_000));
    }
    if total < 1_000_000_000 {
        return format!("{}ms", trim_fraction(total, 1_000_000));
    }
    let hours = total / 3_600_000_000_000;
    let minutes = (total / 60_000_000_000) % 60;
    let second_nanos = total % 60_000_000_000;
    let seconds = trim_fraction(second_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` as a decimal without trailing zeros (`1500, 1000` -> `1.5`).
fn trim_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let fraction = format!("{rest:0width$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    #[test]
    fn parses_go_syntax() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("24h", Duration::from_secs(24 * HOUR)),
            ("26280h", Duration::from_secs(26280 * HOUR)),
            ("2160h", Duration::from_secs(2160 * HOUR)),
            ("23h59m45s", Duration::from_secs(24 * HOUR - 15)),
            ("1h30m", Duration::from_secs(5400)),
            ("90s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("100ms", Duration::from_millis(100)),
            ("7us", Duration::from_micros(7)),
            ("7\u{00b5}s", Duration::from_micros(7)),
            ("7\u{03bc}s", Duration::from_micros(7)),
            ("3ns", Duration::from_nanos(3)),
            ("1h1h", Duration::from_secs(2 * HOUR)),
            ("1.000000001s", Duration::new(1, 1)),
            ("0.1234567890123456789s", Duration::new(0, 123_456_789)),
            ("+5m", Duration::from_secs(300)),
            (
                "2562047h47m16.854775807s",
                Duration::new(9_223_372_036, 854_775_807),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input).as_ref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for input in ["-", "+", ".", "h", " 1h", "one hour", "1h.."] {
            assert!(
                matches!(parse_duration(input), Err(DurationError::Invalid { .. })),
                "{input}: {:?}",
                parse_duration(input)
            );
        }
        for input in ["10", "1h30", "5.", "1.2.3h"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(DurationError::MissingUnit { .. })
                ),
                "{input}"
            );
        }
        for input in ["1d", "1H", "3y", "2w", "5sec", "1h ", "1h-1m"] {
            assert!(
                matches!(
                    parse_duration(input),
                    Err(DurationError::UnknownUnit { .. })
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_negative_and_overflow() {
        assert!(matches!(
            parse_duration("-1h"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_duration("2562048h"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("2562047h47m16.854775808s"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999h"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn errors_quote_the_input_and_say_what_to_write() {
        let message = parse_duration("3d").unwrap_err().to_string();
        assert!(message.contains("\"3d\""), "{message}");
        assert!(message.contains("h, m, s"), "{message}");
    }

    #[test]
    fn formats_like_go_and_round_trips() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(2160 * HOUR), "2160h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(7), "7us"),
            (Duration::from_nanos(3), "3ns"),
            (Duration::from_secs(24 * HOUR - 15), "23h59m45s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(&format_duration(*duration), expected);
            assert_eq!(parse_duration(expected).as_ref(), Ok(duration));
        }
    }
}
