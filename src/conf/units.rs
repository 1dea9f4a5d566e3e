//! Durations (`"300s"`, `"5m"`) and sizes (`"1MiB"`) as they are written in the config.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;

/// A duration written as a string: `"500ms"`, `"30s"`, `"5m"`, `"24h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"30s\", \"5m\" or \"24h\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfDuration, E> {
                // The value is not repeated: it may have come from the environment.
                parse_duration(v)
                    .map(ConfDuration)
                    .map_err(|_| E::custom(DURATION_HELP))
            }
        }
        d.deserialize_any(V)
    }
}

const DURATION_HELP: &str =
    "not a duration (or too large); write it like \"30s\", \"5m\" or \"24h\"";
const SIZE_HELP: &str = "not a size (or too large); write it like \"1MiB\" or \"10GiB\"";

pub fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim()).map_err(|e| {
        format!("invalid duration {v:?} ({e}); write it like \"30s\", \"5m\" or \"24h\"")
    })
}

/// A size in bytes written as a string (`"1MiB"`, `"10GiB"`, `"512KB"`) or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfSize(pub u64);

impl<'de> Deserialize<'de> for ConfSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"1MiB\" or \"10GiB\", or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfSize, E> {
                parse_size(v)
                    .map(ConfSize)
                    .map_err(|_| E::custom(SIZE_HELP))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfSize, E> {
                Ok(ConfSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfSize, E> {
                u64::try_from(v)
                    .map(ConfSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

pub fn parse_size(v: &str) -> Result<u64, String> {
    v.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size {v:?} ({e}); write it like \"1MiB\" or \"10GiB\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("five minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert_eq!(parse_size("1KB").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
    }
}
