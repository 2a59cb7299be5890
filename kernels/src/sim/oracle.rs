//! The built-in best-response oracle (DESIGN §7, issue #4): searches the bargaining
//! concession family for a best response to a mixture σ over a population, by simulation.
//!
//! A candidate's value is its mean normalised payoff over `matches` matches against opponents
//! drawn from σ, half of them in each seat. Every candidate faces the same matches (common
//! random numbers: match k uses the Philox stream of (seed, k) for the deal and stream 2 for
//! the opponent), so comparisons between candidates are not blurred by sampling noise.
//! The search is the cross-entropy method over (start, end, ln β): Gaussian proposals, the
//! best `elite` of each generation refit the mean and spread.

use super::bargain::{self, BargainPolicy};
use super::philox::MatchRng;

#[derive(Clone, Copy, Debug)]
pub struct OracleConfig {
    pub generations: usize,
    pub candidates: usize,
    pub elite: usize,
    /// Evaluation matches per candidate.
    pub matches: u64,
    pub seed: u64,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            generations: 6,
            candidates: 32,
            elite: 6,
            matches: 1500,
            seed: 0,
        }
    }
}

/// Mean normalised payoff of `candidate` against opponents drawn from `sigma` over
/// `population`, on the common evaluation matches of `seed`.
pub fn payoff_vs(
    candidate: &BargainPolicy,
    population: &[BargainPolicy],
    sigma: &[f64],
    matches: u64,
    seed: u64,
) -> f64 {
    let cdf: Vec<f64> = sigma
        .iter()
        .scan(0.0, |acc, s| {
            *acc += s;
            Some(*acc)
        })
        .collect();
    let total = cdf.last().copied().unwrap_or(0.0);
    let mut sum = 0.0;
    for k in 0..matches {
        let u = MatchRng::with_stream(seed, k, 2).unit() * total;
        let j = cdf
            .iter()
            .position(|&c| u < c)
            .unwrap_or(population.len() - 1);
        let seat = (k % 2) as usize;
        let mut rng = MatchRng::new(seed, k);
        let o = if seat == 0 {
            bargain::play([candidate, &population[j]], &mut rng)
        } else {
            bargain::play([&population[j], candidate], &mut rng)
        };
        sum += o.normalized()[seat];
    }
    sum / matches as f64
}

/// The oracle's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct BestResponse {
    pub policy: BargainPolicy,
    /// Its payoff against σ on the evaluation matches.
    pub payoff: f64,
}

fn candidate(x: [f64; 3]) -> BargainPolicy {
    BargainPolicy::Concession {
        start: x[0].clamp(0.0, 1.0),
        end: x[1].clamp(0.0, 1.0),
        beta: x[2].clamp(-4.0, 4.0).exp(),
    }
}

/// Cross-entropy search of the concession family for a best response to σ.
pub fn best_response(
    population: &[BargainPolicy],
    sigma: &[f64],
    cfg: &OracleConfig,
) -> BestResponse {
    let mut mean = [0.7, 0.5, 0.0];
    let mut spread = [0.3, 0.3, 1.5];
    let mut best: Option<BestResponse> = None;
    let mut noise = MatchRng::with_stream(cfg.seed ^ 0x0AC1E, 0, 3);
    // Box–Muller from two Philox words.
    let mut gauss = move || {
        let (u1, u2) = (noise.unit().max(1e-12), noise.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    for _ in 0..cfg.generations {
        let mut scored: Vec<([f64; 3], f64)> = (0..cfg.candidates)
            .map(|_| {
                let x = [0, 1, 2].map(|d| mean[d] + spread[d] * gauss());
                let x = [
                    x[0].clamp(0.0, 1.0),
                    x[1].clamp(0.0, 1.0),
                    x[2].clamp(-4.0, 4.0),
                ];
                (
                    x,
                    payoff_vs(&candidate(x), population, sigma, cfg.matches, cfg.seed),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let elite = &scored[..cfg.elite.clamp(1, scored.len())];
        for d in 0..3 {
            let m = elite.iter().map(|e| e.0[d]).sum::<f64>() / elite.len() as f64;
            let v = elite.iter().map(|e| (e.0[d] - m).powi(2)).sum::<f64>() / elite.len() as f64;
            mean[d] = m;
            spread[d] = v.sqrt().max(0.02);
        }
        if best.as_ref().is_none_or(|b| scored[0].1 > b.payoff) {
            best = Some(BestResponse {
                policy: candidate(scored[0].0),
                payoff: scored[0].1,
            });
        }
    }
    best.expect("at least one generation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_response_is_at_least_as_good_as_every_preset() {
        let pop: Vec<BargainPolicy> = ["walk", "fair"]
            .iter()
            .map(|p| BargainPolicy::preset(p).unwrap())
            .collect();
        let sigma = [0.3, 0.7];
        let cfg = OracleConfig {
            generations: 4,
            candidates: 16,
            matches: 600,
            ..OracleConfig::default()
        };
        let br = best_response(&pop, &sigma, &cfg);
        let again = payoff_vs(&br.policy, &pop, &sigma, cfg.matches, cfg.seed);
        assert!(
            (again - br.payoff).abs() < 1e-12,
            "deterministic evaluation"
        );
        for name in crate::sim::bargain::PRESETS {
            let p = BargainPolicy::preset(name).unwrap();
            let v = payoff_vs(&p, &pop, &sigma, cfg.matches, cfg.seed);
            assert!(br.payoff >= v - 0.005, "{name}: {v} vs {}", br.payoff);
        }
    }
}
