//! The SIEM sinks end to end: a gateway on 127.0.0.1:0 sending to fake Splunk HEC, Azure
//! (Entra ID token + Logs Ingestion, and the legacy Data Collector) and Datadog APIs. The fakes
//! check what the real services check (credentials, paths, query, headers, body shape, size
//! limits, the SharedKey signature) and refuse the way they do, so a wrong wire format fails
//! here as it would in production. The formats are README.md's "Sinks" section, after
//! ../shared/reference/sinks.md.

use base64::Engine;
use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::fake::{Captured, FakeServer, Reply, Siem};
use crate::support::{metric, source, Options, TestGateway, Tls, T0};

mod data_collector;
mod datadog;
mod fan_out;
mod limits;
mod sentinel;
mod splunk;

// Each SIEM's fake and helpers, for the tests that use several.
use data_collector::*;
use datadog::*;
use sentinel::*;
use splunk::*;

// ---------------------------------------------------------------------------------------------
// The gateway side: config, signed events, status.

/// Per-request timeout and fast retries for every SIEM sink here.
const FAST: &str =
    "timeout = \"1s\"\nretry = { initial_backoff = \"10ms\", max_backoff = \"50ms\" }";
/// Small batches, sent soon.
const QUICK: &str = "batch = { max_events = 100, timeout = \"20ms\" }";
/// Ingest limits that let a test send many or large events.
const ROOMY: &str =
    "max_body = \"4MiB\"\nclient_rate_limit = { per_second = 100000, burst = 100000 }";

/// A github source `src` whose events go to `sinks`.
fn gh(src: &str, sinks: &[&str]) -> String {
    let list = sinks
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    source(src, "github", &["siem-secret"], "")
        .replace("sinks = [\"out\"]", &format!("sinks = [{list}]"))
}

async fn start(server: &str, sources: String, sinks: String) -> TestGateway {
    TestGateway::start(Options {
        tls: Tls::Off,
        server: server.into(),
        sources,
        sinks: Some(sinks),
        spool: "flush_timeout = \"200ms\"".into(),
        ..Default::default()
    })
    .await
}

/// POSTs `body` as a signed github delivery `id`; returns status and answer.
async fn post_event(gw: &TestGateway, src: &str, id: &str, body: Value) -> (u16, String) {
    let body = body.to_string().into_bytes();
    let headers = gw.sign(src, &body, id);
    gw.post(&gw.client(), src, &headers, body).await
}

async fn accept_json(gw: &TestGateway, src: &str, id: &str, body: Value) {
    let (status, text) = post_event(gw, src, id, body).await;
    assert_eq!(status, 200, "{id}: {text}");
    assert_eq!(text, r#"{"status":"accepted","events":1}"#, "{id}");
}

async fn accept(gw: &TestGateway, src: &str, id: &str) {
    accept_json(gw, src, id, json!({"action": "created", "id": id})).await
}

/// An event whose raw body carries `pad` bytes of filler.
async fn accept_padded(gw: &TestGateway, src: &str, id: &str, pad: usize) {
    accept_json(
        gw,
        src,
        id,
        json!({"action": "created", "id": id, "pad": "x".repeat(pad)}),
    )
    .await
}

/// Sends `ids` padded by `pad` bytes each, with one event `huge.0` padded over 1 MB inserted
/// at position `huge.1`.
async fn accept_padded_with_huge(
    gw: &TestGateway,
    src: &str,
    ids: &[String],
    pad: usize,
    huge: (&str, usize),
) {
    let mut all = ids.to_vec();
    all.insert(huge.1, huge.0.to_string());
    accept_many(gw, src, &all, |id| {
        let pad = if id == huge.0 { 1_050_000 } else { pad };
        json!({"action": "created", "id": id, "pad": "x".repeat(pad)})
    })
    .await
}

/// Sends many events, 32 at a time.
async fn accept_many(gw: &TestGateway, src: &str, ids: &[String], body: impl Fn(&str) -> Value) {
    let client = gw.client();
    for chunk in ids.chunks(32) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|id| {
                let b = body(id).to_string().into_bytes();
                let headers = gw.sign(src, &b, id);
                (
                    id.clone(),
                    tokio::spawn(gw.request(&client, src, &headers, b).send()),
                )
            })
            .collect();
        for (id, s) in sends {
            let r = s.await.unwrap().unwrap();
            let status = r.status();
            if status != 200 {
                panic!("{id}: {status} {}", r.text().await.unwrap());
            }
        }
    }
}

/// The sink's entry in `/v1/status`.
async fn sink_status(gw: &TestGateway, id: &str) -> Value {
    let (_, status) = gw.admin_call(Method::GET, "/v1/status").await;
    status["sinks"]
        .as_array()
        .unwrap_or_else(|| panic!("no sinks in /v1/status: {status}"))
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no sink {id} in /v1/status: {status}"))
        .clone()
}

/// Polls `/v1/status` (for up to 10 s) until the sink's entry satisfies `pred`.
async fn wait_status(
    gw: &TestGateway,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = sink_status(gw, id).await;
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sink {id} never {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the sink's start-up health check has an outcome.
async fn health_checked(gw: &TestGateway, id: &str) -> Value {
    wait_status(gw, id, "finished its health check", |s| {
        s["health_check"] == "passed" || s["health_check"] == "failed"
    })
    .await
}

async fn readyz(gw: &TestGateway) -> (u16, Value) {
    let r = reqwest::get(gw.admin("/readyz")).await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn dead_letters(gw: &TestGateway, sink: &str) -> Vec<Value> {
    let (status, body) = gw
        .admin_call(Method::GET, &format!("/v1/dlq?sink={sink}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["dead_letters"].as_array().unwrap().clone()
}

async fn sink_metric(gw: &TestGateway, name: &str, sink: &str, outcome: Option<&str>) -> f64 {
    let text = gw.metrics().await;
    match outcome {
        Some(o) => metric(&text, name, &[("sink", sink), ("outcome", o)]),
        None => metric(&text, name, &[("sink", sink)]),
    }
}

// ---------------------------------------------------------------------------------------------
// Small parsers the fakes need.

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` (a query string or an `application/x-www-form-urlencoded` body) decoded.
fn form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn query(c: &Captured) -> HashMap<String, String> {
    form(c.query.as_deref().unwrap_or(""))
}

/// 8-4-4-4-12 lowercase-or-uppercase hex.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `2025-01-01T00:00:00.123Z`: RFC 3339, UTC, milliseconds; returns unix ms.
fn rfc3339_ms(s: &str) -> i64 {
    assert!(
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.',
        "{s:?} is not RFC 3339 UTC with milliseconds and Z"
    );
    let t = OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s:?}: {e}"));
    siemgate::event::unix_ms(t)
}

fn user_agent_ok(c: &Captured) -> bool {
    c.header("user-agent")
        .is_some_and(|u| u == format!("siemgate/{}", env!("CARGO_PKG_VERSION")))
}

/// Whether an event went with its raw_data cut to fit, flagged as such.
fn raw_cut(ocsf: &Value) -> bool {
    let flag = &ocsf["unmapped"]["siemgate"];
    if flag["raw_data_truncated"] != true {
        assert!(flag.get("raw_data_length").is_none(), "{flag}");
        return false;
    }
    let kept = ocsf["raw_data"].as_str().map_or(0, str::len);
    let length = flag["raw_data_length"].as_u64().unwrap() as usize;
    assert!(kept < length, "{kept} of {length} bytes kept");
    true
}

fn uid_of(ocsf: &Value) -> String {
    ocsf["metadata"]["uid"]
        .as_str()
        .unwrap_or_else(|| panic!("no metadata.uid in {ocsf}"))
        .to_string()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn set(v: &[String]) -> HashSet<String> {
    v.iter().cloned().collect()
}
