//! `gemba bench genealogy`: generates a logistics data set (by default 10,000 lots and 1,000,000
//! moves, with machine signals and state events), writes it through the engine's checked write path
//! into a fresh store, then measures the backward genealogy of finished lots with their process
//! data and inventory as of random times, in process (no HTTP in the figures).
//!
//! The data set, fixed for a seed: lots are made in three tiers — raw lots received into one of
//! ten stores, parts made from two raw lots each, products made from three parts each (6 : 3 : 1).
//! Every lot then moves its whole quantity `moves_per_lot` times round
//! store → line → machine → line → store, half a second apart; lot `n` starts at minute `n`.
//! Four lines of three machines each write a temperature every 10 s, an energy counter and
//! state changes every 10 minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use gemba_core::{Event, EventBody, SystemClock};
use gemba_engine::logistics::{Direction, ProcessOptions};
use gemba_engine::{BatchMode, Config, Engine, Source};
use gemba_ingest::{DecodedBatch, RawSeries};
use serde_json::Map;

/// SplitMix64: a few lines of fixed, seedable randomness for the data set and the query times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Args)]
pub struct BenchGenealogyArgs {
    /// Lots (a multiple of 10: 60 % raw, 30 % parts, 10 % products).
    #[arg(long, default_value_t = 10_000)]
    pub lots: usize,
    /// Moves in total (spread evenly over the lots).
    #[arg(long, default_value_t = 1_000_000)]
    pub moves: usize,
    /// Queries of each kind to time.
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    /// Directory for the benchmark's store (a temporary one by default).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const LINES: usize = 4;
const MACHINES: usize = 3;
const STORES: usize = 10;

fn plant() -> String {
    let mut s = String::from("[[sites]]\nname = \"s1\"\n[[sites.areas]]\nname = \"a1\"\n");
    for l in 1..=LINES {
        s.push_str(&format!("[[sites.areas.lines]]\nname = \"l{l}\"\n"));
        for m in 1..=MACHINES {
            s.push_str(&format!(
                "[[sites.areas.lines.machines]]\nname = \"m{m}\"\n\
                 [[sites.areas.lines.machines.signals]]\nname = \"temp\"\nunit = \"K\"\n\
                 [[sites.areas.lines.machines.signals]]\nname = \"energy\"\nunit = \"kWh\"\nkind = \"counter\"\n\
                 [[sites.areas.lines.machines.signals]]\nname = \"state\"\nkind = \"state\"\nstates = [\"idle\", \"running\", \"down\"]\n"
            ));
        }
    }
    s
}

fn line(l: usize) -> String {
    format!("s1/a1/l{}", l % LINES + 1)
}

fn ev(ts: i64, body: EventBody) -> Event {
    Event {
        ts,
        asset: "s1".into(),
        body,
        attrs: Map::new(),
    }
}

/// Percentiles of durations in ms.
fn pct(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    format!(
        "median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(1.0)
    )
}

pub fn run(args: BenchGenealogyArgs) -> anyhow::Result<()> {
    if args.lots < 10
        || !args.lots.is_multiple_of(10)
        || args.moves < args.lots
        || args.queries == 0
    {
        bail!("--lots must be a multiple of 10 (>= 10), --moves >= --lots, --queries > 0");
    }
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = crate::bench::tempdir()?;
            tmp.0.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    if dir.join("data/gemba.db").exists() {
        bail!(
            "{} already holds a store; give an empty --dir",
            dir.display()
        );
    }
    std::fs::write(dir.join("plant.toml"), plant())?;
    let mut config = Config::default();
    config.storage.path = dir.join("data/gemba.db");
    config.plant.file = Some(dir.join("plant.toml"));
    config.ingest.max_future_s = 10 * 365 * 86_400;
    config.energy.co2e_kg_per_kwh = Some(0.4);
    let engine = Engine::open(config.clone(), Arc::new(SystemClock))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let (raw, parts) = (args.lots * 6 / 10, args.lots * 3 / 10);
    let per_lot = args.moves / args.lots;
    let mut extra = args.moves - per_lot * args.lots;
    let end = T0 + args.lots as i64 * MINUTE;
    println!(
        "bench genealogy: {} lots ({raw} raw, {parts} parts, {} products), {} moves, {:.1} days of signals from {} machines",
        args.lots,
        args.lots - raw - parts,
        args.moves,
        (end - T0) as f64 / 86_400_000.0,
        LINES * MACHINES
    );

    // Signals: temperature every 10 s, energy every minute, a state change every 10 minutes.
    let t = Instant::now();
    let mut rng = Rng(args.seed);
    let mut samples = 0usize;
    for l in 0..LINES {
        for m in 1..=MACHINES {
            let path = format!("{}/m{m}", line(l));
            let temp_ts: Vec<i64> = (T0..end).step_by(10_000).collect();
            let temp: Vec<f64> = temp_ts.iter().map(|_| 320.0 + rng.unit() * 10.0).collect();
            let energy_ts: Vec<i64> = (T0..end).step_by(MINUTE as usize).collect();
            let energy: Vec<f64> = (0..energy_ts.len()).map(|i| i as f64 * 0.2).collect();
            let state_ts: Vec<i64> = (T0..end).step_by(10 * MINUTE as usize).collect();
            let state: Vec<f64> = (0..state_ts.len())
                .map(|i| if i % 6 == 5 { 0.0 } else { 1.0 })
                .collect();
            samples += temp.len() + energy.len() + state.len();
            let events = state_ts
                .iter()
                .zip(&state)
                .map(|(&ts, &v)| Event {
                    ts,
                    asset: path.clone(),
                    body: EventBody::State {
                        state: if v == 1.0 { "running" } else { "idle" }.into(),
                        reason: None,
                    },
                    attrs: Map::new(),
                })
                .collect();
            let series = [
                ("temp", temp_ts, temp),
                ("energy", energy_ts, energy),
                ("state", state_ts, state),
            ]
            .into_iter()
            .map(|(name, ts, values)| RawSeries {
                signal: format!("{path}/{name}"),
                ts,
                values,
                location: name.into(),
            })
            .collect();
            let o = engine.ingest_blocking(
                DecodedBatch {
                    series,
                    events,
                    ..DecodedBatch::default()
                },
                Source::Http,
                BatchMode::Strict,
            )?;
            if o.rejected > 0 {
                bail!("signal data rejected: {:?}", o.errors.first());
            }
        }
    }
    println!(
        "  signals: {samples} samples written in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Lots and moves, in time order, through the checked write path.
    let t = Instant::now();
    let mut batch: Vec<Event> = Vec::with_capacity(20_000);
    let mut written = 0usize;
    let mut flush = |batch: &mut Vec<Event>| -> anyhow::Result<()> {
        let n = batch.len();
        let o = engine.ingest_blocking(
            DecodedBatch {
                events: std::mem::take(batch),
                ..DecodedBatch::default()
            },
            Source::Http,
            BatchMode::Strict,
        )?;
        if o.rejected > 0 {
            bail!("logistics data rejected: {:?}", o.errors.first());
        }
        written += n;
        Ok(())
    };
    for n in 0..args.lots {
        let created = T0 + n as i64 * MINUTE;
        let store = format!("store-{}", n % STORES);
        let (id, product, inputs) = if n < raw {
            (format!("R{n:05}"), format!("raw-{}", n % 20), Vec::new())
        } else if n < raw + parts {
            let k = n - raw;
            (
                format!("P{k:05}"),
                format!("part-{}", k % 10),
                vec![format!("R{:05}", 2 * k), format!("R{:05}", 2 * k + 1)],
            )
        } else {
            let k = n - raw - parts;
            (
                format!("F{k:05}"),
                format!("product-{}", k % 5),
                (0..3).map(|i| format!("P{:05}", 3 * k + i)).collect(),
            )
        };
        let qty = 1000.0;
        batch.push(ev(
            created,
            EventBody::Lot {
                lot: id.clone(),
                product,
                quantity: qty,
                unit: "pcs".into(),
                location: store.clone(),
                inputs,
            },
        ));
        let machine = format!("{}/m{}", line(n), n % MACHINES + 1);
        let round = [store.clone(), line(n), machine, line(n)];
        let k = per_lot + usize::from(extra > 0);
        extra = extra.saturating_sub(1);
        for j in 0..k {
            batch.push(ev(
                created + 500 * (j as i64 + 1),
                EventBody::Move {
                    lot: id.clone(),
                    from: round[j % 4].clone(),
                    to: round[(j + 1) % 4].clone(),
                    quantity: qty,
                },
            ));
        }
        if batch.len() >= 20_000 {
            flush(&mut batch)?;
        }
    }
    flush(&mut batch)?;
    let load = t.elapsed();
    println!(
        "  logistics: {written} lot and move events checked and committed in {:.1} s ({:.0} events/s)",
        load.as_secs_f64(),
        written as f64 / load.as_secs_f64()
    );
    drop(engine);

    // Restart: the ledger is rebuilt from the store's logistics index.
    let t = Instant::now();
    let engine = Engine::open(config, Arc::new(SystemClock))?;
    let rebuild = t.elapsed();
    let (lots, steps) = rt.block_on(engine.with_ledger(|l| l.size()))?;
    println!(
        "  restart: ledger of {lots} lots and {steps} steps rebuilt in {:.2} s",
        rebuild.as_secs_f64()
    );

    let products = args.lots - raw - parts;
    let mut rng = Rng(args.seed ^ 0xBEEF);
    let mut time = |scope: ProcessOptions| -> anyhow::Result<(Vec<Duration>, usize, usize)> {
        let mut d = Vec::with_capacity(args.queries);
        let (mut lots, mut windows) = (0, 0);
        for _ in 0..args.queries {
            let lot = format!("F{:05}", rng.below(products as u64));
            let t = Instant::now();
            let g = rt
                .block_on(engine.genealogy(&lot, Direction::Backward, scope))
                .with_context(|| format!("genealogy of {lot}"))?;
            d.push(t.elapsed());
            lots += g.lots.len();
            windows += g.process.len();
        }
        Ok((d, lots / args.queries, windows / args.queries))
    };
    let (d, lots, windows) = time(ProcessOptions {
        only_root: true,
        ..ProcessOptions::default()
    })?;
    println!(
        "  backward genealogy of a product + process data of the lot: {} ({lots} lots, {windows} stays at machines/lines with their events and signal statistics)",
        pct(d)
    );
    let (d, lots, windows) = time(ProcessOptions::default())?;
    println!(
        "  backward genealogy + process data of every lot in it: {} ({lots} lots, {windows} stays)",
        pct(d)
    );
    let (d, lots, _) = time(ProcessOptions {
        process: false,
        ..ProcessOptions::default()
    })?;
    println!("  backward genealogy alone: {} ({lots} lots)", pct(d));

    let mut d = Vec::with_capacity(args.queries);
    let mut rows = 0;
    for _ in 0..args.queries {
        let at = T0 + rng.below((end - T0) as u64) as i64;
        let t = Instant::now();
        let r = rt.block_on(engine.with_ledger(move |l| l.inventory(Some(at), None, None)))?;
        d.push(t.elapsed());
        rows += r.len();
    }
    println!(
        "  inventory as of a random time (every location and product): {} ({} rows)",
        pct(d),
        rows / args.queries
    );
    let mut d = Vec::with_capacity(args.queries);
    for _ in 0..args.queries {
        let at = T0 + rng.below((end - T0) as u64) as i64;
        let loc = line(rng.below(LINES as u64) as usize);
        let t = Instant::now();
        rt.block_on(engine.with_ledger(move |l| l.lots_at(&loc, Some(at))))?;
        d.push(t.elapsed());
    }
    println!(
        "  lots at one line as of a random time (per-lot replay): {}",
        pct(d)
    );
    Ok(())
}
