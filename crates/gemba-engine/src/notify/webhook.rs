//! The webhook channel: each delivery is POSTed as JSON `{event, alarm, delivery_id, summary}` with
//! the delivery id in the headers `Idempotency-Key` and `X-Gemba-Delivery`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::templates::{self, Language};
use super::{ChannelKind, Delivery, Notifier, Route, SendError, check_name, derived_name};
use crate::alarms::Severity;

/// `[[alarms.webhooks]]`: every raise, re-raise, acknowledgement, clear, close and comment of
/// alarms at or above `min_severity` (and at or below `asset_prefix`) is POSTed to `url`, through
/// the durable outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The channel's name in the outbox and the API (default `webhook-` and 8 hex digits of the
    /// URL's SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "super::default_min_severity")]
    pub min_severity: Severity,
    /// Only alarms at this asset or below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_prefix: Option<String>,
    /// Language of the body's `summary` line (`en` or `zh-CN`).
    #[serde(default)]
    pub language: Language,
    /// Give up a delivery after this many attempts (first try included); without it, only
    /// `notify.max_age_s` ends the retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait before the first retry, doubled for each next one up to `notify.max_backoff_s`.
    #[serde(default = "super::default_backoff_ms")]
    pub backoff_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            name: None,
            min_severity: super::default_min_severity(),
            asset_prefix: None,
            language: Language::En,
            attempts: None,
            backoff_ms: super::default_backoff_ms(),
        }
    }
}

impl WebhookConfig {
    /// The channel's name: `name`, else derived from the URL.
    pub fn channel_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| derived_name("webhook", &self.url))
    }

    /// Errors start with the field name.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "url: {:?} must start with http:// or https://",
                self.url
            ));
        }
        if let Some(n) = &self.name {
            check_name(n)?;
        }
        if self.attempts == Some(0) {
            return Err(
                "attempts: must be at least 1 (leave it out to retry until notify.max_age_s)"
                    .into(),
            );
        }
        if self.backoff_ms == 0 {
            return Err("backoff_ms: must be at least 1".into());
        }
        Ok(())
    }
}

/// POSTs deliveries to one URL (blocking, on the channel's thread).
#[derive(Debug)]
pub struct WebhookNotifier {
    name: String,
    cfg: WebhookConfig,
    route: Route,
    agent: ureq::Agent,
}

impl WebhookNotifier {
    pub fn new(cfg: WebhookConfig) -> WebhookNotifier {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(true)
            .build()
            .into();
        WebhookNotifier {
            name: cfg.channel_name(),
            route: Route {
                min_severity: cfg.min_severity,
                asset_prefix: cfg.asset_prefix.clone(),
            },
            cfg,
            agent,
        }
    }
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }
    fn route(&self) -> &Route {
        &self.route
    }
    fn first_backoff_ms(&self) -> u64 {
        self.cfg.backoff_ms
    }
    fn max_attempts(&self) -> Option<u32> {
        self.cfg.attempts
    }

    fn send(&self, d: &Delivery) -> Result<(), SendError> {
        let n = &d.notification;
        let text = templates::render(self.cfg.language, d);
        let body = json!({
            "event": n.event,
            "alarm": n.alarm,
            "delivery_id": d.id,
            "summary": text.subject,
        });
        match self
            .agent
            .post(&self.cfg.url)
            .header("Idempotency-Key", &d.id)
            .header("X-Gemba-Delivery", &d.id)
            .send_json(&body)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::StatusCode(code)) => Err(SendError::Status(code)),
            Err(e) => Err(SendError::Http(e.to_string())),
        }
    }
}
