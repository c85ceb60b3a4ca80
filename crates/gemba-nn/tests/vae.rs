//! VAE behaviour on tiny fixed-seed sets: shapes, falling loss, ELBO terms by hand, save/load
//! identity, reproducibility and resuming, thresholds, explanations and bad input.

use burn::prelude::*;
use gemba_nn::{ImageSet, NnError, Table, ThresholdMethod, TrainHooks, Vae, VaeParams, elbo_terms};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows on a 2-d latent structure in 8 features: x = A·u + noise.
fn normal_rows(n: usize, seed: u64) -> Table {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut unif = || rng.r#gen::<f32>() - 0.5;
    let mut data = Vec::new();
    for _ in 0..n {
        let (u, v) = (unif() * 2.0, unif() * 2.0);
        for j in 0..8 {
            let a = (j as f32 * 0.7).sin();
            let b = (j as f32 * 1.3).cos();
            data.push(10.0 + a * u + b * v + 0.05 * unif());
        }
    }
    Table::new((0..8).map(|j| format!("s{j}")).collect(), data).expect("table")
}

fn small_params() -> VaeParams {
    VaeParams {
        hidden: vec![16],
        z_dim: 2,
        epochs: 60,
        batch_size: 32,
        learning_rate: 5e-3,
        seed: 7,
        validation_fraction: 0.25,
        patience: 0,
        ..VaeParams::default()
    }
}

#[test]
fn elbo_terms_match_a_hand_computation() {
    let dev = Device::flex();
    let t = |v: Vec<f32>, c: usize| Tensor::<2>::from_data(TensorData::new(v, [1, c]), &dev);
    // Gaussian: ½((1−0.5)² + (2−3)²) = 0.625.
    // KL: ½ Σ (μ² + e^{lv} − lv − 1) with μ = (0.5, −1), lv = (0, ln 2):
    //   ½ (0.25 + 1 − 0 − 1) + ½ (1 + 2 − ln 2 − 1) = 0.125 + 1 − ½ ln 2.
    let (rec, kl) = elbo_terms(
        t(vec![1.0, 2.0], 2),
        t(vec![0.5, 3.0], 2),
        t(vec![0.5, -1.0], 2),
        t(vec![0.0, 2f32.ln()], 2),
        false,
    );
    let rec: f32 = rec.into_scalar();
    let kl: f32 = kl.into_scalar();
    assert!((rec - 0.625).abs() < 1e-6, "{rec}");
    let want = 0.125 + 1.0 - 0.5 * 2f32.ln();
    assert!((kl - want).abs() < 1e-6, "{kl} vs {want}");
    // Bernoulli from logits: −[x ln σ(l) + (1−x) ln(1−σ(l))] for x = (1, 0, 0.25), l = (2, −1, 0).
    let x = [1.0f32, 0.0, 0.25];
    let l = [2.0f32, -1.0, 0.0];
    let want: f32 = x
        .iter()
        .zip(&l)
        .map(|(x, l)| {
            let p = 1.0 / (1.0 + (-l).exp());
            -(x * p.ln() + (1.0 - x) * (1.0 - p).ln())
        })
        .sum();
    let (rec, kl) = elbo_terms(
        t(x.to_vec(), 3),
        t(l.to_vec(), 3),
        t(vec![0.0], 1),
        t(vec![0.0], 1),
        true,
    );
    let rec: f32 = rec.into_scalar();
    assert!((rec - want).abs() < 1e-5, "{rec} vs {want}");
    assert_eq!(kl.into_scalar::<f32>(), 0.0);
}

#[test]
fn mlp_vae_learns_scores_explains_and_round_trips() {
    let data = normal_rows(256, 1);
    let vae = Vae::fit_table(&small_params(), &data, TrainHooks::default()).expect("fit");
    // The loss falls.
    let first = vae.history[0].loss;
    let last = vae.history.last().expect("history").loss;
    assert!(last < 0.7 * first, "loss {first} → {last}");
    assert_eq!(vae.history.len(), 60);
    // Shapes.
    let s = vae.score(data.data()).expect("score");
    assert_eq!(s.score.len(), 256);
    assert_eq!(s.error.len(), 256 * 8);
    // Normal rows mostly below the threshold (q = 0.99 of held-out normal rows); rows with one
    // broken sensor above it, and the explanation names that sensor.
    let flagged = vae.is_anomaly(data.data()).expect("flags");
    let rate = flagged.iter().filter(|&&f| f).count() as f64 / 256.0;
    assert!(rate < 0.1, "false-alarm rate on normal rows {rate}");
    let mut broken = data.row(3).to_vec();
    broken[5] += 4.0;
    let why = vae.explain(&broken, 3).expect("explain");
    assert!(
        why.anomaly,
        "score {} threshold {}",
        why.score, why.threshold
    );
    assert_eq!(why.top[0].0, "s5");
    // Save/load identity: identical scores, bit for bit.
    let json = vae.to_json().expect("json");
    assert_eq!(gemba_nn::artifact_kind(&json).as_deref(), Some("vae"));
    let back = Vae::from_json(&json).expect("load");
    let s2 = back.score(data.data()).expect("score");
    assert_eq!(s.score, s2.score);
    assert_eq!(s.error, s2.error);
    assert_eq!(back.threshold, vae.threshold);
    // Generation gives rows of the right width.
    assert_eq!(vae.sample(5, 1).expect("sample").len(), 5 * 8);
}

#[test]
fn a_fixed_seed_reproduces_the_loss_curve_and_resume_continues_it() {
    let data = normal_rows(128, 2);
    let mut p = small_params();
    p.epochs = 6;
    let a = Vae::fit_table(&p, &data, TrainHooks::default()).expect("a");
    let b = Vae::fit_table(&p, &data, TrainHooks::default()).expect("b");
    let losses = |v: &Vae| {
        v.history
            .iter()
            .map(|h| (h.loss, h.val_loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&b));
    // Interrupt after 3 epochs (cancel), then resume from the checkpoint.
    let dir = tempfile::tempdir().expect("tmp");
    let ck = dir.path().join("run.ckpt");
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = cancel.clone();
    let hooks = TrainHooks {
        on_epoch: Some(Box::new(move |r| {
            if r.epoch == 3 {
                c2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        })),
        checkpoint: Some(ck.clone()),
        resume: true,
        cancel: Some(cancel),
    };
    let part = Vae::fit_table(&p, &data, hooks).expect("part");
    assert_eq!(part.history.len(), 3);
    let hooks = TrainHooks {
        checkpoint: Some(ck.clone()),
        resume: true,
        ..TrainHooks::default()
    };
    let resumed = Vae::fit_table(&p, &data, hooks).expect("resumed");
    assert_eq!(losses(&resumed), losses(&a));
    // Another run's checkpoint is refused.
    p.seed = 8;
    let hooks = TrainHooks {
        checkpoint: Some(ck),
        resume: true,
        ..TrainHooks::default()
    };
    let err = Vae::fit_table(&p, &data, hooks).expect_err("other run");
    assert!(err.to_string().contains("another run"), "{err}");
}

#[test]
fn conv_vae_on_small_images_gives_heat_maps() {
    // 8×12 single-channel images: a bright bar at a random row; anomalies have a bright spot.
    let (h, w) = (8, 12);
    let mut data = Vec::new();
    for i in 0..48 {
        let mut img = vec![0.1f32; h * w];
        let r = i % h;
        for x in 0..w {
            img[r * w + x] = 0.9;
        }
        data.extend(img);
    }
    let set = ImageSet::new(1, h, w, data).expect("images");
    let p = VaeParams {
        hidden: vec![32],
        z_dim: 4,
        epochs: 8,
        batch_size: 16,
        learning_rate: 3e-3,
        seed: 3,
        patience: 0,
        threshold: ThresholdMethod::Quantile { q: 0.95 },
        ..VaeParams::default()
    };
    let vae = Vae::fit_images(&p, &set, TrainHooks::default()).expect("fit");
    assert!(vae.history.last().expect("h").loss < vae.history[0].loss);
    let map = vae.heat_map(set.image(0)).expect("map");
    assert_eq!(map.len(), h * w);
    let mut odd = set.image(0).to_vec();
    odd[5 * w + 3] = 0.0; // a dark pixel inside the bar? row 0 is the bar; (5, 3) is background.
    odd[5 * w + 3] = 1.0;
    let map = vae.heat_map(&odd).expect("map");
    let hottest = map
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    assert_eq!(hottest, Some(5 * w + 3));
    let back = Vae::from_json(&vae.to_json().expect("json")).expect("load");
    assert_eq!(
        back.scores(set.data()).expect("s"),
        vae.scores(set.data()).expect("s")
    );
    // Sizes that are not multiples of 4 are refused with the reason.
    let bad = ImageSet::new(1, 6, 6, vec![0.5; 72]).expect("set");
    let err = Vae::fit_images(&p, &bad, TrainHooks::default()).expect_err("6×6");
    assert!(matches!(err, NnError::Shape { .. }), "{err}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let names: Vec<String> = vec!["a".into(), "b".into()];
    let err = Table::new(names.clone(), vec![1.0, f32::NAN]).expect_err("nan");
    assert_eq!(
        err.to_string(),
        "row 0, feature \"b\": NaN is not a finite number"
    );
    let err = Table::new(names.clone(), vec![1.0, 2.0, 3.0]).expect_err("ragged");
    assert!(err.to_string().contains("multiple of 2"), "{err}");
    let err = ImageSet::new(1, 2, 2, vec![0.0, 0.5, 2.0, 0.1]).expect_err("range");
    assert!(err.to_string().contains("[0, 1]"), "{err}");
    let err = VaeParams::from_json(&serde_json::json!({"z_dimm": 3})).expect_err("unknown");
    assert!(err.to_string().contains("z_dimm"), "{err}");
    let bad = VaeParams {
        validation_fraction: 1.5,
        ..VaeParams::default()
    };
    let one = Table::new(names.clone(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).expect("t");
    let err = Vae::fit_table(&bad, &one, TrainHooks::default()).expect_err("param");
    assert!(err.to_string().contains("validation_fraction"), "{err}");
    let empty = Table::new(names, vec![]).expect("empty table");
    let err =
        Vae::fit_table(&VaeParams::default(), &empty, TrainHooks::default()).expect_err("empty");
    assert!(matches!(err, NnError::EmptyData(_)), "{err}");

    // Scoring: wrong width, NaN.
    let data = normal_rows(64, 3);
    let p = VaeParams {
        epochs: 1,
        ..small_params()
    };
    let vae = Vae::fit_table(&p, &data, TrainHooks::default()).expect("fit");
    let err = vae.score(&[1.0; 7]).expect_err("7 values");
    assert!(err.to_string().contains("rows of 8 values"), "{err}");
    let mut row = data.row(0).to_vec();
    row[2] = f32::INFINITY;
    let err = vae.score(&row).expect_err("inf");
    assert!(err.to_string().contains("\"s2\""), "{err}");
    assert!(matches!(vae.heat_map(&row), Err(NnError::WrongKind { .. })));
    assert!(Vae::from_json("{\"kind\": \"vae\"}").is_err());

    // Image folders: empty, unreadable.
    let dir = tempfile::tempdir().expect("tmp");
    let err = gemba_nn::images::read_folder(dir.path(), 1, 8, 8).expect_err("empty folder");
    assert!(err.to_string().contains("no .png files"), "{err}");
    std::fs::write(dir.path().join("broken.png"), b"not a png").expect("write");
    let err = gemba_nn::images::read_folder(dir.path(), 1, 8, 8).expect_err("broken");
    assert!(
        matches!(&err, NnError::Image { path, .. } if path.ends_with("broken.png")),
        "{err}"
    );
}
