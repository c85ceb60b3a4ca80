//! The HTTP client of a running Gemba server that the command line uses (`gemba query`, `train
//! --register`, `bench`, …): error bodies become errors with the server's message, and the API
//! token of `GEMBA_TOKEN` goes with every request.

use anyhow::{Context, bail};
use serde_json::Value;

/// An HTTP client that returns error bodies instead of failing on 4xx/5xx and sends the API
/// token of `GEMBA_TOKEN` (docs/SECURITY.md) with every request when it is set.
pub fn agent() -> ureq::Agent {
    with_token(ureq::Agent::config_builder().http_status_as_error(false))
        .build()
        .new_agent()
}

/// Adds `Authorization: Bearer $GEMBA_TOKEN` to every request of an agent when the variable is set.
pub fn with_token(
    builder: ureq::config::ConfigBuilder<ureq::typestate::AgentScope>,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    match std::env::var("GEMBA_TOKEN") {
        Ok(token) if !token.trim().is_empty() => {
            let value = format!("Bearer {}", token.trim());
            builder.middleware(
                move |mut req: ureq::http::Request<ureq::SendBody>,
                      next: ureq::middleware::MiddlewareNext| {
                    if let Ok(v) = ureq::http::HeaderValue::from_str(&value) {
                        req.headers_mut()
                            .insert(ureq::http::header::AUTHORIZATION, v);
                    }
                    next.handle(req)
                },
            )
        }
        _ => builder,
    }
}

/// GETs `url` with query parameters; returns the body text or the server's error message.
pub fn get(agent: &ureq::Agent, url: &str, params: &[(&str, String)]) -> anyhow::Result<String> {
    let mut req = agent.get(url);
    for (k, v) in params {
        req = req.query(*k, v);
    }
    let resp = req
        .call()
        .with_context(|| format!("cannot reach {url}; is `gemba serve` running? (--server)"))?;
    reply(resp)
}

/// POSTs a JSON body to `url`; returns the body text or the server's error message.
pub fn post_json(agent: &ureq::Agent, url: &str, body: &[u8]) -> anyhow::Result<String> {
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .with_context(|| format!("cannot reach {url}; is `gemba serve` running? (--server)"))?;
    reply(resp)
}

/// The body of a reply, or an error with the server's message when the status is not a success.
pub fn reply(mut resp: ureq::http::Response<ureq::Body>) -> anyhow::Result<String> {
    let status = resp.status();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .context("cannot read the response")?;
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("server answered {status}: {msg}");
    }
    Ok(body)
}
