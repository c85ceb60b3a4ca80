//! Visual inspection over HTTP (docs/NN.md#visual-inspection): `POST /api/v1/inspect` takes the raw
//! bytes of a PNG or JPEG, `GET /api/v1/inspections[/{id}[/heatmap.png]]` read the stored results.
//! Scoring, validation and storage are the engine's (`gemba_engine::inspection`); this file only
//! translates HTTP.

use crate::table::{Route, route};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gemba_core::time::format_rfc3339;
use gemba_engine::auth::Principal;
use gemba_engine::inspection::NewInspection;
use gemba_store::{InspectionQuery, InspectionRecord};
use serde_json::{Value, json};

use crate::Role;
use crate::error::ApiError;
use crate::routes::{ApiResult, AppState, Params, blocking, body_or_error};
use crate::security::{Access, AuditNote, check_asset_scope};

/// The routes of this file. An inspection camera station is a machine with an operator token
/// (scoped to it, like a machine that ingests); reading results is open to every role, like the
/// other read routes.
pub(crate) const ROUTES: &[Route] = &[
    route!(
        POST,
        "/api/v1/inspect",
        Access::Role(Role::Operator),
        inspect
    ),
    route!(
        GET,
        "/api/v1/inspections",
        Access::Role(Role::Viewer),
        inspections
    ),
    route!(
        GET,
        "/api/v1/inspections/{id}",
        Access::Role(Role::Viewer),
        inspection
    ),
    route!(
        GET,
        "/api/v1/inspections/{id}/heatmap.png",
        Access::Role(Role::Viewer),
        heat_map
    ),
];

/// The wire form of a result: the stored record, the model as `name@version`, the time as RFC 3339
/// and the heat map's URL.
fn wire(r: &InspectionRecord) -> Value {
    json!({
        "id": r.id,
        "ts": r.ts,
        "time": format_rfc3339(r.ts),
        "model": format!("{}@{}", r.model, r.version),
        "model_name": r.model,
        "model_version": r.version,
        "score": r.score,
        "threshold": r.threshold,
        "verdict": r.verdict,
        "part": r.part,
        "lot": r.lot,
        "machine": r.machine,
        "width": r.width,
        "height": r.height,
        "heat_max": r.heat_max,
        "by": r.by,
        "heat_map_url": format!("/api/v1/inspections/{}/heatmap.png", r.id),
    })
}

/// `image/png` or `image/jpeg` (parameters after `;` ignored); 415 for anything else.
fn image_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if ["image/png", "image/jpeg", "image/jpg"]
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        if ctype.is_empty() {
            "no content-type; send the image bytes as image/png or image/jpeg".to_owned()
        } else {
            format!(
                "content-type {ctype:?} is not accepted; send the image bytes as image/png or image/jpeg (not multipart)"
            )
        },
    ))
}

/// `POST /api/v1/inspect?model=NAME[@VERSION]&part=&lot=&machine=` with the image as the body.
pub async fn inspect(
    State(engine): AppState,
    principal: Option<axum::Extension<Principal>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let p = Params::parse(q, &["model", "part", "lot", "machine"])?;
    let opt = |k: &str| p.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    let req = NewInspection {
        model: p.required("model")?.to_owned(),
        part: opt("part"),
        lot: opt("lot"),
        machine: opt("machine"),
        by: principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), |p| p.0.name.clone()),
    };
    if let Some(axum::Extension(who)) = &principal {
        // A camera's token is scoped to its machine, as for ingest: it inspects for that machine.
        if let Some(scope) = &who.scope
            && req.machine.is_none()
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "outside_scope",
                format!(
                    "{} is limited to {scope:?}: name the machine (machine=…) the image was taken at",
                    who.name
                ),
            ));
        }
        check_asset_scope(who, req.machine.clone())?;
    }
    image_content_type(&headers)?;
    let body = body_or_error(body)?;
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request body is empty; send the image bytes",
        ));
    }
    let rec = blocking(move || engine.inspect(&req, &body)).await?;
    let mut r = (StatusCode::CREATED, Json(wire(&rec))).into_response();
    r.extensions_mut().insert(AuditNote {
        target: format!("inspection {}", rec.id),
        detail: format!(
            "{}@{} {} score {:.4} threshold {:.4}",
            rec.model, rec.version, rec.verdict, rec.score, rec.threshold
        ),
        actor: None,
    });
    Ok(r)
}

/// `GET /api/v1/inspections?part=&lot=&machine=&verdict=&from=&to=&limit=`
pub async fn inspections(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &["part", "lot", "machine", "verdict", "from", "to", "limit"],
    )?;
    let verdict = match p.get("verdict") {
        None | Some("") => None,
        Some(v @ ("pass" | "fail")) => Some(v.to_owned()),
        Some(v) => return Err(ApiError::param("verdict", v, "must be pass or fail")),
    };
    let query = InspectionQuery {
        from: p.ts("from")?.unwrap_or(i64::MIN),
        to: p.ts("to")?.unwrap_or(i64::MAX),
        part: p.get("part").map(str::to_owned),
        lot: p.get("lot").map(str::to_owned),
        machine: p.get("machine").map(str::to_owned),
        verdict,
        limit: p.usize("limit", 100, 10_000)?,
    };
    let rows = blocking(move || engine.inspections(&query)).await?;
    Ok(Json(json!({"inspections": rows.iter().map(wire).collect::<Vec<_>>()})).into_response())
}

fn inspection_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("inspection id {id:?} is not a whole number")))
}

fn no_such(id: i64) -> ApiError {
    ApiError::not_found(format!("no inspection {id}"))
}

/// `GET /api/v1/inspections/{id}`
pub async fn inspection(
    State(engine): AppState,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Params::parse(q, &[])?;
    let id = inspection_id(&id)?;
    let rec = blocking(move || engine.inspection(id))
        .await?
        .ok_or_else(|| no_such(id))?;
    Ok(Json(wire(&rec)).into_response())
}

/// `GET /api/v1/inspections/{id}/heatmap.png`
pub async fn heat_map(
    State(engine): AppState,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    Params::parse(q, &[])?;
    let id = inspection_id(&id)?;
    let png = blocking(move || engine.inspection_heat_map(id))
        .await?
        .ok_or_else(|| no_such(id))?;
    // A stored result never changes.
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
        ],
        png,
    )
        .into_response())
}
