//! The logistics and energy pages in a real browser: `gemba demo --history 6h`, then
//! `web-tests/logistics.mjs` drives Debian's Chromium through playwright-core (inventory, a
//! genealogy backward and forward, kWh per good part, CO2e per lot, 简体中文, screenshots).
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix web-tests`, like `dashboard.rs`; a
//! missing piece fails the test with what to install.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{free_port, run_browser_script, start_demo, wait_live};

#[test]
fn logistics_and_energy_pages_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "6h", &log);
    wait_live(&log, Duration::from_secs(300));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logistics");
    let figures = run_browser_script(
        "logistics.mjs",
        &format!("http://127.0.0.1:{http}"),
        &out,
        Some(&log),
    );
    assert_eq!(figures["ok"], true, "{figures}");
    for shot in ["logistics.png", "energy.png", "energy-zh-CN.png"] {
        assert!(
            out.join(shot).exists(),
            "{shot} missing in {}",
            out.display()
        );
    }
    eprintln!(
        "logistics pages: {figures}\nscreenshots in {}",
        out.display()
    );
}
