//! Sentry (integration platform): `Sentry-Hook-Signature: <hex HMAC-SHA256(body)>`.
//! `Sentry-Hook-Timestamp` is not signed, so no window is applied to it. `Request-ID`
//! (unsigned) is the delivery id.
//!
//! **Replay id:** `Request-ID`, which Sentry documents per delivery, and the signed-bytes digest
//! (the header is not signed).

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ocsf::{self, at, str_at, Class, Draft, Input};
use crate::verify::{Descriptor, Extra, Field};

pub struct Sentry;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("sentry-hook-signature", "")
    .id(Field::header("request-id"))
    .extra(&[
        ("sentry-hook-resource", Extra::Fixed("issue")),
        ("sentry-hook-timestamp", Extra::UnixTime),
    ]);

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Sentry));

impl crate::ocsf::Normalizer for Sentry {
    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "created",
            "installation": {"uuid": "a8e5d37a"},
            "data": {"issue": {"id": id, "title": "TypeError: Cannot read properties of undefined", "level": "error",
                               "culprit": "app/checkout.js"}}
        })
        .to_string()
    }

    /// By `Sentry-Hook-Resource`: issues, alerted events and errors are Detection Findings (the
    /// Sentry issue is the finding), metric alerts too (the alert's incident is the finding);
    /// installations and comments are API Activity; other resources a Base Event.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json.ok_or("the body is not JSON")?;
        let action = str_at(j, &["action"]).unwrap_or("");
        let data = &j["data"];
        let resource = input
            .header("sentry-hook-resource")
            .map(str::to_ascii_lowercase)
            .or_else(|| resource_of(data))
            .ok_or("no Sentry-Hook-Resource header and no known resource in `data`")?;
        let d = match resource.as_str() {
            "issue" => issue(&data["issue"], action, input)?,
            "event_alert" => event(&data["event"], str_at(data, &["triggered_rule"]))?,
            "error" => event(&data["error"], None)?,
            "metric_alert" => metric_alert(data, action)?,
            "installation" | "comment" => api_activity(j, &resource, action),
            _ => return Ok(vec![ocsf::base(input)]),
        };
        Ok(vec![d
            .unmapped("resource", json!(resource))
            .unmapped("action", json!(action))
            .unmapped(
                "installation_uuid",
                j["installation"]["uuid"].clone(),
            )])
    }
}

/// The resource a payload is about when the header is missing: the key under `data`.
fn resource_of(data: &Value) -> Option<String> {
    ["issue", "error", "metric_alert", "installation", "comment"]
        .into_iter()
        .find(|k| data.get(k).is_some() || (*k == "comment" && data.get("comment_id").is_some()))
        .or_else(|| data.get("event").map(|_| "event_alert"))
        .map(str::to_string)
}

/// A Sentry level as an OCSF severity: fatal→5 Critical, error→4, warning→3, info and debug→1.
fn level(v: &Value) -> u8 {
    match str_at(v, &["level"]) {
        Some("debug") => 1,
        Some(l) => crate::event::severity_id(l).unwrap_or(0),
        None => 0,
    }
}

/// An issue webhook (created, resolved, assigned, archived, unresolved): the issue is the
/// finding.
fn issue(i: &Value, action: &str, input: &Input<'_>) -> Result<Draft, String> {
    let uid = id(&i["id"]).ok_or("no `data.issue.id`")?;
    let title = str_at(i, &["title"]).unwrap_or("Sentry issue");
    let (activity, status_id, status) = match action {
        "created" => (1, 1, "New"),
        "resolved" => (3, 4, "Resolved"),
        "archived" | "ignored" => (3, 3, "Suppressed"),
        "assigned" => (2, 2, "In Progress"),
        _ => (2, 1, "New"),
    };
    // A new issue happened when first seen; a change, when Sentry sent the hook (the
    // timestamp header is unsigned, but the body it came with is).
    let time = if action == "created" {
        at(i, &["firstSeen"]).and_then(ocsf::time_of)
    } else {
        input
            .header("sentry-hook-timestamp")
            .and_then(|t| ocsf::time_of(&json!(t)))
    };
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": desc(i),
        "types": i["issueCategory"].as_str().map(|c| vec![c]),
        "src_url": i["web_url"].as_str().or(i["permalink"].as_str()),
        "created_time": at(i, &["firstSeen"]).and_then(ocsf::time_of),
        "first_seen_time": at(i, &["firstSeen"]).and_then(ocsf::time_of),
        "last_seen_time": at(i, &["lastSeen"]).and_then(ocsf::time_of),
    });
    let short = str_at(i, &["shortId"]).unwrap_or(&uid);
    Ok(Draft::new(
        Class::DetectionFinding,
        activity,
        format!("Sentry issue {action}: {short} {title}"),
    )
    .severity(level(i))
    .time(time)
    .field("finding_info", ocsf::compact(info))
    .field("status_id", json!(status_id))
    .field("status", json!(status))
    .field("resources", project(&i["project"]))
    .unmapped("short_id", i["shortId"].clone())
    .unmapped(
        "culprit",
        json!(str_at(i, &["culprit"]).filter(|c| !c.is_empty())),
    )
    .unmapped("count", i["count"].clone())
    .unmapped("user_count", i["userCount"].clone())
    .unmapped("assigned_to", i["assignedTo"]["name"].clone()))
}

/// An alerted event (`event_alert`, with the rule that fired) or an error: a finding about
/// the event's issue.
fn event(e: &Value, rule: Option<&str>) -> Result<Draft, String> {
    let event_id = str_at(e, &["event_id"]);
    let uid = id(&e["issue_id"])
        .or(event_id.map(str::to_string))
        .ok_or("no `issue_id` or `event_id` in the event")?;
    let title = str_at(e, &["title"]).unwrap_or("Sentry event");
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": desc(e),
        "types": e["type"].as_str().map(|t| vec![t]),
        "src_url": e["web_url"].as_str().or(e["issue_url"].as_str()),
        "analytic": rule.map(|r| json!({"name": r, "type_id": 1, "type": "Rule"})),
    });
    let message = match rule {
        Some(r) => format!("Sentry alert \"{r}\": {title}"),
        None => format!("Sentry error: {title}"),
    };
    Ok(Draft::new(Class::DetectionFinding, 1, message)
        .severity(level(e))
        .time(
            at(e, &["datetime"])
                .or(at(e, &["timestamp"]))
                .and_then(ocsf::time_of),
        )
        .field("finding_info", ocsf::compact(info))
        .field("status_id", json!(1))
        .field("status", json!("New"))
        .field(
            "resources",
            match id(&e["project"]) {
                Some(p) => json!([{"type": "Sentry Project", "uid": p}]),
                None => Value::Null,
            },
        )
        .unmapped("event_id", json!(event_id))
        .unmapped(
            "culprit",
            json!(str_at(e, &["culprit"]).filter(|c| !c.is_empty())),
        )
        .unmapped("release", e["release"].clone())
        .unmapped("environment", tag(e, "environment"))
        .unmapped("platform", e["platform"].clone()))
}

/// A metric alert (`critical`, `warning`, `resolved`): the alert's incident is the finding.
fn metric_alert(data: &Value, action: &str) -> Result<Draft, String> {
    let m = &data["metric_alert"];
    let uid = id(&m["id"]).ok_or("no `data.metric_alert.id`")?;
    let rule = str_at(m, &["alert_rule", "name"]);
    // The alert's title, not `description_title` ("Critical: <title>"), which changes with the
    // state.
    let title = str_at(m, &["title"])
        .or(rule)
        .or(str_at(data, &["description_title"]))
        .unwrap_or("Sentry metric alert");
    // The alert's own words: critical→5, warning→3; a resolved alert is Informational.
    let (activity, severity, status_id, status, time_key) = match action {
        "resolved" => (3, 1, 4, "Resolved", "date_closed"),
        a => (
            1,
            crate::event::severity_id(a).unwrap_or(0),
            1,
            "New",
            "date_detected",
        ),
    };
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": data["description_text"],
        "types": ["Metric Alert"],
        "src_url": data["web_url"],
        "created_time": at(m, &["date_started"]).and_then(ocsf::time_of),
        "analytic": rule.map(|r| json!({"name": r, "uid": id(&m["alert_rule"]["id"]), "type_id": 1, "type": "Rule"})),
    });
    let projects: Vec<Value> = m["alert_rule"]["projects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|p| json!({"type": "Sentry Project", "name": p}))
                .collect()
        })
        .unwrap_or_default();
    Ok(Draft::new(
        Class::DetectionFinding,
        activity,
        format!("Sentry metric alert {action}: {title}"),
    )
    .severity(severity)
    .time(
        at(m, &[time_key])
            .or(at(m, &["date_started"]))
            .and_then(ocsf::time_of),
    )
    .field("finding_info", ocsf::compact(info))
    .field("status_id", json!(status_id))
    .field("status", json!(status))
    .field(
        "resources",
        if projects.is_empty() {
            Value::Null
        } else {
            json!(projects)
        },
    )
    .unmapped("identifier", m["identifier"].clone())
    .unmapped("aggregate", m["alert_rule"]["aggregate"].clone())
    .unmapped("query", m["alert_rule"]["query"].clone()))
}

/// Installations (`created`, `deleted`) and comments (`created`, `updated`, `deleted`): who
/// did what to which. Routine audit: Informational.
fn api_activity(j: &Value, resource: &str, action: &str) -> Draft {
    let data = &j["data"];
    let activity = match action {
        "created" => 1,
        "updated" => 3,
        "deleted" => 4,
        _ => 99,
    };
    let (resource_json, what, time) = if resource == "installation" {
        let inst = &data["installation"];
        let app = str_at(inst, &["app", "slug"]);
        let org = str_at(inst, &["organization", "slug"]);
        (
            json!([{"type": "Sentry Integration", "uid": inst["uuid"], "name": app}]),
            format!(
                "{} in {}",
                app.unwrap_or("an integration"),
                org.unwrap_or("an organization")
            ),
            None,
        )
    } else {
        (
            json!([{"type": "Sentry Issue", "uid": id(&data["issue_id"])}]),
            format!("on issue {}", id(&data["issue_id"]).unwrap_or_default()),
            at(data, &["timestamp"]).and_then(ocsf::time_of),
        )
    };
    Draft::new(
        Class::ApiActivity,
        activity,
        format!("Sentry {resource} {action}: {what}"),
    )
    .severity(1)
    .time(time)
    .field("actor", actor(&j["actor"]))
    .field("api", json!({"operation": format!("{resource}.{action}")}))
    .field("resources", ocsf::compact(resource_json))
    .unmapped("project", data["project_slug"].clone())
}

/// Sentry's `actor`: a user (`id`, `name`), an application, or Sentry itself.
fn actor(a: &Value) -> Value {
    match str_at(a, &["type"]) {
        Some("user") => ocsf::compact(json!({"user": {"uid": id(&a["id"]), "name": a["name"]}})),
        Some("application") => {
            ocsf::compact(json!({"app_name": a["name"], "app_uid": id(&a["id"])}))
        }
        _ => json!({"app_name": "Sentry"}),
    }
}

/// An issue's or event's description: the exception's value, else the message, else where it
/// happened.
fn desc(v: &Value) -> Option<&str> {
    [&["metadata", "value"][..], &["message"], &["culprit"]]
        .into_iter()
        .find_map(|p| str_at(v, p).filter(|s| !s.is_empty()))
}

fn project(p: &Value) -> Value {
    match id(&p["id"]) {
        Some(uid) => {
            ocsf::compact(json!([{"type": "Sentry Project", "uid": uid, "name": p["slug"]}]))
        }
        None => Value::Null,
    }
}

/// The value of one of an event's `tags` (`[[key, value], ...]`).
fn tag(e: &Value, key: &str) -> Value {
    e["tags"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|kv| kv[0].as_str() == Some(key))
                .map(|kv| kv[1].clone())
        })
        .unwrap_or(Value::Null)
}

/// An id Sentry sends as a string or a number, as a string.
fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!("sentry");

    use crate::vendors::testkit::ODD;

    #[test]
    fn odd_payloads_never_panic() {
        for resource in [
            "issue",
            "event_alert",
            "error",
            "metric_alert",
            "installation",
            "comment",
            "seer",
        ] {
            for odd in ODD.iter().map(|s| serde_json::from_str::<Value>(s).unwrap()).chain([
                json!({"action": "created", "data": []}),
                json!({"action": 1, "data": {"issue": {"id": {}}, "event": [], "error": 2}}),
                json!({"action": "critical", "data": {"metric_alert": {"id": 3, "alert_rule": {"projects": [1]}}}}),
                json!({"action": "created", "data": {"event": {"event_id": "e", "tags": [1, [2], ["environment"]]}}}),
            ]) {
                let _ = run(&Sentry, &odd, &[("sentry-hook-resource", resource)]);
            }
        }
    }

    #[test]
    fn without_the_resource_header_the_data_key_says_what_it_is() {
        let body = json!({"action": "triggered", "data": {"event": {"issue_id": "7", "title": "t", "level": "fatal"}}});
        let d = run(&Sentry, &body, &[]).unwrap();
        assert_eq!((d[0].class, d[0].severity_id), (Class::DetectionFinding, 5));
        assert_eq!(d[0].unmapped["resource"], json!("event_alert"));
        assert!(run(&Sentry, &json!({"data": {}}), &[]).is_err());
    }
}
