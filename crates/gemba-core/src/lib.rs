//! Gemba's domain: the ISA-95 asset model (enterprise › site › area › line › machine › signal),
//! samples, events, material lots, operators and shifts, the clock and the sites' time zones.
//!
//! Architecture invariant: this crate does no IO (no files, sockets, threads or global state). Every
//! Gemba crate but the pure numeric ones (`gemba-ml`, `gemba-nn`) depends on it; it depends on none
//! of them. Types that cross a boundary (plant
//! file, HTTP, MQTT) derive serde here so that there is exactly one definition of each.

pub mod asset;
pub mod error;
pub mod event;
pub mod sample;
pub mod time;
pub mod zone;

pub use asset::{
    AssetModel, AssetNode, Level, LotDef, LotState, MachineDef, OperatorDef, Plant, Range,
    ShiftDef, SignalDef, SignalKind, SignalSpec, SpecLimits, TreeNode, check_path, is_under,
    level_of,
};
pub use error::{ModelError, ValueError};
pub use event::{Event, EventBody};
pub use sample::{Point, Sample};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use zone::{UnknownZone, Zone};

/// `text` quoted for an error message or a log line, with at most `max_chars` characters between
/// the quotes: input from outside can be megabytes, and an error that quotes it whole grows
/// responses and logs by as much. The budget counts the quote as written, escapes included (a
/// control character is written as up to ten characters, `\u{10ffff}`), so the result is never
/// longer than `max_chars` plus the quotes and the tail. A clipped quote ends in `…` and names the
/// full length in bytes.
pub fn quote_clipped(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(text.len().saturating_mul(2)) + 2);
    out.push('"');
    let mut written = 0;
    for c in text.chars() {
        let escaped = c.escape_debug();
        let n = escaped.len();
        if written + n > max_chars {
            out.push('"');
            out.push_str(&format!("… ({} bytes)", text.len()));
            return out;
        }
        written += n;
        out.extend(escaped);
    }
    out.push('"');
    out
}

/// Checks one path segment (a site, area, line, machine or signal name).
///
/// Names are 1–64 characters of ASCII letters, digits, `_`, `-` and `.`, so that they are safe in
/// MQTT topics, URLs, file names and SQL without quoting.
pub fn check_segment(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 64 {
        return Err("is longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("may only contain ASCII letters, digits, '_', '-' and '.'");
    }
    if name == "." || name == ".." {
        return Err("may not be '.' or '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_quoted_clipped_with_its_length() {
        assert_eq!(quote_clipped("abc", 3), "\"abc\"");
        assert_eq!(quote_clipped("abcd", 3), "\"abc\"… (4 bytes)");
        let big = "é".repeat(1_000_000);
        let q = quote_clipped(&big, 10);
        assert!(q.len() < 60, "{q}");
        assert!(q.ends_with("… (2000000 bytes)"), "{q}");
        // Escapes count against the budget (the fuzzer's mqtt_payload crash: 200 control
        // characters quoted as 2,000 bytes).
        let controls = "\u{1}\u{10ffff}".repeat(1_000);
        let q = quote_clipped(&controls, 200);
        assert!(q.len() <= 200 + 2 + 20, "{} bytes: {q}", q.len());
        assert!(q.starts_with("\"\\u{1}"), "{q}");
        assert_eq!(quote_clipped("a\"b", 10), r#""a\"b""#);
        assert_eq!(quote_clipped("", 0), "\"\"");
    }
}
