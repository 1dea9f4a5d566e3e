//! Vendor endpoint checks over real HTTP: Slack `url_verification`, Zoom
//! `endpoint.url_validation`, Okta's verification GET and Microsoft Graph's `validationToken`
//! (on `msgraph` sources only).
//! Each is answered as the vendor requires, only after verification where the vendor signs it,
//! and is never forwarded as an event.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::support::{metric, source, Options, TestGateway, Tls};

async fn gateway(sources: String) -> TestGateway {
    TestGateway::start(Options::new(Tls::Off, "", sources)).await
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

/// Nothing was spooled for any sink, and the handshake was counted as one.
async fn nothing_forwarded(gw: &TestGateway, src: &str, handshakes: f64) {
    assert!(gw.events().await.is_empty(), "a handshake was forwarded");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", src), ("outcome", "handshake")]
        ),
        handshakes
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", src), ("outcome", "accepted")]
        ),
        0.0
    );
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_its_challenge_once_signed() {
    let gw = gateway(source("slk", "slack", &["slack-secret-1"], "")).await;
    let body = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"})
        .to_string()
        .into_bytes();
    let headers = gw.sign("slk", &body, "unused");
    let resp = gw
        .request(&gw.client(), "slk", &headers, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let answer: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Unsigned, it is a 401 like any other request: the challenge is not echoed.
    let (status, text) = gw
        .post(
            &gw.client(),
            "slk",
            &[(
                "x-slack-request-timestamp".into(),
                gw.clock_now().unix_timestamp().to_string(),
            )],
            body,
        )
        .await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    nothing_forwarded(&gw, "slk", 1.0).await;
}

#[tokio::test]
async fn zoom_url_validation_is_answered_with_the_token_hmac_of_the_secret_that_signed_it() {
    // Two secret tokens during a rotation: the request is signed with the second one, and the
    // answer must be computed with that one, or Zoom rejects the endpoint.
    let gw = gateway(source(
        "zm",
        "zoom",
        &["zoom-secret-old", "zoom-secret-new"],
        "",
    ))
    .await;
    let ts = gw.clock_now().unix_timestamp().to_string();
    let body = json!({"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1_654_503_849_680_i64, "event": "endpoint.url_validation"})
        .to_string()
        .into_bytes();
    let sig = format!(
        "v0={}",
        hmac_hex(b"zoom-secret-new", &[b"v0:", ts.as_bytes(), b":", &body])
    );
    let headers = vec![
        ("x-zm-signature".to_string(), sig),
        ("x-zm-request-timestamp".to_string(), ts),
    ];
    let (status, text) = gw.post(&gw.client(), "zm", &headers, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer,
        json!({
            "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
            "encryptedToken": hmac_hex(b"zoom-secret-new", &[b"qgg8vlvZRS6UYooatFL8Aw"]),
        })
    );
    // A wrong signature gets no token.
    let bad = vec![
        (
            "x-zm-signature".to_string(),
            format!("v0={}", "0".repeat(64)),
        ),
        headers[1].clone(),
    ];
    let (status, _) = gw.post(&gw.client(), "zm", &bad, body).await;
    assert_eq!(status, 401);
    nothing_forwarded(&gw, "zm", 1.0).await;
}

#[tokio::test]
async fn okta_verification_get_is_answered_only_with_the_authentication_header() {
    let gw = gateway(source("ok", "okta", &["okta-secret-1"], "")).await;
    let get = |auth: Option<&str>, challenge: Option<&str>| {
        let mut r = gw.client().get(gw.url("ok"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        if let Some(c) = challenge {
            r = r.header("x-okta-verification-challenge", c);
        }
        r.send()
    };
    let resp = get(Some("okta-secret-1"), Some("Q3nVwxT0rGjX7H6b"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        serde_json::from_str::<Value>(&resp.text().await.unwrap()).unwrap(),
        json!({"verification": "Q3nVwxT0rGjX7H6b"})
    );
    let resp = get(Some("wrong"), Some("Q3nVwxT0rGjX7H6b")).await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = get(None, Some("Q3nVwxT0rGjX7H6b")).await.unwrap();
    assert_eq!(resp.status(), 401);
    // A GET without the challenge is not a verification: the method is not allowed.
    let resp = get(Some("okta-secret-1"), None).await.unwrap();
    assert_eq!(resp.status(), 405);
    nothing_forwarded(&gw, "ok", 1.0).await;
}

fn with_validation_token(url: String, token: &str) -> String {
    format!(
        "{url}?validationToken={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

const GRAPH_TOKEN: &str = "Validation: Testing client application reachability for subscription Request-Id: 7a0f1f5c-9d1e-4c3b-a1a5-5b0c2a1f9e1d";

#[tokio::test]
async fn graph_validation_token_is_echoed_as_text_on_msgraph_sources_and_never_forwarded() {
    let gw = gateway(source("gr", "msgraph", &["graph-client-state"], "")).await;
    let resp = gw
        .client()
        .post(with_validation_token(gw.url("gr"), GRAPH_TOKEN))
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.text().await.unwrap(), GRAPH_TOKEN);
    // Graph validates with POST only: a GET is not a method msgraph sources take.
    let resp = gw
        .client()
        .get(with_validation_token(gw.url("gr"), GRAPH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    nothing_forwarded(&gw, "gr", 1.0).await;
}

/// The echo answers anyone (Graph signs nothing), so it is answered only where Graph is the
/// vendor: not on an Okta source's verification GET, nor on a POST to a GitHub source.
#[tokio::test]
async fn graph_validation_token_is_not_echoed_on_other_vendors_sources() {
    let gw = gateway(
        source("ok", "okta", &["okta-secret-1"], "")
            + &source("gh", "github", &["github-secret-1"], ""),
    )
    .await;
    // Okta's GET with the right authentication and a validationToken: Okta's answer (or
    // none), never the token.
    for challenge in [None, Some("Q3nVwxT0rGjX7H6b")] {
        let mut r = gw
            .client()
            .get(with_validation_token(gw.url("ok"), GRAPH_TOKEN))
            .header("authorization", "okta-secret-1");
        if let Some(c) = challenge {
            r = r.header("x-okta-verification-challenge", c);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(!text.contains("Validation"), "{status} {text}");
        match challenge {
            Some(c) => assert_eq!(
                (status, serde_json::from_str::<Value>(&text).unwrap()),
                (200, json!({"verification": c}))
            ),
            None => assert_eq!(status, 405),
        }
    }
    // An unsigned POST to a GitHub source with a validationToken is a 401 like any other.
    let resp = gw
        .client()
        .post(with_validation_token(gw.url("gh"), GRAPH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), r#"{"error":"unauthorized"}"#);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "gh"), ("outcome", "handshake")]
        ),
        0.0
    );
    assert!(gw.events().await.is_empty());
}

/// A notification is taken only when every item's `clientState` is one of the source's
/// secrets; it becomes one event per item, and the clientState is not handed on.
#[tokio::test]
async fn graph_notifications_need_the_client_state_in_every_item() {
    let gw = gateway(source("gr", "msgraph", &["cs-old", "cs-new"], "")).await;
    let item = |id: &str, cs: &str, change: &str| {
        json!({"id": id, "subscriptionId": "sub-1", "clientState": cs, "changeType": change,
               "resource": format!("Users/u1/Messages/{id}"), "tenantId": "t-1",
               "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": id}})
    };
    let post = |items: Vec<Value>| {
        let body = json!({ "value": items }).to_string().into_bytes();
        let gw = &gw;
        async move { gw.post(&gw.client(), "gr", &[], body).await }
    };
    // One item with a wrong clientState spoils the notification.
    let (status, text) = post(vec![
        item("m1", "cs-new", "created"),
        item("m2", "wrong", "created"),
    ])
    .await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    let (status, _) = post(vec![json!({"id": "m3", "changeType": "created"})]).await;
    assert_eq!(status, 401);
    // Every item with one of the secrets (rotation: either may match): N events.
    let (status, text) = post(vec![
        item("m1", "cs-new", "created"),
        item("m2", "cs-old", "updated"),
        item("m3", "cs-new", "deleted"),
    ])
    .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&text).unwrap()),
        (200, json!({"status": "accepted", "events": 3}))
    );
    gw.delivered().await;
    let events = gw.events().await;
    assert_eq!(events.len(), 3);
    let activities: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            (
                e["class_uid"].as_u64().unwrap(),
                e["activity_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(activities, [(6003, 1), (6003, 3), (6003, 4)]);
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains("cs-new") && !all.contains("cs-old"),
        "a clientState was handed on"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_verify_failures_total",
            &[("source", "gr"), ("reason", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_verify_failures_total",
            &[("source", "gr"), ("reason", "missing_header")]
        ),
        1.0
    );
}
