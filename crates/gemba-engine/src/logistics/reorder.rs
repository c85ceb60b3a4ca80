//! `[logistics]` reorder points and the events that say a stock went below one or was restocked.

use gemba_core::{Event, EventBody, Timestamp};
use serde::{Deserialize, Serialize};

use super::ledger::{Ledger, Shortage};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticsConfig {
    /// Stock levels to watch: when a batch takes the stock of `product` at `location` from at least
    /// `min` to below it, a `custom:reorder_point` event is stored at `asset`.
    pub reorder_points: Vec<ReorderPoint>,
}

/// One reorder point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderPoint {
    pub location: String,
    pub product: String,
    pub min: f64,
    /// The asset (usually the site) the reorder event is stored at.
    pub asset: String,
}

impl LogisticsConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.reorder_points.iter().enumerate() {
            let key = format!("logistics.reorder_points[{i}]");
            if p.location.trim().is_empty() || p.product.trim().is_empty() {
                return Err(format!("{key}: location and product must not be empty"));
            }
            if !p.min.is_finite() || p.min <= 0.0 {
                return Err(format!("{key}.min: {} must be a finite number > 0", p.min));
            }
        }
        Ok(())
    }
}

/// Whether an event is one the ledger checks (`lot` or `move`).
pub fn is_logistics(e: &Event) -> bool {
    matches!(e.body, EventBody::Lot { .. } | EventBody::Move { .. })
}

/// Applies committed events (already checked) to the ledger.
pub fn apply_committed(ledger: &mut Ledger, events: &[Event]) {
    for e in events {
        if let Err(err) = ledger.apply(e.ts, &e.body) {
            // Cannot happen while every batch holds the ledger from its check to its commit.
            tracing::error!(error = %err, "logistics: a committed event no longer applies");
        }
    }
    ledger.settle();
}

/// The event stored when a reorder point is crossed.
pub fn shortage_event(asset: &str, ts: Timestamp, s: &Shortage) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("location".into(), s.location.clone().into());
    attrs.insert("product".into(), s.product.clone().into());
    attrs.insert("quantity".into(), s.quantity.into());
    attrs.insert("min".into(), s.min.into());
    attrs.insert(
        "state".into(),
        if s.restocked { "restocked" } else { "below" }.into(),
    );
    Event {
        ts,
        asset: asset.to_owned(),
        body: EventBody::Custom {
            name: "reorder_point".into(),
        },
        attrs,
    }
}
