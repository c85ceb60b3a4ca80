//! Generative adversarial networks: min_G max_D E[log D(x)] + E[log(1 − D(G(z)))], trained with
//! the non-saturating generator loss −log D(G(z)); or, for the tabular GAN with `loss = "wgan-gp"`,
//! the Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic minimises
//! E[D(G(z))] − E[D(x)] + λ E[(‖∇ₓ D(x̂)‖₂ − 1)²] on random interpolates x̂ of real and generated
//! rows, the generator minimises −E[D(G(z))], the critic takes `n_critic` steps per generator step.
//! Burn's autodiff has no second-order derivatives, so the penalty's input gradient is written out:
//! for the critic's MLP with LeakyReLU, ∇ₓ D = W₁ (m₁ ⊙ W₂ (m₂ ⊙ W₃)) per row, with the LeakyReLU
//! slopes m as constants (their derivative is zero almost everywhere); that expression is linear in
//! each weight matrix, so ordinary backpropagation gives the penalty's gradient with respect to the
//! weights exactly.
//!
//! - [`TabularGan`]: a conditional GAN for rows (sensor windows) of a given machine state: the
//!   class enters G and D as a one-hot vector; used to generate rare states (failures) to
//!   augment classifiers' training data. Conditions are drawn uniformly over the classes during
//!   training, so a rare class gets as many generator steps as a common one.
//! - [`Dcgan`]: the seed's DCGAN for 16 × 16 × 3 images.
//!
//! The discriminator's logit is available as an anomaly score (`−logit`: low "realness").

use std::time::Instant;

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, softplus, tanh};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::codec::{b64_decode, b64_encode, load_module, module_bytes};
use crate::data::{ImageSet, Scaler, Table, fingerprint, normals, permutation, rng};
use crate::error::{NnError, Result, bad_param};
use crate::fit::{Checkpoint, EpochReport, INIT_LOCK, TrainHooks};
use crate::vae::{ARTIFACT_VERSION, InputSpec, NnArtifact, now_rfc3339};

/// Hyper-parameters of both GANs (serde; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GanParams {
    pub z_dim: usize,
    /// Hidden width of the tabular G and D (two layers each).
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Adam β₁ (0.5 as in DCGAN).
    pub beta1: f64,
    pub seed: u64,
    pub standardize: bool,
    /// `gan` (the non-saturating loss) or `wgan-gp` (tabular GAN only).
    pub loss: String,
    /// λ of the gradient penalty (`wgan-gp`).
    pub gp_lambda: f64,
    /// Critic steps per generator step (`wgan-gp`).
    pub n_critic: usize,
}

impl Default for GanParams {
    fn default() -> Self {
        Self {
            z_dim: 32,
            hidden: 128,
            epochs: 100,
            batch_size: 128,
            learning_rate: 2e-4,
            beta1: 0.5,
            seed: 0,
            standardize: true,
            loss: "gan".into(),
            gp_lambda: 10.0,
            n_critic: 5,
        }
    }
}

impl GanParams {
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        serde_json::from_value(v.clone()).map_err(|e| bad_param("params", e.to_string()))
    }
    pub fn check(&self) -> Result<()> {
        if self.z_dim == 0 || self.hidden == 0 || self.epochs == 0 || self.batch_size < 2 {
            return Err(bad_param(
                "z_dim/hidden/epochs/batch_size",
                "z_dim, hidden and epochs must be ≥ 1, batch_size ≥ 2",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(bad_param(
                "learning_rate",
                format!("{} must be > 0", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(bad_param(
                "beta1",
                format!("{} is not in [0, 1)", self.beta1),
            ));
        }
        if !matches!(self.loss.as_str(), "gan" | "wgan-gp") {
            return Err(bad_param(
                "loss",
                format!("{:?} is not gan or wgan-gp", self.loss),
            ));
        }
        if !(self.gp_lambda > 0.0 && self.gp_lambda.is_finite()) {
            return Err(bad_param(
                "gp_lambda",
                format!("{} must be > 0", self.gp_lambda),
            ));
        }
        if self.n_critic == 0 {
            return Err(bad_param("n_critic", "must be ≥ 1"));
        }
        Ok(())
    }

    fn wgan(&self) -> bool {
        self.loss == "wgan-gp"
    }
}

/// LeakyReLU as `a·x + (1 − a)·relu(x)`: the function and gradient of Burn's `leaky_relu`
/// (slope `a` below zero and at zero), without its masked select. On the flex backend that
/// select (`mask_where`, a data-dependent branch per element, forward and backward) took 18 % of
/// the tabular GAN's training time; `relu` and its backward are branch-free element-wise loops.
fn leaky_relu<const D: usize>(x: Tensor<D>, a: f64) -> Tensor<D> {
    relu(x.clone()).mul_scalar(1.0 - a) + x.mul_scalar(a)
}

fn t2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| NnError::Backend(format!("{e:?}")))
}

fn one_hot(classes: &[usize], k: usize) -> Vec<f32> {
    let mut v = vec![0f32; classes.len() * k];
    for (i, &c) in classes.iter().enumerate() {
        v[i * k + c] = 1.0;
    }
    v
}

/// Two hidden layers with LeakyReLU(0.2).
#[derive(Module, Debug)]
pub struct Mlp3 {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl Mlp3 {
    fn new(i: usize, h: usize, o: usize, device: &Device) -> Self {
        Self {
            l1: LinearConfig::new(i, h).init(device),
            l2: LinearConfig::new(h, h).init(device),
            l3: LinearConfig::new(h, o).init(device),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = leaky_relu(self.l1.forward(x), 0.2);
        let x = leaky_relu(self.l2.forward(x), 0.2);
        self.l3.forward(x)
    }

    /// The gradient of the (single) output with respect to the input, one row per input row,
    /// as a tensor expression in the weights (see the module documentation).
    fn input_gradient(&self, x: Tensor<2>) -> Tensor<2> {
        let slope = |h: Tensor<2>| {
            let pos = h.greater_elem(0.0).float().detach();
            pos.clone() + (pos.neg() + 1.0) * 0.2
        };
        let h1 = self.l1.forward(x);
        let m1 = slope(h1.clone());
        let h2 = self.l2.forward(leaky_relu(h1, 0.2));
        let m2 = slope(h2);
        // Weights are [in, out]: the gradient flows back through their transposes.
        let w3 = self.l3.weight.val().transpose(); // [1, h]
        let g2 = m2 * w3; // [b, h]
        let g1 = m1 * g2.matmul(self.l2.weight.val().transpose()); // [b, h]
        g1.matmul(self.l1.weight.val().transpose()) // [b, in]
    }
}

/// Critic loss E[D(fake)] − E[D(real)] and generator loss −E[D(fake)] of a Wasserstein GAN.
fn w_d_loss(real: Tensor<2>, fake: Tensor<2>) -> Tensor<1> {
    fake.mean() - real.mean()
}
fn w_g_loss(fake: Tensor<2>) -> Tensor<1> {
    fake.mean().neg()
}

/// λ E[(‖∇ₓ D(x̂)‖₂ − 1)²] over the first `d` columns (the row; the class one-hot is the condition).
fn gradient_penalty(dnet: &Mlp3, xhat: Tensor<2>, d: usize, lambda: f64) -> Tensor<1> {
    let g = dnet.input_gradient(xhat);
    let b = g.dims()[0];
    let g = g.slice([0..b, 0..d]);
    let norm = (g.clone() * g).sum_dim(1).add_scalar(1e-12).sqrt();
    (norm - 1.0).powi_scalar(2).mean() * lambda
}

/// D loss −log D(x) − log(1 − D(G(z))) and G loss −log D(G(z)) from logits.
fn d_loss(real: Tensor<2>, fake: Tensor<2>) -> Tensor<1> {
    softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean()
}
fn g_loss(fake: Tensor<2>) -> Tensor<1> {
    softplus(fake.neg(), 1.0).mean()
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// A trained conditional tabular GAN.
#[derive(Debug, Clone)]
pub struct TabularGan {
    pub params: GanParams,
    pub features: Vec<String>,
    pub classes: Vec<String>,
    pub scaler: Option<Scaler>,
    pub history: Vec<EpochReport>,
    pub data_fingerprint: String,
    pub created_at: String,
    generator: Mlp3,
    discriminator: Mlp3,
    device: Device,
}

impl TabularGan {
    /// Trains on the rows of `data` with their class ids (`labels[i] < classes.len()`).
    pub fn fit(
        params: &GanParams,
        data: &Table,
        labels: &[usize],
        classes: Vec<String>,
        mut hooks: TrainHooks<'_>,
    ) -> Result<Self> {
        params.check()?;
        let (n, d, k) = (data.rows(), data.cols(), classes.len());
        if n < 2 {
            return Err(NnError::EmptyData(format!(
                "{n} rows: the GAN needs at least 2"
            )));
        }
        if labels.len() != n {
            return Err(NnError::Shape {
                expected: format!("{n} labels (one per row)"),
                got: format!("{} labels", labels.len()),
            });
        }
        if let Some((i, &c)) = labels.iter().enumerate().find(|(_, c)| **c >= k) {
            return Err(NnError::Shape {
                expected: format!("class ids below {k}"),
                got: format!("{c} in row {i}"),
            });
        }
        let mut by_class = vec![Vec::new(); k];
        for (i, &c) in labels.iter().enumerate() {
            by_class[c].push(i);
        }
        let present: Vec<usize> = (0..k).filter(|&c| !by_class[c].is_empty()).collect();
        let scaler = params.standardize.then(|| Scaler::fit(data));
        let x = match &scaler {
            Some(s) => s.transform(data.data()),
            None => data.data().to_vec(),
        };
        let device = crate::device().autodiff();
        let (mut g, mut dnet) = {
            let _l = INIT_LOCK.lock();
            device.seed(params.seed);
            let (g, dn) = (
                Mlp3::new(params.z_dim + k, params.hidden, d, &device),
                Mlp3::new(d + k, params.hidden, 1, &device),
            );
            // Parameters are initialised lazily: draw them now, under the lock.
            module_bytes(g.clone())?;
            module_bytes(dn.clone())?;
            (g, dn)
        };
        // β₂ 0.9 for the Wasserstein loss, as in the WGAN-GP paper.
        let adam = AdamConfig::new()
            .with_beta_1(params.beta1 as f32)
            .with_beta_2(if params.wgan() { 0.9 } else { 0.999 });
        let (mut og, mut od) = (adam.init(), adam.init());
        let run = {
            let cfg = serde_json::to_string(&(params, &classes)).unwrap_or_default();
            let mut all = x.clone();
            all.extend(labels.iter().map(|&c| c as f32));
            all.extend(cfg.bytes().map(f32::from));
            fingerprint(&all)
        };
        let mut history = Vec::new();
        let mut start = 0;
        if hooks.resume
            && let Some(path) = hooks.checkpoint.clone()
            && let Some(c) = Checkpoint::read(&path, "gan", &run)?
        {
            g = load_module(g, b64_decode(&c.modules[0])?)?;
            dnet = load_module(dnet, b64_decode(&c.modules[1])?)?;
            let ob = |i: usize| -> Result<burn::tensor::Bytes> {
                Ok(burn::tensor::Bytes::from_bytes_vec(b64_decode(
                    &c.optimizers[i],
                )?))
            };
            og = og
                .from_bytes(ob(0)?)
                .map_err(|e| NnError::Artifact(format!("optimizer state: {e:?}")))?;
            od = od
                .from_bytes(ob(1)?)
                .map_err(|e| NnError::Artifact(format!("optimizer state: {e:?}")))?;
            history = c.history;
            start = c.epoch;
        }
        let lr = params.learning_rate;
        let wgan = params.wgan();
        for epoch in start..params.epochs {
            let t0 = Instant::now();
            let mut r = rng(params.seed, 1000 + epoch as u64);
            let perm = permutation(&mut r, n);
            let (mut sd, mut sg, mut nb, mut ng) = (0f64, 0f64, 0usize, 0usize);
            let mut acc = 0f64;
            for batch in perm.chunks(params.batch_size) {
                let b = batch.len();
                let mut xb = Vec::with_capacity(b * (d + k));
                for &i in batch {
                    xb.extend_from_slice(&x[i * d..(i + 1) * d]);
                    let mut oh = vec![0f32; k];
                    oh[labels[i]] = 1.0;
                    xb.extend(oh);
                }
                let real_in = t2(xb, [b, d + k], &device);
                let draw = |r: &mut rand_chacha::ChaCha8Rng| -> (Tensor<2>, Tensor<2>) {
                    let cs: Vec<usize> = (0..b)
                        .map(|_| present[r.gen_range(0..present.len())])
                        .collect();
                    let oh = t2(one_hot(&cs, k), [b, k], &device);
                    let z = t2(normals(r, b * params.z_dim), [b, params.z_dim], &device);
                    (Tensor::cat(vec![z, oh.clone()], 1), oh)
                };
                // Discriminator step (generated rows detached). The Wasserstein critic sees a
                // generated row of each real row's class: with the classes drawn uniformly its
                // estimate would also measure the difference of the class frequencies, which the
                // generator, given its class, cannot change.
                let (gin, oh) = if wgan {
                    let real_oh = real_in.clone().slice([0..b, d..d + k]);
                    let z = t2(
                        normals(&mut r, b * params.z_dim),
                        [b, params.z_dim],
                        &device,
                    );
                    (Tensor::cat(vec![z, real_oh.clone()], 1), real_oh)
                } else {
                    draw(&mut r)
                };
                let fake = g.forward(gin).detach();
                let fake_in = Tensor::cat(vec![fake.clone(), oh.clone()], 1);
                let lr_real = dnet.forward(real_in.clone());
                let lr_fake = dnet.forward(fake_in);
                let real_ok = scalar(lr_real.clone().greater_elem(0.0).float().mean());
                let fake_ok = scalar(lr_fake.clone().lower_equal_elem(0.0).float().mean());
                acc = 0.5 * (real_ok + fake_ok);
                let ld = if wgan {
                    // Interpolates of each real row and the generated row of its class.
                    let real_rows = real_in.clone().slice([0..b, 0..d]);
                    let eps: Vec<f32> = (0..b).map(|_| r.r#gen::<f32>()).collect();
                    let eps = t2(eps, [b, 1], &device);
                    let xhat = real_rows * eps.clone() + fake * (eps.neg() + 1.0);
                    let xhat = Tensor::cat(vec![xhat, oh], 1);
                    w_d_loss(lr_real, lr_fake) + gradient_penalty(&dnet, xhat, d, params.gp_lambda)
                } else {
                    d_loss(lr_real, lr_fake)
                };
                sd += scalar(ld.clone());
                let grads = GradientsParams::from_grads(ld.backward(), &dnet);
                dnet = od.step(lr, dnet, grads);
                nb += 1;
                // Generator step (with wgan-gp: after every n_critic critic steps).
                if wgan && nb % params.n_critic != 0 {
                    continue;
                }
                let (gin, oh) = draw(&mut r);
                let fake = g.forward(gin);
                let critic = dnet.forward(Tensor::cat(vec![fake, oh], 1));
                let lg = if wgan {
                    w_g_loss(critic)
                } else {
                    g_loss(critic)
                };
                sg += scalar(lg.clone());
                ng += 1;
                let grads = GradientsParams::from_grads(lg.backward(), &g);
                g = og.step(lr, g, grads);
            }
            let report = EpochReport {
                epoch: epoch + 1,
                epochs: params.epochs,
                loss: sd / nb as f64,
                part_a: sg / ng.max(1) as f64,
                part_b: acc,
                val_loss: None,
                best_epoch: epoch + 1,
                seconds: t0.elapsed().as_secs_f64(),
            };
            if !(report.loss.is_finite() && report.part_a.is_finite()) {
                return Err(NnError::Backend(format!(
                    "the GAN losses became non-finite in epoch {}; lower learning_rate",
                    epoch + 1
                )));
            }
            history.push(report.clone());
            hooks.report(&report);
            if let Some(path) = &hooks.checkpoint {
                Checkpoint {
                    kind: "gan".into(),
                    run: run.clone(),
                    epoch: epoch + 1,
                    history: history.clone(),
                    best_epoch: epoch + 1,
                    best_val: f64::NAN,
                    bad_epochs: 0,
                    modules: vec![
                        b64_encode(&module_bytes(g.valid())?),
                        b64_encode(&module_bytes(dnet.valid())?),
                    ],
                    optimizers: vec![
                        b64_encode(
                            &og.into_bytes()
                                .map_err(|e| NnError::Backend(format!("{e:?}")))?,
                        ),
                        b64_encode(
                            &od.into_bytes()
                                .map_err(|e| NnError::Backend(format!("{e:?}")))?,
                        ),
                    ],
                    best_modules: Vec::new(),
                }
                .write(path)?;
            }
            if hooks.cancelled() {
                break;
            }
        }
        let plain = crate::device();
        let generator = load_module(
            Mlp3::new(params.z_dim + k, params.hidden, d, &plain),
            module_bytes(g.valid())?,
        )?;
        let discriminator = load_module(
            Mlp3::new(d + k, params.hidden, 1, &plain),
            module_bytes(dnet.valid())?,
        )?;
        Ok(Self {
            params: params.clone(),
            features: data.names().to_vec(),
            classes,
            scaler,
            history,
            data_fingerprint: fingerprint(&x),
            created_at: now_rfc3339(),
            generator,
            discriminator,
            device: plain,
        })
    }

    /// The id of a class name.
    pub fn class_id(&self, name: &str) -> Result<usize> {
        self.classes
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| NnError::Shape {
                expected: format!("one of the classes {:?}", self.classes),
                got: format!("{name:?}"),
            })
    }

    /// `n` synthetic rows of class `class` (raw units, row-major).
    pub fn sample(&self, class: usize, n: usize, seed: u64) -> Result<Vec<f32>> {
        let k = self.classes.len();
        if class >= k {
            return Err(NnError::Shape {
                expected: format!("a class id below {k}"),
                got: class.to_string(),
            });
        }
        let d = self.features.len();
        let mut r = rng(seed, 11);
        let z = t2(
            normals(&mut r, n * self.params.z_dim),
            [n, self.params.z_dim],
            &self.device,
        );
        let oh = t2(one_hot(&vec![class; n], k), [n, k], &self.device);
        let mut v = to_vec(self.generator.forward(Tensor::cat(vec![z, oh], 1)))?;
        if let Some(s) = &self.scaler {
            for (i, x) in v.iter_mut().enumerate() {
                *x = *x * s.scale[i % d] + s.mean[i % d];
            }
        }
        Ok(v)
    }

    /// The discriminator's anomaly score −logit D(x | class) of raw rows.
    pub fn discriminator_score(&self, rows: &[f32], class: usize) -> Result<Vec<f64>> {
        let (d, k) = (self.features.len(), self.classes.len());
        if rows.is_empty() || !rows.len().is_multiple_of(d) || class >= k {
            return Err(NnError::Shape {
                expected: format!("rows of {d} values and a class id below {k}"),
                got: format!("{} values, class {class}", rows.len()),
            });
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(NnError::NonFinite {
                row: i / d,
                feature: self.features[i % d].clone(),
                value: f64::from(rows[i]),
            });
        }
        let n = rows.len() / d;
        let x = match &self.scaler {
            Some(s) => s.transform(rows),
            None => rows.to_vec(),
        };
        let xt = t2(x, [n, d], &self.device);
        let oh = t2(one_hot(&vec![class; n], k), [n, k], &self.device);
        let l = to_vec(self.discriminator.forward(Tensor::cat(vec![xt, oh], 1)))?;
        Ok(l.into_iter().map(|v| -f64::from(v)).collect())
    }

    pub fn to_json(&self) -> Result<String> {
        let a = NnArtifact {
            kind: "gan".into(),
            version: ARTIFACT_VERSION,
            library_version: env!("CARGO_PKG_VERSION").into(),
            created_at: self.created_at.clone(),
            feature_names: self.features.clone(),
            class_names: self.classes.clone(),
            input: InputSpec::Table {
                features: self.features.clone(),
            },
            config: serde_json::to_value(&self.params)
                .map_err(|e| NnError::Artifact(e.to_string()))?,
            scaler: self.scaler.clone(),
            threshold: None,
            metrics: serde_json::json!({"split": "training", "final_d_loss": self.history.last().map(|h| h.loss)}),
            history: self.history.clone(),
            data_fingerprint: self.data_fingerprint.clone(),
            extra: serde_json::json!({
                "discriminator": b64_encode(&module_bytes(self.discriminator.clone())?),
            }),
            weights: b64_encode(&module_bytes(self.generator.clone())?),
        };
        a.to_json()
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let a = NnArtifact::parse_kind(text, "gan")?;
        let params = GanParams::from_json(&a.config)?;
        let (d, k) = (a.feature_names.len(), a.class_names.len());
        let device = crate::device();
        let dw = a.discriminator_weights()?;
        Ok(Self {
            generator: load_module(
                Mlp3::new(params.z_dim + k, params.hidden, d, &device),
                b64_decode(&a.weights)?,
            )?,
            discriminator: load_module(
                Mlp3::new(d + k, params.hidden, 1, &device),
                b64_decode(dw)?,
            )?,
            params,
            features: a.feature_names,
            classes: a.class_names,
            scaler: a.scaler,
            history: a.history,
            data_fingerprint: a.data_fingerprint,
            created_at: a.created_at,
            device,
        })
    }
}

/// DCGAN generator: Dense 4·4·256 → BN → LeakyReLU → ConvT 128 5×5 s1 → BN → LeakyReLU →
/// ConvT 64 5×5 s2 → BN → LeakyReLU → ConvT C 5×5 s2 → tanh (16 × 16 × C).
#[derive(Module, Debug)]
pub struct DcGenerator {
    fc: Linear,
    bn0: BatchNorm,
    t1: ConvTranspose2d,
    bn1: BatchNorm,
    t2: ConvTranspose2d,
    bn2: BatchNorm,
    t3: ConvTranspose2d,
}

/// DCGAN discriminator: Conv 64 5×5 s2 → LeakyReLU → Dropout 0.3 → Conv 128 5×5 s2 →
/// LeakyReLU → Dropout 0.3 → Flatten → Dense 1 (logit).
#[derive(Module, Debug)]
pub struct DcDiscriminator {
    c1: Conv2d,
    c2: Conv2d,
    fc: Linear,
}

impl DcGenerator {
    fn new(z: usize, c: usize, device: &Device) -> Self {
        let convt = |i, o, s: usize| {
            ConvTranspose2dConfig::new([i, o], [5, 5])
                .with_stride([s, s])
                .with_padding([2, 2])
                .with_padding_out([s - 1, s - 1])
                .with_bias(false)
                .init(device)
        };
        Self {
            fc: LinearConfig::new(z, 4 * 4 * 256)
                .with_bias(false)
                .init(device),
            bn0: BatchNormConfig::new(4 * 4 * 256).init(device),
            t1: convt(256, 128, 1),
            bn1: BatchNormConfig::new(128).init(device),
            t2: convt(128, 64, 2),
            bn2: BatchNormConfig::new(64).init(device),
            t3: convt(64, c, 2),
        }
    }
    fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let b = z.dims()[0];
        let x = leaky_relu(self.bn0.forward(self.fc.forward(z)), 0.3);
        let x = x.reshape([b, 256, 4, 4]);
        let x = leaky_relu(self.bn1.forward(self.t1.forward(x)), 0.3);
        let x = leaky_relu(self.bn2.forward(self.t2.forward(x)), 0.3);
        tanh(self.t3.forward(x))
    }
}

impl DcDiscriminator {
    fn new(c: usize, device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [5, 5])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                .init(device)
        };
        Self {
            c1: conv(c, 64),
            c2: conv(64, 128),
            fc: LinearConfig::new(128 * 4 * 4, 1).init(device),
        }
    }
    /// `masks`: dropout masks (already divided by the keep probability), or none at inference.
    fn forward(&self, x: Tensor<4>, masks: Option<(Tensor<4>, Tensor<4>)>) -> Tensor<2> {
        let mut h = leaky_relu(self.c1.forward(x), 0.3);
        if let Some((m, _)) = &masks {
            h = h * m.clone();
        }
        let mut h = leaky_relu(self.c2.forward(h), 0.3);
        if let Some((_, m)) = &masks {
            h = h * m.clone();
        }
        self.fc.forward(h.flatten::<2>(1, 3))
    }
}

const DC_SIZE: usize = 16;

/// A trained DCGAN (16 × 16 images, 1 or 3 channels).
#[derive(Debug, Clone)]
pub struct Dcgan {
    pub params: GanParams,
    pub channels: usize,
    pub history: Vec<EpochReport>,
    pub created_at: String,
    generator: DcGenerator,
    discriminator: DcDiscriminator,
    device: Device,
}

fn dropout_mask(r: &mut rand_chacha::ChaCha8Rng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            if r.r#gen::<f32>() < 0.3 {
                0.0
            } else {
                1.0 / 0.7
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

impl Dcgan {
    /// Trains on 16 × 16 images (values in [0, 1]; scaled to [−1, 1] for tanh).
    pub fn fit(params: &GanParams, data: &ImageSet, mut hooks: TrainHooks<'_>) -> Result<Self> {
        params.check()?;
        if params.wgan() {
            return Err(bad_param(
                "loss",
                "wgan-gp is implemented for the tabular GAN only; the DCGAN trains with loss gan",
            ));
        }
        if data.height != DC_SIZE || data.width != DC_SIZE {
            return Err(NnError::Shape {
                expected: format!("{DC_SIZE}×{DC_SIZE} images"),
                got: format!("{}×{}", data.height, data.width),
            });
        }
        if data.n < 2 {
            return Err(NnError::EmptyData(format!(
                "{} images: the DCGAN needs at least 2",
                data.n
            )));
        }
        let c = data.channels;
        let dim = data.dim();
        let x: Vec<f32> = data.data().iter().map(|v| v * 2.0 - 1.0).collect();
        let device = crate::device().autodiff();
        let (mut g, mut dn) = {
            let _l = INIT_LOCK.lock();
            device.seed(params.seed);
            let (g, dn) = (
                DcGenerator::new(params.z_dim, c, &device),
                DcDiscriminator::new(c, &device),
            );
            module_bytes(g.clone())?;
            module_bytes(dn.clone())?;
            (g, dn)
        };
        let adam = AdamConfig::new().with_beta_1(params.beta1 as f32);
        let (mut og, mut od) = (adam.init(), adam.init());
        let mut history = Vec::new();
        let lr = params.learning_rate;
        for epoch in 0..params.epochs {
            let t0 = Instant::now();
            let mut r = rng(params.seed, 1000 + epoch as u64);
            let perm = permutation(&mut r, data.n);
            let (mut sd, mut sg, mut nb, mut acc) = (0f64, 0f64, 0usize, 0f64);
            for batch in perm.chunks(params.batch_size) {
                let b = batch.len();
                let mut xb = Vec::with_capacity(b * dim);
                for &i in batch {
                    xb.extend_from_slice(&x[i * dim..(i + 1) * dim]);
                }
                let real =
                    Tensor::<4>::from_data(TensorData::new(xb, [b, c, DC_SIZE, DC_SIZE]), &device);
                let masks = |r: &mut rand_chacha::ChaCha8Rng| {
                    (
                        dropout_mask(r, [b, 64, 8, 8], &device),
                        dropout_mask(r, [b, 128, 4, 4], &device),
                    )
                };
                let z = t2(
                    normals(&mut r, b * params.z_dim),
                    [b, params.z_dim],
                    &device,
                );
                let fake = g.forward(z).detach();
                let lr_real = dn.forward(real, Some(masks(&mut r)));
                let lr_fake = dn.forward(fake, Some(masks(&mut r)));
                acc = 0.5
                    * (scalar(lr_real.clone().greater_elem(0.0).float().mean())
                        + scalar(lr_fake.clone().lower_equal_elem(0.0).float().mean()));
                let ld = d_loss(lr_real, lr_fake);
                sd += scalar(ld.clone());
                let grads = GradientsParams::from_grads(ld.backward(), &dn);
                dn = od.step(lr, dn, grads);
                let z = t2(
                    normals(&mut r, b * params.z_dim),
                    [b, params.z_dim],
                    &device,
                );
                let lg = g_loss(dn.forward(g.forward(z), Some(masks(&mut r))));
                sg += scalar(lg.clone());
                let grads = GradientsParams::from_grads(lg.backward(), &g);
                g = og.step(lr, g, grads);
                nb += 1;
            }
            let report = EpochReport {
                epoch: epoch + 1,
                epochs: params.epochs,
                loss: sd / nb as f64,
                part_a: sg / nb as f64,
                part_b: acc,
                val_loss: None,
                best_epoch: epoch + 1,
                seconds: t0.elapsed().as_secs_f64(),
            };
            history.push(report.clone());
            hooks.report(&report);
            if hooks.cancelled() {
                break;
            }
        }
        let plain = crate::device();
        Ok(Self {
            params: params.clone(),
            channels: c,
            history,
            created_at: now_rfc3339(),
            generator: load_module(
                DcGenerator::new(params.z_dim, c, &plain),
                module_bytes(g.valid())?,
            )?,
            discriminator: load_module(DcDiscriminator::new(c, &plain), module_bytes(dn.valid())?)?,
            device: plain,
        })
    }

    /// `n` generated images (values in [0, 1]).
    pub fn sample(&self, n: usize, seed: u64) -> Result<ImageSet> {
        let z = t2(
            normals(&mut rng(seed, 13), n * self.params.z_dim),
            [n, self.params.z_dim],
            &self.device,
        );
        let v = to_vec(self.generator.valid().forward(z))?;
        ImageSet::new(
            self.channels,
            DC_SIZE,
            DC_SIZE,
            v.into_iter()
                .map(|p| ((p + 1.0) * 0.5).clamp(0.0, 1.0))
                .collect(),
        )
    }

    /// −logit D(x) of images in [0, 1]: high = unlike the training images.
    pub fn discriminator_score(&self, images: &ImageSet) -> Result<Vec<f64>> {
        if images.channels != self.channels || images.height != DC_SIZE || images.width != DC_SIZE {
            return Err(NnError::Shape {
                expected: format!("{DC_SIZE}×{DC_SIZE}×{}", self.channels),
                got: format!("{}×{}×{}", images.height, images.width, images.channels),
            });
        }
        let x: Vec<f32> = images.data().iter().map(|v| v * 2.0 - 1.0).collect();
        let xt = Tensor::<4>::from_data(
            TensorData::new(x, [images.n, self.channels, DC_SIZE, DC_SIZE]),
            &self.device,
        );
        Ok(to_vec(self.discriminator.forward(xt, None))?
            .into_iter()
            .map(|v| -f64::from(v))
            .collect())
    }

    pub fn to_json(&self) -> Result<String> {
        let a = NnArtifact {
            kind: "dcgan".into(),
            version: ARTIFACT_VERSION,
            library_version: env!("CARGO_PKG_VERSION").into(),
            created_at: self.created_at.clone(),
            feature_names: vec!["image".into()],
            class_names: vec!["real".into(), "generated".into()],
            input: InputSpec::Image {
                channels: self.channels,
                height: DC_SIZE,
                width: DC_SIZE,
            },
            config: serde_json::to_value(&self.params)
                .map_err(|e| NnError::Artifact(e.to_string()))?,
            scaler: None,
            threshold: None,
            metrics: serde_json::json!({"split": "training", "final_d_loss": self.history.last().map(|h| h.loss)}),
            history: self.history.clone(),
            data_fingerprint: String::new(),
            extra: serde_json::json!({
                "discriminator": b64_encode(&module_bytes(self.discriminator.clone())?),
            }),
            weights: b64_encode(&module_bytes(self.generator.clone())?),
        };
        a.to_json()
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let a = NnArtifact::parse_kind(text, "dcgan")?;
        let params = GanParams::from_json(&a.config)?;
        let InputSpec::Image { channels, .. } = a.input else {
            return Err(NnError::Artifact(
                "a DCGAN artefact needs an image input".into(),
            ));
        };
        let device = crate::device();
        let dw = a.discriminator_weights()?;
        Ok(Self {
            generator: load_module(
                DcGenerator::new(params.z_dim, channels, &device),
                b64_decode(&a.weights)?,
            )?,
            discriminator: load_module(DcDiscriminator::new(channels, &device), b64_decode(dw)?)?,
            params,
            channels,
            history: a.history,
            created_at: a.created_at,
            device,
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;

    use super::*;

    fn net(device: &Device) -> Mlp3 {
        let _l = INIT_LOCK.lock();
        device.seed(3);
        let n = Mlp3::new(5, 16, 1, device);
        module_bytes(n.clone()).unwrap();
        n
    }

    /// The written-out input gradient of the critic equals central differences of its output.
    #[test]
    fn the_critic_input_gradient_matches_finite_differences() {
        let device = crate::device();
        let n = net(&device);
        let x = normals(&mut rng(1, 2), 4 * 5);
        let g = to_vec(n.input_gradient(t2(x.clone(), [4, 5], &device))).unwrap();
        let f = |x: &[f32]| to_vec(n.forward(t2(x.to_vec(), [4, 5], &device))).unwrap();
        let h = 1e-3f32;
        for i in 0..20 {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let num = (f(&xp)[i / 5] - f(&xm)[i / 5]) / (2.0 * h);
            assert!(
                (num - g[i]).abs() < 1e-2 * (1.0 + g[i].abs()),
                "input {i}: finite difference {num}, written-out gradient {}",
                g[i]
            );
        }
    }

    /// The penalty's gradient with respect to the first layer's weights (what Burn's first-order
    /// autodiff computes through the written-out input gradient) predicts the change of the
    /// penalty when the weights move along it: GP(W + εG) − GP(W − εG) ≈ 2ε‖G‖².
    #[test]
    fn the_gradient_penalty_has_the_right_weight_gradient() {
        let ad = crate::device().autodiff();
        let n = net(&ad);
        let x = t2(normals(&mut rng(4, 5), 8 * 5), [8, 5], &ad);
        let gp = gradient_penalty(&n, x.clone(), 5, 10.0);
        let grads = gp.backward();
        let gw = n.l1.weight.val().grad(&grads).expect("a gradient for l1");
        let gw_v = to_vec(gw.clone()).unwrap();
        let norm2: f32 = gw_v.iter().map(|v| v * v).sum();
        assert!(norm2 > 0.0, "no gradient reached the first layer");
        let plain = crate::device();
        let at = |eps: f32| -> f32 {
            let mut m = load_module(
                Mlp3::new(5, 16, 1, &plain),
                module_bytes(n.valid()).unwrap(),
            )
            .unwrap();
            let w = m.l1.weight.val() + t2(gw_v.clone(), [5, 16], &plain) * eps;
            m.l1.weight = Param::from_tensor(w);
            let xv = to_vec(x.clone().inner()).unwrap();
            to_vec(gradient_penalty(&m, t2(xv, [8, 5], &plain), 5, 10.0)).unwrap()[0]
        };
        let eps = 1e-3 / norm2.sqrt();
        let change = at(eps) - at(-eps);
        let predicted = 2.0 * eps * norm2;
        assert!(
            (change - predicted).abs() < 0.05 * predicted.abs(),
            "penalty changed by {change}, the gradient predicts {predicted}"
        );
    }
}
