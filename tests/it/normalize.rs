//! Normalization end to end: a webhook carrying several findings fans out into several events,
//! each routed by its own severity; `include_raw`; and a payload no mapping can read is still
//! forwarded, as a Base Event carrying the error. A webhook of many items costs storage in
//! proportion to its events, and one of too many items is refused with 413.

use serde_json::{json, Value};

use crate::fake::{delivered_uids, events_of, FakeServer, Reply};
use crate::support::{metric, read_lines, source, Options, TestGateway, Tls};

const SINKS: &str = "[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\nbatch = { timeout = \"5ms\" }\n\n[[sinks]]\nid = \"crit\"\ntype = \"file\"\npath = \"critical.jsonl\"\nmin_severity = \"critical\"\nbatch = { timeout = \"5ms\" }\n";

async fn gateway(extra: &str) -> TestGateway {
    let src = source("vt", "veritensor", &["veritensor-secret-1"], extra)
        .replace("sinks = [\"out\"]", "sinks = [\"out\", \"crit\"]");
    TestGateway::start(Options {
        tls: Tls::Off,
        sources: src,
        sinks: Some(SINKS.into()),
        ..Default::default()
    })
    .await
}

async fn send(gw: &TestGateway, body: &Value) -> (u16, String) {
    let body = body.to_string().into_bytes();
    let headers = gw.sign("vt", &body, "unused");
    gw.post(&gw.client(), "vt", &headers, body).await
}

fn scan() -> Value {
    json!({
        "event": "scan.completed",
        "organization": "acme-ml",
        "scan_id": "scn_fanout_1",
        "count": 3,
        "vulnerabilities": [
            {"file": "models/a.pkl", "threat": "pickle.remote_code_execution", "severity": "critical", "details": "os.system in __reduce__"},
            {"file": "models/b.h5", "threat": "keras.lambda_layer", "severity": "high", "details": "marshalled bytecode"},
            {"file": "nb/train.ipynb", "threat": "secret.hardcoded_token", "severity": "medium", "details": "hf token"},
        ],
    })
}

#[tokio::test]
async fn one_webhook_with_three_findings_becomes_three_events_routed_by_their_own_severity() {
    let gw = gateway("").await;
    let (status, text) = send(&gw, &scan()).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"status":"accepted","events":3}"#)
    );
    let events = gw.events().await;
    assert_eq!(events.len(), 3);
    let mut uids: Vec<&str> = events
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap())
        .collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 3, "each finding has its own uid");
    for e in &events {
        assert_eq!(e["class_uid"], 2004);
        assert_eq!(e["metadata"]["correlation_uid"], "scn_fanout_1");
        assert!(e["finding_info"]["uid"].is_string() && e["finding_info"]["title"].is_string());
        assert!(e["raw_data"].is_string(), "include_raw defaults to true");
    }
    let sev: Vec<u64> = events
        .iter()
        .map(|e| e["severity_id"].as_u64().unwrap())
        .collect();
    assert_eq!(sev, [5, 4, 3]);
    // The second sink takes critical events only: one of the three.
    let critical = read_lines(&gw.dir.path().join("critical.jsonl"));
    assert_eq!(critical.len(), 1);
    assert_eq!(critical[0]["severity_id"], 5);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_events_total",
            &[("source", "vt"), ("class", "2004")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "vt"), ("outcome", "accepted")]
        ),
        1.0
    );
    // The same webhook again is one duplicate, not three.
    let (status, text) = send(&gw, &scan()).await;
    assert_eq!((status, text.as_str()), (200, r#"{"status":"duplicate"}"#));
    assert_eq!(gw.events().await.len(), 3);
}

#[tokio::test]
async fn include_raw_false_leaves_the_body_out() {
    let gw = gateway("include_raw = false").await;
    assert_eq!(send(&gw, &scan()).await.0, 200);
    for e in gw.events().await {
        assert!(e.get("raw_data").is_none(), "{e}");
        assert_eq!(e["class_uid"], 2004);
    }
}

#[tokio::test]
async fn a_payload_no_mapping_reads_is_still_forwarded_with_the_error_and_counted() {
    let gw = gateway("").await;
    let body = json!(["not", "an", "object", 42]);
    let (status, text) = send(&gw, &body).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"status":"accepted","events":1}"#)
    );
    let events = gw.events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["class_uid"], 0);
    assert!(
        e["unmapped"]["siemgate"]["normalize_error"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{e}"
    );
    assert_eq!(e["raw_data"], body.to_string());
    assert_eq!(
        metric(
            &gw.metrics().await,
            "siemgate_normalize_errors_total",
            &[("source", "vt")]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------------------------
// A webhook that fans out into many events: storage and memory in proportion to the events,
// not events x body; and a bound on how many events one request may make.

const SPECTRAL_SECRET: &str = "spectral-secret-1";

/// A gateway with one Spectral source whose sink refuses everything for now (so what one
/// request spooled stays there to be measured), with a spool of `max_size`.
async fn spectral_gateway(fake: &FakeServer, max_size: &str) -> TestGateway {
    TestGateway::start(Options {
        tls: Tls::Off,
        server: "client_rate_limit = { per_second = 100000, burst = 100000 }".into(),
        sources: source("sp", "spectral", &[SPECTRAL_SECRET], ""),
        sinks: Some(format!(
            "[[sinks]]\nid = \"out\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\ntimeout = \"1s\"\nbatch = {{ max_events = 500, timeout = \"20ms\" }}\nretry = {{ initial_backoff = \"10ms\", max_backoff = \"50ms\" }}\n",
            fake.url("/ingest")
        )),
        spool: format!("max_size = \"{max_size}\""),
        ..Default::default()
    })
    .await
}

async fn send_spectral(gw: &TestGateway, body: &[u8]) -> (u16, String) {
    let headers = gw.sign("sp", body, "unused");
    gw.post(&gw.client(), "sp", &headers, body.to_vec()).await
}

fn issue(i: usize) -> Value {
    json!({"assetId": format!("github.com/acme/r{}", i % 7), "detectorId": "CLD001",
           "severity": "error", "uri": format!("https://x.io/f{i}#L{i}")})
}

#[tokio::test]
async fn a_thousand_issue_spectral_webhook_spools_about_its_size_and_each_event_carries_its_own_issue(
) {
    let fake = FakeServer::start(|_, _| Reply::status(503)).await;
    let gw = spectral_gateway(&fake, "64MiB").await;
    let issues: Vec<Value> = (0..1000).map(issue).collect();
    let body = json!({ "issues": issues }).to_string().into_bytes();
    assert!((80_000..120_000).contains(&body.len()), "{}", body.len());
    let before = gw.handle.gateway.spool().bytes();
    let (status, text) = send_spectral(&gw, &body).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"status":"accepted","events":1000}"#)
    );
    // Each event is about 1 KB of OCSF besides its own issue; with the whole body copied into
    // every event this was over 100 MB (1,200 times the body).
    let spooled = gw.handle.gateway.spool().bytes() - before;
    eprintln!("spooled {spooled} bytes for a body of {}", body.len());
    assert!(
        spooled < 20 * body.len() as u64,
        "{spooled} bytes spooled for a body of {}",
        body.len()
    );
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_spool_bytes", &[]) < 20.0 * body.len() as f64);

    fake.set(|_, _| Reply::ok());
    let reqs = fake
        .wait_until("every event delivered", |r| delivered_uids(r).len() >= 1000)
        .await;
    let events: Vec<Value> = reqs
        .iter()
        .filter(|c| c.delivered())
        .flat_map(events_of)
        .collect();
    assert_eq!(events.len(), 1000);
    let mut raw_total = 0;
    let mut envelopes = 0;
    for e in &events {
        let raw = e["raw_data"].as_str().expect("raw_data");
        raw_total += raw.len();
        let item: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(
            e["finding_info"]["src_url"], item["uri"],
            "raw_data is the event's own issue"
        );
        assert!(e["metadata"]["correlation_uid"].is_string());
        if let Some(env) = e["unmapped"]["siemgate"].get("raw_envelope") {
            envelopes += 1;
            assert_eq!(env, "{}", "the body without issues[]");
        }
    }
    assert_eq!(envelopes, 1, "the envelope goes once per request");
    assert!(raw_total <= body.len(), "{raw_total} > {}", body.len());
}

#[tokio::test]
async fn a_body_of_countless_tiny_items_is_refused_with_413_before_any_event_is_built() {
    let fake = FakeServer::ok().await;
    let gw = spectral_gateway(&fake, "64MiB").await;
    // 300,000 issues in under 1 MiB: as events they would take gigabytes.
    let mut body = String::from(r#"{"issues":["#);
    body.push_str(&vec!["{}"; 300_000].join(","));
    body.push_str("]}");
    let started = std::time::Instant::now();
    for _ in 0..2 {
        // Refused every time: never remembered as seen, so never answered "duplicate".
        let (status, _) = send_spectral(&gw, body.as_bytes()).await;
        assert_eq!(status, 413);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "siemgate_too_many_events_total", &[("source", "sp")]),
        2.0
    );
    // The limit itself: MAX_EVENTS_PER_REQUEST items pass, one more does not.
    let max = siemgate::ocsf::MAX_EVENTS_PER_REQUEST;
    let at = json!({"issues": (0..max).map(|_| json!({})).collect::<Vec<_>>()});
    let (status, text) = send_spectral(&gw, at.to_string().as_bytes()).await;
    assert_eq!(
        (status, text),
        (200, format!(r#"{{"status":"accepted","events":{max}}}"#))
    );
    let over = json!({"issues": (0..=max).map(|i| json!({"n": i})).collect::<Vec<_>>()});
    assert_eq!(send_spectral(&gw, over.to_string().as_bytes()).await.0, 413);
    assert_eq!(
        metric(
            &gw.metrics().await,
            "siemgate_too_many_events_total",
            &[("source", "sp")]
        ),
        3.0
    );
}

#[tokio::test]
async fn only_what_becomes_an_event_counts_against_the_events_per_request_limit() {
    let max = siemgate::ocsf::MAX_EVENTS_PER_REQUEST;
    let fake = FakeServer::ok().await;
    let gw = spectral_gateway(&fake, "64MiB").await;
    // A Spectral event that names no step of an issue's life is one notice, however many ids
    // it lists.
    let notice = json!({"name": "scan.finished", "ids": (0..=max).map(|i| i.to_string()).collect::<Vec<_>>()});
    let (status, text) = send_spectral(&gw, notice.to_string().as_bytes()).await;
    assert_eq!(
        (status, text),
        (200, r#"{"status":"accepted","events":1}"#.to_string())
    );
    // One that does makes a finding per id, and so is refused over the limit.
    let resolved = json!({"name": "issues.resolved", "ids": (0..=max).map(|i| i.to_string()).collect::<Vec<_>>()});
    assert_eq!(
        send_spectral(&gw, resolved.to_string().as_bytes()).await.0,
        413
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "siemgate_too_many_events_total", &[("source", "sp")]),
        1.0
    );

    // Veritensor makes a finding of each object in its list, nothing of other elements.
    let gw = gateway("").await;
    let mut batch = scan();
    let list = batch["vulnerabilities"].as_array_mut().unwrap();
    list.truncate(2);
    list.extend((0..=max).map(|i| json!(i)));
    let (status, text) = send(&gw, &batch).await;
    assert_eq!(
        (status, text),
        (200, r#"{"status":"accepted","events":2}"#.to_string())
    );
}

/// Every vendor's sample body (what `siemgate sign`, the load tool and the benchmarks send)
/// is a payload its own mapping reads: signed, verified and normalized, it yields events and
/// none carries a normalize error. Graph is left out: its proof is a `clientState` inside the
/// body, which only a subscription's owner writes.
#[test]
fn every_vendors_sample_body_normalizes_without_an_error() {
    use siemgate::fuzzing::{profile, profile_count};
    use std::time::Duration;
    let ts = time::OffsetDateTime::now_utc();
    let mut checked = 0;
    for i in 0..profile_count() {
        let p = profile(i as u8);
        if !p.header_signer {
            continue;
        }
        let name = p.source.vendor.name();
        let body = p.scheme.sample_body(ts, "sample-1");
        let verified = p
            .sign_and_verify(body.as_bytes(), ts, "sample-1", Duration::from_secs(300))
            .unwrap_or_else(|r| panic!("{name}: {r:?}"));
        let origin = siemgate::event::Origin {
            source_id: "s",
            vendor: name,
            include_raw: false,
        };
        let events = siemgate::ocsf::normalize(p.scheme.as_ref(), &origin, &verified);
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            assert!(
                !e.normalize_error(),
                "{name}: {}",
                String::from_utf8_lossy(&e.to_json().unwrap())
            );
        }
        checked += 1;
    }
    assert!(
        checked >= siemgate::vendors::VendorKind::ALL.len() - 1,
        "{checked}"
    );
}
