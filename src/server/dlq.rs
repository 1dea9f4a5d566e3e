//! The dead-letter admin API, behind the admin bearer token:
//! - `GET /v1/dlq?sink=S&id=N&limit=L`: the dead letters (each with its sink, id, attempts,
//!   last error, times and the event), and the count per sink;
//! - `POST /v1/dlq/replay?sink=S&id=N`: puts them back in their sink's queue;
//! - `POST /v1/dlq/drop?sink=S&id=N` (or `?all=true`): deletes them.
//!
//! An id is the event's spool sequence number; ids are unique per sink.

use http::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::gateway::Gateway;
use crate::spool::{AppendError, DlqError};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

#[derive(Default)]
pub(super) struct Query {
    pub(super) sink: Option<String>,
    pub(super) id: Option<u64>,
    pub(super) limit: Option<usize>,
    pub(super) all: bool,
}

pub(super) fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sink" => {
                if !crate::config::valid_id(v) {
                    return Err("sink: not a sink id".into());
                }
                out.sink = Some(v.to_string());
            }
            "id" => out.id = Some(v.parse().map_err(|_| "id: not a dead-letter id")?),
            "limit" => {
                let l: usize = v.parse().map_err(|_| "limit: not a number")?;
                out.limit = Some(l.clamp(1, MAX_LIMIT));
            }
            "all" => out.all = v == "true" || v == "1",
            _ => {
                return Err(format!(
                    "unknown parameter {k:?}; expected sink, id, limit or all"
                ))
            }
        }
    }
    Ok(out)
}

fn rfc3339(ms: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn error(e: DlqError) -> (StatusCode, Value) {
    match e {
        DlqError::UnknownSink(s) => (
            StatusCode::NOT_FOUND,
            json!({"error": format!("sink {s} is not configured")}),
        ),
        DlqError::Append(AppendError::Full { .. }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the spool is full; try again once the sinks have caught up"}),
        ),
        other => {
            tracing::error!(error = %other, "dead-letter operation failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "dead-letter operation failed; see the logs"}),
            )
        }
    }
}

pub async fn handle(
    gw: &Gateway,
    method: &Method,
    path: &str,
    q: Option<&str>,
) -> (StatusCode, Value) {
    let q = match parse_query(q) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, json!({"error": e})),
    };
    let spool = gw.spool().clone();
    match (method, path) {
        (&Method::GET, _) => {
            let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
            let (sink, id) = (q.sink.clone(), q.id);
            let s = spool.clone();
            let listed =
                tokio::task::spawn_blocking(move || s.dead_letters(sink.as_deref(), id, limit))
                    .await;
            match listed {
                Ok(Ok(letters)) => {
                    let items: Vec<Value> = letters
                        .into_iter()
                        .map(|(sink, d)| {
                            let event =
                                serde_json::from_slice::<Value>(&d.event).unwrap_or_else(|_| {
                                    Value::String(String::from_utf8_lossy(&d.event).into_owned())
                                });
                            json!({
                                "sink": sink,
                                "id": d.seq,
                                "attempts": d.attempts,
                                "error": d.error,
                                "received_at": rfc3339(d.received_ms),
                                "dead_lettered_at": rfc3339(d.dead_lettered_ms),
                                "event": event,
                            })
                        })
                        .collect();
                    (
                        StatusCode::OK,
                        json!({"dead_letters": items, "counts": spool.dead_letter_counts()}),
                    )
                }
                Ok(Err(e)) => error(DlqError::Io(e.to_string())),
                Err(e) => error(DlqError::Io(e.to_string())),
            }
        }
        (_, "/v1/dlq/replay") => match spool
            .replay_dead_letters(
                q.sink.as_deref(),
                q.id,
                crate::event::unix_ms(gw.clock().now()),
            )
            .await
        {
            Ok(n) => {
                tracing::info!(sink = ?q.sink, id = ?q.id, events = n, "dead letters replayed");
                (StatusCode::OK, json!({"status": "replayed", "events": n}))
            }
            Err(e) => error(e),
        },
        _ => {
            if q.sink.is_none() && q.id.is_none() && !q.all {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "say which dead letters to drop: sink, id, or all=true"}),
                );
            }
            match spool.drop_dead_letters(q.sink.as_deref(), q.id).await {
                Ok(n) => {
                    tracing::warn!(sink = ?q.sink, id = ?q.id, events = n, "dead letters dropped");
                    (StatusCode::OK, json!({"status": "dropped", "events": n}))
                }
                Err(e) => error(e),
            }
        }
    }
}
