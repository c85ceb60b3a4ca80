//! The variational auto-encoder (docs/NN.md): q_φ(z|x) gives μ and log σ², z = μ + σ·ε,
//! p_θ(x|z) reconstructs, loss = reconstruction + β·KL(q_φ(z|x) ‖ N(0, I)).
//!
//! Tables (sensor values, windows) use the MLP with a Gaussian reconstruction term
//! ½‖x − x̂‖² on standardised features; images use the conv VAE with a Bernoulli (binary cross
//! entropy) term over pixels. The anomaly score is the negative ELBO at z = μ (or the
//! reconstruction term alone); the threshold is fitted on a held-out normal split.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::codec::{b64_decode, b64_encode, load_module, module_bytes};
use crate::data::{ImageSet, Scaler, Table, fingerprint, normals, permutation, rng, split};
use crate::error::{NnError, Result, bad_param};
use crate::fit::{Checkpoint, EpochReport, INIT_LOCK, TrainHooks};
use crate::nets::{ConvVae, MlpVae, VaeNet};
use crate::threshold::{Threshold, ThresholdMethod};

/// What the anomaly score is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// Negative ELBO at z = μ: reconstruction + β·KL.
    #[default]
    Elbo,
    /// The reconstruction term only.
    Recon,
}

/// Hyper-parameters (serde; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeParams {
    /// MLP hidden layer sizes (encoder; the decoder mirrors them). Conv VAE: the dense layer.
    pub hidden: Vec<usize>,
    pub z_dim: usize,
    pub beta: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Fraction of the (normal) rows held out for early stopping and the threshold.
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation loss (0: never stop early).
    pub patience: usize,
    pub score: ScoreKind,
    pub threshold: ThresholdMethod,
    /// Standardise table features (mean 0, std 1 on the training split).
    pub standardize: bool,
}

impl Default for VaeParams {
    fn default() -> Self {
        Self {
            hidden: vec![128],
            z_dim: 16,
            beta: 1.0,
            epochs: 50,
            batch_size: 256,
            learning_rate: 1e-3,
            seed: 0,
            validation_fraction: 0.2,
            patience: 10,
            score: ScoreKind::Elbo,
            threshold: ThresholdMethod::default(),
            standardize: true,
        }
    }
}

impl VaeParams {
    /// From JSON (`{}` gives the defaults).
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(v.clone()).map_err(|e| bad_param("params", e.to_string()))
    }
    pub fn check(&self) -> Result<()> {
        if self.z_dim == 0 {
            return Err(bad_param("z_dim", "must be at least 1"));
        }
        if self.hidden.contains(&0) {
            return Err(bad_param("hidden", "layer sizes must be at least 1"));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(bad_param("beta", format!("{} must be ≥ 0", self.beta)));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(bad_param("epochs/batch_size", "must be at least 1"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(bad_param(
                "learning_rate",
                format!("{} must be > 0", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(bad_param(
                "validation_fraction",
                format!("{} is not in [0, 1)", self.validation_fraction),
            ));
        }
        self.threshold.check()
    }
}

/// What the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputSpec {
    Table {
        features: Vec<String>,
    },
    Image {
        channels: usize,
        height: usize,
        width: usize,
    },
}

impl InputSpec {
    pub fn dim(&self) -> usize {
        match self {
            Self::Table { features } => features.len(),
            Self::Image {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }
    fn chw(&self) -> [usize; 3] {
        match self {
            Self::Table { features } => [1, 1, features.len()],
            Self::Image {
                channels,
                height,
                width,
            } => [*channels, *height, *width],
        }
    }
    fn is_image(&self) -> bool {
        matches!(self, Self::Image { .. })
    }
}

/// The per-row terms of the negative ELBO: (reconstruction, KL), each `[batch]`.
///
/// `out` holds Gaussian means for tables (term ½‖x − out‖²) and Bernoulli logits for images
/// (term Σ BCE(sigmoid(out), x), computed stably from the logits).
pub fn elbo_terms(
    x: Tensor<2>,
    out: Tensor<2>,
    mu: Tensor<2>,
    logvar: Tensor<2>,
    bernoulli: bool,
) -> (Tensor<1>, Tensor<1>) {
    let b = x.dims()[0];
    let rec = if bernoulli {
        // max(l, 0) − x·l + log(1 + e^{−|l|})
        relu(out.clone()) - x * out.clone() + out.abs().neg().exp().log1p()
    } else {
        (x - out).square().mul_scalar(0.5)
    };
    let kl = (mu.square() + logvar.clone().exp() - logvar - 1.0).mul_scalar(0.5);
    (rec.sum_dim(1).reshape([b]), kl.sum_dim(1).reshape([b]))
}

fn tensor2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn vec1(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| NnError::Backend(format!("{e:?}")))
}

fn build_net(spec: &InputSpec, p: &VaeParams, device: &Device) -> VaeNet {
    match spec {
        InputSpec::Table { features } => {
            VaeNet::Mlp(MlpVae::new(features.len(), &p.hidden, p.z_dim, device))
        }
        InputSpec::Image { .. } => VaeNet::Conv(ConvVae::new(
            spec.chw(),
            p.hidden.first().copied().unwrap_or(128),
            p.z_dim,
            device,
        )),
    }
}

/// A trained VAE: architecture, weights, scaler, threshold and training history.
#[derive(Debug, Clone)]
pub struct Vae {
    pub params: VaeParams,
    pub input: InputSpec,
    pub scaler: Option<Scaler>,
    pub threshold: Threshold,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub data_fingerprint: String,
    pub created_at: String,
    net: VaeNet,
    device: Device,
}

/// Scores of a batch with their explanation material.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Anomaly score per row.
    pub score: Vec<f64>,
    /// Per row and feature (or pixel value) the squared reconstruction error, row-major
    /// `[rows, d]` (standardised units for tables; probabilities for images).
    pub error: Vec<f32>,
    pub d: usize,
}

/// The features (or pixels) that explain one score: (name, squared error), largest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VaeExplanation {
    pub score: f64,
    pub threshold: f64,
    pub anomaly: bool,
    pub top: Vec<(String, f64)>,
}

impl Vae {
    /// Trains the MLP VAE on the rows of a table (normal operation only).
    pub fn fit_table(params: &VaeParams, data: &Table, hooks: TrainHooks<'_>) -> Result<Self> {
        if data.rows() < 2 {
            return Err(NnError::EmptyData(format!(
                "{} rows: the VAE needs at least 2",
                data.rows()
            )));
        }
        let spec = InputSpec::Table {
            features: data.names().to_vec(),
        };
        let (train_idx, _) = split(data.rows(), params.validation_fraction, params.seed);
        let scaler = params
            .standardize
            .then(|| Scaler::fit(&data.select(&train_idx)));
        let x = match &scaler {
            Some(s) => s.transform(data.data()),
            None => data.data().to_vec(),
        };
        fit(params, spec, scaler, x, data.rows(), hooks)
    }

    /// Trains the conv VAE on images (normal ones only); H and W must be multiples of 4.
    pub fn fit_images(params: &VaeParams, data: &ImageSet, hooks: TrainHooks<'_>) -> Result<Self> {
        if data.n < 2 {
            return Err(NnError::EmptyData(format!(
                "{} images: the VAE needs at least 2",
                data.n
            )));
        }
        if !data.height.is_multiple_of(4) || !data.width.is_multiple_of(4) {
            return Err(NnError::Shape {
                expected: "height and width multiples of 4 (two stride-2 convolutions)".into(),
                got: format!("{}×{}", data.height, data.width),
            });
        }
        let spec = InputSpec::Image {
            channels: data.channels,
            height: data.height,
            width: data.width,
        };
        fit(params, spec, None, data.data().to_vec(), data.n, hooks)
    }

    /// Raw values per row (table: features in `feature_names` order; image: C·H·W in [0, 1]).
    pub fn dim(&self) -> usize {
        self.input.dim()
    }

    /// Feature names (tables) or `c{k}_y{i}_x{j}` (images).
    pub fn feature_names(&self) -> Vec<String> {
        match &self.input {
            InputSpec::Table { features } => features.clone(),
            InputSpec::Image {
                channels,
                height,
                width,
            } => {
                let mut v = Vec::with_capacity(self.dim());
                for c in 0..*channels {
                    for y in 0..*height {
                        for x in 0..*width {
                            v.push(format!("c{c}_y{y}_x{x}"));
                        }
                    }
                }
                v
            }
        }
    }

    fn check_rows(&self, rows: &[f32]) -> Result<usize> {
        let d = self.dim();
        if rows.is_empty() {
            return Err(NnError::EmptyData("nothing to score".into()));
        }
        if !rows.len().is_multiple_of(d) {
            return Err(NnError::Shape {
                expected: format!("rows of {d} values ({:?})", self.input_shape()),
                got: format!("{} values", rows.len()),
            });
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            let names = self.feature_names();
            return Err(NnError::NonFinite {
                row: i / d,
                feature: names[i % d].clone(),
                value: f64::from(rows[i]),
            });
        }
        Ok(rows.len() / d)
    }

    fn input_shape(&self) -> String {
        match &self.input {
            InputSpec::Table { features } => format!("{} features", features.len()),
            InputSpec::Image {
                channels,
                height,
                width,
            } => format!("images {height}×{width}×{channels}"),
        }
    }

    /// Scores raw rows (row-major, `dim()` values each), in batches of 1024.
    pub fn score(&self, rows: &[f32]) -> Result<Scored> {
        let n = self.check_rows(rows)?;
        let d = self.dim();
        let x = match &self.scaler {
            Some(s) => s.transform(rows),
            None => rows.to_vec(),
        };
        let mut score = Vec::with_capacity(n);
        let mut error = Vec::with_capacity(n * d);
        for chunk in x.chunks(1024 * d) {
            let b = chunk.len() / d;
            let (s, e) = score_batch(
                &self.net,
                &self.params,
                &self.input,
                chunk.to_vec(),
                b,
                &self.device,
            )?;
            score.extend(s);
            error.extend(e);
        }
        Ok(Scored { score, error, d })
    }

    /// Scores only (no error matrix copied out).
    pub fn scores(&self, rows: &[f32]) -> Result<Vec<f64>> {
        Ok(self.score(rows)?.score)
    }

    /// Whether each row is an anomaly (score above the learned threshold).
    pub fn is_anomaly(&self, rows: &[f32]) -> Result<Vec<bool>> {
        Ok(self
            .scores(rows)?
            .into_iter()
            .map(|s| s > self.threshold.value)
            .collect())
    }

    /// The `k` features (or pixels) with the largest reconstruction error for one row.
    pub fn explain(&self, row: &[f32], k: usize) -> Result<VaeExplanation> {
        let s = self.score(row)?;
        if s.score.len() != 1 {
            return Err(NnError::Shape {
                expected: format!("one row of {} values", self.dim()),
                got: format!("{} rows", s.score.len()),
            });
        }
        let names = self.feature_names();
        let mut top: Vec<(String, f64)> = names
            .into_iter()
            .zip(s.error.iter().map(|&e| f64::from(e)))
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(k);
        Ok(VaeExplanation {
            score: s.score[0],
            threshold: self.threshold.value,
            anomaly: s.score[0] > self.threshold.value,
            top,
        })
    }

    /// Per-pixel heat map (H × W, squared error summed over channels) of one image.
    pub fn heat_map(&self, image: &[f32]) -> Result<Vec<f32>> {
        Ok(self.score_image(image)?.1)
    }

    /// The anomaly score of one image (C·H·W values in [0, 1]) and its per-pixel heat map (H × W,
    /// squared error summed over channels), from one forward pass.
    pub fn score_image(&self, image: &[f32]) -> Result<(f64, Vec<f32>)> {
        let InputSpec::Image {
            channels,
            height,
            width,
        } = self.input
        else {
            return Err(NnError::WrongKind {
                expected: "image VAE".into(),
                got: "table VAE".into(),
            });
        };
        let s = self.score(image)?;
        if s.score.len() != 1 {
            return Err(NnError::Shape {
                expected: "one image".into(),
                got: format!("{} images", s.score.len()),
            });
        }
        let hw = height * width;
        let mut map = vec![0f32; hw];
        for c in 0..channels {
            for (m, e) in map.iter_mut().zip(&s.error[c * hw..(c + 1) * hw]) {
                *m += e;
            }
        }
        Ok((s.score[0], map))
    }

    /// Decodes latent draws z ~ N(0, I) into new rows (raw units), `n` of them.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f32>> {
        let z = normals(&mut rng(seed, 7), n * self.params.z_dim);
        let zt = tensor2(z, [n, self.params.z_dim], &self.device);
        let out = self.net.decode(zt, self.input.chw());
        let out = if self.input.is_image() {
            sigmoid(out)
        } else {
            out
        };
        let d = self.dim();
        let mut v = vec1(out.reshape([n * d]))?;
        if let Some(s) = &self.scaler {
            for (i, x) in v.iter_mut().enumerate() {
                *x = *x * s.scale[i % d] + s.mean[i % d];
            }
        }
        Ok(v)
    }

    /// The artefact (JSON, the model registry's format: `kind`, `feature_names`, `class_names`).
    pub fn to_artifact(&self) -> Result<NnArtifact> {
        let weights = b64_encode(&module_bytes(self.net.clone())?);
        Ok(NnArtifact {
            kind: "vae".into(),
            version: ARTIFACT_VERSION,
            library_version: env!("CARGO_PKG_VERSION").into(),
            created_at: self.created_at.clone(),
            feature_names: match &self.input {
                InputSpec::Table { features } => features.clone(),
                InputSpec::Image { .. } => vec!["image".into()],
            },
            class_names: vec!["normal".into(), "anomaly".into()],
            input: self.input.clone(),
            config: serde_json::to_value(&self.params)
                .map_err(|e| NnError::Artifact(e.to_string()))?,
            scaler: self.scaler.clone(),
            threshold: Some(self.threshold.clone()),
            metrics: serde_json::json!({
                "split": "validation (normal rows held out)",
                "best_epoch": self.best_epoch,
                "threshold": self.threshold.value,
                "val_loss": self.history.get(self.best_epoch.saturating_sub(1)).and_then(|h| h.val_loss),
            }),
            history: self.history.clone(),
            data_fingerprint: self.data_fingerprint.clone(),
            extra: serde_json::Value::Null,
            weights,
        })
    }

    /// Writes the artefact as JSON.
    pub fn save<W: std::io::Write>(&self, w: W) -> Result<()> {
        serde_json::to_writer(w, &self.to_artifact()?).map_err(|e| NnError::Artifact(e.to_string()))
    }

    pub fn to_json(&self) -> Result<String> {
        self.to_artifact()?.to_json()
    }

    /// Reads an artefact written by [`Vae::save`].
    pub fn load<R: std::io::Read>(r: R) -> Result<Self> {
        let a: NnArtifact =
            serde_json::from_reader(r).map_err(|e| NnError::Artifact(e.to_string()))?;
        Self::from_artifact(a)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        Self::load(text.as_bytes())
    }

    pub fn from_artifact(a: NnArtifact) -> Result<Self> {
        a.check_version()?;
        if a.kind != "vae" {
            return Err(NnError::WrongKind {
                expected: "vae".into(),
                got: a.kind,
            });
        }
        let params = VaeParams::from_json(&a.config)?;
        let device = crate::device();
        let net = build_net(&a.input, &params, &device);
        let net = load_module(net, b64_decode(&a.weights)?)?;
        Ok(Self {
            params,
            input: a.input,
            scaler: a.scaler,
            threshold: a
                .threshold
                .ok_or_else(|| NnError::Artifact("the VAE artefact has no threshold".into()))?,
            best_epoch: a
                .metrics
                .get("best_epoch")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as usize,
            history: a.history,
            data_fingerprint: a.data_fingerprint,
            created_at: a.created_at,
            net,
            device,
        })
    }
}

/// Format version of [`NnArtifact`].
pub const ARTIFACT_VERSION: u32 = 1;

/// The stored form of a gemba-nn model (VAE or GAN): JSON with the fields the model registry
/// reads (`kind`, `feature_names`, `class_names`, `created_at`, `metrics`, `data_fingerprint`)
/// and the weights as base64 burnpack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NnArtifact {
    pub kind: String,
    pub version: u32,
    pub library_version: String,
    pub created_at: String,
    pub feature_names: Vec<String>,
    pub class_names: Vec<String>,
    pub input: InputSpec,
    pub config: serde_json::Value,
    pub scaler: Option<Scaler>,
    pub threshold: Option<Threshold>,
    pub metrics: serde_json::Value,
    pub history: Vec<EpochReport>,
    pub data_fingerprint: String,
    /// Model-specific fields (a GAN's second network, its classes).
    #[serde(default)]
    pub extra: serde_json::Value,
    pub weights: String,
}

impl NnArtifact {
    pub(crate) fn check_version(&self) -> Result<()> {
        if self.version != ARTIFACT_VERSION {
            return Err(NnError::Artifact(format!(
                "format version {} (this build reads {ARTIFACT_VERSION})",
                self.version
            )));
        }
        Ok(())
    }

    /// An artefact of `kind` read from JSON: the format version and the kind checked.
    pub(crate) fn parse_kind(text: &str, kind: &str) -> Result<Self> {
        let a: NnArtifact =
            serde_json::from_str(text).map_err(|e| NnError::Artifact(e.to_string()))?;
        a.check_version()?;
        if a.kind != kind {
            return Err(NnError::WrongKind {
                expected: kind.into(),
                got: a.kind,
            });
        }
        Ok(a)
    }

    /// The discriminator's weights of a GAN artefact (base64).
    pub(crate) fn discriminator_weights(&self) -> Result<&str> {
        self.extra
            .get("discriminator")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| NnError::Artifact("no discriminator weights".into()))
    }

    pub(crate) fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| NnError::Artifact(e.to_string()))
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// (scores, squared errors) of one batch of transformed rows on the inference device.
fn score_batch(
    net: &VaeNet,
    p: &VaeParams,
    spec: &InputSpec,
    x: Vec<f32>,
    b: usize,
    device: &Device,
) -> Result<(Vec<f64>, Vec<f32>)> {
    let d = spec.dim();
    let xt = tensor2(x, [b, d], device);
    let (mu, logvar) = net.encode(xt.clone(), spec.chw());
    let out = net.decode(mu.clone(), spec.chw());
    let recon_out = if spec.is_image() {
        sigmoid(out.clone())
    } else {
        out.clone()
    };
    let err = (xt.clone() - recon_out).square();
    let (rec, kl) = elbo_terms(xt, out, mu, logvar, spec.is_image());
    let s = match p.score {
        ScoreKind::Elbo => rec + kl.mul_scalar(p.beta),
        ScoreKind::Recon => rec,
    };
    let scores = vec1(s)?.into_iter().map(f64::from).collect();
    let err = vec1(err.reshape([b * d]))?;
    Ok((scores, err))
}

fn run_id(p: &VaeParams, spec: &InputSpec, x: &[f32]) -> String {
    let cfg = serde_json::to_string(&(p, spec)).unwrap_or_default();
    let mut all: Vec<f32> = x.to_vec();
    all.extend(cfg.bytes().map(f32::from));
    fingerprint(&all)
}

fn fit(
    p: &VaeParams,
    spec: InputSpec,
    scaler: Option<Scaler>,
    x: Vec<f32>,
    n: usize,
    mut hooks: TrainHooks<'_>,
) -> Result<Vae> {
    p.check()?;
    let d = spec.dim();
    let chw = spec.chw();
    let bern = spec.is_image();
    let (train_idx, val_idx) = split(n, p.validation_fraction, p.seed);
    if train_idx.is_empty() {
        return Err(NnError::EmptyData(
            "no training rows after the validation split".into(),
        ));
    }
    let device = crate::device().autodiff();
    let mut net = {
        let _g = INIT_LOCK.lock();
        device.seed(p.seed);
        let net = build_net(&spec, p, &device);
        // Parameters are initialised lazily, on first use: draw them now, under the lock.
        module_bytes(net.clone())?;
        net
    };
    let mut optim = AdamConfig::new().init();
    let run = run_id(p, &spec, &x);
    let mut history: Vec<EpochReport> = Vec::new();
    let mut best_val = f64::INFINITY;
    let mut best_epoch = 0;
    let mut bad_epochs = 0;
    let mut best_bytes: Option<Vec<u8>> = None;
    let mut start = 0;
    if hooks.resume
        && let Some(path) = hooks.checkpoint.clone()
        && let Some(c) = Checkpoint::read(&path, "vae", &run)?
    {
        net = load_module(net, b64_decode(&c.modules[0])?)?;
        let ob = b64_decode(&c.optimizers[0])?;
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ob))
            .map_err(|e| NnError::Artifact(format!("optimizer state: {e:?}")))?;
        best_bytes = match c.best_modules.first() {
            Some(b) => Some(b64_decode(b)?),
            None => None,
        };
        history = c.history;
        best_val = c.best_val;
        best_epoch = c.best_epoch;
        bad_epochs = c.bad_epochs;
        start = c.epoch;
    }
    let gather = |idx: &[usize]| {
        let mut v = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            v.extend_from_slice(&x[i * d..(i + 1) * d]);
        }
        v
    };
    let val_x = gather(&val_idx);
    let plain = crate::device();
    for epoch in start..p.epochs {
        if p.patience > 0 && bad_epochs >= p.patience {
            break;
        }
        let t0 = Instant::now();
        let mut r = rng(p.seed, 1000 + epoch as u64);
        let perm = permutation(&mut r, train_idx.len());
        let (mut sum_rec, mut sum_kl) = (0f64, 0f64);
        for batch in perm.chunks(p.batch_size) {
            let b = batch.len();
            let idx: Vec<usize> = batch.iter().map(|&i| train_idx[i]).collect();
            let xb = tensor2(gather(&idx), [b, d], &device);
            let eps = tensor2(normals(&mut r, b * p.z_dim), [b, p.z_dim], &device);
            let (mu, logvar) = net.encode(xb.clone(), chw);
            let z = mu.clone() + logvar.clone().mul_scalar(0.5).exp() * eps;
            let out = net.decode(z, chw);
            let (rec, kl) = elbo_terms(xb, out, mu, logvar, bern);
            let (rs, ks) = (rec.clone().sum(), kl.clone().sum());
            let loss = (rec + kl.mul_scalar(p.beta)).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(p.learning_rate, net, grads);
            sum_rec += f64::from(rs.into_scalar::<f32>());
            sum_kl += f64::from(ks.into_scalar::<f32>());
        }
        let nt = train_idx.len() as f64;
        let (rec, kl) = (sum_rec / nt, sum_kl / nt);
        let val_loss = if val_idx.is_empty() {
            None
        } else {
            let eval = net.valid();
            let mut total = 0f64;
            let score_p = VaeParams {
                score: ScoreKind::Elbo,
                ..p.clone()
            };
            for chunk in val_x.chunks(1024 * d) {
                let (s, _) = score_batch(
                    &eval,
                    &score_p,
                    &spec,
                    chunk.to_vec(),
                    chunk.len() / d,
                    &plain,
                )?;
                total += s.iter().sum::<f64>();
            }
            Some(total / val_idx.len() as f64)
        };
        let monitored = val_loss.unwrap_or(rec + p.beta * kl);
        if !monitored.is_finite() {
            return Err(NnError::Backend(format!(
                "the loss became {monitored} in epoch {}; lower learning_rate",
                epoch + 1
            )));
        }
        if monitored < best_val {
            best_val = monitored;
            best_epoch = epoch + 1;
            bad_epochs = 0;
            best_bytes = Some(module_bytes(net.valid())?);
        } else {
            bad_epochs += 1;
        }
        let report = EpochReport {
            epoch: epoch + 1,
            epochs: p.epochs,
            loss: rec + p.beta * kl,
            part_a: rec,
            part_b: kl,
            val_loss,
            best_epoch,
            seconds: t0.elapsed().as_secs_f64(),
        };
        history.push(report.clone());
        hooks.report(&report);
        if let Some(path) = &hooks.checkpoint {
            Checkpoint {
                kind: "vae".into(),
                run: run.clone(),
                epoch: epoch + 1,
                history: history.clone(),
                best_epoch,
                best_val,
                bad_epochs,
                modules: vec![b64_encode(&module_bytes(net.valid())?)],
                optimizers: vec![b64_encode(
                    &optim
                        .into_bytes()
                        .map_err(|e| NnError::Backend(format!("{e:?}")))?,
                )],
                best_modules: best_bytes.iter().map(|b| b64_encode(b)).collect(),
            }
            .write(path)?;
        }
        if hooks.cancelled() {
            break;
        }
    }
    let net = build_net(&spec, p, &plain);
    let bytes = best_bytes.ok_or_else(|| NnError::EmptyData("no epoch was trained".into()))?;
    let net = load_module(net, bytes)?;
    // Threshold on the held-out normal rows (or, without a split, on the training rows).
    let calib = if val_idx.is_empty() {
        gather(&train_idx)
    } else {
        val_x
    };
    let mut scores = Vec::new();
    for chunk in calib.chunks(1024 * d) {
        let (s, _) = score_batch(&net, p, &spec, chunk.to_vec(), chunk.len() / d, &plain)?;
        scores.extend(s);
    }
    let threshold = Threshold::fit(p.threshold, &scores)?;
    Ok(Vae {
        params: p.clone(),
        input: spec,
        scaler,
        threshold,
        history,
        best_epoch,
        data_fingerprint: fingerprint(&x),
        created_at: now_rfc3339(),
        net,
        device: plain,
    })
}
