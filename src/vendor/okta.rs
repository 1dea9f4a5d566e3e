//! Okta event hooks: no signature. The admin sets an authentication header (`header`, default
//! `Authorization`) whose value Okta sends verbatim; it is compared in constant time with the
//! configured secret. The body's `eventId` is the id (not signed, so the digest is kept too).

use serde_json::Value;
use time::OffsetDateTime;

use super::common;
use crate::config::VendorOptions;
use crate::verify::{self, Check, Claim, Facts, Key, Rejection, Unverified};

pub struct Okta {
    header: String,
}

impl Okta {
    pub fn new(opts: &VendorOptions) -> Self {
        Okta {
            header: opts
                .header
                .clone()
                .unwrap_or_else(|| "authorization".into())
                .to_ascii_lowercase(),
        }
    }
}

impl super::Scheme for Okta {
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection> {
        let token = verify::required_header(req, &self.header)?;
        Ok(Claim {
            check: Check::Token {
                presented: token.as_bytes(),
            },
        })
    }

    fn facts(&self, _req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection> {
        Ok(Facts {
            id: common::json_str(json, &["eventId"]),
            ..Facts::default()
        })
    }

    fn sign(
        &self,
        key: &Key,
        _body: &[u8],
        _ts: OffsetDateTime,
        _id: &str,
    ) -> Vec<(String, String)> {
        vec![(
            self.header.clone(),
            String::from_utf8_lossy(key.raw()).into_owned(),
        )]
    }

    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String {
        serde_json::json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "eventId": id,
            "eventTime": common::rfc3339(ts),
            "data": {"events": [{
                "uuid": id,
                "published": common::rfc3339(ts),
                "eventType": "user.session.start",
                "severity": "INFO",
                "displayMessage": "User login to Okta",
                "actor": {"alternateId": "alice@acme.com", "type": "User"},
                "client": {"ipAddress": "203.0.113.7"},
                "outcome": {"result": "SUCCESS"}
            }]}
        })
        .to_string()
    }
}
