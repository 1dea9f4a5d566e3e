//! What several vendors share: signed-bytes templates, MACs for hand-written signing, reading
//! a field of the (already verified) JSON body, and timestamp forms.

use std::borrow::Cow;

use time::OffsetDateTime;

pub use crate::verify::descriptor::{json_str, rfc3339, strip_prefix_ci};
use crate::verify::{mac, Key, MacAlgorithm, TemplatePart};

/// `"v0:{timestamp}:{body}"`, what Slack and Zoom sign.
pub const V0_TIMESTAMP_BODY: &[TemplatePart] = &[
    TemplatePart::Literal(Cow::Borrowed("v0:")),
    TemplatePart::Timestamp,
    TemplatePart::Literal(Cow::Borrowed(":")),
    TemplatePart::Body,
];

pub fn hex_mac(key: &Key, alg: MacAlgorithm, message: &[&[u8]]) -> String {
    hex::encode(mac::hmac(alg, key.mac(), message))
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
