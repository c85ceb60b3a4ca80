//! Alarm thresholds learned from the anomaly scores of held-out normal data only.
//!
//! Two methods: the empirical quantile (`quantile`), and peaks over threshold (`pot`, Siffer et
//! al. 2017): a generalised Pareto distribution fitted by the method of moments to the excesses
//! over a high initial quantile, extrapolated to the risk `q`. Neither ever sees an anomaly, so a
//! training set without anomalies cannot push the threshold below the normal scores.

use serde::{Deserialize, Serialize};

use crate::error::{Result, bad_param};

/// How the threshold is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum ThresholdMethod {
    /// The `q` quantile of the normal scores (false-alarm rate ≈ 1 − q on normal data).
    Quantile { q: f64 },
    /// Peaks over threshold: GPD on the excesses over the `initial` quantile, extrapolated to
    /// the probability `risk` of a normal score above the threshold.
    Pot { risk: f64, initial: f64 },
}

impl Default for ThresholdMethod {
    fn default() -> Self {
        Self::Quantile { q: 0.99 }
    }
}

impl ThresholdMethod {
    pub fn check(&self) -> Result<()> {
        match *self {
            Self::Quantile { q } if !(q > 0.0 && q < 1.0) => {
                Err(bad_param("threshold.q", format!("{q} is not in (0, 1)")))
            }
            Self::Pot { risk, initial }
                if !(risk > 0.0 && risk < 1.0 && initial > 0.0 && initial < 1.0) =>
            {
                Err(bad_param(
                    "threshold",
                    format!("risk {risk} and initial {initial} must lie in (0, 1)"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A fitted threshold: a score above `value` is an anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub method: ThresholdMethod,
    pub value: f64,
    /// How many normal scores it was fitted on.
    pub n_calibration: usize,
}

/// Linear-interpolation quantile (numpy's default) of unsorted scores; re-exported from
/// `gemba_ml::metrics`, where it is defined and documented.
pub use gemba_ml::metrics::quantile;
use gemba_ml::metrics::quantile_sorted;

impl Threshold {
    /// Fits the threshold on scores of normal data.
    pub fn fit(method: ThresholdMethod, normal_scores: &[f64]) -> Result<Self> {
        method.check()?;
        if normal_scores.is_empty() {
            return Err(crate::NnError::EmptyData(
                "no normal scores to fit the threshold on".into(),
            ));
        }
        let mut s: Vec<f64> = normal_scores.to_vec();
        s.sort_by(f64::total_cmp);
        let value = match method {
            ThresholdMethod::Quantile { q } => quantile_sorted(&s, q),
            ThresholdMethod::Pot { risk, initial } => {
                let t = quantile_sorted(&s, initial);
                let ex: Vec<f64> = s.iter().filter(|&&v| v > t).map(|v| v - t).collect();
                if ex.len() < 3 {
                    // Too few peaks for a fit: the largest normal score.
                    s[s.len() - 1]
                } else {
                    let k = ex.len() as f64;
                    let m = ex.iter().sum::<f64>() / k;
                    let v = ex.iter().map(|e| (e - m) * (e - m)).sum::<f64>() / (k - 1.0);
                    let r = (risk * s.len() as f64 / k).min(1.0);
                    if v <= 0.0 || m <= 0.0 {
                        t
                    } else {
                        let xi = 0.5 * (1.0 - m * m / v);
                        let sigma = 0.5 * m * (m * m / v + 1.0);
                        if xi.abs() < 1e-9 {
                            t - sigma * r.ln()
                        } else {
                            t + sigma / xi * (r.powf(-xi) - 1.0)
                        }
                    }
                }
            }
        };
        Ok(Self {
            method,
            value,
            n_calibration: s.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_still_reachable_here() {
        // The callers' path (`gemba_nn::threshold::quantile`); the behaviour is pinned in gemba-ml.
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.9), 3.7);
    }

    #[test]
    fn pot_on_exponential_scores_extrapolates_beyond_the_data() {
        // Exponential(1) quantiles: the 1e-4 tail is at ln(1e4) ≈ 9.21.
        let n = 10_000;
        let s: Vec<f64> = (0..n)
            .map(|i| -(1.0 - (i as f64 + 0.5) / n as f64).ln())
            .collect();
        let t = Threshold::fit(
            ThresholdMethod::Pot {
                risk: 1e-4,
                initial: 0.98,
            },
            &s,
        )
        .expect("fit");
        assert!((t.value - 9.21).abs() < 0.5, "{}", t.value);
        let q = Threshold::fit(ThresholdMethod::Quantile { q: 0.99 }, &s).expect("fit");
        assert!((q.value - 4.6).abs() < 0.05, "{}", q.value);
        assert!(Threshold::fit(ThresholdMethod::Quantile { q: 1.5 }, &s).is_err());
        assert!(Threshold::fit(ThresholdMethod::default(), &[]).is_err());
    }
}
