//! The options of the lab's commands (`gemba simulate`, `train`, `predict`, `generate`,
//! `models`, `bench …`, `eval …`). They derive clap's `Args` so that the binary's command line
//! takes them as they are: one definition serves the command line and the callers of this crate.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// A duration as written on the command line (`90s`, `30m`, `8h`, `2d`), checked when the line
/// is parsed; shown as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    text: String,
    /// Milliseconds.
    pub ms: i64,
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        gemba_core::time::parse_duration_ms(s).map(|ms| Span {
            text: s.to_owned(),
            ms,
        })
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where `gemba simulate` sends its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimTarget {
    /// An MQTT broker (Gemba's embedded one or any other).
    Mqtt,
    /// The store of --config directly (no server may run on it).
    Direct,
    /// Nowhere (with --export only, or to measure the simulator).
    None,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Plant file (default: the sample plant of `gemba demo`).
    #[arg(long)]
    pub plant: Option<PathBuf>,
    /// Scenario file: rates, physics constants and injected faults (default: the default scenario).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seed (overrides the scenario's); the same seed, plant, scenario and --start give the same run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// 1 is real time, 60 runs an hour a minute, `max` runs as fast as the sink takes it.
    #[arg(long, default_value = "1")]
    pub speed: String,
    /// How much simulated time to run (e.g. 30m, 8h, 7d); forever without it.
    #[arg(long)]
    pub duration: Option<Span>,
    /// Simulated start time (RFC 3339 or ms). Default: now for real time; now − duration when
    /// accelerated, so that the run ends at the present.
    #[arg(long)]
    pub start: Option<String>,
    /// Where the data goes: `mqtt` (a broker), `direct` (the store of --config; no server may
    /// run on it) or `none` (with --export only, or to measure the simulator).
    #[arg(long, value_enum, default_value_t = SimTarget::Mqtt)]
    pub to: SimTarget,
    /// Broker host for --to mqtt.
    #[arg(long, default_value = "127.0.0.1")]
    pub mqtt_host: String,
    /// Broker port for --to mqtt.
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Topic prefix.
    #[arg(long, default_value = "gemba/v1")]
    pub topic_prefix: String,
    #[arg(long, env = "GEMBA_MQTT_USERNAME")]
    pub username: Option<String>,
    #[arg(long, env = "GEMBA_MQTT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// CA certificate (PEM) to connect with TLS.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Configuration file of the store for --to direct.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Also write the run as CSV into this directory: one file per machine (signals and labels),
    /// events.csv and labels.csv.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Print what the simulator will do and exit.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Ingest and query throughput against the figures of the foundation issue.
    Ingest(BenchArgs),
    /// Simulator throughput: points per second accelerated, and headroom in real time for a
    /// plant of many machines.
    Simulate(BenchSimArgs),
    /// Streaming SPC rule evaluation (points/s on one core, against the batch rules) and
    /// sample → alarm latency over the API under background ingest.
    Alarms(BenchAlarmsArgs),
    /// Genealogy and inventory queries over a generated data set (1,000,000 moves, 10,000 lots).
    Genealogy(crate::bench_genealogy::BenchGenealogyArgs),
}

#[derive(Debug, Args)]
pub struct BenchAlarmsArgs {
    /// Points pushed through the streaming rules.
    #[arg(long, default_value_t = 20_000_000)]
    pub points: usize,
    /// Background ingest load in points per second during the latency probes.
    #[arg(long, default_value_t = 10_000)]
    pub load: usize,
    /// Number of latency probes.
    #[arg(long, default_value_t = 300)]
    pub probes: usize,
}

/// The simulated plant of an evaluation (`eval alarms`, `eval rul`, `eval horizon`).
#[derive(Debug, Args)]
pub struct SimInputs {
    /// Plant file (default: the sample plant).
    #[arg(long)]
    pub plant: Option<PathBuf>,
    /// Scenario file (default: the default scenario with its faults).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Seed (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct EvalRulArgs {
    #[command(flatten)]
    pub sim: SimInputs,
    /// Simulated time.
    #[arg(long, default_value = "4d")]
    pub duration: Span,
    /// The degradation indicator (a signal name under each machine).
    #[arg(long, default_value = "vibration_rms")]
    pub signal: String,
    /// The indicator's failure level.
    #[arg(long, default_value_t = 11.0)]
    pub threshold: f64,
    /// Print every prediction.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct EvalHorizonArgs {
    #[command(flatten)]
    pub sim: SimInputs,
    /// Simulated time.
    #[arg(long, default_value = "3d")]
    pub duration: Span,
    /// Predict failures this far ahead.
    #[arg(long, default_value = "30m")]
    pub horizon: Span,
    /// One row every step.
    #[arg(long, default_value = "1m")]
    pub step: Span,
    /// Training epochs of the conditional GAN that generates rows of the rare failure modes
    /// (0: no GAN rows).
    #[arg(long, default_value_t = 200)]
    pub gan_epochs: usize,
    /// Trailing windows (comma-separated) of the window features (mean, std, slope of each
    /// gauge) of the `+win` models; empty for none.
    #[arg(long, default_value = "30m")]
    pub window: String,
    /// Also write every machine's data set (latest values and window features, `ts` and the
    /// `failure` label) to DIR/MACHINE.csv, and the train/test cut to DIR/split.txt, to compare
    /// other tools on the same rows.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalTeClassifyArgs {
    /// Directory of the Tennessee Eastman files.
    #[arg(long, default_value = "data/te")]
    pub dir: PathBuf,
    /// Samples per window (3 min each).
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// The SVM's C.
    #[arg(long, default_value_t = 10.0)]
    pub c: f64,
    /// Also train a logistic regression on the same features.
    #[arg(long)]
    pub with_lr: bool,
}

#[derive(Debug, Args)]
pub struct EvalTeArgs {
    /// Directory of the Tennessee Eastman files (d00.dat, d00_te.dat … d21_te.dat).
    #[arg(long, default_value = "data/te")]
    pub dir: PathBuf,
    /// Share of the variance the retained components explain.
    #[arg(long, default_value_t = 0.9)]
    pub variance: f64,
    /// Control limits at this quantile of held-out normal scores.
    #[arg(long, default_value_t = 0.99)]
    pub quantile: f64,
}

#[derive(Debug, Args)]
pub struct EvalAlarmsArgs {
    #[command(flatten)]
    pub sim: SimInputs,
    /// Simulated time scored after the baseline.
    #[arg(long, default_value = "3d")]
    pub duration: Span,
    /// Normal operation at the start that the rules are fitted on.
    #[arg(long, default_value = "2h")]
    pub baseline: Span,
    /// Print the fitted rules.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct BenchSimArgs {
    /// Machines of the benchmark plant.
    #[arg(long, default_value_t = 50)]
    pub machines: usize,
    /// Samples per signal per second in the real-time part.
    #[arg(long, default_value_t = 10.0)]
    pub hz: f64,
    /// Simulated time of the accelerated part.
    #[arg(long, default_value = "2h")]
    pub duration: Span,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Samples sent over HTTP.
    #[arg(long, default_value_t = 5_000_000)]
    pub http_points: usize,
    /// Samples sent over MQTT.
    #[arg(long, default_value_t = 2_000_000)]
    pub mqtt_points: usize,
    /// Directory for the benchmark's store (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// logreg (logistic regression), svm (kernel SVM), linear_svm; vae (variational
    /// auto-encoder: anomaly detector trained on normal data), gan (conditional tabular GAN),
    /// dcgan (16×16 images).
    #[arg(long)]
    pub model: String,
    /// CSV file with a header row: feature columns and the target column. For vae and dcgan also
    /// a folder of .png images.
    #[arg(long)]
    pub data: PathBuf,
    /// The target column (its values are the class names). Required for the classifiers and
    /// gan; for vae it selects the normal rows with --normal.
    #[arg(long)]
    pub target: Option<String>,
    /// vae on CSV: train on the rows whose --target value is this (normal operation only).
    #[arg(long)]
    pub normal: Option<String>,
    /// vae/gan/dcgan: training epochs (default: vae 50, gan 100).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// vae/gan/dcgan: rows per mini-batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// vae/gan/dcgan: random seed (same seed, same data → same loss curve).
    #[arg(long)]
    pub seed: Option<u64>,
    /// vae: stop after this many epochs without a better validation loss (0: never).
    #[arg(long)]
    pub patience: Option<usize>,
    /// vae/gan/dcgan: write a checkpoint after every epoch to this file.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// vae/gan: continue from --checkpoint when it exists.
    #[arg(long)]
    pub resume: bool,
    /// Image folders: resize every image to HxW (default 28x28; dcgan: 16x16).
    #[arg(long)]
    pub size: Option<String>,
    /// Image folders: 1 (grey) or 3 (RGB) channels.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Feature columns, comma separated (default: every other column).
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Columns to leave out (e.g. a timestamp), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub drop: Vec<String>,
    /// SVM kernel: rbf, linear or poly.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Inverse regularisation strength C.
    #[arg(long)]
    pub c: Option<f64>,
    /// RBF/poly γ: scale, auto or a number.
    #[arg(long)]
    pub gamma: Option<String>,
    /// Logistic regression: l2, l1 or none.
    #[arg(long)]
    pub penalty: Option<String>,
    /// balanced weighs classes by their inverse frequency.
    #[arg(long)]
    pub class_weight: Option<String>,
    /// Kernel SVM: fit Platt scaling for probabilities.
    #[arg(long)]
    pub probability: bool,
    /// Replace missing values: mean or median (default: a missing value is an error).
    #[arg(long)]
    pub impute: Option<String>,
    /// Report metrics on the last fraction of the rows (by time); train on the rest.
    #[arg(long)]
    pub validation: Option<f64>,
    /// Any other hyper-parameter as key=JSON (e.g. max_iter=500, lambda=0.01).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// Grid search before training, repeatable: key=v1,v2,… (e.g. c=0.1,1,10 gamma=0.01,0.1).
    #[arg(long = "grid")]
    pub grid: Vec<String>,
    /// Folds of the grid search's cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Where to save the artefact (default: model-<kind>.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Register the model under this name on the server.
    #[arg(long)]
    pub register: Option<String>,
    /// The asset the model serves (with --register).
    #[arg(long)]
    pub asset: Option<String>,
    /// Make it the asset's active model (with --register and --asset).
    #[arg(long)]
    pub activate: bool,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model artefact file, or NAME@VERSION of a model registered on the server.
    #[arg(long)]
    pub model: String,
    /// CSV file with (at least) the model's feature columns.
    #[arg(long)]
    pub data: PathBuf,
    /// Also explain each prediction by its K largest contributions.
    #[arg(long, default_value_t = 0)]
    pub explain: usize,
    /// A column with the true classes: print the model's metrics on this data too.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A gan, dcgan or vae artefact file, or NAME@VERSION of a model registered on the server.
    #[arg(long)]
    pub model: String,
    /// How many rows or images (for a conditional GAN without --class: per class).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub count: usize,
    /// Only this class of a conditional GAN.
    #[arg(long)]
    pub class: Option<String>,
    /// The same seed gives the same samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CSV file for rows (default: standard output); a folder for images (required for them).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Registered versions and the active model of each asset.
    List {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
        server: String,
    },
    /// Make NAME@VERSION the active model of an asset.
    Activate {
        /// NAME@VERSION
        model: String,
        #[arg(long)]
        asset: String,
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
        server: String,
    },
}
