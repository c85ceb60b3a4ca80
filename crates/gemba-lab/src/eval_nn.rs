//! `gemba eval te-vae`, `eval te-gan`, `eval elpv` and `eval elpv-gan`: the VAE against PCA
//! T²/SPE on Tennessee Eastman, GAN augmentation of a rare TE fault, the conv VAE on ELPV
//! solar-cell images, and DCGANs on them (train on synthetic, test on real).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use gemba_nn::gan::{GanParams, TabularGan};
use gemba_nn::threshold::quantile;
use gemba_nn::{Table, TrainHooks, Vae, VaeParams};

use crate::eval::read_te;

#[derive(Debug, Args)]
pub struct EvalTeVaeArgs {
    /// Directory of the Tennessee Eastman files (scripts/fetch-te).
    #[arg(long, default_value = "data/te")]
    pub dir: PathBuf,
    /// Samples per window fed to the VAE (1: one sample of 52 variables).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Limits of every detector at this quantile of held-out normal scores (0.95: false-alarm
    /// rate ≈ 5 %).
    #[arg(long, default_value_t = 0.95)]
    pub quantile: f64,
    /// PCA: share of the variance the retained components explain.
    #[arg(long, default_value_t = 0.9)]
    pub variance: f64,
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Any VAE hyper-parameter as key=JSON (z_dim=8, hidden=[64], beta=0.5 …).
    #[arg(long = "param")]
    pub params: Vec<String>,
}

/// Rows of `w` consecutive samples, concatenated; window k ends at sample k + w − 1.
fn windows(rows: &[Vec<f64>], w: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for end in w - 1..rows.len() {
        for r in &rows[end + 1 - w..=end] {
            out.extend(r.iter().map(|&v| v as f32));
        }
    }
    out
}

fn vae_params(params: &[String], base: serde_json::Value) -> anyhow::Result<VaeParams> {
    let mut v = base;
    for kv in params {
        let (k, val) = kv
            .split_once('=')
            .with_context(|| format!("--param {kv:?}: write key=value"))?;
        let val = val.trim();
        v[k.trim()] = serde_json::from_str(val).unwrap_or_else(|_| val.into());
    }
    Ok(VaeParams::from_json(&v)?)
}

fn pct(flags: impl Iterator<Item = bool>) -> f64 {
    let (mut n, mut k) = (0usize, 0usize);
    for f in flags {
        n += 1;
        k += usize::from(f);
    }
    100.0 * k as f64 / n.max(1) as f64
}

pub fn te_vae(args: EvalTeVaeArgs) -> anyhow::Result<()> {
    use gemba_analytics::{PcaMonitor, PcaOptions};
    let w = args.window.max(1);
    let dir = &args.dir;
    let train = read_te(&dir.join("d00.dat"))?;
    let normal_test = read_te(&dir.join("d00_te.dat"))?;
    let (hold, fresh) = normal_test.split_at(normal_test.len() / 2);
    let names: Vec<String> = (0..w)
        .flat_map(|k| (1..=52).map(move |i| format!("v{i:02}_t{k}")))
        .collect();
    let table = Table::new(names, windows(&train, w))?;
    let p = vae_params(
        &args.params,
        serde_json::json!({
            "hidden": [64], "z_dim": 8, "epochs": args.epochs, "batch_size": 64,
            "learning_rate": 1e-3, "validation_fraction": 0.2, "patience": 30, "seed": args.seed,
        }),
    )?;
    let t0 = Instant::now();
    let vae = Vae::fit_table(&p, &table, TrainHooks::default())?;
    let fit_s = t0.elapsed().as_secs_f64();
    // Both scores from one pass: the negative ELBO, and the reconstruction error alone.
    let score = |rows: &[Vec<f64>]| -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let s = vae.score(&windows(rows, w))?;
        let rec = s
            .error
            .chunks(s.d)
            .map(|e| e.iter().map(|&v| f64::from(v)).sum::<f64>())
            .collect();
        Ok((s.score, rec))
    };
    let (hold_elbo, hold_rec) = score(hold)?;
    let lim_elbo = quantile(&hold_elbo, args.quantile);
    let lim_rec = quantile(&hold_rec, args.quantile);
    let pca = PcaMonitor::fit(
        &train,
        hold,
        PcaOptions {
            variance: args.variance,
            quantile: args.quantile,
        },
    )?;
    let pca_flags = |rows: &[Vec<f64>]| -> anyhow::Result<Vec<(bool, bool)>> {
        rows.iter()
            .map(|r| {
                let s = pca.score(r)?;
                Ok((s.t2 > pca.t2_limit, s.spe > pca.spe_limit))
            })
            .collect()
    };
    println!(
        "Tennessee Eastman: VAE (MLP {:?}, z {}, window {w}: {} inputs) trained on d00.dat ({} windows) in {fit_s:.1} s, best epoch {} of {}; PCA with {} components. Every limit at the {} quantile of the first {} samples of d00_te.dat.",
        p.hidden,
        p.z_dim,
        52 * w,
        table.rows(),
        vae.best_epoch,
        vae.history.len(),
        pca.loadings.len(),
        args.quantile,
        hold.len()
    );
    let (fe, fr) = score(fresh)?;
    let fp = pca_flags(fresh)?;
    println!(
        "False alarms on the other {} normal samples: PCA T² {:.1} %, PCA SPE {:.1} %, VAE −ELBO {:.1} %, VAE recon {:.1} %",
        fresh.len(),
        pct(fp.iter().map(|f| f.0)),
        pct(fp.iter().map(|f| f.1)),
        pct(fe.iter().map(|&s| s > lim_elbo)),
        pct(fr.iter().map(|&s| s > lim_rec)),
    );
    println!(
        "\n| fault | PCA T² det % | PCA SPE det % | VAE −ELBO det % | VAE recon det % | FAR before onset T² / SPE / −ELBO / recon % |"
    );
    println!("|---:|---:|---:|---:|---:|---|");
    let mut sums = [0f64; 4];
    for fault in 1..=21 {
        let rows = read_te(&dir.join(format!("d{fault:02}_te.dat")))?;
        if rows.len() <= 160 {
            bail!(
                "d{fault:02}_te.dat has {} samples; expected 960",
                rows.len()
            );
        }
        let flags = pca_flags(&rows)?;
        let (e, r) = score(&rows)?;
        // Window k ends at sample k + w − 1; it is "after the onset" when it ends at ≥ 160.
        let after = |k: usize| k + w > 160; // ends at k + w − 1 ≥ 160
        let det = [
            pct(flags[160..].iter().map(|f| f.0)),
            pct(flags[160..].iter().map(|f| f.1)),
            pct((0..e.len()).filter(|&k| after(k)).map(|k| e[k] > lim_elbo)),
            pct((0..r.len()).filter(|&k| after(k)).map(|k| r[k] > lim_rec)),
        ];
        let far = [
            pct(flags[..160].iter().map(|f| f.0)),
            pct(flags[..160].iter().map(|f| f.1)),
            pct((0..e.len()).filter(|&k| !after(k)).map(|k| e[k] > lim_elbo)),
            pct((0..r.len()).filter(|&k| !after(k)).map(|k| r[k] > lim_rec)),
        ];
        for (s, d) in sums.iter_mut().zip(det) {
            *s += d;
        }
        println!(
            "| {fault:02} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} / {:.1} / {:.1} |",
            det[0], det[1], det[2], det[3], far[0], far[1], far[2], far[3]
        );
    }
    println!(
        "| mean | {:.1} | {:.1} | {:.1} | {:.1} | |",
        sums[0] / 21.0,
        sums[1] / 21.0,
        sums[2] / 21.0,
        sums[3] / 21.0
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalElpvArgs {
    /// The ELPV folder (labels.csv and images/). CC BY-NC-SA: never commit it or use it in tests.
    #[arg(long)]
    pub dir: PathBuf,
    /// Resize the 300×300 cells to SIZE×SIZE (a multiple of 4).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of the functional cells held out for the test (the rest trains the VAE).
    #[arg(long, default_value_t = 0.25)]
    pub test_fraction: f64,
    /// Any VAE hyper-parameter as key=JSON.
    #[arg(long = "param")]
    pub params: Vec<String>,
}

/// ELPV's cells by class: (functional: p = 0, defective: p ≥ 2/3, how many with p = 1/3).
fn elpv_cells(dir: &std::path::Path) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>, usize)> {
    let labels = std::fs::read_to_string(dir.join("labels.csv"))
        .with_context(|| format!("cannot read {}/labels.csv", dir.display()))?;
    let (mut functional, mut defective, mut skipped) = (Vec::new(), Vec::new(), 0usize);
    for (i, line) in labels.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            continue;
        }
        let p: f64 = f[1].parse().with_context(|| {
            format!("labels.csv line {}: {:?} is not a probability", i + 1, f[1])
        })?;
        let path = dir.join(f[0]);
        if p == 0.0 {
            functional.push(path);
        } else if p >= 2.0 / 3.0 - 1e-3 {
            defective.push(path);
        } else {
            skipped += 1;
        }
    }
    if functional.is_empty() || defective.is_empty() {
        bail!(
            "{}/labels.csv lists {} functional and {} defective cells: both are needed",
            dir.display(),
            functional.len(),
            defective.len()
        );
    }
    Ok((functional, defective, skipped))
}

/// AUROC of anomaly scores: `normal` scores against `anomalous` ones (higher = more anomalous).
fn auroc(normal: &[f64], anomalous: &[f64]) -> f64 {
    let y: Vec<bool> = std::iter::repeat_n(false, normal.len())
        .chain(std::iter::repeat_n(true, anomalous.len()))
        .collect();
    let s: Vec<f64> = normal.iter().chain(anomalous).copied().collect();
    gemba_nn::metrics::roc_auc(&s, &y)
}

/// A seeded shuffle of 0..n (deterministic across platforms).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    for i in (1..order.len()).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = ((s >> 33) as usize) % (i + 1);
        order.swap(i, j);
    }
    order
}

pub fn elpv(args: EvalElpvArgs) -> anyhow::Result<()> {
    let (functional, defective, skipped) = elpv_cells(&args.dir)?;
    // Deterministic split of the functional cells (a seeded shuffle).
    let order = shuffled(functional.len(), args.seed);
    let n_test = (functional.len() as f64 * args.test_fraction).round() as usize;
    let test_ok: Vec<PathBuf> = order[..n_test]
        .iter()
        .map(|&i| functional[i].clone())
        .collect();
    let train: Vec<PathBuf> = order[n_test..]
        .iter()
        .map(|&i| functional[i].clone())
        .collect();
    let t0 = Instant::now();
    let sz = args.size;
    let train_set = gemba_nn::images::read_images(&train, 1, sz, sz)?;
    let ok_set = gemba_nn::images::read_images(&test_ok, 1, sz, sz)?;
    let bad_set = gemba_nn::images::read_images(&defective, 1, sz, sz)?;
    let read_s = t0.elapsed().as_secs_f64();
    let p = vae_params(
        &args.params,
        serde_json::json!({
            "hidden": [128], "z_dim": 16, "epochs": args.epochs, "batch_size": 32,
            "learning_rate": 1e-3, "validation_fraction": 0.1, "patience": 5, "seed": args.seed,
        }),
    )?;
    let t1 = Instant::now();
    let vae = Vae::fit_images(
        &p,
        &train_set,
        TrainHooks {
            on_epoch: Some(Box::new(|r| {
                eprintln!(
                    "epoch {:>3}: loss {:.2} (recon {:.2}, KL {:.2}) val {:.2}  {:.1} s",
                    r.epoch,
                    r.loss,
                    r.part_a,
                    r.part_b,
                    r.val_loss.unwrap_or(f64::NAN),
                    r.seconds
                );
            })),
            ..TrainHooks::default()
        },
    )?;
    let fit_s = t1.elapsed().as_secs_f64();
    let score = |set: &gemba_nn::ImageSet| -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let s = vae.score(set.data())?;
        let rec = s
            .error
            .chunks(s.d)
            .map(|e| e.iter().map(|&v| f64::from(v)).sum())
            .collect();
        Ok((s.score, rec))
    };
    let (ok_e, ok_r) = score(&ok_set)?;
    let (bad_e, bad_r) = score(&bad_set)?;
    println!(
        "ELPV: conv VAE on {} functional cells at {sz}×{sz} (read in {read_s:.1} s), trained in {fit_s:.1} s ({} epochs, best {}); test: {} held-out functional vs {} defective (p ≥ 2/3); {skipped} cells with p = 1/3 left out.",
        train.len(),
        vae.history.len(),
        vae.best_epoch,
        test_ok.len(),
        defective.len()
    );
    println!(
        "AUROC defective vs functional: −ELBO {:.4}, squared reconstruction error {:.4}",
        auroc(&ok_e, &bad_e),
        auroc(&ok_r, &bad_r)
    );
    let flagged = |v: &[f64]| pct(v.iter().map(|&s| s > vae.threshold.value));
    println!(
        "At the learned threshold ({:?} of held-out training cells, {:.2}): {:.1} % of held-out functional and {:.1} % of defective cells flagged.",
        vae.threshold.method,
        vae.threshold.value,
        flagged(&ok_e),
        flagged(&bad_e)
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalTeGanArgs {
    #[arg(long, default_value = "data/te")]
    pub dir: PathBuf,
    /// Faults to make rare, one run each (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2, 6])]
    pub fault: Vec<usize>,
    /// Share of the rare fault's training samples kept.
    #[arg(long, default_value_t = 0.05)]
    pub keep: f64,
    /// Classes in the task: normal + these faults (comma separated; default 1..=21 minus the hard 3, 9, 15).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<usize>,
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The SVM's C (RBF kernel, γ = scale).
    #[arg(long, default_value_t = 10.0)]
    pub c: f64,
    /// The GAN's loss for the augmentation runs: gan or wgan-gp.
    #[arg(long, default_value = "gan")]
    pub loss: String,
    /// Train-on-synthetic-test-on-real: a GAN per loss (comma separated; empty for none) on all
    /// training samples, an SVM on its samples only (as many per class as the real set has),
    /// accuracy on the real test set against the SVM trained on the real samples.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["gan".to_owned(), "wgan-gp".to_owned()])]
    pub tstr: Vec<String>,
}

/// The GAN settings of `eval te-gan` with `loss` (WGAN-GP: Adam β₁ 0 and 5 critic steps).
fn te_gan_params(args: &EvalTeGanArgs, loss: &str) -> GanParams {
    let base = GanParams {
        z_dim: 32,
        hidden: 128,
        epochs: args.epochs,
        batch_size: 128,
        learning_rate: 2e-4,
        seed: args.seed,
        loss: loss.to_owned(),
        ..GanParams::default()
    };
    if loss == "wgan-gp" {
        GanParams { beta1: 0.0, ..base }
    } else {
        base
    }
}

pub fn te_gan(args: EvalTeGanArgs) -> anyhow::Result<()> {
    use gemba_ml::{Dataset, Matrix, ModelKind, metrics, train};
    let faults: Vec<usize> = if args.classes.is_empty() {
        (1..=21).filter(|f| ![3, 9, 15].contains(f)).collect()
    } else {
        args.classes.clone()
    };
    let classes: Vec<usize> = std::iter::once(0).chain(faults.iter().copied()).collect();
    let names: Vec<String> = (1..=52).map(|i| format!("v{i:02}")).collect();
    let class_names: Vec<String> = classes.iter().map(|c| format!("c{c:02}")).collect();
    let mut train_rows: Vec<(Vec<f64>, usize)> = Vec::new();
    let mut test_rows: Vec<(Vec<f64>, usize)> = Vec::new();
    for (k, &c) in classes.iter().enumerate() {
        for r in read_te(&args.dir.join(format!("d{c:02}.dat")))? {
            train_rows.push((r, k));
        }
        let te = read_te(&args.dir.join(format!("d{c:02}_te.dat")))?;
        let from = if c == 0 { 0 } else { 160 };
        for r in &te[from..] {
            test_rows.push((r.clone(), k));
        }
    }
    let (tx, ty): (Vec<Vec<f64>>, Vec<usize>) = test_rows.into_iter().unzip();
    let test = Matrix::from_rows(&tx)?;
    let svm = |rows: &[(Vec<f64>, usize)]| -> anyhow::Result<gemba_ml::ModelArtifact> {
        let (x, y): (Vec<Vec<f64>>, Vec<usize>) = rows.iter().cloned().unzip();
        let d = Dataset::new(
            Matrix::from_rows(&x)?,
            y,
            names.clone(),
            class_names.clone(),
        )?;
        Ok(train(
            ModelKind::Svc,
            &serde_json::json!({"c": args.c, "gamma": "scale"}),
            &d,
        )?)
    };
    // A conditional GAN with `loss` on `rows`: the model, its table and the training seconds.
    let fit_gan =
        |rows: &[(Vec<f64>, usize)], loss: &str| -> anyhow::Result<(TabularGan, Table, f64)> {
            let table = Table::from_rows(
                names.clone(),
                &rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )?;
            let labels: Vec<usize> = rows.iter().map(|r| r.1).collect();
            let t0 = Instant::now();
            let gan = TabularGan::fit(
                &te_gan_params(&args, loss),
                &table,
                &labels,
                class_names.clone(),
                TrainHooks::default(),
            )?;
            Ok((gan, table, t0.elapsed().as_secs_f64()))
        };
    let f1_of = |m: &gemba_ml::ModelArtifact, k: usize| -> anyhow::Result<(f64, f64)> {
        let pred = m.predict(&test)?;
        let pc = metrics::per_class(&ty, &pred, classes.len());
        Ok((pc[k].f1, metrics::accuracy(&ty, &pred)))
    };
    println!(
        "Tennessee Eastman, {} classes (normal + faults {faults:?}), per-sample features (52); RBF SVM C = {}. Test: d00_te + each fault's test file after the onset. The rare fault keeps {:.0} % of its training samples; the conditional GAN (trained on the reduced set, {} epochs) generates the rest.",
        classes.len(),
        args.c,
        args.keep * 100.0,
        args.epochs
    );
    println!(
        "\n| rare fault | kept samples | F1 without GAN | F1 with GAN | F1 full data | acc without / with GAN | MMD² GAN vs real (rare) | GAN train s |"
    );
    println!("|---:|---:|---:|---:|---:|---|---:|---:|");
    let full = svm(&train_rows)?;
    for &fault in &args.fault {
        let Some(k) = classes.iter().position(|&c| c == fault) else {
            bail!("--fault {fault} is not one of the classes {classes:?}");
        };
        let rare_all: Vec<usize> = (0..train_rows.len())
            .filter(|&i| train_rows[i].1 == k)
            .collect();
        let n_keep = ((rare_all.len() as f64) * args.keep).round().max(2.0) as usize;
        // Keep every (n / n_keep)-th sample: spread over the run, deterministic.
        let step = rare_all.len() as f64 / n_keep as f64;
        let kept: Vec<usize> = (0..n_keep)
            .map(|j| rare_all[(j as f64 * step) as usize])
            .collect();
        let reduced: Vec<(Vec<f64>, usize)> = train_rows
            .iter()
            .enumerate()
            .filter(|(i, r)| r.1 != k || kept.contains(i))
            .map(|(_, r)| r.clone())
            .collect();
        let base = svm(&reduced)?;
        let (f1_base, acc_base) = f1_of(&base, k)?;
        let (gan, table, gan_s) = fit_gan(&reduced, &args.loss)?;
        let n_gen = rare_all.len() - n_keep;
        let fake = gan.sample(k, n_gen, args.seed + 1)?;
        let mut aug = reduced.clone();
        for row in fake.chunks(52) {
            aug.push((row.iter().map(|&v| f64::from(v)).collect(), k));
        }
        let (f1_aug, acc_aug) = f1_of(&svm(&aug)?, k)?;
        let (f1_full, _) = f1_of(&full, k)?;
        // MMD² between generated and all real training samples of the fault, in units of the
        // scaler fitted on the reduced set.
        let sc = gemba_nn::Scaler::fit(&table);
        let real: Vec<f32> = rare_all
            .iter()
            .flat_map(|&i| train_rows[i].0.iter().map(|&v| v as f32))
            .collect();
        let mmd = gemba_nn::metrics::mmd2(&sc.transform(&real), &sc.transform(&fake), 52, None);
        println!(
            "| {fault:02} | {n_keep} | {f1_base:.3} | {f1_aug:.3} | {f1_full:.3} | {:.1} / {:.1} % | {mmd:.4} | {gan_s:.1} |",
            acc_base * 100.0,
            acc_aug * 100.0
        );
    }
    let tstr: Vec<&String> = args.tstr.iter().filter(|l| !l.is_empty()).collect();
    if tstr.is_empty() {
        return Ok(());
    }
    // Train on synthetic, test on real.
    let (_, acc_real) = f1_of(&full, 0)?;
    println!(
        "\nTrain on synthetic, test on real: a conditional GAN on all {} training samples, an SVM on as many generated samples per class as the real set has, accuracy on the real test set.\n",
        train_rows.len()
    );
    println!(
        "| GAN loss | TSTR accuracy | TRTR accuracy (real training samples) | mean MMD² per class | GAN train s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for loss in tstr {
        let (gan, table, gan_s) = fit_gan(&train_rows, loss)?;
        let sc = gemba_nn::Scaler::fit(&table);
        let mut synthetic: Vec<(Vec<f64>, usize)> = Vec::new();
        let mut mmd_sum = 0.0;
        for k in 0..classes.len() {
            let real: Vec<f32> = train_rows
                .iter()
                .filter(|r| r.1 == k)
                .flat_map(|r| r.0.iter().map(|&v| v as f32))
                .collect();
            let n = real.len() / 52;
            let fake = gan.sample(k, n, args.seed + 100 + k as u64)?;
            mmd_sum +=
                gemba_nn::metrics::mmd2(&sc.transform(&real), &sc.transform(&fake), 52, None);
            for row in fake.chunks(52) {
                synthetic.push((row.iter().map(|&v| f64::from(v)).collect(), k));
            }
        }
        let (_, acc) = f1_of(&svm(&synthetic)?, 0)?;
        println!(
            "| {loss} | {:.1} % | {:.1} % | {:.4} | {gan_s:.1} |",
            acc * 100.0,
            acc_real * 100.0,
            mmd_sum / classes.len() as f64
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct EvalElpvGanArgs {
    /// The ELPV folder (labels.csv and images/). CC BY-NC-SA: never commit it or use it in tests.
    #[arg(long)]
    pub dir: PathBuf,
    /// DCGAN epochs per class.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of each class held out for the test.
    #[arg(long, default_value_t = 0.25)]
    pub test_fraction: f64,
}

/// `gemba eval elpv-gan`: a DCGAN (the seed's architecture, 16 × 16 × 1) per class of ELPV cells
/// (functional p = 0, defective p ≥ 2/3), trained on that class's training cells; a small
/// classifier (logistic regression on the 256 pixels, classes balanced) trained on the real
/// training cells (TRTR), on as many generated cells per class (TSTR) and on both, all tested on
/// the real held-out cells; MMD² of each class's generated cells against its real held-out
/// cells, next to the MMD² of its real training cells against the same (what two real samples
/// differ by); and the functional GAN's discriminator as an anomaly score (AUROC).
pub fn elpv_gan(args: EvalElpvGanArgs) -> anyhow::Result<()> {
    use gemba_ml::{Dataset, Matrix, ModelKind, metrics, train};
    use gemba_nn::gan::Dcgan;
    const SIZE: usize = 16;
    if !(args.test_fraction > 0.0 && args.test_fraction < 1.0) {
        bail!("--test-fraction must be in (0, 1)");
    }
    let (functional, defective, skipped) = elpv_cells(&args.dir)?;
    let class_names = ["defective", "functional"];
    let t0 = Instant::now();
    let mut train_sets = Vec::new();
    let mut test_sets = Vec::new();
    for (k, paths) in [&defective, &functional].into_iter().enumerate() {
        let order = shuffled(paths.len(), args.seed + k as u64);
        let n_test = ((paths.len() as f64 * args.test_fraction).round() as usize).max(1);
        let pick = |idx: &[usize]| idx.iter().map(|&i| paths[i].clone()).collect::<Vec<_>>();
        test_sets.push(gemba_nn::images::read_images(
            &pick(&order[..n_test]),
            1,
            SIZE,
            SIZE,
        )?);
        train_sets.push(gemba_nn::images::read_images(
            &pick(&order[n_test..]),
            1,
            SIZE,
            SIZE,
        )?);
    }
    println!(
        "ELPV at {SIZE}×{SIZE}: {} defective (p ≥ 2/3) and {} functional cells, read in {:.1} s; {skipped} with p = 1/3 left out. Train / test: defective {} / {}, functional {} / {}.",
        defective.len(),
        functional.len(),
        t0.elapsed().as_secs_f64(),
        train_sets[0].n,
        test_sets[0].n,
        train_sets[1].n,
        test_sets[1].n
    );
    let params = GanParams {
        z_dim: 100,
        epochs: args.epochs,
        batch_size: 64,
        seed: args.seed,
        ..GanParams::default()
    };
    let mut gans = Vec::new();
    let mut fakes = Vec::new();
    for (k, set) in train_sets.iter().enumerate() {
        let t = Instant::now();
        let bar = crate::train_nn::progress(args.epochs, class_names[k]);
        let gan = Dcgan::fit(
            &params,
            set,
            TrainHooks {
                on_epoch: Some(Box::new(|r| {
                    bar.set_message(format!(
                        "D loss {:.3}, G loss {:.3}, D accuracy {:.2}",
                        r.loss, r.part_a, r.part_b
                    ));
                    bar.set_position(r.epoch as u64);
                })),
                ..TrainHooks::default()
            },
        )?;
        bar.finish_and_clear();
        let last = gan.history.last().context("no epoch ran")?;
        println!(
            "DCGAN of the {} cells: {} epochs in {:.1} s; last epoch D loss {:.3}, G loss {:.3}, D accuracy {:.2}",
            class_names[k],
            gan.history.len(),
            t.elapsed().as_secs_f64(),
            last.loss,
            last.part_a,
            last.part_b
        );
        fakes.push(gan.sample(set.n, args.seed + 100 + k as u64)?);
        gans.push(gan);
    }
    let names: Vec<String> = (0..SIZE * SIZE).map(|i| format!("p{i}")).collect();
    let rows = |set: &gemba_nn::ImageSet| -> Vec<Vec<f64>> {
        (0..set.n)
            .map(|i| set.image(i).iter().map(|&v| f64::from(v)).collect())
            .collect()
    };
    let labelled = |sets: &[&gemba_nn::ImageSet]| -> (Vec<Vec<f64>>, Vec<usize>) {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (k, s) in sets.iter().enumerate() {
            let r = rows(s);
            y.extend(std::iter::repeat_n(k, r.len()));
            x.extend(r);
        }
        (x, y)
    };
    let (tx, ty) = labelled(&[&test_sets[0], &test_sets[1]]);
    let test = Matrix::from_rows(&tx)?;
    let fit = |x: Vec<Vec<f64>>, y: Vec<usize>| -> anyhow::Result<(f64, f64, f64)> {
        let d = Dataset::new(
            Matrix::from_rows(&x)?,
            y,
            names.clone(),
            class_names.iter().map(|s| s.to_string()).collect(),
        )?;
        let m = train(
            ModelKind::Logistic,
            &serde_json::json!({"c": 0.1, "class_weight": "balanced"}),
            &d,
        )?;
        let pred = m.predict(&test)?;
        let pc = metrics::per_class(&ty, &pred, 2);
        Ok((
            metrics::accuracy(&ty, &pred),
            (pc[0].recall + pc[1].recall) / 2.0,
            pc[0].f1,
        ))
    };
    let (rx, ry) = labelled(&[&train_sets[0], &train_sets[1]]);
    let (fx, fy) = labelled(&[&fakes[0], &fakes[1]]);
    let both_x: Vec<Vec<f64>> = rx.iter().chain(&fx).cloned().collect();
    let both_y: Vec<usize> = ry.iter().chain(&fy).copied().collect();
    println!(
        "\nSmall classifier (logistic regression on the {} pixels, C = 0.1, classes balanced), tested on the {} real held-out cells:\n",
        SIZE * SIZE,
        ty.len()
    );
    println!("| trained on | rows | accuracy | balanced accuracy | defective F1 |");
    println!("|---|---:|---:|---:|---:|");
    for (what, x, y) in [
        ("real cells (TRTR)", rx, ry),
        ("generated cells (TSTR)", fx, fy),
        ("real + generated", both_x, both_y),
    ] {
        let n = x.len();
        let (acc, bal, f1) = fit(x, y)?;
        println!(
            "| {what} | {n} | {:.1} % | {:.1} % | {f1:.3} |",
            acc * 100.0,
            bal * 100.0
        );
    }
    println!(
        "\nMMD² (RBF kernel, median-distance bandwidth) against each class's real held-out cells:\n"
    );
    println!("| class | generated cells | real training cells (reference) |");
    println!("|---|---:|---:|");
    let d = SIZE * SIZE;
    for k in 0..2 {
        println!(
            "| {} | {:.4} | {:.4} |",
            class_names[k],
            gemba_nn::metrics::mmd2(test_sets[k].data(), fakes[k].data(), d, None),
            gemba_nn::metrics::mmd2(test_sets[k].data(), train_sets[k].data(), d, None)
        );
    }
    let ok = gans[1].discriminator_score(&test_sets[1])?;
    let bad = gans[1].discriminator_score(&test_sets[0])?;
    println!(
        "\nThe functional cells' discriminator as an anomaly score (−logit D): AUROC defective vs functional (held out) {:.4}",
        auroc(&ok, &bad)
    );
    Ok(())
}
