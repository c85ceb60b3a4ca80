//! OEE and the six big losses from machine states and part counts. Pure: the engine fetches
//! state changes and production counts, this module turns them into time buckets.
//!
//! The time model (all in milliseconds of one machine):
//!
//! ```text
//! calendar time
//!  ├─ planned downtime (no shift, breaks, planned-downtime calendar, states with a planned reason)
//!  ├─ no data (before the first known state)
//!  └─ planned production time
//!      ├─ breakdowns        (a `down` state whose reason names a failure)
//!      ├─ setup             (a `setup` state)
//!      ├─ other stops       (stops at least `small_stop_ms` long, `down` without a failure reason)
//!      └─ operating time = running + small stops
//!          ├─ small stops   (stops shorter than `small_stop_ms`)
//!          ├─ reduced speed = running − ideal cycle × total parts
//!          └─ net run time  = ideal cycle × total parts
//!              ├─ startup rejects    = ideal cycle × scrap within `startup_parts` after a setup
//!              ├─ production rejects = ideal cycle × other scrap
//!              └─ fully productive   = ideal cycle × good parts
//! ```
//!
//! availability = operating / planned, performance = ideal × total / operating, quality =
//! good / total, and OEE = their product = ideal × good / planned. Buckets add up, so any range
//! (hour, shift, day, month) or any group of machines (a line) is the sum of its buckets.

use gemba_core::Zone;
use serde::{Deserialize, Serialize};

/// Errors of OEE inputs: each names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OeeError {
    #[error("shifts {a:?} and {b:?} overlap")]
    OverlappingShifts { a: String, b: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// How state names and reasons map onto the loss categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateRules {
    /// States in which the machine makes parts.
    pub running: Vec<String>,
    /// States that are setups / changeovers.
    pub setup: Vec<String>,
    /// States that are breakdowns when their reason names a failure.
    pub down: Vec<String>,
    /// A reason that contains one of these is a failure (`tool_wear_failure`, `failure`).
    pub failure_reasons: Vec<String>,
    /// Reasons (of any state) that are planned downtime: no shift, break, planned maintenance.
    pub planned_reasons: Vec<String>,
    /// Stops shorter than this are small stops (performance loss); longer ones availability loss.
    pub small_stop_s: f64,
    /// Scrap within this many parts after a setup is a startup reject.
    pub startup_parts: u32,
}

impl Default for StateRules {
    fn default() -> Self {
        StateRules {
            running: vec!["running".into()],
            setup: vec!["setup".into()],
            down: vec!["down".into()],
            failure_reasons: vec!["failure".into()],
            planned_reasons: vec![
                "no_shift".into(),
                "break".into(),
                "planned_maintenance".into(),
            ],
            small_stop_s: 300.0,
            startup_parts: 3,
        }
    }
}

impl StateRules {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), OeeError> {
        if !self.small_stop_s.is_finite() || self.small_stop_s < 0.0 {
            return Err(OeeError::Invalid {
                field: "small_stop_s".into(),
                reason: format!("{} must be a finite number >= 0", self.small_stop_s),
            });
        }
        if self.running.is_empty() {
            return Err(OeeError::Invalid {
                field: "running".into(),
                reason: "at least one running state is needed".into(),
            });
        }
        Ok(())
    }

    fn small_stop_ms(&self) -> i64 {
        (self.small_stop_s * 1000.0).round() as i64
    }

    fn is_planned(&self, reason: Option<&str>) -> bool {
        reason.is_some_and(|r| self.planned_reasons.iter().any(|p| p == r))
    }

    fn is_failure(&self, reason: Option<&str>) -> bool {
        reason.is_some_and(|r| self.failure_reasons.iter().any(|f| r.contains(f.as_str())))
    }
}

/// Where a stretch of time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeKind {
    Running,
    SmallStop,
    OtherStop,
    Breakdown,
    Setup,
    Planned,
    NoData,
}

impl TimeKind {
    pub fn name(self) -> &'static str {
        match self {
            TimeKind::Running => "running",
            TimeKind::SmallStop => "small_stops",
            TimeKind::OtherStop => "other_stops",
            TimeKind::Breakdown => "breakdowns",
            TimeKind::Setup => "setup",
            TimeKind::Planned => "planned_downtime",
            TimeKind::NoData => "no_data",
        }
    }
}

/// A machine entered `state` at `ts`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub ts: i64,
    pub state: String,
    pub reason: Option<String>,
}

/// One state interval `[start, end)` with its loss category. `final_` is false while the
/// interval is still open and its category may change (a stop that may still become long).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub kind: TimeKind,
    /// Whether the interval ended before the horizon.
    pub closed: bool,
    #[serde(skip)]
    pub final_: bool,
}

/// Turns state changes (sorted by time) into classified intervals up to `horizon`.
/// `initial` is the state in force at `from` (its own `ts` may be earlier, it counts for the
/// length of a stop); time before the first known state is `NoData`.
pub fn segments(
    initial: Option<&StateChange>,
    changes: &[StateChange],
    from: i64,
    horizon: i64,
    rules: &StateRules,
) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut cur: Option<&StateChange> = initial;
    let first = changes.first().map_or(horizon, |c| c.ts.max(from));
    if cur.is_none() && first > from {
        out.push(Segment {
            start: from,
            end: first.min(horizon),
            state: String::new(),
            reason: None,
            kind: TimeKind::NoData,
            closed: true,
            final_: true,
        });
    }
    for c in changes.iter().filter(|c| c.ts < horizon) {
        if let Some(p) = cur {
            push(&mut out, p, c.ts, true, from, rules);
        }
        cur = Some(c);
    }
    if let Some(p) = cur {
        push(&mut out, p, horizon, false, from, rules);
    }
    out
}

fn push(
    out: &mut Vec<Segment>,
    s: &StateChange,
    end: i64,
    closed: bool,
    from: i64,
    r: &StateRules,
) {
    let start = s.ts;
    if end <= from || end <= start {
        return;
    }
    let reason = s.reason.as_deref();
    let len = end - start;
    let (kind, final_) = if r.is_planned(reason) {
        (TimeKind::Planned, true)
    } else if r.running.contains(&s.state) {
        (TimeKind::Running, true)
    } else if r.setup.contains(&s.state) {
        (TimeKind::Setup, true)
    } else if r.down.contains(&s.state) && r.is_failure(reason) {
        (TimeKind::Breakdown, true)
    } else if len < r.small_stop_ms() {
        (TimeKind::SmallStop, closed)
    } else {
        (TimeKind::OtherStop, true)
    };
    out.push(Segment {
        start: start.max(from),
        end,
        state: s.state.clone(),
        reason: s.reason.clone(),
        kind,
        closed,
        final_,
    });
}

/// Parts reported at `ts` (one production event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    pub ts: i64,
    pub good: u64,
    pub scrap: u64,
}

/// A count with its scrap split into startup and production rejects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitCount {
    pub ts: i64,
    pub good: u64,
    pub scrap: u64,
    pub startup_scrap: u64,
}

/// Splits scrap into startup rejects (within `startup_parts` parts after the start of a setup) and
/// production rejects. `since_setup` carries the number of parts made since the last setup across
/// calls (start with `startup_parts` when unknown: not in a startup). Within one event the scrap
/// is taken to come first (an event usually reports one part).
pub fn split_counts(
    counts: &[Count],
    segments: &[Segment],
    rules: &StateRules,
    since_setup: &mut u32,
) -> Vec<SplitCount> {
    let setups: Vec<i64> = segments
        .iter()
        .filter(|s| s.kind == TimeKind::Setup)
        .map(|s| s.start)
        .collect();
    let mut next_setup = 0;
    let mut out = Vec::with_capacity(counts.len());
    for c in counts {
        while next_setup < setups.len() && setups[next_setup] <= c.ts {
            *since_setup = 0;
            next_setup += 1;
        }
        let left = u64::from(rules.startup_parts.saturating_sub(*since_setup));
        let startup_scrap = c.scrap.min(left);
        let made = c.good.saturating_add(c.scrap);
        *since_setup = since_setup.saturating_add(u32::try_from(made).unwrap_or(u32::MAX));
        out.push(SplitCount {
            ts: c.ts,
            good: c.good,
            scrap: c.scrap,
            startup_scrap,
        });
    }
    out
}

/// The sums of one bucket (or any sum of buckets). Times in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    pub calendar_s: f64,
    pub planned_downtime_s: f64,
    pub no_data_s: f64,
    pub running_s: f64,
    pub small_stops_s: f64,
    pub other_stops_s: f64,
    pub breakdowns_s: f64,
    pub setup_s: f64,
    pub good: u64,
    pub scrap: u64,
    pub startup_scrap: u64,
    /// Ideal cycle × all parts, ideal cycle × startup scrap, ideal cycle × good parts.
    pub ideal_total_s: f64,
    pub ideal_startup_scrap_s: f64,
    pub ideal_good_s: f64,
    /// Breakdowns that started in the bucket.
    pub failures: u32,
}

impl Losses {
    pub fn add(&mut self, o: &Losses) {
        self.calendar_s += o.calendar_s;
        self.planned_downtime_s += o.planned_downtime_s;
        self.no_data_s += o.no_data_s;
        self.running_s += o.running_s;
        self.small_stops_s += o.small_stops_s;
        self.other_stops_s += o.other_stops_s;
        self.breakdowns_s += o.breakdowns_s;
        self.setup_s += o.setup_s;
        self.good += o.good;
        self.scrap += o.scrap;
        self.startup_scrap += o.startup_scrap;
        self.ideal_total_s += o.ideal_total_s;
        self.ideal_startup_scrap_s += o.ideal_startup_scrap_s;
        self.ideal_good_s += o.ideal_good_s;
        self.failures += o.failures;
    }

    fn time(&mut self, kind: TimeKind, s: f64) {
        match kind {
            TimeKind::Running => self.running_s += s,
            TimeKind::SmallStop => self.small_stops_s += s,
            TimeKind::OtherStop => self.other_stops_s += s,
            TimeKind::Breakdown => self.breakdowns_s += s,
            TimeKind::Setup => self.setup_s += s,
            TimeKind::Planned => self.planned_downtime_s += s,
            TimeKind::NoData => self.no_data_s += s,
        }
    }

    /// Planned production time.
    pub fn planned_s(&self) -> f64 {
        self.calendar_s - self.planned_downtime_s - self.no_data_s
    }

    /// Availability, performance, quality, OEE and the six big losses.
    pub fn oee(&self) -> Oee {
        let planned = self.planned_s();
        let operating = self.running_s + self.small_stops_s;
        let total = self.good + self.scrap;
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        let availability = ratio(operating, planned);
        let performance = ratio(self.ideal_total_s, operating);
        let quality = ratio(self.good as f64, total as f64);
        let oee = ratio(self.ideal_good_s, planned);
        Oee {
            availability,
            performance,
            quality,
            oee,
            planned_s: planned,
            operating_s: operating,
            net_run_s: self.ideal_total_s,
            fully_productive_s: self.ideal_good_s,
            good: self.good,
            scrap: self.scrap,
            total,
            failures: self.failures,
            losses: SixLosses {
                breakdowns_s: self.breakdowns_s,
                setup_s: self.setup_s,
                small_stops_s: self.small_stops_s,
                reduced_speed_s: self.running_s - self.ideal_total_s,
                startup_rejects_s: self.ideal_startup_scrap_s,
                production_rejects_s: self.ideal_total_s
                    - self.ideal_good_s
                    - self.ideal_startup_scrap_s,
                other_stops_s: self.other_stops_s,
            },
            startup_scrap: self.startup_scrap,
            planned_downtime_s: self.planned_downtime_s,
            no_data_s: self.no_data_s,
        }
    }
}

/// The six big losses in seconds of planned production time (plus long stops that are neither
/// breakdowns nor setups).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SixLosses {
    pub breakdowns_s: f64,
    pub setup_s: f64,
    pub small_stops_s: f64,
    /// Negative when the machine ran faster than its ideal cycle time (check the asset model).
    pub reduced_speed_s: f64,
    pub startup_rejects_s: f64,
    pub production_rejects_s: f64,
    pub other_stops_s: f64,
}

/// The figures of one bucket or range. Ratios are `None` when their denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Oee {
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    pub planned_s: f64,
    pub operating_s: f64,
    pub net_run_s: f64,
    pub fully_productive_s: f64,
    pub good: u64,
    pub scrap: u64,
    pub total: u64,
    pub startup_scrap: u64,
    pub failures: u32,
    pub losses: SixLosses,
    pub planned_downtime_s: f64,
    pub no_data_s: f64,
}

/// Fills buckets `[b, b + step)` for `b = start, start + step, …` up to `end` from classified
/// segments, split counts and planned-downtime windows (sorted or not, may overlap).
/// `ideal_cycle_s` of `None` leaves the ideal times at zero (performance unknown).
pub fn bucketize(
    start: i64,
    end: i64,
    step: i64,
    segments: &[Segment],
    counts: &[SplitCount],
    planned: &[(i64, i64)],
    ideal_cycle_s: Option<f64>,
) -> Vec<Losses> {
    let n = usize::try_from(((end - start) + step - 1) / step.max(1)).unwrap_or(0);
    let mut out = vec![Losses::default(); n];
    let planned = merge(planned);
    for (i, b) in out.iter_mut().enumerate() {
        let bs = start + step * i as i64;
        let be = (bs + step).min(end);
        b.calendar_s = (be - bs) as f64 / 1000.0;
        for s in segments {
            let (a, z) = (s.start.max(bs), s.end.min(be));
            if a >= z {
                continue;
            }
            let off = overlap(&planned, a, z);
            b.time(s.kind, (z - a - off) as f64 / 1000.0);
            b.planned_downtime_s += off as f64 / 1000.0;
            if s.kind == TimeKind::Breakdown && s.start >= bs && s.start < be {
                b.failures += 1;
            }
        }
        // Time no segment covers (after the horizon) is no data.
        let covered: i64 = segments
            .iter()
            .map(|s| (s.end.min(be) - s.start.max(bs)).max(0))
            .sum();
        if covered < be - bs {
            b.no_data_s += (be - bs - covered) as f64 / 1000.0;
        }
    }
    let ideal = ideal_cycle_s.unwrap_or(0.0);
    for c in counts {
        if c.ts < start || c.ts >= end {
            continue;
        }
        let i = usize::try_from((c.ts - start) / step).unwrap_or(0);
        if let Some(b) = out.get_mut(i) {
            b.good += c.good;
            b.scrap += c.scrap;
            b.startup_scrap += c.startup_scrap;
            b.ideal_total_s += ideal * (c.good + c.scrap) as f64;
            b.ideal_good_s += ideal * c.good as f64;
            b.ideal_startup_scrap_s += ideal * c.startup_scrap as f64;
        }
    }
    out
}

fn merge(w: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> = w.iter().copied().filter(|(a, b)| a < b).collect();
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn overlap(merged: &[(i64, i64)], a: i64, z: i64) -> i64 {
    merged
        .iter()
        .map(|&(s, e)| (e.min(z) - s.max(a)).max(0))
        .sum()
}

/// A daily window (shift or break) in minutes after local midnight of the machine's site;
/// `end < start` crosses midnight. [`occurrences`] turns it into instants with the site's
/// [`Zone`] (daylight saving included).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyWindow {
    pub name: String,
    pub start_min: u32,
    pub end_min: u32,
}

impl DailyWindow {
    fn pieces(&self) -> Vec<(u32, u32)> {
        if self.start_min < self.end_min {
            vec![(self.start_min, self.end_min)]
        } else {
            vec![(self.start_min, 1440), (0, self.end_min)]
        }
    }
}

/// Shifts must not overlap: a minute belongs to at most one shift.
pub fn check_shifts(shifts: &[DailyWindow]) -> Result<(), OeeError> {
    for (i, a) in shifts.iter().enumerate() {
        for b in &shifts[i + 1..] {
            let hit = a
                .pieces()
                .iter()
                .any(|&(s1, e1)| b.pieces().iter().any(|&(s2, e2)| s1 < e2 && s2 < e1));
            if hit {
                return Err(OeeError::OverlappingShifts {
                    a: a.name.clone(),
                    b: b.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Every occurrence of the windows that overlaps `[from, to)` in the local time of `zone`,
/// clipped, sorted by start, with the window's index. Non-overlapping windows (wall-clock minutes)
/// give non-overlapping occurrences on every day, daylight-saving days included.
pub fn occurrences(
    windows: &[DailyWindow],
    zone: &Zone,
    from: i64,
    to: i64,
) -> Vec<(usize, i64, i64)> {
    let w: Vec<(u32, u32)> = windows.iter().map(|w| (w.start_min, w.end_min)).collect();
    zone.occurrences(&w, from, to)
        .into_iter()
        .map(|o| (o.window, o.start, o.end))
        .collect()
}

/// Time in `[from, to)` outside every shift (planned downtime "no shift"); empty when there are
/// no shifts (the plant runs around the clock).
pub fn outside_shifts(shifts: &[DailyWindow], zone: &Zone, from: i64, to: i64) -> Vec<(i64, i64)> {
    if shifts.is_empty() {
        return Vec::new();
    }
    let on = merge(
        &occurrences(shifts, zone, from, to)
            .into_iter()
            .map(|(_, a, z)| (a, z))
            .collect::<Vec<_>>(),
    );
    let mut out = Vec::new();
    let mut t = from;
    for (a, z) in on {
        if a > t {
            out.push((t, a));
        }
        t = t.max(z);
    }
    if t < to {
        out.push((t, to));
    }
    out
}

/// Whether the machine runs, from a power or speed signal: running while the value is above
/// `running_above`, otherwise `idle` (reason `inferred`). Returns the changes only.
pub fn infer_states(samples: &[(i64, f64)], running_above: f64) -> Vec<StateChange> {
    let mut out: Vec<StateChange> = Vec::new();
    for &(ts, v) in samples {
        if !v.is_finite() {
            continue;
        }
        let state = if v > running_above { "running" } else { "idle" };
        if out.last().is_none_or(|l| l.state != state) {
            out.push(StateChange {
                ts,
                state: state.into(),
                reason: (state == "idle").then(|| "inferred".into()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY_MS: i64 = 24 * HOUR;

    fn ch(min: i64, state: &str, reason: Option<&str>) -> StateChange {
        StateChange {
            ts: min * MIN,
            state: state.into(),
            reason: reason.map(Into::into),
        }
    }

    fn count(min: f64, good: u64, scrap: u64) -> Count {
        Count {
            ts: (min * MIN as f64) as i64,
            good,
            scrap,
        }
    }

    /// One hour of one machine, ideal cycle 30 s, computed by hand:
    ///
    /// ```text
    /// 00–05  setup (changeover)            setup            5 min
    /// 05–35  running                       running         30 min
    /// 35–37  idle (starved)                small stop       2 min   (< 5 min)
    /// 37–45  running                       running          8 min
    /// 45–55  down (tool_wear_failure)      breakdown       10 min
    /// 55–60  idle (break)                  planned          5 min
    /// ```
    /// Parts: 2 scrap at minute 6 (the first parts after setup: startup rejects, startup_parts 3),
    /// 70 good at 20, 1 scrap at 30 (a production reject), 5 good at 40. Total 78, good 75.
    ///
    /// planned   = 60 − 5 (break)                       = 55 min = 3300 s
    /// operating = 55 − 5 (setup) − 10 (breakdown)      = 40 min = 2400 s  (38 running + 2 small stop)
    /// A = 2400 / 3300                                  = 0.727272…
    /// net run   = 78 × 30 s                            = 2340 s
    /// P = 2340 / 2400                                  = 0.975
    /// Q = 75 / 78                                      = 0.961538…
    /// OEE = 75 × 30 / 3300 = 2250 / 3300               = 0.681818…
    /// losses: breakdowns 600 s, setup 300 s, small stops 120 s,
    ///         reduced speed = 2280 (38 min running) − 2340 = −60 s,
    ///         startup rejects 2 × 30 = 60 s, production rejects 1 × 30 = 30 s.
    /// Check: 2250 + 600 + 300 + 120 − 60 + 60 + 30 = 3300 = planned.
    #[test]
    fn hand_computed_hour() {
        let rules = StateRules::default();
        let changes = vec![
            ch(0, "setup", Some("changeover")),
            ch(5, "running", None),
            ch(35, "idle", Some("starved")),
            ch(37, "running", None),
            ch(45, "down", Some("tool_wear_failure")),
            ch(55, "idle", Some("break")),
        ];
        let segs = segments(None, &changes, 0, 60 * MIN, &rules);
        let kinds: Vec<TimeKind> = segs.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                TimeKind::Setup,
                TimeKind::Running,
                TimeKind::SmallStop,
                TimeKind::Running,
                TimeKind::Breakdown,
                TimeKind::Planned
            ]
        );
        let counts = [
            count(6.0, 0, 2),
            count(20.0, 70, 0),
            count(30.0, 0, 1),
            count(40.0, 5, 0),
        ];
        let mut since = rules.startup_parts;
        let split = split_counts(&counts, &segs, &rules, &mut since);
        assert_eq!(split[0].startup_scrap, 2);
        assert_eq!(split[2].startup_scrap, 0);
        let b = bucketize(0, 60 * MIN, 60 * MIN, &segs, &split, &[], Some(30.0));
        assert_eq!(b.len(), 1);
        let o = b[0].oee();
        assert_eq!(o.planned_s, 3300.0);
        assert_eq!(o.operating_s, 2400.0);
        assert_eq!(o.availability, Some(2400.0 / 3300.0));
        assert_eq!(o.performance, Some(0.975));
        assert_eq!(o.quality, Some(75.0 / 78.0));
        assert_eq!(o.oee, Some(2250.0 / 3300.0));
        let l = &o.losses;
        assert_eq!(
            (
                l.breakdowns_s,
                l.setup_s,
                l.small_stops_s,
                l.reduced_speed_s,
                l.startup_rejects_s,
                l.production_rejects_s
            ),
            (600.0, 300.0, 120.0, -60.0, 60.0, 30.0)
        );
        assert_eq!(o.failures, 1);
        let sum = o.fully_productive_s
            + l.breakdowns_s
            + l.setup_s
            + l.small_stops_s
            + l.reduced_speed_s
            + l.startup_rejects_s
            + l.production_rejects_s
            + l.other_stops_s;
        assert_eq!(sum, o.planned_s);
        // A × P × Q equals OEE (up to rounding).
        let apq =
            o.availability.unwrap_or(0.0) * o.performance.unwrap_or(0.0) * o.quality.unwrap_or(0.0);
        assert!((apq - 2250.0 / 3300.0).abs() < 1e-12);
    }

    /// Buckets of a quarter hour add up to the hour, and a stop that lasts past a bucket keeps
    /// its category (6 min idle across two buckets is one long stop, not two small ones).
    #[test]
    fn buckets_add_up_and_stops_keep_their_length() {
        let rules = StateRules::default();
        let changes = vec![
            ch(0, "running", None),
            ch(12, "idle", None),
            ch(18, "running", None),
        ];
        let segs = segments(None, &changes, 0, 60 * MIN, &rules);
        assert_eq!(segs[1].kind, TimeKind::OtherStop);
        let counts = [count(1.0, 10, 0), count(50.0, 10, 1)];
        let split = split_counts(&counts, &segs, &rules, &mut 3);
        let q = bucketize(0, 60 * MIN, 15 * MIN, &segs, &split, &[], Some(60.0));
        let h = bucketize(0, 60 * MIN, 60 * MIN, &segs, &split, &[], Some(60.0));
        let mut sum = Losses::default();
        q.iter().for_each(|b| sum.add(b));
        assert_eq!(sum, h[0]);
        assert_eq!(q[0].other_stops_s, 180.0);
        assert_eq!(q[1].other_stops_s, 180.0);
    }

    #[test]
    fn open_short_stop_is_not_final_and_initial_state_counts() {
        let rules = StateRules::default();
        // Idle since minute 58 of the previous hour; the query starts at 60 and the data ends at 62.
        let init = ch(58, "idle", Some("blocked"));
        let segs = segments(Some(&init), &[], 60 * MIN, 62 * MIN, &rules);
        assert_eq!(segs.len(), 1);
        assert_eq!(
            (segs[0].start, segs[0].kind),
            (60 * MIN, TimeKind::SmallStop)
        );
        assert!(!segs[0].final_);
        // Once it has lasted 5 minutes it is a long stop, final even while open.
        let segs = segments(Some(&init), &[], 60 * MIN, 64 * MIN, &rules);
        assert_eq!(segs[0].kind, TimeKind::OtherStop);
        assert!(segs[0].final_);
        // No state at all before the first change: no data, outside planned time.
        let segs = segments(None, &[ch(10, "running", None)], 0, 20 * MIN, &rules);
        let b = bucketize(0, 20 * MIN, 20 * MIN, &segs, &[], &[], None);
        assert_eq!((b[0].no_data_s, b[0].planned_s()), (600.0, 600.0));
    }

    #[test]
    fn shifts_overlap_and_planned_time() {
        let w = |n: &str, s: u32, e: u32| DailyWindow {
            name: n.into(),
            start_min: s,
            end_min: e,
        };
        let ok = [
            w("early", 360, 840),
            w("late", 840, 1320),
            w("night", 1320, 360),
        ];
        assert!(check_shifts(&ok).is_ok());
        assert!(outside_shifts(&ok, &Zone::utc(), 0, DAY_MS).is_empty());
        let bad = [w("early", 360, 840), w("night", 1320, 420)];
        assert_eq!(
            check_shifts(&bad),
            Err(OeeError::OverlappingShifts {
                a: "early".into(),
                b: "night".into()
            })
        );
        // Two shifts 06–14 and 14–22: 22–06 is planned downtime.
        let two = &ok[..2];
        assert_eq!(
            outside_shifts(two, &Zone::utc(), 0, DAY_MS),
            vec![(0, 360 * MIN), (1320 * MIN, DAY_MS)]
        );
        let occ = occurrences(&ok, &Zone::utc(), 0, DAY_MS);
        assert_eq!(occ.first(), Some(&(2, 0, 360 * MIN)));
        assert_eq!(occ.len(), 4);
    }

    /// Shifts are wall-clock times of the site: (zone, shift, range start, range hours, expected
    /// occurrences in hours after the range start, expected planned downtime in hours).
    #[test]
    fn shifts_in_the_site_time_zone() {
        // 2026-06-01T00:00Z, 2026-03-28T12:00Z and 2026-10-24T12:00Z.
        const JUN_1: i64 = 1_780_272_000_000;
        const MAR_28_NOON: i64 = 1_774_699_200_000;
        const OCT_24_NOON: i64 = 1_792_843_200_000;
        let day = ("day", 8 * 60, 16 * 60);
        let night = ("night", 22 * 60, 6 * 60);
        type Case = (
            &'static str,
            (&'static str, u32, u32),
            i64,
            i64,
            Vec<(i64, i64)>,
            i64,
        );
        let cases: Vec<Case> = vec![
            // UTC+8: the day shift 08:00–16:00 local is 00:00–08:00 UTC.
            ("Asia/Shanghai", day, JUN_1, 24, vec![(0, 8)], 16),
            ("UTC", day, JUN_1, 24, vec![(8, 16)], 16),
            // Berlin: 22:00 CET is 21:00Z; 06:00 CEST on 29 March is 04:00Z: a 7 h night.
            ("Europe/Berlin", night, MAR_28_NOON, 24, vec![(9, 16)], 17),
            // 22:00 CEST on 24 October is 20:00Z; 06:00 CET on the 25th is 05:00Z: a 9 h night.
            ("Europe/Berlin", night, OCT_24_NOON, 24, vec![(8, 17)], 15),
            // An ordinary night a week later: 8 h.
            (
                "Europe/Berlin",
                night,
                OCT_24_NOON + 7 * DAY_MS,
                24,
                vec![(9, 17)],
                16,
            ),
        ];
        for (name, (shift, s, e), from, hours, want, off) in cases {
            let zone = Zone::parse(name).expect(name);
            let w = [DailyWindow {
                name: shift.into(),
                start_min: s,
                end_min: e,
            }];
            let to = from + hours * HOUR;
            let got: Vec<(i64, i64)> = occurrences(&w, &zone, from, to)
                .into_iter()
                .map(|(_, a, z)| ((a - from) / HOUR, (z - from) / HOUR))
                .collect();
            assert_eq!(got, want, "{name} {shift} from {from}");
            let planned: i64 = outside_shifts(&w, &zone, from, to)
                .iter()
                .map(|(a, z)| z - a)
                .sum();
            assert_eq!(planned, off * HOUR, "{name} {shift} from {from}");
        }
    }

    #[test]
    fn states_inferred_from_power() {
        let s = [
            (0, 100.0),
            (1, 2000.0),
            (2, 2100.0),
            (3, 50.0),
            (4, f64::NAN),
        ];
        let c = infer_states(&s, 500.0);
        let names: Vec<(i64, &str)> = c.iter().map(|c| (c.ts, c.state.as_str())).collect();
        assert_eq!(names, [(0, "idle"), (1, "running"), (3, "idle")]);
    }
}
