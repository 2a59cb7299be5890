//! Memory under a soak (DESIGN §10: memory flat under a 10-minute soak): a live
//! `nashflow run -i -` (web server on, as a user runs it) fed JSON Lines on stdin at a steady
//! rate for `NASHFLOW_SOAK_SECS` (default 600). Every new match comes with the retraction of
//! the one sent `NASHFLOW_SOAK_LIVE` matches before it (default 100,000), and every hundredth
//! with an identical duplicate, so the live data stops growing once the window is full while
//! records keep arriving. The process's resident memory (VmRSS) is sampled every 5 s.
//!
//! The baseline is the same process's memory at the end of the warm-up (the first fifth of
//! the run, and at least twice the time the window takes to fill): printed are that, the peak after it, the last sample,
//! their ratio, and the growth rate fitted over the samples after the warm-up.
//!
//! `cargo bench -p nashflow-pipelines --bench soak` (`NASHFLOW_SOAK_RATE`: new matches per
//! second, default 20,000; each brings a retraction, so twice as many records).

#[path = "../tests/common/address.rs"]
mod address;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of process `pid` in MiB, from `/proc/PID/status`.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Least-squares slope of (t, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mt, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, y)| (a + t / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (t, y)| {
        (a + (t - mt) * (y - my), b + (t - mt) * (t - mt))
    });
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

fn record(id: u64, retract: bool) -> String {
    const POLICIES: u64 = 20;
    // A fixed pairing and payoff per id: the retraction must match the record it cancels.
    let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let (i, j) = (h % POLICIES, (h >> 20) % POLICIES);
    let p = ((h >> 40) % 1000) as f64 / 1000.0;
    format!(
        "{{\"match_id\":\"s{id}\",\"game\":\"soak\",\"policy_i\":\"p{i:02}\",\"policy_j\":\"p{j:02}\",\"payoff_i\":{p},\"payoff_j\":{}{}}}\n",
        1.0 - p,
        if retract { ",\"retract\":true" } else { "" }
    )
}

fn main() {
    let secs = env("NASHFLOW_SOAK_SECS", 600);
    let rate = env("NASHFLOW_SOAK_RATE", 20_000);
    let window = env("NASHFLOW_SOAK_LIVE", 100_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_nashflow"))
        .args(["run", "-i", "-", "-q", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nashflow runs");
    let pid = child.id();
    let addr = address::served_address(&mut child);
    let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("stdin"));

    println!(
        "soak: {secs} s of `nashflow run -i -` with the server, {rate} new matches/s, each with a retraction once {window} are live"
    );
    let started = Instant::now();
    let burst = (rate / 20).max(1);
    let mut next_id = 0u64;
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        for _ in 0..burst {
            let mut text = record(next_id, false);
            if next_id.is_multiple_of(100) {
                text.push_str(&record(next_id, false));
            }
            if next_id >= window {
                text.push_str(&record(next_id - window, true));
            }
            stdin
                .write_all(text.as_bytes())
                .expect("the run reads stdin");
            next_id += 1;
        }
        stdin.flush().expect("the run reads stdin");
        sent += burst;
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        if started.elapsed() >= next_sample {
            if let Some(m) = rss_mib(pid) {
                samples.push((started.elapsed().as_secs_f64(), m));
            }
            next_sample += Duration::from_secs(5);
        }
    }
    let epochs = metric(&addr, "nashflow_epochs_total");
    drop(stdin);
    let _ = child.wait();
    let elapsed = started.elapsed().as_secs_f64();
    // The first fifth of the run, and at least twice the time the window takes to fill.
    let warm_until = (secs as f64 / 5.0).max(2.0 * window as f64 / rate as f64);
    let after: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= warm_until)
        .collect();
    let Some(&(_, warm)) = after.first() else {
        println!("too short a soak for a figure (NASHFLOW_SOAK_SECS ≥ 60)");
        return;
    };
    let last = after.last().expect("one sample").1;
    let peak = after.iter().map(|s| s.1).fold(f64::MIN, f64::max);
    println!(
        "  sent {next_id} matches in {elapsed:.0} s; the run applied {} epochs",
        epochs.map_or("?".into(), |e| e.to_string())
    );
    println!(
        "  resident memory after the warm-up ({warm_until:.0} s): {warm:.1} MiB (the baseline)"
    );
    println!(
        "  peak after it: {peak:.1} MiB, last: {last:.1} MiB ({:.3}× the baseline)",
        last / warm
    );
    println!(
        "  growth fitted over the {} samples after the warm-up: {:+.2} MiB/min",
        after.len(),
        slope(&after) * 60.0
    );
}

/// A counter from the run's `/metrics`.
fn metric(addr: &str, name: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}
