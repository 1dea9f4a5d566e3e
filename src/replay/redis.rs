//! The shared replay store for several replicas: Redis. One Lua script checks and records all
//! of a request's keys atomically (`SET ... PX retention`), so two replicas receiving the same
//! event at once cannot both accept it. Keys are `<key_prefix>replay:<hex>` (the prefix is
//! `siemgate:` unless `replay.key_prefix` says otherwise): digests, never ids.
//!
//! `rediss://` connects over TLS (rustls), trusting the system's roots or, with
//! `replay.tls.ca_file`, that PEM bundle only.
//!
//! The connection is made on first use and re-made after failures; while Redis is unreachable
//! requests are answered 503 (the sender retries) and `/readyz` says not ready.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use super::{BoxFuture, ReplayError, ReplayKey, ReplayStore, Seen};

const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// 1: new (reserved as 'p' for ARGV[1] ms); 0: a confirmed duplicate; 2: reserved by a
/// request still in flight.
const CHECK_AND_SET: &str = r#"
local seen = 1
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == 'p' then return 2 end
  if v then seen = 0 end
end
if seen == 0 then return 0 end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 'p', 'PX', ARGV[1])
end
return 1
"#;

/// Confirms reservations still held (XX: never resurrects a key that expired or was forgotten).
const CONFIRM: &str = r#"
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[1], 'XX')
end
return 1
"#;

pub struct RedisStore {
    client: redis::Client,
    /// `<key_prefix>replay:`
    prefix: String,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    confirm: redis::Script,
}

fn err(e: impl std::fmt::Display) -> ReplayError {
    ReplayError(e.to_string())
}

impl RedisStore {
    /// Checks the URL (and reads `ca_file`); connects on first use.
    pub fn new(
        url: &str,
        key_prefix: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, ReplayError> {
        // The error text could echo the URL and its password: say only what is wrong.
        let invalid = |_| {
            ReplayError(
                "invalid redis_url (expected redis[s]://[user:password@]host:port[/db])".into(),
            )
        };
        let client = match ca_file {
            Some(path) => {
                let root = std::fs::read(path)
                    .map_err(|e| ReplayError(format!("cannot read {}: {e}", path.display())))?;
                redis::Client::build_with_tls(
                    url,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root),
                    },
                )
                .map_err(invalid)?
            }
            None => redis::Client::open(url).map_err(invalid)?,
        };
        Ok(RedisStore {
            client,
            prefix: format!("{key_prefix}replay:"),
            conn: OnceCell::new(),
            script: redis::Script::new(CHECK_AND_SET),
            confirm: redis::Script::new(CONFIRM),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, ReplayError> {
        let c = self
            .conn
            .get_or_try_init(|| async {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(OP_TIMEOUT))
                    .set_response_timeout(Some(OP_TIMEOUT))
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    OP_TIMEOUT * 2,
                    ConnectionManager::new_with_config(self.client.clone(), cfg),
                )
                .await
                .map_err(|_| ReplayError("connecting to redis timed out".into()))?
                .map_err(err)
            })
            .await?;
        Ok(c.clone())
    }

    /// Runs `script` over `keys` with the TTL (ms) as its argument.
    async fn run(
        &self,
        script: &redis::Script,
        keys: &[ReplayKey],
        ttl: Duration,
    ) -> Result<i64, ReplayError> {
        let mut conn = self.conn().await?;
        let mut inv = script.prepare_invoke();
        for k in self.keys(keys) {
            inv.key(k);
        }
        inv.arg(ttl.as_millis().max(1) as u64);
        tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| ReplayError("redis did not answer in time".into()))?
            .map_err(err)
    }

    fn keys(&self, keys: &[ReplayKey]) -> Vec<String> {
        keys.iter()
            .map(|k| format!("{}{}", self.prefix, k.hex()))
            .collect()
    }
}

impl ReplayStore for RedisStore {
    fn check_and_insert<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        _now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Seen, ReplayError>> {
        Box::pin(async move {
            Ok(match self.run(&self.script, keys, ttl).await? {
                1 => Seen::New,
                2 => Seen::InFlight,
                _ => Seen::Duplicate,
            })
        })
    }

    fn confirm<'a>(
        &'a self,
        keys: &'a [ReplayKey],
        _now: OffsetDateTime,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ReplayError>> {
        Box::pin(async move { self.run(&self.confirm, keys, ttl).await.map(drop) })
    }

    fn forget<'a>(&'a self, keys: &'a [ReplayKey]) -> BoxFuture<'a, Result<(), ReplayError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut cmd = redis::cmd("DEL");
            for k in self.keys(keys) {
                cmd.arg(k);
            }
            tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<i64>(&mut conn))
                .await
                .map_err(|_| ReplayError("redis did not answer in time".into()))?
                .map_err(err)?;
            Ok(())
        })
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Ok(mut conn) = self.conn().await else {
                return false;
            };
            matches!(
                tokio::time::timeout(
                    OP_TIMEOUT,
                    redis::cmd("PING").query_async::<String>(&mut conn)
                )
                .await,
                Ok(Ok(_))
            )
        })
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
