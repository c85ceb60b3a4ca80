//! Issue 27, the HTTP side: the router in process (no server binary), over a scratch store.
//! Cross-site writes, strict JSON content types, scopes and identities, extreme time ranges, the
//! sign-in lockout, error sizes, browser headers and the live stream's cap and messages
//! (docs/SECURITY.md names each test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use futures_util::StreamExt;
use gemba_core::time::SystemClock;
use gemba_engine::auth::Role;
use gemba_engine::{BatchMode, Config, Engine, Source};
use serde_json::{Value, json};
use tower::ServiceExt;

const PLANT: &str = r#"
[enterprise]
name = "t"
[[sites]]
name = "s"
[[sites.areas]]
name = "a"
[[sites.areas.lines]]
name = "l"
[[sites.areas.lines.machines]]
name = "cnc1"
[[sites.areas.lines.machines.signals]]
name = "x"
[[sites.areas.lines.machines]]
name = "cnc2"
[[sites.areas.lines.machines.signals]]
name = "x"
"#;

const HOST: &str = "127.0.0.1:8080";
const PASSWORD: &str = "correct horse battery";

struct App {
    engine: Arc<Engine>,
    router: Router,
    _dir: tempfile::TempDir,
}

fn app(auth: bool, extra: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plant.toml"), PLANT).unwrap();
    let text = format!(
        "[storage]\npath = \"{}\"\n[mqtt]\nmode = \"off\"\n[plant]\nfile = \"{}\"\n[auth]\nenabled = {auth}\n{extra}\n",
        d.join("data/gemba.db").display(),
        d.join("plant.toml").display(),
    );
    let file = d.join("gemba.toml");
    std::fs::write(&file, text).unwrap();
    let engine = Engine::open(
        Config::load_file_only(Path::new(&file)).unwrap(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let router = gemba_api::router(engine.clone());
    App {
        engine,
        router,
        _dir: dir,
    }
}

fn now() -> i64 {
    use gemba_core::time::Clock;
    SystemClock.now_ms()
}

/// A request from `addr` (the peer address the server would see).
fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, HOST);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut r = b.body(body.into()).unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    r
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let what = format!("{} {}", req.method(), req.uri());
    let resp = tokio::time::timeout(Duration::from_secs(60), router.clone().oneshot(req))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value) {
    let (s, _, b) = send(router, request(method, uri, headers, body.to_owned())).await;
    let v = serde_json::from_slice(&b)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&b).into_owned()));
    (s, v)
}

/// A signed-in admin's session cookie header.
async fn admin_cookie(app: &App, user: &str) -> String {
    let e = app.engine.clone();
    let u = user.to_owned();
    let (sid, _) = tokio::task::spawn_blocking(move || {
        e.auth()
            .add_user(&u, Role::Admin, None, Some(PASSWORD), 0)
            .unwrap();
        e.auth().login(&u, PASSWORD, now()).unwrap()
    })
    .await
    .unwrap();
    format!("gemba_session={sid}")
}

fn token(app: &App, role: Role, scope: Option<&str>) -> (String, String) {
    let t = app
        .engine
        .auth()
        .create_token("t", role, scope.map(str::to_owned), None, "test", now())
        .unwrap();
    (
        format!("Bearer {}", t.token),
        format!("token:{}", t.record.id),
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// Cross-site writes with the session cookie are refused (403 naming the reason) whether the
/// browser says so with Sec-Fetch-Site or only with Origin; same-origin pages, scripts (no Origin)
/// and bearer-token callers pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_with_the_session_cookie_are_refused() {
    let app = app(true, "");
    let cookie = admin_cookie(&app, "csrf-admin").await;
    let c = ("cookie", cookie.as_str());
    let lot = |n: &str| json!({"id": n, "product": "P", "quantity": 5.0}).to_string();
    let refused: &[&[(&str, &str)]] = &[
        &[("origin", "http://evil.example")],
        &[("origin", "http://127.0.0.1:9999")],
        &[("origin", "https://127.0.0.1:8080")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://127.0.0.1:8080"),
        ],
    ];
    for (i, extra) in refused.iter().enumerate() {
        let mut h = vec![c, JSON];
        h.extend_from_slice(extra);
        let (s, v) = call(
            &app.router,
            "POST",
            "/api/v1/lots",
            &h,
            &lot(&format!("X{i}")),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{extra:?}: {v}");
        assert_eq!(v["error"]["code"], "cross_site_request", "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains("Origin") || m.contains("Sec-Fetch-Site"), "{m}");
    }
    // Nothing of them was stored.
    let (_, lots) = call(&app.router, "GET", "/api/v1/lots", &[c], "").await;
    assert_eq!(lots.as_array().unwrap().len(), 0, "{lots}");
    // The dashboard's own fetch (same origin), a script with the cookie, and a token caller even
    // with a foreign Origin.
    let (s, v) = call(
        &app.router,
        "POST",
        "/api/v1/lots",
        &[
            c,
            JSON,
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        &lot("A"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(&app.router, "POST", "/api/v1/lots", &[c, JSON], &lot("B")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (bearer, _) = token(&app, Role::Operator, None);
    let (s, v) = call(
        &app.router,
        "POST",
        "/api/v1/lots",
        &[
            ("authorization", &bearer),
            JSON,
            ("origin", "http://evil.example"),
        ],
        &lot("C"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Sign-in from another site (login CSRF) and reads are not affected by reads.
    let (s, _) = call(
        &app.router,
        "POST",
        "/api/v1/auth/login",
        &[JSON, ("sec-fetch-site", "cross-site")],
        &json!({"user": "csrf-admin", "password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app.router,
        "GET",
        "/api/v1/lots",
        &[c, ("sec-fetch-site", "cross-site")],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The refusals are in the audit log.
    let (_, audit) = call(&app.router, "GET", "/api/v1/audit?action=POST", &[c], "").await;
    let refused_403 = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == 403 && e["action"] == "POST /api/v1/lots")
        .count();
    assert_eq!(refused_403, refused.len(), "{audit}");
}

/// JSON endpoints take only `application/json` (415 otherwise), from every caller: `text/plain`
/// and form bodies are how a cross-site page sends JSON without a CORS preflight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_endpoints_refuse_other_content_types() {
    let app = app(true, "");
    let (bearer, _) = token(&app, Role::Admin, None);
    let b = ("authorization", bearer.as_str());
    let cases = [
        (
            "/api/v1/lots",
            json!({"id": "L1", "product": "P", "quantity": 5.0}),
        ),
        (
            "/api/v1/work-orders",
            json!({"machine": "s/a/l/cnc1", "title": "oil"}),
        ),
        (
            "/api/v1/ingest",
            json!({"points": [{"signal": "s/a/l/cnc1/x", "value": 1.0}]}),
        ),
        (
            "/api/v1/shifts",
            json!({"name": "early", "start": "06:00", "end": "14:00"}),
        ),
    ];
    for (path, body) in &cases {
        for ctype in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
        ] {
            let (s, v) = call(
                &app.router,
                "POST",
                path,
                &[b, ("content-type", ctype)],
                &body.to_string(),
            )
            .await;
            // The ingest route reads text/plain as the line protocol: a JSON body is a bad line
            // there, and nothing is stored.
            if *path == "/api/v1/ingest" && ctype == "text/plain" {
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {ctype}: {v}");
                assert_eq!(v["accepted_points"], 0, "{v}");
            } else {
                assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path} {ctype}: {v}");
                assert_eq!(v["error"]["code"], "unsupported_media_type", "{v}");
            }
        }
        // No content type at all.
        let (s, v) = call(&app.router, "POST", path, &[b], &body.to_string()).await;
        assert_eq!(
            s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path} without a type: {v}"
        );
    }
    let (s, v) = call(
        &app.router,
        "POST",
        "/api/v1/lots",
        &[b, ("content-type", "application/json; charset=utf-8")],
        &json!({"id": "L1", "product": "P", "quantity": 5.0}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // An empty body needs no type (actions without parameters).
    let (s, v) = call(&app.router, "POST", "/api/v1/auth/logout", &[b], "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// A machine-scoped token cannot create a work order for another machine (403 outside_scope, as on
/// the ingest path), and the creator and every actor are the principal, not the body's `by`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_orders_check_scope_and_take_identities_from_the_principal() {
    let app = app(true, "");
    let (bearer, me) = token(&app, Role::Operator, Some("s/a/l/cnc1"));
    let h = [("authorization", bearer.as_str()), JSON];
    let (s, v) = call(
        &app.router,
        "POST",
        "/api/v1/work-orders",
        &h,
        &json!({"machine": "s/a/l/cnc2", "title": "not mine", "by": "cnc1"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "outside_scope", "{v}");
    assert!(app.engine.maintenance().get(1).is_none());
    let (s, w) = call(
        &app.router,
        "POST",
        "/api/v1/work-orders",
        &h,
        &json!({"machine": "s/a/l/cnc1", "title": "oil leak", "by": "the boss"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{w}");
    assert_eq!(w["created"]["by"], me.as_str(), "{w}");
    let id = w["id"].as_u64().unwrap();
    // Without `by` at all, too.
    let (s, v) = call(
        &app.router,
        "POST",
        &format!("/api/v1/work-orders/{id}/note"),
        &h,
        &json!({"text": "seen"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &app.router,
        "POST",
        &format!("/api/v1/work-orders/{id}/note"),
        &h,
        &json!({"text": "again", "by": "someone else"}).to_string(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let notes = v["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2, "{v}");
    assert!(notes.iter().all(|n| n["by"] == me.as_str()), "{v}");
}

/// Every route with a from/to range (and the duration parameters next to them) answers 400 to
/// timestamps beyond the years 0–9999, never 500 or a panic; the widest accepted range is
/// answered without one either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_time_ranges_are_400_on_every_range_route() {
    let app = app(false, "");
    let routes = [
        "/api/v1/oee?asset=s",
        "/api/v1/states?machine=s/a/l/cnc1",
        "/api/v1/maintenance?machine=s/a/l/cnc1",
        "/api/v1/series?signal=s/a/l/cnc1/x",
        "/api/v1/series?signal=s/a/l/cnc1/x&step=auto",
        "/api/v1/events?type=state",
        "/api/v1/spc?signal=s/a/l/cnc1/x",
        "/api/v1/alarms?state=all",
        "/api/v1/datasets/parts?machine=s/a/l/cnc1",
        "/api/v1/datasets/horizon?machine=s/a/l/cnc1",
        "/api/v1/logistics/location?location=store",
        "/api/v1/logistics/dwell?location=store",
        "/api/v1/logistics/lead-times?target=shipping",
        "/api/v1/energy/report?asset=s",
        "/api/v1/energy/lots?product=P",
        "/api/v1/audit?actor=x",
        "/api/v1/inspections?machine=s/a/l/cnc1",
    ];
    let n = now();
    let (min, max) = (i64::MIN.to_string(), i64::MAX.to_string());
    let out_of_range = [
        (min.as_str(), max.as_str()),
        (min.as_str(), &*n.to_string()),
        (&*n.to_string(), max.as_str()),
        ("-62167219200001", "253402300800000"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    for route in routes {
        for (from, to) in &out_of_range {
            let uri = format!("{route}&from={from}&to={to}");
            let (s, v) = call(&app.router, "GET", &uri, &[], "").await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("from")
                    || v["error"]["message"].as_str().unwrap().contains("to"),
                "{uri}: {v}"
            );
        }
    }
    // Every other time or duration parameter.
    for uri in [
        format!("/api/v1/health?machine=s/a/l/cnc1&to={max}"),
        format!("/api/v1/health?machine=s/a/l/cnc1&baseline_from={min}"),
        format!("/api/v1/health?machine=s/a/l/cnc1&baseline_to={max}"),
        "/api/v1/health?machine=s/a/l/cnc1&window=9223372036854775807ms".to_owned(),
        "/api/v1/datasets/horizon?machine=s/a/l/cnc1&step=9223372036854775807ms".to_owned(),
        "/api/v1/datasets/horizon?machine=s/a/l/cnc1&horizon=106751991167d".to_owned(),
        format!("/api/v1/logistics/inventory?at={min}"),
        format!("/api/v1/spc?signal=s/a/l/cnc1/x&baseline_from={min}"),
    ] {
        let (s, v) = call(&app.router, "GET", &uri, &[], "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
    }
    // The issue's request, exactly.
    let (s, v) = call(
        &app.router,
        "GET",
        "/api/v1/oee?asset=plant1&from=-9223372036854775808&to=9223372036854775807",
        &[],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // The widest range that parses: answered (400 for a range too long, or data), never 5xx.
    for route in routes {
        let uri = format!("{route}&from=-62167219200000&to=253402300799999");
        let (s, v) = call(&app.router, "GET", &uri, &[], "").await;
        assert!(
            s.is_success() || s.is_client_error(),
            "{uri}: {s} {}",
            v.to_string().chars().take(300).collect::<String>()
        );
    }
}

/// Guessing a user's password from one address does not lock that user out at another address,
/// and the 429 says when to retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_is_per_address_and_says_retry_after() {
    let app = app(true, "");
    admin_cookie(&app, "lockout-admin").await;
    let login = |addr: [u8; 4], password: &str| {
        let mut r = request(
            "POST",
            "/api/v1/auth/login",
            &[JSON],
            json!({"user": "lockout-admin", "password": password}).to_string(),
        );
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((addr, 40000))));
        r
    };
    let attacker = [10, 0, 0, 66];
    let mut limited = None;
    for _ in 0..12 {
        let (s, h, _) = send(&app.router, login(attacker, "wrong password!")).await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(h);
            break;
        }
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let h = limited.expect("the attacker's address is limited after 10 attempts");
    let retry: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    // The real admin, elsewhere, signs in at once.
    let (s, _, b) = send(&app.router, login([10, 0, 0, 1], PASSWORD)).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
}

/// A huge bad body is not echoed back: error messages quote a short prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_quote_a_short_prefix_of_a_huge_body() {
    let app = app(false, "");
    let huge = "A".repeat(5 << 20);
    for (path, body) in [
        ("/api/v1/lots", format!("\"{huge}\"")),
        ("/api/v1/lots", format!("{{\"lot\": 1, \"{huge}\": 2}}")),
        ("/api/v1/ingest", format!("\"{huge}\"")),
        (
            "/api/v1/ingest",
            format!("{{\"points\":[{{\"signal\":\"s/a/l/cnc1/x\",\"value\":\"{huge}\"}}]}}"),
        ),
        (
            "/api/v1/ingest",
            format!("{{\"points\":[{{\"signal\":\"{huge}\",\"value\":1}}]}}"),
        ),
    ] {
        let (s, _, b) = send(&app.router, request("POST", path, &[JSON], body)).await;
        assert!(s.is_client_error(), "{path}: {s}");
        assert!(b.len() < 4096, "{path}: a {s} answer of {} bytes", b.len());
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(
            v["error"]["message"].is_string() || v["errors"].is_array(),
            "{v}"
        );
    }
}

/// A top-level array is the wrong shape for an ingest body: 400, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_level_array_ingest_body_is_400() {
    let app = app(false, "");
    for body in ["[]", "[{\"signal\":\"s/a/l/cnc1/x\",\"value\":1}]", "[[]]"] {
        let (s, v) = call(&app.router, "POST", "/api/v1/ingest", &[JSON], body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("got an array"),
            "{v}"
        );
    }
}

/// Every answer, the dashboard's page first, carries the browser security headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_api_answers_carry_security_headers() {
    let app = app(true, "");
    for uri in [
        "/",
        "/web/app.js",
        "/api/v1/openapi.json",
        "/api/v1/lots",
        "/nope",
    ] {
        let (_, h, _) = send(&app.router, request("GET", uri, &[], Body::empty())).await;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{uri}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
        assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{uri}");
    }
    // The page has no inline script or style the policy would block.
    let (_, _, page) = send(&app.router, request("GET", "/", &[], Body::empty())).await;
    let page = String::from_utf8(page).unwrap();
    for tag in page.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(open.contains("src="), "inline script: <script{open}>");
    }
    assert!(
        !page.contains("<style") && !page.contains(" style="),
        "inline style in the page"
    );
}

/// Reads SSE `update` messages from a stream body.
struct Updates {
    body: axum::body::BodyDataStream,
    buf: String,
}

impl Updates {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..i + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("an update within 20 s")
                .expect("the stream goes on")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn open_stream(app: &App, query: &str) -> Result<Updates, (StatusCode, HeaderMap)> {
    let resp = app
        .router
        .clone()
        .oneshot(request(
            "GET",
            &format!("/api/v1/stream/latest{query}"),
            &[],
            Body::empty(),
        ))
        .await
        .unwrap();
    if resp.status() != StatusCode::OK {
        return Err((resp.status(), resp.headers().clone()));
    }
    Ok(Updates {
        body: resp.into_body().into_data_stream(),
        buf: String::new(),
    })
}

async fn ingest(app: &App, points: &[(&str, f64)]) {
    let body = json!({"points": points.iter().map(|(s, v)| json!({"signal": s, "value": v})).collect::<Vec<_>>()});
    let batch = gemba_ingest::wire::decode_json(body.to_string().as_bytes()).unwrap();
    let out = app
        .engine
        .ingest(batch, Source::Http, BatchMode::Strict)
        .await
        .unwrap();
    assert_eq!(out.rejected, 0, "{:?}", out.errors);
}

/// The live stream: one full message under the prefix, then only changes under it, in the
/// dashboard's format; beyond `server.max_streams` a clear 503 with Retry-After, and a closed
/// stream frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_filters_by_prefix_and_caps_connections() {
    let app = app(false, "[server]\nmax_streams = 2\n");
    ingest(&app, &[("s/a/l/cnc1/x", 1.0), ("s/a/l/cnc2/x", 2.0)]).await;
    let mut one = open_stream(&app, "?prefix=s/a/l/cnc1/").await.unwrap();
    let first = one.next().await;
    assert_eq!(first["full"], true, "{first}");
    assert_eq!(first["events"], json!([]), "{first}");
    let latest = first["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 1, "{first}");
    assert_eq!(latest[0]["signal"], "s/a/l/cnc1/x");
    assert_eq!(latest[0]["value"], 1.0);
    assert!(first["ts"].is_i64());
    let mut all = open_stream(&app, "").await.unwrap();
    assert_eq!(all.next().await["latest"].as_array().unwrap().len(), 2);
    // The third is refused while two are open.
    let (s, h) = open_stream(&app, "")
        .await
        .err()
        .expect("a third stream is refused");
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.contains_key(header::RETRY_AFTER));
    // Changes: the prefixed stream sees only its machine's.
    ingest(&app, &[("s/a/l/cnc1/x", 3.0), ("s/a/l/cnc2/x", 4.0)]).await;
    let next = one.next().await;
    assert_eq!(next["full"], false, "{next}");
    assert_eq!(next["latest"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(next["latest"][0]["value"], 3.0, "{next}");
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 2 {
        let m = all.next().await;
        for v in m["latest"].as_array().unwrap() {
            seen.insert(v["signal"].as_str().unwrap().to_owned(), v["value"].clone());
        }
    }
    assert_eq!(seen["s/a/l/cnc2/x"], 4.0);
    // Closing one frees its place.
    drop(all);
    let mut again = open_stream(&app, "?prefix=s/a/l/cnc2").await.unwrap();
    assert_eq!(again.next().await["latest"][0]["value"], 4.0);
}
