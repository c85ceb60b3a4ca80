//! Authentication, authorisation, rate limits and the audit trail of the HTTP API
//! (docs/SECURITY.md).
//!
//! One middleware runs on every matched route: it finds the route's [`Access`] in the route table
//! ([`crate::access`]), identifies the caller (bearer token or session cookie), answers 401 or 403,
//! applies the caller's rate limit (429), runs the handler, and writes every change (any method but
//! GET/HEAD, except accepted data on `/api/v1/ingest`) and every refused change to the audit log
//! before the answer leaves. A route missing from the table is refused to everyone: new routes are
//! closed until someone decides who may use them.

use crate::table::{Route, route};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gemba_core::quote_clipped;
use gemba_core::time::format_rfc3339;
use gemba_engine::Engine;
use gemba_engine::auth::{AuthError, Principal, PrincipalKind, Role};
use gemba_store::{AuditEntry, AuditQuery};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{ApiResult, AppState, Format, Params, blocking, csv_field, csv_response};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (the dashboard's files, login, liveness).
    Public,
    /// Any signed-in principal, also one that still has to change a one-time password.
    SignedIn,
    /// This role or a higher one.
    Role(Role),
}

/// The session cookie.
pub const SESSION_COOKIE: &str = "gemba_session";

/// The routes of this file.
pub(crate) const ROUTES: &[Route] = &[
    route!(POST, "/api/v1/auth/login", Access::Public, login),
    route!(POST, "/api/v1/auth/logout", Access::SignedIn, logout),
    route!(GET, "/api/v1/auth/me", Access::SignedIn, me),
    route!(
        POST,
        "/api/v1/auth/password",
        Access::SignedIn,
        change_password
    ),
    route!(GET, "/api/v1/users", Access::Role(Role::Admin), users),
    route!(POST, "/api/v1/users", Access::Role(Role::Admin), add_user),
    route!(
        DELETE,
        "/api/v1/users/{name}",
        Access::Role(Role::Admin),
        delete_user
    ),
    route!(
        POST,
        "/api/v1/users/{name}/password",
        Access::Role(Role::Admin),
        reset_password
    ),
    route!(GET, "/api/v1/tokens", Access::Role(Role::Admin), tokens),
    route!(
        POST,
        "/api/v1/tokens",
        Access::Role(Role::Admin),
        create_token
    ),
    route!(
        DELETE,
        "/api/v1/tokens/{id}",
        Access::Role(Role::Admin),
        revoke_token
    ),
    route!(GET, "/api/v1/audit", Access::Role(Role::Admin), audit),
];

/// What a handler adds to the audit entry of its request (the object and details).
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub target: String,
    pub detail: String,
    /// The actor when the request had none yet (a login names the user it tried).
    pub actor: Option<String>,
}

fn note(target: impl Into<String>, detail: impl Into<String>) -> AuditNote {
    AuditNote {
        target: target.into(),
        detail: detail.into(),
        actor: None,
    }
}

/// Token buckets per principal (or client address when anonymous).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one token from `key`'s bucket; `Err(seconds to wait)` when it is empty.
    fn take(&self, key: &str, rate: f64, burst: f64) -> Result<(), f64> {
        let now = Instant::now();
        let mut map = self.buckets.lock();
        if map.len() > 100_000 {
            // Forget idle buckets (full ones carry no state) so that many clients cannot grow this.
            map.retain(|_, (tokens, t)| {
                *tokens + now.duration_since(*t).as_secs_f64() * rate < burst
            });
        }
        let (tokens, last) = map.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / rate.max(1e-9))
        }
    }
}

fn limiter() -> &'static RateLimiter {
    static L: std::sync::OnceLock<RateLimiter> = std::sync::OnceLock::new();
    L.get_or_init(RateLimiter::default)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The caller, from `Authorization: Bearer …` or the session cookie. `Ok(None)`: no credentials.
fn identify(engine: &Engine, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
    if !engine.config().auth.enabled {
        return Ok(Some(Principal::anonymous_admin()));
    }
    let now = engine.now();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or_default();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(|| {
                AuthError::Unauthenticated(
                    "Authorization must be \"Bearer <token>\" (tokens start with gmb_)".into(),
                )
            })?;
        return engine.auth().token(token.trim(), now).map(Some);
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(sid) => engine.auth().session(&sid, now).map(Some),
        None => Ok(None),
    }
}

fn unauthenticated(message: impl Into<String>) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gemba\""),
    );
    r
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Routes whose bodies are not (only) JSON; their handlers check the content type themselves
/// (`/ingest`: JSON or the line protocol, `/inspect`: images).
const NON_JSON_BODIES: &[&str] = &["/api/v1/ingest", "/api/v1/inspect"];

/// Cross-site request forgery (docs/SECURITY.md#cross-site-requests). A browser attaches the
/// session cookie to requests that another page makes it send (SameSite=Strict does not stop a
/// page on another port or subdomain of the same site), and with authentication off nothing is
/// needed at all. Browsers say where a request comes from; scripts send neither header, and a
/// bearer token is never attached by a browser on its own. So a change without a bearer token is
/// refused when `Sec-Fetch-Site` says another site (or another origin of this site) sent it, or
/// when `Origin` is not this server's own origin (the `Host` header, with `https` under TLS).
fn cross_site(headers: &HeaderMap, tls: bool) -> Option<String> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let text = |h: &str| headers.get(h).map(|v| v.to_str().unwrap_or("(not text)"));
    if let Some(site) = text("sec-fetch-site")
        && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
    {
        return Some(format!(
            "Sec-Fetch-Site: {site}: another site's page sent this request"
        ));
    }
    let origin = text("origin")?;
    let scheme = if tls { "https" } else { "http" };
    let own = text("host").map(|h| format!("{scheme}://{h}"));
    if own
        .as_deref()
        .is_some_and(|own| own.eq_ignore_ascii_case(origin.trim()))
    {
        return None;
    }
    Some(format!(
        "Origin {} is not this server's origin {}",
        quote_clipped(origin, 200),
        quote_clipped(own.as_deref().unwrap_or("(no Host header)"), 200)
    ))
}

/// Whether a request has a body: one that is not known to be empty (a `Content-Length` other than
/// 0, a chunked one, or a body built in process).
fn has_body(req: &Request) -> bool {
    use axum::body::HttpBody;
    req.body().size_hint().exact() != Some(0)
}

/// Whether the request's `Content-Type` is `application/json` (parameters such as `charset`
/// allowed).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m.eq_ignore_ascii_case("application/json"))
}

/// The media type of `Content-Type` without its parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
}

/// The request checks that do not depend on who asks: cross-site changes (403) and JSON bodies
/// that do not say they are JSON (415, for every caller: a cross-site `text/plain` form or
/// `fetch` is how a JSON body gets past a browser's CORS preflight).
fn hygiene(req: &Request, template: &str, tls: bool) -> Option<Response> {
    if !is_change(req.method()) {
        return None;
    }
    if let Some(reason) = cross_site(req.headers(), tls) {
        return Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                format!(
                    "{reason}; changes from a browser must come from this server's own pages \
                     (scripts: send Authorization: Bearer <API token>)"
                ),
            )
            .into_response(),
        );
    }
    if !NON_JSON_BODIES.contains(&template) && has_body(req) && !is_json(req.headers()) {
        return Some(
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "{} {template} takes a JSON body: send Content-Type: application/json (got {})",
                    req.method(),
                    media_type(req.headers())
                        .map_or_else(|| "none".to_owned(), |m| quote_clipped(m, 100))
                ),
            )
            .into_response(),
        );
    }
    None
}

/// The middleware described in the module documentation.
pub async fn authorize(State(engine): AppState, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let uri_path = req.uri().path().to_owned();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let access = crate::access(method.as_str(), &template);
    let who = identify(&engine, req.headers());
    let (principal, mut denied): (Option<Principal>, Option<Response>) = match (access, who) {
        (None, _) => (
            None,
            Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("{method} {template} has no access rule; it is closed to everyone"),
                )
                .into_response(),
            ),
        ),
        (Some(Access::Public), Ok(p)) => (p, None),
        (Some(Access::Public), Err(_)) => (None, None),
        (Some(_), Err(e)) => (None, Some(unauthenticated(e.to_string()))),
        (Some(_), Ok(None)) => (
            None,
            Some(unauthenticated(
                "sign in (POST /api/v1/auth/login) or send Authorization: Bearer <API token>",
            )),
        ),
        (Some(Access::SignedIn), Ok(Some(p))) => (Some(p), None),
        (Some(Access::Role(need)), Ok(Some(p))) => {
            if p.must_change_password {
                let r = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "password_change_required",
                    "this account has a one-time password: set a new one with POST /api/v1/auth/password first",
                )
                .into_response();
                (Some(p), Some(r))
            } else if p.role < need {
                let r = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "{} has role {}; {method} {template} needs {need} or higher",
                        p.name, p.role
                    ),
                )
                .into_response();
                (Some(p), Some(r))
            } else {
                (Some(p), None)
            }
        }
    };
    if denied.is_none() {
        denied = hygiene(&req, &template, engine.config().server.tls.is_some());
    }
    let response = match denied {
        Some(r) => {
            let reason = r.status().as_u16().to_string();
            engine
                .metrics()
                .auth_denied
                .get_or_create(&gemba_engine::metrics::ReasonLabel { reason })
                .inc();
            r
        }
        None => {
            let cfg = &engine.config().auth;
            let key = match (&principal, &peer) {
                (Some(p), _) if p.kind != PrincipalKind::Anonymous => p.name.clone(),
                (_, Some(ip)) => format!("addr:{ip}"),
                _ => "anonymous".to_owned(),
            };
            match limiter().take(&key, cfg.rate_per_s, f64::from(cfg.burst.max(1))) {
                Err(wait) => {
                    engine.metrics().rate_limited.inc();
                    let mut r = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "more than {} requests per second (burst {}) from {key}; retry in {:.1} s",
                            cfg.rate_per_s, cfg.burst, wait
                        ),
                    )
                    .into_response();
                    let secs = wait.ceil().max(1.0) as u64;
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    r
                }
                Ok(()) => {
                    if let Some(p) = &principal {
                        req.extensions_mut().insert(p.clone());
                    }
                    next.run(req).await
                }
            }
        }
    };
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        engine.metrics().payload_too_large.inc();
    }
    let quiet = template == "/api/v1/ingest" && status.is_success();
    // Requests over the general rate limit are counted, not audited (a flood would fill the
    // log); refused sign-in attempts are always audited.
    let flood = status == StatusCode::TOO_MANY_REQUESTS && template != "/api/v1/auth/login";
    if is_change(&method) && !quiet && !flood {
        let n = response
            .extensions()
            .get::<AuditNote>()
            .cloned()
            .unwrap_or_default();
        let actor = principal
            .as_ref()
            .map(|p| p.name.clone())
            .or(n.actor)
            .unwrap_or_else(|| format!("-{}", peer.map(|p| format!(" ({p})")).unwrap_or_default()));
        let entry = AuditEntry {
            id: 0,
            ts: engine.now(),
            actor,
            action: format!("{method} {template}"),
            target: if n.target.is_empty() {
                uri_path
            } else {
                n.target
            },
            status: status.as_u16(),
            detail: n.detail,
        };
        let e2 = engine.clone();
        let written = tokio::task::spawn_blocking(move || e2.auth().audit(entry)).await;
        if !matches!(written, Ok(Ok(_))) {
            engine.metrics().audit_failures.inc();
            tracing::error!(?written, "cannot write the audit log");
        }
    }
    response
}

/// 403 when a scoped principal acts on an object of an asset outside its scope (an unknown
/// object passes: the handler answers 404 for it).
pub(crate) fn check_asset_scope(p: &Principal, asset: Option<String>) -> ApiResult<()> {
    match asset {
        Some(a) if !p.may_touch(&a) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "outside_scope",
            format!(
                "{a:?} is outside {}'s scope {:?}",
                p.name,
                p.scope.as_deref().unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

/// Who is recorded as having done something: the signed-in principal, whatever a request body or
/// query claims. Only with authentication off (`anonymous`: there are no identities to spoof) is the
/// name the client gave kept as a label (checked by the engine like any text), `anonymous` when it
/// gave none.
pub(crate) fn actor(p: Option<&Principal>, claimed: Option<&str>) -> String {
    match p {
        Some(p) if p.kind != PrincipalKind::Anonymous => p.name.clone(),
        _ => claimed.unwrap_or("anonymous").to_owned(),
    }
}

/// Sign-in attempts per user name and client address (10 at once, then one every 30 s) and per
/// client address (30 at once, then one every 10 s): Argon2 makes each guess slow, this makes
/// guessing slower still. The user budget is per address so that guessing from one address cannot
/// lock the real user out from another.
const LOGIN_PER_USER: (f64, f64) = (1.0 / 30.0, 10.0);
const LOGIN_PER_ADDR: (f64, f64) = (1.0 / 10.0, 30.0);

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::Unauthenticated(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", msg)
            }
            AuthError::Invalid(_) => ApiError::unprocessable(msg),
            AuthError::NotFound(_) => ApiError::not_found(msg),
            AuthError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            AuthError::Store(_) | AuthError::NoRandomness | AuthError::Internal(_) => {
                ApiError::internal(msg)
            }
        }
    }
}

/// Parses a JSON body with errors that name the field.
fn body<T: serde::de::DeserializeOwned>(raw: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

fn principal(req_principal: Option<axum::Extension<Principal>>) -> ApiResult<Principal> {
    req_principal
        .map(|p| p.0)
        .ok_or_else(|| ApiError::internal("no principal on a signed-in route"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

async fn login(
    State(engine): AppState,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let b: LoginBody = body(&raw)?;
    // Guessing passwords: each (user name, client address) and each client address has a small
    // budget of attempts.
    let addr = peer.map(|p| p.0.0.ip().to_string()).unwrap_or_default();
    let keys = [
        (format!("login-user:{addr} {}", b.user), LOGIN_PER_USER),
        (format!("login-addr:{addr}"), LOGIN_PER_ADDR),
    ];
    for (key, (rate, burst)) in &keys {
        if let Err(wait) = limiter().take(key, *rate, *burst) {
            engine.metrics().rate_limited.inc();
            let secs = wait.ceil().max(1.0) as u64;
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many sign-in attempts; retry in {secs} s"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r.extensions_mut().insert(AuditNote {
                target: b.user.clone(),
                detail: "sign-in attempts over the limit".into(),
                actor: None,
            });
            return Ok(r);
        }
    }
    if !engine.config().auth.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "auth_disabled",
            "authentication is off ([auth] enabled = false); no login is needed",
        ));
    }
    let now = engine.now();
    let user = b.user.clone();
    let e2 = engine.clone();
    let result = blocking(move || e2.auth().login(&b.user, &b.password, now)).await;
    let (sid, info) = match result {
        Ok(ok) => ok,
        Err(err) => {
            let mut r = err.into_response();
            r.extensions_mut().insert(AuditNote {
                target: user.clone(),
                detail: "login failed".into(),
                actor: None,
            });
            return Ok(r);
        }
    };
    let hours = engine.config().auth.session_hours;
    let secure = if engine.config().server.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{SESSION_COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        u64::from(hours) * 3600
    );
    let mut r = Json(json!({
        "user": info,
        "expires": format_rfc3339(now + i64::from(hours) * 3_600_000),
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.extensions_mut().insert(AuditNote {
        target: info.name.clone(),
        detail: "login".into(),
        actor: Some(info.name),
    });
    Ok(r)
}

async fn logout(State(engine): AppState, headers: HeaderMap) -> ApiResult {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        let e2 = engine.clone();
        blocking(move || e2.auth().logout(&sid)).await?;
    }
    let mut r = Json(json!({"logged_out": true})).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("gemba_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(r)
}

async fn me(p: Option<axum::Extension<Principal>>) -> ApiResult {
    Ok(Json(principal(p)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    old: String,
    new: String,
}

async fn change_password(
    State(engine): AppState,
    p: Option<axum::Extension<Principal>>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let p = principal(p)?;
    let b: PasswordBody = body(&raw)?;
    if p.kind != PrincipalKind::User {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_user",
            format!("{} is not a user with a password", p.name),
        ));
    }
    let now = engine.now();
    let name = p.name.clone();
    let e2 = engine.clone();
    blocking(move || {
        // The old password again, so that a stolen session cannot lock the owner out.
        e2.auth()
            .login(&name, &b.old, now)
            .map_err(|_| AuthError::Invalid("old: is not the current password".into()))?;
        e2.auth().set_password(&name, &b.new)
    })
    .await?;
    let mut r =
        Json(json!({"changed": true, "note": "all sessions ended; sign in again"})).into_response();
    r.extensions_mut().insert(note(p.name, "password changed"));
    Ok(r)
}

async fn users(State(engine): AppState) -> ApiResult {
    Ok(Json(json!({"users": engine.auth().users()?})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

async fn add_user(State(engine): AppState, raw: axum::body::Bytes) -> ApiResult {
    let b: NewUser = body(&raw)?;
    if let Some(s) = &b.scope {
        engine
            .registry()
            .resolve_asset_for_ingest(s)
            .map_err(|e| ApiError::unprocessable(format!("scope: {e}")))?;
    }
    let now = engine.now();
    let e2 = engine.clone();
    let (name, role) = (b.name.clone(), b.role);
    let (info, one_time) = blocking(move || {
        e2.auth()
            .add_user(&b.name, b.role, b.scope, b.password.as_deref(), now)
    })
    .await?;
    let mut r = (
        StatusCode::CREATED,
        Json(json!({"user": info, "one_time_password": one_time})),
    )
        .into_response();
    r.extensions_mut()
        .insert(note(name, format!("role {role}")));
    Ok(r)
}

async fn delete_user(State(engine): AppState, Path(name): Path<String>) -> ApiResult {
    let e2 = engine.clone();
    let n = name.clone();
    blocking(move || e2.auth().delete_user(&n)).await?;
    let mut r = Json(json!({"deleted": name})).into_response();
    r.extensions_mut().insert(note(name, "user deleted"));
    Ok(r)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(default)]
    password: Option<String>,
}

async fn reset_password(
    State(engine): AppState,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let b: ResetBody = if raw.is_empty() {
        ResetBody::default()
    } else {
        body(&raw)?
    };
    let e2 = engine.clone();
    let n = name.clone();
    let one_time = blocking(move || {
        let auth = e2.auth();
        match b.password {
            Some(p) => auth.set_password(&n, &p).map(|()| None),
            None => {
                let p = gemba_engine::auth::generate_password()?;
                auth.set_password(&n, &p)?;
                auth.require_password_change(&n)?;
                Ok(Some(p))
            }
        }
    })
    .await?;
    let mut r = Json(json!({"user": name, "one_time_password": one_time})).into_response();
    r.extensions_mut().insert(note(name, "password reset"));
    Ok(r)
}

async fn tokens(State(engine): AppState) -> ApiResult {
    Ok(Json(json!({"tokens": engine.auth().tokens()?})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Option<String>,
    /// Days until it expires (none: never).
    #[serde(default)]
    expires_in_days: Option<f64>,
}

async fn create_token(
    State(engine): AppState,
    p: Option<axum::Extension<Principal>>,
    raw: axum::body::Bytes,
) -> ApiResult {
    let p = principal(p)?;
    let b: NewToken = body(&raw)?;
    if let Some(s) = &b.scope {
        engine
            .registry()
            .resolve_asset_for_ingest(s)
            .map_err(|e| ApiError::unprocessable(format!("scope: {e}")))?;
    }
    let now = engine.now();
    let expires = match b.expires_in_days {
        None => None,
        Some(d) if d.is_finite() && (1.0..=3650.0).contains(&d) => {
            Some(now + (d * 86_400_000.0) as i64)
        }
        Some(d) => {
            return Err(ApiError::unprocessable(format!(
                "expires_in_days: {d} is not between 1 and 3650 (leave it out for a token that does not expire)"
            )));
        }
    };
    let issued = engine
        .auth()
        .create_token(&b.name, b.role, b.scope, expires, &p.name, now)?;
    let target = format!("token:{}", issued.record.id);
    let detail = format!("{} role {}", issued.record.name, issued.record.role);
    let mut r = (StatusCode::CREATED, Json(issued)).into_response();
    r.extensions_mut().insert(note(target, detail));
    Ok(r)
}

async fn revoke_token(State(engine): AppState, Path(id): Path<String>) -> ApiResult {
    let t = engine.auth().revoke_token(&id, engine.now())?;
    let mut r = Json(json!({"revoked": t})).into_response();
    r.extensions_mut()
        .insert(note(format!("token:{id}"), t.name));
    Ok(r)
}

async fn audit(State(engine): AppState, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "actor", "action", "limit", "format"])?;
    let now = engine.now();
    let query = AuditQuery {
        from: p.ts("from")?.unwrap_or(0),
        to: p.ts("to")?.unwrap_or(now + 1),
        actor: p.get("actor").map(str::to_owned),
        action_prefix: p.get("action").map(str::to_owned),
        limit: p.usize("limit", 1000, 1_000_000)?,
    };
    let log = engine.auth().audit_log(&query)?;
    match p.format()? {
        Format::Json => Ok(Json(json!({"entries": log})).into_response()),
        Format::Csv => {
            let mut out = String::from("id,time,actor,action,target,status,detail\n");
            for e in &log {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    e.id,
                    format_rfc3339(e.ts),
                    csv_field(&e.actor),
                    csv_field(&e.action),
                    csv_field(&e.target),
                    e.status,
                    csv_field(&e.detail)
                ));
            }
            Ok(csv_response("audit.csv", out))
        }
    }
}
