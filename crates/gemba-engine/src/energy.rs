//! Energy and emissions: energy per machine, line and site from meters (an `energy` counter in kWh,
//! or a `power` gauge in W integrated over time), energy per good unit (good counts of `production`
//! events), idle energy (energy in minutes the machine was not `running`), CO2e from configurable
//! grid emission factors (per site, optionally per time of day), reports per shift, day and month,
//! and energy and CO2e per lot (over the time its genealogy spent at machines and lines).
//!
//! Shifts, days, months and the time-of-day bands of emission factors are local to each machine's
//! site (`gemba_core::zone`, with daylight saving: a local day may have 23 or 25 hours).
//!
//! Everything is computed on one-minute buckets read from the store's rollups: a minute's energy is
//! the counter's increase over the previous minute (a decrease is a meter reset: the new reading
//! counts from zero), or the minute's mean power × 60 s; a minute counts as producing when the
//! state signal's last value in it is `running`. The pure functions here take those buckets; the
//! [`Engine`] methods fetch them.

use std::collections::{BTreeMap, HashMap};

use gemba_core::{EventBody, Level, ShiftDef, SignalKind, Timestamp, TreeNode, Zone};
use gemba_store::EventQuery;
use serde::{Deserialize, Serialize};

use crate::logistics::Direction;
use crate::{Engine, EngineError};

const MINUTE: i64 = 60_000;

/// `[energy]` of the configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnergyConfig {
    /// kg CO2e per kWh for sites that set none (none: CO2e is not computed for them).
    pub co2e_kg_per_kwh: Option<f64>,
    /// Per-site factors.
    pub sites: Vec<SiteFactor>,
}

/// The grid emission factor of one site, optionally by time of day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFactor {
    pub site: String,
    pub co2e_kg_per_kwh: f64,
    /// Times of day (the site's local time, `HH:MM`–`HH:MM`, may cross midnight) with another
    /// factor.
    #[serde(default)]
    pub bands: Vec<Band>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub start: String,
    pub end: String,
    pub co2e_kg_per_kwh: f64,
}

impl Band {
    fn as_shift(&self) -> ShiftDef {
        ShiftDef {
            name: "band".into(),
            start: self.start.clone(),
            end: self.end.clone(),
        }
    }
}

impl EnergyConfig {
    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let factor = |key: &str, f: f64| {
            if f.is_finite() && f >= 0.0 {
                Ok(())
            } else {
                Err(format!("{key}: {f} must be a finite number >= 0"))
            }
        };
        if let Some(f) = self.co2e_kg_per_kwh {
            factor("energy.co2e_kg_per_kwh", f)?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            let key = format!("energy.sites[{i}]");
            gemba_core::check_segment(&s.site).map_err(|r| format!("{key}.site: {r}"))?;
            factor(&format!("{key}.co2e_kg_per_kwh"), s.co2e_kg_per_kwh)?;
            for (j, b) in s.bands.iter().enumerate() {
                let key = format!("{key}.bands[{j}]");
                b.as_shift().minutes().map_err(|e| {
                    format!("{key}: {}", e.to_string().replace("shift \"band\": ", ""))
                })?;
                factor(&format!("{key}.co2e_kg_per_kwh"), b.co2e_kg_per_kwh)?;
            }
        }
        Ok(())
    }

    /// kg CO2e per kWh at a site (in time zone `zone`) at a time, if any factor applies.
    pub fn factor(&self, site: &str, zone: &Zone, ts: Timestamp) -> Option<f64> {
        match self.sites.iter().find(|s| s.site == site) {
            Some(s) => {
                let local = zone.datetime(ts);
                let minute = local.hour() as u32 * 60 + local.minute() as u32;
                Some(
                    s.bands
                        .iter()
                        .find(|b| b.as_shift().contains_minute(minute))
                        .map_or(s.co2e_kg_per_kwh, |b| b.co2e_kg_per_kwh),
                )
            }
            None => self.co2e_kg_per_kwh,
        }
    }
}

/// One minute of one machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minute {
    pub ts: Timestamp,
    pub kwh: f64,
    pub producing: bool,
}

/// The minutes of one machine, in time order, and the time zone of its site.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineMinutes {
    pub machine: String,
    pub zone: Zone,
    pub minutes: Vec<Minute>,
}

/// Energy per bucket from a counter's last value per bucket (time order). The first bucket only
/// gives the starting reading. A decrease is a meter reset: the new reading counts from zero.
pub fn kwh_from_counter(lasts: &[(Timestamp, f64)]) -> Vec<(Timestamp, f64)> {
    lasts
        .windows(2)
        .map(|w| {
            let d = w[1].1 - w[0].1;
            (w[1].0, if d >= 0.0 { d } else { w[1].1.max(0.0) })
        })
        .collect()
}

/// Energy per bucket from mean power in W over buckets of `step_ms`.
pub fn kwh_from_power(means: &[(Timestamp, f64)], step_ms: i64) -> Vec<(Timestamp, f64)> {
    let hours = step_ms as f64 / 3_600_000.0;
    means
        .iter()
        .map(|&(ts, w)| (ts, w.max(0.0) * hours / 1000.0))
        .collect()
}

/// How a report groups time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Shift,
    Day,
    Month,
    Total,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shift" => Ok(Period::Shift),
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            "total" => Ok(Period::Total),
            _ => Err("must be shift, day, month or total".into()),
        }
    }
}

/// The period that holds `ts` in the local time of `zone`: its start, its end (exclusive) and
/// its label (`2026-03-29`, `2026-03`, `2026-03-28 night` by the local date the shift starts on,
/// `2026-03-29 off-shift` for the time of a local day outside every shift).
pub fn period_of(
    period: Period,
    ts: Timestamp,
    shifts: &[ShiftDef],
    zone: &Zone,
) -> (Timestamp, Timestamp, String) {
    match period {
        Period::Total => (0, Timestamp::MAX, "total".into()),
        Period::Day => {
            let (d, start, end) = zone.day(ts);
            (start, end, d.to_string())
        }
        Period::Month => {
            let (d, start, end) = zone.month(ts);
            (start, end, format!("{:04}-{:02}", d.year(), d.month()))
        }
        Period::Shift => {
            let valid: Vec<(&str, (u32, u32))> = shifts
                .iter()
                .filter_map(|s| Some((s.name.as_str(), s.minutes().ok()?)))
                .collect();
            let windows: Vec<(u32, u32)> = valid.iter().map(|v| v.1).collect();
            match zone.window_at(&windows, ts) {
                Some(o) => {
                    let name = valid.get(o.window).map_or("", |v| v.0);
                    (o.start, o.end, format!("{} {name}", o.date))
                }
                None => {
                    // Off-shift minutes are grouped per local day; the span ends at the minute
                    // so that the next minute is looked up again.
                    let (d, start, _) = zone.day(ts);
                    (start, ts + 1, format!("{d} off-shift"))
                }
            }
        }
    }
}

/// One row of an energy report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub asset: String,
    /// `machine`, `line` or `site`.
    pub level: &'static str,
    /// The local period's label (`2026-03-29`, `2026-03`, `2026-03-28 night`).
    pub period: String,
    pub period_start: Timestamp,
    /// `period_start` in the site's local time with its offset (ISO 8601).
    pub period_start_local: String,
    /// The IANA time zone of the asset's site.
    pub timezone: String,
    pub kwh: f64,
    /// Energy in minutes the machine was not producing (a loss).
    pub idle_kwh: f64,
    pub good: u64,
    pub scrap: u64,
    pub kwh_per_good: Option<f64>,
    pub co2e_kg: Option<f64>,
}

/// A production event reduced to what the report needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub machine: String,
    pub ts: Timestamp,
    pub good: u64,
    pub scrap: u64,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    kwh: f64,
    idle: f64,
    co2e: f64,
    co2e_known: bool,
    good: u64,
    scrap: u64,
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The span of the last period looked up, so that consecutive minutes of one period cost no
/// calendar arithmetic.
#[derive(Default)]
struct Spans {
    last: Option<(Timestamp, Timestamp, Timestamp, String)>,
}

impl Spans {
    /// (start, label) of the period of `ts` at a machine in `zone`.
    fn of(
        &mut self,
        by: Period,
        ts: Timestamp,
        shifts: &[ShiftDef],
        zone: &Zone,
    ) -> (Timestamp, String) {
        if let Some((start, a, z, label)) = &self.last
            && *a <= ts
            && ts < *z
        {
            return (*start, label.clone());
        }
        let (start, end, label) = period_of(by, ts, shifts, zone);
        // Valid from `ts` (an off-shift span starts at its day but ends at `ts + 1`).
        self.last = Some((start, ts, end, label.clone()));
        (start, label)
    }
}

/// One row's key: period start, its label, level order (site, line, machine) and asset.
type RowKey = (Timestamp, String, u8, String);

/// The report: one row per machine, line and site and period, in the local time of each
/// machine's site. `machines` must be in plant order: a line's good parts are those of its last
/// machine; a site's are the sum of its lines'.
pub fn report(
    machines: &[MachineMinutes],
    made: &[Made],
    by: Period,
    shifts: &[ShiftDef],
    cfg: &EnergyConfig,
) -> Vec<ReportRow> {
    // (machine index, period start, label) → accumulated figures.
    let mut per: BTreeMap<(usize, Timestamp, String), Acc> = BTreeMap::new();
    let index: HashMap<&str, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (m.machine.as_str(), i))
        .collect();
    for (i, m) in machines.iter().enumerate() {
        let site = m.machine.split('/').next().unwrap_or("");
        let mut spans = Spans::default();
        for min in &m.minutes {
            let (start, label) = spans.of(by, min.ts, shifts, &m.zone);
            let a = per.entry((i, start, label)).or_default();
            a.kwh += min.kwh;
            if !min.producing {
                a.idle += min.kwh;
            }
            if let Some(f) = cfg.factor(site, &m.zone, min.ts) {
                a.co2e += min.kwh * f;
                a.co2e_known = true;
            }
        }
    }
    for p in made {
        let Some(&i) = index.get(p.machine.as_str()) else {
            continue;
        };
        let (start, _, label) = period_of(by, p.ts, shifts, &machines[i].zone);
        let a = per.entry((i, start, label)).or_default();
        a.good += p.good;
        a.scrap += p.scrap;
    }
    let last_of_line: HashMap<&str, usize> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| (parent(&m.machine), i))
        .collect();
    // Lines and sites are built from their machines (a site's machines share its zone).
    let mut rows: BTreeMap<RowKey, (Acc, &'static str, &Zone)> = BTreeMap::new();
    for ((i, start, label), a) in &per {
        let machine = machines[*i].machine.as_str();
        let line = parent(machine);
        let site = machine.split('/').next().unwrap_or("");
        let is_last = last_of_line.get(line) == Some(i);
        for (order, asset, level, counts) in [
            (2u8, machine, "machine", true),
            (1, line, "line", is_last),
            (0, site, "site", is_last),
        ] {
            let r = &mut rows
                .entry((*start, label.clone(), order, asset.to_owned()))
                .or_insert((Acc::default(), level, &machines[*i].zone))
                .0;
            r.kwh += a.kwh;
            r.idle += a.idle;
            r.co2e += a.co2e;
            r.co2e_known |= a.co2e_known;
            if counts {
                r.good += a.good;
                r.scrap += a.scrap;
            }
        }
    }
    rows.into_iter()
        .map(|((start, label, _, asset), (a, level, zone))| ReportRow {
            asset,
            level,
            period: label,
            period_start: start,
            period_start_local: zone.format(start),
            timezone: zone.name().to_owned(),
            kwh: a.kwh,
            idle_kwh: a.idle,
            good: a.good,
            scrap: a.scrap,
            kwh_per_good: (a.good > 0).then(|| a.kwh / a.good as f64),
            co2e_kg: a.co2e_known.then_some(a.co2e),
        })
        .collect()
}

/// Energy and CO2e of machines at or below `asset` in the minutes `[start, end)`.
pub fn window_energy(
    machines: &[MachineMinutes],
    asset: &str,
    start: Timestamp,
    end: Timestamp,
    cfg: &EnergyConfig,
) -> (f64, Option<f64>) {
    let mut kwh = 0.0;
    let mut co2e = None::<f64>;
    for m in machines
        .iter()
        .filter(|m| gemba_core::is_under(&m.machine, asset))
    {
        let site = m.machine.split('/').next().unwrap_or("");
        let from = m.minutes.partition_point(|x| x.ts < start);
        for min in m.minutes[from..].iter().take_while(|x| x.ts < end) {
            kwh += min.kwh;
            if let Some(f) = cfg.factor(site, &m.zone, min.ts) {
                *co2e.get_or_insert(0.0) += min.kwh * f;
            }
        }
    }
    (kwh, co2e)
}

/// Merges overlapping `[start, end)` windows of each asset.
pub fn merge_windows(
    mut w: Vec<(String, Timestamp, Timestamp)>,
) -> Vec<(String, Timestamp, Timestamp)> {
    w.sort();
    let mut out: Vec<(String, Timestamp, Timestamp)> = Vec::new();
    for (a, s, e) in w {
        match out.last_mut() {
            Some(last) if last.0 == a && s <= last.2 => last.2 = last.2.max(e),
            _ => out.push((a, s, e)),
        }
    }
    out
}

/// Energy and CO2e of one lot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotEnergy {
    pub lot: String,
    pub product: String,
    pub quantity: f64,
    pub unit: String,
    pub created: Timestamp,
    pub kwh: f64,
    pub kwh_per_unit: Option<f64>,
    pub co2e_kg: Option<f64>,
    pub co2e_kg_per_unit: Option<f64>,
    /// The lot made from this one: its energy is part of that lot's, so product totals leave
    /// this lot out (each kWh counts once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_by: Option<String>,
    /// Where and when the lot and the lots it was made from were at machines or lines.
    pub windows: Vec<Window>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub asset: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Energy and CO2e per product, summed over its lots that were not consumed into other lots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductEnergy {
    pub product: String,
    pub lots: usize,
    pub quantity: f64,
    pub kwh: f64,
    pub kwh_per_unit: Option<f64>,
    pub co2e_kg: Option<f64>,
}

/// Machines in plant order under `prefix`.
fn machines_in_order(tree: &TreeNode, prefix: &str, out: &mut Vec<TreeNode>) {
    if tree.level == Level::Machine {
        if gemba_core::is_under(&tree.path, prefix) {
            out.push(tree.clone());
        }
        return;
    }
    for c in &tree.children {
        machines_in_order(c, prefix, out);
    }
}

impl Engine {
    /// Minute energy of every machine at or below `asset` that has an `energy` counter or a
    /// `power` gauge, for the minutes starting in `[from, to)`, in plant order.
    pub async fn energy_minutes(
        &self,
        asset: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<MachineMinutes>, EngineError> {
        crate::check_range(from, to)?;
        let from = from.div_euclid(MINUTE) * MINUTE;
        let mut machines = Vec::new();
        machines_in_order(&self.registry.tree(), asset, &mut machines);
        let mut out = Vec::new();
        for m in machines {
            let zone = self.zone_of(&m.path)?;
            let sig = |name: &str, kind: SignalKind| {
                m.signals
                    .iter()
                    .find(|s| s.path.rsplit('/').next() == Some(name) && s.kind == kind)
                    .cloned()
            };
            let kwh: Vec<(Timestamp, f64)> = if let Some(s) = sig("energy", SignalKind::Counter) {
                let a = self.aggregate(&s.path, from - MINUTE, to, MINUTE).await?;
                let lasts: Vec<_> = a.buckets.iter().map(|b| (b.ts, b.last)).collect();
                kwh_from_counter(&lasts)
                    .into_iter()
                    .filter(|(ts, _)| *ts >= from)
                    .collect()
            } else if let Some(s) = sig("power", SignalKind::Gauge) {
                let a = self.aggregate(&s.path, from, to, MINUTE).await?;
                let means: Vec<_> = a.buckets.iter().map(|b| (b.ts, b.mean())).collect();
                kwh_from_power(&means, MINUTE)
            } else {
                continue;
            };
            let mut running: HashMap<Timestamp, bool> = HashMap::new();
            let mut has_state = false;
            if let Some(s) = sig("state", SignalKind::State) {
                has_state = true;
                let a = self.aggregate(&s.path, from, to, MINUTE).await?;
                for b in a.buckets {
                    let name = s.states.get(b.last as usize).map(String::as_str);
                    running.insert(b.ts, name == Some("running"));
                }
            }
            out.push(MachineMinutes {
                machine: m.path.clone(),
                zone,
                minutes: kwh
                    .into_iter()
                    .map(|(ts, kwh)| Minute {
                        ts,
                        kwh,
                        // Without a state signal every minute counts as producing (idle unknown).
                        producing: !has_state || running.get(&ts).copied().unwrap_or(false),
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Good and scrap counts of `production` events at or below `asset`.
    async fn made(
        &self,
        asset: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Made>, EngineError> {
        let events = self
            .events(EventQuery {
                from,
                to,
                asset_prefix: (!asset.is_empty()).then(|| asset.to_owned()),
                kind: Some("production".into()),
                limit: 5_000_000,
            })
            .await?;
        Ok(events
            .into_iter()
            .filter_map(|e| match e.event.body {
                EventBody::Production { good, scrap, .. } => Some(Made {
                    machine: e.event.asset,
                    ts: e.event.ts,
                    good,
                    scrap,
                }),
                _ => None,
            })
            .collect())
    }

    /// The energy report of `asset` (empty: everything) for `[from, to)` grouped `by` period.
    pub async fn energy_report(
        &self,
        asset: &str,
        from: Timestamp,
        to: Timestamp,
        by: Period,
    ) -> Result<Vec<ReportRow>, EngineError> {
        let machines = self.energy_minutes(asset, from, to).await?;
        let made = self.made(asset, from, to).await?;
        let shifts = self.registry.shifts();
        let cfg = self.config.energy.clone();
        let mut rows =
            tokio::task::spawn_blocking(move || report(&machines, &made, by, &shifts, &cfg))
                .await
                .map_err(|e| EngineError::Internal(format!("energy report failed: {e}")))?;
        if by == Period::Total {
            for r in &mut rows {
                r.period_start = from;
                r.period_start_local = Zone::parse(&r.timezone).unwrap_or_default().format(from);
            }
        }
        Ok(rows)
    }

    /// Windows `[start, end)` during which `lot` or a lot it was made from was at a machine or
    /// line of the asset model (`now` closes a stay that has not ended).
    pub async fn lot_windows(&self, lot: &str) -> Result<Vec<Window>, EngineError> {
        let owned = lot.to_owned();
        let nodes = self
            .with_ledger(move |l| l.genealogy(&owned, Direction::Backward))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("lot {lot:?}")))?;
        let now = self.now();
        let raw: Vec<(String, Timestamp, Timestamp)> = nodes
            .iter()
            .flat_map(|n| n.stays.iter())
            .filter(|s| self.registry.node(&s.location).is_some())
            .map(|s| (s.location.clone(), s.start, s.end.unwrap_or(now)))
            .filter(|(_, s, e)| e > s)
            .collect();
        Ok(merge_windows(raw)
            .into_iter()
            .map(|(asset, start, end)| Window { asset, start, end })
            .collect())
    }

    /// Energy and CO2e per lot created in `[from, to)` (optionally of one product, or one lot),
    /// and per product.
    pub async fn lot_energy(
        &self,
        from: Timestamp,
        to: Timestamp,
        product: Option<String>,
        lot: Option<String>,
    ) -> Result<(Vec<LotEnergy>, Vec<ProductEnergy>), EngineError> {
        crate::check_range(from, to)?;
        let lots = self
            .with_ledger(move |l| match lot {
                Some(id) => l.lot(&id).into_iter().collect::<Vec<_>>(),
                None => l
                    .lots(product.as_deref(), usize::MAX)
                    .into_iter()
                    .filter(|v| v.created >= from && v.created < to)
                    .collect(),
            })
            .await?;
        let mut windows = Vec::with_capacity(lots.len());
        let (mut lo, mut hi) = (Timestamp::MAX, Timestamp::MIN);
        for v in &lots {
            let w = self.lot_windows(&v.lot).await?;
            for x in &w {
                lo = lo.min(x.start);
                hi = hi.max(x.end);
            }
            windows.push(w);
        }
        let machines = if lo < hi {
            self.energy_minutes("", lo, hi + MINUTE).await?
        } else {
            Vec::new()
        };
        let cfg = &self.config.energy;
        let mut out = Vec::with_capacity(lots.len());
        let mut per: BTreeMap<String, ProductEnergy> = BTreeMap::new();
        for (v, w) in lots.into_iter().zip(windows) {
            let (mut kwh, mut co2e) = (0.0, None::<f64>);
            for x in &w {
                // Whole minutes that start inside the window.
                let start = x.start.div_euclid(MINUTE) * MINUTE
                    + if x.start.rem_euclid(MINUTE) == 0 {
                        0
                    } else {
                        MINUTE
                    };
                let (k, c) = window_energy(&machines, &x.asset, start, x.end, cfg);
                kwh += k;
                if let Some(c) = c {
                    *co2e.get_or_insert(0.0) += c;
                }
            }
            let per_unit = |x: f64| (v.quantity > 0.0).then(|| x / v.quantity);
            if v.consumed_by.is_none() {
                let p = per.entry(v.product.clone()).or_insert(ProductEnergy {
                    product: v.product.clone(),
                    lots: 0,
                    quantity: 0.0,
                    kwh: 0.0,
                    kwh_per_unit: None,
                    co2e_kg: None,
                });
                p.lots += 1;
                p.quantity += v.quantity;
                p.kwh += kwh;
                if let Some(c) = co2e {
                    *p.co2e_kg.get_or_insert(0.0) += c;
                }
            }
            out.push(LotEnergy {
                kwh_per_unit: per_unit(kwh),
                co2e_kg_per_unit: co2e.and_then(per_unit),
                lot: v.lot,
                product: v.product,
                quantity: v.quantity,
                unit: v.unit,
                created: v.created,
                kwh,
                co2e_kg: co2e,
                consumed_by: v.consumed_by,
                windows: w,
            });
        }
        let products = per
            .into_values()
            .map(|mut p| {
                p.kwh_per_unit = (p.quantity > 0.0).then(|| p.kwh / p.quantity);
                p
            })
            .collect();
        Ok((out, products))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_differences_survive_a_reset() {
        let lasts = [
            (0, 10.0),
            (60_000, 10.5),
            (120_000, 11.25),
            (180_000, 0.5),
            (240_000, 1.0),
        ];
        assert_eq!(
            kwh_from_counter(&lasts),
            vec![
                (60_000, 0.5),
                (120_000, 0.75),
                (180_000, 0.5),
                (240_000, 0.5)
            ]
        );
        // 6 kW for one minute = 0.1 kWh.
        assert_eq!(kwh_from_power(&[(0, 6000.0)], 60_000), vec![(0, 0.1)]);
    }

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn two_shifts() -> Vec<ShiftDef> {
        vec![
            ShiftDef {
                name: "night".into(),
                start: "22:00".into(),
                end: "06:00".into(),
            },
            ShiftDef {
                name: "day".into(),
                start: "06:00".into(),
                end: "22:00".into(),
            },
        ]
    }

    #[test]
    fn periods_follow_the_calendar_and_shifts() {
        // 2025-11-24T05:30:00Z
        let ts = 1_763_962_200_000;
        let utc = Zone::utc();
        assert_eq!(period_of(Period::Day, ts, &[], &utc).2, "2025-11-24");
        let (start, _, label) = period_of(Period::Month, ts, &[], &utc);
        assert_eq!(label, "2025-11");
        assert_eq!(start, 1_761_955_200_000); // 2025-11-01T00:00:00Z
        let (start, end, label) = period_of(Period::Shift, ts, &two_shifts(), &utc);
        assert_eq!(label, "2025-11-23 night");
        assert_eq!(start, ts - 7 * HOUR - 30 * MINUTE);
        assert_eq!(end - start, 8 * HOUR);
    }

    /// Periods in the site's local time: (zone, period, instant, label, local start, hours).
    #[test]
    fn periods_are_local_with_daylight_saving() {
        // 2026-03-29T00:30Z (01:30 CET, the spring-forward night), 2026-10-25T03:00Z (04:00
        // CET, after the fall-back), 2026-06-01T00:30Z (08:30 in Shanghai).
        let (mar29, oct25, jun1) = (1_774_744_200_000, 1_792_897_200_000, 1_780_273_800_000);
        type Case = (&'static str, Period, i64, &'static str, &'static str, i64);
        let cases: [Case; 7] = [
            (
                "Europe/Berlin",
                Period::Shift,
                mar29,
                "2026-03-28 night",
                "2026-03-28T22:00:00+01:00",
                7,
            ),
            (
                "Europe/Berlin",
                Period::Shift,
                oct25,
                "2026-10-24 night",
                "2026-10-24T22:00:00+02:00",
                9,
            ),
            (
                "Europe/Berlin",
                Period::Day,
                mar29,
                "2026-03-29",
                "2026-03-29T00:00:00+01:00",
                23,
            ),
            (
                "Europe/Berlin",
                Period::Day,
                oct25,
                "2026-10-25",
                "2026-10-25T00:00:00+02:00",
                25,
            ),
            (
                "Europe/Berlin",
                Period::Month,
                oct25,
                "2026-10",
                "2026-10-01T00:00:00+02:00",
                31 * 24 + 1,
            ),
            (
                "Asia/Shanghai",
                Period::Shift,
                jun1,
                "2026-06-01 day",
                "2026-06-01T06:00:00+08:00",
                16,
            ),
            (
                "Asia/Shanghai",
                Period::Day,
                jun1,
                "2026-06-01",
                "2026-06-01T00:00:00+08:00",
                24,
            ),
        ];
        for (name, by, ts, label, local, hours) in cases {
            let zone = Zone::parse(name).expect(name);
            let (start, end, got) = period_of(by, ts, &two_shifts(), &zone);
            assert_eq!(
                (got.as_str(), zone.format(start).as_str(), end - start),
                (label, local, hours * HOUR),
                "{name} {by:?} {ts}"
            );
        }
        // Without a shift at that time: off-shift of the local day.
        let berlin = Zone::parse("Europe/Berlin").expect("zone");
        let night = &two_shifts()[..1];
        let (start, _, label) = period_of(Period::Shift, mar29 + 10 * HOUR, night, &berlin);
        assert_eq!(label, "2026-03-29 off-shift");
        assert_eq!(berlin.format(start), "2026-03-29T00:00:00+01:00");
    }

    fn cfg() -> EnergyConfig {
        EnergyConfig {
            co2e_kg_per_kwh: Some(0.5),
            sites: vec![SiteFactor {
                site: "s2".into(),
                co2e_kg_per_kwh: 0.4,
                bands: vec![Band {
                    start: "22:00".into(),
                    end: "06:00".into(),
                    co2e_kg_per_kwh: 0.1,
                }],
            }],
        }
    }

    #[test]
    fn emission_factors_by_site_and_time_of_day() {
        let c = cfg();
        let utc = Zone::utc();
        assert_eq!(c.factor("s1", &utc, 0), Some(0.5));
        assert_eq!(c.factor("s2", &utc, 12 * HOUR), Some(0.4));
        assert_eq!(c.factor("s2", &utc, 23 * HOUR), Some(0.1));
        assert_eq!(c.factor("s2", &utc, DAY + HOUR), Some(0.1));
        assert_eq!(EnergyConfig::default().factor("s1", &utc, 0), None);
        // The band is local: 23:00Z is 07:00 in Shanghai, outside 22:00–06:00.
        let shanghai = Zone::parse("Asia/Shanghai").expect("zone");
        assert_eq!(c.factor("s2", &shanghai, 23 * HOUR), Some(0.4));
        assert_eq!(c.factor("s2", &shanghai, 15 * HOUR), Some(0.1));
        let mut bad = cfg();
        bad.sites[0].bands[0].end = "25:00".into();
        assert!(
            bad.validate()
                .expect_err("bad band")
                .contains("energy.sites[0].bands[0]")
        );
        bad = cfg();
        bad.co2e_kg_per_kwh = Some(-1.0);
        assert!(
            bad.validate()
                .expect_err("negative")
                .contains("energy.co2e_kg_per_kwh")
        );
    }

    /// Two machines on line s1/a/l1 (m1 then m2), three minutes each; day 0 at site s1 (0.5 kg/kWh).
    #[test]
    fn report_per_machine_line_and_site() {
        let mins = |k: [f64; 3], p: [bool; 3]| {
            (0..3)
                .map(|i| Minute {
                    ts: i as i64 * MINUTE,
                    kwh: k[i],
                    producing: p[i],
                })
                .collect::<Vec<_>>()
        };
        let machines = vec![
            MachineMinutes {
                machine: "s1/a/l1/m1".into(),
                zone: Zone::utc(),
                minutes: mins([1.0, 2.0, 0.5], [true, true, false]),
            },
            MachineMinutes {
                machine: "s1/a/l1/m2".into(),
                zone: Zone::utc(),
                minutes: mins([0.5, 0.5, 0.5], [true, false, true]),
            },
        ];
        let made = vec![
            Made {
                machine: "s1/a/l1/m1".into(),
                ts: 10_000,
                good: 10,
                scrap: 1,
            },
            Made {
                machine: "s1/a/l1/m2".into(),
                ts: 70_000,
                good: 4,
                scrap: 0,
            },
            Made {
                machine: "s1/a/l1/m2".into(),
                ts: 130_000,
                good: 4,
                scrap: 2,
            },
        ];
        let rows = report(&machines, &made, Period::Day, &[], &cfg());
        let row = |a: &str| rows.iter().find(|r| r.asset == a).expect(a);
        let m1 = row("s1/a/l1/m1");
        assert_eq!((m1.kwh, m1.idle_kwh, m1.good, m1.scrap), (3.5, 0.5, 10, 1));
        assert_eq!(m1.kwh_per_good, Some(0.35));
        assert_eq!(m1.co2e_kg, Some(1.75));
        let line = row("s1/a/l1");
        // Line: energy of both machines (5.0 kWh, idle 0.5 + 0.5), good parts of the last one (8).
        assert_eq!(
            (line.kwh, line.idle_kwh, line.good, line.scrap),
            (5.0, 1.0, 8, 2)
        );
        assert_eq!(line.kwh_per_good, Some(0.625));
        assert_eq!(line.level, "line");
        assert_eq!(row("s1").co2e_kg, Some(2.5));
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].period, "1970-01-01");
        assert_eq!(rows[0].period_start_local, "1970-01-01T00:00:00+00:00");
        assert_eq!(rows[0].timezone, "UTC");
        // The same minutes at a site in UTC+8 fall on its local 1 January, which began at
        // 1969-12-31T16:00Z.
        let mut east = machines.clone();
        east.iter_mut()
            .for_each(|m| m.zone = Zone::parse("Asia/Shanghai").expect("zone"));
        let rows = report(&east, &made, Period::Day, &[], &cfg());
        assert_eq!(rows.len(), 4);
        assert_eq!(
            (rows[0].period_start, rows[0].period_start_local.as_str()),
            (-8 * HOUR, "1970-01-01T00:00:00+08:00")
        );
        // Lot windows: a lot at the line for minutes 1 and 2 used 2.5 + 1.0 kWh.
        assert_eq!(
            window_energy(&machines, "s1/a/l1", MINUTE, 3 * MINUTE, &cfg()),
            (3.5, Some(1.75))
        );
    }

    #[test]
    fn windows_merge_per_asset() {
        let w = merge_windows(vec![
            ("b".into(), 5, 9),
            ("a".into(), 0, 10),
            ("a".into(), 5, 20),
            ("a".into(), 30, 40),
        ]);
        assert_eq!(
            w,
            vec![
                ("a".into(), 0, 20),
                ("a".into(), 30, 40),
                ("b".into(), 5, 9)
            ]
        );
    }
}
