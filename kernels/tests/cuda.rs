//! CPU = CUDA: the device kernels play exactly the CPU's matches (every field of every
//! record, bit for bit) and aggregate exactly the CPU's pair statistics, for both games,
//! every policy kind and every matchmaker, across launch boundaries and on both aggregation
//! paths (shared memory for small populations, global memory for large ones).
//!
//! Runs whenever a GPU is usable. Without one it checks the fallback contract instead:
//! opening the device fails with a reason (no panic) that callers can print before using the
//! CPU. `NASHFLOW_REQUIRE_GPU=1` turns a missing GPU into a failure (for GPU machines).
#![cfg(feature = "cuda")]

use nashflow_kernels::sim::bargain::{BargainPolicy, PRESETS};
use nashflow_kernels::sim::battle::{BattleConfig, BattlePolicy};
use nashflow_kernels::sim::cuda::{CudaSimulator, SHARED_STATS_MAX_N};
use nashflow_kernels::sim::philox::MatchRng;
use nashflow_kernels::sim::{simulate, Game, Matchmaker, SimConfig};

fn device() -> Option<CudaSimulator> {
    match CudaSimulator::open() {
        Ok(d) => {
            eprintln!("CUDA device: {}", d.device);
            Some(d)
        }
        Err(e) => {
            let reason = e.to_string();
            assert!(!reason.is_empty());
            assert!(
                std::env::var("NASHFLOW_REQUIRE_GPU").as_deref() != Ok("1"),
                "NASHFLOW_REQUIRE_GPU=1 but the GPU is unusable: {reason}"
            );
            eprintln!("no usable GPU, checked the fallback contract only: {reason}");
            None
        }
    }
}

fn bargainers() -> Game {
    // Every preset (every policy kind), plus one more concession curve.
    let mut p: Vec<BargainPolicy> = PRESETS
        .iter()
        .map(|n| BargainPolicy::preset(n).unwrap())
        .collect();
    p.push(BargainPolicy::Concession {
        start: 0.9,
        end: 0.35,
        beta: 0.7,
    });
    Game::Bargain(p)
}

/// A population larger than the shared-memory limit: random concession parameters.
fn many_bargainers(n: usize) -> Game {
    let mut r = MatchRng::new(99, 0);
    Game::Bargain(
        (0..n)
            .map(|k| match k % 10 {
                0 => BargainPolicy::Random,
                _ => BargainPolicy::Concession {
                    start: 0.5 + 0.5 * r.unit(),
                    end: 0.2 + 0.5 * r.unit(),
                    beta: 0.1 + 4.0 * r.unit(),
                },
            })
            .collect(),
    )
}

fn battlers() -> Game {
    let p = ["rock", "paper", "scissors", "strong", "weak", "mixed"]
        .iter()
        .map(|n| BattlePolicy::preset(n).unwrap())
        .collect();
    Game::Battle(
        p,
        BattleConfig {
            rounds: 5,
            style_weight: 2.0,
            form_effect: 0.7,
        },
    )
}

fn matchmakers(n: usize) -> Vec<Matchmaker> {
    vec![
        Matchmaker::Uniform,
        Matchmaker::Sigma {
            weights: (0..n).map(|k| (k % 3) as f64).collect(),
            epsilon: 0.1,
        },
        Matchmaker::Rating {
            ratings: (0..n).map(|k| k as f64 * 0.3 - 1.0).collect(),
            shift: 0.5,
            temperature: 0.4,
        },
    ]
}

fn same(dev: &CudaSimulator, game: &Game, mm: &Matchmaker, matches: u64, seed: u64) {
    let cfg = SimConfig {
        seed,
        matches,
        threads: 0,
        keep_records: true,
    };
    let cpu = simulate(game, &cfg, mm);
    let gpu = dev.simulate(game, &cfg, mm).expect("device simulation");
    assert_eq!(cpu.records.len(), gpu.records.len());
    for (c, g) in cpu.records.iter().zip(&gpu.records) {
        assert_eq!(c, g, "{} {mm:?}: match {} differs", game.name(), c.index);
    }
    assert_eq!(
        cpu.pairs,
        gpu.pairs,
        "{} {mm:?}: pair statistics",
        game.name()
    );
    // Without records the device takes its statistics-only path.
    let stats_only = dev
        .simulate(
            game,
            &SimConfig {
                keep_records: false,
                ..cfg
            },
            mm,
        )
        .expect("device simulation");
    assert!(stats_only.records.is_empty());
    assert_eq!(cpu.pairs, stats_only.pairs);
}

#[test]
fn cpu_and_cuda_play_identical_matches() {
    let Some(dev) = device() else { return };
    // Small launches so every run crosses several launch boundaries.
    let dev = dev.with_launch_limit(70_001);
    let big = many_bargainers(SHARED_STATS_MAX_N + 8);
    for game in [bargainers(), battlers(), big] {
        for mm in matchmakers(game.population()) {
            same(&dev, &game, &mm, 200_000, 7);
        }
    }
    // A seed with both key words set.
    same(
        &dev,
        &bargainers(),
        &Matchmaker::Uniform,
        1000,
        0xDEAD_BEEF_0123_4567,
    );
}
