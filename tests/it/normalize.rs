//! Normalization end to end: a webhook carrying several findings fans out into several events,
//! each routed by its own severity; `include_raw`; and a payload no mapping can read is still
//! forwarded, as a Base Event carrying the error.

use serde_json::{json, Value};

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
