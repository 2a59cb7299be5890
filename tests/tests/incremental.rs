//! Incremental = batch: after every epoch, the engine's tables equal what the batch path
//! (ledger → grouping → kernels) computes on the same prefix, for 1 and 2 workers.

use std::collections::BTreeSet;

use nashflow_kernels::analysis::{analyze_game, AnalysisConfig, GameAnalysis};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::ratings::elo;
use nashflow_kernels::rng::SplitMix64;
use nashflow_operators::batch::{group, GameInput};
use nashflow_operators::engine::{run, EngineConfig};
use nashflow_schemas::{Layout, Ledger, Match, Outcome};

fn base(id: String, r: &mut SplitMix64) -> Match {
    let names = ["ant", "bee", "cat", "dog"];
    // Draw in a fixed order: game, seats, payoffs, flags.
    let game = if r.below(3) == 0 { "g2" } else { "g1" };
    let (a, b) = (names[r.below(4)], names[r.below(4)]);
    let pi = (r.next_f64() * 8.0).round() / 4.0 - 1.0;
    let pj = (r.next_f64() * 8.0).round() / 4.0 - 1.0;
    Match {
        batna_i: Some(0.25),
        agreement: Some(r.below(5) != 0),
        ef1: (r.below(2) == 0).then(|| r.below(2) == 0),
        ..Match::new(id, game, a, b, pi, pj)
    }
}

/// New matches mixed with identical duplicates, conflicts, retractions (of live and unknown
/// ids) and re-insertions, cut into random epochs.
fn random_stream(seed: u64, len: usize) -> Vec<Vec<Match>> {
    let mut r = SplitMix64::new(seed);
    let mut sent: Vec<Match> = Vec::new();
    let mut all = Vec::new();
    for k in 0..len {
        let roll = r.below(10);
        let m = if sent.is_empty() || roll < 5 {
            base(format!("m{k}"), &mut r)
        } else {
            let old = sent[r.below(sent.len())].clone();
            match roll {
                5 | 6 => old,
                7 => Match {
                    payoff_i: old.payoff_i + 1.0,
                    ..old
                },
                8 => Match {
                    retract: true,
                    ..old
                },
                _ => Match {
                    retract: true,
                    ..base(format!("ghost{k}"), &mut r)
                },
            }
        };
        sent.push(Match {
            retract: false,
            ..m.clone()
        });
        all.push(m);
    }
    let mut epochs = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let cut = (1 + r.below(25)).min(rest.len());
        epochs.push(rest[..cut].to_vec());
        rest = &rest[cut..];
    }
    epochs
}

fn same_analysis(a: &GameAnalysis, b: &GameAnalysis) -> bool {
    a.sigma == b.sigma
        && a.eval == b.eval
        && a.welfare == b.welfare
        && a.lifts == b.lifts
        && a.attribution == b.attribution
        && a.bradley_terry == b.bradley_terry
        && a.nash_avg == b.nash_avg
        && a.games == b.games
        && a.win_rate == b.win_rate
        && a.matrices == b.matrices
}

fn check(seed: u64, workers: usize) {
    let epochs = random_stream(seed, 220);
    let analysis = AnalysisConfig {
        exact_max: 5,
        ..Default::default()
    };
    let cfg = EngineConfig::new(workers, Layout::Match, analysis.clone());
    let out = run(epochs.clone(), &cfg);
    assert_eq!(out.epochs, epochs.len() as u64);
    let mut ledger = Ledger::new(Layout::Match);
    let mut rejected = Vec::new();
    let mut seq = 0u64;
    for (t, epoch) in epochs.iter().enumerate() {
        for m in epoch {
            seq += 1;
            if let Outcome::Rejected(reason) = ledger.apply(m.clone()) {
                rejected.push((seq, reason));
            }
        }
        let expected = group(ledger.live(), Layout::Match);
        let got = out.state_at(t as u64);
        let names: Vec<&String> = got.keys().collect();
        let want: Vec<&String> = expected.iter().map(|g| &g.game).collect();
        assert_eq!(
            names, want,
            "seed {seed}, workers {workers}, epoch {t}: games"
        );
        for g in &expected {
            let snap = &got[&g.game];
            assert_eq!(snap.policies, g.policies, "epoch {t}, game {}", g.game);
            assert_eq!(
                snap.cells, g.cells,
                "exact cell statistics, epoch {t}, game {}",
                g.game
            );
            assert_eq!(snap.records, g.records);
            let batch =
                analyze_game(g.policies.len(), &g.cells, &[], &analysis, &mut Silent).unwrap();
            assert!(
                same_analysis(&snap.analysis, &batch),
                "seed {seed}, epoch {t}, game {}",
                g.game
            );
            // Sequential Elo over the live results in arrival order, to the bit: the
            // stream's retractions of old records make the engine replay.
            assert_eq!(
                snap.elo,
                elo(g.policies.len(), g.results.iter().copied()),
                "seed {seed}, epoch {t}, game {}: Elo",
                g.game
            );
        }
    }
    // The final state equals the last epoch's reconstruction from the per-epoch changes.
    let last = out.state_at(out.epochs - 1);
    assert_eq!(
        out.state.keys().collect::<Vec<_>>(),
        last.keys().collect::<Vec<_>>()
    );
    for (game, snap) in &out.state {
        assert_eq!(snap.cells, last[game].cells);
        assert!(same_analysis(&snap.analysis, &last[game].analysis));
    }
    let got: Vec<(u64, String)> = out
        .dead_letters
        .iter()
        .map(|d| (d.seq, d.reason.clone()))
        .collect();
    assert_eq!(got, rejected, "dead letters");
    assert!(
        !rejected.is_empty(),
        "the stream exercises conflicts and bad retractions"
    );
}

#[test]
fn engine_equals_batch_on_every_prefix_one_worker() {
    for seed in 0..3 {
        check(seed, 1);
    }
}

#[test]
fn engine_equals_batch_on_every_prefix_two_workers() {
    for seed in 10..12 {
        check(seed, 2);
    }
}

/// The streaming bootstrap's reference: a batch pass over `live` with the same Poisson weights.
fn batch_bootstrap(
    live: Vec<&Match>,
    policies: &[String],
    replicates: u32,
    analysis: &AnalysisConfig,
) -> nashflow_kernels::bootstrap::BootstrapResult {
    use nashflow_kernels::bootstrap::{summarize, BootstrapConfig};
    use nashflow_operators::batch::poisson_replicates;
    let reps = poisson_replicates(live, Layout::Match, policies, replicates, analysis.seed);
    let bc = BootstrapConfig {
        replicates: replicates as usize,
        seed: analysis.seed,
        level: analysis.ci_level,
    };
    summarize(
        policies.len(),
        reps.into_iter(),
        analysis.missing,
        &analysis.solver,
        &bc,
        &mut Silent,
    )
    .unwrap()
}

/// The streaming Poisson bootstrap equals a batch pass with the same weights on every prefix.
#[test]
fn streaming_bootstrap_equals_batch() {
    let epochs = random_stream(21, 150);
    let analysis = AnalysisConfig {
        level3: false,
        seed: 5,
        ..Default::default()
    };
    let cfg = EngineConfig {
        replicates: 8,
        ..EngineConfig::new(2, Layout::Match, analysis.clone())
    };
    let out = run(epochs.clone(), &cfg);
    let mut ledger = Ledger::new(Layout::Match);
    for (t, epoch) in epochs.iter().enumerate() {
        for m in epoch {
            ledger.apply(m.clone());
        }
        let state = out.state_at(t as u64);
        for g in group(ledger.live(), Layout::Match) {
            let live: Vec<&Match> = ledger.live().filter(|m| m.game == g.game).collect();
            let want = batch_bootstrap(live, &g.policies, 8, &analysis);
            let got = state[&g.game]
                .analysis
                .bootstrap
                .as_ref()
                .expect("bootstrap on");
            assert_eq!(got, &want, "epoch {t}, game {}", g.game);
        }
    }
}

/// Runs the engine and walks its epochs, calling `f(t, game, engine's analysis, analyze's on
/// the same prefix)` for every game whose snapshot changed in epoch t.
fn each_changed_game(
    epochs: &[Vec<Match>],
    cfg: &EngineConfig,
    mut f: impl FnMut(u64, &GameInput, &GameAnalysis, GameAnalysis),
) {
    let out = run(epochs.to_vec(), cfg);
    let mut ledger = Ledger::new(Layout::Match);
    for (t, epoch) in (0u64..).zip(epochs) {
        for m in epoch {
            ledger.apply(m.clone());
        }
        let state = out.state_at(t);
        let changed: BTreeSet<&String> = out
            .changes
            .iter()
            .filter(|c| c.0 == t)
            .map(|c| &c.1)
            .collect();
        for g in group(ledger.live(), Layout::Match) {
            // Every live game has a snapshot; one that did not change keeps its last, which
            // was checked in the epoch it changed.
            assert!(state.contains_key(&g.game), "epoch {t}: {} missing", g.game);
            if changed.contains(&g.game) {
                let fresh =
                    analyze_game(g.policies.len(), &g.cells, &[], &cfg.analysis, &mut Silent)
                        .unwrap();
                f(t, &g, &state[&g.game].analysis, fresh);
            }
        }
    }
}

/// A cadenced value's expectation: recomputed (equal to `analyze`'s) on due epochs and
/// whenever the game's policy set changed since its last recomputation, else that
/// recomputation's value. Counts both kinds, so a test can insist it saw each.
struct Cadence<T> {
    every: u64,
    last: std::collections::HashMap<String, (Vec<String>, T)>,
    recomputed: usize,
    kept: usize,
}

impl<T: PartialEq + std::fmt::Debug> Cadence<T> {
    fn new(every: u64) -> Self {
        Cadence {
            every,
            last: Default::default(),
            recomputed: 0,
            kept: 0,
        }
    }

    /// The walk met both kinds of epoch, so both branches of [`Cadence::check`] ran.
    fn assert_saw_both(&self) {
        assert!(
            self.recomputed > 0 && self.kept > 0,
            "{} recomputed, {} kept",
            self.recomputed,
            self.kept
        );
    }

    fn check(&mut self, t: u64, g: &GameInput, got: T, fresh: T) {
        let same_policies = self
            .last
            .get(&g.game)
            .is_some_and(|(p, _)| *p == g.policies);
        if t.is_multiple_of(self.every) || !same_policies {
            assert_eq!(got, fresh, "epoch {t}: recomputed");
            self.last
                .insert(g.game.clone(), (g.policies.clone(), fresh));
            self.recomputed += 1;
        } else {
            assert_eq!(
                got, self.last[&g.game].1,
                "epoch {t}: kept from the last recomputation"
            );
            self.kept += 1;
        }
    }
}

/// With a Level 3 cadence, attribution is recomputed on due epochs and whenever the policy set
/// changes; in between it is the value computed at the last due epoch.
#[test]
fn level3_cadence_keeps_the_last_attribution() {
    let analysis = AnalysisConfig {
        exact_max: 5,
        ..Default::default()
    };
    let cfg = EngineConfig {
        level3_every: 3,
        ..EngineConfig::new(1, Layout::Match, analysis)
    };
    let mut cadence = Cadence::new(3);
    each_changed_game(&random_stream(31, 200), &cfg, |t, g, got, fresh| {
        let got = got.attribution.clone().expect("level 3 on");
        cadence.check(t, g, got, fresh.attribution.unwrap());
    });
    cadence.assert_saw_both();
}

/// With a Level 1/2 cadence, the lifts are recomputed on due epochs and whenever the policy
/// set changes, and in between are those of the last recomputation; everything else is
/// recomputed every epoch.
#[test]
fn level2_cadence_keeps_the_last_lifts() {
    let analysis = AnalysisConfig {
        level3: false,
        ..Default::default()
    };
    let cfg = EngineConfig {
        level2_every: 3,
        ..EngineConfig::new(1, Layout::Match, analysis)
    };
    let mut cadence = Cadence::new(3);
    each_changed_game(&random_stream(37, 200), &cfg, |t, g, got, fresh| {
        assert_eq!(got.sigma, fresh.sigma, "epoch {t}: σ every epoch");
        assert_eq!(got.eval, fresh.eval, "epoch {t}: regret every epoch");
        cadence.check(t, g, got.lifts.clone(), fresh.lifts);
    });
    cadence.assert_saw_both();
}

/// Memory under churn: each epoch inserts 40 new matches and retracts the previous epoch's.
/// The live data size is fixed, so the records the engine holds must stay bounded (fully
/// retracted histories are compacted away) while the tables keep equalling batch.
#[test]
fn churn_with_fixed_live_size_holds_bounded_records() {
    let mut r = SplitMix64::new(99);
    let mut epochs: Vec<Vec<Match>> = Vec::new();
    let mut previous: Vec<Match> = Vec::new();
    for e in 0..60 {
        let fresh: Vec<Match> = (0..40).map(|k| base(format!("e{e}-{k}"), &mut r)).collect();
        let mut epoch: Vec<Match> = previous
            .iter()
            .map(|m| Match {
                retract: true,
                ..m.clone()
            })
            .collect();
        epoch.extend(fresh.iter().cloned());
        previous = fresh;
        epochs.push(epoch);
    }
    let analysis = AnalysisConfig {
        level3: false,
        ..Default::default()
    };
    let cfg = EngineConfig::new(2, Layout::Match, analysis.clone());
    let out = run(epochs.clone(), &cfg);
    // 40 live; each worker's ledger reclaims retracted slots once they outnumber its live
    // records (plus a small slack), so the held count stays near twice the live size.
    let held = *out.held_records.last().unwrap();
    assert!(
        held <= 160,
        "held {held} records after 60 epochs ({} inserted)",
        60 * 80 - 40
    );
    assert!(
        out.held_records[10..].iter().all(|&h| h <= 160),
        "{:?}",
        out.held_records
    );
    // The games' Elo logs likewise drop cancelled results (at most 40 live).
    assert!(
        out.held_results[10..].iter().all(|&h| h <= 2 * 40 + 2 * 16),
        "{:?}",
        out.held_results
    );
    assert!(out.dead_letters.is_empty());
    let mut ledger = Ledger::new(Layout::Match);
    for epoch in &epochs {
        for m in epoch {
            ledger.apply(m.clone());
        }
    }
    let state = out.state_at(epochs.len() as u64 - 1);
    for g in group(ledger.live(), Layout::Match) {
        assert_eq!(state[&g.game].cells, g.cells);
        assert_eq!(
            state[&g.game].elo,
            elo(g.policies.len(), g.results.iter().copied())
        );
    }
}

/// Adds a context and a propensity derived from the record's id (so duplicates and
/// retractions stay identical to their originals); a few records carry neither.
fn with_causal_fields(epochs: Vec<Vec<Match>>) -> Vec<Vec<Match>> {
    use nashflow_kernels::rng::mix;
    let derive = |m: Match| {
        let h = m.match_id.bytes().fold(17u64, |h, b| mix(h ^ b as u64));
        Match {
            context: (h % 7 != 0).then(|| ["x", "y", "z"][(h % 3) as usize].into()),
            propensity: (h % 11 != 0)
                .then(|| 0.05 + 0.9 * ((h >> 11) as f64 / (1u64 << 53) as f64)),
            ..m
        }
    };
    epochs
        .into_iter()
        .map(|e| e.into_iter().map(derive).collect())
        .collect()
}

/// Causal bounds at sensitivity levels `gammas` over the streams' payoff range.
fn causal_bounds(gammas: Vec<f64>) -> nashflow_kernels::bounds::BoundsConfig {
    nashflow_kernels::bounds::BoundsConfig {
        gammas,
        range: Some((-1.0, 2.0)),
        gamma_max: 50.0,
    }
}

/// The `bounds` and `certificates` the engine keeps equal the batch computation on every
/// prefix (including retractions and conflicts), for 2 workers.
#[test]
fn causal_bounds_engine_equals_batch() {
    use nashflow_kernels::analysis::add_bounds;
    use nashflow_operators::batch::bound_cells;
    let epochs = with_causal_fields(random_stream(41, 160));
    let bounds = causal_bounds(vec![1.0, 1.5]);
    let analysis = AnalysisConfig {
        level3: false,
        bounds: Some(bounds.clone()),
        ..Default::default()
    };
    let cfg = EngineConfig::new(2, Layout::Match, analysis.clone());
    let out = run(epochs.clone(), &cfg);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let mut ledger = Ledger::new(Layout::Match);
    let mut with_msm = 0;
    for (t, epoch) in epochs.iter().enumerate() {
        for m in epoch {
            ledger.apply(m.clone());
        }
        let state = out.state_at(t as u64);
        for g in group(ledger.live(), Layout::Match) {
            let mut batch =
                analyze_game(g.policies.len(), &g.cells, &[], &analysis, &mut Silent).unwrap();
            let cells = bound_cells(ledger.live(), Layout::Match, &g.game, &g.policies);
            add_bounds(&mut batch, &g.policies, &cells, &bounds).unwrap();
            let want = batch.bounds.unwrap();
            let got = state[&g.game].analysis.bounds.as_ref().expect("bounds on");
            assert_eq!(got, &want, "epoch {t}, game {}", g.game);
            with_msm += want
                .rows
                .iter()
                .filter(|r| r.method == nashflow_kernels::bounds::game::Method::Msm)
                .count();
            assert!(want.has_context);
        }
    }
    assert!(with_msm > 0, "some cells have complete propensities");
}

/// A cyclic constant-sum league (win/draw/loss, 14 policies, mixed equilibrium) where the
/// engine's warm-started solves do the work: each epoch starts from the game's previous
/// supports, Level 2 from σ's own tableau, and every bootstrap replicate from its previous
/// support. With retractions and 2 workers, every prefix still equals a cold batch analysis
/// (and a cold streaming-bootstrap summary) bit for bit.
#[test]
fn warm_started_solves_equal_cold_batch_on_every_prefix() {
    let n = 14;
    let names: Vec<String> = (0..n).map(|k| format!("p{k:02}")).collect();
    let mut r = SplitMix64::new(7);
    let skill: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..n).map(|_| r.next_f64()).collect())
        .collect();
    let mut all: Vec<Match> = Vec::new();
    for k in 0..4000 {
        if k % 40 == 39 {
            let old = all[r.below(all.len())].clone();
            if !old.retract {
                all.push(Match {
                    retract: true,
                    ..old
                });
                continue;
            }
        }
        let (a, b) = (r.below(n), r.below(n));
        let p_win = 0.5 + 0.45 * (skill[a][b] - skill[b][a]);
        let u = r.next_f64();
        let (pi, pj) = if u < p_win - 0.05 {
            (1.0, 0.0)
        } else if u < p_win + 0.05 {
            (0.5, 0.5)
        } else {
            (0.0, 1.0)
        };
        all.push(Match::new(
            format!("m{k}"),
            "league",
            names[a].clone(),
            names[b].clone(),
            pi,
            pj,
        ));
    }
    let mut epochs = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let cut = (100 + r.below(300)).min(rest.len());
        epochs.push(rest[..cut].to_vec());
        rest = &rest[cut..];
    }
    let analysis = AnalysisConfig {
        level3: false,
        seed: 3,
        ..Default::default()
    };
    let cfg = EngineConfig {
        replicates: 6,
        ..EngineConfig::new(2, Layout::Match, analysis.clone())
    };
    let out = run(epochs.clone(), &cfg);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let mut ledger = Ledger::new(Layout::Match);
    let mut mixed = 0;
    for (t, epoch) in epochs.iter().enumerate() {
        for m in epoch {
            ledger.apply(m.clone());
        }
        let state = out.state_at(t as u64);
        let g = &group(ledger.live(), Layout::Match)[0];
        let got = &state[&g.game].analysis;
        let want = analyze_game(g.policies.len(), &g.cells, &[], &analysis, &mut Silent).unwrap();
        assert!(same_analysis(got, &want), "epoch {t}");
        let want = batch_bootstrap(ledger.live().collect(), &g.policies, 6, &analysis);
        assert_eq!(got.bootstrap.as_ref(), Some(&want), "epoch {t}");
        mixed += usize::from(got.support_size >= 3);
    }
    assert!(
        mixed * 2 >= epochs.len(),
        "the league has mixed equilibria ({mixed} of {} epochs)",
        epochs.len()
    );
}

/// With 2 workers, a game's bound samples reach the worker that holds its cells, so no game
/// ever leaves the state while it has live matches. (Samples were once routed by the game's
/// name and cells by its id: a game then vanished from the state whenever the two hashes
/// picked different workers, which the ids' first-come order made vary from run to run.)
#[test]
fn bounds_and_cells_of_a_game_share_a_worker() {
    let epochs = with_causal_fields(random_stream(41, 160));
    let analysis = AnalysisConfig {
        level3: false,
        bounds: Some(causal_bounds(vec![1.0])),
        ..Default::default()
    };
    let cfg = EngineConfig::new(2, Layout::Match, analysis);
    let mut ledger = Ledger::new(Layout::Match);
    let live: Vec<BTreeSet<String>> = epochs
        .iter()
        .map(|epoch| {
            for m in epoch {
                ledger.apply(m.clone());
            }
            ledger.live().map(|m| m.game.clone()).collect()
        })
        .collect();
    // Ids go to whichever worker interns a name first, so routing varies between runs.
    for run_no in 0..8 {
        let out = run(epochs.clone(), &cfg);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        for (t, games) in live.iter().enumerate() {
            let state: BTreeSet<String> = out.state_at(t as u64).into_keys().collect();
            assert_eq!(&state, games, "run {run_no}, epoch {t}");
        }
    }
}

/// Every table is the same with 1 and 2 workers when everything is on at once: bootstrap
/// replicates, causal bounds, Level 3 on a cadence and the PSRO trigger (its jobs too), over
/// several games with duplicates, conflicts and retractions. Two-worker runs repeat, since
/// which worker owns a game varies between runs.
#[test]
fn one_and_two_workers_agree_with_everything_on() {
    use nashflow_operators::engine::EngineOutput;
    use nashflow_operators::trigger::TriggerConfig;
    let epochs = with_causal_fields(random_stream(77, 200));
    let analysis = AnalysisConfig {
        level3: true,
        bounds: Some(causal_bounds(vec![1.0, 2.0])),
        ..Default::default()
    };
    let config = |workers| EngineConfig {
        replicates: 6,
        level3_every: 3,
        trigger: Some(TriggerConfig {
            threshold: 0.05,
            relative: true,
            hysteresis: 0.2,
            cooldown: 2,
        }),
        ..EngineConfig::new(workers, Layout::Match, analysis.clone())
    };
    // Each epoch's state as text (the solve's own timing left out).
    let tables = |out: &EngineOutput| -> Vec<String> {
        (0..out.epochs)
            .map(|t| {
                let state = out.state_at(t);
                let games: Vec<String> = state
                    .iter()
                    .map(|(game, s)| {
                        let mut a = s.analysis.clone();
                        a.solve_seconds = 0.0;
                        format!("{game} {:?} {:?} {a:?} {:?}", s.policies, s.cells, s.elo)
                    })
                    .collect();
                games.join("\n")
            })
            .collect()
    };
    let one = run(epochs.clone(), &config(1));
    assert!(!one.jobs.is_empty() && !one.dead_letters.is_empty());
    let want = tables(&one);
    for run_no in 0..4 {
        let two = run(epochs.clone(), &config(2));
        let got = tables(&two);
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "run {run_no}, epoch {t}: the two-worker state differs"
            );
        }
        assert_eq!(two.jobs, one.jobs, "run {run_no}");
        assert_eq!(two.dead_letters, one.dead_letters, "run {run_no}");
    }
}

/// An epoch whose only record is inserted and retracted within it changes nothing: no
/// game is re-analysed (its cells and its Elo sequence are as before).
#[test]
fn an_epoch_that_cancels_itself_changes_no_game() {
    let mut r = SplitMix64::new(5);
    let first: Vec<Match> = (0..30).map(|k| base(format!("m{k}"), &mut r)).collect();
    let fresh = Match {
        game: "g1".into(),
        ..base("fresh".into(), &mut r)
    };
    let gone = Match {
        retract: true,
        ..fresh.clone()
    };
    let epochs = vec![first.clone(), vec![fresh, gone], first[..3].to_vec()];
    let out = run(
        epochs,
        &EngineConfig::new(1, Layout::Match, AnalysisConfig::default()),
    );
    assert!(out.changes.iter().any(|c| c.0 == 0));
    assert!(
        out.changes.iter().all(|c| c.0 != 1),
        "{:?}",
        out.changes.iter().map(|c| (c.0, &c.1)).collect::<Vec<_>>()
    );
}
