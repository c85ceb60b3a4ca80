//! The MQTT bridge: starts the embedded broker (or subscribes to an external one), decodes
//! messages and commits them in batches of at most `mqtt.batch_window_ms`.
//!
//! Acknowledged means stored, in both modes:
//! - **Embedded broker**: the broker hands every read of a device's connection to this bridge
//!   before routing it, and acknowledges the read's QoS 1/2 messages (PUBACK/PUBREC) only after
//!   the commit that holds them (`gemba_ingest::broker`, the `IngestHandler` of the vendored
//!   rumqttd). There is no internal MQTT client.
//! - **External broker**: Gemba's subscriber acknowledges each QoS 1 message to the broker after
//!   the commit (manual acks); with a persistent session the broker redelivers what was not.
//!
//! A batch that cannot be stored acknowledges nothing: the device's connection is closed and it
//! sends again (embedded), or the broker redelivers (external).

use std::sync::Arc;
use std::time::Duration;

use gemba_core::quote_clipped;
use gemba_ingest::DecodedBatch;
use gemba_ingest::broker::{
    AclAction, BrokerHandle, BrokerTls, EmbeddedBrokerConfig, MqttAuthenticator, MqttGrant,
    start_embedded,
};
use gemba_ingest::client::{MqttClientConfig, MqttMessage, SubscriberHandle, spawn_subscriber};
use gemba_ingest::mqtt::decode_mqtt_within;
use tokio::sync::mpsc;

use crate::config::MqttMode;
use crate::metrics::ReasonLabel;
use crate::{BatchMode, Engine, EngineError, Source};

/// The running MQTT side of Gemba.
#[derive(Debug)]
pub struct MqttRuntime {
    pub broker: Option<BrokerHandle>,
    /// Gemba's subscriber of an external broker (none with the embedded broker).
    pub subscriber: Option<SubscriberHandle>,
    pub bridge: tokio::task::JoinHandle<()>,
}

/// Starts the broker (embedded mode), the subscriber and the bridge task. `Ok(None)` when MQTT is off.
pub async fn start(engine: Arc<Engine>) -> Result<Option<MqttRuntime>, EngineError> {
    let cfg = engine.config().mqtt.clone();
    let (tx, rx) = mpsc::channel::<MqttMessage>(16_384);
    let (broker, subscriber) = match cfg.mode {
        MqttMode::Off => return Ok(None),
        MqttMode::Embedded => {
            let secured = engine.config().auth.enabled && !cfg.allow_anonymous;
            let authenticator = secured.then(|| {
                let e = engine.clone();
                let counted = engine.clone();
                MqttAuthenticator {
                    check: Arc::new(move |client: &str, user: &str, pass: &str| {
                        let grant = if client.starts_with(RESERVED_CLIENT_PREFIX)
                            && user != crate::auth::INTERNAL_MQTT_USER
                        {
                            tracing::warn!(client, "MQTT connection refused: client ids starting with {RESERVED_CLIENT_PREFIX:?} are reserved for Gemba");
                            MqttGrant::Refused
                        } else {
                            e.auth().mqtt_login(user, pass, e.now())
                        };
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
                ingest: Some(tx),
                max_retained_bytes: cfg.max_retained_bytes,
                ..EmbeddedBrokerConfig::default()
            })?;
            tracing::info!(prefix = %cfg.topic_prefix, "MQTT ingest ready: messages are acknowledged once stored");
            (Some(broker), None)
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
            (None, Some(spawn_subscriber(client, tx)?))
        }
    };
    let window = Duration::from_millis(cfg.batch_window_ms);
    let bridge = tokio::spawn(run(engine, rx, cfg.topic_prefix, window));
    Ok(Some(MqttRuntime {
        broker,
        subscriber,
        bridge,
    }))
}

/// Client ids with this prefix are Gemba's own (the demo's simulator): a device that uses one is
/// refused (it could otherwise take over a session of Gemba's, and its subscriptions).
pub const RESERVED_CLIENT_PREFIX: &str = "gemba-";

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
                    // Clipped: a device's payload must not make log lines of its own size.
                    tracing::warn!(
                        rejected = outcome.rejected,
                        first_location = %quote_clipped(&first.location, 300),
                        first_error = %quote_clipped(&first.message, 300),
                        "MQTT samples rejected"
                    );
                }
                for ack in acks {
                    ack.ack();
                }
            }
            // The acknowledgements are dropped: nothing of this batch is acknowledged, so the
            // devices send it again (embedded broker: their connections are closed).
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
        match decode_mqtt_within(
            prefix,
            &m.topic,
            &m.payload,
            m.received_at,
            m.scope.as_deref(),
        ) {
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
                tracing::warn!(topic = %quote_clipped(&m.topic, 300), error = %quote_clipped(&e.to_string(), 300), "undecodable MQTT message dropped");
            }
        }
        acks.push(m.ack);
    }
    (out, acks)
}
