//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(body)>` (the Events product sends
//! `Shopify-Hmac-Sha256`; both are accepted). De-duplicated on `X-Shopify-Event-Id`, which
//! is not signed, so the body digest is recorded too.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::MacAlgorithm;
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Shopify;

const HEADER: &str = "x-shopify-hmac-sha256";
const HEADER_EVENTS: &str = "shopify-hmac-sha256";

impl super::Scheme for Shopify {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let sig = match verify::single_header(req, HEADER)? {
            Some(s) => s,
            None => verify::required_header(req, HEADER_EVENTS)?,
        };
        let candidates = verify::candidates([sig], verify::decode_b64)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![&req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        let id = match verify::id_header(req, "x-shopify-event-id")? {
            Some(id) => Some(id),
            None => verify::id_header(req, "shopify-event-id")?,
        };
        Ok(Facts {
            id,
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], _ts: OffsetDateTime, id: &str) -> Vec<(String, String)> {
        vec![
            (
                HEADER.into(),
                common::b64_mac(key, MacAlgorithm::Sha256, &[body]),
            ),
            ("x-shopify-event-id".into(), id.into()),
            ("x-shopify-topic".into(), "customers/data_request".into()),
            (
                "x-shopify-shop-domain".into(),
                "example.myshopify.com".into(),
            ),
        ]
    }

    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "shop_id": 954889,
            "shop_domain": "example.myshopify.com",
            "customer": {"id": 191167, "email": "john@example.com"},
            "data_request": {"id": id}
        })
        .to_string()
    }
}
