//! What the SIEM sinks share in building their envelopes: the Azure columns, taken from the
//! event's typed head ([`crate::event::Head`], spooled beside the event, never re-read from its
//! JSON), the time formats each SIEM wants, and the JSON array of a batch.

use crate::event::Head;
use crate::spool::Record;

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

/// The Azure columns of an event, from its head.
pub fn columns(h: &Head) -> Columns<'_> {
    Columns {
        event_id: &h.uid,
        source: &h.source,
        vendor: &h.vendor,
        class_uid: u64::from(h.class_uid),
        class_name: &h.class_name,
        severity_id: h.severity_id,
        severity: h.severity(),
        message: &h.message,
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
}
