//! Batch dedupe and retraction (DESIGN §4), applied in arrival order: an identical duplicate
//! is ignored; a different record with a live id is a conflict (the first stays); a
//! retraction cancels the live record with its id. The streaming engine must agree with this.

use std::collections::HashMap;

use crate::error::RecordError;
use crate::record::{Layout, Match};

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Inserted,
    Duplicate,
    Retracted,
    /// Rejected: goes to the dead letters.
    Rejected(String),
}

#[derive(Debug, Default)]
pub struct Ledger {
    layout: Layout,
    live: HashMap<String, usize>,
    slots: Vec<Option<Match>>,
}

impl Ledger {
    pub fn new(layout: Layout) -> Self {
        Ledger {
            layout,
            ..Default::default()
        }
    }

    pub fn apply(&mut self, m: Match) -> Outcome {
        let key = m.key(self.layout);
        match (self.live.get(&key).copied(), m.retract) {
            (Some(slot), true) => {
                self.slots[slot] = None;
                self.live.remove(&key);
                Outcome::Retracted
            }
            (None, true) => Outcome::Rejected(format!(
                "retraction of match_id `{}`, which is not live",
                m.match_id
            )),
            (Some(slot), false) => {
                if self.slots[slot]
                    .as_ref()
                    .is_some_and(|old| old.same_content(&m))
                {
                    Outcome::Duplicate
                } else {
                    Outcome::Rejected(format!(
                        "conflict: match_id `{}` was already seen with different content; the first is kept",
                        m.match_id
                    ))
                }
            }
            (None, false) => {
                self.live.insert(key, self.slots.len());
                self.slots.push(Some(m));
                Outcome::Inserted
            }
        }
    }

    /// Applies `m`, turning a rejection into a dead letter for (source, row).
    pub fn apply_or_dead_letter(
        &mut self,
        m: Match,
        source: &str,
        row: u64,
    ) -> Result<Outcome, RecordError> {
        let raw = serde_json::to_string(&m).unwrap_or_default();
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
        self.slots.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
