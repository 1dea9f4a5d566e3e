//! The `sentinel_data_collector` sink's keys, checks and defaults.

use std::sync::Arc;

use serde::Deserialize;

use crate::sink::config::{Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};
use crate::verify::Secret;

/// `[[sinks]]` with `type = "sentinel_data_collector"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCollectorTable {
    workspace_id: Option<String>,
    shared_key: Option<String>,
    shared_key_file: Option<String>,
    log_type: Option<String>,
    url: Option<String>,
    allow_http: Option<bool>,
}

/// A checked `sentinel_data_collector` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct DataCollectorConfig {
    pub workspace_id: String,
    pub shared_key: Secret,
    pub log_type: String,
    /// `None`: the workspace's own host.
    pub url: Option<String>,
}

impl SinkType for DataCollectorConfig {
    const NAME: &'static str = "sentinel_data_collector";
    type Table = DataCollectorTable;

    fn check(t: DataCollectorTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        cx.allow_http = t.allow_http.unwrap_or(false);
        DataCollectorConfig {
            workspace_id: cx.required("workspace_id", t.workspace_id),
            shared_key: cx.required_secret("shared_key", t.shared_key, t.shared_key_file),
            log_type: {
                let lt = t.log_type.unwrap_or_else(|| "SiemGate".into());
                if lt.is_empty()
                    || lt.len() > 100
                    || !lt.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    cx.err("log_type", "must be 1-100 characters of A-Z a-z 0-9 _");
                }
                lt
            },
            url: cx.url("url", t.url, false),
        }
    }

    fn build(&self, sink: &SinkConfig, _: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::DataCollectorSink::new(sink, self)?))
    }

    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}
