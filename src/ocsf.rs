//! Normalization: every vendor's payload becomes OCSF events (CONTRACT §6).
//!
//! A vendor's [`Normalizer::normalize`] looks at the verified request ([`Input`])
//! and describes the events in it as [`Draft`]s: the class and activity, severity, time,
//! message, the class's own attributes (`finding_info`, `user`, `actor`, `api`, ...) and what it
//! leaves `unmapped`. [`normalize`] turns each draft into the event every sink receives,
//! adding what every OCSF event carries the same way for every vendor: the class, category and
//! type names and ids, `metadata` (version, uid, logged time, product), the source, and
//! `raw_data`.
//!
//! A payload a normalizer cannot map is never dropped: it becomes a Base Event with the raw body
//! and `unmapped.siemgate.normalize_error` ([`normalize`]), counted in
//! `siemgate_normalize_errors_total{source}`.
//!
//! ## `raw_data` of a request that yields several events
//! A request that yields one event carries the whole body in `raw_data` (base64 when it is not
//! UTF-8, flagged `unmapped.siemgate.raw_data_encoding = "base64"`). A webhook that fans out
//! into one event per element of an array (Spectral `issues[]` and `ids[]`, Veritensor
//! `vulnerabilities[]`, Okta `data.events[]`, Soteri `findings[]`, Microsoft Graph `value[]`)
//! does not copy the body into every event: each event's `raw_data` is the JSON text of its own
//! element, and the first event of the request also carries the rest of the body (the
//! envelope: the body without the fanned-out array) once, as JSON text in
//! `unmapped.siemgate.raw_envelope`. All events of the request share
//! `metadata.correlation_uid` (the request's event id), so the body can be put back together in
//! the SIEM. What one request costs in the spool and in memory is thus proportional to its
//! normalized events plus its body once, not events x body.
//!
//! The rule lives here, once: a vendor's [`Normalizer::fan_out`] names the array
//! (its path, and which elements make an event: [`FanOut`]), and each of its drafts names the
//! element it came from ([`Draft::item`], the element's index in that array). [`normalize`]
//! takes `raw_data` from that element and builds the envelope; both are serialized only when
//! the source includes raw data and the request yields more than one event.
//!
//! A request may yield at most [`MAX_EVENTS_PER_REQUEST`] events; [`check`] counts the
//! elements of the fanned-out array that make an event, so one that would yield more is
//! refused whole before any event is built, before its replay keys are reserved
//! ([`TooManyEvents`]: `413`, counted in `siemgate_too_many_events_total{source}`), and a body
//! of countless tiny items cannot exhaust memory.

use http::HeaderMap;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::event::{unix_ms, Body, Event, Head, Origin};
use crate::verify::{Key, Unverified, Verified};

/// What a vendor's verified requests mean: their events, and the endpoint checks the vendor
/// makes. The half of a vendor that [`crate::verify::Scheme`] is not; [`normalize`] calls it.
pub trait Normalizer: Send + Sync + 'static {
    /// The OCSF events of a verified request. An error, or no event, makes the request a Base
    /// Event carrying the error; nothing verified is dropped.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        Ok(vec![base(input)])
    }

    /// The array [`Normalizer::normalize`] makes one event per element of, when it does for
    /// this request (its drafts then name their element with [`Draft::item`]). It is counted
    /// against [`MAX_EVENTS_PER_REQUEST`] before anything else is done for the request, and
    /// each event's `raw_data` is taken from its element. `None`: one event.
    fn fan_out(&self, _input: &Input<'_>) -> Option<FanOut> {
        None
    }

    /// A representative body carrying `ts` and `id` where this vendor puts them in the body
    /// (for `siemgate sign`, the load tool and tests).
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String;

    /// The answer to a vendor's endpoint check (Slack `url_verification`, Zoom
    /// `endpoint.url_validation`, Okta's verification GET), given after the request verified
    /// and instead of spooling it. `keys` are the source's keys, for answers that are signed.
    fn handshake(&self, _input: &Input<'_>, _keys: &[Key]) -> Option<Handshake> {
        None
    }

    /// A vendor's endpoint check that carries no proof and is answered before verification
    /// (Microsoft Graph's `validationToken`), only on this vendor's sources. `None`: verify the
    /// request as usual.
    fn pre_verify_handshake(&self, _method: &http::Method, _req: &Unverified) -> Option<Handshake> {
        None
    }

    /// Whether this vendor sends requests with `method` other than POST, judged by their
    /// headers (Okta's verification GET carries `X-Okta-Verification-Challenge`). They are
    /// verified like any request. Default: POST only.
    fn accepts(&self, method: &http::Method, _headers: &HeaderMap) -> bool {
        method == http::Method::POST
    }
}

/// A handshake answer: `200` with this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub content_type: &'static str,
    pub body: String,
}

/// The most events one request may yield (one per element of a fanned-out array). At the
/// default `server.max_body` of 1 MiB this is items of 100 bytes on average, well beyond what
/// the vendors send; more is refused with `413` before normalizing.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

/// The array a request fans out into, one event per element that [`FanOut::keeps`]
/// (what [`Normalizer::fan_out`] says of a request).
#[derive(Debug, Clone, Copy)]
pub struct FanOut {
    /// Where the array is in the body.
    pub path: &'static [&'static str],
    /// Whether an element makes an event (the vendor's normalizer skips the others).
    pub keeps: fn(&Value) -> bool,
}

impl FanOut {
    /// One event per element of the array at `path`.
    pub fn every(path: &'static [&'static str]) -> FanOut {
        FanOut {
            path,
            keeps: |_| true,
        }
    }

    /// One event per object in the array at `path`.
    pub fn objects(path: &'static [&'static str]) -> FanOut {
        FanOut {
            path,
            keeps: Value::is_object,
        }
    }

    /// One event per element of the array at `path` that `keeps`.
    pub fn matching(path: &'static [&'static str], keeps: fn(&Value) -> bool) -> FanOut {
        FanOut { path, keeps }
    }
}

/// A request that would yield more than [`MAX_EVENTS_PER_REQUEST`] events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request would yield {count} events; at most {max} are taken per request", max = MAX_EVENTS_PER_REQUEST)]
pub struct TooManyEvents {
    pub count: usize,
}

/// The OCSF classes siemgate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Base,
    DetectionFinding,
    AccountChange,
    Authentication,
    ApiActivity,
}

impl Class {
    /// Every class, for what is kept per class (a source's event series).
    pub const ALL: [Class; 5] = [
        Class::Base,
        Class::DetectionFinding,
        Class::AccountChange,
        Class::Authentication,
        Class::ApiActivity,
    ];

    pub fn uid(self) -> u32 {
        match self {
            Class::Base => 0,
            Class::DetectionFinding => 2004,
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::ApiActivity => 6003,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Base => "Base Event",
            Class::DetectionFinding => "Detection Finding",
            Class::AccountChange => "Account Change",
            Class::Authentication => "Authentication",
            Class::ApiActivity => "API Activity",
        }
    }

    pub fn category(self) -> (u32, &'static str) {
        match self {
            Class::Base => (0, "Uncategorized"),
            Class::DetectionFinding => (2, "Findings"),
            Class::AccountChange | Class::Authentication => (3, "Identity & Access Management"),
            Class::ApiActivity => (6, "Application Activity"),
        }
    }

    /// The name of one of the class's activities (OCSF 1.3.0); `None` for an id the class does
    /// not define.
    pub fn activity_name(self, id: u8) -> Option<&'static str> {
        let name = match (self, id) {
            (_, 0) => "Unknown",
            (_, 99) => "Other",
            (Class::DetectionFinding, 1) => "Create",
            (Class::DetectionFinding, 2) => "Update",
            (Class::DetectionFinding, 3) => "Close",
            (Class::AccountChange, 1) => "Create",
            (Class::AccountChange, 2) => "Enable",
            (Class::AccountChange, 3) => "Password Change",
            (Class::AccountChange, 4) => "Password Reset",
            (Class::AccountChange, 5) => "Disable",
            (Class::AccountChange, 6) => "Delete",
            (Class::AccountChange, 7) => "Attach Policy",
            (Class::AccountChange, 8) => "Detach Policy",
            (Class::AccountChange, 9) => "Lock",
            (Class::AccountChange, 10) => "MFA Factor Enable",
            (Class::AccountChange, 11) => "MFA Factor Disable",
            (Class::Authentication, 1) => "Logon",
            (Class::Authentication, 2) => "Logoff",
            (Class::Authentication, 3) => "Authentication Ticket",
            (Class::Authentication, 4) => "Service Ticket Request",
            (Class::Authentication, 5) => "Service Ticket Renew",
            (Class::Authentication, 6) => "Preauth",
            (Class::ApiActivity, 1) => "Create",
            (Class::ApiActivity, 2) => "Read",
            (Class::ApiActivity, 3) => "Update",
            (Class::ApiActivity, 4) => "Delete",
            _ => return None,
        };
        Some(name)
    }
}

/// What a normalizer sees of a verified request.
pub struct Input<'a> {
    /// The vendor's name (`vendor = ...`).
    pub vendor: &'a str,
    pub json: Option<&'a Value>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The vendor's event id, or `sha256:<digest>` of the signed bytes.
    pub event_id: &'a str,
    /// The time the vendor signed, when it signs one.
    pub vendor_time: Option<OffsetDateTime>,
    pub received: OffsetDateTime,
}

impl<'a> Input<'a> {
    pub fn of(vendor: &'a str, v: &'a Verified) -> Input<'a> {
        Input {
            vendor,
            json: v.json(),
            headers: v.headers(),
            body: v.body(),
            event_id: v.event_id(),
            vendor_time: v.vendor_time(),
            received: v.received_at(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The JSON body, or an error a normalizer can return as is.
    pub fn object(&self) -> Result<&'a Map<String, Value>, String> {
        self.json_object()?
            .as_object()
            .ok_or_else(|| "the body is not a JSON object".to_string())
    }

    /// The JSON body as a value, when it is an object; else an error a normalizer can return
    /// as is.
    pub fn json_object(&self) -> Result<&'a Value, String> {
        self.json
            .filter(|j| j.is_object())
            .ok_or_else(|| "the body is not a JSON object".to_string())
    }
}

/// One event as a normalizer describes it; [`normalize`] completes it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub class: Class,
    pub activity_id: u8,
    /// OCSF severity id (0-6); see [`crate::event::severity_id`] for vendor words.
    pub severity_id: u8,
    /// Unix ms of the event, when the payload says; else the signed time, else receipt.
    pub time: Option<i64>,
    pub message: String,
    /// This event's own id when one request carries several events (a finding's id); the
    /// request's event id otherwise.
    pub uid: Option<String>,
    /// The class's own attributes, placed at the top level (`finding_info`, `user`, ...).
    pub fields: Map<String, Value>,
    /// What the mapping does not place; `unmapped.siemgate` is added by [`normalize`].
    pub unmapped: Map<String, Value>,
    /// Nothing of the body is mapped (a Base Event): without `raw_data`, the parsed body goes
    /// under `unmapped.data` so nothing is lost; with it, the body is not sent twice.
    pub keep_body: bool,
    /// The index, in the array [`Normalizer::fan_out`] names, of the element this
    /// event was made from: its `raw_data` instead of the whole body when the request yields
    /// several events (see the module docs).
    pub item: Option<usize>,
}

impl Draft {
    pub fn new(class: Class, activity_id: u8, message: impl Into<String>) -> Draft {
        Draft {
            class,
            activity_id,
            severity_id: 0,
            time: None,
            message: message.into(),
            uid: None,
            fields: Map::new(),
            unmapped: Map::new(),
            keep_body: false,
            item: None,
        }
    }

    /// This event was made from the `index`-th element of the array the request fans out.
    pub fn item(mut self, index: usize) -> Draft {
        self.item = Some(index);
        self
    }

    pub fn severity(mut self, id: u8) -> Draft {
        self.severity_id = id;
        self
    }

    pub fn time(mut self, ms: Option<i64>) -> Draft {
        self.time = ms;
        self
    }

    pub fn uid(mut self, uid: impl Into<String>) -> Draft {
        self.uid = Some(uid.into());
        self
    }

    /// Sets a top-level attribute (null values are left out).
    pub fn field(mut self, key: &str, value: Value) -> Draft {
        if !value.is_null() {
            self.fields.insert(key.to_string(), value);
        }
        self
    }

    pub fn unmapped(mut self, key: &str, value: Value) -> Draft {
        if !value.is_null() {
            self.unmapped.insert(key.to_string(), value);
        }
        self
    }
}

/// What a request that yields several events carries of its body instead of the whole body
/// (see the module docs); empty when raw data is not included or the request yields one event.
#[derive(Default)]
struct Raw<'a> {
    /// The elements of the fanned-out array.
    items: &'a [Value],
    /// The body without the fanned-out array.
    envelope: Option<String>,
}

/// Completes a draft as the `index`-th of `count` events of one request.
fn finish(
    d: Draft,
    origin: &Origin<'_>,
    input: &Input<'_>,
    index: usize,
    count: usize,
    raw: &Raw<'_>,
) -> Event {
    let received = unix_ms(input.received);
    let time = d
        .time
        .or(input.vendor_time.map(unix_ms))
        .unwrap_or(received);
    let uid = d.uid.unwrap_or_else(|| {
        if count > 1 {
            format!("{}#{index}", input.event_id)
        } else {
            input.event_id.to_string()
        }
    });
    let (category_uid, category_name) = d.class.category();
    let activity_name = d.class.activity_name(d.activity_id).unwrap_or("Other");
    let activity_id = if d.class.activity_name(d.activity_id).is_some() {
        d.activity_id
    } else {
        99
    };
    let severity_id = if d.severity_id <= 6 {
        d.severity_id
    } else {
        99
    };
    let mut unmapped = d.unmapped;
    if d.keep_body && !origin.include_raw {
        if let Some(j) = input.json {
            unmapped.insert("data".into(), j.clone());
        }
    }
    let mut siemgate = match unmapped.remove("siemgate") {
        Some(Value::Object(extra)) => extra,
        _ => Map::new(),
    };
    if origin.include_raw && count > 1 && index == 0 {
        if let Some(env) = &raw.envelope {
            siemgate.insert("raw_envelope".into(), Value::String(env.clone()));
        }
    }
    let mut fields = d.fields;
    if d.class == Class::ApiActivity {
        api_defaults(&mut fields, origin.vendor);
    }
    if d.class == Class::DetectionFinding {
        analytic_defaults(&mut fields, origin.vendor);
    }
    fields.values_mut().for_each(drop_malformed);
    let mut body = Body {
        activity_id,
        activity_name,
        category_uid,
        category_name,
        logged_time: received,
        correlation_uid: (count > 1).then(|| input.event_id.to_string()),
        fields,
        unmapped,
        siemgate,
        raw_data: None,
    };
    if origin.include_raw {
        let item = d.item.filter(|_| count > 1).and_then(|i| raw.items.get(i));
        match item.and_then(|v| serde_json::to_string(v).ok()) {
            // One of several events: its own element, never the whole body again.
            Some(item) => body.raw_data = Some(item),
            // An event of a multi-event request that names no element of its own: the body
            // goes with the first event only.
            None if count > 1 && index > 0 => {}
            _ => raw_data(&mut body, input.body),
        }
    }
    let head = Head {
        uid,
        time_ms: time,
        severity_id,
        class_uid: d.class.uid(),
        class_name: d.class.name().to_string(),
        source: origin.source_id.to_string(),
        vendor: origin.vendor.to_string(),
        message: d.message,
    };
    Event { head, body }
}

/// What OCSF requires of an API Activity that a webhook always knows: the API's service is the
/// vendor, and so is the source endpoint when the payload names no address.
fn api_defaults(fields: &mut Map<String, Value>, vendor: &str) {
    if let Some(Value::Object(api)) = fields.get_mut("api") {
        api.entry("service")
            .or_insert_with(|| json!({ "name": vendor }));
    }
    fields
        .entry("src_endpoint")
        .or_insert_with(|| json!({ "name": vendor }));
}

/// Every Detection Finding names the analytic that found it (`finding_info.analytic`, with
/// `name`, `uid`, `type_id` and `type`), as OCSF validators expect: a vendor's rule or detector
/// where the payload names one; else the finding's first type (`Secret Scanning`,
/// `Dependabot`, ...), else `"<vendor> detection"`, of type Unknown (0). Without an id of its
/// own, the analytic's name is its id: within one vendor it is what names the analytic.
fn analytic_defaults(fields: &mut Map<String, Value>, vendor: &str) {
    let Some(Value::Object(info)) = fields.get_mut("finding_info") else {
        return;
    };
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let first_type = text(info.get("types").and_then(|t| t.get(0)));
    let analytic = info.entry("analytic").or_insert_with(|| json!({}));
    if !analytic.is_object() {
        *analytic = json!({});
    }
    let Value::Object(a) = analytic else {
        return;
    };
    let name = text(a.get("name"))
        .or_else(|| text(a.get("uid")))
        .or(first_type)
        .unwrap_or_else(|| format!("{vendor} detection"));
    let uid = text(a.get("uid")).unwrap_or_else(|| name.clone());
    let type_id = a
        .get("type_id")
        .and_then(Value::as_u64)
        .filter(|id| analytic_type(*id).is_some())
        .unwrap_or_else(|| match a.get("type").and_then(Value::as_str) {
            Some(t) => (1..=11)
                .find(|id| analytic_type(*id) == Some(t))
                .unwrap_or(99),
            None => 0,
        });
    a.insert("name".into(), Value::String(name));
    a.insert("uid".into(), Value::String(uid));
    a.insert("type_id".into(), type_id.into());
    if type_id != 99 || !a.get("type").is_some_and(Value::is_string) {
        a.insert(
            "type".into(),
            analytic_type(type_id).unwrap_or("Other").into(),
        );
    }
}

/// OCSF 1.3.0 `analytic.type_id` captions.
fn analytic_type(id: u64) -> Option<&'static str> {
    Some(match id {
        0 => "Unknown",
        1 => "Rule",
        2 => "Behavioral",
        3 => "Statistical",
        4 => "Learning (ML/DL)",
        5 => "Fingerprinting",
        6 => "Tagging",
        7 => "Keyword Match",
        8 => "Regular Expressions",
        9 => "Exact Data Match",
        10 => "Partial Data Match",
        11 => "Indexed Data Match",
        99 => "Other",
        _ => return None,
    })
}

/// Removes typed attributes whose value a vendor sent malformed (an `email_addr` that is no
/// address, an `ip` that is no IP): the SIEM would refuse or mis-type them. A malformed text
/// becomes the object's `name` when it has none, so the object still names something (OCSF
/// needs a name or an id on users and endpoints); `raw_data` keeps the original either way.
fn drop_malformed(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut text = None;
            m.retain(|k, v| {
                let ok = match k.as_str() {
                    "email_addr" => v.as_str().and_then(email).is_some(),
                    "ip" => v
                        .as_str()
                        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
                    _ => true,
                };
                if !ok && text.is_none() {
                    text = v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
                }
                ok
            });
            if let Some(t) = text {
                m.entry("name").or_insert(Value::String(t));
            }
            m.values_mut().for_each(drop_malformed);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_malformed),
        _ => {}
    }
}

/// `s` if it has the form of an e-mail address (OCSF `email_t`).
pub fn email(s: &str) -> Option<&str> {
    let (local, domain) = s.split_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let (host, tld) = domain.split_once('.')?;
    let domain_ok = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !tld.is_empty()
        && tld
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (local_ok && domain_ok).then_some(s)
}

/// `raw_data`: the body as text, or base64 (and flagged so) when it is not UTF-8.
fn raw_data(e: &mut Body, body: &[u8]) {
    use base64::Engine;
    e.raw_data = Some(match std::str::from_utf8(body) {
        Ok(s) => s.to_string(),
        Err(_) => {
            e.siemgate
                .insert("raw_data_encoding".into(), Value::String("base64".into()));
            base64::engine::general_purpose::STANDARD.encode(body)
        }
    });
}

/// The body without the array at `path` (the envelope of a fanned-out request), as JSON text;
/// `None` when the body is not an object.
fn envelope(body: Option<&Value>, path: &[&str]) -> Option<String> {
    fn without(v: &Map<String, Value>, path: &[&str]) -> Map<String, Value> {
        v.iter()
            .filter_map(|(k, val)| match path {
                [first] if k.as_str() == *first => None,
                [first, rest @ ..] if k.as_str() == *first => match val {
                    Value::Object(o) => Some((k.clone(), Value::Object(without(o, rest)))),
                    other => Some((k.clone(), other.clone())),
                },
                _ => Some((k.clone(), val.clone())),
            })
            .collect()
    }
    let obj = body?.as_object()?;
    serde_json::to_string(&without(obj, path)).ok()
}

/// The array a request fans out into, and how many of its elements make an event.
fn fanned<'a>(scheme: &dyn Normalizer, input: &Input<'a>) -> Option<(FanOut, &'a [Value], usize)> {
    let fan = scheme.fan_out(input)?;
    let items = at(input.json?, fan.path)?.as_array()?;
    let count = items.iter().filter(|v| (fan.keeps)(v)).count();
    Some((fan, items, count))
}

/// Refuses a request that would yield more than [`MAX_EVENTS_PER_REQUEST`] events: it counts
/// the elements of the array the vendor fans out into, without building any event, so it is
/// cheap enough to run before anything else is done for the request.
pub fn check(
    scheme: &dyn Normalizer,
    origin: &Origin<'_>,
    verified: &Verified,
) -> Result<(), TooManyEvents> {
    let input = Input::of(origin.vendor, verified);
    match fanned(scheme, &input) {
        Some((_, _, count)) if count > MAX_EVENTS_PER_REQUEST => Err(TooManyEvents { count }),
        _ => Ok(()),
    }
}

/// The events of one verified request (which [`check`] let through). A normalizer error (or no
/// event at all) still yields the request as a Base Event, with the error in
/// `unmapped.siemgate.normalize_error`.
pub fn normalize(scheme: &dyn Normalizer, origin: &Origin<'_>, verified: &Verified) -> Vec<Event> {
    let input = Input::of(origin.vendor, verified);
    let mut drafts = match scheme.normalize(&input) {
        Ok(d) if !d.is_empty() => d,
        Ok(_) => fallback(&input, origin, "the payload describes no event"),
        Err(why) => fallback(&input, origin, &why),
    };
    // Ids a payload repeats (two entries with the same id) still name distinct events.
    let mut seen = std::collections::HashSet::new();
    for (i, d) in drafts.iter_mut().enumerate() {
        if let Some(uid) = &d.uid {
            if !seen.insert(uid.clone()) {
                d.uid = Some(format!("{uid}#{i}"));
            }
        }
    }
    let count = drafts.len();
    let raw = match fanned(scheme, &input) {
        Some((fan, items, _)) if origin.include_raw && count > 1 => Raw {
            items,
            envelope: envelope(input.json, fan.path),
        },
        _ => Raw::default(),
    };
    drafts
        .into_iter()
        .enumerate()
        .map(|(i, d)| finish(d, origin, &input, i, count, &raw))
        .collect()
}

fn fallback(input: &Input<'_>, origin: &Origin<'_>, why: &str) -> Vec<Draft> {
    // Counted by the gateway (siemgate_normalize_errors_total), from the marker below.
    tracing::warn!(
        source = origin.source_id,
        vendor = origin.vendor,
        error = why,
        "payload not mapped; forwarded as a Base Event with its raw body"
    );
    let mut d = base(input);
    d.unmapped
        .insert("siemgate".into(), json!({"normalize_error": why}));
    vec![d]
}

/// A Base Event for any payload: severity from a top-level `severity`/`level`/`priority` word,
/// message from the first of `title`, `message`, `summary`, `event_type`, `type`, `event`,
/// `action`; the body itself is kept (see [`Draft::keep_body`]).
pub fn base(input: &Input<'_>) -> Draft {
    let obj = input.json.and_then(Value::as_object);
    let sev = obj
        .and_then(|o| {
            ["severity", "level", "priority"]
                .iter()
                .find_map(|k| severity_of(o.get(*k)?))
        })
        .unwrap_or(0);
    let message = obj
        .and_then(|o| {
            [
                "title",
                "message",
                "summary",
                "event_type",
                "type",
                "event",
                "action",
            ]
            .iter()
            .find_map(|k| o.get(*k)?.as_str())
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} webhook", input.vendor));
    let mut d = Draft::new(Class::Base, 0, message).severity(sev);
    d.keep_body = true;
    d
}

/// A vendor severity (a word, or a number 0-6) as an OCSF severity id.
pub fn severity_of(v: &Value) -> Option<u8> {
    match v {
        Value::String(s) => crate::event::severity_id(s),
        Value::Number(n) => n.as_u64().filter(|n| *n <= 6).map(|n| n as u8),
        _ => None,
    }
}

/// 9999-12-31T23:59:59.999Z.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// A JSON timestamp as unix ms: RFC 3339 text, or a number of seconds (or ms when it is
/// too large to be seconds).
pub fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => {
            if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            {
                return Some(unix_ms(t));
            }
            s.trim()
                .parse::<f64>()
                .ok()
                .and_then(|n| time_of(&json!(n)))
        }
        Value::Number(n) => {
            let f = n.as_f64()?;
            if !f.is_finite() || f < 0.0 {
                return None;
            }
            // Seconds until the year 5138; anything bigger is already milliseconds. Past the
            // year 9999 it is no time at all.
            let ms = if f < 1e11 { f * 1000.0 } else { f };
            (ms <= MAX_TIME_MS as f64).then_some(ms as i64)
        }
        _ => None,
    }
}

/// `v` without null members and empty objects, recursively: what a mapping builds from
/// optional vendor fields.
pub fn compact(mut v: Value) -> Value {
    compact_in_place(&mut v);
    v
}

fn compact_in_place(v: &mut Value) {
    match v {
        Value::Object(m) => m.retain(|_, v| {
            compact_in_place(v);
            !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty())
        }),
        Value::Array(a) => a.iter_mut().for_each(compact_in_place),
        _ => {}
    }
}

/// The string at `path` in `v`.
pub fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    at(v, path)?.as_str()
}

/// The value at `path` in `v`.
pub fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_seconds_milliseconds_and_rfc_3339_all_read_as_ms() {
        assert_eq!(time_of(&json!(1707840000)), Some(1_707_840_000_000));
        assert_eq!(time_of(&json!(1707840000.5)), Some(1_707_840_000_500));
        assert_eq!(time_of(&json!(1707840000123i64)), Some(1_707_840_000_123));
        assert_eq!(
            time_of(&json!("2026-04-06T14:32:01.847Z")),
            Some(1_775_485_921_847)
        );
        assert_eq!(time_of(&json!("1707840000")), Some(1_707_840_000_000));
        assert_eq!(time_of(&json!("yesterday")), None);
        assert_eq!(time_of(&json!(-1)), None);
        assert_eq!(time_of(&json!(1e300)), None);
    }

    #[test]
    fn malformed_emails_and_ips_are_left_out() {
        assert_eq!(email("alice@acme.com"), Some("alice@acme.com"));
        for bad in ["@", "alice", "a@b", "a@.com", "a b@c.d", "@acme.com"] {
            assert_eq!(email(bad), None, "{bad}");
        }
        let mut v = json!({"user": {"name": "a", "email_addr": "@"}, "src_endpoint": {"ip": "x"},
                           "actor": {"user": {"email_addr": false}},
                           "evidences": [{"src_endpoint": {"ip": "203.0.113.7"}}]});
        drop_malformed(&mut v);
        assert_eq!(
            v,
            json!({"user": {"name": "a"}, "src_endpoint": {"name": "x"},
                   "actor": {"user": {}},
                   "evidences": [{"src_endpoint": {"ip": "203.0.113.7"}}]})
        );
    }

    #[test]
    fn activity_ids_a_class_does_not_define_become_other() {
        assert_eq!(Class::DetectionFinding.activity_name(4), None);
        assert_eq!(Class::Authentication.activity_name(1), Some("Logon"));
        assert_eq!(Class::Base.activity_name(0), Some("Unknown"));
    }
}
