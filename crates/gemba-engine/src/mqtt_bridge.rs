//! The MQTT bridge: starts the embedded broker (or not), subscribes to Gemba's topics, decodes
//! messages and commits them in batches of at most `mqtt.batch_window_ms`.
//!
//! Durability window: a QoS 1 message is acknowledged to the publisher by the broker as soon as the
//! broker has it, before Gemba has committed it. Messages received by Gemba are committed within
//! `batch_window_ms` plus one commit (measured and documented in docs/ARCHITECTURE.md); a crash in
//! that window loses them. Use HTTP ingest where every sample must be acknowledged only when durable.

use std::sync::Arc;
use std::time::Duration;

use gemba_ingest::DecodedBatch;
use gemba_ingest::broker::{
    AclAction, BrokerHandle, BrokerTls, EmbeddedBrokerConfig, MqttAuthenticator, MqttGrant,
    start_embedded,
};
use gemba_ingest::client::{MqttClientConfig, MqttMessage, SubscriberHandle, spawn_subscriber};
use gemba_ingest::mqtt::decode_mqtt;
use tokio::sync::mpsc;

use crate::config::MqttMode;
use crate::metrics::ReasonLabel;
use crate::{BatchMode, Engine, EngineError, Source};

/// The running MQTT side of Gemba.
#[derive(Debug)]
pub struct MqttRuntime {
    pub broker: Option<BrokerHandle>,
    pub subscriber: SubscriberHandle,
    pub bridge: tokio::task::JoinHandle<()>,
}

/// Starts the broker (embedded mode), the subscriber and the bridge task. `Ok(None)` when MQTT is off.
pub async fn start(engine: Arc<Engine>) -> Result<Option<MqttRuntime>, EngineError> {
    let cfg = engine.config().mqtt.clone();
    let (broker, client_cfg) = match cfg.mode {
        MqttMode::Off => return Ok(None),
        MqttMode::Embedded => {
            let secured = engine.config().auth.enabled && !cfg.allow_anonymous;
            let authenticator = secured.then(|| {
                let e = engine.clone();
                let counted = engine.clone();
                MqttAuthenticator {
                    check: Arc::new(move |_client: &str, user: &str, pass: &str| {
                        let grant = e.auth().mqtt_login(user, pass, e.now());
                        if grant == MqttGrant::Refused {
                            e.metrics().mqtt_auth_failures.inc();
                        }
                        grant
                    }),
                    on_denied: Arc::new(move |action: AclAction, _topic: &str| {
                        let reason = match action {
                            AclAction::Publish => "publish",
                            AclAction::Subscribe => "subscribe",
                        };
                        counted
                            .metrics()
                            .mqtt_acl_denied
                            .get_or_create(&ReasonLabel {
                                reason: reason.into(),
                            })
                            .inc();
                    }),
                }
            });
            let broker = start_embedded(EmbeddedBrokerConfig {
                listen_v4: cfg.listen,
                listen_v5: cfg.listen_v5,
                max_payload_bytes: cfg.max_payload_bytes,
                authenticator,
                topic_prefix: cfg.topic_prefix.clone(),
                tls: cfg.tls.as_ref().map(|t| BrokerTls {
                    listen: t.listen,
                    cert_file: t.cert_file.clone(),
                    key_file: t.key_file.clone(),
                }),
                ..EmbeddedBrokerConfig::default()
            })?;
            let client = MqttClientConfig {
                host: cfg.listen.ip().to_string(),
                port: cfg.listen.port(),
                username: Some(crate::auth::INTERNAL_MQTT_USER.into()),
                password: Some(engine.auth().internal_secret().to_owned()),
                client_id: "gemba-bridge".into(),
                topic_prefix: cfg.topic_prefix.clone(),
                qos: cfg.qos,
                max_payload_bytes: cfg.max_payload_bytes,
                ..MqttClientConfig::default()
            };
            (Some(broker), client)
        }
        MqttMode::External => {
            let ext = &cfg.external;
            let client = MqttClientConfig {
                host: ext.host.clone(),
                port: ext.port,
                client_id: ext.client_id.clone(),
                username: ext.username.clone(),
                password: ext.password.clone(),
                tls: ext.tls,
                ca_file: ext.ca_file.clone(),
                topic_prefix: cfg.topic_prefix.clone(),
                qos: cfg.qos,
                max_payload_bytes: cfg.max_payload_bytes,
                ..MqttClientConfig::default()
            };
            (None, client)
        }
    };
    let (tx, rx) = mpsc::channel::<MqttMessage>(16_384);
    let subscriber = spawn_subscriber(client_cfg, tx)?;
    let window = Duration::from_millis(cfg.batch_window_ms);
    let bridge = tokio::spawn(run(engine, rx, cfg.topic_prefix, window));
    Ok(Some(MqttRuntime {
        broker,
        subscriber,
        bridge,
    }))
}

/// Most samples merged into one commit by the bridge.
const MAX_BATCH_SAMPLES: usize = 200_000;

async fn run(
    engine: Arc<Engine>,
    mut rx: mpsc::Receiver<MqttMessage>,
    prefix: String,
    window: Duration,
) {
    while let Some(first) = rx.recv().await {
        // Take whatever has queued up (natural group commit: the longer the last commit took,
        // the more is waiting), and wait at most `window` for more while the batch is small.
        let deadline = tokio::time::Instant::now() + window;
        let mut msgs = vec![first];
        let mut approx = 0usize;
        while approx < MAX_BATCH_SAMPLES {
            match rx.try_recv() {
                Ok(m) => {
                    approx += 1 + m.payload.len() / 16;
                    msgs.push(m);
                }
                Err(_) if window.is_zero() => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(m)) => {
                        approx += 1 + m.payload.len() / 16;
                        msgs.push(m);
                    }
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let engine2 = engine.clone();
        let prefix2 = prefix.clone();
        let decoded =
            tokio::task::spawn_blocking(move || decode_all(&engine2, &prefix2, msgs)).await;
        let (batch, acks) = match decoded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "MQTT decode task failed");
                continue;
            }
        };
        match engine.ingest(batch, Source::Mqtt, BatchMode::Partial).await {
            Ok(outcome) => {
                if let Some(first) = outcome.errors.first() {
                    tracing::warn!(
                        rejected = outcome.rejected,
                        first_location = %first.location,
                        first_error = %first.message,
                        "MQTT samples rejected"
                    );
                }
                for ack in acks {
                    ack.ack();
                }
            }
            Err(e) => tracing::error!(error = %e, "MQTT batch could not be stored"),
        }
    }
}

fn decode_all(
    engine: &Engine,
    prefix: &str,
    msgs: Vec<MqttMessage>,
) -> (DecodedBatch, Vec<gemba_ingest::client::AckHandle>) {
    let mut out = DecodedBatch::default();
    let mut acks = Vec::with_capacity(msgs.len());
    for m in msgs {
        engine.metrics().mqtt_messages.inc();
        match decode_mqtt(prefix, &m.topic, &m.payload, m.received_at) {
            Ok(mut b) => {
                for e in &mut b.errors {
                    e.location = format!("topic {}: {}", m.topic, e.location);
                }
                for p in &mut b.points {
                    p.location = format!("topic {}: {}", m.topic, p.location);
                }
                for s in &mut b.series {
                    s.location = format!("topic {}: {}", m.topic, s.location);
                }
                out.points.append(&mut b.points);
                out.series.append(&mut b.series);
                out.events.append(&mut b.events);
                out.errors.append(&mut b.errors);
            }
            Err(e) => {
                engine.metrics().mqtt_undecodable.inc();
                engine
                    .metrics()
                    .rejected
                    .get_or_create(&crate::Metrics::label(Source::Mqtt))
                    .inc();
                tracing::warn!(topic = %m.topic, error = %e, "undecodable MQTT message dropped");
            }
        }
        acks.push(m.ack);
    }
    (out, acks)
}
