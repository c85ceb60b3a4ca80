//! The dashboard's static files, embedded in the binary from `crates/gemba-api/web/` (no CDN, no
//! build step): the single-page app at `/`, its modules and styles under `/web/…`, the vendored
//! uPlot chart library under `/web/vendor/…` and the translations under `/i18n/…`.

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

/// (path below `/web/` or `/i18n/`, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/ui.js"),
    ),
    (
        "login.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/login.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/api.js"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/i18n.js"),
    ),
    (
        "pages/production.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/production.js"),
    ),
    (
        "pages/maintenance.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/maintenance.js"),
    ),
    (
        "pages/overview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/overview.js"),
    ),
    (
        "pages/machine.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/machine.js"),
    ),
    (
        "pages/logistics.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/logistics.js"),
    ),
    (
        "pages/energy.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/energy.js"),
    ),
    (
        "pages/events.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/events.js"),
    ),
    (
        "pages/models.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/models.js"),
    ),
    (
        "pages/alarms.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/alarms.js"),
    ),
    (
        "pages/quality.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/pages/quality.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/style.css"),
    ),
    (
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/vendor/uPlot.min.css"),
    ),
    (
        "vendor/LICENSE.uPlot",
        "text/plain; charset=utf-8",
        include_bytes!("../web/vendor/LICENSE.uPlot"),
    ),
];

const I18N: &[(&str, &[u8])] = &[
    ("en.json", include_bytes!("../web/i18n/en.json")),
    ("zh-CN.json", include_bytes!("../web/i18n/zh-CN.json")),
];

fn asset(content_type: &str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../web/index.html"))
}

/// `GET /web/{*path}`
pub async fn file(Path(path): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ct, body)| asset(ct, body))
        .ok_or_else(|| ApiError::not_found(format!("no dashboard file {path:?}")))
}

/// `GET /i18n/{file}`
pub async fn i18n(Path(file): Path<String>) -> Result<Response, ApiError> {
    I18N.iter()
        .find(|(p, _)| *p == file)
        .map(|(_, body)| asset("application/json; charset=utf-8", body))
        .ok_or_else(|| ApiError::not_found(format!("no translation {file:?}")))
}
