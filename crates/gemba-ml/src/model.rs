//! The model vocabulary shared by every Gemba model.
//!
//! `XParams` (unchecked, builder methods, serde) → [`ParamGuard::check`] → `XValidParams` →
//! [`Fit::fit`] on a [`Dataset`] → a fitted model implementing [`Classifier`]
//! (`predict`, `predict_proba`, `explain`).

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Matrix};
use crate::error::{MlError, Result, bad_param};

/// Unchecked hyper-parameters that can be validated.
pub trait ParamGuard {
    type Checked;
    /// Validates every hyper-parameter; the error names the first bad one and why.
    fn check(&self) -> Result<Self::Checked>;
}

/// Validated hyper-parameters that can be fitted to a data set.
pub trait Fit {
    type Model: Classifier;
    fn fit(&self, data: &Dataset) -> Result<Self::Model>;
}

/// A fitted classifier. Rows are in the space the model was trained in (after imputation and
/// scaling, which [`crate::ModelArtifact`] applies for you).
pub trait Classifier {
    fn n_features(&self) -> usize;
    fn n_classes(&self) -> usize;

    /// Class scores of one row (higher = more likely; logits or decision values).
    fn scores_row(&self, x: &[f64], out: &mut [f64]);

    /// Class probabilities of one row.
    fn proba_row(&self, x: &[f64], out: &mut [f64]) -> Result<()>;

    /// The baseline of explanations (the training mean).
    fn baseline(&self) -> &[f64];

    /// Predicted class id of one row.
    fn predict_row(&self, x: &[f64]) -> usize {
        let mut s = vec![0.0; self.n_classes()];
        self.scores_row(x, &mut s);
        argmax(&s)
    }

    /// Prediction, class scores and (when the model has them and `proba` is given)
    /// probabilities of one row in one pass.
    fn predict_with_scores(
        &self,
        x: &[f64],
        scores: &mut [f64],
        proba: Option<&mut [f64]>,
    ) -> Result<usize> {
        self.scores_row(x, scores);
        if let Some(p) = proba {
            self.proba_row(x, p)?;
        }
        Ok(self.predict_row(x))
    }

    /// Signed contribution of every feature to the score of the predicted class, and that class.
    /// Default: occlusion — the score drop when a feature is replaced by its baseline value.
    fn contributions(&self, x: &[f64]) -> (usize, Vec<f64>) {
        let k = self.n_classes();
        let mut s = vec![0.0; k];
        self.scores_row(x, &mut s);
        let c = argmax(&s);
        let mut z = x.to_vec();
        let mut so = vec![0.0; k];
        let contrib = (0..x.len())
            .map(|j| {
                z[j] = self.baseline()[j];
                self.scores_row(&z, &mut so);
                z[j] = x[j];
                s[c] - so[c]
            })
            .collect();
        (c, contrib)
    }

    /// The predicted class and the `k` features with the largest |contribution| to it, as
    /// (feature index, signed contribution), largest first. [`crate::ModelArtifact::explain`]
    /// adds names and raw values.
    fn explain(&self, x: &[f64], k: usize) -> Result<(usize, Vec<(usize, f64)>)> {
        if x.len() != self.n_features() {
            return Err(MlError::ColumnMismatch {
                expected: self.n_features(),
                got: x.len(),
                context: String::new(),
            });
        }
        let (c, contrib) = self.contributions(x);
        let mut top: Vec<(usize, f64)> = contrib.into_iter().enumerate().collect();
        top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        top.truncate(k);
        Ok((c, top))
    }

    fn check_cols(&self, x: &Matrix) -> Result<()> {
        if x.cols != self.n_features() {
            return Err(MlError::ColumnMismatch {
                expected: self.n_features(),
                got: x.cols,
                context: String::new(),
            });
        }
        Ok(())
    }

    /// Predicted class ids.
    fn predict(&self, x: &Matrix) -> Result<Vec<usize>> {
        self.check_cols(x)?;
        Ok(x.iter_rows().map(|r| self.predict_row(r)).collect())
    }

    /// Class probabilities, one row per sample.
    fn predict_proba(&self, x: &Matrix) -> Result<Matrix> {
        self.check_cols(x)?;
        let k = self.n_classes();
        let mut out = Matrix::zeros(x.rows, k);
        for i in 0..x.rows {
            self.proba_row(x.row(i), &mut out.data[i * k..(i + 1) * k])?;
        }
        Ok(out)
    }

    /// Global importance: mean |contribution| per feature over the rows of `x`.
    fn feature_importance(&self, x: &Matrix) -> Result<Vec<f64>> {
        self.check_cols(x)?;
        let mut imp = vec![0.0; x.cols];
        for r in x.iter_rows() {
            let (_, c) = self.contributions(r);
            for (a, b) in imp.iter_mut().zip(c) {
                *a += b.abs();
            }
        }
        let n = x.rows.max(1) as f64;
        imp.iter_mut().for_each(|v| *v /= n);
        Ok(imp)
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Per-class weights multiplying each sample's loss (or C in SVMs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// All classes weigh 1.
    #[default]
    None,
    /// `n_samples / (n_classes · count(class))`, like scikit-learn.
    Balanced,
    /// One weight per class id.
    Weights(Vec<f64>),
}

impl ClassWeight {
    pub(crate) fn check(&self) -> Result<()> {
        if let ClassWeight::Weights(w) = self
            && let Some(v) = w.iter().find(|v| !(v.is_finite() && **v > 0.0))
        {
            return Err(bad_param(
                "class_weight",
                format!("weights must be finite and > 0, got {v}"),
            ));
        }
        Ok(())
    }

    /// Weight per class id for this data set.
    pub fn resolve(&self, data: &Dataset) -> Result<Vec<f64>> {
        let k = data.n_classes();
        match self {
            ClassWeight::None => Ok(vec![1.0; k]),
            ClassWeight::Balanced => {
                let counts = data.class_counts();
                let present = counts.iter().filter(|&&c| c > 0).count() as f64;
                let n = data.n_rows() as f64;
                Ok(counts
                    .iter()
                    .map(|&c| if c > 0 { n / (present * c as f64) } else { 1.0 })
                    .collect())
            }
            ClassWeight::Weights(w) => {
                if w.len() != k {
                    return Err(bad_param(
                        "class_weight",
                        format!("{} weights given for {k} classes", w.len()),
                    ));
                }
                Ok(w.clone())
            }
        }
    }
}

/// Column means of the training data: the explanation baseline.
pub(crate) fn column_means(x: &Matrix) -> Vec<f64> {
    let mut m = vec![0.0; x.cols];
    for r in x.iter_rows() {
        for (a, b) in m.iter_mut().zip(r) {
            *a += b;
        }
    }
    let n = x.rows.max(1) as f64;
    m.iter_mut().for_each(|v| *v /= n);
    m
}

/// A positive finite hyper-parameter, or an error naming it.
pub(crate) fn positive(name: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(bad_param(name, format!("must be finite and > 0, got {v}")))
    }
}

/// Weights of class `c` of a linear model whose `coef` holds one vector (two classes: toward
/// class 1, negated for class 0) or one vector of `d` weights per class.
pub(crate) fn linear_class_weights(coef: &[f64], n_classes: usize, d: usize, c: usize) -> Vec<f64> {
    if n_classes == 2 {
        let s = if c == 1 { 1.0 } else { -1.0 };
        coef.iter().map(|w| s * w).collect()
    } else {
        coef[c * d..(c + 1) * d].to_vec()
    }
}

/// Exact contributions of a linear score: `w_j · (x_j − baseline_j)`.
pub(crate) fn linear_contributions(w: &[f64], x: &[f64], baseline: &[f64]) -> Vec<f64> {
    w.iter()
        .zip(x)
        .zip(baseline)
        .map(|((w, x), b)| w * (x - b))
        .collect()
}
