//! Vendors: one file each. A vendor module says where its signature, timestamp and event id
//! live and which bytes are signed ([`Scheme`]); the engine in [`crate::verify`] does the
//! cryptography, the comparisons and the window, the same way for all of them.

mod common;
mod generic_hmac;
mod github;
mod gitlab;
mod humanbound;
mod linear;
mod msgraph;
mod okta;
mod pagerduty;
mod sentry;
mod shopify;
mod slack;
mod soteri;
mod spectral;
mod standard_webhooks;
mod stripe;
mod syvault;
mod veritensor;
mod zoom;

use serde_json::Value;
use time::OffsetDateTime;

use crate::config::Secret;
use crate::config::{SourceConfig, VendorOptions};
use crate::ocsf::{self, Draft, Input};
use crate::verify::{Claim, Facts, Key, Rejection, Unverified};

/// How a vendor signs, and what its requests say about themselves.
pub trait Scheme: Send + Sync + 'static {
    /// Turns a configured secret into key material; an error names what is wrong with it.
    fn prepare_key(&self, secret: &Secret) -> Result<Key, String> {
        Ok(Key::plain(secret.expose()))
    }

    /// Finds the proof in the request and names the signed bytes. Reads headers only.
    fn claim<'a>(&'a self, req: &'a Unverified) -> Result<Claim<'a>, Rejection>;

    /// After the proof passed: the signed timestamp and the event id.
    fn facts(&self, req: &Unverified, json: Option<&Value>) -> Result<Facts, Rejection>;

    /// The headers this vendor would send for `body` (for `siemgate sign`, the load tool and
    /// tests). Vendors whose timestamp or id live in the body take them from the body.
    fn sign(&self, key: &Key, body: &[u8], ts: OffsetDateTime, id: &str) -> Vec<(String, String)>;

    /// A representative body carrying `ts` and `id` where this vendor puts them in the body.
    fn sample_body(&self, ts: OffsetDateTime, id: &str) -> String;

    /// The OCSF events of a verified request (see [`crate::ocsf`]). An error, or no event, makes
    /// the request a Base Event carrying the error; nothing verified is dropped.
    fn normalize(&self, input: &Input<'_>) -> Result<Vec<Draft>, String> {
        Ok(vec![ocsf::base(input)])
    }

    /// The array [`Scheme::normalize`] makes one event per element of, when it does for this
    /// request (its drafts then name their element with [`Draft::item`]). [`ocsf`] counts it
    /// against [`ocsf::MAX_EVENTS_PER_REQUEST`] before anything else is done for the request,
    /// and takes each event's `raw_data` from its element. `None`: one event.
    fn fan_out(&self, _input: &Input<'_>) -> Option<ocsf::FanOut> {
        None
    }

    /// The answer to a vendor's endpoint check (Slack `url_verification`, Zoom
    /// `endpoint.url_validation`, Okta's verification GET), given after the request verified
    /// and instead of spooling it. `keys` are the source's keys, for answers that are signed.
    fn handshake(&self, _input: &Input<'_>, _keys: &[Key]) -> Option<Handshake> {
        None
    }

    /// A vendor's endpoint check that carries no proof and is answered before verification
    /// (Microsoft Graph's `validationToken`), only on this vendor's sources. `None`: verify the
    /// request as usual.
    fn pre_verify_handshake(&self, _method: &http::Method, _req: &Unverified) -> Option<Handshake> {
        None
    }

    /// Whether this vendor sends requests with `method` other than POST, judged by their
    /// headers (Okta's verification GET carries `X-Okta-Verification-Challenge`). They are
    /// verified like any request. Default: POST only.
    fn accepts(&self, method: &http::Method, _headers: &http::HeaderMap) -> bool {
        method == http::Method::POST
    }

    /// Takes secrets out of a verified JSON body before it is handed on (Graph repeats the
    /// source's `clientState` in every item); true when it changed anything.
    fn scrub(&self, _json: &mut Value) -> bool {
        false
    }
}

/// A handshake answer: `200` with this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub content_type: &'static str,
    pub body: String,
}

macro_rules! vendors {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every vendor siemgate verifies (`vendor = ...` in a source).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum VendorKind { $($variant),* }

        impl VendorKind {
            pub const ALL: &'static [VendorKind] = &[$(VendorKind::$variant),*];

            pub fn name(self) -> &'static str {
                match self { $(VendorKind::$variant => $name),* }
            }

            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($name => Some(VendorKind::$variant),)* _ => None }
            }

            pub fn names() -> Vec<&'static str> {
                vec![$($name),*]
            }
        }
    };
}

vendors! {
    Veritensor => "veritensor",
    Humanbound => "humanbound",
    Soteri => "soteri",
    Syvault => "syvault",
    Spectral => "spectral",
    Github => "github",
    Gitlab => "gitlab",
    Stripe => "stripe",
    Slack => "slack",
    StandardWebhooks => "standard_webhooks",
    Shopify => "shopify",
    Pagerduty => "pagerduty",
    Zoom => "zoom",
    Linear => "linear",
    Sentry => "sentry",
    Okta => "okta",
    Msgraph => "msgraph",
    GenericHmac => "generic_hmac",
}

impl VendorKind {
    /// Whether this vendor signs a timestamp, so the window applies. (GitLab signs one only in
    /// its signing-token form, which the secret chooses: this says false for it.)
    pub fn signs_timestamp(self, opts: &VendorOptions) -> bool {
        match self {
            VendorKind::Humanbound
            | VendorKind::Syvault
            | VendorKind::Spectral
            | VendorKind::Stripe
            | VendorKind::Slack
            | VendorKind::StandardWebhooks
            | VendorKind::Zoom
            | VendorKind::Linear => true,
            VendorKind::GenericHmac => opts.generic.as_ref().is_some_and(|g| {
                use crate::config::TemplatePart;
                g.signed_template.contains(&TemplatePart::Timestamp)
                    || g.key_template.contains(&TemplatePart::Timestamp)
            }),
            _ => false,
        }
    }
}

/// Builds the scheme for a configured source.
pub fn scheme(src: &SourceConfig) -> Box<dyn Scheme> {
    scheme_for(src.vendor, &src.options)
}

pub fn scheme_for(kind: VendorKind, opts: &VendorOptions) -> Box<dyn Scheme> {
    match kind {
        VendorKind::Veritensor => Box::new(veritensor::Veritensor),
        VendorKind::Humanbound => Box::new(humanbound::Humanbound),
        VendorKind::Soteri => Box::new(soteri::Soteri),
        VendorKind::Syvault => Box::new(syvault::Syvault),
        VendorKind::Spectral => Box::new(spectral::Spectral::new(opts)),
        VendorKind::Github => Box::new(github::Github),
        VendorKind::Gitlab => Box::new(gitlab::Gitlab),
        VendorKind::Stripe => Box::new(stripe::Stripe),
        VendorKind::Slack => Box::new(slack::Slack),
        VendorKind::StandardWebhooks => Box::new(standard_webhooks::StandardWebhooks),
        VendorKind::Shopify => Box::new(shopify::Shopify),
        VendorKind::Pagerduty => Box::new(pagerduty::Pagerduty),
        VendorKind::Zoom => Box::new(zoom::Zoom),
        VendorKind::Linear => Box::new(linear::Linear),
        VendorKind::Sentry => Box::new(sentry::Sentry),
        VendorKind::Okta => Box::new(okta::Okta::new(opts)),
        VendorKind::Msgraph => Box::new(msgraph::MsGraph),
        VendorKind::GenericHmac => Box::new(generic_hmac::GenericHmac::new(opts)),
    }
}

/// Reads the vendor-specific keys of a source; reports keys that do not apply to its vendor.
pub(crate) fn options(
    kind: VendorKind,
    raw: &crate::config::raw::RawSource,
    path: &str,
    err: &mut dyn FnMut(String, String),
) -> Option<VendorOptions> {
    let allowed: &[&str] = match kind {
        VendorKind::Spectral => &["timestamp_header"],
        VendorKind::Okta => &["header"],
        VendorKind::GenericHmac => &[
            "header",
            "algorithm",
            "encoding",
            "prefix",
            "separator",
            "signed_template",
            "key_template",
            "secret_encoding",
            "timestamp_header",
            "timestamp_unit",
            "id_header",
        ],
        _ => &[],
    };
    let mut ok = true;
    for k in raw.vendor_keys_set() {
        if !allowed.contains(&k) {
            err(
                format!("{path}.{k}"),
                format!("not a key of vendor {}", kind.name()),
            );
            ok = false;
        }
    }
    let mut opts = VendorOptions::default();
    match kind {
        VendorKind::Spectral => opts.timestamp_header = raw.timestamp_header.clone(),
        VendorKind::Okta => opts.header = raw.header.clone(),
        VendorKind::GenericHmac => match generic_hmac::options(raw, path, err) {
            Some(g) => opts.generic = Some(g),
            None => ok = false,
        },
        _ => {}
    }
    for (k, v) in [
        ("header", &opts.header),
        ("timestamp_header", &opts.timestamp_header),
    ] {
        if let Some(h) = v {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                err(
                    format!("{path}.{k}"),
                    format!("{h:?} is not a valid header name"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(opts)
}

/// Checks that a secret has the form its vendor needs (e.g. `whsec_` base64).
pub(crate) fn check_secret(
    kind: VendorKind,
    opts: &VendorOptions,
    secret: &Secret,
) -> Result<(), String> {
    scheme_for(kind, opts).prepare_key(secret).map(|_| ())
}
