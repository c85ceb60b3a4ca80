//! Statistical process control: control charts with limits estimated from a baseline and then
//! frozen, the eight Western Electric / Nelson run rules, and capability indices.
//!
//! Every chart is built in two steps: `estimate` the centre and σ from a baseline period chosen by
//! the user, then `judge` any data against those frozen limits. Limits are never recomputed from
//! the data they judge (a drift would otherwise widen its own limits).
//!
//! Constants (d2, d3, c4) are those of Montgomery, *Introduction to Statistical Quality Control*,
//! appendix VI.

use serde::{Deserialize, Serialize};

/// Errors: a baseline that cannot give limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpcError {
    #[error("baseline has {got} usable values; at least {need} are needed")]
    TooFew { got: usize, need: usize },
    #[error("subgroup size {0} is outside 2..=25")]
    SubgroupSize(usize),
    #[error("subgroup {index} has {got} values; every subgroup must have {expected}")]
    RaggedSubgroup {
        index: usize,
        got: usize,
        expected: usize,
    },
    #[error("{what} {value} is not finite")]
    NotFinite { what: &'static str, value: f64 },
    #[error("{0}")]
    Invalid(String),
}

/// d2 for subgroup sizes 2..=25 (mean of the relative range).
const D2: [f64; 24] = [
    1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078, 3.173, 3.258, 3.336, 3.407,
    3.472, 3.532, 3.588, 3.640, 3.689, 3.735, 3.778, 3.819, 3.858, 3.895, 3.931,
];
/// d3 for subgroup sizes 2..=25 (standard deviation of the relative range).
const D3: [f64; 24] = [
    0.853, 0.888, 0.880, 0.864, 0.848, 0.833, 0.820, 0.808, 0.797, 0.787, 0.778, 0.770, 0.763,
    0.756, 0.750, 0.744, 0.739, 0.734, 0.729, 0.724, 0.720, 0.716, 0.712, 0.708,
];

fn check_n(n: usize) -> Result<(), SpcError> {
    if (2..=25).contains(&n) {
        Ok(())
    } else {
        Err(SpcError::SubgroupSize(n))
    }
}

/// d2(n), n in 2..=25.
pub fn d2(n: usize) -> Result<f64, SpcError> {
    check_n(n)?;
    Ok(D2[n - 2])
}

/// d3(n), n in 2..=25.
pub fn d3(n: usize) -> Result<f64, SpcError> {
    check_n(n)?;
    Ok(D3[n - 2])
}

/// c4(n) = √(2/(n−1)) · Γ(n/2) / Γ((n−1)/2), computed exactly by the recursion of the Γ ratio.
pub fn c4(n: usize) -> Result<f64, SpcError> {
    check_n(n)?;
    // r(k) = Γ(k/2) / Γ((k−1)/2); r(2) = 1/√π; r(k+1) = ((k−1)/2) / r(k).
    let mut r = 1.0 / std::f64::consts::PI.sqrt();
    for k in 2..n {
        r = ((k as f64 - 1.0) / 2.0) / r;
    }
    Ok((2.0 / (n as f64 - 1.0)).sqrt() * r)
}

/// Centre line and control limits of one chart (limits may vary per point for EWMA and
/// attribute charts with varying sample sizes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub center: f64,
    /// σ of the plotted statistic (used by the zone rules).
    pub sigma: f64,
    pub lcl: f64,
    pub ucl: f64,
}

impl Limits {
    fn three_sigma(center: f64, sigma: f64) -> Limits {
        Limits {
            center,
            sigma,
            lcl: center - 3.0 * sigma,
            ucl: center + 3.0 * sigma,
        }
    }
}

fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| v.is_finite()).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample standard deviation (n − 1).
pub fn std_dev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt()
}

/// Individuals and moving-range chart (I-MR) limits from a baseline of individual values:
/// σ = MR̄ / d2(2); individuals X̄ ± 3σ; moving range centre MR̄, UCL D4(2)·MR̄, LCL 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imr {
    pub individuals: Limits,
    pub moving_range: Limits,
    /// σ within (from the moving range).
    pub sigma_within: f64,
}

impl Imr {
    pub fn estimate(baseline: &[f64]) -> Result<Imr, SpcError> {
        let x = finite(baseline);
        if x.len() < 2 {
            return Err(SpcError::TooFew {
                got: x.len(),
                need: 2,
            });
        }
        let mr: Vec<f64> = x.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        let mr_bar = mean(&mr);
        let d2 = D2[0];
        let sigma = mr_bar / d2;
        let d4 = 1.0 + 3.0 * D3[0] / d2;
        Ok(Imr {
            individuals: Limits::three_sigma(mean(&x), sigma),
            moving_range: Limits {
                center: mr_bar,
                sigma: D3[0] * sigma,
                lcl: 0.0,
                ucl: d4 * mr_bar,
            },
            sigma_within: sigma,
        })
    }

    /// The moving ranges of `values` (the first point has none: NaN).
    pub fn moving_ranges(values: &[f64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(values.len());
        out.push(f64::NAN);
        out.extend(values.windows(2).map(|w| (w[1] - w[0]).abs()));
        out
    }
}

fn check_subgroups(groups: &[Vec<f64>]) -> Result<usize, SpcError> {
    let n = groups.first().map_or(0, Vec::len);
    check_n(n)?;
    for (i, g) in groups.iter().enumerate() {
        if g.len() != n {
            return Err(SpcError::RaggedSubgroup {
                index: i,
                got: g.len(),
                expected: n,
            });
        }
        if let Some(v) = g.iter().find(|v| !v.is_finite()) {
            return Err(SpcError::NotFinite {
                what: "subgroup value",
                value: *v,
            });
        }
    }
    if groups.len() < 2 {
        return Err(SpcError::TooFew {
            got: groups.len(),
            need: 2,
        });
    }
    Ok(n)
}

/// X̄-R chart limits from baseline subgroups of equal size n (2..=25).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XbarR {
    pub n: usize,
    pub xbar: Limits,
    pub range: Limits,
    pub sigma_within: f64,
}

impl XbarR {
    pub fn estimate(groups: &[Vec<f64>]) -> Result<XbarR, SpcError> {
        let n = check_subgroups(groups)?;
        let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect();
        let ranges: Vec<f64> = groups.iter().map(|g| range(g)).collect();
        let (d2, d3) = (D2[n - 2], D3[n - 2]);
        let r_bar = mean(&ranges);
        let sigma = r_bar / d2;
        Ok(XbarR {
            n,
            xbar: Limits::three_sigma(mean(&means), sigma / (n as f64).sqrt()),
            range: Limits {
                center: r_bar,
                sigma: d3 * sigma,
                lcl: (r_bar - 3.0 * d3 * sigma).max(0.0),
                ucl: r_bar + 3.0 * d3 * sigma,
            },
            sigma_within: sigma,
        })
    }
}

fn range(g: &[f64]) -> f64 {
    let (lo, hi) = g
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    hi - lo
}

/// X̄-S chart limits from baseline subgroups of equal size n (2..=25).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XbarS {
    pub n: usize,
    pub xbar: Limits,
    pub s: Limits,
    pub sigma_within: f64,
}

impl XbarS {
    pub fn estimate(groups: &[Vec<f64>]) -> Result<XbarS, SpcError> {
        let n = check_subgroups(groups)?;
        let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect();
        let sds: Vec<f64> = groups.iter().map(|g| std_dev(g)).collect();
        let c4 = c4(n)?;
        let s_bar = mean(&sds);
        let sigma = s_bar / c4;
        let s_sigma = sigma * (1.0 - c4 * c4).sqrt();
        Ok(XbarS {
            n,
            xbar: Limits::three_sigma(mean(&means), sigma / (n as f64).sqrt()),
            s: Limits {
                center: s_bar,
                sigma: s_sigma,
                lcl: (s_bar - 3.0 * s_sigma).max(0.0),
                ucl: s_bar + 3.0 * s_sigma,
            },
            sigma_within: sigma,
        })
    }
}

/// Per-point statistic with its own limits (EWMA, CUSUM, attribute charts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub values: Vec<f64>,
    pub center: f64,
    pub lcl: Vec<f64>,
    pub ucl: Vec<f64>,
    /// Indices of points outside their limits.
    pub out_of_control: Vec<usize>,
}

fn outside(values: &[f64], lcl: &[f64], ucl: &[f64]) -> Vec<usize> {
    (0..values.len())
        .filter(|&i| values[i] < lcl[i] || values[i] > ucl[i])
        .collect()
}

/// EWMA chart: z_i = λ·x_i + (1 − λ)·z_{i−1}, z_0 = μ0, limits μ0 ± L·σ·√(λ/(2−λ)·(1 − (1−λ)^{2i})).
pub fn ewma(values: &[f64], mu0: f64, sigma: f64, lambda: f64, l: f64) -> Result<Series, SpcError> {
    if !(lambda > 0.0 && lambda <= 1.0) {
        return Err(SpcError::Invalid(format!(
            "EWMA λ {lambda} must be in (0, 1]"
        )));
    }
    if !(sigma.is_finite() && sigma > 0.0 && l.is_finite() && l > 0.0 && mu0.is_finite()) {
        return Err(SpcError::Invalid(
            "EWMA needs a finite μ0, σ > 0 and L > 0".into(),
        ));
    }
    let mut z = mu0;
    let (mut zs, mut lcl, mut ucl) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &x) in values.iter().enumerate() {
        if x.is_finite() {
            z = lambda * x + (1.0 - lambda) * z;
        }
        let k = (i + 1) as f64;
        let w = l * sigma * (lambda / (2.0 - lambda) * (1.0 - (1.0 - lambda).powf(2.0 * k))).sqrt();
        zs.push(z);
        lcl.push(mu0 - w);
        ucl.push(mu0 + w);
    }
    let out = outside(&zs, &lcl, &ucl);
    Ok(Series {
        values: zs,
        center: mu0,
        lcl,
        ucl,
        out_of_control: out,
    })
}

/// Tabular CUSUM with reference value k·σ and decision interval h·σ (usually k = 0.5, h = 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    pub upper: Vec<f64>,
    pub lower: Vec<f64>,
    /// h·σ
    pub decision: f64,
    /// Indices where C⁺ or C⁻ exceeds the decision interval.
    pub out_of_control: Vec<usize>,
}

pub fn cusum(values: &[f64], mu0: f64, sigma: f64, k: f64, h: f64) -> Result<Cusum, SpcError> {
    if !(sigma.is_finite() && sigma > 0.0 && k >= 0.0 && h > 0.0 && mu0.is_finite()) {
        return Err(SpcError::Invalid(
            "CUSUM needs a finite μ0, σ > 0, k ≥ 0 and h > 0".into(),
        ));
    }
    let (kk, hh) = (k * sigma, h * sigma);
    let (mut cp, mut cm) = (0.0f64, 0.0f64);
    let mut out = Cusum {
        upper: Vec::new(),
        lower: Vec::new(),
        decision: hh,
        out_of_control: Vec::new(),
    };
    for (i, &x) in values.iter().enumerate() {
        if x.is_finite() {
            cp = (x - mu0 - kk + cp).max(0.0);
            cm = (mu0 - kk - x + cm).max(0.0);
        }
        out.upper.push(cp);
        out.lower.push(cm);
        if cp > hh || cm > hh {
            out.out_of_control.push(i);
        }
    }
    Ok(out)
}

/// Attribute charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeChart {
    /// Fraction defective, sample sizes may vary.
    P,
    /// Number defective, constant sample size.
    Np,
    /// Defects per unit of constant size.
    C,
    /// Defects per unit, sizes may vary.
    U,
}

/// Estimates the centre (p̄, np̄, c̄ or ū) from a baseline of (count, sample size) pairs.
pub fn attribute_center(kind: AttributeChart, baseline: &[(f64, f64)]) -> Result<f64, SpcError> {
    if baseline.is_empty() {
        return Err(SpcError::TooFew { got: 0, need: 1 });
    }
    for &(c, n) in baseline {
        if !(c.is_finite() && n.is_finite() && c >= 0.0 && n > 0.0) {
            return Err(SpcError::Invalid(format!(
                "count {c} of sample size {n}: counts must be ≥ 0 and sizes > 0"
            )));
        }
        if matches!(kind, AttributeChart::P | AttributeChart::Np) && c > n {
            return Err(SpcError::Invalid(format!(
                "{c} defectives in a sample of {n}"
            )));
        }
    }
    let total_c: f64 = baseline.iter().map(|p| p.0).sum();
    let total_n: f64 = baseline.iter().map(|p| p.1).sum();
    Ok(match kind {
        AttributeChart::P | AttributeChart::U => total_c / total_n,
        AttributeChart::Np | AttributeChart::C => total_c / baseline.len() as f64,
    })
}

/// Judges (count, sample size) points against the frozen centre; limits per point, LCL ≥ 0.
pub fn attribute_chart(kind: AttributeChart, center: f64, points: &[(f64, f64)]) -> Series {
    let mut values = Vec::new();
    let (mut lcl, mut ucl) = (Vec::new(), Vec::new());
    for &(c, n) in points {
        let (v, sd) = match kind {
            AttributeChart::P => (c / n, (center * (1.0 - center) / n).sqrt()),
            AttributeChart::Np => {
                let p = center / n;
                (c, (center * (1.0 - p)).sqrt())
            }
            AttributeChart::C => (c, center.sqrt()),
            AttributeChart::U => (c / n, (center / n).sqrt()),
        };
        values.push(v);
        lcl.push((center - 3.0 * sd).max(0.0));
        let hi = center + 3.0 * sd;
        ucl.push(if kind == AttributeChart::P {
            hi.min(1.0)
        } else {
            hi
        });
    }
    let out = outside(&values, &lcl, &ucl);
    Series {
        values,
        center,
        lcl,
        ucl,
        out_of_control: out,
    }
}

/// The eight run rules (Nelson 1984; rules 1, 2, 5 and 6 are the Western Electric rules, with
/// nine points in a row for rule 2 as Nelson and Minitab have it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// One point beyond 3σ.
    Beyond3Sigma = 1,
    /// Nine points in a row on the same side of the centre line.
    NineSameSide = 2,
    /// Six points in a row steadily increasing or decreasing.
    SixTrending = 3,
    /// Fourteen points in a row alternating up and down.
    FourteenAlternating = 4,
    /// Two of three points in a row beyond 2σ on the same side.
    TwoOfThreeBeyond2Sigma = 5,
    /// Four of five points in a row beyond 1σ on the same side.
    FourOfFiveBeyond1Sigma = 6,
    /// Fifteen points in a row within 1σ (stratification).
    FifteenWithin1Sigma = 7,
    /// Eight points in a row beyond 1σ on either side (mixture).
    EightBeyond1Sigma = 8,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Beyond3Sigma,
        Rule::NineSameSide,
        Rule::SixTrending,
        Rule::FourteenAlternating,
        Rule::TwoOfThreeBeyond2Sigma,
        Rule::FourOfFiveBeyond1Sigma,
        Rule::FifteenWithin1Sigma,
        Rule::EightBeyond1Sigma,
    ];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rule::Beyond3Sigma => "one point beyond 3σ",
            Rule::NineSameSide => "nine points in a row on one side of the centre line",
            Rule::SixTrending => "six points in a row steadily increasing or decreasing",
            Rule::FourteenAlternating => "fourteen points in a row alternating up and down",
            Rule::TwoOfThreeBeyond2Sigma => "two of three points beyond 2σ on one side",
            Rule::FourOfFiveBeyond1Sigma => "four of five points beyond 1σ on one side",
            Rule::FifteenWithin1Sigma => "fifteen points in a row within 1σ",
            Rule::EightBeyond1Sigma => "eight points in a row beyond 1σ on either side",
        }
    }
}

/// Which rules are switched on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    pub enabled: Vec<Rule>,
}

impl Default for RuleSet {
    /// All eight.
    fn default() -> Self {
        RuleSet {
            enabled: Rule::ALL.to_vec(),
        }
    }
}

impl RuleSet {
    /// The Western Electric rules (1, 2, 5, 6).
    pub fn western_electric() -> RuleSet {
        RuleSet {
            enabled: vec![
                Rule::Beyond3Sigma,
                Rule::NineSameSide,
                Rule::TwoOfThreeBeyond2Sigma,
                Rule::FourOfFiveBeyond1Sigma,
            ],
        }
    }
}

/// A rule that fired: at which point, and the points that broke it (the explanation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: Rule,
    pub index: usize,
    pub points: Vec<usize>,
    pub description: String,
}

/// Applies the enabled rules to `values` against a frozen centre and σ of the plotted statistic.
/// NaN points are skipped (they neither break nor continue a run). A rule fires at every point
/// where its pattern completes.
pub fn check_rules(values: &[f64], center: f64, sigma: f64, rules: &RuleSet) -> Vec<Violation> {
    let idx: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite())
        .collect();
    let z: Vec<f64> = idx.iter().map(|&i| (values[i] - center) / sigma).collect();
    let mut out = Vec::new();
    let mut fire = |rule: Rule, at: usize, window: &[usize]| {
        out.push(Violation {
            rule,
            index: idx[at],
            points: window.iter().map(|&j| idx[j]).collect(),
            description: rule.describe().to_owned(),
        });
    };
    let on = |r: Rule| rules.enabled.contains(&r);
    let side = |v: f64| {
        if v > 0.0 {
            1
        } else if v < 0.0 {
            -1
        } else {
            0
        }
    };
    for i in 0..z.len() {
        let win = |len: usize| -> Option<Vec<usize>> {
            (i + 1 >= len).then(|| (i + 1 - len..=i).collect())
        };
        if on(Rule::Beyond3Sigma) && z[i].abs() > 3.0 {
            fire(Rule::Beyond3Sigma, i, &[i]);
        }
        if on(Rule::NineSameSide)
            && let Some(w) = win(9)
        {
            let s = side(z[i]);
            if s != 0 && w.iter().all(|&j| side(z[j]) == s) {
                fire(Rule::NineSameSide, i, &w);
            }
        }
        if on(Rule::SixTrending)
            && let Some(w) = win(6)
        {
            let up = w.windows(2).all(|p| z[p[1]] > z[p[0]]);
            let down = w.windows(2).all(|p| z[p[1]] < z[p[0]]);
            if up || down {
                fire(Rule::SixTrending, i, &w);
            }
        }
        if on(Rule::FourteenAlternating)
            && let Some(w) = win(14)
        {
            let diffs: Vec<f64> = w.windows(2).map(|p| z[p[1]] - z[p[0]]).collect();
            if diffs.iter().all(|d| *d != 0.0)
                && diffs.windows(2).all(|d| d[0].signum() != d[1].signum())
            {
                fire(Rule::FourteenAlternating, i, &w);
            }
        }
        for (rule, len, need, limit) in [
            (Rule::TwoOfThreeBeyond2Sigma, 3, 2, 2.0),
            (Rule::FourOfFiveBeyond1Sigma, 5, 4, 1.0),
        ] {
            if on(rule)
                && let Some(w) = win(len)
            {
                for s in [1.0, -1.0] {
                    // The completing point itself must be one of the points beyond the limit.
                    if z[i] * s > limit {
                        let hits: Vec<usize> =
                            w.iter().copied().filter(|&j| z[j] * s > limit).collect();
                        if hits.len() >= need {
                            fire(rule, i, &hits);
                        }
                    }
                }
            }
        }
        if on(Rule::FifteenWithin1Sigma)
            && let Some(w) = win(15)
            && w.iter().all(|&j| z[j].abs() < 1.0)
        {
            fire(Rule::FifteenWithin1Sigma, i, &w);
        }
        if on(Rule::EightBeyond1Sigma)
            && let Some(w) = win(8)
            && w.iter().all(|&j| z[j].abs() > 1.0)
            && w.iter().any(|&j| z[j] > 0.0)
            && w.iter().any(|&j| z[j] < 0.0)
        {
            fire(Rule::EightBeyond1Sigma, i, &w);
        }
    }
    out.sort_by_key(|v| (v.index, v.rule.number()));
    out
}

/// Process capability against spec limits (either may be absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub n: usize,
    pub mean: f64,
    pub sigma_within: f64,
    pub sigma_overall: f64,
    /// (USL − LSL) / 6σ_within; needs both limits.
    pub cp: Option<f64>,
    /// min(USL − μ, μ − LSL) / 3σ_within.
    pub cpk: Option<f64>,
    pub pp: Option<f64>,
    pub ppk: Option<f64>,
}

/// Capability of individual values, σ_within from the moving range (MR̄/d2), σ_overall the
/// sample standard deviation.
pub fn capability(
    values: &[f64],
    lsl: Option<f64>,
    usl: Option<f64>,
) -> Result<Capability, SpcError> {
    let x = finite(values);
    if x.len() < 2 {
        return Err(SpcError::TooFew {
            got: x.len(),
            need: 2,
        });
    }
    if lsl.is_none() && usl.is_none() {
        return Err(SpcError::Invalid(
            "capability needs at least one spec limit".into(),
        ));
    }
    if let (Some(l), Some(u)) = (lsl, usl)
        && l >= u
    {
        return Err(SpcError::Invalid(format!("lsl {l} must be below usl {u}")));
    }
    let within = Imr::estimate(&x)?.sigma_within;
    let overall = std_dev(&x);
    let m = mean(&x);
    let p = |s: f64| match (lsl, usl) {
        (Some(l), Some(u)) => Some((u - l) / (6.0 * s)),
        _ => None,
    };
    let pk = |s: f64| {
        let hi = usl.map(|u| (u - m) / (3.0 * s));
        let lo = lsl.map(|l| (m - l) / (3.0 * s));
        match (hi, lo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    Ok(Capability {
        n: x.len(),
        mean: m,
        sigma_within: within,
        sigma_overall: overall,
        cp: p(within),
        cpk: pk(within),
        pp: p(overall),
        ppk: pk(overall),
    })
}
