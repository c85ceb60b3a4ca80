//! The dashboard's static files, embedded in the binary from `crates/gemba-api/web/` (no CDN, no
//! build step): the single-page app at `/`, its modules and styles under `/web/…`, the vendored
//! uPlot chart library under `/web/vendor/…` and the translations under `/i18n/…`.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
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

/// What the dashboard loads: its own scripts, styles, images (heat maps; the `data:` favicon) and
/// API calls, nothing inline (styles are set through the CSSOM, which CSP allows), nothing from
/// elsewhere, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the browser security headers to every answer (docs/SECURITY.md#browser-headers): the
/// dashboard's Content-Security-Policy, no framing (clickjacking), no content sniffing and no
/// referrer to other sites.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ] {
        h.entry(name).or_insert(value);
    }
    r
}
