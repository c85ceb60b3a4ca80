//! Notifications of alarm changes: a durable outbox and the channels it delivers to
//! (docs/ALARMS.md#notifications).
//!
//! The alarm code only calls [`Outbox::enqueue`] with a [`Notification`]. The outbox picks the
//! channels whose [`Route`] takes it (minimum severity, asset prefix), stores one [`Delivery`] per
//! channel as a store record **before** anything is sent, and each channel's thread sends its
//! deliveries in order, retrying with capped exponential back-off, across restarts, until the
//! delivery is sent or older than `notify.max_age_s` (then it is `expired`). Every delivery carries
//! a stable delivery id (webhook headers `Idempotency-Key` and `X-Gemba-Delivery`, e-mail
//! `Message-ID`), so a receiver can drop the duplicate that a crash between "sent" and "recorded
//! as sent" can cause.
//!
//! A channel is a [`Notifier`]: [`webhook::WebhookNotifier`] (`[[alarms.webhooks]]`) and
//! [`email::EmailNotifier`] (`[[notify.email]]`, SMTP through `lettre`).

pub mod email;
pub mod outbox;
pub mod templates;
pub mod webhook;

use std::sync::Arc;

use gemba_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::EngineError;
use crate::alarms::{Alarm, AlarmState, Severity};

pub use email::{EmailConfig, EmailNotifier, TlsMode};
pub use outbox::{
    Delivery, DeliveryQuery, DeliveryState, DeliverySummary, Outbox, OutboxCounts, OutboxOptions,
    Prepared,
};
pub use templates::Language;
pub use webhook::{WebhookConfig, WebhookNotifier};

/// `[notify]`: the outbox and the e-mail channels (webhooks stay under `[[alarms.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[[notify.email]]`: SMTP channels.
    pub email: Vec<EmailConfig>,
    /// A delivery not sent within this many seconds of its alarm change is given up (`expired`).
    pub max_age_s: u64,
    /// The longest wait between two attempts (the wait doubles from the channel's first back-off).
    pub max_backoff_s: u64,
    /// Sent and expired deliveries are kept this many days for the API and the dashboard.
    pub keep_days: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email: Vec::new(),
            max_age_s: 24 * 3600,
            max_backoff_s: 300,
            keep_days: 7,
        }
    }
}

impl NotifyConfig {
    /// Checks what serde cannot; errors name the field.
    pub fn validate(&self, webhooks: &[WebhookConfig]) -> Result<(), String> {
        if self.max_age_s == 0 {
            return Err("notify.max_age_s: must be at least 1".into());
        }
        if self.max_backoff_s == 0 {
            return Err("notify.max_backoff_s: must be at least 1".into());
        }
        if self.keep_days == 0 {
            return Err("notify.keep_days: must be at least 1".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in webhooks.iter().enumerate() {
            w.validate()
                .map_err(|e| format!("alarms.webhooks[{i}].{e}"))?;
            if !names.insert(w.channel_name()) {
                return Err(format!(
                    "alarms.webhooks[{i}].name: {:?} names another channel too",
                    w.channel_name()
                ));
            }
        }
        for (i, e) in self.email.iter().enumerate() {
            e.validate().map_err(|r| format!("notify.email[{i}].{r}"))?;
            if !names.insert(e.channel_name()) {
                return Err(format!(
                    "notify.email[{i}].name: {:?} names another channel too",
                    e.channel_name()
                ));
            }
        }
        Ok(())
    }
}

/// Builds one notifier per configured channel (webhooks first, then e-mail).
pub fn channels(
    webhooks: &[WebhookConfig],
    notify: &NotifyConfig,
) -> Result<Vec<Arc<dyn Notifier>>, NotifyError> {
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    for w in webhooks {
        out.push(Arc::new(WebhookNotifier::new(w.clone())));
    }
    for (i, e) in notify.email.iter().enumerate() {
        out.push(Arc::new(EmailNotifier::new(e, i)?));
    }
    Ok(out)
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmEvent {
    Raised,
    /// Fired again while its alarm was still open.
    Reraised,
    Acknowledged,
    /// The condition went away.
    Cleared,
    Closed,
    Comment,
}

impl AlarmEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmEvent::Raised => "raised",
            AlarmEvent::Reraised => "reraised",
            AlarmEvent::Acknowledged => "acknowledged",
            AlarmEvent::Cleared => "cleared",
            AlarmEvent::Closed => "closed",
            AlarmEvent::Comment => "comment",
        }
    }
}

/// One alarm change as the channels see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: AlarmEvent,
    pub alarm_id: u64,
    pub rule: String,
    pub severity: Severity,
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub state: AlarmState,
    pub message: String,
    /// Data time of the alarm's latest raise.
    pub raised_at: Timestamp,
    /// The whole alarm as the API shows it (the webhook body's `alarm`); dropped (null) once the
    /// delivery is sent or expired, to keep the outbox small.
    #[serde(default)]
    pub alarm: serde_json::Value,
}

impl Notification {
    /// The notification of `event` on `alarm` (the alarm after the change).
    pub fn of_alarm(event: AlarmEvent, alarm: &Alarm) -> Notification {
        Notification {
            event,
            alarm_id: alarm.id,
            rule: alarm.rule.clone(),
            severity: alarm.severity,
            asset: alarm.asset.clone(),
            signal: alarm.signal.clone(),
            state: alarm.state,
            message: alarm.message.clone(),
            raised_at: alarm.last_raised_at,
            alarm: serde_json::to_value(alarm).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Which notifications a channel takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub min_severity: Severity,
    /// Only alarms at this asset or below it (`s1/a1` takes `s1/a1` and `s1/a1/l1/m1`, not `s1/a10`).
    pub asset_prefix: Option<String>,
}

impl Route {
    pub fn accepts(&self, n: &Notification) -> bool {
        n.severity >= self.min_severity
            && self.asset_prefix.as_deref().is_none_or(|p| {
                let p = p.trim_end_matches('/');
                n.asset == p
                    || n.asset
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// The kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Email,
}

/// Why one attempt failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("the message could not be built: {0}")]
    Message(String),
}

/// Errors of starting the outbox and its channels.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    #[error(transparent)]
    Store(#[from] gemba_store::StoreError),
    #[error("cannot start the notification thread of {channel}: {reason}")]
    Thread { channel: String, reason: String },
}

impl From<NotifyError> for EngineError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::Config { .. } => EngineError::Config(e.to_string()),
            NotifyError::Store(s) => EngineError::Store(s),
            NotifyError::Thread { .. } => EngineError::Internal(e.to_string()),
        }
    }
}

/// A notification channel. `send` blocks (it runs on the channel's own thread).
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// The channel's name, unique among channels; deliveries are stored under it.
    fn name(&self) -> &str;
    fn kind(&self) -> ChannelKind;
    fn route(&self) -> &Route;
    /// Delivers once; `Ok` only when the receiver has accepted it.
    fn send(&self, delivery: &Delivery) -> Result<(), SendError>;
    /// Wait before the second attempt; it doubles up to `notify.max_backoff_s`.
    fn first_backoff_ms(&self) -> u64 {
        1000
    }
    /// Give up after this many attempts (`None`: only `notify.max_age_s` ends the retries).
    fn max_attempts(&self) -> Option<u32> {
        None
    }
}

/// The defaults every channel's settings share: alarms of every severity, and a first retry
/// after one second.
pub(crate) fn default_min_severity() -> Severity {
    Severity::Low
}
pub(crate) fn default_backoff_ms() -> u64 {
    1000
}

/// A channel name: 1–64 ASCII letters, digits, `_`, `-`, `.`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(format!(
            "name: {name:?} must be 1–64 ASCII letters, digits, '_', '-' or '.'"
        ));
    }
    Ok(())
}

/// A short stable name from what identifies a channel: `<prefix>-<8 hex of SHA-256>` (the URL or
/// server is not shown, since it may hold a secret).
pub(crate) fn derived_name(prefix: &str, identity: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let hex: String = d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(severity: Severity, asset: &str) -> Notification {
        Notification {
            event: AlarmEvent::Raised,
            alarm_id: 1,
            rule: "r".into(),
            severity,
            asset: asset.into(),
            signal: None,
            state: AlarmState::Active,
            message: "m".into(),
            raised_at: 0,
            alarm: serde_json::Value::Null,
        }
    }

    #[test]
    fn routes_filter_by_severity_and_asset_prefix() {
        let r = Route {
            min_severity: Severity::High,
            asset_prefix: Some("s1/a1".into()),
        };
        assert!(r.accepts(&note(Severity::High, "s1/a1/l1/m1")));
        assert!(r.accepts(&note(Severity::Critical, "s1/a1")));
        assert!(!r.accepts(&note(Severity::Medium, "s1/a1/l1/m1")));
        assert!(!r.accepts(&note(Severity::High, "s1/a10/l1/m1")));
        assert!(!r.accepts(&note(Severity::High, "s2/a1")));
        let all = Route {
            min_severity: Severity::Low,
            asset_prefix: Some("s1/".into()),
        };
        assert!(all.accepts(&note(Severity::Low, "s1/a2")));
    }

    #[test]
    fn channel_names_are_checked_and_unique() {
        let hook = |url: &str, name: Option<&str>| WebhookConfig {
            url: url.into(),
            name: name.map(str::to_owned),
            ..WebhookConfig::default()
        };
        let cfg = NotifyConfig::default();
        assert!(
            cfg.validate(&[hook("http://a/", None), hook("http://b/", None)])
                .is_ok()
        );
        let err = cfg
            .validate(&[hook("http://a/", Some("x")), hook("http://b/", Some("x"))])
            .expect_err("duplicate");
        assert!(err.contains("alarms.webhooks[1].name"), "{err}");
        let err = cfg
            .validate(&[hook("http://a/", Some("a b"))])
            .expect_err("bad name");
        assert!(err.contains("alarms.webhooks[0].name"), "{err}");
        let err = cfg.validate(&[hook("ftp://a/", None)]).expect_err("scheme");
        assert!(err.contains("alarms.webhooks[0].url"), "{err}");
        assert_eq!(
            derived_name("webhook", "http://a/"),
            derived_name("webhook", "http://a/")
        );
        assert_ne!(
            derived_name("webhook", "http://a/"),
            derived_name("webhook", "http://b/")
        );
    }
}
