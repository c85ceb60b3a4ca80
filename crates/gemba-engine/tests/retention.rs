//! `[retention]` (docs/SECURITY.md#privacy-and-retention): a scratch store, a manual clock, data of
//! every kind at known ages, one pruning pass; what is older than its kind's days is gone, the rest
//! (and lot/move events, whatever their age) is still there, also after a restart.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use gemba_core::time::ManualClock;
use gemba_engine::maintenance::{NewWorkOrder, WorkOrderAction, WorkOrderQuery, WorkOrderStep};
use gemba_engine::{BatchMode, Config, Engine, RetentionReport, Source};
use gemba_store::{EventQuery, InspectionQuery, InspectionRecord};

const DAY: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z
const NOW: i64 = 1_767_225_600_000;

const PLANT: &str = r#"
[enterprise]
name = "t"
[[sites]]
name = "s"
[[sites.areas]]
name = "a"
[[sites.areas.lines]]
name = "l"
[[sites.areas.lines.machines]]
name = "m"
[[sites.areas.lines.machines.signals]]
name = "x"
"#;

fn config(dir: &Path, retention: &str) -> Config {
    std::fs::write(dir.join("plant.toml"), PLANT).unwrap();
    let text = format!(
        "[storage]\npath = \"{}\"\n[mqtt]\nmode = \"off\"\n[plant]\nfile = \"{}\"\n[retention]\n{retention}\n",
        dir.join("data/gemba.db").display(),
        dir.join("plant.toml").display(),
    );
    let file = dir.join("gemba.toml");
    std::fs::write(&file, text).unwrap();
    Config::load_file_only(&file).unwrap()
}

fn event(ts: i64, kind: &str) -> String {
    match kind {
        "state" => format!(
            r#"{{"ts":{ts},"asset":"s/a/l/m","type":"state","state":"down","attrs":{{"operator":"op-1"}}}}"#
        ),
        "production" => {
            format!(r#"{{"ts":{ts},"asset":"s/a/l/m","type":"production","good":1}}"#)
        }
        "lot" => format!(
            r#"{{"ts":{ts},"asset":"s/a/l","type":"lot","lot":"L{ts}","product":"P","quantity":5,"location":"store"}}"#
        ),
        "move" => format!(
            r#"{{"ts":{ts},"asset":"s/a/l","type":"move","lot":"L{}","from":"store","to":"line","quantity":5}}"#,
            ts - 1
        ),
        _ => unreachable!(),
    }
}

/// Assigns, starts and finishes a work order at `at`.
fn finish(engine: &Engine, id: u64, at: i64) {
    for action in [
        WorkOrderStep::Assign,
        WorkOrderStep::Start,
        WorkOrderStep::Done,
    ] {
        let a = WorkOrderAction {
            by: "olga".into(),
            assignee: Some("olga".into()),
            ..WorkOrderAction::default()
        };
        engine.maintenance().act(id, action, a, at).unwrap();
    }
}

async fn all_events(engine: &Engine) -> Vec<(i64, String)> {
    engine
        .events(EventQuery {
            from: 0,
            to: NOW + DAY,
            asset_prefix: None,
            kind: None,
            limit: 1_000_000,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event.ts, e.event.body.type_name()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_what_is_older_than_its_days_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "events_days = 30\nwork_orders_days = 90\ninspections_days = 60\n",
    );
    let clock = Arc::new(ManualClock::new(NOW - 200 * DAY));
    let engine = Engine::open(cfg.clone(), clock.clone()).unwrap();

    // Events at 100, 31 and 29 days of age, of every type.
    let ages = [100, 31, 29];
    let mut body = Vec::new();
    for age in ages {
        let ts = NOW - age * DAY;
        for kind in ["state", "production", "lot", "move"] {
            body.push(event(ts + i64::from(kind == "move"), kind));
        }
    }
    clock.set(NOW);
    let decoded =
        gemba_ingest::wire::decode_json(format!(r#"{{"events":[{}]}}"#, body.join(",")).as_bytes())
            .unwrap();
    let outcome = engine
        .ingest(decoded, Source::Http, BatchMode::Strict)
        .await
        .unwrap();
    assert_eq!(outcome.accepted_events, 12, "{:?}", outcome.errors);

    // Work orders finished 120 and 60 days ago, and one still open.
    let mut ids = Vec::new();
    for done_age in [120, 60] {
        clock.set(NOW - (done_age + 1) * DAY);
        let w = engine
            .create_work_order(NewWorkOrder {
                machine: Some("s/a/l/m".into()),
                title: Some(format!("done {done_age} days ago")),
                description: None,
                alarm: None,
                assignee: Some("olga".into()),
                by: "ivan".into(),
            })
            .unwrap();
        let at = NOW - done_age * DAY;
        finish(&engine, w.id, at);
        ids.push(w.id);
    }
    clock.set(NOW - 500 * DAY);
    let open = engine
        .create_work_order(NewWorkOrder {
            machine: Some("s/a/l/m".into()),
            title: Some("open for 500 days".into()),
            description: None,
            alarm: None,
            assignee: None,
            by: "ivan".into(),
        })
        .unwrap();

    // Inspection results (with heat maps) 100, 61 and 59 days old.
    let mut inspections = Vec::new();
    for age in [100, 61, 59] {
        let r = InspectionRecord {
            id: 0,
            ts: NOW - age * DAY,
            model: "cells".into(),
            version: 1,
            score: 0.5,
            threshold: 1.0,
            verdict: "pass".into(),
            part: Some(format!("P{age}")),
            lot: None,
            machine: Some("s/a/l/m".into()),
            width: 8,
            height: 8,
            heat_max: 0.5,
            by: "ivan".into(),
        };
        inspections.push(engine.store().put_inspection(&r, b"png").unwrap());
    }

    clock.set(NOW);
    let e = engine.clone();
    let report = tokio::task::spawn_blocking(move || e.prune())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        report,
        RetentionReport {
            events: 4,
            alarms: 0,
            work_orders: 1,
            inspections: 2,
            sessions: 0
        }
    );
    let left: Vec<i64> = engine
        .store()
        .inspections(&InspectionQuery {
            from: 0,
            to: NOW + DAY,
            part: None,
            lot: None,
            machine: None,
            verdict: None,
            limit: 10,
        })
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        left,
        vec![inspections[2]],
        "only the 59-day-old result is kept"
    );
    assert_eq!(
        engine.store().inspection_heat_map(inspections[0]).unwrap(),
        None,
        "the heat map goes with its result"
    );
    assert_eq!(
        engine.store().inspection_heat_map(inspections[2]).unwrap(),
        Some(b"png".to_vec())
    );
    let kept = all_events(&engine).await;
    assert_eq!(kept.len(), 8);
    let expect: Vec<(i64, String)> = vec![
        (NOW - 100 * DAY, "lot".into()),
        (NOW - 100 * DAY + 1, "move".into()),
        (NOW - 31 * DAY, "lot".into()),
        (NOW - 31 * DAY + 1, "move".into()),
        (NOW - 29 * DAY, "lot".into()),
        (NOW - 29 * DAY, "production".into()),
        (NOW - 29 * DAY, "state".into()),
        (NOW - 29 * DAY + 1, "move".into()),
    ];
    let mut sorted = kept.clone();
    sorted.sort();
    let mut want = expect.clone();
    want.sort();
    assert_eq!(sorted, want);
    let wo: Vec<u64> = engine
        .maintenance()
        .query(&WorkOrderQuery {
            limit: 100,
            ..WorkOrderQuery::default()
        })
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(
        wo,
        vec![open.id, ids[1]],
        "newest first; the one done 120 days ago is gone"
    );

    // A day later the 29-day-old events are exactly 30 days old: not older, so kept; one
    // millisecond later they go.
    clock.set(NOW + DAY);
    let e = engine.clone();
    let again = tokio::task::spawn_blocking(move || e.prune())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, RetentionReport::default());
    clock.set(NOW + DAY + 1);
    let e = engine.clone();
    let again = tokio::task::spawn_blocking(move || e.prune())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.events, 2);
    drop(engine);

    // After a restart: the deleted stay deleted, and a new work order gets a new id even though
    // the highest ids may have been pruned.
    let engine = Engine::open(cfg, clock.clone()).unwrap();
    assert_eq!(
        all_events(&engine).await.len(),
        6,
        "lot and move events are never pruned"
    );
    let w = engine
        .create_work_order(NewWorkOrder {
            machine: Some("s/a/l/m".into()),
            title: Some("after restart".into()),
            description: None,
            alarm: None,
            assignee: None,
            by: "ivan".into(),
        })
        .unwrap();
    assert!(w.id > open.id, "work-order id {} reused", w.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_order_ids_are_not_reused_when_the_newest_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "work_orders_days = 1\n");
    let clock = Arc::new(ManualClock::new(NOW - 10 * DAY));
    let engine = Engine::open(cfg.clone(), clock.clone()).unwrap();
    let w = engine
        .create_work_order(NewWorkOrder {
            machine: Some("s/a/l/m".into()),
            title: Some("t".into()),
            description: None,
            alarm: None,
            assignee: None,
            by: "ivan".into(),
        })
        .unwrap();
    finish(&engine, w.id, NOW - 10 * DAY);
    clock.set(NOW);
    let e = engine.clone();
    assert_eq!(
        tokio::task::spawn_blocking(move || e.prune())
            .await
            .unwrap()
            .unwrap()
            .work_orders,
        1
    );
    drop(engine);
    let engine = Engine::open(cfg, clock).unwrap();
    let next = engine
        .create_work_order(NewWorkOrder {
            machine: Some("s/a/l/m".into()),
            title: Some("t2".into()),
            description: None,
            alarm: None,
            assignee: None,
            by: "ivan".into(),
        })
        .unwrap();
    assert_eq!(next.id, w.id + 1);
}

#[test]
fn retention_config_is_checked() {
    let err = |text: &str| Config::from_toml_str(text).unwrap_err().to_string();
    assert!(err("[retention]\nevents_days = 0\n").contains("retention.events_days"));
    assert!(err("[retention]\ninterval_s = 0\n").contains("retention.interval_s"));
    assert!(err("[retention]\ninspections_days = 0\n").contains("retention.inspections_days"));
    assert!(err("[retention]\nsamples = 3\n").contains("samples"));
    let both = err("[retention]\nsamples_days = 3\n[storage]\ndefault_retention_days = 3\n");
    assert!(both.contains("give only one"), "{both}");
    let both = err("[retention]\nalarms_days = 3\n[alarms]\nretention_days = 3\n");
    assert!(both.contains("give only one"), "{both}");
    let c = Config::from_toml_str("[retention]\nsamples_days = 7\nalarms_days = 9\n").unwrap();
    assert_eq!(
        (c.sample_retention_days(), c.alarm_retention_days()),
        (Some(7), Some(9))
    );
    let c = Config::from_toml_str("[storage]\ndefault_retention_days = 5\n").unwrap();
    assert_eq!(c.sample_retention_days(), Some(5));
    assert_eq!(c.retention.interval_s, 3600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_samples_older_than_samples_days_expire_in_the_maintenance_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "samples_days = 30\n");
    let clock = Arc::new(ManualClock::new(NOW));
    let engine = Engine::open(cfg, clock.clone()).unwrap();
    // Two batches far apart: 100 days old and 1 day old.
    for age in [100, 1] {
        let t0 = NOW - age * DAY;
        let body = format!(
            r#"{{"series":[{{"signal":"s/a/l/m/x","t0":{t0},"dt":1000,"values":[1,2,3,4,5]}}]}}"#
        );
        let decoded = gemba_ingest::wire::decode_json(body.as_bytes()).unwrap();
        let outcome = engine
            .ingest(decoded, Source::Http, BatchMode::Strict)
            .await
            .unwrap();
        assert_eq!(outcome.accepted_points, 5, "{:?}", outcome.errors);
    }
    let all = || engine.range("s/a/l/m/x", NOW - 200 * DAY, NOW, 1000);
    assert_eq!(all().await.unwrap().len(), 10);
    engine.maintain().await.unwrap();
    let kept = all().await.unwrap();
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert!(kept.iter().all(|s| s.ts >= NOW - DAY), "{kept:?}");
}

/// `Auth::prune_sessions` runs in every retention pass: an expired session's record is deleted, a
/// live one stays (and still signs its user in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_sessions() {
    use gemba_engine::auth::Role;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let hours = i64::from(cfg.auth.session_hours);
    let clock = Arc::new(ManualClock::new(NOW));
    let engine = Engine::open(cfg, clock.clone()).unwrap();
    let auth = engine.auth();
    auth.add_user(
        "olga",
        Role::Viewer,
        None,
        Some("correct horse battery"),
        NOW,
    )
    .unwrap();
    let (old, _) = auth.login("olga", "correct horse battery", NOW).unwrap();
    let later = NOW + hours * 3_600_000 - 1000;
    let (fresh, _) = auth.login("olga", "correct horse battery", later).unwrap();
    assert_eq!(engine.store().records("session").unwrap().len(), 2);
    clock.set(NOW + hours * 3_600_000 + 1);
    let e = engine.clone();
    let report = tokio::task::spawn_blocking(move || e.prune())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.sessions, 1, "{report:?}");
    assert_eq!(engine.store().records("session").unwrap().len(), 1);
    let now = NOW + hours * 3_600_000 + 1;
    assert!(auth.session(&old, now).is_err());
    assert_eq!(auth.session(&fresh, now).unwrap().name, "olga");
}
