//! Batched execution: matches `0..N` of a run are scheduled and played independently (each
//! from its own Philox stream), on all cores; per-pair statistics are aggregated during the
//! run (exactly, in fixed point, so they do not depend on the number of threads) and match
//! records are kept only when asked for.

use super::bargain::{self, BargainPolicy};
use super::battle::{self, BattleConfig, BattlePolicy};
use super::matchmaking::{Matchmaker, Pairing};
use super::philox::MatchRng;
use crate::stats::quantize;

/// A game and its population.
#[derive(Clone, Debug, PartialEq)]
pub enum Game {
    Bargain(Vec<BargainPolicy>),
    Battle(Vec<BattlePolicy>, BattleConfig),
}

impl Game {
    pub fn population(&self) -> usize {
        match self {
            Game::Bargain(p) => p.len(),
            Game::Battle(p, _) => p.len(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Game::Bargain(_) => "bargain",
            Game::Battle(..) => "battle",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub matches: u64,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    pub keep_records: bool,
}

/// One simulated match. Payoffs (and BATNAs) are normalised for the bargaining game.
#[derive(Clone, Debug, PartialEq)]
pub struct SimMatch {
    pub index: u64,
    pub i: usize,
    pub j: usize,
    pub payoff: [f64; 2],
    pub batna: Option<[f64; 2]>,
    pub agreement: Option<bool>,
    pub ef1: Option<bool>,
    /// Raw bargaining payoffs, or rounds won in a battle.
    pub raw: [u32; 2],
    /// Actions (bargaining) or rounds (battle) played.
    pub actions: u8,
    /// The matchmaker's logged propensity.
    pub propensity: f64,
    /// Seat 0's hidden form (not part of the log; kept for tests of the bounds).
    pub form: Option<bool>,
}

/// Exact per-ordered-pair sums (fixed point, see [`quantize`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    pub n: u64,
    pub sum_i: i128,
    pub sum_j: i128,
    pub agreements: u64,
}

impl PairStats {
    fn add(&mut self, m: &SimMatch) {
        self.n += 1;
        self.sum_i += quantize(m.payoff[0]) as i128;
        self.sum_j += quantize(m.payoff[1]) as i128;
        self.agreements += (m.agreement == Some(true)) as u64;
    }

    fn merge(&mut self, o: &PairStats) {
        self.n += o.n;
        self.sum_i += o.sum_i;
        self.sum_j += o.sum_j;
        self.agreements += o.agreements;
    }

    /// Mean payoff of seat i.
    pub fn mean_i(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum_i as f64 / crate::stats::FIXED_SCALE / self.n as f64)
    }
}

pub struct Simulation {
    /// Row-major n×n over (seat-0 policy, seat-1 policy).
    pub pairs: Vec<PairStats>,
    /// In match-index order (empty unless `keep_records`).
    pub records: Vec<SimMatch>,
}

impl Simulation {
    /// The meta-game's payoff cells from the pair statistics, as `analyze` builds them from
    /// the records (DESIGN §4): cell (i, j) pools i's payoffs over its matches with j in either
    /// seat, a self-play match giving both payoffs to (i, i). Row-major (count, mean).
    pub fn payoff_cells(&self, n: usize) -> Vec<(u64, Option<f64>)> {
        let mut cells = vec![(0u64, 0i128); n * n];
        for a in 0..n {
            for b in 0..n {
                let p = &self.pairs[a * n + b];
                cells[a * n + b].0 += p.n;
                cells[a * n + b].1 += p.sum_i;
                cells[b * n + a].0 += p.n;
                cells[b * n + a].1 += p.sum_j;
            }
        }
        cells
            .into_iter()
            .map(|(count, sum)| {
                let mean =
                    (count > 0).then(|| sum as f64 / crate::stats::FIXED_SCALE / count as f64);
                (count, mean)
            })
            .collect()
    }
}

/// Plays match `index` as paired.
pub fn play_match(game: &Game, seed: u64, index: u64, pairing: &Pairing) -> SimMatch {
    let Pairing {
        i,
        j,
        propensity,
        form,
    } = *pairing;
    let mut rng = MatchRng::new(seed, index);
    match game {
        Game::Bargain(p) => {
            let o = bargain::play([&p[i], &p[j]], &mut rng);
            SimMatch {
                index,
                i,
                j,
                payoff: o.normalized(),
                batna: Some(o.normalized_batna()),
                agreement: Some(o.agreement),
                ef1: o.ef1(),
                raw: o.payoff,
                actions: o.actions,
                propensity,
                form,
            }
        }
        Game::Battle(p, cfg) => {
            let won = battle::play(&p[i], &p[j], cfg, form, &mut rng);
            let r = cfg.rounds as f64;
            SimMatch {
                index,
                i,
                j,
                payoff: [won[0] as f64 / r, won[1] as f64 / r],
                batna: None,
                agreement: None,
                ef1: None,
                raw: won,
                actions: cfg.rounds as u8,
                propensity,
                form,
            }
        }
    }
}

/// Runs matches `0..cfg.matches`, paired by `matchmaker`, in parallel chunks.
pub fn simulate(game: &Game, cfg: &SimConfig, matchmaker: &Matchmaker) -> Simulation {
    let n = game.population();
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    };
    let chunk = cfg.matches.div_ceil(threads as u64).max(1);
    let schedule = &matchmaker.schedule(n);
    let parts: Vec<(Vec<PairStats>, Vec<SimMatch>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (lo, hi) = (
                    (t * chunk).min(cfg.matches),
                    ((t + 1) * chunk).min(cfg.matches),
                );
                s.spawn(move || {
                    let mut pairs = vec![PairStats::default(); n * n];
                    let mut records =
                        Vec::with_capacity(if cfg.keep_records { hi - lo } else { 0 } as usize);
                    for index in lo..hi {
                        let pairing = schedule.pair(cfg.seed, index);
                        let m = play_match(game, cfg.seed, index, &pairing);
                        pairs[pairing.i * n + pairing.j].add(&m);
                        if cfg.keep_records {
                            records.push(m);
                        }
                    }
                    (pairs, records)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulator thread"))
            .collect()
    });
    let mut pairs = vec![PairStats::default(); n * n];
    let mut records = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
    for (p, r) in parts {
        for (a, b) in pairs.iter_mut().zip(&p) {
            a.merge(b);
        }
        records.extend(r);
    }
    Simulation { pairs, records }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn population() -> Game {
        Game::Bargain(
            ["random", "greedy", "fair", "boulware"]
                .iter()
                .map(|p| BargainPolicy::preset(p).unwrap())
                .collect(),
        )
    }

    #[test]
    fn results_do_not_depend_on_threads_and_matches_replay_alone() {
        let game = population();
        let cfg = |threads| SimConfig {
            seed: 11,
            matches: 5000,
            threads,
            keep_records: true,
        };
        let one = simulate(&game, &cfg(1), &Matchmaker::Uniform);
        let four = simulate(&game, &cfg(4), &Matchmaker::Uniform);
        assert_eq!(one.pairs, four.pairs);
        assert_eq!(one.records, four.records);
        let m = &one.records[1234];
        let pairing = Matchmaker::Uniform.schedule(4).pair(11, 1234);
        assert_eq!(&play_match(&game, 11, 1234, &pairing), m);
        assert_eq!(one.pairs.iter().map(|p| p.n).sum::<u64>(), 5000);
    }
}
