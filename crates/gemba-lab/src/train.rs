//! `gemba train`, `gemba predict` and `gemba models`: the CLI of gemba-ml and of the server's
//! model registry.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gemba_ml::metrics::Report;
use gemba_ml::{Matrix, ModelArtifact, ModelKind, Scoring};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::args::{ModelsCmd, PredictArgs, TrainArgs};

fn kind_of(model: &str) -> anyhow::Result<ModelKind> {
    let k = match model {
        "logreg" => "logistic",
        "svm" => "svc",
        "linear_svm" => "linear_svc",
        other => other,
    };
    k.parse::<ModelKind>().map_err(|_| {
        anyhow::anyhow!("--model {model:?}: use logreg, svm, linear_svm, vae, gan or dcgan")
    })
}

/// `key=JSON` (a bare word that is not JSON is taken as a string).
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn params_of(args: &TrainArgs, kind: ModelKind) -> anyhow::Result<Value> {
    let mut p = Map::new();
    let mut set = |k: &str, v: Value| {
        p.insert(k.to_owned(), v);
    };
    if let Some(c) = args.c {
        set("c", json!(c));
    }
    if let Some(k) = &args.kernel {
        if kind != ModelKind::Svc {
            bail!("--kernel is for --model svm");
        }
        set("kernel", json!(k));
    }
    if let Some(g) = &args.gamma {
        set("gamma", json_value(g));
    }
    if let Some(pen) = &args.penalty {
        set("penalty", json!(pen));
    }
    if let Some(w) = &args.class_weight {
        set("class_weight", json!(w));
    }
    if args.probability {
        set("probability", json!(true));
    }
    if let Some(i) = &args.impute {
        set("impute", json!(i));
    }
    if let Some(v) = args.validation {
        if !(v > 0.0 && v < 1.0) {
            bail!("--validation {v}: give a fraction between 0 and 1");
        }
        set("validation_fraction", json!(v));
    }
    for kv in &args.params {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--param {kv:?}: write key=value"))?;
        set(k.trim(), json_value(v.trim()));
    }
    Ok(Value::Object(p))
}

fn grid_of(args: &TrainArgs) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
    let mut grid = BTreeMap::new();
    for g in &args.grid {
        let (k, vs) = g
            .split_once('=')
            .with_context(|| format!("--grid {g:?}: write key=v1,v2,…"))?;
        let values: Vec<Value> = vs.split(',').map(|v| json_value(v.trim())).collect();
        grid.insert(k.trim().to_owned(), values);
    }
    Ok(grid)
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Reads the data set, dropping `drop` columns.
fn load_training(args: &TrainArgs) -> anyhow::Result<gemba_ml::Dataset> {
    let target = args
        .target
        .as_deref()
        .with_context(|| format!("--model {} needs --target COLUMN", args.model))?;
    let open = || {
        std::fs::File::open(&args.data)
            .with_context(|| format!("cannot open {}", args.data.display()))
    };
    let features = match (&args.features, args.drop.is_empty()) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => None,
        (None, false) => {
            let mut rdr = csv::Reader::from_reader(open()?);
            let headers = rdr.headers().context("cannot read the CSV header")?;
            Some(
                headers
                    .iter()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| *h != target && !args.drop.contains(h))
                    .collect(),
            )
        }
    };
    gemba_ml::load_csv(
        std::io::BufReader::new(open()?),
        target,
        features.as_deref(),
    )
    .with_context(|| format!("{}", args.data.display()))
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    if crate::train_nn::is_nn(&args.model) {
        return crate::train_nn::train(args);
    }
    let kind = kind_of(&args.model)?;
    let mut params = params_of(&args, kind)?;
    let grid = grid_of(&args)?;
    let data = load_training(&args)?;
    eprintln!(
        "{}: {} rows, {} features, classes {:?} ({:?} rows each)",
        args.data.display(),
        data.n_rows(),
        data.n_features(),
        data.class_names,
        data.class_counts()
    );
    if !grid.is_empty() {
        let points: usize = grid.values().map(Vec::len).product();
        let bar = spinner(&format!(
            "grid search: {points} points × {} folds …",
            args.folds
        ));
        let res =
            gemba_ml::grid_search(kind, &params, &grid, &data, args.folds, 0, Scoring::MacroF1)?;
        bar.finish_and_clear();
        for p in &res.results {
            eprintln!("  {}  macro F1 {:.4} ± {:.4}", p.params, p.mean, p.std);
        }
        eprintln!("best: {} (macro F1 {:.4})", res.best_params, res.best_score);
        params = res.best_params;
    }
    let bar = spinner(&format!("training {} …", args.model));
    let t0 = Instant::now();
    let art = gemba_ml::train(kind, &params, &data)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    println!("trained {} in {secs:.2} s: {}", args.model, art.config);
    if let Some(m) = &art.metrics {
        println!("metrics on {}:", m.split);
        print_report(&m.report, &art.class_names);
    }
    let imp = art.importance();
    if !imp.is_empty() {
        println!("feature importance (mean |contribution|):");
        for (f, v) in imp.iter().take(10) {
            println!("  {f:<32} {v:.4}");
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| format!("model-{}.json", args.model).into());
    let f =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    art.save(std::io::BufWriter::new(f))?;
    println!("saved {}", out.display());
    register(&args, art.to_json()?)
}

/// Registers an artefact on the server when `--register NAME` was given.
pub(crate) fn register(args: &TrainArgs, body: String) -> anyhow::Result<()> {
    if let Some(name) = &args.register {
        let mut url = format!(
            "{}/api/v1/models?name={name}",
            args.server.trim_end_matches('/')
        );
        if let Some(a) = &args.asset {
            url.push_str(&format!("&asset={a}"));
        }
        if args.activate {
            url.push_str("&activate=true");
        }
        let v = post(&url, body.as_bytes())?;
        println!(
            "registered {name} version {} on {}{}",
            v["version"],
            args.server,
            if args.activate { " (active)" } else { "" }
        );
    } else if args.activate || args.asset.is_some() {
        bail!("--asset and --activate go with --register NAME");
    }
    Ok(())
}

pub(crate) fn post(url: &str, body: &[u8]) -> anyhow::Result<Value> {
    let text = crate::client::post_json(&crate::client::agent(), url, body)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{url} answered with something other than JSON"))
}

fn print_report(r: &Report, classes: &[String]) {
    let opt = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.4}"));
    println!(
        "  rows {}  accuracy {:.4}  macro F1 {:.4}  ROC AUC {}  PR AUC {}  Brier {}",
        r.n,
        r.accuracy,
        r.macro_f1,
        opt(r.roc_auc),
        opt(r.average_precision),
        opt(r.brier)
    );
    println!(
        "  fault detection rate {:.4}  false alarm rate {:.4}  (class {:?} as normal)",
        r.detection.detection_rate,
        r.detection.false_alarm_rate,
        classes.get(r.normal_class).map_or("", String::as_str)
    );
    println!(
        "  {:<16} {:>9} {:>9} {:>9} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for (c, s) in classes.iter().zip(&r.per_class) {
        println!(
            "  {c:<16} {:>9.4} {:>9.4} {:>9.4} {:>8}",
            s.precision, s.recall, s.f1, s.support
        );
    }
    println!(
        "  confusion (rows: true, columns: predicted): {:?}",
        r.confusion
    );
}

/// The artefact JSON of a file or of NAME@VERSION on the server.
pub(crate) fn model_text(spec: &str, server: &str) -> anyhow::Result<String> {
    let path = Path::new(spec);
    if path.exists() {
        return std::fs::read_to_string(path).with_context(|| format!("cannot read {spec}"));
    }
    let Some((name, version)) = spec.split_once('@') else {
        bail!("--model {spec:?}: no such file, and not NAME@VERSION of a registered model");
    };
    let body = crate::client::get(
        &crate::client::agent(),
        &format!(
            "{}/api/v1/models/{name}/{version}",
            server.trim_end_matches('/')
        ),
        &[],
    )?;
    Ok(body)
}

/// Reads the model's feature columns (and optionally the target) from a CSV file.
fn read_rows(
    path: &Path,
    features: &[String],
    target: Option<&str>,
) -> anyhow::Result<(Matrix, Vec<String>)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(f));
    let headers = rdr.headers().context("cannot read the CSV header")?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: column {name:?} (a feature of the model) is missing",
                path.display()
            )
        })
    };
    let cols: Vec<usize> = features
        .iter()
        .map(|f| col(f))
        .collect::<anyhow::Result<_>>()?;
    let tcol = target.map(col).transpose()?;
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        for (&c, name) in cols.iter().zip(features) {
            let cell = rec.get(c).unwrap_or("");
            let v = match cell {
                "" | "NaN" | "nan" | "NA" | "null" => f64::NAN,
                s => s.parse::<f64>().with_context(|| {
                    format!(
                        "{}: line {line}, column {name:?}: {s:?} is not a number",
                        path.display()
                    )
                })?,
            };
            data.push(v);
        }
        if let Some(t) = tcol {
            labels.push(rec.get(t).unwrap_or("").to_owned());
        }
    }
    let n = data.len() / features.len().max(1);
    Ok((Matrix::new(n, features.len(), data)?, labels))
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let text = model_text(&args.model, &args.server)?;
    if let Some(kind) = gemba_nn::artifact_kind(&text)
        && crate::train_nn::is_nn(&kind)
    {
        return crate::train_nn::predict(&args, &text);
    }
    let art = ModelArtifact::from_json(&text)
        .with_context(|| format!("{} is not a model artefact", args.model))?;
    let (rows, labels) = read_rows(&args.data, &art.feature_names, args.target.as_deref())?;
    let pred = art.predict(&rows)?;
    let proba = art.predict_proba(&rows).ok();
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let mut header = vec!["row".to_owned(), "predicted".to_owned()];
    if proba.is_some() {
        header.extend(art.class_names.iter().map(|c| format!("p_{c}")));
    }
    if args.explain > 0 {
        header.push("explanation".into());
    }
    out.write_record(&header)?;
    for (i, &p) in pred.iter().enumerate() {
        let mut rec = vec![i.to_string(), art.class_names[p].clone()];
        if let Some(pr) = &proba {
            rec.extend(pr.row(i).iter().map(|v| format!("{v:.6}")));
        }
        if args.explain > 0 {
            let e = art.explain(rows.row(i), args.explain)?;
            rec.push(
                e.top
                    .iter()
                    .map(|c| format!("{}={:+.4}", c.feature, c.contribution))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        out.write_record(&rec)?;
    }
    out.flush()?;
    if args.target.is_some() {
        let y: Vec<usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                art.class_names
                    .iter()
                    .position(|c| c == l)
                    .with_context(|| {
                        format!(
                            "line {}: class {l:?} is not one the model knows {:?}",
                            i + 2,
                            art.class_names
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?;
        let scores = art.decision_scores(&rows).ok();
        let normal = gemba_ml::metrics::normal_class(&art.class_names);
        let r = gemba_ml::metrics::report(
            &y,
            &pred,
            art.class_names.len(),
            normal,
            scores.as_ref(),
            proba.as_ref(),
        );
        eprintln!("metrics on {}:", args.data.display());
        print_report(&r, &art.class_names);
    }
    Ok(())
}

pub fn models(cmd: ModelsCmd) -> anyhow::Result<()> {
    match cmd {
        ModelsCmd::List { server } => {
            let body = crate::client::get(
                &crate::client::agent(),
                &format!("{}/api/v1/models", server.trim_end_matches('/')),
                &[],
            )?;
            let v: Value = serde_json::from_str(&body)?;
            println!(
                "{:<24} {:>7} {:<11} {:<32} {:>9} created",
                "name", "version", "kind", "asset", "accuracy"
            );
            for m in v["versions"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:>7} {:<11} {:<32} {:>9} {}",
                    m["name"].as_str().unwrap_or(""),
                    m["version"],
                    m["kind"].as_str().unwrap_or(""),
                    m["asset"].as_str().unwrap_or("-"),
                    m["metrics"]["report"]["accuracy"]
                        .as_f64()
                        .map_or("-".into(), |a| format!("{a:.4}")),
                    m["created_at"].as_str().unwrap_or("")
                );
            }
            for a in v["active"].as_array().into_iter().flatten() {
                println!(
                    "active: {} → {} version {}",
                    a["asset"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or(""),
                    a["version"]
                );
            }
            Ok(())
        }
        ModelsCmd::Activate {
            model,
            asset,
            server,
        } => {
            let (name, version) = model
                .split_once('@')
                .with_context(|| format!("{model:?}: write NAME@VERSION"))?;
            let v = post(
                &format!(
                    "{}/api/v1/models/{name}/{version}/activate?asset={asset}",
                    server.trim_end_matches('/')
                ),
                b"",
            )?;
            println!(
                "{} is now served by {name} version {}",
                v["asset"], v["version"]
            );
            Ok(())
        }
    }
}
