//! The crate's error type: every message names the feature, row, line, column or hyper-parameter.

use thiserror::Error;

/// Everything that can go wrong in `gemba-ml`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MlError {
    #[error("the data set is empty (no rows)")]
    EmptyData,
    #[error("the data set has no feature columns")]
    NoFeatures,
    #[error("the training data holds only one class ({class:?}); at least two are needed")]
    OneClass { class: String },
    #[error("feature {feature:?} row {row} is {value} (NaN or infinite); impute or drop it")]
    NonFinite {
        feature: String,
        row: usize,
        value: f64,
    },
    #[error("expected {expected} feature columns, got {got}{context}")]
    ColumnMismatch {
        expected: usize,
        got: usize,
        context: String,
    },
    #[error("{what} has {got} entries, expected {expected}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error(
        "class id {id} in row {row} is out of range (the data set has {n_classes} class names)"
    )]
    BadClass {
        row: usize,
        id: usize,
        n_classes: usize,
    },
    #[error("hyper-parameter {name}: {reason}")]
    BadParam { name: String, reason: String },
    #[error("CSV line {line}{}: {message}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    Csv {
        line: u64,
        column: Option<String>,
        message: String,
    },
    #[error("this model was trained without probability calibration; set probability = true")]
    NoProbability,
    #[error("artefact: {0}")]
    Artifact(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = MlError> = std::result::Result<T, E>;

pub(crate) fn bad_param(name: &str, reason: impl Into<String>) -> MlError {
    MlError::BadParam {
        name: name.to_owned(),
        reason: reason.into(),
    }
}
