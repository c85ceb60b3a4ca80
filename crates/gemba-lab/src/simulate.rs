//! `gemba simulate` and the simulator part of `gemba demo`: runs a [`Simulator`] at a pace and
//! sends its ticks to sinks (MQTT, the store, CSV files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gemba_core::time::{format_rfc3339, parse_duration_ms, parse_timestamp};
use gemba_core::{Event, Plant, Timestamp};
use gemba_engine::{BatchMode, Config, Engine, Source};
use gemba_ingest::client::{MqttClientConfig, Publisher};
use gemba_ingest::{DecodedBatch, RawPoint, RawValue};
use gemba_sim::{FailureMode, Label, Scenario, Simulator, Tick};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::args::{SimTarget, SimulateArgs};

/// The default scenario of `gemba demo` and `gemba simulate`.
pub const DEFAULT_SCENARIO: &str = include_str!("../../../examples/scenarios/default.toml");

/// Reads the plant (default: the sample plant) and the scenario (default: the default scenario).
pub fn load_inputs(
    plant: Option<&Path>,
    scenario: Option<&Path>,
    seed: Option<u64>,
) -> anyhow::Result<(Plant, Scenario)> {
    let plant = match plant {
        Some(p) => gemba_engine::load_plant(p)?,
        None => gemba_engine::parse_plant(crate::DEMO_PLANT, "the sample plant")?,
    };
    let mut scenario = match scenario {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read scenario {}", p.display()))?;
            Scenario::from_toml(&text).with_context(|| format!("scenario {}", p.display()))?
        }
        None => Scenario::from_toml(DEFAULT_SCENARIO).context("the default scenario")?,
    };
    if let Some(s) = seed {
        scenario.seed = s;
    }
    Ok((plant, scenario))
}

/// Parses a duration that may be zero (`0`, `0s`, `0h`, …); other values as `parse_duration_ms`.
pub fn parse_duration_or_zero(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let unit = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let digits = &s[..s.len() - unit.len()];
    if !digits.is_empty() && digits.chars().all(|c| c == '0') {
        // The unit must still be one of the known ones.
        if !unit.is_empty() {
            parse_duration_ms(&format!("1{unit}")).map_err(|_| {
                anyhow::anyhow!("duration {s:?} has unknown unit {unit:?} (use ms, s, m, h or d)")
            })?;
        }
        return Ok(0);
    }
    parse_duration_ms(s).map_err(anyhow::Error::msg)
}

pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where ticks go.
/// What `gemba demo` simulates next to the server.
#[derive(Debug)]
pub struct DemoSim {
    pub plant: gemba_core::Plant,
    pub scenario: gemba_sim::Scenario,
    pub history_ms: i64,
    pub data: std::path::PathBuf,
}

pub trait Sink {
    fn send(&mut self, tick: &Tick) -> anyhow::Result<()>;
    /// Hands over what is buffered (called before the pacer sleeps).
    fn flush(&mut self) -> anyhow::Result<()>;
    /// Flushes and waits until everything is durable where it went.
    fn finish(&mut self) -> anyhow::Result<()>;
    /// A line for the summary.
    fn summary(&self) -> String;
}

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub ticks: u64,
    pub samples: u64,
    pub events: u64,
    pub failures: u64,
    pub wall: Duration,
}

/// Steps `sim` until `end` (simulated time) or until `stop` is set, at `speed` × real time
/// (`None`: as fast as the sinks take it), sending every tick to every sink.
pub fn drive(
    sim: &mut Simulator,
    sinks: &mut [Box<dyn Sink + Send>],
    speed: Option<f64>,
    end: Option<Timestamp>,
    stop: &AtomicBool,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<RunStats> {
    let mut tick = sim.new_tick();
    let wall0 = Instant::now();
    let sim0 = sim.now();
    let mut stats = RunStats::default();
    let mut last_bar = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if end.is_some_and(|e| sim.now() >= e) {
            break;
        }
        sim.step(&mut tick);
        stats.ticks += 1;
        stats.samples += tick.sample_count() as u64;
        stats.events += tick.events.len() as u64;
        stats.failures += tick.labels.iter().filter(|l| l.failure.is_some()).count() as u64;
        // Paced runs send a tick when its time has come (a machine reports a measurement after it
        // was made, never before): hand over what is buffered, sleep, then send.
        if let Some(speed) = speed {
            let due = Duration::from_secs_f64((tick.ts - sim0) as f64 / 1000.0 / speed);
            let elapsed = wall0.elapsed();
            if due > elapsed {
                for s in sinks.iter_mut() {
                    s.flush()?;
                }
                let mut left = due - elapsed;
                while left > Duration::ZERO && !stop.load(Ordering::Relaxed) {
                    let nap = left.min(Duration::from_millis(100));
                    std::thread::sleep(nap);
                    left = left.saturating_sub(nap);
                }
            }
        }
        for s in sinks.iter_mut() {
            s.send(&tick)?;
        }
        if let Some(bar) = bar
            && last_bar.elapsed() > Duration::from_millis(100)
        {
            last_bar = Instant::now();
            bar.set_position(((sim.now() - sim0) / 1000).max(0) as u64);
            bar.set_message(format!(
                "{} samples, {} events, {} failures",
                stats.samples, stats.events, stats.failures
            ));
        }
    }
    for s in sinks.iter_mut() {
        s.finish()?;
    }
    stats.wall = wall0.elapsed();
    Ok(stats)
}

fn value_text(sim_states: &[String], v: f64) -> Option<String> {
    if sim_states.is_empty() {
        None
    } else {
        sim_states.get(v as usize).cloned()
    }
}

/// Publishes each machine's samples as machine batches (`<prefix>/<machine>`:
/// `[{"ts", "values"}, …]`) and events as `{"events": […]}` on the machine's topic; events of a
/// line (lot moves, shift starts) go on the topic of the line's first machine, with the line as
/// their asset.
#[derive(Debug)]
pub struct MqttSink {
    rt: tokio::runtime::Handle,
    publisher: Option<Publisher>,
    topics: Vec<String>,
    signal_machine: Vec<usize>,
    signal_names: Vec<String>,
    signal_states: Vec<Vec<String>>,
    rows: Vec<Vec<Value>>,
    events: HashMap<usize, Vec<Value>>,
    asset_topic: HashMap<String, usize>,
    machines: Vec<String>,
    messages: u64,
}

impl MqttSink {
    pub fn connect(
        rt: tokio::runtime::Handle,
        cfg: &MqttClientConfig,
        sim: &Simulator,
    ) -> anyhow::Result<MqttSink> {
        let publisher = rt
            .block_on(Publisher::connect(cfg))
            .with_context(|| format!("MQTT broker {}:{}", cfg.host, cfg.port))?;
        let machines: Vec<String> = sim.machines().iter().map(|s| s.to_string()).collect();
        Ok(MqttSink {
            rt,
            publisher: Some(publisher),
            topics: machines
                .iter()
                .map(|m| format!("{}/{m}", cfg.topic_prefix))
                .collect(),
            signal_machine: sim.signals().iter().map(|s| s.machine).collect(),
            signal_names: sim.signals().iter().map(|s| s.name.clone()).collect(),
            signal_states: sim.signals().iter().map(|s| s.states.clone()).collect(),
            rows: vec![Vec::new(); machines.len()],
            events: HashMap::new(),
            asset_topic: HashMap::new(),
            machines,
            messages: 0,
        })
    }

    fn topic_of(&mut self, asset: &str) -> usize {
        if let Some(&i) = self.asset_topic.get(asset) {
            return i;
        }
        let i = self
            .machines
            .iter()
            .position(|m| m == asset || gemba_core::is_under(m, asset))
            .unwrap_or(0);
        self.asset_topic.insert(asset.to_owned(), i);
        i
    }
}

impl Sink for MqttSink {
    fn send(&mut self, tick: &Tick) -> anyhow::Result<()> {
        let mut per_machine: Vec<Map<String, Value>> = vec![Map::new(); self.topics.len()];
        for (i, v) in tick.values.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            let value = match value_text(&self.signal_states[i], *v) {
                Some(name) => Value::String(name),
                None => json!(v),
            };
            per_machine[self.signal_machine[i]].insert(self.signal_names[i].clone(), value);
        }
        for (m, values) in per_machine.into_iter().enumerate() {
            if !values.is_empty() {
                self.rows[m].push(json!({"ts": tick.ts, "values": values}));
            }
        }
        for e in &tick.events {
            let t = self.topic_of(&e.asset);
            self.events
                .entry(t)
                .or_default()
                .push(serde_json::to_value(e)?);
        }
        if self.rows.iter().any(|r| r.len() >= 500) {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let Some(publisher) = &self.publisher else {
            bail!("MQTT sink used after finish");
        };
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for (m, rows) in self.rows.iter_mut().enumerate() {
            if !rows.is_empty() {
                out.push((self.topics[m].clone(), serde_json::to_vec(&rows)?));
                rows.clear();
            }
        }
        for (m, events) in self.events.drain() {
            out.push((
                self.topics[m].clone(),
                serde_json::to_vec(&json!({ "events": events }))?,
            ));
        }
        self.messages += out.len() as u64;
        self.rt.block_on(async {
            for (topic, payload) in out {
                publisher.publish(topic, payload).await?;
            }
            Ok::<(), gemba_ingest::MqttError>(())
        })?;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        if let Some(p) = self.publisher.take() {
            self.rt
                .block_on(p.close(Duration::from_secs(30)))
                .context("MQTT: not every message was acknowledged")?;
        }
        Ok(())
    }

    fn summary(&self) -> String {
        format!("{} MQTT messages", self.messages)
    }
}

/// Writes ticks into a store through the engine's validated write path.
#[derive(Debug)]
pub struct DirectSink {
    engine: Arc<Engine>,
    paths: Vec<String>,
    states: Vec<Vec<String>>,
    batch: DecodedBatch,
    accepted: u64,
    rejected: u64,
    shown: usize,
}

impl DirectSink {
    pub fn new(engine: Arc<Engine>, sim: &Simulator) -> DirectSink {
        DirectSink {
            engine,
            paths: sim.signals().iter().map(|s| s.path.clone()).collect(),
            states: sim.signals().iter().map(|s| s.states.clone()).collect(),
            batch: DecodedBatch::default(),
            accepted: 0,
            rejected: 0,
            shown: 0,
        }
    }
}

impl Sink for DirectSink {
    fn send(&mut self, tick: &Tick) -> anyhow::Result<()> {
        for (i, v) in tick.values.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            let value = match value_text(&self.states[i], *v) {
                Some(name) => RawValue::Text(name),
                None => RawValue::Number(*v),
            };
            self.batch.points.push(RawPoint {
                signal: self.paths[i].clone(),
                ts: Some(tick.ts),
                value,
                location: "simulator".into(),
            });
        }
        self.batch.events.extend(tick.events.iter().cloned());
        if self.batch.points.len() >= 100_000 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.points.is_empty() && self.batch.events.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let o = self
            .engine
            .ingest_blocking(batch, Source::Simulator, BatchMode::Partial)?;
        self.accepted += (o.accepted_points + o.accepted_events) as u64;
        self.rejected += o.rejected as u64;
        for e in o.errors {
            if self.shown < 10 {
                tracing::warn!(location = %e.location, "simulator data rejected: {}", e.message);
                self.shown += 1;
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()
    }

    fn summary(&self) -> String {
        format!(
            "{} samples and events stored, {} rejected",
            self.accepted, self.rejected
        )
    }
}

/// Counts only (for measuring the simulator itself).
#[derive(Default, Debug)]
pub struct NullSink;

impl Sink for NullSink {
    fn send(&mut self, _tick: &Tick) -> anyhow::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn summary(&self) -> String {
        String::new()
    }
}

#[derive(Debug)]
struct LabelRow {
    ts: Timestamp,
    label: Label,
}

/// CSV export: `machines/<machine>.csv` (ts and one column per signal; state signals as names),
/// `events.csv` (ts, asset, type, the event as JSON) and `labels.csv` (ground truth per machine
/// and tick, with the time to the machine's next failure).
#[derive(Debug)]
pub struct ExportSink {
    dir: PathBuf,
    machine_files: Vec<csv::Writer<std::io::BufWriter<std::fs::File>>>,
    machine_cols: Vec<Vec<usize>>,
    states: Vec<Vec<String>>,
    events: csv::Writer<std::io::BufWriter<std::fs::File>>,
    labels: csv::Writer<std::io::BufWriter<std::fs::File>>,
    machines: Vec<String>,
    /// Rows since each machine's last failure, written when the next failure is known.
    pending: Vec<Vec<LabelRow>>,
    rows: u64,
}

fn csv_file(path: &Path) -> anyhow::Result<csv::Writer<std::io::BufWriter<std::fs::File>>> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(csv::Writer::from_writer(std::io::BufWriter::new(f)))
}

impl ExportSink {
    pub fn create(dir: &Path, sim: &Simulator) -> anyhow::Result<ExportSink> {
        let mdir = dir.join("machines");
        std::fs::create_dir_all(&mdir)
            .with_context(|| format!("cannot create {}", mdir.display()))?;
        let machines: Vec<String> = sim.machines().iter().map(|s| s.to_string()).collect();
        let mut machine_files = Vec::new();
        let mut machine_cols = Vec::new();
        for (m, path) in machines.iter().enumerate() {
            let name = path.replace('/', "_");
            let mut w = csv_file(&mdir.join(format!("{name}.csv")))?;
            let cols: Vec<usize> = sim
                .signals()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.machine == m)
                .map(|(i, _)| i)
                .collect();
            let mut header = vec!["ts".to_owned()];
            header.extend(cols.iter().map(|&i| sim.signals()[i].name.clone()));
            w.write_record(&header)?;
            machine_files.push(w);
            machine_cols.push(cols);
        }
        let mut events = csv_file(&dir.join("events.csv"))?;
        events.write_record(["ts", "time", "asset", "type", "event"])?;
        let mut labels = csv_file(&dir.join("labels.csv"))?;
        labels.write_record([
            "ts",
            "machine",
            "state",
            "fault",
            "failure",
            "bearing_rul_s",
            "next_failure",
            "time_to_failure_s",
        ])?;
        Ok(ExportSink {
            dir: dir.to_owned(),
            machine_files,
            machine_cols,
            states: sim.signals().iter().map(|s| s.states.clone()).collect(),
            events,
            labels,
            pending: (0..machines.len()).map(|_| Vec::new()).collect(),
            machines,
            rows: 0,
        })
    }

    fn write_labels(
        &mut self,
        m: usize,
        next: Option<(Timestamp, FailureMode)>,
    ) -> anyhow::Result<()> {
        for row in self.pending[m].drain(..) {
            let l = row.label;
            let ttf = next.map(|(ts, _)| ((ts - row.ts) as f64 / 1000.0).to_string());
            self.labels.write_record([
                row.ts.to_string(),
                self.machines[m].clone(),
                l.state.name().to_owned(),
                l.fault.map(|f| f.name().to_owned()).unwrap_or_default(),
                l.failure.map(|f| f.name().to_owned()).unwrap_or_default(),
                l.bearing_rul_s.map(|r| r.to_string()).unwrap_or_default(),
                next.map(|(_, f)| f.name().to_owned()).unwrap_or_default(),
                ttf.unwrap_or_default(),
            ])?;
        }
        Ok(())
    }
}

impl Sink for ExportSink {
    fn send(&mut self, tick: &Tick) -> anyhow::Result<()> {
        let ts = tick.ts.to_string();
        for (m, cols) in self.machine_cols.iter().enumerate() {
            let mut rec = Vec::with_capacity(cols.len() + 1);
            rec.push(ts.clone());
            for &i in cols {
                let v = tick.values[i];
                rec.push(if v.is_nan() {
                    String::new()
                } else if let Some(name) = value_text(&self.states[i], v) {
                    name
                } else {
                    v.to_string()
                });
            }
            self.machine_files[m].write_record(&rec)?;
        }
        for e in &tick.events {
            write_event(&mut self.events, e)?;
        }
        for (m, label) in tick.labels.iter().enumerate() {
            self.pending[m].push(LabelRow {
                ts: tick.ts,
                label: *label,
            });
            if let Some(f) = label.failure {
                self.write_labels(m, Some((tick.ts, f)))?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        for m in 0..self.machines.len() {
            self.write_labels(m, None)?;
        }
        for w in &mut self.machine_files {
            w.flush()?;
        }
        self.events.flush()?;
        self.labels.flush()?;
        Ok(())
    }

    fn summary(&self) -> String {
        format!(
            "{} rows per machine exported to {}",
            self.rows,
            self.dir.display()
        )
    }
}

fn write_event(
    w: &mut csv::Writer<std::io::BufWriter<std::fs::File>>,
    e: &Event,
) -> anyhow::Result<()> {
    w.write_record([
        e.ts.to_string(),
        format_rfc3339(e.ts),
        e.asset.clone(),
        e.body.type_name(),
        serde_json::to_string(e)?,
    ])?;
    Ok(())
}

fn parse_speed(s: &str) -> anyhow::Result<Option<f64>> {
    if s == "max" {
        return Ok(None);
    }
    let v: f64 = s
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .with_context(|| format!("--speed {s:?}: give a number > 0 (1 = real time) or max"))?;
    Ok(Some(v))
}

pub fn progress(total_s: u64) -> ProgressBar {
    let bar = ProgressBar::new(total_s);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} s simulated ({eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let (plant, scenario) =
        load_inputs(args.plant.as_deref(), args.scenario.as_deref(), args.seed)?;
    let speed = parse_speed(&args.speed)?;
    let duration = args.duration.as_ref().map(|d| d.ms);
    let now = now_ms();
    let start = match (&args.start, speed, duration) {
        (Some(s), _, _) => parse_timestamp(s).map_err(|e| anyhow::anyhow!("--start: {e}"))?,
        (None, Some(v), _) if (v - 1.0).abs() < f64::EPSILON => now,
        (None, _, Some(d)) => now - d,
        (None, _, None) if args.to == SimTarget::None => now,
        (None, _, None) => bail!(
            "--speed {} without --duration would stamp data further and further in the future; \
             give --duration (the run then ends now) or --start",
            args.speed
        ),
    };
    let dt = scenario.sample_interval.0;
    let start = start - start.rem_euclid(dt);
    let mut sim = Simulator::new(&plant, &scenario, start)?;
    for m in sim.skipped_machines() {
        tracing::warn!(machine = %m, "not simulated: it has no signal the simulator knows");
    }
    let end = duration.map(|d| start + d);
    eprintln!(
        "simulating {} machines, {} signals, scenario {:?}, seed {}, from {} {} at {}",
        sim.machines().len(),
        sim.signals().len(),
        scenario.name.as_deref().unwrap_or("(unnamed)"),
        scenario.seed,
        format_rfc3339(start),
        end.map_or("forever".to_owned(), |e| format!(
            "to {}",
            format_rfc3339(e)
        )),
        speed.map_or("full speed".to_owned(), |s| format!("{s}× real time")),
    );
    if args.dry_run {
        for s in sim.signals() {
            println!("{}", s.path);
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        rt.spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut sinks: Vec<Box<dyn Sink + Send>> = Vec::new();
    let mut _engine = None;
    match args.to {
        SimTarget::Mqtt => {
            let cfg = MqttClientConfig {
                host: args.mqtt_host.clone(),
                port: args.mqtt_port,
                client_id: format!("gemba-sim-{}", std::process::id()),
                username: args.username.clone(),
                password: args.password.clone(),
                tls: args.ca_file.is_some(),
                ca_file: args.ca_file.clone(),
                topic_prefix: args.topic_prefix.clone(),
                ..MqttClientConfig::default()
            };
            sinks.push(Box::new(MqttSink::connect(
                rt.handle().clone(),
                &cfg,
                &sim,
            )?));
        }
        SimTarget::Direct => {
            let config = Config::load(args.config.as_deref())?;
            let engine = Engine::open(config, Arc::new(gemba_core::SystemClock))
                .context("cannot open the store (is a server using it?)")?;
            sinks.push(Box::new(DirectSink::new(engine.clone(), &sim)));
            _engine = Some(engine);
        }
        SimTarget::None => {}
    }
    if let Some(dir) = &args.export {
        sinks.push(Box::new(ExportSink::create(dir, &sim)?));
    }
    if sinks.is_empty() {
        sinks.push(Box::new(NullSink));
    }
    let bar = match (end, speed) {
        (Some(e), s) if s.is_none_or(|s| s > 1.0) => Some(progress(((e - start) / 1000) as u64)),
        _ => None,
    };
    let stats = drive(&mut sim, &mut sinks, speed, end, &stop, bar.as_ref())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = stats.wall.as_secs_f64().max(1e-9);
    eprintln!(
        "done: {} ticks, {} samples ({:.0}/s), {} events, {} failures in {:.1} s{}",
        stats.ticks,
        stats.samples,
        stats.samples as f64 / secs,
        stats.events,
        stats.failures,
        secs,
        sinks
            .iter()
            .map(|s| s.summary())
            .filter(|s| !s.is_empty())
            .map(|s| format!("; {s}"))
            .collect::<String>()
    );
    Ok(())
}

/// The plant of `gemba bench simulate`: `machines` CNC machines in lines of five, built from the
/// template of examples/large-plant.toml.
fn bench_plant(machines: usize) -> anyhow::Result<Plant> {
    let large = include_str!("../../../examples/large-plant.toml");
    let start = large
        .find("[[templates]]")
        .context("template in large-plant.toml")?;
    let end = large
        .find("[[sites]]")
        .context("sites in large-plant.toml")?;
    let mut text = format!(
        "[enterprise]\nname = \"bench\"\n\n{}[[sites]]\nname = \"s\"\n\n[[sites.areas]]\nname = \"a\"\n",
        &large[start..end]
    );
    for m in 0..machines {
        if m % 5 == 0 {
            text.push_str(&format!(
                "\n[[sites.areas.lines]]\nname = \"line{}\"\n",
                m / 5 + 1
            ));
        }
        text.push_str(&format!(
            "\n[[sites.areas.lines.machines]]\nname = \"m{}\"\ntemplate = \"cnc_mill\"\n",
            m % 5 + 1
        ));
    }
    Ok(gemba_engine::parse_plant(&text, "the benchmark plant")?)
}

pub fn bench(args: crate::args::BenchSimArgs) -> anyhow::Result<()> {
    if args.machines == 0 || !(args.hz.is_finite() && args.hz > 0.0 && args.hz <= 1000.0) {
        bail!("--machines must be > 0 and --hz in (0, 1000]");
    }
    let plant = bench_plant(args.machines)?;
    let mut scenario =
        Scenario::from_toml(include_str!("../../../examples/scenarios/default.toml"))?;
    scenario.faults.retain(|f| f.machine == "*");
    scenario.faults.push(gemba_sim::FaultSpec {
        kind: gemba_sim::FaultKind::Bearing,
        machine: "m1".into(),
        at: gemba_sim::Dur(600_000),
        every: None,
        duration: Some(gemba_sim::Dur(3_600_000)),
        magnitude: None,
        period: None,
        signal: None,
    });
    scenario.sample_interval = gemba_sim::Dur((1000.0 / args.hz).round().max(1.0) as i64);
    let duration = args.duration.ms;
    let start = 1_767_571_200_000;
    let stop = AtomicBool::new(false);

    let mut sim = Simulator::new(&plant, &scenario, start)?;
    let signals = sim.signals().len();
    let mut sinks: Vec<Box<dyn Sink + Send>> = vec![Box::new(NullSink)];
    let stats = drive(
        &mut sim,
        &mut sinks,
        None,
        Some(start + duration),
        &stop,
        None,
    )?;
    let secs = stats.wall.as_secs_f64().max(1e-9);
    let pps = stats.samples as f64 / secs;
    let sim_s = duration as f64 / 1000.0;
    println!(
        "simulator, {} machines, {} signals, every {} ms, one thread",
        args.machines, signals, scenario.sample_interval.0
    );
    println!(
        "  accelerated: {} s simulated in {:.2} s: {:.0} points/s ({:.0}× real time), {} events, {} failures",
        sim_s,
        secs,
        pps,
        sim_s / secs,
        stats.events,
        stats.failures
    );
    // Real time: 10 s paced, measuring the share of the wall time spent simulating.
    let mut sim = Simulator::new(&plant, &scenario, start)?;
    let mut tick = sim.new_tick();
    let t0 = Instant::now();
    let mut busy = Duration::ZERO;
    let mut samples = 0u64;
    let mut steps = 0u64;
    while t0.elapsed() < Duration::from_secs(10) {
        let b = Instant::now();
        sim.step(&mut tick);
        busy += b.elapsed();
        samples += tick.sample_count() as u64;
        steps += 1;
        let due = Duration::from_millis((steps as i64 * scenario.sample_interval.0) as u64);
        if let Some(left) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(left);
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "  real time:   {:.1} s at {} Hz: {} ticks, {:.0} points/s, busy {:.2} % of one core, lag {:.0} ms",
        wall,
        args.hz,
        steps,
        samples as f64 / wall,
        100.0 * busy.as_secs_f64() / wall,
        (wall * 1000.0 - (steps as f64) * scenario.sample_interval.0 as f64).max(0.0)
    );
    println!(
        "  target: >= 500,000 points/s accelerated ({}), real time for 50 machines × 20 signals at 10 Hz = 10,000 points/s ({})",
        if pps >= 500_000.0 { "met" } else { "NOT met" },
        if pps >= 10_000.0 * 1.5 {
            "met: the accelerated rate is the headroom"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

/// Starts the demo's simulator thread: history at full speed into the store, then live data in
/// real time over the embedded broker (or straight into the store when MQTT is off).
pub fn spawn_demo(
    demo: crate::simulate::DemoSim,
    engine: Arc<Engine>,
    rt: tokio::runtime::Handle,
    mqtt: Option<std::net::SocketAddr>,
    http: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    std::thread::Builder::new()
        .name("gemba-sim".into())
        .spawn(move || demo_run(demo, engine, rt, mqtt, http, &stop))
        .context("cannot start the simulator thread")
}

fn human(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s >= 3600 => format!("{:.1} h", s as f64 / 3600.0),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// How much of the demo's history (at most half of it) is the alarm rules' baseline of normal
/// operation; with less than 40 min of history no rules are made.
const DEMO_BASELINE_MS: i64 = 2 * 3_600_000;

fn demo_run(
    demo: crate::simulate::DemoSim,
    engine: Arc<Engine>,
    rt: tokio::runtime::Handle,
    mqtt: Option<std::net::SocketAddr>,
    http: std::net::SocketAddr,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let dt = demo.scenario.sample_interval.0;
    let now = now_ms();
    // Continue after what an earlier demo run stored rather than writing the history again.
    let newest = engine.latest("").iter().map(|l| l.ts).max();
    let mut start = now - demo.history_ms;
    let resumed = newest.is_some_and(|n| n >= start);
    if let Some(n) = newest
        && n >= start
    {
        start = (n + dt).min(now);
    }
    start -= start.rem_euclid(dt);
    let mut sim = Simulator::new(&demo.plant, &demo.scenario, start)?;
    let name = demo
        .scenario
        .name
        .clone()
        .unwrap_or_else(|| "(unnamed)".into());
    eprintln!(
        "demo: simulating {} machines ({} signals), scenario {name:?}, seed {}",
        sim.machines().len(),
        sim.signals().len(),
        demo.scenario.seed
    );
    if now - start > dt {
        eprintln!(
            "demo: {} {} of history at full speed …",
            if resumed { "catching up" } else { "writing" },
            human(now - start)
        );
        let mut sinks: Vec<Box<dyn Sink + Send>> =
            vec![Box::new(DirectSink::new(engine.clone(), &sim))];
        let mut total = RunStats::default();
        let t0 = Instant::now();
        // The first hours are the alarm rules' baseline: write them, fit the rules, then go on
        // (the rest of the history is scored as it is written).
        let baseline_ms = DEMO_BASELINE_MS.min((now - start) / 2);
        let baseline_end = start + baseline_ms;
        let rules_missing = sim.machines().iter().any(|m| {
            engine
                .alarms()
                .rule(&crate::rules::demo_rule_name(m, "pca"))
                .is_none()
        });
        if rules_missing && baseline_ms >= 20 * 60_000 {
            while sim.now() < baseline_end && !stop.load(Ordering::Relaxed) {
                let s = drive(&mut sim, &mut sinks, None, Some(baseline_end), stop, None)?;
                total.samples += s.samples;
                total.events += s.events;
                total.failures += s.failures;
            }
            let made = crate::rules::demo_rules(&engine, &sim.machines(), start, baseline_end);
            eprintln!(
                "demo: {made} alarm rules fitted on the first {} of history",
                human(baseline_ms)
            );
        }
        // Until the simulated clock has caught up with the wall clock.
        while now_ms() - sim.now() > dt && !stop.load(Ordering::Relaxed) {
            let s = drive(&mut sim, &mut sinks, None, Some(now_ms()), stop, None)?;
            total.samples += s.samples;
            total.events += s.events;
            total.failures += s.failures;
        }
        eprintln!(
            "demo: history written: {} samples, {} events, {} machine failures in {:.1} s ({})",
            total.samples,
            total.events,
            total.failures,
            t0.elapsed().as_secs_f64(),
            sinks[0].summary()
        );
        for s in &mut sinks {
            s.flush()?;
        }
        let horizon_missing = sim.machines().iter().any(|m| {
            engine
                .alarms()
                .rule(&crate::rules::demo_rule_name(m, "horizon"))
                .is_none()
        });
        let begin = now - demo.history_ms;
        if horizon_missing && sim.now() - begin >= 4 * 3_600_000 && !stop.load(Ordering::Relaxed) {
            let t1 = Instant::now();
            let made = crate::rules::demo_horizon_rules(&engine, &sim.machines(), begin, sim.now());
            eprintln!(
                "demo: failure-in-30-min models {} trained on {} rows ({} before a failure) in {:.1} s; {} alarm rules",
                made.models.join(", "),
                made.rows,
                made.failure_rows,
                t1.elapsed().as_secs_f64(),
                made.rules
            );
            for n in &made.notes {
                eprintln!("demo:   {n}");
            }
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut live: Vec<Box<dyn Sink + Send>> = Vec::new();
    let mut how = "straight into the store (MQTT is off)".to_owned();
    if let Some(addr) = mqtt {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        let cfg = MqttClientConfig {
            host: host.clone(),
            port: addr.port(),
            client_id: "gemba-demo-simulator".into(),
            username: Some(gemba_engine::auth::INTERNAL_MQTT_USER.into()),
            password: Some(engine.auth().internal_secret().to_owned()),
            ..MqttClientConfig::default()
        };
        match MqttSink::connect(rt, &cfg, &sim) {
            Ok(s) => {
                live.push(Box::new(s));
                // With authentication on, watching needs an API token as the MQTT password.
                let creds = if engine.config().auth.enabled && !engine.config().mqtt.allow_anonymous
                {
                    " -u me -P \"$GEMBA_TOKEN\""
                } else {
                    ""
                };
                how = format!(
                    "over MQTT to the embedded broker {host}:{} (watch: mosquitto_sub -h {host} -p {} -t 'gemba/v1/#' -v{creds})",
                    addr.port(),
                    addr.port()
                );
            }
            Err(e) => tracing::warn!(
                "demo: cannot publish over MQTT ({e:#}); writing straight into the store"
            ),
        }
    }
    if live.is_empty() {
        live.push(Box::new(DirectSink::new(engine.clone(), &sim)));
    }
    let m0 = sim
        .machines()
        .first()
        .map(|m| m.to_string())
        .unwrap_or_default();
    let server = format!("http://{http}");
    eprintln!(
        "\nGemba demo is live: {} machines send a sample of every signal each {} ms {how}.\n\
         Look at:\n  \
           {server}/                                  the live dashboard (English / 简体中文)\n  \
           {server}/#/quality                         SPC charts of the measured parts\n  \
           {server}/#/alarms                          alarms with their explanations\n  \
           gemba query latest {m0}\n  \
           gemba query events --type custom:failure          machine failures (the ground truth)\n  \
           gemba query events --type custom:fault_onset      injected bearing wear, drifts, sensor faults\n  \
           gemba query series {m0}/vibration_rms --step 10m\n  \
           {server}/api/v1/events?type=move                  lots moving from raw store to shipping\n\
         {token_hint}\
         Ctrl-C stops; the data stays in {} and the next `gemba demo` continues from it.\n",
        sim.machines().len(),
        dt,
        demo.data.display(),
        token_hint = if engine.config().auth.enabled {
            format!(
                "The CLI, curl and mosquitto_sub need an API token (docs/SECURITY.md):\n  \
                   export GEMBA_TOKEN=$(gemba token create cli --role admin --store {})\n",
                demo.data.join("gemba.db").display()
            )
        } else {
            String::new()
        }
    );
    let stats = drive(&mut sim, &mut live, Some(1.0), None, stop, None)?;
    tracing::info!(
        samples = stats.samples,
        events = stats.events,
        "demo simulator stopped"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_or_zero;

    #[test]
    fn zero_durations_need_a_known_unit() {
        assert_eq!(parse_duration_or_zero("0").unwrap(), 0);
        assert_eq!(parse_duration_or_zero("0s").unwrap(), 0);
        assert_eq!(parse_duration_or_zero("00h").unwrap(), 0);
        assert_eq!(parse_duration_or_zero("8h").unwrap(), 8 * 3_600_000);
        assert!(parse_duration_or_zero("0abc").is_err());
        assert!(parse_duration_or_zero("h").is_err());
        assert!(parse_duration_or_zero("").is_err());
    }
}
