//! The logistics index: lots, moves and lot links, written in the same transaction as the `lot` and
//! `move` events they come from, so the index is exactly as durable as the events.
//!
//! - `lots(lot, event, ts, product, unit, quantity, location, inputs)`: one row per `lot` event
//!   (`inputs` as a JSON array); the first event of a lot wins.
//! - `lot_moves(event, ts, lot, from_loc, to_loc, quantity)` with indexes on `(lot, ts)`,
//!   `(from_loc, ts)` and `(to_loc, ts)`.
//! - `lot_links(input, output, ts)`: genealogy edges, indexed both ways.
//!
//! The store does not judge moves (that a lot exists, that the quantity is there): the engine does
//! that before a batch reaches the store.

use gemba_core::{Event, EventBody, Timestamp};
use rusqlite::{Connection, Row, Transaction, params};

use crate::{LotRecord, MoveRecord, Result, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lots(lot TEXT PRIMARY KEY, event INTEGER NOT NULL, ts INTEGER NOT NULL,
  product TEXT NOT NULL, unit TEXT NOT NULL, quantity REAL NOT NULL, location TEXT NOT NULL,
  inputs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lot_moves(event INTEGER PRIMARY KEY, ts INTEGER NOT NULL, lot TEXT NOT NULL,
  from_loc TEXT NOT NULL, to_loc TEXT NOT NULL, quantity REAL NOT NULL);
CREATE INDEX IF NOT EXISTS lot_moves_lot_ts ON lot_moves(lot, ts);
CREATE INDEX IF NOT EXISTS lot_moves_from_ts ON lot_moves(from_loc, ts);
CREATE INDEX IF NOT EXISTS lot_moves_to_ts ON lot_moves(to_loc, ts);
CREATE TABLE IF NOT EXISTS lot_links(input TEXT NOT NULL, output TEXT NOT NULL, ts INTEGER NOT NULL,
  PRIMARY KEY(input, output)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lot_links_output ON lot_links(output, input);
";

/// Adds the index rows of one stored event (a no-op for other event types).
pub(crate) fn index_event(tx: &Transaction<'_>, event_id: i64, e: &Event) -> Result<()> {
    match &e.body {
        EventBody::Move {
            lot,
            from,
            to,
            quantity,
        } => {
            tx.prepare_cached(
                "INSERT INTO lot_moves(event, ts, lot, from_loc, to_loc, quantity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![event_id, e.ts, lot, from, to, quantity])?;
        }
        EventBody::Lot {
            lot,
            product,
            quantity,
            unit,
            location,
            inputs,
        } => {
            let json = serde_json::to_string(inputs).map_err(|err| StoreError::Encode {
                what: "lot inputs",
                reason: err.to_string(),
            })?;
            tx.prepare_cached(
                "INSERT OR IGNORE INTO lots(lot, event, ts, product, unit, quantity, location, inputs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                lot, event_id, e.ts, product, unit, quantity, location, json
            ])?;
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO lot_links(input, output, ts) VALUES (?1, ?2, ?3)",
            )?;
            for input in inputs {
                st.execute(params![input, lot, e.ts])?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn move_row(r: &Row<'_>) -> rusqlite::Result<MoveRecord> {
    Ok(MoveRecord {
        event: r.get(0)?,
        ts: r.get(1)?,
        lot: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        quantity: r.get(5)?,
    })
}

const MOVE_COLUMNS: &str = "event, ts, lot, from_loc, to_loc, quantity";

pub(crate) fn all(c: &Connection) -> Result<(Vec<LotRecord>, Vec<MoveRecord>)> {
    let mut st = c.prepare(
        "SELECT event, ts, lot, product, unit, quantity, location, inputs FROM lots ORDER BY event",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            LotRecord {
                event: r.get(0)?,
                ts: r.get(1)?,
                lot: r.get(2)?,
                product: r.get(3)?,
                unit: r.get(4)?,
                quantity: r.get(5)?,
                location: r.get(6)?,
                inputs: Vec::new(),
            },
            r.get::<_, String>(7)?,
        ))
    })?;
    let mut lots = Vec::new();
    for row in rows {
        let (mut lot, inputs) = row?;
        lot.inputs = serde_json::from_str(&inputs).map_err(|e| StoreError::Encode {
            what: "stored lot inputs",
            reason: format!("lot {}: {e}", lot.lot),
        })?;
        lots.push(lot);
    }
    let mut st = c.prepare(&format!(
        "SELECT {MOVE_COLUMNS} FROM lot_moves ORDER BY event"
    ))?;
    let moves = st
        .query_map([], move_row)?
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((lots, moves))
}

pub(crate) fn lot_history(c: &Connection, lot: &str) -> Result<Vec<MoveRecord>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {MOVE_COLUMNS} FROM lot_moves WHERE lot = ?1 ORDER BY ts, event"
    ))?;
    let rows = st.query_map([lot], move_row)?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

pub(crate) fn location_moves(
    c: &Connection,
    location: &str,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Result<Vec<MoveRecord>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {MOVE_COLUMNS} FROM (
           SELECT * FROM lot_moves WHERE to_loc = ?1 AND ts >= ?2 AND ts < ?3
           UNION
           SELECT * FROM lot_moves WHERE from_loc = ?1 AND ts >= ?2 AND ts < ?3)
         ORDER BY ts, event LIMIT ?4"
    ))?;
    let rows = st.query_map(params![location, from, to, limit as i64], move_row)?;
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{Store, WriteBatch};
    use serde_json::Map;

    fn ev(ts: i64, body: EventBody) -> Event {
        Event {
            ts,
            asset: "p".into(),
            body,
            attrs: Map::new(),
        }
    }

    #[test]
    fn lot_and_move_events_are_indexed_in_the_same_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("g.db"), SqliteOptions::default()).expect("open");
        let lot = |ts, lot: &str, location: &str, inputs: &[&str]| {
            ev(
                ts,
                EventBody::Lot {
                    lot: lot.into(),
                    product: "p".into(),
                    quantity: 10.0,
                    unit: "kg".into(),
                    location: location.into(),
                    inputs: inputs.iter().map(|s| s.to_string()).collect(),
                },
            )
        };
        let mv = |ts, lot: &str, from: &str, to: &str, q| {
            ev(
                ts,
                EventBody::Move {
                    lot: lot.into(),
                    from: from.into(),
                    to: to.into(),
                    quantity: q,
                },
            )
        };
        let batch = WriteBatch {
            series: Vec::new(),
            events: vec![
                lot(100, "R1", "store", &[]),
                mv(200, "R1", "store", "line", 4.0),
                ev(250, EventBody::Custom { name: "x".into() }),
                lot(300, "W1", "line", &["R1"]),
                mv(400, "W1", "line", "fg", 10.0),
            ],
        };
        store.write(&batch).expect("write");
        let (lots, moves) = store.logistics().expect("read");
        assert_eq!(lots.len(), 2);
        assert_eq!(lots[1].inputs, vec!["R1".to_owned()]);
        assert_eq!(lots[0].unit, "kg");
        assert!(lots[0].event < moves[0].event && moves[0].event < lots[1].event);
        assert_eq!(moves.len(), 2);
        assert_eq!(store.lot_history("W1").expect("history")[0].to, "fg");
        let at_line = store.location_moves("line", 0, 1000, 10).expect("loc");
        assert_eq!(
            at_line.iter().map(|m| m.ts).collect::<Vec<_>>(),
            vec![200, 400]
        );
        assert_eq!(
            store
                .location_moves("line", 300, 1000, 10)
                .expect("loc")
                .len(),
            1
        );
    }
}
