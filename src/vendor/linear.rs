//! Linear: `Linear-Signature: <hex HMAC-SHA256(body)>`. The timestamp is the body field
//! `webhookTimestamp` in milliseconds (signed). `Linear-Delivery` (unsigned) is the delivery id.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{self, Claim, Facts, Key, Rejection, Unverified};

pub struct Linear;

const HEADER: &str = "linear-signature";

impl super::Scheme for Linear {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "", MacAlgorithm::Sha256)
    }

    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts {
            signed_time: common::json_time(json, "webhookTimestamp", TimestampUnit::Milliseconds),
            id: verify::id_header(req, "linear-delivery")?,
            id_signed: false,
        })
    }

    fn sign(&self, key: &Key, body: &[u8], _ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        vec![
            (
                HEADER.into(),
                common::hex_mac(key, MacAlgorithm::Sha256, &[body]),
            ),
            ("linear-delivery".into(), id.into()),
            ("linear-event".into(), "Issue".into()),
        ]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "create",
            "type": "Issue",
            "data": {"id": id, "title": "Rotate leaked API key", "priority": 1},
            "url": "https://linear.app/acme/issue/SEC-1",
            "webhookTimestamp": (ts.unix_timestamp_nanos() / 1_000_000) as i64,
            "webhookId": "3a1b"
        })
        .to_string()
    }
}
