//! Standard Webhooks (and Svix, whose `svix-*` headers are accepted too):
//! `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` (and `v1a,<base64
//! Ed25519>`) over `"{webhook-id}.{webhook-timestamp}.{body}"`. Secrets are `whsec_` + base64
//! (the HMAC key is the decoded bytes) or `whpk_` + base64 of an Ed25519 public key.
//! The id and timestamp are signed; the window is ±tolerance.
//!
//! **Replay id:** `webhook-id` (`svix-id`), which the spec makes the idempotency key, the same on
//! retries, and the signed-bytes digest.

use base64::Engine;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::ocsf::{self, str_at, Class, Draft, Input};
use crate::verify::{
    self, Check, Claim, Facts, Key, MacAlgorithm, Rejection, Secret, TimestampUnit, Unverified,
};

pub struct StandardWebhooks;

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| Box::new(StandardWebhooks));

/// The header names of one flavour.
pub struct Names {
    pub id: &'static str,
    pub timestamp: &'static str,
    pub signature: &'static str,
}

pub const WEBHOOK: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};
pub const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// Svix's libraries prefer `svix-*` when both are present.
pub fn names_for(req: &Unverified) -> &'static Names {
    if req.headers.contains_key(SVIX.signature) {
        &SVIX
    } else {
        &WEBHOOK
    }
}

fn b64_lenient(s: &str) -> Option<Vec<u8>> {
    verify::decode_b64(s)
}

pub fn prepare(secret: &Secret) -> Result<Key, String> {
    let s = secret.expose_str().ok_or("secret is not UTF-8")?;
    if let Some(pk) = s.strip_prefix("whpk_") {
        let bytes = b64_lenient(pk).ok_or("whpk_ secret is not base64")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "whpk_ secret must encode a 32-byte Ed25519 public key")?;
        return Ok(Key::ed25519_public(secret.expose(), key));
    }
    if s.starts_with("whsk_") {
        return Err(
            "whsk_ is a private signing key: configure its public key (whpk_) instead".into(),
        );
    }
    let body = s.strip_prefix("whsec_").unwrap_or(s);
    let bytes = b64_lenient(body).ok_or("secret must be whsec_ followed by base64")?;
    if bytes.is_empty() {
        return Err("secret decodes to an empty key".into());
    }
    Ok(Key::decoded(secret.expose(), bytes))
}

pub fn claim<'a>(req: &'a Unverified, n: &Names) -> Result<Claim<'a>, Rejection> {
    let sigs = verify::required_header(req, n.signature)?;
    let id =
        verify::single_header(req, n.id)?.ok_or(Rejection::missing("message id header missing"))?;
    let ts = verify::single_header(req, n.timestamp)?
        .ok_or(Rejection::missing("timestamp header missing"))?;
    // The spec: neither may contain the separator `.`; the timestamp is integer seconds.
    if id.contains('.')
        || id.len() > verify::MAX_ID_LEN
        || !verify::is_safe_timestamp(ts, TimestampUnit::Seconds)
    {
        return Err(Rejection::malformed(
            "id or timestamp not of the signed form",
        ));
    }
    let entries = verify::split_list(sigs, ' ')?;
    let mut v1 = Vec::new();
    let mut v1a = Vec::new();
    for e in entries {
        match e.split_once(',') {
            Some(("v1", s)) => v1.push(s),
            Some(("v1a", s)) => v1a.push(s),
            _ => {} // unknown versions are skipped, as the reference libraries do
        }
    }
    let message = || vec![id.as_bytes(), b".", ts.as_bytes(), b".", &req.body[..]];
    let mut checks = Vec::new();
    if !v1.is_empty() {
        let candidates = verify::candidates(v1, verify::decode_b64)?;
        checks.push(Check::Mac {
            alg: MacAlgorithm::Sha256,
            key: None,
            message: message(),
            candidates,
        });
    }
    // The engine bounds the Ed25519 verifications per public key (each hashes the message).
    let ed: Vec<[u8; 64]> = v1a
        .into_iter()
        .take(verify::MAX_SIGNATURES)
        .filter_map(|s| verify::decode_b64(s).and_then(|b| <[u8; 64]>::try_from(b).ok()))
        .collect();
    if !ed.is_empty() {
        checks.push(Check::Ed25519 {
            message: message(),
            candidates: ed,
        });
    }
    match checks.len() {
        0 => Err(Rejection::malformed("no v1 or v1a signature")),
        1 => Ok(Claim {
            check: checks.remove(0),
        }),
        _ => Ok(Claim {
            check: Check::Any(checks),
        }),
    }
}

pub fn facts(req: &Unverified, n: &Names) -> Result<Facts, Rejection> {
    let ts = verify::required_header(req, n.timestamp)?;
    Ok(Facts {
        signed_time: Some(verify::parse_timestamp(ts, TimestampUnit::Seconds)?),
        id: verify::id_header(req, n.id)?,
        ..Facts::default()
    })
}

pub fn sign(
    key: &Key,
    n: &Names,
    body: &[u8],
    ts: OffsetDateTime,
    id: &str,
) -> Vec<(String, String)> {
    let ts = ts.unix_timestamp().to_string();
    let mac = verify::mac::hmac(
        MacAlgorithm::Sha256,
        key.mac(),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(mac);
    vec![
        (n.id.into(), id.into()),
        (n.timestamp.into(), ts),
        (n.signature.into(), format!("v1,{sig}")),
    ]
}

impl crate::verify::Scheme for StandardWebhooks {
    fn signs_timestamp(&self) -> bool {
        true
    }

    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        prepare(secret)
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        claim(req, names_for(req))
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        facts(req, names_for(req))
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        sign(key, &WEBHOOK, body, ts, id)
    }
}

impl crate::ocsf::Normalizer for StandardWebhooks {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "type": "invoice.paid",
            "timestamp": super::common::rfc3339(ts),
            "data": {"id": id, "amount": 4200}
        })
        .to_string()
    }

    /// The spec's envelope `{"type", "timestamp", "data"}` is API Activity whose operation is
    /// the type; any other body is a Base Event.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        match input
            .json
            .and_then(|j| Some((j, str_at(j, &["type"])?, j.get("data")?)))
        {
            Some((j, ty, data)) => Ok(vec![envelope(input.vendor, j, ty, data)]),
            None => Ok(vec![ocsf::base(input)]),
        }
    }
}

/// The activity from the type's last word (`invoice.created`, `user.deleted` ...).
fn activity_id(ty: &str) -> u8 {
    match ty.rsplit(['.', '_']).next().unwrap_or(ty) {
        "created" | "create" | "added" => 1,
        "read" | "viewed" | "exported" => 2,
        "updated" | "update" | "changed" => 3,
        "deleted" | "delete" | "removed" => 4,
        _ => 99,
    }
}

/// Who acted, when `data` names an `actor` or a `user` (an id, or an object).
fn actor(vendor: &str, data: &Value) -> Value {
    let a = data
        .get("actor")
        .or(data.get("user"))
        .unwrap_or(&Value::Null);
    let user = match a {
        Value::String(s) => json!({ "name": s }),
        Value::Object(o) => {
            let mut u = Map::new();
            for (to, from) in [
                ("uid", "id"),
                ("name", "name"),
                ("name", "username"),
                ("email_addr", "email"),
            ] {
                match o.get(from) {
                    Some(Value::String(s)) if !u.contains_key(to) => {
                        u.insert(to.into(), s.clone().into());
                    }
                    Some(Value::Number(n)) if !u.contains_key(to) => {
                        u.insert(to.into(), n.to_string().into());
                    }
                    _ => {}
                }
            }
            Value::Object(u)
        }
        _ => Value::Null,
    };
    match user {
        Value::Object(u) if !u.is_empty() => json!({ "user": u }),
        _ => json!({ "app_name": vendor }),
    }
}

/// The small scalar members of `data` (at most 20, strings up to 200 bytes): enough to read
/// the event without copying a large payload.
fn small_fields(data: &Value) -> Map<String, Value> {
    data.as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| match v {
            Value::String(s) => s.len() <= 200,
            Value::Number(_) | Value::Bool(_) => true,
            _ => false,
        })
        .take(20)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The envelope's severity when `data` gives one (a word or 0-6), else Informational: a
/// generic event says nothing about its urgency.
fn envelope(vendor: &str, j: &Value, ty: &str, data: &Value) -> Draft {
    let severity = ["severity", "level", "priority"]
        .iter()
        .find_map(|k| ocsf::severity_of(data.get(*k)?))
        .unwrap_or(1);
    let id = match data.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let kind = ty.rsplit_once('.').map(|(k, _)| k);
    let resource = id.as_ref().map(|id| {
        let mut r = json!({ "uid": id });
        if let Some(k) = kind {
            r["type"] = k.into();
        }
        json!([r])
    });
    let message = match &id {
        Some(id) => format!("{ty}: {id}"),
        None => ty.to_string(),
    };
    let small = small_fields(data);
    Draft::new(Class::ApiActivity, activity_id(ty), message)
        .severity(severity)
        .time(ocsf::time_of(&j["timestamp"]))
        .field("actor", actor(vendor, data))
        .field("api", json!({"operation": ty}))
        .field("resources", resource.unwrap_or(Value::Null))
        .unmapped(
            "data",
            if small.is_empty() {
                Value::Null
            } else {
                Value::Object(small)
            },
        )
}
