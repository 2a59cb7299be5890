//! The server's `matches` and `dead_letters` tables, kept incrementally: an epoch costs its
//! own records (and the chunks its retractions touch), not the whole history. Rebuilding
//! them from every record each epoch made a run with the server 20× slower than one
//! without at 1M matches.
//!
//! Each table is a list of immutable Arrow batches (chunks) in arrival order, so a published
//! snapshot shares them with the next one. An epoch's new rows become a new chunk; then the
//! last two chunks are merged while the newer holds at least half as many rows as the older
//! (so there are O(log n) chunks below [`MAX_CHUNK`] rows, and a row is copied O(log n)
//! times in all). A retraction filters its record out of the chunk holding it.

use std::borrow::Borrow;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use nashflow_schemas::arrow_io::{dead_letters_batch, matches_batch};
use nashflow_schemas::{
    Kept, Layout, Ledger, Match, Outcome, RecordError, SharedBatch, SharedMatch,
};

/// Rows above which chunks are no longer merged: a retraction re-filters at most this many.
pub const MAX_CHUNK: usize = 1 << 16;

/// One table of a snapshot: its rows in batches (shared buffers: cloning copies no rows).
#[derive(Clone, Debug)]
pub struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    pub fn of(batch: RecordBatch) -> Table {
        Table {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// A chunk's rows and a key per row (`()` where rows are never removed).
struct Chunk<K> {
    batch: RecordBatch,
    keys: Vec<K>,
}

struct Chunks<K> {
    schema: SchemaRef,
    chunks: Vec<Chunk<K>>,
}

impl<K> Chunks<K> {
    fn new(schema: SchemaRef) -> Self {
        Chunks {
            schema,
            chunks: Vec::new(),
        }
    }

    /// Appends rows (`keys` one per row) as the last chunk, then merges the tail.
    fn push(&mut self, batch: RecordBatch, keys: Vec<K>) {
        debug_assert_eq!(batch.num_rows(), keys.len());
        if keys.is_empty() {
            return;
        }
        self.chunks.push(Chunk { batch, keys });
        while let [.., older, newer] = self.chunks.as_slice() {
            let (o, n) = (older.keys.len(), newer.keys.len());
            if 2 * n < o || o + n > MAX_CHUNK {
                break;
            }
            let newer = self.chunks.pop().expect("two chunks");
            let older = self.chunks.last_mut().expect("two chunks");
            older.batch = concat_batches(&self.schema, [&older.batch, &newer.batch])
                .expect("chunks share the schema");
            older.keys.extend(newer.keys);
        }
    }

    fn table(&self) -> Table {
        Table {
            schema: self.schema.clone(),
            batches: self.chunks.iter().map(|c| c.batch.clone()).collect(),
        }
    }
}

/// A live record (the engine's, shared) and its arrival number among the records inserted.
struct Numbered {
    n: u64,
    record: SharedMatch,
}

impl Borrow<Match> for Numbered {
    fn borrow(&self) -> &Match {
        &self.record
    }
}

impl Kept for Numbered {
    fn release_shared(&mut self) {
        self.record.release_shared();
    }
}

/// The live matches (the ledger over everything ingested, DESIGN §4) as a `matches` table:
/// the live records in arrival order.
pub struct LiveMatches {
    ledger: Ledger<Numbered>,
    /// Arrival number of the next inserted record.
    next: u64,
    /// Keyed by arrival number (ascending within a chunk and from chunk to chunk).
    table: Chunks<u64>,
}

impl LiveMatches {
    pub fn new(layout: Layout) -> LiveMatches {
        LiveMatches {
            ledger: Ledger::holding(layout),
            next: 0,
            table: Chunks::new(matches_batch(std::iter::empty()).schema()),
        }
    }

    /// Applies an epoch's records in arrival order (held shared, not copied).
    pub fn apply(&mut self, records: &SharedBatch) {
        let first = self.next;
        // This epoch's inserted records by arrival number from `first`; `None` once retracted
        // within the epoch.
        let mut fresh: Vec<Option<&Match>> = Vec::new();
        let mut retracted: Vec<u64> = Vec::new();
        for (k, m) in records.iter().enumerate() {
            let n = self.next;
            let record = SharedMatch::at(records, k);
            match self.ledger.apply(Numbered { n, record }) {
                Outcome::Inserted => {
                    fresh.push(Some(m));
                    self.next += 1;
                }
                Outcome::Retracted(old) if old.n >= first => fresh[(old.n - first) as usize] = None,
                Outcome::Retracted(old) => retracted.push(old.n),
                Outcome::Duplicate | Outcome::Rejected(_) => {}
            }
        }
        self.ledger.settle();
        self.remove(retracted);
        let numbers: Vec<u64> = (first..self.next)
            .filter(|&n| fresh[(n - first) as usize].is_some())
            .collect();
        let batch = matches_batch(fresh.into_iter().flatten());
        self.table.push(batch, numbers);
    }

    /// Filters records of earlier epochs (by arrival number) out of their chunks.
    fn remove(&mut self, mut gone: Vec<u64>) {
        if gone.is_empty() {
            return;
        }
        gone.sort_unstable();
        let mut rest = gone.as_slice();
        for chunk in &mut self.table.chunks {
            let last = *chunk.keys.last().expect("chunks are not empty");
            let here = rest.partition_point(|&n| n <= last);
            let (doomed, after) = rest.split_at(here);
            rest = after;
            if doomed.is_empty() {
                continue;
            }
            let keep: BooleanArray = chunk
                .keys
                .iter()
                .map(|n| Some(doomed.binary_search(n).is_err()))
                .collect();
            chunk.batch = filter_record_batch(&chunk.batch, &keep).expect("one flag per row");
            chunk.keys.retain(|n| doomed.binary_search(n).is_err());
        }
        self.table.chunks.retain(|c| !c.keys.is_empty());
    }

    pub fn table(&self) -> Table {
        self.table.table()
    }

    /// The live records in arrival order.
    pub fn live(&self) -> impl Iterator<Item = &Match> {
        self.ledger.live()
    }
}

/// Every rejected record so far as a `dead_letters` table; rows are only ever appended.
pub struct DeadLetters {
    table: Chunks<()>,
    rows: usize,
}

impl Default for DeadLetters {
    fn default() -> Self {
        DeadLetters {
            table: Chunks::new(dead_letters_batch(&[]).schema()),
            rows: 0,
        }
    }
}

impl DeadLetters {
    /// Appends rejected records, in the order they were rejected.
    pub fn extend(&mut self, new: &[RecordError]) {
        self.rows += new.len();
        self.table
            .push(dead_letters_batch(new), vec![(); new.len()]);
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn table(&self) -> Table {
        self.table.table()
    }
}

#[cfg(test)]
mod tests {
    use arrow::compute::concat_batches;
    use nashflow_kernels::rng::SplitMix64;
    use nashflow_schemas::arrow_io::{dead_letters_batch, matches_batch};
    use nashflow_schemas::{Layout, Ledger, Match, RecordError, SharedBatch};
    use std::sync::Arc;

    use super::{DeadLetters, LiveMatches, Table, MAX_CHUNK};

    fn rows(t: &Table) -> arrow::array::RecordBatch {
        concat_batches(&t.schema, &t.batches).unwrap()
    }

    /// Epochs of new matches, identical duplicates, conflicts, retractions of this epoch's
    /// and earlier epochs' records, and re-insertions of retracted ids: after every epoch the
    /// chunked table holds exactly the rows rebuilt from a batch ledger over everything.
    #[test]
    fn live_matches_equal_a_rebuild_from_the_ledger_after_every_epoch() {
        for layout in [Layout::Match, Layout::Perspective] {
            churn(layout);
        }
    }

    /// In perspective layout a key is (match_id, policy_i, policy_j): the same id from the
    /// other seat is another record.
    fn churn(layout: Layout) {
        let mut r = SplitMix64::new(11);
        let mut live = LiveMatches::new(layout);
        let mut ledger = Ledger::new(layout);
        let mut seen: Vec<Match> = Vec::new();
        let mut next_id = 0;
        for epoch in 0..300 {
            let size = [0, 1, 7, 40, 300][r.below(5)];
            let mut batch: Vec<Match> = Vec::new();
            for _ in 0..size {
                let pick = r.below(10);
                let m = if pick < 6 || seen.is_empty() {
                    next_id += 1;
                    let (a, b) = if r.below(2) == 0 {
                        ("a", "b")
                    } else {
                        ("b", "a")
                    };
                    let id = format!("m{}", next_id / 2);
                    Match::new(id, "g", a, b, r.next_f64(), 0.5)
                } else {
                    let old = &seen[r.below(seen.len())];
                    match pick {
                        6 => old.clone(),
                        7 => Match {
                            payoff_i: old.payoff_i + 1.0,
                            ..old.clone()
                        },
                        _ => Match {
                            retract: true,
                            ..old.clone()
                        },
                    }
                };
                if !m.retract {
                    seen.push(m.clone());
                }
                batch.push(m);
            }
            let shared: SharedBatch = Arc::new(batch);
            live.apply(&shared);
            for m in shared.iter() {
                ledger.apply(m.clone());
            }
            let t = live.table();
            assert_eq!(
                rows(&t),
                matches_batch(ledger.live()),
                "{layout:?} epoch {epoch}"
            );
            assert!(t
                .batches
                .iter()
                .all(|b| b.num_rows() > 0 && b.num_rows() <= MAX_CHUNK));
            assert!(t.batches.len() <= 2 + 2 * (t.num_rows().max(1).ilog2() as usize));
            assert!(live.live().eq(ledger.live()));
        }
        assert!(ledger.len() > 800, "{}", ledger.len());
    }

    /// A long history stays in few chunks, none above the cap.
    #[test]
    fn chunks_stay_few_and_bounded() {
        let mut live = LiveMatches::new(Layout::Match);
        for e in 0..400 {
            let batch: Vec<Match> = (0..1000)
                .map(|k| Match::new(format!("{e}-{k}"), "g", "a", "b", 1.0, 0.0))
                .collect();
            live.apply(&Arc::new(batch));
        }
        let t = live.table();
        assert_eq!(t.num_rows(), 400_000);
        assert!(t.batches.iter().all(|b| b.num_rows() <= MAX_CHUNK));
        let small = t
            .batches
            .iter()
            .filter(|b| b.num_rows() < MAX_CHUNK / 2)
            .count();
        assert!(small <= 12, "{} chunks, {small} small", t.batches.len());
    }

    #[test]
    fn dead_letters_append_in_order() {
        let mut dead = DeadLetters::default();
        let mut all = Vec::new();
        for k in 0..50u64 {
            let new: Vec<RecordError> = (0..k % 7)
                .map(|j| RecordError {
                    source_name: format!("s{k}"),
                    row: j,
                    field: (j % 2 == 0).then(|| "payoff_i".to_string()),
                    reason: "bad".into(),
                    raw: "{}".into(),
                })
                .collect();
            dead.extend(&new);
            all.extend(new);
            assert_eq!(dead.len(), all.len());
            assert_eq!(rows(&dead.table()), dead_letters_batch(&all));
        }
    }
}
