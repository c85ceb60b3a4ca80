//! The asset registry: the in-memory asset model with every signal's store id, persisted through
//! the store so that definitions made over the API survive a restart.
//!
//! Locks: `registering` (a mutex) before `inner` (a read-write lock). Every method takes `inner`
//! for one short, non-nested critical section and calls neither the store nor caller code while
//! holding it; store writes happen between two critical sections. parking_lot's read locks are
//! not recursive (a queued writer blocks new readers), so a second `inner.read()` on a thread
//! that already holds one deadlocks: never call a `Registry` method while holding `inner`.

use std::collections::HashMap;
use std::sync::Arc;

use gemba_core::{AssetModel, AssetNode, LotDef, Plant, SignalDef, TreeNode};
use gemba_store::{SignalId, Store};
use parking_lot::{Mutex, RwLock};

use crate::EngineError;
use crate::config::UnknownSignals;

/// A registered signal: its id and definition.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: SignalId,
    pub def: Arc<SignalDef>,
}

#[derive(Debug, Default)]
struct Inner {
    model: AssetModel,
    by_path: HashMap<String, Registered>,
    by_id: HashMap<SignalId, Arc<SignalDef>>,
}

impl Inner {
    /// Nodes on the way down to the node `path` that the model lacks, parents first; paths in
    /// `seen` were collected already and are skipped.
    fn missing_nodes(
        &self,
        path: &str,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<Vec<AssetNode>, EngineError> {
        let segs: Vec<&str> = path.split('/').collect();
        let mut out = Vec::new();
        for depth in 1..=segs.len() {
            let p = segs[..depth].join("/");
            if self.model.node(&p).is_some() || !seen.insert(p.clone()) {
                continue;
            }
            let level = gemba_core::level_of(&p).ok_or_else(|| {
                EngineError::Model(gemba_core::ModelError::Unknown {
                    level: "asset",
                    path: p.clone(),
                })
            })?;
            gemba_core::check_path(&p, level)?;
            out.push(AssetNode {
                path: p,
                level,
                kind: None,
                ideal_cycle_time_s: None,
                timezone: None,
            });
        }
        Ok(out)
    }

    /// Adds a stored signal to the model and both indexes.
    fn add_signal(&mut self, id: SignalId, def: SignalDef) -> Result<(), EngineError> {
        self.model.define_signal(def.clone())?;
        let def = Arc::new(def);
        self.by_id.insert(id, def.clone());
        self.by_path
            .insert(def.path.clone(), Registered { id, def });
        Ok(())
    }
}

/// Thread-safe asset model plus signal ids.
#[derive(Debug)]
pub struct Registry {
    inner: RwLock<Inner>,
    /// Serialises the registration of unknown signals (check, persist, insert) so that two
    /// batches naming the same new signal do not both write it. Never taken while `inner` is held.
    registering: Mutex<()>,
    store: Arc<dyn Store>,
    policy: UnknownSignals,
    default_retention_days: Option<u32>,
}

impl Registry {
    /// Loads the stored model, then applies the plant file (the plant file wins for what it declares).
    pub fn load(
        store: Arc<dyn Store>,
        plant: Option<&Plant>,
        policy: UnknownSignals,
        default_retention_days: Option<u32>,
    ) -> Result<Self, EngineError> {
        let mut inner = Inner::default();
        for (_, json) in store.records("node")? {
            let node: AssetNode = serde_json::from_str(&json).map_err(|e| {
                EngineError::Internal(format!("stored asset node is unreadable: {e}"))
            })?;
            inner.model.define_node(node)?;
        }
        for (_, json) in store.records("lot")? {
            let lot: LotDef = serde_json::from_str(&json)
                .map_err(|e| EngineError::Internal(format!("stored lot is unreadable: {e}")))?;
            inner.model.lots.insert(lot.id.clone(), lot);
        }
        for (_, json) in store.records("operator")? {
            let op: gemba_core::OperatorDef = serde_json::from_str(&json).map_err(|e| {
                EngineError::Internal(format!("stored operator is unreadable: {e}"))
            })?;
            inner.model.operators.insert(op.id.clone(), op);
        }
        for (_, json) in store.records("shift")? {
            let shift: gemba_core::ShiftDef = serde_json::from_str(&json)
                .map_err(|e| EngineError::Internal(format!("stored shift is unreadable: {e}")))?;
            inner.model.shifts.push(shift);
        }
        for (id, def) in store.signals()? {
            inner.add_signal(id, def)?;
        }
        let reg = Registry {
            inner: RwLock::new(inner),
            registering: Mutex::new(()),
            store,
            policy,
            default_retention_days,
        };
        if let Some(plant) = plant {
            reg.apply_plant(plant)?;
        }
        Ok(reg)
    }

    /// Declares everything in a plant file (nodes, signals, lots, operators, shifts).
    pub fn apply_plant(&self, plant: &Plant) -> Result<(), EngineError> {
        let model = AssetModel::from_plant(plant)?;
        for node in model.nodes() {
            self.define_node(node.clone())?;
        }
        for sig in model.signals() {
            self.define_signal(sig.clone())?;
        }
        for lot in model.lots.values() {
            self.define_lot(lot.clone())?;
        }
        self.inner.write().model.enterprise = model.enterprise.clone();
        for op in model.operators.values() {
            self.define_operator(op.clone())?;
        }
        for shift in &model.shifts {
            self.define_shift(shift.clone())?;
        }
        Ok(())
    }

    /// Adds or replaces a signal definition; persists it. Returns its id.
    pub fn define_signal(&self, mut def: SignalDef) -> Result<SignalId, EngineError> {
        def.validate()?;
        if def.retention_days.is_none() {
            def.retention_days = self.default_retention_days;
        }
        if let Some(existing) = self.get(&def.path)
            && *existing.def == def
        {
            return Ok(existing.id);
        }
        let machine = def.machine_path().to_owned();
        self.persist_parents(&machine)?;
        let id = self.store.put_signal(&def)?;
        let mut inner = self.inner.write();
        inner.add_signal(id, def)?;
        Ok(id)
    }

    /// Adds or replaces a site, area, line or machine; persists it with its parents.
    pub fn define_node(&self, node: AssetNode) -> Result<(), EngineError> {
        gemba_core::check_path(&node.path, node.level)?;
        if let Some((parent, _)) = node.path.rsplit_once('/') {
            self.persist_parents(parent)?;
        }
        if self.inner.read().model.node(&node.path) == Some(&node) {
            return Ok(());
        }
        self.store
            .put_record("node", &node.path, &to_json(&node)?)?;
        self.inner.write().model.define_node(node)?;
        Ok(())
    }

    fn persist_parents(&self, path: &str) -> Result<(), EngineError> {
        let nodes = self
            .inner
            .read()
            .missing_nodes(path, &mut std::collections::HashSet::new())?;
        self.persist_nodes(nodes)
    }

    /// Stores new nodes (parents before children) in one transaction and adds them to the model.
    fn persist_nodes(&self, nodes: Vec<AssetNode>) -> Result<(), EngineError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let records = nodes
            .iter()
            .map(|n| Ok((n.path.clone(), to_json(n)?)))
            .collect::<Result<Vec<_>, EngineError>>()?;
        self.store.put_records("node", &records)?;
        let mut inner = self.inner.write();
        for n in nodes {
            inner.model.define_node(n)?;
        }
        Ok(())
    }

    /// Adds or replaces a material lot; persists it.
    pub fn define_lot(&self, lot: LotDef) -> Result<(), EngineError> {
        lot.validate()?;
        self.store.put_record("lot", &lot.id, &to_json(&lot)?)?;
        self.inner.write().model.lots.insert(lot.id.clone(), lot);
        Ok(())
    }

    /// Adds or replaces an operator; persists it.
    pub fn define_operator(&self, op: gemba_core::OperatorDef) -> Result<(), EngineError> {
        gemba_core::check_segment(&op.id).map_err(|reason| {
            gemba_core::ModelError::InvalidName {
                level: "operator",
                name: op.id.clone(),
                reason,
            }
        })?;
        if op.name.trim().is_empty() {
            return Err(gemba_core::ModelError::InvalidEntity {
                what: "operator",
                id: op.id.clone(),
                field: "name",
                reason: "must not be empty".into(),
            }
            .into());
        }
        self.store.put_record("operator", &op.id, &to_json(&op)?)?;
        self.inner.write().model.operators.insert(op.id.clone(), op);
        Ok(())
    }

    /// Adds or replaces a shift (by name); persists it.
    pub fn define_shift(&self, shift: gemba_core::ShiftDef) -> Result<(), EngineError> {
        gemba_core::check_segment(&shift.name).map_err(|reason| {
            gemba_core::ModelError::InvalidName {
                level: "shift",
                name: shift.name.clone(),
                reason,
            }
        })?;
        shift.minutes()?;
        // Shifts must not overlap (OEE by shift counts every minute once).
        let mut all = self.shifts();
        all.retain(|s| s.name != shift.name);
        all.push(shift.clone());
        crate::production::shift_windows(&all).map_err(|e| {
            gemba_core::ModelError::InvalidEntity {
                what: "shift",
                id: shift.name.clone(),
                field: "start/end",
                reason: e.to_string(),
            }
        })?;
        self.store
            .put_record("shift", &shift.name, &to_json(&shift)?)?;
        let mut inner = self.inner.write();
        inner.model.shifts.retain(|s| s.name != shift.name);
        inner.model.shifts.push(shift);
        inner.model.shifts.sort_by(|a, b| a.start.cmp(&b.start));
        Ok(())
    }

    /// Whether resolving this batch may write to the store: new signals or assets are registered
    /// on ingest (policy `register`) and one of them is unknown. Such a batch is resolved on the
    /// blocking pool, never on an async worker.
    pub fn would_register(&self, decoded: &gemba_ingest::DecodedBatch) -> bool {
        if self.policy != UnknownSignals::Register {
            return false;
        }
        let inner = self.inner.read();
        decoded
            .points
            .iter()
            .map(|p| p.signal.as_str())
            .chain(decoded.series.iter().map(|s| s.signal.as_str()))
            .any(|p| !inner.by_path.contains_key(p))
            || decoded
                .events
                .iter()
                .any(|e| inner.model.node(&e.asset).is_none())
    }

    /// The registered signal at `path`.
    pub fn get(&self, path: &str) -> Option<Registered> {
        self.inner.read().by_path.get(path).cloned()
    }

    /// The definition of a signal id.
    pub fn def(&self, id: SignalId) -> Option<Arc<SignalDef>> {
        self.inner.read().by_id.get(&id).cloned()
    }

    /// Resolves a signal for ingest: known, or registered now when the policy allows.
    pub fn resolve_for_ingest(&self, path: &str) -> Result<Registered, String> {
        if let Some(r) = self.get(path) {
            return Ok(r);
        }
        match self.policy {
            UnknownSignals::Reject => Err(format!(
                "unknown signal {path:?}: declare it in the plant file or with POST /api/v1/signals, or set ingest.unknown_signals = \"register\""
            )),
            UnknownSignals::Register => {
                let def = SignalDef::auto(path);
                def.validate().map_err(|e| e.to_string())?;
                let id = self.define_signal(def).map_err(|e| e.to_string())?;
                self.def(id)
                    .map(|def| Registered { id, def })
                    .ok_or_else(|| format!("signal {path:?} vanished while registering"))
            }
        }
    }

    /// Registers every unknown, valid signal path of `paths` at once (one store transaction for
    /// the signals and one for their new parent assets) when the policy allows. Invalid paths are
    /// left alone: resolving them later reports the error for each item.
    ///
    /// Takes a slice, not an iterator: the lock below must never be held while caller code runs
    /// (a lazy iterator that read the registry again under this read lock deadlocked every ingest
    /// once a writer queued: parking_lot's read locks are not recursive). Registrations are
    /// serialised by `registering` (taken before `inner`, see the lock order in the module doc).
    pub fn register_unknown(&self, paths: &[&str]) -> Result<(), EngineError> {
        if self.policy != UnknownSignals::Register {
            return Ok(());
        }
        let _one_at_a_time = self.registering.lock();
        let mut defs: Vec<SignalDef> = Vec::new();
        {
            let inner = self.inner.read();
            let mut seen = std::collections::HashSet::new();
            for &p in paths {
                if inner.by_path.contains_key(p) || !seen.insert(p) {
                    continue;
                }
                let mut def = SignalDef::auto(p);
                def.retention_days = self.default_retention_days;
                if def.validate().is_ok() {
                    defs.push(def);
                }
            }
        }
        if defs.is_empty() {
            return Ok(());
        }
        // Parent nodes that do not exist yet, parents before children.
        let mut nodes: Vec<AssetNode> = Vec::new();
        {
            let inner = self.inner.read();
            let mut seen = std::collections::HashSet::new();
            for d in &defs {
                nodes.extend(inner.missing_nodes(d.machine_path(), &mut seen)?);
            }
        }
        self.persist_nodes(nodes)?;
        let ids = self.store.put_signals(&defs)?;
        let mut inner = self.inner.write();
        for (id, def) in ids.into_iter().zip(defs) {
            inner.add_signal(id, def)?;
        }
        Ok(())
    }

    /// Whether an asset path (site … machine) exists, registering it when the policy allows.
    pub fn resolve_asset_for_ingest(&self, path: &str) -> Result<(), String> {
        if self.inner.read().model.node(path).is_some() {
            return Ok(());
        }
        match self.policy {
            UnknownSignals::Reject => Err(format!(
                "unknown asset {path:?}: declare it in the plant file or with POST /api/v1/assets"
            )),
            UnknownSignals::Register => {
                let level = gemba_core::level_of(path)
                    .filter(|l| *l != gemba_core::Level::Signal)
                    .ok_or_else(|| {
                        format!("asset {path:?} must have 1 to 4 segments (site/area/line/machine)")
                    })?;
                gemba_core::check_path(path, level).map_err(|e| e.to_string())?;
                self.persist_parents(path).map_err(|e| e.to_string())
            }
        }
    }

    /// Signals at or below `prefix` (all when empty), sorted by path.
    pub fn signals_under(&self, prefix: &str) -> Vec<Registered> {
        let inner = self.inner.read();
        let mut v: Vec<Registered> = inner
            .by_path
            .values()
            .filter(|r| gemba_core::is_under(&r.def.path, prefix))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.def.path.cmp(&b.def.path));
        v
    }

    pub fn tree(&self) -> TreeNode {
        self.inner.read().model.tree()
    }

    pub fn node(&self, path: &str) -> Option<AssetNode> {
        self.inner.read().model.node(path).cloned()
    }

    pub fn lots(&self) -> Vec<LotDef> {
        self.inner.read().model.lots.values().cloned().collect()
    }

    pub fn operators(&self) -> Vec<gemba_core::OperatorDef> {
        self.inner
            .read()
            .model
            .operators
            .values()
            .cloned()
            .collect()
    }

    pub fn shifts(&self) -> Vec<gemba_core::ShiftDef> {
        self.inner.read().model.shifts.clone()
    }

    pub fn signal_count(&self) -> usize {
        self.inner.read().by_path.len()
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, EngineError> {
    serde_json::to_string(v).map_err(|e| EngineError::Internal(format!("cannot serialise: {e}")))
}
