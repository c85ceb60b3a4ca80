//! The command line, defined once: clap generates `--help` from these doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use gemba_lab::args::*;

/// Gemba (现场) — smart-factory platform: collect machine data, store it, query it.
#[derive(Debug, Parser)]
#[command(name = "gemba", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; TrainArgs (with the deep-model flags) is the largest variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API, embedded MQTT broker and the embedded store.
    Serve(ServeArgs),
    /// Run the server on a sample plant (two lines, eight machines) with its own data directory.
    Demo(DemoArgs),
    /// Import data from files into a running server (or straight into the store with --direct).
    #[command(subcommand)]
    Import(ImportCmd),
    /// Query a running server.
    Query(QueryArgs),
    /// Run the factory simulator: publish a plant's signals and events over MQTT, write them
    /// into a store, or export them as CSV with their ground truth.
    Simulate(SimulateArgs),
    /// Train a classifier (logistic regression, kernel SVM, linear SVM) on a CSV file, print its
    /// metrics and save the model artefact (optionally registering it on a server).
    Train(TrainArgs),
    /// Predict (and explain) rows of a CSV file with a saved model.
    Predict(PredictArgs),
    /// New samples from a generative model: rows of a conditional GAN or a tabular VAE (CSV),
    /// images of a DCGAN or an image VAE (PNG files).
    Generate(GenerateArgs),
    /// List and activate the models registered on a server.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Visual inspection: post every image (PNG, JPEG) of a folder to a server's
    /// POST /api/v1/inspect and print each score and verdict.
    Inspect(crate::inspect::InspectArgs),
    /// Material lots of a running server (one lot with its stays when LOT is given).
    Lots(crate::logistics::LotsArgs),
    /// Inventory and WIP per location and product, now or --at a past time.
    Inventory(crate::logistics::InventoryArgs),
    /// Genealogy of a lot: what it was made from (--backward) or what was made from it (--forward).
    Genealogy(crate::logistics::GenealogyArgs),
    /// Energy reports per shift, day or month, and kWh and CO2e per lot.
    #[command(subcommand)]
    Energy(crate::logistics::EnergyCmd),
    /// Measure Gemba's performance on this machine and print the figures.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Evaluate Gemba's detectors on the simulator's ground truth.
    #[command(subcommand)]
    Eval(EvalCmd),
    /// Check configuration and plant files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// OEE of a machine, line or site with its losses and their causes (from a running server).
    Oee(crate::production::OeeArgs),
    /// List, create and progress maintenance work orders on a running server.
    WorkOrders(crate::production::WorkOrdersArgs),
    /// Users of the dashboard and API (written into the store; docs/SECURITY.md).
    #[command(subcommand)]
    User(crate::security::UserCmd),
    /// API tokens for machines, gateways and scripts.
    #[command(subcommand)]
    Token(crate::security::TokenCmd),
    /// TLS certificates for trials.
    #[command(subcommand)]
    Cert(crate::security::CertCmd),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, built-in defaults apply; GEMBA__SECTION__KEY
    /// environment variables override both.
    #[arg(short, long, env = "GEMBA_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Data directory of the demo store.
    #[arg(long, default_value = "gemba-demo")]
    pub data: PathBuf,
    /// HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Configuration file; its plant file and storage path are replaced by the demo's.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Plant file to simulate instead of the sample plant.
    #[arg(long)]
    pub plant: Option<PathBuf>,
    /// Scenario file instead of the default scenario.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Simulated history written at full speed before live data starts (e.g. 8h, 2d; 0s for none).
    #[arg(long, default_value = "8h")]
    pub history: String,
    /// Speed of the live simulation: 1 is real time, 60 runs an hour a minute.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Seed of the simulation (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Import a CSV file: one row per instant, one column per signal.
    ///
    /// Example: gemba import csv ai4i.csv --machine plant1/production/line1/cnc1
    ///   --map ts=timestamp --map air_temp="Air temperature [K]" --map torque="Torque [Nm]"
    Csv(CsvArgs),
}

#[derive(Debug, Args)]
pub struct CsvArgs {
    /// The CSV file (with a header row).
    pub file: PathBuf,
    /// Column mapping, repeatable: `ts=<column>` for the timestamp column and
    /// `<signal>=<column>` for each signal (a full path, or a name relative to --machine).
    #[arg(long = "map", required = true)]
    pub map: Vec<String>,
    /// Machine path that relative signal names belong to.
    #[arg(long)]
    pub machine: Option<String>,
    /// How the timestamp column is written: ms, s or rfc3339.
    #[arg(long, default_value = "rfc3339")]
    pub ts_format: String,
    /// Without a ts column: time of the first row (ms or RFC 3339).
    #[arg(long)]
    pub start: Option<String>,
    /// Without a ts column: time between rows (e.g. 1s, 1m).
    #[arg(long)]
    pub interval: Option<String>,
    /// Field delimiter.
    #[arg(long, default_value = ",")]
    pub delimiter: char,
    /// Server to send to.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "GEMBA_SERVER")]
    pub server: String,
    /// Write straight into the store of this configuration instead of a running server
    /// (the server must not be running).
    #[arg(long)]
    pub direct: bool,
    /// Configuration file for --direct.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Rows per batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch_rows: usize,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Server to ask.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "GEMBA_SERVER"
    )]
    pub server: String,
    /// Print CSV instead of a table.
    #[arg(long, global = true)]
    pub csv: bool,
    #[command(subcommand)]
    pub what: QueryCmd,
}

#[derive(Debug, Subcommand)]
pub enum QueryCmd {
    /// The asset tree.
    Assets,
    /// Latest value of every signal at or below PREFIX.
    Latest {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Samples or aggregates of one signal.
    Series {
        /// Signal path site/area/line/machine/signal.
        signal: String,
        /// Start (ms or RFC 3339); default: one hour before --to.
        #[arg(long)]
        from: Option<String>,
        /// End (ms or RFC 3339); default: now.
        #[arg(long)]
        to: Option<String>,
        /// Bucket width (30s, 1m, 1h, auto); raw samples without it.
        #[arg(long)]
        step: Option<String>,
        /// mean, min, max, sum, count, last.
        #[arg(long)]
        agg: Option<String>,
    },
    /// Events.
    Events {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// production, state, move, lot or custom:<name>.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only events at or below this asset.
        #[arg(long)]
        asset: Option<String>,
        /// Replace operator ids and other personal data by stable pseudonyms
        /// (docs/SECURITY.md#privacy-and-retention).
        #[arg(long)]
        pseudonymise: bool,
    },
    /// Store size.
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum EvalCmd {
    /// The demo's alarm rules (SPC, PCA, vibration threshold) on a simulated run: per injected
    /// fault, which rule caught it and how fast; false alarms per day.
    Alarms(EvalAlarmsArgs),
    /// PCA T² / SPE on the Tennessee Eastman process (data from scripts/fetch-te): detection rate
    /// per fault and false alarms, the classic baseline for the VAE.
    Te(EvalTeArgs),
    /// Multi-class fault classification on Tennessee Eastman with window features and the kernel
    /// SVM: accuracy per fault and over the classifiable ones.
    TeClassify(EvalTeClassifyArgs),
    /// Health index and remaining useful life on the simulator's bearing wear: RMSE, NASA score
    /// and band coverage of the predictions from onset to failure.
    Rul(EvalRulArgs),
    /// Failure-within-horizon prediction (logistic regression, kernel SVM) against a fixed
    /// threshold on one signal, on a simulated plant: P, R, F1 per failure mode and lead times.
    Horizon(EvalHorizonArgs),
    /// The VAE (trained on normal data) against PCA T²/SPE on Tennessee Eastman: detection rate
    /// per fault with every limit at the same quantile of held-out normal data.
    TeVae(gemba_lab::eval_nn::EvalTeVaeArgs),
    /// GAN augmentation on Tennessee Eastman: one fault cut to a few samples, SVM F1 on it with
    /// and without samples from the conditional GAN.
    TeGan(gemba_lab::eval_nn::EvalTeGanArgs),
    /// The conv VAE on ELPV solar-cell images (a path you give; never committed): AUROC of
    /// defective vs functional cells.
    Elpv(gemba_lab::eval_nn::EvalElpvArgs),
    /// DCGANs on ELPV solar-cell images (a path you give; never committed): one per class,
    /// train-on-synthetic-test-on-real accuracy of a small classifier, MMD, and the
    /// discriminator as an anomaly score.
    ElpvGan(gemba_lab::eval_nn::EvalElpvGanArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate a configuration file and the plant file it names.
    Check { file: PathBuf },
    /// Validate a plant file.
    Plant { file: PathBuf },
    /// Print a configuration file with every key at its default.
    Default,
}
