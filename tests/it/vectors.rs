//! Known-answer vectors (`tests/data/inbound-vectors.json`, a copy of the shared reference):
//! each vector a siemgate source can express is verified through [`siemgate::verify::verify`]
//! with the clock at the vector's timestamp, then mutated (body, secret, time) to check that it
//! fails for the right reason. Every scheme in the file is either mapped to a source below or
//! listed as not applicable with a reason, so a new vector cannot be ignored silently.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use siemgate::config;
use siemgate::vendors::Vendor;
use siemgate::verify::{self, Key, Reason, Unverified, Verified, Verifier};

use crate::support::{source, T0};

const VECTORS: &str = include_str!("../data/inbound-vectors.json");

/// How a scheme maps onto a siemgate source.
struct Mapping {
    scheme: &'static str,
    vendor: &'static str,
    /// Vendor keys of the `[[sources]]` table.
    extra: &'static str,
    /// The proof is the secret itself: nothing covers the body.
    token: bool,
    /// The vendor de-duplicates on the vector's `id` (so `event_id()` is that id).
    dedupes_on_id: bool,
    /// The timestamp is signed and windowed.
    windowed: bool,
    /// A header to add with the vector's `timestamp` as its value (where the vector has none).
    add_timestamp_header: Option<&'static str>,
}

const fn m(scheme: &'static str, vendor: &'static str, extra: &'static str) -> Mapping {
    Mapping {
        scheme,
        vendor,
        extra,
        token: false,
        dedupes_on_id: false,
        windowed: false,
        add_timestamp_header: None,
    }
}

impl Mapping {
    const fn token(mut self) -> Self {
        self.token = true;
        self
    }
    const fn id(mut self) -> Self {
        self.dedupes_on_id = true;
        self
    }
    const fn windowed(mut self) -> Self {
        self.windowed = true;
        self
    }
    const fn ts_header(mut self, h: &'static str) -> Self {
        self.add_timestamp_header = Some(h);
        self
    }
}

const APPLICABLE: &[Mapping] = &[
    m("veritensor", "veritensor", ""),
    m("humanbound", "humanbound", "").windowed(),
    m("soteri", "soteri", ""),
    m("syvault", "syvault", "").id().windowed(),
    // The vector has no timestamp header (its name is unconfirmed); the default one is used.
    m("spectral", "spectral", "")
        .windowed()
        .ts_header("x-spectral-timestamp"),
    m("github", "github", "").id(),
    m("gitlab_token", "gitlab", "").token().id(),
    m("gitlab_signing_token", "gitlab", "").id().windowed(),
    m("stripe", "stripe", "").id().windowed(),
    m("slack", "slack", "").windowed(),
    m("standard_webhooks", "standard_webhooks", "")
        .id()
        .windowed(),
    m("svix", "standard_webhooks", "").id().windowed(),
    m("standard_webhooks_v1a", "standard_webhooks", "")
        .id()
        .windowed(),
    m("shopify", "shopify", "").id(),
    m("pagerduty_v3", "pagerduty", "").id(),
    m("okta_event_hook", "okta", "").token().id(),
    m("zoom", "zoom", "").windowed(),
    m("linear", "linear", "").id().windowed(),
    m("sentry", "sentry", "").id(),
    m(
        "jira_cloud_admin",
        "generic_hmac",
        "header = \"X-Hub-Signature\"\nprefix = \"sha256=\"\nid_header = \"X-Atlassian-Webhook-Identifier\"",
    )
    .id(),
    // X-Snyk-Timestamp is not signed, so it is not configured.
    m(
        "snyk",
        "generic_hmac",
        "header = \"X-Hub-Signature\"\nprefix = \"sha256=\"\nid_header = \"X-Snyk-Transport-ID\"",
    )
    .id(),
    m(
        "trendmicro_conformity",
        "generic_hmac",
        "header = \"X-TrendMicro-Signature\"",
    ),
    m(
        "fastly_ngwaf_generic_webhook",
        "generic_hmac",
        "header = \"X-SigSci-Signature\"",
    ),
    // The vector signs the body only; X-HCP-Radar-Timestamp is not configured.
    m(
        "hcp_vault_radar",
        "generic_hmac",
        "header = \"X-HCP-Radar-Signature\"\nalgorithm = \"sha512\"\nprefix = \"sha512=\"\nid_header = \"X-HCP-Radar-Message-ID\"",
    )
    .id(),
    m(
        "gitguardian",
        "generic_hmac",
        "header = \"Gitguardian-Signature\"\nprefix = \"sha256=\"\nkey_template = \"{timestamp}{secret}\"\ntimestamp_header = \"Timestamp\"",
    )
    .windowed(),
    m(
        "msteams_outgoing_webhook",
        "generic_hmac",
        "header = \"Authorization\"\nprefix = \"HMAC \"\nencoding = \"base64\"\nsecret_encoding = \"base64\"",
    ),
    m(
        "crowdstrike_falcon_candidate_a",
        "generic_hmac",
        "header = \"X-Cs-Primary-Signature\"\nencoding = \"base64\"\nsigned_template = \"{body}{timestamp}\"\ntimestamp_header = \"X-Cs-Delivery-Timestamp\"\ntimestamp_unit = \"iso8601\"",
    )
    .windowed(),
    m(
        "crowdstrike_falcon_candidate_b",
        "generic_hmac",
        "header = \"X-Cs-Primary-Signature\"\nsigned_template = \"{timestamp}{body}\"\ntimestamp_header = \"X-Cs-Delivery-Timestamp\"\ntimestamp_unit = \"iso8601\"",
    )
    .windowed(),
    m(
        "wiz_webhook_bearer",
        "generic_hmac",
        "header = \"Authorization\"\nalgorithm = \"token\"\nprefix = \"Bearer \"",
    )
    .token(),
    m(
        "datadog_webhook_custom_header",
        "generic_hmac",
        "header = \"X-Webhook-Token\"\nalgorithm = \"token\"",
    )
    .token(),
];

/// Schemes in the file that siemgate does not verify (yet), and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    ("twilio", "signs the full URL plus sorted form parameters, not the body"),
    ("twilio_json", "signs the URL (carrying bodySHA256), not the body"),
    ("discord_interactions", "Ed25519 over timestamp+body with a hex key: not in the contract's vendor list"),
    ("sendgrid_event_webhook", "ECDSA P-256: not in the contract's vendor list"),
    ("paddle_billing", "the timestamp is inside the signature header (ts=...;h1=...): generic_hmac reads timestamps from a header of their own"),
    ("lacework_webhook_url_token", "a token in the query string, not a header"),
    ("msgraph_change_notification", "clientState inside the body; a later issue"),
    ("zoom_url_validation", "a handshake answered with a computed token; a later issue"),
];

fn vectors() -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(VECTORS).expect("inbound-vectors.json")
}

fn scheme_of(v: &Value) -> &str {
    v["scheme"].as_str().expect("scheme")
}

fn mapping(scheme: &str) -> Option<&'static Mapping> {
    APPLICABLE.iter().find(|m| m.scheme == scheme)
}

fn secrets(v: &Value) -> Vec<String> {
    match &v["secret"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|s| s.as_str().expect("secret").to_string())
            .collect(),
        other => panic!("{}: secret {other}", scheme_of(v)),
    }
}

/// The vector's time: its timestamp (seconds; Linear milliseconds; ISO-8601), else any time.
fn time_of(v: &Value) -> OffsetDateTime {
    let Some(ts) = v["timestamp"].as_str() else {
        return OffsetDateTime::from_unix_timestamp(T0).unwrap();
    };
    match ts.parse::<i64>() {
        Ok(ms) if scheme_of(v) == "linear" => {
            OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap()
        }
        Ok(s) => OffsetDateTime::from_unix_timestamp(s).unwrap(),
        Err(_) => OffsetDateTime::parse(ts, &Rfc3339)
            .unwrap_or_else(|e| panic!("{}: timestamp {ts:?}: {e}", scheme_of(v))),
    }
}

/// A source for the vector's scheme holding `secrets`.
struct Source {
    scheme: Box<dyn Vendor>,
    keys: Vec<Key>,
    tolerance: Duration,
    /// `VendorKind::signs_timestamp` for the source.
    signs_timestamp: bool,
}

impl Source {
    fn new(m: &Mapping, secrets: &[String]) -> Source {
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let text = format!(
            "{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
            source("vec", m.vendor, &secrets, m.extra)
        );
        let config = config::parse(&text, std::path::Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("{}: config: {e}\n{text}", m.scheme));
        let src = config.source("vec").expect("the source").clone();
        let scheme = src.scheme();
        let keys = src
            .secrets
            .iter()
            .map(|s| {
                scheme
                    .prepare_key(s)
                    .unwrap_or_else(|e| panic!("{}: key: {e}", m.scheme))
            })
            .collect();
        Source {
            scheme,
            keys,
            tolerance: src.tolerance,
            signs_timestamp: src.vendor.signs_timestamp(&src.options),
        }
    }

    fn verify(
        &self,
        m: &Mapping,
        v: &Value,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Verified, Reason> {
        let verifier = Verifier {
            source_id: "vec",
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance: self.tolerance,
        };
        verify::verify(&verifier, request(m, v, body, now), now).map_err(|r| r.reason)
    }
}

fn request(m: &Mapping, v: &Value, body: &[u8], now: OffsetDateTime) -> Unverified {
    let mut headers = HeaderMap::new();
    for (k, val) in v["headers"].as_object().expect("headers") {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(val.as_str().expect("header value")).expect("header value"),
        );
    }
    if let Some(h) = m.add_timestamp_header {
        headers.insert(
            HeaderName::from_static(h),
            HeaderValue::from_str(v["timestamp"].as_str().expect("timestamp")).unwrap(),
        );
    }
    Unverified {
        headers,
        query: None,
        body: Bytes::copy_from_slice(body),
        received_at: now,
    }
}

fn body_of(v: &Value) -> Vec<u8> {
    v["body"].as_str().expect("body").as_bytes().to_vec()
}

/// The applicable vectors with their mappings.
fn applicable() -> Vec<(&'static Mapping, Value)> {
    vectors()
        .into_iter()
        .filter_map(|v| mapping(scheme_of(&v)).map(|m| (m, v)))
        .collect()
}

/// Runs `check` on every applicable vector; fails listing every vector that failed.
fn each(check: impl Fn(&Mapping, &Value) -> Result<(), String>) {
    let mut failures = Vec::new();
    let all = applicable();
    assert!(!all.is_empty(), "no applicable vectors");
    for (i, (m, v)) in all.iter().enumerate() {
        if let Err(e) = check(m, v) {
            failures.push(format!("  vector {i} ({}): {e}", m.scheme));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vector(s) failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[test]
fn every_scheme_is_mapped_or_excluded() {
    let all = vectors();
    let in_file: BTreeSet<&str> = all.iter().map(scheme_of).collect();
    let mapped: BTreeSet<&str> = APPLICABLE.iter().map(|m| m.scheme).collect();
    let excluded: BTreeSet<&str> = NOT_APPLICABLE.iter().map(|(s, _)| *s).collect();
    assert_eq!(mapped.len(), APPLICABLE.len(), "a scheme is mapped twice");
    assert_eq!(
        excluded.len(),
        NOT_APPLICABLE.len(),
        "a scheme is excluded twice"
    );
    let both: Vec<_> = mapped.intersection(&excluded).collect();
    assert!(both.is_empty(), "mapped and excluded: {both:?}");
    let covered: BTreeSet<&str> = mapped.union(&excluded).copied().collect();
    let ignored: Vec<_> = in_file.difference(&covered).collect();
    assert!(
        ignored.is_empty(),
        "schemes in the vector file that are neither mapped nor excluded: {ignored:?}"
    );
    let stale: Vec<_> = covered.difference(&in_file).collect();
    assert!(
        stale.is_empty(),
        "schemes not in the vector file: {stale:?}"
    );
}

#[test]
fn vectors_verify() {
    each(|m, v| {
        let src = Source::new(m, &secrets(v));
        let now = time_of(v);
        let result = src.verify(m, v, &body_of(v), now);
        if v["expected_valid"] != Value::Bool(true) {
            return match result {
                Err(_) => Ok(()),
                Ok(_) => Err("expected_valid is false, yet it verified".into()),
            };
        }
        let verified = result.map_err(|r| format!("expected Ok, got {r:?}"))?;
        match (v["id"].as_str(), m.dedupes_on_id) {
            (Some(id), true) if verified.event_id() != id => Err(format!(
                "event id: expected {id:?}, got {:?}",
                verified.event_id()
            )),
            (None, _) if !verified.event_id().starts_with("sha256:") => Err(format!(
                "no id in the vector, yet event id {:?} is not a digest",
                verified.event_id()
            )),
            _ => Ok(()),
        }
    });
}

#[test]
fn flipping_a_body_byte_fails() {
    each(|m, v| {
        let src = Source::new(m, &secrets(v));
        let mut body = body_of(v);
        let i = body.len() / 2;
        body[i] ^= 0x01;
        let result = src.verify(m, v, &body, time_of(v));
        match (m.token, result) {
            (false, Err(Reason::BadSignature)) => Ok(()),
            // A token authenticates the sender, not the bytes: a changed body is not detectable.
            (true, Ok(_)) => Ok(()),
            (true, Err(r)) => Err(format!("token scheme: expected Ok, got {r:?}")),
            (false, r) => Err(format!("expected BadSignature, got {:?}", r.map(|_| ()))),
        }
    });
}

/// One changed character of the secret (kept alphanumeric, so base64 secrets stay base64).
fn wrong_secret(s: &str) -> String {
    let start = s
        .strip_prefix("whsec_")
        .or_else(|| s.strip_prefix("whpk_"))
        .map_or(0, |rest| s.len() - rest.len());
    let mut b = s.as_bytes().to_vec();
    let i = start
        + b[start..]
            .iter()
            .position(u8::is_ascii_alphanumeric)
            .expect("an alphanumeric character");
    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

#[test]
fn a_wrong_secret_fails() {
    each(|m, v| {
        let wrong: Vec<String> = secrets(v).iter().map(|s| wrong_secret(s)).collect();
        let src = Source::new(m, &wrong);
        match src.verify(m, v, &body_of(v), time_of(v)) {
            Err(Reason::BadSignature) => Ok(()),
            r => Err(format!("expected BadSignature, got {:?}", r.map(|_| ()))),
        }
    });
}

/// Each of several secrets the sender signs with verifies alone (Soteri signs with all of
/// them; the gateway holds one).
#[test]
fn each_secret_alone_verifies() {
    let several = applicable()
        .iter()
        .filter(|(_, v)| secrets(v).len() > 1)
        .count();
    assert!(several > 0, "no applicable vector has several secrets");
    each(|m, v| {
        let all = secrets(v);
        if all.len() < 2 {
            return Ok(());
        }
        for (i, s) in all.iter().enumerate() {
            let src = Source::new(m, std::slice::from_ref(s));
            src.verify(m, v, &body_of(v), time_of(v))
                .map_err(|r| format!("secret {i} alone: {r:?}"))?;
        }
        Ok(())
    });
}

#[test]
fn signed_timestamps_are_windowed() {
    each(|m, v| {
        let src = Source::new(m, &secrets(v));
        let t = time_of(v);
        let tol = time::Duration::try_from(src.tolerance).unwrap();
        let second = time::Duration::SECOND;
        let late = src.verify(m, v, &body_of(v), t + tol + second);
        let early = src.verify(m, v, &body_of(v), t - tol - second);
        if m.windowed {
            match (late, early) {
                (Err(Reason::TooOld), Err(Reason::TooNew)) => Ok(()),
                (l, e) => Err(format!(
                    "expected TooOld after the window and TooNew before it, got {:?} and {:?}",
                    l.map(|_| ()),
                    e.map(|_| ())
                )),
            }
        } else {
            match (late, early) {
                (Ok(_), Ok(_)) => Ok(()),
                (l, e) => Err(format!(
                    "no signed timestamp: expected Ok at any time, got {:?} and {:?}",
                    l.map(|_| ()),
                    e.map(|_| ())
                )),
            }
        }
    });
}

/// The table's `windowed` agrees with `VendorKind::signs_timestamp`, except where the vendor
/// cannot know from its options alone.
#[test]
fn windowed_agrees_with_signs_timestamp() {
    // GitLab signs a timestamp only in its signing-token form, which the secret (whsec_)
    // selects, not an option: `signs_timestamp` says false for GitLab.
    const SECRET_DEPENDENT: &[&str] = &["gitlab_signing_token"];
    each(|m, v| {
        let says = Source::new(m, &secrets(v)).signs_timestamp;
        if SECRET_DEPENDENT.contains(&m.scheme) || says == m.windowed {
            Ok(())
        } else {
            Err(format!(
                "signs_timestamp says {says}, the vector's scheme is {}windowed",
                if m.windowed { "" } else { "not " }
            ))
        }
    });
}

/// A `whpk_` secret is an Ed25519 *public* key: anyone may know it, so a `v1` HMAC keyed with
/// it proves nothing and must not verify.
#[test]
fn an_hmac_keyed_with_the_public_key_is_rejected() {
    use base64::Engine;
    use siemgate::config::MacAlgorithm;
    let b64 = base64::engine::general_purpose::STANDARD;
    let v = vectors()
        .into_iter()
        .find(|v| scheme_of(v) == "standard_webhooks_v1a")
        .expect("the v1a vector");
    let m = mapping("standard_webhooks_v1a").unwrap();
    let public = secrets(&v)[0].clone();
    let key = b64.decode(public.strip_prefix("whpk_").unwrap()).unwrap();
    let h = &v["headers"];
    let (id, ts) = (
        h["webhook-id"].as_str().unwrap(),
        h["webhook-timestamp"].as_str().unwrap(),
    );
    let body = body_of(&v);
    let forged = verify::mac::hmac(
        MacAlgorithm::Sha256,
        &key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", &body],
    );
    let mut forged_vector = v.clone();
    forged_vector["headers"]["webhook-signature"] =
        Value::String(format!("v1,{}", b64.encode(forged)));
    let src = Source::new(m, &[public]);
    match src.verify(m, &forged_vector, &body, time_of(&v)) {
        Err(Reason::BadSignature) | Err(Reason::MalformedHeader) => {}
        r => panic!(
            "a v1 HMAC keyed with the public key: expected a rejection, got {:?}",
            r.map(|_| ())
        ),
    }
}
