//! Gemba's HTTP API: the axum router, its wire types and the OpenAPI document.
//!
//! Architecture invariant: handlers translate HTTP to engine calls and back; they hold no state of
//! their own and contain no domain logic. Errors become responses only in [`error`]. Every route is
//! listed in `openapi.json`, which a test checks against the router.

mod alarms;
pub mod error;
pub mod inspect;
pub mod live;
pub mod logistics;
mod production;
mod routes;
pub mod security;
pub mod server;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gemba_engine::Engine;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use gemba_engine::auth::Role;
pub use security::Access;

/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every API route as (method, path, who may use it). The OpenAPI test checks it against
/// `openapi.json`, the access middleware reads it for every request, and the security test walks
/// it with every role. A route the router has but this table lacks is refused to everyone.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("post", "/api/v1/ingest", Access::Role(Role::Operator)),
    ("get", "/api/v1/assets", Access::Role(Role::Viewer)),
    ("post", "/api/v1/assets", Access::Role(Role::Engineer)),
    ("get", "/api/v1/signals", Access::Role(Role::Viewer)),
    ("post", "/api/v1/signals", Access::Role(Role::Engineer)),
    ("get", "/api/v1/lots", Access::Role(Role::Viewer)),
    ("post", "/api/v1/lots", Access::Role(Role::Operator)),
    ("get", "/api/v1/operators", Access::Role(Role::Viewer)),
    ("post", "/api/v1/operators", Access::Role(Role::Engineer)),
    ("get", "/api/v1/shifts", Access::Role(Role::Viewer)),
    ("post", "/api/v1/shifts", Access::Role(Role::Engineer)),
    ("get", "/api/v1/latest", Access::Role(Role::Viewer)),
    ("get", "/api/v1/series", Access::Role(Role::Viewer)),
    ("get", "/api/v1/events", Access::Role(Role::Viewer)),
    ("get", "/api/v1/stream/latest", Access::Role(Role::Viewer)),
    ("get", "/api/v1/stats", Access::Role(Role::Viewer)),
    ("get", "/api/v1/spc", Access::Role(Role::Viewer)),
    ("get", "/api/v1/models", Access::Role(Role::Viewer)),
    ("post", "/api/v1/models", Access::Role(Role::Engineer)),
    (
        "get",
        "/api/v1/models/{name}/{version}",
        Access::Role(Role::Viewer),
    ),
    (
        "post",
        "/api/v1/models/{name}/{version}/activate",
        Access::Role(Role::Engineer),
    ),
    ("get", "/api/v1/alarm-rules", Access::Role(Role::Viewer)),
    ("post", "/api/v1/alarm-rules", Access::Role(Role::Engineer)),
    (
        "get",
        "/api/v1/alarm-rules/{name}",
        Access::Role(Role::Viewer),
    ),
    (
        "delete",
        "/api/v1/alarm-rules/{name}",
        Access::Role(Role::Engineer),
    ),
    ("get", "/api/v1/alarms", Access::Role(Role::Viewer)),
    ("get", "/api/v1/alarms/{id}", Access::Role(Role::Viewer)),
    (
        "post",
        "/api/v1/alarms/{id}/{action}",
        Access::Role(Role::Operator),
    ),
    ("get", "/api/v1/notifications", Access::Role(Role::Viewer)),
    ("get", "/api/v1/datasets/parts", Access::Role(Role::Viewer)),
    (
        "get",
        "/api/v1/datasets/horizon",
        Access::Role(Role::Viewer),
    ),
    ("get", "/api/v1/health", Access::Role(Role::Viewer)),
    ("get", "/api/v1/oee", Access::Role(Role::Viewer)),
    ("get", "/api/v1/states", Access::Role(Role::Viewer)),
    (
        "get",
        "/api/v1/production/config",
        Access::Role(Role::Viewer),
    ),
    (
        "put",
        "/api/v1/production/config",
        Access::Role(Role::Engineer),
    ),
    ("get", "/api/v1/work-orders", Access::Role(Role::Viewer)),
    ("post", "/api/v1/work-orders", Access::Role(Role::Operator)),
    (
        "get",
        "/api/v1/work-orders/{id}",
        Access::Role(Role::Viewer),
    ),
    (
        "post",
        "/api/v1/work-orders/{id}/{action}",
        Access::Role(Role::Operator),
    ),
    ("get", "/api/v1/maintenance", Access::Role(Role::Viewer)),
    ("get", "/api/v1/openapi.json", Access::Public),
    ("get", "/healthz", Access::Public),
    ("get", "/metrics", Access::Role(Role::Viewer)),
];

/// The dashboard's own files: public, so that the sign-in page can load.
pub const WEB_ROUTES: &[(&str, &str, Access)] = &[
    ("get", "/", Access::Public),
    ("get", "/web/{*path}", Access::Public),
    ("get", "/i18n/{file}", Access::Public),
];

/// Every route table of the API.
pub fn route_tables() -> impl Iterator<Item = &'static (&'static str, &'static str, Access)> {
    ROUTES
        .iter()
        .chain(logistics::ROUTES)
        .chain(inspect::ROUTES)
        .chain(security::ROUTES)
        .chain(WEB_ROUTES)
}

/// Who may use `method` (lower case or upper case) on the route `template`; `None` for a route
/// missing from the tables.
pub fn access(method: &str, template: &str) -> Option<Access> {
    route_tables()
        .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && *p == template)
        .map(|(_, _, a)| *a)
}

async fn refuse_declared_oversize(
    axum::extract::State((max, metrics)): axum::extract::State<(
        usize,
        Arc<gemba_engine::metrics::Metrics>,
    )>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max as u64 => {
            metrics.payload_too_large.inc();
            ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "request body of {len} bytes is larger than server.max_body_bytes ({max}); split the batch"
            ),
        )
        .into_response()
        }
        _ => next.run(req).await,
    }
}

/// Builds the router over a running engine.
pub fn router(engine: Arc<Engine>) -> Router {
    let cfg = engine.config().server.clone();
    Router::new()
        .route("/", get(web::index))
        .route("/web/{*path}", get(web::file))
        .route("/i18n/{file}", get(web::i18n))
        .route("/api/v1/ingest", post(routes::ingest))
        .route(
            "/api/v1/assets",
            get(routes::assets).post(routes::define_node),
        )
        .route(
            "/api/v1/signals",
            get(routes::signals).post(routes::define_signal),
        )
        .route("/api/v1/lots", get(routes::lots).post(routes::define_lot))
        .route(
            "/api/v1/operators",
            get(routes::operators).post(routes::define_operator),
        )
        .route(
            "/api/v1/shifts",
            get(routes::shifts).post(routes::define_shift),
        )
        .route("/api/v1/latest", get(routes::latest))
        .route("/api/v1/series", get(routes::series))
        .route("/api/v1/events", get(routes::events))
        .route("/api/v1/stream/latest", get(routes::stream_latest))
        .route("/api/v1/stats", get(routes::stats))
        .route("/api/v1/spc", get(routes::spc))
        .route(
            "/api/v1/models",
            get(routes::models).post(routes::register_model),
        )
        .route(
            "/api/v1/models/{name}/{version}",
            get(routes::model_artifact),
        )
        .route(
            "/api/v1/models/{name}/{version}/activate",
            post(routes::activate_model),
        )
        .route(
            "/api/v1/alarm-rules",
            get(alarms::rules).post(alarms::create_rule),
        )
        .route(
            "/api/v1/alarm-rules/{name}",
            get(alarms::rule).delete(alarms::delete_rule),
        )
        .route("/api/v1/alarms", get(alarms::alarms))
        .route("/api/v1/alarms/{id}", get(alarms::alarm))
        .route("/api/v1/alarms/{id}/{action}", post(alarms::act))
        .route("/api/v1/notifications", get(alarms::notifications))
        .route("/api/v1/datasets/parts", get(alarms::parts_dataset))
        .route("/api/v1/datasets/horizon", get(alarms::horizon_dataset))
        .route("/api/v1/health", get(alarms::health))
        .merge(production_routes())
        .route("/api/v1/openapi.json", get(routes::openapi))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .merge(logistics::routes())
        .merge(inspect::routes())
        .merge(security::routes())
        // After every route: authentication, roles, rate limit and audit (docs/SECURITY.md).
        .route_layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            security::authorize,
        ))
        .fallback(routes::not_found)
        // Chunked bodies are limited while they stream; a declared Content-Length is refused
        // before any of the body is read, so the client learns it without sending it.
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            (cfg.max_body_bytes, engine.metrics_arc()),
            refuse_declared_oversize,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(cfg.request_timeout_s),
        ))
        .layer(axum::middleware::map_response(web::security_headers))
        .layer(axum::Extension(live::LiveHub::new(&engine)))
        .with_state(engine)
}

/// Production and maintenance (issue 7): states, OEE, work orders, MTBF/MTTR.
fn production_routes() -> Router<Arc<Engine>> {
    use axum::routing::put;
    Router::new()
        .route("/api/v1/oee", get(production::oee))
        .route("/api/v1/states", get(production::states))
        .route(
            "/api/v1/production/config",
            get(production::config).merge(put(production::set_config)),
        )
        .route(
            "/api/v1/work-orders",
            get(production::work_orders).post(production::create_work_order),
        )
        .route("/api/v1/work-orders/{id}", get(production::work_order))
        .route("/api/v1/work-orders/{id}/{action}", post(production::act))
        .route("/api/v1/maintenance", get(production::maintenance))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path the router registers (read from the `.route("…"` calls of the sources that
    /// build it) has an access rule; a route someone adds later without one fails here (and is
    /// refused to everyone at run time).
    #[test]
    fn every_registered_route_has_an_access_rule() {
        let sources = [
            include_str!("lib.rs"),
            include_str!("logistics.rs"),
            include_str!("inspect.rs"),
            include_str!("security.rs"),
        ];
        let mut found = 0;
        for src in sources {
            let mut rest = src;
            while let Some(i) = rest.find(".route(") {
                rest = &rest[i + 7..];
                let trimmed = rest.trim_start();
                let Some(lit) = trimmed.strip_prefix('"') else {
                    continue;
                };
                let path = &lit[..lit.find('"').expect("closing quote")];
                if !path.starts_with('/') {
                    continue;
                }
                found += 1;
                assert!(
                    route_tables().any(|(_, p, _)| *p == path),
                    "the router serves {path} but no route table gives it an access rule"
                );
            }
        }
        assert!(found > 50, "only {found} routes found in the sources");
        assert_eq!(access("GET", "/api/v1/not-a-route"), None);
        assert_eq!(access("get", "/healthz"), Some(Access::Public));
        assert_eq!(
            access("POST", "/api/v1/alarm-rules"),
            Some(Access::Role(Role::Engineer))
        );
        assert_eq!(
            access("POST", "/api/v1/inspect"),
            Some(Access::Role(Role::Operator))
        );
        assert_eq!(
            access("GET", "/api/v1/inspections/{id}/heatmap.png"),
            Some(Access::Role(Role::Viewer))
        );
    }

    /// Every route is documented, and the document names no route the router lacks.
    #[test]
    fn openapi_matches_the_router() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let all: Vec<_> = ROUTES
            .iter()
            .chain(logistics::ROUTES)
            .chain(inspect::ROUTES)
            .chain(security::ROUTES)
            .collect();
        for (method, path, _) in &all {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is not in openapi.json"
            );
        }
        let documented: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |o| o.len()))
            .sum();
        assert_eq!(
            documented,
            all.len(),
            "openapi.json documents routes the router does not have"
        );
    }
}
