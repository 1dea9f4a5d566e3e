//! Secrets as types: redacted in `Debug`/`Display`, zeroized on drop, compared only in constant time.

use std::fmt;
use zeroize::Zeroizing;

/// A secret value read from the config, the environment or a `*_file`.
///
/// It never prints itself: `Debug` and `Display` show `[redacted]`. The bytes are wiped when the
/// last copy is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// The secret's bytes. Callers hand them to a MAC or a comparison, never to a log.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, for the few protocols that send it as a header value.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), b"hunter2");
    }
}
