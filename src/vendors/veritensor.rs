//! Veritensor (AI model scanner): `X-Veritensor-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! No timestamp and no documented id: replay protection is the body digest.
//!
//! Normalization: the payload is not public. siemgate reads the shape
//! `{"organization", "scan_id", "timestamp", "count", "vulnerabilities": [{"file", "threat",
//! "severity", "details"}]}` and close variants (`findings`/`results` for the list, `org` /
//! `organisation`, `path`/`file_path`, `type`/`rule`, `description`/`message`; a flat body with
//! `file` and `threat` or `severity` is one vulnerability). Each vulnerability is a Detection
//! Finding. A scan that reports none (an empty list, or `count: 0`) is one informational Base
//! Event: a clean scan is a valid report, not a normalization error.
//!
//! **Replay id:** the body digest. Veritensor documents no delivery id (the reference found no
//! public webhook documentation); `scan_id`, when the body has one, names the scan, which several
//! deliveries may report, so it only labels the events (`metadata.uid`) and is never a replay key.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, Class, Draft, Input};
use crate::verify::Descriptor;

pub struct Veritensor;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor =
    Descriptor::body_hmac("x-veritensor-signature-256", "sha256=").label(&[&["scan_id"], &["id"]]);

pub(super) const VENDOR: super::Entry =
    super::Entry::new(|_| super::described(SIGNATURE, Veritensor));

impl crate::ocsf::Normalizer for Veritensor {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": "scan.completed",
            "scan_id": id,
            "organization": "acme",
            "timestamp": common::rfc3339(ts),
            "vulnerabilities": [
                {"file": "model.pkl", "threat": "pickle.remote_code_execution", "severity": "critical",
                 "details": "GLOBAL os.system reachable from __reduce__"}
            ]
        })
        .to_string()
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let body = input.object()?;
        let batch = Batch::of(body);
        let items = vulnerabilities(body)?;
        if items.is_empty() {
            return Ok(vec![clean_scan(&batch)]);
        }
        let count = batch.count.unwrap_or(items.len() as u64);
        let drafts = items
            .iter()
            .enumerate()
            .map(|(i, (item, v))| {
                let d = finding(input, &batch, count, i, v);
                match item {
                    Some(n) => d.item(*n),
                    None => d,
                }
            })
            .collect();
        Ok(drafts)
    }

    /// One finding per object of the batch's list (the first of [`LISTS`] that is an array).
    fn fan_out(&self, input: &Input<'_>) -> Option<ocsf::FanOut> {
        let (path, _) = list(input.json?.as_object()?)?;
        Some(ocsf::FanOut::objects(path))
    }
}

/// What the batch says about all its vulnerabilities.
struct Batch<'a> {
    organization: Option<&'a Value>,
    scan_id: Option<&'a Value>,
    time: Option<i64>,
    count: Option<u64>,
    event: Option<&'a Value>,
}

impl<'a> Batch<'a> {
    fn of(body: &'a Map<String, Value>) -> Batch<'a> {
        let first = |keys: &[&str]| keys.iter().find_map(|k| body.get(*k));
        Batch {
            organization: first(&["organization", "organisation", "org"]),
            scan_id: first(&["scan_id", "scanId", "id"]),
            time: first(&["timestamp", "time", "created_at"]).and_then(ocsf::time_of),
            count: first(&["count", "total"]).and_then(Value::as_u64),
            event: first(&["event", "event_type", "type"]),
        }
    }

    /// The organization's display name: the string, or an object's `name`/`id`.
    fn org_name(&self) -> Option<&'a str> {
        let o = self.organization?;
        o.as_str()
            .or_else(|| o.get("name")?.as_str())
            .or_else(|| o.get("id")?.as_str())
    }

    fn unmapped(&self, d: Draft) -> Draft {
        d.unmapped(
            "organization",
            self.organization.cloned().unwrap_or(Value::Null),
        )
        .unmapped("scan_id", self.scan_id.cloned().unwrap_or(Value::Null))
        .unmapped("event", self.event.cloned().unwrap_or(Value::Null))
    }
}

/// Where a batch lists its vulnerabilities, by preference.
const LISTS: [&[&str]; 3] = [&["vulnerabilities"], &["findings"], &["results"]];
const FILE_KEYS: [&str; 3] = ["file", "path", "file_path"];
const THREAT_KEYS: [&str; 3] = ["threat", "type", "rule"];
const DETAIL_KEYS: [&str; 3] = ["details", "description", "message"];

/// The batch's list of vulnerabilities: its path and its elements.
fn list(body: &Map<String, Value>) -> Option<(&'static [&'static str], &Vec<Value>)> {
    LISTS
        .iter()
        .find_map(|path| Some((*path, body.get(path[0])?.as_array()?)))
}

/// The vulnerabilities of the batch, each with its index in the batch's list (none for a body
/// that is one vulnerability); empty for a clean scan; an error when the body says nothing
/// about vulnerabilities at all.
#[allow(clippy::type_complexity)]
fn vulnerabilities(
    body: &Map<String, Value>,
) -> Result<Vec<(Option<usize>, &Map<String, Value>)>, String> {
    if let Some((_, list)) = list(body) {
        return Ok(list
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((Some(i), v.as_object()?)))
            .collect());
    }
    let flat = FILE_KEYS.iter().any(|k| body.contains_key(*k))
        && (THREAT_KEYS.iter().any(|k| body.contains_key(*k)) || body.contains_key("severity"));
    if flat {
        return Ok(vec![(None, body)]);
    }
    if body.get("count").and_then(Value::as_u64) == Some(0) {
        return Ok(Vec::new());
    }
    Err("no vulnerabilities[] in the Veritensor payload".into())
}

fn text<'a>(v: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| v.get(*k)?.as_str())
        .filter(|s| !s.is_empty())
}

fn finding(
    input: &Input<'_>,
    batch: &Batch<'_>,
    count: u64,
    index: usize,
    v: &Map<String, Value>,
) -> Draft {
    let file = text(v, &FILE_KEYS);
    let threat = text(v, &THREAT_KEYS);
    let title = match (threat, file) {
        (Some(t), Some(f)) => format!("{t} in {f}"),
        (Some(t), None) => t.to_string(),
        (None, Some(f)) => format!("Unsafe content in {f}"),
        (None, None) => "Veritensor vulnerability".to_string(),
    };
    let scan = batch
        .scan_id
        .and_then(Value::as_str)
        .unwrap_or(input.event_id);
    let uid = text(v, &["id", "uid"])
        .map(str::to_string)
        .unwrap_or_else(|| format!("{scan}:{index}"));
    // Veritensor rates each vulnerability; a batch-level severity is the fallback.
    let severity = v
        .get("severity")
        .or(v.get("level"))
        .and_then(ocsf::severity_of)
        .or_else(|| input.json?.get("severity").and_then(ocsf::severity_of))
        .unwrap_or(0);
    let message = match batch.org_name() {
        Some(org) => format!("Veritensor: {title} ({org})"),
        None => format!("Veritensor: {title}"),
    };
    let resources = file.map(|f| {
        let mut r = json!({"type": "file", "name": f});
        if let Some(h) = text(v, &["sha256", "hash"]) {
            r["uid"] = Value::String(h.to_string());
        }
        json!([r])
    });
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": text(v, &DETAIL_KEYS).unwrap_or(&title),
        "types": threat.map(|t| json!([t])),
    });
    // A flat body is the vulnerability itself: its other fields are the batch's.
    let flat = input
        .json
        .and_then(Value::as_object)
        .is_some_and(|b| std::ptr::eq(b, v));
    let extra = if flat { Map::new() } else { other_fields(v) };
    let time = v.get("timestamp").and_then(ocsf::time_of).or(batch.time);
    let d = Draft::new(Class::DetectionFinding, 1, message)
        .severity(severity)
        .time(time)
        .field("finding_info", strip_nulls(info))
        .field("status", json!("New"))
        .field("status_id", json!(1))
        .field("resources", resources.unwrap_or(Value::Null))
        .unmapped("count", json!(count))
        .unmapped(
            "vulnerability",
            if extra.is_empty() {
                Value::Null
            } else {
                Value::Object(extra)
            },
        );
    batch.unmapped(d)
}

/// The fields of a vulnerability the mapping does not place.
fn other_fields(v: &Map<String, Value>) -> Map<String, Value> {
    const PLACED: [&str; 7] = [
        "id",
        "uid",
        "severity",
        "level",
        "sha256",
        "hash",
        "timestamp",
    ];
    v.iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            !(PLACED.contains(&k)
                || FILE_KEYS.contains(&k)
                || THREAT_KEYS.contains(&k)
                || DETAIL_KEYS.contains(&k))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A scan with no vulnerabilities: one informational Base Event, so the SIEM sees that the
/// scan ran and came back clean.
fn clean_scan(batch: &Batch<'_>) -> Draft {
    let message = match batch.org_name() {
        Some(org) => format!("Veritensor scan for {org} found no vulnerabilities"),
        None => "Veritensor scan found no vulnerabilities".to_string(),
    };
    let d = Draft::new(Class::Base, 0, message)
        .severity(1)
        .time(batch.time)
        .unmapped("count", json!(0));
    batch.unmapped(d)
}

/// Drops the null members of an object (absent optional fields).
fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!(Veritensor, "veritensor");

    #[test]
    fn odd_bodies_map_or_fail_without_panicking() {
        for body in [
            json!(null),
            json!({}),
            json!({"vulnerabilities": "x"}),
            json!({"vulnerabilities": [1, null, {"file": 3, "severity": 9}]}),
            json!({"count": "many", "findings": [{}]}),
            json!({"organization": [1], "vulnerabilities": [{}]}),
        ] {
            let _ = run(body);
        }
        assert!(run(json!([1, 2])).is_err());
    }

    #[test]
    fn an_empty_batch_is_one_informational_event_and_no_list_is_an_error() {
        let d = run(json!({"organization": "acme", "count": 0, "vulnerabilities": []})).unwrap();
        assert_eq!((d.len(), d[0].class, d[0].severity_id), (1, Class::Base, 1));
        assert!(run(json!({"organization": "acme"})).is_err());
        let d =
            run(json!({"vulnerabilities": [{"file": "a"}, {"file": "b"}], "count": 7})).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].unmapped["count"], json!(7));
    }
}
