//! Sinks: where events go. One trait; one folder per sink type; the delivery [`engine`] runs one
//! worker per sink that reads the spool, batches, sends, retries and dead-letters.
//!
//! A sink's folder (`splunk/`, `sentinel/`, `data_collector/`, `datadog/`, `http/`, `file/`)
//! holds all of it: `config.rs`, its `[[sinks]]` keys as a serde struct (unknown keys denied),
//! their checks and defaults ([`config::SinkType`]); `mod.rs`, its encoder, limits and answers.
//! What sinks share sits here: the keys every sink has ([`config`]), the HTTP client and answer
//! classification ([`transport`]), the OCSF fields SIEMs index (`summary`), cutting an event
//! to fit ([`fit`]) and URL redaction ([`redact`]). Adding a sink is a new folder and one line
//! in `sink_types!` below.
//!
//! A sink only knows its wire format: it turns a batch of spooled events into requests and says
//! what the answer means as a [`Delivery`]. Batching, backoff, splitting, dead letters, metrics
//! and health are the engine's, the same for every sink.
//!
//! Per-event limits ([`Sink::event_size`]): an event over one is sent with its `raw_data` cut
//! to fit and flagged `unmapped.siemgate.raw_data_truncated` ([`fit`]); only an event still too
//! large is a dead letter, and every dead letter is logged as a warning with the sink and the
//! reason. Datadog: 1,000,000 bytes per log (dead letter beyond). Sentinel (Logs Ingestion):
//! 1,000,000 bytes per call, so per record (dead letter beyond). Splunk HEC: 1,000,000 bytes per
//! request (siemgate's cap, Splunk Cloud's), so per envelope (sent whole beyond, for Splunk to
//! decide). Data Collector: 32,000 bytes for the `Event` column (the API truncates values over
//! 32 KB; sent as it is beyond). `http` and `file`: none.

pub mod config;
pub mod data_collector;
mod datadog;
pub mod engine;
mod file;
pub mod fit;
mod http;
pub mod redact;
mod sentinel;
mod splunk;
mod summary;
pub(crate) mod table;
pub mod transport;

pub use config::{Compression, SinkConfig};
pub use data_collector::DataCollectorConfig;
pub use datadog::DatadogConfig;
pub use file::FileConfig;
pub use http::HttpConfig;
pub use sentinel::{EntraCredential, SentinelConfig};
pub use splunk::SplunkConfig;

// Every sink type, in the order the config's errors name them. A new sink is a folder
// (its `Sink`, and a config implementing [`config::SinkType`]) and one line here.
config::sink_types! {
    /// Splunk's HTTP Event Collector.
    SplunkHec(SplunkConfig),
    /// Microsoft Sentinel through the Logs Ingestion API.
    Sentinel(SentinelConfig),
    /// The legacy Azure Monitor HTTP Data Collector API.
    SentinelDataCollector(DataCollectorConfig),
    /// Datadog's logs intake.
    Datadog(DatadogConfig),
    /// Any HTTP receiver, optionally Standard-Webhooks-signed.
    Http(HttpConfig),
    /// JSON lines in a local file.
    File(FileConfig),
}

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::spool::Record;
use crate::telemetry::{names, Telemetry};
use crate::verify::Clock;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: cannot open {path}: {error}")]
    Open {
        sink: String,
        path: String,
        error: std::io::Error,
    },
    #[error("{sink}: {message}")]
    Setup { sink: String, message: String },
}

/// What became of one request to a sink, as the engine acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The sink has the events.
    Delivered,
    /// A transient failure (transport error, timeout, 408, 429, 5xx): try again, after `after`
    /// when the sink said how long (`Retry-After`).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The request was too large (413): split the batch; a single event becomes a dead letter.
    TooLarge { error: String },
    /// Refused for good (400 and other 4xx): the events become dead letters at once.
    Rejected { error: String },
    /// Our credentials were refused (401, 403): keep the events and keep trying (a fixed token
    /// delivers them); the sink reports unhealthy and the error is logged loudly.
    Unauthorized { error: String },
    /// The sink took the first `accepted` events and refused the next one for good (Splunk
    /// HEC's `invalid-event-number`): that one becomes a dead letter, the rest are sent again.
    Partial { accepted: usize, error: String },
}

impl Delivery {
    /// The error text; empty for a delivery.
    pub fn error(&self) -> &str {
        match self {
            Delivery::Delivered => "",
            Delivery::Retry { error, .. }
            | Delivery::TooLarge { error }
            | Delivery::Rejected { error }
            | Delivery::Unauthorized { error }
            | Delivery::Partial { error, .. } => error,
        }
    }

    /// The `result` label of `siemgate_sink_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retry { .. } => "retry",
            Delivery::TooLarge { .. } => "split",
            Delivery::Rejected { .. } => "rejected",
            Delivery::Unauthorized { .. } => "unauthorized",
            Delivery::Partial { .. } => "partial",
        }
    }
}

/// One event's size as a sink sends it, against the service's per-event limit.
#[derive(Debug, Clone, Copy)]
pub struct EventSize {
    /// The event's bytes as the sink encodes it (its record, log or envelope).
    pub encoded: usize,
    /// The most the service takes per event, on the same count.
    pub limit: usize,
    /// Why an event still over `limit` once its `raw_data` is cut cannot be sent (it becomes
    /// a dead letter); `None` when it is sent as it is, for the service to decide.
    pub refuse: Option<&'static str>,
}

/// What the sink's service takes in one request; batches are cut to fit (besides the sink's
/// `batch` settings, whichever is smaller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub max_events: Option<usize>,
    /// Counted on the events' own bytes; a sink whose encoding adds to them still checks its
    /// real body and answers [`Delivery::TooLarge`] (without sending) when it does not fit.
    pub max_bytes: Option<u64>,
}

pub trait Sink: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn type_name(&self) -> &'static str;
    /// Sends one batch of events (JSON, in spool order).
    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery>;
    fn limits(&self) -> Limits {
        Limits::default()
    }
    /// The event against the service's per-event limit, measured on the one record the sink
    /// builds for it; `Ok(None)` for a sink without a limit, `Err(reason)` for an event that
    /// can never be sent (it is a dead letter before batching). The engine sends an event over
    /// the limit with its `raw_data` cut to fit ([`fit`]).
    fn event_size(&self, _event: &Record) -> Result<Option<EventSize>, String> {
        Ok(None)
    }
    /// A check of the service run once when the sink starts (Splunk's health endpoint, a token
    /// from Entra ID); `None` for sinks that have none.
    fn check(&self) -> Option<BoxFuture<'_, Result<(), String>>> {
        None
    }
    /// How long one `send` may take in all, given the per-request timeout: more than one
    /// request when the sink fetches a token or polls for acknowledgements.
    fn max_send_time(&self, request_timeout: Duration) -> Duration {
        request_timeout + Duration::from_secs(1)
    }
}

/// The outcome of a sink's start-up check, as `/v1/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    None = 0,
    Pending = 1,
    Passed = 2,
    Failed = 3,
}

impl CheckState {
    pub fn label(self) -> &'static str {
        match self {
            CheckState::None => "none",
            CheckState::Pending => "pending",
            CheckState::Passed => "passed",
            CheckState::Failed => "failed",
        }
    }
}

/// A sink's health as operators see it in `/v1/status` and `siemgate_sink_healthy`.
pub struct Health {
    sink: String,
    gauge: metrics::Gauge,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    check: AtomicU8,
}

impl Health {
    pub fn new(sink: &str, tel: &Telemetry) -> Arc<Health> {
        let gauge = tel.gauge(names::SINK_HEALTHY, &[("sink", sink)]);
        gauge.set(1.0);
        Arc::new(Health {
            sink: sink.to_string(),
            gauge,
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            check: AtomicU8::new(CheckState::None as u8),
        })
    }

    pub fn set_check(&self, state: CheckState) {
        self.check.store(state as u8, Ordering::SeqCst);
    }

    pub fn check(&self) -> CheckState {
        match self.check.load(Ordering::SeqCst) {
            1 => CheckState::Pending,
            2 => CheckState::Passed,
            3 => CheckState::Failed,
            _ => CheckState::None,
        }
    }

    pub fn ok(&self) {
        if !self.healthy.swap(true, Ordering::SeqCst) {
            tracing::info!(sink = %self.sink, "sink delivers again");
            self.gauge.set(1.0);
        }
    }

    pub fn failing(&self, error: &str) {
        if self.healthy.swap(false, Ordering::SeqCst) {
            self.gauge.set(0.0);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }

    /// The sink was removed: its series reads healthy from now on, so no alert keeps firing
    /// for a sink that is gone.
    pub fn retire(&self) {
        self.healthy.store(true, Ordering::SeqCst);
        self.gauge.set(1.0);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Builds the sink a config names. `clock` is the gateway's (event ages are measured on it).
pub fn build(
    cfg: &SinkConfig,
    clock: Arc<dyn Clock>,
    tel: &Telemetry,
) -> Result<Arc<dyn Sink>, SinkError> {
    let with = config::Services { clock: &clock, tel };
    cfg.kind.build(cfg, &with)
}
