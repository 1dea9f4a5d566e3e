//! Fan-out: several SIEMs from one source, each down in turn; per-sink filters and headers.

use super::*;

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
        Splunk::sink("fo-splunk", &hec_srv, QUICK, ""),
        Sentinel::sink("fo-sentinel", &az_srv, QUICK, ""),
        Datadog::sink("fo-datadog", &dd_srv, QUICK, ""),
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
            r.iter().any(|c| Splunk::is_ingest(c) && c.answered == 503)
        })
        .await;
    az_srv
        .wait_until("phase 1 in Sentinel", |r| has_all(Sentinel::uids(r), &sent))
        .await;
    dd_srv
        .wait_until("phase 1 in Datadog", |r| has_all(Datadog::uids(r), &sent))
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
            r.iter()
                .any(|c| Sentinel::is_ingest(c) && c.answered == 503)
        })
        .await;
    hec_srv
        .wait_until("phase 2 in Splunk", |r| has_all(Splunk::uids(r), &sent))
        .await;
    dd_srv
        .wait_until("phase 2 in Datadog", |r| has_all(Datadog::uids(r), &sent))
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
            r.iter().any(|c| {
                Datadog::is_ingest(c) && Datadog::request_uids(c).contains(&"fo-6".to_string())
            })
        })
        .await;
    hec_srv
        .wait_until("phase 3 in Splunk", |r| has_all(Splunk::uids(r), &sent))
        .await;
    az_srv
        .wait_until("phase 3 in Sentinel", |r| has_all(Sentinel::uids(r), &sent))
        .await;
    dd.set(DdMode::Up);

    dd_srv
        .wait_until("everything in Datadog", |r| {
            has_all(Datadog::uids(r), &sent)
        })
        .await;
    gw.delivered().await;
    for (name, got) in [
        ("splunk", Splunk::uids(&hec_srv.requests())),
        ("sentinel", Sentinel::uids(&az_srv.requests())),
        ("datadog", Datadog::uids(&dd_srv.requests())),
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
        Splunk::sink(
            "sev-splunk",
            &hec,
            QUICK,
            "min_severity = \"high\"\nheaders = { \"X-Tenant\" = \"acme\" }"
        ),
        Datadog::sink(
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
        sorted(Splunk::uids(&hec.requests())),
        ["sev-critical", "sev-high"],
        "splunk takes high and above only"
    );
    let dd_reqs = ddf.requests();
    assert_eq!(
        sorted(Datadog::uids(&dd_reqs)),
        ["sev-critical", "sev-high", "sev-medium", "sev-none"]
    );
    for c in hec.requests().iter().filter(|c| Splunk::is_ingest(c)) {
        assert_eq!(c.header("x-tenant"), Some("acme"));
    }
    for c in dd_reqs.iter().filter(|c| Datadog::is_ingest(c)) {
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
        Datadog::sink(
            "hdr",
            &fake,
            QUICK,
            "headers = { \"dd-api-key\" = \"someone-elses-key\" }"
        )
    );
    let config = siemgate::config::parse(&text, dir.path(), &|_| None).unwrap();
    let clock = std::sync::Arc::new(siemgate::verify::ManualClock::at_unix(T0));
    let replay = siemgate::replay::from_config(&config.replay).unwrap();
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
