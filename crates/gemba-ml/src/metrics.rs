//! Classification metrics.

use serde::{Deserialize, Serialize};

use crate::data::Matrix;
use crate::error::{MlError, Result};

/// `k × k` confusion matrix: `m[truth][predicted]`.
pub fn confusion_matrix(y: &[usize], pred: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; k]; k];
    for (&t, &p) in y.iter().zip(pred) {
        if t < k && p < k {
            m[t][p] += 1;
        }
    }
    m
}

/// Fraction of correct predictions.
pub fn accuracy(y: &[usize], pred: &[usize]) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    y.iter().zip(pred).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Per-class scores (0 where undefined, like scikit-learn's `zero_division=0`).
pub fn per_class(y: &[usize], pred: &[usize], k: usize) -> Vec<ClassScores> {
    let m = confusion_matrix(y, pred, k);
    (0..k)
        .map(|c| {
            let tp = m[c][c] as f64;
            let predicted: usize = (0..k).map(|t| m[t][c]).sum();
            let support: usize = m[c].iter().sum();
            let precision = if predicted > 0 {
                tp / predicted as f64
            } else {
                0.0
            };
            let recall = if support > 0 {
                tp / support as f64
            } else {
                0.0
            };
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScores {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect()
}

/// ROC AUC of scores for a binary problem (`positive[i]` true for the positive class); ties get
/// half credit (the Mann–Whitney statistic). `None` if a class is missing.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    // Sum of (average) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            if positive[t] {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Average precision (area under the precision–recall curve as scikit-learn computes it:
/// Σ (Rₙ − Rₙ₋₁)·Pₙ over distinct thresholds). `None` without positives.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    if n_pos == 0.0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut prev_r) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j < idx.len() && scores[idx[j]] == scores[idx[i]] {
            if positive[idx[j]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        let r = tp / n_pos;
        let p = tp / (tp + fp);
        ap += (r - prev_r) * p;
        prev_r = r;
        i = j;
    }
    Some(ap)
}

/// Brier score: mean over rows of Σ_c (p_c − 1[y = c])²; for two classes the scikit-learn
/// (binary) form, mean (p₁ − y)², which is half of that.
pub fn brier_score(y: &[usize], proba: &Matrix) -> Result<f64> {
    if proba.rows != y.len() {
        return Err(MlError::LengthMismatch {
            what: "probability rows",
            expected: y.len(),
            got: proba.rows,
        });
    }
    if y.is_empty() {
        return Err(MlError::EmptyData);
    }
    let k = proba.cols;
    let mut s = 0.0;
    for (i, &t) in y.iter().enumerate() {
        let r = proba.row(i);
        if k == 2 {
            let target = if t == 1 { 1.0 } else { 0.0 };
            s += (r[1] - target).powi(2);
        } else {
            for (c, &p) in r.iter().enumerate() {
                let target = if c == t { 1.0 } else { 0.0 };
                s += (p - target).powi(2);
            }
        }
    }
    Ok(s / y.len() as f64)
}

/// Fault detection: `detection_rate` = TP / (TP + FN) over fault rows (any class ≠ `normal`
/// counts as a fault, and any predicted fault as an alarm); `false_alarm_rate` = FP / (FP + TN)
/// over normal rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub detection_rate: f64,
    pub false_alarm_rate: f64,
}

pub fn detection(y: &[usize], pred: &[usize], normal: usize) -> Detection {
    let (mut tp, mut fnn, mut fp, mut tn) = (0usize, 0usize, 0usize, 0usize);
    for (&t, &p) in y.iter().zip(pred) {
        match (t != normal, p != normal) {
            (true, true) => tp += 1,
            (true, false) => fnn += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    let rate = |a: usize, b: usize| {
        if a + b > 0 {
            a as f64 / (a + b) as f64
        } else {
            0.0
        }
    };
    Detection {
        detection_rate: rate(tp, fnn),
        false_alarm_rate: rate(fp, tn),
    }
}

/// The class of normal operation: the first class named (case-insensitively) `normal`, `ok`,
/// `good`, `pass`, `none`, `no_fault`, `healthy` or `0`, else class 0.
pub fn normal_class(class_names: &[String]) -> usize {
    const NAMES: [&str; 8] = [
        "normal", "ok", "good", "pass", "none", "no_fault", "healthy", "0",
    ];
    class_names
        .iter()
        .position(|c| NAMES.iter().any(|n| c.eq_ignore_ascii_case(n)))
        .unwrap_or(0)
}

/// A summary of a classifier on a labelled set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub n: usize,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassScores>,
    pub confusion: Vec<Vec<usize>>,
    /// Binary: of the class-1 probability/score; several classes: macro one-vs-rest.
    pub roc_auc: Option<f64>,
    pub average_precision: Option<f64>,
    pub brier: Option<f64>,
    /// The class counted as "normal" by `detection` (every other class is a fault).
    pub normal_class: usize,
    pub detection: Detection,
}

/// Computes a [`Report`]; `scores` (probabilities or decision scores, one column per class)
/// enable ROC/PR AUC, `proba` the Brier score; `normal` is the class id of normal operation for
/// the detection and false-alarm rates (see [`normal_class`]).
pub fn report(
    y: &[usize],
    pred: &[usize],
    k: usize,
    normal: usize,
    scores: Option<&Matrix>,
    proba: Option<&Matrix>,
) -> Report {
    let per = per_class(y, pred, k);
    let present: Vec<&ClassScores> = per.iter().filter(|c| c.support > 0).collect();
    let m = present.len().max(1) as f64;
    let (roc, ap) = match scores {
        Some(s) if s.rows == y.len() && s.cols == k => {
            let classes: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
            let (mut r, mut a, mut n) = (0.0, 0.0, 0usize);
            for c in classes {
                let col: Vec<f64> = (0..s.rows).map(|i| s.row(i)[c]).collect();
                let pos: Vec<bool> = y.iter().map(|&t| t == c).collect();
                if let (Some(x), Some(z)) = (roc_auc(&col, &pos), average_precision(&col, &pos)) {
                    r += x;
                    a += z;
                    n += 1;
                }
            }
            if n > 0 {
                (Some(r / n as f64), Some(a / n as f64))
            } else {
                (None, None)
            }
        }
        _ => (None, None),
    };
    Report {
        n: y.len(),
        accuracy: accuracy(y, pred),
        macro_precision: present.iter().map(|c| c.precision).sum::<f64>() / m,
        macro_recall: present.iter().map(|c| c.recall).sum::<f64>() / m,
        macro_f1: present.iter().map(|c| c.f1).sum::<f64>() / m,
        confusion: confusion_matrix(y, pred, k),
        per_class: per,
        roc_auc: roc,
        average_precision: ap,
        brier: proba.and_then(|p| brier_score(y, p).ok()),
        normal_class: normal,
        detection: detection(y, pred, normal),
    }
}
