//! Humanbound (AI red-teaming): `X-Humanbound-Signature: sha256=<hex HMAC-SHA256(body)>`.
//! The timestamp is the body field `timestamp` (unix seconds), covered by the signature.
//! No event id is documented: replay protection is the body digest.
//!
//! Normalization: every event is one envelope with `event_type`, `severity`, `title`,
//! `description`, `category`, `owasp_category`, `timestamp` (unix seconds) and an event-specific
//! `data`. Humanbound documents 14 event types:
//! - `finding.created|regressed|assigned|acknowledged|resolution_verified|resolution_failed`:
//!   Detection Findings about one finding, its lifecycle in `activity_id` and `status_id`;
//! - `drift.detected`, `quality.degraded`, `quality.regression`: Detection Findings too, since
//!   each reports something Humanbound detected in the agent under test (behavioural drift, a
//!   quality drop, a fixed quality issue back);
//! - `posture.grade_changed`, `campaign.completed`, `ascam.activity_started|paused|resumed`
//!   (and any type not listed): Base Events. They are state changes computed by the platform,
//!   with no actor or API call behind them, so API Activity would be empty of what it requires.
//!
//! Severity is Humanbound's own top-level word for every type.
//!
//! **Replay id:** the body digest. Humanbound's SIEM documentation shows no event id, neither a
//! header nor a field.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, Class, Draft, Input};
use crate::verify::{Descriptor, Field, TimestampUnit};

pub struct Humanbound;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-humanbound-signature", "sha256=")
    .timestamp(Field::Body(&["timestamp"]), TimestampUnit::Seconds);

pub(super) const VENDOR: super::Entry =
    super::Entry::new(|_| super::described(SIGNATURE, Humanbound));

impl crate::ocsf::Normalizer for Humanbound {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event_type": "finding.created",
            "organisation_id": "00000000-0000-0000-0000-000000000001",
            "project_id": "00000000-0000-0000-0000-000000000002",
            "timestamp": ts.unix_timestamp(),
            "severity": "critical",
            "title": "New critical finding: Prompt Injection via System Override",
            "description": "New critical finding: Prompt Injection via System Override [LLM01]",
            "category": "prompt_injection",
            "owasp_category": "LLM01",
            "data": {"finding_id": id}
        })
        .to_string()
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let body = input.object()?;
        let event_type = body
            .get("event_type")
            .and_then(Value::as_str)
            .ok_or("no event_type in the Humanbound payload")?;
        let d = match finding_state(event_type) {
            Some(state) => finding(input, body, event_type, state),
            None => Draft::new(Class::Base, 0, message(body, event_type)),
        };
        Ok(vec![common_fields(d, body, event_type)])
    }
}

/// A finding-like event's OCSF activity (1 Create, 2 Update, 3 Close), finding status id and
/// name, and the status detail Humanbound's event adds.
struct State {
    activity: u8,
    status_id: u8,
    status: &'static str,
    detail: Option<&'static str>,
}

const fn state(
    activity: u8,
    status_id: u8,
    status: &'static str,
    detail: Option<&'static str>,
) -> State {
    State {
        activity,
        status_id,
        status,
        detail,
    }
}

fn finding_state(event_type: &str) -> Option<State> {
    Some(match event_type {
        "finding.created" | "drift.detected" | "quality.degraded" => state(1, 1, "New", None),
        // A fixed finding (or quality issue) is back: open again.
        "finding.regressed" | "quality.regression" => state(2, 1, "New", Some("regressed")),
        "finding.assigned" => state(2, 2, "In Progress", Some("assigned")),
        "finding.acknowledged" => state(2, 2, "In Progress", Some("acknowledged")),
        "finding.resolution_verified" => state(3, 4, "Resolved", Some("resolution verified")),
        "finding.resolution_failed" => state(2, 2, "In Progress", Some("resolution failed")),
        t if t.starts_with("finding.") => state(2, 0, "Unknown", None),
        _ => return None,
    })
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key)?.as_str().filter(|s| !s.is_empty())
}

fn message(body: &Map<String, Value>, event_type: &str) -> String {
    text(body, "title")
        .or(text(body, "description"))
        .map(|t| format!("Humanbound: {t}"))
        .unwrap_or_else(|| format!("Humanbound {event_type}"))
}

fn finding(input: &Input<'_>, body: &Map<String, Value>, event_type: &str, s: State) -> Draft {
    let data = body.get("data").unwrap_or(&Value::Null);
    // The finding's id, else the drift's or quality issue's own, else this delivery's.
    let uid = ["finding_id", "drift_id", "issue_id", "id"]
        .iter()
        .find_map(|k| common::json_str(Some(data), &[k]))
        .unwrap_or_else(|| input.event_id.to_string());
    let types: Vec<&str> = ["owasp_category", "category"]
        .iter()
        .filter_map(|k| text(body, k))
        .collect();
    let mut info = Map::new();
    info.insert("uid".into(), json!(uid));
    info.insert(
        "title".into(),
        json!(text(body, "title").unwrap_or(event_type)),
    );
    if let Some(desc) = text(body, "description") {
        info.insert("desc".into(), json!(desc));
    }
    if !types.is_empty() {
        info.insert("types".into(), json!(types));
    }
    if let Some(url) = ["url", "finding_url", "link"]
        .iter()
        .find_map(|k| data.get(*k)?.as_str())
    {
        info.insert("src_url".into(), json!(url));
    }
    let resources = match body.get("project_id") {
        Some(Value::String(p)) => json!([{"type": "project", "uid": p}]),
        Some(Value::Number(p)) => json!([{"type": "project", "uid": p.to_string()}]),
        _ => Value::Null,
    };
    Draft::new(
        Class::DetectionFinding,
        s.activity,
        message(body, event_type),
    )
    .field("finding_info", Value::Object(info))
    .field("status_id", json!(s.status_id))
    .field("status", json!(s.status))
    .field(
        "status_detail",
        s.detail.map(Value::from).unwrap_or(Value::Null),
    )
    .field("resources", resources)
}

/// What every Humanbound event carries: severity, time, and the envelope's other fields.
fn common_fields(d: Draft, body: &Map<String, Value>, event_type: &str) -> Draft {
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let severity = body
        .get("severity")
        .and_then(ocsf::severity_of)
        .unwrap_or(0);
    let time = body.get("timestamp").and_then(ocsf::time_of);
    let mut d = d
        .severity(severity)
        .time(time)
        .unmapped("event_type", json!(event_type))
        .unmapped("organisation_id", get("organisation_id"))
        .unmapped("project_id", get("project_id"))
        .unmapped("category", get("category"))
        .unmapped("owasp_category", get("owasp_category"))
        .unmapped(
            "data",
            get("data")
                .as_object()
                .filter(|o| !o.is_empty())
                .map_or(Value::Null, |o| Value::Object(o.clone())),
        );
    if d.class == Class::Base {
        d = d
            .unmapped("title", get("title"))
            .unmapped("description", get("description"));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!(Humanbound, "humanbound");

    #[test]
    fn odd_bodies_map_or_fail_without_panicking() {
        for body in [
            json!(null),
            json!({}),
            json!({"event_type": 5}),
            json!({"event_type": "finding.created", "data": [1], "severity": {"x": 1}}),
            json!({"event_type": "finding.created", "data": {"finding_id": {}}, "timestamp": "soon"}),
            json!({"event_type": "ascam.resumed", "data": null}),
        ] {
            let _ = run(body);
        }
        assert!(run(json!([1, 2])).is_err());
    }

    #[test]
    fn every_finding_event_type_has_a_lifecycle_and_others_are_base_events() {
        for t in [
            "finding.created",
            "finding.regressed",
            "finding.assigned",
            "finding.acknowledged",
            "finding.resolution_verified",
            "finding.resolution_failed",
            "drift.detected",
            "quality.degraded",
            "quality.regression",
        ] {
            let d = run(json!({"event_type": t, "title": "x"})).unwrap();
            assert_eq!(d[0].class, Class::DetectionFinding, "{t}");
            assert_eq!(d[0].fields["finding_info"]["uid"], json!("req-1"), "{t}");
        }
        for t in [
            "posture.grade_changed",
            "campaign.completed",
            "ascam.activity_started",
            "ascam.paused",
            "ascam.resumed",
            "something.new",
        ] {
            assert_eq!(
                run(json!({"event_type": t})).unwrap()[0].class,
                Class::Base,
                "{t}"
            );
        }
    }
}
