//! Sinks: where events go. One trait; one file per sink type; the delivery [`engine`] runs one
//! worker per sink that reads the spool, batches, sends, retries and dead-letters.
//!
//! A sink only knows its wire format: it turns a batch of spooled events into requests and says
//! what the answer means as a [`Delivery`]. Batching, backoff, splitting, dead letters, metrics
//! and health are the engine's, the same for every sink.

pub mod engine;
mod file;
mod http;
pub mod transport;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{SinkConfig, SinkKind};
use crate::spool::Record;
use crate::telemetry::names;

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
    #[error("{sink}: sink type {kind} is not available in this version")]
    Unsupported { sink: String, kind: &'static str },
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
}

impl Delivery {
    /// The `result` label of `siemgate_sink_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retry { .. } => "retry",
            Delivery::TooLarge { .. } => "split",
            Delivery::Rejected { .. } => "rejected",
            Delivery::Unauthorized { .. } => "unauthorized",
        }
    }
}

pub trait Sink: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn type_name(&self) -> &'static str;
    /// Sends one batch of events (JSON, in spool order).
    fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery>;
    /// Whether one event can ever be sent; `Err(reason)` makes it a dead letter before batching
    /// (for example an event over the sink's per-event size limit).
    fn admit(&self, _event: &Record) -> Result<(), String> {
        Ok(())
    }
}

/// A sink's health as operators see it in `/v1/status` and `siemgate_sink_healthy`.
pub struct Health {
    sink: String,
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    pub fn new(sink: &str) -> Arc<Health> {
        metrics::gauge!(names::SINK_HEALTHY, "sink" => sink.to_string()).set(1.0);
        Arc::new(Health {
            sink: sink.to_string(),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
        })
    }

    pub fn ok(&self) {
        if !self.healthy.swap(true, Ordering::SeqCst) {
            tracing::info!(sink = %self.sink, "sink delivers again");
            metrics::gauge!(names::SINK_HEALTHY, "sink" => self.sink.clone()).set(1.0);
        }
    }

    pub fn failing(&self, error: &str) {
        if self.healthy.swap(false, Ordering::SeqCst) {
            metrics::gauge!(names::SINK_HEALTHY, "sink" => self.sink.clone()).set(0.0);
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
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

/// Builds the sink a config names.
pub fn build(cfg: &SinkConfig) -> Result<Arc<dyn Sink>, SinkError> {
    match &cfg.kind {
        SinkKind::File { path } => Ok(Arc::new(file::FileSink::open(&cfg.id, path)?)),
        SinkKind::Http { .. } => Ok(Arc::new(http::HttpSink::new(cfg)?)),
        other => Err(SinkError::Unsupported {
            sink: cfg.id.clone(),
            kind: other.type_name(),
        }),
    }
}
