//! The durable outbox: one store record (`notify_delivery`) per (delivery id, channel), written
//! before the first attempt and after every attempt; one sending thread per channel.
//!
//! A channel sends its pending deliveries oldest first, one at a time: while the head fails, the
//! ones behind it wait, so a receiver sees the changes of an alarm in the order they happened.
//! After a failed attempt the head waits `first_backoff · 2^(attempts−1)`, at most
//! `notify.max_backoff_s`. A pending delivery older than `notify.max_age_s` (or past its channel's
//! `attempts`) becomes `expired`. Sent and expired deliveries are deleted `notify.keep_days` after
//! their alarm change. A restart loads every record and goes on where it stopped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gemba_core::{Clock, Timestamp};
use gemba_store::Store;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use super::{ChannelKind, Notification, Notifier, NotifyConfig, NotifyError};
use crate::alarms::Severity;
use crate::metrics::Metrics;

const RECORD: &str = "notify_delivery";
/// How often an idle channel looks for expired and old deliveries.
const HOUSEKEEPING_MS: i64 = 60_000;
/// The longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 500;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not yet accepted by the receiver; retried.
    Pending,
    Sent,
    /// Given up: older than `notify.max_age_s`, past the channel's `attempts`, or its channel is
    /// no longer configured.
    Expired,
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "sent" => Ok(DeliveryState::Sent),
            "expired" => Ok(DeliveryState::Expired),
            _ => Err(format!("{s:?} is not a state: pending, sent or expired")),
        }
    }
}

/// One notification for one channel (a row of the outbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery id: the same for every channel and every attempt of one notification.
    pub id: String,
    /// Order of the notification in the outbox.
    pub seq: u64,
    pub channel: String,
    pub kind: ChannelKind,
    pub state: DeliveryState,
    pub attempts: u32,
    /// Wall time of the alarm change (when it was queued).
    pub created_at: Timestamp,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub notification: Notification,
}

impl Delivery {
    fn key(&self) -> String {
        format!("{:012}/{}", self.seq, self.channel)
    }
}

/// A delivery as the API shows it: everything but the alarm payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliverySummary {
    pub id: String,
    pub channel: String,
    pub kind: ChannelKind,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub event: super::AlarmEvent,
    pub alarm_id: u64,
    pub rule: String,
    pub severity: Severity,
    pub asset: String,
}

impl From<&Delivery> for DeliverySummary {
    fn from(d: &Delivery) -> Self {
        DeliverySummary {
            id: d.id.clone(),
            channel: d.channel.clone(),
            kind: d.kind,
            state: d.state,
            attempts: d.attempts,
            created_at: d.created_at,
            next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
            last_attempt_at: d.last_attempt_at,
            sent_at: d.sent_at,
            last_error: d.last_error.clone(),
            event: d.notification.event,
            alarm_id: d.notification.alarm_id,
            rule: d.notification.rule.clone(),
            severity: d.notification.severity,
            asset: d.notification.asset.clone(),
        }
    }
}

/// Filter of [`Outbox::query`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryQuery {
    pub state: Option<DeliveryState>,
    pub channel: Option<String>,
    pub alarm_id: Option<u64>,
    pub limit: usize,
}

/// The deliveries of one notification, made but not yet stored or queued ([`Outbox::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    rows: Vec<Delivery>,
}

impl Prepared {
    /// The deliveries as store records `(kind, key, JSON)`, for the caller's transaction. A
    /// delivery that cannot be serialised is left out (logged; it is still sent from memory).
    pub fn records(&self) -> Vec<(&'static str, String, String)> {
        self.rows
            .iter()
            .filter_map(|d| match serde_json::to_string(d) {
                Ok(json) => Some((RECORD, d.key(), json)),
                Err(e) => {
                    tracing::error!(error = %e, delivery = %d.id, "cannot serialise a notification");
                    None
                }
            })
            .collect()
    }
}

/// How many deliveries are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: usize,
    pub sent: usize,
    pub expired: usize,
}

/// The outbox's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxOptions {
    pub max_age_ms: i64,
    pub max_backoff_ms: u64,
    pub keep_ms: i64,
}

impl From<&NotifyConfig> for OutboxOptions {
    fn from(c: &NotifyConfig) -> Self {
        OutboxOptions {
            max_age_ms: i64::try_from(c.max_age_s.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_backoff_ms: c.max_backoff_s.saturating_mul(1000),
            keep_ms: i64::from(c.keep_days) * 86_400_000,
        }
    }
}

/// Wait after the `attempts`-th failed attempt: `first · 2^(attempts−1)`, at most `max`.
pub fn backoff_ms(first: u64, attempts: u32, max: u64) -> u64 {
    let doublings = attempts.saturating_sub(1).min(62);
    first.saturating_mul(1u64 << doublings).min(max).max(1)
}

#[derive(Debug, Default)]
struct Rows {
    map: BTreeMap<(u64, String), Delivery>,
    /// Bumped by every enqueue and by `poke`, so a channel never sleeps through new work.
    generation: u64,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    notifiers: Vec<Arc<dyn Notifier>>,
    rows: Mutex<Rows>,
    wake: Condvar,
    next_seq: AtomicU64,
    opts: OutboxOptions,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

/// The outbox and its channel threads (which stop when the outbox is dropped).
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// Loads the stored deliveries and starts one thread per channel.
    pub fn start(
        store: Arc<dyn Store>,
        notifiers: Vec<Arc<dyn Notifier>>,
        opts: OutboxOptions,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Outbox, NotifyError> {
        let now = clock.now_ms();
        let mut map = BTreeMap::new();
        let mut orphans = Vec::new();
        let mut next_seq = 1;
        for (key, json) in store.records(RECORD)? {
            let mut d: Delivery = match serde_json::from_str(&json) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "an unreadable stored notification is left out");
                    continue;
                }
            };
            next_seq = next_seq.max(d.seq + 1);
            if d.state != DeliveryState::Pending && now - d.created_at > opts.keep_ms {
                if let Err(e) = store.delete_record(RECORD, &key) {
                    tracing::warn!(key = %key, error = %e, "cannot delete an old notification");
                }
                continue;
            }
            if d.state == DeliveryState::Pending && !notifiers.iter().any(|n| n.name() == d.channel)
            {
                finish(&mut d, DeliveryState::Expired, now);
                d.last_error = Some(format!("the channel {} is no longer configured", d.channel));
                orphans.push(d.clone());
            }
            map.insert((d.seq, d.channel.clone()), d);
        }
        let shared = Arc::new(Shared {
            store,
            notifiers,
            rows: Mutex::new(Rows {
                map,
                ..Rows::default()
            }),
            wake: Condvar::new(),
            next_seq: AtomicU64::new(next_seq),
            opts,
            metrics,
            clock,
        });
        shared.persist(&orphans);
        shared.refresh_gauges(&shared.rows.lock());
        for i in 0..shared.notifiers.len() {
            let s = shared.clone();
            let channel = s.notifiers[i].name().to_owned();
            std::thread::Builder::new()
                .name(format!("gemba-notify-{channel}"))
                .spawn(move || run_channel(&s, i))
                .map_err(|e| NotifyError::Thread {
                    channel,
                    reason: e.to_string(),
                })?;
        }
        Ok(Outbox { shared })
    }

    /// Whether any channel is configured.
    pub fn has_channels(&self) -> bool {
        !self.shared.notifiers.is_empty()
    }

    /// Stores one delivery per channel whose route takes `n` (one transaction), then wakes those
    /// channels. Blocking (a store write); never fails: a store error is logged and the
    /// deliveries are still sent from memory. (An alarm change stores its deliveries in the
    /// alarm's own transaction instead: [`Outbox::prepare`], [`Outbox::accept`].)
    pub fn enqueue(&self, n: &Notification) {
        let prepared = self.prepare(n);
        self.shared.persist(&prepared.rows);
        self.accept(prepared);
    }

    /// The deliveries of `n`, one per channel whose route takes it, made but neither stored nor
    /// queued: the caller stores [`Prepared::records`] in the transaction of what caused them,
    /// then hands them to [`Outbox::accept`].
    pub fn prepare(&self, n: &Notification) -> Prepared {
        let s = &self.shared;
        let targets: Vec<&Arc<dyn Notifier>> = s
            .notifiers
            .iter()
            .filter(|c| c.route().accepts(n))
            .collect();
        if targets.is_empty() {
            return Prepared { rows: Vec::new() };
        }
        let seq = s.next_seq.fetch_add(1, Ordering::AcqRel);
        let id = delivery_id(seq);
        let now = s.clock.now_ms();
        let rows = targets
            .iter()
            .map(|c| Delivery {
                id: id.clone(),
                seq,
                channel: c.name().to_owned(),
                kind: c.kind(),
                state: DeliveryState::Pending,
                attempts: 0,
                created_at: now,
                next_attempt_at: now,
                last_attempt_at: None,
                sent_at: None,
                last_error: None,
                notification: n.clone(),
            })
            .collect();
        Prepared { rows }
    }

    /// Queues prepared deliveries (already stored by the caller) and wakes their channels.
    pub fn accept(&self, prepared: Prepared) {
        if prepared.rows.is_empty() {
            return;
        }
        let s = &self.shared;
        let mut guard = s.rows.lock();
        for d in prepared.rows {
            guard.map.insert((d.seq, d.channel.clone()), d);
        }
        guard.generation += 1;
        s.refresh_gauges(&guard);
        drop(guard);
        s.wake.notify_all();
    }

    /// Deliveries matching `q`, newest first, and the counts of all deliveries by state.
    pub fn query(&self, q: &DeliveryQuery) -> (Vec<DeliverySummary>, OutboxCounts) {
        let rows = self.shared.rows.lock();
        let list = rows
            .map
            .values()
            .rev()
            .filter(|d| q.state.is_none_or(|s| d.state == s))
            .filter(|d| q.channel.as_deref().is_none_or(|c| d.channel == c))
            .filter(|d| q.alarm_id.is_none_or(|a| d.notification.alarm_id == a))
            .take(q.limit.max(1))
            .map(DeliverySummary::from)
            .collect();
        (list, counts(&rows))
    }

    /// The configured channels: (name, kind).
    pub fn channels(&self) -> Vec<(String, ChannelKind)> {
        self.shared
            .notifiers
            .iter()
            .map(|n| (n.name().to_owned(), n.kind()))
            .collect()
    }

    /// Makes every channel look at its deliveries now (tests move a manual clock, then poke).
    pub fn poke(&self) {
        self.shared.rows.lock().generation += 1;
        self.shared.wake.notify_all();
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.rows.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

fn counts(rows: &Rows) -> OutboxCounts {
    let mut c = OutboxCounts::default();
    for d in rows.map.values() {
        match d.state {
            DeliveryState::Pending => c.pending += 1,
            DeliveryState::Sent => c.sent += 1,
            DeliveryState::Expired => c.expired += 1,
        }
    }
    c
}

/// Marks a delivery done and drops its payload.
fn finish(d: &mut Delivery, state: DeliveryState, now: Timestamp) {
    d.state = state;
    if state == DeliveryState::Sent {
        d.sent_at = Some(now);
    }
    d.notification.alarm = serde_json::Value::Null;
}

/// A new delivery id: `gemba-` and 32 hex digits from the system's random source (the outbox's
/// sequence and the time if that fails), unique across restarts and installations.
fn delivery_id(seq: u64) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..8].copy_from_slice(&seq.to_be_bytes());
        bytes[8..].copy_from_slice(&(t as u64).to_be_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("gemba-{hex}")
}

/// What a channel does next.
enum Step {
    Send(Box<Delivery>),
    /// Sleep until woken or this long has passed.
    Wait(Duration, u64),
    Stop,
}

impl Shared {
    fn persist(&self, rows: &[Delivery]) {
        if rows.is_empty() {
            return;
        }
        let records: Result<Vec<(String, String)>, _> = rows
            .iter()
            .map(|d| serde_json::to_string(d).map(|j| (d.key(), j)))
            .collect();
        let result = match records {
            Ok(r) => self
                .store
                .put_records(RECORD, &r)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, delivery = %rows[0].id, "cannot store a notification");
        }
    }

    fn refresh_gauges(&self, rows: &Rows) {
        let c = counts(rows);
        self.metrics.notify_pending.set(c.pending as i64);
        self.metrics.notify_expired.set(c.expired as i64);
    }

    /// Expires this channel's overdue deliveries, deletes its old finished ones and picks what to
    /// do next.
    fn next_step(&self, channel: &str, max_attempts: Option<u32>, housekeeping: bool) -> Step {
        let now = self.clock.now_ms();
        let mut rows = self.rows.lock();
        if rows.stop {
            return Step::Stop;
        }
        let mut expired = Vec::new();
        let mut old = Vec::new();
        for d in rows.map.values_mut().filter(|d| d.channel == channel) {
            match d.state {
                DeliveryState::Pending
                    if now - d.created_at > self.opts.max_age_ms
                        || max_attempts.is_some_and(|m| d.attempts >= m) =>
                {
                    finish(d, DeliveryState::Expired, now);
                    if d.last_error.is_none() {
                        d.last_error = Some("given up before any attempt".into());
                    }
                    expired.push(d.clone());
                }
                DeliveryState::Sent | DeliveryState::Expired
                    if housekeeping && now - d.created_at > self.opts.keep_ms =>
                {
                    old.push((d.seq, d.channel.clone()));
                }
                _ => {}
            }
        }
        for k in &old {
            rows.map.remove(k);
        }
        let step = match rows
            .map
            .values()
            .find(|d| d.channel == channel && d.state == DeliveryState::Pending)
        {
            Some(d) if d.next_attempt_at <= now => Step::Send(Box::new(d.clone())),
            Some(d) => Step::Wait(
                Duration::from_millis(u64::try_from(d.next_attempt_at - now).unwrap_or(1)),
                rows.generation,
            ),
            None => Step::Wait(
                Duration::from_millis(HOUSEKEEPING_MS as u64),
                rows.generation,
            ),
        };
        if !expired.is_empty() || !old.is_empty() {
            self.refresh_gauges(&rows);
        }
        drop(rows);
        if !expired.is_empty() {
            tracing::error!(channel, count = expired.len(), "notifications given up");
            for d in &expired {
                if d.kind == ChannelKind::Webhook {
                    self.metrics.webhooks_failed.inc();
                }
            }
            self.persist(&expired);
        }
        for (seq, ch) in &old {
            if let Err(e) = self.store.delete_record(RECORD, &format!("{seq:012}/{ch}")) {
                tracing::warn!(error = %e, "cannot delete an old notification");
            }
        }
        step
    }

    /// Records the outcome of one attempt.
    fn record(&self, n: &dyn Notifier, sent: &Delivery, result: Result<(), super::SendError>) {
        let now = self.clock.now_ms();
        let mut rows = self.rows.lock();
        let Some(d) = rows.map.get_mut(&(sent.seq, sent.channel.clone())) else {
            return;
        };
        d.attempts += 1;
        d.last_attempt_at = Some(now);
        match &result {
            Ok(()) => {
                finish(d, DeliveryState::Sent, now);
                self.metrics.notify_sent.inc();
                if d.kind == ChannelKind::Webhook {
                    self.metrics.webhooks_sent.inc();
                }
            }
            Err(e) => {
                let mut msg = e.to_string();
                if let Some((cut, _)) = msg.char_indices().nth(MAX_ERROR_CHARS) {
                    msg.truncate(cut);
                }
                let wait = backoff_ms(n.first_backoff_ms(), d.attempts, self.opts.max_backoff_ms);
                d.next_attempt_at = now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX));
                self.metrics.notify_attempts_failed.inc();
                tracing::warn!(
                    channel = %d.channel, delivery = %d.id, attempt = d.attempts,
                    retry_in_ms = wait, error = %msg, "notification failed"
                );
                d.last_error = Some(msg);
            }
        }
        let copy = d.clone();
        self.refresh_gauges(&rows);
        drop(rows);
        self.persist(std::slice::from_ref(&copy));
    }
}

fn run_channel(s: &Shared, index: usize) {
    let n = s.notifiers[index].clone();
    let channel = n.name().to_owned();
    let mut last_housekeeping = i64::MIN;
    loop {
        let now = s.clock.now_ms();
        let housekeeping = now.saturating_sub(last_housekeeping) >= HOUSEKEEPING_MS;
        if housekeeping {
            last_housekeeping = now;
        }
        match s.next_step(&channel, n.max_attempts(), housekeeping) {
            Step::Stop => return,
            Step::Send(d) => {
                let result = n.send(&d);
                s.record(n.as_ref(), &d, result);
            }
            Step::Wait(dur, generation) => {
                let mut rows = s.rows.lock();
                if rows.generation == generation && !rows.stop {
                    s.wake.wait_for(&mut rows, dur);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alarms::AlarmState;
    use crate::notify::{AlarmEvent, Route, SendError};
    use gemba_core::ManualClock;
    use gemba_store::sqlite::{SqliteOptions, SqliteStore};
    use std::time::Instant;

    pub(crate) fn delivery(id: &str, seq: u64, channel: &str) -> Delivery {
        Delivery {
            id: id.into(),
            seq,
            channel: channel.into(),
            kind: ChannelKind::Email,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: 0,
            next_attempt_at: 0,
            last_attempt_at: None,
            sent_at: None,
            last_error: None,
            notification: note(Severity::High, "s1/a1/l1/m1"),
        }
    }

    fn note(severity: Severity, asset: &str) -> Notification {
        Notification {
            event: AlarmEvent::Raised,
            alarm_id: 7,
            rule: "hot".into(),
            severity,
            asset: asset.into(),
            signal: None,
            state: AlarmState::Active,
            message: "too hot".into(),
            raised_at: 0,
            alarm: serde_json::json!({"id": 7}),
        }
    }

    /// A channel that fails while `down` is set and records what it delivered.
    #[derive(Debug)]
    struct Fake {
        name: String,
        route: Route,
        down: Mutex<bool>,
        got: Mutex<Vec<(String, u64)>>,
        tries: AtomicU64,
        max_attempts: Option<u32>,
    }

    impl Fake {
        fn new(name: &str, min_severity: Severity, down: bool) -> Arc<Fake> {
            Arc::new(Fake {
                name: name.into(),
                route: Route {
                    min_severity,
                    asset_prefix: None,
                },
                down: Mutex::new(down),
                got: Mutex::new(Vec::new()),
                tries: AtomicU64::new(0),
                max_attempts: None,
            })
        }
    }

    impl Notifier for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        fn kind(&self) -> ChannelKind {
            ChannelKind::Webhook
        }
        fn route(&self) -> &Route {
            &self.route
        }
        fn max_attempts(&self) -> Option<u32> {
            self.max_attempts
        }
        fn send(&self, d: &Delivery) -> Result<(), SendError> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            if *self.down.lock() {
                return Err(SendError::Status(503));
            }
            self.got
                .lock()
                .push((d.id.clone(), d.notification.alarm_id));
            Ok(())
        }
    }

    const T0: i64 = 1_767_225_600_000;

    fn opts() -> OutboxOptions {
        OutboxOptions {
            max_age_ms: 3_600_000,
            max_backoff_ms: 300_000,
            keep_ms: 86_400_000,
        }
    }

    fn store(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.join("t.db"), SqliteOptions::default()).expect("store"))
    }

    fn start(
        store: &Arc<dyn Store>,
        fakes: &[Arc<Fake>],
        clock: &Arc<ManualClock>,
    ) -> (Outbox, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let notifiers = fakes
            .iter()
            .map(|f| f.clone() as Arc<dyn Notifier>)
            .collect();
        let o = Outbox::start(
            store.clone(),
            notifiers,
            opts(),
            metrics.clone(),
            clock.clone(),
        )
        .expect("outbox");
        (o, metrics)
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn all(o: &Outbox) -> Vec<DeliverySummary> {
        o.query(&DeliveryQuery {
            limit: 1000,
            ..DeliveryQuery::default()
        })
        .0
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let waits: Vec<u64> = (1..=12).map(|a| backoff_ms(1000, a, 300_000)).collect();
        assert_eq!(
            waits,
            [
                1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000,
                300_000
            ]
        );
        assert_eq!(backoff_ms(500, u32::MAX, 300_000), 300_000);
        assert_eq!(backoff_ms(50, 1, 300_000), 50);
    }

    #[test]
    fn routes_pick_channels_and_every_channel_gets_the_same_id() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let clock = Arc::new(ManualClock::new(T0));
        let all_hook = Fake::new("all", Severity::Low, false);
        let high = Fake::new("high", Severity::High, false);
        let (o, _) = start(&store, &[all_hook.clone(), high.clone()], &clock);
        o.enqueue(&note(Severity::Medium, "s1"));
        o.enqueue(&note(Severity::Critical, "s1"));
        wait_until("three deliveries", || {
            all_hook.got.lock().len() == 2 && high.got.lock().len() == 1
        });
        let (all_got, high_got) = (all_hook.got.lock().clone(), high.got.lock().clone());
        assert_eq!(high_got[0].0, all_got[1].0);
        assert_ne!(all_got[0].0, all_got[1].0);
        wait_until("all sent", || {
            o.query(&DeliveryQuery {
                limit: 10,
                ..DeliveryQuery::default()
            })
            .1 == OutboxCounts {
                pending: 0,
                sent: 3,
                expired: 0,
            }
        });
    }

    /// An alarm change stores its deliveries in its own transaction: `prepare` stores nothing,
    /// the records go with the caller's (here a stand-in "alarm" record), `accept` sends them,
    /// and a restart before sending finds them in the store.
    #[test]
    fn prepared_deliveries_go_in_the_callers_transaction() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let clock = Arc::new(ManualClock::new(T0));
        let hook = Fake::new("hook", Severity::Low, true);
        let (o, _) = start(&store, std::slice::from_ref(&hook), &clock);
        let prepared = o.prepare(&note(Severity::High, "s1"));
        assert!(store.records(RECORD).expect("records").is_empty());
        let mut records = vec![("alarm", "000000000007".to_owned(), "{}".to_owned())];
        records.extend(prepared.records());
        assert_eq!(records.len(), 2);
        store
            .put_records_of_kinds(&records)
            .expect("one transaction");
        o.accept(prepared);
        wait_until("a first attempt", || hook.tries.load(Ordering::SeqCst) >= 1);
        assert_eq!(store.records(RECORD).expect("records").len(), 1);
        assert_eq!(store.records("alarm").expect("records").len(), 1);
        // Restarted with the receiver back: the stored delivery is sent.
        drop(o);
        *hook.down.lock() = false;
        clock.advance(600_000);
        let (_o, _) = start(&store, std::slice::from_ref(&hook), &clock);
        wait_until("delivered after the restart", || hook.got.lock().len() == 1);
        // No channel takes it: nothing prepared, nothing to store.
        let none = Fake::new("none", Severity::Critical, false);
        let (o2, _) = start(&store, std::slice::from_ref(&none), &clock);
        assert!(o2.prepare(&note(Severity::Low, "s1")).records().is_empty());
    }

    #[test]
    fn a_receiver_down_across_a_restart_gets_everything_once_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let clock = Arc::new(ManualClock::new(T0));
        let hook = Fake::new("hook", Severity::Low, true);
        let (o, metrics) = start(&store, std::slice::from_ref(&hook), &clock);
        for id in 1..=3 {
            let mut n = note(Severity::High, "s1");
            n.alarm_id = id;
            o.enqueue(&n);
        }
        // Stored before the first attempt.
        assert_eq!(store.records(RECORD).expect("records").len(), 3);
        wait_until("the first attempt", || {
            hook.tries.load(Ordering::SeqCst) >= 1
        });
        // The head waits 1 s (manual clock); the others wait behind it.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(hook.tries.load(Ordering::SeqCst), 1);
        clock.advance(1000);
        o.poke();
        wait_until("the second attempt", || {
            hook.tries.load(Ordering::SeqCst) >= 2
        });
        wait_until("recorded", || all(&o).iter().any(|d| d.attempts == 2));
        let head = all(&o).into_iter().find(|d| d.attempts == 2).expect("head");
        assert_eq!(head.alarm_id, 1);
        assert_eq!(head.next_attempt_at, Some(T0 + 1000 + 2000));
        assert_eq!(
            head.last_error.as_deref(),
            Some("the receiver answered HTTP 503")
        );
        assert_eq!(metrics.notify_pending.get(), 3);
        let ids: Vec<String> = all(&o).iter().rev().map(|d| d.id.clone()).collect();

        // "Restart": a new outbox on the same store; the receiver is back.
        drop(o);
        *hook.down.lock() = false;
        let before = hook.tries.load(Ordering::SeqCst);
        clock.advance(600_000);
        let (o, metrics) = start(&store, std::slice::from_ref(&hook), &clock);
        wait_until("all delivered", || hook.got.lock().len() == 3);
        std::thread::sleep(Duration::from_millis(50));
        let got = hook.got.lock().clone();
        assert_eq!(
            got.iter().map(|g| g.1).collect::<Vec<_>>(),
            [1, 2, 3],
            "in order"
        );
        assert_eq!(
            got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
            ids,
            "the same ids"
        );
        assert_eq!(hook.tries.load(Ordering::SeqCst) - before, 3, "once each");
        wait_until("gauges", || metrics.notify_pending.get() == 0);
        assert_eq!(metrics.webhooks_sent.get(), 3);
        // Sent rows are stored as sent, without the payload: another restart sends nothing.
        drop(o);
        let (o, _) = start(&store, std::slice::from_ref(&hook), &clock);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(hook.got.lock().len(), 3);
        assert!(all(&o).iter().all(|d| d.state == DeliveryState::Sent));
        let stored: Vec<Delivery> = store
            .records(RECORD)
            .expect("records")
            .iter()
            .map(|(_, j)| serde_json::from_str(j).expect("json"))
            .collect();
        assert!(stored.iter().all(|d| d.notification.alarm.is_null()));
    }

    #[test]
    fn old_deliveries_expire_and_unknown_channels_are_given_up() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let clock = Arc::new(ManualClock::new(T0));
        let hook = Fake::new("hook", Severity::Low, true);
        let gone = Fake::new("gone", Severity::Low, true);
        let (o, _) = start(&store, &[hook.clone(), gone.clone()], &clock);
        o.enqueue(&note(Severity::Low, "s1"));
        wait_until("first attempts", || {
            hook.tries.load(Ordering::SeqCst) == 1 && gone.tries.load(Ordering::SeqCst) == 1
        });
        drop(o);
        // The channel "gone" was removed from the configuration.
        let (o, metrics) = start(&store, std::slice::from_ref(&hook), &clock);
        let rows = all(&o);
        let g = rows.iter().find(|d| d.channel == "gone").expect("gone");
        assert_eq!(g.state, DeliveryState::Expired);
        assert!(
            g.last_error
                .as_deref()
                .unwrap_or("")
                .contains("no longer configured")
        );
        // An hour later the other one expires too.
        clock.advance(3_600_001);
        o.poke();
        wait_until("expired", || {
            all(&o).iter().all(|d| d.state == DeliveryState::Expired)
        });
        wait_until("counted", || metrics.webhooks_failed.get() == 1);
        wait_until("gauge", || metrics.notify_expired.get() == 2);
        // After keep_ms a running channel deletes its own from memory and the store ...
        clock.advance(86_400_000);
        std::thread::sleep(Duration::from_millis(20));
        o.poke();
        wait_until("pruned", || {
            store.records(RECORD).map(|r| r.len()).ok() == Some(1) && all(&o).len() == 1
        });
        // ... and a start deletes the rest (here: of the channel no longer configured).
        drop(o);
        let (o, _) = start(&store, std::slice::from_ref(&hook), &clock);
        assert!(all(&o).is_empty());
        assert!(store.records(RECORD).expect("records").is_empty());
    }

    #[test]
    fn a_channel_with_attempts_gives_up_after_them() {
        let dir = tempfile::tempdir().expect("dir");
        let store = store(dir.path());
        let clock = Arc::new(ManualClock::new(T0));
        let mut f = Fake::new("h", Severity::Low, true);
        Arc::get_mut(&mut f).expect("unique").max_attempts = Some(2);
        let (o, _) = start(&store, &[f.clone()], &clock);
        o.enqueue(&note(Severity::Low, "s1"));
        wait_until("one try", || f.tries.load(Ordering::SeqCst) == 1);
        clock.advance(1000);
        o.poke();
        wait_until("expired", || {
            all(&o).first().map(|d| d.state) == Some(DeliveryState::Expired)
        });
        assert_eq!(f.tries.load(Ordering::SeqCst), 2);
        assert_eq!(all(&o)[0].attempts, 2);
    }
}
