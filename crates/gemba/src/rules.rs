//! The alarm rules `gemba demo` and `gemba eval alarms` put on a simulated plant.

use gemba_engine::Engine;

/// Parts per subgroup of the demo's X̄ charts.
pub const SPC_SUBGROUP: u32 = 5;

/// `line1.cnc1.pca` for `plant1/production/line1/cnc1`.
pub fn demo_rule_name(machine: &str, what: &str) -> String {
    let mut parts = machine.rsplit('/');
    let m = parts.next().unwrap_or("m");
    let l = parts.next().unwrap_or("line");
    format!("{l}.{m}.{what}")
}

/// The demo's alarm rules, fitted on `[from, to)`: per machine an SPC individuals chart of its
/// quality characteristic (the gauge with spec limits), a PCA rule and a VAE rule over the
/// signals the drive's physics ties together, and a vibration threshold 6σ above normal. Returns
/// how many were made.
pub fn demo_rules(engine: &Engine, machines: &[&str], from: i64, to: i64) -> usize {
    use gemba_engine::alarms::{Period, RuleKind, RuleSpec, Severity};
    let baseline = Period { from, to };
    let mut made = 0;
    for m in machines {
        let mut specs = Vec::new();
        let signals = engine.registry().signals_under(m);
        if let Some(q) = signals.iter().find(|r| r.def.spec.is_some()) {
            specs.push(RuleSpec {
                name: demo_rule_name(m, "spc"),
                severity: Severity::Medium,
                description: Some("quality characteristic out of statistical control".into()),
                enabled: true,
                kind: RuleKind::Spc {
                    signal: q.def.path.clone(),
                    chart: "imr".into(),
                    rules: Some(vec![1, 2]),
                    baseline: Some(baseline),
                    center: None,
                    sigma: None,
                    lambda: None,
                    l: None,
                    clear_after: None,
                    subgroup: Some(SPC_SUBGROUP),
                },
            });
        }
        let physics = [
            "spindle_speed",
            "torque",
            "motor_current",
            "power",
            "vibration_rms",
        ];
        let have: Vec<String> = physics
            .iter()
            .filter(|n| signals.iter().any(|r| r.def.path == format!("{m}/{n}")))
            .map(|n| (*n).to_owned())
            .collect();
        if have.len() >= 2 {
            specs.push(RuleSpec {
                name: demo_rule_name(m, "vae"),
                severity: Severity::High,
                description: Some(
                    "drive signals deviate from normal operation (variational autoencoder)".into(),
                ),
                enabled: true,
                kind: RuleKind::Vae {
                    machine: (*m).to_owned(),
                    signals: Some(have.clone()),
                    baseline: Some(baseline),
                    window: None,
                    quantile: None,
                    epochs: None,
                    raise_after: Some(30),
                    clear_after: None,
                    clear_index: None,
                    score_signal: None,
                    state: None,
                },
            });
            specs.push(RuleSpec {
                name: demo_rule_name(m, "pca"),
                severity: Severity::High,
                description: Some("drive signals deviate from normal operation".into()),
                enabled: true,
                kind: RuleKind::Pca {
                    machine: (*m).to_owned(),
                    signals: Some(have),
                    baseline: Some(baseline),
                    variance: None,
                    quantile: None,
                    raise_after: Some(30),
                    clear_after: None,
                    clear_index: None,
                    score_signal: None,
                    state: None,
                },
            });
        }
        let vib = format!("{m}/vibration_rms");
        if let Some(reg) = engine.registry().get(&vib)
            && let Ok(samples) = engine.store().range(reg.id, from, to, 1_000_000)
            && samples.iter().filter(|s| s.value > 0.0).count() > 100
        {
            // While running (a stopped spindle does not vibrate).
            let v: Vec<f64> = samples
                .iter()
                .map(|s| s.value)
                .filter(|v| *v > 0.0)
                .collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            specs.push(RuleSpec {
                name: demo_rule_name(m, "vibration"),
                severity: Severity::Critical,
                description: Some("spindle vibration far above normal: bearing wear?".into()),
                enabled: true,
                kind: RuleKind::Threshold {
                    signal: vib,
                    above: Some(round2(mean + 6.0 * sd)),
                    below: None,
                    clear: round2(mean + 4.0 * sd),
                    raise_after_s: 60.0,
                    clear_after_s: 300.0,
                },
            });
        }
        if engine
            .registry()
            .get(&format!("{m}/vibration_rms"))
            .is_some()
        {
            // The simulated bearings fail at 11 mm/s (docs/SIMULATOR.md); a real plant takes its
            // limit from the machine's vibration standard (e.g. ISO 10816 zone D).
            specs.push(RuleSpec {
                name: demo_rule_name(m, "rul"),
                severity: Severity::Critical,
                description: Some("bearing wear: less than 2 running hours of life left".into()),
                enabled: true,
                kind: RuleKind::Rul {
                    machine: (*m).to_owned(),
                    signal: "vibration_rms".into(),
                    threshold: 11.0,
                    lead_time_h: 2.0,
                    baseline: Some(baseline),
                },
            });
        }
        for spec in specs {
            let name = spec.name.clone();
            match engine.create_alarm_rule(spec, Some("gemba demo".into())) {
                Ok(_) => made += 1,
                Err(e) => tracing::warn!(rule = %name, error = %e, "demo alarm rule not created"),
            }
        }
    }
    made
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
