//! The common event every sink receives: an OCSF event (CONTRACT §6).
//!
//! Until the per-vendor OCSF mappings land, every verified request becomes one OCSF Base Event
//! (class 0) carrying the source, vendor, event id, receipt time, the vendor's time and severity
//! where given, and the raw body.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::verify::Verified;

/// The OCSF schema version siemgate emits (`metadata.version`).
pub const OCSF_VERSION: &str = "1.3.0";

/// Vendor severity words to OCSF `severity_id`: critical→5, high→4, medium→3, low→2, info→1,
/// anything else unknown→0.
pub fn severity_id(word: &str) -> Option<u8> {
    Some(match word.trim().to_ascii_lowercase().as_str() {
        "critical" | "fatal" | "p1" => 5,
        "high" | "error" | "p2" => 4,
        "medium" | "moderate" | "warning" | "warn" | "p3" => 3,
        "low" | "p4" => 2,
        "info" | "informational" | "information" | "p5" => 1,
        "unknown" => 0,
        _ => return None,
    })
}

pub fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        6 => "Fatal",
        _ => "Unknown",
    }
}

/// Unix time in milliseconds, as OCSF `time` fields and the spool carry it.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// One OCSF event, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event(pub Map<String, Value>);

impl Event {
    pub fn severity_id(&self) -> u8 {
        self.0
            .get("severity_id")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(6) as u8
    }

    pub fn uid(&self) -> Option<&str> {
        self.0.get("metadata")?.get("uid")?.as_str()
    }

    pub fn time_ms(&self) -> Option<i64> {
        self.0.get("time")?.as_i64()
    }

    pub fn class_uid(&self) -> u64 {
        self.0.get("class_uid").and_then(Value::as_u64).unwrap_or(0)
    }
}

/// What the gateway knows of a source when it builds events.
pub struct Origin<'a> {
    pub source_id: &'a str,
    pub vendor: &'a str,
    pub include_raw: bool,
}

/// A Base Event for a verified request.
pub fn base_event(origin: &Origin<'_>, v: &Verified) -> Event {
    let logged = unix_ms(v.received_at());
    let json = v.json();
    let severity = json
        .and_then(|j| j.get("severity"))
        .and_then(Value::as_str)
        .and_then(severity_id)
        .unwrap_or(0);
    let message = json
        .and_then(|j| {
            ["title", "message", "event_type", "type", "event", "action"]
                .iter()
                .find_map(|k| j.get(*k)?.as_str())
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} webhook", origin.vendor));
    let mut e = json!({
        "class_uid": 0,
        "class_name": "Base Event",
        "category_uid": 0,
        "category_name": "Uncategorized",
        "activity_id": 0,
        "type_uid": 0,
        "time": v.vendor_time().map(unix_ms).unwrap_or(logged),
        "severity_id": severity,
        "severity": severity_name(severity),
        "message": message,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": v.event_id(),
            "logged_time": logged,
            "product": {"name": origin.vendor, "vendor_name": origin.vendor},
        },
        "unmapped": {"siemgate": {"source": origin.source_id, "vendor": origin.vendor}},
    });
    if origin.include_raw {
        let map = e.as_object_mut().expect("object literal");
        match std::str::from_utf8(v.body()) {
            Ok(s) => {
                map.insert("raw_data".into(), Value::String(s.to_string()));
            }
            Err(_) => {
                map.insert(
                    "raw_data".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(v.body())),
                );
                map["unmapped"]["siemgate"]["raw_data_encoding"] = Value::String("base64".into());
            }
        }
    }
    match e {
        Value::Object(m) => Event(m),
        _ => unreachable!("object literal"),
    }
}
