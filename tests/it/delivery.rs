//! The spool and the delivery engine, end to end: a gateway on 127.0.0.1:0, an `http` sink
//! pointed at a fake server that fails in the ways real receivers do, and the dead-letter API.

use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

use crate::fake::{delivered_uids, events_of, FakeServer, Reply};
use crate::support::{metric, send, source, Options, TestGateway, Tls};

/// A github source `src` whose events go to sink `sink`.
fn gh(src: &str, sink: &str) -> String {
    source(src, "github", &["delivery-secret"], "")
        .replace("sinks = [\"out\"]", &format!("sinks = [\"{sink}\"]"))
}

/// An `http` sink table pointed at `fake`, with fast retries.
fn http_sink(id: &str, fake: &FakeServer, extra: &str) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\ntimeout = \"1s\"\nbatch = {{ max_events = 100, timeout = \"20ms\" }}\n{extra}\n",
        fake.url("/ingest")
    )
}

fn with_retry(fast: &str) -> String {
    format!("retry = {{ {fast} }}")
}

async fn start(sources: String, sinks: String, spool: &str) -> TestGateway {
    TestGateway::start(Options {
        tls: Tls::Off,
        sources,
        sinks: Some(sinks),
        spool: spool.into(),
        ..Default::default()
    })
    .await
}

async fn accept(gw: &TestGateway, src: &str, id: &str) {
    let (status, body, _) = send(gw, src, id, 0).await;
    assert_eq!(status, 200, "{id}: {body}");
    assert_eq!(body, r#"{"status":"accepted","events":1}"#);
}

/// The sink's entry in `/v1/status`.
async fn sink_status(gw: &TestGateway, id: &str) -> Value {
    let (_, status) = gw.admin_call(Method::GET, "/v1/status").await;
    status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
        .clone()
}

async fn dead_letters(gw: &TestGateway, query: &str) -> Vec<Value> {
    let (status, body) = gw.admin_call(Method::GET, &format!("/v1/dlq{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test]
async fn http_sink_sends_json_arrays_with_custom_headers_gzip_and_a_verifiable_signature() {
    let fake = FakeServer::ok().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let gw = start(
        gh("hs-src", "hs"),
        http_sink(
            "hs",
            &fake,
            &format!("compression = \"gzip\"\nsigning_secret = \"{secret}\"\nheaders = {{ \"X-Tenant\" = \"acme\" }}"),
        ),
        "",
    )
    .await;
    for i in 0..3 {
        accept(&gw, "hs-src", &format!("hs-{i}")).await;
    }
    let reqs = fake
        .wait_until("three events", |r| delivered_uids(r).len() >= 3)
        .await;
    let mut uids = delivered_uids(&reqs);
    uids.sort();
    assert_eq!(uids, ["hs-0", "hs-1", "hs-2"]);
    use siemgate::vendors::{scheme_for, VendorKind};
    let scheme = scheme_for(VendorKind::StandardWebhooks, &Default::default());
    let key = scheme
        .prepare_key(&siemgate::config::Secret::new(secret))
        .unwrap();
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/ingest");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("x-tenant"), Some("acme"));
        assert!(r.header("user-agent").unwrap().starts_with("siemgate/"));
        for e in events_of(r) {
            assert_eq!(e["unmapped"]["siemgate"]["source"], "hs-src");
        }
        // The signature is what a Standard Webhooks receiver recomputes over the plain body.
        let id = r.header("webhook-id").unwrap();
        assert!(id.starts_with("msg_"));
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert_eq!(
            ts,
            gw.clock_now().unix_timestamp(),
            "signed on the gateway's clock"
        );
        let expected = scheme.sign(
            &key,
            &r.body,
            time::OffsetDateTime::from_unix_timestamp(ts).unwrap(),
            id,
        );
        let sig = expected
            .iter()
            .find(|(k, _)| k == "webhook-signature")
            .unwrap();
        assert_eq!(r.header("webhook-signature"), Some(sig.1.as_str()));
    }
}

#[tokio::test]
async fn a_second_siemgate_verifies_what_the_first_one_signs() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let next_hop = TestGateway::start(Options::new(
        Tls::Off,
        "",
        source("chain-in", "standard_webhooks", &[secret], ""),
    ))
    .await;
    // The sink signs on its gateway's clock; the next hop checks the timestamp against its
    // own, which stands at the same time.
    let sinks = format!(
        "[[sinks]]\nid = \"chain\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\nsigning_secret = \"{secret}\"\nbatch = {{ timeout = \"10ms\" }}\n",
        next_hop.url("chain-in")
    );
    let gw = start(gh("chain-src", "chain"), sinks, "").await;
    accept(&gw, "chain-src", "chained-1").await;
    gw.delivered().await;
    let got = next_hop.events().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let raw: Value = serde_json::from_str(got[0]["raw_data"].as_str().unwrap()).unwrap();
    assert_eq!(raw[0]["metadata"]["uid"], "chained-1");
    assert!(got[0]["metadata"]["uid"]
        .as_str()
        .unwrap()
        .starts_with("msg_"));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = FakeServer::start(|_, i| {
        if i == 0 {
            Reply::status(429).with_header("retry-after", "1")
        } else {
            Reply::ok()
        }
    })
    .await;
    let gw = start(
        gh("ra-src", "ra"),
        http_sink("ra", &fake, &with_retry("initial_backoff = \"10ms\"")),
        "",
    )
    .await;
    accept(&gw, "ra-src", "ra-1").await;
    let reqs = fake
        .wait_until("a delivery", |r| r.iter().any(|c| c.delivered()))
        .await;
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    // Backoff alone would have retried after at most 10 ms.
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
    gw.delivered().await;
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_sink_events_total",
            &[("sink", "ra"), ("outcome", "retried")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "siemgate_sink_events_total",
            &[("sink", "ra"), ("outcome", "delivered")]
        ),
        1.0
    );
    assert_eq!(metric(&m, "siemgate_spool_events", &[("sink", "ra")]), 0.0);
}

#[tokio::test]
async fn a_400_is_a_dead_letter_at_once_and_replay_delivers_it() {
    let fake =
        FakeServer::start(|_, _| Reply::status(400).with_body("{\"text\":\"bad event\"}")).await;
    let gw = start(gh("dl-src", "dl"), http_sink("dl", &fake, ""), "").await;
    accept(&gw, "dl-src", "dl-1").await;
    gw.delivered().await;
    assert_eq!(fake.requests().len(), 1, "a 400 is not retried");
    let letters = dead_letters(&gw, "").await;
    assert_eq!(letters.len(), 1);
    let d = &letters[0];
    assert_eq!(d["sink"], "dl");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["error"], "HTTP 400: {\"text\":\"bad event\"}");
    assert_eq!(d["event"]["metadata"]["uid"], "dl-1");
    let m = gw.metrics().await;
    assert_eq!(metric(&m, "siemgate_dead_letters", &[("sink", "dl")]), 1.0);
    assert_eq!(
        metric(
            &m,
            "siemgate_sink_events_total",
            &[("sink", "dl"), ("outcome", "dead_lettered")]
        ),
        1.0
    );

    // The token is required.
    let r = reqwest::Client::new()
        .get(gw.admin("/v1/dlq"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Fixed downstream: replay delivers the event, and the dead letter is gone.
    fake.set(|_, _| Reply::ok());
    let (status, body) = gw.admin_call(Method::POST, "/v1/dlq/replay?sink=dl").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 1);
    let reqs = fake
        .wait_until("the replayed event", |r| {
            delivered_uids(r).contains(&"dl-1".to_string())
        })
        .await;
    assert_eq!(delivered_uids(&reqs), ["dl-1"]);
    gw.delivered().await;
    assert!(dead_letters(&gw, "").await.is_empty());
    assert_eq!(
        metric(
            &gw.metrics().await,
            "siemgate_dead_letters",
            &[("sink", "dl")]
        ),
        0.0
    );

    // Drop needs a selector; by id it takes just that one.
    fake.set(|_, _| Reply::status(422));
    accept(&gw, "dl-src", "dl-2").await;
    accept(&gw, "dl-src", "dl-3").await;
    gw.delivered().await;
    let letters = dead_letters(&gw, "?sink=dl").await;
    assert_eq!(letters.len(), 2);
    let (status, _) = gw.admin_call(Method::POST, "/v1/dlq/drop").await;
    assert_eq!(status, 400);
    let id = letters[0]["id"].as_u64().unwrap();
    let (status, body) = gw
        .admin_call(Method::POST, &format!("/v1/dlq/drop?sink=dl&id={id}"))
        .await;
    assert_eq!((status, body["events"].as_u64()), (200, Some(1)));
    let left = dead_letters(&gw, "").await;
    assert_eq!(left.len(), 1);
    assert_ne!(left[0]["id"].as_u64(), Some(id));
    let (status, _) = gw
        .admin_call(Method::POST, "/v1/dlq/replay?sink=nope")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_dlq_command_lists_replays_and_drops_through_the_admin_api() {
    let fake = FakeServer::start(|_, _| Reply::status(400).with_body("no")).await;
    let gw = start(
        gh("cli-dl-src", "cli-dl"),
        http_sink("cli-dl", &fake, ""),
        "",
    )
    .await;
    accept(&gw, "cli-dl-src", "cli-dl-1").await;
    accept(&gw, "cli-dl-src", "cli-dl-2").await;
    gw.delivered().await;
    let token = gw.dir.path().join("admin-token");
    std::fs::write(&token, "test-admin-token\n").unwrap();
    let admin = format!("http://{}", gw.handle.admin_addr);
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_siemgate"))
            .args(&args)
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let common = |cmd: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["dlq".into()];
        v.extend(cmd.iter().map(|s| s.to_string()));
        v.extend([
            "--admin".to_string(),
            admin.clone(),
            "--token-file".to_string(),
            token.display().to_string(),
        ]);
        v
    };
    let (code, out, err) = run(common(&["list"])).await;
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("cli-dl\t")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].ends_with("HTTP 400: no"), "{out}");
    assert!(out.contains("2 dead letter(s) in all"), "{out}");

    let (code, _, err) = run(common(&["drop"])).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("--sink, --id, or --all"), "{err}");

    let id = rows[0].split('\t').nth(1).unwrap().to_string();
    let (code, out, err) = run(common(&["drop", "--sink", "cli-dl", "--id", &id])).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "dropped 1 dead letter(s)");

    fake.set(|_, _| Reply::ok());
    let (code, out, err) = run(common(&["replay", "--sink", "cli-dl"])).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "replayed 1 dead letter(s)");
    fake.wait_until("the replayed event", |r| delivered_uids(r).len() == 1)
        .await;

    let wrong = gw.dir.path().join("wrong-token");
    std::fs::write(&wrong, "nope").unwrap();
    let (code, _, err) = run(vec![
        "dlq".into(),
        "list".into(),
        "--admin".into(),
        admin.clone(),
        "--token-file".into(),
        wrong.display().to_string(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn a_full_spool_answers_503_with_retry_after_and_recovers_once_the_sink_is_back() {
    let fake = FakeServer::start(|_, _| Reply::status(503)).await;
    let gw = start(
        gh("full-src", "full"),
        http_sink(
            "full",
            &fake,
            &with_retry("initial_backoff = \"5ms\", max_backoff = \"20ms\""),
        ),
        "max_size = \"1MiB\"",
    )
    .await;
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let id = format!("full-{i}");
        let (status, body, retry_after) = send(&gw, "full-src", &id, 16 << 10).await;
        match status {
            200 => accepted.push(id),
            503 => {
                refused = Some((body, retry_after));
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let (body, retry_after) = refused.expect("the spool never filled");
    assert!(accepted.len() > 10, "only {} accepted", accepted.len());
    assert!(retry_after.is_some(), "503 without Retry-After");
    assert!(body.contains("error"), "{body}");
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_spool_full_total", &[]) >= 1.0);
    assert!(metric(&m, "siemgate_spool_bytes", &[]) > 900_000.0);

    fake.set(|_, _| Reply::ok());
    gw.delivered().await;
    let (status, body, _) = send(&gw, "full-src", "full-after", 16 << 10).await;
    assert_eq!(status, 200, "{body}");
    accepted.push("full-after".into());
    let reqs = fake
        .wait_until("every accepted event", |r| {
            let got = delivered_uids(r);
            accepted.iter().all(|a| got.contains(a))
        })
        .await;
    let got = delivered_uids(&reqs);
    assert_eq!(got.len(), accepted.len(), "duplicates delivered");
    gw.delivered().await;
    // Delivered segments were deleted.
    assert!(gw.handle.gateway.spool().bytes() < 200_000);
}

#[tokio::test]
async fn a_413_splits_the_batch_and_an_event_too_large_alone_becomes_a_dead_letter() {
    let fake = FakeServer::start(|c, _| {
        let body = String::from_utf8_lossy(&c.body);
        let n = events_of(c).len();
        if n > 2 || body.contains("huge") {
            Reply::status(413)
        } else {
            Reply::ok()
        }
    })
    .await;
    let gw = start(
        gh("split-src", "split"),
        format!(
            "[[sinks]]\nid = \"split\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\nbatch = {{ max_events = 100, timeout = \"300ms\" }}\n",
            fake.url("/ingest")
        ),
        "",
    )
    .await;
    let ids: Vec<String> = (0..7)
        .map(|i| {
            if i == 3 {
                "huge".to_string()
            } else {
                format!("split-{i}")
            }
        })
        .collect();
    let client = gw.client();
    let sends: Vec<_> = ids
        .iter()
        .map(|id| {
            let body = serde_json::json!({"action": "created", "id": id})
                .to_string()
                .into_bytes();
            let headers = gw.sign("split-src", &body, id);
            tokio::spawn(gw.request(&client, "split-src", &headers, body).send())
        })
        .collect();
    for s in sends {
        assert_eq!(s.await.unwrap().unwrap().status(), 200);
    }
    gw.delivered().await;
    let mut got = delivered_uids(&fake.requests());
    got.sort();
    let mut want: Vec<String> = ids.iter().filter(|i| *i != "huge").cloned().collect();
    want.sort();
    assert_eq!(got, want);
    let letters = dead_letters(&gw, "?sink=split").await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["event"]["metadata"]["uid"], "huge");
    assert!(letters[0]["error"]
        .as_str()
        .unwrap()
        .starts_with("HTTP 413"));
    assert!(
        fake.requests().iter().any(|c| events_of(c).len() > 2),
        "the events were never batched together, so nothing was split"
    );
}

#[tokio::test]
async fn refused_credentials_keep_the_events_and_show_an_unhealthy_sink_until_fixed() {
    let fake = FakeServer::start(|_, _| Reply::status(401).with_body("invalid token")).await;
    let gw = start(
        gh("auth-src", "auth"),
        http_sink(
            "auth",
            &fake,
            &with_retry("initial_backoff = \"5ms\", max_backoff = \"20ms\""),
        ),
        "",
    )
    .await;
    accept(&gw, "auth-src", "auth-1").await;
    fake.wait_until("retries", |r| r.len() >= 3).await;
    let sink = sink_status(&gw, "auth").await;
    assert_eq!(sink["healthy"], false);
    assert_eq!(sink["queued_events"], 1);
    assert!(sink["last_error"].as_str().unwrap().contains("401"));
    assert_eq!(
        metric(
            &gw.metrics().await,
            "siemgate_sink_healthy",
            &[("sink", "auth")]
        ),
        0.0
    );
    assert!(dead_letters(&gw, "?sink=auth").await.is_empty());

    fake.set(|_, _| Reply::ok());
    gw.delivered().await;
    assert_eq!(delivered_uids(&fake.requests()), ["auth-1"]);
    let sink = sink_status(&gw, "auth").await;
    assert_eq!(sink["healthy"], true);
    assert_eq!(sink["queued_events"], 0);
}

#[tokio::test]
async fn events_undelivered_after_max_age_become_dead_letters() {
    let fake = FakeServer::start(|_, _| Reply::status(503)).await;
    let gw = start(
        gh("age-src", "age"),
        http_sink(
            "age",
            &fake,
            &with_retry("initial_backoff = \"5ms\", max_backoff = \"20ms\", max_age = \"1h\""),
        ),
        "",
    )
    .await;
    accept(&gw, "age-src", "age-1").await;
    fake.wait_until("a few attempts", |r| r.len() >= 2).await;
    assert!(dead_letters(&gw, "").await.is_empty());
    gw.clock.advance(Duration::from_secs(3601));
    gw.delivered().await;
    let letters = dead_letters(&gw, "?sink=age").await;
    assert_eq!(letters.len(), 1);
    let err = letters[0]["error"].as_str().unwrap();
    assert!(err.contains("max_age") && err.contains("HTTP 503"), "{err}");
    assert!(letters[0]["attempts"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn a_hanging_sink_and_cut_connections_are_retried_until_delivered() {
    let fake = FakeServer::start(|_, i| match i {
        0 => Reply::Hang,
        1 => Reply::Drop,
        2 => Reply::CutBody(200),
        3 => Reply::CutBody(500),
        _ => Reply::ok(),
    })
    .await;
    let gw = start(
        gh("hang-src", "hang"),
        http_sink("hang", &fake, &with_retry("initial_backoff = \"5ms\"")),
        "",
    )
    .await;
    accept(&gw, "hang-src", "hang-1").await;
    let reqs = fake
        .wait_until("a delivery", |r| r.iter().any(|c| c.delivered()))
        .await;
    assert_eq!(reqs.len(), 5);
    assert!(reqs
        .iter()
        .all(|c| delivered_uids(std::slice::from_ref(c)).len() <= 1));
    gw.delivered().await;
    // Every attempt carried the same event.
    for c in &reqs {
        assert_eq!(events_of(c)[0]["metadata"]["uid"], "hang-1");
    }
}

#[tokio::test]
async fn shutdown_is_not_ready_during_the_grace_period_then_flushes_the_sinks() {
    let fake = FakeServer::ok().await;
    let gw = TestGateway::start(Options {
        server: "shutdown_grace = \"1s\"".into(),
        sources: gh("sd-src", "sd"),
        sinks: Some(http_sink("sd", &fake, "")),
        ..Default::default()
    })
    .await;
    accept(&gw, "sd-src", "sd-1").await;
    let admin = gw.admin("/readyz");
    assert_eq!(reqwest::get(&admin).await.unwrap().status(), 200);
    let TestGateway { handle, dir, .. } = gw;
    let gateway = handle.gateway.clone();
    let ingest = handle.ingest_addr;
    let stopping = tokio::spawn(handle.shutdown());
    // Not ready as soon as shutdown begins, while requests are still served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = reqwest::get(&admin).await.unwrap().status();
        if s == 503 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz stayed {s}");
        tokio::task::yield_now().await;
    }
    assert!(gateway.is_draining());
    let body = serde_json::json!({"action": "created", "id": "sd-2"})
        .to_string()
        .into_bytes();
    let config = gateway.config();
    let headers =
        siemgate::cli::sign_headers(&config, "sd-src", &body, "sd-2", gateway.clock().now())
            .unwrap();
    let mut req = reqwest::Client::new()
        .post(format!("http://{ingest}/v1/webhooks/sd-src"))
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    assert_eq!(
        req.send().await.unwrap().status(),
        200,
        "served during the grace period"
    );
    assert!(stopping.await.unwrap(), "everything was delivered");
    let mut got = delivered_uids(&fake.requests());
    got.sort();
    assert_eq!(got, ["sd-1", "sd-2"]);
    drop(dir);
}

#[tokio::test]
async fn what_a_stopped_or_crashed_gateway_leaves_in_the_spool_is_delivered_after_restart() {
    let fake = FakeServer::start(|_, _| Reply::status(503)).await;
    let gw = start(
        gh("rs-src", "rs"),
        http_sink(
            "rs",
            &fake,
            &with_retry("initial_backoff = \"5ms\", max_backoff = \"20ms\""),
        ),
        "flush_timeout = \"200ms\"",
    )
    .await;
    for i in 0..5 {
        accept(&gw, "rs-src", &format!("rs-{i}")).await;
    }
    fake.wait_until("attempts", |r| !r.is_empty()).await;
    // A crash: nothing is flushed.
    let (_, gw) = gw.restart(false).await;
    assert_eq!(gw.handle.gateway.spool().pending("rs"), 5);
    accept(&gw, "rs-src", "rs-5").await;
    // A graceful stop whose sink stays down: the flush deadline passes, the events stay.
    let (flushed, gw) = gw.restart(true).await;
    assert!(!flushed, "nothing could be delivered");
    fake.set(|_, _| Reply::ok());
    gw.delivered().await;
    let mut got = delivered_uids(&fake.requests());
    got.sort();
    got.dedup();
    assert_eq!(got, ["rs-0", "rs-1", "rs-2", "rs-3", "rs-4", "rs-5"]);
}
