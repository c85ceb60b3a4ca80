//! Gemba's storage: the [`Store`] trait and the embedded backend ([`sqlite::SqliteStore`]).
//!
//! Architecture invariant: this crate knows the domain types of `gemba-core` and nothing of HTTP,
//! MQTT, configuration files or the async runtime. Every method is blocking; async callers run them
//! on the blocking pool. A write that returns `Ok` is durable (committed and, with the default
//! `Synchronous::Full`, fsynced): the engine acknowledges data only after that.
//!
//! The embedded layout stores each signal's samples as compressed chunks (delta-of-delta
//! timestamps, Gorilla XOR values; see [`codec`]) in SQLite tables, keeps per-chunk statistics so
//! aggregates can skip decoding, compacts small chunks into blocks in the background, and maintains
//! 1-minute and 1-hour rollups that long-range aggregate queries read instead of raw data.

pub mod codec;
pub mod sqlite;

use gemba_core::{Event, Sample, SignalDef, Timestamp};
use thiserror::Error;

/// Stable numeric id of a signal, assigned by the store when the signal is first registered.
pub type SignalId = u32;

/// Errors of the store. Messages name the signal, table or file concerned.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The message includes SQLite's, so it is not repeated as a source.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("cannot open store at {path:?}: {reason}")]
    Open { path: String, reason: String },
    #[error("unknown signal id {0}")]
    UnknownSignal(SignalId),
    #[error("corrupt chunk of signal {signal} starting at {start}: {reason}")]
    Corrupt {
        signal: SignalId,
        start: Timestamp,
        reason: String,
    },
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Samples of one signal to write. Samples may be in any order; a sample whose timestamp is already
/// stored for the signal replaces the stored value (last write wins), so retried batches are idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesWrite {
    pub signal: SignalId,
    pub samples: Vec<Sample>,
}

/// Everything one commit writes: samples of many signals and events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    pub series: Vec<SeriesWrite>,
    pub events: Vec<Event>,
}

impl WriteBatch {
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.samples.is_empty()) && self.events.is_empty()
    }
}

/// What a committed write contained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReceipt {
    pub points: usize,
    pub events: usize,
}

/// Statistics of the samples of one time bucket `[ts, ts + step)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bucket {
    pub ts: Timestamp,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    /// Value of the latest sample in the bucket.
    pub last: f64,
}

impl Bucket {
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }
}

/// Which data an aggregate was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggSource {
    Raw,
    Rollup1m,
    Rollup1h,
}

/// Result of [`Store::aggregate`]: non-empty buckets in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub buckets: Vec<Bucket>,
    pub source: AggSource,
}

/// Filter for [`Store::events`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    /// Only events of this asset or below it.
    pub asset_prefix: Option<String>,
    /// Only events of this type (`production`, `state`, `move`, `custom:<name>`).
    pub kind: Option<String>,
    pub limit: usize,
}

/// An event as stored, with its store-assigned id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredEvent {
    pub id: i64,
    #[serde(flatten)]
    pub event: Event,
}

/// What one [`Store::maintain`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Small chunks merged into blocks.
    pub chunks_compacted: u64,
    /// Rollup buckets (1 m and 1 h) written.
    pub rollups_written: u64,
    /// Chunks deleted because every sample in them was past the signal's retention.
    pub chunks_expired: u64,
}

/// Size of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    pub signals: u64,
    pub chunks: u64,
    pub points: u64,
    pub events: u64,
    /// Bytes of compressed sample data (excluding SQLite overhead).
    pub sample_bytes: u64,
}

/// A lot as created by a `lot` event (the logistics index; see `sqlite::logistics`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LotRecord {
    /// Id of the event that created the lot (commit order).
    pub event: i64,
    pub ts: Timestamp,
    pub lot: String,
    pub product: String,
    pub unit: String,
    pub quantity: f64,
    pub location: String,
    pub inputs: Vec<String>,
}

/// A move of a quantity of a lot, as recorded by a `move` event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MoveRecord {
    /// Id of the `move` event (commit order).
    pub event: i64,
    pub ts: Timestamp,
    pub lot: String,
    pub from: String,
    pub to: String,
    pub quantity: f64,
}

/// One line of the audit log: who did what to which object, and how it ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Position in the log (commit order); 0 before it is appended.
    pub id: i64,
    pub ts: Timestamp,
    /// User name, `token:<id>`, or `-` for an anonymous attempt.
    pub actor: String,
    /// What was done, e.g. `POST /api/v1/alarm-rules` or `auth.login_failed`.
    pub action: String,
    /// The object, e.g. a rule name, a user name or an alarm id (empty when none).
    pub target: String,
    /// HTTP status or 0 for changes made outside HTTP (CLI).
    pub status: u16,
    /// Free-form details (JSON text or a message).
    pub detail: String,
}

/// A query over the audit log: `from <= ts < to`, optional actor, newest first, at most `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    pub actor: Option<String>,
    pub action_prefix: Option<String>,
    pub limit: usize,
}

/// One visual inspection result (`POST /api/v1/inspect`), without its heat-map PNG.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InspectionRecord {
    /// Assigned by the store; 0 before [`Store::put_inspection`].
    pub id: i64,
    pub ts: Timestamp,
    /// The registered model (name and version) that scored the image.
    pub model: String,
    pub version: u32,
    pub score: f64,
    pub threshold: f64,
    /// `pass` (score at or below the threshold) or `fail`.
    pub verdict: String,
    pub part: Option<String>,
    pub lot: Option<String>,
    pub machine: Option<String>,
    /// The model's input size (the heat map's resolution before scaling).
    pub width: u32,
    pub height: u32,
    /// The largest per-pixel error of the heat map (its red end).
    pub heat_max: f64,
    /// Who sent the image (user name or `token:<id>`).
    pub by: String,
}

/// A query over inspection results: `from <= ts < to`, optional exact filters, newest first, at
/// most `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    pub part: Option<String>,
    pub lot: Option<String>,
    pub machine: Option<String>,
    pub verdict: Option<String>,
    pub limit: usize,
}

/// A stored time-series and asset database. See the crate documentation for the guarantees.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Registers a signal or updates its definition; the id of a path never changes.
    fn put_signal(&self, def: &SignalDef) -> Result<SignalId>;
    /// Registers many signals in one transaction (ids in the order of `defs`).
    fn put_signals(&self, defs: &[SignalDef]) -> Result<Vec<SignalId>> {
        defs.iter().map(|d| self.put_signal(d)).collect()
    }
    /// Every registered signal with its id.
    fn signals(&self) -> Result<Vec<(SignalId, SignalDef)>>;

    /// Stores an asset-model record (`kind` is e.g. `node`, `lot`, `operator`, `shift`) as JSON,
    /// replacing the record with the same kind and key.
    fn put_record(&self, kind: &str, key: &str, json: &str) -> Result<()>;
    /// Stores many records of one kind in one transaction.
    fn put_records(&self, kind: &str, records: &[(String, String)]) -> Result<()> {
        records
            .iter()
            .try_for_each(|(k, j)| self.put_record(kind, k, j))
    }
    /// Stores records of several kinds `(kind, key, json)` in one transaction: all or none (an
    /// alarm and the notifications of its change).
    fn put_records_of_kinds(&self, records: &[(&str, String, String)]) -> Result<()> {
        records
            .iter()
            .try_for_each(|(kind, k, j)| self.put_record(kind, k, j))
    }
    /// All records of one kind as (key, json), ordered by key.
    fn records(&self, kind: &str) -> Result<Vec<(String, String)>>;

    /// Deletes one record; deleting a missing record is not an error.
    fn delete_record(&self, kind: &str, key: &str) -> Result<()>;

    /// One record by kind and key.
    fn record(&self, kind: &str, key: &str) -> Result<Option<String>> {
        Ok(self
            .records(kind)?
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, j)| j))
    }

    /// Writes samples and events in one transaction. When this returns `Ok` the data is durable.
    fn write(&self, batch: &WriteBatch) -> Result<WriteReceipt>;

    /// The latest sample of every signal that has data (for the engine's latest-value cache).
    fn latest_all(&self) -> Result<Vec<(SignalId, Sample)>>;

    /// Samples of one signal with `from <= ts < to`, in time order, at most `limit` (the earliest).
    fn range(
        &self,
        signal: SignalId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Sample>>;

    /// Buckets of width `step_ms` aligned to multiples of `step_ms` since the epoch, covering samples
    /// with `from <= ts < to`. Uses the 1 h or 1 m rollups when `step_ms` is a multiple of their width,
    /// reading raw data only for partial buckets at the ends of the range.
    fn aggregate(
        &self,
        signal: SignalId,
        from: Timestamp,
        to: Timestamp,
        step_ms: i64,
    ) -> Result<Aggregate>;

    /// Events matching the query, in time order.
    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>>;

    /// Deletes the events with `ts < cutoff` whose type is not in `keep_types` (e.g. `lot` and
    /// `move`, which the logistics index needs); returns how many were deleted. Retention
    /// (`[retention] events_days`).
    fn delete_events_before(&self, cutoff: Timestamp, keep_types: &[&str]) -> Result<usize>;

    /// Deletes the inspection results (with their heat maps) with `ts < cutoff`; returns how many
    /// were deleted. Retention (`[retention] inspections_days`).
    fn delete_inspections_before(&self, cutoff: Timestamp) -> Result<usize>;

    /// The whole logistics index: every lot (by creation event id) and every move (by event id).
    /// The engine replays it at start to rebuild its inventory state.
    fn logistics(&self) -> Result<(Vec<LotRecord>, Vec<MoveRecord>)>;

    /// The moves of one lot in time order.
    fn lot_history(&self, lot: &str) -> Result<Vec<MoveRecord>>;

    /// Moves into or out of `location` with `from <= ts < to`, in time order, at most `limit`.
    fn location_moves(
        &self,
        location: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<MoveRecord>>;

    /// Compaction, rollups and retention. `now` decides what has expired.
    fn maintain(&self, now: Timestamp) -> Result<MaintenanceReport>;

    /// Counts for metrics and `gemba query stats`.
    fn stats(&self) -> Result<StoreStats>;

    /// Appends one entry to the audit log (append-only: nothing updates or deletes it) and
    /// returns its id. Durable when this returns.
    fn append_audit(&self, entry: &AuditEntry) -> Result<i64>;

    /// Audit entries matching the query, newest first.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;

    /// Stores one inspection result with its heat-map PNG and returns its id. Durable when this
    /// returns.
    fn put_inspection(&self, record: &InspectionRecord, heat_map_png: &[u8]) -> Result<i64>;

    /// Inspection results matching the query, newest first.
    fn inspections(&self, query: &InspectionQuery) -> Result<Vec<InspectionRecord>>;

    /// One inspection result (`None` for an unknown id).
    fn inspection(&self, id: i64) -> Result<Option<InspectionRecord>>;

    /// The heat-map PNG of one inspection (`None` for an unknown id).
    fn inspection_heat_map(&self, id: i64) -> Result<Option<Vec<u8>>>;
}
