#!/usr/bin/env python3
"""Writes the scikit-learn reference fixtures of gemba-ml's tests.

Usage: python3 -m venv /var/tmp/ml-venv && /var/tmp/ml-venv/bin/pip install scikit-learn
       /var/tmp/ml-venv/bin/python scripts/ml-fixtures.py
Output: crates/gemba-ml/tests/fixtures/*.json (small: a few hundred rows each).
Features are standardised here (StandardScaler on the training rows) so that the Rust tests
compare the models alone; the scaler itself has its own fixture.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "gemba-ml", "tests", "fixtures")


def r(a):
    return np.round(np.asarray(a, dtype=float), 12).tolist()


def split(x, y, n_test):
    xa, xb, ya, yb = x[:-n_test], x[-n_test:], y[:-n_test], y[-n_test:]
    sc = StandardScaler().fit(xa)
    return sc.transform(xa), sc.transform(xb), ya, yb


def dump(name, obj):
    obj["sklearn_version"] = sklearn.__version__
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def main():
    os.makedirs(OUT, exist_ok=True)
    # Data sets: binary (make_classification), 3 classes, imbalanced binary, breast cancer subset.
    xb, yb = make_classification(n_samples=300, n_features=8, n_informative=5, random_state=1)
    x3, y3 = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3,
                                 n_clusters_per_class=1, random_state=2)
    xi, yi = make_classification(n_samples=300, n_features=5, weights=[0.85], random_state=3)
    xc, yc = load_breast_cancer(return_X_y=True)
    idx = np.random.RandomState(0).permutation(len(xc))[:260]
    xc, yc = xc[idx], yc[idx]
    sets = {"bin": (xb, yb), "multi3": (x3, y3), "imb": (xi, yi), "cancer": (xc, yc)}

    # Scaler reference.
    sc = StandardScaler().fit(xc)
    dump("scaler", {"x": r(xc), "mean": r(sc.mean_), "scale": r(sc.scale_)})

    cases = []
    for name, (x, y) in sets.items():
        a, b, ya, yb_ = split(x, y, 60)
        cases.append((name, a, b, ya, yb_))

    # Logistic regression: solved to a tight tolerance so that both reach the optimum.
    lr = []
    for name, a, b, ya, yb_ in cases:
        for params in ({"C": 1.0}, {"C": 0.05}, {"C": 1.0, "class_weight": "balanced"}):
            m = LogisticRegression(solver="lbfgs", tol=1e-10, max_iter=100000, **params).fit(a, ya)
            lr.append({"set": name, "params": params, "penalty": "l2",
                       "coef": r(m.coef_), "intercept": r(m.intercept_),
                       "proba": r(m.predict_proba(b)), "pred": m.predict(b).tolist()})
        if name in ("bin", "cancer"):
            m = LogisticRegression(l1_ratio=1.0, solver="saga", C=0.1, tol=1e-12,
                                   max_iter=200000).fit(a, ya)
            lr.append({"set": name, "params": {"C": 0.1}, "penalty": "l1",
                       "coef": r(m.coef_), "intercept": r(m.intercept_),
                       "proba": r(m.predict_proba(b)), "pred": m.predict(b).tolist()})

    # Kernel SVM (tight tol) and linear SVM.
    svc = []
    for name, a, b, ya, yb_ in cases:
        for kp in ({"kernel": "rbf", "gamma": "scale"}, {"kernel": "linear"},
                   {"kernel": "poly", "degree": 3, "gamma": "scale", "coef0": 1.0},
                   {"kernel": "rbf", "gamma": 0.2, "C": 10.0},
                   {"kernel": "rbf", "gamma": "scale", "class_weight": "balanced"}):
            m = SVC(tol=1e-6, **kp).fit(a, ya)
            gamma = m._gamma if kp["kernel"] != "linear" else None
            svc.append({"set": name, "params": kp, "gamma_value": gamma,
                        "decision": r(m.decision_function(b)), "pred": m.predict(b).tolist(),
                        "n_support": int(m.support_.size),
                        "dual_sum": float(np.abs(m.dual_coef_).sum())})
    m = SVC(probability=True, random_state=0).fit(cases[0][1], cases[0][3])
    prob = {"set": "bin", "proba": r(m.predict_proba(cases[0][2]))}
    m = SVC(probability=True, random_state=0).fit(cases[1][1], cases[1][3])
    prob3 = {"set": "multi3", "proba": r(m.predict_proba(cases[1][2]))}

    lin = []
    for name, a, b, ya, yb_ in cases:
        for p in ({"loss": "squared_hinge", "C": 1.0}, {"loss": "hinge", "C": 0.5},
                  {"loss": "squared_hinge", "C": 1.0, "class_weight": "balanced"}):
            m = LinearSVC(dual=True, tol=1e-10, max_iter=1000000, **p).fit(a, ya)
            lin.append({"set": name, "params": p, "coef": r(m.coef_), "intercept": r(m.intercept_),
                        "decision": r(m.decision_function(b)), "pred": m.predict(b).tolist()})

    data = {name: {"x_train": r(a), "y_train": ya.tolist(), "x_test": r(b), "y_test": yb_.tolist()}
            for name, a, b, ya, yb_ in cases}
    dump("data", data)
    dump("logistic", {"cases": lr})
    dump("svc", {"cases": svc, "proba_bin": prob, "proba_multi3": prob3})
    dump("linear_svc", {"cases": lin})

    # Metrics on fixed scores with ties.
    rs = np.random.RandomState(5)
    yt = rs.randint(0, 2, 200)
    s = np.round(rs.rand(200) * 0.5 + yt * 0.3, 2)  # rounding creates ties
    dump("metrics", {"y": yt.tolist(), "score": r(s),
                     "roc_auc": roc_auc_score(yt, s), "average_precision": average_precision_score(yt, s),
                     "brier": brier_score_loss(yt, np.clip(s, 0, 1))})


if __name__ == "__main__":
    main()
