//! Alarm rules, the streaming scorer and the alarm book.
//!
//! - A **rule** watches signals: a threshold with hysteresis and minimum durations, an SPC chart
//!   (individuals or EWMA) with its run rules against limits frozen when the rule was created, or a
//!   PCA model (Hotelling T² and SPE) fitted on a machine's normal data. Rules are records of the
//!   store (`alarm_rule`), so they survive restarts.
//! - The **scorer** is one OS thread. The writer hands it every committed sample of a watched
//!   signal (after the commit, so scoring never delays an acknowledgement); it evaluates the rules
//!   in timestamp order, writes derived scores back as signals (so they can be charted and alarmed
//!   on) and raises and clears alarms.
//! - The **book** holds every alarm: one per rule while it is open (deduplicated: a rule that fires
//!   again re-activates its open alarm and counts), with the states active → acknowledged →
//!   cleared → closed, who did what and when, comments, and the explanation (the rule, the values,
//!   the contributing signals). Alarms are records of the store (`alarm`); each raise and clear is
//!   also stored as a `custom:alarm` event at the asset; every change is handed to the
//!   notification outbox (`crate::notify`: webhooks, e-mail).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use gemba_analytics::spc::{Imr, Rule as RunRule, RuleSet};
use gemba_analytics::{PcaMonitor, PcaOptions, RuleMonitor, StreamViolation};
use gemba_core::{Event, EventBody, Sample, SignalDef, SignalKind, Timestamp, check_segment};
use gemba_store::{SeriesWrite, SignalId, Store, WriteBatch};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::EngineError;
use crate::metrics::Metrics;
use crate::notify::{AlarmEvent, Notification, Outbox};

#[cfg(feature = "vae")]
mod vae;
use crate::writer::Writer;

const RULE_RECORD: &str = "alarm_rule";
/// `rul` rules judge the last 12 h of the indicator (the fit uses its last 3 running hours).
const RUL_WINDOW_MS: i64 = 12 * 3_600_000;
const ALARM_RECORD: &str = "alarm";

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
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Raised when the signal stays above `above` (or below `below`) for `raise_after_s`; cleared
    /// when it stays on the far side of `clear` for `clear_after_s`. Between the limit and `clear`
    /// the alarm keeps its state (hysteresis).
    Threshold {
        signal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        clear: f64,
        #[serde(default)]
        raise_after_s: f64,
        #[serde(default)]
        clear_after_s: f64,
    },
    /// An SPC chart on one signal with its run rules; limits come from `baseline` (default: the
    /// last hour of stored data) or are given as `center` and `sigma`, and are frozen.
    Spc {
        signal: String,
        /// `imr` (individuals) or `ewma`.
        #[serde(default = "default_chart")]
        chart: String,
        /// Run rules 1–8 (default: the Western Electric rules 1, 2, 5, 6; EWMA: rule 1 only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules: Option<Vec<u8>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<Period>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        center: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sigma: Option<f64>,
        /// EWMA weight λ and limit width L (σ of the EWMA statistic).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lambda: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        l: Option<f64>,
        /// Points in a row without a violation that clear the alarm (default 9).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_after: Option<u32>,
        /// Chart means of this many consecutive values (an X̄ chart; default 1: individuals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subgroup: Option<u32>,
    },
    /// PCA on a machine's signals fitted on `baseline` (default: the last two hours): the score
    /// `max(T²/limit, SPE/limit)` is stored as the signal `<machine>/<score_signal>`; the alarm is
    /// raised after `raise_after` points in a row above 1 and cleared after `clear_after` points
    /// below `clear_index`.
    Pca {
        machine: String,
        /// Signal names under the machine (default: every gauge).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signals: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<Period>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variance: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quantile: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raise_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_index: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score_signal: Option<String>,
        /// Fit and score only while the machine's `state` signal is in this state (default:
        /// `running` when the machine has such a state; `any` scores in every state).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
    },
    /// A variational autoencoder (gemba-nn, MLP) trained on `baseline` windows of `window`
    /// consecutive rows of the machine's signals: the score (negative ELBO) over a threshold
    /// learned on held-out normal windows is stored as `<machine>/<score_signal>` (default
    /// `vae_index`); raised and cleared like `pca`. The network is saved in the model registry
    /// as `<rule name>-vae`.
    Vae {
        machine: String,
        /// Signal names under the machine (default: every gauge).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signals: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<Period>,
        /// Consecutive rows per window (default 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<u32>,
        /// Quantile of the held-out normal scores that is the threshold (default 0.999).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quantile: Option<f64>,
        /// Training epochs at most (default 60; early stopping on a validation split).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epochs: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raise_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_index: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score_signal: Option<String>,
        /// As for `pca`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
    },
    /// A registered classifier (logistic regression, SVM) scored on the machine's signals named
    /// like its features: the probability of `classes` (default: every class but the normal one)
    /// is stored as `<machine>/<score_signal>` and raises the alarm after `raise_after` points above
    /// `above`; it clears after `clear_after` points below `clear`.
    Model {
        machine: String,
        model: String,
        /// Default: the version active for the machine, else the newest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<String>>,
        #[serde(default = "half")]
        above: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raise_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clear_after: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        score_signal: Option<String>,
        /// Score only while the machine's `state` signal is in this state (as for `pca`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
    },
    /// Remaining useful life (see `health`): raised when the predicted running hours left fall
    /// below `lead_time_h`, cleared when the trend is gone or the RUL is above it again.
    /// Evaluated every `alarms.periodic_interval_s`.
    Rul {
        machine: String,
        #[serde(default = "vibration")]
        signal: String,
        /// Failure level of the indicator.
        threshold: f64,
        lead_time_h: f64,
        /// Normal running (default: the 2 h before the rule was created).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<Period>,
    },
}

fn vibration() -> String {
    "vibration_rms".into()
}

fn half() -> f64 {
    0.5
}

fn default_chart() -> String {
    "imr".into()
}

/// What a rule learned when it was created, frozen with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Fitted {
    Threshold,
    Spc {
        /// Centre and σ of the plotted statistic.
        center: f64,
        sigma: f64,
        /// σ of the individual values (EWMA: of the input).
        sigma_x: f64,
        rules: Vec<u8>,
        baseline_points: usize,
    },
    Pca {
        signals: Vec<String>,
        model: PcaMonitor,
        train_rows: usize,
        holdout_rows: usize,
        components: usize,
        score_signal: String,
        /// The state signal and the state index that gate scoring, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_state: Option<f64>,
    },
    Rul {
        baseline: Period,
    },
    Vae {
        signals: Vec<String>,
        window: usize,
        quantile: f64,
        /// The network in the model registry.
        model: String,
        version: u32,
        threshold: f64,
        train_windows: usize,
        holdout_windows: usize,
        score_signal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_state: Option<f64>,
    },
    Model {
        version: u32,
        kind: String,
        features: Vec<String>,
        /// Indices of the watched classes in the model's class list.
        watched: Vec<usize>,
        class_names: Vec<String>,
        score_signal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_signal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gate_state: Option<f64>,
    },
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
    fn refresh_state(&mut self) {
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

/// `[[alarms.webhooks]]` (kept here for the configuration's path; the channel is in `notify`).
pub use crate::notify::WebhookConfig;

// ---------------------------------------------------------------------------------------------
// Evaluators: the per-rule streaming state.

/// What an evaluator reports for one point.
#[derive(Debug)]
enum Verdict {
    Raise(Explanation, String),
    /// Still firing while raised: refresh the explanation.
    Still(Explanation),
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Normal,
    Pending(Timestamp),
    Raised,
    Clearing(Timestamp),
}

#[derive(Debug)]
struct ThresholdEval {
    signal: String,
    above: bool,
    limit: f64,
    clear: f64,
    raise_after_ms: i64,
    clear_after_ms: i64,
    phase: Phase,
    first_bad: Option<Reading>,
}

impl ThresholdEval {
    fn push(&mut self, ts: Timestamp, v: f64) -> Option<Verdict> {
        let bad = if self.above {
            v > self.limit
        } else {
            v < self.limit
        };
        let good = if self.above {
            v < self.clear
        } else {
            v > self.clear
        };
        let reading = Reading {
            signal: self.signal.clone(),
            ts,
            value: v,
        };
        match self.phase {
            Phase::Normal | Phase::Pending(_) if !bad => {
                self.phase = Phase::Normal;
                None
            }
            Phase::Normal => {
                self.first_bad = Some(reading.clone());
                if self.raise_after_ms <= 0 {
                    self.raise(reading)
                } else {
                    self.phase = Phase::Pending(ts);
                    None
                }
            }
            Phase::Pending(since) => {
                if ts - since >= self.raise_after_ms {
                    self.raise(reading)
                } else {
                    None
                }
            }
            Phase::Raised | Phase::Clearing(_) if !good => {
                self.phase = Phase::Raised;
                None
            }
            Phase::Raised => {
                if self.clear_after_ms <= 0 {
                    self.phase = Phase::Normal;
                    Some(Verdict::Clear)
                } else {
                    self.phase = Phase::Clearing(ts);
                    None
                }
            }
            Phase::Clearing(since) => {
                if ts - since >= self.clear_after_ms {
                    self.phase = Phase::Normal;
                    Some(Verdict::Clear)
                } else {
                    None
                }
            }
        }
    }

    fn raise(&mut self, reading: Reading) -> Option<Verdict> {
        self.phase = Phase::Raised;
        let word = if self.above { "above" } else { "below" };
        let mut values = Vec::new();
        if let Some(f) = self.first_bad.take()
            && f.ts != reading.ts
        {
            values.push(f);
        }
        values.push(reading.clone());
        let rule = format!(
            "threshold: {} {word} {} for at least {} s (clears {} {})",
            self.signal,
            self.limit,
            self.raise_after_ms as f64 / 1000.0,
            if self.above { "below" } else { "above" },
            self.clear
        );
        let message = format!(
            "{} is {} ({word} {})",
            self.signal,
            short(reading.value),
            self.limit
        );
        Some(Verdict::Raise(
            Explanation {
                rule,
                values,
                limits: Some(json!({"limit": self.limit, "clear": self.clear})),
                contributions: vec![SignalContribution {
                    signal: self.signal.clone(),
                    contribution: 1.0,
                    value: reading.value,
                    expected: Some(self.limit),
                }],
            },
            message,
        ))
    }
}

#[derive(Debug)]
struct SpcEval {
    signal: String,
    /// Values per plotted point and the partial subgroup.
    subgroup: usize,
    partial: Vec<f64>,
    monitor: RuleMonitor,
    center: f64,
    sigma: f64,
    /// EWMA λ (None: individuals chart).
    lambda: Option<f64>,
    ewma: f64,
    clear_after: u32,
    quiet: u32,
    raised: bool,
    /// The last fifteen judged points (ts, plotted value).
    recent: std::collections::VecDeque<(Timestamp, f64)>,
    violations: Vec<StreamViolation>,
}

impl SpcEval {
    fn push(&mut self, ts: Timestamp, v: f64) -> Option<Verdict> {
        let v = if self.subgroup > 1 {
            self.partial.push(v);
            if self.partial.len() < self.subgroup {
                return None;
            }
            let m = self.partial.iter().sum::<f64>() / self.partial.len() as f64;
            self.partial.clear();
            m
        } else {
            v
        };
        let stat = match self.lambda {
            Some(l) => {
                self.ewma = l * v + (1.0 - l) * self.ewma;
                self.ewma
            }
            None => v,
        };
        if self.recent.len() == 15 {
            self.recent.pop_front();
        }
        self.recent.push_back((ts, stat));
        self.violations.clear();
        if self.monitor.push(stat, &mut self.violations) {
            self.quiet = 0;
            let first = &self.violations[0];
            let n = self.recent.len();
            let values: Vec<Reading> = first
                .points
                .iter()
                .filter(|&&b| b < n)
                .map(|&back| {
                    let (ts, value) = self.recent[n - 1 - back];
                    Reading {
                        signal: self.signal.clone(),
                        ts,
                        value,
                    }
                })
                .collect();
            let rules: Vec<String> = self
                .violations
                .iter()
                .map(|v| format!("SPC rule {}: {}", v.rule.number(), v.rule.describe()))
                .collect();
            let chart = match (self.lambda.is_some(), self.subgroup > 1) {
                (true, true) => format!("EWMA of means of {}", self.subgroup),
                (true, false) => "EWMA".to_owned(),
                (false, true) => format!("X̄ (subgroups of {})", self.subgroup),
                (false, false) => "individuals".to_owned(),
            };
            let explanation = Explanation {
                rule: format!("{} ({chart} chart of {})", rules.join("; "), self.signal),
                values,
                limits: Some(json!({
                    "center": self.center,
                    "sigma": self.sigma,
                    "lcl": self.center - 3.0 * self.sigma,
                    "ucl": self.center + 3.0 * self.sigma,
                })),
                contributions: vec![SignalContribution {
                    signal: self.signal.clone(),
                    contribution: 1.0,
                    value: stat,
                    expected: Some(self.center),
                }],
            };
            if self.raised {
                Some(Verdict::Still(explanation))
            } else {
                self.raised = true;
                let message = format!(
                    "{} out of control: SPC rule {} ({})",
                    self.signal,
                    first.rule.number(),
                    first.rule.describe()
                );
                Some(Verdict::Raise(explanation, message))
            }
        } else if self.raised {
            self.quiet += 1;
            if self.quiet >= self.clear_after {
                self.raised = false;
                self.quiet = 0;
                Some(Verdict::Clear)
            } else {
                None
            }
        } else {
            None
        }
    }
}

/// Hysteresis on consecutive points: raised after `raise_after` points in a row above `limit`,
/// cleared after `clear_after` points in a row below `clear` (between the two nothing changes).
#[derive(Debug)]
struct Counted {
    limit: f64,
    clear: f64,
    raise_after: u32,
    clear_after: u32,
    over: u32,
    under: u32,
    raised: bool,
}

/// What one point did to a [`Counted`].
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Raise,
    /// Above the limit while raised.
    Still,
    Clear,
    Nothing,
}

impl Counted {
    fn new(limit: f64, clear: f64, raise_after: u32, clear_after: u32, raised: bool) -> Counted {
        Counted {
            limit,
            clear,
            raise_after: raise_after.max(1),
            clear_after: clear_after.max(1),
            over: 0,
            under: 0,
            raised,
        }
    }

    fn step(&mut self, score: f64) -> Step {
        if score > self.limit {
            self.under = 0;
            self.over += 1;
            if !self.raised && self.over >= self.raise_after {
                self.raised = true;
                Step::Raise
            } else if self.raised {
                Step::Still
            } else {
                Step::Nothing
            }
        } else {
            self.over = 0;
            if self.raised && score < self.clear {
                self.under += 1;
                if self.under >= self.clear_after {
                    self.raised = false;
                    self.under = 0;
                    return Step::Clear;
                }
            } else {
                self.under = 0;
            }
            Step::Nothing
        }
    }

    /// An excursion in progress starts over (the machine left the gated state).
    fn interrupt(&mut self) {
        self.over = 0;
    }
}

/// The latest value of each input of a multi-signal evaluator, then (when gated) of the machine's
/// state signal: it scores only while that holds `gate`.
#[derive(Debug)]
struct Held {
    values: Vec<Option<f64>>,
    inputs: usize,
    gate: Option<f64>,
}

/// What [`Held::row`] found.
enum Row {
    /// Not in the gated state.
    Gated,
    /// An input has no value yet.
    Incomplete,
    Ready(Vec<f64>),
}

impl Held {
    fn new(inputs: usize, gate: Option<f64>) -> Held {
        Held {
            values: vec![None; inputs + usize::from(gate.is_some())],
            inputs,
            gate,
        }
    }

    fn set(&mut self, slot: usize, v: f64) {
        if v.is_finite()
            && let Some(x) = self.values.get_mut(slot)
        {
            *x = Some(v);
        }
    }

    fn get(&self, i: usize) -> Option<f64> {
        self.values.get(i).copied().flatten()
    }

    fn row(&self) -> Row {
        if let Some(g) = self.gate
            && self.get(self.inputs) != Some(g)
        {
            return Row::Gated;
        }
        match self.values[..self.inputs].iter().copied().collect() {
            Some(r) => Row::Ready(r),
            None => Row::Incomplete,
        }
    }
}

/// The index hysteresis of a `pca` rule: out of control above 1, back below `clear_index`
/// (defaults: raised after 3 points, cleared after 10 below 0.8).
fn pca_alarm(
    raise_after: Option<u32>,
    clear_after: Option<u32>,
    clear_index: Option<f64>,
    raised: bool,
) -> Counted {
    Counted::new(
        1.0,
        clear_index.unwrap_or(0.8),
        raise_after.unwrap_or(3),
        clear_after.unwrap_or(10),
        raised,
    )
}

/// `; top signal <path> (NN %)` for an alarm message: the largest contribution of `ex`.
fn top_signal_note(ex: &Explanation) -> String {
    ex.contributions
        .first()
        .map(|c| {
            format!(
                "; top signal {} ({:.0} %)",
                c.signal,
                100.0 * c.contribution
            )
        })
        .unwrap_or_default()
}

#[derive(Debug)]
struct PcaEval {
    machine: String,
    signals: Vec<String>,
    model: PcaMonitor,
    held: Held,
    /// On the index: above 1 is out of control.
    alarm: Counted,
}

impl PcaEval {
    /// Scores the held values at `ts`; returns the index and maybe a verdict.
    fn evaluate(&mut self, ts: Timestamp) -> Option<(f64, Option<Verdict>)> {
        let x = match self.held.row() {
            Row::Ready(x) => x,
            Row::Gated => {
                self.alarm.interrupt();
                return None;
            }
            Row::Incomplete => return None,
        };
        let score = self.model.score(&x).ok()?;
        let verdict = match self.alarm.step(score.index) {
            Step::Raise => {
                let ex = self.explain(ts, &score);
                let top = top_signal_note(&ex);
                let message = format!(
                    "{} deviates from normal operation (PCA index {:.2}{top})",
                    self.machine, score.index
                );
                Some(Verdict::Raise(ex, message))
            }
            Step::Still => Some(Verdict::Still(self.explain(ts, &score))),
            Step::Clear => Some(Verdict::Clear),
            Step::Nothing => None,
        };
        Some((score.index, verdict))
    }

    fn explain(&self, ts: Timestamp, score: &gemba_analytics::PcaScore) -> Explanation {
        let mut contributions: Vec<SignalContribution> = self
            .signals
            .iter()
            .enumerate()
            .map(|(j, s)| SignalContribution {
                signal: format!("{}/{s}", self.machine),
                contribution: score.contributions[j],
                value: self.held.get(j).unwrap_or(f64::NAN),
                expected: Some(self.model.mean[j]),
            })
            .collect();
        contributions.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        let which = if score.spe / self.model.spe_limit >= score.t2 / self.model.t2_limit {
            "SPE (the signals broke their usual correlation)"
        } else {
            "Hotelling T² (the signals moved together beyond their usual range)"
        };
        Explanation {
            rule: format!(
                "PCA on {} signals of {}: {which}; index {:.2} > 1 for {} points",
                self.signals.len(),
                self.machine,
                score.index,
                self.alarm.raise_after
            ),
            values: contributions
                .iter()
                .take(3)
                .map(|c| Reading {
                    signal: c.signal.clone(),
                    ts,
                    value: c.value,
                })
                .collect(),
            limits: Some(json!({
                "t2": score.t2, "t2_limit": self.model.t2_limit,
                "spe": score.spe, "spe_limit": self.model.spe_limit,
            })),
            contributions,
        }
    }
}

/// A classifier's probability with hysteresis.
#[derive(Debug)]
struct ModelEval {
    machine: String,
    name: String,
    artifact: Box<gemba_ml::ModelArtifact>,
    features: Vec<String>,
    /// Per feature: the input (signal) it is computed from, and its window statistic if any.
    columns: Vec<(usize, Option<(gemba_analytics::window::Stat, i64)>)>,
    /// Per input with window features: its trailing samples.
    rolling: Vec<Option<gemba_analytics::window::Rolling>>,
    watched: Vec<usize>,
    /// The latest value of each input signal (not of each feature).
    held: Held,
    /// On the probability of the watched classes.
    alarm: Counted,
}

impl ModelEval {
    /// The evaluator of `features` (latest values or window statistics of the machine's signals,
    /// see [`crate::datasets::Feature`]) and the signal names (under the machine) it takes as
    /// inputs, in slot order; the gate's state signal comes after them.
    fn new(
        machine: String,
        name: String,
        artifact: gemba_ml::ModelArtifact,
        watched: Vec<usize>,
        gate: Option<f64>,
        alarm: Counted,
    ) -> Result<(ModelEval, Vec<String>), String> {
        let features = artifact.feature_names.clone();
        let mut signals: Vec<String> = Vec::new();
        let mut longest: Vec<i64> = Vec::new();
        let mut columns = Vec::with_capacity(features.len());
        for f in &features {
            let feature = crate::datasets::Feature::parse(f)?;
            let slot = match signals.iter().position(|s| *s == feature.signal) {
                Some(i) => i,
                None => {
                    signals.push(feature.signal.clone());
                    longest.push(0);
                    signals.len() - 1
                }
            };
            if let Some((_, ms)) = feature.window {
                longest[slot] = longest[slot].max(ms);
            }
            columns.push((slot, feature.window));
        }
        let rolling = longest
            .iter()
            .map(|&ms| (ms > 0).then(|| gemba_analytics::window::Rolling::new(ms)))
            .collect();
        Ok((
            ModelEval {
                machine,
                name,
                artifact: Box::new(artifact),
                features,
                columns,
                rolling,
                watched,
                held: Held::new(signals.len(), gate),
                alarm,
            },
            signals,
        ))
    }

    /// Fills the inputs' latest values and windows from the store (`ids` in slot order, the
    /// gate's state signal last): a rule made or restored on a running machine scores at once,
    /// with its windows full, rather than after its longest window of live data.
    fn prime(
        &mut self,
        store: &dyn Store,
        ids: &[SignalId],
        latest: impl Fn(SignalId) -> Option<Sample>,
    ) {
        for (slot, &id) in ids.iter().enumerate() {
            let Some(last) = latest(id) else { continue };
            let window = match self.rolling.get(slot) {
                Some(Some(r)) => r.window_ms(),
                _ => 0,
            };
            if window == 0 {
                self.held.set(slot, last.value);
                continue;
            }
            // Twice the window: what came before it shows that the window is covered.
            match store.range(id, last.ts - 2 * window, last.ts + 1, 10_000_000) {
                Ok(samples) => {
                    for s in samples {
                        self.push(slot, s.ts, s.value);
                    }
                }
                Err(e) => {
                    tracing::warn!(rule = %self.name, error = %e, "model rule: windows not primed from the store")
                }
            }
        }
    }

    fn push(&mut self, slot: usize, ts: Timestamp, v: f64) {
        self.held.set(slot, v);
        if let Some(Some(r)) = self.rolling.get_mut(slot) {
            r.push(ts, v);
        }
    }

    /// The feature row at `ts` from the inputs' latest values and windows.
    fn row(&mut self, ts: Timestamp) -> Row {
        let latest = match self.held.row() {
            Row::Ready(r) => r,
            other => return other,
        };
        let mut row = Vec::with_capacity(self.columns.len());
        for &(slot, window) in &self.columns {
            let v = match (window, self.rolling.get_mut(slot)) {
                (None, _) => latest.get(slot).copied(),
                (Some((stat, ms)), Some(Some(r))) => r.stat(stat, ms, ts),
                (Some(_), _) => None,
            };
            match v {
                Some(v) => row.push(v),
                None => return Row::Incomplete,
            }
        }
        Row::Ready(row)
    }

    fn evaluate(&mut self, ts: Timestamp) -> Option<(f64, Option<Verdict>)> {
        let row = match self.row(ts) {
            Row::Ready(r) => r,
            Row::Gated => {
                self.alarm.interrupt();
                return None;
            }
            Row::Incomplete => return None,
        };
        let m = gemba_ml::Matrix::new(1, row.len(), row.clone()).ok()?;
        let proba = self.artifact.predict_proba(&m).ok()?;
        let p: f64 = self.watched.iter().map(|&c| proba.row(0)[c]).sum();
        let verdict = match self.alarm.step(p) {
            Step::Raise => {
                let ex = self.explain(ts, &row, p);
                let top = ex
                    .contributions
                    .first()
                    .map(|c| format!("; top signal {}", c.signal))
                    .unwrap_or_default();
                let message = format!(
                    "{}: model {} gives {} a probability of {:.0} %{top}",
                    self.machine,
                    self.name,
                    self.watched
                        .iter()
                        .map(|&c| self.artifact.class_names[c].as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    100.0 * p
                );
                Some(Verdict::Raise(ex, message))
            }
            Step::Still => Some(Verdict::Still(self.explain(ts, &row, p))),
            Step::Clear => Some(Verdict::Clear),
            Step::Nothing => None,
        };
        Some((p, verdict))
    }

    fn explain(&self, ts: Timestamp, row: &[f64], p: f64) -> Explanation {
        let (method, mut raw) = match self.artifact.explain(row, row.len()) {
            Ok(e) => {
                // Contributions toward the predicted class; flip them when the prediction is
                // not one of the watched classes, so that positive means "toward the alarm".
                let sign = if self.watched.contains(&e.predicted) {
                    1.0
                } else {
                    -1.0
                };
                (
                    e.method,
                    e.top
                        .into_iter()
                        .map(|c| (c.feature, c.value, sign * c.contribution))
                        .collect::<Vec<_>>(),
                )
            }
            Err(e) => (format!("no explanation: {e}"), Vec::new()),
        };
        raw.sort_by(|a, b| b.2.total_cmp(&a.2));
        let pos: f64 = raw.iter().map(|r| r.2.max(0.0)).sum();
        let contributions = raw
            .iter()
            .map(|(f, v, c)| SignalContribution {
                signal: format!("{}/{f}", self.machine),
                contribution: if pos > 0.0 { c.max(0.0) / pos } else { 0.0 },
                value: *v,
                expected: None,
            })
            .collect::<Vec<_>>();
        Explanation {
            rule: format!(
                "model {} ({}): probability {:.2} > {} for {} points; contributions by {method}",
                self.name,
                kind_name(&self.artifact.kind),
                p,
                self.alarm.limit,
                self.alarm.raise_after
            ),
            values: self
                .features
                .iter()
                .zip(row)
                .map(|(f, v)| Reading {
                    signal: format!("{}/{f}", self.machine),
                    ts,
                    value: *v,
                })
                .collect(),
            limits: Some(
                json!({"probability": p, "above": self.alarm.limit, "clear": self.alarm.clear}),
            ),
            contributions,
        }
    }
}

/// The baseline of a multivariate rule, see [`Engine::multivariate_baseline`].
struct Multivariate {
    machine: String,
    /// Signal names under the machine.
    names: Vec<String>,
    score_name: String,
    /// The signals, then the state signal when gated.
    all: Vec<crate::Registered>,
    gate: Option<(crate::Registered, f64)>,
    /// Aligned rows of the signals (the state column removed).
    rows: Vec<Vec<f64>>,
    period: Period,
}

#[derive(Debug)]
enum Eval {
    /// Evaluated periodically outside the scorer (`Engine::evaluate_periodic_rules`).
    Periodic,
    Threshold(ThresholdEval),
    Spc(SpcEval),
    Pca(PcaEval),
    #[cfg(feature = "vae")]
    Vae(Box<vae::VaeEval>),
    Model(ModelEval),
}

/// A rule with its live evaluator (opaque outside the scorer).
#[derive(Debug)]
pub struct Active {
    rule: AlarmRule,
    eval: Eval,
    /// The watched signals, in the evaluator's slot order.
    inputs: Vec<SignalId>,
    /// The derived score signal (PCA).
    output: Option<SignalId>,
    last_ts: Timestamp,
}

// ---------------------------------------------------------------------------------------------
// The shared parts.

/// The writer's view of the scorer: which signals are watched and where committed samples go.
#[derive(Debug, Default)]
pub struct Tap {
    watched: RwLock<HashSet<SignalId>>,
    tx: Mutex<Option<Sender<Msg>>>,
}

impl Tap {
    /// Connects the scorer's channel.
    pub(crate) fn connect(&self, tx: Sender<Msg>) {
        *self.tx.lock() = Some(tx);
    }

    /// Called by the writer after a commit: forwards the samples of watched signals.
    pub fn committed(&self, batch: &WriteBatch) {
        let watched = self.watched.read();
        let series: Vec<SeriesWrite> = batch
            .series
            .iter()
            .filter(|s| watched.contains(&s.signal))
            .cloned()
            .collect();
        drop(watched);
        let events: Vec<Event> = batch
            .events
            .iter()
            .filter(|e| matches!(&e.body, EventBody::Custom { name } if name == "reorder_point"))
            .cloned()
            .collect();
        if series.is_empty() && events.is_empty() {
            return;
        }
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.send(Msg::Data(series, events, std::time::Instant::now()));
        }
    }
}

/// Messages to the scorer thread.
#[derive(Debug)]
pub enum Msg {
    /// Committed samples of watched signals, and committed events that raise alarms themselves
    /// (reorder points).
    Data(Vec<SeriesWrite>, Vec<Event>, std::time::Instant),
    Add(Box<Active>, std::sync::mpsc::SyncSender<()>),
    Remove(String, std::sync::mpsc::SyncSender<bool>),
    /// Answers when everything sent before has been scored.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// The alarm book and the rules; owned by the engine.
#[derive(Debug)]
pub struct Alarms {
    store: Arc<dyn Store>,
    book: Mutex<BTreeMap<u64, Alarm>>,
    next_id: AtomicU64,
    /// Bumped on every change (the dashboard's cheap "anything new?").
    version: AtomicU64,
    rules: RwLock<BTreeMap<String, AlarmRule>>,
    tap: Arc<Tap>,
    /// Notifications of every change (webhooks, e-mail): `changed` only enqueues.
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
}

/// What a person does to an alarm (`POST /api/v1/alarms/{id}/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmAction {
    /// Acknowledge: someone is on it.
    Ack,
    /// Add a comment.
    Comment,
    /// Close a cleared alarm.
    Close,
}

impl AlarmAction {
    pub const ALL: [AlarmAction; 3] = [AlarmAction::Ack, AlarmAction::Comment, AlarmAction::Close];

    /// The name in the URL.
    pub fn name(self) -> &'static str {
        match self {
            AlarmAction::Ack => "ack",
            AlarmAction::Comment => "comment",
            AlarmAction::Close => "close",
        }
    }

    pub fn parse(name: &str) -> Option<AlarmAction> {
        AlarmAction::ALL.into_iter().find(|a| a.name() == name)
    }
}

fn store_err(e: gemba_store::StoreError) -> EngineError {
    EngineError::Store(e)
}

impl Alarms {
    /// Loads the alarm book and the rules from the store.
    pub fn load(
        store: Arc<dyn Store>,
        tap: Arc<Tap>,
        outbox: Arc<Outbox>,
        metrics: Arc<Metrics>,
    ) -> Result<Alarms, EngineError> {
        let mut book = BTreeMap::new();
        for (key, json) in store.records(ALARM_RECORD).map_err(store_err)? {
            let a: Alarm = serde_json::from_str(&json).map_err(|e| {
                EngineError::Internal(format!("stored alarm {key} is unreadable: {e}"))
            })?;
            book.insert(a.id, a);
        }
        let mut rules = BTreeMap::new();
        for (key, json) in store.records(RULE_RECORD).map_err(store_err)? {
            let r: AlarmRule = serde_json::from_str(&json).map_err(|e| {
                EngineError::Internal(format!("stored alarm rule {key} is unreadable: {e}"))
            })?;
            rules.insert(r.spec.name.clone(), r);
        }
        let next = book.keys().next_back().copied().unwrap_or(0) + 1;
        Ok(Alarms {
            store,
            book: Mutex::new(book),
            next_id: AtomicU64::new(next),
            version: AtomicU64::new(1),
            rules: RwLock::new(rules),
            tap,
            outbox,
            metrics,
        })
    }

    /// Changes so far; grows whenever an alarm changes.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn rules(&self) -> Vec<AlarmRule> {
        self.rules.read().values().cloned().collect()
    }

    pub fn rule(&self, name: &str) -> Option<AlarmRule> {
        self.rules.read().get(name).cloned()
    }

    /// Alarms matching `q`, newest first.
    pub fn query(&self, q: &AlarmQuery) -> Vec<Alarm> {
        let book = self.book.lock();
        book.values()
            .rev()
            .filter(|a| q.states.as_ref().is_none_or(|s| s.contains(&a.state)))
            .filter(|a| q.min_severity.is_none_or(|m| a.severity >= m))
            .filter(|a| {
                q.asset_prefix
                    .as_deref()
                    .is_none_or(|p| a.asset == p || a.asset.starts_with(&format!("{p}/")))
            })
            .filter(|a| q.rule.as_deref().is_none_or(|r| a.rule == r))
            .filter(|a| q.from.is_none_or(|f| a.last_raised_at >= f))
            .filter(|a| q.to.is_none_or(|t| a.raised_at < t))
            .take(q.limit.max(1))
            .cloned()
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<Alarm> {
        self.book.lock().get(&id).cloned()
    }

    /// Acknowledges, comments or closes an alarm (blocking: persists the change).
    pub fn act(
        &self,
        id: u64,
        action: AlarmAction,
        by: &str,
        text: Option<&str>,
        now: Timestamp,
    ) -> Result<Alarm, EngineError> {
        if by.trim().is_empty() || by.len() > 128 {
            return Err(EngineError::InvalidQuery(
                "by: who does this (1–128 characters) is required".into(),
            ));
        }
        let mut book = self.book.lock();
        let a = book
            .get_mut(&id)
            .ok_or_else(|| EngineError::NotFound(format!("alarm {id}")))?;
        let stamp = Stamp {
            by: by.to_owned(),
            at: now,
        };
        match action {
            AlarmAction::Ack => {
                if a.closed.is_some() {
                    return Err(EngineError::Conflict(format!(
                        "alarm {id} is closed; it cannot be acknowledged"
                    )));
                }
                if a.acknowledged.is_some() {
                    return Err(EngineError::Conflict(format!(
                        "alarm {id} was already acknowledged by {}",
                        a.acknowledged.as_ref().map_or("", |s| s.by.as_str())
                    )));
                }
                a.acknowledged = Some(stamp);
            }
            AlarmAction::Close => {
                if a.closed.is_some() {
                    return Err(EngineError::Conflict(format!(
                        "alarm {id} is already closed"
                    )));
                }
                if a.condition {
                    return Err(EngineError::Conflict(format!(
                        "alarm {id} is still active (its condition is present); it can be closed once it has cleared"
                    )));
                }
                a.closed = Some(stamp);
            }
            AlarmAction::Comment => {}
        }
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if action == AlarmAction::Comment && text.is_none() {
            return Err(EngineError::InvalidQuery(
                "text: a comment needs text".into(),
            ));
        }
        if let Some(t) = text {
            if t.len() > 4096 {
                return Err(EngineError::InvalidQuery(
                    "text: at most 4096 characters".into(),
                ));
            }
            a.comments.push(Comment {
                by: by.to_owned(),
                at: now,
                text: t.to_owned(),
            });
        }
        a.history.push(Transition {
            at: now,
            what: match action {
                AlarmAction::Ack => "acknowledged",
                AlarmAction::Close => "closed",
                AlarmAction::Comment => "comment",
            }
            .into(),
            by: Some(by.to_owned()),
        });
        a.refresh_state();
        let alarm = a.clone();
        let event = match action {
            AlarmAction::Ack => AlarmEvent::Acknowledged,
            AlarmAction::Close => AlarmEvent::Closed,
            AlarmAction::Comment => AlarmEvent::Comment,
        };
        // Stored under the book's lock, so that concurrent actions are stored in their order.
        let stored = self.record(event, &alarm);
        drop(book);
        stored.map(|()| alarm)
    }

    /// Stores the alarm and the notifications of its change in one transaction (a crash between
    /// two writes lost the notification of a stored alarm), then queues the notifications. They
    /// are queued even when the store failed (sent from memory; the error is returned).
    fn record(&self, event: AlarmEvent, a: &Alarm) -> Result<(), EngineError> {
        let prepared = self.outbox.prepare(&Notification::of_alarm(event, a));
        let stored = serde_json::to_string(a)
            .map_err(|e| EngineError::Internal(format!("alarm {}: {e}", a.id)))
            .and_then(|json| {
                let mut records = vec![(ALARM_RECORD, format!("{:012}", a.id), json)];
                records.extend(prepared.records());
                self.store.put_records_of_kinds(&records).map_err(store_err)
            });
        self.version.fetch_add(1, Ordering::AcqRel);
        self.outbox.accept(prepared);
        stored
    }

    /// Raises (or re-raises) the rule's alarm. Returns the alarm and whether it is new.
    fn raise(
        &self,
        rule: &AlarmRule,
        signal: Option<String>,
        ts: Timestamp,
        explanation: Explanation,
        message: String,
    ) -> Alarm {
        let origin = Origin {
            rule: &rule.spec.name,
            rule_type: rule_type(&rule.spec.kind),
            severity: rule.spec.severity,
            asset: &rule.asset,
        };
        self.raise_from(&origin, signal, ts, explanation, message)
    }

    /// Raises (or re-raises) the open alarm of `origin.rule`.
    fn raise_from(
        &self,
        origin: &Origin<'_>,
        signal: Option<String>,
        ts: Timestamp,
        explanation: Explanation,
        message: String,
    ) -> Alarm {
        let mut book = self.book.lock();
        let open = book
            .values_mut()
            .rev()
            .find(|a| a.rule == origin.rule && a.closed.is_none());
        let (alarm, what) = match open {
            Some(a) => {
                a.count += 1;
                a.condition = true;
                a.last_raised_at = ts;
                a.cleared_at = None;
                a.explanation = explanation;
                a.message = message;
                // A new occurrence needs a new acknowledgement.
                a.acknowledged = None;
                a.history.push(Transition {
                    at: ts,
                    what: "reraised".into(),
                    by: None,
                });
                a.refresh_state();
                (a.clone(), AlarmEvent::Reraised)
            }
            None => {
                let id = self.next_id.fetch_add(1, Ordering::AcqRel);
                let a = Alarm {
                    id,
                    rule: origin.rule.to_owned(),
                    rule_type: origin.rule_type.into(),
                    severity: origin.severity,
                    asset: origin.asset.to_owned(),
                    signal,
                    state: AlarmState::Active,
                    condition: true,
                    message,
                    raised_at: ts,
                    last_raised_at: ts,
                    cleared_at: None,
                    acknowledged: None,
                    closed: None,
                    count: 1,
                    explanation,
                    comments: Vec::new(),
                    history: vec![Transition {
                        at: ts,
                        what: "raised".into(),
                        by: None,
                    }],
                };
                book.insert(id, a.clone());
                (a, AlarmEvent::Raised)
            }
        };
        drop(book);
        if let Err(e) = self.record(what, &alarm) {
            tracing::error!(error = %e, alarm = alarm.id, "cannot store the alarm");
        }
        self.metrics.alarms_raised.inc();
        alarm
    }

    fn refresh(&self, rule: &str, explanation: Explanation) {
        let mut book = self.book.lock();
        if let Some(a) = book
            .values_mut()
            .rev()
            .find(|a| a.rule == rule && a.closed.is_none() && a.condition)
        {
            a.explanation = explanation;
        }
    }

    fn clear(&self, rule: &str, ts: Timestamp) -> Option<Alarm> {
        let mut book = self.book.lock();
        let a = book
            .values_mut()
            .rev()
            .find(|a| a.rule == rule && a.closed.is_none() && a.condition)?;
        a.condition = false;
        a.cleared_at = Some(ts);
        a.history.push(Transition {
            at: ts,
            what: "cleared".into(),
            by: None,
        });
        a.refresh_state();
        let alarm = a.clone();
        drop(book);
        if let Err(e) = self.record(AlarmEvent::Cleared, &alarm) {
            tracing::error!(error = %e, alarm = alarm.id, "cannot store the alarm");
        }
        Some(alarm)
    }

    /// Whether the rule has an open alarm whose condition is present (a restarted evaluator
    /// resumes in the raised state).
    fn condition_present(&self, rule: &str) -> bool {
        self.book
            .lock()
            .values()
            .any(|a| a.rule == rule && a.closed.is_none() && a.condition)
    }

    /// Sends a message to the scorer.
    fn send(&self, msg: Msg) -> Result<(), EngineError> {
        match self.tap.tx.lock().as_ref() {
            Some(tx) => tx.send(msg).map_err(|_| EngineError::ShuttingDown),
            None => Err(EngineError::ShuttingDown),
        }
    }

    /// Stores a fitted rule and hands it to the scorer.
    pub(crate) fn install(&self, active: Active) -> Result<AlarmRule, EngineError> {
        let rule = active.rule.clone();
        let json = serde_json::to_string(&rule)
            .map_err(|e| EngineError::Internal(format!("rule {}: {e}", rule.spec.name)))?;
        self.store
            .put_record(RULE_RECORD, &rule.spec.name, &json)
            .map_err(store_err)?;
        self.rules
            .write()
            .insert(rule.spec.name.clone(), rule.clone());
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.send(Msg::Add(Box::new(active), ack))?;
        done.recv().map_err(|_| EngineError::ShuttingDown)?;
        Ok(rule)
    }

    /// Deletes a rule; its open alarms stay in the book.
    pub fn remove_rule(&self, name: &str) -> Result<(), EngineError> {
        if self.rules.write().remove(name).is_none() {
            return Err(EngineError::NotFound(format!("alarm rule {name:?}")));
        }
        self.store
            .delete_record(RULE_RECORD, name)
            .map_err(store_err)?;
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.send(Msg::Remove(name.to_owned(), ack))?;
        let _ = done.recv();
        Ok(())
    }

    /// Deletes the alarms closed before `cutoff` (from the book and the store); returns how many.
    pub fn prune_closed(&self, cutoff: Timestamp) -> Result<usize, EngineError> {
        let old: Vec<u64> = self
            .book
            .lock()
            .values()
            .filter(|a| a.closed.as_ref().is_some_and(|c| c.at < cutoff))
            .map(|a| a.id)
            .collect();
        for id in &old {
            self.store
                .delete_record(ALARM_RECORD, &format!("{id:012}"))
                .map_err(store_err)?;
            self.book.lock().remove(id);
        }
        if !old.is_empty() {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        Ok(old.len())
    }

    /// Waits until the scorer has processed everything committed before the call.
    pub fn flush(&self) -> Result<(), EngineError> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.send(Msg::Flush(ack))?;
        done.recv().map_err(|_| EngineError::ShuttingDown)
    }
}

fn kind_name(k: &gemba_ml::ModelKind) -> &'static str {
    match k {
        gemba_ml::ModelKind::Logistic => "logistic",
        gemba_ml::ModelKind::Svc => "svc",
        gemba_ml::ModelKind::LinearSvc => "linear_svc",
    }
}

/// A value with as many decimals as a person reads (4–5 significant digits).
fn short(v: f64) -> String {
    let a = v.abs();
    let digits = if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        4
    };
    format!("{v:.digits$}")
}

fn rule_type(k: &RuleKind) -> &'static str {
    match k {
        RuleKind::Threshold { .. } => "threshold",
        RuleKind::Spc { .. } => "spc",
        RuleKind::Pca { .. } => "pca",
        RuleKind::Vae { .. } => "vae",
        RuleKind::Model { .. } => "model",
        RuleKind::Rul { .. } => "rul",
    }
}

// ---------------------------------------------------------------------------------------------
// The scorer thread.

/// Everything the scorer needs.
pub(crate) struct ScorerParts {
    pub alarms: Arc<Alarms>,
    pub writer: Writer,
    pub rx: Receiver<Msg>,
    pub metrics: Arc<Metrics>,
    pub active: Vec<Active>,
}

pub(crate) fn run_scorer(parts: ScorerParts) {
    let ScorerParts {
        alarms,
        writer,
        rx,
        metrics,
        mut active,
    } = parts;
    let mut by_signal: HashMap<SignalId, Vec<usize>> = HashMap::new();
    let reindex = |active: &[Active], by: &mut HashMap<SignalId, Vec<usize>>| {
        by.clear();
        for (i, a) in active.iter().enumerate() {
            if !a.rule.spec.enabled {
                continue;
            }
            for &s in &a.inputs {
                by.entry(s).or_default().push(i);
            }
        }
        let mut w = alarms.tap.watched.write();
        w.clear();
        w.extend(by.keys().copied());
    };
    reindex(&active, &mut by_signal);
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Data(series, events, sent_at) => {
                score_batch(&alarms, &writer, &mut active, &by_signal, series);
                for e in &events {
                    reorder_alarm(&alarms, &writer, e);
                }
                metrics
                    .scoring_seconds
                    .observe(sent_at.elapsed().as_secs_f64());
            }
            Msg::Add(a, ack) => {
                active.retain(|x| x.rule.spec.name != a.rule.spec.name);
                active.push(*a);
                reindex(&active, &mut by_signal);
                let _ = ack.send(());
            }
            Msg::Remove(name, ack) => {
                let before = active.len();
                active.retain(|x| x.rule.spec.name != name);
                reindex(&active, &mut by_signal);
                let _ = ack.send(active.len() != before);
            }
            Msg::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

fn score_batch(
    alarms: &Alarms,
    writer: &Writer,
    active: &mut [Active],
    by_signal: &HashMap<SignalId, Vec<usize>>,
    series: Vec<SeriesWrite>,
) {
    // Gather, per rule, its samples of this batch: (ts, input slot, value).
    let mut per_rule: HashMap<usize, Vec<(Timestamp, usize, f64)>> = HashMap::new();
    for s in &series {
        let Some(rules) = by_signal.get(&s.signal) else {
            continue;
        };
        for &r in rules {
            let Some(slot) = active[r].inputs.iter().position(|&i| i == s.signal) else {
                continue;
            };
            let v = per_rule.entry(r).or_default();
            v.extend(s.samples.iter().map(|x| (x.ts, slot, x.value)));
        }
    }
    let mut scores: Vec<SeriesWrite> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut rule_ids: Vec<usize> = per_rule.keys().copied().collect();
    rule_ids.sort_unstable();
    for r in rule_ids {
        let mut samples = per_rule.remove(&r).unwrap_or_default();
        samples.sort_by_key(|s| (s.0, s.1));
        let a = &mut active[r];
        let mut out_samples: Vec<Sample> = Vec::new();
        let mut i = 0;
        while i < samples.len() {
            let ts = samples[i].0;
            let mut j = i;
            while j < samples.len() && samples[j].0 == ts {
                j += 1;
            }
            if ts < a.last_ts {
                // Late data: the rule has moved on.
                i = j;
                continue;
            }
            a.last_ts = ts;
            let mut verdicts: Vec<Verdict> = Vec::new();
            match &mut a.eval {
                Eval::Threshold(t) => {
                    for s in &samples[i..j] {
                        if s.2.is_finite()
                            && let Some(v) = t.push(ts, s.2)
                        {
                            verdicts.push(v);
                        }
                    }
                }
                Eval::Spc(t) => {
                    for s in &samples[i..j] {
                        if s.2.is_finite()
                            && let Some(v) = t.push(ts, s.2)
                        {
                            verdicts.push(v);
                        }
                    }
                }
                Eval::Pca(p) => {
                    for s in &samples[i..j] {
                        p.held.set(s.1, s.2);
                    }
                    if let Some((index, v)) = p.evaluate(ts) {
                        out_samples.push(Sample { ts, value: index });
                        verdicts.extend(v);
                    }
                }
                #[cfg(feature = "vae")]
                Eval::Vae(p) => {
                    for s in &samples[i..j] {
                        p.held.set(s.1, s.2);
                    }
                    if let Some((index, v)) = p.evaluate(ts) {
                        out_samples.push(Sample { ts, value: index });
                        verdicts.extend(v);
                    }
                }
                Eval::Periodic => {}
                Eval::Model(m) => {
                    for s in &samples[i..j] {
                        m.push(s.1, ts, s.2);
                    }
                    if let Some((p, v)) = m.evaluate(ts) {
                        out_samples.push(Sample { ts, value: p });
                        verdicts.extend(v);
                    }
                }
            }
            for v in verdicts {
                let signal = match &a.eval {
                    Eval::Threshold(t) => Some(t.signal.clone()),
                    Eval::Spc(t) => Some(t.signal.clone()),
                    #[cfg(feature = "vae")]
                    Eval::Vae(_) => None,
                    Eval::Pca(_) | Eval::Model(_) | Eval::Periodic => None,
                };
                match v {
                    Verdict::Raise(ex, message) => {
                        let alarm = alarms.raise(&a.rule, signal, ts, ex, message);
                        events.push(alarm_event(&alarm, "raised", ts));
                    }
                    Verdict::Still(ex) => alarms.refresh(&a.rule.spec.name, ex),
                    Verdict::Clear => {
                        if let Some(alarm) = alarms.clear(&a.rule.spec.name, ts) {
                            events.push(alarm_event(&alarm, "cleared", ts));
                        }
                    }
                }
            }
            i = j;
        }
        if let Some(out) = a.output
            && !out_samples.is_empty()
        {
            scores.push(SeriesWrite {
                signal: out,
                samples: out_samples,
            });
        }
    }
    if !scores.is_empty() || !events.is_empty() {
        writer.write_detached(WriteBatch {
            series: scores,
            events,
        });
    }
}

/// Where an alarm comes from: a stored rule, or a built-in source such as a reorder point.
#[derive(Debug)]
struct Origin<'a> {
    rule: &'a str,
    rule_type: &'static str,
    severity: Severity,
    asset: &'a str,
}

/// A `custom:reorder_point` event raises (`state: below`) or clears (`state: restocked`) the
/// alarm `reorder.<location>.<product>` at the event's asset.
fn reorder_alarm(alarms: &Alarms, writer: &Writer, e: &Event) {
    let text = |k: &str| {
        e.attrs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let num = |k: &str| e.attrs.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let (location, product) = (text("location"), text("product"));
    let rule = format!("reorder.{location}.{product}");
    let signal = format!("{location}/{product}");
    let out = if text("state") == "restocked" {
        alarms
            .clear(&rule, e.ts)
            .map(|a| alarm_event(&a, "cleared", e.ts))
    } else {
        let (quantity, min) = (num("quantity"), num("min"));
        let explanation = Explanation {
            rule: format!("reorder point: stock of {product} at {location} below {min}"),
            values: vec![Reading {
                signal: signal.clone(),
                ts: e.ts,
                value: quantity,
            }],
            limits: Some(json!({"min": min})),
            contributions: vec![SignalContribution {
                signal: signal.clone(),
                contribution: 1.0,
                value: quantity,
                expected: Some(min),
            }],
        };
        let origin = Origin {
            rule: &rule,
            rule_type: "reorder_point",
            severity: Severity::Medium,
            asset: &e.asset,
        };
        let message = format!(
            "stock of {product} at {location} is {} (reorder point {min})",
            short(quantity)
        );
        let a = alarms.raise_from(&origin, Some(signal), e.ts, explanation, message);
        Some(alarm_event(&a, "raised", e.ts))
    };
    if let Some(ev) = out {
        writer.write_detached(WriteBatch {
            series: Vec::new(),
            events: vec![ev],
        });
    }
}

fn alarm_event(a: &Alarm, what: &str, ts: Timestamp) -> Event {
    let mut attrs = serde_json::Map::new();
    attrs.insert("alarm".into(), json!(a.id));
    attrs.insert("rule".into(), json!(a.rule));
    attrs.insert("severity".into(), json!(a.severity));
    attrs.insert("state".into(), json!(what));
    attrs.insert("message".into(), json!(a.message));
    if let Some(s) = &a.signal {
        attrs.insert("signal".into(), json!(s));
    }
    Event {
        ts,
        asset: a.asset.clone(),
        body: EventBody::Custom {
            name: "alarm".into(),
        },
        attrs,
    }
}

// ---------------------------------------------------------------------------------------------
// Building rules: validation and fitting (blocking: reads the store).

fn invalid(field: &str, reason: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidQuery(format!("{field}: {reason}"))
}

fn finite(field: &str, v: f64) -> Result<f64, EngineError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} is not a finite number")))
    }
}

/// The parent asset of a signal path.
fn parent(path: &str) -> String {
    path.rsplit_once('/')
        .map_or_else(|| path.to_owned(), |(p, _)| p.to_owned())
}

impl crate::Engine {
    /// The alarm book and rules.
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// Validates and fits a rule (reads its baseline from the store: call it off the async
    /// workers), stores it and starts evaluating it on new data.
    pub fn create_alarm_rule(
        &self,
        spec: RuleSpec,
        by: Option<String>,
    ) -> Result<AlarmRule, EngineError> {
        check_segment(&spec.name).map_err(|e| invalid("name", format!("{:?} {e}", spec.name)))?;
        if self.alarms.rule(&spec.name).is_some() {
            return Err(EngineError::Conflict(format!(
                "an alarm rule named {:?} exists; delete it first or pick another name",
                spec.name
            )));
        }
        if let Some(d) = &spec.description
            && d.len() > 1024
        {
            return Err(invalid("description", "at most 1024 characters"));
        }
        let now = self.now();
        let (eval, inputs, output, asset, fitted) = match &spec.kind {
            RuleKind::Threshold {
                signal,
                above,
                below,
                clear,
                raise_after_s,
                clear_after_s,
            } => {
                let reg = self.rule_signal(signal)?;
                let clear = finite("clear", *clear)?;
                for (f, v) in [
                    ("raise_after_s", *raise_after_s),
                    ("clear_after_s", *clear_after_s),
                ] {
                    if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                        return Err(invalid(
                            f,
                            format!("{v} must be between 0 and 86400 seconds"),
                        ));
                    }
                }
                let (is_above, limit) = match (above, below) {
                    (Some(a), None) => (true, finite("above", *a)?),
                    (None, Some(b)) => (false, finite("below", *b)?),
                    _ => {
                        return Err(invalid(
                            "above/below",
                            "give exactly one of above (alarm on high values) or below (alarm on low values)",
                        ));
                    }
                };
                if is_above && clear > limit {
                    return Err(invalid(
                        "clear",
                        format!("{clear} must be at or below above = {limit} (hysteresis)"),
                    ));
                }
                if !is_above && clear < limit {
                    return Err(invalid(
                        "clear",
                        format!("{clear} must be at or above below = {limit} (hysteresis)"),
                    ));
                }
                let eval = Eval::Threshold(ThresholdEval {
                    signal: signal.clone(),
                    above: is_above,
                    limit,
                    clear,
                    raise_after_ms: (raise_after_s * 1000.0).round() as i64,
                    clear_after_ms: (clear_after_s * 1000.0).round() as i64,
                    phase: Phase::Normal,
                    first_bad: None,
                });
                (eval, vec![reg.id], None, parent(signal), Fitted::Threshold)
            }
            RuleKind::Spc {
                signal,
                chart,
                rules,
                baseline,
                center,
                sigma,
                lambda,
                l,
                clear_after,
                subgroup,
            } => {
                let reg = self.rule_signal(signal)?;
                let n = subgroup.unwrap_or(1);
                if !(1..=25).contains(&n) {
                    return Err(invalid("subgroup", format!("{n} must be between 1 and 25")));
                }
                let n = n as usize;
                let ewma = match chart.as_str() {
                    "imr" | "i" | "individuals" => false,
                    "ewma" => true,
                    other => {
                        return Err(invalid(
                            "chart",
                            format!("{other:?} is not a streaming chart: imr or ewma"),
                        ));
                    }
                };
                let rule_numbers = match rules {
                    Some(r) if r.is_empty() => {
                        return Err(invalid("rules", "list at least one rule"));
                    }
                    Some(r) => r.clone(),
                    None if ewma => vec![1],
                    None => vec![1, 2, 5, 6],
                };
                let mut set = Vec::new();
                for n in &rule_numbers {
                    let r = RunRule::ALL
                        .into_iter()
                        .find(|r| r.number() == *n)
                        .ok_or_else(|| invalid("rules", format!("{n} is not a rule number 1–8")))?;
                    if ewma && r != RunRule::Beyond3Sigma {
                        return Err(invalid(
                            "rules",
                            "an EWMA chart uses only rule 1 (beyond its L·σ limits); its points are autocorrelated",
                        ));
                    }
                    set.push(r);
                }
                let (c, sx, n_base) = match (center, sigma, baseline) {
                    (Some(c), Some(s), None) => {
                        let s = finite("sigma", *s)?;
                        if s <= 0.0 {
                            return Err(invalid("sigma", "must be positive"));
                        }
                        (finite("center", *c)?, s, 0)
                    }
                    (None, None, b) => {
                        let p = b.unwrap_or(Period {
                            from: now - 3_600_000,
                            to: now,
                        });
                        if p.from >= p.to {
                            return Err(invalid("baseline", "from must be before to"));
                        }
                        let values: Vec<f64> = self
                            .store
                            .range(reg.id, p.from, p.to, 1_000_000)?
                            .into_iter()
                            .map(|s| s.value)
                            .collect();
                        let imr = Imr::estimate(&values).map_err(|e| {
                            invalid(
                                "baseline",
                                format!("{signal} between {} and {}: {e}", p.from, p.to),
                            )
                        })?;
                        if imr.sigma_within <= 0.0 {
                            return Err(invalid(
                                "baseline",
                                format!("{signal} does not vary in the baseline (σ = 0)"),
                            ));
                        }
                        (imr.individuals.center, imr.sigma_within, values.len())
                    }
                    _ => {
                        return Err(invalid(
                            "baseline/center/sigma",
                            "give either a baseline period or both center and sigma",
                        ));
                    }
                };
                // σ of a subgroup mean.
                let s_mean = sx / (n as f64).sqrt();
                let (stat_sigma, lam) = if ewma {
                    let lam = lambda.unwrap_or(0.2);
                    let width = l.unwrap_or(3.0);
                    if !(lam > 0.0 && lam <= 1.0) {
                        return Err(invalid("lambda", format!("{lam} must be in (0, 1]")));
                    }
                    if !(width > 0.0 && width.is_finite()) {
                        return Err(invalid("l", format!("{width} must be positive")));
                    }
                    // Rule 1 fires beyond 3 of these σ, i.e. beyond L σ of the EWMA statistic.
                    (s_mean * (lam / (2.0 - lam)).sqrt() * width / 3.0, Some(lam))
                } else {
                    (s_mean, None)
                };
                let clear_after = clear_after.unwrap_or(9).max(1);
                let monitor = RuleMonitor::new(c, stat_sigma, &RuleSet { enabled: set });
                let eval = Eval::Spc(SpcEval {
                    signal: signal.clone(),
                    subgroup: n,
                    partial: Vec::new(),
                    monitor,
                    center: c,
                    sigma: stat_sigma,
                    lambda: lam,
                    ewma: c,
                    clear_after,
                    quiet: 0,
                    raised: false,
                    recent: Default::default(),
                    violations: Vec::new(),
                });
                let fitted = Fitted::Spc {
                    center: c,
                    sigma: stat_sigma,
                    sigma_x: sx,
                    rules: rule_numbers,
                    baseline_points: n_base,
                };
                (eval, vec![reg.id], None, parent(signal), fitted)
            }
            RuleKind::Pca {
                machine,
                signals,
                baseline,
                variance,
                quantile,
                raise_after,
                clear_after,
                clear_index,
                score_signal,
                state,
            } => {
                let Multivariate {
                    machine,
                    names,
                    score_name,
                    all,
                    gate,
                    rows,
                    period: p,
                } = self.multivariate_baseline(
                    "PCA",
                    machine,
                    signals.as_deref(),
                    score_signal.as_deref().unwrap_or("anomaly_index"),
                    state.as_deref(),
                    *baseline,
                    now,
                )?;
                let cut = rows.len() * 7 / 10;
                let opts = PcaOptions {
                    variance: variance.unwrap_or(0.9),
                    quantile: quantile.unwrap_or(0.999),
                };
                let model = PcaMonitor::fit(&rows[..cut], &rows[cut..], opts).map_err(|e| {
                    invalid(
                        "baseline",
                        format!("{machine} between {} and {}: {e}", p.from, p.to),
                    )
                })?;
                let out_path = format!("{machine}/{score_name}");
                let out = self.score_signal_id(SignalDef {
                    description: Some(format!(
                        "PCA anomaly index of alarm rule {} (above 1: out of control)",
                        spec.name
                    )),
                    ..SignalDef::auto(&out_path)
                })?;
                let components = model.loadings.len();
                let eval = Eval::Pca(PcaEval {
                    machine: machine.clone(),
                    signals: names.clone(),
                    model: model.clone(),
                    held: Held::new(names.len(), gate.as_ref().map(|g| g.1)),
                    alarm: pca_alarm(*raise_after, *clear_after, *clear_index, false),
                });
                let fitted = Fitted::Pca {
                    signals: names,
                    model,
                    train_rows: cut,
                    holdout_rows: rows.len() - cut,
                    components,
                    score_signal: out_path,
                    gate_signal: gate.as_ref().map(|g| g.0.def.path.clone()),
                    gate_state: gate.as_ref().map(|g| g.1),
                };
                (
                    eval,
                    all.iter().map(|r| r.id).collect(),
                    Some(out),
                    machine,
                    fitted,
                )
            }
            #[cfg(not(feature = "vae"))]
            RuleKind::Vae { .. } => {
                return Err(invalid(
                    "type",
                    "this build of Gemba has no VAE support (the engine's `vae` feature is off)",
                ));
            }
            #[cfg(feature = "vae")]
            RuleKind::Vae {
                machine,
                signals,
                baseline,
                window,
                quantile,
                epochs,
                raise_after,
                clear_after,
                clear_index,
                score_signal,
                state,
            } => {
                let window = window.unwrap_or(3);
                if !(1..=60).contains(&window) {
                    return Err(invalid("window", format!("{window} must be 1 to 60 rows")));
                }
                let quantile = quantile.unwrap_or(0.999);
                if !(quantile > 0.5 && quantile < 1.0) {
                    return Err(invalid(
                        "quantile",
                        format!("{quantile} must lie in (0.5, 1)"),
                    ));
                }
                let epochs = epochs.unwrap_or(60);
                if !(1..=1000).contains(&epochs) {
                    return Err(invalid("epochs", format!("{epochs} must be 1 to 1000")));
                }
                let Multivariate {
                    machine,
                    names,
                    score_name,
                    all,
                    gate,
                    rows,
                    period: p,
                } = self.multivariate_baseline(
                    "the VAE",
                    machine,
                    signals.as_deref(),
                    score_signal.as_deref().unwrap_or("vae_index"),
                    state.as_deref(),
                    *baseline,
                    now,
                )?;
                let started = std::time::Instant::now();
                let fit = vae::fit(&rows, &names, window as usize, quantile, epochs as usize, 0)
                    .map_err(|e| {
                        invalid(
                            "baseline",
                            format!("{machine} between {} and {}: {e}", p.from, p.to),
                        )
                    })?;
                tracing::info!(
                    rule = %spec.name,
                    windows = fit.train_windows,
                    epochs = fit.vae.history.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "vae rule trained"
                );
                let artifact = fit
                    .vae
                    .to_json()
                    .map_err(|e| EngineError::Internal(format!("VAE artefact: {e}")))?;
                let model_name = format!("{}-vae", spec.name);
                let version = self
                    .register_model(&model_name, Some(&machine), &artifact)?
                    .version;
                let out = self.score_signal_id(SignalDef {
                    description: Some(format!(
                        "VAE anomaly index of alarm rule {} (above 1: anomaly)",
                        spec.name
                    )),
                    ..SignalDef::auto(&format!("{machine}/{score_name}"))
                })?;
                let threshold = fit.vae.threshold.value;
                let eval = Eval::Vae(Box::new(vae::VaeEval {
                    machine: machine.clone(),
                    signals: names.clone(),
                    model: format!("{model_name}@{version}"),
                    vae: fit.vae,
                    window: window as usize,
                    quantile,
                    held: Held::new(names.len(), gate.as_ref().map(|g| g.1)),
                    recent: Default::default(),
                    alarm: pca_alarm(*raise_after, *clear_after, *clear_index, false),
                }));
                let fitted = Fitted::Vae {
                    signals: names,
                    window: window as usize,
                    quantile,
                    model: model_name,
                    version,
                    threshold,
                    train_windows: fit.train_windows,
                    holdout_windows: fit.holdout_windows,
                    score_signal: format!("{machine}/{score_name}"),
                    gate_signal: gate.as_ref().map(|g| g.0.def.path.clone()),
                    gate_state: gate.as_ref().map(|g| g.1),
                };
                (
                    eval,
                    all.iter().map(|r| r.id).collect(),
                    Some(out),
                    machine,
                    fitted,
                )
            }
            RuleKind::Rul {
                machine,
                signal,
                threshold,
                lead_time_h,
                baseline,
            } => {
                let machine = machine.trim_end_matches('/').to_owned();
                let lead = finite("lead_time_h", *lead_time_h)?;
                if lead <= 0.0 {
                    return Err(invalid("lead_time_h", "must be positive"));
                }
                let p = baseline.unwrap_or(Period {
                    from: now - 2 * 3_600_000,
                    to: now,
                });
                // Fitting once now checks the machine, signal, baseline and threshold.
                self.machine_health(&crate::health::HealthRequest {
                    machine: machine.clone(),
                    signal: signal.clone(),
                    threshold: finite("threshold", *threshold)?,
                    baseline: (p.from, p.to),
                    to: now.max(p.to),
                    window_ms: Some(RUL_WINDOW_MS),
                })?;
                (
                    Eval::Periodic,
                    Vec::new(),
                    None,
                    machine,
                    Fitted::Rul { baseline: p },
                )
            }
            RuleKind::Model {
                machine,
                model,
                version,
                classes,
                above,
                clear,
                raise_after,
                clear_after,
                score_signal,
                state,
            } => {
                let machine = machine.trim_end_matches('/').to_owned();
                if self.registry.node(&machine).is_none() {
                    return Err(invalid("machine", format!("unknown asset {machine:?}")));
                }
                let above = finite("above", *above)?;
                if !(0.0..1.0).contains(&above) {
                    return Err(invalid(
                        "above",
                        format!("{above} must be a probability in [0, 1)"),
                    ));
                }
                let clear = finite("clear", clear.unwrap_or((above - 0.1).max(0.0)))?;
                if clear > above {
                    return Err(invalid(
                        "clear",
                        format!("{clear} must be at or below above = {above}"),
                    ));
                }
                let version = match version {
                    Some(v) => *v,
                    None => {
                        let active = self.active_models()?;
                        match active
                            .iter()
                            .find(|a| a.asset == machine && a.name == *model)
                        {
                            Some(a) => a.version,
                            None => self
                                .models()?
                                .iter()
                                .filter(|m| m.name == *model)
                                .map(|m| m.version)
                                .max()
                                .ok_or_else(|| {
                                    invalid(
                                        "model",
                                        format!("no model named {model:?} is registered"),
                                    )
                                })?,
                        }
                    }
                };
                if let Some(meta) = self
                    .models()?
                    .into_iter()
                    .find(|m| m.name == *model && m.version == version)
                    && let Some(for_asset) = meta.asset
                    && for_asset != machine
                {
                    return Err(invalid(
                        "model",
                        format!(
                            "{model}@{version} was trained for {for_asset}, not {machine}; train and register one for this machine"
                        ),
                    ));
                }
                let json = self.model_artifact(model, version)?.ok_or_else(|| {
                    invalid(
                        "version",
                        format!("model {model:?} has no version {version}"),
                    )
                })?;
                let artifact = gemba_ml::ModelArtifact::load(json.as_bytes())
                    .map_err(|e| invalid("model", format!("{model}@{version}: {e}")))?;
                // The rule watches a probability: a model without one (an SVM trained without
                // `probability`) would never score, so it is refused here.
                let probe = gemba_ml::Matrix::zeros(1, artifact.feature_names.len());
                if let Err(e) = artifact.predict_proba(&probe) {
                    return Err(invalid(
                        "model",
                        format!(
                            "{model}@{version} gives no probabilities ({e}); train it with probabilities (gemba train --probability)"
                        ),
                    ));
                }
                let names = artifact.class_names.clone();
                let watched: Vec<usize> = match classes {
                    Some(c) if c.is_empty() => {
                        return Err(invalid("classes", "list at least one class"));
                    }
                    Some(c) => c
                        .iter()
                        .map(|name| {
                            names.iter().position(|n| n == name).ok_or_else(|| {
                                invalid(
                                    "classes",
                                    format!(
                                        "{name:?} is not a class of {model}: {}",
                                        names.join(", ")
                                    ),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    None => {
                        let normal = gemba_ml::metrics::normal_class(&names);
                        (0..names.len()).filter(|&c| c != normal).collect()
                    }
                };
                let features = artifact.feature_names.clone();
                let gate = self.state_gate(&machine, state.as_deref())?;
                let (eval, signals) = ModelEval::new(
                    machine.clone(),
                    model.clone(),
                    artifact.clone(),
                    watched.clone(),
                    gate.as_ref().map(|g| g.1),
                    Counted::new(
                        above,
                        clear,
                        raise_after.unwrap_or(3),
                        clear_after.unwrap_or(3),
                        false,
                    ),
                )
                .map_err(|e| invalid("model", format!("{model}@{version}: {e}")))?;
                let regs: Vec<crate::Registered> = signals
                    .iter()
                    .map(|f| {
                        self.registry.get(&format!("{machine}/{f}")).ok_or_else(|| {
                            EngineError::InvalidModel(format!(
                                "feature {f:?} of model {model}@{version} is not a signal of {machine}; \
                                 alarm rules score models on the machine's signals named like their features"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let score_name = score_signal.clone().unwrap_or_else(|| format!("p_{model}"));
                check_segment(&score_name)
                    .map_err(|e| invalid("score_signal", format!("{score_name:?} {e}")))?;
                if signals.contains(&score_name) {
                    return Err(invalid("score_signal", "is one of the model's features"));
                }
                let out_path = format!("{machine}/{score_name}");
                let out = self.score_signal_id(SignalDef {
                    description: Some(format!(
                        "probability from model {model}@{version} (alarm rule {})",
                        spec.name
                    )),
                    range: Some(gemba_core::Range { min: 0.0, max: 1.0 }),
                    ..SignalDef::auto(&out_path)
                })?;
                let mut inputs: Vec<SignalId> = regs.iter().map(|r| r.id).collect();
                if let Some((r, _)) = &gate {
                    inputs.push(r.id);
                }
                let mut eval = eval;
                let latest = self.latest_by_id(&inputs);
                eval.prime(self.store().as_ref(), &inputs, |id| {
                    latest.get(&id).copied()
                });
                let eval = Eval::Model(eval);
                let fitted = Fitted::Model {
                    version,
                    kind: kind_name(&artifact.kind).into(),
                    features,
                    watched,
                    class_names: names,
                    score_signal: out_path,
                    gate_signal: gate.as_ref().map(|g| g.0.def.path.clone()),
                    gate_state: gate.as_ref().map(|g| g.1),
                };
                (eval, inputs, Some(out), machine, fitted)
            }
        };
        let rule = AlarmRule {
            spec,
            fitted,
            asset,
            created_at: now,
            created_by: by,
        };
        let active = Active {
            rule,
            eval,
            inputs,
            output,
            last_ts: Timestamp::MIN,
        };
        self.alarms.install(active)
    }

    /// The state signal and state index that gate a rule of `machine`: `state` names the state
    /// (default `running` when the machine's `state` signal knows it; `any`: no gate).
    /// The id of a rule's score signal: the existing one, or `def` defined now.
    fn score_signal_id(&self, def: SignalDef) -> Result<SignalId, EngineError> {
        match self.registry.get(&def.path) {
            Some(r) => Ok(r.id),
            None => self.define_signal(def),
        }
    }

    /// The baseline of a multivariate rule (`pca`, `vae`): the machine's signals (named, or every
    /// gauge directly under it but the score signal), aligned in time over `baseline` (default:
    /// the last two hours), only while the machine is in the gated state (`state`, see
    /// [`Self::state_gate`]).
    #[allow(clippy::too_many_arguments)]
    fn multivariate_baseline(
        &self,
        method: &str,
        machine: &str,
        signals: Option<&[String]>,
        score_name: &str,
        state: Option<&str>,
        baseline: Option<Period>,
        now: Timestamp,
    ) -> Result<Multivariate, EngineError> {
        let machine = machine.trim_end_matches('/').to_owned();
        check_segment(score_name)
            .map_err(|e| invalid("score_signal", format!("{score_name:?} {e}")))?;
        let names: Vec<String> = match signals {
            Some(s) => s.to_vec(),
            None => self
                .registry
                .signals_under(&machine)
                .into_iter()
                .filter(|r| {
                    r.def.kind == SignalKind::Gauge
                        && parent(&r.def.path) == machine
                        && !r.def.path.ends_with(&format!("/{score_name}"))
                })
                .map(|r| r.def.path.rsplit('/').next().unwrap_or("").to_owned())
                .collect(),
        };
        if names.len() < 2 {
            return Err(invalid(
                "signals",
                format!(
                    "{method} needs at least 2 gauge signals under {machine:?}; found {}",
                    names.len()
                ),
            ));
        }
        if names.iter().any(|n| n == score_name) {
            return Err(invalid(
                "signals",
                format!("{score_name} is the rule's own score signal"),
            ));
        }
        let regs: Vec<_> = names
            .iter()
            .map(|n| self.rule_signal(&format!("{machine}/{n}")))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("signals", e))?;
        let gate = self.state_gate(&machine, state)?;
        let period = baseline.unwrap_or(Period {
            from: now - 2 * 3_600_000,
            to: now,
        });
        if period.from >= period.to {
            return Err(invalid("baseline", "from must be before to"));
        }
        let mut all = regs;
        if let Some((r, _)) = &gate {
            all.push(r.clone());
        }
        let mut rows = self.aligned_rows(&all, period)?;
        if let Some((_, g)) = &gate {
            rows.retain(|r| r.last() == Some(g));
            for r in &mut rows {
                r.pop();
            }
        }
        Ok(Multivariate {
            machine,
            names,
            score_name: score_name.to_owned(),
            all,
            gate,
            rows,
            period,
        })
    }

    fn state_gate(
        &self,
        machine: &str,
        state: Option<&str>,
    ) -> Result<Option<(crate::Registered, f64)>, EngineError> {
        let state_path = format!("{machine}/state");
        Ok(match state {
            Some("any") => None,
            wanted => {
                let name = wanted.unwrap_or("running");
                match self.registry.get(&state_path) {
                    Some(r) if r.def.kind == SignalKind::State => match r.def.state_index(name) {
                        Some(i) => Some((r, i as f64)),
                        None if wanted.is_none() => None,
                        None => {
                            return Err(invalid(
                                "state",
                                format!(
                                    "{name:?} is not a state of {state_path}; known: {}",
                                    r.def.states.join(", ")
                                ),
                            ));
                        }
                    },
                    _ if wanted.is_none() => None,
                    _ => {
                        return Err(invalid(
                            "state",
                            format!("{machine} has no state signal {state_path}"),
                        ));
                    }
                }
            }
        })
    }

    /// Evaluates the rules that are not driven by samples (`rul`): raises an alarm when a
    /// machine's remaining useful life is below the rule's lead time, clears it when it is not.
    /// Blocking (reads the store); `spawn_periodic_rules` calls it on the blocking pool.
    pub fn evaluate_periodic_rules(&self) {
        let now = self.now();
        for rule in self.alarms.rules() {
            let (
                RuleKind::Rul {
                    machine,
                    signal,
                    threshold,
                    lead_time_h,
                    ..
                },
                Fitted::Rul { baseline },
            ) = (&rule.spec.kind, &rule.fitted)
            else {
                continue;
            };
            if !rule.spec.enabled {
                continue;
            }
            let h = match self.machine_health(&crate::health::HealthRequest {
                machine: machine.clone(),
                signal: signal.clone(),
                threshold: *threshold,
                baseline: (baseline.from, baseline.to),
                to: now,
                window_ms: Some(RUL_WINDOW_MS),
            }) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(rule = %rule.spec.name, error = %e, "RUL rule not evaluated");
                    continue;
                }
            };
            let path = format!("{machine}/{signal}");
            let below = h.rul_hours.is_some_and(|r| r < *lead_time_h);
            let present = self.alarms.condition_present(&rule.spec.name);
            let event = if below {
                let rul = h.rul_hours.unwrap_or(0.0);
                let explanation = Explanation {
                    rule: format!(
                        "remaining useful life {rul:.1} running hours (95 % band {:.1}–{:.1}) below the lead time {lead_time_h} h; {signal} in an exponential degradation trend toward {threshold}",
                        h.rul_low_hours.unwrap_or(rul),
                        h.rul_high_hours.unwrap_or(rul)
                    ),
                    values: Vec::new(),
                    limits: Some(json!({
                        "rul_hours": h.rul_hours, "rul_low_hours": h.rul_low_hours,
                        "rul_high_hours": h.rul_high_hours, "lead_time_h": lead_time_h,
                        "health": h.estimate.health, "baseline_mean": h.baseline_mean,
                        "threshold": threshold,
                    })),
                    contributions: vec![SignalContribution {
                        signal: path.clone(),
                        contribution: 1.0,
                        value: h.baseline_mean
                            + (1.0 - h.estimate.health) * (threshold - h.baseline_mean),
                        expected: Some(h.baseline_mean),
                    }],
                };
                if present {
                    self.alarms.refresh(&rule.spec.name, explanation);
                    None
                } else {
                    let message = format!(
                        "{machine}: about {rul:.1} running hours of life left ({path} toward {threshold}); plan the repair"
                    );
                    let a = self
                        .alarms
                        .raise(&rule, Some(path), now, explanation, message);
                    Some(alarm_event(&a, "raised", now))
                }
            } else if present {
                self.alarms
                    .clear(&rule.spec.name, now)
                    .map(|a| alarm_event(&a, "cleared", now))
            } else {
                None
            };
            if let Some(ev) = event {
                self.writer.write_detached(WriteBatch {
                    series: Vec::new(),
                    events: vec![ev],
                });
            }
        }
    }

    /// Runs [`Engine::evaluate_periodic_rules`] every `alarms.periodic_interval_s`.
    pub fn spawn_periodic_rules(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_secs(self.config.alarms.periodic_interval_s.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                if tokio::task::spawn_blocking(move || engine.evaluate_periodic_rules())
                    .await
                    .is_err()
                {
                    tracing::error!("periodic alarm rules panicked");
                }
            }
        })
    }

    fn rule_signal(&self, path: &str) -> Result<crate::Registered, EngineError> {
        let reg = self
            .registry
            .get(path)
            .ok_or_else(|| invalid("signal", format!("unknown signal {path:?}")))?;
        if reg.def.kind == SignalKind::State {
            return Err(invalid(
                "signal",
                format!("{path} is a state signal; alarm on a gauge or counter"),
            ));
        }
        Ok(reg)
    }

    /// Rows of the signals' values at the timestamps of the first signal (the others held at
    /// their latest value), over `p`.
    fn aligned_rows(
        &self,
        regs: &[crate::Registered],
        p: Period,
    ) -> Result<Vec<Vec<f64>>, EngineError> {
        let series: Vec<Vec<Sample>> = regs
            .iter()
            .map(|r| self.store.range(r.id, p.from, p.to, 2_000_000))
            .collect::<Result<_, _>>()?;
        let mut idx = vec![0usize; regs.len()];
        let mut held: Vec<Option<f64>> = vec![None; regs.len()];
        let mut rows = Vec::with_capacity(series[0].len());
        for s in &series[0] {
            held[0] = Some(s.value);
            for k in 1..regs.len() {
                while idx[k] < series[k].len() && series[k][idx[k]].ts <= s.ts {
                    held[k] = Some(series[k][idx[k]].value);
                    idx[k] += 1;
                }
            }
            if let Some(row) = held.iter().copied().collect::<Option<Vec<f64>>>()
                && row.iter().all(|v| v.is_finite())
            {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Rebuilds the evaluators of the stored rules (at start).
    pub(crate) fn restore_rules(
        registry: &crate::Registry,
        store: &dyn Store,
        alarms: &Alarms,
    ) -> Vec<Active> {
        let mut out = Vec::new();
        // The latest sample of every signal, read once for all the model rules to prime from.
        let mut latest: Option<HashMap<SignalId, Sample>> = None;
        for rule in alarms.rules() {
            match restore(registry, store, alarms, rule.clone(), &mut latest) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::error!(rule = %rule.spec.name, error = %e, "alarm rule not restored")
                }
            }
        }
        out
    }
}

fn restore(
    registry: &crate::Registry,
    store: &dyn Store,
    alarms: &Alarms,
    rule: AlarmRule,
    latest: &mut Option<HashMap<SignalId, Sample>>,
) -> Result<Active, String> {
    let id = |p: &str| {
        registry
            .get(p)
            .map(|r| r.id)
            .ok_or_else(|| format!("signal {p} is gone"))
    };
    let raised = alarms.condition_present(&rule.spec.name);
    let (eval, inputs, output) = match (&rule.spec.kind, &rule.fitted) {
        (
            RuleKind::Threshold {
                signal,
                above,
                below,
                clear,
                raise_after_s,
                clear_after_s,
            },
            _,
        ) => (
            Eval::Threshold(ThresholdEval {
                signal: signal.clone(),
                above: above.is_some(),
                limit: above.or(*below).unwrap_or(0.0),
                clear: *clear,
                raise_after_ms: (raise_after_s * 1000.0).round() as i64,
                clear_after_ms: (clear_after_s * 1000.0).round() as i64,
                phase: if raised { Phase::Raised } else { Phase::Normal },
                first_bad: None,
            }),
            vec![id(signal)?],
            None,
        ),
        (
            RuleKind::Spc {
                signal,
                lambda,
                chart,
                clear_after,
                subgroup,
                ..
            },
            Fitted::Spc {
                center,
                sigma,
                rules,
                ..
            },
        ) => {
            let set = RuleSet {
                enabled: RunRule::ALL
                    .into_iter()
                    .filter(|r| rules.contains(&r.number()))
                    .collect(),
            };
            (
                Eval::Spc(SpcEval {
                    signal: signal.clone(),
                    subgroup: subgroup.unwrap_or(1).max(1) as usize,
                    partial: Vec::new(),
                    monitor: RuleMonitor::new(*center, *sigma, &set),
                    center: *center,
                    sigma: *sigma,
                    lambda: (chart == "ewma").then(|| lambda.unwrap_or(0.2)),
                    ewma: *center,
                    clear_after: clear_after.unwrap_or(9).max(1),
                    quiet: 0,
                    raised,
                    recent: Default::default(),
                    violations: Vec::new(),
                }),
                vec![id(signal)?],
                None,
            )
        }
        (
            RuleKind::Pca {
                machine,
                raise_after,
                clear_after,
                clear_index,
                ..
            },
            Fitted::Pca {
                signals,
                model,
                score_signal,
                gate_signal,
                gate_state,
                ..
            },
        ) => {
            let machine = machine.trim_end_matches('/').to_owned();
            let mut inputs: Vec<SignalId> = signals
                .iter()
                .map(|s| id(&format!("{machine}/{s}")))
                .collect::<Result<_, _>>()?;
            if let Some(g) = gate_signal {
                inputs.push(id(g)?);
            }
            (
                Eval::Pca(PcaEval {
                    machine,
                    signals: signals.clone(),
                    model: model.clone(),
                    held: Held::new(signals.len(), *gate_state),
                    alarm: pca_alarm(*raise_after, *clear_after, *clear_index, raised),
                }),
                inputs,
                Some(id(score_signal)?),
            )
        }
        #[cfg(feature = "vae")]
        (
            RuleKind::Vae {
                machine,
                raise_after,
                clear_after,
                clear_index,
                ..
            },
            Fitted::Vae {
                signals,
                window,
                quantile,
                model,
                version,
                score_signal,
                gate_signal,
                gate_state,
                ..
            },
        ) => {
            let machine = machine.trim_end_matches('/').to_owned();
            let json = crate::models::artifact_json(store, model, *version)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("model {model}@{version} is gone"))?;
            let net = gemba_nn::Vae::from_json(&json).map_err(|e| e.to_string())?;
            let mut inputs: Vec<SignalId> = signals
                .iter()
                .map(|s| id(&format!("{machine}/{s}")))
                .collect::<Result<_, _>>()?;
            if let Some(g) = gate_signal {
                inputs.push(id(g)?);
            }
            (
                Eval::Vae(Box::new(vae::VaeEval {
                    machine,
                    signals: signals.clone(),
                    model: format!("{model}@{version}"),
                    vae: net,
                    window: *window,
                    quantile: *quantile,
                    held: Held::new(signals.len(), *gate_state),
                    recent: Default::default(),
                    alarm: pca_alarm(*raise_after, *clear_after, *clear_index, raised),
                })),
                inputs,
                Some(id(score_signal)?),
            )
        }
        (
            RuleKind::Model {
                machine,
                model,
                above,
                clear,
                raise_after,
                clear_after,
                ..
            },
            Fitted::Model {
                version,
                features,
                watched,
                score_signal,
                gate_signal,
                gate_state,
                ..
            },
        ) => {
            let machine = machine.trim_end_matches('/').to_owned();
            let json = crate::models::artifact_json(store, model, *version)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("model {model}@{version} is gone"))?;
            let artifact =
                gemba_ml::ModelArtifact::load(json.as_bytes()).map_err(|e| e.to_string())?;
            if artifact.feature_names != *features {
                return Err(format!(
                    "model {model}@{version} no longer has the features the rule was fitted with"
                ));
            }
            let (eval, signals) = ModelEval::new(
                machine.clone(),
                model.clone(),
                artifact,
                watched.clone(),
                *gate_state,
                Counted::new(
                    *above,
                    clear.unwrap_or((above - 0.1).max(0.0)),
                    raise_after.unwrap_or(3),
                    clear_after.unwrap_or(3),
                    raised,
                ),
            )?;
            let mut inputs: Vec<SignalId> = signals
                .iter()
                .map(|f| id(&format!("{machine}/{f}")))
                .collect::<Result<_, _>>()?;
            if let Some(g) = gate_signal {
                inputs.push(id(g)?);
            }
            let mut eval = eval;
            if latest.is_none() {
                *latest = Some(
                    store
                        .latest_all()
                        .map_err(|e| e.to_string())?
                        .into_iter()
                        .collect(),
                );
            }
            let latest = latest.as_ref();
            eval.prime(store, &inputs, |i| latest.and_then(|l| l.get(&i)).copied());
            (Eval::Model(eval), inputs, Some(id(score_signal)?))
        }
        (RuleKind::Rul { .. }, Fitted::Rul { .. }) => (Eval::Periodic, Vec::new(), None),
        _ => return Err("the stored rule does not match its fitted parameters".into()),
    };
    Ok(Active {
        rule,
        eval,
        inputs,
        output,
        last_ts: Timestamp::MIN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(raise_after_ms: i64, clear_after_ms: i64) -> ThresholdEval {
        ThresholdEval {
            signal: "s/a/l/m/temp".into(),
            above: true,
            limit: 80.0,
            clear: 75.0,
            raise_after_ms,
            clear_after_ms,
            phase: Phase::Normal,
            first_bad: None,
        }
    }

    fn transitions(
        t: &mut ThresholdEval,
        values: &[(Timestamp, f64)],
    ) -> Vec<(Timestamp, &'static str)> {
        values
            .iter()
            .filter_map(|&(ts, v)| {
                t.push(ts, v).map(|verdict| match verdict {
                    Verdict::Raise(..) => (ts, "raise"),
                    Verdict::Still(_) => (ts, "still"),
                    Verdict::Clear => (ts, "clear"),
                })
            })
            .collect()
    }

    #[test]
    fn hysteresis_keeps_a_noisy_signal_from_flapping() {
        // A signal that wobbles ±3 around the limit of 80 for 200 s, one point per second.
        let mut x: u64 = 7;
        let noisy: Vec<(Timestamp, f64)> = (0..200)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (i * 1000, 80.0 + 6.0 * (u - 0.5))
            })
            .collect();
        let crossings = noisy
            .windows(2)
            .filter(|w| (w[0].1 > 80.0) != (w[1].1 > 80.0))
            .count();
        assert!(
            crossings > 50,
            "the signal crosses the limit {crossings} times"
        );
        // Without a deadband or durations it flaps; with them it raises once and never clears
        // (the signal never goes below 75).
        let mut plain = ThresholdEval {
            clear: 80.0,
            ..threshold(0, 0)
        };
        assert!(transitions(&mut plain, &noisy).len() > 40);
        let mut t = threshold(3000, 5000);
        let got = transitions(&mut t, &noisy);
        assert_eq!(got.iter().filter(|g| g.1 == "raise").count(), 1, "{got:?}");
        assert_eq!(got.iter().filter(|g| g.1 == "clear").count(), 0, "{got:?}");
    }

    #[test]
    fn durations_and_clear_level_are_honoured() {
        let mut t = threshold(3000, 2000);
        let seq = [
            (0, 81.0),
            (1000, 82.0),
            (2000, 79.0), // back under: the pending raise is dropped
            (3000, 81.0),
            (4000, 81.0),
            (5000, 81.0),
            (6000, 81.0), // 3 s above since 3000: raise
            (7000, 77.0), // between clear and limit: stays raised
            (8000, 74.0), // below clear: clearing starts
            (9000, 74.0),
            (10000, 74.0), // 2 s below clear: cleared
        ];
        assert_eq!(
            transitions(&mut t, &seq),
            vec![(6000, "raise"), (10000, "clear")]
        );
        // The explanation names the limit and carries the readings.
        let mut t = threshold(0, 0);
        match t.push(5, 90.0) {
            Some(Verdict::Raise(ex, msg)) => {
                assert!(ex.rule.contains("above 80"), "{}", ex.rule);
                assert_eq!(ex.values[0].value, 90.0);
                assert_eq!(ex.contributions[0].signal, "s/a/l/m/temp");
                assert!(msg.contains("90"), "{msg}");
            }
            other => panic!("expected a raise, got {other:?}"),
        }
    }

    #[test]
    fn counted_hysteresis_needs_runs_to_raise_and_to_clear() {
        let mut c = Counted::new(1.0, 0.8, 3, 2, false);
        let steps: Vec<Step> = [1.5, 1.5, 0.9, 1.5, 1.5, 1.5, 1.2, 0.9, 0.7, 0.9, 0.7, 0.7]
            .into_iter()
            .map(|v| c.step(v))
            .collect();
        use Step::*;
        assert_eq!(
            steps,
            [
                Nothing, Nothing, Nothing, Nothing, Nothing, Raise, Still, Nothing, Nothing,
                Nothing, Nothing, Clear
            ]
        );
        // An interruption restarts the count toward a raise.
        let mut c = Counted::new(1.0, 0.8, 2, 1, false);
        assert_eq!(c.step(2.0), Nothing);
        c.interrupt();
        assert_eq!(c.step(2.0), Nothing);
        assert_eq!(c.step(2.0), Raise);
    }

    #[test]
    fn a_below_rule_mirrors_the_above_rule() {
        let mut t = ThresholdEval {
            above: false,
            limit: 10.0,
            clear: 12.0,
            ..threshold(0, 0)
        };
        let seq = [(0, 11.0), (1, 9.0), (2, 11.0), (3, 13.0)];
        assert_eq!(transitions(&mut t, &seq), vec![(1, "raise"), (3, "clear")]);
    }

    #[test]
    fn spc_evaluator_raises_on_a_shift_and_clears_after_quiet_points() {
        let set = RuleSet::western_electric();
        let mut e = SpcEval {
            signal: "s/a/l/m/d".into(),
            subgroup: 1,
            partial: Vec::new(),
            monitor: RuleMonitor::new(10.0, 1.0, &set),
            center: 10.0,
            sigma: 1.0,
            lambda: None,
            ewma: 10.0,
            clear_after: 9,
            quiet: 0,
            raised: false,
            recent: Default::default(),
            violations: Vec::new(),
        };
        let mut log = Vec::new();
        // In control (alternating ±0.5), then a +1.5σ shift, then back.
        for i in 0..60i64 {
            let base = if i % 2 == 0 { 10.5 } else { 9.5 };
            let v = if (20..40).contains(&i) {
                base + 1.5
            } else {
                base
            };
            if let Some(v) = e.push(i, v) {
                log.push((
                    i,
                    match v {
                        Verdict::Raise(ex, _) => ex.rule,
                        Verdict::Still(_) => "still".into(),
                        Verdict::Clear => "clear".into(),
                    },
                ));
            }
        }
        let raise = &log[0];
        assert!((20..30).contains(&raise.0), "{log:?}");
        assert!(raise.1.contains("SPC rule"), "{log:?}");
        let clear = log.iter().find(|l| l.1 == "clear").expect("cleared");
        assert!((40..55).contains(&clear.0), "{log:?}");
    }
}
