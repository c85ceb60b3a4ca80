//! GAN behaviour on tiny fixed-seed sets: shapes, conditional generation that moves toward the
//! class, save/load identity, discriminator scores, bad input; the DCGAN's shapes; image folders.

use gemba_nn::gan::{Dcgan, GanParams, TabularGan};
use gemba_nn::metrics::mmd2;
use gemba_nn::{ImageSet, NnError, Table, TrainHooks};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Class 0 around (0, 0, 0), class 1 around (5, −5, 5): 3 features.
fn two_classes(n0: usize, n1: usize) -> (Table, Vec<usize>) {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(12345);
    let mut unif = || rng.r#gen::<f32>() - 0.5;
    for i in 0..n0 + n1 {
        let c = usize::from(i >= n0);
        let m = if c == 0 {
            [0.0, 0.0, 0.0]
        } else {
            [5.0, -5.0, 5.0]
        };
        for mj in m {
            data.push(mj + unif());
        }
        labels.push(c);
    }
    (
        Table::new(vec!["a".into(), "b".into(), "c".into()], data).expect("table"),
        labels,
    )
}

/// A GAN of the classes ok and fault that ran all its epochs with finite losses.
fn fit_checked(p: &GanParams, t: &Table, y: &[usize]) -> TabularGan {
    let gan = TabularGan::fit(
        p,
        t,
        y,
        vec!["ok".into(), "fault".into()],
        TrainHooks::default(),
    )
    .expect("fit");
    assert_eq!(gan.history.len(), p.epochs);
    assert!(
        gan.history
            .iter()
            .all(|h| h.loss.is_finite() && h.part_a.is_finite())
    );
    gan
}

#[test]
fn conditional_gan_generates_each_class_and_round_trips() {
    let (t, y) = two_classes(240, 40);
    let p = GanParams {
        z_dim: 4,
        hidden: 32,
        epochs: 60,
        batch_size: 64,
        learning_rate: 2e-3,
        seed: 5,
        ..GanParams::default()
    };
    let gan = fit_checked(&p, &t, &y);
    let rare = gan
        .sample(gan.class_id("fault").expect("id"), 200, 1)
        .expect("sample");
    assert_eq!(rare.len(), 600);
    // Generated "fault" rows sit near the fault mean, far from the normal one.
    let mean: Vec<f32> = (0..3)
        .map(|j| rare.iter().skip(j).step_by(3).sum::<f32>() / 200.0)
        .collect();
    assert!(
        (mean[0] - 5.0).abs() < 1.5 && (mean[1] + 5.0).abs() < 1.5,
        "{mean:?}"
    );
    // MMD: generated faults are closer to real faults than to real normal rows.
    let real_fault: Vec<f32> = t.data()[240 * 3..].to_vec();
    let real_ok: Vec<f32> = t.data()[..120 * 3].to_vec();
    assert!(mmd2(&real_fault, &rare, 3, Some(2.0)) < mmd2(&real_ok, &rare, 3, Some(2.0)));
    // Save/load identity.
    let back = TabularGan::from_json(&gan.to_json().expect("json")).expect("load");
    assert_eq!(
        back.sample(1, 20, 9).expect("s"),
        gan.sample(1, 20, 9).expect("s")
    );
    let s1 = gan.discriminator_score(t.data(), 0).expect("score");
    assert_eq!(s1.len(), 280);
    assert_eq!(back.discriminator_score(t.data(), 0).expect("score"), s1);
    // Bad input.
    assert!(matches!(gan.sample(2, 1, 0), Err(NnError::Shape { .. })));
    assert!(gan.discriminator_score(&[1.0, 2.0], 0).is_err());
    assert!(gan.discriminator_score(&[1.0, f32::NAN, 0.0], 0).is_err());
    let err = TabularGan::fit(
        &p,
        &t,
        &y[..10],
        vec!["ok".into(), "fault".into()],
        TrainHooks::default(),
    )
    .expect_err("labels");
    assert!(err.to_string().contains("280 labels"), "{err}");
    assert!(gemba_nn::Vae::from_json(&gan.to_json().expect("json")).is_err());
}

/// The Wasserstein loss with gradient penalty: the critic's estimate stays finite, generated rows
/// of the rare class sit at its mean, the option round-trips, and bad settings are named.
#[test]
fn wgan_gp_generates_each_class() {
    let (t, y) = two_classes(240, 40);
    let p = GanParams {
        z_dim: 4,
        hidden: 32,
        epochs: 400,
        batch_size: 64,
        learning_rate: 1e-3,
        beta1: 0.0,
        seed: 5,
        loss: "wgan-gp".into(),
        n_critic: 5,
        ..GanParams::default()
    };
    let gan = fit_checked(&p, &t, &y);
    // Each class's generated rows: their mean nearer the class's own centre than the other's,
    // and closer to the class's real rows than to the other class's by MMD. (Tighter bounds on
    // the mean, as the non-saturating test uses, do not hold for a Wasserstein GAN on 40 rows of
    // the rare class: its generated mean wanders by about 2 around the real one from seed to
    // seed and with the matrix kernels of the CPU.)
    let centres = [[0.0f32, 0.0, 0.0], [5.0, -5.0, 5.0]];
    let real = [t.data()[..240 * 3].to_vec(), t.data()[240 * 3..].to_vec()];
    for class in [0usize, 1] {
        let rows = gan.sample(class, 200, 1).expect("sample");
        let mean: Vec<f32> = (0..3)
            .map(|j| rows.iter().skip(j).step_by(3).sum::<f32>() / 200.0)
            .collect();
        let dist = |c: &[f32; 3]| -> f32 {
            mean.iter()
                .zip(c)
                .map(|(m, c)| (m - c).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        assert!(
            dist(&centres[class]) < dist(&centres[1 - class]),
            "class {class}: generated mean {mean:?}"
        );
        assert!(
            mmd2(&real[class], &rows, 3, Some(2.0)) < mmd2(&real[1 - class], &rows, 3, Some(2.0)),
            "class {class}: generated rows nearer the other class"
        );
    }
    let back = TabularGan::from_json(&gan.to_json().expect("json")).expect("load");
    assert_eq!(back.params.loss, "wgan-gp");
    for (bad, field) in [
        (
            GanParams {
                loss: "hinge".into(),
                ..p.clone()
            },
            "loss",
        ),
        (
            GanParams {
                gp_lambda: 0.0,
                ..p.clone()
            },
            "gp_lambda",
        ),
        (
            GanParams {
                n_critic: 0,
                ..p.clone()
            },
            "n_critic",
        ),
    ] {
        let err = TabularGan::fit(
            &bad,
            &t,
            &y,
            vec!["ok".into(), "fault".into()],
            TrainHooks::default(),
        )
        .expect_err(field);
        assert!(err.to_string().contains(field), "{err}");
    }
    let images = ImageSet::new(3, 16, 16, vec![0.5; 4 * 3 * 16 * 16]).expect("images");
    let err = Dcgan::fit(&p, &images, TrainHooks::default()).expect_err("dcgan wgan");
    assert!(err.to_string().contains("tabular GAN only"), "{err}");
}

#[test]
fn dcgan_has_the_seed_shapes_and_round_trips() {
    let n = 8;
    let data: Vec<f32> = (0..n * 3 * 16 * 16)
        .map(|i| ((i * 7) % 255) as f32 / 255.0)
        .collect();
    let set = ImageSet::new(3, 16, 16, data).expect("set");
    let p = GanParams {
        z_dim: 8,
        epochs: 2,
        batch_size: 4,
        ..GanParams::default()
    };
    let g = Dcgan::fit(&p, &set, TrainHooks::default()).expect("fit");
    assert_eq!(g.history.len(), 2);
    let imgs = g.sample(3, 0).expect("sample");
    assert_eq!(
        (imgs.n, imgs.channels, imgs.height, imgs.width),
        (3, 3, 16, 16)
    );
    assert_eq!(g.discriminator_score(&set).expect("d").len(), n);
    let back = Dcgan::from_json(&g.to_json().expect("json")).expect("load");
    assert_eq!(back.sample(3, 0).expect("s"), imgs);
    let small = ImageSet::new(3, 8, 8, vec![0.5; 2 * 3 * 64]).expect("set");
    assert!(matches!(
        Dcgan::fit(&p, &small, TrainHooks::default()),
        Err(NnError::Shape { .. })
    ));
}

#[test]
fn image_folders_are_read_resized_and_scaled() {
    let dir = tempfile::tempdir().expect("tmp");
    for (i, v) in [0u8, 255].iter().enumerate() {
        let img = image::GrayImage::from_pixel(10, 6, image::Luma([*v]));
        img.save(dir.path().join(format!("img{i}.png")))
            .expect("save");
    }
    std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
    let (set, files) = gemba_nn::images::read_folder(dir.path(), 1, 4, 8).expect("read");
    assert_eq!(files.len(), 2);
    assert_eq!((set.n, set.channels, set.height, set.width), (2, 1, 4, 8));
    assert!(set.image(0).iter().all(|&v| v == 0.0));
    assert!(set.image(1).iter().all(|&v| v == 1.0));
    let (rgb, _) = gemba_nn::images::read_folder(dir.path(), 3, 4, 4).expect("rgb");
    assert_eq!(rgb.dim(), 48);
}
