//! The ISA-95 asset model: enterprise › site › area › line › machine › signal, plus material lots,
//! operators and shifts.
//!
//! A plant is written as a nested TOML file ([`Plant`]) and flattened into an [`AssetModel`] keyed by
//! slash-separated paths: `site/area/line/machine` for a machine and
//! `site/area/line/machine/signal` for a signal. The enterprise is the root and is not part of paths.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check_segment;
use crate::error::ModelError;

/// A level of the ISA-95 hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Enterprise,
    Site,
    Area,
    Line,
    Machine,
    Signal,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Enterprise => "enterprise",
            Level::Site => "site",
            Level::Area => "area",
            Level::Line => "line",
            Level::Machine => "machine",
            Level::Signal => "signal",
        }
    }
    /// Number of path segments of an asset of this level.
    pub fn depth(self) -> usize {
        match self {
            Level::Enterprise => 0,
            Level::Site => 1,
            Level::Area => 2,
            Level::Line => 3,
            Level::Machine => 4,
            Level::Signal => 5,
        }
    }
    fn from_depth(depth: usize) -> Option<Level> {
        Some(match depth {
            1 => Level::Site,
            2 => Level::Area,
            3 => Level::Line,
            4 => Level::Machine,
            5 => Level::Signal,
            _ => return None,
        })
    }
}

/// How a signal's values are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A measured quantity (temperature, speed, torque): mean/min/max are meaningful.
    #[default]
    Gauge,
    /// A monotonically increasing total (energy meter, part counter): differences are meaningful.
    Counter,
    /// An enumerated machine state, stored as the index into the signal's `states`.
    State,
    /// 0 or 1.
    Boolean,
}

/// An inclusive range `[min, max]`, written `[min, max]` in TOML and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl From<[f64; 2]> for Range {
    fn from([min, max]: [f64; 2]) -> Self {
        Range { min, max }
    }
}
impl From<Range> for [f64; 2] {
    fn from(r: Range) -> Self {
        [r.min, r.max]
    }
}

/// Specification limits of a quality characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usl: Option<f64>,
}

/// A signal of a machine, as written in the plant file (without its path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default)]
    pub kind: SignalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Physically plausible range; values outside it are rejected at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecLimits>,
    /// Names of the states of a `state` signal; the stored value is the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    /// Raw samples older than this many days are deleted (rollups are kept longer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

/// A signal with its full path: the unit of storage and query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalDef {
    /// `site/area/line/machine/signal`
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default)]
    pub kind: SignalKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Range>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecLimits>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// True when the signal was created by auto-registration rather than declared.
    #[serde(default)]
    pub auto: bool,
}

impl SignalDef {
    /// A gauge without unit, range or limits: what auto-registration creates.
    pub fn auto(path: &str) -> Self {
        SignalDef {
            path: path.to_owned(),
            unit: None,
            kind: SignalKind::Gauge,
            description: None,
            range: None,
            spec: None,
            states: Vec::new(),
            retention_days: None,
            auto: true,
        }
    }

    fn from_spec(machine: &str, s: &SignalSpec) -> Self {
        SignalDef {
            path: format!("{machine}/{}", s.name),
            unit: s.unit.clone(),
            kind: s.kind,
            description: s.description.clone(),
            range: s.range,
            spec: s.spec,
            states: s.states.clone(),
            retention_days: s.retention_days,
            auto: false,
        }
    }

    /// The machine this signal belongs to.
    pub fn machine_path(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(m, _)| m)
    }

    /// Checks the path and the consistency of range, limits and states.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_path(&self.path, Level::Signal)?;
        let bad = |field: &'static str, reason: String| ModelError::InvalidSignal {
            signal: self.path.clone(),
            field,
            reason,
        };
        if let Some(r) = self.range
            && !(r.min.is_finite() && r.max.is_finite() && r.min < r.max)
        {
            return Err(bad(
                "range",
                format!(
                    "[{}, {}] must be two finite numbers with min < max",
                    r.min, r.max
                ),
            ));
        }
        if let Some(s) = self.spec {
            for (name, v) in [
                ("spec.lsl", s.lsl),
                ("spec.target", s.target),
                ("spec.usl", s.usl),
            ] {
                if let Some(v) = v
                    && !v.is_finite()
                {
                    return Err(bad("spec", format!("{name} = {v} is not finite")));
                }
            }
            if let (Some(l), Some(u)) = (s.lsl, s.usl)
                && l >= u
            {
                return Err(bad("spec", format!("lsl {l} must be below usl {u}")));
            }
            if let (Some(l), Some(t)) = (s.lsl, s.target)
                && t < l
            {
                return Err(bad("spec", format!("target {t} is below lsl {l}")));
            }
            if let (Some(t), Some(u)) = (s.target, s.usl)
                && t > u
            {
                return Err(bad("spec", format!("target {t} is above usl {u}")));
            }
        }
        match self.kind {
            SignalKind::State if self.states.is_empty() => {
                return Err(bad(
                    "states",
                    "a state signal needs its list of state names".into(),
                ));
            }
            SignalKind::State => {}
            _ if !self.states.is_empty() => {
                return Err(bad(
                    "states",
                    "only a signal of kind \"state\" has states".into(),
                ));
            }
            _ => {}
        }
        if let Some(u) = &self.unit
            && u.len() > 32
        {
            return Err(bad("unit", format!("{u:?} is longer than 32 characters")));
        }
        if self.retention_days == Some(0) {
            return Err(bad(
                "retention_days",
                "must be at least 1 (omit it to keep data forever)".into(),
            ));
        }
        Ok(())
    }

    /// Checks a value against the signal's kind and plausible range. Returns the reason on failure.
    pub fn check_value(&self, value: f64) -> Result<(), String> {
        if !value.is_finite() {
            return Err(format!("value {value} is not a finite number"));
        }
        match self.kind {
            SignalKind::Boolean if value != 0.0 && value != 1.0 => {
                return Err(format!("value {value} is not 0 or 1 (signal is boolean)"));
            }
            SignalKind::State
                if value.fract() != 0.0 || value < 0.0 || value as usize >= self.states.len() =>
            {
                return Err(format!(
                    "value {value} is not a state index 0..{} (states: {})",
                    self.states.len(),
                    self.states.join(", ")
                ));
            }
            _ => {}
        }
        if let Some(r) = self.range
            && (value < r.min || value > r.max)
        {
            return Err(format!(
                "value {value} is outside the signal's range [{}, {}]",
                r.min, r.max
            ));
        }
        Ok(())
    }

    /// Maps a state name to its stored index.
    pub fn state_index(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s == name)
    }
}

/// A machine as written in the plant file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineDef {
    pub name: String,
    /// Free text: cnc_mill, injection_moulding, assembly, packaging, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Ideal cycle time of one part in seconds (used by OEE performance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_cycle_time_s: Option<f64>,
    /// Name of a `[[templates]]` entry whose kind, cycle time and signals this machine takes;
    /// fields and signals written on the machine itself win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default)]
    pub signals: Vec<SignalSpec>,
}

/// A machine type written once and used by many machines (`template = "cnc_mill"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineTemplate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_cycle_time_s: Option<f64>,
    #[serde(default)]
    pub signals: Vec<SignalSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDef {
    pub name: String,
    #[serde(default)]
    pub machines: Vec<MachineDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaDef {
    pub name: String,
    #[serde(default)]
    pub lines: Vec<LineDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDef {
    pub name: String,
    /// IANA time zone of the site (`Europe/Berlin`); shifts, breaks, days and months of its
    /// machines are local to it. None: UTC (or the configuration's `plant.timezone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub areas: Vec<AreaDef>,
}

/// State of a material lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotState {
    #[default]
    Planned,
    Available,
    InProcess,
    Consumed,
    Shipped,
    Scrapped,
}

/// A material lot: a quantity of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotDef {
    pub id: String,
    pub product: String,
    pub quantity: f64,
    #[serde(default = "default_unit")]
    pub unit: String,
    #[serde(default)]
    pub state: LotState,
    /// Where the lot is now (a store, a line buffer, a machine path, shipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

fn default_unit() -> String {
    "pcs".into()
}

impl LotDef {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, reason: String| ModelError::InvalidEntity {
            what: "lot",
            id: self.id.clone(),
            field,
            reason,
        };
        check_segment(&self.id).map_err(|r| bad("id", r.into()))?;
        if self.product.trim().is_empty() {
            return Err(bad("product", "must not be empty".into()));
        }
        if !self.quantity.is_finite() || self.quantity < 0.0 {
            return Err(bad(
                "quantity",
                format!("{} must be a finite number >= 0", self.quantity),
            ));
        }
        Ok(())
    }
}

/// A person who works at the plant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorDef {
    pub id: String,
    pub name: String,
    /// Machines or lines this operator is qualified for (paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualified_for: Vec<String>,
}

/// A shift: a named daily time window in the local time of each machine's site, `HH:MM` to
/// `HH:MM` (may cross midnight; see [`crate::zone`] for daylight-saving days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDef {
    pub name: String,
    pub start: String,
    pub end: String,
}

impl ShiftDef {
    /// Start and end as minutes after midnight.
    pub fn minutes(&self) -> Result<(u32, u32), ModelError> {
        let parse = |field: &'static str, s: &str| {
            let bad = || ModelError::InvalidEntity {
                what: "shift",
                id: self.name.clone(),
                field,
                reason: format!("{s:?} is not a time of day HH:MM"),
            };
            let (h, m) = s.split_once(':').ok_or_else(bad)?;
            let h: u32 = h.parse().map_err(|_| bad())?;
            let m: u32 = m.parse().map_err(|_| bad())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (s, e) = (parse("start", &self.start)?, parse("end", &self.end)?);
        if s == e {
            return Err(ModelError::InvalidEntity {
                what: "shift",
                id: self.name.clone(),
                field: "end",
                reason: "must differ from start".into(),
            });
        }
        Ok((s, e))
    }

    /// Whether a minute of the day falls in this shift.
    pub fn contains_minute(&self, minute_of_day: u32) -> bool {
        match self.minutes() {
            Ok((s, e)) if s < e => (s..e).contains(&minute_of_day),
            Ok((s, e)) => minute_of_day >= s || minute_of_day < e,
            Err(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseDef {
    pub name: String,
}

impl Default for EnterpriseDef {
    fn default() -> Self {
        EnterpriseDef {
            name: "enterprise".into(),
        }
    }
}

/// The plant file: the whole hierarchy plus lots, operators and shifts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plant {
    #[serde(default)]
    pub enterprise: EnterpriseDef,
    /// Machine types that machines refer to with `template = "…"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<MachineTemplate>,
    #[serde(default)]
    pub sites: Vec<SiteDef>,
    #[serde(default)]
    pub lots: Vec<LotDef>,
    #[serde(default)]
    pub operators: Vec<OperatorDef>,
    #[serde(default)]
    pub shifts: Vec<ShiftDef>,
}

impl Plant {
    /// Every machine with its path, its template applied: the machine's own kind and cycle time
    /// win over the template's, and a signal written on the machine replaces the template's
    /// signal of the same name.
    pub fn machines(&self) -> Result<Vec<(String, MachineDef)>, ModelError> {
        let mut out = Vec::new();
        for site in &self.sites {
            for area in &site.areas {
                for line in &area.lines {
                    for machine in &line.machines {
                        let path =
                            format!("{}/{}/{}/{}", site.name, area.name, line.name, machine.name);
                        let resolved = self.apply_template(&path, machine)?;
                        out.push((path, resolved));
                    }
                }
            }
        }
        Ok(out)
    }

    fn apply_template(&self, path: &str, machine: &MachineDef) -> Result<MachineDef, ModelError> {
        let Some(name) = &machine.template else {
            return Ok(machine.clone());
        };
        let Some(t) = self.templates.iter().find(|t| &t.name == name) else {
            let known: Vec<&str> = self.templates.iter().map(|t| t.name.as_str()).collect();
            return Err(ModelError::InvalidEntity {
                what: "machine",
                id: path.to_owned(),
                field: "template",
                reason: if known.is_empty() {
                    format!("unknown template {name:?}: the plant file defines no [[templates]]")
                } else {
                    format!("unknown template {name:?}; defined: {}", known.join(", "))
                },
            });
        };
        let mut signals: Vec<SignalSpec> = t
            .signals
            .iter()
            .filter(|s| !machine.signals.iter().any(|m| m.name == s.name))
            .cloned()
            .collect();
        signals.extend(machine.signals.iter().cloned());
        Ok(MachineDef {
            name: machine.name.clone(),
            kind: machine.kind.clone().or_else(|| t.kind.clone()),
            ideal_cycle_time_s: machine.ideal_cycle_time_s.or(t.ideal_cycle_time_s),
            template: None,
            signals,
        })
    }
}

/// A node of the hierarchy above signals (site, area, line or machine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetNode {
    pub path: String,
    pub level: Level,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_cycle_time_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl AssetNode {
    /// Checks the path and that only a site has a time zone, one of the IANA database.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_path(&self.path, self.level)?;
        if let Some(tz) = &self.timezone {
            let bad = |reason: String| ModelError::InvalidEntity {
                what: self.level.name(),
                id: self.path.clone(),
                field: "timezone",
                reason,
            };
            if self.level != Level::Site {
                return Err(bad(format!(
                    "{tz:?}: only a site has a time zone (its machines use it)"
                )));
            }
            crate::Zone::parse(tz).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    fn new(path: String, level: Level) -> Self {
        AssetNode {
            path,
            level,
            kind: None,
            ideal_cycle_time_s: None,
            timezone: None,
        }
    }
}

/// Checks that `path` has the shape of `level` and valid segments.
pub fn check_path(path: &str, level: Level) -> Result<(), ModelError> {
    let segs: Vec<&str> = path.split('/').collect();
    if segs.len() != level.depth() {
        return Err(ModelError::PathShape {
            path: path.to_owned(),
            expected: level.depth(),
            got: segs.len(),
            shape: shape_of(level),
        });
    }
    for (i, s) in segs.iter().enumerate() {
        let seg_level = Level::from_depth(i + 1).unwrap_or(Level::Signal);
        check_segment(s).map_err(|reason| ModelError::InvalidName {
            level: seg_level.name(),
            name: (*s).to_owned(),
            reason,
        })?;
    }
    Ok(())
}

fn shape_of(level: Level) -> &'static str {
    match level {
        Level::Enterprise => "",
        Level::Site => "site",
        Level::Area => "site/area",
        Level::Line => "site/area/line",
        Level::Machine => "site/area/line/machine",
        Level::Signal => "site/area/line/machine/signal",
    }
}

/// Level of an asset path by its number of segments.
pub fn level_of(path: &str) -> Option<Level> {
    Level::from_depth(path.split('/').count())
}

/// The flattened asset model: every node and signal by path, plus lots, operators and shifts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetModel {
    pub enterprise: String,
    nodes: BTreeMap<String, AssetNode>,
    signals: BTreeMap<String, SignalDef>,
    pub lots: BTreeMap<String, LotDef>,
    pub operators: BTreeMap<String, OperatorDef>,
    pub shifts: Vec<ShiftDef>,
}

impl AssetModel {
    /// Flattens and validates a plant file. Every error names the path and the problem.
    pub fn from_plant(plant: &Plant) -> Result<Self, ModelError> {
        let mut m = AssetModel {
            enterprise: plant.enterprise.name.clone(),
            ..Default::default()
        };
        for site in &plant.sites {
            check_segment(&site.name).map_err(|reason| ModelError::InvalidName {
                level: "site",
                name: site.name.clone(),
                reason,
            })?;
            let mut node = AssetNode::new(site.name.clone(), Level::Site);
            node.timezone = site.timezone.clone();
            node.validate()?;
            m.insert_node(node)?;
            for area in &site.areas {
                let area_path = format!("{}/{}", site.name, area.name);
                check_path(&area_path, Level::Area)?;
                m.insert_node(AssetNode::new(area_path.clone(), Level::Area))?;
                for line in &area.lines {
                    let line_path = format!("{area_path}/{}", line.name);
                    check_path(&line_path, Level::Line)?;
                    m.insert_node(AssetNode::new(line_path.clone(), Level::Line))?;
                    for machine in &line.machines {
                        let mpath = format!("{line_path}/{}", machine.name);
                        check_path(&mpath, Level::Machine)?;
                        let machine = &plant.apply_template(&mpath, machine)?;
                        if let Some(c) = machine.ideal_cycle_time_s
                            && (!c.is_finite() || c <= 0.0)
                        {
                            return Err(ModelError::InvalidEntity {
                                what: "machine",
                                id: mpath,
                                field: "ideal_cycle_time_s",
                                reason: format!("{c} must be a finite number > 0"),
                            });
                        }
                        let mut node = AssetNode::new(mpath.clone(), Level::Machine);
                        node.kind = machine.kind.clone();
                        node.ideal_cycle_time_s = machine.ideal_cycle_time_s;
                        m.insert_node(node)?;
                        for s in &machine.signals {
                            m.insert_signal(SignalDef::from_spec(&mpath, s))?;
                        }
                    }
                }
            }
        }
        for lot in &plant.lots {
            lot.validate()?;
            if m.lots.insert(lot.id.clone(), lot.clone()).is_some() {
                return Err(ModelError::Duplicate {
                    level: "lot",
                    path: lot.id.clone(),
                });
            }
        }
        for op in &plant.operators {
            check_segment(&op.id).map_err(|reason| ModelError::InvalidName {
                level: "operator",
                name: op.id.clone(),
                reason,
            })?;
            if m.operators.insert(op.id.clone(), op.clone()).is_some() {
                return Err(ModelError::Duplicate {
                    level: "operator",
                    path: op.id.clone(),
                });
            }
        }
        for shift in &plant.shifts {
            shift.minutes()?;
            if m.shifts.iter().any(|s| s.name == shift.name) {
                return Err(ModelError::Duplicate {
                    level: "shift",
                    path: shift.name.clone(),
                });
            }
            m.shifts.push(shift.clone());
        }
        Ok(m)
    }

    fn insert_node(&mut self, node: AssetNode) -> Result<(), ModelError> {
        if self.nodes.contains_key(&node.path) {
            return Err(ModelError::Duplicate {
                level: node.level.name(),
                path: node.path,
            });
        }
        self.nodes.insert(node.path.clone(), node);
        Ok(())
    }

    fn insert_signal(&mut self, def: SignalDef) -> Result<(), ModelError> {
        def.validate()?;
        if self.signals.contains_key(&def.path) {
            return Err(ModelError::Duplicate {
                level: "signal",
                path: def.path,
            });
        }
        self.signals.insert(def.path.clone(), def);
        Ok(())
    }

    /// Creates `path` (a node path) and every node above it that does not exist yet.
    pub fn ensure_parents(&mut self, path: &str) -> Result<(), ModelError> {
        let segs: Vec<&str> = path.split('/').collect();
        let top = segs.len().min(Level::Machine.depth());
        for depth in 1..=top {
            let p = segs[..depth].join("/");
            if !self.nodes.contains_key(&p) {
                let level = Level::from_depth(depth).ok_or_else(|| ModelError::Unknown {
                    level: "asset",
                    path: p.clone(),
                })?;
                check_path(&p, level)?;
                self.nodes.insert(p.clone(), AssetNode::new(p, level));
            }
        }
        Ok(())
    }

    /// Adds or replaces a signal definition, creating its machine and parents as needed.
    /// Returns true if the signal is new.
    pub fn define_signal(&mut self, def: SignalDef) -> Result<bool, ModelError> {
        def.validate()?;
        self.ensure_parents(def.machine_path())?;
        Ok(self.signals.insert(def.path.clone(), def).is_none())
    }

    /// Adds or replaces a site, area, line or machine node, creating its parents.
    pub fn define_node(&mut self, node: AssetNode) -> Result<bool, ModelError> {
        check_path(&node.path, node.level)?;
        if let Some((parent, _)) = node.path.rsplit_once('/') {
            self.ensure_parents(parent)?;
        }
        Ok(self.nodes.insert(node.path.clone(), node).is_none())
    }

    pub fn signal(&self, path: &str) -> Option<&SignalDef> {
        self.signals.get(path)
    }
    pub fn node(&self, path: &str) -> Option<&AssetNode> {
        self.nodes.get(path)
    }
    pub fn signals(&self) -> impl Iterator<Item = &SignalDef> {
        self.signals.values()
    }
    pub fn nodes(&self) -> impl Iterator<Item = &AssetNode> {
        self.nodes.values()
    }
    pub fn signal_count(&self) -> usize {
        self.signals.len()
    }
    /// Signals whose path starts with `prefix` followed by `/` (or all when the prefix is empty).
    pub fn signals_under<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a SignalDef> + 'a {
        self.signals
            .values()
            .filter(move |s| is_under(&s.path, prefix))
    }

    /// The hierarchy as a nested tree for display and the API.
    pub fn tree(&self) -> TreeNode {
        let mut root = TreeNode {
            name: self.enterprise.clone(),
            path: String::new(),
            level: Level::Enterprise,
            kind: None,
            children: Vec::new(),
            signals: Vec::new(),
        };
        for node in self.nodes.values() {
            let segs: Vec<&str> = node.path.split('/').collect();
            let mut cur = &mut root;
            for (i, seg) in segs.iter().enumerate() {
                let idx = match cur.children.iter().position(|c| c.name == *seg) {
                    Some(i) => i,
                    None => {
                        let p = segs[..=i].join("/");
                        let level = Level::from_depth(i + 1).unwrap_or(Level::Machine);
                        cur.children.push(TreeNode {
                            name: (*seg).to_owned(),
                            path: p,
                            level,
                            kind: None,
                            children: Vec::new(),
                            signals: Vec::new(),
                        });
                        cur.children.len() - 1
                    }
                };
                cur = &mut cur.children[idx];
            }
            cur.kind = node.kind.clone();
        }
        for sig in self.signals.values() {
            let machine = sig.machine_path();
            if let Some(node) = root.find_mut(machine) {
                node.signals.push(sig.clone());
            }
        }
        root
    }
}

/// Whether `path` equals `prefix` or lies below it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// A node of [`AssetModel::tree`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeNode {
    pub name: String,
    pub path: String,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TreeNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalDef>,
}

impl TreeNode {
    fn find_mut(&mut self, path: &str) -> Option<&mut TreeNode> {
        if self.path == path {
            return Some(self);
        }
        self.children
            .iter_mut()
            .find(|c| is_under(path, &c.path))
            .and_then(|c| c.find_mut(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plant() -> Plant {
        Plant {
            enterprise: EnterpriseDef {
                name: "acme".into(),
            },
            sites: vec![SiteDef {
                name: "plant1".into(),
                timezone: None,
                areas: vec![AreaDef {
                    name: "machining".into(),
                    lines: vec![LineDef {
                        name: "line1".into(),
                        machines: vec![MachineDef {
                            name: "cnc1".into(),
                            kind: Some("cnc_mill".into()),
                            ideal_cycle_time_s: Some(30.0),
                            template: None,
                            signals: vec![
                                SignalSpec {
                                    name: "spindle_speed".into(),
                                    unit: Some("rpm".into()),
                                    kind: SignalKind::Gauge,
                                    description: None,
                                    range: Some(Range {
                                        min: 0.0,
                                        max: 5000.0,
                                    }),
                                    spec: None,
                                    states: vec![],
                                    retention_days: None,
                                },
                                SignalSpec {
                                    name: "state".into(),
                                    unit: None,
                                    kind: SignalKind::State,
                                    description: None,
                                    range: None,
                                    spec: None,
                                    states: vec!["idle".into(), "running".into()],
                                    retention_days: None,
                                },
                            ],
                        }],
                    }],
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn flattens_and_builds_tree() {
        let m = AssetModel::from_plant(&plant()).expect("valid plant");
        assert_eq!(m.signal_count(), 2);
        let s = m
            .signal("plant1/machining/line1/cnc1/spindle_speed")
            .expect("signal");
        assert_eq!(s.machine_path(), "plant1/machining/line1/cnc1");
        assert!(s.check_value(1200.0).is_ok());
        assert!(s.check_value(9000.0).unwrap_err().contains("outside"));
        let state = m
            .signal("plant1/machining/line1/cnc1/state")
            .expect("state");
        assert_eq!(state.state_index("running"), Some(1));
        assert!(state.check_value(2.0).is_err());
        let tree = m.tree();
        let cnc = &tree.children[0].children[0].children[0].children[0];
        assert_eq!(cnc.path, "plant1/machining/line1/cnc1");
        assert_eq!(cnc.signals.len(), 2);
    }

    #[test]
    fn rejects_duplicates_bad_names_and_bad_limits() {
        let mut p = plant();
        let dup = p.sites[0].areas[0].lines[0].machines[0].signals[0].clone();
        p.sites[0].areas[0].lines[0].machines[0].signals.push(dup);
        let err = AssetModel::from_plant(&p).expect_err("duplicate");
        assert!(err.to_string().contains("duplicate signal"), "{err}");

        let mut p = plant();
        p.sites[0].name = "plant 1".into();
        assert!(AssetModel::from_plant(&p).is_err());

        let mut p = plant();
        p.sites[0].areas[0].lines[0].machines[0].signals[0].spec = Some(SpecLimits {
            lsl: Some(10.0),
            target: None,
            usl: Some(5.0),
        });
        let err = AssetModel::from_plant(&p).expect_err("lsl above usl");
        assert!(
            err.to_string().contains("lsl 10 must be below usl 5"),
            "{err}"
        );
    }

    #[test]
    fn templates_give_machines_their_signals() {
        let mut p = plant();
        let line = &mut p.sites[0].areas[0].lines[0];
        let cnc1 = line.machines[0].clone();
        p.templates.push(MachineTemplate {
            name: "mill".into(),
            kind: Some("cnc_mill".into()),
            ideal_cycle_time_s: Some(40.0),
            signals: cnc1.signals.clone(),
        });
        let mut cnc2 = MachineDef {
            name: "cnc2".into(),
            kind: None,
            ideal_cycle_time_s: Some(25.0),
            template: Some("mill".into()),
            signals: vec![cnc1.signals[0].clone()],
        };
        cnc2.signals[0].unit = Some("1/min".into());
        let extra = SignalSpec {
            name: "coolant_flow".into(),
            ..cnc1.signals[0].clone()
        };
        cnc2.signals.push(extra);
        p.sites[0].areas[0].lines[0].machines.push(cnc2);
        let m = AssetModel::from_plant(&p).expect("valid");
        assert_eq!(m.signal_count(), 2 + 3);
        let node = m.node("plant1/machining/line1/cnc2").expect("machine");
        assert_eq!(node.kind.as_deref(), Some("cnc_mill"));
        assert_eq!(node.ideal_cycle_time_s, Some(25.0));
        let speed = m
            .signal("plant1/machining/line1/cnc2/spindle_speed")
            .expect("overridden signal");
        assert_eq!(speed.unit.as_deref(), Some("1/min"));
        assert!(m.signal("plant1/machining/line1/cnc2/state").is_some());
        let machines = p.machines().expect("resolved");
        assert_eq!(machines[1].1.signals.len(), 3);

        p.sites[0].areas[0].lines[0].machines[1].template = Some("lathe".into());
        let err = AssetModel::from_plant(&p).expect_err("unknown template");
        assert!(
            err.to_string()
                .contains("unknown template \"lathe\"; defined: mill"),
            "{err}"
        );
    }

    #[test]
    fn define_signal_creates_parents() {
        let mut m = AssetModel::default();
        assert!(
            m.define_signal(SignalDef::auto("s/a/l/m/x"))
                .expect("valid")
        );
        assert_eq!(m.nodes().count(), 4);
        assert!(m.node("s/a/l/m").is_some());
        assert!(m.define_signal(SignalDef::auto("s/a/l/m")).is_err());
        assert!(is_under("s/a/l/m/x", "s/a"));
        assert!(!is_under("s/ab/l", "s/a"));
    }

    #[test]
    fn site_time_zones_are_validated() {
        let mut p = plant();
        p.sites[0].timezone = Some("Asia/Shanghai".into());
        let m = AssetModel::from_plant(&p).expect("valid zone");
        let site = m.node("plant1").expect("site");
        assert_eq!(site.timezone.as_deref(), Some("Asia/Shanghai"));
        p.sites[0].timezone = Some("Asia/Shangai".into());
        let err = AssetModel::from_plant(&p).expect_err("misspelt zone");
        assert_eq!(
            err.to_string(),
            "site \"plant1\": timezone \"Asia/Shangai\" is not a time zone of the IANA database \
             (write a name such as \"Europe/Berlin\", \"Asia/Shanghai\" or \"UTC\")"
        );
        let mut machine = m
            .node("plant1/machining/line1/cnc1")
            .expect("machine")
            .clone();
        assert!(machine.validate().is_ok());
        machine.timezone = Some("Europe/Berlin".into());
        let err = machine
            .validate()
            .expect_err("a machine has no zone of its own");
        assert!(
            err.to_string().contains(
                "machine \"plant1/machining/line1/cnc1\": timezone \"Europe/Berlin\": only a site"
            ),
            "{err}"
        );
    }

    #[test]
    fn shifts_cross_midnight() {
        let night = ShiftDef {
            name: "night".into(),
            start: "22:00".into(),
            end: "06:00".into(),
        };
        assert!(night.contains_minute(23 * 60));
        assert!(night.contains_minute(60));
        assert!(!night.contains_minute(12 * 60));
        let bad = ShiftDef {
            name: "x".into(),
            start: "25:00".into(),
            end: "06:00".into(),
        };
        assert!(bad.minutes().is_err());
    }
}
