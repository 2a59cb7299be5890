//! A real Kafka-protocol broker for tests: tansu, started on a free loopback port with
//! SQLite storage in its own directory (so it survives a restart). `.ci/run` installs it
//! (`cargo install tansu --features dynostore,libsql`); the binary is found through
//! `NASHFLOW_TANSU`, then `~/.cache/nashflow/tansu/bin/tansu`, then `PATH`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("NASHFLOW_TANSU") {
        return p.into();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = Path::new(&home).join(".cache/nashflow/tansu/bin/tansu");
        if p.exists() {
            return p;
        }
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no tansu broker: run `bash .ci/run` once (it installs one under ~/.cache/nashflow/tansu), \
             or `cargo install tansu --locked --features dynostore,libsql`, or set NASHFLOW_TANSU"
        )
    })
}

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    storage: &'static str,
}

impl Broker {
    /// Starts a broker with its data under `dir` (created).
    pub fn start(dir: &Path) -> Broker {
        Self::start_with(dir, "sqlite://tansu.db")
    }

    /// A broker that keeps its data in memory (lost on restart; faster).
    pub fn start_in_memory(dir: &Path) -> Broker {
        Self::start_with(dir, "memory://tansu/")
    }

    fn start_with(dir: &Path, storage: &'static str) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Broker {
            child: None,
            port,
            dir: dir.to_path_buf(),
            storage,
        };
        b.launch();
        b
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .unwrap();
        // tansu wants a relative sqlite path: run it in its directory.
        let child = Command::new(tansu())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", self.storage])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "broker did not listen; see {}",
                self.dir.join("broker.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {name}");
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
