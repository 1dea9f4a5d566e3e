//! The common event every sink receives: an OCSF event (CONTRACT §6).
//!
//! What an event is and the words shared by every vendor's mapping; the mappings themselves
//! are in [`crate::ocsf`] and the vendors' files.

use serde::Serialize;
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

/// What routing, metrics and every SIEM's envelope need of an event, typed. Written once by
/// [`crate::ocsf`] as it builds the event, spooled beside the event's JSON, and read by the
/// sinks from there: nothing reads these back out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    /// `metadata.uid`.
    pub uid: String,
    /// `time` (unix ms): the vendor's time of the event, else its receipt.
    pub time_ms: i64,
    /// `severity_id`, 0-6 or 99.
    pub severity_id: u8,
    pub class_uid: u32,
    pub class_name: String,
    /// `unmapped.siemgate.source`: the source id it came in on.
    pub source: String,
    /// `metadata.product.vendor_name`.
    pub vendor: String,
    pub message: String,
}

impl Head {
    /// `severity`, as OCSF names `severity_id`.
    pub fn severity(&self) -> &'static str {
        severity_name(self.severity_id)
    }

    /// The head of an event known only as JSON: a record spooled by an older version, or a
    /// dead letter put back in the queue. Missing fields are empty.
    pub fn of_json(event: &[u8]) -> Head {
        match serde_json::from_slice::<Map<String, Value>>(event) {
            Ok(m) => Head::of(&m),
            Err(_) => Head::default(),
        }
    }

    fn of(m: &Map<String, Value>) -> Head {
        let at = |path: &[&str]| -> Option<&Value> {
            let (first, rest) = path.split_first()?;
            rest.iter().try_fold(m.get(*first)?, |v, k| v.get(k))
        };
        let text = |path: &[&str]| {
            at(path)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Head {
            uid: text(&["metadata", "uid"]),
            time_ms: at(&["time"])
                .and_then(Value::as_i64)
                .or_else(|| at(&["metadata", "logged_time"]).and_then(Value::as_i64))
                .unwrap_or(0),
            severity_id: at(&["severity_id"])
                .and_then(Value::as_u64)
                .map_or(0, |s| s.min(99) as u8),
            class_uid: at(&["class_uid"])
                .and_then(Value::as_u64)
                .map_or(0, |c| c.min(u64::from(u32::MAX)) as u32),
            class_name: text(&["class_name"]),
            source: text(&["unmapped", "siemgate", "source"]),
            vendor: text(&["metadata", "product", "vendor_name"]),
            message: text(&["message"]),
        }
    }
}

/// One OCSF event: its typed [`Head`] and its JSON body. It serializes as the body alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub head: Head,
    pub body: Map<String, Value>,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.body.serialize(s)
    }
}

impl Event {
    pub fn severity_id(&self) -> u8 {
        self.head.severity_id
    }

    pub fn class_uid(&self) -> u32 {
        self.head.class_uid
    }

    /// Whether the vendor's normalizer failed and this is the request as a Base Event
    /// (`unmapped.siemgate.normalize_error`).
    pub fn normalize_error(&self) -> bool {
        self.body
            .get("unmapped")
            .and_then(|u| u.get("siemgate"))
            .and_then(|s| s.get("normalize_error"))
            .is_some()
    }
}

/// What the gateway knows of a source when it builds events.
pub struct Origin<'a> {
    pub source_id: &'a str,
    pub vendor: &'a str,
    pub include_raw: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_read_from_json_takes_the_ocsf_fields_and_survives_anything_else() {
        let h = Head::of_json(
            br#"{"time":1735689600123,"severity_id":4,"severity":"High","message":"m",
                "class_uid":2004,"class_name":"Detection Finding",
                "metadata":{"uid":"evt_1","logged_time":1,"product":{"vendor_name":"acme"}},
                "unmapped":{"siemgate":{"source":"src-1"}}}"#,
        );
        assert_eq!(h.time_ms, 1_735_689_600_123);
        assert_eq!(
            (h.uid.as_str(), h.source.as_str(), h.vendor.as_str()),
            ("evt_1", "src-1", "acme")
        );
        assert_eq!(
            (h.severity_id, h.severity(), h.message.as_str()),
            (4, "High", "m")
        );
        assert_eq!(
            (h.class_uid, h.class_name.as_str()),
            (2004, "Detection Finding")
        );
        let odd = Head::of_json(br#"{"time":"yesterday","metadata":{"logged_time":7}}"#);
        assert_eq!(
            (odd.uid.as_str(), odd.time_ms, odd.severity()),
            ("", 7, "Unknown")
        );
        assert_eq!(Head::of_json(b"not json"), Head::default());
    }
}
