//! SyVault (SIEM event streaming): `X-VF-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! The body carries `event_id` (de-duplicated on) and `timestamp` (ISO-8601 with milliseconds),
//! both covered by the signature.
//!
//! Normalization: one audit event per delivery, `event_type` deciding the class:
//! - `user.login.*` and `user.logout`: Authentication (3002). The outcome is the last word
//!   (`success`/`failed`/...); `mfa` anywhere in the type sets `is_mfa`.
//! - user lifecycle (`user.created`, `.enabled`, `.password.changed`, `.password.reset`,
//!   `.disabled`, `.deleted`, `.role.assigned`/`.removed`, `.locked`, `.mfa.enabled`/`.disabled`):
//!   Account Change (3001), the changed account from `target`, the one acting from `actor`.
//! - anything else (vault items, shares, settings, API keys...): API Activity (6003), the
//!   activity from the verb that ends the type.
//!
//! `event_id` is already the request's event id (`metadata.uid`). SyVault sends no severity:
//! these are routine audit records, so all are Informational (1) unless the body has a
//! `severity`; a SIEM rule decides what a failed login or a deleted user means.
//!
//! **Replay id:** the body's `event_id`, which SyVault documents for its at-least-once deliveries
//! (the same on a retry), and the body digest.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, Class, Draft, Input};
use crate::verify::{Descriptor, Extra, Field, TimestampUnit};

pub struct Syvault;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-vf-signature-256", "sha256=")
    .timestamp(Field::Body(&["timestamp"]), TimestampUnit::Iso8601)
    .id(Field::Body(&["event_id"]))
    .extra(&[("x-vf-webhook-version", Extra::Fixed("1"))]);

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Syvault));

impl crate::ocsf::Normalizer for Syvault {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event_id": id,
            "event_type": "user.login.failed",
            "timestamp": common::iso_millis(ts),
            "actor": {"user_id": "usr_a1b2c3d4e5f6", "email": "alice@acme.com", "ip": "203.0.113.7",
                      "user_agent": "Mozilla/5.0"},
            "target": {"type": "session", "id": "sess_x1y2z3w4v5u6"}
        })
        .to_string()
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let body = input.json_object()?;
        let event_type =
            ocsf::str_at(body, &["event_type"]).ok_or("no event_type in the SyVault payload")?;
        let words: Vec<&str> = event_type.split(['.', '_']).collect();
        let d = if let Some(logon) = logon(&words) {
            authentication(body, event_type, &words, logon)
        } else if let Some(activity) = account_change(&words) {
            account(body, event_type, activity)
        } else {
            api_activity(body, event_type, &words)
        };
        let severity = body
            .get("severity")
            .and_then(ocsf::severity_of)
            .unwrap_or(1);
        // The target goes to `session`, `resources` or the changed `user` when it is one.
        let placed = d.fields.contains_key("session")
            || d.fields.contains_key("resources")
            || (d.class == Class::AccountChange && target_is_user(body));
        let target = body
            .get("target")
            .filter(|t| !placed && t.as_object().is_some_and(|o| !o.is_empty()));
        Ok(vec![d
            .severity(severity)
            .time(body.get("timestamp").and_then(ocsf::time_of))
            .unmapped("event_type", json!(event_type))
            .unmapped("target", target.cloned().unwrap_or(Value::Null))
            .unmapped("context", leftover_context(body))])
    }
}

/// `Some(true)` for a logon, `Some(false)` for a logoff, `None` for other types.
fn logon(words: &[&str]) -> Option<bool> {
    match words {
        ["user", "login", ..] | ["login", ..] | ["auth", "login", ..] => Some(true),
        ["user", "logout", ..] | ["logout", ..] | ["auth", "logout", ..] => Some(false),
        _ => None,
    }
}

const FAILED: [&str; 7] = [
    "failed", "failure", "fail", "denied", "rejected", "blocked", "locked",
];
const SUCCEEDED: [&str; 6] = [
    "success",
    "succeeded",
    "successful",
    "ok",
    "passed",
    "verified",
];

/// A field of `actor`, else of `context` (SyVault puts the client's address in either).
fn client<'a>(body: &'a Value, keys: &[&str]) -> Option<&'a str> {
    ["actor", "context"]
        .iter()
        .flat_map(|o| keys.iter().map(move |k| (o, k)))
        .find_map(|(o, k)| ocsf::str_at(body, &[o, k]))
}

/// An OCSF `user` from a SyVault actor or target object.
fn user_of(v: Option<&Value>) -> Value {
    let Some(v) = v else { return Value::Null };
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k)?.as_str())
            .map(Value::from)
    };
    let email = pick(&["email", "email_addr"]);
    let mut user = Map::new();
    for (k, val) in [
        ("uid", pick(&["user_id", "id", "uid"])),
        (
            "name",
            pick(&["name", "username", "display_name"]).or(email.clone()),
        ),
        ("email_addr", email),
    ] {
        if let Some(val) = val {
            user.insert(k.into(), val);
        }
    }
    if user.is_empty() {
        Value::Null
    } else {
        Value::Object(user)
    }
}

/// OCSF `actor`: the user, or SyVault itself when the event names nobody.
fn as_actor(user: Value) -> Value {
    match user {
        Value::Null => json!({"app_name": "SyVault"}),
        u => json!({ "user": u }),
    }
}

fn actor_of(v: Option<&Value>) -> Value {
    as_actor(user_of(v))
}

fn endpoint(body: &Value) -> Value {
    client(body, &["ip", "ip_address", "source_ip"]).map_or(Value::Null, |ip| json!({"ip": ip}))
}

fn user_agent(body: &Value) -> Value {
    client(body, &["user_agent"]).map_or(Value::Null, |ua| json!({"user_agent": ua}))
}

fn authentication(body: &Value, event_type: &str, words: &[&str], logon: bool) -> Draft {
    let outcome = words.last().copied().unwrap_or("");
    let (status_id, status) = if words.iter().any(|w| FAILED.contains(w)) {
        (2, "Failure")
    } else if !logon || SUCCEEDED.contains(&outcome) || words.len() <= 2 {
        (1, "Success")
    } else {
        // `user.login.mfa_challenge` and the like: a step, not an outcome.
        (99, "Other")
    };
    let is_mfa = words
        .iter()
        .any(|w| ["mfa", "2fa", "totp", "webauthn"].contains(w))
        || ocsf::at(body, &["context", "mfa"]) == Some(&Value::Bool(true));
    let who = user_of(body.get("actor"));
    let name = ocsf::str_at(&who, &["email_addr"])
        .or(ocsf::str_at(&who, &["uid"]))
        .unwrap_or("unknown user");
    let message = match (logon, status_id) {
        (_, 99) => format!("SyVault {event_type} for {name}"),
        (true, _) => format!("SyVault sign-in {} for {name}", status.to_lowercase()),
        (false, _) => format!("SyVault sign-out for {name}"),
    };
    // Why it failed when SyVault says; for a step, which step.
    let detail = ["reason", "failure_reason", "error"]
        .iter()
        .find_map(|k| ocsf::str_at(body, &["context", k]).or(ocsf::str_at(body, &[k])))
        .or(if status_id == 99 {
            event_type.rsplit('.').next()
        } else {
            None
        });
    let session = match ocsf::str_at(body, &["target", "type"]) {
        Some("session") => {
            ocsf::str_at(body, &["target", "id"]).map_or(Value::Null, |id| json!({"uid": id}))
        }
        _ => Value::Null,
    };
    Draft::new(Class::Authentication, if logon { 1 } else { 2 }, message)
        .field(
            "user",
            if who.is_null() {
                json!({"name": "unknown"})
            } else {
                who
            },
        )
        .field("status_id", json!(status_id))
        .field("status", json!(status))
        .field("status_detail", detail.map_or(Value::Null, Value::from))
        .field("is_mfa", if is_mfa { json!(true) } else { Value::Null })
        .field("src_endpoint", endpoint(body))
        .field("http_request", user_agent(body))
        .field("session", session)
        // The service signed in to (OCSF asks for it or a destination endpoint).
        .field("service", json!({"name": "syvault"}))
}

/// The Account Change activity of a user lifecycle type.
fn account_change(words: &[&str]) -> Option<u8> {
    let ["user", rest @ ..] = words else {
        return None;
    };
    Some(match rest {
        ["created" | "invited" | "provisioned"] => 1,
        ["enabled" | "activated" | "reactivated" | "unlocked" | "restored"] => 2,
        ["password", "changed" | "updated"] => 3,
        ["password", "reset", ..] => 4,
        ["disabled" | "deactivated" | "suspended"] => 5,
        ["deleted" | "removed" | "deprovisioned"] => 6,
        ["role" | "group" | "policy", "assigned" | "added" | "attached"] => 7,
        ["role" | "group" | "policy", "removed" | "revoked" | "detached"] => 8,
        ["locked"] => 9,
        ["mfa", "enabled" | "enrolled" | "added"] => 10,
        ["mfa", "disabled" | "removed" | "reset"] => 11,
        _ => return None,
    })
}

fn target_is_user(body: &Value) -> bool {
    body.get("target").is_some_and(Value::is_object)
        && matches!(ocsf::str_at(body, &["target", "type"]), Some("user") | None)
}

fn account(body: &Value, event_type: &str, activity: u8) -> Draft {
    // The account changed is the target when it is a user; a self-service change (password,
    // MFA) may name only the actor.
    let user = if target_is_user(body) {
        user_of(body.get("target"))
    } else {
        user_of(body.get("actor"))
    };
    let user = if user.is_null() {
        json!({"name": "unknown"})
    } else {
        user
    };
    let name = ocsf::str_at(&user, &["email_addr"])
        .or(ocsf::str_at(&user, &["name"]))
        .or(ocsf::str_at(&user, &["uid"]))
        .unwrap_or("unknown")
        .to_string();
    // The role or group attached or detached (activities 7 and 8).
    let policy = ["role", "group", "policy"]
        .iter()
        .find_map(|k| ocsf::str_at(body, &["target", k]).or(ocsf::str_at(body, &["context", k])))
        .filter(|_| matches!(activity, 7 | 8))
        .map_or(Value::Null, |p| json!({"name": p}));
    Draft::new(
        Class::AccountChange,
        activity,
        format!("SyVault {event_type}: {name}"),
    )
    .field("user", user)
    .field("actor", actor_of(body.get("actor")))
    .field("policy", policy)
    .field("src_endpoint", endpoint(body))
    .field("http_request", user_agent(body))
}

/// The API Activity of a type by its last verb: 1 Create, 2 Read, 3 Update, 4 Delete, 99 Other.
fn api_verb(words: &[&str]) -> u8 {
    match words.last().copied().unwrap_or("") {
        "created" | "added" | "imported" | "generated" | "issued" => 1,
        "viewed" | "read" | "accessed" | "revealed" | "copied" | "exported" | "downloaded"
        | "listed" => 2,
        "updated" | "changed" | "modified" | "shared" | "unshared" | "moved" | "renamed"
        | "restored" | "rotated" | "enabled" | "disabled" => 3,
        "deleted" | "removed" | "revoked" | "purged" | "trashed" => 4,
        _ => 99,
    }
}

fn api_activity(body: &Value, event_type: &str, words: &[&str]) -> Draft {
    let actor = user_of(body.get("actor"));
    let actor = if actor.is_null() {
        json!({"name": "unknown"})
    } else {
        actor
    };
    let name = ocsf::str_at(&actor, &["email_addr"])
        .or(ocsf::str_at(&actor, &["name"]))
        .or(ocsf::str_at(&actor, &["uid"]))
        .unwrap_or("unknown")
        .to_string();
    let src = endpoint(body);
    let resource = body.get("target").and_then(Value::as_object).map(|t| {
        let mut r = Map::new();
        for (k, key) in [("type", "type"), ("uid", "id"), ("name", "name")] {
            if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                r.insert(k.into(), v.clone());
            }
        }
        json!([r])
    });
    Draft::new(
        Class::ApiActivity,
        api_verb(words),
        format!("SyVault {event_type} by {name}"),
    )
    .field("actor", as_actor(actor))
    .field("api", json!({"operation": event_type}))
    .field("src_endpoint", src)
    .field("http_request", user_agent(body))
    .field("resources", resource.unwrap_or(Value::Null))
}

/// `context` without what the mapping placed (address, user agent, reason).
fn leftover_context(body: &Value) -> Value {
    let Some(ctx) = body.get("context").and_then(Value::as_object) else {
        return Value::Null;
    };
    const PLACED: [&str; 8] = [
        "ip",
        "ip_address",
        "source_ip",
        "user_agent",
        "reason",
        "failure_reason",
        "error",
        "mfa",
    ];
    let rest: Map<String, Value> = ctx
        .iter()
        .filter(|(k, _)| !PLACED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        Value::Null
    } else {
        Value::Object(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!(Syvault, "syvault");

    #[test]
    fn odd_bodies_map_or_fail_without_panicking() {
        for body in [
            json!(null),
            json!({}),
            json!({"event_type": ""}),
            json!({"event_type": "..."}),
            json!({"event_type": "user.login", "actor": "alice", "context": [1]}),
            json!({"event_type": "user.created", "target": 5, "actor": {"email": 3}}),
            json!({"event_type": "x.y.deleted", "target": {"type": "item", "id": {}}}),
        ] {
            let _ = run(body);
        }
        assert!(run(json!([1, 2])).is_err());
    }

    #[test]
    fn event_types_choose_the_class_and_activity() {
        let cases = [
            ("user.login.success", Class::Authentication, 1),
            ("user.login.failed", Class::Authentication, 1),
            ("user.logout", Class::Authentication, 2),
            ("user.password.reset", Class::AccountChange, 4),
            ("user.disabled", Class::AccountChange, 5),
            ("user.deleted", Class::AccountChange, 6),
            ("user.role.assigned", Class::AccountChange, 7),
            ("user.locked", Class::AccountChange, 9),
            ("vault.item.deleted", Class::ApiActivity, 4),
            ("api_key.created", Class::ApiActivity, 1),
            ("user.profile.updated", Class::ApiActivity, 3),
        ];
        for (t, class, activity) in cases {
            let d = &run(json!({"event_type": t, "actor": {"email": "a@b.c"}})).unwrap()[0];
            assert_eq!((d.class, d.activity_id), (class, activity), "{t}");
        }
        let d = &run(json!({"event_type": "user.login.failed"})).unwrap()[0];
        assert_eq!(d.fields["status_id"], json!(2));
    }
}
