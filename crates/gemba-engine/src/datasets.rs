//! Training sets cut from the store. `horizon`: one row per step while a machine is not down —
//! its gauges' latest values at that instant (features, named like the signals so that a model
//! trained on them can be scored live by a `model` alarm rule) and, as the label, the failure mode
//! of the machine's first `custom:failure` event within the next `horizon`, else `ok`: the
//! training set of failure-within-horizon prediction (docs/PRODUCTION.md). With `windows`, each
//! gauge also gives statistics over trailing windows ([`Feature`]: `vibration_rms:slope_30m`),
//! computed by `gemba_analytics::window` as a live `model` rule computes them. `parts`: one row per measured part of a machine — the value
//! of its quality characteristic (the gauge with spec limits) judged against the limits gives the
//! label (`defect` or `ok`), and the machine's other gauges at that instant (their latest sample at
//! or before it) are the features. This is what a defect-prediction model learns from.

use gemba_analytics::window::{Stat, series_stat};
use gemba_core::{SignalKind, Timestamp};

use crate::{Engine, EngineError};

/// A labelled table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub features: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<String>,
    pub ts: Vec<Timestamp>,
    /// Where the labels come from: the quality characteristic (`parts`) or the machine's failure
    /// events (`horizon`).
    pub quality: String,
    /// Name of the label column in CSV (`quality`, `failure`).
    pub label: String,
}

impl Table {
    /// CSV with a header: `ts`, the features, then `quality` (the label).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("ts");
        for f in &self.features {
            out.push(',');
            out.push_str(f);
        }
        out.push(',');
        out.push_str(&self.label);
        out.push('\n');
        for ((ts, row), label) in self.ts.iter().zip(&self.rows).zip(&self.labels) {
            out.push_str(&ts.to_string());
            for v in row {
                out.push(',');
                out.push_str(&v.to_string());
            }
            out.push(',');
            out.push_str(label);
            out.push('\n');
        }
        out
    }
}

impl Engine {
    /// The parts of `machine` measured in `[from, to)` (blocking: reads the store).
    pub fn parts_dataset(
        &self,
        machine: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Table, EngineError> {
        if from >= to {
            return Err(EngineError::InvalidQuery(format!(
                "from ({from}) must be before to ({to})"
            )));
        }
        let machine = machine.trim_end_matches('/');
        if self.registry().node(machine).is_none() {
            return Err(EngineError::InvalidQuery(format!(
                "machine: unknown asset {machine:?}"
            )));
        }
        let signals = self.own_signals(machine);
        let quality = signals
            .iter()
            .find(|r| r.def.spec.as_ref().is_some_and(|s| s.lsl.is_some() || s.usl.is_some()))
            .ok_or_else(|| {
                EngineError::InvalidQuery(format!(
                    "machine: {machine} has no signal with spec limits (lsl/usl) to judge its parts by"
                ))
            })?
            .clone();
        let (lsl, usl) = quality.def.spec.map_or((None, None), |s| (s.lsl, s.usl));
        let features: Vec<_> = signals
            .iter()
            .filter(|r| {
                r.id != quality.id
                    && r.def.kind == SignalKind::Gauge
                    && !r.def.auto
                    && r.def.spec.is_none()
            })
            .cloned()
            .collect();
        let parts = self.store().range(quality.id, from, to, 5_000_000)?;
        if parts.is_empty() {
            return Err(EngineError::InvalidQuery(format!(
                "no parts: {} has no samples between {from} and {to}",
                quality.def.path
            )));
        }
        // Features held at their latest value at or before each part (a lookback of one hour
        // gives the first part its context).
        let series: Vec<Vec<gemba_core::Sample>> = features
            .iter()
            .map(|r| self.store().range(r.id, from - 3_600_000, to, 20_000_000))
            .collect::<Result<_, _>>()?;
        let mut held: Vec<Held> = series.iter().map(|s| Held::new(s)).collect();
        let mut table = Table {
            features: features
                .iter()
                .map(|r| r.def.path.rsplit('/').next().unwrap_or("").to_owned())
                .collect(),
            rows: Vec::new(),
            labels: Vec::new(),
            ts: Vec::new(),
            quality: quality.def.path.clone(),
            label: "quality".into(),
        };
        for p in parts {
            let Some(row) = held
                .iter_mut()
                .map(|h| h.at(p.ts))
                .collect::<Option<Vec<f64>>>()
            else {
                continue;
            };
            let bad = lsl.is_some_and(|l| p.value < l) || usl.is_some_and(|u| p.value > u);
            table.rows.push(row);
            table.labels.push(if bad { "defect" } else { "ok" }.into());
            table.ts.push(p.ts);
        }
        Ok(table)
    }
}

/// A series read forward in time: its latest value at or before each asked time.
struct Held<'a> {
    series: &'a [gemba_core::Sample],
    next: usize,
    value: Option<f64>,
}

impl<'a> Held<'a> {
    fn new(series: &'a [gemba_core::Sample]) -> Self {
        Held {
            series,
            next: 0,
            value: None,
        }
    }

    /// The latest value at or before `t`; `t` must not go back in time between calls.
    fn at(&mut self, t: Timestamp) -> Option<f64> {
        while let Some(s) = self.series.get(self.next).filter(|s| s.ts <= t) {
            self.value = Some(s.value);
            self.next += 1;
        }
        self.value
    }
}

impl Engine {
    /// The signals directly under `machine` (not those of assets below it).
    fn own_signals(&self, machine: &str) -> Vec<crate::Registered> {
        self.registry()
            .signals_under(machine)
            .into_iter()
            .filter(|r| r.def.path.rsplit_once('/').map(|(p, _)| p) == Some(machine))
            .collect()
    }
}

/// A feature of a machine's model: a signal's latest value (`vibration_rms`) or a statistic of it
/// over a trailing window (`vibration_rms:slope_30m`; statistics `mean`, `std`, `slope` per hour,
/// `min`, `max`; windows in `s`, `m`, `h`). A `model` alarm rule scores a model on the signals of
/// the machine named like its features.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub signal: String,
    pub window: Option<(Stat, i64)>,
}

impl Feature {
    pub fn parse(name: &str) -> Result<Feature, String> {
        let Some((signal, spec)) = name.split_once(':') else {
            return Ok(Feature {
                signal: name.to_owned(),
                window: None,
            });
        };
        let (stat, window) = spec.split_once('_').ok_or_else(|| {
            format!("feature {name:?}: a window feature is SIGNAL:STAT_WINDOW, e.g. vibration_rms:slope_30m")
        })?;
        let stat = Stat::parse(stat).ok_or_else(|| {
            format!("feature {name:?}: unknown statistic {stat:?} (mean, std, slope, min or max)")
        })?;
        let ms = gemba_core::time::parse_duration_ms(window)
            .map_err(|e| format!("feature {name:?}: window {e}"))?;
        check_window(ms).map_err(|e| format!("feature {name:?}: {e}"))?;
        Ok(Feature {
            signal: signal.to_owned(),
            window: Some((stat, ms)),
        })
    }

    pub fn name(&self) -> String {
        match self.window {
            None => self.signal.clone(),
            Some((stat, ms)) => format!("{}:{}_{}", self.signal, stat.name(), duration_name(ms)),
        }
    }
}

/// The longest window a feature may have.
pub const MAX_WINDOW_MS: i64 = 7 * 24 * 3_600_000;

/// Windows are whole seconds from 1 s to 7 days.
pub fn check_window(ms: i64) -> Result<(), String> {
    if ms < 1000 || ms % 1000 != 0 || ms > MAX_WINDOW_MS {
        return Err(format!(
            "window of {ms} ms: use whole seconds from 1s to 7d"
        ));
    }
    Ok(())
}

/// `90s`, `30m`, `2h`, `1d`: the largest unit that divides the duration.
pub fn duration_name(ms: i64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// What `horizon_dataset` cuts.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonRequest {
    pub machine: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// One row every `step_ms`.
    pub step_ms: i64,
    /// A row is labelled with a failure that follows within this time.
    pub horizon_ms: i64,
    /// Trailing windows: each gauge also gives each of `stats` over each window.
    pub windows: Vec<i64>,
    /// Default (empty): mean, std and slope.
    pub stats: Vec<Stat>,
}

impl HorizonRequest {
    /// The features of each gauge: its latest value, then its statistics per window.
    pub fn features_of(&self, signal: &str) -> Vec<Feature> {
        let stats = if self.stats.is_empty() {
            vec![Stat::Mean, Stat::Std, Stat::Slope]
        } else {
            self.stats.clone()
        };
        std::iter::once(Feature {
            signal: signal.to_owned(),
            window: None,
        })
        .chain(self.windows.iter().flat_map(|&w| {
            stats.iter().map(move |&st| Feature {
                signal: signal.to_owned(),
                window: Some((st, w)),
            })
        }))
        .collect()
    }
}

impl Engine {
    /// The failure-within-horizon training set of a machine (see the module documentation).
    /// Blocking: reads the store.
    pub fn horizon_dataset(&self, req: &HorizonRequest) -> Result<Table, EngineError> {
        let bad = |m: String| Err(EngineError::InvalidQuery(m));
        if req.from >= req.to {
            return bad(format!(
                "from ({}) must be before to ({})",
                req.from, req.to
            ));
        }
        if req.step_ms <= 0 || req.horizon_ms <= 0 {
            return bad("step and horizon must be positive".into());
        }
        if req.horizon_ms >= req.to - req.from {
            return bad(format!(
                "horizon ({} min) is not shorter than the history asked for ({} min): nothing could be labelled",
                req.horizon_ms / 60_000,
                (req.to - req.from) / 60_000
            ));
        }
        if (req.to - req.from) / req.step_ms > 2_000_000 {
            return bad("more than 2,000,000 rows: use a longer step or a shorter range".into());
        }
        for &w in &req.windows {
            check_window(w).map_err(EngineError::InvalidQuery)?;
        }
        let machine = req.machine.trim_end_matches('/');
        if self.registry().node(machine).is_none() {
            return bad(format!("machine: unknown asset {machine:?}"));
        }
        let own = self.own_signals(machine);
        let features: Vec<_> = own
            .iter()
            .filter(|r| r.def.kind == SignalKind::Gauge && !r.def.auto)
            .cloned()
            .collect();
        if features.is_empty() {
            return bad(format!(
                "machine: {machine} has no gauge signals to learn from"
            ));
        }
        // While the machine is down it cannot fail: those rows are left out.
        let state = own
            .iter()
            .find(|r| r.def.kind == SignalKind::State)
            .and_then(|r| {
                let down = r.def.states.iter().position(|s| s == "down")?;
                Some((r.id, down as f64))
            });
        let failures: Vec<(Timestamp, String)> = self
            .store()
            .events(&gemba_store::EventQuery {
                from: req.from,
                to: req.to + req.horizon_ms,
                asset_prefix: Some(machine.to_owned()),
                kind: Some("custom:failure".into()),
                limit: 1_000_000,
            })?
            .into_iter()
            .filter(|e| e.event.asset == machine)
            .map(|e| {
                let mode = e
                    .event
                    .attrs
                    .get("mode")
                    .and_then(|m| m.as_str())
                    .unwrap_or("failure")
                    .to_owned();
                (e.event.ts, mode)
            })
            .collect();
        if failures.is_empty() {
            return bad(format!(
                "no custom:failure events of {machine} in the range: without failures there is nothing to learn (label failures with events of type custom:failure and an attribute mode)"
            ));
        }
        let lookback = req
            .windows
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(3_600_000);
        let series: Vec<Vec<gemba_core::Sample>> = features
            .iter()
            .map(|r| {
                self.store()
                    .range(r.id, req.from - lookback, req.to + 1, 50_000_000)
            })
            .collect::<Result<_, _>>()?;
        let states = match state {
            Some((id, _)) => self
                .store()
                .range(id, req.from - lookback, req.to + 1, 50_000_000)?,
            None => Vec::new(),
        };
        let names: Vec<String> = features
            .iter()
            .map(|r| r.def.path.rsplit('/').next().unwrap_or("").to_owned())
            .collect();
        // Per gauge: (index of its series, window) for each of its columns.
        let columns: Vec<(usize, Option<(Stat, i64)>)> = names
            .iter()
            .enumerate()
            .flat_map(|(i, n)| req.features_of(n).into_iter().map(move |f| (i, f.window)))
            .collect();
        let pairs: Vec<Vec<(i64, f64)>> = series
            .iter()
            .map(|s| s.iter().map(|x| (x.ts, x.value)).collect())
            .collect();
        let mut table = Table {
            features: names
                .iter()
                .flat_map(|n| req.features_of(n).into_iter().map(|f| f.name()))
                .collect(),
            rows: Vec::new(),
            labels: Vec::new(),
            ts: Vec::new(),
            quality: format!("{machine} custom:failure"),
            label: "failure".into(),
        };
        let mut held: Vec<Held> = series.iter().map(|s| Held::new(s)).collect();
        let mut state_now = Held::new(&states);
        let mut next_failure = 0usize;
        let mut t = req.from + req.step_ms;
        while t <= req.to {
            let st = state_now.at(t);
            while next_failure < failures.len() && failures[next_failure].0 <= t {
                next_failure += 1;
            }
            let down = matches!((state, st), (Some((_, d)), Some(v)) if v == d);
            let latest: Vec<Option<f64>> = held.iter_mut().map(|h| h.at(t)).collect();
            let row = columns
                .iter()
                .map(|&(i, w)| match w {
                    None => latest[i],
                    Some((stat, ms)) => series_stat(stat, &pairs[i], ms, t, latest[i]),
                })
                .collect::<Option<Vec<f64>>>();
            if let (false, Some(row)) = (down, row) {
                let label = match failures.get(next_failure) {
                    Some((ft, mode)) if ft - t <= req.horizon_ms => mode.clone(),
                    _ => "ok".to_owned(),
                };
                table.rows.push(row);
                table.labels.push(label);
                table.ts.push(t);
            }
            t += req.step_ms;
        }
        if table.labels.iter().all(|l| l == "ok") {
            return bad(format!(
                "no row of {machine} precedes a failure within the horizon (the failures fall while it is down or outside the data)"
            ));
        }
        Ok(table)
    }
}
