//! GitLab. Two forms:
//! - the secret token: `X-Gitlab-Token: <the secret itself>`, compared in constant time;
//! - the signing token (Standard Webhooks form): `webhook-signature: v1,<base64>` over
//!   `"{webhook-id}.{webhook-timestamp}.{body}"` with a `whsec_` secret. Used when present.
//!
//! De-duplicated on `Idempotency-Key` (the same on retries), else `X-Gitlab-Event-UUID`.

use serde_json::Value;
use time::OffsetDateTime;

use super::standard_webhooks as sw;
use crate::config::Secret;
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Gitlab;

const TOKEN: &str = "x-gitlab-token";

fn signed(req: &Unverified) -> bool {
    req.headers.contains_key(sw::WEBHOOK.signature)
}

impl super::Scheme for Gitlab {
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        // A whsec_ secret is a signing token; anything else is a plain secret token.
        if secret.expose().starts_with(b"whsec_") {
            sw::prepare(secret)
        } else {
            Ok(Key::plain(secret.expose()))
        }
    }

    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        if signed(req) {
            return sw::claim(req, &sw::WEBHOOK);
        }
        let token = verify::required_header(req, TOKEN)?;
        Ok(Claim {
            check: Check::Token {
                presented: token.as_bytes(),
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        if signed(req) {
            return sw::facts(req, &sw::WEBHOOK);
        }
        let id = match verify::id_header(req, "idempotency-key")? {
            Some(id) => Some(id),
            None => verify::id_header(req, "x-gitlab-event-uuid")?,
        };
        Ok(Facts {
            id,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        let mut h = if key.raw().starts_with(b"whsec_") {
            sw::sign(key, &sw::WEBHOOK, body, ts, id)
        } else {
            vec![(
                TOKEN.into(),
                String::from_utf8_lossy(key.raw()).into_owned(),
            )]
        };
        h.push(("idempotency-key".into(), id.into()));
        h.push(("x-gitlab-event".into(), "Vulnerability Hook".into()));
        h
    }

    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "object_kind": "vulnerability",
            "object_attributes": {"id": id, "title": "SQL injection in /search", "severity": "high",
                                  "state": "detected", "report_type": "sast"},
            "project": {"path_with_namespace": "acme/api"}
        })
        .to_string()
    }
}
