//! The `sentinel` sink: Microsoft Sentinel through the Azure Monitor Logs Ingestion API.
//!
//! `POST {endpoint}/dataCollectionRules/{dcr_id}/streams/{stream}?api-version=2023-01-01`
//! with a JSON array of records, gzip-compressed, and a Microsoft Entra ID token from the
//! client-credentials flow at `{authority}/{tenant_id}/oauth2/v2.0/token`, proved with the
//! app's `client_secret` or with a federated token from `client_assertion_file` (Kubernetes
//! workload identity). The token is cached until shortly before it expires; a 401 from the
//! ingestion API fetches a fresh one and sends the batch again once before the sink counts as
//! unauthorized.
//!
//! The API takes at most 1 MB per call, compressed or not: bodies are kept to 1,000,000 bytes
//! of uncompressed JSON (batches are cut below that and split when the records come out
//! bigger). A single event whose record is larger is sent with its `raw_data` cut to fit and
//! flagged (`unmapped.siemgate.raw_data_truncated`, see [`super::fit`]); one still too large
//! without it is a dead letter. Each record is a row of
//! the table in `deploy/sentinel/`: `TimeGenerated`, the key columns and the OCSF `Event`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::SinkConfig;
use super::summary::{self, Columns};
use super::transport;
use super::{BoxFuture, Delivery, EventSize, Limits, Sink, SinkError};
use crate::spool::Record;

mod config;
pub use config::{EntraCredential, SentinelConfig};

/// The API's limit per call, on the uncompressed JSON (as Microsoft's SDK counts it).
pub const MAX_CALL: usize = 1_000_000;
/// Batches are cut on the events' own bytes; the records add their columns to that.
const BATCH_BYTES: u64 = 800_000;
/// Never keep a token into its last minutes.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row<'a> {
    time_generated: String,
    #[serde(flatten)]
    columns: Columns<'a>,
    event: &'a RawValue,
}

struct Token {
    header: http::HeaderValue,
    refresh_at: Instant,
}

pub struct SentinelSink {
    id: String,
    ingest_url: String,
    token_url: String,
    client_id: String,
    credential: EntraCredential,
    scope: String,
    token: Mutex<Option<Token>>,
    headers: http::HeaderMap,
    client: reqwest::Client,
}

impl SentinelSink {
    pub fn new(cfg: &SinkConfig, own: &SentinelConfig) -> Result<Self, SinkError> {
        let SentinelConfig {
            endpoint,
            dcr_id,
            stream,
            tenant_id,
            client_id,
            credential,
            authority,
            scope,
        } = own;
        if let EntraCredential::Secret(s) = credential {
            if s.expose_str().is_none() {
                return Err(SinkError::Setup {
                    sink: cfg.id.clone(),
                    message: "client_secret is not UTF-8 text".into(),
                });
            }
        }
        Ok(SentinelSink {
            id: cfg.id.clone(),
            ingest_url: format!(
                "{endpoint}/dataCollectionRules/{dcr_id}/streams/{stream}?api-version=2023-01-01"
            ),
            token_url: format!("{authority}/{tenant_id}/oauth2/v2.0/token"),
            client_id: client_id.clone(),
            credential: credential.clone(),
            scope: scope.clone(),
            token: Mutex::new(None),
            headers: transport::custom_headers(
                cfg,
                &["authorization", "content-type", "content-encoding"],
            )?,
            client: transport::client(cfg)?,
        })
    }

    fn row(record: &Record, out: &mut Vec<u8>) -> Result<(), String> {
        let s = &record.head;
        let row = Row {
            time_generated: summary::rfc3339_ms(s.time_ms),
            columns: summary::columns(s),
            event: summary::raw(&record.event)?,
        };
        serde_json::to_writer(out, &row).map_err(|e| e.to_string())
    }

    /// A bearer token: the cached one, or a new one when there is none, it is near expiry, or
    /// `stale` (the API refused it).
    async fn token(&self, stale: bool) -> Result<http::HeaderValue, Delivery> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if !stale && Instant::now() < t.refresh_at {
                return Ok(t.header.clone());
            }
        }
        *cached = None;
        let t = self.fetch_token().await?;
        let header = t.header.clone();
        *cached = Some(t);
        Ok(header)
    }

    async fn fetch_token(&self) -> Result<Token, Delivery> {
        let assertion;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
        ];
        match &self.credential {
            EntraCredential::Secret(s) => {
                form.push(("client_secret", s.expose_str().unwrap_or_default()));
            }
            EntraCredential::AssertionFile(path) => {
                // Re-read each time: the kubelet rotates the projected token.
                let text = std::fs::read_to_string(path).map_err(|e| Delivery::Retry {
                    error: format!(
                        "client_assertion_file {}: cannot read it: {e}",
                        path.display()
                    ),
                    after: None,
                })?;
                assertion = zeroize::Zeroizing::new(text.trim().to_string());
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", assertion.as_str()));
            }
        }
        let req = self.client.post(&self.token_url).form(&form);
        let answer = transport::send(req).await.map_err(|d| Delivery::Retry {
            error: format!("Entra ID token endpoint: {}", d.error()),
            after: None,
        })?;
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        if !answer.status.is_success() {
            // Entra ID explains itself in `error` and `error_description` (never echoing the
            // secret); keep the first line of the description.
            let why = match (json["error"].as_str(), json["error_description"].as_str()) {
                (Some(e), Some(d)) => format!("{e}: {}", d.lines().next().unwrap_or("")),
                (Some(e), None) => e.to_string(),
                _ => answer.text().trim().chars().take(300).collect(),
            };
            let error = format!(
                "Entra ID token endpoint answered HTTP {}: {why}",
                answer.status.as_u16()
            );
            return Err(match answer.classify() {
                Delivery::Retry { after, .. } => Delivery::Retry { error, after },
                // A wrong tenant, client id or secret: only an operator can fix it, and the
                // events wait for that.
                _ => Delivery::Unauthorized { error },
            });
        }
        let access = json["access_token"].as_str().unwrap_or("");
        // v2 endpoints give a number, v1 a string.
        let expires_in = json["expires_in"]
            .as_u64()
            .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(300);
        let mut header = http::HeaderValue::from_str(&format!("Bearer {access}"))
            .ok()
            .filter(|_| !access.is_empty())
            .ok_or_else(|| Delivery::Retry {
                error: "Entra ID token endpoint answered without a usable access_token".into(),
                after: None,
            })?;
        header.set_sensitive(true);
        let lifetime = Duration::from_secs(expires_in);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(sink = %self.id, expires_in, "fetched an Entra ID token");
        Ok(Token {
            header,
            refresh_at: Instant::now() + (lifetime - margin),
        })
    }
}

impl Sink for SentinelSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        <SentinelConfig as super::config::SinkType>::NAME
    }

    fn event_size(&self, event: &Record) -> Result<Option<EventSize>, String> {
        let mut row = Vec::new();
        Self::row(event, &mut row)?;
        Ok(Some(EventSize {
            // A call with this record alone: `[` and `]` around it.
            encoded: row.len() + 2,
            limit: MAX_CALL,
            refuse: Some("the Logs Ingestion API takes at most 1,000,000 bytes per call"),
        }))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_events: None,
            max_bytes: Some(BATCH_BYTES),
        }
    }

    fn max_send_time(&self, request_timeout: Duration) -> Duration {
        // A token, the call, a fresh token and the call again.
        request_timeout * 4 + Duration::from_secs(1)
    }

    fn check(&self) -> Option<BoxFuture<'_, Result<(), String>>> {
        Some(Box::pin(async move {
            self.token(false)
                .await
                .map(|_| ())
                .map_err(|d| d.error().to_string())
        }))
    }

    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let body = match summary::json_array(events, Self::row) {
                Ok(b) => b,
                Err(error) => return Delivery::Rejected { error },
            };
            if body.len() > MAX_CALL {
                return Delivery::TooLarge {
                    error: format!(
                        "{} records are {} bytes, over the Logs Ingestion API's 1,000,000 bytes per call",
                        events.len(),
                        body.len()
                    ),
                };
            }
            let body = Bytes::from(transport::gzip(&body));
            let mut stale = false;
            loop {
                let token = match self.token(stale).await {
                    Ok(t) => t,
                    Err(d) => return d,
                };
                let req = self
                    .client
                    .post(&self.ingest_url)
                    .headers(self.headers.clone())
                    .header(AUTHORIZATION, token)
                    .header(CONTENT_TYPE, "application/json")
                    .header(CONTENT_ENCODING, "gzip")
                    .header("x-ms-client-request-id", transport::uuid_v4())
                    .body(body.clone());
                let answer = match transport::send(req).await {
                    Ok(a) => a,
                    Err(d) => return d,
                };
                if answer.status == http::StatusCode::UNAUTHORIZED && !stale {
                    tracing::info!(sink = %self.id, "the Logs Ingestion API refused the token; fetching a new one");
                    stale = true;
                    continue;
                }
                return answer.classify();
            }
        })
    }
}
