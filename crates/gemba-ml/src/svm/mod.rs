//! Soft-margin kernel SVM (C-SVC, SMO, one-vs-one, Platt scaling) and linear SVM (dual
//! coordinate descent, one-vs-rest).

pub mod kernel;
pub mod linear;
pub mod platt;
pub mod smo;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Matrix};
use crate::error::{MlError, Result, bad_param};
use crate::linalg::dot;
use crate::model::{ClassWeight, Classifier, Fit, ParamGuard, argmax, column_means, positive};
pub use kernel::Kernel;
use kernel::KernelEval;
use smo::SmoOptions;

/// Kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelKind {
    Linear,
    #[default]
    Rbf,
    Poly,
}

/// Named γ rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GammaRule {
    /// 1 / (d · Var(X)) over all entries of X (scikit-learn's default).
    Scale,
    /// 1 / d.
    Auto,
}

/// γ: a number or a rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gamma {
    Value(f64),
    Rule(GammaRule),
}

impl Default for Gamma {
    fn default() -> Self {
        Gamma::Rule(GammaRule::Scale)
    }
}

/// Unchecked C-SVC hyper-parameters (defaults as scikit-learn's `SVC`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SvcParams {
    pub c: f64,
    pub kernel: KernelKind,
    pub gamma: Gamma,
    pub degree: u32,
    pub coef0: f64,
    pub class_weight: ClassWeight,
    /// Stopping tolerance of SMO (maximal violating pair gap).
    pub tol: f64,
    pub shrinking: bool,
    /// Kernel cache size in MiB.
    pub cache_mb: f64,
    /// Fit Platt sigmoids by internal cross-validation (costs `probability_folds` extra fits).
    pub probability: bool,
    pub probability_folds: usize,
    /// SMO iteration cap per binary problem; `None`: max(10⁷, 100·n) like libsvm.
    pub max_iter: Option<usize>,
    pub seed: u64,
}

impl Default for SvcParams {
    fn default() -> Self {
        SvcParams {
            c: 1.0,
            kernel: KernelKind::Rbf,
            gamma: Gamma::default(),
            degree: 3,
            coef0: 0.0,
            class_weight: ClassWeight::None,
            tol: 1e-3,
            shrinking: true,
            cache_mb: 200.0,
            probability: false,
            probability_folds: 5,
            max_iter: None,
            seed: 0,
        }
    }
}

impl SvcParams {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn c(mut self, c: f64) -> Self {
        self.c = c;
        self
    }
    pub fn kernel(mut self, k: KernelKind) -> Self {
        self.kernel = k;
        self
    }
    pub fn gamma(mut self, g: Gamma) -> Self {
        self.gamma = g;
        self
    }
    pub fn degree(mut self, d: u32) -> Self {
        self.degree = d;
        self
    }
    pub fn coef0(mut self, c: f64) -> Self {
        self.coef0 = c;
        self
    }
    pub fn class_weight(mut self, w: ClassWeight) -> Self {
        self.class_weight = w;
        self
    }
    pub fn probability(mut self, p: bool) -> Self {
        self.probability = p;
        self
    }
    pub fn tol(mut self, t: f64) -> Self {
        self.tol = t;
        self
    }
}

/// Validated C-SVC hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SvcValidParams {
    pub p: SvcParams,
}

impl ParamGuard for SvcParams {
    type Checked = SvcValidParams;
    fn check(&self) -> Result<SvcValidParams> {
        positive("c", self.c)?;
        positive("tol", self.tol)?;
        positive("cache_mb", self.cache_mb)?;
        if let Gamma::Value(g) = self.gamma {
            positive("gamma", g)?;
        }
        if self.kernel == KernelKind::Poly && self.degree == 0 {
            return Err(bad_param("degree", "must be >= 1"));
        }
        if !self.coef0.is_finite() {
            return Err(bad_param("coef0", "must be finite"));
        }
        if self.probability && self.probability_folds < 2 {
            return Err(bad_param("probability_folds", "must be >= 2"));
        }
        if self.max_iter == Some(0) {
            return Err(bad_param("max_iter", "must be >= 1"));
        }
        self.class_weight.check()?;
        Ok(SvcValidParams { p: self.clone() })
    }
}

/// One binary problem of the one-vs-one scheme: class `a` (+1) against class `b` (−1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairModel {
    pub a: usize,
    pub b: usize,
    /// Indices into the model's support vectors, and their yᵢαᵢ.
    pub sv: Vec<u32>,
    pub coef: Vec<f64>,
    pub rho: f64,
    /// Primal weights for the linear kernel (w·x − ρ is the decision value).
    pub w: Option<Vec<f64>>,
    /// Platt sigmoid (A, B), when probability was requested.
    pub platt: Option<(f64, f64)>,
    pub iterations: usize,
}

/// A fitted C-SVC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvcModel {
    pub kernel: Kernel,
    pub n_classes: usize,
    pub n_features: usize,
    pub support_vectors: Matrix,
    pub sv_norms: Vec<f64>,
    pub pairs: Vec<PairModel>,
    pub baseline: Vec<f64>,
}

impl SvcValidParams {
    fn resolve_kernel(&self, x: &Matrix) -> Kernel {
        let d = x.cols as f64;
        let gamma = match self.p.gamma {
            Gamma::Value(g) => g,
            Gamma::Rule(GammaRule::Auto) => 1.0 / d,
            Gamma::Rule(GammaRule::Scale) => {
                let n = x.data.len() as f64;
                let mean = x.data.iter().sum::<f64>() / n;
                let var = x.data.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                if var > 0.0 { 1.0 / (d * var) } else { 1.0 }
            }
        };
        match self.p.kernel {
            KernelKind::Linear => Kernel::Linear,
            KernelKind::Rbf => Kernel::Rbf { gamma },
            KernelKind::Poly => Kernel::Poly {
                gamma,
                coef0: self.p.coef0,
                degree: self.p.degree,
            },
        }
    }

    fn smo_options(&self, l: usize) -> SmoOptions {
        SmoOptions {
            eps: self.p.tol,
            shrinking: self.p.shrinking,
            cache_bytes: (self.p.cache_mb * 1024.0 * 1024.0) as usize,
            max_iter: self.p.max_iter.unwrap_or(10_000_000.max(100 * l)),
        }
    }

    /// Solves one binary problem on the rows `idx` (labels ±1, bounds c): (alpha·y, rho, iters).
    fn solve_binary(
        &self,
        kernel: Kernel,
        x: &Matrix,
        idx: &[usize],
        y: &[f64],
        c: &[f64],
        blocks: Option<kernel::PairBlocks<'_>>,
    ) -> (Vec<f64>, f64, usize) {
        let sub = x.select_rows(idx);
        let mut ke = KernelEval::new(kernel, &sub);
        ke.blocks = blocks;
        let sol = smo::solve(&ke, y, c, &self.smo_options(idx.len()));
        let coef = sol.alpha.iter().zip(y).map(|(a, y)| a * y).collect();
        (coef, sol.rho, sol.iterations)
    }

    /// Decision values of held-out folds for Platt scaling (libsvm's svm_binary_svc_probability).
    fn cv_decisions(
        &self,
        kernel: Kernel,
        x: &Matrix,
        idx: &[usize],
        y: &[f64],
        c: &[f64],
        seed: u64,
    ) -> Vec<f64> {
        let folds = self.p.probability_folds;
        platt::cv_decisions(y, c, folds, seed, |train, ty, tc, test, dec| {
            let tidx: Vec<usize> = train.iter().map(|&t| idx[t]).collect();
            let (coef, rho, _) = self.solve_binary(kernel, x, &tidx, ty, tc, None);
            let svs: Vec<(usize, f64)> = tidx
                .iter()
                .zip(&coef)
                .filter(|(_, c)| **c != 0.0)
                .map(|(&i, &c)| (i, c))
                .collect();
            for &t in test {
                let xt = x.row(idx[t]);
                let nt = dot(xt, xt);
                let mut s = -rho;
                for &(i, cf) in &svs {
                    let xi = x.row(i);
                    s += cf * kernel.eval(xi, xt, dot(xi, xi), nt);
                }
                dec[t] = s;
            }
        })
    }
}

impl Fit for SvcValidParams {
    type Model = SvcModel;

    fn fit(&self, data: &Dataset) -> Result<SvcModel> {
        data.validate_for_training()?;
        let x = &data.x;
        let kernel = self.resolve_kernel(x);
        let k = data.n_classes();
        let cw = self.p.class_weight.resolve(data)?;
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
        for (i, &y) in data.y.iter().enumerate() {
            by_class[y].push(i);
        }
        let present: Vec<usize> = (0..k).filter(|&c| !by_class[c].is_empty()).collect();
        let mut sv_slot: Vec<u32> = vec![u32::MAX; data.n_rows()];
        let mut sv_rows: Vec<usize> = Vec::new();
        let mut pairs = Vec::new();
        // Several classes: share within-class kernel rows between the pairs of a class when all
        // blocks fit in the cache budget.
        let block_bytes: usize = present.iter().map(|&c| 4 * by_class[c].len().pow(2)).sum();
        let budget = (self.p.cache_mb * 1024.0 * 1024.0) as usize;
        let blocks: Option<Vec<kernel::ClassBlock>> = (present.len() > 2 && block_bytes <= budget)
            .then(|| {
                by_class
                    .iter()
                    .map(|r| kernel::ClassBlock::new(r.len()))
                    .collect()
            });
        for (pi, &a) in present.iter().enumerate() {
            for &b in &present[pi + 1..] {
                let idx: Vec<usize> = by_class[a].iter().chain(&by_class[b]).copied().collect();
                let na = by_class[a].len();
                let y: Vec<f64> = (0..idx.len())
                    .map(|t| if t < na { 1.0 } else { -1.0 })
                    .collect();
                let c: Vec<f64> = (0..idx.len())
                    .map(|t| self.p.c * if t < na { cw[a] } else { cw[b] })
                    .collect();
                let pair_blocks = blocks.as_ref().map(|bl| kernel::PairBlocks {
                    first: &bl[a],
                    second: &bl[b],
                    n_first: na,
                });
                let (coef, rho, iterations) =
                    self.solve_binary(kernel, x, &idx, &y, &c, pair_blocks);
                let platt = if self.p.probability {
                    let seed = self.p.seed ^ ((a as u64) << 32 | b as u64);
                    let dec = self.cv_decisions(kernel, x, &idx, &y, &c, seed);
                    let pos: Vec<bool> = y.iter().map(|&v| v > 0.0).collect();
                    Some(platt::sigmoid_train(&dec, &pos))
                } else {
                    None
                };
                let mut sv = Vec::new();
                let mut cf = Vec::new();
                let mut w = (kernel == Kernel::Linear).then(|| vec![0.0; x.cols]);
                for (&row, &co) in idx.iter().zip(&coef) {
                    if co == 0.0 {
                        continue;
                    }
                    if sv_slot[row] == u32::MAX {
                        sv_slot[row] = sv_rows.len() as u32;
                        sv_rows.push(row);
                    }
                    sv.push(sv_slot[row]);
                    cf.push(co);
                    if let Some(w) = w.as_mut() {
                        crate::linalg::axpy(co, x.row(row), w);
                    }
                }
                pairs.push(PairModel {
                    a,
                    b,
                    sv,
                    coef: cf,
                    rho,
                    w,
                    platt,
                    iterations,
                });
            }
        }
        let support_vectors = x.select_rows(&sv_rows);
        let sv_norms = support_vectors.iter_rows().map(|r| dot(r, r)).collect();
        Ok(SvcModel {
            kernel,
            n_classes: k,
            n_features: x.cols,
            support_vectors,
            sv_norms,
            pairs,
            baseline: column_means(x),
        })
    }
}

impl SvcModel {
    /// Decision value of every pair for row x.
    pub fn pair_decisions(&self, x: &[f64], out: &mut Vec<f64>) {
        let needs_kernel = self.pairs.iter().any(|p| p.w.is_none());
        let dots: Vec<f64> = if needs_kernel {
            kernel::dots(&self.support_vectors, x)
        } else {
            Vec::new()
        };
        let mut kv = Vec::new();
        self.decisions_from_dots(x, &dots, dot(x, x), &mut kv, out);
    }

    /// Pair decisions given `dots[s] = sv_s · x` and ‖x‖² (`dots` may be empty when every pair
    /// has primal weights).
    fn decisions_from_dots(
        &self,
        x: &[f64],
        dots: &[f64],
        nx: f64,
        kv: &mut Vec<f64>,
        out: &mut Vec<f64>,
    ) {
        out.clear();
        kv.clear();
        match self.kernel {
            Kernel::Rbf { gamma } => {
                kv.extend(
                    dots.iter()
                        .zip(&self.sv_norms)
                        .map(|(&d, &ns)| -gamma * (ns + nx - 2.0 * d).max(0.0)),
                );
                crate::linalg::exp_nonpositive(kv);
            }
            k => kv.extend(
                dots.iter()
                    .zip(&self.sv_norms)
                    .map(|(&d, &ns)| k.from_dot(d, ns, nx)),
            ),
        }
        for p in &self.pairs {
            let v = match &p.w {
                Some(w) => dot(w, x) - p.rho,
                None => {
                    p.sv.iter()
                        .zip(&p.coef)
                        .map(|(&s, &c)| c * kv[s as usize])
                        .sum::<f64>()
                        - p.rho
                }
            };
            out.push(v);
        }
    }

    /// Class scores from pair decisions (see [`Classifier::scores_row`]).
    fn scores_from_dec(&self, dec: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        if self.pairs.len() == 1 {
            let p = &self.pairs[0];
            out[p.a] = dec[0];
            out[p.b] = -dec[0];
            return;
        }
        let mut votes = vec![0.0; self.n_classes];
        let mut conf = vec![0.0; self.n_classes];
        for (p, &d) in self.pairs.iter().zip(dec) {
            if d > 0.0 {
                votes[p.a] += 1.0;
            } else {
                votes[p.b] += 1.0;
            }
            conf[p.a] += d;
            conf[p.b] -= d;
        }
        for c in 0..self.n_classes {
            out[c] = votes[c] + conf[c] / (3.0 * (conf[c].abs() + 1.0));
        }
    }

    /// Class probabilities from pair decisions (Platt sigmoids, then pairwise coupling).
    fn proba_from_dec(&self, dec: &[f64], out: &mut [f64]) -> Result<()> {
        if !self.has_probability() {
            return Err(MlError::NoProbability);
        }
        let mut present: Vec<usize> = self.pairs.iter().flat_map(|p| [p.a, p.b]).collect();
        present.sort_unstable();
        present.dedup();
        let m = present.len();
        let pos = |c: usize| present.iter().position(|&p| p == c).unwrap_or(0);
        let mut r = vec![0.0; m * m];
        for (p, &d) in self.pairs.iter().zip(dec) {
            let (a, b) = p.platt.unwrap_or((0.0, 0.0));
            let v = platt::sigmoid_predict(d, a, b).clamp(1e-7, 1.0 - 1e-7);
            let (ia, ib) = (pos(p.a), pos(p.b));
            r[ia * m + ib] = v;
            r[ib * m + ia] = 1.0 - v;
        }
        let mut pm = vec![0.0; m];
        if m == 2 {
            pm[0] = r[1];
            pm[1] = r[m];
        } else {
            platt::couple(m, &r, &mut pm);
        }
        out.iter_mut().for_each(|v| *v = 0.0);
        for (i, &c) in present.iter().enumerate() {
            out[c] = pm[i];
        }
        Ok(())
    }

    /// libsvm's one-vs-one vote (ties: the lower class id).
    fn vote(&self, dec: &[f64]) -> usize {
        let mut votes = vec![0.0; self.n_classes];
        for (p, &d) in self.pairs.iter().zip(dec) {
            votes[if d > 0.0 { p.a } else { p.b }] += 1.0;
        }
        argmax(&votes)
    }

    /// Number of support vectors.
    pub fn n_support(&self) -> usize {
        self.support_vectors.rows
    }

    pub fn has_probability(&self) -> bool {
        self.pairs.iter().all(|p| p.platt.is_some())
    }
}

impl Classifier for SvcModel {
    fn n_features(&self) -> usize {
        self.n_features
    }
    fn n_classes(&self) -> usize {
        self.n_classes
    }
    fn baseline(&self) -> &[f64] {
        &self.baseline
    }

    /// Binary: ±decision value. Several classes: votes plus a bounded confidence term
    /// (scikit-learn's `decision_function_shape="ovr"`).
    fn scores_row(&self, x: &[f64], out: &mut [f64]) {
        let mut dec = Vec::with_capacity(self.pairs.len());
        self.pair_decisions(x, &mut dec);
        self.scores_from_dec(&dec, out);
    }

    fn predict_with_scores(
        &self,
        x: &[f64],
        scores: &mut [f64],
        proba: Option<&mut [f64]>,
    ) -> Result<usize> {
        let mut dec = Vec::with_capacity(self.pairs.len());
        self.pair_decisions(x, &mut dec);
        self.scores_from_dec(&dec, scores);
        if let Some(p) = proba {
            self.proba_from_dec(&dec, p)?;
        }
        Ok(self.vote(&dec))
    }

    /// libsvm's vote (ties: the lower class id).
    fn predict_row(&self, x: &[f64]) -> usize {
        let mut dec = Vec::with_capacity(self.pairs.len());
        self.pair_decisions(x, &mut dec);
        self.vote(&dec)
    }

    fn proba_row(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        if !self.has_probability() {
            return Err(MlError::NoProbability);
        }
        let mut dec = Vec::with_capacity(self.pairs.len());
        self.pair_decisions(x, &mut dec);
        self.proba_from_dec(&dec, out)
    }

    /// Occlusion against the training mean, on probabilities when calibrated, else on scores.
    /// Kernel values of the occluded row come from the unoccluded dot products adjusted in one
    /// coordinate, so a whole explanation costs about two predictions, not d + 1.
    fn contributions(&self, x: &[f64]) -> (usize, Vec<f64>) {
        let k = self.n_classes;
        let use_p = self.has_probability();
        let needs_kernel = self.pairs.iter().any(|p| p.w.is_none());
        let dots: Vec<f64> = if needs_kernel {
            kernel::dots(&self.support_vectors, x)
        } else {
            Vec::new()
        };
        let nx = dot(x, x);
        let (mut kv, mut dec) = (Vec::new(), Vec::new());
        let score = |dec: &[f64], out: &mut [f64]| {
            if use_p {
                let _ = self.proba_from_dec(dec, out);
            } else {
                self.scores_from_dec(dec, out);
            }
        };
        let mut s = vec![0.0; k];
        self.decisions_from_dots(x, &dots, nx, &mut kv, &mut dec);
        score(&dec, &mut s);
        let c = self.predict_row(x);
        let mut z = x.to_vec();
        let mut so = vec![0.0; k];
        let mut dz = vec![0.0; dots.len()];
        let d = self.n_features;
        let contrib = (0..x.len())
            .map(|j| {
                let b = self.baseline[j];
                z[j] = b;
                let delta = b - x[j];
                for (t, (o, &dd)) in dz.iter_mut().zip(&dots).enumerate() {
                    *o = dd + delta * self.support_vectors.data[t * d + j];
                }
                let nz = nx - x[j] * x[j] + b * b;
                self.decisions_from_dots(&z, &dz, nz, &mut kv, &mut dec);
                score(&dec, &mut so);
                z[j] = x[j];
                s[c] - so[c]
            })
            .collect();
        (c, contrib)
    }
}
