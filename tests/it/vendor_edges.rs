//! Vendor edges over real HTTP (issue 10): what may be a replay key, which keys verify which
//! signature, ids and timestamps that could slide across a template's separator, and which
//! sources answer Microsoft Graph's `validationToken`.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{metric, source, Options, TestGateway, Tls};

async fn gateway(sources: String) -> TestGateway {
    TestGateway::start(Options::new(Tls::Off, "", sources)).await
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

fn status_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Veritensor documents no delivery id: two deliveries that report the same `scan_id` (a
/// re-scan, a second batch of the same scan) are two deliveries, and both are taken. Only the
/// same signed bytes again is a duplicate.
#[tokio::test]
async fn veritensor_deliveries_sharing_a_scan_id_are_both_accepted() {
    let gw = gateway(source("vt", "veritensor", &["vt-secret"], "")).await;
    let body = |file: &str| {
        json!({"organization": "acme-ml", "scan_id": "scn_same", "count": 1,
               "vulnerabilities": [{"file": file, "threat": "pickle.rce", "severity": "critical"}]})
        .to_string()
        .into_bytes()
    };
    let sig = |b: &[u8]| {
        vec![(
            "x-veritensor-signature-256".to_string(),
            format!("sha256={}", hmac_hex(b"vt-secret", &[b])),
        )]
    };
    let (a, b) = (body("models/a.pkl"), body("models/b.pkl"));
    for (n, bytes) in [&a, &b].into_iter().enumerate() {
        let (status, text) = gw
            .post(&gw.client(), "vt", &sig(bytes), bytes.clone())
            .await;
        assert_eq!(
            (status, status_of(&text)),
            (200, json!({"status": "accepted", "events": 1})),
            "delivery {n}"
        );
    }
    let (status, text) = gw.post(&gw.client(), "vt", &sig(&a), a.clone()).await;
    assert_eq!(
        (status, status_of(&text)),
        (200, json!({"status": "duplicate"}))
    );
    gw.delivered().await;
    let mut titles: Vec<String> = gw
        .events()
        .await
        .iter()
        .map(|e| {
            e["finding_info"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        ["pickle.rce in models/a.pkl", "pickle.rce in models/b.pkl"]
    );
}

/// `generic_hmac` with `"{id}.{body}"`: a captured request re-sent with bytes of its body
/// moved into the id header keeps the same signed bytes and so the same MAC. It must never be
/// accepted: the id has a fixed alphabet without the separator (401 malformed_header), and the
/// signed bytes' digest is a replay key whatever the id (duplicate).
#[tokio::test]
async fn generic_hmac_id_cannot_take_bytes_of_the_body() {
    let extra = "header = \"X-Sig\"\nsigned_template = \"{id}.{body}\"\nid_header = \"X-Id\"\n";
    let gw = gateway(source("gh", "generic_hmac", &["g-secret"], extra)).await;
    let body = b"alert.critical.disk full on db-1".to_vec();
    let id = "evt-1";
    let sig = hmac_hex(b"g-secret", &[id.as_bytes(), b".", &body]);
    let headers = |id: &str| {
        vec![
            ("x-sig".to_string(), sig.clone()),
            ("x-id".to_string(), id.to_string()),
        ]
    };
    let (status, text) = gw
        .post(&gw.client(), "gh", &headers(id), body.clone())
        .await;
    assert_eq!(
        (status, status_of(&text)),
        (200, json!({"status": "accepted", "events": 1}))
    );

    // The attack: "evt-1" "." "alert.critical..." re-read as "evt-1.alert" "." "critical...".
    let cut = body.iter().position(|b| *b == b'.').unwrap();
    let moved_id = format!("{id}.{}", std::str::from_utf8(&body[..cut]).unwrap());
    let (status, text) = gw
        .post(
            &gw.client(),
            "gh",
            &headers(&moved_id),
            body[cut + 1..].to_vec(),
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_verify_failures_total",
            &[("source", "gh"), ("reason", "malformed_header")]
        ),
        1.0
    );
    // Ids and timestamps outside their alphabet are refused the same way.
    for bad in ["evt 1", "evt/1", "é"] {
        let resp = gw
            .request(&gw.client(), "gh", &[], body.clone())
            .header("x-sig", sig.clone())
            .header("x-id", bad.as_bytes())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad:?}");
    }
    gw.delivered().await;
    assert_eq!(gw.events().await.len(), 1);
}

/// A template in which an id or timestamp could run into its neighbour is a config error.
#[test]
fn generic_hmac_ambiguous_templates_are_config_errors() {
    for (template, unit) in [
        ("{id}_{body}", "seconds"),
        ("{id}{timestamp}.{body}", "seconds"),
        ("{timestamp}-{body}", "iso8601"),
        ("{timestamp}.{body}", "iso8601"),
        ("{body}.{body}", "seconds"),
        ("{body}-{id}", "seconds"),
    ] {
        let text = format!(
            "{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"e.jsonl\"\n",
            source(
                "g",
                "generic_hmac",
                &["s"],
                &format!("header = \"X-Sig\"\nsigned_template = \"{template}\"\ntimestamp_header = \"X-Ts\"\ntimestamp_unit = \"{unit}\"\nid_header = \"X-Id\"\n")
            )
        );
        let err = siemgate::config::parse(&text, std::path::Path::new("."), &|_| None)
            .err()
            .unwrap_or_else(|| panic!("{template} ({unit}) was accepted"));
        assert!(
            err.to_string().contains("signed_template"),
            "{template}: {err}"
        );
    }
    for template in [
        "{id}.{body}",
        "v0:{timestamp}:{body}",
        "{timestamp}{body}",
        "{body}|{id}",
    ] {
        let text = format!(
            "{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"e.jsonl\"\n",
            source(
                "g",
                "generic_hmac",
                &["s"],
                &format!("header = \"X-Sig\"\nsigned_template = \"{template}\"\ntimestamp_header = \"X-Ts\"\nid_header = \"X-Id\"\n")
            )
        );
        siemgate::config::parse(&text, std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{template}: {e}"));
    }
}

/// `"{timestamp}{body}"` (no separator) is allowed, but a body whose first byte is a digit
/// could lend it to the timestamp: such a request is refused, a JSON body is fine.
#[tokio::test]
async fn generic_hmac_timestamp_touching_the_body_needs_a_non_digit_body_start() {
    let extra = "header = \"X-Sig\"\nsigned_template = \"{timestamp}{body}\"\ntimestamp_header = \"X-Ts\"\n";
    let gw = gateway(source("gt", "generic_hmac", &["g-secret"], extra)).await;
    let ts = gw.clock_now().unix_timestamp().to_string();
    let send = |body: &'static [u8], ts: String| {
        let sig = hmac_hex(b"g-secret", &[ts.as_bytes(), body]);
        let headers = vec![("x-sig".to_string(), sig), ("x-ts".to_string(), ts)];
        let gw = &gw;
        async move { gw.post(&gw.client(), "gt", &headers, body.to_vec()).await.0 }
    };
    assert_eq!(send(b"{\"n\":1}", ts.clone()).await, 200);
    assert_eq!(send(b"7 errors", ts.clone()).await, 401);
}

/// A Standard Webhooks `v1a` (Ed25519) signature verifies only under a key configured as a
/// public key (`whpk_`). An HMAC secret (`whsec_`) whose 32 bytes happen to be an Ed25519
/// public key is not one: a v1a signature by the matching private key is refused.
#[tokio::test]
async fn standard_webhooks_v1a_never_verifies_with_an_hmac_secret() {
    use ed25519_dalek::{Signer, SigningKey};
    let sk = SigningKey::from_bytes(&[7; 32]);
    let pk = sk.verifying_key().to_bytes();
    let sources = source(
        "hm",
        "standard_webhooks",
        &[&format!("whsec_{}", b64(&pk))],
        "",
    ) + &source(
        "pk",
        "standard_webhooks",
        &[&format!("whpk_{}", b64(&pk))],
        "",
    );
    let gw = gateway(sources).await;
    let ts = gw.clock_now().unix_timestamp().to_string();
    let body = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#.to_vec();
    let signed = |id: &str| {
        let msg = [id.as_bytes(), b".", ts.as_bytes(), b".", &body].concat();
        vec![
            ("webhook-id".to_string(), id.to_string()),
            ("webhook-timestamp".to_string(), ts.clone()),
            (
                "webhook-signature".to_string(),
                format!("v1a,{}", b64(&sk.sign(&msg).to_bytes())),
            ),
        ]
    };
    let (status, text) = gw
        .post(&gw.client(), "hm", &signed("msg_1"), body.clone())
        .await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    let (status, text) = gw
        .post(&gw.client(), "pk", &signed("msg_2"), body.clone())
        .await;
    assert_eq!(status, 200, "{text}");
}
