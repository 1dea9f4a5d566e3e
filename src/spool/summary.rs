//! Summaries of sealed segments, so a start reads a few bytes for each segment instead of every
//! record in it.
//!
//! When the writer starts a new segment, the one it leaves is *sealed*: nothing is appended to
//! it again. A sealer thread then makes the sealed segment's replay keys durable in the key log
//! ([`super::keylog::KeyLog::sync_upto`]) and writes `segments/<first>.sum` beside it: its
//! size, its last sequence number and how many records it holds for each sink. Both happen off
//! the writer thread, so no acknowledgement waits for them.
//!
//! At start ([`super::recover`]) a sealed segment with a summary that matches it (same first
//! sequence number, same size on disk) is taken from the summary, unless a sink's cursor falls
//! inside it (then only reading it tells how many of its records that sink still needs): its
//! records are neither read nor checked then (the reader checks each record's CRC when it
//! delivers it, and stops the sink on damage), and its keys are already in the key log. A
//! summary that is missing, torn (it is renamed into place without a sync: a crash may leave it
//! empty) or that does not match is ignored, and the segment is read whole as before.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Shared;

/// What a sealed segment holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Summary {
    pub first_seq: u64,
    pub last_seq: u64,
    /// The segment's size in bytes.
    pub size: u64,
    /// Records for each sink.
    pub sinks: BTreeMap<String, u64>,
}

/// The summary's path beside `segment`.
pub(super) fn path_of(segment: &Path) -> PathBuf {
    segment.with_extension("sum")
}

/// Writes the summary of `segment` (no sync: a lost or torn one is only a slower start).
pub(super) fn write(segment: &Path, s: &Summary) -> io::Result<()> {
    use std::io::Write;
    let path = path_of(segment);
    let tmp = path.with_extension("sum.tmp");
    let mut f = super::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(s).map_err(io::Error::other)?)?;
    drop(f);
    std::fs::rename(&tmp, &path)
}

/// The summary of `segment`, first sequence number `first` and `size` bytes on disk, when
/// there is one and it matches.
pub(super) fn read(segment: &Path, first: u64, size: u64) -> Option<Summary> {
    // A summary is small: a few bytes a sink. Anything much larger is not one.
    let bytes = std::fs::read(path_of(segment)).ok()?;
    if bytes.len() > 1 << 20 {
        return None;
    }
    let s: Summary = serde_json::from_slice(&bytes).ok()?;
    (s.first_seq == first && s.size == size && s.last_seq >= first).then_some(s)
}

/// Deletes the summary of `segment`, if any.
pub(super) fn remove(segment: &Path) {
    let _ = std::fs::remove_file(path_of(segment));
}

/// A sealed segment for the sealer.
pub(super) struct Sealed {
    pub path: PathBuf,
    pub summary: Summary,
}

/// Starts the sealer thread: it ends when the sender is dropped, having sealed what was sent.
pub(super) fn start_sealer(
    shared: Arc<Shared>,
) -> io::Result<(mpsc::Sender<Sealed>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Sealed>();
    let handle = std::thread::Builder::new()
        .name("spool-sealer".into())
        .spawn(move || {
            for sealed in rx {
                seal(&shared, &sealed);
            }
        })?;
    Ok((tx, handle))
}

fn seal(shared: &Shared, sealed: &Sealed) {
    // The keys first: a summary promises they are in the key log.
    if let Err(e) = shared.keylog.sync_upto(sealed.summary.last_seq) {
        tracing::debug!(error = %e, segment = %sealed.path.display(), "no summary for a sealed spool segment (its keys are not synced); the next start reads it whole");
        return;
    }
    if let Err(e) = write(&sealed.path, &sealed.summary) {
        tracing::warn!(error = %e, segment = %sealed.path.display(), "cannot write the summary of a sealed spool segment; the next start reads it whole");
    }
}
