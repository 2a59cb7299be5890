//! Job sinks: where best-response jobs go (DESIGN §7). A sink is named by a spec string:
//!
//! * `-` or `stdout`: one JSON object per line on stdout;
//! * `cmd:COMMAND`: `sh -c COMMAND` once per job, with the job's JSON on stdin;
//! * `http://HOST:PORT/PATH`: an HTTP/1.1 POST of the job's JSON (a webhook; plain HTTP only);
//! * `kafka://BROKERS/TOPIC`: one message per job, keyed by game, value the job's JSON;
//! * anything else: a file path, appended to as JSON Lines.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use nashflow_operators::trigger::Job;

#[derive(Clone, Debug, PartialEq)]
pub enum JobSink {
    Stdout,
    Command(String),
    Webhook { host: String, path: String },
    File(std::path::PathBuf),
    Kafka { brokers: String, topic: String },
}

impl std::str::FromStr for JobSink {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "-" || s == "stdout" {
            return Ok(JobSink::Stdout);
        }
        if let Some(cmd) = s.strip_prefix("cmd:") {
            if cmd.trim().is_empty() {
                return Err("`cmd:` needs a command, e.g. cmd:./train.sh".into());
            }
            return Ok(JobSink::Command(cmd.to_string()));
        }
        if let Some(rest) = s.strip_prefix("http://") {
            let (host, path) = match rest.find('/') {
                Some(k) => (&rest[..k], &rest[k..]),
                None => (rest, "/"),
            };
            if host.is_empty() {
                return Err(format!("`{s}`: webhook needs a host"));
            }
            return Ok(JobSink::Webhook {
                host: host.to_string(),
                path: path.to_string(),
            });
        }
        if let Some(rest) = s.strip_prefix("kafka://") {
            return match rest.split_once('/') {
                Some((brokers, topic)) if !brokers.is_empty() && !topic.is_empty() => {
                    Ok(JobSink::Kafka {
                        brokers: brokers.to_string(),
                        topic: topic.to_string(),
                    })
                }
                _ => Err(format!(
                    "`{s}`: expected kafka://HOST:PORT[,HOST:PORT…]/TOPIC"
                )),
            };
        }
        if s.starts_with("https://") {
            return Err("https webhooks are not supported; use http:// or cmd:curl ...".into());
        }
        Ok(JobSink::File(s.into()))
    }
}

impl JobSink {
    /// Delivers one job; the error names the sink and the reason.
    pub fn send(&self, job: &Job) -> Result<(), String> {
        let body = serde_json::to_string(job).map_err(|e| e.to_string())?;
        match self {
            JobSink::Stdout => {
                println!("{body}");
                Ok(())
            }
            JobSink::File(path) => OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{body}"))
                .map_err(|e| format!("jobs file {}: {e}", path.display())),
            JobSink::Command(cmd) => {
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .stdin(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("jobs command `{cmd}`: {e}"))?;
                // A command may exit without reading its stdin (`cmd:exit 3`, `cmd:echo hi`):
                // a broken pipe is not a delivery error, the exit status decides.
                let written = child
                    .stdin
                    .take()
                    .expect("piped stdin")
                    .write_all(body.as_bytes());
                if let Err(e) = written {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("jobs command `{cmd}`: {e}"));
                    }
                }
                let status = child
                    .wait()
                    .map_err(|e| format!("jobs command `{cmd}`: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("jobs command `{cmd}` exited with {status}"))
                }
            }
            JobSink::Webhook { host, path } => post(host, path, &body),
            // Jobs are rare (at most one per game and epoch): a producer per job is fine.
            JobSink::Kafka { brokers, topic } => {
                let writer = crate::kafka::Writer::new(brokers, topic, &[])?;
                writer.send(Some(job.game.as_bytes()), body.as_bytes(), None)?;
                writer.flush()
            }
        }
    }
}

/// A minimal HTTP/1.1 POST; success is any 2xx status.
fn post(host: &str, path: &str, body: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("webhook http://{host}{path}: {e}");
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = TcpStream::connect(&addr).map_err(|e| fail(&e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| fail(&e))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| fail(&e))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| fail(&e))?;
    let status = response.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(fail(&format!(
            "status {}",
            if status.is_empty() { "missing" } else { status }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::TcpListener;

    fn job() -> Job {
        Job {
            job_id: "g:3".into(),
            game: "g".into(),
            epoch: 3,
            sigma: BTreeMap::from([("a".to_string(), 1.0)]),
            target_policy: "a".into(),
            exploitability: 0.5,
            threshold: 0.1,
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!("-".parse::<JobSink>().unwrap(), JobSink::Stdout);
        assert_eq!(
            "cmd:cat".parse::<JobSink>().unwrap(),
            JobSink::Command("cat".into())
        );
        assert_eq!(
            "http://127.0.0.1:9/hook".parse::<JobSink>().unwrap(),
            JobSink::Webhook {
                host: "127.0.0.1:9".into(),
                path: "/hook".into()
            }
        );
        assert_eq!(
            "kafka://127.0.0.1:9092,h:1/br-jobs"
                .parse::<JobSink>()
                .unwrap(),
            JobSink::Kafka {
                brokers: "127.0.0.1:9092,h:1".into(),
                topic: "br-jobs".into()
            }
        );
        assert!("kafka://127.0.0.1:9092".parse::<JobSink>().is_err());
        assert!("kafka:///t".parse::<JobSink>().is_err());
        assert!("https://x".parse::<JobSink>().is_err());
        assert!("cmd: ".parse::<JobSink>().is_err());
    }

    #[test]
    fn file_and_command_sinks_deliver_json() {
        let dir = std::env::temp_dir().join(format!("nashflow-jobs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jobs.jsonl");
        let sink: JobSink = file.to_str().unwrap().parse().unwrap();
        sink.send(&job()).unwrap();
        sink.send(&job()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2);
        let back: Job = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(back, job());
        let copy = dir.join("copy.json");
        let cmd: JobSink = format!("cmd:cat > {}", copy.display()).parse().unwrap();
        cmd.send(&job()).unwrap();
        assert_eq!(
            serde_json::from_str::<Job>(&std::fs::read_to_string(&copy).unwrap()).unwrap(),
            job()
        );
        // Commands that never read stdin race the write; the exit status must still decide.
        let failing: JobSink = "cmd:exit 3".parse().unwrap();
        let ignoring: JobSink = "cmd:true".parse().unwrap();
        for _ in 0..20 {
            assert!(failing.send(&job()).unwrap_err().contains("exited"));
            ignoring.send(&job()).unwrap();
        }
    }

    #[test]
    fn webhook_posts_the_job() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until the body (after the blank line) is complete.
            loop {
                let k = conn.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    if buf.len() >= end + 4 + len {
                        conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                        return text;
                    }
                }
                if k == 0 {
                    panic!("connection closed early");
                }
            }
        });
        let sink: JobSink = format!("http://127.0.0.1:{port}/jobs").parse().unwrap();
        sink.send(&job()).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /jobs HTTP/1.1"));
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        assert_eq!(serde_json::from_str::<Job>(body).unwrap(), job());
    }
}
