//! Rule kinds: one file per kind, each with its `fit` (validate the spec, learn from the store)
//! and its evaluator (an [`Evaluator`]: one `step` per timestamp). This file holds what the kinds
//! share: the verdicts, the hysteresis on consecutive points ([`Counted`]), the held inputs of
//! multi-signal rules ([`Held`]), the engine's helpers for fitting, and the dispatch over kinds.

use gemba_core::{Sample, SignalDef, SignalKind, Timestamp, check_segment};
use gemba_store::SignalId;

use super::AlarmError;
use super::spec::{AlarmRule, Explanation, Fitted, Period, RuleKind};
use crate::{Engine, EngineError};

pub(super) mod model;
pub(super) mod pca;
pub(super) mod rul;
pub(super) mod spc;
pub(super) mod threshold;
#[cfg(feature = "vae")]
pub(super) mod vae;

/// What an evaluator reports for one point.
#[derive(Debug)]
pub(super) enum Verdict {
    Raise(Explanation, String),
    /// Still firing while raised: refresh the explanation.
    Still(Explanation),
    Clear,
}

/// A rule's streaming state: the scorer hands it the samples of each timestamp in order.
pub(super) trait Evaluator: std::fmt::Debug + Send {
    /// Takes the samples of one timestamp, `(input slot, value)` (slots in the order of the
    /// rule's inputs), adds what they decide to `verdicts` and returns the score to store as the
    /// rule's output signal, if it has one.
    fn step(
        &mut self,
        ts: Timestamp,
        points: &[(usize, f64)],
        verdicts: &mut Vec<Verdict>,
    ) -> Option<f64>;

    /// The signal an alarm of this rule is about (rules on one signal).
    fn signal(&self) -> Option<&str> {
        None
    }
}

/// `step` of a rule on one signal: every finite value in turn through `push`.
fn step_each(
    points: &[(usize, f64)],
    verdicts: &mut Vec<Verdict>,
    mut push: impl FnMut(f64) -> Option<Verdict>,
) {
    verdicts.extend(
        points
            .iter()
            .filter(|(_, v)| v.is_finite())
            .filter_map(|&(_, v)| push(v)),
    );
}

/// A rule with its live evaluator (opaque outside the scorer).
#[derive(Debug)]
pub struct Active {
    pub(super) rule: AlarmRule,
    pub(super) eval: Box<dyn Evaluator>,
    /// The watched signals, in the evaluator's slot order.
    pub(super) inputs: Vec<SignalId>,
    /// The derived score signal (PCA, VAE, model).
    pub(super) output: Option<SignalId>,
    pub(super) last_ts: Timestamp,
}

/// What fitting a rule needs: the engine (store, registry, models), the rule's name and now.
pub(super) struct FitCtx<'a> {
    pub engine: &'a Engine,
    pub name: &'a str,
    pub now: Timestamp,
}

/// A fitted rule: its evaluator, inputs, output, asset and what it learned.
pub(super) struct Fit {
    pub eval: Box<dyn Evaluator>,
    pub inputs: Vec<SignalId>,
    pub output: Option<SignalId>,
    pub asset: String,
    pub fitted: Fitted,
}

/// What rebuilding a stored rule's evaluator needs (at start).
pub(super) struct RestoreCtx<'a> {
    pub registry: &'a crate::Registry,
    pub store: &'a dyn gemba_store::Store,
    /// Whether the rule's alarm condition is present in the book.
    pub raised: bool,
    /// The latest sample of every signal, read once for all the model rules to prime from.
    pub latest: std::cell::RefCell<Option<std::collections::HashMap<SignalId, Sample>>>,
}

impl RestoreCtx<'_> {
    /// The id of a signal the rule watches.
    pub fn id(&self, path: &str) -> Result<SignalId, String> {
        self.registry
            .get(path)
            .map(|r| r.id)
            .ok_or_else(|| format!("signal {path} is gone"))
    }

    /// The artefact of a registered model version the rule was fitted with.
    pub fn artifact(&self, model: &str, version: u32) -> Result<String, String> {
        crate::models::artifact_json(self.store, model, version)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("model {model}@{version} is gone"))
    }

    /// The ids of a machine's signals named in `signals`, then of the gate's state signal.
    pub fn machine_inputs(
        &self,
        machine: &str,
        signals: &[String],
        gate_signal: Option<&String>,
    ) -> Result<Vec<SignalId>, String> {
        let mut inputs: Vec<SignalId> = signals
            .iter()
            .map(|s| self.id(&format!("{machine}/{s}")))
            .collect::<Result<_, _>>()?;
        if let Some(g) = gate_signal {
            inputs.push(self.id(g)?);
        }
        Ok(inputs)
    }
}

/// A stored rule's rebuilt evaluator with its inputs and output.
pub(super) struct Restored {
    pub eval: Box<dyn Evaluator>,
    pub inputs: Vec<SignalId>,
    pub output: Option<SignalId>,
}

/// Rebuilds the evaluator of a stored rule of any kind from its spec and what it learned.
pub(super) fn restore(cx: &RestoreCtx<'_>, rule: &AlarmRule) -> Result<Restored, String> {
    match (&rule.spec.kind, &rule.fitted) {
        (RuleKind::Threshold(s), _) => threshold::restore(cx, s),
        (RuleKind::Spc(s), Fitted::Spc(f)) => spc::restore(cx, s, f),
        (RuleKind::Pca(s), Fitted::Pca(f)) => pca::restore(cx, s, f),
        #[cfg(feature = "vae")]
        (RuleKind::Vae(s), Fitted::Vae(f)) => vae::restore(cx, s, f),
        (RuleKind::Model(s), Fitted::Model(f)) => model::restore(cx, s, f),
        (RuleKind::Rul(_), Fitted::Rul(_)) => Ok(Restored {
            eval: Box::new(rul::Periodic),
            inputs: Vec::new(),
            output: None,
        }),
        _ => Err("the stored rule does not match its fitted parameters".into()),
    }
}

/// Validates and fits a rule of any kind.
pub(super) fn fit(cx: &FitCtx<'_>, kind: &RuleKind) -> Result<Fit, EngineError> {
    match kind {
        RuleKind::Threshold(s) => threshold::fit(cx, s),
        RuleKind::Spc(s) => spc::fit(cx, s),
        RuleKind::Pca(s) => pca::fit(cx, s),
        #[cfg(feature = "vae")]
        RuleKind::Vae(s) => vae::fit(cx, s),
        #[cfg(not(feature = "vae"))]
        RuleKind::Vae(_) => Err(invalid(
            "type",
            "this build of Gemba has no VAE support (the engine's `vae` feature is off)",
        )),
        RuleKind::Model(s) => model::fit(cx, s),
        RuleKind::Rul(s) => rul::fit(cx, s),
    }
}

/// Hysteresis on consecutive points: raised after `raise_after` points in a row above `limit`,
/// cleared after `clear_after` points in a row below `clear` (between the two nothing changes).
#[derive(Debug)]
struct Counted {
    limit: f64,
    clear: f64,
    raise_after: u32,
    clear_after: u32,
    over: u32,
    under: u32,
    raised: bool,
}

/// What one point did to a [`Counted`].
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Raise,
    /// Above the limit while raised.
    Still,
    Clear,
    Nothing,
}

impl Counted {
    fn new(limit: f64, clear: f64, raise_after: u32, clear_after: u32, raised: bool) -> Counted {
        Counted {
            limit,
            clear,
            raise_after: raise_after.max(1),
            clear_after: clear_after.max(1),
            over: 0,
            under: 0,
            raised,
        }
    }

    fn step(&mut self, score: f64) -> Step {
        if score > self.limit {
            self.under = 0;
            self.over += 1;
            if !self.raised && self.over >= self.raise_after {
                self.raised = true;
                Step::Raise
            } else if self.raised {
                Step::Still
            } else {
                Step::Nothing
            }
        } else {
            self.over = 0;
            if self.raised && score < self.clear {
                self.under += 1;
                if self.under >= self.clear_after {
                    self.raised = false;
                    self.under = 0;
                    return Step::Clear;
                }
            } else {
                self.under = 0;
            }
            Step::Nothing
        }
    }

    /// An excursion in progress starts over (the machine left the gated state).
    fn interrupt(&mut self) {
        self.over = 0;
    }
}

/// The latest value of each input of a multi-signal evaluator, then (when gated) of the machine's
/// state signal: it scores only while that holds `gate`.
#[derive(Debug)]
struct Held {
    values: Vec<Option<f64>>,
    inputs: usize,
    gate: Option<f64>,
}

/// What [`Held::row`] found.
enum Row {
    /// Not in the gated state.
    Gated,
    /// An input has no value yet.
    Incomplete,
    Ready(Vec<f64>),
}

impl Held {
    fn new(inputs: usize, gate: Option<f64>) -> Held {
        Held {
            values: vec![None; inputs + usize::from(gate.is_some())],
            inputs,
            gate,
        }
    }

    fn set(&mut self, slot: usize, v: f64) {
        if v.is_finite()
            && let Some(x) = self.values.get_mut(slot)
        {
            *x = Some(v);
        }
    }

    fn get(&self, i: usize) -> Option<f64> {
        self.values.get(i).copied().flatten()
    }

    fn row(&self) -> Row {
        if let Some(g) = self.gate
            && self.get(self.inputs) != Some(g)
        {
            return Row::Gated;
        }
        match self.values[..self.inputs].iter().copied().collect() {
            Some(r) => Row::Ready(r),
            None => Row::Incomplete,
        }
    }
}

/// The index hysteresis of a `pca` rule: out of control above 1, back below `clear_index`
/// (defaults: raised after 3 points, cleared after 10 below 0.8).
fn pca_alarm(
    raise_after: Option<u32>,
    clear_after: Option<u32>,
    clear_index: Option<f64>,
    raised: bool,
) -> Counted {
    Counted::new(
        1.0,
        clear_index.unwrap_or(0.8),
        raise_after.unwrap_or(3),
        clear_after.unwrap_or(10),
        raised,
    )
}

/// `; top signal <path> (NN %)` for an alarm message: the largest contribution of `ex`.
fn top_signal_note(ex: &Explanation) -> String {
    ex.contributions
        .first()
        .map(|c| {
            format!(
                "; top signal {} ({:.0} %)",
                c.signal,
                100.0 * c.contribution
            )
        })
        .unwrap_or_default()
}

/// The baseline of a multivariate rule, see [`Engine::multivariate_baseline`].
struct Multivariate {
    machine: String,
    /// Signal names under the machine.
    names: Vec<String>,
    score_name: String,
    /// The signals, then the state signal when gated.
    all: Vec<crate::Registered>,
    gate: Option<(crate::Registered, f64)>,
    /// Aligned rows of the signals (the state column removed).
    rows: Vec<Vec<f64>>,
    period: Period,
}

/// A rule refused for one of its fields.
pub(super) fn invalid(field: &'static str, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Alarm(AlarmError::Invalid {
        field,
        reason: reason.to_string(),
    })
}

/// `v`, or a refusal of `field` when it is not a finite number.
fn finite(field: &'static str, v: f64) -> Result<f64, EngineError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} is not a finite number")))
    }
}

/// The parent asset of a signal path.
fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map_or_else(|| path.to_owned(), |(p, _)| p.to_owned())
}

impl crate::Engine {
    /// The id of a rule's score signal: the existing one, or `def` defined now.
    fn score_signal_id(&self, def: SignalDef) -> Result<SignalId, EngineError> {
        match self.registry.get(&def.path) {
            Some(r) => Ok(r.id),
            None => self.define_signal(def),
        }
    }

    /// The baseline of a multivariate rule (`pca`, `vae`): the machine's signals (named, or every
    /// gauge directly under it but the score signal), aligned in time over `baseline` (default:
    /// the last two hours), only while the machine is in the gated state (`state`, see
    /// [`Self::state_gate`]).
    #[allow(clippy::too_many_arguments)]
    fn multivariate_baseline(
        &self,
        method: &str,
        machine: &str,
        signals: Option<&[String]>,
        score_name: &str,
        state: Option<&str>,
        baseline: Option<Period>,
        now: Timestamp,
    ) -> Result<Multivariate, EngineError> {
        let machine = machine.trim_end_matches('/').to_owned();
        check_segment(score_name)
            .map_err(|e| invalid("score_signal", format!("{score_name:?} {e}")))?;
        let names: Vec<String> = match signals {
            Some(s) => s.to_vec(),
            None => self
                .registry
                .signals_under(&machine)
                .into_iter()
                .filter(|r| {
                    r.def.kind == SignalKind::Gauge
                        && parent(&r.def.path) == machine
                        && !r.def.path.ends_with(&format!("/{score_name}"))
                })
                .map(|r| r.def.path.rsplit('/').next().unwrap_or("").to_owned())
                .collect(),
        };
        if names.len() < 2 {
            return Err(invalid(
                "signals",
                format!(
                    "{method} needs at least 2 gauge signals under {machine:?}; found {}",
                    names.len()
                ),
            ));
        }
        if names.iter().any(|n| n == score_name) {
            return Err(invalid(
                "signals",
                format!("{score_name} is the rule's own score signal"),
            ));
        }
        let regs: Vec<_> = names
            .iter()
            .map(|n| self.rule_signal(&format!("{machine}/{n}")))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("signals", e))?;
        let gate = self.state_gate(&machine, state)?;
        let period = baseline.unwrap_or(Period {
            from: now - 2 * 3_600_000,
            to: now,
        });
        if period.from >= period.to {
            return Err(invalid("baseline", "from must be before to"));
        }
        let mut all = regs;
        if let Some((r, _)) = &gate {
            all.push(r.clone());
        }
        let mut rows = self.aligned_rows(&all, period)?;
        if let Some((_, g)) = &gate {
            rows.retain(|r| r.last() == Some(g));
            for r in &mut rows {
                r.pop();
            }
        }
        Ok(Multivariate {
            machine,
            names,
            score_name: score_name.to_owned(),
            all,
            gate,
            rows,
            period,
        })
    }

    /// The state signal and state index that gate a rule of `machine`: `state` names the state
    /// (default `running` when the machine's `state` signal knows it; `any`: no gate).
    fn state_gate(
        &self,
        machine: &str,
        state: Option<&str>,
    ) -> Result<Option<(crate::Registered, f64)>, EngineError> {
        let state_path = format!("{machine}/state");
        Ok(match state {
            Some("any") => None,
            wanted => {
                let name = wanted.unwrap_or("running");
                match self.registry.get(&state_path) {
                    Some(r) if r.def.kind == SignalKind::State => match r.def.state_index(name) {
                        Some(i) => Some((r, i as f64)),
                        None if wanted.is_none() => None,
                        None => {
                            return Err(invalid(
                                "state",
                                format!(
                                    "{name:?} is not a state of {state_path}; known: {}",
                                    r.def.states.join(", ")
                                ),
                            ));
                        }
                    },
                    _ if wanted.is_none() => None,
                    _ => {
                        return Err(invalid(
                            "state",
                            format!("{machine} has no state signal {state_path}"),
                        ));
                    }
                }
            }
        })
    }

    fn rule_signal(&self, path: &str) -> Result<crate::Registered, EngineError> {
        let reg = self
            .registry
            .get(path)
            .ok_or_else(|| invalid("signal", format!("unknown signal {path:?}")))?;
        if reg.def.kind == SignalKind::State {
            return Err(invalid(
                "signal",
                format!("{path} is a state signal; alarm on a gauge or counter"),
            ));
        }
        Ok(reg)
    }

    /// Rows of the signals' values at the timestamps of the first signal (the others held at
    /// their latest value), over `p`.
    fn aligned_rows(
        &self,
        regs: &[crate::Registered],
        p: Period,
    ) -> Result<Vec<Vec<f64>>, EngineError> {
        let series: Vec<Vec<Sample>> = regs
            .iter()
            .map(|r| self.store.range(r.id, p.from, p.to, 2_000_000))
            .collect::<Result<_, _>>()?;
        let mut idx = vec![0usize; regs.len()];
        let mut held: Vec<Option<f64>> = vec![None; regs.len()];
        let mut rows = Vec::with_capacity(series[0].len());
        for s in &series[0] {
            held[0] = Some(s.value);
            for k in 1..regs.len() {
                while idx[k] < series[k].len() && series[k][idx[k]].ts <= s.ts {
                    held[k] = Some(series[k][idx[k]].value);
                    idx[k] += 1;
                }
            }
            if let Some(row) = held.iter().copied().collect::<Option<Vec<f64>>>()
                && row.iter().all(|v| v.is_finite())
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_hysteresis_needs_runs_to_raise_and_to_clear() {
        let mut c = Counted::new(1.0, 0.8, 3, 2, false);
        let steps: Vec<Step> = [1.5, 1.5, 0.9, 1.5, 1.5, 1.5, 1.2, 0.9, 0.7, 0.9, 0.7, 0.7]
            .into_iter()
            .map(|v| c.step(v))
            .collect();
        use Step::*;
        assert_eq!(
            steps,
            [
                Nothing, Nothing, Nothing, Nothing, Nothing, Raise, Still, Nothing, Nothing,
                Nothing, Nothing, Clear
            ]
        );
        // An interruption restarts the count toward a raise.
        let mut c = Counted::new(1.0, 0.8, 2, 1, false);
        assert_eq!(c.step(2.0), Nothing);
        c.interrupt();
        assert_eq!(c.step(2.0), Nothing);
        assert_eq!(c.step(2.0), Raise);
    }
}
