//! Errors of the domain: every message names the field or path, the value and the reason.
//! Values from outside are quoted clipped to 120 characters ([`crate::quote_clipped`]): an error
//! must not echo a megabyte of input into a response or a log line.

use thiserror::Error;

fn clip(text: &str) -> String {
    crate::quote_clipped(text, 120)
}

/// A problem with the asset model (plant file or API definitions).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("{level} name {} {reason}", clip(.name))]
    InvalidName {
        level: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("duplicate {level} {}", clip(.path))]
    Duplicate { level: &'static str, path: String },
    #[error("unknown {level} {}", clip(.path))]
    Unknown { level: &'static str, path: String },
    #[error("path {} must have {expected} segments ({shape}), it has {got}", clip(.path))]
    PathShape {
        path: String,
        expected: usize,
        got: usize,
        shape: &'static str,
    },
    #[error("signal {}: {field} {reason}", clip(.signal))]
    InvalidSignal {
        signal: String,
        field: &'static str,
        reason: String,
    },
    #[error("{what} {}: {field} {reason}", clip(.id))]
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
        "cannot parse timestamp {}: expected integer milliseconds since the Unix epoch or RFC 3339 (e.g. 2026-11-24T08:00:00Z)",
        clip(.input)
    )]
    TimestampSyntax { input: String },
    #[error("value {} is not a state of this signal; known states: {known}", clip(.value))]
    UnknownState { value: String, known: String },
    #[error("{0}")]
    Other(String),
}
