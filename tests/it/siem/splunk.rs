//! Splunk HEC: the envelope, token, channel, acknowledgements, health, partial batches, and a
//! token fixed by a reload.

use super::*;

pub(super) const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";
pub(super) const HEC_CHANNEL: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
pub(super) const HEC_EVENT: &str = "/services/collector/event";
pub(super) const HEC_ACK: &str = "/services/collector/ack";
pub(super) const HEC_HEALTH: &str = "/services/collector/health";

/// Splunk HEC, token [`HEC_TOKEN`].
pub(super) struct Splunk;

impl Siem for Splunk {
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\nid = \"{id}\"\ntype = \"splunk_hec\"\nurl = \"{}\"\ntoken = \"{HEC_TOKEN}\"\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
            fake.url("")
        )
    }

    fn is_ingest(c: &Captured) -> bool {
        c.method == "POST" && c.path == HEC_EVENT
    }

    fn request_uids(c: &Captured) -> Vec<String> {
        let objs = hec_events(c);
        crate::ocsf_schema::assert_conforms("HEC events", objs.iter().map(|o| &o["event"]));
        objs.iter().map(|o| uid_of(&o["event"])).collect()
    }
}

/// A HEC answer: `{"text":..,"code":..}`.
pub(super) fn hec(status: u16, code: u32, text: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": text, "code": code}).to_string())
}

pub(super) fn hec_at(code: u32, text: &str, i: usize) -> Reply {
    Reply::status(400)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": text, "code": code, "invalid-event-number": i}).to_string())
}

pub(super) fn hec_ok() -> Reply {
    hec(200, 0, "Success")
}

pub(super) fn hec_healthy() -> Reply {
    hec(200, 17, "HEC is healthy")
}

pub(super) fn hec_ack_id(id: u64) -> Reply {
    Reply::status(200)
        .with_header("content-type", "application/json; charset=UTF-8")
        .with_body(&json!({"text": "Success", "code": 0, "ackId": id}).to_string())
}

/// The objects of a HEC `/event` body (JSON objects back to back); `Err(i)` when object `i`
/// does not parse.
pub(super) fn hec_objects(body: &[u8]) -> Result<Vec<Value>, usize> {
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
pub(super) enum Hec {
    Health,
    Events(Vec<Value>),
    Ack(Vec<u64>),
}

/// What HEC checks before it takes a request, answered as HEC answers (codes from the
/// "Possible error codes" table).
pub(super) fn hec_check(c: &Captured, token: &str) -> Result<Hec, Reply> {
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
pub(super) async fn hec_fake(
    mut on: impl FnMut(&Captured, Hec) -> Reply + Send + 'static,
) -> FakeServer {
    FakeServer::start(move |c, _| match hec_check(c, HEC_TOKEN) {
        Ok(h) => on(c, h),
        Err(r) => r,
    })
    .await
}

pub(super) fn hec_events(c: &Captured) -> Vec<Value> {
    hec_objects(&c.body).unwrap_or_else(|i| {
        panic!(
            "object {i} of the HEC body does not parse: {}",
            String::from_utf8_lossy(&c.body)
        )
    })
}

/// The objects follow each other with nothing in between: `}{`, no newline, no trailing bytes.
pub(super) fn assert_back_to_back(body: &[u8]) {
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
        Splunk::sink(
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
        .wait_until("three delivered events", |r| Splunk::uids(r).len() >= 3)
        .await;
    assert_eq!(sorted(Splunk::uids(&reqs)), ["hec-0", "hec-1", "hec-2"]);
    let posts: Vec<&Captured> = reqs.iter().filter(|c| Splunk::is_ingest(c)).collect();
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
        Splunk::sink("busy", &fake, QUICK, ""),
    )
    .await;
    for i in 0..3 {
        accept(&gw, "busy-src", &format!("busy-{i}")).await;
    }
    let reqs = fake
        .wait_until("three delivered events", |r| Splunk::uids(r).len() >= 3)
        .await;
    gw.delivered().await;
    let reqs_now = fake.requests();
    assert_eq!(
        sorted(Splunk::uids(&reqs_now)),
        ["busy-0", "busy-1", "busy-2"],
        "each event delivered exactly once"
    );
    let posts: Vec<&Captured> = reqs.iter().filter(|c| Splunk::is_ingest(c)).collect();
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
pub(super) async fn hec_ack_fake(acked: impl Fn(u64) -> bool + Send + 'static) -> FakeServer {
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

pub(super) fn is_ack_poll(c: &Captured) -> bool {
    c.method == "POST" && c.path == HEC_ACK
}

pub(super) fn ack_ids(c: &Captured) -> Vec<u64> {
    c.json()["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

pub(super) fn check_ack_poll(c: &Captured) {
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
        Splunk::sink(
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
    let posts: Vec<&Captured> = reqs_now.iter().filter(|c| Splunk::is_ingest(c)).collect();
    assert_eq!(posts.len(), 1, "POSTed once; an ack false is not a failure");
    assert_eq!(
        sorted(Splunk::request_uids(posts[0])),
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
    assert!(reqs.iter().all(|c| !Splunk::is_ingest(c) || c.delivered()));
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
        Splunk::sink(
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
    let posts: Vec<&Captured> = all.iter().filter(|c| Splunk::is_ingest(c)).collect();
    assert_eq!(
        posts.len(),
        2,
        "sent once, and once more after the ack timeout"
    );
    // At least once: the same events arrived twice.
    assert_eq!(
        sorted(Splunk::request_uids(posts[0])),
        ["ackto-0", "ackto-1"]
    );
    assert_eq!(
        Splunk::request_uids(posts[0]),
        Splunk::request_uids(posts[1])
    );
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
    let gw = start(
        "",
        gh("hc-src", &["hc"]),
        Splunk::sink("hc", &fake, QUICK, ""),
    )
    .await;
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
        Splunk::sink(
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
        r.iter().filter(|c| Splunk::is_ingest(c)).count() >= 2
    })
    .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let posts: Vec<&Captured> = reqs.iter().filter(|c| Splunk::is_ingest(c)).collect();
    let first = Splunk::request_uids(posts[0]);
    assert_eq!(first.len(), 3, "the three events were one batch");
    assert_eq!(posts[0].answered, 400);
    assert_eq!(posts.len(), 2, "one resend: {posts:?}");
    assert_eq!(
        Splunk::request_uids(posts[1]),
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
pub(super) async fn hec_events_ok() -> FakeServer {
    hec_fake(|_, h| match h {
        Hec::Health => hec_healthy(),
        Hec::Events(_) => hec_ok(),
        Hec::Ack(_) => hec(400, 14, "ACK is disabled"),
    })
    .await
}

/// Accepts events `tok-0` and `tok-1` from `tok-src`, then waits until the HEC has refused
/// the sink's token three times.
pub(super) async fn accept_refused(gw: &TestGateway, fake: &FakeServer) {
    accept(gw, "tok-src", "tok-0").await;
    accept(gw, "tok-src", "tok-1").await;
    fake.wait_until("refused POSTs", |r| {
        r.iter()
            .filter(|c| Splunk::is_ingest(c) && c.answered == 403)
            .count()
            >= 3
    })
    .await;
}

#[tokio::test]
async fn splunk_hec_refused_token_keeps_events_until_the_config_is_fixed() {
    let fake = hec_events_ok().await;
    let sinks = Splunk::sink("tok", &fake, QUICK, "")
        .replace(HEC_TOKEN, "99999999-0000-0000-0000-000000000000");
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
    assert!(Splunk::uids(&fake.requests()).is_empty());

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
    let got = Splunk::uids(&fake.requests());
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
            Splunk::sink("tok", &fake, QUICK, "").replace(HEC_TOKEN, token)
        )
    };
    std::fs::write(&cfg, text(wrong)).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, std::time::Duration::ZERO).await;
    accept_refused(&gw, &fake).await;
    assert!(Splunk::uids(&fake.requests()).is_empty());

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
        sorted(Splunk::uids(r)) == ["tok-0", "tok-1"]
    })
    .await;
    accept(&gw, "tok-src", "tok-2").await;
    let reqs = fake
        .wait_until("the next event", |r| Splunk::uids(r).len() == 3)
        .await;
    assert_eq!(sorted(Splunk::uids(&reqs)), ["tok-0", "tok-1", "tok-2"]);
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
    let dc = DataCollector::sink("sw", &refusing, QUICK, "");
    std::fs::write(&cfg, text(dc)).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, std::time::Duration::ZERO).await;
    accept_padded(&gw, "sw-src", "sw-big", 50_000).await;
    refusing
        .wait_until("refused posts", |r| {
            r.iter().filter(|c| c.answered == 403).count() >= 2
        })
        .await;

    std::fs::write(&cfg, text(Splunk::sink("sw", &fake, QUICK, ""))).unwrap();
    let (status, answer) = gw.admin_call(Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    let reqs = fake
        .wait_until("the kept event", |r| Splunk::uids(r) == ["sw-big"])
        .await;
    let events: Vec<Value> = reqs
        .iter()
        .filter(|c| Splunk::is_ingest(c))
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
    let sink = |id: &str, tls: &str| {
        Splunk::sink(id, &fake, QUICK, tls).replace("allow_http = true\n", "")
    };

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
    assert_eq!(Splunk::uids(&fake.requests()), ["tr-0"]);
    assert_eq!(
        health_checked(&trusting, "tr").await["health_check"],
        "passed"
    );
}
