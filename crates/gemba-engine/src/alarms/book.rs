//! The alarm book: every alarm with its life (active → acknowledged → cleared → closed, who did
//! what and when, comments), one open alarm per rule, and the stored rules. Every change is
//! stored and handed to the notification outbox in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gemba_core::Timestamp;
use gemba_store::Store;
use parking_lot::{Mutex, RwLock};

use super::AlarmError;
use super::rule::Active;
use super::rule::invalid;
use super::scorer::{Msg, Tap};
use super::spec::*;
use super::{ALARM_RECORD, RULE_RECORD};
use crate::EngineError;
use crate::metrics::Metrics;
use crate::notify::{AlarmEvent, Notification, Outbox};

/// The alarm book and the rules; owned by the engine.
#[derive(Debug)]
pub struct Alarms {
    store: Arc<dyn Store>,
    book: Mutex<BTreeMap<u64, Alarm>>,
    next_id: AtomicU64,
    /// Bumped on every change (the dashboard's cheap "anything new?").
    version: AtomicU64,
    rules: RwLock<BTreeMap<String, AlarmRule>>,
    pub(super) tap: Arc<Tap>,
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
            let a: Alarm =
                serde_json::from_str(&json).map_err(|e| AlarmError::UnreadableRecord {
                    kind: "alarm",
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            book.insert(a.id, a);
        }
        let mut rules = BTreeMap::new();
        for (key, json) in store.records(RULE_RECORD).map_err(store_err)? {
            let r: AlarmRule =
                serde_json::from_str(&json).map_err(|e| AlarmError::UnreadableRecord {
                    kind: "alarm rule",
                    key: key.clone(),
                    reason: e.to_string(),
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
            return Err(invalid(
                "by",
                "who does this (1–128 characters) is required",
            ));
        }
        let mut book = self.book.lock();
        let a = book.get_mut(&id).ok_or(AlarmError::UnknownAlarm(id))?;
        let stamp = Stamp {
            by: by.to_owned(),
            at: now,
        };
        match action {
            AlarmAction::Ack => {
                if a.closed.is_some() {
                    return Err(AlarmError::AckClosed(id).into());
                }
                if a.acknowledged.is_some() {
                    return Err(AlarmError::AlreadyAcknowledged {
                        id,
                        by: a
                            .acknowledged
                            .as_ref()
                            .map_or("", |s| s.by.as_str())
                            .to_owned(),
                    }
                    .into());
                }
                a.acknowledged = Some(stamp);
            }
            AlarmAction::Close => {
                if a.closed.is_some() {
                    return Err(AlarmError::AlreadyClosed(id).into());
                }
                if a.condition {
                    return Err(AlarmError::StillActive(id).into());
                }
                a.closed = Some(stamp);
            }
            AlarmAction::Comment => {}
        }
        let text = text.map(str::trim).filter(|t| !t.is_empty());
        if action == AlarmAction::Comment && text.is_none() {
            return Err(invalid("text", "a comment needs text"));
        }
        if let Some(t) = text {
            if t.len() > 4096 {
                return Err(invalid("text", "at most 4096 characters"));
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
            .map_err(|e| {
                EngineError::from(AlarmError::Unwritable {
                    what: format!("alarm {}", a.id),
                    reason: e.to_string(),
                })
            })
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
    pub(super) fn raise(
        &self,
        rule: &AlarmRule,
        signal: Option<String>,
        ts: Timestamp,
        explanation: Explanation,
        message: String,
    ) -> Alarm {
        let origin = Origin {
            rule: &rule.spec.name,
            rule_type: rule.spec.kind.type_name(),
            severity: rule.spec.severity,
            asset: &rule.asset,
        };
        self.raise_from(&origin, signal, ts, explanation, message)
    }

    /// Raises (or re-raises) the open alarm of `origin.rule`.
    pub(super) fn raise_from(
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

    pub(super) fn refresh(&self, rule: &str, explanation: Explanation) {
        let mut book = self.book.lock();
        if let Some(a) = book
            .values_mut()
            .rev()
            .find(|a| a.rule == rule && a.closed.is_none() && a.condition)
        {
            a.explanation = explanation;
        }
    }

    pub(super) fn clear(&self, rule: &str, ts: Timestamp) -> Option<Alarm> {
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
    pub(super) fn condition_present(&self, rule: &str) -> bool {
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
        let json = serde_json::to_string(&rule).map_err(|e| AlarmError::Unwritable {
            what: format!("alarm rule {}", rule.spec.name),
            reason: e.to_string(),
        })?;
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
            return Err(AlarmError::UnknownRule(name.to_owned()).into());
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

/// Where an alarm comes from: a stored rule, or a built-in source such as a reorder point.
#[derive(Debug)]
pub(super) struct Origin<'a> {
    pub rule: &'a str,
    pub rule_type: &'static str,
    pub severity: Severity,
    pub asset: &'a str,
}
