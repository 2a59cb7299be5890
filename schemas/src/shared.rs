//! Records shared where the source left them: an epoch's records stay in the batch the source
//! decoded them into, and whatever keeps one (the engine's ledger, the live `matches` table,
//! the `--out` and `--state` ledgers) holds the batch and the record's place in it. Keeping a
//! record copies nothing and allocates nothing per record; a batch is freed once none of its
//! records is held (so a retracted, duplicate or rejected record's memory goes with the last
//! live record of its batch).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::Match;

/// An epoch's records, in arrival order, shared by everything that keeps one of them.
pub type SharedBatch = Arc<Vec<Match>>;

/// One record of a [`SharedBatch`].
#[derive(Clone)]
pub struct SharedMatch {
    batch: SharedBatch,
    index: usize,
}

impl SharedMatch {
    /// Record `index` of `batch` (panics when out of range, as indexing does).
    pub fn at(batch: &SharedBatch, index: usize) -> SharedMatch {
        assert!(
            index < batch.len(),
            "record {index} of a batch of {}",
            batch.len()
        );
        SharedMatch {
            batch: batch.clone(),
            index,
        }
    }

    /// Every record of `batch`, in order.
    pub fn all(batch: &SharedBatch) -> impl Iterator<Item = SharedMatch> + '_ {
        (0..batch.len()).map(|index| SharedMatch::at(batch, index))
    }

    /// A record on its own (a batch of one).
    pub fn new(m: Match) -> SharedMatch {
        SharedMatch::at(&Arc::new(vec![m]), 0)
    }
}

impl Deref for SharedMatch {
    type Target = Match;
    fn deref(&self) -> &Match {
        &self.batch[self.index]
    }
}

impl Borrow<Match> for SharedMatch {
    fn borrow(&self) -> &Match {
        self
    }
}

impl fmt::Debug for SharedMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl PartialEq for SharedMatch {
    fn eq(&self, other: &SharedMatch) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept record reads its batch's record, and keeps the batch alive alone.
    #[test]
    fn a_record_keeps_its_batch() {
        let batch: SharedBatch = Arc::new(vec![
            Match::new("a", "g", "x", "y", 1.0, 0.0),
            Match::new("b", "g", "x", "y", 0.0, 1.0),
        ]);
        let kept: Vec<SharedMatch> = SharedMatch::all(&batch).collect();
        assert_eq!(kept[1].match_id, "b");
        let weak = Arc::downgrade(&batch);
        drop(batch);
        let second = kept[1].clone();
        drop(kept);
        assert_eq!(second.payoff_j, 1.0);
        assert!(weak.upgrade().is_some());
        drop(second);
        assert!(weak.upgrade().is_none());
        assert_eq!(
            SharedMatch::new(Match::new("c", "g", "x", "y", 0.5, 0.5)).match_id,
            "c"
        );
    }
}
