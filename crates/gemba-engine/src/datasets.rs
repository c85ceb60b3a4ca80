//! Training sets cut from the store. `parts`: one row per measured part of a machine — the value
//! of its quality characteristic (the gauge with spec limits) judged against the limits gives the
//! label (`defect` or `ok`), and the machine's other gauges at that instant (their latest sample at
//! or before it) are the features. This is what a defect-prediction model learns from.

use gemba_core::{SignalKind, Timestamp};

use crate::{Engine, EngineError};

/// A labelled table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub features: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<String>,
    pub ts: Vec<Timestamp>,
    /// The quality characteristic the labels come from.
    pub quality: String,
}

impl Table {
    /// CSV with a header: `ts`, the features, then `quality` (the label).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("ts");
        for f in &self.features {
            out.push(',');
            out.push_str(f);
        }
        out.push_str(",quality\n");
        for ((ts, row), label) in self.ts.iter().zip(&self.rows).zip(&self.labels) {
            out.push_str(&ts.to_string());
            for v in row {
                out.push(',');
                out.push_str(&v.to_string());
            }
            out.push(',');
            out.push_str(label);
            out.push('\n');
        }
        out
    }
}

impl Engine {
    /// The parts of `machine` measured in `[from, to)` (blocking: reads the store).
    pub fn parts_dataset(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Table, EngineError> {
        if from >= to {
            return Err(EngineError::InvalidQuery(format!(
                "from ({from}) must be before to ({to})"
            )));
        }
        let machine = machine.trim_end_matches('/');
        if self.registry().node(machine).is_none() {
            return Err(EngineError::InvalidQuery(format!(
                "machine: unknown asset {machine:?}"
            )));
        }
        let signals: Vec<_> = self
            .registry()
            .signals_under(machine)
            .into_iter()
            .filter(|r| r.def.path.rsplit_once('/').map(|(p, _)| p) == Some(machine))
            .collect();
        let quality = signals
            .iter()
            .find(|r| r.def.spec.as_ref().is_some_and(|s| s.lsl.is_some() || s.usl.is_some()))
            .ok_or_else(|| {
                EngineError::InvalidQuery(format!(
                    "machine: {machine} has no signal with spec limits (lsl/usl) to judge its parts by"
                ))
            })?
            .clone();
        let (lsl, usl) = quality.def.spec.map_or((None, None), |s| (s.lsl, s.usl));
        let features: Vec<_> = signals
            .iter()
            .filter(|r| {
                r.id != quality.id
                    && r.def.kind == SignalKind::Gauge
                    && !r.def.auto
                    && r.def.spec.is_none()
            })
            .cloned()
            .collect();
        let parts = self.store().range(quality.id, from, to, 5_000_000)?;
        if parts.is_empty() {
            return Err(EngineError::InvalidQuery(format!(
                "no parts: {} has no samples between {from} and {to}",
                quality.def.path
            )));
        }
        // Features held at their latest value at or before each part (a lookback of one hour
        // gives the first part its context).
        let series: Vec<Vec<gemba_core::Sample>> = features
            .iter()
            .map(|r| self.store().range(r.id, from - 3_600_000, to, 20_000_000))
            .collect::<Result<_, _>>()?;
        let mut idx = vec![0usize; features.len()];
        let mut held: Vec<Option<f64>> = vec![None; features.len()];
        let mut table = Table {
            features: features
                .iter()
                .map(|r| r.def.path.rsplit('/').next().unwrap_or("").to_owned())
                .collect(),
            rows: Vec::new(),
            labels: Vec::new(),
            ts: Vec::new(),
            quality: quality.def.path.clone(),
        };
        for p in parts {
            for k in 0..features.len() {
                while idx[k] < series[k].len() && series[k][idx[k]].ts <= p.ts {
                    held[k] = Some(series[k][idx[k]].value);
                    idx[k] += 1;
                }
            }
            let Some(row) = held.iter().copied().collect::<Option<Vec<f64>>>() else {
                continue;
            };
            let bad = lsl.is_some_and(|l| p.value < l) || usl.is_some_and(|u| p.value > u);
            table.rows.push(row);
            table.labels.push(if bad { "defect" } else { "ok" }.into());
            table.ts.push(p.ts);
        }
        Ok(table)
    }
}
