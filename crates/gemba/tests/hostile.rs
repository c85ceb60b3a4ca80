//! The hostile corpus (`tests/hostile/`, docs/SECURITY.md#fuzzing) replayed against a real
//! `gemba serve`: over HTTP ingest, through `gemba import csv` and as MQTT publishes. Every hostile
//! request must get a 4xx answer (never 2xx, never 5xx), the server must stay up, and every sample
//! that was acknowledged — the valid items mixed into the corpus and a sentinel sent after each
//! hostile input — must be stored.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, eventually, now_ms};

/// The signal the corpus's valid items use (no range in the test plant).
const VALID: &str = "s1/a1/l1/m1/speed";
/// The signal of the sentinels: only sentinels are ever sent to it.
const SENTINEL: &str = "s1/a1/l1/m1/temp";

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{} holds only {} files",
        dir.display(),
        files.len()
    );
    files
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("txt") => "text/plain",
        _ => "application/xml",
    }
}

/// Sends one sentinel sample over HTTP at `ts` and checks that it was acknowledged.
fn sentinel(srv: &Server, ts: i64, after: &str) {
    let body = format!(r#"{{"points":[{{"signal":"{SENTINEL}","ts":{ts},"value":300}}]}}"#);
    let (status, reply) = srv.post("/api/v1/ingest", "application/json", body.as_bytes());
    assert_eq!(status, 200, "sentinel after {after}: {reply}");
}

/// Sends only the headers of a POST declaring `len` bytes of body; returns the answer's status.
fn declared_oversize(srv: &Server, len: usize) -> u16 {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "POST /api/v1/ingest HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n{{\"points\":["
    )
    .unwrap();
    let mut answer = [0u8; 12];
    sock.read_exact(&mut answer).unwrap();
    let line = String::from_utf8_lossy(&answer).into_owned();
    line.strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"))
}

/// Fails if the server exited or logged a panic.
fn assert_alive(srv: &mut Server, after: &str) {
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "gemba exited after {after}; log:\n{}",
        srv.logs()
    );
    let (status, _) = srv.get_text("/healthz");
    assert_eq!(status, 200, "healthz after {after}");
    assert!(
        !srv.logs().contains("panicked"),
        "gemba panicked after {after}; log:\n{}",
        srv.logs()
    );
}

#[test]
fn hostile_http_bodies_get_4xx_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_with_env(
        dir.path(),
        "",
        &[("GEMBA__SERVER__MAX_BODY_BYTES", "1048576")],
    );
    let t0 = now_ms() - 3_600_000;
    let mut sentinels = Vec::new();
    let mut accepted = 0u64;
    let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
    let mut replay = |srv: &mut Server, name: &str, path: &str, ctype: &str, body: &[u8]| {
        let (status, reply) = srv.post(path, ctype, body);
        *statuses.entry(status).or_default() += 1;
        assert!(
            (400..500).contains(&status),
            "{name}: expected a 4xx answer, got {status}: {}",
            reply.to_string().chars().take(500).collect::<String>()
        );
        if status == 422 {
            accepted += reply["accepted_points"].as_u64().unwrap_or(0);
            let errors = reply["errors"].as_array().map_or(0, Vec::len);
            assert!(errors > 0, "{name}: a 422 names its errors: {reply}");
        } else {
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{name}: a {status} carries an error message: {reply}"
            );
        }
        assert_alive(srv, name);
        let ts = t0 + sentinels.len() as i64;
        sentinel(srv, ts, name);
        sentinels.push(ts);
    };

    for file in corpus("http") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(&file).unwrap();
        replay(
            &mut srv,
            &name,
            "/api/v1/ingest",
            content_type(&file),
            &body,
        );
    }
    // Inputs too large to commit: built here.
    let giant_name = format!(
        r#"{{"points":[{{"signal":"s1/a1/l1/m1/{}","value":1}}]}}"#,
        "x".repeat(900_000)
    );
    replay(
        &mut srv,
        "giant signal name",
        "/api/v1/ingest",
        "application/json",
        giant_name.as_bytes(),
    );
    let giant_state = format!(
        r#"{{"points":[{{"signal":"s1/a1/l1/m1/state","value":"{}"}}]}}"#,
        "r".repeat(900_000)
    );
    replay(
        &mut srv,
        "giant state name",
        "/api/v1/ingest",
        "application/json",
        giant_state.as_bytes(),
    );
    // Over server.max_body_bytes: refused from the declared length, before the body is read
    // (sent by hand: a client that writes the whole body races the server's close).
    let status = declared_oversize(&srv, 2_000_000);
    assert_eq!(status, 413, "a declared 2 MB body against a 1 MiB limit");
    assert_alive(&mut srv, "an oversized body");
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    replay(
        &mut srv,
        "200,000 nested arrays",
        "/api/v1/ingest",
        "application/json",
        deep.as_bytes(),
    );
    let many_bad: String = (0..20_000)
        .map(|i| format!(r#"{{"signal":"{VALID}","ts":{i},"value":1}}"#))
        .collect::<Vec<_>>()
        .join(",");
    replay(
        &mut srv,
        "20,000 points before 1990",
        "/api/v1/ingest",
        "application/json",
        format!(r#"{{"points":[{many_bad}]}}"#).as_bytes(),
    );
    replay(
        &mut srv,
        "unknown query parameter",
        "/api/v1/ingest?drop=tables",
        "application/json",
        b"{}",
    );
    replay(
        &mut srv,
        "bad mode",
        "/api/v1/ingest?mode=yolo",
        "application/json",
        b"{}",
    );
    replay(
        &mut srv,
        "bad percent-encoding",
        "/api/v1/ingest?mode=%zz",
        "application/json",
        b"{}",
    );

    // Strict mode: the corpus's partly valid files store nothing.
    let before = srv.samples(VALID).len();
    let (status, reply) = srv.post(
        "/api/v1/ingest?mode=strict",
        "application/json",
        &std::fs::read(
            corpus("http")
                .iter()
                .find(|f| f.ends_with("huge_numbers.json"))
                .unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        srv.samples(VALID).len(),
        before,
        "strict mode stored part of a bad batch"
    );

    eprintln!(
        "HTTP: {} hostile inputs, answers {statuses:?}, {accepted} valid samples among them accepted",
        sentinels.len()
    );
    assert!(
        accepted >= 5,
        "the corpus mixes valid items in; {accepted} were accepted"
    );
    let stored: BTreeSet<i64> = srv.samples(SENTINEL).iter().map(|p| p.0).collect();
    assert_eq!(
        stored,
        sentinels.iter().copied().collect(),
        "a sentinel is missing"
    );
    assert_eq!(
        srv.samples(VALID).len() as u64,
        accepted,
        "every acknowledged sample of the corpus is stored (each at its own timestamp)"
    );
    assert_alive(&mut srv, "the whole HTTP corpus");
}

#[test]
fn hostile_csv_files_through_gemba_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let server = srv.url("");
    let mut imported = 0u64;
    for file in corpus("csv") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (ok, out) = common::run_gemba(&[
            "import",
            "csv",
            file.to_str().unwrap(),
            "--server",
            &server,
            "--machine",
            "s1/a1/l1/m1",
            "--map",
            "ts=time",
            "--map",
            "speed=value",
            "--ts-format",
            "rfc3339",
        ]);
        assert!(
            !out.contains("panicked"),
            "{name}: gemba import panicked:\n{out}"
        );
        if ok {
            let n: u64 = out
                .split("imported ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: no sample count in:\n{out}"));
            imported += n;
        } else {
            assert!(
                out.contains("Error") || out.contains("error"),
                "{name}: a failed import says why:\n{out}"
            );
        }
        assert_alive(&mut srv, &name);
    }
    eprintln!(
        "CSV: {} hostile files, {imported} valid samples imported",
        corpus("csv").len()
    );
    assert!(
        imported >= 3,
        "the corpus has valid rows; imported {imported}"
    );
    assert_eq!(
        srv.samples(VALID).len() as u64,
        imported,
        "every sample the import reported as imported is stored"
    );
}

#[test]
fn hostile_mqtt_messages_are_counted_not_fatal() {
    use rumqttc::{Client, MqttOptions, QoS};

    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let mut opts = MqttOptions::new("hostile", "127.0.0.1", srv.mqtt);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(opts, 1000);
    let pump = std::thread::spawn(move || {
        for ev in conn.iter() {
            if ev.is_err() {
                break;
            }
        }
    });
    let files = corpus("mqtt");
    let mut sent = 0;
    for file in &files {
        let payload = std::fs::read(file).unwrap();
        for topic in [
            "gemba/v1/s1/a1/l1/m1/speed",
            "gemba/v1/s1/a1/l1/m1",
            "gemba/v1/s1/a1",
            "gemba/v1/s1/a1/l1/m1/sp eed",
            "gemba/v1/s1/a1/l1/m1/speed/x/y/z",
            "other/v1/s1/a1/l1/m1/speed",
        ] {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload.clone())
                .unwrap();
            sent += 1;
        }
    }
    // A sentinel after the junk: the bridge still stores.
    let ts = now_ms() - 1000;
    client
        .publish(
            format!("gemba/v1/{SENTINEL}"),
            QoS::AtLeastOnce,
            false,
            format!(r#"{{"value": 301, "ts": {ts}}}"#),
        )
        .unwrap();
    let got = eventually(Duration::from_secs(20), || {
        let s = srv.samples(SENTINEL);
        (!s.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the sentinel after the hostile messages never arrived; log:\n{}",
            srv.logs()
        )
    });
    assert_eq!(got, vec![(ts, 301.0)]);
    let counted = eventually(Duration::from_secs(10), || {
        let junk = srv.metric("gemba_mqtt_undecodable_messages_total");
        let rejected = srv.metric("gemba_ingest_rejected_items_total{source=\"mqtt\"}");
        (junk + rejected >= files.len() as f64).then_some((junk, rejected))
    });
    eprintln!(
        "MQTT: {sent} hostile messages, counted as (undecodable, rejected items) {counted:?}"
    );
    assert!(
        counted.is_some(),
        "{sent} hostile messages were not counted as junk; metrics:\n{}",
        srv.get_text("/metrics").1
    );
    assert!(
        srv.samples(VALID).is_empty(),
        "no hostile MQTT payload holds a valid sample: {:?}",
        srv.samples(VALID)
    );
    assert_alive(&mut srv, "the MQTT corpus");
    let _ = client.disconnect();
    let _ = pump.join();
}
