//! The `sentinel` sink's keys, checks and defaults.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::sink::config::{Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};
use crate::verify::Secret;

/// `[[sinks]]` with `type = "sentinel"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelTable {
    endpoint: Option<String>,
    dcr_id: Option<String>,
    stream: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<String>,
    client_assertion_file: Option<String>,
    authority: Option<String>,
    scope: Option<String>,
    allow_http: Option<bool>,
}

/// A checked `sentinel` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelConfig {
    pub endpoint: String,
    pub dcr_id: String,
    pub stream: String,
    pub tenant_id: String,
    pub client_id: String,
    pub credential: EntraCredential,
    pub authority: String,
    pub scope: String,
}

/// How the `sentinel` sink proves itself to Microsoft Entra ID.
#[derive(Debug, Clone, PartialEq)]
pub enum EntraCredential {
    /// `client_secret`: the app registration's secret.
    Secret(Secret),
    /// `client_assertion_file`: a federated token (Kubernetes workload identity:
    /// `$AZURE_FEDERATED_TOKEN_FILE`), re-read for every token request as the kubelet rotates it.
    AssertionFile(PathBuf),
}

impl SinkType for SentinelConfig {
    const NAME: &'static str = "sentinel";
    type Table = SentinelTable;

    fn check(t: SentinelTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        cx.allow_http = t.allow_http.unwrap_or(false);
        SentinelConfig {
            endpoint: cx.required_url("endpoint", t.endpoint),
            dcr_id: cx.required("dcr_id", t.dcr_id),
            stream: cx.required("stream", t.stream),
            tenant_id: cx.required("tenant_id", t.tenant_id),
            client_id: cx.required("client_id", t.client_id),
            credential: {
                let assertion = t
                    .client_assertion_file
                    .map(|p| cx.existing_file("client_assertion_file", &p));
                let secret = cx.secret(
                    "client_secret",
                    t.client_secret,
                    t.client_secret_file,
                    assertion.is_none(),
                );
                match (secret, assertion) {
                    (Some(_), Some(_)) => {
                        cx.err("", "set client_secret or client_assertion_file, not both");
                        EntraCredential::Secret(Secret::new(""))
                    }
                    (_, Some(p)) => EntraCredential::AssertionFile(p),
                    (s, None) => EntraCredential::Secret(s.unwrap_or_else(|| Secret::new(""))),
                }
            },
            authority: cx
                .url("authority", t.authority, false)
                .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            scope: t
                .scope
                .unwrap_or_else(|| "https://monitor.azure.com/.default".into()),
        }
    }

    fn build(&self, sink: &SinkConfig, _: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::SentinelSink::new(sink, self)?))
    }

    fn url(&self) -> Option<&str> {
        Some(&self.endpoint)
    }
}
