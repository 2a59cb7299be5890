//! Level 3 attribution (DESIGN §5): Shapley and Banzhaf values of the coalition game
//! `v(S) = σ_Sᵀ W_S σ_S`, σ_S solved on S alone (its own ordering), `v(∅) = 0`.
//! Exact over all 2^n coalitions (one solve each, memoised) up to `exact_max` policies;
//! seeded Monte Carlo with standard errors beyond.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::lifts::coalition_welfare;
use crate::progress::Progress;
use crate::rng::SplitMix64;
use crate::solvers::SolverConfig;
use crate::stats::GameMatrices;
use crate::KernelError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// "exact" or "monte-carlo".
    pub method: String,
    /// `shapley[w][i]` for w in [`crate::metrics::WelfareKind::ALL`] order.
    pub shapley: [Vec<f64>; 3],
    pub banzhaf: [Vec<f64>; 3],
    /// Standard errors (all 0 in exact mode).
    pub shapley_se: [Vec<f64>; 3],
    pub banzhaf_se: [Vec<f64>; 3],
    /// Permutations (Shapley) and coalitions (Banzhaf) sampled; 0 in exact mode.
    pub samples: usize,
}

#[derive(Clone, Debug)]
pub struct AttributionConfig {
    pub exact_max: usize,
    pub samples: usize,
    pub seed: u64,
}

/// Memoised coalition values keyed by membership bitset.
struct Coalitions<'a> {
    g: &'a GameMatrices,
    solver: &'a SolverConfig,
    memo: HashMap<Vec<u64>, [f64; 3]>,
}

impl Coalitions<'_> {
    fn value(&mut self, members: &[bool]) -> Result<[f64; 3], KernelError> {
        let idx: Vec<usize> = (0..members.len()).filter(|&i| members[i]).collect();
        if idx.is_empty() {
            return Ok([0.0; 3]);
        }
        let mut key = vec![0u64; members.len().div_ceil(64)];
        for &i in &idx {
            key[i / 64] |= 1 << (i % 64);
        }
        if let Some(v) = self.memo.get(&key) {
            return Ok(*v);
        }
        let sub = self.g.sub(&idx);
        let sigma = self.solver.solve(&sub.payoff)?;
        let v = coalition_welfare(&sub, &sigma);
        self.memo.insert(key, v);
        Ok(v)
    }
}

pub fn attribution(
    g: &GameMatrices,
    solver: &SolverConfig,
    cfg: &AttributionConfig,
    progress: &mut dyn Progress,
) -> Result<Attribution, KernelError> {
    let n = g.n();
    let mut co = Coalitions {
        g,
        solver,
        memo: HashMap::new(),
    };
    if n <= cfg.exact_max {
        exact(n, &mut co, progress)
    } else {
        monte_carlo(n, &mut co, cfg, progress)
    }
}

fn exact(
    n: usize,
    co: &mut Coalitions,
    progress: &mut dyn Progress,
) -> Result<Attribution, KernelError> {
    let total = 1usize << n;
    progress.start("Level 3 (exact coalitions)", total as u64 - 1);
    let mut v = vec![[0.0; 3]; total];
    for (mask, slot) in v.iter_mut().enumerate().skip(1) {
        let members: Vec<bool> = (0..n).map(|i| mask >> i & 1 == 1).collect();
        *slot = co.value(&members)?;
        progress.inc(1);
    }
    progress.finish();
    // Shapley weight of a coalition of size s not containing i: s!(n−s−1)!/n! = 1/(n·C(n−1,s)).
    let mut binom = vec![1.0f64; n];
    for s in 1..n {
        binom[s] = binom[s - 1] * (n - s) as f64 / s as f64;
    }
    let mut shapley = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    let mut banzhaf = shapley.clone();
    let half = 0.5f64.powi(n as i32 - 1);
    for mask in 0..total {
        let size = (mask as u64).count_ones() as usize;
        for i in 0..n {
            if mask >> i & 1 == 1 {
                continue;
            }
            let with = mask | 1 << i;
            let weight = 1.0 / (n as f64 * binom[size]);
            for w in 0..3 {
                let d = v[with][w] - v[mask][w];
                shapley[w][i] += weight * d;
                banzhaf[w][i] += half * d;
            }
        }
    }
    let zeros = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
    Ok(Attribution {
        method: "exact".into(),
        shapley,
        banzhaf,
        shapley_se: zeros.clone(),
        banzhaf_se: zeros,
        samples: 0,
    })
}

/// Running mean and standard error of the mean.
#[derive(Clone, Default)]
struct Moments {
    n: f64,
    sum: f64,
    sum_sq: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sum_sq += x * x;
    }
    fn mean(&self) -> f64 {
        if self.n > 0.0 {
            self.sum / self.n
        } else {
            0.0
        }
    }
    fn se(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let var = (self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1.0);
        (var.max(0.0) / self.n).sqrt()
    }
}

fn monte_carlo(
    n: usize,
    co: &mut Coalitions,
    cfg: &AttributionConfig,
    progress: &mut dyn Progress,
) -> Result<Attribution, KernelError> {
    let samples = cfg.samples.max(2);
    progress.start("Level 3 (Monte Carlo)", 2 * samples as u64);
    let mut sh = vec![vec![Moments::default(); n]; 3];
    let mut bz = vec![vec![Moments::default(); n]; 3];
    // Shapley: random permutations, marginal contribution of each entrant.
    let mut rng = SplitMix64::keyed(cfg.seed, 1);
    for _ in 0..samples {
        let mut order: Vec<usize> = (0..n).collect();
        for k in (1..n).rev() {
            order.swap(k, rng.below(k + 1));
        }
        let mut members = vec![false; n];
        let mut prev = [0.0; 3];
        for &i in &order {
            members[i] = true;
            let cur = co.value(&members)?;
            for w in 0..3 {
                sh[w][i].push(cur[w] - prev[w]);
            }
            prev = cur;
        }
        progress.inc(1);
    }
    // Banzhaf: uniform random coalitions, marginal contribution of every player.
    let mut rng = SplitMix64::keyed(cfg.seed, 2);
    for _ in 0..samples {
        let members: Vec<bool> = (0..n).map(|_| rng.next_u64() & 1 == 1).collect();
        for i in 0..n {
            let mut with = members.clone();
            with[i] = true;
            let mut without = members.clone();
            without[i] = false;
            let (a, b) = (co.value(&with)?, co.value(&without)?);
            for w in 0..3 {
                bz[w][i].push(a[w] - b[w]);
            }
        }
        progress.inc(1);
    }
    progress.finish();
    let pick = |m: &Vec<Vec<Moments>>, f: fn(&Moments) -> f64| -> [Vec<f64>; 3] {
        [0, 1, 2].map(|w| m[w].iter().map(f).collect())
    };
    Ok(Attribution {
        method: "monte-carlo".into(),
        shapley: pick(&sh, Moments::mean),
        banzhaf: pick(&bz, Moments::mean),
        shapley_se: pick(&sh, Moments::se),
        banzhaf_se: pick(&bz, Moments::se),
        samples,
    })
}
