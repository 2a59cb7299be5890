//! The HTTP server of `nashflow run` (issue #5): the latest consistent snapshot of every
//! table, served as SQL, JSON, server-sent events and a live web page.
//!
//! The engine publishes one [`Snapshot`] per epoch — every table computed from the same
//! epoch's state. Publishing swaps an `Arc`, so a query holds the snapshot it started with
//! (all of its tables from one epoch) and never blocks the engine or other queries.

pub mod api;
pub mod live;
pub mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::sql::Limits;

/// Every output table and the JSON views of one epoch.
#[derive(Default)]
pub struct Snapshot {
    pub epoch: Option<u64>,
    pub tables: Vec<(String, live::Table)>,
    /// Per game: the leaderboard JSON of `GET /api/leaderboard`.
    pub leaderboards: BTreeMap<String, Value>,
    /// Per game: the matrix JSON of `GET /api/games/{game}/matrix`.
    pub matrices: BTreeMap<String, Value>,
}

/// A record posted to `POST /api/matches`, handed to the engine's source channel.
pub type IngestSender = crate::run::ItemSender;

/// Counters for `GET /metrics`.
#[derive(Default)]
pub struct Counters {
    /// Records taken in over HTTP (a request refused with 503 counts none).
    pub ingested: AtomicU64,
    /// Rows numbered over HTTP, refused requests included: a row without `match_id` is
    /// `http:N`, and N is never handed out twice.
    pub http_rows: AtomicU64,
    /// The rows of the live `dead_letters` table (set at each epoch).
    pub dead_letters: AtomicU64,
    pub epochs: AtomicU64,
    /// Seconds the last epoch took, as f64 bits.
    pub epoch_seconds: AtomicU64,
}

impl Counters {
    pub fn set_epoch_seconds(&self, s: f64) {
        self.epoch_seconds.store(s.to_bits(), Ordering::Relaxed);
    }
    pub fn epoch_seconds(&self) -> f64 {
        f64::from_bits(self.epoch_seconds.load(Ordering::Relaxed))
    }
}

/// State shared by the engine (writer) and the HTTP handlers (readers).
pub struct Shared {
    snapshot: RwLock<Arc<Snapshot>>,
    pub events: tokio::sync::broadcast::Sender<String>,
    pub counters: Counters,
    /// (epoch, game, exploitability) per epoch, and job markers, for the timeline.
    pub timeline: Mutex<Vec<Value>>,
    pub limits: Limits,
    /// `Some` when ingest is on: the bearer token and the engine's source channel.
    pub ingest: Option<(String, Mutex<IngestSender>)>,
    /// Largest accepted request body.
    pub max_body: usize,
    /// `run --archive DIR`: SQL also sees `NAME_history` over the archived epochs.
    pub archive: Option<std::path::PathBuf>,
}

impl Shared {
    pub fn new(limits: Limits, ingest: Option<(String, IngestSender)>) -> Arc<Shared> {
        Self::with_archive(limits, ingest, None)
    }

    pub fn with_archive(
        limits: Limits,
        ingest: Option<(String, IngestSender)>,
        archive: Option<std::path::PathBuf>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            events: tokio::sync::broadcast::channel(256).0,
            counters: Counters::default(),
            timeline: Mutex::new(Vec::new()),
            limits,
            ingest: ingest.map(|(t, tx)| (t, Mutex::new(tx))),
            max_body: 8 << 20,
            archive,
        })
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().expect("snapshot lock").clone()
    }

    /// Swaps in a new epoch's snapshot and announces it.
    pub fn publish(&self, snap: Snapshot, event: Value) {
        *self.snapshot.write().expect("snapshot lock") = Arc::new(snap);
        self.counters.epochs.fetch_add(1, Ordering::Relaxed);
        // No subscribers is fine.
        let _ = self.events.send(event.to_string());
    }
}

/// A running server: its address; it stops with the process.
pub struct Server {
    pub addr: SocketAddr,
}

/// Binds `listen` and serves on a background thread with its own runtime.
pub fn start(listen: &str, shared: Arc<Shared>) -> Result<Server> {
    let std_listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("binding --listen {listen}"))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let app = api::router(shared);
    std::thread::Builder::new()
        .name("nashflow-http".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).expect("listener to tokio");
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("error: HTTP server stopped: {e}");
                }
            });
        })?;
    Ok(Server { addr })
}
