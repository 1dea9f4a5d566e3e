//! PagerDuty (v3 webhooks): `X-PagerDuty-Signature: v1=<hex>,v1=<hex>` (one per signing
//! secret), HMAC-SHA256 of the body. No timestamp. The event id is the body's `event.id`.
//!
//! **Replay id:** the body's `event.id`, which PagerDuty documents, and the signed-bytes digest.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, at, str_at, Class, Draft, Input};
use crate::verify::{Descriptor, Field};

pub struct Pagerduty;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-pagerduty-signature", "v1=")
    .list(",")
    .id(Field::Body(&["event", "id"]));

pub(super) const VENDOR: super::Entry =
    super::Entry::new(|_| super::described(SIGNATURE, Pagerduty));

impl crate::ocsf::Normalizer for Pagerduty {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": {
                "id": id,
                "event_type": "incident.triggered",
                "resource_type": "incident",
                "occurred_at": common::iso_millis(ts),
                "data": {"id": "PGR0VU2", "type": "incident", "number": 2,
                         "title": "Disk full on db-1", "status": "triggered", "urgency": "high",
                         "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                         "service": {"id": "PF9KMXH", "type": "service_reference",
                                     "summary": "db"},
                         "priority": {"summary": "P1"}}
            }
        })
        .to_string()
    }

    /// Incidents are findings (the incident is the finding: its id, title, urgency and
    /// priority); other resources (services, pings) are API Activity.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let event = input.object()?.get("event").ok_or("no `event` object")?;
        let event_type = str_at(event, &["event_type"]).ok_or("no `event.event_type`")?;
        let d = if event_type.starts_with("incident.") {
            incident(event, event_type)?
        } else {
            other(event, event_type)
        };
        Ok(vec![d
            .time(at(event, &["occurred_at"]).and_then(ocsf::time_of))
            .unmapped("event_type", json!(event_type))])
    }
}

/// An `incident.*` event as a Detection Finding. Most carry the incident as `data`; some
/// (annotated, responder.*, status_update_published) carry their own object with an
/// `incident` reference.
fn incident(event: &Value, event_type: &str) -> Result<Draft, String> {
    let data = &event["data"];
    let is_incident = str_at(data, &["type"]) == Some("incident");
    let inc = if is_incident { data } else { &data["incident"] };
    let uid = str_at(inc, &["id"]).ok_or("no incident id")?;
    let title = str_at(inc, &["title"])
        .or(str_at(inc, &["summary"]))
        .unwrap_or(uid);
    let verb = event_type.trim_start_matches("incident.");
    let activity = match verb {
        "triggered" => 1,
        "resolved" => 3,
        _ => 2,
    };
    // A reference (annotations) carries no status: none is given.
    let status = match str_at(inc, &["status"]) {
        Some("triggered") => Some((1, "New")),
        Some("acknowledged") => Some((2, "In Progress")),
        Some("resolved") => Some((4, "Resolved")),
        Some(_) => Some((99, "Other")),
        None => None,
    };
    // A note or status update is the finding's description; an incident's own payload has
    // none.
    let desc = (!is_incident)
        .then(|| str_at(data, &["content"]).or(str_at(data, &["message"])))
        .flatten();
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": desc,
        "types": ["PagerDuty Incident"],
        "src_url": str_at(inc, &["html_url"]),
        "created_time": at(inc, &["created_at"]).and_then(ocsf::time_of),
    });
    let service = &inc["service"];
    let resources = str_at(service, &["id"]).map(|id| {
        json!([{"type": "PagerDuty Service", "uid": id, "name": str_at(service, &["summary"])}])
    });
    let number = at(inc, &["number"]).cloned();
    let verb = verb.replace(['.', '_'], " ");
    let message = match &number {
        Some(n) => format!("PagerDuty incident {verb}: {title} (#{n})"),
        None => format!("PagerDuty incident {verb}: {title}"),
    };
    Ok(Draft::new(Class::DetectionFinding, activity, message)
        .severity(severity(inc))
        .field("finding_info", ocsf::compact(info))
        .field("status_id", json!(status.map(|s| s.0)))
        .field("status", json!(status.map(|s| s.1)))
        .field(
            "resources",
            resources.map(ocsf::compact).unwrap_or(Value::Null),
        )
        .unmapped("incident_number", number.unwrap_or(Value::Null))
        .unmapped("urgency", inc["urgency"].clone())
        .unmapped("priority", inc["priority"]["summary"].clone())
        .unmapped("agent", reference(&event["agent"])))
}

/// Priority P1..P5 when the account uses priorities (and names them so), else urgency
/// (high→4 High, low→2 Low); 0 Unknown when the payload carries neither (an annotation).
fn severity(inc: &Value) -> u8 {
    str_at(inc, &["priority", "summary"])
        .and_then(crate::event::severity_id)
        .or(match str_at(inc, &["urgency"]) {
            Some("high") => Some(4),
            Some("low") => Some(2),
            _ => None,
        })
        .unwrap_or(0)
}

/// Services and anything else: API Activity by the verb of the event type.
fn other(event: &Value, event_type: &str) -> Draft {
    let activity = match event_type.rsplit('.').next() {
        Some("created") => 1,
        Some("updated") => 3,
        Some("deleted") => 4,
        _ => 99,
    };
    let data = &event["data"];
    let actor = match reference(&event["agent"]) {
        Value::Null => json!({"app_name": "PagerDuty"}),
        a => json!({"user": {"uid": a["id"], "name": a["summary"]}}),
    };
    let resources = str_at(data, &["id"]).map(|id| {
        json!([{"type": str_at(data, &["type"]), "uid": id,
                "name": str_at(data, &["summary"]).or(str_at(data, &["name"]))}])
    });
    let what = str_at(data, &["summary"])
        .or(str_at(data, &["name"]))
        .map(|n| format!(": {n}"))
        .unwrap_or_default();
    // Configuration and health events, not threats: Informational.
    Draft::new(
        Class::ApiActivity,
        activity,
        format!("PagerDuty {event_type}{what}"),
    )
    .severity(1)
    .field("actor", actor)
    .field("api", json!({"operation": event_type}))
    .field(
        "resources",
        resources.map(ocsf::compact).unwrap_or(Value::Null),
    )
}

/// A PagerDuty reference (`{"id", "summary", "type", ...}`) reduced to its id and summary.
fn reference(r: &Value) -> Value {
    match str_at(r, &["id"]) {
        Some(id) => ocsf::compact(json!({"id": id, "summary": r["summary"], "type": r["type"]})),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!("pagerduty");

    use crate::vendors::testkit::ODD;

    #[test]
    fn odd_payloads_never_panic() {
        for odd in ODD
            .iter()
            .map(|s| serde_json::from_str::<Value>(s).unwrap())
            .chain([
                json!({"event": 1}),
                json!({"event": {"event_type": 3}}),
                json!({"event": {"event_type": "incident.triggered", "data": []}}),
                json!({"event": {"event_type": "incident.annotated", "data": {"incident": 5}}}),
                json!({"event": {"event_type": "service.deleted", "data": null, "agent": []}}),
                json!({"event": {"event_type": "pagey.ping"}}),
            ])
        {
            let _ = run(&Pagerduty, &odd, &[]);
        }
    }

    #[test]
    fn an_incident_without_an_id_is_not_mapped_and_a_ping_is_api_activity() {
        let no_id =
            json!({"event": {"event_type": "incident.triggered", "data": {"type": "incident"}}});
        assert!(run(&Pagerduty, &no_id, &[]).is_err());
        let ping =
            json!({"event": {"event_type": "pagey.ping", "occurred_at": "2026-04-06T14:32:01Z"}});
        let d = run(&Pagerduty, &ping, &[]).unwrap();
        assert_eq!((d[0].class, d[0].activity_id), (Class::ApiActivity, 99));
        assert_eq!(d[0].fields["actor"], json!({"app_name": "PagerDuty"}));
    }
}
