//! One conformance suite, run for every vendor through the real pipeline ([`Gateway::ingest`]:
//! verification, replay store, file sink), without HTTP. Each vendor gets its own gateway with a
//! clock pinned at [`T0`] and a file sink in a temporary directory.
//!
//! A vendor is one row of the `profiles!` table below. Each row becomes a `#[tokio::test]` named
//! after the row, which runs every case and fails naming the vendor and each failed case.
//! `every_vendor_has_a_profile` fails when a vendor in `VendorKind::ALL` has no row.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use time::OffsetDateTime;

use siemgate::config::{self, Secret};
use siemgate::gateway::{Gateway, Outcome};
use siemgate::replay::MemoryStore;
use siemgate::vendors::{Vendor, VendorKind};
use siemgate::verify::{
    mac, Clock, Key, ManualClock, Reason, Unverified, MAX_SIGNATURE_HEADER_LEN,
};

use crate::support::{secret_for, source, T0};

/// The form of a source's secrets.
#[derive(Clone, Copy)]
enum Secrets {
    /// `support::secret_for(kind, n)`.
    Vendor,
    /// A Standard Webhooks `whsec_` signing secret (GitLab's signing-token form).
    Whsec,
}

/// What `metadata.uid` of a valid request is.
#[derive(Clone, Copy)]
enum Uid {
    /// The id given to `sign()` / `sample_body()`.
    Id,
    /// No id: `sha256:` and the first 16 bytes of SHA-256 of the body, in hex.
    BodyDigest,
    /// No id: the digest of Zoom's signed bytes, `v0:{timestamp}:{body}`.
    ZoomDigest,
}

struct Profile {
    /// The test's name and the source id.
    label: &'static str,
    kind: VendorKind,
    secrets: Secrets,
    /// Vendor keys of the `[[sources]]` table.
    extra: &'static str,
    /// The header that carries the proof (signature or token).
    proof: &'static str,
    /// A separate header carrying the signed timestamp, if any.
    ts_header: Option<&'static str>,
    /// A proof value that is not of the vendor's form (not hex/base64, wrong prefix, not ASCII).
    garbage: &'static [u8],
    /// Whether the proof covers the body. Token schemes authenticate the sender, not the bytes.
    body_signed: bool,
    uid: Uid,
    /// Vendors that take a list of signatures: the separator and an entry that does not decode.
    list: Option<(&'static str, &'static str)>,
    /// Whether the timestamp window applies; `None`: `kind.signs_timestamp(&opts)`.
    window: Option<bool>,
}

const GENERIC: &str = r#"header = "X-Signature"
prefix = "sha256="
signed_template = "{timestamp}.{body}"
timestamp_header = "X-Timestamp"
id_header = "X-Request-Id""#;

/// generic_hmac with every other option: SHA-512, base64, a list, the id and a millisecond
/// timestamp in the signed bytes.
const GENERIC_LIST: &str = r#"header = "X-Sig"
algorithm = "sha512"
encoding = "base64"
separator = " "
signed_template = "{id}:{timestamp}:{body}"
timestamp_header = "X-Sent-At"
timestamp_unit = "milliseconds"
id_header = "X-Request-Id""#;

/// generic_hmac as a bearer token.
const GENERIC_TOKEN: &str = r#"header = "Authorization"
algorithm = "token"
prefix = "Bearer "
id_header = "X-Request-Id""#;

/// generic_hmac with a timestamp header that no template uses: the timestamp is not signed.
const GENERIC_UNSIGNED_TS: &str = r#"header = "X-Signature"
prefix = "sha256="
timestamp_header = "X-Timestamp"
id_header = "X-Request-Id""#;

macro_rules! profiles {
    ($($name:ident: $kind:ident, $secrets:ident, $extra:expr, $proof:literal, $ts:expr, $garbage:literal,
       $signed:literal, $uid:ident, $list:expr, $window:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                run(&Profile {
                    label: stringify!($name),
                    kind: VendorKind::$kind,
                    secrets: Secrets::$secrets,
                    extra: $extra,
                    proof: $proof,
                    ts_header: $ts,
                    garbage: $garbage,
                    body_signed: $signed,
                    uid: Uid::$uid,
                    list: $list,
                    window: $window,
                })
                .await;
            }
        )*

        /// Every vendor with a profile.
        const PROFILED: &[VendorKind] = &[$(VendorKind::$kind),*];
    };
}

profiles! {
//  test/source          vendor            secrets extra                proof header                  timestamp header                   malformed proof        body   uid         list (sep, junk)      window
    veritensor:          Veritensor,       Vendor, "",                  "x-veritensor-signature-256", None,                              b"sha256=zz",          true,  Id,         None,                 None;
    humanbound:          Humanbound,       Vendor, "",                  "x-humanbound-signature",     None,                              b"sha256=zz",          true,  BodyDigest, None,                 None;
    soteri:              Soteri,           Vendor, "",                  "x-soteri-signature",         None,                              b"%%%",                true,  BodyDigest, Some((",", "%%")),    None;
    syvault:             Syvault,          Vendor, "",                  "x-vf-signature-256",         None,                              b"sha256=zz",          true,  Id,         None,                 None;
    spectral:            Spectral,         Vendor, "",                  "x-spectral-signature",       Some("x-spectral-timestamp"),      b"zz",                 true,  BodyDigest, None,                 None;
    github:              Github,           Vendor, "",                  "x-hub-signature-256",        None,                              b"sha1=0123",          true,  Id,         None,                 None;
    // The secret-token form: the header carries the secret itself.
    gitlab:              Gitlab,           Vendor, "",                  "x-gitlab-token",             None,                              b"tok\xffen",          false, Id,         None,                 None;
    // The signing-token form (Standard Webhooks). It signs a timestamp, which
    // `VendorKind::Gitlab.signs_timestamp()` cannot know (it depends on the secret), hence the override.
    gitlab_signing:      Gitlab,           Whsec,  "",                  "webhook-signature",          Some("webhook-timestamp"),         b"v1,%%",              true,  Id,         Some((" ", "v1,%%")), Some(true);
    stripe:              Stripe,           Vendor, "",                  "stripe-signature",           None,                              b"t=1700000000,v1=zz", true,  Id,         Some((",", "v1=zz")), None;
    slack:               Slack,            Vendor, "",                  "x-slack-signature",          Some("x-slack-request-timestamp"), b"v0=zz",              true,  Id,         None,                 None;
    standard_webhooks:   StandardWebhooks, Vendor, "",                  "webhook-signature",          Some("webhook-timestamp"),         b"v1,%%",              true,  Id,         Some((" ", "v1,%%")), None;
    shopify:             Shopify,          Vendor, "",                  "x-shopify-hmac-sha256",      None,                              b"%%",                 true,  Id,         None,                 None;
    pagerduty:           Pagerduty,        Vendor, "",                  "x-pagerduty-signature",      None,                              b"v1=zz",              true,  Id,         Some((",", "v1=zz")), None;
    zoom:                Zoom,             Vendor, "",                  "x-zm-signature",             Some("x-zm-request-timestamp"),    b"v0=zz",              true,  ZoomDigest, None,                 None;
    linear:              Linear,           Vendor, "",                  "linear-signature",           None,                              b"zz",                 true,  Id,         None,                 None;
    sentry:              Sentry,           Vendor, "",                  "sentry-hook-signature",      None,                              b"zz",                 true,  Id,         None,                 None;
    okta:                Okta,             Vendor, "",                  "authorization",              None,                              b"tok\xffen",          false, Id,         None,                 None;
    generic_hmac:        GenericHmac,      Vendor, GENERIC,             "x-signature",                Some("x-timestamp"),               b"sha256=zz",          true,  Id,         None,                 None;
    generic_hmac_list:   GenericHmac,      Vendor, GENERIC_LIST,        "x-sig",                      Some("x-sent-at"),                 b"%%",                 true,  Id,         Some((" ", "%%")),    None;
    generic_token:       GenericHmac,      Vendor, GENERIC_TOKEN,       "authorization",              None,                              b"Basic abc",          false, Id,         None,                 None;
    // No template uses the timestamp: it is not signed and no window applies (see
    // `signs_timestamp_of_an_unsigned_generic_timestamp`).
    generic_unsigned_ts: GenericHmac,      Vendor, GENERIC_UNSIGNED_TS, "x-signature",                None,                              b"sha256=zz",          true,  Id,         None,                 Some(false);
}

#[test]
fn every_vendor_has_a_profile() {
    let missing: Vec<&str> = VendorKind::ALL
        .iter()
        .filter(|k| !PROFILED.contains(k) && !BODY_PROOF.contains(k))
        .map(|k| k.name())
        .collect();
    assert!(
        missing.is_empty(),
        "vendors without a conformance profile: {missing:?}"
    );
}

/// Vendors whose proof is in the body, not a header (Microsoft Graph's `clientState`): the
/// header cases do not apply; each has its own test below running the cases that do.
const BODY_PROOF: &[VendorKind] = &[VendorKind::Msgraph];

/// Microsoft Graph through the same pipeline: the cases of the suite that apply to a proof
/// carried in every `value[]` item of the body.
#[tokio::test]
async fn msgraph() {
    let p = Profile {
        label: "msgraph",
        kind: VendorKind::Msgraph,
        secrets: Secrets::Vendor,
        extra: "",
        proof: "clientState",
        ts_header: None,
        garbage: b"",
        body_signed: false,
        uid: Uid::Id,
        list: None,
        window: Some(false),
    };
    let h = Harness::new(&p);
    let none: Headers = Vec::new();
    let (s1, s2, wrong) = (secret(&p, 1), secret(&p, 2), secret(&p, 9));
    let body = |id: &str, cs: &[&str]| {
        let items: Vec<Value> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({"id": format!("{id}-{i}"), "clientState": c, "changeType": "updated",
                                   "resource": "Users/u1", "subscriptionId": "s1"})
            })
            .collect();
        serde_json::json!({ "value": items })
            .to_string()
            .into_bytes()
    };
    let mut failures = Vec::new();
    let mut case = |name: &str, r: CaseResult| {
        if let Err(e) = r {
            failures.push(format!("  {name}: {e}"));
        }
    };
    let valid = body("valid", &[&s1]);
    let r = h.send(&none, &valid).await;
    case(
        "valid",
        accepted(&r).and_then(|ev| {
            h.check_origin(ev)?;
            expect_field(ev, "/metadata/uid", "valid-0")?;
            if serde_json::to_string(ev).unwrap().contains(&s1) {
                return Err("the clientState was handed on".into());
            }
            Ok(())
        }),
    );
    case(
        "replayed",
        match h.send(&none, &valid).await {
            (Outcome::Duplicate, lines) if lines.is_empty() => Ok(()),
            (o, l) => Err(format!(
                "expected Duplicate, got {o:?} and {} line(s)",
                l.len()
            )),
        },
    );
    case(
        "rotated key (each secret, and both in one notification)",
        async {
            for cs in [
                vec![s1.as_str()],
                vec![s2.as_str()],
                vec![s1.as_str(), s2.as_str()],
            ] {
                let n = cs.len();
                match h.send(&none, &body("rotated", &cs)).await {
                    (Outcome::Accepted { events }, _) if events == n => {}
                    (o, _) => return Err(format!("{cs:?}: {o:?}")),
                }
            }
            Ok(())
        }
        .await,
    );
    case(
        "wrong key",
        rejected(
            &h.send(&none, &body("wrong", &[&wrong])).await,
            Reason::BadSignature,
        ),
    );
    case(
        "one item with a wrong key",
        rejected(
            &h.send(&none, &body("mixed", &[&s1, &wrong])).await,
            Reason::BadSignature,
        ),
    );
    case(
        "missing proof",
        rejected(
            &h.send(&none, br#"{"value":[{"changeType":"created"}]}"#)
                .await,
            Reason::MissingHeader,
        ),
    );
    case(
        "malformed proof",
        rejected(
            &h.send(&none, br#"{"value":[{"clientState":42}]}"#).await,
            Reason::MalformedHeader,
        ),
    );
    case(
        "truncated proof",
        rejected(
            &h.send(&none, &body("truncated", &[&s1[..s1.len() - 2]]))
                .await,
            Reason::BadSignature,
        ),
    );
    case(
        "no items",
        rejected(
            &h.send(&none, br#"{"value":[]}"#).await,
            Reason::MalformedHeader,
        ),
    );
    case(
        "empty body",
        rejected(&h.send(&none, b"").await, Reason::MalformedHeader),
    );
    case(
        "non-UTF-8 body",
        rejected(
            &h.send(&none, &[0xff, 0xfe, 0x00, 0x80]).await,
            Reason::MalformedHeader,
        ),
    );
    assert!(
        failures.is_empty(),
        "vendor msgraph: {} conformance case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `signs_timestamp` ("whether this vendor signs a timestamp, so the window applies") must be
/// false for a generic_hmac source whose templates do not use `{timestamp}`: the window does not
/// apply to it (the `generic_unsigned_ts` profile shows an old timestamp accepted).
#[test]
fn signs_timestamp_of_an_unsigned_generic_timestamp() {
    let text = format!(
        "{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
        source("g", "generic_hmac", &["s"], GENERIC_UNSIGNED_TS)
    );
    let config = config::parse(&text, std::path::Path::new("."), &|_| None).unwrap();
    let src = config.source("g").unwrap();
    assert!(!src.vendor.signs_timestamp(&src.options));
}

type Headers = Vec<(String, Vec<u8>)>;
type Response = (Outcome, Vec<Value>);
type CaseResult = Result<(), String>;

async fn run(p: &Profile) {
    let h = Harness::new(p);
    let mut failures = Vec::new();
    let mut case = |name: &str, r: CaseResult| {
        if let Err(e) = r {
            failures.push(format!("  {name}: {e}"));
        }
    };
    case("valid", h.valid().await);
    case("tampered body", h.tampered().await);
    case("wrong key", h.wrong_key().await);
    case("rotated key", h.rotated().await);
    case("missing proof header", h.missing_proof().await);
    if let Some(ts) = p.ts_header {
        case("missing timestamp header", h.missing_header(ts).await);
    }
    case("malformed proof header", h.replaced_proof(p.garbage).await);
    case("empty proof header", h.replaced_proof(b"").await);
    case(
        "duplicated proof header",
        h.duplicated(p.proof, Reason::MalformedHeader).await,
    );
    if let Some(ts) = p.ts_header {
        case(
            "duplicated timestamp header",
            h.duplicated(ts, Reason::MalformedHeader).await,
        );
    }
    // A signature of the wrong length is malformed; a token that is too short is just wrong.
    let truncated = if p.body_signed {
        Reason::MalformedHeader
    } else {
        Reason::BadSignature
    };
    case("truncated proof", h.truncated_proof(truncated).await);
    let tol = h.tolerance;
    let second = time::Duration::SECOND;
    if h.window {
        case(
            "too old",
            rejected(&h.at_offset("old", -(tol + second)).await, Reason::TooOld),
        );
        case(
            "too new",
            rejected(&h.at_offset("new", tol + second).await, Reason::TooNew),
        );
        case(
            "oldest in window",
            accepted(&h.at_offset("oldest", -tol).await).map(drop),
        );
        case(
            "newest in window",
            accepted(&h.at_offset("newest", tol).await).map(drop),
        );
    } else {
        // No signed timestamp: a timestamp the vendor sends anyway (Sentry) or the body's
        // own time proves nothing, so an old one is no reason to reject. Replay protection for
        // these vendors is the id/digest store (see "replayed").
        case(
            "old timestamp irrelevant",
            accepted(&h.at_offset("ancient", -(tol * 10i32)).await).map(drop),
        );
    }
    case("replayed", h.replayed().await);
    case(
        "replayed with other headers rewritten or removed",
        h.replayed_rewritten().await,
    );
    case("empty body", h.empty_body().await);
    case("non-UTF-8 body", h.non_utf8_body().await);
    if let Some((sep, junk)) = p.list {
        case(
            "junk list entries skipped",
            h.list(sep, junk, 3, None).await,
        );
        // Under the header length cap: the entry-count cap must reject it, though the valid
        // signature is in the list (with 3 junk entries it is accepted, above).
        case(
            "99 list entries",
            h.list(sep, junk, 99, Some(Reason::MalformedHeader)).await,
        );
        case(
            "5000 list entries",
            h.list(sep, junk, 5000, Some(Reason::MalformedHeader)).await,
        );
    }
    assert!(
        failures.is_empty(),
        "vendor {} ({}): {} conformance case(s) failed:\n{}",
        p.label,
        p.kind.name(),
        failures.len(),
        failures.join("\n")
    );
}

struct Harness<'p> {
    p: &'p Profile,
    _dir: tempfile::TempDir,
    /// Reads what the gateway spooled for the sink `out`.
    reader: RefCell<siemgate::spool::Reader>,
    /// Every event spooled so far.
    spooled: RefCell<Vec<Value>>,
    gw: Gateway,
    clock: Arc<ManualClock>,
    scheme: Box<dyn Vendor>,
    tolerance: time::Duration,
    window: bool,
    keys: [Key; 2],
    wrong: Key,
    /// Sink lines already seen.
    seen: Cell<usize>,
    next_id: Cell<u32>,
}

fn secret(p: &Profile, n: u8) -> String {
    match p.secrets {
        Secrets::Vendor => secret_for(p.kind, n),
        Secrets::Whsec => secret_for(VendorKind::StandardWebhooks, n.wrapping_add(100)),
    }
}

fn digest(parts: &[&[u8]]) -> String {
    format!("sha256:{}", hex::encode(&mac::sha256(parts)[..16]))
}

fn header_map(pairs: &Headers) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(v).expect("header value"),
        );
    }
    m
}

fn accepted(r: &Response) -> Result<&Value, String> {
    match r {
        (Outcome::Accepted { events: 1 }, lines) if lines.len() == 1 => Ok(&lines[0]),
        (o, lines) => Err(format!(
            "expected Accepted {{ events: 1 }} and one sink line, got {o:?} and {} line(s)",
            lines.len()
        )),
    }
}

fn rejected(r: &Response, reason: Reason) -> CaseResult {
    match r {
        (Outcome::Unauthorized(rej), lines) if rej.reason == reason && lines.is_empty() => Ok(()),
        (o, lines) => Err(format!(
            "expected Unauthorized({reason:?}) and no sink line, got {o:?} and {} line(s)",
            lines.len()
        )),
    }
}

fn field<'v>(ev: &'v Value, pointer: &str) -> &'v Value {
    ev.pointer(pointer).unwrap_or(&Value::Null)
}

fn expect_field(ev: &Value, pointer: &str, want: &str) -> CaseResult {
    match field(ev, pointer) {
        Value::String(s) if s == want => Ok(()),
        other => Err(format!("event {pointer}: expected {want:?}, got {other}")),
    }
}

impl<'p> Harness<'p> {
    fn new(p: &'p Profile) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (s1, s2) = (secret(p, 1), secret(p, 2));
        let text = format!(
            "[spool]\ndir = \"spool\"\n{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
            source(p.label, p.kind.name(), &[&s1, &s2], p.extra)
        );
        let config = config::parse(&text, dir.path(), &|_| None)
            .unwrap_or_else(|e| panic!("vendor {}: config: {e}\n{text}", p.label));
        let src = config.source(p.label).expect("the source").clone();
        let clock = Arc::new(ManualClock::at_unix(T0));
        let replay = Arc::new(MemoryStore::new(config.replay.max_entries));
        let gw = Gateway::new(config, clock.clone(), replay)
            .unwrap_or_else(|e| panic!("vendor {}: gateway: {e}", p.label));
        let scheme = src.scheme();
        let key = |s: &str| {
            scheme
                .prepare_key(&Secret::new(s))
                .unwrap_or_else(|e| panic!("vendor {}: key: {e}", p.label))
        };
        let keys = [key(&s1), key(&s2)];
        let wrong = key(&secret(p, 9));
        Harness {
            p,
            reader: RefCell::new(gw.spool().reader("out")),
            spooled: RefCell::new(Vec::new()),
            _dir: dir,
            gw,
            clock,
            tolerance: time::Duration::try_from(src.tolerance).unwrap(),
            window: p
                .window
                .unwrap_or_else(|| p.kind.signs_timestamp(&src.options)),
            scheme,
            keys,
            wrong,
            seen: Cell::new(0),
            next_id: Cell::new(0),
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// A fresh event id (letters, digits and `-` only: valid for every vendor).
    fn fresh(&self, case: &str) -> String {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        format!("{}-{case}-{n}", self.p.label.replace('_', "-"))
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Headers {
        self.scheme
            .sign(key, body, ts, id)
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect()
    }

    /// A fresh body and the headers signing it with the first secret, at `ts`.
    fn signed_at(&self, case: &str, ts: OffsetDateTime) -> (String, String, Headers) {
        let id = self.fresh(case);
        let body = self.scheme.sample_body(ts, &id);
        let headers = self.sign(&self.keys[0], body.as_bytes(), ts, &id);
        (id, body, headers)
    }

    fn signed(&self, case: &str) -> (String, String, Headers) {
        self.signed_at(case, self.now())
    }

    /// Ingests a request; returns the outcome and the sink lines written since the last call.
    async fn send(&self, headers: &Headers, body: &[u8]) -> Response {
        let req = Unverified {
            headers: header_map(headers),
            query: None,
            body: Bytes::copy_from_slice(body),
            received_at: self.now(),
        };
        let outcome = self.gw.ingest(self.p.label, req).await;
        let lines = self.spooled_events();
        let new = lines.get(self.seen.get()..).unwrap_or_default().to_vec();
        self.seen.set(lines.len());
        (outcome, new)
    }

    /// Every event spooled for `out` so far.
    fn spooled_events(&self) -> Vec<Value> {
        let new = self.reader.borrow_mut().read(usize::MAX, u64::MAX).unwrap();
        let mut all = self.spooled.borrow_mut();
        all.extend(
            new.iter()
                .map(|r| serde_json::from_slice::<Value>(&r.event).unwrap()),
        );
        all.clone()
    }

    fn expected_uid(&self, body: &[u8], id: &str, ts: OffsetDateTime) -> String {
        match self.p.uid {
            Uid::Id => id.to_string(),
            Uid::BodyDigest => digest(&[body]),
            Uid::ZoomDigest => digest(&[
                b"v0:",
                ts.unix_timestamp().to_string().as_bytes(),
                b":",
                body,
            ]),
        }
    }

    fn check_origin(&self, ev: &Value) -> CaseResult {
        expect_field(ev, "/unmapped/siemgate/source", self.p.label)?;
        expect_field(ev, "/unmapped/siemgate/vendor", self.p.kind.name())
    }

    fn has_proof(&self, headers: &Headers) -> CaseResult {
        if headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(self.p.proof))
        {
            Ok(())
        } else {
            Err(format!(
                "sign() produced no {} header (the profile is wrong)",
                self.p.proof
            ))
        }
    }

    async fn valid(&self) -> CaseResult {
        let now = self.now();
        let (id, body, headers) = self.signed("valid");
        let r = self.send(&headers, body.as_bytes()).await;
        let ev = accepted(&r)?;
        self.check_origin(ev)?;
        expect_field(
            ev,
            "/metadata/uid",
            &self.expected_uid(body.as_bytes(), &id, now),
        )?;
        expect_field(ev, "/raw_data", &body)?;
        if self.window {
            // The vendor's signed time is the event's time.
            let want = T0 * 1000;
            if field(ev, "/time").as_i64() != Some(want) {
                return Err(format!(
                    "event time: expected {want}, got {}",
                    field(ev, "/time")
                ));
            }
        }
        Ok(())
    }

    async fn tampered(&self) -> CaseResult {
        let (_, body, headers) = self.signed("tampered");
        let mut bytes = body.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
        let r = self.send(&headers, &bytes).await;
        if self.p.body_signed {
            rejected(&r, Reason::BadSignature)
        } else {
            // A token scheme authenticates the sender, not the bytes: the token is valid and
            // nothing covers the body, so a changed body cannot be detected. It is accepted
            // and handed on as received.
            let ev = accepted(&r)?;
            expect_field(ev, "/raw_data", std::str::from_utf8(&bytes).unwrap())
        }
    }

    async fn wrong_key(&self) -> CaseResult {
        let now = self.now();
        let id = self.fresh("wrong-key");
        let body = self.scheme.sample_body(now, &id);
        let headers = self.sign(&self.wrong, body.as_bytes(), now, &id);
        rejected(
            &self.send(&headers, body.as_bytes()).await,
            Reason::BadSignature,
        )
    }

    async fn rotated(&self) -> CaseResult {
        let now = self.now();
        let mut uids = Vec::new();
        for (n, key) in self.keys.iter().enumerate() {
            let id = self.fresh("rotated");
            let body = self.scheme.sample_body(now, &id);
            let headers = self.sign(key, body.as_bytes(), now, &id);
            let r = self.send(&headers, body.as_bytes()).await;
            let ev = accepted(&r).map_err(|e| format!("secret {}: {e}", n + 1))?;
            let uid = self.expected_uid(body.as_bytes(), &id, now);
            expect_field(ev, "/metadata/uid", &uid)
                .map_err(|e| format!("secret {}: {e}", n + 1))?;
            uids.push(uid);
        }
        if uids[0] == uids[1] {
            return Err("the two events share an id".into());
        }
        Ok(())
    }

    async fn missing_header(&self, name: &str) -> CaseResult {
        let (_, body, mut headers) = self.signed("missing");
        let before = headers.len();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if headers.len() == before {
            return Err(format!(
                "sign() produced no {name} header (the profile is wrong)"
            ));
        }
        rejected(
            &self.send(&headers, body.as_bytes()).await,
            Reason::MissingHeader,
        )
    }

    async fn missing_proof(&self) -> CaseResult {
        self.missing_header(self.p.proof).await
    }

    async fn replaced_proof(&self, value: &[u8]) -> CaseResult {
        let (_, body, mut headers) = self.signed("malformed");
        self.has_proof(&headers)?;
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case(self.p.proof) {
                *v = value.to_vec();
            }
        }
        rejected(
            &self.send(&headers, body.as_bytes()).await,
            Reason::MalformedHeader,
        )
    }

    /// The header `name` sent twice with the same value.
    async fn duplicated(&self, name: &str, want: Reason) -> CaseResult {
        let (_, body, mut headers) = self.signed("duplicated");
        let copy: Headers = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        if copy.is_empty() {
            return Err(format!(
                "sign() produced no {name} header (the profile is wrong)"
            ));
        }
        headers.extend(copy);
        rejected(&self.send(&headers, body.as_bytes()).await, want)
    }

    /// The proof header's value without base64 padding (optional) and its last two characters.
    async fn truncated_proof(&self, want: Reason) -> CaseResult {
        let (_, body, mut headers) = self.signed("truncated");
        self.has_proof(&headers)?;
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case(self.p.proof) {
                while v.last() == Some(&b'=') {
                    v.pop();
                }
                v.truncate(v.len() - 2);
            }
        }
        rejected(&self.send(&headers, body.as_bytes()).await, want)
    }

    /// A fresh request signed at `now + offset` (the body carries that time too).
    async fn at_offset(&self, case: &str, offset: time::Duration) -> Response {
        let (_, body, headers) = self.signed_at(case, self.now() + offset);
        self.send(&headers, body.as_bytes()).await
    }

    async fn replayed(&self) -> CaseResult {
        let now = self.now();
        let (id, body, headers) = self.signed("replayed");
        let first = self.send(&headers, body.as_bytes()).await;
        accepted(&first).map_err(|e| format!("first delivery: {e}"))?;
        match self.send(&headers, body.as_bytes()).await {
            (Outcome::Duplicate, lines) if lines.is_empty() => {}
            (o, lines) => {
                return Err(format!(
                "second delivery: expected Duplicate and no sink line, got {o:?} and {} line(s)",
                lines.len()
            ))
            }
        }
        let uid = self.expected_uid(body.as_bytes(), &id, now);
        let n = self
            .spooled_events()
            .iter()
            .filter(|e| field(e, "/metadata/uid").as_str() == Some(&uid))
            .count();
        if n != 1 {
            return Err(format!("the sink has {n} lines with uid {uid}, expected 1"));
        }
        Ok(())
    }

    /// After a delivery, the same signed request with any header other than the proof rewritten
    /// or removed is never accepted again: a signed header fails the signature, an unsigned id
    /// header is backed by the digest of the signed bytes.
    async fn replayed_rewritten(&self) -> CaseResult {
        let (_, body, headers) = self.signed("rewritten");
        accepted(&self.send(&headers, body.as_bytes()).await)
            .map_err(|e| format!("first delivery: {e}"))?;
        for (i, (name, _)) in headers.iter().enumerate() {
            if name.eq_ignore_ascii_case(self.p.proof) {
                continue;
            }
            for removed in [false, true] {
                let mut h = headers.clone();
                if removed {
                    h.remove(i);
                } else {
                    h[i].1.extend_from_slice(b"-2");
                }
                let (o, lines) = self.send(&h, body.as_bytes()).await;
                if matches!(o, Outcome::Accepted { .. }) || !lines.is_empty() {
                    return Err(format!(
                        "{name} {}: accepted again ({o:?}, {} line(s))",
                        if removed { "removed" } else { "rewritten" },
                        lines.len()
                    ));
                }
            }
        }
        Ok(())
    }

    async fn empty_body(&self) -> CaseResult {
        let id = self.fresh("empty");
        let headers = self.sign(&self.keys[0], b"", self.now(), &id);
        let r = self.send(&headers, b"").await;
        let ev = accepted(&r)?;
        self.check_origin(ev)?;
        expect_field(ev, "/raw_data", "")?;
        if !field(ev, "/unmapped/siemgate/raw_data_encoding").is_null() {
            return Err("an empty body is text, yet raw_data_encoding is set".into());
        }
        Ok(())
    }

    async fn non_utf8_body(&self) -> CaseResult {
        let body = [0xff, 0xfe, 0x00, 0x80];
        let id = self.fresh("binary");
        let headers = self.sign(&self.keys[0], &body, self.now(), &id);
        let r = self.send(&headers, &body).await;
        let ev = accepted(&r)?;
        self.check_origin(ev)?;
        expect_field(
            ev,
            "/raw_data",
            &base64::engine::general_purpose::STANDARD.encode(body),
        )?;
        expect_field(ev, "/unmapped/siemgate/raw_data_encoding", "base64")
    }

    /// The valid proof followed by `n` entries that do not decode. `want`: `None` accepted.
    async fn list(&self, sep: &str, junk: &str, n: usize, want: Option<Reason>) -> CaseResult {
        let (_, body, mut headers) = self.signed("list");
        self.has_proof(&headers)?;
        let mut len = 0;
        for (k, v) in headers.iter_mut() {
            if k.eq_ignore_ascii_case(self.p.proof) {
                for _ in 0..n {
                    v.extend_from_slice(sep.as_bytes());
                    v.extend_from_slice(junk.as_bytes());
                }
                len = v.len();
            }
        }
        if n < 100 && len > MAX_SIGNATURE_HEADER_LEN {
            return Err(format!(
                "the list is {len} bytes: it would test the length cap, not the entry cap"
            ));
        }
        let started = Instant::now();
        let r = self.send(&headers, body.as_bytes()).await;
        let took = started.elapsed();
        match want {
            None => accepted(&r).map(drop),
            Some(reason) => {
                rejected(&r, reason)?;
                if took > std::time::Duration::from_secs(1) {
                    return Err(format!("rejecting a {n}-entry list took {took:?}"));
                }
                Ok(())
            }
        }
    }
}
