//! Row-major matrices, labelled data sets, the CSV loader, splits and folds.

use std::collections::BTreeMap;
use std::io::Read;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};

/// A dense row-major `rows × cols` matrix of `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix from row-major data; `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(MlError::LengthMismatch {
                what: "matrix data",
                expected: rows * cols,
                got: data.len(),
            });
        }
        Ok(Matrix { rows, cols, data })
    }

    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// A matrix from rows of equal length.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(MlError::ColumnMismatch {
                    expected: cols,
                    got: r.len(),
                    context: format!(" in row {i}"),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Matrix {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    #[inline]
    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over the rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f64]> {
        // `max(1)`: chunks_exact panics on 0; a 0-column matrix has no data anyway.
        self.data.chunks_exact(self.cols.max(1)).take(self.rows)
    }

    /// The rows with the given indices, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
}

/// A labelled data set: features `x` (one row per sample), class ids `y` indexing `class_names`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub x: Matrix,
    pub y: Vec<usize>,
    pub feature_names: Vec<String>,
    pub class_names: Vec<String>,
}

impl Dataset {
    /// A data set; checks shapes and class ids (not finiteness: NaN may be imputed later).
    pub fn new(
        x: Matrix,
        y: Vec<usize>,
        feature_names: Vec<String>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        if y.len() != x.rows {
            return Err(MlError::LengthMismatch {
                what: "labels y",
                expected: x.rows,
                got: y.len(),
            });
        }
        if feature_names.len() != x.cols {
            return Err(MlError::ColumnMismatch {
                expected: x.cols,
                got: feature_names.len(),
                context: " (feature names vs matrix columns)".into(),
            });
        }
        for (row, &id) in y.iter().enumerate() {
            if id >= class_names.len() {
                return Err(MlError::BadClass {
                    row,
                    id,
                    n_classes: class_names.len(),
                });
            }
        }
        Ok(Dataset {
            x,
            y,
            feature_names,
            class_names,
        })
    }

    /// A data set with generated names `x0..`, classes `"0".."k-1"` (k = max label + 1).
    pub fn from_xy(x: Matrix, y: Vec<usize>) -> Result<Self> {
        let k = y.iter().copied().max().map_or(0, |m| m + 1);
        let names = (0..x.cols).map(|j| format!("x{j}")).collect();
        let classes = (0..k).map(|c| c.to_string()).collect();
        Dataset::new(x, y, names, classes)
    }

    pub fn n_rows(&self) -> usize {
        self.x.rows
    }

    pub fn n_features(&self) -> usize {
        self.x.cols
    }

    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Rows per class id.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.n_classes()];
        for &y in &self.y {
            c[y] += 1;
        }
        c
    }

    /// Checks that the data can be trained on: rows, features, finite values, two classes present.
    pub fn validate_for_training(&self) -> Result<()> {
        if self.x.rows == 0 {
            return Err(MlError::EmptyData);
        }
        if self.x.cols == 0 {
            return Err(MlError::NoFeatures);
        }
        check_finite(&self.x, &self.feature_names)?;
        let counts = self.class_counts();
        let present: Vec<usize> = (0..counts.len()).filter(|&c| counts[c] > 0).collect();
        if present.len() < 2 {
            let class = present
                .first()
                .map(|&c| self.class_names[c].clone())
                .unwrap_or_default();
            return Err(MlError::OneClass { class });
        }
        Ok(())
    }

    /// The subset with the given row indices.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select_rows(idx),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
        }
    }

    /// Splits by time (row order): the first `train_fraction` of rows and the rest.
    pub fn split_by_time(&self, train_fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(train_fraction > 0.0 && train_fraction < 1.0) {
            return Err(crate::error::bad_param(
                "train_fraction",
                format!("must be in (0, 1), got {train_fraction}"),
            ));
        }
        let cut = ((self.n_rows() as f64) * train_fraction).round() as usize;
        let a: Vec<usize> = (0..cut).collect();
        let b: Vec<usize> = (cut..self.n_rows()).collect();
        Ok((self.select(&a), self.select(&b)))
    }

    /// Hex fingerprint (FNV-1a, 64 bit) of features, labels and names: identifies training data.
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv1a64::new();
        h.write(&(self.x.rows as u64).to_le_bytes());
        h.write(&(self.x.cols as u64).to_le_bytes());
        for v in &self.x.data {
            h.write(&v.to_bits().to_le_bytes());
        }
        for y in &self.y {
            h.write(&(*y as u64).to_le_bytes());
        }
        for n in self.feature_names.iter().chain(&self.class_names) {
            h.write(n.as_bytes());
            h.write(&[0]);
        }
        h.fingerprint()
    }
}

/// Returns the first non-finite value as an error naming feature and row.
pub fn check_finite(x: &Matrix, names: &[String]) -> Result<()> {
    for (i, row) in x.iter_rows().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if !v.is_finite() {
                return Err(MlError::NonFinite {
                    feature: names.get(j).cloned().unwrap_or_else(|| format!("#{j}")),
                    row: i,
                    value: v,
                });
            }
        }
    }
    Ok(())
}

/// FNV-1a, 64 bit: the hash of training-data fingerprints, here ([`Dataset::fingerprint`]) and in
/// `gemba-nn`'s artefacts. Not for anything adversarial.
#[derive(Debug, Clone)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
    /// `fnv1a64:` and the hash as 16 hex digits, the form artefacts store.
    pub fn fingerprint(&self) -> String {
        format!("fnv1a64:{:016x}", self.0)
    }
}

/// The seeded generator of shuffles and folds (ChaCha8, as the simulator and `gemba-nn` use):
/// the same seed gives the same stream on every platform.
pub(crate) fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Stratified k-fold: `k` (train, test) index pairs; each class is spread evenly over the folds.
pub fn stratified_kfold(y: &[usize], k: usize, seed: u64) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if k < 2 {
        return Err(crate::error::bad_param(
            "folds",
            format!("must be >= 2, got {k}"),
        ));
    }
    if y.len() < k {
        return Err(crate::error::bad_param(
            "folds",
            format!("{k} folds need at least {k} rows, got {}", y.len()),
        ));
    }
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in y.iter().enumerate() {
        by_class.entry(c).or_default().push(i);
    }
    let mut rng = seeded_rng(seed);
    let mut fold_of = vec![0usize; y.len()];
    let mut offset = 0;
    for idx in by_class.values_mut() {
        idx.shuffle(&mut rng);
        for (r, &i) in idx.iter().enumerate() {
            fold_of[i] = (r + offset) % k;
        }
        offset += idx.len();
    }
    Ok((0..k)
        .map(|f| {
            let test: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] == f).collect();
            let train: Vec<usize> = (0..y.len()).filter(|&i| fold_of[i] != f).collect();
            (train, test)
        })
        .collect())
}

/// Loads a data set from CSV with a header row.
///
/// `target` names the label column (its distinct values become the classes, sorted numerically
/// when all are numbers, else lexically). `features` selects and orders the feature columns;
/// `None` takes every other column. Empty cells and `NaN`/`NA`/`null` become NaN (impute them).
/// Errors name the line and column.
pub fn load_csv<R: Read>(reader: R, target: &str, features: Option<&[String]>) -> Result<Dataset> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| csv_err(1, None, e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let t = col(target).ok_or_else(|| {
        csv_err(
            1,
            Some(target),
            format!(
                "target column not found in header {:?}",
                headers.iter().collect::<Vec<_>>()
            ),
        )
    })?;
    let feat_cols: Vec<(usize, String)> = match features {
        Some(list) => list
            .iter()
            .map(|f| {
                col(f)
                    .map(|c| (c, f.clone()))
                    .ok_or_else(|| csv_err(1, Some(f), "feature column not found in header".into()))
            })
            .collect::<Result<_>>()?,
        None => headers
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != t)
            .map(|(i, h)| (i, h.to_owned()))
            .collect(),
    };
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut line = 1u64;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let l = e.position().map_or(line + 1, |p| p.line());
                return Err(csv_err(l, None, e.to_string()));
            }
        }
        line = rec.position().map_or(line + 1, |p| p.line());
        let label = rec
            .get(t)
            .ok_or_else(|| csv_err(line, Some(target), "missing target value".into()))?;
        if label.is_empty() {
            return Err(csv_err(line, Some(target), "empty target value".into()));
        }
        labels.push(label.to_owned());
        for (c, name) in &feat_cols {
            let cell = rec
                .get(*c)
                .ok_or_else(|| csv_err(line, Some(name), "missing cell".into()))?;
            let v = match cell {
                "" | "NaN" | "nan" | "NA" | "null" => f64::NAN,
                s => s
                    .parse::<f64>()
                    .map_err(|_| csv_err(line, Some(name), format!("{s:?} is not a number")))?,
            };
            data.push(v);
        }
    }
    let mut classes: Vec<String> = labels.clone();
    classes.sort();
    classes.dedup();
    if classes.iter().all(|c| c.parse::<f64>().is_ok()) {
        classes.sort_by(|a, b| {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
    }
    let index: BTreeMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let y = labels.iter().map(|l| index[l.as_str()]).collect();
    let x = Matrix::new(labels.len(), feat_cols.len(), data)?;
    Dataset::new(
        x,
        y,
        feat_cols.into_iter().map(|(_, n)| n).collect(),
        classes,
    )
}

fn csv_err(line: u64, column: Option<&str>, message: String) -> MlError {
    MlError::Csv {
        line,
        column: column.map(str::to_owned),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv1a64;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv1a64::new();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv1a64::new();
        h.write(b"foo");
        h.write(b"bar");
        assert_eq!(h.fingerprint(), "fnv1a64:85944171f73967e8");
    }
}
