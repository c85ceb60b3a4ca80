//! Input data: tables of sensor values (rows × features) and image sets (n × C × H × W), both
//! f32, checked for shape and finiteness; the standard scaler; seeded random draws.

#[cfg(feature = "nets")]
use rand::{Rng, SeedableRng};
#[cfg(feature = "nets")]
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// Rows × features, row-major, every value finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
    names: Vec<String>,
}

impl Table {
    /// Checks the shape and that every value is finite (errors name the row and the feature).
    pub fn new(names: Vec<String>, data: Vec<f32>) -> Result<Self> {
        let cols = names.len();
        if cols == 0 {
            return Err(NnError::EmptyData(
                "a table needs at least one feature".into(),
            ));
        }
        if !data.len().is_multiple_of(cols) {
            return Err(NnError::Shape {
                expected: format!("a multiple of {cols} values ({cols} features)"),
                got: format!("{} values", data.len()),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(NnError::NonFinite {
                row: i / cols,
                feature: names[i % cols].clone(),
                value: f64::from(data[i]),
            });
        }
        Ok(Self {
            rows: data.len() / cols,
            cols,
            data,
            names,
        })
    }

    /// From f64 rows (every row must have `names.len()` values).
    pub fn from_rows(names: Vec<String>, rows: &[Vec<f64>]) -> Result<Self> {
        let cols = names.len();
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(NnError::Shape {
                    expected: format!("{cols} values per row"),
                    got: format!("{} values in row {i}", r.len()),
                });
            }
            data.extend(r.iter().map(|&v| v as f32));
        }
        Self::new(names, data)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: idx.len(),
            cols: self.cols,
            data,
            names: self.names.clone(),
        }
    }
}

/// n images of C × H × W values in [0, 1], stored channel-first per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    data: Vec<f32>,
}

impl ImageSet {
    /// Checks the length and that every value is finite and within [0, 1].
    pub fn new(channels: usize, height: usize, width: usize, data: Vec<f32>) -> Result<Self> {
        let d = channels * height * width;
        if d == 0 {
            return Err(NnError::Shape {
                expected: "C, H and W at least 1".into(),
                got: format!("{channels} × {height} × {width}"),
            });
        }
        if !data.len().is_multiple_of(d) {
            return Err(NnError::Shape {
                expected: format!("a multiple of {channels}×{height}×{width} = {d} values"),
                got: format!("{} values", data.len()),
            });
        }
        if let Some(i) = data
            .iter()
            .position(|v| !v.is_finite() || *v < 0.0 || *v > 1.0)
        {
            let k = i % d;
            return Err(NnError::NonFinite {
                row: i / d,
                feature: format!(
                    "pixel c{} y{} x{} (must lie in [0, 1])",
                    k / (height * width),
                    (k / width) % height,
                    k % width
                ),
                value: f64::from(data[i]),
            });
        }
        Ok(Self {
            n: data.len() / d,
            channels,
            height,
            width,
            data,
        })
    }
    /// Values per image (C·H·W).
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn image(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.data[i * d..(i + 1) * d]
    }
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.dim());
        for &i in idx {
            data.extend_from_slice(self.image(i));
        }
        Self {
            n: idx.len(),
            data,
            ..*self
        }
    }
}

/// Standardisation fitted on training rows (population std; constant features keep scale 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Scaler {
    pub fn fit(t: &Table) -> Self {
        let (n, d) = (t.rows().max(1) as f64, t.cols());
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for i in 0..t.rows() {
            for (j, &v) in t.row(i).iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let mut scale = vec![1f32; d];
        for j in 0..d {
            mean[j] /= n;
            let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
            if var > 1e-12 {
                scale[j] = var.sqrt() as f32;
            }
        }
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            scale,
        }
    }
    /// Standardised copy of row-major data with `self.mean.len()` columns.
    pub fn transform(&self, data: &[f32]) -> Vec<f32> {
        let d = self.mean.len();
        data.iter()
            .enumerate()
            .map(|(i, &v)| (v - self.mean[i % d]) / self.scale[i % d])
            .collect()
    }
}

#[cfg(feature = "nets")]
/// A seeded ChaCha8 stream: the same seed gives the same draws on every platform.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

#[cfg(feature = "nets")]
/// Standard normal draws (Box–Muller).
pub(crate) fn normals(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.r#gen::<f64>();
        let u2: f64 = rng.r#gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(feature = "nets")]
/// A permutation of 0..n (Fisher–Yates).
pub(crate) fn permutation(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        p.swap(i, j);
    }
    p
}

#[cfg(feature = "nets")]
/// Splits 0..n into (train, validation) at random: the validation part is `fraction` of the rows.
pub(crate) fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut p = permutation(&mut rng(seed, 1), n);
    let n_val = ((n as f64) * fraction).round() as usize;
    let val = p.split_off(n - n_val.min(n));
    (p, val)
}

#[cfg(feature = "nets")]
/// FNV-1a 64 over the values' little-endian bytes, for the artefact's data fingerprint.
pub(crate) fn fingerprint(data: &[f32]) -> String {
    let mut h = gemba_ml::data::Fnv1a64::new();
    for v in data {
        h.write(&v.to_le_bytes());
    }
    h.fingerprint()
}

#[cfg(all(test, feature = "nets"))]
mod tests {
    #[test]
    fn the_fingerprint_is_unchanged() {
        // FNV-1a 64 of the bytes of 1.0f32 and −2.5f32, as artefacts and checkpoints store it.
        assert_eq!(super::fingerprint(&[1.0, -2.5]), "fnv1a64:09e629ee2dfdb3f8");
    }
}
