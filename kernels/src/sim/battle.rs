//! The battle game: a two-player stochastic game with latent strength and non-transitive
//! styles, so tests can make transitive, cyclic and mixed meta-games on purpose.
//!
//! A match is `rounds` rounds (default 3); seat 0 wins a round with probability
//! `σ(s₀ − s₁ + κ·styleᵀ₀ C style₁)`, σ the logistic function, κ the style weight (default 2)
//! and C the rock–paper–scissors matrix (rock beats scissors, paper beats rock, scissors beat
//! paper: `C[r][s] = C[p][r] = C[s][p] = 1`, the transposed entries −1). Payoffs are the shares
//! of rounds won (constant sum 1). Equal styles give a transitive game (strength alone);
//! equal strengths with pure distinct styles give a cycle.
//!
//! RNG draw order: one word per round, `unit() < p` meaning seat 0 wins it.

use serde::{Deserialize, Serialize};

use super::philox::MatchRng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BattlePolicy {
    /// Latent strength (logit units per round).
    #[serde(default)]
    pub strength: f64,
    /// Weights on (rock, paper, scissors); normalised to sum 1.
    #[serde(default = "uniform_style")]
    pub style: [f64; 3],
}

fn uniform_style() -> [f64; 3] {
    [1.0 / 3.0; 3]
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BattleConfig {
    pub rounds: u32,
    pub style_weight: f64,
    /// Strength added to seat 0 in good form and taken away in bad form (the hidden form of
    /// the rating matchmaker); 0 = form does not matter.
    #[serde(default)]
    pub form_effect: f64,
}

impl Default for BattleConfig {
    fn default() -> Self {
        BattleConfig {
            rounds: 3,
            style_weight: 2.0,
            form_effect: 0.0,
        }
    }
}

const RPS: [[f64; 3]; 3] = [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]];

impl BattlePolicy {
    /// Presets: rock, paper, scissors (pure styles), strong (+1), weak (−1), mixed.
    pub fn preset(name: &str) -> Option<BattlePolicy> {
        let p = |strength, style| BattlePolicy { strength, style };
        Some(match name {
            "rock" => p(0.0, [1.0, 0.0, 0.0]),
            "paper" => p(0.0, [0.0, 1.0, 0.0]),
            "scissors" => p(0.0, [0.0, 0.0, 1.0]),
            "strong" => p(1.0, uniform_style()),
            "weak" => p(-1.0, uniform_style()),
            "mixed" => p(0.0, uniform_style()),
            _ => return None,
        })
    }

    /// Checks the spec and normalises the style to sum 1.
    pub fn normalized(&self) -> Result<BattlePolicy, String> {
        let total: f64 = self.style.iter().sum();
        if !self.strength.is_finite() {
            return Err(format!("strength must be finite, got {}", self.strength));
        }
        if self.style.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || total <= 0.0 {
            return Err(format!(
                "style must be 3 non-negative weights with a positive sum, got {:?}",
                self.style
            ));
        }
        Ok(BattlePolicy {
            strength: self.strength,
            style: self.style.map(|w| w / total),
        })
    }
}

/// Probability that seat 0 (`a`) wins one round against `b`.
pub fn round_win_prob(a: &BattlePolicy, b: &BattlePolicy, cfg: &BattleConfig) -> f64 {
    let mut style = 0.0;
    for (x, row) in RPS.iter().enumerate() {
        for (y, c) in row.iter().enumerate() {
            style += a.style[x] * c * b.style[y];
        }
    }
    let z = a.strength - b.strength + cfg.style_weight * style;
    1.0 / (1.0 + (-z).exp())
}

/// Seat 0's policy as it plays in `form` (strength ± `form_effect`).
pub fn in_form(a: &BattlePolicy, form: Option<bool>, cfg: &BattleConfig) -> BattlePolicy {
    let shift = match form {
        Some(true) => cfg.form_effect,
        Some(false) => -cfg.form_effect,
        None => 0.0,
    };
    BattlePolicy {
        strength: a.strength + shift,
        style: a.style,
    }
}

/// Rounds won by seat 0 and seat 1; `form` is seat 0's hidden form, if any.
pub fn play(
    a: &BattlePolicy,
    b: &BattlePolicy,
    cfg: &BattleConfig,
    form: Option<bool>,
    rng: &mut MatchRng,
) -> [u32; 2] {
    let p = round_win_prob(&in_form(a, form, cfg), b, cfg);
    let mut won = 0;
    for _ in 0..cfg.rounds {
        won += (rng.unit() < p) as u32;
    }
    [won, cfg.rounds - won]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_cycle_and_strength_orders() {
        let cfg = BattleConfig::default();
        let get = |n| BattlePolicy::preset(n).unwrap();
        let (r, p, s) = (get("rock"), get("paper"), get("scissors"));
        assert!(round_win_prob(&p, &r, &cfg) > 0.5);
        assert!(round_win_prob(&s, &p, &cfg) > 0.5);
        assert!(round_win_prob(&r, &s, &cfg) > 0.5);
        assert!((round_win_prob(&r, &r, &cfg) - 0.5).abs() < 1e-15);
        assert!(round_win_prob(&get("strong"), &get("weak"), &cfg) > 0.85);
        // Antisymmetric: p(a, b) + p(b, a) = 1.
        let x = round_win_prob(&get("strong"), &p, &cfg) + round_win_prob(&p, &get("strong"), &cfg);
        assert!((x - 1.0).abs() < 1e-12);
    }

    #[test]
    fn empirical_rates_match_the_model() {
        let cfg = BattleConfig::default();
        let (a, b) = (
            BattlePolicy::preset("paper").unwrap(),
            BattlePolicy::preset("rock").unwrap(),
        );
        let n = 20_000;
        let won: u32 = (0..n)
            .map(|k| play(&a, &b, &cfg, None, &mut MatchRng::new(4, k))[0])
            .sum();
        let rate = won as f64 / (n as f64 * 3.0);
        let p = round_win_prob(&a, &b, &cfg);
        // 60k Bernoulli rounds: 5 standard errors ≈ 0.008.
        assert!((rate - p).abs() < 0.008, "{rate} vs {p}");
    }
}
