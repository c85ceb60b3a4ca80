//! Visual inspection end to end (docs/NN.md#visual-inspection): a conv VAE trained on synthetic
//! good parts and registered on a running server judges good and defective parts over
//! `POST /api/v1/inspect`, its heat map points at the defect, results are stored and linked to
//! part, lot and machine, `gemba inspect DIR` posts a folder (with one broken file), bad requests
//! get precise 4xx answers, and a token scoped to one machine inspects only for it. The quality
//! page is checked in Chromium (`web-tests/inspect.mjs`; needs node, /usr/bin/chromium and
//! `npm ci --prefix web-tests`, like dashboard.rs).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, run_gemba, token};
use serde_json::{Value, json};

const SIDE: u32 = 16;

/// A small deterministic generator (no dependency on the rand crate's versions).
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// A 16 × 16 grey part: dark and light bands four pixels high, plus noise; a defect is a 4 × 4
/// blob of inverted contrast (light on the dark bands, dark on the light ones) with its top-left
/// corner at `defect`. (The conv VAE's score is a Bernoulli −ELBO: a pixel moving towards the grey
/// level its model finds unlikely raises it, so a blob must contrast with its surroundings.)
fn part(seed: u64, defect: Option<(u32, u32)>) -> image::GrayImage {
    let mut rng = Lcg(seed.wrapping_mul(7919).wrapping_add(17));
    image::GrayImage::from_fn(SIDE, SIDE, |x, y| {
        let band = if (y / 4) % 2 == 0 { 30.0 } else { 225.0 };
        let mut v = band + (rng.unit() - 0.5) * 16.0;
        if let Some((dx, dy)) = defect
            && (dx..dx + 4).contains(&x)
            && (dy..dy + 4).contains(&y)
        {
            v = 255.0 - band;
        }
        image::Luma([v.round().clamp(0.0, 255.0) as u8])
    })
}

fn png_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

const DEFECTS: [(u32, u32); 6] = [(2, 2), (10, 3), (6, 9), (11, 11), (1, 12), (8, 6)];

/// Trains a conv VAE on `n` good parts in `dir/good`; returns the artefact path.
fn train_conv_vae(
    dir: &Path,
    n: u64,
    epochs: &str,
    register: Option<&Server>,
) -> std::path::PathBuf {
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    for i in 0..n {
        part(i, None)
            .save(good.join(format!("g{i:03}.png")))
            .unwrap();
    }
    let out = dir.join("cells-vae.json");
    let url = register.map(|s| s.url(""));
    let mut args = vec![
        "train",
        "--model",
        "vae",
        "--data",
        good.to_str().unwrap(),
        "--size",
        "16x16",
        "--epochs",
        epochs,
        "--batch-size",
        "8",
        "--param",
        "z_dim=4",
        "--param",
        "hidden=[32]",
        "--param",
        "learning_rate=0.005",
        "--param",
        "patience=0",
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(u) = &url {
        args.extend(["--register", "cells", "--server", u.as_str()]);
    }
    let t = Instant::now();
    let (ok, text) = run_gemba(&args);
    assert!(ok, "{text}");
    eprintln!(
        "trained the conv VAE ({n} images, {epochs} epochs) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    out
}

/// The (x, y) of the reddest pixel of a heat map PNG (red minus blue: blue is no error, red the
/// image's largest), in the model's 16 × 16 coordinates.
fn hottest(png: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(png).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let (mut best, mut at) = (i32::MIN, (0, 0));
    for (x, y, p) in img.enumerate_pixels() {
        let heat = i32::from(p.0[0]) - i32::from(p.0[2]);
        if heat > best {
            best = heat;
            at = (x * SIDE / w, y * SIDE / h);
        }
    }
    at
}

fn get_bytes(srv: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let mut r = srv.agent.get(&srv.url(path)).call().unwrap();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        r.status().as_u16(),
        ctype,
        r.body_mut().read_to_vec().unwrap(),
    )
}

#[test]
fn a_conv_vae_inspects_parts_over_http_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_in(dir.path(), "");
    // The lot the parts belong to, created by a `lot` event (so the genealogy knows it).
    let (s, v) = srv.post_json(
        "/api/v1/ingest",
        &json!({"events": [{"ts": common::now_ms() - 60_000, "asset": "s1/a1/l1", "type": "lot",
                            "lot": "L-7", "product": "cell", "quantity": 100, "location": "s1/a1/l1"}]}),
    );
    assert_eq!(s, 200, "{v}");
    train_conv_vae(dir.path(), 48, "30", Some(&srv));

    // Good parts (not seen in training) and defective ones.
    let mut good_scores = Vec::new();
    let mut passes = 0;
    let mut times = Vec::new();
    for i in 0..12u64 {
        let t = Instant::now();
        let (s, v) = srv.post(
            &format!("/api/v1/inspect?model=cells&part=G-{i}&lot=L-7&machine=s1/a1/l1/m1"),
            "image/png",
            &png_bytes(&part(1000 + i, None)),
        );
        times.push(t.elapsed());
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["model"], "cells@1", "{v}");
        assert_eq!(v["lot"], "L-7");
        assert_eq!(v["machine"], "s1/a1/l1/m1");
        good_scores.push(v["score"].as_f64().unwrap());
        passes += usize::from(v["verdict"] == "pass");
    }
    let mut defect_ids = Vec::new();
    let mut defect_scores = Vec::new();
    for (k, d) in DEFECTS.iter().enumerate() {
        let t = Instant::now();
        let (s, v) = srv.post(
            &format!("/api/v1/inspect?model=cells@1&part=D-{k}&lot=L-7"),
            "image/png",
            &png_bytes(&part(2000 + k as u64, Some(*d))),
        );
        times.push(t.elapsed());
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["verdict"], "fail", "defect at {d:?} passed: {v}");
        defect_scores.push(v["score"].as_f64().unwrap());
        defect_ids.push((v["id"].as_i64().unwrap(), *d, v["heat_map_url"].clone()));
    }
    let max_good = good_scores.iter().copied().fold(f64::MIN, f64::max);
    let min_defect = defect_scores.iter().copied().fold(f64::MAX, f64::min);
    eprintln!(
        "good scores {good_scores:.2?}, defect scores {defect_scores:.2?}, {passes}/12 goods pass; \
         request times: first {:?} (model load), then mean {:?}",
        times[0],
        times[1..].iter().sum::<Duration>() / (times.len() - 1) as u32
    );
    assert!(
        min_defect > max_good,
        "defects must score higher than good parts: {defect_scores:?} vs {good_scores:?}"
    );
    assert!(passes >= 9, "only {passes} of 12 good parts passed");

    // The heat map is a PNG whose hottest spot lies on the injected defect.
    for (id, (dx, dy), url) in &defect_ids {
        assert_eq!(
            url.as_str().unwrap(),
            format!("/api/v1/inspections/{id}/heatmap.png")
        );
        let (s, ctype, png) = get_bytes(&srv, url.as_str().unwrap());
        assert_eq!(s, 200);
        assert_eq!(ctype, "image/png");
        let (x, y) = hottest(&png);
        assert!(
            (dx.saturating_sub(1)..dx + 5).contains(&x)
                && (dy.saturating_sub(1)..dy + 5).contains(&y),
            "inspection {id}: hottest pixel ({x}, {y}) is not on the defect at ({dx}, {dy})"
        );
    }

    // Stored and linked: by lot, part, machine and verdict; one by id.
    let (s, v) = srv.get_json("/api/v1/inspections?lot=L-7&limit=1000");
    assert_eq!(s, 200);
    assert_eq!(v["inspections"].as_array().unwrap().len(), 18, "{v}");
    let (_, v) = srv.get_json("/api/v1/inspections?verdict=fail&lot=L-7");
    assert!(v["inspections"].as_array().unwrap().len() >= DEFECTS.len());
    let (_, v) = srv.get_json("/api/v1/inspections?part=D-3");
    let one = &v["inspections"][0];
    assert_eq!(one["part"], "D-3", "{v}");
    assert_eq!(v["inspections"].as_array().unwrap().len(), 1);
    let (_, v) = srv.get_json("/api/v1/inspections?machine=s1/a1/l1/m1");
    assert_eq!(v["inspections"].as_array().unwrap().len(), 12);
    let (s, got) = srv.get_json(&format!("/api/v1/inspections/{}", one["id"]));
    assert_eq!(s, 200);
    assert_eq!(&got, one);
    let (s, v) = srv.get_json("/api/v1/inspections/424242");
    assert_eq!(s, 404, "{v}");
    // With a machine, each result is also an event at it (events page, genealogy process data).
    let (s, v) = srv.get_json("/api/v1/events?asset=s1/a1/l1/m1&type=custom:inspection&from=0");
    assert_eq!(s, 200, "{v}");
    let events = v.as_array().or_else(|| v["events"].as_array()).unwrap();
    assert_eq!(events.len(), 12, "{v}");
    assert_eq!(events[0]["attrs"]["model"], "cells@1", "{v}");
    assert_eq!(events[0]["attrs"]["lot"], "L-7", "{v}");

    // The CLI: a folder of 3 good, 2 defective and one broken file.
    let folder = dir.path().join("station");
    std::fs::create_dir(&folder).unwrap();
    for i in 0..3u64 {
        part(3000 + i, None)
            .save(folder.join(format!("ok{i}.png")))
            .unwrap();
    }
    for (k, d) in DEFECTS[..2].iter().enumerate() {
        part(4000 + k as u64, Some(*d))
            .save(folder.join(format!("bad{k}.png")))
            .unwrap();
    }
    let mut truncated = png_bytes(&part(5000, None));
    truncated.truncate(truncated.len() / 2);
    std::fs::write(folder.join("broken.png"), truncated).unwrap();
    let out = dir.path().join("heat");
    let t = Instant::now();
    let (ok, text) = run_gemba(&[
        "inspect",
        folder.to_str().unwrap(),
        "--model",
        "cells",
        "--lot",
        "L-7",
        "--machine",
        "s1/a1/l1/m1",
        "--part-from-name",
        "--out",
        out.to_str().unwrap(),
        "--server",
        &srv.url(""),
    ]);
    eprintln!(
        "gemba inspect (6 files) took {:.2} s:\n{text}",
        t.elapsed().as_secs_f64()
    );
    assert!(
        !ok,
        "a broken file must make the run fail at the end: {text}"
    );
    assert!(
        text.contains("5 inspected with cells@1: 2 failed, fail rate 40.0 %"),
        "{text}"
    );
    assert!(
        text.contains("broken.png: ") && text.contains("422") && text.contains("cannot be decoded"),
        "{text}"
    );
    let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or("");
    assert!(line("bad0.png").contains("fail"), "{text}");
    assert!(line("ok0.png").contains(" pass "), "{text}");
    for f in ["ok0.png", "bad1.png"] {
        let png = std::fs::read(out.join(format!("{f}.heatmap.png"))).unwrap();
        image::load_from_memory(&png).unwrap();
    }
    let (_, v) = srv.get_json("/api/v1/inspections?part=bad1");
    assert_eq!(v["inspections"][0]["verdict"], "fail", "{v}");

    // The quality page shows the latest inspections with their heat maps, and the genealogy of
    // lot L-7 its inspections (Chromium).
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inspect");
    let figures = common::run_browser_script("inspect.mjs", &srv.url(""), &shots, None);
    assert_eq!(figures["ok"], true, "{figures}");
    assert!(figures["cards"].as_u64().unwrap() >= 6, "{figures}");
    assert_eq!(figures["genealogy_inspections"], "L-7 23 8", "{figures}");
    eprintln!("quality page: {figures}; screenshot in {}", shots.display());
}

/// (what, path and query, request, body, expected status, error code, words of the message).
type Case<'a> = (&'a str, String, Req<'a>, Vec<u8>, u16, &'a str, &'a str);

#[derive(Default, Clone, Copy)]
struct Req<'a> {
    token: Option<&'a str>,
    ctype: Option<&'a str>,
}

fn post(srv: &Server, path: &str, r: &Req<'_>, body: &[u8]) -> (u16, Value) {
    let mut req = srv.agent.post(&srv.url(path));
    if let Some(t) = r.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(c) = r.ctype {
        req = req.header("content-type", c);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn bad_inspection_requests_get_precise_answers_and_scopes_hold() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with_env(
        dir.path(),
        "[auth]\nenabled = true\nrate_per_s = 100000\nburst = 100000\n",
        // The artefacts are about 600 KB.
        &[("GEMBA__SERVER__MAX_BODY_BYTES", "1000000")],
    );
    let admin = token(&srv, "admin", "admin", None);
    let camera = token(&srv, "camera", "operator", Some("s1/a1/l1/m1"));
    let viewer = token(&srv, "viewer", "viewer", None);
    let as_admin = Req {
        token: Some(&admin),
        ctype: Some("image/png"),
    };
    // A conv VAE (1 epoch: only its kind and input matter here) and a VAE on a table.
    let conv = train_conv_vae(dir.path(), 8, "1", None);
    let (s, v) = post(
        &srv,
        "/api/v1/models?name=cells",
        &Req {
            token: Some(&admin),
            ctype: Some("application/json"),
        },
        &std::fs::read(&conv).unwrap(),
    );
    assert_eq!(s, 201, "{v}");
    let csv = dir.path().join("t.csv");
    let mut rows = String::from("a,b,state\n");
    for i in 0..40 {
        let state = if i % 2 == 0 { "ok" } else { "fault" };
        rows.push_str(&format!(
            "{},{},{state}\n",
            i % 7 + 5 * (i % 2),
            (i * 3) % 11
        ));
    }
    std::fs::write(&csv, rows).unwrap();
    let table = dir.path().join("table-vae.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "vae",
        "--data",
        csv.to_str().unwrap(),
        "--drop",
        "state",
        "--epochs",
        "1",
        "--param",
        "hidden=[4]",
        "--param",
        "z_dim=2",
        "--out",
        table.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let (s, v) = post(
        &srv,
        "/api/v1/models?name=tabular",
        &Req {
            token: Some(&admin),
            ctype: Some("application/json"),
        },
        &std::fs::read(&table).unwrap(),
    );
    assert_eq!(s, 201, "{v}");
    // And a classifier (logistic regression).
    let logistic = dir.path().join("logistic.json");
    let (ok, text) = run_gemba(&[
        "train",
        "--model",
        "logistic",
        "--data",
        csv.to_str().unwrap(),
        "--target",
        "state",
        "--out",
        logistic.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let (s, v) = post(
        &srv,
        "/api/v1/models?name=classifier",
        &Req {
            token: Some(&admin),
            ctype: Some("application/json"),
        },
        &std::fs::read(&logistic).unwrap(),
    );
    assert_eq!(s, 201, "{v}");
    let good = png_bytes(&part(1, None));
    let m = "/api/v1/inspect?model=cells&machine=s1/a1/l1/m1";

    let cases: Vec<Case<'_>> = vec![
        (
            "truncated PNG",
            m.into(),
            Req { ..as_admin },
            good[..good.len() / 2].to_vec(),
            422,
            "bad_image",
            "Png",
        ),
        (
            "not an image",
            m.into(),
            Req { ..as_admin },
            b"hello, world".to_vec(),
            422,
            "bad_image",
            "neither PNG nor JPEG",
        ),
        (
            "broken JPEG",
            m.into(),
            Req {
                ctype: Some("image/jpeg"),
                ..as_admin
            },
            vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F'],
            422,
            "bad_image",
            "Jpeg",
        ),
        (
            "empty body",
            m.into(),
            Req { ..as_admin },
            vec![],
            400,
            "empty_body",
            "empty",
        ),
        (
            "JSON content type",
            m.into(),
            Req {
                ctype: Some("application/json"),
                ..as_admin
            },
            good.clone(),
            415,
            "unsupported_media_type",
            "image/png",
        ),
        (
            "multipart",
            m.into(),
            Req {
                ctype: Some("multipart/form-data; boundary=x"),
                ..as_admin
            },
            good.clone(),
            415,
            "unsupported_media_type",
            "multipart",
        ),
        (
            "unknown model",
            "/api/v1/inspect?model=nosuch".into(),
            Req { ..as_admin },
            good.clone(),
            404,
            "unknown_model",
            "nosuch",
        ),
        (
            "unknown version",
            "/api/v1/inspect?model=cells@9".into(),
            Req { ..as_admin },
            good.clone(),
            404,
            "unknown_model",
            "version 9",
        ),
        (
            "tabular VAE",
            "/api/v1/inspect?model=tabular".into(),
            Req { ..as_admin },
            good.clone(),
            422,
            "wrong_model_kind",
            "table",
        ),
        (
            "classifier",
            "/api/v1/inspect?model=classifier".into(),
            Req { ..as_admin },
            good.clone(),
            422,
            "wrong_model_kind",
            "logistic",
        ),
        (
            "no model",
            "/api/v1/inspect".into(),
            Req { ..as_admin },
            good.clone(),
            400,
            "bad_request",
            "model",
        ),
        (
            "unknown lot",
            format!("{m}&lot=NOPE"),
            Req { ..as_admin },
            good.clone(),
            422,
            "unknown_lot",
            "NOPE",
        ),
        (
            "unknown machine",
            "/api/v1/inspect?model=cells&machine=s1/a1/l1/zz".into(),
            Req { ..as_admin },
            good.clone(),
            422,
            "unknown_machine",
            "s1/a1/l1/zz",
        ),
        (
            "part not a name",
            format!("{m}&part=a%20b"),
            Req { ..as_admin },
            good.clone(),
            400,
            "bad_request",
            "part",
        ),
        (
            "unknown parameter",
            format!("{m}&colour=red"),
            Req { ..as_admin },
            good.clone(),
            400,
            "bad_request",
            "colour",
        ),
        (
            "viewer",
            m.into(),
            Req {
                token: Some(&viewer),
                ..as_admin
            },
            good.clone(),
            403,
            "forbidden",
            "operator",
        ),
        (
            "anonymous",
            m.into(),
            Req {
                token: None,
                ..as_admin
            },
            good.clone(),
            401,
            "unauthenticated",
            "",
        ),
        (
            "camera elsewhere",
            "/api/v1/inspect?model=cells&machine=s1/a1/l1".into(),
            Req {
                token: Some(&camera),
                ..as_admin
            },
            good.clone(),
            403,
            "outside_scope",
            "s1/a1/l1",
        ),
        (
            "camera without machine",
            "/api/v1/inspect?model=cells".into(),
            Req {
                token: Some(&camera),
                ..as_admin
            },
            good.clone(),
            403,
            "outside_scope",
            "machine",
        ),
    ];
    for (what, path, req, body, status, code, words) in &cases {
        let (s, v) = post(&srv, path, req, body);
        assert_eq!(s, *status, "{what}: {v}");
        assert_eq!(v["error"]["code"], *code, "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap_or("").contains(words),
            "{what}: the message should name {words:?}: {v}"
        );
    }
    // Too large: the declared length is refused before the body is read (sent by hand, so the
    // client does not race the server's early answer while writing a body it will not read).
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
    write!(
        tcp,
        "POST {m} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {admin}\r\n\
         content-type: image/png\r\ncontent-length: 1500000\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("payload_too_large") && answer.contains("max_body_bytes"),
        "{answer}"
    );
    // The camera inspects for its own machine; the viewer reads the result and its heat map.
    let (s, v) = post(
        &srv,
        m,
        &Req {
            token: Some(&camera),
            ctype: Some("image/png; charset=binary"),
        },
        &good,
    );
    assert_eq!(s, 201, "{v}");
    assert!(v["by"].as_str().unwrap().starts_with("token:"), "{v}");
    let id = v["id"].as_i64().unwrap();
    for path in [
        format!("/api/v1/inspections/{id}"),
        format!("/api/v1/inspections/{id}/heatmap.png"),
        "/api/v1/inspections?machine=s1/a1/l1/m1".to_owned(),
    ] {
        let r = srv
            .agent
            .get(&srv.url(&path))
            .header("authorization", format!("Bearer {viewer}"))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // Every inspection is in the audit log with its verdict.
    let r = srv
        .agent
        .get(&srv.url("/api/v1/audit?action=POST%20/api/v1/inspect&limit=1000"))
        .header("authorization", format!("Bearer {admin}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(r.contains(&format!("inspection {id}")), "{r}");
}
