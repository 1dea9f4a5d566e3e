//! The `sentinel_data_collector` sink: the legacy Azure Monitor HTTP Data Collector API.
//!
//! **Microsoft retired this API on 2026-09-14**; new work belongs on the `sentinel` sink (Logs
//! Ingestion API). It stays for workspaces, sovereign or private deployments still on it and for
//! compatible receivers, and because its SharedKey signature is easy to get subtly wrong.
//!
//! `POST {url}/api/logs?api-version=2016-04-01` (default host `<workspace>.ods.opinsights.azure.com`)
//! with a JSON array of flat records, `Log-Type`, `x-ms-date` (RFC 1123) and
//! `time-generated-field: EventTime`, signed with
//! `SharedKey <workspace>:base64(HMAC-SHA256(base64decode(shared_key), string-to-sign))` where the
//! string to sign is `POST\n<body length in bytes>\napplication/json\nx-ms-date:<date>\n/api/logs`.
//! The length is the UTF-8 byte length: Microsoft's Python sample counts characters, which
//! breaks every non-ASCII body.
//!
//! The API infers column types from JSON and flattens nested objects into columns, so the OCSF
//! event goes in the `Event` column as a JSON string. The service truncates values over 32 KB,
//! which would leave a broken JSON text: an event over 32,000 bytes is sent with its `raw_data`
//! cut to fit and flagged (`unmapped.siemgate.raw_data_truncated`, see [`super::fit`]); one
//! still over it without `raw_data` is sent as it is, for the service to truncate. No
//! compression: the API does not document it.

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;

use super::config::SinkConfig;
use super::summary::{self, Columns};
use super::transport;
use super::{BoxFuture, Delivery, EventSize, Limits, Sink, SinkError};
use crate::spool::Record;
use crate::verify::mac;

mod config;
pub use config::DataCollectorConfig;

/// The API's limit per post is 30 MB; stay well below it.
const MAX_POST: u64 = 25_000_000;
/// The API truncates field values over 32 KB; the `Event` column holds the event's JSON text.
const MAX_FIELD: usize = 32_000;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row<'a> {
    event_time: String,
    #[serde(flatten)]
    columns: Columns<'a>,
    event: &'a str,
}

pub struct DataCollectorSink {
    id: String,
    url: String,
    workspace_id: String,
    key: zeroize::Zeroizing<Vec<u8>>,
    log_type: String,
    headers: http::HeaderMap,
    client: reqwest::Client,
}

/// The `Authorization` value for a body of `content_length` bytes sent at `date` (RFC 1123).
pub fn signature(workspace_id: &str, key: &[u8], content_length: usize, date: &str) -> String {
    let to_sign = format!("POST\n{content_length}\napplication/json\nx-ms-date:{date}\n/api/logs");
    let mac = mac::hmac(
        crate::verify::MacAlgorithm::Sha256,
        key,
        &[to_sign.as_bytes()],
    );
    format!(
        "SharedKey {workspace_id}:{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    )
}

/// `Wed, 01 Jan 2025 00:00:05 GMT`.
pub fn rfc1123(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

impl DataCollectorSink {
    pub fn new(cfg: &SinkConfig, own: &DataCollectorConfig) -> Result<Self, SinkError> {
        let DataCollectorConfig {
            workspace_id,
            shared_key,
            log_type,
            url,
        } = own;
        let setup = |message: &str| SinkError::Setup {
            sink: cfg.id.clone(),
            message: message.into(),
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(shared_key.expose().trim_ascii())
            .map_err(|_| setup("shared_key is not base64 (use the workspace's primary or secondary key as shown in Azure)"))?;
        if key.is_empty() {
            return Err(setup("shared_key is empty"));
        }
        let base = url
            .clone()
            .unwrap_or_else(|| format!("https://{workspace_id}.ods.opinsights.azure.com"));
        Ok(DataCollectorSink {
            id: cfg.id.clone(),
            url: format!("{base}/api/logs?api-version=2016-04-01"),
            workspace_id: workspace_id.clone(),
            key: zeroize::Zeroizing::new(key),
            log_type: log_type.clone(),
            headers: transport::custom_headers(
                cfg,
                &[
                    "authorization",
                    "content-type",
                    "content-encoding",
                    "x-ms-date",
                    "log-type",
                    "time-generated-field",
                ],
            )?,
            client: transport::client(cfg)?,
        })
    }

    fn row(record: &Record, out: &mut Vec<u8>) -> Result<(), String> {
        let s = &record.head;
        let event = std::str::from_utf8(&record.event).map_err(|e| e.to_string())?;
        let row = Row {
            event_time: summary::rfc3339_ms(s.time_ms),
            columns: summary::columns(s),
            event,
        };
        serde_json::to_writer(out, &row).map_err(|e| e.to_string())
    }
}

impl Sink for DataCollectorSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        <DataCollectorConfig as super::config::SinkType>::NAME
    }

    fn event_size(&self, event: &Record) -> Result<Option<EventSize>, String> {
        Ok(Some(EventSize {
            encoded: event.event.len(),
            limit: MAX_FIELD,
            refuse: None,
        }))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: None,
            max_bytes: Some(MAX_POST),
        }
    }

    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let body = match summary::json_array(events, Self::row) {
                Ok(b) => b,
                Err(error) => return Delivery::Rejected { error },
            };
            // Signed with the wall clock: the service refuses dates far from its own.
            let date = rfc1123(time::OffsetDateTime::now_utc());
            let mut auth = match http::HeaderValue::from_str(&signature(
                &self.workspace_id,
                &self.key,
                body.len(),
                &date,
            )) {
                Ok(v) => v,
                Err(e) => {
                    return Delivery::Unauthorized {
                        error: format!("workspace_id cannot be sent in a header: {e}"),
                    }
                }
            };
            auth.set_sensitive(true);
            let req = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header(AUTHORIZATION, auth)
                .header(CONTENT_TYPE, "application/json")
                .header("Log-Type", &self.log_type)
                .header("x-ms-date", &date)
                .header("time-generated-field", "EventTime")
                .body(body);
            match transport::send(req).await {
                Err(d) => d,
                // "Either the URL is wrong or the request is too large": split once, then it is
                // the URL.
                Ok(a) if a.status == http::StatusCode::NOT_FOUND && events.len() > 1 => {
                    Delivery::TooLarge {
                        error: format!("HTTP 404: {}", a.text().trim()),
                    }
                }
                Ok(a) => a.classify(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSPACE: &str = "00000000-1111-2222-3333-444444444444";
    const KEY: &str =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==";

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(KEY)
            .unwrap()
    }

    /// The worked vectors of reference/sinks.md §8.1, which four implementations agree on.
    #[test]
    fn reproduces_the_reference_shared_key_vectors() {
        // A: Microsoft's own example string-to-sign.
        assert_eq!(
            signature(WORKSPACE, &key(), 1024, "Mon, 04 Apr 2016 08:00:00 GMT"),
            format!("SharedKey {WORKSPACE}:kQfMluP3yBFQzfwH0Ye5adOjNq2FCEIWGh0n4uEtCrg=")
        );
        // B: a whole request.
        let body = br#"[{"EventId":"evt_1","Vendor":"acme","Message":"Signature verified","EventTime":"2025-01-01T00:00:00Z"}]"#;
        assert_eq!(body.len(), 103);
        assert_eq!(
            hex::encode(crate::verify::mac::sha256(&[body])),
            "6b6d277e9a042fee85c172ded4753a840aa03084167e491751f675c83a7cd7e5"
        );
        let date = rfc1123(time::macros::datetime!(2025-01-01 00:00:05 UTC));
        assert_eq!(date, "Wed, 01 Jan 2025 00:00:05 GMT");
        assert_eq!(
            signature(WORKSPACE, &key(), body.len(), &date),
            format!("SharedKey {WORKSPACE}:GAtVHo+diiyS32MOJsih0V1lD+cNUiosBQalCFTMKH0=")
        );
        // C: non-ASCII: the byte length (55), not the character count (52).
        let body = r#"[{"EventId":"evt_2","Message":"Signatur geprüft ✓"}]"#;
        assert_eq!((body.len(), body.chars().count()), (55, 52));
        assert_eq!(
            signature(WORKSPACE, &key(), body.len(), &date),
            format!("SharedKey {WORKSPACE}:Z+a50+3280LJg0y+flsVoaRQttXIq4qHIdPgSpw5E+o=")
        );
        assert_eq!(
            signature(WORKSPACE, &key(), body.chars().count(), &date),
            format!("SharedKey {WORKSPACE}:m8r+Pb4Z9D2sXWH4tvk01cJibSkLHMq9qYL1ediAATQ=")
        );
    }

    #[test]
    fn dates_are_rfc_1123_in_gmt_whatever_the_offset() {
        let t = time::macros::datetime!(2016-04-04 10:00:00 +02:00);
        assert_eq!(rfc1123(t), "Mon, 04 Apr 2016 08:00:00 GMT");
    }
}
