//! Epoch times of the four models and the VAE's scoring rate, on synthetic data of fixed seed,
//! one thread. `scripts/bench-nn` runs this next to `scripts/bench_nn.py` (PyTorch, same
//! architectures, data sizes and batches) and prints the ratios.
//!
//! cargo run -p gemba-nn --example bench_nn [--profile …] -- [which,…]   (one JSON line per case)

use std::time::Instant;

/// The allocator of the `gemba` binary (crates/gemba/src/main.rs), so that the benchmark times
/// what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gemba_nn::gan::{Dcgan, GanParams, TabularGan};
use gemba_nn::{ImageSet, Table, ThresholdMethod, TrainHooks, Vae, VaeParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Uniform values in [0, 1) of a fixed seed.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.r#gen::<f32>()).collect()
}

/// The best (minimum) of the epoch times after the first (warm-up) epoch.
fn best(h: &[gemba_nn::EpochReport]) -> f64 {
    h.iter()
        .skip(1)
        .map(|r| r.seconds)
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which: Vec<String> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mlp_vae,tab_gan,conv_vae,dcgan,score".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let epochs = 3;
    for w in &which {
        match w.as_str() {
            "mlp_vae" | "score" => {
                let names: Vec<String> = (0..64).map(|j| format!("f{j}")).collect();
                let t = Table::new(names, data(20_000 * 64, 1))?;
                let p = VaeParams {
                    hidden: vec![128],
                    z_dim: 16,
                    epochs,
                    batch_size: 256,
                    validation_fraction: 0.0,
                    patience: 0,
                    standardize: false,
                    threshold: ThresholdMethod::Quantile { q: 0.99 },
                    ..VaeParams::default()
                };
                let vae = Vae::fit_table(&p, &t, TrainHooks::default())?;
                if w == "mlp_vae" {
                    println!(
                        "{{\"case\":\"mlp_vae\",\"epoch_s\":{:.4},\"rows\":20000,\"batch\":256}}",
                        best(&vae.history)
                    );
                } else {
                    // Scoring sensor windows: 20 000 rows in batches of 1 024, best of 3.
                    let mut bestr = f64::INFINITY;
                    for _ in 0..3 {
                        let t0 = Instant::now();
                        let s = vae.scores(t.data())?;
                        assert_eq!(s.len(), 20_000);
                        bestr = bestr.min(t0.elapsed().as_secs_f64());
                    }
                    // One window at a time (latency path).
                    let t0 = Instant::now();
                    for i in 0..2_000 {
                        vae.scores(t.row(i))?;
                    }
                    let single = 2_000.0 / t0.elapsed().as_secs_f64();
                    println!(
                        "{{\"case\":\"score\",\"windows_per_s\":{:.0},\"single_windows_per_s\":{single:.0}}}",
                        20_000.0 / bestr
                    );
                }
            }
            "tab_gan" => {
                let names: Vec<String> = (0..64).map(|j| format!("f{j}")).collect();
                let t = Table::new(names, data(20_000 * 64, 2))?;
                let y: Vec<usize> = (0..20_000).map(|i| i % 4).collect();
                let p = GanParams {
                    z_dim: 32,
                    hidden: 128,
                    epochs,
                    batch_size: 256,
                    standardize: false,
                    ..GanParams::default()
                };
                let g = TabularGan::fit(
                    &p,
                    &t,
                    &y,
                    (0..4).map(|c| format!("c{c}")).collect(),
                    TrainHooks::default(),
                )?;
                println!(
                    "{{\"case\":\"tab_gan\",\"epoch_s\":{:.4},\"rows\":20000,\"batch\":256}}",
                    best(&g.history)
                );
            }
            "conv_vae" => {
                let n = 10_000;
                let set = ImageSet::new(1, 28, 28, data(n * 784, 3))?;
                let p = VaeParams {
                    hidden: vec![128],
                    z_dim: 16,
                    epochs: 2,
                    batch_size: 128,
                    validation_fraction: 0.0,
                    patience: 0,
                    ..VaeParams::default()
                };
                let vae = Vae::fit_images(&p, &set, TrainHooks::default())?;
                println!(
                    "{{\"case\":\"conv_vae\",\"epoch_s\":{:.4},\"images\":{n},\"batch\":128}}",
                    best(&vae.history)
                );
            }
            "dcgan" => {
                let n = 2_048;
                let set = ImageSet::new(3, 16, 16, data(n * 768, 4))?;
                let p = GanParams {
                    z_dim: 100,
                    epochs: 2,
                    batch_size: 128,
                    ..GanParams::default()
                };
                let g = Dcgan::fit(&p, &set, TrainHooks::default())?;
                println!(
                    "{{\"case\":\"dcgan\",\"epoch_s\":{:.4},\"images\":{n},\"batch\":128}}",
                    best(&g.history)
                );
            }
            other => return Err(format!("unknown case {other}").into()),
        }
    }
    Ok(())
}
