//! The ledger: lots, moves and what they leave where, checked before a batch is committed.

use std::collections::{HashMap, HashSet, VecDeque};

use gemba_core::{EventBody, Timestamp};
use gemba_store::{LotRecord, MoveRecord};
use serde::Serialize;
use thiserror::Error;

/// Whether a checked event is new or repeats one already applied (a retried request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    New,
    /// The same `lot` or `move` event (timestamp and every field) was applied before: it is
    /// acknowledged without being stored or applied again, so clients may retry.
    Repeat,
}

/// Identity of a `lot` or `move` event: its timestamp and every field.
fn fingerprint(ts: Timestamp, body: &EventBody) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ts.hash(&mut h);
    match body {
        EventBody::Lot {
            lot,
            product,
            quantity,
            unit,
            location,
            inputs,
        } => {
            (
                "lot",
                lot,
                product,
                quantity.to_bits(),
                unit,
                location,
                inputs,
            )
                .hash(&mut h);
        }
        EventBody::Move {
            lot,
            from,
            to,
            quantity,
        } => ("move", lot, from, to, quantity.to_bits()).hash(&mut h),
        _ => return None,
    }
    Some(h.finish())
}

/// Entries of the move log between two checkpoints of the totals.
pub const CHECKPOINT_EVERY: usize = 4096;

/// Quantities smaller than this are treated as zero (floating-point dust of partial moves).
const EPS: f64 = 1e-9;

/// Why a `lot` or `move` event is refused. Each names the event field it is about.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LedgerError {
    #[error(
        "unknown lot {lot:?}; a lot must be created by a `lot` event before it moves or is used"
    )]
    UnknownLot { field: &'static str, lot: String },
    #[error("lot {lot:?} already exists (created at {created})")]
    DuplicateLot { lot: String, created: Timestamp },
    #[error("lot {lot:?} was already consumed by lot {by:?}")]
    Consumed {
        field: &'static str,
        lot: String,
        by: String,
    },
    #[error("lot {lot:?} has {available} at {from:?}; cannot move {quantity}")]
    Insufficient {
        lot: String,
        from: String,
        quantity: f64,
        available: f64,
    },
    #[error("from and to are the same location {0:?}")]
    SameLocation(String),
    #[error("lot {lot:?} was only created at {created}; the event is stamped earlier")]
    BeforeCreation {
        field: &'static str,
        lot: String,
        created: Timestamp,
    },
}

impl LedgerError {
    /// The event field the error is about (for `events[i].<field>` in ingest replies).
    pub fn field(&self) -> &'static str {
        match self {
            LedgerError::UnknownLot { field, .. }
            | LedgerError::Consumed { field, .. }
            | LedgerError::BeforeCreation { field, .. } => field,
            LedgerError::DuplicateLot { .. } => "lot",
            LedgerError::Insufficient { .. } => "quantity",
            LedgerError::SameLocation(_) => "to",
        }
    }
}

type Id = u32;

/// Strings to small ids and back.
#[derive(Debug, Default, Clone)]
struct Names {
    ids: HashMap<String, Id>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, s: &str) -> Id {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as Id;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), i);
        i
    }
    fn get(&self, s: &str) -> Option<Id> {
        self.ids.get(s).copied()
    }
    fn name(&self, i: Id) -> &str {
        &self.names[i as usize]
    }
}

/// One step of a lot's history: a quantity arriving at `to` and/or leaving `from`.
/// Creation has no `from`, consumption no `to`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    ts: Timestamp,
    lot: Id,
    product: Id,
    from: Option<Id>,
    to: Option<Id>,
    qty: f64,
}

#[derive(Debug, Clone)]
struct Lot {
    name: String,
    product: Id,
    unit: String,
    quantity: f64,
    created: Timestamp,
    location: Id,
    inputs: Vec<Id>,
    outputs: Vec<Id>,
    consumed: Option<(Timestamp, Id)>,
    /// This lot's steps in time order.
    history: Vec<Step>,
}

type Totals = HashMap<(Id, Id), f64>;

#[derive(Debug, Clone)]
struct Checkpoint {
    /// Totals after the first `upto` entries of the log.
    upto: usize,
    totals: Totals,
}

/// Inventory of one product at one location.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockRow {
    pub location: String,
    pub product: String,
    pub quantity: f64,
    /// Lots with a positive quantity there (present only for current inventory and per-lot queries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lots: Option<usize>,
}

/// Where a lot is and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Position {
    pub location: String,
    pub quantity: f64,
}

/// How much of a lot is somewhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotQuantity {
    pub lot: String,
    pub quantity: f64,
}

/// One lot as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LotView {
    pub lot: String,
    pub product: String,
    pub unit: String,
    pub quantity: f64,
    pub created: Timestamp,
    pub location: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_by: Option<String>,
    /// Where the lot is now (empty when consumed or gone out of every location).
    pub positions: Vec<Position>,
}

/// A stay of a lot at a location: from the moment a quantity arrived there while none was there,
/// until none was left (`end` is `None` while it is still there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stay {
    pub lot: String,
    pub location: String,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
}

/// Dwell statistics of the stays at one location that ended within a time range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DwellStats {
    pub location: String,
    pub stays: usize,
    pub mean_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    /// Lots there now whose stay has not ended.
    pub open: usize,
}

/// One lot in a genealogy tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenealogyNode {
    pub lot: String,
    pub product: String,
    pub quantity: f64,
    pub unit: String,
    pub created: Timestamp,
    /// Steps from the lot asked about (0 for itself).
    pub depth: usize,
    /// The lot one step closer to the lot asked about (`None` for itself).
    pub via: Option<String>,
    pub stays: Vec<Stay>,
}

/// Direction of a genealogy query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What was made from this lot (and where it went).
    Forward,
    /// What this lot was made from.
    Backward,
}

/// A reorder point crossing found while checking a batch: stock of `product` at `location` fell
/// below `min`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortage {
    pub location: String,
    pub product: String,
    pub quantity: f64,
    pub min: f64,
    /// The stock came back to `min` or above (it was below before the batch).
    pub restocked: bool,
}

/// The logistics state. See the module documentation.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    lot_ids: HashMap<String, Id>,
    lots: Vec<Lot>,
    locations: Names,
    products: Names,
    /// Current quantity per (lot, location).
    stock: HashMap<(Id, Id), f64>,
    /// Current quantity per (location, product).
    totals: Totals,
    /// Every step of every lot, in time order (ties in arrival order).
    log: Vec<Step>,
    checkpoints: Vec<Checkpoint>,
    /// Fingerprints of every applied `lot` and `move` event (retries are recognised by them).
    seen: HashSet<u64>,
}

/// The facts a rule needs, from the ledger or from a batch being checked on top of it.
trait View {
    /// The lot's product and who consumed it, if it exists.
    fn lot_state(&self, lot: &str) -> Option<(String, Option<String>)>;
    fn quantity(&self, lot: &str, location: &str) -> f64;
    fn created(&self, lot: &str) -> Timestamp;
}

/// The lot exists and has not been consumed; `field` names where the event refers to it.
fn usable(view: &impl View, lot: &str, field: &'static str) -> Result<(), LedgerError> {
    match view.lot_state(lot) {
        None => Err(LedgerError::UnknownLot {
            field,
            lot: lot.to_owned(),
        }),
        Some((_, Some(by))) => Err(LedgerError::Consumed {
            field,
            lot: lot.to_owned(),
            by,
        }),
        Some(_) => Ok(()),
    }
}

/// Checks one event against the rules; `Ok` for events that are not `lot` or `move`.
fn check_rules(view: &impl View, ts: Timestamp, body: &EventBody) -> Result<(), LedgerError> {
    match body {
        EventBody::Lot { lot, inputs, .. } => {
            if view.lot_state(lot).is_some() {
                return Err(LedgerError::DuplicateLot {
                    lot: lot.clone(),
                    created: view.created(lot),
                });
            }
            for input in inputs {
                usable(view, input, "inputs")?;
                if view.created(input) > ts {
                    return Err(LedgerError::BeforeCreation {
                        field: "inputs",
                        lot: input.clone(),
                        created: view.created(input),
                    });
                }
            }
            Ok(())
        }
        EventBody::Move {
            lot,
            from,
            to,
            quantity,
        } => {
            usable(view, lot, "lot")?;
            if view.created(lot) > ts {
                return Err(LedgerError::BeforeCreation {
                    field: "ts",
                    lot: lot.clone(),
                    created: view.created(lot),
                });
            }
            if from == to {
                return Err(LedgerError::SameLocation(from.clone()));
            }
            let available = view.quantity(lot, from);
            if *quantity > available + EPS {
                return Err(LedgerError::Insufficient {
                    lot: lot.clone(),
                    from: from.clone(),
                    quantity: *quantity,
                    available,
                });
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl View for Ledger {
    fn lot_state(&self, lot: &str) -> Option<(String, Option<String>)> {
        let l = &self.lots[*self.lot_ids.get(lot)? as usize];
        Some((
            self.products.name(l.product).to_owned(),
            l.consumed
                .map(|(_, by)| self.lots[by as usize].name.clone()),
        ))
    }
    fn quantity(&self, lot: &str, location: &str) -> f64 {
        match (self.lot_ids.get(lot), self.locations.get(location)) {
            (Some(&l), Some(loc)) => self.stock.get(&(l, loc)).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }
    fn created(&self, lot: &str) -> Timestamp {
        self.lot_ids
            .get(lot)
            .map_or(0, |&l| self.lots[l as usize].created)
    }
}

/// A batch being checked on top of the ledger: what its accepted events changed so far.
#[derive(Debug)]
pub struct BatchCheck<'a> {
    ledger: &'a Ledger,
    /// New lots: product, created.
    new_lots: HashMap<String, (String, Timestamp)>,
    consumed: HashMap<String, String>,
    stock: HashMap<(String, String), f64>,
    totals: HashMap<(String, String), f64>,
    seen: HashSet<u64>,
}

impl View for BatchCheck<'_> {
    fn lot_state(&self, lot: &str) -> Option<(String, Option<String>)> {
        let product = match self.new_lots.get(lot) {
            Some((p, _)) => p.clone(),
            None => self.ledger.lot_state(lot)?.0,
        };
        let by = match self.consumed.get(lot) {
            Some(by) => Some(by.clone()),
            None => self.ledger.lot_state(lot).and_then(|(_, by)| by),
        };
        Some((product, by))
    }
    fn quantity(&self, lot: &str, location: &str) -> f64 {
        match self.stock.get(&(lot.to_owned(), location.to_owned())) {
            Some(q) => *q,
            None => self.ledger.quantity(lot, location),
        }
    }
    fn created(&self, lot: &str) -> Timestamp {
        match self.new_lots.get(lot) {
            Some((_, ts)) => *ts,
            None => self.ledger.created(lot),
        }
    }
}

impl<'a> BatchCheck<'a> {
    /// Checks one event and, when it passes, takes it into account for the following ones.
    pub fn check(&mut self, ts: Timestamp, body: &EventBody) -> Result<Checked, LedgerError> {
        let print = fingerprint(ts, body);
        if let Some(f) = print
            && (self.ledger.seen.contains(&f) || self.seen.contains(&f))
        {
            return Ok(Checked::Repeat);
        }
        check_rules(self, ts, body)?;
        if let Some(f) = print {
            self.seen.insert(f);
        }
        match body {
            EventBody::Lot {
                lot,
                product,
                quantity,
                location,
                inputs,
                ..
            } => {
                for input in inputs {
                    let input_product = self.lot_state(input).map(|(p, _)| p).unwrap_or_default();
                    for (loc, q) in self.positions_of(input) {
                        self.add(input, &input_product, &loc, -q);
                    }
                    self.consumed.insert(input.clone(), lot.clone());
                }
                self.new_lots.insert(lot.clone(), (product.clone(), ts));
                self.add(lot, product, location, *quantity);
            }
            EventBody::Move {
                lot,
                from,
                to,
                quantity,
            } => {
                let product = self.lot_state(lot).map(|(p, _)| p).unwrap_or_default();
                self.add(lot, &product, from, -quantity);
                self.add(lot, &product, to, *quantity);
            }
            _ => {}
        }
        Ok(Checked::New)
    }

    fn positions_of(&self, lot: &str) -> Vec<(String, f64)> {
        let mut out: HashMap<String, f64> = HashMap::new();
        if let Some(&l) = self.ledger.lot_ids.get(lot) {
            for (loc, q) in self.ledger.positions(l) {
                out.insert(loc, q);
            }
        }
        for ((l, loc), q) in &self.stock {
            if l == lot {
                out.insert(loc.clone(), *q);
            }
        }
        let mut v: Vec<_> = out.into_iter().filter(|(_, q)| *q > EPS).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn add(&mut self, lot: &str, product: &str, location: &str, delta: f64) {
        let q = self.quantity(lot, location) + delta;
        self.stock
            .insert((lot.to_owned(), location.to_owned()), clean(q));
        *self
            .totals
            .entry((location.to_owned(), product.to_owned()))
            .or_insert(0.0) += delta;
    }

    /// Reorder points (location, product, min) that the checked events pushed below their minimum
    /// (they were at or above it before the batch), or back to it (`restocked`).
    pub fn shortages(&self, points: &[(String, String, f64)]) -> Vec<Shortage> {
        let mut out = Vec::new();
        for (location, product, min) in points {
            let Some(delta) = self.totals.get(&(location.clone(), product.clone())) else {
                continue;
            };
            let before = self.ledger.total(location, product);
            let after = clean(before + delta);
            if (before >= *min) != (after >= *min) {
                out.push(Shortage {
                    location: location.clone(),
                    product: product.clone(),
                    quantity: after,
                    min: *min,
                    restocked: after >= *min,
                });
            }
        }
        out
    }
}

fn clean(q: f64) -> f64 {
    if q.abs() < EPS { 0.0 } else { q }
}

impl Ledger {
    /// Rebuilds the ledger from the store's logistics index (lots and moves in commit order).
    /// Records that break a rule (written before this version checked them) are skipped and counted.
    pub fn replay(lots: Vec<LotRecord>, moves: Vec<MoveRecord>) -> (Ledger, usize) {
        let mut ledger = Ledger::default();
        let mut skipped = 0;
        let mut lots = lots.into_iter().peekable();
        let mut moves = moves.into_iter().peekable();
        loop {
            let take_lot = match (lots.peek(), moves.peek()) {
                (Some(l), Some(m)) => l.event < m.event,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (ts, body) = if take_lot {
                let Some(l) = lots.next() else { break };
                (
                    l.ts,
                    EventBody::Lot {
                        lot: l.lot,
                        product: l.product,
                        quantity: l.quantity,
                        unit: l.unit,
                        location: l.location,
                        inputs: l.inputs,
                    },
                )
            } else {
                let Some(m) = moves.next() else { break };
                (
                    m.ts,
                    EventBody::Move {
                        lot: m.lot,
                        from: m.from,
                        to: m.to,
                        quantity: m.quantity,
                    },
                )
            };
            if ledger.apply(ts, &body).is_err() {
                skipped += 1;
            }
        }
        ledger.settle();
        (ledger, skipped)
    }

    /// Starts checking a batch on top of the current state.
    pub fn begin(&self) -> BatchCheck<'_> {
        BatchCheck {
            ledger: self,
            new_lots: HashMap::new(),
            consumed: HashMap::new(),
            stock: HashMap::new(),
            totals: HashMap::new(),
            seen: HashSet::new(),
        }
    }

    /// Checks one event and applies it when it passes (other event types are ignored).
    pub fn apply(&mut self, ts: Timestamp, body: &EventBody) -> Result<(), LedgerError> {
        let print = fingerprint(ts, body);
        if let Some(f) = print
            && self.seen.contains(&f)
        {
            return Ok(());
        }
        check_rules(self, ts, body)?;
        if let Some(f) = print {
            self.seen.insert(f);
        }
        match body {
            EventBody::Lot {
                lot,
                product,
                quantity,
                unit,
                location,
                inputs,
            } => {
                let id = self.lots.len() as Id;
                let product = self.products.id(product);
                let location = self.locations.id(location);
                let input_ids: Vec<Id> = inputs
                    .iter()
                    .filter_map(|i| self.lot_ids.get(i).copied())
                    .collect();
                self.lot_ids.insert(lot.clone(), id);
                self.lots.push(Lot {
                    name: lot.clone(),
                    product,
                    unit: unit.clone(),
                    quantity: *quantity,
                    created: ts,
                    location,
                    inputs: input_ids.clone(),
                    outputs: Vec::new(),
                    consumed: None,
                    history: Vec::new(),
                });
                for input in input_ids {
                    for (loc, q) in self.positions(input) {
                        let loc = self.locations.id(&loc);
                        let p = self.lots[input as usize].product;
                        self.push(Step {
                            ts,
                            lot: input,
                            product: p,
                            from: Some(loc),
                            to: None,
                            qty: q,
                        });
                    }
                    let l = &mut self.lots[input as usize];
                    l.consumed = Some((ts, id));
                    l.outputs.push(id);
                }
                self.push(Step {
                    ts,
                    lot: id,
                    product,
                    from: None,
                    to: Some(location),
                    qty: *quantity,
                });
            }
            EventBody::Move {
                lot,
                from,
                to,
                quantity,
            } => {
                let Some(&id) = self.lot_ids.get(lot) else {
                    return Ok(());
                };
                let step = Step {
                    ts,
                    lot: id,
                    product: self.lots[id as usize].product,
                    from: Some(self.locations.id(from)),
                    to: Some(self.locations.id(to)),
                    qty: *quantity,
                };
                self.push(step);
            }
            _ => {}
        }
        Ok(())
    }

    /// Applies one step to the current state, the lot's history and the time-ordered log.
    fn push(&mut self, s: Step) {
        if let Some(f) = s.from {
            let q = self.stock.entry((s.lot, f)).or_insert(0.0);
            *q = clean(*q - s.qty);
            *self.totals.entry((f, s.product)).or_insert(0.0) -= s.qty;
        }
        if let Some(t) = s.to {
            let q = self.stock.entry((s.lot, t)).or_insert(0.0);
            *q = clean(*q + s.qty);
            *self.totals.entry((t, s.product)).or_insert(0.0) += s.qty;
        }
        let h = &mut self.lots[s.lot as usize].history;
        let at = h.partition_point(|x| x.ts <= s.ts);
        h.insert(at, s);
        let at = self.log.partition_point(|x| x.ts <= s.ts);
        self.log.insert(at, s);
        if at + 1 < self.log.len() {
            // A late step: checkpoints after it no longer hold ([`Ledger::settle`] rebuilds them).
            let keep = self.checkpoints.partition_point(|c| c.upto <= at);
            self.checkpoints.truncate(keep);
        }
    }

    /// Brings the checkpoints of the totals up to date (after a batch: once, however many late
    /// steps it had). As-of queries are correct without it, only slower.
    pub fn settle(&mut self) {
        loop {
            let upto = self.checkpoints.last().map_or(0, |c| c.upto);
            if upto + CHECKPOINT_EVERY > self.log.len() {
                return;
            }
            let mut totals = self
                .checkpoints
                .last()
                .map(|c| c.totals.clone())
                .unwrap_or_default();
            for s in &self.log[upto..upto + CHECKPOINT_EVERY] {
                apply_totals(&mut totals, s);
            }
            self.checkpoints.push(Checkpoint {
                upto: upto + CHECKPOINT_EVERY,
                totals,
            });
        }
    }

    fn positions(&self, lot: Id) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self.lots[lot as usize]
            .history
            .iter()
            .flat_map(|s| s.from.into_iter().chain(s.to))
            .collect::<HashSet<Id>>()
            .into_iter()
            .filter_map(|loc| {
                let q = self.stock.get(&(lot, loc)).copied().unwrap_or(0.0);
                (q > EPS).then(|| (self.locations.name(loc).to_owned(), q))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn total(&self, location: &str, product: &str) -> f64 {
        match (self.locations.get(location), self.products.get(product)) {
            (Some(l), Some(p)) => self.totals.get(&(l, p)).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// Number of lots and of logged steps.
    pub fn size(&self) -> (usize, usize) {
        (self.lots.len(), self.log.len())
    }

    /// Inventory per location and product, now (`at = None`) or as of `at` (inclusive), optionally
    /// only at one location and/or of one product. Rows with zero quantity are left out.
    pub fn inventory(
        &self,
        at: Option<Timestamp>,
        location: Option<&str>,
        product: Option<&str>,
    ) -> Vec<StockRow> {
        let loc_id = location.map(|l| self.locations.get(l));
        let prod_id = product.map(|p| self.products.get(p));
        if matches!(loc_id, Some(None)) || matches!(prod_id, Some(None)) {
            return Vec::new();
        }
        let keep = |l: Id, p: Id| {
            loc_id.is_none_or(|x| x == Some(l)) && prod_id.is_none_or(|x| x == Some(p))
        };
        let (totals, lots) = match at {
            None => {
                let mut counts: HashMap<(Id, Id), usize> = HashMap::new();
                for (&(lot, loc), &q) in &self.stock {
                    if q > EPS {
                        *counts
                            .entry((loc, self.lots[lot as usize].product))
                            .or_insert(0) += 1;
                    }
                }
                (self.totals.clone(), Some(counts))
            }
            Some(t) => {
                let end = self.log.partition_point(|s| s.ts <= t);
                let cp = self.checkpoints.partition_point(|c| c.upto <= end);
                let (start, mut totals) = match cp.checked_sub(1) {
                    Some(i) => (
                        self.checkpoints[i].upto,
                        // Only the wanted rows need copying when a filter is given.
                        self.checkpoints[i]
                            .totals
                            .iter()
                            .filter(|((l, p), _)| keep(*l, *p))
                            .map(|(k, v)| (*k, *v))
                            .collect(),
                    ),
                    None => (0, Totals::new()),
                };
                for s in &self.log[start..end] {
                    if s.from.is_some_and(|l| keep(l, s.product))
                        || s.to.is_some_and(|l| keep(l, s.product))
                    {
                        apply_totals(&mut totals, s);
                    }
                }
                (totals, None)
            }
        };
        let mut rows: Vec<StockRow> = totals
            .into_iter()
            .filter(|((l, p), q)| keep(*l, *p) && q.abs() > 1e-6)
            .map(|((l, p), q)| StockRow {
                location: self.locations.name(l).to_owned(),
                product: self.products.name(p).to_owned(),
                quantity: q,
                lots: lots.as_ref().map(|c| c.get(&(l, p)).copied().unwrap_or(0)),
            })
            .collect();
        rows.sort_by(|a, b| (&a.location, &a.product).cmp(&(&b.location, &b.product)));
        rows
    }

    /// The lots at a location as of `at` (or now), with their quantity there.
    pub fn lots_at(&self, location: &str, at: Option<Timestamp>) -> Vec<LotQuantity> {
        let Some(loc) = self.locations.get(location) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (id, lot) in self.lots.iter().enumerate() {
            let q = match at {
                None => self.stock.get(&(id as Id, loc)).copied().unwrap_or(0.0),
                Some(t) => lot
                    .history
                    .iter()
                    .take_while(|s| s.ts <= t)
                    .map(|s| {
                        let mut d = 0.0;
                        if s.to == Some(loc) {
                            d += s.qty;
                        }
                        if s.from == Some(loc) {
                            d -= s.qty;
                        }
                        d
                    })
                    .sum(),
            };
            if q > EPS {
                out.push(LotQuantity {
                    lot: lot.name.clone(),
                    quantity: q,
                });
            }
        }
        out
    }

    /// Every location that ever held something.
    pub fn locations(&self) -> Vec<String> {
        let mut v = self.locations.names.clone();
        v.sort();
        v
    }

    /// One lot.
    pub fn lot(&self, lot: &str) -> Option<LotView> {
        let id = *self.lot_ids.get(lot)?;
        Some(self.view(id))
    }

    /// Lots, newest first, optionally only of one product, at most `limit`.
    pub fn lots(&self, product: Option<&str>, limit: usize) -> Vec<LotView> {
        let p = product.map(|p| self.products.get(p));
        if matches!(p, Some(None)) {
            return Vec::new();
        }
        let mut ids: Vec<Id> = (0..self.lots.len() as Id)
            .filter(|&i| p.is_none_or(|p| p == Some(self.lots[i as usize].product)))
            .collect();
        ids.sort_by_key(|&i| std::cmp::Reverse((self.lots[i as usize].created, i)));
        ids.into_iter().take(limit).map(|i| self.view(i)).collect()
    }

    fn view(&self, id: Id) -> LotView {
        let l = &self.lots[id as usize];
        let names = |ids: &[Id]| -> Vec<String> {
            ids.iter()
                .map(|&i| self.lots[i as usize].name.clone())
                .collect()
        };
        LotView {
            lot: l.name.clone(),
            product: self.products.name(l.product).to_owned(),
            unit: l.unit.clone(),
            quantity: l.quantity,
            created: l.created,
            location: self.locations.name(l.location).to_owned(),
            inputs: names(&l.inputs),
            outputs: names(&l.outputs),
            consumed_at: l.consumed.map(|(t, _)| t),
            consumed_by: l
                .consumed
                .map(|(_, by)| self.lots[by as usize].name.clone()),
            positions: self
                .positions(id)
                .into_iter()
                .map(|(location, quantity)| Position { location, quantity })
                .collect(),
        }
    }

    /// The stays of one lot at every location, in time order of their start.
    pub fn stays(&self, lot: &str) -> Vec<Stay> {
        match self.lot_ids.get(lot) {
            Some(&id) => self.stays_of(id),
            None => Vec::new(),
        }
    }

    fn stays_of(&self, id: Id) -> Vec<Stay> {
        let lot = &self.lots[id as usize];
        let mut here: HashMap<Id, (f64, Timestamp)> = HashMap::new();
        let mut out = Vec::new();
        for s in &lot.history {
            if let Some(f) = s.from
                && let Some((q, start)) = here.get_mut(&f)
            {
                *q -= s.qty;
                if *q <= EPS {
                    out.push(Stay {
                        lot: lot.name.clone(),
                        location: self.locations.name(f).to_owned(),
                        start: *start,
                        end: Some(s.ts),
                    });
                    here.remove(&f);
                }
            }
            if let Some(t) = s.to {
                here.entry(t).or_insert((0.0, s.ts)).0 += s.qty;
            }
        }
        let mut open: Vec<_> = here.into_iter().collect();
        open.sort_by_key(|(loc, (_, start))| (*start, *loc));
        for (loc, (_, start)) in open {
            out.push(Stay {
                lot: lot.name.clone(),
                location: self.locations.name(loc).to_owned(),
                start,
                end: None,
            });
        }
        out.sort_by_key(|s| (s.start, s.end.unwrap_or(Timestamp::MAX)));
        out
    }

    /// Dwell time at every location (or one): stays of non-zero length that ended in `[from, to)`,
    /// and the number of stays still open.
    pub fn dwell(&self, location: Option<&str>, from: Timestamp, to: Timestamp) -> Vec<DwellStats> {
        let mut per: HashMap<String, (Vec<f64>, usize)> = HashMap::new();
        for id in 0..self.lots.len() as Id {
            for s in self.stays_of(id) {
                if location.is_some_and(|l| l != s.location) {
                    continue;
                }
                let e = per.entry(s.location.clone()).or_default();
                match s.end {
                    // A lot made and moved on in the same instant never dwelt there.
                    Some(end) if end == s.start => {}
                    Some(end) if end >= from && end < to => {
                        e.0.push((end - s.start) as f64 / 1000.0)
                    }
                    Some(_) => {}
                    None => e.1 += 1,
                }
            }
        }
        let mut out: Vec<DwellStats> = per
            .into_iter()
            .map(|(location, (d, open))| DwellStats {
                location,
                stays: d.len(),
                mean_s: (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64),
                min_s: d.iter().copied().reduce(f64::min),
                max_s: d.iter().copied().reduce(f64::max),
                open,
            })
            .collect();
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out
    }

    /// Lead time of each lot created in `[from, to)` that reached `target` (e.g. `shipping`):
    /// (lot, seconds from creation to its first arrival there).
    pub fn lead_times(&self, target: &str, from: Timestamp, to: Timestamp) -> Vec<(String, f64)> {
        let Some(t) = self.locations.get(target) else {
            return Vec::new();
        };
        self.lots
            .iter()
            .filter(|l| l.created >= from && l.created < to)
            .filter_map(|l| {
                let arrived = l.history.iter().find(|s| s.to == Some(t))?.ts;
                Some((l.name.clone(), (arrived - l.created) as f64 / 1000.0))
            })
            .collect()
    }

    /// The genealogy of a lot: itself (depth 0) and every lot it was made from (backward) or that
    /// was made from it (forward), breadth first, each with its stays. `None` for an unknown lot.
    pub fn genealogy(&self, lot: &str, direction: Direction) -> Option<Vec<GenealogyNode>> {
        let root = *self.lot_ids.get(lot)?;
        let mut seen = HashSet::from([root]);
        let mut queue = VecDeque::from([(root, 0usize, None::<Id>)]);
        let mut out = Vec::new();
        while let Some((id, depth, via)) = queue.pop_front() {
            let l = &self.lots[id as usize];
            out.push(GenealogyNode {
                lot: l.name.clone(),
                product: self.products.name(l.product).to_owned(),
                quantity: l.quantity,
                unit: l.unit.clone(),
                created: l.created,
                depth,
                via: via.map(|v| self.lots[v as usize].name.clone()),
                stays: self.stays_of(id),
            });
            let next = match direction {
                Direction::Backward => &l.inputs,
                Direction::Forward => &l.outputs,
            };
            for &n in next {
                if seen.insert(n) {
                    queue.push_back((n, depth + 1, Some(id)));
                }
            }
        }
        Some(out)
    }
}

/// `[logistics]` of the configuration.
fn apply_totals(totals: &mut Totals, s: &Step) {
    if let Some(f) = s.from {
        *totals.entry((f, s.product)).or_insert(0.0) -= s.qty;
    }
    if let Some(t) = s.to {
        *totals.entry((t, s.product)).or_insert(0.0) += s.qty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lot(id: &str, product: &str, q: f64, at: &str, inputs: &[&str]) -> EventBody {
        EventBody::Lot {
            lot: id.into(),
            product: product.into(),
            quantity: q,
            unit: "pcs".into(),
            location: at.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
        }
    }
    fn mv(id: &str, from: &str, to: &str, q: f64) -> EventBody {
        EventBody::Move {
            lot: id.into(),
            from: from.into(),
            to: to.into(),
            quantity: q,
        }
    }

    /// R1 (100 steel) and R2 (50 steel) are received; 60 of R1 and all of R2 go to line1 at 2000;
    /// W1 (40 widgets) is made from R2 at 3000 and shipped at 5000.
    fn sample() -> Ledger {
        let mut l = Ledger::default();
        for (ts, e) in [
            (1000, lot("R1", "steel", 100.0, "store", &[])),
            (1000, lot("R2", "steel", 50.0, "store", &[])),
            (2000, mv("R1", "store", "line1", 60.0)),
            (2000, mv("R2", "store", "line1", 50.0)),
            (3000, lot("W1", "widget", 40.0, "line1", &["R2"])),
            (4000, mv("W1", "line1", "fg", 40.0)),
            (5000, mv("W1", "fg", "shipping", 40.0)),
        ] {
            l.apply(ts, &e).expect("valid");
        }
        l
    }

    fn qty(rows: &[StockRow], loc: &str, product: &str) -> f64 {
        rows.iter()
            .find(|r| r.location == loc && r.product == product)
            .map_or(0.0, |r| r.quantity)
    }

    #[test]
    fn inventory_now_and_as_of() {
        let l = sample();
        let now = l.inventory(None, None, None);
        // store: R1 100-60 = 40; line1: R1 60 (R2 consumed); shipping: W1 40.
        assert_eq!(qty(&now, "store", "steel"), 40.0);
        assert_eq!(qty(&now, "line1", "steel"), 60.0);
        assert_eq!(qty(&now, "shipping", "widget"), 40.0);
        assert_eq!(qty(&now, "fg", "widget"), 0.0);
        assert_eq!(now.len(), 3);
        let line = now.iter().find(|r| r.location == "line1").expect("row");
        assert_eq!(line.lots, Some(1));
        // As of 2500: store 150-110 = 40, line1 110 steel.
        let t = l.inventory(Some(2500), None, None);
        assert_eq!(qty(&t, "store", "steel"), 40.0);
        assert_eq!(qty(&t, "line1", "steel"), 110.0);
        // As of 3000 (inclusive): R2 consumed, W1 made.
        let t = l.inventory(Some(3000), Some("line1"), None);
        assert_eq!(qty(&t, "line1", "steel"), 60.0);
        assert_eq!(qty(&t, "line1", "widget"), 40.0);
        assert_eq!(t.len(), 2);
        assert!(l.inventory(Some(999), None, None).is_empty());
        let at = l.lots_at("line1", Some(2500));
        assert_eq!(at.len(), 2);
        assert_eq!(l.lots_at("line1", None)[0].quantity, 60.0);
    }

    #[test]
    fn bad_events_are_refused_and_change_nothing() {
        let mut l = sample();
        let before = l.inventory(None, None, None);
        let cases = [
            (mv("NOPE", "store", "line1", 1.0), "lot"),
            (mv("R1", "store", "line1", 41.0), "quantity"),
            (mv("R2", "line1", "fg", 1.0), "lot"),
            (lot("W2", "widget", 1.0, "line1", &["R2"]), "inputs"),
            (lot("W3", "widget", 1.0, "line1", &["R9"]), "inputs"),
            (lot("R1", "steel", 1.0, "store", &[]), "lot"),
            (mv("R1", "store", "store", 1.0), "to"),
        ];
        let err = l
            .apply(999, &mv("R1", "store", "line1", 1.0))
            .expect_err("early");
        assert_eq!(err.field(), "ts");
        let err = l
            .apply(999, &lot("W7", "w", 1.0, "x", &["R1"]))
            .expect_err("early input");
        assert_eq!(err.field(), "inputs");
        for (e, field) in cases {
            let err = l.apply(9000, &e).expect_err("refused");
            assert_eq!(err.field(), field, "{err}");
        }
        assert_eq!(l.inventory(None, None, None), before);
        let err = l
            .apply(9000, &lot("W2", "w", 1.0, "x", &["R2"]))
            .expect_err("twice");
        assert_eq!(
            err.to_string(),
            "lot \"R2\" was already consumed by lot \"W1\""
        );
    }

    #[test]
    fn a_repeated_event_is_recognised_not_applied_twice() {
        let mut l = sample();
        let before = l.inventory(None, None, None);
        // The move of 60 of R1 at 2000, sent again (a retry): R1 has only 40 left in the store,
        // so applying it twice would be refused; it is recognised instead.
        let again = mv("R1", "store", "line1", 60.0);
        let mut b = l.begin();
        assert_eq!(b.check(2000, &again), Ok(Checked::Repeat));
        // The same move at another time is a new move (and is refused: 40 left).
        assert!(b.check(2001, &again).is_err());
        let fresh = mv("R1", "store", "line1", 5.0);
        assert_eq!(b.check(9000, &fresh), Ok(Checked::New));
        assert_eq!(b.check(9000, &fresh), Ok(Checked::Repeat));
        l.apply(2000, &again).expect("no-op");
        assert_eq!(l.inventory(None, None, None), before);
    }

    #[test]
    fn a_batch_sees_its_own_earlier_events() {
        let l = sample();
        let mut b = l.begin();
        b.check(6000, &lot("R3", "steel", 10.0, "store", &[]))
            .expect("new");
        b.check(6001, &mv("R3", "store", "line1", 10.0))
            .expect("moves");
        assert_eq!(
            b.check(6002, &mv("R3", "store", "line1", 1.0))
                .expect_err("nothing left")
                .field(),
            "quantity"
        );
        b.check(6003, &lot("W9", "widget", 5.0, "line1", &["R3"]))
            .expect("uses R3");
        assert!(matches!(
            b.check(6004, &lot("W10", "widget", 5.0, "line1", &["R3"])),
            Err(LedgerError::Consumed { .. })
        ));
        // store steel 40 -> 40 + 10 - 10 = 40: no crossing of 40; of 45 it stays below (was below).
        let points = vec![
            ("line1".to_owned(), "steel".to_owned(), 65.0),
            ("store".to_owned(), "steel".to_owned(), 40.0),
        ];
        // line1 steel: 60 -> 60 + 10 - 10 = 60 < 65 but was already below: no shortage.
        assert!(b.shortages(&points).is_empty());
        let mut b = l.begin();
        b.check(6000, &mv("R1", "store", "line1", 1.0))
            .expect("moves");
        let s = b.shortages(&points);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].location.as_str(), s[0].quantity), ("store", 39.0));
        // The ledger itself is untouched.
        assert_eq!(l.quantity("R1", "store"), 40.0);
    }

    #[test]
    fn dwell_lead_time_and_genealogy() {
        let l = sample();
        let stays = l.stays("W1");
        assert_eq!(
            stays
                .iter()
                .map(|s| (s.location.as_str(), s.start, s.end))
                .collect::<Vec<_>>(),
            vec![
                ("line1", 3000, Some(4000)),
                ("fg", 4000, Some(5000)),
                ("shipping", 5000, None)
            ]
        );
        let d = l.dwell(Some("line1"), 0, 10_000);
        // Stays at line1 that ended: R2 2000..3000 (consumed), W1 3000..4000; R1 still there.
        assert_eq!(d[0].stays, 2);
        assert_eq!(d[0].mean_s, Some(1.0));
        assert_eq!(d[0].open, 1);
        let store = &l.dwell(Some("store"), 0, 10_000)[0];
        // R2 1000..2000 ended; R1 still has 40 in the store.
        assert_eq!((store.stays, store.open, store.max_s), (1, 1, Some(1.0)));
        assert_eq!(
            l.lead_times("shipping", 0, 10_000),
            vec![("W1".into(), 2.0)]
        );
        let back = l.genealogy("W1", Direction::Backward).expect("known");
        assert_eq!(
            back.iter()
                .map(|n| (n.lot.as_str(), n.depth))
                .collect::<Vec<_>>(),
            vec![("W1", 0), ("R2", 1)]
        );
        let fwd = l.genealogy("R2", Direction::Forward).expect("known");
        assert_eq!(fwd[1].lot, "W1");
        assert_eq!(fwd[1].via.as_deref(), Some("R2"));
        assert_eq!(
            fwd[1].stays.last().map(|s| s.location.as_str()),
            Some("shipping")
        );
        assert!(l.genealogy("R1", Direction::Forward).expect("known").len() == 1);
        assert!(l.genealogy("nope", Direction::Forward).is_none());
    }

    #[test]
    fn as_of_with_checkpoints_and_late_moves_matches_a_full_replay() {
        let mut l = Ledger::default();
        l.apply(-1000, &lot("A", "p", 1e9, "s0", &[])).expect("lot");
        let n = 3 * CHECKPOINT_EVERY + 17;
        for i in 0..n {
            // Every 7th move arrives late (stamped 50 moves back).
            let ts = if i % 7 == 3 {
                i as i64 * 10 - 497
            } else {
                i as i64 * 10 + 5
            };
            let (f, t) = (format!("s{}", i % 5), format!("s{}", (i + 1) % 5));
            l.apply(ts, &mv("A", &f, &t, 1.0)).expect("move");
            if i % 1000 == 999 {
                l.settle();
            }
        }
        l.settle();
        assert_eq!(l.checkpoints.len(), l.log.len() / CHECKPOINT_EVERY);
        for at in [0, 7_777, 40_001, 100_000, 200_000] {
            let mut naive: HashMap<String, f64> = HashMap::new();
            for s in l.log.iter().filter(|s| s.ts <= at) {
                if let Some(f) = s.from {
                    *naive.entry(l.locations.name(f).into()).or_default() -= s.qty;
                }
                if let Some(t) = s.to {
                    *naive.entry(l.locations.name(t).into()).or_default() += s.qty;
                }
            }
            let rows = l.inventory(Some(at), None, None);
            assert_eq!(
                rows.len(),
                naive.values().filter(|q| q.abs() > 1e-6).count()
            );
            for r in rows {
                assert_eq!(r.quantity, naive[&r.location], "at {at} {}", r.location);
            }
        }
    }

    #[test]
    fn replay_rebuilds_the_same_state_and_skips_broken_records() {
        let rec_lot = |event, ts, lot: &str, inputs: Vec<String>| LotRecord {
            event,
            ts,
            lot: lot.into(),
            product: "p".into(),
            unit: "pcs".into(),
            quantity: 10.0,
            location: "a".into(),
            inputs,
        };
        let rec_mv = |event, ts, lot: &str, q| MoveRecord {
            event,
            ts,
            lot: lot.into(),
            from: "a".into(),
            to: "b".into(),
            quantity: q,
        };
        let (l, skipped) = Ledger::replay(
            vec![
                rec_lot(1, 10, "X", vec![]),
                rec_lot(4, 40, "Y", vec!["X".into()]),
            ],
            vec![
                rec_mv(2, 20, "X", 4.0),
                rec_mv(3, 30, "X", 99.0),
                rec_mv(5, 50, "Z", 1.0),
            ],
        );
        assert_eq!(skipped, 2);
        let x = l.lot("X").expect("X");
        assert_eq!(x.consumed_by.as_deref(), Some("Y"));
        assert!(x.positions.is_empty());
        assert_eq!(qty(&l.inventory(Some(35), None, None), "b", "p"), 4.0);
        assert_eq!(qty(&l.inventory(None, None, None), "a", "p"), 10.0);
    }
}
