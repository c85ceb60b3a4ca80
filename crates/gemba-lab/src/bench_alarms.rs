//! `gemba bench alarms`: the streaming run rules against the batch rules (a second
//! implementation) on the same data, and the time from a sample to its alarm being visible over
//! the API while other samples stream in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gemba_analytics::spc::{Rule, RuleSet, check_rules};
use gemba_analytics::{RuleMonitor, StreamViolation};
use serde_json::{Value, json};

use crate::args::BenchAlarmsArgs;

/// Roughly normal values (sum of four uniforms), with a mean shift every 10,000 points so that
/// rules fire as they would on a real process.
fn series(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut u = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|i| {
            let shift = if (i / 10_000) % 5 == 4 { 1.5 } else { 0.0 };
            (u() + u() + u() + u() - 2.0) * 3.0_f64.sqrt() + shift
        })
        .collect()
}

fn spc_throughput(points: usize) -> anyhow::Result<()> {
    let values = series(points);
    println!("Streaming SPC rules, one core, {points} points (mean shifts every 50,000):");
    println!(
        "{:<26} {:>14} {:>14} {:>12} {:>8}",
        "rules", "stream pts/s", "batch pts/s", "violations", "ratio"
    );
    for (name, rules) in [
        ("all eight", RuleSet::default()),
        ("Western Electric (1,2,5,6)", RuleSet::western_electric()),
        (
            "rule 1 only",
            RuleSet {
                enabled: vec![Rule::Beyond3Sigma],
            },
        ),
    ] {
        let mut m = RuleMonitor::new(0.0, 1.0, &rules);
        let mut out: Vec<StreamViolation> = Vec::with_capacity(16);
        let mut fired = 0usize;
        let t = Instant::now();
        for &v in &values {
            out.clear();
            m.push(v, &mut out);
            fired += out.len();
        }
        let stream = points as f64 / t.elapsed().as_secs_f64();
        // The batch function on the same data (in 1,000,000-point slices, as a chart would).
        let t = Instant::now();
        let mut batch_fired = 0usize;
        for chunk in values.chunks(1_000_000) {
            batch_fired += check_rules(chunk, 0.0, 1.0, &rules).len();
        }
        let batch = points as f64 / t.elapsed().as_secs_f64();
        if batch_fired.abs_diff(fired) > 100 * (points / 1_000_000 + 1) {
            bail!("stream and batch disagree: {fired} vs {batch_fired} violations");
        }
        println!(
            "{name:<26} {stream:>14.0} {batch:>14.0} {fired:>12} {:>7.1}×",
            stream / batch
        );
    }
    println!("target: ≥ 5,000,000 points/s per core with all eight rules\n");
    Ok(())
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> anyhow::Result<Value> {
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())?;
    let text = r.body_mut().read_to_string()?;
    if r.status().as_u16() >= 300 {
        bail!("POST {url}: {} {text}", r.status());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(agent: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    let mut r = agent.get(url).call()?;
    Ok(serde_json::from_str(&r.body_mut().read_to_string()?)?)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn latency(args: &BenchAlarmsArgs) -> anyhow::Result<()> {
    let dir = crate::bench::tempdir()?;
    let (server, _) = crate::bench::start_server(&dir.0.join("server"))?;
    let base = format!("http://127.0.0.1:{}", server.http);
    let agent = crate::client::agent();
    let now = || crate::simulate::now_ms();
    let probe = "bench/area/line0/probe/temp";
    post(
        &agent,
        &format!("{base}/api/v1/ingest"),
        &json!({"points": [{"signal": probe, "ts": now(), "value": 0.0}]}),
    )?;
    post(
        &agent,
        &format!("{base}/api/v1/alarm-rules"),
        &json!({"name": "probe", "type": "threshold", "signal": probe, "above": 10.0, "clear": 5.0}),
    )?;
    // Background load: 100 signals, `load` points per second in 10 ms batches.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let loader = {
        let (stop, sent, agent, url) = (
            stop.clone(),
            sent.clone(),
            agent.clone(),
            format!("{base}/api/v1/ingest"),
        );
        let per_batch = (args.load / 100).max(1);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut next = Instant::now();
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ts = crate::simulate::now_ms();
                let points: Vec<Value> = (0..per_batch)
                    .map(|i| {
                        k += 1;
                        json!({"signal": format!("bench/area/line{}/m{}/load", i % 10, i % 100),
                               "ts": ts, "value": (k % 1000) as f64})
                    })
                    .collect();
                post(&agent, &url, &json!({ "points": points }))?;
                sent.fetch_add(per_batch as u64, Ordering::Relaxed);
                next += Duration::from_millis(10);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let t_load = Instant::now();
    let sent0 = sent.load(Ordering::Relaxed);
    let mut lat = Vec::with_capacity(args.probes);
    let mut ts = now();
    for i in 0..args.probes {
        // Raise: a value above the limit; visible when the alarm's count has grown.
        ts = ts.max(now()) + 1;
        let t = Instant::now();
        post(
            &agent,
            &format!("{base}/api/v1/ingest"),
            &json!({"points": [{"signal": probe, "ts": ts, "value": 20.0}]}),
        )?;
        loop {
            let v = get(&agent, &format!("{base}/api/v1/alarms?rule=probe&limit=1"))?;
            if v["alarms"][0]["count"].as_u64() == Some(i as u64 + 1)
                && v["alarms"][0]["condition"] == true
            {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("probe {i}: no alarm after 10 s: {v}");
            }
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        // Clear it for the next probe.
        ts += 1;
        post(
            &agent,
            &format!("{base}/api/v1/ingest"),
            &json!({"points": [{"signal": probe, "ts": ts, "value": 0.0}]}),
        )?;
        loop {
            let v = get(&agent, &format!("{base}/api/v1/alarms?rule=probe&limit=1"))?;
            if v["alarms"][0]["condition"] == false {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let rate = (sent.load(Ordering::Relaxed) - sent0) as f64 / t_load.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    loader
        .join()
        .map_err(|_| anyhow::anyhow!("load thread panicked"))?
        .context("background load")?;
    lat.sort_by(f64::total_cmp);
    println!(
        "Sample → alarm visible over the API (POST /api/v1/ingest acknowledged, then GET /api/v1/alarms until it shows), {} probes under {rate:.0} points/s of background ingest:",
        lat.len()
    );
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms   (target: p99 < 50 ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    drop(server);
    Ok(())
}

pub fn run(args: BenchAlarmsArgs) -> anyhow::Result<()> {
    if args.points == 0 || args.probes == 0 {
        bail!("--points and --probes must be positive");
    }
    spc_throughput(args.points)?;
    latency(&args)
}
