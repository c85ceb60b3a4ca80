//! Security end to end (docs/SECURITY.md): every route × every role, sign-in with the one-time
//! admin password, tokens, scopes, the audit log, rate and connection limits, slow clients, TLS
//! with curl, and MQTT credentials with mosquitto_pub.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{AUTH_ON, Server, token};
use gemba_api::{Access, Role};
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    common::http_agent(Duration::from_secs(30))
}

/// The values of a `/api/v1/latest` answer. Tests compare these, never the JSON text: a
/// timestamp such as 1795930390878 contains "303" as well.
fn stored_values(latest: &Value) -> Vec<f64> {
    latest
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["value"].as_f64()).collect())
        .unwrap_or_default()
}

/// One request with an optional bearer token or cookie; returns (status, JSON body).
fn call(
    srv: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = srv.url(path);
    let a = agent();
    let mut req = ureq::http::Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(&url);
    match auth {
        Some(t) if t.starts_with("gemba_session=") => req = req.header("cookie", t),
        Some(t) => req = req.header("authorization", format!("Bearer {t}")),
        None => {}
    }
    let resp = match body {
        Some(b) => a.run(
            req.header("content-type", "application/json")
                .body(b.to_string())
                .unwrap(),
        ),
        None => a.run(req.body(()).unwrap()),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    // Streams (SSE) never end: only their first bytes are read.
    let text = if path.contains("/stream/") {
        String::new()
    } else {
        resp.body_mut().read_to_string().unwrap_or_default()
    };
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `gemba token create` on the server's store; returns the token.
/// The one-time password printed at the first start (two lines below its announcement).
fn one_time_password_in(log: &str) -> String {
    let i = log
        .find("one-time password")
        .unwrap_or_else(|| panic!("no one-time password in the log:\n{log}"));
    log[i..].lines().nth(2).unwrap().trim().to_owned()
}

fn one_time_password(srv: &Server) -> String {
    one_time_password_in(&srv.logs())
}

/// The value of a metric in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

fn login(srv: &Server, user: &str, password: &str) -> (u16, Option<String>) {
    let resp = agent()
        .post(&srv.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .send(json!({"user": user, "password": password}).to_string())
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap().to_owned());
    if let Some(c) = resp.headers().get("set-cookie") {
        let c = c.to_str().unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    (status, cookie)
}

/// A concrete path for a route template.
fn concrete(template: &str) -> String {
    template
        .replace("{name}", "nosuchthing")
        .replace("{version}", "1")
        .replace("{id}", "999999")
        .replace("{action}", "ack")
        .replace("{lot}", "NOSUCHLOT")
        .replace("{*path}", "app.js")
        .replace("{file}", "en.json")
}

/// Every route of the router's tables, anonymously and with every role: 401 without credentials,
/// 403 for a role below the route's, and neither for a role that is high enough.
#[test]
fn every_route_checks_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AUTH_ON);
    let tokens: Vec<(Role, String)> = Role::ALL
        .iter()
        .map(|r| (*r, token(&srv, &format!("matrix {r}"), r.as_str(), None)))
        .collect();
    let mut checked = 0;
    for route in gemba_api::route_tables() {
        let (method, template, access) = (route.method.as_str(), route.path, &route.access);
        // Signing out ends nothing for a token, but keep the destructive user routes harmless.
        let path = concrete(template);
        let body = (method != "GET").then(|| json!({}));
        let (anon, _) = call(&srv, method, &path, None, body.as_ref());
        match access {
            Access::Public => assert!(
                anon != 401 && anon != 403,
                "{method} {template} is public but answered {anon} anonymously"
            ),
            _ => assert_eq!(
                anon, 401,
                "{method} {template} answered {anon} to an anonymous request"
            ),
        }
        for (role, t) in &tokens {
            let (status, reply) = call(&srv, method, &path, Some(t), body.as_ref());
            let allowed = match access {
                Access::Public | Access::SignedIn => true,
                Access::Role(need) => role >= need,
            };
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{method} {template} refused {role} ({status}): {reply}"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{method} {template} let {role} in ({status}): {reply}"
                );
                assert_eq!(reply["error"]["code"], "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 4 * 60, "only {checked} route × role checks");
    // A bad or malformed token is 401, not 403.
    let (s, _) = call(
        &srv,
        "get",
        "/api/v1/latest",
        Some("gmb_000000000000_00"),
        None,
    );
    assert_eq!(s, 401);
    let r = agent()
        .get(&srv.url("/api/v1/latest"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"gemba\""
    );
}

/// First start: a one-time admin password that must be changed; users, tokens, scopes and
/// revocation; every change is in the audit log, which only admins read and can export.
#[test]
fn first_admin_users_tokens_scopes_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AUTH_ON);
    let pw = one_time_password(&srv);
    assert_eq!(pw.len(), 20);
    assert_eq!(login(&srv, "admin", "not the password").0, 401);
    let (s, cookie) = login(&srv, "admin", &pw);
    assert_eq!(s, 200);
    let admin = cookie.unwrap();
    // Only the password may be changed with a one-time password.
    let (s, r) = call(&srv, "get", "/api/v1/users", Some(&admin), None);
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (403, Some("password_change_required"))
    );
    let (s, me) = call(&srv, "get", "/api/v1/auth/me", Some(&admin), None);
    assert_eq!((s, me["must_change_password"].as_bool()), (200, Some(true)));
    let (s, _) = call(
        &srv,
        "post",
        "/api/v1/auth/password",
        Some(&admin),
        Some(&json!({"old": pw, "new": "short"})),
    );
    assert_eq!(s, 422, "a short password is refused");
    let (s, _) = call(
        &srv,
        "post",
        "/api/v1/auth/password",
        Some(&admin),
        Some(&json!({"old": pw, "new": "plant-admin-2026"})),
    );
    assert_eq!(s, 200);
    assert_eq!(
        call(&srv, "get", "/api/v1/auth/me", Some(&admin), None).0,
        401,
        "changing the password ends the sessions"
    );
    let admin = login(&srv, "admin", "plant-admin-2026").1.unwrap();

    // An operator user, a scoped machine token and a viewer token.
    let (s, u) = call(
        &srv,
        "post",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"name": "olga", "role": "operator", "password": "olga-operator-1"})),
    );
    assert_eq!(s, 201, "{u}");
    assert_eq!(
        call(
            &srv,
            "post",
            "/api/v1/users",
            Some(&admin),
            Some(&json!({"name": "olga", "role": "viewer"}))
        )
        .0,
        409
    );
    let (s, u) = call(
        &srv,
        "post",
        "/api/v1/users",
        Some(&admin),
        Some(&json!({"name": "x", "role": "superuser"})),
    );
    assert_eq!(s, 400, "{u}");
    let olga = login(&srv, "olga", "olga-operator-1").1.unwrap();
    let (s, _) = call(&srv, "get", "/api/v1/users", Some(&olga), None);
    assert_eq!(s, 403);
    let (s, issued) = call(
        &srv,
        "post",
        "/api/v1/tokens",
        Some(&admin),
        Some(
            &json!({"name": "m1 gateway", "role": "operator", "scope": "s1/a1/l1/m1", "expires_in_days": 30}),
        ),
    );
    assert_eq!(s, 201, "{issued}");
    let gw = issued["token"].as_str().unwrap().to_owned();
    let gw_id = issued["id"].as_str().unwrap().to_owned();
    let (_, list) = call(&srv, "get", "/api/v1/tokens", Some(&admin), None);
    assert!(
        !list.to_string().contains(gw.rsplit('_').next().unwrap()),
        "secrets are not listed"
    );
    assert!(!list.to_string().contains("sha256"), "nor their hashes");

    // The gateway may send data of its machine only.
    let now = common::now_ms();
    let ok = json!({"points": [{"signal": "s1/a1/l1/m1/temp", "ts": now, "value": 300.0}]});
    let (s, r) = call(&srv, "post", "/api/v1/ingest", Some(&gw), Some(&ok));
    assert_eq!(s, 200, "{r}");
    let outside = json!({"points": [
        {"signal": "s1/a1/l1/m1/temp", "ts": now + 1, "value": 301.0},
        {"signal": "s1/a1/l1/m2/temp", "ts": now + 1, "value": 302.0}]});
    let (s, r) = call(&srv, "post", "/api/v1/ingest", Some(&gw), Some(&outside));
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (403, Some("outside_scope")),
        "{r}"
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("points[1]"),
        "{r}"
    );
    let (_, latest) = call(&srv, "get", "/api/v1/latest?prefix=s1", Some(&admin), None);
    assert_eq!(stored_values(&latest), [300.0], "{latest}");

    // Revoked tokens stop working at once.
    assert_eq!(
        call(
            &srv,
            "delete",
            &format!("/api/v1/tokens/{gw_id}"),
            Some(&admin),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(&srv, "post", "/api/v1/ingest", Some(&gw), Some(&ok)).0,
        401
    );

    // The operator acts on alarms but may not change rules.
    let (s, _) = call(
        &srv,
        "post",
        "/api/v1/alarm-rules",
        Some(&olga),
        Some(
            &json!({"name": "t", "type": "threshold", "signal": "s1/a1/l1/m1/temp", "above": 350.0, "clear": 340.0}),
        ),
    );
    assert_eq!(s, 403);
    let (s, r) = call(
        &srv,
        "post",
        "/api/v1/alarm-rules",
        Some(&admin),
        Some(
            &json!({"name": "hot", "type": "threshold", "signal": "s1/a1/l1/m1/temp", "above": 350.0, "clear": 340.0}),
        ),
    );
    assert!(s == 200 || s == 201, "{s} {r}");
    // An alarm on m1: a scoped operator of another machine may not touch it; olga acknowledges
    // it, and the alarm records olga whatever the body claims.
    let hot =
        json!({"points": [{"signal": "s1/a1/l1/m1/temp", "ts": common::now_ms(), "value": 390.0}]});
    assert_eq!(
        call(&srv, "post", "/api/v1/ingest", Some(&admin), Some(&hot)).0,
        200
    );
    let alarm = common::eventually(Duration::from_secs(10), || {
        let (_, a) = call(&srv, "get", "/api/v1/alarms?state=open", Some(&admin), None);
        a["alarms"].as_array().and_then(|l| l.first().cloned())
    })
    .expect("the threshold alarm was raised");
    let id = alarm["id"].as_u64().unwrap();
    let (s, r) = call(
        &srv,
        "post",
        "/api/v1/assets",
        Some(&admin),
        Some(&json!({"path": "s1/a1/l1/m2", "level": "machine"})),
    );
    assert!(s == 200 || s == 201, "{s} {r}");
    let (s, _) = call(
        &srv,
        "post",
        "/api/v1/users",
        Some(&admin),
        Some(
            &json!({"name": "m2op", "role": "operator", "scope": "s1/a1/l1/m2", "password": "m2-operator-1"}),
        ),
    );
    assert_eq!(s, 201);
    let m2op = login(&srv, "m2op", "m2-operator-1").1.unwrap();
    let ack = json!({"by": "somebody else", "text": "checked"});
    let (s, r) = call(
        &srv,
        "post",
        &format!("/api/v1/alarms/{id}/ack"),
        Some(&m2op),
        Some(&ack),
    );
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (403, Some("outside_scope")),
        "{r}"
    );
    let (s, r) = call(
        &srv,
        "post",
        &format!("/api/v1/alarms/{id}/ack"),
        Some(&olga),
        Some(&ack),
    );
    assert_eq!(s, 200, "{r}");
    assert!(r.to_string().contains("\"by\":\"olga\""), "{r}");
    assert!(!r.to_string().contains("somebody else"), "{r}");
    assert_eq!(
        call(&srv, "delete", "/api/v1/users/olga", Some(&admin), None).0,
        200
    );
    assert_eq!(
        call(&srv, "get", "/api/v1/auth/me", Some(&olga), None).0,
        401
    );

    // Every change above is in the audit log, newest first, with its actor and status.
    let (s, log) = call(&srv, "get", "/api/v1/audit?limit=1000", Some(&admin), None);
    assert_eq!(s, 200);
    let entries = log["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str, status: u64| {
        entries.iter().any(|e| {
            e["actor"].as_str().unwrap().starts_with(actor)
                && e["action"] == action
                && e["status"] == status
        })
    };
    for (actor, action, status) in [
        ("-", "POST /api/v1/auth/login", 401),
        ("admin", "POST /api/v1/auth/login", 200),
        ("admin", "POST /api/v1/auth/password", 422),
        ("admin", "POST /api/v1/auth/password", 200),
        ("admin", "POST /api/v1/users", 201),
        ("admin", "POST /api/v1/users", 409),
        ("olga", "POST /api/v1/auth/login", 200),
        ("admin", "POST /api/v1/tokens", 201),
        ("token:", "POST /api/v1/ingest", 403),
        ("admin", "DELETE /api/v1/tokens/{id}", 200),
        ("-", "POST /api/v1/ingest", 401),
        ("olga", "POST /api/v1/alarm-rules", 403),
        ("admin", "POST /api/v1/alarm-rules", 201),
        ("admin", "DELETE /api/v1/users/{name}", 200),
    ] {
        assert!(
            has(actor, action, status),
            "no audit entry {actor} {action} {status}: {log:#}"
        );
    }
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "POST /api/v1/ingest" && e["status"] == 200),
        "accepted data is not audited (it is data, not a change)"
    );
    assert!(
        !log.to_string().contains("plant-admin-2026"),
        "no password in the log"
    );
    let (s, csv) = call(
        &srv,
        "get",
        "/api/v1/audit?format=csv&actor=admin",
        Some(&admin),
        None,
    );
    assert_eq!(s, 200);
    let csv = csv.as_str().unwrap().to_owned();
    assert!(
        csv.starts_with("id,time,actor,action,target,status,detail\n"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(2) == Some("admin")),
        "{csv}"
    );

    // The CLI's changes are audited too, and the log cannot be rewritten.
    let out = Command::new(common::bin())
        .args(["user", "add", "vera", "--role", "viewer", "--config"])
        .arg(&srv.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("one-time password"));
    let (_, log) = call(
        &srv,
        "get",
        "/api/v1/audit?action=user.add",
        Some(&admin),
        None,
    );
    assert_eq!(log["entries"][0]["target"], "vera", "{log}");
    let db = rusqlite::Connection::open(dir.path().join("data/gemba.db")).unwrap();
    let err = db.execute("DELETE FROM audit", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = db
        .execute("UPDATE audit SET actor = 'nobody'", [])
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

/// 429 with Retry-After past the rate, 413 for a body over the limit, 503 past the connection
/// limit, and a client that never finishes its headers is cut off.
#[test]
fn limits_answer_429_413_503_and_cut_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_env(
        dir.path(),
        "[auth]\nenabled = true\nrate_per_s = 2\nburst = 5\n",
        &[
            ("GEMBA__SERVER__MAX_BODY_BYTES", "2048"),
            ("GEMBA__SERVER__MAX_CONNECTIONS", "4"),
            ("GEMBA__SERVER__HEADER_READ_TIMEOUT_S", "1"),
            ("GEMBA__INGEST__MAX_BATCH_ITEMS", "10"),
        ],
    );
    let t = token(&srv, "limits", "viewer", None);
    let statuses: Vec<u16> = (0..8)
        .map(|_| call(&srv, "get", "/api/v1/latest", Some(&t), None).0)
        .collect();
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let r = agent()
        .get(&srv.url("/api/v1/latest"))
        .header("authorization", format!("Bearer {t}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Another principal has its own bucket.
    let t2 = token(&srv, "limits 2", "operator", None);
    let big = json!({"points": [{"signal": "s1/a1/l1/m1/temp", "ts": 1, "value": 1.0}], "pad": "x".repeat(4096)});
    let (s, r) = call(&srv, "post", "/api/v1/ingest", Some(&t2), Some(&big));
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{r}"
    );

    // A client that sends half a request line is disconnected after header_read_timeout_s.
    let mut slow = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "a slow client was kept for {waited:?}"
    );

    // Connections past max_connections are answered 503 at once.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", srv.http)).unwrap())
        .collect();
    // The server counts a connection once it has accepted it: ask again until it has taken the
    // four (an extra connection that is served meanwhile closes at once, unanswered).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let mut extra = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let mut reply = String::new();
        let _ = extra.read_to_string(&mut reply);
        if reply.starts_with("HTTP/1.1 503") || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply:?}");
    assert!(reply.contains("too_many_connections"), "{reply}");
    drop(held);
    // The slots come back as the server sees the four connections close.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while call(&srv, "get", "/healthz", None, None).0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection slots did not come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = {
        let r = call(&srv, "get", "/metrics", Some(&t2), None);
        r.1.as_str().unwrap_or_default().to_owned()
    };
    for m in [
        "gemba_rate_limited_requests_total",
        "gemba_http_connections_refused_total",
        "gemba_payload_too_large_requests_total",
    ] {
        let v = metric(&metrics, m);
        assert!(v >= 1.0, "{m} = {v}");
    }
}

/// `gemba cert self-signed`, then HTTPS that curl trusts with --cacert and that refuses plain
/// HTTP; the session cookie is marked Secure.
#[test]
fn tls_with_a_self_signed_ca_and_curl() {
    let curl = common::require_program("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let tls = common::self_signed_certs(dir.path());
    for f in ["ca.pem", "server.pem", "server.key"] {
        assert!(tls.join(f).exists(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls.join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
    }
    let http = common::free_port();
    let config = dir.path().join("gemba.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [storage]\npath = \"{}\"\n[mqtt]\nmode = \"off\"\n",
            tls.join("server.pem").display(),
            tls.join("server.key").display(),
            dir.path().join("data/gemba.db").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let _child = common::KillOnDrop(
        Command::new(common::bin())
            .args(["serve", "--config"])
            .arg(&config)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://localhost:{http}");
    let ok = common::eventually(Duration::from_secs(30), || {
        let out = Command::new(&curl)
            .args(["-sS", "--cacert"])
            .arg(tls.join("ca.pem"))
            .arg(format!("{url}/healthz"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let body = ok.unwrap_or_else(|| {
        panic!(
            "curl --cacert never got an answer; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    // Without the CA curl refuses the certificate; plain HTTP gets no answer.
    let out = Command::new(&curl)
        .args(["-sS", &format!("{url}/healthz")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(&curl)
        .args([
            "-sS",
            "-m",
            "5",
            &format!("http://127.0.0.1:{http}/healthz"),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\"status\":\"ok\""),
        "plain HTTP must not be served on the TLS port"
    );
    // Sign in over TLS: the cookie is Secure.
    let logtext = std::fs::read_to_string(&log).unwrap();
    let pw = one_time_password_in(&logtext);
    let out = Command::new(&curl)
        .args(["-sS", "-i", "--cacert"])
        .arg(tls.join("ca.pem"))
        .args(["-H", "content-type: application/json", "-d"])
        .arg(json!({"user": "admin", "password": pw}).to_string())
        .arg(format!("{url}/api/v1/auth/login"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let cookie = head.lines().find(|l| l.starts_with("set-cookie:")).unwrap();
    assert!(
        cookie.contains("secure") && cookie.contains("httponly"),
        "{cookie}"
    );
}

/// The embedded broker refuses clients without credentials or with a viewer token, and takes
/// data from an operator token given as the MQTT password.
#[test]
fn mqtt_requires_a_token_when_auth_is_on() {
    let pub_bin = common::require_program("mosquitto_pub", "mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AUTH_ON);
    let op = token(&srv, "m1 plc", "operator", None);
    let viewer = token(&srv, "dashboard", "viewer", None);
    let topic = "gemba/v1/s1/a1/l1/m1/temp";
    let publish = |user: Option<(&str, &str)>, value: &str| {
        let mut cmd = Command::new(&pub_bin);
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &srv.mqtt.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            value,
        ]);
        if let Some((u, p)) = user {
            cmd.args(["-u", u, "-P", p]);
        }
        cmd.output().unwrap()
    };
    let anon = publish(None, "301");
    assert!(!anon.status.success(), "anonymous MQTT was accepted");
    let wrong = publish(Some(("m1", &viewer)), "302");
    assert!(!wrong.status.success(), "a viewer token may not publish");
    let bad = publish(Some(("m1", "gmb_123456789abc_nope")), "303");
    assert!(!bad.status.success());
    let ok = publish(Some(("m1", &op)), "304");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let admin = token(&srv, "reader", "admin", None);
    let seen = common::eventually(Duration::from_secs(10), || {
        let (_, latest) = call(&srv, "get", "/api/v1/latest?prefix=s1", Some(&admin), None);
        stored_values(&latest).contains(&304.0).then_some(latest)
    });
    let latest = seen.expect("the operator's sample was stored");
    for v in [301.0, 302.0, 303.0] {
        assert!(
            !stored_values(&latest).contains(&v),
            "refused {v} was stored: {latest}"
        );
    }
    let (_, metrics) = call(&srv, "get", "/metrics", Some(&admin), None);
    let failures = metric(metrics.as_str().unwrap(), "gemba_mqtt_auth_failures_total");
    // The anonymous client is refused by the broker before credentials are checked.
    assert!(failures >= 2.0, "{failures}");
}

/// A token scoped to a machine reaches only that machine's topics on the embedded broker:
/// publishes (single, batch, last will) and subscriptions elsewhere are refused and counted.
#[test]
fn mqtt_topic_access_follows_the_token_scope() {
    let pub_bin = common::require_program("mosquitto_pub", "mosquitto-clients");
    let sub_bin = common::require_program("mosquitto_sub", "mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), AUTH_ON);
    let m1 = token(&srv, "m1 plc", "operator", Some("s1/a1/l1/m1"));
    let admin = token(&srv, "reader", "admin", None);
    let port = srv.mqtt.to_string();
    let mosquitto = |bin: &std::path::Path, args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-u", "m1", "-P", &m1]);
        cmd.args(args);
        cmd.output().unwrap()
    };
    let publish = |topic: &str, value: &str, extra: &[&str]| {
        let mut args = vec!["-q", "1", "-t", topic, "-m", value];
        args.extend_from_slice(extra);
        mosquitto(&pub_bin, &args)
    };

    // Its own machine: a sample and a machine batch are stored.
    let own = publish("gemba/v1/s1/a1/l1/m1/temp", "321", &[]);
    assert!(own.status.success(), "{own:?}");
    let batch = publish("gemba/v1/s1/a1/l1/m1", r#"{"values": {"speed": 322}}"#, &[]);
    assert!(batch.status.success(), "{batch:?}");

    // Another machine, another line, outside the scheme: refused before the acknowledgement.
    for topic in [
        "gemba/v1/s1/a1/l1/m2/temp",
        "gemba/v1/s1/a1/l1/m2",
        "gemba/v1/s1/a1/l2/m1/temp",
        "elsewhere/s1/a1/l1/m1/temp",
    ] {
        let out = publish(topic, "323", &[]);
        assert!(!out.status.success(), "{topic} was accepted: {out:?}");
    }
    // A last will on another machine's topic: the connection itself is refused.
    let will = publish(
        "gemba/v1/s1/a1/l1/m1/temp",
        "324",
        &[
            "--will-topic",
            "gemba/v1/s1/a1/l1/m2/state",
            "--will-payload",
            "down",
        ],
    );
    assert!(!will.status.success(), "a foreign last will was accepted");

    // Subscriptions: its own machine is fine, the whole plant is not.
    let wide = mosquitto(&sub_bin, &["-t", "gemba/v1/#", "-C", "1", "-W", "3"]);
    // mosquitto_sub reports a refused filter (SUBACK 0x80) on stderr and exits with 0.
    assert!(
        String::from_utf8_lossy(&wide.stderr).contains("subscription requests were denied"),
        "gemba/v1/# was granted: {wide:?}"
    );
    let narrow = std::thread::scope(|s| {
        let sub = s.spawn(|| {
            mosquitto(
                &sub_bin,
                &["-t", "gemba/v1/s1/a1/l1/m1/#", "-C", "1", "-W", "10", "-v"],
            )
        });
        // Publish until the subscription is in place and has seen one message.
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(250));
            if sub.is_finished() {
                break;
            }
            publish("gemba/v1/s1/a1/l1/m1/temp", "325", &[]);
        }
        sub.join().unwrap()
    });
    assert!(
        narrow.status.success() && String::from_utf8_lossy(&narrow.stdout).contains("m1/temp"),
        "{narrow:?}"
    );

    let seen = common::eventually(Duration::from_secs(10), || {
        let (_, latest) = call(&srv, "get", "/api/v1/latest?prefix=s1", Some(&admin), None);
        let v = stored_values(&latest);
        // latest keeps one value per signal: m1/temp shows 325, sent after 321
        (v.contains(&325.0) && v.contains(&322.0)).then_some(latest)
    });
    let latest = seen.unwrap_or_else(|| {
        let (_, latest) = call(&srv, "get", "/api/v1/latest?prefix=s1", Some(&admin), None);
        panic!("the scoped token's own samples were not all stored: {latest}")
    });
    assert!(!stored_values(&latest).contains(&323.0), "{latest}");
    assert!(!latest.to_string().contains("m2"), "{latest}");
    assert!(!latest.to_string().contains("l2"), "{latest}");

    let (_, metrics) = call(&srv, "get", "/metrics", Some(&admin), None);
    let text = metrics.as_str().unwrap();
    let publishes = metric(text, "gemba_mqtt_acl_denied_total{reason=\"publish\"}");
    let subscribes = metric(text, "gemba_mqtt_acl_denied_total{reason=\"subscribe\"}");
    // four refused publishes and the refused will (checked once at connect)
    assert!(publishes >= 5.0, "{publishes}");
    assert!(subscribes >= 1.0, "{subscribes}");
}

/// `gemba demo` with authentication on (the default): the simulator still reaches the embedded
/// broker with the process's own credentials, and a person signs in in Chromium with the printed
/// one-time password, is made to choose a new one, sees the live plant, and signs out.
#[test]
fn demo_with_auth_and_sign_in_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let http = common::free_port();
    let config = dir.path().join("demo.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"\n",
            common::free_port(),
            common::free_port()
        ),
    )
    .unwrap();
    let log = dir.path().join("demo.log");
    let _demo = common::KillOnDrop(
        Command::new(common::bin())
            .args(["demo", "--history", "20m", "--listen"])
            .arg(format!("127.0.0.1:{http}"))
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let text = common::wait_live(&log, Duration::from_secs(120));
    assert!(
        text.contains("over MQTT"),
        "the demo publishes over MQTT:\n{text}"
    );
    let pw = one_time_password_in(&text);
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("login");
    let figures = common::run_browser_script_env(
        "login.mjs",
        &format!("http://127.0.0.1:{http}"),
        &out,
        Some(&log),
        &[("GEMBA_PASSWORD", &pw)],
    );
    assert!(
        figures["wrong_password_message"]
            .as_str()
            .unwrap()
            .contains("Wrong"),
        "{figures}"
    );
    for shot in ["login.png", "login-zh.png"] {
        assert!(out.join(shot).exists(), "{shot}");
    }
    let final_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !final_log.contains("MQTT connection refused"),
        "the demo's own MQTT clients were refused:\n{final_log}"
    );
}

/// The embedded broker's TLS listener: mosquitto_pub trusts it with --cafile (the CA of
/// `gemba cert self-signed`) and must still present a token.
#[test]
fn mqtt_over_tls_with_mosquitto_pub_cafile() {
    let pub_bin = common::require_program("mosquitto_pub", "mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let tls = common::self_signed_certs(dir.path());
    let port = common::free_port();
    let srv = Server::start_in(
        dir.path(),
        &format!(
            "{AUTH_ON}[mqtt.tls]\nlisten = \"127.0.0.1:{port}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            tls.join("server.pem").display(),
            tls.join("server.key").display()
        ),
    );
    let op = token(&srv, "tls plc", "operator", None);
    let publish = |args: &[&str]| {
        Command::new(&pub_bin)
            .args(["-h", "localhost", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", "gemba/v1/s1/a1/l1/m1/temp"])
            .args(args)
            .output()
            .unwrap()
    };
    let ca = tls.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let no_ca = publish(&["-m", "311", "-u", "plc", "-P", &op]);
    assert!(
        !no_ca.status.success(),
        "plain MQTT on the TLS port was accepted"
    );
    let no_token = publish(&["--cafile", ca, "-m", "312"]);
    assert!(
        !no_token.status.success(),
        "TLS without a token was accepted"
    );
    let ok = publish(&["--cafile", ca, "-m", "313", "-u", "plc", "-P", &op]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let admin = token(&srv, "reader", "admin", None);
    let seen = common::eventually(Duration::from_secs(10), || {
        let (_, latest) = call(&srv, "get", "/api/v1/latest?prefix=s1", Some(&admin), None);
        stored_values(&latest).contains(&313.0).then_some(latest)
    });
    let latest = seen.expect("the sample sent over TLS was stored");
    let values = stored_values(&latest);
    assert!(
        !values.contains(&311.0) && !values.contains(&312.0),
        "{latest}"
    );
}
