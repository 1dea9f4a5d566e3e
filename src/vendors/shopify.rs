//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(body)>` (the Events product sends
//! `Shopify-Hmac-Sha256`; both are accepted). De-duplicated on `X-Shopify-Event-Id`, which
//! is not signed, so the body digest is recorded too.
//!
//! **Replay id:** `X-Shopify-Event-Id`, which Shopify documents as the same on duplicates, and the
//! signed-bytes digest. `X-Shopify-Webhook-Id` is not used (it changes per retry).

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ocsf::{self, str_at, Class, Draft, Input};
use crate::verify::{Descriptor, Extra, Field};

pub struct Shopify;

/// The signature: see the module documentation.
pub const SIGNATURE: Descriptor = Descriptor::body_hmac("x-shopify-hmac-sha256", "")
    .base64()
    .alt_header("shopify-hmac-sha256")
    .id(Field::header("x-shopify-event-id"))
    .extra(&[
        ("x-shopify-topic", Extra::Fixed("customers/data_request")),
        (
            "x-shopify-shop-domain",
            Extra::Fixed("example.myshopify.com"),
        ),
    ]);

pub(super) const VENDOR: super::Entry = super::Entry::new(|_| super::described(SIGNATURE, Shopify));

impl crate::ocsf::Normalizer for Shopify {
    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "shop_id": 954889,
            "shop_domain": "example.myshopify.com",
            "customer": {"id": 191167, "email": "john@example.com"},
            "data_request": {"id": id}
        })
        .to_string()
    }

    /// By the `X-Shopify-Topic` header (`orders/create`, `customers/redact` ...): every topic is
    /// API Activity; the three GDPR compliance topics carry a higher severity and a note.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        let j = input.json_object()?;
        let topic = input
            .header("x-shopify-topic")
            .or(input.header("shopify-topic"))
            .ok_or("no X-Shopify-Topic header: the event kind is unknown")?;
        let shop = input
            .header("x-shopify-shop-domain")
            .or(input.header("shopify-shop-domain"))
            .or(str_at(j, &["shop_domain"]));
        let d = match topic {
            "customers/data_request" | "customers/redact" | "shop/redact" => gdpr(topic, j, shop),
            _ => activity(topic, j, shop),
        };
        let triggered = input
            .header("x-shopify-triggered-at")
            .and_then(|t| ocsf::time_of(&Value::String(t.to_string())));
        let time = d.time.or(triggered);
        Ok(vec![d
            .time(time)
            .unmapped("api_version", input.header("x-shopify-api-version").into())
            .unmapped(
                "webhook_id",
                input.header("x-shopify-webhook-id").into(),
            )])
    }
}

/// The activity from the topic's verb (`orders/create`, `orders/paid`, `app/uninstalled` ...).
fn activity_id(topic: &str) -> u8 {
    match topic.rsplit('/').next().unwrap_or(topic) {
        "create" => 1,
        "data_request" => 2,
        "update"
        | "updated"
        | "edited"
        | "paid"
        | "cancelled"
        | "fulfilled"
        | "partially_fulfilled"
        | "scopes_update"
        | "enable"
        | "disable" => 3,
        "delete" | "redact" | "uninstalled" => 4,
        _ => 99,
    }
}

fn shop_resource(j: &Value, shop: Option<&str>) -> Value {
    ocsf::compact(json!({
        "type": "Shop",
        "name": shop,
        "uid": j["shop_id"].as_u64().map(|n| n.to_string()),
    }))
}

fn api(topic: &str) -> Value {
    json!({"operation": topic})
}

/// The GDPR compliance topics: the shop asks the app to hand over or erase what it holds about
/// a customer, or about the whole shop (48 hours after uninstalling). Medium: a legal duty with
/// a deadline, which someone has to act on. The customer's email and phone are not copied:
/// the event that asks to erase them must not spread them.
fn gdpr(topic: &str, j: &Value, shop: Option<&str>) -> Draft {
    let customer = j["customer"]["id"].as_u64().map(|n| n.to_string());
    let shop_name = shop.unwrap_or("the shop");
    let (message, note) = match (topic, &customer) {
        ("customers/data_request", Some(c)) => (
            format!("Shopify GDPR request: customer {c} of {shop_name} asked for their data"),
            "GDPR data request: send the customer's stored data to the shop owner within 30 days",
        ),
        ("customers/redact", Some(c)) => (
            format!("Shopify GDPR request: erase customer {c}'s data for {shop_name}"),
            "GDPR redaction: erase the customer's data within 30 days",
        ),
        _ => (
            format!("Shopify GDPR request: erase all data of {shop_name}"),
            "GDPR shop redaction: erase the shop's data within 30 days",
        ),
    };
    let mut resources = vec![shop_resource(j, shop)];
    if let Some(c) = &customer {
        resources.push(json!({"type": "Customer", "uid": c}));
    }
    let count = |k: &str| j[k].as_array().map(|a| Value::from(a.len()));
    Draft::new(Class::ApiActivity, activity_id(topic), message)
        .severity(3)
        .field("actor", json!({"app_name": "shopify"}))
        .field("api", api(topic))
        .field("resources", json!(resources))
        .unmapped("compliance", note.into())
        .unmapped("shop_domain", shop.into())
        .unmapped("data_request_id", j["data_request"]["id"].clone())
        .unmapped("orders_requested_count", count("orders_requested").into())
        .unmapped("orders_to_redact_count", count("orders_to_redact").into())
}

/// Routine shop activity is Informational; an app being uninstalled loses its access (and
/// siemgate its feed): Low.
fn severity(topic: &str) -> u8 {
    if topic == "app/uninstalled" {
        2
    } else {
        1
    }
}

/// Every other topic: the object the topic names is the resource (its id, and its `name` or
/// `title`); the staff member (`user_id`), when the body names one, is the actor.
fn activity(topic: &str, j: &Value, shop: Option<&str>) -> Draft {
    // `app/uninstalled` and `shop/update` carry the shop itself.
    let kind = match topic.split('/').next().unwrap_or(topic) {
        "orders" => "Order",
        "customers" => "Customer",
        "products" => "Product",
        "app" | "shop" => "Shop",
        other => other,
    };
    let uid = match &j["id"] {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let name = str_at(j, &["name"]).or(str_at(j, &["title"]));
    let mut resources = vec![];
    if uid.is_some() || name.is_some() {
        resources.push(ocsf::compact(
            json!({"type": kind, "uid": uid, "name": name}),
        ));
    }
    if kind != "Shop" {
        resources.push(shop_resource(j, shop));
    }
    let mut message = format!("Shopify {topic}");
    if let Some(n) = name.map(str::to_string).or(uid) {
        message.push_str(&format!(" {n}"));
    }
    if let Some(s) = shop {
        message.push_str(&format!(" in {s}"));
    }
    let actor = match j["user_id"].as_u64() {
        Some(u) => json!({"app_name": "shopify", "user": {"uid": u.to_string()}}),
        None => json!({"app_name": "shopify"}),
    };
    let time = ocsf::time_of(&j["updated_at"]).or_else(|| ocsf::time_of(&j["created_at"]));
    // Orders carry the buyer's browser address (else the source is Shopify: see ocsf::finish).
    let endpoint = str_at(j, &["browser_ip"]).map_or(Value::Null, |ip| json!({ "ip": ip }));
    let mut d = Draft::new(Class::ApiActivity, activity_id(topic), message)
        .severity(severity(topic))
        .time(time)
        .field("actor", actor)
        .field("api", api(topic))
        .field("src_endpoint", endpoint)
        .field("resources", json!(resources))
        .unmapped("shop_domain", shop.into());
    for k in [
        "admin_graphql_api_id",
        "order_number",
        "financial_status",
        "fulfillment_status",
        "total_price",
        "currency",
        "status",
        "source_name",
    ] {
        if let Some(v) = j.get(k).filter(|v| v.is_string() || v.is_number()) {
            d = d.unmapped(k, v.clone());
        }
    }
    d
}
