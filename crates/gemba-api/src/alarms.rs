//! Alarm routes: rules (create, list, show, delete) and the alarm book (history query, one alarm,
//! acknowledge, comment, close). Handlers only translate; the engine's `alarms` module decides.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gemba_engine::alarms::{AlarmQuery, AlarmState, RuleSpec, Severity};
use gemba_engine::notify::{DeliveryQuery, DeliveryState};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{ApiResult, AppState, Params, blocking, body_or_error, parse_json};

/// `GET /api/v1/alarm-rules`
pub async fn rules(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    Ok(Json(engine.alarms().rules()).into_response())
}

/// `POST /api/v1/alarm-rules` with a rule; fits it on its baseline and starts it. Its creator is
/// the signed-in principal (`?by=` only names it with authentication off).
pub async fn create_rule(
    State(engine): AppState,
    principal: Option<axum::Extension<gemba_engine::auth::Principal>>,
    RawQuery(q): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let p = Params::parse(q, &["by"])?;
    let by = Some(crate::security::actor(
        principal.as_ref().map(|x| &x.0),
        p.get("by"),
    ));
    let body = body_or_error(body)?;
    let spec: RuleSpec = parse_json("alarm rule", &body)?;
    let rule = blocking(move || engine.create_alarm_rule(spec, by)).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

/// `GET /api/v1/alarm-rules/{name}`
pub async fn rule(State(engine): AppState, Path(name): Path<String>) -> ApiResult {
    engine
        .alarms()
        .rule(&name)
        .map(|r| Json(r).into_response())
        .ok_or_else(|| ApiError::not_found(format!("alarm rule {name:?}")))
}

/// `DELETE /api/v1/alarm-rules/{name}`: stops the rule; its alarms stay in the history.
pub async fn delete_rule(State(engine): AppState, Path(name): Path<String>) -> ApiResult {
    blocking(move || engine.alarms().remove_rule(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/alarms?state=open|active,acknowledged,…&severity=&asset=&rule=&from=&to=&limit=`
pub async fn alarms(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &[
            "state",
            "severity",
            "asset",
            "rule",
            "from",
            "to",
            "limit",
            "pseudonymise",
        ],
    )?;
    let states = match p.get("state") {
        None | Some("all") => None,
        Some("open") => Some(vec![
            AlarmState::Active,
            AlarmState::Acknowledged,
            AlarmState::Cleared,
        ]),
        Some(list) => Some(
            list.split(',')
                .map(|s| s.parse::<AlarmState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::param("state", list, e))?,
        ),
    };
    let min_severity = p
        .get("severity")
        .map(|s| {
            s.parse::<Severity>()
                .map_err(|e| ApiError::param("severity", s, e))
        })
        .transpose()?;
    let query = AlarmQuery {
        states,
        min_severity,
        asset_prefix: p.get("asset").map(|a| a.trim_end_matches('/').to_owned()),
        rule: p.get("rule").map(str::to_owned),
        from: p.ts("from")?,
        to: p.ts("to")?,
        limit: p.usize("limit", 500, 100_000)?,
    };
    let list = engine.alarms().query(&query);
    let doc = json!({"version": engine.alarms().version(), "alarms": list});
    crate::routes::export_json(&engine, &doc, p.pseudonymise()?)
}

/// `GET /api/v1/notifications?state=pending|sent|expired&channel=&alarm=&limit=`: the outbox's
/// deliveries (webhooks, e-mail), newest first, with attempts, next attempt and last error; the
/// counts by state; the configured channels.
pub async fn notifications(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["state", "channel", "alarm", "limit"])?;
    let state = p
        .get("state")
        .filter(|s| *s != "all")
        .map(|s| {
            s.parse::<DeliveryState>()
                .map_err(|e| ApiError::param("state", s, e))
        })
        .transpose()?;
    let alarm_id = p
        .get("alarm")
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| ApiError::param("alarm", a, "not an alarm id (a whole number)"))
        })
        .transpose()?;
    let query = DeliveryQuery {
        state,
        channel: p.get("channel").map(str::to_owned),
        alarm_id,
        limit: p.usize("limit", 200, 10_000)?,
    };
    let outbox = engine.notifications();
    let (list, counts) = outbox.query(&query);
    let channels: Vec<_> = outbox
        .channels()
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "kind": kind}))
        .collect();
    Ok(
        Json(json!({"counts": counts, "channels": channels, "notifications": list}))
            .into_response(),
    )
}

/// `GET /api/v1/datasets/parts?machine=…&from=…&to=…`: one CSV row per measured part — the
/// machine's gauges at that instant and the label `quality` (`defect` outside the spec limits of
/// its quality characteristic, else `ok`); the training set of a defect-prediction model.
pub async fn parts_dataset(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["machine", "from", "to", "pseudonymise"])?;
    // Accepted so that every export takes it; the table holds signal values and the quality
    // label of each part, no personal data.
    p.pseudonymise()?;
    let machine = p.required("machine")?.to_owned();
    let to = p.ts("to")?.unwrap_or_else(|| engine.now());
    let from = p.ts("from")?.unwrap_or(to - 7 * 86_400_000);
    let table = blocking(move || engine.parts_dataset(&machine, from, to)).await?;
    Ok(crate::routes::csv_response("parts", table.to_csv()))
}

/// `GET /api/v1/datasets/horizon?machine=…&from=…&to=…&step=1m&horizon=30m[&window=10m,1h][&stats=mean,std,slope]`:
/// one CSV row per step while the machine is not down — its gauges at that instant (and their
/// statistics over each trailing window) and the label `failure` (the mode of its first failure
/// within the horizon, else `ok`); the training set of failure-within-horizon prediction.
pub async fn horizon_dataset(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &[
            "machine", "from", "to", "step", "horizon", "window", "stats",
        ],
    )?;
    let to = p.ts("to")?.unwrap_or_else(|| engine.now());
    let from = p.ts("from")?.unwrap_or(to - 7 * 86_400_000);
    let dur = |k: &str, default: i64| -> ApiResult<i64> {
        match p.get(k) {
            None => Ok(default),
            Some(v) => gemba_core::time::parse_duration_ms(v)
                .map_err(|e| ApiError::param(k, v, e))
                .and_then(|ms| {
                    if ms > 0 {
                        Ok(ms)
                    } else {
                        Err(ApiError::param(k, v, "must be positive"))
                    }
                }),
        }
    };
    let req = gemba_engine::datasets::HorizonRequest {
        machine: p.required("machine")?.to_owned(),
        from,
        to,
        step_ms: dur("step", 60_000)?,
        horizon_ms: dur("horizon", 30 * 60_000)?,
        windows: match p.get("window") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|w| {
                    gemba_core::time::parse_duration_ms(w.trim())
                        .and_then(|ms| gemba_engine::datasets::check_window(ms).map(|()| ms))
                        .map_err(|e| ApiError::param("window", w, e))
                })
                .collect::<ApiResult<_>>()?,
        },
        stats: match p.get("stats") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(|s| {
                    gemba_analytics::window::Stat::parse(s.trim()).ok_or_else(|| {
                        ApiError::param("stats", s, "use mean, std, slope, min or max")
                    })
                })
                .collect::<ApiResult<_>>()?,
        },
    };
    let table = blocking(move || engine.horizon_dataset(&req)).await?;
    Ok(crate::routes::csv_response("horizon", table.to_csv()))
}

/// `GET /api/v1/health?machine=…[&signal=vibration_rms][&threshold=11][&baseline_from=…&baseline_to=…][&to=…]`:
/// health index and remaining useful life (running hours, 95 % band) from a degradation
/// indicator; the baseline is a period of normal running (default: the first 2 h of the 24 h
/// before `to`).
pub async fn health(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &[
            "machine",
            "signal",
            "threshold",
            "baseline_from",
            "baseline_to",
            "to",
            "window",
        ],
    )?;
    let to = p.ts("to")?.unwrap_or_else(|| engine.now());
    let from = p.ts("baseline_from")?.unwrap_or(to - 24 * 3_600_000);
    let until = p.ts("baseline_to")?.unwrap_or(from + 2 * 3_600_000);
    let threshold = match p.get("threshold") {
        None => 11.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ApiError::param("threshold", v, "not a finite number"))?,
    };
    let req = gemba_engine::health::HealthRequest {
        machine: p.required("machine")?.to_owned(),
        signal: p.get("signal").unwrap_or("vibration_rms").to_owned(),
        threshold,
        baseline: (from, until),
        to,
        window_ms: match p.get("window") {
            None => Some(12 * 3_600_000),
            Some("all") => None,
            Some(w) => Some(
                gemba_core::time::parse_duration_ms(w)
                    .map_err(|e| ApiError::param("window", w, e))?,
            ),
        },
    };
    let h = blocking(move || engine.machine_health(&req)).await?;
    Ok(Json(h).into_response())
}

fn alarm_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("alarm id {raw:?} is not a whole number")))
}

/// `GET /api/v1/alarms/{id}`
pub async fn alarm(State(engine): AppState, Path(id): Path<String>) -> ApiResult {
    let id = alarm_id(&id)?;
    engine
        .alarms()
        .get(id)
        .map(|a| Json(a).into_response())
        .ok_or_else(|| ApiError::not_found(format!("alarm {id}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    /// Ignored with authentication on: the signed-in principal acts.
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// `POST /api/v1/alarms/{id}/{action}` with `{"text": "…"}`; action is `ack`, `comment` or
/// `close`. Who acted is the signed-in principal (`by` only names it with authentication off).
pub async fn act(
    State(engine): AppState,
    principal: Option<axum::Extension<gemba_engine::auth::Principal>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = alarm_id(&id)?;
    let Some(action) = gemba_engine::alarms::AlarmAction::parse(&action) else {
        return Err(ApiError::not_found(format!(
            "{} is not an alarm action: ack, comment or close",
            gemba_core::quote_clipped(&action, 64)
        )));
    };
    let body = body_or_error(body)?;
    let a: Action = parse_json("alarm action", &body)?;
    if let Some(axum::Extension(p)) = &principal {
        crate::security::check_asset_scope(p, engine.alarms().get(id).map(|x| x.asset))?;
    }
    // Who acted is whoever signed in, not what the body claims. Without sign-in (authentication
    // off) the body must name someone: an alarm's history says who acted.
    let signed_in = principal
        .as_ref()
        .is_some_and(|x| x.0.kind != gemba_engine::auth::PrincipalKind::Anonymous);
    if !signed_in && a.by.as_deref().is_none_or(|b| b.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "by: name who acts on the alarm (required when nobody is signed in)",
        ));
    }
    let by = crate::security::actor(principal.as_ref().map(|x| &x.0), a.by.as_deref());
    let now = engine.now();
    let alarm =
        blocking(move || engine.alarms().act(id, action, &by, a.text.as_deref(), now)).await?;
    Ok(Json(alarm).into_response())
}
