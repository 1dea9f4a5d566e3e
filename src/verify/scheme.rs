//! The verification half of a vendor: the trait the engine calls ([`Scheme`]) and the words a
//! signature scheme is written in (algorithm, encoding, timestamp unit, template parts).

use serde_json::Value;
use time::OffsetDateTime;

use super::secret::Secret;
use super::{Claim, Facts, Key, Rejection, Unverified};

/// How a vendor signs, and what its requests say about themselves. The engine
/// ([`super::verify`]) calls it; what a verified request means is [`crate::ocsf::Normalizer`]'s.
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

    /// Whether the signature covers a timestamp, so the window applies. (GitLab signs one only
    /// in its signing-token form, which the secret chooses: it says false.)
    fn signs_timestamp(&self) -> bool {
        false
    }

    /// Takes secrets out of a verified JSON body before it is handed on (Graph repeats the
    /// source's `clientState` in every item); true when it changed anything.
    fn scrub(&self, _json: &mut Value) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigEncoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    Seconds,
    Milliseconds,
    Iso8601,
}

/// One piece of a signed-content or key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(std::borrow::Cow<'static, str>),
    Body,
    Timestamp,
    Id,
    Secret,
}
