//! Kill -9 during continuous HTTP ingest: every acknowledged sample must be there after a restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, now_ms};
use serde_json::json;

#[test]
fn every_acknowledged_sample_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let url = srv.url("/api/v1/ingest");
    let base = now_ms() - 7 * 86_400_000;
    let stop = Arc::new(AtomicBool::new(false));
    // (writer, batch) pairs acknowledged with 200.
    let acked: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    const PER_BATCH: usize = 500;
    const WRITERS: usize = 4;

    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let agent = common::http_agent(Duration::from_secs(5));
                let signal = ["s1/a1/l1/m1/temp", "s1/a1/l1/m1/speed"][w % 2];
                let mut batch = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    // Writer w owns timestamps base + (batch*WRITERS + w)*PER_BATCH + i: no overlaps.
                    let start = base + ((batch * WRITERS + w) * PER_BATCH) as i64;
                    let body = json!({"series": [{
                        "signal": signal,
                        "t0": start, "dt": 1,
                        "values": (0..PER_BATCH).map(|i| 250.0 + (i % 100) as f64).collect::<Vec<_>>()
                    }]});
                    match agent.post(&url).header("content-type", "application/json").send(body.to_string()) {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push((w, batch)),
                        Ok(mut r) => panic!(
                            "unexpected status {}: {}",
                            r.status(),
                            r.body_mut().with_config().limit(1 << 30).read_to_string().unwrap_or_default()
                        ),
                        Err(_) => break, // the server died mid-request: not acknowledged
                    }
                    batch += 1;
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(2500));
    srv.kill9();
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few acknowledged batches ({}) to prove anything",
        acked.len()
    );

    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    drop(srv);
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    let mut stored = std::collections::HashMap::new();
    for signal in ["s1/a1/l1/m1/temp", "s1/a1/l1/m1/speed"] {
        for (ts, v) in srv.samples(signal) {
            stored.insert((signal, ts), v);
        }
    }
    let mut missing = 0;
    for (w, batch) in &acked {
        let signal = ["s1/a1/l1/m1/temp", "s1/a1/l1/m1/speed"][w % 2];
        let start = base + ((batch * WRITERS + w) * PER_BATCH) as i64;
        for i in 0..PER_BATCH {
            match stored.get(&(signal, start + i as i64)) {
                Some(v) if *v == 250.0 + (i % 100) as f64 => {}
                _ => missing += 1,
            }
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} acknowledged samples lost out of {}",
        acked.len() * PER_BATCH
    );
    eprintln!(
        "durability: {} acknowledged batches ({} samples) all present after SIGKILL; {} samples stored in total",
        acked.len(),
        acked.len() * PER_BATCH,
        stored.len()
    );
}
