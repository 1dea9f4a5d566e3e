//! The common event every sink receives: an OCSF event (CONTRACT §6).
//!
//! What an event is and the words shared by every vendor's mapping; the mappings themselves
//! are in [`crate::ocsf`] and the vendors' files.

use serde::ser::SerializeMap;
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

/// One OCSF event: its typed [`Head`] and the rest of it ([`Body`]). It serializes as the OCSF
/// event, its keys in sorted order at every level, written straight from these two parts: no
/// JSON tree of the whole event is built (`serde_json` writes the same JSON from either).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub head: Head,
    pub body: Body,
}

/// What an event carries besides its [`Head`]: the ids and names every OCSF event has, and, as
/// JSON, the class's own attributes and what the mapping leaves unmapped. `type_uid`,
/// `type_name` and `severity` are derived from the rest as the event is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub activity_id: u8,
    pub activity_name: &'static str,
    pub category_uid: u32,
    pub category_name: &'static str,
    /// `metadata.logged_time` (unix ms): when the gateway received the request.
    pub logged_time: i64,
    /// `metadata.correlation_uid`: the request's event id, when it yields several events.
    pub correlation_uid: Option<String>,
    /// The class's own attributes (`finding_info`, `user`, ...), at the top level. One named
    /// like an attribute every event has (`time`, `message`, ...) is left out.
    pub fields: Map<String, Value>,
    /// `unmapped`, but for `unmapped.siemgate` (which is written from `siemgate` and the head).
    pub unmapped: Map<String, Value>,
    /// `unmapped.siemgate` besides `source` and `vendor` (`normalize_error`, `raw_envelope`,
    /// `raw_data_encoding`).
    pub siemgate: Map<String, Value>,
    pub raw_data: Option<String>,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (h, b) = (&self.head, &self.body);
        let mut m = Merged::new(s.serialize_map(None)?, &b.fields);
        m.entry("activity_id", &b.activity_id)?;
        m.entry("activity_name", b.activity_name)?;
        m.entry("category_name", b.category_name)?;
        m.entry("category_uid", &b.category_uid)?;
        m.entry("class_name", &h.class_name)?;
        m.entry("class_uid", &h.class_uid)?;
        m.entry("message", &h.message)?;
        let metadata = Metadata {
            correlation_uid: b.correlation_uid.as_deref(),
            logged_time: b.logged_time,
            product: Product {
                name: &h.vendor,
                vendor_name: &h.vendor,
            },
            uid: &h.uid,
            version: OCSF_VERSION,
        };
        m.entry("metadata", &metadata)?;
        if let Some(raw) = &b.raw_data {
            m.entry("raw_data", raw)?;
        }
        m.entry("severity", h.severity())?;
        m.entry("severity_id", &h.severity_id)?;
        m.entry("time", &h.time_ms)?;
        m.entry("type_name", &TypeName(&h.class_name, b.activity_name))?;
        m.entry(
            "type_uid",
            &(u64::from(h.class_uid) * 100 + u64::from(b.activity_id)),
        )?;
        m.entry("unmapped", &Unmapped(self))?;
        m.end()
    }
}

/// A map's fixed entries, written in the caller's (sorted) order, merged with the sorted
/// entries of a JSON object: the map's keys come out sorted, as a `serde_json` object's would,
/// and where both name a key the fixed entry is written and the object's is left out.
struct Merged<'a, M> {
    map: M,
    rest: std::iter::Peekable<serde_json::map::Iter<'a>>,
    last: &'static str,
}

impl<'a, M: SerializeMap> Merged<'a, M> {
    fn new(map: M, object: &'a Map<String, Value>) -> Self {
        Merged {
            map,
            rest: object.iter().peekable(),
            last: "",
        }
    }

    fn entry<V: Serialize + ?Sized>(&mut self, key: &'static str, v: &V) -> Result<(), M::Error> {
        debug_assert!(self.last < key, "fixed keys out of order: {key}");
        self.last = key;
        while let Some((k, v)) = self.rest.next_if(|(k, _)| k.as_str() <= key) {
            if k != key {
                self.map.serialize_entry(k, v)?;
            }
        }
        self.map.serialize_entry(key, v)
    }

    fn end(mut self) -> Result<M::Ok, M::Error> {
        for (k, v) in self.rest {
            self.map.serialize_entry(k, v)?;
        }
        self.map.end()
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_uid: Option<&'a str>,
    logged_time: i64,
    product: Product<'a>,
    uid: &'a str,
    version: &'static str,
}

#[derive(Serialize)]
struct Product<'a> {
    name: &'a str,
    vendor_name: &'a str,
}

/// `type_name`: "<class name>: <activity name>", written without a string in between.
struct TypeName<'a>(&'a str, &'a str);

impl Serialize for TypeName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}: {}", self.0, self.1))
    }
}

/// `unmapped`: the mapping's unmapped attributes and `siemgate`.
struct Unmapped<'a>(&'a Event);

impl Serialize for Unmapped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Merged::new(s.serialize_map(None)?, &self.0.body.unmapped);
        m.entry("siemgate", &Siemgate(self.0))?;
        m.end()
    }
}

/// `unmapped.siemgate`: the source and vendor, and whatever else the gateway notes.
struct Siemgate<'a>(&'a Event);

impl Serialize for Siemgate<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = Merged::new(s.serialize_map(None)?, &self.0.body.siemgate);
        m.entry("source", &self.0.head.source)?;
        m.entry("vendor", &self.0.head.vendor)?;
        m.end()
    }
}

impl Event {
    /// The event as JSON, written into room reserved for it at once (`raw_data`, its quotes
    /// escaped, and about a kilobyte of OCSF attributes) rather than a buffer grown by doubling.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let raw = self
            .body
            .raw_data
            .as_ref()
            .map_or(0, |r| r.len() + r.len() / 4);
        let mut out = Vec::with_capacity(raw + 1024);
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }

    pub fn severity_id(&self) -> u8 {
        self.head.severity_id
    }

    pub fn class_uid(&self) -> u32 {
        self.head.class_uid
    }

    /// Whether the vendor's normalizer failed and this is the request as a Base Event
    /// (`unmapped.siemgate.normalize_error`).
    pub fn normalize_error(&self) -> bool {
        self.body.siemgate.contains_key("normalize_error")
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
    use serde_json::json;

    fn event(fields: Value, unmapped: Value, siemgate: Value) -> Event {
        let obj = |v: Value| v.as_object().cloned().unwrap();
        Event {
            head: Head {
                uid: "u-1".into(),
                time_ms: 7,
                severity_id: 4,
                class_uid: 2004,
                class_name: "Detection Finding".into(),
                source: "src".into(),
                vendor: "acme".into(),
                message: "m \"quoted\"".into(),
            },
            body: Body {
                activity_id: 1,
                activity_name: "Create",
                category_uid: 2,
                category_name: "Findings",
                logged_time: 9,
                correlation_uid: None,
                fields: obj(fields),
                unmapped: obj(unmapped),
                siemgate: obj(siemgate),
                raw_data: Some("{\"a\":1}".into()),
            },
        }
    }

    #[test]
    fn an_event_is_written_with_sorted_keys_and_its_own_attributes_win_over_the_mappings() {
        let e = event(
            // Before, between and after the fixed keys, and two that collide with them.
            json!({"actor": {"user": {"name": "x"}}, "finding_info": {"uid": "f"}, "zone": 1,
                   "message": "from the mapping", "time": 1}),
            json!({"a": 1, "siemgate": "shadow", "z": [1]}),
            json!({"normalize_error": "e", "source": "forged", "zz": true}),
        );
        let text = serde_json::to_string(&e).unwrap();
        let tree: Value = serde_json::from_str(&text).unwrap();
        // The same bytes as the tree: sorted keys, none written twice.
        assert_eq!(text, tree.to_string());
        assert_eq!(
            tree,
            json!({
                "activity_id": 1, "activity_name": "Create", "actor": {"user": {"name": "x"}},
                "category_name": "Findings", "category_uid": 2,
                "class_name": "Detection Finding", "class_uid": 2004,
                "finding_info": {"uid": "f"}, "message": "m \"quoted\"",
                "metadata": {"logged_time": 9, "product": {"name": "acme", "vendor_name": "acme"},
                             "uid": "u-1", "version": OCSF_VERSION},
                "raw_data": "{\"a\":1}", "severity": "High", "severity_id": 4, "time": 7,
                "type_name": "Detection Finding: Create", "type_uid": 200401,
                "unmapped": {"a": 1, "siemgate": {"normalize_error": "e", "source": "src",
                                                  "vendor": "acme", "zz": true}, "z": [1]},
                "zone": 1
            })
        );
        assert!(e.normalize_error());
        let mut several = event(json!({}), json!({}), json!({}));
        several.body.correlation_uid = Some("req".into());
        several.body.raw_data = None;
        let tree = serde_json::to_value(&several).unwrap();
        assert_eq!(tree["metadata"]["correlation_uid"], "req");
        assert!(tree.get("raw_data").is_none());
        assert!(!several.normalize_error());
    }

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
