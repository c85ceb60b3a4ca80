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
