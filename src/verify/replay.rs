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
    New,
    Duplicate,
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
        ReplayStoreKind::Redis { url } => {
            let url = url
                .expose_str()
                .ok_or_else(|| ReplayError("redis_url is not UTF-8".into()))?;
            std::sync::Arc::new(super::redis_store::RedisStore::new(url)?)
        }
    })
}

pub trait ReplayStore: Send + Sync + 'static {
    /// Records `keys` unless any of them is already known; says which it was. Atomic per call.
    fn check_and_insert<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, ReplayError>>;

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
    /// key -> expiry (unix ms)
    map: HashMap<ReplayKey, i64>,
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
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let expiry = now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let mut g = self.lock();
        let inner = &mut *g;
        // Drop what has expired (insertion order is expiry order: the ttl is one setting).
        while let Some(&(k, exp)) = inner.order.front() {
            if exp > now_ms {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&k) == Some(&exp) {
                inner.map.remove(&k);
            }
        }
        if keys
            .iter()
            .any(|k| inner.map.get(k).is_some_and(|&e| e > now_ms))
        {
            return Seen::Duplicate;
        }
        for k in keys {
            while inner.map.len() >= self.max_entries {
                let Some((old, exp)) = inner.order.pop_front() else {
                    break;
                };
                if inner.map.get(&old) == Some(&exp) {
                    inner.map.remove(&old);
                    metrics::counter!(crate::telemetry::names::REPLAY_EVICTIONS).increment(1);
                }
            }
            inner.map.insert(*k, expiry);
            inner.order.push_back((*k, expiry));
        }
        Seen::New
    }
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

    #[tokio::test]
    async fn duplicate_within_retention_new_after() {
        let s = MemoryStore::new(100);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            s.check_and_insert(&[key(1)], t(1000), ttl).await.unwrap(),
            Seen::New
        );
        assert_eq!(
            s.check_and_insert(&[key(1)], t(1059), ttl).await.unwrap(),
            Seen::Duplicate
        );
        assert_eq!(
            s.check_and_insert(&[key(1)], t(1060), ttl).await.unwrap(),
            Seen::New
        );
    }

    #[tokio::test]
    async fn any_known_key_is_a_duplicate_and_records_nothing() {
        let s = MemoryStore::new(100);
        let ttl = Duration::from_secs(60);
        s.check_and_insert(&[key(1)], t(0), ttl).await.unwrap();
        assert_eq!(
            s.check_and_insert(&[key(2), key(1)], t(1), ttl)
                .await
                .unwrap(),
            Seen::Duplicate
        );
        assert_eq!(
            s.check_and_insert(&[key(2)], t(2), ttl).await.unwrap(),
            Seen::New
        );
    }

    #[tokio::test]
    async fn bounded_by_max_entries() {
        let s = MemoryStore::new(3);
        let ttl = Duration::from_secs(3600);
        for i in 0..10 {
            s.check_and_insert(&[key(i)], t(i as i64), ttl)
                .await
                .unwrap();
        }
        assert_eq!(s.len(), 3);
        // the newest are remembered, the oldest were evicted
        assert_eq!(
            s.check_and_insert(&[key(9)], t(20), ttl).await.unwrap(),
            Seen::Duplicate
        );
        assert_eq!(
            s.check_and_insert(&[key(0)], t(20), ttl).await.unwrap(),
            Seen::New
        );
    }

    #[tokio::test]
    async fn forget_lets_a_retry_through() {
        let s = MemoryStore::new(10);
        let ttl = Duration::from_secs(60);
        s.check_and_insert(&[key(1), key(2)], t(0), ttl)
            .await
            .unwrap();
        s.forget(&[key(1), key(2)]).await.unwrap();
        assert_eq!(
            s.check_and_insert(&[key(1)], t(1), ttl).await.unwrap(),
            Seen::New
        );
    }
}
