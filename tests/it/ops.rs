//! What a platform team runs on: the certificate expiry metric.

use crate::support::*;

#[tokio::test]
async fn cert_expiry_metric_is_the_serving_certificates_not_after() {
    let gw = TestGateway::start(Options {
        tls: Tls::On,
        sources: source("gh", "github", &["s"], ""),
        ..Default::default()
    })
    .await;
    let m = gw.metrics().await;
    assert_eq!(
        metric(
            &m,
            "siemgate_tls_cert_expiry_seconds",
            &[("listener", "ingest")]
        ),
        SERVER_CERT_NOT_AFTER as f64
    );
}

/// Each gateway counts into its own metrics: two in one process, with the same source id,
/// never see each other's requests (so a test's assertions cannot be met by another test).
#[tokio::test]
async fn two_gateways_in_one_process_keep_their_own_metrics() {
    let start = || {
        TestGateway::start(Options {
            tls: Tls::Off,
            sources: source("same-id", "github", &["s"], ""),
            ..Default::default()
        })
    };
    let (a, b) = (start().await, start().await);
    for _ in 0..3 {
        assert_eq!(
            a.post(&a.client(), "same-id", &[], b"{}".to_vec()).await.0,
            401
        );
    }
    let unauthorized = |m: &str| {
        metric(
            m,
            "siemgate_requests_total",
            &[("source", "same-id"), ("outcome", "unauthorized")],
        )
    };
    assert_eq!(unauthorized(&a.metrics().await), 3.0);
    assert_eq!(unauthorized(&b.metrics().await), 0.0);
    let m = b.metrics().await;
    assert!(
        m.contains("# HELP siemgate_requests_total"),
        "descriptions are rendered: {m}"
    );
    // The process's memory is read at each scrape (the same process for both gateways).
    assert!(
        metric(&m, "process_resident_memory_bytes", &[]) > 1_000_000.0,
        "{m}"
    );
    // And its CPU time, described, and never going back between scrapes.
    assert!(
        m.contains("# HELP process_cpu_seconds_total")
            && m.lines()
                .any(|l| l.starts_with("process_cpu_seconds_total ")),
        "{m}"
    );
    let cpu = metric(&m, "process_cpu_seconds_total", &[]);
    let again = metric(&b.metrics().await, "process_cpu_seconds_total", &[]);
    assert!(cpu >= 0.0 && again >= cpu, "{cpu} then {again}");
}
