//! Gemba analytics: pure functions over samples. Statistical process control: charts and run rules ([`spc`]), the same rules on a stream
//! ([`monitor`]) and multivariate monitoring with PCA T² / SPE ([`mspc`]).
//!
//! Architecture invariant: no IO, no clock, no knowledge of the store, the engine or the wire; the
//! engine feeds values in and stores what comes out.

pub mod monitor;
pub mod mspc;
pub mod oee;
pub mod rul;
pub mod spc;
pub mod window;

pub use monitor::{RuleMonitor, StreamViolation};
pub use mspc::{PcaMonitor, PcaOptions, PcaScore};
pub use rul::{DegradationModel, RulEstimate, nasa_score};

pub use spc::{
    AttributeChart, Capability, Cusum, Imr, Limits, Rule, RuleSet, Series, SpcError, Violation,
    XbarR, XbarS, attribute_center, attribute_chart, capability, check_rules, cusum, ewma,
};
