//! The MQTT subscriber Gemba uses for the embedded broker and for external brokers.
//!
//! An explicit event loop (rumqttc) runs as a tokio task: it subscribes to `<prefix>/#` after every
//! (re)connect, reconnects with backoff, and forwards each publish on a bounded channel (awaiting when
//! the channel is full: back-pressure, not loss). Acknowledgements are manual: a QoS 1 message is
//! acknowledged to the broker only when the engine calls [`AckHandle::ack`] after the commit that
//! holds its samples, so a broker with a persistent session redelivers what Gemba did not store.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::MqttError;

/// Settings of the subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttClientConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    pub topic_prefix: String,
    pub qos: u8,
    pub keep_alive_s: u64,
    pub clean_session: bool,
    pub max_payload_bytes: usize,
}

impl Default for MqttClientConfig {
    fn default() -> Self {
        MqttClientConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "gemba".into(),
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            topic_prefix: "gemba/v1".into(),
            qos: 1,
            keep_alive_s: 30,
            clean_session: false,
            max_payload_bytes: 1024 * 1024,
        }
    }
}

/// Acknowledges a message to its publisher once it is stored.
#[derive(Debug)]
pub enum AckHandle {
    /// A message from a broker Gemba subscribed to: the PUBACK goes to that broker.
    Broker {
        client: AsyncClient,
        publish: Publish,
    },
    /// The last message of one read of a device's connection to the embedded broker: the
    /// broker routes and acknowledges that read once this is answered (`crate::broker`).
    Embedded(tokio::sync::oneshot::Sender<()>),
    /// Acknowledged with another message of the same read.
    None,
}

impl AckHandle {
    /// Acknowledges (a no-op for QoS 0). Dropping a handle instead leaves the message
    /// unacknowledged: the broker sends it again, or the device's connection is closed so that
    /// the device does.
    pub fn ack(self) {
        match self {
            AckHandle::Broker { client, publish } => {
                if publish.qos != QoS::AtMostOnce
                    && let Err(e) = client.try_ack(&publish)
                {
                    tracing::debug!(error = %e, "MQTT ack not sent");
                }
            }
            AckHandle::Embedded(done) => {
                let _ = done.send(());
            }
            AckHandle::None => {}
        }
    }
}

/// One received message.
#[derive(Debug)]
pub struct MqttMessage {
    pub topic: String,
    pub payload: Bytes,
    /// Time of receipt, ms since the epoch.
    pub received_at: i64,
    /// The publisher's scope (an asset path) when the embedded broker authenticated it with a
    /// scoped token: everything the message writes must lie under it. `None` for unscoped
    /// publishers and for messages from an external broker.
    pub scope: Option<Arc<str>>,
    pub ack: AckHandle,
}

/// Counters of the subscriber.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    pub messages: AtomicU64,
    pub reconnects: AtomicU64,
}

/// The running subscriber.
#[derive(Debug)]
pub struct SubscriberHandle {
    pub stats: Arc<SubscriberStats>,
    pub task: tokio::task::JoinHandle<()>,
}

/// A rustls client configuration (ring provider) trusting the CA certificates of `ca_file` (PEM).
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, MqttError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let path = ca_file.ok_or_else(|| {
        MqttError::Client(
            "mqtt.external.tls = true needs mqtt.external.ca_file: the PEM file of the CA that signed the broker's certificate"
                .into(),
        )
    })?;
    let bad = |reason: String| {
        MqttError::Client(format!(
            "mqtt.external.ca_file {}: {reason}",
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("contains no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Client(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Starts the subscriber task on the current tokio runtime.
pub fn spawn_subscriber(
    cfg: MqttClientConfig,
    tx: mpsc::Sender<MqttMessage>,
) -> Result<SubscriberHandle, MqttError> {
    let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    if cfg.tls {
        let tls = tls_config(cfg.ca_file.as_deref())?;
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
    opts.set_clean_session(cfg.clean_session);
    opts.set_manual_acks(true);
    opts.set_max_packet_size(cfg.max_payload_bytes + 4096, cfg.max_payload_bytes + 4096);
    opts.set_inflight(1000);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        opts.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let stats = Arc::new(SubscriberStats::default());
    let st = stats.clone();
    let filter = format!("{}/#", cfg.topic_prefix);
    let sub_qos = qos(cfg.qos);
    let task = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(filter = %filter, "MQTT subscriber connected");
                    if let Err(e) = client.subscribe(filter.clone(), sub_qos).await {
                        tracing::error!(error = %e, "MQTT subscribe failed");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    st.messages.fetch_add(1, Ordering::Relaxed);
                    let msg = MqttMessage {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        received_at: now_ms(),
                        scope: None,
                        ack: AckHandle::Broker {
                            client: client.clone(),
                            publish: p,
                        },
                    };
                    if tx.send(msg).await.is_err() {
                        tracing::info!("MQTT subscriber stops: no receiver");
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    st.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
    Ok(SubscriberHandle { stats, task })
}

/// A publisher that knows when the broker has every message: QoS 1 publishes are counted,
/// and [`Publisher::flush`] waits until the broker has acknowledged all of them.
#[derive(Debug)]
pub struct Publisher {
    client: AsyncClient,
    sent: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Connects to the broker of `cfg` (credentials, TLS) and waits for its CONNACK, so that
    /// a wrong address or password is an error here rather than a silent retry loop.
    pub async fn connect(cfg: &MqttClientConfig) -> Result<Publisher, MqttError> {
        let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        if cfg.tls {
            let tls = tls_config(cfg.ca_file.as_deref())?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
        opts.set_clean_session(true);
        opts.set_max_packet_size(cfg.max_payload_bytes + 4096, cfg.max_payload_bytes + 4096);
        opts.set_inflight(200);
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            opts.set_credentials(u.clone(), p.clone());
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(MqttError::Client(format!("cannot connect to {addr}: {e}"))),
            Err(_) => {
                return Err(MqttError::Client(format!(
                    "no CONNACK from {addr} within 10 s"
                )));
            }
        }
        let sent = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ack, fail, closing_task) = (acked.clone(), failed.clone(), closing.clone());
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        ack.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => backoff = Duration::from_millis(100),
                    Ok(_) => {}
                    Err(e) => {
                        if closing_task.load(Ordering::Relaxed) {
                            return;
                        }
                        tracing::warn!(error = %e, "MQTT publisher connection lost; reconnecting");
                        if let Ok(mut f) = fail.lock() {
                            *f = Some(e.to_string());
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        Ok(Publisher {
            client,
            sent,
            acked,
            failed,
            closing,
            task,
        })
    }

    /// Publishes with QoS 1 (waits while the client's queue is full).
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), MqttError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| MqttError::Client(format!("publish: {e}")))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Messages published and acknowledged by the broker so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.acked.load(Ordering::Relaxed),
        )
    }

    /// Waits until the broker has acknowledged every message published so far.
    pub async fn flush(&self, timeout: Duration) -> Result<(), MqttError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (sent, acked) = self.counts();
            if acked >= sent {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let last = self.failed.lock().ok().and_then(|f| f.clone());
                return Err(MqttError::Client(format!(
                    "broker acknowledged {acked} of {sent} messages within {timeout:?}{}",
                    last.map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Flushes, then disconnects.
    pub async fn close(self, timeout: Duration) -> Result<(), MqttError> {
        let flushed = self.flush(timeout).await;
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.task.abort();
        flushed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{EmbeddedBrokerConfig, start_embedded};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_and_subscriber_round_trip_v4_and_v5() {
        let (p4, p5) = (free_port(), free_port());
        let broker = start_embedded(EmbeddedBrokerConfig {
            listen_v4: ([127, 0, 0, 1], p4).into(),
            listen_v5: Some(([127, 0, 0, 1], p5).into()),
            ..EmbeddedBrokerConfig::default()
        })
        .expect("broker starts");
        // A second broker on the same port is an error, not a silent log line.
        let again = start_embedded(EmbeddedBrokerConfig {
            listen_v4: broker.listen_v4,
            listen_v5: None,
            ..EmbeddedBrokerConfig::default()
        });
        assert!(matches!(again, Err(MqttError::BrokerStart { .. })));

        let (tx, mut rx) = mpsc::channel(100);
        let sub = spawn_subscriber(
            MqttClientConfig {
                port: p4,
                client_id: "test-sub".into(),
                ..MqttClientConfig::default()
            },
            tx,
        )
        .expect("subscriber");
        let (c4, mut l4) = AsyncClient::new(MqttOptions::new("pub-v4", "127.0.0.1", p4), 10);
        tokio::spawn(async move { while l4.poll().await.is_ok() {} });
        // Until the subscription is in place messages are dropped: publish probes until one
        // arrives. They go over the connection that publishes x next, so every probe arrives
        // before x.
        let mut probes = 0u64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            c4.publish("gemba/v1/s/a/l/m/probe", QoS::AtLeastOnce, false, "0")
                .await
                .expect("probe");
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
                m.ack.ack();
                probes += 1;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the subscriber did not subscribe within 10 s"
            );
        }
        c4.publish("gemba/v1/s/a/l/m/x", QoS::AtLeastOnce, false, "1.5")
            .await
            .expect("publish");

        let (c5, mut l5) = rumqttc::v5::AsyncClient::new(
            rumqttc::v5::MqttOptions::new("pub-v5", "127.0.0.1", p5),
            10,
        );
        tokio::spawn(async move { while l5.poll().await.is_ok() {} });
        c5.publish(
            "gemba/v1/s/a/l/m/y",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "2.5",
        )
        .await
        .expect("publish v5");

        let mut got = Vec::new();
        while got.len() < 2 {
            let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("message within 10 s")
                .expect("channel open");
            m.ack.ack();
            if m.topic.ends_with("/probe") {
                probes += 1;
                continue;
            }
            got.push((m.topic.clone(), m.payload.clone()));
        }
        got.sort();
        assert_eq!(
            got[0],
            ("gemba/v1/s/a/l/m/x".to_owned(), Bytes::from_static(b"1.5"))
        );
        assert_eq!(
            got[1],
            ("gemba/v1/s/a/l/m/y".to_owned(), Bytes::from_static(b"2.5"))
        );
        assert_eq!(sub.stats.messages.load(Ordering::Relaxed), 2 + probes);
    }

    #[test]
    fn tls_needs_a_readable_ca_file() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let (tx, _rx) = mpsc::channel(1);
            let tls = |ca: Option<&str>| MqttClientConfig {
                tls: true,
                ca_file: ca.map(Into::into),
                ..MqttClientConfig::default()
            };
            let err = spawn_subscriber(tls(None), tx.clone()).unwrap_err();
            assert!(err.to_string().contains("ca_file"), "{err}");
            let err = spawn_subscriber(tls(Some("/nonexistent/ca.pem")), tx).unwrap_err();
            assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        });
    }
}
