//! What every training run shares: progress reports, early stopping, checkpoints and resuming.
//!
//! Reproducibility: weights are initialised from the seed under a process-wide lock (Burn's CPU
//! random generator is global), and every epoch draws its shuffling and noise from its own
//! ChaCha8 stream `(seed, epoch)`. A run resumed from a checkpoint therefore continues with
//! exactly the losses the uninterrupted run would have had.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// Serialises "seed Burn's generator, then initialise a model" across threads.
pub(crate) static INIT_LOCK: Mutex<()> = Mutex::new(());

/// The figures of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// Mean training loss per row (VAE: negative ELBO; GAN: discriminator loss).
    pub loss: f64,
    /// VAE: mean reconstruction term; GAN: generator loss.
    pub part_a: f64,
    /// VAE: mean KL term; GAN: discriminator accuracy on the last batch pair.
    pub part_b: f64,
    /// Mean validation loss per row (VAE only).
    pub val_loss: Option<f64>,
    /// The epoch whose weights are kept so far (lowest validation loss).
    pub best_epoch: usize,
    pub seconds: f64,
}

/// The per-epoch callback of [`TrainHooks`].
pub type OnEpoch<'a> = Box<dyn FnMut(&EpochReport) + 'a>;

/// Hooks of a training run. `Default` trains without reports, checkpoints or cancellation.
#[derive(Default)]
pub struct TrainHooks<'a> {
    /// Called after every epoch (a progress bar, a log line).
    pub on_epoch: Option<OnEpoch<'a>>,
    /// A checkpoint file written after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Start from `checkpoint` when it exists (same data and parameters, else an error).
    pub resume: bool,
    /// Set to stop after the current epoch (the best weights so far are kept).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for TrainHooks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainHooks")
            .field("on_epoch", &self.on_epoch.is_some())
            .field("checkpoint", &self.checkpoint)
            .field("resume", &self.resume)
            .finish()
    }
}

impl TrainHooks<'_> {
    pub(crate) fn report(&mut self, r: &EpochReport) {
        if let Some(f) = &mut self.on_epoch {
            f(r);
        }
    }
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// The state of a run after an epoch, enough to continue it bit for bit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub kind: String,
    /// Fingerprint of the data and the parameters: a checkpoint only resumes its own run.
    pub run: String,
    pub epoch: usize,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_val: f64,
    pub bad_epochs: usize,
    /// base64 burnpack of each trained module, then of each optimizer.
    pub modules: Vec<String>,
    pub optimizers: Vec<String>,
    pub best_modules: Vec<String>,
}

impl Checkpoint {
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let io = |source| NnError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(|e| NnError::Artifact(e.to_string()))?;
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
    pub(crate) fn read(path: &Path, kind: &str, run: &str) -> Result<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(NnError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let c: Self = serde_json::from_slice(&bytes)
            .map_err(|e| NnError::Artifact(format!("{}: not a checkpoint: {e}", path.display())))?;
        if c.kind != kind || c.run != run {
            return Err(NnError::Artifact(format!(
                "{}: checkpoint of another run ({} {}), not of these data and parameters; delete it or choose another --checkpoint",
                path.display(),
                c.kind,
                c.run
            )));
        }
        Ok(Some(c))
    }
}
