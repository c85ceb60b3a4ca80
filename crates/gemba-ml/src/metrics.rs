//! Classification metrics, and the order statistics (median, quantile) and ROC AUC that the other
//! Gemba crates share: `gemba-nn` (thresholds, detector AUROC), `gemba-analytics` (PCA limits) and
//! the binary's evaluations call these instead of keeping copies.

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
/// half credit (the Mann–Whitney statistic). `None` if a class is missing (also for empty input).
///
/// `scores` and `positive` must have the same length (a shorter `positive` panics). Scores are
/// ranked with [`f64::total_cmp`] and tied with `==`: a NaN score ranks above every number
/// (a negative-signed NaN below), and no NaN ties with another.
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

/// The `q` quantile of `values` (unsorted) by linear interpolation between the closest ranks:
/// numpy's default (`numpy.quantile(values, q)`, `method="linear"`; Hyndman & Fan type 7).
///
/// With the values sorted ascending as `s[0..n]`, the position is `h = q·(n − 1)` and the quantile
/// `s[⌊h⌋] + (s[⌈h⌉] − s[⌊h⌋])·(h − ⌊h⌋)`; `q = 0.5` of `[1, 2, 3, 4]` is 2.5, `q = 0.9` is 3.7.
/// Edge cases, as every caller has relied on them:
/// - `q` is clamped to [0, 1]; a NaN `q` gives NaN;
/// - empty `values` give NaN;
/// - values are sorted with [`f64::total_cmp`]: NaN sorts above +∞ (a negative-signed NaN below
///   −∞), so NaNs take the top (or bottom) positions rather than being skipped;
/// - an infinite value at either neighbouring rank gives ±∞ or NaN (∞ − ∞), even when `h` is
///   a whole number.
///
/// Sorts a copy; [`quantile_sorted`] takes values already sorted.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, q)
}

/// [`quantile`] of values already sorted ascending (by [`f64::total_cmp`]).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The median of `values` (unsorted): the middle value, or the mean `(a + b) / 2` of the two
/// middle ones for an even count; `None` when empty. Sorted with [`f64::total_cmp`] like
/// [`quantile`] (NaN sorts above +∞); filter NaN out first where it must not count. For an even
/// count this is not always bit-identical to `quantile(values, 0.5)`, which computes
/// `a + (b − a) / 2`.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        None
    } else if n % 2 == 1 {
        Some(s[n / 2])
    } else {
        Some((s[n / 2 - 1] + s[n / 2]) / 2.0)
    }
}

/// The cut with the best F1 when warning where `score > cut`, found exactly (every distinct
/// score tried, highest first): `(cut, F1)`, or `None` without a positive row (or without rows).
///
/// The cut lies halfway between a score and the next lower distinct one, or 1 below the lowest
/// score when warning on every row is best; tied scores warn together; of equal F1 the higher
/// cut wins. `scores` and `truth` must have the same length.
pub fn best_f1_cut(scores: &[f64], truth: &[bool]) -> Option<(f64, f64)> {
    let positives = truth.iter().filter(|&&b| b).count();
    if positives == 0 || scores.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<(f64, f64)> = None;
    for (k, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let next = order.get(k + 1).map(|&j| scores[j]);
        if next == Some(scores[i]) {
            continue;
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + (positives - tp)) as f64;
        let cut = match next {
            Some(n) => n + (scores[i] - n) / 2.0,
            None => scores[i] - 1.0,
        };
        if best.is_none_or(|b| f1 > b.1) {
            best = Some((cut, f1));
        }
    }
    best
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 1.0), 4.0);
        // numpy.quantile([1, 2, 3, 4], 0.9) == 3.7 (h = 2.7).
        assert_eq!(quantile(&s, 0.9), 3.7);
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.9), 3.7);
        assert_eq!(quantile_sorted(&s, 0.25), 1.75);
        // Ties and a single value.
        assert_eq!(quantile(&[1.0, 1.0, 1.0, 5.0], 0.5), 1.0);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn quantile_edge_cases_are_pinned() {
        let s = [1.0, 2.0, 3.0, 4.0];
        // q is clamped to [0, 1]; NaN q and empty input give NaN.
        assert_eq!(quantile(&s, -1.0), 1.0);
        assert_eq!(quantile(&s, 2.0), 4.0);
        assert!(quantile(&s, f64::NAN).is_nan());
        assert!(quantile(&[], 0.5).is_nan());
        assert!(quantile_sorted(&[], 0.5).is_nan());
        // NaN sorts above every number (total_cmp) and is not skipped.
        let with_nan = [f64::NAN, 2.0, 1.0];
        assert_eq!(quantile(&with_nan, 0.0), 1.0);
        assert_eq!(quantile(&with_nan, 0.5), 2.0);
        assert!(quantile(&with_nan, 0.75).is_nan());
        assert!(quantile(&with_nan, 1.0).is_nan());
        // An infinite neighbour: ∞ between ranks, ∞ − ∞ = NaN even at a whole position.
        assert_eq!(quantile(&[1.0, f64::INFINITY], 0.5), f64::INFINITY);
        assert!(quantile(&[1.0, f64::INFINITY], 1.0).is_nan());
    }

    #[test]
    fn median_is_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, 1.0, 2.0, 9.0]), Some(1.5));
        // (a + b) / 2, not numpy's a + (b − a) / 2: they differ in the last bit here.
        assert_eq!(median(&[0.7, 0.1]), Some(0.39999999999999997));
        assert_eq!(quantile(&[0.7, 0.1], 0.5), 0.4);
        // NaN sorts last and counts.
        assert_eq!(median(&[f64::NAN, 2.0, 1.0]), Some(2.0));
        assert!(median(&[f64::NAN, 1.0]).is_some_and(f64::is_nan));
    }

    #[test]
    fn best_f1_cut_tries_every_distinct_score() {
        // Warning on the top three: tp 2, fp 1, fn 0 → F1 = 4 / 5, cut halfway to 0.1.
        assert_eq!(
            best_f1_cut(
                &[0.9, 0.8, 0.7, 0.1, 0.05],
                &[true, false, true, false, false]
            ),
            Some((0.4, 0.8))
        );
        // Tied scores warn together: the two 1.0 rows (tp 1, fp 1) → 2 / 3.
        assert_eq!(
            best_f1_cut(&[1.0, 1.0, 0.0], &[true, false, false]),
            Some((0.5, 2.0 / 3.0))
        );
        // Everything warns when that is best: 1 below the lowest score.
        assert_eq!(best_f1_cut(&[0.3, 0.2], &[true, true]), Some((-0.8, 1.0)));
        // Of equal F1, the higher cut: the top row alone and all four rows both give 2 / 3.
        assert_eq!(
            best_f1_cut(&[4.0, 3.0, 2.0, 1.0], &[true, false, false, true]),
            Some((3.5, 2.0 / 3.0))
        );
        assert_eq!(best_f1_cut(&[0.3, 0.2], &[false, false]), None);
        assert_eq!(best_f1_cut(&[], &[]), None);
    }

    #[test]
    fn roc_auc_ties_empty_and_nan_are_pinned() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        // Ties get half credit, also −0 and +0.
        assert_eq!(roc_auc(&[1.0, 1.0], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[-0.0, 0.0], &[true, false]), Some(0.5));
        assert_eq!(
            roc_auc(&[0.2, 0.2, 0.1, 0.3], &[true, false, false, true]),
            Some(0.875)
        );
        // A class missing, or no rows: None.
        assert_eq!(roc_auc(&[], &[]), None);
        assert_eq!(roc_auc(&[0.1, 0.2], &[false, false]), None);
        // NaN ranks above every number; two NaNs do not tie.
        assert_eq!(
            roc_auc(&[f64::NAN, 0.5, 0.1], &[true, false, false]),
            Some(1.0)
        );
        assert_eq!(roc_auc(&[f64::NAN, 0.5], &[false, true]), Some(0.0));
        assert_eq!(roc_auc(&[f64::NAN, f64::NAN], &[true, false]), Some(0.0));
    }
}
