//! Sinks: where events go. One trait; one file per sink type.

mod file;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{SinkConfig, SinkKind};
use crate::event::Event;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: cannot open {path}: {error}")]
    Open {
        sink: String,
        path: String,
        error: std::io::Error,
    },
    #[error("{sink}: write failed: {error}")]
    Write { sink: String, error: std::io::Error },
    #[error("{sink}: the writer has stopped")]
    Stopped { sink: String },
    #[error("{sink}: sink type {kind} is not available in this version")]
    Unsupported { sink: String, kind: &'static str },
}

pub trait Sink: Send + Sync + 'static {
    fn id(&self) -> &str;
    fn type_name(&self) -> &'static str;
    /// Events below this OCSF severity are not sent to this sink.
    fn min_severity(&self) -> Option<u8>;
    /// Writes `events`; returns once they are written.
    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), SinkError>>;
}

/// Builds the sink a config names.
pub fn build(cfg: &SinkConfig) -> Result<Arc<dyn Sink>, SinkError> {
    match &cfg.kind {
        SinkKind::File { path } => Ok(Arc::new(file::FileSink::open(
            &cfg.id,
            path,
            cfg.min_severity,
        )?)),
        other => Err(SinkError::Unsupported {
            sink: cfg.id.clone(),
            kind: other.type_name(),
        }),
    }
}
