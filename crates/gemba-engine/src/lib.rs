//! Gemba's runtime: configuration, the asset registry, the validated write path (resolve → check →
//! group commit → acknowledge), the MQTT bridge, background maintenance and metrics.
//!
//! Architecture invariant: the engine is the only place where decoded input meets the asset model and
//! the store. It never parses bytes itself (that is `gemba-ingest`) and never serves HTTP (that is
//! `gemba-api`); it is an HTTP and SMTP client only in its notification channels (`notify`:
//! webhooks, e-mail). Blocking store calls run on the writer thread or tokio's blocking pool, never
//! on an async worker.

pub mod alarms;
pub mod auth;
pub mod config;
pub mod datasets;
pub mod energy;
pub mod health;
pub mod inspection;
pub mod logistics;
pub mod maintenance;
pub mod metrics;
pub mod models;
pub mod mqtt_bridge;
pub mod notify;
pub mod privacy;
pub mod production;
pub mod progress;
pub mod registry;
pub mod spc;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gemba_core::time::check_timestamp;
use gemba_core::{Clock, Event, Plant, Sample, SignalDef, SignalKind, Timestamp};
use gemba_ingest::{DecodedBatch, ItemError, RawValue};
use gemba_store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use gemba_store::{Aggregate, EventQuery, SeriesWrite, Store, StoreError, StoredEvent, WriteBatch};
use thiserror::Error;

pub use config::{BatchMode, Config};
pub use metrics::{Metrics, Source};
pub use models::{ActiveModel, ModelVersion};
pub use registry::{Registered, Registry};
pub use writer::Writer;

/// At most this many item errors are returned for one batch; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// Errors of the engine.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("plant file {path}: {reason}")]
    Plant { path: String, reason: String },
    #[error(transparent)]
    Model(#[from] gemba_core::ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storage: {0}")]
    Storage(String),
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Mqtt(#[from] gemba_ingest::MqttError),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Alarm(#[from] alarms::AlarmError),
    #[error(transparent)]
    WorkOrder(#[from] maintenance::WorkOrderError),
    #[error(transparent)]
    Registry(#[from] models::RegistryError),
    #[error(transparent)]
    Production(#[from] production::ProductionError),
    #[error("Gemba is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

/// Event types that `[retention] events_days` never deletes: the inventory ledger and genealogy
/// are rebuilt from them at start.
pub const RETAINED_EVENT_TYPES: &[&str] = &["lot", "move"];

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub events: usize,
    pub alarms: usize,
    pub work_orders: usize,
    pub inspections: usize,
    /// Expired sign-in sessions (always deleted: an expired session lets no one in).
    pub sessions: usize,
}

/// What happened to one ingested batch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IngestOutcome {
    /// Samples durably stored.
    pub accepted_points: usize,
    /// Events durably stored.
    pub accepted_events: usize,
    /// Items rejected (samples, series or events).
    pub rejected: usize,
    /// The first [`MAX_REPORTED_ERRORS`] errors.
    pub errors: Vec<ItemError>,
}

/// The latest value of a signal.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatestValue {
    pub signal: String,
    pub ts: Timestamp,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// State name for `state` signals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The running Gemba core: registry, store, writer, caches and metrics.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    store: Arc<dyn Store>,
    registry: Registry,
    writer: Writer,
    latest: Arc<writer::LatestCache>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Serialises model registrations (version numbers).
    models_lock: parking_lot::Mutex<()>,
    alarms: Arc<alarms::Alarms>,
    outbox: Arc<notify::Outbox>,
    /// Inventory state; a batch with `lot`/`move` events holds it for writing from its check until
    /// its commit returned, so checks always see every committed event (docs/LOGISTICS.md).
    ledger: Arc<tokio::sync::RwLock<logistics::Ledger>>,
    production: production::Production,
    maintenance: maintenance::Maintenance,
    auth: auth::Auth,
    /// Made on the first pseudonymised export (its secret lives in the data directory).
    pseudonymiser: parking_lot::Mutex<Option<Arc<privacy::Pseudonymiser>>>,
    /// The image-model loader (installed by the binary) and the loaded models.
    inspection: inspection::Inspection,
    /// Ingest requests started and finished: with the writer's, the write path's liveness.
    ingest_progress: progress::Progress,
}

/// Reads and validates a plant file.
pub fn load_plant(path: &Path) -> Result<Plant, EngineError> {
    use figment::providers::{Format, Toml};
    let bad = |reason: String| EngineError::Plant {
        path: path.display().to_string(),
        reason,
    };
    if !path.is_file() {
        return Err(bad("does not exist or is not a file".into()));
    }
    parse_plant_with(
        figment::Figment::from(Toml::file_exact(path)),
        &path.display().to_string(),
    )
}

/// Parses and validates a plant file's text; `origin` names it in errors.
pub fn parse_plant(text: &str, origin: &str) -> Result<Plant, EngineError> {
    use figment::providers::{Format, Toml};
    parse_plant_with(figment::Figment::from(Toml::string(text)), origin)
}

fn parse_plant_with(figment: figment::Figment, origin: &str) -> Result<Plant, EngineError> {
    let bad = |reason: String| EngineError::Plant {
        path: origin.to_owned(),
        reason,
    };
    let plant: Plant = figment.extract().map_err(|e| {
        bad(e
            .into_iter()
            .map(|e| format!("{}: {}", e.path.join("."), e.kind))
            .collect::<Vec<_>>()
            .join("; "))
    })?;
    gemba_core::AssetModel::from_plant(&plant).map_err(|e| bad(e.to_string()))?;
    Ok(plant)
}

impl Engine {
    /// Opens the configured store, loads the plant file and starts the writer thread.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Engine>, EngineError> {
        let path = &config.storage.path;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                EngineError::Config(format!(
                    "storage.path: cannot create directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let opts = SqliteOptions {
            synchronous: match config.storage.sync {
                config::SyncMode::Full => Synchronous::Full,
                config::SyncMode::Normal => Synchronous::Normal,
            },
            rollup_retention_days: config.storage.rollup_retention_days,
            ..SqliteOptions::default()
        };
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path, opts)?);
        Self::with_store(config, store, clock)
    }

    /// Builds an engine on any store (tests use an in-memory one).
    pub fn with_store(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Engine>, EngineError> {
        let plant = match &config.plant.file {
            Some(p) => Some(load_plant(p)?),
            None => None,
        };
        let registry = Registry::load(
            store.clone(),
            plant.as_ref(),
            config.ingest.unknown_signals,
            config.sample_retention_days(),
        )?;
        let latest: Arc<writer::LatestCache> = Arc::new(Default::default());
        {
            let mut map = latest.write();
            for (id, s) in store.latest_all()? {
                map.insert(id, s);
            }
        }
        let (lots, moves) = store.logistics()?;
        let (ledger, skipped) = logistics::Ledger::replay(lots, moves);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "logistics: stored lot/move events that break the inventory rules were left out"
            );
        }
        for p in &config.logistics.reorder_points {
            registry
                .resolve_asset_for_ingest(&p.asset)
                .map_err(|e| EngineError::Config(format!("logistics.reorder_points: {e}")))?;
        }
        let metrics = Arc::new(Metrics::new());
        metrics.signals.set(registry.signal_count() as i64);
        let tap: Arc<alarms::Tap> = Arc::default();
        let (writer, _thread) = Writer::start(
            store.clone(),
            latest.clone(),
            metrics.clone(),
            config.ingest.group_commit_max_points,
            tap.clone(),
        )?;
        let outbox = Arc::new(notify::Outbox::start(
            store.clone(),
            notify::channels(&config.alarms.webhooks, &config.notify)?,
            notify::OutboxOptions::from(&config.notify),
            metrics.clone(),
            clock.clone(),
        )?);
        let alarms = Arc::new(alarms::Alarms::load(
            store.clone(),
            tap.clone(),
            outbox.clone(),
            metrics.clone(),
        )?);
        let active = Engine::restore_rules(&registry, store.as_ref(), &alarms);
        let (tx, rx) = std::sync::mpsc::channel();
        tap.connect(tx);
        let parts = alarms::ScorerParts {
            alarms: alarms.clone(),
            writer: writer.clone(),
            rx,
            metrics: metrics.clone(),
            active,
        };
        std::thread::Builder::new()
            .name("gemba-scorer".into())
            .spawn(move || alarms::run_scorer(parts))
            .map_err(|e| EngineError::Internal(format!("cannot start the scorer thread: {e}")))?;
        let production = production::Production::load(store.clone())?;
        let maintenance = maintenance::Maintenance::load(store.clone())?;
        let auth = auth::Auth::new(store.clone(), config.auth.clone())
            .map_err(|e| EngineError::Internal(format!("authentication: {e}")))?;
        Ok(Arc::new(Engine {
            config,
            store,
            registry,
            writer,
            latest,
            metrics,
            clock,
            models_lock: parking_lot::Mutex::new(()),
            alarms,
            outbox,
            ledger: Arc::new(tokio::sync::RwLock::new(ledger)),
            production,
            maintenance,
            auth,
            pseudonymiser: parking_lot::Mutex::new(None),
            inspection: inspection::Inspection::default(),
            ingest_progress: progress::Progress::default(),
        }))
    }

    /// The notification outbox: every delivery to webhooks and e-mail with its state.
    pub fn notifications(&self) -> &notify::Outbox {
        &self.outbox
    }

    /// Users, tokens, sessions and the audit log (docs/SECURITY.md).
    pub fn auth(&self) -> &auth::Auth {
        &self.auth
    }

    /// The installation's pseudonymiser; its secret is read from, or made in, the data directory
    /// (the directory of `storage.path`).
    pub fn pseudonymiser(&self) -> Result<Arc<privacy::Pseudonymiser>, EngineError> {
        let mut slot = self.pseudonymiser.lock();
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let p = Arc::new(privacy::Pseudonymiser::load_or_create(&privacy::data_dir(
            &self.config.storage.path,
        ))?);
        *slot = Some(p.clone());
        Ok(p)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// The metrics, shared (for tasks that outlive a borrow of the engine).
    pub fn metrics_arc(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn now(&self) -> Timestamp {
        self.clock.now_ms()
    }

    /// The write path's liveness (`/healthz`): stalled when ingest requests or queued commits
    /// have been in flight for longer than `server.stall_after_s` without any finishing. Takes no
    /// lock.
    pub fn write_path_health(&self) -> progress::WritePathHealth {
        let bound = std::time::Duration::from_secs(self.config.server.stall_after_s);
        let ingest = self.ingest_progress.report();
        let writer = self.writer.progress().report();
        progress::WritePathHealth {
            ok: !ingest.stalled(bound) && !writer.stalled(bound),
            ingest,
            writer,
            stall_after_s: self.config.server.stall_after_s,
        }
    }

    /// Validates a decoded batch against the asset model and, unless `mode` is strict and something
    /// is invalid, stores the valid part durably before returning.
    pub async fn ingest(
        self: &Arc<Self>,
        decoded: DecodedBatch,
        source: Source,
        mode: BatchMode,
    ) -> Result<IngestOutcome, EngineError> {
        let _in_flight = self.ingest_progress.guard();
        // Resolving and checking a large batch is CPU work, and registering new signals writes to
        // the store: keep both off the async workers (a blocked worker also stalls /healthz).
        let (mut batch, mut outcome, locations) = if decoded.sample_count() + decoded.events.len()
            > 2_000
            || self.registry.would_register(&decoded)
        {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.prepare(decoded))
                .await
                .map_err(|e| EngineError::Internal(format!("ingest task failed: {e}")))?
        } else {
            self.prepare(decoded)
        };
        let mut ledger = None;
        let mut moved = Vec::new();
        let logistics_events = batch
            .events
            .iter()
            .filter(|e| logistics::is_logistics(e))
            .count();
        if logistics_events > 0 {
            let guard = self.ledger.clone().write_owned().await;
            if logistics_events > 2_000 {
                // Checking many lot/move events is CPU work: off the async workers.
                let me = self.clone();
                let (g, b, o, m) = tokio::task::spawn_blocking(move || {
                    let m = me.check_logistics(&guard, &mut batch, &locations, &mut outcome);
                    (guard, batch, outcome, m)
                })
                .await
                .map_err(|e| EngineError::Internal(format!("logistics check failed: {e}")))?;
                (batch, outcome, moved) = (b, o, m);
                ledger = Some(g);
            } else {
                moved = self.check_logistics(&guard, &mut batch, &locations, &mut outcome);
                ledger = Some(guard);
            }
        }
        if outcome.rejected > 0 && mode == BatchMode::Strict {
            self.metrics
                .rejected
                .get_or_create(&Metrics::label(source))
                .inc_by(outcome.rejected as u64);
            return Ok(outcome);
        }
        self.commit(batch, source, &mut outcome).await?;
        if let Some(l) = ledger.as_deref_mut() {
            logistics::apply_committed(l, &moved);
        }
        Ok(outcome)
    }

    /// Blocking variant of [`Engine::ingest`] for non-async callers (CSV import).
    pub fn ingest_blocking(
        &self,
        decoded: DecodedBatch,
        source: Source,
        mode: BatchMode,
    ) -> Result<IngestOutcome, EngineError> {
        let _in_flight = self.ingest_progress.guard();
        let (mut batch, mut outcome, locations) = self.prepare(decoded);
        // Never called on an async worker (see the doc), so waiting for the lock is allowed.
        let mut ledger = if batch.events.iter().any(logistics::is_logistics) {
            Some(self.ledger.blocking_write())
        } else {
            None
        };
        let moved = match ledger.as_deref() {
            Some(l) => self.check_logistics(l, &mut batch, &locations, &mut outcome),
            None => Vec::new(),
        };
        let label = Metrics::label(source);
        self.metrics
            .rejected
            .get_or_create(&label)
            .inc_by(outcome.rejected as u64);
        if outcome.rejected > 0 && mode == BatchMode::Strict {
            return Ok(outcome);
        }
        if !batch.is_empty() {
            let events = late_candidates(&batch);
            let receipt = self.writer.write_blocking(batch)?;
            self.production.committed(&events);
            outcome.accepted_points = receipt.points;
            outcome.accepted_events = receipt.events;
            self.count(source, &outcome);
            if let Some(l) = ledger.as_deref_mut() {
                logistics::apply_committed(l, &moved);
            }
        }
        Ok(outcome)
    }

    async fn commit(
        &self,
        batch: WriteBatch,
        source: Source,
        outcome: &mut IngestOutcome,
    ) -> Result<(), EngineError> {
        let label = Metrics::label(source);
        self.metrics
            .rejected
            .get_or_create(&label)
            .inc_by(outcome.rejected as u64);
        if batch.is_empty() {
            return Ok(());
        }
        let events = late_candidates(&batch);
        let receipt = self.writer.write(batch).await?;
        self.production.committed(&events);
        outcome.accepted_points = receipt.points;
        outcome.accepted_events = receipt.events;
        self.count(source, outcome);
        Ok(())
    }

    fn count(&self, source: Source, outcome: &IngestOutcome) {
        let label = Metrics::label(source);
        self.metrics
            .points
            .get_or_create(&label)
            .inc_by(outcome.accepted_points as u64);
        self.metrics
            .events
            .get_or_create(&label)
            .inc_by(outcome.accepted_events as u64);
        self.metrics
            .signals
            .set(self.registry.signal_count() as i64);
    }

    /// Checks the batch's `lot` and `move` events against the ledger (in order, each seeing the
    /// ones before it), removes and reports those that break a rule, and adds a
    /// `custom:reorder_point` event for every reorder point the batch pushes below its minimum.
    /// Returns the logistics events to apply to the ledger once the batch is committed.
    fn check_logistics(
        &self,
        ledger: &logistics::Ledger,
        batch: &mut WriteBatch,
        locations: &[String],
        outcome: &mut IngestOutcome,
    ) -> Vec<Event> {
        let mut check = ledger.begin();
        let mut kept = Vec::with_capacity(batch.events.len());
        let mut moved = Vec::new();
        for (e, loc) in std::mem::take(&mut batch.events).into_iter().zip(locations) {
            match check.check(e.ts, &e.body) {
                Ok(logistics::Checked::New) => {
                    if logistics::is_logistics(&e) {
                        moved.push(e.clone());
                    }
                    kept.push(e);
                }
                // A retried lot/move event: already stored and applied; acknowledged, not stored.
                Ok(logistics::Checked::Repeat) => {}
                Err(err) => {
                    outcome.rejected += 1;
                    if outcome.errors.len() < MAX_REPORTED_ERRORS {
                        outcome.errors.push(ItemError {
                            location: format!("{loc}.{}", err.field()),
                            message: err.to_string(),
                        });
                    }
                }
            }
        }
        let now = self.clock.now_ms();
        let points = &self.config.logistics.reorder_points;
        let keys: Vec<(String, String, f64)> = points
            .iter()
            .map(|p| (p.location.clone(), p.product.clone(), p.min))
            .collect();
        for s in check.shortages(&keys) {
            let ts = moved.last().map_or(now, |e| e.ts);
            if let Some(p) = points
                .iter()
                .find(|p| p.location == s.location && p.product == s.product)
            {
                kept.push(logistics::shortage_event(&p.asset, ts, &s));
            }
        }
        batch.events = kept;
        moved
    }

    /// Resolves every item; returns the valid part as a write batch, the errors and the location
    /// (`events[i]`) of every event kept.
    fn prepare(&self, decoded: DecodedBatch) -> (WriteBatch, IngestOutcome, Vec<String>) {
        let now = self.clock.now_ms();
        let max_future = (self.config.ingest.max_future_s as i64).saturating_mul(1000);
        let mut outcome = IngestOutcome::default();
        let report = |outcome: &mut IngestOutcome, location: String, message: String| {
            outcome.rejected += 1;
            if outcome.errors.len() < MAX_REPORTED_ERRORS {
                outcome.errors.push(ItemError { location, message });
            }
        };
        for e in decoded.errors {
            report(&mut outcome, e.location, e.message);
        }
        // Register all new signals of the batch in one go (a no-op unless the policy is "register").
        // Collected before the call: the registry must not run caller code under its lock.
        let new_signals: Vec<&str> = decoded
            .points
            .iter()
            .map(|p| p.signal.as_str())
            .chain(decoded.series.iter().map(|s| s.signal.as_str()))
            .filter(|p| self.registry.get(p).is_none())
            .collect();
        if let Err(e) = self.registry.register_unknown(&new_signals) {
            tracing::warn!(error = %e, "bulk signal registration failed; registering one by one");
        }
        let mut by_signal: HashMap<gemba_store::SignalId, Vec<Sample>> = HashMap::new();
        for p in decoded.points {
            let reg = match self.registry.resolve_for_ingest(&p.signal) {
                Ok(r) => r,
                Err(msg) => {
                    report(&mut outcome, format!("{}.signal", p.location), msg);
                    continue;
                }
            };
            let ts = p.ts.unwrap_or(now);
            if let Err(e) = check_timestamp(ts, now, max_future) {
                report(&mut outcome, format!("{}.ts", p.location), e.to_string());
                continue;
            }
            match to_value(&reg.def, &p.value) {
                Ok(v) => by_signal
                    .entry(reg.id)
                    .or_default()
                    .push(Sample { ts, value: v }),
                Err(msg) => report(&mut outcome, format!("{}.value", p.location), msg),
            }
        }
        for s in decoded.series {
            let reg = match self.registry.resolve_for_ingest(&s.signal) {
                Ok(r) => r,
                Err(msg) => {
                    outcome.rejected += s.values.len().saturating_sub(1);
                    report(&mut outcome, format!("{}.signal", s.location), msg);
                    continue;
                }
            };
            let samples = by_signal.entry(reg.id).or_default();
            samples.reserve(s.values.len());
            for (i, (&ts, &value)) in s.ts.iter().zip(s.values.iter()).enumerate() {
                if let Err(e) = check_timestamp(ts, now, max_future) {
                    report(
                        &mut outcome,
                        format!("{}.ts[{i}]", s.location),
                        e.to_string(),
                    );
                    continue;
                }
                if let Err(msg) = reg.def.check_value(value) {
                    report(&mut outcome, format!("{}.values[{i}]", s.location), msg);
                    continue;
                }
                samples.push(Sample { ts, value });
            }
        }
        let mut events: Vec<Event> = Vec::with_capacity(decoded.events.len());
        let mut locations = Vec::with_capacity(decoded.events.len());
        for (i, e) in decoded.events.into_iter().enumerate() {
            let loc = format!("events[{i}]");
            if let Err(err) = check_timestamp(e.ts, now, max_future) {
                report(&mut outcome, format!("{loc}.ts"), err.to_string());
                continue;
            }
            if let Err(msg) = self.registry.resolve_asset_for_ingest(&e.asset) {
                report(&mut outcome, format!("{loc}.asset"), msg);
                continue;
            }
            if let Err(err) = e.validate() {
                let at = match &err {
                    gemba_core::ModelError::InvalidEntity { field, .. } => format!("{loc}.{field}"),
                    _ => loc,
                };
                report(&mut outcome, at, err.to_string());
                continue;
            }
            events.push(e);
            locations.push(loc);
        }
        let series = by_signal
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(signal, samples)| SeriesWrite { signal, samples })
            .collect();
        (WriteBatch { series, events }, outcome, locations)
    }

    /// Runs `f` on the logistics state on the blocking pool (inventory queries can take a few ms).
    pub async fn with_ledger<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        F: FnOnce(&logistics::Ledger) -> T + Send + 'static,
        T: Send + 'static,
    {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || f(&ledger.blocking_read()))
            .await
            .map_err(|e| EngineError::Internal(format!("logistics task failed: {e}")))
    }

    /// The latest samples of these signals (those that have data).
    pub(crate) fn latest_by_id(
        &self,
        ids: &[gemba_store::SignalId],
    ) -> std::collections::HashMap<gemba_store::SignalId, Sample> {
        let cache = self.latest.read();
        ids.iter()
            .filter_map(|id| Some((*id, *cache.get(id)?)))
            .collect()
    }

    /// Latest values of the signals at or below `prefix`.
    pub fn latest(&self, prefix: &str) -> Vec<LatestValue> {
        let regs = self.registry.signals_under(prefix);
        let cache = self.latest.read();
        regs.into_iter()
            .filter_map(|r| {
                let s = cache.get(&r.id)?;
                Some(LatestValue {
                    signal: r.def.path.clone(),
                    ts: s.ts,
                    value: s.value,
                    unit: r.def.unit.clone(),
                    state: if r.def.kind == SignalKind::State {
                        r.def.states.get(s.value as usize).cloned()
                    } else {
                        None
                    },
                })
            })
            .collect()
    }

    fn lookup(&self, path: &str) -> Result<Registered, EngineError> {
        self.registry
            .get(path)
            .ok_or_else(|| EngineError::UnknownSignal(path.to_owned()))
    }

    /// Raw samples `from <= ts < to` of one signal (at most `limit`).
    pub async fn range(
        &self,
        path: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Sample>, EngineError> {
        check_range(from, to)?;
        let reg = self.lookup(path)?;
        let store = self.store.clone();
        blocking(move || store.range(reg.id, from, to, limit)).await
    }

    /// Bucketed aggregates of one signal.
    pub async fn aggregate(
        &self,
        path: &str,
        from: Timestamp,
        to: Timestamp,
        step_ms: i64,
    ) -> Result<Aggregate, EngineError> {
        check_range(from, to)?;
        if step_ms <= 0 {
            return Err(EngineError::InvalidQuery("step must be positive".into()));
        }
        if (to - from) / step_ms > 1_000_000 {
            return Err(EngineError::InvalidQuery(format!(
                "{} buckets requested; at most 1,000,000 (use a larger step)",
                (to - from) / step_ms
            )));
        }
        let reg = self.lookup(path)?;
        let store = self.store.clone();
        blocking(move || store.aggregate(reg.id, from, to, step_ms)).await
    }

    /// Events matching a query.
    pub async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, EngineError> {
        check_range(query.from, query.to)?;
        let store = self.store.clone();
        blocking(move || store.events(&query)).await
    }

    /// Defines a signal over the API.
    pub fn define_signal(&self, def: SignalDef) -> Result<gemba_store::SignalId, EngineError> {
        let id = self.registry.define_signal(def)?;
        self.metrics
            .signals
            .set(self.registry.signal_count() as i64);
        Ok(id)
    }

    /// One compaction/rollup/retention pass on the blocking pool.
    pub async fn maintain(&self) -> Result<gemba_store::MaintenanceReport, EngineError> {
        let store = self.store.clone();
        let now = self.clock.now_ms();
        if let Some(days) = self.config.alarm_retention_days() {
            let alarms = self.alarms.clone();
            let cutoff = now - i64::from(days) * 86_400_000;
            let pruned = tokio::task::spawn_blocking(move || alarms.prune_closed(cutoff))
                .await
                .map_err(|e| EngineError::Internal(format!("alarm retention failed: {e}")))??;
            if pruned > 0 {
                tracing::info!(pruned, "closed alarms past alarms.retention_days deleted");
            }
        }
        blocking(move || store.maintain(now)).await
    }

    /// One retention pass at the clock's now: deletes the events, closed alarms, finished work
    /// orders and inspection results older than their `[retention]` days, and expired sessions (raw samples expire in [`Engine::maintain`]).
    /// Blocking: call it from a blocking thread ([`Engine::spawn_retention`] does).
    pub fn prune(&self) -> Result<RetentionReport, EngineError> {
        let now = self.clock.now_ms();
        let r = &self.config.retention;
        let cutoff = |days: u32| now.saturating_sub(i64::from(days) * 86_400_000);
        let mut report = RetentionReport::default();
        if let Some(days) = r.events_days {
            report.events = self
                .store
                .delete_events_before(cutoff(days), RETAINED_EVENT_TYPES)?;
        }
        if let Some(days) = self.config.alarm_retention_days() {
            report.alarms = self.alarms.prune_closed(cutoff(days))?;
        }
        if let Some(days) = r.work_orders_days {
            report.work_orders = self.maintenance.prune_done(cutoff(days))?;
        }
        if let Some(days) = r.inspections_days {
            report.inspections = self.store.delete_inspections_before(cutoff(days))?;
        }
        report.sessions = self
            .auth
            .prune_sessions(now)
            .map_err(|e| EngineError::Internal(format!("deleting expired sessions: {e}")))?;
        if report != RetentionReport::default() {
            tracing::info!(?report, "retention: expired data deleted");
        }
        Ok(report)
    }

    /// Runs [`Engine::prune`] on the blocking pool every `retention.interval_s` (the first pass at
    /// once) until the engine is dropped.
    pub fn spawn_retention(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.retention.interval_s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                match tokio::task::spawn_blocking(move || engine.prune()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention pass failed"),
                    Err(e) => tracing::warn!(error = %e, "retention pass failed"),
                }
            }
        })
    }

    /// Runs maintenance every `storage.maintenance_interval_s` until the engine is dropped.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.storage.maintenance_interval_s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                match engine.maintain().await {
                    Ok(r) => tracing::debug!(?r, "maintenance pass"),
                    Err(e) => tracing::warn!(error = %e, "maintenance pass failed"),
                }
            }
        })
    }
}

/// The events of a batch the OEE cache may have to see again (see `production`).
fn late_candidates(batch: &WriteBatch) -> Vec<(String, Timestamp)> {
    batch
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.body,
                gemba_core::EventBody::State { .. } | gemba_core::EventBody::Production { .. }
            )
        })
        .map(|e| (e.asset.clone(), e.ts))
        .collect()
}

fn check_range(from: Timestamp, to: Timestamp) -> Result<(), EngineError> {
    if from >= to {
        return Err(EngineError::InvalidQuery(format!(
            "from ({from}) must be before to ({to})"
        )));
    }
    Ok(())
}

async fn blocking<T, F>(f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("store task failed: {e}")))?
        .map_err(EngineError::from)
}

/// Converts a raw value for a signal: booleans become 0/1, state names their index.
fn to_value(def: &SignalDef, raw: &RawValue) -> Result<f64, String> {
    let v = match raw {
        RawValue::Number(v) => *v,
        RawValue::Bool(b) => f64::from(u8::from(*b)),
        RawValue::Text(s) => match def.kind {
            SignalKind::State => match def.state_index(s) {
                Some(i) => i as f64,
                None => {
                    return Err(format!(
                        "{s:?} is not a state of {}; known states: {}",
                        def.path,
                        def.states.join(", ")
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "text {s:?} given for {} signal {}; send a number",
                    kind_name(def.kind),
                    def.path
                ));
            }
        },
    };
    def.check_value(v)?;
    Ok(v)
}

fn kind_name(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::Gauge => "gauge",
        SignalKind::Counter => "counter",
        SignalKind::State => "state",
        SignalKind::Boolean => "boolean",
    }
}
