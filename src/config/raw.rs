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

/// A `[[sources]]` table. Keys other than these are the vendor's own (`header = "..."`): each
/// vendor reads its own and refuses the rest, so no list of vendor keys is kept here.
#[derive(Deserialize)]
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
    /// Every other key: the vendor's.
    #[serde(flatten)]
    pub vendor_keys: std::collections::BTreeMap<String, toml::Value>,
}
