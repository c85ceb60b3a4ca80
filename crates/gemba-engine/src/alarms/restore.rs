//! Rebuilding the evaluators of the stored rules at start (each kind's `restore` is in its file
//! under `rule/`).

use super::book::Alarms;
use super::rule::{self, Active, RestoreCtx};
use gemba_core::Timestamp;
use gemba_store::Store;

impl crate::Engine {
    /// Rebuilds the evaluators of the stored rules (at start). A rule that cannot be rebuilt (a
    /// signal or model gone) is logged and left out; the others run.
    pub(crate) fn restore_rules(
        registry: &crate::Registry,
        store: &dyn Store,
        alarms: &Alarms,
    ) -> Vec<Active> {
        let mut out = Vec::new();
        let mut cx = RestoreCtx {
            registry,
            store,
            raised: false,
            latest: Default::default(),
        };
        for rule in alarms.rules() {
            cx.raised = alarms.condition_present(&rule.spec.name);
            match rule::restore(&cx, &rule) {
                Ok(r) => out.push(Active {
                    rule,
                    eval: r.eval,
                    inputs: r.inputs,
                    output: r.output,
                    last_ts: Timestamp::MIN,
                }),
                Err(e) => {
                    tracing::error!(rule = %rule.spec.name, error = %e, "alarm rule not restored")
                }
            }
        }
        out
    }
}
