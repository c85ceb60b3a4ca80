#!/usr/bin/env python3
"""PyTorch side of scripts/bench-nn: the same four models as crates/gemba-nn/examples/bench_nn.rs
(architectures, data sizes, batches, epochs), one thread, one JSON line per case."""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)
EPOCHS = 3


def epochs(step, x, batch, n_epochs, extra=None):
    times = []
    for _ in range(n_epochs):
        perm = torch.randperm(x.shape[0])
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], batch):
            idx = perm[i:i + batch]
            step(x[idx], None if extra is None else extra[idx])
        times.append(time.perf_counter() - t0)
    return min(times[1:])


class MlpVae(nn.Module):
    def __init__(s, d=64, h=128, z=16):
        super().__init__()
        s.e1, s.head, s.d1, s.out = nn.Linear(d, h), nn.Linear(h, 2 * z), nn.Linear(z, h), nn.Linear(h, d)
        s.z = z
    def forward(s, x):
        hz = s.head(F.relu(s.e1(x)))
        mu, lv = hz[:, :s.z], hz[:, s.z:]
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        return s.out(F.relu(s.d1(z))), mu, lv


class ConvVae(nn.Module):
    def __init__(s, c=1, h=28, w=28, dense=128, z=16):
        super().__init__()
        s.c1 = nn.Conv2d(c, 32, 3, stride=2, padding=1)
        s.c2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        flat = 64 * (h // 4) * (w // 4)
        s.fc, s.head, s.dfc = nn.Linear(flat, dense), nn.Linear(dense, 2 * z), nn.Linear(z, flat)
        s.t1 = nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1)
        s.t2 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
        s.t3 = nn.ConvTranspose2d(32, c, 3, stride=1, padding=1)
        s.z, s.hw = z, (h // 4, w // 4)
    def forward(s, x):
        h = F.relu(s.c2(F.relu(s.c1(x)))).flatten(1)
        hz = s.head(F.relu(s.fc(h)))
        mu, lv = hz[:, :s.z], hz[:, s.z:]
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        y = F.relu(s.dfc(z)).view(-1, 64, *s.hw)
        return s.t3(F.relu(s.t2(F.relu(s.t1(y))))), mu, lv


def kl(mu, lv):
    return 0.5 * (mu.pow(2) + lv.exp() - lv - 1).sum(1)


def mlp3(i, h, o):
    return nn.Sequential(nn.Linear(i, h), nn.LeakyReLU(0.2), nn.Linear(h, h), nn.LeakyReLU(0.2), nn.Linear(h, o))


class DcGen(nn.Module):
    def __init__(s, z=100, c=3):
        super().__init__()
        s.fc, s.bn0 = nn.Linear(z, 4 * 4 * 256, bias=False), nn.BatchNorm1d(4 * 4 * 256)
        s.t1, s.bn1 = nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), nn.BatchNorm2d(128)
        s.t2, s.bn2 = nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), nn.BatchNorm2d(64)
        s.t3 = nn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=1, bias=False)
    def forward(s, z):
        x = F.leaky_relu(s.bn0(s.fc(z)), 0.3).view(-1, 256, 4, 4)
        x = F.leaky_relu(s.bn1(s.t1(x)), 0.3)
        x = F.leaky_relu(s.bn2(s.t2(x)), 0.3)
        return torch.tanh(s.t3(x))


class DcDisc(nn.Module):
    def __init__(s, c=3):
        super().__init__()
        s.c1, s.c2 = nn.Conv2d(c, 64, 5, 2, 2), nn.Conv2d(64, 128, 5, 2, 2)
        s.fc = nn.Linear(128 * 16, 1)
    def forward(s, x):
        x = F.dropout(F.leaky_relu(s.c1(x), 0.3), 0.3, s.training)
        x = F.dropout(F.leaky_relu(s.c2(x), 0.3), 0.3, s.training)
        return s.fc(x.flatten(1))


def gan_step(G, D, og, od, real, gin_fn):
    b = real.shape[0]
    fake = G(gin_fn(b)).detach()
    ld = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
    od.zero_grad(); ld.backward(); od.step()
    lg = F.softplus(-D(G(gin_fn(b)))).mean()
    og.zero_grad(); lg.backward(); og.step()


def main():
    which = (sys.argv[1] if len(sys.argv) > 1 else "mlp_vae,tab_gan,conv_vae,dcgan,score").split(",")
    for w in which:
        if w in ("mlp_vae", "score"):
            x = torch.rand(20000, 64)
            m = MlpVae(); opt = torch.optim.Adam(m.parameters(), 1e-3)
            def step(xb, _):
                out, mu, lv = m(xb)
                loss = (0.5 * (xb - out).pow(2).sum(1) + kl(mu, lv)).mean()
                opt.zero_grad(); loss.backward(); opt.step()
            t = epochs(step, x, 256, EPOCHS)
            if w == "mlp_vae":
                print(json.dumps({"case": "mlp_vae", "epoch_s": t, "rows": 20000, "batch": 256}))
            else:
                m.eval()
                best = float("inf")
                with torch.no_grad():
                    for _ in range(3):
                        t0 = time.perf_counter()
                        for i in range(0, 20000, 1024):
                            xb = x[i:i + 1024]
                            hz = m.head(F.relu(m.e1(xb))); mu, lv = hz[:, :16], hz[:, 16:]
                            out = m.out(F.relu(m.d1(mu)))
                            s = 0.5 * (xb - out).pow(2).sum(1) + kl(mu, lv)
                        best = min(best, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    for i in range(2000):
                        xb = x[i:i + 1]
                        hz = m.head(F.relu(m.e1(xb))); mu, lv = hz[:, :16], hz[:, 16:]
                        out = m.out(F.relu(m.d1(mu)))
                        s = 0.5 * (xb - out).pow(2).sum(1) + kl(mu, lv)
                    single = 2000 / (time.perf_counter() - t0)
                print(json.dumps({"case": "score", "windows_per_s": 20000 / best, "single_windows_per_s": single}))
        elif w == "tab_gan":
            x = torch.rand(20000, 64); y = F.one_hot(torch.arange(20000) % 4, 4).float()
            G, D = mlp3(32 + 4, 128, 64), mlp3(64 + 4, 128, 1)
            og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
            od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
            def step(xb, yb):
                b = xb.shape[0]
                real = torch.cat([xb, yb], 1)
                def gin():
                    c = F.one_hot(torch.randint(0, 4, (b,)), 4).float()
                    return torch.cat([torch.randn(b, 32), c], 1), c
                zi, c = gin(); fake = G(zi).detach()
                ld = F.softplus(-D(real)).mean() + F.softplus(D(torch.cat([fake, c], 1))).mean()
                od.zero_grad(); ld.backward(); od.step()
                zi, c = gin()
                lg = F.softplus(-D(torch.cat([G(zi), c], 1))).mean()
                og.zero_grad(); lg.backward(); og.step()
            print(json.dumps({"case": "tab_gan", "epoch_s": epochs(step, x, 256, EPOCHS, y), "rows": 20000, "batch": 256}))
        elif w == "conv_vae":
            x = torch.rand(10000, 1, 28, 28)
            m = ConvVae(); opt = torch.optim.Adam(m.parameters(), 1e-3)
            def step(xb, _):
                out, mu, lv = m(xb)
                rec = F.binary_cross_entropy_with_logits(out, xb, reduction="none").flatten(1).sum(1)
                loss = (rec + kl(mu, lv)).mean()
                opt.zero_grad(); loss.backward(); opt.step()
            print(json.dumps({"case": "conv_vae", "epoch_s": epochs(step, x, 128, 2), "images": 10000, "batch": 128}))
        elif w == "dcgan":
            x = torch.rand(2048, 3, 16, 16) * 2 - 1
            G, D = DcGen(), DcDisc()
            og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
            od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
            step = lambda xb, _: gan_step(G, D, og, od, xb, lambda b: torch.randn(b, 100))
            print(json.dumps({"case": "dcgan", "epoch_s": epochs(step, x, 128, 2), "images": 2048, "batch": 128}))


if __name__ == "__main__":
    main()
