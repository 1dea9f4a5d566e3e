//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...][,v0=...]` over `"{t}.{body}"`,
//! HMAC-SHA256 keyed with the endpoint secret as written (`whsec_...` included). Every `v1` is a
//! candidate; other schemes (`v0`) are ignored. The event id is the body's `id`.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Stripe;

const HEADER: &str = "stripe-signature";

fn parse(value: &str) -> Result<(&str, Vec<&str>), Rejection> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in verify::split_list(value, ',')? {
        match part.split_once('=') {
            Some(("t", v)) => {
                if t.replace(v).is_some() {
                    return Err(Rejection::malformed("timestamp given twice"));
                }
            }
            Some(("v1", v)) => v1.push(v),
            Some(_) => {}
            None => return Err(Rejection::malformed("entry without '='")),
        }
    }
    let t = t.ok_or(Rejection::malformed("no timestamp in signature header"))?;
    Ok((t, v1))
}

impl super::Scheme for Stripe {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let (t, v1) = parse(verify::required_header(req, HEADER)?)?;
        let candidates = verify::candidates(v1, verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![t.as_bytes(), b".", &req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let (t, _) = parse(verify::required_header(req, HEADER)?)?;
        let id = common::json_str(json, &["id"]);
        Ok(Facts {
            signed_time: Some(verify::parse_timestamp(t, TimestampUnit::Seconds)?),
            id_signed: id.is_some(),
            id,
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, _id: &str) -> Vec<(String, String)> {
        let t = ts.unix_timestamp().to_string();
        let sig = common::hex_mac(key, MacAlgorithm::Sha256, &[t.as_bytes(), b".", body]);
        vec![(HEADER.into(), format!("t={t},v1={sig}"))]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "id": id,
            "object": "event",
            "type": "radar.early_fraud_warning.created",
            "created": ts.unix_timestamp(),
            "livemode": false,
            "data": {"object": {"id": "issfr_1", "fraud_type": "card_never_received", "actionable": true}}
        })
        .to_string()
    }
}
