//! The JSON log line, written straight into the line's buffer.
//!
//! tracing-subscriber's own JSON format (which this one matches field for field: `timestamp`,
//! `level`, the event's fields in order with `message` among them, `target`) goes through a
//! serde serializer whose every small write is checked again as UTF-8 on its way into the line.
//! The request path logs a line per request: that was 4.4% of the gateway's CPU at full load
//! (README, Benchmarks). Here each field is escaped and appended once.

use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// One JSON object per event, on one line.
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        timestamp(&mut w, std::time::SystemTime::now())?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_char('"')?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        string(&mut w, meta.target())?;
        w.write_str("}\n")
    }
}

/// RFC 3339 in UTC to the microsecond, as tracing-subscriber writes it.
fn timestamp(w: &mut impl Write, now: std::time::SystemTime) -> fmt::Result {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let t = time::OffsetDateTime::UNIX_EPOCH + since;
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// `s` as a JSON string.
fn string(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    escaped(w, s)?;
    w.write_char('"')
}

/// `s` with quotes, backslashes and control characters escaped, as inside a JSON string.
fn escaped(w: &mut impl Write, s: &str) -> fmt::Result {
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        w.write_str(&s[plain..i])?;
        if esc.is_empty() {
            write!(w, "\\u{b:04x}")?;
        } else {
            w.write_str(esc)?;
        }
        plain = i + 1;
    }
    w.write_str(&s[plain..])
}

/// Escapes what `Display` or `Debug` writes as it is written, without a string in between.
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escaped(self.0, s)
    }
}

struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.w.write_char(',')?;
            string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| string(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: serde_json writes them as null.
        if value.is_finite() {
            self.field(field, |w| write!(w, "{value}"));
        } else {
            self.field(field, |w| w.write_str("null"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `log` writes through `format` (ours, or tracing-subscriber's JSON).
    fn capture(ours: bool, log: impl Fn()) -> String {
        let lines = Lines::default();
        let out = lines.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || out.clone());
        let dispatch = if ours {
            tracing::Dispatch::new(builder.event_format(JsonLine).finish())
        } else {
            tracing::Dispatch::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .finish(),
            )
        };
        tracing::dispatcher::with_default(&dispatch, log);
        let text = lines.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    /// A line's top-level keys, in the order written.
    fn keys(line: &str) -> Vec<String> {
        struct Keys(Vec<String>);
        impl<'de> serde::Deserialize<'de> for Keys {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Keys;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Keys, A::Error> {
                        let mut keys = Vec::new();
                        while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                            keys.push(k);
                        }
                        Ok(Keys(keys))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Keys>(line).unwrap().0
    }

    fn without_timestamp(line: &str) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v.as_object_mut().unwrap().remove("timestamp");
        v
    }

    #[test]
    fn lines_are_the_json_tracing_subscriber_writes() {
        let client: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let err = std::io::Error::other("disk \"full\"\n\tbad\u{1}");
        let log = || {
            tracing::info!(
                source = "github-demo",
                %client,
                outcome = "accepted",
                reason = "",
                duration_ms = 1.25,
                n = 7u64,
                delta = -3i64,
                ok = true,
                nan = f64::NAN,
                "request"
            );
            tracing::warn!(error = %err, weird = ?"q\"uote\\", "spool \"write\" failed\u{7f}é");
            tracing::error!(error = &err as &dyn std::error::Error, "as an error");
        };
        let ours = capture(true, log);
        let theirs = capture(false, log);
        let ours: Vec<&str> = ours.lines().collect();
        let theirs: Vec<&str> = theirs.lines().collect();
        assert_eq!(ours.len(), 3, "{ours:?}");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(without_timestamp(a), without_timestamp(b), "{a}\n{b}");
            // The same keys in the same order (a serde_json map would sort them).
            let (ka, kb) = (keys(a), keys(b));
            assert_eq!(ka[0], "timestamp");
            assert_eq!(ka, kb, "{a}\n{b}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_240_696_792_083);
        let mut s = String::new();
        timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2026-12-02T19:44:56.792083Z");
        let parsed =
            time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                .unwrap();
        assert_eq!(
            parsed.unix_timestamp_nanos(),
            1_796_240_696_792_083_000,
            "{s}"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut s = String::new();
        string(&mut s, "a\u{0}b\u{1f}\"\\\n").unwrap();
        assert_eq!(s, r#""a\u0000b\u001f\"\\\n""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\u{0}b\u{1f}\"\\\n");
    }
}
