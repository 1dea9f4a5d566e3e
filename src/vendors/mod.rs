//! Vendors: one file each. A vendor is a signature scheme and a normalizer ([`Vendor`]).
//! Most signature schemes are one `const` [`Descriptor`] (`SIGNATURE` in the vendor's file),
//! from which the engine in [`crate::verify`] derives verifying, signing and whether the window
//! applies; `generic_hmac` is the same descriptor read from the config. Vendors whose scheme is
//! truly different (Stripe, Standard Webhooks, GitLab, Okta, Microsoft Graph, Spectral) write
//! [`Scheme`] by hand. The normalizer ([`Normalizer`]) maps payloads and answers the vendor's
//! endpoint checks.
//!
//! Adding a vendor: a new file here that defines its `VENDOR` ([`Entry`]: how to read its
//! option table and build it), its `mod` line and one line in the `vendors!` registry below.

pub use crate::ocsf::{Handshake, Normalizer};
use crate::verify::Secret;
pub use crate::verify::{Descriptor, Scheme};

/// A vendor: how it signs ([`Scheme`], which the engine calls) and what its requests mean
/// ([`Normalizer`]).
pub trait Vendor: Scheme + Normalizer {}

impl<T: Scheme + Normalizer> Vendor for T {}

/// Vendor-specific keys of a source.
#[derive(Debug, Clone, Default)]
pub struct VendorOptions {
    /// Okta: the authentication header.
    pub header: Option<String>,
    /// Spectral: the header carrying the timestamp.
    pub timestamp_header: Option<String>,
    /// generic_hmac: the whole signature scheme.
    pub generic: Option<Descriptor>,
}

/// A vendor whose signature is a [`Descriptor`], with its normalizer.
struct Described<N> {
    signature: Descriptor,
    normalizer: N,
}

/// Builds a vendor from its signature and its normalizer.
fn described<N: Normalizer>(signature: Descriptor, normalizer: N) -> Box<dyn Vendor> {
    Box::new(Described {
        signature,
        normalizer,
    })
}

impl<N: Normalizer> Scheme for Described<N> {
    fn prepare_key(&self, secret: &Secret) -> Result<crate::verify::Key, String> {
        self.signature.prepare_key(secret)
    }
    fn claim<'a>(
        &'a self,
        req: &'a crate::verify::Unverified,
    ) -> Result<crate::verify::Claim<'a>, crate::verify::Rejection> {
        self.signature.claim(req)
    }
    fn facts(
        &self,
        req: &crate::verify::Unverified,
        json: Option<&serde_json::Value>,
    ) -> Result<crate::verify::Facts, crate::verify::Rejection> {
        self.signature.facts(req, json)
    }
    fn sign(
        &self,
        key: &crate::verify::Key,
        body: &[u8],
        ts: time::OffsetDateTime,
        id: &str,
    ) -> Vec<(String, String)> {
        self.signature.sign(key, body, ts, id)
    }
    fn signs_timestamp(&self) -> bool {
        self.signature.signs_timestamp()
    }
}

impl<N: Normalizer> Normalizer for Described<N> {
    fn normalize(&self, input: &crate::ocsf::Input<'_>) -> Result<Vec<crate::ocsf::Draft>, String> {
        self.normalizer.normalize(input)
    }
    fn fan_out(&self, input: &crate::ocsf::Input<'_>) -> Option<crate::ocsf::FanOut> {
        self.normalizer.fan_out(input)
    }
    fn sample_body(&self, ts: time::OffsetDateTime, id: &str) -> String {
        self.normalizer.sample_body(ts, id)
    }
    fn handshake(
        &self,
        input: &crate::ocsf::Input<'_>,
        keys: &[crate::verify::Key],
    ) -> Option<Handshake> {
        self.normalizer.handshake(input, keys)
    }
    fn pre_verify_handshake(
        &self,
        method: &http::Method,
        req: &crate::verify::Unverified,
    ) -> Option<Handshake> {
        self.normalizer.pre_verify_handshake(method, req)
    }
    fn accepts(&self, method: &http::Method, headers: &http::HeaderMap) -> bool {
        self.normalizer.accepts(method, headers)
    }
}

/// Reads a vendor's keys from a source's table, reporting each problem with its path.
type ReadOptions = fn(&OptionTable<'_>, &mut dyn FnMut(String, String)) -> Option<VendorOptions>;

/// What the registry knows of a vendor: how it reads its option table, and how it is built.
pub(crate) struct Entry {
    /// Reads the vendor's keys from a source's table; keys it does not read are refused.
    options: ReadOptions,
    build: fn(&VendorOptions) -> Box<dyn Vendor>,
}

impl Entry {
    /// A vendor without keys of its own.
    pub(crate) const fn new(build: fn(&VendorOptions) -> Box<dyn Vendor>) -> Entry {
        Entry {
            options: |_, _| Some(VendorOptions::default()),
            build,
        }
    }

    /// A vendor that reads keys from its table.
    pub(crate) const fn with_options(
        options: ReadOptions,
        build: fn(&VendorOptions) -> Box<dyn Vendor>,
    ) -> Entry {
        Entry { options, build }
    }
}

macro_rules! vendors {
    ($($variant:ident => $name:literal, $module:ident;)*) => {
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

            fn entry(self) -> &'static Entry {
                match self { $(VendorKind::$variant => &$module::VENDOR),* }
            }
        }
    };
}

// The vendors' files (declared here, not by the macro, so that rustfmt sees them).
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

#[cfg(test)]
mod testkit;

// The registry: one line per vendor (its variant, its `vendor = ...` name, its file).
vendors! {
    Veritensor => "veritensor", veritensor;
    Humanbound => "humanbound", humanbound;
    Soteri => "soteri", soteri;
    Syvault => "syvault", syvault;
    Spectral => "spectral", spectral;
    Github => "github", github;
    Gitlab => "gitlab", gitlab;
    Stripe => "stripe", stripe;
    Slack => "slack", slack;
    StandardWebhooks => "standard_webhooks", standard_webhooks;
    Shopify => "shopify", shopify;
    Pagerduty => "pagerduty", pagerduty;
    Zoom => "zoom", zoom;
    Linear => "linear", linear;
    Sentry => "sentry", sentry;
    Okta => "okta", okta;
    Msgraph => "msgraph", msgraph;
    GenericHmac => "generic_hmac", generic_hmac;
}

impl VendorKind {
    /// Whether this vendor signs a timestamp, so the window applies (its scheme's
    /// [`Scheme::signs_timestamp`]).
    pub fn signs_timestamp(self, opts: &VendorOptions) -> bool {
        scheme_for(self, opts).signs_timestamp()
    }
}

pub fn scheme_for(kind: VendorKind, opts: &VendorOptions) -> Box<dyn Vendor> {
    (kind.entry().build)(opts)
}

/// A source's vendor-specific keys as written in its table (`header = "..."`), for its vendor
/// to read. It remembers which keys the vendor read.
pub struct OptionTable<'a> {
    set: Vec<(&'a str, &'a str)>,
    /// Keys set to something other than a string.
    not_strings: Vec<&'a str>,
    path: String,
    read: std::cell::RefCell<Vec<&'static str>>,
}

impl<'a> OptionTable<'a> {
    pub fn new(path: &str, set: Vec<(&'a str, &'a str)>) -> Self {
        OptionTable {
            set,
            not_strings: Vec::new(),
            path: path.to_string(),
            read: Default::default(),
        }
    }

    /// The table as the config file has it: every key with its value, `None` when it is not
    /// a string.
    pub fn with_values(path: &str, keys: Vec<(&'a str, Option<&'a str>)>) -> Self {
        let mut t = OptionTable::new(path, Vec::new());
        for (k, v) in keys {
            match v {
                Some(v) => t.set.push((k, v)),
                None => t.not_strings.push(k),
            }
        }
        t
    }

    /// The value of key `k`, when it is set; `k` is one of this vendor's keys.
    pub fn get(&self, k: &'static str) -> Option<&'a str> {
        self.read.borrow_mut().push(k);
        self.set.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }

    /// Key `k` as a header name; an invalid one is reported, and is `None`.
    pub fn header(
        &self,
        k: &'static str,
        err: &mut dyn FnMut(String, String),
    ) -> Option<Option<String>> {
        match self.get(k) {
            Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                err(
                    self.key_path(k),
                    format!("{h:?} is not a valid header name"),
                );
                None
            }
            other => Some(other.map(str::to_string)),
        }
    }

    /// The config path of key `k` (`sources[0].header`).
    pub fn key_path(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }

    /// The path of the source.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The options of a vendor whose one key is a header name: `header` (Okta) or
/// `timestamp_header` (Spectral).
fn header_option(
    t: &OptionTable<'_>,
    key: &'static str,
    err: &mut dyn FnMut(String, String),
) -> Option<VendorOptions> {
    let value = t.header(key, err)?;
    let mut opts = VendorOptions::default();
    match key {
        "header" => opts.header = value,
        _ => opts.timestamp_header = value,
    }
    Some(opts)
}

/// Reads the vendor-specific keys of a source with its vendor's reader; reports keys that do
/// not apply to its vendor.
pub(crate) fn options(
    kind: VendorKind,
    table: &OptionTable<'_>,
    err: &mut dyn FnMut(String, String),
) -> Option<VendorOptions> {
    let mut ok = true;
    let opts = (kind.entry().options)(table, &mut |p, m| {
        ok = false;
        err(p, m)
    });
    let read = table.read.borrow();
    for k in table.set.iter().map(|(k, _)| k).chain(&table.not_strings) {
        if !read.contains(k) {
            err(
                table.key_path(k),
                format!("not a key of vendor {}", kind.name()),
            );
            ok = false;
        } else if table.not_strings.contains(k) {
            err(table.key_path(k), "must be a string".into());
            ok = false;
        }
    }
    opts.filter(|_| ok)
}

/// Checks that a secret has the form its vendor needs (e.g. `whsec_` base64).
pub(crate) fn check_secret(
    kind: VendorKind,
    opts: &VendorOptions,
    secret: &Secret,
) -> Result<(), String> {
    scheme_for(kind, opts).prepare_key(secret).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::TimestampUnit;

    const DESCRIBED: [(&str, &Descriptor); 11] = [
        ("github", &github::SIGNATURE),
        ("veritensor", &veritensor::SIGNATURE),
        ("humanbound", &humanbound::SIGNATURE),
        ("syvault", &syvault::SIGNATURE),
        ("linear", &linear::SIGNATURE),
        ("sentry", &sentry::SIGNATURE),
        ("shopify", &shopify::SIGNATURE),
        ("soteri", &soteri::SIGNATURE),
        ("pagerduty", &pagerduty::SIGNATURE),
        ("slack", &slack::SIGNATURE),
        ("zoom", &zoom::SIGNATURE),
    ];

    /// The vendors' own descriptors pass the check a generic_hmac config must pass: their
    /// signed bytes split into body, id and timestamp one way only.
    #[test]
    fn every_vendor_descriptor_signs_unambiguous_bytes() {
        for (name, d) in DESCRIBED {
            let unit = d.timestamp.as_ref().map_or(TimestampUnit::Seconds, |t| t.1);
            assert_eq!(
                generic_hmac::template_problem(&d.signed, unit),
                None,
                "{name}"
            );
        }
    }

    /// `signs_timestamp` is derived from each scheme; it says what the hand-kept list said
    /// before it was derived.
    #[test]
    fn signs_timestamp_is_derived_from_each_scheme() {
        use VendorKind::*;
        let windowed = [
            Humanbound,
            Syvault,
            Spectral,
            Stripe,
            Slack,
            StandardWebhooks,
            Zoom,
            Linear,
        ];
        for k in VendorKind::ALL {
            let says = k.signs_timestamp(&VendorOptions::default());
            assert_eq!(says, windowed.contains(k), "{}", k.name());
        }
    }

    /// A vendor reads only its own keys: another vendor's key is refused by name, and a
    /// generic_hmac table that fails to parse does not also call its own keys foreign.
    #[test]
    fn each_vendor_reads_its_own_option_table() {
        let mut errs = Vec::new();
        let t = OptionTable::new("sources[0]", vec![("header", "X-Sig")]);
        assert!(options(VendorKind::Github, &t, &mut |p, m| errs.push((p, m))).is_none());
        assert_eq!(
            errs,
            [(
                "sources[0].header".to_string(),
                "not a key of vendor github".to_string()
            )]
        );

        let mut errs = Vec::new();
        let t = OptionTable::new("sources[0]", vec![("algorithm", "sha1"), ("prefix", "v=")]);
        assert!(options(VendorKind::GenericHmac, &t, &mut |p, m| errs.push((p, m))).is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "sources[0]");

        let mut errs = Vec::new();
        let t = OptionTable::new("sources[0]", vec![("timestamp_header", "X-Ts")]);
        let o = options(VendorKind::Spectral, &t, &mut |p, m| errs.push((p, m))).unwrap();
        assert_eq!(o.timestamp_header.as_deref(), Some("X-Ts"));
        assert!(errs.is_empty());
    }
}
