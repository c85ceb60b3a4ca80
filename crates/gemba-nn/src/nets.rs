//! The VAE architectures as Burn modules: an MLP for tables and sensor windows, and the seed's
//! convolutional VAE generalised to C × H × W images (H and W multiples of 4).
//!
//! Both take and give flattened rows `[batch, d]` (images channel-first), so training, scoring
//! and explanations are written once.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// MLP VAE: d → hidden… → 2·z (μ, log σ²); z → …hidden → d (Gaussian mean).
#[derive(Module, Debug)]
pub struct MlpVae {
    enc: Vec<Linear>,
    head: Linear,
    dec: Vec<Linear>,
    out: Linear,
}

impl MlpVae {
    pub fn new(d: usize, hidden: &[usize], z: usize, device: &Device) -> Self {
        let mut enc = Vec::new();
        let mut prev = d;
        for &h in hidden {
            enc.push(LinearConfig::new(prev, h).init(device));
            prev = h;
        }
        let head = LinearConfig::new(prev, 2 * z).init(device);
        let mut dec = Vec::new();
        let mut prev = z;
        for &h in hidden.iter().rev() {
            dec.push(LinearConfig::new(prev, h).init(device));
            prev = h;
        }
        let out = LinearConfig::new(prev, d).init(device);
        Self {
            enc,
            head,
            dec,
            out,
        }
    }
    fn encode(&self, mut x: Tensor<2>) -> Tensor<2> {
        for l in &self.enc {
            x = relu(l.forward(x));
        }
        self.head.forward(x)
    }
    fn decode(&self, mut z: Tensor<2>) -> Tensor<2> {
        for l in &self.dec {
            z = relu(l.forward(z));
        }
        self.out.forward(z)
    }
}

/// The seed's conv VAE: Conv 32 and 64 (3×3, stride 2, 'same') → Dense 128 → 2·z;
/// Dense → (H/4)×(W/4)×64 → ConvT 64 s2 → ConvT 32 s2 → ConvT C (3×3, s1) → logits (sigmoid).
#[derive(Module, Debug)]
pub struct ConvVae {
    c1: Conv2d,
    c2: Conv2d,
    fc: Linear,
    head: Linear,
    dfc: Linear,
    t1: ConvTranspose2d,
    t2: ConvTranspose2d,
    t3: ConvTranspose2d,
}

impl ConvVae {
    pub fn new(chw: [usize; 3], dense: usize, z: usize, device: &Device) -> Self {
        let [c, h, w] = chw;
        let flat = 64 * (h / 4) * (w / 4);
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let convt = |i, o, s: usize| {
            ConvTranspose2dConfig::new([i, o], [3, 3])
                .with_stride([s, s])
                .with_padding([1, 1])
                .with_padding_out([s - 1, s - 1])
                .init(device)
        };
        Self {
            c1: conv(c, 32),
            c2: conv(32, 64),
            fc: LinearConfig::new(flat, dense).init(device),
            head: LinearConfig::new(dense, 2 * z).init(device),
            dfc: LinearConfig::new(z, flat).init(device),
            t1: convt(64, 64, 2),
            t2: convt(64, 32, 2),
            t3: convt(32, c, 1),
        }
    }
    fn encode(&self, x: Tensor<2>, chw: [usize; 3]) -> Tensor<2> {
        let b = x.dims()[0];
        let x = x.reshape([b, chw[0], chw[1], chw[2]]);
        let x = relu(self.c1.forward(x));
        let x = relu(self.c2.forward(x));
        let x = x.flatten::<2>(1, 3);
        self.head.forward(relu(self.fc.forward(x)))
    }
    fn decode(&self, z: Tensor<2>, chw: [usize; 3]) -> Tensor<2> {
        let b = z.dims()[0];
        let [_, h, w] = chw;
        let x = relu(self.dfc.forward(z)).reshape([b, 64, h / 4, w / 4]);
        let x = relu(self.t1.forward(x));
        let x = relu(self.t2.forward(x));
        self.t3.forward(x).flatten::<2>(1, 3)
    }
}

/// One of the two VAE architectures.
// One value per trained model, never in a hot collection; Burn's Module derive does not box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VaeNet {
    Mlp(MlpVae),
    Conv(ConvVae),
}

impl VaeNet {
    /// `[batch, d]` → (μ, log σ²), each `[batch, z]`.
    pub fn encode(&self, x: Tensor<2>, chw: [usize; 3]) -> (Tensor<2>, Tensor<2>) {
        let h = match self {
            Self::Mlp(m) => m.encode(x),
            Self::Conv(m) => m.encode(x, chw),
        };
        let z = h.dims()[1] / 2;
        let mu = h.clone().narrow(1, 0, z);
        let logvar = h.narrow(1, z, z);
        (mu, logvar)
    }
    /// `[batch, z]` → `[batch, d]`: Gaussian means (MLP) or Bernoulli logits (conv).
    pub fn decode(&self, z: Tensor<2>, chw: [usize; 3]) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.decode(z),
            Self::Conv(m) => m.decode(z, chw),
        }
    }
}
