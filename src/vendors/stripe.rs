//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...][,v0=...]` over `"{t}.{body}"`,
//! HMAC-SHA256 keyed with the endpoint secret as written (`whsec_...` included). Every `v1` is a
//! candidate; other schemes (`v0`) are ignored. The event id is the body's `id`.
//!
//! **Replay id:** the body's `id` (`evt_...`), the event id Stripe documents, and the signed-bytes
//! digest.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common;
use crate::ocsf::{self, str_at, Class, Draft, Input};
use crate::verify::{
    self, Check, Claim, Facts, Key, MacAlgorithm, Rejection, TimestampUnit, Unverified,
};

pub struct Stripe;

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| Box::new(Stripe));

const HEADER: &str = "stripe-signature";

fn parse(value: &str) -> Result<(&str, Vec<&str>), Rejection> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in verify::split_list(value, ',')? {
        match part.split_once('=') {
            Some(("t", v)) => {
                if t.replace(v).is_some() {
                    return Err(Rejection::malformed("timestamp given twice"));
                }
            }
            Some(("v1", v)) => v1.push(v),
            Some(_) => {}
            None => return Err(Rejection::malformed("entry without '='")),
        }
    }
    let t = t.ok_or(Rejection::malformed("no timestamp in signature header"))?;
    Ok((t, v1))
}

impl crate::verify::Scheme for Stripe {
    fn signs_timestamp(&self) -> bool {
        true
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let (t, v1) = parse(verify::required_header(req, HEADER)?)?;
        let candidates = verify::candidates(v1, verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![t.as_bytes(), b".", &req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let (t, _) = parse(verify::required_header(req, HEADER)?)?;
        let id = common::json_str(json, &["id"]);
        Ok(Facts {
            signed_time: Some(verify::parse_timestamp(t, TimestampUnit::Seconds)?),
            id,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, _id: &str) -> Vec<(String, String)> {
        let t = ts.unix_timestamp().to_string();
        let sig = common::hex_mac(key, MacAlgorithm::Sha256, &[t.as_bytes(), b".", body]);
        vec![(HEADER.into(), format!("t={t},v1={sig}"))]
    }
}

impl crate::ocsf::Normalizer for Stripe {
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "id": id,
            "object": "event",
            "type": "radar.early_fraud_warning.created",
            "created": ts.unix_timestamp(),
            "livemode": false,
            "data": {"object": {"id": "issfr_1", "fraud_type": "card_never_received", "actionable": true}}
        })
        .to_string()
    }

    /// By the event `type`: disputes, early fraud warnings and Radar reviews are Detection
    /// Findings; every other event (customers, accounts, payments ...) is API Activity. `created`
    /// is the time; the `evt_` id is already the event's uid.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json_object()?;
        let ty = str_at(j, &["type"]).ok_or("no event type")?;
        let draft = if ty.starts_with("charge.dispute.") {
            dispute(ty, j)?
        } else if ty.starts_with("radar.early_fraud_warning.") {
            early_fraud_warning(ty, j)?
        } else if ty == "review.opened" || ty == "review.closed" {
            review(ty, j)?
        } else {
            api_activity(ty, j)
        };
        Ok(vec![draft])
    }
}

/// The last word of the type (`created`, `updated`, `closed` ...).
fn verb(ty: &str) -> &str {
    ty.rsplit('.').next().unwrap_or(ty)
}

/// What a finding-type event says beyond the common fields.
struct Finding {
    title: String,
    desc: String,
    severity: u8,
    types: &'static str,
    status: Option<(u8, &'static str)>,
}

fn finding(ty: &str, j: &Value, f: Finding) -> Result<Draft, String> {
    let obj = &j["data"]["object"];
    let uid = str_at(obj, &["id"]).ok_or_else(|| format!("{ty} without data.object.id"))?;
    let activity = match verb(ty) {
        "created" | "opened" => 1,
        "closed" => 3,
        _ => 2,
    };
    let resources: Vec<Value> = [("charge", "charge"), ("payment_intent", "payment_intent")]
        .iter()
        .filter_map(|(k, t)| Some(json!({"type": t, "uid": obj[*k].as_str()?})))
        .collect();
    let info = ocsf::compact(json!({
        "uid": uid,
        "title": f.title,
        "desc": f.desc,
        "types": [f.types],
        "created_time": ocsf::time_of(&obj["created"]),
        "src_url": format!("https://dashboard.stripe.com/{}", dashboard_path(obj, uid)),
    }));
    Ok(Draft::new(
        Class::DetectionFinding,
        activity,
        format!("Stripe {ty}: {}", f.title),
    )
    .severity(f.severity)
    .time(ocsf::time_of(&j["created"]))
    .field("finding_info", info)
    .field("status", f.status.map_or(Value::Null, |s| s.1.into()))
    .field("status_id", f.status.map_or(Value::Null, |s| s.0.into()))
    .field(
        "resources",
        if resources.is_empty() {
            Value::Null
        } else {
            resources.into()
        },
    )
    .unmapped("event_type", ty.into())
    .unmapped("livemode", j["livemode"].clone())
    .unmapped("account", j["account"].clone())
    .unmapped("amount", obj["amount"].clone())
    .unmapped("currency", obj["currency"].clone()))
}

/// The dashboard page of a finding's object (test-mode objects live under `/test`).
fn dashboard_path(obj: &Value, uid: &str) -> String {
    let test = if obj["livemode"] == Value::Bool(false) {
        "test/"
    } else {
        ""
    };
    match obj["object"].as_str() {
        Some("dispute") => format!("{test}disputes/{uid}"),
        Some("review") | Some("radar.early_fraud_warning") => match obj["charge"].as_str() {
            Some(ch) => format!("{test}payments/{ch}"),
            None => format!("{test}radar"),
        },
        _ => format!("{test}events"),
    }
}

/// Disputes: High when the cardholder claims fraud (money is pulled back and the card may be
/// stolen), Medium for other reasons (a deadline to answer, but a commercial matter).
fn dispute(ty: &str, j: &Value) -> Result<Draft, String> {
    let obj = &j["data"]["object"];
    let reason = str_at(obj, &["reason"]).unwrap_or("unknown reason");
    let status_word = str_at(obj, &["status"]).unwrap_or("");
    let status = match status_word {
        "warning_needs_response" | "needs_response" => Some((1, "New")),
        "warning_under_review" | "under_review" => Some((2, "In Progress")),
        "won" | "lost" | "warning_closed" | "prevented" => Some((4, "Resolved")),
        _ => None,
    };
    let charge = str_at(obj, &["charge"]).unwrap_or("a charge");
    let mut desc = format!("Charge {charge} disputed ({reason})");
    if !status_word.is_empty() {
        desc.push_str(&format!("; status {status_word}"));
    }
    let d = finding(
        ty,
        j,
        Finding {
            title: format!("Payment disputed: {reason}"),
            desc,
            severity: if reason == "fraudulent" { 4 } else { 3 },
            types: "Payment Dispute",
            status,
        },
    )?;
    Ok(d.unmapped("dispute_status", obj["status"].clone())
        .unmapped("reason", obj["reason"].clone())
        .unmapped(
            "evidence_due_by",
            obj["evidence_details"]["due_by"]
                .as_i64()
                .and_then(|t| ocsf::time_of(&t.into()))
                .into(),
        ))
}

/// Early fraud warnings: the issuer reports the charge as fraud. High while it is actionable
/// (refunding now avoids a dispute), Medium once it is not.
fn early_fraud_warning(ty: &str, j: &Value) -> Result<Draft, String> {
    let obj = &j["data"]["object"];
    let fraud = str_at(obj, &["fraud_type"]).unwrap_or("unspecified");
    let actionable = obj["actionable"].as_bool();
    let charge = str_at(obj, &["charge"]).unwrap_or("a charge");
    let d = finding(
        ty,
        j,
        Finding {
            title: format!("Early fraud warning: {fraud}"),
            desc: format!(
                "The card issuer reported charge {charge} as fraudulent ({fraud}); actionable: {}",
                actionable.map_or("unknown".to_string(), |a| a.to_string())
            ),
            severity: if actionable == Some(false) { 3 } else { 4 },
            types: "Early Fraud Warning",
            status: (verb(ty) == "created").then_some((1, "New")),
        },
    )?;
    Ok(d.unmapped("fraud_type", obj["fraud_type"].clone())
        .unmapped("actionable", obj["actionable"].clone()))
}

/// Radar manual reviews: a payment held for a person to check; Medium.
fn review(ty: &str, j: &Value) -> Result<Draft, String> {
    let obj = &j["data"]["object"];
    let why = str_at(obj, &["opened_reason"])
        .or(str_at(obj, &["reason"]))
        .unwrap_or("unspecified");
    let open = obj["open"].as_bool().unwrap_or(ty == "review.opened");
    let mut desc = format!(
        "Radar placed {} in review ({why})",
        str_at(obj, &["charge"])
            .or(str_at(obj, &["payment_intent"]))
            .unwrap_or("a payment")
    );
    if let Some(c) = str_at(obj, &["closed_reason"]) {
        desc.push_str(&format!("; closed: {c}"));
    }
    let d = finding(
        ty,
        j,
        Finding {
            title: format!("Radar review: {why}"),
            desc,
            severity: 3,
            types: "Radar Review",
            status: Some(if open { (1, "New") } else { (4, "Resolved") }),
        },
    )?;
    Ok(d.unmapped("closed_reason", obj["closed_reason"].clone())
        .unmapped("ip_address", obj["ip_address"].clone())
        .unmapped("ip_country", obj["ip_address_location"]["country"].clone()))
}

/// Routine business events are Informational; failures (payments, payouts, invoices) and an
/// app losing access to the account are Low.
fn activity_severity(ty: &str) -> u8 {
    let v = verb(ty);
    if v == "failed" || v == "payment_failed" || ty == "account.application.deauthorized" {
        2
    } else {
        1
    }
}

/// The API request that caused the event (v1 `request.id`, v2 `reason.request.id`).
fn request_id(j: &Value) -> Option<&str> {
    str_at(j, &["request", "id"]).or(str_at(j, &["reason", "request", "id"]))
}

/// Every other event: the object it is about as the resource, a few of its small fields, and
/// which fields an update changed. Stripe names no person: the actor is Stripe (or the connected
/// account the event belongs to).
fn api_activity(ty: &str, j: &Value) -> Draft {
    let obj = &j["data"]["object"];
    // Thin (v2) events carry no object, only a reference to it.
    let (kind, uid) = match obj["id"].as_str() {
        Some(id) => (obj["object"].clone(), Some(id)),
        None => (
            j["related_object"]["type"].clone(),
            str_at(j, &["related_object", "id"]),
        ),
    };
    let activity = match verb(ty) {
        "created" => 1,
        "updated" => 3,
        "deleted" => 4,
        _ => 99,
    };
    let mut message = format!("Stripe {ty}");
    if let Some(id) = uid {
        message.push_str(&format!(": {id}"));
    }
    let failure = str_at(obj, &["last_payment_error", "code"]).or(str_at(obj, &["failure_code"]));
    if let Some(f) = failure {
        message.push_str(&format!(" ({f})"));
    }
    let changed: Option<Vec<Value>> = j["data"]["previous_attributes"]
        .as_object()
        .map(|p| p.keys().cloned().map(Value::String).collect());
    let mut d = Draft::new(Class::ApiActivity, activity, message)
        .severity(activity_severity(ty))
        .time(ocsf::time_of(&j["created"]))
        .field(
            "actor",
            ocsf::compact(json!({"app_name": "stripe", "user": {"uid": j["account"]}})),
        )
        .field(
            "api",
            ocsf::compact(json!({
                "operation": ty,
                "version": j["api_version"],
                "request": {"uid": request_id(j)},
            })),
        )
        .field(
            "resources",
            uid.map_or(Value::Null, |id| {
                json!([ocsf::compact(json!({"type": kind, "uid": id}))])
            }),
        )
        .unmapped("livemode", j["livemode"].clone())
        .unmapped(
            "idempotency_key",
            str_at(j, &["request", "idempotency_key"])
                .or(str_at(j, &["reason", "request", "idempotency_key"]))
                .into(),
        )
        .unmapped("changed", changed.map_or(Value::Null, Value::from))
        .unmapped("failure_code", failure.into());
    for k in ["amount", "currency", "status", "customer"] {
        if let Some(v) = obj.get(k).filter(|v| v.is_string() || v.is_number()) {
            d = d.unmapped(k, v.clone());
        }
    }
    d
}
