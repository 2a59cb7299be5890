//! Each game's Elo ratings, kept from its live results (DESIGN §5, "Elo for reference").
//!
//! Sequential Elo is a function of a game's live results in arrival order, and a new
//! record always arrives last: an epoch without retractions applies only its own results,
//! in arrival order, on top of the ratings so far. A retraction cancels a result in the
//! middle, so the ratings are replayed from the last checkpoint before it (one every 4,096
//! results): the cost is the results since then, not the whole history.
//! Each result goes through [`elo_step`], the batch's own update, in the batch's order, so
//! the ratings equal `analyze`'s to the bit.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use nashflow_kernels::ratings::{elo_step, ELO_BASE};
use nashflow_schemas::chunked::Chunked;
use serde::{Deserialize, Serialize};

/// One result as dataflow data: (arrival number of its record, row policy id, column policy
/// id, the row's score in half points: win 2, draw 1, loss 0). Self-play is never one.
pub type EloResult = (u64, u32, u32, u8);

/// A shard's Elo changes of one game in one epoch: one dataflow record per game and epoch
/// rather than one per match.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EloChanges {
    /// New results, in arrival order.
    pub added: Vec<EloResult>,
    /// The arrival numbers of cancelled results (their records were retracted).
    pub cancelled: Vec<u64>,
}

impl EloChanges {
    /// Drops the results both added and cancelled here (added ones are in arrival order).
    pub fn cancel_within(&mut self) {
        let added = &self.added;
        let mut gone: Vec<u64> = self
            .cancelled
            .iter()
            .copied()
            .filter(|seq| added.binary_search_by_key(seq, |r| r.0).is_ok())
            .collect();
        if gone.is_empty() {
            return;
        }
        gone.sort_unstable();
        let kept = |seq: &u64| gone.binary_search(seq).is_err();
        self.cancelled.retain(kept);
        self.added.retain(|r| kept(&r.0));
    }
}

/// Results between replay checkpoints: a retraction replays at most this many results
/// plus those after it.
const CHECKPOINT_EVERY: usize = 4096;

/// Cancelled results are dropped once they outnumber the live ones by this margin.
const SLACK: usize = 16;

/// One held result: its arrival number, the (row, column) positions in the ratings, and
/// the row's score in half points, [`CANCELLED`] once cancelled (until compaction).
#[derive(Clone, Copy)]
struct Entry {
    seq: u64,
    i: u32,
    j: u32,
    score2: u8,
}

const CANCELLED: u8 = u8::MAX;

impl Entry {
    fn is_live(&self) -> bool {
        self.score2 != CANCELLED
    }
}

pub struct EloLog {
    /// Live results between checkpoints: [`CHECKPOINT_EVERY`] (fewer in tests).
    every: usize,
    /// In arrival order; in chunks, so that growing never copies the log.
    results: Chunked<Entry>,
    live: usize,
    /// Each policy id's position in `ratings`.
    position: HashMap<u32, usize, RandomState>,
    ratings: Vec<f64>,
    /// `results[..applied]` are in `ratings`.
    applied: usize,
    /// (arrival number a, the ratings after every live result that arrived before a), in
    /// ascending a: where a replay starts.
    checkpoints: Vec<(u64, Vec<f64>)>,
    /// Live results applied since the last checkpoint.
    since_checkpoint: usize,
    /// This epoch's changes, applied by [`EloLog::ratings`].
    pending: EloChanges,
    /// Replays that started at a checkpoint, and compactions (what the tests must reach).
    replays_from_checkpoint: usize,
    compactions: usize,
}

impl Default for EloLog {
    fn default() -> Self {
        EloLog {
            every: CHECKPOINT_EVERY,
            results: Chunked::default(),
            live: 0,
            position: HashMap::default(),
            ratings: Vec::new(),
            applied: 0,
            checkpoints: Vec::new(),
            since_checkpoint: 0,
            pending: EloChanges::default(),
            replays_from_checkpoint: 0,
            compactions: 0,
        }
    }
}

impl EloLog {
    /// Records changes, applied at the next [`EloLog::ratings`].
    pub fn update(&mut self, changes: &EloChanges) {
        self.pending.added.extend_from_slice(&changes.added);
        self.pending.cancelled.extend_from_slice(&changes.cancelled);
    }

    /// Results held (live, or cancelled awaiting compaction).
    pub fn held(&self) -> usize {
        self.results.len()
    }

    /// The ratings of policies `ids` after every live result, with the changes recorded
    /// since the last call applied; 1500 for a policy without a result.
    pub fn ratings(&mut self, ids: impl IntoIterator<Item = u32>) -> Vec<f64> {
        self.settle();
        ids.into_iter()
            .map(|id| {
                self.position
                    .get(&id)
                    .map_or(ELO_BASE, |&k| self.ratings[k])
            })
            .collect()
    }

    fn settle(&mut self) {
        let EloChanges {
            mut added,
            cancelled,
        } = std::mem::take(&mut self.pending);
        if added.is_empty() && cancelled.is_empty() {
            return;
        }
        // New results first: they arrived after every held one. Each shard's come in
        // arrival order, so only several shards' need sorting.
        if !added.is_sorted_by_key(|r| r.0) {
            added.sort_unstable_by_key(|r| r.0);
        }
        for (seq, i, j, score2) in added {
            debug_assert!(self.results.last().is_none_or(|r| r.seq < seq));
            let (i, j) = (self.position_of(i), self.position_of(j));
            self.results.push(Entry { seq, i, j, score2 });
            self.live += 1;
        }
        // Then cancellations, of held results or of results added just now (a record
        // inserted and retracted within the epoch), which need no replay.
        let mut replay_from: Option<u64> = None;
        for seq in cancelled {
            let k = self.results.partition_point(|e| e.seq < seq);
            if k == self.results.len() || self.results[k].seq != seq {
                debug_assert!(false, "a cancelled result is held");
                continue;
            }
            let e = &mut self.results[k];
            if e.is_live() {
                e.score2 = CANCELLED;
                self.live -= 1;
                if k < self.applied {
                    replay_from = Some(replay_from.map_or(seq, |s| s.min(seq)));
                }
            }
        }
        if let Some(seq) = replay_from {
            self.rewind(seq);
        }
        self.apply_rest();
        if self.results.len() > 2 * self.live + SLACK {
            self.compact();
        }
    }

    fn position_of(&mut self, id: u32) -> u32 {
        let next = self.position.len();
        *self.position.entry(id).or_insert(next) as u32
    }

    /// Back to the last checkpoint that holds no result from `seq` on.
    fn rewind(&mut self, seq: u64) {
        // A checkpoint at a includes every result before a, so it is stale once a > seq.
        while self.checkpoints.last().is_some_and(|(a, _)| *a > seq) {
            self.checkpoints.pop();
        }
        let (from, ratings) = match self.checkpoints.last() {
            Some((a, r)) => {
                self.replays_from_checkpoint += 1;
                (*a, r.clone())
            }
            None => (0, Vec::new()),
        };
        self.ratings = ratings;
        self.applied = self.results.partition_point(|e| e.seq < from);
        self.since_checkpoint = 0;
    }

    fn apply_rest(&mut self) {
        self.ratings.resize(self.position.len(), ELO_BASE);
        for e in self.results.iter_from(self.applied).filter(|e| e.is_live()) {
            if self.since_checkpoint >= self.every {
                self.checkpoints.push((e.seq, self.ratings.clone()));
                self.since_checkpoint = 0;
            }
            let score = f64::from(e.score2) / 2.0;
            elo_step(&mut self.ratings, e.i as usize, e.j as usize, score);
            self.since_checkpoint += 1;
        }
        self.applied = self.results.len();
    }

    /// Drops cancelled results, and the checkpoints fewer than `every` live results after
    /// the one kept before them, so that a fixed live size holds a bounded
    /// log whatever the number of epochs.
    fn compact(&mut self) {
        self.compactions += 1;
        let mut kept: Vec<(u64, Vec<f64>)> = Vec::new();
        let mut live_since = 0usize;
        let mut checkpoints = std::mem::take(&mut self.checkpoints).into_iter().peekable();
        for e in self.results.iter() {
            while let Some(c) = checkpoints.next_if(|(a, _)| *a <= e.seq) {
                if kept.is_empty() || live_since >= self.every {
                    kept.push(c);
                    live_since = 0;
                }
            }
            live_since += usize::from(e.is_live());
        }
        self.checkpoints = kept;
        self.results.retain(Entry::is_live);
        self.applied = self.results.len();
        // Live results after the last checkpoint: where the next one is due.
        let last = self.checkpoints.last().map_or(0, |(a, _)| *a);
        let after = self.results.partition_point(|e| e.seq < last);
        self.since_checkpoint = self.results.len() - after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nashflow_kernels::ratings::elo;
    use nashflow_kernels::rng::SplitMix64;

    /// Against the batch `elo` over the live results after every step of a random history
    /// of additions and cancellations (old and recent), small checkpoint spacing aside: the
    /// log crosses several checkpoints and compactions.
    #[test]
    fn equals_batch_elo_under_additions_and_cancellations() {
        let mut r = SplitMix64::new(3);
        let mut log = EloLog {
            every: 64,
            results: Chunked::with_chunk_bits(6),
            ..EloLog::default()
        };
        // (seq, i, j, score2) of the live results, in arrival order.
        let mut live: Vec<EloResult> = Vec::new();
        let ids = [10u32, 4, 7, 99, 12];
        let mut seq = 0u64;
        for step in 0..60 {
            let adds = r.below(400);
            for _ in 0..adds {
                seq += 1;
                let i = ids[r.below(5)];
                let mut j = ids[r.below(5)];
                if j == i {
                    j = ids[(ids.iter().position(|&x| x == i).unwrap() + 1) % 5];
                }
                let res = (seq, i, j, r.below(3) as u8);
                log.update(&EloChanges {
                    added: vec![res],
                    cancelled: vec![],
                });
                live.push(res);
            }
            // Cancel a few: recent ones, old ones, and one added this very step.
            for _ in 0..r.below(6) {
                if live.is_empty() {
                    break;
                }
                let k = if r.below(2) == 0 {
                    r.below(live.len())
                } else {
                    live.len() - 1 - r.below(live.len().min(10))
                };
                log.update(&EloChanges {
                    added: vec![],
                    cancelled: vec![live.remove(k).0],
                });
            }
            if step % 7 == 3 {
                // Retract most of the history: compaction.
                while live.len() > 50 {
                    let k = r.below(live.len());
                    log.update(&EloChanges {
                        added: vec![],
                        cancelled: vec![live.remove(k).0],
                    });
                }
            }
            let mut names: Vec<u32> = ids.to_vec();
            names.sort_unstable();
            let want = elo(
                names.len(),
                live.iter().map(|&(_, i, j, s)| {
                    let at = |id: u32| names.iter().position(|&x| x == id).unwrap();
                    (at(i), at(j), f64::from(s) / 2.0)
                }),
            );
            let got = log.ratings(names.iter().copied());
            assert_eq!(got, want, "step {step}");
            assert!(log.held() <= 2 * live.len() + SLACK, "step {step}");
        }
        assert!(
            log.replays_from_checkpoint > 10,
            "{}",
            log.replays_from_checkpoint
        );
        assert!(log.compactions > 3, "{}", log.compactions);
    }
}
