//! The verification engine. Vendors say where a request's proof, timestamp and id live and
//! which bytes are signed ([`Scheme`]: [`Claim`], [`Facts`]), most of them as a [`Descriptor`];
//! this module does the rest, the same way for every vendor:
//!
//! 1. find the proof ([`Scheme::claim`]): a missing or malformed header is
//!    rejected before any MAC is computed;
//! 2. compute the MAC of the signed bytes under every configured key and compare it with every
//!    presented signature in constant time ([`mac`]); any match passes (rotation);
//! 3. only then parse the body and read the signed timestamp and event id
//!    ([`Scheme::facts`]);
//! 4. check the timestamp against the window, past and future, on an injected [`Clock`];
//! 5. build [`Verified`], the only type downstream code accepts. Its constructor is private to
//!    this module.
//!
//! Replay de-duplication happens after this, in the handler, once rate limits have passed, so
//! that an id is never recorded for a request that was not handed on.

pub mod clock;
pub mod descriptor;
pub mod mac;
mod replay_key;
mod scheme;
pub mod secret;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use std::time::Duration;
use subtle::Choice;
use time::OffsetDateTime;
use zeroize::Zeroizing;

pub use clock::{Clock, ManualClock, SystemClock};
pub use descriptor::{Descriptor, Extra, Field};
pub use replay_key::ReplayKey;
pub use scheme::{MacAlgorithm, Scheme, SigEncoding, TemplatePart, TimestampUnit};
pub use secret::Secret;

/// Caps that no vendor sets but every verifier needs.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 4096;
pub const MAX_SIGNATURES: usize = 16;
pub const MAX_ID_LEN: usize = 256;
/// Ed25519 signatures tried per public key. Each verification hashes the whole message, and a
/// signature does not say which key made it; a sender rotating its keys signs with two.
pub const MAX_ED25519_SIGNATURES: usize = 2;

/// A request as it came off the wire: nothing in it has been checked. Its `Debug` shows header
/// names and the body's length only: header values carry signatures and tokens.
pub struct Unverified {
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub body: Bytes,
    pub received_at: OffsetDateTime,
}

/// Why a request failed verification. These are the metric's `reason` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    MissingHeader,
    MalformedHeader,
    BadSignature,
    TooOld,
    TooNew,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::MissingHeader,
        Reason::MalformedHeader,
        Reason::BadSignature,
        Reason::TooOld,
        Reason::TooNew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingHeader => "missing_header",
            Reason::MalformedHeader => "malformed_header",
            Reason::BadSignature => "bad_signature",
            Reason::TooOld => "too_old",
            Reason::TooNew => "too_new",
        }
    }
}

/// A failed verification: the reason (for the metric) and a fixed detail (for the log). Neither
/// ever holds request bytes, a signature or a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: &'static str,
}

impl Rejection {
    pub const fn missing(detail: &'static str) -> Self {
        Rejection {
            reason: Reason::MissingHeader,
            detail,
        }
    }
    pub const fn malformed(detail: &'static str) -> Self {
        Rejection {
            reason: Reason::MalformedHeader,
            detail,
        }
    }
}

/// Key material prepared from a configured secret: the secret as configured (`raw`, for token
/// schemes) and the bytes a MAC or signature check uses (`mac`: decoded where a vendor encodes
/// its secrets, like Standard Webhooks' `whsec_` base64).
pub struct Key {
    raw: Zeroizing<Vec<u8>>,
    mac: Zeroizing<Vec<u8>>,
    /// An Ed25519 public key: it checks signatures and is never used as an HMAC key or a
    /// token (it is public: anyone could compute an HMAC with it).
    public: bool,
}

impl Key {
    /// A key whose MAC bytes are the secret itself.
    pub fn plain(secret: &[u8]) -> Self {
        Key {
            raw: Zeroizing::new(secret.to_vec()),
            mac: Zeroizing::new(secret.to_vec()),
            public: false,
        }
    }
    /// A key whose MAC bytes are decoded from the secret.
    pub fn decoded(secret: &[u8], mac: Vec<u8>) -> Self {
        Key {
            raw: Zeroizing::new(secret.to_vec()),
            mac: Zeroizing::new(mac),
            public: false,
        }
    }
    /// An Ed25519 public key (32 bytes), usable only for signature checks.
    pub fn ed25519_public(secret: &[u8], key: [u8; 32]) -> Self {
        Key {
            raw: Zeroizing::new(secret.to_vec()),
            mac: Zeroizing::new(key.to_vec()),
            public: true,
        }
    }
    pub fn is_public(&self) -> bool {
        self.public
    }
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    pub fn mac(&self) -> &[u8] {
        &self.mac
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([redacted])")
    }
}

impl std::fmt::Debug for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("headers", &HeaderNames(&self.headers))
            .field("query_len", &self.query.as_ref().map(String::len))
            .field("body_len", &self.body.len())
            .field("received_at", &self.received_at)
            .finish()
    }
}

/// Shows a header map's names, never its values.
struct HeaderNames<'a>(&'a HeaderMap);

impl std::fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|k| k.as_str()))
            .finish()
    }
}

/// One piece of an HMAC key built per request (Spectral: `"{timestamp}_{secret}"`).
#[derive(Debug, Clone, Copy)]
pub enum KeyPart<'a> {
    Bytes(&'a [u8]),
    Secret,
}

/// What a vendor presents as proof, and what it proves. Its `Debug` shows counts, never a
/// signature, a token or the signed bytes.
pub enum Check<'a> {
    /// HMAC of `message` (its parts concatenated) under each key, against each candidate.
    Mac {
        alg: MacAlgorithm,
        /// `None`: the prepared key itself.
        key: Option<Vec<KeyPart<'a>>>,
        message: Vec<&'a [u8]>,
        candidates: Vec<Vec<u8>>,
    },
    /// The header carries the shared secret itself (GitLab token, Okta): constant-time equality.
    Token { presented: &'a [u8] },
    /// Ed25519 signatures of `message`; the configured keys are public keys.
    Ed25519 {
        message: Vec<&'a [u8]>,
        candidates: Vec<[u8; 64]>,
    },
    /// Several tokens that must each equal one of the configured secrets (Microsoft Graph's
    /// `clientState`, repeated in every item of a notification): constant-time equality.
    Tokens { presented: Vec<Vec<u8>> },
    /// Passes when any of these passes (Standard Webhooks sends `v1` and `v1a` side by side).
    Any(Vec<Check<'a>>),
}

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Mac {
                alg,
                message,
                candidates,
                ..
            } => f
                .debug_struct("Mac")
                .field("alg", alg)
                .field(
                    "message_len",
                    &message.iter().map(|m| m.len()).sum::<usize>(),
                )
                .field("candidates", &candidates.len())
                .finish(),
            Check::Token { .. } => f.write_str("Token"),
            Check::Tokens { presented } => f
                .debug_struct("Tokens")
                .field("count", &presented.len())
                .finish(),
            Check::Ed25519 {
                message,
                candidates,
            } => f
                .debug_struct("Ed25519")
                .field(
                    "message_len",
                    &message.iter().map(|m| m.len()).sum::<usize>(),
                )
                .field("candidates", &candidates.len())
                .finish(),
            Check::Any(checks) => f.debug_tuple("Any").field(checks).finish(),
        }
    }
}

impl Check<'_> {
    /// The signed bytes, for the replay digest.
    fn signed<'s>(&'s self, body: &'s [u8]) -> Vec<&'s [u8]> {
        match self {
            Check::Mac { message, .. } | Check::Ed25519 { message, .. } => message.clone(),
            Check::Token { .. } | Check::Tokens { .. } => vec![body],
            Check::Any(checks) => checks
                .first()
                .map(|c| c.signed(body))
                .unwrap_or_else(|| vec![body]),
        }
    }
}

#[derive(Debug)]
pub struct Claim<'a> {
    pub check: Check<'a>,
}

/// What a request says about itself, read only after its signature passed.
#[derive(Debug, Default)]
pub struct Facts {
    /// The vendor's timestamp, when the signature covers it (only then is a window meaningful).
    pub signed_time: Option<OffsetDateTime>,
    /// The delivery id the vendor documents as the same on every retry of one delivery and
    /// different for every other one (`X-GitHub-Delivery`, `webhook-id`, Stripe's `id`...): a
    /// replay key. Only such an id may be one: an id that two different deliveries can share
    /// would answer the second "duplicate", and the sender would never retry it.
    pub id: Option<String>,
    /// An id the payload gives its event that the vendor does not document as unique per
    /// delivery (Veritensor's `scan_id`, Okta's `eventId`): it names the event
    /// (`metadata.uid`) but is never a replay key.
    pub label: Option<String>,
}

/// A request whose signature, timestamp and headers passed. Only [`verify`] builds one. Its
/// `Debug` shows what [`Unverified`]'s does, and the event id.
pub struct Verified {
    request: Unverified,
    json: Option<Value>,
    event_id: String,
    vendor_time: Option<OffsetDateTime>,
    replay_keys: Vec<ReplayKey>,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("request", &self.request)
            .field("event_id", &self.event_id)
            .field("vendor_time", &self.vendor_time)
            .field("replay_keys", &self.replay_keys.len())
            .finish()
    }
}

impl Verified {
    pub fn headers(&self) -> &HeaderMap {
        &self.request.headers
    }
    pub fn body(&self) -> &Bytes {
        &self.request.body
    }
    pub fn query(&self) -> Option<&str> {
        self.request.query.as_deref()
    }
    /// The body parsed as JSON, when it is JSON. Parsed only after the signature passed.
    pub fn json(&self) -> Option<&Value> {
        self.json.as_ref()
    }
    pub fn event_id(&self) -> &str {
        &self.event_id
    }
    pub fn received_at(&self) -> OffsetDateTime {
        self.request.received_at
    }
    /// The vendor's signed timestamp, if it sent one.
    pub fn vendor_time(&self) -> Option<OffsetDateTime> {
        self.vendor_time
    }
    /// The keys de-duplication records: the digest of the signed bytes always (the same
    /// signed bytes are the same delivery, whatever id rides beside them), and the vendor's
    /// documented delivery id when it sends one.
    pub fn replay_keys(&self) -> &[ReplayKey] {
        &self.replay_keys
    }
}

/// What the engine needs of a source: its scheme, keys, window and id.
pub struct Verifier<'s> {
    pub source_id: &'s str,
    pub scheme: &'s dyn Scheme,
    pub keys: &'s [Key],
    pub tolerance: Duration,
}

/// Runs the whole check. On failure the request is handed back with the rejection, so the
/// caller can log and count it; nothing of it is kept.
pub fn verify(
    v: &Verifier<'_>,
    req: Unverified,
    now: OffsetDateTime,
) -> Result<Verified, Rejection> {
    let claim = v.scheme.claim(&req)?;
    check(&claim.check, v.keys, &mut Work::default())?;
    let digest = mac::sha256(&claim.check.signed(&req.body));
    drop(claim);

    let mut json = parse_json(&req.body);
    let facts = v.scheme.facts(&req, json.as_ref())?;

    if let Some(t) = facts.signed_time {
        // A window edge beyond representable time is no edge: no config can panic a request.
        let (earliest, latest) = clock::window(now, v.tolerance);
        if earliest.is_some_and(|e| t < e) {
            return Err(Rejection {
                reason: Reason::TooOld,
                detail: "timestamp before the window",
            });
        }
        if latest.is_some_and(|l| t > l) {
            return Err(Rejection {
                reason: Reason::TooNew,
                detail: "timestamp after the window",
            });
        }
    }

    let mut replay_keys = vec![ReplayKey::new(v.source_id, b"digest", &digest)];
    if let Some(id) = &facts.id {
        replay_keys.push(ReplayKey::new(v.source_id, b"id", id.as_bytes()));
    }
    let event_id = facts
        .id
        .or(facts.label)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(&digest[..16])));
    // A vendor that puts its secret in the body (Graph's `clientState`) has it taken out of
    // what is handed on; the digest above is of the bytes as received.
    let mut req = req;
    if let Some(j) = json.as_mut() {
        if v.scheme.scrub(j) {
            req.body = serde_json::to_vec(j).map(Bytes::from).unwrap_or_default();
        }
    }
    Ok(Verified {
        request: req,
        json,
        event_id,
        vendor_time: facts.signed_time,
        replay_keys,
    })
}

fn parse_json(body: &[u8]) -> Option<Value> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'{' || *first == b'[' {
        serde_json::from_slice(body).ok()
    } else {
        None
    }
}

/// The expensive operations one check performed: each hashes the whole signed message. The
/// engine bounds them by the configured keys: one HMAC per secret (every presented signature
/// is compared with it, which is cheap), and at most [`MAX_ED25519_SIGNATURES`] Ed25519
/// verifications per public key. Secrets are never public keys and public keys never secrets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub hmacs: usize,
    pub ed25519: usize,
}

/// Whether `presented` equals any configured secret, compared in constant time with each.
fn token_matches(presented: &[u8], keys: &[Key]) -> Choice {
    keys.iter()
        .filter(|k| !k.is_public())
        .fold(Choice::from(0), |ok, k| {
            ok | mac::ct_eq_token(presented, k.raw())
        })
}

/// Checks the proof against every key.
fn check(c: &Check<'_>, keys: &[Key], work: &mut Work) -> Result<(), Rejection> {
    let bad = Rejection {
        reason: Reason::BadSignature,
        detail: "no signature matched any key",
    };
    match c {
        Check::Mac {
            alg,
            key,
            message,
            candidates,
        } => {
            if candidates.is_empty() {
                return Err(Rejection::malformed("no usable signature"));
            }
            let want = mac::output_len(*alg);
            if candidates.iter().all(|c| c.len() != want) {
                return Err(Rejection::malformed("signature of the wrong length"));
            }
            let mut ok = Choice::from(0);
            for k in keys.iter().filter(|k| !k.is_public()) {
                work.hmacs += 1;
                let expected = match key {
                    None => mac::hmac(*alg, k.mac(), message),
                    Some(parts) => {
                        let mut buf = Zeroizing::new(Vec::new());
                        for p in parts {
                            match p {
                                KeyPart::Bytes(b) => buf.extend_from_slice(b),
                                KeyPart::Secret => buf.extend_from_slice(k.mac()),
                            }
                        }
                        mac::hmac(*alg, &buf, message)
                    }
                };
                for cand in candidates {
                    ok |= mac::ct_eq(&expected, cand);
                }
            }
            if bool::from(ok) {
                Ok(())
            } else {
                Err(bad)
            }
        }
        Check::Token { presented } => {
            if bool::from(token_matches(presented, keys)) {
                Ok(())
            } else {
                Err(bad)
            }
        }
        Check::Tokens { presented } => {
            if presented.is_empty() {
                return Err(Rejection::malformed("no token"));
            }
            let all = presented
                .iter()
                .fold(Choice::from(1), |all, p| all & token_matches(p, keys));
            if bool::from(all) {
                Ok(())
            } else {
                Err(bad)
            }
        }
        Check::Ed25519 {
            message,
            candidates,
        } => {
            use ed25519_dalek::{Signature, VerifyingKey};
            if candidates.is_empty() {
                return Err(Rejection::malformed("no usable signature"));
            }
            // Only keys configured as public keys (`whpk_`): a secret's bytes are never taken
            // for one, which would spend a verification per secret on every request and say
            // something about the secret through its timing.
            let public: Vec<VerifyingKey> = keys
                .iter()
                .filter(|k| k.is_public())
                .filter_map(|k| <[u8; 32]>::try_from(k.mac()).ok())
                .filter_map(|b| VerifyingKey::from_bytes(&b).ok())
                .collect();
            if public.is_empty() {
                return Err(bad);
            }
            let msg: Vec<u8> = message.concat();
            let mut ok = false;
            for vk in &public {
                for cand in candidates.iter().take(MAX_ED25519_SIGNATURES) {
                    work.ed25519 += 1;
                    ok |= vk.verify_strict(&msg, &Signature::from_bytes(cand)).is_ok();
                }
            }
            if ok {
                Ok(())
            } else {
                Err(bad)
            }
        }
        Check::Any(checks) => {
            let mut first_err = None;
            for c in checks {
                match check(c, keys, work) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.reason == Reason::BadSignature => first_err = Some(e),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            Err(first_err.unwrap_or(Rejection::malformed("no usable signature")))
        }
    }
}

// ---- helpers for vendor modules: reading headers and decoding signatures -------------------

/// The single value of header `name`. Absent: `Ok(None)`. Present twice, empty, too long or not
/// visible ASCII: malformed (a signature header is never legitimately any of those).
pub fn single_header<'a>(req: &'a Unverified, name: &str) -> Result<Option<&'a str>, Rejection> {
    let mut it = req.headers.get_all(name).iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Rejection::malformed("header sent more than once"));
    }
    if first.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(Rejection::malformed("header too long"));
    }
    let s = first
        .to_str()
        .map_err(|_| Rejection::malformed("header is not visible ASCII"))?;
    let s = s.trim();
    if s.is_empty() {
        return Err(Rejection::malformed("header is empty"));
    }
    Ok(Some(s))
}

/// Like [`single_header`], but absence is a rejection.
pub fn required_header<'a>(req: &'a Unverified, name: &str) -> Result<&'a str, Rejection> {
    single_header(req, name)?.ok_or(Rejection::missing("signature header missing"))
}

/// An id header (delivery id, event id): absent is fine, malformed is not. Ids are capped.
pub fn id_header(req: &Unverified, name: &str) -> Result<Option<String>, Rejection> {
    match single_header(req, name)? {
        Some(s) if s.len() <= MAX_ID_LEN => Ok(Some(s.to_string())),
        Some(_) => Err(Rejection::malformed("id header too long")),
        None => Ok(None),
    }
}

/// The characters an id may have where it is part of the signed bytes (generic_hmac's `{id}`):
/// `[A-Za-z0-9_-]`, what every documented delivery id uses (GUIDs, `msg_...`, `evt_...`).
pub fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `s` is an id that can stand inside signed bytes: 1 to [`MAX_ID_LEN`] characters
/// of [`is_id_char`]. None of them can be a template's separator (config validation sees to
/// that), so no byte can move between the id and its neighbours while the MAC stays valid.
pub fn is_safe_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(is_id_char)
}

/// The characters a timestamp of `unit` may have: digits for seconds and milliseconds; for
/// ISO-8601 also `T`, `Z`, `:`, `.`, `+` and `-`.
pub fn is_timestamp_char(b: u8, unit: TimestampUnit) -> bool {
    match unit {
        TimestampUnit::Seconds | TimestampUnit::Milliseconds => b.is_ascii_digit(),
        TimestampUnit::Iso8601 => {
            b.is_ascii_digit() || matches!(b, b'T' | b't' | b'Z' | b'z' | b':' | b'.' | b'+' | b'-')
        }
    }
}

/// Whether `s` has the form of a timestamp of `unit`: 1 to 40 characters of
/// [`is_timestamp_char`] (a sign, spaces or anything else is refused before it is parsed).
pub fn is_safe_timestamp(s: &str, unit: TimestampUnit) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| is_timestamp_char(b, unit))
}

/// Splits a signature list, rejecting absurd ones (thousands of entries) as malformed.
pub fn split_list(s: &str, sep: char) -> Result<Vec<&str>, Rejection> {
    let parts: Vec<&str> = s
        .split(sep)
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.len() > 4 * MAX_SIGNATURES {
        return Err(Rejection::malformed("too many signature entries"));
    }
    Ok(parts)
}

/// Decodes a hex signature (either case); `None` when it is not hex.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Decodes a standard base64 signature (padding optional); `None` when it is not base64.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine;
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

/// Keeps at most [`MAX_SIGNATURES`] decodable candidates; none at all is malformed.
pub fn candidates<'a>(
    entries: impl IntoIterator<Item = &'a str>,
    decode: fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, Rejection> {
    let mut out = Vec::new();
    for e in entries {
        if out.len() == MAX_SIGNATURES {
            return Err(Rejection::malformed("too many signatures"));
        }
        if let Some(b) = decode(e) {
            out.push(b);
        }
    }
    if out.is_empty() {
        return Err(Rejection::malformed("no signature could be decoded"));
    }
    Ok(out)
}

/// Parses a signed timestamp of the given form. Unparsable: malformed.
pub fn parse_timestamp(raw: &str, unit: TimestampUnit) -> Result<OffsetDateTime, Rejection> {
    let bad = Rejection::malformed("timestamp is not of the expected form");
    if !is_safe_timestamp(raw.trim(), unit) {
        return Err(bad);
    }
    match unit {
        TimestampUnit::Seconds => {
            let secs: i64 = raw.trim().parse().map_err(|_| bad)?;
            OffsetDateTime::from_unix_timestamp(secs).map_err(|_| bad)
        }
        TimestampUnit::Milliseconds => {
            let ms: i64 = raw.trim().parse().map_err(|_| bad)?;
            OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).map_err(|_| bad)
        }
        TimestampUnit::Iso8601 => {
            OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339)
                .map_err(|_| bad)
        }
    }
}

#[cfg(test)]
mod tests;
