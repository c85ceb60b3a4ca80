//! Gemba analytics: pure functions over samples. Today: statistical process control ([`spc`]).
//!
//! Architecture invariant: no IO, no clock, no knowledge of the store, the engine or the wire; the
//! engine feeds values in and stores what comes out.

pub mod spc;

pub use spc::{
    AttributeChart, Capability, Cusum, Imr, Limits, Rule, RuleSet, Series, SpcError, Violation,
    XbarR, XbarS, attribute_center, attribute_chart, capability, check_rules, cusum, ewma,
};
