//! The `splunk_hec` sink: Splunk's HTTP Event Collector, JSON event endpoint.
//!
//! Each batch is one `POST {url}/services/collector/event` whose body is the events' HEC
//! envelopes concatenated with nothing between them, which is how Splunk's own libraries send
//! batches. An envelope carries `time` (epoch seconds with milliseconds, from the OCSF `time`),
//! the configured `host`/`source`/`sourcetype`/`index`, the OCSF event as `event`, and indexed
//! `fields` with the event id, so duplicates from at-least-once delivery can be found.
//!
//! HEC answers `{"text":..,"code":N}`: codes 8 and 9 (internal error, server busy) are retried,
//! token codes are "unauthorized" (kept until an operator fixes the token), and code 6 with
//! `invalid-event-number` marks the one bad event of a batch whose earlier events were indexed.
//! With `use_ack`, a 200 is only the start: the batch is done when `/services/collector/ack`
//! says its `ackId` is indexed, and is sent again when no acknowledgement comes within
//! `ack_timeout`.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::config::{Compression, SinkConfig};
use super::summary;
use super::transport::{self, Answer};
use super::{BoxFuture, Delivery, EventSize, Limits, Sink, SinkError};
use crate::spool::Record;

mod config;
pub use config::SplunkConfig;

const CHANNEL: &str = "x-splunk-request-channel";
/// Splunk Cloud and releases before 6.5 refuse requests over 1 MB; newer ones take far more,
/// but there is nothing to gain from bigger requests.
const MAX_REQUEST: u64 = 1_000_000;
/// Acknowledgement polls start fast (an idle indexer acks in well under a second) and slow down
/// to Splunk's advice of polling every few seconds.
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(5);

pub struct SplunkSink {
    id: String,
    base: String,
    auth: http::HeaderValue,
    channel: String,
    host: Option<String>,
    source: Option<String>,
    sourcetype: String,
    index: Option<String>,
    use_ack: bool,
    ack_timeout: Duration,
    compression: Compression,
    headers: http::HeaderMap,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct Envelope<'a> {
    time: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    event: &'a RawValue,
    fields: Fields<'a>,
}

/// Indexed fields: flat, string values only (HEC refuses nested ones with code 15).
#[derive(Serialize)]
struct Fields<'a> {
    event_id: &'a str,
    siemgate_source: &'a str,
    vendor: &'a str,
    severity: &'a str,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Reply {
    text: Option<String>,
    code: Option<i64>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AckReply {
    acks: std::collections::HashMap<String, bool>,
}

impl SplunkSink {
    pub fn new(cfg: &SinkConfig, own: &SplunkConfig) -> Result<Self, SinkError> {
        let SplunkConfig {
            url,
            token,
            index,
            source,
            sourcetype,
            host,
            channel,
            use_ack,
            ack_timeout,
            compression,
        } = own;
        let channel = channel.clone().unwrap_or_else(transport::uuid_v4);
        if http::HeaderValue::from_str(&channel).is_err() {
            return Err(SinkError::Setup {
                sink: cfg.id.clone(),
                message: format!("channel {channel:?} cannot be sent as a header"),
            });
        }
        Ok(SplunkSink {
            id: cfg.id.clone(),
            base: url.clone(),
            auth: transport::secret_header(cfg, "token", "Splunk ", token)?,
            channel,
            host: host.clone(),
            source: source.clone(),
            sourcetype: sourcetype.clone().unwrap_or_else(|| "_json".into()),
            index: index.clone(),
            use_ack: *use_ack,
            ack_timeout: *ack_timeout,
            compression: *compression,
            headers: transport::custom_headers(
                cfg,
                &["authorization", "content-type", "content-encoding", CHANNEL],
            )?,
            client: transport::client(cfg)?,
        })
    }

    /// One event's envelope.
    fn envelope(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), String> {
        let s = &record.head;
        let time =
            RawValue::from_string(summary::epoch_seconds(s.time_ms)).map_err(|e| e.to_string())?;
        let env = Envelope {
            time: &time,
            host: self.host.as_deref(),
            source: self.source.as_deref().unwrap_or(s.source.as_str()),
            sourcetype: &self.sourcetype,
            index: self.index.as_deref(),
            event: summary::raw(&record.event)?,
            fields: Fields {
                event_id: s.uid.as_str(),
                siemgate_source: s.source.as_str(),
                vendor: s.vendor.as_str(),
                severity: s.severity(),
            },
        };
        serde_json::to_writer(out, &env).map_err(|e| e.to_string())
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CHANNEL, &self.channel)
            .header(CONTENT_TYPE, "application/json")
    }

    /// Polls until the indexer acknowledges `ack_id`, or `ack_timeout` passes.
    async fn await_ack(&self, ack_id: u64) -> Delivery {
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let body = format!("{{\"acks\":[{ack_id}]}}");
        let key = ack_id.to_string();
        let mut wait = FIRST_POLL;
        let mut last = String::from("no answer yet");
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Delivery::Retry {
                    error: format!(
                        "HEC: ackId {ack_id} not acknowledged within ack_timeout ({:?}; last poll: {last}); sending the batch again",
                        self.ack_timeout
                    ),
                    after: Some(Duration::ZERO),
                };
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(MAX_POLL);
            let req = self
                .post("/services/collector/ack")
                .query(&[("channel", self.channel.as_str())])
                .body(body.clone());
            match transport::send(req).await {
                Ok(a) if a.status.is_success() => {
                    let reply: AckReply = serde_json::from_slice(&a.body).unwrap_or_default();
                    if reply.acks.get(&key).copied().unwrap_or(false) {
                        return Delivery::Delivered;
                    }
                    last = "not indexed yet".into();
                }
                Ok(a) => last = format!("HTTP {}: {}", a.status.as_u16(), a.text().trim()),
                Err(d) => last = d.error().to_string(),
            }
            tracing::debug!(sink = %self.id, ack_id, %last, "waiting for the indexer acknowledgement");
        }
    }
}

/// What a HEC answer means; `Ok(ack_id)` for a success.
fn interpret(answer: &Answer) -> Result<Option<u64>, Delivery> {
    let reply: Reply = serde_json::from_slice(&answer.body).unwrap_or_default();
    if answer.status.is_success() {
        return Ok(reply.ack_id);
    }
    let error = match (&reply.code, &reply.text) {
        (Some(code), Some(text)) => {
            format!("HTTP {}: HEC code {code}: {text}", answer.status.as_u16())
        }
        _ => return Err(answer.classify()),
    };
    Err(match (answer.status.as_u16(), reply.code) {
        (400, Some(6)) if reply.invalid_event_number.is_some() => Delivery::Partial {
            accepted: reply.invalid_event_number.unwrap_or(0),
            error,
        },
        // Token disabled, required, malformed or unknown (401/403, and the 400 forms).
        (_, Some(1..=4 | 21 | 22)) => Delivery::Unauthorized { error },
        // Internal error, server busy, queues full: back-pressure, not a verdict.
        (_, Some(8 | 9 | 18..=20)) => Delivery::Retry {
            error,
            after: transport::retry_after(&answer.headers),
        },
        _ => match answer.classify() {
            Delivery::Rejected { .. } => Delivery::Rejected { error },
            Delivery::Unauthorized { .. } => Delivery::Unauthorized { error },
            Delivery::TooLarge { .. } => Delivery::TooLarge { error },
            Delivery::Retry { after, .. } => Delivery::Retry { error, after },
            other => other,
        },
    })
}

impl Sink for SplunkSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        <SplunkConfig as super::config::SinkType>::NAME
    }

    /// siemgate keeps HEC requests to 1 MB (Splunk Cloud's cap): an event whose envelope is
    /// over it goes with its `raw_data` cut to fit ([`super::fit`]), or whole when that is not
    /// enough, for Splunk to decide.
    fn event_size(&self, event: &Record) -> Result<Option<EventSize>, String> {
        let mut env = Vec::new();
        self.envelope(event, &mut env)?;
        Ok(Some(EventSize {
            encoded: env.len(),
            limit: MAX_REQUEST as usize,
            refuse: None,
        }))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: None,
            max_bytes: Some(MAX_REQUEST),
        }
    }

    fn max_send_time(&self, request_timeout: Duration) -> Duration {
        let ack = if self.use_ack {
            self.ack_timeout + request_timeout
        } else {
            Duration::ZERO
        };
        request_timeout + ack + Duration::from_secs(1)
    }

    fn check(&self) -> Option<BoxFuture<'_, Result<(), String>>> {
        Some(Box::pin(async move {
            let req = self
                .client
                .get(format!("{}/services/collector/health", self.base))
                .headers(self.headers.clone())
                .header(AUTHORIZATION, self.auth.clone());
            match transport::send(req).await {
                Ok(a) if a.status.is_success() => Ok(()),
                Ok(a) => Err(format!("HTTP {}: {}", a.status.as_u16(), a.text().trim())),
                Err(d) => Err(d.error().to_string()),
            }
        }))
    }

    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let mut body =
                Vec::with_capacity(events.iter().map(|e| e.event.len() + 256).sum::<usize>());
            for e in events {
                if let Err(error) = self.envelope(e, &mut body) {
                    return Delivery::Rejected { error };
                }
            }
            let req = self.post("/services/collector/event");
            let req = match self.compression {
                Compression::Gzip => req
                    .header(CONTENT_ENCODING, "gzip")
                    .body(transport::gzip(&body)),
                Compression::None => req.body(body),
            };
            let answer = match transport::send(req).await {
                Ok(a) => a,
                Err(d) => return d,
            };
            match interpret(&answer) {
                Err(d) => d,
                Ok(_) if !self.use_ack => Delivery::Delivered,
                Ok(Some(ack_id)) => self.await_ack(ack_id).await,
                Ok(None) => {
                    tracing::warn!(sink = %self.id, "use_ack is on but HEC answered without an ackId: the token has indexer acknowledgement off; counting the 200 as delivered");
                    Delivery::Delivered
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    fn kind(status: u16, body: &str) -> &'static str {
        match interpret(&answer(status, body)) {
            Ok(_) => "ok",
            Err(d) => d.label(),
        }
    }

    /// The HEC code table of reference/sinks.md §1: only 8 and 9 (and the 503 health codes)
    /// are worth retrying; token codes wait for an operator; the rest are dead letters.
    #[test]
    fn hec_codes_are_classified_as_splunk_documents_them() {
        let hec = |code: u32, text: &str| format!(r#"{{"text":"{text}","code":{code}}}"#);
        assert_eq!(kind(200, &hec(0, "Success")), "ok");
        assert_eq!(kind(503, &hec(9, "Server is busy")), "retry");
        assert_eq!(kind(500, &hec(8, "Internal server error")), "retry");
        assert_eq!(kind(503, &hec(18, "HEC is unhealthy")), "retry");
        for (status, code) in [(403, 1), (401, 2), (401, 3), (403, 4), (400, 21), (400, 22)] {
            assert_eq!(kind(status, &hec(code, "token")), "unauthorized", "{code}");
        }
        for code in [5, 6, 7, 10, 11, 12, 13, 14, 15, 16] {
            assert_eq!(kind(400, &hec(code, "bad")), "rejected", "{code}");
        }
        assert_eq!(kind(413, "Content-Length too large"), "split");
        assert_eq!(kind(502, "<html>bad gateway</html>"), "retry");
        match interpret(&answer(
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#,
        )) {
            Err(Delivery::Partial { accepted, error }) => {
                assert_eq!(accepted, 2);
                assert_eq!(error, "HTTP 400: HEC code 6: Invalid data format");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            interpret(&answer(200, r#"{"text":"Success","code":0,"ackId":7}"#)).unwrap(),
            Some(7)
        );
    }
}
