//! One simulated machine: its drive (AI4I physics), tool, bearing, quality characteristic,
//! states and counters.

use gemba_core::{Event, EventBody, Timestamp};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, json};

use crate::physics::{
    self, BEARING_FAILURE_MM_S, FailureMode, RandomWalk, Record, Variant, bearing_vibration,
    draw_operating_point, exponential, normal,
};
use crate::scenario::{FaultKind, FaultSpec, Scenario};
use crate::{Label, custom_event, state_event};

/// What a machine is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    Running,
    Idle,
    Setup,
    Down,
}

impl MachineState {
    pub const ALL: [MachineState; 4] = [
        MachineState::Idle,
        MachineState::Running,
        MachineState::Setup,
        MachineState::Down,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MachineState::Running => "running",
            MachineState::Idle => "idle",
            MachineState::Setup => "setup",
            MachineState::Down => "down",
        }
    }
}

/// The signals the simulator knows, by name on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    AirTemp,
    ProcessTemp,
    SpindleSpeed,
    Torque,
    ToolWear,
    Vibration,
    MotorCurrent,
    Power,
    Energy,
    Pressure,
    State,
    GoodCount,
    ScrapCount,
    CycleTime,
    Quality,
}

impl Role {
    pub(crate) fn of(name: &str) -> Option<Role> {
        Some(match name {
            "air_temp" => Role::AirTemp,
            "process_temp" => Role::ProcessTemp,
            "spindle_speed" => Role::SpindleSpeed,
            "torque" => Role::Torque,
            "tool_wear" => Role::ToolWear,
            "vibration_rms" => Role::Vibration,
            "motor_current" => Role::MotorCurrent,
            "power" => Role::Power,
            "energy" => Role::Energy,
            "pressure" => Role::Pressure,
            "state" => Role::State,
            "good_count" => Role::GoodCount,
            "scrap_count" => Role::ScrapCount,
            "cycle_time" => Role::CycleTime,
            _ => return None,
        })
    }
}

/// Per-kind constants: ideal cycle time and auxiliary electrical load (heaters, hydraulics,
/// controls) on top of the drive.
struct Profile {
    ideal_cycle_s: f64,
    aux_w: f64,
    pressure_bar: Option<f64>,
}

fn profile(kind: Option<&str>) -> Profile {
    match kind.unwrap_or("") {
        "cnc_mill" | "cnc" | "lathe" => Profile {
            ideal_cycle_s: 30.0,
            aux_w: 800.0,
            pressure_bar: Some(6.0),
        },
        "injection_moulding" | "injection_molding" => Profile {
            ideal_cycle_s: 20.0,
            aux_w: 2500.0,
            pressure_bar: Some(800.0),
        },
        "assembly" => Profile {
            ideal_cycle_s: 15.0,
            aux_w: 300.0,
            pressure_bar: Some(6.0),
        },
        "packaging" => Profile {
            ideal_cycle_s: 10.0,
            aux_w: 200.0,
            pressure_bar: Some(6.0),
        },
        _ => Profile {
            ideal_cycle_s: 30.0,
            aux_w: 500.0,
            pressure_bar: None,
        },
    }
}

/// Drive efficiency (mechanical / electrical power).
const DRIVE_EFFICIENCY: f64 = 0.9;
/// Supply voltage and power factor for the motor current.
const CURRENT_PER_WATT: f64 = 1.0 / (1.732 * 400.0 * 0.85);
/// Vibration of a healthy running machine: base plus a torque-dependent part (mm/s RMS).
const VIB_BASE: f64 = 1.2;
const VIB_PER_NM: f64 = 0.02;

struct Quality {
    target: f64,
    sigma: f64,
    tolerance: f64,
    lsl: f64,
    usl: f64,
}

struct ActiveFault {
    kind: FaultKind,
    id: String,
    start: Timestamp,
    end: Option<Timestamp>,
    magnitude: f64,
    period_s: f64,
    duration_s: f64,
    slot: Option<usize>,
    stuck: Option<f64>,
}

struct Bearing {
    id: String,
    run_s_to_failure: f64,
    run_s: f64,
}

pub(crate) struct StepCtx<'a> {
    pub ts: Timestamp,
    pub dt_s: f64,
    pub on_shift: bool,
    pub lot: &'a str,
    pub operator: Option<&'a str>,
    pub scenario: &'a Scenario,
}

pub(crate) struct Machine {
    pub path: String,
    pub line: usize,
    pub variant: Variant,
    pub state: MachineState,
    reason: Option<String>,
    until: Option<Timestamp>,
    rng: ChaCha8Rng,
    roles: Vec<(Role, usize)>,
    state_names: Vec<String>,
    profile: Profile,
    quality: Option<Quality>,
    air: RandomWalk,
    delta: RandomWalk,
    process_temp: f64,
    torque: f64,
    speed: f64,
    next_op_at: Timestamp,
    tool_wear: f64,
    tool_life: f64,
    part_s: f64,
    part_cycle_s: f64,
    parts_since_setup: u32,
    good: f64,
    scrap: f64,
    energy_kwh: f64,
    bearing: Option<Bearing>,
    faults: Vec<ActiveFault>,
    pending_failure_repair: Option<FailureMode>,
}

impl Machine {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        path: String,
        line: usize,
        kind: Option<&str>,
        ideal_cycle_s: Option<f64>,
        roles: Vec<(Role, usize)>,
        state_names: Vec<String>,
        quality: Option<(f64, Option<f64>, f64)>,
        scenario: &Scenario,
        mut rng: ChaCha8Rng,
        start: Timestamp,
    ) -> Machine {
        let mut profile = profile(kind);
        if let Some(c) = ideal_cycle_s {
            profile.ideal_cycle_s = c;
        }
        let quality = quality.map(|(lsl, target, usl)| {
            let tolerance = usl - lsl;
            Quality {
                target: target.unwrap_or((lsl + usl) / 2.0),
                sigma: tolerance / (6.0 * scenario.quality.cp),
                tolerance,
                lsl,
                usl,
            }
        });
        let air = RandomWalk::new(300.0, 2.0, 3600.0, &mut rng);
        let delta = RandomWalk::new(10.0, 1.0, 1800.0, &mut rng);
        let (torque, speed) = draw_operating_point(&mut rng);
        let [lo, hi] = scenario.failures.tool_life_min;
        let tool_life = lo + (hi - lo) * rng.r#gen::<f64>();
        // Tools start at a random point of their life, so machines do not change tools in step.
        let tool_wear = rng.r#gen::<f64>() * lo * 0.8;
        let mut m = Machine {
            path,
            line,
            variant: Variant::M,
            state: MachineState::Running,
            reason: None,
            until: None,
            process_temp: air.value + delta.value,
            air,
            delta,
            rng,
            roles,
            state_names,
            profile,
            quality,
            torque,
            speed,
            next_op_at: start + scenario.production.operating_point_interval.0,
            tool_wear,
            tool_life,
            part_s: 0.0,
            part_cycle_s: 0.0,
            parts_since_setup: scenario.production.startup_parts,
            good: 0.0,
            scrap: 0.0,
            energy_kwh: 0.0,
            bearing: None,
            faults: Vec::new(),
            pending_failure_repair: None,
        };
        m.part_cycle_s = m.draw_cycle(scenario);
        m
    }

    pub(crate) fn has_quality(&self) -> bool {
        self.quality.is_some()
    }

    fn draw_cycle(&mut self, scenario: &Scenario) -> f64 {
        let loss = (scenario.production.speed_loss + 0.02 * normal(&mut self.rng)).max(0.0);
        self.profile.ideal_cycle_s * (1.0 + loss)
    }

    fn set_state(
        &mut self,
        state: MachineState,
        reason: Option<&str>,
        until: Option<Timestamp>,
        ts: Timestamp,
        events: &mut Vec<Event>,
    ) {
        self.until = until;
        if self.state == state && self.reason.as_deref() == reason {
            return;
        }
        self.state = state;
        self.reason = reason.map(str::to_owned);
        events.push(state_event(ts, &self.path, state, reason));
    }

    /// Starts an injected fault; returns its ground-truth onset event.
    pub(crate) fn start_fault(
        &mut self,
        spec: &FaultSpec,
        id: &str,
        ts: Timestamp,
        slot: Option<usize>,
    ) -> Option<Event> {
        let mut attrs = Map::new();
        attrs.insert("fault".into(), json!(spec.kind.name()));
        attrs.insert("fault_id".into(), json!(id));
        if let Some(m) = spec.magnitude {
            attrs.insert("magnitude".into(), json!(m));
        }
        if spec.kind == FaultKind::Bearing {
            if self.bearing.is_some() {
                return None;
            }
            let run_s = spec.duration.map_or(86_400.0, |d| d.as_s());
            attrs.insert("run_time_to_failure_s".into(), json!(run_s));
            self.bearing = Some(Bearing {
                id: id.to_owned(),
                run_s_to_failure: run_s,
                run_s: 0.0,
            });
        } else {
            if let Some(s) = &spec.signal {
                attrs.insert("signal".into(), json!(s));
            }
            if let Some(d) = spec.duration {
                attrs.insert("duration_s".into(), json!(d.as_s()));
            }
            self.faults.push(ActiveFault {
                kind: spec.kind,
                id: id.to_owned(),
                start: ts,
                end: spec.duration.map(|d| ts + d.0),
                magnitude: spec.magnitude.unwrap_or(0.0),
                period_s: spec.period.map_or(3600.0, |p| p.as_s()),
                duration_s: spec.duration.map_or(3600.0, |d| d.as_s()),
                slot,
                stuck: None,
            });
        }
        Some(custom_event(ts, &self.path, "fault_onset", attrs))
    }

    /// A changeover to a new lot: setup for `setup_ms` unless the machine is down.
    pub(crate) fn changeover(
        &mut self,
        variant: Variant,
        ts: Timestamp,
        setup_ms: i64,
        events: &mut Vec<Event>,
    ) {
        self.variant = variant;
        self.parts_since_setup = 0;
        if self.state != MachineState::Down {
            self.set_state(
                MachineState::Setup,
                Some("changeover"),
                Some(ts + setup_ms),
                ts,
                events,
            );
        }
    }

    fn fail(
        &mut self,
        mode: FailureMode,
        modes: &[FailureMode],
        ctx: &StepCtx,
        events: &mut Vec<Event>,
    ) {
        let rec = self.record();
        let mut attrs = Map::new();
        attrs.insert("mode".into(), json!(mode.name()));
        if modes.len() > 1 {
            attrs.insert(
                "modes".into(),
                json!(modes.iter().map(|m| m.name()).collect::<Vec<_>>()),
            );
        }
        attrs.insert("variant".into(), json!(rec.variant.name()));
        attrs.insert("air_temp_k".into(), json!(round3(rec.air_temp_k)));
        attrs.insert("process_temp_k".into(), json!(round3(rec.process_temp_k)));
        attrs.insert("speed_rpm".into(), json!(round3(rec.speed_rpm)));
        attrs.insert("torque_nm".into(), json!(round3(rec.torque_nm)));
        attrs.insert("tool_wear_min".into(), json!(round3(rec.tool_wear_min)));
        attrs.insert("power_w".into(), json!(round3(rec.power_w())));
        if let Some(b) = &self.bearing
            && mode == FailureMode::Bearing
        {
            attrs.insert("fault_id".into(), json!(b.id));
        }
        events.push(custom_event(ctx.ts, &self.path, "failure", attrs));
        let mean = ctx.scenario.production.repair_time.as_s()
            * if mode == FailureMode::Bearing {
                3.0
            } else {
                1.0
            };
        let repair_s = exponential(&mut self.rng, mean).max(mean / 4.0);
        let reason = format!("{}_failure", mode.name());
        self.pending_failure_repair = Some(mode);
        self.set_state(
            MachineState::Down,
            Some(&reason),
            Some(ctx.ts + (repair_s * 1000.0) as i64),
            ctx.ts,
            events,
        );
    }

    fn record(&self) -> Record {
        Record {
            variant: self.variant,
            air_temp_k: self.air.value,
            process_temp_k: self.process_temp,
            speed_rpm: self.speed,
            torque_nm: self.torque,
            tool_wear_min: self.tool_wear,
        }
    }

    fn new_tool(&mut self, scenario: &Scenario) {
        let [lo, hi] = scenario.failures.tool_life_min;
        self.tool_wear = 0.0;
        self.tool_life = lo + (hi - lo) * self.rng.r#gen::<f64>();
    }

    /// Advances the machine by one tick. Returns the number of good parts made.
    pub(crate) fn step(
        &mut self,
        ctx: &StepCtx,
        values: &mut [f64],
        events: &mut Vec<Event>,
        labels: &mut Vec<Label>,
    ) -> u32 {
        let ts = ctx.ts;
        let dt = ctx.dt_s;
        let sc = ctx.scenario;
        let mut failure = None;
        // Ended faults.
        let path = self.path.clone();
        self.faults.retain(|f| {
            if f.end.is_some_and(|e| e <= ts) {
                let mut attrs = Map::new();
                attrs.insert("fault".into(), json!(f.kind.name()));
                attrs.insert("fault_id".into(), json!(f.id));
                events.push(custom_event(ts, &path, "fault_cleared", attrs));
                false
            } else {
                true
            }
        });
        // Timed states end.
        if let Some(until) = self.until
            && until <= ts
        {
            if let Some(mode) = self.pending_failure_repair.take() {
                match mode {
                    FailureMode::ToolWear => self.new_tool(sc),
                    FailureMode::Bearing => self.bearing = None,
                    _ => {}
                }
                let mut attrs = Map::new();
                attrs.insert("mode".into(), json!(mode.name()));
                events.push(custom_event(ts, &self.path, "repaired", attrs));
            }
            self.set_state(MachineState::Running, None, None, ts, events);
        }
        // Planned time off between shifts.
        if !ctx.on_shift && self.state == MachineState::Running {
            self.set_state(MachineState::Idle, Some("no_shift"), None, ts, events);
        } else if ctx.on_shift
            && self.state == MachineState::Idle
            && self.reason.as_deref() == Some("no_shift")
        {
            self.set_state(MachineState::Running, None, None, ts, events);
        }
        let air = self.air.step(dt, &mut self.rng);
        let mut made_good = 0u32;
        let mut quality_value = f64::NAN;
        let mut cycle_value = f64::NAN;
        if self.state == MachineState::Running {
            let delta = self.delta.step(dt, &mut self.rng);
            self.process_temp = air + delta;
            self.tool_wear += self.variant.wear_per_min() * dt / 60.0;
            if let Some(b) = &mut self.bearing {
                b.run_s += dt;
            }
            if ts >= self.next_op_at {
                self.next_op_at = ts + sc.production.operating_point_interval.0;
                let (t, s) = draw_operating_point(&mut self.rng);
                self.torque = t;
                self.speed = s;
                let mut modes = if sc.failures.rules {
                    self.record().rule_failures(&sc.failures)
                } else {
                    Vec::new()
                };
                if self.rng.r#gen::<f64>() < sc.failures.random_failure_probability {
                    modes.push(FailureMode::Random);
                }
                if let Some(&first) = modes.first() {
                    failure = Some(first);
                    self.fail(first, &modes, ctx, events);
                }
            }
            if failure.is_none() && self.tool_wear >= self.tool_life {
                if self.rng.r#gen::<f64>() < sc.failures.tool_replacement_probability {
                    let mut attrs = Map::new();
                    attrs.insert("tool_wear_min".into(), json!(round3(self.tool_wear)));
                    events.push(custom_event(ts, &self.path, "tool_change", attrs));
                    self.new_tool(sc);
                    self.set_state(
                        MachineState::Setup,
                        Some("tool_change"),
                        Some(ts + sc.production.tool_change_time.0),
                        ts,
                        events,
                    );
                } else {
                    failure = Some(FailureMode::ToolWear);
                    self.fail(FailureMode::ToolWear, &[FailureMode::ToolWear], ctx, events);
                }
            }
            if failure.is_none()
                && let Some(b) = &self.bearing
                && b.run_s >= b.run_s_to_failure
            {
                failure = Some(FailureMode::Bearing);
                self.fail(FailureMode::Bearing, &[FailureMode::Bearing], ctx, events);
            }
            if self.state == MachineState::Running
                && self.rng.r#gen::<f64>() < sc.production.minor_stops_per_hour * dt / 3600.0
            {
                let secs =
                    exponential(&mut self.rng, sc.production.minor_stop_time.as_s()).max(10.0);
                let reason = if self.rng.r#gen::<bool>() {
                    "starved"
                } else {
                    "blocked"
                };
                self.set_state(
                    MachineState::Idle,
                    Some(reason),
                    Some(ts + (secs * 1000.0) as i64),
                    ts,
                    events,
                );
            }
        } else {
            // A stopped machine cools towards the hall temperature.
            let a = 1.0 - (-dt / 600.0).exp();
            self.process_temp += (air + 2.0 - self.process_temp) * a;
        }
        let running = self.state == MachineState::Running;
        if running {
            self.part_s += dt;
            let mut made = 0u32;
            let mut scrapped = 0u32;
            let mut ct_sum = 0.0;
            while self.part_s >= self.part_cycle_s {
                self.part_s -= self.part_cycle_s;
                ct_sum += self.part_cycle_s;
                let ok = match self.measure(ts, sc) {
                    Some(q) => {
                        quality_value = q;
                        self.quality
                            .as_ref()
                            .is_some_and(|spec| (spec.lsl..=spec.usl).contains(&q))
                    }
                    None => self.rng.r#gen::<f64>() > 0.01,
                };
                self.parts_since_setup = self.parts_since_setup.saturating_add(1);
                if ok {
                    made += 1;
                } else {
                    scrapped += 1;
                }
                self.part_cycle_s = self.draw_cycle(sc);
            }
            if made + scrapped > 0 {
                let ct = ct_sum / f64::from(made + scrapped);
                cycle_value = ct;
                self.good += f64::from(made);
                self.scrap += f64::from(scrapped);
                made_good = made;
                let mut attrs = Map::new();
                attrs.insert("variant".into(), json!(self.variant.name()));
                if let Some(op) = ctx.operator {
                    attrs.insert("operator".into(), json!(op));
                }
                events.push(Event {
                    ts,
                    asset: self.path.clone(),
                    body: EventBody::Production {
                        good: u64::from(made),
                        scrap: u64::from(scrapped),
                        lot: Some(ctx.lot.to_owned()),
                        cycle_time_s: Some(round3(ct)),
                    },
                    attrs,
                });
            }
        }
        // Electrical and mechanical signals.
        let (torque, speed) = if running {
            (
                (self.torque + 0.8 * normal(&mut self.rng)).max(0.0),
                (self.speed + 5.0 * normal(&mut self.rng)).max(0.0),
            )
        } else {
            (0.0, 0.0)
        };
        let mech = physics::mechanical_power_w(torque, speed);
        let aux = self.profile.aux_w
            * match self.state {
                MachineState::Running => 1.0,
                MachineState::Setup => 0.8,
                MachineState::Idle => 0.6,
                MachineState::Down => 0.2,
            };
        let bearing_progress = self
            .bearing
            .as_ref()
            .map(|b| (b.run_s / b.run_s_to_failure).min(1.0));
        let bearing_extra = bearing_progress.map_or(0.0, |p| {
            bearing_vibration(p, BEARING_FAILURE_MM_S - VIB_BASE - VIB_PER_NM * 40.0)
        });
        let drag = 1.0 + 0.05 * bearing_progress.unwrap_or(0.0);
        let power = (mech * drag / DRIVE_EFFICIENCY + aux) * (1.0 + 0.01 * normal(&mut self.rng));
        self.energy_kwh += power * dt / 3.6e6;
        let vibration = if running {
            (VIB_BASE + VIB_PER_NM * torque + bearing_extra) * (1.0 + 0.05 * normal(&mut self.rng))
        } else {
            0.1 + 0.02 * normal(&mut self.rng).abs()
        };
        let pressure = self.profile.pressure_bar.map(|p| {
            if running {
                p * (1.0 + 0.02 * normal(&mut self.rng))
            } else {
                p * 0.05
            }
        });
        let state_index = self
            .state_names
            .iter()
            .position(|n| n == self.state.name())
            .map_or(f64::NAN, |i| i as f64);
        for &(role, slot) in &self.roles {
            values[slot] = match role {
                Role::AirTemp => air,
                Role::ProcessTemp => self.process_temp,
                Role::SpindleSpeed => speed,
                Role::Torque => torque,
                Role::ToolWear => self.tool_wear,
                Role::Vibration => vibration.max(0.0),
                Role::MotorCurrent => (power * CURRENT_PER_WATT).max(0.0),
                Role::Power => power.max(0.0),
                Role::Energy => self.energy_kwh,
                Role::Pressure => pressure.unwrap_or(f64::NAN),
                Role::State => state_index,
                Role::GoodCount => self.good,
                Role::ScrapCount => self.scrap,
                Role::CycleTime => cycle_value,
                Role::Quality => quality_value,
            };
        }
        // Sensor faults act on what is reported, not on the machine.
        for f in &mut self.faults {
            let Some(slot) = f.slot else { continue };
            match f.kind {
                FaultKind::SensorStuck => {
                    let frozen = *f.stuck.get_or_insert(values[slot]);
                    values[slot] = frozen;
                }
                FaultKind::SensorBias => values[slot] += f.magnitude,
                _ => {}
            }
        }
        labels.push(Label {
            state: self.state,
            fault: self
                .bearing
                .as_ref()
                .map(|_| FaultKind::Bearing)
                .or_else(|| self.faults.first().map(|f| f.kind)),
            bearing_rul_s: self
                .bearing
                .as_ref()
                .map(|b| (b.run_s_to_failure - b.run_s).max(0.0)),
            failure,
        });
        made_good
    }

    /// Measures one part's quality characteristic: target, tool-wear shift, startup offset,
    /// active drifts and noise.
    fn measure(&mut self, ts: Timestamp, sc: &Scenario) -> Option<f64> {
        let q = self.quality.as_ref()?;
        let (target, sigma, tol) = (q.target, q.sigma, q.tolerance);
        let mut mean = target + sc.quality.tool_wear_shift * tol * (self.tool_wear / 240.0);
        let startup = sc.production.startup_parts;
        if self.parts_since_setup < startup {
            mean += 4.0 * sigma * f64::from(startup - self.parts_since_setup) / f64::from(startup);
        }
        let mut sd = sigma;
        for f in &self.faults {
            let since_s = (ts - f.start) as f64 / 1000.0;
            match f.kind {
                FaultKind::MeanShift => mean += f.magnitude * sigma,
                FaultKind::Trend => mean += f.magnitude * sigma * since_s / 3600.0,
                FaultKind::Cycle => {
                    mean +=
                        f.magnitude * sigma * (std::f64::consts::TAU * since_s / f.period_s).sin();
                }
                FaultKind::VarianceGrowth => {
                    sd *= 1.0 + (f.magnitude - 1.0) * (since_s / f.duration_s).min(1.0);
                }
                _ => {}
            }
        }
        Some(mean + sd * normal(&mut self.rng))
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
