//! Fitting an event into a sink's per-event limit by cutting its `raw_data`.
//!
//! A sink whose service has a per-event limit says how big an event is as it sends it
//! ([`super::Sink::event_size`]). An event over the limit is sent with `raw_data` cut to the longest
//! prefix that fits (whole characters; whole base64 quanta when the body was base64), or left
//! out when nothing of it fits, and flagged with `unmapped.siemgate.raw_data_truncated = true`
//! and `unmapped.siemgate.raw_data_length` (its length in bytes before the cut). Everything
//! else of the event is kept. What still does not fit is a dead letter or sent as it is
//! ([`super::EventSize::refuse`]).

use serde_json::{Map, Value};

/// The event with `raw_data` cut so that its JSON takes at most `max` bytes (or as few as
/// cutting `raw_data` can make it); `None` when it has no `raw_data` to cut or is not a JSON
/// object.
pub fn cut_raw_data(event: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut e: Value = serde_json::from_slice(event).ok()?;
    let Some(Value::String(raw)) = e.as_object_mut()?.remove("raw_data") else {
        return None;
    };
    // siemgate's events have `unmapped.siemgate`; anything else there is replaced.
    if !e["unmapped"].is_object() {
        e["unmapped"] = Value::Object(Map::new());
    }
    if !e["unmapped"]["siemgate"].is_object() {
        e["unmapped"]["siemgate"] = Value::Object(Map::new());
    }
    let siemgate = &mut e["unmapped"]["siemgate"];
    let base64 = siemgate["raw_data_encoding"] == "base64";
    siemgate["raw_data_truncated"] = Value::Bool(true);
    siemgate["raw_data_length"] = Value::from(raw.len());
    // The event with an empty raw_data: what is left of `max` is for its escaped text.
    e["raw_data"] = Value::String(String::new());
    let base = serde_json::to_vec(&e).ok()?.len();
    let keep = prefix_fitting(&raw, max.saturating_sub(base), base64);
    if keep == 0 {
        e.as_object_mut()?.remove("raw_data");
    } else {
        e["raw_data"] = Value::String(raw[..keep].to_string());
    }
    serde_json::to_vec(&e).ok()
}

/// The length of the longest prefix of `s` (on a character boundary, and a multiple of 4 for
/// base64) whose JSON-escaped text takes at most `budget` bytes.
fn prefix_fitting(s: &str, budget: usize, base64: bool) -> usize {
    let mut used = 0;
    let mut keep = 0;
    for (i, c) in s.char_indices() {
        used += escaped_len(c);
        if used > budget {
            break;
        }
        keep = i + c.len_utf8();
    }
    if base64 {
        keep -= keep % 4;
    }
    keep
}

/// How many bytes serde_json writes for `c` inside a string.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(raw: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"class_uid": 2004, "message": "m",
            "unmapped": {"siemgate": {"source": "s"}}, "raw_data": raw}))
        .unwrap()
    }

    #[test]
    fn raw_data_is_cut_to_fit_exactly_and_flagged() {
        let raw = "\"\\\n\u{1}é€x".repeat(1000);
        let whole = event(&raw);
        for max in [200, 1000, 4321, whole.len() - 1] {
            let cut = cut_raw_data(&whole, max).unwrap();
            assert!(cut.len() <= max, "{} > {max}", cut.len());
            let v: Value = serde_json::from_slice(&cut).unwrap();
            assert_eq!(v["unmapped"]["siemgate"]["raw_data_truncated"], true);
            assert_eq!(v["unmapped"]["siemgate"]["raw_data_length"], raw.len());
            assert_eq!(v["unmapped"]["siemgate"]["source"], "s");
            let kept = v["raw_data"].as_str().unwrap();
            assert!(raw.starts_with(kept));
            // Not a character more would have fitted.
            let next = raw[kept.len()..].chars().next().unwrap();
            assert!(cut.len() + escaped_len(next) > max);
        }
    }

    #[test]
    fn raw_data_is_left_out_when_none_fits_and_base64_keeps_whole_quanta() {
        let cut = cut_raw_data(&event(&"x".repeat(500)), 10).unwrap();
        let v: Value = serde_json::from_slice(&cut).unwrap();
        assert!(v.get("raw_data").is_none());
        assert_eq!(v["unmapped"]["siemgate"]["raw_data_truncated"], true);
        let b64 = serde_json::to_vec(
            &json!({"unmapped": {"siemgate": {"raw_data_encoding": "base64"}},
            "raw_data": "QUJD".repeat(100)}),
        )
        .unwrap();
        let cut = cut_raw_data(&b64, 150).unwrap();
        let v: Value = serde_json::from_slice(&cut).unwrap();
        assert_eq!(v["raw_data"].as_str().unwrap().len() % 4, 0);
        assert_eq!(cut_raw_data(b"{\"a\":1}", 3), None);
        assert_eq!(cut_raw_data(b"not json", 3), None);
    }
}
