//! `generic_hmac`: any "HMAC of some bytes in a header" scheme, described in the config.
//!
//! - `header`: where the signature is; `prefix` (e.g. `sha256=`) precedes each signature;
//!   `separator` splits a list of signatures (rotation).
//! - `algorithm`: `sha1`, `sha256` (default), `sha512`, or `token` (the header carries the
//!   secret itself, compared in constant time).
//! - `encoding`: `hex` (default) or `base64`.
//! - `signed_template`: the signed bytes from `{body}`, `{timestamp}` and `{id}` and literal
//!   text, e.g. `"v0:{timestamp}:{body}"` (default `"{body}"`).
//! - `key_template`: the HMAC key from `{secret}` and `{timestamp}` (default `"{secret}"`);
//!   `secret_encoding = "base64"` decodes the secret first.
//! - `timestamp_header` with `timestamp_unit` (`seconds`, `milliseconds`, `iso8601`): the
//!   window applies when the timestamp is signed (in either template).
//! - `id_header`: the delivery id to de-duplicate on.
//!
//! Where `{id}` or `{timestamp}` is in the signed bytes, its value is refused (`401`,
//! `malformed_header`) unless it has a fixed form: ids 1-256 characters of `[A-Za-z0-9_-]`,
//! timestamps digits only (`seconds`, `milliseconds`) or digits with `T Z : . + -`
//! (`iso8601`), at most 40. A template in which one could run into its neighbour is a config
//! error (`"{id}_{body}"`, `"{id}{timestamp}"`); where one touches `{body}` directly
//! (`"{timestamp}{body}"`), a body beginning with a character of its alphabet is refused.
//! Otherwise bytes could move between the body and the id with the MAC still valid.
//!
//! **Replay id:** `id_header` when configured (the operator vouches that it is the same on retries
//! and unique per delivery), and always the signed-bytes digest, so the same signed bytes are a
//! duplicate whatever id rides beside them.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use super::VendorOptions;
use crate::ocsf::{self, Draft, Input};
use crate::verify::descriptor::{in_alphabet, is_variable};
use crate::verify::{Descriptor, Field, MacAlgorithm, SigEncoding, TemplatePart, TimestampUnit};

/// generic_hmac's normalizer; its signature is the [`Descriptor`] read from the config.
pub struct GenericHmac;

pub(super) const VENDOR: super::Entry = super::Entry::with_options(options, |o| {
    // A source's options are validated at config load; without them (a scheme built by hand
    // with default options) there is no header to read, so every request is refused as
    // missing its signature.
    let signature = o.generic.clone().unwrap_or(Descriptor::body_hmac("", ""));
    super::described(signature, GenericHmac)
});

/// What makes a signed template ambiguous whatever the request: `{body}` twice, an `{id}` or
/// `{timestamp}` beside another one, or beside a literal whose adjoining character could be
/// part of its value (`"{id}_{body}"`: ids may hold `_`).
pub(super) fn template_problem(template: &[TemplatePart], unit: TimestampUnit) -> Option<String> {
    let bodies = template
        .iter()
        .filter(|p| **p == TemplatePart::Body)
        .count();
    if bodies > 1 {
        return Some("{body} may appear only once".into());
    }
    let body_at = template.iter().position(|p| *p == TemplatePart::Body)?;
    let name = |p: &TemplatePart| match p {
        TemplatePart::Id => "{id}",
        _ => "{timestamp}",
    };
    for (i, p) in template.iter().enumerate() {
        if !is_variable(p) {
            continue;
        }
        let (neighbour, side) = if i < body_at {
            (template.get(i + 1), "follow")
        } else {
            (i.checked_sub(1).and_then(|j| template.get(j)), "precede")
        };
        match neighbour {
            Some(n) if is_variable(n) => {
                return Some(format!(
                    "{} and {} touch: put a separator such as '.' between them",
                    name(p),
                    name(n)
                ))
            }
            Some(TemplatePart::Literal(l)) => {
                let c = if i < body_at {
                    l.bytes().next()
                } else {
                    l.bytes().last()
                };
                if c.is_some_and(|c| in_alphabet(p, c, unit)) {
                    return Some(format!(
                        "the text that would {side} {} can be part of its value: use a separator it cannot contain, such as '.' or ':'{}",
                        name(p),
                        if *p == TemplatePart::Timestamp && unit == TimestampUnit::Iso8601 {
                            " (an ISO-8601 timestamp may hold '.', ':', '+' and '-': use e.g. '|')"
                        } else {
                            ""
                        }
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

pub fn parse_template(t: &str, allowed: &[&str]) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string().into()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {t:?}"))?
            + open;
        let name = &rest[open + 1..close];
        if !allowed.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}}; use {}",
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        parts.push(match name {
            "body" => TemplatePart::Body,
            "timestamp" => TemplatePart::Timestamp,
            "id" => TemplatePart::Id,
            _ => TemplatePart::Secret,
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string().into()));
    }
    Ok(parts)
}

/// generic_hmac's keys.
const KEYS: [&str; 11] = [
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "separator",
    "signed_template",
    "key_template",
    "secret_encoding",
    "timestamp_header",
    "timestamp_unit",
    "id_header",
];

/// Reads the scheme from the source's keys (see the module documentation).
fn options(
    r: &super::OptionTable<'_>,
    err: &mut dyn FnMut(String, String),
) -> Option<VendorOptions> {
    let path = r.path().to_string();
    // Every key is generic_hmac's, whether or not the rest of the table is valid.
    for k in KEYS {
        r.get(k);
    }
    let mut ok = true;
    let mut bad = |k: &str, m: String| {
        err(format!("{path}.{k}"), m);
        ok = false;
    };
    let header = match r.get("header") {
        Some(h) => h.to_ascii_lowercase(),
        None => {
            err(
                path.to_string(),
                "generic_hmac needs `header`: where the signature is".into(),
            );
            return None;
        }
    };
    let algorithm = match r.get("algorithm").unwrap_or("sha256") {
        "sha1" => Some(MacAlgorithm::Sha1),
        "sha256" => Some(MacAlgorithm::Sha256),
        "sha512" => Some(MacAlgorithm::Sha512),
        "token" => None,
        other => {
            bad(
                "algorithm",
                format!("{other:?}: expected sha1, sha256, sha512 or token"),
            );
            Some(MacAlgorithm::Sha256)
        }
    };
    let encoding = match r.get("encoding").unwrap_or("hex") {
        "hex" => SigEncoding::Hex,
        "base64" => SigEncoding::Base64,
        other => {
            bad("encoding", format!("{other:?}: expected hex or base64"));
            SigEncoding::Hex
        }
    };
    let secret_base64 = match r.get("secret_encoding").unwrap_or("utf8") {
        "utf8" => false,
        "base64" => true,
        other => {
            bad(
                "secret_encoding",
                format!("{other:?}: expected utf8 or base64"),
            );
            false
        }
    };
    let timestamp_unit = match r.get("timestamp_unit").unwrap_or("seconds") {
        "seconds" => TimestampUnit::Seconds,
        "milliseconds" => TimestampUnit::Milliseconds,
        "iso8601" => TimestampUnit::Iso8601,
        other => {
            bad(
                "timestamp_unit",
                format!("{other:?}: expected seconds, milliseconds or iso8601"),
            );
            TimestampUnit::Seconds
        }
    };
    let signed_template = match parse_template(
        r.get("signed_template").unwrap_or("{body}"),
        &["body", "timestamp", "id"],
    ) {
        Ok(t) if t.contains(&TemplatePart::Body) => t,
        Ok(_) => {
            bad("signed_template", "must contain {body}: a signature that does not cover the body proves nothing about it".into());
            vec![TemplatePart::Body]
        }
        Err(m) => {
            bad("signed_template", m);
            vec![TemplatePart::Body]
        }
    };
    if let Some(m) = template_problem(&signed_template, timestamp_unit) {
        bad("signed_template", m);
    }
    let key_template = match parse_template(
        r.get("key_template").unwrap_or("{secret}"),
        &["secret", "timestamp"],
    ) {
        Ok(t) if t.contains(&TemplatePart::Secret) => t,
        Ok(_) => {
            bad("key_template", "must contain {secret}".into());
            vec![TemplatePart::Secret]
        }
        Err(m) => {
            bad("key_template", m);
            vec![TemplatePart::Secret]
        }
    };
    let uses_ts = signed_template.contains(&TemplatePart::Timestamp)
        || key_template.contains(&TemplatePart::Timestamp);
    if uses_ts && r.get("timestamp_header").is_none() {
        bad(
            "signed_template",
            "uses {timestamp} but no timestamp_header is set".into(),
        );
    }
    if signed_template.contains(&TemplatePart::Id) && r.get("id_header").is_none() {
        bad(
            "signed_template",
            "uses {id} but no id_header is set".into(),
        );
    }
    if algorithm.is_none()
        && (r.get("signed_template").is_some()
            || r.get("key_template").is_some()
            || r.get("encoding").is_some())
    {
        bad(
            "algorithm",
            "a token is compared as sent: signed_template, key_template and encoding do not apply"
                .into(),
        );
    }
    if r.get("separator") == Some("") {
        bad("separator", "must not be empty".into());
    }
    let header_field = |k| {
        r.get(k)
            .map(|h: &str| Field::Header(h.to_ascii_lowercase().into()))
    };
    let signature = Descriptor {
        header: header.into(),
        alt_header: None,
        prefix: r.get("prefix").unwrap_or_default().to_string().into(),
        algorithm,
        encoding,
        separator: r.get("separator").map(|s| s.to_string().into()),
        signed: signed_template.into(),
        key: key_template.into(),
        secret_base64,
        timestamp: header_field("timestamp_header").map(|f| (f, timestamp_unit)),
        id: header_field("id_header"),
        label: &[],
        extra: &[],
    };
    ok.then(|| VendorOptions {
        generic: Some(signature),
        ..VendorOptions::default()
    })
}

impl crate::ocsf::Normalizer for GenericHmac {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "id": id,
            "time": common::rfc3339(ts),
            "severity": "medium",
            "title": "Suspicious sign-in",
            "message": "Sign-in from a new country"
        })
        .to_string()
    }

    /// No schema to map: a Base Event (severity, message and body as [`ocsf::base`] reads
    /// them), with the envelope fields most senders share: the event's own time, and its id
    /// when the request carries none (no `id_header`).
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let mut d = ocsf::base(input);
        let Some(obj) = input.json.and_then(Value::as_object) else {
            return Ok(vec![d]);
        };
        // Names of the event's type that `base` does not read (Jira's `webhookEvent`, ...).
        if d.message == format!("{} webhook", input.vendor) {
            if let Some(m) = ["eventType", "event_name", "webhookEvent"]
                .iter()
                .find_map(|k| obj.get(*k)?.as_str())
            {
                d.message = m.to_string();
            }
        }
        let time = [
            "timestamp",
            "time",
            "created_at",
            "createdAt",
            "occurred_at",
            "event_time",
        ]
        .iter()
        .find_map(|k| obj.get(*k).and_then(ocsf::time_of));
        d = d.time(time);
        if input.event_id.starts_with("sha256:") {
            let id = ["id", "event_id", "eventId", "uuid"]
                .iter()
                .find_map(|k| common::json_str(input.json, &[k]));
            if let Some(id) = id {
                d = d.uid(id);
            }
        }
        Ok(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!("generic_hmac");

    use crate::vendors::testkit::ODD;

    fn scheme() -> GenericHmac {
        GenericHmac
    }

    #[test]
    fn odd_payloads_never_panic() {
        for odd in ODD
            .iter()
            .map(|s| serde_json::from_str::<Value>(s).unwrap())
            .chain([json!({"time": [], "id": {}, "severity": 9, "title": 1})])
        {
            let d = run(&scheme(), &odd, &[]).unwrap();
            assert_eq!(d.len(), 1);
        }
    }

    #[test]
    fn the_envelope_gives_time_message_and_an_id_only_when_the_request_has_none() {
        let body =
            json!({"created_at": 1775485921, "webhookEvent": "jira:issue_updated", "id": "x-9"});
        let d = run(&scheme(), &body, &[]).unwrap();
        assert_eq!(d[0].time, Some(1_775_485_921_000));
        assert_eq!(d[0].message, "jira:issue_updated");
        // The request's id ("e-1", from an id header) wins over the body's.
        assert_eq!(d[0].uid, None);
    }
}
