//! Linear SVM by dual coordinate descent (Hsieh et al. 2008, liblinear's solver for
//! L2-regularised L1-loss and L2-loss SVC), with shrinking; one-vs-rest for several classes.
//!
//! Primal: ½‖w‖² + C·Σᵢ sᵢ·ξ(yᵢ wᵀxᵢ), ξ the hinge (L1-loss) or squared hinge (L2-loss); the
//! intercept is a weight on a constant feature `intercept_scaling` (regularised, like liblinear).

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Matrix, seeded_rng};
use crate::error::{MlError, Result, bad_param};
use crate::linalg::dot;
use crate::model::{ClassWeight, Classifier, Fit, ParamGuard, argmax, column_means, positive};

/// Loss of the linear SVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SvmLoss {
    /// max(0, 1 − y·f)
    Hinge,
    /// max(0, 1 − y·f)² (scikit-learn `LinearSVC` default)
    #[default]
    SquaredHinge,
}

/// Unchecked linear SVM hyper-parameters (defaults as scikit-learn's `LinearSVC`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearSvcParams {
    pub c: f64,
    pub loss: SvmLoss,
    pub class_weight: ClassWeight,
    /// Stop when the projected-gradient gap ≤ tol.
    pub tol: f64,
    /// Passes over the data.
    pub max_iter: usize,
    pub fit_intercept: bool,
    pub intercept_scaling: f64,
    pub seed: u64,
    /// Solve the dual (coordinate descent) or the primal (L-BFGS, squared hinge only).
    /// `None`: like scikit-learn's `dual="auto"` — primal when rows > features and the loss is
    /// the squared hinge.
    pub dual: Option<bool>,
    /// Fit Platt sigmoids on decision values of an internal cross-validation (one per binary
    /// problem; several classes: normalised one-vs-rest probabilities).
    pub probability: bool,
    pub probability_folds: usize,
}

impl Default for LinearSvcParams {
    fn default() -> Self {
        LinearSvcParams {
            c: 1.0,
            loss: SvmLoss::SquaredHinge,
            class_weight: ClassWeight::None,
            tol: 1e-4,
            max_iter: 1000,
            fit_intercept: true,
            intercept_scaling: 1.0,
            seed: 0,
            dual: None,
            probability: false,
            probability_folds: 5,
        }
    }
}

impl LinearSvcParams {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn c(mut self, c: f64) -> Self {
        self.c = c;
        self
    }
    pub fn loss(mut self, l: SvmLoss) -> Self {
        self.loss = l;
        self
    }
    pub fn class_weight(mut self, w: ClassWeight) -> Self {
        self.class_weight = w;
        self
    }
}

/// Validated linear SVM hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvcValidParams {
    pub p: LinearSvcParams,
}

impl ParamGuard for LinearSvcParams {
    type Checked = LinearSvcValidParams;
    fn check(&self) -> Result<LinearSvcValidParams> {
        positive("c", self.c)?;
        positive("tol", self.tol)?;
        positive("intercept_scaling", self.intercept_scaling)?;
        if self.max_iter == 0 {
            return Err(bad_param("max_iter", "must be >= 1"));
        }
        if self.probability && self.probability_folds < 2 {
            return Err(bad_param("probability_folds", "must be >= 2"));
        }
        if self.dual == Some(false) && self.loss == SvmLoss::Hinge {
            return Err(bad_param(
                "dual",
                "the hinge loss is not differentiable; it needs dual = true",
            ));
        }
        self.class_weight.check()?;
        Ok(LinearSvcValidParams { p: self.clone() })
    }
}

/// A fitted linear SVM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearSvcModel {
    pub n_features: usize,
    pub n_classes: usize,
    /// Binary: one row (class 1 positive); else one row per class (one-vs-rest).
    pub coef: Vec<f64>,
    pub intercept: Vec<f64>,
    pub baseline: Vec<f64>,
    /// Passes used by each binary problem.
    pub iterations: Vec<usize>,
    /// Platt sigmoid (A, B) per binary problem, when probability was requested.
    pub platt: Option<Vec<(f64, f64)>>,
}

impl LinearSvcValidParams {
    /// Primal L2-loss SVM by L-BFGS: ½‖w‖² + Σ Cᵢ max(0, 1 − yᵢ(w·xᵢ + b·s))², stopped when
    /// ‖∇f‖∞ ≤ tol·‖∇f(0)‖∞ (liblinear's relative rule for its primal solver).
    fn solve_primal(&self, x: &Matrix, y: &[f64], c: &[f64]) -> (Vec<f64>, f64, usize) {
        let (l, d) = (x.rows, x.cols);
        let bias = if self.p.fit_intercept {
            self.p.intercept_scaling
        } else {
            0.0
        };
        let fg = |w: &[f64], g: &mut [f64]| -> f64 {
            let (wv, wb) = (&w[..d], w[d]);
            let mut f = 0.5 * (dot(wv, wv) + wb * wb);
            g[..d].copy_from_slice(wv);
            g[d] = wb;
            for i in 0..l {
                let xi = x.row(i);
                let m = 1.0 - y[i] * (dot(wv, xi) + wb * bias);
                if m > 0.0 {
                    f += c[i] * m * m;
                    let r = -2.0 * c[i] * m * y[i];
                    crate::linalg::axpy(r, xi, &mut g[..d]);
                    g[d] += r * bias;
                }
            }
            f
        };
        let mut g0 = vec![0.0; d + 1];
        fg(&vec![0.0; d + 1], &mut g0);
        let g0max = g0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let opt = crate::lbfgs::LbfgsOptions {
            max_iter: self.p.max_iter,
            gtol: self.p.tol * g0max.max(1e-12),
            ftol: 0.0,
            ..Default::default()
        };
        let r = crate::lbfgs::minimize(fg, vec![0.0; d + 1], &opt, None);
        (r.x[..d].to_vec(), r.x[d] * bias, r.iterations)
    }

    /// One binary problem: labels ±1, per-sample C. Returns (w, b, passes).
    fn solve(&self, x: &Matrix, y: &[f64], c: &[f64], seed: u64) -> (Vec<f64>, f64, usize) {
        let (l, d) = (x.rows, x.cols);
        let bias = if self.p.fit_intercept {
            self.p.intercept_scaling
        } else {
            0.0
        };
        let l2 = self.p.loss == SvmLoss::SquaredHinge;
        let diag: Vec<f64> = c.iter().map(|&c| if l2 { 0.5 / c } else { 0.0 }).collect();
        let upper: Vec<f64> = c
            .iter()
            .map(|&c| if l2 { f64::INFINITY } else { c })
            .collect();
        let qd: Vec<f64> = (0..l)
            .map(|i| {
                let r = x.row(i);
                diag[i] + dot(r, r) + bias * bias
            })
            .collect();
        let mut w = vec![0.0; d];
        let mut wb = 0.0;
        let mut alpha = vec![0.0; l];
        let mut index: Vec<usize> = (0..l).collect();
        let mut active = l;
        let (mut pgmax_old, mut pgmin_old) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut rng = seeded_rng(seed);
        let mut iter = 0;
        while iter < self.p.max_iter {
            let (mut pgmax_new, mut pgmin_new) = (f64::NEG_INFINITY, f64::INFINITY);
            index[..active].shuffle(&mut rng);
            let mut s = 0;
            while s < active {
                let i = index[s];
                let yi = y[i];
                let xi = x.row(i);
                let g = yi * (dot(&w, xi) + wb * bias) - 1.0 + alpha[i] * diag[i];
                let cu = upper[i];
                let mut pg = 0.0;
                if alpha[i] == 0.0 {
                    if g > pgmax_old {
                        active -= 1;
                        index.swap(s, active);
                        continue;
                    } else if g < 0.0 {
                        pg = g;
                    }
                } else if alpha[i] == cu {
                    if g < pgmin_old {
                        active -= 1;
                        index.swap(s, active);
                        continue;
                    } else if g > 0.0 {
                        pg = g;
                    }
                } else {
                    pg = g;
                }
                pgmax_new = pgmax_new.max(pg);
                pgmin_new = pgmin_new.min(pg);
                if pg.abs() > 1e-12 {
                    let old = alpha[i];
                    alpha[i] = (alpha[i] - g / qd[i]).max(0.0).min(cu);
                    let dlt = (alpha[i] - old) * yi;
                    crate::linalg::axpy(dlt, xi, &mut w);
                    wb += dlt * bias;
                }
                s += 1;
            }
            iter += 1;
            if pgmax_new - pgmin_new <= self.p.tol {
                if active == l {
                    break;
                }
                active = l;
                pgmax_old = f64::INFINITY;
                pgmin_old = f64::NEG_INFINITY;
                continue;
            }
            pgmax_old = if pgmax_new <= 0.0 {
                f64::INFINITY
            } else {
                pgmax_new
            };
            pgmin_old = if pgmin_new >= 0.0 {
                f64::NEG_INFINITY
            } else {
                pgmin_new
            };
        }
        (w, wb * bias, iter)
    }
}

impl LinearSvcValidParams {
    fn solve_one(
        &self,
        x: &Matrix,
        y: &[f64],
        c: &[f64],
        seed: u64,
        primal: bool,
    ) -> (Vec<f64>, f64, usize) {
        if primal {
            self.solve_primal(x, y, c)
        } else {
            self.solve(x, y, c, seed)
        }
    }

    /// Held-out decision values of a `probability_folds`-fold cross-validation (random folds).
    fn cv_decisions(&self, x: &Matrix, y: &[f64], c: &[f64], seed: u64, primal: bool) -> Vec<f64> {
        let folds = self.p.probability_folds;
        super::platt::cv_decisions(y, c, folds, seed ^ 0x5eed, |train, ty, tc, test, dec| {
            let tx = x.select_rows(train);
            let (w, b, _) = self.solve_one(&tx, ty, tc, seed, primal);
            for &t in test {
                dec[t] = dot(&w, x.row(t)) + b;
            }
        })
    }
}

impl Fit for LinearSvcValidParams {
    type Model = LinearSvcModel;

    fn fit(&self, data: &Dataset) -> Result<LinearSvcModel> {
        data.validate_for_training()?;
        let k = data.n_classes();
        let cw = self.p.class_weight.resolve(data)?;
        let targets: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
        let mut coef = Vec::new();
        let mut intercept = Vec::new();
        let mut iterations = Vec::new();
        let mut platt = Vec::new();
        for &t in &targets {
            let y: Vec<f64> = data
                .y
                .iter()
                .map(|&v| if v == t { 1.0 } else { -1.0 })
                .collect();
            // liblinear's convention (and scikit-learn's): binary problems weigh both classes;
            // one-vs-rest weighs the positive class only, the rest keeps C.
            let c: Vec<f64> = data
                .y
                .iter()
                .map(|&v| {
                    let w = if k == 2 || v == t { cw[v] } else { 1.0 };
                    self.p.c * w
                })
                .collect();
            let primal = match self.p.dual {
                Some(d) => !d,
                None => self.p.loss == SvmLoss::SquaredHinge && data.n_rows() > data.n_features(),
            };
            let seed = self.p.seed.wrapping_add(t as u64);
            let (w, b, it) = self.solve_one(&data.x, &y, &c, seed, primal);
            if self.p.probability {
                let dec = self.cv_decisions(&data.x, &y, &c, seed, primal);
                let pos: Vec<bool> = y.iter().map(|&v| v > 0.0).collect();
                platt.push(super::platt::sigmoid_train(&dec, &pos));
            }
            coef.extend(w);
            intercept.push(b);
            iterations.push(it);
        }
        if coef.iter().any(|v| !v.is_finite()) {
            return Err(MlError::BadParam {
                name: "c".into(),
                reason: "the solver diverged (weights are not finite)".into(),
            });
        }
        Ok(LinearSvcModel {
            n_features: data.n_features(),
            n_classes: k,
            coef,
            intercept,
            baseline: column_means(&data.x),
            iterations,
            platt: self.p.probability.then_some(platt),
        })
    }
}

impl LinearSvcModel {
    fn class_weights(&self, c: usize) -> Vec<f64> {
        crate::model::linear_class_weights(&self.coef, self.n_classes, self.n_features, c)
    }
}

impl Classifier for LinearSvcModel {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn baseline(&self) -> &[f64] {
        &self.baseline
    }
    fn scores_row(&self, x: &[f64], out: &mut [f64]) {
        let d = self.n_features;
        if self.n_classes == 2 {
            let z = dot(&self.coef, x) + self.intercept[0];
            out[0] = -z;
            out[1] = z;
        } else {
            for (c, o) in out.iter_mut().enumerate().take(self.n_classes) {
                *o = dot(&self.coef[c * d..(c + 1) * d], x) + self.intercept[c];
            }
        }
    }
    fn predict_row(&self, x: &[f64]) -> usize {
        if self.n_classes == 2 {
            usize::from(dot(&self.coef, x) + self.intercept[0] > 0.0)
        } else {
            let mut s = vec![0.0; self.n_classes];
            self.scores_row(x, &mut s);
            argmax(&s)
        }
    }
    /// Platt probabilities (binary), or one-vs-rest sigmoids normalised to sum 1.
    fn proba_row(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        let Some(platt) = &self.platt else {
            return Err(MlError::NoProbability);
        };
        let d = self.n_features;
        if self.n_classes == 2 {
            let (a, b) = platt[0];
            let p = super::platt::sigmoid_predict(dot(&self.coef, x) + self.intercept[0], a, b);
            out[0] = 1.0 - p;
            out[1] = p;
        } else {
            for (c, o) in out.iter_mut().enumerate().take(self.n_classes) {
                let (a, b) = platt[c];
                let z = dot(&self.coef[c * d..(c + 1) * d], x) + self.intercept[c];
                *o = super::platt::sigmoid_predict(z, a, b);
            }
            let s: f64 = out.iter().sum();
            if s > 0.0 {
                out.iter_mut().for_each(|v| *v /= s);
            } else {
                out.iter_mut()
                    .for_each(|v| *v = 1.0 / self.n_classes as f64);
            }
        }
        Ok(())
    }
    /// Exact: `w_cj · (x_j − baseline_j)` toward the predicted class.
    fn contributions(&self, x: &[f64]) -> (usize, Vec<f64>) {
        let c = self.predict_row(x);
        let contrib = crate::model::linear_contributions(&self.class_weights(c), x, &self.baseline);
        (c, contrib)
    }
}
