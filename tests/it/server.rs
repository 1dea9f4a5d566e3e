//! The gateway over real sockets: TLS and mTLS handshakes, HTTP/1.1 and h2, every answer of
//! the contract, size and time bounds, rate limits, metrics and the admin listener.

use crate::support::*;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GH: &str = "gh-secret";

type Headers = Vec<(String, String)>;

fn gh_opts(tls: Tls, id: &str, server: &str) -> Options {
    Options {
        tls,
        server: server.into(),
        sources: source(id, "github", &[GH], ""),
        ..Default::default()
    }
}

#[tokio::test]
async fn accepts_a_signed_event_over_tls_with_h1_and_h2() {
    let gw = TestGateway::start(gh_opts(Tls::On, "tls-gh", "")).await;
    let body = br#"{"action":"created","severity":"high"}"#.to_vec();

    let h1 = gw.client_builder().http1_only().build().unwrap();
    let req = gw.request(
        &h1,
        "tls-gh",
        &gw.sign("tls-gh", &body, "delivery-1"),
        body.clone(),
    );
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"status":"accepted","events":1}"#
    );

    // h2 is negotiated by ALPN
    let h2 = gw.client();
    let body2 = br#"{"action":"created","n":2}"#.to_vec();
    let req = gw.request(
        &h2,
        "tls-gh",
        &gw.sign("tls-gh", &body2, "delivery-2"),
        body2.clone(),
    );
    let resp = req.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);

    let events = gw.events().await;
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!(e["metadata"]["uid"], "delivery-1");
    assert_eq!(e["unmapped"]["siemgate"]["source"], "tls-gh");
    assert_eq!(e["metadata"]["product"]["vendor_name"], "github");
    assert_eq!(e["severity_id"], 4);
    assert_eq!(e["raw_data"], String::from_utf8(body).unwrap());
    assert_eq!(e["metadata"]["logged_time"], T0 * 1000);

    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "tls-gh"), ("outcome", "accepted")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_events_total",
            &[("source", "tls-gh"), ("class", "0")]
        ),
        2.0
    );
    assert!(
        metric(
            &m,
            "siemgate_request_duration_seconds_count",
            &[("source", "tls-gh")]
        ) >= 2.0
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate() {
    let gw = TestGateway::start(gh_opts(Tls::Mutual, "mtls-gh", "")).await;
    let body = b"{}".to_vec();
    let headers = gw.sign("mtls-gh", &body, "m-1");

    let anonymous = gw.client();
    let req = gw.request(&anonymous, "mtls-gh", &headers, body.clone());
    assert!(
        req.send().await.is_err(),
        "a client without a certificate must not get through"
    );

    let with_cert = gw.client_builder().identity(gw.identity()).build().unwrap();
    let (status, text) = gw.post(&with_cert, "mtls-gh", &headers, body).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"status":"accepted","events":1}"#)
    );
    let m = gw.metrics().await;
    assert!(
        metric(
            &m,
            "siemgate_tls_handshake_failures_total",
            &[("reason", "error")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn every_verification_failure_is_the_same_401_with_its_reason_in_metrics() {
    let gw = TestGateway::start(Options {
        tls: Tls::Off,
        server: String::new(),
        sources: source("fail-slack", "slack", &["slack-secret"], ""),
        ..Default::default()
    })
    .await;
    let c = gw.client();
    let body = br#"{"type":"event_callback"}"#.to_vec();
    let good = gw.sign("fail-slack", &body, "x");
    let without = |name: &str| {
        good.iter()
            .filter(|(k, _)| k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let replace = |name: &str, value: &str| {
        let mut h = without(name);
        h.push((name.to_string(), value.to_string()));
        h
    };
    let old = (T0 - 3600).to_string();
    let cases: Vec<(Headers, Vec<u8>, &str)> = vec![
        (without("x-slack-signature"), body.clone(), "missing_header"),
        (
            replace("x-slack-signature", "v0=nothex"),
            body.clone(),
            "malformed_header",
        ),
        (
            good.clone(),
            br#"{"type":"event_callbacK"}"#.to_vec(),
            "bad_signature",
        ),
        (
            replace("x-slack-request-timestamp", &old),
            body.clone(),
            "bad_signature",
        ),
    ];
    for (headers, body, reason) in cases {
        let (status, text) = gw.post(&c, "fail-slack", &headers, body).await;
        assert_eq!(status, 401, "{reason}");
        assert_eq!(text, r#"{"error":"unauthorized"}"#, "{reason}");
    }
    // An authentic but stale request: signed an hour ago.
    gw.clock
        .set(time::OffsetDateTime::from_unix_timestamp(T0 - 3600).unwrap());
    let stale = gw.sign("fail-slack", &body, "x");
    gw.clock
        .set(time::OffsetDateTime::from_unix_timestamp(T0).unwrap());
    let (status, text) = gw.post(&c, "fail-slack", &stale, body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );

    let m = gw.metrics().await;
    let count = |reason| {
        metric(
            &m,
            "siemgate_verify_failures_total",
            &[("source", "fail-slack"), ("reason", reason)],
        )
    };
    assert_eq!(count("missing_header"), 1.0);
    assert_eq!(count("malformed_header"), 1.0);
    assert_eq!(count("bad_signature"), 2.0);
    assert_eq!(count("too_old"), 1.0);
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "fail-slack"), ("outcome", "unauthorized")]
        ),
        5.0
    );
    assert!(
        gw.events().await.is_empty(),
        "nothing unverified is handed on"
    );
}

#[tokio::test]
async fn replay_is_answered_duplicate_and_not_handed_on() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "dup-gh", "")).await;
    let c = gw.client();
    let body = br#"{"a":1}"#.to_vec();
    let h = gw.sign("dup-gh", &body, "same-delivery");
    assert_eq!(
        gw.post(&c, "dup-gh", &h, body.clone()).await,
        (200, r#"{"status":"accepted","events":1}"#.into())
    );
    assert_eq!(
        gw.post(&c, "dup-gh", &h, body.clone()).await,
        (200, r#"{"status":"duplicate"}"#.into())
    );
    // The same captured body with a rewritten (unsigned) delivery id is still a replay.
    let rewritten: Vec<_> = h
        .iter()
        .map(|(k, v)| {
            if k == "x-github-delivery" {
                (k.clone(), "forged-id".to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    assert_eq!(
        gw.post(&c, "dup-gh", &rewritten, body).await,
        (200, r#"{"status":"duplicate"}"#.into())
    );
    assert_eq!(gw.events().await.len(), 1);
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "dup-gh"), ("outcome", "duplicate")]
        ),
        2.0
    );
}

#[tokio::test]
async fn routing_answers_404_and_405() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "route-gh", "")).await;
    let c = gw.client();
    let r = c
        .post(gw.url("no-such-source"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .post(format!("{}/v1/webhooks/route-gh/extra", gw.base()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(gw.url("route-gh")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // the admin API is never served on the ingest listener
    let r = c
        .get(format!("{}/metrics", gw.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bodies_over_max_body_get_413_declared_or_streamed() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "big-gh", "max_body = \"1KiB\"")).await;
    let c = gw.client();
    // declared
    let body = vec![b'a'; 2048];
    let h = gw.sign("big-gh", &body, "big-1");
    let (status, _) = gw.post(&c, "big-gh", &h, body).await;
    assert_eq!(status, 413);
    // exactly at the cap is fine
    let body = vec![b' '; 1024];
    let h = gw.sign("big-gh", &body, "big-2");
    assert_eq!(gw.post(&c, "big-gh", &h, body).await.0, 200);
    // chunked, no Content-Length: cut off while streaming
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(b"POST /v1/webhooks/big-gh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: sha256=00\r\n\r\n").await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 600, "b".repeat(600));
    let mut answer = Vec::new();
    for _ in 0..4 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "big-gh"), ("outcome", "too_large")]
        ),
        2.0
    );
    assert_eq!(gw.events().await.len(), 1);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let gw = TestGateway::start(gh_opts(
        Tls::Off,
        "slow-gh",
        "header_timeout = \"1s\"\nrequest_timeout = \"1s\"",
    ))
    .await;
    // headers that never finish: the connection is closed
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(b"POST /v1/webhooks/slow-gh HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "a client that never finishes its headers must be cut off"
    );
    // a body that never arrives: 408
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(
        b"POST /v1/webhooks/slow-gh HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "a body that never arrives must be cut off");
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test]
async fn huge_headers_are_refused() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "hdr-gh", "max_header_size = \"16KiB\"")).await;
    let c = gw.client();
    let r = c
        .post(gw.url("hdr-gh"))
        .header("x-filler", "a".repeat(64 * 1024))
        .body("{}")
        .send()
        .await;
    // Either 431, or the connection is closed outright.
    if let Ok(r) = r {
        assert_eq!(r.status(), 431);
    }
    // and the gateway still serves
    let body = b"{}".to_vec();
    let h = gw.sign("hdr-gh", &body, "after-big-headers");
    assert_eq!(gw.post(&c, "hdr-gh", &h, body).await.0, 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "cap-gh", "max_connections = 2")).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
        // a request in progress keeps the connection (and its permit) busy
        s.write_all(b"POST /v1/webhooks/cap-gh HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    let mut third = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the third connection must be closed unanswered: {buf:?}"
    );
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_connections_refused_total", &[]) >= 1.0);
    drop(held);
}

/// 10,000 bad-signature requests from one client are met with 429s (cheaply, before any MAC),
/// while a good source sending from another address keeps being accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_limited_while_a_good_source_is_accepted() {
    let gw = std::sync::Arc::new(
        TestGateway::start(Options {
            tls: Tls::Off,
            server: "client_rate_limit = { per_second = 20, burst = 50 }".into(),
            sources: format!(
                "{}{}",
                source("flood-target", "github", &[GH], ""),
                source("flood-good", "stripe", &["whsec_good"], "")
            ),
            ..Default::default()
        })
        .await,
    );
    let attacker_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let c = gw
                .client_builder()
                .local_address(attacker_ip)
                .build()
                .unwrap();
            let (mut limited, mut unauthorized, mut other) = (0u32, 0u32, 0u32);
            for i in 0..1250 {
                let r = c
                    .post(gw.url("flood-target"))
                    .header(
                        "x-hub-signature-256",
                        format!("sha256={:064x}", t * 10_000 + i),
                    )
                    .body(format!("{{\"n\":{i}}}"))
                    .send()
                    .await
                    .unwrap();
                match r.status().as_u16() {
                    429 => {
                        assert!(r.headers().get("retry-after").is_some());
                        limited += 1
                    }
                    401 => unauthorized += 1,
                    _ => other += 1,
                }
            }
            (limited, unauthorized, other)
        }));
    }
    let good = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let c = gw.client();
            let mut accepted = 0;
            for i in 0..40 {
                let body =
                    format!("{{\"id\":\"evt_{i}\",\"type\":\"charge.failed\"}}").into_bytes();
                let h = gw.sign("flood-good", &body, "");
                let (status, text) = gw.post(&c, "flood-good", &h, body).await;
                assert_eq!(status, 200, "{text}");
                accepted += 1;
            }
            accepted
        })
    };
    let (mut limited, mut unauthorized, mut other) = (0, 0, 0);
    for t in tasks {
        let (l, u, o) = t.await.unwrap();
        limited += l;
        unauthorized += u;
        other += o;
    }
    assert_eq!(good.await.unwrap(), 40);
    assert_eq!(limited + unauthorized + other, 10_000);
    assert_eq!(other, 0);
    assert!(
        limited >= 9_000,
        "only {limited} of 10000 were limited ({unauthorized} reached verification)"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "flood-good"), ("outcome", "accepted")]
        ),
        40.0
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_requests_total",
            &[("source", "flood-target"), ("outcome", "rate_limited")]
        ),
        limited as f64
    );
    assert_eq!(gw.events().await.len(), 40);
}

#[tokio::test]
async fn the_source_limit_applies_after_verification_and_keeps_no_id() {
    let gw = TestGateway::start(Options {
        tls: Tls::Off,
        server: String::new(),
        sources: source(
            "limited-gh",
            "github",
            &[GH],
            "rate_limit = { per_second = 1, burst = 2 }",
        ),
        ..Default::default()
    })
    .await;
    let c = gw.client();
    let send = |n: u32| {
        let body = format!("{{\"n\":{n}}}").into_bytes();
        let h = gw.sign("limited-gh", &body, &format!("lim-{n}"));
        (h, body)
    };
    // unsigned requests do not use up the source's budget
    for _ in 0..5 {
        assert_eq!(gw.post(&c, "limited-gh", &[], b"{}".to_vec()).await.0, 401);
    }
    for n in 0..2 {
        let (h, b) = send(n);
        assert_eq!(gw.post(&c, "limited-gh", &h, b).await.0, 200);
    }
    let (h, b) = send(2);
    let req = gw.request(&c, "limited-gh", &h, b.clone());
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait));
    // Retried after the time the gateway asked for (on its clock), the event is new, not a
    // duplicate.
    gw.clock.advance(Duration::from_secs(wait));
    assert_eq!(
        gw.post(&c, "limited-gh", &h, b).await,
        (200, r#"{"status":"accepted","events":1}"#.into())
    );
    assert_eq!(gw.events().await.len(), 3);
}

#[tokio::test]
async fn forwarded_for_is_trusted_only_from_configured_proxies() {
    let gw = std::sync::Arc::new(
        TestGateway::start(gh_opts(Tls::Off, "xff-gh", "trusted_proxies = [\"127.0.0.1/32\"]\nclient_rate_limit = { per_second = 1, burst = 3 }"))
            .await,
    );
    let c = gw.client();
    // Behind the proxy, two clients have separate budgets.
    let mut codes = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..3 {
            let r = c
                .post(gw.url("xff-gh"))
                .header("x-forwarded-for", client)
                .body("{}")
                .send()
                .await
                .unwrap();
            codes.push(r.status().as_u16());
        }
    }
    assert_eq!(
        codes,
        vec![401; 6],
        "each forwarded client has its own budget"
    );
    let r = c
        .post(gw.url("xff-gh"))
        .header("x-forwarded-for", "203.0.113.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn bad_input_never_breaks_the_gateway() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "junk-gh", "")).await;
    let c = gw.client();
    let junk: Vec<(Headers, Vec<u8>)> = vec![
        (
            vec![("x-hub-signature-256".into(), "sha256=".into())],
            vec![],
        ),
        (
            vec![("x-hub-signature-256".into(), "sha256=".repeat(500))],
            vec![0xff, 0xfe, 0x00],
        ),
        (
            vec![(
                "x-hub-signature-256".into(),
                format!("sha256={}", "é".repeat(32)),
            )],
            b"{".to_vec(),
        ),
        (
            vec![("x-github-delivery".into(), "a".repeat(5000))],
            b"{}".to_vec(),
        ),
    ];
    for (h, b) in junk {
        let mut req = c.post(gw.url("junk-gh")).body(b);
        for (k, v) in &h {
            req = req.header(k.as_str(), v.as_bytes());
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert_eq!(status, 401);
    }
    // A valid request with an oversized delivery id is refused as malformed, not stored.
    let body = b"{}".to_vec();
    let h = gw.sign("junk-gh", &body, &"d".repeat(1000));
    assert_eq!(gw.post(&c, "junk-gh", &h, body).await.0, 401);
    // Raw protocol garbage gets a 400 and a closed connection.
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(b"\x16\x03\x01 this is not http\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    assert!(buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"));
    assert!(gw.events().await.is_empty());
    let (status, _) = gw
        .post(
            &c,
            "junk-gh",
            &gw.sign("junk-gh", b"ok", "fine"),
            b"ok".to_vec(),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_endpoints() {
    let gw = TestGateway::start(gh_opts(Tls::Off, "admin-gh", "")).await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(gw.admin("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(gw.admin("/readyz")).send().await.unwrap().status(),
        200
    );
    let (_, status) = gw.admin_call(reqwest::Method::GET, "/v1/status").await;
    assert_eq!(status["sources"][0]["id"], "admin-gh");
    assert_eq!(status["sources"][0]["vendor"], "github");
    assert_eq!(status["ocsf_version"], siemgate::event::OCSF_VERSION);
    assert!(!status.to_string().contains(GH), "no secret in the status");
    // zero-valued series exist before any traffic
    let m = gw.metrics().await;
    assert!(
        m.contains("siemgate_verify_failures_total{source=\"admin-gh\",reason=\"too_new\"} 0"),
        "{m}"
    );
    // state-changing calls need the token
    assert_eq!(
        c.post(gw.admin("/v1/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.post(gw.admin("/v1/reload"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(c.get(gw.admin("/nope")).send().await.unwrap().status(), 404);
}
