//! Platt scaling (the improved Newton method of Lin, Lin & Weng 2007) and pairwise coupling of
//! one-vs-one probabilities (Wu, Lin & Weng 2004, method 2) — the algorithms libsvm uses.

use rand::seq::SliceRandom;

use crate::data::seeded_rng;

/// Held-out decision values of a `folds`-fold cross-validation on random folds, the input of
/// [`sigmoid_train`] (libsvm's svm_binary_svc_probability): the rows `0..y.len()` (labels ±1,
/// bounds `c`) are shuffled with `seed` and cut into contiguous folds; for each fold
/// `decide(train, ty, tc, test, dec)` trains on the rows `train` (their labels `ty` and bounds
/// `tc`) and writes the decision value of every row of `test` into `dec`. A fold whose training
/// rows hold one class only gets that class's sign (libsvm's convention).
pub(crate) fn cv_decisions(
    y: &[f64],
    c: &[f64],
    folds: usize,
    seed: u64,
    mut decide: impl FnMut(&[usize], &[f64], &[f64], &[usize], &mut [f64]),
) -> Vec<f64> {
    let l = y.len();
    let folds = folds.min(l);
    let mut perm: Vec<usize> = (0..l).collect();
    perm.shuffle(&mut seeded_rng(seed));
    let mut dec = vec![0.0; l];
    for f in 0..folds {
        let (start, end) = (f * l / folds, (f + 1) * l / folds);
        let test = &perm[start..end];
        let train: Vec<usize> = perm[..start].iter().chain(&perm[end..]).copied().collect();
        let pos = train.iter().filter(|&&t| y[t] > 0.0).count();
        if pos == 0 || pos == train.len() {
            let v = if pos > 0 { 1.0 } else { -1.0 };
            test.iter().for_each(|&t| dec[t] = v);
            continue;
        }
        let ty: Vec<f64> = train.iter().map(|&t| y[t]).collect();
        let tc: Vec<f64> = train.iter().map(|&t| c[t]).collect();
        decide(&train, &ty, &tc, test, &mut dec);
    }
    dec
}

/// Fits P(y = +1 | f) = 1 / (1 + exp(A·f + B)) to decision values `dec` with labels `pos`.
pub fn sigmoid_train(dec: &[f64], pos: &[bool]) -> (f64, f64) {
    let prior1 = pos.iter().filter(|&&p| p).count() as f64;
    let prior0 = pos.len() as f64 - prior1;
    let (max_iter, min_step, sigma, eps) = (100, 1e-10, 1e-12, 1e-5);
    let hi = (prior1 + 1.0) / (prior1 + 2.0);
    let lo = 1.0 / (prior0 + 2.0);
    let t: Vec<f64> = pos.iter().map(|&p| if p { hi } else { lo }).collect();
    let obj = |a: f64, b: f64| -> f64 {
        dec.iter()
            .zip(&t)
            .map(|(&f, &t)| {
                let z = f * a + b;
                if z >= 0.0 {
                    t * z + (-z).exp().ln_1p()
                } else {
                    (t - 1.0) * z + z.exp().ln_1p()
                }
            })
            .sum()
    };
    let mut a = 0.0;
    let mut b = ((prior0 + 1.0) / (prior1 + 1.0)).ln();
    let mut fval = obj(a, b);
    for _ in 0..max_iter {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (sigma, sigma, 0.0, 0.0, 0.0);
        for (&f, &ti) in dec.iter().zip(&t) {
            let z = f * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += f * f * d2;
            h22 += d2;
            h21 += f * d2;
            let d1 = ti - p;
            g1 += f * d1;
            g2 += d1;
        }
        if g1.abs() < eps && g2.abs() < eps {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= min_step {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = obj(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                break;
            }
            step /= 2.0;
        }
        if step < min_step {
            break;
        }
    }
    (a, b)
}

/// P(y = +1 | f).
#[inline]
pub fn sigmoid_predict(f: f64, a: f64, b: f64) -> f64 {
    let z = f * a + b;
    if z >= 0.0 {
        let e = (-z).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + z.exp())
    }
}

/// Class probabilities from pairwise r[i][j] = P(i | i or j) (row-major k×k), written to `p`.
pub fn couple(k: usize, r: &[f64], p: &mut [f64]) {
    let mut q = vec![0.0; k * k];
    for t in 0..k {
        for j in 0..k {
            if j != t {
                q[t * k + t] += r[j * k + t] * r[j * k + t];
                q[t * k + j] = -r[j * k + t] * r[t * k + j];
            }
        }
    }
    p[..k].iter_mut().for_each(|v| *v = 1.0 / k as f64);
    let mut qp = vec![0.0; k];
    let max_iter = 100.max(k);
    let eps = 0.005 / k as f64;
    for _ in 0..max_iter {
        let mut pqp = 0.0;
        for t in 0..k {
            qp[t] = (0..k).map(|j| q[t * k + j] * p[j]).sum();
            pqp += p[t] * qp[t];
        }
        let max_err = (0..k).fold(0.0f64, |m, t| m.max((qp[t] - pqp).abs()));
        if max_err < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}
