//! The Production and Maintenance pages in a real browser: `gemba demo` on free ports, then
//! `web-tests/production.mjs` (OEE with its losses, machines and rows; a work order created,
//! assigned, started and done through the page; the nav in 简体中文).
//!
//! Needs `node`, `/usr/bin/chromium` and `npm ci --prefix web-tests` (as `dashboard.rs`).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, require_program, start_demo, wait_live};

#[test]
fn production_and_maintenance_pages_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let node = require_program("node", "nodejs");
    let chromium = std::env::var("GEMBA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "this test needs Chromium at {chromium}: `apt-get install -y chromium`"
    );
    assert!(
        root.join("web-tests/node_modules/playwright-core").exists(),
        "this test needs playwright-core: run `npm ci --prefix web-tests`"
    );
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, "1h", &log);
    wait_live(&log, Duration::from_secs(120));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("production");
    let run = Command::new(node)
        .arg(root.join("web-tests/production.mjs"))
        .arg(format!("http://127.0.0.1:{http}"))
        .arg(&out)
        .env("GEMBA_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| {
            panic!(
                "no JSON figures ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&run.stderr)
            )
        });
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
