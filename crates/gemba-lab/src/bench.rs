//! `gemba bench ingest`: measures the foundation's figures on this machine, side by side with a
//! reference implementation run on the same data in the same run:
//!
//! - bulk HTTP ingest into the embedded store (durable), vs. one SQLite row per sample with the same
//!   durability settings (the layout the store replaced);
//! - MQTT ingest through the embedded broker, batched and one sample per message;
//! - aggregate of 1,000,000 samples into 1,000 buckets (raw and rollup paths), latest of 10,000 signals;
//! - `gemba serve` start-to-ready time and idle RSS.
//!
//! The server is the real binary, spawned as a child process on free ports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::args::{BenchArgs, BenchCmd};

const SIGNALS_PER_BODY: usize = 100;
const POINTS_PER_SERIES: usize = 10_000;
/// Bench data starts here: 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Ingest(args) => ingest(args),
        BenchCmd::Simulate(args) => crate::simulate::bench(args),
        BenchCmd::Alarms(args) => crate::bench_alarms::run(args),
        BenchCmd::Genealogy(args) => crate::bench_genealogy::run(args),
    }
}

pub(crate) struct Child_ {
    child: Child,
    pub(crate) http: u16,
    mqtt: u16,
}

impl Drop for Child_ {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn start_server(dir: &Path) -> anyhow::Result<(Child_, Duration)> {
    let (http, mqtt, v5) = (free_port()?, free_port()?, free_port()?);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cfg = dir.join("gemba.toml");
    let mut f = std::fs::File::create(&cfg)?;
    write!(
        f,
        "[server]\nlisten = \"127.0.0.1:{http}\"\nmax_body_bytes = 268435456\n\
         [storage]\npath = \"{}\"\n\
         [ingest]\nunknown_signals = \"register\"\nmax_future_s = 315360000\n\
         [mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nlisten_v5 = \"127.0.0.1:{v5}\"\n\
         [log]\nlevel = \"warn\"\n\
         [auth]\nenabled = false\nrate_per_s = 1000000.0\nburst = 1000000\n",
        dir.join("data/gemba.db").display()
    )?;
    let exe = std::env::current_exe().context("cannot find the gemba executable")?;
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start gemba serve")?;
    let mut c = Child_ { child, http, mqtt };
    let agent = crate::client::agent();
    loop {
        if let Ok(r) = agent
            .get(&format!("http://127.0.0.1:{http}/healthz"))
            .call()
            && r.status() == 200
        {
            break;
        }
        if let Ok(Some(st)) = c.child.try_wait() {
            bail!("gemba serve exited with {st}");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("gemba serve was not ready within 30 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = started.elapsed();
    Ok((c, ready))
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Deterministic sensor-like values: a random walk with two decimals.
fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = 50.0 + (seed % 50) as f64;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let step = ((x >> 33) % 201) as f64 / 100.0 - 1.0;
            v = ((v + step) * 100.0).round() / 100.0;
            v
        })
        .collect()
}

/// One HTTP body: 100 signals × 10,000 samples at 1 s spacing.
fn body(round: usize) -> Vec<u8> {
    let series: Vec<Value> = (0..SIGNALS_PER_BODY)
        .map(|s| {
            json!({
                "signal": format!("bench/area/line{}/m{}/sig", s % 10, s),
                "t0": T0 + (round * POINTS_PER_SERIES) as i64 * 1000,
                "dt": 1000,
                "values": values((round * SIGNALS_PER_BODY + s) as u64, POINTS_PER_SERIES),
            })
        })
        .collect();
    json!({ "series": series }).to_string().into_bytes()
}

fn ingest(args: BenchArgs) -> anyhow::Result<()> {
    let tmp;
    let dir: PathBuf = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempdir()?;
            tmp.0.clone()
        }
    };
    println!(
        "gemba bench ingest — {} cores, store in {}",
        num_cpus(),
        dir.display()
    );
    println!();

    // 1. Start-up and idle RSS.
    let (srv, ready) = start_server(&dir.join("gemba"))?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_mb(srv.child.id());
    let base = format!("http://127.0.0.1:{}", srv.http);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent();

    // 2. HTTP bulk ingest.
    let rounds = args
        .http_points
        .div_ceil(SIGNALS_PER_BODY * POINTS_PER_SERIES)
        .max(2);
    eprint!(
        "preparing {} HTTP bodies of {} samples… ",
        rounds,
        SIGNALS_PER_BODY * POINTS_PER_SERIES
    );
    let bodies: Vec<Arc<Vec<u8>>> = (0..rounds).map(|r| Arc::new(body(r))).collect();
    eprintln!("done ({:.1} MB each)", bodies[0].len() as f64 / 1e6);
    // Warm-up: registers the 100 signals.
    post(&agent, &base, &body(rounds + 1))?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (agent, base, bodies, next) =
                (agent.clone(), base.clone(), bodies.clone(), next.clone());
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let mut n = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(b) = bodies.get(i) else { break };
                    n += post(&agent, &base, b)?;
                }
                Ok(n)
            })
        })
        .collect();
    let mut http_points = 0;
    for c in clients {
        http_points += c
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let http_secs = started.elapsed().as_secs_f64();
    let http_rate = http_points as f64 / http_secs;

    // Reference: the same samples, one SQLite row each, same durability (WAL, synchronous=FULL).
    let ref_rate = sqlite_row_per_point(&dir.join("reference.db"), &bodies)?;

    // 3. Aggregates over 1,000,000 samples of one signal (100 rounds' worth: 10,000 per round).
    let sig = "bench/area/line0/m0/sig";
    let one_m = (0..100).map(|r| {
        json!({"series": [{"signal": "bench/agg/line/m/one_million", "t0": T0 + r * 10_000_000, "dt": 1000,
               "values": values(r as u64, 10_000)}]})
        .to_string()
        .into_bytes()
    });
    for b in one_m {
        post(&agent, &base, &b)?;
    }
    let agg_sig = "bench/agg/line/m/one_million";
    let span_to = T0 + 1_000_000_000;
    // 1,000 s buckets are not a multiple of a minute: the raw path.
    let raw_ms = time_get(
        &agent,
        &format!(
            "{base}/api/v1/series?signal={agg_sig}&from={T0}&to={span_to}&step=1000000&agg=mean"
        ),
        1000,
    )?;
    // 1,020 s = 17 min: rollup_1m path (980 buckets).
    let roll_ms = time_get(
        &agent,
        &format!("{base}/api/v1/series?signal={agg_sig}&from={T0}&to={span_to}&step=17m&agg=mean"),
        980,
    )?;
    let _ = sig;

    // 4. Latest of 10,000 signals.
    let latest_body = json!({"points": (0..10_000).map(|i| json!({"signal": format!("bench/latest/l{}/m{}/s", i % 100, i), "ts": T0, "value": i})).collect::<Vec<_>>()});
    post(&agent, &base, latest_body.to_string().as_bytes())?;
    let latest_ms = time_get(
        &agent,
        &format!("{base}/api/v1/latest?prefix=bench/latest"),
        10_000,
    )?;

    // 5. MQTT, batched (100 samples per message) and one sample per message.
    let (mqtt_batched, drain) = mqtt_bench(&agent, &base, srv.mqtt, args.mqtt_points, 100)?;
    let (window_median, window_max) = mqtt_window(&agent, &base, srv.mqtt)?;
    let (mqtt_single, _) = mqtt_bench(
        &agent,
        &base,
        srv.mqtt,
        (args.mqtt_points / 20).max(10_000),
        1,
    )?;
    let busy_rss = rss_mb(srv.child.id());
    drop(srv);

    println!(
        "{:<58} {:>14} {:>14} {:>8}",
        "figure", "gemba", "reference", "target"
    );
    let row =
        |name: &str, g: String, r: String, t: &str| println!("{name:<58} {g:>14} {r:>14} {t:>8}");
    row(
        &format!(
            "HTTP bulk ingest, durable ({:.1} M samples), samples/s",
            http_points as f64 / 1e6
        ),
        format!("{:.0}", http_rate),
        format!("{:.0}", ref_rate),
        "≥1000000",
    );
    println!(
        "{:<58} {:>14.1}x  (reference: one SQLite row per sample, WAL, synchronous=FULL)",
        "  ratio gemba / reference",
        http_rate / ref_rate
    );
    row(
        "MQTT ingest, 100 samples/message, samples/s",
        format!("{mqtt_batched:.0}"),
        "-".into(),
        "≥200000",
    );
    row(
        "MQTT ingest, 1 sample/message, samples/s",
        format!("{mqtt_single:.0}"),
        "-".into(),
        "",
    );
    row(
        "MQTT publish→durable, one sample at 10 Hz, median ms",
        format!("{window_median:.1}"),
        "-".into(),
        "",
    );
    row(
        "MQTT publish→durable, one sample at 10 Hz, max ms",
        format!("{window_max:.1}"),
        "-".into(),
        "",
    );
    row(
        "MQTT batched run: last publish→all durable, ms",
        format!("{drain:.0}"),
        "-".into(),
        "",
    );
    row(
        "aggregate 1,000,000 samples → 1,000 buckets, raw, ms",
        format!("{raw_ms:.1}"),
        "-".into(),
        "<50",
    );
    row(
        "aggregate 1,000,000 samples → 980 buckets, rollup, ms",
        format!("{roll_ms:.1}"),
        "-".into(),
        "<50",
    );
    row(
        "latest value of 10,000 signals (HTTP, JSON), ms",
        format!("{latest_ms:.1}"),
        "-".into(),
        "<10",
    );
    row(
        "gemba serve start to ready, ms",
        format!("{:.0}", ready.as_secs_f64() * 1000.0),
        "-".into(),
        "<1000",
    );
    row(
        "gemba serve idle RSS, MB",
        idle_rss.map_or("n/a".into(), |v| format!("{v:.1}")),
        "-".into(),
        "<100",
    );
    row(
        "gemba serve RSS after the benchmark, MB",
        busy_rss.map_or("n/a".into(), |v| format!("{v:.1}")),
        "-".into(),
        "",
    );
    Ok(())
}

fn post(agent: &ureq::Agent, base: &str, body: &[u8]) -> anyhow::Result<usize> {
    let mut r = agent
        .post(&format!("{base}/api/v1/ingest"))
        .header("content-type", "application/json")
        .send(body)?;
    let status = r.status();
    let text = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
    if status != 200 {
        bail!(
            "ingest answered {status}: {}",
            text.chars().take(500).collect::<String>()
        );
    }
    let v: Value = serde_json::from_str(&text)?;
    Ok(v["accepted_points"].as_u64().unwrap_or(0) as usize)
}

/// Median of 7 timed GETs (after one warm-up) in ms; checks the number of returned entries.
fn time_get(agent: &ureq::Agent, url: &str, expect: usize) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for i in 0..8 {
        let t = Instant::now();
        let mut r = agent.get(url).call()?;
        let text = r.body_mut().with_config().limit(1 << 30).read_to_string()?;
        let el = t.elapsed().as_secs_f64() * 1000.0;
        let v: Value = serde_json::from_str(&text)?;
        let n = v["points"]
            .as_array()
            .or_else(|| v.as_array())
            .map_or(0, Vec::len);
        // Buckets are aligned to the epoch, so an unaligned range has one or two partial ones more.
        if n < expect || n > expect + 2 {
            bail!("{url} returned {n} entries, expected {expect}");
        }
        if i > 0 {
            times.push(el);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn mqtt_points_stored(agent: &ureq::Agent, base: &str) -> anyhow::Result<f64> {
    let text = agent
        .get(&format!("{base}/metrics"))
        .call()?
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()?;
    Ok(text
        .lines()
        .find(|l| l.starts_with("gemba_ingest_points_total{source=\"mqtt\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

/// Publishes `points` samples in messages of `per_msg` to the machine batch topic; returns samples/s
/// from first publish to last durable commit, and the largest receipt→durable delay observed (ms).
fn mqtt_bench(
    agent: &ureq::Agent,
    base: &str,
    port: u16,
    points: usize,
    per_msg: usize,
) -> anyhow::Result<(f64, f64)> {
    use rumqttc::{Client, MqttOptions, QoS};
    let before = mqtt_points_stored(agent, base)?;
    let mut opts = MqttOptions::new(format!("bench-{per_msg}"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_inflight(1000);
    let (client, mut conn) = Client::new(opts, 10_000);
    let pump = std::thread::spawn(move || {
        for ev in conn.iter() {
            if ev.is_err() {
                break;
            }
        }
    });
    let msgs = points / per_msg;
    let payloads: Vec<(String, String)> = (0..msgs)
        .map(|i| {
            let t = T0 + 2_000_000_000 + (i * per_msg) as i64 * 10;
            if per_msg == 1 {
                (
                    format!("gemba/v1/bench/mqtt/line1/m{}/single", i % 10),
                    format!("{{\"ts\":{t},\"value\":{}}}", i % 1000),
                )
            } else {
                let vals = values(i as u64, per_msg);
                (
                    format!("gemba/v1/bench/mqtt/line1/m{}", i % 10),
                    json!({"series": [{"signal": "batched", "t0": t, "dt": 10, "values": vals}]})
                        .to_string(),
                )
            }
        })
        .collect();
    let expected = before + (msgs * per_msg) as f64;
    let started = Instant::now();
    let mut max_lag = 0.0f64;
    for (topic, payload) in payloads {
        client.publish(topic, QoS::AtLeastOnce, false, payload)?;
    }
    let published = started.elapsed();
    loop {
        let stored = mqtt_points_stored(agent, base)?;
        if stored >= expected {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "MQTT: only {} of {} samples stored after 300 s",
                stored - before,
                expected - before
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let total = started.elapsed();
    max_lag = max_lag.max((total.saturating_sub(published)).as_secs_f64() * 1000.0);
    let _ = client.disconnect();
    let _ = pump.join();
    Ok(((msgs * per_msg) as f64 / total.as_secs_f64(), max_lag))
}

fn sqlite_row_per_point(path: &Path, bodies: &[Arc<Vec<u8>>]) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(path);
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE samples(signal INTEGER, ts INTEGER, value REAL, PRIMARY KEY(signal, ts)) WITHOUT ROWID;",
    )?;
    // Decode outside the timed part: the reference is timed on inserts alone.
    let mut batches: Vec<Vec<(i64, i64, f64)>> = Vec::new();
    for b in bodies {
        let v: Value = serde_json::from_slice(b)?;
        let mut rows = Vec::new();
        for (sid, s) in v["series"].as_array().into_iter().flatten().enumerate() {
            let t0 = s["t0"].as_i64().unwrap_or(0);
            let dt = s["dt"].as_i64().unwrap_or(1);
            for (i, x) in s["values"].as_array().into_iter().flatten().enumerate() {
                rows.push((sid as i64, t0 + i as i64 * dt, x.as_f64().unwrap_or(0.0)));
            }
        }
        batches.push(rows);
    }
    let mut n = 0usize;
    let started = Instant::now();
    for rows in &batches {
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT OR REPLACE INTO samples VALUES (?1, ?2, ?3)")?;
            for (sid, ts, v) in rows {
                st.execute(rusqlite::params![sid, ts, v])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Publishes single samples at 10 Hz and measures, for each, publish → visible in the store
/// (`/api/v1/latest`), which bounds the window between broker receipt and durable commit.
fn mqtt_window(agent: &ureq::Agent, base: &str, port: u16) -> anyhow::Result<(f64, f64)> {
    use rumqttc::{Client, MqttOptions, QoS};
    let mut opts = MqttOptions::new("bench-window", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client::new(opts, 100);
    let pump = std::thread::spawn(move || {
        for ev in conn.iter() {
            if ev.is_err() {
                break;
            }
        }
    });
    let signal = "bench/window/line1/m1/probe";
    let mut lags = Vec::new();
    for i in 0..30i64 {
        let ts = T0 + 3_000_000_000 + i;
        let started = Instant::now();
        client.publish(
            format!("gemba/v1/{signal}"),
            QoS::AtLeastOnce,
            false,
            format!("{{\"ts\":{ts},\"value\":{i}}}"),
        )?;
        loop {
            let text = agent
                .get(&format!("{base}/api/v1/latest?prefix={signal}"))
                .call()?
                .body_mut()
                .read_to_string()?;
            let v: Value = serde_json::from_str(&text)?;
            if v[0]["ts"].as_i64() == Some(ts) {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("MQTT probe {i} not stored after 10 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        lags.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = client.disconnect();
    let _ = pump.join();
    lags.sort_by(f64::total_cmp);
    Ok((lags[lags.len() / 2], lags[lags.len() - 1]))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) struct TempDir(pub(crate) PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tempdir() -> anyhow::Result<TempDir> {
    let p = std::env::temp_dir().join(format!("gemba-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(TempDir(p))
}
