//! Kernels and their evaluation over contiguous row-major data.

use serde::{Deserialize, Serialize};

use std::cell::RefCell;
use std::ops::Range;

use crate::data::Matrix;
use crate::linalg::{dot, dot2, exp_nonpositive};

/// A resolved kernel (γ is a number here; `"scale"`/`"auto"` are resolved at fit time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kernel {
    /// ⟨x, z⟩
    Linear,
    /// exp(−γ‖x − z‖²)
    Rbf { gamma: f64 },
    /// (γ⟨x, z⟩ + coef0)^degree
    Poly { gamma: f64, coef0: f64, degree: u32 },
}

impl Kernel {
    /// k(a, b) given the squared norms of a and b (used by RBF).
    #[inline]
    pub fn eval(&self, a: &[f64], b: &[f64], na: f64, nb: f64) -> f64 {
        let d = dot(a, b);
        self.from_dot(d, na, nb)
    }

    #[inline]
    pub fn from_dot(&self, d: f64, na: f64, nb: f64) -> f64 {
        match *self {
            Kernel::Linear => d,
            Kernel::Rbf { gamma } => (-gamma * (na + nb - 2.0 * d).max(0.0)).exp(),
            Kernel::Poly {
                gamma,
                coef0,
                degree,
            } => (gamma * d + coef0).powi(degree as i32),
        }
    }
}

/// `x · row` for every row of `m`, two rows per pass.
pub fn dots(m: &Matrix, x: &[f64]) -> Vec<f64> {
    let n = m.rows;
    let mut v = vec![0.0; n];
    let mut j = 0;
    while j + 1 < n {
        let (a, b) = dot2(x, m.row(j), m.row(j + 1));
        v[j] = a;
        v[j + 1] = b;
        j += 2;
    }
    if j < n {
        v[j] = dot(x, m.row(j));
    }
    v
}

/// A kernel bound to a training matrix, with precomputed squared row norms.
#[derive(Debug)]
pub struct KernelEval<'a> {
    pub kernel: Kernel,
    pub x: &'a Matrix,
    pub norms: Vec<f64>,
    /// One-vs-one: the within-class kernel blocks shared by every pair of the two classes.
    pub blocks: Option<PairBlocks<'a>>,
}

/// Kernel rows of one class against itself, filled lazily and shared between the one-vs-one
/// problems of that class (each within-class row is computed once instead of k − 1 times).
#[derive(Debug)]
pub struct ClassBlock {
    rows: RefCell<Vec<Option<Box<[f32]>>>>,
}

impl ClassBlock {
    pub fn new(n: usize) -> Self {
        ClassBlock {
            rows: RefCell::new(vec![None; n]),
        }
    }
}

/// The two classes of a one-vs-one problem whose rows are laid out first-class-first.
#[derive(Debug, Clone, Copy)]
pub struct PairBlocks<'a> {
    pub first: &'a ClassBlock,
    pub second: &'a ClassBlock,
    pub n_first: usize,
}

impl<'a> KernelEval<'a> {
    pub fn new(kernel: Kernel, x: &'a Matrix) -> Self {
        let norms = x.iter_rows().map(|r| dot(r, r)).collect();
        KernelEval {
            kernel,
            x,
            norms,
            blocks: None,
        }
    }

    #[inline]
    pub fn diag(&self, i: usize) -> f64 {
        self.kernel
            .from_dot(self.norms[i], self.norms[i], self.norms[i])
    }

    /// K(xᵢ, xⱼ) for j in `range`, written to `out` (of the range's length).
    fn row_range(&self, i: usize, range: Range<usize>, out: &mut [f32]) {
        let xi = self.x.row(i);
        let ni = self.norms[i];
        let n = range.len();
        let mut v = vec![0.0; n];
        let mut t = 0;
        while t + 1 < n {
            let j = range.start + t;
            let (a, b) = dot2(xi, self.x.row(j), self.x.row(j + 1));
            v[t] = a;
            v[t + 1] = b;
            t += 2;
        }
        if t < n {
            v[t] = dot(xi, self.x.row(range.start + t));
        }
        let norms = &self.norms[range];
        match self.kernel {
            Kernel::Rbf { gamma } => {
                for (a, nj) in v.iter_mut().zip(norms) {
                    *a = -gamma * (ni + nj - 2.0 * *a).max(0.0);
                }
                exp_nonpositive(&mut v);
            }
            k => {
                for (a, nj) in v.iter_mut().zip(norms) {
                    *a = k.from_dot(*a, ni, *nj);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&v) {
            *o = *a as f32;
        }
    }

    /// K(xᵢ, xⱼ) for every j, as f32 (the within-class part from the shared block, if any).
    pub fn row(&self, i: usize, out: &mut [f32]) {
        let l = out.len();
        let Some(pb) = self.blocks else {
            self.row_range(i, 0..l, out);
            return;
        };
        let (block, own, pos, cross) = if i < pb.n_first {
            (pb.first, 0..pb.n_first, i, pb.n_first..l)
        } else {
            (pb.second, pb.n_first..l, i - pb.n_first, 0..pb.n_first)
        };
        {
            let mut rows = block.rows.borrow_mut();
            if rows[pos].is_none() {
                let mut r = vec![0.0f32; own.len()];
                self.row_range(i, own.clone(), &mut r);
                rows[pos] = Some(r.into_boxed_slice());
            }
            if let Some(r) = &rows[pos] {
                out[own].copy_from_slice(r);
            }
        }
        self.row_range(i, cross.clone(), &mut out[cross]);
    }
}
