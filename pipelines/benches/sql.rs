//! SQL latency (issue #5): a leaderboard query over the live snapshot's in-memory tables, and
//! a 1M-row aggregation over a Parquet archive, each against a hand-written Rust baseline over
//! the same data measured in the same process.
//!
//! `cargo bench -p nashflow-pipelines --bench sql` (NASHFLOW_BENCH_ROWS to change 1,000,000).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use nashflow_kernels::analysis::{analyze_game, AnalysisConfig};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::sim::battle::{BattleConfig, BattlePolicy};
use nashflow_kernels::sim::{simulate, Game, Matchmaker, SimConfig};
use nashflow_operators::batch::group;
use nashflow_pipelines::report::GameReport;
use nashflow_pipelines::simulate::to_match;
use nashflow_pipelines::sql::{catalog, query, Limits};
use nashflow_schemas::Layout;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn main() {
    let rows: u64 = std::env::var("NASHFLOW_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    // A 50-policy battle league.
    let n = 50;
    let population: Vec<BattlePolicy> = (0..n)
        .map(|k| BattlePolicy {
            strength: (k as f64 - 25.0) / 25.0,
            style: [
                1.0 + (k % 3) as f64,
                1.0 + (k % 5) as f64,
                1.0 + (k % 7) as f64,
            ],
        })
        .collect();
    let names: Vec<String> = (0..n).map(|k| format!("p{k:02}")).collect();
    let game = Game::Battle(
        population.iter().map(|p| p.normalized().unwrap()).collect(),
        BattleConfig::default(),
    );
    let sim = simulate(
        &game,
        &SimConfig {
            seed: 1,
            matches: rows,
            threads: 0,
            keep_records: true,
        },
        &Matchmaker::Uniform,
    );
    let matches: Vec<_> = sim
        .records
        .iter()
        .map(|m| to_match(m, "battle", &names, 1))
        .collect();
    let input = group(&matches, Layout::Match).remove(0);
    let cfg = AnalysisConfig {
        level3: false,
        ..Default::default()
    };
    let analysis = analyze_game(n, &input.cells, &[], &cfg, &mut Silent).unwrap();
    let report = GameReport {
        game: input.game.clone(),
        policies: input.policies.clone(),
        records: input.records,
        solver: cfg.solver.kind,
        missing: cfg.missing,
        analysis,
        elo: None,
        cells: input.cells.clone(),
    };
    let tables = nashflow_pipelines::tables::analysis_tables(std::slice::from_ref(&report), 0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = Limits {
        max_rows: 100_000,
        timeout: std::time::Duration::from_secs(60),
    };

    // 1. Leaderboard over the in-memory snapshot (one fresh session per query, as the server does).
    let policies: RecordBatch = tables.iter().find(|t| t.0 == "policies").unwrap().1.clone();
    let sql = "SELECT policy, mass, regret, payoff_vs_sigma FROM policies ORDER BY payoff_vs_sigma DESC LIMIT 20";
    let df_leaderboard = time(30, || {
        rt.block_on(async {
            let ctx = SessionContext::new();
            for (name, b) in &tables {
                let t = MemTable::try_new(b.schema(), vec![vec![b.clone()]]).unwrap();
                ctx.register_table(*name, Arc::new(t)).unwrap();
            }
            assert_eq!(query(&ctx, sql, limits).await.unwrap().rows(), 20);
        })
    });
    let hand_leaderboard = time(30, || {
        let u = policies
            .column_by_name("payoff_vs_sigma")
            .unwrap()
            .as_primitive::<Float64Type>();
        let mut order: Vec<usize> = (0..u.len()).collect();
        order.sort_by(|&a, &b| u.value(b).total_cmp(&u.value(a)));
        assert_eq!(order.iter().take(20).count(), 20);
    });

    // 2. Aggregation over a 1M-row Parquet table.
    let dir = std::env::temp_dir().join(format!("nashflow-sqlbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let batch = nashflow_schemas::arrow_io::matches_batch(&matches);
    nashflow_schemas::arrow_io::write_parquet(&dir.join("matches.parquet"), &batch).unwrap();
    let agg = "SELECT policy_i, policy_j, count(*) AS n, avg(payoff_i) AS mean FROM matches GROUP BY policy_i, policy_j";
    let ctx = rt.block_on(catalog(Some(&dir), None)).unwrap();
    let df_agg = time(5, || {
        let r = rt.block_on(query(&ctx, agg, limits)).unwrap();
        assert_eq!(r.rows(), n * n);
    });
    let hand_agg = time(5, || {
        let batches =
            nashflow_schemas::arrow_io::read_parquet_batches(&dir.join("matches.parquet")).unwrap();
        let mut cells: HashMap<(String, String), (u64, f64)> = HashMap::new();
        for b in &batches {
            let pi = b.column_by_name("policy_i").unwrap().as_string::<i32>();
            let pj = b.column_by_name("policy_j").unwrap().as_string::<i32>();
            let y = b
                .column_by_name("payoff_i")
                .unwrap()
                .as_primitive::<Float64Type>();
            for r in 0..b.num_rows() {
                let e = cells
                    .entry((pi.value(r).to_string(), pj.value(r).to_string()))
                    .or_default();
                e.0 += 1;
                e.1 += y.value(r);
            }
        }
        assert_eq!(cells.len(), n * n);
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("SQL latency (median), {n} policies, {rows} matches");
    println!(
        "leaderboard query (in-memory snapshot):  DataFusion {:>9.3} ms   hand-written sort {:>9.3} ms   ratio {:>7.1}×",
        df_leaderboard * 1e3,
        hand_leaderboard * 1e3,
        df_leaderboard / hand_leaderboard
    );
    println!(
        "{rows}-row Parquet aggregation:          DataFusion {:>9.3} ms   hand-written read+hash {:>9.3} ms   ratio {:>7.2}×",
        df_agg * 1e3,
        hand_agg * 1e3,
        df_agg / hand_agg
    );
}
