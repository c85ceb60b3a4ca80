//! Evaluation figures for generative models and detectors: maximum mean discrepancy between
//! real and synthetic rows, ROC AUC of scores (computed by `gemba_ml::metrics::roc_auc`).

/// Squared MMD (unbiased estimate) between two sets of rows with `d` columns, RBF kernel
/// exp(−‖a − b‖² / (2σ²)); σ is the median distance between real rows (median heuristic) when
/// `sigma` is `None`. Rows should be on a common scale (standardised).
pub fn mmd2(real: &[f32], fake: &[f32], d: usize, sigma: Option<f64>) -> f64 {
    let n = real.len() / d;
    let m = fake.len() / d;
    if n < 2 || m < 2 {
        return f64::NAN;
    }
    let row = |s: &[f32], i: usize| -> Vec<f64> {
        s[i * d..(i + 1) * d]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let dist2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let r: Vec<Vec<f64>> = (0..n).map(|i| row(real, i)).collect();
    let f: Vec<Vec<f64>> = (0..m).map(|i| row(fake, i)).collect();
    let sigma = sigma.unwrap_or_else(|| {
        let mut ds: Vec<f64> = Vec::new();
        let step = (n / 200).max(1);
        for i in (0..n).step_by(step) {
            for j in (i + 1..n).step_by(step) {
                ds.push(dist2(&r[i], &r[j]).sqrt());
            }
        }
        ds.sort_by(f64::total_cmp);
        ds.get(ds.len() / 2).copied().unwrap_or(1.0).max(1e-12)
    });
    let g = 1.0 / (2.0 * sigma * sigma);
    let k = |a: &[f64], b: &[f64]| (-g * dist2(a, b)).exp();
    let mut xx = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                xx += k(&r[i], &r[j]);
            }
        }
    }
    let mut yy = 0.0;
    for i in 0..m {
        for j in 0..m {
            if i != j {
                yy += k(&f[i], &f[j]);
            }
        }
    }
    let mut xy = 0.0;
    for a in &r {
        for b in &f {
            xy += k(a, b);
        }
    }
    xx / (n * (n - 1)) as f64 + yy / (m * (m - 1)) as f64 - 2.0 * xy / (n * m) as f64
}

/// ROC AUC of scores (higher = positive), ties counted half (Mann–Whitney): NaN where
/// [`gemba_ml::metrics::roc_auc`], which computes it, is `None` (a class missing, or no rows).
/// `scores` and `positive` must have the same length.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> f64 {
    gemba_ml::metrics::roc_auc(scores, positive).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_mmd_behave() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            0.75
        );
        assert_eq!(roc_auc(&[1.0, 1.0], &[false, true]), 0.5);
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_nan());
        assert!(roc_auc(&[], &[]).is_nan());
        let a: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
        let same = mmd2(&a[..100], &a[100..], 1, None);
        let shifted: Vec<f32> = a[100..].iter().map(|v| v + 3.0).collect();
        let far = mmd2(&a[..100], &shifted, 1, None);
        assert!(same.abs() < 0.05, "{same}");
        assert!(far > 0.5, "{far}");
    }
}
