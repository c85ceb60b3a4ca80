//! End-to-end tests of `gemba train`, `gemba predict` and the model registry of the server.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, run_gemba};

/// Two overlapping Gaussian clouds (fault: shifted in `temp` and `vib`; `noise` carries nothing),
/// from a fixed linear congruential generator so the file is the same on every run.
fn write_blobs(path: &std::path::Path, rows: usize) {
    let mut state = 12345u64;
    let mut unit = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut normal = || {
        let (u1, u2) = (unit(), unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let mut out = String::from("ts,temp,vib,noise,state\n");
    for i in 0..rows {
        let fault = i % 3 == 0;
        let shift = if fault { 2.0 } else { 0.0 };
        out.push_str(&format!(
            "{},{:.5},{:.5},{:.5},{}\n",
            1_700_000_000_000i64 + i as i64 * 1000,
            60.0 + 5.0 * (normal() + shift),
            1.0 + 0.2 * (normal() + shift),
            normal(),
            if fault { "fault" } else { "ok" }
        ));
    }
    std::fs::write(path, out).unwrap();
}

fn accuracy_line(text: &str) -> f64 {
    text.split("accuracy ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {text}"))
}

#[test]
fn train_predict_and_explain_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("blobs.csv");
    write_blobs(&data, 600);
    let d = data.to_str().unwrap();
    for (model, extra) in [
        ("logreg", vec![]),
        ("svm", vec!["--kernel", "rbf", "--probability"]),
        ("linear_svm", vec![]),
    ] {
        let out = dir.path().join(format!("{model}.json"));
        let mut args = vec![
            "train",
            "--model",
            model,
            "--data",
            d,
            "--target",
            "state",
            "--drop",
            "ts",
            "--validation",
            "0.25",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, text) = run_gemba(&args);
        assert!(ok, "{model}: {text}");
        // Two clouds 2σ apart: the Bayes accuracy is about 0.84.
        let acc = accuracy_line(&text);
        assert!(
            (0.75..=1.0).contains(&acc),
            "{model}: accuracy {acc}\n{text}"
        );
        assert!(text.contains("validation"), "{text}");
        // noise carries no information: it is the least important feature.
        let imp: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("feature importance"))
            .skip(1)
            .take(3)
            .collect();
        assert!(
            imp.last().unwrap().trim_start().starts_with("noise"),
            "{model}: {imp:?}"
        );

        let (ok, text) = run_gemba(&[
            "predict",
            "--model",
            out.to_str().unwrap(),
            "--data",
            d,
            "--explain",
            "2",
            "--target",
            "state",
        ]);
        assert!(ok, "{text}");
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("row,predicted"), "{header}");
        assert!(header.ends_with("explanation"), "{header}");
        let first = lines.next().unwrap();
        assert!(first.contains("temp=") || first.contains("vib="), "{first}");
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(",fault,") || l.contains(",ok,"))
                .count(),
            600
        );
        assert!(text.contains("metrics on"), "{text}");
    }
}

#[test]
fn bad_training_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.csv");
    std::fs::write(&p, "a,b,y\n1,2,ok\n3,x,fault\n").unwrap();
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "logreg",
        "--data",
        p.to_str().unwrap(),
        "--target",
        "y",
    ]);
    assert!(!ok);
    assert!(text.contains("line 3") && text.contains('b'), "{text}");
    std::fs::write(&p, "a,b,y\n1,2,ok\n3,4,ok\n").unwrap();
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "svm",
        "--data",
        p.to_str().unwrap(),
        "--target",
        "y",
    ]);
    assert!(!ok);
    assert!(text.to_lowercase().contains("one class"), "{text}");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "forest",
        "--data",
        p.to_str().unwrap(),
        "--target",
        "y",
    ]);
    assert!(!ok);
    assert!(
        text.contains("use logreg, svm, linear_svm, vae, gan or dcgan"),
        "{text}"
    );
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "logreg",
        "--data",
        p.to_str().unwrap(),
        "--target",
        "z",
    ]);
    assert!(!ok);
    assert!(text.contains("target column"), "{text}");
}

#[test]
fn models_are_registered_versioned_and_activated_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let server = srv.url("");
    let data = dir.path().join("blobs.csv");
    write_blobs(&data, 300);
    for _ in 0..2 {
        let (ok, text) = run_gemba(&[
            "train",
            "--model",
            "logreg",
            "--data",
            data.to_str().unwrap(),
            "--target",
            "state",
            "--drop",
            "ts",
            "--out",
            dir.path().join("m.json").to_str().unwrap(),
            "--register",
            "m1-health",
            "--asset",
            "s1/a1/l1/m1",
            "--activate",
            "--server",
            &server,
        ]);
        assert!(ok, "{text}");
    }
    let (s, v) = srv.get_json("/api/v1/models");
    assert_eq!(s, 200);
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{v}");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(
        versions[1]["features"],
        serde_json::json!(["temp", "vib", "noise"])
    );
    assert_eq!(v["active"][0]["version"], 2);
    // Back to version 1; the artefact of a version is served as saved.
    let (ok, text) = run_gemba(&[
        "models",
        "activate",
        "m1-health@1",
        "--asset",
        "s1/a1/l1/m1",
        "--server",
        &server,
    ]);
    assert!(ok, "{text}");
    let (_, v) = srv.get_json("/api/v1/models");
    assert_eq!(v["active"][0]["version"], 1);
    let (ok, text) = run_gemba(&["models", "list", "--server", &server]);
    assert!(
        ok && text.contains("m1-health") && text.contains("active: s1/a1/l1/m1"),
        "{text}"
    );
    let (ok, text) = run_gemba(&[
        "predict",
        "--model",
        "m1-health@2",
        "--data",
        data.to_str().unwrap(),
        "--server",
        &server,
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.lines().count(), 301);
    // Bad requests.
    let (s, _) = srv.post(
        "/api/v1/models/m1-health/9/activate?asset=s1/a1/l1/m1",
        "application/json",
        b"",
    );
    assert_eq!(s, 404);
    let (s, e) = srv.post(
        "/api/v1/models?name=x",
        "application/json",
        b"{\"kind\": 1}",
    );
    assert_eq!(s, 422, "{e}");
    let (s, e) = srv.post("/api/v1/models?name=bad%20name", "application/json", b"{}");
    assert_eq!(s, 422, "{e}");
    let (s, e) = srv.post(
        "/api/v1/models?name=x&asset=s1/nowhere",
        "application/json",
        std::fs::read(dir.path().join("m.json")).unwrap().as_slice(),
    );
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("unknown asset"), "{e}");
    // An artefact whose parts do not fit together (here: weights for one feature too many) is
    // refused at the door, not stored to fail (or, before, panic) when a rule scores with it.
    let mut tampered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m.json")).unwrap()).unwrap();
    tampered["model"]["logistic"]["coef"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(1.0));
    let (s, e) = srv.post(
        "/api/v1/models?name=x",
        "application/json",
        tampered.to_string().as_bytes(),
    );
    assert_eq!(s, 422, "{e}");
    assert!(e.to_string().contains("inconsistent artefact"), "{e}");
    // The registry survives a restart.
    let (http, mqtt, v5, cfg) = (srv.http, srv.mqtt, srv.mqtt_v5, srv.config.clone());
    let mut srv = srv;
    srv.stop();
    let srv = Server::restart(dir.path(), cfg, http, mqtt, v5);
    let (_, v) = srv.get_json("/api/v1/models");
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
}
