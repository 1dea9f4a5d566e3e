//! Dead letters: one file of framed [`DeadLetter`]s per sink, under `spool.dir/dlq/`.
//!
//! Appends are synced before the sink's cursor moves past the events, so an event is always in
//! the log, in the dead letters, or both (after a crash in between: listed twice, never lost).
//! Removing dead letters (replay, drop) rewrites the file beside the old one and renames it
//! over, so a crash leaves the old file or the new, whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::frame::{self, DeadLetter, Frame};
use crate::telemetry::{names, Telemetry};

struct DlqFile {
    path: PathBuf,
    count: u64,
    bytes: u64,
}

pub struct DeadLetters {
    dir: PathBuf,
    files: Mutex<BTreeMap<String, DlqFile>>,
    /// Held across a replay (list, spool, remove) so two replays cannot take the same letters.
    locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tel: Arc<Telemetry>,
}

/// What a removal freed.
pub struct Freed {
    pub count: usize,
    pub bytes: u64,
}

fn scan(path: &Path) -> io::Result<(Vec<DeadLetter>, u64, Option<&'static str>)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0, None)),
        Err(e) => return Err(e),
    };
    let mut r = BufReader::new(file);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        match frame::read(&mut r)? {
            Frame::End => return Ok((out, offset, None)),
            Frame::Broken(reason) => return Ok((out, offset, Some(reason))),
            Frame::Zeros => return Ok((out, offset, Some("zero bytes where a frame should be"))),
            Frame::Whole(p, n) => match frame::decode_dead_letter(&p) {
                Ok(d) => {
                    out.push(d);
                    offset += n;
                }
                Err(reason) => return Ok((out, offset, Some(reason))),
            },
        }
    }
}

impl DeadLetters {
    /// Opens the dead letters of every configured sink and any other found on disk, cutting off
    /// a torn tail (an append interrupted by a crash, whose events the log still holds).
    pub fn open(dir: &Path, sinks: &[String], tel: &Arc<Telemetry>) -> io::Result<DeadLetters> {
        let mut files = BTreeMap::new();
        let mut names: BTreeSet<String> = sinks.iter().cloned().collect();
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            if let Some(n) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".dlq"))
            {
                names.insert(n.to_string());
            } else if p.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&p);
            }
        }
        for sink in names {
            let path = dir.join(format!("{sink}.dlq"));
            let (letters, valid, broken) = scan(&path)?;
            if let Some(reason) = broken {
                let cut = super::recover::quarantine_tail(
                    &path,
                    valid,
                    &dir.parent().unwrap_or(dir).join("quarantine"),
                )?;
                tel.counter(names::SPOOL_RECOVERED_TAILS, &[]).increment(1);
                tracing::warn!(file = %path.display(), offset = valid, bytes = cut, reason, "cut a torn tail off a dead-letter file (its events are still in the spool log)");
            }
            tel.gauge(names::DEAD_LETTERS, &[("sink", &sink)])
                .set(letters.len() as f64);
            files.insert(
                sink,
                DlqFile {
                    path,
                    count: letters.len() as u64,
                    bytes: valid,
                },
            );
        }
        Ok(DeadLetters {
            dir: dir.to_path_buf(),
            files: Mutex::new(files),
            locks: Mutex::new(BTreeMap::new()),
            tel: tel.clone(),
        })
    }

    /// The gauge of `sink`'s dead-letter count.
    fn gauge(&self, sink: &str) -> metrics::Gauge {
        self.tel.gauge(names::DEAD_LETTERS, &[("sink", sink)])
    }

    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DlqFile>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn lock(&self, sink: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sink.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    /// Knows `sink` (a reload added it): its dead-letter count shows, at zero when it has no
    /// file yet.
    pub fn add(&self, sink: &str) {
        let mut files = self.files();
        if !files.contains_key(sink) {
            self.gauge(sink).set(0.0);
            files.insert(sink.to_string(), self.empty(sink));
        }
    }

    /// The entry of a sink with no dead letters yet.
    fn empty(&self, sink: &str) -> DlqFile {
        DlqFile {
            path: self.dir.join(format!("{sink}.dlq")),
            count: 0,
            bytes: 0,
        }
    }

    /// Appends and syncs; returns the bytes added.
    pub fn append(&self, sink: &str, letters: &[DeadLetter]) -> io::Result<u64> {
        let mut buf = Vec::new();
        for d in letters {
            frame::encode_dead_letter(&mut buf, d);
        }
        let mut files = self.files();
        let entry = files
            .entry(sink.to_string())
            .or_insert_with(|| self.empty(sink));
        let new = !entry.path.exists();
        let mut f = super::private_file()
            .create(true)
            .append(true)
            .open(&entry.path)?;
        if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
            let _ = f.set_len(entry.bytes);
            return Err(e);
        }
        if new {
            super::sync_dir(&self.dir)?;
        }
        entry.count += letters.len() as u64;
        entry.bytes += buf.len() as u64;
        self.gauge(sink).set(entry.count as f64);
        Ok(buf.len() as u64)
    }

    /// Dead letters of `sink` (or every sink), with id `id` (or any), at most `limit`.
    pub fn list(
        &self,
        sink: Option<&str>,
        id: Option<u64>,
        limit: usize,
    ) -> io::Result<Vec<(String, DeadLetter)>> {
        let files = self.files();
        let mut out = Vec::new();
        for (name, f) in files.iter() {
            if sink.is_some_and(|s| s != name) {
                continue;
            }
            let (letters, _, _) = scan(&f.path)?;
            for d in letters {
                if out.len() >= limit {
                    return Ok(out);
                }
                if id.is_none_or(|i| i == d.seq) {
                    out.push((name.clone(), d));
                }
            }
        }
        Ok(out)
    }

    /// Removes the letters of `sink` that `chosen` picks.
    pub fn remove(&self, sink: &str, chosen: impl Fn(&DeadLetter) -> bool) -> io::Result<Freed> {
        let mut files = self.files();
        let Some(f) = files.get_mut(sink) else {
            return Ok(Freed { count: 0, bytes: 0 });
        };
        let (letters, _, _) = scan(&f.path)?;
        let mut kept = Vec::new();
        let mut count = 0;
        for d in &letters {
            if chosen(d) {
                count += 1;
            } else {
                frame::encode_dead_letter(&mut kept, d);
            }
        }
        if count == 0 {
            return Ok(Freed { count: 0, bytes: 0 });
        }
        super::write_atomically(&f.path, &kept)?;
        let freed = f.bytes.saturating_sub(kept.len() as u64);
        f.bytes = kept.len() as u64;
        f.count = (letters.len() - count) as u64;
        self.gauge(sink).set(f.count as f64);
        Ok(Freed {
            count,
            bytes: freed,
        })
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.files()
            .iter()
            .map(|(k, v)| (k.clone(), v.count))
            .collect()
    }

    pub fn bytes(&self) -> u64 {
        self.files().values().map(|f| f.bytes).sum()
    }
}
