//! Gemba's lab: what stands behind the developer and data-science commands of the `gemba`
//! binary, kept out of the binary so that it only parses and dispatches.
//!
//! - [`simulate`]: the simulation harness: sinks (MQTT, the store directly, CSV export), the
//!   driver, and the demo's live simulation next to the server.
//! - [`rules`]: the alarm rules `gemba demo` and the evaluations put on a simulated plant.
//! - [`eval`], [`eval_horizon`], [`eval_nn`]: the evaluations (`gemba eval …`) that score Gemba's
//!   detectors and models on simulated plants and on published data sets.
//! - [`bench`], `bench_alarms`, `bench_genealogy`: the benchmarks (`gemba bench …`), each run
//!   against its reference in the same run.
//! - [`train`], [`train_nn`]: `gemba train`, `predict`, `generate` and `models`.
//! - [`client`]: the HTTP client of a running server.
//! - [`args`]: the options of those commands (clap `Args`, taken as they are by the binary).
//!
//! Errors are `anyhow` here: every function ends in a message to the person at the terminal.

pub mod args;
pub mod bench;
pub mod bench_alarms;
pub mod bench_genealogy;
pub mod client;
pub mod eval;
pub mod eval_horizon;
pub mod eval_nn;
pub mod rules;
pub mod simulate;
pub mod train;
pub mod train_nn;

/// The sample plant of `gemba demo`.
pub const DEMO_PLANT: &str = include_str!("../../../examples/plant.toml");
