//! Kernels and their evaluation over contiguous row-major data.

use serde::{Deserialize, Serialize};

use crate::data::Matrix;
use crate::lbfgs::dot;

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
        let d = self.x.cols;
        for (j, (o, xj)) in out
            .iter_mut()
            .zip(self.x.data.chunks_exact(d.max(1)))
            .enumerate()
        {
            *o = self.kernel.from_dot(dot(xi, xj), ni, self.norms[j]) as f32;
        }
    }
}
