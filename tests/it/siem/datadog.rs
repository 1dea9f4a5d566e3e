//! Datadog Logs intake v2.

use super::*;

pub(super) const DD_KEY: &str = "0123456789abcdef0123456789abcdef";
pub(super) const DD_PATH: &str = "/api/v2/logs";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum DdMode {
    Up,
    Down,
    Hang,
}

#[derive(Clone)]
pub(super) struct Dd(Arc<Mutex<DdMode>>);

impl Dd {
    pub(super) fn new(m: DdMode) -> Dd {
        Dd(Arc::new(Mutex::new(m)))
    }

    pub(super) fn set(&self, m: DdMode) {
        *self.0.lock().unwrap() = m;
    }
}

pub(super) fn dd_error(status: u16, msg: &str) -> Reply {
    Reply::status(status)
        .with_header("content-type", "application/json")
        .with_body(&json!({"errors": [msg]}).to_string())
}

/// What the logs intake checks, answered as it answers.
pub(super) fn datadog_reply(mode: DdMode, c: &Captured) -> Reply {
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

pub(super) async fn datadog_fake(dd: &Dd) -> FakeServer {
    let dd = dd.clone();
    FakeServer::start(move |c, _| {
        let mode = *dd.0.lock().unwrap();
        datadog_reply(mode, c)
    })
    .await
}

/// The Datadog logs intake, API key [`DD_KEY`].
pub(super) struct Datadog;

impl Siem for Datadog {
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\nid = \"{id}\"\ntype = \"datadog\"\nurl = \"{}\"\napi_key = \"{DD_KEY}\"\nservice = \"webhooks\"\nsource = \"siemgate-gw\"\ntags = [\"env:test\", \"team:secops\"]\nallow_http = true\n{FAST}\n{batch}\n{extra}\n",
            fake.url("")
        )
    }

    fn is_ingest(c: &Captured) -> bool {
        c.path == DD_PATH
    }

    fn request_uids(c: &Captured) -> Vec<String> {
        dd_logs(c)
            .iter()
            .map(|l| l["event_id"].as_str().unwrap().to_string())
            .collect()
    }
}

pub(super) fn dd_logs(c: &Captured) -> Vec<Value> {
    match c.json() {
        Value::Array(a) => {
            crate::ocsf_schema::assert_conforms("Datadog logs", a.iter().map(|l| &l["ocsf"]));
            a
        }
        other => panic!("expected a JSON array of logs, got {other}"),
    }
}

pub(super) fn check_dd_request(c: &Captured) {
    assert_eq!(c.method, "POST");
    assert_eq!(c.header("dd-api-key"), Some(DD_KEY));
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("content-encoding"), Some("gzip"));
    assert!(user_agent_ok(c), "{:?}", c.header("user-agent"));
}

pub(super) fn check_dd_log(l: &Value, src: &str) {
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
        Datadog::sink(
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
    fake.wait_until("a refused first request", |r| {
        r.iter().any(Datadog::is_ingest)
    })
    .await;
    accept_many(&gw, "dd-src", &ids[1..], body).await;
    dd.set(DdMode::Up);
    fake.wait_until("1,200 delivered logs", |r| Datadog::uids(r).len() >= 1200)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let got = Datadog::uids(&reqs);
    assert_eq!(got.len(), 1200, "duplicates delivered");
    assert_eq!(set(&got), set(&ids));
    let delivered: Vec<&Captured> = reqs
        .iter()
        .filter(|c| Datadog::is_ingest(c) && c.delivered())
        .collect();
    assert!(delivered.len() >= 3, "{} requests", delivered.len());
    for c in reqs.iter().filter(|c| Datadog::is_ingest(c)) {
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
        Datadog::sink(
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
    fake.wait_until("a refused first request", |r| {
        r.iter().any(Datadog::is_ingest)
    })
    .await;
    accept_padded_with_huge(&gw, "ddmb-src", &ids[1..], 900_000, ("ddmb-huge", 3)).await;
    dd.set(DdMode::Up);
    fake.wait_until("eight delivered logs", |r| Datadog::uids(r).len() >= 8)
        .await;
    gw.delivered().await;
    let reqs = fake.requests();
    let mut all = ids.clone();
    all.push("ddmb-huge".into());
    assert_eq!(sorted(Datadog::uids(&reqs)), all);
    for c in reqs.iter().filter(|c| Datadog::is_ingest(c)) {
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
        reqs.iter()
            .any(|c| Datadog::is_ingest(c) && dd_logs(c).len() >= 2),
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
        Datadog::sink("dds", &fake, QUICK, ""),
    )
    .await;
    accept(&gw, "dds-src", "dds-0").await;
    let reqs = fake
        .wait_until("a refused request", |r| r.iter().any(Datadog::is_ingest))
        .await;
    // While fresh, the log carries its own time.
    let first = &dd_logs(reqs.iter().find(|c| Datadog::is_ingest(c)).unwrap())[0];
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
            .filter(|c| Datadog::is_ingest(c))
            .any(|c| dd_logs(c)[0].get("timestamp").is_none())
    })
    .await;
    dd.set(DdMode::Up);
    let reqs = fake
        .wait_until("dds-0 delivered", |r| {
            Datadog::uids(r).contains(&"dds-0".to_string())
        })
        .await;
    gw.delivered().await;
    let c = reqs
        .iter()
        .find(|c| Datadog::is_ingest(c) && c.delivered())
        .unwrap();
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
