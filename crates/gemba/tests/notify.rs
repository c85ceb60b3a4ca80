//! The notification outbox end to end (docs/ALARMS.md#notifications): a webhook receiver that is
//! down while alarms change and while Gemba is killed and restarted gets every delivery exactly
//! once, in order, with its delivery id; e-mail goes through a real SMTP server (aiosmtpd, with
//! STARTTLS and AUTH) that is down at first, in English and 简体中文, routed by severity and asset.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KillOnDrop, Server, eventually, free_port, now_ms};
use serde_json::{Value, json};

const TEMP: &str = "s1/a1/l1/m1/temp";

fn ingest(srv: &Server, t0: i64, values: &[f64]) {
    let points: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"signal": TEMP, "ts": t0 + 1000 * i as i64, "value": v}))
        .collect();
    let (s, v) = srv.post_json("/api/v1/ingest", &json!({ "points": points }));
    assert_eq!(s, 200, "{v}");
}

fn hot_rule(srv: &Server) {
    let rule = json!({
        "name": "m1-hot", "type": "threshold", "signal": TEMP, "severity": "high",
        "above": 350.0, "clear": 340.0, "raise_after_s": 1, "clear_after_s": 1
    });
    let (s, v) = srv.post_json("/api/v1/alarm-rules", &rule);
    assert_eq!(s, 201, "{v}");
}

fn notifications(srv: &Server, query: &str) -> Value {
    let (s, v) = srv.get_json(&format!("/api/v1/notifications{query}"));
    assert_eq!(s, 200, "{v}");
    v
}

/// Polls the outbox until `pred` holds for its deliveries (oldest first).
fn wait_outbox(srv: &Server, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(Duration::from_secs(60), || {
        let mut list = notifications(srv, "?limit=1000")["notifications"]
            .as_array()
            .unwrap()
            .clone();
        list.reverse();
        pred(&list).then_some(list)
    })
    .unwrap_or_else(|| {
        panic!(
            "outbox never had {what}: {}\nlog:\n{}",
            notifications(srv, ""),
            srv.logs()
        )
    })
}

/// What the webhook receiver got: (X-Gemba-Delivery, Idempotency-Key, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A webhook receiver on `port` that answers 200 and records every request.
fn start_receiver(port: u16) -> Received {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got: Received = Arc::default();
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
            seen.lock().unwrap().push((
                h("x-gemba-delivery"),
                h("idempotency-key"),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            ));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

#[test]
fn a_webhook_receiver_down_across_a_crash_gets_every_delivery_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let hook_port = free_port(); // nobody listens yet: connection refused
    let extra = format!(
        "[[alarms.webhooks]]\nname = \"ops-hook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\
         backoff_ms = 100\n[notify]\nmax_backoff_s = 1\n"
    );
    let mut srv = Server::start_in(dir.path(), &extra);
    hot_rule(&srv);
    let t0 = now_ms() - 600_000;
    ingest(&srv, t0, &[360.0, 361.0, 362.0]);
    let raised = wait_outbox(&srv, "a raise", |l| !l.is_empty());
    let alarm = raised[0]["alarm_id"].as_u64().unwrap();
    let (s, v) = srv.post_json(
        &format!("/api/v1/alarms/{alarm}/ack"),
        &json!({"by": "olga"}),
    );
    assert_eq!(s, 200, "{v}");
    ingest(&srv, t0 + 3000, &[330.0, 330.0, 330.0]);
    // Three changes, all pending and retried while the receiver is down.
    let before = wait_outbox(&srv, "three retried deliveries", |l| {
        l.len() == 3 && l[0]["attempts"].as_u64().unwrap_or(0) >= 2
    });
    let events: Vec<&str> = before
        .iter()
        .map(|d| d["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["raised", "acknowledged", "cleared"]);
    for d in &before {
        assert_eq!(d["state"], "pending", "{d}");
        assert_eq!(d["channel"], "ops-hook");
        assert_eq!(d["kind"], "webhook");
    }
    assert!(
        before[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP"),
        "{}",
        before[0]
    );
    assert!(before[0]["next_attempt_at"].as_i64().is_some());
    let ids: Vec<String> = before
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(srv.metric("gemba_notify_pending"), 3.0);
    let attempts_before = before[0]["attempts"].as_u64().unwrap();

    // A crash (SIGKILL) and a restart: the outbox is read back and retried.
    let (config, http, mqtt, v5) = (srv.config.clone(), srv.http, srv.mqtt, srv.mqtt_v5);
    srv.kill9();
    let srv = Server::restart(dir.path(), config, http, mqtt, v5);
    wait_outbox(&srv, "retries after the restart", |l| {
        l.len() == 3 && l[0]["attempts"].as_u64().unwrap_or(0) > attempts_before
    });

    // The receiver comes back: everything arrives, once, in order, with its id.
    let got = start_receiver(hook_port);
    let after = wait_outbox(&srv, "every delivery sent", |l| {
        l.len() == 3 && l.iter().all(|d| d["state"] == "sent")
    });
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "each delivery once: {got:?}");
    let got_ids: Vec<String> = got.iter().map(|g| g.0.clone()).collect();
    assert_eq!(got_ids, ids, "the same ids, in order");
    for (id, key, body) in &got {
        assert_eq!(id, key, "Idempotency-Key is the delivery id");
        assert_eq!(body["delivery_id"], id.as_str());
        assert_eq!(body["alarm"]["id"], alarm);
        assert!(
            body["summary"]
                .as_str()
                .unwrap()
                .starts_with("[Gemba] HIGH alarm "),
            "{body}"
        );
    }
    let bodies: Vec<&str> = got.iter().map(|g| g.2["event"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["raised", "acknowledged", "cleared"]);
    assert!(after.iter().all(|d| d["sent_at"].as_i64().is_some()));
    let counts = &notifications(&srv, "")["counts"];
    assert_eq!(counts, &json!({"pending": 0, "sent": 3, "expired": 0}));
    assert_eq!(
        notifications(&srv, "?state=pending")["notifications"],
        json!([])
    );
    assert_eq!(srv.metric("gemba_notify_pending"), 0.0);
    assert_eq!(srv.metric("gemba_webhooks_sent_total"), 3.0);
    // Bad parameters name themselves.
    let (s, v) = srv.get_json("/api/v1/notifications?state=lost");
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("state"),
        "{v}"
    );
}

/// Starts the SMTP sink on `port` (STARTTLS with `tls/server.pem`, AUTH gemba/`password`);
/// returns the process and the messages it accepted.
fn start_smtp(
    port: u16,
    tls: &std::path::Path,
    password: &str,
) -> (KillOnDrop, Arc<Mutex<Vec<Value>>>) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
    let mut child = Command::new(common::test_python("aiosmtpd"))
        .arg(script)
        .arg(port.to_string())
        .arg(tls.join("server.pem"))
        .arg(tls.join("server.key"))
        .args(["gemba", password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = got.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "READY" {
                let _ = ready_tx.send(());
            } else if let Ok(v) = serde_json::from_str(&line) {
                seen.lock().unwrap().push(v);
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the SMTP sink did not start");
    (KillOnDrop(child), got)
}

#[test]
fn email_over_starttls_in_english_and_chinese_routed_by_asset() {
    let dir = tempfile::tempdir().unwrap();
    let tls = common::self_signed_certs(dir.path());
    let smtp_port = free_port(); // the SMTP server starts later
    let channel = |name: &str, to: &str, extra: &str| {
        format!(
            "[[notify.email]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
             tls = \"starttls\"\nca_file = \"{ca}\"\nuser = \"gemba\"\n\
             password_env = \"GEMBA_TEST_SMTP_PASSWORD\"\nfrom = \"Gemba <gemba@plant.example>\"\n\
             to = [\"{to}\"]\nbackoff_ms = 100\n{extra}\n",
            ca = tls.join("ca.pem").display()
        )
    };
    let extra = format!(
        "[notify]\nmax_backoff_s = 1\n{}{}{}",
        channel(
            "ops-en",
            "en@plant.example",
            "min_severity = \"high\"\nasset_prefix = \"s1/a1\""
        ),
        channel("ops-zh", "zh@plant.example", "language = \"zh-CN\""),
        channel("other-site", "s2@plant.example", "asset_prefix = \"s2\""),
    );
    let password = "s3cret-ü";
    let srv = Server::start_with_env(
        dir.path(),
        &extra,
        &[("GEMBA_TEST_SMTP_PASSWORD", password)],
    );
    hot_rule(&srv);
    ingest(&srv, now_ms() - 600_000, &[360.0, 361.0, 362.0]);
    // The SMTP server is not there yet: both matching channels retry.
    let pending = wait_outbox(&srv, "failed e-mail attempts", |l| {
        l.len() == 2 && l.iter().all(|d| d["attempts"].as_u64().unwrap_or(0) >= 1)
    });
    let mut channels: Vec<&str> = pending
        .iter()
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    channels.sort_unstable();
    assert_eq!(
        channels,
        ["ops-en", "ops-zh"],
        "the s2 channel takes nothing"
    );
    assert!(
        pending
            .iter()
            .all(|d| d["state"] == "pending" && d["kind"] == "email")
    );
    assert!(
        pending
            .iter()
            .all(|d| d["last_error"].as_str().unwrap_or("").contains("SMTP"))
    );
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        pending[1]["id"],
        id.as_str(),
        "one delivery id for every channel"
    );

    let (_smtp, mails) = start_smtp(smtp_port, &tls, password);
    wait_outbox(&srv, "both e-mails sent", |l| {
        l.len() == 2 && l.iter().all(|d| d["state"] == "sent")
    });
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 2, "{mails:?}");
    let by_to = |to: &str| {
        mails
            .iter()
            .find(|m| m["to"][0] == to)
            .unwrap_or_else(|| panic!("no mail to {to}: {mails:?}"))
    };
    let en = by_to("en@plant.example");
    let zh = by_to("zh@plant.example");
    for m in [en, zh] {
        assert_eq!(m["tls"], true, "STARTTLS was used: {m}");
        assert_eq!(m["from"], "gemba@plant.example");
        assert_eq!(m["message_id"], format!("<{id}@plant.example>"));
        assert_eq!(m["delivery"], id.as_str());
    }
    assert_eq!(
        en["subject"],
        "[Gemba] HIGH alarm raised: m1-hot at s1/a1/l1/m1"
    );
    let body = en["body"].as_str().unwrap();
    assert!(
        body.contains("Rule: m1-hot") && body.contains(&format!("Delivery id: {id}")),
        "{body}"
    );
    assert_eq!(
        zh["subject"],
        "[Gemba] 高级告警已触发：m1-hot（s1/a1/l1/m1）"
    );
    let body = zh["body"].as_str().unwrap();
    assert!(
        body.contains("规则：m1-hot") && body.contains("状态：活动"),
        "{body}"
    );
    assert_eq!(srv.metric("gemba_notify_sent_total"), 2.0);
}
