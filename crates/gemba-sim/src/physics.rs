//! The failure physics of the AI4I 2020 predictive-maintenance data set (Matzka, "Explainable
//! Artificial Intelligence for Predictive Maintenance Applications", 2020, and the data set's
//! description in the UCI repository), as pure functions, plus the random draws the machines use.
//!
//! One AI4I "record" is an operating point of a machine: product variant, air and process
//! temperature, rotational speed, torque and tool wear. The rules decide from a record alone
//! whether the machine fails, so they can be checked on generated data.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::scenario::Failures;

/// Product quality variant of AI4I: low, medium, high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    L,
    M,
    H,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::L, Variant::M, Variant::H];

    pub fn index(self) -> usize {
        match self {
            Variant::L => 0,
            Variant::M => 1,
            Variant::H => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::L => "L",
            Variant::M => "M",
            Variant::H => "H",
        }
    }

    /// Tool wear added per minute of running: H 5, M 3, L 2 minutes.
    pub fn wear_per_min(self) -> f64 {
        match self {
            Variant::L => 2.0,
            Variant::M => 3.0,
            Variant::H => 5.0,
        }
    }

    /// Draws a variant with the shares of `mix` (L, M, H).
    pub fn draw(mix: [f64; 3], rng: &mut ChaCha8Rng) -> Variant {
        let u: f64 = rng.r#gen();
        if u < mix[0] {
            Variant::L
        } else if u < mix[0] + mix[1] {
            Variant::M
        } else {
            Variant::H
        }
    }
}

/// Why a machine failed. The first five are AI4I's failure modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureMode {
    ToolWear,
    HeatDissipation,
    Power,
    Overstrain,
    Random,
    Bearing,
}

impl FailureMode {
    pub const ALL: [FailureMode; 6] = [
        FailureMode::ToolWear,
        FailureMode::HeatDissipation,
        FailureMode::Power,
        FailureMode::Overstrain,
        FailureMode::Random,
        FailureMode::Bearing,
    ];

    /// The name used in events and as a machine's down reason (`<name>_failure`).
    pub fn name(self) -> &'static str {
        match self {
            FailureMode::ToolWear => "tool_wear",
            FailureMode::HeatDissipation => "heat_dissipation",
            FailureMode::Power => "power",
            FailureMode::Overstrain => "overstrain",
            FailureMode::Random => "random",
            FailureMode::Bearing => "bearing",
        }
    }

    pub fn from_name(name: &str) -> Option<FailureMode> {
        FailureMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One operating point of a machine (an AI4I record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    pub variant: Variant,
    pub air_temp_k: f64,
    pub process_temp_k: f64,
    pub speed_rpm: f64,
    pub torque_nm: f64,
    pub tool_wear_min: f64,
}

impl Record {
    /// Mechanical power: torque × angular speed (W).
    pub fn power_w(&self) -> f64 {
        mechanical_power_w(self.torque_nm, self.speed_rpm)
    }

    /// The AI4I rules that this record breaks (heat dissipation, power, overstrain), in that order.
    pub fn rule_failures(&self, f: &Failures) -> Vec<FailureMode> {
        let mut out = Vec::new();
        if self.process_temp_k - self.air_temp_k < f.heat_dissipation_max_delta_k
            && self.speed_rpm < f.heat_dissipation_max_speed_rpm
        {
            out.push(FailureMode::HeatDissipation);
        }
        let p = self.power_w();
        if p < f.power_band_w[0] || p > f.power_band_w[1] {
            out.push(FailureMode::Power);
        }
        if self.tool_wear_min * self.torque_nm > f.overstrain_limit[self.variant.index()] {
            out.push(FailureMode::Overstrain);
        }
        out
    }
}

/// torque (Nm) × speed (rpm) → watts.
pub fn mechanical_power_w(torque_nm: f64, speed_rpm: f64) -> f64 {
    torque_nm * speed_rpm * std::f64::consts::TAU / 60.0
}

/// A standard normal draw (Box–Muller; one of the pair is discarded to keep streams simple).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponential draw with the given mean.
pub fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let u: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    -mean * u.ln()
}

/// Torque and speed of a new operating point. Torque is normal around 40 Nm with σ 10 Nm (no
/// negative values: clipped to AI4I's observed 3.8–76.6 Nm). AI4I's description derives the speed
/// "from a power of 2860 W, overlaid with normal noise"; taken literally (speed = P / torque) that
/// does not give the data set's published marginals (speed mean 1,539 rpm, σ 179 rpm, correlation
/// with torque −0.88), so the speed is drawn as the linear function of torque with normal noise
/// that has exactly those marginals.
pub fn draw_operating_point(rng: &mut ChaCha8Rng) -> (f64, f64) {
    const SPEED_MEAN: f64 = 1538.8;
    const SPEED_SD: f64 = 179.3;
    const TORQUE_MEAN: f64 = 40.0;
    const TORQUE_SD: f64 = 10.0;
    const RHO: f64 = -0.875;
    let torque = (TORQUE_MEAN + TORQUE_SD * normal(rng)).clamp(3.8, 76.6);
    let slope = RHO * SPEED_SD / TORQUE_SD;
    let resid = SPEED_SD * (1.0 - RHO * RHO).sqrt();
    let speed =
        (SPEED_MEAN + slope * (torque - TORQUE_MEAN) + resid * normal(rng)).clamp(1000.0, 3000.0);
    (torque, speed)
}

/// A mean-reverting random walk (Ornstein–Uhlenbeck) with stationary σ `sd` around `mean`,
/// relaxing with time constant `tau_s`; advanced exactly over `dt_s`.
#[derive(Debug, Clone, Copy)]
pub struct RandomWalk {
    pub value: f64,
    pub mean: f64,
    pub sd: f64,
    pub tau_s: f64,
}

impl RandomWalk {
    pub fn new(mean: f64, sd: f64, tau_s: f64, rng: &mut ChaCha8Rng) -> Self {
        RandomWalk {
            value: mean + sd * normal(rng),
            mean,
            sd,
            tau_s,
        }
    }

    pub fn step(&mut self, dt_s: f64, rng: &mut ChaCha8Rng) -> f64 {
        let a = (-dt_s / self.tau_s).exp();
        self.value =
            self.mean + (self.value - self.mean) * a + self.sd * (1.0 - a * a).sqrt() * normal(rng);
        self.value
    }
}

/// Vibration velocity (mm/s RMS) at which a bearing has failed: the start of ISO 10816-3
/// zone D for medium machines on rigid foundations.
pub const BEARING_FAILURE_MM_S: f64 = 11.0;

/// Extra vibration of a degrading bearing, `progress` 0 at onset and 1 at failure: grows
/// exponentially (the usual shape of run-to-failure bearing data) from 0 to `span`.
pub fn bearing_vibration(progress: f64, span: f64) -> f64 {
    const K: f64 = 4.0;
    let p = progress.clamp(0.0, 1.0);
    span * ((K * p).exp() - 1.0) / (K.exp() - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rec(variant: Variant, delta: f64, speed: f64, torque: f64, wear: f64) -> Record {
        Record {
            variant,
            air_temp_k: 300.0,
            process_temp_k: 300.0 + delta,
            speed_rpm: speed,
            torque_nm: torque,
            tool_wear_min: wear,
        }
    }

    #[test]
    fn rules_by_hand() {
        let f = Failures::default();
        // Healthy: 40 Nm at 1500 rpm = 6283 W, wear 100 × 40 = 4000.
        assert!(
            rec(Variant::M, 10.0, 1500.0, 40.0, 100.0)
                .rule_failures(&f)
                .is_empty()
        );
        // Heat dissipation needs both a small ΔT and a low speed.
        assert_eq!(
            rec(Variant::M, 8.5, 1370.0, 40.0, 0.0).rule_failures(&f),
            vec![FailureMode::HeatDissipation]
        );
        assert!(
            rec(Variant::M, 8.5, 1390.0, 40.0, 0.0)
                .rule_failures(&f)
                .is_empty()
        );
        // Power: 20 Nm × 1600 rpm = 3351 W < 3500 W.
        assert_eq!(
            rec(Variant::M, 10.0, 1600.0, 20.0, 0.0).rule_failures(&f),
            vec![FailureMode::Power]
        );
        // Overstrain: 230 × 50 = 11,500 breaks L (11,000) but not M (12,000).
        assert_eq!(
            rec(Variant::L, 10.0, 1500.0, 50.0, 230.0).rule_failures(&f),
            vec![FailureMode::Overstrain]
        );
        assert!(
            rec(Variant::M, 10.0, 1500.0, 50.0, 230.0)
                .rule_failures(&f)
                .is_empty()
        );
    }

    #[test]
    fn operating_points_have_the_published_marginals() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 200_000;
        let pts: Vec<(f64, f64)> = (0..n).map(|_| draw_operating_point(&mut rng)).collect();
        let mean = |f: &dyn Fn(&(f64, f64)) -> f64| pts.iter().map(f).sum::<f64>() / n as f64;
        let mt = mean(&|p| p.0);
        let ms = mean(&|p| p.1);
        let sd_t = mean(&|p| (p.0 - mt).powi(2)).sqrt();
        let sd_s = mean(&|p| (p.1 - ms).powi(2)).sqrt();
        let corr = mean(&|p| (p.0 - mt) * (p.1 - ms)) / (sd_t * sd_s);
        assert!((mt - 40.0).abs() < 0.2, "torque mean {mt}");
        assert!((sd_t - 10.0).abs() < 0.2, "torque sd {sd_t}");
        assert!((ms - 1538.8).abs() < 3.0, "speed mean {ms}");
        assert!((sd_s - 179.3).abs() < 5.0, "speed sd {sd_s}");
        assert!((corr + 0.875).abs() < 0.02, "correlation {corr}");
    }

    #[test]
    fn random_walk_keeps_its_stationary_spread() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut w = RandomWalk::new(300.0, 2.0, 600.0, &mut rng);
        let xs: Vec<f64> = (0..400_000).map(|_| w.step(10.0, &mut rng)).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((m - 300.0).abs() < 0.2, "{m}");
        assert!((sd - 2.0).abs() < 0.1, "{sd}");
    }

    #[test]
    fn bearing_curve_ends_at_its_span() {
        assert_eq!(bearing_vibration(0.0, 9.0), 0.0);
        assert!((bearing_vibration(1.0, 9.0) - 9.0).abs() < 1e-12);
        assert!(
            bearing_vibration(0.5, 9.0) < 9.0 / 4.0,
            "grows slowly first"
        );
    }
}
