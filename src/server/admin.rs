//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/v1/status`, `POST /v1/reload`,
//! the dead letters (`/v1/dlq`, see [`super::dlq`]) and the events of sinks no longer
//! configured (`GET /v1/spool`, `POST /v1/spool/drop?sink=ID`).
//! Never served on the ingest listener. `/metrics`, `/healthz` and `/readyz` are open (probes
//! and scrapers); everything else needs the bearer token (`/v1/status` names sinks and their
//! errors).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::dlq;
use super::reload::{ReloadError, Reloader, Trigger};
use crate::gateway::Gateway;
use crate::verify::mac;

type Body = Full<Bytes>;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    text(status, "application/json", v.to_string())
}

/// Whether the request carries the admin bearer token. No token configured: nobody does.
pub fn authorized(gw: &Gateway, headers: &http::HeaderMap) -> bool {
    let config = gw.config();
    let Some(token) = &config.admin.token else {
        return false;
    };
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    mac::ct_eq_token(presented.trim().as_bytes(), token.expose()).into()
}

async fn handle(
    gw: Arc<Gateway>,
    reloader: Arc<Reloader>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let r = match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            gw.render_metrics(),
        ),
        (&Method::GET, "/healthz") => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        (&Method::GET, "/readyz") => {
            let replay_ready = gw.replay_store().ready().await;
            let spool_ok = gw.spool().writable();
            let ready = !gw.is_draining() && replay_ready && spool_ok;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                serde_json::json!({
                    "status": if ready { "ready" } else { "not_ready" },
                    "draining": gw.is_draining(),
                    "replay_store": if replay_ready { "ok" } else { "unavailable" },
                    "spool": if spool_ok { "ok" } else { "not_writable" },
                    // Shown, not counted: events for a sink that is down wait in the spool, so
                    // taking the gateway out of service would only lose webhooks.
                    "sinks": gw.sinks().iter().map(|(id, s)| {
                        (id.clone(), serde_json::Value::from(if s.health.is_healthy() { "healthy" } else { "unhealthy" }))
                    }).collect::<serde_json::Map<_, _>>(),
                }),
            )
        }
        (&Method::GET, "/v1/status" | "/v1/spool" | "/v1/dlq")
        | (&Method::POST, "/v1/spool/drop" | "/v1/dlq/replay" | "/v1/dlq/drop" | "/v1/reload")
            if !authorized(&gw, req.headers()) =>
        {
            json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "unauthorized"}),
            )
        }
        (&Method::GET, "/v1/status") => json(StatusCode::OK, status(&gw)),
        (&Method::GET, "/v1/spool") => json(
            StatusCode::OK,
            spool_status(&gw, &gw.spool().dead_letter_counts()),
        ),
        (&Method::POST, "/v1/spool/drop") => {
            let (status, body) = drop_orphan(&gw, req.uri().query()).await;
            json(status, body)
        }
        (&Method::GET, "/v1/dlq") | (&Method::POST, "/v1/dlq/replay" | "/v1/dlq/drop") => {
            let (status, body) = dlq::handle(&gw, req.method(), &path, req.uri().query()).await;
            json(status, body)
        }
        (&Method::POST, "/v1/reload") => match reloader.reload(Trigger::Api).await {
            Ok(notes) => json(
                StatusCode::OK,
                serde_json::json!({"status": "reloaded", "notes": notes}),
            ),
            Err(ReloadError::NotAvailable) => json(
                StatusCode::NOT_IMPLEMENTED,
                serde_json::json!({"error": "reload not available"}),
            ),
            Err(ReloadError::Refused(e)) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({"error": "invalid config", "problems": e}),
            ),
        },
        (
            _,
            "/metrics" | "/healthz" | "/readyz" | "/v1/status" | "/v1/reload" | "/v1/dlq"
            | "/v1/dlq/replay" | "/v1/dlq/drop" | "/v1/spool" | "/v1/spool/drop",
        ) => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "method_not_allowed"}),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    };
    Ok(r)
}

/// The spool's size and the sinks no longer configured that still have events in it.
/// `dead` is the spool's dead-letter counts per sink, read once by the caller.
fn spool_status(gw: &Gateway, dead: &BTreeMap<String, u64>) -> serde_json::Value {
    let spool = gw.spool();
    let orphans: Vec<_> = spool
        .orphans()
        .into_iter()
        .map(|(id, n)| {
            serde_json::json!({
                "id": id,
                "queued_events": n,
                "dead_letters": dead.get(&id).copied().unwrap_or(0),
                "drop": format!("siemgate spool drop --sink {id}"),
            })
        })
        .collect();
    serde_json::json!({
        "dir": spool.dir().display().to_string(),
        "bytes": spool.bytes(),
        "max_size": spool.max_size(),
        "writable": spool.writable(),
        "orphaned_sinks": orphans,
    })
}

/// `POST /v1/spool/drop?sink=ID`: deletes the queued events of a sink that is not configured.
async fn drop_orphan(gw: &Gateway, query: Option<&str>) -> (StatusCode, serde_json::Value) {
    use crate::spool::DropError;
    let sink = match dlq::parse_query(query) {
        Ok(q) if q.id.is_none() && q.limit.is_none() && !q.all => q.sink,
        Ok(_) => {
            return (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "unknown parameter; expected sink"}),
            )
        }
        Err(e) => return (StatusCode::BAD_REQUEST, serde_json::json!({ "error": e })),
    };
    let Some(sink) = sink else {
        return (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "say whose events to drop: sink=ID"}),
        );
    };
    match gw.spool().drop_orphan(&sink).await {
        Ok(d) => {
            tracing::warn!(sink = %sink, events = d.events, bytes_freed = d.bytes, "dropped the spooled events of a sink that is no longer configured");
            (
                StatusCode::OK,
                serde_json::json!({"status": "dropped", "sink": sink, "events": d.events, "bytes_freed": d.bytes}),
            )
        }
        Err(e @ DropError::Configured(_)) => (
            StatusCode::CONFLICT,
            serde_json::json!({"error": e.to_string()}),
        ),
        Err(e @ DropError::NotOrphan(_)) => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": e.to_string()}),
        ),
        Err(e) => {
            tracing::error!(sink = %sink, error = %e, "dropping a sink's spooled events failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "dropping the events failed; see the logs"}),
            )
        }
    }
}

fn status(gw: &Gateway) -> serde_json::Value {
    let rt = gw.runtime();
    let mut sources: Vec<_> = rt
        .sources
        .values()
        .map(|s| {
            serde_json::json!({
                "id": s.config.id,
                "vendor": s.config.vendor.name(),
                "secrets": s.keys.len(),
                "tolerance_seconds": s.config.tolerance.as_secs(),
                "sinks": s.config.sinks,
            })
        })
        .collect();
    sources.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let spool = gw.spool();
    let dead = spool.dead_letter_counts();
    let mut sinks: Vec<_> = gw
        .sinks()
        .values()
        .map(|s| {
            let current = s.current();
            let id = current.sink.id();
            serde_json::json!({
                "id": id,
                "type": current.sink.type_name(),
                "url": crate::sink::redact::sink_url(&current.config.kind),
                "healthy": s.health.is_healthy(),
                "last_error": s.health.last_error(),
                "health_check": s.health.check().label(),
                "queued_events": spool.pending(id),
                "dead_letters": dead.get(id).copied().unwrap_or(0),
            })
        })
        .collect();
    sinks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ocsf_version": crate::event::OCSF_VERSION,
        "draining": gw.is_draining(),
        "replay_store": gw.replay_store().name(),
        "spool": spool_status(gw, &dead),
        "sources": sources,
        "sinks": sinks,
    })
}

/// Serves the admin API: at most `admin.max_connections` connections, with the ingest
/// listener's header and idle timeouts (see [`super::conn`]).
pub async fn serve(
    gw: Arc<Gateway>,
    reloader: Arc<Reloader>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let g = gw.clone();
    super::conn::serve_listener(
        gw,
        listener,
        super::conn::Kind::Admin,
        None,
        shutdown,
        move |_, req| handle(g.clone(), reloader.clone(), req),
    )
    .await;
}
