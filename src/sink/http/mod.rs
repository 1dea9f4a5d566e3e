//! The `http` sink: each batch is POSTed (or PUT/PATCHed) to `url`, as given, as one JSON
//! array of events, with the sink's custom headers and optional gzip.
//!
//! With `signing_secret` set, every request is signed the Standard Webhooks way
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `id.timestamp.body`), by the same code that verifies `standard_webhooks` sources, so another
//! siemgate (or any Standard Webhooks receiver) can verify siemgate in turn. The id is derived
//! from the body, so a retried batch carries the same id and the next hop can de-duplicate it.

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};

use super::config::{Compression, SinkConfig};
use super::{summary, transport, BoxFuture, Delivery, Sink, SinkError};
use crate::spool::Record;
use crate::vendors::{self, Scheme, VendorKind};
use crate::verify::{Clock, Key};
use std::sync::Arc;

mod config;
pub use config::HttpConfig;

pub struct HttpSink {
    id: String,
    url: String,
    method: reqwest::Method,
    headers: http::HeaderMap,
    compression: Compression,
    signing: Option<(Box<dyn Scheme>, Key)>,
    client: reqwest::Client,
    /// The gateway's clock: the signature's timestamp.
    clock: Arc<dyn Clock>,
}

impl HttpSink {
    pub fn new(
        cfg: &SinkConfig,
        own: &HttpConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SinkError> {
        let HttpConfig {
            url,
            method,
            signing_secret,
            compression,
        } = own;
        let setup = |message: String| SinkError::Setup {
            sink: cfg.id.clone(),
            message,
        };
        let signing = match signing_secret {
            Some(secret) => {
                let scheme: Box<dyn Scheme> =
                    vendors::scheme_for(VendorKind::StandardWebhooks, &Default::default());
                let key = scheme
                    .prepare_key(secret)
                    .map_err(|e| setup(format!("signing_secret: {e}")))?;
                Some((scheme, key))
            }
            None => None,
        };
        let headers = transport::custom_headers(
            cfg,
            &[
                "content-type",
                "content-encoding",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            ],
        )?;
        Ok(HttpSink {
            id: cfg.id.clone(),
            url: url.clone(),
            method: method
                .parse()
                .map_err(|_| setup(format!("method {method:?}")))?,
            headers,
            compression: *compression,
            signing,
            client: transport::client(cfg)?,
            clock,
        })
    }
}

impl Sink for HttpSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        <HttpConfig as super::config::SinkType>::NAME
    }

    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            // The spooled events are JSON already: copied as they are, never re-parsed.
            let Ok(body) = summary::json_array(events, |r, out| {
                out.extend_from_slice(&r.event);
                Ok(())
            }) else {
                unreachable!("copying bytes cannot fail")
            };
            let mut req = self
                .client
                .request(self.method.clone(), &self.url)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json");
            if let Some((scheme, key)) = &self.signing {
                let digest = crate::verify::mac::sha256(&[&body]);
                let id = format!("msg_{}", hex::encode(&digest[..16]));
                for (k, v) in scheme.sign(key, &body, self.clock.now(), &id) {
                    req = req.header(k, v);
                }
            }
            let req = match self.compression {
                Compression::Gzip => req
                    .header(CONTENT_ENCODING, "gzip")
                    .body(transport::gzip(&body)),
                Compression::None => req.body(body),
            };
            transport::execute(req).await
        })
    }
}
