//! `nashflow run --simulate`: the simulator as a live source whose σ matchmaker follows the
//! engine's equilibrium, epoch by epoch.

mod common;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use common::{bin, comparable, ok};
use nashflow_schemas::arrow_io::read_parquet_batches;
use serde_json::Value;

#[test]
fn sigma_matchmaker_follows_the_engine_and_logs_propensities() {
    let dir = std::env::temp_dir().join(format!("nashflow-simsrc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // strong beats everyone: after the first epoch σ is pure `strong`, so with ε = 0.1 and 5
    // policies the opponent is `strong` with probability 0.9 + 0.1/5 = 0.92.
    let spec = "--game battle --policies strong,weak,rock,paper,scissors --matchmaker sigma \
                --sigma-epsilon 0.1 --matches 20000 --seed 2";
    let run = |out: &str| {
        ok(bin()
            .args([
                "run",
                "--simulate",
                spec,
                "--epoch-records",
                "2000",
                "--exit-at-end",
            ])
            .args([
                "--no-serve",
                "-q",
                "--bootstrap",
                "0",
                "--format",
                "json",
                "--out",
            ])
            .arg(dir.join(out))
            .output()
            .unwrap())
    };
    let first = run("a");
    let doc: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(doc["epoch"], 9, "one epoch per 2,000-match batch");
    assert_eq!(doc["matches"], 20000);
    let mut strong = [0u32; 2];
    let mut rows = [0u32; 2];
    for batch in read_parquet_batches(&dir.join("a/matches.parquet")).unwrap() {
        let ids = batch.column_by_name("match_id").unwrap().as_string::<i32>();
        let opp = batch.column_by_name("policy_j").unwrap().as_string::<i32>();
        let prop = batch
            .column_by_name("propensity")
            .unwrap()
            .as_primitive::<Float64Type>();
        for k in 0..batch.num_rows() {
            let index: u64 = ids.value(k).rsplit(':').next().unwrap().parse().unwrap();
            let later = usize::from(index >= 2000);
            rows[later] += 1;
            let is_strong = opp.value(k) == "strong";
            strong[later] += u32::from(is_strong);
            let expected = match (later, is_strong) {
                (0, _) => 0.2,
                (_, true) => 0.92,
                (_, false) => 0.02,
            };
            assert!((prop.value(k) - expected).abs() < 1e-12, "{}", ids.value(k));
        }
    }
    assert_eq!(rows, [2000, 18000]);
    let share = |k: usize| strong[k] as f64 / rows[k] as f64;
    assert!(
        (share(0) - 0.2).abs() < 0.04,
        "uniform before σ: {}",
        share(0)
    );
    assert!(
        (share(1) - 0.92).abs() < 0.02,
        "σ-weighted after: {}",
        share(1)
    );
    // The same seed replays the same run, and its tables are the analysis of its own log.
    assert_eq!(comparable(&run("b").stdout), comparable(&first.stdout));
    let analyzed = ok(bin()
        .args(["analyze", "--format", "json", "-q"])
        .arg(dir.join("a/matches.parquet"))
        .output()
        .unwrap());
    assert_eq!(comparable(&analyzed.stdout), comparable(&first.stdout));
}
