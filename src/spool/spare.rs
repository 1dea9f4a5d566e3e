//! The next segment, written ahead full of zeros.
//!
//! A group commit's `fdatasync` after an append that grows the file must also make the new
//! size durable: on ext4 that is a journal commit per group, with its own thread hand-off and
//! block writes. Writing into blocks that already hold data (zeros, synced) changes no
//! metadata `fdatasync` has to keep: it writes the data and flushes, nothing more. On this
//! project's machine that is 40% less CPU and latency per sync (see the README).
//!
//! So a thread of its own writes the next segment ahead, when the writer asks for it (the
//! active segment is half full): `segments/next.spare.<n>`, as long as a segment grows before
//! it is sealed, full of zeros, synced, then renamed into that name. When the writer starts a
//! segment it renames the spare to the segment's name (and syncs the directory, as for any new
//! segment). Should none be ready (the writer outran it, or the disk is full), the writer
//! starts an empty segment and appends as before. A spool that takes few events never writes
//! one; one that takes many has at most one spare, at most one segment long, on disk beside it.
//!
//! The data in a segment written ahead ends where a frame header of zeros begins
//! ([`super::frame::Frame::Zeros`]); recovery checks that only zeros follow. A spare not used
//! when the spool closes is deleted (and one a crash left, at start).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, TryRecvError};

/// How the names of spares in `segments/` begin.
pub(super) const NAME: &str = "next.spare";

/// Zeros are written this much at a time, each piece synced, so the disk's queue never holds
/// more than this ahead of a group commit's sync.
const CHUNK: usize = 1 << 20;

pub(super) struct Spares {
    /// One message a spare wanted; dropped to stop the thread.
    want: Option<mpsc::Sender<()>>,
    /// One answer a spare asked for: its path, or `None` when its write failed.
    ready: Option<mpsc::Receiver<Option<PathBuf>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spares {
    /// Starts the thread that writes spares of `size` bytes in `dir` when asked.
    pub fn start(dir: PathBuf, size: u64) -> io::Result<Spares> {
        let (want, want_rx) = mpsc::channel::<()>();
        // A rendezvous: the thread holds a written spare until the writer takes it, so there
        // is never more than one.
        let (ready_tx, ready) = mpsc::sync_channel::<Option<PathBuf>>(0);
        let thread = std::thread::Builder::new()
            .name("spool-spare".into())
            .spawn(move || {
                let mut wanted = 0u32;
                for n in 0u64.. {
                    if wanted == 0 {
                        match want_rx.recv() {
                            Ok(()) => wanted = 1,
                            Err(_) => return,
                        }
                    }
                    match write_spare(&dir, n, size, &want_rx, &mut wanted) {
                        Ok(Some(path)) => {
                            // Not taken before the spool closed: it goes, as at start.
                            if let Err(mpsc::SendError(Some(path))) = ready_tx.send(Some(path)) {
                                let _ = std::fs::remove_file(path);
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, dir = %dir.display(), "cannot write the next spool segment ahead; it is appended to instead");
                            // The writer hears of it at its next roll, as it would of a spare.
                            if ready_tx.send(None).is_err() {
                                return;
                            }
                        }
                    }
                    wanted -= 1;
                }
            })?;
        Ok(Spares {
            want: Some(want),
            ready: Some(ready),
            thread: Some(thread),
        })
    }

    /// Asks for a spare (the writer does once a segment, when it is half full).
    pub fn ask(&self) {
        if let Some(w) = &self.want {
            let _ = w.send(());
        }
    }

    /// The spare's path if one is written and synced now (the caller renames it).
    pub fn take(&self) -> Option<PathBuf> {
        self.ready.as_ref()?.try_recv().ok().flatten()
    }

    /// The answer to a spare asked for, once there is one: its path, or `None` if its write
    /// failed (or the thread is gone). Only for a spare asked for: else it waits for ever.
    pub fn wait(&self) -> Option<PathBuf> {
        self.ready.as_ref()?.recv().ok().flatten()
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.want.take();
        self.ready.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `size` zeros to `dir/next.spare.<n>.tmp`, syncs, and renames it to
/// `dir/next.spare.<n>`. `None` when the spool closes meanwhile.
/// Requests that come meanwhile are counted in `wanted`.
fn write_spare(
    dir: &Path,
    n: u64,
    size: u64,
    want: &mpsc::Receiver<()>,
    wanted: &mut u32,
) -> io::Result<Option<PathBuf>> {
    let tmp = dir.join(format!("{NAME}.{n}.tmp"));
    let path = dir.join(format!("{NAME}.{n}"));
    let written = (|| {
        let mut f: File = super::private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let zeros = vec![0u8; CHUNK];
        let mut left = size;
        while left > 0 {
            match want.try_recv() {
                Ok(()) => *wanted += 1,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Ok(false),
            }
            let n = left.min(CHUNK as u64) as usize;
            f.write_all(&zeros[..n])?;
            f.sync_data()?;
            left -= n as u64;
        }
        Ok(true)
    })();
    match written {
        Ok(true) => {
            std::fs::rename(&tmp, &path)?;
            Ok(Some(path))
        }
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn spares_are_whole_zeros_one_when_asked_and_an_unused_one_goes_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let size = 2 * CHUNK as u64 + 5;
        let spares = Spares::start(dir.path().to_path_buf(), size).unwrap();
        spares.ask();
        let first = spares.wait().unwrap();
        let bytes = std::fs::read(&first).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert!(bytes.iter().all(|b| *b == 0));
        // Taken (the writer renames it): the next one has a name of its own.
        let taken = dir.path().join("00000000000000000001.seg");
        std::fs::rename(&first, &taken).unwrap();
        assert!(spares.take().is_none(), "none asked for");
        spares.ask();
        let second = spares.wait().unwrap();
        assert_ne!(second, first);
        assert_eq!(std::fs::metadata(&second).unwrap().len(), size);
        // The third is being written, or written and waiting, when the spool closes: gone.
        spares.ask();
        drop(spares);
        assert_eq!(
            names(dir.path()),
            [
                "00000000000000000001.seg".to_string(),
                second.file_name().unwrap().to_string_lossy().into_owned()
            ]
        );
    }

    /// A spare whose write fails is answered all the same (with nothing), so a writer waiting
    /// for the one it asked for goes on with an empty segment instead of waiting for ever.
    #[test]
    fn a_spare_that_cannot_be_written_is_answered_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("no-such-dir");
        let spares = Spares::start(gone.clone(), 4096).unwrap();
        spares.ask();
        assert_eq!(spares.wait(), None);
        assert!(!gone.exists());
        // The thread goes on: the next one asked for is answered too.
        spares.ask();
        assert_eq!(spares.wait(), None);
        drop(spares);
    }
}
