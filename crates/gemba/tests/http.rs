//! End-to-end tests of the HTTP ingest and query paths against the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, now_ms};
use serde_json::json;

const TEMP: &str = "s1/a1/l1/m1/temp";
const SPEED: &str = "s1/a1/l1/m1/speed";
const STATE: &str = "s1/a1/l1/m1/state";
const DOOR: &str = "s1/a1/l1/m1/door";

#[test]
fn ingest_then_query_every_way_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let t0 = (now_ms() / 60_000 - 120) * 60_000; // two hours ago, minute-aligned

    // Row points with every value form, columnar series (ts and t0/dt), and events.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({
            "points": [
                {"signal": TEMP, "ts": t0, "value": 300.5},
                {"signal": STATE, "ts": t0, "value": "running"},
                {"signal": DOOR, "ts": gemba_core::time::format_rfc3339(t0), "value": true}
            ],
            "series": [
                {"signal": SPEED, "t0": t0, "dt": 1000, "values": (0..7200).map(|i| i as f64).collect::<Vec<_>>()},
                {"signal": TEMP, "ts": [t0 + 1000, t0 + 2000], "values": [301.0, 302.0]}
            ],
            "events": [
                {"ts": t0, "asset": "s1/a1/l1/m1", "type": "state", "state": "down", "reason": "tool_break"},
                {"ts": t0 + 5000, "asset": "s1/a1/l1/m1", "type": "production", "good": 10, "scrap": 1},
                {"ts": t0 + 6000, "asset": "s1/a1/l1", "type": "custom", "name": "shift_handover", "attrs": {"operator": "op-1"}}
            ]
        }),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_points"], 7205);
    assert_eq!(v["accepted_events"], 3);

    // Line protocol.
    let body = format!(
        "# comment\n{TEMP} 303.25 {}\n\n{TEMP} 304 {}\n",
        t0 + 3000,
        t0 + 4000
    );
    let (s, v) = srv.post("/api/v1/ingest", "text/plain", body.as_bytes());
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_points"], 2);

    assert_eq!(
        srv.samples(TEMP),
        vec![
            (t0, 300.5),
            (t0 + 1000, 301.0),
            (t0 + 2000, 302.0),
            (t0 + 3000, 303.25),
            (t0 + 4000, 304.0)
        ]
    );

    // Latest values, with the state name.
    let (s, v) = srv.get_json("/api/v1/latest?prefix=s1/a1/l1/m1");
    assert_eq!(s, 200);
    let rows = v.as_array().unwrap();
    let state = rows.iter().find(|r| r["signal"] == STATE).unwrap();
    assert_eq!(state["state"], "running");
    let speed = rows.iter().find(|r| r["signal"] == SPEED).unwrap();
    assert_eq!(speed["value"], 7199.0);
    assert_eq!(speed["ts"], t0 + 7_199_000);

    // Aggregates: 1-minute means of 0..7199 are 29.5, 89.5, …; the same via raw and rollup paths.
    let q = format!(
        "/api/v1/series?signal={SPEED}&from={t0}&to={}&step=1m&agg=all",
        t0 + 7_200_000
    );
    let (s, v) = srv.get_json(&q);
    assert_eq!(s, 200, "{v}");
    let buckets = v["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 120);
    assert_eq!(buckets[0]["mean"], 29.5);
    assert_eq!(buckets[0]["count"], 60);
    assert_eq!(buckets[1]["min"], 60.0);
    assert_eq!(buckets[119]["last"], 7199.0);
    let (_, v) = srv.get_json(&format!(
        "/api/v1/series?signal={SPEED}&from={}&to={}&step=1h&agg=max",
        t0 + 30_000,
        t0 + 7_200_000
    ));
    let sum_count: Vec<f64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .collect();
    assert_eq!(sum_count.last().copied(), Some(7199.0));

    // CSV export.
    let (s, csv) = srv.get_text(&format!(
        "/api/v1/series?signal={TEMP}&from={t0}&to={}&format=csv",
        t0 + 10_000
    ));
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "ts,time,value");
    assert_eq!(lines.len(), 6);
    assert!(
        lines[1].starts_with(&format!("{t0},")) && lines[1].ends_with(",300.5"),
        "{}",
        lines[1]
    );

    // Events by type and asset prefix.
    let (_, v) = srv.get_json(&format!(
        "/api/v1/events?from={t0}&to={}&type=state",
        t0 + 60_000
    ));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["reason"], "tool_break");
    let (_, v) = srv.get_json(&format!(
        "/api/v1/events?from={t0}&to={}&asset=s1/a1/l1",
        t0 + 60_000
    ));
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (_, v) = srv.get_json(&format!(
        "/api/v1/events?from={t0}&to={}&asset=s1/a1/l1/m1",
        t0 + 60_000
    ));
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, v) = srv.get_json(&format!(
        "/api/v1/events?from={t0}&to={}&type=custom:shift_handover",
        t0 + 60_000
    ));
    assert_eq!(v[0]["attrs"]["operator"], "op-1");

    // Asset tree and OpenAPI.
    let (_, tree) = srv.get_json("/api/v1/assets");
    assert_eq!(tree["name"], "testco");
    assert_eq!(
        tree["children"][0]["children"][0]["children"][0]["children"][0]["path"],
        "s1/a1/l1/m1"
    );
    let (s, api) = srv.get_json("/api/v1/openapi.json");
    assert_eq!(s, 200);
    assert_eq!(api["openapi"], "3.1.0");

    // Everything is still there after a clean restart.
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    assert_eq!(srv.samples(TEMP).len(), 5);
    assert_eq!(srv.samples(SPEED).len(), 7200);
    let (_, v) = srv.get_json(&format!("/api/v1/latest?prefix={SPEED}"));
    assert_eq!(v[0]["value"], 7199.0);
}

#[test]
fn bad_input_gets_precise_errors_and_loses_nothing_valid() {
    let dir = tempfile::tempdir().unwrap();
    // The body limit comes from an environment override of the configuration.
    let srv = Server::start_with_env(
        dir.path(),
        "",
        &[("GEMBA__SERVER__MAX_BODY_BYTES", "1000000")],
    );
    let now = now_ms();

    // Malformed JSON: 400 naming line and column.
    let (s, v) = srv.post("/api/v1/ingest", "application/json", b"{\"points\": [");
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "malformed");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 1"),
        "{v}"
    );

    // Mixed batch: the valid sample is stored, each bad one reported with its location.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [
            {"signal": TEMP, "ts": now, "value": 300.0},
            {"signal": TEMP, "ts": now + 1, "value": "hot"},
            {"signal": TEMP, "ts": now + 2, "value": 9999.0},
            {"signal": "s1/a1/l1/m1/nope", "ts": now, "value": 1.0},
            {"signal": STATE, "ts": now, "value": "dancing"},
            {"signal": DOOR, "ts": now, "value": 0.5},
            {"signal": TEMP, "ts": 1_700_000_000, "value": 300.0},
            {"signal": TEMP, "ts": now + 86_400_000, "value": 300.0},
            {"signal": TEMP, "ts": now + 3, "value": null}
        ]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted_points"], 1);
    assert_eq!(v["rejected"], 8);
    let errors = v["errors"].as_array().unwrap();
    let find = |loc: &str| {
        errors
            .iter()
            .find(|e| e["location"].as_str().unwrap().starts_with(loc))
            .unwrap_or_else(|| panic!("no error at {loc}: {v}"))["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(find("points[1]").contains("hot"));
    assert!(find("points[2]").contains("outside the signal's range"));
    assert!(find("points[3]").contains("unknown signal"));
    assert!(find("points[4]").contains("dancing"));
    assert!(find("points[5]").contains("0 or 1"));
    assert!(find("points[6]").contains("seconds"));
    assert!(find("points[7]").contains("future"));
    assert!(find("points[8]").contains("null"));
    assert_eq!(srv.samples(TEMP), vec![(now, 300.0)]);

    // Strict mode stores nothing when anything is wrong.
    let (s, v) = srv.post_json(
        "/api/v1/ingest?mode=strict",
        &json!({"points": [{"signal": TEMP, "ts": now + 10, "value": 301.0}, {"signal": TEMP, "ts": now + 11, "value": -5.0}]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted_points"], 0);
    assert_eq!(srv.samples(TEMP).len(), 1);

    // Series problems are per item.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"series": [
            {"signal": SPEED, "ts": [now, now + 1], "values": [1.0]},
            {"signal": SPEED, "ts": [now, now + 1], "values": [1.0, 2.0]}
        ]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted_points"], 2);
    assert!(
        v["errors"][0]["location"]
            .as_str()
            .unwrap()
            .starts_with("series[0]"),
        "{v}"
    );

    // Unknown top-level keys, wrong types, unsupported media types, unknown parameters.
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({"pointz": []}));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("pointz"),
        "{v}"
    );
    let (s, _) = srv.post_json("/api/v1/ingest", &json!({"points": 5}));
    assert_eq!(s, 400);
    let (s, v) = srv.post("/api/v1/ingest", "application/xml", b"<x/>");
    assert_eq!(s, 415, "{v}");
    // `curl -d` sends a form content type: refused, as a cross-site form's JSON would be
    // (docs/SECURITY.md#cross-site-requests-csrf); the message says what to send.
    let body = json!({"points": [{"signal": TEMP, "ts": now + 20, "value": 305.0}]}).to_string();
    let (s, v) = srv.post(
        "/api/v1/ingest",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!(s, 415, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{v}"
    );
    let (s, v) = srv.post_json("/api/v1/ingest?mode=yolo", &json!({}));
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("mode"),
        "{v}"
    );
    let (s, v) = srv.get_json("/api/v1/series?signal=s1/a1/l1/m1/temp&frm=1");
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("frm"),
        "{v}"
    );
    let (s, v) = srv.get_json("/api/v1/series?signal=s1/a1/l1/m1/none");
    assert_eq!(s, 404, "{v}");
    let (s, v) = srv.get_json("/api/v1/series?signal=s1/a1/l1/m1/temp&from=tomorrow");
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("from"),
        "{v}"
    );
    let (s, _) = srv.get_json("/api/v1/series?signal=s1/a1/l1/m1/temp&step=0s");
    assert_eq!(s, 400);
    let (s, _) = srv.get_json("/api/v1/nothing-here");
    assert_eq!(s, 404);

    // Oversize body: 413 with a JSON error, answered from the headers alone (the server does not
    // read a body it will refuse, so the client is told before it sends it).
    {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
        write!(
            sock,
            "POST /api/v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2000000\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = sock.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }

    // Hostile signal definitions.
    let (s, v) = srv.post_json(
        "/api/v1/signals",
        &json!({"path": "s1/a1/l1/m1/x", "spec": {"lsl": 5, "usl": 1}}),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("lsl"),
        "{v}"
    );
    let (s, v) = srv.post_json("/api/v1/signals", &json!({"path": "s1/a1/../m1/x"}));
    assert_eq!(s, 422, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/signals",
        &json!({"path": "s1/a1/l1/m1/x", "colour": "red"}),
    );
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );

    // Defining a signal over the API makes it ingestible; the server is alive throughout.
    let (s, v) = srv.post_json(
        "/api/v1/signals",
        &json!({"path": "s1/a1/l1/m2/pressure", "unit": "bar"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [{"signal": "s1/a1/l1/m2/pressure", "ts": now, "value": 6.5}]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        srv.metric("gemba_ingest_rejected_items_total{source=\"http\"}"),
        10.0
    );
}

#[test]
fn unknown_signals_can_be_auto_registered() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "[ingest]\nunknown_signals = \"register\"\n");
    let now = now_ms();
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [{"signal": "s2/new/line9/press3/force", "ts": now, "value": 12.5}],
                "events": [{"ts": now, "asset": "s2/new/line9/press3", "type": "state", "state": "running"}]}),
    );
    assert_eq!(s, 200, "{v}");
    let (_, sigs) = srv.get_json("/api/v1/signals?prefix=s2");
    assert_eq!(sigs[0]["path"], "s2/new/line9/press3/force");
    assert_eq!(sigs[0]["auto"], true);
    // A bad path is still rejected.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [{"signal": "s2/x y/l/m/s", "value": 1.0}]}),
    );
    assert_eq!(s, 422, "{v}");

    // 2,000 new signals in one batch are registered together and survive a restart.
    let points: Vec<_> = (0..2000)
        .map(|i| json!({"signal": format!("s3/a/l{}/m{}/x", i % 20, i), "ts": now, "value": i}))
        .collect();
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "points": points }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_points"], 2000);
    let mut srv = srv;
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    let (_, sigs) = srv.get_json("/api/v1/signals?prefix=s3");
    assert_eq!(sigs.as_array().unwrap().len(), 2000);
    let (_, latest) = srv.get_json("/api/v1/latest?prefix=s3/a/l7");
    assert_eq!(latest.as_array().unwrap().len(), 100);
    let (_, tree) = srv.get_json("/api/v1/assets");
    let s3 = tree["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "s3")
        .unwrap();
    assert_eq!(s3["children"][0]["children"].as_array().unwrap().len(), 20);
}

#[test]
fn lots_operators_and_shifts_over_the_api_persist() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let (s, v) = srv.post_json(
        "/api/v1/lots",
        &json!({"id": "L-1", "product": "shaft", "quantity": 500, "state": "available", "location": "store-a"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/lots",
        &json!({"id": "L-2", "product": "shaft", "quantity": -1}),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("quantity"),
        "{v}"
    );
    let (s, v) = srv.post_json(
        "/api/v1/operators",
        &json!({"id": "op-7", "name": "Wang Fang"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.post_json("/api/v1/operators", &json!({"id": "op 8", "name": "X"}));
    assert_eq!(s, 422, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/shifts",
        &json!({"name": "night", "start": "22:00", "end": "06:00"}),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = srv.post_json(
        "/api/v1/shifts",
        &json!({"name": "late", "start": "25:00", "end": "06:00"}),
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("25:00"),
        "{v}"
    );
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.stop();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    let (_, lots) = srv.get_json("/api/v1/lots");
    assert_eq!(lots[0]["id"], "L-1");
    assert_eq!(lots[0]["quantity"], 500.0);
    let (_, ops) = srv.get_json("/api/v1/operators");
    assert_eq!(ops.as_array().unwrap().len(), 1);
    assert_eq!(ops[0]["name"], "Wang Fang");
    let (_, shifts) = srv.get_json("/api/v1/shifts");
    assert_eq!(shifts[0]["name"], "night");
}
