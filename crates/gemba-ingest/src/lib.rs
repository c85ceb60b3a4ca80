//! Gemba's connectors: decoding of everything that arrives from outside (HTTP JSON batches and the
//! columnar bulk format, MQTT topics and payloads, CSV files) into [`DecodedBatch`]es, the embedded
//! MQTT broker, and the MQTT client that subscribes to Gemba's topics.
//!
//! Architecture invariant: this crate turns bytes into domain values and reports every problem with
//! its location; it never touches the store or the asset registry. Whether a signal exists, whether a
//! value is in range and whether a state name is known is decided by the engine, which owns the asset
//! model. Decoders never panic on any input.

pub mod broker;
pub mod client;
pub mod csv_import;
pub mod mqtt;
pub mod wire;

use gemba_core::{Event, Timestamp};
use thiserror::Error;

/// A value as sent: a number, a boolean or a text (a state name for `state` signals).
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Number(f64),
    Bool(bool),
    Text(String),
}

/// One sample addressed by signal path. `ts == None` means "when received".
#[derive(Debug, Clone, PartialEq)]
pub struct RawPoint {
    pub signal: String,
    pub ts: Option<Timestamp>,
    pub value: RawValue,
    /// Where the point came from in the payload, for error messages (e.g. `points[3]`).
    pub location: String,
}

/// Many samples of one signal in columnar form (`ts[i]` belongs to `values[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries {
    pub signal: String,
    pub ts: Vec<Timestamp>,
    pub values: Vec<f64>,
    /// Where the series came from in the payload (e.g. `series[0]`).
    pub location: String,
}

/// A problem with one item of a payload; the rest of the payload may still be valid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemError {
    /// Path of the item in the payload, e.g. `points[3].value`, `series[1].ts[17]`, `row 12, column "temp"`.
    pub location: String,
    pub message: String,
}

/// A decoded payload: its valid items and one error per invalid item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedBatch {
    pub points: Vec<RawPoint>,
    pub series: Vec<RawSeries>,
    pub events: Vec<Event>,
    pub errors: Vec<ItemError>,
}

impl DecodedBatch {
    /// Number of samples (points plus columnar values).
    pub fn sample_count(&self) -> usize {
        self.points.len() + self.series.iter().map(|s| s.values.len()).sum::<usize>()
    }

    /// Adds a sample, or the reason its value could not be read, at `location`.
    pub(crate) fn push_point(
        &mut self,
        signal: String,
        ts: Option<Timestamp>,
        value: Result<RawValue, String>,
        location: String,
    ) {
        match value {
            Ok(value) => self.points.push(RawPoint {
                signal,
                ts,
                value,
                location,
            }),
            Err(message) => self.errors.push(ItemError { location, message }),
        }
    }
}

/// A payload that could not be decoded at all.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DecodeError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("payload is not UTF-8 text")]
    NotUtf8,
    #[error("payload is empty")]
    Empty,
    /// `topic`: quoted, and clipped when long (`gemba_core::quote_clipped`).
    #[error("topic {topic} {reason}")]
    Topic { topic: String, reason: String },
}

/// Errors of the MQTT broker and client.
#[derive(Debug, Error)]
pub enum MqttError {
    #[error("cannot start the embedded MQTT broker on {addr}: {reason}")]
    BrokerStart { addr: String, reason: String },
    #[error("MQTT client error: {0}")]
    Client(String),
}

/// Errors of CSV import.
#[derive(Debug, Error)]
pub enum CsvError {
    #[error("cannot read {path:?}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --map {spec:?}: {reason}")]
    Mapping { spec: String, reason: String },
    #[error("CSV header: {0}")]
    Header(String),
}
