//! The fuzz targets' harnesses (`fuzz/`, cargo-fuzz), kept in the library so that every input a
//! fuzzer ever crashed is replayed by an ordinary test (`tests/it/fuzz_regressions.rs`). Each
//! function takes the fuzzer's bytes, runs one part of siemgate over them and panics when a
//! property fails. Not an API.
//!
//! Profiles (the first byte of [`verify`] and [`normalize`]) are the vendors in
//! [`VendorKind::ALL`] order with fixed secrets, then generic_hmac variants
//! (`fuzz/seed.py` relies on that order).

use http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use time::OffsetDateTime;

use crate::config::{self, SourceConfig, SpoolConfig};
use crate::event::Origin;
use crate::spool::frame::{self, Frame};
use crate::spool::Spool;
use crate::vendors::{Vendor, VendorKind};
use crate::verify::{self, Key, Reason, Unverified, Verifier};

/// The verification time of every case (and the time the vendor signs at, before skew).
pub const NOW_UNIX: i64 = 1_775_485_925;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW_UNIX).expect("a valid time")
}

/// generic_hmac options beyond its first profile: SHA-512/base64/list/milliseconds, a bearer
/// token, the timestamp in the key.
const GENERIC_EXTRAS: &[&str] = &[
    "header = \"X-Signature\"\nprefix = \"sha256=\"\nsigned_template = \"{timestamp}.{body}\"\ntimestamp_header = \"X-Timestamp\"\nid_header = \"X-Request-Id\"",
    "header = \"X-Sig\"\nalgorithm = \"sha512\"\nencoding = \"base64\"\nseparator = \" \"\nsigned_template = \"{id}:{timestamp}:{body}\"\ntimestamp_header = \"X-Sent-At\"\ntimestamp_unit = \"milliseconds\"\nid_header = \"X-Request-Id\"",
    "header = \"Authorization\"\nalgorithm = \"token\"\nprefix = \"Bearer \"\nid_header = \"X-Request-Id\"",
    "header = \"X-Signature\"\nalgorithm = \"sha1\"\nencoding = \"hex\"\nsigned_template = \"{body}\"\nkey_template = \"{timestamp}_{secret}\"\ntimestamp_header = \"X-Ts\"\ntimestamp_unit = \"iso8601\"",
];

/// A configured source and what verifying for it needs.
pub struct Profile {
    pub source: SourceConfig,
    pub scheme: Box<dyn Vendor>,
    pub keys: Vec<Key>,
    /// Whether the proof covers the body (false for token schemes: they authenticate the
    /// sender, not the bytes).
    pub body_signed: bool,
    /// Whether the vendor's signer can prove a request from headers alone (false for Graph,
    /// whose proof is a `clientState` inside the body, which only the sender writes).
    pub header_signer: bool,
}

impl Profile {
    /// `body` signed by the vendor's own signer at `at` (event id `id`) and verified at `at`,
    /// within `tolerance`: what a normalizer, a fuzzer or a benchmark starts from.
    pub fn sign_and_verify(
        &self,
        body: &[u8],
        at: OffsetDateTime,
        id: &str,
        tolerance: Duration,
    ) -> Result<verify::Verified, verify::Rejection> {
        let mut headers = HeaderMap::new();
        for (k, v) in self.scheme.sign(&self.keys[0], body, at, id) {
            add_header(&mut headers, k.as_bytes(), v.as_bytes(), false);
        }
        let verifier = Verifier {
            source_id: "fuzz",
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance,
        };
        let req = Unverified {
            headers,
            query: None,
            body: body.to_vec().into(),
            received_at: at,
        };
        verify::verify(&verifier, req, at)
    }
}

pub fn profile_count() -> usize {
    VendorKind::ALL.len() + GENERIC_EXTRAS.len() - 1
}

/// Profile `i % profile_count()`, built once.
pub fn profile(i: u8) -> &'static Profile {
    static PROFILES: OnceLock<Vec<Profile>> = OnceLock::new();
    let all = PROFILES.get_or_init(|| (0..profile_count()).map(build_profile).collect());
    &all[i as usize % profile_count()]
}

fn build_profile(i: usize) -> Profile {
    let (kind, extra) = match VendorKind::ALL.get(i) {
        Some(k) if *k == VendorKind::GenericHmac => (*k, GENERIC_EXTRAS[0]),
        Some(k) => (*k, ""),
        None => (
            VendorKind::GenericHmac,
            GENERIC_EXTRAS[i + 1 - VendorKind::ALL.len()],
        ),
    };
    let secret = match kind {
        VendorKind::StandardWebhooks => "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into(),
        _ => format!("{}-fuzz-secret", kind.name()),
    };
    let text = format!(
        "[[sources]]\nid = \"fuzz\"\nvendor = \"{}\"\nsecrets = [{secret:?}]\nsinks = [\"out\"]\n{extra}\n\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"/dev/null\"\n",
        kind.name(),
    );
    let config = config::parse(&text, Path::new("/"), &|_| None)
        .unwrap_or_else(|e| panic!("fuzz profile {i} does not parse: {e}\n{text}"));
    let source = config.sources.into_iter().next().expect("one source");
    let scheme = source.scheme();
    let keys = source
        .secrets
        .iter()
        .map(|s| scheme.prepare_key(s).expect("profile secrets are valid"))
        .collect();
    // Graph's proof is a clientState in the body, which a fuzzer may well write.
    let token = matches!(
        kind,
        VendorKind::Gitlab | VendorKind::Okta | VendorKind::Msgraph
    ) || extra.contains("algorithm = \"token\"");
    Profile {
        source,
        scheme,
        keys,
        body_signed: !token,
        header_signer: kind != VendorKind::Msgraph,
    }
}

/// Adds `(name, value)` to `map` when both are valid HTTP; `replace` overwrites.
fn add_header(map: &mut HeaderMap, name: &[u8], value: &[u8], replace: bool) {
    let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
        return;
    };
    if replace {
        map.insert(n, v);
    } else {
        map.append(n, v);
    }
}

/// `verify` flags (second byte).
pub const SIGNED: u8 = 1;
pub const FLIP_BODY: u8 = 2;
pub const REPLACE_HEADERS: u8 = 4;
pub const HUGE_TOLERANCE: u8 = 8;

/// Every vendor's header parsing and the verify engine over arbitrary headers and bodies.
///
/// Input: `[profile][flags][flip: u16 LE][skew: i32 LE]`, header lines (`name: value\n`), an
/// empty line, the body (without an empty line, all of it is body). Unsigned: the fuzzer's
/// headers and body go to the engine as they are; nothing may verify except a token scheme
/// given its token (the fuzzer does not know the keys). Signed: the vendor's own signer signs
/// the body at `NOW + skew`, the fuzzer's headers are added (or replace the signed ones);
/// untampered it is never a bad signature, and with a body byte flipped it never verifies
/// where the proof covers the body. Nothing panics.
pub fn verify(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let (which, flags) = (data[0], data[1]);
    let flip = u16::from_le_bytes([data[2], data[3]]) as usize;
    let skew = i32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let rest = &data[8..];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&rest[..p], &rest[p + 2..]),
        None => (&rest[..0], rest),
    };
    let extra: Vec<(&[u8], &[u8])> = head
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let value = &line[colon + 1..];
            Some((&line[..colon], value.strip_prefix(b" ").unwrap_or(value)))
        })
        .collect();

    let p = profile(which);
    let now = now();
    let verifier = Verifier {
        source_id: "fuzz",
        scheme: p.scheme.as_ref(),
        keys: &p.keys,
        tolerance: if flags & HUGE_TOLERANCE != 0 {
            Duration::MAX
        } else {
            p.source.tolerance
        },
    };
    let mut headers = HeaderMap::new();
    let mut body = body.to_vec();
    let signed = flags & SIGNED != 0;
    if signed {
        let ts = now
            .checked_add(time::Duration::seconds(i64::from(skew)))
            .unwrap_or(now);
        for (k, v) in p.scheme.sign(&p.keys[0], &body, ts, "evt-fuzz-1") {
            add_header(&mut headers, k.as_bytes(), v.as_bytes(), false);
        }
    }
    for (k, v) in &extra {
        add_header(&mut headers, k, v, flags & REPLACE_HEADERS != 0);
    }
    let flipped = signed && flags & FLIP_BODY != 0 && !body.is_empty();
    if flipped {
        let i = flip % body.len();
        body[i] ^= 0x01;
    }
    let req = Unverified {
        headers,
        query: None,
        body: body.into(),
        received_at: now,
    };
    let outcome = verify::verify(&verifier, req, now);
    let vendor = p.source.vendor.name();
    if !signed {
        assert!(
            outcome.is_err() || !p.body_signed,
            "an unsigned request verified for {vendor}"
        );
    } else if extra.is_empty() && !flipped && p.header_signer {
        if let Err(r) = outcome {
            assert_ne!(
                r.reason,
                Reason::BadSignature,
                "the vendor's own signature did not verify for {vendor}: {r:?}"
            );
        }
    } else if extra.is_empty() && p.body_signed {
        assert!(
            outcome.is_err(),
            "a body with a flipped byte verified for {vendor}"
        );
    }
}

/// Every normalizer over arbitrary verified bodies: `[profile]` then the body, signed by the
/// vendor's signer and verified (with a window that admits any signed time, so timestamps in
/// the body do not stop it). Normalizing yields at least one event, each serializable, with
/// and without `raw_data`.
pub fn normalize(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let p = profile(which);
    let Ok(verified) = p.sign_and_verify(body, now(), "evt-fuzz-1", Duration::MAX) else {
        return;
    };
    let name = p.source.vendor.name();
    let input = crate::ocsf::Input::of(name, &verified);
    if p.scheme.handshake(&input, &p.keys).is_some() {
        return;
    }
    for include_raw in [true, false] {
        let origin = Origin {
            source_id: "fuzz",
            vendor: name,
            include_raw,
        };
        // Over MAX_EVENTS_PER_REQUEST a request is refused (413) before any event is built.
        if crate::ocsf::check(p.scheme.as_ref(), &origin, &verified).is_err() {
            continue;
        }
        let events = crate::ocsf::normalize(p.scheme.as_ref(), &origin, &verified);
        assert!(!events.is_empty(), "{name}: no event");
        // What the check let through stays within the limit once normalized.
        assert!(
            events.len() <= crate::ocsf::MAX_EVENTS_PER_REQUEST,
            "{name}: {} events passed the check",
            events.len()
        );
        for e in &events {
            // Written straight from its parts: the bytes its JSON tree gives (sorted keys,
            // none twice).
            let text = serde_json::to_string(e).expect("an event serializes");
            let tree = serde_json::to_value(e).expect("an event serializes");
            assert_eq!(text, tree.to_string(), "{name}: keys out of order or twice");
        }
    }
}

/// Turns `[len: u16 LE][payload]...` into spool frames with correct checksums, so that a
/// fuzzer, which cannot forge a CRC-32, reaches what lies behind one. A chunk cut short by the
/// end of the input is framed as far as it goes.
pub fn reframe(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        let payload = &data[2..2 + len];
        frame::encode_with(&mut out, |p| p.extend_from_slice(payload));
        data = &data[2 + len..];
    }
    out
}

/// Spool frame, record and dead-letter decoding over arbitrary bytes (first byte odd: the rest
/// is payloads framed here with good checksums). Whole frames are as long as they say; decoded
/// records and dead letters encode back to the same bytes.
pub fn spool_frame(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let data = if mode & 1 == 1 {
        reframe(rest)
    } else {
        rest.to_vec()
    };
    let mut r = &data[..];
    let mut at = 0usize;
    loop {
        let before = r.len();
        match frame::read(&mut r).expect("reading a slice cannot fail") {
            Frame::End => {
                assert!(r.is_empty());
                break;
            }
            Frame::Broken(_) | Frame::Zeros => break,
            Frame::Whole(payload, len) => {
                let len = len as usize;
                assert_eq!(len, before - r.len());
                assert_eq!(len, payload.len() + frame::HEADER as usize);
                let original = &data[at..at + len];
                at += len;
                if let Ok(rec) = frame::decode_record(payload.clone()) {
                    let mut again = Vec::new();
                    frame::encode_record(
                        &mut again,
                        rec.seq,
                        rec.received_ms,
                        &rec.sinks,
                        &rec.head,
                        &rec.event,
                    );
                    if payload.first() == Some(&frame::RECORD_VERSION) {
                        assert_eq!(again, original, "a record does not encode back");
                    } else {
                        // An older record is written in the current version: the same record.
                        let p = &again[frame::HEADER as usize..];
                        let back =
                            frame::decode_record(p.to_vec()).expect("a record it just encoded");
                        assert_eq!(back, rec, "an old record does not survive re-encoding");
                    }
                }
                if let Ok(keys) = frame::decode_keys(&payload) {
                    let mut again = Vec::new();
                    frame::encode_keys(&mut again, &keys);
                    assert_eq!(again, original, "replay keys do not encode back");
                }
                if let Ok(d) = frame::decode_dead_letter(&payload) {
                    if d.error.len() <= 4096 {
                        let mut again = Vec::new();
                        frame::encode_dead_letter(&mut again, &d);
                        assert_eq!(again, original, "a dead letter does not encode back");
                    }
                }
            }
        }
    }
}

/// The records of a file that reads whole to its end (zeros after its records count as its
/// end), or `None` if anything in it is not whole.
fn whole(bytes: &[u8], records: bool) -> Option<Vec<Option<frame::Record>>> {
    let mut r = bytes;
    let mut out = Vec::new();
    loop {
        match frame::read(&mut r).ok()? {
            Frame::End => return Some(out),
            Frame::Broken(_) => return None,
            // A segment written ahead: whole when nothing but zeros follows.
            Frame::Zeros => return r.iter().all(|b| *b == 0).then_some(out),
            Frame::Whole(p, _) if records && frame::is_keys(&p) => {
                frame::decode_keys(&p).ok()?;
                out.push(None);
            }
            Frame::Whole(p, _) if records => out.push(Some(frame::decode_record(p).ok()?)),
            Frame::Whole(p, _) => {
                frame::decode_dead_letter(&p).ok()?;
                out.push(None);
            }
        }
    }
}

/// A fresh, empty directory for one case, removed on drop (RAM-backed when there is one:
/// recovery syncs, and a disk would slow the fuzzer).
struct CaseDir(PathBuf);

impl CaseDir {
    fn new() -> CaseDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let root = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = root.join(format!(
            "siemgate-fuzz-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            crate::sink::transport::uuid_v4()
        ));
        std::fs::create_dir_all(&dir).expect("a case directory");
        CaseDir(dir)
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Spool recovery over a directory of arbitrary segment, cursor and dead-letter files. Opening
/// never panics, and when it succeeds it claims only whole data: every segment left holds only
/// whole, decodable records and is a prefix of what was there, the dead-letter file likewise,
/// and each sink's pending count is exactly the records for it past its cursor.
///
/// Input: `[flags][cursor]`, per segment `[name step][length: u16 LE][bytes]`, the rest for
/// the dead-letter file of sink `a`. flags: bits 0-1 segments - 1; bit 2 a cursor for `a`;
/// bit 3 a dead-letter file; bit 4 a cursor file for `b` that is not a number; bit 5 segments
/// given as payloads framed here with good checksums ([`reframe`]); bit 6 the dead letters too.
pub fn spool_recover(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (flags, cursor) = (data[0], data[1]);
    let mut rest = &data[2..];
    let dir = CaseDir::new();
    let segments = dir.0.join("segments");
    for sub in ["segments", "cursors", "dlq"] {
        std::fs::create_dir_all(dir.0.join(sub)).expect("mkdir");
    }
    let mut written = Vec::new();
    let mut first = 0u64;
    for _ in 0..=(flags & 3) {
        if rest.len() < 3 {
            break;
        }
        // names are distinct: a step of 0 after the first segment counts as 1
        first += u64::from(rest[0]).max(u64::from(!written.is_empty()));
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let raw = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let bytes = if flags & 32 != 0 {
            reframe(raw)
        } else {
            raw.to_vec()
        };
        let path = segments.join(format!("{first:020}.seg"));
        std::fs::write(&path, &bytes).expect("write a segment");
        written.push((path, bytes));
    }
    let mut cursors: HashMap<&str, u64> = HashMap::new();
    if flags & 4 != 0 {
        std::fs::write(dir.0.join("cursors/a"), format!("{cursor}\n")).expect("a cursor");
        cursors.insert("a", u64::from(cursor));
    }
    if flags & 16 != 0 {
        std::fs::write(dir.0.join("cursors/b"), "not a number").expect("a cursor");
    }
    let dead = if flags & 64 != 0 {
        reframe(rest)
    } else {
        rest.to_vec()
    };
    let dlq = dir.0.join("dlq/a.dlq");
    if flags & 8 != 0 {
        std::fs::write(&dlq, &dead).expect("dead letters");
    }
    let cfg = SpoolConfig {
        dir: dir.0.clone(),
        max_size: 1 << 30,
        flush_timeout: Duration::from_secs(1),
    };
    let Ok(spool) = Spool::open(
        &cfg,
        &["a".to_string(), "b".to_string()],
        &crate::telemetry::Telemetry::new(),
        &mut crate::spool::NoKeys,
    ) else {
        return;
    };
    let mut pending: HashMap<String, u64> = HashMap::new();
    for (path, original) in &written {
        let now = std::fs::read(path).unwrap_or_default();
        assert!(
            original.starts_with(&now),
            "recovery changed {}",
            path.display()
        );
        let records = whole(&now, true).unwrap_or_else(|| {
            panic!(
                "recovery kept a segment that is not whole: {}",
                path.display()
            )
        });
        for rec in records.into_iter().flatten() {
            let sinks: BTreeSet<&str> = rec.sinks.iter().map(String::as_str).collect();
            for s in sinks {
                if (s == "a" || s == "b") && rec.seq > cursors.get(s).copied().unwrap_or(0) {
                    *pending.entry(s.to_string()).or_default() += 1;
                }
            }
        }
    }
    for s in ["a", "b"] {
        assert_eq!(
            spool.pending(s),
            pending.get(s).copied().unwrap_or(0),
            "the pending count of sink {s} is not the whole records for it"
        );
    }
    if flags & 8 != 0 {
        let now = std::fs::read(&dlq).unwrap_or_default();
        assert!(dead.starts_with(&now), "recovery changed the dead letters");
        let letters = whole(&now, false).expect("dead letters left whole");
        let listed = spool.dead_letter_counts().get("a").copied().unwrap_or(0);
        assert_eq!(listed, letters.len() as u64);
    }
    spool.close();
}

/// What the `config` harness puts in the environment.
pub const CONFIG_MARKER: &str = "zqMARKER7x";

/// Config loading and validation over arbitrary text: never panics, and no error message
/// contains an environment value ([`CONFIG_MARKER`]) that the text does not spell out.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |k: &str| match k {
        "SECRET" | "GH_SECRET" | "TOKEN" => Some(CONFIG_MARKER.to_string()),
        "PORT" => Some("8443".to_string()),
        _ => None,
    };
    match config::parse(text, Path::new("/nonexistent-siemgate-fuzz"), &env) {
        Ok(c) => drop(c.summary()),
        Err(e) => {
            let shown = e.to_string();
            assert!(
                !shown.contains(CONFIG_MARKER) || text.contains(CONFIG_MARKER),
                "an environment value in a config error:\n{shown}"
            );
        }
    }
}
