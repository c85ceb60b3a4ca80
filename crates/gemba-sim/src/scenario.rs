//! The scenario file: what the simulator does with a plant (rates, physics constants, and the
//! faults it injects, when and how often). Every field has a default, so an empty file is the
//! default scenario. Durations are written like `30s`, `10m`, `2h`, `7d`.

use serde::{Deserialize, Deserializer};

use crate::SimError;

/// A positive duration in milliseconds, written as `500ms`, `30s`, `10m`, `2h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub i64);

impl Dur {
    pub const fn minutes(m: i64) -> Dur {
        Dur(m * 60_000)
    }
    pub fn as_s(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        gemba_core::time::parse_duration_ms(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// The whole scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in logs and the demo banner.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Seed of every random draw; the same seed, plant and start time give the same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Time between two samples of a signal.
    #[serde(default = "default_sample_interval")]
    pub sample_interval: Dur,
    #[serde(default)]
    pub production: Production,
    #[serde(default)]
    pub failures: Failures,
    #[serde(default)]
    pub quality: Quality,
    /// Injected faults (the ground truth of what models and rules should find).
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

fn default_seed() -> u64 {
    42
}
fn default_sample_interval() -> Dur {
    Dur(1_000)
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: None,
            description: None,
            seed: default_seed(),
            sample_interval: default_sample_interval(),
            production: Production::default(),
            failures: Failures::default(),
            quality: Quality::default(),
            faults: Vec::new(),
        }
    }
}

/// How machines make parts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Production {
    /// How often a running machine's operating point (torque, speed) is drawn anew, and the
    /// AI4I failure rules are checked: one AI4I "record" per interval.
    pub operating_point_interval: Dur,
    /// Share of product variants L, M, H (AI4I: 50/30/20 %).
    pub variant_mix: [f64; 3],
    /// Parts per lot; when a line's last machine has made this many good parts, the lot moves
    /// to finished goods and the line changes over.
    pub lot_size: u32,
    /// Changeover time of every machine of a line between lots.
    pub setup_time: Dur,
    /// Time a planned tool change takes.
    pub tool_change_time: Dur,
    /// Mean time to repair after a failure (exponential, at least a quarter of it).
    pub repair_time: Dur,
    /// Mean speed loss: actual cycle time = ideal × (1 + this + noise).
    pub speed_loss: f64,
    /// Short stops (starved, blocked) per running hour.
    pub minor_stops_per_hour: f64,
    /// Mean length of a short stop.
    pub minor_stop_time: Dur,
    /// Parts after a changeover that run off-centre (startup rejects).
    pub startup_parts: u32,
    /// How long a finished lot waits in finished goods before it ships.
    pub ship_delay: Dur,
}

impl Default for Production {
    fn default() -> Self {
        Production {
            operating_point_interval: Dur::minutes(10),
            variant_mix: [0.5, 0.3, 0.2],
            lot_size: 200,
            setup_time: Dur::minutes(10),
            tool_change_time: Dur::minutes(5),
            repair_time: Dur::minutes(30),
            speed_loss: 0.05,
            minor_stops_per_hour: 1.0,
            minor_stop_time: Dur::minutes(2),
            startup_parts: 3,
            ship_delay: Dur::minutes(60),
        }
    }
}

/// The AI4I 2020 failure rules (Matzka 2020) and their constants.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Failures {
    /// Apply the heat-dissipation, power and overstrain rules.
    pub rules: bool,
    /// Probability of a random failure per operating-point record (AI4I: 0.1 %).
    pub random_failure_probability: f64,
    /// A tool's life ends at a uniformly drawn wear in this range (minutes).
    pub tool_life_min: [f64; 2],
    /// Share of tool-life ends that are planned replacements rather than tool-wear failures
    /// (AI4I: 120 ends, 46 of them failures).
    pub tool_replacement_probability: f64,
    /// Heat-dissipation failure when process − air temperature is below this (K) …
    pub heat_dissipation_max_delta_k: f64,
    /// … and the rotational speed is below this (rpm).
    pub heat_dissipation_max_speed_rpm: f64,
    /// Power failure when torque × angular speed is below the first or above the second (W).
    pub power_band_w: [f64; 2],
    /// Overstrain failure when tool wear × torque exceeds this for variant L, M, H (min·Nm).
    pub overstrain_limit: [f64; 3],
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            rules: true,
            random_failure_probability: 0.001,
            tool_life_min: [200.0, 240.0],
            tool_replacement_probability: 74.0 / 120.0,
            heat_dissipation_max_delta_k: 8.6,
            heat_dissipation_max_speed_rpm: 1380.0,
            power_band_w: [3500.0, 9000.0],
            overstrain_limit: [11_000.0, 12_000.0, 13_000.0],
        }
    }
}

/// The measured quality characteristic of every part (the machine's signal with spec limits).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quality {
    /// Process capability of a healthy machine: σ = (usl − lsl) / (6 · cp).
    pub cp: f64,
    /// How far a worn tool moves the characteristic, as a share of the tolerance
    /// (usl − lsl) at the end of tool life.
    pub tool_wear_shift: f64,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            cp: 1.67,
            tool_wear_shift: 0.15,
        }
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The spindle bearing degrades: vibration grows over `duration` of running time until the
    /// bearing fails.
    Bearing,
    /// The quality characteristic's mean jumps by `magnitude` σ.
    MeanShift,
    /// The quality characteristic's σ grows linearly to `magnitude` × σ over `duration`.
    VarianceGrowth,
    /// The quality characteristic drifts by `magnitude` σ per hour.
    Trend,
    /// The quality characteristic oscillates with amplitude `magnitude` σ and `period`.
    Cycle,
    /// The sensor of `signal` freezes at its last value.
    SensorStuck,
    /// The sensor of `signal` reads `magnitude` (in the signal's unit) too high.
    SensorBias,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Bearing => "bearing",
            FaultKind::MeanShift => "mean_shift",
            FaultKind::VarianceGrowth => "variance_growth",
            FaultKind::Trend => "trend",
            FaultKind::Cycle => "cycle",
            FaultKind::SensorStuck => "sensor_stuck",
            FaultKind::SensorBias => "sensor_bias",
        }
    }

    pub fn is_quality_drift(self) -> bool {
        matches!(
            self,
            FaultKind::MeanShift | FaultKind::VarianceGrowth | FaultKind::Trend | FaultKind::Cycle
        )
    }
}

/// One injected fault, possibly repeating.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Which machines: a full path, a path suffix (`line1/cnc1`, `cnc1`) or `*` for every
    /// simulated machine.
    pub machine: String,
    /// Onset, counted from the start of the run.
    pub at: Dur,
    /// Repeat every so long after the onset.
    #[serde(default)]
    pub every: Option<Dur>,
    /// How long the fault lasts (drifts and sensor faults; forever without it) or, for a
    /// bearing, the running time from onset to failure.
    #[serde(default)]
    pub duration: Option<Dur>,
    #[serde(default)]
    pub magnitude: Option<f64>,
    /// Period of a `cycle`.
    #[serde(default)]
    pub period: Option<Dur>,
    /// Signal name of a sensor fault.
    #[serde(default)]
    pub signal: Option<String>,
}

impl Scenario {
    /// Parses and checks a scenario file's text. Errors name the field and the problem.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what serde cannot: ranges of rates and probabilities, fault parameters.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: String, reason: String| Err(SimError::Scenario(format!("{field}: {reason}")));
        let prob = |field: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                bad(field.into(), format!("{v} must be a probability in [0, 1]"))
            }
        };
        let p = &self.production;
        let mix = p.variant_mix;
        if mix.iter().any(|v| !v.is_finite() || *v < 0.0)
            || (mix.iter().sum::<f64>() - 1.0).abs() > 1e-6
        {
            return bad(
                "production.variant_mix".into(),
                format!("{mix:?} must be three shares >= 0 that add up to 1"),
            );
        }
        if p.lot_size == 0 {
            return bad("production.lot_size".into(), "must be at least 1".into());
        }
        for (field, v) in [
            ("production.speed_loss", p.speed_loss),
            ("production.minor_stops_per_hour", p.minor_stops_per_hour),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(field.into(), format!("{v} must be a finite number >= 0"));
            }
        }
        if p.speed_loss > 5.0 {
            return bad(
                "production.speed_loss".into(),
                format!(
                    "{} would make parts take more than six times their ideal cycle",
                    p.speed_loss
                ),
            );
        }
        let f = &self.failures;
        prob(
            "failures.random_failure_probability",
            f.random_failure_probability,
        )?;
        prob(
            "failures.tool_replacement_probability",
            f.tool_replacement_probability,
        )?;
        let [lo, hi] = f.tool_life_min;
        if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
            return bad(
                "failures.tool_life_min".into(),
                format!("[{lo}, {hi}] must be two minutes > 0, the first not above the second"),
            );
        }
        let [plo, phi] = f.power_band_w;
        if !(plo.is_finite() && phi.is_finite() && plo < phi) {
            return bad(
                "failures.power_band_w".into(),
                format!("[{plo}, {phi}] must be two finite watts, the first below the second"),
            );
        }
        for (field, v) in [
            (
                "failures.heat_dissipation_max_delta_k",
                f.heat_dissipation_max_delta_k,
            ),
            (
                "failures.heat_dissipation_max_speed_rpm",
                f.heat_dissipation_max_speed_rpm,
            ),
        ] {
            if !v.is_finite() {
                return bad(field.into(), format!("{v} must be finite"));
            }
        }
        if f.overstrain_limit
            .iter()
            .any(|v| !v.is_finite() || *v <= 0.0)
        {
            return bad(
                "failures.overstrain_limit".into(),
                format!(
                    "{:?} must be three limits > 0 (L, M, H)",
                    f.overstrain_limit
                ),
            );
        }
        let q = &self.quality;
        if !q.cp.is_finite() || q.cp <= 0.0 {
            return bad("quality.cp".into(), format!("{} must be > 0", q.cp));
        }
        if !q.tool_wear_shift.is_finite() {
            return bad("quality.tool_wear_shift".into(), "must be finite".into());
        }
        for (i, fault) in self.faults.iter().enumerate() {
            let field = |name: &str| format!("faults[{i}] ({}).{name}", fault.kind.name());
            if let Some(m) = fault.magnitude
                && !m.is_finite()
            {
                return bad(field("magnitude"), format!("{m} must be finite"));
            }
            match fault.kind {
                FaultKind::Bearing if fault.duration.is_none() => {
                    return bad(
                        field("duration"),
                        "a bearing fault needs the running time from onset to failure".into(),
                    );
                }
                FaultKind::Cycle if fault.period.is_none() => {
                    return bad(field("period"), "a cycle needs its period".into());
                }
                FaultKind::MeanShift
                | FaultKind::Trend
                | FaultKind::Cycle
                | FaultKind::SensorBias
                    if fault.magnitude.is_none() =>
                {
                    return bad(field("magnitude"), "is required for this kind".into());
                }
                FaultKind::VarianceGrowth => {
                    let m = fault.magnitude.unwrap_or(0.0);
                    if m < 1.0 {
                        return bad(
                            field("magnitude"),
                            format!("{m}: the σ factor to grow to must be >= 1"),
                        );
                    }
                    if fault.duration.is_none() {
                        return bad(
                            field("duration"),
                            "variance growth needs the time it grows over".into(),
                        );
                    }
                }
                FaultKind::SensorStuck | FaultKind::SensorBias if fault.signal.is_none() => {
                    return bad(field("signal"), "a sensor fault names the signal".into());
                }
                _ => {}
            }
            if fault.kind != FaultKind::Bearing
                && let (Some(every), Some(duration)) = (fault.every, fault.duration)
                && duration > every
            {
                return bad(
                    field("duration"),
                    format!(
                        "{} ms is longer than every = {} ms, so faults would overlap",
                        duration.0, every.0
                    ),
                );
            }
        }
        Ok(())
    }
}
