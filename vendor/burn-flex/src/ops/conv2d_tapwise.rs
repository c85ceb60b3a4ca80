//! Gemba patch (see GEMBA-PATCH.md, section 3): convolutions of small images with many
//! channels, computed in batch-minor layout as one gemm per kernel tap (and row), over only the
//! positions where that tap lands inside the image.
//!
//! A 5 × 5 kernel with padding 2 on a 4 × 4 image (the DCGAN's first transposed convolution)
//! reads zeros for half of its (tap, position) pairs, so half of im2col's columns, and half of
//! the multiply-adds of `conv2d_gemm`'s three kernels, are spent on padding; on 8 × 8 with
//! stride 2 (its second layers) 28 %. Here the kernel is split into its `kh · kw` taps, and each
//! tap is a plain matrix product between the weight's `m × c` slice for that tap and the pixels
//! (or positions) the tap reaches:
//!
//! - `forward`:         `y[.., rect] += W_t · x[.., rect_t]`   for every tap `t`
//! - `backward_data`:   `x[.., rect_t] += W_tᵀ · y[.., rect]`
//! - `backward_weight`: `W_t += y[.., rect] · x[.., rect_t]ᵀ`
//!
//! where `rect` is the rectangle of kernel positions at which tap `t` reads inside the image and
//! `rect_t` the pixels it reads there. The whole batch is first transposed to batch-minor layout
//! (`[channel][pixel][image]`), where a row of such a rectangle (or, with a horizontal stride,
//! one element of it) is `xlen · batch` (or `batch`) adjacent columns for every channel: each is
//! one gemm reading its operands and accumulating into the result in place, with no im2col,
//! col2im, gather or scatter. The multiply-adds are exactly the useful ones; the price is two
//! transposes of the batch per call.

use alloc::vec;
use alloc::vec::Vec;

use super::conv2d_gemm::{Geom, gemm, valid};

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

/// One kernel tap that reads inside the image somewhere: its index `ki · kw + kj`, the kernel
/// positions where it does (`pos`, in the `oh × ow` plane) and the pixels it reads there
/// (`pix`, in the `h × w` plane), in the same order.
#[derive(Clone, Copy, Debug)]
struct Tap {
    t: usize,
    pos: Rect,
    pix: Rect,
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
                },
                pix: Rect {
                    start: iy0 * g.w + ix0,
                    row_step: g.stride[0] * g.w,
                    col_step: g.stride[1],
                    ylen,
                    xlen,
                },
            });
        }
    }
    out
}

/// Whether to compute `g` (with `mg` channels per group on the small side) tap by tap: fewer
/// than 128 kernel positions per image (where `conv2d_gemm` puts several images side by side
/// into one gemm) and at least 16 channels on both sides (each tap's gemm has one side as its
/// depth). Measured (docs/NN.md): the DCGAN's three such layers 1.35–2.2 × faster than im2col,
/// the conv VAE's two (3 × 3 on 7 × 7 and 14 × 14, little padding) the same within the noise,
/// and the conv VAE's 14 × 14 → 28 × 28 layer (196 positions) 1.25 × slower.
pub(crate) fn suits(g: &Geom, mg: usize) -> bool {
    let n = g.n();
    g.c >= 16 && mg >= 16 && n > 0 && n < 128
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

/// The reverse of `by_tap`: `kk` blocks of `mg × c` into `dst`, `mg` rows of `c · kk`.
fn from_tap<T: Copy>(dwt: &[T], dst: &mut [T], mg: usize, c: usize, kk: usize) {
    // As in `by_tap`, one row at a time.
    for (o, row) in dst.chunks_exact_mut(c * kk).enumerate().take(mg) {
        for t in 0..kk {
            let src = &dwt[(t * mg + o) * c..][..c];
            for (d, &v) in row[t..].iter_mut().step_by(kk).zip(src) {
                *d = v;
            }
        }
    }
}

/// `src` (`rows × cols`, row-major) transposed, in 32 × 32 blocks.
fn transpose<T: num_traits::Zero + Copy>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    const B: usize = 32;
    let mut dst = vec![T::zero(); rows * cols];
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            for c in c0..(c0 + B).min(cols) {
                let d = &mut dst[c * rows + r0..c * rows + r1];
                for (d, r) in d.iter_mut().zip(r0..r1) {
                    *d = src[r * cols + c];
                }
            }
        }
    }
    dst
}

/// The pieces of one tap that are plain matrices in batch-minor layout: `(pos, pix, cols)`,
/// the offsets of the first position and the first pixel in elements of a batch-minor tensor
/// (`× batch`) and the number of adjacent columns. With a horizontal stride of 1 a piece is a
/// row of the tap's rectangles (`xlen · batch` columns), else one position (`batch` columns).
fn tap_pieces(tap: &Tap, batch: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let (pos, pix) = (&tap.pos, &tap.pix);
    let (per_row, cols) = if pix.col_step == 1 {
        (1, pix.xlen * batch)
    } else {
        (pix.xlen, batch)
    };
    (0..pos.ylen * per_row).map(move |i| {
        let (yy, xx) = if per_row == 1 { (i, 0) } else { (i / per_row, i % per_row) };
        (
            (pos.start + yy * pos.row_step + xx) * batch,
            (pix.start + yy * pix.row_step + xx * pix.col_step) * batch,
            cols,
        )
    })
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
    let (plane, b) = (g.plane(), batch);
    let xr = transpose(x, b, groups * c * plane);
    let mut outr = vec![T::zero(); m * n * b];
    for gi in 0..groups {
        let wt = by_tap(w, gi, mg, c, kk);
        for tap in taps(g) {
            for (pos, pix, cols) in tap_pieces(&tap, b) {
                // out_r[m, row, ..] += W_t (mg × c) · x_r[c, row, ..] (c × cols)
                gemm(
                    (mg, cols, c),
                    &mut outr[gi * mg * n * b + pos..],
                    (1, (n * b) as isize),
                    true,
                    &wt[tap.t * mg * c..][..mg * c],
                    (1, c as isize),
                    &xr[gi * c * plane * b + pix..],
                    (1, (plane * b) as isize),
                );
            }
        }
    }
    transpose(&outr, m * n, b)
}

/// `conv2d_gemm::backward_data` tap by tap: `x[b, groups · c, h, w]` (as `forward`).
pub(crate) fn backward_data<T: num_traits::Float + core::ops::AddAssign + 'static>(
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    w: &[T],
    m: usize,
) -> Vec<T> {
    let (c, n, mg, kk) = (g.c, g.n(), m / groups, g.kh * g.kw);
    let (plane, b) = (g.plane(), batch);
    let yr = transpose(y, b, m * n);
    let mut xr = vec![T::zero(); groups * c * plane * b];
    for gi in 0..groups {
        let wt = by_tap(w, gi, mg, c, kk);
        for tap in taps(g) {
            for (pos, pix, cols) in tap_pieces(&tap, b) {
                // x_r[c, row, ..] += W_tᵀ (c × mg) · y_r[m, row, ..] (mg × cols)
                gemm(
                    (c, cols, mg),
                    &mut xr[gi * c * plane * b + pix..],
                    (1, (plane * b) as isize),
                    true,
                    &wt[tap.t * mg * c..][..mg * c],
                    (c as isize, 1),
                    &yr[gi * mg * n * b + pos..],
                    (1, (n * b) as isize),
                );
            }
        }
    }
    transpose(&xr, groups * c * plane, b)
}

/// `conv2d_gemm::backward_weight` tap by tap: the `m × (c · kh · kw)` weight gradient (as
/// `forward`).
pub(crate) fn backward_weight<T: num_traits::Float + core::ops::AddAssign + 'static>(
    x: &[T],
    y: &[T],
    batch: usize,
    g: &Geom,
    groups: usize,
    m: usize,
) -> Vec<T> {
    let (c, n, mg, kk) = (g.c, g.n(), m / groups, g.kh * g.kw);
    let (plane, b, k) = (g.plane(), batch, c * kk);
    let xr = transpose(x, b, groups * c * plane);
    let yr = transpose(y, b, m * n);
    let mut dw = vec![T::zero(); m * k];
    for gi in 0..groups {
        // By tap (`kk` blocks of `mg × c`).
        let mut dwt = vec![T::zero(); kk * mg * c];
        for tap in taps(g) {
            for (pos, pix, cols) in tap_pieces(&tap, b) {
                // dW_t (mg × c) += y_r[m, row, ..] (mg × cols) · x_r[c, row, ..]ᵀ (cols × c)
                gemm(
                    (mg, c, cols),
                    &mut dwt[tap.t * mg * c..][..mg * c],
                    (1, c as isize),
                    true,
                    &yr[gi * mg * n * b + pos..],
                    (1, (n * b) as isize),
                    &xr[gi * c * plane * b + pix..],
                    ((plane * b) as isize, 1),
                );
            }
        }
        from_tap(&dwt, &mut dw[gi * mg * k..(gi + 1) * mg * k], mg, c, kk);
    }
    dw
}
