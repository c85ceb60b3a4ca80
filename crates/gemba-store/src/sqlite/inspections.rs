//! Visual inspection results: one row per inspected image with its score, verdict, the model that
//! judged it, the part, lot and machine it belongs to, and the heat-map PNG, written in one
//! statement (durable when [`crate::Store::put_inspection`] returns).
//!
//! `inspections(id, ts, model, version, score, threshold, verdict, part, lot, machine, width,
//! height, heat_max, by, heat_map)` with indexes on `ts`, `(part, ts)`, `(lot, ts)` and
//! `(machine, ts)`. The store does not judge the values: the engine does.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{InspectionQuery, InspectionRecord, Result};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS inspections(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL,
  model TEXT NOT NULL, version INTEGER NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL,
  verdict TEXT NOT NULL, part TEXT, lot TEXT, machine TEXT, width INTEGER NOT NULL,
  height INTEGER NOT NULL, heat_max REAL NOT NULL, by TEXT NOT NULL, heat_map BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS inspections_ts ON inspections(ts);
CREATE INDEX IF NOT EXISTS inspections_part_ts ON inspections(part, ts);
CREATE INDEX IF NOT EXISTS inspections_lot_ts ON inspections(lot, ts);
CREATE INDEX IF NOT EXISTS inspections_machine_ts ON inspections(machine, ts);
";

const COLUMNS: &str = "id, ts, model, version, score, threshold, verdict, part, lot, machine, \
                       width, height, heat_max, by";

pub(crate) fn insert(conn: &Connection, r: &InspectionRecord, heat_map: &[u8]) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO inspections(ts, model, version, score, threshold, verdict, part, lot, machine,
           width, height, heat_max, by, heat_map)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        r.ts,
        r.model,
        r.version,
        r.score,
        r.threshold,
        r.verdict,
        r.part,
        r.lot,
        r.machine,
        r.width,
        r.height,
        r.heat_max,
        r.by,
        heat_map
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Deletes the results with `ts < cutoff` (retention); returns how many.
pub(crate) fn delete_before(conn: &Connection, cutoff: i64) -> Result<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM inspections WHERE ts < ?1")?
        .execute(params![cutoff])?)
}

fn row(r: &Row<'_>) -> rusqlite::Result<InspectionRecord> {
    Ok(InspectionRecord {
        id: r.get(0)?,
        ts: r.get(1)?,
        model: r.get(2)?,
        version: r.get(3)?,
        score: r.get(4)?,
        threshold: r.get(5)?,
        verdict: r.get(6)?,
        part: r.get(7)?,
        lot: r.get(8)?,
        machine: r.get(9)?,
        width: r.get(10)?,
        height: r.get(11)?,
        heat_max: r.get(12)?,
        by: r.get(13)?,
    })
}

pub(crate) fn query(c: &Connection, q: &InspectionQuery) -> Result<Vec<InspectionRecord>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inspections
         WHERE ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR part = ?3) AND (?4 IS NULL OR lot = ?4)
           AND (?5 IS NULL OR machine = ?5) AND (?6 IS NULL OR verdict = ?6)
         ORDER BY ts DESC, id DESC LIMIT ?7"
    ))?;
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let rows = st.query_map(
        params![q.from, q.to, q.part, q.lot, q.machine, q.verdict, limit],
        row,
    )?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

pub(crate) fn one(c: &Connection, id: i64) -> Result<Option<InspectionRecord>> {
    let mut st = c.prepare_cached(&format!("SELECT {COLUMNS} FROM inspections WHERE id = ?1"))?;
    Ok(st.query_row([id], row).optional()?)
}

pub(crate) fn heat_map(c: &Connection, id: i64) -> Result<Option<Vec<u8>>> {
    let mut st = c.prepare_cached("SELECT heat_map FROM inspections WHERE id = ?1")?;
    Ok(st.query_row([id], |r| r.get(0)).optional()?)
}
