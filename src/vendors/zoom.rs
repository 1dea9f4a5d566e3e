//! Zoom: `x-zm-signature: v0=<hex HMAC-SHA256("v0:{timestamp}:{body}")>` with
//! `x-zm-request-timestamp` (unix seconds, signed). No id header: the signed bytes' digest is
//! the replay key.
//!
//! **Replay id:** the signed-bytes digest (`v0:{timestamp}:{body}`). Zoom documents no delivery
//! id.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, at, str_at, Class, Draft, Handshake, Input};
use crate::verify::{Descriptor, Field, Key, MacAlgorithm, TimestampUnit};

pub struct Zoom;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-zm-signature", "v0=")
    .signed(common::V0_TIMESTAMP_BODY)
    .timestamp(
        Field::header("x-zm-request-timestamp"),
        TimestampUnit::Seconds,
    );

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Zoom));

const SIG: &str = "x-zm-signature";
const TS: &str = "x-zm-request-timestamp";

impl crate::ocsf::Normalizer for Zoom {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": "user.signed_in",
            "event_ts": ts.unix_timestamp() * 1000,
            "payload": {"account_id": "AAAAAABBBB", "object": {"id": id, "email": "alice@acme.com",
                        "client_type": "browser", "ip_address": "203.0.113.7"}}
        })
        .to_string()
    }

    /// Sign-ins and sign-outs are Authentication, user lifecycle events Account Change, the rest
    /// (meetings, recordings, ...) API Activity. Zoom carries no severity: all are routine audit
    /// events, Informational.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json.ok_or("the body is not JSON")?;
        let event = str_at(j, &["event"]).ok_or("no `event`")?;
        let payload = &j["payload"];
        let d = match event {
            "user.signed_in" => sign_in_out(payload, 1, "signed in"),
            "user.signed_out" => sign_in_out(payload, 2, "signed out"),
            _ => match account_activity(event) {
                Some(activity) => account_change(payload, event, activity)?,
                None => api_activity(payload, event),
            },
        };
        Ok(vec![d
            .severity(1)
            .time(at(j, &["event_ts"]).and_then(ocsf::time_of))
            .unmapped("event", json!(event))
            .unmapped("account_id", payload["account_id"].clone())])
    }

    /// Zoom validates an endpoint with a signed `endpoint.url_validation` event: the answer is
    /// the `plainToken` and its HMAC-SHA256 in hex under the secret token that signed the
    /// request.
    fn handshake(&self, input: &Input<'_>, keys: &[Key]) -> Option<Handshake> {
        let j = input.json?;
        if j.get("event")?.as_str()? != "endpoint.url_validation" {
            return None;
        }
        let plain = j.get("payload")?.get("plainToken")?.as_str()?;
        // The request verified, so one key signed it; find which (the answer must use it).
        let sig = common::strip_prefix_ci(input.header(SIG)?, "v0=")?;
        let ts = input.header(TS)?;
        let key = keys.iter().find(|k| {
            let expected = common::hex_mac(
                k,
                MacAlgorithm::Sha256,
                &[b"v0:", ts.as_bytes(), b":", input.body],
            );
            bool::from(crate::verify::mac::ct_eq(
                expected.as_bytes(),
                sig.to_ascii_lowercase().as_bytes(),
            ))
        })?;
        let encrypted = common::hex_mac(key, MacAlgorithm::Sha256, &[plain.as_bytes()]);
        Some(Handshake {
            content_type: "application/json",
            body: serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted })
                .to_string(),
        })
    }
}

fn sign_in_out(payload: &Value, activity: u8, what: &str) -> Draft {
    let o = &payload["object"];
    let user = user(o);
    let who = str_at(o, &["email"])
        .or(str_at(o, &["id"]))
        .unwrap_or("a user");
    let ip = str_at(o, &["ip_address"]);
    Draft::new(
        Class::Authentication,
        activity,
        format!("Zoom user {what}: {who}"),
    )
    .field("user", user)
    // Zoom only reports sign-ins that succeeded.
    .field("status_id", json!(1))
    .field("status", json!("Success"))
    .field(
        "src_endpoint",
        ip.map_or(Value::Null, |ip| json!({ "ip": ip })),
    )
    .field("service", json!({"name": "Zoom"}))
    .unmapped("client_type", o["client_type"].clone())
    .unmapped("client_version", o["version"].clone())
    .unmapped("login_type", o["login_type"].clone())
}

/// The Account Change activity of a `user.*` lifecycle event.
fn account_activity(event: &str) -> Option<u8> {
    Some(match event {
        "user.created" => 1,
        "user.activated" => 2,
        "user.deactivated" => 5,
        "user.deleted" | "user.disassociated" => 6,
        "user.updated" => 99,
        _ => return None,
    })
}

fn account_change(payload: &Value, event: &str, activity: u8) -> Result<Draft, String> {
    let o = &payload["object"];
    let who = str_at(o, &["email"])
        .or(str_at(o, &["id"]))
        .ok_or("no `payload.object` user")?;
    let verb = event.trim_start_matches("user.");
    let mut d = Draft::new(
        Class::AccountChange,
        activity,
        format!("Zoom user {verb}: {who}"),
    )
    .field("user", user(o))
    .field("actor", actor(payload).unwrap_or(Value::Null));
    if event == "user.updated" {
        // What changed: the names of the fields in `object` besides the id.
        let changed: Vec<&String> = o
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "id").collect())
            .unwrap_or_default();
        d = d.unmapped("changed_fields", json!(changed));
    }
    Ok(d.unmapped("creation_type", payload["creation_type"].clone()))
}

fn api_activity(payload: &Value, event: &str) -> Draft {
    let o = &payload["object"];
    let activity = match event.rsplit('.').next() {
        Some("created") => 1,
        Some("updated") => 3,
        Some("deleted") | Some("trashed") => 4,
        _ => 99,
    };
    let kind = event.split('.').next().unwrap_or(event);
    let name = str_at(o, &["topic"]).or(str_at(o, &["name"]));
    // Meeting ids are numbers; their `uuid` names one occurrence.
    let uid = match &o["id"] {
        Value::Number(n) => Some(n.to_string()),
        v => v.as_str().or(str_at(o, &["uuid"])).map(str::to_string),
    };
    let resources = uid.map(|id| {
        json!([ocsf::compact(
            json!({"type": kind, "uid": id, "name": name})
        )])
    });
    let message = match name {
        Some(n) => format!("Zoom {event}: {n}"),
        None => format!("Zoom {event}"),
    };
    Draft::new(Class::ApiActivity, activity, message)
        .field(
            "actor",
            actor(payload).unwrap_or_else(|| json!({"app_name": "Zoom"})),
        )
        .field("api", json!({"operation": event}))
        .field("resources", resources.unwrap_or(Value::Null))
        .unmapped("host_id", o["host_id"].clone())
}

/// A Zoom user object (`id`, `email`, `first_name`, `last_name`) as an OCSF user.
fn user(o: &Value) -> Value {
    let full = [str_at(o, &["first_name"]), str_at(o, &["last_name"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let email = str_at(o, &["email"]).and_then(ocsf::email);
    let uid = str_at(o, &["id"]);
    // OCSF needs a name or a uid; Zoom always sends one, but a payload without either still
    // names someone.
    let name = email.or(uid.is_none().then_some("unknown"));
    ocsf::compact(json!({
        "uid": uid,
        "email_addr": email,
        "name": name,
        "full_name": (!full.is_empty()).then_some(full),
    }))
}

/// The operator who acted (`operator` is an email, `operator_id` a user id), when given.
fn actor(payload: &Value) -> Option<Value> {
    let email = str_at(payload, &["operator"]);
    let uid = str_at(payload, &["operator_id"]);
    (email.is_some() || uid.is_some())
        .then(|| ocsf::compact(json!({"user": {"email_addr": email, "name": email, "uid": uid}})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    crate::vendors::testkit::runner!("zoom");

    use crate::vendors::testkit::ODD;

    #[test]
    fn odd_payloads_never_panic() {
        for odd in ODD.iter().map(|s| serde_json::from_str::<Value>(s).unwrap()).chain([
            json!({"event": "user.signed_in"}),
            json!({"event": "user.created", "payload": {"object": []}}),
            json!({"event": "user.updated", "payload": {"object": "x"}}),
            json!({"event": "meeting.started", "payload": {"object": {"id": [1]}}, "event_ts": "soon"}),
        ]) {
            let _ = run(&Zoom, &odd, &[]);
        }
    }

    #[test]
    fn a_user_event_without_a_user_is_not_mapped() {
        let d = run(&Zoom, &json!({"event": "user.deleted", "payload": {}}), &[]);
        assert!(d.is_err());
        let d = run(
            &Zoom,
            &json!({"event": "recording.completed", "payload": {}}),
            &[],
        )
        .unwrap();
        assert_eq!((d[0].class, d[0].activity_id), (Class::ApiActivity, 99));
    }
}
