//! Time: Gemba stores instants as milliseconds since the Unix epoch (UTC) in an `i64`.
//!
//! Time is injected through [`Clock`] so that retention, rollups, windows and alarms can be tested
//! with a [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ValueError;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Timestamp = i64;

/// Earliest timestamp Gemba accepts: 1990-01-01T00:00:00Z. Anything older is a unit mistake
/// (seconds sent as milliseconds) far more often than real data.
pub const MIN_TIMESTAMP: Timestamp = 631_152_000_000;
/// Latest timestamp Gemba accepts in any case: 2200-01-01T00:00:00Z.
pub const MAX_TIMESTAMP: Timestamp = 7_258_118_400_000;

/// Earliest instant [`parse_timestamp`] accepts: 0000-01-01T00:00:00Z, the first one RFC 3339 can
/// write. Together with [`PARSE_MAX_TIMESTAMP`] and [`MAX_DURATION_MS`] this keeps every parsed
/// time within ±2^48 ms, so that sums and differences of a few of them cannot overflow an `i64`
/// (a query `from=-9223372036854775808` is a 400, not an overflow further down).
pub const PARSE_MIN_TIMESTAMP: Timestamp = -62_167_219_200_000;
/// Latest instant [`parse_timestamp`] accepts: 9999-12-31T23:59:59.999Z.
pub const PARSE_MAX_TIMESTAMP: Timestamp = 253_402_300_799_999;
/// Longest duration [`parse_duration_ms`] accepts: the span between the two (about 10,000 years).
pub const MAX_DURATION_MS: i64 = PARSE_MAX_TIMESTAMP - PARSE_MIN_TIMESTAMP;

/// Source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Timestamp {
        let now = OffsetDateTime::now_utc();
        (now.unix_timestamp_nanos() / 1_000_000) as Timestamp
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start))
    }
    pub fn set(&self, ts: Timestamp) {
        self.0.store(ts, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// Checks that `ts` is plausible: not before 1990, and not more than `max_future_ms` ahead of `now`.
pub fn check_timestamp(
    ts: Timestamp,
    now: Timestamp,
    max_future_ms: i64,
) -> Result<(), ValueError> {
    if ts < MIN_TIMESTAMP {
        return Err(ValueError::TimestampOutOfRange {
            ts,
            reason: "before 1990-01-01T00:00:00Z (timestamps are milliseconds since the Unix epoch; was it sent in seconds?)".to_string(),
        });
    }
    let limit = now.saturating_add(max_future_ms).min(MAX_TIMESTAMP);
    if ts > limit {
        return Err(ValueError::TimestampOutOfRange {
            ts,
            reason: format!(
                "more than {} s in the future (now is {})",
                max_future_ms / 1000,
                format_rfc3339(now)
            ),
        });
    }
    Ok(())
}

/// Parses integer milliseconds since the epoch or an RFC 3339 date-time.
pub fn parse_timestamp(input: &str) -> Result<Timestamp, ValueError> {
    let s = input.trim();
    let ms = match s.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => {
            let syntax = || ValueError::TimestampSyntax {
                input: input.to_owned(),
            };
            let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| syntax())?;
            i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).map_err(|_| syntax())?
        }
    };
    if !(PARSE_MIN_TIMESTAMP..=PARSE_MAX_TIMESTAMP).contains(&ms) {
        return Err(ValueError::TimestampOutOfRange {
            ts: ms,
            reason: format!(
                "timestamps are milliseconds from {PARSE_MIN_TIMESTAMP} (year 0) to \
                 {PARSE_MAX_TIMESTAMP} (year 9999)"
            ),
        });
    }
    Ok(ms)
}

/// Formats a timestamp as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(ts: Timestamp) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1_000_000) {
        Ok(dt) => dt.format(&Rfc3339).unwrap_or_else(|_| ts.to_string()),
        Err(_) => ts.to_string(),
    }
}

/// Parses a duration such as `500ms`, `30s`, `15m`, `1h`, `7d` into milliseconds.
pub fn parse_duration_ms(input: &str) -> Result<i64, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {input:?} has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("duration {input:?} does not start with a whole number"))?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "duration {input:?} has unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0 && *v <= MAX_DURATION_MS)
        .ok_or_else(|| {
            format!("duration {input:?} must be positive and at most {MAX_DURATION_MS} ms (10,000 years)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.5+01:00"),
            Ok(1_700_000_000_500)
        );
        assert!(parse_timestamp("yesterday").is_err());
        // Integers beyond the years 0–9999 are refused, so that a difference of two cannot overflow.
        assert_eq!(parse_timestamp("0"), Ok(0));
        assert_eq!(parse_timestamp("253402300799999"), Ok(PARSE_MAX_TIMESTAMP));
        assert_eq!(parse_timestamp("-62167219200000"), Ok(PARSE_MIN_TIMESTAMP));
        assert_eq!(
            parse_timestamp("0000-01-01T00:00:00Z"),
            Ok(PARSE_MIN_TIMESTAMP)
        );
        for bad in [
            "-9223372036854775808",
            "9223372036854775807",
            "253402300800000",
            "-62167219200001",
        ] {
            let e = parse_timestamp(bad).expect_err(bad);
            assert!(
                matches!(e, ValueError::TimestampOutOfRange { .. }),
                "{bad}: {e}"
            );
        }
        assert!(parse_duration_ms("9223372036854775807ms").is_err());
        assert_eq!(parse_duration_ms("3650000d"), Ok(3_650_000 * 86_400_000));
        assert!(parse_duration_ms("3660000d").is_err());
        let span = PARSE_MAX_TIMESTAMP - PARSE_MIN_TIMESTAMP;
        assert!(span.checked_mul(4).is_some(), "sums of a few stay in range");
        assert_eq!(format_rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rejects_implausible_timestamps() {
        let now = 1_700_000_000_000;
        assert!(check_timestamp(now, now, 60_000).is_ok());
        assert!(check_timestamp(1_700_000_000, now, 60_000).is_err());
        assert!(check_timestamp(now + 120_000, now, 60_000).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("15m"), Ok(900_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert!(parse_duration_ms("7").is_err());
        assert!(parse_duration_ms("0s").is_err());
        assert!(parse_duration_ms("3 weeks").is_err());
    }
}
