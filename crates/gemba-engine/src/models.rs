//! The model registry: trained model artefacts, versioned per name, and which version is active
//! for which asset. Artefacts are opaque JSON documents made by `gemba-ml` (the engine reads only
//! their descriptive fields); they are kept as records of the store, so they survive restarts and
//! travel with the data.

use gemba_core::{Timestamp, check_segment};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Engine, EngineError};

const META: &str = "model";
const ARTIFACT: &str = "model_artifact";
const ACTIVE: &str = "model_active";

/// One registered version of a model (without its artefact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: u32,
    /// Model family of the artefact (`logistic`, `svc`, `linear_svc`, …).
    pub kind: String,
    /// When the model was trained (from the artefact).
    pub created_at: String,
    /// When it was registered, ms since the epoch.
    pub registered_at: Timestamp,
    /// The asset it was trained for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    pub features: Vec<String>,
    pub classes: Vec<String>,
    pub data_fingerprint: String,
    /// The artefact's metrics (split, accuracy, F1, AUC, …), as stored in it.
    pub metrics: Value,
    pub artifact_bytes: usize,
}

/// The version of a model that serves an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveModel {
    pub asset: String,
    pub name: String,
    pub version: u32,
    pub since: Timestamp,
}

/// The stored artefact of one version (for callers that hold the store but not the engine).
pub(crate) fn artifact_json(
    store: &dyn gemba_store::Store,
    name: &str,
    version: u32,
) -> Result<Option<String>, EngineError> {
    Ok(store.record(ARTIFACT, &key(name, version))?)
}

fn key(name: &str, version: u32) -> String {
    format!("{name}@{version:06}")
}

/// Why the model registry refused something: one variant per cause. The API decides the status
/// code of each (`gemba_api::error`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is not a path segment.
    #[error("model name {name:?} {reason}")]
    BadName { name: String, reason: String },
    /// The artefact is not one Gemba can register (not JSON, no kind, fields missing, parts that
    /// do not fit together).
    #[error("{0}")]
    BadArtefact(String),
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    #[error("no model {name} version {version}")]
    UnknownVersion { name: String, version: u32 },
    /// A stored registry record that does not parse or cannot be written.
    #[error("model registry record: {0}")]
    Record(String),
}

fn invalid(reason: String) -> EngineError {
    EngineError::Registry(RegistryError::BadArtefact(reason))
}

fn record_err(e: serde_json::Error) -> EngineError {
    EngineError::Registry(RegistryError::Record(e.to_string()))
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, EngineError> {
    v.get(field)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| {
            invalid(format!(
                "artefact field {field:?} must be an array of strings"
            ))
        })
}

impl Engine {
    /// Registers `artifact_json` as the next version of model `name` (optionally for `asset`).
    pub fn register_model(
        &self,
        name: &str,
        asset: Option<&str>,
        artifact_json: &str,
    ) -> Result<ModelVersion, EngineError> {
        check_segment(name).map_err(|r| {
            EngineError::Registry(RegistryError::BadName {
                name: name.to_owned(),
                reason: r.to_string(),
            })
        })?;
        let v: Value = serde_json::from_str(artifact_json)
            .map_err(|e| invalid(format!("artefact is not JSON: {e}")))?;
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                invalid("artefact has no \"kind\"; is it a model saved by gemba train?".into())
            })?
            .to_owned();
        let features = strings(&v, "feature_names")?;
        let classes = strings(&v, "class_names")?;
        if features.is_empty() || classes.len() < 2 {
            return Err(invalid(
                "artefact needs features and at least two classes".into(),
            ));
        }
        // A classifier must load whole (its parts fit together), or scoring it in an alarm rule
        // would fail later, far from the request that brought it. Neural-network artefacts
        // (gemba-nn: vae, gan, dcgan) are not scored by the engine; `gemba predict` loads them.
        if kind.parse::<gemba_ml::ModelKind>().is_ok() {
            gemba_ml::ModelArtifact::from_json(artifact_json)
                .map_err(|e| invalid(e.to_string()))?;
        } else if !matches!(kind.as_str(), "vae" | "gan" | "dcgan") {
            return Err(invalid(format!(
                "artefact kind {kind:?} is not one of logistic, svc, linear_svc, vae, gan, dcgan"
            )));
        }
        if let Some(a) = asset
            && self.registry().node(a).is_none()
        {
            return Err(RegistryError::UnknownAsset(a.to_owned()).into());
        }
        let _guard = self.models_lock.lock();
        let version = self
            .store()
            .records(META)?
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(name)?.strip_prefix('@')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let meta = ModelVersion {
            name: name.to_owned(),
            version,
            kind,
            created_at: v
                .get("created_at")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            registered_at: self.now(),
            asset: asset.map(str::to_owned),
            features,
            classes,
            data_fingerprint: v
                .get("data_fingerprint")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            metrics: v.get("metrics").cloned().unwrap_or(Value::Null),
            artifact_bytes: artifact_json.len(),
        };
        let k = key(name, version);
        let meta_json = serde_json::to_string(&meta).map_err(record_err)?;
        self.store().put_record(ARTIFACT, &k, artifact_json)?;
        self.store().put_record(META, &k, &meta_json)?;
        Ok(meta)
    }

    /// Every registered version, by name and version.
    pub fn models(&self) -> Result<Vec<ModelVersion>, EngineError> {
        self.store()
            .records(META)?
            .into_iter()
            .map(|(_, j)| serde_json::from_str(&j).map_err(record_err))
            .collect()
    }

    /// The artefact of one version (`None` when there is no such version).
    pub fn model_artifact(&self, name: &str, version: u32) -> Result<Option<String>, EngineError> {
        artifact_json(self.store().as_ref(), name, version)
    }

    /// Makes `name@version` the active model of `asset` (replacing the one before).
    pub fn activate_model(
        &self,
        name: &str,
        version: u32,
        asset: &str,
    ) -> Result<ActiveModel, EngineError> {
        if !self
            .models()?
            .iter()
            .any(|m| m.name == name && m.version == version)
        {
            return Err(RegistryError::UnknownVersion {
                name: name.to_owned(),
                version,
            }
            .into());
        }
        if self.registry().node(asset).is_none() {
            return Err(RegistryError::UnknownAsset(asset.to_owned()).into());
        }
        let active = ActiveModel {
            asset: asset.to_owned(),
            name: name.to_owned(),
            version,
            since: self.now(),
        };
        let json = serde_json::to_string(&active).map_err(record_err)?;
        self.store().put_record(ACTIVE, asset, &json)?;
        Ok(active)
    }

    /// Which version is active for which asset.
    pub fn active_models(&self) -> Result<Vec<ActiveModel>, EngineError> {
        self.store()
            .records(ACTIVE)?
            .into_iter()
            .map(|(_, j)| serde_json::from_str(&j).map_err(record_err))
            .collect()
    }
}
