//! The incremental engine (DESIGN §2) on timely + differential dataflow.
//!
//! ```text
//! records (key, (seq, row)) ──reduce: ledger replay──► verdicts ─┬─ live rows ──explode: cell stats──► count
//!                                                                 └─ dead letters            │ per (game, i, j)
//!                                          per game: reduce → sorted cell table ◄───────────┘
//!                                                         └─► kernels, once per changed game per epoch
//! ```
//!
//! * Dedupe replays [`nashflow_schemas::Ledger`] per key over the key's records in arrival
//!   order (`seq`), so the stream agrees with the batch ledger on every prefix.
//! * Cell statistics are the difference type of a differential collection ([`CellDiff`]):
//!   exact fixed-point sums, so a retraction cancels its match exactly.
//! * A game's analysis is recomputed only in epochs where its cell table changed.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use differential_dataflow::input::Input;
use nashflow_kernels::analysis::{add_bounds, analyze_game, AnalysisConfig, GameAnalysis};
use nashflow_kernels::attribution::Attribution;
use nashflow_kernels::bootstrap::{summarize, BootstrapConfig};
use nashflow_kernels::bounds::{BoundSample, CellSummary};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::stats::CellStats;
use nashflow_schemas::{Layout, Ledger, Match, Outcome};
use serde::{Deserialize, Serialize};

use crate::observe::{bound_samples, cell_updates, replicate_updates};
use crate::trigger::{Job, Trigger, TriggerConfig};

/// Cell statistics as a differential difference type.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct CellDiff(pub CellStats);

impl IsZero for CellDiff {
    fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl Semigroup for CellDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        self.0.plus(&rhs.0);
    }
}

impl Monoid for CellDiff {
    fn zero() -> Self {
        CellDiff::default()
    }
}

impl Abelian for CellDiff {
    fn negate(&mut self) {
        self.0 = self.0.scaled(-1);
    }
}

impl Multiply<isize> for CellDiff {
    type Output = CellDiff;
    fn multiply(self, rhs: &isize) -> CellDiff {
        CellDiff(self.0.scaled(*rhs as i64))
    }
}

/// Per-replicate cell statistics (index = replicate) as a difference type: one update per
/// cell and match carries every bootstrap replicate. The empty vector is zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicateDiff(pub Vec<CellStats>);

impl IsZero for ReplicateDiff {
    fn is_zero(&self) -> bool {
        self.0.iter().all(CellStats::is_zero)
    }
}

impl Semigroup for ReplicateDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        if self.0.len() < rhs.0.len() {
            self.0.resize(rhs.0.len(), CellStats::default());
        }
        for (a, b) in self.0.iter_mut().zip(&rhs.0) {
            a.plus(b);
        }
    }
}

impl Monoid for ReplicateDiff {
    fn zero() -> Self {
        ReplicateDiff::default()
    }
}

impl Abelian for ReplicateDiff {
    fn negate(&mut self) {
        for c in &mut self.0 {
            *c = c.scaled(-1);
        }
    }
}

impl Multiply<isize> for ReplicateDiff {
    type Output = ReplicateDiff;
    fn multiply(self, rhs: &isize) -> ReplicateDiff {
        ReplicateDiff(self.0.iter().map(|c| c.scaled(*rhs as i64)).collect())
    }
}

/// A game's per-replicate cells, (replicate, row policy, column policy) in order, from its
/// per-cell replicate vectors.
fn replicate_table(cells: &[(&(String, String, ReplicateDiff), isize)]) -> ReplicateTable {
    let mut table: ReplicateTable = Vec::new();
    for ((a, b, per_replicate), _) in cells {
        for (r, s) in per_replicate.0.iter().enumerate() {
            if !s.is_zero() {
                table.push((r as u32, a.clone(), b.clone(), CellDiff(*s)));
            }
        }
    }
    table.sort();
    table
}

/// A record as dataflow data: the Match with floats as their bit patterns, so rows are
/// totally ordered and "identical content" is field-wise bit equality.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row {
    match_id: String,
    game: String,
    policy_i: String,
    policy_j: String,
    payoff_i: u64,
    payoff_j: u64,
    batna_i: Option<u64>,
    batna_j: Option<u64>,
    agreement: Option<bool>,
    ef1: Option<bool>,
    ts: Option<i64>,
    context: Option<String>,
    propensity: Option<u64>,
    source: Option<String>,
    seed: Option<u64>,
    retract: bool,
}

impl Row {
    pub fn new(m: &Match) -> Row {
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        Row {
            match_id: m.match_id.clone(),
            game: m.game.clone(),
            policy_i: m.policy_i.clone(),
            policy_j: m.policy_j.clone(),
            payoff_i: m.payoff_i.to_bits(),
            payoff_j: m.payoff_j.to_bits(),
            batna_i: bits(m.batna_i),
            batna_j: bits(m.batna_j),
            agreement: m.agreement,
            ef1: m.ef1,
            ts: m.ts,
            context: m.context.clone(),
            propensity: bits(m.propensity),
            source: m.source.clone(),
            seed: m.seed,
            retract: m.retract,
        }
    }

    pub fn get(&self) -> Match {
        let float = |x: Option<u64>| x.map(f64::from_bits);
        Match {
            match_id: self.match_id.clone(),
            ts: self.ts,
            game: self.game.clone(),
            policy_i: self.policy_i.clone(),
            policy_j: self.policy_j.clone(),
            payoff_i: f64::from_bits(self.payoff_i),
            payoff_j: f64::from_bits(self.payoff_j),
            batna_i: float(self.batna_i),
            batna_j: float(self.batna_j),
            agreement: self.agreement,
            ef1: self.ef1,
            context: self.context.clone(),
            propensity: float(self.propensity),
            source: self.source.clone(),
            seed: self.seed,
            retract: self.retract,
        }
    }
}

/// An input record as the dataflow holds it: (dedupe key, (arrival sequence, row)).
type InputRecord = (String, (u64, Row));

/// The ledger's verdict on one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Verdict {
    Live(u64, Row),
    Dead {
        seq: u64,
        reason: String,
        row: Row,
    },
    /// A record of a key whose history ended fully retracted with nothing rejected: the batch
    /// ledger holds no state for such a key, so the record can leave the input.
    Compact(u64, Row),
}

/// A game's full cell table, sorted by (row policy, column policy).
type CellTable = Vec<(String, String, CellDiff)>;
/// A game's bootstrap replicate cells, sorted by (replicate, row policy, column policy).
type ReplicateTable = Vec<(u32, String, String, CellDiff)>;
/// One causal-bound sample as dataflow data: (row policy, column policy, stratum, payoff
/// bits, propensity bits).
type BoundValue = (String, String, Option<String>, u64, Option<u64>);
/// A game's bound samples with their multiplicities (the multiset the summaries come from).
type BoundTable = Vec<(BoundValue, isize)>;

/// One game's state after an epoch.
#[derive(Clone, Debug)]
pub struct GameSnapshot {
    pub policies: Vec<String>,
    /// Row-major n×n.
    pub cells: Vec<CellStats>,
    pub analysis: GameAnalysis,
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

/// A rejected record.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub seq: u64,
    pub reason: String,
    pub record: Match,
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
    /// Number of the first epoch fed (a run restored from a durable state continues the
    /// numbering of the run it resumes; job ids and archives stay unique).
    pub first_epoch: u64,
    /// Trigger state per game to start from (a restored run's saved hysteresis and
    /// cool-down); empty for a fresh run.
    pub triggers: BTreeMap<String, Trigger>,
}

/// What a run produced: the final state of every game and the dead letters as of the last
/// epoch. `changes` (per-epoch snapshot changes, `None` = the game vanished) is filled only by
/// [`run`]; a live [`run_stream`] hands each epoch to its callback instead of keeping history.
#[derive(Debug, Default)]
pub struct EngineOutput {
    pub state: BTreeMap<String, GameSnapshot>,
    pub changes: Vec<(u64, String, Option<GameSnapshot>)>,
    pub dead_letters: Vec<DeadLetter>,
    /// Best-response jobs in (epoch, game) order.
    pub jobs: Vec<Job>,
    /// Epochs fed in this run (numbered from `EngineConfig::first_epoch`).
    pub epochs: u64,
    /// Wall-clock seconds each epoch took on worker 0 (ingest, dataflow and kernels).
    pub epoch_seconds: Vec<f64>,
    /// Input records held by the dataflow after each epoch (fully retracted histories are
    /// compacted away one epoch later).
    pub held_records: Vec<u64>,
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

/// Replays the ledger over one key's records (sorted by arrival) and returns the verdicts.
fn replay(layout: Layout, records: &[(&(u64, Row), isize)]) -> Vec<Verdict> {
    let mut ledger = Ledger::new(layout);
    let mut live: Option<(u64, Row)> = None;
    let mut out = Vec::new();
    for ((seq, row), mult) in records {
        for _ in 0..*mult {
            let m = row.get();
            match ledger.apply(m) {
                Outcome::Inserted => live = Some((*seq, row.clone())),
                Outcome::Retracted => live = None,
                Outcome::Duplicate => {}
                Outcome::Rejected(reason) => out.push(Verdict::Dead {
                    seq: *seq,
                    reason,
                    row: row.clone(),
                }),
            }
        }
    }
    if live.is_none() && out.is_empty() {
        return records
            .iter()
            .map(|((seq, row), _)| Verdict::Compact(*seq, row.clone()))
            .collect();
    }
    out.extend(live.map(|(seq, row)| Verdict::Live(seq, row)));
    out
}

/// The latest value of a per-game collection, from its stream of (value, ±1) updates.
struct Latest<V>(HashMap<String, HashMap<V, isize>>);

impl<V: std::hash::Hash + Eq + Clone> Latest<V> {
    fn new() -> Self {
        Latest(HashMap::new())
    }

    fn update(&mut self, game: &str, value: &V, diff: isize) {
        let entry = self.0.entry(game.to_string()).or_default();
        *entry.entry(value.clone()).or_default() += diff;
        entry.retain(|_, d| *d != 0);
    }

    fn current(&self, game: &str) -> Option<&V> {
        self.0
            .get(game)?
            .iter()
            .find(|(_, d)| **d > 0)
            .map(|(v, _)| v)
    }
}

/// Per-worker view of the game tables as they change.
struct GameStore {
    tables: Latest<CellTable>,
    replicates: Latest<ReplicateTable>,
    bounds: Latest<BoundTable>,
    dirty: Vec<String>,
}

/// The policies of a game's cell table, in name order (the matrix order).
fn table_policies(table: &CellTable) -> Vec<String> {
    let mut policies: Vec<String> = table
        .iter()
        .flat_map(|(a, b, _)| [a.clone(), b.clone()])
        .collect();
    policies.sort();
    policies.dedup();
    policies
}

/// The bound summaries of a game's cells over `policies` (row-major), from its bound table.
fn bound_cells(table: &BoundTable, index: &HashMap<&str, usize>) -> Vec<Option<CellSummary>> {
    let n = index.len();
    let mut samples: Vec<Vec<BoundSample>> = vec![Vec::new(); n * n];
    for ((a, b, stratum, y, e), mult) in table {
        let cell = &mut samples[index[a.as_str()] * n + index[b.as_str()]];
        for _ in 0..*mult {
            cell.push(BoundSample {
                stratum: stratum.clone(),
                payoff: f64::from_bits(*y),
                propensity: e.map(f64::from_bits),
            });
        }
    }
    samples.iter().map(|s| CellSummary::of(s)).collect()
}

fn snapshot(
    table: &CellTable,
    replicates: Option<&ReplicateTable>,
    bounds: Option<&BoundTable>,
    layout: Layout,
    cfg: &EngineConfig,
    level3: bool,
) -> Result<GameSnapshot, nashflow_kernels::KernelError> {
    let policies = table_policies(table);
    let n = policies.len();
    let index: HashMap<&str, usize> = policies
        .iter()
        .enumerate()
        .map(|(k, p)| (p.as_str(), k))
        .collect();
    let mut cells = vec![CellStats::default(); n * n];
    for (a, b, c) in table {
        cells[index[a.as_str()] * n + index[b.as_str()]] = c.0;
    }
    let observations: i64 = cells.iter().map(|c| c.n).sum();
    let records = match layout {
        Layout::Match => observations / 2,
        Layout::Perspective => observations,
    } as usize;
    // The engine has no per-match units: the streaming bootstrap is separate (issue #3).
    let batch_bootstrap_off = AnalysisConfig {
        bootstrap: 0,
        level3: cfg.analysis.level3 && level3,
        ..cfg.analysis.clone()
    };
    let mut analysis = analyze_game(n, &cells, &[], &batch_bootstrap_off, &mut Silent)?;
    if cfg.replicates > 0 {
        let mut tables = vec![vec![CellStats::default(); n * n]; cfg.replicates as usize];
        for (r, a, b, c) in replicates.into_iter().flatten() {
            tables[*r as usize][index[a.as_str()] * n + index[b.as_str()]] = c.0;
        }
        let bc = BootstrapConfig {
            replicates: cfg.replicates as usize,
            seed: cfg.analysis.seed,
            level: cfg.analysis.ci_level,
        };
        analysis.bootstrap = Some(summarize(
            n,
            tables.into_iter(),
            cfg.analysis.missing,
            &cfg.analysis.solver,
            &bc,
            &mut Silent,
        )?);
    }
    if let Some(bc) = &cfg.analysis.bounds {
        let empty = BoundTable::new();
        let summaries = bound_cells(bounds.unwrap_or(&empty), &index);
        add_bounds(&mut analysis, &policies, &summaries, bc)?;
    }
    Ok(GameSnapshot {
        policies,
        cells,
        analysis,
        records,
    })
}

/// What the caller sees after each epoch: a consistent view of every game as of that epoch
/// (the in-memory snapshot a serving layer reads), and what happened in it.
#[derive(Clone)]
pub struct EpochReport<'a> {
    pub epoch: u64,
    /// This epoch's input records, in arrival order.
    pub input: Vec<&'a Match>,
    /// Records ingested so far.
    pub records: u64,
    pub state: &'a BTreeMap<String, GameSnapshot>,
    /// Games whose snapshot changed in this epoch (`None`: the game vanished).
    pub changed: Vec<(&'a str, Option<&'a GameSnapshot>)>,
    pub jobs: &'a [Job],
    pub errors: &'a [(u64, String, String)],
    /// Every record rejected by the ledger so far (conflicts, bad retractions), by arrival.
    pub dead_letters: &'a [DeadLetter],
    /// Each game's PSRO trigger state after this epoch (what a durable run saves).
    pub triggers: &'a BTreeMap<String, Trigger>,
    /// Wall-clock seconds the epoch took (ingest, dataflow and kernels).
    pub seconds: f64,
}

/// The dead letters as of now, in arrival order, from the workers' (record, ±1) counts.
fn current_dead(dead: &Mutex<HashMap<(u64, String, Row), isize>>) -> Vec<DeadLetter> {
    let mut out: Vec<DeadLetter> = dead
        .lock()
        .expect("dead-letter lock")
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|((seq, reason, row), _)| DeadLetter {
            seq: *seq,
            reason: reason.clone(),
            record: row.get(),
        })
        .collect();
    out.sort_by_key(|d| d.seq);
    out
}

/// Runs the engine over finite epochs of records (arrival order within and across epochs).
pub fn run(epochs: Vec<Vec<Match>>, cfg: &EngineConfig) -> EngineOutput {
    let mut changes = Vec::new();
    let mut out = run_stream(epochs, cfg, |r| {
        changes.extend(
            r.changed
                .iter()
                .map(|(g, s)| (r.epoch, g.to_string(), s.cloned())),
        );
    });
    out.changes = changes;
    out
}

/// Runs the engine over epochs as they come (a live source may block between them), calling
/// `on_epoch` once every worker has applied an epoch. Returns when `epochs` ends.
pub fn run_stream(
    epochs: impl IntoIterator<Item = Vec<Match>>,
    cfg: &EngineConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> EngineOutput {
    type Batch = Arc<Vec<(u64, Match)>>;
    let peers = cfg.workers.max(1);
    let (senders, receivers): (Vec<mpsc::Sender<Option<Batch>>>, Vec<_>) =
        (0..peers).map(|_| mpsc::channel()).unzip();
    let receivers = Arc::new(Mutex::new(
        receivers.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // Input records currently held by the dataflow (inserted minus compacted away).
    let held = Arc::new(AtomicI64::new(0));
    let out_held = held.clone();
    let changes = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(Mutex::new(HashMap::<(u64, String, Row), isize>::new()));
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
    let guards = timely::execute(timely::Config::process(peers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let rx = receivers.lock().expect("receivers lock")[index]
            .take()
            .expect("one receiver per worker");
        let done = done_tx.clone();
        let layout = cfg.layout;
        let store = Rc::new(RefCell::new(GameStore {
            tables: Latest::new(),
            replicates: Latest::new(),
            bounds: Latest::new(),
            dirty: Vec::new(),
        }));
        let (replicates, seed) = (cfg.replicates, cfg.analysis.seed);
        let bounds_on = cfg.analysis.bounds.is_some();
        // Compactable input records seen by this worker, removed at the next epoch.
        let to_remove: Rc<RefCell<Vec<InputRecord>>> = Rc::new(RefCell::new(Vec::new()));
        let held = held.clone();
        // Each game's table lives on one worker, so its trigger state does too, and so does
        // its last Level 3 attribution (with the policies it was computed for).
        let mut triggers: HashMap<String, Trigger> = cfg.triggers.clone().into_iter().collect();
        let mut attributions: HashMap<String, (Vec<String>, Attribution)> = HashMap::new();
        let dead = dead.clone();
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, records) = scope.new_collection::<InputRecord, isize>();
            let verdicts = records.reduce(move |_key, vals, out: &mut Vec<(Verdict, isize)>| {
                out.extend(replay(layout, vals).into_iter().map(|v| (v, 1)));
            });
            let dead_letters = verdicts.clone().flat_map(|(_, v)| match v {
                Verdict::Dead { seq, reason, row } => Some((seq, reason, row)),
                _ => None,
            });
            let compactable = verdicts.clone().flat_map(|(key, v)| match v {
                Verdict::Compact(seq, row) => Some((key, (seq, row))),
                _ => None,
            });
            let live = verdicts.flat_map(|(_, v)| match v {
                Verdict::Live(_, row) => Some(row),
                _ => None,
            });
            // One probe over every output: an epoch is done when all of them are.
            let probe = timely::dataflow::operators::probe::Handle::new();
            let replicate_tables = live
                .clone()
                .explode(move |row| {
                    let m = row.get();
                    replicate_updates(&m, layout, replicates, seed)
                        .into_iter()
                        .map(move |((a, b), c)| ((m.game.clone(), a, b), ReplicateDiff(c)))
                })
                .count()
                .map(|((game, a, b), c)| (game, (a, b, c)))
                .reduce(|_game, vals, out: &mut Vec<(ReplicateTable, isize)>| {
                    out.push((replicate_table(vals), 1));
                });
            if bounds_on {
                // Per game, the multiset of bound samples; its summaries are rebuilt only for
                // games that changed.
                let st = store.clone();
                live.clone()
                    .flat_map(move |row| {
                        let m = row.get();
                        bound_samples(&m, layout)
                            .into_iter()
                            .map(|((a, b), s)| {
                                let v: BoundValue = (
                                    a,
                                    b,
                                    s.stratum,
                                    s.payoff.to_bits(),
                                    s.propensity.map(f64::to_bits),
                                );
                                (m.game.clone(), v)
                            })
                            .collect::<Vec<_>>()
                    })
                    .reduce(|_game, vals, out: &mut Vec<(BoundTable, isize)>| {
                        out.push((vals.iter().map(|(v, d)| ((*v).clone(), *d)).collect(), 1));
                    })
                    .inspect(move |((game, table), _t, diff)| {
                        let mut st = st.borrow_mut();
                        st.bounds.update(game, table, *diff);
                        st.dirty.push(game.clone());
                    })
                    .probe_with(&probe);
            }
            let cells = live
                .explode(move |row| {
                    let m = row.get();
                    cell_updates(&m, layout)
                        .into_iter()
                        .map(move |((a, b), c)| ((m.game.clone(), a, b), CellDiff(c)))
                })
                .count();
            let tables = cells.map(|((game, a, b), c)| (game, (a, b, c))).reduce(
                |_game, vals, out: &mut Vec<(CellTable, isize)>| {
                    let table: CellTable = vals
                        .iter()
                        .map(|((a, b, c), _)| (a.clone(), b.clone(), *c))
                        .collect();
                    out.push((table, 1));
                },
            );
            let st = store.clone();
            tables
                .inspect(move |((game, table), _t, diff)| {
                    let mut st = st.borrow_mut();
                    st.tables.update(game, table, *diff);
                    st.dirty.push(game.clone());
                })
                .probe_with(&probe);
            let pending = to_remove.clone();
            compactable
                .inspect(move |(record, _t, diff)| {
                    if *diff > 0 {
                        pending.borrow_mut().push(record.clone());
                    }
                })
                .probe_with(&probe);
            let st = store.clone();
            replicate_tables
                .inspect(move |((game, table), _t, diff)| {
                    let mut st = st.borrow_mut();
                    st.replicates.update(game, table, *diff);
                    st.dirty.push(game.clone());
                })
                .probe_with(&probe);
            dead_letters
                .inspect(move |((seq, reason, row), _t, diff)| {
                    *dead
                        .lock()
                        .expect("dead-letter lock")
                        .entry((*seq, reason.clone(), row.clone()))
                        .or_default() += diff;
                })
                .probe_with(&probe);
            (input, probe)
        });
        let mut t = cfg.first_epoch;
        while let Ok(Some(epoch)) = rx.recv() {
            let removed: Vec<_> = std::mem::take(&mut *to_remove.borrow_mut());
            held.fetch_sub(removed.len() as i64, Ordering::Relaxed);
            for record in removed {
                input.remove(record);
            }
            for (seq, m) in epoch.iter() {
                if (*seq as usize) % peers == index {
                    input.insert((m.key(layout), (*seq, Row::new(m))));
                    held.fetch_add(1, Ordering::Relaxed);
                }
            }
            input.advance_to(t + 1);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
            let mut st = store.borrow_mut();
            let mut dirty = std::mem::take(&mut st.dirty);
            dirty.sort();
            dirty.dedup();
            let due = t.is_multiple_of(cfg.level3_every.max(1));
            for game in dirty {
                let reps = st.replicates.current(&game);
                let bounds = st.bounds.current(&game);
                let kept = attributions.get(&game).cloned();
                let snap = match st.tables.current(&game).map(|table| {
                    let same_policies = kept
                        .as_ref()
                        .is_some_and(|(p, _)| *p == table_policies(table));
                    snapshot(table, reps, bounds, layout, &cfg, due || !same_policies).map(
                        |mut s| {
                            match (&s.analysis.attribution, &kept) {
                                (Some(a), _) => {
                                    attributions
                                        .insert(game.clone(), (s.policies.clone(), a.clone()));
                                }
                                (None, Some((_, a))) if cfg.analysis.level3 => {
                                    s.analysis.attribution = Some(a.clone());
                                }
                                _ => {}
                            }
                            s
                        },
                    )
                }) {
                    Some(Err(e)) => {
                        errors
                            .lock()
                            .expect("errors lock")
                            .push((t, game, e.to_string()));
                        continue;
                    }
                    Some(Ok(s)) => Some(s),
                    None => None,
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
            drop(st);
            done.send(()).expect("the feeder waits for every worker");
            t += 1;
        }
    })
    .expect("timely workers start");

    // Feed epochs; after each, wait for every worker, then report a consistent state.
    let mut seq = 0u64;
    let mut state: BTreeMap<String, GameSnapshot> = BTreeMap::new();
    let mut all_jobs: Vec<Job> = Vec::new();
    let mut all_errors = Vec::new();
    let mut epoch_seconds = Vec::new();
    let mut held_records = Vec::new();
    let mut t = first_epoch;
    for epoch in epochs {
        let started = std::time::Instant::now();
        let batch: Vec<(u64, Match)> = epoch
            .into_iter()
            .map(|m| {
                seq += 1;
                (seq, m)
            })
            .collect();
        let batch = Arc::new(batch);
        for tx in &senders {
            tx.send(Some(batch.clone())).expect("workers are running");
        }
        for _ in 0..peers {
            done_rx.recv().expect("a worker stopped unexpectedly");
        }
        let mut changed: Vec<(u64, String, Option<GameSnapshot>)> =
            std::mem::take(&mut *out_changes.lock().expect("changes lock"));
        changed.sort_by(|a, b| a.1.cmp(&b.1));
        for (_, game, snap) in &changed {
            match snap {
                Some(s) => state.insert(game.clone(), s.clone()),
                None => state.remove(game),
            };
        }
        let mut jobs_now = std::mem::take(&mut *out_jobs.lock().expect("jobs lock"));
        jobs_now.sort_by(|a, b| a.game.cmp(&b.game));
        let mut errors_now = std::mem::take(&mut *out_errors.lock().expect("errors lock"));
        errors_now.sort();
        let seconds = started.elapsed().as_secs_f64();
        let dead_now = current_dead(&out_dead);
        let triggers_now = out_triggers.lock().expect("trigger lock").clone();
        on_epoch(&EpochReport {
            epoch: t,
            input: batch.iter().map(|(_, m)| m).collect(),
            records: seq,
            state: &state,
            changed: changed
                .iter()
                .map(|(_, g, s)| (g.as_str(), s.as_ref()))
                .collect(),
            jobs: &jobs_now,
            errors: &errors_now,
            dead_letters: &dead_now,
            triggers: &triggers_now,
            seconds,
        });
        epoch_seconds.push(seconds);
        held_records.push(out_held.load(Ordering::Relaxed).max(0) as u64);
        all_jobs.extend(jobs_now);
        all_errors.extend(errors_now);
        t += 1;
    }
    for tx in &senders {
        // A worker that already stopped has nothing left to do.
        let _ = tx.send(None);
    }
    guards
        .join()
        .into_iter()
        .for_each(|r| r.expect("a worker panicked"));
    let dead_letters = current_dead(&out_dead);
    EngineOutput {
        state,
        changes: Vec::new(),
        dead_letters,
        jobs: all_jobs,
        epochs: t - first_epoch,
        epoch_seconds,
        held_records,
        errors: all_errors,
    }
}
