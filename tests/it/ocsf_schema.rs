//! Checks an event against the OCSF schema subset siemgate ships in `tests/ocsf/`.
//!
//! `tests/ocsf/ocsf-1.3.0-subset.json` holds, for the classes siemgate emits (Base Event, Detection
//! Finding, Account Change, Authentication, API Activity) and the objects they carry, every
//! attribute's requirement, type and enum as OCSF 1.3.0 defines them (its `about` says where they
//! were copied from). [`violations`] reads an event the way an OCSF validator would:
//!
//! - `class_uid` names one of those classes; `category_uid`, `activity_id` and `type_uid`
//!   (`class_uid * 100 + activity_id`) agree with it, and the `*_name` siblings carry the captions;
//! - every required attribute is present, in the event and, recursively, in every object the
//!   subset describes (`metadata.product.vendor_name`, `finding_info.uid`, `api.operation`, ...),
//!   and every `at_least_one` constraint holds;
//! - every attribute is one the class or object defines, with its type: `integer_t`, `long_t`
//!   and `timestamp_t` (milliseconds) are JSON integers that fit a signed 64-bit integer, strings
//!   are strings, booleans booleans, objects objects, arrays arrays; `ip_t`, `port_t`, `email_t`,
//!   `mac_t` and `hostname_t` values have the form their OCSF type's pattern or range gives;
//! - enum values are ones the schema lists (`severity_id` 0-6 and 99, the class's `activity_id`
//!   including 0 and 99, `status_id`, ...);
//! - `metadata.version` is `1.3.0`.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

const SUBSET: &str = include_str!("../ocsf/ocsf-1.3.0-subset.json");

/// The OCSF version the subset describes, and the one every event must state.
pub const VERSION: &str = "1.3.0";

struct Schema {
    classes: HashMap<u64, Class>,
    objects: Map<String, Value>,
    enums: Map<String, Value>,
}

struct Class {
    caption: String,
    activities: Map<String, Value>,
    /// The base event's attributes with the class's merged over them, and the class's own
    /// `class_uid`, `category_uid` and `activity_id` enums.
    attributes: Map<String, Value>,
    at_least_one: Vec<String>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let root: Value = serde_json::from_str(SUBSET).expect("the OCSF subset is JSON");
        assert_eq!(root["ocsf_version"], VERSION, "the subset's OCSF version");
        let base = root["base_event"]["attributes"].as_object().unwrap();
        let mut classes = HashMap::new();
        for c in root["classes"].as_object().unwrap().values() {
            let mut attributes = base.clone();
            for (k, v) in c["attributes"].as_object().unwrap() {
                attributes.insert(k.clone(), v.clone());
            }
            // The classification enums of this class: its uid, its category, its activities.
            let uid = c["uid"].as_u64().unwrap();
            let mut one = |attr: &str, id: &Value, caption: &Value| {
                attributes[attr]["enum"] = json!({ id.to_string(): caption });
            };
            one("class_uid", &c["uid"], &c["caption"]);
            one("category_uid", &c["category_uid"], &c["category_name"]);
            let activities = c["activities"].as_object().unwrap().clone();
            attributes["activity_id"]["enum"] = Value::Object(activities.clone());
            classes.insert(
                uid,
                Class {
                    caption: c["caption"].as_str().unwrap().to_string(),
                    activities,
                    attributes,
                    at_least_one: names(&c["constraints"]["at_least_one"]),
                },
            );
        }
        Schema {
            classes,
            objects: root["objects"].as_object().unwrap().clone(),
            enums: root["enums"].as_object().unwrap().clone(),
        }
    })
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What is wrong with `event` by the schema; empty when it conforms. Each entry starts with the
/// attribute's path (`metadata.product.vendor_name: ...`).
pub fn violations(event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(e) = event.as_object() else {
        return vec!["the event is not a JSON object".into()];
    };
    let s = schema();
    let Some(class_uid) = e.get("class_uid") else {
        return vec!["class_uid: required attribute missing".into()];
    };
    let Some(class) = class_uid.as_u64().and_then(|u| s.classes.get(&u)) else {
        let mut known: Vec<_> = s.classes.keys().collect();
        known.sort();
        return vec![format!(
            "class_uid: {class_uid} is not a class of the subset {known:?}"
        )];
    };
    let profiles: Vec<String> = names(&event["metadata"]["profiles"]);
    let cx = Cx {
        s,
        profiles: &profiles,
    };

    cx.check_object(
        "",
        e,
        &class.attributes,
        &class.at_least_one,
        true,
        &mut out,
    );

    // type_uid is class_uid * 100 + activity_id, type_name "<class>: <activity>".
    let activity = e.get("activity_id").and_then(Value::as_u64);
    match (activity, e.get("type_uid").and_then(Value::as_u64)) {
        (Some(a), Some(t)) if t != class_uid.as_u64().unwrap() * 100 + a => out.push(format!(
            "type_uid: {t}, but class_uid * 100 + activity_id is {}",
            class_uid.as_u64().unwrap() * 100 + a
        )),
        _ => {}
    }
    if let Some(a) = activity.filter(|a| *a != 99) {
        if let Some(caption) = class.activities.get(&a.to_string()).and_then(Value::as_str) {
            text_is(
                e,
                "type_name",
                &format!("{}: {caption}", class.caption),
                &mut out,
            );
        }
    }
    match e.get("metadata").and_then(|m| m.get("version")) {
        Some(Value::String(v)) if v == VERSION => {}
        Some(v) => out.push(format!("metadata.version: {v}, not \"{VERSION}\"")),
        None => {} // reported as a missing required attribute
    }
    out
}

fn text_is(e: &Map<String, Value>, key: &str, want: &str, out: &mut Vec<String>) {
    if let Some(v) = e.get(key) {
        if v.as_str() != Some(want) {
            out.push(format!("{key}: {v}, not \"{want}\""));
        }
    }
}

struct Cx<'a> {
    s: &'a Schema,
    profiles: &'a [String],
}

impl Cx<'_> {
    fn applies(&self, def: &Value) -> bool {
        match def["profile"].as_str() {
            None => true,
            Some(p) => self.profiles.iter().any(|q| q == p),
        }
    }

    /// Checks one object: required attributes, constraints, unknown attributes, and each value.
    fn check_object(
        &self,
        path: &str,
        obj: &Map<String, Value>,
        attrs: &Map<String, Value>,
        at_least_one: &[String],
        closed: bool,
        out: &mut Vec<String>,
    ) {
        for (name, def) in attrs {
            let present = obj.get(name).is_some_and(|v| !v.is_null());
            if def["requirement"] == "required" && self.applies(def) && !present {
                out.push(format!("{}: required attribute missing", join(path, name)));
            }
        }
        if !at_least_one.is_empty()
            && !at_least_one
                .iter()
                .any(|k| obj.get(k).is_some_and(|v| !v.is_null()))
        {
            out.push(format!(
                "{}: needs at least one of {at_least_one:?}",
                if path.is_empty() { "the event" } else { path }
            ));
        }
        for (name, value) in obj {
            let p = join(path, name);
            match attrs.get(name) {
                Some(def) => {
                    self.check_value(&p, def, value, out);
                    self.check_sibling(&p, obj, def, value, out);
                }
                None if closed => out.push(format!("{p}: not an attribute of this class/object")),
                None => {}
            }
        }
    }

    fn check_value(&self, path: &str, def: &Value, value: &Value, out: &mut Vec<String>) {
        if def["is_array"] == true {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_scalar(&format!("{path}[{i}]"), def, item, out);
                    }
                }
                None => out.push(format!("{path}: {} is not an array", short(value))),
            }
        } else {
            self.check_scalar(path, def, value, out);
        }
    }

    fn check_scalar(&self, path: &str, def: &Value, v: &Value, out: &mut Vec<String>) {
        let ty = def["type"].as_str().unwrap_or("json_t");
        let bad = |what: &str| format!("{path}: {} is not {what} ({ty})", short(v));
        match ty {
            "json_t" => return,
            "object_t" => {
                let Some(obj) = v.as_object() else {
                    out.push(bad("an object"));
                    return;
                };
                let name = def["object_type"].as_str().unwrap_or("object");
                if let Some(o) = self.s.objects.get(name) {
                    let attrs = o["attributes"].as_object().unwrap();
                    let closed = o["closed"] == true;
                    self.check_object(
                        path,
                        obj,
                        attrs,
                        &names(&o["constraints"]["at_least_one"]),
                        closed,
                        out,
                    );
                }
                return;
            }
            "boolean_t" => {
                if !v.is_boolean() {
                    out.push(bad("a boolean"));
                }
                return;
            }
            "float_t" => {
                if !v.is_number() {
                    out.push(bad("a number"));
                }
                return;
            }
            "integer_t" | "long_t" | "timestamp_t" | "port_t" => {
                // Signed: a JSON integer beyond i64 is no OCSF integer either.
                let Some(n) = v.as_i64() else {
                    out.push(bad("a signed 64-bit integer"));
                    return;
                };
                if ty == "port_t" && !(0..=65535).contains(&n) {
                    out.push(bad("a port 0-65535"));
                }
            }
            _ => {
                // string_t and the types derived from it.
                let Some(s) = v.as_str() else {
                    out.push(bad("a string"));
                    return;
                };
                let ok = match ty {
                    "ip_t" => is_ip(s),
                    "email_t" => is_email(s),
                    "mac_t" => is_mac(s),
                    "hostname_t" => is_hostname(s),
                    _ => true,
                };
                if !ok {
                    out.push(bad("of the form the type requires"));
                }
            }
        }
        if let Some(allowed) = self.enum_of(def) {
            let key = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !allowed.contains_key(&key) {
                let mut ids: Vec<&String> = allowed.keys().collect();
                ids.sort_by_key(|k| (k.parse::<i64>().unwrap_or(i64::MAX), k.to_string()));
                out.push(format!("{path}: {key} is not one of {ids:?}"));
            }
        }
    }

    fn enum_of<'a>(&'a self, def: &'a Value) -> Option<&'a Map<String, Value>> {
        match &def["enum"] {
            Value::Object(m) => Some(m),
            Value::String(name) => self.s.enums.get(name).and_then(Value::as_object),
            _ => None,
        }
    }

    /// `severity` holds the caption of `severity_id` (unless the id is 99, Other, when the
    /// source says what it is); the same for every enum with a sibling.
    fn check_sibling(
        &self,
        path: &str,
        obj: &Map<String, Value>,
        def: &Value,
        value: &Value,
        out: &mut Vec<String>,
    ) {
        let (Some(sibling), Some(allowed)) = (def["sibling"].as_str(), self.enum_of(def)) else {
            return;
        };
        let Some(id) = value.as_i64().filter(|id| *id != 99) else {
            return;
        };
        let (Some(caption), Some(text)) = (
            allowed.get(&id.to_string()).and_then(Value::as_str),
            obj.get(sibling),
        ) else {
            return;
        };
        if text.as_str() != Some(caption) {
            let at = path
                .rsplit_once('.')
                .map(|(p, _)| format!("{p}."))
                .unwrap_or_default();
            out.push(format!(
                "{at}{sibling}: {text}, but the caption of {id} is \"{caption}\""
            ));
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// `ip_t`: an IPv4 or IPv6 address (a `%zone` suffix allowed, as the OCSF pattern allows).
fn is_ip(s: &str) -> bool {
    let addr = s.trim().split('%').next().unwrap_or("");
    addr.parse::<std::net::IpAddr>().is_ok()
}

/// `email_t`: `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+,-./=?^_`{|}~".contains(c));
    let Some((first, rest)) = domain.split_once('.') else {
        return false;
    };
    local_ok
        && !first.is_empty()
        && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// `mac_t`: six hex pairs separated by `:` or `-`.
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    s.len() == 17
        && parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `hostname_t`: dot-separated labels of letters, digits and inner hyphens.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Panics with the violations of every event in `events` (`what` says where they came from).
pub fn assert_conforms<'a>(what: &str, events: impl IntoIterator<Item = &'a Value>) {
    let mut bad = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        for v in violations(e) {
            bad.push(format!("  event {i}: {v}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: events that do not conform to OCSF {VERSION}:\n{}",
        bad.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Value {
        json!({
            "class_uid": 2004, "class_name": "Detection Finding",
            "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create",
            "type_uid": 200401, "type_name": "Detection Finding: Create",
            "time": 1_775_485_921_847i64,
            "severity_id": 5, "severity": "Critical",
            "message": "Prompt injection",
            "status_id": 1, "status": "New",
            "metadata": {
                "version": "1.3.0", "uid": "evt-1", "logged_time": 1_775_485_925_000i64,
                "product": {"name": "humanbound", "vendor_name": "humanbound"}
            },
            "finding_info": {"uid": "f-1", "title": "Prompt injection", "desc": "LLM01", "types": ["prompt_injection"]},
            "resources": [{"name": "chatbot", "type": "project"}],
            "unmapped": {"siemgate": {"source": "hb"}, "anything": [1, {"x": null}]},
            "raw_data": "{}"
        })
    }

    fn authentication() -> Value {
        json!({
            "class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201,
            "time": 1_700_000_000_000i64, "severity_id": 1, "status_id": 2, "status": "Failure",
            "metadata": {"version": "1.3.0", "product": {"name": "syvault", "vendor_name": "syvault"}},
            "user": {"uid": "usr_1", "email_addr": "alice@acme.com"},
            "src_endpoint": {"ip": "203.0.113.7"},
            "http_request": {"user_agent": "Mozilla/5.0"},
            "service": {"name": "SyVault"}
        })
    }

    fn api_activity() -> Value {
        json!({
            "class_uid": 6003, "category_uid": 6, "activity_id": 3, "type_uid": 600303,
            "time": 1_700_000_000_000i64, "severity_id": 0,
            "metadata": {"version": "1.3.0", "product": {"vendor_name": "github", "name": "github"}},
            "actor": {"user": {"name": "octocat"}},
            "api": {"operation": "push", "request": {"uid": "d-1"}},
            "src_endpoint": {"name": "github.com"}
        })
    }

    /// The violations of `event` after `edit`; asserts one mentions `expect`.
    fn broken(mut event: Value, edit: impl FnOnce(&mut Value), expect: &str) {
        edit(&mut event);
        let v = violations(&event);
        assert!(
            v.iter().any(|s| s.contains(expect)),
            "expected a violation containing {expect:?}, got {v:#?}"
        );
    }

    #[test]
    fn conforming_events_of_each_class_have_no_violations() {
        for e in [finding(), authentication(), api_activity()] {
            assert_eq!(violations(&e), Vec::<String>::new(), "{e}");
        }
        let base = json!({
            "class_uid": 0, "category_uid": 0, "activity_id": 0, "type_uid": 0,
            "time": 0, "severity_id": 99, "severity": "Whatever the source says",
            "metadata": {"version": "1.3.0", "product": {"vendor_name": "x", "uid": "x"}},
            "unmapped": {"data": {"free": "form"}}
        });
        assert_eq!(violations(&base), Vec::<String>::new());
        let change = json!({
            "class_uid": 3001, "category_uid": 3, "activity_id": 11, "type_uid": 300111,
            "time": 1, "severity_id": 2,
            "metadata": {"version": "1.3.0", "product": {"vendor_name": "okta", "name": "okta"}},
            "user": {"name": "bob"}, "actor": {"app_name": "admin console"}
        });
        assert_eq!(violations(&change), Vec::<String>::new());
    }

    #[test]
    fn missing_required_attributes_are_found_at_every_depth() {
        broken(
            finding(),
            |e| drop(e.as_object_mut().unwrap().remove("finding_info")),
            "finding_info: required attribute missing",
        );
        broken(
            finding(),
            |e| drop(e["finding_info"].as_object_mut().unwrap().remove("uid")),
            "finding_info.uid: required attribute missing",
        );
        broken(
            finding(),
            |e| e["finding_info"]["title"] = Value::Null,
            "finding_info.title: required attribute missing",
        );
        broken(
            finding(),
            |e| {
                drop(
                    e["metadata"]["product"]
                        .as_object_mut()
                        .unwrap()
                        .remove("vendor_name"),
                )
            },
            "metadata.product.vendor_name: required attribute missing",
        );
        broken(
            finding(),
            |e| drop(e["metadata"].as_object_mut().unwrap().remove("version")),
            "metadata.version: required attribute missing",
        );
        broken(
            finding(),
            |e| drop(e.as_object_mut().unwrap().remove("time")),
            "time: required attribute missing",
        );
        broken(
            finding(),
            |e| drop(e.as_object_mut().unwrap().remove("severity_id")),
            "severity_id: required attribute missing",
        );
        broken(
            finding(),
            |e| drop(e.as_object_mut().unwrap().remove("metadata")),
            "metadata: required attribute missing",
        );
        broken(
            authentication(),
            |e| drop(e.as_object_mut().unwrap().remove("user")),
            "user: required attribute missing",
        );
        broken(
            api_activity(),
            |e| drop(e.as_object_mut().unwrap().remove("actor")),
            "actor: required attribute missing",
        );
        broken(
            api_activity(),
            |e| drop(e.as_object_mut().unwrap().remove("src_endpoint")),
            "src_endpoint: required attribute missing",
        );
        broken(
            api_activity(),
            |e| e["api"] = json!({"service": {"name": "x"}}),
            "api.operation: required attribute missing",
        );
        broken(
            api_activity(),
            |e| e["api"]["request"] = json!({}),
            "api.request.uid: required attribute missing",
        );
    }

    #[test]
    fn constraints_are_checked() {
        broken(
            authentication(),
            |e| drop(e.as_object_mut().unwrap().remove("service")),
            "needs at least one of [\"dst_endpoint\", \"service\"]",
        );
        broken(
            authentication(),
            |e| e["user"] = json!({"email_addr": "a@b.c"}),
            "user: needs at least one of",
        );
        broken(
            finding(),
            |e| e["metadata"]["product"] = json!({"vendor_name": "x"}),
            "metadata.product: needs at least one of",
        );
        broken(
            api_activity(),
            |e| e["src_endpoint"] = json!({"port": 443}),
            "src_endpoint: needs at least one of",
        );
    }

    #[test]
    fn wrong_types_are_found() {
        broken(
            finding(),
            |e| e["time"] = json!("2026-04-06T14:32:01Z"),
            "time: \"2026-04-06T14:32:01Z\" is not a signed 64-bit integer",
        );
        broken(
            finding(),
            |e| e["time"] = json!(1.5e12),
            "time: 1500000000000.0 is not a signed 64-bit integer",
        );
        broken(
            finding(),
            |e| e["time"] = json!(u64::MAX),
            "time: 18446744073709551615 is not a signed 64-bit integer",
        );
        broken(
            finding(),
            |e| e["severity_id"] = json!("5"),
            "severity_id: \"5\" is not a signed 64-bit integer",
        );
        broken(
            finding(),
            |e| e["message"] = json!(42),
            "message: 42 is not a string",
        );
        broken(
            finding(),
            |e| e["finding_info"]["uid"] = json!(7),
            "finding_info.uid: 7 is not a string",
        );
        broken(
            finding(),
            |e| e["finding_info"]["types"] = json!("one"),
            "finding_info.types: \"one\" is not an array",
        );
        broken(
            finding(),
            |e| e["finding_info"]["types"] = json!([1]),
            "finding_info.types[0]: 1 is not a string",
        );
        broken(
            finding(),
            |e| e["metadata"] = json!("meta"),
            "metadata: \"meta\" is not an object",
        );
        broken(
            finding(),
            |e| e["resources"] = json!({"name": "x"}),
            "resources: {\"name\":\"x\"} is not an array",
        );
        broken(
            finding(),
            |e| e["unmapped"] = json!([1]),
            "unmapped: [1] is not an object",
        );
        broken(
            authentication(),
            |e| e["is_mfa"] = json!("yes"),
            "is_mfa: \"yes\" is not a boolean",
        );
        broken(
            authentication(),
            |e| e["src_endpoint"]["ip"] = json!("not an ip"),
            "src_endpoint.ip: \"not an ip\" is not of the form",
        );
        broken(
            authentication(),
            |e| e["src_endpoint"]["port"] = json!(70000),
            "src_endpoint.port: 70000 is not a port",
        );
        broken(
            authentication(),
            |e| e["user"]["email_addr"] = json!("alice"),
            "user.email_addr: \"alice\" is not of the form",
        );
        broken(
            authentication(),
            |e| e["user"]["name"] = Value::Null,
            "user.name: null is not a string",
        );
    }

    #[test]
    fn enums_and_classification_are_checked() {
        broken(
            finding(),
            |e| e["class_uid"] = json!(4001),
            "class_uid: 4001 is not a class of the subset",
        );
        broken(
            finding(),
            |e| drop(e.as_object_mut().unwrap().remove("class_uid")),
            "class_uid: required attribute missing",
        );
        broken(
            finding(),
            |e| e["category_uid"] = json!(3),
            "category_uid: 3 is not one of [\"2\"]",
        );
        broken(
            finding(),
            |e| e["activity_id"] = json!(4),
            "activity_id: 4 is not one of [\"0\", \"1\", \"2\", \"3\", \"99\"]",
        );
        broken(
            finding(),
            |e| e["activity_id"] = json!(2),
            "type_uid: 200401, but class_uid * 100 + activity_id is 200402",
        );
        broken(
            finding(),
            |e| e["type_uid"] = json!(200402),
            "type_uid: 200402, but class_uid * 100 + activity_id is 200401",
        );
        broken(
            finding(),
            |e| e["severity_id"] = json!(7),
            "severity_id: 7 is not one of",
        );
        broken(
            finding(),
            |e| e["status_id"] = json!(5),
            "status_id: 5 is not one of",
        );
        broken(
            authentication(),
            |e| e["status_id"] = json!(3),
            "status_id: 3 is not one of [\"0\", \"1\", \"2\", \"99\"]",
        );
        broken(
            finding(),
            |e| e["severity"] = json!("High"),
            "severity: \"High\", but the caption of 5 is \"Critical\"",
        );
        broken(
            finding(),
            |e| e["class_name"] = json!("Finding"),
            "class_name: \"Finding\", but the caption of 2004 is \"Detection Finding\"",
        );
        broken(
            finding(),
            |e| e["type_name"] = json!("Detection Finding: Update"),
            "type_name: \"Detection Finding: Update\"",
        );
        broken(
            finding(),
            |e| e["metadata"]["version"] = json!("1.1.0"),
            "metadata.version: \"1.1.0\", not \"1.3.0\"",
        );
        // Activity 0 and 99 are every class's.
        let mut e = finding();
        e["activity_id"] = json!(99);
        e["activity_name"] = json!("Reopened");
        e["type_uid"] = json!(200499);
        e["type_name"] = json!("Detection Finding: Reopened");
        assert_eq!(violations(&e), Vec::<String>::new());
        e["activity_id"] = json!(0);
        e["type_uid"] = json!(200400);
        e["activity_name"] = json!("Unknown");
        e["type_name"] = json!("Detection Finding: Unknown");
        assert_eq!(violations(&e), Vec::<String>::new());
    }

    #[test]
    fn attributes_a_class_or_object_does_not_define_are_found() {
        broken(
            api_activity(),
            |e| e["user"] = json!({"name": "x"}),
            "user: not an attribute of this class/object",
        );
        broken(
            finding(),
            |e| e["finding_info"]["severity"] = json!("high"),
            "finding_info.severity: not an attribute",
        );
        broken(
            finding(),
            |e| e["metadata"]["source"] = json!("x"),
            "metadata.source: not an attribute",
        );
        // Base Event carries no finding.
        let mut e = finding();
        e["class_uid"] = json!(0);
        e["category_uid"] = json!(0);
        e["activity_id"] = json!(0);
        e["type_uid"] = json!(0);
        for k in [
            "class_name",
            "category_name",
            "activity_name",
            "type_name",
            "status_id",
            "status",
        ] {
            e.as_object_mut().unwrap().remove(k);
        }
        let v = violations(&e);
        assert!(
            v.iter()
                .any(|s| s.starts_with("finding_info: not an attribute")),
            "{v:#?}"
        );
        assert!(
            v.iter()
                .any(|s| s.starts_with("resources: not an attribute")),
            "{v:#?}"
        );
    }

    #[test]
    fn profile_attributes_are_required_only_when_the_profile_is_declared() {
        let mut e = finding();
        assert_eq!(violations(&e), Vec::<String>::new());
        e["metadata"]["profiles"] = json!(["cloud", "security_control"]);
        let v = violations(&e);
        assert!(
            v.iter().any(|s| s == "cloud: required attribute missing"),
            "{v:#?}"
        );
        assert!(
            v.iter()
                .any(|s| s == "action_id: required attribute missing"),
            "{v:#?}"
        );
    }

    #[test]
    fn the_form_checks_of_ip_email_mac_and_hostname() {
        assert!(is_ip("203.0.113.7") && is_ip("2001:db8::1") && is_ip("fe80::1%eth0"));
        assert!(!is_ip("203.0.113") && !is_ip("") && !is_ip("localhost"));
        assert!(is_email("alice@acme.com") && is_email("a.b+c@x-y.co.uk"));
        assert!(
            !is_email("alice")
                && !is_email("@acme.com")
                && !is_email("a@acme")
                && !is_email("a b@c.d")
        );
        assert!(
            is_mac("18:36:F3:98:4F:9A") && is_mac("18-36-f3-98-4f-9a") && !is_mac("1836F3984F9A")
        );
        assert!(is_hostname("r2-d2.example.com") && is_hostname("localhost"));
        assert!(!is_hostname("-x.com") && !is_hostname("a..b") && !is_hostname("a b"));
    }
}
