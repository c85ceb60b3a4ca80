//! Gemba machine learning: logistic regression, soft-margin kernel SVM (SMO) and linear SVM
//! (dual coordinate descent or primal L-BFGS), preprocessing, metrics, explanations and model
//! artefacts. See `docs/ML.md`.
//!
//! Architecture invariant: no IO besides artefact (de)serialisation helpers that take readers and
//! writers, and the CSV loader that takes a reader; no knowledge of HTTP, MQTT or the store.
//!
//! ```
//! use gemba_ml::{ModelArtifact, ModelKind, load_csv, train};
//! use serde_json::json;
//!
//! let csv = "temp,vib,state\n20,0.1,ok\n21,0.2,ok\n35,0.9,fault\n36,1.1,fault\n22,0.1,ok\n34,1.0,fault\n";
//! let data = load_csv(csv.as_bytes(), "state", None)?;
//! let art = train(ModelKind::Logistic, &json!({"c": 10.0}), &data)?;
//! let rows = gemba_ml::Matrix::from_rows(&[vec![33.0, 0.95]])?;
//! assert_eq!(art.predict_labels(&rows)?, ["fault"]);
//! let p = art.predict_proba(&rows)?; // columns in art.class_names order
//! assert!(p.row(0)[0] > 0.5);       // "fault" sorts before "ok"
//! let why = art.explain(rows.row(0), 2)?;
//! assert_eq!(why.top.len(), 2);
//! let mut buf = Vec::new();
//! art.save(&mut buf)?;
//! assert_eq!(ModelArtifact::load(&buf[..])?, art);
//! # Ok::<(), gemba_ml::MlError>(())
//! ```

pub mod artifact;
pub mod data;
pub mod error;
pub mod lbfgs;
pub mod linalg;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod svm;

pub use artifact::{
    ArtifactMetrics, Contribution, Explanation, FittedModel, GridPoint, GridSearchResult,
    ModelArtifact, ModelKind, Scoring, cross_validate, grid_search, train,
};
pub use data::{Dataset, Matrix, load_csv, stratified_kfold};
pub use error::{MlError, Result};
pub use logistic::{LogisticModel, LogisticParams, LogisticValidParams, Penalty};
pub use model::{ClassWeight, Classifier, Fit, ParamGuard};
pub use preprocess::{ImputeStrategy, Imputer, StandardScaler, WindowSpec, window_features};
pub use svm::linear::{LinearSvcModel, LinearSvcParams, LinearSvcValidParams, SvmLoss};
pub use svm::{Gamma, GammaRule, Kernel, KernelKind, SvcModel, SvcParams, SvcValidParams};
