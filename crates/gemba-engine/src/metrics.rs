//! Prometheus metrics, named `gemba_<what>_<unit>_total`, served by the API at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Where data came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Http,
    Mqtt,
    Csv,
    /// `gemba simulate --direct` and the demo's history.
    Simulator,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Http => "http",
            Source::Mqtt => "mqtt",
            Source::Csv => "csv",
            Source::Simulator => "simulator",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

/// All counters of the engine.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub points: Family<SourceLabel, Counter>,
    pub events: Family<SourceLabel, Counter>,
    pub rejected: Family<SourceLabel, Counter>,
    pub mqtt_messages: Counter,
    pub mqtt_undecodable: Counter,
    pub commit_failures: Counter,
    pub commit_seconds: Histogram,
    pub signals: Gauge,
    pub alarms_raised: Counter,
    pub webhooks_sent: Counter,
    pub webhooks_failed: Counter,
    /// Deliveries of the notification outbox waiting to be sent (every channel).
    pub notify_pending: Gauge,
    /// Deliveries of the outbox given up (kept `notify.keep_days`).
    pub notify_expired: Gauge,
    /// Notifications delivered (every channel).
    pub notify_sent: Counter,
    /// Failed attempts (each is retried).
    pub notify_attempts_failed: Counter,
    /// Commit → scored: how long the scorer lags behind the writer.
    pub scoring_seconds: Histogram,
    /// Requests refused by authentication or authorisation, by `reason` (401 or 403).
    pub auth_denied: Family<ReasonLabel, Counter>,
    /// Requests refused with 429 by the per-principal rate limit.
    pub rate_limited: Counter,
    /// Connections closed at once because `server.max_connections` were open.
    pub connections_refused: Counter,
    /// Open HTTP connections.
    pub connections_open: Gauge,
    /// Requests refused with 413 (body too large).
    pub payload_too_large: Counter,
    /// MQTT connections refused for bad credentials.
    pub mqtt_auth_failures: Counter,
    /// Publishes and subscriptions refused by a scoped client's topic access, by action
    /// (`publish`, `subscribe`).
    pub mqtt_acl_denied: Family<ReasonLabel, Counter>,
    /// Audit entries that could not be written (each is also logged as an error).
    pub audit_failures: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gemba");
        let points = Family::<SourceLabel, Counter>::default();
        let events = Family::<SourceLabel, Counter>::default();
        let rejected = Family::<SourceLabel, Counter>::default();
        let mqtt_messages = Counter::default();
        let mqtt_undecodable = Counter::default();
        let commit_failures = Counter::default();
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let signals = Gauge::default();
        let alarms_raised = Counter::default();
        let webhooks_sent = Counter::default();
        let webhooks_failed = Counter::default();
        let scoring_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "alarms_raised",
            "Alarms raised or re-raised",
            alarms_raised.clone(),
        );
        registry.register(
            "webhooks_sent",
            "Alarm webhooks delivered",
            webhooks_sent.clone(),
        );
        registry.register(
            "webhooks_failed",
            "Alarm webhooks given up after every retry",
            webhooks_failed.clone(),
        );
        let notify_pending = Gauge::default();
        let notify_expired = Gauge::default();
        let notify_sent = Counter::default();
        let notify_attempts_failed = Counter::default();
        registry.register(
            "notify_pending",
            "Notification deliveries (webhook and e-mail) waiting in the outbox",
            notify_pending.clone(),
        );
        registry.register(
            "notify_expired",
            "Notification deliveries given up and still kept in the outbox",
            notify_expired.clone(),
        );
        registry.register(
            "notify_sent",
            "Notification deliveries (webhook and e-mail) accepted by their receiver",
            notify_sent.clone(),
        );
        registry.register(
            "notify_attempts_failed",
            "Failed notification attempts (each is retried)",
            notify_attempts_failed.clone(),
        );
        registry.register(
            "scoring_seconds",
            "Time from a commit to the end of its alarm-rule evaluation",
            scoring_seconds.clone(),
        );
        registry.register("ingest_points", "Samples durably stored", points.clone());
        registry.register("ingest_events", "Events durably stored", events.clone());
        registry.register(
            "ingest_rejected_items",
            "Samples, events or payloads rejected as invalid",
            rejected.clone(),
        );
        registry.register(
            "mqtt_messages",
            "MQTT messages received",
            mqtt_messages.clone(),
        );
        registry.register(
            "mqtt_undecodable_messages",
            "MQTT messages whose topic or payload could not be decoded at all",
            mqtt_undecodable.clone(),
        );
        registry.register(
            "store_commit_failures",
            "Failed store commits",
            commit_failures.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of store commits",
            commit_seconds.clone(),
        );
        registry.register("signals", "Registered signals", signals.clone());
        let auth_denied = Family::<ReasonLabel, Counter>::default();
        let rate_limited = Counter::default();
        let connections_refused = Counter::default();
        let connections_open = Gauge::default();
        let payload_too_large = Counter::default();
        let mqtt_auth_failures = Counter::default();
        let mqtt_acl_denied = Family::<ReasonLabel, Counter>::default();
        let audit_failures = Counter::default();
        registry.register(
            "auth_denied_requests",
            "Requests refused by authentication (401) or authorisation (403)",
            auth_denied.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429 by the per-principal rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed because server.max_connections were open",
            connections_refused.clone(),
        );
        registry.register(
            "http_connections_open",
            "Open HTTP connections",
            connections_open.clone(),
        );
        registry.register(
            "payload_too_large_requests",
            "Requests refused with 413",
            payload_too_large.clone(),
        );
        registry.register(
            "mqtt_auth_failures",
            "MQTT connections refused for bad credentials",
            mqtt_auth_failures.clone(),
        );
        registry.register(
            "mqtt_acl_denied",
            "MQTT publishes and subscriptions outside a scoped client's machine, refused",
            mqtt_acl_denied.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit entries that could not be written",
            audit_failures.clone(),
        );
        Metrics {
            auth_denied,
            rate_limited,
            connections_refused,
            connections_open,
            payload_too_large,
            mqtt_auth_failures,
            mqtt_acl_denied,
            audit_failures,
            registry,
            points,
            events,
            rejected,
            mqtt_messages,
            mqtt_undecodable,
            commit_failures,
            commit_seconds,
            signals,
            alarms_raised,
            webhooks_sent,
            webhooks_failed,
            notify_pending,
            notify_expired,
            notify_sent,
            notify_attempts_failed,
            scoring_seconds,
        }
    }

    pub fn label(source: Source) -> SourceLabel {
        SourceLabel {
            source: source.as_str().into(),
        }
    }

    pub fn observe_commit(&self, seconds: f64) {
        self.commit_seconds.observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}
