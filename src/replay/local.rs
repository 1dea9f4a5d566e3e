//! The durable local replay store (`replay.store = "local"`, the default): one replica's
//! memory of the keys it handed on, kept on the spool's volume so a restart (a crash, an
//! upgrade) forgets none of them.
//!
//! - **Durable with the event.** The gateway spools a request's events and its replay keys in
//!   one group commit ([`crate::spool::Spool::append_with_keys`]): when the sender is answered
//!   `200`, its keys are as durable as its events. A reservation (a request in flight) lives in
//!   memory only: a crash drops it together with the event that was never acknowledged.
//! - **Small and flat.** Confirmed keys live in a [`KeySet`]: generations by expiry, folded
//!   into one sharded sorted index (about 17 bytes a key), so a lookup costs one hash probe
//!   and one index probe however many keys there are.
//! - **Expiry without a scan.** Whole generations, and whole key log files, are dropped once
//!   their time has passed ([`ReplayStore::maintain`], run by the server every few seconds,
//!   which also folds the generations new keys no longer go to into the index, off the request path).
//! - **Bounded.** At `replay.max_entries` live keys it refuses new events ([`Seen::Full`]: 503 and
//!   `Retry-After`) rather than forget a key early.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

use super::{in_process_calls, BoxFuture, ReplayError, ReplayKey, ReplayStore, Seen, StoreSize};
use crate::spool::frame::KeyEntry;
use crate::spool::keys::{table_bytes, KeyLoad, KeySet, SHARDS};
use crate::spool::{KeySink, Spool};

pub struct LocalStore {
    retention: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
    /// The spool whose volume holds the keys: set once the gateway has opened it.
    spool: OnceLock<Arc<Spool>>,
    /// The heap a fold under way holds outside the set ([`crate::spool::keys::Merge::bytes`]).
    folding: AtomicUsize,
}

struct Inner {
    keys: KeySet,
    /// Keys reserved by requests in flight, with when the reservation lapses (Unix ms).
    pending: HashMap<u128, i64>,
    /// The keys found at start, while the spool opens ([`ReplayStore::start_keys`]).
    loading: Option<KeyLoad>,
}

/// The spool's way to hand a starting store the keys it finds.
struct Loading<'a>(&'a LocalStore);

impl KeySink for Loading<'_> {
    fn expect(&mut self, keys: usize) {
        if let Some(load) = self.0.lock().loading.as_mut() {
            KeySink::expect(load, keys);
        }
    }

    fn take(&mut self, keys: &[KeyEntry]) {
        if let Some(load) = self.0.lock().loading.as_mut() {
            load.take(keys);
        }
    }
}

fn unix_s(t: OffsetDateTime) -> u64 {
    t.unix_timestamp().max(0) as u64
}

/// `at + ttl` in Unix seconds, rounded up: a key is never kept for less than its ttl.
fn expiry_s(at: OffsetDateTime, ttl: Duration) -> u64 {
    let ms = crate::event::unix_ms(at).max(0) as u64;
    let ttl_ms = ttl.as_millis().min(u128::from(u64::MAX)) as u64;
    ms.saturating_add(ttl_ms).div_ceil(1000)
}

impl LocalStore {
    pub fn new(retention: Duration, max_entries: usize) -> LocalStore {
        LocalStore {
            retention,
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner {
                // The bound is kept here, at reservation: the set itself never refuses a key
                // (one confirmed, or loaded at start after the bound was lowered, is kept).
                keys: KeySet::new(retention.as_secs()),
                pending: HashMap::new(),
                loading: None,
            }),
            spool: OnceLock::new(),
            folding: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve_now(&self, keys: &[ReplayKey], now: OffsetDateTime, pending_ttl: Duration) -> Seen {
        let now_ms = crate::event::unix_ms(now);
        let now_s = unix_s(now);
        let mut inner = self.lock();
        let mut seen = None;
        for k in keys.iter().map(ReplayKey::to_u128) {
            if inner.keys.contains(k, now_s) {
                seen = Some(Seen::Duplicate);
            } else if inner.pending.get(&k).is_some_and(|until| *until > now_ms) {
                return Seen::InFlight;
            }
        }
        if let Some(s) = seen {
            return s;
        }
        if inner.keys.len() + inner.pending.len() + keys.len() > self.max_entries {
            inner.keys.expire(now_s);
            inner.pending.retain(|_, until| *until > now_ms);
            let live = inner.keys.len() + inner.pending.len();
            if live + keys.len() > self.max_entries {
                return Seen::Full { live };
            }
        }
        let until = now_ms.saturating_add(pending_ttl.as_millis().min(i64::MAX as u128) as i64);
        for k in keys {
            inner.pending.insert(k.to_u128(), until);
        }
        Seen::New
    }

    fn forget_now(&self, keys: &[ReplayKey]) {
        let mut inner = self.lock();
        for k in keys {
            inner.pending.remove(&k.to_u128());
        }
    }

    fn confirm_now(&self, keys: &[ReplayKey], now: OffsetDateTime, ttl: Duration) {
        let expiry = expiry_s(now, ttl);
        let mut inner = self.lock();
        for k in keys.iter().map(ReplayKey::to_u128) {
            inner.pending.remove(&k);
            inner.keys.insert(k, expiry);
        }
    }
}

impl ReplayStore for LocalStore {
    in_process_calls!();

    fn ready(&self) -> BoxFuture<'_, bool> {
        let attached = self.spool.get().is_some();
        Box::pin(async move { attached })
    }

    fn name(&self) -> &'static str {
        "local"
    }

    fn spooled_keys(
        &self,
        keys: &[ReplayKey],
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Vec<KeyEntry> {
        let expiry = expiry_s(now, ttl);
        keys.iter().map(|k| (k.to_u128(), expiry)).collect()
    }

    fn start_keys(&self, now: OffsetDateTime) -> Box<dyn KeySink + '_> {
        let mut inner = self.lock();
        inner.loading = Some(inner.keys.loader(unix_s(now)));
        Box::new(Loading(self))
    }

    fn attach(&self, spool: &Arc<Spool>, now: OffsetDateTime) {
        let started = std::time::Instant::now();
        let mut inner = self.lock();
        let kept = match inner.loading.take() {
            Some(load) => inner.keys.load_from(load, expiry_s(now, self.retention)),
            None => 0,
        };
        drop(inner);
        let _ = self.spool.set(spool.clone());
        tracing::info!(
            keys = kept,
            index_ms = started.elapsed().as_millis() as u64,
            "local replay store loaded the keys of events accepted before this start"
        );
    }

    fn maintain(&self, now: OffsetDateTime) {
        let now_s = unix_s(now);
        let merge = {
            let mut inner = self.lock();
            inner.keys.expire(now_s);
            let now_ms = crate::event::unix_ms(now);
            inner.pending.retain(|_, until| *until > now_ms);
            inner.keys.freeze(expiry_s(now, self.retention))
        };
        // Folding keys into the index is the costly part: done without the lock but to swap
        // a shard in, lookups reading the keys set aside meanwhile.
        if let Some(mut merge) = merge {
            // Counted from before the sort, which takes most of it.
            self.folding.store(merge.bytes(), Ordering::Relaxed);
            merge.sort();
            self.folding.store(merge.bytes(), Ordering::Relaxed);
            for i in 0..SHARDS {
                let (old, keep) = self.lock().keys.shard(i);
                let new = merge.merge_shard(i, &old, &keep);
                drop(old);
                self.lock().keys.put_shard(i, new);
            }
            self.lock().keys.finish(merge);
            self.folding.store(0, Ordering::Relaxed);
            // The old index's shards and the sorted keys are gone: given back now, not in a
            // second (each shard's build takes up memory freed by the shards before it).
            crate::memory::large_block_freed();
        }
        if let Some(spool) = self.spool.get() {
            spool.expire_keys(now_s);
        }
    }

    /// The keys held and the memory they take (the set's tables, the reservations' table and
    /// a fold's sorted keys); the key log's size on disk beside them.
    fn size(&self) -> Option<StoreSize> {
        let inner = self.lock();
        let pending = table_bytes::<(u128, i64)>(inner.pending.capacity());
        Some(StoreSize {
            keys: inner.keys.len(),
            bytes: inner.keys.bytes() + pending + self.folding.load(Ordering::Relaxed),
            disk_bytes: self.spool.get().map(|s| s.key_bytes() as usize),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ns: &[u8]) -> Vec<ReplayKey> {
        ns.iter()
            .map(|n| ReplayKey::new("src", b"id", &[*n]))
            .collect()
    }

    /// Reserve, confirm, forget and the bound, in memory (a restart is tested with the binary:
    /// `tests/it/replay_local.rs`).
    #[test]
    fn reservations_confirmations_and_the_bound() {
        let day = Duration::from_secs(86_400);
        let store = LocalStore::new(day, 4);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let pending = Duration::from_secs(60);
        let (a, b, c) = (keys(&[1, 2]), keys(&[3]), keys(&[4, 5]));
        assert_eq!(store.reserve_now(&a, now, pending), Seen::New);
        // Reserved, not confirmed: a copy is asked to retry, never told "duplicate".
        assert_eq!(store.reserve_now(&a, now, pending), Seen::InFlight);
        store.confirm_now(&a, now, day);
        assert_eq!(store.reserve_now(&a, now, pending), Seen::Duplicate);
        // A forgotten reservation (the spool refused the event) lets the retry through.
        assert_eq!(store.reserve_now(&b, now, pending), Seen::New);
        store.forget_now(&b);
        assert_eq!(store.reserve_now(&b, now, pending), Seen::New);
        // Two confirmed and one reserved of four: two more do not fit, and nothing is dropped.
        assert_eq!(store.reserve_now(&c, now, pending), Seen::Full { live: 3 });
        assert_eq!(store.reserve_now(&a, now, pending), Seen::Duplicate);
        // A lapsed reservation frees its room; a day later the confirmed keys have gone too.
        let later = now + Duration::from_secs(61);
        assert_eq!(store.reserve_now(&c, later, pending), Seen::New);
        let next_day = now + day + day / 8;
        store.maintain(next_day);
        assert_eq!(store.reserve_now(&a, next_day, pending), Seen::New);
        assert_eq!(
            store.size().map(|s| s.keys),
            Some(0),
            "confirmed keys expired"
        );
    }

    /// `siemgate_replay_bytes` is the memory the keys take, wherever they are (hash sets, the
    /// index after a fold, reservations), not the key log's size on disk: a store with no
    /// spool, whose keys are on no disk, still counts them.
    #[test]
    fn the_size_in_bytes_is_the_memory_the_keys_take() {
        let day = Duration::from_secs(86_400);
        let store = LocalStore::new(day, 1_000_000);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let empty = store.size().unwrap();
        assert_eq!((empty.keys, empty.disk_bytes), (0, None));
        let confirmed: Vec<ReplayKey> = (0..20_000u32)
            .map(|n| ReplayKey::new("src", b"id", &n.to_le_bytes()))
            .collect();
        for k in confirmed.chunks(2) {
            assert_eq!(store.reserve_now(k, now, day), Seen::New);
            store.confirm_now(k, now, day);
        }
        let held = store.size().unwrap();
        assert_eq!(held.keys, 20_000);
        // At least 16 bytes a key in a hash set: the key itself.
        assert!(held.bytes >= 20_000 * 16, "{held:?}");
        // Reservations count too.
        let reserved: Vec<ReplayKey> = (0..5_000u32)
            .map(|n| ReplayKey::new("src", b"in-flight", &n.to_le_bytes()))
            .collect();
        assert_eq!(store.reserve_now(&reserved, now, day), Seen::New);
        assert!(store.size().unwrap().bytes >= held.bytes + 5_000 * 24);
        // Folded into the index a day on (the generation they went to is past): still held,
        // about 16 bytes a key plus the index's room.
        store.forget_now(&reserved);
        let later = now + day / 8;
        store.maintain(later);
        let folded = store.size().unwrap();
        assert_eq!(folded.keys, 20_000);
        assert!(folded.bytes >= 20_000 * 16, "{folded:?}");
    }

    static RETURNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A fold frees the old index at once: the allocator is told, so that the binary's gives the
    /// memory back now; maintenance with nothing to fold does not tell it.
    #[test]
    fn a_fold_tells_the_allocator_that_much_was_freed() {
        crate::memory::set_return_freed(|| {
            RETURNED.fetch_add(1, Ordering::SeqCst);
        });
        let day = Duration::from_secs(86_400);
        let store = LocalStore::new(day, 1_000_000);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        store.maintain(now);
        let before = RETURNED.load(Ordering::SeqCst);
        let k = [ReplayKey::new("src", b"id", b"one")];
        assert_eq!(store.reserve_now(&k, now, day), Seen::New);
        store.confirm_now(&k, now, day);
        store.maintain(now + day / 8);
        assert_eq!(RETURNED.load(Ordering::SeqCst), before + 1);
        store.maintain(now + day / 8);
        assert_eq!(RETURNED.load(Ordering::SeqCst), before + 1);
    }
}
