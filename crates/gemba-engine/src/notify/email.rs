//! The e-mail channel: SMTP through `lettre` (blocking, on the channel's thread), plain, STARTTLS
//! or TLS from the first byte, with rustls (ring) trusting the system's CA store and an optional
//! `ca_file`. The delivery id is the `Message-ID` (`<id@domain of from>`) and the header
//! `X-Gemba-Delivery`.

use std::path::PathBuf;
use std::time::Duration;

use lettre::Transport;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use serde::{Deserialize, Serialize};

use super::templates::{self, Language};
use super::{
    ChannelKind, Delivery, Notifier, NotifyError, Route, SendError, check_name, derived_name,
};
use crate::alarms::Severity;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain SMTP (port 25 by default); only for a relay on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

/// `[[notify.email]]`: one SMTP channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The channel's name in the outbox and the API (default `email-` and 8 hex digits of the
    /// SHA-256 of server and recipients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub host: String,
    /// Default by `tls`: 25, 587 or 465.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of a CA to trust besides the system's (e.g. the plant's own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; with `password` or `password_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of an environment variable holding the password (keeps it out of the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Sender, e.g. `"Gemba <gemba@plant.example>"`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    #[serde(default = "super::default_min_severity")]
    pub min_severity: Severity,
    /// Only alarms at this asset or below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_prefix: Option<String>,
    #[serde(default)]
    pub language: Language,
    /// Seconds one attempt (connect, TLS, AUTH, send) may take.
    #[serde(default = "ten")]
    pub timeout_s: u64,
    /// Wait before the first retry, doubled for each next one up to `notify.max_backoff_s`.
    #[serde(default = "super::default_backoff_ms")]
    pub backoff_ms: u64,
}

fn ten() -> u64 {
    10
}

impl EmailConfig {
    /// The channel's name: `name`, else derived from server and recipients.
    pub fn channel_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            derived_name(
                "email",
                &format!("{}:{:?}/{}", self.host, self.port, self.to.join(",")),
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }

    /// Errors start with the field name.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = &self.name {
            check_name(n)?;
        }
        if self.host.trim().is_empty() {
            return Err("host: the SMTP server is required".into());
        }
        if self.port == Some(0) {
            return Err("port: must be 1–65535".into());
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("from: {:?} is not an e-mail address: {e}", self.from))?;
        if self.to.is_empty() {
            return Err("to: at least one recipient is required".into());
        }
        for (i, t) in self.to.iter().enumerate() {
            t.parse::<Mailbox>()
                .map_err(|e| format!("to[{i}]: {t:?} is not an e-mail address: {e}"))?;
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err("password_env: give password or password_env, not both".into());
        }
        if self.user.is_none() && (self.password.is_some() || self.password_env.is_some()) {
            return Err("user: a password needs a user".into());
        }
        if self.user.is_some() && self.password.is_none() && self.password_env.is_none() {
            return Err("password: a user needs password or password_env".into());
        }
        if self.user.is_some() && self.tls == TlsMode::None {
            return Err(
                "tls: \"none\" would send the password in clear text; use \"starttls\" or \"tls\""
                    .into(),
            );
        }
        if self.timeout_s == 0 {
            return Err("timeout_s: must be at least 1".into());
        }
        if self.backoff_ms == 0 {
            return Err("backoff_ms: must be at least 1".into());
        }
        Ok(())
    }
}

/// Sends deliveries as e-mail to the configured recipients.
#[derive(Debug)]
pub struct EmailNotifier {
    name: String,
    route: Route,
    language: Language,
    backoff_ms: u64,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// The domain of `Message-ID`s: the sender's.
    id_domain: String,
    transport: SmtpTransport,
}

impl EmailNotifier {
    /// Builds the channel of `notify.email[index]` (reads `ca_file` and `password_env`).
    pub fn new(cfg: &EmailConfig, index: usize) -> Result<EmailNotifier, NotifyError> {
        let field = |f: &str| format!("notify.email[{index}].{f}");
        let bad = |f: &str, reason: String| NotifyError::Config {
            field: field(f),
            reason,
        };
        cfg.validate().map_err(|e| NotifyError::Config {
            field: format!("notify.email[{index}]"),
            reason: e,
        })?;
        let from: Mailbox = cfg.from.parse().map_err(|e| bad("from", format!("{e}")))?;
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse::<Mailbox>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("to", format!("{e}")))?;
        let mut builder = SmtpTransport::builder_dangerous(cfg.host.trim())
            .port(cfg.port())
            .timeout(Some(Duration::from_secs(cfg.timeout_s)));
        if cfg.tls != TlsMode::None {
            let mut params = TlsParameters::builder(cfg.host.trim().to_owned());
            if let Some(path) = &cfg.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| bad("ca_file", format!("cannot read {}: {e}", path.display())))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    bad(
                        "ca_file",
                        format!("{} is not a PEM certificate: {e}", path.display()),
                    )
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| bad("tls", format!("cannot set up TLS: {e}")))?;
            builder = builder.tls(match cfg.tls {
                TlsMode::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let Some(user) = &cfg.user {
            let password = match (&cfg.password, &cfg.password_env) {
                (Some(p), _) => p.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    bad(
                        "password_env",
                        format!("the environment variable {var} is not set"),
                    )
                })?,
                (None, None) => String::new(),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let id_domain = from.email.domain().trim_matches(['[', ']']).to_owned();
        Ok(EmailNotifier {
            name: cfg.channel_name(),
            route: Route {
                min_severity: cfg.min_severity,
                asset_prefix: cfg.asset_prefix.clone(),
            },
            language: cfg.language,
            backoff_ms: cfg.backoff_ms,
            from,
            to,
            id_domain,
            transport: builder.build(),
        })
    }

    /// The message of a delivery (also used by the tests).
    pub fn message(&self, d: &Delivery) -> Result<Message, SendError> {
        let text = templates::render(self.language, d);
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(text.subject)
            .message_id(Some(format!("<{}@{}>", d.id, self.id_domain)))
            .date_now()
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Gemba-Delivery"),
                d.id.clone(),
            ))
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            m = m.to(t.clone());
        }
        m.body(text.body)
            .map_err(|e| SendError::Message(e.to_string()))
    }
}

impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }
    fn route(&self) -> &Route {
        &self.route
    }
    fn first_backoff_ms(&self) -> u64 {
        self.backoff_ms
    }

    fn send(&self, d: &Delivery) -> Result<(), SendError> {
        let m = self.message(d)?;
        self.transport
            .send(&m)
            .map(|_| ())
            .map_err(|e| SendError::Smtp(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> EmailConfig {
        EmailConfig {
            name: Some("ops".into()),
            host: "127.0.0.1".into(),
            port: Some(2525),
            tls: TlsMode::None,
            ca_file: None,
            user: None,
            password: None,
            password_env: None,
            from: "Gemba <gemba@plant.example>".into(),
            to: vec!["ops@plant.example".into()],
            min_severity: Severity::Low,
            asset_prefix: None,
            language: Language::En,
            timeout_s: 10,
            backoff_ms: 1000,
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_field() {
        type Change = fn(&mut EmailConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.host = " ".into(), "host"),
            (|c| c.from = "not an address".into(), "from"),
            (|c| c.to = vec![], "to: at least one"),
            (|c| c.to = vec!["a@b".into(), "x".into()], "to[1]"),
            (
                |c| c.password = Some("p".into()),
                "user: a password needs a user",
            ),
            (
                |c| {
                    c.user = Some("u".into());
                    c.password = Some("p".into());
                },
                "tls: \"none\" would send the password",
            ),
            (
                |c| {
                    c.tls = TlsMode::Starttls;
                    c.user = Some("u".into());
                    c.password = Some("p".into());
                    c.password_env = Some("X".into());
                },
                "password_env: give password or password_env",
            ),
        ];
        assert!(cfg().validate().is_ok());
        for (change, needle) in cases {
            let mut c = cfg();
            change(&mut c);
            let err = c.validate().expect_err(needle);
            assert!(
                err.starts_with(needle),
                "{err:?} does not start with {needle:?}"
            );
        }
        assert_eq!(cfg().port(), 2525);
        let mut c = cfg();
        c.port = None;
        c.tls = TlsMode::Tls;
        assert_eq!(c.port(), 465);
    }

    #[test]
    fn a_missing_password_variable_or_ca_file_is_a_config_error() {
        let mut c = cfg();
        c.tls = TlsMode::Starttls;
        c.user = Some("u".into());
        c.password_env = Some("GEMBA_TEST_SURELY_UNSET_PASSWORD".into());
        let err = EmailNotifier::new(&c, 2)
            .expect_err("unset variable")
            .to_string();
        assert!(
            err.contains("notify.email[2].password_env")
                && err.contains("GEMBA_TEST_SURELY_UNSET_PASSWORD"),
            "{err}"
        );
        let mut c = cfg();
        c.tls = TlsMode::Starttls;
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let err = EmailNotifier::new(&c, 0)
            .expect_err("no CA file")
            .to_string();
        assert!(err.contains("notify.email[0].ca_file"), "{err}");
    }

    #[test]
    fn the_delivery_id_is_the_message_id() {
        let n = EmailNotifier::new(&cfg(), 0).expect("valid");
        let mut d = crate::notify::outbox::tests::delivery("gemba-abc", 1, "ops");
        d.notification.asset = "s1/a1".into();
        let m = n.message(&d).expect("message");
        let text = String::from_utf8(m.formatted()).expect("utf-8");
        assert!(
            text.contains("Message-ID: <gemba-abc@plant.example>"),
            "{text}"
        );
        assert!(text.contains("X-Gemba-Delivery: gemba-abc"), "{text}");
        assert!(text.contains("To: ops@plant.example"), "{text}");
    }
}
