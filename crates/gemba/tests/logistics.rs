//! End-to-end tests of lots, moves, inventory, WIP, dwell and lead times, genealogy with process
//! data, energy per good part and CO2e per lot, against the real binary. Every expected figure is
//! computed by hand in the comments.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, eventually, free_port, now_ms, require_program, start_demo, wait_live};
use serde_json::{Value, json};

const LINE: &str = "s1/a1/l1";
const MIN: i64 = 60_000;

/// One line with two machines: m1 meters energy with a kWh counter and has a state signal, m2
/// meters power in W (no state: every minute counts as producing).
const PLANT: &str = r#"
[[sites]]
name = "s1"
[[sites.areas]]
name = "a1"
[[sites.areas.lines]]
name = "l1"
[[sites.areas.lines.machines]]
name = "m1"
[[sites.areas.lines.machines.signals]]
name = "temp"
unit = "K"
spec = { lsl = 250.0, usl = 450.0 }
[[sites.areas.lines.machines.signals]]
name = "energy"
unit = "kWh"
kind = "counter"
[[sites.areas.lines.machines.signals]]
name = "state"
kind = "state"
states = ["idle", "running"]
[[sites.areas.lines.machines]]
name = "m2"
[[sites.areas.lines.machines.signals]]
name = "power"
unit = "W"
"#;

const CONFIG: &str = r#"
[energy]
co2e_kg_per_kwh = 0.5
[[logistics.reorder_points]]
location = "store"
product = "steel"
min = 50.0
asset = "s1"
"#;

fn lot(ts: i64, id: &str, product: &str, q: f64, at: &str, inputs: &[&str]) -> Value {
    json!({"ts": ts, "asset": LINE, "type": "lot", "lot": id, "product": product,
           "quantity": q, "unit": "pcs", "location": at, "inputs": inputs})
}

fn mv(ts: i64, id: &str, from: &str, to: &str, q: f64) -> Value {
    json!({"ts": ts, "asset": LINE, "type": "move", "lot": id, "from": from, "to": to, "quantity": q})
}

fn qty(v: &Value, location: &str, product: &str) -> f64 {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["location"] == location && r["product"] == product)
        .map_or(0.0, |r| r["quantity"].as_f64().unwrap())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// The story (t0 is minute-aligned, two hours ago):
/// - t0: lots R1 (100 steel) and R2 (50 steel) are received into `store`;
/// - t0+10m: 60 of R1 and all of R2 move to the line; the store drops from 150 to 40 steel,
///   below its reorder point of 50;
/// - t0+40m: W1 (40 widgets) is made at the line from R2 (R2 is consumed);
/// - t0+50m: W1 moves to `fg`, t0+70m to `shipping`.
///
/// Process data: m1's temp is 300 + k at minute k; its energy counter 100 + 0.5 k kWh; its state
/// is running for k < 30 and idle after; m2 draws 6 kW throughout (0.1 kWh a minute).
/// m1 made 59 good parts at t0+5m; m2 (the line's last machine) 10 good at t0+20m and 30 good,
/// 2 scrap at t0+45m.
fn setup(dir: &std::path::Path) -> (Server, i64) {
    let srv = Server::start_with_plant(dir, PLANT, CONFIG, &[]);
    let t0 = (now_ms() / MIN - 120) * MIN;
    let k: Vec<i64> = (0..120).collect();
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({
            "series": [
                {"signal": "s1/a1/l1/m1/temp", "t0": t0, "dt": MIN, "values": k.iter().map(|k| 300.0 + *k as f64).collect::<Vec<_>>()},
                {"signal": "s1/a1/l1/m1/energy", "t0": t0, "dt": MIN, "values": k.iter().map(|k| 100.0 + 0.5 * *k as f64).collect::<Vec<_>>()},
                {"signal": "s1/a1/l1/m1/state", "t0": t0, "dt": MIN, "values": k.iter().map(|k| if *k < 30 { 1.0 } else { 0.0 }).collect::<Vec<_>>()},
                {"signal": "s1/a1/l1/m2/power", "t0": t0, "dt": 10_000, "values": vec![6000.0; 720]}
            ],
            "events": [
                {"ts": t0 + 5 * MIN, "asset": "s1/a1/l1/m1", "type": "production", "good": 59},
                {"ts": t0 + 15 * MIN, "asset": "s1/a1/l1/m1", "type": "state", "state": "down", "reason": "jam"},
                {"ts": t0 + 20 * MIN, "asset": "s1/a1/l1/m2", "type": "production", "good": 10},
                {"ts": t0 + 45 * MIN, "asset": "s1/a1/l1/m2", "type": "production", "good": 30, "scrap": 2}
            ]
        }),
    );
    assert_eq!(s, 200, "{v}");
    for events in [
        vec![
            lot(t0, "R1", "steel", 100.0, "store", &[]),
            lot(t0, "R2", "steel", 50.0, "store", &[]),
        ],
        vec![
            mv(t0 + 10 * MIN, "R1", "store", LINE, 60.0),
            mv(t0 + 10 * MIN, "R2", "store", LINE, 50.0),
        ],
        vec![lot(t0 + 40 * MIN, "W1", "widget", 40.0, LINE, &["R2"])],
        vec![
            mv(t0 + 50 * MIN, "W1", LINE, "fg", 40.0),
            mv(t0 + 70 * MIN, "W1", "fg", "shipping", 40.0),
        ],
    ] {
        let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "events": events }));
        assert_eq!(s, 200, "{v}");
    }
    (srv, t0)
}

fn check_inventory(srv: &Server, t0: i64) {
    // Now: store 100 - 60 = 40 steel; line 60 steel (R1; R2 was consumed); shipping 40 widgets.
    let (s, now) = srv.get_json("/api/v1/logistics/inventory");
    assert_eq!(s, 200, "{now}");
    assert_eq!(qty(&now, "store", "steel"), 40.0);
    assert_eq!(qty(&now, LINE, "steel"), 60.0);
    assert_eq!(qty(&now, "shipping", "widget"), 40.0);
    assert_eq!(now["rows"].as_array().unwrap().len(), 3, "{now}");
    // As of t0+20m: store 150 - 110 = 40, line 110.
    let (_, v) = srv.get_json(&format!("/api/v1/logistics/inventory?at={}", t0 + 20 * MIN));
    assert_eq!(qty(&v, "store", "steel"), 40.0);
    assert_eq!(qty(&v, LINE, "steel"), 110.0);
    // As of t0+45m, WIP only: the line holds 60 steel and 40 widgets.
    let (_, v) = srv.get_json(&format!(
        "/api/v1/logistics/inventory?at={}&kind=wip",
        t0 + 45 * MIN
    ));
    assert_eq!(qty(&v, LINE, "steel"), 60.0);
    assert_eq!(qty(&v, LINE, "widget"), 40.0);
    assert_eq!(v["rows"].as_array().unwrap().len(), 2, "{v}");
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "wip")
    );
    // Before anything arrived: nothing.
    let (_, v) = srv.get_json(&format!("/api/v1/logistics/inventory?at={}", t0 - 1));
    assert_eq!(v["rows"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn lots_flow_and_every_figure_matches_the_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, t0) = setup(dir.path());
    check_inventory(&srv, t0);

    // The store fell from 150 to 40 steel, below its reorder point of 50: one event.
    let (_, v) = srv.get_json(&format!(
        "/api/v1/events?type=custom:reorder_point&from={}&to={}",
        t0 - MIN,
        now_ms()
    ));
    // (The first receipt took the store from 0 to 150: that crossing upward is a `restocked` event.)
    let ev: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["attrs"]["state"] == "below")
        .collect();
    assert_eq!(ev.len(), 1, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(ev[0]["attrs"]["quantity"], 40.0);
    assert_eq!(ev[0]["asset"], "s1");
    // … and an alarm that says why.
    let alarm = common::eventually(std::time::Duration::from_secs(10), || {
        let (_, v) = srv.get_json("/api/v1/alarms?rule=reorder.store.steel");
        v["alarms"].as_array().and_then(|a| a.first().cloned())
    })
    .expect("a reorder-point alarm");
    assert_eq!(alarm["state"], "active", "{alarm}");
    assert_eq!(alarm["rule_type"], "reorder_point");
    assert_eq!(alarm["asset"], "s1");
    assert_eq!(alarm["explanation"]["contributions"][0]["value"], 40.0);
    assert_eq!(alarm["explanation"]["contributions"][0]["expected"], 50.0);

    // Dwell at the line: R2 stayed 30 min (until consumed), W1 10 min; R1 is still there.
    let (_, v) = srv.get_json(&format!(
        "/api/v1/logistics/dwell?location={LINE}&from={}",
        t0 - MIN
    ));
    assert_eq!(v[0]["stays"], 2, "{v}");
    assert_eq!(v[0]["mean_s"], 1200.0);
    assert_eq!(v[0]["min_s"], 600.0);
    assert_eq!(v[0]["max_s"], 1800.0);
    assert_eq!(v[0]["open"], 1);
    // Lead time to shipping: W1 made at t0+40m, shipped at t0+70m.
    let (_, v) = srv.get_json(&format!("/api/v1/logistics/lead-times?from={}", t0 - MIN));
    assert_eq!(v["lots"], 1, "{v}");
    assert_eq!(v["per_lot"][0]["lead_time_s"], 1800.0);

    // One lot: where it is and its moves.
    let (s, v) = srv.get_json("/api/v1/logistics/lots/R1");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["lot"]["positions"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["moves"].as_array().unwrap().len(), 1);
    assert_eq!(v["lot"]["state"], "in_process");
    let (_, v) = srv.get_json("/api/v1/logistics/lots/R2");
    assert_eq!(v["lot"]["consumed_by"], "W1");
    assert_eq!(v["lot"]["state"], "consumed");
    let (_, v) = srv.get_json("/api/v1/logistics/lots?product=widget");
    assert_eq!(v[0]["lot"], "W1");
    assert_eq!(v[0]["state"], "available");
    let (s, _) = srv.get_json("/api/v1/logistics/lots/NOPE");
    assert_eq!(s, 404);
    let (_, v) = srv.get_json(&format!(
        "/api/v1/logistics/location?location={LINE}&from={}",
        t0 - MIN
    ));
    assert_eq!(v["lots"], json!([{"lot": "R1", "quantity": 60.0}]));
    // Moves through the line: R1 and R2 in at +10m, W1 out at +50m (W1's creation is no move).
    let moved: Vec<(&str, &str)> = v["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["lot"].as_str().unwrap(), m["to"].as_str().unwrap()))
        .collect();
    assert_eq!(moved, vec![("R1", LINE), ("R2", LINE), ("W1", "fg")]);
    assert_eq!(v["kind"], "wip");

    // Genealogy backward: W1 was made from R2.
    let (s, g) = srv.get_json("/api/v1/genealogy/W1?direction=backward");
    assert_eq!(s, 200, "{g}");
    let lots: Vec<(&str, u64)> = g["lots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["lot"].as_str().unwrap(), n["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(lots, vec![("W1", 0), ("R2", 1)]);
    // Process data: W1 at the line t0+40m..t0+50m, R2 at the line t0+10m..t0+40m.
    let process = g["process"].as_array().unwrap();
    assert_eq!(process.len(), 2, "{g}");
    let r2 = process.iter().find(|w| w["lot"] == "R2").unwrap();
    assert_eq!(r2["asset"], LINE);
    assert_eq!(r2["start"], t0 + 10 * MIN);
    assert_eq!(r2["end"], t0 + 40 * MIN);
    // m1's temp in [t0+10m, t0+40m): minutes 10..39 → 30 readings, 310..339, mean 324.5.
    let temp = r2["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["signal"] == "s1/a1/l1/m1/temp")
        .unwrap();
    assert_eq!(
        (&temp["count"], &temp["min"], &temp["max"], &temp["mean"]),
        (&json!(30), &json!(310.0), &json!(339.0), &json!(324.5))
    );
    // SPC of temp (it has spec limits): I-MR limits from the 8 h before the stay, i.e. minutes
    // 0..9 (300..309): mean 304.5, mean moving range 1, σ = 1 / 1.128, UCL = 304.5 + 3σ = 307.16.
    // The first reading of the stay, 310 at t0+10m, is beyond it (rule 1).
    let spc = &r2["spc"][0];
    assert_eq!(spc["signal"], "s1/a1/l1/m1/temp", "{r2}");
    let first = &spc["violations"][0];
    assert_eq!(
        (&first["number"], &first["ts"]),
        (&json!(1), &json!(t0 + 10 * MIN)),
        "{spc}"
    );
    assert_eq!(first["value"], 310.0);
    // Events at the line's machines while R2 was there: the jam at +15m, 10 parts at +20m, and
    // the move of R1 and R2 itself at +10m (3 + 0: lot events are at the line too).
    let types: Vec<&str> = r2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["move", "move", "state", "production"], "{r2}");
    // Forward from R2: W1, which ended in shipping.
    let (_, g) = srv.get_json("/api/v1/genealogy/R2?direction=forward&process=false");
    assert_eq!(g["lots"][1]["lot"], "W1");
    assert_eq!(g["lots"][1]["stays"][2]["location"], "shipping");
    assert_eq!(g["process"].as_array().unwrap().len(), 0);
    // CSV: one row per stay (W1: line, fg, shipping; R2: store, line).
    let (s, csv) = srv.get_text("/api/v1/genealogy/W1?format=csv");
    assert_eq!(s, 200);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "lot,product,quantity,unit,created,depth,via,location,arrived,left"
    );
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(rows[5].starts_with("R2,steel,50,pcs,"), "{csv}");
    assert!(rows[5].contains(",1,W1,s1/a1/l1,"), "{csv}");

    // Energy over [t0, t0+60m): m1's counter gives 0.5 kWh in each of minutes 1..59 (minute 0 has
    // no earlier reading) = 29.5 kWh, 15 of them idle (minutes 30..59); m2 draws 0.1 kWh a minute
    // = 6 kWh. Line: 35.5 kWh for the 40 good parts of its last machine = 0.8875 kWh per part;
    // CO2e 35.5 × 0.5 = 17.75 kg. m1: 29.5 kWh / 59 parts = 0.5.
    let (s, v) = srv.get_json(&format!(
        "/api/v1/energy/report?from={t0}&to={}&by=total",
        t0 + 60 * MIN
    ));
    assert_eq!(s, 200, "{v}");
    let row = |asset: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["asset"] == asset)
            .unwrap_or_else(|| panic!("no row of {asset} in {v}"))
            .clone()
    };
    let m1 = row("s1/a1/l1/m1");
    assert!(close(m1["kwh"].as_f64().unwrap(), 29.5), "{m1}");
    assert!(close(m1["idle_kwh"].as_f64().unwrap(), 15.0), "{m1}");
    assert!(close(m1["kwh_per_good"].as_f64().unwrap(), 0.5), "{m1}");
    let line = row(LINE);
    assert!(close(line["kwh"].as_f64().unwrap(), 35.5), "{line}");
    assert_eq!((&line["good"], &line["scrap"]), (&json!(40), &json!(2)));
    assert!(
        close(line["kwh_per_good"].as_f64().unwrap(), 0.8875),
        "{line}"
    );
    assert!(close(line["co2e_kg"].as_f64().unwrap(), 17.75), "{line}");
    assert!(close(row("s1")["kwh"].as_f64().unwrap(), 35.5));
    let (_, csv) = srv.get_text(&format!(
        "/api/v1/energy/report?from={t0}&to={}&by=total&format=csv",
        t0 + 60 * MIN
    ));
    assert!(csv.starts_with(
        "asset,level,period,period_start,kwh,idle_kwh,good,scrap,kwh_per_good,co2e_kg,timezone,period_start_local\n"
    ));
    assert!(
        csv.contains(&format!(
            "\ns1/a1/l1,line,total,{},",
            gemba_core::time::format_rfc3339(t0)
        )),
        "{csv}"
    );

    // Energy per lot: W1 and its input R2 were at the line over [t0+10m, t0+50m): 40 minutes of
    // 0.5 + 0.1 kWh = 24 kWh for 40 widgets = 0.6 kWh each; CO2e 12 kg, 0.3 kg each.
    let (s, v) = srv.get_json("/api/v1/energy/lots?lot=W1");
    assert_eq!(s, 200, "{v}");
    let w1 = &v["lots"][0];
    assert!(close(w1["kwh"].as_f64().unwrap(), 24.0), "{w1}");
    assert!(close(w1["kwh_per_unit"].as_f64().unwrap(), 0.6), "{w1}");
    assert!(close(w1["co2e_kg"].as_f64().unwrap(), 12.0), "{w1}");
    assert!(close(w1["co2e_kg_per_unit"].as_f64().unwrap(), 0.3), "{w1}");
    assert_eq!(v["products"][0]["product"], "widget");

    // The CLI prints the same.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .args(args)
            .args(["--server", &srv.url("")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (_, gcsv) = srv.get_text("/api/v1/genealogy/W1?format=csv");
    assert_eq!(cli(&["genealogy", "W1", "--backward", "--csv"]), gcsv);
    let table = cli(&["inventory", "--kind", "wip"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["s1/a1/l1", "wip", "steel", "60", "1"]),
        "{table}"
    );
    let tree = cli(&["genealogy", "W1"]);
    assert!(tree.starts_with("W1 40 pcs widget"), "{tree}");
    assert!(
        tree.contains("\n  R2 50 pcs steel  [store → s1/a1/l1]"),
        "{tree}"
    );
    let report = cli(&[
        "energy",
        "report",
        "--by",
        "total",
        "--from",
        &t0.to_string(),
        "--to",
        &(t0 + 60 * MIN).to_string(),
    ]);
    assert!(
        report.contains("s1/a1/l1 ") && report.contains("35.500"),
        "{report}"
    );

    // After a restart the ledger is rebuilt from the store: same figures, same rules.
    srv.stop();
    let mut srv = Server::restart(
        dir.path(),
        srv.config.clone(),
        srv.http,
        srv.mqtt,
        srv.mqtt_v5,
    );
    check_inventory(&srv, t0);
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [lot(now_ms(), "W2", "widget", 1.0, LINE, &["R2"])]}),
    );
    assert_eq!(s, 422, "{v}");
    // Restocking the store to 60 steel clears the reorder-point alarm.
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [lot(now_ms(), "R3", "steel", 20.0, "store", &[])]}),
    );
    assert_eq!(s, 200, "{v}");
    common::eventually(std::time::Duration::from_secs(10), || {
        let (_, v) = srv.get_json("/api/v1/alarms?rule=reorder.store.steel");
        (v["alarms"][0]["state"] == "cleared").then_some(())
    })
    .expect("the reorder-point alarm clears on restocking");
    srv.stop();
}

#[test]
fn bad_moves_are_rejected_with_the_field_and_leave_inventory_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, t0) = setup(dir.path());
    let (_, before) = srv.get_json("/api/v1/logistics/inventory");
    let t = t0 + 80 * MIN;
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [
            mv(t, "NOPE", "store", LINE, 1.0),
            mv(t, "R1", "store", LINE, -5.0),
            lot(t, "W2", "widget", 1.0, LINE, &["R2"]),
            mv(t, "R1", "store", LINE, 41.0),
            lot(t, "R1", "steel", 5.0, "store", &[]),
            mv(t, "W1", "shipping", "shipping", 1.0),
            mv(t0 - MIN, "R1", "store", LINE, 1.0),
            mv(t, "R1", "store", LINE, 40.0)
        ]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted_events"], 1, "{v}");
    assert_eq!(v["rejected"], 7);
    // Events that fail their own checks are reported before those that fail the ledger's.
    let mut at: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["location"].as_str().unwrap())
        .collect();
    at.sort();
    assert_eq!(
        at,
        vec![
            "events[0].lot",
            "events[1].quantity",
            "events[2].inputs",
            "events[3].quantity",
            "events[4].lot",
            "events[5].to",
            "events[6].ts"
        ]
    );
    let msg = |loc: &str| {
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["location"] == loc)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(msg("events[0].lot").contains("unknown lot \"NOPE\""), "{v}");
    assert!(
        msg("events[2].inputs").contains("already consumed by lot \"W1\""),
        "{v}"
    );
    assert!(
        msg("events[3].quantity").contains("has 40 at \"store\""),
        "{v}"
    );
    // Only the last move (all 40 that were left) went through.
    let (_, after) = srv.get_json("/api/v1/logistics/inventory");
    assert_eq!(qty(&after, "store", "steel"), 0.0);
    assert_eq!(qty(&after, LINE, "steel"), 100.0);
    assert_eq!(qty(&before, LINE, "steel"), 60.0);

    // Strict mode: one bad event and nothing is stored, not even the good one.
    let (s, v) = srv.post_json(
        "/api/v1/ingest?mode=strict",
        &json!({"events": [
            mv(t + 1, "R1", LINE, "fg", 10.0),
            mv(t + 1, "R1", LINE, "fg", 95.0)
        ]}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["accepted_events"], 0);
    let (_, again) = srv.get_json("/api/v1/logistics/inventory");
    assert_eq!(again["rows"], after["rows"]);
    // A batch sees its own earlier events: 10 then 90 of R1's 100 at the line.
    let (s, v) = srv.post_json(
        "/api/v1/ingest?mode=strict",
        &json!({"events": [
            mv(t + 2, "R1", LINE, "fg", 10.0),
            mv(t + 2, "R1", LINE, "fg", 90.0)
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    let (_, v) = srv.get_json("/api/v1/logistics/inventory?location=fg");
    assert_eq!(qty(&v, "fg", "steel"), 100.0);
    // A client that saw no answer retries the same batch: recognised, acknowledged, not applied
    // (nothing of R1 is left at the line, so applying it again would have been refused).
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [
            mv(t + 2, "R1", LINE, "fg", 10.0),
            mv(t + 2, "R1", LINE, "fg", 90.0)
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted_events"], 0);
    let (_, v) = srv.get_json("/api/v1/logistics/inventory?location=fg");
    assert_eq!(qty(&v, "fg", "steel"), 100.0);
    let (_, h) = srv.get_json("/api/v1/logistics/lots/R1");
    assert_eq!(h["moves"].as_array().unwrap().len(), 4, "{h}");
    // Bad query parameters name themselves.
    let (s, v) = srv.get_json("/api/v1/genealogy/W1?direction=sideways");
    assert_eq!(s, 400);
    assert!(v.to_string().contains("direction"), "{v}");
    let (s, v) = srv.get_json("/api/v1/energy/report?by=week");
    assert_eq!(s, 400);
    assert!(v.to_string().contains("by"), "{v}");
}

/// `gemba demo`: the simulator's lots flow through the lines without one being refused, the
/// failure-in-30-min models trained on the history score every machine live, and the
/// energy figures of the demo are there: kWh per good part per line and CO2e per finished lot at
/// the demo's example factor (0.4 kg/kWh).
#[test]
fn the_demo_flows_lots_and_reports_kwh_per_good_part_and_co2e_per_lot() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "6h", &log);
    let text = wait_live(&log, std::time::Duration::from_secs(300));
    assert!(
        text.contains(" 0 rejected)") && !text.contains("simulator data rejected"),
        "{text}"
    );
    // Failure-in-30-min prediction trained on the history, one rule per machine, scored live.
    assert!(
        text.contains("demo: failure-in-30-min models horizon@1")
            && text.contains("; 8 alarm rules"),
        "{text}"
    );
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let get = |q: &str| -> Value {
        let mut r = agent
            .get(&format!("http://127.0.0.1:{http}{q}"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{q}");
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    };
    let lots = get("/api/v1/logistics/lots?limit=1000");
    let lots = lots.as_array().unwrap();
    let finished: Vec<&Value> = lots
        .iter()
        .filter(|l| !l["inputs"].as_array().unwrap().is_empty())
        .collect();
    assert!(
        finished.len() >= 2,
        "{} finished lots of {}",
        finished.len(),
        lots.len()
    );
    for f in &finished {
        let raw = f["inputs"][0].as_str().unwrap();
        let r = lots.iter().find(|l| l["lot"] == raw).unwrap();
        assert_eq!(r["consumed_by"], f["lot"]);
        assert!(r["product"].as_str().unwrap().starts_with("raw-"), "{r}");
    }
    // The machines' failure probabilities are scored live (the windows primed from the history);
    // a rule scores only while its machine runs, and one may be down after a failure.
    let scored = eventually(std::time::Duration::from_secs(60), || {
        let latest = get("/api/v1/latest");
        let latest = latest.as_array().unwrap();
        let value = |path: String| {
            latest
                .iter()
                .find(|l| l["signal"] == path.as_str())
                .map(|l| (l["value"].as_f64().unwrap(), l["state"].clone()))
        };
        let running: Vec<String> = latest
            .iter()
            .filter(|l| {
                l["signal"].as_str().unwrap().ends_with("/state") && l["state"] == "running"
            })
            .map(|l| {
                l["signal"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("/state")
                    .to_owned()
            })
            .collect();
        let p: Vec<f64> = running
            .iter()
            .filter_map(|m| value(format!("{m}/p_failure_30m")).map(|v| v.0))
            .collect();
        (running.len() >= 3 && p.len() == running.len()).then_some(p)
    });
    let scored = scored.expect("every running machine (at least 3) with a live p_failure_30m");
    assert!(scored.iter().all(|p| (0.0..=1.0).contains(p)), "{scored:?}");
    // Every line holds the raw lot of its current job: WIP.
    let wip = get("/api/v1/logistics/inventory?kind=wip");
    assert_eq!(wip["rows"].as_array().unwrap().len(), 2, "{wip}");

    let from = now_ms() - 7 * 3_600_000;
    let report = get(&format!("/api/v1/energy/report?by=total&from={from}"));
    let lines: Vec<&Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["level"] == "line")
        .collect();
    assert_eq!(lines.len(), 2, "{report}");
    for l in lines {
        let (kwh, good) = (l["kwh"].as_f64().unwrap(), l["good"].as_f64().unwrap());
        assert!(kwh > 0.0 && good > 0.0, "{l}");
        assert!(
            close(l["kwh_per_good"].as_f64().unwrap(), kwh / good),
            "{l}"
        );
        assert!(l["idle_kwh"].as_f64().unwrap() < kwh, "{l}");
        assert!(close(l["co2e_kg"].as_f64().unwrap(), 0.4 * kwh), "{l}");
    }
    let per_lot = get(&format!("/api/v1/energy/lots?from={from}"));
    let done: Vec<&Value> = per_lot["lots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["product"].as_str().unwrap().starts_with("widget-"))
        .collect();
    assert!(!done.is_empty(), "{per_lot}");
    for l in done {
        let kwh = l["kwh"].as_f64().unwrap();
        assert!(kwh > 0.0, "{l}");
        assert!(close(l["co2e_kg"].as_f64().unwrap(), 0.4 * kwh), "{l}");
        assert!(
            close(
                l["kwh_per_unit"].as_f64().unwrap(),
                kwh / l["quantity"].as_f64().unwrap()
            ),
            "{l}"
        );
    }
    // Backward genealogy of a finished lot: itself and its raw lot, with the line's process data.
    let g = get(&format!(
        "/api/v1/genealogy/{}",
        finished[0]["lot"].as_str().unwrap()
    ));
    assert_eq!(g["lots"].as_array().unwrap().len(), 2, "{g}");
    let w = &g["process"][0];
    assert!(!w["signals"].as_array().unwrap().is_empty(), "{g}");
    assert!(
        w["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "production"),
        "{w}"
    );
}

/// A scanner publishing over MQTT on its machine's topic: the lot is received and moved; a scan of
/// an unknown lot is refused (counted as a rejected MQTT item) and changes nothing.
#[test]
fn scanner_events_over_mqtt_are_checked_like_http() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), PLANT, CONFIG, &[]);
    let prog = require_program("mosquitto_pub", "mosquitto-clients");
    let publish = |payload: Value| {
        let out = std::process::Command::new(&prog)
            .args(["-h", "127.0.0.1", "-p", &srv.mqtt.to_string(), "-q", "1"])
            .args(["-t", "gemba/v1/s1/a1/l1/m1", "-m", &payload.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let t = now_ms() - MIN;
    // Events without an asset belong to the machine of the topic.
    publish(json!({"events": [
        {"ts": t, "type": "lot", "lot": "S1", "product": "steel", "quantity": 10, "location": "receiving"},
        {"ts": t + 1000, "type": "move", "lot": "S1", "from": "receiving", "to": "s1/a1/l1/m1", "quantity": 4,
         "attrs": {"reader": "gate-3"}}
    ]}));
    let inv = eventually(std::time::Duration::from_secs(10), || {
        let (_, v) = srv.get_json("/api/v1/logistics/inventory");
        (qty(&v, "s1/a1/l1/m1", "steel") == 4.0).then_some(v)
    })
    .expect("the scanned move arrives");
    assert_eq!(qty(&inv, "receiving", "steel"), 6.0);
    publish(json!({"events": [
        {"ts": t + 2000, "type": "move", "lot": "S9", "from": "receiving", "to": "s1/a1/l1/m1", "quantity": 1}
    ]}));
    eventually(std::time::Duration::from_secs(10), || {
        (srv.metric("gemba_ingest_rejected_items_total{source=\"mqtt\"}") >= 1.0).then_some(())
    })
    .expect("the unknown lot is rejected");
    let (_, after) = srv.get_json("/api/v1/logistics/inventory");
    assert_eq!(after["rows"], inv["rows"]);
}
