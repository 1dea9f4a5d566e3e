//! Shapes that several vendors share: a prefixed hex HMAC of the body in one header, and
//! reading a field of the (already verified) JSON body.

use serde_json::Value;
use time::OffsetDateTime;

use crate::verify::{self, mac, Check, Claim, Key, Rejection, Unverified};
use crate::verify::{MacAlgorithm, TimestampUnit};

/// `Header: <prefix><hex HMAC(secret, body)>`, the most common scheme.
pub fn body_hex<'a>(
    req: &'a Unverified,
    header: &str,
    prefix: &str,
    alg: MacAlgorithm,
) -> Result<Claim<'a>, Rejection> {
    let value = verify::required_header(req, header)?;
    let sig =
        strip_prefix_ci(value, prefix).ok_or(Rejection::malformed("signature prefix missing"))?;
    let candidates = verify::candidates([sig], verify::decode_hex)?;
    Ok(Claim {
        check: Check::Mac {
            alg,
            key: None,
            message: vec![&req.body],
            candidates,
        },
    })
}

/// Case-insensitive prefix strip (`sha256=` vs `SHA256=`).
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

pub fn hex_mac(key: &Key, alg: MacAlgorithm, message: &[&[u8]]) -> String {
    hex::encode(mac::hmac(alg, key.mac(), message))
}

pub fn b64_mac(key: &Key, alg: MacAlgorithm, message: &[&[u8]]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(mac::hmac(alg, key.mac(), message))
}

/// A string field of the verified body (`event_id`), capped like an id header.
pub fn json_str(json: Option<&Value>, path: &[&str]) -> Option<String> {
    let mut v = json?;
    for p in path {
        v = v.get(p)?;
    }
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= verify::MAX_ID_LEN => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A timestamp field of the verified body. Absent or of another form: no timestamp (the body
/// is signed, so it cannot have been forged; de-duplication still applies).
pub fn json_time(json: Option<&Value>, field: &str, unit: TimestampUnit) -> Option<OffsetDateTime> {
    let v = json?.get(field)?;
    let raw = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    verify::parse_timestamp(&raw, unit).ok()
}

pub fn rfc3339(ts: OffsetDateTime) -> String {
    ts.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ts.unix_timestamp().to_string())
}

/// ISO-8601 with milliseconds and `Z`, as SyVault and Spectral write it.
pub fn iso_millis(ts: OffsetDateTime) -> String {
    let ts = ts.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        ts.year(),
        u8::from(ts.month()),
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second(),
        ts.millisecond()
    )
}
