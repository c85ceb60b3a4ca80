//! Material logistics: lots, moves, inventory and WIP (now and as of any past time), dwell and
//! lead times, genealogy.
//!
//! The [`Ledger`] is the in-memory state the engine checks `lot` and `move` events against before a
//! batch is committed, and answers inventory queries from. It is rebuilt at start by replaying the
//! store's logistics index (`Store::logistics`, written in the same transaction as the events), so
//! it never holds anything the store does not.
//!
//! Rules (checked in arrival order, all-or-nothing per event):
//! - a `lot` event creates a lot once; its `inputs` must exist and not be consumed, and are
//!   consumed whole by it (their remaining quantity leaves every location they are at);
//! - a `move` needs a lot that exists and is not consumed, `from != to`, and at most the quantity
//!   the lot has at `from`.
//!
//! As-of queries replay the time-ordered move log from the nearest checkpoint (totals per location
//! and product every [`CHECKPOINT_EVERY`] entries), so they cost at most that many steps.

mod genealogy;
mod ledger;
mod reorder;

pub use genealogy::*;
pub use ledger::*;
pub use reorder::*;
