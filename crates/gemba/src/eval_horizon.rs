//! `gemba eval horizon`: failure-within-horizon prediction on the simulator's ground truth.
//!
//! Simulates a plant into a scratch store, cuts each machine's horizon data set
//! (`Engine::horizon_dataset`), trains logistic regression and a kernel SVM on the first 70 % of
//! the time and scores the last 30 %: precision, recall and F1 per failure mode (rows), the share of
//! test failures warned of and the median lead time (failures), the alarms raised and how many were
//! false (runs of warnings less than 5 minutes apart), and the same against the baseline
//! "fixed threshold on one signal" (the signal, direction and level with the best training F1).
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
use gemba_ml::{Dataset, Matrix, ModelKind};
use gemba_sim::Simulator;
use serde_json::json;

use crate::cli::EvalHorizonArgs;
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

/// Trains `kind` on `train` (+ generated rows), picks the operating point on the real training
/// rows (warn when P(ok) falls below the level with the best F1, any failure) and predicts the
/// labels of `test`: no warning is `ok`, a warning names the likeliest failure mode.
fn fit_predict(
    kind: ModelKind,
    params: &serde_json::Value,
    train: &Rows<'_>,
    test: &[usize],
    classes: &[String],
) -> anyhow::Result<Vec<String>> {
    let t = train.t;
    let art = gemba_ml::train(kind, params, &train.dataset(classes)?)?;
    let ok = classes.iter().position(|c| c == "ok").context("ok class")?;
    let train_p = art.predict_proba(&matrix(t, train.rows)?)?;
    let level = best_level(&train_p, ok, |r| t.labels[train.rows[r]] != "ok");
    let test_p = art.predict_proba(&matrix(t, test)?)?;
    Ok(decide(&test_p, ok, level, classes))
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

/// Per-mode row counts, binary counts (any failure), and lead times of warned failures.
struct Scored {
    per_mode: Vec<(String, Counts)>,
    any: Counts,
    warned: usize,
    failures: usize,
    leads_min: Vec<f64>,
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
        warned,
        failures,
        leads_min: leads,
        alarms,
        true_alarms,
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
    let ms = |k: &str, v: &str| parse_duration_ms(v).map_err(|e| anyhow::anyhow!("--{k}: {e}"));
    let duration = ms("duration", &args.duration)?;
    let horizon = ms("horizon", &args.horizon)?;
    let step = ms("step", &args.step)?;
    // Options are checked before the simulation, which takes minutes.
    let windows: Vec<i64> = args
        .window
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            ms("window", w).and_then(|v| {
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
            let pred = fit_predict(ModelKind::Logistic, lr_params, &rows, &val_rows, &classes)?;
            Ok(f1_modes(&table, &val_rows, &pred, &modes))
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
            let pred = fit_predict(kind, params, rows, &test, &classes)
                .with_context(|| format!("training {name} for {m}"))?;
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
        pooled[threshold_row].add(s);
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
            let (p, r, f1) = s.any.prf();
            println!(
                "{m:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f1:>9.2} {:>5}/{:<5}  ({} tool ends)",
                pooled[k].name,
                test.len(),
                fails,
                s.warned,
                s.failures,
                tool_ends.len()
            );
            pooled[k].add(s);
        }
        kept.push(table);
        machines_kept.push(m.clone());
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
            let pred = fit_predict(ModelKind::Logistic, lr_params, &rows, test, &classes)
                .context("training the pooled logistic regression")?;
            let sc = score(&all, test, &pred, &modes, horizon);
            let (p, r, f) = sc.any.prf();
            println!(
                "{:<34} {:<10} {:>6} {:>6} {p:>6.2} {r:>6.2} {f:>9.2} {:>5}/{:<5}  ({} machines of its type)",
                machines_kept[members[k]],
                "lr pooled",
                test.len(),
                test.iter().filter(|&&i| all.labels[i] != "ok").count(),
                sc.warned,
                sc.failures,
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
        let (p, r, f) = e.any.prf();
        // Failure level: an alarm is right when a failure followed it within the horizon; a
        // failure is caught when it was warned of.
        let ap = e.true_alarms as f64 / e.alarms.max(1) as f64;
        let ar = e.warned as f64 / e.failures.max(1) as f64;
        let af = if ap + ar > 0.0 {
            2.0 * ap * ar / (ap + ar)
        } else {
            0.0
        };
        println!(
            "{:<10} {p:>8.3} {r:>8.3} {f:>8.3} {:>8}/{:<6} {:>18.1} {:>8} {:>8} {af:>9.3}",
            e.name,
            e.warned,
            e.failures,
            median(&mut e.leads),
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
    alarms: usize,
    true_alarms: usize,
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
            alarms: 0,
            true_alarms: 0,
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
        self.alarms += s.alarms;
        self.true_alarms += s.true_alarms;
    }
}
