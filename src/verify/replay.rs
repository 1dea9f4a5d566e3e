//! Replay de-duplication. A [`ReplayStore`] remembers the ids (or signed-bytes digests) of
//! events that were handed on, for `replay.retention`. The in-memory store here serves one
//! replica; a shared store (Redis) implements the same trait for several.
//!
//! Keys are 16 bytes of SHA-256 over (source id, kind, value): bounded in size whatever the
//! vendor sends, and never the id itself in memory or in Redis.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

use super::mac;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 16]);

impl ReplayKey {
    pub fn new(source_id: &str, kind: &[u8], value: &[u8]) -> Self {
        let d = mac::sha256(&[source_id.as_bytes(), b"\0", kind, b"\0", value]);
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        ReplayKey(k)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplayKey({})", self.hex())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen: the keys are now reserved (pending) until confirmed or forgotten.
    New,
    /// Seen, and the event it belongs to was spooled.
    Duplicate,
    /// Seen, but the request that reserved it has not finished (or died before confirming):
    /// the event may not be on disk yet, so this copy must not be answered "duplicate".
    InFlight,
}

#[derive(Debug, thiserror::Error)]
#[error("replay store unavailable: {0}")]
pub struct ReplayError(pub String);

/// The store a config names.
pub fn from_config(
    cfg: &crate::config::ReplayConfig,
) -> Result<std::sync::Arc<dyn ReplayStore>, ReplayError> {
    use crate::config::ReplayStoreKind;
    Ok(match &cfg.store {
        ReplayStoreKind::Memory => std::sync::Arc::new(MemoryStore::new(cfg.max_entries)),
        ReplayStoreKind::Redis {
            url,
            key_prefix,
            ca_file,
        } => {
            let url = url
                .expose_str()
                .ok_or_else(|| ReplayError("redis_url is not UTF-8".into()))?;
            std::sync::Arc::new(super::redis_store::RedisStore::new(
                url,
                key_prefix,
                ca_file.as_deref(),
            )?)
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
}

/// The single-replica store: bounded by `max_entries` and `retention`. When full, the oldest
/// entry is evicted (counted in `siemgate_replay_evictions_total`).
pub struct MemoryStore {
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// key -> (expiry in unix ms, confirmed)
    map: HashMap<ReplayKey, (i64, bool)>,
    /// insertion order, for expiry and eviction
    order: VecDeque<(ReplayKey, i64)>,
}

impl MemoryStore {
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert_sync(&self, keys: &[ReplayKey], now: OffsetDateTime, ttl: Duration) -> Seen {
        let (now_ms, expiry) = expiry_ms(now, ttl);
        let mut g = self.lock();
        let inner = &mut *g;
        // Drop what has expired from the front. Reservations are shorter than confirmed
        // entries, so an expired one may wait behind a live one until it is evicted; lookups
        // check the expiry, so it is never taken for live.
        while let Some(&(k, exp)) = inner.order.front() {
            if exp > now_ms {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&k).map(|e| e.0) == Some(exp) {
                inner.map.remove(&k);
            }
        }
        let mut seen = None;
        for k in keys {
            match inner.map.get(k) {
                Some(&(e, false)) if e > now_ms => return Seen::InFlight,
                Some(&(e, true)) if e > now_ms => seen = Some(Seen::Duplicate),
                _ => {}
            }
        }
        if let Some(s) = seen {
            return s;
        }
        for k in keys {
            while inner.map.len() >= self.max_entries {
                let Some((old, exp)) = inner.order.pop_front() else {
                    break;
                };
                if inner.map.get(&old).map(|e| e.0) == Some(exp) {
                    inner.map.remove(&old);
                    metrics::counter!(crate::telemetry::names::REPLAY_EVICTIONS).increment(1);
                }
            }
            inner.map.insert(*k, (expiry, false));
            inner.order.push_back((*k, expiry));
        }
        Seen::New
    }

    fn confirm_sync(&self, keys: &[ReplayKey], now: OffsetDateTime, ttl: Duration) {
        let (_, expiry) = expiry_ms(now, ttl);
        let mut g = self.lock();
        for k in keys {
            // Only a reservation still held is confirmed (not one evicted meanwhile).
            if let Some(e) = g.map.get_mut(k) {
                *e = (expiry, true);
                g.order.push_back((*k, expiry));
            }
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
    fn check_and_insert<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, ReplayError>> {
        let r = self.insert_sync(keys, now, ttl);
        Box::pin(async move { Ok(r) })
    }

    fn confirm<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ReplayError>> {
        self.confirm_sync(keys, now, ttl);
        Box::pin(async { Ok(()) })
    }

    fn forget<'a>(&'a self, keys: &'a [ReplayKey]) -> BoxFuture<'a, Result<(), ReplayError>> {
        let mut g = self.lock();
        for k in keys {
            g.map.remove(k);
        }
        drop(g);
        Box::pin(async { Ok(()) })
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
    async fn bounded_by_max_entries() {
        let s = MemoryStore::new(3);
        let ttl = Duration::from_secs(3600);
        for i in 0..10 {
            ins(&s, &[key(i)], t(i as i64), ttl).await;
        }
        assert_eq!(s.len(), 3);
        // the newest are remembered, the oldest were evicted
        assert_eq!(ins(&s, &[key(9)], t(20), ttl).await, Seen::Duplicate);
        assert_eq!(ins(&s, &[key(0)], t(20), ttl).await, Seen::New);
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
