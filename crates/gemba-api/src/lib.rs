//! Gemba's HTTP API: the axum router, its wire types and the OpenAPI document.
//!
//! Architecture invariant: handlers translate HTTP to engine calls and back and contain no domain
//! logic. Errors become responses only in [`error`]. Every route is one line of a route table
//! (`table`), which builds the router and the access check; every route is listed in
//! `openapi.json`, which a test checks against the tables.

mod alarms;
pub mod error;
pub mod inspect;
pub mod live;
pub mod logistics;
mod production;
mod routes;
pub mod security;
pub mod server;
mod table;
mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use gemba_engine::Engine;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;
pub use gemba_engine::auth::Role;
pub use security::Access;
pub use table::Route;
use table::route;

/// The OpenAPI 3.1 document served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The core routes (ingest, assets and signals, queries, models, alarms, production and
/// maintenance, the API document, health and metrics).
pub(crate) const ROUTES: &[Route] = &[
    route!(
        POST,
        "/api/v1/ingest",
        Access::Role(Role::Operator),
        routes::ingest
    ),
    route!(
        GET,
        "/api/v1/assets",
        Access::Role(Role::Viewer),
        routes::assets
    ),
    route!(
        POST,
        "/api/v1/assets",
        Access::Role(Role::Engineer),
        routes::define_node
    ),
    route!(
        GET,
        "/api/v1/signals",
        Access::Role(Role::Viewer),
        routes::signals
    ),
    route!(
        POST,
        "/api/v1/signals",
        Access::Role(Role::Engineer),
        routes::define_signal
    ),
    route!(
        GET,
        "/api/v1/lots",
        Access::Role(Role::Viewer),
        routes::lots
    ),
    route!(
        POST,
        "/api/v1/lots",
        Access::Role(Role::Operator),
        routes::define_lot
    ),
    route!(
        GET,
        "/api/v1/operators",
        Access::Role(Role::Viewer),
        routes::operators
    ),
    route!(
        POST,
        "/api/v1/operators",
        Access::Role(Role::Engineer),
        routes::define_operator
    ),
    route!(
        GET,
        "/api/v1/shifts",
        Access::Role(Role::Viewer),
        routes::shifts
    ),
    route!(
        POST,
        "/api/v1/shifts",
        Access::Role(Role::Engineer),
        routes::define_shift
    ),
    route!(
        GET,
        "/api/v1/latest",
        Access::Role(Role::Viewer),
        routes::latest
    ),
    route!(
        GET,
        "/api/v1/series",
        Access::Role(Role::Viewer),
        routes::series
    ),
    route!(
        GET,
        "/api/v1/events",
        Access::Role(Role::Viewer),
        routes::events
    ),
    route!(
        GET,
        "/api/v1/stream/latest",
        Access::Role(Role::Viewer),
        routes::stream_latest
    ),
    route!(
        GET,
        "/api/v1/stats",
        Access::Role(Role::Viewer),
        routes::stats
    ),
    route!(GET, "/api/v1/spc", Access::Role(Role::Viewer), routes::spc),
    route!(
        GET,
        "/api/v1/models",
        Access::Role(Role::Viewer),
        routes::models
    ),
    route!(
        POST,
        "/api/v1/models",
        Access::Role(Role::Engineer),
        routes::register_model
    ),
    route!(
        GET,
        "/api/v1/models/{name}/{version}",
        Access::Role(Role::Viewer),
        routes::model_artifact
    ),
    route!(
        POST,
        "/api/v1/models/{name}/{version}/activate",
        Access::Role(Role::Engineer),
        routes::activate_model
    ),
    route!(
        GET,
        "/api/v1/alarm-rules",
        Access::Role(Role::Viewer),
        alarms::rules
    ),
    route!(
        POST,
        "/api/v1/alarm-rules",
        Access::Role(Role::Engineer),
        alarms::create_rule
    ),
    route!(
        GET,
        "/api/v1/alarm-rules/{name}",
        Access::Role(Role::Viewer),
        alarms::rule
    ),
    route!(
        DELETE,
        "/api/v1/alarm-rules/{name}",
        Access::Role(Role::Engineer),
        alarms::delete_rule
    ),
    route!(
        GET,
        "/api/v1/alarms",
        Access::Role(Role::Viewer),
        alarms::alarms
    ),
    route!(
        GET,
        "/api/v1/alarms/{id}",
        Access::Role(Role::Viewer),
        alarms::alarm
    ),
    route!(
        POST,
        "/api/v1/alarms/{id}/{action}",
        Access::Role(Role::Operator),
        alarms::act
    ),
    route!(
        GET,
        "/api/v1/notifications",
        Access::Role(Role::Viewer),
        alarms::notifications
    ),
    route!(
        GET,
        "/api/v1/datasets/parts",
        Access::Role(Role::Viewer),
        alarms::parts_dataset
    ),
    route!(
        GET,
        "/api/v1/datasets/horizon",
        Access::Role(Role::Viewer),
        alarms::horizon_dataset
    ),
    route!(
        GET,
        "/api/v1/health",
        Access::Role(Role::Viewer),
        alarms::health
    ),
    route!(
        GET,
        "/api/v1/oee",
        Access::Role(Role::Viewer),
        production::oee
    ),
    route!(
        GET,
        "/api/v1/states",
        Access::Role(Role::Viewer),
        production::states
    ),
    route!(
        GET,
        "/api/v1/production/config",
        Access::Role(Role::Viewer),
        production::config
    ),
    route!(
        PUT,
        "/api/v1/production/config",
        Access::Role(Role::Engineer),
        production::set_config
    ),
    route!(
        GET,
        "/api/v1/work-orders",
        Access::Role(Role::Viewer),
        production::work_orders
    ),
    route!(
        POST,
        "/api/v1/work-orders",
        Access::Role(Role::Operator),
        production::create_work_order
    ),
    route!(
        GET,
        "/api/v1/work-orders/{id}",
        Access::Role(Role::Viewer),
        production::work_order
    ),
    route!(
        POST,
        "/api/v1/work-orders/{id}/{action}",
        Access::Role(Role::Operator),
        production::act
    ),
    route!(
        GET,
        "/api/v1/maintenance",
        Access::Role(Role::Viewer),
        production::maintenance
    ),
    route!(GET, "/api/v1/openapi.json", Access::Public, routes::openapi),
    route!(GET, "/healthz", Access::Public, routes::healthz),
    route!(GET, "/metrics", Access::Role(Role::Viewer), routes::metrics),
];

/// The dashboard's own files: public, so that the sign-in page can load.
pub(crate) const WEB_ROUTES: &[Route] = &[
    route!(GET, "/", Access::Public, web::index),
    route!(GET, "/web/{*path}", Access::Public, web::file),
    route!(GET, "/i18n/{file}", Access::Public, web::i18n),
];

/// Every route of the API.
pub fn route_tables() -> impl Iterator<Item = &'static Route> {
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
        .find(|r| r.method.as_str().eq_ignore_ascii_case(method) && r.path == template)
        .map(|r| r.access)
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
    table::router(route_tables())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables build a router (axum refuses a path or a method twice by panicking), and the
    /// access check reads them.
    #[test]
    fn the_route_tables_build_the_router_and_the_access_check() {
        let all: Vec<&Route> = route_tables().collect();
        assert!(all.len() > 70, "only {} routes", all.len());
        for (i, a) in all.iter().enumerate() {
            assert!(
                !all[..i]
                    .iter()
                    .any(|b| b.method == a.method && b.path == a.path),
                "{} {} is in the route tables twice",
                a.method,
                a.path
            );
        }
        let _router = table::router(route_tables());
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
        for r in &all {
            let method = r.method.as_str().to_ascii_lowercase();
            assert!(
                paths.get(r.path).and_then(|p| p.get(&method)).is_some(),
                "{method} {} is not in openapi.json",
                r.path
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
