//! One worker's share of the ingest: its keys' ledger (dedupe, conflicts, retractions;
//! DESIGN §4) and the epoch's contributions summed per cell before they enter differential.
//!
//! Records are sharded by a hash of `match_id` (every key of a match, including both seat
//! rows in perspective layout, shares it), and a shard applies its records in arrival order,
//! so the union of the shards agrees with the batch [`Ledger`] on every prefix. Summing per
//! (game, row, column) within the epoch means the dataflow sees one update per changed cell
//! and epoch instead of one per match; names are interned ([`Interner`], shared by a run's
//! workers) so the per-record work hashes small integers and the dataflow carries them.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use foldhash::fast::{FixedState, RandomState};
use nashflow_kernels::bootstrap::poisson_weights;
use nashflow_kernels::stats::CellStats;
use nashflow_schemas::{Kept, Layout, Ledger, Match, Outcome, SharedBatch, SharedMatch};

use crate::diffs::{CellDiff, ReplicateDiff};
use crate::elo::EloChanges;
use crate::observe::{bound_samples, observations};

/// A cell as dataflow data: (game, (row policy, column policy)) as [`Interner`] ids.
pub type CellKey = (u32, (u32, u32));
/// One causal-bound sample as dataflow data: (row policy, column policy, stratum, payoff
/// bits, score in half points, propensity bits).
pub type BoundValue = (String, String, Option<String>, u64, u8, Option<u64>);

/// A record rejected by the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub seq: u64,
    pub reason: String,
    pub record: Match,
}

/// The worker (of `peers`) that owns `m`'s key. Deterministic across workers and runs.
pub fn owner(m: &Match, peers: usize) -> usize {
    if peers == 1 {
        return 0;
    }
    (FixedState::with_seed(0).hash_one(m.match_id.as_str()) % peers as u64) as usize
}

/// What a shard hands the dataflow after an epoch.
#[derive(Default)]
pub struct Updates {
    pub cells: Vec<(CellKey, CellDiff)>,
    pub replicates: Vec<(CellKey, ReplicateDiff)>,
    /// ((game id, sample), ±1) when bounds are on. Keyed by the game's id, as cells are, so
    /// that a game's samples reach the worker that holds its cells.
    pub bounds: Vec<((u32, BoundValue), isize)>,
    /// Per game id, the epoch's Elo changes: each live record's result, keyed by its
    /// arrival number, so that the game's worker applies them in arrival order (Elo is
    /// order-dependent).
    pub results: Vec<(u32, EloChanges)>,
    pub dead: Vec<DeadLetter>,
}

/// Game and policy names as small integers, shared by every worker of a run so that an id
/// means the same name on each (the dataflow exchanges cells by id). Ids are never reused.
#[derive(Default)]
pub struct Interner {
    inner: RwLock<Ids>,
}

/// Each name's id, and each id's name.
type Ids = (HashMap<String, u32, RandomState>, Vec<Arc<str>>);

impl Interner {
    pub fn id(&self, name: &str) -> u32 {
        if let Some(&id) = self.inner.read().expect("interner lock").0.get(name) {
            return id;
        }
        let mut inner = self.inner.write().expect("interner lock");
        if let Some(&id) = inner.0.get(name) {
            return id;
        }
        let id = inner.1.len() as u32;
        inner.0.insert(name.to_string(), id);
        inner.1.push(Arc::from(name));
        id
    }

    /// The name of an id this interner gave out.
    pub fn name(&self, id: u32) -> Arc<str> {
        self.inner.read().expect("interner lock").1[id as usize].clone()
    }
}

/// A shard's own copy of the ids it has used: lookups without the shared lock.
struct Names {
    shared: Arc<Interner>,
    local: HashMap<String, u32, RandomState>,
    /// The last game looked up and its id (`None` before the first): a stream's records
    /// mostly share one, and comparing the name is cheaper than hashing it. The buffer is
    /// reused, so a stream that alternates games costs a compare, not an allocation.
    last_game: (String, Option<u32>),
}

impl Names {
    fn game(&mut self, name: &str) -> u32 {
        match self.last_game {
            (ref last, Some(id)) if last == name => id,
            _ => {
                let id = self.id(name);
                self.last_game.0.clear();
                self.last_game.0.push_str(name);
                self.last_game.1 = Some(id);
                id
            }
        }
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.local.get(name) {
            return id;
        }
        let id = self.shared.id(name);
        self.local.insert(name.to_string(), id);
        id
    }
}

/// A record as the ledger holds it: shared with the epoch's batch (applying it copies
/// nothing), with its arrival number, which names its Elo result when it is retracted.
struct Held {
    seq: u64,
    record: SharedMatch,
}

impl Borrow<Match> for Held {
    fn borrow(&self) -> &Match {
        &self.record
    }
}

impl Kept for Held {
    fn release_shared(&mut self) {
        self.record.release_shared();
    }
}

pub struct Shard {
    layout: Layout,
    replicates: u32,
    seed: u64,
    bounds: bool,
    ledger: Ledger<Held>,
    names: Names,
    /// The epoch's per-cell sums, in the order their cells were first touched, and each
    /// cell's place among them: a small map, which stays in the caches better than one
    /// holding the wide sums themselves, and sums written one after another.
    cell_place: HashMap<CellKey, u32, RandomState>,
    cell_sums: Vec<(CellKey, CellStats)>,
    replicate_cells: HashMap<CellKey, Vec<CellStats>, RandomState>,
    /// The epoch's Elo changes per game, and each game's place in it: a stream's records
    /// mostly share one game, so the last place is tried first.
    elo: Vec<(u32, EloChanges)>,
    elo_place: HashMap<u32, usize, RandomState>,
    pending: Updates,
}

impl Shard {
    /// `replicates` streaming-bootstrap replicates seeded by `seed` (0 = off); `bounds`
    /// collects causal-bound samples; `names` is the run's interner.
    pub fn new(
        layout: Layout,
        replicates: u32,
        seed: u64,
        bounds: bool,
        names: Arc<Interner>,
    ) -> Shard {
        Shard {
            layout,
            replicates,
            seed,
            bounds,
            ledger: Ledger::holding(layout),
            names: Names {
                shared: names,
                local: HashMap::default(),
                last_game: (String::new(), None),
            },
            cell_place: HashMap::default(),
            cell_sums: Vec::new(),
            replicate_cells: HashMap::default(),
            elo: Vec::new(),
            elo_place: HashMap::default(),
            pending: Updates::default(),
        }
    }

    /// Starts loading what applying `m` will read first (its ledger bucket): call it a few
    /// records ahead. A hint only.
    pub fn prefetch(&self, m: &Match) {
        self.ledger.prefetch(m);
    }

    /// Applies record `index` of `batch` as record `seq` (the shard must own it; records in
    /// arrival order).
    pub fn apply(&mut self, seq: u64, batch: &SharedBatch, index: usize) {
        let m = &batch[index];
        let held = Held {
            seq,
            record: SharedMatch::at(batch, index),
        };
        match self.ledger.apply(held) {
            Outcome::Inserted => self.add(seq, m, 1),
            Outcome::Retracted(old) => self.add(old.seq, &old.record, -1),
            Outcome::Duplicate => {}
            Outcome::Rejected(reason) => self.pending.dead.push(DeadLetter {
                seq,
                reason,
                record: m.clone(),
            }),
        }
    }

    /// Adds (`sign` = 1) or cancels (−1) the contributions of live record `seq`.
    fn add(&mut self, seq: u64, m: &Match, sign: i64) {
        let g = self.names.game(&m.game);
        let i = self.names.id(&m.policy_i) as usize;
        let j = self.names.id(&m.policy_j) as usize;
        let weights =
            (self.replicates > 0).then(|| poisson_weights(self.seed, &m.match_id, self.replicates));
        let obs = observations(m, self.layout, i, j);
        // Elo counts a match once, from seat i (as the batch grouping does): in perspective
        // layout only the row with policy_i < policy_j, whose first observation is seat i's.
        if i != j && (self.layout == Layout::Match || m.policy_i < m.policy_j) {
            let score2 = (obs[0].score * 2.0) as u8;
            let changes = match self.elo.last_mut() {
                Some((last, changes)) if *last == g => changes,
                _ => {
                    let next = self.elo.len();
                    let place = *self.elo_place.entry(g).or_insert(next);
                    if place == next {
                        self.elo.push((g, EloChanges::default()));
                    }
                    &mut self.elo[place].1
                }
            };
            if sign > 0 {
                changes.added.push((seq, i as u32, j as u32, score2));
            } else {
                changes.cancelled.push(seq);
            }
        }
        for o in obs {
            let key: CellKey = (g, (o.row as u32, o.col as u32));
            let c = CellStats::of(&o);
            let sums = &mut self.cell_sums;
            let place = *self.cell_place.entry(key).or_insert_with(|| {
                sums.push((key, CellStats::default()));
                (sums.len() - 1) as u32
            });
            sums[place as usize].1.plus(&c.scaled(sign));
            if let Some(weights) = &weights {
                let cell = self
                    .replicate_cells
                    .entry(key)
                    .or_insert_with(|| vec![CellStats::default(); weights.len()]);
                for (acc, w) in cell.iter_mut().zip(weights) {
                    if *w > 0 {
                        acc.plus(&c.scaled(sign * *w as i64));
                    }
                }
            }
        }
        if self.bounds {
            for ((a, b), s) in bound_samples(m, self.layout) {
                let v: BoundValue = (
                    a,
                    b,
                    s.stratum,
                    s.payoff.to_bits(),
                    (s.score * 2.0) as u8,
                    s.propensity.map(f64::to_bits),
                );
                self.pending.bounds.push(((g, v), sign as isize));
            }
        }
    }

    /// The epoch's updates (non-zero cell sums), leaving the shard ready for the next epoch.
    pub fn drain(&mut self) -> Updates {
        self.ledger.settle();
        let mut out = std::mem::take(&mut self.pending);
        // Sized up front: a filtered iterator cannot say how much it yields, so collecting
        // would grow the vector by doubling, copying its wide entries each time.
        out.cells = Vec::with_capacity(self.cell_sums.len());
        out.cells.extend(
            self.cell_sums
                .drain(..)
                .filter(|(_, c)| !c.is_zero())
                .map(|(cell, c)| (cell, CellDiff(c))),
        );
        self.cell_place.clear();
        out.results = std::mem::take(&mut self.elo);
        self.elo_place.clear();
        // A record inserted and retracted within the epoch changes no game's Elo sequence:
        // both go, so the game is not re-analysed for nothing (as its cells are not).
        for (_, changes) in &mut out.results {
            changes.cancel_within();
        }
        out.results
            .retain(|(_, c)| !c.added.is_empty() || !c.cancelled.is_empty());
        out.replicates = Vec::with_capacity(self.replicate_cells.len());
        out.replicates.extend(
            self.replicate_cells
                .drain()
                .filter(|(_, c)| !c.iter().all(CellStats::is_zero))
                .map(|(cell, c)| (cell, ReplicateDiff(c))),
        );
        out
    }

    /// Records the shard's ledger holds (live, or retracted awaiting reclamation).
    pub fn held(&self) -> usize {
        self.ledger.held()
    }
}
