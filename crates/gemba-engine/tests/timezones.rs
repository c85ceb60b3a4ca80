//! OEE per shift, hour and day in the site's time zone, end to end in process: a plant file with
//! a site in UTC+8 and one in Europe/Berlin, state and production events through the engine's
//! write path, reports from `Engine::oee` (the function behind `GET /api/v1/oee`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use gemba_core::time::ManualClock;
use gemba_core::{AssetNode, Level};
use gemba_engine::production::{By, OeeReport};
use gemba_engine::{BatchMode, Config, Engine, Source};

const H: i64 = 3_600_000;
/// 2026-06-01T00:00:00Z = 08:00 in Shanghai.
const JUN_1: i64 = 1_780_272_000_000;
/// 2026-03-28T12:00:00Z and 2026-10-24T12:00:00Z: noon (UTC) before each change of 2026.
const MAR_28_NOON: i64 = 1_774_699_200_000;
const OCT_24_NOON: i64 = 1_792_843_200_000;

const PLANT: &str = r#"
[[sites]]
name = "sh"
timezone = "Asia/Shanghai"
[[sites.areas]]
name = "a"
[[sites.areas.lines]]
name = "l"
[[sites.areas.lines.machines]]
name = "m"
ideal_cycle_time_s = 60.0

[[sites]]
name = "be"
timezone = "Europe/Berlin"
[[sites.areas]]
name = "a"
[[sites.areas.lines]]
name = "l"
[[sites.areas.lines.machines]]
name = "m"
ideal_cycle_time_s = 60.0

[[shifts]]
name = "early"
start = "08:00"
end = "16:00"
[[shifts]]
name = "late"
start = "16:00"
end = "22:00"
[[shifts]]
name = "night"
start = "22:00"
end = "08:00"
"#;

fn open(dir: &Path) -> Arc<Engine> {
    std::fs::write(dir.join("plant.toml"), PLANT).unwrap();
    let text = format!(
        "[storage]\npath = \"{}\"\n[mqtt]\nmode = \"off\"\n[plant]\nfile = \"{}\"\n",
        dir.join("data/gemba.db").display(),
        dir.join("plant.toml").display(),
    );
    let file = dir.join("gemba.toml");
    std::fs::write(&file, text).unwrap();
    let cfg = Config::load_file_only(&file).unwrap();
    // "Now" is after every event, so every bucket is final.
    Engine::open(cfg, Arc::new(ManualClock::new(OCT_24_NOON + 30 * 24 * H))).unwrap()
}

async fn ingest(engine: &Arc<Engine>, events: &[String]) {
    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
    let decoded = gemba_ingest::wire::decode_json(body.as_bytes()).unwrap();
    let outcome = engine
        .ingest(decoded, Source::Http, BatchMode::Strict)
        .await
        .unwrap();
    assert_eq!(
        outcome.accepted_events,
        events.len(),
        "{:?}",
        outcome.errors
    );
}

fn running(asset: &str, ts: i64) -> String {
    format!(r#"{{"ts":{ts},"asset":"{asset}","type":"state","state":"running"}}"#)
}

fn parts(asset: &str, ts: i64, good: u64) -> String {
    format!(r#"{{"ts":{ts},"asset":"{asset}","type":"production","good":{good}}}"#)
}

async fn oee(engine: &Arc<Engine>, asset: &str, from: i64, to: i64, by: By) -> OeeReport {
    let (e, a) = (engine.clone(), asset.to_owned());
    tokio::task::spawn_blocking(move || e.oee(&a, from, to, by))
        .await
        .unwrap()
        .unwrap()
}

/// (shift, from_local, to_local, hours after the query start, planned hours, good) of each row.
fn rows(r: &OeeReport, start: i64) -> Vec<(String, String, String, i64, f64, u64)> {
    r.rows
        .iter()
        .map(|row| {
            (
                row.shift.clone().unwrap_or_default(),
                row.from_local.clone(),
                row.to_local.clone(),
                (row.from - start) / H,
                row.oee.planned_s / 3600.0,
                row.oee.good,
            )
        })
        .collect()
}

fn row(
    shift: &str,
    from: &str,
    to: &str,
    at: i64,
    hours: f64,
    good: u64,
) -> (String, String, String, i64, f64, u64) {
    (shift.into(), from.into(), to.into(), at, hours, good)
}

/// UTC+8: the early shift 08:00–16:00 local is 00:00–08:00 UTC, and the parts made at 04:00Z
/// (noon in Shanghai) are the early shift's. Without the zone (UTC) they would be the night's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifts_of_a_plant_in_utc_plus_8() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let m = "sh/a/l/m";
    ingest(
        &engine,
        &[
            running(m, JUN_1 - 24 * H),
            parts(m, JUN_1 + 4 * H, 400),
            parts(m, JUN_1 + 10 * H, 300),
        ],
    )
    .await;
    let r = oee(&engine, m, JUN_1, JUN_1 + 24 * H, By::Shift).await;
    assert_eq!(r.timezone, "Asia/Shanghai");
    assert_eq!(r.from_local, "2026-06-01T08:00:00+08:00");
    assert_eq!(
        rows(&r, JUN_1),
        vec![
            row(
                "early",
                "2026-06-01T08:00:00+08:00",
                "2026-06-01T16:00:00+08:00",
                0,
                8.0,
                400
            ),
            row(
                "late",
                "2026-06-01T16:00:00+08:00",
                "2026-06-01T22:00:00+08:00",
                8,
                6.0,
                300
            ),
            row(
                "night",
                "2026-06-01T22:00:00+08:00",
                "2026-06-02T08:00:00+08:00",
                14,
                10.0,
                0
            ),
        ]
    );
    // Days are local too: 1 June in Shanghai began at 2026-05-31T16:00Z.
    let r = oee(&engine, m, JUN_1 - 8 * H, JUN_1 + 16 * H, By::Day).await;
    assert_eq!(
        rows(&r, JUN_1 - 8 * H),
        vec![row(
            "",
            "2026-06-01T00:00:00+08:00",
            "2026-06-02T00:00:00+08:00",
            0,
            24.0,
            700
        )]
    );

    // The site redefined without a zone (UTC): the cached buckets are rebuilt, and the early
    // shift is 08:00–16:00Z, holding the parts of 10:00Z.
    engine
        .registry()
        .define_node(AssetNode {
            path: "sh".into(),
            level: Level::Site,
            kind: None,
            ideal_cycle_time_s: None,
            timezone: None,
        })
        .unwrap();
    let r = oee(&engine, m, JUN_1, JUN_1 + 24 * H, By::Shift).await;
    assert_eq!(r.timezone, "UTC");
    let got = rows(&r, JUN_1);
    assert_eq!(
        got[0],
        row(
            "night",
            "2026-06-01T00:00:00+00:00",
            "2026-06-01T08:00:00+00:00",
            0,
            8.0,
            400
        )
    );
    assert_eq!(
        got[1],
        row(
            "early",
            "2026-06-01T08:00:00+00:00",
            "2026-06-01T16:00:00+00:00",
            8,
            8.0,
            300
        )
    );
}

/// Europe/Berlin: the night shift 22:00–08:00 lasts 9 h into 29 March 2026 (spring forward) and
/// 11 h into 25 October 2026 (fall back); the local days have 23 and 25 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berlin_night_shifts_across_both_changes_of_2026() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let m = "be/a/l/m";
    ingest(
        &engine,
        &[
            running(m, MAR_28_NOON - 24 * H),
            parts(m, MAR_28_NOON + 14 * H, 120),
            running(m, OCT_24_NOON - 24 * H),
            parts(m, OCT_24_NOON + 14 * H, 150),
        ],
    )
    .await;
    let r = oee(&engine, m, MAR_28_NOON, MAR_28_NOON + 24 * H, By::Shift).await;
    assert_eq!(r.timezone, "Europe/Berlin");
    assert_eq!(
        rows(&r, MAR_28_NOON),
        vec![
            row(
                "early",
                "2026-03-28T13:00:00+01:00",
                "2026-03-28T16:00:00+01:00",
                0,
                3.0,
                0
            ),
            row(
                "late",
                "2026-03-28T16:00:00+01:00",
                "2026-03-28T22:00:00+01:00",
                3,
                6.0,
                0
            ),
            row(
                "night",
                "2026-03-28T22:00:00+01:00",
                "2026-03-29T08:00:00+02:00",
                9,
                9.0,
                120
            ),
            row(
                "early",
                "2026-03-29T08:00:00+02:00",
                "2026-03-29T14:00:00+02:00",
                18,
                6.0,
                0
            ),
        ]
    );
    let r = oee(&engine, m, OCT_24_NOON, OCT_24_NOON + 24 * H, By::Shift).await;
    let night = &rows(&r, OCT_24_NOON)[2];
    assert_eq!(
        *night,
        row(
            "night",
            "2026-10-24T22:00:00+02:00",
            "2026-10-25T08:00:00+01:00",
            8,
            11.0,
            150
        )
    );
    // A night's OEE uses its real length: 150 parts × 60 s over 11 h planned.
    let o = &r.rows[2].oee;
    assert_eq!(o.oee, Some(150.0 * 60.0 / (11.0 * 3600.0)));

    // Local days of 23 and 25 hours, and the 25 local hours of 25 October.
    for (from, hours) in [(MAR_28_NOON + 11 * H, 23.0), (OCT_24_NOON + 10 * H, 25.0)] {
        let r = oee(&engine, m, from, from + 30 * H, By::Day).await;
        assert_eq!(
            r.rows[0].oee.planned_s / 3600.0,
            hours,
            "{}",
            r.rows[0].from_local
        );
        assert!(
            r.rows[0].from_local.ends_with("T00:00:00+01:00")
                || r.rows[0].from_local.ends_with("T00:00:00+02:00")
        );
    }
    let day_start = OCT_24_NOON + 10 * H; // 2026-10-25T00:00+02:00
    let r = oee(&engine, m, day_start, day_start + 25 * H, By::Hour).await;
    assert_eq!(r.rows.len(), 25);
    assert_eq!(r.rows[2].from_local, "2026-10-25T02:00:00+02:00");
    assert_eq!(r.rows[3].from_local, "2026-10-25T02:00:00+01:00");
    assert_eq!(r.rows[24].to_local, "2026-10-26T00:00:00+01:00");
}
