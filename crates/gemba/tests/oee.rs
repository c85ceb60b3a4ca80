//! OEE end to end over HTTP on a hand-computed day: states from events, shifts and planned
//! downtime, the six big losses, line aggregation, causes (state reasons and an SPC alarm), the
//! cache, MTBF/MTTR, and clear errors for bad inputs.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Server, eventually, run_gemba};
use serde_json::{Value, json};

/// 2026-11-02T00:00:00Z.
const D: i64 = 1_793_577_600_000;
const H: i64 = 3_600_000;
const MIN: i64 = 60_000;
const M1: &str = "s1/a1/l1/m1";
const M2: &str = "s1/a1/l1/m2";

const PLANT: &str = r#"
[[sites]]
name = "s1"
[[sites.areas]]
name = "a1"
[[sites.areas.lines]]
name = "l1"
[[sites.areas.lines.machines]]
name = "m1"
ideal_cycle_time_s = 10.0
[[sites.areas.lines.machines.signals]]
name = "temp"
unit = "K"
[[sites.areas.lines.machines]]
name = "m2"
ideal_cycle_time_s = 20.0

[[shifts]]
name = "early"
start = "06:00"
end = "14:00"
[[shifts]]
name = "late"
start = "14:00"
end = "22:00"
"#;

fn state(ts: i64, asset: &str, state: &str, reason: Option<&str>) -> Value {
    let mut e = json!({"ts": ts, "asset": asset, "type": "state", "state": state});
    if let Some(r) = reason {
        e["reason"] = json!(r);
    }
    e
}

fn parts(ts: i64, asset: &str, good: u64, scrap: u64) -> Value {
    json!({"ts": ts, "asset": asset, "type": "production", "good": good, "scrap": scrap})
}

fn at(h: i64, m: i64) -> i64 {
    D + h * H + m * MIN
}

/// The day of m1 (ideal cycle 10 s) and m2 (20 s). Shifts early 06–14 and late 14–22; 22–06 is
/// outside every shift (planned downtime), so the planned time of the day is 16 h = 57,600 s.
fn load_day(srv: &Server) {
    let events = vec![
        // m1
        state(at(6, 0), M1, "running", None),
        state(at(7, 0), M1, "down", Some("spindle_failure")),
        state(at(7, 30), M1, "setup", Some("changeover")),
        state(at(7, 45), M1, "running", None),
        state(at(9, 0), M1, "idle", Some("starved")),
        state(at(9, 3), M1, "running", None),
        state(at(13, 0), M1, "idle", Some("blocked")),
        state(at(14, 0), M1, "running", None),
        state(at(22, 0), M1, "idle", Some("no_shift")),
        parts(at(6, 30), M1, 300, 0),
        parts(at(7, 46), M1, 0, 2),
        parts(at(7, 47), M1, 1, 0),
        parts(at(8, 0), M1, 0, 1),
        parts(at(10, 0), M1, 1000, 0),
        parts(at(16, 0), M1, 2000, 10),
        // m2
        state(at(6, 0), M2, "running", None),
        state(at(22, 0), M2, "idle", Some("no_shift")),
        parts(at(12, 0), M2, 2000, 0),
    ];
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "events": events }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_events"], 18, "{v}");
}

fn oee(srv: &Server, query: &str) -> Value {
    let (s, v) = srv.get_json(&format!("/api/v1/oee?{query}"));
    assert_eq!(s, 200, "{query}: {v}");
    v
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn hand_computed_day_by_shift_line_and_causes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), PLANT, "", &[]);
    load_day(&srv);
    // An SPC alarm on m1/temp: one point 10σ above the centre at 15:55.
    let (s, v) = srv.post_json(
        "/api/v1/alarm-rules",
        &json!({"name": "m1-temp-spc", "type": "spc", "signal": format!("{M1}/temp"),
                "center": 300.0, "sigma": 1.0, "rules": [1]}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [{"signal": format!("{M1}/temp"), "ts": at(15, 55), "value": 310.0}]}),
    );
    assert_eq!(s, 200, "{v}");
    let alarm = eventually(Duration::from_secs(20), || {
        let (_, v) = srv.get_json("/api/v1/alarms?rule=m1-temp-spc");
        v["alarms"].as_array().and_then(|a| a.first().cloned())
    })
    .expect("the SPC alarm is raised");
    assert_eq!(alarm["raised_at"], at(15, 55));

    // The cache grows in steps: 00–08 (ends in the startup after the changeover, m1 has made 3
    // parts since the setup), then 00–09:15 (past the 09:00 small stop), then the whole day
    // below; the figures are the same as when computed at once (asserted exactly below).
    let v = oee(&srv, &format!("asset={M1}&from={D}&to={}", at(7, 50)));
    assert_eq!(v["to"], at(8, 0));
    assert_eq!(v["total"]["startup_scrap"], 2);
    let v = oee(&srv, &format!("asset={M1}&from={D}&to={}", at(9, 2)));
    assert_eq!(v["buckets_cached"], 32, "{v}");
    assert_eq!(
        v["total"]["startup_scrap"], 2,
        "the scrap at 08:00 is a production reject"
    );
    assert_eq!(v["total"]["scrap"], 3);
    assert_eq!(f(&v["total"]["losses"]["small_stops_s"]), 180.0);
    let q = format!("asset={M1}&from={D}&to={}&by=shift", D + 24 * H);
    let v = oee(&srv, &q);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    // Early shift 06–14, planned 28,800 s:
    //   breakdown 07:00–07:30 = 1,800 s (down, spindle_failure); setup 07:30–07:45 = 900 s;
    //   other stop 13:00–14:00 = 3,600 s (idle 60 min ≥ 5 min); small stop 09:00–09:03 = 180 s.
    //   operating = 28,800 − 1,800 − 900 − 3,600 = 22,500 s (running 22,320 + small stops 180)
    //   parts: good 300 + 1 + 1,000 = 1,301; scrap 2 (startup: first 3 parts after the setup) + 1
    //   net run = 1,304 × 10 = 13,040 s
    //   A = 22,500 / 28,800 = 0.78125   P = 13,040 / 22,500   Q = 1,301 / 1,304
    //   OEE = 13,010 / 28,800; reduced speed = 22,320 − 13,040 = 9,280 s
    let e = &rows[0];
    assert_eq!(e["shift"], "early");
    assert_eq!(
        (e["from"].as_i64(), e["to"].as_i64()),
        (Some(at(6, 0)), Some(at(14, 0)))
    );
    assert_eq!(f(&e["planned_s"]), 28_800.0);
    assert_eq!(f(&e["availability"]), 0.78125);
    assert_eq!(f(&e["performance"]), 13_040.0 / 22_500.0);
    assert_eq!(f(&e["quality"]), 1_301.0 / 1_304.0);
    assert_eq!(f(&e["oee"]), 13_010.0 / 28_800.0);
    let l = &e["losses"];
    assert_eq!(f(&l["breakdowns_s"]), 1_800.0);
    assert_eq!(f(&l["setup_s"]), 900.0);
    assert_eq!(f(&l["small_stops_s"]), 180.0);
    assert_eq!(f(&l["other_stops_s"]), 3_600.0);
    assert_eq!(f(&l["reduced_speed_s"]), 9_280.0);
    assert_eq!(f(&l["startup_rejects_s"]), 20.0);
    assert_eq!(f(&l["production_rejects_s"]), 10.0);
    assert_eq!(e["failures"], 1);
    // Late shift 14–22: running all the time, good 2,000 and scrap 10 at 16:00.
    //   A = 1, P = 20,100 / 28,800, Q = 2,000 / 2,010, OEE = 20,000 / 28,800.
    let l8 = &rows[1];
    assert_eq!(l8["shift"], "late");
    assert_eq!(f(&l8["availability"]), 1.0);
    assert_eq!(f(&l8["performance"]), 20_100.0 / 28_800.0);
    assert_eq!(f(&l8["oee"]), 20_000.0 / 28_800.0);
    // The whole day: 00–06 and 22–24 are planned downtime (no shift).
    //   OEE = (13,010 + 20,000) / 57,600.
    assert_eq!(f(&v["total"]["planned_s"]), 57_600.0);
    assert_eq!(f(&v["total"]["planned_downtime_s"]), 28_800.0);
    assert_eq!(f(&v["total"]["oee"]), 33_010.0 / 57_600.0);

    // Causes: the breakdown's reason, and the 10 scrap made while the SPC alarm was open.
    let causes = v["causes"].as_array().unwrap();
    let find = |pred: &dyn Fn(&Value) -> bool| causes.iter().find(|c| pred(c)).cloned();
    let b = find(&|c| c["loss"] == "breakdowns" && c["reason"] == "spindle_failure").unwrap();
    assert_eq!(f(&b["seconds"]), 1_800.0);
    let q = find(&|c| c["rule"] == "m1-temp-spc").expect("the SPC alarm is a cause");
    assert_eq!(q["loss"], "production_rejects");
    assert_eq!(q["parts"], 10);
    assert_eq!(q["alarm"], alarm["id"]);
    assert!(
        q["text"]
            .as_str()
            .unwrap()
            .contains("quality loss on s1/a1/l1/m1"),
        "{q}"
    );

    // The line: m2 runs 06–22 and makes 2,000 good parts of 20 s: OEE 40,000 / 57,600.
    // Line OEE = Σ fully productive / Σ planned = (33,010 + 40,000) / 115,200.
    let line = oee(&srv, &format!("asset=s1/a1/l1&from={D}&to={}", D + 24 * H));
    assert_eq!(line["machines"].as_array().unwrap().len(), 2);
    assert_eq!(f(&line["machines"][1]["oee"]), 40_000.0 / 57_600.0);
    assert_eq!(f(&line["total"]["oee"]), 73_010.0 / 115_200.0);

    // By hour: 24 rows that add up; a second query is served from the cache and is equal.
    let q = format!("asset={M1}&from={D}&to={}&by=hour", D + 24 * H);
    let h1 = oee(&srv, &q);
    let rows = h1["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    let good: u64 = rows.iter().map(|r| r["good"].as_u64().unwrap()).sum();
    assert_eq!(good, 3_301);
    assert_eq!(rows[7]["availability"].as_f64(), Some(0.25)); // 07–08: 45 min of 60 lost
    let h2 = oee(&srv, &q);
    assert_eq!(h2["buckets_cached"], 96, "{}", h2["buckets_computed"]);
    assert_eq!(h1["rows"], h2["rows"]);

    // States with their categories.
    let (s, st) = srv.get_json(&format!(
        "/api/v1/states?machine={M1}&from={}&to={}",
        at(6, 0),
        at(10, 0)
    ));
    assert_eq!(s, 200, "{st}");
    let kinds: Vec<&str> = st["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "running",
            "breakdown",
            "setup",
            "running",
            "small_stop",
            "running"
        ]
    );

    // The CLI prints the same figures: early shift OEE 13,010 / 28,800 = 45.2 %.
    let server = srv.url("");
    let (ok, out) = run_gemba(&[
        "oee",
        M1,
        "--from",
        &D.to_string(),
        "--to",
        &(D + 24 * H).to_string(),
        "--by",
        "shift",
        "--server",
        server.trim_end_matches('/'),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("early") && out.contains("45.2 %"), "{out}");
    assert!(out.contains("spindle_failure"), "{out}");
    let (ok, out) = run_gemba(&["oee", "s1/a1/l9", "--server", server.trim_end_matches('/')]);
    assert!(!ok && out.contains("s1/a1/l9"), "{out}");

    // MTBF / MTTR of m1 on the day: one breakdown of 1,800 s in 51,300 s of operating time.
    let (s, m) = srv.get_json(&format!(
        "/api/v1/maintenance?machine={M1}&from={D}&to={}",
        D + 24 * H
    ));
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["breakdowns"], 1);
    assert_eq!(f(&m["mtbf_s"]), 51_300.0);
    assert_eq!(f(&m["mttr_s"]), 1_800.0);

    // Late data (a machine that buffered while offline): 100 more good parts at 20:00 reach the
    // cached day; the next query rebuilds m1 and counts them. Late shift OEE = 21,000 / 28,800.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [parts(at(20, 0), M1, 100, 0)]}),
    );
    assert_eq!(s, 200, "{v}");
    let v = oee(
        &srv,
        &format!("asset={M1}&from={D}&to={}&by=shift", D + 24 * H),
    );
    assert_eq!(v["buckets_cached"], 0, "rebuilt");
    assert_eq!(f(&v["rows"][1]["oee"]), 21_000.0 / 28_800.0);
    let v = oee(
        &srv,
        &format!("asset={M1}&from={D}&to={}&by=shift", D + 24 * H),
    );
    assert_eq!(v["buckets_cached"], 96);
}

#[test]
fn bad_inputs_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), PLANT, "", &[]);
    let cases: Vec<(String, u16, &str)> = vec![
        ("/api/v1/oee?asset=s1/a1/l9".to_string(), 404, "s1/a1/l9"),
        (format!("/api/v1/oee?asset={M1}&by=week"), 400, "by"),
        (format!("/api/v1/oee?asset={M1}&from=5&to=4"), 400, "to"),
        (format!("/api/v1/oee?machine={M1}"), 400, "machine"),
        (
            "/api/v1/states?machine=s1/a1/l1/m9".to_string(),
            400,
            "machine",
        ),
        (
            "/api/v1/maintenance?machine=s1/a1/l1".to_string(),
            400,
            "machine",
        ),
    ];
    for (url, status, needle) in cases {
        let (s, v) = srv.get_json(&url);
        assert_eq!(s, status, "{url}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{url}: {msg:?} lacks {needle:?}");
    }
    // Overlapping shifts are refused and name the shift.
    let (s, v) = srv.post_json(
        "/api/v1/shifts",
        &json!({"name": "night", "start": "21:00", "end": "06:30"}),
    );
    assert_eq!(s, 422, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("night") && msg.contains("overlap"), "{msg}");
    // by=shift needs shifts on quarter hours.
    let (s, v) = srv.post_json(
        "/api/v1/shifts",
        &json!({"name": "cleaning", "start": "22:10", "end": "23:00"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.get_json(&format!("/api/v1/oee?asset={M1}&by=shift"));
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("cleaning") && msg.contains("quarter"), "{msg}");
    // Production configuration: unknown machine / signal, bad numbers.
    let bad = [
        (
            json!({"infer": [{"machine": "s1/a1/l1/m9", "signal": "power", "running_above": 1}]}),
            "infer[0].machine",
        ),
        (
            json!({"infer": [{"machine": M1, "signal": "power", "running_above": 1}]}),
            "infer[0].signal",
        ),
        (json!({"states": {"small_stop_s": -1}}), "small_stop_s"),
        (
            json!({"planned_downtime": [{"asset": M1, "from": 10, "to": 5}]}),
            "planned_downtime[0].to",
        ),
        (
            json!({"breaks": [{"name": "b", "start": "25:00", "end": "10:00"}]}),
            "breaks[0]",
        ),
    ];
    for (body, needle) in bad {
        let (s, v) = common_put(&srv, "/api/v1/production/config", &body);
        assert_eq!(s, 400, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg:?} lacks {needle:?}");
    }
}

/// States inferred from a power signal when a machine sends no state, and planned downtime from
/// the configuration.
#[test]
fn inferred_states_and_planned_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), PLANT, "", &[]);
    let cfg = json!({
        "infer": [{"machine": M1, "signal": "temp", "running_above": 320.0}],
        "planned_downtime": [{"asset": "s1/a1", "from": at(10, 0), "to": at(11, 0), "reason": "maintenance"}]
    });
    let (s, v) = common_put(&srv, "/api/v1/production/config", &cfg);
    assert_eq!(s, 200, "{v}");
    // 08:00–09:00 every minute: "running" (350) except 08:24–08:33 (300, idle: a 9 min stop).
    let points: Vec<Value> = (0..=60)
        .map(|i| {
            let v = if (24..33).contains(&i) { 300.0 } else { 350.0 };
            json!({"signal": format!("{M1}/temp"), "ts": at(8, i), "value": v})
        })
        .collect();
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "points": points }));
    assert_eq!(s, 200, "{v}");
    // Up to 08:30 the stop has lasted 6 min: a long stop, final; the cache ends there.
    let v = oee(
        &srv,
        &format!("asset={M1}&from={}&to={}", at(8, 0), at(8, 30)),
    );
    assert_eq!(f(&v["total"]["losses"]["other_stops_s"]), 360.0, "{v}");
    // 08–09, extending the cache: the stop keeps its whole length (9 min, not 6 + a 3 min small
    // stop): running 51 min → A = 51/60.
    let v = oee(
        &srv,
        &format!("asset={M1}&from={}&to={}", at(8, 0), at(9, 0)),
    );
    assert_eq!(v["buckets_cached"], 2, "{v}");
    assert_eq!(f(&v["total"]["availability"]), 51.0 / 60.0, "{v}");
    assert_eq!(f(&v["total"]["losses"]["other_stops_s"]), 540.0);
    assert_eq!(f(&v["total"]["losses"]["small_stops_s"]), 0.0);
    // 10–11 is planned downtime (the calendar): no planned time at all.
    let v = oee(
        &srv,
        &format!("asset={M1}&from={}&to={}", at(10, 0), at(11, 0)),
    );
    assert_eq!(f(&v["total"]["planned_downtime_s"]), 3_600.0, "{v}");
    assert_eq!(v["total"]["oee"], Value::Null);
}

fn common_put(srv: &Server, path: &str, body: &Value) -> (u16, Value) {
    let resp = srv
        .agent
        .put(&srv.url(path))
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
