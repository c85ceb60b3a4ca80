//! End-to-end tests of `gemba train --model vae|gan|dcgan`, `gemba predict` with a VAE, and VAE
//! artefacts in the server's model registry.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, run_gemba};

/// Normal rows: temp and vib move together (a 1-d process); faults break the relation.
fn write_sensors(path: &std::path::Path, rows: usize) {
    let mut state = 777u64;
    let mut unit = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut out = String::from("ts,temp,vib,pressure,state\n");
    for i in 0..rows {
        let fault = i % 5 == 0;
        let u = unit() * 4.0 - 2.0;
        let (t, v, p) = (60.0 + 5.0 * u, 1.0 + 0.2 * u, 3.0 - 0.5 * u);
        let v = if fault {
            v + 0.8
        } else {
            v + 0.01 * (unit() - 0.5)
        };
        out.push_str(&format!(
            "{},{t:.4},{v:.4},{p:.4},{}\n",
            i,
            if fault { "fault" } else { "ok" }
        ));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn vae_trains_on_normal_rows_scores_explains_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s.csv");
    write_sensors(&data, 500);
    let out = dir.path().join("vae.json");
    let ckpt = dir.path().join("vae.ckpt");
    let d = data.to_str().unwrap();
    let train = |epochs: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--model",
            "vae",
            "--data",
            d,
            "--target",
            "state",
            "--normal",
            "ok",
            "--drop",
            "ts",
            "--epochs",
            epochs,
            "--seed",
            "3",
            "--batch-size",
            "32",
            "--param",
            "hidden=[16]",
            "--param",
            "z_dim=2",
            "--param",
            "learning_rate=0.005",
            "--patience",
            "0",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        run_gemba(&args)
    };
    let (ok, text) = train("40", false);
    assert!(ok, "{text}");
    assert!(
        text.contains("epoch   40:") && text.contains("threshold"),
        "{text}"
    );
    let first_run: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("epoch"))
        .map(|l| l.split("  (").next().unwrap().to_owned())
        .collect();
    // A finished run resumed with the same checkpoint has nothing left to train; the curve
    // from the checkpoint is the same.
    let (ok, text) = train("40", true);
    assert!(ok, "{text}");
    assert!(!text.contains("epoch    1:"), "{text}");
    assert_eq!(first_run.len(), 40);

    let (ok, text) = run_gemba(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--data",
        d,
        "--explain",
        "1",
    ]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(",true,") || l.contains(",false,"))
        .collect();
    assert_eq!(lines.len(), 500, "{text}");
    // Faults (every 5th row) are flagged, mostly because of vib; normal rows are mostly not.
    let flagged = |keep: &dyn Fn(usize) -> bool| {
        let rows: Vec<&&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(_, l)| l)
            .collect();
        rows.iter().filter(|l| l.contains(",true,")).count() as f64 / rows.len() as f64
    };
    let fault_rate = flagged(&|i| i % 5 == 0);
    let normal_rate = flagged(&|i| i % 5 != 0);
    assert!(
        fault_rate > 0.9 && normal_rate < 0.1,
        "faults {fault_rate} normal {normal_rate}"
    );
    assert!(
        lines[0].ends_with(",true,vib") || lines[0].contains(",true,vib="),
        "{}",
        lines[0]
    );
}

#[test]
fn vae_artefacts_go_into_the_model_registry() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let data = dir.path().join("s.csv");
    write_sensors(&data, 200);
    let out = dir.path().join("vae.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "vae",
        "--data",
        data.to_str().unwrap(),
        "--drop",
        "ts,state",
        "--epochs",
        "3",
        "--param",
        "hidden=[8]",
        "--param",
        "z_dim=2",
        "--out",
        out.to_str().unwrap(),
        "--register",
        "m1-vae",
        "--server",
        &srv.url(""),
    ]);
    assert!(ok, "{text}");
    let (s, v) = srv.get_json("/api/v1/models");
    assert_eq!(s, 200);
    assert_eq!(v["versions"][0]["kind"], "vae", "{v}");
    assert_eq!(
        v["versions"][0]["features"],
        serde_json::json!(["temp", "vib", "pressure"])
    );
    let (ok, text) = run_gemba(&[
        "predict",
        "--model",
        "m1-vae@1",
        "--data",
        data.to_str().unwrap(),
        "--server",
        &srv.url(""),
    ]);
    assert!(ok, "{text}");
    assert!(text.starts_with("row,score,anomaly"), "{text}");
}

#[test]
fn image_folders_train_a_conv_vae_and_a_dcgan() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for i in 0..12u32 {
        let img = image::GrayImage::from_fn(10, 10, |x, y| {
            image::Luma([if (x + y + i) % 3 == 0 { 220 } else { 30 }])
        });
        img.save(imgs.join(format!("c{i:02}.png"))).unwrap();
    }
    let out = dir.path().join("img-vae.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "vae",
        "--data",
        imgs.to_str().unwrap(),
        "--size",
        "8x8",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--param",
        "hidden=[16]",
        "--param",
        "z_dim=2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("12 images, 8×8×1"), "{text}");
    let (ok, text) = run_gemba(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--data",
        imgs.to_str().unwrap(),
        "--explain",
        "2",
    ]);
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains(".png,")).count(),
        12,
        "{text}"
    );
    assert!(text.contains("c0_y"), "{text}");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "dcgan",
        "--data",
        imgs.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "6",
        "--param",
        "z_dim=8",
        "--out",
        dir.path().join("g.json").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("trained dcgan"), "{text}");

    // New images: PNG files of the models' sizes.
    let gen_dir = dir.path().join("generated");
    let (ok, text) = run_gemba(&[
        "generate",
        "--model",
        dir.path().join("g.json").to_str().unwrap(),
        "-n",
        "4",
        "--out",
        gen_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let img = image::open(gen_dir.join("generated-00004.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    assert!(matches!(img, image::DynamicImage::ImageRgb8(_)));
    let vae_dir = dir.path().join("vae-generated");
    let (ok, text) = run_gemba(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "-n",
        "3",
        "--out",
        vae_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read_dir(&vae_dir).unwrap().count(), 3);
    let img = image::open(vae_dir.join("generated-00001.png")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 8));
    assert!(matches!(img, image::DynamicImage::ImageLuma8(_)));
    let (ok, text) = run_gemba(&[
        "generate",
        "--model",
        dir.path().join("g.json").to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("--out DIR"), "{text}");
}

#[test]
fn conditional_gan_trains_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("s.csv");
    write_sensors(&data, 200);
    let out = dir.path().join("gan.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "gan",
        "--data",
        data.to_str().unwrap(),
        "--target",
        "state",
        "--drop",
        "ts",
        "--epochs",
        "3",
        "--param",
        "hidden=16",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("classes [\"fault\", \"ok\"]"), "{text}");
    let json = std::fs::read_to_string(&out).unwrap();
    assert_eq!(gemba_nn::artifact_kind(&json).as_deref(), Some("gan"));
    let (ok, text) = run_gemba(&[
        "predict",
        "--model",
        out.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("gemba generate"), "{text}");

    // New rows: 50 of each class in a CSV, the same again with the same seed.
    let generate = |file: &std::path::Path, seed: &str| {
        let (ok, text) = run_gemba(&[
            "generate",
            "--model",
            out.to_str().unwrap(),
            "-n",
            "50",
            "--seed",
            seed,
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(ok, "{text}");
        std::fs::read_to_string(file).unwrap()
    };
    let a = generate(&dir.path().join("a.csv"), "1");
    let header = a.lines().next().unwrap();
    assert!(
        header.ends_with(",class") && !header.contains("state"),
        "{header}"
    );
    assert_eq!(a.lines().filter(|l| l.ends_with(",fault")).count(), 50);
    assert_eq!(a.lines().filter(|l| l.ends_with(",ok")).count(), 50);
    assert_eq!(a, generate(&dir.path().join("b.csv"), "1"));
    assert_ne!(a, generate(&dir.path().join("c.csv"), "2"));
    let (ok, text) = run_gemba(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "--class",
        "fault",
        "-n",
        "5",
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.lines().filter(|l| l.ends_with(",fault")).count(), 5);
    for (args, needle) in [
        (vec!["--class", "nope"], "\"fault\""),
        (vec!["-n", "0"], "--count 0"),
    ] {
        let mut all = vec!["generate", "--model", out.to_str().unwrap()];
        all.extend(args);
        let (ok, text) = run_gemba(&all);
        assert!(!ok && text.contains(needle), "{text}");
    }
}

#[test]
fn bad_input_for_the_deep_models_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (ok, text) = run_gemba(&["train", "--model", "vae", "--data", empty.to_str().unwrap()]);
    assert!(!ok && text.contains("no .png files"), "{text}");
    std::fs::write(empty.join("x.png"), b"garbage").unwrap();
    let (ok, text) = run_gemba(&["train", "--model", "vae", "--data", empty.to_str().unwrap()]);
    assert!(
        !ok && text.contains("x.png") && text.contains("cannot read the image"),
        "{text}"
    );
    let csv = dir.path().join("nan.csv");
    std::fs::write(&csv, "a,b\n1,2\n3,NaN\n").unwrap();
    let (ok, text) = run_gemba(&["train", "--model", "vae", "--data", csv.to_str().unwrap()]);
    assert!(
        !ok && text.contains("line 3") && text.contains("\"b\""),
        "{text}"
    );
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "vae",
        "--data",
        csv.to_str().unwrap(),
        "--resume",
    ]);
    assert!(!ok && text.contains("--checkpoint"), "{text}");
    let (ok, text) = run_gemba(&["train", "--model", "gan", "--data", csv.to_str().unwrap()]);
    assert!(!ok && text.contains("--target"), "{text}");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "vae",
        "--data",
        csv.to_str().unwrap(),
        "--param",
        "zdim=3",
    ]);
    assert!(!ok && text.contains("zdim"), "{text}");
}

/// An ELPV-like folder: `labels.csv` (path, defect probability, type) and 32 × 32 grey cells;
/// functional cells are plain, defective ones crossed by a dark band.
fn write_cells(dir: &std::path::Path, functional: u32, defective: u32, unsure: u32) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut labels = String::new();
    for i in 0..functional + defective + unsure {
        let (p, band) = if i < functional {
            ("0.0", false)
        } else if i < functional + defective {
            ("1.0", true)
        } else {
            ("0.3333333333333333", true)
        };
        let img = image::GrayImage::from_fn(32, 32, |x, y| {
            let dark = band && (12..20).contains(&y);
            image::Luma([if dark {
                20
            } else {
                190 + ((x * 7 + y * 3 + i) % 20) as u8
            }])
        });
        let name = format!("images/cell{i:04}.png");
        img.save(dir.join(&name)).unwrap();
        labels.push_str(&format!("{name}  {p}  mono\n"));
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

#[test]
fn elpv_gan_evaluation_runs_on_a_labelled_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_cells(dir.path(), 16, 8, 2);
    let d = dir.path().to_str().unwrap();
    let (ok, text) = run_gemba(&["eval", "elpv-gan", "--dir", d, "--epochs", "2"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("8 defective (p ≥ 2/3) and 16 functional cells")
            && text.contains("2 with p = 1/3 left out")
            && text.contains("Train / test: defective 6 / 2, functional 12 / 4"),
        "{text}"
    );
    // The classes differ by a band across the cell: the pixel classifier trained on the real
    // cells gets all 6 held-out cells right.
    assert!(
        text.contains("| real cells (TRTR) | 18 | 100.0 % | 100.0 % | 1.000 |"),
        "{text}"
    );
    assert!(
        text.contains("| generated cells (TSTR) | 18 |")
            && text.contains("| real + generated | 36 |"),
        "{text}"
    );
    assert!(
        text.contains("| defective |") && text.contains("AUROC"),
        "{text}"
    );

    // Without defective cells there is nothing to compare.
    let only = tempfile::tempdir().unwrap();
    write_cells(only.path(), 6, 0, 0);
    let (ok, text) = run_gemba(&["eval", "elpv-gan", "--dir", only.path().to_str().unwrap()]);
    assert!(
        !ok && text.contains("6 functional and 0 defective cells: both are needed"),
        "{text}"
    );
    let (ok, text) = run_gemba(&["eval", "elpv-gan", "--dir", d, "--test-fraction", "1"]);
    assert!(!ok && text.contains("--test-fraction"), "{text}");
}
