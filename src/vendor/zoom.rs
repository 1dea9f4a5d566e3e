//! Zoom: `x-zm-signature: v0=<hex HMAC-SHA256("v0:{timestamp}:{body}")>` with
//! `x-zm-request-timestamp` (unix seconds, signed). No id header: the signed bytes' digest is
//! the replay key.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Zoom;

const SIG: &str = "x-zm-signature";
const TS: &str = "x-zm-request-timestamp";

impl super::Scheme for Zoom {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let sig = verify::required_header(req, SIG)?;
        let ts = verify::single_header(req, TS)?
            .ok_or(Rejection::missing("timestamp header missing"))?;
        let hex = common::strip_prefix_ci(sig, "v0=")
            .ok_or(Rejection::malformed("signature prefix missing"))?;
        let candidates = verify::candidates([hex], verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: None,
                message: vec![b"v0:", ts.as_bytes(), b":", &req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        let ts = verify::required_header(req, TS)?;
        Ok(Facts {
            signed_time: Some(verify::parse_timestamp(ts, TimestampUnit::Seconds)?),
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, _id: &str) -> Vec<(String, String)> {
        let t = ts.unix_timestamp().to_string();
        let sig = common::hex_mac(
            key,
            MacAlgorithm::Sha256,
            &[b"v0:", t.as_bytes(), b":", body],
        );
        vec![(SIG.into(), format!("v0={sig}")), (TS.into(), t)]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "event": "user.signed_in",
            "event_ts": ts.unix_timestamp() * 1000,
            "payload": {"account_id": "AAAAAABBBB", "object": {"id": id, "email": "alice@acme.com",
                        "client_type": "browser", "ip_address": "203.0.113.7"}}
        })
        .to_string()
    }
}
