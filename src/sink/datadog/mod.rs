//! The `datadog` sink: Datadog Logs intake v2.
//!
//! `POST {url}/api/v2/logs` (the intake host of the configured `site`, or `url`) with
//! `DD-API-KEY` and a JSON array of logs, gzip-compressed by default. Each log carries the
//! reserved attributes (`ddsource`, `ddtags`, `hostname`, `service`, `status` from the OCSF
//! severity, `message`, `timestamp` in epoch ms), the event id, and the OCSF event under
//! `ocsf` so its fields never collide with Datadog's reserved ones.
//!
//! Limits: at most 1000 logs and 5 MB (uncompressed) per request, so batches are cut and split
//! to fit; at most 1 MB per log, which Datadog would silently truncate: a bigger event is sent
//! with its `raw_data` cut to fit and flagged (`unmapped.siemgate.raw_data_truncated`, see
//! [`super::fit`]), and one still too big without it is a dead letter instead. Datadog also drops logs older than 18 hours (or over 2 hours ahead)
//! **after** answering 202. An event that has waited that long in the spool (a long outage)
//! is counted in `siemgate_sink_stale_events_total` and logged, and is sent without its
//! `timestamp` (Datadog stamps it on intake) and with `siemgate_original_timestamp`, so it is
//! not lost in silence.

use std::sync::Arc;

use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use serde::Serialize;
use serde_json::value::RawValue;

use super::config::{Compression, SinkConfig};
use super::summary;
use super::transport;
use super::{BoxFuture, Delivery, EventSize, Limits, Sink, SinkError};
use crate::spool::Record;
use crate::telemetry::{names, Telemetry};
use crate::verify::Clock;

mod config;
pub use config::DatadogConfig;

const MAX_ENTRIES: usize = 1000;
const MAX_PAYLOAD: usize = 5_000_000;
/// What batches aim at on the events' own bytes, below the hard cap (as Datadog's agent does).
const BATCH_BYTES: u64 = 4_250_000;
const MAX_LOG: usize = 1_000_000;
const MAX_PAST_MS: i64 = 18 * 3600 * 1000;
const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;

#[derive(Serialize)]
struct Log<'a> {
    ddsource: &'a str,
    ddtags: String,
    hostname: &'a str,
    service: &'a str,
    status: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    siemgate_original_timestamp: Option<i64>,
    event_id: &'a str,
    ocsf: &'a RawValue,
}

pub struct DatadogSink {
    id: String,
    url: String,
    api_key: http::HeaderValue,
    source: String,
    service: String,
    tags: String,
    hostname: String,
    compression: Compression,
    headers: http::HeaderMap,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// `siemgate_sink_stale_events_total{sink}`.
    stale_events: metrics::Counter,
}

/// Datadog's log status for an OCSF severity id.
fn status(severity_id: u8) -> &'static str {
    match severity_id {
        2 => "notice",
        3 => "warn",
        4 => "error",
        5 => "critical",
        6 => "emergency",
        _ => "info",
    }
}

impl DatadogSink {
    pub fn new(
        cfg: &SinkConfig,
        own: &DatadogConfig,
        clock: Arc<dyn Clock>,
        tel: &Telemetry,
    ) -> Result<Self, SinkError> {
        let DatadogConfig {
            url,
            api_key,
            service,
            source,
            tags,
            compression,
        } = own;
        Ok(DatadogSink {
            id: cfg.id.clone(),
            url: format!("{url}/api/v2/logs"),
            api_key: transport::secret_header(cfg, "api_key", "", api_key)?,
            source: source.clone().unwrap_or_else(|| "siemgate".into()),
            service: service.clone().unwrap_or_else(|| "siemgate".into()),
            tags: tags.join(","),
            hostname: transport::hostname(),
            compression: *compression,
            headers: transport::custom_headers(
                cfg,
                &["dd-api-key", "content-type", "content-encoding"],
            )?,
            client: transport::client(cfg)?,
            clock,
            stale_events: tel.counter(names::SINK_STALE_EVENTS, &[("sink", &cfg.id)]),
        })
    }

    /// One log; `stale` is set when Datadog would drop it for its age.
    fn log(&self, record: &Record, now_ms: i64, out: &mut Vec<u8>) -> Result<bool, String> {
        let s = &record.head;
        let time = s.time_ms;
        let stale = time < now_ms - MAX_PAST_MS || time > now_ms + MAX_FUTURE_MS;
        let mut ddtags = self.tags.clone();
        for (k, v) in [
            ("siemgate_source", s.source.as_str()),
            ("vendor", s.vendor.as_str()),
        ] {
            if !v.is_empty() {
                if !ddtags.is_empty() {
                    ddtags.push(',');
                }
                ddtags.push_str(k);
                ddtags.push(':');
                ddtags.push_str(v);
            }
        }
        let log = Log {
            ddsource: &self.source,
            ddtags,
            hostname: &self.hostname,
            service: &self.service,
            status: status(s.severity_id),
            message: s.message.as_str(),
            timestamp: (!stale).then_some(time),
            siemgate_original_timestamp: stale.then_some(time),
            event_id: s.uid.as_str(),
            ocsf: summary::raw(&record.event)?,
        };
        serde_json::to_writer(out, &log).map_err(|e| e.to_string())?;
        Ok(stale)
    }
}

impl Sink for DatadogSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        <DatadogConfig as super::config::SinkType>::NAME
    }

    fn event_size(&self, event: &Record) -> Result<Option<EventSize>, String> {
        let mut log = Vec::new();
        self.log(event, crate::event::unix_ms(self.clock.now()), &mut log)?;
        Ok(Some(EventSize {
            encoded: log.len(),
            limit: MAX_LOG,
            refuse: Some("Datadog takes at most 1,000,000 bytes per log and would truncate it"),
        }))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: Some(MAX_ENTRIES),
            max_bytes: Some(BATCH_BYTES),
        }
    }

    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let now = crate::event::unix_ms(self.clock.now());
            let mut stale = 0u64;
            let body = summary::json_array(events, |r, out| {
                stale += u64::from(self.log(r, now, out)?);
                Ok(())
            });
            let body = match body {
                Ok(b) => b,
                Err(error) => return Delivery::Rejected { error },
            };
            if body.len() > MAX_PAYLOAD || events.len() > MAX_ENTRIES {
                return Delivery::TooLarge {
                    error: format!(
                        "{} logs are {} bytes, over Datadog's 1000 logs or 5,000,000 bytes per request",
                        events.len(),
                        body.len()
                    ),
                };
            }
            let req = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header("DD-API-KEY", self.api_key.clone())
                .header(CONTENT_TYPE, "application/json");
            let req = match self.compression {
                Compression::Gzip => req
                    .header(CONTENT_ENCODING, "gzip")
                    .body(transport::gzip(&body)),
                Compression::None => req.body(body),
            };
            let result = transport::execute(req).await;
            if stale > 0 && result == Delivery::Delivered {
                self.stale_events.increment(stale);
                tracing::warn!(sink = %self.id, events = stale, "delivered events older than 18 hours (or over 2 hours ahead); Datadog drops such logs after a 202, so they went with Datadog's intake time and their own time in siemgate_original_timestamp");
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_datadog_statuses() {
        let got: Vec<_> = (0..=6).map(status).collect();
        assert_eq!(
            got,
            [
                "info",
                "info",
                "notice",
                "warn",
                "error",
                "critical",
                "emergency"
            ]
        );
    }
}
