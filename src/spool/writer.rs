//! The spool's one writer thread: group commit.
//!
//! It takes every append waiting (up to [`GROUP_JOBS`] or [`GROUP_BYTES`]), gives each record
//! the next sequence number, writes them all at the end of the active segment, syncs once, and
//! only then answers every append in the group. A failed write or sync cuts the segment back to
//! where the group began, so a half-written group never sits in front of the next one, and every
//! append in the group gets the error (the sender is answered 503 and retries).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::spare::Spares;
use super::summary::{self, Sealed, Summary};
use super::{frame, AppendError, Arrived, Committed, NewEvent, SegInfo, Shared};
use crate::telemetry::names;

pub(super) struct Job {
    pub events: Vec<NewEvent>,
    /// The request's replay keys, written after its records.
    pub keys: Vec<frame::KeyEntry>,
    pub done: oneshot::Sender<Result<(), AppendError>>,
}

const GROUP_JOBS: usize = 1024;
const GROUP_BYTES: usize = 8 << 20;

struct Writer {
    shared: Arc<Shared>,
    file: File,
    /// First sequence number of the active segment.
    segment: u64,
    /// Bytes of records in the active segment: the next group is written here (before zeros
    /// written ahead, [`super::spare`], when it was).
    size: u64,
    next_seq: u64,
    /// Records for each sink in the active segment, for its summary; `None` for a segment
    /// this run did not start (its earlier records were not counted: it gets no summary).
    counted: Option<std::collections::BTreeMap<String, u64>>,
    /// The sealer thread, which summarizes each segment the writer leaves ([`summary`]).
    sealer: std::sync::mpsc::Sender<Sealed>,
    spares: Spares,
    /// Whether a spare was asked for while this segment is active.
    asked: bool,
    commit_time: metrics::Histogram,
}

pub(super) fn segment_path(shared: &Shared, first_seq: u64) -> PathBuf {
    shared.segments_dir().join(format!("{first_seq:020}.seg"))
}

pub(super) fn start(
    shared: Arc<Shared>,
    next_seq: u64,
) -> io::Result<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (segment, size) = {
        let segs = shared.segments.lock().unwrap_or_else(|e| e.into_inner());
        match segs.iter().next_back() {
            Some((first, info)) => (*first, info.size),
            None => (0, 0),
        }
    };
    let (sealer, sealer_thread) = summary::start_sealer(shared.clone())?;
    let spares = Spares::start(
        shared.segments_dir(),
        shared.segment_target,
        shared.stock.clone(),
    )?;
    let w = if segment == 0 {
        let file = new_segment(&shared, next_seq, None)?;
        Writer {
            shared: shared.clone(),
            file,
            segment: next_seq,
            size: 0,
            next_seq,
            counted: Some(Default::default()),
            sealer,
            spares,
            asked: false,
            commit_time: shared.tel.histogram(names::SPOOL_COMMIT_DURATION, &[]),
        }
    } else {
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(&shared, segment))?;
        Writer {
            shared: shared.clone(),
            file,
            segment,
            size,
            next_seq,
            counted: None,
            sealer,
            spares,
            asked: false,
            commit_time: shared.tel.histogram(names::SPOOL_COMMIT_DURATION, &[]),
        }
    };
    w.publish();
    let (tx, rx) = mpsc::channel::<Job>(4096);
    let handle = std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || {
            w.run(rx);
            // The writer is gone (and with it the sealer's sender): the sealer finishes.
            let _ = sealer_thread.join();
        })?;
    Ok((tx, handle))
}

/// Starts the segment for records from `first_seq` on, from `spare` (written ahead) when
/// there is one, else empty, and makes its name durable (counted in
/// [`names::SPOOL_SEGMENTS_STARTED`]).
fn new_segment(shared: &Shared, first_seq: u64, spare: Option<PathBuf>) -> io::Result<File> {
    let path = segment_path(shared, first_seq);
    let from_spare = spare.and_then(|spare| {
        // Never renamed over a file already there (only the writer makes segments: no race).
        let used = if path.exists() {
            Err(io::Error::from(io::ErrorKind::AlreadyExists))
        } else {
            std::fs::rename(&spare, &path).and_then(|_| {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .inspect_err(|_| drop(std::fs::remove_file(&path)))
            })
        };
        if let Err(e) = &used {
            tracing::warn!(error = %e, "cannot use the spool segment written ahead; appending to an empty one");
            let _ = std::fs::remove_file(&spare);
        }
        used.ok()
    });
    let ahead = from_spare.is_some();
    let file = match from_spare {
        Some(f) => f,
        // Never over a file already there.
        None => super::private_file()
            .create_new(true)
            .write(true)
            .open(&path)?,
    };
    // A segment not started goes: left behind, a later start would look for the records from
    // `first_seq` on in it, while the writer goes on writing them into the current segment.
    if let Err(e) = super::sync_dir(&shared.segments_dir()) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    shared
        .tel
        .counter(
            names::SPOOL_SEGMENTS_STARTED,
            &[("ahead", if ahead { "true" } else { "false" })],
        )
        .increment(1);
    shared
        .segments
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            first_seq,
            SegInfo {
                path,
                last_seq: None,
                size: 0,
                sinks: Default::default(),
                readers: Default::default(),
            },
        );
    Ok(file)
}

impl Writer {
    fn publish(&self) {
        self.shared.committed.send_replace(Committed {
            segment: self.segment,
            offset: self.size,
        });
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(64);
        while let Some(first) = rx.blocking_recv() {
            let mut bytes: usize = first.events.iter().map(|e| e.event.len()).sum();
            jobs.push(first);
            while jobs.len() < GROUP_JOBS && bytes < GROUP_BYTES {
                match rx.try_recv() {
                    Ok(j) => {
                        bytes += j.events.iter().map(|e| e.event.len()).sum::<usize>();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut jobs);
        }
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        // Set when a failed group could not be cut off: nothing more is written.
        if self.shared.poisoned.load(Ordering::SeqCst) {
            for j in jobs.drain(..) {
                let _ = j.done.send(Err(AppendError::Io(
                    "an earlier write failed and could not be undone; restart siemgate".into(),
                )));
            }
            return;
        }
        let mut buf = Vec::with_capacity(64 << 10);
        let mut accepted = Vec::with_capacity(jobs.len());
        let mut counts: HashMap<String, Arrived> = HashMap::new();
        let mut seq = self.next_seq;
        let used = self.shared.bytes.load(Ordering::SeqCst);
        for job in jobs.drain(..) {
            let start = buf.len();
            let mut job_seq = seq;
            for e in &job.events {
                frame::encode_record(
                    &mut buf,
                    job_seq,
                    e.received_ms,
                    &e.sinks,
                    &e.head,
                    &e.event,
                );
                job_seq += 1;
            }
            if !job.keys.is_empty() && !job.events.is_empty() {
                frame::encode_keys(&mut buf, &job.keys);
            }
            if used + buf.len() as u64 > self.shared.max_size {
                buf.truncate(start);
                self.shared.tel.counter(names::SPOOL_FULL, &[]).increment(1);
                let _ = job.done.send(Err(AppendError::Full {
                    max_size: self.shared.max_size,
                }));
                continue;
            }
            for e in &job.events {
                for s in &e.sinks {
                    // The sink's name is cloned once a group, not once an event.
                    let c = match counts.get_mut(s.as_str()) {
                        Some(c) => c,
                        None => counts.entry(s.clone()).or_default(),
                    };
                    c.events += 1;
                    c.bytes += e.event.len() as u64;
                }
            }
            seq = job_seq;
            accepted.push(job);
        }
        if accepted.is_empty() {
            return;
        }
        let result = if self.shared.fail_next_write.swap(false, Ordering::SeqCst) {
            Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected failure (test hook)",
            ))
        } else {
            let started = std::time::Instant::now();
            let r = self
                .file
                .write_all_at(&buf, self.size)
                .and_then(|_| self.file.sync_data());
            self.commit_time.record(started.elapsed().as_secs_f64());
            r
        };
        if let Err(e) = result {
            self.shared
                .tel
                .counter(names::SPOOL_WRITE_FAILURES, &[])
                .increment(1);
            self.shared.writable.store(false, Ordering::SeqCst);
            // A delivered segment kept for the next spare gives its room back: the disk may be
            // full, and the probe wants free space before it calls the spool writable.
            self.shared.stock.release();
            tracing::error!(error = %e, "spool write failed; answering 503 and not ready until the spool takes writes again (probed every second)");
            // Cut off, zeros written ahead and all: the segment is appended to from here.
            if let Err(e2) = self
                .file
                .set_len(self.size)
                .and_then(|_| self.file.sync_data())
            {
                tracing::error!(error = %e2, "the failed spool write could not be cut off; refusing further writes until restart");
                self.shared.poisoned.store(true, Ordering::SeqCst);
            }
            let msg = e.to_string();
            for j in accepted {
                let _ = j.done.send(Err(AppendError::Io(msg.clone())));
            }
            return;
        }
        self.next_seq = seq;
        self.size += buf.len() as u64;
        if let Some(counted) = &mut self.counted {
            for (s, n) in &counts {
                *counted.entry(s.clone()).or_default() += n.events;
            }
        }
        {
            let mut segs = self
                .shared
                .segments
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(info) = segs.get_mut(&self.segment) {
                info.size = self.size;
                info.last_seq = Some(seq - 1);
                info.sinks.extend(counts.keys().cloned());
            }
        }
        self.shared.add_bytes(buf.len() as u64);
        let arrived = self.shared.add_pending(&counts);
        let keys: Vec<frame::KeyEntry> = accepted
            .iter()
            .filter(|j| !j.events.is_empty())
            .flat_map(|j| j.keys.iter().copied())
            .collect();
        self.shared.writable.store(true, Ordering::SeqCst);
        self.publish();
        // After the new end is published: a sink woken now reads what woke it.
        for (sink, n) in arrived {
            sink.add(n);
        }
        for j in accepted {
            let _ = j.done.send(Ok(()));
        }
        // The keys are durable in the segment; the key log keeps them after it (unsynced: it is
        // synced before the segment is deleted, or sealed, below).
        self.shared.keylog.append(&keys, seq - 1);
        if self.size >= self.shared.segment_target {
            self.roll();
        } else if !self.asked && self.size >= self.shared.segment_target / 2 {
            self.spares.ask();
            self.asked = true;
        }
    }

    /// Starts a new segment; the full one is sealed and can be deleted once read.
    fn roll(&mut self) {
        // Written ahead longer than it grew (the segment size is smaller than when it was
        // written): the zeros go. Unsynced: recovery cuts them too.
        if let Err(e) = self
            .file
            .metadata()
            .and_then(|m| match m.len() > self.size {
                true => self.file.set_len(self.size),
                false => Ok(()),
            })
        {
            tracing::warn!(error = %e, "cannot cut the zeros off a sealed spool segment; the next start does");
        }
        let spare = if self.asked && self.shared.wait_for_spare.load(Ordering::SeqCst) {
            self.spares.wait()
        } else {
            self.spares.take()
        };
        match new_segment(&self.shared, self.next_seq, spare) {
            Ok(file) => {
                if let Some(sinks) = self.counted.replace(Default::default()) {
                    let _ = self.sealer.send(Sealed {
                        path: segment_path(&self.shared, self.segment),
                        summary: Summary {
                            first_seq: self.segment,
                            last_seq: self.next_seq - 1,
                            size: self.size,
                            sinks,
                        },
                    });
                }
                self.file = file;
                self.segment = self.next_seq;
                self.size = 0;
                self.asked = false;
                self.publish();
            }
            Err(e) => {
                // Keep appending to the current segment; try again after the next group.
                tracing::warn!(error = %e, "cannot start a new spool segment");
            }
        }
    }
}
