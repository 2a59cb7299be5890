//! Kafka end to end against a real broker (tansu, started here): consume with dead letters,
//! jobs to a topic, and the faults (kill -9 of nashflow, restart of the broker) after which
//! the tables must equal the batch analysis of the same matches.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::{bin, ok};
use nashflow_connectors::kafka::{header, Writer, HEADER_ERROR, HEADER_FIELD, HEADER_SOURCE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nashflow-kafka-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const POLICIES: &str = "strong,weak,rock,paper,scissors";

/// `simulate` of a battle league to a JSONL file, and to `kafka` when given.
fn simulate(dir: &Path, matches: u32, seed: u64, kafka: Option<&str>) -> PathBuf {
    let path = dir.join(format!("sim-{seed}.jsonl"));
    let mut cmd = bin();
    cmd.args(["simulate", "--game", "battle", "--policies", POLICIES])
        .args([
            "--matches",
            &matches.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--out")
        .arg(&path);
    if let Some(b) = kafka {
        cmd.args(["--kafka", b, "--topic", "matches"]);
    }
    ok(cmd.output().unwrap());
    path
}

/// [`common::comparable`] without Elo: the topics have three partitions, so nashflow's
/// arrival order interleaves them and differs from the file's, and sequential Elo depends
/// on the order (every order-free table must still be equal).
fn comparable(stdout: &[u8]) -> Value {
    let mut doc = common::comparable(stdout);
    doc["ratings"].as_object_mut().unwrap().remove("elo");
    doc
}

fn analyze(log: &Path) -> Value {
    comparable(
        &ok(bin()
            .args(["analyze", "--format", "json", "-q"])
            .arg(log)
            .output()
            .unwrap())
        .stdout,
    )
}

fn run_args(brokers: &str) -> Vec<String> {
    [
        "run",
        "--kafka",
        brokers,
        "--topic",
        "matches",
        "--exit-at-end",
        "--format",
        "json",
        "--bootstrap",
        "0",
        "--no-serve",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Four rounds of a balanced rock-paper-scissors league, then 12 rounds of a newcomer that
/// wins 0.9 against each of them: (seat 0, seat 1, seat 0's payoff).
fn rps_then_newcomer() -> Vec<(&'static str, &'static str, f64)> {
    let names = ["paper", "rock", "scissors"];
    let beats = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("rock", "scissors") | ("paper", "rock") | ("scissors", "paper")
        )
    };
    let mut out = Vec::new();
    for _ in 0..4 {
        for a in names {
            for b in names {
                let pa = if beats(a, b) {
                    1.0
                } else if beats(b, a) {
                    0.0
                } else {
                    0.5
                };
                out.push((a, b, pa));
            }
        }
    }
    for _ in 0..12 {
        for b in names {
            out.push(("newcomer", b, 0.9));
        }
    }
    out
}

/// A consumed message: key, value, nashflow's headers.
type Consumed = (Option<Vec<u8>>, Vec<u8>, HashMap<String, String>);

/// Every message of `topic` (partition 0..partitions), read from the beginning until
/// `expected` arrived (or 60 s passed).
fn consume_all(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let t0 = Instant::now();
    while out.len() < expected && t0.elapsed() < Duration::from_secs(60) {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for key in [HEADER_ERROR, HEADER_FIELD, HEADER_SOURCE] {
                if let Some(v) = header(h, key) {
                    headers.insert(key.to_string(), v.to_string());
                }
            }
        }
        out.push((
            m.key().map(<[u8]>::to_vec),
            m.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    }
    // Nothing beyond what was expected.
    if out.len() == expected {
        assert!(
            consumer.poll(Duration::from_millis(1500)).is_none(),
            "more messages than expected in {topic}"
        );
    }
    out
}

/// Malformed message number `k` and the field its error must name (if any).
fn malformed(k: usize) -> (Vec<u8>, Option<&'static str>) {
    let id = format!("bad-{k}");
    match k % 6 {
        0 => (b"{not json".to_vec(), None),
        1 => (format!(r#"{{"match_id":"{id}","policy_i":"a","policy_j":"","payoff_i":1,"payoff_j":0}}"#).into_bytes(), Some("policy_j")),
        2 => (format!(r#"{{"match_id":"{id}","policy_i":"a","policy_j":"b","payoff_i":"x","payoff_j":0}}"#).into_bytes(), Some("payoff_i")),
        3 => (format!(r#"{{"match_id":"{id}","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0,"propensity":1.5}}"#).into_bytes(), Some("propensity")),
        4 => (Vec::new(), None),
        _ => (vec![0xff, 0xfe, b'{'], None),
    }
}

#[test]
fn consumes_100k_with_dead_letters_and_equals_analyze() {
    let dir = tmp("dlq");
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic("matches", 3);
    broker.create_topic("dlq", 1);
    let log = simulate(&dir, 100_000, 11, None);
    let writer = Writer::new(&broker.brokers(), "matches", &[]).unwrap();
    let mut bad = Vec::new();
    let text = std::fs::read_to_string(&log).unwrap();
    for (k, line) in text.lines().enumerate() {
        let id: Value = serde_json::from_str(line).unwrap();
        let key = id["match_id"].as_str().unwrap().as_bytes().to_vec();
        writer.send(Some(&key), line.as_bytes(), None).unwrap();
        if k % 99 == 98 {
            let (bytes, field) = malformed(bad.len());
            let key = format!("bad-key-{}", bad.len());
            writer.send(Some(key.as_bytes()), &bytes, None).unwrap();
            bad.push((key, bytes, field));
        }
    }
    writer.flush().unwrap();
    assert!(bad.len() > 1000, "1% malformed");

    let out = ok(bin()
        .args(run_args(&broker.brokers()))
        .args(["--dead-letter-topic", "dlq", "--epoch-records", "20000"])
        .output()
        .unwrap());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["dead_letters"],
        bad.len(),
        "every malformed message is a dead letter"
    );
    // analyze read only the good matches: its dead-letter count is 0.
    let mut streamed = comparable(&out.stdout);
    streamed["dead_letters"] = 0.into();
    assert_eq!(
        streamed,
        analyze(&log),
        "tables equal analyze on the good matches"
    );

    let dlq = consume_all(&broker.brokers(), "dlq", 1, bad.len());
    assert_eq!(
        dlq.len(),
        bad.len(),
        "the DLQ holds exactly the malformed messages"
    );
    let by_key: HashMap<Vec<u8>, _> = dlq
        .into_iter()
        .map(|(k, v, h)| (k.unwrap(), (v, h)))
        .collect();
    for (key, bytes, field) in &bad {
        let (value, headers) = by_key
            .get(key.as_bytes())
            .unwrap_or_else(|| panic!("{key} not in the DLQ"));
        assert_eq!(value, bytes, "{key}: original bytes");
        assert!(!headers[HEADER_ERROR].is_empty(), "{key}: a reason");
        assert!(
            headers[HEADER_SOURCE].starts_with("matches["),
            "{key}: {:?}",
            headers
        );
        assert_eq!(
            headers.get(HEADER_FIELD).map(String::as_str),
            *field,
            "{key}: {}",
            headers[HEADER_ERROR]
        );
    }
}

/// Runs nashflow with `--state` and `--archive` (and `extra` flags), calls `fault` once the
/// state has passed epoch 4 (nashflow still running), then runs to the end and checks the
/// tables equal `analyze`, and that the archive holds every epoch and record exactly once.
fn survives(name: &str, extra: &[&str], fault: impl FnOnce(&mut std::process::Child, &mut Broker)) {
    let dir = tmp(name);
    let mut broker = Broker::start(&dir.join("broker"));
    broker.create_topic("matches", 3);
    let log = simulate(&dir, 30_000, 5, Some(&broker.brokers()));
    let state = dir.join("state");
    let archive = dir.join("archive");
    let brokers = broker.brokers();
    let args = |extra: &[&str]| {
        let mut a = run_args(&brokers);
        a.extend(["--epoch-records", "500", "--group", "faults", "--state"].map(String::from));
        a.push(state.display().to_string());
        a.extend(["--archive".into(), archive.display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child = bin()
        .args(args(extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let epoch = |state: &Path| -> u64 {
        std::fs::read_to_string(state.join("state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["epoch"].as_u64())
            .unwrap_or(0)
    };
    while epoch(&state) < 5 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the fault must hit mid-stream"
    );
    fault(&mut child, &mut broker);
    let _ = child.wait();
    let out = ok(bin().args(args(extra)).output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        comparable(&out.stdout),
        analyze(&log),
        "no loss, no double count\n{stderr}"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    let next: i64 = manifest["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["next"].as_i64().unwrap())
        .sum();
    assert_eq!(next, 30_000, "offsets of the whole topic are durable");
    // The restart dropped the epochs archived after the state it continued from, and
    // archived them again as it recomputed them.
    let sql = |q: &str| -> String {
        let out = ok(bin()
            .args(["sql", q, "--format", "csv", "--archive"])
            .arg(&archive)
            .output()
            .unwrap());
        String::from_utf8(out.stdout).unwrap()
    };
    let last = manifest["epoch"].as_u64().unwrap();
    assert_eq!(
        sql(
            "SELECT count(*) AS n, count(DISTINCT epoch) AS e, min(epoch) AS a, \
             max(epoch) AS b FROM (SELECT DISTINCT game, epoch FROM metrics_history)"
        ),
        format!("n,e,a,b\n{0},{0},0,{last}\n", last + 1)
    );
    assert_eq!(
        sql(
            "SELECT count(*) AS n FROM (SELECT game, epoch FROM metrics_history \
             GROUP BY game, epoch HAVING count(*) > 1)"
        ),
        "n\n0\n",
        "no epoch archived twice"
    );
    assert_eq!(
        sql("SELECT count(*) AS n, count(DISTINCT match_id) AS ids FROM records_history"),
        "n,ids\n30000,30000\n"
    );
    if extra.contains(&"--state-compact-every") {
        assert!(manifest["base"].is_u64(), "the state was compacted");
        let files = std::fs::read_dir(state.join("segments")).unwrap().count();
        assert!(
            files <= 2 * 4,
            "compaction removed replaced segments ({files} files)"
        );
    }
}

#[test]
fn kill_minus_9_and_restart_loses_and_doubles_nothing() {
    // Snapshots every 4 epochs: the restart reads a compacted state.
    survives("kill", &["--state-compact-every", "4"], |child, _| {
        child.kill().unwrap(); // SIGKILL
    });
}

/// Ctrl-C mid-stream stops the run gracefully (status 0, the epoch in progress applied and
/// committed), and the restart goes on from there.
#[test]
fn interrupt_and_restart_loses_and_doubles_nothing() {
    survives("interrupt", &[], |child, _| {
        let pid = child.id().to_string();
        assert!(send_signal("-INT", &pid));
        exits_successfully(child, 60, "nashflow did not stop after SIGINT");
    });
}

/// Waits up to `seconds` for `child` to end (else fails with `late`), then asserts success.
fn exits_successfully(child: &mut std::process::Child, seconds: u64, late: &str) {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(seconds), "{late}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().unwrap().success());
}

/// `kill SIGNAL PID`; true when it was delivered.
fn send_signal(signal: &str, pid: &str) -> bool {
    std::process::Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap()
        .success()
}

#[test]
fn broker_restart_mid_stream_loses_and_doubles_nothing() {
    survives("broker", &[], |child, broker| {
        broker.restart();
        // nashflow rides out the outage and finishes on its own.
        exits_successfully(
            child,
            180,
            "nashflow did not finish after the broker came back",
        );
    });
}

#[test]
fn jobs_go_to_a_topic_keyed_by_game() {
    let dir = tmp("jobs");
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic("jobs", 1);
    // A stable rock-paper-scissors league, then a newcomer that beats everyone.
    let mut text = String::from("match_id,game,policy_i,policy_j,payoff_i,payoff_j\n");
    for (k, (a, b, pa)) in rps_then_newcomer().into_iter().enumerate() {
        text.push_str(&format!("m{k},rps,{a},{b},{pa},{}\n", 1.0 - pa));
    }
    let log = dir.join("league.csv");
    std::fs::write(&log, text).unwrap();
    ok(bin()
        .args([
            "run",
            "--epoch-records",
            "9",
            "--exit-at-end",
            "--bootstrap",
            "0",
            "-q",
            "--no-serve",
        ])
        .arg("--jobs")
        .arg(format!("kafka://{}/jobs", broker.brokers()))
        .arg("-i")
        .arg(&log)
        .output()
        .unwrap());
    let jobs = consume_all(&broker.brokers(), "jobs", 1, 1);
    assert_eq!(jobs.len(), 1, "one job");
    let (key, value, _) = &jobs[0];
    assert_eq!(key.as_deref(), Some(&b"rps"[..]));
    let job: Value = serde_json::from_slice(value).unwrap();
    assert_eq!(job["target_policy"], "newcomer");
    assert_eq!(job["game"], "rps");
}

#[test]
fn kafka_flags_without_a_kafka_source_are_refused() {
    let dir = tmp("flags");
    for flags in [
        &["--state", "st"][..],
        &["--dead-letter-topic", "dlq"][..],
        &["--kafka-property", "a=b"][..],
    ] {
        let out = bin()
            .current_dir(&dir)
            .args(["run", "--no-serve", "-i", "x.csv"])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flags[0]) && err.contains("--kafka"), "{err}");
    }
    assert!(!dir.join("st").exists(), "nothing written");
}

/// The trigger's state (cool-down, hysteresis, standing σ) survives a restart: a second
/// exploiter that arrives inside the cool-down after the restart emits no job, as in an
/// uninterrupted run.
#[test]
fn trigger_state_survives_a_restart() {
    let dir = tmp("trigger");
    let broker = Broker::start(&dir.join("broker"));
    broker.create_topic("matches", 1);
    let writer = Writer::new(&broker.brokers(), "matches", &[]).unwrap();
    let mut k = 0;
    // Everything sent, in order: the topic has one partition, so this is the arrival order.
    let mut sent = String::new();
    let mut send = |a: &str, b: &str, pa: f64| {
        k += 1;
        let line = format!(
            r#"{{"match_id":"m{k}","game":"rps","policy_i":"{a}","policy_j":"{b}","payoff_i":{pa},"payoff_j":{}}}"#,
            1.0 - pa
        );
        writer.send(None, line.as_bytes(), None).unwrap();
        sent.push_str(&line);
        sent.push('\n');
    };
    for (a, b, pa) in rps_then_newcomer() {
        send(a, b, pa);
    }
    writer.flush().unwrap();
    let jobs = dir.join("jobs.jsonl");
    let state = dir.join("state");
    let run = || {
        ok(bin()
            .args(run_args(&broker.brokers()))
            .args(["--epoch-records", "9", "--trigger-cooldown", "1000"])
            .arg("--state")
            .arg(&state)
            .arg("--jobs")
            .arg(&jobs)
            .output()
            .unwrap())
    };
    run();
    let count = || {
        std::fs::read_to_string(&jobs)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(count(), 1, "the newcomer triggers one job");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    assert!(
        manifest["triggers"]["rps"]["last_fire"].is_u64(),
        "{manifest}"
    );
    // After the restart a second exploiter arrives, within the cool-down.
    for _ in 0..12 {
        for b in ["newcomer", "paper", "rock", "scissors"] {
            send("newcomer2", b, 0.95);
        }
    }
    writer.flush().unwrap();
    let resumed: Value = serde_json::from_slice(&run().stdout).unwrap();
    assert_eq!(count(), 1, "the restored cool-down holds");
    // Elo, order-dependent, continues across the restart as if uninterrupted: the restored
    // records are replayed in arrival order.
    let log = dir.join("sent.jsonl");
    std::fs::write(&log, &sent).unwrap();
    let whole: Value = serde_json::from_slice(
        &ok(bin()
            .args(["analyze", "--format", "json", "-q"])
            .arg(&log)
            .output()
            .unwrap())
        .stdout,
    )
    .unwrap();
    assert!(resumed["ratings"]["elo"]["newcomer2"].is_number());
    assert_eq!(resumed["ratings"]["elo"], whole["ratings"]["elo"]);
}
