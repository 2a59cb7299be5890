//! The PSRO trigger (DESIGN §7): asks for best-response training when a game's population
//! becomes exploitable.
//!
//! The watched metric is the exploitability of the *standing* mixture: the σ published at the
//! previous epoch, evaluated on the current matrix (policies new since then get mass 0). With
//! an exact Nash solver σ_t itself is never exploitable in M_t, so this is how a newly arrived
//! exploiter shows up; with approximate solvers (α-Rank, PRD, uniform) σ_t's own
//! exploitability counts too: `metric = max(expl(σ_{t−1}; M_t), expl(σ_t; M_t))`.
//!
//! It fires when `metric > θ` (θ absolute, or relative to the payoff range), at most once per
//! excursion: after firing it re-arms only once the metric falls below `θ·(1 − hysteresis)`,
//! and never within `cooldown` epochs of the last job.

use std::collections::BTreeMap;

use nashflow_kernels::metrics::evaluate;
use nashflow_kernels::Matrix;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq)]
pub struct TriggerConfig {
    pub threshold: f64,
    /// θ is a fraction of the payoff range rather than an absolute payoff.
    pub relative: bool,
    /// Re-arm below `θ·(1 − hysteresis)`.
    pub hysteresis: f64,
    /// Minimum number of epochs between two jobs of one game.
    pub cooldown: u64,
}

impl TriggerConfig {
    /// θ finite and ≥ 0 (exploitability is never negative, so a negative θ would fire on every
    /// epoch), and hysteresis in [0, 1].
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(format!(
                "the trigger threshold must be a finite number ≥ 0, got {}",
                self.threshold
            ));
        }
        if !(0.0..=1.0).contains(&self.hysteresis) {
            return Err(format!(
                "the trigger hysteresis must be in [0, 1], got {}",
                self.hysteresis
            ));
        }
        Ok(())
    }
}

/// A best-response training request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub game: String,
    pub epoch: u64,
    /// Opponent sampling weights: σ at this epoch, by policy.
    pub sigma: BTreeMap<String, f64>,
    /// The policy with the largest regret against the exploited mixture.
    pub target_policy: String,
    pub exploitability: f64,
    /// The threshold in payoff units.
    pub threshold: f64,
}

/// Per-game trigger state (serialisable: a durable run saves it with its state).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    armed_off: bool,
    last_fire: Option<u64>,
    standing: Option<BTreeMap<String, f64>>,
}

impl Trigger {
    /// Feeds one epoch's analysis of `game`; returns a job when the trigger fires.
    pub fn observe(
        &mut self,
        cfg: &TriggerConfig,
        game: &str,
        epoch: u64,
        policies: &[String],
        payoff: &Matrix,
        sigma: &[f64],
    ) -> Option<Job> {
        let current = evaluate(payoff, sigma);
        let mut metric = current.exploitability;
        let mut regret = current.regret.clone();
        if let Some(prev) = &self.standing {
            let standing: Vec<f64> = policies
                .iter()
                .map(|p| prev.get(p).copied().unwrap_or(0.0))
                .collect();
            if standing.iter().sum::<f64>() > 0.0 {
                let e = evaluate(payoff, &standing);
                if e.exploitability > metric {
                    metric = e.exploitability;
                    regret = e.regret;
                }
            }
        }
        let sigma_map: BTreeMap<String, f64> = policies
            .iter()
            .cloned()
            .zip(sigma.iter().copied())
            .collect();
        self.standing = Some(sigma_map.clone());
        let theta = if cfg.relative {
            cfg.threshold * payoff.range()
        } else {
            cfg.threshold
        };
        if self.armed_off && metric < theta * (1.0 - cfg.hysteresis) {
            self.armed_off = false;
        }
        let cooled = self.last_fire.is_none_or(|t| epoch >= t + cfg.cooldown);
        if self.armed_off || !cooled || metric <= theta {
            return None;
        }
        self.armed_off = true;
        self.last_fire = Some(epoch);
        let target = (0..policies.len()).max_by(|&a, &b| regret[a].total_cmp(&regret[b]))?;
        Some(Job {
            job_id: format!("{game}:{epoch}"),
            game: game.to_string(),
            epoch,
            sigma: sigma_map,
            target_policy: policies[target].clone(),
            exploitability: metric,
            threshold: theta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TriggerConfig {
        TriggerConfig {
            threshold: 0.1,
            relative: false,
            hysteresis: 0.5,
            cooldown: 1,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|k| format!("p{k}")).collect()
    }

    #[test]
    fn settings_that_cannot_mean_anything_are_refused() {
        assert!(cfg().validate().is_ok());
        let zero = TriggerConfig {
            threshold: 0.0,
            hysteresis: 1.0,
            ..cfg()
        };
        assert!(zero.validate().is_ok());
        for bad in [
            TriggerConfig {
                threshold: -0.1,
                ..cfg()
            },
            TriggerConfig {
                threshold: f64::NAN,
                ..cfg()
            },
            TriggerConfig {
                hysteresis: 1.5,
                ..cfg()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hysteresis_and_cooldown() {
        let mut t = Trigger::default();
        let m = Matrix::from_rows(&[vec![0.0, 1.0], vec![0.0, 0.0]]).unwrap();
        // Uniform σ: u = (0.5, 0), v = 0.25, exploitability 0.25 > 0.1: fires once.
        let u = [0.5, 0.5];
        let job = t.observe(&cfg(), "g", 0, &names(2), &m, &u).unwrap();
        assert_eq!(job.target_policy, "p0");
        assert!((job.exploitability - 0.25).abs() < 1e-12);
        // Still above θ: no second job until the metric falls below θ/2.
        assert!(t.observe(&cfg(), "g", 1, &names(2), &m, &u).is_none());
        let calm = Matrix::filled(2, 0.3);
        assert!(t.observe(&cfg(), "g", 2, &names(2), &calm, &u).is_none());
        assert!(t.observe(&cfg(), "g", 3, &names(2), &m, &u).is_some());
        // Cool-down of 3 epochs blocks a re-fire at epoch 5 even when re-armed.
        let slow = TriggerConfig {
            cooldown: 3,
            ..cfg()
        };
        let mut t = Trigger::default();
        assert!(t.observe(&slow, "g", 0, &names(2), &m, &u).is_some());
        assert!(t.observe(&slow, "g", 1, &names(2), &calm, &u).is_none());
        assert!(t.observe(&slow, "g", 2, &names(2), &m, &u).is_none());
        assert!(t.observe(&slow, "g", 3, &names(2), &m, &u).is_some());
    }

    #[test]
    fn a_new_exploiter_shows_through_the_standing_mixture() {
        let mut t = Trigger::default();
        // Epoch 0: one policy; σ = pure p0 is an exact NE.
        let m0 = Matrix::from_rows(&[vec![0.5]]).unwrap();
        assert!(t.observe(&cfg(), "g", 0, &names(1), &m0, &[1.0]).is_none());
        // Epoch 1: p1 beats p0 (0.9 vs 0.5); the new Nash is pure p1 with exploitability 0,
        // but the standing σ (pure p0) is exploited by 0.4.
        let m1 = Matrix::from_rows(&[vec![0.5, 0.1], vec![0.9, 0.5]]).unwrap();
        let job = t
            .observe(&cfg(), "g", 1, &names(2), &m1, &[0.0, 1.0])
            .unwrap();
        assert_eq!(job.target_policy, "p1");
        assert!((job.exploitability - 0.4).abs() < 1e-12);
        assert_eq!(job.sigma["p1"], 1.0);
        // Relative threshold: θ = 0.5 of the range 0.8 = 0.4 is not exceeded by 0.4.
        let rel = TriggerConfig {
            threshold: 0.5,
            relative: true,
            ..cfg()
        };
        let mut t = Trigger::default();
        t.observe(&rel, "g", 0, &names(1), &m0, &[1.0]);
        assert!(t
            .observe(&rel, "g", 1, &names(2), &m1, &[0.0, 1.0])
            .is_none());
    }
}
