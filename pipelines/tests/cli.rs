//! The `nashflow` binary end to end: JSON contract, Parquet tables, solve, errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use nashflow_schemas::arrow_io::read_parquet_batches;
use serde_json::Value;

use common::{bin, comparable, ok};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nashflow-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) -> Output {
    ok(cmd.output().expect("binary runs"))
}

/// Rock–paper–scissors plus a dominated "rookie", with BATNAs and negotiation flags.
fn write_log(dir: &Path) -> PathBuf {
    let beats = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("rock", "scissors") | ("paper", "rock") | ("scissors", "paper")
        )
    };
    let names = ["paper", "rock", "rookie", "scissors"];
    let mut text = String::from(
        "match_id,game,policy_i,policy_j,payoff_i,payoff_j,batna_i,batna_j,agreement,ef1\n",
    );
    let mut k = 0;
    for a in names {
        for b in names {
            for rep in 0..3 {
                k += 1;
                let (pa, pb) = if a == "rookie" && b == "rookie" {
                    (0.5, 0.5)
                } else if a == "rookie" {
                    (0.0, 1.0)
                } else if b == "rookie" || beats(a, b) {
                    (1.0, 0.0)
                } else if beats(b, a) {
                    (0.0, 1.0)
                } else {
                    (0.5, 0.5)
                };
                let ef1 = if rep == 0 { "1" } else { "0" };
                text.push_str(&format!("m{k},rps,{a},{b},{pa},{pb},0.1,0.1,1,{ef1}\n"));
            }
        }
    }
    text.push_str("broken,rps,rock,,1,0,,,,\n");
    let p = dir.join("log.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn analyze_json_contract() {
    let dir = tmpdir("json");
    let log = write_log(&dir);
    let out = run(bin()
        .args([
            "analyze",
            "--format",
            "json",
            "--bootstrap",
            "20",
            "--seed",
            "4",
        ])
        .arg(&log));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["policies"],
        serde_json::json!(["paper", "rock", "rookie", "scissors"])
    );
    assert_eq!(v["solver"], "mene");
    let sigma: Vec<f64> = v["sigma"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    for (k, expect) in [1.0 / 3.0, 1.0 / 3.0, 0.0, 1.0 / 3.0].iter().enumerate() {
        assert!((sigma[k] - expect).abs() < 1e-7, "{sigma:?}");
    }
    assert!(v["exploitability"].as_f64().unwrap().abs() < 1e-7);
    assert!((v["value"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    for key in ["payoff", "counts", "nw", "nw_plus", "ef1"] {
        assert_eq!(v["matrices"][key].as_array().unwrap().len(), 4, "{key}");
    }
    // 3 matches per ordered pair in each seat: 6 per off-diagonal cell, 6 on the diagonal.
    assert_eq!(v["matrices"]["counts"][0][1], 6.0);
    assert_eq!(v["matrices"]["ef1"][0][1].as_f64().unwrap(), 1.0 / 3.0);
    for key in ["value", "uw", "nw", "nw_plus", "ef1"] {
        assert!(v["welfare"][key].is_number(), "{key}");
    }
    assert!((v["welfare"]["uw"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let l1 = &v["level1"]["rookie"];
    for key in [
        "per_incumbent",
        "uniform_avg",
        "equilibrium_avg",
        "min",
        "max",
    ] {
        assert!(!l1[key].is_null(), "level1.{key}");
    }
    assert!(
        l1["per_incumbent"]["rock"].as_f64().unwrap() > 0.0,
        "the rookie is a gift to rock"
    );
    let l2 = &v["level2"]["rookie"];
    assert_eq!(l2["entry_mass"].as_f64().unwrap(), 0.0);
    for key in ["uw", "nw", "nw_plus"] {
        assert!(l2["delta_eco"][key].is_number());
    }
    assert!(l2["incumbent_shifts"]["paper"].is_number());
    assert_eq!(v["level3"]["method"], "exact");
    let shapley_uw = &v["level3"]["shapley"]["uw"];
    let total: f64 = ["paper", "rock", "rookie", "scissors"]
        .iter()
        .map(|p| shapley_uw[p].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "Shapley efficiency: {total}");
    assert!(v["level3"]["banzhaf"]["nw"].is_object());
    assert_eq!(v["bootstrap"]["replicates"], 20);
    assert!(v["bootstrap"]["mass"]["rock"]["lo"].is_number());
    assert!(v["ratings"]["bradley_terry"]["rock"]["rating"].is_number());
    assert!(v["ratings"]["elo"]["rock"].is_number());
    assert_eq!(v["dead_letters"], 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 49, field `policy_j`"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no progress bar escape codes when stderr is piped"
    );
}

#[test]
fn analyze_writes_parquet_tables() {
    let dir = tmpdir("out");
    let log = write_log(&dir);
    let out_dir = dir.join("tables");
    let out = run(bin()
        .args(["analyze", "--quiet"])
        .arg(&log)
        .arg("--out")
        .arg(&out_dir));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("rank") && table.contains("rookie"),
        "{table}"
    );
    let policies = read_parquet_batches(&out_dir.join("policies.parquet")).unwrap();
    let b = &policies[0];
    assert_eq!(b.num_rows(), 4);
    for col in [
        "game",
        "policy",
        "mass",
        "regret",
        "payoff_vs_sigma",
        "games",
        "rating",
        "rating_lo",
        "rating_hi",
    ] {
        assert!(b.column_by_name(col).is_some(), "policies.{col}");
    }
    let mass = b
        .column_by_name("mass")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert!((mass.iter().flatten().sum::<f64>() - 1.0).abs() < 1e-9);
    for (name, rows) in [
        ("cells", 16),
        ("metrics", 1),
        ("equilibria", 4),
        ("matches", 48),
        ("dead_letters", 1),
    ] {
        let batches = read_parquet_batches(&out_dir.join(format!("{name}.parquet"))).unwrap();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            rows,
            "{name}"
        );
    }
    for name in ["lifts", "attribution"] {
        let batches = read_parquet_batches(&out_dir.join(format!("{name}.parquet"))).unwrap();
        assert!(
            batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
            "{name}"
        );
    }
    let dl = &read_parquet_batches(&out_dir.join("dead_letters.parquet")).unwrap()[0];
    let reason = dl.column_by_name("reason").unwrap().as_string::<i32>();
    assert!(reason.value(0).contains("policy name"));
    assert!(!dl.column_by_name("raw").unwrap().is_null(0));
}

#[test]
fn strict_mode_and_empty_input_fail_clearly() {
    let dir = tmpdir("strict");
    let log = write_log(&dir);
    let out = bin()
        .args(["analyze", "--strict"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--strict") && err.contains("row 49"), "{err}");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let out = bin().arg("analyze").arg(&empty).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no live matches") && err.contains("no data rows"),
        "{err}"
    );
    // When every row is bad, the error still names each row and field, in both commands.
    let all_bad = dir.join("all_bad.jsonl");
    std::fs::write(
        &all_bad,
        "{\"match_id\":\"1\",\"policy_i\":\"a\",\"policy_j\":\"b\",\"payoff_i\":\"x\",\"payoff_j\":0}\n",
    )
    .unwrap();
    for command in [&["analyze"][..], &["run", "--exit-at-end", "-q", "-i"]] {
        let out = bin().args(command).arg(&all_bad).output().unwrap();
        assert!(!out.status.success(), "{command:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("row 1, field `payoff_i`") && err.contains("1 bad row(s), listed above"),
            "{command:?}: {err}"
        );
        // With --out the bad rows do not vanish: they are kept as the dead-letter table.
        let kept = dir.join(format!("kept-{}", command[0]));
        let out = bin()
            .args(command)
            .arg(&all_bad)
            .arg("--out")
            .arg(&kept)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("kept in"), "{command:?}: {err}");
        let dead = &read_parquet_batches(&kept.join("dead_letters.parquet")).unwrap()[0];
        assert_eq!(dead.num_rows(), 1, "{command:?}");
        let policies = read_parquet_batches(&kept.join("policies.parquet")).unwrap();
        assert_eq!(policies.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    }
    let out = bin()
        .args(["analyze", "--solver", "nope"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown solver `nope`"));
}

/// A file whose content cannot be read (a corrupt Parquet file next to a good log) is one
/// dead letter, row 0, in both commands (given the files, or their directory), and the good
/// log is analysed as if it were alone;
/// `--strict` stops at it. Only a named file that cannot be opened at all is fatal.
#[test]
fn unreadable_files_are_dead_letters_and_the_rest_is_kept() {
    let dir = tmpdir("unreadable");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = write_log(&logs);
    let broken = logs.join("z_broken.parquet");
    std::fs::write(&broken, b"PAR1 not really a Parquet file").unwrap();
    // Not a match log: named on stderr by `run`, which lists the directory.
    std::fs::write(logs.join("log.csv.gz"), b"\x1f\x8b").unwrap();
    let json = |out: &Output| {
        let mut doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let o = doc.as_object_mut().unwrap();
        o.remove("epoch");
        o.remove("solve_seconds");
        let dead = o.remove("dead_letters").unwrap();
        (doc, dead)
    };
    let (alone, _) = json(&run(bin()
        .args(["analyze", "--format", "json", "-q"])
        .arg(&log)));
    let analyze: Vec<&std::ffi::OsStr> = vec!["analyze".as_ref(), log.as_ref(), broken.as_ref()];
    let over_dir: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        "--exit-at-end".as_ref(),
        "--bootstrap".as_ref(),
        "0".as_ref(),
        logs.as_ref(),
    ];
    let analyze_dir: Vec<&std::ffi::OsStr> = vec!["analyze".as_ref(), logs.as_ref()];
    for (k, command) in [analyze, over_dir, analyze_dir].iter().enumerate() {
        let out_dir = dir.join(format!("out{k}"));
        let out = run(bin()
            .args(command)
            .args(["--format", "json", "-q", "--out"])
            .arg(&out_dir));
        let (doc, dead) = json(&out);
        assert_eq!(doc, alone, "{command:?}");
        assert_eq!(
            dead, 2,
            "{command:?}: the log's own bad row and the broken file"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("1 bad row(s) and 1 unreadable file(s) skipped")
                && err.contains(&format!(
                    "{}: not a readable Parquet file",
                    broken.display()
                )),
            "{command:?}: {err}"
        );
        if k == 1 {
            assert!(
                err.contains("note: skipping") && err.contains("log.csv.gz"),
                "{err}"
            );
        }
        let dead = &read_parquet_batches(&out_dir.join("dead_letters.parquet")).unwrap()[0];
        let sources = dead.column_by_name("source").unwrap().as_string::<i32>();
        let rows = dead
            .column_by_name("row")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>();
        let file_rows: Vec<(&str, u64)> = (0..dead.num_rows())
            .filter(|&i| sources.value(i).ends_with("z_broken.parquet"))
            .map(|i| (sources.value(i), rows.value(i)))
            .collect();
        assert_eq!(file_rows.len(), 1, "{command:?}");
        assert_eq!(file_rows[0].1, 0, "the file as a whole");
        assert_eq!(dead.num_rows(), 2, "and the log's own bad row");
    }
    let out = bin()
        .args(["analyze", "--strict", "-q"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--strict") && err.contains("z_broken.parquet"),
        "{err}"
    );
    // A named file that is not there fails the run before the files before it are read.
    let out = bin()
        .args(["run", "--exit-at-end", "-q", "--format", "json"])
        .arg(&log)
        .arg(dir.join("missing.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.csv: no such file"), "{err}");
    assert!(out.stdout.is_empty(), "nothing was analysed");
}

/// A constant-sum league with unplayed pairs: column-mean imputation makes it general-sum,
/// and both commands say so once, with the prior that keeps it constant-sum; with that
/// prior, no hint.
#[test]
fn sparse_constant_sum_logs_get_the_imputation_hint() {
    let dir = tmpdir("sparse");
    let log = dir.join("sparse.jsonl");
    let pairs = [
        ("a", "b", 0.9),
        ("b", "c", 0.7),
        ("c", "a", 0.6),
        ("a", "a", 0.5),
    ];
    let text: String = (0..3)
        .flat_map(|k| pairs.iter().map(move |p| (k, p)))
        .enumerate()
        .map(|(id, (_, (i, j, p)))| {
            format!(
                "{{\"match_id\":\"{id}\",\"policy_i\":\"{i}\",\"policy_j\":\"{j}\",\"payoff_i\":{p},\"payoff_j\":{}}}\n",
                1.0 - p
            )
        })
        .collect();
    std::fs::write(&log, text).unwrap();
    let hint = "`--missing prior=0.5` keeps it constant-sum";
    for command in [&["analyze", "-q"][..], &["run", "--exit-at-end", "-q"]] {
        let out = run(bin().args(command).arg(&log));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches(hint).count(), 1, "{command:?}: {err}");
        assert!(err.contains("2 of 9 cells have no matches"), "{err}");
        let out = run(bin()
            .args(command)
            .arg(&log)
            .args(["--missing", "prior=0.5"]));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("hint:"));
    }
}

#[test]
fn solve_json_and_csv() {
    let dir = tmpdir("solve");
    let json_path = dir.join("m.json");
    std::fs::write(
        &json_path,
        r#"{"policies": ["r", "p", "s"], "payoff": [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]}"#,
    )
    .unwrap();
    let out = run(bin().args(["solve", "--format", "json"]).arg(&json_path));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "policies",
        "sigma",
        "regret",
        "value",
        "exploitability",
        "solve_seconds",
        "solver_exact",
        "constant_sum",
    ] {
        assert!(!v[key].is_null(), "{key}");
    }
    for x in v["sigma"].as_array().unwrap() {
        assert!((x.as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    }
    let csv_path = dir.join("m.csv");
    std::fs::write(&csv_path, ",c,d\nc,3,0\nd,5,1\n").unwrap();
    let out = run(bin()
        .args(["solve", "--format", "json", "--solver", "alpharank"])
        .arg(&csv_path));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policies"], serde_json::json!(["c", "d"]));
    assert!(v["sigma"][1].as_f64().unwrap() > 0.99);
    let out = run(bin().arg("solve").arg(&json_path));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("exploitability") && !table.contains("note:"));
    // A general-sum game: nash-lp's maximin is no equilibrium here, and the table says so.
    let out = run(bin().args(["solve", "--solver", "nash-lp"]).arg(&csv_path));
    assert!(String::from_utf8_lossy(&out.stdout).contains("note: the game is not constant-sum"));
    // λ·payoff overflows long before λ = 1e300, so lle stalls, says so, and flags σ.
    let out = run(bin()
        .args(["solve", "--solver", "lle", "--lle-lambda", "1e300"])
        .arg(&csv_path));
    assert!(String::from_utf8_lossy(&out.stdout).contains("note: lle's continuation stalled"));
    let out = run(bin()
        .args(["solve", "--format", "json", "--solver", "lle"])
        .arg(&csv_path));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["solver_exact"], Value::Bool(true));
    assert!(v["sigma"][1].as_f64().unwrap() > 0.999, "defect: {v}");
    let out = run(bin()
        .args(["solve", "--format", "json", "--solver", "nash-lp"])
        .arg(&json_path));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["solver_exact"], &v["constant_sum"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
}

#[test]
fn run_matches_analyze_and_writes_the_same_tables() {
    // The log as a positional, as `analyze` takes it (`-i` elsewhere).
    let dir = tmpdir("run");
    let log = write_log(&dir);
    let analyze_out = dir.join("a");
    let run_out = dir.join("r");
    let a = run(bin()
        .args(["analyze", "--format", "json", "-q"])
        .arg(&log)
        .arg("--out")
        .arg(&analyze_out));
    let r = run(bin()
        .args([
            "run",
            "--epoch-records",
            "7",
            "-w",
            "2",
            "--bootstrap",
            "0",
            "--format",
            "json",
            "--exit-at-end",
        ])
        .arg(&log)
        .arg("--out")
        .arg(&run_out));
    let mut a: Value = serde_json::from_slice(&a.stdout).unwrap();
    let mut r: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r["epoch"], 6, "48 good rows and 1 bad one in epochs of 7");
    // Timings differ; everything else, Elo included (the same arrival order), is equal.
    for doc in [&mut a, &mut r] {
        let o = doc.as_object_mut().unwrap();
        o.remove("epoch");
        o.remove("solve_seconds");
    }
    assert_eq!(a, r);
    for name in [
        "policies",
        "cells",
        "metrics",
        "equilibria",
        "lifts",
        "attribution",
        "matches",
        "dead_letters",
    ] {
        let ta = &read_parquet_batches(&analyze_out.join(format!("{name}.parquet"))).unwrap()[0];
        let tr = &read_parquet_batches(&run_out.join(format!("{name}.parquet"))).unwrap()[0];
        assert_eq!(
            ta.schema().fields().len(),
            tr.schema().fields().len(),
            "{name}"
        );
        for (fa, fr) in ta.schema().fields().iter().zip(tr.schema().fields()) {
            assert_eq!(fa.name(), fr.name(), "{name}");
            assert_eq!(fa.data_type(), fr.data_type(), "{name}.{}", fa.name());
        }
        assert_eq!(ta.num_rows(), tr.num_rows(), "{name}");
    }
}

/// A league that is stable until a new policy arrives that beats everyone: the trigger fires
/// exactly once, naming the newcomer, and every sink receives the job.
#[test]
fn run_emits_one_job_when_an_exploiter_arrives() {
    let dir = tmpdir("trigger");
    let mut text = String::from("match_id,policy_i,policy_j,payoff_i,payoff_j\n");
    let names = ["paper", "rock", "scissors"];
    let beats = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("rock", "scissors") | ("paper", "rock") | ("scissors", "paper")
        )
    };
    let mut k = 0;
    // 4 epochs of 9 records: a balanced RPS league with small noise.
    for rep in 0..4 {
        for a in names {
            for b in names {
                k += 1;
                let noise = 0.01 * ((k % 3) as f64 - 1.0);
                let pa = if beats(a, b) {
                    1.0
                } else if beats(b, a) {
                    0.0
                } else {
                    0.5
                } + noise;
                text.push_str(&format!("m{k},{a},{b},{pa},{}\n", 1.0 - pa));
            }
        }
        let _ = rep;
    }
    // Then the exploiter: wins 0.9 against everyone, for 4 more epochs of 9 records.
    for _ in 0..12 {
        for b in names {
            k += 1;
            text.push_str(&format!("m{k},newcomer,{b},0.9,0.1\n"));
        }
    }
    let log = dir.join("league.csv");
    std::fs::write(&log, text).unwrap();
    let jobs_file = dir.join("jobs.jsonl");
    let archive = dir.join("archive");
    let out = run(bin()
        .args(["run", "--epoch-records", "9", "--no-level3", "-i"])
        .arg(&log)
        .arg("--archive")
        .arg(&archive)
        .arg("--jobs")
        .arg(&jobs_file)
        .arg("--jobs")
        .arg(format!("cmd:cat >> {}", dir.join("cmd.jsonl").display())));
    let jobs: Vec<Value> = std::fs::read_to_string(&jobs_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "{jobs:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(jobs[0]["target_policy"], "newcomer");
    assert_eq!(jobs[0]["epoch"], 4, "the first epoch with the newcomer");
    assert!(jobs[0]["exploitability"].as_f64().unwrap() > 0.3);
    assert_eq!(jobs[0]["sigma"]["newcomer"].as_f64().unwrap(), 1.0);
    let via_cmd = std::fs::read_to_string(dir.join("cmd.jsonl")).unwrap();
    assert_eq!(via_cmd.lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("job default:4"));
    // The archive holds every epoch: its input records, tables and jobs.
    for epoch in 0..8 {
        let part = archive.join(format!("epoch={epoch}"));
        let rows = |name: &str| -> usize {
            read_parquet_batches(&part.join(format!("{name}.parquet")))
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum()
        };
        assert_eq!(rows("records"), 9, "epoch {epoch}");
        assert_eq!(rows("metrics"), 1);
        assert_eq!(rows("jobs"), usize::from(epoch == 4), "epoch {epoch}");
        assert_eq!(rows("policies"), if epoch < 4 { 3 } else { 4 });
    }
}

/// The binary with `args`, `text` on its stdin.
fn with_stdin(args: &[&str], text: &[u8]) -> Output {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn run_reads_json_lines_from_stdin() {
    // A line that is not UTF-8 in the middle is one bad row; the lines after it still count.
    let mut text = Vec::new();
    for k in 0..30 {
        if k == 15 {
            text.extend_from_slice(b"{\"match_id\":\"\xff\"}\n");
        }
        let (a, b) = if k % 2 == 0 { ("x", "y") } else { ("y", "x") };
        text.extend_from_slice(format!(
            "{{\"match_id\":\"s{k}\",\"policy_i\":\"{a}\",\"policy_j\":\"{b}\",\"payoff_i\":{},\"payoff_j\":0.5}}\n",
            if a == "x" { 0.75 } else { 0.25 }
        ).as_bytes());
    }
    text.extend_from_slice(b"not json\n");
    let out = ok(with_stdin(
        &[
            "run",
            "-i",
            "-",
            "--epoch-records",
            "10",
            "--epoch-ms",
            "0",
            "--bootstrap",
            "0",
            "--format",
            "json",
            "--no-level3",
        ],
        &text,
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["policies"], serde_json::json!(["x", "y"]));
    assert_eq!(v["matches"], 30);
    assert_eq!(v["dead_letters"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stdin: row 16: not valid UTF-8"), "{err}");
    assert!(err.contains("stdin: row 32"), "{err}");

    // `analyze -` reads the same stdin to the same results.
    let batch = ok(with_stdin(
        &["analyze", "-", "--format", "json", "--no-level3"],
        &text,
    ));
    assert_eq!(comparable(&batch.stdout), comparable(&out.stdout));
    assert!(String::from_utf8_lossy(&batch.stderr).contains("stdin: row 16: not valid UTF-8"));
}

/// `--bounds` on a confounded log (contexts and logged propensities): `analyze` and `run`
/// agree on the causal section and both write the `bounds` and `certificates` tables.
#[test]
fn causal_bounds_from_analyze_and_run_agree() {
    let dir = tmpdir("bounds");
    let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/confounded.jsonl");
    let flags = [
        "--bounds",
        "--gamma",
        "1,1.25",
        "--payoff-range",
        "0,1",
        "--no-level3",
        "--format",
        "json",
        "-q",
    ];
    let a = run(bin()
        .arg("analyze")
        .arg(&log)
        .args(flags)
        .arg("--out")
        .arg(dir.join("a")));
    let r = run(bin()
        .args([
            "run",
            "--exit-at-end",
            "--epoch-records",
            "250",
            "--bootstrap",
            "0",
        ])
        .args(flags)
        .arg("-i")
        .arg(&log)
        .arg("--out")
        .arg(dir.join("r")));
    let a: Value = serde_json::from_slice(&a.stdout).unwrap();
    let r: Value = serde_json::from_slice(&r.stdout).unwrap();
    let causal = &a["causal"];
    assert_eq!(causal, &r["causal"]);
    assert_eq!(causal["certify_gamma"], 1.25);
    assert_eq!(causal["has_context"], true);
    let certs = causal["certificates"].as_array().unwrap();
    // 3 adjacent pairs × (msm, tv) + 3 adjacent rating pairs + 4 equilibrium claims.
    assert_eq!(certs.len(), 13, "{certs:?}");
    assert_eq!(certs.iter().filter(|c| c["kind"] == "rating").count(), 3);
    for c in certs {
        if c["method"] == "msm" && (c["kind"] == "rank" || c["kind"] == "rating") {
            // Certified exactly when the tipping Γ lies beyond the certification level.
            let robust = c["tipping_gamma"].as_f64().is_none_or(|g| g > 1.25);
            assert_eq!(
                c["certified"].as_bool().unwrap(),
                robust && c["naive"].as_f64().unwrap() > 0.0
            );
        }
    }
    for name in ["bounds", "certificates"] {
        let ta = read_parquet_batches(&dir.join("a").join(format!("{name}.parquet"))).unwrap();
        let tr = read_parquet_batches(&dir.join("r").join(format!("{name}.parquet"))).unwrap();
        let rows = |t: &[arrow::array::RecordBatch]| t.iter().map(|b| b.num_rows()).sum::<usize>();
        assert!(rows(&ta) > 0 && rows(&ta) == rows(&tr), "{name}");
    }
    let b = &read_parquet_batches(&dir.join("a/bounds.parquet")).unwrap()[0];
    for col in [
        "game", "policy_i", "policy_j", "stratum", "scope", "gamma", "method", "lo", "hi", "n",
    ] {
        assert!(b.column_by_name(col).is_some(), "bounds.{col}");
    }
    // A declared range that excludes observed payoffs is refused with the reason.
    let out = bin()
        .arg("analyze")
        .arg(&log)
        .args(["--bounds", "--payoff-range", "0,0.5", "-q"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside the declared payoff range"), "{err}");
    let out = bin()
        .arg("analyze")
        .arg(&log)
        .args(["--bounds", "--gamma", "0.5", "-q"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Γ must be"));
}

/// `simulate` writes logs that `analyze` reads: a pure rock–paper–scissors battle population
/// gives the cyclic meta-game (σ uniform), walkers get exactly their outside options, and bad
/// specs fail with the reason.
#[test]
fn simulate_writes_logs_that_analyze_reads() {
    let dir = tmpdir("simulate");
    let battle = dir.join("rps.parquet");
    run(bin()
        .args([
            "simulate",
            "--game",
            "battle",
            "--policies",
            "rock,paper,scissors",
        ])
        .args(["--matches", "30000", "--seed", "5", "--out"])
        .arg(&battle));
    let out = run(bin()
        .args(["analyze", "--format", "json", "--no-level3", "-q"])
        .arg(&battle));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["policies"],
        serde_json::json!(["paper", "rock", "scissors"])
    );
    for mass in doc["sigma"].as_array().unwrap() {
        let mass = mass.as_f64().unwrap();
        assert!((mass - 1.0 / 3.0).abs() < 0.05, "{mass}");
    }
    let log = dir.join("walk.jsonl");
    run(bin()
        .args([
            "simulate",
            "--policies",
            "w1=walk,w2=walk,fair",
            "--matches",
            "3000",
            "--out",
        ])
        .arg(&log));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut walkers = 0;
    for line in text.lines() {
        let m: Value = serde_json::from_str(line).unwrap();
        assert!((m["propensity"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let seat0 = m["policy_i"].as_str().unwrap();
        if seat0.starts_with('w') && m["policy_j"].as_str().unwrap().starts_with('w') {
            walkers += 1;
            assert_eq!(m["agreement"], false);
            assert_eq!(m["payoff_i"], m["batna_i"]);
            assert_eq!(m["payoff_j"], m["batna_j"]);
        }
    }
    assert!(walkers > 1000, "{walkers}");
    // The same seed gives the same log.
    let again = dir.join("again.jsonl");
    run(bin()
        .args([
            "simulate",
            "--policies",
            "w1=walk,w2=walk,fair",
            "--matches",
            "3000",
            "--threads",
            "3",
            "--out",
        ])
        .arg(&again));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
    // `--device cuda` plays the same matches: on the GPU where there is one, else on the CPU
    // after saying why.
    let cuda = dir.join("cuda.jsonl");
    let out = run(bin()
        .args(["simulate", "--policies", "w1=walk,w2=walk,fair"])
        .args(["--matches", "3000", "--device", "cuda", "--out"])
        .arg(&cuda));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("on the GPU") || stderr.contains("warning: not using the GPU: "),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&cuda).unwrap(), text);
    // --matrix: the pair statistics give exactly the matrix `analyze` builds from the
    // records (counts, means, and the column-mean imputation of the one cell never played:
    // with ε = 0 nobody meets w1 in seat 1, so w1 never meets itself), and `solve` reads it.
    let (log, matrix) = (dir.join("m.parquet"), dir.join("m.json"));
    run(bin()
        .args(["simulate", "--policies", "w1=walk,fair,greedy,boulware"])
        .args([
            "--matchmaker",
            "sigma",
            "--sigma",
            "0,1,1,2",
            "--sigma-epsilon",
            "0",
        ])
        .args(["--matches", "4000", "--seed", "9", "--out"])
        .arg(&log)
        .arg("--matrix")
        .arg(&matrix));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&matrix).unwrap()).unwrap();
    let out = run(bin()
        .args(["analyze", "--format", "json", "--no-level3", "-q"])
        .arg(&log));
    let analyzed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let (ours, theirs) = (names(&doc["policies"]), names(&analyzed["policies"]));
    assert_eq!(ours, ["w1", "fair", "greedy", "boulware"]);
    let at = |k: &str| theirs.iter().position(|t| t == k).unwrap();
    assert_eq!(doc["counts"][0][0], 0);
    for (a, x) in ours.iter().enumerate() {
        for (b, y) in ours.iter().enumerate() {
            let m = &analyzed["matrices"];
            assert_eq!(
                doc["counts"][a][b].as_f64(),
                m["counts"][at(x)][at(y)].as_f64(),
                "{x} vs {y}"
            );
            assert_eq!(doc["payoff"][a][b], m["payoff"][at(x)][at(y)], "{x} vs {y}");
        }
    }
    let solved = run(bin().args(["solve", "--format", "json"]).arg(&matrix));
    let solved: Value = serde_json::from_slice(&solved.stdout).unwrap();
    for (a, x) in ours.iter().enumerate() {
        let (s, t) = (
            solved["sigma"][a].as_f64().unwrap(),
            analyzed["sigma"][at(x)].as_f64().unwrap(),
        );
        assert!((s - t).abs() < 1e-9, "{x}: {s} vs {t}");
    }
    // σ-weighted opponents: with σ = (0, 0, 1) and ε = 0.3, seat 1 is `fair` with
    // propensity 0.7 + 0.1 and each walker with 0.1.
    let sigma_log = dir.join("sigma.jsonl");
    run(bin()
        .args([
            "simulate",
            "--policies",
            "w1=walk,w2=walk,fair",
            "--matchmaker",
            "sigma",
        ])
        .args([
            "--sigma",
            "0,0,1",
            "--sigma-epsilon",
            "0.3",
            "--matches",
            "3000",
            "--out",
        ])
        .arg(&sigma_log));
    let mut fair = 0;
    for line in std::fs::read_to_string(&sigma_log).unwrap().lines() {
        let m: Value = serde_json::from_str(line).unwrap();
        let want = if m["policy_j"] == "fair" { 0.8 } else { 0.1 };
        assert!((m["propensity"].as_f64().unwrap() - want).abs() < 1e-12);
        fair += (m["policy_j"] == "fair") as u32;
    }
    assert!((2250..2550).contains(&fair), "{fair} of 3000 against fair");
    // The confounded rating matchmaker logs varying propensities that --bounds uses.
    let confounded = dir.join("confounded.jsonl");
    run(bin()
        .args([
            "simulate",
            "--game",
            "battle",
            "--policies",
            "strong,mixed,weak",
        ])
        .args([
            "--matchmaker",
            "rating",
            "--form-effect",
            "1",
            "--matches",
            "4000",
            "--out",
        ])
        .arg(&confounded));
    let out = run(bin()
        .args([
            "analyze",
            "--bounds",
            "--gamma",
            "1,2",
            "--format",
            "json",
            "-q",
            "--no-level3",
        ])
        .arg(&confounded));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msm_rows = doc["causal"]["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "msm" && r["gamma"] == 2.0 && !r["policy_j"].is_null())
        .count();
    assert_eq!(msm_rows, 9, "every cell carries propensities");
    let bad = bin()
        .args(["simulate", "--policies", "greedy,telepath", "--out"])
        .arg(dir.join("x.jsonl"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown bargain preset `telepath`"));
    let bad = bin()
        .args([
            "simulate",
            "--policies",
            r#"[{"name":"x","kind":"concession","start":2,"end":0.5,"beta":1},{"kind":"walk"}]"#,
            "--out",
        ])
        .arg(dir.join("x.jsonl"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("start and end must be in [0, 1]"));
}

/// The PSRO loop closes on one machine: over five oracle iterations the exploitability of the
/// meta-game σ (on the fixed evaluation sample) falls, and every new policy beats the σ it
/// answered.
#[test]
fn demo_psro_lowers_exploitability() {
    let out = run(bin().args(["demo", "--iterations", "6", "--no-serve"]));
    let text = String::from_utf8_lossy(&out.stdout);
    // "iteration N  population P  exploitability E  σ value V  new policy brN payoff vs σ X"
    let rows: Vec<(usize, f64, f64, f64)> = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let at = |key: &str, skip: usize| w[w.iter().position(|x| *x == key).unwrap() + skip];
            (
                at("population", 1).parse().unwrap(),
                at("exploitability", 1).parse().unwrap(),
                at("value", 1).parse().unwrap(),
                at("payoff", 3).parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 6, "{text}");
    for (k, r) in rows.iter().enumerate() {
        assert_eq!(r.0, 2 + k, "population grows by one per iteration");
    }
    // σ after five new policies (line 6) against the initial σ (line 1).
    assert!(rows[5].1 < rows[0].1 * 0.5, "{text}");
    for r in &rows {
        assert!(r.3 > r.2, "each new policy beats the σ it answered: {text}");
    }
}

/// Read-only SQL over the tables `analyze --out` and `run --archive` write: values equal the
/// analysis, joins work, history spans every epoch, and DDL/DML and oversize results are
/// handled with clear messages.
#[test]
fn sql_over_written_tables() {
    let dir = tmpdir("sql");
    let log = write_log(&dir);
    let data = dir.join("tables");
    let a = run(bin()
        .args(["analyze", "--format", "json", "-q"])
        .arg(&log)
        .arg("--out")
        .arg(&data));
    let doc: Value = serde_json::from_slice(&a.stdout).unwrap();
    let sql = |q: &str, extra: &[&str]| {
        bin()
            .args(["sql", q, "--format", "json", "--data"])
            .arg(&data)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = sql(
        "SELECT p.policy, p.mass, m.exploitability FROM policies p JOIN metrics m \
         ON p.game = m.game AND p.epoch = m.epoch ORDER BY p.policy",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let policies = doc["policies"].as_array().unwrap();
    assert_eq!(rows.len(), policies.len());
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["policy"], policies[k]);
        assert_eq!(row["mass"], doc["sigma"][k], "mass of {}", policies[k]);
        assert_eq!(row["exploitability"], doc["exploitability"]);
    }
    // The directory as a positional, after the query or before it, reads the same tables.
    let mass = "SELECT policy, mass FROM policies ORDER BY policy";
    let flagged = sql(mass, &[]);
    for args in [
        [mass, data.to_str().unwrap()],
        [data.to_str().unwrap(), mass],
    ] {
        let out = run(bin().arg("sql").args(args).args(["--format", "json"]));
        assert_eq!(out.stdout, flagged.stdout, "{args:?}");
    }
    // A directory that does not exist is named as such in either order; a lone directory
    // asks for the query.
    let absent = dir.join("absent");
    for args in [
        [mass, absent.to_str().unwrap()],
        [absent.to_str().unwrap(), mass],
    ] {
        let out = bin().arg("sql").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("absent"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("SELECT"), "{args:?}: {err}");
    }
    let out = bin().arg("sql").arg(&data).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("give the query too"),
        "{err}"
    );
    for bad in [
        "DROP TABLE policies",
        "INSERT INTO policies SELECT * FROM policies",
        "COPY policies TO '/tmp/x.csv'",
    ] {
        let out = sql(bad, &[]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("read-only"),
            "{bad}"
        );
    }
    // A table that is not there: the error lists the ones that are.
    let out = sql("SELECT * FROM policy", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not found") && err.contains("metrics, policies)"),
        "{err}"
    );
    let out = sql("SELECT * FROM cells", &["--max-rows", "3"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cut at 3 rows"));
    // The time limit stops a runaway query (a 16^6-row cross join) with a clear error.
    let out = sql(
        "SELECT sum(a.mean * b.mean * c.mean * d.mean * e.mean * f.mean) AS s \
         FROM cells a, cells b, cells c, cells d, cells e, cells f",
        &["--timeout-s", "0.05"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("time limit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // History across the epochs of a run's archive.
    let archive = dir.join("archive");
    run(bin()
        .args([
            "run",
            "--exit-at-end",
            "--epoch-records",
            "10",
            "--bootstrap",
            "0",
            "-q",
            "--format",
            "json",
            "-i",
        ])
        .arg(&log)
        .arg("--archive")
        .arg(&archive));
    let out = run(bin()
        .args([
            "sql",
            "SELECT count(DISTINCT epoch) AS epochs, max(epoch) AS last FROM metrics_history",
            "--format",
            "csv",
            "--archive",
        ])
        .arg(&archive));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "epochs,last\n5,4\n");
}

/// A run of many epochs keeps few archive directories (merged in the background), and the
/// history reads each epoch once: the records in the order read, one metrics row an epoch.
/// A fresh run into the same archive is refused.
#[test]
fn archive_merges_epochs_and_history_reads_each_once() {
    let dir = tmpdir("archive-merge");
    let log = dir.join("log.csv");
    let mut text = String::from("match_id,policy_i,policy_j,payoff_i,payoff_j\n");
    let pairs = [("x", "y"), ("y", "z"), ("z", "x")];
    for k in 0..300 {
        let (a, b) = pairs[k % 3];
        let p = (k % 7) as f64 / 7.0;
        text.push_str(&format!("m{k},{a},{b},{p},{}\n", 1.0 - p));
    }
    std::fs::write(&log, &text).unwrap();
    let archive = dir.join("archive");
    let archive_run = || {
        let mut c = bin();
        c.args([
            "run",
            "--exit-at-end",
            "--epoch-records",
            "1",
            "--no-level3",
        ])
        .args(["--bootstrap", "0", "-q", "-i"])
        .arg(&log)
        .arg("--archive")
        .arg(&archive);
        c
    };
    run(&mut archive_run());
    // 300 epochs in segments of 16^k: one of 256, two of 16, twelve single epochs.
    let mut dirs: Vec<String> = std::fs::read_dir(&archive)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 15, "{dirs:?}");
    assert!(dirs.contains(&"epochs=0-255".to_string()), "{dirs:?}");
    let sql = |q: &str| -> String {
        let out = run(bin()
            .args(["sql", q, "--format", "csv", "--archive"])
            .arg(&archive));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        sql(
            "SELECT count(*) AS n, count(DISTINCT epoch) AS e, min(epoch) AS a, \
             max(epoch) AS b FROM metrics_history"
        ),
        "n,e,a,b\n300,300,0,299\n"
    );
    let ids: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let read = sql("SELECT match_id FROM records_history ORDER BY epoch, position");
    assert_eq!(read.lines().skip(1).collect::<Vec<_>>(), ids);
    // Epoch e's policies table holds the policies of its first e + 1 records.
    assert_eq!(
        sql(
            "SELECT epoch, count(*) AS n FROM policies_history WHERE epoch < 3 \
             GROUP BY epoch ORDER BY epoch"
        ),
        "epoch,n\n0,2\n1,3\n2,3\n"
    );
    let again = archive_run().output().unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already holds epochs 0–299 of another run"),
        "{err}"
    );
}
