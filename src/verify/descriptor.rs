//! A signature scheme as data: where the signature is, how it is written, which bytes it signs
//! under which key, and where the timestamp and the delivery id are ([`Descriptor`]). Most
//! vendors are one `const` descriptor (`src/vendors/github.rs`: `SIGNATURE`), and
//! `generic_hmac` is the same descriptor read from the config. Verifying ([`Scheme::claim`],
//! [`Scheme::facts`]), signing ([`Scheme::sign`]) and whether the window applies
//! ([`Scheme::signs_timestamp`]) are all derived from it here, once, so they cannot disagree.

use std::borrow::Cow;

use base64::Engine;
use serde_json::Value;
use time::OffsetDateTime;

use super::scheme::{MacAlgorithm, Scheme, SigEncoding, TemplatePart, TimestampUnit};
use super::secret::Secret;
use super::{Check, Claim, Facts, Key, KeyPart, Rejection, Unverified};

/// Where a value is: a request header, or a field of the (signed, verified) JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Header(Cow<'static, str>),
    Body(&'static [&'static str]),
}

impl Field {
    /// A header, by its lower-case name.
    pub const fn header(name: &'static str) -> Field {
        Field::Header(Cow::Borrowed(name))
    }
}

/// A header a sender adds that nothing verifies, for [`Scheme::sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// Always this value (`X-GitHub-Event: code_scanning_alert`).
    Fixed(&'static str),
    /// The send time in unix seconds (Sentry's unsigned `Sentry-Hook-Timestamp`).
    UnixTime,
}

/// One vendor's signature scheme. See the module documentation.
#[derive(Debug, Clone)]
pub struct Descriptor {
    /// The header the signature is in (lower case).
    pub header: Cow<'static, str>,
    /// Another name of that header, read when the first is absent (Shopify's Events product).
    pub alt_header: Option<&'static str>,
    /// What precedes each signature (`sha256=`), in any case; an entry without it is skipped,
    /// and a header with no such entry is malformed.
    pub prefix: Cow<'static, str>,
    /// `None`: the header carries the secret itself (a token), compared in constant time.
    pub algorithm: Option<MacAlgorithm>,
    pub encoding: SigEncoding,
    /// Splits the header into a list of signatures (one per secret at the sender: rotation).
    pub separator: Option<Cow<'static, str>>,
    /// The signed bytes: `{body}`, `{timestamp}`, `{id}` and literal text.
    pub signed: Cow<'static, [TemplatePart]>,
    /// The HMAC key: `{secret}`, `{timestamp}` and literal text.
    pub key: Cow<'static, [TemplatePart]>,
    /// Configured secrets are base64, decoded before use.
    pub secret_base64: bool,
    /// Where the timestamp is and its form. It is signed, and the window applies, when it is
    /// in the body or in one of the templates ([`Descriptor::timestamp_signed`]).
    pub timestamp: Option<(Field, TimestampUnit)>,
    /// The delivery id the vendor documents as the same on retries and unique per delivery:
    /// a replay key.
    pub id: Option<Field>,
    /// Body fields that name the event but are not documented as unique per delivery (never a
    /// replay key): the first one present labels the event.
    pub label: &'static [&'static [&'static str]],
    /// Headers the sender adds that nothing verifies (for signing).
    pub extra: &'static [(&'static str, Extra)],
}

/// `{body}` alone: the signed bytes of most vendors.
pub const BODY: &[TemplatePart] = &[TemplatePart::Body];
/// `{secret}` alone: the key of most vendors.
pub const SECRET: &[TemplatePart] = &[TemplatePart::Secret];

impl Descriptor {
    /// `header: <prefix><hex HMAC-SHA256(secret, body)>`, the most common scheme; the methods
    /// below change one field each, so a vendor's `const` reads as its differences.
    pub const fn body_hmac(header: &'static str, prefix: &'static str) -> Descriptor {
        Descriptor {
            header: Cow::Borrowed(header),
            alt_header: None,
            prefix: Cow::Borrowed(prefix),
            algorithm: Some(MacAlgorithm::Sha256),
            encoding: SigEncoding::Hex,
            separator: None,
            signed: Cow::Borrowed(BODY),
            key: Cow::Borrowed(SECRET),
            secret_base64: false,
            timestamp: None,
            id: None,
            label: &[],
            extra: &[],
        }
    }

    // (In a `const`, a replaced field that owns memory cannot be dropped: it is forgotten. The
    // fields replaced hold borrowed values or nothing.)

    /// The delivery id (a replay key).
    pub const fn id(mut self, id: Field) -> Self {
        std::mem::forget(self.id.replace(id));
        self
    }

    /// The timestamp and its form.
    pub const fn timestamp(mut self, at: Field, unit: TimestampUnit) -> Self {
        std::mem::forget(self.timestamp.replace((at, unit)));
        self
    }

    /// The signed bytes.
    pub const fn signed(mut self, parts: &'static [TemplatePart]) -> Self {
        std::mem::forget(std::mem::replace(&mut self.signed, Cow::Borrowed(parts)));
        self
    }

    /// A list of signatures split by `separator`.
    pub const fn list(mut self, separator: &'static str) -> Self {
        std::mem::forget(self.separator.replace(Cow::Borrowed(separator)));
        self
    }

    /// Base64 signatures.
    pub const fn base64(mut self) -> Self {
        self.encoding = SigEncoding::Base64;
        self
    }

    /// Another name of the signature header, read when the first is absent.
    pub const fn alt_header(mut self, name: &'static str) -> Self {
        self.alt_header = Some(name);
        self
    }

    /// Body fields that label the event (never replay keys).
    pub const fn label(mut self, paths: &'static [&'static [&'static str]]) -> Self {
        self.label = paths;
        self
    }

    /// Headers the sender adds that nothing verifies.
    pub const fn extra(mut self, headers: &'static [(&'static str, Extra)]) -> Self {
        self.extra = headers;
        self
    }

    /// Whether the timestamp is covered by the signature, so the window applies to it.
    pub fn timestamp_signed(&self) -> bool {
        match &self.timestamp {
            Some((Field::Body(_), _)) => true,
            Some((Field::Header(_), _)) => {
                self.signed.contains(&TemplatePart::Timestamp)
                    || self.key.contains(&TemplatePart::Timestamp)
            }
            None => false,
        }
    }

    fn header_of(f: &Option<Field>) -> &str {
        match f {
            Some(Field::Header(h)) => h,
            _ => "",
        }
    }

    fn part<'a>(&self, req: &'a Unverified, p: &'a TemplatePart) -> Result<&'a [u8], Rejection> {
        Ok(match p {
            TemplatePart::Literal(s) => s.as_bytes(),
            TemplatePart::Body => &req.body,
            TemplatePart::Timestamp => {
                let (field, unit) = match &self.timestamp {
                    Some((f, u)) => (Some(f.clone()), *u),
                    None => (None, TimestampUnit::Seconds),
                };
                let ts = super::single_header(req, Self::header_of(&field))?
                    .ok_or(Rejection::missing("timestamp header missing"))?;
                if !super::is_safe_timestamp(ts, unit) {
                    return Err(Rejection::malformed(
                        "timestamp is not of the expected form",
                    ));
                }
                ts.as_bytes()
            }
            TemplatePart::Id => {
                let id = super::single_header(req, Self::header_of(&self.id))?
                    .ok_or(Rejection::missing("id header missing"))?;
                if !super::is_safe_id(id) {
                    return Err(Rejection::malformed("id is not of the signed form"));
                }
                id.as_bytes()
            }
            TemplatePart::Secret => b"",
        })
    }

    fn signature_header<'a>(&self, req: &'a Unverified) -> Result<&'a str, Rejection> {
        match self.alt_header {
            Some(alt) => match super::single_header(req, &self.header)? {
                Some(s) => Ok(s),
                None => super::required_header(req, alt),
            },
            None => super::required_header(req, &self.header),
        }
    }

    /// The timestamp as this scheme writes it.
    fn format_time(&self, ts: OffsetDateTime) -> String {
        match self
            .timestamp
            .as_ref()
            .map_or(TimestampUnit::Seconds, |t| t.1)
        {
            TimestampUnit::Seconds => ts.unix_timestamp().to_string(),
            TimestampUnit::Milliseconds => {
                ((ts.unix_timestamp_nanos() / 1_000_000) as i64).to_string()
            }
            TimestampUnit::Iso8601 => rfc3339(ts),
        }
    }
}

impl Scheme for Descriptor {
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        if self.secret_base64 {
            let s = secret.expose_str().ok_or("secret is not UTF-8")?;
            let bytes = super::decode_b64(s.trim())
                .ok_or("secret_encoding is base64 but the secret is not base64")?;
            Ok(Key::decoded(secret.expose(), bytes))
        } else {
            Ok(Key::plain(secret.expose()))
        }
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let value = self.signature_header(req)?;
        let Some(alg) = self.algorithm else {
            let token = strip_prefix_ci(value, &self.prefix)
                .ok_or(Rejection::malformed("prefix missing"))?;
            return Ok(Claim {
                check: Check::Token {
                    presented: token.as_bytes(),
                },
            });
        };
        let entries = match &self.separator {
            Some(sep) => {
                let parts: Vec<&str> = value
                    .split(sep.as_ref())
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect();
                if parts.len() > 4 * super::MAX_SIGNATURES {
                    return Err(Rejection::malformed("too many signature entries"));
                }
                parts
            }
            None => vec![value],
        };
        let sigs: Vec<&str> = entries
            .into_iter()
            .filter_map(|e| strip_prefix_ci(e, &self.prefix))
            .collect();
        if sigs.is_empty() {
            return Err(Rejection::malformed("signature prefix missing"));
        }
        let decode = match self.encoding {
            SigEncoding::Hex => super::decode_hex,
            SigEncoding::Base64 => super::decode_b64,
        };
        let candidates = super::candidates(sigs, decode)?;
        let mut message = Vec::with_capacity(self.signed.len());
        for p in self.signed.iter() {
            message.push(self.part(req, p)?);
        }
        let unit = self
            .timestamp
            .as_ref()
            .map_or(TimestampUnit::Seconds, |t| t.1);
        if !unambiguous(&self.signed, &message, unit) {
            return Err(Rejection::malformed(
                "id or timestamp runs into the body: the signed bytes are ambiguous",
            ));
        }
        let key = if *self.key == *SECRET {
            None
        } else {
            let mut parts = Vec::new();
            for p in self.key.iter() {
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

    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let signed_time = match &self.timestamp {
            Some((Field::Body(path), unit)) => json_time(json, path, *unit),
            Some((Field::Header(h), unit)) if self.timestamp_signed() => {
                let raw = super::required_header(req, h)?;
                Some(super::parse_timestamp(raw, *unit)?)
            }
            _ => None,
        };
        let id = match &self.id {
            Some(Field::Header(h)) => super::id_header(req, h)?,
            Some(Field::Body(path)) => json_str(json, path),
            None => None,
        };
        Ok(Facts {
            signed_time,
            id,
            label: self.label.iter().find_map(|path| json_str(json, path)),
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        let ts_s = self.format_time(ts);
        let sig = match self.algorithm {
            None => String::from_utf8_lossy(key.raw()).into_owned(),
            Some(alg) => {
                let render = |t: &[TemplatePart], secret: &[u8]| -> Vec<u8> {
                    let mut out = Vec::new();
                    for p in t {
                        out.extend_from_slice(match p {
                            TemplatePart::Literal(s) => s.as_bytes(),
                            TemplatePart::Body => body,
                            TemplatePart::Timestamp => ts_s.as_bytes(),
                            TemplatePart::Id => id.as_bytes(),
                            TemplatePart::Secret => secret,
                        });
                    }
                    out
                };
                let k = render(&self.key, key.mac());
                let mac = super::mac::hmac(alg, &k, &[&render(&self.signed, b"")]);
                match self.encoding {
                    SigEncoding::Hex => hex::encode(mac),
                    SigEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(mac),
                }
            }
        };
        let mut headers = vec![(self.header.to_string(), format!("{}{sig}", self.prefix))];
        if let Some((Field::Header(h), _)) = &self.timestamp {
            headers.push((h.to_string(), ts_s));
        }
        if let Some(Field::Header(h)) = &self.id {
            headers.push((h.to_string(), id.to_string()));
        }
        for (name, value) in self.extra {
            let value = match value {
                Extra::Fixed(v) => v.to_string(),
                Extra::UnixTime => ts.unix_timestamp().to_string(),
            };
            headers.push((name.to_string(), value));
        }
        headers
    }

    fn signs_timestamp(&self) -> bool {
        self.timestamp_signed()
    }
}

/// Case-insensitive prefix strip (`sha256=` vs `SHA256=`).
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// A string (or number) field of the verified body, capped like an id header.
pub fn json_str(json: Option<&Value>, path: &[&str]) -> Option<String> {
    let mut v = json?;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= super::MAX_ID_LEN => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A timestamp field of the verified body. Absent or of another form: no timestamp (the body
/// is signed, so it cannot have been forged; de-duplication still applies).
pub fn json_time(
    json: Option<&Value>,
    path: &[&str],
    unit: TimestampUnit,
) -> Option<OffsetDateTime> {
    let mut v = json?;
    for p in path {
        v = v.get(p)?;
    }
    let raw = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    super::parse_timestamp(&raw, unit).ok()
}

pub fn rfc3339(ts: OffsetDateTime) -> String {
    ts.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ts.unix_timestamp().to_string())
}

/// Whether `c` may be part of the value of template part `p` (`{id}`, `{timestamp}`).
pub fn in_alphabet(p: &TemplatePart, c: u8, unit: TimestampUnit) -> bool {
    match p {
        TemplatePart::Id => super::is_id_char(c),
        TemplatePart::Timestamp => super::is_timestamp_char(c, unit),
        _ => false,
    }
}

pub fn is_variable(p: &TemplatePart) -> bool {
    matches!(p, TemplatePart::Id | TemplatePart::Timestamp)
}

/// Checks that the signed bytes split into the template's parts one way only, so that no byte
/// can move between the body, the id and the timestamp with the MAC still valid (a captured
/// `"{id}.{body}"` re-sent with bytes of the body moved into the id). Ids and timestamps have
/// a fixed alphabet; every `{id}` or `{timestamp}` before `{body}` must be followed by a byte
/// outside its alphabet (or end the bytes), and every one after `{body}` preceded by one.
/// The template's literals are checked when the config is loaded (generic_hmac's
/// `template_problem`); this checks the body's first and last bytes, where an `{id}` or
/// `{timestamp}` touches `{body}`.
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
