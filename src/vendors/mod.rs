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

pub use crate::ocsf::{Handshake, Normalizer};
pub use crate::verify::Scheme;
use crate::verify::{Secret, TemplatePart};

/// A vendor: how it signs ([`Scheme`], which the engine calls) and what its requests mean
/// ([`Normalizer`]).
pub trait Vendor: Scheme + Normalizer {}

impl<T: Scheme + Normalizer> Vendor for T {}

/// Vendor-specific keys of a source.
#[derive(Debug, Clone, Default)]
pub struct VendorOptions {
    /// Spectral: the header carrying the timestamp. Okta: the authentication header.
    /// generic_hmac: the signature header.
    pub header: Option<String>,
    pub timestamp_header: Option<String>,
    pub generic: Option<GenericHmacOptions>,
}

#[derive(Debug, Clone)]
pub struct GenericHmacOptions {
    pub header: String,
    /// `None`: the header carries the secret itself (a token), compared in constant time.
    pub algorithm: Option<crate::verify::MacAlgorithm>,
    pub encoding: crate::verify::SigEncoding,
    pub prefix: String,
    pub separator: Option<String>,
    pub signed_template: Vec<TemplatePart>,
    pub key_template: Vec<TemplatePart>,
    pub secret_base64: bool,
    pub timestamp_header: Option<String>,
    pub timestamp_unit: crate::verify::TimestampUnit,
    pub id_header: Option<String>,
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
                g.signed_template.contains(&TemplatePart::Timestamp)
                    || g.key_template.contains(&TemplatePart::Timestamp)
            }),
            _ => false,
        }
    }
}

pub fn scheme_for(kind: VendorKind, opts: &VendorOptions) -> Box<dyn Vendor> {
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

/// A source's vendor-specific keys as written in its table (`header = "..."`), for its vendor
/// to read.
pub struct OptionTable<'a> {
    set: Vec<(&'static str, &'a str)>,
}

impl<'a> OptionTable<'a> {
    pub fn new(set: Vec<(&'static str, &'a str)>) -> Self {
        OptionTable { set }
    }

    /// The value of key `k`, when it is set.
    pub fn get(&self, k: &str) -> Option<&'a str> {
        self.set.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// The keys that are set.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.set.iter().map(|(k, _)| *k)
    }
}

/// Reads the vendor-specific keys of a source; reports keys that do not apply to its vendor.
pub(crate) fn options(
    kind: VendorKind,
    raw: &OptionTable<'_>,
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
    for k in raw.keys() {
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
        VendorKind::Spectral => {
            opts.timestamp_header = raw.get("timestamp_header").map(str::to_string)
        }
        VendorKind::Okta => opts.header = raw.get("header").map(str::to_string),
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
