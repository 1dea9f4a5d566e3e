//! A sink's config: the keys every sink has, and the dispatch on `type` to the table of the
//! sink it names.
//!
//! A `[[sinks]]` table is read in two parts. The keys of `RawSink` (`id`, `type`, `headers`,
//! `min_severity`, `batch`, `retry`, `tls`, `timeout`) are the same for every sink and checked
//! here into a [`SinkConfig`]; every other key belongs to the sink `type` names, whose folder
//! (`splunk/config.rs`, ...) defines its table as a serde struct that denies unknown keys and
//! implements [`SinkType`]. The valid keys are those structs' fields, read from serde
//! (`field_names`): there is no list to keep. A key of neither is reported on its own line,
//! `sinks[N].key: not a key of sink type T`, and the rest of the sink is still checked.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Sink, SinkError, SinkKind};
use crate::config::raw::RawSinkTls;
use crate::config::units::{ConfDuration, ConfSize};
use crate::config::{de_section, valid_id, ConfigError, Ctx, Secret, ID_RULE};
use crate::telemetry::Telemetry;
use crate::verify::Clock;

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
                    return Some($crate::sink::config::field_names::<
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
                errors: &mut Vec<$crate::config::ConfigError>,
            ) -> Option<RawKind> {
                $(if name == <$config as $crate::sink::config::SinkType>::NAME {
                    return $crate::config::de_section(table, path, text, errors).map(RawKind::$arm);
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
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
    pub max_age: Option<ConfDuration>,
}

/// One `[[sinks]]` table as serde read it: the shared keys and the sink's own table.
pub(crate) struct RawSinkEntry {
    common: RawSink,
    own: super::RawKind,
}

/// Reads the `[[sinks]]` table at `path`: the shared keys as a [`RawSink`], the others as the
/// table of its `type`. Every problem goes to `errors`; `None` when the sink cannot be built.
pub(crate) fn de_sink(
    item: Spanned<DeValue<'_>>,
    path: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<RawSinkEntry> {
    let span = item.span();
    let table = match item.into_inner() {
        DeValue::Table(t) => t,
        other => {
            // Not a table: serde says so, as for any other section.
            de_section::<RawSink>(Spanned::new(span, other), path, text, errors);
            return None;
        }
    };
    let kind = match table.get("type").map(Spanned::get_ref) {
        Some(DeValue::String(t)) => Some(t.to_string()),
        _ => None,
    };
    let common_keys = field_names::<RawSink>();
    let own_keys = kind.as_deref().and_then(super::RawKind::fields);
    let (mut common, mut own) = (DeTable::new(), DeTable::new());
    for (key, value) in table {
        let name: &str = key.get_ref();
        if common_keys.contains(&name) {
            common.insert(key, value);
        } else if let (Some(kind), Some(own_keys)) = (&kind, own_keys) {
            if own_keys.contains(&name) {
                own.insert(key, value);
            } else {
                errors.push(ConfigError::at(
                    format!("{path}.{name}"),
                    format!(
                        "not a key of sink type {kind}; expected one of {}",
                        [common_keys, own_keys].concat().join(", ")
                    ),
                ));
            }
        }
        // Without a known type, the other keys belong to no table to check them against.
    }
    let common = de_section::<RawSink>(
        Spanned::new(span.clone(), DeValue::Table(common)),
        path,
        text,
        errors,
    );
    let own = match (kind, own_keys) {
        (Some(kind), Some(_)) => super::RawKind::de(
            &kind,
            Spanned::new(span, DeValue::Table(own)),
            path,
            text,
            errors,
        ),
        (Some(kind), None) => {
            errors.push(ConfigError::at(
                format!("{path}.type"),
                format!(
                    "unknown sink type {kind:?}; expected {}",
                    one_of(SinkKind::TYPES)
                ),
            ));
            None
        }
        // serde has reported the missing or mistyped `type`
        (None, _) => None,
    };
    Some(RawSinkEntry {
        common: common?,
        own: own?,
    })
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Checks a sink read by [`de_sink`] into its [`SinkConfig`].
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

/// The field names serde reads for the struct `T`: its valid keys.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldNames) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// A deserializer that answers nothing and records the fields a struct asks for.
struct FieldNames;

#[derive(Debug)]
struct Found(&'static [&'static str]);

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names")
    }
}

impl std::error::Error for Found {}

impl de::Error for Found {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Found(&[])
    }
}

impl<'de> de::Deserializer<'de> for FieldNames {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
        Err(Found(&[]))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Found> {
        Err(Found(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config, ConfigError};
    use crate::sink::SplunkConfig;
    use std::path::Path;

    /// A config with one source sending to the sink `table` (written after `type = ...`).
    fn with_sink(table: &str) -> Result<Config, Vec<ConfigError>> {
        let text = format!(
            "[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsecrets = [\"s\"]\nsinks = [\"out\"]\n\n[[sinks]]\nid = \"out\"\n{table}\n"
        );
        parse(&text, Path::new("."), &|_| None).map_err(|e| e.errors)
    }

    #[test]
    fn every_key_outside_the_sinks_table_is_named_with_its_line_and_the_rest_is_still_checked() {
        let errs = with_sink(
            "type = \"file\"\npath = \"o.jsonl\"\ncolour = \"blue\"\nurl = \"https://x\"\nmin_severity = \"loud\"",
        )
        .unwrap_err();
        let found: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            found,
            [
                ("sinks[0].colour", Some(11)),
                ("sinks[0].url", Some(12)),
                ("sinks[0].min_severity", Some(13)),
            ],
            "{errs:?}"
        );
        assert!(
            errs[0]
                .message
                .starts_with("not a key of sink type file; expected one of id, type,"),
            "{errs:?}"
        );
        assert!(errs[0].message.ends_with(", path"), "{errs:?}");
    }

    #[test]
    fn a_problem_with_a_shared_key_and_one_with_an_own_key_are_both_reported() {
        let text = "[[sources]]\nid = \"gh\"\nvendor = \"github\"\nsecrets = [\"s\"]\nsinks = [\"out\"]\n\n[[sinks]]\nid = 5\ntype = \"splunk_hec\"\nurl = \"https://x\"\ntoken = [\"t\"]\n";
        let errs = parse(text, Path::new("."), &|_| None).unwrap_err().errors;
        let found: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
        assert_eq!(
            &found[..2],
            [("sinks[0].id", Some(8)), ("sinks[0].token", Some(11))],
            "{errs:?}"
        );
        assert!(errs[1].message.starts_with("invalid type"), "{errs:?}");
    }

    #[test]
    fn an_unknown_type_names_every_type() {
        let errs = with_sink("type = \"splunk\"\nurl = \"https://x\"").unwrap_err();
        // the sink is not built, so the source's reference to it is an error too
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].path, "sinks[0].type");
        assert_eq!(errs[0].line, Some(9));
        assert_eq!(
            errs[0].message,
            "unknown sink type \"splunk\"; expected splunk_hec, sentinel, \
             sentinel_data_collector, datadog, http or file"
        );
        let errs = with_sink("path = \"o.jsonl\"").unwrap_err();
        assert_eq!(errs[0].path, "sinks[0]");
        assert!(errs[0].message.contains("missing field `type`"), "{errs:?}");
    }

    #[test]
    fn every_type_has_its_own_table_and_the_shared_keys_are_no_sinks_own() {
        for name in SinkKind::TYPES {
            let own = crate::sink::RawKind::fields(name).unwrap();
            assert!(!own.is_empty(), "{name}");
            for k in field_names::<RawSink>() {
                assert!(!own.contains(k), "{name} redefines the shared key {k}");
            }
        }
    }

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

    #[test]
    fn field_names_come_from_the_struct() {
        assert_eq!(
            field_names::<RawRetry>(),
            &["initial_backoff", "max_backoff", "max_age"]
        );
        assert!(field_names::<RawSink>().contains(&"type"));
    }

    #[test]
    fn type_names_read_as_a_list() {
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
        assert_eq!(one_of(&["a"]), "a");
    }
}
