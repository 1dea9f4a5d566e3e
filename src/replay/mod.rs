//! Replay de-duplication. A [`ReplayStore`] remembers the ids (or signed-bytes digests) of
//! events that were handed on, for `replay.retention`: [`local`] (the default: durable, on the
//! spool's volume) and the in-memory store here serve one replica; [`redis`] serves several.
//!
//! Keys are 16 bytes of SHA-256 over (source id, kind, value): bounded in size whatever the
//! vendor sends, and never the id itself in memory or in Redis.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

pub use crate::verify::ReplayKey;

pub mod local;
pub mod redis;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The calls of [`ReplayStore`] that a store deciding in this process, at once (memory,
/// local), answers from its `reserve_now`, `confirm_now` and `forget_now`.
macro_rules! in_process_calls {
    () => {
        fn check_and_insert<'a>(
            &'a self,
            keys: &'a [ReplayKey],
            now: OffsetDateTime,
            pending_ttl: Duration,
        ) -> BoxFuture<'a, Result<Seen, ReplayError>> {
            Box::pin(std::future::ready(Ok(self.reserve_now(
                keys,
                now,
                pending_ttl,
            ))))
        }

        fn confirm<'a>(
            &'a self,
            keys: &'a [ReplayKey],
            now: OffsetDateTime,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<(), ReplayError>> {
            self.confirm_now(keys, now, ttl);
            Box::pin(std::future::ready(Ok(())))
        }

        fn forget<'a>(&'a self, keys: &'a [ReplayKey]) -> BoxFuture<'a, Result<(), ReplayError>> {
            self.forget_now(keys);
            Box::pin(std::future::ready(Ok(())))
        }
    };
}
pub(crate) use in_process_calls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen: the keys are now reserved (pending) until confirmed or forgotten.
    New,
    /// Seen, and the event it belongs to was spooled.
    Duplicate,
    /// Seen, but the request that reserved it has not finished (or died before confirming):
    /// the event may not be on disk yet, so this copy must not be answered "duplicate".
    InFlight,
    /// Not seen, but the store is full of ids still within retention (`live` of them): it
    /// refuses the event rather than forget one of those ids. The sender is asked to retry.
    Full { live: usize },
}

#[derive(Debug, thiserror::Error)]
#[error("replay store unavailable: {0}")]
pub struct ReplayError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStoreKind {
    /// Durable, on the spool's volume (the default): one replica.
    Local,
    /// In memory, forgotten at a restart: tests and demos.
    Memory,
    Redis {
        url: crate::verify::Secret,
        /// Prepended to every key, so deployments sharing one Redis do not de-duplicate each
        /// other's events (`replay.key_prefix`, default `siemgate:`).
        key_prefix: String,
        /// Extra trust roots for `rediss://` (`replay.tls.ca_file`); else the system's.
        ca_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub store: ReplayStoreKind,
    pub retention: Duration,
    pub max_entries: usize,
}

/// The store a config names.
pub fn from_config(cfg: &ReplayConfig) -> Result<std::sync::Arc<dyn ReplayStore>, ReplayError> {
    Ok(match &cfg.store {
        ReplayStoreKind::Local => {
            std::sync::Arc::new(local::LocalStore::new(cfg.retention, cfg.max_entries))
        }
        ReplayStoreKind::Memory => std::sync::Arc::new(MemoryStore::new(cfg.max_entries)),
        ReplayStoreKind::Redis {
            url,
            key_prefix,
            ca_file,
        } => {
            let url = url
                .expose_str()
                .ok_or_else(|| ReplayError("redis_url is not UTF-8".into()))?;
            std::sync::Arc::new(redis::RedisStore::new(url, key_prefix, ca_file.as_deref())?)
        }
    })
}

pub trait ReplayStore: Send + Sync + 'static {
    /// Reserves `keys` for `pending_ttl` unless any of them is already known; says which it
    /// was. Atomic per call. A reservation that is never confirmed (the process died before
    /// the event was spooled) expires, so the sender's retry gets through then.
    fn check_and_insert<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        now: OffsetDateTime,
        pending_ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, ReplayError>>;

    /// Marks reserved `keys` as handed on (the event is durable), remembered for `ttl`.
    fn confirm<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ReplayError>>;

    /// Forgets `keys`: the event they belong to was not handed on after all, so the sender's
    /// retry must not be taken for a duplicate.
    fn forget<'a>(&'a self, keys: &'a [ReplayKey]) -> BoxFuture<'a, Result<(), ReplayError>>;

    /// Whether the store can be used now (for `/readyz`).
    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }

    fn name(&self) -> &'static str;

    /// What a store that keeps its keys in the spool wants written with a request's events
    /// ([`crate::spool::Spool::append_with_keys`]): each key with the Unix second until which
    /// it must be remembered, `ttl` from `now`. They are then as durable as the events when the
    /// sender is answered. Other stores: nothing.
    fn spooled_keys(
        &self,
        _keys: &[ReplayKey],
        _now: OffsetDateTime,
        _ttl: Duration,
    ) -> Vec<crate::spool::frame::KeyEntry> {
        Vec::new()
    }

    /// Where the replay keys the spool finds as it opens go ([`crate::spool::Spool::open`]),
    /// before [`ReplayStore::attach`]: a store that keeps its keys in the spool takes them as
    /// they are read. Other stores: nowhere.
    fn start_keys(&self, _now: OffsetDateTime) -> Box<dyn crate::spool::KeySink + '_> {
        Box::new(crate::spool::NoKeys)
    }

    /// Connects a store that keeps its keys in the spool to it, once the gateway has opened
    /// it, with the keys of events accepted before this start ([`ReplayStore::start_keys`]).
    fn attach(&self, _spool: &std::sync::Arc<crate::spool::Spool>, _now: OffsetDateTime) {}

    /// Housekeeping off the request path (expiry, compaction), run every few seconds.
    /// Blocking: may take a while.
    fn maintain(&self, _now: OffsetDateTime) {}

    /// How much the store holds here, for `siemgate_replay_keys` and `siemgate_replay_bytes`
    /// (read at scrape time); `None` for a store whose size is not ours to report (Redis).
    fn size(&self) -> Option<StoreSize> {
        None
    }
}

/// A store's size: the keys it remembers, the memory they take, and for a store that keeps
/// them on disk too (the local store's key log), the bytes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSize {
    pub keys: usize,
    pub bytes: usize,
    pub disk_bytes: Option<usize>,
}

/// The single-replica store, bounded by `max_entries`. It never forgets an id before its
/// retention ends: when it is full, expired entries are purged, and if every entry is still
/// live the new event is refused ([`Seen::Full`], so the sender gets 503 + Retry-After and
/// retries later) and counted in `siemgate_replay_full_total`. Evicting a live id instead would
/// let a captured delivery be replayed.
///
/// Its size is in `siemgate_replay_keys` and `siemgate_replay_bytes` (the heap its tables hold;
/// see [`MemoryStore::heap_bytes`]).
pub struct MemoryStore {
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// key -> (expiry in unix ms, confirmed)
    map: HashMap<ReplayKey, (i64, bool)>,
    /// insertion order, for expiry; an entry whose expiry no longer matches the map's is stale
    order: VecDeque<(ReplayKey, i64)>,
    /// No entry in `map` expires before this (a lower bound): a full purge before then would
    /// find nothing.
    earliest: i64,
}

impl Inner {
    /// Drops expired entries from the front of the insertion order (cheap, every call).
    fn purge_front(&mut self, now_ms: i64) {
        while let Some(&(k, exp)) = self.order.front() {
            if exp > now_ms {
                break;
            }
            self.order.pop_front();
            if self.map.get(&k).map(|e| e.0) == Some(exp) {
                self.map.remove(&k);
            }
        }
    }

    /// Drops every expired entry, wherever it is (reservations expire sooner than confirmed
    /// entries, so some wait behind live ones); runs only when the store is full and something
    /// can have expired.
    fn purge_all(&mut self, now_ms: i64) {
        if now_ms < self.earliest {
            return;
        }
        self.map.retain(|_, e| e.0 > now_ms);
        self.compact();
        self.earliest = self.map.values().map(|e| e.0).min().unwrap_or(i64::MAX);
    }

    /// Removes stale entries from the insertion order.
    fn compact(&mut self) {
        let map = &self.map;
        self.order
            .retain(|(k, exp)| map.get(k).map(|e| e.0) == Some(*exp));
    }
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner {
                earliest: i64::MAX,
                ..Default::default()
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heap the store's tables hold now: the hash table's buckets (each a key, its expiry
    /// and state, and a control byte; hashbrown keeps at most 7/8 of them full) and the
    /// insertion-order queue. Capacities, not lengths: what is allocated.
    pub fn heap_bytes(&self) -> usize {
        Self::heap_bytes_of(&self.lock())
    }

    fn heap_bytes_of(inner: &Inner) -> usize {
        crate::spool::keys::table_bytes::<(ReplayKey, (i64, bool))>(inner.map.capacity())
            + inner.order.capacity() * std::mem::size_of::<(ReplayKey, i64)>()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve_now(&self, keys: &[ReplayKey], now: OffsetDateTime, ttl: Duration) -> Seen {
        let (now_ms, expiry) = expiry_ms(now, ttl);
        let mut g = self.lock();
        let inner = &mut *g;
        inner.purge_front(now_ms);
        let mut seen = None;
        let mut new = 0;
        for k in keys {
            match inner.map.get(k) {
                Some(&(e, false)) if e > now_ms => return Seen::InFlight,
                Some(&(e, true)) if e > now_ms => seen = Some(Seen::Duplicate),
                Some(_) => {}
                None => new += 1,
            }
        }
        if let Some(s) = seen {
            return s;
        }
        if inner.map.len() + new > self.max_entries {
            inner.purge_all(now_ms);
            if inner.map.len() + new > self.max_entries {
                return Seen::Full {
                    live: inner.map.len(),
                };
            }
        }
        for k in keys {
            inner.map.insert(*k, (expiry, false));
            inner.order.push_back((*k, expiry));
        }
        inner.earliest = inner.earliest.min(expiry);
        if inner.order.len() > 2 * self.max_entries {
            inner.compact();
        }
        Seen::New
    }

    fn forget_now(&self, keys: &[ReplayKey]) {
        let mut g = self.lock();
        for k in keys {
            g.map.remove(k);
        }
    }

    fn confirm_now(&self, keys: &[ReplayKey], now: OffsetDateTime, ttl: Duration) {
        let (_, expiry) = expiry_ms(now, ttl);
        let mut g = self.lock();
        let inner = &mut *g;
        for k in keys {
            // Only a reservation still held is confirmed (not one that expired meanwhile).
            if let Some(e) = inner.map.get_mut(k) {
                *e = (expiry, true);
                inner.order.push_back((*k, expiry));
            }
        }
        if inner.order.len() > 2 * self.max_entries {
            inner.compact();
        }
    }
}

/// `now` and `now + ttl`, in unix milliseconds.
fn expiry_ms(now: OffsetDateTime, ttl: Duration) -> (i64, i64) {
    let now_ms = crate::event::unix_ms(now);
    let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as i64;
    (now_ms, now_ms.saturating_add(ttl_ms))
}

impl ReplayStore for MemoryStore {
    in_process_calls!();

    fn size(&self) -> Option<StoreSize> {
        let inner = self.lock();
        Some(StoreSize {
            keys: inner.map.len(),
            bytes: Self::heap_bytes_of(&inner),
            disk_bytes: None,
        })
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn key(n: u32) -> ReplayKey {
        ReplayKey::new("src", b"id", &n.to_be_bytes())
    }

    /// Reserves and, when new, confirms at once (a request that spooled its event).
    async fn ins(s: &MemoryStore, keys: &[ReplayKey], at: OffsetDateTime, ttl: Duration) -> Seen {
        let r = s.check_and_insert(keys, at, ttl).await.unwrap();
        if r == Seen::New {
            s.confirm(keys, at, ttl).await.unwrap();
        }
        r
    }

    #[tokio::test]
    async fn an_unconfirmed_reservation_is_in_flight_until_it_expires() {
        let s = MemoryStore::new(10);
        let short = Duration::from_secs(60);
        assert_eq!(
            s.check_and_insert(&[key(1)], t(0), short).await.unwrap(),
            Seen::New
        );
        assert_eq!(
            s.check_and_insert(&[key(1)], t(10), short).await.unwrap(),
            Seen::InFlight
        );
        // the process died before confirming: after the reservation expires, a retry is new
        assert_eq!(
            s.check_and_insert(&[key(1)], t(61), short).await.unwrap(),
            Seen::New
        );
        s.confirm(&[key(1)], t(62), Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(
            s.check_and_insert(&[key(1)], t(200), short).await.unwrap(),
            Seen::Duplicate
        );
    }

    #[tokio::test]
    async fn duplicate_within_retention_new_after() {
        let s = MemoryStore::new(100);
        let ttl = Duration::from_secs(60);
        assert_eq!(ins(&s, &[key(1)], t(1000), ttl).await, Seen::New);
        assert_eq!(ins(&s, &[key(1)], t(1059), ttl).await, Seen::Duplicate);
        assert_eq!(ins(&s, &[key(1)], t(1060), ttl).await, Seen::New);
    }

    #[tokio::test]
    async fn any_known_key_is_a_duplicate_and_records_nothing() {
        let s = MemoryStore::new(100);
        let ttl = Duration::from_secs(60);
        ins(&s, &[key(1)], t(0), ttl).await;
        assert_eq!(ins(&s, &[key(2), key(1)], t(1), ttl).await, Seen::Duplicate);
        assert_eq!(ins(&s, &[key(2)], t(2), ttl).await, Seen::New);
    }

    #[tokio::test]
    async fn a_full_store_refuses_new_ids_and_never_forgets_a_live_one() {
        let s = MemoryStore::new(3);
        let ttl = Duration::from_secs(3600);
        for i in 0..3 {
            assert_eq!(ins(&s, &[key(i)], t(i as i64), ttl).await, Seen::New);
        }
        // full of live ids: a new one is refused, and nothing was evicted for it
        assert_eq!(ins(&s, &[key(9)], t(10), ttl).await, Seen::Full { live: 3 });
        assert_eq!(s.len(), 3);
        assert_eq!(ins(&s, &[key(0)], t(11), ttl).await, Seen::Duplicate);
        // once the oldest expires it is purged and a new id fits
        assert_eq!(ins(&s, &[key(9)], t(3600), ttl).await, Seen::New);
        assert_eq!(ins(&s, &[key(1)], t(3600), ttl).await, Seen::Duplicate);
    }

    #[tokio::test]
    async fn an_expired_reservation_behind_a_live_entry_is_purged_when_full() {
        let s = MemoryStore::new(2);
        let long = Duration::from_secs(3600);
        ins(&s, &[key(1)], t(0), long).await;
        // a reservation never confirmed (the request died), expiring long before key(1)
        s.check_and_insert(&[key(2)], t(1), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            ins(&s, &[key(3)], t(30), long).await,
            Seen::Full { .. }
        ));
        assert_eq!(ins(&s, &[key(3)], t(62), long).await, Seen::New);
        assert_eq!(ins(&s, &[key(1)], t(63), long).await, Seen::Duplicate);
    }

    /// The memory one key costs, measured: resident memory before and after a million keys,
    /// against `heap_bytes`. `cargo test --lib replay_bytes_per_key -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement for the README, not a check"]
    async fn replay_bytes_per_key() {
        let rss = || crate::telemetry::resident_bytes().expect("procfs") as usize;
        const N: u32 = 1_000_000;
        let s = MemoryStore::new(N as usize);
        let ttl = Duration::from_secs(86_400);
        let before = rss();
        for i in 0..N {
            ins(&s, &[key(i)], t(1), ttl).await;
        }
        let after = rss();
        println!(
            "{N} keys: resident +{} bytes ({:.1} per key); heap_bytes {} ({:.1} per key)",
            after - before,
            (after - before) as f64 / N as f64,
            s.heap_bytes(),
            s.heap_bytes() as f64 / N as f64
        );
    }

    #[tokio::test]
    async fn forget_lets_a_retry_through() {
        let s = MemoryStore::new(10);
        let ttl = Duration::from_secs(60);
        ins(&s, &[key(1), key(2)], t(0), ttl).await;
        s.forget(&[key(1), key(2)]).await.unwrap();
        assert_eq!(ins(&s, &[key(1)], t(1), ttl).await, Seen::New);
    }
}
