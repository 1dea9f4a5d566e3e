//! Linear: `Linear-Signature: <hex HMAC-SHA256(body)>`. The timestamp is the body field
//! `webhookTimestamp` in milliseconds (signed). `Linear-Delivery` (unsigned) is the delivery id.
//!
//! **Replay id:** `Linear-Delivery`, the UUID Linear documents per delivery, and the signed-bytes
//! digest (the header is not signed).

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ocsf::{self, at, str_at, Class, Draft, Input};
use crate::verify::{Descriptor, Extra, Field, TimestampUnit};

pub struct Linear;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("linear-signature", "")
    .timestamp(
        Field::Body(&["webhookTimestamp"]),
        TimestampUnit::Milliseconds,
    )
    .id(Field::header("linear-delivery"))
    .extra(&[("linear-event", Extra::Fixed("Issue"))]);

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Linear));

impl crate::ocsf::Normalizer for Linear {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "create",
            "type": "Issue",
            "data": {"id": id, "title": "Rotate leaked API key", "priority": 1},
            "url": "https://linear.app/acme/issue/SEC-1",
            "webhookTimestamp": (ts.unix_timestamp_nanos() / 1_000_000) as i64,
            "webhookId": "3a1b"
        })
        .to_string()
    }

    /// Every Linear data-change event (`type` + `action`: Issue create, Comment update, ...) is
    /// API Activity by the actor who made it. Linear has no severity (an issue's `priority` is
    /// the team's, not a threat's): Informational.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json.ok_or("the body is not JSON")?;
        let kind = str_at(j, &["type"]).ok_or("no `type`")?;
        let action = str_at(j, &["action"]).ok_or("no `action`")?;
        let data = &j["data"];
        let activity = match action {
            "create" => 1,
            "update" => 3,
            "remove" => 4,
            _ => 99,
        };
        let name = str_at(data, &["identifier"])
            .or(str_at(data, &["name"]))
            .or(str_at(data, &["title"]));
        let what = subject(data);
        let verb = match action {
            "create" => "created",
            "update" => "updated",
            "remove" => "removed",
            a => a,
        };
        let message = if what.is_empty() {
            format!("Linear {kind} {verb}")
        } else if what.starts_with("on ") {
            format!("Linear {kind} {verb} {what}")
        } else {
            format!("Linear {kind} {verb}: {what}")
        };
        let resources = str_at(data, &["id"])
            .map(|id| ocsf::compact(json!([{"type": kind, "uid": id, "name": name}])));
        Ok(vec![Draft::new(Class::ApiActivity, activity, message)
            .severity(1)
            .time(at(j, &["createdAt"]).and_then(ocsf::time_of))
            .field("actor", actor(j))
            .field("api", json!({"operation": format!("{kind}.{action}")}))
            .field("resources", resources.unwrap_or(Value::Null))
            .unmapped("url", j["url"].clone())
            .unmapped("organization_id", j["organizationId"].clone())
            .unmapped("webhook_id", j["webhookId"].clone())
            .unmapped("labels", labels(data))
            .unmapped("changed_fields", changed(j))])
    }
}

/// What the message names: an issue's identifier and title, a label's or project's name, or
/// the issue a comment is on.
fn subject(data: &Value) -> String {
    let own = [str_at(data, &["identifier"]), str_at(data, &["title"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !own.is_empty() {
        return own;
    }
    if let Some(n) = str_at(data, &["name"]) {
        return n.to_string();
    }
    str_at(data, &["issue", "title"])
        .map(|t| format!("on {t}"))
        .unwrap_or_default()
}

/// The user (or OAuth app, integration) that made the change; Linear itself when none is named.
fn actor(j: &Value) -> Value {
    let a = &j["actor"];
    match str_at(a, &["type"]) {
        Some("user") | None if str_at(a, &["id"]).is_some() => ocsf::compact(json!({"user": {
            "uid": a["id"], "name": a["name"], "email_addr": a["email"]}})),
        Some(_) if str_at(a, &["id"]).is_some() => ocsf::compact(json!({
            "app_name": a["name"], "app_uid": a["id"]})),
        _ => json!({"app_name": "Linear"}),
    }
}

/// An issue's label names (the "security" label is how teams mark security work).
fn labels(data: &Value) -> Value {
    match data["labels"].as_array() {
        Some(l) => {
            let names: Vec<&str> = l.iter().filter_map(|l| str_at(l, &["name"])).collect();
            if names.is_empty() {
                Value::Null
            } else {
                json!(names)
            }
        }
        None => Value::Null,
    }
}

/// An update's `updatedFrom` names the fields that changed (with their previous values).
fn changed(j: &Value) -> Value {
    match j["updatedFrom"].as_object() {
        Some(m) => {
            // `updatedAt` changes with every update: not worth naming.
            let keys: Vec<&String> = m.keys().filter(|k| *k != "updatedAt").collect();
            if keys.is_empty() {
                Value::Null
            } else {
                json!(keys)
            }
        }
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!("linear");

    use crate::vendors::testkit::ODD;

    #[test]
    fn odd_payloads_never_panic() {
        for odd in ODD.iter().map(|s| serde_json::from_str::<Value>(s).unwrap()).chain([
            json!({"type": "Issue", "action": "create", "data": [], "actor": "x"}),
            json!({"type": "Issue", "action": "update", "data": {"labels": [1, {"name": 2}]}, "updatedFrom": []}),
            json!({"type": "Issue", "action": "set", "actor": {"type": "oauthClient"}}),
        ]) {
            let _ = run(&Linear, &odd, &[]);
        }
    }

    #[test]
    fn a_payload_without_type_or_action_is_not_mapped() {
        assert!(run(&Linear, &json!({"action": "create"}), &[]).is_err());
        let d = run(
            &Linear,
            &json!({"type": "Reaction", "action": "create"}),
            &[],
        )
        .unwrap();
        assert_eq!(d[0].fields["actor"], json!({"app_name": "Linear"}));
        assert_eq!(d[0].message, "Linear Reaction created");
    }
}
