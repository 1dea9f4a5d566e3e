//! The config file's shape as serde sees it: every table denies unknown keys. Nothing here is
//! checked beyond types; `validate` turns these into a [`super::Config`].

use serde::Deserialize;

use crate::conf::units::{ConfDuration, ConfSize};
pub use crate::conf::RawSinkTls;

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
