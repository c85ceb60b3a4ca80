//! Why the alarm subsystem refused something: one variant per cause. The API decides the status
//! code of each (`gemba_api::error`).

/// An alarm rule or an action on an alarm that was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// A field of a rule spec or of an action is missing, malformed or out of range.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("an alarm rule named {0:?} exists; delete it first or pick another name")]
    RuleExists(String),
    #[error("no alarm rule named {0:?}")]
    UnknownRule(String),
    #[error("no alarm {0}")]
    UnknownAlarm(u64),
    #[error("alarm {0} is closed; it cannot be acknowledged")]
    AckClosed(u64),
    #[error("alarm {id} was already acknowledged by {by}")]
    AlreadyAcknowledged { id: u64, by: String },
    #[error("alarm {0} is already closed")]
    AlreadyClosed(u64),
    #[error(
        "alarm {0} is still active (its condition is present); it can be closed once it has cleared"
    )]
    StillActive(u64),
    /// A `model` rule's feature has no signal of that name under the machine.
    #[error(
        "feature {feature:?} of model {model} is not a signal of {machine}; alarm rules score models on the machine's signals named like their features"
    )]
    FeatureNotASignal {
        feature: String,
        model: String,
        machine: String,
    },
    /// A stored alarm or rule record that does not parse (written by another version?).
    #[error("stored {kind} {key} is unreadable: {reason}")]
    UnreadableRecord {
        kind: &'static str,
        key: String,
        reason: String,
    },
    /// A record that could not be written as JSON.
    #[error("{what}: {reason}")]
    Unwritable { what: String, reason: String },
    /// A `vae` rule's trained network could not be saved.
    #[error("VAE artefact of rule {rule}: {reason}")]
    VaeArtefact { rule: String, reason: String },
}
