//! The dashboard in a real browser: `gemba demo` on free ports, then `web-tests/dashboard.mjs`
//! drives Debian's Chromium through playwright-core (load time, live values, an 8 h chart from
//! aggregates, zoom, 简体中文, memory over 30 s of live updates, screenshots).
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install -y chromium`) and
//! `npm ci --prefix web-tests`; `scripts/test` installs them. A missing piece fails the test with
//! what to install, it is never skipped.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, bin, free_port, require_program};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start_demo(dir: &Path, http: u16, log: &Path) -> KillOnDrop {
    let config = dir.join("demo.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["demo", "--history", "1h", "--listen"])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

fn wait_live(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("Gemba demo is live") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "demo not live in 120 s; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn dashboard_in_chromium() {
    let root = repo_root();
    let node = require_program("node", "nodejs");
    let chromium = std::env::var("GEMBA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "this test needs Chromium at {chromium}: install it with `apt-get install -y chromium` (scripts/test does)"
    );
    assert!(
        root.join("web-tests/node_modules/playwright-core").exists(),
        "this test needs playwright-core: run `npm ci --prefix web-tests` (scripts/test does)"
    );

    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("demo.log");
    let _demo = start_demo(dir.path(), http, &log);
    wait_live(&log);

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let run = Command::new(node)
        .arg(root.join("web-tests/dashboard.mjs"))
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
        "web-tests/dashboard.mjs failed ({}):\n{stdout}\n{stderr}\ndemo log:\n{}",
        run.status,
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON figures ({e}):\n{stdout}"));
    assert_eq!(figures["ok"], true, "{figures}");
    assert!(figures["page_load_ms"].as_f64().unwrap() < 1000.0, "{figures}");
    assert!(figures["chart_points"].as_u64().unwrap() > 10, "{figures}");
    for shot in ["overview.png", "machine.png", "overview-zh-CN.png"] {
        assert!(out.join(shot).exists(), "{shot} missing in {}", out.display());
    }
    eprintln!("dashboard figures: {figures}\nscreenshots in {}", out.display());
}
