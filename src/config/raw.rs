//! The config file's shape as serde sees it: every table denies unknown keys. Nothing here is
//! checked beyond types; `validate` turns these into a [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;

use super::units::{ConfDuration, ConfSize};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_body: Option<ConfSize>,
    pub header_timeout: Option<ConfDuration>,
    pub idle_timeout: Option<ConfDuration>,
    pub request_timeout: Option<ConfDuration>,
    pub handshake_timeout: Option<ConfDuration>,
    pub shutdown_grace: Option<ConfDuration>,
    pub drain_timeout: Option<ConfDuration>,
    pub max_connections: Option<i64>,
    pub max_header_size: Option<ConfSize>,
    pub max_inflight_body_bytes: Option<ConfSize>,
    pub client_rate_limit: Option<RawRate>,
    pub max_tracked_clients: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub tls: Option<RawTls>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    pub per_second: i64,
    pub burst: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    pub client_ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub max_connections: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    pub dir: Option<String>,
    pub max_size: Option<ConfSize>,
    pub flush_timeout: Option<ConfDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    pub store: Option<String>,
    pub redis_url: Option<String>,
    pub redis_url_file: Option<String>,
    pub key_prefix: Option<String>,
    pub tls: Option<RawSinkTls>,
    pub retention: Option<ConfDuration>,
    pub max_entries: Option<i64>,
}

/// One path or several.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub id: String,
    pub vendor: String,
    pub secrets: Option<Vec<String>>,
    pub secrets_file: Option<OneOrMany>,
    pub tolerance: Option<ConfDuration>,
    pub rate_limit: Option<RawRate>,
    #[serde(default)]
    pub sinks: Vec<String>,
    pub include_raw: Option<bool>,
    // vendor-specific keys
    pub header: Option<String>,
    pub algorithm: Option<String>,
    pub encoding: Option<String>,
    pub prefix: Option<String>,
    pub separator: Option<String>,
    pub signed_template: Option<String>,
    pub key_template: Option<String>,
    pub secret_encoding: Option<String>,
    pub timestamp_header: Option<String>,
    pub timestamp_unit: Option<String>,
    pub id_header: Option<String>,
}

impl RawSource {
    /// The vendor-specific keys that are set, with their values.
    pub fn vendor_options(&self, path: &str) -> crate::vendors::OptionTable<'_> {
        let pairs: [(&'static str, &Option<String>); 11] = [
            ("header", &self.header),
            ("algorithm", &self.algorithm),
            ("encoding", &self.encoding),
            ("prefix", &self.prefix),
            ("separator", &self.separator),
            ("signed_template", &self.signed_template),
            ("key_template", &self.key_template),
            ("secret_encoding", &self.secret_encoding),
            ("timestamp_header", &self.timestamp_header),
            ("timestamp_unit", &self.timestamp_unit),
            ("id_header", &self.id_header),
        ];
        let set = pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_deref()?)))
            .collect();
        crate::vendors::OptionTable::new(path, set)
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    pub max_events: Option<i64>,
    pub max_bytes: Option<ConfSize>,
    pub timeout: Option<ConfDuration>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub initial_backoff: Option<ConfDuration>,
    pub max_backoff: Option<ConfDuration>,
    pub max_age: Option<ConfDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSinkTls {
    pub ca_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub headers: Option<BTreeMap<String, String>>,
    pub min_severity: Option<String>,
    pub batch: Option<RawBatch>,
    pub retry: Option<RawRetry>,
    pub tls: Option<RawSinkTls>,
    pub allow_http: Option<bool>,
    pub timeout: Option<ConfDuration>,
    // file
    pub path: Option<String>,
    // http
    pub url: Option<String>,
    pub method: Option<String>,
    pub signing_secret: Option<String>,
    pub signing_secret_file: Option<String>,
    // splunk_hec
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub index: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    pub host: Option<String>,
    pub channel: Option<String>,
    pub use_ack: Option<bool>,
    pub ack_timeout: Option<ConfDuration>,
    pub compression: Option<String>,
    // sentinel
    pub endpoint: Option<String>,
    pub dcr_id: Option<String>,
    pub stream: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_assertion_file: Option<String>,
    pub authority: Option<String>,
    pub scope: Option<String>,
    // sentinel_data_collector
    pub workspace_id: Option<String>,
    pub shared_key: Option<String>,
    pub shared_key_file: Option<String>,
    pub log_type: Option<String>,
    // datadog
    pub site: Option<String>,
    pub api_key: Option<String>,
    pub api_key_file: Option<String>,
    pub service: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl RawSink {
    /// Names of the type-specific keys that are set.
    pub fn type_keys_set(&self) -> Vec<&'static str> {
        let pairs: [(&'static str, bool); 35] = [
            ("path", self.path.is_some()),
            ("url", self.url.is_some()),
            ("method", self.method.is_some()),
            ("signing_secret", self.signing_secret.is_some()),
            ("signing_secret_file", self.signing_secret_file.is_some()),
            ("token", self.token.is_some()),
            ("token_file", self.token_file.is_some()),
            ("index", self.index.is_some()),
            ("source", self.source.is_some()),
            ("sourcetype", self.sourcetype.is_some()),
            ("host", self.host.is_some()),
            ("channel", self.channel.is_some()),
            ("use_ack", self.use_ack.is_some()),
            ("ack_timeout", self.ack_timeout.is_some()),
            ("compression", self.compression.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("dcr_id", self.dcr_id.is_some()),
            ("stream", self.stream.is_some()),
            ("tenant_id", self.tenant_id.is_some()),
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            (
                "client_assertion_file",
                self.client_assertion_file.is_some(),
            ),
            ("authority", self.authority.is_some()),
            ("scope", self.scope.is_some()),
            ("workspace_id", self.workspace_id.is_some()),
            ("shared_key", self.shared_key.is_some()),
            ("shared_key_file", self.shared_key_file.is_some()),
            ("log_type", self.log_type.is_some()),
            ("site", self.site.is_some()),
            ("api_key", self.api_key.is_some()),
            ("api_key_file", self.api_key_file.is_some()),
            ("service", self.service.is_some()),
            ("tags", self.tags.is_some()),
            ("allow_http", self.allow_http.is_some()),
        ];
        pairs.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect()
    }
}
