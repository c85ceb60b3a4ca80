//! Alarm rules, the streaming scorer and the alarm book.
//!
//! - A **rule** watches signals: a threshold with hysteresis and minimum durations, an SPC chart
//!   (individuals or EWMA) with its run rules against limits frozen when the rule was created, a
//!   PCA model (Hotelling T² and SPE) or a VAE fitted on a machine's normal data, a registered
//!   classifier's probability, or the remaining useful life. Rules are records of the store
//!   (`alarm_rule`), so they survive restarts.
//! - The **scorer** is one OS thread. The writer hands it every committed sample of a watched
//!   signal (after the commit, so scoring never delays an acknowledgement); it evaluates the rules
//!   in timestamp order, writes derived scores back as signals (so they can be charted and alarmed
//!   on) and raises and clears alarms.
//! - The **book** holds every alarm: one per rule while it is open (deduplicated: a rule that fires
//!   again re-activates its open alarm and counts), with the states active → acknowledged →
//!   cleared → closed, who did what and when, comments, and the explanation (the rule, the values,
//!   the contributing signals). Alarms are records of the store (`alarm`); each raise and clear is
//!   also stored as a `custom:alarm` event at the asset; every change is handed to the
//!   notification outbox (`crate::notify`: webhooks, e-mail).

//!
//! Where things are:
//! - [`spec`]: the wire and record types (rule specs, one struct per kind; alarms).
//! - [`rule`]: one file per rule kind (`threshold`, `spc`, `pca`, `vae`, `model`, `rul`), each
//!   with its `fit` (validate the spec, learn from the store) and its evaluator (`step` per
//!   point); `rule/mod.rs` holds the shared hysteresis and the dispatch over kinds. A new kind is
//!   a variant of [`RuleKind`] and [`Fitted`], a file in `rule/`, and one arm in `rule::fit` and
//!   in `restore`.
//! - `book`: the alarm book (the state machine of [`AlarmAction`]s) and the rule records.
//! - `scorer`: the scorer thread and the writer's tap.
//! - `restore`: rebuilding the evaluators of stored rules at start.

use std::sync::Arc;

use gemba_core::{Timestamp, check_segment};

use crate::EngineError;

mod book;
mod error;
mod restore;
mod rule;
mod scorer;
pub mod spec;

pub use book::{AlarmAction, Alarms};
pub use error::AlarmError;
pub(crate) use scorer::{ScorerParts, Tap, run_scorer};
pub use spec::*;

use rule::{Active, invalid};

const RULE_RECORD: &str = "alarm_rule";
/// `rul` rules judge the last 12 h of the indicator (the fit uses its last 3 running hours).
const RUL_WINDOW_MS: i64 = 12 * 3_600_000;
const ALARM_RECORD: &str = "alarm";

/// `[[alarms.webhooks]]` (kept here for the configuration's path; the channel is in `notify`).
pub use crate::notify::WebhookConfig;

impl crate::Engine {
    /// The alarm book and rules.
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// Validates and fits a rule (reads its baseline from the store: call it off the async
    /// workers), stores it and starts evaluating it on new data.
    pub fn create_alarm_rule(
        &self,
        spec: RuleSpec,
        by: Option<String>,
    ) -> Result<AlarmRule, EngineError> {
        check_segment(&spec.name).map_err(|e| invalid("name", format!("{:?} {e}", spec.name)))?;
        if self.alarms.rule(&spec.name).is_some() {
            return Err(AlarmError::RuleExists(spec.name.clone()).into());
        }
        if let Some(d) = &spec.description
            && d.len() > 1024
        {
            return Err(invalid("description", "at most 1024 characters"));
        }
        let now = self.now();
        let cx = rule::FitCtx {
            engine: self,
            name: &spec.name,
            now,
        };
        let fit = rule::fit(&cx, &spec.kind)?;
        let rule = AlarmRule {
            spec,
            fitted: fit.fitted,
            asset: fit.asset,
            created_at: now,
            created_by: by,
        };
        self.alarms.install(Active {
            rule,
            eval: fit.eval,
            inputs: fit.inputs,
            output: fit.output,
            last_ts: Timestamp::MIN,
        })
    }

    /// Runs [`Engine::evaluate_periodic_rules`] every `alarms.periodic_interval_s`.
    pub fn spawn_periodic_rules(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = std::time::Duration::from_secs(self.config.alarms.periodic_interval_s.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                if tokio::task::spawn_blocking(move || engine.evaluate_periodic_rules())
                    .await
                    .is_err()
                {
                    tracing::error!("periodic alarm rules panicked");
                }
            }
        })
    }
}
