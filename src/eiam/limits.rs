//! Bounds on everything the operator accepts from an endpoint it calls — EIAM, STS, the ECS metadata service.
//!
//! A tenant may point its provider at any endpoint, so every answer is hostile input: one deadline covers connect,
//! headers and body; a body is read up to a cap, never whole; every number parsed from an answer is clamped with
//! conversions that cannot panic; every text that travels on into status, events and logs is cut to a size.

use std::time::Duration;

/// The default deadline of one HTTP request, from connecting to the last byte of the body (`--eiam-call-timeout`).
pub const DEFAULT_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The most bytes read of one response body. EIAM, STS and the metadata service answer with a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The longest `x-acs-retry-after` taken from an answer (longer values are clamped to it): the backoff of a
/// reconcile never exceeds five minutes anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The longest EIAM error `Code` kept (longer ones are cut); real codes are a few dozen characters.
pub const MAX_CODE_CHARS: usize = 128;
/// The longest EIAM error `Message` kept (longer ones are cut, with an ellipsis).
pub const MAX_MESSAGE_CHARS: usize = 512;
/// The longest `RequestId` kept; real ones are 36-character UUIDs.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// The most secrets a List may answer: an application holds two (the limit is EIAM's); more is not EIAM.
pub const MAX_LISTED_SECRETS: usize = 16;
/// The longest secret or client id accepted in an answer; real ones are a few dozen characters.
pub const MAX_ID_CHARS: usize = 256;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body grew past the cap (or announced a length past it).
    #[error("the response body exceeds {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// Reads `response`'s body, at most `limit` bytes: a body announced or grown past it is abandoned (and its
/// connection with it) without reading the rest.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = response
        .content_length()
        .and_then(|length| usize::try_from(length).ok());
    if announced.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(announced.unwrap_or(0).min(limit));
    while let Some(chunk) = response.chunk().await? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `x-acs-retry-after` (milliseconds, as the official SDK reads it): only a finite, positive number counts, and
/// it is clamped to [`MAX_RETRY_AFTER`]. `1e300`, `inf` or `-5` cannot panic or stall anything.
pub fn retry_after_from_ms(text: &str) -> Option<Duration> {
    let ms: f64 = text.trim().parse().ok()?;
    if !(ms.is_finite() && ms > 0.0) {
        return None;
    }
    let seconds = (ms / 1000.0).min(MAX_RETRY_AFTER.as_secs_f64());
    Duration::try_from_secs_f64(seconds).ok()
}

/// `text` cut to at most `max` characters (at a character boundary), with `…` when cut.
pub fn bounded(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_positive_finite_milliseconds_and_clamps_the_rest() {
        assert_eq!(
            retry_after_from_ms("1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_from_ms(" 250.5 "),
            Some(Duration::from_micros(250_500))
        );
        for huge in ["1e300", "1e20", "18446744073709551616000"] {
            assert_eq!(retry_after_from_ms(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for nothing in ["0", "-5", "inf", "-inf", "NaN", "", "soon", "1e400"] {
            assert_eq!(retry_after_from_ms(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn texts_are_cut_at_a_character_boundary() {
        assert_eq!(bounded("short".into(), 10), "short");
        assert_eq!(bounded("abcdef".into(), 3), "abc…");
        assert_eq!(bounded("ééééé".into(), 2), "éé…");
        assert_eq!(bounded(String::new(), 0), "");
    }
}
