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

use crate::fake::{Captured, FakeServer, Reply};
use crate::support::{metric, source, Options, TestGateway, Tls, T0};

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

// ---------------------------------------------------------------------------------------------
// Splunk HEC.

const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";
const HEC_CHANNEL: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const HEC_EVENT: &str = "/services/collector/event";
const HEC_ACK: &str = "/services/collector/ack";
const HEC_HEALTH: &str = "/services/collector/health";

fn splunk(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{HEC_TOKEN}\"\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
        fake.url("")
    )
}

/// A HEC answer: `{"text":..,"code":..}`.
fn hec(status: u16, code: u32, text: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": text, "code": code}).to_string())
}

fn hec_at(code: u32, text: &str, i: usize) -> Reply {
    Reply::status(400)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": text, "code": code, "invalid-event-number": i}).to_string())
}

fn hec_ok() -> Reply {
    hec(200, 0, "Success")
}

fn hec_healthy() -> Reply {
    hec(200, 17, "HEC is healthy")
}

fn hec_ack_id(id: u64) -> Reply {
    Reply::status(200)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": "Success", "code": 0, "ackId": id}).to_string())
}

/// The objects of a HEC `/event` body (JSON objects back to back); `Err(i)` when object `i`
/// does not parse.
fn hec_objects(body: &[u8]) -> Result<Vec<Value>, usize> {
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        match v {
            Ok(v) => out.push(v),
            Err(_) => return Err(out.len()),
        }
    }
    Ok(out)
}

/// A request HEC accepted for processing, by endpoint.
enum Hec {
    Health,
    Events(Vec<Value>),
    Ack(Vec<u64>),
}

/// What HEC checks before it takes a request, answered as HEC answers (codes from the
/// "Possible error codes" table).
fn hec_check(c: &Captured, token: &str) -> Result<Hec, Reply> {
    match c.header("authorization") {
        None => return Err(hec(401, 2, "Token is required")),
        Some(a) => match a.strip_prefix("Splunk ") {
            None => return Err(hec(401, 3, "Invalid authorization")),
            Some(t) if t != token => return Err(hec(403, 4, "Invalid token")),
            Some(_) => {}
        },
    }
    match (c.method.as_str(), c.path.as_str()) {
        ("GET", HEC_HEALTH) => Ok(Hec::Health),
        ("POST", HEC_EVENT) => {
            if c.body.is_empty() {
                return Err(hec(400, 5, "No data"));
            }
            let objs = hec_objects(&c.body).map_err(|i| hec_at(6, "Invalid data format", i))?;
            for (i, o) in objs.iter().enumerate() {
                if !o.is_object() {
                    return Err(hec_at(6, "Invalid data format", i));
                }
                match o.get("event") {
                    None | Some(Value::Null) => {
                        return Err(hec_at(12, "Event field is required", i))
                    }
                    Some(Value::String(s)) if s.is_empty() => {
                        return Err(hec_at(13, "Event field cannot be blank", i))
                    }
                    _ => {}
                }
                if let Some(f) = o.get("fields") {
                    let flat = f.as_object().is_some_and(|m| {
                        m.values().all(|v| {
                            v.is_string()
                                || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                        })
                    });
                    if !flat {
                        return Err(hec_at(15, "Error in handling indexed fields", i));
                    }
                }
            }
            Ok(Hec::Events(objs))
        }
        ("POST", HEC_ACK) => {
            if !query(c).contains_key("channel") && c.header("x-splunk-request-channel").is_none() {
                return Err(hec(400, 10, "Data channel is missing"));
            }
            let v: Value =
                serde_json::from_slice(&c.body).map_err(|_| hec(400, 6, "Invalid data format"))?;
            let ids = v["acks"]
                .as_array()
                .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| hec(400, 6, "Invalid data format"))?;
            Ok(Hec::Ack(ids))
        }
        _ => Err(hec(
            404,
            404,
            "The requested URL was not found on this server.",
        )),
    }
}

/// A HEC whose token is [`HEC_TOKEN`]; `on` answers what passes [`hec_check`].
async fn hec_fake(mut on: impl FnMut(&Captured, Hec) -> Reply + Send + 'static) -> FakeServer {
    FakeServer::start(move |c, _| match hec_check(c, HEC_TOKEN) {
        Ok(h) => on(c, h),
        Err(r) => r,
    })
    .await
}

fn is_hec_post(c: &Captured) -> bool {
    c.method == "POST" && c.path == HEC_EVENT
}

fn hec_events(c: &Captured) -> Vec<Value> {
    hec_objects(&c.body).unwrap_or_else(|i| {
        panic!(
            "object {i} of the HEC body does not parse: {}",
            String::from_utf8_lossy(&c.body)
        )
    })
}

fn hec_request_uids(c: &Captured) -> Vec<String> {
    let objs = hec_events(c);
    crate::ocsf_schema::assert_conforms("HEC events", objs.iter().map(|o| &o["event"]));
    objs.iter().map(|o| uid_of(&o["event"])).collect()
}

/// The uids of every event in a 2xx-answered `/event` POST.
fn hec_uids(reqs: &[Captured]) -> Vec<String> {
    reqs.iter()
        .filter(|c| is_hec_post(c) && c.delivered())
        .flat_map(hec_request_uids)
        .collect()
}

/// The objects follow each other with nothing in between: `}{`, no newline, no trailing bytes.
fn assert_back_to_back(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(!body.contains(&b'\n'), "a newline in the HEC body: {text}");
    assert_eq!(body.first(), Some(&b'{'), "{text}");
    let mut it = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let mut n = 0;
    while let Some(v) = it.next() {
        v.unwrap();
        n += 1;
        let end = it.byte_offset();
        assert!(
            end == body.len() || body[end] == b'{',
            "object {n} is followed by {:?}, not the next object: {text}",
            body[end] as char
        );
    }
    if n > 1 {
        assert!(text.contains("}{"), "{text}");
    }
}

#[tokio::test]
async fn splunk_hec_sends_back_to_back_envelopes_with_token_channel_metadata_and_gzip() {
    let fake = hec_fake(|_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) => hec_ok(),
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await;
    let gw = start(
        "",
        gh("hec-src", &["hec"]),
        splunk(
            "hec",
            &fake,
            // The three events go in one batch, sent as soon as the third is in.
            "batch = { max_events = 3, timeout = \"5s\" }",
            &format!(
                "index = \"security\"\nsource = \"gh-webhooks\"\nsourcetype = \"siemgate:ocsf\"\nhost = \"gw-1\"\nchannel = \"{HEC_CHANNEL}\"\nheaders = {{ \"X-Tenant\" = \"acme\" }}"
            ),
        ),
    )
    .await;
    let s = health_checked(&gw, "hec").await;
    assert_eq!(s["health_check"], "passed", "{s}");
    assert_eq!(s["type"], "splunk_hec");
    assert_eq!(s["healthy"], true, "{s}");
    let health: Vec<Captured> = fake
        .requests()
        .into_iter()
        .filter(|c| c.path == HEC_HEALTH)
        .collect();
    assert!(!health.is_empty());
    assert_eq!(health[0].method, "GET");
    assert_eq!(
        health[0].header("authorization"),
        Some(format!("Splunk {HEC_TOKEN}").as_str())
    );
    let (code, ready) = readyz(&gw).await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["sinks"]["hec"], "healthy", "{ready}");

    // Receipt times with milliseconds: .123, .500 and a whole second.
    gw.clock.advance(Duration::from_millis(123));
    accept(&gw, "hec-src", "hec-0").await;
    gw.clock.advance(Duration::from_millis(377));
    accept(&gw, "hec-src", "hec-1").await;
    gw.clock.advance(Duration::from_millis(500));
    accept(&gw, "hec-src", "hec-2").await;
    let reqs = fake
        .wait_until("three delivered events", |r| hec_uids(r).len() >= 3)
        .await;
    assert_eq!(sorted(hec_uids(&reqs)), ["hec-0", "hec-1", "hec-2"]);
    let posts: Vec<&Captured> = reqs.iter().filter(|c| is_hec_post(c)).collect();
    assert_eq!(posts.len(), 1, "one batch of three, answered 200 at once");
    let c = posts[0];
    assert_eq!(
        c.header("authorization"),
        Some(format!("Splunk {HEC_TOKEN}").as_str())
    );
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("content-encoding"), Some("gzip"));
    assert!(c.wire_len < c.body.len(), "the body was not compressed");
    assert_eq!(c.header("x-splunk-request-channel"), Some(HEC_CHANNEL));
    assert_eq!(c.header("x-tenant"), Some("acme"));
    assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
    assert_back_to_back(&c.body);
    let objs = hec_events(c);
    assert_eq!(objs.len(), 3);
    let want_ms = [T0 * 1000 + 123, T0 * 1000 + 500, T0 * 1000 + 1000];
    let want_text = ["1700000000.123", "1700000000.500", "1700000001.000"];
    let raws: Vec<HashMap<String, Box<RawValue>>> = serde_json::Deserializer::from_slice(&c.body)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    for (i, o) in objs.iter().enumerate() {
        let ev = &o["event"];
        assert!(ev.is_object(), "event is the OCSF object: {o}");
        let uid = uid_of(ev);
        assert_eq!(uid, format!("hec-{i}"));
        let ocsf_ms = ev["time"].as_i64().unwrap();
        assert_eq!(ocsf_ms, want_ms[i]);
        let t = o["time"]
            .as_f64()
            .unwrap_or_else(|| panic!("time is not a number: {o}"));
        assert_eq!((t * 1000.0).round() as i64, ocsf_ms, "{o}");
        assert_eq!(
            raws[i]["time"].get(),
            want_text[i],
            "spec: epoch seconds with exactly 3 decimals"
        );
        assert_eq!(o["index"], "security");
        assert_eq!(o["sourcetype"], "siemgate:ocsf");
        assert_eq!(o["source"], "gh-webhooks");
        assert_eq!(o["host"], "gw-1");
        let f = &o["fields"];
        assert_eq!(f["event_id"], uid.as_str(), "{o}");
        assert_eq!(f["siemgate_source"], "hec-src", "{o}");
        assert_eq!(f["vendor"], "github", "{o}");
        assert_eq!(f["severity"], ev["severity"], "{o}");
        assert_eq!(ev["unmapped"]["siemgate"]["source"], "hec-src");
    }
    gw.delivered().await;
    let s = sink_status(&gw, "hec").await;
    assert_eq!(s["queued_events"], 0);
    assert_eq!(s["dead_letters"], 0);
}

#[tokio::test]
async fn splunk_hec_retries_busy_and_internal_errors_until_delivered() {
    let mut posts = 0;
    let fake = hec_fake(move |_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) => {
            posts += 1;
            match posts {
                1 | 3 => hec(503, 9, "Server is busy"),
                2 => hec(500, 8, "Internal server error"),
                _ => hec_ok(),
            }
        }
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await;
    let gw = start(
        "",
        gh("busy-src", &["busy"]),
        // No channel configured: a random UUID v4, the same on every request.
        splunk("busy", &fake, QUICK, ""),
    )
    .await;
    for i in 0..3 {
        accept(&gw, "busy-src", &format!("busy-{i}")).await;
    }
    let reqs = fake
        .wait_until("three delivered events", |r| hec_uids(r).len() >= 3)
        .await;
    gw.delivered().await;
    let reqs_now = fake.requests();
    assert_eq!(
        sorted(hec_uids(&reqs_now)),
        ["busy-0", "busy-1", "busy-2"],
        "each event delivered exactly once"
    );
    let posts: Vec<&Captured> = reqs.iter().filter(|c| is_hec_post(c)).collect();
    assert!(posts.len() >= 4, "{} POSTs", posts.len());
    let channel = posts[0]
        .header("x-splunk-request-channel")
        .expect("X-Splunk-Request-Channel is always sent")
        .to_string();
    assert!(is_uuid(&channel), "{channel}");
    assert_eq!(&channel[14..15], "4", "a UUID v4: {channel}");
    for c in &posts {
        assert_eq!(c.header("x-splunk-request-channel"), Some(channel.as_str()));
    }
    assert!(sink_metric(&gw, "siemgate_sink_events_total", "busy", Some("retried")).await > 0.0);
    assert_eq!(
        sink_metric(&gw, "siemgate_sink_events_total", "busy", Some("delivered")).await,
        3.0
    );
    let s = sink_status(&gw, "busy").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
    assert!(dead_letters(&gw, "busy").await.is_empty());
}

/// A HEC with indexer acknowledgement: ackIds count per channel; `acked(id)` says whether an
/// id is indexed when polled.
async fn hec_ack_fake(acked: impl Fn(u64) -> bool + Send + 'static) -> FakeServer {
    let mut next: HashMap<String, u64> = HashMap::new();
    hec_fake(move |c, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) => match c.header("x-splunk-request-channel") {
            None => hec(400, 10, "Data channel is missing"),
            Some(ch) if ch != HEC_CHANNEL => hec(400, 11, "Invalid data channel"),
            Some(ch) => {
                let n = next.entry(ch.to_string()).or_insert(0);
                let id = *n;
                *n += 1;
                hec_ack_id(id)
            }
        },
        Hec::Ack(ids) => {
            if query(c).get("channel").map(String::as_str) != Some(HEC_CHANNEL) {
                return hec(400, 11, "Invalid data channel");
            }
            let acks: serde_json::Map<String, Value> = ids
                .iter()
                .map(|id| (id.to_string(), Value::Bool(acked(*id))))
                .collect();
            Reply::status(200)
                .with_header("content-type", "application/json; charset=UTF-8")
                .with_body(&json!({ "acks": acks }).to_string())
        }
    })
    .await
}

fn is_ack_poll(c: &Captured) -> bool {
    c.method == "POST" && c.path == HEC_ACK
}

fn ack_ids(c: &Captured) -> Vec<u64> {
    c.json()["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn check_ack_poll(c: &Captured) {
    assert_eq!(
        c.header("authorization"),
        Some(format!("Splunk {HEC_TOKEN}").as_str())
    );
    assert_eq!(c.header("x-splunk-request-channel"), Some(HEC_CHANNEL));
    assert!(c
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
}

#[tokio::test]
async fn splunk_hec_with_acks_is_done_only_when_the_ack_says_true() {
    let indexed = Arc::new(AtomicBool::new(false));
    let flag = indexed.clone();
    let fake = hec_ack_fake(move |_| flag.load(Ordering::SeqCst)).await;
    let gw = start(
        "",
        gh("ack-src", &["ack"]),
        splunk(
            "ack",
            &fake,
            "batch = { max_events = 3, timeout = \"5s\" }",
            &format!("channel = \"{HEC_CHANNEL}\"\nuse_ack = true"),
        ),
    )
    .await;
    for i in 0..3 {
        accept(&gw, "ack-src", &format!("ack-{i}")).await;
    }
    // Two polls answered false: the batch is not done, and not sent again.
    let reqs = fake
        .wait_until("two ack polls", |r| {
            r.iter().filter(|c| is_ack_poll(c)).count() >= 2
        })
        .await;
    let s = sink_status(&gw, "ack").await;
    assert_eq!(s["queued_events"], 3, "done before the ack said true: {s}");
    indexed.store(true, Ordering::SeqCst);
    gw.delivered().await;
    let reqs_now = fake.requests();
    let posts: Vec<&Captured> = reqs_now.iter().filter(|c| is_hec_post(c)).collect();
    assert_eq!(posts.len(), 1, "POSTed once; an ack false is not a failure");
    assert_eq!(
        sorted(hec_request_uids(posts[0])),
        ["ack-0", "ack-1", "ack-2"]
    );
    let polls: Vec<&Captured> = reqs_now.iter().filter(|c| is_ack_poll(c)).collect();
    assert!(polls.len() >= 3, "{} polls", polls.len());
    for p in &polls {
        check_ack_poll(p);
        assert_eq!(ack_ids(p), [0u64], "polls the ackId the POST got");
    }
    // The first poll comes after about 100 ms, not at once.
    let first = polls[0].at - posts[0].at;
    assert!(
        first >= Duration::from_millis(50),
        "first poll after {first:?}"
    );
    assert!(reqs.iter().all(|c| !is_hec_post(c) || c.delivered()));
    let s = sink_status(&gw, "ack").await;
    assert_eq!(s["queued_events"], 0);
    assert_eq!(s["dead_letters"], 0);
}

#[tokio::test]
async fn splunk_hec_resends_a_batch_whose_ack_never_comes_within_ack_timeout() {
    // ackId 0 is never indexed; ackId 1 is.
    let fake = hec_ack_fake(|id| id >= 1).await;
    let gw = start(
        "",
        gh("ackto-src", &["ackto"]),
        splunk(
            "ackto",
            &fake,
            "batch = { max_events = 2, timeout = \"5s\" }",
            &format!("channel = \"{HEC_CHANNEL}\"\nuse_ack = true\nack_timeout = \"300ms\""),
        ),
    )
    .await;
    accept(&gw, "ackto-src", "ackto-0").await;
    accept(&gw, "ackto-src", "ackto-1").await;
    let reqs = fake
        .wait_until("ackId 1 polled", |r| {
            r.iter()
                .any(|c| is_ack_poll(c) && c.answered == 200 && ack_ids(c).contains(&1))
        })
        .await;
    gw.delivered().await;
    let all = fake.requests();
    let posts: Vec<&Captured> = all.iter().filter(|c| is_hec_post(c)).collect();
    assert_eq!(
        posts.len(),
        2,
        "sent once, and once more after the ack timeout"
    );
    // At least once: the same events arrived twice.
    assert_eq!(sorted(hec_request_uids(posts[0])), ["ackto-0", "ackto-1"]);
    assert_eq!(hec_request_uids(posts[0]), hec_request_uids(posts[1]));
    let resent_after = posts[1].at - posts[0].at;
    assert!(
        resent_after >= Duration::from_millis(250),
        "resent after {resent_after:?}, before ack_timeout"
    );
    for p in all.iter().filter(|c| is_ack_poll(c)) {
        check_ack_poll(p);
    }
    assert!(reqs
        .iter()
        .filter(|c| is_ack_poll(c))
        .any(|c| ack_ids(c) == [0u64]));
    let s = sink_status(&gw, "ackto").await;
    assert_eq!(s["queued_events"], 0);
    assert_eq!(s["dead_letters"], 0);
}

#[tokio::test]
async fn splunk_hec_failing_health_check_shows_unhealthy_but_stays_ready() {
    let fake = hec_fake(|_, h| match h {
        Hec::Health => hec(503, 18, "HEC is unhealthy, queues are full"),
        Hec::Events(_) => hec_ok(),
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await;
    let gw = start("", gh("hc-src", &["hc"]), splunk("hc", &fake, QUICK, "")).await;
    let s = health_checked(&gw, "hc").await;
    assert_eq!(s["health_check"], "failed", "{s}");
    assert_eq!(s["healthy"], false, "{s}");
    let err = s["last_error"].as_str().unwrap_or_default();
    assert!(err.starts_with("health check: "), "{s}");
    let (code, ready) = readyz(&gw).await;
    assert_eq!(code, 200, "readiness does not depend on sinks: {ready}");
    assert_eq!(ready["sinks"]["hc"], "unhealthy", "{ready}");
}

#[tokio::test]
async fn splunk_hec_partial_batch_dead_letters_the_invalid_event_and_resends_only_the_rest() {
    let mut posts = 0;
    let fake = hec_fake(move |_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(objs) => {
            posts += 1;
            if posts == 1 && objs.len() == 3 {
                hec_at(6, "Invalid data format", 1)
            } else {
                hec_ok()
            }
        }
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await;
    let gw = start(
        "",
        gh("part-src", &["part"]),
        splunk(
            "part",
            &fake,
            "batch = { max_events = 3, timeout = \"5s\" }",
            "",
        ),
    )
    .await;
    for i in 0..3 {
        accept(&gw, "part-src", &format!("part-{i}")).await;
    }
    fake.wait_until("two event POSTs", |r| {
        r.iter().filter(|c| is_hec_post(c)).count() >= 2
    })
    .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let posts: Vec<&Captured> = reqs.iter().filter(|c| is_hec_post(c)).collect();
    let first = hec_request_uids(posts[0]);
    assert_eq!(first.len(), 3, "the three events were one batch");
    assert_eq!(posts[0].answered, 400);
    assert_eq!(posts.len(), 2, "one resend: {posts:?}");
    assert_eq!(
        hec_request_uids(posts[1]),
        [first[2].clone()],
        "only the events after the invalid one are sent again"
    );
    let letters = dead_letters(&gw, "part").await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event"]["metadata"]["uid"], first[1].as_str());
    assert!(!letters[0]["error"].as_str().unwrap_or_default().is_empty());
    assert_eq!(
        sink_metric(
            &gw,
            "siemgate_sink_events_total",
            "part",
            Some("dead_lettered")
        )
        .await,
        1.0
    );
    assert_eq!(
        sink_metric(&gw, "siemgate_sink_events_total", "part", Some("delivered")).await,
        2.0,
        "events before the invalid one count as delivered"
    );
    let s = sink_status(&gw, "part").await;
    assert_eq!(s["queued_events"], 0);
    assert_eq!(s["dead_letters"], 1);
}

/// A HEC that takes events sent with the right token (and answers 403 code 4 to others).
async fn hec_events_ok() -> FakeServer {
    hec_fake(|_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) => hec_ok(),
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await
}

/// Accepts events `tok-0` and `tok-1` from `tok-src`, then waits until the HEC has refused
/// the sink's token three times.
async fn accept_refused(gw: &TestGateway, fake: &FakeServer) {
    accept(gw, "tok-src", "tok-0").await;
    accept(gw, "tok-src", "tok-1").await;
    fake.wait_until("refused POSTs", |r| {
        r.iter()
            .filter(|c| is_hec_post(c) && c.answered == 403)
            .count()
            >= 3
    })
    .await;
}

#[tokio::test]
async fn splunk_hec_refused_token_keeps_events_until_the_config_is_fixed() {
    let fake = hec_events_ok().await;
    let sinks =
        splunk("tok", &fake, QUICK, "").replace(HEC_TOKEN, "99999999-0000-0000-0000-000000000000");
    let gw = start("", gh("tok-src", &["tok"]), sinks).await;
    accept_refused(&gw, &fake).await;
    let s = wait_status(&gw, "tok", "reported the 403", |s| {
        s["last_error"].as_str().is_some_and(|e| e.contains("403"))
    })
    .await;
    assert_eq!(s["healthy"], false, "{s}");
    assert_eq!(s["queued_events"], 2, "{s}");
    assert_eq!(s["dead_letters"], 0, "{s}");
    assert!(dead_letters(&gw, "tok").await.is_empty());
    assert!(hec_uids(&fake.requests()).is_empty());

    let gw = gw
        .restart_with(|c| {
            let sink = c.sinks.iter_mut().find(|s| s.id == "tok").unwrap();
            match &mut sink.kind {
                siemgate::config::SinkKind::SplunkHec(hec) => {
                    hec.token = siemgate::config::Secret::new(HEC_TOKEN)
                }
                other => panic!("not a splunk_hec sink: {}", other.type_name()),
            }
        })
        .await;
    gw.delivered().await;
    let got = hec_uids(&fake.requests());
    assert_eq!(sorted(got), ["tok-0", "tok-1"]);
    let s = sink_status(&gw, "tok").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
    assert!(dead_letters(&gw, "tok").await.is_empty());
}

#[tokio::test]
async fn splunk_hec_token_fixed_by_a_reload_delivers_the_kept_events_with_it() {
    let fake = hec_events_ok().await;
    let wrong = "99999999-0000-0000-0000-000000000000";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("siemgate.toml");
    let text = |token: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\ndrain_timeout = \"2s\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token\"\n\
             [spool]\ndir = \"spool\"\nflush_timeout = \"200ms\"\n{}\n{}",
            gh("tok-src", &["tok"]),
            splunk("tok", &fake, QUICK, "").replace(HEC_TOKEN, token)
        )
    };
    std::fs::write(&cfg, text(wrong)).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, std::time::Duration::ZERO).await;
    accept_refused(&gw, &fake).await;
    assert!(hec_uids(&fake.requests()).is_empty());

    // The operator fixes the token and reloads: no restart.
    std::fs::write(&cfg, text(HEC_TOKEN)).unwrap();
    let (status, answer) = gw.admin_call(Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["notes"]
            .to_string()
            .contains("sinks.tok changed: applied"),
        "{answer}"
    );
    fake.wait_until("the kept events with the new token", |r| {
        sorted(hec_uids(r)) == ["tok-0", "tok-1"]
    })
    .await;
    accept(&gw, "tok-src", "tok-2").await;
    let reqs = fake
        .wait_until("the next event", |r| hec_uids(r).len() == 3)
        .await;
    assert_eq!(sorted(hec_uids(&reqs)), ["tok-0", "tok-1", "tok-2"]);
    let s = wait_status(&gw, "tok", "healthy, nothing queued", |s| {
        s["healthy"] == true && s["queued_events"] == 0
    })
    .await;
    assert_eq!(s["dead_letters"], 0, "{s}");
    // A second reload with nothing changed swaps nothing.
    let (_, answer) = gw.admin_call(Method::POST, "/v1/reload").await;
    assert_eq!(answer["notes"], serde_json::json!([]), "{answer}");
}

/// A reload that swaps a sink for one of another kind while its events wait: they are fitted
/// again for the new sink, from the whole events. Cut to the Data Collector's 32,000 bytes for
/// the old sink, a 50 KB event reaches Splunk (1 MB per event) whole.
#[tokio::test]
async fn a_sink_swapped_for_another_kind_by_a_reload_gets_the_waiting_events_fitted_for_it() {
    let refusing = FakeServer::start(|_, _| Reply::status(403)).await;
    let fake = hec_events_ok().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("siemgate.toml");
    let text = |sink: String| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\ndrain_timeout = \"2s\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token\"\n\
             [spool]\ndir = \"spool\"\nflush_timeout = \"200ms\"\n{}\n{sink}",
            gh("sw-src", &["sw"]),
        )
    };
    let dc = format!(
        "[[sinks]]\nid = \"sw\"\ntype = \"sentinel_data_collector\"\nworkspace_id = \"{WORKSPACE}\"\nshared_key = \"{WORKSPACE_KEY}\"\nlog_type = \"WebhookEvents\"\nurl = \"{}\"\nallow_http = true\n{FAST}\n{QUICK}\n",
        refusing.url("")
    );
    std::fs::write(&cfg, text(dc)).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, std::time::Duration::ZERO).await;
    accept_padded(&gw, "sw-src", "sw-big", 50_000).await;
    refusing
        .wait_until("refused posts", |r| {
            r.iter().filter(|c| c.answered == 403).count() >= 2
        })
        .await;

    std::fs::write(&cfg, text(splunk("sw", &fake, QUICK, ""))).unwrap();
    let (status, answer) = gw.admin_call(Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    let reqs = fake
        .wait_until("the kept event", |r| hec_uids(r) == ["sw-big"])
        .await;
    let events: Vec<Value> = reqs
        .iter()
        .filter(|c| is_hec_post(c))
        .flat_map(hec_events)
        .collect();
    assert_eq!(events.len(), 1);
    assert!(
        !raw_cut(&events[0]["event"]),
        "sent to Splunk cut for the old sink"
    );
    assert!(events[0]["event"]["raw_data"].as_str().unwrap().len() > 50_000);
    let s = wait_status(&gw, "sw", "nothing queued", |s| s["queued_events"] == 0).await;
    assert_eq!(s["dead_letters"], 0, "{s}");
}

#[tokio::test]
async fn sinks_trust_an_extra_ca_from_tls_ca_file_and_nothing_else() {
    let pki = crate::support::pki();
    let fake = FakeServer::start_tls(&pki, |c, _| match hec_check(c, HEC_TOKEN) {
        Ok(Hec::Events(_)) => hec_ok(),
        Ok(_) => hec_healthy(),
        Err(r) => r,
    })
    .await;
    assert!(fake.url("").starts_with("https://127.0.0.1:"));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("siem-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // No allow_http: the URL is https, and the private CA is trusted only through tls.ca_file.
    let sink =
        |id: &str, tls: &str| splunk(id, &fake, QUICK, tls).replace("allow_http = true\n", "");

    let untrusting = start("", gh("ut-src", &["ut"]), sink("ut", "")).await;
    accept(&untrusting, "ut-src", "ut-0").await;
    let s = wait_status(&untrusting, "ut", "failed on the unknown CA", |s| {
        s["healthy"] == false && s["health_check"] == "failed"
    })
    .await;
    let error = s["last_error"].as_str().unwrap().to_ascii_lowercase();
    assert!(error.contains("certificate"), "{s}");
    assert_eq!(s["queued_events"], 1, "kept, not dropped: {s}");
    assert!(
        fake.requests().is_empty(),
        "no request passed the handshake"
    );
    untrusting.handle.abort().await;

    let trusting = start(
        "",
        gh("tr-src", &["tr"]),
        sink(
            "tr",
            &format!("tls = {{ ca_file = {:?} }}", ca.display().to_string()),
        ),
    )
    .await;
    accept(&trusting, "tr-src", "tr-0").await;
    trusting.delivered().await;
    assert_eq!(hec_uids(&fake.requests()), ["tr-0"]);
    assert_eq!(
        health_checked(&trusting, "tr").await["health_check"],
        "passed"
    );
}

// ---------------------------------------------------------------------------------------------
// Microsoft Sentinel: Entra ID client credentials + the Logs Ingestion API.

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT_ID: &str = "0b3c6ac9-7e5f-4d2a-9c1e-3f4a5b6c7d8e";
const CLIENT_SECRET: &str = "Qx8~client.secret_value-1";
const DCR: &str = "dcr-00000000000000000000000000000000";
const STREAM: &str = "Custom-WebhookEvents_CL";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TokenMode {
    Issue,
    Down,
    InvalidClient,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum IngestMode {
    Up,
    Down,
    /// 413 for any body with more than one record.
    OneRecordOnly,
}

struct AzState {
    token: TokenMode,
    /// Tokens `tok-1` .. `tok-<issued>` were issued; the ingestion API takes those above
    /// `revoked` (an unexpired token is good, whichever it is).
    issued: u32,
    revoked: u32,
    ingest: IngestMode,
    /// Federated tokens (workload identity) Entra ID takes as client assertions.
    assertions: Vec<String>,
}

#[derive(Clone)]
struct Az(Arc<Mutex<AzState>>);

impl Az {
    fn new() -> Az {
        Az(Arc::new(Mutex::new(AzState {
            token: TokenMode::Issue,
            issued: 0,
            revoked: 0,
            ingest: IngestMode::Up,
            assertions: Vec::new(),
        })))
    }

    fn trust_assertion(&self, a: &str) {
        self.0.lock().unwrap().assertions.push(a.to_string());
    }

    fn token(&self, m: TokenMode) {
        self.0.lock().unwrap().token = m;
    }

    fn ingest(&self, m: IngestMode) {
        self.0.lock().unwrap().ingest = m;
    }

    /// The ingestion API stops taking every token issued so far.
    fn revoke_tokens(&self) {
        let mut st = self.0.lock().unwrap();
        st.revoked = st.issued;
    }
}

fn token_path() -> String {
    format!("/{TENANT}/oauth2/v2.0/token")
}

fn ingest_path() -> String {
    format!("/dataCollectionRules/{DCR}/streams/{STREAM}")
}

fn entra_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(&json!({"error": error, "error_description": description}).to_string())
}

fn az_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_header("x-ms-error-code", code)
        .with_body(&json!({"error": {"code": code, "message": message}}).to_string())
}

/// Entra ID's token endpoint and the Logs Ingestion API on one server.
fn azure_reply(az: &Az, c: &Captured) -> Reply {
    let mut st = az.0.lock().unwrap();
    if c.path == token_path() {
        if c.method != "POST" {
            return Reply::status(405);
        }
        if !c
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        {
            return entra_error(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.");
        }
        let f = form(&String::from_utf8_lossy(&c.body));
        let get = |k: &str| f.get(k).map(String::as_str);
        if get("grant_type") != Some("client_credentials") {
            return entra_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        if get("client_id") != Some(CLIENT_ID) {
            return entra_error(
                400,
                "unauthorized_client",
                "AADSTS700016: Application not found in the directory.",
            );
        }
        let assertion_ok = get("client_assertion_type")
            == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            && get("client_assertion").is_some_and(|a| st.assertions.iter().any(|t| t == a));
        if get("client_secret").is_some() && get("client_assertion").is_some() {
            return entra_error(
                400,
                "invalid_request",
                "AADSTS50027: Only one client credential may be used.",
            );
        }
        if get("client_secret") != Some(CLIENT_SECRET) && !assertion_ok {
            return entra_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        if get("scope") != Some("https://monitor.azure.com/.default") {
            return entra_error(
                400,
                "invalid_scope",
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            );
        }
        let mode = st.token;
        return match mode {
            TokenMode::Issue => {
                st.issued += 1;
                Reply::status(200)
                    .with_header("content-type", "application/json; charset=utf-8")
                    .with_body(
                        &json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                "access_token": format!("tok-{}", st.issued)})
                        .to_string(),
                    )
            }
            TokenMode::Down => entra_error(
                503,
                "temporarily_unavailable",
                "AADSTS90033: A transient error has occurred.",
            ),
            TokenMode::InvalidClient => entra_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            ),
        };
    }
    if !c.path.starts_with("/dataCollectionRules/") {
        return Reply::status(404);
    }
    if c.method != "POST" {
        return Reply::status(405);
    }
    let good = c
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer tok-"))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n > st.revoked && n <= st.issued);
    if !good {
        return az_error(
            401,
            "InvalidToken",
            "The authentication token provided is invalid or expired.",
        );
    }
    if c.path != ingest_path() {
        return az_error(
            404,
            "InvalidStream",
            "The stream or data collection rule does not exist.",
        );
    }
    if query(c).get("api-version").map(String::as_str) != Some("2023-01-01") {
        return az_error(
            400,
            "InvalidApiVersion",
            "The api-version is missing or not supported.",
        );
    }
    if c.header("content-type") != Some("application/json") {
        return az_error(
            415,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    if c.wire_len > 1_048_576 || c.body.len() > 1_048_576 {
        return az_error(
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 1048576 bytes (1 MB).",
        );
    }
    let records = match serde_json::from_slice::<Value>(&c.body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        _ => {
            return az_error(
                400,
                "InvalidContent",
                "The body is not a JSON array of objects.",
            )
        }
    };
    for r in &records {
        let ok = r["TimeGenerated"]
            .as_str()
            .is_some_and(|t| OffsetDateTime::parse(t, &Rfc3339).is_ok());
        if !ok {
            return az_error(400, "InvalidContent", "TimeGenerated is not a datetime.");
        }
    }
    let mode = st.ingest;
    match mode {
        IngestMode::Up => Reply::status(204),
        IngestMode::Down => az_error(503, "ServiceUnavailable", "The service is unavailable."),
        IngestMode::OneRecordOnly if records.len() > 1 => az_error(
            413,
            "ContentLengthLimitExceeded",
            "Maximum allowed content length: 1048576 bytes (1 MB).",
        ),
        IngestMode::OneRecordOnly => Reply::status(204),
    }
}

async fn azure_fake(az: &Az) -> FakeServer {
    let az = az.clone();
    FakeServer::start(move |c, _| azure_reply(&az, c)).await
}

fn sentinel(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"sentinel\"\nendpoint = \"{u}\"\nauthority = \"{u}\"\ndcr_id = \"{DCR}\"\nstream = \"{STREAM}\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
        u = fake.url("")
    )
}

fn is_token_request(c: &Captured) -> bool {
    c.path == token_path()
}

fn is_ingest(c: &Captured) -> bool {
    c.path.starts_with("/dataCollectionRules/")
}

fn az_records(c: &Captured) -> Vec<Value> {
    match c.json() {
        Value::Array(a) => {
            crate::ocsf_schema::assert_conforms("Sentinel records", a.iter().map(|r| &r["Event"]));
            a
        }
        other => panic!("expected a JSON array of records, got {other}"),
    }
}

fn az_request_uids(c: &Captured) -> Vec<String> {
    az_records(c)
        .iter()
        .map(|r| r["EventId"].as_str().unwrap().to_string())
        .collect()
}

/// The EventIds of every record in a 2xx-answered ingestion request.
fn az_uids(reqs: &[Captured]) -> Vec<String> {
    reqs.iter()
        .filter(|c| is_ingest(c) && c.delivered())
        .flat_map(az_request_uids)
        .collect()
}

fn check_az_request(c: &Captured) {
    assert_eq!(c.method, "POST");
    assert_eq!(c.path, ingest_path());
    assert_eq!(
        query(c).get("api-version").map(String::as_str),
        Some("2023-01-01")
    );
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("content-encoding"), Some("gzip"));
    assert!(
        c.header("x-ms-client-request-id").is_some_and(is_uuid),
        "{:?}",
        c.header("x-ms-client-request-id")
    );
    assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
}

fn check_az_record(r: &Value, src: &str) {
    let e = &r["Event"];
    assert!(e.is_object(), "Event is the OCSF object: {r}");
    assert_eq!(r["EventId"], uid_of(e).as_str(), "{r}");
    assert_eq!(r["Source"], src, "{r}");
    assert_eq!(r["Vendor"], "github", "{r}");
    assert_eq!(r["ClassUid"], e["class_uid"], "{r}");
    assert_eq!(r["ClassName"], e["class_name"], "{r}");
    assert_eq!(r["SeverityId"], e["severity_id"], "{r}");
    assert_eq!(r["Severity"], e["severity"], "{r}");
    assert_eq!(r["Message"], e["message"], "{r}");
    let t = rfc3339_ms(r["TimeGenerated"].as_str().unwrap());
    assert_eq!(t, e["time"].as_i64().unwrap(), "{r}");
}

#[tokio::test]
async fn sentinel_fetches_one_token_and_posts_gzipped_record_arrays() {
    let az = Az::new();
    let fake = azure_fake(&az).await;
    let gw = start("", gh("az-src", &["az"]), sentinel("az", &fake, QUICK, "")).await;
    let s = health_checked(&gw, "az").await;
    assert_eq!(s["health_check"], "passed", "{s}");
    assert_eq!(s["type"], "sentinel");
    gw.clock.advance(Duration::from_millis(123));
    // Three batches, one after the other.
    for i in 0..3 {
        let id = format!("az-{i}");
        accept(&gw, "az-src", &id).await;
        fake.wait_until(&format!("{id} delivered"), |r| az_uids(r).contains(&id))
            .await;
        gw.clock.advance(Duration::from_millis(250));
    }
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(az_uids(&reqs)), ["az-0", "az-1", "az-2"]);
    let tokens: Vec<&Captured> = reqs.iter().filter(|c| is_token_request(c)).collect();
    assert_eq!(tokens.len(), 1, "the token is cached across batches");
    assert!(tokens[0].delivered());
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| is_ingest(c)).collect();
    assert_eq!(
        ingests.len(),
        3,
        "every ingestion request was answered 204 at once"
    );
    let mut ids = HashSet::new();
    for c in &ingests {
        assert_eq!(c.answered, 204);
        assert_eq!(c.header("authorization"), Some("Bearer tok-1"));
        check_az_request(c);
        ids.insert(c.header("x-ms-client-request-id").unwrap().to_string());
        for r in az_records(c) {
            check_az_record(&r, "az-src");
            check_against_the_shipped_table(&r);
        }
    }
    assert_eq!(ids.len(), 3, "a new x-ms-client-request-id per request");
    let s = sink_status(&gw, "az").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
}

/// A record has exactly the columns of the table and DCR stream users create from
/// `deploy/sentinel/`, each with a JSON value of the column's type: a column the DCR does not
/// declare would be dropped by Azure without an error.
fn check_against_the_shipped_table(record: &Value) {
    let read = |f: &str| -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/sentinel")
            .join(f);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let table = read("table.json");
    let dcr = read("dcr.json");
    let stream = dcr["resources"][0]["properties"]["streamDeclarations"]["Custom-SiemGate"]
        ["columns"]
        .clone();
    for columns in [&table["properties"]["schema"]["columns"], &stream] {
        let columns = columns.as_array().expect("a column list");
        let mut names: Vec<&str> = columns
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let mut keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort();
        keys.sort();
        assert_eq!(keys, names, "the record's fields are the shipped columns");
        for c in columns {
            let v = &record[c["name"].as_str().unwrap()];
            let ok = match c["type"].as_str().unwrap() {
                "string" => v.is_string(),
                "int" | "long" => v.is_i64() || v.is_u64(),
                "datetime" => v.as_str().is_some_and(|s| rfc3339_ms(s) > 0),
                "dynamic" => v.is_object(),
                other => panic!("unexpected column type {other}"),
            };
            assert!(ok, "column {c} holds {v}");
        }
    }
}

#[tokio::test]
async fn sentinel_signs_in_with_a_rotated_workload_identity_token_instead_of_a_secret() {
    let az = Az::new();
    az.trust_assertion("federated-token-1");
    let fake = azure_fake(&az).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-token-1\n").unwrap();
    let sink = sentinel("wi", &fake, QUICK, "").replace(
        &format!("client_secret = \"{CLIENT_SECRET}\"\n"),
        &format!(
            "client_assertion_file = {:?}\n",
            token_file.display().to_string()
        ),
    );
    let gw = start("", gh("wi-src", &["wi"]), sink).await;
    accept(&gw, "wi-src", "wi-0").await;
    gw.delivered().await;
    // The kubelet rotates the projected token; the next token request reads the new one.
    std::fs::write(&token_file, "federated-token-2").unwrap();
    az.trust_assertion("federated-token-2");
    az.revoke_tokens();
    accept(&gw, "wi-src", "wi-1").await;
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(az_uids(&reqs)), ["wi-0", "wi-1"]);
    let assertions: Vec<String> = reqs
        .iter()
        .filter(|c| is_token_request(c) && c.answered == 200)
        .map(|c| {
            let f = form(&String::from_utf8_lossy(&c.body));
            assert!(!f.contains_key("client_secret"), "{f:?}");
            f["client_assertion"].clone()
        })
        .collect();
    assert_eq!(
        assertions.last().map(String::as_str),
        Some("federated-token-2"),
        "{assertions:?}"
    );
    assert_eq!(assertions[0], "federated-token-1");
}

#[tokio::test]
async fn sentinel_keeps_each_call_within_one_million_bytes_and_cuts_the_raw_data_of_a_bigger_event()
{
    let az = Az::new();
    az.ingest(IngestMode::Down);
    let fake = azure_fake(&az).await;
    let gw = start(
        ROOMY,
        gh("azmb-src", &["azmb"]),
        sentinel(
            "azmb",
            &fake,
            "batch = { max_events = 100, max_bytes = \"10MiB\", timeout = \"20ms\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..5).map(|i| format!("azmb-{i}")).collect();
    // The first event is refused alone; the others wait in the spool meanwhile, so they are
    // all there to batch (1.5 MB and a 1 MB event) once the service is back.
    accept_padded(&gw, "azmb-src", &ids[0], 300_000).await;
    fake.wait_until("a refused first call", |r| r.iter().any(is_ingest))
        .await;
    accept_padded_with_huge(&gw, "azmb-src", &ids[1..], 300_000, ("azmb-huge", 2)).await;
    az.ingest(IngestMode::Up);
    fake.wait_until("six delivered records", |r| az_uids(r).len() >= 6)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let mut all = ids.clone();
    all.push("azmb-huge".into());
    assert_eq!(sorted(az_uids(&reqs)), all);
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| is_ingest(c)).collect();
    for c in &ingests {
        check_az_request(c);
        assert!(
            c.body.len() <= 1_000_000,
            "an ingestion call of {} bytes uncompressed",
            c.body.len()
        );
        for r in az_records(c) {
            check_az_record(&r, "azmb-src");
            let cut = r["Event"]["metadata"]["uid"] == "azmb-huge";
            assert_eq!(raw_cut(&r["Event"]), cut, "{}", r["EventId"]);
        }
    }
    assert!(
        ingests.iter().any(|c| az_records(c).len() >= 2),
        "the events were never sent together"
    );
    assert!(dead_letters(&gw, "azmb").await.is_empty());
}

#[tokio::test]
async fn sentinel_splits_a_batch_refused_with_413() {
    let az = Az::new();
    az.ingest(IngestMode::OneRecordOnly);
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("az413-src", &["az413"]),
        sentinel(
            "az413",
            &fake,
            "batch = { max_events = 4, timeout = \"5s\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..4).map(|i| format!("az413-{i}")).collect();
    for id in &ids {
        accept(&gw, "az413-src", id).await;
    }
    fake.wait_until("four delivered records", |r| az_uids(r).len() >= 4)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    assert_eq!(sorted(az_uids(&reqs)), ids, "each delivered once");
    let ingests: Vec<&Captured> = reqs.iter().filter(|c| is_ingest(c)).collect();
    assert_eq!(ingests[0].answered, 413);
    assert_eq!(az_records(ingests[0]).len(), 4);
    assert!(dead_letters(&gw, "az413").await.is_empty());
    assert_eq!(sink_status(&gw, "az413").await["queued_events"], 0);
}

#[tokio::test]
async fn sentinel_fetches_a_fresh_token_when_ingestion_answers_401() {
    let az = Az::new();
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("azr-src", &["azr"]),
        sentinel("azr", &fake, QUICK, ""),
    )
    .await;
    accept(&gw, "azr-src", "azr-0").await;
    fake.wait_until("azr-0 delivered", |r| {
        az_uids(r).contains(&"azr-0".to_string())
    })
    .await;
    // The service stops honouring tok-1; the next token issued is tok-2.
    az.revoke_tokens();
    accept(&gw, "azr-src", "azr-1").await;
    let reqs = fake
        .wait_until("azr-1 delivered", |r| {
            az_uids(r).contains(&"azr-1".to_string())
        })
        .await;
    let last = reqs.iter().rfind(|c| is_ingest(c)).unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer tok-2"));
    assert_eq!(az_request_uids(last), ["azr-1"]);
    assert_eq!(reqs.iter().filter(|c| is_token_request(c)).count(), 2);
    let refused: Vec<&Captured> = reqs
        .iter()
        .filter(|c| is_ingest(c) && c.answered == 401)
        .collect();
    assert_eq!(refused.len(), 1, "one 401, then the fresh token");
    assert_eq!(refused[0].header("authorization"), Some("Bearer tok-1"));
    gw.delivered().await;
    assert!(dead_letters(&gw, "azr").await.is_empty());
    let s = sink_status(&gw, "azr").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
}

#[tokio::test]
async fn sentinel_keeps_events_while_the_token_endpoint_fails_then_delivers() {
    let az = Az::new();
    az.token(TokenMode::Down);
    let fake = azure_fake(&az).await;
    let gw = start(
        "",
        gh("azt-src", &["azt"]),
        sentinel("azt", &fake, QUICK, ""),
    )
    .await;
    let s = health_checked(&gw, "azt").await;
    assert_eq!(s["health_check"], "failed", "{s}");
    accept(&gw, "azt-src", "azt-0").await;
    fake.wait_until("token retries", |r| {
        r.iter()
            .filter(|c| is_token_request(c) && c.answered == 503)
            .count()
            >= 3
    })
    .await;
    let s = wait_status(&gw, "azt", "reported the token endpoint", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("token") && !e.starts_with("health check"))
    })
    .await;
    assert_eq!(s["healthy"], false, "{s}");
    assert_eq!(s["queued_events"], 1, "{s}");

    // A refused client secret: kept too, and unhealthy.
    az.token(TokenMode::InvalidClient);
    fake.wait_until("refused token requests", |r| {
        r.iter()
            .filter(|c| is_token_request(c) && c.answered == 401)
            .count()
            >= 2
    })
    .await;
    let s = wait_status(&gw, "azt", "reported the refused secret", |s| {
        s["last_error"].as_str().is_some_and(|e| {
            e.to_lowercase().contains("token")
                && (e.contains("401") || e.contains("invalid_client"))
        })
    })
    .await;
    assert_eq!(s["healthy"], false, "{s}");
    assert_eq!(s["queued_events"], 1, "{s}");
    assert!(dead_letters(&gw, "azt").await.is_empty());
    assert!(
        fake.requests().iter().all(|c| !is_ingest(c)),
        "no token, no ingestion call"
    );

    az.token(TokenMode::Issue);
    fake.wait_until("azt-0 delivered", |r| {
        az_uids(r).contains(&"azt-0".to_string())
    })
    .await;
    gw.delivered().await;
    let s = sink_status(&gw, "azt").await;
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["queued_events"], 0);
    assert!(dead_letters(&gw, "azt").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The legacy Azure Monitor HTTP Data Collector API (SharedKey).

const WORKSPACE: &str = "00000000-1111-2222-3333-444444444444";
const WORKSPACE_KEY: &str =
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

/// base64(HMAC-SHA256(base64decode(key), "POST\n<len>\napplication/json\nx-ms-date:<date>\n/api/logs")).
fn shared_key_signature(key_b64: &str, content_length: usize, date: &str) -> String {
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(key_b64).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs").as_bytes(),
    );
    b64.encode(mac.finalize().into_bytes())
}

fn dc_error(status: u16, error: &str, message: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_body(&json!({"Error": error, "Message": message}).to_string())
}

/// `Wed, 01 Jan 2025 00:00:05 GMT`.
fn parse_rfc1123(s: &str) -> Option<OffsetDateTime> {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &f)
        .ok()
        .map(|t| t.assume_utc())
}

/// What the Data Collector API checks, answered as it answers.
fn data_collector_reply(c: &Captured) -> Reply {
    if c.path != "/api/logs" {
        return Reply::status(404);
    }
    if c.method != "POST" {
        return Reply::status(405);
    }
    match query(c).get("api-version").map(String::as_str) {
        None => {
            return dc_error(
                400,
                "MissingApiVersion",
                "The API version wasn't specified.",
            )
        }
        Some("2016-04-01") => {}
        Some(_) => {
            return dc_error(
                400,
                "InvalidApiVersion",
                "The API version specified wasn't recognized by the service.",
            )
        }
    }
    match c.header("content-type") {
        None => {
            return dc_error(
                400,
                "MissingContentType",
                "The content type wasn't specified.",
            )
        }
        Some("application/json") => {}
        Some(_) => {
            return dc_error(
                400,
                "UnsupportedContentType",
                "The content type was not set to application/json.",
            )
        }
    }
    match c.header("log-type") {
        None => {
            return dc_error(
                400,
                "MissingLogType",
                "The required value log type wasn't specified.",
            )
        }
        Some(t)
            if t.is_empty()
                || t.len() > 100
                || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            return dc_error(
                400,
                "InvalidLogType",
                "The log type contained special characters or numerics.",
            )
        }
        Some(_) => {}
    }
    if c.header("content-encoding").is_some() {
        return dc_error(
            400,
            "InvalidDataFormat",
            "Compressed bodies are not accepted.",
        );
    }
    let Some(date) = c.header("x-ms-date") else {
        return dc_error(403, "InvalidAuthorization", "x-ms-date is missing.");
    };
    match parse_rfc1123(date) {
        Some(t) if (t - OffsetDateTime::now_utc()).abs() < time::Duration::minutes(15) => {}
        _ => {
            return dc_error(
                403,
                "InvalidAuthorization",
                "The date is invalid or skewed.",
            )
        }
    }
    // Signed over the byte length the service actually received.
    let want = format!(
        "SharedKey {WORKSPACE}:{}",
        shared_key_signature(WORKSPACE_KEY, c.body.len(), date)
    );
    if c.header("authorization") != Some(want.as_str()) {
        return dc_error(
            403,
            "InvalidAuthorization",
            "An invalid scheme was specified in the Authorization header.",
        );
    }
    let records = match serde_json::from_slice::<Value>(&c.body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        _ => return dc_error(400, "InvalidDataFormat", "An invalid JSON was submitted."),
    };
    for r in &records {
        for reserved in ["tenant", "TimeGenerated", "RawData"] {
            if r.get(reserved).is_some() {
                return dc_error(
                    400,
                    "InvalidDataFormat",
                    "A reserved property name was used.",
                );
            }
        }
    }
    Reply::status(200)
}

fn dc_uids(reqs: &[Captured]) -> Vec<String> {
    reqs.iter()
        .filter(|c| c.path == "/api/logs" && c.delivered())
        .flat_map(|c| match c.json() {
            Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        })
        .map(|r| r["EventId"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_shared_key_helper_matches_the_reference_vectors() {
    // §8.1 vectors A, B and C: the fake's check is right before it judges siemgate.
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, 1024, "Mon, 04 Apr 2016 08:00:00 GMT"),
        "kQfMluP3yBFQzfwH0Ye5adOjNq2FCEIWGh0n4uEtCrg="
    );
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, 103, "Wed, 01 Jan 2025 00:00:05 GMT"),
        "GAtVHo+diiyS32MOJsih0V1lD+cNUiosBQalCFTMKH0="
    );
    let body = r#"[{"EventId":"evt_2","Message":"Signatur geprüft ✓"}]"#;
    assert_eq!(body.len(), 55);
    assert_eq!(
        shared_key_signature(WORKSPACE_KEY, body.len(), "Wed, 01 Jan 2025 00:00:05 GMT"),
        "Z+a50+3280LJg0y+flsVoaRQttXIq4qHIdPgSpw5E+o="
    );
    assert!(parse_rfc1123("Wed, 01 Jan 2025 00:00:05 GMT").is_some());
}

#[tokio::test]
async fn sentinel_data_collector_signs_the_byte_length_of_non_ascii_bodies() {
    let fake = FakeServer::start(|c, _| data_collector_reply(c)).await;
    let gw = start(
        "",
        gh("dc-src", &["dc"]),
        format!(
            "[[sinks]]\nid = \"dc\"\ntype = \"sentinel_data_collector\"\nworkspace_id = \"{WORKSPACE}\"\nshared_key = \"{WORKSPACE_KEY}\"\nlog_type = \"WebhookEvents\"\nurl = \"{}\"\nallow_http = true\n{FAST}\n{QUICK}\n",
            fake.url("")
        ),
    )
    .await;
    gw.clock.advance(Duration::from_millis(321));
    accept_json(
        &gw,
        "dc-src",
        "dc-umlaut",
        json!({"action": "created", "title": "Signatur geprüft ✓", "severity": "high"}),
    )
    .await;
    let reqs = fake
        .wait_until("dc-umlaut delivered or refused thrice", |r| {
            dc_uids(r).contains(&"dc-umlaut".to_string())
                || r.iter().filter(|c| c.answered >= 400).count() >= 3
        })
        .await;
    assert!(
        reqs.iter().all(|c| c.answered == 200),
        "refused: {:?}",
        reqs.iter()
            .filter(|c| c.answered != 200)
            .map(|c| (c.answered, c.header("authorization").map(str::to_string)))
            .collect::<Vec<_>>()
    );
    accept(&gw, "dc-src", "dc-plain").await;
    let reqs_after = fake
        .wait_until("dc-plain delivered", |r| {
            dc_uids(r).contains(&"dc-plain".to_string())
        })
        .await;
    gw.delivered().await;
    assert_eq!(sorted(dc_uids(&reqs_after)), ["dc-plain", "dc-umlaut"]);
    for c in &reqs_after {
        assert_eq!(c.method, "POST");
        assert_eq!(c.path, "/api/logs");
        assert_eq!(
            query(c).get("api-version").map(String::as_str),
            Some("2016-04-01")
        );
        assert_eq!(c.header("content-type"), Some("application/json"));
        assert_eq!(c.header("log-type"), Some("WebhookEvents"));
        assert_eq!(c.header("time-generated-field"), Some("EventTime"));
        assert_eq!(c.header("content-encoding"), None);
        assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
        let records = match c.json() {
            Value::Array(a) => a,
            other => panic!("{other}"),
        };
        for r in records {
            let e: Value = serde_json::from_str(
                r["Event"]
                    .as_str()
                    .unwrap_or_else(|| panic!("Event is the OCSF event as a JSON string: {r}")),
            )
            .unwrap();
            assert_eq!(r["EventId"], uid_of(&e).as_str());
            assert_eq!(r["Source"], "dc-src");
            assert_eq!(r["Vendor"], "github");
            assert_eq!(r["ClassUid"], e["class_uid"]);
            assert_eq!(r["ClassName"], e["class_name"]);
            assert_eq!(r["SeverityId"], e["severity_id"]);
            assert_eq!(r["Severity"], e["severity"]);
            assert_eq!(r["Message"], e["message"]);
            assert_eq!(
                rfc3339_ms(r["EventTime"].as_str().unwrap()),
                e["time"].as_i64().unwrap()
            );
            assert_eq!(e["time"], T0 * 1000 + 321);
            if r["EventId"] == "dc-umlaut" {
                assert_eq!(r["Message"], "Signatur geprüft ✓");
                assert_eq!(r["Severity"], "High");
                let text = String::from_utf8(c.body.clone()).unwrap();
                assert_ne!(text.len(), text.chars().count(), "the body is not ASCII");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Datadog Logs intake v2.

const DD_KEY: &str = "0123456789abcdef0123456789abcdef";
const DD_PATH: &str = "/api/v2/logs";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DdMode {
    Up,
    Down,
    Hang,
}

#[derive(Clone)]
struct Dd(Arc<Mutex<DdMode>>);

impl Dd {
    fn new(m: DdMode) -> Dd {
        Dd(Arc::new(Mutex::new(m)))
    }

    fn set(&self, m: DdMode) {
        *self.0.lock().unwrap() = m;
    }
}

fn dd_error(status: u16, msg: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_body(&json!({"errors": [msg]}).to_string())
}

/// What the logs intake checks, answered as it answers.
fn datadog_reply(mode: DdMode, c: &Captured) -> Reply {
    if c.path != DD_PATH {
        return dd_error(404, "Not found");
    }
    if c.method != "POST" {
        return dd_error(405, "Method not allowed");
    }
    if c.header("dd-api-key") != Some(DD_KEY) {
        return dd_error(403, "Forbidden");
    }
    if !c
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return dd_error(400, "Bad Request");
    }
    if c.body.len() > 5_000_000 {
        return dd_error(413, "Request Entity Too Large");
    }
    let logs = match serde_json::from_slice::<Value>(&c.body) {
        Ok(Value::Array(a)) if a.iter().all(Value::is_object) => a,
        _ => return dd_error(400, "Bad Request"),
    };
    if logs.len() > 1000 {
        return dd_error(413, "Request Entity Too Large");
    }
    match mode {
        DdMode::Up => Reply::status(202)
            .with_header("content-type", "application/json")
            .with_body("{}"),
        DdMode::Down => dd_error(503, "Service Unavailable"),
        DdMode::Hang => Reply::Hang,
    }
}

async fn datadog_fake(dd: &Dd) -> FakeServer {
    let dd = dd.clone();
    FakeServer::start(move |c, _| {
        let mode = *dd.0.lock().unwrap();
        datadog_reply(mode, c)
    })
    .await
}

fn datadog(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"datadog\"\nurl = \"{}\"\napi_key = \"{DD_KEY}\"\nservice = \"webhooks\"\nsource = \"siemgate-gw\"\ntags = [\"env:test\", \"team:secops\"]\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
        fake.url("")
    )
}

fn is_dd(c: &Captured) -> bool {
    c.path == DD_PATH
}

fn dd_logs(c: &Captured) -> Vec<Value> {
    match c.json() {
        Value::Array(a) => {
            crate::ocsf_schema::assert_conforms("Datadog logs", a.iter().map(|l| &l["ocsf"]));
            a
        }
        other => panic!("expected a JSON array of logs, got {other}"),
    }
}

fn dd_request_uids(c: &Captured) -> Vec<String> {
    dd_logs(c)
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn dd_uids(reqs: &[Captured]) -> Vec<String> {
    reqs.iter()
        .filter(|c| is_dd(c) && c.delivered())
        .flat_map(dd_request_uids)
        .collect()
}

fn check_dd_request(c: &Captured) {
    assert_eq!(c.method, "POST");
    assert_eq!(c.header("dd-api-key"), Some(DD_KEY));
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("content-encoding"), Some("gzip"));
    assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
}

fn check_dd_log(l: &Value, src: &str) {
    let o = &l["ocsf"];
    assert!(o.is_object(), "ocsf is the OCSF object: {l}");
    assert_eq!(l["event_id"], uid_of(o).as_str(), "{l}");
    assert_eq!(l["ddsource"], "siemgate-gw", "{l}");
    assert_eq!(l["service"], "webhooks", "{l}");
    assert_eq!(
        l["ddtags"],
        format!("env:test,team:secops,siemgate_source:{src},vendor:github"),
        "{l}"
    );
    let host = l["hostname"].as_str().unwrap_or_default();
    assert!(!host.is_empty(), "{l}");
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.is_empty() {
            assert_eq!(host, h);
        }
    }
    let status = match o["severity_id"].as_u64().unwrap() {
        0 | 1 => "info",
        2 => "notice",
        3 => "warn",
        4 => "error",
        5 => "critical",
        _ => "emergency",
    };
    assert_eq!(l["status"], status, "{l}");
    assert_eq!(l["message"], o["message"], "{l}");
    assert_eq!(l["timestamp"], o["time"], "{l}");
}

#[tokio::test]
async fn datadog_sends_at_most_1000_logs_per_request_with_the_reserved_attributes() {
    let dd = Dd::new(DdMode::Down);
    let fake = datadog_fake(&dd).await;
    let gw = start(
        ROOMY,
        gh("dd-src", &["dd"]),
        datadog(
            "dd",
            &fake,
            "batch = { max_events = 2000, max_bytes = \"64MiB\", timeout = \"20ms\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..1200).map(|i| format!("dd-{i:04}")).collect();
    let severities = [
        None,
        Some("info"),
        Some("low"),
        Some("medium"),
        Some("high"),
        Some("critical"),
    ];
    let body = |id: &str| {
        let n: usize = id[3..].parse().unwrap();
        match severities[n % 6] {
            Some(s) => json!({"action": "created", "id": id, "severity": s}),
            None => json!({"action": "created", "id": id}),
        }
    };
    // The first event is refused alone; the other 1,199 wait in the spool meanwhile, so the
    // next batch holds all of them.
    accept_json(&gw, "dd-src", &ids[0], body(&ids[0])).await;
    fake.wait_until("a refused first request", |r| r.iter().any(is_dd))
        .await;
    accept_many(&gw, "dd-src", &ids[1..], body).await;
    dd.set(DdMode::Up);
    fake.wait_until("1,200 delivered logs", |r| dd_uids(r).len() >= 1200)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let got = dd_uids(&reqs);
    assert_eq!(got.len(), 1200, "duplicates delivered");
    assert_eq!(set(&got), set(&ids));
    let delivered: Vec<&Captured> = reqs.iter().filter(|c| is_dd(c) && c.delivered()).collect();
    assert!(delivered.len() >= 3, "{} requests", delivered.len());
    for c in reqs.iter().filter(|c| is_dd(c)) {
        check_dd_request(c);
        let logs = dd_logs(c);
        assert!(logs.len() <= 1000, "a request with {} logs", logs.len());
        for l in &logs {
            check_dd_log(l, "dd-src");
        }
    }
    // Every status word was seen.
    let statuses: HashSet<String> = delivered
        .iter()
        .flat_map(|c| dd_logs(c))
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect();
    for s in ["info", "notice", "warn", "error", "critical"] {
        assert!(statuses.contains(s), "{s} missing from {statuses:?}");
    }
    assert_eq!(sink_status(&gw, "dd").await["queued_events"], 0);
}

#[tokio::test]
async fn datadog_keeps_requests_under_5_mb_and_cuts_the_raw_data_of_a_log_over_1_mb() {
    let dd = Dd::new(DdMode::Down);
    let fake = datadog_fake(&dd).await;
    let gw = start(
        ROOMY,
        gh("ddmb-src", &["ddmb"]),
        datadog(
            "ddmb",
            &fake,
            "batch = { max_events = 100, max_bytes = \"64MiB\", timeout = \"20ms\" }",
            "",
        ),
    )
    .await;
    let ids: Vec<String> = (0..7).map(|i| format!("ddmb-{i}")).collect();
    // The first event is refused alone; the others wait in the spool meanwhile, so they are
    // all there to batch (5.4 MB and a log over 1 MB) once the service is back.
    accept_padded(&gw, "ddmb-src", &ids[0], 900_000).await;
    fake.wait_until("a refused first request", |r| r.iter().any(is_dd))
        .await;
    accept_padded_with_huge(&gw, "ddmb-src", &ids[1..], 900_000, ("ddmb-huge", 3)).await;
    dd.set(DdMode::Up);
    fake.wait_until("eight delivered logs", |r| dd_uids(r).len() >= 8)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let mut all = ids.clone();
    all.push("ddmb-huge".into());
    assert_eq!(sorted(dd_uids(&reqs)), all);
    for c in reqs.iter().filter(|c| is_dd(c)) {
        check_dd_request(c);
        assert!(
            c.body.len() <= 5_000_000,
            "a request of {} bytes uncompressed",
            c.body.len()
        );
        for l in dd_logs(c) {
            check_dd_log(&l, "ddmb-src");
            let size = l.to_string().len();
            assert!(size <= 1_000_000, "a log of {size} bytes");
            let cut = l["ocsf"]["metadata"]["uid"] == "ddmb-huge";
            assert_eq!(raw_cut(&l["ocsf"]), cut, "{}", l["event_id"]);
        }
    }
    assert!(
        reqs.iter().any(|c| is_dd(c) && dd_logs(c).len() >= 2),
        "the logs were never sent together"
    );
    assert!(dead_letters(&gw, "ddmb").await.is_empty());
}

#[tokio::test]
async fn datadog_sends_an_event_older_than_18_hours_without_its_timestamp() {
    let dd = Dd::new(DdMode::Down);
    let fake = datadog_fake(&dd).await;
    let gw = start(
        "",
        gh("dds-src", &["dds"]),
        datadog("dds", &fake, QUICK, ""),
    )
    .await;
    accept(&gw, "dds-src", "dds-0").await;
    let reqs = fake
        .wait_until("a refused request", |r| r.iter().any(is_dd))
        .await;
    // While fresh, the log carries its own time.
    let first = &dd_logs(reqs.iter().find(|c| is_dd(c)).unwrap())[0];
    check_dd_log(first, "dds-src");
    assert_eq!(first["timestamp"], T0 * 1000);
    assert_eq!(
        sink_metric(&gw, "siemgate_sink_stale_events_total", "dds", None).await,
        0.0
    );
    gw.clock.advance(Duration::from_secs(19 * 3600));
    // A retry rendered before the clock moved may still arrive; the worker sends one request
    // at a time, so once one arrives without a timestamp every later one was rendered after.
    fake.wait_until("a retry rendered 19 h later", |r| {
        r.iter()
            .filter(|c| is_dd(c))
            .any(|c| dd_logs(c)[0].get("timestamp").is_none())
    })
    .await;
    dd.set(DdMode::Up);
    let reqs = fake
        .wait_until("dds-0 delivered", |r| {
            dd_uids(r).contains(&"dds-0".to_string())
        })
        .await;
    gw.delivered().await;
    let c = reqs.iter().find(|c| is_dd(c) && c.delivered()).unwrap();
    check_dd_request(c);
    let l = &dd_logs(c)[0];
    assert!(
        l.get("timestamp").is_none(),
        "a stale log kept its timestamp: {l}"
    );
    assert_eq!(l["siemgate_original_timestamp"], T0 * 1000, "{l}");
    assert_eq!(l["ocsf"]["time"], T0 * 1000);
    assert_eq!(l["event_id"], "dds-0");
    assert!(sink_metric(&gw, "siemgate_sink_stale_events_total", "dds", None).await >= 1.0);
    assert!(dead_letters(&gw, "dds").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Fan-out.

#[tokio::test]
async fn fan_out_to_three_siems_loses_nothing_while_each_is_down_in_turn() {
    let splunk_down = Arc::new(AtomicBool::new(false));
    let down = splunk_down.clone();
    let hec_srv = hec_fake(move |_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) if down.load(Ordering::SeqCst) => hec(503, 9, "Server is busy"),
        Hec::Events(_) => hec_ok(),
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await;
    let az = Az::new();
    let az_srv = azure_fake(&az).await;
    let dd = Dd::new(DdMode::Up);
    let dd_srv = datadog_fake(&dd).await;
    let sinks = [
        splunk("fo-splunk", &hec_srv, QUICK, ""),
        sentinel("fo-sentinel", &az_srv, QUICK, ""),
        datadog("fo-datadog", &dd_srv, QUICK, ""),
    ]
    .concat();
    let gw = start(
        "",
        gh("fo-src", &["fo-splunk", "fo-sentinel", "fo-datadog"]),
        sinks,
    )
    .await;
    let mut sent: Vec<String> = Vec::new();
    fn has_all(got: Vec<String>, want: &[String]) -> bool {
        let got = set(&got);
        want.iter().all(|w| got.contains(w))
    }

    // Splunk busy.
    splunk_down.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let id = format!("fo-{i}");
        accept(&gw, "fo-src", &id).await;
        sent.push(id);
    }
    hec_srv
        .wait_until("refused POSTs", |r| {
            r.iter().any(|c| is_hec_post(c) && c.answered == 503)
        })
        .await;
    az_srv
        .wait_until("phase 1 in Sentinel", |r| has_all(az_uids(r), &sent))
        .await;
    dd_srv
        .wait_until("phase 1 in Datadog", |r| has_all(dd_uids(r), &sent))
        .await;
    assert_eq!(sink_status(&gw, "fo-splunk").await["queued_events"], 3);
    splunk_down.store(false, Ordering::SeqCst);

    // Sentinel unavailable.
    az.ingest(IngestMode::Down);
    for i in 3..6 {
        let id = format!("fo-{i}");
        accept(&gw, "fo-src", &id).await;
        sent.push(id);
    }
    az_srv
        .wait_until("refused ingestion", |r| {
            r.iter().any(|c| is_ingest(c) && c.answered == 503)
        })
        .await;
    hec_srv
        .wait_until("phase 2 in Splunk", |r| has_all(hec_uids(r), &sent))
        .await;
    dd_srv
        .wait_until("phase 2 in Datadog", |r| has_all(dd_uids(r), &sent))
        .await;
    assert!(
        sink_status(&gw, "fo-sentinel").await["queued_events"]
            .as_u64()
            .unwrap()
            >= 1
    );
    az.ingest(IngestMode::Up);

    // Datadog hangs.
    dd.set(DdMode::Hang);
    for i in 6..9 {
        let id = format!("fo-{i}");
        accept(&gw, "fo-src", &id).await;
        sent.push(id);
    }
    dd_srv
        .wait_until("a hanging request", |r| {
            r.iter()
                .any(|c| is_dd(c) && dd_request_uids(c).contains(&"fo-6".to_string()))
        })
        .await;
    hec_srv
        .wait_until("phase 3 in Splunk", |r| has_all(hec_uids(r), &sent))
        .await;
    az_srv
        .wait_until("phase 3 in Sentinel", |r| has_all(az_uids(r), &sent))
        .await;
    dd.set(DdMode::Up);

    dd_srv
        .wait_until("everything in Datadog", |r| has_all(dd_uids(r), &sent))
        .await;
    gw.delivered().await;
    for (name, got) in [
        ("splunk", hec_uids(&hec_srv.requests())),
        ("sentinel", az_uids(&az_srv.requests())),
        ("datadog", dd_uids(&dd_srv.requests())),
    ] {
        assert_eq!(set(&got), set(&sent), "{name}");
    }
    for id in ["fo-splunk", "fo-sentinel", "fo-datadog"] {
        let s = wait_status(&gw, id, "emptied its queue", |s| s["queued_events"] == 0).await;
        assert_eq!(s["dead_letters"], 0, "{s}");
        assert_eq!(s["healthy"], true, "{s}");
    }
}

#[tokio::test]
async fn min_severity_filters_per_sink_and_custom_headers_reach_every_siem() {
    let hec = hec_fake(|_, h| match h {
        Hec::Events(_) => hec_ok(),
        _ => hec_healthy(),
    })
    .await;
    let dd = Dd::new(DdMode::Up);
    let ddf = datadog_fake(&dd).await;
    let sinks = format!(
        "{}{}",
        splunk(
            "sev-splunk",
            &hec,
            QUICK,
            "min_severity = \"high\"\nheaders = { \"X-Tenant\" = \"acme\" }"
        ),
        datadog(
            "sev-dd",
            &ddf,
            QUICK,
            "headers = { \"X-Tenant\" = \"acme\", \"X-Route\" = \"soc\" }"
        ),
    );
    let gw = start("", gh("sev-src", &["sev-splunk", "sev-dd"]), sinks).await;
    for (id, severity) in [
        ("sev-critical", Some("critical")),
        ("sev-high", Some("high")),
        ("sev-medium", Some("medium")),
        ("sev-none", None),
    ] {
        let mut body = json!({"action": "created", "id": id});
        if let Some(s) = severity {
            body["severity"] = json!(s);
        }
        accept_json(&gw, "sev-src", id, body).await;
    }
    gw.delivered().await;
    assert_eq!(
        sorted(hec_uids(&hec.requests())),
        ["sev-critical", "sev-high"],
        "splunk takes high and above only"
    );
    let dd_reqs = ddf.requests();
    assert_eq!(
        sorted(dd_uids(&dd_reqs)),
        ["sev-critical", "sev-high", "sev-medium", "sev-none"]
    );
    for c in hec.requests().iter().filter(|c| is_hec_post(c)) {
        assert_eq!(c.header("x-tenant"), Some("acme"));
    }
    for c in dd_reqs.iter().filter(|c| is_dd(c)) {
        assert_eq!(c.header("x-tenant"), Some("acme"));
        assert_eq!(c.header("x-route"), Some("soc"));
    }
}

#[tokio::test]
async fn a_custom_header_that_would_override_the_sinks_credentials_is_refused_at_start() {
    let fake = FakeServer::ok().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[spool]\ndir = \"spool\"\n{}\n{}",
        gh("hdr-src", &["hdr"]),
        datadog(
            "hdr",
            &fake,
            QUICK,
            "headers = { \"dd-api-key\" = \"someone-elses-key\" }"
        )
    );
    let config = siemgate::config::parse(&text, dir.path(), &|_| None).unwrap();
    let clock = std::sync::Arc::new(siemgate::verify::ManualClock::at_unix(T0));
    let replay = siemgate::verify::replay::from_config(&config.replay).unwrap();
    let err = match siemgate::gateway::Gateway::new(config, clock, replay) {
        Ok(_) => panic!("a gateway started with a header overriding DD-API-KEY"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("dd-api-key") && err.contains("set by the datadog sink"),
        "{err}"
    );
    assert!(!err.contains("someone-elses-key"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Events over a sink's per-event limit: raw_data cut to fit and flagged; only what is still too
// large is a dead letter, and every dead letter is logged.

/// The gateway's log lines (JSON), captured on this test's thread: a `#[tokio::test]` runs the
/// gateway's tasks on the thread that installed the subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(logs.clone())
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The warnings about dead letters at `sink`.
    fn dead_letter_warnings(&self, sink: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| {
                l["level"] == "WARN"
                    && l["fields"]["sink"] == sink
                    && l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("dead letter"))
            })
            .collect()
    }
}

#[tokio::test]
async fn an_event_over_1_mb_reaches_datadog_and_sentinel_with_raw_data_cut_and_one_still_too_big_is_a_logged_dead_letter(
) {
    let (logs, _guard) = Logs::capture();
    let dd = Dd::new(DdMode::Up);
    let dd_fake = datadog_fake(&dd).await;
    let az = Az::new();
    let az_fake = azure_fake(&az).await;
    let gw = start(
        ROOMY,
        gh("big-src", &["bigdd", "bigaz"]),
        format!(
            "{}\n{}",
            datadog("bigdd", &dd_fake, QUICK, ""),
            sentinel("bigaz", &az_fake, QUICK, "")
        ),
    )
    .await;
    // 600 KB of quotes, backslashes and newlines: escaped once in the body and again in
    // raw_data, the event is well over 1 MB.
    let pad = "\"\\\n".repeat(200_000);
    accept_json(
        &gw,
        "big-src",
        "big-raw",
        json!({"action": "created", "id": "big-raw", "pad": pad}),
    )
    .await;
    // An alert whose own description is over 1 MB: too large even without raw_data.
    accept_json(
        &gw,
        "big-src",
        "big-desc",
        json!({"action": "created", "alert": {"html_url": "https://github.com/a/b/security/code-scanning/1",
               "rule": {"id": "r1", "name": "R",
               "full_description": "\"\\".repeat(300_000)}}}),
    )
    .await;
    accept(&gw, "big-src", "big-small").await;
    dd_fake
        .wait_until("two logs", |r| dd_uids(r).len() >= 2)
        .await;
    az_fake
        .wait_until("two records", |r| az_uids(r).len() >= 2)
        .await;
    gw.delivered().await;

    let dd_reqs = dd_fake.requests();
    assert_eq!(sorted(dd_uids(&dd_reqs)), ["big-raw", "big-small"]);
    let logs_sent: Vec<Value> = dd_reqs
        .iter()
        .filter(|c| is_dd(c) && c.delivered())
        .flat_map(dd_logs)
        .collect();
    for l in &logs_sent {
        check_dd_log(l, "big-src");
        assert!(l.to_string().len() <= 1_000_000, "a log over 1 MB");
        assert_eq!(raw_cut(&l["ocsf"]), l["event_id"] == "big-raw");
    }
    let az_reqs = az_fake.requests();
    assert_eq!(sorted(az_uids(&az_reqs)), ["big-raw", "big-small"]);
    for c in az_reqs.iter().filter(|c| is_ingest(c) && c.delivered()) {
        assert!(c.body.len() <= 1_000_000);
        for r in az_records(c) {
            check_az_record(&r, "big-src");
            assert_eq!(raw_cut(&r["Event"]), r["EventId"] == "big-raw");
        }
    }
    let m = gw.metrics().await;
    for sink in ["bigdd", "bigaz"] {
        assert_eq!(
            metric(
                &m,
                "siemgate_sink_truncated_events_total",
                &[("sink", sink)]
            ),
            1.0,
            "{sink}"
        );
        let letters = dead_letters(&gw, sink).await;
        assert_eq!(letters.len(), 1, "{sink}: {letters:?}");
        assert_eq!(letters[0]["event"]["metadata"]["uid"], "big-desc");
        // The dead letter keeps the event whole.
        assert!(letters[0]["event"]["raw_data"].is_string());
        let warnings = logs.dead_letter_warnings(sink);
        assert_eq!(warnings.len(), 1, "{sink}: {}", logs.text());
        let reason = warnings[0]["fields"]["reason"].as_str().unwrap();
        assert!(reason.contains("1,000,000"), "{reason}");
    }
    // No log line carries the event.
    assert!(!logs.text().contains(r#"\"\\\"\\\\"#));
}
