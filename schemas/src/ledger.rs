//! Batch dedupe and retraction (DESIGN §4), applied in arrival order: an identical duplicate
//! is ignored; a different record with a live id is a conflict (the first stays); a
//! retraction cancels the live record with its id. The streaming engine keeps one ledger per
//! worker (its share of the keys), so it agrees with this on every prefix.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::error::RecordError;
use crate::record::{Layout, Match};

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<R = Box<Match>> {
    Inserted,
    Duplicate,
    /// The live record the retraction cancelled.
    Retracted(R),
    /// Rejected: goes to the dead letters.
    Rejected(String),
}

/// Slots freed by retractions are reclaimed once they outnumber the live records by this
/// margin, so a stream with a fixed live size holds a bounded number of records.
const SLACK: usize = 16;

/// The ledger holds each live record as an `R`: a `Box<Match>` by default, or a shared
/// `Arc<Match>` where the caller keeps the record too (the engine), so applying it copies
/// nothing.
#[derive(Debug)]
pub struct Ledger<R = Box<Match>> {
    layout: Layout,
    live: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Records in arrival order; `None` where one was retracted (until compaction).
    slots: Vec<Option<R>>,
}

impl Ledger {
    pub fn new(layout: Layout) -> Self {
        Ledger::holding(layout)
    }
}

impl<R: Borrow<Match>> Ledger<R> {
    /// An empty ledger holding its records as `R`.
    pub fn holding(layout: Layout) -> Self {
        Ledger {
            layout,
            live: HashMap::default(),
            slots: Vec::new(),
        }
    }

    pub fn apply(&mut self, record: impl Into<R>) -> Outcome<R> {
        let record: R = record.into();
        let m: &Match = record.borrow();
        let key = m.key(self.layout);
        let retract = m.retract;
        // One hash and probe per record: the entry decides every case.
        match self.live.entry(key) {
            Entry::Occupied(live) if retract => {
                let slot = live.remove();
                let old = self.slots[slot].take().expect("a live key has its record");
                self.compact();
                Outcome::Retracted(old)
            }
            Entry::Vacant(_) if retract => Outcome::Rejected(format!(
                "retraction of match_id `{}`, which is not live",
                m.match_id
            )),
            Entry::Occupied(live) => {
                if self.slots[*live.get()]
                    .as_ref()
                    .is_some_and(|old| old.borrow().same_content(m))
                {
                    Outcome::Duplicate
                } else {
                    Outcome::Rejected(format!(
                        "conflict: match_id `{}` was already seen with different content; the first is kept",
                        m.match_id
                    ))
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(self.slots.len());
                self.slots.push(Some(record));
                Outcome::Inserted
            }
        }
    }

    /// Drops retracted slots once they outnumber the live records (amortised O(1) per
    /// retraction); arrival order is kept.
    fn compact(&mut self) {
        if self.slots.len() <= 2 * self.live.len() + SLACK {
            return;
        }
        self.slots.retain(Option::is_some);
        for (k, m) in self.slots.iter().enumerate() {
            let m: &Match = m.as_ref().expect("retained slots are live").borrow();
            *self
                .live
                .get_mut(&m.key(self.layout))
                .expect("a live record has its key") = k;
        }
    }

    /// Applies `m`, turning a rejection into a dead letter for (source, row).
    pub fn apply_or_dead_letter(
        &mut self,
        m: impl Into<R>,
        source: &str,
        row: u64,
    ) -> Result<Outcome<R>, RecordError> {
        let m: R = m.into();
        let raw = serde_json::to_string(m.borrow()).unwrap_or_default();
        match self.apply(m) {
            Outcome::Rejected(reason) => Err(RecordError {
                source_name: source.into(),
                row,
                field: Some("match_id".into()),
                reason,
                raw,
            }),
            ok => Ok(ok),
        }
    }

    /// The live matches in arrival order.
    pub fn live(&self) -> impl Iterator<Item = &Match> {
        self.slots.iter().flatten().map(Borrow::borrow)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Records held, live or awaiting reclamation (the ledger's memory in records).
    pub fn held(&self) -> usize {
        self.slots.len()
    }
}
