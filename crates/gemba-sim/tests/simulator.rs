//! The simulator's output checked against its specification: the AI4I rules hold for every
//! failure, rates are in their bands, faults show up in the signals, runs are reproducible.

use std::collections::HashMap;

use gemba_core::{Event, EventBody, Plant};
use gemba_sim::{FailureMode, MachineState, Scenario, Simulator, Tick};

const PLANT: &str = include_str!("../../../examples/plant.toml");
/// 2026-01-05 00:00 UTC, a Monday.
const START: i64 = 1_767_571_200_000;

fn plant() -> Plant {
    toml::from_str(PLANT).expect("sample plant parses")
}

struct Run {
    signals: Vec<String>,
    machines: Vec<String>,
    ticks: Vec<(i64, Vec<f64>)>,
    events: Vec<Event>,
    labels: Vec<Vec<gemba_sim::Label>>,
}

fn run(scenario: &Scenario, ticks: usize) -> Run {
    let mut sim = Simulator::new(&plant(), scenario, START).expect("simulator");
    let mut tick: Tick = sim.new_tick();
    let mut out = Run {
        signals: sim.signals().iter().map(|s| s.path.clone()).collect(),
        machines: sim.machines().iter().map(|s| s.to_string()).collect(),
        ticks: Vec::with_capacity(ticks),
        events: Vec::new(),
        labels: Vec::new(),
    };
    for _ in 0..ticks {
        sim.step(&mut tick);
        out.ticks.push((tick.ts, tick.values.clone()));
        out.events.extend(tick.events.iter().cloned());
        out.labels.push(tick.labels.clone());
    }
    out
}

fn custom<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| matches!(&e.body, EventBody::Custom { name: n } if n == name))
        .collect()
}

fn num(e: &Event, key: &str) -> f64 {
    e.attrs[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {e:?}"))
}

fn scenario(text: &str) -> Scenario {
    Scenario::from_toml(text).expect("valid scenario")
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let a = run(&Scenario::default(), 2000);
    let b = run(&Scenario::default(), 2000);
    assert_eq!(a.events, b.events);
    for (x, y) in a.ticks.iter().zip(&b.ticks) {
        assert_eq!(x.0, y.0);
        for (u, v) in x.1.iter().zip(&y.1) {
            assert!(u.to_bits() == v.to_bits(), "{u} vs {v}");
        }
    }
    let c = run(&scenario("seed = 7"), 2000);
    assert_ne!(a.ticks[1999].1[0].to_bits(), c.ticks[1999].1[0].to_bits());
}

#[test]
fn every_failure_obeys_the_ai4i_rules_and_rates_are_in_band() {
    // Eight machines for 30 simulated days at 10 s per sample.
    let sc = scenario("sample_interval = \"10s\"\n[production]\nminor_stops_per_hour = 0.0\n");
    let r = run(&sc, 30 * 8640);
    let limits = sc.failures.overstrain_limit;
    let failures = custom(&r.events, "failure");
    let mut by_mode: HashMap<FailureMode, usize> = HashMap::new();
    for f in &failures {
        let mode =
            FailureMode::from_name(f.attrs["mode"].as_str().expect("mode")).expect("known mode");
        *by_mode.entry(mode).or_default() += 1;
        let (torque, speed, wear) = (
            num(f, "torque_nm"),
            num(f, "speed_rpm"),
            num(f, "tool_wear_min"),
        );
        let delta = num(f, "process_temp_k") - num(f, "air_temp_k");
        let power = num(f, "power_w");
        let variant = f.attrs["variant"].as_str().expect("variant");
        let limit = limits[["L", "M", "H"]
            .iter()
            .position(|v| *v == variant)
            .expect("variant")];
        match mode {
            FailureMode::Overstrain => assert!(wear * torque > limit - 0.5, "{f:?}"),
            FailureMode::HeatDissipation => assert!(delta < 8.6 + 1e-3 && speed < 1380.0, "{f:?}"),
            FailureMode::Power => assert!(!(3500.0..=9000.0).contains(&power), "{f:?}"),
            FailureMode::ToolWear => assert!((200.0..=241.0).contains(&wear), "{f:?}"),
            FailureMode::Random | FailureMode::Bearing => {}
        }
        // A failure stops the machine until it is repaired.
        let m = r
            .machines
            .iter()
            .position(|m| *m == f.asset)
            .expect("machine");
        let i = r.ticks.iter().position(|t| t.0 == f.ts).expect("tick");
        assert_eq!(r.labels[i][m].state, MachineState::Down);
        assert_eq!(r.labels[i][m].failure, Some(mode));
    }
    // Records: one per operating-point interval of running time.
    let running_ticks: usize = r
        .labels
        .iter()
        .map(|l| {
            l.iter()
                .filter(|x| x.state == MachineState::Running)
                .count()
        })
        .sum();
    let records = running_ticks as f64 * 10.0 / 600.0;
    let rate = |m: FailureMode| *by_mode.get(&m).unwrap_or(&0) as f64 / records;
    let rules = rate(FailureMode::HeatDissipation)
        + rate(FailureMode::Power)
        + rate(FailureMode::Overstrain);
    eprintln!(
        "records {records:.0}, failures {:?}, rule rate {:.4}, random {:.4}",
        by_mode,
        rules,
        rate(FailureMode::Random)
    );
    // AI4I 2020 has HDF 1.15 %, PWF 0.95 %, OSF 0.98 % of 10,000 records (3.1 % together).
    // The rules applied to the spec's distributions give more: P(ΔT < 8.6 K) · P(n < 1380 rpm)
    // = 8.1 % · 18.7 % = 1.5 % for HDF before tool wear and restarts; this seed measured HDF
    // 2.2 %, PWF 1.7 %, OSF 1.1 % (docs/SIMULATOR.md). The bands catch a broken rule or draw.
    assert!((0.02..0.08).contains(&rules), "rule failure rate {rules}");
    for m in [
        FailureMode::HeatDissipation,
        FailureMode::Power,
        FailureMode::Overstrain,
    ] {
        assert!((0.005..0.035).contains(&rate(m)), "{m:?} rate {}", rate(m));
    }
    assert!(rate(FailureMode::Random) < 0.004);
    // Tool lives end between 200 and 240 min; about 38 % of the ends are failures (AI4I: 46/120).
    let changes = custom(&r.events, "tool_change");
    for c in &changes {
        assert!((200.0..=241.0).contains(&num(c, "tool_wear_min")), "{c:?}");
    }
    let twf = *by_mode.get(&FailureMode::ToolWear).unwrap_or(&0) as f64;
    let share = twf / (twf + changes.len() as f64);
    assert!(
        (0.2..0.6).contains(&share),
        "tool-wear failure share {share}"
    );
}

#[test]
fn a_degrading_bearing_vibrates_more_and_fails() {
    let sc = scenario(
        "sample_interval = \"10s\"\n[failures]\nrules = false\nrandom_failure_probability = 0.0\n\
         tool_replacement_probability = 1.0\n[production]\nminor_stops_per_hour = 0.0\n\
         [[faults]]\nkind = \"bearing\"\nmachine = \"line1/cnc1\"\nat = \"2h\"\nduration = \"12h\"\n",
    );
    let r = run(&sc, 24 * 360);
    let onset = custom(&r.events, "fault_onset");
    assert_eq!(onset.len(), 1);
    assert_eq!(onset[0].asset, "plant1/production/line1/cnc1");
    let failures = custom(&r.events, "failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].attrs["mode"], "bearing");
    let fail_ts = failures[0].ts;
    // At least 12 h of running time after the onset: 14 h of calendar time or more.
    assert!(
        fail_ts - onset[0].ts >= 12 * 3_600_000,
        "failed after {} ms",
        fail_ts - onset[0].ts
    );
    let vib = r
        .signals
        .iter()
        .position(|s| s == "plant1/production/line1/cnc1/vibration_rms")
        .expect("signal");
    let m = 0;
    let mean_running = |from: i64, to: i64| {
        let v: Vec<f64> = r
            .ticks
            .iter()
            .zip(&r.labels)
            .filter(|(t, l)| t.0 >= from && t.0 < to && l[m].state == MachineState::Running)
            .map(|(t, _)| t.1[vib])
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let before = mean_running(START, onset[0].ts);
    let last_hour = mean_running(fail_ts - 3_600_000, fail_ts);
    assert!(last_hour > 2.5 * before, "vibration {before} → {last_hour}");
    // The labels count the running time left down to zero.
    let rul: Vec<f64> = r.labels.iter().filter_map(|l| l[m].bearing_rul_s).collect();
    assert!(rul.first().expect("rul") > &43_000.0 && rul.windows(2).all(|w| w[1] <= w[0]));
}

fn quality_mean(r: &Run, signal: &str, from: i64, to: i64) -> (f64, usize) {
    let q = r.signals.iter().position(|s| s == signal).expect("signal");
    let v: Vec<f64> = r
        .ticks
        .iter()
        .filter(|t| t.0 >= from && t.0 < to && !t.1[q].is_nan())
        .map(|t| t.1[q])
        .collect();
    (v.iter().sum::<f64>() / v.len() as f64, v.len())
}

#[test]
fn a_mean_shift_moves_the_quality_characteristic() {
    // σ of cnc1's diameter: tolerance 0.1 mm / (6 × 1.67) ≈ 0.00998 mm; shift 2 σ ≈ 0.02 mm.
    let sc = scenario(
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n[quality]\ntool_wear_shift = 0.0\n\
         [[faults]]\nkind = \"mean_shift\"\nmachine = \"cnc1\"\nat = \"3h\"\nduration = \"3h\"\nmagnitude = 2.0\n",
    );
    let r = run(&sc, 9 * 3600);
    let sig = "plant1/production/line1/cnc1/diameter";
    let h = 3_600_000;
    let (before, n) = quality_mean(&r, sig, START, START + 3 * h);
    let (during, _) = quality_mean(&r, sig, START + 3 * h, START + 6 * h);
    let (after, _) = quality_mean(&r, sig, START + 6 * h, START + 9 * h);
    assert!(n > 200, "{n} parts");
    let sigma = 0.1 / (6.0 * 1.67);
    assert!(
        ((during - before) / sigma - 2.0).abs() < 0.5,
        "{before} → {during}"
    );
    assert!(
        ((after - before) / sigma).abs() < 0.5,
        "cleared: {before} vs {after}"
    );
    assert_eq!(custom(&r.events, "fault_cleared").len(), 1);
}

#[test]
fn lots_flow_from_raw_store_to_shipping() {
    let sc = scenario("[production]\nlot_size = 50\nship_delay = \"30m\"\n");
    let r = run(&sc, 8 * 3600);
    let moves: Vec<(&str, &str, &str, f64, i64)> = r
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Move {
                lot,
                from,
                to,
                quantity,
            } => Some((lot.as_str(), from.as_str(), to.as_str(), *quantity, e.ts)),
            _ => None,
        })
        .collect();
    let finished: Vec<_> = moves.iter().filter(|m| m.2 == "finished_goods").collect();
    assert!(finished.len() >= 4, "{} lots finished", finished.len());
    for f in &finished {
        assert!(f.3 >= 50.0, "{f:?}");
        let shipped = moves.iter().find(|m| m.0 == f.0 && m.2 == "shipping");
        if let Some(s) = shipped {
            assert_eq!(s.4 - f.4, 30 * 60_000);
        } else {
            assert!(
                f.4 > START + 8 * 3_600_000 - 30 * 60_000,
                "{f:?} never shipped"
            );
        }
        // Its raw material lot came to the line first.
        let raw = format!("{}-RM", f.0);
        assert!(
            moves.iter().any(|m| m.0 == raw && m.1 == "raw_store"),
            "{raw}"
        );
    }
    // Every moved lot was created by a `lot` event first; a finished lot is made from its raw lot.
    let created: Vec<(&str, i64, &[String])> = r
        .events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Lot { lot, inputs, .. } => Some((lot.as_str(), e.ts, inputs.as_slice())),
            _ => None,
        })
        .collect();
    for m in &moves {
        let c = created.iter().find(|c| c.0 == m.0);
        assert!(
            c.is_some_and(|c| c.1 <= m.4),
            "{m:?} moves a lot not created before"
        );
    }
    for f in &finished {
        let c = created.iter().find(|c| c.0 == f.0).expect("created");
        assert_eq!(c.2, [format!("{}-RM", f.0)]);
    }
    // Every part of a lot's production events names the lot, and changeovers set machines up.
    assert!(r.events.iter().any(|e| matches!(&e.body, EventBody::State { state, reason } if state == "setup" && reason.as_deref() == Some("changeover"))));
    assert!(!custom(&r.events, "shift_start").is_empty());
}

#[test]
fn bad_scenarios_are_clear_errors() {
    let cases = [
        (
            "[production]\nvariant_mix = [0.5, 0.5, 0.5]\n",
            "production.variant_mix",
        ),
        ("colour = \"red\"\n", "unknown field `colour`"),
        ("sample_interval = \"fast\"\n", "sample_interval"),
        (
            "[failures]\nrandom_failure_probability = 2.0\n",
            "failures.random_failure_probability",
        ),
        (
            "[[faults]]\nkind = \"cycle\"\nmachine = \"cnc1\"\nat = \"1h\"\nmagnitude = 1.0\n",
            "faults[0] (cycle).period",
        ),
        (
            "[[faults]]\nkind = \"bearing\"\nmachine = \"cnc1\"\nat = \"1h\"\n",
            "faults[0] (bearing).duration",
        ),
        (
            "[[faults]]\nkind = \"melting\"\nmachine = \"cnc1\"\nat = \"1h\"\n",
            "unknown variant `melting`",
        ),
    ];
    for (text, needle) in cases {
        let err = Scenario::from_toml(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let sc = scenario(
        "[[faults]]\nkind = \"mean_shift\"\nmachine = \"line9/cnc1\"\nat = \"1h\"\nmagnitude = 1.0\n",
    );
    let err = Simulator::new(&plant(), &sc, START)
        .expect_err("no such machine")
        .to_string();
    assert!(
        err.contains("matches no simulated machine")
            && err.contains("plant1/production/line1/cnc1"),
        "{err}"
    );
    let sc = scenario(
        "[[faults]]\nkind = \"sensor_stuck\"\nmachine = \"cnc1\"\nat = \"1h\"\nsignal = \"humidity\"\n",
    );
    let err = Simulator::new(&plant(), &sc, START)
        .expect_err("no such signal")
        .to_string();
    assert!(err.contains("no simulated signal \"humidity\""), "{err}");
}

#[test]
fn a_stuck_sensor_freezes_and_labels_say_so() {
    let sc = scenario(
        "[[faults]]\nkind = \"sensor_stuck\"\nmachine = \"mould1\"\nsignal = \"process_temp\"\nat = \"30m\"\nduration = \"30m\"\n",
    );
    let r = run(&sc, 2 * 3600);
    let s = r
        .signals
        .iter()
        .position(|p| p.ends_with("mould1/process_temp"))
        .expect("signal");
    let m = r
        .machines
        .iter()
        .position(|p| p.ends_with("mould1"))
        .expect("machine");
    let stuck: Vec<f64> = r.ticks[1800..3599].iter().map(|t| t.1[s]).collect();
    assert!(stuck.iter().all(|v| v.to_bits() == stuck[0].to_bits()));
    assert_ne!(r.ticks[4000].1[s].to_bits(), r.ticks[4001].1[s].to_bits());
    assert_eq!(
        r.labels[2000][m].fault,
        Some(gemba_sim::FaultKind::SensorStuck)
    );
    assert_eq!(r.labels[4000][m].fault, None);
}

#[test]
fn shipped_scenarios_run_on_their_plants() {
    let large: Plant =
        toml::from_str(include_str!("../../../examples/large-plant.toml")).expect("large plant");
    let cases = [
        (
            include_str!("../../../examples/scenarios/default.toml"),
            plant(),
            8,
        ),
        (
            include_str!("../../../examples/scenarios/quality-drift.toml"),
            plant(),
            8,
        ),
        (
            include_str!("../../../examples/scenarios/bearings.toml"),
            plant(),
            8,
        ),
        (
            include_str!("../../../examples/scenarios/large-plant.toml"),
            large,
            50,
        ),
    ];
    for (text, plant, machines) in cases {
        let sc = scenario(text);
        let mut sim = Simulator::new(&plant, &sc, START).expect("runs");
        assert_eq!(sim.machines().len(), machines);
        let mut tick = sim.new_tick();
        let mut onsets = 0;
        // Three simulated hours.
        for _ in 0..(3 * 3_600_000 / sc.sample_interval.0) {
            sim.step(&mut tick);
            onsets += custom(&tick.events, "fault_onset").len();
        }
        assert!(onsets > 0, "{:?}: no fault in 3 h", sc.name);
    }
}

/// Shifts are local times of the line's site (the sample plant's `plant1` is in Europe/Berlin):
/// in January the early shift (06:00) starts at 05:00 UTC, in July at 04:00 UTC.
#[test]
fn shifts_start_in_the_sites_local_time() {
    let sc = scenario("sample_interval = \"60s\"\n");
    // 2026-07-06 00:00 UTC, a Monday in summer time.
    const JULY: i64 = 1_783_296_000_000;
    for (start, early_utc_hour) in [(START, 5), (JULY, 4)] {
        let mut sim = Simulator::new(&plant(), &sc, start).expect("simulator");
        let mut tick = sim.new_tick();
        let mut starts = Vec::new();
        for _ in 0..24 * 60 {
            sim.step(&mut tick);
            starts.extend(custom(&tick.events, "shift_start").into_iter().cloned());
        }
        let early: Vec<i64> = starts
            .iter()
            .filter(|e| e.attrs["shift"] == "early")
            .map(|e| (e.ts - start) / 3_600_000)
            .collect();
        assert!(!early.is_empty(), "no early shift started in a day");
        assert!(
            early.iter().all(|&h| h == early_utc_hour),
            "early shift started at UTC hours {early:?}, expected {early_utc_hour}"
        );
    }
}
