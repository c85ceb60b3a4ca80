//! `gemba import csv`: streams a CSV file in batches to a running server (default) or, with
//! `--direct`, into the store of a configuration while no server runs. Shows a progress bar.

use std::sync::Arc;

use anyhow::{Context, bail};
use gemba_core::SystemClock;
use gemba_core::time::{parse_duration_ms, parse_timestamp};
use gemba_engine::{BatchMode, Config, Engine, Source};
use gemba_ingest::DecodedBatch;
use gemba_ingest::csv_import::{CsvImporter, CsvMapping, TsFormat};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{CsvArgs, ImportCmd};

pub fn run(cmd: ImportCmd) -> anyhow::Result<()> {
    match cmd {
        ImportCmd::Csv(args) => csv(args),
    }
}

/// What one batch did: samples stored, items rejected, (location, message) of the errors.
struct Sent {
    accepted: u64,
    rejected: u64,
    errors: Vec<(String, String)>,
}

type Sender = Box<dyn FnMut(DecodedBatch) -> anyhow::Result<Sent>>;

/// Totals of an import.
#[derive(Default)]
struct Totals {
    accepted: u64,
    rejected: u64,
    shown: usize,
}

impl Totals {
    fn add(
        &mut self,
        accepted: u64,
        rejected: u64,
        errors: &[(String, String)],
        bar: &ProgressBar,
    ) {
        self.accepted += accepted;
        self.rejected += rejected;
        for (loc, msg) in errors {
            if self.shown < 20 {
                bar.suspend(|| eprintln!("  {loc}: {msg}"));
                self.shown += 1;
            }
        }
    }
}

fn csv(args: CsvArgs) -> anyhow::Result<()> {
    let ts_format: TsFormat = args.ts_format.parse().map_err(anyhow::Error::msg)?;
    let spaced = match (&args.start, &args.interval) {
        (Some(s), Some(i)) => Some((
            parse_timestamp(s).map_err(|e| anyhow::anyhow!("--start: {e}"))?,
            parse_duration_ms(i).map_err(|e| anyhow::anyhow!("--interval: {e}"))?,
        )),
        (None, None) => None,
        _ => bail!("--start and --interval go together"),
    };
    let mapping = CsvMapping::parse(&args.map, args.machine.as_deref(), ts_format, spaced)?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let delimiter = u8::try_from(args.delimiter)
        .ok()
        .filter(u8::is_ascii)
        .context("--delimiter must be one ASCII character")?;
    let mut importer = CsvImporter::new(
        std::io::BufReader::new(file),
        mapping,
        delimiter,
        args.batch_rows,
    )?;

    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut totals = Totals::default();

    let mut send: Sender = if args.direct {
        let config = Config::load(args.config.as_deref())?;
        let engine = Engine::open(config, Arc::new(SystemClock))
            .context("cannot open the store (is a server using it?)")?;
        Box::new(move |batch| {
            let o = engine.ingest_blocking(batch, Source::Csv, BatchMode::Partial)?;
            let errs = o
                .errors
                .into_iter()
                .map(|e| (e.location, e.message))
                .collect();
            Ok(Sent {
                accepted: o.accepted_points as u64,
                rejected: o.rejected as u64,
                errors: errs,
            })
        })
    } else {
        let agent = gemba_lab::client::agent();
        let url = format!("{}/api/v1/ingest", args.server.trim_end_matches('/'));
        Box::new(move |batch| post_batch(&agent, &url, batch))
    };

    while let Some(batch) = importer.next() {
        let sent = send(batch)?;
        totals.add(sent.accepted, sent.rejected, &sent.errors, &bar);
        bar.set_position(importer.bytes_read());
        bar.set_message(format!(
            "{} samples, {} rejected",
            totals.accepted, totals.rejected
        ));
    }
    bar.finish_and_clear();
    if let Some(err) = importer.fatal_error() {
        bail!(
            "{}: {err}; {} samples of the rows before were imported",
            args.file.display(),
            totals.accepted
        );
    }
    println!(
        "imported {} samples from {} rows of {}; {} rejected{}",
        totals.accepted,
        importer.rows_read(),
        args.file.display(),
        totals.rejected,
        if totals.rejected as usize > totals.shown {
            " (first 20 shown)"
        } else {
            ""
        }
    );
    Ok(())
}

/// Sends one decoded batch as the columnar JSON body; decode errors of the CSV travel along.
fn post_batch(agent: &ureq::Agent, url: &str, batch: DecodedBatch) -> anyhow::Result<Sent> {
    let series: Vec<Value> = batch
        .series
        .iter()
        .map(|s| json!({"signal": s.signal, "ts": s.ts, "values": s.values}))
        .collect();
    let mut errors: Vec<(String, String)> = batch
        .errors
        .iter()
        .map(|e| (e.location.clone(), e.message.clone()))
        .collect();
    let local_rejected = errors.len() as u64;
    if series.is_empty() {
        return Ok(Sent {
            accepted: 0,
            rejected: local_rejected,
            errors,
        });
    }
    let body = json!({ "series": series }).to_string();
    let mut resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .with_context(|| {
            format!("cannot reach {url}; is `gemba serve` running? (--server, or --direct)")
        })?;
    let status = resp.status();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .context("cannot read the server's answer")?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 && status != 422 {
        bail!(
            "server answered {status}: {}",
            v["error"]["message"].as_str().unwrap_or(&text)
        );
    }
    for e in v["errors"].as_array().into_iter().flatten() {
        errors.push((
            e["location"].as_str().unwrap_or("").to_owned(),
            e["message"].as_str().unwrap_or("").to_owned(),
        ));
    }
    Ok(Sent {
        accepted: v["accepted_points"].as_u64().unwrap_or(0),
        rejected: local_rejected + v["rejected"].as_u64().unwrap_or(0),
        errors,
    })
}
