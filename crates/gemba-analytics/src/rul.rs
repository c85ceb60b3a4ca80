//! Remaining useful life from a degradation indicator (e.g. a bearing's vibration RMS): the excess
//! of the indicator over its normal level is fitted with an exponential in running time,
//! `excess(t) = exp(c + λ·t)` (least squares on its logarithm, the usual model of run-to-failure
//! bearing data), and extrapolated to the failure threshold. The 95 % band is a prediction band by
//! inverse regression (the noise of a reading plus the uncertainty of the line's level and slope,
//! widened for autocorrelation); the health index is how much of the way to the threshold the
//! indicator is.

use serde::{Deserialize, Serialize};

use crate::spc::SpcError;

/// What is known of the indicator's normal behaviour and its failure level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DegradationModel {
    /// Normal level (mean over a healthy baseline).
    pub baseline: f64,
    /// Its standard deviation over the baseline.
    pub baseline_sd: f64,
    /// The level at which the component is considered failed.
    pub threshold: f64,
    /// Points count as degrading when the excess is above `k` baseline standard deviations.
    pub k: f64,
    /// At least this many degrading points are needed for an estimate.
    pub min_points: usize,
    /// Fit only the degrading points of the last `window_s` seconds of running time (the
    /// exponential holds locally; early wear grows more slowly than it).
    pub window_s: f64,
    /// The degrading points must span at least this much running time (a trend that has only
    /// just begun extrapolates far too late).
    pub min_span_s: f64,
    /// The exponential must explain at least this share of the log-excess's variance.
    pub min_r2: f64,
}

/// The state of one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulEstimate {
    /// 1 = at the normal level, 0 = at the failure threshold (from the recent mean).
    pub health: f64,
    /// Whether the indicator is in a degradation trend (enough points above `k`σ, growing).
    pub degrading: bool,
    /// Remaining running time to the threshold, seconds (None when not degrading).
    pub rul_s: Option<f64>,
    /// 95 % band of the remaining time.
    pub rul_low_s: Option<f64>,
    pub rul_high_s: Option<f64>,
    /// Fitted growth rate per second and its standard error.
    pub lambda: Option<f64>,
    pub lambda_se: Option<f64>,
    pub points: usize,
}

impl DegradationModel {
    pub fn new(baseline: f64, baseline_sd: f64, threshold: f64) -> Result<Self, SpcError> {
        for (what, v) in [
            ("baseline", baseline),
            ("baseline σ", baseline_sd),
            ("threshold", threshold),
        ] {
            if !v.is_finite() {
                return Err(SpcError::NotFinite { what, value: v });
            }
        }
        if baseline_sd <= 0.0 {
            return Err(SpcError::Invalid("baseline σ must be positive".into()));
        }
        if threshold <= baseline + 3.0 * baseline_sd {
            return Err(SpcError::Invalid(format!(
                "failure threshold {threshold} must be above the normal level {baseline:.3} + 3σ ({:.3})",
                baseline + 3.0 * baseline_sd
            )));
        }
        Ok(DegradationModel {
            baseline,
            baseline_sd,
            threshold,
            k: 3.0,
            min_points: 30,
            window_s: 3.0 * 3600.0,
            min_span_s: 3600.0,
            min_r2: 0.5,
        })
    }

    /// Estimates from `(t, y)`: running time in seconds (increasing) and the indicator.
    pub fn estimate(&self, t: &[f64], y: &[f64]) -> RulEstimate {
        let n = t.len().min(y.len());
        let span = self.threshold - self.baseline;
        // Health from the mean of the last few points (noise-robust).
        let tail = &y[n.saturating_sub(30)..n];
        let recent = if tail.is_empty() {
            self.baseline
        } else {
            tail.iter().sum::<f64>() / tail.len() as f64
        };
        let health = (1.0 - (recent - self.baseline) / span).clamp(0.0, 1.0);
        let floor = self.k * self.baseline_sd;
        let since = t.get(n.wrapping_sub(1)).copied().unwrap_or(0.0) - self.window_s;
        let pts: Vec<(f64, f64)> = (0..n)
            .filter(|&i| t[i].is_finite() && y[i].is_finite() && y[i] - self.baseline > floor)
            .filter(|&i| t[i] >= since)
            .map(|i| (t[i], (y[i] - self.baseline).ln()))
            .collect();
        let none = RulEstimate {
            health,
            degrading: false,
            rul_s: None,
            rul_low_s: None,
            rul_high_s: None,
            lambda: None,
            lambda_se: None,
            points: pts.len(),
        };
        // The trend must be current: the last tenth of the points must be degrading too.
        let recent_share = {
            let from = n - n / 10;
            let bad = (from..n).filter(|&i| y[i] - self.baseline > floor).count();
            bad as f64 / (n - from).max(1) as f64
        };
        let span_s = pts.last().map_or(0.0, |p| p.0) - pts.first().map_or(0.0, |p| p.0);
        if pts.len() < self.min_points || recent_share < 0.5 || span_s < self.min_span_s {
            return none;
        }
        let m = pts.len() as f64;
        let tm = pts.iter().map(|p| p.0).sum::<f64>() / m;
        let lm = pts.iter().map(|p| p.1).sum::<f64>() / m;
        let sxx: f64 = pts.iter().map(|p| (p.0 - tm).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - tm) * (p.1 - lm)).sum();
        if sxx <= 0.0 {
            return none;
        }
        let lambda = sxy / sxx;
        let r: Vec<f64> = pts.iter().map(|p| p.1 - lm - lambda * (p.0 - tm)).collect();
        let resid: f64 = r.iter().map(|e| e * e).sum();
        // Sensor data are autocorrelated: widen the standard error by the lag-1 autocorrelation
        // of the residuals (effective sample size n·(1 − ρ)/(1 + ρ)).
        let rho = if resid > 0.0 {
            (r.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / resid).clamp(0.0, 0.99)
        } else {
            0.0
        };
        let se = (resid / (m - 2.0).max(1.0) / sxx).sqrt() * ((1.0 + rho) / (1.0 - rho)).sqrt();
        // How much of the log-excess the trend explains: scattered excursions (load changes)
        // are not a wear trend.
        let syy: f64 = pts.iter().map(|p| (p.1 - lm).powi(2)).sum();
        let r2 = if syy > 0.0 { 1.0 - resid / syy } else { 0.0 };
        if lambda <= 0.0 || lambda < 2.0 * se || r2 < self.min_r2 {
            return RulEstimate {
                lambda: Some(lambda),
                lambda_se: Some(se),
                ..none
            };
        }
        let now = t[n - 1];
        let target = span.ln();
        // The fitted line pivots on its centre (tm, lm): where it reaches the threshold.
        let t_fail = |l: f64| tm + (target - lm) / l;
        let rul = (t_fail(lambda) - now).max(0.0);
        // The 95 % band is a prediction band by inverse regression (Fieller): the times at which
        // the indicator, not only the fitted line, reaches the threshold with 2.5 % and 97.5 %
        // probability. Its variance at u = t − tm is the noise of one reading, s², plus the
        // line's own, s²·infl·(1/m + u²/Sxx) (intercept and slope; infl for autocorrelation):
        //   (target − lm − λu)² = z²·s²·(1 + infl/m + infl·u²/Sxx),
        // a quadratic in u whose roots bound the crossing time.
        let z = 1.96;
        let s2 = resid / (m - 2.0).max(1.0);
        let infl = (1.0 + rho) / (1.0 - rho);
        let d = target - lm;
        let a = lambda * lambda - z * z * s2 * infl / sxx;
        let b = -2.0 * lambda * d;
        let c = d * d - z * z * s2 * (1.0 + infl / m);
        let disc = b * b - 4.0 * a * c;
        let (fast, slow) = if a > 0.0 && disc >= 0.0 {
            let q = disc.sqrt();
            let (u1, u2) = ((-b - q) / (2.0 * a), (-b + q) / (2.0 * a));
            ((tm + u1 - now).max(0.0), (tm + u2 - now).max(0.0))
        } else {
            // The slope is too uncertain for the upper bound to reach the threshold.
            (0.0, f64::INFINITY)
        };
        RulEstimate {
            health,
            degrading: true,
            rul_s: Some(rul),
            rul_low_s: Some(fast.min(rul)),
            rul_high_s: Some(slow.max(rul)),
            lambda: Some(lambda),
            lambda_se: Some(se),
            points: pts.len(),
        }
    }
}

/// The asymmetric scoring function of the PHM 2008 / NASA C-MAPSS challenge for one prediction:
/// `d = predicted − true` (late predictions, d > 0, cost more): `exp(−d/13) − 1` for d < 0,
/// `exp(d/10) − 1` otherwise, with d in the same unit as the published score (cycles there; hours
/// where Gemba reports it).
pub fn nasa_score(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn an_exponential_is_extrapolated_to_its_threshold() {
        // excess = 0.5·exp(t/3600) over a baseline of 2 (σ 0.1); threshold 12 → excess 10 at
        // t = 3600·ln 20 = 10,784.9 s. Data up to t = 7200 s: RUL = 3584.9 s.
        let m = DegradationModel::new(2.0, 0.1, 12.0).unwrap();
        let t: Vec<f64> = (0..=7200).step_by(10).map(f64::from).collect();
        let y: Vec<f64> = t.iter().map(|t| 2.0 + 0.5 * (t / 3600.0).exp()).collect();
        let e = m.estimate(&t, &y);
        assert!(e.degrading, "{e:?}");
        let rul = e.rul_s.unwrap();
        assert!((rul - 3584.9).abs() < 1.0, "{rul}");
        assert!((e.lambda.unwrap() - 1.0 / 3600.0).abs() < 1e-9);
        assert!(e.rul_low_s.unwrap() <= rul && e.rul_high_s.unwrap() >= rul);
        // Health: recent excess ≈ 0.5·e² = 3.69 of 10.
        assert!(
            (e.health - (1.0 - 3.69 / 10.0)).abs() < 0.02,
            "{}",
            e.health
        );
    }

    /// The band is a prediction band: over 200 noisy runs of the same exponential wear (3 %
    /// multiplicative noise on the excess), the time at which a *reading* first reaches the
    /// threshold (as a machine fails: on what the sensor says, not on a noiseless curve) lies
    /// inside it in about 90 % of the runs (178 of these 200; 4,510 of 5,000 over 25 seeds,
    /// 175–187 per seed of 200), so the test asks for 85 %, and the band stays finite and under
    /// an hour. The former band, from the slope's standard error alone, covers 6 of these 200
    /// (172 of the 5,000; and 6 of 50 simulated bearings in `gemba eval rul`). With noisier
    /// readings the first crossing comes earlier than the band expects: 173 of these 200 at 5 %
    /// noise (84 % over 25 seeds), 138 at 10 % (71 %) (docs/ALARMS.md).
    #[test]
    fn the_band_covers_the_time_a_reading_reaches_the_threshold() {
        let m = DegradationModel::new(2.0, 0.1, 12.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        let mut normal = || gemba_sim::physics::normal(&mut rng);
        let (mut covered, mut widths) = (0, Vec::new());
        for _ in 0..200 {
            // Readings every 10 s until one reaches the threshold; the model sees the first 2 h.
            let (mut t, mut y) = (Vec::new(), Vec::new());
            let mut ts = 0.0;
            let crossing = loop {
                let v = 2.0 + 0.5 * (ts / 3600.0_f64).exp() * (0.03 * normal()).exp();
                if v >= 12.0 {
                    break ts;
                }
                if ts <= 7200.0 {
                    t.push(ts);
                    y.push(v);
                }
                ts += 10.0;
            };
            let truth = crossing - 7200.0;
            let e = m.estimate(&t, &y);
            assert!(e.degrading, "{e:?}");
            let (lo, hi) = (e.rul_low_s.unwrap(), e.rul_high_s.unwrap());
            assert!(lo <= e.rul_s.unwrap() && e.rul_s.unwrap() <= hi, "{e:?}");
            covered += usize::from(lo <= truth && truth <= hi);
            widths.push(hi - lo);
        }
        assert!(covered >= 170, "covered {covered} of 200");
        assert!(
            widths.iter().all(|w| w.is_finite() && *w < 3600.0),
            "{widths:?}"
        );
    }

    #[test]
    fn a_healthy_or_noisy_flat_indicator_is_not_degrading() {
        let m = DegradationModel::new(2.0, 0.1, 12.0).unwrap();
        let t: Vec<f64> = (0..3000).map(f64::from).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|t| 2.0 + 0.1 * ((t * 12.9898).sin() * 43758.5453).fract())
            .collect();
        let e = m.estimate(&t, &y);
        assert!(!e.degrading && e.rul_s.is_none(), "{e:?}");
        assert!(e.health > 0.95);
        // A step to a higher but constant level is not a trend either.
        let y2: Vec<f64> = t
            .iter()
            .map(|t| if *t > 1000.0 { 3.0 } else { 2.0 })
            .collect();
        assert!(!m.estimate(&t, &y2).degrading);
    }

    #[test]
    fn bad_models_are_refused_and_the_score_is_asymmetric() {
        assert!(DegradationModel::new(2.0, 0.0, 12.0).is_err());
        assert!(DegradationModel::new(2.0, 1.0, 4.0).is_err());
        assert!(DegradationModel::new(f64::NAN, 1.0, 40.0).is_err());
        assert!(nasa_score(10.0) > nasa_score(-10.0));
        assert!((nasa_score(10.0) - (1f64.exp() - 1.0)).abs() < 1e-12);
        assert_eq!(nasa_score(0.0), 0.0);
    }
}
