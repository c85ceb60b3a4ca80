//! SMO for the C-SVC dual (Fan, Chen & Lin 2005, as in libsvm): second-order working-set
//! selection (WSS2), shrinking with gradient reconstruction, and an LRU cache of Q rows (f32).
//!
//! min ½αᵀQα − eᵀα  s.t.  0 ≤ αᵢ ≤ Cᵢ, yᵀα = 0,  Qᵢⱼ = yᵢyⱼK(xᵢ, xⱼ).

use super::kernel::KernelEval;

const TAU: f64 = 1e-12;
const NONE: u32 = u32::MAX;

/// LRU cache of full Q rows, stored as f32 like libsvm.
struct QCache {
    l: usize,
    data: Vec<f32>,
    slot_of: Vec<u32>,
    owner: Vec<u32>,
    stamp: Vec<u64>,
    clock: u64,
    capacity: usize,
    pub hits: u64,
    pub misses: u64,
}

impl QCache {
    fn new(l: usize, cache_bytes: usize) -> Self {
        let capacity = (cache_bytes / (4 * l.max(1))).clamp(2, l.max(2));
        QCache {
            l,
            data: Vec::new(),
            slot_of: vec![NONE; l],
            owner: Vec::with_capacity(capacity),
            stamp: Vec::with_capacity(capacity),
            clock: 0,
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// Slot holding row i, computing it if needed; never evicts `pinned`.
    fn get(&mut self, i: usize, pinned: u32, k: &KernelEval<'_>, y: &[f64]) -> u32 {
        self.clock += 1;
        let s = self.slot_of[i];
        if s != NONE {
            self.stamp[s as usize] = self.clock;
            self.hits += 1;
            return s;
        }
        self.misses += 1;
        let slot = if self.owner.len() < self.capacity {
            self.owner.push(i as u32);
            self.stamp.push(self.clock);
            self.data.resize(self.owner.len() * self.l, 0.0);
            (self.owner.len() - 1) as u32
        } else {
            let mut best = usize::MAX;
            let mut best_stamp = u64::MAX;
            for (t, &st) in self.stamp.iter().enumerate() {
                if t as u32 != pinned && st < best_stamp {
                    best = t;
                    best_stamp = st;
                }
            }
            self.slot_of[self.owner[best] as usize] = NONE;
            self.owner[best] = i as u32;
            self.stamp[best] = self.clock;
            best as u32
        };
        self.slot_of[i] = slot;
        let row = &mut self.data[slot as usize * self.l..(slot as usize + 1) * self.l];
        k.row(i, row);
        let yi = y[i];
        for (r, &yj) in row.iter_mut().zip(y) {
            if yi * yj < 0.0 {
                *r = -*r;
            }
        }
        slot
    }

    #[inline]
    fn row(&self, slot: u32) -> &[f32] {
        &self.data[slot as usize * self.l..(slot as usize + 1) * self.l]
    }
}

/// Solver settings.
#[derive(Debug, Clone, Copy)]
pub struct SmoOptions {
    pub eps: f64,
    pub shrinking: bool,
    pub cache_bytes: usize,
    pub max_iter: usize,
}

/// Solution of one binary problem.
#[derive(Debug, Clone)]
pub struct SmoSolution {
    /// αᵢ (unsigned).
    pub alpha: Vec<f64>,
    pub rho: f64,
    pub iterations: usize,
    pub converged: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Status {
    Lower,
    Upper,
    Free,
}

/// Solves the C-SVC dual for labels `y` (±1) and per-sample bounds `c`.
pub fn solve(k: &KernelEval<'_>, y: &[f64], c: &[f64], opt: &SmoOptions) -> SmoSolution {
    let l = y.len();
    let mut cache = QCache::new(l, opt.cache_bytes);
    let qd: Vec<f64> = (0..l).map(|i| k.diag(i)).collect();
    let mut alpha = vec![0.0; l];
    let mut g = vec![-1.0; l];
    let mut g_bar = vec![0.0; l];
    let mut status = vec![Status::Lower; l];
    let upd = |a: f64, c: f64| {
        if a >= c {
            Status::Upper
        } else if a <= 0.0 {
            Status::Lower
        } else {
            Status::Free
        }
    };
    let mut active: Vec<usize> = (0..l).collect();
    let mut unshrink = false;
    let mut counter = l.min(1000) + 1;
    let mut iter = 0;
    let mut converged = false;

    while iter < opt.max_iter {
        counter -= 1;
        if counter == 0 {
            counter = l.min(1000);
            if opt.shrinking {
                // do_shrinking
                let (mut gmax1, mut gmax2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
                for &i in &active {
                    if y[i] > 0.0 {
                        if status[i] != Status::Upper {
                            gmax1 = gmax1.max(-g[i]);
                        }
                        if status[i] != Status::Lower {
                            gmax2 = gmax2.max(g[i]);
                        }
                    } else {
                        if status[i] != Status::Upper {
                            gmax2 = gmax2.max(-g[i]);
                        }
                        if status[i] != Status::Lower {
                            gmax1 = gmax1.max(g[i]);
                        }
                    }
                }
                if !unshrink && gmax1 + gmax2 <= opt.eps * 10.0 {
                    unshrink = true;
                    reconstruct(&mut g, &g_bar, &alpha, &status, &active, &mut cache, k, y);
                    active = (0..l).collect();
                }
                active.retain(|&i| match status[i] {
                    Status::Upper => {
                        if y[i] > 0.0 {
                            -g[i] <= gmax1
                        } else {
                            -g[i] <= gmax2
                        }
                    }
                    Status::Lower => {
                        if y[i] > 0.0 {
                            g[i] <= gmax2
                        } else {
                            g[i] <= gmax1
                        }
                    }
                    Status::Free => true,
                });
            }
        }
        let ws = select(&active, y, &g, &status, &qd, &mut cache, k, opt.eps);
        let (i, j) = match ws {
            Some(p) => p,
            None => {
                if active.len() < l {
                    reconstruct(&mut g, &g_bar, &alpha, &status, &active, &mut cache, k, y);
                    active = (0..l).collect();
                    if let Some(p) = select(&active, y, &g, &status, &qd, &mut cache, k, opt.eps) {
                        counter = 1; // shrink again at the next iteration
                        p
                    } else {
                        converged = true;
                        break;
                    }
                } else {
                    converged = true;
                    break;
                }
            }
        };
        iter += 1;

        let si = cache.get(i, NONE, k, y);
        let sj = cache.get(j, si, k, y);
        let (ci, cj) = (c[i], c[j]);
        let (old_ai, old_aj) = (alpha[i], alpha[j]);
        let qij = f64::from(cache.row(si)[j]);
        let (mut ai, mut aj) = (old_ai, old_aj);
        if y[i] != y[j] {
            let mut quad = qd[i] + qd[j] + 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (-g[i] - g[j]) / quad;
            let diff = ai - aj;
            ai += delta;
            aj += delta;
            if diff > 0.0 {
                if aj < 0.0 {
                    aj = 0.0;
                    ai = diff;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = -diff;
            }
            if diff > ci - cj {
                if ai > ci {
                    ai = ci;
                    aj = ci - diff;
                }
            } else if aj > cj {
                aj = cj;
                ai = cj + diff;
            }
        } else {
            let mut quad = qd[i] + qd[j] - 2.0 * qij;
            if quad <= 0.0 {
                quad = TAU;
            }
            let delta = (g[i] - g[j]) / quad;
            let sum = ai + aj;
            ai -= delta;
            aj += delta;
            if sum > ci {
                if ai > ci {
                    ai = ci;
                    aj = sum - ci;
                }
            } else if aj < 0.0 {
                aj = 0.0;
                ai = sum;
            }
            if sum > cj {
                if aj > cj {
                    aj = cj;
                    ai = sum - cj;
                }
            } else if ai < 0.0 {
                ai = 0.0;
                aj = sum;
            }
        }
        alpha[i] = ai;
        alpha[j] = aj;
        let dai = ai - old_ai;
        let daj = aj - old_aj;
        {
            let (qi, qj) = (cache.row(si), cache.row(sj));
            if active.len() == l {
                for ((gk, &a), &b) in g.iter_mut().zip(qi).zip(qj) {
                    *gk += f64::from(a) * dai + f64::from(b) * daj;
                }
            } else {
                for &t in &active {
                    g[t] += f64::from(qi[t]) * dai + f64::from(qj[t]) * daj;
                }
            }
        }
        let (ui, uj) = (status[i] == Status::Upper, status[j] == Status::Upper);
        status[i] = upd(ai, ci);
        status[j] = upd(aj, cj);
        for (idx, slot, was_upper, cc) in [(i, si, ui, ci), (j, sj, uj, cj)] {
            let now_upper = status[idx] == Status::Upper;
            if was_upper != now_upper {
                let q = cache.row(slot);
                let s = if now_upper { cc } else { -cc };
                for (gb, &v) in g_bar.iter_mut().zip(q) {
                    *gb += s * f64::from(v);
                }
            }
        }
    }
    if active.len() < l {
        reconstruct(&mut g, &g_bar, &alpha, &status, &active, &mut cache, k, y);
    }
    // rho
    let (mut ub, mut lb) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut nfree, mut sfree) = (0usize, 0.0);
    for i in 0..l {
        let yg = y[i] * g[i];
        match status[i] {
            Status::Upper => {
                if y[i] < 0.0 {
                    ub = ub.min(yg);
                } else {
                    lb = lb.max(yg);
                }
            }
            Status::Lower => {
                if y[i] > 0.0 {
                    ub = ub.min(yg);
                } else {
                    lb = lb.max(yg);
                }
            }
            Status::Free => {
                nfree += 1;
                sfree += yg;
            }
        }
    }
    let rho = if nfree > 0 {
        sfree / nfree as f64
    } else {
        (ub + lb) / 2.0
    };
    SmoSolution {
        alpha,
        rho,
        iterations: iter,
        converged,
    }
}

#[allow(clippy::too_many_arguments)]
/// WSS2: i maximises −yᵢ∇ᵢ over I_up; j minimises the second-order objective decrease.
fn select(
    active: &[usize],
    y: &[f64],
    g: &[f64],
    status: &[Status],
    qd: &[f64],
    cache: &mut QCache,
    k: &KernelEval<'_>,
    eps: f64,
) -> Option<(usize, usize)> {
    let mut gmax = f64::NEG_INFINITY;
    let mut gmax2 = f64::NEG_INFINITY;
    let mut imax = usize::MAX;
    for &t in active {
        if y[t] > 0.0 {
            if status[t] != Status::Upper && -g[t] >= gmax {
                gmax = -g[t];
                imax = t;
            }
        } else if status[t] != Status::Lower && g[t] >= gmax {
            gmax = g[t];
            imax = t;
        }
    }
    if imax == usize::MAX {
        return None;
    }
    let i = imax;
    let si = cache.get(i, NONE, k, y);
    let qi = cache.row(si);
    let yi = y[i];
    let mut jmin = usize::MAX;
    let mut obj_min = f64::INFINITY;
    for &j in active {
        if y[j] > 0.0 {
            if status[j] != Status::Lower {
                let grad_diff = gmax + g[j];
                if g[j] >= gmax2 {
                    gmax2 = g[j];
                }
                if grad_diff > 0.0 {
                    let quad = qd[i] + qd[j] - 2.0 * yi * f64::from(qi[j]);
                    let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                    if obj <= obj_min {
                        jmin = j;
                        obj_min = obj;
                    }
                }
            }
        } else if status[j] != Status::Upper {
            let grad_diff = gmax - g[j];
            if -g[j] >= gmax2 {
                gmax2 = -g[j];
            }
            if grad_diff > 0.0 {
                let quad = qd[i] + qd[j] + 2.0 * yi * f64::from(qi[j]);
                let obj = -(grad_diff * grad_diff) / if quad > 0.0 { quad } else { TAU };
                if obj <= obj_min {
                    jmin = j;
                    obj_min = obj;
                }
            }
        }
    }
    if gmax + gmax2 < eps || jmin == usize::MAX {
        return None;
    }
    Some((i, jmin))
}

#[allow(clippy::too_many_arguments)]
fn reconstruct(
    g: &mut [f64],
    g_bar: &[f64],
    alpha: &[f64],
    status: &[Status],
    active: &[usize],
    cache: &mut QCache,
    k: &KernelEval<'_>,
    y: &[f64],
) {
    let l = g.len();
    let mut is_active = vec![false; l];
    for &i in active {
        is_active[i] = true;
    }
    let inactive: Vec<usize> = (0..l).filter(|&i| !is_active[i]).collect();
    if inactive.is_empty() {
        return;
    }
    for &j in &inactive {
        g[j] = g_bar[j] - 1.0;
    }
    for &j in active {
        if status[j] == Status::Free {
            let s = cache.get(j, NONE, k, y);
            let q = cache.row(s);
            let a = alpha[j];
            for &t in &inactive {
                g[t] += a * f64::from(q[t]);
            }
        }
    }
}
