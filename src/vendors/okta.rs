//! Okta event hooks: no signature. The admin sets an authentication header (`header`, default
//! `Authorization`) whose value Okta sends verbatim; it is compared in constant time with the
//! configured secret.
//!
//! **Replay id:** the body digest. Okta documents no delivery id for event hooks (the reference
//! finds none); the body's `eventId` only labels the event.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common;
use super::VendorOptions;
use crate::ocsf::{self, at, str_at, Class, Draft, Handshake, Input};
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

const CHALLENGE: &str = "x-okta-verification-challenge";

pub struct Okta {
    header: String,
}

/// Its one key, `header`, is a header name.
pub(super) const VENDOR: super::Entry = super::Entry::with_options(
    |t, err| super::header_option(t, "header", err),
    |o| Box::new(Okta::new(o)),
);

impl Okta {
    pub fn new(opts: &VendorOptions) -> Self {
        Okta {
            header: opts
                .header
                .clone()
                .unwrap_or_else(|| "authorization".into())
                .to_ascii_lowercase(),
        }
    }
}

impl crate::verify::Scheme for Okta {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let token = verify::required_header(req, &self.header)?;
        Ok(Claim {
            check: Check::Token {
                presented: token.as_bytes(),
            },
        })
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        // Okta documents no delivery id for event hooks: `eventId` names the event and is
        // never a replay key (the body digest is).
        Ok(Facts {
            label: common::json_str(json, &["eventId"]),
            ..Facts::default()
        })
    }

    fn sign(
        &self,
        key: &Key,
        _body: &[u8],
        _ts: OffsetDateTime,
        _id: &str,
    ) -> Vec<(String, String)> {
        vec![(
            self.header.clone(),
            String::from_utf8_lossy(key.raw()).into_owned(),
        )]
    }
}

impl crate::ocsf::Normalizer for Okta {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "eventId": id,
            "eventTime": common::rfc3339(ts),
            "data": {"events": [{
                "uuid": id,
                "published": common::rfc3339(ts),
                "eventType": "user.session.start",
                "severity": "INFO",
                "displayMessage": "User login to Okta",
                "actor": {"alternateId": "alice@acme.com", "type": "User"},
                "client": {"ipAddress": "203.0.113.7"},
                "outcome": {"result": "SUCCESS"}
            }]}
        })
        .to_string()
    }

    /// An event hook delivers a batch of System Log events (`data.events[]`): one OCSF event
    /// each, with the Okta event's `uuid` as its uid.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let events = input
            .object()?
            .get("data")
            .and_then(|d| d.get("events"))
            .and_then(Value::as_array)
            .ok_or("no `data.events` array")?;
        let drafts = events
            .iter()
            .enumerate()
            .map(|(i, e)| log_event(e).map(|d| d.item(i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(drafts)
    }

    fn fan_out(&self, _input: &Input<'_>) -> Option<ocsf::FanOut> {
        Some(ocsf::FanOut::every(&["data", "events"]))
    }

    /// Okta checks an event hook's URL with a one-time GET carrying the challenge header (and
    /// the authentication header, verified as usual).
    fn accepts(&self, method: &http::Method, headers: &http::HeaderMap) -> bool {
        method == http::Method::POST
            || (method == http::Method::GET && headers.contains_key(CHALLENGE))
    }

    /// Okta verifies an event hook with a one-time GET carrying
    /// `X-Okta-Verification-Challenge` (and the authentication header, checked first): the
    /// answer echoes it as `{"verification": ...}`.
    fn handshake(&self, input: &Input<'_>, _keys: &[Key]) -> Option<Handshake> {
        let challenge = input.header(CHALLENGE)?;
        Some(Handshake {
            content_type: "application/json",
            body: serde_json::json!({ "verification": challenge }).to_string(),
        })
    }
}

/// One Okta System Log event.
fn log_event(e: &Value) -> Result<Draft, String> {
    let event_type = str_at(e, &["eventType"]).ok_or("an event without `eventType`")?;
    let d = if let Some(activity) = logon_activity(event_type) {
        authentication(e, activity, event_type)
    } else if let Some(activity) = account_activity(event_type) {
        account_change(e, activity)
    } else if matches!(
        event_type,
        "security.threat.detected" | "user.account.report_suspicious_activity_by_enduser"
    ) {
        finding(e, event_type)
    } else {
        api_activity(e, event_type)
    };
    let d = d
        .severity(severity(e))
        .time(at(e, &["published"]).and_then(ocsf::time_of))
        .unmapped("event_type", json!(event_type))
        .unmapped("transaction_id", e["transaction"]["id"].clone());
    Ok(match str_at(e, &["uuid"]) {
        Some(uid) => d.uid(uid),
        None => d,
    })
}

/// Okta's INFO/WARN/ERROR as 1/3/4 (DEBUG is Informational too).
fn severity(e: &Value) -> u8 {
    match str_at(e, &["severity"]) {
        Some("DEBUG") => 1,
        Some(s) => crate::event::severity_id(s).unwrap_or(0),
        None => 0,
    }
}

fn logon_activity(event_type: &str) -> Option<u8> {
    match event_type {
        "user.session.start" => Some(1),
        "user.session.end" => Some(2),
        t if t.starts_with("user.authentication.") => Some(1),
        _ => None,
    }
}

fn account_activity(event_type: &str) -> Option<u8> {
    Some(match event_type {
        "user.lifecycle.create" => 1,
        "user.lifecycle.activate" | "user.lifecycle.reactivate" | "user.lifecycle.unsuspend" => 2,
        "user.account.update_password" => 3,
        "user.account.reset_password" => 4,
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" => 5,
        "user.lifecycle.delete"
        | "user.lifecycle.delete.initiated"
        | "user.lifecycle.delete.completed" => 6,
        "user.account.lock" => 9,
        "user.mfa.factor.activate" => 10,
        "user.mfa.factor.deactivate" | "user.mfa.factor.reset_all" => 11,
        // OCSF 1.3 Account Change has no group activity; the group is named in `unmapped`.
        "group.user_membership.add" | "group.user_membership.remove" => 99,
        _ => return None,
    })
}

fn authentication(e: &Value, activity: u8, event_type: &str) -> Draft {
    let (status_id, status) = outcome(e);
    let who = known(&e["actor"]["alternateId"]).unwrap_or("an unknown user");
    let what = str_at(e, &["displayMessage"]).unwrap_or(event_type);
    let ctx = &e["authenticationContext"];
    let mut d = Draft::new(
        Class::Authentication,
        activity,
        format!("{what}: {who} ({})", status.to_lowercase()),
    )
    // A sign-in attempt for a login Okta does not know has no actor; OCSF still needs a user.
    .field(
        "user",
        match user(&e["actor"]) {
            Value::Null => json!({"name": "unknown"}),
            u => u,
        },
    )
    .field("status_id", json!(status_id))
    .field("status", json!(status))
    .field("status_detail", e["outcome"]["reason"].clone())
    .field("src_endpoint", src_endpoint(e))
    .field("http_request", http_request(e))
    .field(
        "session",
        known(&ctx["externalSessionId"]).map_or(Value::Null, |s| json!({ "uid": s })),
    )
    .field("service", json!({"name": "Okta"}))
    .unmapped("credential_type", ctx["credentialType"].clone())
    .unmapped("credential_provider", ctx["credentialProvider"].clone());
    if event_type == "user.authentication.auth_via_mfa" {
        d = d.field("is_mfa", json!(true));
    }
    d
}

fn account_change(e: &Value, activity: u8) -> Draft {
    // The account changed is the User target; the actor when the user acted on itself.
    let target = targets(e, "User").next().unwrap_or(&e["actor"]);
    let group = targets(e, "UserGroup").next();
    let who = known(&target["alternateId"]).unwrap_or("an unknown user");
    let what = str_at(e, &["displayMessage"]).unwrap_or("Okta account change");
    let message = match group.and_then(|g| str_at(g, &["displayName"])) {
        Some(g) => format!("{what}: {who} ({g})"),
        None => format!("{what}: {who}"),
    };
    let (status_id, status) = outcome(e);
    Draft::new(Class::AccountChange, activity, message)
        .field("user", user(target))
        .field("actor", actor(e))
        .field("status_id", json!(status_id))
        .field("status", json!(status))
        .field("src_endpoint", src_endpoint(e))
        .field("http_request", http_request(e))
        .unmapped(
            "group",
            group.map_or(Value::Null, |g| {
                ocsf::compact(json!({"uid": g["id"], "name": g["displayName"]}))
            }),
        )
        .unmapped("factor", e["debugContext"]["debugData"]["factor"].clone())
}

/// Okta's threat detections and end users' reports of suspicious activity: new findings.
fn finding(e: &Value, event_type: &str) -> Draft {
    let title = str_at(e, &["displayMessage"]).unwrap_or(event_type);
    let uid = str_at(e, &["uuid"]).unwrap_or(event_type);
    let debug = &e["debugContext"]["debugData"];
    let desc = str_at(e, &["outcome", "reason"])
        .map(str::to_string)
        .or_else(|| reported(debug));
    let info = json!({
        "uid": uid,
        "title": title,
        "desc": desc,
        "types": [event_type],
        "created_time": at(e, &["published"]).and_then(ocsf::time_of),
    });
    let actor = user(&e["actor"]);
    let src = src_endpoint(e);
    let who = known(&e["actor"]["alternateId"]).or(str_at(&src, &["ip"]));
    let message = match who {
        Some(w) => format!("{title}: {w}"),
        None => title.to_string(),
    };
    // Who and where from, as the finding's evidence.
    let mut evidence = serde_json::Map::new();
    if !actor.is_null() {
        evidence.insert("actor".into(), json!({ "user": actor }));
    }
    if !src.is_null() {
        evidence.insert("src_endpoint".into(), src);
    }
    Draft::new(Class::DetectionFinding, 1, message)
        .field("finding_info", ocsf::compact(info))
        .field("status_id", json!(1))
        .field("status", json!("New"))
        .field("resources", resources(e))
        .field(
            "evidences",
            if evidence.is_empty() {
                Value::Null
            } else {
                json!([evidence])
            },
        )
        .unmapped("threat_detections", debug["threatDetections"].clone())
}

/// Every other System Log event: API Activity by the verb at the end of its type.
fn api_activity(e: &Value, event_type: &str) -> Draft {
    let activity = match event_type.rsplit('.').next() {
        Some("create" | "add" | "grant" | "assign") => 1,
        Some("read" | "access" | "view") => 2,
        Some("update" | "change" | "modify") => 3,
        Some("delete" | "remove" | "revoke" | "unassign") => 4,
        _ => 99,
    };
    let (status_id, status) = outcome(e);
    let what = str_at(e, &["displayMessage"]).unwrap_or(event_type);
    let who = known(&e["actor"]["alternateId"]).unwrap_or("an unknown actor");
    let src = src_endpoint(e);
    Draft::new(Class::ApiActivity, activity, format!("{what} by {who}"))
        .field("actor", actor(e))
        .field("api", json!({"operation": event_type}))
        .field("src_endpoint", src)
        .field("http_request", http_request(e))
        .field("status_id", json!(status_id))
        .field("status", json!(status))
        .field("resources", resources(e))
}

/// `outcome.result`: SUCCESS/ALLOW → 1 Success, FAILURE/DENY → 2 Failure, else 99 Other
/// (CHALLENGE, SKIPPED ...) or 0 Unknown.
fn outcome(e: &Value) -> (u8, &'static str) {
    match str_at(e, &["outcome", "result"]) {
        Some("SUCCESS" | "ALLOW") => (1, "Success"),
        Some("FAILURE" | "DENY") => (2, "Failure"),
        Some("UNKNOWN") | None => (0, "Unknown"),
        Some(_) => (99, "Other"),
    }
}

/// An Okta actor or target (`id`, `alternateId` — the login —, `displayName`) as an OCSF user.
/// Null when Okta knows nothing of it (a failed login for a name that does not exist).
fn user(a: &Value) -> Value {
    let login = known(&a["alternateId"]);
    let uid = known(&a["id"]);
    let full_name = known(&a["displayName"]);
    if login.is_none() && uid.is_none() && full_name.is_none() {
        return Value::Null;
    }
    ocsf::compact(json!({
        "uid": uid,
        "name": login,
        "full_name": full_name,
        "email_addr": login.filter(|l| l.contains('@')),
        "type": a["type"].as_str(),
    }))
}

/// The actor as OCSF `actor`: the user, or Okta itself when it names none.
fn actor(e: &Value) -> Value {
    match user(&e["actor"]) {
        Value::Null => json!({"app_name": "Okta"}),
        u => json!({ "user": u }),
    }
}

/// A string Okta gives, unless it is its placeholder `unknown`.
fn known(v: &Value) -> Option<&str> {
    v.as_str()
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("unknown"))
}

/// What an end user reported as suspicious (`debugData.suspiciousActivity*`).
fn reported(debug: &Value) -> Option<String> {
    let kind = str_at(debug, &["suspiciousActivityEventType"])?;
    let mut s = format!("The user reported a {kind} event as not theirs");
    if let Some(ip) = str_at(debug, &["suspiciousActivityEventIp"]) {
        s.push_str(&format!(" (from {ip})"));
    }
    if let Some(id) = str_at(debug, &["suspiciousActivityEventId"]) {
        s.push_str(&format!("; event {id}"));
    }
    Some(s)
}

fn src_endpoint(e: &Value) -> Value {
    let c = &e["client"];
    let Some(ip) = str_at(c, &["ipAddress"]) else {
        return Value::Null;
    };
    let g = &c["geographicalContext"];
    let location = ocsf::compact(json!({
        "city": g["city"], "country": g["country"], "region": g["state"],
    }));
    let location = match location.as_object() {
        Some(m) if !m.is_empty() => location,
        _ => Value::Null,
    };
    ocsf::compact(json!({"ip": ip, "location": location}))
}

fn http_request(e: &Value) -> Value {
    str_at(e, &["client", "userAgent", "rawUserAgent"])
        .filter(|ua| *ua != "UNKNOWN")
        .map_or(Value::Null, |ua| json!({ "user_agent": ua }))
}

fn targets<'v>(e: &'v Value, kind: &'v str) -> impl Iterator<Item = &'v Value> + 'v {
    e["target"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |t| str_at(t, &["type"]) == Some(kind))
}

/// An event's targets as OCSF resources.
fn resources(e: &Value) -> Value {
    let r: Vec<Value> = e["target"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            ocsf::compact(json!({"type": t["type"], "uid": known(&t["id"]),
                                 "name": known(&t["alternateId"]).or(known(&t["displayName"]))}))
        })
        .collect();
    if r.is_empty() {
        Value::Null
    } else {
        json!(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocsf::Class;
    use serde_json::json;

    crate::vendors::testkit::runner!("okta");

    use crate::vendors::testkit::ODD;

    #[test]
    fn odd_payloads_never_panic() {
        let okta = Okta::new(&VendorOptions::default());
        for odd in ODD.iter().map(|s| serde_json::from_str::<Value>(s).unwrap()).chain([
            json!({"data": {"events": {}}}),
            json!({"data": {"events": [1, null, {}]}}),
            json!({"data": {"events": [{"eventType": "user.session.start", "actor": [], "client": 5}]}}),
            json!({"data": {"events": [{"eventType": "group.user_membership.add", "target": {}}]}}),
            json!({"data": {"events": [{"eventType": "security.threat.detected", "debugContext": 1}]}}),
        ]) {
            let _ = run(&okta, &odd, &[]);
        }
    }

    #[test]
    fn each_event_of_a_batch_is_its_own_draft_with_its_uuid() {
        let okta = Okta::new(&VendorOptions::default());
        let body = json!({"data": {"events": [
            {"uuid": "a", "eventType": "user.session.start", "outcome": {"result": "FAILURE"}, "severity": "WARN"},
            {"uuid": "b", "eventType": "app.oauth2.token.grant"},
        ]}});
        let d = run(&okta, &body, &[]).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].uid.as_deref(), Some("a"));
        assert_eq!((d[0].class, d[0].severity_id), (Class::Authentication, 3));
        assert_eq!(d[0].fields["status_id"], json!(2));
        assert_eq!((d[1].class, d[1].activity_id), (Class::ApiActivity, 1));
        assert_eq!(d[1].fields["actor"], json!({"app_name": "Okta"}));
        assert!(run(&okta, &json!({"data": {}}), &[]).is_err());
    }
}
