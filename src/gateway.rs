//! The gateway's state and the ingest pipeline, apart from HTTP: given a source id and an
//! unverified request, [`Gateway::ingest`] runs steps 5-8 of the lifecycle (see the crate docs)
//! and says what happened as an [`Outcome`]. The server maps outcomes to HTTP in one place.
//!
//! Sources (secrets, windows, limits) live in a [`Runtime`] behind an `ArcSwap`, so a reload
//! builds a new one beside the old and swaps it in whole; requests in flight keep the one
//! they started with.

use arc_swap::ArcSwap;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, RateLimit, SourceConfig};
use crate::event::{self, Event};
use crate::ocsf;
use crate::sink::engine::{SinkRuntime, SinkSlot};
use crate::sink::{self, Health, Sink};
use crate::spool::{self, AppendError, NewEvent, Spool};
use crate::telemetry::names;
use crate::vendors::Vendor;
use crate::verify::replay::{ReplayStore, Seen};
use crate::verify::{self, Clock, Key, Reason, Rejection, Unverified, Verifier};

mod budget;
pub use budget::{BodyBudget, Reservation};

type DirectLimiter =
    RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>;
type KeyedLimiter = RateLimiter<IpAddr, DashMapStateStore<IpAddr>, DefaultClock>;

/// A configured source, ready to verify.
pub struct Source {
    pub config: SourceConfig,
    pub scheme: Box<dyn Vendor>,
    pub keys: Vec<Key>,
    limiter: Option<DirectLimiter>,
    /// The source's sinks, each with its `min_severity`.
    sinks: Vec<(String, Option<u8>)>,
}

impl Source {
    pub fn verifier(&self) -> Verifier<'_> {
        Verifier {
            source_id: &self.config.id,
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance: self.config.tolerance,
        }
    }
}

/// Everything a reload may change.
pub struct Runtime {
    pub config: Arc<Config>,
    pub sources: HashMap<String, Arc<Source>>,
}

/// What became of a request. `Unauthorized` keeps its reason for logs and metrics only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted {
        events: usize,
    },
    Duplicate,
    Unauthorized(Rejection),
    RateLimited {
        retry_after: Duration,
    },
    Unavailable {
        retry_after: Duration,
    },
    /// The body is over `server.max_body` (declared or streamed); decided by the server.
    TooLarge,
    /// A vendor's endpoint check, answered as the vendor requires; nothing is spooled.
    Handshake(crate::vendors::Handshake),
    NotFound,
}

impl Outcome {
    /// The `outcome` label of `siemgate_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Unauthorized(_) => "unauthorized",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Unavailable { .. } => "unavailable",
            Outcome::TooLarge => "too_large",
            Outcome::Handshake(_) => "handshake",
            Outcome::NotFound => "not_found",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("source {source_id}: secret {index}: {message}")]
    Secret {
        source_id: String,
        index: usize,
        message: String,
    },
    #[error("source {source_id}: sink {sink} is not configured")]
    MissingSink { source_id: String, sink: String },
    #[error("sink {0}")]
    Sink(#[from] sink::SinkError),
    #[error("{0}")]
    Spool(#[from] spool::SpoolError),
}

/// The configured sinks, by id.
pub type SinkMap = HashMap<String, Arc<SinkEntry>>;

/// What a reload changed in the sinks, for the delivery engine to apply: workers to start
/// for the sinks added (the spool already knows them), and the sinks removed, whose workers
/// are to be stopped before the spool forgets them ([`Spool::remove_sink`]).
#[derive(Default)]
pub struct SinkChanges {
    pub added: Vec<SinkRuntime>,
    pub removed: Vec<String>,
}

/// A configured sink: what it is and its settings (swapped whole by a reload that changes
/// them; its worker takes the new ones), and its health.
pub struct SinkEntry {
    slot: tokio::sync::watch::Sender<Arc<SinkSlot>>,
    pub health: Arc<Health>,
}

impl SinkEntry {
    fn new(sink: Arc<dyn Sink>, config: crate::config::SinkConfig) -> Arc<SinkEntry> {
        let health = Health::new(sink.id());
        let (slot, _) = tokio::sync::watch::channel(Arc::new(SinkSlot { sink, config }));
        Arc::new(SinkEntry { slot, health })
    }

    /// What the delivery engine runs for this sink.
    fn runtime(&self) -> SinkRuntime {
        SinkRuntime {
            slot: self.slot.subscribe(),
            health: self.health.clone(),
        }
    }

    /// The sink as it runs now.
    pub fn current(&self) -> Arc<SinkSlot> {
        self.slot.borrow().clone()
    }
}

/// The per-client limiter, with a bounded key map.
pub struct ClientLimiter {
    limiter: KeyedLimiter,
    max_tracked: usize,
}

/// IPv6 clients are limited per /64: one host usually holds a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// Where clients are lumped once `max_tracked_clients` distinct ones are being tracked.
const OVERFLOW_KEY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

impl ClientLimiter {
    fn new(rl: RateLimit, max_tracked: usize) -> Self {
        ClientLimiter {
            limiter: RateLimiter::dashmap(quota(rl)),
            max_tracked,
        }
    }

    /// `Err(wait)` when the client is over its limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut key = client_key(ip);
        if self.limiter.len() >= self.max_tracked {
            self.limiter.retain_recent();
            if self.limiter.len() >= self.max_tracked {
                key = OVERFLOW_KEY;
            }
        }
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose buckets are full again; run periodically.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        metrics::gauge!(names::TRACKED_CLIENTS).set(self.limiter.len() as f64);
    }
}

fn quota(rl: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(rl.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rl.burst).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

/// How long past `server.request_timeout` a replay reservation outlives its request.
const PENDING_MARGIN: Duration = Duration::from_secs(30);

pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    clock: Arc<dyn Clock>,
    replay: Arc<dyn ReplayStore>,
    /// Swapped whole by a reload that adds or removes a sink.
    sinks: ArcSwap<SinkMap>,
    spool: Arc<Spool>,
    /// Swapped whole when a reload changes `client_rate_limit` or `max_tracked_clients`.
    client_limiter: ArcSwap<ClientLimiter>,
    body_budget: BodyBudget,
    draining: AtomicBool,
    /// When the full replay store was last logged.
    full_logged: Throttle,
}

/// How often a condition that every request would otherwise log (a full replay store) is.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Lets a log line through at most once every [`FULL_LOG_EVERY`].
#[derive(Default)]
struct Throttle(std::sync::atomic::AtomicI64);

impl Throttle {
    fn due(&self, now: time::OffsetDateTime) -> bool {
        let now = now.unix_timestamp();
        let last = self.0.load(Ordering::Relaxed);
        (last == 0 || now - last >= FULL_LOG_EVERY.as_secs() as i64)
            && self
                .0
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

fn build_sources(
    config: &Config,
    sinks: &SinkMap,
) -> Result<HashMap<String, Arc<Source>>, BuildError> {
    let mut out = HashMap::new();
    for sc in &config.sources {
        let scheme = sc.scheme();
        let mut keys = Vec::new();
        for (index, s) in sc.secrets.iter().enumerate() {
            keys.push(
                scheme
                    .prepare_key(s)
                    .map_err(|message| BuildError::Secret {
                        source_id: sc.id.clone(),
                        index,
                        message,
                    })?,
            );
        }
        let mut source_sinks = Vec::new();
        for id in &sc.sinks {
            // A sink the gateway runs, with the config's (perhaps reloaded) min_severity.
            let min = config
                .sinks
                .iter()
                .find(|s| &s.id == id)
                .map(|s| s.min_severity);
            let (true, Some(min)) = (sinks.contains_key(id), min) else {
                return Err(BuildError::MissingSink {
                    source_id: sc.id.clone(),
                    sink: id.clone(),
                });
            };
            source_sinks.push((id.clone(), min));
        }
        out.insert(
            sc.id.clone(),
            Arc::new(Source {
                config: sc.clone(),
                scheme,
                keys,
                limiter: sc.rate_limit.map(|rl| RateLimiter::direct(quota(rl))),
                sinks: source_sinks,
            }),
        );
    }
    Ok(out)
}

impl Gateway {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        replay: Arc<dyn ReplayStore>,
    ) -> Result<Self, BuildError> {
        let mut sinks = SinkMap::new();
        for sc in &config.sinks {
            sinks.insert(
                sc.id.clone(),
                SinkEntry::new(sink::build(sc, clock.clone())?, sc.clone()),
            );
        }
        let ids: Vec<String> = config.sinks.iter().map(|s| s.id.clone()).collect();
        let spool = Spool::open(&config.spool, &ids)?;
        let sources = build_sources(&config, &sinks)?;
        let client_limiter = ClientLimiter::new(
            config.server.client_rate_limit,
            config.server.max_tracked_clients,
        );
        Ok(Gateway {
            runtime: ArcSwap::from_pointee(Runtime {
                config: Arc::new(config),
                sources,
            }),
            clock,
            replay,
            sinks: ArcSwap::from_pointee(sinks),
            spool,
            client_limiter: ArcSwap::from_pointee(client_limiter),
            body_budget: BodyBudget::default(),
            draining: AtomicBool::new(false),
            full_logged: Throttle::default(),
        })
    }

    pub fn runtime(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.runtime.load()
    }

    pub fn config(&self) -> Arc<Config> {
        self.runtime.load().config.clone()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn client_limiter(&self) -> arc_swap::Guard<Arc<ClientLimiter>> {
        self.client_limiter.load()
    }

    /// The budget every request body being read takes its bytes from.
    pub fn body_budget(&self) -> &BodyBudget {
        &self.body_budget
    }

    pub fn replay_store(&self) -> &Arc<dyn ReplayStore> {
        &self.replay
    }

    /// The sinks configured now (a reload may add or remove some).
    pub fn sinks(&self) -> Arc<SinkMap> {
        self.sinks.load_full()
    }

    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// What the delivery engine runs: one entry per configured sink.
    pub fn sink_runtimes(&self) -> Vec<SinkRuntime> {
        self.sinks.load().values().map(|e| e.runtime()).collect()
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Swaps in a new config: sources, limits, timeouts and sinks. The per-client limiter is
    /// rebuilt when its settings changed (its clients start with full buckets); the listeners
    /// read `max_connections`, `admin.max_connections`, the timeouts and the sizes from the
    /// current config for every new connection and request.
    ///
    /// Sinks: a running sink whose settings changed gets a new sink built from them (its worker
    /// takes it and goes on from its cursor); a sink added is known to the spool before any
    /// source can name it, and the returned [`SinkChanges`] lists it for the engine to start;
    /// a sink removed is no longer named by any source once this returns, and is listed for the
    /// engine to stop (then [`Spool::remove_sink`] keeps what it had queued as orphans).
    ///
    /// What only a restart applies (listen addresses, the spool, the replay store) is named in
    /// the returned notes. The TLS setup is not here: [`crate::server::reload::Reloader`]
    /// swaps it beside this. Blocking: builds sinks and reads the added sinks' cursors.
    pub fn reload(&self, config: Config) -> Result<(Vec<String>, SinkChanges), BuildError> {
        let old = self.config();
        let mut notes = Vec::new();
        let mut restart = |changed: bool, what: &str| {
            if changed {
                notes.push(format!("{what} changed: takes effect at the next start"));
            }
        };
        restart(old.server.listen != config.server.listen, "server.listen");
        restart(old.admin.listen != config.admin.listen, "admin.listen");
        restart(
            old.spool.dir != config.spool.dir || old.spool.max_size != config.spool.max_size,
            "spool.dir or spool.max_size",
        );
        restart(
            old.replay.store != config.replay.store,
            "replay (store, redis_url, key_prefix or tls)",
        );
        restart(
            old.replay.max_entries != config.replay.max_entries,
            "replay.max_entries",
        );
        // Everything fallible first: the new and changed sinks, then the sources over them.
        let current = self.sinks.load_full();
        let mut next = SinkMap::new();
        let mut swaps = Vec::new();
        let mut added = Vec::new();
        for s in &config.sinks {
            match current.get(&s.id) {
                None => {
                    let entry = SinkEntry::new(sink::build(s, self.clock.clone())?, s.clone());
                    added.push(s.id.clone());
                    notes.push(format!("sinks.{} added: applied", s.id));
                    next.insert(s.id.clone(), entry);
                }
                Some(e) => {
                    if e.current().config != *s {
                        swaps.push((e.clone(), sink::build(s, self.clock.clone())?, s.clone()));
                        notes.push(format!(
                            "sinks.{} changed: applied; its queued events go on from where it was",
                            s.id
                        ));
                    }
                    next.insert(s.id.clone(), e.clone());
                }
            }
        }
        let mut removed: Vec<String> = current
            .keys()
            .filter(|id| !next.contains_key(*id))
            .cloned()
            .collect();
        removed.sort();
        let sources = build_sources(&config, &next)?;
        // The spool knows a new sink before any source names it, so none of its events is
        // ever counted as an orphan. On failure, those already added are taken back.
        for (i, id) in added.iter().enumerate() {
            if let Err(e) = self.spool.add_sink(id) {
                for done in &added[..i] {
                    self.spool.remove_sink(done);
                }
                return Err(e.into());
            }
        }
        for (entry, sink, config) in swaps {
            entry.slot.send_replace(Arc::new(SinkSlot { sink, config }));
        }
        // The running limiter was built from the running config's settings.
        let (rate, tracked) = (
            config.server.client_rate_limit,
            config.server.max_tracked_clients,
        );
        if old.server.client_rate_limit != rate || old.server.max_tracked_clients != tracked {
            self.client_limiter
                .store(Arc::new(ClientLimiter::new(rate, tracked)));
        }
        let changes = SinkChanges {
            added: added.iter().map(|id| next[id].runtime()).collect(),
            removed,
        };
        self.sinks.store(Arc::new(next));
        self.runtime.store(Arc::new(Runtime {
            config: Arc::new(config),
            sources,
        }));
        self.register_metrics();
        Ok((notes, changes))
    }

    /// Runs verification, the source limit, de-duplication and hand-off for one request.
    pub async fn ingest(&self, source_id: &str, req: Unverified) -> Outcome {
        let runtime = self.runtime.load_full();
        let Some(source) = runtime.sources.get(source_id).cloned() else {
            return Outcome::NotFound;
        };
        let now = self.clock.now();
        let verified = match verify::verify(&source.verifier(), req, now) {
            Ok(v) => v,
            Err(rejection) => return Outcome::Unauthorized(rejection),
        };
        let vendor = source.config.vendor.name();
        if let Some(h) = source
            .scheme
            .handshake(&ocsf::Input::of(vendor, &verified), &source.keys)
        {
            tracing::info!(
                source = source_id,
                vendor,
                "answered the vendor's endpoint check"
            );
            return Outcome::Handshake(h);
        }
        if let Some(l) = &source.limiter {
            if let Err(nu) = l.check() {
                return Outcome::RateLimited {
                    retry_after: nu.wait_time_from(DefaultClock::default().now()),
                };
            }
        }
        let origin = event::Origin {
            source_id: &source.config.id,
            vendor: source.config.vendor.name(),
            include_raw: source.config.include_raw,
        };
        // Counting the events is cheap: a request that would yield too many is refused before
        // its replay keys are reserved, so nothing is left to forget.
        if let Err(e) = ocsf::check(source.scheme.as_ref(), &origin, &verified) {
            metrics::counter!(names::TOO_MANY_EVENTS, "source" => source_id.to_string())
                .increment(1);
            tracing::warn!(source = source_id, error = %e, "request refused with 413");
            return Outcome::TooLarge;
        }
        // Remember ids at least as long as a timestamp stays inside the window.
        let ttl = runtime
            .config
            .replay
            .retention
            .max(source.config.tolerance.saturating_mul(2));
        // Reserve the keys while the event is spooled; confirm once it is durable. A copy that
        // arrives meanwhile is asked to retry rather than told "duplicate" for an event that
        // might never reach the disk.
        let pending_ttl = runtime.config.server.request_timeout + PENDING_MARGIN;
        match self
            .replay
            .check_and_insert(verified.replay_keys(), now, pending_ttl.min(ttl))
            .await
        {
            Ok(Seen::Duplicate) => return Outcome::Duplicate,
            Ok(Seen::InFlight) => {
                return Outcome::Unavailable {
                    retry_after: Duration::from_secs(5),
                }
            }
            Ok(Seen::New) => {}
            Ok(Seen::Full { live }) => {
                // Counted per request (siemgate_replay_full_total); logged at most once every
                // FULL_LOG_EVERY, so a flood cannot flood the logs too.
                if self.full_logged.due(self.clock.now()) {
                    tracing::warn!(
                        source = source_id,
                        live,
                        max_entries = runtime.config.replay.max_entries,
                        "replay store full of ids still within retention; new events get 503 until some expire. Raise replay.max_entries or use store = \"redis\""
                    );
                }
                return Outcome::Unavailable {
                    retry_after: Duration::from_secs(5),
                };
            }
            Err(e) => {
                metrics::counter!(names::REPLAY_ERRORS).increment(1);
                tracing::error!(source = source_id, error = %e, "replay store unavailable; answering 503");
                return Outcome::Unavailable {
                    retry_after: Duration::from_secs(5),
                };
            }
        }
        let events = ocsf::normalize(source.scheme.as_ref(), &origin, &verified);
        let received_ms = event::unix_ms(verified.received_at());
        if let Err(e) = self.hand_on(&source, &events, received_ms).await {
            match &e {
                AppendError::Full { .. } => {
                    tracing::warn!(source = source_id, error = %e, "spool full; answering 503")
                }
                _ => {
                    tracing::error!(source = source_id, error = %e, "events could not be spooled; answering 503")
                }
            }
            if let Err(e) = self.replay.forget(verified.replay_keys()).await {
                tracing::error!(source = source_id, error = %e, "could not forget replay keys; the sender's retry may be taken for a duplicate");
            }
            return Outcome::Unavailable {
                retry_after: spool::RETRY_AFTER,
            };
        }
        if let Err(e) = self
            .replay
            .confirm(verified.replay_keys(), self.clock.now(), ttl)
            .await
        {
            // The event is spooled; only its de-duplication is weaker: once the reservation
            // expires, a retry of it would be accepted again (a duplicate, never a loss).
            metrics::counter!(names::REPLAY_ERRORS).increment(1);
            tracing::warn!(source = source_id, error = %e, "could not confirm replay keys");
        }
        for e in &events {
            metrics::counter!(names::EVENTS, "source" => source.config.id.clone(), "class" => e.class_uid().to_string())
                .increment(1);
        }
        Outcome::Accepted {
            events: events.len(),
        }
    }

    /// Spools `events` for the source's sinks (each event only for the sinks whose
    /// `min_severity` it meets); returns once they are durable.
    async fn hand_on(
        &self,
        source: &Source,
        events: &[Event],
        received_ms: i64,
    ) -> Result<(), AppendError> {
        let mut news = Vec::with_capacity(events.len());
        for e in events {
            let sev = e.severity_id();
            let sinks: Vec<String> = source
                .sinks
                .iter()
                .filter(|(_, min)| min.is_none_or(|m| sev >= m))
                .map(|(id, _)| id.clone())
                .collect();
            if sinks.is_empty() {
                continue;
            }
            let event = serde_json::to_vec(e).map_err(|e| AppendError::Io(e.to_string()))?;
            news.push(NewEvent {
                sinks,
                received_ms,
                event,
            });
        }
        if news.is_empty() {
            return Ok(());
        }
        self.spool.append(news).await
    }

    /// Counts an outcome for `siemgate_requests_total` and, for failures,
    /// `siemgate_verify_failures_total`.
    pub fn record(&self, source_id: &str, outcome: &Outcome, started: Instant) {
        let source = source_id.to_string();
        metrics::counter!(names::REQUESTS, "source" => source.clone(), "outcome" => outcome.label()).increment(1);
        if let Outcome::Unauthorized(r) = outcome {
            metrics::counter!(names::VERIFY_FAILURES, "source" => source.clone(), "reason" => r.reason.as_str()).increment(1);
        }
        metrics::histogram!(names::REQUEST_DURATION, "source" => source)
            .record(started.elapsed().as_secs_f64());
    }

    /// Pre-registers every source's series at zero so dashboards see them before traffic.
    pub fn register_metrics(&self) {
        for id in self.runtime.load().sources.keys() {
            for o in [
                "accepted",
                "duplicate",
                "unauthorized",
                "rate_limited",
                "too_large",
                "unavailable",
                "handshake",
            ] {
                metrics::counter!(names::REQUESTS, "source" => id.clone(), "outcome" => o)
                    .absolute(0);
            }
            for r in Reason::ALL {
                metrics::counter!(names::VERIFY_FAILURES, "source" => id.clone(), "reason" => r.as_str()).absolute(0);
            }
        }
    }
}
