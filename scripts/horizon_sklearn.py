"""scikit-learn on the rows of `gemba eval horizon --dump DIR` (see scripts/horizon-sklearn)."""
import glob
import os
import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler

warnings.filterwarnings("ignore")


def prf(c):
    tp, fp, fn = c
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def counts(pred, y):
    return np.array([(pred & y).sum(), (pred & ~y).sum(), (~pred & y).sum()])


def best_level(score, y):
    """Warn when score > level: the level (of 199) with the best F1 on these rows (as Gemba)."""
    best = (1.0, -1.0)
    for level in np.arange(1, 200) / 200:
        f = prf(counts(score > level, y))[2]
        if f > best[1]:
            best = (level, f)
    return best[0]


def threshold(x, y):
    """The best one-signal threshold: (column, above?, level), levels at percentiles (as Gemba)."""
    best = (0, True, 0.0, -1.0)
    for j in range(x.shape[1]):
        v = np.sort(x[:, j])
        for q in range(1, 100):
            level = v[(len(v) - 1) * q // 100]
            for above in (True, False):
                f = prf(counts(x[:, j] > level if above else x[:, j] < level, y))[2]
                if f > best[3]:
                    best = (j, above, level, f)
    return best[:3]


def make(kind, c):
    steps = [StandardScaler()]
    if kind == "splines":
        steps.append(SplineTransformer(n_knots=5, degree=1, knots="quantile"))
    return make_pipeline(*steps, LogisticRegression(C=c, max_iter=3000))


def fit_warn(kind, c, x_tr, lab_tr, x_te):
    """Trains on the modes, picks the level on the training rows, warns on x_te."""
    m = make(kind, c).fit(x_tr, lab_tr)
    ok = list(m.classes_).index("ok")
    level = best_level(1 - m.predict_proba(x_tr)[:, ok], lab_tr != "ok")
    return (1 - m.predict_proba(x_te)[:, ok]) > level


def main(d):
    cut = int(open(os.path.join(d, "split.txt")).readline().split("<")[1])
    rows = ["logistic", "splines C=1", "splines C=0.1", "forward", "threshold"]
    total = {r: np.zeros(3, dtype=int) for r in rows}
    for path in sorted(glob.glob(os.path.join(d, "*.csv"))):
        df = pd.read_csv(path)
        feats = [c for c in df.columns if c not in ("ts", "failure") and ":" not in c]
        x = df[feats].to_numpy(float)
        lab = df["failure"].to_numpy(str)
        y = lab != "ok"
        tr = df["ts"].to_numpy() < cut
        te = ~tr
        if len(set(lab[tr])) < 2 or not te.any():
            print(f"{os.path.basename(path)}: skipped (no failure in training or no test rows)")
            continue
        # Forward selection: start from the threshold's signal, add the signal that raises F1 on
        # the last 20 % of the training period most, while it does.
        idx = np.flatnonzero(tr)
        fit = tr & (np.arange(len(df)) < idx[int(len(idx) * 0.8)])
        val = tr & ~fit
        sel = [threshold(x[fit], y[fit])[0]]

        def val_f1(cols):
            if len(set(lab[fit])) < 2:
                return -1.0
            return prf(counts(fit_warn("linear", 1.0, x[fit][:, cols], lab[fit], x[val][:, cols]), y[val]))[2]

        cur = val_f1(sel)
        while len(sel) < len(feats):
            f, j = max((val_f1(sel + [j]), j) for j in range(len(feats)) if j not in sel)
            if f <= cur + 0.005:
                break
            sel.append(j)
            cur = f
        preds = {
            "logistic": fit_warn("linear", 1.0, x[tr], lab[tr], x[te]),
            "splines C=1": fit_warn("splines", 1.0, x[tr], lab[tr], x[te]),
            "splines C=0.1": fit_warn("splines", 0.1, x[tr], lab[tr], x[te]),
            "forward": fit_warn("linear", 1.0, x[tr][:, sel], lab[tr], x[te][:, sel]),
        }
        j, above, level = threshold(x[tr], y[tr])
        preds["threshold"] = x[te, j] > level if above else x[te, j] < level
        line = []
        for r in rows:
            c = counts(preds[r], y[te])
            total[r] += c
            line.append(f"{r} {prf(c)[2]:.2f}")
        print(f"{os.path.basename(path)}: " + ", ".join(line)
              + f"  (forward: {', '.join(feats[k] for k in sel)}; threshold: {feats[j]})")
    print("\n| model (scikit-learn) | P any | R any | F1 any |\n|---|---:|---:|---:|")
    for r in rows:
        p, rr, f = prf(total[r])
        print(f"| {r} | {p:.3f} | {rr:.3f} | {f:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
