//! The `file` sink: JSON lines, one event a line, appended and fsync'd before `write` returns.
//!
//! Writes go through one writer task that takes every batch waiting, writes them all and syncs
//! once (group commit), so concurrent requests share an fsync instead of queueing for one each.

use std::io::Write;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

use super::{BoxFuture, Sink, SinkError};
use crate::event::Event;

pub struct FileSink {
    id: String,
    min_severity: Option<u8>,
    tx: mpsc::Sender<Job>,
}

struct Job {
    bytes: Vec<u8>,
    done: oneshot::Sender<Result<(), std::io::Error>>,
}

/// Jobs taken per group commit at most.
const GROUP: usize = 512;

impl FileSink {
    pub fn open(id: &str, path: &Path, min_severity: Option<u8>) -> Result<Self, SinkError> {
        let open_err = |error| SinkError::Open {
            sink: id.into(),
            path: path.display().to_string(),
            error,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(open_err)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_err)?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name(format!("sink-file-{id}"))
            .spawn(move || writer(file, rx))
            .map_err(open_err)?;
        Ok(FileSink {
            id: id.into(),
            min_severity,
            tx,
        })
    }
}

fn writer(mut file: std::fs::File, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(GROUP);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // On failure, cut the file back to where this group began: no half line is left for
        // the next group to append to, and every writer in the group gets the error.
        let start = file.metadata().map(|m| m.len());
        let mut result = jobs
            .iter()
            .try_for_each(|j| file.write_all(&j.bytes))
            .and_then(|_| file.sync_data());
        if result.is_err() {
            if let Ok(len) = start {
                if let Err(e) = file.set_len(len) {
                    result = Err(e);
                }
            }
        }
        for j in jobs.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            let _ = j.done.send(r);
        }
    }
}

impl Sink for FileSink {
    fn id(&self) -> &str {
        &self.id
    }

    fn type_name(&self) -> &'static str {
        "file"
    }

    fn min_severity(&self) -> Option<u8> {
        self.min_severity
    }

    fn write<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut bytes = Vec::with_capacity(events.len() * 512);
            for e in events {
                serde_json::to_writer(&mut bytes, e).map_err(|e| SinkError::Write {
                    sink: self.id.clone(),
                    error: e.into(),
                })?;
                bytes.push(b'\n');
            }
            let (done, wait) = oneshot::channel();
            self.tx
                .send(Job { bytes, done })
                .await
                .map_err(|_| SinkError::Stopped {
                    sink: self.id.clone(),
                })?;
            match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(SinkError::Write {
                    sink: self.id.clone(),
                    error,
                }),
                Err(_) => Err(SinkError::Stopped {
                    sink: self.id.clone(),
                }),
            }
        })
    }
}
