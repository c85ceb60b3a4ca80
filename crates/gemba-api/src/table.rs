//! The route table. Every route of the API is one [`Route`]: its method, its path, who may use it
//! and its handler. The router ([`crate::router`]), the access check of every request
//! ([`crate::access`], read by `security::authorize`) and the OpenAPI check are all built from the
//! tables, so a route cannot be served without an access rule or be missing from the document.
//!
//! Each file of handlers keeps its own table next to its handlers (`ROUTES` in `lib.rs`,
//! `logistics.rs`, `inspect.rs`, `security.rs`); [`crate::route_tables`] chains them. Adding a
//! route is a handler, one `route!` line in its file's table and its operation in `openapi.json`.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::MethodRouter;
use gemba_engine::Engine;

use crate::security::Access;

/// One route of the API.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// The path template as axum matches it (`/api/v1/alarms/{id}`).
    pub path: &'static str,
    pub access: Access,
    /// Builds the handler for `method` (a function so that the table can be a constant).
    pub(crate) handler: fn() -> MethodRouter<Arc<Engine>>,
}

/// `route!(GET, "/path", access, handler)`: a [`Route`] whose method and handler's method are
/// written once.
macro_rules! route {
    ($method:ident, $path:literal, $access:expr, $handler:path) => {
        $crate::table::Route {
            method: axum::http::Method::$method,
            path: $path,
            access: $access,
            handler: || axum::routing::on(axum::routing::MethodFilter::$method, $handler),
        }
    };
}
pub(crate) use route;

/// The router of `routes`: one entry per path, the methods of a path merged.
pub(crate) fn router<'a>(routes: impl Iterator<Item = &'a Route>) -> axum::Router<Arc<Engine>> {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<Engine>>)> = Vec::new();
    for r in routes {
        let handler = (r.handler)();
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(handler),
            None => by_path.push((r.path, handler)),
        }
    }
    by_path
        .into_iter()
        .fold(axum::Router::new(), |router, (path, m)| {
            router.route(path, m)
        })
}
