//! Events: production counts, machine state changes, material moves and free-form events.
//!
//! On the wire an event is one JSON object with a `type` tag:
//! `{"ts": 1700000000000, "asset": "plant1/machining/line1/cnc1", "type": "production", "good": 5, "scrap": 1}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ModelError;
use crate::time::Timestamp;

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventBody {
    /// Parts made since the previous production event of this asset.
    Production {
        good: u64,
        #[serde(default)]
        scrap: u64,
        /// Lot the parts belong to, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lot: Option<String>,
        /// Mean cycle time of these parts in seconds, if the machine reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cycle_time_s: Option<f64>,
    },
    /// The machine entered `state` (e.g. running, idle, setup, down).
    State {
        state: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A quantity of a material lot moved between two locations (stores, buffers, machines, shipping).
    Move {
        lot: String,
        from: String,
        to: String,
        quantity: f64,
    },
    /// Anything else, named by the sender (tool change, operator login, inspection, …).
    Custom { name: String },
}

impl EventBody {
    /// The stored type name: `production`, `state`, `move` or `custom:<name>`.
    pub fn type_name(&self) -> String {
        match self {
            EventBody::Production { .. } => "production".into(),
            EventBody::State { .. } => "state".into(),
            EventBody::Move { .. } => "move".into(),
            EventBody::Custom { name } => format!("custom:{name}"),
        }
    }
}

/// An event at an asset (usually a machine or a line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts: Timestamp,
    /// Asset path: `site`, `site/area`, `site/area/line` or `site/area/line/machine`.
    pub asset: String,
    #[serde(flatten)]
    pub body: EventBody,
    /// Free attributes (operator, part id, order, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attrs: Map<String, Value>,
}

impl Event {
    /// Checks the fields that serde cannot: finite, non-negative quantities and non-empty names.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, reason: String| ModelError::InvalidEntity {
            what: "event",
            id: format!("{}@{}", self.body.type_name(), self.ts),
            field,
            reason,
        };
        match &self.body {
            EventBody::Production { cycle_time_s, .. } => {
                if let Some(c) = cycle_time_s
                    && (!c.is_finite() || *c < 0.0)
                {
                    return Err(bad(
                        "cycle_time_s",
                        format!("{c} must be a finite number >= 0"),
                    ));
                }
            }
            EventBody::State { state, .. } => {
                if state.trim().is_empty() {
                    return Err(bad("state", "must not be empty".into()));
                }
            }
            EventBody::Move {
                lot,
                from,
                to,
                quantity,
            } => {
                if lot.trim().is_empty() {
                    return Err(bad("lot", "must not be empty".into()));
                }
                if from.trim().is_empty() || to.trim().is_empty() {
                    return Err(bad("from/to", "locations must not be empty".into()));
                }
                if !quantity.is_finite() || *quantity <= 0.0 {
                    return Err(bad(
                        "quantity",
                        format!("{quantity} must be a finite number > 0"),
                    ));
                }
            }
            EventBody::Custom { name } => {
                crate::check_segment(name).map_err(|r| bad("name", r.into()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        let json = r#"{"ts":1700000000000,"asset":"p/a/l/m","type":"production","good":5,"scrap":1,"attrs":{"operator":"op7"}}"#;
        let e: Event = serde_json::from_str(json).expect("valid event");
        assert_eq!(e.body.type_name(), "production");
        assert_eq!(e.attrs["operator"], "op7");
        let back = serde_json::to_string(&e).expect("serialise");
        let again: Event = serde_json::from_str(&back).expect("re-parse");
        assert_eq!(again, e);
    }

    #[test]
    fn rejects_bad_moves_and_unknown_fields() {
        let e: Event = serde_json::from_str(
            r#"{"ts":1,"asset":"p","type":"move","lot":"L1","from":"store","to":"line1","quantity":-3}"#,
        )
        .expect("parses");
        let err = e.validate().expect_err("negative quantity");
        assert!(err.to_string().contains("quantity"), "{err}");
        assert!(
            serde_json::from_str::<Event>(
                r#"{"ts":1,"asset":"p","type":"state","state":"run","colour":"red"}"#
            )
            .is_err()
        );
    }
}
