//! `nashflow run`: the incremental engine over files, directories (optionally watched),
//! stdin or Kafka, epoch by epoch (by record count and/or wall-clock tick). With `--state`,
//! every epoch is made durable before its Kafka offsets are committed, and a restart resumes
//! from the state directory.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nashflow_connectors::jobs::JobSink;
use nashflow_connectors::kafka::{Committer, Offsets, Source};
use nashflow_connectors::state::{Progress, Restored, StateDir};
use nashflow_operators::engine::{run_stream, DeadLetter, EngineConfig, EpochReport, GameSnapshot};
use nashflow_operators::trigger::{Job, TriggerConfig};
use nashflow_schemas::{Ledger, Match, Outcome, RecordError, SharedMatch};

use crate::analyze::{every_row_bad, report_dead_letters};
use crate::cli::{OutputFormat, RunArgs};
use crate::report::GameReport;
use crate::serve::live::{DeadLetters, LiveMatches, Table};
use crate::serve::Shared;
use crate::sim_source::LiveSim;
use crate::tables;

/// What the source thread (and HTTP ingest) sends.
pub enum Item {
    /// A Kafka message was read: (topic, partition, next offset). Sent before its record.
    Consumed(Arc<str>, i32, i64),
    /// A record and where it came from: (source name, row or offset).
    Record(Match, Arc<str>, u64),
    Bad(RecordError),
    Fatal(String),
    /// Several items in order, sent at once (a fast source saves a channel hand-off each).
    Batch(Vec<Item>),
}

/// The sources' channel to the epoch cutter. It is bounded, so that a source faster than the
/// engine waits (backpressure) rather than queueing without limit.
pub type ItemSender = mpsc::SyncSender<Item>;

/// Records a source message holds at most (a batch of a file, the simulator or a Kafka fetch;
/// an HTTP ingest request may hold more).
pub const SOURCE_BATCH: usize = 256;

/// Messages the channel holds: two epochs of records, so that the sources prepare the next
/// epoch while the engine applies this one (the hand-off is then never the bottleneck), and
/// at least 64.
fn in_flight(epoch_records: usize) -> usize {
    (2 * epoch_records)
        .div_ceil(SOURCE_BATCH)
        .clamp(64, 1 << 16)
}

/// How often a source wait looks for a stop request (Ctrl-C).
const STOP_POLL: Duration = Duration::from_millis(100);

/// Cuts the record stream into epochs: `max_records` records, or `tick` after an epoch's
/// first record, whichever comes first. A stop request ([`crate::interrupt`]) ends the
/// stream after the records taken so far.
struct Epochs {
    /// Records restored from `--state`, fed as the first epoch.
    restored: Option<Vec<Match>>,
    rx: Receiver<Item>,
    /// Items of a received batch not yet taken (an epoch can end inside a batch).
    pending: VecDeque<Item>,
    max_records: usize,
    tick: Option<Duration>,
    /// (source, row) per record in arrival order, and bad rows.
    log: Arc<Mutex<InputLog>>,
    done: bool,
    /// A stop was requested (and announced).
    stopping: bool,
}

/// What the run has taken in. Per record and per epoch it keeps only what the epochs not
/// yet applied need (their records' origins and their cuts, and the last applied epoch's
/// cut), so a long run's memory follows its live matches and its rejections, not everything
/// read.
#[derive(Default)]
struct InputLog {
    /// Source and row of the records taken from arrival index `origin_base` on: those of the
    /// epochs not yet applied.
    origin: Vec<(Arc<str>, u64)>,
    origin_base: usize,
    /// Records taken so far.
    taken: usize,
    /// Rows the sources rejected, and (as epochs are applied) the records the ledger
    /// rejected: every dead letter so far.
    bad: Vec<RecordError>,
    ledger_bad: Vec<RecordError>,
    fatal: Option<String>,
    /// `--out`: the ledger over every epoch's records (shared with the engine), for the final
    /// `matches` table.
    kept: Option<Ledger<SharedMatch>>,
    /// Source offsets read up to the last cut (or restored), the positions read since (few
    /// partitions, updated per message without allocating), and where each epoch ended,
    /// from this run's epoch `cut_base` on.
    offsets: Offsets,
    positions: Vec<(Arc<str>, i32, i64)>,
    cuts: VecDeque<Cut>,
    cut_base: usize,
}

/// Where an epoch ended in the input log.
#[derive(Clone, Debug)]
struct Cut {
    offsets: Offsets,
    origin_len: usize,
    bad_len: usize,
}

impl InputLog {
    /// A record was taken from `source` at `row`.
    fn took(&mut self, source: Arc<str>, row: u64) {
        self.origin.push((source, row));
        self.taken += 1;
    }

    /// Where epoch `k` (counted in this run) ended.
    fn cut_of(&self, k: usize) -> &Cut {
        &self.cuts[k - self.cut_base]
    }

    /// Epoch `k`'s records' origins and its rejected rows (epochs counted in this run).
    fn epoch(&self, k: usize) -> (&[(Arc<str>, u64)], &[RecordError]) {
        let (o0, b0) = k.checked_sub(1).map_or((0, 0), |p| {
            (self.cut_of(p).origin_len, self.cut_of(p).bad_len)
        });
        let cut = self.cut_of(k);
        let base = self.origin_base;
        (
            &self.origin[o0 - base..cut.origin_len - base],
            &self.bad[b0..cut.bad_len],
        )
    }

    /// Turns an epoch's ledger rejections (of records of epochs not yet forgotten) into dead
    /// letters naming their source rows.
    fn ledger_rejections(&mut self, dead: &[DeadLetter]) {
        let base = self.origin_base;
        self.ledger_bad.extend(dead.iter().map(|d| {
            let (source, row) = &self.origin[d.seq as usize - 1 - base];
            RecordError {
                source_name: source.to_string(),
                row: *row,
                field: Some("match_id".into()),
                reason: d.reason.clone(),
                raw: serde_json::to_string(&d.record).unwrap_or_default(),
            }
        }));
    }

    /// Epoch `k` is applied: what only it and earlier epochs needed goes (its cut stays, as
    /// the start of `k + 1`).
    fn forget_through(&mut self, k: usize) {
        let end = self.cut_of(k).origin_len;
        self.origin.drain(..end - self.origin_base);
        self.origin_base = end;
        self.cuts.drain(..k - self.cut_base);
        self.cut_base = k;
    }

    /// A Kafka message of (topic, partition) was read; `next` is the offset after it.
    fn consumed(&mut self, topic: Arc<str>, partition: i32, next: i64) {
        match self
            .positions
            .iter_mut()
            .find(|p| p.1 == partition && p.0 == topic)
        {
            Some(p) => p.2 = next,
            None => self.positions.push((topic, partition, next)),
        }
    }

    fn cut(&mut self) {
        for (topic, partition, next) in &self.positions {
            self.offsets.insert((topic.to_string(), *partition), *next);
        }
        self.cuts.push_back(Cut {
            offsets: self.offsets.clone(),
            origin_len: self.taken,
            bad_len: self.bad.len(),
        });
    }
}

impl Epochs {
    /// Whether Ctrl-C (or SIGTERM) asked the run to stop; says so on stderr once.
    fn stop_requested(&mut self) -> bool {
        if crate::interrupt::requested() && !self.stopping {
            self.stopping = true;
            eprintln!(
                "\ninterrupted: applying the records taken so far, then stopping (interrupt \
                 again to abort)"
            );
        }
        self.stopping
    }
}

impl Iterator for Epochs {
    type Item = Vec<Match>;
    fn next(&mut self) -> Option<Vec<Match>> {
        if self.done {
            return None;
        }
        if let Some(records) = self.restored.take() {
            self.log.lock().expect("log lock").cut();
            return Some(records);
        }
        // Between epochs the last record taken closed one, so no message is half taken.
        if self.stop_requested() {
            self.done = true;
            return None;
        }
        // Reserved up front: growing a Vec of records copies every record again on each step.
        let mut epoch = Vec::with_capacity(self.max_records.min(1 << 16));
        let mut opened: Option<Instant> = None;
        'records: loop {
            let item = match self.pending.pop_front() {
                Some(item) => item,
                // Nothing pending: no message is half taken (a Kafka message's position and
                // record travel in one batch), so this is where a stop request may end the
                // input.
                None => {
                    let deadline = self.tick.zip(opened).map(|(tick, t0)| t0 + tick);
                    loop {
                        if self.stop_requested() {
                            break 'records;
                        }
                        let slice = deadline.map_or(STOP_POLL, |d| {
                            d.saturating_duration_since(Instant::now()).min(STOP_POLL)
                        });
                        match self.rx.recv_timeout(slice) {
                            Ok(item) => break item,
                            Err(RecvTimeoutError::Timeout) => {
                                if deadline.is_some_and(|d| Instant::now() >= d) {
                                    self.log.lock().expect("log lock").cut();
                                    return Some(epoch);
                                }
                            }
                            Err(RecvTimeoutError::Disconnected) => break 'records,
                        }
                    }
                }
            };
            if let Item::Batch(items) = item {
                self.pending.extend(items);
                continue;
            }
            let mut log = self.log.lock().expect("log lock");
            match item {
                Item::Record(m, source, row) => {
                    log.took(source, row);
                    epoch.push(m);
                    opened.get_or_insert_with(Instant::now);
                    if epoch.len() >= self.max_records {
                        log.cut();
                        return Some(epoch);
                    }
                }
                Item::Consumed(topic, partition, next) => log.consumed(topic, partition, next),
                Item::Bad(e) => {
                    log.bad.push(e);
                    // A rejected row opens the epoch too: on a tick, bad rows with no good
                    // record after them still reach the live `dead_letters` table.
                    opened.get_or_insert_with(Instant::now);
                }
                Item::Fatal(e) => {
                    log.fatal = Some(e);
                    break 'records;
                }
                Item::Batch(_) => unreachable!("batches are unpacked above"),
            }
        }
        self.done = true;
        self.log.lock().expect("log lock").cut();
        (!epoch.is_empty()).then_some(epoch)
    }
}

fn status_line(r: &EpochReport, started: Instant) -> String {
    let rate = r.records as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let games: Vec<String> = r
        .state
        .iter()
        .map(|(g, s)| {
            format!(
                "{g}: {} policies, expl {:.4}",
                s.policies.len(),
                s.analysis.eval.exploitability
            )
        })
        .collect();
    let mut line = format!(
        "epoch {} | {} records | {:.0}/s | {}",
        r.epoch,
        r.records,
        rate,
        games.join("; ")
    );
    for j in r.jobs {
        line.push_str(&format!(
            " | job {} ({} regrets {:.4})",
            j.job_id, j.target_policy, j.exploitability
        ));
    }
    line
}

/// A hint, given once per run, when an epoch's analyses took longer than the tick
/// (`--epoch-ms`), or than a second without one: the settings that would make an epoch
/// cheaper, among those still at their every-epoch defaults. `None` when none is left.
fn slow_epoch_hint(kernel_seconds: f64, args: &RunArgs) -> Option<String> {
    let tick_ms = args.tick_ms();
    let budget = if tick_ms > 0 {
        tick_ms as f64 / 1e3
    } else {
        1.0
    };
    if kernel_seconds <= budget {
        return None;
    }
    let mut knobs = Vec::new();
    if !args.model.no_level3 && args.level3_every == 1 {
        knobs.push("--level3-every N or --no-level3 (attribution)");
    }
    if args.level2_every == 1 {
        knobs.push("--level2-every N (lifts)");
    }
    if args.bootstrap > 0 {
        knobs.push("--bootstrap B with fewer replicates, or 0");
    }
    if knobs.is_empty() {
        return None;
    }
    let against = if tick_ms > 0 {
        format!("the {tick_ms} ms tick")
    } else {
        "a second".to_string()
    };
    Some(format!(
        "hint: an epoch's analyses took {kernel_seconds:.2} s, longer than {against}. These \
         trade freshness for latency: {}.",
        knobs.join("; ")
    ))
}

/// Starts the HTTP server unless it is off: `--no-serve`, or `--exit-at-end` without an
/// explicit `--listen`. The default address falls back to no server when taken.
fn serve(args: &RunArgs, tx: ItemSender) -> Result<Option<Arc<Shared>>> {
    if args.no_serve || (args.exit_at_end && args.listen.is_none()) {
        return Ok(None);
    }
    let limits = crate::sql::Limits {
        max_rows: args.sql_max_rows,
        timeout: Duration::from_secs(30),
    };
    let shared = Shared::with_archive(
        limits,
        args.ingest_token.clone().map(|t| (t, tx)),
        args.archive.clone(),
    );
    start_server(args.listen.as_deref(), shared)
}

/// Starts the server on `listen` (or the default address, falling back to none when taken).
pub fn start_server(listen: Option<&str>, shared: Arc<Shared>) -> Result<Option<Arc<Shared>>> {
    let addr = listen.unwrap_or(DEFAULT_LISTEN).to_string();
    match crate::serve::start(&addr, shared.clone()) {
        Ok(s) => {
            eprintln!("serving on http://{}", s.addr);
            Ok(Some(shared))
        }
        Err(e) if listen.is_none() => {
            eprintln!("warning: no web server ({e:#}); use --listen ADDR or --no-serve");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The running source's handles: Kafka's offset committer, the simulator's feedback.
#[derive(Default)]
struct Sources {
    committer: Option<Committer>,
    simulator: Option<LiveSim>,
}

/// Starts the thread that reads the inputs (files and stdin, Kafka, or the simulator) into
/// `tx`.
fn start_sources(args: &RunArgs, restored: Option<&Restored>, tx: ItemSender) -> Result<Sources> {
    let exit_at_end = args.exit_at_end;
    if let Some(brokers) = &args.kafka {
        let cfg = crate::kafka::source_config(args, brokers)?;
        let start = restored.map(|r| r.offsets.clone()).unwrap_or_default();
        let source = Source::open(&cfg, &start).map_err(anyhow::Error::msg)?;
        let committer = source.committer();
        std::thread::Builder::new()
            .name("kafka-fetch".into())
            .spawn(move || crate::kafka::read_kafka(source, exit_at_end, tx))?;
        return Ok(Sources {
            committer: Some(committer),
            ..Default::default()
        });
    }
    if let Some(spec) = &args.simulate {
        let sim = crate::sim_source::start(spec, args.epoch_records as u64, tx)?;
        return Ok(Sources {
            simulator: Some(sim),
            ..Default::default()
        });
    }
    let inputs = if args.files.is_empty() {
        args.input.clone()
    } else {
        args.files.clone()
    };
    // A named input that is not there is a usage error: say so before reading the others.
    if let Some(p) = inputs.iter().find(|p| p.as_os_str() != "-" && !p.exists()) {
        bail!("{}: no such file or directory", p.display());
    }
    let watch = args.watch;
    std::thread::Builder::new()
        .name("file-source".into())
        .spawn(move || crate::file_source::read_sources(inputs, watch, exit_at_end, tx))?;
    Ok(Sources::default())
}

/// The `--state` directory with the ledger it snapshots when compacting: the live records
/// and where each came from.
struct Durable {
    state: StateDir,
    compact_every: u64,
    /// The live records, shared with the engine.
    ledger: Ledger<SharedMatch>,
    layout: nashflow_schemas::Layout,
    origins: std::collections::HashMap<String, (Arc<str>, u64)>,
}

impl Durable {
    /// Applies epoch `k` of this run (its records and their origins) to the ledger.
    fn observe(&mut self, r: &EpochReport, log: &InputLog, k: usize) {
        for (m, origin) in r.shared_records().zip(log.epoch(k).0) {
            let key = m.key(self.layout);
            match self.ledger.apply(m) {
                Outcome::Inserted => {
                    self.origins.insert(key, origin.clone());
                }
                Outcome::Retracted(_) => {
                    self.origins.remove(&key);
                }
                Outcome::Duplicate | Outcome::Rejected(_) => {}
            }
        }
        self.ledger.settle();
    }

    /// Writes epoch `k` (number `r.epoch`): a segment, or every `compact_every` segments a
    /// snapshot of the live records and every rejected row so far.
    fn write(
        &mut self,
        r: &EpochReport,
        log: &InputLog,
        k: usize,
        jobs: &[Job],
    ) -> Result<(), String> {
        let cut = log.cut_of(k);
        let progress = Progress {
            jobs,
            triggers: r.triggers,
            offsets: &cut.offsets,
        };
        if self.compact_every > 0 && self.state.segments() as u64 + 1 >= self.compact_every {
            let live: Vec<(&Match, &str, u64)> = self
                .ledger
                .live()
                .map(|m| {
                    let (source, row) = &self.origins[&m.key(self.layout)];
                    (m, &**source, *row)
                })
                .collect();
            let mut rejected = log.bad[..cut.bad_len].to_vec();
            rejected.extend_from_slice(&log.ledger_bad);
            return self.state.compact(r.epoch, &live, &rejected, &progress);
        }
        let (origins, bad) = log.epoch(k);
        let records: Vec<(&Match, &str, u64)> = r
            .input_records()
            .zip(origins)
            .map(|(m, (source, row))| (m, &**source, *row))
            .collect();
        self.state.append(r.epoch, &records, bad, &progress)
    }
}

/// After an epoch is applied (and its jobs sent): writes it to the state directory, then
/// commits its offsets. A state that cannot be written stops the run: going on would commit
/// offsets whose records a restart could not recover. The epoch rebuilt from the state
/// (`restoring`) only feeds the ledger.
fn make_durable(
    r: &EpochReport,
    first_epoch: u64,
    restoring: bool,
    log: &Mutex<InputLog>,
    durable: Option<&mut Durable>,
    committer: Option<&Committer>,
    jobs: &[Job],
) {
    let log = log.lock().expect("log lock");
    let k = (r.epoch - first_epoch) as usize;
    if let Some(d) = durable {
        d.observe(r, &log, k);
        if !restoring {
            if let Err(e) = d.write(r, &log, k, jobs) {
                eprintln!("\nerror: epoch {} could not be made durable: {e}; stopping before its offsets are committed", r.epoch);
                std::process::exit(1);
            }
        }
    }
    if let (Some(c), false) = (committer, restoring) {
        // Not fatal: the next epoch's commit covers these offsets too.
        if let Err(e) = c.commit(&log.cut_of(k).offsets) {
            eprintln!("\nwarning: epoch {}: {e}", r.epoch);
        }
    }
}

/// Points (one per game and epoch, and one per job) that `GET /api/timeline` keeps.
pub const TIMELINE_POINTS: usize = 10_000;

/// Default address of the web server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8650";

/// The server's record tables, kept across epochs: the live matches, and every record
/// rejected so far (with how much of the run's rejections they already hold).
pub struct Published {
    pub matches: LiveMatches,
    pub dead: DeadLetters,
    /// Source rejections (`InputLog::bad`) and ledger ones (`InputLog::ledger_bad`) already
    /// in `dead`.
    bad_seen: usize,
    ledger_seen: usize,
}

impl Published {
    pub fn new(layout: nashflow_schemas::Layout) -> Published {
        Published {
            matches: LiveMatches::new(layout),
            dead: DeadLetters::default(),
            bad_seen: 0,
            ledger_seen: 0,
        }
    }

    /// Takes in an epoch's records and the rejections after those seen (`log` holds every
    /// one so far).
    fn observe(&mut self, r: &EpochReport, log: &InputLog) {
        self.matches.apply(r.input);
        self.dead.extend(&log.bad[self.bad_seen..]);
        self.bad_seen = log.bad.len();
        self.dead.extend(&log.ledger_bad[self.ledger_seen..]);
        self.ledger_seen = log.ledger_bad.len();
    }
}

/// Publishes one epoch's snapshot (every table at this epoch) and its event. `tables` holds
/// the live matches and the records rejected so far, `jobs` every job so far.
pub fn publish(
    shared: &Shared,
    r: &EpochReport,
    cfg: &EngineConfig,
    tables: &Published,
    jobs: &[Job],
) {
    let reports = game_reports(r.state.iter().map(|(g, s)| (g.clone(), s.clone())), cfg);
    let snap = crate::serve::views::snapshot(
        &reports,
        r.epoch,
        vec![
            ("matches", tables.matches.table()),
            ("dead_letters", tables.dead.table()),
            ("jobs", Table::of(tables::jobs(jobs))),
        ],
    );
    {
        let mut timeline = shared.timeline.lock().expect("timeline lock");
        for (game, s) in r.state {
            timeline.push(serde_json::json!({
                "kind": "epoch", "epoch": r.epoch, "game": game,
                "exploitability": crate::report::num(s.analysis.eval.exploitability),
            }));
        }
        for j in r.jobs {
            timeline.push(serde_json::json!({
                "kind": "job", "epoch": r.epoch, "game": j.game, "job_id": j.job_id,
                "target_policy": j.target_policy, "exploitability": j.exploitability,
            }));
        }
        // A long run keeps only the latest points (its memory and the page's fetch stay
        // bounded); the oldest go in blocks, so dropping them is amortised.
        if timeline.len() > TIMELINE_POINTS + TIMELINE_POINTS / 4 {
            let excess = timeline.len() - TIMELINE_POINTS;
            timeline.drain(..excess);
        }
    }
    shared.counters.set_epoch_seconds(r.seconds);
    // Every source's rejected rows and the ledger's (conflicts, bad retractions) so far.
    shared.counters.dead_letters.store(
        tables.dead.len() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let games: serde_json::Map<String, serde_json::Value> = r
        .state
        .iter()
        .map(|(g, s)| {
            (
                g.clone(),
                crate::report::num(s.analysis.eval.exploitability),
            )
        })
        .collect();
    shared.publish(
        snap,
        serde_json::json!({"epoch": r.epoch, "records": r.records, "exploitability": games, "jobs": r.jobs.len()}),
    );
}

fn game_reports(
    state: impl IntoIterator<Item = (String, GameSnapshot)>,
    cfg: &EngineConfig,
) -> Vec<GameReport> {
    state
        .into_iter()
        .map(|(game, s)| GameReport {
            game,
            policies: s.policies,
            records: s.records,
            solver: cfg.analysis.solver.kind,
            missing: cfg.analysis.missing,
            analysis: s.analysis,
            elo: Some(s.elo),
            cells: s.cells,
        })
        .collect()
}

pub fn run(args: &RunArgs) -> Result<()> {
    crate::interrupt::install();
    if args.epoch_records == 0 {
        bail!("--epoch-records must be at least 1");
    }
    let sinks: Vec<JobSink> = args
        .jobs
        .iter()
        .map(|s| s.parse::<JobSink>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    if !(args.ci_level > 0.0 && args.ci_level < 1.0) {
        bail!("--ci-level must be in (0, 1), got {}", args.ci_level);
    }
    let trigger = (!args.no_trigger).then(|| TriggerConfig {
        threshold: args.trigger_threshold,
        relative: args.trigger_mode == "relative",
        hysteresis: args.trigger_hysteresis,
        cooldown: args.trigger_cooldown,
    });
    if let Some(t) = &trigger {
        t.validate().map_err(anyhow::Error::msg)?;
    }
    let cfg = EngineConfig {
        trigger,
        replicates: args.bootstrap,
        level3_every: args.level3_every,
        level2_every: args.level2_every,
        ..EngineConfig::new(
            usize::from(args.workers),
            args.model.layout,
            args.model.analysis(0, args.ci_level),
        )
    };
    if let Some(b) = &cfg.analysis.bounds {
        b.validate().map_err(anyhow::Error::msg)?;
    }
    if args.kafka.is_none() {
        for (flag, given) in [
            ("--state", args.state.is_some()),
            ("--dead-letter-topic", args.dead_letter_topic.is_some()),
            ("--kafka-property", !args.kafka_properties.is_empty()),
        ] {
            if given {
                bail!("{flag} applies to a Kafka source: add --kafka BROKERS");
            }
        }
    }
    if args.ingest_token.is_some() && args.exit_at_end {
        bail!("--ingest-token keeps the run open for HTTP ingest; it cannot be combined with --exit-at-end");
    }
    let (mut durable, restored) = match &args.state {
        Some(dir) => {
            let (state, restored) = StateDir::open(dir).map_err(anyhow::Error::msg)?;
            let durable = Durable {
                state,
                compact_every: args.state_compact_every,
                ledger: Ledger::holding(args.model.layout),
                layout: args.model.layout,
                origins: Default::default(),
            };
            (Some(durable), restored)
        }
        None => (None, None),
    };
    let restored_epoch = restored.as_ref().map(|r| r.epoch);
    // Before the sources and the server: an archive of another run fails the run at once.
    let mut archive = args
        .archive
        .as_deref()
        .map(|dir| nashflow_connectors::archive::Archive::open(dir, restored_epoch))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let cfg = EngineConfig {
        first_epoch: restored_epoch.unwrap_or(0),
        triggers: restored
            .as_ref()
            .map(|r| r.triggers.clone())
            .unwrap_or_default(),
        ..cfg
    };
    let (tx, rx) = mpsc::sync_channel(in_flight(args.epoch_records));
    // Sources first: a bad source flag fails before the server announces itself.
    let server_tx = tx.clone();
    let sources = start_sources(args, restored.as_ref(), tx)?;
    let server = serve(args, server_tx)?;
    if args.ingest_token.is_some() && server.is_none() {
        bail!("--ingest-token needs the web server, which did not start (see above); give a free --listen ADDR");
    }
    // The server's `matches` and `dead_letters` tables.
    let mut live = server.as_ref().map(|_| Published::new(args.model.layout));
    let mut log = InputLog {
        kept: args
            .out
            .as_ref()
            .map(|_| Ledger::holding(args.model.layout)),
        ..Default::default()
    };
    let mut jobs: Vec<Job> = Vec::new();
    let restored_records = restored.map(|r: Restored| {
        if !args.quiet {
            eprintln!(
                "resuming after epoch {} from {} ({} records, {} rejected rows, {} jobs)",
                r.epoch,
                args.state.as_deref().unwrap_or(Path::new("")).display(),
                r.records.len(),
                r.bad.len(),
                r.jobs.len()
            );
        }
        log.offsets = r.offsets;
        log.bad = r.bad;
        jobs = r.jobs;
        r.records
            .into_iter()
            .map(|(m, source, row)| {
                log.took(source.into(), row);
                m
            })
            .collect::<Vec<Match>>()
    });
    let log = Arc::new(Mutex::new(log));
    let epochs = Epochs {
        restored: restored_records,
        rx,
        pending: VecDeque::new(),
        max_records: args.epoch_records,
        tick: Some(args.tick_ms())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis),
        log: log.clone(),
        done: false,
        stopping: false,
    };
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut archive_error: Option<anyhow::Error> = None;
    let mut hinted: std::collections::HashSet<String> = Default::default();
    let mut slow_hinted = false;
    let out = run_stream(epochs, &cfg, |r| {
        // The epoch rebuilt from `--state` is already durable, archived, and its jobs sent.
        let restoring = restored_epoch == Some(r.epoch);
        let r = &EpochReport {
            jobs: if restoring { &[] } else { r.jobs },
            ..r.clone()
        };
        let k = (r.epoch - cfg.first_epoch) as usize;
        {
            let mut log = log.lock().expect("log lock");
            log.ledger_rejections(r.dead_letters);
            if let Some(kept) = &mut log.kept {
                for m in r.shared_records() {
                    kept.apply(m);
                }
                kept.settle();
            }
        }
        if let (Some(archive), None, false) = (&mut archive, &archive_error, restoring) {
            let reports = game_reports(r.state.iter().map(|(g, s)| (g.clone(), s.clone())), &cfg);
            let tables = tables::archive_tables(&reports, r.epoch, r.input_records(), r.jobs);
            if let Err(e) = archive.write_epoch(r.epoch, &tables) {
                archive_error = Some(anyhow::Error::msg(e));
            }
        }
        if !args.quiet {
            let line = status_line(r, started);
            if terminal {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
        }
        if !slow_hinted {
            if let Some(hint) = slow_epoch_hint(r.kernel_seconds, args) {
                eprintln!("\n{hint}");
                slow_hinted = true;
            }
        }
        // Once per game: the epoch it first applies (the state it describes persists).
        let (solver, missing) = (cfg.analysis.solver.kind, cfg.analysis.missing);
        for (game, snap) in &r.changed {
            let Some(s) = snap.filter(|_| !hinted.contains(*game)) else {
                continue;
            };
            let g = &s.analysis.matrices;
            if let Some(hint) = crate::report::imputation_hint(game, g, solver, missing) {
                eprintln!("\n{hint}");
                hinted.insert(game.to_string());
            }
        }
        for (epoch, game, reason) in r.errors {
            eprintln!("\nwarning: epoch {epoch}: analysis of game `{game}` failed ({reason}); its previous snapshot stands");
        }
        for job in r.jobs {
            for sink in &sinks {
                // A sink failure is reported, not fatal: the job is still in the jobs table.
                if let Err(e) = sink.send(job) {
                    eprintln!("\nwarning: job {} not delivered: {e}", job.job_id);
                }
            }
        }
        jobs.extend(r.jobs.iter().cloned());
        make_durable(
            r,
            cfg.first_epoch,
            restoring,
            &log,
            durable.as_mut(),
            sources.committer.as_ref(),
            &jobs,
        );
        if let Some(sim) = &sources.simulator {
            sim.observe(r);
        }
        if let (Some(shared), Some(tables)) = (&server, &mut live) {
            tables.observe(r, &log.lock().expect("log lock"));
            publish(shared, r, &cfg, tables, &jobs);
        }
        log.lock().expect("log lock").forget_through(k);
    });
    if !args.quiet && terminal {
        eprintln!();
    }
    let merged = archive.map_or(Ok(()), |a| a.finish());
    if let Some(e) = archive_error {
        return Err(e.context("writing the archive"));
    }
    merged.map_err(|e| anyhow::anyhow!("merging the archive: {e}"))?;
    let mut log = std::mem::take(&mut *log.lock().expect("log lock"));
    if let Some(fatal) = log.fatal.take() {
        bail!("{fatal}");
    }
    if out.epochs == 0 {
        if log.bad.is_empty() {
            bail!("no records in the input: it has no data rows");
        }
        return Err(every_row_bad(
            &log.bad,
            args.out.as_deref(),
            cfg.first_epoch,
        ));
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} records in {} epochs, {:.2} s ({:.0} records/s, {} worker(s))",
            log.taken,
            out.epochs,
            secs,
            log.taken as f64 / secs.max(1e-9),
            args.workers
        );
    }
    // Every epoch's callback turned its ledger rejections into dead letters.
    let mut dead_letters = std::mem::take(&mut log.bad);
    dead_letters.append(&mut log.ledger_bad);
    report_dead_letters(&dead_letters, args.out.as_deref(), false);
    let last = cfg.first_epoch + out.epochs - 1;
    let reports = game_reports(out.state, &cfg);
    if let Some(dir) = &args.out {
        // The accepted records: the ledger over everything taken.
        let ledger = log.kept.as_ref().expect("kept with --out");
        tables::write_snapshot(dir, &reports, last, ledger.live(), &dead_letters, &jobs)?;
        eprintln!("wrote Parquet tables to {}", dir.display());
    }
    match args.format {
        OutputFormat::Json => {
            let mut doc = crate::report::document(&reports, dead_letters.len());
            doc["epoch"] = serde_json::json!(last);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Table => {
            for (k, r) in reports.iter().enumerate() {
                if k > 0 {
                    println!();
                }
                print!("{}", r.to_table());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{slow_epoch_hint, InputLog};
    use crate::cli::{Cli, Command, RunArgs};
    use clap::Parser;

    fn args(flags: &[&str]) -> RunArgs {
        let argv = ["nashflow", "run", "-i", "log.jsonl"].iter().chain(flags);
        match Cli::parse_from(argv).command {
            Command::Run(r) => *r,
            _ => unreachable!("a run command"),
        }
    }

    /// Slower than the tick (or a second without one) names the settings still at their
    /// every-epoch defaults; faster, or with none left, says nothing.
    #[test]
    fn slow_epochs_name_the_settings_left_to_loosen() {
        let hint = slow_epoch_hint(0.5, &args(&["--epoch-ms", "100"])).unwrap();
        assert!(
            hint.contains("0.50 s, longer than the 100 ms tick"),
            "{hint}"
        );
        for knob in ["--level3-every", "--level2-every", "--bootstrap"] {
            assert!(hint.contains(knob), "{hint}");
        }
        assert!(slow_epoch_hint(0.05, &args(&["--epoch-ms", "100"])).is_none());
        assert!(
            slow_epoch_hint(0.5, &args(&[])).is_none(),
            "under a second, no tick"
        );
        let hint = slow_epoch_hint(2.0, &args(&["--no-level3", "--bootstrap", "0"])).unwrap();
        assert!(hint.contains("--level2-every") && !hint.contains("--level3-every"));
        let loosened = args(&["--no-level3", "--bootstrap", "0", "--level2-every", "5"]);
        assert!(slow_epoch_hint(2.0, &loosened).is_none());
    }

    /// The input log keeps per-record origins only for the epochs not yet applied (and the
    /// records read ahead), and still names the right source row of each rejection.
    #[test]
    fn input_log_forgets_applied_epochs() {
        use nashflow_operators::engine::DeadLetter;
        use nashflow_schemas::Match;
        let mut log = InputLog::default();
        let source: std::sync::Arc<str> = "f.jsonl".into();
        let m = Match::new("x", "g", "a", "b", 1.0, 0.0);
        // Epochs of 3 records, rows 1.. of one file; epoch k's records are seqs 3k+1..=3k+3.
        let take = |log: &mut InputLog, n: usize| {
            for _ in 0..n {
                let row = log.taken as u64 + 1;
                log.took(source.clone(), row);
            }
        };
        let dead = |seq: u64| DeadLetter {
            seq,
            reason: format!("r{seq}"),
            record: m.clone(),
        };
        for k in 0..50usize {
            // The first record of each epoch after the first was read ahead.
            take(&mut log, if k == 0 { 3 } else { 2 });
            log.cut();
            take(&mut log, 1);
            let first = 3 * k as u64 + 1;
            assert_eq!(log.epoch(k).0[0].1, first);
            log.ledger_rejections(&[dead(first + 2)]);
            log.forget_through(k);
            assert!(log.origin.len() == 1 && log.cuts.len() == 1, "epoch {k}");
        }
        let rows: Vec<u64> = log.ledger_bad.iter().map(|e| e.row).collect();
        assert_eq!(rows, (0..50).map(|k| 3 * k + 3).collect::<Vec<u64>>());
        assert_eq!(log.ledger_bad[7].reason, "r24");
        assert_eq!(log.taken, 151);
    }
}
