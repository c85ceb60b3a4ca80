//! The embedded store: a time-series layout on SQLite (WAL mode).
//!
//! Tables:
//! - `chunks(signal, start_ts, seq, end_ts, count, min, max, sum, last, data)`: the samples of one
//!   signal between `start_ts` and `end_ts`, compressed with [`crate::codec`]. `seq` grows with every
//!   chunk written; when two chunks hold the same timestamp, the higher `seq` wins (last write wins).
//! - `rollup_1m`, `rollup_1h(signal, ts, count, min, max, sum, last, last_ts)`: aggregates per
//!   minute and hour, recomputed from chunks for the time range a write made stale
//!   (`series_state.dirty_lo..dirty_hi`) by maintenance, or by a query before it reads them.
//! - `series_state(signal, latest_ts, latest_value, dirty_lo, dirty_hi, max_span, small_chunks)`.
//! - `events`, `signals`, `records` (asset-model records as JSON), `meta`.
//! - The logistics index (`lots`, `lot_moves`, `lot_links`; see [`logistics`]): every `lot` and
//!   `move` event is also written there, in the same transaction as the event.
//!
//! One writer connection (behind a mutex) does every write in one transaction per call; readers use
//! a small pool of their own connections and never wait for the writer (WAL).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use gemba_core::{Event, Sample, SignalDef, Timestamp};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec;
use crate::{
    AggSource, Aggregate, Bucket, EventQuery, MaintenanceReport, Result, SignalId, Store,
    StoreError, StoreStats, StoredEvent, WriteBatch, WriteReceipt,
};
use crate::{AuditEntry, AuditQuery, InspectionQuery, InspectionRecord, LotRecord, MoveRecord};

const SCHEMA_VERSION: i64 = 1;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// How hard each commit is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the WAL on every commit: durable against power loss.
    #[default]
    Full,
    /// Durable against a crash of the process, not of the machine.
    Normal,
}

/// Options of the embedded store.
#[derive(Debug, Clone, PartialEq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Compaction writes chunks of at most this many samples.
    pub compact_target_points: usize,
    /// Chunks with fewer samples are compaction candidates.
    pub small_chunk_points: usize,
    /// Rollups older than this are deleted (none: kept forever).
    pub rollup_retention_days: Option<u32>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            compact_target_points: 4096,
            small_chunk_points: 512,
            rollup_retention_days: None,
        }
    }
}

/// The embedded store. See the module documentation for the layout.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    opts: SqliteOptions,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    seq: AtomicI64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signals(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, def TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
  signal INTEGER NOT NULL, start_ts INTEGER NOT NULL, seq INTEGER NOT NULL, end_ts INTEGER NOT NULL,
  count INTEGER NOT NULL, min REAL NOT NULL, max REAL NOT NULL, sum REAL NOT NULL, last REAL NOT NULL,
  data BLOB NOT NULL, PRIMARY KEY(signal, start_ts, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1m(
  signal INTEGER NOT NULL, ts INTEGER NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL,
  max REAL NOT NULL, sum REAL NOT NULL, last REAL NOT NULL, last_ts INTEGER NOT NULL,
  PRIMARY KEY(signal, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_1h(
  signal INTEGER NOT NULL, ts INTEGER NOT NULL, count INTEGER NOT NULL, min REAL NOT NULL,
  max REAL NOT NULL, sum REAL NOT NULL, last REAL NOT NULL, last_ts INTEGER NOT NULL,
  PRIMARY KEY(signal, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series_state(
  signal INTEGER PRIMARY KEY, latest_ts INTEGER NOT NULL, latest_value REAL NOT NULL,
  dirty_lo INTEGER, dirty_hi INTEGER, max_span INTEGER NOT NULL DEFAULT 0,
  small_chunks INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, asset TEXT NOT NULL,
  type TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_type_ts ON events(type, ts);
CREATE INDEX IF NOT EXISTS events_asset_ts ON events(asset, ts);
CREATE TABLE IF NOT EXISTS records(kind TEXT NOT NULL, key TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY(kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, target TEXT NOT NULL, status INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_ts ON audit(ts);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// Floor of `ts` to a multiple of `step` (also for negative timestamps).
fn floor_to(ts: i64, step: i64) -> i64 {
    ts.div_euclid(step) * step
}

fn ceil_to(ts: i64, step: i64) -> i64 {
    let f = floor_to(ts, step);
    if f == ts { ts } else { f.saturating_add(step) }
}

/// Running statistics of a bucket, with the time of its last sample for merging.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    last: f64,
    last_ts: i64,
}

impl Acc {
    fn new() -> Self {
        Acc {
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            last: f64::NAN,
            last_ts: i64::MIN,
        }
    }
    fn add(&mut self, ts: i64, v: f64) {
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v;
        if ts >= self.last_ts {
            self.last = v;
            self.last_ts = ts;
        }
    }
    fn merge(&mut self, o: &Acc) {
        self.count += o.count;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        if o.last_ts >= self.last_ts {
            self.last = o.last;
            self.last_ts = o.last_ts;
        }
    }
    fn bucket(&self, ts: i64) -> Bucket {
        Bucket {
            ts,
            count: self.count,
            min: self.min,
            max: self.max,
            sum: self.sum,
            last: self.last,
        }
    }
}

/// Metadata of a stored chunk.
#[derive(Debug, Clone, Copy)]
struct ChunkMeta {
    start: i64,
    seq: i64,
    end: i64,
    count: i64,
}

fn corrupt(signal: SignalId, start: i64, e: codec::CodecError) -> StoreError {
    StoreError::Corrupt {
        signal,
        start,
        reason: e.0,
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let conn = Self::connect(path, &opts, true)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(logistics::SCHEMA)?;
        conn.execute_batch(inspections::SCHEMA)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(StoreError::Open {
                    path: path.display().to_string(),
                    reason: format!(
                        "schema version {v} is not supported by this Gemba (expects {SCHEMA_VERSION})"
                    ),
                });
            }
        }
        let seq: i64 =
            conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM chunks", [], |r| r.get(0))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            opts,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            seq: AtomicI64::new(seq),
        })
    }

    fn connect(path: &Path, opts: &SqliteOptions, writer: bool) -> Result<Connection> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let sync = match opts.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        if writer {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Open {
                    path: path.display().to_string(),
                    reason: format!("cannot switch to WAL mode (got {mode})"),
                });
            }
            conn.execute_batch(&format!(
                "PRAGMA synchronous={sync}; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;"
            ))?;
        } else {
            // Reads map the file instead of copying every 4 KiB page through a system call.
            conn.execute_batch(
                "PRAGMA cache_size=-8192; PRAGMA query_only=1; PRAGMA mmap_size=1073741824;",
            )?;
        }
        Ok(conn)
    }

    /// Runs `f` with a pooled read connection.
    /// Runs `f` on a reader connection inside one read transaction: every statement of `f` sees
    /// the same snapshot, so a compaction that replaces chunks between reading their metadata
    /// and their data cannot make a chunk vanish under a reader.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().pop() {
            Some(c) => c,
            None => Self::connect(&self.path, &self.opts, false)?,
        };
        let out = conn
            .unchecked_transaction()
            .map_err(StoreError::from)
            .and_then(|tx| {
                let out = f(&tx)?;
                // Read-only: ending it releases the snapshot.
                tx.rollback()?;
                Ok(out)
            });
        let mut pool = self.readers.lock();
        if pool.len() < 4 {
            pool.push(conn);
        }
        out
    }

    fn next_seq(&self) -> i64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Inserts sorted, unique samples as chunks of at most `compact_target_points`.
    /// Returns the number of small chunks written.
    fn insert_chunks(
        &self,
        conn: &Connection,
        signal: SignalId,
        ts: &[i64],
        vals: &[f64],
    ) -> Result<i64> {
        let mut st = conn.prepare_cached(
            "INSERT INTO chunks(signal, start_ts, seq, end_ts, count, min, max, sum, last, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut small = 0;
        let target = self.opts.compact_target_points.max(1);
        for (t, v) in ts.chunks(target).zip(vals.chunks(target)) {
            let mut acc = Acc::new();
            for (a, b) in t.iter().zip(v) {
                acc.add(*a, *b);
            }
            let data = codec::encode(t, v);
            let (first, last) = (t[0], t[t.len() - 1]);
            st.execute(params![
                signal,
                first,
                self.next_seq(),
                last,
                t.len() as i64,
                acc.min,
                acc.max,
                acc.sum,
                acc.last,
                data
            ])?;
            if t.len() < self.opts.small_chunk_points {
                small += 1;
            }
        }
        Ok(small)
    }

    /// Chunk metadata of a signal overlapping `[from, to)`, ordered by start and seq.
    fn chunk_metas(
        conn: &Connection,
        signal: SignalId,
        from: i64,
        to: i64,
    ) -> Result<Vec<ChunkMeta>> {
        let max_span: i64 = conn
            .query_row(
                "SELECT max_span FROM series_state WHERE signal = ?1",
                [signal],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut st = conn.prepare_cached(
            "SELECT start_ts, seq, end_ts, count FROM chunks
             WHERE signal = ?1 AND start_ts >= ?2 AND start_ts < ?3 AND end_ts >= ?4
             ORDER BY start_ts, seq",
        )?;
        let rows = st.query_map(
            params![signal, from.saturating_sub(max_span), to, from],
            |r| {
                Ok(ChunkMeta {
                    start: r.get(0)?,
                    seq: r.get(1)?,
                    end: r.get(2)?,
                    count: r.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Samples of `[from, to)` merged across chunks (last write wins), sorted by time.
    fn merged(
        conn: &Connection,
        signal: SignalId,
        from: i64,
        to: i64,
    ) -> Result<(Vec<i64>, Vec<f64>)> {
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        Self::for_each_sample(conn, signal, from, to, |t, v| {
            ts.push(t);
            vals.push(v);
        })?;
        Ok((ts, vals))
    }

    /// Decodes one chunk, appending to `ts` and `vals`; a sample count that differs from the
    /// chunk's header is corruption too.
    fn decode_chunk(
        st: &mut rusqlite::CachedStatement<'_>,
        signal: SignalId,
        m: &ChunkMeta,
        ts: &mut Vec<i64>,
        vals: &mut Vec<f64>,
    ) -> Result<()> {
        let data: Vec<u8> = st.query_row(params![signal, m.start, m.seq], |r| r.get(0))?;
        let before = ts.len();
        codec::decode_into(&data, ts, vals).map_err(|e| corrupt(signal, m.start, e))?;
        if ts.len() - before != m.count as usize {
            return Err(StoreError::Corrupt {
                signal,
                start: m.start,
                reason: "sample count differs from the chunk header".into(),
            });
        }
        Ok(())
    }

    /// Calls `f` for every sample of `[from, to)` in time order (last write wins). Chunks that
    /// do not overlap (the common case) are decoded one at a time into reused buffers; overlapping
    /// ones are merged, keeping the sample of the highest `seq` per timestamp.
    fn for_each_sample(
        conn: &Connection,
        signal: SignalId,
        from: i64,
        to: i64,
        mut f: impl FnMut(i64, f64),
    ) -> Result<()> {
        let metas = Self::chunk_metas(conn, signal, from, to)?;
        let mut st = conn.prepare_cached(
            "SELECT data FROM chunks WHERE signal = ?1 AND start_ts = ?2 AND seq = ?3",
        )?;
        let (mut ts, mut vals) = (Vec::new(), Vec::new());
        if any_overlap(&metas) {
            let total: i64 = metas.iter().map(|m| m.count).sum();
            let mut tagged: Vec<(i64, i64, f64)> = Vec::with_capacity(total as usize);
            for m in &metas {
                ts.clear();
                vals.clear();
                Self::decode_chunk(&mut st, signal, m, &mut ts, &mut vals)?;
                tagged.extend(
                    ts.iter()
                        .zip(&vals)
                        .filter(|(t, _)| **t >= from && **t < to)
                        .map(|(t, v)| (*t, m.seq, *v)),
                );
            }
            tagged.sort_unstable_by_key(|a| (a.0, a.1));
            for (i, (t, _, v)) in tagged.iter().enumerate() {
                if tagged.get(i + 1).is_none_or(|n| n.0 != *t) {
                    f(*t, *v);
                }
            }
            return Ok(());
        }
        for m in &metas {
            ts.clear();
            vals.clear();
            Self::decode_chunk(&mut st, signal, m, &mut ts, &mut vals)?;
            let lo = if m.start >= from {
                0
            } else {
                ts.partition_point(|t| *t < from)
            };
            let hi = if m.end < to {
                ts.len()
            } else {
                ts.partition_point(|t| *t < to)
            };
            for i in lo..hi {
                f(ts[i], vals[i]);
            }
        }
        Ok(())
    }

    /// Recomputes the stale rollups of one signal (writer connection, in a transaction).
    fn refresh_rollups(&self, conn: &Connection, signal: SignalId) -> Result<u64> {
        let dirty: Option<(Option<i64>, Option<i64>)> = conn
            .query_row(
                "SELECT dirty_lo, dirty_hi FROM series_state WHERE signal = ?1",
                [signal],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((Some(lo), Some(hi))) = dirty else {
            return Ok(0);
        };
        let (h_lo, h_hi) = (floor_to(lo, HOUR), floor_to(hi, HOUR).saturating_add(HOUR));
        let (ts, vals) = Self::merged(conn, signal, h_lo, h_hi)?;
        let mut minutes: Vec<(i64, Acc)> = Vec::new();
        for (t, v) in ts.iter().zip(&vals) {
            let m = floor_to(*t, MINUTE);
            match minutes.last_mut() {
                Some((k, acc)) if *k == m => acc.add(*t, *v),
                _ => {
                    let mut acc = Acc::new();
                    acc.add(*t, *v);
                    minutes.push((m, acc));
                }
            }
        }
        let mut hours: Vec<(i64, Acc)> = Vec::new();
        for (m, acc) in &minutes {
            let h = floor_to(*m, HOUR);
            match hours.last_mut() {
                Some((k, a)) if *k == h => a.merge(acc),
                _ => hours.push((h, *acc)),
            }
        }
        conn.execute(
            "DELETE FROM rollup_1m WHERE signal = ?1 AND ts >= ?2 AND ts < ?3",
            params![signal, h_lo, h_hi],
        )?;
        conn.execute(
            "DELETE FROM rollup_1h WHERE signal = ?1 AND ts >= ?2 AND ts < ?3",
            params![signal, h_lo, h_hi],
        )?;
        let mut written = 0u64;
        for (table, rows) in [("rollup_1m", &minutes), ("rollup_1h", &hours)] {
            let mut st = conn.prepare_cached(&format!(
                "INSERT INTO {table}(signal, ts, count, min, max, sum, last, last_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?;
            for (k, a) in rows.iter() {
                st.execute(params![
                    signal,
                    k,
                    a.count as i64,
                    a.min,
                    a.max,
                    a.sum,
                    a.last,
                    a.last_ts
                ])?;
                written += 1;
            }
        }
        conn.execute(
            "UPDATE series_state SET dirty_lo = NULL, dirty_hi = NULL WHERE signal = ?1",
            [signal],
        )?;
        Ok(written)
    }

    fn is_dirty(conn: &Connection, signal: SignalId) -> Result<bool> {
        Ok(conn
            .query_row(
                "SELECT dirty_lo IS NOT NULL FROM series_state WHERE signal = ?1",
                [signal],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Merges runs of small or overlapping chunks of one signal. Returns chunks removed.
    fn compact_signal(&self, conn: &Connection, signal: SignalId) -> Result<u64> {
        let first_small: Option<i64> = conn.query_row(
            "SELECT MIN(start_ts) FROM chunks WHERE signal = ?1 AND count < ?2",
            params![signal, self.opts.small_chunk_points as i64],
            |r| r.get(0),
        )?;
        let Some(first_small) = first_small else {
            conn.execute(
                "UPDATE series_state SET small_chunks = 0 WHERE signal = ?1",
                [signal],
            )?;
            return Ok(0);
        };
        let mut metas = Self::chunk_metas(conn, signal, first_small, i64::MAX)?;
        metas.sort_by_key(|m| (m.start, m.seq));
        let small = |m: &ChunkMeta| (m.count as usize) < self.opts.small_chunk_points;
        // Groups: consecutive chunks that overlap, or that are both small.
        let mut groups: Vec<Vec<ChunkMeta>> = Vec::new();
        let mut hi = i64::MIN;
        for m in metas {
            let join = match groups.last() {
                Some(g) => m.start <= hi || (small(&m) && g.last().is_some_and(small)),
                None => false,
            };
            if join {
                if let Some(g) = groups.last_mut() {
                    g.push(m);
                }
            } else {
                groups.push(vec![m]);
            }
            hi = hi.max(m.end);
        }
        let mut removed = 0u64;
        let mut small_left = 0i64;
        for g in groups {
            if g.len() < 2 {
                if g.first().is_some_and(small) {
                    small_left += 1;
                }
                continue;
            }
            let lo = g.iter().map(|m| m.start).min().unwrap_or(0);
            let hi = g.iter().map(|m| m.end).max().unwrap_or(0);
            let (ts, vals) = Self::merged(conn, signal, lo, hi.saturating_add(1))?;
            {
                let mut del = conn.prepare_cached(
                    "DELETE FROM chunks WHERE signal = ?1 AND start_ts = ?2 AND seq = ?3",
                )?;
                for m in &g {
                    del.execute(params![signal, m.start, m.seq])?;
                }
            }
            removed += g.len() as u64;
            if !ts.is_empty() {
                small_left += self.insert_chunks(conn, signal, &ts, &vals)?;
                // Merged chunks can span more time than any chunk before them; range lookups
                // search back by the widest span, so it must grow with them.
                let span = max_chunk_span(&ts, self.opts.compact_target_points);
                conn.execute(
                    "UPDATE series_state SET max_span = MAX(max_span, ?2) WHERE signal = ?1",
                    params![signal, span],
                )?;
            }
        }
        conn.execute(
            "UPDATE series_state SET small_chunks = ?2 WHERE signal = ?1",
            params![signal, small_left],
        )?;
        Ok(removed)
    }
}

/// Whether any two chunks (sorted by start) share a moment, so that last-write-wins merging is needed.
fn any_overlap(metas: &[ChunkMeta]) -> bool {
    let mut hi = i64::MIN;
    metas.iter().any(|m| {
        let o = m.start <= hi;
        hi = hi.max(m.end);
        o
    })
}

/// The widest time span of the chunks that `insert_chunks` makes of sorted timestamps.
fn max_chunk_span(ts: &[i64], target: usize) -> i64 {
    ts.chunks(target.max(1))
        .map(|c| c[c.len() - 1] - c[0])
        .max()
        .unwrap_or(0)
}

/// Sorts samples by time and keeps the last occurrence of each timestamp.
fn sort_dedup(samples: &[Sample]) -> (Vec<i64>, Vec<f64>) {
    let sorted = samples.windows(2).all(|w| w[0].ts < w[1].ts);
    if sorted {
        return (
            samples.iter().map(|s| s.ts).collect(),
            samples.iter().map(|s| s.value).collect(),
        );
    }
    let mut idx: Vec<usize> = (0..samples.len()).collect();
    idx.sort_by_key(|&i| samples[i].ts); // stable: equal timestamps keep input order
    let mut ts = Vec::with_capacity(samples.len());
    let mut vals = Vec::with_capacity(samples.len());
    for (k, &i) in idx.iter().enumerate() {
        if idx
            .get(k + 1)
            .is_some_and(|&j| samples[j].ts == samples[i].ts)
        {
            continue;
        }
        ts.push(samples[i].ts);
        vals.push(samples[i].value);
    }
    (ts, vals)
}

impl Store for SqliteStore {
    fn put_signal(&self, def: &SignalDef) -> Result<SignalId> {
        let json = serde_json::to_string(def).map_err(|e| StoreError::Encode {
            what: "signal definition",
            reason: e.to_string(),
        })?;
        let conn = self.writer.lock();
        conn.execute(
            "INSERT INTO signals(path, def) VALUES (?1, ?2) ON CONFLICT(path) DO UPDATE SET def = excluded.def",
            params![def.path, json],
        )?;
        let id: i64 =
            conn.query_row("SELECT id FROM signals WHERE path = ?1", [&def.path], |r| {
                r.get(0)
            })?;
        u32::try_from(id).map_err(|_| StoreError::Encode {
            what: "signal id",
            reason: format!("{id} does not fit in 32 bits"),
        })
    }

    fn put_signals(&self, defs: &[SignalDef]) -> Result<Vec<SignalId>> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let mut ids = Vec::with_capacity(defs.len());
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO signals(path, def) VALUES (?1, ?2) ON CONFLICT(path) DO UPDATE SET def = excluded.def",
            )?;
            let mut get = tx.prepare_cached("SELECT id FROM signals WHERE path = ?1")?;
            for def in defs {
                let json = serde_json::to_string(def).map_err(|e| StoreError::Encode {
                    what: "signal definition",
                    reason: e.to_string(),
                })?;
                up.execute(params![def.path, json])?;
                let id: i64 = get.query_row([&def.path], |r| r.get(0))?;
                ids.push(u32::try_from(id).map_err(|_| StoreError::Encode {
                    what: "signal id",
                    reason: format!("{id} does not fit in 32 bits"),
                })?);
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    fn put_records(&self, kind: &str, records: &[(String, String)]) -> Result<()> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO records(kind, key, json) VALUES (?1, ?2, ?3)",
            )?;
            for (k, j) in records {
                st.execute(params![kind, k, j])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn put_records_of_kinds(&self, records: &[(&str, String, String)]) -> Result<()> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO records(kind, key, json) VALUES (?1, ?2, ?3)",
            )?;
            for (kind, k, j) in records {
                st.execute(params![kind, k, j])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn signals(&self) -> Result<Vec<(SignalId, SignalDef)>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT id, path, def FROM signals ORDER BY id")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, path, json) = row?;
                let def: SignalDef = serde_json::from_str(&json).map_err(|e| StoreError::Open {
                    path: self.path.display().to_string(),
                    reason: format!("stored definition of signal {path:?} is unreadable: {e}"),
                })?;
                out.push((id, def));
            }
            Ok(out)
        })
    }

    fn put_record(&self, kind: &str, key: &str, json: &str) -> Result<()> {
        self.writer.lock().execute(
            "INSERT OR REPLACE INTO records(kind, key, json) VALUES (?1, ?2, ?3)",
            params![kind, key, json],
        )?;
        Ok(())
    }

    fn delete_record(&self, kind: &str, key: &str) -> Result<()> {
        self.writer.lock().execute(
            "DELETE FROM records WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )?;
        Ok(())
    }

    fn records(&self, kind: &str) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT key, json FROM records WHERE kind = ?1 ORDER BY key")?;
            let rows = st.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    fn append_audit(&self, e: &AuditEntry) -> Result<i64> {
        let conn = self.writer.lock();
        conn.execute(
            "INSERT INTO audit(ts, actor, action, target, status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.ts, e.actor, e.action, e.target, e.status, e.detail],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, ts, actor, action, target, status, detail FROM audit \
                 WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR actor = ?3) \
                 AND (?4 IS NULL OR substr(action, 1, length(?4)) = ?4) \
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let rows = st.query_map(
                params![q.from, q.to, q.actor, q.action_prefix, limit],
                |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        ts: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        status: r.get(5)?,
                        detail: r.get(6)?,
                    })
                },
            )?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    fn put_inspection(&self, record: &InspectionRecord, heat_map_png: &[u8]) -> Result<i64> {
        inspections::insert(&self.writer.lock(), record, heat_map_png)
    }

    fn inspections(&self, query: &InspectionQuery) -> Result<Vec<InspectionRecord>> {
        self.read(|c| inspections::query(c, query))
    }

    fn inspection(&self, id: i64) -> Result<Option<InspectionRecord>> {
        self.read(|c| inspections::one(c, id))
    }

    fn inspection_heat_map(&self, id: i64) -> Result<Option<Vec<u8>>> {
        self.read(|c| inspections::heat_map(c, id))
    }

    fn record(&self, kind: &str, key: &str) -> Result<Option<String>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT json FROM records WHERE kind = ?1 AND key = ?2")?;
            Ok(st.query_row(params![kind, key], |r| r.get(0)).optional()?)
        })
    }

    fn write(&self, batch: &WriteBatch) -> Result<WriteReceipt> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction()?;
        let mut points = 0usize;
        for s in &batch.series {
            if s.samples.is_empty() {
                continue;
            }
            let (ts, vals) = sort_dedup(&s.samples);
            points += s.samples.len();
            let small = self.insert_chunks(&tx, s.signal, &ts, &vals)?;
            let (lo, hi) = (ts[0], ts[ts.len() - 1]);
            let span = max_chunk_span(&ts, self.opts.compact_target_points);
            let mut st = tx.prepare_cached(
                "INSERT INTO series_state(signal, latest_ts, latest_value, dirty_lo, dirty_hi, max_span, small_chunks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(signal) DO UPDATE SET
                   latest_value = CASE WHEN excluded.latest_ts >= latest_ts THEN excluded.latest_value ELSE latest_value END,
                   latest_ts = MAX(latest_ts, excluded.latest_ts),
                   dirty_lo = MIN(COALESCE(dirty_lo, excluded.dirty_lo), excluded.dirty_lo),
                   dirty_hi = MAX(COALESCE(dirty_hi, excluded.dirty_hi), excluded.dirty_hi),
                   max_span = MAX(max_span, excluded.max_span),
                   small_chunks = small_chunks + excluded.small_chunks",
            )?;
            st.execute(params![
                s.signal,
                hi,
                vals[vals.len() - 1],
                lo,
                hi,
                span,
                small
            ])?;
        }
        if !batch.events.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO events(ts, asset, type, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in &batch.events {
                let body = serde_json::to_string(e).map_err(|err| StoreError::Encode {
                    what: "event",
                    reason: err.to_string(),
                })?;
                st.execute(params![e.ts, e.asset, e.body.type_name(), body])?;
                logistics::index_event(&tx, tx.last_insert_rowid(), e)?;
            }
        }
        tx.commit()?;
        Ok(WriteReceipt {
            points,
            events: batch.events.len(),
        })
    }

    fn latest_all(&self) -> Result<Vec<(SignalId, Sample)>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT signal, latest_ts, latest_value FROM series_state")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    Sample {
                        ts: r.get(1)?,
                        value: r.get(2)?,
                    },
                ))
            })?;
            Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
        })
    }

    fn range(
        &self,
        signal: SignalId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Sample>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (ts, vals) = self.read(|c| Self::merged(c, signal, from, to))?;
        Ok(ts
            .into_iter()
            .zip(vals)
            .take(limit)
            .map(|(ts, value)| Sample { ts, value })
            .collect())
    }

    fn aggregate(
        &self,
        signal: SignalId,
        from: Timestamp,
        to: Timestamp,
        step_ms: i64,
    ) -> Result<Aggregate> {
        if step_ms <= 0 {
            return Err(StoreError::InvalidQuery(format!(
                "step {step_ms} ms must be positive"
            )));
        }
        if from >= to {
            return Ok(Aggregate {
                buckets: Vec::new(),
                source: AggSource::Raw,
            });
        }
        let (gran, source, table) = if step_ms % HOUR == 0 {
            (HOUR, AggSource::Rollup1h, "rollup_1h")
        } else if step_ms % MINUTE == 0 {
            (MINUTE, AggSource::Rollup1m, "rollup_1m")
        } else {
            (0, AggSource::Raw, "")
        };
        let mut buckets: Vec<(i64, Acc)> = Vec::new();
        let add = |buckets: &mut Vec<(i64, Acc)>, t: i64, acc: &Acc| {
            let k = floor_to(t, step_ms);
            match buckets.last_mut() {
                Some((bk, a)) if *bk == k => a.merge(acc),
                _ => buckets.push((k, *acc)),
            }
        };
        let raw_into =
            |buckets: &mut Vec<(i64, Acc)>, c: &Connection, a: i64, b: i64| -> Result<()> {
                if a >= b {
                    return Ok(());
                }
                // Samples arrive in time order: compare with the current bucket's end instead of
                // dividing for every sample.
                let mut end = i64::MIN;
                Self::for_each_sample(c, signal, a, b, |t, v| {
                    if t >= end || buckets.is_empty() {
                        let k = floor_to(t, step_ms);
                        end = k.saturating_add(step_ms);
                        match buckets.last_mut() {
                            Some((bk, _)) if *bk == k => {}
                            _ => buckets.push((k, Acc::new())),
                        }
                    }
                    if let Some((_, acc)) = buckets.last_mut() {
                        acc.add(t, v);
                    }
                })
            };
        let (inner_lo, inner_hi) = if gran > 0 {
            (ceil_to(from, gran), floor_to(to, gran))
        } else {
            (0, 0)
        };
        if gran == 0 || inner_lo >= inner_hi {
            self.read(|c| raw_into(&mut buckets, c, from, to))?;
            return Ok(Aggregate {
                buckets: buckets.into_iter().map(|(k, a)| a.bucket(k)).collect(),
                source: AggSource::Raw,
            });
        }
        // Bring stale rollups up to date before reading them.
        if self.read(|c| Self::is_dirty(c, signal))? {
            let mut conn = self.writer.lock();
            let tx = conn.transaction()?;
            self.refresh_rollups(&tx, signal)?;
            tx.commit()?;
        }
        self.read(|c| {
            raw_into(&mut buckets, c, from, inner_lo)?;
            let mut st = c.prepare_cached(&format!(
                "SELECT ts, count, min, max, sum, last, last_ts FROM {table}
                 WHERE signal = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts"
            ))?;
            let rows = st.query_map(params![signal, inner_lo, inner_hi], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Acc {
                        count: r.get::<_, i64>(1)? as u64,
                        min: r.get(2)?,
                        max: r.get(3)?,
                        sum: r.get(4)?,
                        last: r.get(5)?,
                        last_ts: r.get(6)?,
                    },
                ))
            })?;
            for row in rows {
                let (t, acc) = row?;
                add(&mut buckets, t, &acc);
            }
            raw_into(&mut buckets, c, inner_hi, to)
        })?;
        Ok(Aggregate {
            buckets: buckets.into_iter().map(|(k, a)| a.bucket(k)).collect(),
            source,
        })
    }

    fn events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        self.read(|c| {
            let prefix = q.asset_prefix.as_deref().unwrap_or("");
            let prefix_slash = format!("{prefix}/");
            let mut st = c.prepare_cached(
                "SELECT id, body FROM events
                 WHERE ts >= ?1 AND ts < ?2
                   AND (?3 = '' OR asset = ?3 OR substr(asset, 1, ?4) = ?5)
                   AND (?6 IS NULL OR type = ?6)
                 ORDER BY ts, id LIMIT ?7",
            )?;
            let rows = st.query_map(
                params![
                    q.from,
                    q.to,
                    prefix,
                    prefix_slash.len() as i64,
                    prefix_slash,
                    q.kind,
                    q.limit as i64
                ],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body) = row?;
                let event: Event = serde_json::from_str(&body).map_err(|e| StoreError::Encode {
                    what: "stored event",
                    reason: format!("event {id}: {e}"),
                })?;
                out.push(StoredEvent { id, event });
            }
            Ok(out)
        })
    }

    fn delete_events_before(&self, cutoff: Timestamp, keep_types: &[&str]) -> Result<usize> {
        let keep = serde_json::to_string(keep_types).map_err(|e| StoreError::Encode {
            what: "event types to keep",
            reason: e.to_string(),
        })?;
        let n = self.writer.lock().execute(
            "DELETE FROM events WHERE ts < ?1 AND type NOT IN (SELECT value FROM json_each(?2))",
            params![cutoff, keep],
        )?;
        Ok(n)
    }

    fn delete_inspections_before(&self, cutoff: Timestamp) -> Result<usize> {
        inspections::delete_before(&self.writer.lock(), cutoff)
    }

    fn maintain(&self, now: Timestamp) -> Result<MaintenanceReport> {
        let mut report = MaintenanceReport::default();
        let (to_compact, dirty, retention): (Vec<SignalId>, Vec<SignalId>, Vec<(SignalId, u32)>) =
            self.read(|c| {
                let ids = |sql: &str| -> Result<Vec<SignalId>> {
                    let mut st = c.prepare(sql)?;
                    let rows = st.query_map([], |r| r.get::<_, u32>(0))?;
                    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
                };
                let compact = ids("SELECT signal FROM series_state WHERE small_chunks >= 4")?;
                let dirty = ids("SELECT signal FROM series_state WHERE dirty_lo IS NOT NULL")?;
                let mut st = c.prepare("SELECT id, def FROM signals")?;
                let rows =
                    st.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))?;
                let mut retention = Vec::new();
                for row in rows {
                    let (id, json) = row?;
                    if let Ok(def) = serde_json::from_str::<SignalDef>(&json)
                        && let Some(days) = def.retention_days
                    {
                        retention.push((id, days));
                    }
                }
                Ok((compact, dirty, retention))
            })?;
        // One short transaction per signal so that ingest never waits long for the writer.
        for signal in to_compact {
            let mut conn = self.writer.lock();
            let tx = conn.transaction()?;
            report.chunks_compacted += self.compact_signal(&tx, signal)?;
            tx.commit()?;
        }
        for signal in dirty {
            let mut conn = self.writer.lock();
            let tx = conn.transaction()?;
            report.rollups_written += self.refresh_rollups(&tx, signal)?;
            tx.commit()?;
        }
        for (signal, days) in retention {
            let cutoff = now.saturating_sub(i64::from(days) * DAY);
            let conn = self.writer.lock();
            report.chunks_expired += conn.execute(
                "DELETE FROM chunks WHERE signal = ?1 AND end_ts < ?2",
                params![signal, cutoff],
            )? as u64;
        }
        if let Some(days) = self.opts.rollup_retention_days {
            let cutoff = now.saturating_sub(i64::from(days) * DAY);
            let conn = self.writer.lock();
            conn.execute("DELETE FROM rollup_1m WHERE ts < ?1", [cutoff])?;
            conn.execute("DELETE FROM rollup_1h WHERE ts < ?1", [cutoff])?;
        }
        Ok(report)
    }

    fn logistics(&self) -> Result<(Vec<LotRecord>, Vec<MoveRecord>)> {
        self.read(logistics::all)
    }

    fn lot_history(&self, lot: &str) -> Result<Vec<MoveRecord>> {
        self.read(|c| logistics::lot_history(c, lot))
    }

    fn location_moves(
        &self,
        location: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<MoveRecord>> {
        self.read(|c| logistics::location_moves(c, location, from, to, limit))
    }

    fn stats(&self) -> Result<StoreStats> {
        self.read(|c| {
            let (chunks, points, bytes): (i64, i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(count), 0), COALESCE(SUM(length(data)), 0) FROM chunks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let signals: i64 = c.query_row("SELECT COUNT(*) FROM signals", [], |r| r.get(0))?;
            let events: i64 = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
            Ok(StoreStats {
                signals: signals as u64,
                chunks: chunks as u64,
                points: points as u64,
                events: events as u64,
                sample_bytes: bytes as u64,
            })
        })
    }
}

mod inspections;
mod logistics;
#[cfg(test)]
mod tests;

/// Helpers shared with the tests.
#[cfg(test)]
pub(crate) fn naive_buckets(
    samples: &std::collections::HashMap<i64, f64>,
    from: i64,
    to: i64,
    step: i64,
) -> Vec<Bucket> {
    let mut keys: Vec<i64> = samples
        .keys()
        .copied()
        .filter(|t| *t >= from && *t < to)
        .collect();
    keys.sort_unstable();
    let mut out: Vec<(i64, Acc)> = Vec::new();
    for t in keys {
        let k = floor_to(t, step);
        let v = samples[&t];
        match out.last_mut() {
            Some((bk, a)) if *bk == k => a.add(t, v),
            _ => {
                let mut a = Acc::new();
                a.add(t, v);
                out.push((k, a));
            }
        }
    }
    out.into_iter().map(|(k, a)| a.bucket(k)).collect()
}
