//! Machine health: a degradation indicator (by default the spindle's vibration RMS) judged against
//! its normal level, with a health index and the remaining useful life in running hours with a 95 %
//! band (`gemba_analytics::rul`). Only samples taken while the machine runs count, and time is
//! running time: a bearing wears while it turns.

use gemba_analytics::{DegradationModel, RulEstimate};
use gemba_core::{SignalKind, Timestamp};
use serde::Serialize;

use crate::{Engine, EngineError};

/// What to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRequest {
    pub machine: String,
    /// Indicator signal name under the machine.
    pub signal: String,
    /// Failure level of the indicator.
    pub threshold: f64,
    /// Normal operation (e.g. the hours after the last replacement).
    pub baseline: (Timestamp, Timestamp),
    /// The data judged: from the baseline's start to `to`.
    pub to: Timestamp,
    /// Judge only the last this-many milliseconds before `to` (the baseline is read anyway); None:
    /// everything since the baseline (`running_hours` then counts from the baseline's start).
    pub window_ms: Option<i64>,
}

/// The answer: the estimate in seconds and hours, and what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub machine: String,
    pub signal: String,
    pub threshold: f64,
    pub baseline_mean: f64,
    pub baseline_sd: f64,
    pub running_hours: f64,
    pub estimate: RulEstimate,
    pub rul_hours: Option<f64>,
    pub rul_low_hours: Option<f64>,
    pub rul_high_hours: Option<f64>,
}

impl Engine {
    /// Health of one machine (blocking: reads the store).
    pub fn machine_health(&self, req: &HealthRequest) -> Result<Health, EngineError> {
        let bad = |m: String| EngineError::InvalidQuery(m);
        let machine = req.machine.trim_end_matches('/');
        if self.registry().node(machine).is_none() {
            return Err(bad(format!("machine: unknown asset {machine:?}")));
        }
        let path = format!("{machine}/{}", req.signal);
        let ind = self
            .registry()
            .get(&path)
            .ok_or_else(|| bad(format!("signal: unknown signal {path:?}")))?;
        if req.baseline.0 >= req.baseline.1 || req.baseline.1 > req.to {
            return Err(bad(
                "baseline: from < to ≤ the end of the judged range is required".into(),
            ));
        }
        let state = self
            .registry()
            .get(&format!("{machine}/state"))
            .filter(|r| r.def.kind == SignalKind::State);
        let running = state
            .as_ref()
            .and_then(|r| r.def.state_index("running"))
            .map(|i| i as f64);
        // The baseline, then the judged range (they may be apart when a window is given).
        let from = match req.window_ms {
            Some(w) => (req.to - w.max(1)).max(req.baseline.1),
            None => req.baseline.1,
        };
        let mut samples = self
            .store()
            .range(ind.id, req.baseline.0, req.baseline.1, 20_000_000)?;
        samples.extend(self.store().range(ind.id, from, req.to, 20_000_000)?);
        let states = match &state {
            Some(r) => {
                let mut s = self.store().range(
                    r.id,
                    req.baseline.0 - 3_600_000,
                    req.baseline.1,
                    20_000_000,
                )?;
                s.extend(
                    self.store()
                        .range(r.id, from - 3_600_000, req.to, 20_000_000)?,
                );
                s.sort_by_key(|x| x.ts);
                s.dedup_by_key(|x| x.ts);
                s
            }
            None => Vec::new(),
        };
        // Keep samples taken while running (state signal held at its last value; without one,
        // a zero indicator means stopped).
        let mut k = 0;
        let mut cur: Option<f64> = None;
        let mut kept: Vec<(Timestamp, f64)> = Vec::with_capacity(samples.len());
        for s in &samples {
            while k < states.len() && states[k].ts <= s.ts {
                cur = Some(states[k].value);
                k += 1;
            }
            let is_running = match (running, cur) {
                (Some(r), Some(c)) => c == r,
                (Some(_), None) => false,
                (None, _) => s.value > 0.0,
            };
            if is_running && s.value.is_finite() {
                kept.push((s.ts, s.value));
            }
        }
        let base: Vec<f64> = kept
            .iter()
            .filter(|(ts, _)| *ts >= req.baseline.0 && *ts < req.baseline.1)
            .map(|(_, v)| *v)
            .collect();
        if base.len() < 30 {
            return Err(bad(format!(
                "baseline: {} running samples of {path} between {} and {}; at least 30 are needed",
                base.len(),
                req.baseline.0,
                req.baseline.1
            )));
        }
        let n = base.len() as f64;
        let mean = base.iter().sum::<f64>() / n;
        let sd = (base.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let model = DegradationModel::new(mean, sd.max(1e-9), req.threshold)
            .map_err(|e| bad(format!("threshold: {e}")))?;
        // Running time: the samples' spacing (median), counted only while running.
        let mut gaps: Vec<i64> = kept
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|g| *g > 0)
            .collect();
        gaps.sort_unstable();
        let dt = gaps.get(gaps.len() / 2).copied().unwrap_or(1000).max(1) as f64 / 1000.0;
        let t: Vec<f64> = (0..kept.len()).map(|i| i as f64 * dt).collect();
        let y: Vec<f64> = kept.iter().map(|(_, v)| *v).collect();
        // Judge the data after the baseline (the trend lives there).
        let first = kept.partition_point(|(ts, _)| *ts < req.baseline.1);
        let estimate = model.estimate(&t[first..], &y[first..]);
        let h = |s: Option<f64>| s.map(|s| s / 3600.0);
        Ok(Health {
            machine: machine.to_owned(),
            signal: req.signal.clone(),
            threshold: req.threshold,
            baseline_mean: mean,
            baseline_sd: sd,
            running_hours: t.last().copied().unwrap_or(0.0) / 3600.0,
            rul_hours: h(estimate.rul_s),
            rul_low_hours: h(estimate.rul_low_s),
            rul_high_hours: h(estimate.rul_high_s),
            estimate,
        })
    }
}
