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
    /// Commit → scored: how long the scorer lags behind the writer.
    pub scoring_seconds: Histogram,
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
        Metrics {
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
