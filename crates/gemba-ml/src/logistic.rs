//! Logistic regression: binary (sigmoid) or multinomial (softmax) for more than two classes.
//!
//! Objective, as scikit-learn's `LogisticRegression`: `C·Σᵢ sᵢ·lossᵢ + ½‖W‖²` (L2) or
//! `C·Σᵢ sᵢ·lossᵢ + ‖W‖₁` (L1), intercepts not penalised, `sᵢ` the class weight of row i.
//! `lambda` is the per-sample form: mean loss + λ/2‖W‖², i.e. `C = 1/(n·λ)`.
//! Solved by L-BFGS (L2, none) or OWL-QN (L1) on the objective divided by `C·n`.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{MlError, Result, bad_param};
use crate::lbfgs::{LbfgsOptions, minimize};
use crate::linalg::dot;
use crate::model::{ClassWeight, Classifier, Fit, ParamGuard, column_means, positive};

/// Penalty on the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Penalty {
    #[default]
    L2,
    L1,
    None,
}

/// Unchecked hyper-parameters (serde: the `params` JSON of `train("logistic", …)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// Inverse regularisation strength (scikit-learn's C). Default 1.
    pub c: Option<f64>,
    /// Alternative to `c`: λ of `mean loss + λ/2‖w‖²`. Give one of `c` and `lambda`.
    pub lambda: Option<f64>,
    pub penalty: Penalty,
    pub class_weight: ClassWeight,
    pub fit_intercept: bool,
    pub max_iter: usize,
    /// Stop when max |gradient| of the scaled objective ≤ tol (scikit-learn's `tol`).
    pub tol: f64,
    /// L-BFGS memory.
    pub memory: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            c: None,
            lambda: None,
            penalty: Penalty::L2,
            class_weight: ClassWeight::None,
            fit_intercept: true,
            max_iter: 1000,
            tol: 1e-4,
            memory: 10,
        }
    }
}

impl LogisticParams {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn c(mut self, c: f64) -> Self {
        self.c = Some(c);
        self
    }
    pub fn lambda(mut self, l: f64) -> Self {
        self.lambda = Some(l);
        self
    }
    pub fn penalty(mut self, p: Penalty) -> Self {
        self.penalty = p;
        self
    }
    pub fn class_weight(mut self, w: ClassWeight) -> Self {
        self.class_weight = w;
        self
    }
    pub fn fit_intercept(mut self, b: bool) -> Self {
        self.fit_intercept = b;
        self
    }
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    pub fn tol(mut self, t: f64) -> Self {
        self.tol = t;
        self
    }
}

/// Regularisation strength, as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strength {
    C(f64),
    Lambda(f64),
}

/// Validated hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticValidParams {
    pub strength: Strength,
    pub penalty: Penalty,
    pub class_weight: ClassWeight,
    pub fit_intercept: bool,
    pub options: LbfgsOptions,
}

impl ParamGuard for LogisticParams {
    type Checked = LogisticValidParams;
    fn check(&self) -> Result<LogisticValidParams> {
        let strength = match (self.c, self.lambda) {
            (Some(_), Some(_)) => {
                return Err(bad_param("lambda", "give either c or lambda, not both"));
            }
            (Some(c), None) => Strength::C(positive("c", c)?),
            (None, Some(l)) => Strength::Lambda(positive("lambda", l)?),
            (None, None) => Strength::C(1.0),
        };
        if self.max_iter == 0 {
            return Err(bad_param("max_iter", "must be >= 1"));
        }
        positive("tol", self.tol)?;
        if self.memory == 0 {
            return Err(bad_param("memory", "must be >= 1"));
        }
        self.class_weight.check()?;
        Ok(LogisticValidParams {
            strength,
            penalty: self.penalty,
            class_weight: self.class_weight.clone(),
            fit_intercept: self.fit_intercept,
            options: LbfgsOptions {
                memory: self.memory,
                max_iter: self.max_iter,
                gtol: self.tol,
                ..LbfgsOptions::default()
            },
        })
    }
}

const LANES: usize = 8;
const ROW_BLOCK: usize = 4;

/// Σᵢ sᵢ·(log Σ_c e^{z_ic} − z_{i,yᵢ}) (not yet divided by n) and its gradient / n into `g`
/// (weights k × d, then k intercepts) for the multinomial model.
///
/// Blocked like a small GEMM: W is stored transposed and zero-padded to a multiple of 8 classes,
/// logits of one row are accumulated 8 classes at a time in registers, and the gradient takes
/// 4 rows per pass over Wᵀ, so the hot loops are fixed-width and vectorise.
fn multinomial_loss_grad(
    x: &crate::data::Matrix,
    y: &[usize],
    sw: &[f64],
    w: &[f64],
    g: &mut [f64],
    k: usize,
    inv_n: f64,
) -> f64 {
    let (n, d) = (x.rows, x.cols);
    let nw = k * d;
    let kp = k.div_ceil(LANES) * LANES;
    let chunks = kp / LANES;
    let mut wt = vec![0.0; d * kp];
    for c in 0..k {
        for j in 0..d {
            wt[j * kp + c] = w[c * d + j];
        }
    }
    let mut bias = vec![0.0; kp];
    bias[..k].copy_from_slice(&w[nw..nw + k]);
    let mut gt = vec![0.0; d * kp];
    let mut gb = vec![0.0; k];
    let mut r = vec![0.0; ROW_BLOCK * kp];
    let mut loss = 0.0;
    let mut i0 = 0;
    while i0 < n {
        let rows = (n - i0).min(ROW_BLOCK);
        // Logits, two rows at a time: each loaded weight chunk serves both rows and the two
        // independent accumulator sets hide the add latency.
        let mut b = 0;
        while b < rows {
            if b + 1 < rows {
                let (xa, xb) = (x.row(i0 + b), x.row(i0 + b + 1));
                let (ra, rb) = r[b * kp..(b + 2) * kp].split_at_mut(kp);
                for ch in 0..chunks {
                    let lanes = ch * LANES..(ch + 1) * LANES;
                    let mut acc_a = [0.0; LANES];
                    acc_a.copy_from_slice(&bias[lanes.clone()]);
                    let mut acc_b = acc_a;
                    for j in 0..d {
                        let wj = &wt[j * kp + ch * LANES..j * kp + (ch + 1) * LANES];
                        let (va, vb) = (xa[j], xb[j]);
                        for l in 0..LANES {
                            acc_a[l] += va * wj[l];
                            acc_b[l] += vb * wj[l];
                        }
                    }
                    ra[lanes.clone()].copy_from_slice(&acc_a);
                    rb[lanes].copy_from_slice(&acc_b);
                }
                b += 2;
            } else {
                let xi = x.row(i0 + b);
                let z = &mut r[b * kp..(b + 1) * kp];
                for ch in 0..chunks {
                    let mut acc = [0.0; LANES];
                    acc.copy_from_slice(&bias[ch * LANES..(ch + 1) * LANES]);
                    for (j, &xj) in xi.iter().enumerate() {
                        let wj = &wt[j * kp + ch * LANES..j * kp + (ch + 1) * LANES];
                        for (a, wv) in acc.iter_mut().zip(wj) {
                            *a += xj * wv;
                        }
                    }
                    z[ch * LANES..(ch + 1) * LANES].copy_from_slice(&acc);
                }
                b += 1;
            }
        }
        for b in 0..rows {
            let i = i0 + b;
            let z = &mut r[b * kp..(b + 1) * kp];
            let zk = &mut z[..k];
            let m = zk.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let zy = zk[y[i]];
            for v in zk.iter_mut() {
                *v -= m;
            }
            crate::linalg::exp_nonpositive(zk);
            let s: f64 = zk.iter().sum();
            loss += sw[i] * (m + s.ln() - zy);
            let scale = sw[i] * inv_n / s;
            for v in zk.iter_mut() {
                *v *= scale;
            }
            zk[y[i]] -= sw[i] * inv_n;
            for (gbc, rc) in gb.iter_mut().zip(zk.iter()) {
                *gbc += rc;
            }
            // padded lanes stay 0 (bias and weights are 0 there, so exp is never applied)
            z[k..].iter_mut().for_each(|v| *v = 0.0);
        }
        // Gradient, two features at a time: each residual chunk serves both.
        let mut j = 0;
        while j < d {
            let pair = j + 1 < d;
            for ch in 0..chunks {
                let b0 = j * kp + ch * LANES;
                let b1 = b0 + kp;
                let mut acc0 = [0.0; LANES];
                acc0.copy_from_slice(&gt[b0..b0 + LANES]);
                let mut acc1 = [0.0; LANES];
                if pair {
                    acc1.copy_from_slice(&gt[b1..b1 + LANES]);
                }
                for b in 0..rows {
                    let row = (i0 + b) * d + j;
                    let x0 = x.data[row];
                    let x1 = if pair { x.data[row + 1] } else { 0.0 };
                    let rb = &r[b * kp + ch * LANES..b * kp + (ch + 1) * LANES];
                    for l in 0..LANES {
                        acc0[l] += x0 * rb[l];
                        acc1[l] += x1 * rb[l];
                    }
                }
                gt[b0..b0 + LANES].copy_from_slice(&acc0);
                if pair {
                    gt[b1..b1 + LANES].copy_from_slice(&acc1);
                }
            }
            j += 2;
        }
        i0 += rows;
    }
    for c in 0..k {
        for j in 0..d {
            g[c * d + j] = gt[j * kp + c];
        }
        g[nw + c] = gb[c];
    }
    loss
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    pub n_features: usize,
    pub n_classes: usize,
    /// One row of weights (binary: for class 1) or one per class (multinomial), row-major.
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub baseline: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
}

#[inline]
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z), stable.
#[inline]
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Fit for LogisticValidParams {
    type Model = LogisticModel;

    #[allow(clippy::needless_range_loop)]
    fn fit(&self, data: &Dataset) -> Result<LogisticModel> {
        data.validate_for_training()?;
        let (n, d, k) = (data.n_rows(), data.n_features(), data.n_classes());
        let c = match self.strength {
            Strength::C(c) => c,
            Strength::Lambda(l) => 1.0 / (n as f64 * l),
        };
        let cw = self.class_weight.resolve(data)?;
        let sw: Vec<f64> = data.y.iter().map(|&y| cw[y]).collect();
        let kk = if k == 2 { 1 } else { k }; // weight rows
        let nw = kk * d;
        let np = nw + kk; // + intercepts (kept at 0 when not fitted)
        let inv_n = 1.0 / n as f64;
        let x = &data.x;
        let y = &data.y;
        let fit_b = self.fit_intercept;
        let l2 = if self.penalty == Penalty::L2 {
            inv_n / c
        } else {
            0.0
        };
        let mut z = vec![0.0; if kk == 1 { n } else { 0 }];
        let fg = |w: &[f64], g: &mut [f64]| -> f64 {
            g.iter_mut().for_each(|v| *v = 0.0);
            let mut loss = 0.0;
            if kk == 1 {
                let (wv, b) = (&w[..d], w[d]);
                for i in 0..n {
                    let xi = x.row(i);
                    let zi = dot(wv, xi) + b;
                    let yi = if y[i] == 1 { 1.0 } else { 0.0 };
                    loss += sw[i] * (softplus(zi) - yi * zi);
                    z[i] = sw[i] * (sigmoid(zi) - yi) * inv_n;
                }
                for i in 0..n {
                    let r = z[i];
                    let xi = x.row(i);
                    for (gj, xj) in g[..d].iter_mut().zip(xi) {
                        *gj += r * xj;
                    }
                    g[d] += r;
                }
            } else {
                loss = multinomial_loss_grad(x, y, &sw, w, g, k, inv_n);
            }
            if !fit_b {
                g[nw..].iter_mut().for_each(|v| *v = 0.0);
            }
            let mut f = loss * inv_n;
            if l2 > 0.0 {
                f += 0.5 * l2 * dot(&w[..nw], &w[..nw]);
                for (gj, wj) in g[..nw].iter_mut().zip(&w[..nw]) {
                    *gj += l2 * wj;
                }
            }
            f
        };
        let l1: Option<Vec<f64>> = (self.penalty == Penalty::L1).then(|| {
            let mut v = vec![inv_n / c; np];
            v[nw..].iter_mut().for_each(|x| *x = 0.0);
            v
        });
        let r = minimize(fg, vec![0.0; np], &self.options, l1.as_deref());
        if r.x.iter().any(|v| !v.is_finite()) {
            return Err(MlError::BadParam {
                name: "c".into(),
                reason: "the optimisation diverged (weights are not finite); lower c".into(),
            });
        }
        Ok(LogisticModel {
            n_features: d,
            n_classes: k,
            coef: r.x[..nw].to_vec(),
            intercept: r.x[nw..].to_vec(),
            baseline: column_means(x),
            iterations: r.iterations,
            converged: r.converged,
        })
    }
}

impl LogisticModel {
    /// Weights of class `c` (binary: class 1 for c = 1, negated for c = 0).
    pub fn class_weights(&self, c: usize) -> Vec<f64> {
        crate::model::linear_class_weights(&self.coef, self.n_classes, self.n_features, c)
    }
}

impl Classifier for LogisticModel {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn baseline(&self) -> &[f64] {
        &self.baseline
    }

    #[inline]
    fn scores_row(&self, x: &[f64], out: &mut [f64]) {
        let d = self.n_features;
        if self.n_classes == 2 {
            let z = dot(&self.coef, x) + self.intercept[0];
            out[0] = 0.0;
            out[1] = z;
        } else {
            for (c, o) in out.iter_mut().enumerate().take(self.n_classes) {
                *o = dot(&self.coef[c * d..(c + 1) * d], x) + self.intercept[c];
            }
        }
    }

    #[inline]
    fn predict_row(&self, x: &[f64]) -> usize {
        if self.n_classes == 2 {
            usize::from(dot(&self.coef, x) + self.intercept[0] > 0.0)
        } else {
            let mut s = vec![0.0; self.n_classes];
            self.scores_row(x, &mut s);
            crate::model::argmax(&s)
        }
    }

    fn proba_row(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        if self.n_classes == 2 {
            let p = sigmoid(dot(&self.coef, x) + self.intercept[0]);
            out[0] = 1.0 - p;
            out[1] = p;
        } else {
            self.scores_row(x, out);
            let m = out.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let mut s = 0.0;
            for v in out.iter_mut() {
                *v = (*v - m).exp();
                s += *v;
            }
            out.iter_mut().for_each(|v| *v /= s);
        }
        Ok(())
    }

    /// Exact: `w_cj · (x_j − baseline_j)` for the predicted class c (binary: toward c).
    fn contributions(&self, x: &[f64]) -> (usize, Vec<f64>) {
        let c = self.predict_row(x);
        let contrib = crate::model::linear_contributions(&self.class_weights(c), x, &self.baseline);
        (c, contrib)
    }

    /// Mean |contribution| without the per-row loop: mean over classes of |w_cj| times the mean
    /// |x_j − baseline_j| of the given rows (exact for the binary model).
    fn feature_importance(&self, x: &crate::data::Matrix) -> Result<Vec<f64>> {
        self.check_cols(x)?;
        let d = self.n_features;
        let rows = if self.n_classes == 2 {
            1
        } else {
            self.n_classes
        };
        let mut spread = vec![0.0; d];
        for r in x.iter_rows() {
            for j in 0..d {
                spread[j] += (r[j] - self.baseline[j]).abs();
            }
        }
        let n = x.rows.max(1) as f64;
        Ok((0..d)
            .map(|j| {
                let w: f64 =
                    (0..rows).map(|c| self.coef[c * d + j].abs()).sum::<f64>() / rows as f64;
                w * spread[j] / n
            })
            .collect())
    }
}
