//! `cargo bench -p nashflow-kernels --bench solvers`: solve times of `mene` and `nash-lp` on
//! random zero-sum and general-sum games, each beside a baseline measured in the same run:
//! one maximin LP (`nash-lp`) for zero-sum games, and for general-sum games a brute-force
//! enumeration of all 2^n supports where that is feasible (n ≤ 12).
//!
//! Targets (issue #2, one core): general-sum `mene` < 10 ms at n = 12 and < 1 s at n = 30;
//! zero-sum `mene` ≤ 3× one LP at n = 100. General-sum sizes above 30 are skipped unless
//! `NASHFLOW_BENCH_GENERAL_MAX` raises the cap.

use std::time::{Duration, Instant};

use nashflow_kernels::rng::SplitMix64;
use nashflow_kernels::solvers::{mene, nash_lp};
use nashflow_kernels::Matrix;

fn random_matrix(n: usize, seed: u64) -> Matrix {
    let mut r = SplitMix64::new(seed);
    Matrix::from_fn(n, |_, _| r.next_f64() * 2.0 - 1.0)
}

fn zero_sum(n: usize, seed: u64) -> Matrix {
    let a = random_matrix(n, seed);
    Matrix::from_fn(n, |i, j| a[(i, j)] - a[(j, i)])
}

/// Median wall time of `f` over `reps` runs.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut ts: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    ts.sort();
    ts[ts.len() / 2]
}

fn brute_force(m: &Matrix) -> f64 {
    nashflow_kernels::solvers::brute_force_max_entropy(m).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let sizes: Vec<usize> = std::env::var("NASHFLOW_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![3, 5, 8, 12, 30, 100, 200]);
    // One instance is a noisy sample (the same n can differ 3× between games): every figure is
    // the median over INSTANCES random games, each timed as the median of its repetitions.
    const INSTANCES: u64 = 5;
    let median = |mut xs: Vec<Duration>| {
        xs.sort();
        xs[xs.len() / 2]
    };
    println!("zero-sum (antisymmetric) games: mene vs one maximin LP (nash-lp), median of {INSTANCES} games");
    println!(
        "{:>5}  {:>12}  {:>12}  {:>8}",
        "n", "nash-lp ms", "mene ms", "ratio"
    );
    for &n in &sizes {
        let reps = if n <= 30 { 11 } else { 3 };
        let games: Vec<Matrix> = (0..INSTANCES)
            .map(|k| zero_sum(n, 42 + n as u64 + 1000 * k))
            .collect();
        let lp = median(
            games
                .iter()
                .map(|m| time(reps, || nash_lp(m).unwrap()))
                .collect(),
        );
        let me = median(
            games
                .iter()
                .map(|m| time(reps, || mene(m).unwrap()))
                .collect(),
        );
        println!(
            "{n:>5}  {:>12.3}  {:>12.3}  {:>8.2}",
            ms(lp),
            ms(me),
            me.as_secs_f64() / lp.as_secs_f64()
        );
    }
    // Exact general-sum MENE enumerates every best-response set that could beat the best
    // entropy; random games have exponentially many equilibria, so sizes above 30 are opt-in.
    let general_max: usize = std::env::var("NASHFLOW_BENCH_GENERAL_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    println!("\ngeneral-sum games: mene vs brute-force support enumeration (n ≤ 12), median of {INSTANCES} games");
    println!(
        "{:>5}  {:>12}  {:>14}  {:>8}",
        "n", "mene ms", "brute ms", "speedup"
    );
    for &n in sizes.iter().filter(|&&n| n <= general_max) {
        let games: Vec<Matrix> = (0..INSTANCES)
            .map(|k| random_matrix(n, 7 + n as u64 + 1000 * k))
            .collect();
        let reps = if n <= 12 { 11 } else { 1 };
        let me = median(
            games
                .iter()
                .map(|m| time(reps, || mene(m).unwrap()))
                .collect(),
        );
        if n <= 12 {
            let bf = median(games.iter().map(|m| time(1, || brute_force(m))).collect());
            println!(
                "{n:>5}  {:>12.3}  {:>14.3}  {:>8.1}",
                ms(me),
                ms(bf),
                bf.as_secs_f64() / me.as_secs_f64()
            );
        } else {
            println!("{n:>5}  {:>12.3}  {:>14}  {:>8}", ms(me), "—", "—");
        }
    }
}
