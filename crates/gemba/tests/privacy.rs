//! Pseudonymised exports against a real `gemba serve` (docs/SECURITY.md#privacy-and-retention):
//! `pseudonymise=true` on events (JSON and CSV), operators, genealogy, work orders and alarms, and
//! `gemba query events --pseudonymise`; the same person gets the same pseudonym in every export
//! and after a restart, the secret lives in the data directory, the raw value never leaves.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, now_ms, run_gemba};
use serde_json::{Value, json};

fn pseudonyms_in(text: &str) -> Vec<String> {
    text.match_indices("anon-")
        .map(|(i, _)| text[i..i + 21].to_owned())
        .collect()
}

#[test]
fn exports_replace_personal_data_by_stable_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_in(dir.path(), "");
    let t = now_ms() - 60_000;
    for (id, name) in [("op-001", "Olga Petrova"), ("op-002", "Ivan Sidorov")] {
        let (s, v) = srv.post_json("/api/v1/operators", &json!({"id": id, "name": name}));
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [
            {"ts": t, "asset": "s1/a1/l1/m1", "type": "lot", "lot": "L1", "product": "P", "quantity": 5, "location": "s1/a1/l1/m1"},
            {"ts": t + 1000, "asset": "s1/a1/l1/m1", "type": "production", "good": 5, "lot": "L1", "attrs": {"operator": "op-001", "part": "X-1"}},
            {"ts": t + 2000, "asset": "s1/a1/l1/m1", "type": "custom", "name": "login", "attrs": {"operator": "op-002"}},
            {"ts": t + 3000, "asset": "s1/a1/l1/m1", "type": "custom", "name": "logout", "attrs": {"operator": "op-001"}}
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    let (s, wo) = srv.post_json(
        "/api/v1/work-orders",
        &json!({"machine": "s1/a1/l1/m1", "title": "bearing", "assignee": "op-002", "by": "op-001"}),
    );
    assert_eq!(s, 201, "{wo}");

    // Without the option: the raw ids, as before.
    let (s, raw) = srv.get_text("/api/v1/events?type=custom:login");
    assert_eq!(s, 200);
    assert!(raw.contains("op-002"), "{raw}");

    // Events, JSON.
    let (s, ev) = srv.get_json(&format!("/api/v1/events?from={}&pseudonymise=true", t - 1));
    assert_eq!(s, 200, "{ev}");
    let ops: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["attrs"]["operator"].as_str())
        .collect();
    assert_eq!(ops.len(), 3, "{ev}");
    let (p1, p2) = (ops[0].to_owned(), ops[1].to_owned());
    assert!(p1.starts_with("anon-") && p1.len() == 21, "{p1}");
    assert_eq!(ops[2], p1, "the same operator gets the same pseudonym");
    assert_ne!(p1, p2, "two operators get two pseudonyms");
    assert_eq!(ev[1]["attrs"]["part"], "X-1", "what is not personal stays");
    assert!(!ev.to_string().contains("op-00"), "{ev}");

    // Events, CSV: the body column is pseudonymised the same way.
    let (s, csv) = srv.get_text(&format!(
        "/api/v1/events?from={}&format=csv&pseudonymise=true",
        t - 1
    ));
    assert_eq!(s, 200);
    assert!(!csv.contains("op-00"), "{csv}");
    assert_eq!(
        pseudonyms_in(&csv),
        vec![p1.clone(), p2.clone(), p1.clone()],
        "{csv}"
    );

    // Operators: id and name; the id's pseudonym is the one in the events, so exports still join.
    let (s, ops) = srv.get_json("/api/v1/operators?pseudonymise=true");
    assert_eq!(s, 200, "{ops}");
    let ids: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&p1.as_str()) && ids.contains(&p2.as_str()),
        "{ops}"
    );
    let text = ops.to_string();
    assert!(
        !text.contains("op-00") && !text.contains("Olga") && !text.contains("Ivan"),
        "{text}"
    );

    // Genealogy with process data: the events at the machine during the lot's stay.
    let (s, g) = srv.get_json("/api/v1/genealogy/L1?pseudonymise=true");
    assert_eq!(s, 200, "{g}");
    let text = g.to_string();
    assert!(!text.contains("op-00"), "{text}");
    assert!(
        text.contains(&p1),
        "the production event's operator is in the process data: {text}"
    );

    // Work orders: assignee and who did what.
    let (s, w) = srv.get_json("/api/v1/work-orders?state=all&pseudonymise=true");
    assert_eq!(s, 200, "{w}");
    assert_eq!(
        w["work_orders"][0]["assignee"],
        Value::String(p2.clone()),
        "{w}"
    );
    assert_eq!(
        w["work_orders"][0]["created"]["by"],
        Value::String(p1.clone()),
        "{w}"
    );
    assert!(!w.to_string().contains("op-00"), "{w}");
    let (s, a) = srv.get_json("/api/v1/alarms?pseudonymise=true");
    assert_eq!(s, 200, "{a}");

    // A bad value is a 400 naming the parameter.
    let (s, e) = srv.get_json("/api/v1/events?pseudonymise=maybe");
    assert_eq!(s, 400);
    assert!(e.to_string().contains("pseudonymise"), "{e}");

    // The CLI.
    let (ok, out) = run_gemba(&[
        "query",
        "--server",
        &srv.url(""),
        "events",
        "--from",
        &(t - 1).to_string(),
        "--pseudonymise",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains(&p1) && !out.contains("op-00"), "{out}");

    // The secret is in the data directory, private, and survives a restart.
    let key = dir.path().join("data/pseudonym.key");
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    srv.stop();
    let srv = Server::restart(
        dir.path(),
        srv.config.clone(),
        srv.http,
        srv.mqtt,
        srv.mqtt_v5,
    );
    let (_, ev) = srv.get_json(&format!(
        "/api/v1/events?from={}&type=custom:login&pseudonymise=true",
        t - 1
    ));
    assert_eq!(ev[0]["attrs"]["operator"], Value::String(p2));
}
