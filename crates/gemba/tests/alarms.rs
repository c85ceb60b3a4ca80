//! Alarms end to end over HTTP: rules with hysteresis, SPC and PCA; the alarm life cycle (active →
//! acknowledged → cleared → closed) with who and when; deduplication; webhooks with retry;
//! persistence across a restart; explanations that name the signal a simulator fault perturbed;
//! clear errors for bad rules and actions.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, eventually, now_ms, run_gemba};
use serde_json::{Value, json};

const TEMP: &str = "s1/a1/l1/m1/temp";
const SAMPLE_PLANT: &str = include_str!("../../../examples/plant.toml");

fn ingest(srv: &Server, t0: i64, values: &[f64]) {
    let points: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"signal": TEMP, "ts": t0 + 1000 * i as i64, "value": v}))
        .collect();
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "points": points }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_points"], values.len(), "{v}");
}

fn alarms(srv: &Server, query: &str) -> Vec<Value> {
    let (s, v) = srv.get_json(&format!("/api/v1/alarms{query}"));
    assert_eq!(s, 200, "{v}");
    v["alarms"].as_array().unwrap().clone()
}

fn wait_alarm(srv: &Server, query: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(20), || {
        alarms(srv, query).into_iter().find(|a| pred(a))
    })
    .unwrap_or_else(|| panic!("no alarm like that: {:?}", alarms(srv, "")))
}

/// Runs `gemba simulate` at full speed from `start` for `duration` into the server over MQTT.
fn simulate_into(srv: &Server, scenario: &std::path::Path, seed: u64, start: i64, duration: &str) {
    let (ok, text) = run_gemba(&[
        "simulate",
        "--mqtt-port",
        &srv.mqtt.to_string(),
        "--duration",
        duration,
        "--speed",
        "max",
        "--seed",
        &seed.to_string(),
        "--start",
        &start.to_string(),
        "--scenario",
        scenario.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
}

/// Waits (at most 60 s) until the latest sample of `signal` is at `ts` or later.
fn wait_stored(srv: &Server, signal: &str, ts: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, latest) = srv.get_json(&format!("/api/v1/latest?prefix={signal}"));
        if latest[0]["ts"].as_i64().unwrap_or(0) >= ts {
            return;
        }
        assert!(Instant::now() < deadline, "data not stored: {latest}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A webhook receiver that answers 500 to the first request and 200 afterwards.
fn webhook_receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.to_ascii_lowercase();
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (port, got)
}

#[test]
fn threshold_alarm_life_cycle_webhooks_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_port, hooks) = webhook_receiver();
    let extra = format!(
        "[[alarms.webhooks]]\nurl = \"http://127.0.0.1:{hook_port}/hook\"\nbackoff_ms = 50\n"
    );
    let srv = Server::start_in(dir.path(), &extra);

    // Bad rules are refused with the field and the reason.
    let bad = [
        (
            json!({"name": "x", "type": "threshold", "signal": "s1/a1/l1/m1/nope", "above": 1, "clear": 0}),
            "unknown signal",
        ),
        (
            json!({"name": "x", "type": "threshold", "signal": TEMP, "above": 1, "below": 0, "clear": 0}),
            "exactly one of above",
        ),
        (
            json!({"name": "x", "type": "threshold", "signal": TEMP, "above": 300, "clear": 310}),
            "clear: 310 must be at or below",
        ),
        (
            json!({"name": "x", "type": "threshold", "signal": TEMP, "above": 300}),
            "clear",
        ),
        (
            json!({"name": "a b", "type": "threshold", "signal": TEMP, "above": 300, "clear": 290}),
            "name",
        ),
        (
            json!({"name": "x", "type": "threshold", "signal": "s1/a1/l1/m1/state", "above": 1, "clear": 0}),
            "state signal",
        ),
        (
            json!({"name": "x", "type": "spc", "signal": TEMP}),
            "baseline",
        ),
        (
            json!({"name": "x", "type": "spc", "signal": TEMP, "center": 1, "sigma": 0}),
            "sigma: must be positive",
        ),
        (
            json!({"name": "x", "type": "spc", "signal": TEMP, "center": 1, "sigma": 1, "rules": [9]}),
            "rules: 9",
        ),
        (json!({"name": "x", "type": "magic"}), "unknown variant"),
    ];
    for (body, needle) in bad {
        let (s, v) = srv.post_json("/api/v1/alarm-rules", &body);
        assert_eq!(s, 400, "{body} → {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
    }

    let rule = json!({
        "name": "m1-hot", "type": "threshold", "signal": TEMP, "severity": "high",
        "above": 350.0, "clear": 340.0, "raise_after_s": 3, "clear_after_s": 2
    });
    let (s, v) = srv.post_json("/api/v1/alarm-rules?by=eve", &rule);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["created_by"], "eve");
    let (s, v) = srv.post_json("/api/v1/alarm-rules", &rule);
    assert_eq!(s, 409, "{v}");

    // Noise around the limit (345–355) for a minute: one alarm, never cleared (never below 340).
    let t0 = now_ms() - 600_000;
    let noisy: Vec<f64> = (0..60)
        .map(|i| if i % 3 == 0 { 345.0 } else { 355.0 })
        .collect();
    ingest(&srv, t0, &noisy);
    // Three seconds in a row above 350 are needed: 355, 355 at i=1,2 then 345… never 3 s above.
    // (The noise ends 355, 355 at 58 s and 59 s: the excursion below starts there.)
    let none = alarms(&srv, "?rule=m1-hot");
    assert!(none.is_empty(), "raised too early: {none:?}");
    // Now 5 s above (60–64 s): three seconds after the excursion began at 58 s it is raised.
    ingest(&srv, t0 + 60_000, &[360.0, 361.0, 362.0, 363.0, 364.0]);
    let a = wait_alarm(&srv, "?state=open", |a| a["rule"] == "m1-hot");
    assert_eq!(a["state"], "active");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["asset"], "s1/a1/l1/m1");
    assert_eq!(a["raised_at"], t0 + 61_000);
    assert_eq!(a["explanation"]["contributions"][0]["signal"], TEMP);
    assert!(
        a["explanation"]["rule"]
            .as_str()
            .unwrap()
            .contains("above 350"),
        "{a}"
    );
    let id = a["id"].as_u64().unwrap();

    // Actions: bad ones are refused, good ones stamped with who and when.
    let (s, v) = srv.post_json(&format!("/api/v1/alarms/{id}/close"), &json!({"by": "op"}));
    assert_eq!(s, 409, "closing an active alarm: {v}");
    let (s, v) = srv.post_json(&format!("/api/v1/alarms/{id}/ack"), &json!({}));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("by"),
        "{v}"
    );
    let (s, _) = srv.post_json(&format!("/api/v1/alarms/{id}/shelve"), &json!({"by": "op"}));
    assert_eq!(s, 404);
    let (s, _) = srv.post_json("/api/v1/alarms/999999/ack", &json!({"by": "op"}));
    assert_eq!(s, 404);
    let (s, v) = srv.post_json(
        &format!("/api/v1/alarms/{id}/ack"),
        &json!({"by": "olga", "text": "checking the coolant"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "acknowledged");
    assert_eq!(v["acknowledged"]["by"], "olga");
    assert_eq!(v["comments"][0]["text"], "checking the coolant");
    let (s, _) = srv.post_json(&format!("/api/v1/alarms/{id}/ack"), &json!({"by": "x"}));
    assert_eq!(s, 409);

    // Back to normal: between 340 and 350 it stays; 2 s below 340 clear it.
    ingest(&srv, t0 + 65_000, &[345.0, 339.0, 338.0, 337.0]);
    let a = wait_alarm(&srv, "", |a| a["id"] == id && a["state"] == "cleared");
    assert_eq!(a["cleared_at"], t0 + 68_000);
    let (s, v) = srv.post_json(
        &format!("/api/v1/alarms/{id}/close"),
        &json!({"by": "olga"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "closed");
    let whats: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect();
    assert_eq!(whats, ["raised", "acknowledged", "cleared", "closed"]);

    // A second excursion opens a new alarm; a third one while it is open re-raises it (dedup).
    ingest(
        &srv,
        t0 + 80_000,
        &[360.0, 360.0, 360.0, 360.0, 330.0, 330.0, 330.0],
    );
    ingest(&srv, t0 + 90_000, &[360.0, 360.0, 360.0, 360.0]);
    let b = wait_alarm(&srv, "?state=active", |a| {
        a["rule"] == "m1-hot" && a["count"] == 2
    });
    assert_ne!(b["id"], id);
    assert_eq!(alarms(&srv, "?rule=m1-hot").len(), 2);
    // Filters.
    assert_eq!(alarms(&srv, "?state=closed").len(), 1);
    assert_eq!(alarms(&srv, "?severity=critical").len(), 0);
    assert_eq!(alarms(&srv, "?asset=s1/a1").len(), 2);
    let (s, v) = srv.get_json("/api/v1/alarms?state=sleeping");
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("sleeping"));
    // The raise and clear are events at the machine too (written after the alarm changes).
    let ev = eventually(Duration::from_secs(10), || {
        let (_, ev) = srv.get_json("/api/v1/events?type=custom:alarm");
        (ev.as_array().unwrap().len() >= 3).then_some(ev)
    });
    assert!(ev.is_some(), "fewer than 3 alarm events");

    // Webhooks: the first delivery got a 500 and was retried.
    let got = eventually(Duration::from_secs(20), || {
        let g = hooks.lock().unwrap().clone();
        (g.iter().filter(|h| h["event"] == "closed").count() == 1).then_some(g)
    })
    .expect("webhooks delivered");
    assert_eq!(got[0]["event"], "raised");
    assert_eq!(
        got[1]["event"], "raised",
        "the failed first delivery was retried"
    );
    assert_eq!(got[1]["alarm"]["rule"], "m1-hot");
    // The counter moves when Gemba has read the receiver's answer, a moment after the receiver
    // recorded the hook.
    assert!(
        eventually(Duration::from_secs(10), || {
            (srv.metric("gemba_webhooks_sent_total") >= 4.0).then_some(())
        })
        .is_some(),
        "gemba_webhooks_sent_total below 4"
    );

    // A restart keeps rules and alarms; the rule goes on evaluating.
    let mut srv = srv;
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    assert_eq!(alarms(&srv, "?rule=m1-hot").len(), 2);
    let (s, r) = srv.get_json("/api/v1/alarm-rules/m1-hot");
    assert_eq!(s, 200, "{r}");
    ingest(&srv, t0 + 100_000, &[330.0, 330.0, 330.0, 330.0]);
    wait_alarm(&srv, "", |a| a["id"] == b["id"] && a["state"] == "cleared");
    // Deleting the rule keeps its history (retention is tested below).
    let r = srv
        .agent
        .delete(&srv.url("/api/v1/alarm-rules/m1-hot"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, _) = srv.get_json("/api/v1/alarm-rules/m1-hot");
    assert_eq!(s, 404);
    assert_eq!(alarms(&srv, "?rule=m1-hot").len(), 2);
}

#[test]
fn spc_rule_explains_with_the_rule_and_the_points() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    // Baseline: an hour of in-control data alternating 299/301 (σ from the moving range).
    let t0 = now_ms() - 7_200_000;
    let base: Vec<f64> = (0..600)
        .map(|i| if i % 2 == 0 { 299.0 } else { 301.0 })
        .collect();
    ingest(&srv, t0, &base);
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "m1-temp-spc", "type": "spc", "signal": TEMP,
                "baseline": {"from": t0, "to": t0 + 600_000}, "rules": [1, 2]}),
    );
    assert_eq!(s, 201, "{v}");
    // MR̄ = 2 → σ = 2/1.128; centre 300.
    assert!(
        (v["fitted"]["center"].as_f64().unwrap() - 300.0).abs() < 1e-9,
        "{v}"
    );
    assert!(
        (v["fitted"]["sigma"].as_f64().unwrap() - 2.0 / 1.128).abs() < 1e-9,
        "{v}"
    );
    // Nine points at 300.5 (above the centre, inside 1σ): rule 2 fires on the ninth.
    let t1 = t0 + 3_600_000;
    ingest(&srv, t1, &[300.5; 9]);
    let a = wait_alarm(&srv, "", |a| a["rule"] == "m1-temp-spc");
    assert_eq!(a["raised_at"], t1 + 8000);
    let ex = &a["explanation"];
    assert!(ex["rule"].as_str().unwrap().contains("SPC rule 2"), "{ex}");
    assert_eq!(ex["values"].as_array().unwrap().len(), 9, "{ex}");
    assert_eq!(ex["values"][0]["ts"], t1);
    assert!((ex["limits"]["center"].as_f64().unwrap() - 300.0).abs() < 1e-9);
}

/// A sensor bias injected by the simulator on one signal of one machine is caught by the PCA rule
/// of that machine, and the explanation's top signal is the biased one.
#[test]
fn pca_and_vae_explanations_name_the_perturbed_signal() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), SAMPLE_PLANT, "", &[]);
    let machine = "plant1/production/line1/cnc2";
    let biased = "motor_current";
    let start = now_ms() - 6 * 3_600_000;
    let healthy = dir.path().join("healthy.toml");
    std::fs::write(
        &healthy,
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n[quality]\ntool_wear_shift = 0.0\n",
    )
    .unwrap();
    let sim = |scenario: &std::path::Path, from: i64, duration: &str| {
        simulate_into(&srv, scenario, 7, from, duration)
    };
    let stored_until = |ts: i64| wait_stored(&srv, &format!("{machine}/{biased}"), ts);
    sim(&healthy, start, "2h");
    stored_until(start + 2 * 3_600_000 - 60_000);
    let (s, rule) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "cnc2-pca", "type": "pca", "machine": machine,
                "signals": ["spindle_speed", "torque", "motor_current", "power", "vibration_rms"],
                "baseline": {"from": start, "to": start + 2 * 3_600_000}}),
    );
    assert_eq!(s, 201, "{rule}");
    let fitted = &rule["fitted"];
    assert!(fitted["train_rows"].as_u64().unwrap() > 1000, "{fitted}");
    // The VAE on windows of 3 rows of the same signals, trained on the same baseline.
    let (s, rule) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "cnc2-vae", "type": "vae", "machine": machine,
                "signals": ["spindle_speed", "torque", "motor_current", "power", "vibration_rms"],
                "baseline": {"from": start, "to": start + 2 * 3_600_000}}),
    );
    assert_eq!(s, 201, "{rule}");
    let fitted = &rule["fitted"];
    assert!(fitted["train_windows"].as_u64().unwrap() > 1000, "{fitted}");
    assert!(fitted["threshold"].as_f64().unwrap() > 0.0, "{fitted}");
    // The network is a version in the model registry, for the machine.
    let (_, models) = srv.get_json("/api/v1/models");
    assert!(
        models["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "cnc2-vae-vae"
                && m["kind"] == "vae"
                && m["version"] == fitted["version"]),
        "{models}"
    );

    // Two more hours, with the bias from 30 min on.
    let faulty = dir.path().join("faulty.toml");
    std::fs::write(
        &faulty,
        format!(
            "[failures]\nrules = false\nrandom_failure_probability = 0.0\n[quality]\ntool_wear_shift = 0.0\n\
             [[faults]]\nkind = \"sensor_bias\"\nmachine = \"cnc2\"\nsignal = \"{biased}\"\nat = \"30m\"\nmagnitude = 8.0\n"
        ),
    )
    .unwrap();
    let from = start + 2 * 3_600_000;
    sim(&faulty, from, "2h");
    stored_until(from + 2 * 3_600_000 - 60_000);
    let onset = from + 30 * 60_000;
    for (rule, score) in [("cnc2-pca", "anomaly_index"), ("cnc2-vae", "vae_index")] {
        let a = wait_alarm(&srv, "", |a| a["rule"] == rule);
        let raised = a["raised_at"].as_i64().unwrap();
        assert!(
            raised >= onset && raised < onset + 120_000,
            "{rule} raised {} s after the onset: {a}",
            (raised - onset) / 1000
        );
        let top = &a["explanation"]["contributions"][0];
        assert_eq!(top["signal"], format!("{machine}/{biased}"), "{a}");
        // The score is a signal of its own.
        let (_, latest) = srv.get_json(&format!("/api/v1/latest?prefix={machine}/{score}"));
        assert!(latest[0]["value"].as_f64().unwrap() > 1.0, "{latest}");
        // No earlier (false) alarm of the rule in the healthy half hour.
        assert_eq!(alarms(&srv, &format!("?rule={rule}")).len(), 1, "{rule}");
    }
}

/// Defect prediction: the parts' quality results in the store become a training set, a logistic
/// regression learns P(defect) from the process signals, and a `model` rule scores it live; the
/// alarm's explanation names tool wear, which drives the simulated defects.
#[test]
fn defect_model_trained_from_the_store_scores_live_and_explains() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), SAMPLE_PLANT, "", &[]);
    let machine = "plant1/production/line1/cnc1";
    // A worn tool moves the diameter by 60 % of the tolerance at 240 min of wear: parts made
    // with a worn tool are often out of spec. No other faults or failures.
    let scenario = dir.path().join("wear.toml");
    std::fs::write(
        &scenario,
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n\
         [quality]\ntool_wear_shift = 0.6\n[production]\nstartup_parts = 0\n",
    )
    .unwrap();
    let start = now_ms() - 10 * 3_600_000;
    let sim = |from: i64, duration: &str| simulate_into(&srv, &scenario, 11, from, duration);
    let stored_until = |ts: i64| wait_stored(&srv, &format!("{machine}/tool_wear"), ts);
    sim(start, "6h");
    stored_until(start + 6 * 3_600_000 - 60_000);

    // Bad requests name the problem.
    let (s, v) = srv.get_json("/api/v1/datasets/parts?machine=plant1/production/line1/nope");
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown asset"),
        "{v}"
    );
    let (s, v) = srv.get_json("/api/v1/datasets/parts?machine=plant1/production/line1");
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("spec limits"),
        "{v}"
    );

    let (s, csv) = srv.get_text(&format!(
        "/api/v1/datasets/parts?machine={machine}&from={start}&to={}",
        start + 6 * 3_600_000
    ));
    assert_eq!(s, 200, "{csv}");
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("ts,") && header.ends_with(",quality"),
        "{header}"
    );
    assert!(
        header.contains("tool_wear") && !header.contains("diameter"),
        "{header}"
    );
    let defects = csv.lines().filter(|l| l.ends_with(",defect")).count();
    let ok = csv.lines().filter(|l| l.ends_with(",ok")).count();
    assert!(defects > 20 && ok > 100, "{defects} defects, {ok} ok parts");
    let data = dir.path().join("parts.csv");
    std::fs::write(&data, &csv).unwrap();
    let server = format!("http://127.0.0.1:{}", srv.http);
    let (ok_train, text) = run_gemba(&[
        "train",
        "--model",
        "logistic",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "quality",
        "--drop",
        "ts",
        "--class-weight",
        "balanced",
        "--out",
        dir.path().join("defects.json").to_str().unwrap(),
        "--register",
        "defects",
        "--asset",
        machine,
        "--activate",
        "--server",
        &server,
    ]);
    assert!(ok_train, "{text}");

    // Bad model rules.
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "x", "type": "model", "machine": machine, "model": "nope"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nope"),
        "{v}"
    );
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "x", "type": "model", "machine": "plant1/production/line2/pack2", "model": "defects"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was trained for"),
        "{v}"
    );
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "x", "type": "model", "machine": machine, "model": "defects", "classes": ["bad"]}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("defect"),
        "{v}"
    );

    // A kernel SVM trained without probabilities cannot feed a probability rule.
    let (ok_svc, text) = run_gemba(&[
        "train",
        "--model",
        "svc",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "quality",
        "--drop",
        "ts",
        "--out",
        dir.path().join("defects-svc.json").to_str().unwrap(),
        "--register",
        "defects-svc",
        "--asset",
        machine,
        "--server",
        &server,
    ]);
    assert!(ok_svc, "{text}");
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "x", "type": "model", "machine": machine, "model": "defects-svc"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no probabilities"),
        "{v}"
    );

    let (s, rule) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "cnc1-defects", "type": "model", "machine": machine, "model": "defects",
                "above": 0.8, "clear": 0.5, "raise_after": 5}),
    );
    assert_eq!(s, 201, "{rule}");
    assert_eq!(
        rule["fitted"]["class_names"],
        json!(["defect", "ok"]),
        "{rule}"
    );
    sim(start + 6 * 3_600_000, "3h");
    stored_until(start + 9 * 3_600_000 - 60_000);
    let a = wait_alarm(&srv, "", |a| a["rule"] == "cnc1-defects");
    let top = &a["explanation"]["contributions"][0];
    assert_eq!(top["signal"], format!("{machine}/tool_wear"), "{a}");
    assert!(a["message"].as_str().unwrap().contains("defect"), "{a}");
    let p = srv.samples(&format!("{machine}/p_defects"));
    assert!(p.len() > 1000, "{} scores", p.len());
    assert!(p.iter().all(|(_, v)| (0.0..=1.0).contains(v)));
}

/// Health and remaining useful life on a simulated bearing that wears out: healthy before the
/// wear, a degradation trend and a RUL close to the truth near the end, clear errors for bad input.
#[test]
fn bearing_health_and_remaining_useful_life() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), SAMPLE_PLANT, "", &[]);
    let machine = "plant1/production/line1/cnc1";
    let scenario = dir.path().join("bearing.toml");
    std::fs::write(
        &scenario,
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n\
         [production]\nminor_stops_per_hour = 0.0\n\
         [[faults]]\nkind = \"bearing\"\nmachine = \"line1/cnc1\"\nat = \"2h\"\nduration = \"4h\"\n",
    )
    .unwrap();
    let start = now_ms() - 10 * 3_600_000;
    simulate_into(&srv, &scenario, 5, start, "9h");
    let failure = eventually(Duration::from_secs(60), || {
        let (_, v) = srv.get_json(&format!(
            "/api/v1/events?type=custom:failure&asset={machine}&from={start}"
        ));
        v.as_array()
            .and_then(|a| a.iter().find(|e| e["attrs"]["mode"] == "bearing").cloned())
    })
    .expect("the bearing fails in the run");
    let fail_ts = failure["ts"].as_i64().unwrap();
    let onset = start + 2 * 3_600_000;
    let q = |to: i64| {
        srv.get_json(&format!(
            "/api/v1/health?machine={machine}&baseline_from={}&baseline_to={onset}&to={to}",
            start + 3_600_000
        ))
    };
    // Before the wear: healthy, no trend.
    let (s, v) = q(onset + 60_000);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["estimate"]["degrading"], false, "{v}");
    assert!(v["estimate"]["health"].as_f64().unwrap() > 0.9, "{v}");
    // Half an hour (wall time) before the failure: a trend, and a RUL close to the running time
    // left (at most 30 min of wall time).
    let (s, v) = q(fail_ts - 30 * 60_000);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["estimate"]["degrading"], true, "{v}");
    let rul = v["rul_hours"].as_f64().unwrap();
    assert!(
        rul > 0.0 && rul < 1.5,
        "RUL {rul} h with at most 0.5 h of running left: {v}"
    );
    assert!(v["estimate"]["health"].as_f64().unwrap() < 0.6, "{v}");
    // Bad input.
    let (s, v) = srv.get_json("/api/v1/health?machine=plant1/production/line1/nope");
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown asset"),
        "{v}"
    );
    let (s, v) = srv.get_json(&format!(
        "/api/v1/health?machine={machine}&threshold=1&baseline_from={}&baseline_to={onset}",
        start + 3_600_000
    ));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("threshold"),
        "{v}"
    );
    let (s, _) = srv.get_json(&format!("/api/v1/health?machine={machine}&threshold=x"));
    assert_eq!(s, 400);
}

/// A `rul` rule raises a critical alarm while a simulated bearing is still running, hours before it
/// would fail, and the server opens a work order for it.
#[test]
fn rul_rule_warns_before_the_bearing_fails_and_opens_a_work_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(
        dir.path(),
        SAMPLE_PLANT,
        "[alarms]\nperiodic_interval_s = 1\n",
        &[],
    );
    let machine = "plant1/production/line1/cnc1";
    let scenario = dir.path().join("bearing.toml");
    // Wear starts 1 h into a 6 h run that ends now and would take 330 min of running to fail
    // (the machine runs about 85 % of the time: by the end most of its life is used up).
    std::fs::write(
        &scenario,
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n\
         [production]\nminor_stops_per_hour = 0.0\n\
         [[faults]]\nkind = \"bearing\"\nmachine = \"line1/cnc1\"\nat = \"1h\"\nduration = \"330m\"\n",
    )
    .unwrap();
    let start = now_ms() - 6 * 3_600_000 - 60_000;
    simulate_into(&srv, &scenario, 5, start, "6h");
    wait_stored(
        &srv,
        &format!("{machine}/vibration_rms"),
        start + 6 * 3_600_000 - 60_000,
    );
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "cnc1-rul", "type": "rul", "machine": machine, "threshold": 11.0,
                "lead_time_h": 8.0, "severity": "critical",
                "baseline": {"from": start, "to": start + 3_600_000}}),
    );
    assert_eq!(s, 201, "{v}");
    let health = srv.get_json(&format!(
        "/api/v1/health?machine={machine}&baseline_from={start}&baseline_to={}",
        start + 3_600_000
    ));
    let a = eventually(Duration::from_secs(20), || {
        alarms(&srv, "?rule=cnc1-rul").into_iter().next()
    })
    .unwrap_or_else(|| panic!("no RUL alarm; health: {health:?}"));
    assert_eq!(a["rule_type"], "rul");
    assert_eq!(a["severity"], "critical");
    let rul = a["explanation"]["limits"]["rul_hours"].as_f64().unwrap();
    assert!(rul > 0.5 && rul < 8.0, "{a}");
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("running hours of life left"),
        "{a}"
    );
    // … while the bearing still runs: it has not failed in the run.
    let (_, failures) = srv.get_json(&format!(
        "/api/v1/events?type=custom:failure&asset={machine}&from={start}"
    ));
    assert_eq!(failures.as_array().unwrap().len(), 0, "{failures}");
    // The critical alarm opened a work order.
    let wo = eventually(Duration::from_secs(30), || {
        let (_, v) = srv.get_json("/api/v1/work-orders");
        let list = v
            .as_array()
            .cloned()
            .or_else(|| v["work_orders"].as_array().cloned())?;
        list.into_iter().find(|w| w["alarm"] == a["id"])
    });
    assert!(wo.is_some(), "no work order for the RUL alarm");
    // Bad rules.
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "x", "type": "rul", "machine": machine, "threshold": 11.0, "lead_time_h": 0}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lead_time_h"),
        "{v}"
    );
}

/// `alarms.retention_days`: closed alarms are deleted by the maintenance pass once they are older
/// than the retention; open ones stay.
#[test]
fn closed_alarms_past_their_retention_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_env(
        dir.path(),
        "[alarms]\nretention_days = 0\n",
        &[("GEMBA__STORAGE__MAINTENANCE_INTERVAL_S", "1")],
    );
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "hot", "type": "threshold", "signal": TEMP, "above": 350.0, "clear": 340.0}),
    );
    assert_eq!(s, 201, "{v}");
    let t0 = now_ms() - 60_000;
    ingest(&srv, t0, &[360.0, 330.0]);
    let a = wait_alarm(&srv, "", |a| a["state"] == "cleared");
    let id = a["id"].as_u64().unwrap();
    ingest(&srv, t0 + 10_000, &[360.0]);
    wait_alarm(&srv, "", |a| a["state"] == "active" && a["count"] == 2);
    ingest(&srv, t0 + 20_000, &[330.0]);
    wait_alarm(&srv, "", |a| a["state"] == "cleared" && a["count"] == 2);
    let (s, v) = srv.post_json(
        &format!("/api/v1/alarms/{id}/close"),
        &json!({"by": "olga"}),
    );
    assert_eq!(s, 200, "{v}");
    // A second, open alarm must survive.
    ingest(&srv, t0 + 30_000, &[360.0]);
    let open = wait_alarm(&srv, "", |a| a["state"] == "active" && a["id"] != id);
    eventually(Duration::from_secs(20), || {
        let (s, _) = srv.get_json(&format!("/api/v1/alarms/{id}"));
        (s == 404).then_some(())
    })
    .expect("the closed alarm is deleted");
    let (s, _) = srv.get_json(&format!("/api/v1/alarms/{}", open["id"]));
    assert_eq!(s, 200);
}
