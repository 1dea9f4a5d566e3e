//! Logging (tracing) and metrics (Prometheus text, rendered by the admin listener).

mod jsonline;
mod logbuf;
pub mod names;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The log buffer, for its count of dropped lines.
static LOG_BUFFER: std::sync::OnceLock<logbuf::LogBuffer> = std::sync::OnceLock::new();

/// Keeps the log writer running; dropping it writes out every line still waiting.
#[must_use = "dropping it stops the log writer"]
pub struct Logging {
    _flusher: Option<logbuf::Flusher>,
}

/// Installs the global subscriber: JSON lines, or text on a terminal. `RUST_LOG` filters.
///
/// Lines are formatted where they are logged and written to stderr by a thread of their own,
/// at most [`logbuf::PERIOD`] later, many to a write ([`logbuf`]): the request path never waits
/// on stderr. If [`logbuf::LIMIT`] bytes are waiting (stderr is stuck), lines are dropped and
/// counted (`siemgate_log_lines_dropped_total`).
pub fn init_logging(format: Option<LogFormat>) -> Logging {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, flusher) = match logbuf::start(std::io::stderr()) {
        Ok((writer, flusher)) => {
            let _ = LOG_BUFFER.set(writer.clone());
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(writer),
                Some(flusher),
            )
        }
        // No thread to be had: write straight to stderr.
        Err(_) => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
            None,
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.event_format(jsonline::JsonLine).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    Logging { _flusher: flusher }
}

/// Log lines dropped because the log writer was too far behind (0 when logging is not set up).
pub fn dropped_log_lines() -> u64 {
    LOG_BUFFER.get().map_or(0, |b| b.dropped())
}

/// One gateway's metrics: its own Prometheus recorder, rendered by its admin listener. Nothing
/// is process-global, so two gateways in one process (tests, an embedding application) never
/// count into each other's series. Every part that counts is handed this at construction.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

/// A series' labels: name and value.
pub type Labels<'a> = &'a [(&'static str, &'a str)];

static METADATA: Metadata<'static> = Metadata::new("siemgate", Level::INFO, None);

fn key(name: &'static str, labels: Labels<'_>) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
}

impl Telemetry {
    pub fn new() -> Arc<Telemetry> {
        let buckets = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe);
        Arc::new(Telemetry { recorder, handle })
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    pub fn counter(&self, name: &'static str, labels: Labels<'_>) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: Labels<'_>) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: Labels<'_>) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }
}

/// This process's resident memory in bytes, from `/proc/self/status` (`None` where there is
/// no procfs).
pub fn resident_bytes() -> Option<u64> {
    status_bytes("VmRSS")
}

/// This process's peak resident memory so far in bytes (`VmHWM`), as [`resident_bytes`].
pub fn peak_resident_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}

fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_field(&status, field)
}

/// The `{field}:` line of a `/proc/<pid>/status` text (given in kB), in bytes.
fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib = line.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    kib.checked_mul(1024)
}

/// CPU time a process has used, user and system, in seconds, from `/proc/<pid>/stat` (this
/// process when `pid` is `None`); `None` where there is no procfs or no such process.
pub fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    cpu_seconds_of(&std::fs::read_to_string(path).ok()?)
}

/// Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`, fixed by the kernel's ABI).
const USER_HZ: f64 = 100.0;

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` text, in seconds. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses itself: fields are
/// counted from the last `)`.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime = fields.next()?.parse::<u64>().ok()?;
    let stime = fields.next()?.parse::<u64>().ok()?;
    Some(utime.checked_add(stime)? as f64 / USER_HZ)
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(names::REQUESTS, "Webhook requests by source and outcome");
    describe_counter!(
        names::VERIFY_FAILURES,
        "Verification failures by source and reason"
    );
    describe_histogram!(
        names::REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to answer, by source"
    );
    describe_counter!(names::EVENTS, "Events handed on, by source and OCSF class");
    describe_histogram!(
        names::SPOOL_COMMIT_DURATION,
        Unit::Seconds,
        "A spool group commit's write and fdatasync"
    );
    describe_counter!(
        names::SPOOL_SEGMENTS_STARTED,
        "Spool segments started, from one written ahead or not"
    );
    describe_counter!(
        names::LOG_LINES_DROPPED,
        "Log lines dropped because the log writer fell behind"
    );
    describe_gauge!(
        names::PROCESS_RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident memory of the process"
    );
    describe_gauge!(
        names::PROCESS_CPU_SECONDS,
        Unit::Seconds,
        "CPU time of the process, user and system"
    );
    describe_counter!(
        names::REJECTED,
        "Requests refused before a source was known, by reason"
    );
    describe_counter!(
        names::CONNECTIONS_REFUSED,
        "Connections refused at max_connections"
    );
    describe_counter!(
        names::TLS_HANDSHAKE_FAILURES,
        "Failed or timed-out TLS handshakes"
    );
    describe_gauge!(names::OPEN_CONNECTIONS, "Open connections, by listener");
    describe_gauge!(
        names::CONNECTION_LIMIT,
        "Connection cap in force, by listener (lowered below the open-file limit)"
    );
    describe_counter!(
        names::CONNECTIONS_CLOSED,
        "Connections closed for sending no request head in time or idling, by listener and reason"
    );
    describe_gauge!(
        names::INFLIGHT_BODY_BYTES,
        Unit::Bytes,
        "Bytes of request bodies being read or held, over every connection"
    );
    describe_counter!(
        names::BODY_BUDGET_REFUSALS,
        "Requests answered 503 because server.max_inflight_body_bytes was in use"
    );
    describe_counter!(
        names::REPLAY_EVICTIONS,
        "Replay entries evicted early at replay.max_entries"
    );
    describe_counter!(names::REPLAY_ERRORS, "Replay store errors");
    describe_gauge!(
        names::TRACKED_CLIENTS,
        "Clients tracked by the per-client rate limiter"
    );
    describe_counter!(names::CONFIG_RELOADS, "Config reloads by outcome");
    describe_gauge!(
        names::CONFIG_LAST_RELOAD_SUCCESS,
        Unit::Seconds,
        "Unix time at which the config was last applied (at start or by a reload)"
    );
    describe_gauge!(
        names::TLS_CERT_EXPIRY,
        Unit::Seconds,
        "Unix time at which the serving certificate expires (its notAfter)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_comes_from_utime_and_stime() {
        // A command name with a space and a parenthesis; utime 1234, stime 566 ticks.
        let stat = "4242 (sieg ate)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 566 0 0 20 0 7 0 \
                    5000 1000000 2000 18446744073709551615\n";
        assert_eq!(cpu_seconds_of(stat), Some(18.0));
        for bad in [
            "",
            "4242 (x) S 1 2 3",
            "4242 (x) S 1 2 3 4 5 6 7 8 9 10 lots 5",
            "no paren",
        ] {
            assert_eq!(cpu_seconds_of(bad), None, "{bad:?}");
        }
        #[cfg(target_os = "linux")]
        {
            let own = process_cpu_seconds(None).unwrap();
            let by_pid = process_cpu_seconds(Some(std::process::id())).unwrap();
            assert!(own >= 0.0 && by_pid >= own, "{own} then {by_pid}");
        }
    }

    #[test]
    fn resident_memory_comes_from_vm_rss() {
        let status = "Name:\tsiemgate\nVmHWM:\t  9000 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n";
        assert_eq!(status_field(status, "VmRSS"), Some(123_456 * 1024));
        assert_eq!(status_field(status, "VmHWM"), Some(9000 * 1024));
        for bad in ["VmRSS:\tlots kB\n", "VmRSS:\t12 MB\n", "Name:\tx\n", ""] {
            assert_eq!(status_field(bad, "VmRSS"), None, "{bad:?}");
        }
        #[cfg(target_os = "linux")]
        assert!(resident_bytes().is_some_and(|b| b > 0));
        #[cfg(target_os = "linux")]
        assert!(peak_resident_bytes() >= resident_bytes());
    }
}
