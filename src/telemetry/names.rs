//! Every metric name, in one place (CONTRACT §7). Labels take configured ids and fixed words
//! only: never a path, an address or an error string.

pub const REQUESTS: &str = "siemgate_requests_total";
pub const VERIFY_FAILURES: &str = "siemgate_verify_failures_total";
pub const REQUEST_DURATION: &str = "siemgate_request_duration_seconds";
pub const EVENTS: &str = "siemgate_events_total";
pub const SPOOL_EVENTS: &str = "siemgate_spool_events";
pub const SPOOL_BYTES: &str = "siemgate_spool_bytes";
/// `spool.max_size`, so an alert can compare `siemgate_spool_bytes` with it.
pub const SPOOL_MAX_BYTES: &str = "siemgate_spool_max_bytes";
/// A group commit's write and fdatasync: what every acknowledgement in the group waited on disk.
pub const SPOOL_COMMIT_DURATION: &str = "siemgate_spool_commit_duration_seconds";
pub const SINK_EVENTS: &str = "siemgate_sink_events_total";
pub const SINK_REQUEST_DURATION: &str = "siemgate_sink_request_duration_seconds";
pub const DEAD_LETTERS: &str = "siemgate_dead_letters";
pub const CONFIG_RELOADS: &str = "siemgate_config_reloads_total";
/// When the config was last applied (at start or by a reload), Unix seconds.
pub const CONFIG_LAST_RELOAD_SUCCESS: &str =
    "siemgate_config_last_reload_success_timestamp_seconds";
pub const TLS_CERT_EXPIRY: &str = "siemgate_tls_cert_expiry_seconds";
/// Log lines dropped because the log writer fell behind (see `telemetry::init_logging`).
pub const LOG_LINES_DROPPED: &str = "siemgate_log_lines_dropped_total";
/// The process's resident memory (Linux: `VmRSS`), the standard Prometheus process gauge, read
/// at scrape time, so memory can be watched and alerted on beside `siemgate_replay_bytes`.
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
/// CPU time the process has used, user and system, in seconds (Linux: `/proc/self/stat`), the
/// standard Prometheus process series, read at scrape time: its rate over the rate of
/// `siemgate_events_total` is what one event costs.
pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds_total";

// Our own additions.
/// Requests refused before routing (no source known yet): `reason` = client_rate_limited,
/// not_found, method_not_allowed, too_large, timeout, bad_request.
pub const REJECTED: &str = "siemgate_rejected_requests_total";
/// Connections refused because `server.max_connections` was reached.
/// `listener` = ingest, or admin (refused at `admin.max_connections`).
pub const CONNECTIONS_REFUSED: &str = "siemgate_connections_refused_total";
/// TLS handshakes that failed or timed out: `reason` = timeout, error.
pub const TLS_HANDSHAKE_FAILURES: &str = "siemgate_tls_handshake_failures_total";
/// Open connections: `listener` = ingest, admin.
pub const OPEN_CONNECTIONS: &str = "siemgate_open_connections";
/// Replay-store entries evicted early because `replay.max_entries` was reached.
pub const REPLAY_EVICTIONS: &str = "siemgate_replay_evictions_total";
/// Replay-store errors (the request is answered 503 and can be retried).
pub const REPLAY_ERRORS: &str = "siemgate_replay_store_errors_total";
/// Clients tracked by the per-client rate limiter.
pub const TRACKED_CLIENTS: &str = "siemgate_rate_limit_tracked_clients";
/// Appends to the spool that failed (disk full, I/O error); the sender got 503.
pub const SPOOL_WRITE_FAILURES: &str = "siemgate_spool_write_failures_total";
/// Requests refused because the spool was at `spool.max_size`.
pub const SPOOL_FULL: &str = "siemgate_spool_full_total";
/// Spool segments the writer started: `ahead` = `true` from a segment written ahead (zeros,
/// synced: group commits write in place), `false` from an empty file (none was ready: the
/// first segment of a run, a full disk, or the writer outran the thread writing them).
pub const SPOOL_SEGMENTS_STARTED: &str = "siemgate_spool_segments_started_total";
/// Torn tails cut off a spool file at start (moved to `quarantine/`, never acknowledged data).
pub const SPOOL_RECOVERED_TAILS: &str = "siemgate_spool_recovered_tails_total";
/// Events pending for a sink that is no longer configured, found at start.
pub const SPOOL_ABANDONED: &str = "siemgate_spool_abandoned_events";
/// 1 while a sink's last attempt succeeded (or none was made), 0 while it is failing.
pub const SINK_HEALTHY: &str = "siemgate_sink_healthy";
/// Requests to a sink by how they were classified: `result` = delivered, retry, split,
/// rejected, unauthorized, partial.
pub const SINK_REQUESTS: &str = "siemgate_sink_requests_total";
/// Events a sink delivered although the SIEM drops them for their age after accepting them
/// (Datadog: over 18 h old or 2 h ahead); siemgate sends them stamped with the intake time.
pub const SINK_STALE_EVENTS: &str = "siemgate_sink_stale_events_total";
/// Verified payloads a vendor's normalizer could not map; they are forwarded as Base Events
/// with `unmapped.siemgate.normalize_error` and the raw body.
pub const NORMALIZE_ERRORS: &str = "siemgate_normalize_errors_total";
/// Connections the gateway closed: `listener` = ingest, admin; `reason` = header_timeout (no
/// complete request head within `server.header_timeout` of accept), idle (no request in
/// progress for `server.idle_timeout`).
pub const CONNECTIONS_CLOSED: &str = "siemgate_connections_closed_total";
/// Bytes of request bodies being read or held now, over every connection (bounded by
/// `server.max_inflight_body_bytes`).
pub const INFLIGHT_BODY_BYTES: &str = "siemgate_inflight_body_bytes";
/// Requests answered 503 because `server.max_inflight_body_bytes` was in use.
pub const BODY_BUDGET_REFUSALS: &str = "siemgate_body_budget_refusals_total";
/// The connection cap each listener enforces (`listener` = ingest, admin): the configured
/// `max_connections`, or less when the open-file limit is lower.
pub const CONNECTION_LIMIT: &str = "siemgate_connection_limit";
/// The replay store's size (CONTRACT §7): ids remembered, and the memory their tables hold.
pub const REPLAY_KEYS: &str = "siemgate_replay_keys";
pub const REPLAY_BYTES: &str = "siemgate_replay_bytes";
/// The local replay store's key log on disk (the memory its keys take is `siemgate_replay_bytes`).
pub const REPLAY_KEY_LOG_BYTES: &str = "siemgate_replay_key_log_bytes";
/// New events refused (503) because the memory replay store was full of ids still within
/// retention (`replay.max_entries`); it never forgets a live id to make room.
pub const REPLAY_FULL: &str = "siemgate_replay_full_total";
/// Verified requests refused with 413 because they would yield more than
/// `ocsf::MAX_EVENTS_PER_REQUEST` events.
pub const TOO_MANY_EVENTS: &str = "siemgate_too_many_events_total";
/// Events a sink sent with `raw_data` cut (or left out) to fit the service's per-event limit;
/// flagged `unmapped.siemgate.raw_data_truncated`.
pub const SINK_TRUNCATED_EVENTS: &str = "siemgate_sink_truncated_events_total";
