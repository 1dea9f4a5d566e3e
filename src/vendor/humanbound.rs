//! Humanbound (AI red-teaming): `X-Humanbound-Signature: sha256=<hex HMAC-SHA256(body)>`.
//! The timestamp is the body field `timestamp` (unix seconds), covered by the signature.
//! No event id is documented: replay protection is the body digest.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{Claim, Facts, Key, Rejection, Unverified};

pub struct Humanbound;

const HEADER: &str = "x-humanbound-signature";

impl super::Scheme for Humanbound {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "sha256=", MacAlgorithm::Sha256)
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts {
            signed_time: common::json_time(json, "timestamp", TimestampUnit::Seconds),
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
            format!(
                "sha256={}",
                common::hex_mac(key, MacAlgorithm::Sha256, &[body])
            ),
        )]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event_type": "finding.created",
            "organisation_id": "00000000-0000-0000-0000-000000000001",
            "project_id": "00000000-0000-0000-0000-000000000002",
            "timestamp": ts.unix_timestamp(),
            "severity": "critical",
            "title": "New critical finding: Prompt Injection via System Override",
            "description": "New critical finding: Prompt Injection via System Override [LLM01]",
            "category": "prompt_injection",
            "owasp_category": "LLM01",
            "data": {"finding_id": id}
        })
        .to_string()
    }
}
