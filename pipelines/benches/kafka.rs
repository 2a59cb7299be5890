//! End-to-end Kafka throughput (issue #6): matches/s from a topic to updated tables with one
//! worker, against the same matches read from a JSON Lines file by the same binary in the same
//! process (the file source is the baseline: same decode, same engine, no broker).
//!
//! `cargo bench -p nashflow-pipelines --bench kafka` (NASHFLOW_BENCH_MATCHES, default
//! 200,000). Starts a tansu broker like the tests do, with memory storage
//! (NASHFLOW_BENCH_SQLITE=1: the tests' SQLite storage, a lower ceiling).

#[path = "../tests/common/broker.rs"]
mod broker;

use std::path::Path;
use std::process::Command;

fn nashflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nashflow"))
}

/// Records/s when the last epoch was applied, from the run's own status lines (this leaves
/// out process start and the end-of-topic wait).
fn rate(stderr: &[u8]) -> (u64, f64) {
    let text = String::from_utf8_lossy(stderr);
    let last = text
        .lines()
        .rfind(|l| l.starts_with("epoch "))
        .unwrap_or_else(|| panic!("no epoch lines in:\n{text}"));
    let fields: Vec<&str> = last.split(" | ").collect();
    let records = fields[1].trim_end_matches(" records").parse().unwrap();
    let per_s = fields[2].trim_end_matches("/s").parse().unwrap();
    (records, per_s)
}

/// CPU seconds (user + system) used so far by this process's waited-for children, from
/// `/proc/self/stat` (clock ticks of 1/100 s).
fn children_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis; cutime and cstime are fields 16
    // and 17 of the whole line, so 14th and 15th after it.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

/// A run's (records, records/s at its last epoch, CPU seconds the nashflow process used).
fn run(args: &[&str], input: &[&str]) -> (u64, f64, f64) {
    let cpu0 = children_cpu_seconds();
    let out = nashflow()
        .args([
            "run",
            "--exit-at-end",
            "--no-serve",
            "-w",
            "1",
            "--format",
            "json",
        ])
        .args(["--epoch-records", "50000"])
        .args(args)
        .args(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (records, per_s) = rate(&out.stderr);
    (records, per_s, children_cpu_seconds() - cpu0)
}

/// Messages/s of a bare consumer reading the whole topic (no decode, no engine): what the
/// broker and librdkafka deliver, the ceiling of the end-to-end figure.
fn consume_only(brokers: &str, n: u32) -> f64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-consume")
        // As the source sets it (see `kafka::Source::open`).
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("matches", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let t0 = std::time::Instant::now();
    let mut got = 0u32;
    while got < n {
        if let Some(m) = consumer.poll(std::time::Duration::from_millis(100)) {
            m.unwrap();
            got += 1;
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let n: u32 = std::env::var("NASHFLOW_BENCH_MATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("nashflow-bench-kafka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let broker = if std::env::var_os("NASHFLOW_BENCH_SQLITE").is_some() {
        broker::Broker::start(&dir.join("broker"))
    } else {
        broker::Broker::start_in_memory(&dir.join("broker"))
    };
    broker.create_topic("matches", 1);
    let log = dir.join("league.jsonl");
    let produced = nashflow()
        .args([
            "simulate",
            "--game",
            "battle",
            "--policies",
            "strong,weak,rock,paper,scissors",
        ])
        .args([
            "--matches",
            &n.to_string(),
            "--seed",
            "1",
            "--kafka",
            &broker.brokers(),
        ])
        .arg("--out")
        .arg(&log)
        .output()
        .unwrap();
    assert!(produced.status.success());
    let file = |extra: &[&str]| run(extra, &["-i", log.to_str().unwrap()]);
    let kafka = |extra: &[&str]| run(extra, &["--kafka", &broker.brokers()]);
    let state = dir.join("state");
    println!(
        "bare consumer (no decode, no engine): {:.0} messages/s",
        consume_only(&broker.brokers(), n)
    );
    println!("end to end, {n} battle matches, 5 policies, 1 worker, epochs of 50,000");
    println!("(wall: records/s at the last epoch; per CPU-s: records per second of the nashflow");
    println!(" process's user + system CPU over the whole run, start-up and end-of-input wait included):");
    for (label, extra) in [
        ("defaults (bootstrap 32)", &[][..]),
        ("--bootstrap 0", &["--bootstrap", "0"][..]),
    ] {
        let (rf, file_rate, file_cpu) = file(extra);
        let (rk, kafka_rate, kafka_cpu) = kafka(extra);
        assert_eq!(rf, rk, "both read every match");
        println!(
            "  {label:<24} file {file_rate:>9.0}/s ({:>9.0} per CPU-s)   kafka {kafka_rate:>9.0}/s ({:>9.0} per CPU-s)   kafka/file {:.2}",
            rf as f64 / file_cpu,
            rk as f64 / kafka_cpu,
            kafka_rate / file_rate
        );
    }
    let _ = std::fs::remove_dir_all(&state);
    let (rd, durable, durable_cpu) =
        kafka(&["--bootstrap", "0", "--state", state.to_str().unwrap()]);
    println!(
        "  {:<24} kafka {durable:>9.0}/s ({:>9.0} per CPU-s; each epoch written and fsynced before its commit)",
        "--bootstrap 0 --state",
        rd as f64 / durable_cpu
    );
    println!("  target: ≥ 300,000/s end to end on one core (issue #6)");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
