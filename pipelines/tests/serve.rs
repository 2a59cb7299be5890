//! The HTTP server of `nashflow run` end to end, over real sockets: every endpoint, ingest
//! auth and validation, body limits, server-sent events, and SQL that sees one epoch.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{bin, http, http_with_head, json, serve_run, start_serving, start_with, wait_for};
use serde_json::Value;

#[test]
fn http_api_end_to_end() {
    let dir = common::league_dir("serve");
    let archive = dir.join("archive");
    let srv = start_with(&dir, "s3cret", &["--archive", archive.to_str().unwrap()]);
    let addr = srv.addr.clone();
    wait_for("the first epoch", || {
        json(&addr, "/api/games").1["epoch"].is_u64()
    });

    // Leaderboard and matrix.
    let (s, lb) = json(&addr, "/api/leaderboard?game=negotiation");
    assert_eq!(s, 200);
    let rows = lb["policies"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let mass: f64 = rows.iter().map(|r| r["mass"].as_f64().unwrap()).sum();
    assert!((mass - 1.0).abs() < 1e-9);
    assert!(
        rows[0]["mass_lo"].is_number(),
        "streaming bootstrap intervals"
    );
    let (s, m) = json(&addr, "/api/games/negotiation/matrix");
    assert_eq!(s, 200);
    assert_eq!(m["payoff"].as_array().unwrap().len(), 5);
    assert_eq!(json(&addr, "/api/games/nope/matrix").0, 404);

    // SQL: JSON rows equal the leaderboard; Arrow IPC decodes; DDL is refused.
    let q = br#"{"sql": "SELECT policy, mass FROM policies ORDER BY mass DESC, policy"}"#;
    let (s, b) = http(
        &addr,
        "POST",
        "/api/sql",
        &[("Content-Type", "application/json")],
        q,
    );
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(doc["rows"][0]["policy"], rows[0]["policy"]);
    assert_eq!(doc["rows"][0]["mass"], rows[0]["mass"]);
    let (s, b) = http(
        &addr,
        "POST",
        "/api/sql",
        &[("Accept", "application/vnd.apache.arrow.stream")],
        q,
    );
    assert_eq!(s, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(b), None).unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 5);
    let (s, b) = http(&addr, "POST", "/api/sql", &[], b"DELETE FROM policies");
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("read-only"));
    // A join across tables sees one epoch.
    let (_, b) = http(
        &addr,
        "POST",
        "/api/sql",
        &[],
        br#"{"sql": "SELECT count(DISTINCT p.epoch) AS e FROM policies p JOIN metrics m ON p.game = m.game AND p.epoch = m.epoch JOIN equilibria q ON q.epoch = p.epoch"}"#,
    );
    let doc: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(doc["rows"][0]["e"], 1);

    // Ingest: auth, bad JSON, oversize, validation, then a new policy shows up live.
    let body = br#"[{"match_id":"h1","game":"negotiation","policy_i":"newcomer","policy_j":"random","payoff_i":0.9,"payoff_j":0.1}]"#;
    assert_eq!(http(&addr, "POST", "/api/matches", &[], body).0, 401);
    assert_eq!(
        http(
            &addr,
            "POST",
            "/api/matches",
            &[("Authorization", "Bearer wrong")],
            body
        )
        .0,
        401
    );
    let auth = [("Authorization", "Bearer s3cret")];
    let (s, b) = http(&addr, "POST", "/api/matches", &auth, b"{\"policy_i\": ");
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("invalid JSON"));
    let big = vec![b' '; 9 << 20];
    assert_eq!(http(&addr, "POST", "/api/matches", &auth, &big).0, 413);
    // Subscribe to events before ingesting.
    let mut events = TcpStream::connect(&addr).unwrap();
    events
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    events
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let bad_and_good = br#"[{"match_id":"h1","game":"negotiation","policy_i":"newcomer","policy_j":"random","payoff_i":0.9,"payoff_j":0.1},
        {"match_id":"h2","game":"negotiation","policy_i":"newcomer","policy_j":"random","payoff_i":"lots","payoff_j":0.1}]"#;
    let (s, b) = http(&addr, "POST", "/api/matches", &auth, bad_and_good);
    assert_eq!(s, 202);
    let doc: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(doc["accepted"], 1);
    assert_eq!(doc["rejected"][0]["field"], "payoff_i");
    let mut lines = BufReader::new(events);
    let mut saw_epoch = false;
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap() > 0 {
        if line.starts_with("event: epoch") {
            saw_epoch = true;
            break;
        }
        line.clear();
    }
    assert!(saw_epoch, "an epoch event arrives after ingest");
    wait_for("the newcomer on the leaderboard", || {
        json(&addr, "/api/leaderboard").1["policies"]
            .as_array()
            .is_some_and(|r| r.iter().any(|p| p["policy"] == "newcomer"))
    });
    // A conflicting re-send of h1 is dead-lettered by the ledger, visible live in SQL.
    let conflict = br#"[{"match_id":"h1","game":"negotiation","policy_i":"newcomer","policy_j":"random","payoff_i":0.2,"payoff_j":0.8}]"#;
    assert_eq!(http(&addr, "POST", "/api/matches", &auth, conflict).0, 202);
    wait_for("the conflict in dead_letters", || {
        let (_, b) = http(
            &addr,
            "POST",
            "/api/sql",
            &[],
            br#"{"sql": "SELECT count(*) AS n FROM dead_letters WHERE reason LIKE 'conflict%'"}"#,
        );
        serde_json::from_slice::<Value>(&b).unwrap()["rows"][0]["n"] == 1
    });
    let (s, b) = http(&addr, "GET", "/metrics", &[], b"");
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains("nashflow_matches_ingested_total 3"), "{text}");
    // h2's bad payoff and h1's conflicting re-send: every dead letter, not only validation's.
    assert!(text.contains("nashflow_dead_letters_total 2"), "{text}");
    assert!(text.contains("nashflow_exploitability{game=\"negotiation\"}"));
    // `nashflow sql --server` reads the same live tables (Arrow IPC under the hood).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nashflow"))
        .args([
            "sql",
            "SELECT count(*) AS n FROM policies",
            "--format",
            "csv",
            "--server",
        ])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "n\n6\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nashflow"))
        .args(["sql", "DROP TABLE policies", "--server"])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("answered 400: SQL is read-only"));
    // While matches keep arriving, every cross-table join still sees exactly one epoch.
    let feeder = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            for k in 0..40 {
                let body = format!(
                    r#"[{{"match_id":"c{k}","game":"negotiation","policy_i":"late{}","policy_j":"random","payoff_i":0.6,"payoff_j":0.4}}]"#,
                    k % 3
                );
                http(
                    &addr,
                    "POST",
                    "/api/matches",
                    &[("Authorization", "Bearer s3cret")],
                    body.as_bytes(),
                );
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let join = br#"{"sql": "SELECT count(DISTINCT p.epoch) AS pe, count(DISTINCT m.epoch) AS me, count(DISTINCT c.epoch) AS ce, max(m.epoch) = max(p.epoch) AS same FROM policies p JOIN metrics m ON p.game = m.game JOIN cells c ON c.game = p.game"}"#;
    let mut epochs_seen = std::collections::BTreeSet::new();
    while !feeder.is_finished() {
        let (s, b) = http(&addr, "POST", "/api/sql", &[], join);
        assert_eq!(s, 200);
        let doc: Value = serde_json::from_slice(&b).unwrap();
        let row = &doc["rows"][0];
        assert_eq!(
            (row["pe"].as_u64(), row["me"].as_u64(), row["ce"].as_u64()),
            (Some(1), Some(1), Some(1)),
            "{doc}"
        );
        assert_eq!(row["same"], true);
        epochs_seen.insert(doc["epoch"].as_u64().unwrap());
    }
    feeder.join().unwrap();
    assert!(
        epochs_seen.len() > 1,
        "queries ran across several epochs: {epochs_seen:?}"
    );
    // The archive's history is queryable from the live server too.
    let (s, b) = http(
        &addr,
        "POST",
        "/api/sql",
        &[],
        br#"{"sql": "SELECT count(DISTINCT epoch) AS e FROM metrics_history"}"#,
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let doc: Value = serde_json::from_slice(&b).unwrap();
    assert!(doc["rows"][0]["e"].as_u64().unwrap() > 1);
    let (s, page) = http(&addr, "GET", "/", &[], b"");
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&page).contains("id=\"leaderboard\""));
}

/// HTTP ingest can be a run's only source: no files, the run stays open for it. A token
/// without a server is refused.
#[test]
fn http_ingest_alone_feeds_a_run() {
    let srv = start_serving("tok", &[]);
    let auth = [("Authorization", "Bearer tok")];
    let body =
        br#"{"match_id":"a","game":"g","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0}
{"match_id":"b","game":"g","policy_i":"y","policy_j":"x","payoff_i":0.25,"payoff_j":0.75}"#;
    let (s, b) = http(&srv.addr, "POST", "/api/matches", &auth, body);
    assert_eq!(s, 202, "{}", String::from_utf8_lossy(&b));
    wait_for("the ingested game", || {
        json(&srv.addr, "/api/leaderboard?game=g").0 == 200
    });
    let (_, lb) = json(&srv.addr, "/api/leaderboard?game=g");
    let names: Vec<&str> = lb["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{lb}");

    let out = bin()
        .args(["run", "--ingest-token", "t", "--no-serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-serve"));
}

/// The bounded input queue seen from HTTP: while it is full a request is refused whole (503,
/// `Retry-After`) and counts nothing; once the engine drains it, the same request is taken.
#[test]
fn a_full_input_queue_refuses_a_request_whole() {
    use nashflow_pipelines::run::Item;
    use nashflow_pipelines::serve::{start, Shared};
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    tx.send(Item::Batch(Vec::new())).unwrap(); // the queue is full
    let limits = nashflow_pipelines::sql::Limits {
        max_rows: 10,
        timeout: Duration::from_secs(5),
    };
    let server = start("127.0.0.1:0", Shared::new(limits, Some(("tok".into(), tx)))).unwrap();
    let addr = server.addr.to_string();
    let auth = [("Authorization", "Bearer tok")];
    let body = br#"{"policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0}
{"policy_i":"y","policy_j":"x","payoff_i":0,"payoff_j":1}"#;
    let ingested = |addr: &str| {
        let text = String::from_utf8(http(addr, "GET", "/metrics", &[], b"").1).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("nashflow_matches_ingested_total "))
            .map(|n| n.parse::<u64>().unwrap())
    };

    let (status, head, _) = http_with_head(&addr, "POST", "/api/matches", &auth, body);
    assert_eq!(status, 503);
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_eq!(ingested(&addr), Some(0), "a refused request counts nothing");

    rx.recv().unwrap(); // the engine takes the queued message
    let (status, _) = http(&addr, "POST", "/api/matches", &auth, body);
    assert_eq!(status, 202);
    assert_eq!(ingested(&addr), Some(2));
    let Item::Batch(items) = rx.recv().unwrap() else {
        panic!("one message per request")
    };
    let ids: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Record(m, _, _) => Some(m.match_id.clone()),
            _ => None,
        })
        .collect();
    // Rows 1–2 went to the refused request: their numbers are not handed out again.
    assert_eq!(ids, ["http:3", "http:4"]);
}

/// The live `matches` and `dead_letters` tables are kept across epochs, not rebuilt: over a
/// log of tiny epochs with duplicates, conflicts, retractions of earlier epochs' matches, a
/// retraction within its epoch, an id re-sent after its retraction and bad rows (one after
/// the last good record), they hold exactly what `analyze --out` writes for the same log.
#[test]
fn live_record_tables_equal_the_batch_tables() {
    let dir = std::env::temp_dir().join(format!("nashflow-live-tables-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let row = |id: &str, a: &str, b: &str, p: f64, retract: bool| {
        format!(
            r#"{{"match_id":"{id}","game":"g","policy_i":"{a}","policy_j":"{b}","payoff_i":{p},"payoff_j":{},"retract":{retract}}}"#,
            1.0 - p
        )
    };
    let names = ["a", "b", "c", "d"];
    let mut lines: Vec<String> = (0..30)
        .map(|k| {
            row(
                &format!("m{k}"),
                names[k % 4],
                names[(k / 4) % 4],
                (k % 7) as f64 / 7.0,
                false,
            )
        })
        .collect();
    lines.insert(9, lines[3].clone()); // identical duplicate
    lines.insert(12, row("m5", "b", "b", 0.99, false)); // conflict: the first stays
    lines.insert(15, row("m1", "b", "a", 1.0 / 7.0, true)); // retracts an earlier epoch's match
    lines.insert(20, row("m2", "c", "a", 2.0 / 7.0, true));
    lines.insert(21, r#"{"match_id":"bad1","game":"g","policy_i":"a","policy_j":"b","payoff_i":"x","payoff_j":0}"#.into());
    lines.push(row("m29", "b", "c", 1.0 / 7.0, true)); // retracted in its own epoch
    lines.push(row("m2", "d", "a", 0.5, false)); // re-sent after its retraction
    lines.push(row("ghost", "a", "b", 0.5, true)); // retracts nothing: a dead letter
    lines.push(r#"{"match_id":"bad2","game":"g","policy_i":"a","payoff_i":1,"payoff_j":0}"#.into());
    lines.extend((30..45).map(|k| {
        row(
            &format!("m{k}"),
            names[k % 4],
            names[(k / 3) % 4],
            0.25,
            false,
        )
    }));
    // A bad row after the last good one: the live run's tick still shows it.
    lines.push(
        r#"{"match_id":"bad3","game":"g","policy_i":"a","policy_j":"b","payoff_i":1}"#.into(),
    );
    let log = dir.join("log.jsonl");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let batch = dir.join("batch");
    common::ok(
        bin()
            .args(["analyze", "-q", "--no-level3", "--out"])
            .arg(&batch)
            .arg(&log)
            .output()
            .unwrap(),
    );
    let srv = serve_run(&[
        "-i",
        log.to_str().unwrap(),
        "--epoch-records",
        "4",
        "--bootstrap",
        "0",
        "--no-level3",
        "--ingest-token",
        "t",
    ]);
    let server = format!("http://{}", srv.addr);
    let sql = |query: &str, live: bool| -> String {
        let mut cmd = bin();
        cmd.args(["sql", "--format", "json", query]);
        if live {
            cmd.args(["--server", &server]);
        } else {
            cmd.arg(&batch);
        }
        String::from_utf8(common::ok(cmd.output().unwrap()).stdout).unwrap()
    };
    let matches =
        "SELECT match_id, policy_i, policy_j, payoff_i, payoff_j FROM matches ORDER BY match_id";
    let dead = "SELECT source, \"row\", field, reason, raw FROM dead_letters ORDER BY \"row\"";
    let count =
        "SELECT (SELECT count(*) FROM matches) AS m, (SELECT count(*) FROM dead_letters) AS d";
    let expected = sql(count, false);
    assert!(
        expected.contains("\"m\": 43") && expected.contains("\"d\": 5"),
        "{expected}"
    );
    wait_for("every record applied live", || sql(count, true) == expected);
    assert_eq!(sql(matches, true), sql(matches, false));
    assert_eq!(sql(dead, true), sql(dead, false));
}
