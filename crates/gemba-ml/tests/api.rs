//! Toy problems solved exactly, the pipeline pieces, artefact round trips and every bad input.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use gemba_ml::preprocess::window_feature_names;
use gemba_ml::{
    Classifier, Dataset, Fit, ImputeStrategy, Imputer, KernelKind, LinearSvcParams, LogisticParams,
    Matrix, MlError, ModelArtifact, ModelKind, ParamGuard, Scoring, SvcParams, WindowSpec,
    grid_search, load_csv, stratified_kfold, train, window_features,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

fn toy() -> Dataset {
    // Separable in x0: class 1 iff x0 > 0; x1 is noise.
    let rows = vec![
        vec![-2.0, 0.3],
        vec![-1.0, -0.5],
        vec![-1.5, 0.9],
        vec![-3.0, -0.1],
        vec![1.0, 0.2],
        vec![2.0, -0.7],
        vec![1.5, 0.4],
        vec![3.0, 0.0],
    ];
    Dataset::from_xy(
        Matrix::from_rows(&rows).unwrap(),
        vec![0, 0, 0, 0, 1, 1, 1, 1],
    )
    .unwrap()
}

/// Blobs around (±2, ±2) for four classes, deterministic.
fn blobs(n_per: usize) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let centers = [(-2.0, -2.0), (2.0, -2.0), (-2.0, 2.0), (2.0, 2.0)];
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for (c, (cx, cy)) in centers.iter().enumerate() {
        for _ in 0..n_per {
            rows.push(vec![
                cx + rng.r#gen::<f64>() - 0.5,
                cy + rng.r#gen::<f64>() - 0.5,
                rng.r#gen::<f64>(),
            ]);
            y.push(c);
        }
    }
    Dataset::new(
        Matrix::from_rows(&rows).unwrap(),
        y,
        vec!["a".into(), "b".into(), "noise".into()],
        vec!["ok".into(), "f1".into(), "f2".into(), "f3".into()],
    )
    .unwrap()
}

#[test]
fn separable_toy_solved_exactly() {
    let d = toy();
    let lr = LogisticParams::new()
        .c(1e4)
        .check()
        .unwrap()
        .fit(&d)
        .unwrap();
    assert_eq!(lr.predict(&d.x).unwrap(), d.y);
    let svc = SvcParams::new()
        .kernel(KernelKind::Linear)
        .c(1e3)
        .tol(1e-8)
        .check()
        .unwrap()
        .fit(&d)
        .unwrap();
    assert_eq!(svc.predict(&d.x).unwrap(), d.y);
    // Hard margin: the closest pair (−1, −0.5), (1, 0.2) are the support vectors, so
    // w = ±2·Δ/‖Δ‖² with Δ = (2, 0.7), and both sit exactly at decision ±1.
    let w = svc.pairs[0].w.as_ref().unwrap();
    let n2 = 2.0f64.powi(2) + 0.7f64.powi(2);
    assert!(
        (w[0].abs() - 4.0 / n2).abs() < 1e-6 && (w[1].abs() - 1.4 / n2).abs() < 1e-6,
        "{w:?}"
    );
    let mut s = [0.0; 2];
    svc.scores_row(&[1.0, 0.2], &mut s);
    assert!((s[1] - 1.0).abs() < 1e-6, "{s:?}");
    svc.scores_row(&[-1.0, -0.5], &mut s);
    assert!((s[1] + 1.0).abs() < 1e-6, "{s:?}");
    let rbf = SvcParams::new().c(100.0).check().unwrap().fit(&d).unwrap();
    assert_eq!(rbf.predict(&d.x).unwrap(), d.y);
    for dual in [true, false] {
        let mut p = LinearSvcParams::new().c(100.0);
        p.dual = Some(dual);
        p.probability = true;
        let m = p.check().unwrap().fit(&d).unwrap();
        assert_eq!(m.predict(&d.x).unwrap(), d.y, "dual={dual}");
        let pr = m.predict_proba(&d.x).unwrap();
        for (i, r) in pr.iter_rows().enumerate() {
            assert!(r[d.y[i]] > 0.5, "dual={dual} row {i}: {r:?}");
        }
    }
}

#[test]
fn multiclass_blobs() {
    let d = blobs(30);
    for kind in [ModelKind::Logistic, ModelKind::Svc, ModelKind::LinearSvc] {
        let a = train(kind, &json!({}), &d).unwrap();
        assert_eq!(a.predict(&d.x).unwrap(), d.y, "{kind:?}");
        let m = a.metrics.as_ref().unwrap();
        assert_eq!(m.report.accuracy, 1.0);
        assert_eq!(m.report.detection.false_alarm_rate, 0.0);
        assert_eq!(m.report.detection.detection_rate, 1.0);
        // "noise" is the least important feature.
        assert_eq!(a.importance().last().unwrap().0, "noise", "{kind:?}");
    }
    for kind in [ModelKind::Svc, ModelKind::LinearSvc] {
        let a = train(kind, &json!({"probability": true}), &d).unwrap();
        let p = a.predict_proba(&d.x).unwrap();
        for (i, r) in p.iter_rows().enumerate() {
            assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert_eq!(gemba_ml::model::argmax(r), d.y[i], "{kind:?}");
        }
        assert!(a.metrics.as_ref().unwrap().report.brier.unwrap() < 0.1);
    }
    let a = train(ModelKind::Svc, &json!({"probability": true}), &d).unwrap();
    let p = a.predict_proba(&d.x).unwrap();
    for (i, r) in p.iter_rows().enumerate() {
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(gemba_ml::model::argmax(r), d.y[i]);
    }
}

#[test]
fn artifact_round_trip_is_bit_identical() {
    let d = blobs(25);
    let cases = [
        (ModelKind::Logistic, json!({"c": 0.5})),
        (
            ModelKind::Logistic,
            json!({"penalty": "l1", "c": 0.5, "class_weight": "balanced"}),
        ),
        (ModelKind::Svc, json!({"probability": true, "gamma": 0.7})),
        (
            ModelKind::Svc,
            json!({"kernel": "poly", "degree": 2, "coef0": 1.0}),
        ),
        (ModelKind::LinearSvc, json!({"loss": "hinge"})),
        (ModelKind::LinearSvc, json!({"probability": true})),
    ];
    let probe = Matrix::from_rows(&[
        vec![0.1, -0.3, 0.5],
        vec![1.9, 2.2, 0.1],
        vec![-7.0, 3.0, 1e3],
    ])
    .unwrap();
    for (kind, params) in cases {
        let a = train(kind, &params, &d).unwrap();
        let mut buf = Vec::new();
        a.save(&mut buf).unwrap();
        let b = ModelArtifact::load(&buf[..]).unwrap();
        assert_eq!(a, b, "{kind:?}");
        let c = ModelArtifact::from_json(&a.to_json().unwrap()).unwrap();
        assert_eq!(a, c);
        assert_eq!(a.predict(&probe).unwrap(), b.predict(&probe).unwrap());
        let (sa, sb) = (
            a.decision_scores(&probe).unwrap(),
            b.decision_scores(&probe).unwrap(),
        );
        let bits = |m: &Matrix| m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&sa), bits(&sb));
        match (a.predict_proba(&probe), b.predict_proba(&probe)) {
            (Ok(pa), Ok(pb)) => assert_eq!(bits(&pa), bits(&pb)),
            (Err(ea), Err(eb)) => assert_eq!(ea, eb),
            _ => panic!("probability support differs after load"),
        }
        assert_eq!(
            a.explain(probe.row(1), 2).unwrap(),
            b.explain(probe.row(1), 2).unwrap()
        );
        assert_eq!(a.data_fingerprint, d.fingerprint());
        // The recorded config retrains to the same model.
        let again = train(kind, &a.config["model"], &d).unwrap();
        assert_eq!(again.model, a.model, "{kind:?}");
    }
}

#[test]
fn explanations() {
    let d = toy();
    // Linear: exact contributions w·(z − mean) in standardised space; the top feature is x0.
    let a = train(ModelKind::Logistic, &json!({"c": 10.0}), &d).unwrap();
    let e = a.explain(&[2.5, 0.0], 1).unwrap();
    assert_eq!(e.class_name, "1");
    assert_eq!(e.top.len(), 1);
    assert_eq!(e.top[0].feature, "x0");
    assert!(e.top[0].contribution > 0.0);
    assert!(e.method.starts_with("exact linear"));
    let sc = a.scaler.as_ref().unwrap();
    let gemba_ml::FittedModel::Logistic(m) = &a.model else {
        panic!()
    };
    let z0 = (2.5 - sc.mean[0]) / sc.scale[0];
    assert!((e.top[0].contribution - m.coef[0] * z0).abs() < 1e-12);
    // contributions + intercept-at-baseline reproduce the logit
    let z1 = (0.0 - sc.mean[1]) / sc.scale[1];
    let logit = m.coef[0] * z0 + m.coef[1] * z1 + m.intercept[0];
    let at_mean = m.intercept[0]; // baseline is the standardised mean, 0
    assert!((e.top[0].contribution + e.rest + at_mean - logit).abs() < 1e-9);
    // The model-level explain: feature indices, same numbers.
    let (c, top) = m.explain(&[z0, z1], 2).unwrap();
    assert_eq!((c, top[0].0), (1, 0));
    assert!((top[0].1 - m.coef[0] * z0).abs() < 1e-12);
    assert!(m.explain(&[1.0], 1).is_err());
    // Kernel SVM: occlusion; x0 dominates.
    let s = train(ModelKind::Svc, &json!({"probability": true}), &d).unwrap();
    let e = s.explain(&[2.5, 0.0], 2).unwrap();
    assert_eq!(e.top[0].feature, "x0");
    assert!(e.method.starts_with("occlusion"));
    assert!(e.probabilities.is_some());
}

#[test]
fn shared_class_blocks_give_the_same_model() {
    // Four classes: within-class kernel rows are shared between pairs unless the cache budget
    // is too small for the blocks; both paths must give bit-identical models.
    let d = blobs(40);
    let shared = SvcParams::new().check().unwrap().fit(&d).unwrap();
    let mut p = SvcParams::new();
    p.cache_mb = 0.01;
    let plain = p.check().unwrap().fit(&d).unwrap();
    assert_eq!(shared, plain);
}

#[test]
fn svc_occlusion_matches_brute_force() {
    let d = blobs(15);
    for params in [
        SvcParams::new(),
        SvcParams::new().probability(true),
        SvcParams::new().kernel(KernelKind::Poly).coef0(1.0),
    ] {
        let m = params.check().unwrap().fit(&d).unwrap();
        let x = [0.7, -1.3, 0.2];
        let (c, fast) = m.contributions(&x);
        let k = m.n_classes();
        let score = |z: &[f64]| {
            let mut s = vec![0.0; k];
            if m.has_probability() {
                m.proba_row(z, &mut s).unwrap();
            } else {
                m.scores_row(z, &mut s);
            }
            s[c]
        };
        for j in 0..3 {
            let mut z = x.to_vec();
            z[j] = m.baseline()[j];
            let slow = score(&x) - score(&z);
            assert!((fast[j] - slow).abs() < 1e-9, "{j}: {} vs {slow}", fast[j]);
        }
    }
}

#[test]
fn csv_loader() {
    let text = "time,temp,press,state\n1,20.5,1.0,ok\n2,,1.1,bad\n3,22.0,NaN,ok\n";
    let d = load_csv(
        text.as_bytes(),
        "state",
        Some(&["temp".into(), "press".into()]),
    )
    .unwrap();
    assert_eq!(d.feature_names, ["temp", "press"]);
    assert_eq!(d.class_names, ["bad", "ok"]);
    assert_eq!(d.y, [1, 0, 1]);
    assert!(d.x.row(1)[0].is_nan() && d.x.row(2)[1].is_nan());
    // numeric classes sort numerically
    let d = load_csv("a,y\n1,10\n2,9\n3,10\n".as_bytes(), "y", None).unwrap();
    assert_eq!(d.class_names, ["9", "10"]);
    // errors name line and column
    let e = load_csv("a,y\n1,0\nx1,1\n".as_bytes(), "y", None).unwrap_err();
    assert_eq!(
        e,
        MlError::Csv {
            line: 3,
            column: Some("a".into()),
            message: "\"x1\" is not a number".into()
        }
    );
    assert!(e.to_string().contains("line 3") && e.to_string().contains("\"a\""));
    let e = load_csv("a,y\n1,0\n".as_bytes(), "label", None).unwrap_err();
    assert!(matches!(e, MlError::Csv { line: 1, .. }), "{e}");
    let e = load_csv("a,y\n1,0\n".as_bytes(), "y", Some(&["b".into()])).unwrap_err();
    assert!(e.to_string().contains("\"b\""), "{e}");
    let e = load_csv("a,y\n1,0\n2\n".as_bytes(), "y", None).unwrap_err();
    assert!(matches!(e, MlError::Csv { line: 3, .. }), "{e}");
    let e = load_csv("a,y\n1,\n".as_bytes(), "y", None).unwrap_err();
    assert!(e.to_string().contains("empty target"), "{e}");
}

#[test]
fn imputation_and_nan_errors() {
    let x = Matrix::from_rows(&[
        vec![1.0, f64::NAN],
        vec![3.0, 4.0],
        vec![f64::NAN, 8.0],
        vec![5.0, 6.0],
    ])
    .unwrap();
    let names = vec!["a".to_string(), "b".to_string()];
    let mean = Imputer::fit(&x, ImputeStrategy::Mean, &names).unwrap();
    assert_eq!(mean.fill, [3.0, 6.0]);
    let med = Imputer::fit(&x, ImputeStrategy::Median, &names).unwrap();
    assert_eq!(med.fill, [3.0, 6.0]);
    let t = med.transform(&x).unwrap();
    assert_eq!(t.row(0), [1.0, 6.0]);
    let d = Dataset::from_xy(x, vec![0, 1, 0, 1]).unwrap();
    // Without imputation NaN is an error naming feature and row.
    let e = train(ModelKind::Logistic, &json!({}), &d).unwrap_err();
    assert_eq!(
        e.to_string(),
        "feature \"x1\" row 0 is NaN (NaN or infinite); impute or drop it"
    );
    let a = train(ModelKind::Logistic, &json!({"impute": "median"}), &d).unwrap();
    let p = a
        .predict_proba(&Matrix::from_rows(&[vec![f64::NAN, f64::NAN]]).unwrap())
        .unwrap();
    assert!(p.data.iter().all(|v| v.is_finite()));
    let e = a
        .predict(&Matrix::from_rows(&[vec![1.0, f64::INFINITY]]).unwrap())
        .unwrap_err();
    assert!(matches!(e, MlError::NonFinite { row: 0, .. }), "{e}");
    let all_nan = Matrix::from_rows(&[vec![f64::NAN], vec![f64::NAN]]).unwrap();
    assert!(Imputer::fit(&all_nan, ImputeStrategy::Mean, &["z".into()]).is_err());
}

#[test]
fn bad_inputs_are_precise_errors() {
    let d = toy();
    let empty = Dataset::from_xy(Matrix::zeros(0, 2), vec![]).unwrap();
    assert_eq!(
        LogisticParams::new()
            .check()
            .unwrap()
            .fit(&empty)
            .unwrap_err(),
        MlError::EmptyData
    );
    assert_eq!(
        train(ModelKind::Svc, &json!({}), &empty).unwrap_err(),
        MlError::EmptyData
    );
    let no_cols = Dataset::from_xy(Matrix::zeros(3, 0), vec![0, 1, 0]).unwrap();
    assert_eq!(
        LinearSvcParams::new()
            .check()
            .unwrap()
            .fit(&no_cols)
            .unwrap_err(),
        MlError::NoFeatures
    );
    let one = Dataset::new(
        d.x.clone(),
        vec![1; 8],
        d.feature_names.clone(),
        vec!["a".into(), "b".into()],
    )
    .unwrap();
    assert_eq!(
        SvcParams::new().check().unwrap().fit(&one).unwrap_err(),
        MlError::OneClass { class: "b".into() }
    );
    let mut inf = d.clone();
    inf.x.row_mut(5)[1] = f64::NEG_INFINITY;
    assert_eq!(
        LinearSvcParams::new()
            .check()
            .unwrap()
            .fit(&inf)
            .unwrap_err(),
        MlError::NonFinite {
            feature: "x1".into(),
            row: 5,
            value: f64::NEG_INFINITY
        }
    );
    let m = LogisticParams::new().check().unwrap().fit(&d).unwrap();
    let e = m.predict(&Matrix::zeros(1, 3)).unwrap_err();
    assert_eq!(
        e,
        MlError::ColumnMismatch {
            expected: 2,
            got: 3,
            context: String::new()
        }
    );
    let a = train(ModelKind::Logistic, &json!({}), &d).unwrap();
    assert!(matches!(
        a.predict(&Matrix::zeros(2, 5)).unwrap_err(),
        MlError::ColumnMismatch {
            expected: 2,
            got: 5,
            ..
        }
    ));
    assert!(matches!(
        a.explain(&[1.0], 3).unwrap_err(),
        MlError::ColumnMismatch { .. }
    ));
    // Shapes
    assert!(matches!(
        Matrix::new(2, 2, vec![1.0]),
        Err(MlError::LengthMismatch { .. })
    ));
    assert!(matches!(
        Dataset::from_xy(Matrix::zeros(2, 1), vec![0]),
        Err(MlError::LengthMismatch { .. })
    ));
    assert!(matches!(
        Dataset::new(
            Matrix::zeros(1, 1),
            vec![3],
            vec!["a".into()],
            vec!["x".into()]
        ),
        Err(MlError::BadClass {
            row: 0,
            id: 3,
            n_classes: 1
        })
    ));
    // Hyper-parameters: each names itself.
    let name = |e: MlError| match e {
        MlError::BadParam { name, .. } => name,
        other => panic!("{other}"),
    };
    assert_eq!(
        name(LogisticParams::new().c(-1.0).check().unwrap_err()),
        "c"
    );
    assert_eq!(
        name(
            LogisticParams::new()
                .c(1.0)
                .lambda(0.1)
                .check()
                .unwrap_err()
        ),
        "lambda"
    );
    assert_eq!(
        name(LogisticParams::new().lambda(f64::NAN).check().unwrap_err()),
        "lambda"
    );
    assert_eq!(
        name(LogisticParams::new().max_iter(0).check().unwrap_err()),
        "max_iter"
    );
    assert_eq!(name(SvcParams::new().c(0.0).check().unwrap_err()), "c");
    assert_eq!(
        name(
            SvcParams::new()
                .gamma(gemba_ml::Gamma::Value(-1.0))
                .check()
                .unwrap_err()
        ),
        "gamma"
    );
    assert_eq!(
        name(
            SvcParams::new()
                .kernel(KernelKind::Poly)
                .degree(0)
                .check()
                .unwrap_err()
        ),
        "degree"
    );
    let mut lp = LinearSvcParams::new().loss(gemba_ml::SvmLoss::Hinge);
    lp.dual = Some(false);
    assert_eq!(name(lp.check().unwrap_err()), "dual");
    assert_eq!(
        name(
            LogisticParams::new()
                .class_weight(gemba_ml::ClassWeight::Weights(vec![1.0, -2.0]))
                .check()
                .unwrap_err()
        ),
        "class_weight"
    );
    let three = gemba_ml::ClassWeight::Weights(vec![1.0, 2.0, 3.0]);
    assert_eq!(
        name(
            LogisticParams::new()
                .class_weight(three)
                .check()
                .unwrap()
                .fit(&d)
                .unwrap_err()
        ),
        "class_weight"
    );
    // JSON params
    let e = train(ModelKind::Svc, &json!({"C": 1.0}), &d).unwrap_err();
    assert!(e.to_string().contains("unknown field `C`"), "{e}");
    let e = train(ModelKind::Svc, &json!({"gamma": "fast"}), &d).unwrap_err();
    assert!(e.to_string().starts_with("hyper-parameter params"), "{e}");
    assert_eq!(
        name(train(ModelKind::Svc, &json!({"impute": "mode"}), &d).unwrap_err()),
        "impute"
    );
    assert_eq!(
        name(train(ModelKind::Svc, &json!({"standardize": 1}), &d).unwrap_err()),
        "standardize"
    );
    assert_eq!(
        name(train(ModelKind::Svc, &json!([1]), &d).unwrap_err()),
        "params"
    );
    assert_eq!(name("forest".parse::<ModelKind>().unwrap_err()), "kind");
    assert_eq!("lr".parse::<ModelKind>().unwrap(), ModelKind::Logistic);
    // NoProbability
    let s = train(ModelKind::Svc, &json!({}), &d).unwrap();
    assert_eq!(s.predict_proba(&d.x).unwrap_err(), MlError::NoProbability);
    // Artefacts
    assert!(matches!(
        ModelArtifact::from_json("{}"),
        Err(MlError::Artifact(_))
    ));
    let mut v: serde_json::Value = serde_json::from_str(&s.to_json().unwrap()).unwrap();
    v["version"] = json!(99);
    let e = ModelArtifact::from_json(&v.to_string()).unwrap_err();
    assert!(e.to_string().contains("format version 99"), "{e}");
    // Folds
    assert_eq!(name(stratified_kfold(&[0, 1], 1, 0).unwrap_err()), "folds");
    assert_eq!(name(stratified_kfold(&[0, 1], 3, 0).unwrap_err()), "folds");
    assert_eq!(name(d.split_by_time(1.5).unwrap_err()), "train_fraction");
}

#[test]
fn window_features_of_a_ramp() {
    let s: Vec<f64> = (0..10).map(|i| 2.0 * i as f64).collect();
    let spec = WindowSpec { window: 4, lags: 2 };
    let (m, names, start) = window_features(&[("t", &s)], spec).unwrap();
    assert_eq!(start, 3);
    assert_eq!(m.rows, 7);
    assert_eq!(names, window_feature_names("t", spec));
    assert_eq!(names[4], "t_slope");
    // window ending at t = 3: values 0, 2, 4, 6
    let r = m.row(0);
    assert_eq!(r[0], 3.0); // mean
    assert!((r[1] - 5.0f64.sqrt()).abs() < 1e-12); // population std
    assert_eq!((r[2], r[3]), (0.0, 6.0));
    assert!((r[4] - 2.0).abs() < 1e-12); // slope per sample
    assert_eq!((r[5], r[6], r[7]), (6.0, 4.0, 2.0)); // last, lag1, lag2
    assert!(window_features(&[("t", &s)], WindowSpec { window: 1, lags: 0 }).is_err());
    assert!(window_features(&[("t", &s), ("u", &s[..5])], spec).is_err());
}

#[test]
fn splits_folds_and_grid_search() {
    let d = blobs(20);
    let (a, b) = d.split_by_time(0.75).unwrap();
    assert_eq!((a.n_rows(), b.n_rows()), (60, 20));
    assert_eq!(a.x.row(0), d.x.row(0));
    assert_eq!(b.x.row(19), d.x.row(79));
    let folds = stratified_kfold(&d.y, 5, 1).unwrap();
    let mut seen = vec![0; d.n_rows()];
    for (tr, te) in &folds {
        assert_eq!(tr.len() + te.len(), 80);
        for c in 0..4 {
            assert_eq!(te.iter().filter(|&&i| d.y[i] == c).count(), 4);
        }
        te.iter().for_each(|&i| seen[i] += 1);
    }
    assert!(seen.iter().all(|&s| s == 1));
    let mut grid = BTreeMap::new();
    grid.insert("c".to_string(), vec![json!(0.001), json!(1.0)]);
    grid.insert("gamma".to_string(), vec![json!(0.1), json!("scale")]);
    let r = grid_search(
        ModelKind::Svc,
        &json!({}),
        &grid,
        &d,
        4,
        0,
        Scoring::Accuracy,
    )
    .unwrap();
    assert_eq!(r.results.len(), 4);
    assert!(r.best_score >= r.results.iter().map(|p| p.mean).fold(0.0, f64::max) - 1e-12);
    assert_eq!(r.best_score, 1.0);
    // ties keep the first grid point (keys vary in sorted order, the first key fastest)
    let first = r
        .results
        .iter()
        .position(|p| p.mean == r.best_score)
        .unwrap();
    assert_eq!(r.best_params, r.results[first].params);
    assert_eq!(r.results[1].params, json!({"c": 1.0, "gamma": 0.1}));
    let mut grid = BTreeMap::new();
    grid.insert("lambda".to_string(), vec![json!(10.0), json!(0.01)]);
    let r = grid_search(
        ModelKind::Logistic,
        &json!({}),
        &grid,
        &d,
        3,
        0,
        Scoring::MacroF1,
    )
    .unwrap();
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.results[0].fold_scores.len(), 3);
    // validation split by time in train(): metrics on the last rows
    let a = train(
        ModelKind::Logistic,
        &json!({"validation_fraction": 0.25}),
        &d,
    )
    .unwrap();
    let m = a.metrics.unwrap();
    assert_eq!(m.report.n, 20);
    assert!(m.split.starts_with("validation"));
}

#[test]
fn metrics_by_hand() {
    use gemba_ml::metrics::{
        accuracy, average_precision, confusion_matrix, detection, per_class, report, roc_auc,
    };
    let y = [0, 0, 0, 1, 1, 2];
    let p = [0, 1, 0, 1, 2, 2];
    assert_eq!(accuracy(&y, &p), 4.0 / 6.0);
    assert_eq!(
        confusion_matrix(&y, &p, 3),
        vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
    );
    let pc = per_class(&y, &p, 3);
    assert_eq!((pc[0].precision, pc[0].recall), (1.0, 2.0 / 3.0));
    assert_eq!((pc[1].precision, pc[1].recall, pc[1].f1), (0.5, 0.5, 0.5));
    assert_eq!(pc[2].support, 1);
    // class 0 is normal: 3 fault rows all alarmed, 1 of 3 normal rows alarmed
    let d = detection(&y, &p, 0);
    assert_eq!((d.detection_rate, d.false_alarm_rate), (1.0, 1.0 / 3.0));
    let r = report(&y, &p, 3, 0, None, None);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(gemba_ml::metrics::normal_class(&names(&["fault", "OK"])), 1);
    assert_eq!(gemba_ml::metrics::normal_class(&names(&["a", "b"])), 0);
    assert!((r.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    assert_eq!(r.roc_auc, None);
    // perfect ranking, reversed ranking, one class only
    let pos = [false, false, true, true];
    assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &pos), Some(1.0));
    assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &pos), Some(0.0));
    assert_eq!(roc_auc(&[0.5; 4], &pos), Some(0.5));
    assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    assert_eq!(average_precision(&[0.1, 0.2, 0.8, 0.9], &pos), Some(1.0));
    assert_eq!(average_precision(&[0.1, 0.2], &[false, false]), None);
}

#[test]
fn lambda_is_c_per_sample() {
    let d = blobs(10); // 40 rows
    let a = LogisticParams::new()
        .c(0.5)
        .tol(1e-10)
        .check()
        .unwrap()
        .fit(&d)
        .unwrap();
    let b = LogisticParams::new()
        .lambda(1.0 / (40.0 * 0.5))
        .tol(1e-10)
        .check()
        .unwrap()
        .fit(&d)
        .unwrap();
    for (x, y) in a.coef.iter().zip(&b.coef) {
        assert!((x - y).abs() < 1e-8, "{x} vs {y}");
    }
    assert!(a.converged && b.converged);
}

#[test]
fn class_weights_shift_the_boundary() {
    // Imbalanced 1-D data: balanced weights raise the minority class's recall.
    let mut rows = Vec::new();
    let mut y = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for i in 0..200 {
        let minority = i % 10 == 0;
        rows.push(vec![if minority { 0.8 } else { 0.0 } + rng.r#gen::<f64>()]);
        y.push(usize::from(minority));
    }
    let d = Dataset::from_xy(Matrix::from_rows(&rows).unwrap(), y).unwrap();
    for kind in [ModelKind::Logistic, ModelKind::Svc, ModelKind::LinearSvc] {
        let plain = train(kind, &json!({}), &d).unwrap();
        let bal = train(kind, &json!({"class_weight": "balanced"}), &d).unwrap();
        let r = |a: &ModelArtifact| a.metrics.as_ref().unwrap().report.per_class[1].recall;
        assert!(
            r(&bal) > r(&plain),
            "{kind:?}: {} vs {}",
            r(&bal),
            r(&plain)
        );
    }
}

/// Found by the model_artifact fuzz target: an SVM artefact whose pair named a support vector
/// past the end (`sv: [71]` of 18) parsed, then panicked with an index out of bounds in
/// `predict` — on a server, in the scorer of a model alarm rule. Artefacts come from outside
/// (`POST /api/v1/models`, `--model FILE`), so every part that must fit is checked on load.
#[test]
fn inconsistent_artefacts_are_refused_on_load() {
    let d = toy();
    let svm = train(ModelKind::Svc, &json!({"probability": true}), &d).unwrap();
    let logreg = train(ModelKind::Logistic, &json!({}), &d).unwrap();
    let linear = train(ModelKind::LinearSvc, &json!({"probability": true}), &d).unwrap();
    let tamper = |a: &ModelArtifact, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::to_value(a).unwrap();
        f(&mut v);
        ModelArtifact::from_json(&v.to_string())
    };
    let refused = |r: Result<ModelArtifact, MlError>, phrase: &str| match r {
        Err(MlError::Artifact(m)) => assert!(m.contains(phrase), "{m:?} lacks {phrase:?}"),
        other => panic!("expected an artefact error with {phrase:?}, got {other:?}"),
    };
    let n_sv = svm_support_vectors(&svm);
    refused(
        tamper(&svm, &|v| {
            v["model"]["svc"]["pairs"][0]["sv"][0] = json!(n_sv + 50)
        }),
        "names support vector",
    );
    refused(
        tamper(&svm, &|v| v["model"]["svc"]["pairs"][0]["coef"] = json!([])),
        "coefficients",
    );
    refused(
        tamper(&svm, &|v| v["model"]["svc"]["pairs"][0]["b"] = json!(5)),
        "pairs[0] is classes",
    );
    refused(
        tamper(&svm, &|v| v["model"]["svc"]["sv_norms"] = json!([])),
        "norms",
    );
    refused(
        tamper(&svm, &|v| {
            v["model"]["svc"]["support_vectors"]["rows"] = json!(1_000_000)
        }),
        "support vectors",
    );
    refused(
        tamper(&logreg, &|v| v["model"]["logistic"]["coef"] = json!([1.0])),
        "weights",
    );
    refused(
        tamper(&logreg, &|v| v["class_names"] = json!(["a", "b", "c"])),
        "classes",
    );
    refused(
        tamper(&logreg, &|v| v["scaler"]["mean"] = json!([0.0])),
        "scaler.mean",
    );
    refused(
        tamper(&linear, &|v| v["model"]["linear_svc"]["platt"] = json!([])),
        "Platt",
    );
    refused(
        tamper(&linear, &|v| v["feature_names"] = json!([])),
        "features",
    );
    // The fuzzer's own input.
    let input = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/model_artifact/regression-svm-sv-index"
    ))
    .unwrap();
    refused(ModelArtifact::from_json(&input), "names support vector");
    // Untampered artefacts still load.
    for a in [&svm, &logreg, &linear] {
        assert_eq!(&ModelArtifact::from_json(&a.to_json().unwrap()).unwrap(), a);
    }
}

fn svm_support_vectors(a: &ModelArtifact) -> usize {
    match &a.model {
        gemba_ml::FittedModel::Svc(m) => m.support_vectors.rows,
        other => panic!("not an SVM: {other:?}"),
    }
}
