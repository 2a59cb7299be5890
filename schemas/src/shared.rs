//! Records shared where the source left them: an epoch's records stay in the batch the source
//! decoded them into, and whatever keeps one (the engine's ledger, the live `matches` table,
//! the `--out` and `--state` ledgers) holds the batch and the record's place in it. Keeping a
//! record copies nothing and allocates nothing per record; a batch is freed once none of its
//! records is held (so a retracted, duplicate or rejected record's memory goes with the last
//! live record of its batch, or sooner: see [`Kept::release_shared`]).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::{Kept, Match};

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

impl Kept for SharedMatch {
    /// Copies the record out of its batch once at most half the batch's records are still
    /// kept anywhere (each holder's handle counts), so that the memory a batch keeps is at
    /// most twice its kept records' per holder.
    fn release_shared(&mut self) {
        if Arc::strong_count(&self.batch) * 2 <= self.batch.len() {
            *self = SharedMatch::new((**self).clone());
        }
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
    use crate::{Layout, Ledger, Outcome};

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

    /// A ledger keeps a batch whole while most of it is kept, and copies its few records out
    /// of a batch that is mostly duplicates or retractions, so the batch can go.
    #[test]
    fn a_ledger_lets_sparse_batches_go() {
        let fresh = |id: &str| Match::new(id, "g", "x", "y", 1.0, 0.0);
        let first: SharedBatch = Arc::new((0..40).map(|k| fresh(&format!("m{k}"))).collect());
        let mut ledger: Ledger<SharedMatch> = Ledger::holding(Layout::Match);
        for m in SharedMatch::all(&first) {
            assert_eq!(ledger.apply(m), Outcome::Inserted);
        }
        ledger.settle();
        let kept_whole = Arc::downgrade(&first);
        drop(first);
        assert!(
            kept_whole.upgrade().is_some(),
            "a batch all kept stays shared"
        );

        // One new record among 39 duplicates: it is copied out, the batch goes.
        let mut second: Vec<Match> = (0..39).map(|k| fresh(&format!("m{k}"))).collect();
        second.push(fresh("new"));
        let second: SharedBatch = Arc::new(second);
        for m in SharedMatch::all(&second) {
            ledger.apply(m);
        }
        ledger.settle();
        let sparse = Arc::downgrade(&second);
        drop(second);
        assert!(sparse.upgrade().is_none(), "a sparse batch is let go");

        // Retracting most of the first batch: compaction copies the rest out of it.
        let retractions: SharedBatch = Arc::new(
            (0..36)
                .map(|k| {
                    let mut m = fresh(&format!("m{k}"));
                    m.retract = true;
                    m
                })
                .collect(),
        );
        for m in SharedMatch::all(&retractions) {
            assert!(matches!(ledger.apply(m), Outcome::Retracted(_)));
        }
        ledger.settle();
        drop(retractions);
        assert!(kept_whole.upgrade().is_none(), "compaction lets it go");
        let mut live: Vec<&str> = ledger.live().map(|m| m.match_id.as_str()).collect();
        live.sort_unstable();
        assert_eq!(live, ["m36", "m37", "m38", "m39", "new"]);
    }
}
