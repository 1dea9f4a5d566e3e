//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:{timestamp}:{body}")>` with
//! `X-Slack-Request-Timestamp` (unix seconds, signed).
//!
//! **Replay id:** the Events API envelope's `event_id`, which Slack documents as unique per event
//! and keeps on retries (https://api.slack.com/types/event; the reference lists none), and the
//! signed-bytes digest; slash commands and interactivity carry none and are de-duplicated on the
//! digest.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, str_at, Class, Draft, Handshake, Input};
use crate::verify::{Descriptor, Field, Key, TimestampUnit};

pub struct Slack;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-slack-signature", "v0=")
    .signed(common::V0_TIMESTAMP_BODY)
    .timestamp(
        Field::header("x-slack-request-timestamp"),
        TimestampUnit::Seconds,
    )
    .id(Field::Body(&["event_id"]));

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Slack));

impl crate::ocsf::Normalizer for Slack {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "token": "XXYYZZ",
            "team_id": "T123ABC456",
            "type": "event_callback",
            "event_id": id,
            "event_time": ts.unix_timestamp(),
            "event": {"type": "member_joined_channel", "user": "W123ABC456", "channel": "C123ABC456"}
        })
        .to_string()
    }

    /// Slack's Events API checks a new Request URL with a signed `url_verification` event:
    /// the answer is its `challenge`.
    fn handshake(&self, input: &Input<'_>, _keys: &[Key]) -> Option<Handshake> {
        let j = input.json?;
        if j.get("type")?.as_str()? != "url_verification" {
            return None;
        }
        let challenge = j.get("challenge")?.as_str()?;
        Some(Handshake {
            content_type: "application/json",
            body: serde_json::json!({ "challenge": challenge }).to_string(),
        })
    }

    /// Events API: `event_callback` envelopes are API Activity by the event's user;
    /// `app_rate_limited` is a Base Event about the feed itself; anything else (slash commands
    /// and interactivity, which are form-encoded) a Base Event.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let Some(j) = input.json.filter(|j| j.is_object()) else {
            return Ok(vec![ocsf::base(input)]);
        };
        Ok(vec![match str_at(j, &["type"]) {
            Some("event_callback") => event_callback(j)?,
            Some("app_rate_limited") => rate_limited(j),
            _ => ocsf::base(input),
        }])
    }
}

/// Slack stopped delivering this app's events for a minute: the SIEM is missing events, so
/// Medium.
fn rate_limited(j: &Value) -> Draft {
    Draft::new(
        Class::Base,
        0,
        "Slack rate-limited the app's Events API deliveries; events of that minute were not sent",
    )
    .severity(3)
    .time(ocsf::time_of(&j["minute_rate_limited"]))
    .unmapped("team_id", j["team_id"].clone())
    .unmapped("api_app_id", j["api_app_id"].clone())
    .unmapped("minute_rate_limited", j["minute_rate_limited"].clone())
}

/// Who acted: `user` (an id, or for `user_change`/`team_join` the user object, which Slack
/// sends without naming who made the change, so the user is taken as the actor), a new
/// channel's creator, an edited message's author, or the bot.
fn actor(ev: &Value) -> Value {
    let u = &ev["user"];
    if let Some(id) = u.as_str() {
        return json!({"user": {"uid": id}});
    }
    if u.is_object() && (u["id"].is_string() || u["name"].is_string()) {
        return ocsf::compact(json!({"user": {
            "uid": u["id"].as_str(),
            "name": u["name"].as_str(),
            "full_name": u["real_name"].as_str(),
            "email_addr": str_at(u, &["profile", "email"]),
        }}));
    }
    let other = str_at(ev, &["channel", "creator"]).or(str_at(ev, &["message", "user"]));
    if let Some(id) = other {
        return json!({"user": {"uid": id}});
    }
    match str_at(ev, &["bot_id"]) {
        Some(bot) => json!({"app_uid": bot}),
        None => json!({"app_name": "slack"}),
    }
}

/// The activity from the words of the type (`member_joined_channel`, `pin_removed` ...).
fn activity_id(ty: &str, subtype: Option<&str>) -> u8 {
    match subtype {
        Some("message_deleted") => return 4,
        Some("message_changed") => return 3,
        _ => {}
    }
    let has = |words: &[&str]| ty.split('_').any(|w| words.contains(&w));
    if ty == "message" || has(&["created", "joined", "join", "added", "shared"]) {
        1
    } else if has(&["deleted", "left", "removed", "revoked", "uninstalled"]) {
        4
    } else if has(&[
        "rename",
        "change",
        "changed",
        "archive",
        "unarchive",
        "updated",
    ]) {
        3
    } else {
        99
    }
}

/// Routine workspace activity is Informational; the app losing its tokens or being removed,
/// and channels shared with other organizations, change what leaves or reaches the workspace:
/// Low.
fn severity(ty: &str) -> u8 {
    match ty {
        "tokens_revoked"
        | "app_uninstalled"
        | "shared_channel_invite_accepted"
        | "shared_channel_invite_approved"
        | "channel_shared" => 2,
        _ => 1,
    }
}

/// An Events API callback. The message text is never copied (`raw_data` keeps the body when
/// the source wants it).
fn event_callback(j: &Value) -> Result<Draft, String> {
    let ev = &j["event"];
    let ty = str_at(ev, &["type"]).ok_or("event_callback without event.type")?;
    let subtype = str_at(ev, &["subtype"]);
    let operation = match subtype {
        Some(s) => format!("{ty}.{s}"),
        None => ty.to_string(),
    };
    let actor = actor(ev);
    let channel = match &ev["channel"] {
        Value::String(id) => json!({"type": "Channel", "uid": id}),
        c @ Value::Object(_) => {
            let (uid, name) = (c["id"].as_str(), c["name"].as_str());
            if uid.is_none() && name.is_none() {
                Value::Null
            } else {
                ocsf::compact(json!({"type": "Channel", "uid": uid, "name": name}))
            }
        }
        _ => Value::Null,
    };
    let who = actor["user"]["name"]
        .as_str()
        .or(actor["user"]["uid"].as_str())
        .or(actor["app_uid"].as_str());
    let mut message = format!("Slack {operation}");
    if let Some(w) = who {
        message.push_str(&format!(" by {w}"));
    }
    if let Some(c) = channel["name"].as_str().or(channel["uid"].as_str()) {
        message.push_str(&format!(" in {c}"));
    }
    let time = ocsf::time_of(&ev["event_ts"]).or_else(|| ocsf::time_of(&j["event_time"]));
    Ok(
        Draft::new(Class::ApiActivity, activity_id(ty, subtype), message)
            .severity(severity(ty))
            .time(time)
            .field("actor", actor)
            .field("api", json!({"operation": operation}))
            .field(
                "resources",
                if channel.is_null() {
                    Value::Null
                } else {
                    json!([channel])
                },
            )
            .unmapped("team_id", j["team_id"].clone())
            .unmapped("api_app_id", j["api_app_id"].clone())
            .unmapped("enterprise_id", j["enterprise_id"].clone())
            .unmapped("channel_type", ev["channel_type"].clone())
            .unmapped("is_admin", ev["user"]["is_admin"].clone())
            .unmapped("is_owner", ev["user"]["is_owner"].clone())
            .unmapped("deleted", ev["user"]["deleted"].clone())
            .unmapped("is_ext_shared_channel", j["is_ext_shared_channel"].clone()),
    )
}
