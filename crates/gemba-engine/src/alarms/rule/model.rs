//! The `model` rule: a registered classifier (logistic regression, SVM) scored on the machine's
//! signals named like its features (latest values or window statistics); the probability of the
//! watched classes is stored as a signal and alarmed on with hysteresis.

use gemba_core::{Sample, SignalDef, Timestamp, check_segment};
use gemba_store::{SignalId, Store};
use serde_json::json;

use super::{
    Counted, Evaluator, Fit, FitCtx, Held, RestoreCtx, Restored, Row, Step, Verdict, finite,
    invalid,
};
use crate::EngineError;
use crate::alarms::AlarmError;
use crate::alarms::spec::{
    Explanation, Fitted, ModelFitted, ModelSpec, Reading, SignalContribution,
};

/// A classifier's probability with hysteresis.
#[derive(Debug)]
struct ModelEval {
    machine: String,
    name: String,
    artifact: Box<gemba_ml::ModelArtifact>,
    features: Vec<String>,
    /// Per feature: the input (signal) it is computed from, and its window statistic if any.
    columns: Vec<(usize, Option<(gemba_analytics::window::Stat, i64)>)>,
    /// Per input with window features: its trailing samples.
    rolling: Vec<Option<gemba_analytics::window::Rolling>>,
    watched: Vec<usize>,
    /// The latest value of each input signal (not of each feature).
    held: Held,
    /// On the probability of the watched classes.
    alarm: Counted,
}

impl ModelEval {
    /// The evaluator of `features` (latest values or window statistics of the machine's signals,
    /// see [`crate::datasets::Feature`]) and the signal names (under the machine) it takes as
    /// inputs, in slot order; the gate's state signal comes after them.
    fn new(
        machine: String,
        name: String,
        artifact: gemba_ml::ModelArtifact,
        watched: Vec<usize>,
        gate: Option<f64>,
        alarm: Counted,
    ) -> Result<(ModelEval, Vec<String>), String> {
        let features = artifact.feature_names.clone();
        let mut signals: Vec<String> = Vec::new();
        let mut longest: Vec<i64> = Vec::new();
        let mut columns = Vec::with_capacity(features.len());
        for f in &features {
            let feature = crate::datasets::Feature::parse(f)?;
            let slot = match signals.iter().position(|s| *s == feature.signal) {
                Some(i) => i,
                None => {
                    signals.push(feature.signal.clone());
                    longest.push(0);
                    signals.len() - 1
                }
            };
            if let Some((_, ms)) = feature.window {
                longest[slot] = longest[slot].max(ms);
            }
            columns.push((slot, feature.window));
        }
        let rolling = longest
            .iter()
            .map(|&ms| (ms > 0).then(|| gemba_analytics::window::Rolling::new(ms)))
            .collect();
        Ok((
            ModelEval {
                machine,
                name,
                artifact: Box::new(artifact),
                features,
                columns,
                rolling,
                watched,
                held: Held::new(signals.len(), gate),
                alarm,
            },
            signals,
        ))
    }

    /// Fills the inputs' latest values and windows from the store (`ids` in slot order, the
    /// gate's state signal last): a rule made or restored on a running machine scores at once,
    /// with its windows full, rather than after its longest window of live data.
    fn prime(
        &mut self,
        store: &dyn Store,
        ids: &[SignalId],
        latest: impl Fn(SignalId) -> Option<Sample>,
    ) {
        for (slot, &id) in ids.iter().enumerate() {
            let Some(last) = latest(id) else { continue };
            let window = match self.rolling.get(slot) {
                Some(Some(r)) => r.window_ms(),
                _ => 0,
            };
            if window == 0 {
                self.held.set(slot, last.value);
                continue;
            }
            // Twice the window: what came before it shows that the window is covered.
            match store.range(id, last.ts - 2 * window, last.ts + 1, 10_000_000) {
                Ok(samples) => {
                    for s in samples {
                        self.push(slot, s.ts, s.value);
                    }
                }
                Err(e) => {
                    tracing::warn!(rule = %self.name, error = %e, "model rule: windows not primed from the store")
                }
            }
        }
    }

    fn push(&mut self, slot: usize, ts: Timestamp, v: f64) {
        self.held.set(slot, v);
        if let Some(Some(r)) = self.rolling.get_mut(slot) {
            r.push(ts, v);
        }
    }

    /// The feature row at `ts` from the inputs' latest values and windows.
    fn row(&mut self, ts: Timestamp) -> Row {
        let latest = match self.held.row() {
            Row::Ready(r) => r,
            other => return other,
        };
        let mut row = Vec::with_capacity(self.columns.len());
        for &(slot, window) in &self.columns {
            let v = match (window, self.rolling.get_mut(slot)) {
                (None, _) => latest.get(slot).copied(),
                (Some((stat, ms)), Some(Some(r))) => r.stat(stat, ms, ts),
                (Some(_), _) => None,
            };
            match v {
                Some(v) => row.push(v),
                None => return Row::Incomplete,
            }
        }
        Row::Ready(row)
    }

    fn evaluate(&mut self, ts: Timestamp) -> Option<(f64, Option<Verdict>)> {
        let row = match self.row(ts) {
            Row::Ready(r) => r,
            Row::Gated => {
                self.alarm.interrupt();
                return None;
            }
            Row::Incomplete => return None,
        };
        let m = gemba_ml::Matrix::new(1, row.len(), row.clone()).ok()?;
        let proba = self.artifact.predict_proba(&m).ok()?;
        let p: f64 = self.watched.iter().map(|&c| proba.row(0)[c]).sum();
        let verdict = match self.alarm.step(p) {
            Step::Raise => {
                let ex = self.explain(ts, &row, p);
                let top = ex
                    .contributions
                    .first()
                    .map(|c| format!("; top signal {}", c.signal))
                    .unwrap_or_default();
                let message = format!(
                    "{}: model {} gives {} a probability of {:.0} %{top}",
                    self.machine,
                    self.name,
                    self.watched
                        .iter()
                        .map(|&c| self.artifact.class_names[c].as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    100.0 * p
                );
                Some(Verdict::Raise(ex, message))
            }
            Step::Still => Some(Verdict::Still(self.explain(ts, &row, p))),
            Step::Clear => Some(Verdict::Clear),
            Step::Nothing => None,
        };
        Some((p, verdict))
    }

    fn explain(&self, ts: Timestamp, row: &[f64], p: f64) -> Explanation {
        let (method, mut raw) = match self.artifact.explain(row, row.len()) {
            Ok(e) => {
                // Contributions toward the predicted class; flip them when the prediction is
                // not one of the watched classes, so that positive means "toward the alarm".
                let sign = if self.watched.contains(&e.predicted) {
                    1.0
                } else {
                    -1.0
                };
                (
                    e.method,
                    e.top
                        .into_iter()
                        .map(|c| (c.feature, c.value, sign * c.contribution))
                        .collect::<Vec<_>>(),
                )
            }
            Err(e) => (format!("no explanation: {e}"), Vec::new()),
        };
        raw.sort_by(|a, b| b.2.total_cmp(&a.2));
        let pos: f64 = raw.iter().map(|r| r.2.max(0.0)).sum();
        let contributions = raw
            .iter()
            .map(|(f, v, c)| SignalContribution {
                signal: format!("{}/{f}", self.machine),
                contribution: if pos > 0.0 { c.max(0.0) / pos } else { 0.0 },
                value: *v,
                expected: None,
            })
            .collect::<Vec<_>>();
        Explanation {
            rule: format!(
                "model {} ({}): probability {:.2} > {} for {} points; contributions by {method}",
                self.name,
                kind_name(&self.artifact.kind),
                p,
                self.alarm.limit,
                self.alarm.raise_after
            ),
            values: self
                .features
                .iter()
                .zip(row)
                .map(|(f, v)| Reading {
                    signal: format!("{}/{f}", self.machine),
                    ts,
                    value: *v,
                })
                .collect(),
            limits: Some(
                json!({"probability": p, "above": self.alarm.limit, "clear": self.alarm.clear}),
            ),
            contributions,
        }
    }
}

fn kind_name(k: &gemba_ml::ModelKind) -> &'static str {
    match k {
        gemba_ml::ModelKind::Logistic => "logistic",
        gemba_ml::ModelKind::Svc => "svc",
        gemba_ml::ModelKind::LinearSvc => "linear_svc",
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &ModelSpec) -> Result<Fit, EngineError> {
    let ModelSpec {
        machine,
        model,
        version,
        classes,
        above,
        clear,
        raise_after,
        clear_after,
        score_signal,
        state,
    } = spec;
    let engine = cx.engine;
    let machine = machine.trim_end_matches('/').to_owned();
    if engine.registry.node(&machine).is_none() {
        return Err(invalid("machine", format!("unknown asset {machine:?}")));
    }
    let above = finite("above", *above)?;
    if !(0.0..1.0).contains(&above) {
        return Err(invalid(
            "above",
            format!("{above} must be a probability in [0, 1)"),
        ));
    }
    let clear = finite("clear", clear.unwrap_or((above - 0.1).max(0.0)))?;
    if clear > above {
        return Err(invalid(
            "clear",
            format!("{clear} must be at or below above = {above}"),
        ));
    }
    let version = match version {
        Some(v) => *v,
        None => {
            let active = engine.active_models()?;
            match active
                .iter()
                .find(|a| a.asset == machine && a.name == *model)
            {
                Some(a) => a.version,
                None => engine
                    .models()?
                    .iter()
                    .filter(|m| m.name == *model)
                    .map(|m| m.version)
                    .max()
                    .ok_or_else(|| {
                        invalid("model", format!("no model named {model:?} is registered"))
                    })?,
            }
        }
    };
    if let Some(meta) = engine
        .models()?
        .into_iter()
        .find(|m| m.name == *model && m.version == version)
        && let Some(for_asset) = meta.asset
        && for_asset != machine
    {
        return Err(invalid(
            "model",
            format!(
                "{model}@{version} was trained for {for_asset}, not {machine}; train and register one for this machine"
            ),
        ));
    }
    let json = engine.model_artifact(model, version)?.ok_or_else(|| {
        invalid(
            "version",
            format!("model {model:?} has no version {version}"),
        )
    })?;
    let artifact = gemba_ml::ModelArtifact::load(json.as_bytes())
        .map_err(|e| invalid("model", format!("{model}@{version}: {e}")))?;
    // The rule watches a probability: a model without one (an SVM trained without
    // `probability`) would never score, so it is refused here.
    let probe = gemba_ml::Matrix::zeros(1, artifact.feature_names.len());
    if let Err(e) = artifact.predict_proba(&probe) {
        return Err(invalid(
            "model",
            format!(
                "{model}@{version} gives no probabilities ({e}); train it with probabilities (gemba train --probability)"
            ),
        ));
    }
    let names = artifact.class_names.clone();
    let watched: Vec<usize> = match classes {
        Some(c) if c.is_empty() => {
            return Err(invalid("classes", "list at least one class"));
        }
        Some(c) => c
            .iter()
            .map(|name| {
                names.iter().position(|n| n == name).ok_or_else(|| {
                    invalid(
                        "classes",
                        format!("{name:?} is not a class of {model}: {}", names.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        None => {
            let normal = gemba_ml::metrics::normal_class(&names);
            (0..names.len()).filter(|&c| c != normal).collect()
        }
    };
    let features = artifact.feature_names.clone();
    let gate = engine.state_gate(&machine, state.as_deref())?;
    let (eval, signals) = ModelEval::new(
        machine.clone(),
        model.clone(),
        artifact.clone(),
        watched.clone(),
        gate.as_ref().map(|g| g.1),
        Counted::new(
            above,
            clear,
            raise_after.unwrap_or(3),
            clear_after.unwrap_or(3),
            false,
        ),
    )
    .map_err(|e| invalid("model", format!("{model}@{version}: {e}")))?;
    let regs: Vec<crate::Registered> = signals
        .iter()
        .map(|f| {
            engine
                .registry
                .get(&format!("{machine}/{f}"))
                .ok_or_else(|| {
                    EngineError::Alarm(AlarmError::FeatureNotASignal {
                        feature: f.clone(),
                        model: format!("{model}@{version}"),
                        machine: machine.clone(),
                    })
                })
        })
        .collect::<Result<_, _>>()?;
    let score_name = score_signal.clone().unwrap_or_else(|| format!("p_{model}"));
    check_segment(&score_name)
        .map_err(|e| invalid("score_signal", format!("{score_name:?} {e}")))?;
    if signals.contains(&score_name) {
        return Err(invalid("score_signal", "is one of the model's features"));
    }
    let out_path = format!("{machine}/{score_name}");
    let out = engine.score_signal_id(SignalDef {
        description: Some(format!(
            "probability from model {model}@{version} (alarm rule {})",
            cx.name
        )),
        range: Some(gemba_core::Range { min: 0.0, max: 1.0 }),
        ..SignalDef::auto(&out_path)
    })?;
    let mut inputs: Vec<SignalId> = regs.iter().map(|r| r.id).collect();
    if let Some((r, _)) = &gate {
        inputs.push(r.id);
    }
    let mut eval = eval;
    let latest = engine.latest_by_id(&inputs);
    eval.prime(engine.store().as_ref(), &inputs, |id| {
        latest.get(&id).copied()
    });
    let fitted = Fitted::Model(ModelFitted {
        version,
        kind: kind_name(&artifact.kind).into(),
        features,
        watched,
        class_names: names,
        score_signal: out_path,
        gate_signal: gate.as_ref().map(|g| g.0.def.path.clone()),
        gate_state: gate.as_ref().map(|g| g.1),
    });
    Ok(Fit {
        eval: Box::new(eval),
        inputs,
        output: Some(out),
        asset: machine,
        fitted,
    })
}

/// Rebuilds the evaluator of a stored rule: the model comes from the registry, and must still
/// have the features the rule was fitted with; its inputs are primed from the store.
pub(super) fn restore(
    cx: &RestoreCtx<'_>,
    spec: &ModelSpec,
    fitted: &ModelFitted,
) -> Result<Restored, String> {
    let machine = spec.machine.trim_end_matches('/').to_owned();
    let (model, version) = (&spec.model, fitted.version);
    let json = cx.artifact(model, version)?;
    let artifact = gemba_ml::ModelArtifact::load(json.as_bytes()).map_err(|e| e.to_string())?;
    if artifact.feature_names != fitted.features {
        return Err(format!(
            "model {model}@{version} no longer has the features the rule was fitted with"
        ));
    }
    let (mut eval, signals) = ModelEval::new(
        machine.clone(),
        model.clone(),
        artifact,
        fitted.watched.clone(),
        fitted.gate_state,
        Counted::new(
            spec.above,
            spec.clear.unwrap_or((spec.above - 0.1).max(0.0)),
            spec.raise_after.unwrap_or(3),
            spec.clear_after.unwrap_or(3),
            cx.raised,
        ),
    )?;
    let inputs = cx.machine_inputs(&machine, &signals, fitted.gate_signal.as_ref())?;
    let mut latest = cx.latest.borrow_mut();
    if latest.is_none() {
        *latest = Some(
            cx.store
                .latest_all()
                .map_err(|e| e.to_string())?
                .into_iter()
                .collect(),
        );
    }
    let latest = latest.as_ref();
    eval.prime(cx.store, &inputs, |i| {
        latest.and_then(|l| l.get(&i)).copied()
    });
    Ok(Restored {
        eval: Box::new(eval),
        inputs,
        output: Some(cx.id(&fitted.score_signal)?),
    })
}

impl Evaluator for ModelEval {
    fn step(
        &mut self,
        ts: Timestamp,
        points: &[(usize, f64)],
        verdicts: &mut Vec<Verdict>,
    ) -> Option<f64> {
        for &(slot, v) in points {
            self.push(slot, ts, v);
        }
        let (p, verdict) = self.evaluate(ts)?;
        verdicts.extend(verdict);
        Some(p)
    }
}
