//! The `datadog` sink's keys, checks and defaults.

use std::sync::Arc;

use serde::Deserialize;

use crate::sink::config::{Compression, Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};
use crate::verify::Secret;

/// `[[sinks]]` with `type = "datadog"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogTable {
    site: Option<String>,
    url: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<String>,
    service: Option<String>,
    source: Option<String>,
    tags: Option<Vec<String>>,
    compression: Option<String>,
    allow_http: Option<bool>,
}

/// A checked `datadog` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DatadogConfig {
    /// The intake's base URL: `url` as given, or `https://http-intake.logs.{site}`.
    pub url: String,
    pub api_key: Secret,
    pub service: Option<String>,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub compression: Compression,
}

impl SinkType for DatadogConfig {
    const NAME: &'static str = "datadog";
    type Table = DatadogTable;

    fn check(t: DatadogTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        cx.allow_http = t.allow_http.unwrap_or(false);
        let url = match (t.url, t.site) {
            (Some(_), Some(_)) => {
                cx.err("", "set either site or url, not both");
                String::new()
            }
            (Some(u), None) => cx.required_url("url", Some(u)),
            (None, site) => {
                let site = site.unwrap_or_else(|| "datadoghq.com".into());
                if site.is_empty()
                    || !site
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                {
                    cx.err(
                        "site",
                        format!("{site:?} is not a Datadog site such as \"datadoghq.eu\""),
                    );
                }
                format!("https://http-intake.logs.{site}")
            }
        };
        DatadogConfig {
            url,
            api_key: cx.required_secret("api_key", t.api_key, t.api_key_file),
            service: t.service,
            source: t.source,
            tags: t.tags.unwrap_or_default(),
            compression: cx.compression(t.compression, Compression::Gzip),
        }
    }

    fn build(&self, sink: &SinkConfig, with: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::DatadogSink::new(
            sink,
            self,
            with.clock.clone(),
            with.tel,
        )?))
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }
}
