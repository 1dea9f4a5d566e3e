//! What the spool finds at start, after a clean stop or a crash.
//!
//! A sealed segment with a summary that matches it, and no sink's cursor inside it, is taken
//! from its summary ([`super::summary`]): its records are checked when a sink reads them. Every
//! other segment is read and every frame's checksum checked. The writer syncs each group before
//! it answers, so bytes after the last intact frame of the *last* segment were never
//! acknowledged: they are a torn group from a crash. That tail is moved to `quarantine/` and the
//! segment cut back to its last intact frame. Damage anywhere else is in data that was
//! acknowledged: the spool refuses to start and names the file and offset, rather than drop
//! events silently.
//!
//! The replay keys of segments read whole are collected (and written to the key log again, in
//! case it lost them); a summarized segment's keys are in the key log already.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::frame::{self, Frame};
use super::{summary, SegInfo, SpoolError};
use crate::telemetry::{names, Telemetry};

pub(super) struct Recovered {
    pub segments: BTreeMap<u64, SegInfo>,
    pub next_seq: u64,
    pub cursors: HashMap<String, u64>,
    pub pending: HashMap<String, u64>,
    pub abandoned: HashMap<String, u64>,
    pub bytes: u64,
    /// The replay keys the segments read whole hold.
    pub keys: Vec<frame::KeyEntry>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |error| SpoolError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn read_cursors(dir: &Path) -> Result<HashMap<String, u64>, SpoolError> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if name.ends_with(".tmp") {
            // A cursor update that did not finish: the previous cursor stands.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if let Some(seq) = read_cursor(&path)? {
            out.insert(name, seq);
        }
    }
    Ok(out)
}

/// The cursor persisted in `path`, if there is one.
pub(super) fn read_cursor(path: &Path) -> Result<Option<u64>, SpoolError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    // u64::MAX has no successor: no cursor can be there.
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| *s < u64::MAX)
        .map(Some)
        .ok_or_else(|| SpoolError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: "a cursor file that is not a number",
        })
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match first {
            Some(f) => out.push((f, path)),
            // Summaries are read with their segment; a left-over temporary one goes.
            None if name.ends_with(".sum") => {}
            // A left-over temporary summary, a delivered segment a crash caught while it was
            // being deleted, or a segment written ahead and not used yet: gone (the writer
            // writes another ahead).
            None if name.ends_with(".sum.tmp")
                || name.ends_with(".del")
                || name.starts_with(super::spare::NAME) =>
            {
                let _ = std::fs::remove_file(&path);
            }
            None => {
                tracing::warn!(file = %path.display(), "ignoring a file that is not a spool segment")
            }
        }
    }
    out.sort();
    // A summary whose segment is gone (deleted just before a crash) goes too.
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "sum") && !path.with_extension("seg").exists() {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(out)
}

/// Moves the bytes of `path` from `offset` on to the quarantine folder and cuts the file there.
pub(super) fn quarantine_tail(path: &Path, offset: u64, quarantine: &Path) -> io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(offset))?;
    f.read_to_end(&mut tail)?;
    let name = format!(
        "{}.{offset}.tail",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment")
    );
    let mut q = super::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(quarantine.join(name))?;
    q.write_all(&tail)?;
    q.sync_all()?;
    super::sync_dir(quarantine)?;
    f.set_len(offset)?;
    f.sync_all()?;
    Ok(len - offset)
}

/// Whether nothing but zeros is left in `r`.
fn zeros_to_end<R: Read>(r: &mut R) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) if buf[..n].iter().any(|b| *b != 0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Counts `n` records still queued for sink `s`: pending when it is configured, abandoned
/// (an orphan's) when not.
fn queue(
    pending: &mut HashMap<String, u64>,
    abandoned: &mut HashMap<String, u64>,
    sinks: &[String],
    s: &str,
    n: u64,
) {
    let counts = if sinks.iter().any(|c| c == s) {
        pending
    } else {
        abandoned
    };
    *counts.entry(s.to_string()).or_default() += n;
}

pub(super) fn recover(
    dir: &Path,
    sinks: &[String],
    tel: &Telemetry,
) -> Result<Recovered, SpoolError> {
    let cursors = read_cursors(&dir.join("cursors"))?;
    let segments_dir = dir.join("segments");
    let list = list_segments(&segments_dir)?;
    let mut segments = BTreeMap::new();
    let mut pending: HashMap<String, u64> = HashMap::new();
    let mut abandoned: HashMap<String, u64> = HashMap::new();
    // Every sink any record names, delivered or not.
    let mut named: HashSet<String> = HashSet::new();
    let mut prev_seq = 0u64;
    let mut bytes = 0u64;
    let mut keys = Vec::new();
    let n = list.len();
    let mut summarized = 0usize;
    for (i, (first, path)) in list.into_iter().enumerate() {
        let is_last = i + 1 == n;
        // A sealed segment whose summary matches it is taken from the summary, unless a
        // sink's cursor is inside it ([`summary`]).
        let size = std::fs::metadata(&path).map_err(io_err(&path))?.len();
        let sum = (!is_last && first > prev_seq)
            .then(|| summary::read(&path, first, size))
            .flatten()
            .filter(|sum| {
                !sum.sinks.keys().any(|s| {
                    cursors
                        .get(s)
                        .is_some_and(|c| *c >= first && *c < sum.last_seq)
                })
            });
        if let Some(sum) = sum {
            let mut info = SegInfo {
                path: path.clone(),
                last_seq: Some(sum.last_seq),
                size: sum.size,
                sinks: Default::default(),
                readers: Default::default(),
            };
            for (s, count) in sum.sinks {
                named.insert(s.clone());
                if count == 0 || cursors.get(&s).is_some_and(|c| *c >= sum.last_seq) {
                    continue;
                }
                queue(&mut pending, &mut abandoned, sinks, &s, count);
                info.sinks.insert(s);
            }
            prev_seq = sum.last_seq;
            bytes += sum.size;
            segments.insert(first, info);
            summarized += 1;
            continue;
        }
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut info = SegInfo {
            path: path.clone(),
            last_seq: None,
            size: 0,
            sinks: Default::default(),
            readers: Default::default(),
        };
        let mut offset = 0u64;
        let mut zero_tail = false;
        let broken = loop {
            match frame::read(&mut r).map_err(io_err(&path))? {
                Frame::End => break None,
                // Space written ahead ([`super::spare`]) and never used: the data ends here. A
                // torn group can leave other bytes behind a zero header; they are a tail.
                Frame::Zeros => match zeros_to_end(&mut r).map_err(io_err(&path))? {
                    true => {
                        zero_tail = true;
                        break None;
                    }
                    false => break Some("bytes after zeros"),
                },
                Frame::Broken(reason) => break Some(reason),
                Frame::Whole(payload, len) if frame::is_keys(&payload) => {
                    match frame::decode_keys(&payload) {
                        Ok(k) => keys.extend(k),
                        Err(reason) => break Some(reason),
                    }
                    offset += len;
                }
                Frame::Whole(payload, len) => {
                    let rec = match frame::decode_record(payload) {
                        Ok(rec) => rec,
                        Err(reason) => break Some(reason),
                    };
                    if rec.seq <= prev_seq || rec.seq < first {
                        break Some("sequence numbers out of order");
                    }
                    if rec.seq == u64::MAX {
                        // whole and checksummed, yet no record could follow it
                        break Some("sequence number out of range");
                    }
                    prev_seq = rec.seq;
                    offset += len;
                    info.last_seq = Some(rec.seq);
                    // A record names each sink once; a list that repeats one still holds one
                    // event for it (a reader delivers it once), or its pending count never drains.
                    let distinct: std::collections::BTreeSet<&String> = rec.sinks.iter().collect();
                    for s in distinct {
                        if !named.contains(s) {
                            named.insert(s.clone());
                        }
                        let cursor = cursors.get(s).copied().unwrap_or(0);
                        if rec.seq <= cursor {
                            continue;
                        }
                        queue(&mut pending, &mut abandoned, sinks, s, 1);
                        info.sinks.insert(s.clone());
                    }
                }
            }
        };
        if let Some(reason) = broken {
            if !is_last {
                return Err(SpoolError::Corrupt {
                    path,
                    offset,
                    reason,
                });
            }
            let cut =
                quarantine_tail(&path, offset, &dir.join("quarantine")).map_err(io_err(&path))?;
            tel.counter(names::SPOOL_RECOVERED_TAILS, &[]).increment(1);
            tracing::warn!(
                file = %path.display(),
                offset,
                bytes = cut,
                reason,
                "cut a torn tail off the spool (a write interrupted by a crash, never acknowledged); the bytes are kept in quarantine/"
            );
        }
        if zero_tail && !is_last {
            // Written ahead longer than it grew (the segment size shrank across a restart)
            // and the cut at its seal not yet on disk: cut now, so its summary can match.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(offset).map_err(io_err(&path))?;
        }
        info.size = offset;
        bytes += offset;
        segments.insert(first, info);
    }
    if n > 0 {
        tracing::info!(
            segments = n,
            summarized,
            "spool segments recovered ({summarized} from their summaries, the rest read whole)"
        );
    }
    let max_cursor = cursors.values().copied().max().unwrap_or(0);
    // The cursor of a sink that is not configured and that no record names any more (its
    // events were delivered or dropped, and their segments deleted) is no longer needed.
    for name in cursors.keys() {
        if !sinks.contains(name) && !named.contains(name) {
            let path = dir.join("cursors").join(name);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete a cursor no longer needed");
            }
        }
    }
    let max_first = segments.keys().next_back().copied().unwrap_or(0);
    let next_seq = prev_seq
        .saturating_add(1)
        .max(max_cursor.saturating_add(1))
        .max(max_first)
        .max(1);
    Ok(Recovered {
        segments,
        next_seq,
        cursors: cursors
            .into_iter()
            .filter(|(k, _)| sinks.contains(k))
            .collect(),
        pending,
        abandoned,
        bytes,
        keys,
    })
}
