//! The `rul` rule: remaining useful life (see `crate::health`) below a lead time. It is not
//! driven by samples: [`crate::Engine::evaluate_periodic_rules`] judges it every
//! `alarms.periodic_interval_s`.

use gemba_core::Timestamp;
use gemba_store::WriteBatch;
use serde_json::json;

use super::super::RUL_WINDOW_MS;
use super::super::scorer::alarm_event;
use super::{Evaluator, Fit, FitCtx, Verdict, finite, invalid};
use crate::EngineError;
use crate::alarms::spec::{
    Explanation, Fitted, Period, RulFitted, RulSpec, RuleKind, SignalContribution,
};

/// The evaluator of a periodic rule: the scorer hands it nothing to judge.
#[derive(Debug)]
pub(super) struct Periodic;

impl Evaluator for Periodic {
    fn step(&mut self, _: Timestamp, _: &[(usize, f64)], _: &mut Vec<Verdict>) -> Option<f64> {
        None
    }
}

impl crate::Engine {
    /// Evaluates the rules that are not driven by samples (`rul`): raises an alarm when a
    /// machine's remaining useful life is below the rule's lead time, clears it when it is not.
    /// Blocking (reads the store); `spawn_periodic_rules` calls it on the blocking pool.
    pub fn evaluate_periodic_rules(&self) {
        let now = self.now();
        for rule in self.alarms.rules() {
            let (
                RuleKind::Rul(RulSpec {
                    machine,
                    signal,
                    threshold,
                    lead_time_h,
                    ..
                }),
                Fitted::Rul(RulFitted { baseline }),
            ) = (&rule.spec.kind, &rule.fitted)
            else {
                continue;
            };
            if !rule.spec.enabled {
                continue;
            }
            let h = match self.machine_health(&crate::health::HealthRequest {
                machine: machine.clone(),
                signal: signal.clone(),
                threshold: *threshold,
                baseline: (baseline.from, baseline.to),
                to: now,
                window_ms: Some(RUL_WINDOW_MS),
            }) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(rule = %rule.spec.name, error = %e, "RUL rule not evaluated");
                    continue;
                }
            };
            let path = format!("{machine}/{signal}");
            let below = h.rul_hours.is_some_and(|r| r < *lead_time_h);
            let present = self.alarms.condition_present(&rule.spec.name);
            let event = if below {
                let rul = h.rul_hours.unwrap_or(0.0);
                let explanation = Explanation {
                    rule: format!(
                        "remaining useful life {rul:.1} running hours (95 % band {:.1}–{:.1}) below the lead time {lead_time_h} h; {signal} in an exponential degradation trend toward {threshold}",
                        h.rul_low_hours.unwrap_or(rul),
                        h.rul_high_hours.unwrap_or(rul)
                    ),
                    values: Vec::new(),
                    limits: Some(json!({
                        "rul_hours": h.rul_hours, "rul_low_hours": h.rul_low_hours,
                        "rul_high_hours": h.rul_high_hours, "lead_time_h": lead_time_h,
                        "health": h.estimate.health, "baseline_mean": h.baseline_mean,
                        "threshold": threshold,
                    })),
                    contributions: vec![SignalContribution {
                        signal: path.clone(),
                        contribution: 1.0,
                        value: h.baseline_mean
                            + (1.0 - h.estimate.health) * (threshold - h.baseline_mean),
                        expected: Some(h.baseline_mean),
                    }],
                };
                if present {
                    self.alarms.refresh(&rule.spec.name, explanation);
                    None
                } else {
                    let message = format!(
                        "{machine}: about {rul:.1} running hours of life left ({path} toward {threshold}); plan the repair"
                    );
                    let a = self
                        .alarms
                        .raise(&rule, Some(path), now, explanation, message);
                    Some(alarm_event(&a, "raised", now))
                }
            } else if present {
                self.alarms
                    .clear(&rule.spec.name, now)
                    .map(|a| alarm_event(&a, "cleared", now))
            } else {
                None
            };
            if let Some(ev) = event {
                self.writer.write_detached(WriteBatch {
                    series: Vec::new(),
                    events: vec![ev],
                });
            }
        }
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &RulSpec) -> Result<Fit, EngineError> {
    let RulSpec {
        machine,
        signal,
        threshold,
        lead_time_h,
        baseline,
    } = spec;
    let (engine, now) = (cx.engine, cx.now);
    let machine = machine.trim_end_matches('/').to_owned();
    let lead = finite("lead_time_h", *lead_time_h)?;
    if lead <= 0.0 {
        return Err(invalid("lead_time_h", "must be positive"));
    }
    let p = baseline.unwrap_or(Period {
        from: now - 2 * 3_600_000,
        to: now,
    });
    // Fitting once now checks the machine, signal, baseline and threshold.
    engine.machine_health(&crate::health::HealthRequest {
        machine: machine.clone(),
        signal: signal.clone(),
        threshold: finite("threshold", *threshold)?,
        baseline: (p.from, p.to),
        to: now.max(p.to),
        window_ms: Some(RUL_WINDOW_MS),
    })?;
    Ok(Fit {
        eval: Box::new(Periodic),
        inputs: Vec::new(),
        output: None,
        asset: machine,
        fitted: Fitted::Rul(RulFitted { baseline: p }),
    })
}
