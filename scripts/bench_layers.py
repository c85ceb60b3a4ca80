"""PyTorch side of `bench_layers` (crates/gemba-nn/examples/bench_layers.rs): forward and
backward times of the conv VAE's and the DCGAN's convolutions, batch 128, one thread, best of
REPS (default 10). Run by `scripts/bench-nn layers`."""
import os, time, torch, torch.nn as nn

torch.set_num_threads(1)
# (name, transposed, c_in, c_out, k, stride, pad, pad_out, h_in, input needs grad): the same
# list as bench_layers.rs.
LAYERS = [
    ("vae.c1", 0, 1, 32, 3, 2, 1, 0, 28, 0), ("vae.c2", 0, 32, 64, 3, 2, 1, 0, 14, 1),
    ("vae.t1", 1, 64, 64, 3, 2, 1, 1, 7, 1), ("vae.t2", 1, 64, 32, 3, 2, 1, 1, 14, 1),
    ("vae.t3", 1, 32, 1, 3, 1, 1, 0, 28, 1), ("gan.t1", 1, 256, 128, 5, 1, 2, 0, 4, 1),
    ("gan.t2", 1, 128, 64, 5, 2, 2, 1, 4, 1), ("gan.t3", 1, 64, 3, 5, 2, 2, 1, 8, 1),
    ("gan.c1", 0, 3, 64, 5, 2, 2, 0, 16, 1), ("gan.c2", 0, 64, 128, 5, 2, 2, 0, 8, 1),
]
reps = int(os.environ.get("REPS", "10"))
for name, tr, ci, co, k, s, p, po, h, needs in LAYERS:
    x = torch.rand(128, ci, h, h, requires_grad=bool(needs))
    m = nn.ConvTranspose2d(ci, co, k, s, p, output_padding=po) if tr else nn.Conv2d(ci, co, k, s, p)
    f = b = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        l = m(x).sum()
        t1 = time.perf_counter()
        l.backward()
        t2 = time.perf_counter()
        f, b = min(f, t1 - t0), min(b, t2 - t1)
    print(f"{name:8} fwd {f * 1e3:8.2f} ms  bwd {b * 1e3:8.2f} ms")
