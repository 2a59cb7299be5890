//! Bootstrap stratified by ordered seat pair (DESIGN §5): each replicate resamples, with
//! replacement, the matches of every (policy_i, policy_j) stratum, rebuilds the matrices with
//! the same missing-cell policy, re-solves and re-evaluates. Seeded; percentile intervals with
//! linear interpolation between order statistics (numpy's default).

use serde::{Deserialize, Serialize};

use crate::metrics::{evaluate, welfare};
use crate::parallel;
use crate::progress::Progress;
use crate::rng::SplitMix64;
use crate::solvers::{hint_at, remember, SolverConfig};
use crate::stats::{aggregate, CellStats, GameMatrices, Missing, Observation};
use crate::KernelError;

/// One resampling unit: a match (two observations) or a perspective row (one).
#[derive(Clone, Debug)]
pub struct Unit {
    pub stratum: (usize, usize),
    pub obs: Vec<Observation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub median: f64,
    pub hi: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootstrapResult {
    pub replicates: usize,
    pub level: f64,
    pub seed: u64,
    pub mass: Vec<Interval>,
    pub regret: Vec<Interval>,
    pub value: Interval,
    pub exploitability: Interval,
    pub uw: Interval,
    pub nw: Interval,
    pub nw_plus: Interval,
    pub ef1: Interval,
}

#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    pub replicates: usize,
    pub seed: u64,
    /// Central coverage of the intervals, e.g. 0.95.
    pub level: f64,
}

/// Linear-interpolated quantile of sorted data.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(mut xs: Vec<f64>, level: f64) -> Interval {
    xs.sort_by(f64::total_cmp);
    let a = (1.0 - level) / 2.0;
    Interval {
        lo: quantile(&xs, a),
        median: quantile(&xs, 0.5),
        hi: quantile(&xs, 1.0 - a),
    }
}

/// Stratified bootstrap; each replicate's solve starts from `hint` (the point estimate's
/// support: replicates are small perturbations of it). The result does not depend on it.
pub fn bootstrap(
    n: usize,
    units: &[Unit],
    missing: Missing,
    solver: &SolverConfig,
    cfg: &BootstrapConfig,
    progress: &mut dyn Progress,
    hint: Option<&[usize]>,
) -> Result<BootstrapResult, KernelError> {
    let mut strata: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for (k, u) in units.iter().enumerate() {
        strata.entry(u.stratum).or_default().push(k);
    }
    let replicates = (0..cfg.replicates).map(|r| {
        let mut rng = SplitMix64::keyed(cfg.seed, r as u64);
        let mut obs = Vec::with_capacity(units.len() * 2);
        for members in strata.values() {
            for _ in 0..members.len() {
                let u = &units[members[rng.below(members.len())]];
                obs.extend_from_slice(&u.obs);
            }
        }
        aggregate(n, obs)
    });
    let mut hints = vec![hint.map(<[usize]>::to_vec); cfg.replicates];
    summarize_hinted(n, replicates, missing, solver, cfg, progress, &mut hints)
}

/// Percentile intervals from replicate cell tables (row-major n×n each): every replicate is
/// imputed, solved and evaluated like the point estimate. Shared by the stratified bootstrap
/// and the streaming Poisson bootstrap.
pub fn summarize(
    n: usize,
    replicates: impl ExactSizeIterator<Item = Vec<CellStats>>,
    missing: Missing,
    solver: &SolverConfig,
    cfg: &BootstrapConfig,
    progress: &mut dyn Progress,
) -> Result<BootstrapResult, KernelError> {
    summarize_hinted(
        n,
        replicates,
        missing,
        solver,
        cfg,
        progress,
        &mut Vec::new(),
    )
}

/// [`summarize`], trying each replicate's support from `hints` first and leaving the new ones
/// there (the streaming bootstrap keeps them across epochs). The result does not depend on
/// the hints.
pub fn summarize_hinted(
    n: usize,
    replicates: impl ExactSizeIterator<Item = Vec<CellStats>>,
    missing: Missing,
    solver: &SolverConfig,
    cfg: &BootstrapConfig,
    progress: &mut dyn Progress,
    hints: &mut Vec<Option<Vec<usize>>>,
) -> Result<BootstrapResult, KernelError> {
    let b = replicates.len();
    let mut mass: Vec<Vec<f64>> = (0..n).map(|_| Vec::with_capacity(b)).collect();
    let mut regret: Vec<Vec<f64>> = (0..n).map(|_| Vec::with_capacity(b)).collect();
    let mut scalars: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(b)).collect();
    progress.start("bootstrap", b as u64);
    // Replicates are independent: solve a few per core at a time (bounded memory, and the
    // progress bar still moves).
    let mut replicates = replicates.peekable();
    let per_round = 4 * parallel::threads();
    let mut solved = Vec::with_capacity(b);
    let previous: &[Option<Vec<usize>>] = hints;
    while replicates.peek().is_some() {
        let first = solved.len();
        let round: Vec<(usize, Vec<CellStats>)> =
            (first..).zip(replicates.by_ref().take(per_round)).collect();
        let done = parallel::map(&round, n >= parallel::MIN_PARALLEL_N, |(r, cells)| {
            let g = GameMatrices::from_cells(n, cells, missing)?;
            let sigma = solver.solve_hinted(&g.payoff, hint_at(previous, *r))?.sigma;
            Ok::<_, KernelError>((evaluate(&g.payoff, &sigma), welfare(&g, &sigma), sigma))
        });
        progress.inc(done.len() as u64);
        solved.extend(done);
    }
    let solved: Vec<_> = solved.into_iter().collect::<Result<_, _>>()?;
    remember(hints, solved.iter().map(|(_, _, sigma)| sigma.as_slice()));
    for (e, w, sigma) in solved {
        for k in 0..n {
            mass[k].push(sigma[k]);
            regret[k].push(e.regret[k]);
        }
        for (slot, x) in
            scalars
                .iter_mut()
                .zip([e.value, e.exploitability, w.uw, w.nw, w.nw_plus, w.ef1])
        {
            slot.push(x);
        }
    }
    progress.finish();
    let lvl = cfg.level;
    let mut s = scalars.into_iter().map(|x| interval(x, lvl));
    let mut next = || s.next().expect("six scalars");
    Ok(BootstrapResult {
        replicates: b,
        level: lvl,
        seed: cfg.seed,
        mass: mass.into_iter().map(|x| interval(x, lvl)).collect(),
        regret: regret.into_iter().map(|x| interval(x, lvl)).collect(),
        value: next(),
        exploitability: next(),
        uw: next(),
        nw: next(),
        nw_plus: next(),
        ef1: next(),
    })
}

/// The Poisson(1) weight of a match in replicate `replicate` of the streaming bootstrap:
/// a pure function of (seed, replicate, match key), so replicates update incrementally and
/// are reproducible. Inverse-CDF sampling from a 53-bit uniform made by hashing the key
/// (FNV-1a) and mixing it with the seed and replicate (SplitMix64).
pub fn poisson_weight(seed: u64, replicate: u64, key: &str) -> u32 {
    weight_of(seed ^ crate::rng::mix(fnv1a(key)), replicate)
}

/// [`poisson_weight`] for replicates `0..replicates`, hashing the key once.
pub fn poisson_weights(seed: u64, key: &str, replicates: u32) -> Vec<u32> {
    let keyed = seed ^ crate::rng::mix(fnv1a(key));
    (0..replicates as u64)
        .map(|r| weight_of(keyed, r))
        .collect()
}

fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn weight_of(keyed: u64, replicate: u64) -> u32 {
    let mut rng = SplitMix64::keyed(keyed, replicate);
    let u = rng.next_f64();
    // P(W = k) = e^{-1}/k!; walk the CDF.
    let mut k = 0u32;
    let mut p = (-1.0f64).exp();
    let mut cdf = p;
    while u >= cdf && k < 20 {
        k += 1;
        p /= k as f64;
        cdf += p;
    }
    k
}
