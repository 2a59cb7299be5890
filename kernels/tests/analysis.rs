//! Cell statistics, metrics, lifts, attribution, bootstrap and ratings against hand
//! computations and closed forms.

mod common;

use common::*;
use nashflow_kernels::attribution::{attribution, AttributionConfig};
use nashflow_kernels::bootstrap::{bootstrap, quantile, BootstrapConfig, Unit};
use nashflow_kernels::lifts::lifts;
use nashflow_kernels::metrics::{evaluate, welfare};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::ratings::{bradley_terry, elo, nash_averaging};
use nashflow_kernels::stats::{aggregate, impute, GameMatrices, Missing, SeatView};
use nashflow_kernels::{Matrix, SolverConfig, SolverKind};

fn seat(pi: f64, pj: f64) -> SeatView {
    SeatView {
        payoff_i: pi,
        payoff_j: pj,
        batna_i: None,
        batna_j: None,
        agreement: None,
        ef1: None,
    }
}

#[test]
fn cell_statistics_follow_the_data_model() {
    // Match 0 vs 1 (payoffs 4, 1, BATNAs 1 and 2), and a self-play match of 0 (2, 6).
    let v = SeatView {
        payoff_i: 4.0,
        payoff_j: 1.0,
        batna_i: Some(1.0),
        batna_j: Some(2.0),
        agreement: Some(true),
        ef1: Some(true),
    };
    let s = seat(2.0, 6.0);
    let obs = vec![
        v.observe(0, 1),
        v.swapped().observe(1, 0),
        s.observe(0, 0),
        s.swapped().observe(0, 0),
    ];
    let cells = aggregate(2, obs);
    let c01 = cells[1];
    assert_eq!(c01.n, 1);
    assert_eq!(c01.mean(), Some(4.0));
    assert_eq!(c01.nw_mean(), Some(2.0)); // sqrt(4·1)
    assert_eq!(c01.nw_plus_mean(), Some(0.0)); // p_j − b_j < 0
    assert_eq!((c01.ef1_n, c01.ef1_true, c01.agreements), (1, 1, 1));
    assert_eq!(c01.score(), 1.0);
    // Self-play contributes both payoffs to (0,0).
    let c00 = cells[0];
    assert_eq!((c00.n, c00.mean()), (2, Some(4.0)));
    assert_eq!(c00.score(), 0.0);
    // Fixed point: a retraction cancels exactly, and the CI uses the sample variance.
    let mut c = c00;
    c.plus(&cells[1].scaled(-1));
    c.plus(&cells[1]);
    assert_eq!(c, c00);
    assert!((c00.std_dev() - 8f64.sqrt()).abs() < 1e-9); // payoffs 2 and 6
    let g = GameMatrices::from_cells(2, &cells, Missing::ColumnMean).unwrap();
    assert_eq!(g.payoff.to_rows(), vec![vec![4.0, 4.0], vec![1.0, 4.0]]);
    // (1,1) was never observed: column mean of column 1's known entries = 4.
    assert!(!g.known[3]);
}

#[test]
fn ef1_rate_ignores_failed_negotiations() {
    let mk = |agreement: Option<bool>, ef1: Option<bool>| {
        SeatView {
            agreement,
            ef1,
            ..seat(1.0, 1.0)
        }
        .observe(0, 1)
    };
    let cells = aggregate(
        2,
        vec![
            mk(Some(true), Some(true)),
            mk(Some(true), Some(false)),
            mk(Some(false), Some(true)), // ignored: no agreement
            mk(None, Some(true)),        // no agreement column: counted
            mk(Some(true), None),        // no value: ignored
        ],
    );
    assert_eq!((cells[1].ef1_n, cells[1].ef1_true), (3, 2));
}

#[test]
fn imputation_policies() {
    let raw = vec![Some(1.0), None, Some(3.0), Some(5.0)];
    assert_eq!(
        impute(2, &raw, Missing::ColumnMean).to_rows(),
        vec![vec![1.0, 5.0], vec![3.0, 5.0]]
    );
    assert_eq!(
        impute(2, &raw, Missing::Zero).to_rows(),
        vec![vec![1.0, 0.0], vec![3.0, 5.0]]
    );
    assert_eq!(
        impute(2, &raw, Missing::Prior(0.5)).to_rows(),
        vec![vec![1.0, 0.5], vec![3.0, 5.0]]
    );
    // A column with no data at all falls back to 0.
    assert_eq!(
        impute(2, &[Some(1.0), None, Some(2.0), None], Missing::ColumnMean).to_rows(),
        vec![vec![1.0, 0.0], vec![2.0, 0.0]]
    );
    assert_eq!(
        "prior=0.25".parse::<Missing>().unwrap(),
        Missing::Prior(0.25)
    );
    assert!("prior=x".parse::<Missing>().is_err());
}

#[test]
fn regret_and_exploitability_definitions() {
    let m = rps();
    let e = evaluate(&m, &[1.0, 0.0, 0.0]);
    // Pure rock: paper gains 1, value 0.
    assert_eq!(e.value, 0.0);
    assert_eq!(e.regret, vec![0.0, 1.0, -1.0]);
    assert_eq!(e.exploitability, 1.0);
}

fn matrices(payoff: Matrix) -> GameMatrices {
    let n = payoff.n();
    GameMatrices {
        counts: Matrix::filled(n, 1.0),
        nw: payoff.clone(),
        nw_plus: Matrix::zeros(n),
        ef1: Matrix::filled(n, 1.0),
        score: Matrix::zeros(n),
        known: vec![true; n * n],
        payoff,
    }
}

/// A general-sum search that runs out of budget on a baseline game says so per candidate;
/// with the default budget every baseline of a small game is searched to the end.
#[test]
fn level2_reports_baselines_whose_search_ran_out() {
    let mut r = nashflow_kernels::rng::SplitMix64::new(31);
    let m = Matrix::from_fn(9, |_, _| r.next_f64());
    let g = matrices(m.clone());
    let full = SolverConfig::new(SolverKind::Mene);
    let sigma = full.solve(&m).unwrap();
    let l = lifts(&g, &sigma, &full).unwrap();
    assert!(l.level2.iter().all(|x| x.baseline_exact));
    let tight = SolverConfig {
        mene_node_limit: 1,
        ..full
    };
    let l = lifts(&g, &sigma, &tight).unwrap();
    let short = l.level2.iter().filter(|x| !x.baseline_exact).count();
    assert!(
        short > 0,
        "a one-node budget cannot search 8-policy games to the end"
    );
}

/// σ's support is ranked by mass, whatever rounding does to its (equal) payoffs against σ;
/// a policy clearly worse against σ comes after it.
#[test]
fn leaderboard_ranks_the_support_by_mass() {
    use nashflow_kernels::analysis::{analyze_game, AnalysisConfig};
    // Weighted rock-paper-scissors (σ = 1/2, 1/3, 1/6) and a fourth policy losing to all.
    let m = Matrix::from_rows(&[
        vec![0.0, -1.0, 2.0, 1.0],
        vec![1.0, 0.0, -3.0, 1.0],
        vec![-2.0, 3.0, 0.0, 1.0],
        vec![-1.0, -1.0, -1.0, 0.0],
    ])
    .unwrap();
    let n = 4;
    let cells = aggregate(
        n,
        (0..n).flat_map(|i| {
            let m = &m;
            (0..n).map(move |j| seat(m[(i, j)], m[(j, i)]).observe(i, j))
        }),
    );
    let cfg = AnalysisConfig {
        level3: false,
        ..Default::default()
    };
    let mut a = analyze_game(n, &cells, &[], &cfg, &mut Silent).unwrap();
    assert_close(&a.sigma, &[0.5, 1.0 / 3.0, 1.0 / 6.0, 0.0], 1e-9);
    let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    // Rounding that puts the heaviest policy a hair below the others changes nothing.
    a.eval.payoff_vs_sigma[0] -= 1e-12;
    a.eval.payoff_vs_sigma[2] += 1e-12;
    assert_eq!(a.ranking(&names), vec![0, 1, 2, 3]);
}

#[test]
fn level1_and_level2_on_a_hand_computed_game() {
    // Policies 0, 1 form a prisoner's-dilemma-free coordination; 2 is a strong newcomer.
    let m = Matrix::from_rows(&[
        vec![1.0, 0.0, 0.5],
        vec![0.0, 2.0, 0.5],
        vec![3.0, 3.0, 1.0],
    ])
    .unwrap();
    let g = matrices(m.clone());
    let solver = SolverConfig::new(SolverKind::Mene);
    let sigma = solver.solve(&m).unwrap();
    assert_close(&sigma, &[0.0, 0.0, 1.0], 1e-9); // 2 dominates
    let l = lifts(&g, &sigma, &solver).unwrap();
    // Candidate 2, baseline {0,1}: coordination game with max-entropy NE (2/3, 1/3).
    let l1 = l.level1.iter().find(|x| x.candidate == 2).unwrap();
    let sb = [2.0 / 3.0, 1.0 / 3.0];
    let pl0 = 0.5 - (sb[0] * 1.0 + sb[1] * 0.0);
    let pl1 = 0.5 - (sb[0] * 0.0 + sb[1] * 2.0);
    assert_close(
        &[l1.per_incumbent[0].1, l1.per_incumbent[1].1],
        &[pl0, pl1],
        1e-7,
    );
    assert!((l1.uniform_avg - (pl0 + pl1) / 2.0).abs() < 1e-7);
    assert!((l1.equilibrium_avg - (sb[0] * pl0 + sb[1] * pl1)).abs() < 1e-7);
    // The min is the smallest per-incumbent lift itself, which is the hand value to rounding.
    let smallest = l1
        .per_incumbent
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(l1.min, smallest);
    assert!((l1.min - pl0.min(pl1)).abs() < 1e-12);
    let l2 = l.level2.iter().find(|x| x.candidate == 2).unwrap();
    // W(B) for uw = 2·v_B with v_B = 2/3; W(P) = 2·1.
    assert!((l2.delta_eco[0] - (2.0 - 4.0 / 3.0)).abs() < 1e-7);
    assert!((l2.entry_mass - 1.0).abs() < 1e-9);
    assert!((l2.equilibrium_shift - 1.0).abs() < 1e-7);
    // incumbent_shift(0) = (Mσ⁺)_0 − (M_B σ_B)_0 = 0.5 − 2/3.
    assert!((l2.incumbent_shifts[0].1 - (0.5 - 2.0 / 3.0)).abs() < 1e-7);
}

#[test]
fn exact_shapley_is_efficient_and_symmetric() {
    for seed in 0..3 {
        let base = random_matrix(5, seed);
        // Make policies 3 and 4 exact clones (symmetric players).
        let m = Matrix::from_fn(5, |i, j| {
            let (a, b) = (i.min(3), j.min(3));
            base[(a, b)]
        });
        let g = matrices(m.clone());
        let solver = SolverConfig::new(SolverKind::Mene);
        let cfg = AttributionConfig {
            exact_max: 8,
            samples: 0,
            seed: 0,
        };
        let a = attribution(&g, &solver, &cfg, &mut Silent).unwrap();
        assert_eq!(a.method, "exact");
        let full = lifts_value(&g, &solver);
        for (w, v_full) in full.iter().enumerate() {
            let total: f64 = a.shapley[w].iter().sum();
            assert!(
                (total - v_full).abs() < 1e-9,
                "efficiency: {total} vs {v_full}"
            );
            assert!((a.shapley[w][3] - a.shapley[w][4]).abs() < 1e-9, "symmetry");
            assert!((a.banzhaf[w][3] - a.banzhaf[w][4]).abs() < 1e-9, "symmetry");
        }
    }
}

fn lifts_value(g: &GameMatrices, solver: &SolverConfig) -> [f64; 3] {
    let s = solver.solve(&g.payoff).unwrap();
    nashflow_kernels::lifts::coalition_welfare(g, &s)
}

#[test]
fn shapley_of_an_additive_game_and_monte_carlo_agreement() {
    // Diagonal game: every policy plays only itself well; with σ_S max-entropy NE of a
    // diagonal game, v(S) is a known closed form, and MC must approach exact.
    let m = random_matrix(6, 11);
    let g = matrices(m);
    let solver = SolverConfig::new(SolverKind::Mene);
    let exact = attribution(
        &g,
        &solver,
        &AttributionConfig {
            exact_max: 8,
            samples: 0,
            seed: 0,
        },
        &mut Silent,
    )
    .unwrap();
    let mc = attribution(
        &g,
        &solver,
        &AttributionConfig {
            exact_max: 2,
            samples: 400,
            seed: 3,
        },
        &mut Silent,
    )
    .unwrap();
    assert_eq!(mc.method, "monte-carlo");
    for i in 0..6 {
        let (e, x, se) = (exact.shapley[0][i], mc.shapley[0][i], mc.shapley_se[0][i]);
        assert!(se > 0.0);
        assert!(
            (e - x).abs() < 5.0 * se + 1e-9,
            "policy {i}: exact {e}, MC {x} ± {se}"
        );
        let (e, x, se) = (exact.banzhaf[0][i], mc.banzhaf[0][i], mc.banzhaf_se[0][i]);
        assert!(
            (e - x).abs() < 5.0 * se + 1e-9,
            "banzhaf {i}: exact {e}, MC {x} ± {se}"
        );
    }
    // Same seed, same numbers.
    let again = attribution(
        &g,
        &solver,
        &AttributionConfig {
            exact_max: 2,
            samples: 400,
            seed: 3,
        },
        &mut Silent,
    )
    .unwrap();
    assert_eq!(mc, again);
}

#[test]
fn bootstrap_is_seeded_and_covers_the_estimate() {
    // Two policies, noisy payoffs; the point estimate lies inside its own percentile interval.
    let mut r = nashflow_kernels::rng::SplitMix64::new(5);
    let mut units = Vec::new();
    for _ in 0..400 {
        let (i, j) = (r.below(2), r.below(2));
        let pi = if i == 0 { 0.6 } else { 0.4 } + 0.2 * (r.next_f64() - 0.5);
        // Not constant-sum: in a constant-sum game v = c/2 in every replicate.
        let pj = 0.5 + 0.2 * (r.next_f64() - 0.5);
        let v = seat(pi, pj);
        units.push(Unit {
            stratum: (i, j),
            obs: vec![v.observe(i, j), v.swapped().observe(j, i)],
        });
    }
    let solver = SolverConfig::new(SolverKind::Mene);
    let cfg = BootstrapConfig {
        replicates: 50,
        seed: 9,
        level: 0.9,
    };
    let b = bootstrap(
        2,
        &units,
        Missing::ColumnMean,
        &solver,
        &cfg,
        &mut Silent,
        None,
    )
    .unwrap();
    // Reproducible, and a start hint for the replicates' solves changes nothing.
    for hint in [None, Some(&[0usize][..]), Some(&[0, 1][..])] {
        let again = bootstrap(
            2,
            &units,
            Missing::ColumnMean,
            &solver,
            &cfg,
            &mut Silent,
            hint,
        );
        assert_eq!(b, again.unwrap());
    }
    let cells = aggregate(2, units.iter().flat_map(|u| u.obs.clone()));
    let g = GameMatrices::from_cells(2, &cells, Missing::ColumnMean).unwrap();
    let s = solver.solve(&g.payoff).unwrap();
    let w = welfare(&g, &s);
    assert!(
        b.value.lo <= w.value && w.value <= b.value.hi,
        "{:?} vs {}",
        b.value,
        w.value
    );
    assert!(b.value.hi - b.value.lo > 0.0);
    assert!(b.mass[0].lo <= b.mass[0].median && b.mass[0].median <= b.mass[0].hi);
    // Another seed gives different replicates.
    let b3 = bootstrap(
        2,
        &units,
        Missing::ColumnMean,
        &solver,
        &BootstrapConfig { seed: 10, ..cfg },
        &mut Silent,
        None,
    )
    .unwrap();
    assert_ne!(b.value, b3.value);
}

#[test]
fn quantiles_interpolate_like_numpy() {
    let xs = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&xs, 0.5), 2.5);
    assert_eq!(quantile(&xs, 0.0), 1.0);
    assert!((quantile(&xs, 0.9) - 3.7).abs() < 1e-12);
}

#[test]
fn bradley_terry_two_players_closed_form() {
    // 30 wins vs 10 losses (draws count half): θ0 − θ1 = ln(w/l).
    let score = Matrix::from_rows(&[vec![0.0, 30.0], vec![10.0, 0.0]]).unwrap();
    let bt = bradley_terry(&score).unwrap();
    let (a, b) = (bt.ratings[0].unwrap(), bt.ratings[1].unwrap());
    let scale = 400.0 / std::f64::consts::LN_10;
    assert!(((a.rating - b.rating) / scale - 3f64.ln()).abs() < 1e-8);
    assert!(((a.rating + b.rating) / 2.0 - 1500.0).abs() < 1e-8);
    // Fisher SE of the difference: 1/sqrt(n p (1−p)) = 1/sqrt(40·0.75·0.25); each side half.
    let se_diff = 1.0 / (40.0f64 * 0.75 * 0.25).sqrt();
    assert!((a.se / scale - se_diff / 2.0).abs() < 1e-8);
    assert!(!bt.regularized);
    // A perfect record has no finite MLE: regularised, still finite and ordered.
    let perfect = Matrix::from_rows(&[vec![0.0, 5.0], vec![0.0, 0.0]]).unwrap();
    let bt = bradley_terry(&perfect).unwrap();
    assert!(bt.regularized);
    assert!(bt.ratings[0].unwrap().rating > bt.ratings[1].unwrap().rating);
}

#[test]
fn bradley_terry_recovers_three_player_strengths() {
    // Expected win counts under θ = (1, 0, −1) with 1000 games per pair are the MLE's fixed point.
    let th = [1.0f64, 0.0, -1.0];
    let p = |a: usize, b: usize| 1.0 / (1.0 + (th[b] - th[a]).exp());
    let score = Matrix::from_fn(3, |a, b| if a == b { 0.0 } else { 1000.0 * p(a, b) });
    let bt = bradley_terry(&score).unwrap();
    let scale = 400.0 / std::f64::consts::LN_10;
    for (r, t) in bt.ratings.iter().zip(th) {
        assert!(((r.unwrap().rating - 1500.0) / scale - t).abs() < 1e-7);
    }
}

#[test]
fn bradley_terry_standard_errors_are_the_pseudo_inverse_of_the_fisher_information() {
    // Five players with uneven schedules; the Fisher information at the MLE is a graph
    // Laplacian, whose Moore–Penrose inverse (by SVD here) is the covariance of the centred θ.
    let mut r = nashflow_kernels::rng::SplitMix64::new(11);
    let n = 5;
    let score = Matrix::from_fn(n, |a, b| {
        if a == b {
            0.0
        } else {
            (r.next_f64() * 40.0 + 1.0).round()
        }
    });
    let bt = bradley_terry(&score).unwrap();
    let scale = 400.0 / std::f64::consts::LN_10;
    let theta: Vec<f64> = bt
        .ratings
        .iter()
        .map(|x| (x.unwrap().rating - 1500.0) / scale)
        .collect();
    let mut fisher = nalgebra::DMatrix::<f64>::zeros(n, n);
    for a in 0..n {
        for b in 0..n {
            if a != b {
                let games = score[(a, b)] + score[(b, a)];
                let p = 1.0 / (1.0 + (theta[b] - theta[a]).exp());
                // Each unordered pair once.
                let h = games * p * (1.0 - p) / 2.0;
                fisher[(a, a)] += h;
                fisher[(b, b)] += h;
                fisher[(a, b)] -= h;
                fisher[(b, a)] -= h;
            }
        }
    }
    let cov = fisher.pseudo_inverse(1e-9).unwrap();
    for (a, rating) in bt.ratings.iter().enumerate() {
        let se = cov[(a, a)].sqrt() * scale;
        assert!(
            (rating.unwrap().se - se).abs() < 1e-9 * se,
            "player {a}: {} vs {se}",
            rating.unwrap().se
        );
    }
}

#[test]
fn elo_and_nash_averaging() {
    let r = elo(2, vec![(0, 1, 1.0)]);
    assert!((r[0] - 1516.0).abs() < 1e-9 && (r[1] - 1484.0).abs() < 1e-9);
    // Nash averaging of RPS: every policy scores 0 against the uniform Nash.
    assert_close(&nash_averaging(&rps(), None).unwrap(), &[0.0; 3], 1e-9);
    // A dominant policy in a transitive game gets a positive Nash average.
    let t = Matrix::from_rows(&[
        vec![0.0, 1.0, 1.0],
        vec![-1.0, 0.0, 1.0],
        vec![-1.0, -1.0, 0.0],
    ])
    .unwrap();
    // A = t − tᵀ, p* = pure 0, so the average is column 0 of A: both others lose 2 to it.
    assert_close(&nash_averaging(&t, None).unwrap(), &[0.0, -2.0, -2.0], 1e-9);
}

#[test]
fn poisson_weights_are_deterministic_with_poisson_moments() {
    use nashflow_kernels::bootstrap::poisson_weight;
    let n = 200_000;
    let ws: Vec<f64> = (0..n)
        .map(|k| poisson_weight(7, 3, &format!("m{k}")) as f64)
        .collect();
    let mean = ws.iter().sum::<f64>() / n as f64;
    let var = ws.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n as f64;
    // Poisson(1): mean 1, variance 1, P(0) = e^{-1}; tolerances ≈ 5 standard errors.
    assert!((mean - 1.0).abs() < 0.012, "mean {mean}");
    assert!((var - 1.0).abs() < 0.03, "variance {var}");
    let zeros = ws.iter().filter(|w| **w == 0.0).count() as f64 / n as f64;
    assert!((zeros - (-1.0f64).exp()).abs() < 0.006, "P(0) {zeros}");
    assert_eq!(poisson_weight(7, 3, "m1"), poisson_weight(7, 3, "m1"));
    let differs = (0..100)
        .filter(|k| {
            poisson_weight(7, 3, &format!("m{k}")) != poisson_weight(8, 3, &format!("m{k}"))
        })
        .count();
    assert!(differs > 30, "another seed gives other weights");
    // The batched form (one key hash for all replicates) gives the same weights.
    for k in 0..50 {
        let key = format!("m{k}");
        let batched = nashflow_kernels::bootstrap::poisson_weights(7, &key, 32);
        let single: Vec<u32> = (0..32).map(|r| poisson_weight(7, r, &key)).collect();
        assert_eq!(batched, single);
    }
}
