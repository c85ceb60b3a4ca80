//! Per-layer forward + backward times of the conv VAE's and the DCGAN's convolutions (batch 128,
//! one thread, best of `REPS`, default 10; `LAYER=gan.t1` runs one), to find which kernel a slow
//! epoch spends its time in. `scripts/bench_layers.py` times the same layers in PyTorch;
//! `scripts/bench-nn layers` runs both and prints the table.
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::prelude::*;

/// The allocator of the `gemba` binary (crates/gemba/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (name, transposed, c_in, c_out, k, stride, pad, pad_out, h_in, input needs grad)
type Layer = (
    &'static str,
    bool,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    bool,
);

fn main() {
    let dev = gemba_nn::device().autodiff();
    let layers: [Layer; 10] = [
        ("vae.c1", false, 1, 32, 3, 2, 1, 0, 28, false),
        ("vae.c2", false, 32, 64, 3, 2, 1, 0, 14, true),
        ("vae.t1", true, 64, 64, 3, 2, 1, 1, 7, true),
        ("vae.t2", true, 64, 32, 3, 2, 1, 1, 14, true),
        ("vae.t3", true, 32, 1, 3, 1, 1, 0, 28, true),
        ("gan.t1", true, 256, 128, 5, 1, 2, 0, 4, true),
        ("gan.t2", true, 128, 64, 5, 2, 2, 1, 4, true),
        ("gan.t3", true, 64, 3, 5, 2, 2, 1, 8, true),
        ("gan.c1", false, 3, 64, 5, 2, 2, 0, 16, true),
        ("gan.c2", false, 64, 128, 5, 2, 2, 0, 8, true),
    ];
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    for (name, tr, ci, co, k, s, p, po, h, needs) in layers {
        if std::env::var("LAYER").is_ok_and(|l| l != name) {
            continue;
        }
        let x = Tensor::<4>::random([128, ci, h, h], burn::tensor::Distribution::Default, &dev);
        let x = if needs { x.require_grad() } else { x };
        let mut fwd = f64::INFINITY;
        let mut bwd = f64::INFINITY;
        let ct = ConvTranspose2dConfig::new([ci, co], [k, k])
            .with_stride([s, s])
            .with_padding([p, p])
            .with_padding_out([po, po])
            .init(&dev);
        let cv = Conv2dConfig::new([ci, co], [k, k])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(&dev);
        for _ in 0..reps {
            let t0 = Instant::now();
            let y = if tr {
                ct.forward(x.clone())
            } else {
                cv.forward(x.clone())
            };
            let l = y.sum();
            let _ = l.clone().into_data();
            let t1 = Instant::now();
            let g = l.backward();
            drop(g);
            let t2 = Instant::now();
            fwd = fwd.min((t1 - t0).as_secs_f64());
            bwd = bwd.min((t2 - t1).as_secs_f64());
        }
        println!(
            "{name:8} fwd {:8.2} ms  bwd {:8.2} ms",
            fwd * 1e3,
            bwd * 1e3
        );
    }
}
