//! # siemgate
//!
//! A verifying webhook gateway placed in front of a SIEM. The life of a request, in order:
//!
//! 1. **Accept** ([`server`]): a connection is taken if `server.max_connections` allows; TLS
//!    (rustls, ALPN h2/http1.1, optional client certificates) must finish within
//!    `server.handshake_timeout`; headers must arrive within `server.header_timeout`.
//! 2. **Client limit**: the per-client-IP rate limit runs before anything else, so floods cost
//!    almost nothing (`429` + `Retry-After`).
//! 3. **Route**: `POST /v1/webhooks/{source}`; unknown source `404`, wrong method `405`.
//! 4. **Read**: `Content-Length` over `server.max_body` is `413` before reading; the body is
//!    read with the same cap and within `server.request_timeout`.
//! 5. **Verify** ([`verify`]): the vendor ([`vendor`]) names the proof and the signed bytes; the
//!    engine checks the MAC in constant time against every secret, then the timestamp window.
//!    Every failure is the same `401`; the reason goes to logs and metrics.
//! 6. **Source limit**: the per-source rate limit, after verification.
//! 7. **De-duplicate** ([`verify::replay`]): the event id (or signed-bytes digest) is recorded;
//!    a known one is answered `200 {"status":"duplicate"}` and not handed on.
//! 8. **Normalize** ([`event`]) and **hand on** ([`sink`]): the events are written before the
//!    sender is answered `200 {"status":"accepted","events":N}`. If that fails the replay
//!    entry is forgotten so the sender's retry is not taken for a duplicate.

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
pub mod vendor;
pub mod verify;
