//! The Production and Maintenance pages in a real browser: `gemba demo` on free ports, then
//! `web-tests/production.mjs` (OEE with its losses, machines and rows; a work order created,
//! assigned, started and done through the page; the nav in 简体中文).
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix web-tests` (as `dashboard.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{free_port, run_browser_script, start_demo, wait_live};

#[test]
fn production_and_maintenance_pages_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "1h", &log);
    wait_live(&log, Duration::from_secs(120));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("production");
    let figures = run_browser_script(
        "production.mjs",
        &format!("http://127.0.0.1:{http}"),
        &out,
        Some(&log),
    );
    assert_eq!(figures["ok"], true, "{figures}");
    // Eight machines, the fully productive time and seven losses, OEE shown as a percentage.
    assert_eq!(figures["machine_rows"], 8, "{figures}");
    assert_eq!(figures["loss_rows"], 9, "{figures}");
    assert!(
        figures["oee_text"].as_str().unwrap().contains('%'),
        "{figures}"
    );
    assert_eq!(figures["work_order_done"], true);
    eprintln!(
        "production page figures: {figures}\nscreenshots in {}",
        out.display()
    );
}
