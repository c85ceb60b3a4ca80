//! Pipeline pieces: standardisation, imputation, sliding-window features of a sensor series.

use serde::{Deserialize, Serialize};

use crate::data::Matrix;
use crate::error::{MlError, Result, bad_param};

/// Standardises each feature to mean 0, standard deviation 1 (population std, like scikit-learn).
/// Constant features keep scale 1 so they map to 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl StandardScaler {
    /// Fits on `x` (NaN values are ignored).
    pub fn fit(x: &Matrix) -> Result<Self> {
        if x.rows == 0 {
            return Err(MlError::EmptyData);
        }
        let d = x.cols;
        let mut n = vec![0usize; d];
        let mut mean = vec![0.0; d];
        let mut m2 = vec![0.0; d];
        // Welford per column: numerically stable for large offsets (sensor values).
        for row in x.iter_rows() {
            for j in 0..d {
                let v = row[j];
                if v.is_nan() {
                    continue;
                }
                n[j] += 1;
                let delta = v - mean[j];
                mean[j] += delta / n[j] as f64;
                m2[j] += delta * (v - mean[j]);
            }
        }
        let scale = (0..d)
            .map(|j| {
                let s = if n[j] > 0 {
                    (m2[j] / n[j] as f64).sqrt()
                } else {
                    0.0
                };
                if s > 1e-12 * mean[j].abs().max(1.0) {
                    s
                } else {
                    1.0
                }
            })
            .collect();
        Ok(StandardScaler { mean, scale })
    }

    /// Standardises one row in place.
    #[inline]
    pub fn transform_row(&self, row: &mut [f64]) {
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
            *v = (*v - m) / s;
        }
    }

    /// Standardised copy of `x`.
    pub fn transform(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols != self.mean.len() {
            return Err(MlError::ColumnMismatch {
                expected: self.mean.len(),
                got: x.cols,
                context: " (scaler)".into(),
            });
        }
        let mut out = x.clone();
        for i in 0..out.rows {
            self.transform_row(out.row_mut(i));
        }
        Ok(out)
    }
}

/// How missing values (NaN) are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImputeStrategy {
    Mean,
    Median,
}

/// Replaces NaN by the training mean or median of the feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imputer {
    pub strategy: ImputeStrategy,
    pub fill: Vec<f64>,
}

impl Imputer {
    /// Learns fill values; a feature without any finite value is an error naming it.
    pub fn fit(x: &Matrix, strategy: ImputeStrategy, names: &[String]) -> Result<Self> {
        let mut fill = Vec::with_capacity(x.cols);
        for j in 0..x.cols {
            let col: Vec<f64> = (0..x.rows)
                .map(|i| x.data[i * x.cols + j])
                .filter(|v| v.is_finite())
                .collect();
            if col.is_empty() {
                return Err(MlError::NonFinite {
                    feature: names.get(j).cloned().unwrap_or_else(|| format!("#{j}")),
                    row: 0,
                    value: f64::NAN,
                });
            }
            let v = match strategy {
                ImputeStrategy::Mean => col.iter().sum::<f64>() / col.len() as f64,
                // Not empty: checked above.
                ImputeStrategy::Median => crate::metrics::median(&col).unwrap_or(f64::NAN),
            };
            fill.push(v);
        }
        Ok(Imputer { strategy, fill })
    }

    /// Fills NaN in one row.
    #[inline]
    pub fn transform_row(&self, row: &mut [f64]) {
        for (v, f) in row.iter_mut().zip(&self.fill) {
            if v.is_nan() {
                *v = *f;
            }
        }
    }

    /// Copy of `x` with NaN filled.
    pub fn transform(&self, x: &Matrix) -> Result<Matrix> {
        if x.cols != self.fill.len() {
            return Err(MlError::ColumnMismatch {
                expected: self.fill.len(),
                got: x.cols,
                context: " (imputer)".into(),
            });
        }
        let mut out = x.clone();
        for i in 0..out.rows {
            self.transform_row(out.row_mut(i));
        }
        Ok(out)
    }
}

/// Sliding-window features of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Samples per window (≥ 2).
    pub window: usize,
    /// Number of lag features `lag1..lagk` (value k samples before the window's last).
    pub lags: usize,
}

/// Names of the window features of signal `name`, in column order.
pub fn window_feature_names(name: &str, spec: WindowSpec) -> Vec<String> {
    let mut v: Vec<String> = ["mean", "std", "min", "max", "slope", "last"]
        .iter()
        .map(|s| format!("{name}_{s}"))
        .collect();
    v.extend((1..=spec.lags).map(|k| format!("{name}_lag{k}")));
    v
}

/// Window features of several aligned series (one column each): row `r` describes the window
/// ending at sample `t = start + r` with `start = max(window, lags + 1) - 1`; per signal:
/// mean, std (population), min, max, least-squares slope per sample, last, lags 1..k.
/// Returns the matrix, the feature names, and `start` (the sample index of the first row).
pub fn window_features(
    series: &[(&str, &[f64])],
    spec: WindowSpec,
) -> Result<(Matrix, Vec<String>, usize)> {
    if spec.window < 2 {
        return Err(bad_param(
            "window",
            format!("must be >= 2, got {}", spec.window),
        ));
    }
    let len = series.first().map_or(0, |s| s.1.len());
    for (name, s) in series {
        if s.len() != len {
            return Err(bad_param(
                "series",
                format!(
                    "{name:?} has {} samples, the first series has {len}",
                    s.len()
                ),
            ));
        }
    }
    let start = spec.window.max(spec.lags + 1) - 1;
    if len <= start {
        return Err(MlError::EmptyData);
    }
    let per = 6 + spec.lags;
    let rows = len - start;
    let mut out = Matrix::zeros(rows, per * series.len());
    let w = spec.window as f64;
    // Slope: Σ (i - ī)(v_i - v̄) / Σ (i - ī)², i = 0..w-1.
    let ibar = (w - 1.0) / 2.0;
    let sxx: f64 = (0..spec.window).map(|i| (i as f64 - ibar).powi(2)).sum();
    for (si, (_, s)) in series.iter().enumerate() {
        for r in 0..rows {
            let t = start + r;
            let win = &s[t + 1 - spec.window..=t];
            let mean = win.iter().sum::<f64>() / w;
            let var = win.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w;
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            let mut sxy = 0.0;
            for (i, &v) in win.iter().enumerate() {
                lo = lo.min(v);
                hi = hi.max(v);
                sxy += (i as f64 - ibar) * (v - mean);
            }
            let o = out.row_mut(r);
            let o = &mut o[si * per..(si + 1) * per];
            o[0] = mean;
            o[1] = var.sqrt();
            o[2] = lo;
            o[3] = hi;
            o[4] = sxy / sxx;
            o[5] = s[t];
            for k in 1..=spec.lags {
                o[5 + k] = s[t - k];
            }
        }
    }
    let names = series
        .iter()
        .flat_map(|(n, _)| window_feature_names(n, spec))
        .collect();
    Ok((out, names, start))
}
