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
    /// A material lot came into being at `location`: received from a supplier, or made from
    /// `inputs` (earlier lots, which are consumed whole by it). A move of a lot that no `lot` event
    /// created is rejected.
    Lot {
        lot: String,
        product: String,
        quantity: f64,
        #[serde(default = "default_unit")]
        unit: String,
        location: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inputs: Vec<String>,
    },
    /// Anything else, named by the sender (tool change, operator login, inspection, …).
    Custom { name: String },
}

fn default_unit() -> String {
    "pcs".into()
}

impl EventBody {
    /// The stored type name: `production`, `state`, `move`, `lot` or `custom:<name>`.
    pub fn type_name(&self) -> String {
        match self {
            EventBody::Production { .. } => "production".into(),
            EventBody::State { .. } => "state".into(),
            EventBody::Move { .. } => "move".into(),
            EventBody::Lot { .. } => "lot".into(),
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
            EventBody::Lot {
                lot,
                product,
                quantity,
                unit,
                location,
                inputs,
            } => {
                crate::check_segment(lot).map_err(|r| bad("lot", r.into()))?;
                if product.trim().is_empty() {
                    return Err(bad("product", "must not be empty".into()));
                }
                if unit.trim().is_empty() {
                    return Err(bad("unit", "must not be empty".into()));
                }
                if location.trim().is_empty() {
                    return Err(bad("location", "must not be empty".into()));
                }
                if !quantity.is_finite() || *quantity < 0.0 {
                    return Err(bad(
                        "quantity",
                        format!("{quantity} must be a finite number >= 0"),
                    ));
                }
                for (i, input) in inputs.iter().enumerate() {
                    if input.trim().is_empty() {
                        return Err(bad("inputs", format!("inputs[{i}] must not be empty")));
                    }
                    if input == lot {
                        return Err(bad(
                            "inputs",
                            format!("lot {lot:?} cannot be its own input"),
                        ));
                    }
                    if inputs[..i].contains(input) {
                        return Err(bad("inputs", format!("{input:?} is listed twice")));
                    }
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
    fn lot_events_parse_and_validate() {
        let e: Event = serde_json::from_str(
            r#"{"ts":1,"asset":"p","type":"lot","lot":"W1","product":"widget","quantity":40,"location":"line1","inputs":["R1","R2"]}"#,
        )
        .expect("parses");
        assert_eq!(e.body.type_name(), "lot");
        let EventBody::Lot { unit, inputs, .. } = &e.body else {
            panic!("not a lot event: {e:?}");
        };
        assert_eq!(unit, "pcs");
        assert_eq!(inputs, &["R1", "R2"]);
        e.validate().expect("valid");
        for (json, field) in [
            (
                r#""lot":"W1","product":"w","quantity":-1,"location":"s""#,
                "quantity",
            ),
            (
                r#""lot":"W1","product":"","quantity":1,"location":"s""#,
                "product",
            ),
            (
                r#""lot":"W1","product":"w","quantity":1,"location":"s","inputs":["W1"]"#,
                "inputs",
            ),
            (
                r#""lot":"W1","product":"w","quantity":1,"location":"s","inputs":["a","a"]"#,
                "inputs",
            ),
            (
                r#""lot":"W 1","product":"w","quantity":1,"location":"s""#,
                "lot",
            ),
        ] {
            let e: Event =
                serde_json::from_str(&format!(r#"{{"ts":1,"asset":"p","type":"lot",{json}}}"#))
                    .expect("parses");
            let err = e.validate().expect_err(json).to_string();
            assert!(err.contains(field), "{json}: {err}");
        }
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
