//! Check Point Spectral: `x-spectral-signature: <hex HMAC-SHA256(key = "{timestamp}_{secret}",
//! body)>`. The timestamp header's name is not publicly confirmed, so it is configurable
//! (`timestamp_header`, default `x-spectral-timestamp`); its value enters the key byte for byte.
//! It is ISO-8601 (unix seconds are accepted too), and the window applies once the MAC passed.
//!
//! Normalization, by payload shape:
//! - custom webhook `{"issues": [{assetId, detectorId, detectorName, severity, uri}]}`: one
//!   Detection Finding per issue, the detector as `finding_info.analytic`, the asset as a
//!   resource, `error`/`warning`/`info` as High/Medium/Informational;
//! - events webhook `{"name", "ids", "time"}` about issues (`issue.created`, `issues_resolved`,
//!   `issue.ignored`, ...): one Detection Finding per id carrying its lifecycle step. These
//!   payloads hold no severity: new or reopened issues are Unknown (0), the custom webhook
//!   carries their real one; other steps are Informational (1);
//! - anything else with a `name` (an ingest or scan completing with its counts, a name not
//!   about issues): one informational Base Event, counts and ids in `unmapped`.
//!
//! **Replay id:** the body digest. Spectral documents no delivery id.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::common;
use super::VendorOptions;
use crate::ocsf::{self, Class, Draft, Input};
use crate::verify::{
    self, Check, Claim, Facts, Key, KeyPart, MacAlgorithm, Rejection, TimestampUnit, Unverified,
};

pub struct Spectral {
    timestamp_header: String,
}

/// Its one key, `timestamp_header`, is a header name.
pub(super) const VENDOR: super::Entry = super::Entry::with_options(
    |t, err| super::header_option(t, "timestamp_header", err),
    |o| Box::new(Spectral::new(o)),
);

const HEADER: &str = "x-spectral-signature";
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-spectral-timestamp";

impl Spectral {
    pub fn new(opts: &VendorOptions) -> Self {
        Spectral {
            timestamp_header: opts
                .timestamp_header
                .clone()
                .unwrap_or_else(|| DEFAULT_TIMESTAMP_HEADER.into())
                .to_ascii_lowercase(),
        }
    }
}

fn parse_ts(raw: &str) -> Result<OffsetDateTime, Rejection> {
    verify::parse_timestamp(raw, TimestampUnit::Iso8601)
        .or_else(|_| verify::parse_timestamp(raw, TimestampUnit::Seconds))
}

impl crate::verify::Scheme for Spectral {
    fn signs_timestamp(&self) -> bool {
        true
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let sig = verify::required_header(req, HEADER)?;
        let ts = verify::single_header(req, &self.timestamp_header)?
            .ok_or(Rejection::missing("timestamp header missing"))?;
        let candidates = verify::candidates([sig], verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: Some(vec![
                    KeyPart::Bytes(ts.as_bytes()),
                    KeyPart::Bytes(b"_"),
                    KeyPart::Secret,
                ]),
                message: vec![&req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        let ts = verify::required_header(req, &self.timestamp_header)?;
        Ok(Facts {
            signed_time: Some(parse_ts(ts)?),
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, _id: &str) -> Vec<(String, String)> {
        let ts = common::iso_millis(ts);
        let k = [ts.as_bytes(), b"_", key.mac()].concat();
        let sig = hex::encode(verify::mac::hmac(MacAlgorithm::Sha256, &k, &[body]));
        vec![(HEADER.into(), sig), (self.timestamp_header.clone(), ts)]
    }
}

impl crate::ocsf::Normalizer for Spectral {
    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "issues": [
                {"assetId": format!("github.com/acme/api#{id}"), "detectorId": "CLD001",
                 "detectorName": "Visible AWS Key", "severity": "error",
                 "uri": "https://github.com/acme/api/blob/main/config.py#L12"}
            ]
        })
        .to_string()
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let body = input.object()?;
        if let Some(issues) = body.get("issues").and_then(Value::as_array) {
            let n = issues.len();
            let drafts = issues
                .iter()
                .enumerate()
                .map(|(i, issue)| issue_finding(input, issue, i, n).item(i))
                .collect();
            return Ok(drafts);
        }
        let name =
            event_name(body).ok_or("neither issues[] nor an event name in the Spectral payload")?;
        let time = ["time", "timestamp"]
            .iter()
            .find_map(|k| body.get(*k).and_then(ocsf::time_of));
        let ids = ids(body);
        match lifecycle(name) {
            Some(step) if !ids.is_empty() => {
                let drafts = ids
                    .iter()
                    .map(|(i, id)| {
                        id_finding(input, name, &step, id, ids.len())
                            .time(time)
                            .item(*i)
                    })
                    .collect();
                Ok(drafts)
            }
            _ => Ok(vec![notice(body, name).time(time)]),
        }
    }

    /// `issues[]`, one finding each; else `ids[]` (the ids that [`id`] reads), one finding each,
    /// only when the event names a step of an issue's life; else one notice, no fan-out.
    fn fan_out(&self, input: &Input<'_>) -> Option<ocsf::FanOut> {
        let body = input.json?.as_object()?;
        if body.get("issues").is_some_and(Value::is_array) {
            return Some(ocsf::FanOut::every(&["issues"]));
        }
        lifecycle(event_name(body)?)?;
        Some(ocsf::FanOut::matching(&["ids"], |v| id(v).is_some()))
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// One issue of the custom webhook.
fn issue_finding(input: &Input<'_>, issue: &Value, index: usize, count: usize) -> Draft {
    let asset = text(issue, "assetId");
    let detector_id = text(issue, "detectorId");
    let detector = text(issue, "detectorName")
        .or(detector_id)
        .unwrap_or("Spectral issue");
    let uri = text(issue, "uri");
    // Issues carry no id: the link to the exact place (repository, commit, line) is what tells
    // one from another; without it, this delivery and the issue's position in it.
    let uid = text(issue, "id")
        .or(text(issue, "issueId"))
        .or(uri)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{index}", input.event_id));
    let mut info = Map::new();
    info.insert("uid".into(), json!(uid));
    info.insert("title".into(), json!(detector));
    info.insert(
        "desc".into(),
        json!(match asset {
            Some(a) => format!("{detector} in {a}"),
            None => detector.to_string(),
        }),
    );
    if let Some(id) = detector_id {
        info.insert(
            "analytic".into(),
            json!({"uid": id, "name": detector, "type_id": 1, "type": "Rule"}),
        );
    }
    if let Some(u) = uri {
        info.insert("src_url".into(), json!(u));
    }
    let message = match asset {
        Some(a) => format!("Spectral: {detector} in {a}"),
        None => format!("Spectral: {detector}"),
    };
    let placed = [
        "assetId",
        "detectorId",
        "detectorName",
        "severity",
        "uri",
        "id",
        "issueId",
    ];
    let extra: Map<String, Value> = issue
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !placed.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    Draft::new(Class::DetectionFinding, 1, message)
        .severity(
            issue
                .get("severity")
                .and_then(ocsf::severity_of)
                .unwrap_or(0),
        )
        .field("finding_info", Value::Object(info))
        .field("status_id", json!(1))
        .field("status", json!("New"))
        .field(
            "resources",
            asset.map_or(
                Value::Null,
                |a| json!([{"type": "asset", "uid": a, "name": a}]),
            ),
        )
        .unmapped("count", json!(count))
        .unmapped(
            "issue",
            if extra.is_empty() {
                Value::Null
            } else {
                Value::Object(extra)
            },
        )
}

/// An issue lifecycle step of the events webhook.
struct Step {
    activity: u8,
    status_id: u8,
    status: &'static str,
    severity: u8,
    verb: &'static str,
}

/// The lifecycle step an events-webhook name describes, when it is about issues.
fn lifecycle(name: &str) -> Option<Step> {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
    if !has(&["issue", "issues", "finding", "findings"]) {
        return None;
    }
    let step = |activity, status_id, status, severity, verb| Step {
        activity,
        status_id,
        status,
        severity,
        verb,
    };
    Some(if has(&["reopened", "regressed"]) {
        step(2, 1, "New", 0, "reopened")
    } else if has(&["created", "new", "detected", "opened", "found"]) {
        step(1, 1, "New", 0, "created")
    } else if has(&["resolved", "fixed", "closed", "remediated"]) {
        step(3, 4, "Resolved", 1, "resolved")
    } else if has(&[
        "ignored",
        "snoozed",
        "muted",
        "suppressed",
        "dismissed",
        "false",
    ]) {
        step(2, 3, "Suppressed", 1, "ignored")
    } else if has(&["assigned", "acknowledged"]) {
        step(2, 2, "In Progress", 1, "assigned")
    } else {
        step(2, 99, "Other", 1, "updated")
    })
}

/// The event's name: the first of `name`, `event`, `type`.
fn event_name(body: &Map<String, Value>) -> Option<&str> {
    ["name", "event", "type"]
        .iter()
        .find_map(|k| body.get(*k)?.as_str())
}

/// One element of `ids[]` as an id: a non-empty text or a number.
fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ids of an events-webhook payload (strings or numbers), each with its index in `ids[]`.
fn ids(body: &Map<String, Value>) -> Vec<(usize, String)> {
    body.get("ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i, id(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

fn id_finding(input: &Input<'_>, name: &str, step: &Step, id: &str, count: usize) -> Draft {
    Draft::new(
        Class::DetectionFinding,
        step.activity,
        format!("Spectral issue {}: {id}", step.verb),
    )
    .severity(step.severity)
    .uid(format!("{}:{id}", input.event_id))
    .field(
        "finding_info",
        json!({"uid": id, "title": format!("Spectral issue {id}")}),
    )
    .field("status_id", json!(step.status_id))
    .field("status", json!(step.status))
    .unmapped("name", json!(name))
    .unmapped("count", json!(count))
}

/// A notice that is not about given issues: an ingest or scan completing, with its counts
/// (numbers, or an object of numbers, summed up in the message).
fn notice(body: &Map<String, Value>, name: &str) -> Draft {
    let counts: Map<String, Value> = body
        .iter()
        .filter(|(k, v)| {
            !["name", "event", "type", "time", "timestamp", "ids"].contains(&k.as_str())
                && !v.is_null()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let summary: Vec<String> = counts
        .iter()
        .flat_map(|(k, v)| match v {
            Value::Object(o) => o
                .iter()
                .filter(|(_, n)| n.is_number())
                .map(|(k2, n)| format!("{k2} {n}"))
                .collect::<Vec<_>>(),
            n => vec![format!("{k} {n}")],
        })
        .collect();
    let message = if summary.is_empty() {
        format!("Spectral {name}")
    } else {
        format!("Spectral {name}: {}", summary.join(", "))
    };
    let ids = body
        .get("ids")
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    let mut d = Draft::new(Class::Base, 0, message)
        .severity(1)
        .unmapped("name", json!(name))
        .unmapped("ids", ids.cloned().unwrap_or(Value::Null));
    for (k, v) in counts {
        d = d.unmapped(&k, v);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!(Spectral::new(&VendorOptions::default()), "spectral");

    #[test]
    fn odd_bodies_map_or_fail_without_panicking() {
        for body in [
            json!(null),
            json!({}),
            json!({"issues": "x"}),
            json!({"issues": [1, null, {"severity": 4, "uri": 7}]}),
            json!({"name": "issue.created", "ids": [null, {}, 5]}),
            json!({"name": "issues", "ids": "a"}),
        ] {
            let _ = run(body);
        }
        assert!(run(json!([1, 2])).is_err());
    }

    #[test]
    fn issue_events_fan_out_per_id_and_others_are_one_notice() {
        let d = run(json!({"name": "issue.ignored", "ids": ["a", "b", "c"]})).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[2].fields["status_id"], json!(3));
        assert_eq!(d[2].uid.as_deref(), Some("req-1:c"));
        let d = run(json!({"name": "scan.completed", "ids": ["a"], "issues_found": 4})).unwrap();
        assert_eq!((d.len(), d[0].class), (1, Class::Base));
        assert!(run(json!({"foo": 1})).is_err());
    }
}
