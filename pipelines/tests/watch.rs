//! A watched directory end to end (`nashflow run DIR --watch`): new files are read once they
//! stop changing, names starting with `.` are skipped until renamed into place, and a file
//! that cannot be read is a dead letter while the run goes on. Checked through the live SQL
//! tables of the run's server.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{http, json, serve_run, start_with, wait_for};
use serde_json::Value;

/// One SQL query against the live tables: its rows.
fn sql(addr: &str, query: &str) -> Vec<Value> {
    let body = serde_json::json!({ "sql": query }).to_string();
    let (s, b) = http(addr, "POST", "/api/sql", &[], body.as_bytes());
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let doc: Value = serde_json::from_slice(&b).unwrap();
    doc["rows"].as_array().unwrap().clone()
}

fn live_matches(addr: &str) -> u64 {
    sql(addr, "SELECT count(*) AS n FROM matches")[0]["n"]
        .as_u64()
        .unwrap()
}

/// `count` JSON Lines records of game `watched`, ids `{prefix}{k}`.
fn records(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|k| {
            format!(
                "{{\"match_id\":\"{prefix}{k}\",\"game\":\"watched\",\"policy_i\":\"a\",\"policy_j\":\"b\",\"payoff_i\":{},\"payoff_j\":0.5}}\n",
                (k % 3) as f64 * 0.25
            )
        })
        .collect()
}

#[test]
fn a_watched_directory_reads_finished_files_and_survives_bad_ones() {
    let dir = common::league_dir("watch");
    let srv = start_with(&dir, "tok", &[]);
    let addr = srv.addr.clone();
    wait_for("the league", || {
        json(&addr, "/api/games").1["epoch"].is_u64() && live_matches(&addr) == 1500
    });

    // A file being written under a dot name is not read, for as many polls as it takes.
    let part = dir.join(".batch1.jsonl");
    std::fs::write(&part, records("p", 10)).unwrap();
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(live_matches(&addr), 1500, "a dot file is skipped");
    // Renamed into place, it is.
    std::fs::rename(&part, dir.join("batch1.jsonl")).unwrap();
    wait_for("the renamed file", || live_matches(&addr) == 1510);

    // A file written in two steps, 400 ms apart (under one poll of 500 ms, so that a poll
    // may see only the first), is read whole: the watcher waits until it has stopped
    // changing (it is never read a second time).
    let grow = dir.join("batch2.jsonl");
    let mut f = std::fs::File::create(&grow).unwrap();
    f.write_all(records("g", 5).as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    f.write_all(records("h", 5).as_bytes()).unwrap();
    drop(f);
    wait_for("the grown file", || live_matches(&addr) >= 1520);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(live_matches(&addr), 1520, "both halves, once");

    // A corrupt file is a dead letter of its own, and the run goes on.
    std::fs::write(dir.join("broken.parquet"), b"PAR1 truncated").unwrap();
    std::fs::write(dir.join("batch3.jsonl"), records("q", 4)).unwrap();
    wait_for("the file after the broken one", || {
        live_matches(&addr) == 1524
    });
    let dead = sql(
        &addr,
        "SELECT source, \"row\", reason FROM dead_letters WHERE source LIKE '%broken.parquet'",
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["row"], 0, "the file as a whole");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a readable Parquet file"),
        "{dead:?}"
    );
    let (s, lb) = json(&addr, "/api/leaderboard?game=watched");
    assert_eq!(s, 200);
    assert_eq!(lb["policies"].as_array().unwrap().len(), 2);
}

/// Ctrl-C (SIGINT) stops a live run gracefully: the records taken are applied, `--out` is
/// written, and the exit status is success.
#[test]
fn an_interrupted_run_writes_its_last_state_and_exits_cleanly() {
    let dir = common::league_dir("interrupt");
    let out = dir.join("out");
    let mut srv = start_with(&dir, "tok", &["--out", out.to_str().unwrap()]);
    let addr = srv.addr.clone();
    wait_for("the league", || {
        json(&addr, "/api/games").1["epoch"].is_u64() && live_matches(&addr) == 1500
    });
    let pid = srv.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    wait_for("the run to stop", || {
        status = srv.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{status:?}");
    let policies =
        nashflow_schemas::arrow_io::read_parquet_batches(&out.join("policies.parquet")).unwrap();
    assert_eq!(policies.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
}

/// A live run left at its default epoch settings closes epochs by time too: a watched
/// league of 1,500 records (fewer than an epoch's default 10,000) shows up within seconds.
#[test]
fn a_live_run_ticks_by_default() {
    let dir = common::league_dir("watch-tick");
    let srv = serve_run(&["--watch", "--bootstrap", "0", "-i", dir.to_str().unwrap()]);
    wait_for("the league, without --epoch-ms", || {
        json(&srv.addr, "/api/games").1["epoch"].is_u64() && live_matches(&srv.addr) == 1500
    });
}
