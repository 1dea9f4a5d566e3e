//! Check Point Spectral: `x-spectral-signature: <hex HMAC-SHA256(key = "{timestamp}_{secret}",
//! body)>`. The timestamp header's name is not publicly confirmed, so it is configurable
//! (`timestamp_header`, default `x-spectral-timestamp`); its value enters the key byte for byte.
//! It is ISO-8601 (unix seconds are accepted too), and the window applies once the MAC passed.

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::{MacAlgorithm, TimestampUnit, VendorOptions};
use crate::verify::{self, Check, Claim, Facts, Key, KeyPart, Rejection, Unverified};

pub struct Spectral {
    timestamp_header: String,
}

const HEADER: &str = "x-spectral-signature";
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-spectral-timestamp";

impl Spectral {
    pub fn new(opts: &VendorOptions) -> Self {
        Spectral {
            timestamp_header: opts
                .timestamp_header
                .clone()
                .unwrap_or_else(|| DEFAULT_TIMESTAMP_HEADER.into())
                .to_ascii_lowercase(),
        }
    }
}

fn parse_ts(raw: &str) -> Result<OffsetDateTime, Rejection> {
    verify::parse_timestamp(raw, TimestampUnit::Iso8601)
        .or_else(|_| verify::parse_timestamp(raw, TimestampUnit::Seconds))
}

impl super::Scheme for Spectral {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let sig = verify::required_header(req, HEADER)?;
        let ts = verify::single_header(req, &self.timestamp_header)?
            .ok_or(Rejection::missing("timestamp header missing"))?;
        let candidates = verify::candidates([sig], verify::decode_hex)?;
        Ok(Claim {
            check: Check::Mac {
                alg: MacAlgorithm::Sha256,
                key: Some(vec![
                    KeyPart::Bytes(ts.as_bytes()),
                    KeyPart::Bytes(b"_"),
                    KeyPart::Secret,
                ]),
                message: vec![&req.body],
                candidates,
            },
        })
    }

    fn facts(&self, req: &Unverified, _json: Option<&Value>) -> Result<Facts, Rejection> {
        let ts = verify::required_header(req, &self.timestamp_header)?;
        Ok(Facts {
            signed_time: Some(parse_ts(ts)?),
            ..Facts::default()
        })
    }

    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, _id: &str) -> Vec<(String, String)> {
        let ts = common::iso_millis(ts);
        let k = [ts.as_bytes(), b"_", key.mac()].concat();
        let sig = hex::encode(verify::mac::hmac(MacAlgorithm::Sha256, &k, &[body]));
        vec![(HEADER.into(), sig), (self.timestamp_header.clone(), ts)]
    }

    fn sample_body(&self, _ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "issues": [
                {"assetId": format!("github.com/acme/api#{id}"), "detectorId": "CLD001",
                 "detectorName": "Visible AWS Key", "severity": "error",
                 "uri": "https://github.com/acme/api/blob/main/config.py#L12"}
            ]
        })
        .to_string()
    }
}
