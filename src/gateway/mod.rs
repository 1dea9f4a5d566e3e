//! The gateway's state and the ingest pipeline, apart from HTTP: given a source id and an
//! unverified request, [`Gateway::ingest`] runs steps 5-9 of the lifecycle (see the crate docs)
//! as a list of phases and says what happened as an [`Outcome`]. The server maps outcomes to
//! HTTP in one place.
//!
//! The rooms: [`sources`] (a configured source, ready to verify, and the [`Runtime`] a reload
//! swaps whole: requests in flight keep the one they started with), [`sinks`] (the configured
//! sinks and their health), [`limiter`] (per client, per source, on the injected clock),
//! [`reload`] (what a reload changes and what it names as needing a restart) and [`budget`]
//! (the bytes of request bodies being read).

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::event::{self, Event};
use crate::ocsf;
use crate::replay::{ReplayStore, Seen};
use crate::sink::{self, engine::SinkRuntime};
use crate::spool::{self, AppendError, NewEvent, Spool};
use crate::telemetry::{names, Telemetry};
use crate::verify::{self, Clock, Rejection, Unverified, Verified};

pub mod budget;
pub mod limiter;
pub mod reload;
pub mod sinks;
pub mod sources;

pub use budget::{BodyBudget, Reservation};
pub use limiter::ClientLimiter;
pub use sinks::{SinkChanges, SinkEntry, SinkMap};
use sources::prepare_sources;
pub use sources::{Runtime, Source};

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

    /// The labels of the outcomes a configured source's requests end in (every one but
    /// `not_found`, which names no source): the series each source registers at zero.
    pub const SOURCE_LABELS: [&'static str; 7] = [
        "accepted",
        "duplicate",
        "unauthorized",
        "rate_limited",
        "too_large",
        "unavailable",
        "handshake",
    ];
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
    tel: Arc<Telemetry>,
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

/// A request's replay keys, with how long to hold them: reserved for the request's life,
/// confirmed for the retention.
struct Reserved<'a> {
    keys: &'a [crate::replay::ReplayKey],
    pending_ttl: Duration,
    ttl: Duration,
}

impl<'a> Reserved<'a> {
    fn new(config: &Config, source: &Source, verified: &'a Verified) -> Self {
        // Remember ids at least as long as a timestamp stays inside the window.
        let ttl = config
            .replay
            .retention
            .max(source.config.tolerance.saturating_mul(2));
        let pending_ttl = (config.server.request_timeout + PENDING_MARGIN).min(ttl);
        Reserved {
            keys: verified.replay_keys(),
            pending_ttl,
            ttl,
        }
    }
}

impl Gateway {
    pub fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        replay: Arc<dyn ReplayStore>,
    ) -> Result<Self, BuildError> {
        let tel = Telemetry::new();
        let mut sinks = SinkMap::new();
        for sc in &config.sinks {
            sinks.insert(
                sc.id.clone(),
                SinkEntry::new(sink::build(sc, clock.clone(), &tel)?, sc.clone(), &tel),
            );
        }
        let ids: Vec<String> = config.sinks.iter().map(|s| s.id.clone()).collect();
        let spool = Spool::open(
            &config.spool,
            &ids,
            &tel,
            &mut *replay.start_keys(clock.now()),
        )?;
        replay.attach(&spool, clock.now());
        let sources = prepare_sources(&config, &clock)?.register(&tel);
        let client_limiter = ClientLimiter::new(
            config.server.client_rate_limit,
            config.server.max_tracked_clients,
            clock.clone(),
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
            body_budget: BodyBudget::new(&tel),
            draining: AtomicBool::new(false),
            full_logged: Throttle::default(),
            tel,
        })
    }

    pub fn runtime(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.runtime.load()
    }

    /// The runtime in force now, to hold for a whole request.
    pub fn runtime_full(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.runtime.load().config.clone()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// This gateway's metrics.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.tel
    }

    /// The metrics in Prometheus text, with the series read at scrape time (the replay
    /// store's size, the process's resident memory and CPU time, log lines dropped) brought
    /// up to date.
    pub fn render_metrics(&self) -> String {
        self.tel
            .counter(names::LOG_LINES_DROPPED, &[])
            .absolute(crate::telemetry::dropped_log_lines());
        if let Some(rss) = crate::telemetry::resident_bytes() {
            self.tel
                .gauge(names::PROCESS_RESIDENT_MEMORY, &[])
                .set(rss as f64);
        }
        if let Some(cpu) = crate::telemetry::process_cpu_seconds(None) {
            self.tel.gauge(names::PROCESS_CPU_SECONDS, &[]).set(cpu);
        }
        if let Some(size) = self.replay.size() {
            self.tel
                .gauge(names::REPLAY_KEYS, &[])
                .set(size.keys as f64);
            self.tel
                .gauge(names::REPLAY_BYTES, &[])
                .set(size.bytes as f64);
            if let Some(disk) = size.disk_bytes {
                self.tel
                    .gauge(names::REPLAY_KEY_LOG_BYTES, &[])
                    .set(disk as f64);
            }
        }
        self.tel.render()
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

    /// Steps 5-9 of the lifecycle (see the crate docs) for one request to `source_id`, in
    /// order; each phase either passes the request on or decides the outcome.
    pub async fn ingest(&self, source_id: &str, req: Unverified) -> Outcome {
        let runtime = self.runtime_full();
        match runtime.sources.get(source_id) {
            Some(source) => self.ingest_to(&runtime, source, req).await,
            None => Outcome::NotFound,
        }
    }

    /// [`Gateway::ingest`] for a source the caller has already looked up in `runtime` (the
    /// ingest handler does, to route the request): no second lookup, and one config
    /// throughout.
    pub async fn ingest_to(&self, runtime: &Runtime, source: &Source, req: Unverified) -> Outcome {
        self.pipeline(runtime, source, req)
            .await
            .unwrap_or_else(|o| o)
    }

    async fn pipeline(
        &self,
        runtime: &Runtime,
        source: &Source,
        req: Unverified,
    ) -> Result<Outcome, Outcome> {
        let source_id = source.config.id.as_str();
        let now = self.clock.now();
        // 5. Verify: the proof, the keys, the window. Then a verified vendor handshake.
        let verified =
            verify::verify(&source.verifier(), req, now).map_err(Outcome::Unauthorized)?;
        self.handshake(source, &verified)?;
        // 6. The source's rate limit, then the events-per-request bound.
        source
            .limit()
            .map_err(|retry_after| Outcome::RateLimited { retry_after })?;
        let origin = event::Origin {
            source_id: &source.config.id,
            vendor: source.config.vendor.name(),
            include_raw: source.config.include_raw,
        };
        self.bound_events(source, &origin, &verified)?;
        // 7. Reserve the replay keys.
        let keys = Reserved::new(&runtime.config, source, &verified);
        self.reserve(&runtime.config, source_id, &keys, now).await?;
        // 8. Normalize. What the metrics need is taken now: the events go to the spool whole.
        let events = ocsf::normalize(source.scheme.as_ref(), &origin, &verified);
        let counted: Vec<(u32, bool)> = events
            .iter()
            .map(|e| (e.class_uid(), e.normalize_error()))
            .collect();
        // 9. Spool (durably), then confirm the keys.
        self.spool_events(source, events, &verified, &keys).await?;
        self.confirm(source_id, &keys).await;
        for (class, normalize_error) in &counted {
            source.count_event(&self.tel, *class);
            if *normalize_error {
                self.tel
                    .counter(names::NORMALIZE_ERRORS, &[("source", source_id)])
                    .increment(1);
            }
        }
        Ok(Outcome::Accepted {
            events: counted.len(),
        })
    }

    /// A vendor's endpoint check that verified (Slack, Zoom, Okta) is answered here and
    /// never spooled.
    fn handshake(&self, source: &Source, verified: &Verified) -> Result<(), Outcome> {
        let vendor = source.config.vendor.name();
        match source
            .scheme
            .handshake(&ocsf::Input::of(vendor, verified), &source.keys)
        {
            Some(h) => {
                tracing::info!(
                    source = %source.config.id,
                    vendor,
                    "answered the vendor's endpoint check"
                );
                Err(Outcome::Handshake(h))
            }
            None => Ok(()),
        }
    }

    /// Counting the events is cheap: a request that would yield too many is refused before
    /// its replay keys are reserved, so nothing is left to forget.
    fn bound_events(
        &self,
        source: &Source,
        origin: &event::Origin<'_>,
        verified: &Verified,
    ) -> Result<(), Outcome> {
        ocsf::check(source.scheme.as_ref(), origin, verified).map_err(|e| {
            self.tel
                .counter(names::TOO_MANY_EVENTS, &[("source", &source.config.id)])
                .increment(1);
            tracing::warn!(source = %source.config.id, error = %e, "request refused with 413");
            Outcome::TooLarge
        })
    }

    /// Reserves the request's replay keys while its events are spooled. A copy that arrives
    /// meanwhile is asked to retry rather than told "duplicate" for an event that might never
    /// reach the disk; a known key is a duplicate; a full or failing store is `503`.
    async fn reserve(
        &self,
        config: &Config,
        source_id: &str,
        keys: &Reserved<'_>,
        now: time::OffsetDateTime,
    ) -> Result<(), Outcome> {
        let busy = Outcome::Unavailable {
            retry_after: Duration::from_secs(5),
        };
        match self
            .replay
            .check_and_insert(keys.keys, now, keys.pending_ttl)
            .await
        {
            Ok(Seen::New) => Ok(()),
            Ok(Seen::Duplicate) => Err(Outcome::Duplicate),
            Ok(Seen::InFlight) => Err(busy),
            Ok(Seen::Full { live }) => {
                self.tel.counter(names::REPLAY_FULL, &[]).increment(1);
                // Counted per request (siemgate_replay_full_total); logged at most once every
                // FULL_LOG_EVERY, so a flood cannot flood the logs too.
                if self.full_logged.due(self.clock.now()) {
                    tracing::warn!(
                        source = source_id,
                        live,
                        max_entries = config.replay.max_entries,
                        "replay store full of ids still within retention; new events get 503 until some expire. Raise replay.max_entries or use store = \"redis\""
                    );
                }
                Err(busy)
            }
            Err(e) => {
                self.tel.counter(names::REPLAY_ERRORS, &[]).increment(1);
                tracing::error!(source = source_id, error = %e, "replay store unavailable; answering 503");
                Err(busy)
            }
        }
    }

    /// Spools the events; returns once they are durable. When the spool refuses them, the
    /// keys are forgotten, so the sender's retry is not taken for a duplicate.
    async fn spool_events(
        &self,
        source: &Source,
        events: Vec<Event>,
        verified: &Verified,
        keys: &Reserved<'_>,
    ) -> Result<(), Outcome> {
        let source_id = &source.config.id;
        let received_ms = event::unix_ms(verified.received_at());
        let Err(e) = self.hand_on(source, events, received_ms, keys).await else {
            return Ok(());
        };
        match &e {
            AppendError::Full { .. } => {
                tracing::warn!(source = %source_id, error = %e, "spool full; answering 503")
            }
            _ => {
                tracing::error!(source = %source_id, error = %e, "events could not be spooled; answering 503")
            }
        }
        if let Err(e) = self.replay.forget(keys.keys).await {
            tracing::error!(source = %source_id, error = %e, "could not forget replay keys; the sender's retry may be taken for a duplicate");
        }
        Err(Outcome::Unavailable {
            retry_after: spool::RETRY_AFTER,
        })
    }

    /// Confirms the keys of spooled events for the full retention. On failure the event is
    /// spooled all the same; only its de-duplication is weaker: once the reservation expires,
    /// a retry of it would be accepted again (a duplicate, never a loss).
    async fn confirm(&self, source_id: &str, keys: &Reserved<'_>) {
        if let Err(e) = self
            .replay
            .confirm(keys.keys, self.clock.now(), keys.ttl)
            .await
        {
            self.tel.counter(names::REPLAY_ERRORS, &[]).increment(1);
            tracing::warn!(source = source_id, error = %e, "could not confirm replay keys");
        }
    }

    /// Spools `events` for the source's sinks (each event only for the sinks whose
    /// `min_severity` it meets); returns once they are durable.
    async fn hand_on(
        &self,
        source: &Source,
        events: Vec<Event>,
        received_ms: i64,
        keys: &Reserved<'_>,
    ) -> Result<(), AppendError> {
        let mut news = Vec::with_capacity(events.len());
        for e in events {
            let sinks = source.sinks_for(e.severity_id());
            if sinks.is_empty() {
                continue;
            }
            let event = e.to_json().map_err(|e| AppendError::Io(e.to_string()))?;
            news.push(NewEvent {
                sinks,
                received_ms,
                head: e.head,
                event,
            });
        }
        if news.is_empty() {
            return Ok(());
        }
        // A store that keeps its keys in the spool gets them in the same group commit.
        let entries = self
            .replay
            .spooled_keys(keys.keys, self.clock.now(), keys.ttl);
        self.spool.append_with_keys(news, entries).await
    }

    /// Counts an outcome for `siemgate_requests_total` and, for failures,
    /// `siemgate_verify_failures_total`.
    pub fn record(&self, source: &Source, outcome: &Outcome, started: Instant) {
        let failure = match outcome {
            Outcome::Unauthorized(r) => Some(r.reason),
            _ => None,
        };
        source.count_request(
            &self.tel,
            outcome.label(),
            failure,
            started.elapsed().as_secs_f64(),
        );
    }
}
