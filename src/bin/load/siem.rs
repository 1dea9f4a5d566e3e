//! `--fake-siem ADDR`: a SIEM that takes whatever the gateway's sinks send and counts the
//! events, so delivery can be measured on one machine without a Splunk.
//!
//! It answers every batch endpoint the sinks use: Splunk HEC (`{"text":"Success","code":0}`
//! to concatenated envelopes), Datadog, the Logs Ingestion API and signed HTTPS (JSON arrays),
//! the Entra ID token endpoint (`…/oauth2/v2.0/token`) a `sentinel` sink asks first, and health
//! checks (any GET, answered as HEC's `/services/collector/health` does). A body
//! is gunzipped when it says `Content-Encoding: gzip`, and its events are counted: the length of
//! a JSON array, or the number of JSON values one after another (HEC envelopes, NDJSON). A body
//! that is not JSON, or whose gzip is broken, is answered 400 and counted as `malformed`, so a
//! wire-format fault shows in the report instead of passing as delivered events.
//!
//! It is a measuring instrument, not a test double: the exact-format checks live in the sinks'
//! own tests against fakes that check every header and field.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use serde::de::IgnoredAny;

use super::serve::{self, json, Response};

/// The largest body taken, before and after gunzip: past what any sink sends in one batch.
const MAX_BODY: usize = 64 * 1024 * 1024;
const HEC_OK: &[u8] = br#"{"text":"Success","code":0}"#;
const HEC_HEALTHY: &[u8] = br#"{"text":"HEC is healthy","code":17}"#;
const TOKEN: &[u8] = br#"{"token_type":"Bearer","expires_in":3600,"access_token":"siemgate-load"}"#;

/// What the fake SIEM has taken so far. Counters only go up; a reader takes differences.
#[derive(Default)]
pub struct Counts {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    /// Bytes on the wire (compressed when the sink compresses).
    pub bytes: AtomicU64,
    pub malformed: AtomicU64,
    /// Health checks (GET): answered healthy, no events.
    pub checks: AtomicU64,
}

impl Counts {
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "events": self.events(),
            "batches": self.batches.load(Ordering::Relaxed),
            "bytes": self.bytes.load(Ordering::Relaxed),
            "malformed": self.malformed.load(Ordering::Relaxed),
            "checks": self.checks.load(Ordering::Relaxed),
        })
    }
}

/// The fake SIEM, serving on its own tasks until dropped.
pub struct FakeSiem {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSiem {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `addr` and serves until the returned value is dropped.
pub async fn start(addr: SocketAddr) -> std::io::Result<FakeSiem> {
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let (addr, task) = serve::serve(addr, move |req| handle(Arc::clone(&c), req)).await?;
    Ok(FakeSiem { addr, counts, task })
}

async fn handle(
    counts: Arc<Counts>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response, std::convert::Infallible> {
    if req.uri().path().ends_with("/oauth2/v2.0/token") {
        return Ok(json(StatusCode::OK, TOKEN));
    }
    if req.method() == hyper::Method::GET {
        // A sink's health check (HEC's `/services/collector/health`): healthy, no events.
        counts.checks.fetch_add(1, Ordering::Relaxed);
        return Ok(json(StatusCode::OK, HEC_HEALTHY));
    }
    let gzip = req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            counts.malformed.fetch_add(1, Ordering::Relaxed);
            return Ok(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                br#"{"text":"Too large","code":6}"#,
            ));
        }
    };
    counts.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    match count_events(&body, gzip) {
        Some(n) => {
            counts.events.fetch_add(n, Ordering::Relaxed);
            counts.batches.fetch_add(1, Ordering::Relaxed);
            Ok(json(StatusCode::OK, HEC_OK))
        }
        None => {
            counts.malformed.fetch_add(1, Ordering::Relaxed);
            Ok(json(
                StatusCode::BAD_REQUEST,
                br#"{"text":"Invalid data format","code":6}"#,
            ))
        }
    }
}

/// The events in one batch body: a JSON array's length, or the number of JSON values one after
/// another. `None` when the gzip or the JSON is broken, or the body is empty.
pub fn count_events(body: &[u8], gzip: bool) -> Option<u64> {
    let plain;
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(MAX_BODY as u64 + 1)
            .read_to_end(&mut out)
            .ok()?;
        if out.len() > MAX_BODY {
            return None;
        }
        plain = out;
        &plain[..]
    } else {
        body
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let items: Vec<IgnoredAny> = serde_json::from_slice(body).ok()?;
        return Some(items.len() as u64);
    }
    let mut n = 0;
    for v in serde_json::Deserializer::from_slice(body).into_iter::<IgnoredAny>() {
        v.ok()?;
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_arrays_concatenated_values_and_gzip() {
        assert_eq!(count_events(br#"[{"a":1},{"b":[1,2]}]"#, false), Some(2));
        assert_eq!(
            count_events(br#"{"event":{}}{"event":{"x":"}{"}}"#, false),
            Some(2)
        );
        assert_eq!(
            count_events(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n", false),
            Some(3)
        );
        let gz = siemgate::sink::transport::gzip(br#"[{"a":1},{"a":2},{"a":3}]"#);
        assert_eq!(count_events(&gz, true), Some(3));
        for bad in [&b""[..], b"  ", b"[{\"a\":1}", b"{\"a\":1}{", b"nope"] {
            assert_eq!(count_events(bad, false), None, "{bad:?}");
        }
        assert_eq!(count_events(b"[1]", true), None, "not gzip");
    }

    #[tokio::test]
    async fn takes_batches_and_tokens_over_http() {
        let siem = start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://{}", siem.addr);
        let token = client
            .post(format!("{base}/tenant/oauth2/v2.0/token"))
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200);
        let t: serde_json::Value = serde_json::from_slice(&token.bytes().await.unwrap()).unwrap();
        assert_eq!(t["token_type"], "Bearer");

        let health = client
            .get(format!("{base}/services/collector/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(&health.bytes().await.unwrap()[..], HEC_HEALTHY);

        let gz = siemgate::sink::transport::gzip(br#"{"event":1}{"event":2}"#);
        let hec = client
            .post(format!("{base}/services/collector/event"))
            .header("content-encoding", "gzip")
            .body(gz)
            .send()
            .await
            .unwrap();
        assert_eq!(hec.status(), 200);
        assert_eq!(&hec.bytes().await.unwrap()[..], HEC_OK);
        let bad = client
            .post(format!("{base}/x"))
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        assert_eq!(siem.counts.events(), 2);
        assert_eq!(siem.counts.json()["batches"], 1);
        assert_eq!(siem.counts.json()["malformed"], 1);
        assert_eq!(siem.counts.json()["checks"], 1);
    }
}
