//! Shared helpers of the end-to-end tests: start the real `gemba` binary on free ports with its own
//! data directory, talk to it over HTTP, stop it.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Authentication has its own tests (security.rs); the other servers run without it and without
/// a rate limit they could reach.
pub const AUTH_OFF: &str = "[auth]\nenabled = false\nrate_per_s = 1000000.0\nburst = 1000000\n";

/// Authentication on, with a rate limit the tests do not reach (security and attack tests).
pub const AUTH_ON: &str = "[auth]\nenabled = true\nrate_per_s = 100000\nburst = 100000\n";

/// `gemba token create NAME --role ROLE [--scope SCOPE]` against the server's configuration.
pub fn token(srv: &Server, name: &str, role: &str, scope: Option<&str>) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(["token", "create", name, "--role", role, "--config"])
        .arg(&srv.config);
    if let Some(s) = scope {
        cmd.args(["--scope", s]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(t.starts_with("gmb_"), "{t}");
    t
}

/// A port free now, below Linux's ephemeral range (32768–60999): a port the kernel hands out for
/// `:0` can be taken by the next outgoing connection of a parallel test before the server binds
/// it (seen in CI: "Address already in use" for an MQTT port). Ports are drawn at random from
/// 20000–32767 and never handed out twice by this process.
/// An HTTP client that returns 4xx/5xx answers instead of errors, each call bounded by `timeout`.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .new_agent()
}

/// `gemba cert self-signed --out <dir>/tls`; returns the folder with ca.pem, server.pem, server.key.
pub fn self_signed_certs(dir: &Path) -> PathBuf {
    let tls = dir.join("tls");
    let out = Command::new(bin())
        .args(["cert", "self-signed", "--out"])
        .arg(&tls)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tls
}

pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let mut x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed)
        ^ u64::from(std::process::id()).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ u64::try_from(now_ms()).unwrap_or(0);
    x |= 1;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + u16::try_from(x % 12_768).unwrap();
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port in 20000-32767");
}

/// The binary the tests spawn: the one cargo built with the tests, or `GEMBA_TEST_BIN` when set
/// (`scripts/attack` replays the attack suites against a release build that way).
pub fn bin() -> PathBuf {
    match std::env::var_os("GEMBA_TEST_BIN") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "GEMBA_TEST_BIN={} is not a file",
                path.display()
            );
            path
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_gemba")),
    }
}

/// A running `gemba serve`.
pub struct Server {
    pub child: Child,
    pub http: u16,
    pub mqtt: u16,
    pub mqtt_v5: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub agent: ureq::Agent,
}

pub const PLANT: &str = r#"
[enterprise]
name = "testco"

[[sites]]
name = "s1"

[[sites.areas]]
name = "a1"

[[sites.areas.lines]]
name = "l1"

[[sites.areas.lines.machines]]
name = "m1"
ideal_cycle_time_s = 10.0

[[sites.areas.lines.machines.signals]]
name = "temp"
unit = "K"
range = [200.0, 400.0]

[[sites.areas.lines.machines.signals]]
name = "speed"
unit = "rpm"

[[sites.areas.lines.machines.signals]]
name = "state"
kind = "state"
states = ["idle", "running", "down"]

[[sites.areas.lines.machines.signals]]
name = "door"
kind = "boolean"
"#;

impl Server {
    /// Writes a config (free ports, `extra` TOML appended) and the test plant into `dir`, then starts.
    pub fn start_in(dir: &Path, extra: &str) -> Server {
        Self::start_with_env(dir, extra, &[])
    }

    /// Like [`Server::start_in`] with extra environment variables (e.g. `GEMBA__…` overrides).
    pub fn start_with_env(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Server {
        Self::start_with_plant(dir, PLANT, extra, env)
    }

    /// Like [`Server::start_with_env`] with another plant file.
    pub fn start_with_plant(dir: &Path, plant: &str, extra: &str, env: &[(&str, &str)]) -> Server {
        let http = free_port();
        let mqtt = free_port();
        let mqtt_v5 = free_port();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("plant.toml"), plant).unwrap();
        let config = dir.join("gemba.toml");
        let mut f = std::fs::File::create(&config).unwrap();
        write!(
            f,
            "[server]\nlisten = \"127.0.0.1:{http}\"\n\
             [storage]\npath = \"{}\"\n\
             [mqtt]\nlisten = \"127.0.0.1:{mqtt}\"\nlisten_v5 = \"127.0.0.1:{mqtt_v5}\"\n\
             [plant]\nfile = \"plant.toml\"\n{extra}\n{auth}",
            dir.join("data/gemba.db").display(),
            auth = if extra.contains("[auth]") {
                ""
            } else {
                AUTH_OFF
            }
        )
        .unwrap();
        Self::spawn(dir, config, http, mqtt, mqtt_v5, env)
    }

    /// Restarts a server with the same directory and configuration.
    pub fn restart(dir: &Path, config: PathBuf, http: u16, mqtt: u16, mqtt_v5: u16) -> Server {
        Self::spawn(dir, config, http, mqtt, mqtt_v5, &[])
    }

    fn spawn(
        dir: &Path,
        config: PathBuf,
        http: u16,
        mqtt: u16,
        mqtt_v5: u16,
        env: &[(&str, &str)],
    ) -> Server {
        let log = std::fs::File::create(dir.join(format!("server-{}.log", now_ms()))).unwrap();
        let child = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn gemba serve");
        let agent = http_agent(Duration::from_secs(60));
        let mut s = Server {
            child,
            http,
            mqtt,
            mqtt_v5,
            dir: dir.to_owned(),
            config,
            agent,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gemba exited early with {status}; log:\n{}", self.logs());
            }
            if let Ok(r) = self.agent.get(&self.url("/healthz")).call()
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server not ready in 30 s; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            let mut files: Vec<_> = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
                .collect();
            files.sort_by_key(|e| e.file_name());
            for e in files {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// POSTs a body; returns (status, parsed JSON body).
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
        let mut r = self
            .agent
            .post(&self.url(path))
            .header("content-type", content_type)
            .send(body)
            .expect("POST");
        let status = r.status().as_u16();
        let text = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, "application/json", body.to_string().as_bytes())
    }

    /// GETs a path with a query string; returns (status, body text).
    pub fn get_text(&self, path_and_query: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(&self.url(path_and_query))
            .call()
            .expect("GET");
        let status = r.status().as_u16();
        (
            status,
            r.body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .unwrap_or_default(),
        )
    }

    pub fn get_json(&self, path_and_query: &str) -> (u16, Value) {
        let (s, t) = self.get_text(path_and_query);
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    /// Raw samples of a signal over all time (paged through the API's 1,000,000-sample limit).
    pub fn samples(&self, signal: &str) -> Vec<(i64, f64)> {
        let mut out: Vec<(i64, f64)> = Vec::new();
        let mut from = 946_684_800_000i64; // 2000-01-01
        loop {
            let (s, v) = self.get_json(&format!(
                "/api/v1/series?signal={signal}&from={from}&to=4102444800000&limit=1000000"
            ));
            assert_eq!(s, 200, "{v}");
            let page: Vec<(i64, f64)> = v["points"]
                .as_array()
                .unwrap_or_else(|| {
                    panic!(
                        "no points in {}",
                        v.to_string().chars().take(500).collect::<String>()
                    )
                })
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            let truncated = v["truncated"].as_bool().unwrap_or(false);
            if let Some(last) = page.last() {
                from = last.0 + 1;
            }
            out.extend(page);
            if !truncated {
                return out;
            }
        }
    }

    pub fn metric(&self, name_and_labels: &str) -> f64 {
        let (_, text) = self.get_text("/metrics");
        text.lines()
            .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn stop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill9();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Fails with an install hint when a required external program is missing.
pub fn require_program(name: &str, package: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .expect("sh");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !path.is_empty(),
        "this test needs `{name}`: install it with `apt-get install -y {package}` (the CI script .ci/run does)"
    );
    PathBuf::from(path)
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `gemba` binary; returns (success, stdout + stderr).
pub fn run_gemba(args: &[&str]) -> (bool, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a real Mosquitto broker with `conf` and waits until it listens on `port`.
pub fn start_mosquitto(conf: &Path, port: u16) -> KillOnDrop {
    let mosquitto = require_program("mosquitto", "mosquitto");
    let broker = KillOnDrop(
        Command::new(mosquitto)
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("mosquitto listens");
    broker
}

/// Starts `gemba demo` with `--history history` on HTTP port `http` and free MQTT ports (kept in
/// `dir/demo.toml`, so a restart in the same directory reuses them), logging to `log`.
pub fn start_demo(dir: &Path, http: u16, history: &str, log: &Path) -> KillOnDrop {
    let config = dir.join("demo.toml");
    if !config.exists() {
        std::fs::write(
            &config,
            format!(
                "{AUTH_OFF}[mqtt]\nlisten = \"127.0.0.1:{}\"\nlisten_v5 = \"127.0.0.1:{}\"\n",
                free_port(),
                free_port()
            ),
        )
        .unwrap();
    }
    let child = Command::new(bin())
        .args(["demo", "--history", history, "--listen"])
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

/// Waits up to `timeout` until the demo's log says it is live; returns the log.
pub fn wait_live(log: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("Gemba demo is live") {
            return text;
        }
        // A demo that failed to start says so and exits: no need to wait out the timeout.
        assert!(
            !text.lines().any(|l| l.starts_with("error:")),
            "the demo failed to start; log:\n{text}"
        );
        assert!(
            Instant::now() < deadline,
            "demo not live in {timeout:?}; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts a Mosquitto broker on a free port that admits only `users` (name, password); returns
/// the broker and its port.
pub fn start_mosquitto_with_users(dir: &Path, users: &[(&str, &str)]) -> (KillOnDrop, u16) {
    let passwd = require_program("mosquitto_passwd", "mosquitto");
    let port = free_port();
    let pwfile = dir.join("passwd");
    for (i, (user, pw)) in users.iter().enumerate() {
        let mut cmd = Command::new(&passwd);
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let st = cmd.arg(&pwfile).args([user, pw]).status().unwrap();
        assert!(st.success(), "mosquitto_passwd failed for {user}");
    }
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            pwfile.display()
        ),
    )
    .unwrap();
    (start_mosquitto(&conf, port), port)
}

/// Runs a browser script of `web-tests/` (`node web-tests/<script> <base> <out>`) against a live
/// server in Debian's Chromium through playwright-core and returns the figures it prints as JSON
/// on its last line. A missing node, Chromium or playwright-core fails with what to install
/// (`scripts/test` installs them); a failing script fails with its output and `log` (the
/// server's log, when there is one).
#[allow(dead_code)]
pub fn run_browser_script(script: &str, base: &str, out: &Path, log: Option<&Path>) -> Value {
    run_browser_script_env(script, base, out, log, &[])
}

/// [`run_browser_script`] with extra environment variables for the script.
pub fn run_browser_script_env(
    script: &str,
    base: &str,
    out: &Path,
    log: Option<&Path>,
    env: &[(&str, &str)],
) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
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
    let run = Command::new(node)
        .arg(root.join("web-tests").join(script))
        .arg(base)
        .arg(out)
        .env("GEMBA_CHROMIUM", &chromium)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let server_log = log
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        run.status.success(),
        "web-tests/{script} failed ({}):\n{stdout}\n{stderr}\nserver log:\n{server_log}",
        run.status
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!("no JSON figures from web-tests/{script} ({e}):\n{stdout}\n{stderr}")
    })
}

/// The Python of the test venv with the pinned peers of scripts/test-requirements.txt
/// (`GEMBA_TEST_PYTHON`, exported by scripts/test; else its default venv). Fails with what to
/// run when it is missing or lacks `module`.
pub fn test_python(module: &str) -> PathBuf {
    let py = std::env::var_os("GEMBA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/gemba-test-venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs the Python module {module} in {}: run scripts/test, or \
         python3 -m venv /var/tmp/gemba-test-venv && \
         /var/tmp/gemba-test-venv/bin/pip install -r scripts/test-requirements.txt",
        py.display()
    );
    py
}

/// A peer script shipped in crates/gemba/tests/peers/.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}
