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
    use gemba_engine::alarms::{
        PcaSpec, Period, RulSpec, RuleKind, RuleSpec, Severity, SpcChart, SpcSpec, ThresholdSpec,
        VaeSpec,
    };
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
                kind: RuleKind::Spc(SpcSpec {
                    signal: q.def.path.clone(),
                    chart: SpcChart::Imr,
                    rules: Some(vec![1, 2]),
                    baseline: Some(baseline),
                    center: None,
                    sigma: None,
                    lambda: None,
                    l: None,
                    clear_after: None,
                    subgroup: Some(SPC_SUBGROUP),
                }),
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
                kind: RuleKind::Vae(VaeSpec {
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
                }),
            });
            specs.push(RuleSpec {
                name: demo_rule_name(m, "pca"),
                severity: Severity::High,
                description: Some("drive signals deviate from normal operation".into()),
                enabled: true,
                kind: RuleKind::Pca(PcaSpec {
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
                }),
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
                kind: RuleKind::Threshold(ThresholdSpec {
                    signal: vib,
                    above: Some(round2(mean + 6.0 * sd)),
                    below: None,
                    clear: round2(mean + 4.0 * sd),
                    raise_after_s: 60.0,
                    clear_after_s: 300.0,
                }),
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
                kind: RuleKind::Rul(RulSpec {
                    machine: (*m).to_owned(),
                    signal: "vibration_rms".into(),
                    threshold: 11.0,
                    lead_time_h: 2.0,
                    baseline: Some(baseline),
                }),
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

/// How far ahead the demo's failure model looks, and its features' trailing window.
pub const DEMO_HORIZON_MS: i64 = 30 * 60_000;
pub const DEMO_WINDOW_MS: i64 = 30 * 60_000;

/// What [`demo_horizon_rules`] made.
#[derive(Debug, Default)]
pub struct HorizonMade {
    pub models: Vec<String>,
    pub rules: usize,
    pub rows: usize,
    pub failure_rows: usize,
    pub notes: Vec<String>,
}

/// Failure-within-30-min prediction live in the demo (docs/PRODUCTION.md): each machine's horizon
/// set over `[from, to)` (latest values and 30-min mean, std and slope of its gauges, a row a
/// minute), pooled over the machines with the same signals (one machine's history holds few
/// failures), a class-balanced logistic regression per group registered as `horizon` (or
/// `horizon-2` …) on the latest values alone or with the windows, whichever validates better on
/// the last quarter of the history, and per machine a `model` rule that raises when P(failure) stays above the
/// level with the best F1 on the training rows for a minute; a machine without a failure in the
/// history gets the rule of the model trained on the machines with its signals. Blocking.
pub fn demo_horizon_rules(engine: &Engine, machines: &[&str], from: i64, to: i64) -> HorizonMade {
    use gemba_engine::alarms::{ModelSpec, RuleKind, RuleSpec, Severity};
    use gemba_engine::datasets::HorizonRequest;
    let mut made = HorizonMade::default();
    // Machines without a failure in the history: scored by the model of the machines with their
    // signals.
    let mut without: Vec<String> = Vec::new();
    // Machines with the same features are pooled.
    let mut groups: Vec<Pool> = Vec::new();
    for m in machines {
        let req = HorizonRequest {
            machine: (*m).to_owned(),
            from,
            to: to - DEMO_HORIZON_MS,
            step_ms: 60_000,
            horizon_ms: DEMO_HORIZON_MS,
            windows: vec![DEMO_WINDOW_MS],
            stats: Vec::new(),
        };
        let table = match engine.horizon_dataset(&req) {
            Ok(t) => t,
            Err(e) => {
                made.notes.push(format!("{m}: no training rows: {e}"));
                without.push((*m).to_owned());
                continue;
            }
        };
        let i = match groups.iter().position(|g| g.features == table.features) {
            Some(i) => i,
            None => {
                groups.push(Pool {
                    features: table.features.clone(),
                    ..Pool::default()
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        g.members.push((*m).to_owned());
        // Classes: 0 failure (any mode), 1 ok.
        g.labels
            .extend(table.labels.iter().map(|l| usize::from(l == "ok")));
        g.rows.extend(table.rows);
        g.ts.extend(table.ts);
    }
    for (k, pool) in groups.into_iter().enumerate() {
        let Pool {
            features,
            members,
            rows,
            labels,
            ts,
        } = pool;
        let name = if k == 0 {
            "horizon".to_owned()
        } else {
            format!("horizon-{}", k + 1)
        };
        let failing = labels.iter().filter(|&&l| l == 0).count();
        if failing < 5 {
            made.notes.push(format!(
                "{name}: {failing} rows before a failure in the history; not trained"
            ));
            continue;
        }
        let trained = (|| -> anyhow::Result<(u32, f64, Vec<String>, String)> {
            // Latest values only, or with the window statistics: whichever gives the better F1
            // on the last quarter of the history when trained on the rest (ties: latest only).
            let cut = from + (to - from) * 3 / 4;
            let (fit, val): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|&i| ts[i] < cut);
            let latest: Vec<usize> = (0..features.len())
                .filter(|&c| !features[c].contains(':'))
                .collect();
            let all: Vec<usize> = (0..features.len()).collect();
            let f_latest = validation_f1(&features, &rows, &labels, &latest, &fit, &val)?;
            let f_all = validation_f1(&features, &rows, &labels, &all, &fit, &val)?;
            let (cols, choice) = if f_all > f_latest {
                (
                    all,
                    format!(
                        "latest values and 30-min windows (validation F1 {f_all:.2}; latest values only {f_latest:.2})"
                    ),
                )
            } else {
                (
                    latest,
                    format!(
                        "latest values (validation F1 {f_latest:.2}; with 30-min windows {f_all:.2})"
                    ),
                )
            };
            let every: Vec<usize> = (0..rows.len()).collect();
            let (art, above) = fit_horizon(&features, &rows, &labels, &cols, &every)?;
            let meta = engine.register_model(&name, None, &art.to_json()?)?;
            Ok((meta.version, above, art.feature_names.clone(), choice))
        })();
        let (version, above, features, choice) = match trained {
            Ok(v) => v,
            Err(e) => {
                made.notes.push(format!("{name}: not trained: {e:#}"));
                continue;
            }
        };
        made.notes.push(format!("{name}: {choice}"));
        made.models.push(format!("{name}@{version}"));
        let mut members = members;
        without.retain(|m| {
            let has_all = features.iter().all(|f| {
                gemba_engine::datasets::Feature::parse(f).is_ok_and(|f| {
                    engine
                        .registry()
                        .get(&format!("{m}/{}", f.signal))
                        .is_some()
                })
            });
            if has_all {
                members.push(m.clone());
            }
            !has_all
        });
        made.rows += rows.len();
        made.failure_rows += failing;
        for m in &members {
            let spec = RuleSpec {
                name: demo_rule_name(m, "horizon"),
                severity: Severity::High,
                description: Some(
                    "a failure predicted within 30 min (logistic regression on the machine's signals)"
                        .into(),
                ),
                enabled: true,
                kind: RuleKind::Model(ModelSpec {
                    machine: m.clone(),
                    model: name.clone(),
                    version: Some(version),
                    classes: None,
                    above,
                    clear: None,
                    raise_after: Some(60),
                    clear_after: Some(300),
                    score_signal: Some("p_failure_30m".into()),
                    state: None,
                }),
            };
            match engine.create_alarm_rule(spec, Some("gemba demo".into())) {
                Ok(_) => made.rules += 1,
                Err(e) => made.notes.push(format!("{m}: rule not created: {e}")),
            }
        }
    }
    made
}

/// The pooled horizon sets of machines with the same features.
#[derive(Debug, Default)]
struct Pool {
    features: Vec<String>,
    members: Vec<String>,
    rows: Vec<Vec<f64>>,
    /// 0 failure within the horizon, 1 ok.
    labels: Vec<usize>,
    ts: Vec<i64>,
}

/// A class-balanced logistic regression on columns `cols` of rows `idx`, and the P(failure) level
/// with the best F1 on them.
fn fit_horizon(
    features: &[String],
    rows: &[Vec<f64>],
    labels: &[usize],
    cols: &[usize],
    idx: &[usize],
) -> anyhow::Result<(gemba_ml::ModelArtifact, f64)> {
    let x = project(rows, cols, idx)?;
    let y: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
    let data = gemba_ml::Dataset::new(
        x.clone(),
        y.clone(),
        cols.iter().map(|&c| features[c].clone()).collect(),
        vec!["failure".into(), "ok".into()],
    )?;
    let art = gemba_ml::train(
        gemba_ml::ModelKind::Logistic,
        &serde_json::json!({"c": 1.0, "class_weight": "balanced"}),
        &data,
    )?;
    let p = art.predict_proba(&x)?;
    let above = best_probability_level(&(0..x.rows).map(|r| p.row(r)[0]).collect::<Vec<_>>(), &y);
    Ok((art, above))
}

/// F1 of "failure within the horizon" on rows `val` of the model fitted on rows `fit`.
fn validation_f1(
    features: &[String],
    rows: &[Vec<f64>],
    labels: &[usize],
    cols: &[usize],
    fit: &[usize],
    val: &[usize],
) -> anyhow::Result<f64> {
    if val.is_empty() || !fit.iter().any(|&i| labels[i] == 0) {
        return Ok(0.0);
    }
    let (art, above) = fit_horizon(features, rows, labels, cols, fit)?;
    let p = art.predict_proba(&project(rows, cols, val)?)?;
    let (mut tp, mut fp, mut fn_) = (0.0f64, 0.0f64, 0.0f64);
    for (r, &i) in val.iter().enumerate() {
        match (p.row(r)[0] > above, labels[i] == 0) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            _ => {}
        }
    }
    Ok(2.0 * tp / (2.0 * tp + fp + fn_).max(1.0))
}

fn project(rows: &[Vec<f64>], cols: &[usize], idx: &[usize]) -> anyhow::Result<gemba_ml::Matrix> {
    Ok(gemba_ml::Matrix::from_rows(
        &idx.iter()
            .map(|&i| cols.iter().map(|&c| rows[i][c]).collect())
            .collect::<Vec<Vec<f64>>>(),
    )?)
}

/// The probability level (0.05 … 0.95) above which warning gives the best F1 for class 0.
fn best_probability_level(p: &[f64], labels: &[usize]) -> f64 {
    let mut best = (0.5, -1.0);
    for q in 5..=95 {
        let level = f64::from(q) / 100.0;
        let (mut tp, mut fp, mut fn_) = (0.0f64, 0.0f64, 0.0f64);
        for (pi, &l) in p.iter().zip(labels) {
            match (*pi > level, l == 0) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                _ => {}
            }
        }
        let f1 = 2.0 * tp / (2.0 * tp + fp + fn_).max(1.0);
        if f1 > best.1 {
            best = (level, f1);
        }
    }
    best.0
}
