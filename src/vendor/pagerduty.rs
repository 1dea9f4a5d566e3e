//! PagerDuty (v3 webhooks): `X-PagerDuty-Signature: v1=<hex>,v1=<hex>` (one per signing
//! secret), HMAC-SHA256 of the body. No timestamp. The event id is the body's `event.id`.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Pagerduty;

const HEADER: &str = "x-pagerduty-signature";

impl super::Scheme for Pagerduty {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let value = verify::required_header(req, HEADER)?;
        let entries = verify::split_list(value, ',')?;
        let v1 = entries.into_iter().filter_map(|e| e.strip_prefix("v1="));
        let candidates = verify::candidates(v1, verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![&req.body],
                candidates,
            },
        })
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let id = common::json_str(json, &["event", "id"]);
        Ok(Facts {
            id_signed: id.is_some(),
            id,
            ..Facts::default()
        })
    }

    fn sign(
        &self,
        key: &Key,
        body: &[u8],
        _ts: OffsetDateTime,
        _id: &str,
    ) -> Vec<(String, String)> {
        vec![(
            HEADER.into(),
            format!("v1={}", common::hex_mac(key, MacAlgorithm::Sha256, &[body])),
        )]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": {
                "id": id,
                "event_type": "incident.triggered",
                "resource_type": "incident",
                "occurred_at": common::iso_millis(ts),
                "data": {"id": "PGR0VU2", "title": "Disk full on db-1", "urgency": "high",
                         "priority": {"summary": "P1"}}
            }
        })
        .to_string()
    }
}
