//! `gemba import csv` end to end: against a running server and with --direct.

#![allow(clippy::unwrap_used)]

mod common;

use common::Server;

const CSV: &str = "UDI,Product ID,time,Air temperature [K],Torque [Nm]\n\
1,M14860,2026-01-01T00:00:00Z,298.1,42.8\n\
2,L47181,2026-01-01T00:00:01Z,298.2,46.3\n\
3,L47182,2026-01-01T00:00:02Z,hot,49.4\n\
4,L47183,2026-01-01T00:00:03Z,298.3\n\
5,L47184,2026-01-01T00:00:04Z,298.4,39.5\n";

fn import(args: &[&str]) -> (bool, String) {
    common::run_gemba(&[&["import", "csv"], args].concat())
}

#[test]
fn imports_through_the_server_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    let file = dir.path().join("ai4i.csv");
    std::fs::write(&file, CSV).unwrap();
    let server = srv.url("");
    let (ok, out) = import(&[
        file.to_str().unwrap(),
        "--server",
        &server,
        "--machine",
        "s1/a1/l1/m1",
        "--map",
        "ts=time",
        "--map",
        "temp=Air temperature [K]",
        "--map",
        "speed=Torque [Nm]",
        "--batch-rows",
        "2",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("imported 8 samples from 5 rows"), "{out}");
    assert!(out.contains("2 rejected"), "{out}");
    assert!(out.contains("row 3") && out.contains("\"hot\""), "{out}");
    let t0 = 1_767_225_600_000i64;
    assert_eq!(
        srv.samples("s1/a1/l1/m1/temp"),
        vec![
            (t0, 298.1),
            (t0 + 1000, 298.2),
            (t0 + 3000, 298.3),
            (t0 + 4000, 298.4)
        ]
    );
    assert_eq!(srv.samples("s1/a1/l1/m1/speed").len(), 4);

    // A mapping to a missing column is an error that lists the columns.
    let (ok, out) = import(&[
        file.to_str().unwrap(),
        "--server",
        &server,
        "--machine",
        "s1/a1/l1/m1",
        "--map",
        "ts=time",
        "--map",
        "temp=Air temp",
    ]);
    assert!(!ok);
    assert!(
        out.contains("no column \"Air temp\"") && out.contains("\"Air temperature [K]\""),
        "{out}"
    );
    // Unknown signals are rejected by the server (policy reject) and reported per row.
    let (ok, out) = import(&[
        file.to_str().unwrap(),
        "--server",
        &server,
        "--machine",
        "s1/a1/l1/m1",
        "--map",
        "ts=time",
        "--map",
        "nope=Torque [Nm]",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("unknown signal"), "{out}");
}

#[test]
fn direct_import_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gemba.toml");
    let http = common::free_port();
    std::fs::write(dir.path().join("plant.toml"), common::PLANT).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n[storage]\npath = \"{}\"\n[plant]\nfile = \"plant.toml\"\n[mqtt]\nmode = \"off\"\n{}",
            dir.path().join("data/gemba.db").display(),
            common::AUTH_OFF
        ),
    )
    .unwrap();
    let file = dir.path().join("x.csv");
    std::fs::write(&file, "a,b\n1,300\n2,301\n3,302\n").unwrap();
    let (ok, out) = import(&[
        file.to_str().unwrap(),
        "--direct",
        "--config",
        cfg.to_str().unwrap(),
        "--map",
        "s1/a1/l1/m1/temp=b",
        "--start",
        "2026-01-01T00:00:00Z",
        "--interval",
        "1m",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("imported 3 samples"), "{out}");
    // The data is in the store the server then opens.
    let srv = Server::restart(dir.path(), cfg, http, 0, 0);
    let t0 = 1_767_225_600_000i64;
    assert_eq!(
        srv.samples("s1/a1/l1/m1/temp"),
        vec![(t0, 300.0), (t0 + 60_000, 301.0), (t0 + 120_000, 302.0)]
    );
}
