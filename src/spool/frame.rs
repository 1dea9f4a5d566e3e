//! The on-disk framing of every spool file (segments and dead-letter files), and the records
//! inside the frames.
//!
//! A frame is `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`. A reader that
//! meets a short header, a short payload, an absurd length or a checksum mismatch knows exactly
//! where the intact data ends; recovery decides what that means (see [`super::recover`]).

use std::io::{self, Read};

use bytes::Bytes;

use crate::event::Head;

/// Bytes before the payload.
pub const HEADER: u64 = 8;
/// No frame is larger than this; a bigger length field is corruption, not data.
pub const MAX_PAYLOAD: u32 = 256 << 20;
/// Version byte of the records below. Version 2 carries the event's typed head beside its
/// JSON; version 1 records (spooled before) are still read, their head parsed from the JSON.
pub const RECORD_VERSION: u8 = 2;
const RECORD_VERSION_1: u8 = 1;
/// Version byte of dead letters.
const DEAD_LETTER_VERSION: u8 = 1;
/// First byte of a frame of replay keys (the local replay store's), written in a segment after
/// the records of the request they belong to, and in the key log.
pub const KEYS_KIND: u8 = 16;

/// A replay key and the Unix second until which it must be remembered.
pub type KeyEntry = (u128, u64);

/// Appends a framed list of replay keys to `out`.
pub fn encode_keys(out: &mut Vec<u8>, keys: &[KeyEntry]) {
    encode_with(out, |p| {
        p.push(KEYS_KIND);
        p.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for (k, expiry) in keys {
            p.extend_from_slice(&k.to_le_bytes());
            p.extend_from_slice(&expiry.to_le_bytes());
        }
    });
}

/// Whether a payload is a list of replay keys (not a record).
pub fn is_keys(payload: &[u8]) -> bool {
    payload.first() == Some(&KEYS_KIND)
}

pub fn decode_keys(payload: &[u8]) -> Result<Vec<KeyEntry>, &'static str> {
    let mut keys = Vec::new();
    decode_keys_into(payload, &mut keys)?;
    Ok(keys)
}

/// [`decode_keys`] into `out` (cleared first), so one list serves frame after frame.
pub fn decode_keys_into(payload: &[u8], out: &mut Vec<KeyEntry>) -> Result<(), &'static str> {
    out.clear();
    let mut c = Cur(payload);
    if c.u8()? != KEYS_KIND {
        return Err("not a list of replay keys");
    }
    let n = c.u32()? as usize;
    if c.0.len() != n.saturating_mul(24) {
        return Err("replay key list of the wrong length");
    }
    out.reserve(n);
    for _ in 0..n {
        let k = u128::from_le_bytes(c.take(16)?.try_into().expect("16 bytes"));
        out.push((k, c.u64()?));
    }
    Ok(())
}

/// Appends one frame whose payload `write` appends to `out` in place: the payload is written
/// once, then its length and checksum are filled in ahead of it.
pub fn encode_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER as usize]);
    write(out);
    let payload = &out[start + HEADER as usize..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

/// What a read at some offset found.
#[derive(Debug)]
pub enum Frame {
    /// A whole frame with a good checksum; the bytes it took (header included).
    Whole(Vec<u8>, u64),
    /// Clean end of the file: not one byte follows.
    End,
    /// A header of zero bytes. No frame has an empty payload, so this is where the data ends in
    /// a segment written full of zeros ahead of use ([`super::spare`]), or, with other bytes
    /// after it, damage. The caller decides which.
    Zeros,
    /// Bytes follow that are not a whole, intact frame.
    Broken(&'static str),
}

/// Reads the next frame from `r`.
pub fn read<R: Read>(r: &mut R) -> io::Result<Frame> {
    let mut header = [0u8; HEADER as usize];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Ok(Frame::End);
    }
    if got < header.len() {
        return Ok(Frame::Broken("truncated frame header"));
    }
    if header == [0u8; HEADER as usize] {
        return Ok(Frame::Zeros);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Ok(Frame::Broken("frame length out of range"));
    }
    // Read into reserved room: no zeroing of what the read overwrites anyway.
    let mut payload = Vec::with_capacity(len as usize);
    if read_up_to(r, &mut payload, len as usize)? < len as usize {
        return Ok(Frame::Broken("truncated frame payload"));
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(Frame::Broken("frame checksum mismatch"));
    }
    Ok(Frame::Whole(payload, HEADER + u64::from(len)))
}

/// Appends up to `n` bytes from `r` to `out`; how many it got (fewer only at end of file).
fn read_up_to<R: Read>(r: &mut R, out: &mut Vec<u8>, n: usize) -> io::Result<usize> {
    let mut limited = r.take(n as u64);
    limited.read_to_end(out)?;
    Ok(n - limited.limit() as usize)
}

/// Like `read_exact`, but says how much it got instead of failing at end of file.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One spooled event: its sequence number, when it was received, the sinks it is for, and the
/// event as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub received_ms: i64,
    pub sinks: Vec<String>,
    /// What the sinks put in their envelopes; never re-read from `event`.
    pub head: Head,
    /// The event's JSON: a part of the frame it was read from, shared, never copied out.
    pub event: Bytes,
}

/// Appends `s` with its length as a `u32`: a head field comes from an event that fits in one
/// frame ([`MAX_PAYLOAD`], far below 4 GiB).
fn put_str(p: &mut Vec<u8>, s: &str) {
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

/// Appends the framed record to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    received_ms: i64,
    sinks: &[String],
    head: &Head,
    event: &[u8],
) {
    encode_with(out, |p| {
        p.push(RECORD_VERSION);
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&received_ms.to_le_bytes());
        p.push(sinks.len().min(255) as u8);
        for s in sinks.iter().take(255) {
            let b = &s.as_bytes()[..s.len().min(255)];
            p.push(b.len() as u8);
            p.extend_from_slice(b);
        }
        put_str(p, &head.uid);
        p.extend_from_slice(&head.time_ms.to_le_bytes());
        p.push(head.severity_id);
        p.extend_from_slice(&head.class_uid.to_le_bytes());
        put_str(p, &head.class_name);
        put_str(p, &head.source);
        put_str(p, &head.vendor);
        put_str(p, &head.message);
        p.extend_from_slice(event);
    });
}

/// A little cursor over a payload that fails instead of panicking.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("record shorter than its fields");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn str(&mut self, n: usize) -> Result<String, &'static str> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "record field is not UTF-8")
    }
    /// A string written by [`put_str`].
    fn str32(&mut self) -> Result<String, &'static str> {
        let n = self.u32()? as usize;
        self.str(n)
    }
}

/// A record's version byte: the current one or one still read.
fn record_version(c: &mut Cur<'_>) -> Result<u8, &'static str> {
    let version = c.u8()?;
    if version != RECORD_VERSION && version != RECORD_VERSION_1 {
        return Err("unknown record version");
    }
    Ok(version)
}

/// A record's sequence number and whether `sink` is one of its sinks, read without decoding
/// the rest: a reader passes over the records of other sinks without copying anything out of
/// them.
pub fn record_route(payload: &[u8], sink: &str) -> Result<(u64, bool), &'static str> {
    let mut c = Cur(payload);
    record_version(&mut c)?;
    let seq = c.u64()?;
    c.u64()?;
    let mut wanted = false;
    for _ in 0..c.u8()? {
        let len = c.u8()? as usize;
        wanted |= c.take(len)? == sink.as_bytes();
    }
    Ok((seq, wanted))
}

/// The record in a frame's payload. The event is not copied: it is the payload's tail.
pub fn decode_record(payload: Vec<u8>) -> Result<Record, &'static str> {
    let mut c = Cur(&payload);
    let version = record_version(&mut c)?;
    let seq = c.u64()?;
    let received_ms = c.u64()? as i64;
    let n = c.u8()? as usize;
    let mut sinks = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.u8()? as usize;
        sinks.push(c.str(len)?);
    }
    let head = if version == RECORD_VERSION_1 {
        Head::of_json(c.0)
    } else {
        Head {
            uid: c.str32()?,
            time_ms: c.u64()? as i64,
            severity_id: c.u8()?,
            class_uid: c.u32()?,
            class_name: c.str32()?,
            source: c.str32()?,
            vendor: c.str32()?,
            message: c.str32()?,
        }
    };
    let at = payload.len() - c.0.len();
    Ok(Record {
        seq,
        received_ms,
        sinks,
        head,
        event: Bytes::from(payload).slice(at..),
    })
}

/// An event a sink could not take, with why and after how many attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The spool sequence number the event had; with the sink, its id.
    pub seq: u64,
    pub received_ms: i64,
    pub dead_lettered_ms: i64,
    pub attempts: u32,
    pub error: String,
    pub event: Vec<u8>,
}

pub fn encode_dead_letter(out: &mut Vec<u8>, d: &DeadLetter) {
    let err = &d.error.as_bytes()[..floor_char_boundary(&d.error, 4096)];
    encode_with(out, |p| {
        p.push(DEAD_LETTER_VERSION);
        p.extend_from_slice(&d.seq.to_le_bytes());
        p.extend_from_slice(&d.received_ms.to_le_bytes());
        p.extend_from_slice(&d.dead_lettered_ms.to_le_bytes());
        p.extend_from_slice(&d.attempts.to_le_bytes());
        p.extend_from_slice(&(err.len() as u16).to_le_bytes());
        p.extend_from_slice(err);
        p.extend_from_slice(&d.event);
    });
}

pub fn decode_dead_letter(payload: &[u8]) -> Result<DeadLetter, &'static str> {
    let mut c = Cur(payload);
    if c.u8()? != DEAD_LETTER_VERSION {
        return Err("unknown dead-letter version");
    }
    let seq = c.u64()?;
    let received_ms = c.u64()? as i64;
    let dead_lettered_ms = c.u64()? as i64;
    let attempts = c.u32()?;
    let len = c.u16()? as usize;
    let error = c.str(len)?;
    Ok(DeadLetter {
        seq,
        received_ms,
        dead_lettered_ms,
        attempts,
        error,
        event: c.0.to_vec(),
    })
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_seen() {
        let mut buf = Vec::new();
        let sinks = vec!["splunk".to_string(), "out".to_string()];
        let head = Head {
            uid: "evt-1".into(),
            time_ms: -5,
            severity_id: 99,
            class_uid: 6003,
            class_name: "API Activity".into(),
            source: "gh".into(),
            vendor: "github".into(),
            message: "é".repeat(3),
        };
        encode_record(
            &mut buf,
            7,
            1_700_000_000_123,
            &sinks,
            &head,
            br#"{"a":"\u00e9"}"#,
        );
        let mut r = &buf[..];
        let Frame::Whole(p, n) = read(&mut r).unwrap() else {
            panic!("whole frame expected")
        };
        assert_eq!(n, buf.len() as u64);
        assert_eq!(record_route(&p, "out"), Ok((7, true)));
        assert_eq!(record_route(&p, "ou"), Ok((7, false)));
        let rec = decode_record(p).unwrap();
        assert_eq!(rec.seq, 7);
        assert_eq!(rec.received_ms, 1_700_000_000_123);
        assert_eq!(rec.sinks, sinks);
        assert_eq!(rec.head, head);
        assert_eq!(&rec.event[..], br#"{"a":"\u00e9"}"#);
        assert!(matches!(read(&mut r).unwrap(), Frame::End));

        // Space written ahead reads as zeros, not as an empty frame.
        let mut ahead = buf.clone();
        ahead.extend_from_slice(&[0u8; 64]);
        let mut r = &ahead[..];
        assert!(matches!(read(&mut r).unwrap(), Frame::Whole(..)));
        assert!(matches!(read(&mut r).unwrap(), Frame::Zeros));

        for cut in 1..buf.len() {
            let mut r = &buf[..cut];
            let want = if cut < HEADER as usize {
                "truncated frame header"
            } else {
                "truncated frame payload"
            };
            assert!(
                matches!(read(&mut r).unwrap(), Frame::Broken(why) if why == want),
                "cut at {cut}"
            );
        }
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            let mut r = &bad[..];
            match read(&mut r).unwrap() {
                Frame::Broken(_) => {}
                // a flipped length byte may still describe a shorter frame; its CRC fails
                other => panic!("flip at {i} not detected: {other:?}"),
            }
        }
    }

    #[test]
    fn dead_letters_round_trip_with_long_errors_cut_on_a_char_boundary() {
        let d = DeadLetter {
            seq: 9,
            received_ms: 1,
            dead_lettered_ms: 2,
            attempts: 3,
            error: "é".repeat(3000),
            event: b"{}".to_vec(),
        };
        let mut buf = Vec::new();
        encode_dead_letter(&mut buf, &d);
        let mut r = &buf[..];
        let Frame::Whole(p, _) = read(&mut r).unwrap() else {
            panic!()
        };
        let back = decode_dead_letter(&p).unwrap();
        assert_eq!(back.error.len(), 4096);
        assert_eq!(back.event, d.event);
        assert_eq!((back.seq, back.attempts), (9, 3));
        assert!(decode_dead_letter(&p[..10]).is_err());
    }
}
