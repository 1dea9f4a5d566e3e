//! Microsoft Graph change notifications (`vendor = "msgraph"`). Graph signs nothing:
//!
//! - **Subscription validation**: when a subscription is created, Graph POSTs to the
//!   notification URL with `?validationToken=<token>` and expects the token back as
//!   `text/plain` with `200` within 10 seconds. It carries no secret, so it is answered before
//!   verification ([`super::Scheme::pre_verify_handshake`]), on `msgraph` sources only, on POST
//!   only, and never spooled.
//! - **Notifications**: a JSON `{"value": [...]}` whose every item repeats the `clientState`
//!   chosen at subscription time. Each item's `clientState` is compared in constant time with
//!   the source's `secrets` (any may match: rotation); a notification in which any item does
//!   not match, or has none, is `401`. At most [`MAX_ITEMS`] items. Rich notifications'
//!   `validationTokens` (JWTs) are not checked: `clientState` is what authenticates.
//! - The `clientState` values are replaced by `"[redacted]"` in what is handed on (`raw_data`,
//!   `unmapped`): they are the source's secret ([`super::Scheme::scrub`]).
//!
//! **Replay id: the body digest.** The reference (inbound-schemes.md) documents no delivery id
//! for Graph; an item's `id` is optional and not documented as the same on retries. No
//! timestamp is signed, so no window applies.
//!
//! Normalization: one event per `value[]` item, each with its own item (scrubbed) as
//! `raw_data` when the notification carries several (see [`crate::ocsf`]).
//! - A resource change (`changeType` `created`, `updated`, `deleted`): API Activity (6003),
//!   Create (1) / Update (3) / Delete (4), Informational: Graph reports that a resource
//!   changed, not a threat. `api.operation` is the change type; the changed resource
//!   (`resourceData.id`, else the `resource` path) with its `@odata.type` is in `resources`;
//!   the actor is the Graph application (`app_name`), since notifications name no user. The
//!   item's `id` is `metadata.uid` when given; `subscriptionId`, `tenantId` and
//!   `subscriptionExpirationDateTime` go under `unmapped`.
//! - A lifecycle notification (`lifecycleEvent`): Base Event about the subscription itself,
//!   Low (2) for `subscriptionRemoved` and `missed` (notifications were or will be lost: a
//!   coverage gap), Informational for `reauthorizationRequired` and others.

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ocsf::{str_at, Class, Draft, Handshake, Input};
use crate::verify::{Check, Claim, Facts, Key, Rejection, Secret, Unverified};

pub struct MsGraph;

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| Box::new(MsGraph));

/// The most `value[]` items one notification may carry; more is malformed.
pub const MAX_ITEMS: usize = 10_000;
/// The longest `validationToken` echoed.
const MAX_VALIDATION_TOKEN: usize = 4096;
const REDACTED: &str = "[redacted]";

/// The `validationToken` of a Graph subscription check, if the query has a sane one.
fn validation_token(query: Option<&str>) -> Option<String> {
    let token = form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "validationToken")?
        .1
        .into_owned();
    (!token.is_empty()
        && token.len() <= MAX_VALIDATION_TOKEN
        && !token.chars().any(char::is_control))
    .then_some(token)
}

/// The `clientState` of every item, or why there is none to check.
fn client_states(body: &[u8]) -> Result<Vec<Vec<u8>>, Rejection> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|_| Rejection::malformed("the notification is not JSON"))?;
    let items = json
        .get("value")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or(Rejection::malformed(
            "the notification has no value[] items",
        ))?;
    if items.len() > MAX_ITEMS {
        return Err(Rejection::malformed("too many notification items"));
    }
    items
        .iter()
        .map(|item| match item.get("clientState") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_bytes().to_vec()),
            None | Some(Value::Null) => Err(Rejection::missing("an item has no clientState")),
            Some(_) => Err(Rejection::malformed(
                "an item's clientState is not a string",
            )),
        })
        .collect()
}

/// Graph takes a `clientState` of at most 128 characters.
const MAX_CLIENT_STATE: usize = 128;

impl crate::verify::Scheme for MsGraph {
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        if secret.expose().len() > MAX_CLIENT_STATE {
            return Err(format!(
                "a Graph clientState is at most {MAX_CLIENT_STATE} characters"
            ));
        }
        Ok(Key::plain(secret.expose()))
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        Ok(Claim {
            check: Check::Tokens {
                presented: client_states(&req.body)?,
            },
        })
    }

    fn facts(&self, _req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts::default())
    }

    fn scrub(&self, json: &mut Value) -> bool {
        let mut changed = false;
        if let Some(items) = json.get_mut("value").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(cs) = item.get_mut("clientState") {
                    *cs = Value::String(REDACTED.into());
                    changed = true;
                }
            }
        }
        changed
    }

    /// Graph puts the secret in the body: the headers carry nothing.
    fn sign(
        &self,
        _key: &Key,
        _body: &[u8],
        _ts: OffsetDateTime,
        _id: &str,
    ) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl crate::ocsf::Normalizer for MsGraph {
    /// A notification as Graph sends it; its `clientState` is the first test secret
    /// (`support::secret_for(msgraph, 1)`), since a body cannot know the source's secret.
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        sample(ts, id, "msgraph-secret-1")
    }

    fn pre_verify_handshake(&self, method: &http::Method, req: &Unverified) -> Option<Handshake> {
        if method != http::Method::POST {
            return None;
        }
        Some(Handshake {
            content_type: "text/plain; charset=utf-8",
            body: validation_token(req.query.as_deref())?,
        })
    }

    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let items = input
            .object()?
            .get("value")
            .and_then(Value::as_array)
            .ok_or("no value[] in the Graph notification")?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(n, i)| item(i).item(n))
            .collect())
    }

    fn fan_out(&self, _input: &Input<'_>) -> Option<crate::ocsf::FanOut> {
        Some(crate::ocsf::FanOut::every(&["value"]))
    }
}

/// A Graph notification with one item for a changed message, carrying `client_state`.
pub fn sample(ts: OffsetDateTime, id: &str, client_state: &str) -> String {
    json!({"value": [{
        "id": id,
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": super::common::rfc3339(ts + time::Duration::hours(1)),
        "clientState": client_state,
        "changeType": "created",
        "resource": "Users/1a2b3c4d/Messages/AAMkAGUwNjQ4ZjIxAAA=",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": "Users/1a2b3c4d/Messages/AAMkAGUwNjQ4ZjIxAAA=",
            "id": "AAMkAGUwNjQ4ZjIxAAA="
        }
    }]})
    .to_string()
}

/// One `value[]` item as an event.
fn item(v: &Value) -> Draft {
    let d = match str_at(v, &["lifecycleEvent"]) {
        Some(lifecycle) => lifecycle_event(v, lifecycle),
        None => change(v),
    };
    let d = d
        .unmapped("subscription_id", v["subscriptionId"].clone())
        .unmapped("tenant_id", v["tenantId"].clone())
        .unmapped(
            "subscription_expiration",
            v["subscriptionExpirationDateTime"].clone(),
        );
    match str_at(v, &["id"]) {
        Some(id) => d.uid(id),
        None => d,
    }
}

fn change(v: &Value) -> Draft {
    let change = str_at(v, &["changeType"]).unwrap_or("unknown");
    let activity = match change {
        "created" => 1,
        "updated" => 3,
        "deleted" => 4,
        _ => 99,
    };
    let resource = str_at(v, &["resource"]);
    let mut r = serde_json::Map::new();
    if let Some(uid) = str_at(v, &["resourceData", "id"]).or(resource) {
        r.insert("uid".into(), uid.into());
    }
    if let Some(path) = resource {
        r.insert("name".into(), path.into());
    }
    if let Some(t) = str_at(v, &["resourceData", "@odata.type"]) {
        r.insert("type".into(), t.trim_start_matches('#').into());
    }
    let message = match resource {
        Some(path) => format!("Microsoft Graph: {change} {path}"),
        None => format!("Microsoft Graph: {change}"),
    };
    Draft::new(Class::ApiActivity, activity, message)
        .severity(1)
        .field("actor", json!({"app_name": "Microsoft Graph"}))
        .field("api", json!({"operation": change}))
        .field(
            "resources",
            if r.is_empty() {
                Value::Null
            } else {
                json!([r])
            },
        )
}

fn lifecycle_event(v: &Value, lifecycle: &str) -> Draft {
    let severity = match lifecycle {
        "subscriptionRemoved" | "missed" => 2,
        _ => 1,
    };
    let subscription = str_at(v, &["subscriptionId"]).unwrap_or("unknown");
    Draft::new(
        Class::Base,
        0,
        format!("Microsoft Graph subscription {subscription}: {lifecycle}"),
    )
    .severity(severity)
    .unmapped("lifecycle_event", json!(lifecycle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_must_carry_a_client_state() {
        let ok = client_states(br#"{"value":[{"clientState":"a"},{"clientState":"b"}]}"#).unwrap();
        assert_eq!(ok, vec![b"a".to_vec(), b"b".to_vec()]);
        for (body, reason) in [
            (
                &br#"{"value":[{"clientState":"a"},{}]}"#[..],
                crate::verify::Reason::MissingHeader,
            ),
            (br#"{"value":[]}"#, crate::verify::Reason::MalformedHeader),
            (
                br#"{"value":[{"clientState":7}]}"#,
                crate::verify::Reason::MalformedHeader,
            ),
            (b"not json", crate::verify::Reason::MalformedHeader),
        ] {
            assert_eq!(client_states(body).unwrap_err().reason, reason);
        }
    }

    #[test]
    fn validation_tokens_are_bounded() {
        assert_eq!(
            validation_token(Some("validationToken=a%20b")).as_deref(),
            Some("a b")
        );
        assert_eq!(validation_token(Some("validationToken=")), None);
        assert_eq!(validation_token(Some("validationToken=a%0Ab")), None);
        let long = format!("validationToken={}", "a".repeat(MAX_VALIDATION_TOKEN + 1));
        assert_eq!(validation_token(Some(&long)), None);
    }
}
