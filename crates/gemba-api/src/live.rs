//! The live stream `GET /api/v1/stream/latest` (server-sent events): one producer per server, any
//! number of connections (up to `server.max_streams`).
//!
//! Once a second the producer reads the engine's latest-value cache and the events stored since
//! its last look, compares the values with its previous reading and broadcasts what changed as one
//! [`Tick`], each value and event already rendered as JSON. A connection only filters a tick by its
//! prefix (a binary search in the sorted values) and writes the message: no store query, no copy
//! of the cache and no per-signal memory of its own. A connection that falls more than
//! [`TICKS_BUFFERED`] ticks behind is not buffered further: it gets a fresh full snapshot instead.
//! The message format is that of the dashboard (`web/api.js`): `{ts, full, latest, events}`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use gemba_core::{Timestamp, is_under};
use gemba_engine::{Engine, LatestValue};
use gemba_store::EventQuery;
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::error::ApiError;

/// How far back the producer looks for events it has not sent yet (late events are still sent
/// when they arrive within this window).
const EVENT_WINDOW_MS: i64 = 10 * 60_000;
/// Ticks a connection may fall behind before it is resynchronised with a full snapshot.
pub const TICKS_BUFFERED: usize = 8;
/// How often the producer looks.
const PERIOD: Duration = Duration::from_secs(1);
/// The largest message a connection builds (a larger snapshot or tick goes out in several, the
/// last with `"more": false`), so that a connection holds at most this much of its own however
/// many signals there are and however slowly it reads.
pub const MESSAGE_BYTES: usize = 64 * 1024;

/// JSON fragments sorted by a key (a signal path or an event's asset).
#[derive(Debug, Default)]
struct Rendered {
    items: Vec<(String, String)>,
}

impl Rendered {
    /// The index of the first fragment whose key may be `prefix` or below it.
    fn start(&self, prefix: &str) -> usize {
        if prefix.is_empty() {
            0
        } else {
            self.items.partition_point(|(k, _)| k.as_str() < prefix)
        }
    }
}

fn render_values<'a>(values: impl Iterator<Item = &'a LatestValue>) -> Rendered {
    Rendered {
        items: values
            .map(|v| {
                let json = serde_json::to_string(v).unwrap_or_default();
                (v.signal.clone(), json)
            })
            .collect(),
    }
}

/// What changed in one second, shared by every connection.
#[derive(Debug)]
pub struct Tick {
    seq: u64,
    ts: Timestamp,
    values: Rendered,
    /// Events (not sorted: in store order), keyed by asset.
    events: Vec<(String, String)>,
}

/// Every latest value at one tick, for a connection's first message and for resynchronising.
#[derive(Debug)]
struct Snapshot {
    seq: u64,
    ts: Timestamp,
    values: Vec<LatestValue>,
    /// Rendered on first use (most ticks no connection needs it).
    rendered: OnceLock<Rendered>,
}

impl Snapshot {
    fn rendered(&self) -> &Rendered {
        self.rendered
            .get_or_init(|| render_values(self.values.iter()))
    }
}

/// The producer's memory between ticks.
#[derive(Debug, Default)]
struct Producer {
    last_event_id: Option<i64>,
    seq: u64,
}

/// The live stream's producer and its subscribers; one per router.
#[derive(Debug)]
pub struct LiveHub {
    engine: Weak<Engine>,
    tx: broadcast::Sender<Arc<Tick>>,
    producer: tokio::sync::Mutex<Producer>,
    snapshot: RwLock<Arc<Snapshot>>,
    open: AtomicUsize,
    max: usize,
    started: std::sync::Once,
}

impl LiveHub {
    pub fn new(engine: &Arc<Engine>) -> Arc<LiveHub> {
        let (tx, _) = broadcast::channel(TICKS_BUFFERED);
        Arc::new(LiveHub {
            engine: Arc::downgrade(engine),
            tx,
            producer: tokio::sync::Mutex::new(Producer::default()),
            snapshot: RwLock::new(Arc::new(Snapshot {
                seq: 0,
                ts: i64::MIN,
                values: Vec::new(),
                rendered: OnceLock::new(),
            })),
            open: AtomicUsize::new(0),
            max: engine.config().server.max_streams,
            started: std::sync::Once::new(),
        })
    }

    /// Connections open now.
    pub fn open_streams(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// One producer step: read the cache and the new events, broadcast what changed.
    async fn step(&self, engine: &Engine, st: &mut Producer) {
        let mut values = engine.latest("");
        if !values.is_sorted_by(|a, b| a.signal <= b.signal) {
            values.sort_unstable_by(|a, b| a.signal.cmp(&b.signal));
        }
        let now = engine.now();
        let prev = self.snapshot.read().clone();
        let mut i = 0;
        let changed = values.iter().filter(|v| {
            while i < prev.values.len() && prev.values[i].signal < v.signal {
                i += 1;
            }
            !prev
                .values
                .get(i)
                .is_some_and(|p| p.signal == v.signal && p.ts == v.ts && p.value == v.value)
        });
        let rendered = render_values(changed);
        let events = engine
            .events(EventQuery {
                from: now - EVENT_WINDOW_MS,
                to: now + 60_000,
                asset_prefix: None,
                kind: None,
                limit: 10_000,
            })
            .await
            .unwrap_or_default();
        let max_id = events.iter().map(|e| e.id).max();
        let new_events: Vec<(String, String)> = match st.last_event_id {
            // Events start when the producer starts looking: its first step sends none.
            None => Vec::new(),
            Some(last) => events
                .iter()
                .filter(|e| e.id > last)
                .map(|e| {
                    let json = serde_json::to_string(e).unwrap_or_default();
                    (e.event.asset.clone(), json)
                })
                .collect(),
        };
        st.last_event_id = st.last_event_id.max(max_id).or(Some(0));
        st.seq += 1;
        *self.snapshot.write() = Arc::new(Snapshot {
            seq: st.seq,
            ts: now,
            values,
            rendered: OnceLock::new(),
        });
        // No receivers is not an error: the tick is simply not needed.
        let _ = self.tx.send(Arc::new(Tick {
            seq: st.seq,
            ts: now,
            values: rendered,
            events: new_events,
        }));
    }

    /// Starts the producer task (once); it stops when the engine is dropped.
    fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            let hub = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PERIOD);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    let Some(hub) = hub.upgrade() else { break };
                    let Some(engine) = hub.engine.upgrade() else {
                        break;
                    };
                    if hub.tx.receiver_count() == 0 {
                        // Nobody listens: no work. The next connection refreshes the snapshot.
                        continue;
                    }
                    let mut st = hub.producer.lock().await;
                    hub.step(&engine, &mut st).await;
                }
            });
        });
    }

    /// A subscription and a snapshot not older than one period (taken now when the producer was
    /// idle). Ticks up to the snapshot's are skipped by the caller.
    async fn subscribe(&self) -> Option<(broadcast::Receiver<Arc<Tick>>, Arc<Snapshot>)> {
        let engine = self.engine.upgrade()?;
        let rx = self.tx.subscribe();
        let fresh =
            |s: &Snapshot| s.seq > 0 && s.ts >= engine.now() - 2 * PERIOD.as_millis() as i64;
        if !fresh(&self.snapshot.read()) {
            let mut st = self.producer.lock().await;
            if !fresh(&self.snapshot.read()) {
                // Idle since the last connection: events start now, as for a first step.
                st.last_event_id = None;
                self.step(&engine, &mut st).await;
            }
        }
        let snap = self.snapshot.read().clone();
        Some((rx, snap))
    }
}

/// Counts an open stream while it lives.
struct Slot(Arc<LiveHub>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A snapshot or a tick being sent, possibly over several messages.
enum Held {
    Snapshot(Arc<Snapshot>),
    Tick(Arc<Tick>),
}

impl Held {
    fn ts(&self) -> Timestamp {
        match self {
            Held::Snapshot(s) => s.ts,
            Held::Tick(t) => t.ts,
        }
    }

    fn values(&self) -> &Rendered {
        match self {
            Held::Snapshot(s) => s.rendered(),
            Held::Tick(t) => &t.values,
        }
    }

    fn events(&self) -> &[(String, String)] {
        match self {
            Held::Snapshot(_) => &[],
            Held::Tick(t) => &t.events,
        }
    }
}

/// What is left to send of a snapshot or a tick: the next value and event to look at.
struct Pending {
    held: Held,
    value_at: usize,
    event_at: usize,
    /// No message of it was sent yet.
    first: bool,
}

impl Pending {
    fn new(held: Held, prefix: &str) -> Pending {
        let value_at = held.values().start(prefix);
        Pending {
            held,
            value_at,
            event_at: 0,
            first: true,
        }
    }

    fn full(&self) -> bool {
        matches!(self.held, Held::Snapshot(_))
    }

    /// The next message of at most about [`MESSAGE_BYTES`] (one fragment more when a single one
    /// is larger), and whether more remain. `None` when nothing under `prefix` is left (a tick
    /// with nothing under it sends nothing; a snapshot always sends its first message).
    fn next(&mut self, prefix: &str) -> Option<(String, bool)> {
        let full = self.full();
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "{{\"ts\":{},\"full\":{full},\"latest\":[",
            self.held.ts()
        );
        let mut wrote = 0usize;
        let mut more = false;
        let items = &self.held.values().items;
        while let Some((key, json)) = items.get(self.value_at) {
            if !key.starts_with(prefix) {
                self.value_at = items.len();
                break;
            }
            if is_under(key, prefix) {
                if wrote > 0 && out.len() + json.len() > MESSAGE_BYTES {
                    more = true;
                    break;
                }
                if wrote > 0 {
                    out.push(',');
                }
                out.push_str(json);
                wrote += 1;
            }
            self.value_at += 1;
        }
        out.push_str("],\"events\":[");
        let mut events_written = 0usize;
        if !more {
            let events = self.held.events();
            while let Some((asset, json)) = events.get(self.event_at) {
                if is_under(asset, prefix) {
                    if wrote > 0 && out.len() + json.len() > MESSAGE_BYTES {
                        more = true;
                        break;
                    }
                    if events_written > 0 {
                        out.push(',');
                    }
                    out.push_str(json);
                    events_written += 1;
                    wrote += 1;
                }
                self.event_at += 1;
            }
        }
        let _ = write!(out, "],\"more\":{more}}}");
        let send = wrote > 0 || (full && self.first);
        self.first = false;
        send.then_some((out, more))
    }
}

/// One connection.
struct Connection {
    slot: Slot,
    rx: broadcast::Receiver<Arc<Tick>>,
    prefix: String,
    /// The sequence number of the last tick (or snapshot) taken.
    seq: u64,
    /// The snapshot or tick being sent; the first is the full snapshot.
    pending: Option<Pending>,
}

impl Connection {
    fn take_snapshot(&mut self, snap: Arc<Snapshot>) {
        self.seq = snap.seq;
        self.pending = Some(Pending::new(Held::Snapshot(snap), &self.prefix));
    }

    /// The next message: the first snapshot, then every tick with something under the prefix,
    /// each in messages of about [`MESSAGE_BYTES`] at most. `None` when the producer is gone
    /// (the engine shut down).
    async fn next_message(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.pending.as_mut() {
                match p.next(&self.prefix) {
                    Some((msg, true)) => return Some(msg),
                    Some((msg, false)) => {
                        self.pending = None;
                        return Some(msg);
                    }
                    None => self.pending = None,
                }
            }
            match self.rx.recv().await {
                Ok(tick) if tick.seq <= self.seq => {}
                Ok(tick) => {
                    self.seq = tick.seq;
                    self.pending = Some(Pending::new(Held::Tick(tick), &self.prefix));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the ticks buffered: start over from the current values. The
                    // backlog still buffered is older than the snapshot: skip it (subscribe anew,
                    // then read the snapshot, so that no tick falls between the two).
                    self.rx = self.rx.resubscribe();
                    let snap = self.slot.0.snapshot.read().clone();
                    self.take_snapshot(snap);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /api/v1/stream/latest?prefix=…` for a validated prefix: the SSE response, or 503 when
/// `server.max_streams` streams are open.
pub async fn stream(hub: Arc<LiveHub>, prefix: String) -> Response {
    let taken = hub
        .open
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < hub.max).then_some(n + 1)
        });
    if taken.is_err() {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} live streams are open (server.max_streams); retry later",
                hub.max
            ),
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    let slot = Slot(hub.clone());
    hub.start();
    let Some((rx, snap)) = hub.subscribe().await else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    };
    let mut conn = Connection {
        slot,
        rx,
        prefix,
        seq: 0,
        pending: None,
    };
    conn.take_snapshot(snap);
    let stream = futures_util::stream::unfold(conn, |mut c| async move {
        let msg = c.next_message().await?;
        let ev = SseEvent::default().event("update").data(msg);
        Some((Ok::<_, std::convert::Infallible>(ev), c))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gemba_core::time::ManualClock;
    use gemba_engine::{BatchMode, Config, Source};

    const T0: i64 = 1_767_225_600_000;

    async fn set(engine: &Arc<Engine>, signal: &str, ts: i64, value: f64) {
        let body = format!(r#"{{"points":[{{"signal":"{signal}","ts":{ts},"value":{value}}}]}}"#);
        let batch = gemba_ingest::wire::decode_json(body.as_bytes()).unwrap();
        let out = engine
            .ingest(batch, Source::Http, BatchMode::Strict)
            .await
            .unwrap();
        assert_eq!(out.rejected, 0, "{:?}", out.errors);
    }

    fn parse(m: &str) -> serde_json::Value {
        serde_json::from_str(m).unwrap()
    }

    /// Ticks are diffs against the producer's previous reading, filtered by prefix; a connection
    /// that did not read for more ticks than are buffered gets one full snapshot with the current
    /// values instead of the backlog, then diffs again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_connection_gets_a_full_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let plant = "[enterprise]\nname = \"t\"\n[[sites]]\nname = \"s\"\n[[sites.areas]]\nname = \"a\"\n\
            [[sites.areas.lines]]\nname = \"l\"\n[[sites.areas.lines.machines]]\nname = \"m\"\n\
            [[sites.areas.lines.machines.signals]]\nname = \"x\"\n[[sites.areas.lines.machines.signals]]\nname = \"y\"\n\
            [[sites.areas.lines.machines]]\nname = \"m-2\"\n[[sites.areas.lines.machines.signals]]\nname = \"x\"\n";
        std::fs::write(dir.path().join("plant.toml"), plant).unwrap();
        let cfg = Config::from_toml_str(&format!(
            "[storage]\npath = \"{}\"\n[mqtt]\nmode = \"off\"\n[plant]\nfile = \"{}\"\n",
            dir.path().join("gemba.db").display(),
            dir.path().join("plant.toml").display()
        ))
        .unwrap();
        let engine = Engine::open(cfg, Arc::new(ManualClock::new(T0))).unwrap();
        set(&engine, "s/a/l/m/x", T0 - 10, 1.0).await;
        set(&engine, "s/a/l/m-2/x", T0 - 10, 5.0).await;
        let hub = LiveHub::new(&engine);
        let (rx, snap) = hub.subscribe().await.unwrap();
        hub.open.fetch_add(1, Ordering::SeqCst);
        let mut c = Connection {
            slot: Slot(hub.clone()),
            rx,
            prefix: "s/a/l/m".into(),
            seq: 0,
            pending: None,
        };
        c.take_snapshot(snap);
        let first = parse(&c.next_message().await.unwrap());
        assert_eq!(first["full"], true);
        // "s/a/l/m-2/x" sorts between "s/a/l/m" and "s/a/l/m/x" but is not under the prefix.
        assert_eq!(first["latest"].as_array().unwrap().len(), 1, "{first}");

        let step = || async {
            let mut st = hub.producer.lock().await;
            hub.step(&engine, &mut st).await;
        };
        set(&engine, "s/a/l/m/y", T0 - 5, 2.0).await;
        set(&engine, "s/a/l/m-2/x", T0 - 5, 6.0).await;
        step().await;
        let diff = parse(&c.next_message().await.unwrap());
        assert_eq!(diff["full"], false);
        assert_eq!(
            diff["latest"],
            serde_json::json!([{"signal": "s/a/l/m/y", "ts": T0 - 5, "value": 2.0}])
        );

        for i in 0..TICKS_BUFFERED + 3 {
            set(&engine, "s/a/l/m/x", T0 + i as i64, i as f64).await;
            step().await;
        }
        let resync = parse(&c.next_message().await.unwrap());
        assert_eq!(resync["full"], true, "{resync}");
        let values: Vec<f64> = resync["latest"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].as_f64().unwrap())
            .collect();
        assert_eq!(values, [(TICKS_BUFFERED + 2) as f64, 2.0], "{resync}");

        set(&engine, "s/a/l/m/y", T0 + 100, 9.0).await;
        step().await;
        let after = parse(&c.next_message().await.unwrap());
        assert_eq!(after["full"], false, "{after}");
        assert_eq!(after["latest"][0]["value"], 9.0, "{after}");
        drop(c);
        assert_eq!(hub.open_streams(), 0);
    }

    fn snapshot_of(n: usize) -> Arc<Snapshot> {
        let values = (0..n)
            .map(|i| LatestValue {
                signal: format!("s/a/l/m{}/x{i:06}", i % 3),
                ts: T0 + i as i64,
                value: i as f64,
                unit: None,
                state: None,
            })
            .collect::<Vec<_>>();
        let mut values = values;
        values.sort_unstable_by(|a, b| a.signal.cmp(&b.signal));
        Arc::new(Snapshot {
            seq: 1,
            ts: T0,
            values,
            rendered: OnceLock::new(),
        })
    }

    /// A snapshot of 30,000 values goes out in messages of at most [`MESSAGE_BYTES`] (plus one
    /// fragment), all but the last saying `more`, together holding every value under the prefix
    /// once; an empty prefix match still sends one (empty) full message.
    #[test]
    fn large_snapshots_go_out_in_bounded_messages() {
        let snap = snapshot_of(30_000);
        for (prefix, expected) in [("", 30_000), ("s/a/l/m1", 10_000), ("s/a/l/m9", 0)] {
            let mut p = Pending::new(Held::Snapshot(snap.clone()), prefix);
            let mut seen = Vec::new();
            let mut messages = 0;
            while let Some((msg, more)) = p.next(prefix) {
                messages += 1;
                assert!(msg.len() <= MESSAGE_BYTES + 200, "{} bytes", msg.len());
                let v = parse(&msg);
                assert_eq!(v["full"], true);
                assert_eq!(v["more"], more);
                for x in v["latest"].as_array().unwrap() {
                    let signal = x["signal"].as_str().unwrap().to_string();
                    assert!(is_under(&signal, prefix), "{signal} under {prefix}");
                    seen.push(signal);
                }
                if !more {
                    break;
                }
            }
            assert!(p.next(prefix).is_none(), "nothing after the last message");
            let count = seen.len();
            seen.dedup();
            assert_eq!(
                (count, seen.len()),
                (expected, expected),
                "prefix {prefix:?}"
            );
            assert!(
                messages >= expected / 2_000,
                "{messages} messages for {expected} values"
            );
            assert!(messages >= 1);
        }
    }
}
