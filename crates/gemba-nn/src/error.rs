//! The one error type of gemba-nn: one variant per cause, messages name the offending value.

use std::path::PathBuf;

/// Everything that can go wrong when building, training, saving, loading or scoring a model.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// No rows or no images to work with.
    #[error("no data: {0}")]
    EmptyData(String),
    /// The input does not have the shape the model expects.
    #[error("wrong shape: expected {expected}, got {got}")]
    Shape { expected: String, got: String },
    /// A NaN or infinite value in the input.
    #[error("row {row}, feature {feature:?}: {value} is not a finite number")]
    NonFinite {
        row: usize,
        feature: String,
        value: f64,
    },
    /// A hyper-parameter out of range.
    #[error("parameter {name}: {reason}")]
    BadParam { name: String, reason: String },
    /// A model file that cannot be read back.
    #[error("artefact: {0}")]
    Artifact(String),
    /// A folder without a single image.
    #[error("{}: no .png files in this folder (nor .jpg or .jpeg)", path.display())]
    EmptyFolder { path: PathBuf },
    /// A file that is not a readable image.
    #[error("{}: cannot read the image: {message}", path.display())]
    Image { path: PathBuf, message: String },
    /// Image bytes (an upload) that do not decode: the decoder's message.
    #[error("cannot decode the image: {0}")]
    Decode(String),
    /// Reading or writing a file (checkpoints, image folders).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model of another kind (a GAN where a VAE was expected, …).
    #[error("model kind {got:?} where {expected:?} was expected")]
    WrongKind { expected: String, got: String },
    /// The tensor backend refused an operation.
    #[error("backend: {0}")]
    Backend(String),
}

/// `Result` with [`NnError`].
pub type Result<T, E = NnError> = std::result::Result<T, E>;

pub(crate) fn bad_param(name: &str, reason: impl Into<String>) -> NnError {
    NnError::BadParam {
        name: name.to_owned(),
        reason: reason.into(),
    }
}
