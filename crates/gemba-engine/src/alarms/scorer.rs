//! The scorer thread: it takes the committed samples of watched signals from the writer's
//! [`Tap`], runs each rule's evaluator in timestamp order, writes the rules' scores back as
//! signals and raises and clears alarms in the book. Also the alarms that come from events
//! (reorder points).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

use gemba_core::{Event, EventBody, Sample, Timestamp};
use gemba_store::{SeriesWrite, SignalId, WriteBatch};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use super::book::{Alarms, Origin};
use super::rule::{Active, Verdict};
use super::spec::{Alarm, Explanation, Reading, Severity, SignalContribution};
use crate::metrics::Metrics;
use crate::writer::Writer;

/// The writer's view of the scorer: which signals are watched and where committed samples go.
#[derive(Debug, Default)]
pub struct Tap {
    pub(super) watched: RwLock<HashSet<SignalId>>,
    pub(super) tx: Mutex<Option<Sender<Msg>>>,
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

/// A value with as many decimals as a person reads (4–5 significant digits).
pub(super) fn short(v: f64) -> String {
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
    // Reused for every timestamp of every rule: the hot path allocates nothing per point.
    let mut points: Vec<(usize, f64)> = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
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
            points.clear();
            points.extend(samples[i..j].iter().map(|s| (s.1, s.2)));
            if let Some(score) = a.eval.step(ts, &points, &mut verdicts) {
                out_samples.push(Sample { ts, value: score });
            }
            for v in verdicts.drain(..) {
                let signal = a.eval.signal().map(str::to_owned);
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

pub(super) fn alarm_event(a: &Alarm, what: &str, ts: Timestamp) -> Event {
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
