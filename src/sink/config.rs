//! A sink's config: the keys every sink has ([`SinkConfig`]), the [`SinkType`] each sink's
//! folder implements for its own keys (`splunk/config.rs`, ...), the checks those use
//! ([`SinkCheck`]), and `sink_types!`, which turns the list of sink types into [`SinkKind`].
//! How one `[[sinks]]` table is split between the two is `table.rs`'s.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::table::RawSinkEntry;
use super::{Sink, SinkError, SinkKind};
use crate::conf::units::{ConfDuration, ConfSize};
use crate::conf::RawSinkTls;
use crate::conf::{valid_id, Ctx, ID_RULE};
use crate::telemetry::Telemetry;
use crate::verify::Clock;
use crate::verify::Secret;

/// What a sink's folder provides: its table as the file writes it, the checks and defaults that
/// make it this validated config, and how to start the sink from it. Listed once in
/// `sink_types!` (in `sink/mod.rs`), which makes it a [`SinkKind`] arm.
pub trait SinkType: Sized {
    /// The `type` value that selects this sink.
    const NAME: &'static str;
    /// The sink's own keys, as serde reads them (`deny_unknown_fields`).
    type Table: DeserializeOwned;
    /// The table checked, with its defaults filled in; every problem goes to `cx`.
    fn check(table: Self::Table, cx: &mut SinkCheck<'_, '_>) -> Self;
    /// The running sink.
    fn build(&self, sink: &SinkConfig, with: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError>;
    /// Where the sink sends (for `/v1/status`, redacted there); `None` for a sink with no URL.
    fn url(&self) -> Option<&str> {
        None
    }
}

/// What the gateway hands every sink it starts.
pub struct Services<'a> {
    /// The gateway's clock: event ages are measured on it.
    pub clock: &'a Arc<dyn Clock>,
    pub tel: &'a Telemetry,
}

/// Declares the sink types: the [`SinkKind`] enum with one arm per type, and the dispatch from
/// a `type` name to that sink's table, checks and constructor.
macro_rules! sink_types {
    ($($(#[$doc:meta])* $arm:ident($config:ty),)*) => {
        /// The sink a `type` names, with its own validated settings.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SinkKind {
            $($(#[$doc])* $arm($config),)*
        }

        impl SinkKind {
            /// Every `type` name, in the order errors list them.
            pub const TYPES: &'static [&'static str] =
                &[$(<$config as $crate::sink::config::SinkType>::NAME),*];

            pub fn type_name(&self) -> &'static str {
                match self {
                    $(SinkKind::$arm(_) => <$config as $crate::sink::config::SinkType>::NAME,)*
                }
            }

            /// Where the sink sends, unredacted; `None` for a sink with no URL.
            pub fn url(&self) -> Option<&str> {
                use $crate::sink::config::SinkType;
                match self {
                    $(SinkKind::$arm(c) => c.url(),)*
                }
            }

            pub(crate) fn build(
                &self,
                sink: &$crate::sink::config::SinkConfig,
                with: &$crate::sink::config::Services<'_>,
            ) -> Result<std::sync::Arc<dyn $crate::sink::Sink>, $crate::sink::SinkError> {
                use $crate::sink::config::SinkType;
                match self {
                    $(SinkKind::$arm(c) => c.build(sink, with),)*
                }
            }
        }

        /// A sink's own table as serde read it, before its checks.
        pub(crate) enum RawKind {
            $($arm(<$config as $crate::sink::config::SinkType>::Table),)*
        }

        impl RawKind {
            /// The keys of the table of sink type `name`; `None` for no such type.
            pub(crate) fn fields(name: &str) -> Option<&'static [&'static str]> {
                $(if name == <$config as $crate::sink::config::SinkType>::NAME {
                    return Some($crate::sink::table::field_names::<
                        <$config as $crate::sink::config::SinkType>::Table,
                    >());
                })*
                None
            }

            /// `table` read as the table of sink type `name` (a known one).
            pub(crate) fn de(
                name: &str,
                table: toml::Spanned<toml::de::DeValue<'_>>,
                path: &str,
                text: &str,
                errors: &mut Vec<$crate::conf::ConfigError>,
            ) -> Option<RawKind> {
                $(if name == <$config as $crate::sink::config::SinkType>::NAME {
                    return $crate::conf::de_section(table, path, text, errors).map(RawKind::$arm);
                })*
                None
            }

            pub(crate) fn check(self, cx: &mut $crate::sink::config::SinkCheck<'_, '_>) -> SinkKind {
                use $crate::sink::config::SinkType;
                match self {
                    $(RawKind::$arm(t) => SinkKind::$arm(<$config>::check(t, cx)),)*
                }
            }
        }
    };
}
pub(crate) use sink_types;

/// A validated sink: the keys every sink has, and its own settings in `kind`. A reload compares
/// these with `==` to decide whether a sink changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    pub id: String,
    pub kind: SinkKind,
    pub headers: Vec<(String, String)>,
    pub min_severity: Option<u8>,
    pub batch: BatchConfig,
    pub retry: RetryConfig,
    pub ca_file: Option<PathBuf>,
    /// The sink's `allow_http` (for sinks that have the key): `http://` URLs are taken.
    pub allow_http: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// `retry.max_retry_after` when not set: a SIEM asking for up to an hour's pause gets it.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest a sink's own `Retry-After` is waited (however long `max_backoff` is).
    pub max_retry_after: Duration,
    pub max_age: Duration,
}

/// A request body's `compression` (`"gzip"` or `"none"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// The keys every sink has.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    pub id: String,
    /// Read from the table before serde (it chooses the sink's own table); a field so that
    /// serde requires it, as a string, and counts it a shared key.
    #[serde(rename = "type")]
    #[allow(dead_code)]
    pub kind: String,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub min_severity: Option<String>,
    pub batch: Option<RawBatch>,
    pub retry: Option<RawRetry>,
    pub tls: Option<RawSinkTls>,
    pub timeout: Option<ConfDuration>,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub max_events: Option<i64>,
    pub max_bytes: Option<ConfSize>,
    pub timeout: Option<ConfDuration>,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub initial_backoff: Option<ConfDuration>,
    pub max_backoff: Option<ConfDuration>,
    pub max_retry_after: Option<ConfDuration>,
    pub max_age: Option<ConfDuration>,
}

/// Checks a sink read by `table::de_sink` into its [`SinkConfig`].
pub(crate) fn build_sink(cx: &mut Ctx<'_>, path: &str, r: RawSinkEntry) -> SinkConfig {
    let RawSinkEntry { common: r, own } = r;
    if !valid_id(&r.id) {
        cx.err(format!("{path}.id"), ID_RULE);
    }
    let mut check = SinkCheck {
        cx,
        path,
        allow_http: false,
    };
    let kind = own.check(&mut check);
    let allow_http = check.allow_http;
    let min_severity = r
        .min_severity
        .and_then(|s| match crate::event::severity_id(&s) {
            Some(id) => Some(id),
            None => {
                cx.err(
                    format!("{path}.min_severity"),
                    format!("{s:?}: expected info, low, medium, high or critical"),
                );
                None
            }
        });
    let b = r.batch.unwrap_or_default();
    let batch = BatchConfig {
        max_events: b
            .max_events
            .and_then(|v| cx.positive(&format!("{path}.batch.max_events"), v, 100_000))
            .unwrap_or(500) as usize,
        max_bytes: b.max_bytes.map(|s| s.0).unwrap_or(1 << 20),
        timeout: cx.duration(
            &format!("{path}.batch.timeout"),
            b.timeout,
            Duration::from_secs(1),
        ),
    };
    let rt = r.retry.unwrap_or_default();
    let retry = RetryConfig {
        initial_backoff: cx.duration(
            &format!("{path}.retry.initial_backoff"),
            rt.initial_backoff,
            Duration::from_secs(1),
        ),
        max_backoff: cx.duration(
            &format!("{path}.retry.max_backoff"),
            rt.max_backoff,
            Duration::from_secs(600),
        ),
        max_retry_after: cx.duration(
            &format!("{path}.retry.max_retry_after"),
            rt.max_retry_after,
            DEFAULT_MAX_RETRY_AFTER,
        ),
        max_age: cx.duration(
            &format!("{path}.retry.max_age"),
            rt.max_age,
            Duration::from_secs(24 * 3600),
        ),
    };
    let mut headers = Vec::new();
    for (k, v) in r.headers.unwrap_or_default() {
        let ok_name = http::HeaderName::from_bytes(k.as_bytes()).is_ok();
        let ok_value = http::HeaderValue::from_str(&v).is_ok();
        if !ok_name || !ok_value {
            cx.err(
                format!("{path}.headers.{k}"),
                "not a valid HTTP header name and value",
            );
        } else {
            headers.push((k, v));
        }
    }
    let ca_file = r
        .tls
        .and_then(|t| t.ca_file)
        .map(|p| cx.existing_file(format!("{path}.tls.ca_file"), &p));
    SinkConfig {
        id: r.id,
        kind,
        headers,
        min_severity,
        batch,
        retry,
        ca_file,
        allow_http,
        timeout: cx.duration(
            &format!("{path}.timeout"),
            r.timeout,
            Duration::from_secs(30),
        ),
    }
}

/// The checks a sink's own table goes through; every problem is reported under the sink's key
/// path (`sinks[N].key`).
pub struct SinkCheck<'c, 'a> {
    cx: &'c mut Ctx<'a>,
    path: &'c str,
    /// The sink's `allow_http`, for sinks that have the key: set it before checking a URL.
    pub allow_http: bool,
}

impl SinkCheck<'_, '_> {
    /// A problem with `key` of this sink; `""` for the sink as a whole.
    pub fn err(&mut self, key: &str, msg: impl Into<String>) {
        let path = self.key(key);
        self.cx.err(path, msg);
    }

    fn key(&self, key: &str) -> String {
        if key.is_empty() {
            self.path.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A key that must be set and not empty (`""` when it is not, after reporting it).
    pub fn required(&mut self, key: &str, v: Option<String>) -> String {
        match v {
            Some(v) if !v.is_empty() => v,
            _ => {
                self.err("", format!("missing {key}"));
                String::new()
            }
        }
    }

    /// An `https://` URL (or `http://` with `allow_http`), without a trailing `/`.
    pub fn url(&mut self, key: &str, v: Option<String>, required: bool) -> Option<String> {
        let Some(u) = v else {
            if required {
                self.err("", format!("missing {key}"));
            }
            return None;
        };
        let u = u.trim_end_matches('/').to_string();
        if u.starts_with("https://") || (self.allow_http && u.starts_with("http://")) {
            Some(u)
        } else if u.starts_with("http://") {
            self.err(key, "plain http:// is refused unless allow_http = true");
            None
        } else {
            // The URL may carry a credential (userinfo, a query token) that is not a whole
            // secret value the redactor knows, so it is quoted redacted.
            let shown = super::redact::redact_url(&u);
            self.err(key, format!("{shown} is not an https:// URL"));
            None
        }
    }

    /// A URL that must be set: `""` (already reported) when it is missing or refused.
    pub fn required_url(&mut self, key: &str, v: Option<String>) -> String {
        self.url(key, v, true).unwrap_or_default()
    }

    /// A secret given inline as `key` or in a file as `key_file`; at most one of them.
    pub fn secret(
        &mut self,
        key: &str,
        inline: Option<String>,
        file: Option<String>,
        required: bool,
    ) -> Option<Secret> {
        self.cx.secret(self.path, key, inline, file, required)
    }

    /// A required secret: an empty one (already reported) when it is missing.
    pub fn required_secret(
        &mut self,
        key: &str,
        inline: Option<String>,
        file: Option<String>,
    ) -> Secret {
        self.secret(key, inline, file, true)
            .unwrap_or_else(|| Secret::new(""))
    }

    /// A duration greater than zero, `default` when unset.
    pub fn duration(&mut self, key: &str, v: Option<ConfDuration>, default: Duration) -> Duration {
        let path = self.key(key);
        self.cx.duration(&path, v, default)
    }

    /// `compression`: `"gzip"` or `"none"`, `default` when unset.
    pub fn compression(&mut self, v: Option<String>, default: Compression) -> Compression {
        match v.as_deref() {
            None => default,
            Some("gzip") => Compression::Gzip,
            Some("none") => Compression::None,
            Some(other) => {
                self.err(
                    "compression",
                    format!("{other:?}: expected \"gzip\" or \"none\""),
                );
                Compression::Gzip
            }
        }
    }

    /// A file that must exist, resolved against the config's directory.
    pub fn existing_file(&mut self, key: &str, p: &str) -> PathBuf {
        let path = self.key(key);
        self.cx.existing_file(path, p)
    }

    /// A path resolved against the config's directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        self.cx.resolve_path(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::table::tests::with_sink;
    use crate::sink::SplunkConfig;

    #[test]
    fn a_sinks_secret_reads_from_its_file_and_its_keys_reach_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("hec-token");
        std::fs::write(&token, "from-file\n").unwrap();
        let c = with_sink(&format!(
            "type = \"splunk_hec\"\nurl = \"https://splunk:8088/\"\ntoken_file = {:?}\nindex = \"main\"\nheaders = {{ x-team = \"secops\" }}",
            token.display().to_string()
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let sink = &c.sinks[0];
        let SinkKind::SplunkHec(hec) = &sink.kind else {
            panic!("{:?}", sink.kind)
        };
        assert_eq!(hec.token.expose(), b"from-file");
        assert_eq!(hec.url, "https://splunk:8088");
        assert_eq!(hec.index.as_deref(), Some("main"));
        assert_eq!(hec.compression, Compression::Gzip);
        assert_eq!(sink.headers, [("x-team".to_string(), "secops".to_string())]);
        assert_eq!(sink.kind.type_name(), <SplunkConfig as SinkType>::NAME);
    }
}
