//! Reading one `[[sinks]]` table. It is read in two parts: the keys of `RawSink` (`id`, `type`,
//! `headers`, `min_severity`, `batch`, `retry`, `tls`, `timeout`) are the same for every sink;
//! every other key belongs to the sink `type` names, whose folder defines its table as a serde
//! struct that denies unknown keys ([`super::config::SinkType::Table`]). The valid keys are those
//! structs' fields, read from serde ([`field_names`]): there is no list to keep. A key of
//! neither is reported on its own line, `sinks[N].key: not a key of sink type T; expected one
//! of ...`, and the rest of the sink is still checked.

use serde::de::{self, DeserializeOwned, Visitor};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::config::RawSink;
use super::{RawKind, SinkKind};
use crate::conf::{de_section, ConfigError};

/// One `[[sinks]]` table as serde read it: the shared keys and the sink's own table.
pub(crate) struct RawSinkEntry {
    pub(super) common: RawSink,
    pub(super) own: RawKind,
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
    let own_keys = kind.as_deref().and_then(RawKind::fields);
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
        (Some(kind), Some(_)) => RawKind::de(
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
pub(crate) mod tests {
    use super::*;
    use crate::config::{parse, Config, ConfigError};
    use crate::sink::config::RawRetry;
    use std::path::Path;

    /// A config with one source sending to the sink `table` (written after `type = ...`).
    pub(crate) fn with_sink(table: &str) -> Result<Config, Vec<ConfigError>> {
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
    fn field_names_come_from_the_struct() {
        assert_eq!(
            field_names::<RawRetry>(),
            &[
                "initial_backoff",
                "max_backoff",
                "max_retry_after",
                "max_age"
            ]
        );
        assert!(field_names::<RawSink>().contains(&"type"));
    }

    #[test]
    fn type_names_read_as_a_list() {
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
        assert_eq!(one_of(&["a"]), "a");
    }
}
