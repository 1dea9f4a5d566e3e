//! Config errors never carry a secret.
//!
//! Two layers, so that neither alone has to be perfect:
//! 1. messages are written without values: a type error says what the key expected and what kind
//!    of thing it found (`expected a sequence, found a string`), never the string itself, however
//!    serde or toml phrased it ([`value_free`]);
//! 2. every value that came from the environment (`${NAME}`) and every value under a secret key
//!    (`secrets`, `token`, `client_secret`, `shared_key`, `api_key`, `signing_secret`,
//!    `redis_url`, anything named `*secret*`, `*token`, `*password`, `*_key`) is collected and
//!    scrubbed from every message before it leaves the loader ([`Sensitive::scrub`]).
//!
//! Key paths and line numbers are kept: they say where the problem is without saying what the
//! value was.

use toml::de::{DeTable, DeValue};

/// What stands in for a scrubbed value.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this are not scrubbed from messages (a scrubbed `"a"` would blank every
/// `a` in them). No message about a secret key quotes its value anyway; this is the backstop.
const MIN_SCRUB_LEN: usize = 4;

/// Whether a key holds a secret (its value, or every string under it).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_file")
        && (k.contains("secret")
            || k.ends_with("token")
            || k.ends_with("password")
            || k.ends_with("_key")
            || k == "redis_url")
}

/// The values no message may contain.
#[derive(Default)]
pub struct Sensitive {
    values: Vec<String>,
}

impl Sensitive {
    pub fn add(&mut self, v: &str) {
        if v.len() >= MIN_SCRUB_LEN && !self.values.iter().any(|x| x == v) {
            self.values.push(v.to_string());
        }
    }

    /// Collects every string under a secret key of `table`.
    pub fn collect_secret_values(&mut self, table: &DeTable<'_>) {
        for (k, v) in table.iter() {
            self.walk(is_secret_key(k.get_ref()), v.get_ref());
        }
    }

    fn walk(&mut self, secret: bool, v: &DeValue<'_>) {
        match v {
            DeValue::String(s) if secret => self.add(s),
            DeValue::Table(t) => {
                for (k, c) in t.iter() {
                    self.walk(secret || is_secret_key(k.get_ref()), c.get_ref());
                }
            }
            DeValue::Array(a) => {
                for c in a.iter() {
                    self.walk(secret, c.get_ref());
                }
            }
            _ => {}
        }
    }

    /// `msg` with every sensitive value replaced by [`REDACTED`]; longest values first, so a
    /// value that contains another is removed whole.
    pub fn scrub(&self, msg: &str) -> String {
        let mut values: Vec<&String> = self.values.iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = msg.to_string();
        for v in values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Rewrites a serde/toml deserialization message so that it quotes no value. serde writes
/// `invalid type: string "hunter2", expected a sequence` and
/// `invalid value: integer `7`, expected ...`; what was expected comes from the program (the
/// type or the visitor) and is kept, what was found is reduced to its kind. An unknown enum
/// variant is a value too. Unknown and missing fields are key names, which are kept.
pub fn value_free(msg: &str) -> String {
    for (prefix, what) in [
        ("invalid type: ", "invalid type"),
        ("invalid value: ", "invalid value"),
    ] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            // The expectation is the program's text; split at its last mention so that nothing
            // of the value (which could itself contain ", expected ") survives.
            return match rest.rsplit_once(", expected ") {
                Some((found, expected)) => {
                    format!("{what}: expected {expected}, found {}", kind_of(found))
                }
                None => format!("{what}: found {}", kind_of(rest)),
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        return match rest.rsplit_once(", expected ") {
            Some((_, expected)) => format!("unknown variant, expected {expected}"),
            None => "unknown variant".to_string(),
        };
    }
    msg.to_string()
}

/// serde's `Unexpected` as a kind only: `string "x"` -> `a string`, `integer `3`` -> `an integer`.
fn kind_of(found: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("string", "a string"),
        ("integer", "an integer"),
        ("floating point", "a number"),
        ("boolean", "a boolean"),
        ("character", "a character"),
        ("byte array", "bytes"),
        ("sequence", "an array"),
        ("map", "a table"),
        ("unit", "nothing"),
        ("Option", "an optional value"),
        ("enum", "an enum"),
        ("newtype", "a value"),
        ("tuple", "a value"),
        ("struct", "a table"),
    ];
    KINDS
        .iter()
        .find(|(p, _)| found.starts_with(p))
        .map(|(_, k)| *k)
        .unwrap_or("another kind of value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        assert_eq!(
            value_free(r#"invalid type: string "MARKER", expected a sequence"#),
            "invalid type: expected a sequence, found a string"
        );
        assert_eq!(
            value_free("invalid type: integer `12`, expected a string"),
            "invalid type: expected a string, found an integer"
        );
        assert_eq!(
            value_free("invalid value: integer `-1`, expected u32"),
            "invalid value: expected u32, found an integer"
        );
        // a value that itself says ", expected "
        let m = value_free(r#"invalid type: string "a, expected b SECRET", expected a sequence"#);
        assert!(!m.contains("SECRET"), "{m}");
        assert_eq!(
            value_free("unknown variant `SECRET`, expected `a` or `b`"),
            "unknown variant, expected `a` or `b`"
        );
        assert_eq!(
            value_free("unknown field `colour`, expected one of `id`"),
            "unknown field `colour`, expected one of `id`"
        );
    }

    #[test]
    fn secret_keys() {
        for k in [
            "secrets",
            "token",
            "client_secret",
            "shared_key",
            "api_key",
            "signing_secret",
            "redis_url",
            "password",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "secrets_file",
            "token_file",
            "key_file",
            "key_template",
            "url",
            "id",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn scrub_replaces_longest_first() {
        let mut s = Sensitive::default();
        s.add("abcd");
        s.add("abcdefgh");
        s.add("ab");
        assert_eq!(
            s.scrub("x abcdefgh y abcd ab"),
            "x [redacted] y [redacted] ab"
        );
    }
}
