//! `gemba eval horizon`: failure-within-horizon prediction on the simulator's ground truth.
//!
//! Simulates a plant into a scratch store, cuts each machine's horizon data set
//! (`Engine::horizon_dataset`), trains logistic regression and a kernel SVM on the first 70 % of
//! the time and scores the last 30 %: precision, recall and F1 per failure mode (rows), the share of
//! test failures warned of and the median lead time (failures), and the same against the baseline
//! "fixed threshold on one signal" (the signal, direction and level with the best training F1).

use std::sync::atomic::AtomicBool;

use anyhow::Context;
use gemba_core::Timestamp;
use gemba_core::time::parse_duration_ms;
use gemba_engine::datasets::{HorizonRequest, Table};
use gemba_ml::{Dataset, Matrix, ModelKind};
use gemba_sim::Simulator;
use serde_json::json;

use crate::cli::EvalHorizonArgs;
use crate::simulate::{DirectSink, Sink, drive, load_inputs};

/// Counts of one class: (true positives, false positives, false negatives).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn add(&mut self, truth: bool, pred: bool) {
        match (truth, pred) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => {}
        }
    }
    fn prf(&self) -> (f64, f64, f64) {
        let p = self.tp as f64 / (self.tp + self.fp).max(1) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_).max(1) as f64;
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        (p, r, f)
    }
}

fn split(t: &Table, cut: Timestamp) -> (Vec<usize>, Vec<usize>) {
    (0..t.ts.len()).partition(|&i| t.ts[i] < cut)
}

fn dataset(t: &Table, rows: &[usize], classes: &[String]) -> anyhow::Result<Dataset> {
    let x: Vec<Vec<f64>> = rows.iter().map(|&i| t.rows[i].clone()).collect();
    let y: Vec<usize> = rows
        .iter()
        .map(|&i| classes.iter().position(|c| *c == t.labels[i]).unwrap_or(0))
        .collect();
    Ok(Dataset::new(
        Matrix::from_rows(&x)?,
        y,
        t.features.clone(),
        classes.to_vec(),
    )?)
}

/// Per-mode row counts, binary counts (any failure), and lead times of warned failures.
struct Scored {
    per_mode: Vec<(String, Counts)>,
    any: Counts,
    warned: usize,
    failures: usize,
    leads_min: Vec<f64>,
}

/// Scores predictions `pred` (labels) of the test rows against the truth.
fn score(t: &Table, test: &[usize], pred: &[String], modes: &[String], horizon: i64) -> Scored {
    let mut per_mode: Vec<(String, Counts)> = modes
        .iter()
        .map(|m| (m.clone(), Counts::default()))
        .collect();
    let mut any = Counts::default();
    for (k, &i) in test.iter().enumerate() {
        let truth = &t.labels[i];
        for (m, c) in &mut per_mode {
            c.add(truth == m, pred[k] == *m);
        }
        any.add(truth != "ok", pred[k] != "ok");
    }
    // A failure is the end of a run of rows labelled with it; it is warned of when a row in the
    // horizon before it predicted a failure; the lead time is from the first such row.
    let (mut warned, mut failures, mut leads) = (0, 0, Vec::new());
    let mut k = 0;
    while k < test.len() {
        if t.labels[test[k]] == "ok" {
            k += 1;
            continue;
        }
        let start = k;
        while k + 1 < test.len()
            && t.labels[test[k + 1]] != "ok"
            && t.ts[test[k + 1]] - t.ts[test[k]] <= horizon
        {
            k += 1;
        }
        failures += 1;
        // The failure follows the last labelled row within one step; its time is not in the table,
        // so the lead is measured to the last labelled row plus one step.
        let step = if k + 1 < test.len() {
            (t.ts[test[k + 1]] - t.ts[test[k]]).min(60_000)
        } else {
            60_000
        };
        let end = t.ts[test[k]] + step;
        if let Some(first) = (start..=k).find(|&j| pred[j] != "ok") {
            warned += 1;
            leads.push((end - t.ts[test[first]]) as f64 / 60_000.0);
        }
        k += 1;
    }
    Scored {
        per_mode,
        any,
        warned,
        failures,
        leads_min: leads,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The best single-signal threshold on the training rows: (feature, above?, level).
fn baseline(t: &Table, train: &[usize]) -> (usize, bool, f64) {
    let mut best = (0usize, true, f64::INFINITY, -1.0);
    for f in 0..t.features.len() {
        let mut vals: Vec<f64> = train.iter().map(|&i| t.rows[i][f]).collect();
        vals.sort_by(f64::total_cmp);
        for q in 1..100 {
            let level = vals[(vals.len() - 1) * q / 100];
            for above in [true, false] {
                let mut c = Counts::default();
                for &i in train {
                    let v = t.rows[i][f];
                    c.add(
                        t.labels[i] != "ok",
                        if above { v > level } else { v < level },
                    );
                }
                let f1 = c.prf().2;
                if f1 > best.3 {
                    best = (f, above, level, f1);
                }
            }
        }
    }
    (best.0, best.1, best.2)
}

pub fn horizon(args: EvalHorizonArgs) -> anyhow::Result<()> {
    let ms = |k: &str, v: &str| parse_duration_ms(v).map_err(|e| anyhow::anyhow!("--{k}: {e}"));
    let duration = ms("duration", &args.duration)?;
    let horizon = ms("horizon", &args.horizon)?;
    let step = ms("step", &args.step)?;
    let (plant, scenario) =
        load_inputs(args.plant.as_deref(), args.scenario.as_deref(), args.seed)?;
    let (_dir, engine) = crate::eval::scratch_engine(args.plant.as_deref())?;
    let dt = scenario.sample_interval.0;
    let now = crate::simulate::now_ms();
    let mut start = now - duration - 60_000;
    start -= start.rem_euclid(dt);
    let end = start + duration;
    let mut sim = Simulator::new(&plant, &scenario, start)?;
    let machines: Vec<String> = sim.machines().iter().map(|m| m.to_string()).collect();
    let mut sinks: Vec<Box<dyn Sink + Send>> =
        vec![Box::new(DirectSink::new(engine.clone(), &sim))];
    let stop = AtomicBool::new(false);
    let bar = crate::simulate::progress(((end - start) / 1000) as u64);
    drive(&mut sim, &mut sinks, None, Some(end), &stop, Some(&bar))?;
    for s in &mut sinks {
        s.flush()?;
    }
    bar.finish_and_clear();
    let cut = start + (duration as f64 * 0.7) as i64;
    println!(
        "Simulated {} of {} machines; horizon {}, a row every {}; train on the first 70 % of the time, test on the last 30 %.\n",
        args.duration,
        machines.len(),
        args.horizon,
        args.step
    );
    let models = [
        ("logistic", ModelKind::Logistic, json!({"c": 1.0})),
        (
            "svm",
            ModelKind::Svc,
            json!({"c": 1.0, "kernel": "rbf", "probability": true, "probability_folds": 3}),
        ),
    ];
    // Pooled over machines, per model and for the baseline.
    let mut pooled: Vec<Pooled> = models
        .iter()
        .map(|(n, _, _)| Pooled::new(n))
        .chain(std::iter::once(Pooled::new("threshold")))
        .collect();
    println!(
        "{:<34} {:<10} {:>6} {:>6} {:>6} {:>6} {:>9} {:>11}  baseline signal",
        "machine", "model", "rows", "fail", "P", "R", "F1 any", "warned"
    );
    for m in &machines {
        let req = HorizonRequest {
            machine: m.clone(),
            from: start,
            to: end - horizon,
            step_ms: step,
            horizon_ms: horizon,
        };
        let table = match engine.horizon_dataset(&req) {
            Ok(t) => t,
            Err(e) => {
                println!("{m:<34} skipped: {e}");
                continue;
            }
        };
        let (train, test) = split(&table, cut);
        let mut classes: Vec<String> = train.iter().map(|&i| table.labels[i].clone()).collect();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 || test.is_empty() {
            println!("{m:<34} skipped: no failure in the training period or no test rows");
            continue;
        }
        let modes: Vec<String> = classes.iter().filter(|c| *c != "ok").cloned().collect();
        let data = dataset(&table, &train, &classes)?;
        let test_x = Matrix::from_rows(
            &test
                .iter()
                .map(|&i| table.rows[i].clone())
                .collect::<Vec<_>>(),
        )?;
        let fails = test.iter().filter(|&&i| table.labels[i] != "ok").count();
        for (k, (name, kind, params)) in models.iter().enumerate() {
            let art = gemba_ml::train(*kind, params, &data)
                .with_context(|| format!("training {name} for {m}"))?;
            // The operating point: warn when P(ok) falls below the level with the best training
            // F1 (any failure), then name the likeliest failure mode.
            let train_x = Matrix::from_rows(
                &train
                    .iter()
                    .map(|&i| table.rows[i].clone())
                    .collect::<Vec<_>>(),
            )?;
            let ok = classes.iter().position(|c| c == "ok").context("ok class")?;
            let train_p = art.predict_proba(&train_x)?;
            let level = best_level(&train_p, ok, |r| table.labels[train[r]] != "ok");
            let test_p = art.predict_proba(&test_x)?;
            let pred = decide(&test_p, ok, level, &classes);
            let s = score(&table, &test, &pred, &modes, horizon);
            let (p, r, f) = s.any.prf();
            println!(
                "{m:<34} {name:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f:>9.2} {:>5}/{:<5}",
                test.len(),
                fails,
                s.warned,
                s.failures
            );
            pooled[k].add(s);
        }
        let (f, above, level) = baseline(&table, &train);
        let pred: Vec<String> = test
            .iter()
            .map(|&i| {
                let v = table.rows[i][f];
                if (above && v > level) || (!above && v < level) {
                    "failure".to_owned()
                } else {
                    "ok".to_owned()
                }
            })
            .collect();
        let s = score(&table, &test, &pred, &[], horizon);
        let (p, r, f1) = s.any.prf();
        println!(
            "{m:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f1:>9.2} {:>5}/{:<5}  {} {} {level:.3}",
            "threshold",
            test.len(),
            fails,
            s.warned,
            s.failures,
            table.features[f],
            if above { ">" } else { "<" }
        );
        pooled.last_mut().context("baseline row")?.add(s);
    }
    println!(
        "\nAll machines (rows of the test period; a failure is warned of when a row in the horizon before it predicted one):"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>14} {:>18}",
        "model", "P any", "R any", "F1 any", "failures warned", "median lead (min)"
    );
    for e in &mut pooled {
        let (p, r, f) = e.any.prf();
        println!(
            "{:<10} {p:>8.3} {r:>8.3} {f:>8.3} {:>8}/{:<6} {:>18.1}",
            e.name,
            e.warned,
            e.failures,
            median(&mut e.leads)
        );
    }
    println!("\nPer failure mode (rows):");
    println!(
        "{:<10} {:<18} {:>8} {:>8} {:>8} {:>8}",
        "model", "mode", "P", "R", "F1", "rows"
    );
    for e in &pooled {
        let name = e.name;
        for (mode, c) in &e.per_mode {
            let (p, r, f) = c.prf();
            println!(
                "{name:<10} {mode:<18} {p:>8.3} {r:>8.3} {f:>8.3} {:>8}",
                c.tp + c.fn_
            );
        }
    }
    Ok(())
}

/// The P(ok) level below which warning gives the best F1 (any failure) on these rows.
fn best_level(p: &Matrix, ok: usize, failing: impl Fn(usize) -> bool) -> f64 {
    let mut best = (0.5, -1.0);
    for q in 1..200 {
        let level = q as f64 / 200.0;
        let mut c = Counts::default();
        for r in 0..p.rows {
            c.add(failing(r), p.row(r)[ok] < level);
        }
        let f = c.prf().2;
        if f > best.1 {
            best = (level, f);
        }
    }
    best.0
}

/// Labels from probabilities: the likeliest failure mode where P(ok) < level, else ok.
fn decide(p: &Matrix, ok: usize, level: f64, classes: &[String]) -> Vec<String> {
    (0..p.rows)
        .map(|r| {
            let row = p.row(r);
            if row[ok] >= level {
                return "ok".to_owned();
            }
            let best = (0..classes.len())
                .filter(|&c| c != ok)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(ok);
            classes[best].clone()
        })
        .collect()
}

/// One model's results over all machines.
struct Pooled {
    name: &'static str,
    per_mode: Vec<(String, Counts)>,
    any: Counts,
    warned: usize,
    failures: usize,
    leads: Vec<f64>,
}

impl Pooled {
    fn new(name: &'static str) -> Pooled {
        Pooled {
            name,
            per_mode: Vec::new(),
            any: Counts::default(),
            warned: 0,
            failures: 0,
            leads: Vec::new(),
        }
    }

    fn add(&mut self, s: Scored) {
        for (m, c) in &s.per_mode {
            match self.per_mode.iter_mut().find(|(n, _)| n == m) {
                Some((_, t)) => {
                    t.tp += c.tp;
                    t.fp += c.fp;
                    t.fn_ += c.fn_;
                }
                None => self.per_mode.push((m.clone(), *c)),
            }
        }
        self.any.tp += s.any.tp;
        self.any.fp += s.any.fp;
        self.any.fn_ += s.any.fn_;
        self.warned += s.warned;
        self.failures += s.failures;
        self.leads.extend(s.leads_min);
    }
}
