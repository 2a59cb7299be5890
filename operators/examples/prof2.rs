use nashflow_kernels::analysis::AnalysisConfig;
use nashflow_kernels::rng::SplitMix64;
use nashflow_kernels::{SolverConfig, SolverKind};
use nashflow_operators::engine::{run, EngineConfig};
use nashflow_schemas::{Layout, Match};
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn matches(count: usize, policies: usize, seed: u64) -> Vec<Match> {
    let names: Vec<String> = (0..policies).map(|k| format!("p{k:02}")).collect();
    let mut r = SplitMix64::new(seed);
    (0..count)
        .map(|k| {
            let pi = r.next_f64();
            let (a, b) = (
                names[r.below(policies)].clone(),
                names[r.below(policies)].clone(),
            );
            Match::new(format!("m{seed}-{k}"), "default", a, b, pi, 1.0 - pi)
        })
        .collect()
}
fn main() {
    let n = 1_000_000;
    let small: usize = std::env::var("SMALL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let records = matches(n, 50, 1);
    let analysis = AnalysisConfig {
        solver: SolverConfig::new(SolverKind::Mene),
        level3: false,
        ..Default::default()
    };
    let cfg = EngineConfig::new(1, Layout::Match, analysis);
    let mut epochs: Vec<Vec<Match>> = records.chunks(20_000).map(|c| c.to_vec()).collect();
    let warm = epochs.len();
    for k in 0..small {
        epochs.push(matches(1000, 50, 2 + k as u64));
    }
    let t = std::time::Instant::now();
    let out = run(epochs, &cfg);
    let mut w: Vec<f64> = out.epoch_seconds[warm..].to_vec();
    let mut c: Vec<f64> = out.epoch_cpu_seconds[warm..].to_vec();
    let mut k: Vec<f64> = out.kernel_seconds[warm..].to_vec();
    for v in [&mut w, &mut c, &mut k] {
        v.sort_by(f64::total_cmp);
    }
    eprintln!(
        "median wall {:.3} cpu {:.3} kernels {:.3} ms",
        w[w.len() / 2] * 1e3,
        c[c.len() / 2] * 1e3,
        k[k.len() / 2] * 1e3
    );
}
