//! Gemba patch (see GEMBA-PATCH.md, section 3): convolutions whose kernel mostly reads padding,
//! computed as one gemm per kernel tap over only the positions where that tap lands inside the
//! image.
//!
//! A 5 × 5 kernel with padding 2 on a 4 × 4 image (the DCGAN's first transposed convolution)
//! reads zeros for half of its (tap, position) pairs, so half of im2col's columns, and half of
//! the multiply-adds of `conv2d_gemm`'s three kernels, are spent on padding. Here the kernel is
//! split into its `kh · kw` taps; each tap is a plain matrix product between the weight's
//! `m × c` slice for that tap and the pixels (or positions) the tap reaches, gathered for a tile
//! of images into a dense block:
//!
//! - `forward`:         `y[.., rect] += W_t · x_t`          for every tap `t`
//! - `backward_data`:   `x_t += W_tᵀ · y[.., rect]`
//! - `backward_weight`: `W_t += y[.., rect] · x_tᵀ`
//!
//! where `rect` is the rectangle of kernel positions at which tap `t` reads inside the image and
//! `x_t` the pixels it reads there. The multiply-adds are exactly the useful ones; the price is a
//! gather and a scatter per tap, which `suits` weighs against the padding saved.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use super::conv2d_gemm::{Geom, gemm, valid};

/// Columns per tap gemm: images are tiled so that a tap's block has at most this many.
/// 512 measured best of 256–4,096 on the DCGAN's first layer (within 10 %).
const TARGET_COLS: usize = 512;

/// A rectangle in one plane: `ylen` rows of `xlen` elements, the first at `start`, rows
/// `row_step` apart and elements `col_step` apart.
#[derive(Clone, Copy, Debug)]
struct Rect {
    start: usize,
    row_step: usize,
    col_step: usize,
    ylen: usize,
    xlen: usize,
}

impl Rect {
    /// The offsets of the rectangle's elements in its plane, row by row. Rows are short (the
    /// images here have < 128 positions; the DCGAN's rows are 1–4 long), so `gather` and
    /// `scatter_add` go through this table instead of one `memcpy` call per row, which took
    /// 4.5 % of the DCGAN's training time.
    fn offsets(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.ylen * self.xlen);
        for yy in 0..self.ylen {
            let s = self.start + yy * self.row_step;
            out.extend((0..self.xlen).map(|xx| s + xx * self.col_step));
        }
        out
    }
}

/// One kernel tap that reads inside the image somewhere: its index `ki · kw + kj`, the kernel
/// positions where it does (`pos`, offsets in the `oh × ow` plane) and the pixels it reads
/// there (`pix`, offsets in the `h × w` plane), in the same order.
#[derive(Clone, Debug)]
struct Tap {
    t: usize,
    pos: Vec<usize>,
    pix: Vec<usize>,
}

fn taps(g: &Geom) -> Vec<Tap> {
    let mut out = Vec::with_capacity(g.kh * g.kw);
    for ki in 0..g.kh {
        let (ylo, yhi) = valid(g.oh, ki * g.dil[0], g.pad[0], g.stride[0], g.h);
        for kj in 0..g.kw {
            let (xlo, xhi) = valid(g.ow, kj * g.dil[1], g.pad[1], g.stride[1], g.w);
            if ylo == yhi || xlo == xhi {
                continue;
            }
            let iy0 = ylo * g.stride[0] + ki * g.dil[0] - g.pad[0];
            let ix0 = xlo * g.stride[1] + kj * g.dil[1] - g.pad[1];
            let (ylen, xlen) = (yhi - ylo, xhi - xlo);
            out.push(Tap {
                t: ki * g.kw + kj,
                pos: Rect {
                    start: ylo * g.ow + xlo,
                    row_step: g.ow,
                    col_step: 1,
                    ylen,
                    xlen,
                }
                .offsets(),
                pix: Rect {
                    start: iy0 * g.w + ix0,
                    row_step: g.stride[0] * g.w,
                    col_step: g.stride[1],
                    ylen,
                    xlen,
                }
                .offsets(),
            });
        }
    }
    out
}

/// Whether to compute `g` (with `mg` channels per group on the small side) tap by tap: small
/// images (where `conv2d_gemm` tiles several into one gemm), at least 16 channels on both
/// sides (each tap's gemm has one side as its depth), and at least 40 % of im2col's
/// (tap, position) pairs on padding. Measured on the DCGAN: its first layer (51 % padding,
/// 128 and 256 channels) is 1.2–1.7 × faster tap by tap; its second generator and
/// discriminator layers (28 %, 64 and 128 channels) were 1.3–1.5 × slower, so they stay on
/// im2col.
pub(crate) fn suits(g: &Geom, mg: usize) -> bool {
    let n = g.n();
    if g.c < 16 || mg < 16 || n == 0 || n >= 128 {
        return false;
    }
    let rows: usize = (0..g.kh)
        .map(|ki| {
            let (lo, hi) = valid(g.oh, ki * g.dil[0], g.pad[0], g.stride[0], g.h);
            hi - lo
        })
        .sum();
    let cols: usize = (0..g.kw)
        .map(|kj| {
            let (lo, hi) = valid(g.ow, kj * g.dil[1], g.pad[1], g.stride[1], g.w);
            hi - lo
        })
        .sum();
    let used = rows * cols;
    let all = n * g.kh * g.kw;
    used * 5 <= all * 3
}

/// Images per tile.
fn tile(g: &Geom, batch: usize) -> usize {
    (TARGET_COLS / g.n().max(1)).clamp(1, batch.max(1))
}

/// Copies the elements at `offs` of planes `ch` of images `imgs` (each image `img` elements,
/// each plane `plane`) into `dst`, one row of `imgs.len() · offs.len()` elements per plane.
fn gather<T: Copy>(
    src: &[T],
    img: usize,
    plane: usize,
    ch: Range<usize>,
    imgs: Range<usize>,
    offs: &[usize],
    dst: &mut [T],
) {
    let nt = imgs.len() * offs.len();
    for (c, row) in ch.zip(dst.chunks_exact_mut(nt)) {
        for (b, d) in imgs.clone().zip(row.chunks_exact_mut(offs.len())) {
            let p = &src[b * img + c * plane..][..plane];
            for (d, &o) in d.iter_mut().zip(offs) {
                *d = p[o];
            }
        }
    }
}

/// The reverse of `gather`: adds `src` onto the elements at `offs` of planes `ch` of images
/// `imgs` of `dst`.
fn scatter_add<T: Copy + core::ops::AddAssign>(
    src: &[T],
    dst: &mut [T],
    img: usize,
    plane: usize,
    ch: Range<usize>,
    imgs: Range<usize>,
    offs: &[usize],
) {
    let nt = imgs.len() * offs.len();
    for (c, row) in ch.zip(src.chunks_exact(nt)) {
        for (b, v) in imgs.clone().zip(row.chunks_exact(offs.len())) {
            let p = &mut dst[b * img + c * plane..][..plane];
            for (v, &o) in v.iter().zip(offs) {
                p[o] += *v;
            }
        }
    }
}

/// Group `gi`'s weight (`mg` rows of `k = c · kk` in `w`) by tap: `kk` blocks of `mg × c`.
fn by_tap<T: num_traits::Zero + Copy>(w: &[T], gi: usize, mg: usize, c: usize, kk: usize) -> Vec<T> {
    let k = c * kk;
    let wg = &w[gi * mg * k..(gi + 1) * mg * k];
    // One output row at a time (`c · kk` elements, in L1) for every tap: tap-major outer
    // loops read the whole weight `kk` times (2.4 % of the DCGAN's training time, for its
    // 3 MiB t1), and writing `kk` streams `mg · c` elements apart thrashes L1's sets.
    let mut out = vec![T::zero(); mg * k];
    for (o, row) in wg.chunks_exact(k).enumerate() {
        for t in 0..kk {
            let dst = &mut out[(t * mg + o) * c..][..c];
            for (d, &v) in dst.iter_mut().zip(row[t..].iter().step_by(kk)) {
                *d = v;
            }
        }
    }
    out
}

/// `conv2d_gemm::forward` tap by tap: `out[b, m, oh, ow]`.
pub(crate) fn forward<T: num_traits::Float + core::ops::AddAssign + 'static>(
    x: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    w: &[T],
    m: usize,
) -> Vec<T> {
    let (c, n, mg, kk) = (g.c, g.n(), m / groups, g.kh * g.kw);
    let x_img = groups * c * g.plane();
    let mut out = vec![T::zero(); batch * m * n];
    let taps = taps(g);
    let t = tile(g, batch);
    let mut xt = vec![T::zero(); c * t * n];
    let mut tmp = vec![T::zero(); mg * t * n];
    for gi in 0..groups {
        let wt = by_tap(w, gi, mg, c, kk);
        for b0 in (0..batch).step_by(t) {
            let imgs = b0..(b0 + t).min(batch);
            for tap in &taps {
                let nt = imgs.len() * tap.pos.len();
                let xt = &mut xt[..c * nt];
                let tmp = &mut tmp[..mg * nt];
                gather(x, x_img, g.plane(), gi * c..(gi + 1) * c, imgs.clone(), &tap.pix, xt);
                // tmp (mg × nt) = W_t (mg × c) · x_t (c × nt)
                gemm(
                    (mg, nt, c),
                    tmp,
                    (1, nt as isize),
                    false,
                    &wt[tap.t * mg * c..][..mg * c],
                    (1, c as isize),
                    xt,
                    (1, nt as isize),
                );
                scatter_add(tmp, &mut out, m * n, n, gi * mg..(gi + 1) * mg, imgs.clone(), &tap.pos);
            }
        }
    }
    out
}

/// `conv2d_gemm::backward_data` tap by tap: `x[b, groups · c, h, w]`.
pub(crate) fn backward_data<T: num_traits::Float + core::ops::AddAssign + 'static>(
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    w: &[T],
    m: usize,
) -> Vec<T> {
    let (c, n, mg, kk) = (g.c, g.n(), m / groups, g.kh * g.kw);
    let x_img = groups * c * g.plane();
    let mut x = vec![T::zero(); batch * x_img];
    let taps = taps(g);
    let t = tile(g, batch);
    let mut yt = vec![T::zero(); mg * t * n];
    let mut tmp = vec![T::zero(); c * t * n];
    for gi in 0..groups {
        let wt = by_tap(w, gi, mg, c, kk);
        for b0 in (0..batch).step_by(t) {
            let imgs = b0..(b0 + t).min(batch);
            for tap in &taps {
                let nt = imgs.len() * tap.pos.len();
                let yt = &mut yt[..mg * nt];
                let tmp = &mut tmp[..c * nt];
                gather(y, m * n, n, gi * mg..(gi + 1) * mg, imgs.clone(), &tap.pos, yt);
                // tmp (c × nt) = W_tᵀ (c × mg) · y_t (mg × nt)
                gemm(
                    (c, nt, mg),
                    tmp,
                    (1, nt as isize),
                    false,
                    &wt[tap.t * mg * c..][..mg * c],
                    (c as isize, 1),
                    yt,
                    (1, nt as isize),
                );
                scatter_add(tmp, &mut x, x_img, g.plane(), gi * c..(gi + 1) * c, imgs.clone(), &tap.pix);
            }
        }
    }
    x
}

/// `conv2d_gemm::backward_weight` tap by tap: the `m × (c · kh · kw)` weight gradient.
pub(crate) fn backward_weight<T: num_traits::Float + core::ops::AddAssign + 'static>(
    x: &[T],
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    m: usize,
) -> Vec<T> {
    let (c, n, mg, kk) = (g.c, g.n(), m / groups, g.kh * g.kw);
    let k = c * kk;
    let x_img = groups * c * g.plane();
    let mut dw = vec![T::zero(); m * k];
    let taps = taps(g);
    let t = tile(g, batch);
    let mut xt = vec![T::zero(); c * t * n];
    let mut yt = vec![T::zero(); mg * t * n];
    for gi in 0..groups {
        // By tap (`kk` blocks of `mg × c`), accumulated over the tiles.
        let mut dwt = vec![T::zero(); kk * mg * c];
        for b0 in (0..batch).step_by(t) {
            let imgs = b0..(b0 + t).min(batch);
            for tap in &taps {
                let nt = imgs.len() * tap.pos.len();
                let xt = &mut xt[..c * nt];
                let yt = &mut yt[..mg * nt];
                gather(x, x_img, g.plane(), gi * c..(gi + 1) * c, imgs.clone(), &tap.pix, xt);
                gather(y, m * n, n, gi * mg..(gi + 1) * mg, imgs.clone(), &tap.pos, yt);
                // dW_t (mg × c) += y_t (mg × nt) · x_tᵀ (nt × c)
                gemm(
                    (mg, c, nt),
                    &mut dwt[tap.t * mg * c..][..mg * c],
                    (1, c as isize),
                    true,
                    yt,
                    (1, nt as isize),
                    xt,
                    (nt as isize, 1),
                );
            }
        }
        let dst = &mut dw[gi * mg * k..(gi + 1) * mg * k];
        // As in `by_tap`, one row at a time.
        for (o, row) in dst.chunks_exact_mut(k).enumerate() {
            for t in 0..kk {
                let src = &dwt[(t * mg + o) * c..][..c];
                for (d, &v) in row[t..].iter_mut().step_by(kk).zip(src) {
                    *d = v;
                }
            }
        }
    }
    dw
}
