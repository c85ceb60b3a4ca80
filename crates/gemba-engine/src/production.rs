//! Machine states, OEE and its losses over stored events, with causes.
//!
//! - **States** come from `state` events (`{state, reason}`) or, for a machine listed in the
//!   configuration's `infer`, from a power or speed signal (running above a threshold).
//! - **OEE** is computed per machine in quarter-hour buckets by `gemba_analytics::oee`. Buckets
//!   that can no longer change (older than `grace_s`, and no short stop still open in them) are
//!   cached with the machine's state and parts-since-setup at their end; a later query only reads
//!   the events after the cache and extends it. Hours, shifts, days and lines are sums of buckets.
//! - **Time zones**: shifts and breaks are wall-clock times of the machine's site, and hours and
//!   days of a report are the site's local hours and days (`gemba_core::zone`: daylight saving
//!   makes a night shift or a day an hour shorter or longer). A site without a `timezone` uses
//!   the configuration's `plant.timezone`, else UTC. Every IANA zone in use since 1990 has an
//!   offset of whole quarter hours, so local boundaries fall on bucket boundaries.
//! - **Causes**: each loss keeps the reasons of its states (`tool_wear_failure`, `changeover`,
//!   `starved`); alarms of the machine are joined by time: scrap made while an SPC alarm was open
//!   is attributed to it, breakdowns that began while (or within an hour after) another alarm was
//!   open to that alarm.
//! - **Configuration** (state rules, inferred machines, planned downtime, breaks) is one store
//!   record (`production_config`); changing it clears the cache.
//!
//! All functions here block on the store: call them off the async workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use gemba_analytics::oee::{
    self, Count, DailyWindow, Losses, Oee, Segment, StateChange, StateRules, TimeKind,
};
use gemba_core::{EventBody, Level, Timestamp, Zone, check_path};
use gemba_store::{EventQuery, Store};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::alarms::{AlarmQuery, AlarmState};

/// Bucket width of the cache: a quarter hour, so shifts may start on any quarter.
pub const BUCKET_MS: i64 = 15 * 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
const CONFIG_RECORD: &str = "production_config";
const MAX_EVENTS: usize = 5_000_000;

/// A machine whose state is inferred from a signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRule {
    pub machine: String,
    /// A signal of the machine, e.g. `power` or `spindle_speed` (name or full path).
    pub signal: String,
    /// Running while the value is above this.
    pub running_above: f64,
}

/// A one-off planned downtime (maintenance window, holiday) of an asset and everything below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedDowntime {
    pub asset: String,
    pub from: Timestamp,
    pub to: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A daily break (planned downtime for every machine), `HH:MM` in the local time of each
/// machine's site, like shifts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakDef {
    pub name: String,
    pub start: String,
    pub end: String,
}

/// The production configuration (`GET/PUT /api/v1/production/config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductionConfig {
    pub states: StateRules,
    pub infer: Vec<InferRule>,
    pub planned_downtime: Vec<PlannedDowntime>,
    pub breaks: Vec<BreakDef>,
    /// Buckets younger than this are recomputed on every query (late events still count).
    pub grace_s: Option<u64>,
}

/// Why the production subsystem refused a configuration or a query: one variant per cause. The
/// API decides the status code of each (`gemba_api::error`).
#[derive(Debug, thiserror::Error)]
pub enum ProductionError {
    /// A field of the configuration or a query parameter is missing, malformed or out of range.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    /// A site's (or the plant's) time zone is not an IANA name.
    #[error("site {site:?}: timezone {reason}")]
    BadTimezone { site: String, reason: String },
    /// The stored configuration does not parse (written by another version?).
    #[error("stored production config is unreadable: {0}")]
    UnreadableConfig(String),
    #[error("production config cannot be written as JSON: {0}")]
    Unwritable(String),
}

/// A refusal of `field`.
fn invalid(field: &str, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Production(ProductionError::Invalid {
        field: field.to_owned(),
        reason: reason.to_string(),
    })
}

fn minutes(field: &str, name: &str, start: &str, end: &str) -> Result<DailyWindow, EngineError> {
    let def = gemba_core::ShiftDef {
        name: name.to_owned(),
        start: start.to_owned(),
        end: end.to_owned(),
    };
    let (s, e) = def.minutes().map_err(|e| invalid(field, e))?;
    Ok(DailyWindow {
        name: name.to_owned(),
        start_min: s,
        end_min: e,
    })
}

/// The shifts as daily windows, checked for overlaps.
pub fn shift_windows(shifts: &[gemba_core::ShiftDef]) -> Result<Vec<DailyWindow>, EngineError> {
    let w = shifts
        .iter()
        .map(|s| minutes("shifts", &s.name, &s.start, &s.end))
        .collect::<Result<Vec<_>, _>>()?;
    oee::check_shifts(&w).map_err(|e| invalid("shifts", e))?;
    Ok(w)
}

impl ProductionConfig {
    /// Checks every field; errors name it.
    pub fn validate(&self, registry: &crate::Registry) -> Result<(), EngineError> {
        self.states.validate().map_err(|e| invalid("states", e))?;
        for (i, r) in self.infer.iter().enumerate() {
            check_machine(registry, &r.machine)
                .map_err(|e| invalid(&format!("infer[{i}].machine"), e))?;
            let path = signal_path(&r.machine, &r.signal);
            if registry.get(&path).is_none() {
                return Err(invalid(
                    &format!("infer[{i}].signal"),
                    format!("unknown signal {path:?}"),
                ));
            }
            if !r.running_above.is_finite() {
                return Err(invalid(
                    &format!("infer[{i}].running_above"),
                    "must be finite",
                ));
            }
        }
        for (i, p) in self.planned_downtime.iter().enumerate() {
            if registry.node(&p.asset).is_none() {
                return Err(invalid(
                    &format!("planned_downtime[{i}].asset"),
                    format!("unknown asset {:?}", p.asset),
                ));
            }
            if p.from >= p.to {
                return Err(invalid(
                    &format!("planned_downtime[{i}].to"),
                    format!("{} must be after from ({})", p.to, p.from),
                ));
            }
        }
        let breaks = self
            .breaks
            .iter()
            .enumerate()
            .map(|(i, b)| minutes(&format!("breaks[{i}]"), &b.name, &b.start, &b.end))
            .collect::<Result<Vec<_>, _>>()?;
        oee::check_shifts(&breaks).map_err(|e| invalid("breaks", e))?;
        Ok(())
    }
}

fn signal_path(machine: &str, signal: &str) -> String {
    if signal.contains('/') {
        signal.to_owned()
    } else {
        format!("{machine}/{signal}")
    }
}

fn check_machine(registry: &crate::Registry, machine: &str) -> Result<(), String> {
    check_path(machine, Level::Machine).map_err(|e| e.to_string())?;
    match registry.node(machine) {
        Some(n) if n.level == Level::Machine => Ok(()),
        _ => Err(format!("unknown machine {machine:?}")),
    }
}

/// How a range is split in an OEE report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Total,
    Hour,
    Shift,
    Day,
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "total" => By::Total,
            "hour" => By::Hour,
            "shift" => By::Shift,
            "day" => By::Day,
            _ => return Err(format!("{s:?} is not one of total, hour, shift, day")),
        })
    }
}

/// One row of a report: a time range with the figures summed over the asset's machines.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub from: Timestamp,
    pub to: Timestamp,
    /// `from` and `to` as local times of the report's zone with their offset (ISO 8601).
    pub from_local: String,
    pub to_local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<String>,
    #[serde(flatten)]
    pub oee: Oee,
}

/// One machine's figures over the whole range.
#[derive(Debug, Clone, Serialize)]
pub struct MachineOee {
    pub machine: String,
    pub ideal_cycle_time_s: Option<f64>,
    #[serde(flatten)]
    pub oee: Oee,
}

/// A loss with what Gemba knows caused it.
#[derive(Debug, Clone, Serialize)]
pub struct Cause {
    /// `breakdowns`, `setup`, `small_stops`, `other_stops`, `production_rejects`, `startup_rejects`.
    pub loss: String,
    pub machine: String,
    /// Lost time in seconds (time losses) …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// … or scrapped parts (quality losses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
    /// The state reason (`tool_wear_failure`, `changeover`, `starved`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// In words: "quality loss on …/line1/cnc3: 4 scrap while SPC alarm 12 (line1.cnc3.spc) was open".
    pub text: String,
}

/// An OEE report.
#[derive(Debug, Clone, Serialize)]
pub struct OeeReport {
    pub asset: String,
    /// The IANA time zone of the asset's site: shifts, hours and days are local to it.
    pub timezone: String,
    /// The range actually computed (`from` floored and `to` ceiled to quarter hours).
    pub from: Timestamp,
    pub to: Timestamp,
    pub from_local: String,
    pub to_local: String,
    pub by: By,
    pub total: Oee,
    pub machines: Vec<MachineOee>,
    pub rows: Vec<Row>,
    /// Largest first.
    pub causes: Vec<Cause>,
    /// Quarter-hour buckets read from the cache and computed for this query.
    pub buckets_cached: usize,
    pub buckets_computed: usize,
}

type Reasons = Vec<(TimeKind, String, f64)>;

#[derive(Debug, Default)]
struct MachineCache {
    ready: bool,
    /// The zone the buckets were computed in (a site's new zone rebuilds them).
    zone: String,
    origin: Timestamp,
    /// Buckets `[origin, final_until)` are final.
    final_until: Timestamp,
    buckets: Vec<Losses>,
    reasons: Vec<Reasons>,
    /// The state in force at `final_until` and the parts made since the last setup.
    carry: Option<StateChange>,
    since_setup: u32,
}

/// OEE state of the engine: the configuration and the per-machine caches.
#[derive(Debug)]
pub struct Production {
    config: RwLock<ProductionConfig>,
    cache: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One machine's cache and the earliest event committed since it was last looked at.
#[derive(Debug)]
struct Entry {
    /// `i64::MAX` when nothing arrived; set without the lock by the write path.
    earliest_new: std::sync::atomic::AtomicI64,
    cache: Mutex<MachineCache>,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            earliest_new: std::sync::atomic::AtomicI64::new(i64::MAX),
            cache: Mutex::new(MachineCache::default()),
        }
    }
}

impl Production {
    pub fn load(store: Arc<dyn Store>) -> Result<Production, EngineError> {
        let config = match store.record(CONFIG_RECORD, "default")? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                EngineError::Production(ProductionError::UnreadableConfig(e.to_string()))
            })?,
            None => ProductionConfig::default(),
        };
        Ok(Production {
            config: RwLock::new(config),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> ProductionConfig {
        self.config.read().clone()
    }

    /// Drops every cached bucket (after a configuration change).
    pub fn clear_cache(&self) {
        self.cache.lock().clear();
    }

    /// Called after a commit with (machine, time) of the state and production events it stored: a machine whose
    /// cache already holds final buckets at or after an event's time is rebuilt by its next query
    /// (late data, e.g. a machine that buffered while offline).
    pub fn committed(&self, events: &[(String, Timestamp)]) {
        if events.is_empty() {
            return;
        }
        let map = self.cache.lock();
        for (asset, ts) in events {
            if let Some(entry) = map.get(asset) {
                entry
                    .earliest_new
                    .fetch_min(*ts, std::sync::atomic::Ordering::AcqRel);
            }
        }
    }
}

fn floor_q(t: Timestamp) -> Timestamp {
    t.div_euclid(BUCKET_MS) * BUCKET_MS
}
fn ceil_q(t: Timestamp) -> Timestamp {
    floor_q(t + BUCKET_MS - 1)
}

/// What one extension of a machine's timeline computed.
struct Computed {
    buckets: Vec<Losses>,
    reasons: Vec<Reasons>,
    segments: Vec<Segment>,
}

impl crate::Engine {
    pub fn production(&self) -> &Production {
        &self.production
    }

    /// Replaces the production configuration (validated, persisted) and clears the cache.
    pub fn set_production_config(&self, cfg: ProductionConfig) -> Result<(), EngineError> {
        cfg.validate(&self.registry)?;
        let json = serde_json::to_string(&cfg)
            .map_err(|e| EngineError::Production(ProductionError::Unwritable(e.to_string())))?;
        self.store.put_record(CONFIG_RECORD, "default", &json)?;
        *self.production.config.write() = cfg;
        self.production.clear_cache();
        Ok(())
    }

    /// The machines at or below `asset` (an error names an unknown asset).
    pub fn machines_under(&self, asset: &str) -> Result<Vec<String>, EngineError> {
        let asset = asset.trim_end_matches('/');
        if self.registry.node(asset).is_none() {
            return Err(ProductionError::UnknownAsset(asset.to_owned()).into());
        }
        let mut out = Vec::new();
        fn walk(n: &gemba_core::TreeNode, under: &str, out: &mut Vec<String>) {
            if n.level == Level::Machine && gemba_core::is_under(&n.path, under) {
                out.push(n.path.clone());
            }
            for c in &n.children {
                walk(c, under, out);
            }
        }
        walk(&self.registry.tree(), asset, &mut out);
        Ok(out)
    }

    /// The state intervals of a machine in `[from, to)` (blocking).
    pub fn machine_states(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Segment>, EngineError> {
        check_machine(&self.registry, machine).map_err(|e| invalid("machine", e))?;
        if from >= to {
            return Err(invalid("to", format!("{to} must be after from ({from})")));
        }
        let cfg = self.production.config();
        let horizon = to.min(self.now());
        let initial = self.state_before(machine, from, &cfg)?;
        let changes = self.state_changes(machine, from, horizon.max(from), &cfg)?;
        Ok(oee::segments(
            initial.as_ref(),
            &changes,
            from,
            horizon.max(from),
            &cfg.states,
        ))
    }

    fn state_changes(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
        cfg: &ProductionConfig,
    ) -> Result<Vec<StateChange>, EngineError> {
        if from >= to {
            return Ok(Vec::new());
        }
        if let Some(rule) = cfg.infer.iter().find(|r| r.machine == machine) {
            let path = signal_path(machine, &rule.signal);
            let reg = self
                .registry
                .get(&path)
                .ok_or_else(|| EngineError::UnknownSignal(path.clone()))?;
            let samples = self.store.range(reg.id, from, to, MAX_EVENTS)?;
            let pts: Vec<(i64, f64)> = samples.iter().map(|s| (s.ts, s.value)).collect();
            return Ok(oee::infer_states(&pts, rule.running_above));
        }
        let events = self.store.events(&EventQuery {
            from,
            to,
            asset_prefix: Some(machine.to_owned()),
            kind: Some("state".into()),
            limit: MAX_EVENTS,
        })?;
        Ok(events
            .into_iter()
            .filter(|e| e.event.asset == machine)
            .filter_map(|e| match e.event.body {
                EventBody::State { state, reason } => Some(StateChange {
                    ts: e.event.ts,
                    state,
                    reason,
                }),
                _ => None,
            })
            .collect())
    }

    /// The last state change before `at` (searched back up to a year).
    fn state_before(
        &self,
        machine: &str,
        at: Timestamp,
        cfg: &ProductionConfig,
    ) -> Result<Option<StateChange>, EngineError> {
        for back in [HOUR_MS, DAY_MS, 31 * DAY_MS, 366 * DAY_MS] {
            let changes = self.state_changes(machine, at - back, at, cfg)?;
            if let Some(last) = changes.into_iter().last() {
                return Ok(Some(last));
            }
        }
        Ok(None)
    }

    fn counts(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Count>, EngineError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let events = self.store.events(&EventQuery {
            from,
            to,
            asset_prefix: Some(machine.to_owned()),
            kind: Some("production".into()),
            limit: MAX_EVENTS,
        })?;
        Ok(events
            .into_iter()
            .filter(|e| e.event.asset == machine)
            .filter_map(|e| match e.event.body {
                EventBody::Production { good, scrap, .. } => Some(Count {
                    ts: e.event.ts,
                    good,
                    scrap,
                }),
                _ => None,
            })
            .collect())
    }

    /// Planned downtime of a machine in `[from, to)`: outside the shifts, breaks, calendar entries.
    fn planned_windows(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
        cfg: &ProductionConfig,
        shifts: &[DailyWindow],
        zone: &Zone,
    ) -> Result<Vec<(i64, i64)>, EngineError> {
        let mut w = oee::outside_shifts(shifts, zone, from, to);
        let breaks = cfg
            .breaks
            .iter()
            .map(|b| minutes("breaks", &b.name, &b.start, &b.end))
            .collect::<Result<Vec<_>, _>>()?;
        w.extend(
            oee::occurrences(&breaks, zone, from, to)
                .into_iter()
                .map(|(_, a, z)| (a, z)),
        );
        w.extend(
            cfg.planned_downtime
                .iter()
                .filter(|p| gemba_core::is_under(machine, &p.asset))
                .map(|p| (p.from.max(from), p.to.min(to))),
        );
        Ok(w)
    }

    /// Computes `[from, to)` of one machine starting from `carry` (the state in force at `from`).
    #[allow(clippy::too_many_arguments)]
    fn compute(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
        horizon: Timestamp,
        carry: Option<&StateChange>,
        since_setup: &mut u32,
        cfg: &ProductionConfig,
        shifts: &[DailyWindow],
        zone: &Zone,
    ) -> Result<Computed, EngineError> {
        let h = horizon.clamp(from, to);
        let mut changes = self.state_changes(machine, from, h, cfg)?;
        // A repeated state (an inferred machine's first sample, a re-sent event) does not end
        // the interval in force: a stop keeps its whole length.
        if let (Some(c), Some(first)) = (carry, changes.first())
            && c.state == first.state
            && c.reason == first.reason
        {
            changes.remove(0);
        }
        let segments = oee::segments(carry, &changes, from, h, &cfg.states);
        let counts = self.counts(machine, from, h)?;
        let split = oee::split_counts(&counts, &segments, &cfg.states, since_setup);
        let planned = self.planned_windows(machine, from, to, cfg, shifts, zone)?;
        let ideal = self
            .registry
            .node(machine)
            .and_then(|n| n.ideal_cycle_time_s);
        let buckets = oee::bucketize(from, to, BUCKET_MS, &segments, &split, &planned, ideal);
        let mut reasons: Vec<Reasons> = vec![Vec::new(); buckets.len()];
        for s in &segments {
            if matches!(
                s.kind,
                TimeKind::Running | TimeKind::NoData | TimeKind::Planned
            ) {
                continue;
            }
            let reason = s.reason.clone().unwrap_or_else(|| s.state.clone());
            let mut t = floor_q(s.start.max(from));
            while t < s.end.min(to) {
                let (a, z) = (s.start.max(t), s.end.min(t + BUCKET_MS));
                let i = usize::try_from((t - from) / BUCKET_MS).unwrap_or(0);
                if let Some(r) = reasons.get_mut(i)
                    && z > a
                {
                    r.push((s.kind, reason.clone(), (z - a) as f64 / 1000.0));
                }
                t += BUCKET_MS;
            }
        }
        Ok(Computed {
            buckets,
            reasons,
            segments,
        })
    }

    /// Quarter-hour buckets `[from, to)` of one machine (aligned), from the cache where final.
    /// Returns the buckets, their reasons and how many came from the cache.
    fn machine_buckets(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
        cfg: &ProductionConfig,
        shifts: &[DailyWindow],
        zone: &Zone,
    ) -> Result<(Vec<Losses>, Vec<Reasons>, usize), EngineError> {
        let now = self.now();
        let grace = i64::try_from(cfg.grace_s.unwrap_or(120)).unwrap_or(120) * 1000;
        let entry = {
            let mut map = self.production.cache.lock();
            map.entry(machine.to_owned()).or_default().clone()
        };
        let mut c = entry.cache.lock();
        let earliest = entry
            .earliest_new
            .swap(i64::MAX, std::sync::atomic::Ordering::AcqRel);
        if !c.ready || from < c.origin || earliest < c.final_until || c.zone != zone.name() {
            // A new cache starting at `from`.
            *c = MachineCache {
                ready: true,
                zone: zone.name().to_owned(),
                origin: from,
                final_until: from,
                buckets: Vec::new(),
                reasons: Vec::new(),
                carry: self.state_before(machine, from, cfg)?,
                since_setup: cfg.states.startup_parts,
            };
        }
        let horizon = now.min(to);
        let mut cached = 0;
        if c.final_until < to {
            let start = c.final_until;
            let mut since = c.since_setup;
            let computed = self.compute(
                machine,
                start,
                to.max(start),
                horizon,
                c.carry.clone().as_ref(),
                &mut since,
                cfg,
                shifts,
                zone,
            )?;
            // How far the result is final.
            let mut fin = floor_q((now - grace).min(horizon)).max(start);
            for s in &computed.segments {
                if !s.final_ {
                    fin = fin.min(floor_q(s.start).max(start));
                }
            }
            let n_final = usize::try_from((fin - start) / BUCKET_MS).unwrap_or(0);
            if n_final > 0 {
                let carry = computed
                    .segments
                    .iter()
                    .rev()
                    .find(|s| s.start < fin && s.kind != TimeKind::NoData)
                    .map(|s| StateChange {
                        ts: s.start,
                        state: s.state.clone(),
                        reason: s.reason.clone(),
                    });
                // Parts since setup at `fin`: replay the counts before it.
                let mut since_fin = c.since_setup;
                let mut counts = self.counts(machine, start, fin)?;
                counts.push(Count {
                    ts: fin,
                    good: 0,
                    scrap: 0,
                });
                oee::split_counts(&counts, &computed.segments, &cfg.states, &mut since_fin);
                c.buckets.extend_from_slice(&computed.buckets[..n_final]);
                c.reasons.extend_from_slice(&computed.reasons[..n_final]);
                if carry.is_some() {
                    // A segment starting before `start` is the old carry itself.
                    c.carry = match (&c.carry, carry) {
                        (Some(old), Some(new))
                            if new.ts <= start
                                && old.state == new.state
                                && old.reason == new.reason =>
                        {
                            Some(StateChange { ts: old.ts, ..new })
                        }
                        (_, new) => new,
                    };
                }
                c.since_setup = since_fin;
                c.final_until = fin;
            }
            let skip = usize::try_from((from.max(start) - start) / BUCKET_MS).unwrap_or(0);
            let head_from = usize::try_from((from - c.origin) / BUCKET_MS).unwrap_or(0);
            let head_to = usize::try_from((start.min(to) - c.origin) / BUCKET_MS).unwrap_or(0);
            let mut b: Vec<Losses> = Vec::new();
            let mut r: Vec<Reasons> = Vec::new();
            if head_to > head_from {
                b.extend_from_slice(&c.buckets[head_from..head_to]);
                r.extend_from_slice(&c.reasons[head_from..head_to]);
                cached = head_to - head_from;
            }
            b.extend_from_slice(&computed.buckets[skip..]);
            r.extend_from_slice(&computed.reasons[skip..]);
            return Ok((b, r, cached));
        }
        let i = usize::try_from((from - c.origin) / BUCKET_MS).unwrap_or(0);
        let j = usize::try_from((to - c.origin) / BUCKET_MS).unwrap_or(0);
        cached = j - i;
        Ok((c.buckets[i..j].to_vec(), c.reasons[i..j].to_vec(), cached))
    }

    /// OEE of an asset (machine, line, area, site) over `[from, to)` split `by` (blocking).
    pub fn oee(
        &self,
        asset: &str,
        from: Timestamp,
        to: Timestamp,
        by: By,
    ) -> Result<OeeReport, EngineError> {
        if from >= to {
            return Err(invalid("to", format!("{to} must be after from ({from})")));
        }
        // Checked: a difference of two extreme timestamps must not wrap below the limit.
        if to.checked_sub(from).is_none_or(|span| span > 400 * DAY_MS) {
            return Err(invalid("to", "a range of at most 400 days"));
        }
        let machines = self.machines_under(asset)?;
        let zone = self.zone_of(asset)?;
        let (from, to) = (floor_q(from), ceil_q(to));
        let cfg = self.production.config();
        let shifts = shift_windows(&self.registry.shifts())?;
        if by == By::Shift && shifts.is_empty() {
            return Err(invalid("by", "by=shift needs shifts (none are defined)"));
        }
        if by == By::Shift
            && let Some(w) = shifts
                .iter()
                .find(|w| w.start_min % 15 != 0 || w.end_min % 15 != 0)
        {
            return Err(invalid(
                "by",
                format!(
                    "by=shift needs shifts that start and end on a quarter hour; shift {:?} does not",
                    w.name
                ),
            ));
        }
        let n = usize::try_from((to - from) / BUCKET_MS).unwrap_or(0);
        let mut all = vec![Losses::default(); n];
        let mut per_machine = Vec::new();
        let mut causes = Vec::new();
        let (mut cached, mut computed) = (0, 0);
        for m in &machines {
            let (b, r, c) = self.machine_buckets(m, from, to, &cfg, &shifts, &zone)?;
            cached += c;
            computed += b.len() - c;
            let mut total = Losses::default();
            for (i, x) in b.iter().enumerate() {
                total.add(x);
                all[i].add(x);
            }
            causes.extend(self.causes(m, from, to, &b, &r));
            let ideal = self.registry.node(m).and_then(|n| n.ideal_cycle_time_s);
            let mut o = total.oee();
            if ideal.is_none() {
                // Without an ideal cycle time performance (and so OEE) is unknown, not zero.
                o.performance = None;
                o.oee = None;
            }
            per_machine.push(MachineOee {
                machine: m.clone(),
                ideal_cycle_time_s: ideal,
                oee: o,
            });
        }
        let group = |a: Timestamp, z: Timestamp| {
            let mut s = Losses::default();
            let i = usize::try_from((a.max(from) - from) / BUCKET_MS).unwrap_or(0);
            let j = usize::try_from((ceil_q(z.min(to)) - from) / BUCKET_MS).unwrap_or(0);
            for x in all.get(i..j.min(n)).unwrap_or(&[]) {
                s.add(x);
            }
            s.oee()
        };
        let rows = report_rows(by, &zone, &shifts, from, to, group);
        let mut total = Losses::default();
        all.iter().for_each(|x| total.add(x));
        causes.sort_by(|a: &Cause, b: &Cause| {
            let w = |c: &Cause| c.seconds.unwrap_or(0.0) + c.parts.unwrap_or(0) as f64 * 30.0;
            w(b).total_cmp(&w(a))
        });
        Ok(OeeReport {
            asset: asset.trim_end_matches('/').to_owned(),
            timezone: zone.name().to_owned(),
            from,
            to,
            from_local: zone.format(from),
            to_local: zone.format(to),
            by,
            total: total.oee(),
            machines: per_machine,
            rows,
            causes,
            buckets_cached: cached,
            buckets_computed: computed,
        })
    }

    /// The causes of one machine's losses: state reasons, and alarms joined by time.
    fn causes(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
        buckets: &[Losses],
        reasons: &[Reasons],
    ) -> Vec<Cause> {
        let mut by_reason: BTreeMap<(TimeKind, String), f64> = BTreeMap::new();
        for r in reasons {
            for (k, reason, s) in r {
                *by_reason.entry((*k, reason.clone())).or_default() += s;
            }
        }
        let mut out: Vec<Cause> = by_reason
            .into_iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|((k, reason), s)| Cause {
                loss: k.name().to_owned(),
                machine: machine.to_owned(),
                seconds: Some(s),
                parts: None,
                text: format!(
                    "{} on {machine}: {} min of {reason}",
                    k.name(),
                    round1(s / 60.0)
                ),
                reason: Some(reason),
                alarm: None,
                rule: None,
                rule_type: None,
                signal: None,
            })
            .collect();
        let now = self.now();
        let alarms = self.alarms.query(&AlarmQuery {
            states: None,
            min_severity: None,
            asset_prefix: Some(machine.to_owned()),
            rule: None,
            from: Some(from - HOUR_MS),
            to: Some(to),
            limit: 10_000,
        });
        let sum = |a: Timestamp, z: Timestamp, f: &dyn Fn(&Losses) -> f64| -> f64 {
            let i = usize::try_from(((a.max(from) - from) / BUCKET_MS).max(0)).unwrap_or(0);
            let j = usize::try_from(((ceil_q(z.min(to)) - from) / BUCKET_MS).max(0)).unwrap_or(0);
            buckets
                .get(i..j.min(buckets.len()))
                .unwrap_or(&[])
                .iter()
                .map(f)
                .sum()
        };
        for a in alarms {
            let open_until = a.cleared_at.unwrap_or(if a.state == AlarmState::Closed {
                a.last_raised_at
            } else {
                now
            });
            let (loss, qty, text_q) = if a.rule_type == "spc" {
                let scrap = sum(a.raised_at, open_until.max(a.raised_at + 1), &|b| {
                    (b.scrap - b.startup_scrap) as f64
                });
                ("production_rejects", scrap, format!("{scrap} scrap"))
            } else {
                let s = sum(a.raised_at, open_until + HOUR_MS, &|b| b.breakdowns_s);
                (
                    "breakdowns",
                    s,
                    format!("{} min of breakdown", round1(s / 60.0)),
                )
            };
            if qty <= 0.0 {
                continue;
            }
            let what = if a.rule_type == "spc" {
                "quality loss"
            } else {
                "breakdown"
            };
            out.push(Cause {
                loss: loss.into(),
                machine: machine.to_owned(),
                seconds: (loss == "breakdowns").then_some(qty),
                parts: (loss != "breakdowns").then_some(qty as u64),
                reason: None,
                alarm: Some(a.id),
                text: format!(
                    "{what} on {machine}: {text_q} from the {} alarm {} ({}){}",
                    a.rule_type,
                    a.id,
                    a.rule,
                    a.signal
                        .as_deref()
                        .map(|s| format!(" on {s}"))
                        .unwrap_or_default()
                ),
                rule: Some(a.rule),
                rule_type: Some(a.rule_type),
                signal: a.signal,
            });
        }
        out
    }
}

/// The rows of a report `by` period in the local time of `zone`: the whole range, local clock
/// hours, local days (23 or 25 hours on daylight-saving days) or shift occurrences; `group`
/// sums the buckets of a range.
fn report_rows(
    by: By,
    zone: &Zone,
    shifts: &[DailyWindow],
    from: Timestamp,
    to: Timestamp,
    group: impl Fn(Timestamp, Timestamp) -> Oee,
) -> Vec<Row> {
    let row = |a: Timestamp, z: Timestamp, shift: Option<String>| Row {
        from: a,
        to: z,
        from_local: zone.format(a),
        to_local: zone.format(z),
        shift,
        oee: group(a, z),
    };
    let spans = |starts: Vec<Timestamp>| -> Vec<Row> {
        let ends: Vec<Timestamp> = starts.iter().skip(1).copied().chain([to]).collect();
        starts
            .into_iter()
            .zip(ends)
            .map(|(a, z)| row(a, z, None))
            .collect()
    };
    match by {
        By::Total => vec![row(from, to, None)],
        By::Hour => spans(zone.hours(from, to)),
        By::Day => spans(zone.days(from, to)),
        By::Shift => oee::occurrences(shifts, zone, from, to)
            .into_iter()
            .map(|(i, a, z)| row(a, z, Some(shifts[i].name.clone())))
            .collect(),
    }
}

impl crate::Engine {
    /// The time zone of the site of `asset` (its first path segment): the site's `timezone`,
    /// else the configuration's `plant.timezone`, else UTC. A stored zone the database does not
    /// know (written before zones were checked) is an error that names the site.
    pub fn zone_of(&self, asset: &str) -> Result<Zone, EngineError> {
        let site = asset.split('/').next().unwrap_or("");
        let name = self
            .registry
            .node(site)
            .and_then(|n| n.timezone)
            .or_else(|| self.config.plant.timezone.clone());
        Zone::of(name.as_deref()).map_err(|e| {
            EngineError::Production(ProductionError::BadTimezone {
                site: site.to_owned(),
                reason: e.to_string(),
            })
        })
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
