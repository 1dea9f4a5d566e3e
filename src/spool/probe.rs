//! The readiness probe. A failed write makes the spool not writable (`/readyz` 503), and
//! after a full disk the load balancer sends nothing more, so no later write could say the
//! disk has room again. This thread re-checks a spool that is not writable every
//! [`PROBE_INTERVAL`]: the filesystem's free space (statvfs), then a probe file written,
//! fsync'd and deleted. When both pass the spool is writable again. A spool whose failed
//! write could not be cut off (poisoned) stays not writable until restart.

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{sync_dir, write_atomically, Shared};

/// How often a spool that is not writable is probed again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The free space the spool's filesystem must have before a probe calls it writable again.
pub const PROBE_MIN_FREE: u64 = 1 << 20;

/// The free space of the filesystem holding `dir`, for unprivileged users.
#[cfg(unix)]
fn free_space(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

/// Whether the spool directory takes writes again: enough free space, and a probe file
/// written, synced and deleted.
fn probe(dir: &Path) -> io::Result<()> {
    let free = free_space(dir)?;
    if free < PROBE_MIN_FREE {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("{free} bytes free, fewer than {PROBE_MIN_FREE}"),
        ));
    }
    write_probe(dir)
}

/// A probe file written, synced and deleted in `dir`: proof that it takes writes and syncs.
pub(super) fn write_probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(".write-probe");
    write_atomically(&path, &[0u8; 4096])?;
    std::fs::remove_file(&path)?;
    sync_dir(dir)
}

/// Re-probes a spool that is not writable every [`PROBE_INTERVAL`] until `stop` is dropped.
pub(super) fn start(
    shared: Arc<Shared>,
) -> io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let (stop, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("spool-probe".into())
        .spawn(move || {
            let mut last_error = String::new();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(PROBE_INTERVAL)
            {
                if shared.writable.load(Ordering::SeqCst) || shared.poisoned.load(Ordering::SeqCst)
                {
                    continue;
                }
                // Nothing is kept for the next spare while the spool takes no writes: one kept
                // as the write failed gives its room back before the free space is measured.
                shared.stock.release();
                match probe(&shared.dir) {
                    Ok(()) => {
                        shared.writable.store(true, Ordering::SeqCst);
                        last_error.clear();
                        tracing::info!(dir = %shared.dir.display(), "the spool takes writes again (probe passed); ready");
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_error {
                            tracing::warn!(dir = %shared.dir.display(), error = %msg, "the spool is still not writable; probing again every second");
                            last_error = msg;
                        }
                    }
                }
            }
        })?;
    Ok((stop, handle))
}
