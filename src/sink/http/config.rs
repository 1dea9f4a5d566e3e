//! The `http` sink's keys, checks and defaults.

use std::sync::Arc;

use serde::Deserialize;

use crate::sink::config::{Compression, Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};
use crate::verify::Secret;

/// `[[sinks]]` with `type = "http"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTable {
    url: Option<String>,
    method: Option<String>,
    signing_secret: Option<String>,
    signing_secret_file: Option<String>,
    compression: Option<String>,
    allow_http: Option<bool>,
}

/// A checked `http` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub url: String,
    /// `POST`, `PUT` or `PATCH`.
    pub method: String,
    pub signing_secret: Option<Secret>,
    pub compression: Compression,
}

impl SinkType for HttpConfig {
    const NAME: &'static str = "http";
    type Table = HttpTable;

    fn check(t: HttpTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        cx.allow_http = t.allow_http.unwrap_or(false);
        HttpConfig {
            url: cx.required_url("url", t.url),
            method: match t.method.as_deref().unwrap_or("POST") {
                m @ ("POST" | "PUT" | "PATCH") => m.to_string(),
                other => {
                    cx.err("method", format!("{other:?}: expected POST, PUT or PATCH"));
                    "POST".into()
                }
            },
            signing_secret: cx.secret(
                "signing_secret",
                t.signing_secret,
                t.signing_secret_file,
                false,
            ),
            // Any receiver can read a plain body; gzip is opt-in for the generic sink.
            compression: cx.compression(t.compression, Compression::None),
        }
    }

    fn build(&self, sink: &SinkConfig, with: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::HttpSink::new(
            sink,
            self,
            with.clock.clone(),
        )?))
    }

    fn url(&self) -> Option<&str> {
        Some(&self.url)
    }
}
