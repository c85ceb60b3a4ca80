//! Gemba deep models on Burn's CPU backend: the variational auto-encoder (MLP for tables and
//! sensor windows, conv for images) as an anomaly detector with a threshold learned from normal
//! data and per-feature / per-pixel explanations, and GANs (conditional tabular GAN for rare
//! machine states, the seed's DCGAN). See `docs/NN.md`.
//!
//! Architecture invariant: pure models and training loops; the only IO is reading image files
//! (`images`) and the checkpoint file a caller names. No HTTP, MQTT, store or registry; no other
//! Gemba crate but `gemba-ml` (pure, no Gemba dependencies of its own) for the metrics and
//! quantiles they share. Artefacts are JSON in the shape the model registry reads.

//!
//! The networks need the default feature `nets` (Burn). Without it the crate is only the data
//! types, image decoding and heat maps, thresholds and metrics — what the fuzz targets link.

#[cfg(feature = "nets")]
pub(crate) mod codec;
pub mod data;
pub mod error;
#[cfg(feature = "nets")]
pub mod fit;
#[cfg(feature = "nets")]
pub mod gan;
pub mod images;
pub mod metrics;
#[cfg(feature = "nets")]
pub mod nets;
pub mod threshold;
#[cfg(feature = "nets")]
pub mod vae;

pub use data::{ImageSet, Scaler, Table};
pub use error::{NnError, Result};
#[cfg(feature = "nets")]
pub use fit::{EpochReport, TrainHooks};
pub use threshold::{Threshold, ThresholdMethod};
#[cfg(feature = "nets")]
pub use vae::{InputSpec, NnArtifact, ScoreKind, Vae, VaeExplanation, VaeParams, elbo_terms};

/// The `kind` of a stored artefact (`"vae"`, `"gan"`, `"dcgan"`), without decoding weights.
pub fn artifact_kind(json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct K {
        kind: String,
    }
    serde_json::from_str::<K>(json).ok().map(|k| k.kind)
}

/// The device models train and score on: Burn's default, which is the pure-Rust `flex` CPU
/// backend unless the crate is built with the `cuda` or `wgpu` feature (GPUs first; the
/// `BURN_DEVICE` environment variable can name another).
#[cfg(feature = "nets")]
pub fn device() -> burn::tensor::Device {
    burn::tensor::Device::default()
}
