//! The command line: version, config checking, and `gemba query` against a running server.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, now_ms};
use serde_json::json;

fn gemba(args: &[&str]) -> (bool, String) {
    common::run_gemba(args)
}

#[test]
fn version_and_help() {
    let (ok, out) = gemba(&["--version"]);
    assert!(ok);
    assert_eq!(out.trim(), format!("gemba {}", env!("CARGO_PKG_VERSION")));
    let (ok, out) = gemba(&["--help"]);
    assert!(ok);
    for cmd in ["serve", "demo", "import", "query", "bench", "config"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
}

#[test]
fn config_check_accepts_good_files_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    // The printed default configuration, with the sample plant, is valid.
    let (ok, default) = gemba(&["config", "default"]);
    assert!(ok);
    std::fs::write(dir.path().join("gemba.toml"), &default).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/plant.toml"),
        dir.path().join("plant.toml"),
    )
    .unwrap();
    let (ok, out) = gemba(&[
        "config",
        "check",
        dir.path().join("gemba.toml").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("120 signals") && out.contains("6 operators") && out.contains("3 shifts"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage]\nsynk = \"full\"\n").unwrap();
    let (ok, out) = gemba(&["config", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("synk"), "{out}");

    let plant = dir.path().join("badplant.toml");
    std::fs::write(
        &plant,
        "[[sites]]\nname = \"s\"\n[[sites.areas]]\nname = \"a\"\n[[sites.areas.lines]]\nname = \"l\"\n\
         [[sites.areas.lines.machines]]\nname = \"m\"\n[[sites.areas.lines.machines.signals]]\nname = \"x\"\nrange = [5.0, 1.0]\n",
    )
    .unwrap();
    let (ok, out) = gemba(&["config", "plant", plant.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("s/a/l/m/x") && out.contains("range"), "{out}");
}

#[test]
fn query_prints_tables_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let now = now_ms();
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"points": [{"signal": "s1/a1/l1/m1/temp", "ts": now - 1000, "value": 301.25},
                           {"signal": "s1/a1/l1/m1/state", "ts": now, "value": "down"}],
                "events": [{"ts": now, "asset": "s1/a1/l1/m1", "type": "state", "state": "down", "reason": "jam"}]}),
    );
    assert_eq!(s, 200, "{v}");
    let server = srv.url("");
    let (ok, out) = gemba(&["query", "--server", &server, "latest", "s1/a1/l1/m1"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("s1/a1/l1/m1/temp") && out.contains("301.25") && out.contains("down"),
        "{out}"
    );
    let (ok, out) = gemba(&[
        "query",
        "--server",
        &server,
        "--csv",
        "series",
        "s1/a1/l1/m1/temp",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("ts,time,value\n") && out.contains(",301.25"),
        "{out}"
    );
    let (ok, out) = gemba(&["query", "--server", &server, "events", "--type", "state"]);
    assert!(ok, "{out}");
    assert!(out.contains("jam"), "{out}");
    let (ok, out) = gemba(&["query", "--server", &server, "assets"]);
    assert!(ok && out.contains("m1 [machine]"), "{out}");
    let (ok, out) = gemba(&["query", "--server", &server, "series", "s1/a1/l1/m1/nope"]);
    assert!(!ok);
    assert!(out.contains("unknown signal"), "{out}");
    let (ok, out) = gemba(&["query", "--server", "http://127.0.0.1:1", "latest"]);
    assert!(!ok);
    assert!(out.contains("is `gemba serve` running"), "{out}");
}

/// `gemba token create --expires-days`: the message and the check agree (1 to 3650 days; 0 and
/// fractions of a day below 1 are refused; leaving it out means never).
#[test]
fn token_expiry_days_message_and_check_agree() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gemba.db");
    let store = store.to_str().unwrap();
    let create = |days: Option<&str>| {
        let mut args = vec!["token", "create", "t", "--role", "viewer", "--store", store];
        if let Some(d) = days {
            args.push(d);
        }
        gemba(&args)
    };
    for bad in [
        "--expires-days=0",
        "--expires-days=0.5",
        "--expires-days=-1",
        "--expires-days=3651",
        "--expires-days=NaN",
    ] {
        let (ok, out) = create(Some(bad));
        assert!(!ok, "{bad} was accepted: {out}");
        assert!(out.contains("between 1 and 3650"), "{bad}: {out}");
    }
    for good in [Some("--expires-days=1"), Some("--expires-days=3650"), None] {
        let (ok, out) = create(good);
        assert!(ok, "{good:?}: {out}");
        assert!(out.contains("gmb_"), "{good:?}: {out}");
    }
}
