//! `gemba serve` and `gemba demo`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use gemba_core::SystemClock;
use gemba_engine::{Config, Engine, mqtt_bridge};

use gemba_lab::DEMO_PLANT;
use gemba_lab::simulate::DemoSim;

use crate::cli::{DemoArgs, ServeArgs};

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    run_server(config, None)
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    let (plant, scenario) = gemba_lab::simulate::load_inputs(
        args.plant.as_deref(),
        args.scenario.as_deref(),
        args.seed,
    )?;
    let history = gemba_lab::simulate::parse_duration_or_zero(&args.history)
        .map_err(|e| anyhow::anyhow!("--history: {e}"))?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create demo directory {}", args.data.display()))?;
    let plant_file = args.data.join("plant.toml");
    let plant_text = match &args.plant {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => DEMO_PLANT.to_owned(),
    };
    std::fs::write(&plant_file, plant_text)
        .with_context(|| format!("cannot write {}", plant_file.display()))?;
    config.plant.file = Some(plant_file);
    config.storage.path = args.data.join("gemba.db");
    config.server.listen = args.listen;
    if config.energy.co2e_kg_per_kwh.is_none() && config.energy.sites.is_empty() {
        // An example grid factor so the energy page can show CO2e; a real plant sets its own.
        config.energy.co2e_kg_per_kwh = Some(DEMO_CO2E_KG_PER_KWH);
        eprintln!(
            "demo: CO2e uses an example grid factor of {DEMO_CO2E_KG_PER_KWH} kg/kWh (set energy.co2e_kg_per_kwh for yours)"
        );
    }
    run_server(
        config,
        Some(DemoSim {
            plant,
            scenario,
            history_ms: history,
            data: args.data.clone(),
        }),
    )
}

/// The demo's grid emission factor when the configuration sets none (docs/LOGISTICS.md).
const DEMO_CO2E_KG_PER_KWH: f64 = 0.4;

fn run_server(config: Config, demo: Option<DemoSim>) -> anyhow::Result<()> {
    crate::init_logging(&config.log.level, &config.log.format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gemba-rt")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async_serve(config, demo))
}

async fn async_serve(config: Config, demo: Option<DemoSim>) -> anyhow::Result<()> {
    let started = Instant::now();
    let listen = config.server.listen;
    // Bind first so that a taken port is reported before anything else starts.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (server.listen); is another Gemba running?")
        })?;
    let store_path = config.storage.path.clone();
    let engine = Engine::open(config, Arc::new(SystemClock))
        .with_context(|| format!("cannot open the store at {}", store_path.display()))?;
    // Visual inspection scores with gemba-nn's conv VAE, which only the binary links.
    engine.set_image_models(Arc::new(crate::inspect::NnImageModels));
    let one_time = engine
        .auth()
        .bootstrap(engine.now())
        .context("cannot create the first admin")?;
    let mqtt = mqtt_bridge::start(engine.clone())
        .await
        .context("cannot start MQTT")?;
    let _maintenance = engine.spawn_maintenance();
    let _retention = engine.spawn_retention();
    let _periodic = engine.spawn_periodic_rules();
    // Work orders for critical alarms (docs/PRODUCTION.md).
    let _work_orders = engine.spawn_work_order_raiser(gemba_engine::alarms::Severity::Critical);
    let app = gemba_api::router(engine.clone());
    let signals = engine.registry().signal_count();
    let mqtt_note = match (&mqtt, engine.config().mqtt.mode) {
        (Some(_), gemba_engine::config::MqttMode::Embedded) => {
            format!("embedded MQTT broker on {}", engine.config().mqtt.listen)
        }
        (Some(_), _) => format!(
            "MQTT client of {}:{}",
            engine.config().mqtt.external.host,
            engine.config().mqtt.external.port
        ),
        (None, _) => "MQTT off".into(),
    };
    tracing::info!(
        http = %listen,
        signals,
        store = %store_path.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "gemba ready"
    );
    let scheme = gemba_api::server::scheme(&engine);
    eprintln!(
        "gemba {} ready in {} ms: {scheme}://{listen} ({signals} signals, {mqtt_note}, store {})",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis(),
        store_path.display()
    );
    if !engine.config().auth.enabled {
        tracing::warn!(
            "authentication is off ([auth] enabled = false): anyone who reaches {listen} is an admin"
        );
        eprintln!(
            "WARNING: authentication is off ([auth] enabled = false): anyone who reaches {listen} is an admin"
        );
    }
    if let Some(pw) = one_time {
        eprintln!(
            "\nFirst start: created the user \"admin\" with the one-time password\n\n    {pw}\n\n\
             Sign in at {scheme}://{listen}/ and choose a new password. It is shown only this once\n\
             (`gemba user passwd admin --store {}` sets a new one-time password).\n",
            store_path.display()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sim_thread = match demo {
        Some(demo) => {
            let mqtt_addr = match (&mqtt, engine.config().mqtt.mode) {
                (Some(_), gemba_engine::config::MqttMode::Embedded) => {
                    Some(engine.config().mqtt.listen)
                }
                _ => None,
            };
            Some(gemba_lab::simulate::spawn_demo(
                demo,
                engine.clone(),
                tokio::runtime::Handle::current(),
                mqtt_addr,
                listen,
                stop.clone(),
            )?)
        }
        None => None,
    };
    gemba_api::server::serve(engine.clone(), listener, app, shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("shutting down");
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = sim_thread {
        match tokio::task::spawn_blocking(move || t.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("simulator: {e:#}"),
            _ => tracing::error!("simulator thread panicked"),
        }
    }
    drop(mqtt);
    eprintln!("stopped; data kept in {}", store_path.display());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
