//! The embedded MQTT broker (rumqttd) on its own OS thread: `Broker::start` blocks forever.
//!
//! MQTT 3.1.1 and MQTT 5 are served on separate listeners (rumqttd binds one protocol per port).
//! The ports are checked before the broker starts, so that a taken port is an error at start-up
//! instead of a log line from a background thread.
//!
//! **Acknowledged means stored.** Each read of a device's connection goes to Gemba's ingest
//! channel ([`EmbeddedBrokerConfig::ingest`]) before the broker routes it: the messages under the
//! topic prefix are sent as [`MqttMessage`]s, and the broker acknowledges them (PUBACK, PUBREC)
//! only once the engine answered the last one's [`AckHandle::Embedded`] after its commit. A
//! crash before that leaves them unacknowledged, and the device sends them again
//! (vendor/rumqttd/GEMBA-PATCH.md, `IngestHandler`).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use rumqttd::{
    Broker, Config, ConnectionSettings, IngestMessage, RouterConfig, ServerSettings, TopicAcl,
};
use tokio::sync::{mpsc, oneshot};

use crate::MqttError;
use crate::client::{AckHandle, MqttMessage, now_ms};
use crate::mqtt::topic_in_scope;

pub use rumqttd::AclAction;

/// What a client's credentials allow on the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttGrant {
    /// Wrong, unknown, expired or too weak credentials: the connection is refused.
    Refused,
    /// Gemba's own client (the demo's simulator): every topic, its client ids as given.
    Internal,
    /// A principal (an API token, `name` as in the audit log). Its client ids live in its own
    /// namespace (the broker knows `dev1` of token `token:ab12` as `dev1@token:ab12`), so that
    /// a device of another principal with the same id can neither take over its session nor
    /// disconnect it. With a `scope` it publishes and subscribes only under that asset path
    /// (`site/area/line/machine` or a prefix of it) in Gemba's topic scheme, and its messages
    /// carry the scope to the ingest path ([`crate::client::MqttMessage::scope`]).
    Principal { name: String, scope: Option<String> },
}

/// Checks MQTT credentials: `(client id, user name, password) -> grant`. It may block (a store
/// lookup); the broker calls it on the blocking pool when a client connects.
#[derive(Clone)]
pub struct MqttAuthenticator {
    pub check: Arc<CredentialCheck>,
    /// Called (on the broker's router thread: it must not block) for every publish or
    /// subscription refused by a client's topic access, with the action and the topic.
    pub on_denied: Arc<DenialHook>,
}

/// `(action, topic)` of a refused publish or subscription.
pub type DenialHook = dyn Fn(AclAction, &str) + Send + Sync;

/// `(client id, user name, password) -> grant`.
pub type CredentialCheck = dyn Fn(&str, &str, &str) -> MqttGrant + Send + Sync;

impl std::fmt::Debug for MqttAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MqttAuthenticator")
    }
}

impl PartialEq for MqttAuthenticator {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.check, &other.check)
    }
}

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerConfig {
    /// MQTT 3.1.1 listener.
    pub listen_v4: SocketAddr,
    /// MQTT 5 listener.
    pub listen_v5: Option<SocketAddr>,
    pub max_payload_bytes: usize,
    pub max_connections: usize,
    /// In-flight QoS 1/2 messages per connection.
    pub max_inflight: usize,
    /// Credentials are required when set; anonymous clients are accepted when `None`.
    pub authenticator: Option<MqttAuthenticator>,
    /// The topic prefix of Gemba's scheme, for the topic access of scoped clients.
    pub topic_prefix: String,
    /// An MQTT 3.1.1 listener over TLS (address, certificate chain PEM, private key PEM).
    pub tls: Option<BrokerTls>,
    /// Where the messages published under `topic_prefix` go before the broker acknowledges
    /// them; `None`: acknowledged on receipt, as a plain broker does.
    pub ingest: Option<mpsc::Sender<MqttMessage>>,
    /// Most bytes (topics and payloads) the broker holds as retained messages; a retained
    /// message beyond it is delivered (and stored by Gemba) but not retained.
    pub max_retained_bytes: usize,
}

/// The TLS listener of the embedded broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerTls {
    pub listen: SocketAddr,
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

impl Default for EmbeddedBrokerConfig {
    fn default() -> Self {
        EmbeddedBrokerConfig {
            listen_v4: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listen_v5: Some(SocketAddr::from(([127, 0, 0, 1], 1884))),
            max_payload_bytes: 1024 * 1024,
            max_connections: 1000,
            max_inflight: 1000,
            authenticator: None,
            topic_prefix: "gemba/v1".into(),
            tls: None,
            ingest: None,
            max_retained_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A running embedded broker. rumqttd cannot be stopped; it ends with the process.
#[derive(Debug)]
pub struct BrokerHandle {
    pub listen_v4: SocketAddr,
    pub listen_v5: Option<SocketAddr>,
    _thread: std::thread::JoinHandle<()>,
}

fn check_free(addr: SocketAddr) -> Result<(), MqttError> {
    TcpListener::bind(addr).map(drop).map_err(|e| MqttError::BrokerStart {
        addr: addr.to_string(),
        reason: format!("{e} (is another MQTT broker, e.g. mosquitto, running? set mqtt.listen or mqtt.mode)"),
    })
}

fn server(name: &str, listen: SocketAddr, cfg: &EmbeddedBrokerConfig) -> ServerSettings {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: cfg.max_payload_bytes,
        max_inflight_count: cfg.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
        acl_handler: None,
        ingest_handler: None,
    };
    if let Some(tx) = cfg.ingest.clone() {
        let prefix = format!("{}/", cfg.topic_prefix);
        connections.ingest_handler = Some(Arc::new(move |messages| {
            Box::pin(hand_over(tx.clone(), prefix.clone(), messages))
        }));
    }
    if let Some(auth) = cfg.authenticator.clone() {
        let grant = move |client_id: String, user: String, pass: String| {
            let check = auth.check.clone();
            async move {
                tokio::task::spawn_blocking(move || (check)(&client_id, &user, &pass))
                    .await
                    .unwrap_or(MqttGrant::Refused)
            }
        };
        let on_connect = grant.clone();
        connections.set_auth_handler(move |client_id, user, pass| {
            let grant = on_connect(client_id, user, pass);
            async move {
                let ok = grant.await != MqttGrant::Refused;
                if !ok {
                    tracing::warn!("MQTT connection refused: bad credentials");
                }
                ok
            }
        });
        // Asked once more after a successful authentication: the topic access of the
        // connection, held by the broker for its lifetime.
        let prefix = cfg.topic_prefix.clone();
        connections.set_acl_handler(move |client_id, user, pass| {
            let grant = grant(client_id, user, pass);
            let prefix = prefix.clone();
            let on_denied = auth.on_denied.clone();
            async move {
                match grant.await {
                    MqttGrant::Principal {
                        name,
                        scope: Some(scope),
                    } => {
                        let within = scope.clone();
                        Some(
                            TopicAcl::new(
                                Arc::new(move |_action, topic| {
                                    topic_in_scope(&prefix, &within, topic)
                                }),
                                Some(on_denied),
                            )
                            .with_namespace(name)
                            .with_tag(scope),
                        )
                    }
                    MqttGrant::Principal { name, scope: None } => Some(
                        TopicAcl::new(Arc::new(|_action, _topic| true), None).with_namespace(name),
                    ),
                    MqttGrant::Internal | MqttGrant::Refused => None,
                }
            }
        });
    }
    ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    }
}

/// Sends one read's messages under the topic prefix to the ingest channel and waits until the
/// engine acknowledged the last of them (after its commit). `false` (nothing stored, or the
/// engine gone) makes the broker close the connection unacknowledged.
async fn hand_over(
    tx: mpsc::Sender<MqttMessage>,
    prefix: String,
    messages: Vec<IngestMessage>,
) -> bool {
    let received_at = now_ms();
    let mut ours: Vec<MqttMessage> = messages
        .into_iter()
        .filter(|m| m.topic.starts_with(&prefix))
        .map(|m| MqttMessage {
            topic: m.topic,
            payload: m.payload,
            received_at,
            scope: m.tag,
            ack: AckHandle::None,
        })
        .collect();
    let Some(last) = ours.last_mut() else {
        return true;
    };
    let (done, stored) = oneshot::channel();
    last.ack = AckHandle::Embedded(done);
    for m in ours {
        if tx.send(m).await.is_err() {
            return false;
        }
    }
    stored.await.is_ok()
}

/// Starts the broker; returns once its ports were found free and its thread runs.
pub fn start_embedded(cfg: EmbeddedBrokerConfig) -> Result<BrokerHandle, MqttError> {
    check_free(cfg.listen_v4)?;
    if let Some(t) = &cfg.tls {
        check_free(t.listen)?;
        for (what, p) in [("cert_file", &t.cert_file), ("key_file", &t.key_file)] {
            std::fs::File::open(p).map_err(|e| MqttError::BrokerStart {
                addr: t.listen.to_string(),
                reason: format!("mqtt.tls.{what} {}: {e}", p.display()),
            })?;
        }
    }
    if let Some(v5) = cfg.listen_v5 {
        check_free(v5)?;
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: cfg.max_connections,
            max_outgoing_packet_count: 1000,
            // The router keeps a commit log per filter: 8 segments of 16 MiB bound its memory.
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 8,
            max_retained_bytes: Some(cfg.max_retained_bytes),
            ..RouterConfig::default()
        },
        v4: Some({
            let mut v4 =
                HashMap::from([("v4".to_owned(), server("gemba-v4", cfg.listen_v4, &cfg))]);
            if let Some(t) = &cfg.tls {
                let mut s = server("gemba-v4-tls", t.listen, &cfg);
                s.tls = Some(rumqttd::TlsConfig::Rustls {
                    capath: None,
                    certpath: t.cert_file.display().to_string(),
                    keypath: t.key_file.display().to_string(),
                });
                v4.insert("v4-tls".to_owned(), s);
            }
            v4
        }),
        v5: cfg
            .listen_v5
            .map(|a| HashMap::from([("v5".to_owned(), server("gemba-v5", a, &cfg))])),
        ..Config::default()
    };
    let thread = std::thread::Builder::new()
        .name("gemba-mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| MqttError::BrokerStart {
            addr: cfg.listen_v4.to_string(),
            reason: format!("cannot start the broker thread: {e}"),
        })?;
    // Wait until rumqttd has bound its listeners (it binds asynchronously). Probing by binding
    // ourselves opens no connection, so the broker logs nothing for it; a bind of the broker's
    // that meets our probe is tried again (vendor/rumqttd GEMBA-PATCH.md). 30 s: a loaded
    // 2-core machine took more than 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for addr in std::iter::once(cfg.listen_v4)
        .chain(cfg.listen_v5)
        .chain(cfg.tls.as_ref().map(|t| t.listen))
    {
        while TcpListener::bind(addr).is_ok() {
            if std::time::Instant::now() > deadline {
                return Err(MqttError::BrokerStart {
                    addr: addr.to_string(),
                    reason:
                        "the broker did not start listening within 30 s (see the log above for why)"
                            .into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    Ok(BrokerHandle {
        listen_v4: cfg.listen_v4,
        listen_v5: cfg.listen_v5,
        _thread: thread,
    })
}
