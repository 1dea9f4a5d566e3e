//! The ingest handler: client limit, route, size and time bounds, then the gateway pipeline.

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::response::{self, Body};
use crate::gateway::{Gateway, Outcome, Reservation, Source};
use crate::telemetry::names;
use crate::verify::Unverified;

const PREFIX: &str = "/v1/webhooks/";

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if trusted.is_empty() || !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(s) = value.to_str() else { return client };
        for part in s.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
    }
    client
}

fn reject(gw: &Gateway, reason: &'static str) {
    gw.telemetry()
        .counter(names::REJECTED, &[("reason", reason)])
        .increment(1);
}

pub async fn handle(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    // One config for the whole request: the source is looked up here, once, and the pipeline
    // runs on the same one even if a reload swaps it meanwhile.
    let runtime = gw.runtime_full();
    let config = &runtime.config;
    let client = client_ip(peer.ip(), req.headers(), &config.server.trusted_proxies);

    // The source this request names, if it names a configured one (labels take only those).
    let source = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .and_then(|s| runtime.sources.get(s))
        .cloned();

    if let Err(wait) = gw.client_limiter().check(client) {
        let outcome = Outcome::RateLimited { retry_after: wait };
        return Ok(match &source {
            Some(s) => finish(&gw, s, client, &outcome, started),
            None => {
                reject(&gw, "client_rate_limited");
                response::from_outcome(&outcome)
            }
        });
    }
    let Some(source) = source else {
        reject(&gw, "not_found");
        return Ok(response::not_found());
    };
    // The source's vendor decides which methods it sends (POST; Okta's verification GET too)
    // and answers its own unsigned endpoint checks (Graph's `validationToken`, below).
    if !source.scheme.accepts(req.method(), req.headers()) {
        reject(&gw, "method_not_allowed");
        return Ok(response::method_not_allowed());
    }

    let max_body = config.server.max_body;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Ok(finish(&gw, &source, client, &Outcome::TooLarge, started));
    }

    let (parts, body) = req.into_parts();
    let deadline = config.server.request_timeout;
    let budget = config.server.max_inflight_body_bytes;
    let read = read_body(&gw, body, declared, max_body, budget);
    let (body, held) = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(ReadError::TooLarge)) => {
            return Ok(finish(&gw, &source, client, &Outcome::TooLarge, started));
        }
        Ok(Err(ReadError::Busy)) => {
            let outcome = Outcome::Unavailable {
                retry_after: BUDGET_RETRY_AFTER,
            };
            return Ok(finish(&gw, &source, client, &outcome, started));
        }
        Ok(Err(ReadError::Broken)) => {
            reject(&gw, "bad_request");
            return Ok(response::bad_request());
        }
        Err(_) => {
            reject(&gw, "timeout");
            tracing::info!(source = %source.config.id, %client, outcome = "timeout", "request body not received in time");
            return Ok(response::timeout());
        }
    };

    let unverified = Unverified {
        headers: parts.headers,
        query: parts.uri.query().map(str::to_string),
        body,
        received_at: gw.clock().now(),
    };
    // A check the vendor makes without any proof (Microsoft Graph's `validationToken`, on
    // `msgraph` sources only): answered before verification, never spooled.
    if let Some(h) = source
        .scheme
        .pre_verify_handshake(&parts.method, &unverified)
    {
        let outcome = Outcome::Handshake(h);
        return Ok(finish(&gw, &source, client, &outcome, started));
    }
    // The pipeline runs in its own task: a client that goes away must not cancel it between
    // recording the event id and writing the event.
    let task = {
        let gw = gw.clone();
        let source = source.clone();
        tokio::spawn(async move {
            let outcome = gw.ingest_to(&runtime, &source, unverified).await;
            // The body's bytes count against the budget until the pipeline is done with them.
            drop(held);
            outcome
        })
    };
    let outcome = match task.await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(source = %source.config.id, error = %e, "ingest task failed");
            Outcome::Unavailable {
                retry_after: std::time::Duration::from_secs(1),
            }
        }
    };
    Ok(finish(&gw, &source, client, &outcome, started))
}

/// When `server.max_inflight_body_bytes` is in use, senders are asked to retry after this.
const BUDGET_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

enum ReadError {
    /// Over `server.max_body`.
    TooLarge,
    /// Over `server.max_inflight_body_bytes`, with every other body being read.
    Busy,
    /// The body could not be read (the peer went away, a framing error).
    Broken,
}

/// Reads the body within `max_body`, its bytes taken from the gateway's body budget first: all
/// of a declared length before reading, else each chunk as it arrives.
async fn read_body(
    gw: &Gateway,
    mut body: Incoming,
    declared: Option<u64>,
    max_body: u64,
    budget: u64,
) -> Result<(Bytes, Reservation), ReadError> {
    let declared = declared.unwrap_or(0);
    let mut held = gw
        .body_budget()
        .reserve(declared, budget)
        .ok_or(ReadError::Busy)?;
    let mut buf = BytesMut::with_capacity(declared as usize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| ReadError::Broken)?.into_data() else {
            continue; // trailers
        };
        let len = (buf.len() + data.len()) as u64;
        if len > max_body {
            return Err(ReadError::TooLarge);
        }
        if len > held.bytes() && !held.grow(len - held.bytes(), budget) {
            return Err(ReadError::Busy);
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

/// Every request to a configured source ends here: counted once, logged in one line
/// (source, client, outcome, reason, duration; never a header or a body), answered.
fn finish(
    gw: &Gateway,
    source: &Source,
    client: IpAddr,
    outcome: &Outcome,
    started: Instant,
) -> Response<Body> {
    gw.record(source, outcome, started);
    let (reason, detail) = match outcome {
        Outcome::Unauthorized(r) => (r.reason.as_str(), r.detail),
        _ => ("", ""),
    };
    tracing::info!(
        source = %source.config.id,
        %client,
        outcome = outcome.label(),
        reason,
        detail,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response::from_outcome(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger);
        assert_eq!(client_ip(proxy, &h, &[]), proxy);
        let mut bad = http::HeaderMap::new();
        bad.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(proxy, &bad, &trusted), proxy);
    }
}
