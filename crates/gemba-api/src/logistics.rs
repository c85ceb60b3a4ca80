//! Handlers of the logistics, genealogy and energy routes (docs/LOGISTICS.md). Lots and moves
//! arrive as events through `POST /api/v1/ingest`; these routes only read.

use crate::table::{Route, route};
use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use gemba_core::Timestamp;
use gemba_core::time::format_rfc3339;
use gemba_engine::energy::Period;
use gemba_engine::logistics::{Direction, ProcessOptions};
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{ApiResult, AppState, Format, Params, csv_field, csv_response};
use crate::{Access, Role};

/// The routes of this file.
pub(crate) const ROUTES: &[Route] = &[
    route!(
        GET,
        "/api/v1/logistics/lots",
        Access::Role(Role::Viewer),
        lots
    ),
    route!(
        GET,
        "/api/v1/logistics/lots/{lot}",
        Access::Role(Role::Viewer),
        lot
    ),
    route!(
        GET,
        "/api/v1/logistics/inventory",
        Access::Role(Role::Viewer),
        inventory
    ),
    route!(
        GET,
        "/api/v1/logistics/location",
        Access::Role(Role::Viewer),
        location
    ),
    route!(
        GET,
        "/api/v1/logistics/dwell",
        Access::Role(Role::Viewer),
        dwell
    ),
    route!(
        GET,
        "/api/v1/logistics/lead-times",
        Access::Role(Role::Viewer),
        lead_times
    ),
    route!(
        GET,
        "/api/v1/genealogy/{lot}",
        Access::Role(Role::Viewer),
        genealogy
    ),
    route!(
        GET,
        "/api/v1/energy/report",
        Access::Role(Role::Viewer),
        energy_report
    ),
    route!(
        GET,
        "/api/v1/energy/lots",
        Access::Role(Role::Viewer),
        energy_lots
    ),
];

const DAY_MS: i64 = 86_400_000;

/// `from`/`to`, by default the last 24 hours.
fn range(p: &Params, now: Timestamp) -> ApiResult<(Timestamp, Timestamp)> {
    let to = p.ts("to")?.unwrap_or(now);
    let from = p.ts("from")?.unwrap_or(to - DAY_MS);
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({}) must be before to ({})",
            format_rfc3339(from),
            format_rfc3339(to)
        )));
    }
    Ok((from, to))
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// `GET /api/v1/logistics/lots?product=&limit=`: lots, newest first.
async fn lots(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["product", "limit"])?;
    let limit = p.usize("limit", 1000, 100_000)?;
    let product = p.get("product").map(str::to_owned);
    let lots = engine
        .with_ledger(move |l| l.lots(product.as_deref(), limit))
        .await?;
    let lots: Vec<_> = lots
        .into_iter()
        .map(|v| {
            let state = lot_state(&engine, &v);
            let mut o = serde_json::to_value(v).unwrap_or_default();
            o["state"] = state.into();
            o
        })
        .collect();
    Ok(Json(lots).into_response())
}

/// `consumed`, `in_process` (some of it at a machine, line or other asset), `available` (in a
/// store) or `gone` (moved out of every location).
fn lot_state(engine: &gemba_engine::Engine, v: &gemba_engine::logistics::LotView) -> &'static str {
    if v.consumed_by.is_some() {
        "consumed"
    } else if v.positions.iter().any(|p| engine.is_asset(&p.location)) {
        "in_process"
    } else if v.positions.is_empty() {
        "gone"
    } else {
        "available"
    }
}

/// `GET /api/v1/logistics/lots/{lot}`: one lot, its stays and its stored moves.
async fn lot(State(engine): AppState, Path(lot): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[])?;
    let id = lot.clone();
    let (view, stays) = engine
        .with_ledger(move |l| (l.lot(&id), l.stays(&id)))
        .await?;
    let view = view.ok_or_else(|| ApiError::not_found(format!("unknown lot {lot:?}")))?;
    let moves = engine.lot_history(&lot).await?;
    let state = lot_state(&engine, &view);
    let mut view = serde_json::to_value(view).unwrap_or_default();
    view["state"] = state.into();
    Ok(Json(json!({"lot": view, "stays": stays, "moves": moves})).into_response())
}

#[derive(Serialize)]
struct InventoryRow {
    location: String,
    /// `wip` at a machine, line or other asset; `store` elsewhere.
    kind: &'static str,
    product: String,
    quantity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lots: Option<usize>,
}

/// `GET /api/v1/logistics/inventory?at=&location=&product=&kind=wip|store&format=`.
async fn inventory(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["at", "location", "product", "kind", "format"])?;
    let at = p.ts("at")?;
    let kind = match p.get("kind") {
        None => None,
        Some(k @ ("wip" | "store")) => Some(k.to_owned()),
        Some(v) => return Err(ApiError::param("kind", v, "must be wip or store")),
    };
    let format = p.format()?;
    let (location, product) = (
        p.get("location").map(str::to_owned),
        p.get("product").map(str::to_owned),
    );
    let rows = engine
        .with_ledger(move |l| l.inventory(at, location.as_deref(), product.as_deref()))
        .await?;
    let rows: Vec<InventoryRow> = rows
        .into_iter()
        .map(|r| InventoryRow {
            kind: if engine.is_asset(&r.location) {
                "wip"
            } else {
                "store"
            },
            location: r.location,
            product: r.product,
            quantity: r.quantity,
            lots: r.lots,
        })
        .filter(|r| kind.as_deref().is_none_or(|k| k == r.kind))
        .collect();
    if format == Format::Csv {
        let mut out = String::from("location,kind,product,quantity\n");
        for r in &rows {
            let _ = writeln!(
                out,
                "{},{},{},{}",
                csv_field(&r.location),
                r.kind,
                csv_field(&r.product),
                r.quantity
            );
        }
        return Ok(csv_response("inventory", out));
    }
    Ok(Json(json!({"at": at, "rows": rows})).into_response())
}

/// `GET /api/v1/logistics/location?location=&at=&from=&to=&limit=`: the lots at one location (now
/// or as of `at`) and the moves into and out of it in `[from, to)` (default: the last 24 hours).
async fn location(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["location", "at", "from", "to", "limit"])?;
    let location = p.required("location")?.to_owned();
    let at = p.ts("at")?;
    let (from, to) = range(&p, engine.now())?;
    let limit = p.usize("limit", 1000, 100_000)?;
    let moves = engine.location_moves(&location, from, to, limit).await?;
    let loc = location.clone();
    let lots = engine.with_ledger(move |l| l.lots_at(&loc, at)).await?;
    Ok(Json(json!({
        "location": location,
        "kind": if engine.is_asset(&location) { "wip" } else { "store" },
        "at": at,
        "lots": lots,
        "moves": moves
    }))
    .into_response())
}

/// `GET /api/v1/logistics/dwell?location=&from=&to=`: dwell time per location.
async fn dwell(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["location", "from", "to"])?;
    let (from, to) = range(&p, engine.now())?;
    let location = p.get("location").map(str::to_owned);
    let rows = engine
        .with_ledger(move |l| l.dwell(location.as_deref(), from, to))
        .await?;
    Ok(Json(rows).into_response())
}

/// `GET /api/v1/logistics/lead-times?target=shipping&from=&to=`: creation → arrival at `target`
/// of the lots created in the range.
async fn lead_times(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["target", "from", "to"])?;
    let (from, to) = range(&p, engine.now())?;
    let target = p.get("target").unwrap_or("shipping").to_owned();
    let t = target.clone();
    let lots = engine
        .with_ledger(move |l| l.lead_times(&t, from, to))
        .await?;
    let n = lots.len();
    let mean = (n > 0).then(|| lots.iter().map(|(_, s)| s).sum::<f64>() / n as f64);
    let lots: Vec<_> = lots
        .into_iter()
        .map(|(lot, s)| json!({"lot": lot, "lead_time_s": s}))
        .collect();
    Ok(Json(json!({"target": target, "lots": n, "mean_s": mean, "per_lot": lots})).into_response())
}

/// `GET /api/v1/genealogy/{lot}?direction=backward|forward&process=tree|lot|false&readings=N&format=`.
async fn genealogy(
    State(engine): AppState,
    Path(lot): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(
        q,
        &["direction", "process", "readings", "format", "pseudonymise"],
    )?;
    let pseudonymise = p.pseudonymise()?;
    let direction = match p.get("direction") {
        None | Some("backward") => Direction::Backward,
        Some("forward") => Direction::Forward,
        Some(v) => {
            return Err(ApiError::param(
                "direction",
                v,
                "must be backward or forward",
            ));
        }
    };
    let (process, only_root) = match p.get("process") {
        None | Some("tree") => (true, false),
        Some("lot") => (true, true),
        Some("false") => (false, false),
        Some(v) => return Err(ApiError::param("process", v, "must be tree, lot or false")),
    };
    let readings = match p.get("readings") {
        None => 0,
        Some(_) => p.usize("readings", 0, 100_000)?,
    };
    let format = p.format()?;
    let g = engine
        .genealogy(
            &lot,
            direction,
            ProcessOptions {
                process: process && format == Format::Json,
                only_root,
                readings,
                ..ProcessOptions::default()
            },
        )
        .await?;
    if format == Format::Csv {
        let mut out =
            String::from("lot,product,quantity,unit,created,depth,via,location,arrived,left\n");
        for n in &g.lots {
            let base = format!(
                "{},{},{},{},{},{},{}",
                csv_field(&n.lot),
                csv_field(&n.product),
                n.quantity,
                csv_field(&n.unit),
                format_rfc3339(n.created),
                n.depth,
                csv_field(n.via.as_deref().unwrap_or(""))
            );
            if n.stays.is_empty() {
                let _ = writeln!(out, "{base},,,");
            }
            for s in &n.stays {
                let _ = writeln!(
                    out,
                    "{base},{},{},{}",
                    csv_field(&s.location),
                    format_rfc3339(s.start),
                    s.end.map(format_rfc3339).unwrap_or_default()
                );
            }
        }
        // The CSV has lots, products and locations only: no personal data to replace.
        return Ok(csv_response(&format!("genealogy-{lot}"), out));
    }
    crate::routes::export_json(&engine, &g, pseudonymise)
}

/// `GET /api/v1/energy/report?asset=&from=&to=&by=shift|day|month|total&format=`.
async fn energy_report(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["asset", "from", "to", "by", "format"])?;
    let (from, to) = range(&p, engine.now())?;
    let by: Period = match p.get("by") {
        None => Period::Day,
        Some(v) => v.parse().map_err(|e: String| ApiError::param("by", v, e))?,
    };
    let asset = p.get("asset").unwrap_or("").to_owned();
    if !asset.is_empty() && !engine.is_asset(&asset) {
        return Err(ApiError::param(
            "asset",
            &asset,
            "is not an asset of the plant",
        ));
    }
    let format = p.format()?;
    let rows = engine.energy_report(&asset, from, to, by).await?;
    if format == Format::Csv {
        let mut out = String::from(
            "asset,level,period,period_start,kwh,idle_kwh,good,scrap,kwh_per_good,co2e_kg,timezone,period_start_local\n",
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&r.asset),
                r.level,
                csv_field(&r.period),
                format_rfc3339(r.period_start),
                r.kwh,
                r.idle_kwh,
                r.good,
                r.scrap,
                num(r.kwh_per_good),
                num(r.co2e_kg),
                csv_field(&r.timezone),
                r.period_start_local
            );
        }
        return Ok(csv_response("energy-report", out));
    }
    Ok(Json(json!({
        "from": from,
        "to": to,
        "co2e_configured": engine.config().energy.co2e_kg_per_kwh.is_some()
            || !engine.config().energy.sites.is_empty(),
        "rows": rows
    }))
    .into_response())
}

/// `GET /api/v1/energy/lots?from=&to=&product=&lot=&format=`: kWh and CO2e per lot and product.
async fn energy_lots(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "product", "lot", "format"])?;
    let (from, to) = match p.get("lot") {
        // One lot: whenever it was created.
        Some(_) if p.get("from").is_none() && p.get("to").is_none() => (i64::MIN / 2, i64::MAX / 2),
        _ => range(&p, engine.now())?,
    };
    let format = p.format()?;
    let lot = p.get("lot").map(str::to_owned);
    if let Some(l) = &lot {
        let id = l.clone();
        if engine.with_ledger(move |x| x.lot(&id)).await?.is_none() {
            return Err(ApiError::not_found(format!("unknown lot {l:?}")));
        }
    }
    let (lots, products) = engine
        .lot_energy(from, to, p.get("product").map(str::to_owned), lot)
        .await?;
    if format == Format::Csv {
        let mut out = String::from(
            "lot,product,quantity,unit,created,kwh,kwh_per_unit,co2e_kg,co2e_kg_per_unit\n",
        );
        for l in &lots {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                csv_field(&l.lot),
                csv_field(&l.product),
                l.quantity,
                csv_field(&l.unit),
                format_rfc3339(l.created),
                l.kwh,
                num(l.kwh_per_unit),
                num(l.co2e_kg),
                num(l.co2e_kg_per_unit)
            );
        }
        return Ok(csv_response("energy-lots", out));
    }
    Ok(Json(json!({"lots": lots, "products": products})).into_response())
}
