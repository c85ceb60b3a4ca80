//! Gemba's configuration: embedded defaults, then a TOML file, then `GEMBA__SECTION__KEY`
//! environment variables. Unknown keys are an error everywhere.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The whole configuration. Every field has a default, so an empty file is a valid configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[derive(Default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub mqtt: MqttConfig,
    pub plant: PlantConfig,
    pub log: LogConfig,
    pub alarms: AlarmsConfig,
    /// Reorder points (docs/LOGISTICS.md).
    pub logistics: crate::logistics::LogisticsConfig,
    /// Emission factors (docs/LOGISTICS.md).
    pub energy: crate::energy::EnergyConfig,
    /// Authentication, sessions and rate limits (docs/SECURITY.md).
    pub auth: crate::auth::AuthConfig,
    /// How long each kind of data is kept (docs/SECURITY.md#privacy-and-retention).
    pub retention: RetentionConfig,
    /// The notification outbox and its e-mail channels (docs/ALARMS.md#notifications).
    pub notify: crate::notify::NotifyConfig,
}

/// How many days each kind of data is kept; `None` keeps it forever. The pruning task runs every
/// `interval_s` (docs/SECURITY.md#privacy-and-retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Raw samples of signals that set no `retention_days` of their own (the same setting as
    /// `storage.default_retention_days`; give one of the two).
    pub samples_days: Option<u32>,
    /// Production, state and custom events (operator ids among their attributes). `lot` and
    /// `move` events are kept: inventory and genealogy are rebuilt from them.
    pub events_days: Option<u32>,
    /// Closed alarms, counted from when they were closed (the same setting as
    /// `alarms.retention_days`; give one of the two). Open alarms are never deleted.
    pub alarms_days: Option<u32>,
    /// Finished (done or cancelled) work orders, counted from when they finished.
    pub work_orders_days: Option<u32>,
    /// Visual inspection results and their heat maps (`POST /api/v1/inspect`), by inspection time.
    pub inspections_days: Option<u32>,
    /// Seconds between pruning passes.
    pub interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            samples_days: None,
            events_days: None,
            alarms_days: None,
            work_orders_days: None,
            inspections_days: None,
            interval_s: 3600,
        }
    }
}

impl Config {
    /// Raw-sample retention for signals without their own: `retention.samples_days`, else
    /// `storage.default_retention_days`.
    pub fn sample_retention_days(&self) -> Option<u32> {
        self.retention
            .samples_days
            .or(self.storage.default_retention_days)
    }

    /// Closed-alarm retention: `retention.alarms_days`, else `alarms.retention_days`.
    pub fn alarm_retention_days(&self) -> Option<u32> {
        self.retention.alarms_days.or(self.alarms.retention_days)
    }
}

/// Alarm notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmsConfig {
    /// `[[alarms.webhooks]] url = "http://…"`: each alarm change is POSTed there (through the
    /// durable outbox, `[notify]`).
    pub webhooks: Vec<crate::notify::WebhookConfig>,
    /// Seconds between evaluations of the rules not driven by samples (remaining useful life).
    pub periodic_interval_s: u64,
    /// Closed alarms are deleted this many days after they were closed (none: kept forever;
    /// open alarms are never deleted).
    pub retention_days: Option<u32>,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            webhooks: Vec::new(),
            periodic_interval_s: 60,
            retention_days: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes (413 above it).
    pub max_body_bytes: usize,
    /// A request that takes longer is answered 408.
    pub request_timeout_s: u64,
    /// HTTPS instead of HTTP when set (docs/SECURITY.md).
    pub tls: Option<TlsConfig>,
    /// Open connections beyond this are closed at once (and counted).
    pub max_connections: usize,
    /// A client that has not sent its request headers within this many seconds is disconnected
    /// (slow-loris); also the limit for a TLS handshake.
    pub header_read_timeout_s: u64,
    /// `/healthz` answers 503 "stalled" when ingest requests or queued commits have been in flight
    /// this many seconds without any of them finishing (a hung write path is visible to a
    /// supervisor).
    pub stall_after_s: u64,
    /// Live streams (`GET /api/v1/stream/latest`) open at once; one more is answered 503.
    pub max_streams: usize,
}

/// PEM files of a TLS server certificate (chain) and its private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024 * 1024,
            request_timeout_s: 30,
            tls: None,
            max_connections: 1024,
            header_read_timeout_s: 10,
            stall_after_s: 60,
            max_streams: 256,
        }
    }
}

/// How hard a commit is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// fsync every commit: acknowledged data survives a power cut.
    Full,
    /// Acknowledged data survives a crash of Gemba, but the last commits may be lost on power loss.
    Normal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Only `embedded` for now; `postgres` follows.
    pub backend: String,
    /// Database file of the embedded store (created with its directory).
    pub path: PathBuf,
    pub sync: SyncMode,
    /// Seconds between compaction/rollup/retention passes.
    pub maintenance_interval_s: u64,
    /// Keep 1 m and 1 h rollups this many days (none: forever).
    pub rollup_retention_days: Option<u32>,
    /// Retention of raw samples for signals that do not set their own (none: forever).
    pub default_retention_days: Option<u32>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: "embedded".into(),
            path: PathBuf::from("gemba-data/gemba.db"),
            sync: SyncMode::Full,
            maintenance_interval_s: 10,
            rollup_retention_days: None,
            default_retention_days: None,
        }
    }
}

/// What to do with a sample of a signal that is not in the asset model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSignals {
    /// Reject the sample with an error naming the signal.
    Reject,
    /// Register the signal (a gauge without unit) and its machine, line, area and site.
    Register,
}

/// Whether a batch with some invalid items is accepted in part or rejected whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// Store the valid items and report each invalid one.
    Partial,
    /// Store nothing if any item is invalid.
    Strict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub unknown_signals: UnknownSignals,
    /// Default for HTTP batches (a request may override it with `?mode=`); MQTT and CSV are always partial.
    pub batch_mode: BatchMode,
    /// Samples stamped further in the future than this are rejected.
    pub max_future_s: u64,
    /// Largest number of samples merged into one group commit.
    pub group_commit_max_points: usize,
    /// Samples plus events one HTTP request may carry (413 `batch_too_large` above it).
    pub max_batch_items: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            unknown_signals: UnknownSignals::Reject,
            batch_mode: BatchMode::Partial,
            max_future_s: 300,
            group_commit_max_points: 2_000_000,
            max_batch_items: 1_000_000,
        }
    }
}

/// Where Gemba's MQTT client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MqttMode {
    /// Start the embedded broker and subscribe to it.
    Embedded,
    /// Subscribe to an external broker (`[mqtt.external]`); no embedded broker is started.
    External,
    /// No MQTT at all.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub mode: MqttMode,
    /// Embedded broker, MQTT 3.1.1 listener.
    pub listen: SocketAddr,
    /// Embedded broker, MQTT 5 listener.
    pub listen_v5: Option<SocketAddr>,
    /// Topics are `<topic_prefix>/<site>/<area>/<line>/<machine>[/<signal>]`.
    pub topic_prefix: String,
    pub qos: u8,
    pub max_payload_bytes: usize,
    /// The bridge commits whatever has queued up as soon as the previous commit is done; with a
    /// window > 0 it also waits up to this long for more messages while the queue is empty.
    pub batch_window_ms: u64,
    /// With `[auth] enabled`, the embedded broker asks every client for credentials (an API token
    /// as the password) unless this is true, which is allowed only on a loopback address.
    pub allow_anonymous: bool,
    /// A TLS listener of the embedded broker, e.g. `listen = "0.0.0.0:8883"` with PEM files.
    pub tls: Option<MqttTlsConfig>,
    /// Most bytes (topics and payloads) the embedded broker holds as retained messages; a
    /// retained message beyond it is stored by Gemba and delivered, but not retained.
    pub max_retained_bytes: usize,
    pub external: ExternalBrokerConfig,
}

/// `[mqtt.tls]`: the embedded broker's MQTT-over-TLS listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            mode: MqttMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            listen_v5: Some(SocketAddr::from(([127, 0, 0, 1], 1884))),
            topic_prefix: "gemba/v1".into(),
            qos: 1,
            max_payload_bytes: 1024 * 1024,
            batch_window_ms: 0,
            allow_anonymous: false,
            tls: None,
            max_retained_bytes: 16 * 1024 * 1024,
            external: ExternalBrokerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalBrokerConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    /// PEM file with the CA that signed the broker's certificate (TLS only).
    pub ca_file: Option<PathBuf>,
    pub client_id: String,
}

impl Default for ExternalBrokerConfig {
    fn default() -> Self {
        ExternalBrokerConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            client_id: "gemba".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlantConfig {
    /// The plant file (TOML). Relative paths are relative to the config file.
    pub file: Option<PathBuf>,
    /// IANA time zone of sites that name none (`Europe/Berlin`); none: UTC.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `gemba=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then `GEMBA__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, EngineError> {
        Self::load_with_env(file, Env::prefixed("GEMBA__").split("__"))
    }

    /// Like [`Config::load`] without environment overrides (for `gemba config check`).
    pub fn load_file_only(file: &Path) -> Result<Config, EngineError> {
        Self::load_with_env(
            Some(file),
            Env::prefixed("GEMBA_NEVER_SET_PREFIX__").split("__"),
        )
    }

    /// Parses a configuration from TOML text over the defaults, without environment overrides
    /// and without resolving `plant.file` (used by the config fuzz target and by tests).
    pub fn from_toml_str(text: &str) -> Result<Config, EngineError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| EngineError::Config(figment_message(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn load_with_env(file: Option<&Path>, env: Env) -> Result<Config, EngineError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(EngineError::Config(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        let mut cfg: Config = fig
            .merge(env)
            .extract()
            .map_err(|e| EngineError::Config(figment_message(e)))?;
        if let (Some(cfg_file), Some(plant)) = (file, cfg.plant.file.as_ref())
            && plant.is_relative()
            && let Some(dir) = cfg_file.parent()
        {
            cfg.plant.file = Some(dir.join(plant));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |key: &str, reason: &str| Err(EngineError::Config(format!("{key}: {reason}")));
        if self.storage.backend != "embedded" {
            return bad(
                "storage.backend",
                &format!(
                    "{:?} is not available; the only backend in this build is \"embedded\"",
                    self.storage.backend
                ),
            );
        }
        if self.mqtt.qos > 2 {
            return bad("mqtt.qos", "must be 0, 1 or 2");
        }
        if self.mqtt.topic_prefix.is_empty()
            || self.mqtt.topic_prefix.contains(['#', '+'])
            || self.mqtt.topic_prefix.ends_with('/')
        {
            return bad(
                "mqtt.topic_prefix",
                "must be a non-empty topic without wildcards or a trailing '/'",
            );
        }
        if self.server.max_body_bytes < 1024 {
            return bad("server.max_body_bytes", "must be at least 1024");
        }
        if self.storage.maintenance_interval_s == 0 {
            return bad("storage.maintenance_interval_s", "must be at least 1");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format", "must be \"text\" or \"json\"");
        }
        if self.mqtt.mode == MqttMode::Embedded && Some(self.mqtt.listen) == self.mqtt.listen_v5 {
            return bad("mqtt.listen_v5", "must differ from mqtt.listen");
        }
        if self.mqtt.allow_anonymous
            && (!self.mqtt.listen.ip().is_loopback()
                || self.mqtt.listen_v5.is_some_and(|a| !a.ip().is_loopback())
                || self
                    .mqtt
                    .tls
                    .as_ref()
                    .is_some_and(|t| !t.listen.ip().is_loopback()))
        {
            return bad(
                "mqtt.allow_anonymous",
                "anonymous MQTT is allowed only when the broker listens on a loopback address",
            );
        }
        if !(self.auth.rate_per_s > 0.0 && self.auth.rate_per_s.is_finite()) {
            return bad("auth.rate_per_s", "must be a positive number");
        }
        if self.auth.session_hours == 0 {
            return bad("auth.session_hours", "must be at least 1");
        }
        if self.ingest.max_batch_items == 0 {
            return bad("ingest.max_batch_items", "must be at least 1");
        }
        if self.server.max_streams == 0 {
            return bad("server.max_streams", "must be at least 1");
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections", "must be at least 1");
        }
        if self.retention.interval_s == 0 {
            return bad("retention.interval_s", "must be at least 1");
        }
        for (key, days) in [
            ("retention.samples_days", self.retention.samples_days),
            ("retention.events_days", self.retention.events_days),
            ("retention.alarms_days", self.retention.alarms_days),
            (
                "retention.work_orders_days",
                self.retention.work_orders_days,
            ),
            (
                "retention.inspections_days",
                self.retention.inspections_days,
            ),
        ] {
            if days == Some(0) {
                return bad(
                    key,
                    "must be at least 1 day (leave it out to keep the data forever)",
                );
            }
        }
        if self.retention.samples_days.is_some() && self.storage.default_retention_days.is_some() {
            return bad(
                "retention.samples_days",
                "storage.default_retention_days is the same setting; give only one of them",
            );
        }
        if self.retention.alarms_days.is_some() && self.alarms.retention_days.is_some() {
            return bad(
                "retention.alarms_days",
                "alarms.retention_days is the same setting; give only one of them",
            );
        }
        self.notify
            .validate(&self.alarms.webhooks)
            .map_err(EngineError::Config)?;
        self.logistics.validate().map_err(EngineError::Config)?;
        self.energy.validate().map_err(EngineError::Config)?;
        if let Some(tz) = &self.plant.timezone {
            gemba_core::Zone::parse(tz)
                .map_err(|e| EngineError::Config(format!("plant.timezone: {e}")))?;
        }
        Ok(())
    }
}

fn figment_message(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let src = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| format!(" (from {s})"))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{src}", e.kind)
            } else {
                format!("{key}: {}{src}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_and_file() {
        let f = write(
            "[server]\nlisten = \"127.0.0.1:9000\"\n[ingest]\nunknown_signals = \"register\"\n",
        );
        let c = Config::load_file_only(f.path()).expect("valid");
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.ingest.unknown_signals, UnknownSignals::Register);
        assert_eq!(c.mqtt.listen.port(), 1883);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let f = write("[server]\nlistn = \"127.0.0.1:9000\"\n");
        let err = Config::load_file_only(f.path()).expect_err("unknown key");
        assert!(err.to_string().contains("listn"), "{err}");
        let f = write("[mqtt]\nqos = 3\n");
        let err = Config::load_file_only(f.path()).expect_err("qos");
        assert!(err.to_string().contains("mqtt.qos"), "{err}");
        let f = write("[storage]\nsync = \"sometimes\"\n");
        let err = Config::load_file_only(f.path()).expect_err("sync");
        assert!(err.to_string().contains("storage.sync"), "{err}");
        let err =
            Config::from_toml_str("[plant]\ntimezone = \"Europe/Berln\"\n").expect_err("zone");
        assert!(
            err.to_string()
                .contains("plant.timezone: \"Europe/Berln\" is not a time zone"),
            "{err}"
        );
        let cfg = Config::from_toml_str("[plant]\ntimezone = \"Asia/Shanghai\"\n").expect("zone");
        assert_eq!(cfg.plant.timezone.as_deref(), Some("Asia/Shanghai"));
        assert!(Config::load_file_only(Path::new("/nonexistent/gemba.toml")).is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn env_overrides_file() {
        let f = write("[server]\nlisten = \"127.0.0.1:9000\"\n");
        figment::Jail::expect_with(|jail| {
            jail.set_env("GEMBA__SERVER__LISTEN", "127.0.0.1:9100");
            jail.set_env("GEMBA__MQTT__MODE", "off");
            let c = Config::load(Some(f.path())).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.port(), 9100);
            assert_eq!(c.mqtt.mode, MqttMode::Off);
            Ok(())
        });
    }
}
