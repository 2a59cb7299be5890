//! The HTTP API (axum). Every handler reads one [`Snapshot`](super::Snapshot), so a response
//! describes a single epoch.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use nashflow_schemas::read::decode_json;
use serde_json::{json, Value};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

use super::{Shared, Snapshot};
use crate::run::Item;

const PAGE: &str = include_str!("web/index.html");
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.max_body;
    Router::new()
        .route("/", get(page))
        .route("/api/sql", post(sql))
        .route("/api/leaderboard", get(leaderboard))
        .route("/api/games", get(games))
        .route("/api/games/{game}/matrix", get(matrix))
        .route("/api/timeline", get(timeline))
        .route("/api/events", get(events))
        .route("/api/matches", post(ingest))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// A session whose tables are the snapshot's batches (no copy: batches are shared buffers),
/// plus the archive's `NAME_history` tables when the run keeps one.
async fn session(
    snap: &Snapshot,
    archive: Option<&std::path::Path>,
) -> Result<SessionContext, String> {
    let ctx = SessionContext::new();
    for (name, t) in &snap.tables {
        let table = MemTable::try_new(t.schema.clone(), vec![t.batches.clone()])
            .map_err(|e| e.to_string())?;
        ctx.register_table(name.as_str(), Arc::new(table))
            .map_err(|e| e.to_string())?;
    }
    if let Some(dir) = archive.filter(|d| d.is_dir()) {
        crate::sql::register_archive(&ctx, dir)
            .await
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(ctx)
}

/// `POST /api/sql` with `{"sql": "..."}` (or the query as the raw body). JSON rows by
/// default; Arrow IPC stream with `Accept: application/vnd.apache.arrow.stream`.
async fn sql(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let query = match serde_json::from_str::<Value>(&text) {
        Ok(v) => match v.get("sql").and_then(Value::as_str) {
            Some(q) => q.to_string(),
            None => return error(StatusCode::BAD_REQUEST, "expected {\"sql\": \"SELECT …\"}"),
        },
        Err(_) => text,
    };
    let snap = shared.snapshot();
    let ctx = match session(&snap, shared.archive.as_deref()).await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let result = match crate::sql::query(&ctx, &query, shared.limits).await {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("{e:#}");
            let status = if msg.contains("time limit") {
                StatusCode::REQUEST_TIMEOUT
            } else {
                StatusCode::BAD_REQUEST
            };
            return error(status, msg);
        }
    };
    let wants_arrow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM));
    if wants_arrow {
        let mut buf = Vec::new();
        let schema = match result.batches.first() {
            Some(b) => b.schema(),
            None => Arc::new(arrow::datatypes::Schema::empty()),
        };
        let written = (|| -> Result<(), arrow::error::ArrowError> {
            let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut buf, &schema)?;
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()
        })();
        if let Err(e) = written {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
        return (
            [
                (header::CONTENT_TYPE, ARROW_STREAM.to_string()),
                (
                    header::HeaderName::from_static("x-nashflow-epoch"),
                    snap.epoch.map_or("none".into(), |e| e.to_string()),
                ),
                (
                    header::HeaderName::from_static("x-nashflow-truncated"),
                    result.truncated.to_string(),
                ),
            ],
            buf,
        )
            .into_response();
    }
    match crate::sql::to_json(&result.batches) {
        Ok(rows) => Json(json!({
            "epoch": snap.epoch,
            "rows": rows,
            "truncated": result.truncated,
        }))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/leaderboard?game=G` (the only game when there is one).
async fn leaderboard(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let snap = shared.snapshot();
    let game = match q.get("game") {
        Some(g) => g.clone(),
        None => match snap.leaderboards.keys().next() {
            Some(g) if snap.leaderboards.len() == 1 => g.clone(),
            Some(_) => return error(StatusCode::BAD_REQUEST, "several games: pass ?game=NAME"),
            None => return error(StatusCode::SERVICE_UNAVAILABLE, "no epoch applied yet"),
        },
    };
    match snap.leaderboards.get(&game) {
        Some(v) => Json(v.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no game `{game}`")),
    }
}

async fn games(State(shared): State<Arc<Shared>>) -> Response {
    let snap = shared.snapshot();
    Json(json!({
        "epoch": snap.epoch,
        "games": snap.leaderboards.keys().collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn matrix(State(shared): State<Arc<Shared>>, Path(game): Path<String>) -> Response {
    let snap = shared.snapshot();
    match snap.matrices.get(&game) {
        Some(v) => Json(v.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no game `{game}`")),
    }
}

async fn timeline(State(shared): State<Arc<Shared>>) -> Response {
    let points = shared.timeline.lock().expect("timeline lock").clone();
    Json(json!({ "points": points })).into_response()
}

/// `GET /api/events`: one server-sent event per applied epoch.
async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(shared.events.subscribe()).filter_map(|msg| {
        msg.ok()
            .map(|data| Ok(Event::default().event("epoch").data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `POST /api/matches`: a JSON array of matches or JSON Lines, with `Authorization: Bearer
/// TOKEN`. Records that fail validation are dead-lettered (and listed in the response);
/// the valid ones join the next epoch.
async fn ingest(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((token, tx)) = &shared.ingest else {
        return error(
            StatusCode::FORBIDDEN,
            "ingest is off: start `nashflow run` with --ingest-token TOKEN",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not UTF-8: {e}")),
    };
    // A JSON array, or one JSON value per line; anything else is a 400 naming where it broke.
    let items: Vec<String> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(a)) => a.iter().map(Value::to_string).collect(),
        Ok(v @ Value::Object(_)) => vec![v.to_string()],
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected a JSON array of matches or JSON Lines",
            )
        }
        Err(_) => {
            let mut lines = Vec::new();
            for (k, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                if let Err(e) = serde_json::from_str::<Value>(line) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("line {}: invalid JSON: {e}", k + 1),
                    );
                }
                lines.push(line.to_string());
            }
            lines
        }
    };
    let batch = shared
        .counters
        .http_rows
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    let mut accepted = 0;
    let mut rejected = Vec::new();
    let mut decoded = Vec::with_capacity(items.len());
    let source: Arc<str> = "http".into();
    for (k, item) in items.iter().enumerate() {
        let row = k as u64 + 1;
        match decode_json("http", row, item, || format!("http:{}", batch + row)) {
            Ok(m) => {
                decoded.push(Item::Record(m, source.clone(), row));
                accepted += 1;
            }
            Err(e) => {
                rejected.push(json!({"row": row, "field": e.field, "reason": e.reason}));
                decoded.push(Item::Bad(e));
            }
        }
    }
    // The whole request as one message, or none of it: a full input queue (the engine is
    // behind its sources) is a 503 to retry, never a blocked server thread.
    match tx
        .lock()
        .expect("ingest lock")
        .try_send(Item::Batch(decoded))
    {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine's input queue is full; retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            return r;
        }
        Err(TrySendError::Disconnected(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the engine has stopped");
        }
    }
    shared
        .counters
        .ingested
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": accepted, "rejected": rejected })),
    )
        .into_response()
}

/// Prometheus text format.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let c = &shared.counters;
    let snap = shared.snapshot();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(&format!("{name}{l}\n"));
        }
    };
    metric(
        "nashflow_matches_ingested_total",
        "counter",
        "Records taken in over HTTP (valid or dead-lettered; a refused request counts none).",
        vec![format!(" {}", c.ingested.load(Ordering::Relaxed))],
    );
    metric(
        "nashflow_dead_letters_total",
        "counter",
        "Dead letters as of the last epoch: rows of every source that failed validation, and conflicts and bad retractions.",
        vec![format!(" {}", c.dead_letters.load(Ordering::Relaxed))],
    );
    metric(
        "nashflow_epochs_total",
        "counter",
        "Epochs applied.",
        vec![format!(" {}", c.epochs.load(Ordering::Relaxed))],
    );
    metric(
        "nashflow_epoch_lag_seconds",
        "gauge",
        "Wall-clock seconds the last epoch took from hand-off to applied tables.",
        vec![format!(" {}", c.epoch_seconds())],
    );
    let per_game = |key: &str| -> Vec<String> {
        snap.leaderboards
            .iter()
            .filter_map(|(g, v)| {
                v.get(key)
                    .and_then(Value::as_f64)
                    .map(|x| format!("{{game=\"{g}\"}} {x}"))
            })
            .collect()
    };
    metric(
        "nashflow_exploitability",
        "gauge",
        "Exploitability of σ per game.",
        per_game("exploitability"),
    );
    metric(
        "nashflow_solve_seconds",
        "gauge",
        "Solver time of the last analysis per game.",
        per_game("solve_seconds"),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
