//! Matchmakers: who meets whom, and the propensity the log records.
//!
//! The propensity of a match is the probability that the matchmaker gave seat 0 this
//! opponent, P(seat 1 = j | seat 0 = i, what the log observes) — the treatment probability of
//! the causal bounds (DESIGN §6). Draws come from the match's matchmaker stream (Philox
//! counter word 3 = 1): seat 0, then (rating matchmaker) the hidden form, then the opponent.

use serde::{Deserialize, Serialize};

use super::philox::MatchRng;

/// One scheduled match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pairing {
    pub i: usize,
    pub j: usize,
    pub propensity: f64,
    /// Seat 0's hidden form (rating matchmaker only): good (`true`) or bad.
    pub form: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Matchmaker {
    /// Both seats uniform; propensity 1/n.
    Uniform,
    /// Seat 0 uniform, seat 1 from `(1 − ε)·σ + ε·uniform` (PSRO-style opponent sampling).
    Sigma { weights: Vec<f64>, epsilon: f64 },
    /// Deliberately confounded: seat 0 (uniform) has a hidden form, good or bad with
    /// probability ½. The matchmaker sees it and looks for an opponent rated near
    /// `r_i + shift` in good form and `r_i − shift` in bad form, with weights
    /// `exp(−|r_j − target| / temperature)`. The log records only the marginal over the form,
    /// `½·(P(j | good) + P(j | bad))`, while the form also moves the payoffs (battle
    /// `form_effect`): exactly the hidden confounding the sensitivity bounds are for.
    Rating {
        ratings: Vec<f64>,
        shift: f64,
        temperature: f64,
    },
}

impl Matchmaker {
    pub fn validate(&self, n: usize) -> Result<(), String> {
        match self {
            Matchmaker::Uniform => Ok(()),
            Matchmaker::Sigma { weights, epsilon } => {
                if weights.len() != n || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                    return Err(format!("σ needs {n} non-negative weights"));
                }
                if !(0.0..=1.0).contains(epsilon)
                    || (*epsilon == 0.0 && weights.iter().sum::<f64>() <= 0.0)
                {
                    return Err("ε must be in [0, 1] (and σ non-zero when ε = 0)".into());
                }
                Ok(())
            }
            Matchmaker::Rating {
                ratings,
                shift,
                temperature,
            } => {
                if ratings.len() != n || ratings.iter().any(|r| !r.is_finite()) {
                    return Err(format!("the rating matchmaker needs {n} finite ratings"));
                }
                if !(shift.is_finite() && temperature.is_finite() && *temperature > 0.0) {
                    return Err("rating shift must be finite and temperature positive".into());
                }
                Ok(())
            }
        }
    }

    /// The opponent weights for seat 0 = `i` (in form `good`, for the rating matchmaker).
    pub fn opponent_weights(&self, i: usize, good: bool, n: usize) -> Vec<f64> {
        match self {
            Matchmaker::Uniform => vec![1.0; n],
            Matchmaker::Sigma { weights, epsilon } => {
                let total: f64 = weights.iter().sum();
                weights
                    .iter()
                    .map(|w| {
                        let s = if total > 0.0 { w / total } else { 0.0 };
                        (1.0 - epsilon) * s + epsilon / n as f64
                    })
                    .collect()
            }
            Matchmaker::Rating {
                ratings,
                shift,
                temperature,
            } => {
                let target = ratings[i] + if good { *shift } else { -*shift };
                ratings
                    .iter()
                    .map(|r| (-(r - target).abs() / temperature).exp())
                    .collect()
            }
        }
    }

    /// P(opponent = j | seat 0 = i, form) normalised.
    pub fn opponent_probability(&self, i: usize, j: usize, good: bool, n: usize) -> f64 {
        let w = self.opponent_weights(i, good, n);
        w[j] / w.iter().sum::<f64>()
    }

    /// The logged propensity of (i, j): the form marginalised out.
    pub fn logged_propensity(&self, i: usize, j: usize, n: usize) -> f64 {
        match self {
            Matchmaker::Rating { .. } => {
                0.5 * (self.opponent_probability(i, j, true, n)
                    + self.opponent_probability(i, j, false, n))
            }
            _ => self.opponent_probability(i, j, true, n),
        }
    }

    /// The matchmaker's tables for a population of `n` (validate first).
    pub fn schedule(&self, n: usize) -> Schedule {
        let kind = match self {
            Matchmaker::Uniform => ScheduleKind::Uniform,
            Matchmaker::Sigma { .. } => ScheduleKind::Sigma,
            Matchmaker::Rating { .. } => ScheduleKind::Rating,
        };
        let mut cumulative = Vec::with_capacity(2 * n * n);
        let mut propensity = Vec::with_capacity(n * n);
        for i in 0..n {
            let good = self.opponent_weights(i, true, n);
            let bad = self.opponent_weights(i, false, n);
            let (tg, tb): (f64, f64) = (good.iter().sum(), bad.iter().sum());
            // The same operations as `logged_propensity`, without recomputing the weights.
            propensity.extend(good.iter().zip(&bad).map(|(g, b)| match kind {
                ScheduleKind::Rating => 0.5 * (g / tg + b / tb),
                _ => g / tg,
            }));
            if kind != ScheduleKind::Uniform {
                for (w, total) in [(&good, tg), (&bad, tb)] {
                    let mut acc = 0.0;
                    cumulative.extend(w.iter().map(|x| {
                        acc += x / total;
                        acc
                    }));
                }
            }
        }
        Schedule {
            n,
            kind,
            cumulative,
            propensity,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ScheduleKind {
    Uniform = 0,
    Sigma = 1,
    Rating = 2,
}

/// A matchmaker prepared for one population: the cumulative opponent distribution of every
/// (seat 0, form) and the logged propensities, computed once so that pairing a match is one
/// table scan. The CUDA kernels read the same tables, so both paths pair identically.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub n: usize,
    pub kind: ScheduleKind,
    /// `cumulative[((i·2 + f)·n) + k]` = P(opponent ≤ k | seat 0 = i, form f) with f = 0
    /// good, 1 bad (σ uses f = 0), accumulated in opponent order; empty for uniform.
    pub cumulative: Vec<f64>,
    /// Row-major n×n logged propensities.
    pub propensity: Vec<f64>,
}

impl Schedule {
    /// The first opponent whose cumulative share exceeds `u` (the last one if rounding leaves
    /// none).
    fn opponent(&self, i: usize, form: usize, u: f64) -> usize {
        let row = &self.cumulative[(i * 2 + form) * self.n..][..self.n];
        row[..self.n - 1]
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.n - 1)
    }

    /// Pairs match `index`: seat 0 uniform, then (rating) the form, then the opponent.
    pub fn pair(&self, seed: u64, index: u64) -> Pairing {
        let n = self.n;
        let mut r = MatchRng::with_stream(seed, index, 1);
        let i = r.below(n as u32) as usize;
        let (j, form) = match self.kind {
            ScheduleKind::Uniform => (r.below(n as u32) as usize, None),
            ScheduleKind::Sigma => (self.opponent(i, 0, r.unit()), None),
            ScheduleKind::Rating => {
                let good = r.unit() < 0.5;
                (self.opponent(i, !good as usize, r.unit()), Some(good))
            }
        };
        Pairing {
            i,
            j,
            propensity: self.propensity[i * n + j],
            form,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empirical_frequencies_match_the_logged_propensities() {
        let mm = Matchmaker::Rating {
            ratings: vec![1.0, 0.5, 0.0, -0.5],
            shift: 0.5,
            temperature: 0.4,
        };
        let n = 4;
        let mut counts = [[0u32; 4]; 4];
        let total = 80_000;
        let schedule = mm.schedule(n);
        for k in 0..total {
            let p = schedule.pair(2, k);
            counts[p.i][p.j] += 1;
            assert_eq!(p.propensity, mm.logged_propensity(p.i, p.j, n));
        }
        for (i, row) in counts.iter().enumerate() {
            let ni: u32 = row.iter().sum();
            for (j, c) in row.iter().enumerate() {
                let f = *c as f64 / ni as f64;
                assert!(
                    (f - mm.logged_propensity(i, j, n)).abs() < 0.015,
                    "{i},{j}: {f}"
                );
            }
        }
        let sigma = Matchmaker::Sigma {
            weights: vec![0.0, 1.0, 3.0, 0.0],
            epsilon: 0.2,
        };
        assert!((sigma.logged_propensity(0, 2, n) - (0.8 * 0.75 + 0.05)).abs() < 1e-12);
    }
}
