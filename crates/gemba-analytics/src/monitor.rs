//! Streaming run rules: the eight Nelson rules of [`crate::spc::check_rules`] evaluated one point at
//! a time in O(1) per point (run counters plus a ring of the last fifteen points), for control
//! charts attached to live signals. Same semantics as the batch function, point for point: a rule
//! fires at every point where its pattern completes, and NaN points neither break nor continue a run.

use std::collections::VecDeque;

use crate::spc::{Rule, RuleSet};

/// The longest window any rule looks at (rule 7: fifteen points).
const WINDOW: usize = 15;

/// A rule that fired on the point just pushed. `points` are the points that broke it, as offsets
/// back from that point (0 = the point just pushed, 1 = the one before, …), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamViolation {
    pub rule: Rule,
    pub points: Vec<usize>,
}

/// Incremental evaluator of the enabled run rules against a frozen centre and σ.
#[derive(Debug, Clone)]
pub struct RuleMonitor {
    center: f64,
    sigma: f64,
    on: [bool; 9],
    /// The last (up to) fifteen standardised finite points, newest at the back.
    z: VecDeque<f64>,
    side: i8,
    side_run: usize,
    up_run: usize,
    down_run: usize,
    alt_run: usize,
    last_diff: i8,
    within1_run: usize,
    beyond1_run: usize,
}

fn sign(v: f64) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

impl RuleMonitor {
    /// `center` and `sigma` are those of the plotted statistic; `sigma` must be positive.
    pub fn new(center: f64, sigma: f64, rules: &RuleSet) -> RuleMonitor {
        let mut on = [false; 9];
        for r in &rules.enabled {
            on[r.number() as usize] = true;
        }
        RuleMonitor {
            center,
            sigma,
            on,
            z: VecDeque::with_capacity(WINDOW + 1),
            side: 0,
            side_run: 0,
            up_run: 0,
            down_run: 0,
            alt_run: 0,
            last_diff: 0,
            within1_run: 0,
            beyond1_run: 0,
        }
    }

    /// Standardised value of `value` against the frozen limits.
    pub fn z_of(&self, value: f64) -> f64 {
        (value - self.center) / self.sigma
    }

    /// Pushes one point and appends the rules it completes to `out` (in rule order). Returns
    /// whether any fired. Non-finite points are ignored.
    pub fn push(&mut self, value: f64, out: &mut Vec<StreamViolation>) -> bool {
        let before = out.len();
        if !value.is_finite() {
            return false;
        }
        let z = self.z_of(value);
        let s = sign(z);
        // Run counters.
        if s != 0 && s == self.side {
            self.side_run += 1;
        } else {
            self.side_run = usize::from(s != 0);
        }
        self.side = s;
        if let Some(&prev) = self.z.back() {
            let d = sign(z - prev);
            match d {
                1 => {
                    self.up_run += 1;
                    self.down_run = 0;
                }
                -1 => {
                    self.down_run += 1;
                    self.up_run = 0;
                }
                _ => {
                    self.up_run = 0;
                    self.down_run = 0;
                }
            }
            self.alt_run = if d == 0 {
                0
            } else if self.alt_run > 0 && d == -self.last_diff {
                self.alt_run + 1
            } else {
                1
            };
            self.last_diff = d;
        }
        self.within1_run = if z.abs() < 1.0 {
            self.within1_run + 1
        } else {
            0
        };
        self.beyond1_run = if z.abs() > 1.0 {
            self.beyond1_run + 1
        } else {
            0
        };
        if self.z.len() == WINDOW {
            self.z.pop_front();
        }
        self.z.push_back(z);
        let seen = self.z.len();
        let last = |n: usize| -> Vec<usize> { (0..n).rev().collect() };

        if self.on[1] && z.abs() > 3.0 {
            out.push(StreamViolation {
                rule: Rule::Beyond3Sigma,
                points: vec![0],
            });
        }
        if self.on[2] && self.side_run >= 9 {
            out.push(StreamViolation {
                rule: Rule::NineSameSide,
                points: last(9),
            });
        }
        if self.on[3] && (self.up_run >= 5 || self.down_run >= 5) {
            out.push(StreamViolation {
                rule: Rule::SixTrending,
                points: last(6),
            });
        }
        if self.on[4] && self.alt_run >= 13 {
            out.push(StreamViolation {
                rule: Rule::FourteenAlternating,
                points: last(14),
            });
        }
        for (rule, len, need, limit) in [
            (Rule::TwoOfThreeBeyond2Sigma, 3usize, 2usize, 2.0),
            (Rule::FourOfFiveBeyond1Sigma, 5, 4, 1.0),
        ] {
            if !self.on[rule.number() as usize] || seen < len {
                continue;
            }
            for side in [1.0, -1.0] {
                if z * side > limit {
                    let hits: Vec<usize> = (0..len)
                        .rev()
                        .filter(|&back| self.z[seen - 1 - back] * side > limit)
                        .collect();
                    if hits.len() >= need {
                        out.push(StreamViolation { rule, points: hits });
                    }
                }
            }
        }
        if self.on[7] && self.within1_run >= 15 {
            out.push(StreamViolation {
                rule: Rule::FifteenWithin1Sigma,
                points: last(15),
            });
        }
        if self.on[8] && self.beyond1_run >= 8 {
            let w = self.z.iter().rev().take(8);
            let (mut up, mut down) = (false, false);
            for &v in w {
                up |= v > 0.0;
                down |= v < 0.0;
            }
            if up && down {
                out.push(StreamViolation {
                    rule: Rule::EightBeyond1Sigma,
                    points: last(8),
                });
            }
        }
        out.len() > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::check_rules;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Streams `values` and lists (index, rule, absolute points) like the batch function does.
    fn streamed(values: &[f64], rules: &RuleSet) -> Vec<(usize, u8, Vec<usize>)> {
        let mut m = RuleMonitor::new(0.0, 1.0, rules);
        let mut finite: Vec<usize> = Vec::new();
        let mut out = Vec::new();
        let mut got = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            out.clear();
            if v.is_finite() {
                finite.push(i);
            }
            m.push(v, &mut out);
            for viol in &out {
                let pts = viol
                    .points
                    .iter()
                    .map(|&back| finite[finite.len() - 1 - back])
                    .collect();
                got.push((i, viol.rule.number(), pts));
            }
        }
        got.sort_by_key(|g| (g.0, g.1));
        got
    }

    fn batch(values: &[f64], rules: &RuleSet) -> Vec<(usize, u8, Vec<usize>)> {
        check_rules(values, 0.0, 1.0, rules)
            .into_iter()
            .map(|v| (v.index, v.rule.number(), v.points))
            .collect()
    }

    #[test]
    fn each_rule_fires_where_its_pattern_completes() {
        let all = RuleSet::default();
        let mut out = Vec::new();
        // Rule 1 on a 3.5σ point.
        let mut m = RuleMonitor::new(10.0, 2.0, &all);
        assert!(m.push(17.0, &mut out));
        assert_eq!(
            out,
            vec![StreamViolation {
                rule: Rule::Beyond3Sigma,
                points: vec![0]
            }]
        );
        // Rule 2: the ninth point above the centre completes it, not the eighth.
        let mut m = RuleMonitor::new(0.0, 1.0, &all);
        out.clear();
        for _ in 0..8 {
            m.push(0.5, &mut out);
        }
        assert!(out.iter().all(|v| v.rule != Rule::NineSameSide));
        m.push(0.5, &mut out);
        assert!(out.iter().any(|v| v.rule == Rule::NineSameSide));
        // Rule 3: six rising points.
        let mut m = RuleMonitor::new(0.0, 1.0, &all);
        out.clear();
        for i in 0..6 {
            m.push(-0.9 + 0.3 * f64::from(i), &mut out);
        }
        assert!(out.iter().any(|v| v.rule == Rule::SixTrending));
    }

    #[test]
    fn agrees_with_the_batch_rules_on_a_drifting_series() {
        // A deterministic series: in control, then a shift, a trend, an oscillation and NaNs.
        let mut v = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(12345);
        for i in 0..2000 {
            let u = rng.r#gen::<f64>() - 0.5;
            let shift = if (500..700).contains(&i) { 1.5 } else { 0.0 };
            let trend = if (900..920).contains(&i) {
                0.2 * f64::from(i - 900)
            } else {
                0.0
            };
            let alt = if (1200..1230).contains(&i) {
                if i % 2 == 0 { 0.5 } else { -0.5 }
            } else {
                0.0
            };
            let val = if i % 97 == 0 {
                f64::NAN
            } else {
                3.0 * u + shift + trend + alt
            };
            v.push(val);
        }
        for rules in [RuleSet::default(), RuleSet::western_electric()] {
            let b = batch(&v, &rules);
            assert!(b.len() > 50, "the series must break rules: {}", b.len());
            assert_eq!(streamed(&v, &rules), b);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn streaming_equals_batch(
            values in proptest::collection::vec(
                prop_oneof![
                    8 => -4.0f64..4.0,
                    1 => Just(0.0),
                    1 => Just(f64::NAN),
                    1 => Just(1.0),
                    1 => Just(-2.0),
                ],
                0..120,
            ),
            mask in 1u16..=255,
        ) {
            let rules = RuleSet {
                enabled: Rule::ALL
                    .into_iter()
                    .filter(|r| mask & (1 << (r.number() - 1)) != 0)
                    .collect(),
            };
            prop_assert_eq!(streamed(&values, &rules), batch(&values, &rules));
        }
    }
}
