//! The convolutions under the VAE and the DCGAN (vendor/burn-flex's im2col/col2im + gemm patch)
//! against a direct six-loop convolution in f64: outputs and the gradients of input, weight
//! and bias, for strides, padding (also asymmetric), output padding, dilation, groups, batches
//! that split into several gemm tiles, inputs that are not contiguous in memory, and small
//! images with many channels, which are computed tap by tap in batch-minor layout.

use burn::prelude::*;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// One convolution case: x `[b, ci, h, w]`, weight, stride, padding (begin, end) per axis,
/// output padding (transposed only), dilation, groups.
#[derive(Clone, Copy, Debug)]
struct Case {
    transposed: bool,
    b: usize,
    ci: usize,
    co: usize,
    hw: [usize; 2],
    k: [usize; 2],
    stride: [usize; 2],
    pad: [(usize, usize); 2],
    pad_out: [usize; 2],
    dil: [usize; 2],
    groups: usize,
    /// Feed x as a permuted (non-contiguous) view.
    strided_x: bool,
}

const BASE: Case = Case {
    transposed: false,
    b: 2,
    ci: 3,
    co: 4,
    hw: [6, 5],
    k: [3, 3],
    stride: [1, 1],
    pad: [(1, 1), (1, 1)],
    pad_out: [0, 0],
    dil: [1, 1],
    groups: 1,
    strided_x: false,
};

struct Reference {
    y: Vec<f64>,
    y_shape: [usize; 4],
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

/// The direct convolution, and the gradients of Σ y·r.
fn reference(c: &Case, x: &[f32], w: &[f32], bias: &[f32], r: &[f32]) -> Reference {
    let [h, wd] = c.hw;
    let out_size = |i: usize| {
        let (p0, p1) = c.pad[i];
        if c.transposed {
            (c.hw[i] - 1) * c.stride[i] + c.dil[i] * (c.k[i] - 1) + c.pad_out[i] + 1 - p0 - p1
        } else {
            (c.hw[i] + p0 + p1 - c.dil[i] * (c.k[i] - 1) - 1) / c.stride[i] + 1
        }
    };
    let (oh, ow) = (out_size(0), out_size(1));
    let y_shape = [c.b, c.co, oh, ow];
    let mut y = vec![0.0f64; c.b * c.co * oh * ow];
    let mut dx = vec![0.0f64; x.len()];
    let mut dw = vec![0.0f64; w.len()];
    let mut db = vec![0.0f64; c.co];
    let (cig, cog) = (c.ci / c.groups, c.co / c.groups);
    let xi = |b: usize, ch: usize, i: usize, j: usize| ((b * c.ci + ch) * h + i) * wd + j;
    let yi = |b: usize, ch: usize, i: usize, j: usize| ((b * c.co + ch) * oh + i) * ow + j;
    // Visit every (input position, output position, weight) triple the operation multiplies.
    let mut visit =
        |b: usize, xc: usize, yc: usize, wi: usize, xpos: (usize, usize), ypos: (usize, usize)| {
            let (xv, wv) = (x[xi(b, xc, xpos.0, xpos.1)] as f64, w[wi] as f64);
            let yk = yi(b, yc, ypos.0, ypos.1);
            y[yk] += xv * wv;
            dx[xi(b, xc, xpos.0, xpos.1)] += r[yk] as f64 * wv;
            dw[wi] += r[yk] as f64 * xv;
        };
    for b in 0..c.b {
        for g in 0..c.groups {
            for cx in 0..cig {
                for cy in 0..cog {
                    for ki in 0..c.k[0] {
                        for kj in 0..c.k[1] {
                            if c.transposed {
                                // weight [ci, co/groups, kh, kw]; y[s·i - p + d·k] += x[i]·w
                                let wi = (((g * cig + cx) * cog + cy) * c.k[0] + ki) * c.k[1] + kj;
                                for i in 0..h {
                                    for j in 0..wd {
                                        let oi = (i * c.stride[0] + ki * c.dil[0]) as isize
                                            - c.pad[0].0 as isize;
                                        let oj = (j * c.stride[1] + kj * c.dil[1]) as isize
                                            - c.pad[1].0 as isize;
                                        if oi >= 0
                                            && oj >= 0
                                            && (oi as usize) < oh
                                            && (oj as usize) < ow
                                        {
                                            visit(
                                                b,
                                                g * cig + cx,
                                                g * cog + cy,
                                                wi,
                                                (i, j),
                                                (oi as usize, oj as usize),
                                            );
                                        }
                                    }
                                }
                            } else {
                                // weight [co, ci/groups, kh, kw]; y[o] += x[s·o - p + d·k]·w
                                let wi = (((g * cog + cy) * cig + cx) * c.k[0] + ki) * c.k[1] + kj;
                                for oi in 0..oh {
                                    for oj in 0..ow {
                                        let i = (oi * c.stride[0] + ki * c.dil[0]) as isize
                                            - c.pad[0].0 as isize;
                                        let j = (oj * c.stride[1] + kj * c.dil[1]) as isize
                                            - c.pad[1].0 as isize;
                                        if i >= 0 && j >= 0 && (i as usize) < h && (j as usize) < wd
                                        {
                                            visit(
                                                b,
                                                g * cig + cx,
                                                g * cog + cy,
                                                wi,
                                                (i as usize, j as usize),
                                                (oi, oj),
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for b in 0..c.b {
        for ch in 0..c.co {
            for p in 0..oh * ow {
                let k = (b * c.co + ch) * oh * ow + p;
                y[k] += bias[ch] as f64;
                db[ch] += r[k] as f64;
            }
        }
    }
    Reference {
        y,
        y_shape,
        dx,
        dw,
        db,
    }
}

fn close(what: &str, c: &Case, got: Vec<f32>, want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what} length, {c:?}");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= 1e-4 * scale,
            "{what}[{i}] = {g}, direct convolution {w}, {c:?}"
        );
    }
}

fn check(c: Case) {
    let dev = gemba_nn::device().autodiff();
    let w_shape = if c.transposed {
        [c.ci, c.co / c.groups, c.k[0], c.k[1]]
    } else {
        [c.co, c.ci / c.groups, c.k[0], c.k[1]]
    };
    let xs = values(c.b * c.ci * c.hw[0] * c.hw[1], 1);
    let ws = values(w_shape.iter().product(), 2);
    let bs = values(c.co, 3);
    let x = if c.strided_x {
        // Stored as [b, h, w, ci] and permuted: same values, strides that are not row-major.
        let mut nhwc = vec![0.0f32; xs.len()];
        for b in 0..c.b {
            for ch in 0..c.ci {
                for p in 0..c.hw[0] * c.hw[1] {
                    nhwc[(b * c.hw[0] * c.hw[1] + p) * c.ci + ch] =
                        xs[(b * c.ci + ch) * c.hw[0] * c.hw[1] + p];
                }
            }
        }
        Tensor::<4>::from_data(TensorData::new(nhwc, [c.b, c.hw[0], c.hw[1], c.ci]), &dev)
            .permute([0, 3, 1, 2])
    } else {
        Tensor::<4>::from_data(
            TensorData::new(xs.clone(), [c.b, c.ci, c.hw[0], c.hw[1]]),
            &dev,
        )
    }
    .require_grad();
    let w = Tensor::<4>::from_data(TensorData::new(ws.clone(), w_shape), &dev).require_grad();
    let bias = Tensor::<1>::from_data(TensorData::new(bs.clone(), [c.co]), &dev).require_grad();
    let y = if c.transposed {
        assert_eq!(
            c.pad[0].0, c.pad[0].1,
            "transposed convolutions pad symmetrically"
        );
        let o = ConvTransposeOptions::new(
            c.stride,
            [c.pad[0].0, c.pad[1].0],
            c.pad_out,
            c.dil,
            c.groups,
        );
        conv_transpose2d(x.clone(), w.clone(), Some(bias.clone()), o)
    } else {
        let o = ConvOptions::new_with_padding(c.stride, c.pad, c.dil, c.groups);
        conv2d(x.clone(), w.clone(), Some(bias.clone()), o)
    };
    let y_dims = y.dims();
    let rs = values(y_dims.iter().product(), 4);
    let want = reference(&c, &xs, &ws, &bs, &rs);
    assert_eq!(y_dims, want.y_shape, "output shape, {c:?}");
    let r = Tensor::<4>::from_data(TensorData::new(rs, y_dims), &dev);
    let grads = (y.clone() * r).sum().backward();
    let data = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32 tensor");
    close("y", &c, data(y), &want.y);
    close(
        "dx",
        &c,
        data(x.grad(&grads).expect("x has a gradient")),
        &want.dx,
    );
    close(
        "dw",
        &c,
        data(w.grad(&grads).expect("weight has a gradient")),
        &want.dw,
    );
    let db = bias.grad(&grads).expect("bias has a gradient");
    close(
        "db",
        &c,
        db.into_data().try_to_vec::<f32>().expect("f32 tensor"),
        &want.db,
    );
}

#[test]
fn conv2d_matches_the_direct_convolution() {
    let cases = [
        BASE,
        // The conv VAE's encoder: stride 2.
        Case {
            stride: [2, 2],
            hw: [7, 7],
            ..BASE
        },
        // The DCGAN's discriminator: 5 × 5, stride 2, padding 2.
        Case {
            k: [5, 5],
            stride: [2, 2],
            pad: [(2, 2), (2, 2)],
            hw: [8, 8],
            ..BASE
        },
        // Rectangular kernel, no padding, dilation, different strides per axis.
        Case {
            k: [2, 3],
            pad: [(0, 0), (0, 0)],
            dil: [2, 1],
            stride: [1, 2],
            hw: [7, 9],
            ..BASE
        },
        // Asymmetric ("same" for an even kernel) padding.
        Case {
            k: [2, 2],
            pad: [(0, 1), (1, 0)],
            ..BASE
        },
        // Groups.
        Case {
            ci: 4,
            co: 6,
            groups: 2,
            ..BASE
        },
        // A 3 × 3 output: 45 images make several gemm tiles and a short last one.
        Case {
            b: 45,
            ci: 2,
            co: 3,
            hw: [5, 5],
            stride: [2, 2],
            ..BASE
        },
        // A large output: one image per gemm.
        Case {
            b: 3,
            ci: 2,
            co: 2,
            hw: [34, 33],
            ..BASE
        },
        // A non-contiguous input.
        Case {
            strided_x: true,
            stride: [2, 1],
            ..BASE
        },
        // One input channel (the first layer of the conv VAE).
        Case {
            ci: 1,
            co: 5,
            ..BASE
        },
        // 16 channels on both sides but 144 kernel positions per image: still im2col.
        Case {
            ci: 16,
            co: 16,
            hw: [12, 12],
            ..BASE
        },
        // From here on at least 16 channels on both sides and fewer than 128 kernel positions:
        // computed tap by tap in batch-minor layout (vendor/burn-flex/src/ops/conv2d_tapwise.rs).
        // The DCGAN's second discriminator layer, fewer channels: a horizontal stride, so one
        // gemm per tap and kernel position.
        Case {
            ci: 16,
            co: 16,
            k: [5, 5],
            stride: [2, 2],
            pad: [(2, 2), (2, 2)],
            hw: [8, 8],
            ..BASE
        },
        // 5 × 5 "same" on 4 × 4 (half of the (tap, position) pairs on padding), 70 images:
        // one gemm per tap and row of 2–4 positions × 70 images.
        Case {
            b: 70,
            ci: 16,
            co: 16,
            k: [5, 5],
            pad: [(2, 2), (2, 2)],
            hw: [4, 4],
            ..BASE
        },
        // Groups and a rectangular kernel and image.
        Case {
            ci: 32,
            co: 32,
            groups: 2,
            k: [5, 3],
            pad: [(2, 2), (1, 1)],
            hw: [4, 3],
            ..BASE
        },
        // Dilation, asymmetric padding, a horizontal stride, a non-contiguous input.
        Case {
            ci: 16,
            co: 17,
            k: [3, 3],
            dil: [2, 2],
            stride: [1, 2],
            pad: [(2, 1), (0, 2)],
            hw: [4, 5],
            strided_x: true,
            ..BASE
        },
    ];
    for c in cases {
        check(c);
    }
}

#[test]
fn conv_transpose2d_matches_the_direct_convolution() {
    let t = Case {
        transposed: true,
        ..BASE
    };
    let cases = [
        t,
        // The conv VAE's decoder: stride 2, padding 1, output padding 1.
        Case {
            stride: [2, 2],
            pad_out: [1, 1],
            hw: [7, 7],
            ..t
        },
        // The DCGAN's generator: 5 × 5, stride 2, padding 2, output padding 1.
        Case {
            k: [5, 5],
            stride: [2, 2],
            pad: [(2, 2), (2, 2)],
            pad_out: [1, 1],
            hw: [4, 4],
            ..t
        },
        // Dilation, no padding, rectangular kernel and strides.
        Case {
            k: [3, 2],
            pad: [(0, 0), (0, 0)],
            dil: [1, 2],
            stride: [2, 1],
            ..t
        },
        // Stride 1 with dilation; a padding beyond the kernel's reach.
        Case {
            k: [3, 2],
            pad: [(1, 1), (0, 0)],
            dil: [2, 1],
            ..t
        },
        Case {
            k: [2, 2],
            pad: [(2, 2), (2, 2)],
            hw: [7, 8],
            ..t
        },
        // Groups.
        Case {
            ci: 4,
            co: 6,
            groups: 2,
            ..t
        },
        // Many small images: several gemm tiles and a short last one.
        Case {
            b: 70,
            ci: 3,
            co: 2,
            hw: [4, 4],
            ..t
        },
        // One large image per gemm, one output channel (the conv VAE's last layer).
        Case {
            b: 2,
            ci: 3,
            co: 1,
            hw: [33, 34],
            ..t
        },
        // A non-contiguous input.
        Case {
            strided_x: true,
            stride: [2, 2],
            pad_out: [1, 0],
            ..t
        },
        // Tap by tap (see conv2d_matches_the_direct_convolution). The DCGAN's first layer,
        // fewer channels: 5 × 5, stride 1, on 4 × 4, 70 images.
        Case {
            b: 70,
            ci: 32,
            co: 16,
            k: [5, 5],
            pad: [(2, 2), (2, 2)],
            hw: [4, 4],
            ..t
        },
        // The DCGAN's second layer, fewer channels: stride 2, output padding 1.
        Case {
            ci: 32,
            co: 16,
            k: [5, 5],
            stride: [2, 2],
            pad: [(2, 2), (2, 2)],
            pad_out: [1, 1],
            hw: [4, 4],
            ..t
        },
        // Groups, dilation, a rectangular kernel, different strides and output paddings.
        Case {
            ci: 32,
            co: 32,
            groups: 2,
            k: [5, 3],
            stride: [1, 2],
            pad: [(2, 2), (1, 1)],
            pad_out: [0, 1],
            dil: [1, 2],
            hw: [3, 4],
            strided_x: true,
            ..t
        },
    ];
    for c in cases {
        check(c);
    }
}
