//! Coverage of the sensitivity bounds under the deliberately confounded rating matchmaker,
//! whose true interventional payoffs are known in closed form (issue #7).

use nashflow_kernels::bounds::interval::msm;
use nashflow_kernels::sim::battle::{in_form, round_win_prob, BattleConfig, BattlePolicy};
use nashflow_kernels::sim::{simulate, Game, Matchmaker, SimConfig};

fn binomial(n: u32, k: u32) -> f64 {
    (0..k).map(|x| (n - x) as f64 / (x + 1) as f64).product()
}

fn odds(p: f64) -> f64 {
    p / (1.0 - p)
}

/// A battle league of equal styles under the confounded rating matchmaker, with the truth
/// E[share | do(i meets j)] (form ½ each) and each cell's true Γ (the largest odds ratio
/// between a form-specific and the logged propensity) in closed form.
struct Confounded {
    population: Vec<BattlePolicy>,
    cfg: BattleConfig,
    mm: Matchmaker,
}

impl Confounded {
    fn new(strengths: &[f64], form_effect: f64, shift: f64, temperature: f64) -> Self {
        Confounded {
            population: strengths
                .iter()
                .map(|&s| BattlePolicy {
                    strength: s,
                    style: [1.0 / 3.0; 3],
                })
                .collect(),
            cfg: BattleConfig {
                form_effect,
                ..BattleConfig::default()
            },
            mm: Matchmaker::Rating {
                ratings: strengths.to_vec(),
                shift,
                temperature,
            },
        }
    }

    fn n(&self) -> usize {
        self.population.len()
    }

    fn game(&self) -> Game {
        Game::Battle(self.population.clone(), self.cfg)
    }

    fn truth(&self, i: usize, j: usize) -> f64 {
        let p = |good| {
            round_win_prob(
                &in_form(&self.population[i], Some(good), &self.cfg),
                &self.population[j],
                &self.cfg,
            )
        };
        0.5 * (p(true) + p(false))
    }

    /// E[score | do(i meets j)]: the chance that i wins the majority of the (odd number of)
    /// rounds, form ½ each.
    fn score_truth(&self, i: usize, j: usize) -> f64 {
        let rounds = self.cfg.rounds;
        let majority = |p: f64| -> f64 {
            (rounds / 2 + 1..=rounds)
                .map(|k| {
                    binomial(rounds, k) * p.powi(k as i32) * (1.0 - p).powi((rounds - k) as i32)
                })
                .sum()
        };
        let p = |good| {
            round_win_prob(
                &in_form(&self.population[i], Some(good), &self.cfg),
                &self.population[j],
                &self.cfg,
            )
        };
        0.5 * (majority(p(true)) + majority(p(false)))
    }

    fn gamma(&self, i: usize, j: usize) -> f64 {
        let n = self.n();
        let e = odds(self.mm.logged_propensity(i, j, n));
        [true, false]
            .iter()
            .map(|&g| {
                let r = odds(self.mm.opponent_probability(i, j, g, n)) / e;
                r.max(1.0 / r)
            })
            .fold(1.0, f64::max)
    }
}

#[test]
fn msm_at_the_true_gamma_covers_the_interventional_payoffs() {
    let setup = Confounded::new(&[0.8, 0.3, -0.3, -0.8], 1.0, 0.6, 0.5);
    let (n, game, mm) = (setup.n(), setup.game(), &setup.mm);
    let truth = |i, j| setup.truth(i, j);
    let gamma = |i, j| setup.gamma(i, j);
    let (mut covered, mut cells, mut naive_covered, mut hajek_covered) = (0, 0, 0, 0);
    for seed in 0..60 {
        let sim = simulate(
            &game,
            &SimConfig {
                seed,
                matches: 20_000,
                threads: 1,
                keep_records: true,
            },
            mm,
        );
        for i in 0..n {
            for j in 0..n {
                // Seat 0's view: the policy the matchmaker chose an opponent for.
                let sample: Vec<(f64, f64)> = sim
                    .records
                    .iter()
                    .filter(|m| m.i == i && m.j == j)
                    .map(|m| (m.payoff[0], m.propensity))
                    .collect();
                if sample.len() < 100 {
                    continue;
                }
                cells += 1;
                let t = truth(i, j);
                covered += msm(&sample, gamma(i, j)).unwrap().contains(t) as u32;
                let naive = sample.iter().map(|s| s.0).sum::<f64>() / sample.len() as f64;
                naive_covered += ((naive - t).abs() < 0.01) as u32;
                let h = msm(&sample, 1.0).unwrap().lo;
                hajek_covered += ((h - t).abs() < 0.01) as u32;
            }
        }
    }
    eprintln!("cells {cells}: MSM at true Γ covered {covered}, naive within 0.01: {naive_covered}, Hájek within 0.01: {hajek_covered}");
    assert!(cells > 500, "{cells}");
    assert!(
        covered * 100 >= 95 * cells,
        "MSM at the true Γ covered {covered} of {cells}"
    );
    // The naive mean and the Hájek estimate with the logged (marginal) propensity are biased.
    assert!(
        naive_covered * 2 < cells,
        "naive {naive_covered} of {cells}"
    );
    assert!(
        hajek_covered * 2 < cells,
        "hajek {hajek_covered} of {cells}"
    );
}

/// Where the naive leaderboard order — by payoff against σ, or by Bradley–Terry rating — is
/// wrong about the interventional one, the certificates at the true Γ do not certify it (and
/// they do certify some correct ranks).
#[test]
fn certificates_never_certify_a_naive_rank_that_flips() {
    use nashflow_kernels::bounds::game::{Claim, Method};
    use nashflow_kernels::bounds::{game_bounds, BoundSample, BoundsConfig, CellSummary};
    use nashflow_kernels::ratings::bradley_terry;
    use nashflow_kernels::stats::win_score;
    use nashflow_kernels::Matrix;
    // Two middle policies 0.01 apart in strength: confounding and noise flip their naive
    // order in about a third of the seeds (12 of 40), while the outer ranks stay certifiable.
    let setup = Confounded::new(&[1.5, 0.3, 0.29, -1.5], 1.5, 0.15, 0.4);
    let (n, game, mm) = (setup.n(), setup.game(), &setup.mm);
    let truth = Matrix::from_fn(n, |i, j| setup.truth(i, j));
    let gamma = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| setup.gamma(i, j))
        .fold(1.0, f64::max);
    let sigma = vec![1.0 / n as f64; n];
    let u_true = truth.mul_vec(&sigma);
    // The interventional round robin's rating order: mean true score against the others.
    let score_true: Vec<f64> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&k| k != i)
                .map(|k| setup.score_truth(i, k))
                .sum()
        })
        .collect();
    let (mut flips, mut certified_flips, mut certified_right) = (0, 0, 0);
    let (mut rating_flips, mut rating_certified_flips, mut rating_certified_right) = (0, 0, 0);
    for seed in 0..40 {
        let sim = simulate(
            &game,
            &SimConfig {
                seed: 100 + seed,
                matches: 20_000,
                threads: 1,
                keep_records: true,
            },
            mm,
        );
        let mut samples = vec![Vec::new(); n * n];
        let mut wins = Matrix::zeros(n);
        for m in &sim.records {
            let score = win_score(m.payoff[0], m.payoff[1]);
            samples[m.i * n + m.j].push(BoundSample {
                stratum: None,
                payoff: m.payoff[0],
                score,
                propensity: Some(m.propensity),
            });
            wins[(m.i, m.j)] += score;
            wins[(m.j, m.i)] += 1.0 - score;
        }
        let ratings: Vec<Option<f64>> = bradley_terry(&wins)
            .unwrap()
            .ratings
            .iter()
            .map(|r| r.map(|r| r.rating))
            .collect();
        let cells: Vec<Option<CellSummary>> = samples.iter().map(|s| CellSummary::of(s)).collect();
        let naive = Matrix::from_fn(n, |i, j| cells[i * n + j].as_ref().unwrap().pooled.mean);
        let u = naive.mul_vec(&sigma);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| u[b].total_cmp(&u[a]));
        let bcfg = BoundsConfig {
            gammas: vec![gamma],
            range: Some((0.0, 1.0)),
            gamma_max: 100.0,
        };
        let b = game_bounds(n, &cells, &naive, &sigma, &order, &ratings, &bcfg).unwrap();
        for c in b.certificates.iter().filter(|c| c.method == Method::Msm) {
            match c.claim {
                Claim::RanksAbove { above, below } => {
                    let wrong = u_true[above] < u_true[below];
                    flips += wrong as u32;
                    certified_flips += (wrong && c.certified) as u32;
                    certified_right += (!wrong && c.certified) as u32;
                }
                Claim::RatesAbove { above, below } => {
                    let wrong = score_true[above] < score_true[below];
                    rating_flips += wrong as u32;
                    rating_certified_flips += (wrong && c.certified) as u32;
                    rating_certified_right += (!wrong && c.certified) as u32;
                }
                Claim::NoProfitableDeviation { .. } => {}
            }
        }
    }
    eprintln!("Γ = {gamma:.2}: {flips} naive flips, {certified_flips} of them certified; {certified_right} correct ranks certified");
    eprintln!("ratings: {rating_flips} naive flips, {rating_certified_flips} of them certified; {rating_certified_right} correct ranks certified");
    assert!(rating_flips >= 5, "only {rating_flips} naive rating flips");
    assert_eq!(
        rating_certified_flips, 0,
        "a flipped rating rank was certified"
    );
    assert!(
        rating_certified_right > 0,
        "the rating certificates are not vacuous"
    );
    assert!(
        flips >= 5,
        "the confounded matchmaker flips only {flips} naive ranks"
    );
    assert_eq!(certified_flips, 0, "a flipped rank was certified");
    assert!(certified_right > 0, "the certificates are not vacuous");
}
