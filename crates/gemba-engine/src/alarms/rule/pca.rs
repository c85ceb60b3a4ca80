//! The `pca` rule: a PCA model (Hotelling T² and SPE) of a machine's signals fitted on normal
//! operation; its anomaly index is stored as a signal and alarmed on above 1.

use gemba_analytics::{PcaMonitor, PcaOptions};
use gemba_core::{SignalDef, Timestamp};
use serde_json::json;

use super::{
    Counted, Evaluator, Fit, FitCtx, Held, Multivariate, RestoreCtx, Restored, Row, Step, Verdict,
    invalid, pca_alarm, top_signal_note,
};
use crate::EngineError;
use crate::alarms::spec::{Explanation, Fitted, PcaFitted, PcaSpec, Reading, SignalContribution};

#[derive(Debug)]
struct PcaEval {
    machine: String,
    signals: Vec<String>,
    model: PcaMonitor,
    held: Held,
    /// On the index: above 1 is out of control.
    alarm: Counted,
}

impl PcaEval {
    /// Scores the held values at `ts`; returns the index and maybe a verdict.
    fn evaluate(&mut self, ts: Timestamp) -> Option<(f64, Option<Verdict>)> {
        let x = match self.held.row() {
            Row::Ready(x) => x,
            Row::Gated => {
                self.alarm.interrupt();
                return None;
            }
            Row::Incomplete => return None,
        };
        let score = self.model.score(&x).ok()?;
        let verdict = match self.alarm.step(score.index) {
            Step::Raise => {
                let ex = self.explain(ts, &score);
                let top = top_signal_note(&ex);
                let message = format!(
                    "{} deviates from normal operation (PCA index {:.2}{top})",
                    self.machine, score.index
                );
                Some(Verdict::Raise(ex, message))
            }
            Step::Still => Some(Verdict::Still(self.explain(ts, &score))),
            Step::Clear => Some(Verdict::Clear),
            Step::Nothing => None,
        };
        Some((score.index, verdict))
    }

    fn explain(&self, ts: Timestamp, score: &gemba_analytics::PcaScore) -> Explanation {
        let mut contributions: Vec<SignalContribution> = self
            .signals
            .iter()
            .enumerate()
            .map(|(j, s)| SignalContribution {
                signal: format!("{}/{s}", self.machine),
                contribution: score.contributions[j],
                value: self.held.get(j).unwrap_or(f64::NAN),
                expected: Some(self.model.mean[j]),
            })
            .collect();
        contributions.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        let which = if score.spe / self.model.spe_limit >= score.t2 / self.model.t2_limit {
            "SPE (the signals broke their usual correlation)"
        } else {
            "Hotelling T² (the signals moved together beyond their usual range)"
        };
        Explanation {
            rule: format!(
                "PCA on {} signals of {}: {which}; index {:.2} > 1 for {} points",
                self.signals.len(),
                self.machine,
                score.index,
                self.alarm.raise_after
            ),
            values: contributions
                .iter()
                .take(3)
                .map(|c| Reading {
                    signal: c.signal.clone(),
                    ts,
                    value: c.value,
                })
                .collect(),
            limits: Some(json!({
                "t2": score.t2, "t2_limit": self.model.t2_limit,
                "spe": score.spe, "spe_limit": self.model.spe_limit,
            })),
            contributions,
        }
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &PcaSpec) -> Result<Fit, EngineError> {
    let PcaSpec {
        machine,
        signals,
        baseline,
        variance,
        quantile,
        raise_after,
        clear_after,
        clear_index,
        score_signal,
        state,
    } = spec;
    let (engine, now) = (cx.engine, cx.now);
    let Multivariate {
        machine,
        names,
        score_name,
        all,
        gate,
        rows,
        period: p,
    } = engine.multivariate_baseline(
        "PCA",
        machine,
        signals.as_deref(),
        score_signal.as_deref().unwrap_or("anomaly_index"),
        state.as_deref(),
        *baseline,
        now,
    )?;
    let cut = rows.len() * 7 / 10;
    let opts = PcaOptions {
        variance: variance.unwrap_or(0.9),
        quantile: quantile.unwrap_or(0.999),
    };
    let model = PcaMonitor::fit(&rows[..cut], &rows[cut..], opts).map_err(|e| {
        invalid(
            "baseline",
            format!("{machine} between {} and {}: {e}", p.from, p.to),
        )
    })?;
    let out_path = format!("{machine}/{score_name}");
    let out = engine.score_signal_id(SignalDef {
        description: Some(format!(
            "PCA anomaly index of alarm rule {} (above 1: out of control)",
            cx.name
        )),
        ..SignalDef::auto(&out_path)
    })?;
    let components = model.loadings.len();
    let eval = PcaEval {
        machine: machine.clone(),
        signals: names.clone(),
        model: model.clone(),
        held: Held::new(names.len(), gate.as_ref().map(|g| g.1)),
        alarm: pca_alarm(*raise_after, *clear_after, *clear_index, false),
    };
    let fitted = Fitted::Pca(PcaFitted {
        signals: names,
        model,
        train_rows: cut,
        holdout_rows: rows.len() - cut,
        components,
        score_signal: out_path,
        gate_signal: gate.as_ref().map(|g| g.0.def.path.clone()),
        gate_state: gate.as_ref().map(|g| g.1),
    });
    Ok(Fit {
        eval: Box::new(eval),
        inputs: all.iter().map(|r| r.id).collect(),
        output: Some(out),
        asset: machine,
        fitted,
    })
}

/// Rebuilds the evaluator of a stored rule.
pub(super) fn restore(
    cx: &RestoreCtx<'_>,
    spec: &PcaSpec,
    fitted: &PcaFitted,
) -> Result<Restored, String> {
    let machine = spec.machine.trim_end_matches('/').to_owned();
    let inputs = cx.machine_inputs(&machine, &fitted.signals, fitted.gate_signal.as_ref())?;
    Ok(Restored {
        eval: Box::new(PcaEval {
            machine,
            signals: fitted.signals.clone(),
            model: fitted.model.clone(),
            held: Held::new(fitted.signals.len(), fitted.gate_state),
            alarm: pca_alarm(
                spec.raise_after,
                spec.clear_after,
                spec.clear_index,
                cx.raised,
            ),
        }),
        inputs,
        output: Some(cx.id(&fitted.score_signal)?),
    })
}

impl Evaluator for PcaEval {
    fn step(
        &mut self,
        ts: Timestamp,
        points: &[(usize, f64)],
        verdicts: &mut Vec<Verdict>,
    ) -> Option<f64> {
        for &(slot, v) in points {
            self.held.set(slot, v);
        }
        let (index, verdict) = self.evaluate(ts)?;
        verdicts.extend(verdict);
        Some(index)
    }
}
