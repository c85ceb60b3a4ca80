#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use gemba_core::{Event, EventBody, Sample, SignalDef};

use super::*;
use crate::{EventQuery, SeriesWrite, Store, WriteBatch};

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default()).unwrap()
}

fn series(signal: SignalId, pts: &[(i64, f64)]) -> WriteBatch {
    WriteBatch {
        series: vec![SeriesWrite {
            signal,
            samples: pts
                .iter()
                .map(|&(ts, value)| Sample { ts, value })
                .collect(),
        }],
        events: vec![],
    }
}

fn pairs(v: Vec<Sample>) -> Vec<(i64, f64)> {
    v.into_iter().map(|s| (s.ts, s.value)).collect()
}

#[test]
fn last_write_wins_within_and_across_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let id = s.put_signal(&SignalDef::auto("a/b/c/d/e")).unwrap();
    s.write(&series(id, &[(30, 3.0), (10, 1.0), (20, 2.0), (10, 1.5)]))
        .unwrap();
    s.write(&series(id, &[(20, 20.0), (40, 4.0)])).unwrap();
    assert_eq!(
        pairs(s.range(id, 0, 100, 100).unwrap()),
        vec![(10, 1.5), (20, 20.0), (30, 3.0), (40, 4.0)]
    );
    assert_eq!(
        pairs(s.range(id, 15, 40, 100).unwrap()),
        vec![(20, 20.0), (30, 3.0)]
    );
    assert_eq!(
        pairs(s.range(id, 0, 100, 2).unwrap()),
        vec![(10, 1.5), (20, 20.0)]
    );
    let latest = s.latest_all().unwrap();
    assert_eq!(latest, vec![(id, Sample { ts: 40, value: 4.0 })]);
    // A late write does not move latest backwards.
    s.write(&series(id, &[(5, 0.5)])).unwrap();
    assert_eq!(s.latest_all().unwrap()[0].1.ts, 40);
}

#[test]
fn aggregates_agree_with_naive_on_raw_and_rollup_paths() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let id = s.put_signal(&SignalDef::auto("a/b/c/d/e")).unwrap();
    let t0 = 1_700_000_000_000i64 - 1_700_000_000_000 % HOUR;
    let mut truth = HashMap::new();
    // Irregular samples over 5 hours, written in three out-of-order batches with overwrites.
    let mut batches = [vec![], vec![], vec![]];
    for i in 0..18_000i64 {
        let ts = t0 + i * 1000 + (i * 7919) % 900;
        let v = ((i * 31) % 997) as f64 / 10.0 - 20.0;
        batches[(i % 3) as usize].push((ts, v));
        truth.insert(ts, v);
    }
    for b in batches.iter().rev() {
        s.write(&series(id, b)).unwrap();
    }
    let overwrite: Vec<(i64, f64)> = (0..500)
        .map(|i| (t0 + i * 1000 + (i * 7919) % 900, 999.0))
        .collect();
    for (t, v) in &overwrite {
        truth.insert(*t, *v);
    }
    s.write(&series(id, &overwrite)).unwrap();
    let check =
        |truth: &HashMap<i64, f64>, from: i64, to: i64, step: i64, expect_source: AggSource| {
            let got = s.aggregate(id, from, to, step).unwrap();
            assert_eq!(got.source, expect_source, "step {step}");
            let want = naive_buckets(truth, from, to, step);
            assert_eq!(
                got.buckets.len(),
                want.len(),
                "step {step} from {from} to {to}"
            );
            for (g, w) in got.buckets.iter().zip(&want) {
                assert_eq!(
                    (g.ts, g.count, g.min, g.max, g.last),
                    (w.ts, w.count, w.min, w.max, w.last)
                );
                assert!((g.sum - w.sum).abs() < 1e-6, "{} vs {}", g.sum, w.sum);
            }
        };
    // Unaligned ends, raw and rollup paths; then after maintenance (rollups from maintain).
    check(
        &truth,
        t0 + 12_345,
        t0 + 4 * HOUR + 777,
        7_000,
        AggSource::Raw,
    );
    check(
        &truth,
        t0 + 12_345,
        t0 + 4 * HOUR + 777,
        5 * MINUTE,
        AggSource::Rollup1m,
    );
    check(
        &truth,
        t0 + 12_345,
        t0 + 5 * HOUR,
        HOUR,
        AggSource::Rollup1h,
    );
    check(
        &truth,
        t0 - HOUR,
        t0 + 6 * HOUR,
        2 * HOUR,
        AggSource::Rollup1h,
    );
    // Late data into an hour whose rollups exist: they must be refreshed.
    let late = [(t0 + HOUR + 500, -500.0), (t0 + 2 * HOUR + 1, 500.0)];
    for (t, v) in late {
        truth.insert(t, v);
    }
    s.write(&series(id, &late)).unwrap();
    check(&truth, t0, t0 + 5 * HOUR, HOUR, AggSource::Rollup1h);
    s.maintain(t0 + 6 * HOUR).unwrap();
    check(
        &truth,
        t0 + 1,
        t0 + 5 * HOUR - 1,
        MINUTE,
        AggSource::Rollup1m,
    );
    check(&truth, t0, t0 + 5 * HOUR, 30 * MINUTE, AggSource::Rollup1m);
}

#[test]
fn compaction_keeps_every_sample_and_last_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let id = s.put_signal(&SignalDef::auto("a/b/c/d/e")).unwrap();
    let mut truth = HashMap::new();
    // Many small writes (as from MQTT), some overlapping each other.
    for w in 0..200i64 {
        let pts: Vec<(i64, f64)> = (0..10).map(|i| (w * 8 + i, (w * 100 + i) as f64)).collect();
        for (t, v) in &pts {
            truth.insert(*t, *v);
        }
        s.write(&series(id, &pts)).unwrap();
    }
    let before = s.stats().unwrap().chunks;
    let report = s.maintain(0).unwrap();
    let after = s.stats().unwrap().chunks;
    assert!(report.chunks_compacted >= 190, "{report:?}");
    assert!(after < before / 10, "{before} -> {after}");
    let mut want: Vec<(i64, f64)> = truth.into_iter().collect();
    want.sort_by_key(|p| p.0);
    assert_eq!(
        pairs(s.range(id, i64::MIN, i64::MAX, usize::MAX).unwrap()),
        want
    );
    // And new writes after compaction still win.
    s.write(&series(id, &[(5, -1.0)])).unwrap();
    s.maintain(0).unwrap();
    assert_eq!(pairs(s.range(id, 5, 6, 10).unwrap()), vec![(5, -1.0)]);
}

#[test]
fn retention_deletes_only_expired_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let mut def = SignalDef::auto("a/b/c/d/e");
    def.retention_days = Some(1);
    let id = s.put_signal(&def).unwrap();
    let keep = s.put_signal(&SignalDef::auto("a/b/c/d/f")).unwrap();
    let now = 10 * DAY;
    s.write(&series(id, &[(now - 3 * DAY, 1.0), (now - 2 * DAY, 2.0)]))
        .unwrap();
    s.write(&series(id, &[(now - 1000, 3.0)])).unwrap();
    s.write(&series(keep, &[(now - 3 * DAY, 1.0)])).unwrap();
    let r = s.maintain(now).unwrap();
    assert_eq!(r.chunks_expired, 1);
    assert_eq!(
        pairs(s.range(id, 0, now, 10).unwrap()),
        vec![(now - 1000, 3.0)]
    );
    assert_eq!(s.range(keep, 0, now, 10).unwrap().len(), 1);
}

#[test]
fn events_filter_by_type_asset_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let ev = |ts: i64, asset: &str, body: EventBody| Event {
        ts,
        asset: asset.into(),
        body,
        attrs: Default::default(),
    };
    let state = |st: &str| EventBody::State {
        state: st.into(),
        reason: None,
    };
    s.write(&WriteBatch {
        series: vec![],
        events: vec![
            ev(10, "s/a/l1/m1", state("running")),
            ev(
                20,
                "s/a/l1/m1",
                EventBody::Production {
                    good: 5,
                    scrap: 1,
                    lot: None,
                    cycle_time_s: None,
                },
            ),
            ev(30, "s/a/l10/m1", state("down")),
            ev(
                40,
                "s/a/l1",
                EventBody::Custom {
                    name: "handover".into(),
                },
            ),
        ],
    })
    .unwrap();
    let q = |asset: Option<&str>, kind: Option<&str>, from: i64, to: i64| {
        s.events(&EventQuery {
            from,
            to,
            asset_prefix: asset.map(Into::into),
            kind: kind.map(Into::into),
            limit: 100,
        })
        .unwrap()
        .into_iter()
        .map(|e| e.event.ts)
        .collect::<Vec<_>>()
    };
    assert_eq!(q(None, None, 0, 100), vec![10, 20, 30, 40]);
    assert_eq!(q(Some("s/a/l1"), None, 0, 100), vec![10, 20, 40]);
    assert_eq!(q(Some("s/a/l1/m1"), None, 0, 100), vec![10, 20]);
    assert_eq!(q(None, Some("state"), 0, 100), vec![10, 30]);
    assert_eq!(q(None, Some("custom:handover"), 0, 100), vec![40]);
    assert_eq!(q(None, None, 20, 40), vec![20, 30]);
}

#[test]
fn reopen_finds_everything_and_ids_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let s = store(&dir);
        a = s.put_signal(&SignalDef::auto("s/a/l/m/x")).unwrap();
        b = s.put_signal(&SignalDef::auto("s/a/l/m/y")).unwrap();
        s.write(&series(b, &[(1, 1.0), (2, 2.0)])).unwrap();
        s.put_record("lot", "L1", "{\"id\":\"L1\"}").unwrap();
    }
    let s = store(&dir);
    assert_eq!(s.put_signal(&SignalDef::auto("s/a/l/m/x")).unwrap(), a);
    let sigs = s.signals().unwrap();
    assert_eq!(
        sigs.iter()
            .map(|(id, d)| (*id, d.path.as_str()))
            .collect::<Vec<_>>(),
        vec![(a, "s/a/l/m/x"), (b, "s/a/l/m/y")]
    );
    assert_eq!(s.range(b, 0, 10, 10).unwrap().len(), 2);
    assert_eq!(
        s.records("lot").unwrap(),
        vec![("L1".to_string(), "{\"id\":\"L1\"}".to_string())]
    );
    assert_eq!(
        s.record("lot", "L1").unwrap().as_deref(),
        Some("{\"id\":\"L1\"}")
    );
    assert_eq!(s.record("lot", "L2").unwrap(), None);
    assert_eq!(s.record("operator", "L1").unwrap(), None);
    // New writes get sequence numbers above the old ones: they still win.
    s.write(&series(b, &[(2, 22.0)])).unwrap();
    assert_eq!(
        pairs(s.range(b, 0, 10, 10).unwrap()),
        vec![(1, 1.0), (2, 22.0)]
    );
}

#[test]
fn corrupt_chunk_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let id = s.put_signal(&SignalDef::auto("s/a/l/m/x")).unwrap();
    s.write(&series(id, &[(1, 1.0), (2, 2.0), (3, 3.0)]))
        .unwrap();
    s.writer
        .lock()
        .execute("UPDATE chunks SET data = x'01ff'", [])
        .unwrap();
    match s.range(id, 0, 10, 10) {
        Err(StoreError::Corrupt { signal, .. }) => assert_eq!(signal, id),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Release-mode figures: `cargo test -p gemba-store --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let ids: Vec<SignalId> = (0..100)
        .map(|i| {
            s.put_signal(&SignalDef::auto(&format!("s/a/l/m/x{i}")))
                .unwrap()
        })
        .collect();
    let t0 = 1_700_000_000_000i64;
    let mut total = 0;
    let started = std::time::Instant::now();
    for round in 0..10i64 {
        let batch = WriteBatch {
            series: ids
                .iter()
                .map(|&id| SeriesWrite {
                    signal: id,
                    samples: (0..10_000i64)
                        .map(|i| Sample {
                            ts: t0 + (round * 10_000 + i) * 1000,
                            value: 300.0 + ((i * 13 + id as i64) % 500) as f64 / 100.0,
                        })
                        .collect(),
                })
                .collect(),
            events: vec![],
        };
        total += s.write(&batch).unwrap().points;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "write: {total} samples in {secs:.2} s = {:.0} samples/s (fsync per commit)",
        total as f64 / secs
    );
    let id = ids[0];
    let to = t0 + 100_000 * 1000;
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let st = std::time::Instant::now();
        n = s.aggregate(id, t0, to, 100_000).unwrap().buckets.len();
        best = best.min(st.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!("raw aggregate 100,000 samples -> {n} buckets: {best:.2} ms (best of 5)");
    let (mut tsb, mut vb) = (Vec::new(), Vec::new());
    let data = crate::codec::encode(
        &(0..100_000i64).map(|i| t0 + i * 1000).collect::<Vec<_>>(),
        &(0..100_000i64)
            .map(|i| 300.0 + ((i * 13) % 500) as f64 / 100.0)
            .collect::<Vec<_>>(),
    );
    let st = std::time::Instant::now();
    crate::codec::decode_into(&data, &mut tsb, &mut vb).unwrap();
    eprintln!(
        "decode 100,000 samples: {:.2} ms",
        st.elapsed().as_secs_f64() * 1e3
    );
    let st = std::time::Instant::now();
    let a = s.aggregate(id, t0, to, 2 * MINUTE).unwrap();
    eprintln!(
        "first rollup aggregate (refresh) -> {} buckets: {:.2} ms",
        a.buckets.len(),
        st.elapsed().as_secs_f64() * 1e3
    );
    let st = std::time::Instant::now();
    let a = s.aggregate(id, t0, to, 2 * MINUTE).unwrap();
    eprintln!(
        "rollup aggregate -> {} buckets: {:.2} ms",
        a.buckets.len(),
        st.elapsed().as_secs_f64() * 1e3
    );
    eprintln!("{:?}", s.stats().unwrap());
}

/// Regression: compaction merges small chunks into one that spans more time than any chunk
/// written before; a range starting inside it must still find it.
#[test]
fn range_inside_a_compacted_chunk_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir);
    let id = s.put_signal(&SignalDef::auto("a/b/c/d/e")).unwrap();
    // 100 writes of one sample each, 1 s apart: every chunk spans 0 ms.
    for i in 0..100i64 {
        s.write(&series(id, &[(i * 1000, i as f64)])).unwrap();
    }
    s.maintain(0).unwrap();
    assert_eq!(
        pairs(s.range(id, 50_000, 52_000, 10).unwrap()),
        vec![(50_000, 50.0), (51_000, 51.0)]
    );
    let agg = s.aggregate(id, 50_000, 60_000, 5_000).unwrap();
    assert_eq!(agg.buckets.iter().map(|b| b.count).sum::<u64>(), 10);
}

/// Readers and compaction at once: compaction replaces many small chunks by a few large ones
/// while a reader lists a signal's chunks and then reads them. Every read must succeed (one
/// snapshot per read) and see every sample written before it began.
#[test]
fn reads_during_compaction_never_lose_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(store(&dir));
    let id = s.put_signal(&SignalDef::auto("a/b/c/d/e")).unwrap();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let writer = {
        let (s, written) = (s.clone(), written.clone());
        std::thread::spawn(move || {
            for round in 0..40i64 {
                // 50 small chunks, then a compaction that merges them.
                for w in 0..50i64 {
                    let base = (round * 50 + w) * 10;
                    let pts: Vec<(i64, f64)> = (0..10).map(|i| (base + i, 1.0)).collect();
                    s.write(&series(id, &pts)).unwrap();
                    written.store(base + 10, std::sync::atomic::Ordering::SeqCst);
                }
                s.maintain(0).unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let before = written.load(std::sync::atomic::Ordering::SeqCst);
        let got = s
            .range(id, 0, i64::MAX, usize::MAX)
            .unwrap_or_else(|e| panic!("read {reads} failed during compaction: {e}"));
        assert!(
            got.len() as i64 >= before,
            "read {reads} saw {} of {before} samples",
            got.len()
        );
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 10, "only {reads} reads overlapped the compactions");
}

#[test]
fn inspections_are_stored_filtered_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |ts: i64, part: &str, lot: &str, verdict: &str| InspectionRecord {
        id: 0,
        ts,
        model: "cells".into(),
        version: 2,
        score: ts as f64,
        threshold: 15.0,
        verdict: verdict.into(),
        part: Some(part.into()),
        lot: Some(lot.into()),
        machine: Some("s1/a1/l1/cam".into()),
        width: 16,
        height: 16,
        heat_max: 0.5,
        by: "cam-token".into(),
    };
    {
        let s = store(&dir);
        for (i, (p, l, v)) in [
            ("P1", "L1", "pass"),
            ("P2", "L1", "fail"),
            ("P3", "L2", "pass"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = s
                .put_inspection(&rec(10 + i as i64, p, l, v), &[i as u8; 4])
                .unwrap();
            assert_eq!(id, i as i64 + 1);
        }
    }
    let s = store(&dir);
    let q = |lot: Option<&str>, verdict: Option<&str>, limit| InspectionQuery {
        from: 0,
        to: 100,
        part: None,
        lot: lot.map(str::to_owned),
        machine: None,
        verdict: verdict.map(str::to_owned),
        limit,
    };
    let ids = |v: Vec<InspectionRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.inspections(&q(None, None, 10)).unwrap()), [3, 2, 1]);
    assert_eq!(
        ids(s.inspections(&q(Some("L1"), None, 10)).unwrap()),
        [2, 1]
    );
    assert_eq!(ids(s.inspections(&q(None, Some("fail"), 10)).unwrap()), [2]);
    assert_eq!(ids(s.inspections(&q(None, None, 1)).unwrap()), [3]);
    let two = s.inspection(2).unwrap().unwrap();
    assert_eq!(two.part.as_deref(), Some("P2"));
    assert_eq!(two.score, 11.0);
    assert_eq!(s.inspection_heat_map(2).unwrap().unwrap(), vec![1u8; 4]);
    assert_eq!(s.inspection(9).unwrap(), None);
    assert_eq!(s.inspection_heat_map(9).unwrap(), None);
}
