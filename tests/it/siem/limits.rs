//! Events over a sink's per-event limit: raw_data cut to fit and flagged; only what is still
//! too large is a dead letter, and every dead letter is logged.

use super::*;

/// The gateway's log lines (JSON), captured on this test's thread: a `#[tokio::test]` runs the
/// gateway's tasks on the thread that installed the subscriber.
#[derive(Clone, Default)]
pub(super) struct Logs(Arc<Mutex<Vec<u8>>>);

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
            Datadog::sink("bigdd", &dd_fake, QUICK, ""),
            Sentinel::sink("bigaz", &az_fake, QUICK, "")
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
        .wait_until("two logs", |r| Datadog::uids(r).len() >= 2)
        .await;
    az_fake
        .wait_until("two records", |r| Sentinel::uids(r).len() >= 2)
        .await;
    gw.delivered().await;

    let dd_reqs = dd_fake.requests();
    assert_eq!(sorted(Datadog::uids(&dd_reqs)), ["big-raw", "big-small"]);
    let logs_sent: Vec<Value> = dd_reqs
        .iter()
        .filter(|c| Datadog::is_ingest(c) && c.delivered())
        .flat_map(dd_logs)
        .collect();
    for l in &logs_sent {
        check_dd_log(l, "big-src");
        assert!(l.to_string().len() <= 1_000_000, "a log over 1 MB");
        assert_eq!(raw_cut(&l["ocsf"]), l["event_id"] == "big-raw");
    }
    let az_reqs = az_fake.requests();
    assert_eq!(sorted(Sentinel::uids(&az_reqs)), ["big-raw", "big-small"]);
    for c in az_reqs
        .iter()
        .filter(|c| Sentinel::is_ingest(c) && c.delivered())
    {
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
