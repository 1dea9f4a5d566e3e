//! How a config table is read, for every part that owns one (the config file's sections, each
//! sink's table): units, errors with their key path and line, `*_file` secrets and paths
//! resolved against the config's directory, secrets kept out of every message. The config
//! file's own shape and meaning are in [`crate::config`].

pub(crate) mod doc;
pub(crate) mod redact;
pub mod units;

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::DeValue;
use toml::Spanned;

use crate::verify::Secret;

/// One problem with the config: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.path, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// A path from the config: absolute as written, relative against `base` (the config file's directory).
pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// A `tls` table: extra trust roots for a connection siemgate makes (a sink, Redis).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSinkTls {
    pub ca_file: Option<String>,
}

pub(crate) struct Ctx<'a> {
    pub(crate) base: &'a Path,
    pub(crate) errors: Vec<ConfigError>,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError::at(path, msg));
    }

    pub(crate) fn resolve_path(&self, p: &str) -> PathBuf {
        resolve_path(self.base, p)
    }

    pub(crate) fn read_secret_file(&mut self, path: &str, key: &str) -> Option<Secret> {
        let full = self.resolve_path(path);
        match read_bounded(&full, MAX_SECRET_FILE) {
            Ok(None) => {
                self.err(
                    key,
                    format!(
                        "secret file {} is larger than {MAX_SECRET_FILE} bytes: not a secret",
                        full.display()
                    ),
                );
                None
            }
            Ok(Some(mut bytes)) => {
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    self.err(key, format!("secret file {} is empty", full.display()));
                    return None;
                }
                Some(Secret::new(bytes))
            }
            Err(e) => {
                self.err(
                    key,
                    format!("cannot read secret file {}: {e}", full.display()),
                );
                None
            }
        }
    }

    /// A secret given inline as `key` or in a file as `key_file`; at most one of them.
    pub(crate) fn secret(
        &mut self,
        path: &str,
        key: &str,
        inline: Option<String>,
        file: Option<String>,
        required: bool,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.{key}"),
                    format!("set either {key} or {key}_file, not both"),
                );
                None
            }
            (Some(v), None) => {
                if v.is_empty() {
                    self.err(format!("{path}.{key}"), "must not be empty");
                    None
                } else {
                    Some(Secret::new(v))
                }
            }
            (None, Some(f)) => self.read_secret_file(&f, &format!("{path}.{key}_file")),
            (None, None) => {
                if required {
                    self.err(path, format!("missing {key} (or {key}_file)"));
                }
                None
            }
        }
    }

    pub(crate) fn positive(&mut self, path: &str, v: i64, max: i64) -> Option<i64> {
        if v <= 0 || v > max {
            self.err(path, format!("must be between 1 and {max}, got {v}"));
            None
        } else {
            Some(v)
        }
    }

    /// A duration of at most the key's [`max_duration`]; zero is allowed.
    pub(crate) fn duration_upto(
        &mut self,
        path: &str,
        d: Option<units::ConfDuration>,
        default: Duration,
    ) -> Duration {
        let max = max_duration(path);
        match d {
            Some(d) if d.0 > max => {
                self.err(path, format!("must be at most {}", human(max)));
                default
            }
            Some(d) => d.0,
            None => default,
        }
    }

    /// A duration that must be greater than zero (and at most the key's [`max_duration`]).
    pub(crate) fn duration(
        &mut self,
        path: &str,
        d: Option<units::ConfDuration>,
        default: Duration,
    ) -> Duration {
        if d.as_ref().is_some_and(|d| d.0.is_zero()) {
            self.err(path, "must be greater than zero");
            return default;
        }
        self.duration_upto(path, d, default)
    }

    /// A path to a file that must exist, resolved against the config's directory.
    pub(crate) fn existing_file(&mut self, key: impl Into<String>, p: &str) -> PathBuf {
        let full = self.resolve_path(p);
        if let Err(e) = std::fs::metadata(&full) {
            self.err(key, format!("cannot read {}: {e}", full.display()));
        }
        full
    }
}

/// A secret file larger than this is a mistake (a certificate bundle, `/dev/zero`), not a secret.
pub(crate) const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The file's bytes, or `None` when it holds more than `max` bytes (read no further than that).
pub(crate) fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// A source or sink id: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters. Ids name files
/// (spool cursors, dead-letter files) and URL paths, so `.`, `..` and a leading `-` are refused.
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() <= 64
        && id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) const ID_RULE: &str =
    "must be 1-64 characters of A-Z a-z 0-9 - _ . and start with a letter or digit";

/// The largest value each duration key accepts, by the key's name. Anything larger is a typo
/// (`"20000y"`) that would otherwise overflow time arithmetic or park a task for ever.
pub(crate) fn max_duration(path: &str) -> Duration {
    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;
    let key = path.rsplit('.').next().unwrap_or(path);
    Duration::from_secs(match key {
        // the replay window: vendors use minutes; a week is far beyond any of them
        "tolerance" => 7 * DAY,
        // how long ids are remembered, and how long a sink may keep retrying an event
        "retention" | "max_age" => 30 * DAY,
        "max_backoff" | "max_retry_after" => DAY,
        "shutdown_grace" => 10 * MIN,
        // every timeout, the first backoff, and any duration key added later
        _ => HOUR,
    })
}

/// `"7d"`, `"1h"`: a bound as the config would write it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s % 86_400 == 0 => format!("\"{}d\"", s / 86_400),
        _ if s % 3600 == 0 => format!("\"{}h\"", s / 3600),
        _ if s % 60 == 0 => format!("\"{}m\"", s / 60),
        _ => format!("\"{s}s\""),
    }
}

pub(crate) fn de_section<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &str,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let outer = value.span();
    let de = value.into_deserializer();
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner_path = e.path().to_string();
            let full = if inner_path == "." || inner_path.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{inner_path}")
            };
            let span = e.inner().span().unwrap_or(outer);
            // serde quotes the offending value; the value may be a secret.
            let message = redact::value_free(e.inner().message());
            errors.push(ConfigError {
                path: full,
                line: Some(doc::line_at(text, span.start)),
                message,
            });
            None
        }
    }
}
