//! The key log: where the local replay store's keys outlive the segments that first held them.
//!
//! A request's replay keys are written in its segment, after its records, in the same group
//! commit: once the sender is answered `200`, the keys are as durable as the event. Segments are
//! deleted once delivered, long before the keys expire, so the writer also appends every
//! committed group's keys here, without a sync of its own, into one file per hour of expiry
//! (`replay/<hour>.keys`, Unix hours). They wait in memory until [`FLUSH_AT`] bytes have
//! gathered (one write per file then, not one per group commit). Before a segment is deleted,
//! the key log is written and synced past it ([`KeyLog::sync_upto`]); a segment whose keys
//! could not be synced stays. A file is deleted whole once its hour has passed
//! ([`KeyLog::expire`]): expiry reads no key.
//!
//! At start the files are read (a torn tail, from a crash between a write and its sync, is cut
//! off: those keys are still in the segments) and the keys the surviving segments hold are
//! written here again and synced, so the store starts with every key it ever confirmed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::frame::{self, Frame, KeyEntry};

const HOUR: u64 = 3600;

/// Where the replay keys found at start go as they are read ([`super::Spool::open`]): the
/// local replay store's loader, a list in tests, or nowhere.
pub trait KeySink {
    /// About how many keys are coming (the key log's size says): room taken once.
    fn expect(&mut self, _keys: usize) {}
    fn take(&mut self, keys: &[KeyEntry]);
}

impl KeySink for Vec<KeyEntry> {
    fn take(&mut self, keys: &[KeyEntry]) {
        self.extend_from_slice(keys);
    }
}

impl KeySink for super::keys::KeyLoad {
    fn expect(&mut self, keys: usize) {
        super::keys::KeyLoad::expect(self, keys);
    }

    fn take(&mut self, keys: &[KeyEntry]) {
        self.extend(keys);
    }
}

/// Passes the key log's keys on to a sink, and tells which of `keys` (those the segments
/// read whole at start hold) it lacks.
pub(crate) struct Unlogged<'a> {
    sink: &'a mut dyn KeySink,
    /// Not met in the log yet.
    missing: HashSet<KeyEntry>,
    /// The hours of expiry they fall in: a file holds one hour's keys, so a frame of another
    /// hour is passed on without a look.
    hours: BTreeSet<u64>,
}

impl<'a> Unlogged<'a> {
    pub fn new(keys: Vec<KeyEntry>, sink: &'a mut dyn KeySink) -> Unlogged<'a> {
        Unlogged {
            hours: keys.iter().map(|(_, e)| e / HOUR).collect(),
            missing: keys.into_iter().collect(),
            sink,
        }
    }

    /// The keys the log lacked, in no particular order.
    pub fn missing(self) -> Vec<KeyEntry> {
        self.missing.into_iter().collect()
    }
}

impl KeySink for Unlogged<'_> {
    fn expect(&mut self, keys: usize) {
        self.sink.expect(keys);
    }

    fn take(&mut self, keys: &[KeyEntry]) {
        self.sink.take(keys);
        if keys
            .first()
            .is_some_and(|(_, e)| self.hours.contains(&(e / HOUR)))
        {
            for k in keys {
                self.missing.remove(k);
            }
        }
    }
}

/// Keys no one keeps (a replay store that keeps its own): the key log is still read, to
/// find a torn tail.
pub struct NoKeys;

impl KeySink for NoKeys {
    fn take(&mut self, _keys: &[KeyEntry]) {}
}

/// Bytes of encoded keys held in memory before they are written (about 10,000 keys).
const FLUSH_AT: usize = 256 << 10;

pub(crate) struct KeyLog {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Held by one [`KeyLog::sync_upto`] at a time, across its syncs; `inner` is not, so the
    /// writer's appends never wait for a sync.
    syncing: Mutex<()>,
}

#[derive(Default)]
struct Inner {
    files: BTreeMap<u64, std::sync::Arc<File>>,
    /// Files written since their last sync.
    dirty: BTreeSet<u64>,
    /// Encoded keys not written yet, by hour.
    held: BTreeMap<u64, Vec<u8>>,
    /// Keys of every record up to this sequence number are held or written.
    appended: u64,
    /// Keys of every record up to this sequence number have been written.
    written: u64,
    /// ... and synced.
    synced: u64,
    /// A write failed: keys may be missing from the files, so no segment holding keys may go
    /// until a restart writes them again from the segments.
    failed: bool,
}

fn hour_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".keys")?
        .parse()
        .ok()
}

impl KeyLog {
    /// Opens the key log in `dir` and hands every key in it to `sink` as it is read (expired
    /// ones too: expiry is by the gateway's clock, [`KeyLog::expire`]).
    pub fn open(dir: &Path, sink: &mut dyn KeySink) -> io::Result<KeyLog> {
        super::create_private_dir(dir)?;
        let mut files = Vec::new();
        let mut bytes = 0u64;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if hour_of(&entry.path()).is_some() {
                bytes = bytes.saturating_add(entry.metadata()?.len());
                files.push(entry.path());
            }
        }
        // 24 bytes a key on disk, and a little framing.
        sink.expect(usize::try_from(bytes / 24).unwrap_or(usize::MAX));
        let mut keys = Vec::new();
        for path in &files {
            let file = File::open(path)?;
            let mut r = BufReader::with_capacity(1 << 20, file);
            let mut valid = 0u64;
            let torn = loop {
                match frame::read(&mut r)? {
                    Frame::End => break false,
                    Frame::Broken(_) | Frame::Zeros => break true,
                    Frame::Whole(p, n) => match frame::decode_keys_into(&p, &mut keys) {
                        Ok(()) => {
                            sink.take(&keys);
                            valid += n;
                        }
                        Err(_) => break true,
                    },
                }
            };
            if torn {
                // Written but not synced when the process stopped: the segments still hold
                // those keys, and are written here again below.
                let f = std::fs::OpenOptions::new().write(true).open(path)?;
                f.set_len(valid)?;
                f.sync_all()?;
            }
        }
        let log = KeyLog {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner::default()),
            syncing: Mutex::new(()),
        };
        Ok(log)
    }

    /// Writes the keys the segments hold at start (of records up to `upto_seq`) and syncs:
    /// from here on the key log holds every key, and segments may go.
    pub fn restore(&self, keys: &[KeyEntry], upto_seq: u64) -> io::Result<()> {
        self.append(keys, upto_seq);
        self.sync_upto(upto_seq)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `keys` (of records up to `upto_seq`, durable in their segment), unsynced and
    /// perhaps only held in memory for now.
    pub fn append(&self, keys: &[KeyEntry], upto_seq: u64) {
        let mut inner = self.inner();
        if !keys.is_empty() {
            let mut by_hour: BTreeMap<u64, Vec<KeyEntry>> = BTreeMap::new();
            for &(k, expiry) in keys {
                by_hour.entry(expiry / HOUR).or_default().push((k, expiry));
            }
            for (hour, ks) in by_hour {
                frame::encode_keys(inner.held.entry(hour).or_default(), &ks);
            }
        }
        inner.appended = inner.appended.max(upto_seq);
        // A few hours' buffers at most (one per hour of expiry within the retention).
        if inner.held.values().map(Vec::len).sum::<usize>() >= FLUSH_AT {
            self.write_held(&mut inner);
        }
    }

    /// Writes every key held in memory to its file.
    fn write_held(&self, inner: &mut Inner) {
        for (hour, buf) in std::mem::take(&mut inner.held) {
            if let Err(e) = self.write(inner, hour, &buf) {
                if !inner.failed {
                    tracing::error!(error = %e, "cannot write the replay key log; spool segments holding keys are kept until a restart writes them again");
                }
                inner.failed = true;
            }
        }
        inner.written = inner.written.max(inner.appended);
    }

    fn write(&self, inner: &mut Inner, hour: u64, buf: &[u8]) -> io::Result<()> {
        let file = match inner.files.entry(hour) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let path = self.dir.join(format!("{hour}.keys"));
                let f = super::private_file()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                super::sync_dir(&self.dir)?;
                v.insert(std::sync::Arc::new(f))
            }
        };
        (&**file).write_all(buf)?;
        inner.dirty.insert(hour);
        Ok(())
    }

    /// Makes the keys of every record up to `seq` durable here; an error says a segment
    /// holding such keys must stay. The files are synced with no lock the writer takes.
    pub fn sync_upto(&self, seq: u64) -> io::Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|e| e.into_inner());
        let (files, written) = {
            let mut inner = self.inner();
            if inner.synced >= seq {
                return Ok(());
            }
            if inner.written < seq {
                self.write_held(&mut inner);
            }
            if inner.failed {
                return Err(io::Error::other("an earlier key log write failed"));
            }
            let dirty = std::mem::take(&mut inner.dirty);
            let files: Vec<(u64, std::sync::Arc<File>)> = dirty
                .iter()
                .filter_map(|h| inner.files.get(h).map(|f| (*h, f.clone())))
                .collect();
            (files, inner.written)
        };
        for (i, (_, f)) in files.iter().enumerate() {
            if let Err(e) = f.sync_data() {
                // Still to be synced, by the next call.
                self.inner()
                    .dirty
                    .extend(files[i..].iter().map(|(h, _)| *h));
                return Err(e);
            }
        }
        let mut inner = self.inner();
        inner.synced = inner.synced.max(written);
        if inner.synced < seq {
            return Err(io::Error::other(
                "keys of these records were not written yet",
            ));
        }
        Ok(())
    }

    /// Deletes the files of hours that ended at or before `now_s`; returns how many.
    pub fn expire(&self, now_s: u64) -> usize {
        let mut inner = self.inner();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut n = 0;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(hour) = hour_of(&path) else { continue };
            if (hour + 1) * HOUR <= now_s && std::fs::remove_file(&path).is_ok() {
                inner.files.remove(&hour);
                inner.dirty.remove(&hour);
                n += 1;
            }
        }
        // Keys of hours passed that were never written: nothing to write them for.
        inner.held.retain(|hour, _| (hour + 1) * HOUR > now_s);
        n
    }

    /// Bytes the key log takes on disk.
    pub fn bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(from: u64, n: u64, expiry: u64) -> Vec<KeyEntry> {
        (from..from + n).map(|i| (i as u128, expiry)).collect()
    }

    fn read_back(dir: &Path) -> Vec<KeyEntry> {
        let mut k = Vec::new();
        KeyLog::open(dir, &mut k).unwrap();
        k.sort();
        k
    }

    #[test]
    fn keys_wait_in_memory_until_enough_gather_or_a_sync_asks_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = KeyLog::open(dir.path(), &mut NoKeys).unwrap();
        let hour = 500_000 * HOUR;
        log.append(&keys(0, 10, hour + 5), 1);
        log.append(&keys(10, 10, hour + HOUR + 5), 2);
        assert_eq!(log.bytes(), 0, "a few keys are only held");
        assert!(read_back(dir.path()).is_empty());
        log.sync_upto(2).unwrap();
        let mut want = keys(0, 10, hour + 5);
        want.extend(keys(10, 10, hour + HOUR + 5));
        assert_eq!(read_back(dir.path()), want);
        assert!(
            log.sync_upto(3).is_err(),
            "keys of record 3 were never given"
        );

        // Enough keys are written without a sync (24 bytes each, and a frame's head).
        let many = (FLUSH_AT / 24) as u64 + 1;
        log.append(&keys(100, many, hour + 7), 3);
        assert!(log.bytes() as usize >= FLUSH_AT);
        assert_eq!(read_back(dir.path()).len() as u64, 20 + many);
    }

    #[test]
    fn held_keys_of_an_hour_that_has_passed_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = KeyLog::open(dir.path(), &mut NoKeys).unwrap();
        let hour = 500_000 * HOUR;
        log.append(&keys(0, 3, hour + 5), 1);
        log.append(&keys(3, 3, hour + HOUR + 5), 2);
        log.expire(hour + HOUR);
        log.sync_upto(2).unwrap();
        assert_eq!(read_back(dir.path()), keys(3, 3, hour + HOUR + 5));
    }
}
