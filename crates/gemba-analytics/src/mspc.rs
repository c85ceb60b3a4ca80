//! Multivariate statistical process control: principal component analysis of a machine's signals
//! on normal data, Hotelling's T² in the retained components and the squared prediction error
//! (SPE, Q) of the residual, with limits taken from a held-out normal set, and per-signal
//! contributions that say which signal drove an excursion (MacGregor & Kourti 1995).
//!
//! The eigen-decomposition is the cyclic Jacobi method on the correlation matrix (p is a machine's
//! signal count, a few dozen at most).

// Matrix code reads like the textbook with explicit indices.
#![allow(clippy::needless_range_loop)]

use gemba_ml::metrics::quantile;
use serde::{Deserialize, Serialize};

use crate::spc::SpcError;

/// How the model is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PcaOptions {
    /// Keep the fewest components that explain at least this share of the variance.
    pub variance: f64,
    /// Limits are this quantile of the held-out normal scores.
    pub quantile: f64,
}

impl Default for PcaOptions {
    fn default() -> Self {
        PcaOptions {
            variance: 0.9,
            quantile: 0.999,
        }
    }
}

/// A fitted PCA monitor; limits are frozen at fit time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaMonitor {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Retained loadings, one row per component (unit vectors over the standardised signals).
    pub loadings: Vec<Vec<f64>>,
    /// Variance of each retained component.
    pub eigenvalues: Vec<f64>,
    pub t2_limit: f64,
    pub spe_limit: f64,
}

/// The score of one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaScore {
    pub t2: f64,
    pub spe: f64,
    /// max(T² / T² limit, SPE / SPE limit): above 1 is out of control.
    pub index: f64,
    /// Each signal's share of the statistic that is furthest over its limit (non-negative, sums
    /// to 1 unless every contribution is zero).
    pub contributions: Vec<f64>,
    /// Standardised value of each signal ((x − mean) / std on the normal data).
    pub z: Vec<f64>,
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric matrix,
/// sorted by decreasing eigenvalue.
pub fn symmetric_eigen(a: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut m: Vec<Vec<f64>> = a.to_vec();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i][j] * m[i][j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if m[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k][p], m[k][q]);
                    m[k][p] = c * mkp - s * mkq;
                    m[k][q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p][k], m[q][k]);
                    m[p][k] = c * mpk - s * mqk;
                    m[q][k] = s * mpk + c * mqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[j][j].total_cmp(&m[i][i]));
    let values = order.iter().map(|&i| m[i][i]).collect();
    let vectors = (0..n)
        .map(|r| order.iter().map(|&c| v[r][c]).collect())
        .collect();
    (values, vectors)
}

impl PcaMonitor {
    /// Fits on `train` (rows of p signals) and sets the limits on `holdout`; both normal data.
    pub fn fit(
        train: &[Vec<f64>],
        holdout: &[Vec<f64>],
        opts: PcaOptions,
    ) -> Result<PcaMonitor, SpcError> {
        let p = train.first().map_or(0, Vec::len);
        if p < 2 {
            return Err(SpcError::Invalid(format!(
                "PCA needs at least 2 signals, got {p}"
            )));
        }
        let need = (5 * p).max(30);
        if train.len() < need {
            return Err(SpcError::TooFew {
                got: train.len(),
                need,
            });
        }
        if holdout.len() < 20 {
            return Err(SpcError::TooFew {
                got: holdout.len(),
                need: 20,
            });
        }
        if !(0.0 < opts.variance && opts.variance <= 1.0) {
            return Err(SpcError::Invalid(format!(
                "variance share {} must be in (0, 1]",
                opts.variance
            )));
        }
        if !(0.5..1.0).contains(&opts.quantile) {
            return Err(SpcError::Invalid(format!(
                "limit quantile {} must be in [0.5, 1)",
                opts.quantile
            )));
        }
        for (i, row) in train.iter().chain(holdout).enumerate() {
            if row.len() != p {
                return Err(SpcError::Invalid(format!(
                    "row {i} has {} values; expected {p}",
                    row.len()
                )));
            }
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                return Err(SpcError::NotFinite {
                    what: "training value",
                    value: *v,
                });
            }
        }
        let n = train.len() as f64;
        let mean: Vec<f64> = (0..p)
            .map(|j| train.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let std: Vec<f64> = (0..p)
            .map(|j| {
                let var = train.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / (n - 1.0);
                // A constant signal carries no information; keep it neutral instead of dividing by 0.
                if var > 1e-24 { var.sqrt() } else { 1.0 }
            })
            .collect();
        let z: Vec<Vec<f64>> = train
            .iter()
            .map(|r| (0..p).map(|j| (r[j] - mean[j]) / std[j]).collect())
            .collect();
        let mut cov = vec![vec![0.0; p]; p];
        for r in &z {
            for i in 0..p {
                for j in i..p {
                    cov[i][j] += r[i] * r[j];
                }
            }
        }
        for i in 0..p {
            for j in i..p {
                cov[i][j] /= n - 1.0;
                cov[j][i] = cov[i][j];
            }
        }
        let (values, vectors) = symmetric_eigen(&cov);
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        let mut k = 0;
        let mut acc = 0.0;
        while k < p - 1 && (total <= 0.0 || acc / total < opts.variance) {
            acc += values[k].max(0.0);
            k += 1;
        }
        let k = k.max(1);
        let loadings: Vec<Vec<f64>> = (0..k)
            .map(|c| (0..p).map(|r| vectors[r][c]).collect())
            .collect();
        let eigenvalues: Vec<f64> = values[..k].iter().map(|v| v.max(1e-12)).collect();
        let mut monitor = PcaMonitor {
            mean,
            std,
            loadings,
            eigenvalues,
            t2_limit: 1.0,
            spe_limit: 1.0,
        };
        let (t2s, spes): (Vec<f64>, Vec<f64>) = holdout
            .iter()
            .map(|r| {
                let (t2, spe, _, _) = monitor.statistics(r);
                (t2, spe)
            })
            .unzip();
        // numpy's linear-interpolation quantile; the holdout has at least 20 rows.
        monitor.t2_limit = quantile(&t2s, opts.quantile).max(1e-9);
        monitor.spe_limit = quantile(&spes, opts.quantile).max(1e-9);
        Ok(monitor)
    }

    /// Number of signals.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    fn statistics(&self, x: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let p = self.width();
        let z: Vec<f64> = (0..p)
            .map(|j| (x[j] - self.mean[j]) / self.std[j])
            .collect();
        let t: Vec<f64> = self
            .loadings
            .iter()
            .map(|l| l.iter().zip(&z).map(|(a, b)| a * b).sum())
            .collect();
        let t2 = t
            .iter()
            .zip(&self.eigenvalues)
            .map(|(t, l)| t * t / l)
            .sum();
        let resid: Vec<f64> = (0..p)
            .map(|j| {
                z[j] - self
                    .loadings
                    .iter()
                    .zip(&t)
                    .map(|(l, t)| l[j] * t)
                    .sum::<f64>()
            })
            .collect();
        let spe = resid.iter().map(|e| e * e).sum();
        (t2, spe, z, resid)
    }

    /// Scores one observation; `x` must have [`PcaMonitor::width`] finite values.
    pub fn score(&self, x: &[f64]) -> Result<PcaScore, SpcError> {
        if x.len() != self.width() {
            return Err(SpcError::Invalid(format!(
                "observation has {} values; the model has {}",
                x.len(),
                self.width()
            )));
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return Err(SpcError::NotFinite {
                what: "observation value",
                value: *v,
            });
        }
        let (t2, spe, z, resid) = self.statistics(x);
        let (rt, rs) = (t2 / self.t2_limit, spe / self.spe_limit);
        let raw: Vec<f64> = if rs >= rt {
            resid.iter().map(|e| e * e).collect()
        } else {
            // T² contribution of signal j: z_j · Σ_a t_a p_aj / λ_a (they sum to T²).
            let t: Vec<f64> = self
                .loadings
                .iter()
                .map(|l| l.iter().zip(&z).map(|(a, b)| a * b).sum())
                .collect();
            (0..self.width())
                .map(|j| {
                    let c: f64 = self
                        .loadings
                        .iter()
                        .zip(&t)
                        .zip(&self.eigenvalues)
                        .map(|((l, t), lam)| t * l[j] / lam)
                        .sum();
                    (z[j] * c).max(0.0)
                })
                .collect()
        };
        let sum: f64 = raw.iter().sum();
        let contributions = if sum > 0.0 {
            raw.iter().map(|c| c / sum).collect()
        } else {
            raw
        };
        Ok(PcaScore {
            t2,
            spe,
            index: rt.max(rs),
            contributions,
            z,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Three correlated signals driven by one latent factor plus a fourth independent one.
    fn rows(n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = || gemba_sim::physics::normal(&mut rng);
        (0..n)
            .map(|_| {
                let f = normal();
                vec![
                    10.0 + 2.0 * f + 0.1 * normal(),
                    5.0 - 1.0 * f + 0.1 * normal(),
                    100.0 + 20.0 * f + 1.0 * normal(),
                    3.0 + 0.5 * normal(),
                ]
            })
            .collect()
    }

    #[test]
    fn jacobi_matches_a_hand_computed_2x2() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let (vals, vecs) = symmetric_eigen(&[vec![2.0, 1.0], vec![1.0, 2.0]]);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let r = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[0][0].abs() - r).abs() < 1e-12 && (vecs[1][0].abs() - r).abs() < 1e-12);
        assert!((vecs[0][0] * vecs[1][0]) > 0.0, "first vector is (1, 1)");
    }

    #[test]
    fn limits_hold_on_normal_data_and_the_broken_signal_is_named() {
        let m = PcaMonitor::fit(&rows(2000, 1), &rows(1000, 2), PcaOptions::default()).unwrap();
        // On fresh normal data about 0.1 % exceed the 99.9 % limits.
        let fresh = rows(5000, 3);
        let over = fresh
            .iter()
            .filter(|r| m.score(r).unwrap().index > 1.0)
            .count();
        assert!(over < 50, "{over} of 5000 normal rows over the limits");
        // Break the correlation: signal 1 moves against the factor (an SPE excursion).
        let mut x = fresh[0].clone();
        x[1] += 1.5;
        let s = m.score(&x).unwrap();
        assert!(s.index > 1.0, "index {}", s.index);
        let top = (0..4)
            .max_by(|&a, &b| s.contributions[a].total_cmp(&s.contributions[b]))
            .unwrap();
        assert_eq!(top, 1, "contributions {:?}", s.contributions);
        assert!((s.contributions.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // A big move along the factor is a T² excursion carried by the correlated signals.
        let mut y = fresh[0].clone();
        let f = 6.0;
        y[0] += 2.0 * f;
        y[1] -= f;
        y[2] += 20.0 * f;
        let s = m.score(&y).unwrap();
        assert!(s.t2 / m.t2_limit > 1.0);
        assert!(s.contributions[3] < 0.05, "{:?}", s.contributions);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let e = PcaMonitor::fit(&rows(10, 1), &rows(100, 2), PcaOptions::default()).unwrap_err();
        assert!(e.to_string().contains("at least 30"), "{e}");
        let m = PcaMonitor::fit(&rows(500, 1), &rows(100, 2), PcaOptions::default()).unwrap();
        assert!(m.score(&[1.0, 2.0]).unwrap_err().to_string().contains("4"));
        assert!(
            m.score(&[1.0, f64::NAN, 0.0, 0.0])
                .unwrap_err()
                .to_string()
                .contains("not finite")
        );
    }
}
