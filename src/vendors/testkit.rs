//! The vendor test kit: runs a normalizer on a body the way the gateway hands it one, for the
//! unit tests in each vendor's file. `runner!` writes the file's `run`:
//!
//! - `runner!(Humanbound, "humanbound")`: `run(body)` normalizes a JSON body sent with no
//!   headers (request id `req-1`);
//! - `runner!("linear")`: `run(normalizer, &body, &[(header, value)])` normalizes it with those
//!   headers, the body's JSON text as its bytes (request id `e-1`).

use serde_json::Value;
use time::OffsetDateTime;

use crate::ocsf::{Draft, Input, Normalizer};

/// Bodies of the wrong shape: an error (the framework forwards them as Base Events) or a draft,
/// never a panic.
pub const ODD: &[&str] = &["null", "[]", "{}", "1", "\"x\"", "[{}]"];

/// Normalizes `body` as a request of `vendor` with these headers, raw bytes and event id.
pub fn normalize(
    n: &dyn Normalizer,
    vendor: &str,
    body: &Value,
    bytes: &[u8],
    headers: &[(&'static str, &str)],
    event_id: &str,
) -> Result<Vec<Draft>, String> {
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, http::HeaderValue::from_str(v).unwrap());
    }
    let input = Input {
        vendor,
        json: Some(body),
        headers: &h,
        body: bytes,
        event_id,
        vendor_time: None,
        received: OffsetDateTime::UNIX_EPOCH,
    };
    n.normalize(&input)
}

/// Writes the test module's `run` (see the module documentation).
macro_rules! runner {
    ($normalizer:expr, $vendor:literal) => {
        fn run(body: serde_json::Value) -> Result<Vec<crate::ocsf::Draft>, String> {
            crate::vendors::testkit::normalize(&$normalizer, $vendor, &body, b"", &[], "req-1")
        }
    };
    ($vendor:literal) => {
        fn run(
            n: &dyn crate::ocsf::Normalizer,
            body: &serde_json::Value,
            headers: &[(&'static str, &str)],
        ) -> Result<Vec<crate::ocsf::Draft>, String> {
            let bytes = body.to_string();
            crate::vendors::testkit::normalize(n, $vendor, body, bytes.as_bytes(), headers, "e-1")
        }
    };
}
pub(crate) use runner;
