//! Every answer the ingest listener gives, built in one place. Bodies are fixed: a failure's
//! cause goes to logs and metrics, never to the client.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use std::time::Duration;

use crate::gateway::Outcome;

pub type Body = Full<Bytes>;

pub fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn json_owned(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub fn with_retry_after(mut r: Response<Body>, wait: Duration) -> Response<Body> {
    // Whole seconds, rounded up, at least 1: a client must not retry at once.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

pub const UNAUTHORIZED: &str = r#"{"error":"unauthorized"}"#;

pub fn unauthorized() -> Response<Body> {
    json(StatusCode::UNAUTHORIZED, UNAUTHORIZED)
}

pub fn not_found() -> Response<Body> {
    json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#)
}

pub fn method_not_allowed() -> Response<Body> {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"error":"method_not_allowed"}"#,
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

pub fn too_large() -> Response<Body> {
    let mut r = json(
        StatusCode::PAYLOAD_TOO_LARGE,
        r#"{"error":"payload_too_large"}"#,
    );
    // The rest of the body is not read: the connection cannot be reused.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub fn rate_limited(wait: Duration) -> Response<Body> {
    with_retry_after(
        json(StatusCode::TOO_MANY_REQUESTS, r#"{"error":"rate_limited"}"#),
        wait,
    )
}

pub fn unavailable(wait: Duration) -> Response<Body> {
    with_retry_after(
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"unavailable"}"#,
        ),
        wait,
    )
}

pub fn timeout() -> Response<Body> {
    let mut r = json(
        StatusCode::REQUEST_TIMEOUT,
        r#"{"error":"request_timeout"}"#,
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub fn bad_request() -> Response<Body> {
    json(StatusCode::BAD_REQUEST, r#"{"error":"bad_request"}"#)
}

/// The one mapping from what happened to what the sender sees.
pub fn from_outcome(o: &Outcome) -> Response<Body> {
    match o {
        Outcome::Accepted { events } => json_owned(
            StatusCode::OK,
            format!(r#"{{"status":"accepted","events":{events}}}"#),
        ),
        Outcome::Duplicate => json(StatusCode::OK, r#"{"status":"duplicate"}"#),
        Outcome::Unauthorized(_) => unauthorized(),
        Outcome::RateLimited { retry_after } => rate_limited(*retry_after),
        Outcome::Unavailable { retry_after } => unavailable(*retry_after),
        Outcome::TooLarge => too_large(),
        Outcome::NotFound => not_found(),
        Outcome::Handshake(h) => handshake(h),
    }
}

/// A vendor's endpoint check, answered with the body it expects. `nosniff`: the body echoes
/// what the request sent.
pub fn handshake(h: &crate::vendors::Handshake) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(h.body.clone())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(h.content_type),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
