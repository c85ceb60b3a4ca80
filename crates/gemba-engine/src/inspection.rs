//! Visual inspection (docs/NN.md#visual-inspection): an uploaded image of a part is scored by a
//! registered image model (a conv VAE of `gemba-nn`), judged against the model's threshold learned
//! from good parts, and stored with its heat map, linked to the part, lot and machine.
//!
//! Image models are loaded through a trait so that inspection does not tie the engine to one model
//! family (the engine links `gemba-nn` only for the `vae` alarm rule, behind its default `vae`
//! feature, docs/ARCHITECTURE.md): the binary installs an [`ImageModels`] loader at start
//! ([`crate::Engine::set_image_models`]); the engine resolves `name[@version]` in the model
//! registry, checks the registered kind, loads each version once through the loader and keeps it
//! (per `name@version`; a version never changes once registered), validates part, lot and machine,
//! and stores the result (durable before it returns); a result with a machine is also written as
//! a `custom:inspection` event at that machine. Everything here is blocking: callers in
//! async code use `spawn_blocking`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use gemba_core::{Event, EventBody, check_segment};
use gemba_store::{InspectionQuery, InspectionRecord, WriteBatch};
use parking_lot::Mutex;
use serde_json::json;

use crate::{Engine, EngineError};

/// The registry kind of the models that can inspect images.
pub const IMAGE_MODEL_KIND: &str = "vae";

/// At most this many loaded models are kept; beyond, the cache starts again.
const CACHE_MAX: usize = 16;

/// Errors of an inspection, each naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No registered model of that name (or version).
    #[error("{0}")]
    UnknownModel(String),
    /// A model that cannot inspect images (a classifier, a GAN, a VAE trained on a table).
    #[error("{0}")]
    WrongModelKind(String),
    /// The upload is not a PNG or JPEG that decodes: the decoder's message.
    #[error("the image cannot be decoded: {0}")]
    BadImage(String),
    /// A lot that no `lot` event created and no master data declares.
    #[error(
        "lot: unknown lot {0:?}; a lot is created by a `lot` event or declared with POST /api/v1/lots"
    )]
    UnknownLot(String),
    /// A machine (asset path) the asset model does not have.
    #[error(
        "machine: unknown asset {0:?}; declare it in the plant file or with POST /api/v1/assets"
    )]
    UnknownMachine(String),
    /// A parameter that is not a valid name (`part`, `model`).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// This server was started without an image-model loader.
    #[error("visual inspection is not available in this server (no image model loader)")]
    Unavailable,
    /// The model failed while scoring (a bug or a broken artefact).
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The size of image a model reads (C × H × W).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInput {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// What an image model says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    pub score: f64,
    /// The heat map as a PNG (per-pixel error over the image).
    pub heat_map_png: Vec<u8>,
    /// The largest per-pixel error of the heat map.
    pub heat_max: f64,
}

/// A loaded image model. Implementations must not panic on any input bytes.
pub trait ImageModel: Send + Sync {
    fn input(&self) -> ImageInput;
    /// Scores above this fail.
    fn threshold(&self) -> f64;
    /// Decodes (PNG or JPEG), resizes as in training, scores and draws the heat map.
    fn inspect(&self, image: &[u8]) -> Result<ImageScore, InspectError>;
}

/// Turns a registered artefact into an [`ImageModel`] (installed by the binary).
pub trait ImageModels: Send + Sync {
    /// `model` is `name@version`, for messages. Errors: [`InspectError::WrongModelKind`] for an
    /// artefact that is not an image model.
    fn load(&self, model: &str, artifact_json: &str) -> Result<Arc<dyn ImageModel>, InspectError>;
}

/// One inspection request (`POST /api/v1/inspect`).
#[derive(Debug, Clone)]
pub struct NewInspection {
    /// `name` (the latest version) or `name@version`.
    pub model: String,
    pub part: Option<String>,
    pub lot: Option<String>,
    pub machine: Option<String>,
    /// Who sent it (principal name).
    pub by: String,
}

/// The `custom:inspection` event of a result at its machine: id, verdict, score, threshold,
/// model, part and lot as attributes.
fn inspection_event(r: &InspectionRecord) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("inspection".into(), json!(r.id));
    attrs.insert("verdict".into(), json!(r.verdict));
    attrs.insert("score".into(), json!(r.score));
    attrs.insert("threshold".into(), json!(r.threshold));
    attrs.insert("model".into(), json!(format!("{}@{}", r.model, r.version)));
    if let Some(p) = &r.part {
        attrs.insert("part".into(), json!(p));
    }
    if let Some(l) = &r.lot {
        attrs.insert("lot".into(), json!(l));
    }
    Event {
        ts: r.ts,
        asset: r.machine.clone().unwrap_or_default(),
        body: EventBody::Custom {
            name: "inspection".into(),
        },
        attrs,
    }
}

/// The loader and the loaded models.
#[derive(Default)]
pub(crate) struct Inspection {
    loader: OnceLock<Arc<dyn ImageModels>>,
    cache: Mutex<HashMap<(String, u32), Arc<dyn ImageModel>>>,
}

impl std::fmt::Debug for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspection")
            .field("loader", &self.loader.get().is_some())
            .field("cached", &self.cache.lock().len())
            .finish()
    }
}

impl Engine {
    /// Installs the image-model loader (once; later calls are ignored). Without one,
    /// [`Engine::inspect`] answers [`InspectError::Unavailable`].
    pub fn set_image_models(&self, loader: Arc<dyn ImageModels>) {
        let _ = self.inspection.loader.set(loader);
    }

    /// `name` or `name@version` → (name, version), the latest version for a bare name.
    fn resolve_image_model(&self, spec: &str) -> Result<(String, u32), InspectError> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => {
                let v: u32 = v.parse().map_err(|_| InspectError::Invalid {
                    field: "model",
                    reason: format!("{spec:?}: the version after @ must be a whole number"),
                })?;
                (n, Some(v))
            }
            None => (spec, None),
        };
        check_segment(name).map_err(|r| InspectError::Invalid {
            field: "model",
            reason: format!("model name {name:?} {r}"),
        })?;
        let versions: Vec<_> = self
            .models()?
            .into_iter()
            .filter(|m| m.name == name)
            .collect();
        let found = match version {
            Some(v) => versions.into_iter().find(|m| m.version == v),
            None => versions.into_iter().max_by_key(|m| m.version),
        }
        .ok_or_else(|| {
            InspectError::UnknownModel(match version {
                Some(v) => format!("no model {name} version {v} is registered"),
                None => format!("no model {name:?} is registered (GET /api/v1/models lists them)"),
            })
        })?;
        if found.kind != IMAGE_MODEL_KIND {
            return Err(InspectError::WrongModelKind(format!(
                "model {name}@{} is of kind {:?}; inspection needs a conv VAE (kind \"vae\") trained on images",
                found.version, found.kind
            )));
        }
        Ok((found.name, found.version))
    }

    /// The loaded model `name@version` (loaded once, then kept).
    fn image_model(&self, name: &str, version: u32) -> Result<Arc<dyn ImageModel>, InspectError> {
        let key = (name.to_owned(), version);
        if let Some(m) = self.inspection.cache.lock().get(&key) {
            return Ok(m.clone());
        }
        let loader = self
            .inspection
            .loader
            .get()
            .ok_or(InspectError::Unavailable)?;
        let json = self.model_artifact(name, version)?.ok_or_else(|| {
            InspectError::UnknownModel(format!("no model {name} version {version} is registered"))
        })?;
        let model = loader.load(&format!("{name}@{version}"), &json)?;
        let mut cache = self.inspection.cache.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, model.clone());
        Ok(model)
    }

    /// Checks part, lot and machine the way the rest of Gemba does: a part is a name (1–64 ASCII
    /// letters, digits, `_`, `-`, `.`), a lot must exist (created by a `lot` event or declared as
    /// master data), a machine must be an asset of the model.
    fn check_inspection_links(&self, req: &NewInspection) -> Result<(), InspectError> {
        if let Some(p) = &req.part {
            check_segment(p).map_err(|r| InspectError::Invalid {
                field: "part",
                reason: format!("{p:?} {r}"),
            })?;
        }
        if let Some(l) = &req.lot {
            let known = self.registry().lots().iter().any(|d| &d.id == l)
                || self.ledger.blocking_read().lot(l).is_some();
            if !known {
                return Err(InspectError::UnknownLot(l.clone()));
            }
        }
        if let Some(m) = &req.machine
            && self.registry().node(m).is_none()
        {
            return Err(InspectError::UnknownMachine(m.clone()));
        }
        Ok(())
    }

    /// Scores `image` with the model, judges it against the model's threshold and stores the
    /// result with its heat map (durable when this returns). Blocking: scoring takes
    /// milliseconds to seconds; call it from `spawn_blocking`.
    pub fn inspect(
        &self,
        req: &NewInspection,
        image: &[u8],
    ) -> Result<InspectionRecord, InspectError> {
        self.check_inspection_links(req)?;
        let (name, version) = self.resolve_image_model(&req.model)?;
        let model = self.image_model(&name, version)?;
        let scored = model.inspect(image)?;
        let threshold = model.threshold();
        let input = model.input();
        let mut rec = InspectionRecord {
            id: 0,
            ts: self.now(),
            model: name,
            version,
            score: scored.score,
            threshold,
            verdict: if scored.score > threshold {
                "fail"
            } else {
                "pass"
            }
            .into(),
            part: req.part.clone(),
            lot: req.lot.clone(),
            machine: req.machine.clone(),
            width: u32::try_from(input.width).unwrap_or(u32::MAX),
            height: u32::try_from(input.height).unwrap_or(u32::MAX),
            heat_max: scored.heat_max,
            by: req.by.clone(),
        };
        rec.id = self
            .store()
            .put_inspection(&rec, &scored.heat_map_png)
            .map_err(EngineError::from)?;
        if rec.machine.is_some() {
            // The result is stored; the event makes it part of the machine's history (events
            // page, live stream, a genealogy's process data). Losing it loses no result.
            if let Err(e) = self.writer.write_blocking(WriteBatch {
                series: Vec::new(),
                events: vec![inspection_event(&rec)],
            }) {
                tracing::warn!(id = rec.id, error = %e, "inspection stored, its event was not");
            }
        }
        Ok(rec)
    }

    /// Stored inspection results, newest first.
    pub fn inspections(&self, q: &InspectionQuery) -> Result<Vec<InspectionRecord>, EngineError> {
        Ok(self.store().inspections(q)?)
    }

    /// One stored inspection result.
    pub fn inspection(&self, id: i64) -> Result<Option<InspectionRecord>, EngineError> {
        Ok(self.store().inspection(id)?)
    }

    /// The heat-map PNG of one inspection.
    pub fn inspection_heat_map(&self, id: i64) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.store().inspection_heat_map(id)?)
    }
}
