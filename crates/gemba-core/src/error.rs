//! Errors of the domain: every message names the field or path, the value and the reason.

use thiserror::Error;

/// A problem with the asset model (plant file or API definitions).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("{level} name {name:?} {reason}")]
    InvalidName {
        level: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("duplicate {level} {path:?}")]
    Duplicate { level: &'static str, path: String },
    #[error("unknown {level} {path:?}")]
    Unknown { level: &'static str, path: String },
    #[error("path {path:?} must have {expected} segments ({shape}), it has {got}")]
    PathShape {
        path: String,
        expected: usize,
        got: usize,
        shape: &'static str,
    },
    #[error("signal {signal:?}: {field} {reason}")]
    InvalidSignal {
        signal: String,
        field: &'static str,
        reason: String,
    },
    #[error("{what} {id:?}: {field} {reason}")]
    InvalidEntity {
        what: &'static str,
        id: String,
        field: &'static str,
        reason: String,
    },
}

/// A problem with one value (a sample or an event field).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ValueError {
    #[error("value {value} is not a finite number (NaN and infinity are rejected)")]
    NotFinite { value: f64 },
    #[error("timestamp {ts} ms is out of range: {reason}")]
    TimestampOutOfRange { ts: i64, reason: String },
    #[error(
        "cannot parse timestamp {input:?}: expected integer milliseconds since the Unix epoch or RFC 3339 (e.g. 2026-11-24T08:00:00Z)"
    )]
    TimestampSyntax { input: String },
    #[error("value {value:?} is not a state of this signal; known states: {known}")]
    UnknownState { value: String, known: String },
    #[error("{0}")]
    Other(String),
}
