//! What every HTTP sink shares: the client (timeouts, extra CA, no redirects, https unless
//! `allow_http`), gzip, `Retry-After`, and the classification of an answer into a [`Delivery`].

use std::io::Write;
use std::time::Duration;

use super::SinkConfig;
use super::{Delivery, SinkError};

/// Most of an error body kept for logs and dead letters.
const EXCERPT: usize = 512;

/// The HTTP client of one sink.
pub fn client(cfg: &SinkConfig) -> Result<reqwest::Client, SinkError> {
    let setup = |message: String| SinkError::Setup {
        sink: cfg.id.clone(),
        message,
    };
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("siemgate/", env!("CARGO_PKG_VERSION")))
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .https_only(!cfg.allow_http);
    if let Some(ca) = &cfg.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| setup(format!("tls.ca_file {}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            setup(format!(
                "tls.ca_file {}: not PEM certificates: {e}",
                ca.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(setup(format!(
                "tls.ca_file {}: no certificate in it",
                ca.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| setup(format!("HTTP client: {e}")))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let d = when - time::OffsetDateTime::now_utc();
    Some(d.try_into().unwrap_or(Duration::ZERO))
}

/// What an answer means for the events in the request.
pub fn classify(status: http::StatusCode, headers: &http::HeaderMap, body: &str) -> Delivery {
    let error = || {
        let mut e = format!("HTTP {}", status.as_u16());
        let b = body.trim();
        if !b.is_empty() {
            let mut end = b.len().min(EXCERPT);
            while !b.is_char_boundary(end) {
                end -= 1;
            }
            e.push_str(": ");
            e.push_str(&b[..end]);
        }
        e
    };
    match status.as_u16() {
        200..=299 => Delivery::Delivered,
        408 | 429 | 500..=599 => Delivery::Retry {
            error: error(),
            after: retry_after(headers),
        },
        413 => Delivery::TooLarge { error: error() },
        401 | 403 => Delivery::Unauthorized { error: error() },
        _ => Delivery::Rejected { error: error() },
    }
}

/// A transport failure (connect, TLS, reset, timeout): always worth retrying.
pub fn transport_error(e: &reqwest::Error) -> Delivery {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    // reqwest's Display names the URL, which may carry a secret (an `http` sink's URL is used
    // as given): the message is logged, shown in /v1/status and kept with dead letters.
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if let Some(url) = e.url() {
        msg = super::redact::redact_in(&msg, url.as_str());
    }
    Delivery::Retry {
        error: msg,
        after: None,
    }
}

/// A service's answer, read whole (sink answers are small).
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

impl Answer {
    /// The answer as a [`Delivery`], by the classification every sink shares.
    pub fn classify(&self) -> Delivery {
        classify(self.status, &self.headers, &self.text())
    }

    /// The start of the body, for logs and dead letters.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(4 * EXCERPT)]).into_owned()
    }
}

/// Sends `req` and reads the answer; a transport failure is already a [`Delivery`].
pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, Delivery> {
    let resp = req.send().await.map_err(|e| transport_error(&e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    match resp.bytes().await {
        Ok(body) => Ok(Answer {
            status,
            headers,
            body,
        }),
        // The answer was cut off: whether the sink kept the events is unknown, so send them
        // again (a duplicate rather than a loss).
        Err(e) => Err(Delivery::Retry {
            error: format!(
                "HTTP {}: the answer was cut off: {}",
                status.as_u16(),
                e.without_url()
            ),
            after: None,
        }),
    }
}

/// Sends `req` and classifies the answer.
pub async fn execute(req: reqwest::RequestBuilder) -> Delivery {
    match send(req).await {
        Ok(answer) => answer.classify(),
        Err(d) => d,
    }
}

/// The sink's custom `headers`, refusing any the sink sets itself (a second `Authorization`
/// or `Content-Encoding` would be ambiguous at best).
pub fn custom_headers(cfg: &SinkConfig, reserved: &[&str]) -> Result<http::HeaderMap, SinkError> {
    let setup = |message: String| SinkError::Setup {
        sink: cfg.id.clone(),
        message,
    };
    let mut map = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| setup(format!("header {k}: {e}")))?;
        if reserved
            .iter()
            .any(|r| name.as_str().eq_ignore_ascii_case(r))
        {
            return Err(setup(format!(
                "header {k} is set by the {} sink itself; remove it from headers",
                cfg.kind.type_name()
            )));
        }
        let value =
            http::HeaderValue::from_str(v).map_err(|e| setup(format!("header {k}: {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// A header value carrying a secret (`prefix` + secret), marked sensitive so that no debug
/// output shows it. The error names the key, never the value.
pub fn secret_header(
    cfg: &SinkConfig,
    key: &str,
    prefix: &str,
    secret: &crate::verify::Secret,
) -> Result<http::HeaderValue, SinkError> {
    let bad = || SinkError::Setup {
        sink: cfg.id.clone(),
        message: format!(
            "{key} cannot be sent in an HTTP header (control characters or not UTF-8)"
        ),
    };
    let text = secret.expose_str().ok_or_else(bad)?;
    let mut v =
        http::HeaderValue::from_str(&format!("{prefix}{}", text.trim())).map_err(|_| bad())?;
    v.set_sensitive(true);
    Ok(v)
}

/// A random (version 4) UUID, as Splunk channels and Azure request ids take.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// This machine's name (the pod name on Kubernetes), for the sinks that carry a host.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "siemgate".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    #[test]
    fn answers_are_classified_as_the_sinks_document_them() {
        let h = HeaderMap::new();
        let c = |s: u16| classify(StatusCode::from_u16(s).unwrap(), &h, "");
        assert_eq!(c(200), Delivery::Delivered);
        assert_eq!(c(202), Delivery::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(c(s), Delivery::Retry { .. }), "{s}");
        }
        assert!(matches!(c(413), Delivery::TooLarge { .. }));
        assert!(matches!(c(401), Delivery::Unauthorized { .. }));
        assert!(matches!(c(403), Delivery::Unauthorized { .. }));
        for s in [400, 404, 422, 301] {
            assert!(matches!(c(s), Delivery::Rejected { .. }), "{s}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_excerpts_are_bounded_and_cut_on_char_boundaries() {
        let body = "é".repeat(1000);
        let Delivery::Rejected { error } =
            classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &body)
        else {
            panic!()
        };
        assert!(error.starts_with("HTTP 400: é"));
        assert!(error.len() <= "HTTP 400: ".len() + EXCERPT);
    }

    #[test]
    fn uuids_have_the_version_4_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid_v4());
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = b"{\"a\":1}".repeat(100);
        let z = gzip(&data);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
