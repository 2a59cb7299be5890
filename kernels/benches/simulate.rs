//! Simulator throughput: games/s on one core and on all cores, per population, against the
//! raw Philox word rate measured in the same process (the RNG floor of a match: ≥ 8 words).
//!
//! With the `cuda` feature and a usable GPU it adds games/s on the device (pair statistics
//! aggregated there, no records) and the ratio to one core (target ≥ 100×).
//!
//! `cargo bench -p nashflow-kernels --bench simulate [--features cuda]` (NASHFLOW_BENCH_GAMES
//! and NASHFLOW_BENCH_GPU_GAMES change the counts).

use std::time::Instant;

use nashflow_kernels::sim::bargain::BargainPolicy;
use nashflow_kernels::sim::battle::{BattleConfig, BattlePolicy};
use nashflow_kernels::sim::philox::MatchRng;
use nashflow_kernels::sim::{simulate, Game, Matchmaker, SimConfig};

fn rate(game: &Game, matches: u64, threads: usize) -> f64 {
    let cfg = SimConfig {
        seed: 1,
        matches,
        threads,
        keep_records: false,
    };
    let t = Instant::now();
    let sim = simulate(game, &cfg, &Matchmaker::Uniform);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(sim.pairs.iter().map(|p| p.n).sum::<u64>(), matches);
    matches as f64 / secs
}

fn main() {
    let games: u64 = std::env::var("NASHFLOW_BENCH_GAMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let t = Instant::now();
    let mut acc = 0u32;
    for k in 0..games {
        let mut r = MatchRng::new(1, k);
        for _ in 0..8 {
            acc ^= r.next_u32();
        }
    }
    let philox = games as f64 / t.elapsed().as_secs_f64();
    println!("baseline: 8 Philox words per match on one core: {philox:.3e} matches/s ({acc:x})");
    let bargain = |names: &[&str]| {
        Game::Bargain(
            names
                .iter()
                .map(|p| BargainPolicy::preset(p).unwrap())
                .collect(),
        )
    };
    let populations = [
        ("bargain walk", bargain(&["walk", "walk"])),
        (
            "bargain greedy+fair+threshold",
            bargain(&["greedy", "fair", "threshold"]),
        ),
        (
            "bargain boulware+conceder",
            bargain(&["boulware", "conceder"]),
        ),
        ("bargain random", bargain(&["random", "random"])),
        (
            "battle rps+strong",
            Game::Battle(
                ["rock", "paper", "scissors", "strong"]
                    .iter()
                    .map(|p| BattlePolicy::preset(p).unwrap())
                    .collect(),
                BattleConfig::default(),
            ),
        ),
    ];
    println!("target: ≥ 2M bargaining games/s per core with simple policies; {cores} cores here");
    let gpu = Gpu::open();
    println!(
        "{:<32} {:>14} {:>14} {:>8} {:>12}{}",
        "population",
        "1 core (g/s)",
        "all (g/s)",
        "scale",
        "vs Philox",
        if gpu.is_some() {
            format!(" {:>14} {:>10}", "GPU (g/s)", "GPU/core")
        } else {
            String::new()
        }
    );
    for (name, game) in &populations {
        let one = rate(game, games, 1);
        let all = rate(game, games, 0);
        let device = gpu
            .as_ref()
            .map(|g| {
                let r = g.rate(game);
                format!(" {r:>14.3e} {:>10.1}", r / one)
            })
            .unwrap_or_default();
        println!(
            "{name:<32} {one:>14.3e} {all:>14.3e} {:>8.2} {:>12.2}{device}",
            all / one,
            one / philox
        );
    }
    if let Some(g) = &gpu {
        let (name, game) = &populations[2];
        println!(
            "GPU with every record copied back to the host ({name}): {:.3e} games/s",
            g.rate_with_records(game)
        );
    }
}

#[cfg(feature = "cuda")]
struct Gpu(nashflow_kernels::sim::cuda::CudaSimulator, u64);

#[cfg(feature = "cuda")]
impl Gpu {
    fn open() -> Option<Gpu> {
        let games = std::env::var("NASHFLOW_BENCH_GPU_GAMES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1 << 28);
        let t = Instant::now();
        match nashflow_kernels::sim::cuda::CudaSimulator::open() {
            Ok(d) => {
                println!(
                    "GPU: {}, opened and kernels compiled in {:.2} s; {games} games per population",
                    d.device,
                    t.elapsed().as_secs_f64()
                );
                Some(Gpu(d, games))
            }
            Err(e) => {
                println!("GPU: none ({e})");
                None
            }
        }
    }

    fn rate(&self, game: &Game) -> f64 {
        self.timed(game, self.1, false)
    }

    /// Games/s when every record comes back to the host (copied and converted per launch).
    fn rate_with_records(&self, game: &Game) -> f64 {
        self.timed(game, 1 << 24, true)
    }

    fn timed(&self, game: &Game, matches: u64, keep_records: bool) -> f64 {
        let cfg = SimConfig {
            seed: 1,
            matches,
            threads: 0,
            keep_records,
        };
        // One short warm-up run (module load, first-launch costs), then the timed one.
        let warm = SimConfig {
            matches: 1 << 20,
            ..cfg
        };
        self.0
            .simulate(game, &warm, &Matchmaker::Uniform)
            .expect("GPU run");
        let t = Instant::now();
        let sim = self
            .0
            .simulate(game, &cfg, &Matchmaker::Uniform)
            .expect("GPU run");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(sim.pairs.iter().map(|p| p.n).sum::<u64>(), cfg.matches);
        cfg.matches as f64 / secs
    }
}

#[cfg(not(feature = "cuda"))]
struct Gpu;

#[cfg(not(feature = "cuda"))]
impl Gpu {
    fn open() -> Option<Gpu> {
        println!("GPU: not built (build with --features cuda)");
        None
    }

    fn rate(&self, _: &Game) -> f64 {
        unreachable!()
    }

    fn rate_with_records(&self, _: &Game) -> f64 {
        unreachable!()
    }
}
