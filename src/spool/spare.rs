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
//!
//! A spare is written over a delivered segment when there is one ([`Stock`]) rather than into a
//! new file. Its blocks are already on disk and its pages most likely still in memory (the
//! sinks read them moments ago), so the zeros go into pages the kernel has, instead of pages it
//! must find (and, in a VM whose free memory is handed back to the host, that the host must
//! find too: the README's Benchmarks measure when that costs and when it does not); and the
//! delivered segment needs no deletion, which frees its blocks, nor the next spare an
//! allocation of new ones. Databases recycle their log files for the same reasons.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};

/// How the names of spares in `segments/` begin.
pub(super) const NAME: &str = "next.spare";

/// Zeros are written this much at a time, each piece synced, so the disk's queue never holds
/// more than this ahead of a group commit's sync.
const CHUNK: usize = 1 << 20;

/// At most one delivered segment, kept to be written over as the next spare instead of being
/// deleted. It is renamed `<first>.del` (durably) before it is offered, so one a crash leaves
/// is deleted at start like any segment caught while being deleted.
#[derive(Default)]
pub(crate) struct Stock(Mutex<StockState>);

#[derive(Default)]
struct StockState {
    file: Option<PathBuf>,
    /// The spool is closing: nothing more is kept.
    closed: bool,
}

impl Stock {
    /// Keeps `doomed` (a delivered segment, renamed) when the stock is empty; else hands it
    /// back, for the caller to delete.
    pub fn offer(&self, doomed: PathBuf) -> Result<(), PathBuf> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.closed || s.file.is_some() {
            return Err(doomed);
        }
        s.file = Some(doomed);
        Ok(())
    }

    fn take(&self) -> Option<PathBuf> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).file.take()
    }

    /// Deletes what it holds, if anything, as any delivered segment is deleted: its room on
    /// disk is wanted (a write failed), or the spool is closing.
    pub fn release(&self) {
        if let Some(path) = self.take() {
            let _ = super::delete_segment(&path);
        }
    }

    /// Takes nothing more, and deletes what it holds.
    fn close(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.release();
    }
}

pub(super) struct Spares {
    /// One message a spare wanted; dropped to stop the thread.
    want: Option<mpsc::Sender<()>>,
    /// One answer a spare asked for: its path, or `None` when its write failed.
    ready: Option<mpsc::Receiver<Option<PathBuf>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stock: Arc<Stock>,
}

impl Spares {
    /// Starts the thread that writes spares of `size` bytes in `dir` when asked, over the
    /// delivered segment in `stock` when there is one.
    pub fn start(dir: PathBuf, size: u64, stock: Arc<Stock>) -> io::Result<Spares> {
        let (want, want_rx) = mpsc::channel::<()>();
        // A rendezvous: the thread holds a written spare until the writer takes it, so there
        // is never more than one.
        let (ready_tx, ready) = mpsc::sync_channel::<Option<PathBuf>>(0);
        let recycled = stock.clone();
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
                    let over = recycled.take();
                    match write_spare(&dir, n, size, over, &want_rx, &mut wanted) {
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
            stock,
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
        self.stock.close();
    }
}

/// Writes `size` zeros, synced, over the delivered segment `over` when there is one, else to
/// a new file `dir/next.spare.<n>.tmp`, and renames the result `dir/next.spare.<n>`. `None`
/// when the spool closes meanwhile. Requests that come meanwhile are counted in `wanted`.
fn write_spare(
    dir: &Path,
    n: u64,
    size: u64,
    over: Option<PathBuf>,
    want: &mpsc::Receiver<()>,
    wanted: &mut u32,
) -> io::Result<Option<PathBuf>> {
    let path = dir.join(format!("{NAME}.{n}"));
    // The delivered segment if it opens, else a new file.
    let reused = over.and_then(|old| match OpenOptions::new().write(true).open(&old) {
        Ok(f) => Some((f, old)),
        Err(e) => {
            tracing::warn!(file = %old.display(), error = %e, "cannot reuse a delivered spool segment; writing the next one ahead into a new file");
            let _ = std::fs::remove_file(&old);
            None
        }
    });
    let (f, from) = match reused {
        Some(r) => r,
        None => {
            let tmp = dir.join(format!("{NAME}.{n}.tmp"));
            let f = super::private_file()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            (f, tmp)
        }
    };
    match zero(f, size, want, wanted) {
        Ok(true) => match std::fs::rename(&from, &path) {
            Ok(()) => Ok(Some(path)),
            Err(e) => {
                let _ = std::fs::remove_file(&from);
                Err(e)
            }
        },
        Ok(false) => {
            let _ = std::fs::remove_file(&from);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&from);
            Err(e)
        }
    }
}

/// Makes `f` `size` zeros, synced, from its start. `false` when the spool closes meanwhile.
fn zero(mut f: File, size: u64, want: &mpsc::Receiver<()>, wanted: &mut u32) -> io::Result<bool> {
    // A delivered segment is a group longer than a segment, at most: cut to the size (synced
    // with the first piece).
    if f.metadata()?.len() > size {
        f.set_len(size)?;
    }
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
        let spares = Spares::start(dir.path().to_path_buf(), size, Default::default()).unwrap();
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

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    /// A delivered segment kept in the stock is written over: the spare is that file (same
    /// inode), zeros from start to end, exactly a segment long whether the segment was longer
    /// or shorter; the stock keeps one at a time, and what it holds at close goes.
    #[test]
    fn a_spare_is_written_over_a_delivered_segment_when_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let size = CHUNK as u64 + 7;
        let stock: Arc<Stock> = Default::default();
        let spares = Spares::start(dir.path().to_path_buf(), size, stock.clone()).unwrap();
        for (first, len) in [(5u64, size + 100), (9, size / 2)] {
            let old = dir.path().join(format!("{first:020}.del"));
            std::fs::write(&old, vec![0xa5u8; len as usize]).unwrap();
            let ino = inode(&old);
            stock.offer(old.clone()).unwrap();
            spares.ask();
            let spare = spares.wait().unwrap();
            assert!(!old.exists());
            assert_eq!(inode(&spare), ino, "written over, not a new file");
            let bytes = std::fs::read(&spare).unwrap();
            assert_eq!(bytes.len() as u64, size);
            assert!(bytes.iter().all(|b| *b == 0));
            std::fs::remove_file(&spare).unwrap();
        }
        // None kept: a new file.
        spares.ask();
        let fresh = spares.wait().unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().len(), size);
        std::fs::remove_file(&fresh).unwrap();
        // One at a time: the second is handed back for the caller to delete.
        let a = dir.path().join("a.del");
        let b = dir.path().join("b.del");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        stock.offer(a.clone()).unwrap();
        assert_eq!(stock.offer(b.clone()), Err(b.clone()));
        // Closed: what it held is deleted, and nothing more is kept.
        drop(spares);
        assert!(!a.exists());
        assert_eq!(stock.offer(b.clone()), Err(b));
    }

    /// A spare whose write fails is answered all the same (with nothing), so a writer waiting
    /// for the one it asked for goes on with an empty segment instead of waiting for ever.
    #[test]
    fn a_spare_that_cannot_be_written_is_answered_with_none() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("no-such-dir");
        let spares = Spares::start(gone.clone(), 4096, Default::default()).unwrap();
        spares.ask();
        assert_eq!(spares.wait(), None);
        assert!(!gone.exists());
        // The thread goes on: the next one asked for is answered too.
        spares.ask();
        assert_eq!(spares.wait(), None);
        drop(spares);
    }
}
