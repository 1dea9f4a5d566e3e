//! Property: for every vendor and any body that verifies, normalization never panics and
//! returns at least one event (unless the request is a handshake, answered instead); every event
//! conforms to the OCSF schema subset (`tests/ocsf/`), and the events of one request carry
//! non-empty, distinct `metadata.uid`s.
//!
//! Bodies are the vendor's own sample body mutated (values replaced by anything, keys removed or
//! added, array entries repeated), objects built from the vendor's likely keys mixed with random
//! ones, any JSON value, any text, and any bytes. JSON and text bodies go through the golden
//! harness ([`crate::golden::run_case`]); raw bytes, which a golden case cannot carry, through the
//! same steps here. Where a vendor reads its signed timestamp from the body (Humanbound
//! `timestamp`, SyVault `timestamp`, Linear `webhookTimestamp`), the generated body carries one
//! inside the window, or none, so that it verifies; SyVault bodies get an `event_id` too.
//! Every vendor's `sign` signs any bytes, so every vendor gets every kind of body.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use siemgate::event::Origin;
use siemgate::vendors::VendorKind;
use siemgate::verify::{self, Key, Unverified, Verifier};

use crate::golden::run_case;
use crate::ocsf_schema;
use crate::support::{secret_for, source};

/// Cases per vendor.
const CASES: u32 = 64;
/// The verification time of every case (and the time the vendor signs at).
const NOW: &str = "2026-04-06T14:32:05Z";
const NOW_UNIX: i64 = 1_775_485_925;

/// Keys any vendor's payload may use.
const COMMON_KEYS: &[&str] = &[
    "id",
    "type",
    "event",
    "event_type",
    "eventType",
    "action",
    "severity",
    "level",
    "priority",
    "title",
    "message",
    "summary",
    "description",
    "timestamp",
    "time",
    "created",
    "created_at",
    "occurred_at",
    "data",
    "object",
    "payload",
    "user",
    "actor",
    "target",
    "context",
    "ip",
    "user_agent",
    "email",
    "name",
    "status",
    "result",
    "outcome",
    "details",
    "uri",
    "url",
    "count",
    "items",
    "events",
];

/// Keys of each vendor's payloads (from its sample body and its documentation).
fn vendor_keys(kind: VendorKind) -> &'static [&'static str] {
    match kind {
        VendorKind::Veritensor => &[
            "event",
            "organization",
            "scan_id",
            "timestamp",
            "vulnerabilities",
            "file",
            "threat",
            "severity",
            "details",
            "count",
            "total",
        ],
        VendorKind::Humanbound => &[
            "event_type",
            "organisation_id",
            "project_id",
            "severity",
            "title",
            "description",
            "category",
            "owasp_category",
            "data",
            "finding_id",
            "grade",
            "previous_grade",
        ],
        VendorKind::Soteri => &[
            "auditId",
            "eventType",
            "accountId",
            "displayName",
            "issueKey",
            "secretsFound",
            "timestamp",
            "user",
            "project",
        ],
        VendorKind::Syvault => &[
            "event_type",
            "actor",
            "target",
            "context",
            "user_id",
            "email",
            "ip",
            "user_agent",
            "type",
            "id",
            "outcome",
            "reason",
        ],
        VendorKind::Spectral => &[
            "issues",
            "assetId",
            "detectorId",
            "detectorName",
            "severity",
            "uri",
            "name",
            "ids",
            "time",
            "count",
            "ingested",
        ],
        VendorKind::Github => &[
            "action",
            "alert",
            "rule",
            "security_severity_level",
            "severity",
            "description",
            "html_url",
            "number",
            "repository",
            "full_name",
            "sender",
            "login",
            "security_advisory",
            "secret_type",
            "state",
            "dependency",
        ],
        VendorKind::Gitlab => &[
            "object_kind",
            "object_attributes",
            "project",
            "path_with_namespace",
            "report_type",
            "severity",
            "state",
            "title",
            "user",
            "username",
        ],
        VendorKind::Stripe => &[
            "object",
            "type",
            "data",
            "created",
            "livemode",
            "fraud_type",
            "actionable",
            "id",
        ],
        VendorKind::Slack => &[
            "type",
            "token",
            "team_id",
            "event",
            "event_id",
            "event_time",
            "challenge",
            "user",
            "channel",
        ],
        VendorKind::StandardWebhooks => &["type", "timestamp", "data", "id", "amount"],
        VendorKind::Shopify => &[
            "shop_id",
            "shop_domain",
            "customer",
            "email",
            "data_request",
            "orders_requested",
        ],
        VendorKind::Pagerduty => &[
            "event",
            "event_type",
            "resource_type",
            "occurred_at",
            "data",
            "priority",
            "urgency",
            "summary",
            "title",
            "agent",
        ],
        VendorKind::Zoom => &[
            "event",
            "event_ts",
            "payload",
            "object",
            "plainToken",
            "account_id",
            "ip_address",
            "email",
            "client_type",
        ],
        VendorKind::Linear => &[
            "action",
            "type",
            "data",
            "url",
            "webhookId",
            "priority",
            "title",
            "actor",
            "createdAt",
        ],
        VendorKind::Sentry => &[
            "action",
            "installation",
            "data",
            "issue",
            "level",
            "culprit",
            "title",
            "uuid",
            "error",
            "event",
        ],
        VendorKind::Okta => &[
            "eventType",
            "eventTypeVersion",
            "eventId",
            "eventTime",
            "data",
            "events",
            "uuid",
            "published",
            "displayMessage",
            "severity",
            "outcome",
            "result",
            "actor",
            "alternateId",
            "client",
            "ipAddress",
        ],
        VendorKind::GenericHmac => &["id", "message", "severity", "time", "title"],
        VendorKind::Msgraph => &[
            "value",
            "id",
            "changeType",
            "resource",
            "resourceData",
            "lifecycleEvent",
            "subscriptionId",
            "tenantId",
        ],
    }
}

/// Graph authenticates by the `clientState` of every `value[]` item: any generated body
/// becomes a notification whose items carry the source's.
fn graph_notification(b: Body) -> Body {
    let cs = json!(secret_for(VendorKind::Msgraph, 1));
    let item = |v: Value| match v {
        Value::Object(mut o) => {
            o.insert("clientState".into(), cs.clone());
            Value::Object(o)
        }
        other => json!({"clientState": cs.clone(), "item": other}),
    };
    let items = match b {
        Body::Json(Value::Object(mut o)) => match o.remove("value") {
            Some(Value::Array(a)) if !a.is_empty() => a.into_iter().map(item).collect(),
            _ => vec![item(Value::Object(o))],
        },
        Body::Json(v) => vec![item(v)],
        Body::Text(t) => vec![item(json!({"text": t}))],
        Body::Bytes(b) => vec![item(json!({"bytes": b}))],
    };
    Body::Json(json!({ "value": items }))
}

/// Values with a meaning to some normalizer: severity words, event types, times, addresses.
const WORDS: &[&str] = &[
    "critical",
    "CRITICAL",
    "high",
    "medium",
    "moderate",
    "low",
    "info",
    "error",
    "warning",
    "P1",
    "P3",
    "P5",
    "unknown",
    "finding.created",
    "finding.regressed",
    "finding.resolved",
    "posture.grade_changed",
    "drift.detected",
    "quality.regression",
    "user.login.success",
    "user.login.failed",
    "user.login.mfa_failed",
    "user.logout",
    "user.created",
    "user.deleted",
    "user.password.changed",
    "vault.item.accessed",
    "scan.completed",
    "ingest.completed",
    "url_verification",
    "event_callback",
    "endpoint.url_validation",
    "com.okta.event_hook",
    "user.session.start",
    "user.account.lock",
    "created",
    "updated",
    "deleted",
    "fixed",
    "dismissed",
    "reopened",
    "Issue",
    "create",
    "remove",
    "incident.triggered",
    "charge.dispute.created",
    "2026-04-06T14:32:01.847Z",
    "2026-04-06T14:32:01Z",
    "1775485921",
    "not a time",
    "203.0.113.7",
    "2001:db8::1",
    "999.1.1.1",
    "alice@acme.com",
    "alice",
    "",
    " ",
];

/// The body of a generated request.
#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Request {
    body: Body,
    /// Unsigned headers the vendor also sends (GitHub's event name, ...).
    headers: Vec<(String, String)>,
    include_raw: bool,
    id: String,
}

/// One change to the vendor's sample body, at the node numbered `at` (modulo the node count).
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, Value),
    Remove(usize),
    Insert(usize, String, Value),
    RepeatEntry(usize),
}

/// How a body carries the timestamp a vendor reads from it.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    form: u8,
    offset_s: i64,
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..20).prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        prop::sample::select(WORDS).prop_map(|s| Value::String(s.to_string())),
        "\\PC{0,24}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ]
    .boxed()
}

fn key(kind: VendorKind) -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vendor_keys(kind)).prop_map(str::to_string),
        2 => prop::sample::select(COMMON_KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_]{1,10}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Any JSON value, objects keyed mostly by the vendor's keys.
fn json(kind: VendorKind) -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(key(kind), inner, 0..6).prop_map(object),
            ]
        })
        .boxed()
}

fn object(m: BTreeMap<String, Value>) -> Value {
    Value::Object(m.into_iter().collect::<Map<String, Value>>())
}

/// The JSON pointers of every node of `v`, the root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn apply(mut doc: Value, edits: &[Edit]) -> Value {
    for edit in edits {
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let node = |i: usize| all[i % all.len()].clone();
        match edit {
            Edit::Replace(i, v) => *doc.pointer_mut(&node(*i)).unwrap() = v.clone(),
            Edit::Remove(i) => {
                let p = node(*i);
                let Some((parent, last)) = p.rsplit_once('/') else {
                    continue;
                };
                let last = last.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent).unwrap() {
                    Value::Object(m) => {
                        m.remove(&last);
                    }
                    Value::Array(a) => {
                        a.remove(last.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
            }
            Edit::Insert(i, k, v) => match doc.pointer_mut(&node(*i)).unwrap() {
                Value::Object(m) => {
                    m.insert(k.clone(), v.clone());
                }
                Value::Array(a) => a.push(v.clone()),
                _ => {}
            },
            Edit::RepeatEntry(i) => {
                if let Value::Array(a) = doc.pointer_mut(&node(*i)).unwrap() {
                    if let Some(first) = a.first().cloned() {
                        a.push(first);
                    }
                }
            }
        }
    }
    doc
}

fn edits(kind: VendorKind) -> BoxedStrategy<Vec<Edit>> {
    let edit = prop_oneof![
        3 => (any::<usize>(), json(kind)).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => any::<usize>().prop_map(Edit::Remove),
        2 => (any::<usize>(), key(kind), json(kind)).prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        1 => any::<usize>().prop_map(Edit::RepeatEntry),
    ];
    prop::collection::vec(edit, 0..5).boxed()
}

/// The body keeps (or drops) the timestamp a vendor reads from it, inside the window.
fn stamp(kind: VendorKind, body: &mut Value, s: Stamp) {
    let Some(o) = body.as_object_mut() else {
        return;
    };
    let t = NOW_UNIX + s.offset_s;
    let (field, value) = match kind {
        VendorKind::Humanbound => (
            "timestamp",
            if s.form == 1 {
                json!(t.to_string())
            } else {
                json!(t)
            },
        ),
        VendorKind::Syvault => {
            if s.form != 2 {
                o.insert("event_id".into(), json!(format!("evt_{:x}", t ^ 0x5eed)));
            }
            let at = OffsetDateTime::from_unix_timestamp(t).unwrap();
            let iso = at.format(&Rfc3339).unwrap();
            ("timestamp", json!(iso.replace('Z', ".847Z")))
        }
        VendorKind::Linear => ("webhookTimestamp", json!(t * 1000 + 321)),
        _ => return,
    };
    if s.form == 3 {
        o.remove(field);
    } else {
        o.insert(field.to_string(), value);
    }
}

/// Unsigned headers a vendor's normalizer reads.
fn headers(kind: VendorKind) -> BoxedStrategy<Vec<(String, String)>> {
    let (name, values): (&str, &'static [&'static str]) = match kind {
        VendorKind::Github => (
            "x-github-event",
            &[
                "code_scanning_alert",
                "secret_scanning_alert",
                "dependabot_alert",
                "repository_vulnerability_alert",
                "push",
                "ping",
                "member",
                "organization",
                "unknown_event",
            ],
        ),
        VendorKind::Gitlab => (
            "x-gitlab-event",
            &[
                "Push Hook",
                "Merge Request Hook",
                "Vulnerability Hook",
                "Member Hook",
                "System Hook",
                "Nothing",
            ],
        ),
        VendorKind::Shopify => (
            "x-shopify-topic",
            &[
                "customers/data_request",
                "customers/redact",
                "shop/redact",
                "orders/create",
                "app/uninstalled",
            ],
        ),
        _ => return Just(Vec::new()).boxed(),
    };
    prop::option::of(prop::sample::select(values))
        .prop_map(move |v| {
            v.map(|v| vec![(name.to_string(), v.to_string())])
                .unwrap_or_default()
        })
        .boxed()
}

fn requests(kind: VendorKind, sample: Value) -> BoxedStrategy<Request> {
    let json_body = prop_oneof![
        4 => edits(kind).prop_map(move |e| apply(sample.clone(), &e)),
        3 => prop::collection::btree_map(key(kind), json(kind), 0..8).prop_map(object),
        1 => json(kind),
    ];
    let stamps = (0u8..4, -60i64..60).prop_map(|(form, offset_s)| Stamp { form, offset_s });
    let body = prop_oneof![
        8 => (json_body, stamps).prop_map(move |(mut b, s)| {
            stamp(kind, &mut b, s);
            Body::Json(b)
        }),
        1 => any::<String>().prop_map(Body::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Bytes),
    ]
    .prop_map(move |b| {
        if kind == VendorKind::Msgraph {
            graph_notification(b)
        } else {
            b
        }
    });
    (body, headers(kind), any::<bool>(), "[A-Za-z0-9-]{1,24}")
        .prop_map(|(body, headers, include_raw, id)| Request {
            body,
            headers,
            include_raw,
            id,
        })
        .boxed()
}

/// One vendor's source, built once: the config text the golden harness builds too, the scheme
/// and keys for raw-byte bodies, and the vendor's sample body.
struct Vendor {
    kind: VendorKind,
    extra: String,
    scheme: Box<dyn siemgate::vendors::Vendor>,
    keys: Vec<Key>,
    tolerance: std::time::Duration,
    sample: Value,
}

/// `generic_hmac` needs its scheme described: the first golden file's, else a plain one.
fn source_extra(kind: VendorKind) -> String {
    if kind != VendorKind::GenericHmac {
        return String::new();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/generic_hmac");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|f| f.ok().map(|f| f.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
        .find_map(|c| c["source_extra"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            "header = \"X-Signature\"\nalgorithm = \"sha256\"\nencoding = \"hex\"\n".into()
        })
}

fn now() -> OffsetDateTime {
    OffsetDateTime::parse(NOW, &Rfc3339).unwrap()
}

impl Vendor {
    fn new(kind: VendorKind) -> Vendor {
        let extra = source_extra(kind);
        let text = format!(
            "[spool]\ndir = \"spool\"\n{}\n[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"out.jsonl\"\n",
            source("props", kind.name(), &[&secret_for(kind, 1)], &extra)
        );
        let dir = tempfile::tempdir().unwrap();
        let config = siemgate::config::parse(&text, dir.path(), &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let src = &config.sources[0];
        let scheme = src.scheme();
        let keys = src
            .secrets
            .iter()
            .map(|s| scheme.prepare_key(s).unwrap())
            .collect();
        let sample = serde_json::from_str(&scheme.sample_body(now(), "prop-1"))
            .unwrap_or_else(|_| json!({}));
        Vendor {
            kind,
            extra,
            scheme,
            keys,
            tolerance: src.tolerance,
            sample,
        }
    }

    /// The handshake answer (if any) and the events of one request.
    fn run(&self, r: &Request) -> (bool, Vec<Value>) {
        let mut case = json!({
            "vendor": self.kind.name(),
            "source_extra": self.extra,
            "include_raw": r.include_raw,
            "now": NOW,
            "id": r.id,
        });
        match &r.body {
            Body::Json(v) => case["body"] = v.clone(),
            Body::Text(t) => case["body_text"] = Value::String(t.clone()),
            Body::Bytes(b) => return self.run_bytes(b, r),
        }
        // `headers` must map names to strings.
        case["headers"] = Value::Object(
            r.headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        let p = run_case(&case);
        (p.handshake.is_some(), p.events)
    }

    /// What [`run_case`] does, for a body that is not text.
    fn run_bytes(&self, body: &[u8], r: &Request) -> (bool, Vec<Value>) {
        let now = now();
        let mut headers = http::HeaderMap::new();
        let signed = self.scheme.sign(&self.keys[0], body, now, &r.id);
        for (k, v) in signed.iter().chain(&r.headers) {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = Unverified {
            headers,
            query: None,
            body: body.to_vec().into(),
            received_at: now,
        };
        let verifier = Verifier {
            source_id: "props",
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance: self.tolerance,
        };
        let verified = verify::verify(&verifier, req, now)
            .unwrap_or_else(|why| panic!("the signed body does not verify: {why:?}"));
        let input = siemgate::ocsf::Input::of(self.kind.name(), &verified);
        if self.scheme.handshake(&input, &self.keys).is_some() {
            return (true, Vec::new());
        }
        let origin = Origin {
            source_id: "props",
            vendor: self.kind.name(),
            include_raw: r.include_raw,
        };
        siemgate::ocsf::check(self.scheme.as_ref(), &origin, &verified)
            .expect("within the events-per-request limit");
        let events = siemgate::ocsf::normalize(self.scheme.as_ref(), &origin, &verified)
            .into_iter()
            .map(|e| {
                // An event is written straight from its parts (event.rs), not from a JSON tree: the
                // same bytes as its tree would give, keys sorted and none twice.
                let v = serde_json::to_value(&e).unwrap();
                assert_eq!(serde_json::to_string(&e).unwrap(), v.to_string());
                v
            })
            .collect();
        (false, events)
    }
}

/// What the property demands of one request's outcome.
fn check(handshake: bool, events: &[Value]) -> Result<(), String> {
    if handshake {
        return Ok(());
    }
    if events.is_empty() {
        return Err("no event".into());
    }
    let mut problems = Vec::new();
    let mut uids = HashSet::new();
    for (i, e) in events.iter().enumerate() {
        for v in ocsf_schema::violations(e) {
            problems.push(format!("event {i}: OCSF: {v}"));
        }
        match e["metadata"]["uid"].as_str() {
            Some(u) if !u.is_empty() => {
                if !uids.insert(u.to_string()) {
                    problems.push(format!("event {i}: metadata.uid {u:?} repeats"));
                }
            }
            _ => problems.push(format!(
                "event {i}: metadata.uid is {} (not a non-empty string)",
                e["metadata"]["uid"]
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

#[test]
fn any_verified_body_of_any_vendor_normalizes_to_conforming_events() {
    let mut failures = Vec::new();
    for &kind in VendorKind::ALL {
        let vendor = Vendor::new(kind);
        // CI checks the same cases every run (a seeded generator), so a run is red only when
        // a change broke something; PROPTEST_CASES=N searches afresh, N cases per vendor.
        let explore: Option<u32> = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok());
        let config = Config {
            cases: explore.unwrap_or(CASES),
            failure_persistence: None,
            max_shrink_iters: 256,
            ..Config::default()
        };
        let mut runner = match explore {
            Some(_) => TestRunner::new(config),
            None => {
                TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
            }
        };
        let result = runner.run(&requests(kind, vendor.sample.clone()), |r| {
            let (handshake, events) = vendor.run(&r);
            check(handshake, &events).map_err(TestCaseError::fail)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, r)) => failures.push(format!(
                "{}: {why}\n  smallest failing request: {r:?}",
                kind.name()
            )),
            Err(TestError::Abort(why)) => failures.push(format!("{}: aborted: {why}", kind.name())),
        }
    }
    assert!(
        failures.is_empty(),
        "normalization failed the property for {} vendor(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_mutations_keep_bodies_well_formed() {
    let doc = json!({"a": [1, {"b/c": 2}], "d~": {"e": null}});
    let mut all = Vec::new();
    pointers(&doc, String::new(), &mut all);
    assert_eq!(
        all,
        ["", "/a", "/a/0", "/a/1", "/a/1/b~1c", "/d~0", "/d~0/e"]
    );
    let edited = apply(
        doc.clone(),
        &[
            Edit::Remove(4),
            Edit::RepeatEntry(1),
            Edit::Insert(0, "k".into(), json!(1)),
            Edit::Replace(100, json!("x")),
        ],
    );
    assert_eq!(edited["a"], json!([1, {}, "x"]));
    assert_eq!(edited["k"], json!(1));
    let mut b = json!({"timestamp": 0});
    stamp(
        VendorKind::Humanbound,
        &mut b,
        Stamp {
            form: 0,
            offset_s: -5,
        },
    );
    assert_eq!(b["timestamp"], json!(NOW_UNIX - 5));
    let mut b = json!({});
    stamp(
        VendorKind::Syvault,
        &mut b,
        Stamp {
            form: 0,
            offset_s: 0,
        },
    );
    assert_eq!(b["timestamp"], "2026-04-06T14:32:05.847Z");
    assert!(b["event_id"].is_string());
}
