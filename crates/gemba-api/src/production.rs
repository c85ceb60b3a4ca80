//! Production and maintenance routes: machine states, OEE with its losses and causes, the
//! production configuration, work orders and MTBF/MTTR. Handlers only translate; the engine's
//! `production` and `maintenance` modules decide. Every engine call reads the store, so each runs
//! on the blocking pool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gemba_engine::maintenance::{NewWorkOrder, WorkOrderAction, WorkOrderQuery, WorkOrderState};
use gemba_engine::production::{By, ProductionConfig};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{ApiResult, AppState, Params, blocking, body_or_error, parse_json};

const DAY_MS: i64 = 86_400_000;

/// `from`/`to` with defaults: the last `days` days up to now.
fn range(p: &Params, now: i64, days: i64) -> ApiResult<(i64, i64)> {
    let to = p.ts("to")?.unwrap_or(now);
    let from = p.ts("from")?.unwrap_or(to - days * DAY_MS);
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "query parameter to={to}: must be after from ({from})"
        )));
    }
    Ok((from, to))
}

/// `GET /api/v1/oee?asset=&from=&to=&by=total|hour|shift|day`
pub async fn oee(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["asset", "from", "to", "by"])?;
    let asset = p.required("asset")?.trim_end_matches('/').to_owned();
    let by: By = match p.get("by") {
        None => By::Total,
        Some(v) => v.parse().map_err(|e| ApiError::param("by", v, e))?,
    };
    let (from, to) = range(&p, engine.now(), 1)?;
    let report = blocking(move || engine.oee(&asset, from, to, by)).await?;
    Ok(Json(report).into_response())
}

/// `GET /api/v1/states?machine=&from=&to=`
pub async fn states(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["machine", "from", "to"])?;
    let machine = p.required("machine")?.trim_end_matches('/').to_owned();
    let (from, to) = range(&p, engine.now(), 1)?;
    let m = machine.clone();
    let segments = blocking(move || engine.machine_states(&m, from, to)).await?;
    Ok(
        Json(json!({"machine": machine, "from": from, "to": to, "states": segments}))
            .into_response(),
    )
}

/// `GET /api/v1/production/config`
pub async fn config(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    Ok(Json(engine.production().config()).into_response())
}

/// `PUT /api/v1/production/config` with the whole configuration.
pub async fn set_config(State(engine): AppState, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let body = body_or_error(body)?;
    let cfg: ProductionConfig = parse_json("production config", &body)?;
    let e = engine.clone();
    blocking(move || e.set_production_config(cfg)).await?;
    Ok(Json(engine.production().config()).into_response())
}

/// `GET /api/v1/work-orders?state=&asset=&assignee=&limit=`
pub async fn work_orders(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["state", "asset", "assignee", "limit", "pseudonymise"])?;
    let states = match p.get("state") {
        None | Some("all") => None,
        Some("open") => Some(vec![
            WorkOrderState::Open,
            WorkOrderState::Assigned,
            WorkOrderState::InProgress,
        ]),
        Some(list) => Some(
            list.split(',')
                .map(|s| s.parse::<WorkOrderState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::param("state", list, e))?,
        ),
    };
    let q = WorkOrderQuery {
        states,
        asset_prefix: p.get("asset").map(|a| a.trim_end_matches('/').to_owned()),
        assignee: p.get("assignee").map(str::to_owned),
        limit: p.usize("limit", 500, 100_000)?,
    };
    let list = json!({"work_orders": engine.maintenance().query(&q)});
    crate::routes::export_json(&engine, &list, p.pseudonymise()?)
}

/// `POST /api/v1/work-orders` with `{machine?, title?, description?, alarm?, assignee?}`. The
/// creator is the signed-in principal; a scoped one may only create work orders for its assets.
pub async fn create_work_order(
    State(engine): AppState,
    principal: Option<axum::Extension<gemba_engine::auth::Principal>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_or_error(body)?;
    let mut n: NewWorkOrder = parse_json("work order", &body)?;
    let p = principal.as_ref().map(|x| &x.0);
    if let Some(p) = p {
        // The machine the engine will use: the body's, else the alarm's.
        let machine = n
            .machine
            .as_deref()
            .map(|m| m.trim_end_matches('/').to_owned())
            .or_else(|| {
                n.alarm
                    .and_then(|id| engine.alarms().get(id))
                    .map(|a| a.asset)
            });
        crate::security::check_asset_scope(p, machine)?;
    }
    n.by = crate::security::actor(p, Some(&n.by));
    let w = blocking(move || engine.create_work_order(n)).await?;
    Ok((StatusCode::CREATED, Json(w)).into_response())
}

fn wo_id(raw: &str) -> ApiResult<u64> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("work order id {raw:?} is not a whole number")))
}

/// `GET /api/v1/work-orders/{id}`
pub async fn work_order(State(engine): AppState, Path(id): Path<String>) -> ApiResult {
    let id = wo_id(&id)?;
    engine
        .maintenance()
        .get(id)
        .map(|w| Json(w).into_response())
        .ok_or_else(|| ApiError::not_found(format!("work order {id}")))
}

/// `POST /api/v1/work-orders/{id}/{action}` with `{assignee?, text?, parts?}`; action is
/// `assign`, `start`, `done`, `note` or `parts`. Impossible transitions answer 409. Who acted is
/// the signed-in principal.
pub async fn act(
    State(engine): AppState,
    principal: Option<axum::Extension<gemba_engine::auth::Principal>>,
    Path((id, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = wo_id(&id)?;
    let Some(action) = gemba_engine::maintenance::WorkOrderStep::parse(&action) else {
        return Err(ApiError::not_found(format!(
            "{} is not a work-order action: assign, start, done, note or parts",
            gemba_core::quote_clipped(&action, 64)
        )));
    };
    let body = body_or_error(body)?;
    let mut a: WorkOrderAction = parse_json("work-order action", &body)?;
    if let Some(axum::Extension(p)) = &principal {
        crate::security::check_asset_scope(p, engine.maintenance().get(id).map(|w| w.machine))?;
    }
    a.by = crate::security::actor(principal.as_ref().map(|x| &x.0), Some(&a.by));
    let now = engine.now();
    let w = blocking(move || engine.maintenance().act(id, action, a, now)).await?;
    Ok(Json(w).into_response())
}

/// `GET /api/v1/maintenance?machine=&from=&to=`: MTBF, MTTR, work orders and failures.
pub async fn maintenance(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["machine", "from", "to"])?;
    let machine = p.required("machine")?.to_owned();
    let (from, to) = range(&p, engine.now(), 30)?;
    let m = blocking(move || engine.machine_maintenance(&machine, from, to)).await?;
    Ok(Json(m).into_response())
}
