//! Kernels and their evaluation over contiguous row-major data.

use serde::{Deserialize, Serialize};

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
}

impl<'a> KernelEval<'a> {
    pub fn new(kernel: Kernel, x: &'a Matrix) -> Self {
        let norms = x.iter_rows().map(|r| dot(r, r)).collect();
        KernelEval { kernel, x, norms }
    }

    #[inline]
    pub fn diag(&self, i: usize) -> f64 {
        self.kernel
            .from_dot(self.norms[i], self.norms[i], self.norms[i])
    }

    /// K(xᵢ, xⱼ) for every j, as f32.
    pub fn row(&self, i: usize, out: &mut [f32]) {
        let xi = self.x.row(i);
        let ni = self.norms[i];
        let mut v = dots(self.x, xi);
        v.truncate(out.len());
        match self.kernel {
            Kernel::Rbf { gamma } => {
                for (a, nj) in v.iter_mut().zip(&self.norms) {
                    *a = -gamma * (ni + nj - 2.0 * *a).max(0.0);
                }
                exp_nonpositive(&mut v);
            }
            k => {
                for (a, nj) in v.iter_mut().zip(&self.norms) {
                    *a = k.from_dot(*a, ni, *nj);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&v) {
            *o = *a as f32;
        }
    }
}
