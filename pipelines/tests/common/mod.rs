//! Shared helpers of the server tests: start `nashflow run` with its web server, and a minimal
//! HTTP/1.1 client over std sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod address;
pub mod broker;

use serde_json::Value;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nashflow"))
}

/// The output of a command that must succeed (else the panic shows its stdout and stderr).
pub fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `--format json` document without what legitimately differs between batch and stream
/// (epoch number, timings).
pub fn comparable(stdout: &[u8]) -> Value {
    let mut doc: Value = serde_json::from_slice(stdout).expect("JSON document");
    let o = doc.as_object_mut().unwrap();
    o.remove("epoch");
    o.remove("solve_seconds");
    doc
}

/// A fresh directory holding a copy of the bundled league log.
pub fn league_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nashflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/league.csv"),
        dir.join("league.csv"),
    )
    .unwrap();
    dir
}

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start(dir: &std::path::Path, token: &str) -> Server {
    start_with(dir, token, &[])
}

/// [`start`] with extra `nashflow run` flags.
pub fn start_with(dir: &std::path::Path, token: &str, extra: &[&str]) -> Server {
    let mut args = extra.to_vec();
    args.extend(["--watch", "-i", dir.to_str().unwrap()]);
    start_serving(token, &args)
}

/// `nashflow run` with `args`, HTTP ingest under `token` and 100 ms epochs, serving on a free
/// port.
pub fn start_serving(token: &str, args: &[&str]) -> Server {
    let mut args = args.to_vec();
    args.extend([
        "--epoch-ms",
        "100",
        "--ingest-token",
        token,
        "--bootstrap",
        "8",
    ]);
    serve_run(&args)
}

/// `nashflow run ARGS -q`, serving on a free port (read from its first line on stderr).
pub fn serve_run(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nashflow"))
        .arg("run")
        .args(args)
        .args(["-q", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nashflow runs");
    let addr = address::served_address(&mut child);
    Server { child, addr }
}

/// One HTTP/1.1 request; returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_head(addr, method, path, headers, body);
    (status, body)
}

/// [`http`], also returning the response head (status line and headers), lowercased.
pub fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) before reading an oversize body; ignore a broken pipe.
    let _ = s.write_all(body);
    // Read the head, then exactly Content-Length bytes (a keep-alive peer such as
    // ChromeDriver may not close), or to the end for chunked / unsized bodies.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let k = s.read(&mut buf).unwrap_or(0);
        assert!(k > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..k]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = raw[split + 4..].to_vec();
    match length {
        Some(n) => {
            while body.len() < n {
                let k = s.read(&mut buf).unwrap_or(0);
                if k == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..k]);
            }
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

pub fn json(addr: &str, path: &str) -> (u16, Value) {
    let (s, b) = http(addr, "GET", path, &[], b"");
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
