//! Gemba patch (see GEMBA-PATCH.md): 2-D convolution, transposed convolution and the gradients
//! of both as im2col / col2im on NCHW data plus one `gemm` call per tile of images.
//!
//! Upstream burn-flex 0.22.1 converts every input to NHWC and runs one gemm per image and tile
//! of output positions for the forward pass, and computes the weight gradient as a convolution
//! of the batch-swapped input with the batch-swapped output gradient (a kernel as large as the
//! image, im2col buffers of hundreds of megabytes). Here all six operations are three kernels
//! over one geometry, the way PyTorch's reference CPU convolution works:
//!
//! - `forward`:       `y = W · im2col(x)`            (conv forward; transposed conv's input grad)
//! - `backward_data`: `x = col2im(Wᵀ · y)`           (conv input grad; transposed conv forward)
//! - `backward_weight`: `W = Σ_b y_b · im2col(x_b)ᵀ` (both weight gradients)
//!
//! `Geom` describes the convolution from the side of its larger tensor (`c × h × w`, what
//! im2col reads and col2im writes) to the kernel positions (`oh × ow`). Images whose kernel
//! positions are few are put side by side into one gemm (up to 1,024 columns and 1 MiB of
//! column buffer, which then stays in cache between the gemm and col2im). Short rows (output
//! width < 16 or a horizontal stride) go through a table of offsets into a zero-padded copy
//! of the image (`Taps`) instead of per-row bounds arithmetic. Single-threaded, like the rest
//! of Gemba's use of Burn.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::conv::{calculate_conv_output_size, calculate_conv_transpose_output_size};
use burn_backend::ops::{ConvOptions, ConvTransposeOptions};
use burn_backend::{DType, Element};
use burn_std::{Bytes, Shape};

use crate::ops::conv2d_tapwise;
use crate::ops::module::{cast_from_f32, cast_to_f32};
use crate::{FlexTensor, Layout};

/// A 2-D convolution seen from its larger side: `c` channels of `h × w` read by a
/// `kh × kw` kernel at `oh × ow` positions (stride, zero padding and dilation per axis).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    /// Channels per group on the large side.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
}

impl Geom {
    /// Rows of a column matrix: one per (channel, kernel row, kernel column).
    pub(super) fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Kernel positions per image.
    pub(super) fn n(&self) -> usize {
        self.oh * self.ow
    }
    pub(super) fn plane(&self) -> usize {
        self.h * self.w
    }
    /// Images per gemm: one when an image has `ONE_IMAGE_COLS` kernel positions or more (its
    /// gemm is wide enough, and its rows need no gathering), else enough for about
    /// `TARGET_COLS` columns, within `MAX_COL_BYTES` of columns.
    fn tile(&self, batch: usize, elem: usize) -> usize {
        const ONE_IMAGE_COLS: usize = 128;
        const TARGET_COLS: usize = 1024;
        // Column buffers that stay in L2/L3 between the gemm that writes them and col2im that
        // reads them (or im2col and the gemm): 1 MiB measured best of 0.5, 0.75, 1, 2, 4 and
        // 16 MiB on the DCGAN's layers (4 and 16 MiB: up to 2× slower).
        const MAX_COL_BYTES: usize = 1 << 20;
        let n = self.n().max(1);
        if n >= ONE_IMAGE_COLS {
            return 1;
        }
        let by_cols = TARGET_COLS.div_ceil(n);
        let by_bytes = (MAX_COL_BYTES / (self.k().max(1) * n * elem)).max(1);
        by_cols.min(by_bytes).clamp(1, batch.max(1))
    }
}

/// The kernel positions `o` in `0..count` with `0 <= o * stride + offset - pad < size`.
pub(super) fn valid(count: usize, offset: usize, pad: usize, stride: usize, size: usize) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if size + pad > offset {
        ((size + pad - offset - 1) / stride + 1).min(count)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Writes the column matrix of one image (`src`: `c × h × w`) into `cols` (row stride `ld`),
/// columns `j0..j0 + oh·ow`.
fn im2col<T: Copy>(src: &[T], g: &Geom, cols: &mut [T], ld: usize, j0: usize, zero: T) {
    let n = g.n();
    for ci in 0..g.c {
        let plane = &src[ci * g.plane()..(ci + 1) * g.plane()];
        for ki in 0..g.kh {
            let (ylo, yhi) = valid(g.oh, ki * g.dil[0], g.pad[0], g.stride[0], g.h);
            for kj in 0..g.kw {
                let (xlo, xhi) = valid(g.ow, kj * g.dil[1], g.pad[1], g.stride[1], g.w);
                let r = (ci * g.kh + ki) * g.kw + kj;
                let row = &mut cols[r * ld + j0..r * ld + j0 + n];
                row[..ylo * g.ow].fill(zero);
                row[yhi * g.ow..].fill(zero);
                for oy in ylo..yhi {
                    let iy = oy * g.stride[0] + ki * g.dil[0] - g.pad[0];
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    dst[..xlo].fill(zero);
                    dst[xhi..].fill(zero);
                    if xlo == xhi {
                        continue;
                    }
                    let ix0 = xlo * g.stride[1] + kj * g.dil[1] - g.pad[1];
                    let srow = &plane[iy * g.w..(iy + 1) * g.w];
                    let dst = &mut dst[xlo..xhi];
                    if g.stride[1] == 1 {
                        dst.copy_from_slice(&srow[ix0..ix0 + dst.len()]);
                    } else {
                        for (d, s) in dst.iter_mut().zip(srow[ix0..].iter().step_by(g.stride[1])) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the column matrix of one image (`cols`, row stride `ld`, columns `j0..j0 + oh·ow`)
/// back onto its `c × h × w` tensor `dst`.
fn col2im<T: Copy + core::ops::AddAssign>(
    cols: &[T],
    ld: usize,
    j0: usize,
    g: &Geom,
    dst: &mut [T],
) {
    let n = g.n();
    for ci in 0..g.c {
        let plane = &mut dst[ci * g.plane()..(ci + 1) * g.plane()];
        for ki in 0..g.kh {
            let (ylo, yhi) = valid(g.oh, ki * g.dil[0], g.pad[0], g.stride[0], g.h);
            for kj in 0..g.kw {
                let (xlo, xhi) = valid(g.ow, kj * g.dil[1], g.pad[1], g.stride[1], g.w);
                if xlo == xhi {
                    continue;
                }
                let r = (ci * g.kh + ki) * g.kw + kj;
                let row = &cols[r * ld + j0..r * ld + j0 + n];
                for oy in ylo..yhi {
                    let iy = oy * g.stride[0] + ki * g.dil[0] - g.pad[0];
                    let ix0 = xlo * g.stride[1] + kj * g.dil[1] - g.pad[1];
                    let src = &row[oy * g.ow + xlo..oy * g.ow + xhi];
                    let drow = &mut plane[iy * g.w..(iy + 1) * g.w];
                    if g.stride[1] == 1 {
                        for (d, s) in drow[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (d, s) in drow[ix0..].iter_mut().step_by(g.stride[1]).zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// Small outputs: the offset of every (kernel tap, kernel position) in the image with its
/// zero padding written out, so im2col is one gather and col2im one scatter per tap, without
/// the per-row bounds arithmetic that dominates when rows are a handful of elements long.
struct Taps {
    hp: usize,
    wp: usize,
    /// `kh·kw × oh·ow` offsets into one padded `hp × wp` plane.
    offs: Vec<u32>,
}

impl Taps {
    fn new(g: &Geom) -> Self {
        let hp =
            (g.h + 2 * g.pad[0]).max((g.oh.max(1) - 1) * g.stride[0] + (g.kh - 1) * g.dil[0] + 1);
        let wp =
            (g.w + 2 * g.pad[1]).max((g.ow.max(1) - 1) * g.stride[1] + (g.kw - 1) * g.dil[1] + 1);
        let mut offs = Vec::with_capacity(g.kh * g.kw * g.n());
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let y = oy * g.stride[0] + ki * g.dil[0];
                        let x = ox * g.stride[1] + kj * g.dil[1];
                        offs.push((y * wp + x) as u32);
                    }
                }
            }
        }
        Self { hp, wp, offs }
    }
    fn plane(&self) -> usize {
        self.hp * self.wp
    }
    /// Whether to use taps for this geometry (and whether their offsets fit in u32).
    fn suits(g: &Geom) -> bool {
        let big = (g.h + 2 * g.pad[0] + g.kh * g.dil[0]) * (g.w + 2 * g.pad[1] + g.kw * g.dil[1]);
        (g.ow < 16 || g.stride[1] != 1) && big < u32::MAX as usize
    }
    /// Copies one image's `c × h × w` planes into the interior of `padded` (borders stay zero).
    fn fill<T: Copy>(&self, g: &Geom, src: &[T], padded: &mut [T]) {
        for ci in 0..g.c {
            for y in 0..g.h {
                let d = ci * self.plane() + (y + g.pad[0]) * self.wp + g.pad[1];
                padded[d..d + g.w].copy_from_slice(&src[(ci * g.h + y) * g.w..][..g.w]);
            }
        }
    }
    fn im2col<T: Copy>(&self, g: &Geom, padded: &[T], cols: &mut [T], ld: usize, j0: usize) {
        let (n, taps) = (g.n(), g.kh * g.kw);
        for ci in 0..g.c {
            let plane = &padded[ci * self.plane()..(ci + 1) * self.plane()];
            let Some(last) = plane.len().checked_sub(1) else {
                continue;
            };
            for kk in 0..taps {
                let r = ci * taps + kk;
                let row = &mut cols[r * ld + j0..r * ld + j0 + n];
                // `min(last)` never binds (every offset is inside the plane); it lets the
                // compiler drop the bounds check and vectorise the gather.
                for (d, &o) in row.iter_mut().zip(&self.offs[kk * n..(kk + 1) * n]) {
                    *d = plane[(o as usize).min(last)];
                }
            }
        }
    }
    /// Adds the columns onto `padded` (zeroed by the caller) and then its interior onto `dst`.
    fn col2im<T: Copy + core::ops::AddAssign>(
        &self,
        g: &Geom,
        cols: &[T],
        ld: usize,
        j0: usize,
        padded: &mut [T],
        dst: &mut [T],
    ) {
        let (n, taps) = (g.n(), g.kh * g.kw);
        for ci in 0..g.c {
            let plane = &mut padded[ci * self.plane()..(ci + 1) * self.plane()];
            let Some(last) = plane.len().checked_sub(1) else {
                continue;
            };
            for kk in 0..taps {
                let r = ci * taps + kk;
                let row = &cols[r * ld + j0..r * ld + j0 + n];
                for (s, &o) in row.iter().zip(&self.offs[kk * n..(kk + 1) * n]) {
                    plane[(o as usize).min(last)] += *s;
                }
            }
            for y in 0..g.h {
                let p = (y + g.pad[0]) * self.wp + g.pad[1];
                let drow = &mut dst[(ci * g.h + y) * g.w..][..g.w];
                for (d, s) in drow.iter_mut().zip(&plane[p..p + g.w]) {
                    *d += *s;
                }
            }
        }
    }
}

/// im2col of one image by rows or by taps (`Taps::suits`).
struct Im2col<T> {
    taps: Option<Taps>,
    padded: Vec<T>,
}

impl<T: num_traits::Float + core::ops::AddAssign> Im2col<T> {
    fn new(g: &Geom) -> Self {
        let taps = Taps::suits(g).then(|| Taps::new(g));
        let padded = match &taps {
            Some(t) => vec![T::zero(); g.c * t.plane()],
            None => Vec::new(),
        };
        Self { taps, padded }
    }
    fn im2col(&mut self, g: &Geom, src: &[T], cols: &mut [T], ld: usize, j0: usize) {
        match &self.taps {
            Some(t) => {
                t.fill(g, src, &mut self.padded);
                t.im2col(g, &self.padded, cols, ld, j0);
            }
            None => im2col(src, g, cols, ld, j0, T::zero()),
        }
    }
    fn col2im(&mut self, g: &Geom, cols: &[T], ld: usize, j0: usize, dst: &mut [T]) {
        match &self.taps {
            Some(t) => {
                self.padded.fill(T::zero());
                t.col2im(g, cols, ld, j0, &mut self.padded, dst);
            }
            None => col2im(cols, ld, j0, g, dst),
        }
    }
}

/// `dst (m × n) = [dst +] lhs (m × k) · rhs (k × n)`, every matrix given by its
/// (column, row) strides.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: num_traits::Float + 'static>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    (dst_cs, dst_rs): (isize, isize),
    accumulate: bool,
    lhs: &[T],
    (lhs_cs, lhs_rs): (isize, isize),
    rhs: &[T],
    (rhs_cs, rhs_rs): (isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |cs: isize, rs: isize, rows: usize, cols: usize| {
        (rows.saturating_sub(1)) as isize * rs + (cols.saturating_sub(1)) as isize * cs
    };
    // The gemm crate takes raw pointers: check that every element it may touch is in bounds.
    assert!(last(dst_cs, dst_rs, m, n) < dst.len() as isize);
    if k > 0 {
        assert!(last(lhs_cs, lhs_rs, m, k) < lhs.len() as isize);
        assert!(last(rhs_cs, rhs_rs, k, n) < rhs.len() as isize);
    }
    // SAFETY: the three matrices lie inside their slices (checked above), `dst` is borrowed
    // mutably and so overlaps neither input, and all strides are non-negative.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Adds `bias[ch]` to every `plane`-long plane of channel `ch` of every image of `data`.
fn add_bias<T: num_traits::Float>(data: &mut [T], bias: Option<&[T]>, plane: usize) {
    let Some(bias) = bias else { return };
    if plane == 0 || bias.is_empty() {
        return;
    }
    for img in data.chunks_mut(bias.len() * plane) {
        for (p, &b) in img.chunks_mut(plane).zip(bias) {
            p.iter_mut().for_each(|v| *v = *v + b);
        }
    }
}

/// Whether `g` goes tap by tap (`conv2d_tapwise::suits`). With the `std` feature, the
/// environment variable `GEMBA_CONV_TAPWISE=0` (read once) keeps every convolution on im2col,
/// so that the two paths can be timed against each other in one build.
fn tapwise(g: &Geom, mg: usize) -> bool {
    #[cfg(feature = "std")]
    {
        extern crate std;
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *OFF.get_or_init(|| std::env::var("GEMBA_CONV_TAPWISE").is_ok_and(|v| v == "0")) {
            return false;
        }
    }
    conv2d_tapwise::suits(g, mg)
}

/// `out[b, m, oh, ow] = W · im2col(x[b]) (+ bias)`, per group.
/// `x`: `batch × (groups·c) × h × w`; `w`: `m × (c·kh·kw)` (`m` = all groups' rows).
pub(crate) fn forward<T: num_traits::Float + core::ops::AddAssign + 'static>(
    x: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    w: &[T],
    m: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    let (k, n, mg) = (g.k(), g.n(), m / groups);
    if tapwise(g, mg) {
        let mut out = conv2d_tapwise::forward(x, batch, g, groups, w, m);
        add_bias(&mut out, bias, n);
        return out;
    }
    let x_img = groups * g.c * g.plane();
    let mut out = vec![T::zero(); batch * m * n];
    let t = g.tile(batch, core::mem::size_of::<T>());
    let mut cols = vec![T::zero(); k * t * n];
    let mut tmp = vec![T::zero(); if t > 1 { mg * t * n } else { 0 }];
    let mut i2c = Im2col::new(g);
    for b0 in (0..batch).step_by(t) {
        let tb = t.min(batch - b0);
        let ld = tb * n;
        for gi in 0..groups {
            for bi in 0..tb {
                let src = &x[(b0 + bi) * x_img + gi * g.c * g.plane()..][..g.c * g.plane()];
                i2c.im2col(g, src, &mut cols, ld, bi * n);
            }
            let wg = &w[gi * mg * k..(gi + 1) * mg * k];
            if tb == 1 {
                let dst = &mut out[b0 * m * n + gi * mg * n..][..mg * n];
                gemm(
                    (mg, n, k),
                    dst,
                    (1, n as isize),
                    false,
                    wg,
                    (1, k as isize),
                    &cols,
                    (1, ld as isize),
                );
            } else {
                gemm(
                    (mg, ld, k),
                    &mut tmp,
                    (1, ld as isize),
                    false,
                    wg,
                    (1, k as isize),
                    &cols,
                    (1, ld as isize),
                );
                for bi in 0..tb {
                    for r in 0..mg {
                        let dst = &mut out[((b0 + bi) * m + gi * mg + r) * n..][..n];
                        dst.copy_from_slice(&tmp[r * ld + bi * n..][..n]);
                    }
                }
            }
        }
    }
    add_bias(&mut out, bias, n);
    out
}

/// `x[b] = col2im(Wᵀ · y[b]) (+ bias on x's channels)`, per group.
/// `y`: `batch × m × oh × ow`; `w`: `m × (c·kh·kw)`; result `batch × (groups·c) × h × w`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_data<T: num_traits::Float + core::ops::AddAssign + 'static>(
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    w: &[T],
    m: usize,
    bias: Option<&[T]>,
) -> Vec<T> {
    let (k, n, mg) = (g.k(), g.n(), m / groups);
    if tapwise(g, mg) {
        let mut x = conv2d_tapwise::backward_data(y, batch, g, groups, w, m);
        add_bias(&mut x, bias, g.plane());
        return x;
    }
    let x_img = groups * g.c * g.plane();
    let mut x = vec![T::zero(); batch * x_img];
    let t = g.tile(batch, core::mem::size_of::<T>());
    let mut cols = vec![T::zero(); k * t * n];
    let mut gathered = vec![T::zero(); if t > 1 { mg * t * n } else { 0 }];
    let mut i2c = Im2col::new(g);
    for b0 in (0..batch).step_by(t) {
        let tb = t.min(batch - b0);
        let ld = tb * n;
        for gi in 0..groups {
            let wg = &w[gi * mg * k..(gi + 1) * mg * k];
            // cols (k × ld) = wgᵀ (k × mg) · y_tile (mg × ld)
            if tb == 1 {
                let yb = &y[b0 * m * n + gi * mg * n..][..mg * n];
                gemm(
                    (k, n, mg),
                    &mut cols,
                    (1, ld as isize),
                    false,
                    wg,
                    (k as isize, 1),
                    yb,
                    (1, n as isize),
                );
            } else {
                for bi in 0..tb {
                    for r in 0..mg {
                        gathered[r * ld + bi * n..][..n]
                            .copy_from_slice(&y[((b0 + bi) * m + gi * mg + r) * n..][..n]);
                    }
                }
                gemm(
                    (k, ld, mg),
                    &mut cols,
                    (1, ld as isize),
                    false,
                    wg,
                    (k as isize, 1),
                    &gathered,
                    (1, ld as isize),
                );
            }
            for bi in 0..tb {
                let dst = &mut x[(b0 + bi) * x_img + gi * g.c * g.plane()..][..g.c * g.plane()];
                i2c.col2im(g, &cols, ld, bi * n, dst);
            }
        }
    }
    add_bias(&mut x, bias, g.plane());
    x
}

/// `W = Σ_b y[b] · im2col(x[b])ᵀ`, per group: the `m × (c·kh·kw)` weight gradient.
pub(crate) fn backward_weight<T: num_traits::Float + core::ops::AddAssign + 'static>(
    x: &[T],
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    m: usize,
) -> Vec<T> {
    let (k, n, mg) = (g.k(), g.n(), m / groups);
    if tapwise(g, mg) {
        return conv2d_tapwise::backward_weight(x, y, batch, g, groups, m);
    }
    let x_img = groups * g.c * g.plane();
    let mut dw = vec![T::zero(); m * k];
    let t = g.tile(batch, core::mem::size_of::<T>());
    let mut cols = vec![T::zero(); k * t * n];
    let mut gathered = vec![T::zero(); if t > 1 { mg * t * n } else { 0 }];
    let mut i2c = Im2col::new(g);
    for b0 in (0..batch).step_by(t) {
        let tb = t.min(batch - b0);
        let ld = tb * n;
        for gi in 0..groups {
            for bi in 0..tb {
                let src = &x[(b0 + bi) * x_img + gi * g.c * g.plane()..][..g.c * g.plane()];
                i2c.im2col(g, src, &mut cols, ld, bi * n);
            }
            let dst = &mut dw[gi * mg * k..(gi + 1) * mg * k];
            // dst (mg × k) += y_tile (mg × ld) · colsᵀ (ld × k)
            if tb == 1 {
                let yb = &y[b0 * m * n + gi * mg * n..][..mg * n];
                gemm(
                    (mg, k, n),
                    dst,
                    (1, k as isize),
                    b0 > 0,
                    yb,
                    (1, n as isize),
                    &cols,
                    (ld as isize, 1),
                );
            } else {
                for bi in 0..tb {
                    for r in 0..mg {
                        gathered[r * ld + bi * n..][..n]
                            .copy_from_slice(&y[((b0 + bi) * m + gi * mg + r) * n..][..n]);
                    }
                }
                gemm(
                    (mg, k, ld),
                    dst,
                    (1, k as isize),
                    b0 > 0,
                    &gathered,
                    (1, ld as isize),
                    &cols,
                    (ld as isize, 1),
                );
            }
        }
    }
    dw
}

// ============================================================================
// Tensor entry points (called from `ModuleOps for Flex`)
// ============================================================================

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    assert_eq!(s.num_dims(), 4, "conv2d: expected a 4-d tensor, got {s:?}");
    [s[0], s[1], s[2], s[3]]
}

/// The elements of a tensor in row-major order (copied only when it is not contiguous).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

fn elems<T: Element + bytemuck::Pod>(t: &FlexTensor) -> &[T] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("conv2d: tensor made contiguous");
    &t.storage::<T>()[start..end]
}

fn tensor<T: Element + bytemuck::Pod>(data: Vec<T>, shape: &[usize], dtype: DType) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        dtype,
    )
}

/// Runs `f` on f32 or f64 data and makes a tensor of `shape` of its result; half types are
/// computed in f32 and rounded back once.
fn by_dtype(
    inputs: Vec<FlexTensor>,
    shape: &[usize],
    f32_fn: impl FnOnce(&[&[f32]]) -> Vec<f32>,
    f64_fn: impl FnOnce(&[&[f64]]) -> Vec<f64>,
) -> FlexTensor {
    let dtype = inputs[0].dtype();
    match dtype {
        DType::F64 => {
            let ts: Vec<FlexTensor> = inputs.into_iter().map(contiguous).collect();
            let xs: Vec<&[f64]> = ts.iter().map(elems::<f64>).collect();
            tensor(f64_fn(&xs), shape, DType::F64)
        }
        DType::F32 => {
            let ts: Vec<FlexTensor> = inputs.into_iter().map(contiguous).collect();
            let xs: Vec<&[f32]> = ts.iter().map(elems::<f32>).collect();
            tensor(f32_fn(&xs), shape, DType::F32)
        }
        DType::F16 | DType::BF16 => {
            let ts: Vec<FlexTensor> = inputs
                .into_iter()
                .map(|t| match dtype {
                    DType::F16 => cast_to_f32(t, burn_std::f16::to_f32),
                    _ => cast_to_f32(t, burn_std::bf16::to_f32),
                })
                .collect();
            let xs: Vec<&[f32]> = ts.iter().map(elems::<f32>).collect();
            let out = tensor(f32_fn(&xs), shape, DType::F32);
            match dtype {
                DType::F16 => cast_from_f32(out, burn_std::f16::from_f32),
                _ => cast_from_f32(out, burn_std::bf16::from_f32),
            }
        }
        other => panic!("conv2d: unsupported dtype {other:?}"),
    }
}

/// The geometry of a convolution of `x` (`[b, c, h, w]`) by a `kh × kw` kernel, `groups` groups.
fn conv_geom(x: [usize; 4], k: [usize; 2], o: &ConvOptions<2>) -> Geom {
    let pad = o.padding_begin();
    Geom {
        c: x[1] / o.groups,
        h: x[2],
        w: x[3],
        oh: calculate_conv_output_size(k[0], o.stride[0], pad[0], o.dilation[0], x[2]),
        ow: calculate_conv_output_size(k[1], o.stride[1], pad[1], o.dilation[1], x[3]),
        kh: k[0],
        kw: k[1],
        stride: o.stride,
        pad,
        dil: o.dilation,
    }
}

/// The convolution a transposed convolution undoes: from its output `[b, c, h, w]` back to its
/// input's `ih × iw` positions.
fn transpose_geom(
    out_hw: [usize; 2],
    c: usize,
    in_hw: [usize; 2],
    k: [usize; 2],
    o: &ConvTransposeOptions<2>,
) -> Geom {
    Geom {
        c,
        h: out_hw[0],
        w: out_hw[1],
        oh: in_hw[0],
        ow: in_hw[1],
        kh: k[0],
        kw: k[1],
        stride: o.stride,
        pad: o.padding,
        dil: o.dilation,
    }
}

/// `conv2d` with symmetric padding: `x [b, ci, h, w]`, `weight [co, ci/groups, kh, kw]`.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    o: &ConvOptions<2>,
) -> FlexTensor {
    let xd = dims4(&x);
    let wd = dims4(&weight);
    let g = conv_geom(xd, [wd[2], wd[3]], o);
    let shape = [xd[0], wd[0], g.oh, g.ow];
    let groups = o.groups;
    let has_bias = bias.is_some();
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    by_dtype(
        inputs,
        &shape,
        |t| forward(t[0], xd[0], &g, groups, t[1], wd[0], has_bias.then(|| t[2])),
        |t| forward(t[0], xd[0], &g, groups, t[1], wd[0], has_bias.then(|| t[2])),
    )
}

/// The weight gradient of `conv2d` with symmetric padding.
pub(crate) fn conv2d_weight_grad(
    x: FlexTensor,
    weight_shape: [usize; 4],
    output_grad: FlexTensor,
    o: &ConvOptions<2>,
) -> FlexTensor {
    let xd = dims4(&x);
    let mut g = conv_geom(xd, [weight_shape[2], weight_shape[3]], o);
    let yd = dims4(&output_grad);
    (g.oh, g.ow) = (yd[2], yd[3]);
    let groups = o.groups;
    by_dtype(
        vec![x, output_grad],
        &weight_shape,
        |t| backward_weight(t[0], t[1], xd[0], &g, groups, yd[1]),
        |t| backward_weight(t[0], t[1], xd[0], &g, groups, yd[1]),
    )
}

/// `conv_transpose2d`: `x [b, ci, ih, iw]`, `weight [ci, co/groups, kh, kw]`.
pub(crate) fn conv_transpose2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    o: &ConvTransposeOptions<2>,
) -> FlexTensor {
    let xd = dims4(&x);
    let wd = dims4(&weight);
    let out_hw = [0, 1].map(|i| {
        calculate_conv_transpose_output_size(
            wd[2 + i],
            o.stride[i],
            o.padding[i],
            o.padding_out[i],
            o.dilation[i],
            xd[2 + i],
        )
    });
    let g = transpose_geom(out_hw, wd[1], [xd[2], xd[3]], [wd[2], wd[3]], o);
    let shape = [xd[0], wd[1] * o.groups, out_hw[0], out_hw[1]];
    let groups = o.groups;
    let has_bias = bias.is_some();
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    by_dtype(
        inputs,
        &shape,
        |t| backward_data(t[0], xd[0], &g, groups, t[1], xd[1], has_bias.then(|| t[2])),
        |t| backward_data(t[0], xd[0], &g, groups, t[1], xd[1], has_bias.then(|| t[2])),
    )
}

/// The weight gradient of `conv_transpose2d`.
pub(crate) fn conv_transpose2d_weight_grad(
    x: FlexTensor,
    weight_shape: [usize; 4],
    output_grad: FlexTensor,
    o: &ConvTransposeOptions<2>,
) -> FlexTensor {
    let xd = dims4(&x);
    let yd = dims4(&output_grad);
    let g = transpose_geom(
        [yd[2], yd[3]],
        weight_shape[1],
        [xd[2], xd[3]],
        [weight_shape[2], weight_shape[3]],
        o,
    );
    let groups = o.groups;
    by_dtype(
        vec![x, output_grad],
        &weight_shape,
        |t| backward_weight(t[1], t[0], xd[0], &g, groups, xd[1]),
        |t| backward_weight(t[1], t[0], xd[0], &g, groups, xd[1]),
    )
}

/// The bias gradient of a convolution or transposed convolution: `output_grad` summed over
/// batch and positions, per channel (Burn's default copies the batch-swapped gradient first).
pub(crate) fn bias_grad(output_grad: FlexTensor) -> FlexTensor {
    let d = dims4(&output_grad);
    let (c, n) = (d[1], d[2] * d[3]);
    fn sum<T: num_traits::Float>(y: &[T], c: usize, n: usize) -> Vec<T> {
        let mut out = vec![T::zero(); c];
        for img in y.chunks(c * n.max(1)) {
            for (o, plane) in out.iter_mut().zip(img.chunks(n.max(1))) {
                *o = plane.iter().fold(*o, |a, &v| a + v);
            }
        }
        out
    }
    by_dtype(
        vec![output_grad],
        &[c],
        |t| sum(t[0], c, n),
        |t| sum(t[0], c, n),
    )
}
