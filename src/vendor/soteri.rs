//! Soteri (Security for Jira): `X-Soteri-Signature` is a comma-separated list of base64
//! HMAC-SHA256 signatures of the body, one per secret configured at Soteri; any may match.
//! No timestamp or id: replay protection is the body digest.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Soteri;

const HEADER: &str = "x-soteri-signature";

impl super::Scheme for Soteri {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let value = verify::required_header(req, HEADER)?;
        let entries = verify::split_list(value, ',')?;
        let candidates = verify::candidates(entries, verify::decode_b64)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![&req.body],
                candidates,
            },
        })
    }

    fn facts(&self, _req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts::default())
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
            common::b64_mac(key, MacAlgorithm::Sha256, &[body]),
        )]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "eventType": "SECRET_FOUND",
            "timestamp": common::rfc3339(ts),
            "auditId": id,
            "secretsFound": 1,
            "issueKey": "SEC-42",
            "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Alice"}
        })
        .to_string()
    }
}
