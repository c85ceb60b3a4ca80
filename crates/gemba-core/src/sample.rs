//! Samples (a timestamped value of a known signal) and points (a sample still addressed by path).

use crate::error::ValueError;
use crate::time::Timestamp;

/// One value of one signal at one instant.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub ts: Timestamp,
    pub value: f64,
}

impl Sample {
    /// A sample with a finite value; NaN and infinities are rejected because no aggregate or model
    /// can use them and they hide sensor faults.
    pub fn new(ts: Timestamp, value: f64) -> Result<Self, ValueError> {
        if !value.is_finite() {
            return Err(ValueError::NotFinite { value });
        }
        Ok(Self { ts, value })
    }
}

/// A sample addressed by its signal path (`site/area/line/machine/signal`), as it arrives on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub signal: String,
    pub ts: Timestamp,
    pub value: f64,
}
