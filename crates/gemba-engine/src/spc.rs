//! SPC charts over stored signals: limits estimated on a baseline range and frozen, the judged
//! range plotted against them with the enabled run rules, and capability against the signal's
//! spec limits. The statistics are `gemba-analytics`; this module fetches the samples.

use gemba_analytics::spc::{self, Capability, RuleSet};
use gemba_core::{SpecLimits, Timestamp};
use serde::Serialize;

use crate::{Engine, EngineError};

/// Which chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Individuals with a moving-range chart.
    Imr,
    /// Means of consecutive subgroups with their ranges.
    XbarR,
    /// Means of consecutive subgroups with their standard deviations.
    XbarS,
    Ewma,
    Cusum,
}

impl std::str::FromStr for ChartKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "imr" | "i-mr" => ChartKind::Imr,
            "xbar_r" => ChartKind::XbarR,
            "xbar_s" => ChartKind::XbarS,
            "ewma" => ChartKind::Ewma,
            "cusum" => ChartKind::Cusum,
            _ => {
                return Err(format!(
                    "{s:?} is not a chart: imr, xbar_r, xbar_s, ewma or cusum"
                ));
            }
        })
    }
}

/// What to chart.
#[derive(Debug, Clone, PartialEq)]
pub struct SpcRequest {
    pub signal: String,
    pub chart: ChartKind,
    /// Baseline range; `None`: the first quarter of the judged range's samples.
    pub baseline: Option<(Timestamp, Timestamp)>,
    pub range: (Timestamp, Timestamp),
    /// Subgroup size of X̄ charts.
    pub subgroup: usize,
    pub rules: RuleSet,
    /// EWMA λ and L.
    pub lambda: f64,
    pub l: f64,
    /// CUSUM k and h (in σ).
    pub k: f64,
    pub h: f64,
}

/// One plotted chart (the main one, or the range / dispersion chart under it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartLine {
    pub name: String,
    /// `[ts, value]`; a subgroup is stamped with its last sample.
    pub points: Vec<(Timestamp, f64)>,
    pub center: f64,
    /// Constant limits, or one per point (EWMA); CUSUM's are ±h·σ around 0.
    pub lcl: Vec<f64>,
    pub ucl: Vec<f64>,
}

/// A rule that fired, with the points that broke it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpcViolation {
    pub rule: String,
    pub number: u8,
    pub description: String,
    pub ts: Timestamp,
    pub value: f64,
    pub points: Vec<Timestamp>,
}

/// The answer of [`Engine::spc_chart`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpcChart {
    pub signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub chart: ChartKind,
    /// The baseline actually used (first and last sample + 1 ms when it was chosen by default).
    pub baseline: (Timestamp, Timestamp),
    pub baseline_samples: usize,
    /// σ of the process estimated on the baseline (within subgroups / from moving ranges).
    pub sigma_within: f64,
    pub main: ChartLine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary: Option<ChartLine>,
    pub violations: Vec<SpcViolation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecLimits>,
    /// Capability of the judged range against the spec limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<Capability>,
}

const MAX_SAMPLES: usize = 1_000_000;

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidQuery(e.to_string())
}

fn subgroups(samples: &[(Timestamp, f64)], n: usize) -> Vec<(Timestamp, Vec<f64>)> {
    samples
        .chunks_exact(n)
        .map(|c| (c[n - 1].0, c.iter().map(|s| s.1).collect()))
        .collect()
}

fn constant(line: &str, points: Vec<(Timestamp, f64)>, l: &spc::Limits) -> ChartLine {
    ChartLine {
        name: line.to_owned(),
        center: l.center,
        lcl: vec![l.lcl],
        ucl: vec![l.ucl],
        points,
    }
}

impl Engine {
    /// Computes an SPC chart of a stored signal.
    pub async fn spc_chart(&self, req: SpcRequest) -> Result<SpcChart, EngineError> {
        let reg = self.lookup(&req.signal)?;
        let signal = req.signal.as_str();
        let fetch = |(from, to): (Timestamp, Timestamp)| async move {
            let s = self.range(signal, from, to, MAX_SAMPLES + 1).await?;
            if s.len() > MAX_SAMPLES {
                return Err(invalid(format!(
                    "more than {MAX_SAMPLES} samples between {from} and {to}; choose a shorter range"
                )));
            }
            Ok::<_, EngineError>(s.into_iter().map(|s| (s.ts, s.value)).collect::<Vec<_>>())
        };
        let data = fetch(req.range).await?;
        let (base, baseline) = match req.baseline {
            Some(b) => (fetch(b).await?, b),
            None => {
                let n = (data.len() / 4).max(data.len().min(20));
                let base: Vec<(Timestamp, f64)> = data[..n].to_vec();
                let span = match (base.first(), base.last()) {
                    (Some(a), Some(b)) => (a.0, b.0 + 1),
                    _ => req.range,
                };
                (base, span)
            }
        };
        let base_values: Vec<f64> = base.iter().map(|s| s.1).collect();
        let values: Vec<f64> = data.iter().map(|s| s.1).collect();
        let (main, secondary, sigma_within, rules_on) = match req.chart {
            ChartKind::Imr => {
                let imr = spc::Imr::estimate(&base_values).map_err(invalid)?;
                let mr = spc::Imr::moving_ranges(&values);
                let mr_points = data.iter().zip(mr).skip(1).map(|(s, m)| (s.0, m)).collect();
                (
                    constant("individuals", data.clone(), &imr.individuals),
                    Some(constant("moving_range", mr_points, &imr.moving_range)),
                    imr.sigma_within,
                    Some((imr.individuals.center, imr.individuals.sigma)),
                )
            }
            ChartKind::XbarR | ChartKind::XbarS => {
                let n = req.subgroup;
                let bg: Vec<Vec<f64>> = subgroups(&base, n).into_iter().map(|g| g.1).collect();
                let groups = subgroups(&data, n);
                let means = groups
                    .iter()
                    .map(|(ts, g)| (*ts, g.iter().sum::<f64>() / n as f64))
                    .collect();
                if req.chart == ChartKind::XbarR {
                    let c = spc::XbarR::estimate(&bg).map_err(invalid)?;
                    let r = groups
                        .iter()
                        .map(|(ts, g)| {
                            let hi = g.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let lo = g.iter().copied().fold(f64::INFINITY, f64::min);
                            (*ts, hi - lo)
                        })
                        .collect();
                    (
                        constant("subgroup_mean", means, &c.xbar),
                        Some(constant("range", r, &c.range)),
                        c.sigma_within,
                        Some((c.xbar.center, c.xbar.sigma)),
                    )
                } else {
                    let c = spc::XbarS::estimate(&bg).map_err(invalid)?;
                    let s = groups
                        .iter()
                        .map(|(ts, g)| (*ts, spc::std_dev(g)))
                        .collect();
                    (
                        constant("subgroup_mean", means, &c.xbar),
                        Some(constant("std_dev", s, &c.s)),
                        c.sigma_within,
                        Some((c.xbar.center, c.xbar.sigma)),
                    )
                }
            }
            ChartKind::Ewma => {
                let imr = spc::Imr::estimate(&base_values).map_err(invalid)?;
                let mu0 = imr.individuals.center;
                let e = spc::ewma(&values, mu0, imr.sigma_within, req.lambda, req.l)
                    .map_err(invalid)?;
                let points = data.iter().zip(&e.values).map(|(s, z)| (s.0, *z)).collect();
                (
                    ChartLine {
                        name: "ewma".into(),
                        points,
                        center: mu0,
                        lcl: e.lcl,
                        ucl: e.ucl,
                    },
                    None,
                    imr.sigma_within,
                    None,
                )
            }
            ChartKind::Cusum => {
                let imr = spc::Imr::estimate(&base_values).map_err(invalid)?;
                let c = spc::cusum(
                    &values,
                    imr.individuals.center,
                    imr.sigma_within,
                    req.k,
                    req.h,
                )
                .map_err(invalid)?;
                let up = data.iter().zip(&c.upper).map(|(s, v)| (s.0, *v)).collect();
                let down = data.iter().zip(&c.lower).map(|(s, v)| (s.0, *v)).collect();
                (
                    ChartLine {
                        name: "cusum_upper".into(),
                        points: up,
                        center: 0.0,
                        lcl: vec![0.0],
                        ucl: vec![c.decision],
                    },
                    Some(ChartLine {
                        name: "cusum_lower".into(),
                        points: down,
                        center: 0.0,
                        lcl: vec![0.0],
                        ucl: vec![c.decision],
                    }),
                    imr.sigma_within,
                    None,
                )
            }
        };
        let mut violations = Vec::new();
        if let Some((center, sigma)) = rules_on {
            let plotted: Vec<f64> = main.points.iter().map(|p| p.1).collect();
            for v in spc::check_rules(&plotted, center, sigma, &req.rules) {
                violations.push(SpcViolation {
                    rule: format!("{:?}", v.rule),
                    number: v.rule.number(),
                    description: v.description,
                    ts: main.points[v.index].0,
                    value: main.points[v.index].1,
                    points: v.points.iter().map(|&i| main.points[i].0).collect(),
                });
            }
        } else {
            // EWMA and CUSUM: a point outside its limit.
            for (i, p) in main.points.iter().enumerate() {
                let lcl = main
                    .lcl
                    .get(i)
                    .or(main.lcl.last())
                    .copied()
                    .unwrap_or(f64::NEG_INFINITY);
                let ucl = main
                    .ucl
                    .get(i)
                    .or(main.ucl.last())
                    .copied()
                    .unwrap_or(f64::INFINITY);
                let other = secondary
                    .as_ref()
                    .and_then(|s| s.points.get(i))
                    .map(|q| q.1);
                let beyond = p.1 < lcl || p.1 > ucl || other.is_some_and(|o| o > ucl);
                if beyond {
                    violations.push(SpcViolation {
                        rule: "Limit".into(),
                        number: 0,
                        description: format!("{} beyond its control limit", main.name),
                        ts: p.0,
                        value: p.1,
                        points: vec![p.0],
                    });
                }
            }
        }
        let spec = reg.def.spec;
        let capability = spec
            .filter(|s| s.lsl.is_some() || s.usl.is_some())
            .and_then(|s| spc::capability(&values, s.lsl, s.usl).ok());
        Ok(SpcChart {
            signal: req.signal.clone(),
            unit: reg.def.unit.clone(),
            chart: req.chart,
            baseline,
            baseline_samples: base.len(),
            sigma_within,
            main,
            secondary,
            violations,
            spec,
            capability,
        })
    }
}
