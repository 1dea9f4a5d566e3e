//! The `splunk_hec` sink's keys, checks and defaults.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::conf::units::ConfDuration;
use crate::sink::config::{Compression, Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};
use crate::verify::Secret;

/// `[[sinks]]` with `type = "splunk_hec"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkTable {
    url: Option<String>,
    token: Option<String>,
    token_file: Option<String>,
    index: Option<String>,
    source: Option<String>,
    sourcetype: Option<String>,
    host: Option<String>,
    channel: Option<String>,
    use_ack: Option<bool>,
    ack_timeout: Option<ConfDuration>,
    compression: Option<String>,
    allow_http: Option<bool>,
}

/// A checked `splunk_hec` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SplunkConfig {
    pub url: String,
    pub token: Secret,
    pub index: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub host: Option<String>,
    pub channel: Option<String>,
    pub use_ack: bool,
    /// With `use_ack`: how long to wait for the indexer acknowledgement before sending the
    /// batch again.
    pub ack_timeout: Duration,
    pub compression: Compression,
}

impl SinkType for SplunkConfig {
    const NAME: &'static str = "splunk_hec";
    type Table = SplunkTable;

    fn check(t: SplunkTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        cx.allow_http = t.allow_http.unwrap_or(false);
        SplunkConfig {
            url: cx.required_url("url", t.url),
            token: cx.required_secret("token", t.token, t.token_file),
            index: t.index,
            source: t.source,
            sourcetype: t.sourcetype,
            host: t.host,
            channel: t.channel,
            use_ack: t.use_ack.unwrap_or(false),
            ack_timeout: cx.duration("ack_timeout", t.ack_timeout, Duration::from_secs(300)),
            compression: cx.compression(t.compression, Compression::Gzip),
        }
    }

    fn build(&self, sink: &SinkConfig, _: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::SplunkSink::new(sink, self)?))
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }
}
