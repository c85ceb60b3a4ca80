//! Work orders end to end over HTTP: made by hand and automatically from a critical alarm (one
//! per alarm), the life cycle open → assigned → in_progress → done with who and when, parts and
//! notes, 409 on impossible transitions, clear errors, persistence across a restart, and the
//! repair times in the machine's maintenance figures.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Server, eventually, now_ms, run_gemba};
use serde_json::{Value, json};

const M1: &str = "s1/a1/l1/m1";
const TEMP: &str = "s1/a1/l1/m1/temp";

fn post(srv: &Server, path: &str, body: Value) -> (u16, Value) {
    srv.post_json(path, &body)
}

#[test]
fn life_cycle_alarms_errors_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");

    // Bad inputs name the field.
    let bad = [
        (
            json!({"machine": "s1/a1/l1/m9", "title": "x", "by": "ann"}),
            400,
            "machine",
        ),
        (json!({"title": "x", "by": "ann"}), 400, "machine"),
        (json!({"machine": M1, "by": "ann"}), 400, "title"),
        (json!({"machine": M1, "title": "x", "by": ""}), 400, "by"),
        (
            json!({"machine": M1, "title": "x", "by": "ann", "alarm": 999}),
            400,
            "alarm",
        ),
        (
            json!({"machine": M1, "title": "x", "by": "ann", "colour": "red"}),
            400,
            "colour",
        ),
    ];
    for (body, status, needle) in bad {
        let (s, v) = post(&srv, "/api/v1/work-orders", body.clone());
        assert_eq!(s, status, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
    }

    // By hand: open → assigned → in_progress → done.
    let (s, w) = post(
        &srv,
        "/api/v1/work-orders",
        json!({"machine": M1, "title": "Replace the spindle belt", "by": "ann"}),
    );
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["state"], "open");
    assert_eq!(w["created"]["by"], "ann");
    let id = w["id"].as_u64().unwrap();
    let act = |srv: &Server, action: &str, body: Value| {
        post(srv, &format!("/api/v1/work-orders/{id}/{action}"), body)
    };
    // Impossible transitions answer 409 and say why.
    let (s, v) = act(&srv, "done", json!({"by": "ann"}));
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in_progress"),
        "{v}"
    );
    let (s, v) = act(&srv, "start", json!({"by": "ann"}));
    assert_eq!(s, 409, "{v}");
    let (s, v) = act(&srv, "assign", json!({"by": "ann"}));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("assignee"));
    let (s, v) = act(&srv, "fly", json!({"by": "ann"}));
    assert_eq!(s, 404, "{v}");
    let (s, v) = act(&srv, "assign", json!({"by": "ann", "assignee": "bob"}));
    assert_eq!((s, v["state"].as_str()), (200, Some("assigned")), "{v}");
    let (s, v) = act(&srv, "start", json!({"by": "bob"}));
    assert_eq!((s, v["state"].as_str()), (200, Some("in_progress")), "{v}");
    let (s, v) = act(
        &srv,
        "parts",
        json!({"by": "bob", "parts": [{"name": "belt V-13", "quantity": 1}, {"name": "grease g", "quantity": -2}]}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parts[1].quantity")
    );
    let (s, v) = act(
        &srv,
        "parts",
        json!({"by": "bob", "parts": [{"name": "belt V-13", "quantity": 1}]}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = act(&srv, "note", json!({"by": "bob"}));
    assert_eq!(s, 400, "{v}");
    let (s, v) = act(
        &srv,
        "note",
        json!({"by": "bob", "text": "belt was cracked"}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = act(&srv, "done", json!({"by": "bob", "text": "test run ok"}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "done");
    assert_eq!(v["assignee"], "bob");
    assert_eq!(v["parts"][0]["name"], "belt V-13");
    assert_eq!(v["notes"].as_array().unwrap().len(), 2);
    let steps: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["created", "assigned", "started", "part", "note", "done"]
    );
    assert!(v["done"]["at"].as_i64().unwrap() >= v["started"]["at"].as_i64().unwrap());
    let (s, v) = act(&srv, "assign", json!({"by": "ann", "assignee": "eve"}));
    assert_eq!(s, 409, "{v}");

    // A critical alarm raises a work order by itself, once.
    let (s, v) = post(
        &srv,
        "/api/v1/alarm-rules",
        json!({"name": "m1-overheat", "type": "threshold", "signal": TEMP, "severity": "critical",
               "above": 350.0, "clear": 340.0}),
    );
    assert_eq!(s, 201, "{v}");
    let t0 = now_ms() - 60_000;
    let (s, v) = post(
        &srv,
        "/api/v1/ingest",
        json!({"points": [{"signal": TEMP, "ts": t0, "value": 360.0}, {"signal": TEMP, "ts": t0 + 1000, "value": 361.0}]}),
    );
    assert_eq!(s, 200, "{v}");
    let auto = eventually(Duration::from_secs(20), || {
        let (_, v) = srv.get_json("/api/v1/work-orders?state=open");
        v["work_orders"]
            .as_array()
            .and_then(|a| a.iter().find(|w| w["alarm"].is_u64()).cloned())
    })
    .expect("a work order from the critical alarm");
    assert_eq!(auto["machine"], M1);
    assert_eq!(auto["created"]["by"], "gemba");
    assert!(
        auto["title"].as_str().unwrap().starts_with("m1-overheat"),
        "{auto}"
    );
    // The same alarm by hand: 409.
    let (s, v) = post(
        &srv,
        "/api/v1/work-orders",
        json!({"alarm": auto["alarm"], "by": "ann"}),
    );
    assert_eq!(s, 409, "{v}");

    // The CLI lists and acts.
    let server = srv.url("");
    let server = server.trim_end_matches('/');
    let (ok, out) = run_gemba(&["work-orders", "list", "--state", "all", "--server", server]);
    assert!(
        ok && out.contains("Replace the spindle belt") && out.contains("done"),
        "{out}"
    );
    let (ok, out) = run_gemba(&[
        "work-orders",
        "act",
        &id.to_string(),
        "start",
        "--by",
        "bob",
        "--server",
        server,
    ]);
    assert!(!ok && out.contains("409"), "{out}");

    // Lists filter by state and asset.
    let (_, v) = srv.get_json("/api/v1/work-orders?state=done");
    assert_eq!(v["work_orders"].as_array().unwrap().len(), 1);
    let (_, v) = srv.get_json(&format!("/api/v1/work-orders?asset={M1}&state=all"));
    assert_eq!(v["work_orders"].as_array().unwrap().len(), 2);
    let (s, v) = srv.get_json("/api/v1/work-orders?state=later");
    assert_eq!(s, 400, "{v}");

    // Maintenance figures: the repair time of the done order.
    let (s, m) = srv.get_json(&format!("/api/v1/maintenance?machine={M1}"));
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["work_orders"].as_array().unwrap().len(), 2);
    assert!(m["mean_repair_s"].as_f64().unwrap() >= 0.0, "{m}");

    // Everything survives a restart; ids continue.
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    let (s, v) = srv.get_json(&format!("/api/v1/work-orders/{id}"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "done");
    assert_eq!(v["history"].as_array().unwrap().len(), 6);
    let (s, w) = post(
        &srv,
        "/api/v1/work-orders",
        json!({"machine": M1, "title": "Check coolant", "by": "ann", "assignee": "bob"}),
    );
    assert_eq!(s, 201, "{w}");
    assert_eq!(w["state"], "assigned");
    assert!(w["id"].as_u64().unwrap() > auto["id"].as_u64().unwrap());
    let (_, v) = srv.get_json("/api/v1/work-orders?state=open");
    assert_eq!(
        v["work_orders"].as_array().unwrap().len(),
        2,
        "no duplicate after restart"
    );
}

/// Two hours of M1 from `t0`: temperature every 10 s rising 0.1 a sample (36 K an hour), speed
/// 1500 sent once; the machine runs, fails (power) at 90 min, is down until 110 min, then runs
/// again.
fn failure_history(srv: &Server, t0: i64) {
    let temps: Vec<f64> = (0..720).map(|i| 300.0 + f64::from(i) / 10.0).collect();
    let body = json!({
        "series": [{"signal": TEMP, "t0": t0, "dt": 10_000, "values": temps}],
        "points": [
            {"signal": "s1/a1/l1/m1/state", "ts": t0, "value": "running"},
            {"signal": "s1/a1/l1/m1/state", "ts": t0 + 90 * 60_000, "value": "down"},
            {"signal": "s1/a1/l1/m1/state", "ts": t0 + 110 * 60_000, "value": "running"},
            {"signal": "s1/a1/l1/m1/speed", "ts": t0, "value": 1500.0}
        ],
        "events": [{"ts": t0 + 90 * 60_000, "asset": M1, "type": "custom", "name": "failure", "attrs": {"mode": "power"}}]
    });
    let (s, r) = post(srv, "/api/v1/ingest", body);
    assert_eq!(s, 200, "{r}");
}

/// The failure-within-horizon training set on a hand-made history with a known answer: rows every
/// minute, labelled with the failure's mode in the 10 minutes before it, none while the machine
/// is down, and clear errors for a horizon longer than the range and for a range without failures.
#[test]
fn horizon_dataset_labels_the_minutes_before_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let t0 = (now_ms() - 3 * 3_600_000) / 60_000 * 60_000;
    failure_history(&srv, t0);
    let q = |extra: &str| {
        srv.get_text(&format!(
            "/api/v1/datasets/horizon?machine={M1}&from={t0}&to={}&step=1m{extra}",
            t0 + 120 * 60_000
        ))
    };
    let (s, csv) = q("&horizon=10m");
    assert_eq!(s, 200, "{csv}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ts,speed,temp,failure"));
    let rows: Vec<(i64, f64, String)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[0].parse::<i64>().unwrap() - t0) / 60_000,
                f[2].parse().unwrap(),
                f[3].to_owned(),
            )
        })
        .collect();
    let minutes: Vec<i64> = rows.iter().map(|r| r.0).collect();
    // Minutes 1..=89 and 110..=120: the 20 minutes down are left out.
    let expected: Vec<i64> = (1..=89).chain(110..=120).collect();
    assert_eq!(minutes, expected);
    for (m, temp, label) in &rows {
        let want = if (80..90).contains(m) { "power" } else { "ok" };
        assert_eq!(label, want, "minute {m}");
        // The latest temperature at or before the row's time (the last sample is at 119:50).
        let i = (*m * 6).min(719);
        assert!(
            (temp - (300.0 + i as f64 / 10.0)).abs() < 1e-9,
            "minute {m}: {temp}"
        );
    }
    let (s, e) = q("&horizon=3h");
    assert_eq!(s, 400);
    assert!(e.contains("not shorter than the history"), "{e}");
    let (s, e) = srv.get_text(&format!(
        "/api/v1/datasets/horizon?machine={M1}&from={t0}&to={}&horizon=10m",
        t0 + 60 * 60_000
    ));
    assert_eq!(s, 400);
    assert!(e.contains("no custom:failure events"), "{e}");
    let (s, e) = q("&horizon=10m&step=0s");
    assert_eq!(s, 400, "{e}");
}

/// Window features: the horizon set with `window=10m` gives each gauge's mean and slope over the
/// last 10 minutes (known answers on a rising temperature and a speed sent once; no row before
/// the data covers a window), a logistic regression trained on it feeds a `model` rule, and the
/// rule's live probabilities equal the model's on the rows of the same set cut afterwards from the
/// same data: training and live scoring compute the features the same way.
#[test]
fn window_features_are_the_same_in_training_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let t0 = (now_ms() - 4 * 3_600_000) / 60_000 * 60_000;
    failure_history(&srv, t0);
    let q = |to: i64, extra: &str| {
        srv.get_text(&format!(
            "/api/v1/datasets/horizon?machine={M1}&from={t0}&to={to}&step=1m&horizon=10m{extra}"
        ))
    };
    let (s, csv) = q(t0 + 120 * 60_000, "&window=10m&stats=mean,slope");
    assert_eq!(s, 200, "{csv}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("ts,speed,speed:mean_10m,speed:slope_10m,temp,temp:mean_10m,temp:slope_10m,failure")
    );
    let mut checked = 0;
    let mut first = i64::MAX;
    for l in lines {
        let f: Vec<f64> = l.split(',').take(7).map(|x| x.parse().unwrap()).collect();
        let m = (f[0] as i64 - t0) / 60_000;
        first = first.min(m);
        // Speed was sent once: constant, no trend.
        assert_eq!((f[1], f[2], f[3]), (1500.0, 1500.0, 0.0), "minute {m}: {l}");
        if (10..=89).contains(&m) {
            // The 60 samples 6m-59 ..= 6m.
            let mean = 300.0 + (6.0 * m as f64 - 29.5) / 10.0;
            assert!((f[5] - mean).abs() < 1e-9, "minute {m}: mean {}", f[5]);
            assert!((f[6] - 36.0).abs() < 1e-6, "minute {m}: slope {}", f[6]);
            checked += 1;
        }
    }
    assert_eq!(checked, 80);
    assert_eq!(first, 10, "the first 10 minutes do not cover a window");
    for (extra, field) in [
        ("&window=10x", "window"),
        ("&window=500ms", "window"),
        ("&window=10m&stats=median", "stats"),
    ] {
        let (s, e) = q(t0 + 120 * 60_000, extra);
        assert_eq!(s, 400, "{extra}: {e}");
        assert!(e.contains(field), "{extra}: {e}");
    }

    // A model trained on the windowed set, scored live by a rule.
    let data = dir.path().join("horizon.csv");
    std::fs::write(&data, &csv).unwrap();
    let server = format!("http://127.0.0.1:{}", srv.http);
    let model_file = dir.path().join("horizon.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "logistic",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "failure",
        "--drop",
        "ts",
        "--class-weight",
        "balanced",
        "--out",
        model_file.to_str().unwrap(),
        "--register",
        "horizon",
        "--asset",
        M1,
        "--server",
        &server,
    ]);
    assert!(ok, "{text}");
    let (s, rule) = post(
        &srv,
        "/api/v1/alarm-rules",
        json!({"name": "m1-horizon", "type": "model", "machine": M1, "model": "horizon"}),
    );
    assert_eq!(s, 201, "{rule}");
    // 40 more minutes, the temperature falling now, speed and state (the rule scores while the
    // machine runs) sent once more.
    let live0 = t0 + 120 * 60_000;
    let temps: Vec<f64> = (0..240)
        .map(|i| 372.0 - f64::from(i) / 20.0 + f64::from(i % 3))
        .collect();
    let body = json!({
        "series": [{"signal": TEMP, "t0": live0, "dt": 10_000, "values": temps}],
        "points": [
            {"signal": "s1/a1/l1/m1/speed", "ts": live0, "value": 1450.0},
            {"signal": "s1/a1/l1/m1/state", "ts": live0, "value": "running"}
        ]
    });
    let (s, r) = post(&srv, "/api/v1/ingest", body);
    assert_eq!(s, 200, "{r}");
    // The set cut now, its rows of the live period: the rule primed its windows from the stored
    // history when it was made, so they are full from the first live sample.
    let compared = live_matches_offline(&srv, &model_file, t0, live0, live0 + 39 * 60_000);
    assert_eq!(compared, 40);

    // After a restart the restored rule primes itself from the store again.
    let mut srv = srv;
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    let live1 = live0 + 40 * 60_000;
    let temps: Vec<f64> = (0..60).map(|i| 360.0 + f64::from(i % 5)).collect();
    let body = json!({
        "series": [{"signal": TEMP, "t0": live1, "dt": 10_000, "values": temps}],
        "points": [{"signal": "s1/a1/l1/m1/state", "ts": live1, "value": "running"}]
    });
    let (s, r) = post(&srv, "/api/v1/ingest", body);
    assert_eq!(s, 200, "{r}");
    let compared = live_matches_offline(&srv, &model_file, t0, live1, live1 + 9 * 60_000);
    assert_eq!(compared, 10);
}

/// Waits until the `horizon` rule of M1 has scored the temperature sample at `to`, then compares
/// its live probabilities at every minute of `[from, to]` with the model's on the rows of the
/// horizon set (10 min windows) cut now; returns how many rows were compared.
fn live_matches_offline(
    srv: &Server,
    model_file: &std::path::Path,
    t0: i64,
    from: i64,
    to: i64,
) -> usize {
    let scores = eventually(Duration::from_secs(30), || {
        let p = srv.samples("s1/a1/l1/m1/p_horizon");
        p.iter().any(|s| s.0 == to).then_some(p)
    })
    .unwrap_or_else(|| {
        let p = srv.samples("s1/a1/l1/m1/p_horizon");
        panic!(
            "the rule did not score up to {to}: {} scores, last {:?}; logs:\n{}",
            p.len(),
            p.last(),
            srv.logs()
        )
    });
    let (s, csv) = srv.get_text(&format!(
        "/api/v1/datasets/horizon?machine={M1}&from={t0}&to={to}&step=1m&horizon=10m&window=10m&stats=mean,slope"
    ));
    assert_eq!(s, 200, "{csv}");
    let artifact =
        gemba_ml::ModelArtifact::load(std::fs::read(model_file).unwrap().as_slice()).unwrap();
    let power = artifact
        .class_names
        .iter()
        .position(|c| c == "power")
        .unwrap();
    let mut compared = 0;
    for l in csv.lines().skip(1) {
        let f: Vec<f64> = l.split(',').take(7).map(|x| x.parse().unwrap()).collect();
        let ts = f[0] as i64;
        if ts < from {
            continue;
        }
        let row = gemba_ml::Matrix::new(1, 6, f[1..7].to_vec()).unwrap();
        let want = artifact.predict_proba(&row).unwrap().row(0)[power];
        let live = scores
            .iter()
            .find(|s| s.0 == ts)
            .unwrap_or_else(|| panic!("no live score at {ts}"))
            .1;
        assert!(
            (live - want).abs() < 1e-9,
            "at minute {}: live {live}, offline {want} ({l})",
            (ts - t0) / 60_000
        );
        compared += 1;
    }
    compared
}

/// `gemba eval horizon` on a short simulation: every model row and the baseline are scored, and
/// `--dump` writes the very rows they were scored on (the test rows counted per machine match the
/// rows after the cut in each CSV). Bad options are named.
#[test]
fn eval_horizon_scores_the_models_and_dumps_the_rows_it_used() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("sets");
    let d = dump.to_str().unwrap();
    let (ok, text) = run_gemba(&[
        "eval",
        "horizon",
        "--duration",
        "8h",
        "--gan-epochs",
        "0",
        "--window",
        "",
        "--dump",
        d,
    ]);
    assert!(ok, "{text}");
    for row in [
        "logistic",
        "svm",
        "threshold",
        "tool ends",
        "+ bearing",
        "lr pooled",
    ] {
        assert!(
            text.lines()
                .skip_while(|l| !l.starts_with("All machines"))
                .any(|l| l.starts_with(row)),
            "no `{row}` row in the summary:\n{text}"
        );
    }
    // Per failure type, every model and the type's own one-signal threshold, with its failures
    // warned of (never more than there were).
    let per_type: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Per failure type, each"))
        .skip(2)
        .take_while(|l| !l.starts_with('('))
        .collect();
    for model in ["logistic", "svm", "threshold", "lr pooled"] {
        assert!(
            per_type.iter().any(|l| l.contains(&format!(" {model} "))),
            "no per-type `{model}` row:\n{text}"
        );
    }
    for line in &per_type {
        let warned = line
            .split_whitespace()
            .find(|c| c.contains('/'))
            .unwrap_or_else(|| panic!("no failures warned in {line}"));
        let (w, f) = warned.split_once('/').unwrap();
        let (w, f): (usize, usize) = (w.parse().unwrap(), f.parse().unwrap());
        assert!(w <= f, "{line}");
    }
    let split = std::fs::read_to_string(dump.join("split.txt")).unwrap();
    let cut: i64 = split
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("train: ts < "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(split.contains("horizon_ms: 1800000"), "{split}");
    let mut machines = 0;
    for line in text
        .lines()
        .take_while(|l| !l.starts_with("All machines"))
        .filter(|l| l.contains(" logistic "))
    {
        // "MACHINE logistic ROWS FAIL P R F1 WARNED": ROWS and FAIL are the test period's.
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (rows, fail): (usize, usize) = (cols[2].parse().unwrap(), cols[3].parse().unwrap());
        let csv = std::fs::read_to_string(dump.join(format!("{}.csv", cols[0].replace('/', "_"))))
            .unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header.first(), Some(&"ts"));
        assert_eq!(header.last(), Some(&"failure"));
        assert!(header.contains(&"tool_wear"), "{header:?}");
        let test: Vec<Vec<&str>> = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| c[0].parse::<i64>().unwrap() >= cut)
            .collect();
        assert_eq!(test.len(), rows, "{line}");
        let failing = test.iter().filter(|c| c.last() != Some(&"ok")).count();
        assert_eq!(failing, fail, "{line}");
        assert!(test.iter().all(|c| c.len() == header.len()));
        machines += 1;
    }
    assert!(machines >= 2, "too few machines scored:\n{text}");

    let (ok, text) = run_gemba(&["eval", "horizon", "--window", "500ms"]);
    assert!(!ok && text.contains("--window"), "{text}");
    // A horizon as long as the history: refused before simulating.
    let (ok, text) = run_gemba(&["eval", "horizon", "--duration", "30m"]);
    assert!(
        !ok && text.contains("--horizon 30m is not shorter than --duration 30m"),
        "{text}"
    );
    // Too short to hold a failure in every machine's training period: an error, not empty tables.
    let (ok, text) = run_gemba(&[
        "eval",
        "horizon",
        "--duration",
        "40m",
        "--gan-epochs",
        "0",
        "--window",
        "",
    ]);
    assert!(!ok && text.contains("no machine could be scored"), "{text}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (ok, text) = run_gemba(&[
        "eval",
        "horizon",
        "--duration",
        "1h",
        "--dump",
        file.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("--dump"), "{text}");
}
