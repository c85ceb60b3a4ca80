//! Process genealogy: a lot's stays at assets joined to the process data of those stays
//! (signal statistics, SPC findings), for the lot and the lots it was made from.

use gemba_core::Timestamp;
use serde::Serialize;

use super::ledger::{Direction, GenealogyNode};

const MINUTE: i64 = 60_000;
/// Stays at one asset closer than this share their store queries.
const CLUSTER_GAP: i64 = 3_600_000;

/// Statistics of one signal over a stay, from the minutes (1-minute buckets) that overlap it: exact
/// for stays on whole minutes, otherwise including the rest of the first and last minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalStats {
    pub signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Raw readings `[ts, value]`, when asked for (at most the requested number per signal).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<(Timestamp, f64)>,
}

/// The process data of a lot at one asset: what happened there while the lot was there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessWindow {
    pub lot: String,
    pub asset: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Every event at the asset or below it in the window: state changes, production, and alarms,
    /// SPC violations and inspection results once they are stored as events (any type is joined).
    pub events: Vec<gemba_store::StoredEvent>,
    pub signals: Vec<SignalStats>,
    /// Western Electric rule violations during the stay of each signal with spec limits, on an
    /// I-MR chart whose limits were estimated on the 8 hours before the stay.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spc: Vec<SpcFinding>,
}

/// SPC violations of one quality characteristic during a stay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpcFinding {
    pub signal: String,
    pub violations: Vec<crate::spc::SpcViolation>,
}

/// The SPC baseline before a stay.
const SPC_BASELINE: i64 = 8 * 3_600_000;

/// A genealogy with the process data of its lots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Genealogy {
    pub lot: String,
    pub direction: &'static str,
    pub lots: Vec<GenealogyNode>,
    pub process: Vec<ProcessWindow>,
    /// True when more windows existed than were returned.
    pub truncated: bool,
}

/// What [`crate::Engine::genealogy`] joins to each lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Join process data at all.
    pub process: bool,
    /// Only the stays of the lot asked about, not of the other lots of its genealogy.
    pub only_root: bool,
    /// Raw readings per signal and window (0: statistics only).
    pub readings: usize,
    /// At most this many windows.
    pub max_windows: usize,
    /// At most this many events per window.
    pub max_events: usize,
    /// SPC rule violations of signals with spec limits during each stay.
    pub spc: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            process: true,
            only_root: false,
            readings: 0,
            max_windows: 10_000,
            max_events: 1000,
            spc: true,
        }
    }
}

impl crate::Engine {
    /// The genealogy of `lot` in `direction`, with the process data of every lot in it: for each
    /// stay at a machine or line of the asset model, the events there and the statistics (and
    /// optionally the raw readings) of every signal at or below it during the stay.
    pub async fn genealogy(
        &self,
        lot: &str,
        direction: Direction,
        opts: ProcessOptions,
    ) -> Result<Genealogy, crate::EngineError> {
        let owned = lot.to_owned();
        let lots = self
            .with_ledger(move |l| l.genealogy(&owned, direction))
            .await?
            .ok_or_else(|| crate::EngineError::NotFound(format!("lot {lot:?}")))?;
        let now = self.now();
        let mut windows: Vec<(String, String, Timestamp, Timestamp)> = Vec::new();
        if opts.process {
            for n in lots
                .iter()
                .take(if opts.only_root { 1 } else { usize::MAX })
            {
                for s in &n.stays {
                    let end = s.end.unwrap_or(now);
                    if end > s.start && self.registry.node(&s.location).is_some() {
                        windows.push((n.lot.clone(), s.location.clone(), s.start, end));
                    }
                }
            }
        }
        let truncated = windows.len() > opts.max_windows;
        windows.truncate(opts.max_windows);
        // Stays at the same asset less than an hour apart form a cluster: one events query and
        // one minute-bucket query per signal serve all of them.
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by(|&a, &b| (&windows[a].1, windows[a].2).cmp(&(&windows[b].1, windows[b].2)));
        let mut clusters: Vec<(String, Timestamp, Timestamp, Vec<usize>)> = Vec::new();
        for i in order {
            let (_, asset, start, end) = &windows[i];
            match clusters.last_mut() {
                Some(c) if &c.0 == asset && *start <= c.2 + CLUSTER_GAP => {
                    c.2 = c.2.max(*end);
                    c.3.push(i);
                }
                _ => clusters.push((asset.clone(), *start, *end, vec![i])),
            }
        }
        let mut found: Vec<Option<ProcessWindow>> = vec![None; windows.len()];
        for (asset, cstart, cend, members) in clusters {
            let events = self
                .events(gemba_store::EventQuery {
                    from: cstart,
                    to: cend,
                    asset_prefix: Some(asset.clone()),
                    kind: None,
                    limit: opts.max_events.saturating_mul(members.len()).min(1_000_000),
                })
                .await?;
            let mut series = Vec::new();
            for r in self.registry.signals_under(&asset) {
                let from = cstart.div_euclid(MINUTE) * MINUTE;
                let agg = self.aggregate(&r.def.path, from, cend, MINUTE).await?;
                series.push((r, agg.buckets));
            }
            for i in members {
                let (lot, _, start, end) = &windows[i];
                let (start, end) = (*start, *end);
                let first = events.partition_point(|e| e.event.ts < start);
                let mine: Vec<_> = events[first..]
                    .iter()
                    .take_while(|e| e.event.ts < end)
                    .take(opts.max_events)
                    .cloned()
                    .collect();
                let mut signals = Vec::new();
                for (r, bs) in &series {
                    let first = bs.partition_point(|b| b.ts + MINUTE <= start);
                    let mut st = SignalStats {
                        signal: r.def.path.clone(),
                        unit: r.def.unit.clone(),
                        count: 0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        mean: f64::NAN,
                        readings: Vec::new(),
                    };
                    let mut sum = 0.0;
                    for b in bs[first..].iter().take_while(|b| b.ts < end) {
                        st.count += b.count;
                        st.min = st.min.min(b.min);
                        st.max = st.max.max(b.max);
                        sum += b.sum;
                    }
                    if st.count == 0 {
                        continue;
                    }
                    st.mean = sum / st.count as f64;
                    if opts.readings > 0 {
                        st.readings = self
                            .range(&r.def.path, start, end, opts.readings)
                            .await?
                            .into_iter()
                            .map(|s| (s.ts, s.value))
                            .collect();
                    }
                    signals.push(st);
                }
                let mut spc = Vec::new();
                if opts.spc {
                    for (r, _) in &series {
                        let limits = r
                            .def
                            .spec
                            .is_some_and(|l| l.lsl.is_some() || l.usl.is_some());
                        if !limits || !signals.iter().any(|x| x.signal == r.def.path) {
                            continue;
                        }
                        let req = crate::spc::SpcRequest {
                            signal: r.def.path.clone(),
                            chart: crate::spc::ChartKind::Imr,
                            baseline: Some((start - SPC_BASELINE, start)),
                            range: (start - SPC_BASELINE, end),
                            subgroup: 5,
                            rules: gemba_analytics::spc::RuleSet::western_electric(),
                            lambda: 0.2,
                            l: 3.0,
                            k: 0.5,
                            h: 5.0,
                        };
                        // Too little history before the stay for a baseline: no SPC for it.
                        if let Ok(chart) = self.spc_chart(req).await {
                            let violations: Vec<_> = chart
                                .violations
                                .into_iter()
                                .filter(|v| v.ts >= start && v.ts < end)
                                .collect();
                            if !violations.is_empty() {
                                spc.push(SpcFinding {
                                    signal: r.def.path.clone(),
                                    violations,
                                });
                            }
                        }
                    }
                }
                found[i] = Some(ProcessWindow {
                    lot: lot.clone(),
                    asset: windows[i].1.clone(),
                    start,
                    end,
                    events: mine,
                    signals,
                    spc,
                });
            }
        }
        let process: Vec<ProcessWindow> = found.into_iter().flatten().collect();
        Ok(Genealogy {
            lot: lot.to_owned(),
            direction: match direction {
                Direction::Forward => "forward",
                Direction::Backward => "backward",
            },
            lots,
            process,
            truncated,
        })
    }

    /// The moves of one lot as stored, in time order.
    pub async fn lot_history(
        &self,
        lot: &str,
    ) -> Result<Vec<gemba_store::MoveRecord>, crate::EngineError> {
        let store = self.store.clone();
        let lot = lot.to_owned();
        crate::blocking(move || store.lot_history(&lot)).await
    }

    /// Moves into or out of a location with `from <= ts < to`, as stored, at most `limit`.
    pub async fn location_moves(
        &self,
        location: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<gemba_store::MoveRecord>, crate::EngineError> {
        crate::check_range(from, to)?;
        let store = self.store.clone();
        let location = location.to_owned();
        crate::blocking(move || store.location_moves(&location, from, to, limit)).await
    }

    /// Whether a location is a machine, line or other asset of the model (its stock is WIP).
    pub fn is_asset(&self, location: &str) -> bool {
        self.registry.node(location).is_some()
    }
}
