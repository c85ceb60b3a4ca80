//! `gemba serve` and `gemba demo`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use gemba_core::SystemClock;
use gemba_engine::{Config, Engine, mqtt_bridge};

use crate::cli::{DemoArgs, ServeArgs};

/// The sample plant of `gemba demo`.
pub const DEMO_PLANT: &str = include_str!("../../../examples/plant.toml");

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref())?;
    run_server(config)
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create demo directory {}", args.data.display()))?;
    let plant = args.data.join("plant.toml");
    std::fs::write(&plant, DEMO_PLANT)
        .with_context(|| format!("cannot write {}", plant.display()))?;
    config.plant.file = Some(plant);
    config.storage.path = args.data.join("gemba.db");
    config.server.listen = args.listen;
    eprintln!(
        "Gemba demo: sample plant acme/plant1 (2 lines, 8 machines), data in {}.\n\
         Send data, e.g.:\n  mosquitto_pub -t gemba/v1/plant1/production/line1/cnc1/spindle_speed -m 1480\n  \
         curl -d '{{\"points\":[{{\"signal\":\"plant1/production/line1/cnc1/torque\",\"value\":41.5}}]}}' http://{}/api/v1/ingest\n\
         The factory simulator that drives the demo is not part of this build yet.",
        args.data.display(),
        args.listen
    );
    run_server(config)
}

fn run_server(config: Config) -> anyhow::Result<()> {
    crate::init_logging(&config.log.level, &config.log.format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gemba-rt")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async_serve(config))
}

async fn async_serve(config: Config) -> anyhow::Result<()> {
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
    let mqtt = mqtt_bridge::start(engine.clone())
        .await
        .context("cannot start MQTT")?;
    let _maintenance = engine.spawn_maintenance();
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
    eprintln!(
        "gemba {} ready in {} ms: http://{listen} ({signals} signals, {mqtt_note}, store {})",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis(),
        store_path.display()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("shutting down");
    drop(mqtt);
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
