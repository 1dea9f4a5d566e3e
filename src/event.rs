//! The common event every sink receives: an OCSF event (CONTRACT §6).
//!
//! What an event is and the words shared by every vendor's mapping; the mappings themselves
//! are in [`crate::ocsf`] and the vendors' files.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

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

    /// Whether the vendor's normalizer failed and this is the request as a Base Event
    /// (`unmapped.siemgate.normalize_error`).
    pub fn normalize_error(&self) -> bool {
        self.0
            .get("unmapped")
            .and_then(|u| u.get("siemgate"))
            .and_then(|s| s.get("normalize_error"))
            .is_some()
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
