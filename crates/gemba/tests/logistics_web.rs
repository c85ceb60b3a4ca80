//! The logistics and energy pages in a real browser: `gemba demo --history 6h`, then
//! `web-tests/logistics.mjs` drives Debian's Chromium through playwright-core (inventory, a
//! genealogy backward and forward, kWh per good part, CO2e per lot, 简体中文, screenshots).
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix web-tests`, like `dashboard.rs`; a
//! missing piece fails the test with what to install.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, require_program, start_demo, wait_live};

#[test]
fn logistics_and_energy_pages_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node = require_program("node", "nodejs");
    let chromium = std::env::var("GEMBA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "this test needs Chromium at {chromium}: install it with `apt-get install -y chromium`"
    );
    assert!(
        root.join("web-tests/node_modules/playwright-core").exists(),
        "this test needs playwright-core: run `npm ci --prefix web-tests`"
    );
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "6h", &log);
    wait_live(&log, Duration::from_secs(300));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logistics");
    let run = Command::new(node)
        .arg(root.join("web-tests/logistics.mjs"))
        .arg(format!("http://127.0.0.1:{http}"))
        .arg(&out)
        .env("GEMBA_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "web-tests/logistics.mjs failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let figures: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
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
