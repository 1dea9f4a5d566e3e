//! The spool: the durable queue between verification and the sinks.
//!
//! An event is answered `200` only once it is in the spool and fsync'd. The spool is an
//! append-only log of CRC-framed records ([`frame`]) in numbered segment files, written by one
//! writer thread that takes every append waiting and syncs once for all of them (group commit).
//! Each record names the sinks it is for. Each sink reads the log at its own pace with its own
//! [`Reader`] and persists its own cursor (the last sequence number it is done with), so a slow
//! or dead sink holds back nobody else; it only keeps segments on disk. A segment is deleted
//! once every sink it holds records for has passed it.
//!
//! Events a sink refuses for good, or that stay undelivered past `retry.max_age`, become dead
//! letters ([`dlq`]): one file per sink, listed, replayed or dropped through the admin API.
//!
//! Events queued for a sink that is no longer configured (removed or renamed) are *orphans*:
//! their segments and the sink's cursor are kept, so adding the sink back delivers them, until
//! an operator drops them ([`Spool::drop_orphan`]: `POST /v1/spool/drop?sink=ID`, or
//! `siemgate spool drop --sink ID`). A reload adds and removes sinks while the spool runs
//! ([`Spool::add_sink`], [`Spool::remove_sink`]): a removed sink's queued events, and any a
//! request already under way appends for it afterwards, become orphans; a sink added back
//! takes them up from its cursor.
//!
//! A failed write makes the spool not writable (`/readyz` 503). A probe thread re-checks the
//! directory every [`PROBE_INTERVAL`] while it is so (free space, then a write, fsync and delete
//! of a probe file), so readiness comes back once space is freed, with no traffic needed.
//!
//! Everything under `spool.dir` is private to siemgate's user: directories 0700, files 0600.
//!
//! Layout under `spool.dir`:
//! ```text
//! segments/00000000000000000001.seg   records, named by the first sequence number they hold
//! segments/00000000000000000001.sum   a sealed segment's summary, read at start ([`summary`])
//! cursors/<sink>                      the last sequence number <sink> is done with
//! dlq/<sink>.dlq                      dead letters of <sink>
//! replay/<hour>.keys                  the local replay store's keys, by hour of expiry
//! quarantine/                         torn tails cut off at start, kept for inspection
//! ```
//!
//! Why a log of our own rather than an embedded database: the workload is append at the tail,
//! read forward, delete whole files at the head. A log does that with one `fdatasync` per
//! group and no write amplification, its crash behaviour is easy to state (everything before
//! the last intact frame is whole; a torn tail was never acknowledged) and a full disk leaves it
//! usable: a failed group is cut off and the next write can succeed once space is freed.

mod arrivals;
pub mod dlq;
pub mod frame;
mod keylog;
pub mod keys;
mod probe;
mod reader;
mod recover;
mod spare;
mod summary;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub use arrivals::{Arrivals, Arrived};
pub use frame::{DeadLetter, Record};
pub use keylog::{KeySink, NoKeys};
pub use reader::Reader;

use crate::telemetry::{names, Telemetry};

/// `[spool]`: where the spool lives, how large it may grow, how long a shutdown flushes.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_size: u64,
    /// At shutdown: how long the sinks may take to deliver what is spooled; the rest stays
    /// in the spool for the next start.
    pub flush_timeout: Duration,
}

/// How long a sender is asked to wait when the spool is full or failing.
pub const RETRY_AFTER: Duration = Duration::from_secs(10);

pub use probe::{PROBE_INTERVAL, PROBE_MIN_FREE};

/// Options that create a file only its owner can read and write (0600).
pub(crate) fn private_file() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `path` and any missing parents as directories only their owner can enter (0700).
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Sets an existing directory of siemgate's own to 0700 (one an older version made 0755).
fn make_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {path} is not usable: {error}")]
    Dir { path: PathBuf, error: io::Error },
    #[error("spool file {path} is damaged at byte {offset} ({reason}); it holds acknowledged events, so siemgate will not start over it. Move the file out of the spool directory to start without it, and keep it for recovery")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error("spool I/O on {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// Why an append was refused. Nothing was written; the sender may retry.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the spool is full ({max_size} bytes)")]
    Full { max_size: u64 },
    #[error("the spool could not be written: {0}")]
    Io(String),
    #[error("the spool is closed")]
    Closed,
}

/// An event to spool: for which sinks, when it was received, and the event as JSON.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub sinks: Vec<String>,
    pub received_ms: i64,
    pub head: crate::event::Head,
    pub event: Vec<u8>,
}

/// Where the durable part of the log ends: readers never read past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Committed {
    /// The segment being written (its first sequence number) and its synced length.
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SegInfo {
    pub path: PathBuf,
    pub last_seq: Option<u64>,
    pub size: u64,
    /// The sinks this segment holds records for.
    pub sinks: BTreeSet<String>,
    /// Cloned by each reader that opens the segment, dropped when it moves on. A delivered
    /// segment that a reader still holds is deleted (the open file keeps its bytes for the
    /// reader), never written over as the next spare.
    pub readers: Arc<()>,
}

/// Per-sink state: cursor, counts, gauges.
pub(crate) struct SinkState {
    pub cursor: AtomicU64,
    pub pending: AtomicU64,
    pending_gauge: metrics::Gauge,
    /// What has been committed for it, and its worker's wake-up ([`arrivals`]).
    arrivals: Arc<Arrivals>,
}

impl SinkState {
    fn new(tel: &Telemetry, sink: &str, cursor: u64, pending: u64) -> Arc<SinkState> {
        let pending_gauge = tel.gauge(names::SPOOL_EVENTS, &[("sink", sink)]);
        pending_gauge.set(pending as f64);
        Arc::new(SinkState {
            cursor: AtomicU64::new(cursor),
            pending: AtomicU64::new(pending),
            pending_gauge,
            arrivals: Default::default(),
        })
    }
}

/// The sinks the spool delivers to, and the orphans: events pending per sink that is no
/// longer configured, kept until it is added back or they are dropped. One lock for both, so
/// an event committed while a sink is added or removed is counted on exactly one side.
#[derive(Default)]
pub(crate) struct Sinks {
    live: HashMap<String, Arc<SinkState>>,
    orphans: BTreeMap<String, u64>,
}

/// Sets the gauges of an orphaned sink's event count.
fn orphan_gauges(tel: &Telemetry, sink: &str, events: u64) {
    tel.gauge(names::SPOOL_ABANDONED, &[("sink", sink)])
        .set(events as f64);
    tel.gauge(names::SPOOL_EVENTS, &[("sink", sink)])
        .set(events as f64);
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub max_size: u64,
    pub segment_target: u64,
    pub bytes: AtomicU64,
    pub segments: Mutex<BTreeMap<u64, SegInfo>>,
    /// Lock order: `segments` before `sinks` (nothing takes them the other way round).
    sinks: Mutex<Sinks>,
    pub committed: watch::Sender<Committed>,
    /// Total events pending over all sinks; `wait_idle` watches it reach 0.
    pub idle: watch::Sender<u64>,
    pub writable: AtomicBool,
    /// Set by the writer when a failed group could not be cut off: only a restart helps, so
    /// the probe never calls the spool writable again.
    pub poisoned: AtomicBool,
    /// Test hook: the writer's next group fails as a full disk would.
    pub fail_next_write: AtomicBool,
    /// Test hook: at each roll the writer waits for the segment written ahead it asked for,
    /// instead of starting an empty one when it is not ready yet.
    pub wait_for_spare: AtomicBool,
    pub dlq: dlq::DeadLetters,
    pub keylog: keylog::KeyLog,
    /// A delivered segment kept for the next spare to be written over ([`spare`]).
    pub stock: Arc<spare::Stock>,
    pub tel: Arc<Telemetry>,
    bytes_gauge: metrics::Gauge,
}

impl Shared {
    pub fn add_bytes(&self, n: u64) {
        let b = self.bytes.fetch_add(n, Ordering::SeqCst) + n;
        self.bytes_gauge.set(b as f64);
    }

    pub fn sub_bytes(&self, n: u64) {
        let prev = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(n))
            })
            .unwrap_or(0);
        self.bytes_gauge.set(prev.saturating_sub(n) as f64);
    }

    /// Counts newly committed events for their sinks. Events for a sink that is not
    /// configured (removed by a reload while the request was under way) are orphans. Returns
    /// the live sinks' arrivals, for the writer to add once the events are readable.
    pub fn add_pending(&self, counts: &HashMap<String, Arrived>) -> Vec<(Arc<Arrivals>, Arrived)> {
        let mut total = 0;
        let mut arrived = Vec::with_capacity(counts.len());
        let mut sinks = self.sinks();
        for (sink, a) in counts {
            let n = &a.events;
            if let Some(s) = sinks.live.get(sink) {
                let p = s.pending.fetch_add(*n, Ordering::SeqCst) + n;
                s.pending_gauge.set(p as f64);
                total += n;
                arrived.push((s.arrivals.clone(), *a));
            } else {
                let o = sinks.orphans.entry(sink.clone()).or_default();
                *o += n;
                orphan_gauges(&self.tel, sink, *o);
            }
        }
        drop(sinks);
        if total > 0 {
            self.idle.send_modify(|t| *t += total);
        }
        arrived
    }

    fn sub_pending(&self, sink: &SinkState, n: u64) {
        let prev = sink
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(n))
            })
            .unwrap_or(0);
        let now = prev.saturating_sub(n);
        sink.pending_gauge.set(now as f64);
        let took = prev - now;
        self.idle.send_modify(|t| *t = t.saturating_sub(took));
    }

    fn segments_dir(&self) -> PathBuf {
        self.dir.join("segments")
    }

    fn cursors_dir(&self) -> PathBuf {
        self.dir.join("cursors")
    }

    fn sinks(&self) -> std::sync::MutexGuard<'_, Sinks> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, sink: &str) -> Option<Arc<SinkState>> {
        self.sinks().live.get(sink).cloned()
    }

    /// Deletes sealed segments that every sink they hold records for has passed. A sink that
    /// is no longer configured has passed nothing until its events are dropped. Returns the
    /// bytes freed.
    fn collect_garbage(&self) -> u64 {
        let done: Vec<(u64, u64)> = {
            let segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            let Some(active) = segs.keys().next_back().copied() else {
                return 0;
            };
            let sinks = self.sinks();
            segs.iter()
                .filter(|(first, _)| **first != active)
                .filter(|(_, info)| {
                    let last = info.last_seq.unwrap_or(0);
                    info.sinks.iter().all(|s| match sinks.live.get(s) {
                        Some(st) => st.cursor.load(Ordering::SeqCst) >= last,
                        None => !sinks.orphans.contains_key(s),
                    })
                })
                .map(|(first, info)| (*first, info.last_seq.unwrap_or(0)))
                .collect()
        };
        if done.is_empty() {
            return 0;
        }
        // The replay keys these segments hold must be in the key log before they go. Synced
        // with the segments unlocked: the writer takes that lock after every group. (A segment
        // once passed by every sink stays so: cursors only move on.)
        let upto = done.iter().map(|(_, last)| *last).max().unwrap_or(0);
        if let Err(e) = self.keylog.sync_upto(upto) {
            tracing::warn!(error = %e, "cannot sync the replay key log; delivered spool segments are kept");
            return 0;
        }
        let mut freed = 0;
        let segments = || self.segments.lock().unwrap_or_else(|e| e.into_inner());
        for (first, _) in done {
            // Whoever takes the segment out of the map retires it and counts its bytes (two
            // collections can run side by side: acknowledgements of different sinks).
            let Some(info) = segments().remove(&first) else {
                continue;
            };
            match self.retire_segment(&info) {
                Ok(()) => {}
                // Gone already: an earlier retirement renamed it and then failed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %info.path.display(), error = %e, "cannot delete a delivered spool segment");
                    segments().insert(first, info);
                    break;
                }
            }
            summary::remove(&info.path);
            self.sub_bytes(info.size);
            freed += info.size;
        }
        freed
    }

    /// Takes a delivered segment, already out of the map, out of the log: renamed
    /// `<first>.del` (durably), so a crash from here on leaves a file a start deletes, never a
    /// segment that seems damaged; then, when no reader holds it and the spool takes writes,
    /// kept for the next spare to be written over ([`spare::Stock`]), else (or when one is
    /// kept already) deleted.
    fn retire_segment(&self, info: &SegInfo) -> io::Result<()> {
        let doomed = info.path.with_extension("del");
        std::fs::rename(&info.path, &doomed)?;
        sync_dir(&self.segments_dir())?;
        // Out of the map, it gets no new reader: held by none now, it never will be. And
        // nothing is kept while the spool takes no writes (a full disk, say): its room goes back.
        let reusable = Arc::strong_count(&info.readers) == 1;
        let kept = match reusable && self.writable.load(Ordering::SeqCst) {
            true => self.stock.offer(doomed),
            false => Err(doomed),
        };
        match kept {
            Ok(()) => Ok(()),
            Err(doomed) => delete_segment(&doomed),
        }
    }

    /// Drops the events of `sink`, which is not configured: moves its cursor past the end of
    /// the log (durably, so a restart does not count them again) and deletes the segments
    /// nobody else needs. Blocking.
    fn drop_orphan(&self, sink: &str) -> Result<Dropped, DropError> {
        // Lock order: segments, then sinks. Both are held across the cursor write, so no event
        // for the sink is committed (nor the sink added back) between reading the end of the
        // log and moving the cursor there.
        let segs = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        let mut sinks = self.sinks();
        if sinks.live.contains_key(sink) {
            return Err(DropError::Configured(sink.to_string()));
        }
        let Some(events) = sinks.orphans.get(sink).copied() else {
            return Err(DropError::NotOrphan(sink.to_string()));
        };
        let last = segs.values().filter_map(|i| i.last_seq).max().unwrap_or(0);
        write_atomically(
            &self.cursors_dir().join(sink),
            format!("{last}\n").as_bytes(),
        )
        .map_err(|e| DropError::Io(e.to_string()))?;
        sinks.orphans.remove(sink);
        drop(sinks);
        drop(segs);
        orphan_gauges(&self.tel, sink, 0);
        let bytes = self.collect_garbage();
        Ok(Dropped { events, bytes })
    }
}

/// What dropping an orphaned sink's events did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Events that were queued for the sink.
    pub events: u64,
    /// Segment bytes deleted (segments that still hold events of other sinks stay).
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("sink {0} is configured: its events are being delivered; remove it from the config (and reload) before dropping them")]
    Configured(String),
    #[error("the spool holds no events for sink {0}")]
    NotOrphan(String),
    #[error("spool I/O: {0}")]
    Io(String),
}

/// The durable queue. Cheap to share behind an `Arc`.
pub struct Spool {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::Sender<writer::Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The readiness probe: dropping the sender stops it.
    probe: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

/// How much of a delivered segment [`delete_segment`] frees at a time.
const DELETE_CUT: u64 = 4 << 20;

/// Deletes a delivered segment (renamed `.del`) a few MiB at a time. Unlinking a 64 MiB file
/// frees all its blocks in one journal commit, which a group commit syncing then waits for
/// (measured: a 28 ms unlink, and the group commits beside it at 6 ms instead of 0.3); cut by
/// cut, each synced, a group commit waits for one small cut at most.
fn delete_segment(doomed: &Path) -> io::Result<()> {
    {
        let f = OpenOptions::new().write(true).open(doomed)?;
        let mut len = f.metadata()?.len();
        while len > DELETE_CUT {
            len -= DELETE_CUT;
            f.set_len(len)?;
            f.sync_data()?;
        }
    }
    std::fs::remove_file(doomed)
}

/// Writes `bytes` to `path` so that a crash leaves either the old content or the new.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir` for the configured `sinks`, recovering what a
    /// crash left, and hands the replay keys it finds (in the key log and the segments) to
    /// `keys` as it reads them. Fails with a message that names the file when the spool cannot
    /// be trusted.
    pub fn open(
        cfg: &SpoolConfig,
        sinks: &[String],
        tel: &Arc<Telemetry>,
        keys: &mut dyn KeySink,
    ) -> Result<Arc<Spool>, SpoolError> {
        let started = std::time::Instant::now();
        let dir = cfg.dir.clone();
        for sub in ["", "segments", "cursors", "dlq", "quarantine", "replay"] {
            let p = dir.join(sub);
            // The top directory may be a volume the operator made; the rest is ours.
            create_private_dir(&p)
                .and_then(|_| {
                    if sub.is_empty() {
                        Ok(())
                    } else {
                        make_private(&p)
                    }
                })
                .map_err(|error| SpoolError::Dir {
                    path: p.clone(),
                    error,
                })?;
        }
        // Prove the directory takes writes and syncs before promising durability.
        probe::write_probe(&dir).map_err(|error| SpoolError::Dir {
            path: dir.clone(),
            error,
        })?;

        let recovered = recover::recover(&dir, sinks, tel)?;
        let segment_target = (cfg.max_size / 16).clamp(64 << 10, 64 << 20);
        let mut live = HashMap::new();
        let mut total_pending = 0;
        for s in sinks {
            let pending = recovered.pending.get(s).copied().unwrap_or(0);
            total_pending += pending;
            let cursor = recovered.cursors.get(s).copied().unwrap_or(0);
            live.insert(s.clone(), SinkState::new(tel, s, cursor, pending));
        }
        for (sink, n) in &recovered.abandoned {
            orphan_gauges(tel, sink, *n);
            tracing::warn!(
                sink = %sink,
                events = n,
                "the spool holds {n} event(s) for sink {sink}, which is no longer configured; they are kept, not delivered. Add the sink back to deliver them, or drop them with `siemgate spool drop --sink {sink}` (the admin call POST /v1/spool/drop?sink={sink} with the admin bearer token)"
            );
        }
        let dlq = dlq::DeadLetters::open(&dir.join("dlq"), sinks, tel).map_err(|error| {
            SpoolError::Io {
                path: dir.join("dlq"),
                error,
            }
        })?;
        // The keys of the segments read whole are in the key log unless a crash came between
        // their commit and the log's write: those found missing as it is read are written
        // again, and only those, so no start adds to the log what it already holds.
        let mut unlogged = keylog::Unlogged::new(recovered.keys, keys);
        let keylog = keylog::KeyLog::open(&dir.join("replay"), &mut unlogged).map_err(|error| {
            SpoolError::Io {
                path: dir.join("replay"),
                error,
            }
        })?;
        let missing = unlogged.missing();
        keylog
            .restore(&missing, recovered.next_seq.saturating_sub(1))
            .map_err(|error| SpoolError::Io {
                path: dir.join("replay"),
                error,
            })?;
        keys.take(&missing);
        drop(missing);
        let bytes = recovered.bytes + dlq.bytes();
        let bytes_gauge = tel.gauge(names::SPOOL_BYTES, &[]);
        bytes_gauge.set(bytes as f64);
        tel.gauge(names::SPOOL_MAX_BYTES, &[])
            .set(cfg.max_size as f64);
        // The writer publishes where the log ends before it takes its first append.
        let (committed, _) = watch::channel(Committed::default());
        let (idle, _) = watch::channel(total_pending);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            max_size: cfg.max_size,
            segment_target,
            bytes: AtomicU64::new(bytes),
            segments: Mutex::new(recovered.segments),
            sinks: Mutex::new(Sinks {
                live,
                orphans: recovered.abandoned.into_iter().collect(),
            }),
            committed,
            idle,
            writable: AtomicBool::new(true),
            poisoned: AtomicBool::new(false),
            fail_next_write: AtomicBool::new(false),
            wait_for_spare: AtomicBool::new(false),
            dlq,
            keylog,
            stock: Default::default(),
            tel: tel.clone(),
            bytes_gauge,
        });
        let (tx, handle) =
            writer::start(shared.clone(), recovered.next_seq).map_err(|error| SpoolError::Io {
                path: dir.join("segments"),
                error,
            })?;
        let probe = probe::start(shared.clone()).map_err(|error| SpoolError::Io {
            path: dir.clone(),
            error,
        })?;
        tracing::info!(
            dir = %dir.display(),
            pending = total_pending,
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "spool open"
        );
        Ok(Arc::new(Spool {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            probe: Mutex::new(Some(probe)),
        }))
    }

    /// Writes `events` durably. Returns once they are synced to disk.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), AppendError> {
        self.append_with_keys(events, Vec::new()).await
    }

    /// Writes `events` and the replay `keys` of the request they came from in one group:
    /// once this returns `Ok`, both are durable, and the keys survive the segment (see
    /// [`keylog`]). Keys are written only with events: a request that spools nothing
    /// remembers nothing here.
    pub async fn append_with_keys(
        &self,
        events: Vec<NewEvent>,
        keys: Vec<frame::KeyEntry>,
    ) -> Result<(), AppendError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(AppendError::Closed)?;
        let (done, wait) = oneshot::channel();
        tx.send(writer::Job { events, keys, done })
            .await
            .map_err(|_| AppendError::Closed)?;
        wait.await.map_err(|_| AppendError::Closed)?
    }

    /// A reader for `sink`, starting after its cursor.
    pub fn reader(&self, sink: &str) -> Reader {
        let cursor = self
            .shared
            .live(sink)
            .map(|s| s.cursor.load(Ordering::SeqCst))
            .unwrap_or(0);
        Reader::new(self.shared.clone(), sink, cursor + 1)
    }

    /// Starts delivering to `sink` (a reload added it): its events orphaned by an earlier
    /// removal are pending again, from its persisted cursor; a sink never seen starts at the
    /// end of the log. Does nothing for a sink already configured. Blocking (reads its cursor).
    pub fn add_sink(&self, sink: &str) -> Result<(), SpoolError> {
        let persisted = recover::read_cursor(&self.shared.cursors_dir().join(sink))?;
        // Read before taking `sinks` (lock order). No event for the sink can be committed in
        // between unless an earlier incarnation of it is orphaned, and then the orphan count
        // says so and the persisted cursor is used instead.
        let end = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|i| i.last_seq)
            .max()
            .unwrap_or(0);
        self.shared.dlq.add(sink);
        let mut sinks = self.shared.sinks();
        if sinks.live.contains_key(sink) {
            return Ok(());
        }
        let (cursor, pending) = match sinks.orphans.remove(sink) {
            Some(n) => (persisted.unwrap_or(0), n),
            None => (persisted.unwrap_or(0).max(end), 0),
        };
        let tel = &self.shared.tel;
        tel.gauge(names::SPOOL_ABANDONED, &[("sink", sink)])
            .set(0.0);
        sinks
            .live
            .insert(sink.to_string(), SinkState::new(tel, sink, cursor, pending));
        drop(sinks);
        if pending > 0 {
            self.shared.idle.send_modify(|t| *t += pending);
            tracing::info!(
                sink,
                events = pending,
                "sink added back: its orphaned events are delivered from where it stopped"
            );
        }
        Ok(())
    }

    /// Stops counting `sink` as configured (a reload removed it; its worker has stopped): its
    /// pending events become orphans, kept until it is added back or they are dropped.
    /// Returns how many events it had pending.
    pub fn remove_sink(&self, sink: &str) -> u64 {
        let mut sinks = self.shared.sinks();
        let Some(state) = sinks.live.remove(sink) else {
            return 0;
        };
        let pending = state.pending.load(Ordering::SeqCst);
        if pending > 0 {
            let o = sinks.orphans.entry(sink.to_string()).or_default();
            *o += pending;
            orphan_gauges(&self.shared.tel, sink, *o);
        }
        drop(sinks);
        self.shared
            .idle
            .send_modify(|t| *t = t.saturating_sub(pending));
        if pending > 0 {
            tracing::warn!(
                sink,
                events = pending,
                "sink removed with {pending} event(s) queued; they are kept, not delivered. Add the sink back to deliver them, or drop them with `siemgate spool drop --sink {sink}` (POST /v1/spool/drop?sink={sink})"
            );
        }
        pending
    }

    /// What has been committed for `sink` since it was added, and a wait for more: its worker
    /// reads when a read can fill a batch rather than after every commit. A sink the spool does
    /// not know gets counts nothing adds to (workers start after [`Spool::add_sink`]).
    pub fn arrivals(&self, sink: &str) -> Arc<Arrivals> {
        self.shared
            .live(sink)
            .map(|s| s.arrivals.clone())
            .unwrap_or_default()
    }

    /// Records that `sink` is done with every record up to `upto` (`done` of them were its
    /// own), persists its cursor and deletes segments nobody needs any more. Blocking.
    pub fn ack(&self, sink: &str, upto: u64, done: u64) -> io::Result<()> {
        // A sink removed meanwhile: its events are orphans now, and whoever adds it back
        // delivers them from its persisted cursor (again, for those just delivered).
        let Some(state) = self.shared.live(sink) else {
            return Ok(());
        };
        let path = self.shared.cursors_dir().join(sink);
        write_atomically(&path, format!("{upto}\n").as_bytes())?;
        state.cursor.fetch_max(upto, Ordering::SeqCst);
        // Free the disk before saying "idle", so whoever waits for idle sees the space.
        self.shared.collect_garbage();
        self.shared.sub_pending(&state, done);
        Ok(())
    }

    /// Forgets the key log's files whose keys have all expired at `now_s`.
    pub fn expire_keys(&self, now_s: u64) -> usize {
        self.shared.keylog.expire(now_s)
    }

    /// Bytes the replay key log takes on disk.
    pub fn key_bytes(&self) -> u64 {
        self.shared.keylog.bytes()
    }

    /// Sinks that are no longer configured but still have events here, with how many.
    pub fn orphans(&self) -> BTreeMap<String, u64> {
        self.shared.sinks().orphans.clone()
    }

    /// Deletes the queued events of `sink`, which must not be configured; says how many
    /// there were and the bytes freed.
    pub async fn drop_orphan(&self, sink: &str) -> Result<Dropped, DropError> {
        let shared = self.shared.clone();
        let sink = sink.to_string();
        tokio::task::spawn_blocking(move || shared.drop_orphan(&sink))
            .await
            .map_err(|e| DropError::Io(e.to_string()))?
    }

    /// Test hook: makes the writer's next group fail as a full disk would (`/readyz` turns
    /// 503 until the probe finds the spool writable again).
    #[doc(hidden)]
    pub fn fail_next_write(&self) {
        self.shared.fail_next_write.store(true, Ordering::SeqCst);
    }

    /// Moves events `sink` cannot take into its dead letters. Blocking; durable on return.
    pub fn dead_letter(&self, sink: &str, letters: &[DeadLetter]) -> io::Result<()> {
        let n = self.shared.dlq.append(sink, letters)?;
        self.shared.add_bytes(n);
        Ok(())
    }

    /// Dead letters, optionally of one sink and/or one id, at most `limit`. Blocking.
    pub fn dead_letters(
        &self,
        sink: Option<&str>,
        id: Option<u64>,
        limit: usize,
    ) -> io::Result<Vec<(String, DeadLetter)>> {
        self.shared.dlq.list(sink, id, limit)
    }

    /// Dead letters per sink.
    pub fn dead_letter_counts(&self) -> BTreeMap<String, u64> {
        self.shared.dlq.counts()
    }

    /// Runs dead-letter file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> io::Result<T> + Send + 'static,
    ) -> Result<T, DlqError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| DlqError::Io(e.to_string()))?
            .map_err(|e| DlqError::Io(e.to_string()))
    }

    /// Puts dead letters back in the queue of their sink; returns how many. They age from
    /// `now_ms` for `retry.max_age`. The events are spooled anew (durably) before they leave
    /// the dead letters, so a crash in between delivers them twice rather than never.
    pub async fn replay_dead_letters(
        &self,
        sink: Option<&str>,
        id: Option<u64>,
        now_ms: i64,
    ) -> Result<usize, DlqError> {
        let sinks: Vec<String> = match sink {
            Some(s) if self.shared.live(s).is_none() => {
                return Err(DlqError::UnknownSink(s.to_string()))
            }
            Some(s) => vec![s.to_string()],
            None => self.shared.sinks().live.keys().cloned().collect(),
        };
        let mut total = 0;
        for s in sinks {
            let _guard = self.shared.dlq.lock(&s).await;
            let name = s.clone();
            let letters = self
                .blocking(move |sh| sh.dlq.list(Some(&name), id, usize::MAX))
                .await?;
            if letters.is_empty() {
                continue;
            }
            let seqs: BTreeSet<u64> = letters.iter().map(|(_, d)| d.seq).collect();
            let events = letters
                .into_iter()
                .map(|(_, d)| NewEvent {
                    sinks: vec![s.clone()],
                    received_ms: now_ms,
                    head: crate::event::Head::of_json(&d.event),
                    event: d.event,
                })
                .collect();
            self.append(events).await.map_err(DlqError::Append)?;
            let freed = self
                .blocking(move |sh| sh.dlq.remove(&s, |d| seqs.contains(&d.seq)))
                .await?;
            self.shared.sub_bytes(freed.bytes);
            total += freed.count;
        }
        Ok(total)
    }

    /// Deletes dead letters; returns how many.
    pub async fn drop_dead_letters(
        &self,
        sink: Option<&str>,
        id: Option<u64>,
    ) -> Result<usize, DlqError> {
        let sinks: Vec<String> = match sink {
            Some(s) => vec![s.to_string()],
            None => self.shared.dlq.counts().into_keys().collect(),
        };
        let mut total = 0;
        for s in sinks {
            let _guard = self.shared.dlq.lock(&s).await;
            let freed = self
                .blocking(move |sh| sh.dlq.remove(&s, |d| id.is_none_or(|i| i == d.seq)))
                .await?;
            self.shared.sub_bytes(freed.bytes);
            total += freed.count;
        }
        Ok(total)
    }

    /// Events waiting for `sink`.
    pub fn pending(&self, sink: &str) -> u64 {
        self.shared
            .live(sink)
            .map(|s| s.pending.load(Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// Bytes the spool holds on disk (segments and dead letters).
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::SeqCst)
    }

    pub fn max_size(&self) -> u64 {
        self.shared.max_size
    }

    /// False after a failed write until a write or a probe succeeds again, and after close.
    pub fn writable(&self) -> bool {
        self.shared.writable.load(Ordering::SeqCst)
    }

    /// Returns once no sink has events pending.
    pub async fn wait_idle(&self) {
        let mut rx = self.shared.idle.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Stops taking appends; the writer finishes what it has and stops. Blocking.
    pub fn close(&self) {
        // Stop the probe first, so it cannot call a closed spool writable.
        if let Some((stop, h)) = self.probe.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(stop);
            let _ = h.join();
        }
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        self.shared.writable.store(false, Ordering::SeqCst);
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("sink {0} is not configured")]
    UnknownSink(String),
    #[error("{0}")]
    Append(AppendError),
    #[error("dead-letter I/O: {0}")]
    Io(String),
}

#[cfg(test)]
mod tests;
