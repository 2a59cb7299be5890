//! `cargo bench -p nashflow-operators --bench engine`: the incremental engine against
//! baselines measured in the same run.
//!
//! 1. Ingest + cell statistics, matches/s per worker, against a hand-written `HashMap`
//!    aggregation over the same records (the practical limit).
//! 2. CPU of one small epoch on top of a large state, against a full recomputation
//!    (re-aggregate every match and replay Elo over them, then solve) of the same prefix:
//!    the process CPU clock, so the kernels' threads count (wall time is printed next to
//!    it). Also against the full recomputation that dedupes by `match_id` first, as the
//!    stream's semantics require. On two leagues: an even one (noise only) and a cyclic one
//!    (a mixed equilibrium with signal).
//!    Each try runs both full passes over a prefix, then 16 small epochs, the first of which
//!    completes that prefix; the ratios are the medians of these neighbours in time, so that
//!    the machine's drift cancels. The passes sweep the engine's working set out of the
//!    caches, and the epochs after them pay for it for five to ten epochs: epochs 8–15 after
//!    the first are the steady state of a live engine; the first, and the three after it,
//!    are reported next to them, and so is the mean of the steady epochs (their median
//!    leaves out the few that fault in fresh memory for the records the engine keeps). The
//!    tries' prefixes are centred on the bench's size. Then
//!    the same with Level 1/2 on a cadence (`level2_every` = 8): the mean of the 8 steady
//!    epochs, one of which recomputes the lifts, is the amortised cost. Then the first
//!    comparison again with epochs of 100 matches instead of 1,000.
//! 3. Match-to-updated-metrics latency at 10k and 100k matches/s with 50 policies: with
//!    100 ms wall-clock epochs an epoch carries rate/10 matches, and a match waits at most
//!    the tick plus the epoch's processing time; the processing time's p50/p99 is reported.
//!
//! Targets (issue #3): ≥ 1M matches/s per worker; ≥ 100× less CPU per epoch than a full
//! recomputation at 1M matches; p99 < 100 ms at 100k matches/s. Sizes scale with
//! `NASHFLOW_BENCH_MATCHES` (default 200k).

use std::collections::HashMap;
use std::time::Instant;

use nashflow_kernels::analysis::{analyze_game, AnalysisConfig};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::ratings::{elo_step, ELO_BASE};
use nashflow_kernels::rng::SplitMix64;
use nashflow_kernels::stats::{aggregate, CellStats};
use nashflow_kernels::{SolverConfig, SolverKind};
use nashflow_operators::cpu::process_cpu_seconds;
use nashflow_operators::engine::{run, run_stream, EngineConfig, EngineOutput};
use nashflow_operators::observe::{cell_updates, observations};
use nashflow_schemas::{Layout, Ledger, Match};

/// The allocator of the `nashflow` binary, so the figures are those of `nashflow run`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bench's leagues, 50 policies each, constant-sum.
#[derive(Clone, Copy, Debug, PartialEq)]
enum League {
    /// Every policy equally strong: seat 0's payoff is uniform on [0, 1] whoever plays. The
    /// meta-game is noise, so its equilibrium (about half the policies) moves with every batch:
    /// the worst case for warm starts.
    Even,
    /// Win/loss with a cyclic edge per ordered pair (`P(a beats b) = ½ + 0.45·(s_ab − s_ba)`,
    /// s uniform, as in the tests' cyclic league): a mixed equilibrium well above the noise.
    Cyclic,
}

/// `count` matches of `league` (its edges from seed 7), ids and draws from `seed`.
fn matches(league: League, count: usize, policies: usize, seed: u64) -> Vec<Match> {
    let names: Vec<String> = (0..policies).map(|k| format!("p{k:02}")).collect();
    let mut edges = SplitMix64::new(7);
    let skill: Vec<f64> = (0..policies * policies).map(|_| edges.next_f64()).collect();
    let mut r = SplitMix64::new(seed);
    (0..count)
        .map(|k| {
            let (a, b) = (r.below(policies), r.below(policies));
            let pi = match league {
                League::Even => r.next_f64(),
                League::Cyclic => {
                    let p = 0.5 + 0.45 * (skill[a * policies + b] - skill[b * policies + a]);
                    if r.next_f64() < p {
                        1.0
                    } else {
                        0.0
                    }
                }
            };
            let (a, b) = (names[a].clone(), names[b].clone());
            Match::new(format!("m{seed}-{k}"), "default", a, b, pi, 1.0 - pi)
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("NASHFLOW_BENCH_MATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let policies = 50;
    let records = matches(League::Even, n, policies, 1);
    let analysis = AnalysisConfig {
        solver: SolverConfig::new(SolverKind::Mene),
        level3: false,
        ..Default::default()
    };
    let cfg = EngineConfig::new(1, Layout::Match, analysis.clone());

    // 1. Ingest + cell statistics.
    let t = Instant::now();
    let mut cells: HashMap<(String, String, String), CellStats> = HashMap::new();
    for m in &records {
        for ((a, b), c) in cell_updates(m, Layout::Match) {
            cells.entry((m.game.clone(), a, b)).or_default().plus(&c);
        }
    }
    let baseline = n as f64 / t.elapsed().as_secs_f64();
    let epoch = 20_000.min(n);
    let epochs: Vec<Vec<Match>> = records.chunks(epoch).map(|c| c.to_vec()).collect();
    let t = Instant::now();
    let out = run(epochs, &cfg);
    let total = t.elapsed().as_secs_f64();
    let kernels: f64 = out.kernel_seconds.iter().sum();
    // Steady state: the epochs' own time (batch hand-off, ledger, dataflow) without the
    // kernels; `total` also pays worker start-up and tearing down the state at the end.
    let epochs_time: f64 = out.epoch_seconds.iter().sum();
    let ingest = n as f64 / (epochs_time - kernels);
    let engine = n as f64 / total;
    println!(
        "ingest + cell statistics, {n} matches, {policies} policies, epochs of {epoch}, 1 worker"
    );
    println!("  HashMap aggregation loop:                 {baseline:>10.0} matches/s");
    println!(
        "  engine, ingest + cell statistics per epoch: {ingest:>8.0} matches/s  ({:.2} of baseline)",
        ingest / baseline
    );
    println!(
        "  engine, whole run incl. kernels, start-up and teardown: {engine:>8.0} matches/s  (kernels {:.0} ms per epoch)",
        kernels * 1e3 / out.epochs as f64
    );
    assert_eq!(out.epochs as usize, n.div_ceil(epoch));

    // 2. Small epochs on top of the whole state vs a full recomputation of the prefix.
    for league in [League::Even, League::Cyclic] {
        small_epochs(league, n, policies, epoch, 1_000, &analysis, &cfg);
    }
    // The same with the lifts (most of the kernels) on a cadence: every 8 epochs, so that the
    // 8 steady epochs of a try hold exactly one recomputation and their mean is the
    // amortised cost.
    for league in [League::Even, League::Cyclic] {
        let cadence = EngineConfig {
            level2_every: 8,
            ..cfg.clone()
        };
        small_epochs(league, n, policies, epoch, 1_000, &analysis, &cadence);
    }
    // The same at 100-match epochs (1k matches/s with 100 ms ticks): the kernels' cost per
    // epoch barely changes with the epoch's size, so the ratio depends on it.
    for league in [League::Even, League::Cyclic] {
        small_epochs(league, n, policies, epoch, 100, &analysis, &cfg);
    }

    // 3. Latency: epochs of rate/10 matches (100 ms ticks) on top of the warm league above.
    println!("\nepoch processing time with 100 ms ticks on top of {n} matches, 50 policies (Level 3 off, no bootstrap)");
    for rate in [10_000usize, 100_000] {
        let per_epoch = rate / 10;
        let warm: Vec<Vec<Match>> = records.chunks(epoch).map(|c| c.to_vec()).collect();
        let warm_epochs = warm.len();
        let mut epochs = warm;
        epochs.extend(
            matches(League::Even, per_epoch * 20, policies, 3)
                .chunks(per_epoch)
                .map(|c| c.to_vec()),
        );
        let out = run(epochs, &cfg);
        let mut ts: Vec<f64> = out.epoch_seconds[warm_epochs..].to_vec();
        ts.sort_by(f64::total_cmp);
        let q = |p: f64| ts[((ts.len() - 1) as f64 * p).round() as usize] * 1e3;
        println!(
            "  {rate:>7} matches/s ({per_epoch} per epoch): p50 {:>7.1} ms  p99 {:>7.1} ms  (+ up to 100 ms waiting for the tick)",
            q(0.5),
            q(0.99)
        );
    }
}

/// Epochs of `small` matches on top of `n` against a full recomputation of the same prefix,
/// several times: each try runs the two full passes over the prefix its first epoch
/// completes, then `TRY - 1` more epochs, so the ratio is taken between neighbours in time
/// (this machine's speed drifts by tens of percent over seconds) and the median of the
/// per-try ratios is reported. The passes read every record and sweep the engine's working
/// set (its ledger index, its records) out of the caches; the epochs after them pay for it
/// until it is back, which takes about five to ten epochs. So three medians are reported:
/// the first epoch, epochs 1–3 after it, and the steady state of a live engine (whose epochs
/// follow one another with no full pass between them), epochs `SETTLE`.. after it. With a
/// Level 1/2 cadence in `cfg` (it must be `TRY - SETTLE`), only the mean of the steady
/// epochs is reported, one of which recomputes the lifts: the amortised cost.
fn small_epochs(
    league: League,
    n: usize,
    policies: usize,
    epoch: usize,
    small: usize,
    analysis: &AnalysisConfig,
    cfg: &EngineConfig,
) {
    let tries = 9;
    // Epochs per try; those from `SETTLE` on (after the first) are the steady state.
    const TRY: usize = 16;
    const SETTLE: usize = 8;
    // The tries' prefixes are centred on n.
    let start = n.saturating_sub(tries * TRY * small / 2).max(n / 2);
    let records = matches(league, start, policies, 1);
    let warm: Vec<Vec<Match>> = records.chunks(epoch).map(|c| c.to_vec()).collect();
    let warm_epochs = warm.len();
    let extras: Vec<Vec<Match>> = (0..tries * TRY)
        .map(|k| matches(league, small, policies, 2 + k as u64))
        .collect();
    // The leanest full pass: one sweep into dense cells (policies known up front), then the
    // same kernels.
    let names: Vec<String> = (0..policies).map(|k| format!("p{k:02}")).collect();
    let index: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(k, p)| (p.clone(), k))
        .collect();
    // Elo is sequential over the live matches in arrival order, so the pass applies each
    // match's result as it aggregates it (the engine's tables hold Elo too).
    let dense = move |live: &mut dyn Iterator<Item = &Match>| {
        let mut ratings = vec![ELO_BASE; policies];
        let cells = aggregate(
            policies,
            live.flat_map(|m| {
                let (i, j) = (index[m.policy_i.as_str()], index[m.policy_j.as_str()]);
                let obs = observations(m, Layout::Match, i, j);
                elo_step(&mut ratings, i, j, obs[0].score);
                obs
            }),
        );
        analyze_game(policies, &cells, &[], analysis, &mut Silent).expect("analysis");
        std::hint::black_box(ratings);
    };
    // One pass on the wall clock and on the process CPU clock.
    let timed = |pass: &mut dyn FnMut()| {
        let (t, cpu) = (Instant::now(), process_cpu_seconds());
        pass();
        (t.elapsed().as_secs_f64(), process_cpu_seconds() - cpu)
    };
    // (leanest, deduping) × (wall, CPU) before each try's first epoch, on the prefix it
    // completes.
    let mut passes: Vec<[(f64, f64); 2]> = Vec::new();
    let mut prefix = records;
    let epochs = warm
        .into_iter()
        .chain(extras.into_iter().enumerate().map(|(k, extra)| {
            prefix.extend(extra.iter().cloned());
            if k % TRY != 0 {
                return extra.clone();
            }
            let lean = timed(&mut || dense(&mut prefix.iter()));
            // What recomputing from the log also has to do when it may hold duplicates,
            // conflicts and retractions (the engine's semantics): dedupe every match by id first.
            let deduped = timed(&mut || {
                let mut ledger: Ledger<&Match> = Ledger::holding(Layout::Match);
                for m in &prefix {
                    ledger.apply(m);
                }
                dense(&mut ledger.live());
            });
            passes.push([lean, deduped]);
            // The epoch's records as a source hands them over: just decoded, not swept out of
            // the caches by the passes (which read every other record of the prefix).
            extra.clone()
        }));
    // The engine pulls the next epoch (running the passes) before it starts that epoch's
    // clocks, with its workers idle, so the passes are not part of any epoch's time.
    // A live run keeps no per-epoch history: collect the figures from each epoch's report.
    let mut out = EngineOutput::default();
    let state = run_stream(epochs, cfg, |r| {
        out.epoch_seconds.push(r.seconds);
        out.epoch_cpu_seconds.push(r.cpu_seconds);
        out.kernel_seconds.push(r.kernel_seconds);
    })
    .state;
    let median = |xs: Vec<f64>| {
        let mut xs = xs;
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    // Per try: its first epoch, the median of the three after it, and that of the steady ones.
    let tried = |xs: &[f64]| -> [Vec<f64>; 3] {
        let tries = xs[warm_epochs..].chunks(TRY);
        [
            tries.clone().map(|t| t[0]).collect(),
            tries.clone().map(|t| median(t[1..4].to_vec())).collect(),
            tries.map(|t| median(t[SETTLE..].to_vec())).collect(),
        ]
    };
    let [first_wall, _, wall] = tried(&out.epoch_seconds);
    let [first_cpu, after_cpu, cpu] = tried(&out.epoch_cpu_seconds);
    let [_, _, kernels] = tried(&out.kernel_seconds);
    let pass = |which: usize, clock: usize| -> Vec<f64> {
        passes
            .iter()
            .map(|p| if clock == 0 { p[which].0 } else { p[which].1 })
            .collect()
    };
    let ratio = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    if cfg.level2_every > 1 {
        assert_eq!(
            cfg.level2_every as usize,
            TRY - SETTLE,
            "one recomputation per window"
        );
        let mean: Vec<f64> = out.epoch_cpu_seconds[warm_epochs..]
            .chunks(TRY)
            .map(|t| t[SETTLE..].iter().sum::<f64>() / (TRY - SETTLE) as f64)
            .collect();
        println!(
            "\n{league:?} league, Level 1/2 every {} epochs (--level2-every): mean of epochs {SETTLE}–{} after the passes, one of which recomputes the lifts: {:.2} ms CPU  ({:.1}× less CPU than the full pass, {:.1}× than the deduping one)",
            cfg.level2_every,
            TRY - 1,
            median(mean.clone()) * 1e3,
            ratio(&pass(0, 1), &mean),
            ratio(&pass(1, 1), &mean),
        );
        return;
    }
    let support = state["default"].analysis.support_size;
    let last = start + (tries - 1) * TRY * small + small;
    println!("\n{league:?} league (support {support} of {policies}): epochs of {small} matches on top of {start}–{last}, {tries} tries of a full recomputation then {TRY} epochs (medians; ratios are medians of each try's; CPU = every thread of the process)");
    println!(
        "  full recomputation (re-aggregate, Elo, solve): {:>7.2} ms CPU  {:>7.2} ms wall",
        median(pass(0, 1)) * 1e3,
        median(pass(0, 0)) * 1e3
    );
    println!(
        "  the same with dedupe by match_id first:        {:>7.2} ms CPU  {:>7.2} ms wall",
        median(pass(1, 1)) * 1e3,
        median(pass(1, 0)) * 1e3,
    );
    println!(
        "  incremental epoch, steady ({SETTLE}–{} after):      {:>7.2} ms CPU  {:>7.2} ms wall  ({:.1}× less CPU than the full pass, {:.1}× than the deduping one; {:.1}× less wall; kernels {:.2} ms wall)",
        TRY - 1,
        median(cpu.clone()) * 1e3,
        median(wall.clone()) * 1e3,
        ratio(&pass(0, 1), &cpu),
        ratio(&pass(1, 1), &cpu),
        ratio(&pass(0, 0), &wall),
        median(kernels) * 1e3
    );
    // The median leaves out the epochs that fault in fresh memory for the records they keep
    // (the kernel zeroes a 2 MB page every few epochs here, 2–6 ms each): the mean of every
    // steady epoch is the amortised cost.
    let steady: Vec<f64> = out.epoch_cpu_seconds[warm_epochs..]
        .chunks(TRY)
        .flat_map(|t| t[SETTLE..].iter().copied())
        .collect();
    let mean = steady.iter().sum::<f64>() / steady.len() as f64;
    println!(
        "  incremental epoch, steady, mean (amortised):  {:>7.2} ms CPU                 ({:.1}× / {:.1}× less CPU than the passes' medians; includes fresh memory faulted in)",
        mean * 1e3,
        median(pass(0, 1)) / mean,
        median(pass(1, 1)) / mean,
    );
    println!(
        "  the epoch right after the full passes:         {:>7.2} ms CPU  {:>7.2} ms wall  ({:.1}× / {:.1}× less CPU; caches swept by the passes)",
        median(first_cpu.clone()) * 1e3,
        median(first_wall) * 1e3,
        ratio(&pass(0, 1), &first_cpu),
        ratio(&pass(1, 1), &first_cpu),
    );
    println!(
        "  the three epochs after that one:               {:>7.2} ms CPU                 ({:.1}× / {:.1}× less CPU; caches still refilling)",
        median(after_cpu.clone()) * 1e3,
        ratio(&pass(0, 1), &after_cpu),
        ratio(&pass(1, 1), &after_cpu),
    );
}
