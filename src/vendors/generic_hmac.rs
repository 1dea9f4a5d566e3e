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

use base64::Engine;
use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use super::{GenericHmacOptions, VendorOptions};
use crate::ocsf::{self, Draft, Input};
use crate::verify::{self, Check, Claim, Facts, Key, KeyPart, Rejection, Unverified};
use crate::verify::{MacAlgorithm, Secret, SigEncoding, TemplatePart, TimestampUnit};

pub struct GenericHmac {
    o: GenericHmacOptions,
}

impl GenericHmac {
    pub fn new(opts: &VendorOptions) -> Self {
        GenericHmac {
            o: opts
                .generic
                .clone()
                .expect("generic_hmac options are validated at config load"),
        }
    }

    fn timestamp_signed(&self) -> bool {
        self.o.signed_template.contains(&TemplatePart::Timestamp)
            || self.o.key_template.contains(&TemplatePart::Timestamp)
    }

    fn part<'a>(&self, req: &'a Unverified, p: &'a TemplatePart) -> Result<&'a [u8], Rejection> {
        Ok(match p {
            TemplatePart::Literal(s) => s.as_bytes(),
            TemplatePart::Body => &req.body,
            TemplatePart::Timestamp => {
                let h = self.o.timestamp_header.as_deref().unwrap_or_default();
                let ts = verify::single_header(req, h)?
                    .ok_or(Rejection::missing("timestamp header missing"))?;
                if !verify::is_safe_timestamp(ts, self.o.timestamp_unit) {
                    return Err(Rejection::malformed(
                        "timestamp is not of the expected form",
                    ));
                }
                ts.as_bytes()
            }
            TemplatePart::Id => {
                let h = self.o.id_header.as_deref().unwrap_or_default();
                let id = verify::single_header(req, h)?
                    .ok_or(Rejection::missing("id header missing"))?;
                if !verify::is_safe_id(id) {
                    return Err(Rejection::malformed("id is not of the signed form"));
                }
                id.as_bytes()
            }
            TemplatePart::Secret => b"",
        })
    }
}

/// Whether `c` may be part of the value of template part `p` (`{id}`, `{timestamp}`).
fn in_alphabet(p: &TemplatePart, c: u8, unit: TimestampUnit) -> bool {
    match p {
        TemplatePart::Id => verify::is_id_char(c),
        TemplatePart::Timestamp => verify::is_timestamp_char(c, unit),
        _ => false,
    }
}

fn is_variable(p: &TemplatePart) -> bool {
    matches!(p, TemplatePart::Id | TemplatePart::Timestamp)
}

/// Checks that the signed bytes split into the template's parts one way only, so that no byte
/// can move between the body, the id and the timestamp with the MAC still valid (a captured
/// `"{id}.{body}"` re-sent with bytes of the body moved into the id). Ids and timestamps have
/// a fixed alphabet; every `{id}` or `{timestamp}` before `{body}` must be followed by a byte
/// outside its alphabet (or end the bytes), and every one after `{body}` preceded by one.
/// The template's literals are checked when the config is loaded ([`template_problem`]); this
/// checks the body's first and last bytes, where an `{id}` or `{timestamp}` touches `{body}`.
fn unambiguous(template: &[TemplatePart], parts: &[&[u8]], unit: TimestampUnit) -> bool {
    let Some(body_at) = template.iter().position(|p| *p == TemplatePart::Body) else {
        return true;
    };
    template.iter().enumerate().all(|(i, p)| {
        if !is_variable(p) {
            return true;
        }
        let neighbour = if i < body_at {
            parts[i + 1..].iter().flat_map(|s| s.iter()).next()
        } else {
            parts[..i].iter().rev().flat_map(|s| s.iter().rev()).next()
        };
        neighbour.is_none_or(|c| !in_alphabet(p, *c, unit))
    })
}

/// What makes a signed template ambiguous whatever the request: `{body}` twice, an `{id}` or
/// `{timestamp}` beside another one, or beside a literal whose adjoining character could be
/// part of its value (`"{id}_{body}"`: ids may hold `_`).
fn template_problem(template: &[TemplatePart], unit: TimestampUnit) -> Option<String> {
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
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
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
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

pub(super) fn options(
    r: &super::OptionTable<'_>,
    path: &str,
    err: &mut dyn FnMut(String, String),
) -> Option<GenericHmacOptions> {
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
    ok.then(|| GenericHmacOptions {
        header,
        algorithm,
        encoding,
        prefix: r.get("prefix").unwrap_or_default().to_string(),
        separator: r.get("separator").map(str::to_string),
        signed_template,
        key_template,
        secret_base64,
        timestamp_header: r.get("timestamp_header").map(|h| h.to_ascii_lowercase()),
        timestamp_unit,
        id_header: r.get("id_header").map(|h| h.to_ascii_lowercase()),
    })
}

impl crate::verify::Scheme for GenericHmac {
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        if self.o.secret_base64 {
            let s = secret.expose_str().ok_or("secret is not UTF-8")?;
            let bytes = verify::decode_b64(s.trim())
                .ok_or("secret_encoding is base64 but the secret is not base64")?;
            Ok(Key::decoded(secret.expose(), bytes))
        } else {
            Ok(Key::plain(secret.expose()))
        }
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let value = verify::required_header(req, &self.o.header)?;
        let Some(alg) = self.o.algorithm else {
            let token = common::strip_prefix_ci(value, &self.o.prefix)
                .ok_or(Rejection::malformed("prefix missing"))?;
            return Ok(Claim {
                check: Check::Token {
                    presented: token.as_bytes(),
                },
            });
        };
        let entries = match &self.o.separator {
            Some(sep) => {
                let parts: Vec<&str> = value
                    .split(sep.as_str())
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect();
                if parts.len() > 4 * verify::MAX_SIGNATURES {
                    return Err(Rejection::malformed("too many signature entries"));
                }
                parts
            }
            None => vec![value],
        };
        let sigs: Vec<&str> = entries
            .into_iter()
            .filter_map(|e| common::strip_prefix_ci(e, &self.o.prefix))
            .collect();
        if sigs.is_empty() {
            return Err(Rejection::malformed("signature prefix missing"));
        }
        let decode = match self.o.encoding {
            SigEncoding::Hex => verify::decode_hex,
            SigEncoding::Base64 => verify::decode_b64,
        };
        let candidates = verify::candidates(sigs, decode)?;
        let mut message = Vec::with_capacity(self.o.signed_template.len());
        for p in &self.o.signed_template {
            message.push(self.part(req, p)?);
        }
        if !unambiguous(&self.o.signed_template, &message, self.o.timestamp_unit) {
            return Err(Rejection::malformed(
                "id or timestamp runs into the body: the signed bytes are ambiguous",
            ));
        }
        let key = if self.o.key_template == [TemplatePart::Secret] {
            None
        } else {
            let mut parts = Vec::new();
            for p in &self.o.key_template {
                parts.push(match p {
                    TemplatePart::Secret => KeyPart::Secret,
                    other => KeyPart::Bytes(self.part(req, other)?),
                });
            }
            Some(parts)
        };
        Ok(Claim {
            check: Check::Mac {
                alg,
                key,
                message,
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        let signed_time = match (&self.o.timestamp_header, self.timestamp_signed()) {
            (Some(h), true) => {
                let raw = verify::required_header(req, h)?;
                Some(verify::parse_timestamp(raw, self.o.timestamp_unit)?)
            }
            _ => None,
        };
        let id = match &self.o.id_header {
            Some(h) => verify::id_header(req, h)?,
            None => None,
        };
        Ok(Facts {
            signed_time,
            id,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        let ts_s = match self.o.timestamp_unit {
            TimestampUnit::Seconds => ts.unix_timestamp().to_string(),
            TimestampUnit::Milliseconds => {
                ((ts.unix_timestamp_nanos() / 1_000_000) as i64).to_string()
            }
            TimestampUnit::Iso8601 => common::rfc3339(ts),
        };
        let mut headers = Vec::new();
        if let Some(h) = &self.o.timestamp_header {
            headers.push((h.clone(), ts_s.clone()));
        }
        if let Some(h) = &self.o.id_header {
            headers.push((h.clone(), id.to_string()));
        }
        let Some(alg) = self.o.algorithm else {
            headers.push((
                self.o.header.clone(),
                format!("{}{}", self.o.prefix, String::from_utf8_lossy(key.raw())),
            ));
            return headers;
        };
        let render = |t: &[TemplatePart], secret: &[u8]| -> Vec<u8> {
            let mut out = Vec::new();
            for p in t {
                match p {
                    TemplatePart::Literal(s) => out.extend_from_slice(s.as_bytes()),
                    TemplatePart::Body => out.extend_from_slice(body),
                    TemplatePart::Timestamp => out.extend_from_slice(ts_s.as_bytes()),
                    TemplatePart::Id => out.extend_from_slice(id.as_bytes()),
                    TemplatePart::Secret => out.extend_from_slice(secret),
                }
            }
            out
        };
        let k = render(&self.o.key_template, key.mac());
        let mac = verify::mac::hmac(alg, &k, &[&render(&self.o.signed_template, b"")]);
        let sig = match self.o.encoding {
            SigEncoding::Hex => hex::encode(mac),
            SigEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
        };
        headers.push((self.o.header.clone(), format!("{}{sig}", self.o.prefix)));
        headers
    }

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
}

impl crate::ocsf::Normalizer for GenericHmac {
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
    use crate::ocsf::Draft;
    use crate::vendors::Normalizer;
    use serde_json::json;

    fn run(
        scheme: &dyn Normalizer,
        body: &Value,
        headers: &[(&'static str, &str)],
    ) -> Result<Vec<Draft>, String> {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        let bytes = body.to_string();
        let input = Input {
            vendor: "generic_hmac",
            json: Some(body),
            headers: &h,
            body: bytes.as_bytes(),
            event_id: "e-1",
            vendor_time: None,
            received: OffsetDateTime::UNIX_EPOCH,
        };
        scheme.normalize(&input)
    }

    /// Bodies of the wrong shape: an error (the framework forwards them as Base Events) or a
    /// draft, never a panic.
    const ODD: &[&str] = &["null", "[]", "{}", "1", "\"x\"", "[{}]"];

    fn scheme() -> GenericHmac {
        GenericHmac {
            o: GenericHmacOptions {
                header: "x-signature".into(),
                algorithm: Some(MacAlgorithm::Sha256),
                encoding: SigEncoding::Hex,
                prefix: String::new(),
                separator: None,
                signed_template: vec![TemplatePart::Body],
                key_template: vec![TemplatePart::Secret],
                secret_base64: false,
                timestamp_header: None,
                timestamp_unit: TimestampUnit::Seconds,
                id_header: None,
            },
        }
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
