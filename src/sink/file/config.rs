//! The `file` sink's keys and checks.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::sink::config::{Services, SinkCheck, SinkConfig, SinkType};
use crate::sink::{Sink, SinkError};

/// `[[sinks]]` with `type = "file"`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    path: Option<String>,
}

/// A checked `file` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    /// Resolved against the config file's directory.
    pub path: PathBuf,
}

impl SinkType for FileConfig {
    const NAME: &'static str = "file";
    type Table = FileTable;

    fn check(t: FileTable, cx: &mut SinkCheck<'_, '_>) -> Self {
        let p = cx.required("path", t.path);
        FileConfig {
            path: cx.resolve_path(&p),
        }
    }

    fn build(&self, sink: &SinkConfig, _: &Services<'_>) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(super::FileSink::open(&sink.id, &self.path)?))
    }
}
