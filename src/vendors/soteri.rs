//! Soteri (Security for Jira): `X-Soteri-Signature` is a comma-separated list of base64
//! HMAC-SHA256 signatures of the body, one per secret configured at Soteri; any may match.
//! No timestamp or id: replay protection is the body digest.
//!
//! Normalization. The webhook carries Soteri's audit-log events; their body is not public, so
//! siemgate reads `{"eventType", "auditId", "timestamp", "product", "user": {"accountId",
//! "displayName"}, "details": {...}}`, with the detail fields (`issueKey`, `pageId`,
//! `projectId`, `ruleName`, `secretsFound`, `findingsCount`, `errorMessage`, ...) in `details`
//! or at the top level. By `eventType` (`SECRET_FOUND`, `secret.found`, "Found secret" alike):
//! - a secret found in an issue or page: Detection Finding (one per `findings[]` entry when
//!   given). Soteri rates no secret: a credential in plain text where every reader of the
//!   project sees it is High (4), unless the body has a `severity`;
//! - scans (scheduled, finished, failed) and other events without a person: Base Event,
//!   Informational, or Low (2) when a scan failed or could not read a project (coverage gap);
//! - changes made by a person (settings, rules, reviewed false positives, exports, triggered
//!   scans): API Activity, Informational.
//!
//! **Replay id:** the body digest. Soteri documents no id header or field (and delivery is
//! best-effort, without retries).

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, Class, Draft, Input};
use crate::verify::Descriptor;

pub struct Soteri;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-soteri-signature", "")
    .base64()
    .list(",");

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Soteri));

impl crate::ocsf::Normalizer for Soteri {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "eventType": "SECRET_FOUND",
            "timestamp": common::rfc3339(ts),
            "auditId": id,
            "secretsFound": 1,
            "issueKey": "SEC-42",
            "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Alice"}
        })
        .to_string()
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let body = input.json_object()?;
        let event_type = event_type(body).ok_or("no eventType in the Soteri payload")?;
        let words = words(event_type);
        let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
        let time = body.get("timestamp").and_then(ocsf::time_of);
        let drafts = if is_finding(&words) {
            findings(input, body)
        } else {
            match person(body) {
                Some(user) if !has(&["scheduled", "finished", "completed", "error", "failed"]) => {
                    vec![api_activity(body, event_type, &words, user)]
                }
                _ => vec![system_event(body, event_type, &words)],
            }
        };
        Ok(drafts
            .into_iter()
            .map(|d| {
                d.time(time)
                    .unmapped("event_type", json!(event_type))
                    .unmapped(
                        "audit_id",
                        get(body, "auditId").cloned().unwrap_or(Value::Null),
                    )
                    .unmapped(
                        "product",
                        get(body, "product").cloned().unwrap_or(Value::Null),
                    )
            })
            .collect())
    }

    /// A secret found fans out into one finding per object of `findings[]`.
    fn fan_out(&self, input: &Input<'_>) -> Option<ocsf::FanOut> {
        let body = input.json.filter(|j| j.is_object())?;
        if !is_finding(&words(event_type(body)?)) {
            return None;
        }
        Some(ocsf::FanOut::objects(findings_path(body)?))
    }
}

/// The lower-case words of an event type: `SECRET_FOUND`, `secret.found`, `SecretFound` and
/// "Found secret" all read as `secret`, `found`.
fn words(event_type: &str) -> Vec<String> {
    let mut spaced = String::new();
    let mut prev_lower = false;
    for c in event_type.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        spaced.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            ' '
        });
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

/// Whether an event type says secrets were found.
fn is_finding(words: &[String]) -> bool {
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    has(&["secret", "secrets", "finding", "findings"])
        && has(&["found", "detected", "created", "new"])
}

/// A detail field: in `details`, else at the top level.
/// The event's type: the first of `eventType`, `event_type`, `type`, `event`.
fn event_type(body: &Value) -> Option<&str> {
    ["eventType", "event_type", "type", "event"]
        .iter()
        .find_map(|k| body.get(*k)?.as_str())
}

/// Where the findings of a secret found are, as [`get`] reads them: `details.findings`, else
/// `findings`.
fn findings_path(body: &Value) -> Option<&'static [&'static str]> {
    const DETAILS: &[&str] = &["details", "findings"];
    const TOP: &[&str] = &["findings"];
    let path = if ocsf::at(body, DETAILS).is_some() {
        DETAILS
    } else {
        TOP
    };
    ocsf::at(body, path).filter(|v| !v.is_null())?;
    Some(path)
}

fn get<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    ocsf::at(body, &["details", key])
        .or(body.get(key))
        .filter(|v| !v.is_null())
}

fn text<'a>(body: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| get(body, k)?.as_str())
        .filter(|s| !s.is_empty())
}

/// The person behind the event as an OCSF user; `None` for Soteri itself ("System").
fn person(body: &Value) -> Option<Value> {
    let u = body.get("user")?;
    if u.as_str().is_some() {
        return None;
    }
    let id = ocsf::str_at(u, &["accountId"]).or(ocsf::str_at(u, &["id"]));
    let name = ocsf::str_at(u, &["displayName"]).or(ocsf::str_at(u, &["name"]));
    if id.unwrap_or("System").eq_ignore_ascii_case("system") {
        return None;
    }
    let mut user = Map::new();
    user.insert("uid".into(), json!(id));
    if let Some(n) = name {
        user.insert("name".into(), json!(n));
    }
    if let Some(e) = ocsf::str_at(u, &["emailAddress"]).or(ocsf::str_at(u, &["email"])) {
        user.insert("email_addr".into(), json!(e));
    }
    Some(Value::Object(user))
}

/// The Jira issue or Confluence page the event is about, as an OCSF resource and a label.
fn content(body: &Value) -> Option<(Value, String)> {
    if let Some(key) = text(body, &["issueKey", "issueId"]) {
        let mut r = json!({"type": "Jira issue", "uid": key});
        if let Some(s) = text(body, &["issueSummary", "summary"]) {
            r["name"] = json!(s);
        }
        return Some((r, format!("Jira issue {key}")));
    }
    let page = text(body, &["pageId", "contentId"])?;
    let title = text(body, &["pageTitle", "title"]);
    let mut r = json!({"type": "Confluence page", "uid": page});
    if let Some(t) = title {
        r["name"] = json!(t);
    }
    Some((r, format!("Confluence page {}", title.unwrap_or(page))))
}

/// A secret found: one Detection Finding per `findings[]` entry, else one for the event.
fn findings(input: &Input<'_>, body: &Value) -> Vec<Draft> {
    let entries: Vec<(usize, &Value)> = findings_path(body)
        .and_then(|path| ocsf::at(body, path)?.as_array())
        .map(|a| {
            a.iter()
                .enumerate()
                .filter(|(_, v)| v.is_object())
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() {
        return vec![finding(input, body, body, None)];
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, (item, e))| finding(input, body, e, Some(i)).item(*item))
        .collect()
}

fn finding(input: &Input<'_>, body: &Value, entry: &Value, index: Option<usize>) -> Draft {
    let own = |keys: &[&str]| keys.iter().find_map(|k| entry.get(*k)?.as_str());
    let rule = own(&["ruleName", "rule"]).or(text(body, &["ruleName", "rule"]));
    let place = content(body);
    let where_ = place.as_ref().map(|(_, l)| l.as_str());
    let title = match (rule, where_) {
        (Some(r), Some(w)) => format!("{r} found in {w}"),
        (None, Some(w)) => format!("Secret found in {w}"),
        (Some(r), None) => format!("{r} found"),
        (None, None) => "Secret found".to_string(),
    };
    let count = get(body, "secretsFound").and_then(Value::as_u64);
    let location = own(&["location", "field"]).or(text(body, &["location", "field"]));
    let mut desc = match (count, where_) {
        (Some(n), Some(w)) if index.is_none() => format!("{n} secret(s) found in {w}"),
        _ => title.clone(),
    };
    if let Some(l) = location {
        desc.push_str(&format!(" ({l})"));
    }
    let base_uid = text(body, &["auditId"]).unwrap_or(input.event_id);
    let uid = own(&["findingId", "id"])
        .or(if index.is_none() {
            text(body, &["findingId"])
        } else {
            None
        })
        .map(str::to_string)
        .unwrap_or_else(|| match index {
            Some(i) => format!("{base_uid}:{i}"),
            None => base_uid.to_string(),
        });
    let mut info = json!({"uid": uid, "title": title, "desc": desc, "types": ["secret"]});
    if let Some(r) = rule {
        info["analytic"] = json!({"name": r, "type_id": 1, "type": "Rule"});
    }
    if let Some(u) = own(&["url"]).or(text(body, &["url", "issueUrl", "pageUrl"])) {
        info["src_url"] = json!(u);
    }
    let severity = entry
        .get("severity")
        .or(get(body, "severity"))
        .and_then(ocsf::severity_of)
        .unwrap_or(4);
    let mut d = Draft::new(Class::DetectionFinding, 1, format!("Soteri: {title}"))
        .severity(severity)
        .field("finding_info", info)
        .field("status_id", json!(1))
        .field("status", json!("New"))
        .field("resources", place.map_or(Value::Null, |(r, _)| json!([r])))
        .unmapped("secrets_found", count.map_or(Value::Null, Value::from))
        .unmapped("user", person(body).unwrap_or(Value::Null));
    for k in ["projectId", "projectKey", "spaceId", "spaceKey"] {
        d = d.unmapped(k, get(body, k).cloned().unwrap_or(Value::Null));
    }
    d
}

/// The API Activity of a person's change, by its verb: 1 Create, 2 Read, 3 Update, 4 Delete.
fn verb(words: &[String]) -> u8 {
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    if has(&[
        "delete",
        "deleted",
        "remove",
        "removed",
        "cancel",
        "canceled",
        "cancelled",
    ]) {
        4
    } else if has(&["create", "created", "add", "added", "upload", "uploaded"]) {
        1
    } else if has(&["export", "exported", "view", "viewed"]) {
        2
    } else if has(&[
        "update", "updated", "change", "changed", "toggle", "toggled", "review", "reviewed",
        "enable", "enabled", "disable", "disabled", "settings",
    ]) {
        3
    } else {
        99
    }
}

fn api_activity(body: &Value, event_type: &str, words: &[String], user: Value) -> Draft {
    let who = ocsf::str_at(&user, &["name"])
        .or(ocsf::str_at(&user, &["uid"]))
        .unwrap_or("unknown")
        .to_string();
    let src = text(body, &["ipAddress", "ip"]).map_or(Value::Null, |ip| json!({"ip": ip}));
    Draft::new(
        Class::ApiActivity,
        verb(words),
        format!("Soteri {event_type} by {who}"),
    )
    .severity(1)
    .field("actor", json!({"user": user}))
    .field("api", json!({"operation": event_type}))
    .field("src_endpoint", src)
    .field(
        "resources",
        content(body).map_or(Value::Null, |(r, _)| json!([r])),
    )
    .unmapped(
        "details",
        body.get("details").cloned().unwrap_or(Value::Null),
    )
}

/// Soteri's own events (scans): Informational, Low when a scan failed.
fn system_event(body: &Value, event_type: &str, words: &[String]) -> Draft {
    let has = |w: &[&str]| words.iter().any(|x| w.contains(&x.as_str()));
    let failed = has(&["error", "failed", "failure"]) || (has(&["could"]) && has(&["not"]));
    let mut message = format!("Soteri {event_type}");
    let scope = text(body, &["projectKey", "projectId", "spaceKey", "spaceId"]);
    if let Some(s) = scope {
        message.push_str(&format!(" ({s})"));
    }
    let count = get(body, "findingsCount").or(get(body, "secretsFound"));
    if let Some(n) = count {
        message.push_str(&format!(": {n} finding(s)"));
    }
    if let Some(e) = text(body, &["errorMessage"]) {
        message.push_str(&format!(": {e}"));
    }
    let details = body.get("details").cloned().or_else(|| {
        // The detail fields at the top level, without the envelope.
        let o = body.as_object()?;
        let rest: Map<String, Value> = o
            .iter()
            .filter(|(k, _)| {
                ![
                    "eventType",
                    "event_type",
                    "type",
                    "event",
                    "timestamp",
                    "auditId",
                    "product",
                    "user",
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!rest.is_empty()).then_some(Value::Object(rest))
    });
    Draft::new(Class::Base, 0, message)
        .severity(if failed { 2 } else { 1 })
        .unmapped("details", details.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!(Soteri, "soteri");

    #[test]
    fn odd_bodies_map_or_fail_without_panicking() {
        for body in [
            json!(null),
            json!({}),
            json!({"eventType": 3}),
            json!({"eventType": "SECRET_FOUND", "details": [1], "user": 5}),
            json!({"eventType": "SECRET_FOUND", "details": {"findings": [1, {"id": 2}]}}),
            json!({"eventType": "RULE_DELETED", "user": {"accountId": {}}}),
        ] {
            let _ = run(body);
        }
        assert!(run(json!([1, 2])).is_err());
    }

    #[test]
    fn event_type_spellings_read_alike() {
        assert_eq!(words("SECRET_FOUND"), ["secret", "found"]);
        assert_eq!(words("SecretFound"), ["secret", "found"]);
        assert_eq!(words("Found secret"), ["found", "secret"]);
        let person = json!({"accountId": "abc", "displayName": "A"});
        let d = &run(json!({"eventType": "Delete custom rule", "user": person})).unwrap()[0];
        assert_eq!((d.class, d.activity_id), (Class::ApiActivity, 4));
        let d = &run(json!({"eventType": "Finished project scan", "user": "System"})).unwrap()[0];
        assert_eq!(d.class, Class::Base);
    }
}
