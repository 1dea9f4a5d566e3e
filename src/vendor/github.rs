//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>`. The legacy SHA-1
//! `X-Hub-Signature` is never accepted. `X-GitHub-Delivery` (unsigned) is the delivery id.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{self, Claim, Facts, Key, Rejection, Unverified};

pub struct Github;

const HEADER: &str = "x-hub-signature-256";

impl super::Scheme for Github {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        common::body_hex(req, HEADER, "sha256=", MacAlgorithm::Sha256)
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts {
            id: verify::id_header(req, "x-github-delivery")?,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], _ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        vec![
            (
                HEADER.into(),
                format!(
                    "sha256={}",
                    common::hex_mac(key, MacAlgorithm::Sha256, &[body])
                ),
            ),
            ("x-github-delivery".into(), id.into()),
            ("x-github-event".into(), "code_scanning_alert".into()),
        ]
    }

    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "action": "created",
            "alert": {"number": 42, "rule": {"id": "js/sql-injection", "severity": "error",
                      "security_severity_level": "high", "description": "Database query built from user-controlled sources"},
                      "html_url": format!("https://github.com/acme/api/security/code-scanning/{id}")},
            "repository": {"full_name": "acme/api"},
            "sender": {"login": "octocat"}
        })
        .to_string()
    }
}
