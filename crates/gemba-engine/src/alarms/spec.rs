//! The alarm wire and record types: rule specs as the user writes them (one struct per rule
//! kind, tagged by `type`), what a rule learned when it was fitted, and the alarms of the book.
//! They are the JSON of `POST /api/v1/alarm-rules`, of the stored `alarm_rule` and `alarm`
//! records and of the alarm API's answers.

use gemba_analytics::PcaMonitor;
use gemba_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How bad an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "{s:?} is not a severity: low, medium, high or critical"
                ));
            }
        })
    }
}

fn default_severity() -> Severity {
    Severity::Medium
}
fn default_true() -> bool {
    true
}

/// A rule as the user writes it (`POST /api/v1/alarm-rules`): the common fields and the fields of
/// its `type`, in one object; unknown fields are an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSpec {
    /// Unique name: ASCII letters, digits, `_`, `-`, `.`.
    pub name: String,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(flatten)]
    pub kind: RuleKind,
}

impl<'de> Deserialize<'de> for RuleSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Common {
            name: String,
            #[serde(default = "default_severity")]
            severity: Severity,
            #[serde(default)]
            description: Option<String>,
            #[serde(default = "default_true")]
            enabled: bool,
        }
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut common = serde_json::Map::new();
        for k in ["name", "severity", "description", "enabled"] {
            if let Some(v) = map.remove(k) {
                common.insert(k.into(), v);
            }
        }
        let c: Common = serde_json::from_value(Value::Object(common)).map_err(D::Error::custom)?;
        let kind: RuleKind =
            serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(RuleSpec {
            name: c.name,
            severity: c.severity,
            description: c.description,
            enabled: c.enabled,
            kind,
        })
    }
}

/// A baseline period of normal operation, ms since the epoch, `from <= ts < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// What a rule watches and when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleKind {
    /// Raised when the signal stays above `above` (or below `below`) for `raise_after_s`; cleared
    /// when it stays on the far side of `clear` for `clear_after_s`. Between the limit and `clear`
    /// the alarm keeps its state (hysteresis).
    Threshold(ThresholdSpec),
    /// An SPC chart on one signal with its run rules; limits come from `baseline` (default: the
    /// last hour of stored data) or are given as `center` and `sigma`, and are frozen.
    Spc(SpcSpec),
    /// PCA on a machine's signals fitted on `baseline` (default: the last two hours): the score
    /// `max(T²/limit, SPE/limit)` is stored as the signal `<machine>/<score_signal>`; the alarm is
    /// raised after `raise_after` points in a row above 1 and cleared after `clear_after` points
    /// below `clear_index`.
    Pca(PcaSpec),
    /// A variational autoencoder (gemba-nn, MLP) trained on `baseline` windows of `window`
    /// consecutive rows of the machine's signals: the score (negative ELBO) over a threshold
    /// learned on held-out normal windows is stored as `<machine>/<score_signal>` (default
    /// `vae_index`); raised and cleared like `pca`. The network is saved in the model registry
    /// as `<rule name>-vae`.
    Vae(VaeSpec),
    /// A registered classifier (logistic regression, SVM) scored on the machine's signals named
    /// like its features: the probability of `classes` (default: every class but the normal one)
    /// is stored as `<machine>/<score_signal>` and raises the alarm after `raise_after` points above
    /// `above`; it clears after `clear_after` points below `clear`.
    Model(ModelSpec),
    /// Remaining useful life (see `health`): raised when the predicted running hours left fall
    /// below `lead_time_h`, cleared when the trend is gone or the RUL is above it again.
    /// Evaluated every `alarms.periodic_interval_s`.
    Rul(RulSpec),
}

fn vibration() -> String {
    "vibration_rms".into()
}

fn half() -> f64 {
    0.5
}

/// The chart of an `spc` rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpcChart {
    /// Individuals (or, with a subgroup, X̄) against frozen limits.
    #[default]
    #[serde(alias = "i", alias = "individuals")]
    Imr,
    /// Exponentially weighted moving average.
    Ewma,
}

/// What a rule learned when it was created, frozen with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fitted {
    Threshold,
    Spc(SpcFitted),
    Pca(PcaFitted),
    Rul(RulFitted),
    Vae(VaeFitted),
    Model(ModelFitted),
}

/// A stored rule: the spec, what it learned, where it applies and when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRule {
    pub spec: RuleSpec,
    pub fitted: Fitted,
    /// The machine (or other asset) the alarms of this rule belong to.
    pub asset: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// Alarm state as a person sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// The condition is present and nobody has acknowledged it.
    Active,
    /// The condition is present and someone has acknowledged it.
    Acknowledged,
    /// The condition is gone; the alarm waits to be closed.
    Cleared,
    /// Done.
    Closed,
}

impl std::str::FromStr for AlarmState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "active" => AlarmState::Active,
            "acknowledged" => AlarmState::Acknowledged,
            "cleared" => AlarmState::Cleared,
            "closed" => AlarmState::Closed,
            _ => {
                return Err(format!(
                    "{s:?} is not a state: active, acknowledged, cleared or closed"
                ));
            }
        })
    }
}

/// Who did something and when (wall-clock ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub by: String,
    pub at: Timestamp,
    pub text: String,
}

/// One step of an alarm's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub at: Timestamp,
    /// `raised`, `acknowledged`, `cleared`, `closed`, `reraised`, `comment`.
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A reading that the explanation refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub signal: String,
    pub ts: Timestamp,
    pub value: f64,
}

/// A signal's part in an alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalContribution {
    pub signal: String,
    /// Share of the alarm statistic, 0–1 (they sum to 1).
    pub contribution: f64,
    pub value: f64,
    /// What the signal would be in normal operation (the limit, the centre line or the mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
}

/// Why an alarm was raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The rule that fired, in words (`SPC rule 2: nine points in a row on one side …`).
    pub rule: String,
    /// The readings that broke the rule.
    pub values: Vec<Reading>,
    /// Control limits of SPC rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
    /// Contributing signals, largest first.
    pub contributions: Vec<SignalContribution>,
}

/// An alarm with its whole life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub id: u64,
    pub rule: String,
    pub rule_type: String,
    pub severity: Severity,
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub state: AlarmState,
    /// Whether the condition is present now.
    pub condition: bool,
    pub message: String,
    /// Data time of the first raise and of the latest raise.
    pub raised_at: Timestamp,
    pub last_raised_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Stamp>,
    /// How often the rule fired while this alarm was open.
    pub count: u32,
    pub explanation: Explanation,
    #[serde(default)]
    pub comments: Vec<Comment>,
    #[serde(default)]
    pub history: Vec<Transition>,
}

impl Alarm {
    pub(super) fn refresh_state(&mut self) {
        self.state = if self.closed.is_some() {
            AlarmState::Closed
        } else if !self.condition {
            AlarmState::Cleared
        } else if self.acknowledged.is_some() {
            AlarmState::Acknowledged
        } else {
            AlarmState::Active
        };
    }
}

/// Filter of an alarm history query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlarmQuery {
    /// `None`: every state; `open` is expressed as active + acknowledged + cleared.
    pub states: Option<Vec<AlarmState>>,
    pub min_severity: Option<Severity>,
    pub asset_prefix: Option<String>,
    pub rule: Option<String>,
    /// Raised within `from <= raised_at < to`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: usize,
}

impl RuleKind {
    /// The `type` of the rule as written in its spec.
    pub fn type_name(&self) -> &'static str {
        match self {
            RuleKind::Threshold(_) => "threshold",
            RuleKind::Spc(_) => "spc",
            RuleKind::Pca(_) => "pca",
            RuleKind::Vae(_) => "vae",
            RuleKind::Model(_) => "model",
            RuleKind::Rul(_) => "rul",
        }
    }
}

/// Raised when the signal stays above `above` (or below `below`) for `raise_after_s`; cleared
/// when it stays on the far side of `clear` for `clear_after_s`. Between the limit and `clear`
/// the alarm keeps its state (hysteresis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    pub signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    pub clear: f64,
    #[serde(default)]
    pub raise_after_s: f64,
    #[serde(default)]
    pub clear_after_s: f64,
}

/// An SPC chart on one signal with its run rules; limits come from `baseline` (default: the
/// last hour of stored data) or are given as `center` and `sigma`, and are frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcSpec {
    pub signal: String,
    /// `imr` (individuals; `i` and `individuals` are read as `imr`) or `ewma`.
    #[serde(default)]
    pub chart: SpcChart,
    /// Run rules 1–8 (default: the Western Electric rules 1, 2, 5, 6; EWMA: rule 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// EWMA weight λ and limit width L (σ of the EWMA statistic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<f64>,
    /// Points in a row without a violation that clear the alarm (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_after: Option<u32>,
    /// Chart means of this many consecutive values (an X̄ chart; default 1: individuals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subgroup: Option<u32>,
}

/// PCA on a machine's signals fitted on `baseline` (default: the last two hours): the score
/// `max(T²/limit, SPE/limit)` is stored as the signal `<machine>/<score_signal>`; the alarm is
/// raised after `raise_after` points in a row above 1 and cleared after `clear_after` points
/// below `clear_index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcaSpec {
    pub machine: String,
    /// Signal names under the machine (default: every gauge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_index: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_signal: Option<String>,
    /// Fit and score only while the machine's `state` signal is in this state (default:
    /// `running` when the machine has such a state; `any` scores in every state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A variational autoencoder (gemba-nn, MLP) trained on `baseline` windows of `window`
/// consecutive rows of the machine's signals: the score (negative ELBO) over a threshold
/// learned on held-out normal windows is stored as `<machine>/<score_signal>` (default
/// `vae_index`); raised and cleared like `pca`. The network is saved in the model registry
/// as `<rule name>-vae`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeSpec {
    pub machine: String,
    /// Signal names under the machine (default: every gauge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Period>,
    /// Consecutive rows per window (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// Quantile of the held-out normal scores that is the threshold (default 0.999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// Training epochs at most (default 60; early stopping on a validation split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_index: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_signal: Option<String>,
    /// As for `pca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A registered classifier (logistic regression, SVM) scored on the machine's signals named
/// like its features: the probability of `classes` (default: every class but the normal one)
/// is stored as `<machine>/<score_signal>` and raises the alarm after `raise_after` points above
/// `above`; it clears after `clear_after` points below `clear`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub machine: String,
    pub model: String,
    /// Default: the version active for the machine, else the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    #[serde(default = "half")]
    pub above: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raise_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_signal: Option<String>,
    /// Score only while the machine's `state` signal is in this state (as for `pca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Remaining useful life (see `health`): raised when the predicted running hours left fall
/// below `lead_time_h`, cleared when the trend is gone or the RUL is above it again.
/// Evaluated every `alarms.periodic_interval_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulSpec {
    pub machine: String,
    #[serde(default = "vibration")]
    pub signal: String,
    /// Failure level of the indicator.
    pub threshold: f64,
    pub lead_time_h: f64,
    /// Normal running (default: the 2 h before the rule was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Period>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpcFitted {
    /// Centre and σ of the plotted statistic.
    pub center: f64,
    pub sigma: f64,
    /// σ of the individual values (EWMA: of the input).
    pub sigma_x: f64,
    pub rules: Vec<u8>,
    pub baseline_points: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaFitted {
    pub signals: Vec<String>,
    pub model: PcaMonitor,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub components: usize,
    pub score_signal: String,
    /// The state signal and the state index that gate scoring, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_state: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulFitted {
    pub baseline: Period,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeFitted {
    pub signals: Vec<String>,
    pub window: usize,
    pub quantile: f64,
    /// The network in the model registry.
    pub model: String,
    pub version: u32,
    pub threshold: f64,
    pub train_windows: usize,
    pub holdout_windows: usize,
    pub score_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_state: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFitted {
    pub version: u32,
    pub kind: String,
    pub features: Vec<String>,
    /// Indices of the watched classes in the model's class list.
    pub watched: Vec<usize>,
    pub class_names: Vec<String>,
    pub score_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_state: Option<f64>,
}
