//! Agreement with scikit-learn: fixtures written by `scripts/ml-fixtures.py`.

#![allow(clippy::unwrap_used)]

use gemba_ml::metrics::{average_precision, brier_score, roc_auc};
use gemba_ml::{
    ClassWeight, Classifier, Dataset, Fit, Gamma, KernelKind, LinearSvcParams, LogisticParams,
    Matrix, ParamGuard, Penalty, StandardScaler, SvcParams, SvmLoss,
};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix(v: &Value) -> Matrix {
    let rows: Vec<Vec<f64>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

fn vecf(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn vecu(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

struct Set {
    train: Dataset,
    x_test: Matrix,
}

fn set(data: &Value, name: &str) -> Set {
    let d = &data[name];
    Set {
        train: Dataset::from_xy(matrix(&d["x_train"]), vecu(&d["y_train"])).unwrap(),
        x_test: matrix(&d["x_test"]),
    }
}

fn class_weight(p: &Value) -> ClassWeight {
    match p.get("class_weight").and_then(Value::as_str) {
        Some("balanced") => ClassWeight::Balanced,
        _ => ClassWeight::None,
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn scaler_matches_sklearn() {
    let f = fixture("scaler");
    let s = StandardScaler::fit(&matrix(&f["x"])).unwrap();
    for (a, b) in s.mean.iter().zip(vecf(&f["mean"])) {
        assert!(close(*a, b, 1e-10), "{a} vs {b}");
    }
    for (a, b) in s.scale.iter().zip(vecf(&f["scale"])) {
        assert!(close(*a, b, 1e-10), "{a} vs {b}");
    }
}

#[test]
fn logistic_matches_sklearn() {
    let data = fixture("data");
    let f = fixture("logistic");
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let s = set(&data, case["set"].as_str().unwrap());
        let l1 = case["penalty"] == "l1";
        let p = LogisticParams::new()
            .c(case["params"]["C"].as_f64().unwrap())
            .class_weight(class_weight(&case["params"]))
            .penalty(if l1 { Penalty::L1 } else { Penalty::L2 })
            .tol(1e-10)
            .max_iter(20000);
        let m = p.check().unwrap().fit(&s.train).unwrap();
        let coef = matrix(&case["coef"]);
        let tol = if l1 { 2e-3 } else { 1e-4 };
        for (a, b) in m.coef.iter().zip(&coef.data) {
            assert!(
                close(*a, *b, tol),
                "{} {}: coef {a} vs {b}",
                case["set"],
                case["params"]
            );
            if l1 && *b == 0.0 {
                assert!(a.abs() < 1e-6, "L1 zero pattern: {a}");
            }
        }
        for (a, b) in m.intercept.iter().zip(vecf(&case["intercept"])) {
            assert!(close(*a, b, tol), "intercept {a} vs {b}");
        }
        let proba = m.predict_proba(&s.x_test).unwrap();
        for (a, b) in proba.data.iter().zip(&matrix(&case["proba"]).data) {
            assert!(
                (a - b).abs() < if l1 { 1e-3 } else { 1e-5 },
                "proba {a} vs {b}"
            );
        }
        assert_eq!(m.predict(&s.x_test).unwrap(), vecu(&case["pred"]));
    }
}

fn svc_params(p: &Value) -> SvcParams {
    let mut s = SvcParams::new()
        .c(p.get("C").and_then(Value::as_f64).unwrap_or(1.0))
        .class_weight(class_weight(p))
        .tol(1e-6);
    s = match p["kernel"].as_str().unwrap() {
        "linear" => s.kernel(KernelKind::Linear),
        "poly" => s
            .kernel(KernelKind::Poly)
            .degree(p["degree"].as_u64().unwrap() as u32)
            .coef0(p["coef0"].as_f64().unwrap()),
        _ => s.kernel(KernelKind::Rbf),
    };
    if let Some(g) = p.get("gamma").and_then(Value::as_f64) {
        s = s.gamma(Gamma::Value(g));
    }
    s
}

#[test]
fn svc_matches_sklearn() {
    let data = fixture("data");
    let f = fixture("svc");
    for case in f["cases"].as_array().unwrap() {
        let s = set(&data, case["set"].as_str().unwrap());
        let m = svc_params(&case["params"])
            .check()
            .unwrap()
            .fit(&s.train)
            .unwrap();
        // gamma = "scale" resolved like scikit-learn
        if let Some(g) = case["gamma_value"].as_f64() {
            let mine = match m.kernel {
                gemba_ml::Kernel::Rbf { gamma } | gemba_ml::Kernel::Poly { gamma, .. } => gamma,
                gemba_ml::Kernel::Linear => unreachable!(),
            };
            assert!(close(mine, g, 1e-10), "gamma {mine} vs {g}");
        }
        let pred = m.predict(&s.x_test).unwrap();
        let want = vecu(&case["pred"]);
        let k = m.n_classes();
        let mut score = vec![0.0; k];
        let dec = &case["decision"];
        let mut mismatched = 0;
        for i in 0..s.x_test.rows {
            m.scores_row(s.x_test.row(i), &mut score);
            if k == 2 {
                let b = dec[i].as_f64().unwrap();
                assert!(
                    (score[1] - b).abs() < 2e-3 * (1.0 + b.abs()),
                    "{} {} row {i}: {} vs {b}",
                    case["set"],
                    case["params"],
                    score[1]
                );
            } else {
                for c in 0..k {
                    let b = dec[i][c].as_f64().unwrap();
                    assert!(
                        (score[c] - b).abs() < 2e-3,
                        "row {i} class {c}: {} vs {b}",
                        score[c]
                    );
                }
            }
            if pred[i] != want[i] {
                mismatched += 1;
            }
        }
        // Exact ties in decision values near 0 may flip; none are expected in these fixtures.
        assert_eq!(mismatched, 0, "{} {}", case["set"], case["params"]);
        let n_sv = case["n_support"].as_u64().unwrap() as usize;
        assert!(
            m.n_support().abs_diff(n_sv) <= 2,
            "n_support {} vs {n_sv}",
            m.n_support()
        );
    }
}

#[test]
fn svc_probabilities_close_to_sklearn() {
    // Platt scaling uses random internal folds in both tools: compare loosely.
    let data = fixture("data");
    let f = fixture("svc");
    for key in ["proba_bin", "proba_multi3"] {
        let s = set(&data, f[key]["set"].as_str().unwrap());
        let m = SvcParams::new()
            .probability(true)
            .check()
            .unwrap()
            .fit(&s.train)
            .unwrap();
        let p = m.predict_proba(&s.x_test).unwrap();
        let want = matrix(&f[key]["proba"]);
        let mad: f64 = p
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / p.data.len() as f64;
        assert!(mad < 0.04, "{key}: mean |Δp| = {mad}");
        for r in p.iter_rows() {
            assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn linear_svc_matches_sklearn() {
    let data = fixture("data");
    let f = fixture("linear_svc");
    for case in f["cases"].as_array().unwrap() {
        let s = set(&data, case["set"].as_str().unwrap());
        let p = &case["params"];
        for dual in [true, false] {
            let hinge = p["loss"] == "hinge";
            if hinge && !dual {
                continue;
            }
            let mut lp = LinearSvcParams::new()
                .c(p["C"].as_f64().unwrap())
                .class_weight(class_weight(p))
                .loss(if hinge {
                    SvmLoss::Hinge
                } else {
                    SvmLoss::SquaredHinge
                });
            lp.tol = 1e-9;
            lp.max_iter = 200_000;
            lp.dual = Some(dual);
            let m = lp.check().unwrap().fit(&s.train).unwrap();
            let coef = matrix(&case["coef"]);
            for (a, b) in m.coef.iter().zip(&coef.data) {
                assert!(
                    close(*a, *b, 2e-3),
                    "{} {} dual={dual}: coef {a} vs {b}",
                    case["set"],
                    case["params"]
                );
            }
            for (a, b) in m.intercept.iter().zip(vecf(&case["intercept"])) {
                assert!(
                    close(*a, b, 2e-3),
                    "{} {} dual={dual}: intercept {a} vs {b}",
                    case["set"],
                    case["params"]
                );
            }
            assert_eq!(
                m.predict(&s.x_test).unwrap(),
                vecu(&case["pred"]),
                "{} {} dual={dual}",
                case["set"],
                case["params"]
            );
        }
    }
}

#[test]
fn metrics_match_sklearn() {
    let f = fixture("metrics");
    let y = vecu(&f["y"]);
    let s = vecf(&f["score"]);
    let pos: Vec<bool> = y.iter().map(|&v| v == 1).collect();
    let auc = roc_auc(&s, &pos).unwrap();
    assert!(
        (auc - f["roc_auc"].as_f64().unwrap()).abs() < 1e-12,
        "{auc}"
    );
    let ap = average_precision(&s, &pos).unwrap();
    assert!(
        (ap - f["average_precision"].as_f64().unwrap()).abs() < 1e-12,
        "{ap}"
    );
    let proba = Matrix::from_rows(
        &s.iter()
            .map(|&p| {
                let p = p.clamp(0.0, 1.0);
                vec![1.0 - p, p]
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let b = brier_score(&y, &proba).unwrap();
    assert!((b - f["brier"].as_f64().unwrap()).abs() < 1e-12, "{b}");
}
