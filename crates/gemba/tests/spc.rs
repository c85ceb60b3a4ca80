//! `GET /api/v1/spc` on data from the simulator: a mean shift injected at a known time is flagged
//! by the run rules, EWMA and CUSUM after its onset, with limits frozen on the healthy baseline.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, run_gemba};

const SAMPLE_PLANT: &str = include_str!("../../../examples/plant.toml");

#[test]
fn spc_flags_the_simulated_shift_after_its_onset() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_plant(dir.path(), SAMPLE_PLANT, "", &[]);
    let scenario = dir.path().join("shift.toml");
    std::fs::write(
        &scenario,
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n[quality]\ntool_wear_shift = 0.0\n\
         [production]\nstartup_parts = 0\n\
         [[faults]]\nkind = \"mean_shift\"\nmachine = \"cnc1\"\nat = \"5h\"\nmagnitude = 2.0\n",
    )
    .unwrap();
    let (ok, text) = run_gemba(&[
        "simulate",
        "--mqtt-port",
        &srv.mqtt.to_string(),
        "--duration",
        "8h",
        "--speed",
        "max",
        "--scenario",
        scenario.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let signal = "plant1/production/line1/cnc1/diameter";
    // Wait until the last hour is stored, then find the onset (ground truth).
    let deadline = Instant::now() + Duration::from_secs(60);
    let onset = loop {
        let (_, ev) = srv.get_json("/api/v1/events?type=custom:fault_onset");
        let (_, latest) = srv.get_json(&format!("/api/v1/latest?prefix={signal}"));
        if let (Some(e), Some(ts)) = (
            ev.as_array().and_then(|a| a.first()),
            latest[0]["ts"].as_i64(),
        ) && ts > e["ts"].as_i64().unwrap() + 2 * 3_600_000
        {
            break e["ts"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "data not stored: {ev}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let start = onset - 5 * 3_600_000;
    let q = |extra: &str| {
        let (s, v) = srv.get_json(&format!(
            "/api/v1/spc?signal={signal}&from={start}&to={}&baseline_from={start}&baseline_to={}{extra}",
            onset + 3 * 3_600_000,
            start + 4 * 3_600_000
        ));
        assert_eq!(s, 200, "{v}");
        v
    };
    for (extra, name) in [
        ("&rules=we", "imr"),
        ("&chart=ewma", "ewma"),
        ("&chart=cusum", "cusum"),
        ("&chart=xbar_r&subgroup=5", "xbar_r"),
    ] {
        let v = q(extra);
        let violations = v["violations"].as_array().unwrap();
        let before = violations
            .iter()
            .filter(|x| x["ts"].as_i64().unwrap() < onset)
            .count();
        let after = violations.len() - before;
        let n = v["main"]["points"].as_array().unwrap().len();
        assert!(after > 10, "{name}: {after} violations after the onset");
        assert!(
            before * 20 < n,
            "{name}: {before} false alarms on {n} points"
        );
        // The first violation after the onset comes within an hour.
        let first = violations
            .iter()
            .map(|x| x["ts"].as_i64().unwrap())
            .find(|t| *t >= onset)
            .unwrap();
        assert!(
            first - onset < 3_600_000,
            "{name}: first alarm {} s after onset",
            (first - onset) / 1000
        );
    }
    let v = q("");
    // Capability against the spec limits (24.95 / 25.05) over the judged range, shift included.
    let cap = &v["capability"];
    assert!(
        cap["cpk"].as_f64().unwrap() < cap["cp"].as_f64().unwrap(),
        "{cap}"
    );
    assert!(v["violations"][0]["points"].as_array().is_some());
    // Bad requests name the parameter.
    let (s, e) = srv.get_json(&format!("/api/v1/spc?signal={signal}&chart=pie"));
    assert_eq!(s, 400);
    assert!(e.to_string().contains("chart"), "{e}");
    let (s, _) = srv.get_json("/api/v1/spc?signal=plant1/production/line1/cnc1/nothing");
    assert_eq!(s, 404);
    let (s, e) = srv.get_json(&format!("/api/v1/spc?signal={signal}&rules=9"));
    assert_eq!(s, 400, "{e}");
}
