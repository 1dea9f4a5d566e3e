//! A sink's view of the log: reads forward from its cursor, skipping records for other sinks,
//! and never past what the writer has synced. Blocking; the delivery engine calls it from
//! `spawn_blocking`. Only one batch is ever held in memory, however far behind the sink is.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::frame::{self, Frame, Record};
use super::Shared;

struct Open {
    first_seq: u64,
    file: BufReader<Synced>,
    offset: u64,
    /// Held while the segment is open: it is never written over meanwhile ([`super::SegInfo`]).
    _held: Arc<()>,
}

/// A segment file read no further than `end`: the active segment's synced end. Past it are
/// zeros written ahead, or a group being written (or cut off after a failure), which the reader
/// must never buffer as if it were data.
struct Synced {
    file: File,
    pos: u64,
    end: u64,
}

impl Read for Synced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.end.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Damage at the reader's place in `open`.
fn damage(open: &Open, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "spool segment {} at byte {}: {reason}",
            open.first_seq, open.offset
        ),
    )
}

pub struct Reader {
    shared: Arc<Shared>,
    sink: String,
    /// Records below this were read (or skipped) already.
    next_seq: u64,
    open: Option<Open>,
    /// A record read but left for the next batch (it did not fit in this one).
    held: Option<Record>,
}

impl Reader {
    pub(super) fn new(shared: Arc<Shared>, sink: &str, next_seq: u64) -> Self {
        Reader {
            shared,
            sink: sink.to_string(),
            next_seq,
            open: None,
            held: None,
        }
    }

    /// Up to `max_events` records (and about `max_bytes` of events, but at least one record)
    /// for this sink that are durable now; empty when there are none yet.
    pub fn read(&mut self, max_events: usize, max_bytes: u64) -> io::Result<Vec<Record>> {
        self.read_within(max_events, max_bytes, true)
    }

    /// Like [`read`](Self::read), to add to a batch already started: never more than
    /// `max_bytes` of events, so it may return nothing while [`holding`](Self::holding) a
    /// record that does not fit.
    pub fn read_more(&mut self, max_events: usize, max_bytes: u64) -> io::Result<Vec<Record>> {
        self.read_within(max_events, max_bytes, false)
    }

    /// Whether a record was read that did not fit the last batch: the next read starts with
    /// it, and the batch it did not fit is full.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    fn read_within(
        &mut self,
        max_events: usize,
        max_bytes: u64,
        at_least_one: bool,
    ) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        if let Some(r) = self.held.take() {
            if !at_least_one && r.event.len() as u64 > max_bytes {
                self.held = Some(r);
                return Ok(out);
            }
            bytes += r.event.len() as u64;
            out.push(r);
        }
        let committed = *self.shared.committed.borrow();
        while out.len() < max_events && bytes < max_bytes {
            if self.open.is_none() && !self.open_next()? {
                break;
            }
            let open = self.open.as_mut().expect("opened above");
            if open.first_seq > committed.segment
                || open.first_seq == committed.segment && open.offset >= committed.offset
            {
                break;
            }
            open.file.get_mut().end = if open.first_seq == committed.segment {
                committed.offset
            } else {
                u64::MAX
            };
            match frame::read(&mut open.file)? {
                Frame::Whole(payload, n) => {
                    open.offset += n;
                    if frame::is_keys(&payload) {
                        continue;
                    }
                    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
                    let (seq, wanted) =
                        frame::record_route(&payload, &self.sink).map_err(invalid)?;
                    if seq < self.next_seq {
                        continue;
                    }
                    self.next_seq = seq + 1;
                    if !wanted {
                        continue;
                    }
                    let rec = frame::decode_record(payload).map_err(invalid)?;
                    let len = rec.event.len() as u64;
                    if !out.is_empty() && bytes + len > max_bytes {
                        self.held = Some(rec);
                        break;
                    }
                    bytes += len;
                    out.push(rec);
                }
                // A sealed segment read to its end: on to the next one. Its data may end at
                // zeros when it was written ahead longer than it grew (`spool.max_size` lowered
                // across a restart).
                Frame::End | Frame::Zeros if open.first_seq < committed.segment => {
                    let after = open.first_seq;
                    self.open = None;
                    if !self.open_after(after)? {
                        break;
                    }
                }
                Frame::End => break,
                // Inside the synced part of the log this is damage on disk after start (the
                // reader never reads the active segment past its synced end, so zeros there are
                // damage too).
                Frame::Zeros => return Err(damage(open, "zeros inside the synced records")),
                Frame::Broken(reason) => return Err(damage(open, reason)),
            }
        }
        Ok(out)
    }

    /// Opens the segment that holds `next_seq` (or the first after it).
    fn open_next(&mut self) -> io::Result<bool> {
        let next = self.next_seq;
        self.open_with(|segs| {
            segs.range(..=next)
                .next_back()
                .or_else(|| segs.range(next..).next())
        })
    }

    /// Opens the first segment after the one starting at `after`.
    fn open_after(&mut self, after: u64) -> io::Result<bool> {
        self.open_with(|segs| segs.range(after + 1..).next())
    }

    fn open_with(
        &mut self,
        pick: impl for<'a> FnOnce(
            &'a std::collections::BTreeMap<u64, super::SegInfo>,
        ) -> Option<(&'a u64, &'a super::SegInfo)>,
    ) -> io::Result<bool> {
        let picked = {
            let segs = self
                .shared
                .segments
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pick(&segs).map(|(k, v)| (*k, v.path.clone(), v.readers.clone()))
        };
        self.open_picked(picked)
    }

    fn open_picked(
        &mut self,
        pick: Option<(u64, std::path::PathBuf, Arc<()>)>,
    ) -> io::Result<bool> {
        let Some((first_seq, path, held)) = pick else {
            return Ok(false);
        };
        let file = Synced {
            file: File::open(&path)?,
            pos: 0,
            end: 0,
        };
        self.open = Some(Open {
            first_seq,
            file: BufReader::with_capacity(256 << 10, file),
            offset: 0,
            _held: held,
        });
        Ok(true)
    }
}
