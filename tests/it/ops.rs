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
