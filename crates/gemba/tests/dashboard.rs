//! The dashboard in a real browser: `gemba demo` on free ports, then `web-tests/dashboard.mjs`
//! drives Debian's Chromium through playwright-core (load time, live values, an 8 h chart from
//! aggregates, zoom, 简体中文, memory over 30 s of live updates, screenshots).
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install -y chromium`) and
//! `npm ci --prefix web-tests`; `scripts/test` installs them. A missing piece fails the test with
//! what to install, it is never skipped.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{free_port, run_browser_script, start_demo, wait_live};

#[test]
fn dashboard_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "1h", &log);
    wait_live(&log, Duration::from_secs(120));

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let figures = run_browser_script(
        "dashboard.mjs",
        &format!("http://127.0.0.1:{http}"),
        &out,
        Some(&log),
    );
    assert_eq!(figures["ok"], true, "{figures}");
    assert!(
        figures["page_load_ms"].as_f64().unwrap() < 1000.0,
        "{figures}"
    );
    assert!(figures["chart_points"].as_u64().unwrap() > 10, "{figures}");
    for shot in ["overview.png", "machine.png", "overview-zh-CN.png"] {
        assert!(
            out.join(shot).exists(),
            "{shot} missing in {}",
            out.display()
        );
    }
    eprintln!(
        "dashboard figures: {figures}\nscreenshots in {}",
        out.display()
    );
}

/// Reads the next `update` message of an SSE stream as JSON.
fn next_update(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> serde_json::Value {
    let mut event = String::new();
    for line in lines {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            assert_eq!(event, "update");
            return serde_json::from_str(data).unwrap();
        }
    }
    panic!("the stream ended");
}

/// The live stream and the embedded files, without a browser.
#[test]
fn live_stream_and_embedded_files() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start_in(dir.path(), "");
    let t0 = common::now_ms() - 10_000;
    let (status, _) = server.post_json(
        "/api/v1/ingest",
        &serde_json::json!({"points": [
            {"signal": "s1/a1/l1/m1/temp", "ts": t0, "value": 300.0},
            {"signal": "s1/a1/l1/m1/speed", "ts": t0, "value": 1500.0},
            {"signal": "s1/a1/l1/m1/state", "ts": t0, "value": "running"}]}),
    );
    assert_eq!(status, 200);

    let resp = server
        .agent
        .get(&server.url("/api/v1/stream/latest?prefix=s1/a1"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let mut lines = std::io::BufReader::new(resp.into_body().into_reader()).lines();
    let first = next_update(&mut lines);
    assert_eq!(first["full"], true, "{first}");
    assert_eq!(first["latest"].as_array().unwrap().len(), 3, "{first}");
    assert!(
        first["latest"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["state"] == "running"),
        "{first}"
    );

    // Only what changed comes next, with the new event.
    let (status, _) = server.post_json(
        "/api/v1/ingest",
        &serde_json::json!({"points": [{"signal": "s1/a1/l1/m1/temp", "ts": t0 + 1000, "value": 301.0}],
                            "events": [{"ts": t0 + 1000, "asset": "s1/a1/l1/m1", "type": "custom", "name": "failure"}]}),
    );
    assert_eq!(status, 200);
    // The event is in the store when the batch commits and the value in the latest-value cache
    // just after: a tick between the two sends the event first and the value with the next one.
    let (mut latest, mut events) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let next = next_update(&mut lines);
        assert_eq!(next["full"], false, "{next}");
        latest.extend(next["latest"].as_array().unwrap().iter().cloned());
        events.extend(next["events"].as_array().unwrap().iter().cloned());
        if !latest.is_empty() && !events.is_empty() {
            break;
        }
    }
    assert_eq!(latest.len(), 1, "{latest:?}");
    assert_eq!(latest[0]["signal"], "s1/a1/l1/m1/temp");
    assert_eq!(latest[0]["value"], 301.0);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["name"], "failure");

    let (status, _) = server.get_json("/api/v1/stream/latest?bogus=1");
    assert_eq!(status, 400);

    // The dashboard and its files are in the binary.
    let (status, index) = server.get_text("/");
    assert_eq!(status, 200);
    assert!(index.contains("/web/app.js"), "{index}");
    for path in [
        "/web/app.js",
        "/web/pages/machine.js",
        "/web/style.css",
        "/web/vendor/uPlot.iife.min.js",
        "/web/vendor/uPlot.min.css",
        "/i18n/en.json",
        "/i18n/zh-CN.json",
    ] {
        let (status, body) = server.get_text(path);
        assert_eq!(status, 200, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    let en: serde_json::Value = serde_json::from_str(&server.get_text("/i18n/en.json").1).unwrap();
    let zh: serde_json::Value =
        serde_json::from_str(&server.get_text("/i18n/zh-CN.json").1).unwrap();
    let keys = |v: &serde_json::Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        keys(&en),
        keys(&zh),
        "en.json and zh-CN.json have other keys"
    );
    assert_eq!(zh["nav.overview"], "工厂总览");
    assert_eq!(server.get_text("/web/nope.js").0, 404);
    assert_eq!(server.get_text("/i18n/fr.json").0, 404);
}
