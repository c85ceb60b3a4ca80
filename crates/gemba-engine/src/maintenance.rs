//! Work orders and maintenance figures per machine.
//!
//! - A **work order** is a store record (`work_order`) with the states open → assigned →
//!   in_progress → done, who did what and when, the parts used and notes. It is made by hand or
//!   from an alarm (`alarm` names it; one work order per alarm). [`crate::Engine::spawn_work_order_raiser`]
//!   makes one for every alarm at or above a severity (the demo: critical).
//! - **MTBF / MTTR** of a machine over a range: operating time and breakdown time from the OEE
//!   buckets (`production`), divided by the number of breakdowns; repair times also from the
//!   work orders (in progress → done).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gemba_core::Timestamp;
use gemba_store::{EventQuery, Store};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::alarms::{AlarmQuery, Severity};

const RECORD: &str = "work_order";
/// The next work-order id (`next`), written when retention deletes work orders.
const SEQ_RECORD: &str = "work_order_seq";

/// Where a work order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderState {
    Open,
    Assigned,
    InProgress,
    Done,
}

impl WorkOrderState {
    pub fn name(self) -> &'static str {
        match self {
            WorkOrderState::Open => "open",
            WorkOrderState::Assigned => "assigned",
            WorkOrderState::InProgress => "in_progress",
            WorkOrderState::Done => "done",
        }
    }
}

impl std::str::FromStr for WorkOrderState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "open" => WorkOrderState::Open,
            "assigned" => WorkOrderState::Assigned,
            "in_progress" => WorkOrderState::InProgress,
            "done" => WorkOrderState::Done,
            _ => {
                return Err(format!(
                    "{s:?} is not a state: open, assigned, in_progress or done"
                ));
            }
        })
    }
}

/// Who did something and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: Timestamp,
}

/// A spare part used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub name: String,
    pub quantity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub by: String,
    pub at: Timestamp,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub at: Timestamp,
    /// `created`, `assigned`, `started`, `done`, `note`, `part`.
    pub what: String,
    pub by: String,
}

/// A work order with its whole history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: u64,
    pub machine: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub state: WorkOrderState,
    /// The alarm it was raised from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub created: Stamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Stamp>,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default)]
    pub notes: Vec<Note>,
    #[serde(default)]
    pub history: Vec<Step>,
}

/// A new work order (`POST /api/v1/work-orders`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    /// The machine (or other asset); taken from the alarm when omitted.
    #[serde(default)]
    pub machine: Option<String>,
    /// Taken from the alarm's message when omitted.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub alarm: Option<u64>,
    #[serde(default)]
    pub assignee: Option<String>,
    /// Who creates it. Over HTTP the API sets it from the signed-in principal (a body's `by` is
    /// only used with authentication off, where there are no identities).
    #[serde(default)]
    pub by: String,
}

/// What a person does to a work order: the `{action}` of `POST /api/v1/work-orders/{id}/{action}`
/// (its body is a [`WorkOrderAction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkOrderStep {
    Assign,
    Start,
    Done,
    Note,
    Parts,
}

impl WorkOrderStep {
    pub const ALL: [WorkOrderStep; 5] = [
        WorkOrderStep::Assign,
        WorkOrderStep::Start,
        WorkOrderStep::Done,
        WorkOrderStep::Note,
        WorkOrderStep::Parts,
    ];

    /// The name in the URL.
    pub fn name(self) -> &'static str {
        match self {
            WorkOrderStep::Assign => "assign",
            WorkOrderStep::Start => "start",
            WorkOrderStep::Done => "done",
            WorkOrderStep::Note => "note",
            WorkOrderStep::Parts => "parts",
        }
    }

    pub fn parse(name: &str) -> Option<WorkOrderStep> {
        WorkOrderStep::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// An action on a work order (`POST /api/v1/work-orders/{id}/{action}`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderAction {
    /// Who acts; over HTTP set from the signed-in principal, like [`NewWorkOrder::by`].
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// Filter of the work-order list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkOrderQuery {
    pub states: Option<Vec<WorkOrderState>>,
    pub asset_prefix: Option<String>,
    pub assignee: Option<String>,
    pub limit: usize,
}

/// The work-order book; owned by the engine.
#[derive(Debug)]
pub struct Maintenance {
    store: Arc<dyn Store>,
    book: Mutex<BTreeMap<u64, WorkOrder>>,
    next_id: AtomicU64,
}

/// Why a work order or a step of one was refused: one variant per cause. The API decides the
/// status code of each (`gemba_api::error`).
#[derive(Debug, thiserror::Error)]
pub enum WorkOrderError {
    /// A field is missing, malformed or out of range.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no work order {0}")]
    Unknown(u64),
    /// The work order's state does not allow the step.
    #[error("work order {id} is {state}; it can be {what} only when {need}")]
    NotNow {
        id: u64,
        state: &'static str,
        what: &'static str,
        need: &'static str,
    },
    #[error("alarm {alarm} already has work order {work_order}")]
    AlarmHasOne { alarm: u64, work_order: u64 },
    /// A stored work order that does not parse (written by another version?).
    #[error("stored work order {key} is unreadable: {reason}")]
    UnreadableRecord { key: String, reason: String },
    #[error("work order {id} cannot be written as JSON: {reason}")]
    Unwritable { id: u64, reason: String },
}

/// A refusal of `field`.
fn invalid(field: &str, reason: impl std::fmt::Display) -> EngineError {
    EngineError::WorkOrder(WorkOrderError::Invalid {
        field: field.to_owned(),
        reason: reason.to_string(),
    })
}

fn check_text(field: &str, v: &str, max: usize) -> Result<String, EngineError> {
    let t = v.trim();
    if t.is_empty() || t.len() > max {
        return Err(invalid(field, format!("1–{max} characters are required")));
    }
    Ok(t.to_owned())
}

impl Maintenance {
    pub fn load(store: Arc<dyn Store>) -> Result<Maintenance, EngineError> {
        let mut book = BTreeMap::new();
        for (key, json) in store.records(RECORD)? {
            let w: WorkOrder = serde_json::from_str(&json).map_err(|e| {
                EngineError::WorkOrder(WorkOrderError::UnreadableRecord {
                    key: key.clone(),
                    reason: e.to_string(),
                })
            })?;
            book.insert(w.id, w);
        }
        // Retention may have deleted the newest work orders: the next id is kept as a record so
        // that ids are never reused.
        let kept_next = store
            .record(SEQ_RECORD, "next")?
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let next = (book.keys().next_back().copied().unwrap_or(0) + 1).max(kept_next);
        Ok(Maintenance {
            store,
            book: Mutex::new(book),
            next_id: AtomicU64::new(next),
        })
    }

    fn persist(&self, w: &WorkOrder) -> Result<(), EngineError> {
        let json = serde_json::to_string(w).map_err(|e| {
            EngineError::WorkOrder(WorkOrderError::Unwritable {
                id: w.id,
                reason: e.to_string(),
            })
        })?;
        self.store
            .put_record(RECORD, &format!("{:012}", w.id), &json)?;
        Ok(())
    }

    /// Deletes the work orders finished (done) before `cutoff`; returns how many (retention).
    pub fn prune_done(&self, cutoff: Timestamp) -> Result<usize, EngineError> {
        let old: Vec<u64> = self
            .book
            .lock()
            .values()
            .filter(|w| {
                w.state == WorkOrderState::Done && w.done.as_ref().is_some_and(|d| d.at < cutoff)
            })
            .map(|w| w.id)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let next = self.next_id.load(Ordering::SeqCst);
        self.store
            .put_record(SEQ_RECORD, "next", &next.to_string())?;
        for id in &old {
            self.store.delete_record(RECORD, &format!("{id:012}"))?;
            self.book.lock().remove(id);
        }
        Ok(old.len())
    }

    /// Work orders matching `q`, newest first.
    pub fn query(&self, q: &WorkOrderQuery) -> Vec<WorkOrder> {
        self.book
            .lock()
            .values()
            .rev()
            .filter(|w| q.states.as_ref().is_none_or(|s| s.contains(&w.state)))
            .filter(|w| {
                q.asset_prefix
                    .as_deref()
                    .is_none_or(|p| gemba_core::is_under(&w.machine, p))
            })
            .filter(|w| {
                q.assignee
                    .as_deref()
                    .is_none_or(|a| w.assignee.as_deref() == Some(a))
            })
            .take(q.limit.max(1))
            .cloned()
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<WorkOrder> {
        self.book.lock().get(&id).cloned()
    }

    /// The work order raised from an alarm, if any.
    pub fn for_alarm(&self, alarm: u64) -> Option<WorkOrder> {
        self.book
            .lock()
            .values()
            .find(|w| w.alarm == Some(alarm))
            .cloned()
    }

    /// Applies `assign`, `start`, `done`, `note` or `parts` (blocking: persists).
    pub fn act(
        &self,
        id: u64,
        action: WorkOrderStep,
        a: WorkOrderAction,
        now: Timestamp,
    ) -> Result<WorkOrder, EngineError> {
        let by = check_text("by", &a.by, 128)?;
        for (i, p) in a.parts.iter().enumerate() {
            check_text(&format!("parts[{i}].name"), &p.name, 128)?;
            if !p.quantity.is_finite() || p.quantity <= 0.0 {
                return Err(invalid(
                    &format!("parts[{i}].quantity"),
                    format!("{} must be a finite number > 0", p.quantity),
                ));
            }
        }
        let mut book = self.book.lock();
        let w = book
            .get_mut(&id)
            .ok_or(EngineError::WorkOrder(WorkOrderError::Unknown(id)))?;
        let conflict = |w: &WorkOrder, what: &'static str, need: &'static str| {
            EngineError::WorkOrder(WorkOrderError::NotNow {
                id,
                state: w.state.name(),
                what,
                need,
            })
        };
        let stamp = Stamp {
            by: by.clone(),
            at: now,
        };
        let what = match action {
            WorkOrderStep::Assign => {
                if !matches!(w.state, WorkOrderState::Open | WorkOrderState::Assigned) {
                    return Err(conflict(w, "assigned", "open or assigned"));
                }
                let who = a
                    .assignee
                    .as_deref()
                    .ok_or_else(|| invalid("assignee", "who is to do it is required"))?;
                w.assignee = Some(check_text("assignee", who, 128)?);
                w.state = WorkOrderState::Assigned;
                "assigned"
            }
            WorkOrderStep::Start => {
                if w.state != WorkOrderState::Assigned {
                    return Err(conflict(w, "started", "assigned"));
                }
                w.started = Some(stamp);
                w.state = WorkOrderState::InProgress;
                "started"
            }
            WorkOrderStep::Done => {
                if w.state != WorkOrderState::InProgress {
                    return Err(conflict(w, "done", "in_progress"));
                }
                w.done = Some(stamp);
                w.state = WorkOrderState::Done;
                "done"
            }
            WorkOrderStep::Note => {
                if a.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
                    return Err(invalid("text", "a note needs text"));
                }
                "note"
            }
            WorkOrderStep::Parts => {
                if a.parts.is_empty() {
                    return Err(invalid("parts", "at least one part is required"));
                }
                if w.state == WorkOrderState::Done {
                    return Err(conflict(w, "given parts", "not done"));
                }
                "part"
            }
        };
        w.parts.extend(a.parts.iter().cloned());
        if let Some(t) = a.text.as_deref().filter(|t| !t.trim().is_empty()) {
            w.notes.push(Note {
                by: by.clone(),
                at: now,
                text: check_text("text", t, 4096)?,
            });
        }
        w.history.push(Step {
            at: now,
            what: what.into(),
            by,
        });
        let out = w.clone();
        self.persist(&out)?;
        Ok(out)
    }
}

/// MTBF, MTTR and the maintenance history of a machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineMaintenance {
    pub machine: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Breakdowns (down states with a failure reason) that began in the range.
    pub breakdowns: u32,
    /// `custom:failure` events in the range.
    pub failure_events: usize,
    pub operating_s: f64,
    pub breakdown_s: f64,
    /// Operating time / breakdowns.
    pub mtbf_s: Option<f64>,
    /// Breakdown time / breakdowns.
    pub mttr_s: Option<f64>,
    /// Mean in_progress → done of the work orders done in the range.
    pub mean_repair_s: Option<f64>,
    /// Mean created → done.
    pub mean_lead_s: Option<f64>,
    pub work_orders: Vec<WorkOrder>,
    /// Failure events (ts, mode).
    pub failures: Vec<serde_json::Value>,
}

impl crate::Engine {
    /// The work-order book.
    pub fn maintenance(&self) -> &Maintenance {
        &self.maintenance
    }

    /// Creates a work order by hand or from an alarm (blocking: persists).
    pub fn create_work_order(&self, n: NewWorkOrder) -> Result<WorkOrder, EngineError> {
        let by = check_text("by", &n.by, 128)?;
        let alarm = match n.alarm {
            Some(id) => Some(
                self.alarms
                    .get(id)
                    .ok_or_else(|| invalid("alarm", format!("unknown alarm {id}")))?,
            ),
            None => None,
        };
        if let Some(a) = &alarm
            && let Some(w) = self.maintenance.for_alarm(a.id)
        {
            return Err(EngineError::WorkOrder(WorkOrderError::AlarmHasOne {
                alarm: a.id,
                work_order: w.id,
            }));
        }
        let machine = n
            .machine
            .clone()
            .or_else(|| alarm.as_ref().map(|a| a.asset.clone()))
            .ok_or_else(|| invalid("machine", "the machine is required (or an alarm)"))?;
        let machine = machine.trim_end_matches('/').to_owned();
        if self.registry.node(&machine).is_none() {
            return Err(invalid("machine", format!("unknown machine {machine:?}")));
        }
        let title = match (&n.title, &alarm) {
            (Some(t), _) => check_text("title", t, 256)?,
            (None, Some(a)) => format!("{}: {}", a.rule, a.message),
            (None, None) => return Err(invalid("title", "a title is required")),
        };
        let description = n
            .description
            .as_deref()
            .map(|d| check_text("description", d, 8192))
            .transpose()?;
        let assignee = n
            .assignee
            .as_deref()
            .map(|d| check_text("assignee", d, 128))
            .transpose()?;
        let now = self.now();
        let m = &self.maintenance;
        let mut book = m.book.lock();
        let id = m.next_id.fetch_add(1, Ordering::AcqRel);
        let mut w = WorkOrder {
            id,
            machine,
            title,
            description,
            state: WorkOrderState::Open,
            alarm: alarm.map(|a| a.id),
            assignee: None,
            created: Stamp {
                by: by.clone(),
                at: now,
            },
            started: None,
            done: None,
            parts: Vec::new(),
            notes: Vec::new(),
            history: vec![Step {
                at: now,
                what: "created".into(),
                by: by.clone(),
            }],
        };
        if let Some(a) = assignee {
            w.assignee = Some(a);
            w.state = WorkOrderState::Assigned;
            w.history.push(Step {
                at: now,
                what: "assigned".into(),
                by,
            });
        }
        m.persist(&w)?;
        book.insert(id, w.clone());
        Ok(w)
    }

    /// Raises a work order for every alarm at or above `min` that has none (blocking).
    /// Returns how many were made.
    pub fn raise_work_orders(&self, min: Severity) -> Result<usize, EngineError> {
        let alarms = self.alarms.query(&AlarmQuery {
            min_severity: Some(min),
            limit: 100_000,
            ..AlarmQuery::default()
        });
        let mut made = 0;
        for a in alarms {
            if self.maintenance.for_alarm(a.id).is_some() || self.registry.node(&a.asset).is_none()
            {
                continue;
            }
            match self.create_work_order(NewWorkOrder {
                machine: None,
                title: None,
                description: Some(format!(
                    "raised automatically from {:?} alarm {} ({})",
                    a.severity, a.id, a.rule
                )),
                alarm: Some(a.id),
                assignee: None,
                by: "gemba".into(),
            }) {
                Ok(_) => made += 1,
                Err(EngineError::WorkOrder(WorkOrderError::AlarmHasOne { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(made)
    }

    /// Every second, raises work orders for new alarms at or above `min` (until the engine is
    /// dropped). Cheap when nothing changed: it looks at the alarm book's version first.
    pub fn spawn_work_order_raiser(self: &Arc<Self>, min: Severity) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen = 0;
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                let v = engine.alarms.version();
                if v == seen {
                    continue;
                }
                seen = v;
                let e = engine.clone();
                match tokio::task::spawn_blocking(move || e.raise_work_orders(min)).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(made = n, "work orders raised from alarms")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "raising work orders failed"),
                    Err(e) => tracing::warn!(error = %e, "work-order task failed"),
                }
            }
        })
    }

    /// MTBF, MTTR and history of one machine over `[from, to)` (blocking).
    pub fn machine_maintenance(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<MachineMaintenance, EngineError> {
        let machine = machine.trim_end_matches('/');
        match self.registry.node(machine) {
            Some(n) if n.level == gemba_core::Level::Machine => {}
            _ => return Err(invalid("machine", format!("unknown machine {machine:?}"))),
        }
        let r = self.oee(machine, from, to, crate::production::By::Total)?;
        let t = &r.total;
        let failures: Vec<serde_json::Value> = self
            .store
            .events(&EventQuery {
                from: r.from,
                to: r.to,
                asset_prefix: Some(machine.to_owned()),
                kind: Some("custom:failure".into()),
                limit: 100_000,
            })?
            .into_iter()
            .filter(|e| e.event.asset == machine)
            .map(|e| {
                serde_json::json!({
                    "ts": e.event.ts,
                    "mode": e.event.attrs.get("mode").cloned().unwrap_or_default(),
                })
            })
            .collect();
        let work_orders: Vec<WorkOrder> = self.maintenance.query(&WorkOrderQuery {
            asset_prefix: Some(machine.to_owned()),
            limit: 100_000,
            ..WorkOrderQuery::default()
        });
        let done: Vec<&WorkOrder> = work_orders
            .iter()
            .filter(|w| {
                w.done
                    .as_ref()
                    .is_some_and(|d| d.at >= r.from && d.at < r.to)
            })
            .collect();
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let mean_repair_s = mean(
            done.iter()
                .filter_map(|w| {
                    Some((w.done.as_ref()?.at - w.started.as_ref()?.at) as f64 / 1000.0)
                })
                .collect(),
        );
        let mean_lead_s = mean(
            done.iter()
                .filter_map(|w| Some((w.done.as_ref()?.at - w.created.at) as f64 / 1000.0))
                .collect(),
        );
        let n = t.failures;
        Ok(MachineMaintenance {
            machine: machine.to_owned(),
            from: r.from,
            to: r.to,
            breakdowns: n,
            failure_events: failures.len(),
            operating_s: t.operating_s,
            breakdown_s: t.losses.breakdowns_s,
            mtbf_s: (n > 0).then(|| t.operating_s / f64::from(n)),
            mttr_s: (n > 0).then(|| t.losses.breakdowns_s / f64::from(n)),
            mean_repair_s,
            mean_lead_s,
            work_orders,
            failures,
        })
    }
}
