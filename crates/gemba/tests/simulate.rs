//! End-to-end tests of `gemba simulate` and `gemba demo` with the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{KillOnDrop, Server, free_port, run_gemba, start_demo, wait_live};

const SAMPLE_PLANT: &str = include_str!("../../../examples/plant.toml");

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn export_is_deterministic_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let (ok, text) = run_gemba(&[
            "simulate",
            "--to",
            "none",
            "--export",
            out.to_str().unwrap(),
            "--duration",
            "3h",
            "--speed",
            "max",
            "--start",
            "2026-01-05T00:00:00Z",
            "--seed",
            "11",
        ]);
        assert!(ok, "{text}");
        assert!(text.contains("8 machines"), "{text}");
    }
    for f in [
        "events.csv",
        "labels.csv",
        "machines/plant1_production_line1_cnc1.csv",
    ] {
        assert_eq!(
            read(&a.join(f)),
            read(&b.join(f)),
            "{f} differs between two runs"
        );
    }
    let cnc1 = read(&a.join("machines/plant1_production_line1_cnc1.csv"));
    let mut lines = cnc1.lines();
    let header = lines.next().unwrap();
    for col in [
        "ts",
        "air_temp",
        "torque",
        "tool_wear",
        "vibration_rms",
        "state",
        "diameter",
    ] {
        assert!(
            header.split(',').any(|c| c == col),
            "{col} missing in {header}"
        );
    }
    assert_eq!(lines.count(), 3 * 3600);
    let labels = read(&a.join("labels.csv"));
    assert_eq!(labels.lines().count(), 1 + 8 * 3 * 3600);
    // Rows before a failure know how far away it is.
    let events = read(&a.join("events.csv"));
    assert!(
        events.contains("custom:fault_onset"),
        "no injected fault in 3 h"
    );
    assert!(events.contains(",move,"), "no lot moves");
    if events.contains("custom:failure") {
        assert!(
            labels.lines().any(|l| l.ends_with(",1")),
            "a row 1 s before a failure"
        );
    }
}

#[test]
fn publishes_over_mqtt_into_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_plant(dir.path(), SAMPLE_PLANT, "", &[]);
    let (ok, text) = run_gemba(&[
        "simulate",
        "--mqtt-port",
        &server.mqtt.to_string(),
        "--duration",
        "30m",
        "--speed",
        "max",
        "--seed",
        "3",
    ]);
    assert!(ok, "{text}");
    let samples: u64 = text
        .split("ticks, ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sample count in {text}"));
    assert!(samples > 100 * 1700, "{samples} samples in {text}");
    // The broker has every message; Gemba commits them shortly after.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stats) = server.get_json("/api/v1/stats");
        if stats["points"].as_u64() == Some(samples) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored {stats} of {samples} samples"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, latest) = server.get_json("/api/v1/latest?prefix=plant1/production/line2/mould1");
    let names: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["signal"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    for s in [
        "air_temp",
        "pressure",
        "state",
        "good_count",
        "part_weight",
        "energy",
    ] {
        assert!(names.contains(&s), "{s} not in {names:?}");
    }
    let (_, moves) = server.get_json("/api/v1/events?type=move");
    assert!(!moves.as_array().unwrap().is_empty(), "{moves}");
    let (_, prod) =
        server.get_json("/api/v1/events?type=production&asset=plant1/production/line1/pack1");
    assert!(prod.as_array().unwrap().len() > 50, "{prod}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[production]\nlot_size = 0\n").unwrap();
    let (ok, text) = run_gemba(&[
        "simulate",
        "--to",
        "none",
        "--scenario",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        text.contains("production.lot_size: must be at least 1"),
        "{text}"
    );
    std::fs::write(
        &bad,
        "[[faults]]\nkind = \"bearing\"\nmachine = \"nowhere\"\nat = \"1h\"\nduration = \"1h\"\n",
    )
    .unwrap();
    let (ok, text) = run_gemba(&[
        "simulate",
        "--to",
        "none",
        "--scenario",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        text.contains("\"nowhere\" matches no simulated machine"),
        "{text}"
    );
    let (ok, text) = run_gemba(&["simulate", "--speed", "60"]);
    assert!(!ok);
    assert!(text.contains("without --duration"), "{text}");
    let (ok, text) = run_gemba(&["simulate", "--speed", "fast", "--to", "none"]);
    assert!(!ok);
    assert!(text.contains("--speed \"fast\""), "{text}");
    // Enum-like flags and durations are checked when the command line is parsed.
    let (ok, text) = run_gemba(&["simulate", "--to", "kafka"]);
    assert!(!ok);
    assert!(
        text.contains("invalid value 'kafka' for '--to <TO>'")
            && text.contains("mqtt, direct, none"),
        "{text}"
    );
    let (ok, text) = run_gemba(&["simulate", "--to", "none", "--duration", "3 fortnights"]);
    assert!(!ok);
    assert!(text.contains("for '--duration <DURATION>'"), "{text}");
    // No broker: a clear error, not a hang.
    let (ok, text) = run_gemba(&[
        "simulate",
        "--mqtt-port",
        &free_port().to_string(),
        "--duration",
        "1m",
        "--speed",
        "max",
    ]);
    assert!(!ok);
    assert!(text.contains("cannot connect"), "{text}");
}

fn get(http: u16, path: &str) -> Option<serde_json::Value> {
    let mut r = ureq::get(&format!("http://127.0.0.1:{http}{path}"))
        .call()
        .ok()?;
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

fn interrupt(child: &mut KillOnDrop) -> bool {
    Command::new("kill")
        .arg("-INT")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.0.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn demo_serves_live_data_stops_cleanly_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo1.log");
    let mut demo = start_demo(dir.path(), http, "2h", &log);
    wait_live(&log, Duration::from_secs(90));
    // Live: the latest sample keeps moving with the wall clock.
    let signal = "plant1/production/line1/cnc1/air_temp";
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no live data; log:\n{}",
            read(&log)
        );
        if let Some(v) = get(http, &format!("/api/v1/latest?prefix={signal}"))
            && let Some(ts) = v[0]["ts"].as_i64()
            && seen.last() != Some(&ts)
        {
            seen.push(ts);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let now = common::now_ms();
    assert!(
        (now - seen[2]).abs() < 5_000,
        "latest {} vs now {now}",
        seen[2]
    );
    // Two hours of history are there at once.
    let stats = get(http, "/api/v1/stats").unwrap();
    assert!(stats["points"].as_u64().unwrap() > 100 * 7000, "{stats}");
    let events1 = stats["events"].as_u64().unwrap();
    assert!(
        interrupt(&mut demo),
        "demo did not stop cleanly on Ctrl-C; log:\n{}",
        read(&log)
    );
    let text = read(&log);
    assert!(
        text.contains("history written") && text.contains("Look at:"),
        "{text}"
    );
    assert!(text.contains("stopped; data kept"), "{text}");

    // A second run continues where the first stopped instead of writing the history again.
    let log2 = dir.path().join("demo2.log");
    let mut demo = start_demo(dir.path(), http, "2h", &log2);
    let text = wait_live(&log2, Duration::from_secs(90));
    assert!(!text.contains("writing 2.0 h of history"), "{text}");
    let stats = get(http, "/api/v1/stats").unwrap();
    let events2 = stats["events"].as_u64().unwrap();
    assert!(
        events2 < events1 + events1 / 5,
        "events {events1} → {events2}: history written twice?"
    );
    assert!(interrupt(&mut demo));
    let mut s = String::new();
    std::fs::File::open(&log2)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(s.contains("stopped; data kept"), "{s}");
}

/// The simulator publishes to a real Mosquitto broker that needs a password; Gemba takes the data
/// from that broker as its external broker.
#[test]
fn simulates_through_an_external_mosquitto_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) =
        common::start_mosquitto_with_users(dir.path(), &[("gemba", "s3cret"), ("sim", "p4ss")]);
    let server = Server::start_with_plant(
        &dir.path().join("gemba"),
        SAMPLE_PLANT,
        &format!(
            "[mqtt.external]\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"gemba\"\npassword = \"s3cret\"\nclient_id = \"gemba-sim-test\"\n"
        ),
        &[("GEMBA__MQTT__MODE", "external")],
    );
    // Give Gemba's subscriber time to subscribe (messages before it would not be delivered).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.logs().contains("MQTT subscriber connected") {
        assert!(
            Instant::now() < deadline,
            "subscriber not connected:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let port_s = port.to_string();
    let base = [
        "simulate",
        "--mqtt-port",
        &port_s,
        "--duration",
        "10m",
        "--speed",
        "max",
    ];
    let (ok, text) =
        run_gemba(&[&base[..], &["--username", "sim", "--password", "wrong"]].concat());
    assert!(!ok, "a wrong password must fail: {text}");
    assert!(text.contains("cannot connect"), "{text}");
    let (ok, text) = run_gemba(&[&base[..], &["--username", "sim", "--password", "p4ss"]].concat());
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stats) = server.get_json("/api/v1/stats");
        if stats["points"].as_u64().unwrap_or(0) > 100 * 590 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stats}; log:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
