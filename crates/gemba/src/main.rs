//! The `gemba` binary: command-line parsing and wiring of the library crates. Kept thin: every
//! capability lives in a library crate; this crate only turns commands into calls and errors into
//! messages (anyhow is used here and nowhere else).

mod cli;
mod import;
mod inspect;
mod logistics;
mod production;
mod query;
mod security;
mod serve;

use clap::Parser;
use gemba_lab::{bench, eval, eval_horizon, eval_nn, simulate, train, train_nn};

/// mimalloc keeps freed memory for reuse where glibc's malloc returns every block above its
/// mmap threshold to the kernel and gets it back as fresh zeroed pages: a conv VAE epoch spent
/// about 17 % of its time in page faults, and runs about 20 % faster with mimalloc (docs/NN.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::{Cli, Command, ConfigCmd, EvalCmd};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::User(cmd) => security::user(cmd),
        Command::Token(cmd) => security::token(cmd),
        Command::Cert(cmd) => security::cert(cmd),
        Command::Demo(args) => serve::demo(args),
        Command::Import(args) => import::run(args),
        Command::Query(args) => query::run(args),
        Command::Oee(args) => production::oee(args),
        Command::WorkOrders(args) => production::work_orders(args),
        Command::Simulate(args) => {
            init_logging("info", "text");
            simulate::run(args)
        }
        Command::Train(args) => train::train(args),
        Command::Predict(args) => train::predict(args),
        Command::Generate(args) => train_nn::generate(args),
        Command::Models(cmd) => train::models(cmd),
        Command::Inspect(args) => inspect::run(args),
        Command::Lots(args) => logistics::lots(args),
        Command::Inventory(args) => logistics::inventory(args),
        Command::Genealogy(args) => logistics::genealogy(args),
        Command::Energy(cmd) => logistics::energy(cmd),
        Command::Bench(args) => bench::run(args),
        Command::Eval(EvalCmd::Alarms(args)) => eval::alarms(args),
        Command::Eval(EvalCmd::Te(args)) => eval::te(args),
        Command::Eval(EvalCmd::TeClassify(args)) => eval::te_classify(args),
        Command::Eval(EvalCmd::Rul(args)) => eval::rul(args),
        Command::Eval(EvalCmd::Horizon(args)) => eval_horizon::horizon(args),
        Command::Eval(EvalCmd::TeVae(args)) => eval_nn::te_vae(args),
        Command::Eval(EvalCmd::TeGan(args)) => eval_nn::te_gan(args),
        Command::Eval(EvalCmd::Elpv(args)) => eval_nn::elpv(args),
        Command::Eval(EvalCmd::ElpvGan(args)) => eval_nn::elpv_gan(args),
        Command::Config(ConfigCmd::Check { file }) => {
            let cfg = gemba_engine::Config::load_file_only(&file)?;
            if let Some(plant) = &cfg.plant.file {
                let p = gemba_engine::load_plant(plant)?;
                let model = gemba_core::AssetModel::from_plant(&p)?;
                println!(
                    "{}: ok (plant {}: {} assets, {} signals, {} lots, {} operators, {} shifts)",
                    file.display(),
                    plant.display(),
                    model.nodes().count(),
                    model.signal_count(),
                    model.lots.len(),
                    model.operators.len(),
                    model.shifts.len()
                );
            } else {
                println!("{}: ok", file.display());
            }
            Ok(())
        }
        Command::Config(ConfigCmd::Plant { file }) => {
            let p = gemba_engine::load_plant(&file)?;
            let model = gemba_core::AssetModel::from_plant(&p)?;
            println!(
                "{}: ok ({} assets, {} signals)",
                file.display(),
                model.nodes().count(),
                model.signal_count()
            );
            Ok(())
        }
        Command::Config(ConfigCmd::Default) => {
            print!("{}", include_str!("../../../examples/gemba.toml"));
            Ok(())
        }
    }
}

/// Sets up logging from the configuration (`RUST_LOG` wins when set).
pub(crate) fn init_logging(level: &str, format: &str) {
    use tracing_subscriber::EnvFilter;
    // rumqttd logs every connection at info; keep it at warn unless asked for.
    let level = if level.contains("rumqttd") {
        level.to_owned()
    } else {
        format!("{level},rumqttd=warn,rumqttd::server::broker=off")
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
