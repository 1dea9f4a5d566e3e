//! Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256("v0:{timestamp}:{body}")>` with
//! `X-Slack-Request-Timestamp` (unix seconds, signed). No event id header: the signed bytes'
//! digest is the replay key.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit};
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Slack;

const SIG: &str = "x-slack-signature";
const TS: &str = "x-slack-request-timestamp";

impl super::Scheme for Slack {
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

    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        let ts = verify::required_header(req, TS)?;
        // Events API envelopes carry an event_id inside the signed body.
        let id = common::json_str(json, &["event_id"]);
        Ok(Facts {
            signed_time: Some(verify::parse_timestamp(ts, TimestampUnit::Seconds)?),
            id_signed: id.is_some(),
            id,
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
            "token": "XXYYZZ",
            "team_id": "T123ABC456",
            "type": "event_callback",
            "event_id": id,
            "event_time": ts.unix_timestamp(),
            "event": {"type": "member_joined_channel", "user": "W123ABC456", "channel": "C123ABC456"}
        })
        .to_string()
    }
}
