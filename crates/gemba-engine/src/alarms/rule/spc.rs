//! The `spc` rule: an individuals (or X̄) or EWMA chart on one signal with its run rules,
//! against limits frozen when the rule was fitted.

use gemba_analytics::spc::{Imr, Rule as RunRule, RuleSet};
use gemba_analytics::{RuleMonitor, StreamViolation};
use gemba_core::Timestamp;
use serde_json::json;

use super::{
    Evaluator, Fit, FitCtx, RestoreCtx, Restored, Verdict, finite, invalid, parent, step_each,
};
use crate::EngineError;
use crate::alarms::spec::{
    Explanation, Fitted, Period, Reading, SignalContribution, SpcChart, SpcFitted, SpcSpec,
};

#[derive(Debug)]
struct SpcEval {
    signal: String,
    /// Values per plotted point and the partial subgroup.
    subgroup: usize,
    partial: Vec<f64>,
    monitor: RuleMonitor,
    center: f64,
    sigma: f64,
    /// EWMA λ (None: individuals chart).
    lambda: Option<f64>,
    ewma: f64,
    clear_after: u32,
    quiet: u32,
    raised: bool,
    /// The last fifteen judged points (ts, plotted value).
    recent: std::collections::VecDeque<(Timestamp, f64)>,
    violations: Vec<StreamViolation>,
}

impl SpcEval {
    fn push(&mut self, ts: Timestamp, v: f64) -> Option<Verdict> {
        let v = if self.subgroup > 1 {
            self.partial.push(v);
            if self.partial.len() < self.subgroup {
                return None;
            }
            let m = self.partial.iter().sum::<f64>() / self.partial.len() as f64;
            self.partial.clear();
            m
        } else {
            v
        };
        let stat = match self.lambda {
            Some(l) => {
                self.ewma = l * v + (1.0 - l) * self.ewma;
                self.ewma
            }
            None => v,
        };
        if self.recent.len() == 15 {
            self.recent.pop_front();
        }
        self.recent.push_back((ts, stat));
        self.violations.clear();
        if self.monitor.push(stat, &mut self.violations) {
            self.quiet = 0;
            let first = &self.violations[0];
            let n = self.recent.len();
            let values: Vec<Reading> = first
                .points
                .iter()
                .filter(|&&b| b < n)
                .map(|&back| {
                    let (ts, value) = self.recent[n - 1 - back];
                    Reading {
                        signal: self.signal.clone(),
                        ts,
                        value,
                    }
                })
                .collect();
            let rules: Vec<String> = self
                .violations
                .iter()
                .map(|v| format!("SPC rule {}: {}", v.rule.number(), v.rule.describe()))
                .collect();
            let chart = match (self.lambda.is_some(), self.subgroup > 1) {
                (true, true) => format!("EWMA of means of {}", self.subgroup),
                (true, false) => "EWMA".to_owned(),
                (false, true) => format!("X̄ (subgroups of {})", self.subgroup),
                (false, false) => "individuals".to_owned(),
            };
            let explanation = Explanation {
                rule: format!("{} ({chart} chart of {})", rules.join("; "), self.signal),
                values,
                limits: Some(json!({
                    "center": self.center,
                    "sigma": self.sigma,
                    "lcl": self.center - 3.0 * self.sigma,
                    "ucl": self.center + 3.0 * self.sigma,
                })),
                contributions: vec![SignalContribution {
                    signal: self.signal.clone(),
                    contribution: 1.0,
                    value: stat,
                    expected: Some(self.center),
                }],
            };
            if self.raised {
                Some(Verdict::Still(explanation))
            } else {
                self.raised = true;
                let message = format!(
                    "{} out of control: SPC rule {} ({})",
                    self.signal,
                    first.rule.number(),
                    first.rule.describe()
                );
                Some(Verdict::Raise(explanation, message))
            }
        } else if self.raised {
            self.quiet += 1;
            if self.quiet >= self.clear_after {
                self.raised = false;
                self.quiet = 0;
                Some(Verdict::Clear)
            } else {
                None
            }
        } else {
            None
        }
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &SpcSpec) -> Result<Fit, EngineError> {
    let SpcSpec {
        signal,
        chart,
        rules,
        baseline,
        center,
        sigma,
        lambda,
        l,
        clear_after,
        subgroup,
    } = spec;
    let (engine, now) = (cx.engine, cx.now);
    let reg = engine.rule_signal(signal)?;
    let n = subgroup.unwrap_or(1);
    if !(1..=25).contains(&n) {
        return Err(invalid("subgroup", format!("{n} must be between 1 and 25")));
    }
    let n = n as usize;
    let ewma = *chart == SpcChart::Ewma;
    let rule_numbers = match rules {
        Some(r) if r.is_empty() => {
            return Err(invalid("rules", "list at least one rule"));
        }
        Some(r) => r.clone(),
        None if ewma => vec![1],
        None => vec![1, 2, 5, 6],
    };
    let mut set = Vec::new();
    for n in &rule_numbers {
        let r = RunRule::ALL
            .into_iter()
            .find(|r| r.number() == *n)
            .ok_or_else(|| invalid("rules", format!("{n} is not a rule number 1–8")))?;
        if ewma && r != RunRule::Beyond3Sigma {
            return Err(invalid(
                "rules",
                "an EWMA chart uses only rule 1 (beyond its L·σ limits); its points are autocorrelated",
            ));
        }
        set.push(r);
    }
    let (c, sx, n_base) = match (center, sigma, baseline) {
        (Some(c), Some(s), None) => {
            let s = finite("sigma", *s)?;
            if s <= 0.0 {
                return Err(invalid("sigma", "must be positive"));
            }
            (finite("center", *c)?, s, 0)
        }
        (None, None, b) => {
            let p = b.unwrap_or(Period {
                from: now - 3_600_000,
                to: now,
            });
            if p.from >= p.to {
                return Err(invalid("baseline", "from must be before to"));
            }
            let values: Vec<f64> = engine
                .store
                .range(reg.id, p.from, p.to, 1_000_000)?
                .into_iter()
                .map(|s| s.value)
                .collect();
            let imr = Imr::estimate(&values).map_err(|e| {
                invalid(
                    "baseline",
                    format!("{signal} between {} and {}: {e}", p.from, p.to),
                )
            })?;
            if imr.sigma_within <= 0.0 {
                return Err(invalid(
                    "baseline",
                    format!("{signal} does not vary in the baseline (σ = 0)"),
                ));
            }
            (imr.individuals.center, imr.sigma_within, values.len())
        }
        _ => {
            return Err(invalid(
                "baseline/center/sigma",
                "give either a baseline period or both center and sigma",
            ));
        }
    };
    // σ of a subgroup mean.
    let s_mean = sx / (n as f64).sqrt();
    let (stat_sigma, lam) = if ewma {
        let lam = lambda.unwrap_or(0.2);
        let width = l.unwrap_or(3.0);
        if !(lam > 0.0 && lam <= 1.0) {
            return Err(invalid("lambda", format!("{lam} must be in (0, 1]")));
        }
        if !(width > 0.0 && width.is_finite()) {
            return Err(invalid("l", format!("{width} must be positive")));
        }
        // Rule 1 fires beyond 3 of these σ, i.e. beyond L σ of the EWMA statistic.
        (s_mean * (lam / (2.0 - lam)).sqrt() * width / 3.0, Some(lam))
    } else {
        (s_mean, None)
    };
    let clear_after = clear_after.unwrap_or(9).max(1);
    let monitor = RuleMonitor::new(c, stat_sigma, &RuleSet { enabled: set });
    let eval = SpcEval {
        signal: signal.clone(),
        subgroup: n,
        partial: Vec::new(),
        monitor,
        center: c,
        sigma: stat_sigma,
        lambda: lam,
        ewma: c,
        clear_after,
        quiet: 0,
        raised: false,
        recent: Default::default(),
        violations: Vec::new(),
    };
    let fitted = Fitted::Spc(SpcFitted {
        center: c,
        sigma: stat_sigma,
        sigma_x: sx,
        rules: rule_numbers,
        baseline_points: n_base,
    });
    Ok(Fit {
        eval: Box::new(eval),
        inputs: vec![reg.id],
        output: None,
        asset: parent(signal),
        fitted,
    })
}

/// Rebuilds the evaluator of a stored rule.
pub(super) fn restore(
    cx: &RestoreCtx<'_>,
    spec: &SpcSpec,
    fitted: &SpcFitted,
) -> Result<Restored, String> {
    let set = RuleSet {
        enabled: RunRule::ALL
            .into_iter()
            .filter(|r| fitted.rules.contains(&r.number()))
            .collect(),
    };
    Ok(Restored {
        eval: Box::new(SpcEval {
            signal: spec.signal.clone(),
            subgroup: spec.subgroup.unwrap_or(1).max(1) as usize,
            partial: Vec::new(),
            monitor: RuleMonitor::new(fitted.center, fitted.sigma, &set),
            center: fitted.center,
            sigma: fitted.sigma,
            lambda: (spec.chart == SpcChart::Ewma).then(|| spec.lambda.unwrap_or(0.2)),
            ewma: fitted.center,
            clear_after: spec.clear_after.unwrap_or(9).max(1),
            quiet: 0,
            raised: cx.raised,
            recent: Default::default(),
            violations: Vec::new(),
        }),
        inputs: vec![cx.id(&spec.signal)?],
        output: None,
    })
}

impl Evaluator for SpcEval {
    fn step(
        &mut self,
        ts: Timestamp,
        points: &[(usize, f64)],
        verdicts: &mut Vec<Verdict>,
    ) -> Option<f64> {
        step_each(points, verdicts, |v| self.push(ts, v));
        None
    }

    fn signal(&self) -> Option<&str> {
        Some(&self.signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spc_evaluator_raises_on_a_shift_and_clears_after_quiet_points() {
        let set = RuleSet::western_electric();
        let mut e = SpcEval {
            signal: "s/a/l/m/d".into(),
            subgroup: 1,
            partial: Vec::new(),
            monitor: RuleMonitor::new(10.0, 1.0, &set),
            center: 10.0,
            sigma: 1.0,
            lambda: None,
            ewma: 10.0,
            clear_after: 9,
            quiet: 0,
            raised: false,
            recent: Default::default(),
            violations: Vec::new(),
        };
        let mut log = Vec::new();
        // In control (alternating ±0.5), then a +1.5σ shift, then back.
        for i in 0..60i64 {
            let base = if i % 2 == 0 { 10.5 } else { 9.5 };
            let v = if (20..40).contains(&i) {
                base + 1.5
            } else {
                base
            };
            if let Some(v) = e.push(i, v) {
                log.push((
                    i,
                    match v {
                        Verdict::Raise(ex, _) => ex.rule,
                        Verdict::Still(_) => "still".into(),
                        Verdict::Clear => "clear".into(),
                    },
                ));
            }
        }
        let raise = &log[0];
        assert!((20..30).contains(&raise.0), "{log:?}");
        assert!(raise.1.contains("SPC rule"), "{log:?}");
        let clear = log.iter().find(|l| l.1 == "clear").expect("cleared");
        assert!((40..55).contains(&clear.0), "{log:?}");
    }
}
