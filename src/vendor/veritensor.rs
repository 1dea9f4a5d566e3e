//! Veritensor (AI model scanner): `X-Veritensor-Signature-256: sha256=<hex HMAC-SHA256(body)>`.
//! No timestamp and no documented id: replay protection is the body digest.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{Claim, Facts, Key, Rejection, Unverified};

pub struct Veritensor;

const HEADER: &str = "x-veritensor-signature-256";

impl super::Scheme for Veritensor {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "sha256=", MacAlgorithm::Sha256)
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        // A scan id, when the payload carries one, is covered by the body signature.
        let id = common::json_str(json, &["scan_id"]).or_else(|| common::json_str(json, &["id"]));
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
            format!(
                "sha256={}",
                common::hex_mac(key, MacAlgorithm::Sha256, &[body])
            ),
        )]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": "scan.completed",
            "scan_id": id,
            "organization": "acme",
            "timestamp": common::rfc3339(ts),
            "vulnerabilities": [
                {"file": "model.pkl", "threat": "pickle.remote_code_execution", "severity": "critical",
                 "details": "GLOBAL os.system reachable from __reduce__"}
            ]
        })
        .to_string()
    }
}
