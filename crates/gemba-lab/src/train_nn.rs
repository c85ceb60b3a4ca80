//! `gemba train --model vae|gan|dcgan` and `gemba predict` with their artefacts: the CLI of
//! gemba-nn. Tables come from CSV, images from folders of PNG files.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gemba_nn::gan::{Dcgan, GanParams, TabularGan};
use gemba_nn::{EpochReport, Table, TrainHooks, Vae, VaeParams};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::args::{PredictArgs, TrainArgs};

/// Whether `--model` (or an artefact's kind) belongs to gemba-nn.
pub fn is_nn(model: &str) -> bool {
    matches!(model, "vae" | "gan" | "dcgan")
}

/// `--param key=JSON` and the dedicated flags as the model's params JSON.
fn params_json(args: &TrainArgs) -> anyhow::Result<Value> {
    let mut p = Map::new();
    for kv in &args.params {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--param {kv:?}: write key=value"))?;
        let v = v.trim();
        p.insert(
            k.trim().to_owned(),
            serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
        );
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            p.insert(k.to_owned(), v);
        }
    };
    set("epochs", args.epochs.map(Value::from));
    set("batch_size", args.batch_size.map(Value::from));
    set("seed", args.seed.map(Value::from));
    if args.model == "vae" {
        set("patience", args.patience.map(Value::from));
        set("validation_fraction", args.validation.map(Value::from));
    } else if args.patience.is_some() || args.validation.is_some() {
        bail!("--patience and --validation are for --model vae (a GAN has no validation loss)");
    }
    Ok(Value::Object(p))
}

fn size_of(args: &TrainArgs, default: (usize, usize)) -> anyhow::Result<(usize, usize)> {
    let Some(s) = &args.size else {
        return Ok(default);
    };
    let (h, w) = s
        .split_once(['x', 'X', '×'])
        .with_context(|| format!("--size {s:?}: write HxW, e.g. 28x28"))?;
    let h = h
        .trim()
        .parse()
        .with_context(|| format!("--size {s:?}: {h:?} is not a number"))?;
    let w = w
        .trim()
        .parse()
        .with_context(|| format!("--size {s:?}: {w:?} is not a number"))?;
    Ok((h, w))
}

/// Reads numeric feature columns (and optionally the target) of a CSV file.
pub(crate) fn read_table(
    path: &Path,
    features: Option<&[String]>,
    target: Option<&str>,
    drop: &[String],
) -> anyhow::Result<(Table, Vec<String>)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(f));
    let headers = rdr
        .headers()
        .with_context(|| format!("{}: cannot read the CSV header", path.display()))?
        .clone();
    let names: Vec<String> = match features {
        Some(f) => f.to_vec(),
        None => headers
            .iter()
            .filter(|h| Some(*h) != target && !drop.iter().any(|d| d == h))
            .map(str::to_owned)
            .collect(),
    };
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", path.display()))
    };
    let cols: Vec<usize> = names
        .iter()
        .map(|n| col(n))
        .collect::<anyhow::Result<_>>()?;
    let tcol = target.map(col).transpose()?;
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        for (&c, name) in cols.iter().zip(&names) {
            let cell = rec.get(c).unwrap_or("");
            let v: f32 = cell
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: line {line}, column {name:?}: {cell:?} is not a finite number",
                        path.display()
                    )
                })?;
            data.push(v);
        }
        if let Some(t) = tcol {
            labels.push(rec.get(t).unwrap_or("").to_owned());
        }
    }
    if data.is_empty() {
        bail!("{}: no data rows", path.display());
    }
    Ok((Table::new(names, data)?, labels))
}

pub(crate) fn progress(epochs: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} epoch {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A line above the bar (indicatif drops `println` when stderr is not a terminal).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn hooks<'a>(args: &TrainArgs, bar: &'a ProgressBar, vae: bool) -> TrainHooks<'a> {
    TrainHooks {
        on_epoch: Some(Box::new(move |r: &EpochReport| {
            bar.set_position(r.epoch as u64);
            let msg = if vae {
                format!(
                    "loss {:.4} (recon {:.4} + KL {:.4}) val {} best epoch {}",
                    r.loss,
                    r.part_a,
                    r.part_b,
                    r.val_loss.map_or("—".into(), |v| format!("{v:.4}")),
                    r.best_epoch
                )
            } else {
                format!(
                    "D loss {:.4}  G loss {:.4}  D acc {:.2}",
                    r.loss, r.part_a, r.part_b
                )
            };
            say(
                bar,
                format!("epoch {:>4}: {msg}  ({:.2} s)", r.epoch, r.seconds),
            );
            bar.set_message(msg);
        })),
        checkpoint: args.checkpoint.clone(),
        resume: args.resume,
        cancel: None,
    }
}

fn save(args: &TrainArgs, json: String) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("model-{}.json", args.model).into());
    std::fs::write(&out, &json).with_context(|| format!("cannot write {}", out.display()))?;
    println!("saved {} ({} bytes)", out.display(), json.len());
    crate::train::register(args, json)
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    if args.resume && args.checkpoint.is_none() {
        bail!("--resume needs --checkpoint FILE");
    }
    let params = params_json(&args)?;
    let t0 = Instant::now();
    match args.model.as_str() {
        "vae" => {
            let p = VaeParams::from_json(&params)?;
            let bar = progress(p.epochs, "vae");
            let vae = if args.data.is_dir() {
                let (h, w) = size_of(&args, (28, 28))?;
                let (set, files) = gemba_nn::images::read_folder(&args.data, args.channels, h, w)?;
                say(
                    &bar,
                    format!(
                        "{}: {} images, {h}×{w}×{}",
                        args.data.display(),
                        files.len(),
                        args.channels
                    ),
                );
                Vae::fit_images(&p, &set, hooks(&args, &bar, true))?
            } else {
                let (table, labels) = read_table(
                    &args.data,
                    args.features.as_deref(),
                    args.target.as_deref(),
                    &args.drop,
                )?;
                let table = match (&args.normal, &args.target) {
                    (Some(normal), Some(_)) => {
                        let idx: Vec<usize> = (0..labels.len())
                            .filter(|&i| &labels[i] == normal)
                            .collect();
                        if idx.is_empty() {
                            bail!("--normal {normal:?}: no row has this target value");
                        }
                        table.select(&idx)
                    }
                    (Some(_), None) => bail!("--normal goes with --target COLUMN"),
                    _ => table,
                };
                say(
                    &bar,
                    format!(
                        "{}: {} normal rows, {} features",
                        args.data.display(),
                        table.rows(),
                        table.cols()
                    ),
                );
                Vae::fit_table(&p, &table, hooks(&args, &bar, true))?
            };
            bar.finish_and_clear();
            println!(
                "trained vae in {:.1} s: {} epochs, best epoch {} (weights kept), threshold {:.4} ({:?} on {} held-out normal rows)",
                t0.elapsed().as_secs_f64(),
                vae.history.len(),
                vae.best_epoch,
                vae.threshold.value,
                vae.threshold.method,
                vae.threshold.n_calibration
            );
            save(&args, vae.to_json()?)
        }
        "gan" => {
            let p = GanParams::from_json(&params)?;
            let target = args
                .target
                .as_deref()
                .context("--model gan needs --target COLUMN (the machine state to condition on)")?;
            let (table, labels) = read_table(
                &args.data,
                args.features.as_deref(),
                Some(target),
                &args.drop,
            )?;
            let mut classes: Vec<String> = labels.clone();
            classes.sort();
            classes.dedup();
            let y: Vec<usize> = labels
                .iter()
                .map(|l| classes.iter().position(|c| c == l).unwrap_or(0))
                .collect();
            let bar = progress(p.epochs, "gan");
            let gan = TabularGan::fit(&p, &table, &y, classes, hooks(&args, &bar, false))?;
            bar.finish_and_clear();
            println!(
                "trained conditional gan in {:.1} s on {} rows, classes {:?}",
                t0.elapsed().as_secs_f64(),
                table.rows(),
                gan.classes
            );
            save(&args, gan.to_json()?)
        }
        "dcgan" => {
            let p = GanParams {
                z_dim: 100,
                ..GanParams::default()
            };
            let mut v = serde_json::to_value(&p)?;
            if let (Some(o), Value::Object(extra)) = (v.as_object_mut(), params) {
                o.extend(extra);
            }
            let p = GanParams::from_json(&v)?;
            if !args.data.is_dir() {
                bail!("--model dcgan reads a folder of .png images (--data DIR)");
            }
            let (h, w) = size_of(&args, (16, 16))?;
            let channels = if args.channels == 1 { 3 } else { args.channels };
            let (set, _) = gemba_nn::images::read_folder(&args.data, channels, h, w)?;
            let bar = progress(p.epochs, "dcgan");
            let g = Dcgan::fit(&p, &set, hooks(&args, &bar, false))?;
            bar.finish_and_clear();
            println!(
                "trained dcgan in {:.1} s on {} images",
                t0.elapsed().as_secs_f64(),
                set.n
            );
            save(&args, g.to_json()?)
        }
        other => bail!("--model {other:?} is not a gemba-nn model"),
    }
}

/// `gemba predict` for a VAE: CSV of row, score, anomaly and the top --explain features (or,
/// for images, the file and its hottest pixels).
pub fn predict(args: &PredictArgs, text: &str) -> anyhow::Result<()> {
    let kind = gemba_nn::artifact_kind(text).unwrap_or_default();
    if kind != "vae" {
        bail!(
            "gemba predict scores with a vae; {kind} artefacts generate data: gemba generate --model FILE"
        );
    }
    let vae = Vae::from_json(text)?;
    let (rows, ids): (Vec<f32>, Vec<String>) = match &vae.input {
        gemba_nn::InputSpec::Table { features } => {
            let (t, _) = read_table(&args.data, Some(features), None, &[])?;
            let ids = (0..t.rows()).map(|i| i.to_string()).collect();
            (t.data().to_vec(), ids)
        }
        gemba_nn::InputSpec::Image {
            channels,
            height,
            width,
        } => {
            let files = if args.data.is_dir() {
                gemba_nn::images::list_images(&args.data)?
            } else {
                vec![args.data.clone()]
            };
            let set = gemba_nn::images::read_images(&files, *channels, *height, *width)?;
            let ids = files.iter().map(|f| f.display().to_string()).collect();
            (set.data().to_vec(), ids)
        }
    };
    let d = vae.dim();
    let scored = vae.score(&rows)?;
    let names = vae.feature_names();
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let mut header = vec!["row", "score", "anomaly"];
    if args.explain > 0 {
        header.push("explanation");
    }
    out.write_record(&header)?;
    let mut flagged = 0;
    for (i, id) in ids.iter().enumerate() {
        let s = scored.score[i];
        let anomaly = s > vae.threshold.value;
        flagged += usize::from(anomaly);
        let mut rec = vec![id.clone(), format!("{s:.6}"), anomaly.to_string()];
        if args.explain > 0 {
            let mut e: Vec<(usize, f32)> = scored.error[i * d..(i + 1) * d]
                .iter()
                .copied()
                .enumerate()
                .collect();
            e.sort_by(|a, b| b.1.total_cmp(&a.1));
            rec.push(
                e.iter()
                    .take(args.explain)
                    .map(|(j, v)| format!("{}={v:.4}", names[*j]))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out.write_record(&rec)?;
    }
    out.flush()?;
    eprintln!(
        "{flagged} of {} rows above the threshold {:.4}",
        ids.len(),
        vae.threshold.value
    );
    Ok(())
}

/// `gemba generate`: rows of a conditional GAN (per class, with a `class` column) or of a tabular
/// VAE as CSV, or images of a DCGAN or an image VAE as PNG files in a folder.
pub fn generate(args: crate::args::GenerateArgs) -> anyhow::Result<()> {
    use std::io::Write;
    if args.count == 0 || args.count > 1_000_000 {
        bail!("--count {}: use 1 to 1,000,000", args.count);
    }
    let text = crate::train::model_text(&args.model, &args.server)?;
    let kind = gemba_nn::artifact_kind(&text).unwrap_or_default();
    if args.class.is_some() && kind != "gan" {
        bail!(
            "--class is for a conditional gan; {} is a {kind}",
            args.model
        );
    }
    let csv_out = |header: Vec<String>| -> anyhow::Result<csv::Writer<Box<dyn Write>>> {
        let sink: Box<dyn Write> = match &args.out {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut w = csv::Writer::from_writer(sink);
        w.write_record(&header)?;
        Ok(w)
    };
    let images_out = |set: &gemba_nn::ImageSet| -> anyhow::Result<()> {
        let dir = args
            .out
            .as_ref()
            .context("images need --out DIR (a folder for the PNG files)")?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for i in 0..set.n {
            let path = dir.join(format!("generated-{:05}.png", i + 1));
            std::fs::write(&path, gemba_nn::images::to_png(set, i)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        eprintln!(
            "wrote {} images of {}×{}×{} to {}",
            set.n,
            set.height,
            set.width,
            set.channels,
            dir.display()
        );
        Ok(())
    };
    let where_to = || {
        args.out
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "standard output".into())
    };
    match kind.as_str() {
        "gan" => {
            let gan = TabularGan::from_json(&text)?;
            let classes: Vec<usize> = match &args.class {
                Some(c) => vec![gan.class_id(c)?],
                None => (0..gan.classes.len()).collect(),
            };
            let mut header = gan.features.clone();
            header.push("class".into());
            let mut w = csv_out(header)?;
            let d = gan.features.len();
            for &k in &classes {
                let rows = gan.sample(k, args.count, args.seed.wrapping_add(k as u64))?;
                for row in rows.chunks(d) {
                    let mut rec: Vec<String> = row.iter().map(|v| v.to_string()).collect();
                    rec.push(gan.classes[k].clone());
                    w.write_record(&rec)?;
                }
            }
            w.flush()?;
            eprintln!(
                "wrote {} rows ({} per class of {}) to {}",
                args.count * classes.len(),
                args.count,
                classes
                    .iter()
                    .map(|&k| gan.classes[k].as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                where_to()
            );
        }
        "dcgan" => images_out(&Dcgan::from_json(&text)?.sample(args.count, args.seed)?)?,
        "vae" => {
            let vae = Vae::from_json(&text)?;
            let rows = vae.sample(args.count, args.seed)?;
            match &vae.input {
                gemba_nn::InputSpec::Image {
                    channels,
                    height,
                    width,
                } => images_out(&gemba_nn::ImageSet::new(
                    *channels,
                    *height,
                    *width,
                    rows.into_iter().map(|v| v.clamp(0.0, 1.0)).collect(),
                )?)?,
                gemba_nn::InputSpec::Table { features } => {
                    let mut w = csv_out(features.clone())?;
                    for row in rows.chunks(features.len()) {
                        w.write_record(row.iter().map(|v| v.to_string()))?;
                    }
                    w.flush()?;
                    eprintln!("wrote {} rows to {}", args.count, where_to());
                }
            }
        }
        other => bail!(
            "gemba generate needs a gan, dcgan or vae artefact; {} is {:?} (classifiers predict: gemba predict)",
            args.model,
            other
        ),
    }
    Ok(())
}
