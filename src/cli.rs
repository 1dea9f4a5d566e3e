//! What the `sign` and `send` commands do, as library functions: the tests, the load tool and
//! the command line all sign with this same code.

use time::OffsetDateTime;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no source with id {0:?} in the config")]
    UnknownSource(String),
    #[error("source {0} has no secret to sign with")]
    NoSecret(String),
    #[error("source {source_id}: {message}")]
    Key { source_id: String, message: String },
}

/// The headers `source_id`'s vendor would send for `body`, signed with the source's first
/// secret (the newest, by convention: list the new secret first during a rotation).
pub fn sign_headers(
    config: &Config,
    source_id: &str,
    body: &[u8],
    event_id: &str,
    ts: OffsetDateTime,
) -> Result<Vec<(String, String)>, SignError> {
    let src = config
        .source(source_id)
        .ok_or_else(|| SignError::UnknownSource(source_id.into()))?;
    let secret = src
        .secrets
        .first()
        .ok_or_else(|| SignError::NoSecret(source_id.into()))?;
    let scheme = src.scheme();
    let key = scheme
        .prepare_key(secret)
        .map_err(|message| SignError::Key {
            source_id: source_id.into(),
            message,
        })?;
    Ok(scheme.sign(&key, body, ts, event_id))
}

/// A fresh random event id.
pub fn new_event_id() -> String {
    crate::sink::transport::uuid_v4()
}

/// Parses `--timestamp`: unix seconds or RFC 3339.
pub fn parse_timestamp(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string());
    }
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{s:?} is neither unix seconds nor an RFC 3339 time"))
}
