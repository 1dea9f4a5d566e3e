//! # siemgate
//!
//! A verifying webhook gateway placed in front of a SIEM: every event it answers `200` for is
//! verified, normalized to OCSF and on disk, and is delivered to each SIEM it is for, or kept
//! as a dead letter with the reason. The life of an event, in code order:
//!
//! ## Ingest: from a connection to `200`
//!
//! 1. **Accept** ([`server::conn`]): a connection is taken if `server.max_connections` (kept
//!    below the open-file limit) allows; TLS (rustls, ALPN h2/http1.1, optional client
//!    certificates) must finish within `server.handshake_timeout`; the first complete request
//!    head must arrive within `server.header_timeout` of accept, and a connection with no
//!    request in progress is closed after `server.idle_timeout`, HTTP/1.1 and h2 alike.
//! 2. **Client limit** ([`server::ingest`], [`gateway::limiter`]): the per-client-IP rate limit
//!    runs before anything else, so floods cost almost nothing (`429` + `Retry-After`).
//! 3. **Route**: `POST /v1/webhooks/{source}`; the source's vendor says which other methods it
//!    sends (Okta's verification GET). Unknown source `404`, wrong method `405`.
//! 4. **Read**: `Content-Length` over `server.max_body` is `413` before reading; the body is
//!    read with the same cap, within `server.request_timeout`, its bytes taken from the
//!    gateway-wide budget `server.max_inflight_body_bytes` ([`gateway::budget`]; `503` when it
//!    is spent).
//! 5. **Unsigned endpoint check**: a vendor check that carries no proof (Graph's
//!    `validationToken`, on `msgraph` sources only) is answered here, before verification, and
//!    never spooled.
//! 6. **Verify** ([`gateway::Gateway::ingest`] → [`verify`]): the vendor's scheme names the
//!    proof and the signed bytes; the engine checks them in constant time against every
//!    configured key (work bounded by the keys, not the request), then the timestamp window.
//!    Every failure is the same `401`; the reason goes to logs and metrics only.
//! 7. **Signed endpoint check**: a verified vendor handshake (Slack `url_verification`, Zoom
//!    `endpoint.url_validation`, Okta's GET) is answered and not spooled.
//! 8. **Source limit**: the per-source rate limit, after verification (an unsigned flood
//!    cannot spend a source's budget). Then a request that would yield more than
//!    [`ocsf::MAX_EVENTS_PER_REQUEST`] events is refused with `413` ([`ocsf::check`] counts the
//!    fanned-out array), before any replay key is reserved.
//! 9. **Reserve** ([`replay`]): the signed-bytes digest, and the vendor's delivery id
//!    where it documents one, are reserved for the request's life. A confirmed key is a
//!    duplicate (`200 {"status":"duplicate"}`, not handed on); a key reserved by a request
//!    still in flight, or a store full of live keys, is `503` with `Retry-After`: the sender
//!    retries rather than being told "duplicate" about an event that may never reach the disk.
//! 10. **Normalize** ([`ocsf`]): the vendor's normalizer makes OCSF events, each fanned-out
//!     event carrying its own item as `raw_data`; anything it cannot map is a Base Event, never
//!     dropped.
//! 11. **Spool** ([`spool`]): each event is routed to the source's sinks whose `min_severity`
//!     it meets and written with them; the writer fsyncs every waiting append at once (group
//!     commit) before any of them is answered.
//! 12. **Confirm**: the keys are confirmed for `replay.retention` and the sender gets
//!     `200 {"status":"accepted","events":N}`. If the spool refused the events (full, I/O
//!     error) the keys are forgotten instead, so the sender's retry is not a duplicate, and
//!     the answer is `503`.
//!
//! ## Delivery: from the spool to each SIEM
//!
//! 13. **Read** ([`sink::engine`]): one worker per sink reads the spool from its own cursor,
//!     so a slow or dead SIEM holds back no other; it costs disk, not memory.
//! 14. **Batch and fit**: batches are cut by the sink's `batch` settings and what the service
//!     takes in one request; an event over the sink's per-event limit is sent with `raw_data`
//!     cut and flagged ([`sink::fit`]), or is a dead letter if it cannot fit.
//! 15. **Send**: the sink encodes the batch for its SIEM (Splunk HEC, Sentinel, Datadog, signed
//!     HTTPS, a file), compressed and with the configured headers.
//! 16. **Act on the answer**: delivered moves the cursor (persisted, and spool segments every
//!     sink has passed are deleted); a retryable answer waits (`Retry-After`, else backoff with
//!     jitter) and sends again; `413` splits the batch; a refusal, or an event older than
//!     `retry.max_age`, becomes a dead letter ([`spool::dlq`]) with the reason.
//!
//! ## Around the lifecycle
//!
//! - **Reload** ([`server::reload`], [`gateway::reload`]): SIGHUP, `POST /v1/reload` and the
//!   file watcher run one method. It builds the new config, secrets, TLS setup and sinks beside
//!   the running ones and swaps them only if all are valid. Sinks added start workers; a
//!   removed sink's worker stops and its queued events stay in the spool.
//! - **Shutdown** ([`server::Handle::shutdown`]): not ready, a grace period, drain the requests
//!   in flight, flush the sinks for `spool.flush_timeout`; what is left stays in the spool.
//! - **Time** is injected ([`verify::Clock`]): windows, retention, event ages and rate limits
//!   read it, so tests move a clock instead of sleeping.
//!
//! ## Layout
//!
//! - [`server`]: listeners, connections and their bounds, the ingest and admin handlers,
//!   TLS, reload and its file watcher; outcomes become HTTP answers in one place
//!   ([`server::response`]).
//! - [`gateway`]: the pipeline of steps 6-12 and the state a reload swaps: sources, sinks,
//!   limiters, the body budget.
//! - [`verify`]: the verification engine (the [`verify::Scheme`] trait it calls, the
//!   signature [`verify::Descriptor`]), secrets, the clock, and the replay stores (memory,
//!   Redis).
//! - [`vendors`]: one file per vendor: its signature (a `const` [`verify::Descriptor`], or a
//!   hand-written [`verify::Scheme`]) and its normalizer ([`ocsf::Normalizer`]), and the
//!   registry of vendors.
//! - [`ocsf`]: the [`ocsf::Normalizer`] trait, the OCSF event, its common fields, fan-out and
//!   the events-per-request bound.
//! - [`spool`]: the durable log, cursors, recovery, dead letters.
//! - [`sink`]: the delivery engine and one module per SIEM.
//! - [`config`]: the file format, validation with line numbers, secrets kept out of errors.
//! - [`telemetry`]: logging and the Prometheus metric names.
//! - [`cli`]: the command line's shared pieces (`sign`, admin calls).

#![forbid(unsafe_code)]

pub mod cli;
pub mod conf;
pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod memory;
pub mod ocsf;
pub mod replay;
pub mod server;
pub mod sink;
pub mod spool;
pub mod telemetry;
pub mod vendors;
pub mod verify;
