//! Closed-form games and a brute-force comparison for the solvers.

mod common;

use common::*;
use nashflow_kernels::matrix::entropy;
use nashflow_kernels::maxent::max_entropy;
use nashflow_kernels::polytope::{Polytope, Row};
use nashflow_kernels::ratings::nash_averaging;
use nashflow_kernels::solvers::{
    alpharank, lle, log_fixation, mene, mene_hinted, nash_lp, support_of, LeaveOneOut,
    DEFAULT_NODE_LIMIT,
};
use nashflow_kernels::{Matrix, SolverConfig, SolverKind};

#[test]
fn rps_is_uniform_for_every_nash_solver() {
    let m = rps();
    for kind in [
        SolverKind::Mene,
        SolverKind::NashLp,
        SolverKind::Lle,
        SolverKind::Cce,
    ] {
        let s = SolverConfig::new(kind).solve(&m).unwrap();
        assert_close(&s, &[1.0 / 3.0; 3], 1e-6);
    }
    // α-Rank on a cyclic game is uniform by symmetry.
    assert_close(&alpharank(&m, 50.0, 100.0), &[1.0 / 3.0; 3], 1e-12);
}

#[test]
fn matching_pennies_symmetrised_is_uniform() {
    // Symmetric zero-sum 2x2 with a unique mixed NE (1/2, 1/2).
    let m = Matrix::from_rows(&[vec![0.0, 1.0], vec![-1.0, 0.0]]).unwrap();
    // Pure strategy 0 dominates here: NE is pure 0.
    assert_close(&mene(&m).unwrap(), &[1.0, 0.0], 1e-9);
    // Hawk–dove-like anti-coordination (general-sum): unique symmetric NE (1/2, 1/2).
    let hd = Matrix::from_rows(&[vec![0.0, 1.0], vec![1.0, 0.0]]).unwrap();
    assert_close(&mene(&hd).unwrap(), &[0.5, 0.5], 1e-9);
}

#[test]
fn prisoners_dilemma_is_pure_defect() {
    // Rows: cooperate, defect.
    let m = Matrix::from_rows(&[vec![3.0, 0.0], vec![5.0, 1.0]]).unwrap();
    for kind in [SolverKind::Mene, SolverKind::Lle] {
        let s = SolverConfig::new(kind).solve(&m).unwrap();
        assert!(s[1] > 0.999, "{kind}: {s:?}");
    }
    // PRD returns the average of all iterates (OpenSpiel's default), so the early transient
    // keeps a little mass on cooperate; the average still leans almost entirely to defect.
    let s = SolverConfig::new(SolverKind::Prd).solve(&m).unwrap();
    assert!(s[1] > 0.95, "prd: {s:?}");
    assert_eq!(mene(&m).unwrap(), vec![0.0, 1.0]);
}

#[test]
fn clones_split_mass_evenly() {
    // RPS with rock cloned: the Nash set is σ_R1 + σ_R2 = 1/3; max entropy splits it evenly.
    let m = Matrix::from_rows(&[
        vec![0.0, 0.0, -1.0, 1.0],
        vec![0.0, 0.0, -1.0, 1.0],
        vec![1.0, 1.0, 0.0, -1.0],
        vec![-1.0, -1.0, 1.0, 0.0],
    ])
    .unwrap();
    assert_close(
        &mene(&m).unwrap(),
        &[1.0 / 6.0, 1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0],
        1e-7,
    );
    // A general-sum game with clones: coordination on two identical copies of a strategy.
    let g = Matrix::from_rows(&[
        vec![2.0, 2.0, 0.0],
        vec![2.0, 2.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ])
    .unwrap();
    // Equilibria: mass on {0,1} (any split), pure 2, and a mix; the largest entropy is the
    // mixed one with both clones: σ = (1/6, 1/6, 2/3)·? — check against brute force instead.
    let s = mene(&g).unwrap();
    assert!(
        (s[0] - s[1]).abs() < 1e-7,
        "clones must get equal mass: {s:?}"
    );
    assert!(rel_exploitability(&g, &s) < 1e-7);
    assert!((entropy(&s) - brute_force_max_entropy(&g)).abs() < 1e-7);
}

#[test]
fn dominated_strategies_get_zero_mass() {
    // RPS plus a strategy strictly dominated by paper... and one dominated by everything.
    let m = Matrix::from_rows(&[
        vec![0.0, -1.0, 1.0, 2.0],
        vec![1.0, 0.0, -1.0, 2.0],
        vec![-1.0, 1.0, 0.0, 2.0],
        vec![-2.0, -2.0, -2.0, 0.0],
    ])
    .unwrap();
    let s = mene(&m).unwrap();
    assert_eq!(s[3], 0.0);
    assert_close(&s[..3], &[1.0 / 3.0; 3], 1e-7);
    let g = Matrix::from_rows(&[vec![1.0, 3.0], vec![0.0, 2.0]]).unwrap();
    assert_eq!(mene(&g).unwrap(), vec![1.0, 0.0]);
}

#[test]
fn coordination_game_picks_the_highest_entropy_equilibrium() {
    // Pure (1,0), pure (0,1) and mixed (1/2,1/2) are all symmetric NE; max entropy = mixed.
    let m = Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
    assert_close(&mene(&m).unwrap(), &[0.5, 0.5], 1e-9);
}

#[test]
fn constant_matrix_is_uniform() {
    let m = Matrix::filled(5, 0.3);
    assert_close(&mene(&m).unwrap(), &[0.2; 5], 1e-9);
}

fn brute_force_max_entropy(m: &Matrix) -> f64 {
    nashflow_kernels::solvers::brute_force_max_entropy(m).unwrap()
}

#[test]
fn mene_matches_brute_force_on_random_games() {
    // General-sum, plus games with deliberate ties (rounded payoffs) that make degenerate
    // equilibrium sets.
    for n in 2..=8 {
        for seed in 0..6u64 {
            let raw = random_matrix(n, 1000 * n as u64 + seed);
            let games = [
                raw.clone(),
                Matrix::from_fn(n, |i, j| (raw[(i, j)] * 2.0).round()),
                Matrix::from_fn(n, |i, j| (raw[(i, j)] * 0.8).round()),
            ];
            for m in games {
                let s = mene(&m).unwrap();
                assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                assert!(
                    rel_exploitability(&m, &s) < 1e-6,
                    "not a NE: {s:?} for {m:?}"
                );
                let brute = brute_force_max_entropy(&m);
                assert!(
                    entropy(&s) >= brute - 1e-9,
                    "n={n} seed={seed}: entropy {} < brute {brute} for {m:?}",
                    entropy(&s)
                );
            }
        }
    }
}

#[test]
fn mene_on_random_zero_sum_games_is_max_entropy() {
    for n in [3, 5, 8] {
        for seed in 0..4 {
            let m = random_zero_sum(n, seed);
            let s = mene(&m).unwrap();
            assert!(rel_exploitability(&m, &s) < 1e-7);
            assert!(entropy(&s) >= brute_force_max_entropy(&m) - 1e-9);
            // nash-lp finds *an* equilibrium of the same game.
            let l = nash_lp(&m).unwrap();
            assert!(rel_exploitability(&m, &l) < 1e-7);
        }
    }
}

#[test]
fn alpharank_fixation_is_stable_for_huge_selection() {
    // Direct formula overflows to NaN for u ≪ 0; the log form stays finite and monotone.
    let m = 50.0;
    for &u in &[-1e4, -100.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 100.0, 1e4] {
        assert!(log_fixation(u, m).is_finite(), "u={u}");
    }
    assert!((log_fixation(0.0, m) - (1.0f64 / 50.0).ln()).abs() < 1e-12);
    // Continuity at 0 and agreement with the direct formula where it is safe.
    let direct = |u: f64| ((1.0 - (-u).exp()) / (1.0 - (-m * u).exp())).ln();
    for &u in &[-3.0, -0.5, 0.5, 3.0] {
        assert!((log_fixation(u, m) - direct(u)).abs() < 1e-10);
    }
    assert!((log_fixation(1e-9, m) - log_fixation(0.0, m)).abs() < 1e-6);
    // Large α·payoff: still a distribution concentrated on the dominant strategy.
    let pd = Matrix::from_rows(&[vec![3.0, 0.0], vec![5.0, 1.0]]).unwrap();
    let p = alpharank(&pd, 50.0, 1e4);
    assert!(p.iter().all(|x| x.is_finite()));
    assert!(p[1] > 1.0 - 1e-12);
}

#[test]
fn alpharank_two_strategy_closed_form() {
    // Two strategies: π_0/π_1 = ρ(0 invades 1)/ρ(1 invades 0).
    let m = Matrix::from_rows(&[vec![0.0, 0.2], vec![0.1, 0.0]]).unwrap();
    let (pop, alpha) = (50.0, 5.0);
    let p = alpharank(&m, pop, alpha);
    let r01 = log_fixation(alpha * (0.2 - 0.1), pop); // 0 invades 1
    let r10 = log_fixation(alpha * (0.1 - 0.2), pop);
    let ratio = (r01 - r10).exp();
    assert!((p[0] / p[1] - ratio).abs() < 1e-9 * ratio);
}

#[test]
fn maxent_on_a_simple_polytope() {
    // Max entropy over the simplex with x0 ≤ 0.1: x0 = 0.1, rest uniform.
    let p = Polytope {
        dim: 3,
        n_entropy: 3,
        eq: vec![Row::new(vec![1.0; 3], 1.0)],
        ineq: vec![Row::new(vec![1.0, 0.0, 0.0], 0.1)],
    };
    let r = max_entropy(&p).unwrap();
    assert_close(&r.x, &[0.1, 0.45, 0.45], 1e-9);
}

/// Independent of `max_entropy`: vertices of the Nash polytope `{σ ∈ Δ : Mσ ≤ c/2}` of a
/// constant-sum game found by LPs with random objectives; every convex combination of them is
/// an equilibrium, so none may beat the max-entropy answer.
#[test]
fn mene_beats_every_sampled_equilibrium_of_degenerate_zero_sum_games() {
    use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel};
    for (n, seed) in [(4, 1u64), (5, 2), (6, 3), (7, 4), (8, 5)] {
        // Rounded antisymmetric payoffs have large equilibrium sets.
        let a = random_zero_sum(n, seed);
        let m = Matrix::from_fn(n, |i, j| a[(i, j)].round());
        let best = mene(&m).unwrap();
        let h = entropy(&best);
        let mut rng = nashflow_kernels::rng::SplitMix64::new(seed);
        let mut vertices = Vec::new();
        for _ in 0..12 {
            let mut vars = ProblemVariables::new();
            let s: Vec<_> = (0..n).map(|_| vars.add(variable().min(0.0))).collect();
            let obj: Expression = s.iter().map(|&x| (rng.next_f64() - 0.5) * x).sum();
            let mut model = vars.maximise(obj).using(microlp);
            model = model.with(s.iter().copied().sum::<Expression>().eq(1.0));
            for k in 0..n {
                let u: Expression = (0..n).map(|j| m[(k, j)] * s[j]).sum();
                model = model.with(u.leq(0.0));
            }
            let sol = model.solve().unwrap();
            vertices.push(
                s.iter()
                    .map(|&x| sol.value(x).max(0.0))
                    .collect::<Vec<f64>>(),
            );
        }
        for _ in 0..200 {
            let w: Vec<f64> = (0..vertices.len()).map(|_| -rng.next_f64().ln()).collect();
            let total: f64 = w.iter().sum();
            let mix: Vec<f64> = (0..n)
                .map(|i| {
                    vertices
                        .iter()
                        .zip(&w)
                        .map(|(v, wk)| v[i] * wk / total)
                        .sum()
                })
                .collect();
            assert!(rel_exploitability(&m, &mix) < 1e-7);
            assert!(
                entropy(&mix) <= h + 1e-9,
                "n={n}: sampled NE entropy {} > mene {h}",
                entropy(&mix)
            );
        }
    }
}

/// A 50-policy constant-sum meta-game from a noisy league on which microlp once reported a
/// singular basis (leaving out policy 21) and, with another scaling, false infeasibility:
/// every leave-one-out sub-game must still solve to an equilibrium.
#[test]
fn degenerate_constant_sum_league_solves_everywhere() {
    let rows: Vec<Vec<f64>> =
        serde_json::from_str(include_str!("fixtures/degenerate_constant_sum_50.json")).unwrap();
    let m = Matrix::from_rows(&rows).unwrap();
    assert!(m.constant_sum(1e-9).is_some());
    let s = mene(&m).unwrap();
    assert!(rel_exploitability(&m, &s) < 1e-6);
    for c in 0..m.n() {
        let idx: Vec<usize> = (0..m.n()).filter(|&k| k != c).collect();
        let sub = m.sub(&idx);
        let s = mene(&sub).unwrap_or_else(|e| panic!("leave out {c}: {e}"));
        assert!(rel_exploitability(&sub, &s) < 1e-6, "leave out {c}");
    }
}

#[test]
fn mene_search_budget_returns_an_equilibrium_and_says_so() {
    use nashflow_kernels::solvers::{mene_budgeted, DEFAULT_NODE_LIMIT};
    let m = random_matrix(12, 77);
    let full = mene_budgeted(&m, DEFAULT_NODE_LIMIT).unwrap();
    assert!(full.exact);
    assert_eq!(full.sigma, mene(&m).unwrap());
    let short = mene_budgeted(&m, 3).unwrap();
    assert!(!short.exact);
    assert!(
        rel_exploitability(&m, &short.sigma) < 1e-6,
        "still an equilibrium"
    );
    assert!(entropy(&short.sigma) <= entropy(&full.sigma) + 1e-9);
    // Constant-sum games need no search and are always exact.
    assert!(mene_budgeted(&random_zero_sum(12, 1), 1).unwrap().exact);
}

/// Leave-one-out `mene` of constant-sum games (σ read off where exact, else re-optimised from
/// the game's own optimal tableau) equals a cold `mene` of each subgame. A general-sum game
/// gets no shortcut.
#[test]
fn leave_one_out_equals_solving_each_subgame() {
    for n in [4, 6, 10, 16, 40] {
        for seed in 0..4 {
            let m = random_zero_sum(n, seed);
            let s = mene(&m).unwrap();
            let loo = LeaveOneOut::new(&m, &s).expect("constant-sum");
            for c in 0..n {
                let keep: Vec<usize> = (0..n).filter(|&k| k != c).collect();
                let sub = Matrix::from_fn(n - 1, |a, b| m[(keep[a], keep[b])]);
                let cold = mene(&sub).unwrap();
                let warm = loo.without(c, None, false).unwrap();
                for (a, b) in warm.iter().zip(&cold) {
                    assert!(
                        (a - b).abs() < 1e-12,
                        "n={n} seed={seed} c={c}: {warm:?} vs {cold:?}"
                    );
                }
            }
        }
    }
    let pd = Matrix::from_rows(&[vec![3.0, 0.0], vec![5.0, 1.0]]).unwrap();
    assert!(LeaveOneOut::new(&pd, &mene(&pd).unwrap()).is_none());
}

/// Nash averaging reuses `mene(M)` only where that is `mene(M − Mᵀ)`: constant-sum games.
#[test]
fn nash_averaging_reuses_sigma_only_for_constant_sum_games() {
    for seed in 0..4 {
        let m = random_zero_sum(7, seed);
        let s = mene(&m).unwrap();
        let reused = nash_averaging(&m, Some(&s)).unwrap();
        let solved = nash_averaging(&m, None).unwrap();
        for (a, b) in reused.iter().zip(&solved) {
            assert!((a - b).abs() < 1e-7, "{reused:?} vs {solved:?}");
        }
    }
    // General-sum: a wrong hint is ignored.
    let pd = Matrix::from_rows(&[vec![3.0, 0.0], vec![5.0, 1.0]]).unwrap();
    assert_eq!(
        nash_averaging(&pd, Some(&[1.0, 0.0])).unwrap(),
        nash_averaging(&pd, None).unwrap()
    );
}

/// A support hint (the previous epoch's) changes the cost of `mene`, never its answer: right,
/// stale, wrong, malformed or out-of-range hints all give the cold result bit for bit, on
/// constant-sum games near the hinted one, far from it, and on general-sum games.
#[test]
fn hinted_mene_equals_cold_mene_bit_for_bit() {
    for n in [3, 5, 9, 20, 50] {
        for seed in 0..3 {
            let m0 = random_zero_sum(n, seed);
            let right = support_of(&mene(&m0).unwrap());
            let mut r = nashflow_kernels::rng::SplitMix64::new(seed + 99);
            let noise = random_zero_sum(n, seed + 1000);
            for scale in [1e-6, 1e-3, 0.05, 1.0] {
                let m1 = Matrix::from_fn(n, |i, j| m0[(i, j)] + scale * noise[(i, j)]);
                let cold = mene(&m1).unwrap();
                let random: Vec<usize> = (0..n).filter(|_| r.next_f64() < 0.5).collect();
                let hints: Vec<Vec<usize>> = vec![
                    right.clone(),
                    random,
                    (0..n).collect(),
                    vec![],
                    vec![n + 3],
                    vec![1, 0],
                    vec![0, 0],
                ];
                for hint in &hints {
                    let got = mene_hinted(&m1, DEFAULT_NODE_LIMIT, Some(hint)).unwrap();
                    assert_eq!(
                        got.sigma, cold,
                        "n={n} seed={seed} scale={scale} hint={hint:?}"
                    );
                }
            }
        }
    }
    let general = random_matrix(6, 4);
    let cold = mene(&general).unwrap();
    let hinted = mene_hinted(&general, DEFAULT_NODE_LIMIT, Some(&[0, 2, 4])).unwrap();
    assert_eq!(hinted.sigma, cold);
}

/// An empty game, and payoffs whose range overflows a double (every solver works on the
/// range-normalised matrix), are input errors for every solver, not a panic or a NaN σ.
#[test]
fn games_without_a_finite_range_or_policies_are_input_errors() {
    let huge = Matrix::from_rows(&[vec![1e308, -1e308], vec![-1e308, 1e308]]).unwrap();
    let empty = Matrix::from_rows(&[]).unwrap();
    for kind in SolverKind::ALL {
        for m in [&huge, &empty] {
            let e = SolverConfig::new(kind).solve(m).unwrap_err();
            assert!(
                matches!(e, nashflow_kernels::KernelError::InvalidInput(_)),
                "{kind:?}: {e}"
            );
        }
    }
}

/// `max_k |σ_k − softmax(λ·Aσ)_k|` on the range-normalised matrix A: 0 at a logit QRE.
fn logit_residual(m: &Matrix, sigma: &[f64], lambda: f64) -> f64 {
    let a = m.normalized();
    let u: Vec<f64> = a.mul_vec(sigma).iter().map(|x| lambda * x).collect();
    let top = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = u.iter().map(|x| (x - top).exp()).sum();
    sigma
        .iter()
        .zip(&u)
        .map(|(s, x)| (s - (x - top).exp() / z).abs())
        .fold(0.0, f64::max)
}

#[test]
fn lle_is_a_logit_qre_at_lambda_max() {
    for seed in 0..24u64 {
        let n = 2 + (seed as usize % 9);
        let m = if seed % 2 == 0 {
            random_matrix(n, seed)
        } else {
            random_zero_sum(n, seed)
        };
        let o = lle(&m, 1e3);
        assert!(o.reached, "seed {seed}: the continuation stalled");
        let r = logit_residual(&m, &o.sigma, 1e3);
        assert!(r < 1e-9, "seed {seed}: residual {r:e}, σ {:?}", o.sigma);
    }
}

#[test]
fn lle_reaches_a_large_lambda_max_in_few_steps() {
    // The step cap grows with λ, so λ_max = 10⁶ is reached within the step budget, on a
    // pure coordination game (an exact pitchfork at λ = 2, uniform play all along) too.
    let coordination = Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
    let o = lle(&coordination, 1e6);
    assert!(o.reached);
    assert_close(&o.sigma, &[0.5, 0.5], 1e-12);
    for seed in 0..6u64 {
        let m = random_matrix(3 + seed as usize, 100 + seed);
        let o = lle(&m, 1e6);
        assert!(o.reached, "seed {seed}");
        let r = logit_residual(&m, &o.sigma, 1e6);
        assert!(r < 1e-6, "seed {seed}: residual {r:e}");
    }
}

/// Expected values below come from an independent tracer (Python: the Davidenko ODE of the
/// branch's unit tangent, oriented by `det [J; tᵀ] > 0`, integrated by scipy's DOP853 at
/// rtol 1e-10 to λ = 1000, then Newton at λ = 1000), which shares no code with the kernel.
#[test]
fn lle_reaches_lambda_max_where_the_corrector_meets_rounding_noise() {
    // A strategy vanishing like e^{−λ·gap} puts ln σ near −700, so an absolute Newton
    // tolerance is never met there; stepping in λ stalled at λ ≈ 410 on this game.
    let m = Matrix::from_rows(&[
        vec![
            0.47546450486956493,
            0.13170929761876837,
            0.9726580472997354,
            0.695768948457315,
        ],
        vec![
            0.1288586757637613,
            0.9057554186227444,
            0.10309416055223464,
            0.09265923469986326,
        ],
        vec![
            0.3315509955444087,
            0.9379591602010316,
            0.03302448147910453,
            0.9182072410802024,
        ],
        vec![
            0.6116115786951265,
            0.06705163812025805,
            0.5685917254285109,
            0.4587907225182739,
        ],
    ])
    .unwrap();
    let o = lle(&m, 1e3);
    assert!(o.reached);
    let want = [
        0.6337448334335758,
        1.5081801625809248e-204,
        1.957942289912932e-05,
        0.3662355871435251,
    ];
    assert_close(&o.sigma, &want, 1e-9);
    assert!(logit_residual(&m, &o.sigma, 1e3) < 1e-12);
}

#[test]
fn lle_stays_on_the_principal_branch_past_a_near_bifurcation() {
    // Near λ ≈ 16 the principal branch turns sharply towards pure strategy 0 while another
    // branch, heading to the mixed QRE of strategies 0 and 1 (≈ 0.538 / 0.462, also a QRE at
    // λ = 1000), passes close by. Long steps that ignore the orientation land on it.
    let m = Matrix::from_rows(&[
        vec![
            0.7990900156872612,
            0.298384143785668,
            0.7438724816550131,
            0.9107055302292645,
        ],
        vec![
            0.6903065678263812,
            0.42455378504290675,
            0.6248915185718587,
            0.8552803087512422,
        ],
        vec![
            0.7112645952610148,
            0.25225660133820893,
            0.007620752082920013,
            0.8797588086448973,
        ],
        vec![
            0.6233899990465585,
            0.0634982470684694,
            0.5509553894427747,
            0.5890171959544112,
        ],
    ])
    .unwrap();
    let o = lle(&m, 1e3);
    assert!(o.reached);
    assert_close(&o.sigma, &[1.0, 0.0, 0.0, 0.0], 1e-12);
}

#[test]
fn lle_keeps_tied_strategies_tied_through_a_bifurcation() {
    // Strategies 2 and 3 earn the same against 0 and 1 and each other's deviation loss is
    // the same, so σ_2 = σ_3 all along the branch from uniform play, which passes through a
    // pitchfork near λ ≈ 7.14 (a true bifurcation, not a nearly tied one). The continuation
    // goes straight through it and ends at the QRE (0, 0, ½, ½), on the tied branch.
    let m = Matrix::from_rows(&[
        vec![1.0, 3.0, 0.0, 3.0],
        vec![0.0, 3.0, 0.0, 0.0],
        vec![1.0, 3.0, 2.0, 2.0],
        vec![1.0, 3.0, 1.0, 3.0],
    ])
    .unwrap();
    let o = lle(&m, 1e3);
    assert!(o.reached, "the continuation stalled at the bifurcation");
    assert_close(&o.sigma, &[0.0, 0.0, 0.5, 0.5], 1e-9);
}
