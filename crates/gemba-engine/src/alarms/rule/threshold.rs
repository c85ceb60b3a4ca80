//! The `threshold` rule: one signal above (or below) a limit for a while, with a clear level
//! (hysteresis) and minimum durations to raise and to clear.

use gemba_core::Timestamp;
use serde_json::json;

use super::super::scorer::short;
use super::{
    Evaluator, Fit, FitCtx, RestoreCtx, Restored, Verdict, finite, invalid, parent, step_each,
};
use crate::EngineError;
use crate::alarms::spec::{Explanation, Fitted, Reading, SignalContribution, ThresholdSpec};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Normal,
    Pending(Timestamp),
    Raised,
    Clearing(Timestamp),
}

#[derive(Debug)]
struct ThresholdEval {
    signal: String,
    above: bool,
    limit: f64,
    clear: f64,
    raise_after_ms: i64,
    clear_after_ms: i64,
    phase: Phase,
    first_bad: Option<Reading>,
}

impl ThresholdEval {
    fn push(&mut self, ts: Timestamp, v: f64) -> Option<Verdict> {
        let bad = if self.above {
            v > self.limit
        } else {
            v < self.limit
        };
        let good = if self.above {
            v < self.clear
        } else {
            v > self.clear
        };
        let reading = Reading {
            signal: self.signal.clone(),
            ts,
            value: v,
        };
        match self.phase {
            Phase::Normal | Phase::Pending(_) if !bad => {
                self.phase = Phase::Normal;
                None
            }
            Phase::Normal => {
                self.first_bad = Some(reading.clone());
                if self.raise_after_ms <= 0 {
                    self.raise(reading)
                } else {
                    self.phase = Phase::Pending(ts);
                    None
                }
            }
            Phase::Pending(since) => {
                if ts - since >= self.raise_after_ms {
                    self.raise(reading)
                } else {
                    None
                }
            }
            Phase::Raised | Phase::Clearing(_) if !good => {
                self.phase = Phase::Raised;
                None
            }
            Phase::Raised => {
                if self.clear_after_ms <= 0 {
                    self.phase = Phase::Normal;
                    Some(Verdict::Clear)
                } else {
                    self.phase = Phase::Clearing(ts);
                    None
                }
            }
            Phase::Clearing(since) => {
                if ts - since >= self.clear_after_ms {
                    self.phase = Phase::Normal;
                    Some(Verdict::Clear)
                } else {
                    None
                }
            }
        }
    }

    fn raise(&mut self, reading: Reading) -> Option<Verdict> {
        self.phase = Phase::Raised;
        let word = if self.above { "above" } else { "below" };
        let mut values = Vec::new();
        if let Some(f) = self.first_bad.take()
            && f.ts != reading.ts
        {
            values.push(f);
        }
        values.push(reading.clone());
        let rule = format!(
            "threshold: {} {word} {} for at least {} s (clears {} {})",
            self.signal,
            self.limit,
            self.raise_after_ms as f64 / 1000.0,
            if self.above { "below" } else { "above" },
            self.clear
        );
        let message = format!(
            "{} is {} ({word} {})",
            self.signal,
            short(reading.value),
            self.limit
        );
        Some(Verdict::Raise(
            Explanation {
                rule,
                values,
                limits: Some(json!({"limit": self.limit, "clear": self.clear})),
                contributions: vec![SignalContribution {
                    signal: self.signal.clone(),
                    contribution: 1.0,
                    value: reading.value,
                    expected: Some(self.limit),
                }],
            },
            message,
        ))
    }
}

/// Validates `spec` and fits the rule on the store's data.
pub(super) fn fit(cx: &FitCtx<'_>, spec: &ThresholdSpec) -> Result<Fit, EngineError> {
    let ThresholdSpec {
        signal,
        above,
        below,
        clear,
        raise_after_s,
        clear_after_s,
    } = spec;
    let engine = cx.engine;
    let reg = engine.rule_signal(signal)?;
    let clear = finite("clear", *clear)?;
    for (f, v) in [
        ("raise_after_s", *raise_after_s),
        ("clear_after_s", *clear_after_s),
    ] {
        if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
            return Err(invalid(
                f,
                format!("{v} must be between 0 and 86400 seconds"),
            ));
        }
    }
    let (is_above, limit) = match (above, below) {
        (Some(a), None) => (true, finite("above", *a)?),
        (None, Some(b)) => (false, finite("below", *b)?),
        _ => {
            return Err(invalid(
                "above/below",
                "give exactly one of above (alarm on high values) or below (alarm on low values)",
            ));
        }
    };
    if is_above && clear > limit {
        return Err(invalid(
            "clear",
            format!("{clear} must be at or below above = {limit} (hysteresis)"),
        ));
    }
    if !is_above && clear < limit {
        return Err(invalid(
            "clear",
            format!("{clear} must be at or above below = {limit} (hysteresis)"),
        ));
    }
    let eval = ThresholdEval {
        signal: signal.clone(),
        above: is_above,
        limit,
        clear,
        raise_after_ms: (raise_after_s * 1000.0).round() as i64,
        clear_after_ms: (clear_after_s * 1000.0).round() as i64,
        phase: Phase::Normal,
        first_bad: None,
    };
    Ok(Fit {
        eval: Box::new(eval),
        inputs: vec![reg.id],
        output: None,
        asset: parent(signal),
        fitted: Fitted::Threshold,
    })
}

/// Rebuilds the evaluator of a stored rule.
pub(super) fn restore(cx: &RestoreCtx<'_>, spec: &ThresholdSpec) -> Result<Restored, String> {
    let ThresholdSpec {
        signal,
        above,
        below,
        clear,
        raise_after_s,
        clear_after_s,
    } = spec;
    Ok(Restored {
        eval: Box::new(ThresholdEval {
            signal: signal.clone(),
            above: above.is_some(),
            limit: above.or(*below).unwrap_or(0.0),
            clear: *clear,
            raise_after_ms: (raise_after_s * 1000.0).round() as i64,
            clear_after_ms: (clear_after_s * 1000.0).round() as i64,
            phase: if cx.raised {
                Phase::Raised
            } else {
                Phase::Normal
            },
            first_bad: None,
        }),
        inputs: vec![cx.id(signal)?],
        output: None,
    })
}

impl Evaluator for ThresholdEval {
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

    fn threshold(raise_after_ms: i64, clear_after_ms: i64) -> ThresholdEval {
        ThresholdEval {
            signal: "s/a/l/m/temp".into(),
            above: true,
            limit: 80.0,
            clear: 75.0,
            raise_after_ms,
            clear_after_ms,
            phase: Phase::Normal,
            first_bad: None,
        }
    }

    fn transitions(
        t: &mut ThresholdEval,
        values: &[(Timestamp, f64)],
    ) -> Vec<(Timestamp, &'static str)> {
        values
            .iter()
            .filter_map(|&(ts, v)| {
                t.push(ts, v).map(|verdict| match verdict {
                    Verdict::Raise(..) => (ts, "raise"),
                    Verdict::Still(_) => (ts, "still"),
                    Verdict::Clear => (ts, "clear"),
                })
            })
            .collect()
    }

    #[test]
    fn hysteresis_keeps_a_noisy_signal_from_flapping() {
        // A signal that wobbles ±3 around the limit of 80 for 200 s, one point per second.
        let mut x: u64 = 7;
        let noisy: Vec<(Timestamp, f64)> = (0..200)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (i * 1000, 80.0 + 6.0 * (u - 0.5))
            })
            .collect();
        let crossings = noisy
            .windows(2)
            .filter(|w| (w[0].1 > 80.0) != (w[1].1 > 80.0))
            .count();
        assert!(
            crossings > 50,
            "the signal crosses the limit {crossings} times"
        );
        // Without a deadband or durations it flaps; with them it raises once and never clears
        // (the signal never goes below 75).
        let mut plain = ThresholdEval {
            clear: 80.0,
            ..threshold(0, 0)
        };
        assert!(transitions(&mut plain, &noisy).len() > 40);
        let mut t = threshold(3000, 5000);
        let got = transitions(&mut t, &noisy);
        assert_eq!(got.iter().filter(|g| g.1 == "raise").count(), 1, "{got:?}");
        assert_eq!(got.iter().filter(|g| g.1 == "clear").count(), 0, "{got:?}");
    }

    #[test]
    fn durations_and_clear_level_are_honoured() {
        let mut t = threshold(3000, 2000);
        let seq = [
            (0, 81.0),
            (1000, 82.0),
            (2000, 79.0), // back under: the pending raise is dropped
            (3000, 81.0),
            (4000, 81.0),
            (5000, 81.0),
            (6000, 81.0), // 3 s above since 3000: raise
            (7000, 77.0), // between clear and limit: stays raised
            (8000, 74.0), // below clear: clearing starts
            (9000, 74.0),
            (10000, 74.0), // 2 s below clear: cleared
        ];
        assert_eq!(
            transitions(&mut t, &seq),
            vec![(6000, "raise"), (10000, "clear")]
        );
        // The explanation names the limit and carries the readings.
        let mut t = threshold(0, 0);
        match t.push(5, 90.0) {
            Some(Verdict::Raise(ex, msg)) => {
                assert!(ex.rule.contains("above 80"), "{}", ex.rule);
                assert_eq!(ex.values[0].value, 90.0);
                assert_eq!(ex.contributions[0].signal, "s/a/l/m/temp");
                assert!(msg.contains("90"), "{msg}");
            }
            other => panic!("expected a raise, got {other:?}"),
        }
    }

    #[test]
    fn a_below_rule_mirrors_the_above_rule() {
        let mut t = ThresholdEval {
            above: false,
            limit: 10.0,
            clear: 12.0,
            ..threshold(0, 0)
        };
        let seq = [(0, 11.0), (1, 9.0), (2, 11.0), (3, 13.0)];
        assert_eq!(transitions(&mut t, &seq), vec![(1, "raise"), (3, "clear")]);
    }
}
