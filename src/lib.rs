//! # siemgate
//!
//! A verifying webhook gateway placed in front of a SIEM. The life of a request, in order:
//!
//! 1. **Accept** ([`server`]): a connection is taken if `server.max_connections` (kept below the
//!    open-file limit) allows; TLS (rustls, ALPN h2/http1.1, optional client certificates)
//!    must finish within `server.handshake_timeout`; the first complete request head must
//!    arrive within `server.header_timeout` of accept, and a connection with no request in
//!    progress is closed after `server.idle_timeout`, HTTP/1.1 and h2 alike.
//! 2. **Client limit**: the per-client-IP rate limit runs before anything else, so floods cost
//!    almost nothing (`429` + `Retry-After`).
//! 3. **Route**: `POST /v1/webhooks/{source}` (the vendor says which other methods it sends:
//!    Okta's verification GET); unknown source `404`, wrong method `405`.
//! 4. **Read**: `Content-Length` over `server.max_body` is `413` before reading; the body is
//!    read with the same cap, within `server.request_timeout`, its bytes taken from the
//!    gateway-wide budget `server.max_inflight_body_bytes` (`503` when it is spent).
//! 5. **Verify** ([`verify`]): a vendor check that carries no secret (Graph's
//!    `validationToken`, on `msgraph` sources) is answered first and never spooled. Otherwise
//!    the vendor's [`verify::Scheme`] ([`vendors`]) names the proof and the signed bytes; the
//!    engine checks it in constant time against every configured key (work bounded by the
//!    keys, not the request), then the timestamp window. Every failure is the same `401`; the
//!    reason goes to logs and metrics. Verified vendor handshakes (Slack, Zoom, Okta) are
//!    answered here.
//! 6. **Source limit**: the per-source rate limit, after verification. Then a request that
//!    would yield more than [`ocsf::MAX_EVENTS_PER_REQUEST`] events is refused with `413`
//!    ([`ocsf::check`] counts the fanned-out array), before any replay key is reserved.
//! 7. **De-duplicate** ([`verify::replay`]): the signed-bytes digest, and the vendor's delivery
//!    id where it documents one, are reserved; a known one is answered
//!    `200 {"status":"duplicate"}` and not handed on; a store full of live ids answers `503`.
//! 8. **Normalize** ([`ocsf`]): each fanned-out event carrying its own item as `raw_data`.
//! 9. **Spool** ([`spool`]): the events are fsync'd (group commit) before the sender is
//!    answered `200 {"status":"accepted","events":N}`, and the replay keys confirmed. If the
//!    spool refuses them (full, I/O error) the keys are forgotten so the sender's retry is not
//!    taken for a duplicate, and the answer is `503`.
//! 10. **Deliver** ([`sink`]): one worker per sink reads the spool from its own cursor, batches,
//!     fits each event to the SIEM's per-event limit, retries what the SIEM asks to retry, and
//!     dead-letters what it refuses; a sink that is removed keeps its events until an operator
//!     drops them.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod ocsf;
pub mod server;
pub mod sink;
pub mod spool;
pub mod telemetry;
pub mod vendors;
pub mod verify;
