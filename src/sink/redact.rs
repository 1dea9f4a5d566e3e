//! Sink URLs as they may be shown: in `/v1/status`, in logs, in sink errors and dead letters.
//!
//! A URL can carry a secret in its user info (`https://user:pass@host`), its query
//! (`?api_key=...`, `?sig=...`) or its path (an `http` sink's `https://hooks.example/T0/B0/XXXX`
//! is used as given, and a proxy may take a token as a path segment). So only the parts siemgate
//! itself writes are shown as they are: scheme, host, port, the path segments of the APIs the
//! sinks append (`/services/collector/event`, `/api/v2/logs`, ...), query keys and the
//! `api-version` value. Everything else reads `REDACTED`.

use super::SinkKind;

/// What a hidden part of a URL reads as.
pub const REDACTED: &str = "REDACTED";

/// The path segments siemgate appends to a sink's base URL (Splunk HEC, Datadog, the Data
/// Collector API, the Logs Ingestion API, Entra ID's token endpoint). Anything else in a path
/// may be a secret.
const API_SEGMENTS: &[&str] = &[
    "services",
    "collector",
    "event",
    "ack",
    "health",
    "api",
    "logs",
    "v2",
    "dataCollectionRules",
    "streams",
    "oauth2",
    "v2.0",
    "token",
];

/// Query parameters whose values siemgate sets and that are never secret.
const PLAIN_QUERY_KEYS: &[&str] = &["api-version"];

/// `raw` with user info, unknown path segments and query values replaced by `REDACTED`, and
/// any fragment removed. Something that does not parse as a URL is hidden whole.
pub fn redact_url(raw: &str) -> String {
    let Ok(url) = reqwest::Url::parse(raw) else {
        return format!("[{REDACTED} unparsable URL]");
    };
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    if let Some(host) = url.host_str() {
        out.push_str(host);
    }
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if let Some(segments) = url.path_segments() {
        for seg in segments {
            if seg.is_empty() {
                continue;
            }
            out.push('/');
            out.push_str(if API_SEGMENTS.contains(&seg) {
                seg
            } else {
                REDACTED
            });
        }
    }
    if url.query().is_some() {
        let pairs: Vec<String> = url
            .query_pairs()
            .map(|(k, v)| {
                let key: String = form_urlencoded::byte_serialize(k.as_bytes()).collect();
                if PLAIN_QUERY_KEYS.contains(&k.as_ref()) {
                    let value: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
                    format!("{key}={value}")
                } else {
                    format!("{key}={REDACTED}")
                }
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `text` with every occurrence of `url` (as written, or as the URL parser prints it)
/// replaced by its redacted form: for error messages that quote the URL they failed on.
pub fn redact_in(text: &str, url: &str) -> String {
    if url.is_empty() {
        return text.to_string();
    }
    let redacted = redact_url(url);
    let mut out = text.replace(url, &redacted);
    if let Ok(parsed) = reqwest::Url::parse(url) {
        out = out.replace(parsed.as_str(), &redacted);
    }
    out
}

/// The URL a sink sends to, redacted; `None` for a file sink.
pub fn sink_url(kind: &SinkKind) -> Option<String> {
    kind.url().map(redact_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_user_info_path_and_query_are_hidden() {
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example.com:8443/T000/B000/XXXXSECRET?token=abc&api-version=2023-01-01#frag"),
            "https://REDACTED@hooks.example.com:8443/REDACTED/REDACTED/REDACTED?token=REDACTED&api-version=2023-01-01"
        );
    }

    #[test]
    fn the_paths_siemgate_appends_stay_readable() {
        assert_eq!(
            redact_url("https://splunk.example.com:8088/services/collector/event?channel=abc"),
            "https://splunk.example.com:8088/services/collector/event?channel=REDACTED"
        );
        assert_eq!(
            redact_url("https://http-intake.logs.datadoghq.com/api/v2/logs"),
            "https://http-intake.logs.datadoghq.com/api/v2/logs"
        );
        assert_eq!(
            redact_url("https://dce.example.com/dataCollectionRules/dcr-0123/streams/Custom-X?api-version=2023-01-01"),
            "https://dce.example.com/dataCollectionRules/REDACTED/streams/REDACTED?api-version=2023-01-01"
        );
        assert_eq!(
            redact_url("https://splunk.example.com:8088"),
            "https://splunk.example.com:8088"
        );
    }

    #[test]
    fn garbage_is_hidden_whole_and_quoted_urls_are_replaced() {
        assert!(!redact_url("not a url with s3cret").contains("s3cret"));
        let url = "http://127.0.0.1:9/ingest/s3cret?key=v4lue";
        let msg = format!("error sending request for url ({url}): connection refused");
        let out = redact_in(&msg, url);
        assert!(!out.contains("s3cret") && !out.contains("v4lue"), "{out}");
        assert!(
            out.contains("http://127.0.0.1:9/REDACTED/REDACTED?key=REDACTED"),
            "{out}"
        );
    }
}
