//! Gemba machine learning: logistic regression, soft-margin kernel SVM (SMO) and linear SVM
//! (dual coordinate descent), preprocessing, metrics, explanations and model artefacts.
//!
//! Architecture invariant: no IO besides artefact (de)serialisation helpers that take readers and
//! writers; no knowledge of HTTP, MQTT or the store.

pub mod data;
pub mod error;
pub mod lbfgs;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod preprocess;

pub use data::{Dataset, Matrix, Rng, load_csv, stratified_kfold};
pub use error::{MlError, Result};
pub use logistic::{LogisticModel, LogisticParams, LogisticValidParams, Penalty};
pub use model::{ClassWeight, Classifier, Fit, ParamGuard};
pub use preprocess::{ImputeStrategy, Imputer, StandardScaler, WindowSpec, window_features};
pub mod svm;
pub use svm::linear::{LinearSvcModel, LinearSvcParams, LinearSvcValidParams, SvmLoss};
pub use svm::{Gamma, GammaRule, Kernel, KernelKind, SvcModel, SvcParams, SvcValidParams};
pub mod artifact;
pub use artifact::{
    ArtifactMetrics, Contribution, Explanation, FittedModel, GridPoint, GridSearchResult,
    ModelArtifact, ModelKind, Scoring, cross_validate, grid_search, train,
};
