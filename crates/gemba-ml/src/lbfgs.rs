//! L-BFGS with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5 and 3.6), and
//! OWL-QN (Andrew & Gao 2007) for objectives with an L1 term.

use crate::linalg::{axpy, dot};

/// Stopping rules and memory of the solver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsOptions {
    /// Number of correction pairs kept.
    pub memory: usize,
    pub max_iter: usize,
    /// Converged when max |(pseudo-)gradient| ≤ gtol.
    pub gtol: f64,
    /// Converged when the relative decrease of f in one iteration is ≤ ftol.
    pub ftol: f64,
    /// Function evaluations per line search.
    pub max_linesearch: usize,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            memory: 10,
            max_iter: 1000,
            gtol: 1e-4,
            ftol: 64.0 * f64::EPSILON,
            max_linesearch: 50,
        }
    }
}

/// Result of a minimisation.
#[derive(Debug, Clone)]
pub struct LbfgsResult {
    pub x: Vec<f64>,
    /// Objective value (including the L1 term for OWL-QN).
    pub f: f64,
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
}

struct History {
    s: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    rho: Vec<f64>,
    m: usize,
}

impl History {
    fn new(m: usize) -> Self {
        History {
            s: Vec::new(),
            y: Vec::new(),
            rho: Vec::new(),
            m: m.max(1),
        }
    }
    fn clear(&mut self) {
        self.s.clear();
        self.y.clear();
        self.rho.clear();
    }
    fn push(&mut self, s: Vec<f64>, y: Vec<f64>) {
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        let usable = sy > 1e-10 * yy && sy.is_finite();
        if !usable {
            return; // skip pairs that would break positive definiteness
        }
        if self.s.len() == self.m {
            self.s.remove(0);
            self.y.remove(0);
            self.rho.remove(0);
        }
        self.s.push(s);
        self.y.push(y);
        self.rho.push(1.0 / sy);
    }
    /// Returns −H·g (two-loop recursion).
    #[allow(clippy::needless_range_loop)]
    fn direction(&self, g: &[f64]) -> Vec<f64> {
        let mut q = g.to_vec();
        let k = self.s.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            alpha[i] = self.rho[i] * dot(&self.s[i], &q);
            axpy(-alpha[i], &self.y[i], &mut q);
        }
        if k > 0 {
            let gamma = dot(&self.s[k - 1], &self.y[k - 1]) / dot(&self.y[k - 1], &self.y[k - 1]);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for i in 0..k {
            let beta = self.rho[i] * dot(&self.y[i], &q);
            axpy(alpha[i] - beta, &self.s[i], &mut q);
        }
        q.iter_mut().for_each(|v| *v = -*v);
        q
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// (step, f, directional derivative, evaluated point)
type Trial = (f64, f64, f64, Option<Point>);

struct Point {
    x: Vec<f64>,
    f: f64,
    g: Vec<f64>,
}

/// Minimises a smooth `f` (closure writes the gradient, returns the value), or with `l1` (one
/// non-negative weight per coordinate) `f(x) + Σ l1ᵢ|xᵢ|` by OWL-QN.
pub fn minimize<F>(mut fg: F, x0: Vec<f64>, opt: &LbfgsOptions, l1: Option<&[f64]>) -> LbfgsResult
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    match l1 {
        Some(l1) if l1.iter().any(|&v| v > 0.0) => owlqn(&mut fg, x0, opt, l1),
        _ => lbfgs(&mut fg, x0, opt),
    }
}

fn eval<F: FnMut(&[f64], &mut [f64]) -> f64>(fg: &mut F, x: Vec<f64>) -> Point {
    let mut g = vec![0.0; x.len()];
    let f = fg(&x, &mut g);
    Point { x, f, g }
}

fn lbfgs<F: FnMut(&[f64], &mut [f64]) -> f64>(
    fg: &mut F,
    x0: Vec<f64>,
    opt: &LbfgsOptions,
) -> LbfgsResult {
    let mut cur = eval(fg, x0);
    let mut evals = 1;
    let mut hist = History::new(opt.memory);
    let mut converged = false;
    let mut iter = 0;
    while iter < opt.max_iter {
        if max_abs(&cur.g) <= opt.gtol {
            converged = true;
            break;
        }
        let mut d = hist.direction(&cur.g);
        let mut dg = dot(&d, &cur.g);
        if dg >= 0.0 || dg.is_nan() {
            hist.clear();
            d = cur.g.iter().map(|v| -v).collect();
            dg = dot(&d, &cur.g);
        }
        let a0 = if hist.s.is_empty() {
            (1.0 / dot(&cur.g, &cur.g).sqrt()).min(1.0)
        } else {
            1.0
        };
        let (next, n) = wolfe(fg, &cur, &d, dg, a0, opt.max_linesearch);
        evals += n;
        let Some(next) = next else {
            if hist.s.is_empty() {
                break; // no progress possible along the steepest descent either
            }
            hist.clear();
            continue;
        };
        iter += 1;
        let s: Vec<f64> = next.x.iter().zip(&cur.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.g.iter().zip(&cur.g).map(|(a, b)| a - b).collect();
        hist.push(s, y);
        let decrease = cur.f - next.f;
        let scale = cur.f.abs().max(next.f.abs()).max(1.0);
        cur = next;
        if decrease <= opt.ftol * scale {
            converged = max_abs(&cur.g) <= opt.gtol.max(1e-3);
            break;
        }
    }
    LbfgsResult {
        x: cur.x,
        f: cur.f,
        iterations: iter,
        evaluations: evals,
        converged,
    }
}

/// Strong-Wolfe line search (c1 = 1e-4, c2 = 0.9). Returns the accepted point, or None.
fn wolfe<F: FnMut(&[f64], &mut [f64]) -> f64>(
    fg: &mut F,
    cur: &Point,
    d: &[f64],
    dphi0: f64,
    a0: f64,
    max_eval: usize,
) -> (Option<Point>, usize) {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let f0 = cur.f;
    let at = |a: f64| -> Vec<f64> { cur.x.iter().zip(d).map(|(x, d)| x + a * d).collect() };
    let mut evals = 0;
    // (step, f, dphi, point)
    let mut prev: Trial = (0.0, f0, dphi0, None);
    let mut a = a0;
    let mut bracket: Option<(Trial, Trial)> = None;
    while evals < max_eval {
        let p = eval(fg, at(a));
        evals += 1;
        let dphi = dot(&p.g, d);
        if !p.f.is_finite() {
            a *= 0.5; // overflow: shrink the step
            continue;
        }
        if p.f > f0 + C1 * a * dphi0 || (evals > 1 && p.f >= prev.1) {
            bracket = Some((
                std::mem::replace(&mut prev, (0.0, f0, dphi0, None)),
                (a, p.f, dphi, Some(p)),
            ));
            break;
        }
        if dphi.abs() <= -C2 * dphi0 {
            return (Some(p), evals);
        }
        if dphi >= 0.0 {
            let f = p.f;
            bracket = Some((
                (a, f, dphi, Some(p)),
                std::mem::replace(&mut prev, (0.0, f0, dphi0, None)),
            ));
            break;
        }
        prev = (a, p.f, dphi, Some(p));
        a *= 2.0;
    }
    let Some((mut lo, mut hi)) = bracket else {
        // Ran out of evaluations while expanding: the last point satisfies sufficient decrease.
        return (prev.3, evals);
    };
    while evals < max_eval {
        let (a_lo, a_hi) = (lo.0, hi.0);
        let width = (a_hi - a_lo).abs();
        if width < 1e-16 * a_lo.abs().max(1e-16) {
            break;
        }
        let mut a = cubic_min(lo.0, lo.1, lo.2, hi.0, hi.1, hi.2);
        let (lo_b, hi_b) = (a_lo.min(a_hi), a_lo.max(a_hi));
        if !a.is_finite() || a < lo_b + 0.1 * width || a > hi_b - 0.1 * width {
            a = 0.5 * (a_lo + a_hi);
        }
        let p = eval(fg, at(a));
        evals += 1;
        let dphi = dot(&p.g, d);
        if !p.f.is_finite() || p.f > f0 + C1 * a * dphi0 || p.f >= lo.1 {
            hi = (a, p.f, dphi, Some(p));
        } else {
            if dphi.abs() <= -C2 * dphi0 {
                return (Some(p), evals);
            }
            if dphi * (hi.0 - lo.0) >= 0.0 {
                hi = lo;
            }
            lo = (a, p.f, dphi, Some(p));
        }
    }
    // Accept the best point with sufficient decrease, if any.
    (lo.3.filter(|p| p.f < f0), evals)
}

/// Minimiser of the cubic interpolating (a, fa, da) and (b, fb, db).
fn cubic_min(a: f64, fa: f64, da: f64, b: f64, fb: f64, db: f64) -> f64 {
    let d1 = da + db - 3.0 * (fa - fb) / (a - b);
    let disc = d1 * d1 - da * db;
    if disc < 0.0 {
        return f64::NAN;
    }
    let d2 = (b - a).signum() * disc.sqrt();
    b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
}

fn owlqn<F: FnMut(&[f64], &mut [f64]) -> f64>(
    fg: &mut F,
    x0: Vec<f64>,
    opt: &LbfgsOptions,
    l1: &[f64],
) -> LbfgsResult {
    let reg = |x: &[f64]| -> f64 { x.iter().zip(l1).map(|(x, l)| l * x.abs()).sum() };
    let pseudo = |x: &[f64], g: &[f64]| -> Vec<f64> {
        x.iter()
            .zip(g)
            .zip(l1)
            .map(|((&x, &g), &l)| {
                if x < 0.0 {
                    g - l
                } else if x > 0.0 || g + l < 0.0 {
                    g + l
                } else if g - l > 0.0 {
                    g - l
                } else {
                    0.0
                }
            })
            .collect()
    };
    let mut cur = eval(fg, x0);
    let mut big_f = cur.f + reg(&cur.x);
    let mut evals = 1;
    let mut hist = History::new(opt.memory);
    let mut converged = false;
    let mut iter = 0;
    while iter < opt.max_iter {
        let pg = pseudo(&cur.x, &cur.g);
        if max_abs(&pg) <= opt.gtol {
            converged = true;
            break;
        }
        let mut d = hist.direction(&pg);
        for (di, pgi) in d.iter_mut().zip(&pg) {
            if *di * pgi >= 0.0 {
                *di = 0.0; // keep the direction inside the orthant of steepest descent
            }
        }
        if dot(&d, &pg) >= 0.0 {
            hist.clear();
            d = pg.iter().map(|v| -v).collect();
        }
        let orthant: Vec<f64> = cur
            .x
            .iter()
            .zip(&pg)
            .map(|(&x, &p)| if x != 0.0 { x.signum() } else { -p.signum() })
            .collect();
        let mut a = if hist.s.is_empty() {
            (1.0 / dot(&pg, &pg).sqrt()).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..opt.max_linesearch {
            let xn: Vec<f64> = cur
                .x
                .iter()
                .zip(&d)
                .zip(&orthant)
                .zip(l1)
                .map(|(((x, d), o), l)| {
                    let v = x + a * d;
                    if *l > 0.0 && v * o <= 0.0 { 0.0 } else { v }
                })
                .collect();
            let p = eval(fg, xn);
            evals += 1;
            let fnew = p.f + reg(&p.x);
            let lin: f64 =
                p.x.iter()
                    .zip(&cur.x)
                    .zip(&pg)
                    .map(|((n, o), g)| (n - o) * g)
                    .sum();
            if fnew.is_finite() && fnew <= big_f + 1e-4 * lin {
                accepted = Some((p, fnew));
                break;
            }
            a *= 0.5;
        }
        let Some((next, fnew)) = accepted else {
            if hist.s.is_empty() {
                break;
            }
            hist.clear();
            continue;
        };
        iter += 1;
        let s: Vec<f64> = next.x.iter().zip(&cur.x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next.g.iter().zip(&cur.g).map(|(a, b)| a - b).collect();
        hist.push(s, y);
        let decrease = big_f - fnew;
        let scale = big_f.abs().max(fnew.abs()).max(1.0);
        cur = next;
        big_f = fnew;
        if decrease <= opt.ftol * scale && decrease >= 0.0 {
            let pg = pseudo(&cur.x, &cur.g);
            converged = max_abs(&pg) <= opt.gtol.max(1e-3);
            break;
        }
    }
    LbfgsResult {
        x: cur.x,
        f: big_f,
        iterations: iter,
        evaluations: evals,
        converged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let opt = LbfgsOptions {
            gtol: 1e-10,
            ftol: 0.0,
            ..Default::default()
        };
        let r = minimize(f, vec![-1.2, 1.0], &opt, None);
        assert!(
            (r.x[0] - 1.0).abs() < 1e-6 && (r.x[1] - 1.0).abs() < 1e-6,
            "{r:?}"
        );
    }

    #[test]
    fn lasso_1d() {
        // min (x-3)^2/2 + 1*|x|  → x = 2 ; and with weight 5 → 0
        for (l, want) in [(1.0, 2.0), (5.0, 0.0)] {
            let f = |x: &[f64], g: &mut [f64]| {
                g[0] = x[0] - 3.0;
                0.5 * (x[0] - 3.0).powi(2)
            };
            let opt = LbfgsOptions {
                gtol: 1e-10,
                ..Default::default()
            };
            let r = minimize(f, vec![0.5], &opt, Some(&[l]));
            assert!((r.x[0] - want).abs() < 1e-6, "{r:?}");
        }
    }
}
