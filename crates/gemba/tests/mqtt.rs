//! End-to-end MQTT tests: the real `mosquitto_pub` (Debian mosquitto-clients) and an MQTT 5 client
//! publish to Gemba's embedded broker; the samples must be queryable over HTTP.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Server, eventually, now_ms, require_program};

fn mosquitto_pub(srv: &Server, args: &[&str]) {
    // MQTT 5 has its own listener on the embedded broker.
    let port = if args.contains(&"mqttv5") {
        srv.mqtt_v5
    } else {
        srv.mqtt
    };
    let prog = require_program("mosquitto_pub", "mosquitto-clients");
    let out = Command::new(prog)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn mosquitto_pub_single_values_batches_and_junk() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let now = now_ms();

    // One sample per message: plain number, JSON with ts, boolean, state name.
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1/l1/m1/temp", "-m", "301.5"]);
    mosquitto_pub(
        &srv,
        &[
            "-t",
            "gemba/v1/s1/a1/l1/m1/temp",
            "-m",
            &format!("{{\"value\": 302.5, \"ts\": {}}}", now - 1000),
        ],
    );
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1/l1/m1/door", "-m", "true"]);
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1/l1/m1/state", "-m", "running"]);
    // Machine batch, with MQTT 5.
    mosquitto_pub(
        &srv,
        &[
            "-V",
            "mqttv5",
            "-t",
            "gemba/v1/s1/a1/l1/m1",
            "-m",
            &format!(
                "{{\"ts\": {}, \"values\": {{\"speed\": 1500, \"temp\": 303.5}}}}",
                now - 500
            ),
        ],
    );
    // Junk: undecodable payload, unknown signal, wrong topic shape, out-of-range value.
    mosquitto_pub(
        &srv,
        &["-t", "gemba/v1/s1/a1/l1/m1/temp", "-m", "{not json"],
    );
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1/l1/m1/unknown", "-m", "1"]);
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1", "-m", "1"]);
    mosquitto_pub(&srv, &["-t", "gemba/v1/s1/a1/l1/m1/temp", "-m", "-40"]);

    let temps = eventually(Duration::from_secs(10), || {
        let t = srv.samples("s1/a1/l1/m1/temp");
        (t.len() >= 3).then_some(t)
    })
    .unwrap_or_else(|| panic!("MQTT samples did not arrive; log:\n{}", srv.logs()));
    let values: Vec<f64> = temps.iter().map(|p| p.1).collect();
    assert!(
        values.contains(&301.5) && values.contains(&302.5) && values.contains(&303.5),
        "{values:?}"
    );
    assert!(temps.iter().any(|p| p.0 == now - 1000));
    assert_eq!(
        temps.len(),
        3,
        "the out-of-range -40 must have been rejected: {temps:?}"
    );
    let speed = eventually(Duration::from_secs(5), || {
        let s = srv.samples("s1/a1/l1/m1/speed");
        (!s.is_empty()).then_some(s)
    })
    .unwrap();
    assert_eq!(speed, vec![(now - 500, 1500.0)]);
    assert_eq!(srv.samples("s1/a1/l1/m1/door")[0].1, 1.0);
    assert_eq!(srv.samples("s1/a1/l1/m1/state")[0].1, 1.0);

    // Junk is counted, not fatal.
    let counted = eventually(Duration::from_secs(5), || {
        let junk = srv.metric("gemba_mqtt_undecodable_messages_total");
        let rejected = srv.metric("gemba_ingest_rejected_items_total{source=\"mqtt\"}");
        (junk >= 1.0 && rejected >= 4.0).then_some((junk, rejected))
    });
    assert!(
        counted.is_some(),
        "junk not counted; metrics:\n{}",
        srv.get_text("/metrics").1
    );
    let (s, _) = srv.get_text("/healthz");
    assert_eq!(s, 200);
}

#[test]
fn mqtt5_client_and_many_messages() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{Client, MqttOptions};

    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let mut opts = MqttOptions::new("test-v5", "127.0.0.1", srv.mqtt_v5);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut conn) = Client::new(opts, 1000);
    let pump = std::thread::spawn(move || {
        for ev in conn.iter() {
            if ev.is_err() {
                break;
            }
        }
    });
    let t0 = now_ms() - 600_000;
    const N: i64 = 2_000;
    for i in 0..N {
        let payload = format!("{{\"ts\": {}, \"value\": {}}}", t0 + i, i);
        client
            .publish(
                "gemba/v1/s1/a1/l1/m1/speed",
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .unwrap();
    }
    let got = eventually(Duration::from_secs(20), || {
        let s = srv.samples("s1/a1/l1/m1/speed");
        (s.len() as i64 == N).then_some(s)
    })
    .unwrap_or_else(|| panic!("not all {N} MQTT 5 messages arrived; log:\n{}", srv.logs()));
    assert_eq!(got[0], (t0, 0.0));
    assert_eq!(got[N as usize - 1], (t0 + N - 1, (N - 1) as f64));
    let _ = client.disconnect();
    let _ = pump.join();
}

/// A real Mosquitto broker with password authentication; Gemba subscribes to it as an external broker.
#[test]
fn external_mosquitto_broker_with_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = common::start_mosquitto_with_users(dir.path(), &[("gemba", "s3cret")]);

    // The generated config has an [mqtt] table already; switch it to external through the environment.
    let srv = Server::start_with_env(
        &dir.path().join("gemba2"),
        &format!(
            "[mqtt.external]\nhost = \"127.0.0.1\"\nport = {port}\nusername = \"gemba\"\npassword = \"s3cret\"\nclient_id = \"gemba-test\"\n"
        ),
        &[("GEMBA__MQTT__MODE", "external")],
    );
    let publish = |payload: &str| {
        let out = Command::new(require_program("mosquitto_pub", "mosquitto-clients"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                "gemba",
                "-P",
                "s3cret",
                "-q",
                "1",
            ])
            .args(["-t", "gemba/v1/s1/a1/l1/m1/temp", "-m", payload])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The subscriber may still be connecting: publish until the first sample arrives.
    let got = eventually(Duration::from_secs(15), || {
        publish("310.5");
        let s = srv.samples("s1/a1/l1/m1/temp");
        (!s.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "nothing arrived from the external broker; log:\n{}",
            srv.logs()
        )
    });
    assert_eq!(got[0].1, 310.5);
    // The embedded broker is not started in external mode.
    assert!(std::net::TcpStream::connect(("127.0.0.1", srv.mqtt)).is_err());
}

/// TLS to an external Mosquitto broker, with a CA and server certificate made for the test.
#[test]
fn external_mosquitto_broker_over_tls() {
    let openssl = require_program("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=gemba-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let port = common::free_port();
    // Run as root, mosquitto drops to user "mosquitto", which cannot read the test's private key.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    std::fs::write(
        d.join("mosquitto.conf"),
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n{1}",
            d.display(),
            if is_root { "user root\n" } else { "" }
        ),
    )
    .unwrap();
    let _broker = common::start_mosquitto(&d.join("mosquitto.conf"), port);
    let srv = Server::start_with_env(
        &d.join("gemba"),
        &format!(
            "[mqtt.external]\nhost = \"127.0.0.1\"\nport = {port}\ntls = true\nca_file = \"{}\"\nclient_id = \"gemba-tls\"\n",
            d.join("ca.pem").display()
        ),
        &[("GEMBA__MQTT__MODE", "external")],
    );
    let publish = || {
        let out = Command::new(require_program("mosquitto_pub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
            .arg(d.join("ca.pem"))
            .args(["-q", "1", "-t", "gemba/v1/s1/a1/l1/m1/temp", "-m", "311.5"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let got = eventually(Duration::from_secs(15), || {
        publish();
        let s = srv.samples("s1/a1/l1/m1/temp");
        (!s.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| panic!("nothing arrived over TLS; log:\n{}", srv.logs()));
    assert_eq!(got[0].1, 311.5);
}
