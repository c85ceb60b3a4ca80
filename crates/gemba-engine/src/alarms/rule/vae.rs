//! The `vae` alarm rule: a variational autoencoder (gemba-nn's MLP VAE) on windows of a machine's
//! signals, trained on normal operation from the store. Its score (negative ELBO) divided by a
//! threshold learned on held-out normal windows is the anomaly index; the explanation is each
//! signal's share of the reconstruction error.

use std::collections::VecDeque;

use gemba_core::Timestamp;
use gemba_nn::{Table, Threshold, ThresholdMethod, TrainHooks, Vae, VaeParams};
use serde_json::json;

use gemba_core::SignalDef;

use super::{
    Counted, Evaluator, Fit, FitCtx, Held, Multivariate, RestoreCtx, Restored, Row, Step, Verdict,
    invalid, pca_alarm, top_signal_note,
};
use crate::EngineError;
use crate::alarms::AlarmError;
use crate::alarms::spec::{Explanation, Fitted, Reading, SignalContribution, VaeFitted, VaeSpec};

/// Fewest training windows a rule accepts.
pub(super) const MIN_TRAIN_WINDOWS: usize = 50;

/// The feature names of windows over `signals`: `torque` for the newest sample, `torque@-1` for
/// the one before, oldest first in the row.
pub(super) fn feature_names(signals: &[String], window: usize) -> Vec<String> {
    (0..window)
        .rev()
        .flat_map(|lag| {
            signals.iter().map(move |s| match lag {
                0 => s.clone(),
                k => format!("{s}@-{k}"),
            })
        })
        .collect()
}

/// Row-major windows of `window` consecutive rows (oldest first), one per row from the
/// `window`-th on.
fn windows(rows: &[Vec<f64>], window: usize) -> Vec<f32> {
    rows.windows(window)
        .flat_map(|w| w.iter().flatten().map(|&v| v as f32))
        .collect()
}

/// A VAE trained for a rule.
pub(super) struct Trained {
    pub vae: Vae,
    pub train_windows: usize,
    pub holdout_windows: usize,
}

/// Trains on the first 70 % of the windows of `rows` (normal operation, in time order) and sets
/// the threshold at the `quantile` of the scores of the last 30 %: held out in time, so that the
/// threshold is not fitted on windows the network has seen (or their neighbours).
fn train(
    rows: &[Vec<f64>],
    signals: &[String],
    window: usize,
    quantile: f64,
    epochs: usize,
    seed: u64,
) -> Result<Trained, String> {
    let d = signals.len() * window;
    let data = windows(rows, window);
    let n = data.len() / d.max(1);
    let cut = n * 7 / 10;
    if cut < MIN_TRAIN_WINDOWS {
        return Err(format!(
            "{} aligned rows give {n} windows of {window}; the VAE needs at least {} for training \
             (70 %) and the rest for its threshold: choose a longer baseline",
            rows.len(),
            MIN_TRAIN_WINDOWS * 10 / 7 + 1
        ));
    }
    let table = Table::new(feature_names(signals, window), data[..cut * d].to_vec())
        .map_err(|e| e.to_string())?;
    let params = VaeParams {
        hidden: vec![64],
        z_dim: (d / 2).clamp(2, 8),
        epochs,
        batch_size: 128,
        patience: 8,
        seed,
        threshold: ThresholdMethod::Quantile { q: quantile },
        ..VaeParams::default()
    };
    params.check().map_err(|e| e.to_string())?;
    let mut vae =
        Vae::fit_table(&params, &table, TrainHooks::default()).map_err(|e| e.to_string())?;
    let held_out = vae.scores(&data[cut * d..]).map_err(|e| e.to_string())?;
    vae.threshold = Threshold::fit(params.threshold, &held_out).map_err(|e| e.to_string())?;
    if !(vae.threshold.value.is_finite() && vae.threshold.value > 0.0) {
        return Err(format!(
            "the threshold learned on the held-out windows is {}; the baseline is degenerate \
             (constant signals?)",
            vae.threshold.value
        ));
    }
    Ok(Trained {
        vae,
        train_windows: cut,
        holdout_windows: n - cut,
    })
}

/// The live evaluator of a `vae` rule.
#[derive(Debug)]
pub(super) struct VaeEval {
    pub machine: String,
    pub signals: Vec<String>,
    /// `name@version` in the model registry.
    pub model: String,
    pub vae: Vae,
    pub window: usize,
    pub quantile: f64,
    pub held: Held,
    /// The last `window` rows, oldest first.
    pub recent: VecDeque<Vec<f64>>,
    /// On the index: above 1 is an anomaly.
    pub alarm: Counted,
}

impl VaeEval {
    /// Scores the newest window at `ts`; returns the index and maybe a verdict.
    pub fn evaluate(&mut self, ts: Timestamp) -> Option<(f64, Option<Verdict>)> {
        let x = match self.held.row() {
            Row::Ready(x) => x,
            Row::Gated => {
                // A window never spans a stop: it starts again when the machine runs.
                self.alarm.interrupt();
                self.recent.clear();
                return None;
            }
            Row::Incomplete => return None,
        };
        self.recent.push_back(x);
        while self.recent.len() > self.window {
            self.recent.pop_front();
        }
        if self.recent.len() < self.window {
            return None;
        }
        let flat: Vec<f32> = self.recent.iter().flatten().map(|&v| v as f32).collect();
        let scored = self.vae.score(&flat).ok()?;
        let score = *scored.score.first()?;
        let index = score / self.vae.threshold.value;
        if !index.is_finite() {
            return None;
        }
        let verdict = match self.alarm.step(index) {
            Step::Raise => {
                let ex = self.explain(ts, score, &scored.error);
                let top = top_signal_note(&ex);
                let message = format!(
                    "{} deviates from normal operation (VAE index {index:.2}{top})",
                    self.machine
                );
                Some(Verdict::Raise(ex, message))
            }
            Step::Still => Some(Verdict::Still(self.explain(ts, score, &scored.error))),
            Step::Clear => Some(Verdict::Clear),
            Step::Nothing => None,
        };
        Some((index, verdict))
    }

    /// Each signal's share of the window's squared reconstruction error (all its lags).
    fn explain(&self, ts: Timestamp, score: f64, error: &[f32]) -> Explanation {
        let d = self.signals.len();
        let mut per_signal = vec![0f64; d];
        for (i, e) in error.iter().enumerate() {
            per_signal[i % d] += f64::from(*e);
        }
        let total: f64 = per_signal.iter().sum();
        let newest = self.recent.back();
        // The newest sample's features are the last `d` of the window.
        let mean = |j: usize| {
            self.vae
                .scaler
                .as_ref()
                .and_then(|s| s.mean.get((self.window - 1) * d + j))
                .map(|&m| f64::from(m))
        };
        let mut contributions: Vec<SignalContribution> = self
            .signals
            .iter()
            .enumerate()
            .map(|(j, s)| SignalContribution {
                signal: format!("{}/{s}", self.machine),
                contribution: if total > 0.0 {
                    per_signal[j] / total
                } else {
                    0.0
                },
                value: newest.and_then(|r| r.get(j).copied()).unwrap_or(f64::NAN),
                expected: mean(j),
            })
            .collect();
        contributions.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        let threshold = self.vae.threshold.value;
        Explanation {
            rule: format!(
                "VAE {} on {} signals × {} samples of {}: score (reconstruction error + KL) {score:.2} \
                 above {threshold:.2}, the {} quantile of held-out normal windows, for {} points",
                self.model, d, self.window, self.machine, self.quantile, self.alarm.raise_after
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
                "score": score, "threshold": threshold, "index": score / threshold,
            })),
            contributions,
        }
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &VaeSpec) -> Result<Fit, EngineError> {
    let VaeSpec {
        machine,
        signals,
        baseline,
        window,
        quantile,
        epochs,
        raise_after,
        clear_after,
        clear_index,
        score_signal,
        state,
    } = spec;
    let (engine, now) = (cx.engine, cx.now);
    let window = window.unwrap_or(3);
    if !(1..=60).contains(&window) {
        return Err(invalid("window", format!("{window} must be 1 to 60 rows")));
    }
    let quantile = quantile.unwrap_or(0.999);
    if !(quantile > 0.5 && quantile < 1.0) {
        return Err(invalid(
            "quantile",
            format!("{quantile} must lie in (0.5, 1)"),
        ));
    }
    let epochs = epochs.unwrap_or(60);
    if !(1..=1000).contains(&epochs) {
        return Err(invalid("epochs", format!("{epochs} must be 1 to 1000")));
    }
    let Multivariate {
        machine,
        names,
        score_name,
        all,
        gate,
        rows,
        period: p,
    } = engine.multivariate_baseline(
        "the VAE",
        machine,
        signals.as_deref(),
        score_signal.as_deref().unwrap_or("vae_index"),
        state.as_deref(),
        *baseline,
        now,
    )?;
    let started = std::time::Instant::now();
    let fit = train(&rows, &names, window as usize, quantile, epochs as usize, 0).map_err(|e| {
        invalid(
            "baseline",
            format!("{machine} between {} and {}: {e}", p.from, p.to),
        )
    })?;
    tracing::info!(
        rule = %cx.name,
        windows = fit.train_windows,
        epochs = fit.vae.history.len(),
        seconds = started.elapsed().as_secs_f64(),
        "vae rule trained"
    );
    let artifact = fit.vae.to_json().map_err(|e| {
        EngineError::Alarm(AlarmError::VaeArtefact {
            rule: cx.name.to_owned(),
            reason: e.to_string(),
        })
    })?;
    let model_name = format!("{}-vae", cx.name);
    let version = engine
        .register_model(&model_name, Some(&machine), &artifact)?
        .version;
    let out = engine.score_signal_id(SignalDef {
        description: Some(format!(
            "VAE anomaly index of alarm rule {} (above 1: anomaly)",
            cx.name
        )),
        ..SignalDef::auto(&format!("{machine}/{score_name}"))
    })?;
    let threshold = fit.vae.threshold.value;
    let eval = VaeEval {
        machine: machine.clone(),
        signals: names.clone(),
        model: format!("{model_name}@{version}"),
        vae: fit.vae,
        window: window as usize,
        quantile,
        held: Held::new(names.len(), gate.as_ref().map(|g| g.1)),
        recent: Default::default(),
        alarm: pca_alarm(*raise_after, *clear_after, *clear_index, false),
    };
    let fitted = Fitted::Vae(VaeFitted {
        signals: names,
        window: window as usize,
        quantile,
        model: model_name,
        version,
        threshold,
        train_windows: fit.train_windows,
        holdout_windows: fit.holdout_windows,
        score_signal: format!("{machine}/{score_name}"),
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

/// Rebuilds the evaluator of a stored rule: the network comes from the model registry.
pub(super) fn restore(
    cx: &RestoreCtx<'_>,
    spec: &VaeSpec,
    fitted: &VaeFitted,
) -> Result<Restored, String> {
    let machine = spec.machine.trim_end_matches('/').to_owned();
    let (model, version) = (&fitted.model, fitted.version);
    let json = cx.artifact(model, version)?;
    let net = Vae::from_json(&json).map_err(|e| e.to_string())?;
    let inputs = cx.machine_inputs(&machine, &fitted.signals, fitted.gate_signal.as_ref())?;
    Ok(Restored {
        eval: Box::new(VaeEval {
            machine,
            signals: fitted.signals.clone(),
            model: format!("{model}@{version}"),
            vae: net,
            window: fitted.window,
            quantile: fitted.quantile,
            held: Held::new(fitted.signals.len(), fitted.gate_state),
            recent: Default::default(),
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

impl Evaluator for VaeEval {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_oldest_first_and_named_by_lag() {
        let names = feature_names(&["a".into(), "b".into()], 3);
        assert_eq!(names, ["a@-2", "b@-2", "a@-1", "b@-1", "a", "b"]);
        let rows = vec![
            vec![1.0, 10.0],
            vec![2.0, 20.0],
            vec![3.0, 30.0],
            vec![4.0, 40.0],
        ];
        let w = windows(&rows, 3);
        assert_eq!(
            w,
            [
                1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0
            ]
        );
    }

    #[test]
    fn too_short_a_baseline_is_refused_with_the_numbers() {
        let rows: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64, 1.0]).collect();
        let err = train(&rows, &["a".into(), "b".into()], 3, 0.999, 5, 0)
            .err()
            .expect("too few rows");
        assert!(err.contains("38 windows of 3"), "{err}");
    }
}
