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

/// JSON fragments sorted by a key (a signal path or an event's asset).
#[derive(Debug, Default)]
struct Rendered {
    items: Vec<(String, String)>,
}

impl Rendered {
    /// The fragments whose key is `prefix` or below it.
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let start = if prefix.is_empty() {
            0
        } else {
            self.items.partition_point(|(k, _)| k.as_str() < prefix)
        };
        self.items[start..]
            .iter()
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(k, _)| is_under(k, prefix))
            .map(|(_, json)| json.as_str())
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

/// One connection.
struct Connection {
    slot: Slot,
    rx: broadcast::Receiver<Arc<Tick>>,
    prefix: String,
    /// The sequence number of the last tick (or snapshot) sent.
    seq: u64,
    /// The first message (a full snapshot) still to send.
    first: Option<Arc<Snapshot>>,
}

fn message(
    ts: Timestamp,
    full: bool,
    values: impl Iterator<Item = impl AsRef<str>>,
    events: impl Iterator<Item = impl AsRef<str>>,
) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(out, "{{\"ts\":{ts},\"full\":{full},\"latest\":[");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(v.as_ref());
    }
    out.push_str("],\"events\":[");
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e.as_ref());
    }
    out.push_str("]}");
    out
}

impl Connection {
    fn full(&mut self, snap: &Snapshot) -> String {
        self.seq = snap.seq;
        message(
            snap.ts,
            true,
            snap.rendered().under(&self.prefix),
            std::iter::empty::<&str>(),
        )
    }

    /// The next message: the first snapshot, then every tick with something under the prefix.
    /// `None` when the producer is gone (the engine shut down).
    async fn next_message(&mut self) -> Option<String> {
        if let Some(snap) = self.first.take() {
            return Some(self.full(&snap));
        }
        loop {
            match self.rx.recv().await {
                Ok(tick) if tick.seq <= self.seq => {}
                Ok(tick) => {
                    self.seq = tick.seq;
                    let prefix = self.prefix.as_str();
                    let mut values = tick.values.under(prefix).peekable();
                    let mut events = tick
                        .events
                        .iter()
                        .filter(|(asset, _)| is_under(asset, prefix))
                        .map(|(_, json)| json.as_str())
                        .peekable();
                    if values.peek().is_none() && events.peek().is_none() {
                        continue;
                    }
                    return Some(message(tick.ts, false, values, events));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the ticks buffered: start over from the current values. The
                    // backlog still buffered is older than the snapshot: skip it (subscribe anew,
                    // then read the snapshot, so that no tick falls between the two).
                    self.rx = self.rx.resubscribe();
                    let snap = self.slot.0.snapshot.read().clone();
                    return Some(self.full(&snap));
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
    let conn = Connection {
        slot,
        rx,
        prefix,
        seq: 0,
        first: Some(snap),
    };
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
            first: Some(snap),
        };
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
}
