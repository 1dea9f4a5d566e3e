//! SyVault (SIEM event streaming): `X-VF-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! The body carries `event_id` (de-duplicated on) and `timestamp` (ISO-8601 with milliseconds),
//! both covered by the signature.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{Claim, Facts, Key, Rejection, Unverified};

pub struct Syvault;

const HEADER: &str = "x-vf-signature-256";

impl super::Scheme for Syvault {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "sha256=", MacAlgorithm::Sha256)
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let id = common::json_str(json, &["event_id"]);
        Ok(Facts {
            signed_time: common::json_time(json, "timestamp", TimestampUnit::Iso8601),
            id_signed: id.is_some(),
            id,
        })
    }

    fn sign(
        &self,
        key: &Key,
        body: &[u8],
        _ts: OffsetDateTime,
        _id: &str,
    ) -> Vec<(String, String)> {
        vec![
            (
                HEADER.into(),
                format!(
                    "sha256={}",
                    common::hex_mac(key, MacAlgorithm::Sha256, &[body])
                ),
            ),
            ("x-vf-webhook-version".into(), "1".into()),
        ]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event_id": id,
            "event_type": "user.login.failed",
            "timestamp": common::iso_millis(ts),
            "actor": {"user_id": "usr_a1b2c3d4e5f6", "email": "alice@acme.com", "ip": "203.0.113.7",
                      "user_agent": "Mozilla/5.0"},
            "target": {"type": "session", "id": "sess_x1y2z3w4v5u6"}
        })
        .to_string()
    }
}
