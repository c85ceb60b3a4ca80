//! `gemba eval horizon`: failure-within-horizon prediction on the simulator's ground truth.
//!
//! Simulates a plant into a scratch store, cuts each machine's horizon data set
//! (`Engine::horizon_dataset`), trains logistic regression and a kernel SVM on the first 70 % of
//! the time and scores the last 30 %: precision, recall and F1 per failure mode (rows), the share of
//! test failures warned of and the median lead time (failures), the alarms raised and how many were
//! false (runs of warnings less than 5 minutes apart), and the same against the baseline
//! "fixed threshold on one signal" (the signal, direction and level with the best training F1).
//!
//! Per failure type, each detector also runs at the type's own operating point: a model warns of
//! a type when its probability exceeds the level with the best training F1 for the type, and the
//! baseline is the type's own best one-signal threshold. Both are scored on rows, failures warned
//! of and median lead time per type.
//!
//! Rare failure modes: a conditional tabular GAN (gemba-nn) trained on the first 80 % of the
//! training period generates rows of every failure mode rarer than the most frequent one, up to its
//! count. Logistic regression is scored without them, with them, and "chosen": with them only on
//! the machines where they improved F1 on the last 20 % of the training period (validation).
//!
//! Window features (`--window`, default 30m): the same two models are also trained on each
//! gauge's mean, standard deviation and slope over the trailing windows besides its latest value
//! (rows `lr+win`, `svm+win`).
//!
//! Two reference rows that no model can be: `tool ends` warns in the horizon before every end of
//! a tool's life (a planned replacement or a tool-wear failure: the simulator decides which at that
//! moment, as AI4I's data do), knowing each tool's hidden life and wear rate; `+ bearing` also
//! warns in the horizon before every bearing failure. They show how much of the failures the
//! simulator's hidden state determines in advance.

use std::sync::atomic::AtomicBool;

use anyhow::Context;
use gemba_core::Timestamp;
use gemba_core::time::parse_duration_ms;
use gemba_engine::datasets::{HorizonRequest, Table};
use gemba_ml::metrics::best_f1_cut;
use gemba_ml::{Dataset, Matrix, ModelKind};
use gemba_sim::Simulator;
use serde_json::json;

use crate::args::EvalHorizonArgs;
use crate::simulate::{DirectSink, Sink, drive};

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
    fn merge(&mut self, o: &Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
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

/// Training rows: the table's `rows` plus `extra` (generated) rows with their class ids.
struct Rows<'a> {
    t: &'a Table,
    rows: &'a [usize],
    extra: &'a [(Vec<f64>, usize)],
}

impl Rows<'_> {
    fn dataset(&self, classes: &[String]) -> anyhow::Result<Dataset> {
        let class = |i: usize| {
            classes
                .iter()
                .position(|c| *c == self.t.labels[i])
                .unwrap_or(0)
        };
        let x: Vec<Vec<f64>> = self
            .rows
            .iter()
            .map(|&i| self.t.rows[i].clone())
            .chain(self.extra.iter().map(|e| e.0.clone()))
            .collect();
        let y: Vec<usize> = self
            .rows
            .iter()
            .map(|&i| class(i))
            .chain(self.extra.iter().map(|e| e.1))
            .collect();
        Ok(Dataset::new(
            Matrix::from_rows(&x)?,
            y,
            self.t.features.clone(),
            classes.to_vec(),
        )?)
    }
}

fn matrix(t: &Table, rows: &[usize]) -> anyhow::Result<Matrix> {
    Ok(Matrix::from_rows(
        &rows.iter().map(|&i| t.rows[i].clone()).collect::<Vec<_>>(),
    )?)
}

/// A model's decisions on the test rows.
struct Fitted {
    /// No warning is `ok`, a warning names the likeliest failure mode.
    pred: Vec<String>,
    /// Per failure type (in the order of `modes`): warn of that type, at its own operating point.
    by_type: Vec<Vec<bool>>,
}

/// Trains `kind` on `train` (+ generated rows), picks the operating point on the real training
/// rows (warn when P(ok) falls below the level with the best F1, any failure) and predicts the
/// labels of `test`: no warning is `ok`, a warning names the likeliest failure mode. Per failure
/// type it also picks that type's own operating point (warn when P(type) exceeds the level with
/// the best training F1 for the type), as an alarm rule per failure type would.
fn fit_predict(
    kind: ModelKind,
    params: &serde_json::Value,
    train: &Rows<'_>,
    test: &[usize],
    classes: &[String],
    modes: &[String],
) -> anyhow::Result<Fitted> {
    let t = train.t;
    let art = gemba_ml::train(kind, params, &train.dataset(classes)?)?;
    let ok = classes.iter().position(|c| c == "ok").context("ok class")?;
    let train_p = art.predict_proba(&matrix(t, train.rows)?)?;
    let level = best_level(&train_p, ok, |r| t.labels[train.rows[r]] != "ok");
    let test_p = art.predict_proba(&matrix(t, test)?)?;
    let by_type = modes
        .iter()
        .map(|m| {
            let Some(c) = classes.iter().position(|x| x == m) else {
                return vec![false; test.len()];
            };
            let scores: Vec<f64> = (0..train_p.rows).map(|r| train_p.row(r)[c]).collect();
            let truth: Vec<bool> = train.rows.iter().map(|&i| t.labels[i] == *m).collect();
            match best_f1_cut(&scores, &truth) {
                Some((cut, _)) => (0..test_p.rows).map(|r| test_p.row(r)[c] > cut).collect(),
                None => vec![false; test.len()],
            }
        })
        .collect();
    Ok(Fitted {
        pred: decide(&test_p, ok, level, classes),
        by_type,
    })
}

/// The best single-signal threshold for one failure type on the training rows:
/// `(feature, above?, cut)`, warning where the signal is above (or below) the cut.
fn type_baseline(t: &Table, train: &[usize], mode: &str) -> Option<(usize, bool, f64)> {
    let truth: Vec<bool> = train.iter().map(|&i| t.labels[i] == mode).collect();
    let mut best: Option<(usize, bool, f64, f64)> = None;
    for f in 0..t.features.len() {
        let up: Vec<f64> = train.iter().map(|&i| t.rows[i][f]).collect();
        let down: Vec<f64> = up.iter().map(|v| -v).collect();
        for (above, v) in [(true, &up), (false, &down)] {
            if let Some((cut, f1)) = best_f1_cut(v, &truth)
                && best.is_none_or(|b| f1 > b.3)
            {
                best = Some((f, above, cut, f1));
            }
        }
    }
    best.map(|b| (b.0, b.1, b.2))
}

/// Rows of the rare failure modes generated by a conditional tabular GAN trained on `rows`: for
/// every failure mode rarer than the most frequent one, as many as it lacks to match it.
fn gan_rows(
    t: &Table,
    rows: &[usize],
    classes: &[String],
    epochs: usize,
    seed: u64,
) -> anyhow::Result<Vec<(Vec<f64>, usize)>> {
    use gemba_nn::gan::{GanParams, TabularGan};
    let labels: Vec<usize> = rows
        .iter()
        .map(|&i| classes.iter().position(|c| *c == t.labels[i]).unwrap_or(0))
        .collect();
    let mut counts = vec![0usize; classes.len()];
    for &l in &labels {
        counts[l] += 1;
    }
    let failing = |k: usize| classes[k] != "ok" && counts[k] > 0;
    let top = (0..classes.len())
        .filter(|&k| failing(k))
        .map(|k| counts[k])
        .max()
        .unwrap_or(0);
    if epochs == 0 || (0..classes.len()).all(|k| !failing(k) || counts[k] == top) {
        return Ok(Vec::new());
    }
    let data = gemba_nn::Table::from_rows(
        t.features.clone(),
        &rows.iter().map(|&i| t.rows[i].clone()).collect::<Vec<_>>(),
    )?;
    let params = GanParams {
        z_dim: 16,
        hidden: 64,
        epochs,
        seed,
        ..GanParams::default()
    };
    let gan = TabularGan::fit(
        &params,
        &data,
        &labels,
        classes.to_vec(),
        gemba_nn::TrainHooks::default(),
    )?;
    let mut out = Vec::new();
    for k in (0..classes.len()).filter(|&k| failing(k) && counts[k] < top) {
        let fake = gan.sample(k, top - counts[k], seed + 1 + k as u64)?;
        out.extend(
            fake.chunks(t.features.len())
                .map(|r| (r.iter().map(|&v| f64::from(v)).collect(), k)),
        );
    }
    Ok(out)
}

/// Row macro-F1 over the failure modes (naming the right mode), the figure rare modes move.
fn f1_modes(t: &Table, rows: &[usize], pred: &[String], modes: &[String]) -> f64 {
    let f: Vec<f64> = modes
        .iter()
        .map(|m| {
            let mut c = Counts::default();
            for (&i, p) in rows.iter().zip(pred) {
                c.add(t.labels[i] == *m, p == m);
            }
            c.prf().2
        })
        .collect();
    f.iter().sum::<f64>() / f.len().max(1) as f64
}

/// Per-mode row counts, and any failure's detections (rows, failures warned of, lead times).
struct Scored {
    per_mode: Vec<(String, Counts)>,
    any: Detection,
    /// Alarms: runs of warning rows, the rows of one less than [`ALARM_GAP_MS`] apart (the
    /// demo's rules clear after 5 minutes below their level), and how many of them had a
    /// failure follow within the horizon of one of their rows.
    alarms: usize,
    true_alarms: usize,
}

/// Warnings closer than this belong to one alarm.
const ALARM_GAP_MS: i64 = 5 * 60_000;

/// Scores predictions `pred` (labels) of the test rows against the truth.
fn score(t: &Table, test: &[usize], pred: &[String], modes: &[String], horizon: i64) -> Scored {
    let mut per_mode: Vec<(String, Counts)> = modes
        .iter()
        .map(|m| (m.clone(), Counts::default()))
        .collect();
    for (k, &i) in test.iter().enumerate() {
        for (m, c) in &mut per_mode {
            c.add(t.labels[i] == *m, pred[k] == *m);
        }
    }
    let warn: Vec<bool> = pred.iter().map(|p| p != "ok").collect();
    let any = Detection::new(t, test, &warn, |l| l != "ok", horizon);
    let (mut alarms, mut true_alarms) = (0, 0);
    let mut k = 0;
    while k < test.len() {
        if pred[k] == "ok" {
            k += 1;
            continue;
        }
        let mut last = k;
        let mut failing = t.labels[test[k]] != "ok";
        let mut j = k + 1;
        while j < test.len() && t.ts[test[j]] - t.ts[test[last]] < ALARM_GAP_MS {
            if pred[j] != "ok" {
                last = j;
                failing |= t.labels[test[j]] != "ok";
            }
            j += 1;
        }
        alarms += 1;
        true_alarms += usize::from(failing);
        k = last + 1;
    }
    Scored {
        per_mode,
        any,
        alarms,
        true_alarms,
    }
}

/// The failures among the test rows: a failure is the end of a run of rows whose label `is` one
/// (consecutive rows less than a horizon apart). Each is `(first row, last row, time of the
/// failure)` with rows as positions in `test`. The failure follows the last labelled row within
/// one step; its time is not in the table, so it is taken as the last labelled row plus one step.
fn failure_runs(
    t: &Table,
    test: &[usize],
    is: impl Fn(&str) -> bool,
    horizon: i64,
) -> Vec<(usize, usize, Timestamp)> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < test.len() {
        if !is(&t.labels[test[k]]) {
            k += 1;
            continue;
        }
        let start = k;
        while k + 1 < test.len()
            && is(&t.labels[test[k + 1]])
            && t.ts[test[k + 1]] - t.ts[test[k]] <= horizon
        {
            k += 1;
        }
        let step = if k + 1 < test.len() {
            (t.ts[test[k + 1]] - t.ts[test[k]]).min(60_000)
        } else {
            60_000
        };
        out.push((start, k, t.ts[test[k]] + step));
        k += 1;
    }
    out
}

/// How one detector did on one kind of failure (any failure, or one type): rows, and the
/// failures warned of (a warning in the horizon before) with their lead times.
#[derive(Debug, Default, Clone)]
struct Detection {
    rows: Counts,
    failures: usize,
    warned: usize,
    leads_min: Vec<f64>,
}

impl Detection {
    /// `warn[k]` is the detector's warning on `test[k]`; `is` says which labels it should warn of.
    fn new(
        t: &Table,
        test: &[usize],
        warn: &[bool],
        is: impl Fn(&str) -> bool,
        horizon: i64,
    ) -> Detection {
        let mut s = Detection::default();
        for (k, &i) in test.iter().enumerate() {
            s.rows.add(is(&t.labels[i]), warn[k]);
        }
        for (start, k, end) in failure_runs(t, test, &is, horizon) {
            s.failures += 1;
            if let Some(first) = (start..=k).find(|&j| warn[j]) {
                s.warned += 1;
                s.leads_min
                    .push((end - t.ts[test[first]]) as f64 / 60_000.0);
            }
        }
        s
    }

    fn merge(&mut self, o: &Detection) {
        self.rows.merge(&o.rows);
        self.failures += o.failures;
        self.warned += o.warned;
        self.leads_min.extend_from_slice(&o.leads_min);
    }
}

/// The columns of `t` that are latest values (no window statistics).
fn latest_only(t: &Table) -> Table {
    let keep: Vec<usize> = (0..t.features.len())
        .filter(|&i| !t.features[i].contains(':'))
        .collect();
    Table {
        features: keep.iter().map(|&i| t.features[i].clone()).collect(),
        rows: t
            .rows
            .iter()
            .map(|r| keep.iter().map(|&i| r[i]).collect())
            .collect(),
        ..t.clone()
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
    let (duration, horizon, step) = (args.duration.ms, args.horizon.ms, args.step.ms);
    if horizon >= duration {
        anyhow::bail!(
            "--horizon {} is not shorter than --duration {}: no row could be labelled (simulate longer)",
            args.horizon,
            args.duration
        );
    }
    // Options are checked before the simulation, which takes minutes.
    let windows: Vec<i64> = args
        .window
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            parse_duration_ms(w)
                .map_err(|e| anyhow::anyhow!("--window: {e}"))
                .and_then(|v| {
                    gemba_engine::datasets::check_window(v)
                        .map_err(|e| anyhow::anyhow!("--window: {e}"))?;
                    Ok(v)
                })
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir).with_context(|| format!("--dump {}", dir.display()))?;
    }
    let (plant, scenario, _dir, engine) = crate::eval::simulated(&args.sim)?;
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
    if let Some(dir) = &args.dump {
        let path = dir.join("split.txt");
        std::fs::write(
            &path,
            format!("train: ts < {cut}\ntest: ts >= {cut}\nhorizon_ms: {horizon}\n"),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    let models = [
        ("logistic", ModelKind::Logistic, json!({"c": 1.0})),
        (
            "svm",
            ModelKind::Svc,
            json!({"c": 1.0, "kernel": "rbf", "probability": true, "probability_folds": 3}),
        ),
    ];
    let lr_params = &models[0].2;
    // Pooled over machines, per model, the GAN variants and the baseline.
    let gan_names: &[&'static str] = if windows.is_empty() {
        &["lr+gan", "lr chosen"]
    } else {
        &["lr+gan", "lr chosen", "lr+win", "svm+win"]
    };
    let mut pooled: Vec<Pooled> = models
        .iter()
        .map(|(n, _, _)| Pooled::new(n))
        .chain(gan_names.iter().map(|n| Pooled::new(n)))
        .chain(std::iter::once(Pooled::new("threshold")))
        .chain([Pooled::new("tool ends"), Pooled::new("+ bearing")])
        .collect();
    // The rows of the baseline and the two references, the last three.
    let (threshold_row, tool_ends_row, bearing_row) =
        (pooled.len() - 3, pooled.len() - 2, pooled.len() - 1);
    let mut gan_notes: Vec<String> = Vec::new();
    // (failure type, "signal >" or "signal <"): on how many machines the per-type threshold chose it.
    let mut type_signals: std::collections::BTreeMap<(String, String), usize> =
        std::collections::BTreeMap::new();
    // The latest-value tables of the machines scored, for the pooled model.
    let mut kept: Vec<Table> = Vec::new();
    let mut machines_kept: Vec<String> = Vec::new();
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
            windows: windows.clone(),
            stats: Vec::new(),
        };
        let full = match engine.horizon_dataset(&req) {
            Ok(t) => t,
            Err(e) => {
                println!("{m:<34} skipped: {e}");
                continue;
            }
        };
        if let Some(dir) = &args.dump {
            let path = dir.join(format!("{}.csv", m.replace('/', "_")));
            std::fs::write(&path, full.to_csv())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        // The latest values only (what the models without windows see).
        let table = latest_only(&full);
        let (train, test) = split(&table, cut);
        let mut classes: Vec<String> = train.iter().map(|&i| table.labels[i].clone()).collect();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 || test.is_empty() {
            println!("{m:<34} skipped: no failure in the training period or no test rows");
            continue;
        }
        let modes: Vec<String> = classes.iter().filter(|c| *c != "ok").cloned().collect();
        let fails = test.iter().filter(|&&i| table.labels[i] != "ok").count();
        let real = Rows {
            t: &table,
            rows: &train,
            extra: &[],
        };
        // GAN rows of the rare modes, from a GAN trained on the first 80 % of the training
        // period; kept ("chosen") only if they raise the validation macro-F1 over the modes.
        let fit_cut = table.ts[train[train.len() * 4 / 5]];
        let (fit_rows, val_rows): (Vec<usize>, Vec<usize>) =
            train.iter().partition(|&&i| table.ts[i] < fit_cut);
        let fake = gan_rows(&table, &fit_rows, &classes, args.gan_epochs, 7)
            .with_context(|| format!("GAN for {m}"))?;
        let val = |extra: &[(Vec<f64>, usize)]| -> anyhow::Result<f64> {
            let rows = Rows {
                t: &table,
                rows: &fit_rows,
                extra,
            };
            let fitted = fit_predict(
                ModelKind::Logistic,
                lr_params,
                &rows,
                &val_rows,
                &classes,
                &modes,
            )?;
            Ok(f1_modes(&table, &val_rows, &fitted.pred, &modes))
        };
        let (val_without, val_with) = if fake.is_empty() {
            (0.0, 0.0)
        } else {
            (val(&[])?, val(&fake)?)
        };
        let use_gan = !fake.is_empty() && val_with > val_without;
        gan_notes.push(format!(
            "{m}: {} GAN rows; validation macro-F1 over modes {val_without:.3} without, {val_with:.3} with: {}",
            fake.len(),
            if use_gan { "GAN rows used" } else { "not used" }
        ));
        let augmented = Rows {
            t: &table,
            rows: &train,
            extra: &fake,
        };
        let windowed = Rows {
            t: &full,
            rows: &train,
            extra: &[],
        };
        let with_windows = models
            .iter()
            .zip(["lr+win", "svm+win"])
            .filter(|_| !windows.is_empty())
            .map(|((_, kind, params), name)| (name, *kind, params, &windowed));
        let runs = models
            .iter()
            .map(|(name, kind, params)| (*name, *kind, params, &real))
            .chain([
                ("lr+gan", ModelKind::Logistic, lr_params, &augmented),
                (
                    "lr chosen",
                    ModelKind::Logistic,
                    lr_params,
                    if use_gan { &augmented } else { &real },
                ),
            ])
            .chain(with_windows);
        for (k, (name, kind, params, rows)) in runs.enumerate() {
            let fitted = fit_predict(kind, params, rows, &test, &classes, &modes)
                .with_context(|| format!("training {name} for {m}"))?;
            for (mode, warn) in modes.iter().zip(&fitted.by_type) {
                pooled[k].add_type(
                    mode,
                    &Detection::new(&table, &test, warn, |l| l == mode, horizon),
                );
            }
            let s = score(&table, &test, &fitted.pred, &modes, horizon);
            let (p, r, f) = s.any.rows.prf();
            println!(
                "{m:<34} {name:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f:>9.2} {:>5}/{:<5}",
                test.len(),
                fails,
                s.any.warned,
                s.any.failures
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
        let (p, r, f1) = s.any.rows.prf();
        println!(
            "{m:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f1:>9.2} {:>5}/{:<5}  {} {} {level:.3}",
            "threshold",
            test.len(),
            fails,
            s.any.warned,
            s.any.failures,
            table.features[f],
            if above { ">" } else { "<" }
        );
        pooled[threshold_row].add(s);
        // Per failure type, the best one-signal threshold for that type.
        for mode in &modes {
            let warn: Vec<bool> = match type_baseline(&table, &train, mode) {
                Some((f, above, cut)) => {
                    *type_signals
                        .entry((
                            mode.clone(),
                            format!("{} {}", table.features[f], if above { ">" } else { "<" }),
                        ))
                        .or_insert(0) += 1;
                    test.iter()
                        .map(|&i| {
                            let v = table.rows[i][f];
                            if above { v > cut } else { -v > cut }
                        })
                        .collect()
                }
                None => vec![false; test.len()],
            };
            pooled[threshold_row].add_type(
                mode,
                &Detection::new(&table, &test, &warn, |l| l == mode, horizon),
            );
        }
        // References (not ceilings, not models): predictors that know when each tool will reach
        // its life (and, the second, when each degrading bearing will fail), but not what the
        // simulator draws at that moment (whether the tool breaks or is replaced) nor the next
        // operating point.
        // (time, failure mode or "" for a tool change) of the machine's events.
        let ends = |kind: &str| -> anyhow::Result<Vec<(Timestamp, String)>> {
            Ok(engine
                .store()
                .events(&gemba_store::EventQuery {
                    from: start,
                    to: end + horizon,
                    asset_prefix: Some(m.clone()),
                    kind: Some(kind.into()),
                    limit: 1_000_000,
                })?
                .into_iter()
                .filter(|e| e.event.asset == *m)
                .map(|e| {
                    let mode = e.event.attrs.get("mode").and_then(|v| v.as_str());
                    (e.event.ts, mode.unwrap_or_default().to_owned())
                })
                .collect())
        };
        let failures = ends("custom:failure")?;
        let of_mode =
            |mode: &'static str| failures.iter().filter(move |f| f.1 == mode).map(|f| f.0);
        let mut tool_ends: Vec<Timestamp> = ends("custom:tool_change")?
            .into_iter()
            .map(|e| e.0)
            .collect();
        tool_ends.extend(of_mode("tool_wear"));
        let bearing_ends: Vec<Timestamp> = of_mode("bearing").collect();
        let soon = |t: Timestamp, e: &[Timestamp]| e.iter().any(|&x| x > t && x - t <= horizon);
        for (k, with_bearing) in [(tool_ends_row, false), (bearing_row, true)] {
            let pred: Vec<String> = test
                .iter()
                .map(|&i| {
                    let t = table.ts[i];
                    if soon(t, &tool_ends) {
                        "tool_wear".to_owned()
                    } else if with_bearing && soon(t, &bearing_ends) {
                        "bearing".to_owned()
                    } else {
                        "ok".to_owned()
                    }
                })
                .collect();
            let s = score(&table, &test, &pred, &modes, horizon);
            let (p, r, f1) = s.any.rows.prf();
            println!(
                "{m:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f1:>9.2} {:>5}/{:<5}  ({} tool ends)",
                pooled[k].name,
                test.len(),
                fails,
                s.any.warned,
                s.any.failures,
                tool_ends.len()
            );
            pooled[k].add(s);
        }
        kept.push(table);
        machines_kept.push(m.clone());
    }
    if kept.is_empty() {
        anyhow::bail!(
            "no machine could be scored (each needs a failure in its training period and rows in its test period): \
             simulate longer (--duration {})",
            args.duration
        );
    }
    // One model per machine type: logistic regression trained on the training rows of every
    // machine with the same signals, scored on each machine's test rows ("lr pooled").
    let mut by_type = Pooled::new("lr pooled");
    let mut done = vec![false; kept.len()];
    for a in 0..kept.len() {
        if done[a] {
            continue;
        }
        let members: Vec<usize> = (a..kept.len())
            .filter(|&b| kept[b].features == kept[a].features)
            .collect();
        let mut all = Table {
            rows: Vec::new(),
            labels: Vec::new(),
            ts: Vec::new(),
            ..kept[a].clone()
        };
        let mut parts: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
        for &b in &members {
            done[b] = true;
            let off = all.rows.len();
            let (tr, te) = split(&kept[b], cut);
            parts.push((
                tr.iter().map(|i| i + off).collect(),
                te.iter().map(|i| i + off).collect(),
            ));
            all.rows.extend(kept[b].rows.iter().cloned());
            all.labels.extend(kept[b].labels.iter().cloned());
            all.ts.extend(kept[b].ts.iter().copied());
        }
        let train: Vec<usize> = parts.iter().flat_map(|p| p.0.iter().copied()).collect();
        let mut classes: Vec<String> = train.iter().map(|&i| all.labels[i].clone()).collect();
        classes.sort();
        classes.dedup();
        let modes: Vec<String> = classes.iter().filter(|c| *c != "ok").cloned().collect();
        let rows = Rows {
            t: &all,
            rows: &train,
            extra: &[],
        };
        for (k, (_, test)) in parts.iter().enumerate() {
            if test.is_empty() {
                continue;
            }
            let fitted = fit_predict(
                ModelKind::Logistic,
                lr_params,
                &rows,
                test,
                &classes,
                &modes,
            )
            .context("training the pooled logistic regression")?;
            for (mode, warn) in modes.iter().zip(&fitted.by_type) {
                by_type.add_type(
                    mode,
                    &Detection::new(&all, test, warn, |l| l == mode, horizon),
                );
            }
            let sc = score(&all, test, &fitted.pred, &modes, horizon);
            let (p, r, f) = sc.any.rows.prf();
            println!(
                "{:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f:>9.2} {:>5}/{:<5}  ({} machines of its type)",
                machines_kept[members[k]],
                "lr pooled",
                test.len(),
                test.iter().filter(|&&i| all.labels[i] != "ok").count(),
                sc.any.warned,
                sc.any.failures,
                members.len()
            );
            by_type.add(sc);
        }
    }
    pooled.push(by_type);
    println!(
        "\nAll machines (rows of the test period; a failure is warned of when a row in the horizon before it predicted one):"
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>14} {:>18} {:>8} {:>8} {:>9}",
        "model",
        "P any",
        "R any",
        "F1 any",
        "failures warned",
        "median lead (min)",
        "alarms",
        "false",
        "alarm F1"
    );
    for e in &mut pooled {
        let (p, r, f) = e.any.rows.prf();
        // Failure level: an alarm is right when a failure followed it within the horizon; a
        // failure is caught when it was warned of.
        let ap = e.true_alarms as f64 / e.alarms.max(1) as f64;
        let ar = e.any.warned as f64 / e.any.failures.max(1) as f64;
        let af = if ap + ar > 0.0 {
            2.0 * ap * ar / (ap + ar)
        } else {
            0.0
        };
        println!(
            "{:<10} {p:>8.3} {r:>8.3} {f:>8.3} {:>8}/{:<6} {:>18.1} {:>8} {:>8} {af:>9.3}",
            e.name,
            e.any.warned,
            e.any.failures,
            median(&e.any.leads_min),
            e.alarms,
            e.alarms - e.true_alarms
        );
    }
    println!(
        "(alarms: runs of warning rows less than 5 min apart; false: no failure followed within the horizon; \
         alarm F1 from the share of right alarms and of failures warned of)"
    );
    println!(
        "(tool ends: warns in the horizon before every end of a tool's life, replacement or failure, \
         which no sensor shows in advance; + bearing: also before every bearing failure)"
    );
    println!(
        "\nGAN rows of the rare failure modes (validation: the last 20 % of the training period):"
    );
    for n in &gan_notes {
        println!("  {n}");
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
    println!(
        "\nPer failure type, each at its own operating point (a model warns of a type when its probability \
         exceeds the level with the best training F1 for that type; the threshold is the signal, direction \
         and level with the best training F1 for that type, per machine):"
    );
    println!(
        "{:<18} {:<10} {:>8} {:>8} {:>8} {:>8} {:>16} {:>18}",
        "type", "model", "P", "R", "F1", "rows", "failures warned", "median lead (min)"
    );
    let mut types: Vec<String> = pooled
        .iter()
        .flat_map(|e| e.types.iter().map(|(m, _)| m.clone()))
        .collect();
    types.sort();
    types.dedup();
    for mode in &types {
        for e in &mut pooled {
            let name = e.name;
            if let Some((_, s)) = e.types.iter_mut().find(|(m, _)| m == mode) {
                let (p, r, f) = s.rows.prf();
                println!(
                    "{mode:<18} {name:<10} {p:>8.3} {r:>8.3} {f:>8.3} {:>8} {:>9}/{:<6} {:>18.1}",
                    s.rows.tp + s.rows.fn_,
                    s.warned,
                    s.failures,
                    median(&s.leads_min)
                );
            }
        }
    }
    println!("(threshold signals chosen per type, on how many machines:)");
    for mode in &types {
        let chosen: Vec<String> = type_signals
            .iter()
            .filter(|((m, _), _)| m == mode)
            .map(|((_, sig), n)| format!("{sig} ({n})"))
            .collect();
        println!("  {mode}: {}", chosen.join(", "));
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
    any: Detection,
    alarms: usize,
    true_alarms: usize,
    /// Per failure type, at the type's own operating point.
    types: Vec<(String, Detection)>,
}

impl Pooled {
    fn new(name: &'static str) -> Pooled {
        Pooled {
            name,
            per_mode: Vec::new(),
            any: Detection::default(),
            alarms: 0,
            true_alarms: 0,
            types: Vec::new(),
        }
    }

    fn add_type(&mut self, mode: &str, s: &Detection) {
        match self.types.iter_mut().find(|(n, _)| n == mode) {
            Some((_, t)) => t.merge(s),
            None => self.types.push((mode.to_owned(), s.clone())),
        }
    }

    fn add(&mut self, s: Scored) {
        for (m, c) in &s.per_mode {
            match self.per_mode.iter_mut().find(|(n, _)| n == m) {
                Some((_, t)) => t.merge(c),
                None => self.per_mode.push((m.clone(), *c)),
            }
        }
        self.any.merge(&s.any);
        self.alarms += s.alarms;
        self.true_alarms += s.true_alarms;
    }
}

/// The median of `v`, NaN when it is empty.
fn median(v: &[f64]) -> f64 {
    gemba_ml::metrics::median(v).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(labels: &[&str], rows: Vec<Vec<f64>>) -> Table {
        Table {
            features: vec!["a".into(), "b".into()],
            rows,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ts: (0..labels.len() as i64).map(|k| k * 60_000).collect(),
            quality: "horizon".into(),
            label: "failure".into(),
        }
    }

    #[test]
    fn type_scores_count_rows_failures_and_lead_times() {
        let mut labels = vec!["ok"; 20];
        labels[5..10].fill("tool_wear");
        labels[15..18].fill("power");
        let t = table(&labels, vec![vec![0.0, 0.0]; 20]);
        let test: Vec<usize> = (0..20).collect();
        let mut warn = vec![false; 20];
        warn[7] = true;
        warn[8] = true;
        warn[12] = true;
        let s = Detection::new(&t, &test, &warn, |l| l == "tool_wear", 10 * 60_000);
        assert_eq!((s.rows.tp, s.rows.fp, s.rows.fn_), (2, 1, 3));
        assert_eq!((s.failures, s.warned), (1, 1));
        // The failure follows row 9 by one step (minute 10); the first warning was at minute 7.
        assert_eq!(s.leads_min, vec![3.0]);
        let s = Detection::new(&t, &test, &warn, |l| l == "power", 10 * 60_000);
        assert_eq!((s.rows.tp, s.rows.fp, s.rows.fn_), (0, 3, 3));
        assert_eq!((s.failures, s.warned), (1, 0));
        // Two runs of one type further apart than the horizon are two failures.
        let runs = failure_runs(&t, &[5, 6, 17], |l| l != "ok", 5 * 60_000);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0], (0, 1, 7 * 60_000));
    }

    #[test]
    fn the_type_baseline_finds_the_signal_and_direction() {
        // The type follows b < 2 exactly; a is noise.
        let b = [5.0, 4.0, 1.0, 0.5, 3.0, 1.5, 6.0, 2.5];
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let labels: Vec<&str> = b
            .iter()
            .map(|&v| if v < 2.0 { "heat" } else { "ok" })
            .collect();
        let t = table(&labels, a.iter().zip(b).map(|(&x, y)| vec![x, y]).collect());
        let train: Vec<usize> = (0..8).collect();
        let (f, above, cut) = type_baseline(&t, &train, "heat").unwrap();
        assert_eq!((f, above), (1, false));
        // Warns where -b > cut: between -1.5 and -2.5.
        assert!((cut + 2.0).abs() < 1e-12, "{cut}");
        assert!(type_baseline(&t, &train, "power").is_none());
    }
}
