//! The few fields of an OCSF event that the SIEM sinks lift into their own envelopes (time,
//! id, severity, source, vendor, message), and the time formats they want them in.

use serde::Deserialize;

use crate::spool::Record;

/// What a sink reads of one event besides passing the event itself on.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Unix ms.
    pub time: Option<i64>,
    pub severity_id: u8,
    pub severity: Option<String>,
    pub message: Option<String>,
    pub class_uid: u64,
    pub class_name: Option<String>,
    pub metadata: Metadata,
    pub unmapped: Unmapped,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub uid: Option<String>,
    pub logged_time: Option<i64>,
    pub product: Product,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Product {
    pub vendor_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Unmapped {
    pub siemgate: Origin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Origin {
    pub source: Option<String>,
}

impl Summary {
    /// Reads the summary of an event as spooled. The gateway only spools JSON objects it built;
    /// anything it cannot read is summarised as empty (the event itself still goes through).
    pub fn of(event: &[u8]) -> Summary {
        serde_json::from_slice(event).unwrap_or_default()
    }

    /// The event's time, else its receipt time, in unix ms.
    pub fn time_ms(&self) -> i64 {
        self.time.or(self.metadata.logged_time).unwrap_or(0)
    }

    pub fn uid(&self) -> &str {
        self.metadata.uid.as_deref().unwrap_or("")
    }

    pub fn source(&self) -> &str {
        self.unmapped.siemgate.source.as_deref().unwrap_or("")
    }

    pub fn vendor(&self) -> &str {
        self.metadata.product.vendor_name.as_deref().unwrap_or("")
    }

    pub fn severity(&self) -> &str {
        self.severity
            .as_deref()
            .unwrap_or_else(|| crate::event::severity_name(self.severity_id))
    }

    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }
}

/// The columns both Azure sinks give every record (a Log Analytics table's schema; see
/// `deploy/sentinel/`), besides the time and the event.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Columns<'a> {
    pub event_id: &'a str,
    pub source: &'a str,
    pub vendor: &'a str,
    pub class_uid: u64,
    pub class_name: &'a str,
    pub severity_id: u8,
    pub severity: &'a str,
    pub message: &'a str,
}

impl Summary {
    pub fn columns(&self) -> Columns<'_> {
        Columns {
            event_id: self.uid(),
            source: self.source(),
            vendor: self.vendor(),
            class_uid: self.class_uid,
            class_name: self.class_name.as_deref().unwrap_or(""),
            severity_id: self.severity_id,
            severity: self.severity(),
            message: self.message(),
        }
    }
}

/// Encodes `events` as a JSON array, one element per event by `row`.
pub fn json_array(
    events: &[Record],
    mut row: impl FnMut(&Record, &mut Vec<u8>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    let mut body =
        Vec::with_capacity(events.iter().map(|e| e.event.len() + 256).sum::<usize>() + 2);
    body.push(b'[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        row(e, &mut body)?;
    }
    body.push(b']');
    Ok(body)
}

/// The event itself, to embed without re-serializing it.
pub fn raw(event: &[u8]) -> Result<&serde_json::value::RawValue, String> {
    serde_json::from_slice(event).map_err(|e| format!("the spooled event is not JSON: {e}"))
}

/// Unix ms as RFC 3339 UTC with milliseconds: `2025-01-01T00:00:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// Unix ms as epoch seconds with exactly three decimals, the form Splunk HEC documents.
pub fn epoch_seconds(ms: i64) -> String {
    let ms = ms.max(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_each_siem_wants_them() {
        assert_eq!(rfc3339_ms(1_735_689_600_123), "2025-01-01T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_735_689_601_500), "2025-01-01T00:00:01.500Z");
        assert_eq!(epoch_seconds(1_735_689_600_123), "1735689600.123");
        assert_eq!(epoch_seconds(1_735_689_601_005), "1735689601.005");
        assert_eq!(epoch_seconds(-5), "0.000");
    }

    #[test]
    fn a_summary_reads_the_ocsf_fields_and_survives_anything_else() {
        let s = Summary::of(
            br#"{"time":1735689600123,"severity_id":4,"severity":"High","message":"m",
                "class_uid":2004,"class_name":"Detection Finding",
                "metadata":{"uid":"evt_1","logged_time":1,"product":{"vendor_name":"acme"}},
                "unmapped":{"siemgate":{"source":"src-1"}}}"#,
        );
        assert_eq!(s.time_ms(), 1_735_689_600_123);
        assert_eq!(
            (s.uid(), s.source(), s.vendor()),
            ("evt_1", "src-1", "acme")
        );
        assert_eq!((s.severity_id, s.severity(), s.message()), (4, "High", "m"));
        let empty = Summary::of(br#"{"time":"yesterday"}"#);
        assert_eq!(
            (empty.uid(), empty.time_ms(), empty.severity()),
            ("", 0, "Unknown")
        );
    }
}
