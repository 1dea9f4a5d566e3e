//! Sentry (integration platform): `Sentry-Hook-Signature: <hex HMAC-SHA256(body)>`.
//! `Sentry-Hook-Timestamp` is not signed, so no window is applied to it. `Request-ID`
//! (unsigned) is the delivery id.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{self, Claim, Facts, Key, Rejection, Unverified};

pub struct Sentry;

const HEADER: &str = "sentry-hook-signature";

impl super::Scheme for Sentry {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "", MacAlgorithm::Sha256)
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts {
            id: verify::id_header(req, "request-id")?,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        vec![
            (
                HEADER.into(),
                common::hex_mac(key, MacAlgorithm::Sha256, &[body]),
            ),
            ("request-id".into(), id.into()),
            ("sentry-hook-resource".into(), "issue".into()),
            (
                "sentry-hook-timestamp".into(),
                ts.unix_timestamp().to_string(),
            ),
        ]
    }

    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "created",
            "installation": {"uuid": "a8e5d37a"},
            "data": {"issue": {"id": id, "title": "TypeError: Cannot read properties of undefined", "level": "error",
                               "culprit": "app/checkout.js"}}
        })
        .to_string()
    }
}
