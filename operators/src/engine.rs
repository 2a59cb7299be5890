//! The incremental engine (DESIGN §2) on timely + differential dataflow.
//!
//! ```text
//! epoch ──► shards (ledger per key hash; cell sums per epoch) ──► cell updates ──exchange by game──►
//!              └─ dead letters          game's worker: running cells (+ replicates, bound samples)
//!                                                        └─► kernels, once per changed game
//! ```
//!
//! * Dedupe: each worker owns the keys whose `match_id` hash falls to it ([`Shard`]) and
//!   applies their records in arrival order, so the engine agrees with the batch
//!   [`nashflow_schemas::Ledger`] on every prefix.
//! * Cell statistics are the difference type of a differential collection ([`CellDiff`]):
//!   exact fixed-point sums, so a retraction cancels its match exactly. A shard sums its
//!   epoch's contributions per cell first, so the dataflow's work grows with the cells an
//!   epoch touches, not with its matches.
//! * A game's analysis is recomputed only in epochs where its cell table (or its Elo
//!   sequence) changed.
//! * Elo is order-dependent: each live record's result goes to its game's worker keyed by
//!   its arrival number, where the game's [`EloLog`] applies new results on top of the
//!   ratings so far and replays from a checkpoint after a retraction.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use differential_dataflow::difference::{IsZero, Semigroup};
use differential_dataflow::input::Input;
use nashflow_kernels::analysis::{add_bounds, analyze_game_warm, AnalysisConfig, GameAnalysis};
use nashflow_kernels::attribution::Attribution;
use nashflow_kernels::bootstrap::{summarize_hinted, BootstrapConfig};
use nashflow_kernels::bounds::summary::CellAccumulator;
use nashflow_kernels::bounds::{BoundSample, CellSummary};
use nashflow_kernels::lifts::Lifts;
use nashflow_kernels::progress::Silent;
use nashflow_kernels::ratings::ELO_BASE;
use nashflow_kernels::solvers::WarmStart;
use nashflow_kernels::stats::CellStats;
use nashflow_schemas::{Layout, Match, SharedBatch, SharedMatch};
use timely::communication::allocator::Thread;
use timely::communication::Allocator;
use timely::dataflow::operators::{Exchange, Inspect, Probe};
use timely::worker::Worker;
use timely::WorkerConfig;

pub use crate::diffs::{CellDiff, ReplicateDiff};
use crate::elo::{EloChanges, EloLog};
pub use crate::shard::DeadLetter;
use crate::shard::{owner, BoundValue, CellKey, Interner, Shard};
use crate::table::GameTable;
use crate::trigger::{Job, Trigger, TriggerConfig};

/// One game's state after an epoch.
#[derive(Clone, Debug)]
pub struct GameSnapshot {
    pub policies: Vec<String>,
    /// Row-major n×n.
    pub cells: Vec<CellStats>,
    pub analysis: GameAnalysis,
    /// Sequential Elo of each policy over the game's live results in arrival order
    /// (`nashflow_kernels::ratings::elo`, as `analyze` computes it).
    pub elo: Vec<f64>,
    /// Records that fed the game (matches, or seat rows in perspective layout).
    pub records: usize,
}

impl GameSnapshot {
    /// σ in `names`' order (the snapshot orders policies by name); 0 for a policy it has not
    /// seen.
    pub fn sigma_of(&self, names: &[String]) -> Vec<f64> {
        names
            .iter()
            .map(|name| {
                self.policies
                    .iter()
                    .position(|p| p == name)
                    .map_or(0.0, |k| self.analysis.sigma[k])
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub workers: usize,
    pub layout: Layout,
    pub analysis: AnalysisConfig,
    /// The PSRO trigger; `None` emits no jobs.
    pub trigger: Option<TriggerConfig>,
    /// Streaming Poisson bootstrap replicates (0 = off); seeded by `analysis.seed`, intervals
    /// at `analysis.ci_level`. (`analysis.bootstrap`, the batch bootstrap, is not used.)
    pub replicates: u32,
    /// Level 3 cadence: recomputed at epochs divisible by this (≥ 1), and whenever a game's
    /// policy set changed; in between a game keeps its last attribution.
    pub level3_every: u64,
    /// Level 1/2 cadence (lifts and keystones): recomputed at epochs divisible by this (≥ 1),
    /// and whenever a game's policy set changed; in between a game keeps its last lifts.
    pub level2_every: u64,
    /// Number of the first epoch fed (a run restored from a durable state continues the
    /// numbering of the run it resumes; job ids and archives stay unique).
    pub first_epoch: u64,
    /// Trigger state per game to start from (a restored run's saved hysteresis and
    /// cool-down); empty for a fresh run.
    pub triggers: BTreeMap<String, Trigger>,
}

impl EngineConfig {
    /// `workers` workers on `layout` with `analysis`; no trigger, no streaming bootstrap,
    /// Levels 1–3 every epoch, a fresh run (epoch 0, no saved trigger state).
    pub fn new(workers: usize, layout: Layout, analysis: AnalysisConfig) -> EngineConfig {
        EngineConfig {
            workers,
            layout,
            analysis,
            trigger: None,
            replicates: 0,
            level3_every: 1,
            level2_every: 1,
            first_epoch: 0,
            triggers: BTreeMap::new(),
        }
    }
}

/// What a run produced: the final state of every game and the number of epochs. The history
/// (`changes`, `None` = the game vanished; dead letters, jobs, errors and the per-epoch
/// figures) is filled only by [`run`]: a live [`run_stream`] hands each epoch to its
/// callback instead of keeping it, so its memory does not grow with the epochs.
#[derive(Debug, Default)]
pub struct EngineOutput {
    pub state: BTreeMap<String, GameSnapshot>,
    pub changes: Vec<(u64, String, Option<GameSnapshot>)>,
    pub dead_letters: Vec<DeadLetter>,
    /// Best-response jobs in (epoch, game) order.
    pub jobs: Vec<Job>,
    /// Epochs fed in this run (numbered from `EngineConfig::first_epoch`).
    pub epochs: u64,
    /// Wall-clock seconds each epoch took (ingest, dataflow and kernels).
    pub epoch_seconds: Vec<f64>,
    /// CPU seconds each epoch took, on every thread of the process together.
    pub epoch_cpu_seconds: Vec<f64>,
    /// Of the wall-clock seconds, the seconds spent in the per-game kernels (the slowest worker's).
    pub kernel_seconds: Vec<f64>,
    /// Input records held by the dataflow after each epoch (fully retracted histories are
    /// compacted away one epoch later).
    pub held_records: Vec<u64>,
    /// Elo results the games' logs hold after each epoch (live, or cancelled awaiting
    /// compaction).
    pub held_results: Vec<u64>,
    /// (epoch, game, reason) for analyses that failed; such a game keeps its last snapshot.
    pub errors: Vec<(u64, String, String)>,
}

impl EngineOutput {
    /// Every game's snapshot as of `epoch` (inclusive).
    pub fn state_at(&self, epoch: u64) -> BTreeMap<String, GameSnapshot> {
        let mut state = BTreeMap::new();
        let mut changes: Vec<_> = self.changes.iter().filter(|c| c.0 <= epoch).collect();
        changes.sort_by_key(|c| c.0);
        for (_, game, snap) in changes {
            match snap {
                Some(s) => state.insert(game.clone(), s.clone()),
                None => state.remove(game),
            };
        }
        state
    }
}

/// A game's per-replicate cells by (row policy, column policy) ids. Hashed, not ordered:
/// every epoch looks up each changed cell, and a snapshot places them by the positions of
/// the game's [`GameTable`].
type Cells<S> = HashMap<(u32, u32), S, foldhash::fast::RandomState>;
/// Per game id: every update looks its game up, so the hash is the fast one too.
type Games<V> = HashMap<u32, V, foldhash::fast::RandomState>;

/// Adds a change of one cell to a game's running cells, dropping cells (and games) that
/// fall to zero.
fn accumulate<S: Semigroup + IsZero + Clone>(
    games: &mut Games<Cells<S>>,
    game: u32,
    cell: (u32, u32),
    diff: &S,
) {
    let cells = games.entry(game).or_default();
    match cells.get_mut(&cell) {
        Some(stats) => {
            stats.plus_equals(diff);
            if stats.is_zero() {
                cells.remove(&cell);
            }
        }
        None => {
            cells.insert(cell, diff.clone());
        }
    }
    if cells.is_empty() {
        games.remove(&game);
    }
}

/// Marks `game` for re-analysis. A repeat of the last entry is skipped (a game's updates
/// often come in a row); the list is sorted and deduplicated before the kernels run.
fn mark_dirty(dirty: &mut Vec<u32>, game: u32) {
    if dirty.last() != Some(&game) {
        dirty.push(game);
    }
}

/// Per-worker view of the games it owns, kept from each epoch's changes.
/// Games by id: a worker's games are few, and ids come from the run's [`Interner`].
struct GameStore {
    /// Each game's running cells, in matrix order.
    tables: Games<GameTable>,
    /// The epoch's cell changes per game, added to its table together once the dataflow
    /// has delivered them all ([`GameTable::add_all`]). A game's buffer is kept while it
    /// changes every epoch.
    changes: Games<Vec<((u32, u32), CellStats)>>,
    replicates: Games<Cells<ReplicateDiff>>,
    bounds: BoundStore,
    elo: Games<EloLog>,
    dirty: Vec<u32>,
}

/// A cell's causal-bound samples as a multiset: (stratum, payoff bits, score half points,
/// propensity bits) → count.
type SampleCounts = BTreeMap<(Option<String>, u64, u8, Option<u64>), isize>;

/// Per game and cell, the bound samples and their summary. Samples arrive as diffs; a cell's
/// summary is rebuilt only when its samples changed (DESIGN §6 sufficient statistics, kept
/// per cell): from its running sums when no sample carries a propensity (time independent
/// of the cell's history), otherwise from its samples, which the MSM bounds need sorted.
#[derive(Default)]
struct BoundStore {
    samples: HashMap<String, HashMap<(String, String), SampleCounts>>,
    sums: HashMap<String, HashMap<(String, String), CellAccumulator>>,
    changed: HashMap<String, BTreeSet<(String, String)>>,
    summaries: HashMap<String, HashMap<(String, String), CellSummary>>,
}

/// A sample from its dataflow form (payoff bits, score in half points, propensity bits).
fn bound_sample(stratum: &Option<String>, y: u64, s: u8, e: Option<u64>) -> BoundSample {
    BoundSample {
        stratum: stratum.clone(),
        payoff: f64::from_bits(y),
        score: f64::from(s) / 2.0,
        propensity: e.map(f64::from_bits),
    }
}

impl BoundStore {
    fn update(&mut self, game: &str, (a, b, stratum, y, s, e): &BoundValue, diff: isize) {
        let cell = (a.clone(), b.clone());
        self.sums
            .entry(game.to_string())
            .or_default()
            .entry(cell.clone())
            .or_default()
            .add(&bound_sample(stratum, *y, *s, *e), diff as i64);
        let counts = self
            .samples
            .entry(game.to_string())
            .or_default()
            .entry(cell.clone())
            .or_default();
        let key = (stratum.clone(), *y, *s, *e);
        let count = counts.entry(key.clone()).or_default();
        *count += diff;
        if *count == 0 {
            counts.remove(&key);
        }
        self.changed
            .entry(game.to_string())
            .or_default()
            .insert(cell);
    }

    /// `game`'s summaries, with its changed cells rebuilt.
    fn summaries(&mut self, game: &str) -> &HashMap<(String, String), CellSummary> {
        let summaries = self.summaries.entry(game.to_string()).or_default();
        let cells = self.samples.entry(game.to_string()).or_default();
        let sums = self.sums.entry(game.to_string()).or_default();
        for cell in self.changed.remove(game).unwrap_or_default() {
            let summary = sums.get(&cell).and_then(|acc| {
                acc.summary().or_else(|| {
                    let counts = cells.get(&cell)?;
                    // Sized up front: collecting the flattened copies grew it by doubling.
                    let mut samples =
                        Vec::with_capacity(counts.values().map(|&c| c.max(0) as usize).sum());
                    for ((stratum, y, s, e), &count) in counts {
                        let sample = bound_sample(stratum, *y, *s, *e);
                        samples.extend(std::iter::repeat_n(sample, count.max(0) as usize));
                    }
                    CellSummary::of(&samples)
                })
            });
            match summary {
                Some(summary) => {
                    summaries.insert(cell, summary);
                }
                None => {
                    summaries.remove(&cell);
                    cells.remove(&cell);
                    sums.remove(&cell);
                }
            }
        }
        summaries
    }
}

/// Which of a game's cadenced analyses run this epoch.
#[derive(Clone, Copy)]
struct Due {
    /// Level 1/2.
    lifts: bool,
    level3: bool,
}

fn snapshot(
    table: &GameTable,
    replicates: Option<&Cells<ReplicateDiff>>,
    bounds: Option<&HashMap<(String, String), CellSummary>>,
    cfg: &EngineConfig,
    due: Due,
    warm: &mut WarmStart,
) -> Result<GameSnapshot, nashflow_kernels::KernelError> {
    let policies = table.names().to_vec();
    let n = policies.len();
    let cells = table.cells().to_vec();
    let position = |id: &u32| {
        table
            .position_of(*id)
            .expect("a replicate cell's policies have cells")
    };
    let observations: i64 = cells.iter().map(|c| c.n).sum();
    let records = match cfg.layout {
        Layout::Match => observations / 2,
        Layout::Perspective => observations,
    } as usize;
    // The engine has no per-match units: the streaming bootstrap is separate (issue #3).
    let batch_bootstrap_off = AnalysisConfig {
        bootstrap: 0,
        lifts: cfg.analysis.lifts && due.lifts,
        level3: cfg.analysis.level3 && due.level3,
        ..cfg.analysis.clone()
    };
    let mut analysis = analyze_game_warm(n, &cells, &[], &batch_bootstrap_off, &mut Silent, warm)?;
    if cfg.replicates > 0 {
        let mut tables = vec![vec![CellStats::default(); n * n]; cfg.replicates as usize];
        for ((a, b), per_replicate) in replicates.into_iter().flatten() {
            let cell = position(a) * n + position(b);
            for (table, c) in tables.iter_mut().zip(&per_replicate.0) {
                table[cell] = *c;
            }
        }
        let bc = BootstrapConfig {
            replicates: cfg.replicates as usize,
            seed: cfg.analysis.seed,
            level: cfg.analysis.ci_level,
        };
        if warm.replicates.is_empty() {
            // First epoch: replicates are perturbations of the point estimate.
            warm.replicates = vec![warm.sigma.clone(); cfg.replicates as usize];
        }
        analysis.bootstrap = Some(summarize_hinted(
            n,
            tables.into_iter(),
            cfg.analysis.missing,
            &cfg.analysis.solver,
            &bc,
            &mut Silent,
            &mut warm.replicates,
        )?);
    }
    if let Some(bc) = &cfg.analysis.bounds {
        // Row-major over `policies`; `None` where no match fed the cell. Lent, not copied:
        // with propensities a summary holds every sample.
        let summaries: Vec<Option<&CellSummary>> = (0..n * n)
            .map(|k| {
                let cell = (policies[k / n].clone(), policies[k % n].clone());
                bounds.and_then(|b| b.get(&cell))
            })
            .collect();
        add_bounds(&mut analysis, &policies, &summaries, bc)?;
    }
    Ok(GameSnapshot {
        policies,
        cells,
        analysis,
        // The game's Elo log fills it in.
        elo: Vec::new(),
        records,
    })
}

/// What the caller sees after each epoch: a consistent view of every game as of that epoch
/// (the in-memory snapshot a serving layer reads), and what happened in it.
#[derive(Clone)]
pub struct EpochReport<'a> {
    pub epoch: u64,
    /// This epoch's input records in arrival order: the engine's own (shared) batch, so that
    /// a caller keeping them needs no copy (see [`SharedMatch`]).
    pub input: &'a SharedBatch,
    /// Records ingested so far.
    pub records: u64,
    pub state: &'a BTreeMap<String, GameSnapshot>,
    /// Games whose snapshot changed in this epoch (`None`: the game vanished).
    pub changed: Vec<(&'a str, Option<&'a GameSnapshot>)>,
    pub jobs: &'a [Job],
    pub errors: &'a [(u64, String, String)],
    /// The records the ledger rejected in this epoch (conflicts, bad retractions), by
    /// arrival. A record is rejected in the epoch it arrives in.
    pub dead_letters: &'a [DeadLetter],
    /// Each game's PSRO trigger state after this epoch (what a durable run saves).
    pub triggers: &'a BTreeMap<String, Trigger>,
    /// Wall-clock seconds the epoch took (ingest, dataflow and kernels).
    pub seconds: f64,
    /// Of those, the seconds the per-game kernels took (the slowest worker's).
    pub kernel_seconds: f64,
    /// CPU seconds the epoch took, on every thread of the process together.
    pub cpu_seconds: f64,
    /// Input records the workers' ledgers hold after the epoch (live, or retracted awaiting
    /// reclamation).
    pub held_records: u64,
    /// Elo results the games' logs hold after the epoch.
    pub held_results: u64,
}

impl<'a> EpochReport<'a> {
    /// This epoch's input records, in arrival order.
    pub fn input_records(&self) -> impl Iterator<Item = &'a Match> + Clone + 'a {
        self.input.iter()
    }

    /// This epoch's input records, each shared with the engine (keeping one copies nothing).
    pub fn shared_records(&self) -> impl Iterator<Item = SharedMatch> + 'a {
        SharedMatch::all(self.input)
    }
}

/// An epoch's records, shared by the workers, and the first one's arrival number (the
/// others follow in order).
#[derive(Clone)]
struct Batch {
    first_seq: u64,
    records: SharedBatch,
}

/// Where a run's timely workers are: one on the engine's own thread, with what applies an
/// epoch to it; or several on their own threads, each fed every batch and saying when it
/// is done.
enum Workers<F> {
    Here(Worker, F),
    Threads(
        timely::communication::WorkerGuards<()>,
        Vec<mpsc::Sender<Option<Batch>>>,
        mpsc::Receiver<()>,
    ),
}

/// The workers' dead letters since the last call, in arrival order.
fn take_dead(dead: &Mutex<Vec<DeadLetter>>) -> Vec<DeadLetter> {
    let mut new = std::mem::take(&mut *dead.lock().expect("dead-letter lock"));
    new.sort_by_key(|d| d.seq);
    new
}

/// Runs the engine over finite epochs of records (arrival order within and across epochs).
pub fn run(epochs: Vec<Vec<Match>>, cfg: &EngineConfig) -> EngineOutput {
    let mut history = EngineOutput::default();
    let out = run_stream(epochs, cfg, |r| {
        let h = &mut history;
        h.changes.extend(
            r.changed
                .iter()
                .map(|(g, s)| (r.epoch, g.to_string(), s.cloned())),
        );
        h.jobs.extend_from_slice(r.jobs);
        h.dead_letters.extend_from_slice(r.dead_letters);
        h.errors.extend_from_slice(r.errors);
        h.epoch_seconds.push(r.seconds);
        h.epoch_cpu_seconds.push(r.cpu_seconds);
        h.kernel_seconds.push(r.kernel_seconds);
        h.held_records.push(r.held_records);
        h.held_results.push(r.held_results);
    });
    EngineOutput {
        state: out.state,
        epochs: out.epochs,
        ..history
    }
}

/// Runs the engine over epochs as they come (a live source may block between them), calling
/// `on_epoch` once every worker has applied an epoch. Returns when `epochs` ends.
pub fn run_stream(
    epochs: impl IntoIterator<Item = Vec<Match>>,
    cfg: &EngineConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> EngineOutput {
    let peers = cfg.workers.max(1);
    // Records the workers' ledgers hold (live, or retracted awaiting reclamation).
    let held = Arc::new(AtomicI64::new(0));
    let out_held = held.clone();
    // Elo results the workers' game logs hold.
    let held_results = Arc::new(AtomicI64::new(0));
    let out_held_results = held_results.clone();
    let changes = Arc::new(Mutex::new(Vec::new()));
    // The slowest worker's kernel time in the current epoch, in nanoseconds.
    let kernel_nanos = Arc::new(AtomicU64::new(0));
    let out_kernel_nanos = kernel_nanos.clone();
    // Rejected records of every worker (a rejection is final, so this only grows).
    let dead = Arc::new(Mutex::new(Vec::<DeadLetter>::new()));
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    // Every game's trigger state after its latest epoch (a game lives on one worker).
    let trigger_states = Arc::new(Mutex::new(cfg.triggers.clone()));
    let (out_changes, out_dead, out_jobs, out_errors, out_triggers) = (
        changes.clone(),
        dead.clone(),
        jobs.clone(),
        errors.clone(),
        trigger_states.clone(),
    );
    let first_epoch = cfg.first_epoch;
    let cfg = cfg.clone();
    // Game and policy ids, the same on every worker.
    let interner = Arc::new(Interner::default());
    // A worker's shard and its part of the dataflow; what it returns applies one epoch's
    // batch to the worker, on the worker's own thread or on this one.
    let setup = move |worker: &mut Worker| {
        let index = worker.index();
        let peers = worker.peers();
        let cfg = cfg.clone();
        let (changes, kernel_nanos, jobs, errors, trigger_states) = (
            changes.clone(),
            kernel_nanos.clone(),
            jobs.clone(),
            errors.clone(),
            trigger_states.clone(),
        );
        let layout = cfg.layout;
        let store = Rc::new(RefCell::new(GameStore {
            tables: Games::default(),
            changes: Games::default(),
            replicates: Games::default(),
            bounds: BoundStore::default(),
            elo: Games::default(),
            dirty: Vec::new(),
        }));
        let bounds_on = cfg.analysis.bounds.is_some();
        let names = interner.clone();
        let mut shard = Shard::new(
            layout,
            cfg.replicates,
            cfg.analysis.seed,
            bounds_on,
            names.clone(),
        );
        let mut shard_held = 0i64;
        let held = held.clone();
        let mut results_held = 0i64;
        let held_results = held_results.clone();
        // Each game's table lives on one worker, so its trigger state does too, and so does
        // its last Level 3 attribution (with the policies it was computed for).
        let mut triggers: HashMap<String, Trigger> = cfg.triggers.clone().into_iter().collect();
        let mut attributions: HashMap<String, (Vec<String>, Attribution)> = HashMap::new();
        // Likewise its last Level 1/2 lifts, for epochs off their cadence.
        let mut kept_lifts: HashMap<String, (Vec<String>, Lifts)> = HashMap::new();
        // Each game's equilibrium supports from its last epoch: the next solves start there
        // (same results, fewer pivots; see `WarmStart`).
        let mut warm: HashMap<String, WarmStart> = HashMap::new();
        let dead = dead.clone();
        let (mut cells_in, mut replicates_in, mut bounds_in, mut results_in, probe) = worker
            .dataflow::<u64, _, _>(|scope| {
                let (cells_in, cells) = scope.new_collection::<CellKey, CellDiff>();
                let (results_in, results) = scope.new_collection::<(u32, EloChanges), isize>();
                let (replicates_in, replicate_cells) =
                    scope.new_collection::<CellKey, ReplicateDiff>();
                let (bounds_in, samples) = scope.new_collection::<(u32, BoundValue), isize>();
                // One probe over every output: an epoch is done when all of them are.
                let probe = timely::dataflow::operators::probe::Handle::new();
                // Every update goes to its game's worker, routed by the game's id (the one
                // route for cells, replicates and bound samples, so a game's three meet on
                // one worker), which adds it to the game's running aggregate. Differences are
                // exact fixed point and a shard has already summed its epoch per cell, so
                // the sum needs no consolidation first: an arrangement here only cost its
                // batcher's sorting and merging (about 0.5 ms of a 1,000-match epoch).
                let st = store.clone();
                cells
                    .inner
                    .exchange(|((game, _), _, _)| u64::from(*game))
                    .inspect(move |&((game, cell), _t, ref diff)| {
                        let mut st = st.borrow_mut();
                        st.changes.entry(game).or_default().push((cell, diff.0));
                        mark_dirty(&mut st.dirty, game);
                    })
                    .probe_with(&probe);
                let st = store.clone();
                replicate_cells
                    .inner
                    .exchange(|((game, _), _, _)| u64::from(*game))
                    .inspect(move |&((game, cell), _t, ref diff)| {
                        let mut st = st.borrow_mut();
                        accumulate(&mut st.replicates, game, cell, diff);
                        mark_dirty(&mut st.dirty, game);
                    })
                    .probe_with(&probe);
                // Bound samples go to their game's worker by the same route, which keeps each
                // cell's multiset of samples from the epoch's diffs.
                let st = store.clone();
                let sample_names = names.clone();
                samples
                    .inner
                    .exchange(|((game, _), _, _)| u64::from(*game))
                    .inspect(move |&((game, ref sample), _t, diff)| {
                        let mut st = st.borrow_mut();
                        st.bounds.update(&sample_names.name(game), sample, diff);
                        mark_dirty(&mut st.dirty, game);
                    })
                    .probe_with(&probe);
                // Elo results too: the game's log orders them by arrival number.
                let st = store.clone();
                results
                    .inner
                    .exchange(|((game, _), _, _)| u64::from(*game))
                    .inspect(move |((game, changes), _t, _)| {
                        let mut st = st.borrow_mut();
                        st.elo.entry(*game).or_default().update(changes);
                        mark_dirty(&mut st.dirty, *game);
                    })
                    .probe_with(&probe);
                (cells_in, replicates_in, bounds_in, results_in, probe)
            });
        let mut t = cfg.first_epoch;
        move |worker: &mut Worker, epoch: &Batch| {
            // With several workers a record's fields and names were just written on another
            // core (the feeder's), and the ledger's index is far larger than the caches: each
            // is requested ahead, in stages (a stage reads what the one before loaded), so the
            // misses overlap. A single worker shares the feeder's core; the bucket's prefetch
            // still pays there.
            const AHEAD: usize = 8;
            let records = &epoch.records;
            for (k, m) in records.iter().enumerate() {
                if let Some(far) = records.get(k + 3 * AHEAD) {
                    nashflow_schemas::prefetch::record(far);
                }
                if let Some(mid) = records.get(k + 2 * AHEAD) {
                    nashflow_schemas::prefetch::names(mid);
                }
                if let Some(next) = records.get(k + AHEAD) {
                    if owner(next, peers) == index {
                        shard.prefetch(next);
                    }
                }
                if owner(m, peers) == index {
                    shard.apply(epoch.first_seq + k as u64, records, k);
                }
            }
            let updates = shard.drain();
            for (cell, c) in updates.cells {
                cells_in.update(cell, c);
            }
            for (cell, c) in updates.replicates {
                replicates_in.update(cell, c);
            }
            for (sample, d) in updates.bounds {
                bounds_in.update(sample, d);
            }
            for changes in updates.results {
                results_in.update(changes, 1);
            }
            dead.lock().expect("dead-letter lock").extend(updates.dead);
            let now_held = shard.held() as i64;
            held.fetch_add(now_held - shard_held, Ordering::Relaxed);
            shard_held = now_held;
            cells_in.advance_to(t + 1);
            replicates_in.advance_to(t + 1);
            bounds_in.advance_to(t + 1);
            results_in.advance_to(t + 1);
            cells_in.flush();
            replicates_in.flush();
            bounds_in.flush();
            results_in.flush();
            worker.step_while(|| probe.less_than(cells_in.time()));
            let mut store_now = store.borrow_mut();
            // A plain `&mut` so that fields borrow separately.
            let st = &mut *store_now;
            // A game that did not change in this epoch gives its buffer up.
            st.changes.retain(|game, changes| {
                if changes.is_empty() {
                    return false;
                }
                let table = st.tables.entry(*game).or_default();
                table.add_all(changes, &names);
                if table.is_empty() {
                    st.tables.remove(game);
                }
                changes.clear();
                true
            });
            let mut dirty = std::mem::take(&mut st.dirty);
            dirty.sort();
            dirty.dedup();
            let due = t.is_multiple_of(cfg.level3_every.max(1));
            let lifts_due = t.is_multiple_of(cfg.level2_every.max(1));
            let kernels_started = std::time::Instant::now();
            for id in dirty {
                let game = names.name(id).to_string();
                let bounds = if bounds_on {
                    Some(st.bounds.summaries(&game))
                } else {
                    None
                };
                let reps = st.replicates.get(&id);
                let kept = attributions.get(&game).cloned();
                let lifts_kept = kept_lifts.remove(&game);
                let snap = match st.tables.get_mut(&id).map(|table| {
                    table.settle();
                    let table = &*table;
                    let same_policies = kept.as_ref().is_some_and(|(p, _)| p == table.names());
                    // Kept lifts stand only for the policies they were computed for.
                    let lifts_kept = lifts_kept.filter(|(p, _)| p == table.names());
                    let warm = warm.entry(game.clone()).or_default();
                    let elo = match st.elo.get_mut(&id) {
                        Some(log) => log.ratings(table.ids().iter().copied()),
                        None => vec![ELO_BASE; table.ids().len()],
                    };
                    snapshot(
                        table,
                        reps,
                        bounds,
                        &cfg,
                        Due {
                            lifts: lifts_due || lifts_kept.is_none(),
                            level3: due || !same_policies,
                        },
                        warm,
                    )
                    .map(|mut s| {
                        s.elo = elo;
                        if let Some((_, l)) = lifts_kept.filter(|_| !lifts_due) {
                            s.analysis.lifts = l;
                        }
                        if cfg.level2_every > 1 {
                            kept_lifts.insert(
                                game.clone(),
                                (s.policies.clone(), s.analysis.lifts.clone()),
                            );
                        }
                        match (&s.analysis.attribution, &kept) {
                            (Some(a), _) => {
                                attributions.insert(game.clone(), (s.policies.clone(), a.clone()));
                            }
                            (None, Some((_, a))) if cfg.analysis.level3 => {
                                s.analysis.attribution = Some(a.clone());
                            }
                            _ => {}
                        }
                        s
                    })
                }) {
                    Some(Err(e)) => {
                        errors
                            .lock()
                            .expect("errors lock")
                            .push((t, game, e.to_string()));
                        continue;
                    }
                    Some(Ok(s)) => Some(s),
                    None => {
                        warm.remove(&game);
                        st.elo.remove(&id);
                        None
                    }
                };
                if let (Some(tc), Some(s)) = (&cfg.trigger, &snap) {
                    let fired = triggers.entry(game.clone()).or_default().observe(
                        tc,
                        &game,
                        t,
                        &s.policies,
                        &s.analysis.matrices.payoff,
                        &s.analysis.sigma,
                    );
                    jobs.lock().expect("jobs lock").extend(fired);
                    let now = triggers[&game].clone();
                    trigger_states
                        .lock()
                        .expect("trigger lock")
                        .insert(game.clone(), now);
                }
                changes.lock().expect("changes lock").push((t, game, snap));
            }
            let now_held: i64 = st.elo.values().map(|log| log.held() as i64).sum();
            held_results.fetch_add(now_held - results_held, Ordering::Relaxed);
            results_held = now_held;
            drop(store_now);
            kernel_nanos.fetch_max(
                kernels_started.elapsed().as_nanos() as u64,
                Ordering::Relaxed,
            );
            t += 1;
        }
    };
    // One worker runs on this thread, between the epochs it is fed: no hand-off to another
    // thread and back each epoch, and the records it reads were just written on this core.
    // Several run on their own threads, each fed every batch (it applies the records it
    // owns), and each says when it is done.
    let mut workers = if peers == 1 {
        let alloc = Allocator::Thread(Thread::default());
        let mut worker = Worker::new(
            WorkerConfig::default(),
            alloc,
            Some(std::time::Instant::now()),
        );
        let apply = setup(&mut worker);
        Workers::Here(worker, apply)
    } else {
        let (senders, receivers): (Vec<mpsc::Sender<Option<Batch>>>, Vec<_>) =
            (0..peers).map(|_| mpsc::channel()).unzip();
        let receivers = Mutex::new(receivers.into_iter().map(Some).collect::<Vec<_>>());
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let guards = timely::execute(timely::Config::process(peers), move |worker| {
            let rx = receivers.lock().expect("receivers lock")[worker.index()]
                .take()
                .expect("one receiver per worker");
            let done = done_tx.clone();
            let mut apply = setup(worker);
            while let Ok(Some(epoch)) = rx.recv() {
                apply(worker, &epoch);
                done.send(()).expect("the feeder waits for every worker");
            }
        })
        .expect("timely workers start");
        Workers::Threads(guards, senders, done_rx)
    };

    // Feed epochs; after each, wait for every worker, then report a consistent state.
    let mut seq = 0u64;
    let mut state: BTreeMap<String, GameSnapshot> = BTreeMap::new();
    let mut t = first_epoch;
    for epoch in epochs {
        let started = std::time::Instant::now();
        let cpu_started = crate::cpu::process_cpu_seconds();
        // The records stay where the source put them: the ledgers keep the batch.
        let batch = Batch {
            first_seq: seq + 1,
            records: Arc::new(epoch),
        };
        seq += batch.records.len() as u64;
        match &mut workers {
            Workers::Here(worker, apply) => apply(worker, &batch),
            Workers::Threads(_, senders, done) => {
                for tx in senders.iter() {
                    tx.send(Some(batch.clone())).expect("workers are running");
                }
                for _ in 0..peers {
                    done.recv().expect("a worker stopped unexpectedly");
                }
            }
        }
        let mut changed: Vec<(u64, String, Option<GameSnapshot>)> =
            std::mem::take(&mut *out_changes.lock().expect("changes lock"));
        changed.sort_by(|a, b| a.1.cmp(&b.1));
        // Snapshots move into the state; the report points back at them.
        let changed: Vec<String> = changed
            .into_iter()
            .map(|(_, game, snap)| {
                match snap {
                    Some(s) => state.insert(game.clone(), s),
                    None => state.remove(&game),
                };
                game
            })
            .collect();
        let mut jobs_now = std::mem::take(&mut *out_jobs.lock().expect("jobs lock"));
        jobs_now.sort_by(|a, b| a.game.cmp(&b.game));
        let mut errors_now = std::mem::take(&mut *out_errors.lock().expect("errors lock"));
        errors_now.sort();
        let seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = crate::cpu::process_cpu_seconds() - cpu_started;
        let kernels = out_kernel_nanos.swap(0, Ordering::Relaxed) as f64 * 1e-9;
        let dead_now = take_dead(&out_dead);
        let triggers_now = out_triggers.lock().expect("trigger lock").clone();
        on_epoch(&EpochReport {
            epoch: t,
            input: &batch.records,
            records: seq,
            state: &state,
            changed: changed.iter().map(|g| (g.as_str(), state.get(g))).collect(),
            jobs: &jobs_now,
            errors: &errors_now,
            dead_letters: &dead_now,
            triggers: &triggers_now,
            seconds,
            kernel_seconds: kernels,
            cpu_seconds,
            held_records: out_held.load(Ordering::Relaxed).max(0) as u64,
            held_results: out_held_results.load(Ordering::Relaxed).max(0) as u64,
        });
        t += 1;
    }
    match workers {
        Workers::Here(mut worker, apply) => {
            // Closing the inputs lets the dataflow finish.
            drop(apply);
            while worker.has_dataflows() {
                worker.step_or_park(None);
            }
        }
        Workers::Threads(guards, senders, _) => {
            for tx in &senders {
                // A worker that already stopped has nothing left to do.
                let _ = tx.send(None);
            }
            guards
                .join()
                .into_iter()
                .for_each(|r| r.expect("a worker panicked"));
        }
    }
    debug_assert!(
        take_dead(&out_dead).is_empty(),
        "letters come with their epoch"
    );
    EngineOutput {
        state,
        epochs: t - first_epoch,
        ..EngineOutput::default()
    }
}
