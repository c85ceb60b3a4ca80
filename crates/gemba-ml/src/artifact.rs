//! Training entry point and the serialisable model artefact (pipeline + model + provenance).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::{Dataset, Matrix, check_finite, stratified_kfold};
use crate::error::{MlError, Result, bad_param};
use crate::logistic::{LogisticModel, LogisticParams};
use crate::metrics::{self, Report};
use crate::model::{Classifier, Fit, ParamGuard};
use crate::preprocess::{ImputeStrategy, Imputer, StandardScaler};
use crate::svm::SvcModel;
use crate::svm::SvcParams;
use crate::svm::linear::{LinearSvcModel, LinearSvcParams};

/// Artefact format version; bump when the JSON layout changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// The model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression (`"logistic"`, `"lr"`).
    Logistic,
    /// Kernel C-SVC (`"svc"`, `"svm"`).
    Svc,
    /// Linear SVM (`"linear_svc"`, `"linsvc"`).
    LinearSvc,
}

impl FromStr for ModelKind {
    type Err = MlError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "logistic" | "lr" | "logistic_regression" => Ok(ModelKind::Logistic),
            "svc" | "svm" | "kernel_svm" => Ok(ModelKind::Svc),
            "linear_svc" | "linsvc" | "linear_svm" => Ok(ModelKind::LinearSvc),
            other => Err(bad_param(
                "kind",
                format!("unknown model kind {other:?} (logistic, svc, linear_svc)"),
            )),
        }
    }
}

/// A fitted model of any family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FittedModel {
    Logistic(LogisticModel),
    Svc(SvcModel),
    LinearSvc(LinearSvcModel),
}

impl FittedModel {
    /// The model as a [`Classifier`] (in its own, pre-processed feature space).
    pub fn classifier(&self) -> &dyn Classifier {
        match self {
            FittedModel::Logistic(m) => m,
            FittedModel::Svc(m) => m,
            FittedModel::LinearSvc(m) => m,
        }
    }
}

/// Metrics stored in an artefact and the rows they were computed on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMetrics {
    /// `"train"` or `"validation (last 20% by time)"`.
    pub split: String,
    pub report: Report,
}

/// One feature's share in a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// The raw input value.
    pub value: f64,
    /// Signed contribution toward the predicted class (model score units).
    pub contribution: f64,
}

/// Why one row got its prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub predicted: usize,
    pub class_name: String,
    /// Class probabilities when the model has them.
    pub probabilities: Option<Vec<f64>>,
    /// `"exact linear: w·(x − training mean), standardised space"` or the occlusion method.
    pub method: String,
    /// The top-k features by |contribution|, largest first.
    pub top: Vec<Contribution>,
    /// Sum of the contributions of the features not in `top`.
    pub rest: f64,
}

/// A trained pipeline with everything needed to predict, explain and audit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub kind: ModelKind,
    /// Artefact format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Version of `gemba-ml` that wrote it.
    pub library_version: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The full training configuration: pipeline options and the model's hyper-parameters with
    /// every default filled in (`config["model"]` can be passed back to [`train`]).
    pub config: Value,
    pub feature_names: Vec<String>,
    pub class_names: Vec<String>,
    pub imputer: Option<Imputer>,
    pub scaler: Option<StandardScaler>,
    pub metrics: Option<ArtifactMetrics>,
    /// Mean |contribution| per feature over (up to 200) training rows.
    pub feature_importance: Vec<f64>,
    /// Hash of the training data ([`Dataset::fingerprint`]).
    pub data_fingerprint: String,
    pub model: FittedModel,
}

/// Pipeline options of the `params` JSON (the other keys are the model's hyper-parameters).
#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    standardize: bool,
    impute: Option<ImputeStrategy>,
    validation_fraction: Option<f64>,
}

/// The hyper-parameters as a JSON object (`null` is the empty one).
fn params_object(params: &Value) -> Result<Map<String, Value>> {
    match params {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m.clone()),
        other => Err(bad_param(
            "params",
            format!("must be a JSON object, got {other}"),
        )),
    }
}

fn split_params(params: &Value) -> Result<(Pipeline, Value)> {
    let obj = params_object(params)?;
    let mut model = Map::new();
    let mut pipe = Pipeline {
        standardize: true,
        impute: None,
        validation_fraction: None,
    };
    for (k, v) in obj {
        match k.as_str() {
            "standardize" => {
                pipe.standardize = v.as_bool().ok_or_else(|| {
                    bad_param("standardize", format!("must be true or false, got {v}"))
                })?;
            }
            "impute" => {
                pipe.impute = match v.as_str() {
                    None if v.is_null() => None,
                    Some("mean") => Some(ImputeStrategy::Mean),
                    Some("median") => Some(ImputeStrategy::Median),
                    _ => {
                        return Err(bad_param(
                            "impute",
                            format!("must be \"mean\", \"median\" or null, got {v}"),
                        ));
                    }
                };
            }
            "validation_fraction" => {
                let f = v.as_f64().filter(|f| *f > 0.0 && *f < 1.0).ok_or_else(|| {
                    bad_param(
                        "validation_fraction",
                        format!("must be a number in (0, 1), got {v}"),
                    )
                })?;
                pipe.validation_fraction = Some(f);
            }
            _ => {
                model.insert(k, v);
            }
        }
    }
    Ok((pipe, Value::Object(model)))
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        // serde names the unknown field or the bad value; keep its words.
        bad_param("params", msg)
    })
}

fn fit_model(kind: ModelKind, model_params: Value, data: &Dataset) -> Result<FittedModel> {
    Ok(match kind {
        ModelKind::Logistic => {
            FittedModel::Logistic(parse::<LogisticParams>(model_params)?.check()?.fit(data)?)
        }
        ModelKind::Svc => FittedModel::Svc(parse::<SvcParams>(model_params)?.check()?.fit(data)?),
        ModelKind::LinearSvc => {
            FittedModel::LinearSvc(parse::<LinearSvcParams>(model_params)?.check()?.fit(data)?)
        }
    })
}

/// The model hyper-parameters with every default filled in (what the artefact records).
fn effective_params(kind: ModelKind, model_params: Value) -> Result<Value> {
    let v = match kind {
        ModelKind::Logistic => serde_json::to_value(parse::<LogisticParams>(model_params)?),
        ModelKind::Svc => serde_json::to_value(parse::<SvcParams>(model_params)?),
        ModelKind::LinearSvc => serde_json::to_value(parse::<LinearSvcParams>(model_params)?),
    };
    v.map_err(|e| MlError::Artifact(e.to_string()))
}

/// The fitted pre-processing of a training run and the transformed data.
fn fit_pipeline(
    pipe: &Pipeline,
    data: &Dataset,
) -> Result<(Option<Imputer>, Option<StandardScaler>, Dataset)> {
    if data.n_rows() == 0 {
        return Err(MlError::EmptyData);
    }
    let mut ds = data.clone();
    let imputer = match pipe.impute {
        Some(s) => {
            let imp = Imputer::fit(&ds.x, s, &ds.feature_names)?;
            ds.x = imp.transform(&ds.x)?;
            Some(imp)
        }
        None => None,
    };
    check_finite(&ds.x, &ds.feature_names)?;
    let scaler = if pipe.standardize {
        let s = StandardScaler::fit(&ds.x)?;
        ds.x = s.transform(&ds.x)?;
        Some(s)
    } else {
        None
    };
    Ok((imputer, scaler, ds))
}

/// Trains a model of `kind` on `data`.
///
/// `params` is a JSON object: the model's hyper-parameters (see [`LogisticParams`],
/// [`SvcParams`], [`LinearSvcParams`]; unknown keys are errors) plus pipeline keys:
/// `standardize` (default true), `impute` (`"mean"`/`"median"`, default none: NaN is an error),
/// `validation_fraction` (train on the first rows, report metrics on the last fraction by time;
/// default: metrics on the training rows).
pub fn train(kind: ModelKind, params: &Value, data: &Dataset) -> Result<ModelArtifact> {
    let (pipe, model_params) = split_params(params)?;
    let (fit_data, valid, split) = match pipe.validation_fraction {
        Some(f) => {
            let (a, b) = data.split_by_time(1.0 - f)?;
            (
                a,
                Some(b),
                format!("validation (last {:.0}% of rows by time)", f * 100.0),
            )
        }
        None => (data.clone(), None, "train".to_owned()),
    };
    let (imputer, scaler, ds) = fit_pipeline(&pipe, &fit_data)?;
    let model = fit_model(kind, model_params.clone(), &ds)?;
    let mut art = ModelArtifact {
        kind,
        version: FORMAT_VERSION,
        library_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: now_rfc3339(),
        config: config_json(&pipe, kind, effective_params(kind, model_params)?),
        feature_names: data.feature_names.clone(),
        class_names: data.class_names.clone(),
        imputer,
        scaler,
        metrics: None,
        feature_importance: Vec::new(),
        data_fingerprint: fit_data.fingerprint(),
        model,
    };
    // Importance over up to 200 evenly spaced training rows (in model space).
    let step = (ds.n_rows() / 200).max(1);
    let idx: Vec<usize> = (0..ds.n_rows()).step_by(step).collect();
    art.feature_importance = art
        .model
        .classifier()
        .feature_importance(&ds.x.select_rows(&idx))?;
    let eval = valid.as_ref().unwrap_or(&fit_data);
    if eval.n_rows() > 0 {
        art.metrics = Some(ArtifactMetrics {
            split,
            report: art.evaluate(eval)?,
        });
    }
    Ok(art)
}

fn config_json(pipe: &Pipeline, kind: ModelKind, model_params: Value) -> Value {
    serde_json::json!({
        "kind": kind,
        "standardize": pipe.standardize,
        "impute": pipe.impute,
        "validation_fraction": pipe.validation_fraction,
        "model": model_params,
    })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl ModelArtifact {
    fn classifier(&self) -> &dyn Classifier {
        self.model.classifier()
    }

    /// Imputes and scales raw rows into the model's space; checks width and finiteness.
    pub fn transform(&self, rows: &Matrix) -> Result<Matrix> {
        self.check_width(rows)?;
        let mut x = match &self.imputer {
            Some(i) => i.transform(rows)?,
            None => rows.clone(),
        };
        check_finite(&x, &self.feature_names)?;
        if let Some(s) = &self.scaler {
            for i in 0..x.rows {
                s.transform_row(x.row_mut(i));
            }
        }
        Ok(x)
    }

    /// One raw row into the model's space, in `out` (row index `i` for error messages).
    #[inline]
    fn prepare_row(&self, row: &[f64], i: usize, out: &mut [f64]) -> Result<()> {
        out.copy_from_slice(row);
        if let Some(imp) = &self.imputer {
            imp.transform_row(out);
        }
        if let Some(j) = out.iter().position(|v| !v.is_finite()) {
            return Err(MlError::NonFinite {
                feature: self.feature_names[j].clone(),
                row: i,
                value: out[j],
            });
        }
        if let Some(s) = &self.scaler {
            s.transform_row(out);
        }
        Ok(())
    }

    fn check_width(&self, rows: &Matrix) -> Result<()> {
        if rows.cols != self.feature_names.len() {
            return Err(MlError::ColumnMismatch {
                expected: self.feature_names.len(),
                got: rows.cols,
                context: format!(" (features {:?})", self.feature_names),
            });
        }
        Ok(())
    }

    /// Streams raw rows through the pipeline (one scratch row, no copy of the matrix).
    fn per_row(&self, rows: &Matrix, mut f: impl FnMut(usize, &[f64]) -> Result<()>) -> Result<()> {
        self.check_width(rows)?;
        let mut z = vec![0.0; rows.cols];
        for i in 0..rows.rows {
            self.prepare_row(rows.row(i), i, &mut z)?;
            f(i, &z)?;
        }
        Ok(())
    }

    /// Predicted class ids of raw rows.
    pub fn predict(&self, rows: &Matrix) -> Result<Vec<usize>> {
        let m = self.classifier();
        let mut out = Vec::with_capacity(rows.rows);
        self.per_row(rows, |_, z| {
            out.push(m.predict_row(z));
            Ok(())
        })?;
        Ok(out)
    }

    /// Predicted class names of raw rows.
    pub fn predict_labels(&self, rows: &Matrix) -> Result<Vec<String>> {
        Ok(self
            .predict(rows)?
            .into_iter()
            .map(|c| self.class_names[c].clone())
            .collect())
    }

    /// Class probabilities of raw rows (columns in `class_names` order). SVMs need
    /// `probability: true`, else [`MlError::NoProbability`].
    pub fn predict_proba(&self, rows: &Matrix) -> Result<Matrix> {
        let m = self.classifier();
        let k = m.n_classes();
        let mut out = Matrix::zeros(rows.rows, k);
        self.per_row(rows, |i, z| {
            m.proba_row(z, &mut out.data[i * k..(i + 1) * k])
        })?;
        Ok(out)
    }

    /// Class scores (logits or decision values; higher = more likely) of raw rows.
    pub fn decision_scores(&self, rows: &Matrix) -> Result<Matrix> {
        let m = self.classifier();
        let k = m.n_classes();
        let mut out = Matrix::zeros(rows.rows, k);
        self.per_row(rows, |i, z| {
            m.scores_row(z, &mut out.data[i * k..(i + 1) * k]);
            Ok(())
        })?;
        Ok(out)
    }

    /// Metrics on a labelled data set with the same features and classes.
    pub fn evaluate(&self, data: &Dataset) -> Result<Report> {
        if data.class_names != self.class_names {
            return Err(bad_param(
                "class_names",
                format!(
                    "evaluation classes {:?} differ from the model's {:?}",
                    data.class_names, self.class_names
                ),
            ));
        }
        let m = self.classifier();
        let k = m.n_classes();
        let n = data.n_rows();
        let mut pred = Vec::with_capacity(n);
        let mut scores = Matrix::zeros(n, k);
        let mut proba = Some(Matrix::zeros(n, k));
        let mut p = vec![0.0; k];
        self.per_row(&data.x, |i, z| {
            let sc = &mut scores.data[i * k..(i + 1) * k];
            let want_p = proba.is_some();
            match m.predict_with_scores(z, sc, want_p.then_some(&mut p[..])) {
                Ok(c) => pred.push(c),
                Err(MlError::NoProbability) => {
                    proba = None;
                    pred.push(m.predict_with_scores(z, sc, None)?);
                }
                Err(e) => return Err(e),
            }
            if let Some(pm) = proba.as_mut() {
                pm.data[i * k..(i + 1) * k].copy_from_slice(&p);
            }
            Ok(())
        })?;
        // Ranking metrics use probabilities when the model has them, else its scores.
        let scores = proba.clone().unwrap_or(scores);
        Ok(metrics::report(
            &data.y,
            &pred,
            self.class_names.len(),
            metrics::normal_class(&self.class_names),
            Some(&scores),
            proba.as_ref(),
        ))
    }

    /// The top-`k` features behind the prediction of one raw row.
    pub fn explain(&self, row: &[f64], k: usize) -> Result<Explanation> {
        let raw = Matrix::new(1, row.len(), row.to_vec()).map_err(|_| MlError::ColumnMismatch {
            expected: self.feature_names.len(),
            got: row.len(),
            context: String::new(),
        })?;
        let x = self.transform(&raw)?;
        let m = self.classifier();
        let (c, contrib) = m.contributions(x.row(0));
        let mut probs = vec![0.0; m.n_classes()];
        let probabilities = m.proba_row(x.row(0), &mut probs).ok().map(|_| probs);
        let mut order: Vec<usize> = (0..contrib.len()).collect();
        order.sort_by(|&a, &b| contrib[b].abs().total_cmp(&contrib[a].abs()));
        let top: Vec<Contribution> = order
            .iter()
            .take(k)
            .map(|&j| Contribution {
                feature: self.feature_names[j].clone(),
                value: row[j],
                contribution: contrib[j],
            })
            .collect();
        let rest = order.iter().skip(k).map(|&j| contrib[j]).sum();
        let space = if self.scaler.is_some() {
            "standardised space"
        } else {
            "raw feature space"
        };
        let method = match &self.model {
            FittedModel::Logistic(_) | FittedModel::LinearSvc(_) => {
                format!(
                    "exact linear: w·(x − training mean) toward the predicted class's score, {space}"
                )
            }
            FittedModel::Svc(s) if s.has_probability() => format!(
                "occlusion: drop of the predicted class's probability when the feature is set to its training mean, {space}"
            ),
            FittedModel::Svc(_) => format!(
                "occlusion: drop of the predicted class's decision score when the feature is set to its training mean, {space}"
            ),
        };
        Ok(Explanation {
            predicted: c,
            class_name: self.class_names[c].clone(),
            probabilities,
            method,
            top,
            rest,
        })
    }

    /// Global importance: (feature, mean |contribution|), largest first.
    pub fn importance(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .feature_names
            .iter()
            .cloned()
            .zip(self.feature_importance.iter().copied())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// JSON text of the artefact.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| MlError::Artifact(e.to_string()))
    }

    /// Parses an artefact; rejects unknown format versions.
    pub fn from_json(s: &str) -> Result<Self> {
        let a: ModelArtifact =
            serde_json::from_str(s).map_err(|e| MlError::Artifact(e.to_string()))?;
        a.check_version()?;
        a.check_shape()?;
        Ok(a)
    }

    /// Writes the artefact as JSON.
    pub fn save<W: Write>(&self, w: W) -> Result<()> {
        serde_json::to_writer(w, self).map_err(|e| MlError::Artifact(e.to_string()))
    }

    /// Reads an artefact written by [`ModelArtifact::save`].
    pub fn load<R: Read>(r: R) -> Result<Self> {
        let a: ModelArtifact =
            serde_json::from_reader(r).map_err(|e| MlError::Artifact(e.to_string()))?;
        a.check_version()?;
        a.check_shape()?;
        Ok(a)
    }

    /// Checks that the parts of a parsed artefact fit together (widths, class counts, support
    /// vector indices), so that predicting with it cannot index out of bounds. An artefact comes
    /// from outside (`POST /api/v1/models`, `--model FILE`): found by the model_artifact fuzz
    /// target, an SVM pair pointing past its support vectors panicked in `predict`.
    fn check_shape(&self) -> Result<()> {
        let bad = |what: String| Err(MlError::Artifact(format!("inconsistent artefact: {what}")));
        let n = self.feature_names.len();
        let k = self.class_names.len();
        if n == 0 || k < 2 {
            return bad(format!("{n} features and {k} classes (needs ≥ 1 and ≥ 2)"));
        }
        let width = |what: &str, len: usize| {
            if len == n {
                Ok(())
            } else {
                bad(format!("{what} has {len} entries for {n} features"))
            }
        };
        if let Some(i) = &self.imputer {
            width("imputer.fill", i.fill.len())?;
        }
        if let Some(sc) = &self.scaler {
            width("scaler.mean", sc.mean.len())?;
            width("scaler.scale", sc.scale.len())?;
        }
        if !self.feature_importance.is_empty() {
            width("feature_importance", self.feature_importance.len())?;
        }
        // Linear models: one row of weights for two classes, else one per class.
        let linear = |nf: usize, nc: usize, coef: usize, intercept: usize, baseline: usize| {
            let rows = if nc == 2 { 1 } else { nc };
            if nf != n || nc != k {
                bad(format!(
                    "the model has {nf} features and {nc} classes, the artefact {n} and {k}"
                ))
            } else if Some(coef) != rows.checked_mul(n) || intercept != rows {
                bad(format!(
                    "{coef} weights and {intercept} intercepts for {rows} × {n}"
                ))
            } else {
                width("model.baseline", baseline)
            }
        };
        match &self.model {
            FittedModel::Logistic(m) => linear(
                m.n_features,
                m.n_classes,
                m.coef.len(),
                m.intercept.len(),
                m.baseline.len(),
            ),
            FittedModel::LinearSvc(m) => {
                linear(
                    m.n_features,
                    m.n_classes,
                    m.coef.len(),
                    m.intercept.len(),
                    m.baseline.len(),
                )?;
                match &m.platt {
                    Some(p) if p.len() != m.intercept.len() => bad(format!(
                        "{} Platt sigmoids for {} binary problems",
                        p.len(),
                        m.intercept.len()
                    )),
                    _ => Ok(()),
                }
            }
            FittedModel::Svc(m) => {
                let sv = &m.support_vectors;
                if m.n_features != n || m.n_classes != k {
                    return bad(format!(
                        "the model has {} features and {} classes, the artefact {n} and {k}",
                        m.n_features, m.n_classes
                    ));
                }
                if sv.cols != n || Some(sv.data.len()) != sv.rows.checked_mul(sv.cols) {
                    return bad(format!(
                        "support vectors: {} × {} with {} values for {n} features",
                        sv.rows,
                        sv.cols,
                        sv.data.len()
                    ));
                }
                if m.sv_norms.len() != sv.rows {
                    return bad(format!(
                        "{} norms for {} support vectors",
                        m.sv_norms.len(),
                        sv.rows
                    ));
                }
                width("model.baseline", m.baseline.len())?;
                if m.pairs.is_empty() {
                    return bad("an SVM without pairs".into());
                }
                for (i, p) in m.pairs.iter().enumerate() {
                    if p.a >= k || p.b >= k || p.a == p.b {
                        return bad(format!("pairs[{i}] is classes {} and {}", p.a, p.b));
                    }
                    if p.sv.len() != p.coef.len() {
                        return bad(format!(
                            "pairs[{i}] has {} support vectors and {} coefficients",
                            p.sv.len(),
                            p.coef.len()
                        ));
                    }
                    if let Some(j) = p.sv.iter().find(|&&j| j as usize >= sv.rows) {
                        return bad(format!(
                            "pairs[{i}] names support vector {j} of {}",
                            sv.rows
                        ));
                    }
                    if let Some(w) = &p.w {
                        width(&format!("pairs[{i}].w"), w.len())?;
                    }
                }
                Ok(())
            }
        }
    }

    fn check_version(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(MlError::Artifact(format!(
                "format version {} is not supported (this library reads {FORMAT_VERSION})",
                self.version
            )));
        }
        Ok(())
    }
}

/// What a cross-validation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    #[default]
    Accuracy,
    MacroF1,
}

/// Score of `params` on each of `folds` stratified folds.
pub fn cross_validate(
    kind: ModelKind,
    params: &Value,
    data: &Dataset,
    folds: usize,
    seed: u64,
    scoring: Scoring,
) -> Result<Vec<f64>> {
    let (pipe, model_params) = split_params(params)?;
    stratified_kfold(&data.y, folds, seed)?
        .iter()
        .map(|(tr, te)| {
            let (imp, sc, ds) = fit_pipeline(&pipe, &data.select(tr))?;
            let model = fit_model(kind, model_params.clone(), &ds)?;
            let test = data.select(te);
            let mut x = match &imp {
                Some(i) => i.transform(&test.x)?,
                None => test.x.clone(),
            };
            check_finite(&x, &test.feature_names)?;
            if let Some(s) = &sc {
                x = s.transform(&x)?;
            }
            let pred = model.classifier().predict(&x)?;
            Ok(match scoring {
                Scoring::Accuracy => metrics::accuracy(&test.y, &pred),
                Scoring::MacroF1 => {
                    let per = metrics::per_class(&test.y, &pred, data.n_classes());
                    let present: Vec<f64> =
                        per.iter().filter(|c| c.support > 0).map(|c| c.f1).collect();
                    present.iter().sum::<f64>() / present.len().max(1) as f64
                }
            })
        })
        .collect()
}

/// One grid point's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    pub params: Value,
    pub mean: f64,
    pub std: f64,
    pub fold_scores: Vec<f64>,
}

/// Result of [`grid_search`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSearchResult {
    pub best_params: Value,
    pub best_score: f64,
    /// Every grid point, in grid order.
    pub results: Vec<GridPoint>,
}

/// Exhaustive search over the cartesian product of `grid` (e.g. `{"c": [0.1, 1, 10],
/// "gamma": [0.01, 0.1]}` or `{"lambda": [...]}`) merged into `base`, scored by stratified
/// k-fold cross-validation. Ties keep the first point.
pub fn grid_search(
    kind: ModelKind,
    base: &Value,
    grid: &BTreeMap<String, Vec<Value>>,
    data: &Dataset,
    folds: usize,
    seed: u64,
    scoring: Scoring,
) -> Result<GridSearchResult> {
    let base = params_object(base)?;
    if let Some((k, _)) = grid.iter().find(|(_, v)| v.is_empty()) {
        return Err(bad_param(k, "grid has no values"));
    }
    let keys: Vec<&String> = grid.keys().collect();
    let total: usize = grid.values().map(Vec::len).product();
    let mut results = Vec::with_capacity(total);
    for mut n in 0..total {
        let mut p = base.clone();
        for k in &keys {
            let vals = &grid[*k];
            p.insert((*k).clone(), vals[n % vals.len()].clone());
            n /= vals.len();
        }
        let p = Value::Object(p);
        let s = cross_validate(kind, &p, data, folds, seed, scoring)?;
        let mean = s.iter().sum::<f64>() / s.len() as f64;
        let std = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
        results.push(GridPoint {
            params: p,
            mean,
            std,
            fold_scores: s,
        });
    }
    let best = results
        .iter()
        .enumerate()
        .fold(0, |b, (i, r)| if r.mean > results[b].mean { i } else { b });
    Ok(GridSearchResult {
        best_params: results[best].params.clone(),
        best_score: results[best].mean,
        results,
    })
}
