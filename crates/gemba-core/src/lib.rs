//! Gemba's domain: the ISA-95 asset model (enterprise › site › area › line › machine › signal),
//! samples, events, material lots, operators and shifts, the clock and the sites' time zones.
//!
//! Architecture invariant: this crate does no IO (no files, sockets, threads or global state). Every
//! other Gemba crate depends on it; it depends on none of them. Types that cross a boundary (plant
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

/// `text` quoted for an error message or a log line, at most `max_chars` characters of it: input
/// from outside can be megabytes, and an error that quotes it whole grows responses and logs by
/// as much. A clipped quote ends in `…` and names the full length in bytes.
pub fn quote_clipped(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &text[..cut], text.len()),
    }
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
    }
}
