//! Gemba's factory simulator: a deterministic plant that produces the signals, events and ground
//! truth a real shop floor would, with documented physics.
//!
//! - Drive and failure physics of the AI4I 2020 predictive-maintenance data set ([`physics`]).
//! - Slow bearing degradation (vibration growing to failure), quality drifts (mean shift,
//!   variance growth, trend, cycle) and sensor faults, injected as a [`Scenario`] says.
//! - Production: cycle times with speed loss, short stops, changeovers between lots, startup
//!   rejects, parts measured against the spec limits of the plant file.
//! - Lots: raw lots are received (`lot` event) and moved to the line; a finished lot is made from
//!   its raw lot at the line (`lot` event with `inputs`), moved to finished goods and on to shipping.
//! - Ground truth: every failure, fault onset and end is an event; [`Label`]s per machine and tick.
//!
//! The simulator does no IO: [`Simulator::step`] advances the plant by one sample interval and
//! fills a [`Tick`]; the `gemba` binary sends ticks over MQTT, into the store or into CSV files.
//! The same plant, scenario, seed and start time always give the same ticks.

mod machine;
pub mod physics;
pub mod scenario;

use gemba_core::{Event, EventBody, Plant, SignalKind, Timestamp};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

pub use machine::MachineState;
pub use physics::{FailureMode, Variant};
pub use scenario::{Dur, FaultKind, FaultSpec, Scenario};

use machine::{Machine, Role};

/// Errors of the simulator: a scenario or plant it cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("plant: {0}")]
    Plant(String),
}

/// A signal the simulator writes: its full path and what it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSignal {
    pub path: String,
    /// Index of the machine in [`Simulator::machines`].
    pub machine: usize,
    /// The signal's name on its machine.
    pub name: String,
    /// State names of a state signal (its value is the index into this list).
    pub states: Vec<String>,
}

/// What was true of one machine during one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Label {
    pub state: MachineState,
    /// An injected fault that is active (the first one when several are).
    pub fault: Option<FaultKind>,
    /// Running time left until the degrading bearing fails, in seconds.
    pub bearing_rul_s: Option<f64>,
    /// The machine failed during this tick.
    pub failure: Option<FailureMode>,
}

/// The output of one step: one sample per signal (NaN where a signal has no sample this tick,
/// e.g. the quality characteristic between parts), the events and the ground-truth labels.
#[derive(Debug, Clone, Default)]
pub struct Tick {
    pub ts: Timestamp,
    /// Indexed like [`Simulator::signals`].
    pub values: Vec<f64>,
    pub events: Vec<Event>,
    /// Indexed like [`Simulator::machines`].
    pub labels: Vec<Label>,
}

impl Tick {
    /// Number of samples in this tick.
    pub fn sample_count(&self) -> usize {
        self.values.iter().filter(|v| !v.is_nan()).count()
    }
}

struct Line {
    path: String,
    /// The time zone of the line's site: its shifts are local times there.
    zone: gemba_core::Zone,
    /// The shift the line is in (an index into the model's shifts), if any.
    shift_now: Option<usize>,
    machines: Vec<usize>,
    job: u64,
    variant: Variant,
    raw_lot: String,
    out_lot: String,
    good: u32,
    rng: ChaCha8Rng,
}

struct Schedule {
    spec: usize,
    machine: usize,
    next: Option<Timestamp>,
    count: u32,
    /// Slot of the signal of a sensor fault.
    slot: Option<usize>,
}

/// The simulated plant.
pub struct Simulator {
    scenario: Scenario,
    start: Timestamp,
    now: Timestamp,
    dt_ms: i64,
    signals: Vec<SimSignal>,
    machines: Vec<Machine>,
    lines: Vec<Line>,
    schedules: Vec<Schedule>,
    pending: Vec<(Timestamp, Event)>,
    shifts: Vec<gemba_core::ShiftDef>,
    operators: Vec<String>,
    lot_tag: String,
    skipped: Vec<String>,
    started: bool,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("now", &self.now)
            .field("machines", &self.machines.len())
            .field("signals", &self.signals.len())
            .finish()
    }
}

impl Simulator {
    /// Builds the simulated plant from a plant file and a scenario, starting at `start` (ms).
    /// Every machine that has at least one signal the simulator knows is simulated.
    pub fn new(plant: &Plant, scenario: &Scenario, start: Timestamp) -> Result<Self, SimError> {
        scenario.validate()?;
        let model = gemba_core::AssetModel::from_plant(plant)
            .map_err(|e| SimError::Plant(e.to_string()))?;
        let machines_def = plant
            .machines()
            .map_err(|e| SimError::Plant(e.to_string()))?;
        let mut signals = Vec::new();
        let mut machines: Vec<Machine> = Vec::new();
        let mut lines: Vec<Line> = Vec::new();
        let mut skipped = Vec::new();
        for (path, def) in &machines_def {
            let idx = machines.len();
            let mut roles = Vec::new();
            let mut quality = None;
            for s in &def.signals {
                let limits = s.spec.and_then(|l| Some((l.lsl?, l.target, l.usl?)));
                let role = match (Role::of(&s.name), limits) {
                    (Some(r), _) => r,
                    (None, Some(l)) if quality.is_none() && s.kind == SignalKind::Gauge => {
                        quality = Some(l);
                        Role::Quality
                    }
                    (None, _) => continue,
                };
                if role == Role::State {
                    for needed in MachineState::ALL {
                        if !s.states.iter().any(|n| n == needed.name()) {
                            return Err(SimError::Plant(format!(
                                "{path}/{}: the simulator needs the state {:?} in its states list {:?}",
                                s.name,
                                needed.name(),
                                s.states
                            )));
                        }
                    }
                }
                roles.push((role, signals.len()));
                signals.push(SimSignal {
                    path: format!("{path}/{}", s.name),
                    machine: idx,
                    name: s.name.clone(),
                    states: s.states.clone(),
                });
            }
            if roles.is_empty() {
                skipped.push(path.clone());
                continue;
            }
            let line_path = path.rsplit_once('/').map_or("", |(l, _)| l).to_owned();
            let line = match lines.iter().position(|l| l.path == line_path) {
                Some(i) => i,
                None => {
                    let site = line_path.split('/').next().unwrap_or_default();
                    let zone =
                        gemba_core::Zone::of(model.node(site).and_then(|n| n.timezone.as_deref()))
                            .map_err(|e| SimError::Plant(e.to_string()))?;
                    lines.push(Line {
                        path: line_path.clone(),
                        zone,
                        shift_now: None,
                        machines: Vec::new(),
                        job: 0,
                        variant: Variant::M,
                        raw_lot: String::new(),
                        out_lot: String::new(),
                        good: 0,
                        rng: ChaCha8Rng::seed_from_u64(mix(
                            scenario.seed,
                            0x11AE_0000 + lines.len() as u64,
                        )),
                    });
                    lines.len() - 1
                }
            };
            lines[line].machines.push(idx);
            let states = roles
                .iter()
                .find(|(r, _)| *r == Role::State)
                .map(|(_, i)| signals[*i].states.clone())
                .unwrap_or_default();
            machines.push(Machine::new(
                path.clone(),
                line,
                def.kind.as_deref(),
                def.ideal_cycle_time_s,
                roles,
                states,
                quality,
                scenario,
                ChaCha8Rng::seed_from_u64(mix(scenario.seed, idx as u64)),
                start,
            ));
        }
        if machines.is_empty() {
            return Err(SimError::Plant(
                "no machine has a signal the simulator knows (air_temp, process_temp, spindle_speed, torque, tool_wear, vibration_rms, motor_current, power, energy, pressure, state, good_count, scrap_count, cycle_time, or a gauge with lsl and usl)".into(),
            ));
        }
        let mut schedules = Vec::new();
        for (i, f) in scenario.faults.iter().enumerate() {
            let matched: Vec<usize> = machines
                .iter()
                .enumerate()
                .filter(|(_, m)| selects(&f.machine, &m.path))
                .map(|(j, _)| j)
                .collect();
            if matched.is_empty() {
                let names: Vec<&str> = machines.iter().map(|m| m.path.as_str()).collect();
                return Err(SimError::Scenario(format!(
                    "faults[{i}] ({}).machine: {:?} matches no simulated machine; machines: {}",
                    f.kind.name(),
                    f.machine,
                    names.join(", ")
                )));
            }
            for &m in &matched {
                if let Some(sig) = &f.signal
                    && !signals.iter().any(|s| s.machine == m && &s.name == sig)
                {
                    return Err(SimError::Scenario(format!(
                        "faults[{i}] ({}).signal: {} has no simulated signal {sig:?}",
                        f.kind.name(),
                        machines[m].path
                    )));
                }
                if f.kind.is_quality_drift() && !machines[m].has_quality() {
                    return Err(SimError::Scenario(format!(
                        "faults[{i}] ({}).machine: {} has no quality characteristic (a gauge signal with lsl and usl) to drift",
                        f.kind.name(),
                        machines[m].path
                    )));
                }
                schedules.push(Schedule {
                    spec: i,
                    machine: m,
                    next: Some(start + f.at.0),
                    count: 0,
                    slot: f.signal.as_ref().and_then(|sig| {
                        signals
                            .iter()
                            .position(|s| s.machine == m && &s.name == sig)
                    }),
                });
            }
        }
        let mut sim = Simulator {
            scenario: scenario.clone(),
            start,
            now: start,
            dt_ms: scenario.sample_interval.0,
            signals,
            machines,
            lines,
            schedules,
            pending: Vec::new(),
            shifts: model.shifts.clone(),
            operators: model.operators.keys().cloned().collect(),
            lot_tag: lot_tag(start),
            skipped,
            started: false,
        };
        for l in 0..sim.lines.len() {
            let v = Variant::draw(sim.scenario.production.variant_mix, &mut sim.lines[l].rng);
            sim.lines[l].variant = v;
            for &m in &sim.lines[l].machines.clone() {
                sim.machines[m].variant = v;
            }
        }
        Ok(sim)
    }

    /// The signals written, in the order of [`Tick::values`].
    pub fn signals(&self) -> &[SimSignal] {
        &self.signals
    }

    /// Paths of the simulated machines, in the order of [`Tick::labels`].
    pub fn machines(&self) -> Vec<&str> {
        self.machines.iter().map(|m| m.path.as_str()).collect()
    }

    /// Machines of the plant file that have no signal the simulator knows.
    pub fn skipped_machines(&self) -> &[String] {
        &self.skipped
    }

    /// Simulated time of the last tick (the start before the first step).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn sample_interval_ms(&self) -> i64 {
        self.dt_ms
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// A fresh tick buffer of the right size for [`Simulator::step`].
    pub fn new_tick(&self) -> Tick {
        Tick {
            ts: self.now,
            values: vec![f64::NAN; self.signals.len()],
            events: Vec::new(),
            labels: Vec::with_capacity(self.machines.len()),
        }
    }

    /// Advances the plant by one sample interval and writes what happened into `tick`.
    pub fn step(&mut self, tick: &mut Tick) {
        let ts = self.now + self.dt_ms;
        self.now = ts;
        tick.ts = ts;
        tick.values.clear();
        tick.values.resize(self.signals.len(), f64::NAN);
        tick.events.clear();
        tick.labels.clear();
        let dt_s = self.dt_ms as f64 / 1000.0;
        if !self.started {
            self.started = true;
            for l in 0..self.lines.len() {
                self.start_job(l, ts, &mut tick.events);
            }
            for m in &self.machines {
                tick.events.push(state_event(ts, &m.path, m.state, None));
            }
        }
        self.shift_changes(ts, &mut tick.events);
        self.fault_schedules(ts, &mut tick.events);
        let mut finished_lines = Vec::new();
        for i in 0..self.machines.len() {
            let line = self.machines[i].line;
            let op = self.operator_of(line);
            let ctx = machine::StepCtx {
                ts,
                dt_s,
                on_shift: self.shifts.is_empty() || self.lines[line].shift_now.is_some(),
                lot: &self.lines[line].out_lot,
                operator: op.as_deref(),
                scenario: &self.scenario,
            };
            let good =
                self.machines[i].step(&ctx, &mut tick.values, &mut tick.events, &mut tick.labels);
            let l = &mut self.lines[line];
            if good > 0 && l.machines.last() == Some(&i) {
                l.good += good;
                if l.good >= self.scenario.production.lot_size {
                    finished_lines.push(line);
                }
            }
        }
        for l in finished_lines {
            self.finish_job(l, ts, &mut tick.events);
        }
        if !self.pending.is_empty() {
            let mut i = 0;
            while i < self.pending.len() {
                if self.pending[i].0 <= ts {
                    let (_, e) = self.pending.remove(i);
                    tick.events.push(e);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn operator_of(&self, line: usize) -> Option<String> {
        if self.operators.is_empty() {
            return None;
        }
        let shift = self.lines[line].shift_now.unwrap_or(0);
        Some(self.operators[(shift * self.lines.len() + line) % self.operators.len()].clone())
    }

    /// A `shift_start` event on each line whose shift changed, in the local time of its site.
    fn shift_changes(&mut self, ts: Timestamp, events: &mut Vec<Event>) {
        if self.shifts.is_empty() {
            return;
        }
        for l in 0..self.lines.len() {
            let local = self.lines[l].zone.datetime(ts);
            let minute = local.hour() as u32 * 60 + local.minute() as u32;
            let now = self.shifts.iter().position(|s| s.contains_minute(minute));
            if now == self.lines[l].shift_now {
                continue;
            }
            self.lines[l].shift_now = now;
            let Some(s) = now else { continue };
            let mut attrs = Map::new();
            attrs.insert("shift".into(), json!(self.shifts[s].name));
            if let Some(op) = self.operator_of(l) {
                attrs.insert("operator".into(), json!(op));
            }
            events.push(Event {
                ts,
                asset: self.lines[l].path.clone(),
                body: EventBody::Custom {
                    name: "shift_start".into(),
                },
                attrs,
            });
        }
    }

    fn fault_schedules(&mut self, ts: Timestamp, events: &mut Vec<Event>) {
        for s in &mut self.schedules {
            let Some(next) = s.next else { continue };
            if next > ts {
                continue;
            }
            let spec = &self.scenario.faults[s.spec];
            s.count += 1;
            s.next = spec.every.map(|e| next + e.0);
            let id = format!("f{}-{}", s.spec, s.count);
            if let Some(e) = self.machines[s.machine].start_fault(spec, &id, ts, s.slot) {
                events.push(e);
            }
        }
    }

    fn start_job(&mut self, l: usize, ts: Timestamp, events: &mut Vec<Event>) {
        let line = &mut self.lines[l];
        line.job += 1;
        line.good = 0;
        let short = line.path.rsplit('/').next().unwrap_or("line");
        line.raw_lot = format!("{short}-{}-{:04}-RM", self.lot_tag, line.job);
        line.out_lot = format!("{short}-{}-{:04}", self.lot_tag, line.job);
        let qty = (f64::from(self.scenario.production.lot_size) * 1.05).round();
        let product = format!("raw-{}", line.variant.name());
        let mut attrs = Map::new();
        attrs.insert("product".into(), json!(product));
        // The raw lot is received into the raw store, then moved to the line.
        events.push(Event {
            ts,
            asset: line.path.clone(),
            body: EventBody::Lot {
                lot: line.raw_lot.clone(),
                product,
                quantity: qty,
                unit: "pcs".into(),
                location: "raw_store".into(),
                inputs: Vec::new(),
            },
            attrs: Map::new(),
        });
        events.push(Event {
            ts,
            asset: line.path.clone(),
            body: EventBody::Move {
                lot: line.raw_lot.clone(),
                from: "raw_store".into(),
                to: line.path.clone(),
                quantity: qty,
            },
            attrs,
        });
    }

    fn finish_job(&mut self, l: usize, ts: Timestamp, events: &mut Vec<Event>) {
        let (path, out_lot, raw_lot, good, variant) = {
            let line = &self.lines[l];
            (
                line.path.clone(),
                line.out_lot.clone(),
                line.raw_lot.clone(),
                line.good,
                line.variant,
            )
        };
        let product = format!("widget-{}", variant.name());
        let mut attrs = Map::new();
        attrs.insert("product".into(), json!(product));
        // The finished lot is made at the line from the raw lot (which it consumes), then moved on.
        events.push(Event {
            ts,
            asset: path.clone(),
            body: EventBody::Lot {
                lot: out_lot.clone(),
                product,
                quantity: f64::from(good),
                unit: "pcs".into(),
                location: path.clone(),
                inputs: vec![raw_lot],
            },
            attrs: Map::new(),
        });
        events.push(Event {
            ts,
            asset: path.clone(),
            body: EventBody::Move {
                lot: out_lot.clone(),
                from: path.clone(),
                to: "finished_goods".into(),
                quantity: f64::from(good),
            },
            attrs,
        });
        self.pending.push((
            ts + self.scenario.production.ship_delay.0,
            Event {
                ts: ts + self.scenario.production.ship_delay.0,
                asset: path.clone(),
                body: EventBody::Move {
                    lot: out_lot,
                    from: "finished_goods".into(),
                    to: "shipping".into(),
                    quantity: f64::from(good),
                },
                attrs: Map::new(),
            },
        ));
        let line = &mut self.lines[l];
        line.variant = Variant::draw(self.scenario.production.variant_mix, &mut line.rng);
        let variant = line.variant;
        let setup = self.scenario.production.setup_time.0;
        for &m in &self.lines[l].machines.clone() {
            self.machines[m].changeover(variant, ts, setup, events);
        }
        self.start_job(l, ts, events);
    }
}

fn state_event(ts: Timestamp, asset: &str, state: MachineState, reason: Option<&str>) -> Event {
    Event {
        ts,
        asset: asset.to_owned(),
        body: EventBody::State {
            state: state.name().into(),
            reason: reason.map(str::to_owned),
        },
        attrs: Map::new(),
    }
}

fn custom_event(ts: Timestamp, asset: &str, name: &str, attrs: Map<String, Value>) -> Event {
    Event {
        ts,
        asset: asset.to_owned(),
        body: EventBody::Custom { name: name.into() },
        attrs,
    }
}

/// Whether a fault's machine selector picks `path`.
fn selects(selector: &str, path: &str) -> bool {
    selector == "*" || selector == path || path.ends_with(&format!("/{selector}"))
}

/// A stable per-stream seed (SplitMix64 of the scenario seed and a stream number).
///
/// A hash, not a generator: it only turns (seed, stream) into the seed of that stream's
/// `ChaCha8Rng`, which draws every random number. Changing it would move every simulated tick
/// (and the figures measured on them), so it stays as it is.
fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `yyyymmdd-hhmmss` of the start, so lots of different runs have different ids (a lot id may be
/// created only once; a demo resumed within the same minute must not repeat them).
fn lot_tag(start: Timestamp) -> String {
    gemba_core::time::format_rfc3339(start)
        .get(..19)
        .map(|s| s.replace(['-', ':'], "").replace('T', "-"))
        .unwrap_or_else(|| start.to_string())
}
