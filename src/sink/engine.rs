//! The delivery engine: one worker per sink.
//!
//! A worker reads its sink's events from the spool when what has been committed for the sink
//! can fill a batch or the batch times out (a commit with nothing for it never wakes it:
//! [`Arrivals`]). It batches them (by `batch.max_events`, `batch.max_bytes` and
//! `batch.timeout`), sends a batch, and acts on the answer:
//! - **delivered**: the sink's cursor moves past the batch;
//! - **retry** (transport error, timeout, 408, 429, 5xx): wait, then send the same batch again.
//!   The wait is the sink's `Retry-After` (even past `retry.max_backoff`, up to
//!   `retry.max_retry_after`) or else exponential backoff with full jitter from
//!   `retry.initial_backoff` up to `retry.max_backoff`;
//! - **too large** (413): split the batch in two and send each half;
//! - **rejected** (400 and other 4xx), a single event that is too large, or events still
//!   undelivered `retry.max_age` after they were received: dead letters, with the last error
//!   and the attempt count, each logged as a warning naming the sink and the reason;
//! - **unauthorized** (401, 403): kept and retried like a transient failure, but logged as an
//!   error and shown as an unhealthy sink, because only an operator can fix it;
//! - **partial** (Splunk's `invalid-event-number`): the events before the bad one are
//!   delivered, the bad one is a dead letter, and the rest are sent again.
//!
//! An event over the sink's per-event limit ([`Sink::event_size`]) is sent with its
//! `raw_data` cut to fit and flagged (see [`super::fit`]); only an event still too large without
//! it is a dead letter (the dead letter keeps it whole), for sinks whose service would refuse
//! or mangle it.
//!
//! Batches are cut to the smaller of the sink's `batch` settings and what the service takes in
//! one request ([`super::Limits`]). Before its first batch, a worker runs the sink's start-up
//! check (Splunk's health endpoint, an Entra ID token) and reports it as the sink's health.
//!
//! Only the batch being sent is in memory: a sink down for hours costs disk, not memory.
//!
//! A reload that changes a sink's settings (token, URL, headers, batch, retry) hands its
//! worker a new [`SinkSlot`]. The worker takes it before its next batch and before each
//! retry (a wait for a retry ends early for it), runs the new sink's start-up check, and goes
//! on from the same cursor: nothing queued is lost, and a batch that was being sent with the
//! old settings is sent again with the new ones, fitted to the new sink's limits.
//!
//! A reload that adds a sink starts a worker for it ([`Engine::add`]); one that removes a sink
//! stops its worker ([`Engine::remove`]) after the request in flight, if any (for at most
//! [`STOP_WAIT`]); what it had not delivered stays in the spool as the sink's orphaned events.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SinkConfig;
use super::{CheckState, Delivery, Health, Sink};
use crate::spool::{Arrivals, DeadLetter, Reader, Record, Spool};
use crate::telemetry::{names, Telemetry};
use crate::verify::Clock;

/// An event prepared for the sink in use.
enum Fitted {
    Whole(Record),
    /// Sent with `raw_data` cut; `whole` is kept to fit it again for another sink.
    Cut {
        sent: Record,
        whole: Record,
    },
    /// A dead letter, with the reason.
    Refused(Record, String),
}

/// How sending a batch's prepared events ended.
enum Sent {
    Done,
    Aborted,
    /// The settings changed before these were delivered: prepare them again.
    Reloaded(Vec<Record>),
}

/// What the workers are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Run,
    /// Deliver what is spooled, then stop (shutdown, after ingest has stopped).
    Flush,
    /// Stop now; what is not delivered stays in the spool.
    Abort,
}

/// A sink as built from its settings; swapped whole when a reload changes them.
pub struct SinkSlot {
    pub sink: Arc<dyn Sink>,
    pub config: SinkConfig,
}

/// One sink's worker, as the engine starts it: the sink's current slot (the gateway holds
/// the sender and sends a new slot on reload) and its health.
pub struct SinkRuntime {
    pub slot: watch::Receiver<Arc<SinkSlot>>,
    pub health: Arc<Health>,
}

/// How long a worker told to stop gets to finish the request it has in flight before it is
/// abandoned (its events stay in the spool and are sent again later).
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// The running workers, by sink id.
pub struct Engine {
    spool: Arc<Spool>,
    clock: Arc<dyn Clock>,
    tel: Arc<Telemetry>,
    workers: std::sync::Mutex<Workers>,
}

#[derive(Default)]
struct Workers {
    running: HashMap<String, WorkerHandle>,
    /// Set by shutdown: no worker starts after it.
    closed: bool,
}

struct WorkerHandle {
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Engine {
    /// Starts one worker per sink. Must be called within the Tokio runtime.
    pub fn start(
        spool: Arc<Spool>,
        clock: Arc<dyn Clock>,
        tel: Arc<Telemetry>,
        sinks: Vec<SinkRuntime>,
    ) -> Engine {
        let engine = Engine {
            spool,
            clock,
            tel,
            workers: Default::default(),
        };
        for s in sinks {
            engine.add(s);
        }
        engine
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, Workers> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a worker for a sink (the spool must know it: [`Spool::add_sink`]). Nothing
    /// happens when the sink already has one, or once the engine is shutting down (the
    /// sink's events stay in the spool for the next start).
    pub fn add(&self, mut s: SinkRuntime) {
        let current = s.slot.borrow_and_update().clone();
        let id = current.sink.id().to_string();
        let mut workers = self.workers();
        if workers.closed || workers.running.contains_key(&id) {
            return;
        }
        if current.sink.check().is_some() {
            s.health.set_check(CheckState::Pending);
        }
        let (mode, rx) = watch::channel(Mode::Run);
        let w = Worker {
            reader: Some(self.spool.reader(&id)),
            spool: self.spool.clone(),
            clock: self.clock.clone(),
            tel: self.tel.clone(),
            id: id.clone(),
            current,
            slot: s.slot,
            health: s.health,
            mode: rx,
            unacked: 0,
        };
        let task = tokio::spawn(w.run());
        workers.running.insert(id, WorkerHandle { mode, task });
    }

    /// Stops the worker of `sink` at its next step; a request in flight gets [`STOP_WAIT`] to
    /// finish. Returns once the worker has stopped: its cursor is persisted past everything
    /// it delivered (unless it had to be abandoned mid-request).
    pub async fn remove(&self, sink: &str) {
        let Some(w) = self.workers().running.remove(sink) else {
            return;
        };
        let _ = w.mode.send(Mode::Abort);
        let mut task = w.task;
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            tracing::warn!(sink, "the removed sink's request in flight did not finish in time; abandoned (its events stay in the spool)");
            task.abort();
            let _ = task.await;
        }
    }

    /// Lets the workers deliver what is spooled for up to `deadline`, then stops them.
    /// Returns whether everything was delivered in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        let running: Vec<WorkerHandle> = {
            let mut workers = self.workers();
            workers.closed = true;
            workers.running.drain().map(|(_, w)| w).collect()
        };
        for w in &running {
            let _ = w.mode.send(Mode::Flush);
        }
        let (modes, tasks): (Vec<_>, Vec<_>) =
            running.into_iter().map(|w| (w.mode, w.task)).unzip();
        let all = futures_join(tasks);
        tokio::pin!(all);
        match tokio::time::timeout(deadline, &mut all).await {
            Ok(()) => true,
            Err(_) => {
                for m in &modes {
                    let _ = m.send(Mode::Abort);
                }
                // Workers stop at their next step; a request in flight is left to finish
                // briefly, else it is abandoned (its events stay in the spool).
                let _ = tokio::time::timeout(STOP_WAIT, all).await;
                false
            }
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

struct Worker {
    id: String,
    /// The sink and settings in use: the last slot taken from `slot`.
    current: Arc<SinkSlot>,
    /// Where a reload sends new settings.
    slot: watch::Receiver<Arc<SinkSlot>>,
    health: Arc<Health>,
    spool: Arc<Spool>,
    clock: Arc<dyn Clock>,
    tel: Arc<Telemetry>,
    reader: Option<Reader>,
    mode: watch::Receiver<Mode>,
    /// Events done (delivered or dead-lettered) whose cursor update has not been persisted.
    unacked: u64,
}

impl Worker {
    /// `siemgate_sink_events_total{sink, outcome}`.
    fn events(&self, outcome: &str) -> metrics::Counter {
        self.tel.counter(
            names::SINK_EVENTS,
            &[("sink", &self.id), ("outcome", outcome)],
        )
    }
}

fn now_ms(clock: &dyn Clock) -> i64 {
    crate::event::unix_ms(clock.now())
}

impl Worker {
    async fn run(mut self) {
        self.check().await;
        let arrivals = self.spool.arrivals(&self.id);
        loop {
            let Some(batch) = self.next_batch(&arrivals).await else {
                break;
            };
            self.take_new_settings().await;
            let last = batch.last().map(|r| r.seq).unwrap_or(0);
            let n = batch.len() as u64;
            if !self.deliver(batch).await {
                break;
            }
            self.unacked += n;
            self.ack(last).await;
        }
        tracing::debug!(sink = %self.id, "sink worker stopped");
    }

    fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Takes the sink a reload built from new settings, if there is one, and runs its
    /// start-up check. The cursor stays: the next batch starts where the old sink stopped.
    /// True when it took one.
    async fn take_new_settings(&mut self) -> bool {
        if !self.slot.has_changed().unwrap_or(false) {
            return false;
        }
        self.current = self.slot.borrow_and_update().clone();
        tracing::info!(sink = %self.id, "sink settings reloaded; delivery goes on from the same place in the spool");
        self.health.ok();
        self.health.set_check(CheckState::None);
        self.check().await;
        true
    }

    /// The sink's start-up check, if it has one; deliveries go on whatever it says (they keep
    /// the health current from then on).
    async fn check(&mut self) {
        let current = self.current.clone();
        let Some(check) = current.sink.check() else {
            return;
        };
        self.health.set_check(CheckState::Pending);
        let limit = current.sink.max_send_time(current.config.timeout);
        let result = tokio::select! {
            r = tokio::time::timeout(limit, check) => r.unwrap_or_else(|_| Err(format!("no answer within {limit:?}"))),
            _ = self.mode.wait_for(|m| *m == Mode::Abort) => return,
        };
        match result {
            Ok(()) => {
                tracing::info!(sink = %self.id, "sink health check passed");
                self.health.set_check(CheckState::Passed);
                self.health.ok();
            }
            Err(e) => {
                tracing::error!(sink = %self.id, error = %e, "sink health check failed; events are spooled and delivery will be tried anyway");
                self.health.set_check(CheckState::Failed);
                self.health.failing(&format!("health check: {e}"));
            }
        }
    }

    /// The next batch; `None` when the worker should stop.
    async fn next_batch(&mut self, arrivals: &Arrivals) -> Option<Vec<Record>> {
        let config = &self.current.config;
        let limits = self.current.sink.limits();
        let max_events = limits
            .max_events
            .map_or(config.batch.max_events, |m| m.min(config.batch.max_events))
            .max(1);
        let max_bytes = limits
            .max_bytes
            .map_or(config.batch.max_bytes, |m| m.min(config.batch.max_bytes))
            .max(1);
        let mut batch: Vec<Record> = Vec::new();
        let mut bytes = 0u64;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            // Counted before the read, so whatever arrives during it counts towards the wait.
            let seen = arrivals.now();
            let mut reader = self
                .reader
                .take()
                .expect("the reader is put back after each read");
            let room = max_events - batch.len();
            let room_bytes = max_bytes.saturating_sub(bytes);
            let first = batch.is_empty();
            let (reader, got, holding) = tokio::task::spawn_blocking(move || {
                // The first read of a batch takes at least one event, however large (the sink
                // fits it); later ones only what fits, so a batch keeps to the sink's limit.
                let got = if first {
                    reader.read(room, room_bytes)
                } else {
                    reader.read_more(room, room_bytes)
                };
                let holding = reader.holding();
                (reader, got, holding)
            })
            .await
            .expect("spool reads do not panic");
            self.reader = Some(reader);
            match got {
                Ok(recs) => {
                    for r in recs {
                        bytes += r.event.len() as u64;
                        batch.push(r);
                    }
                }
                Err(e) => {
                    tracing::error!(sink = %self.id, error = %e, "cannot read the spool");
                    self.health.failing(&format!("spool read: {e}"));
                    if !self.pause(Duration::from_secs(1)).await {
                        return None;
                    }
                    continue;
                }
            }
            // Full: by count, by bytes, or the next durable event does not fit (the reader
            // holds it for the next batch). A read stops only at one of these or at the end of
            // what is durable, so a batch that is not full has caught up with the spool.
            if batch.len() >= max_events || bytes >= max_bytes || holding {
                return Some(batch);
            }
            match self.mode() {
                Mode::Abort => return None,
                Mode::Flush => return (!batch.is_empty()).then_some(batch),
                Mode::Run => {}
            }
            if !batch.is_empty() && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + self.current.config.batch.timeout);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Some(batch);
            }
            // Read again when what has arrived since can fill the batch (an empty one: when
            // anything arrives), or at the batch timeout; not after every commit.
            let (want_events, want_bytes) = if batch.is_empty() {
                (1, 1)
            } else {
                ((max_events - batch.len()) as u64, max_bytes - bytes)
            };
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = arrivals.wait(seen, want_events, want_bytes) => {},
                _ = sleep => {},
                _ = self.mode.changed() => {},
            }
        }
    }

    /// Waits `d` unless told to abort; false when aborted.
    async fn pause(&mut self, d: Duration) -> bool {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            if self.mode() == Mode::Abort {
                return false;
            }
            tokio::select! {
                _ = &mut sleep => return true,
                r = self.mode.changed() => if r.is_err() { return false },
                // New settings (a fixed token, say) are worth trying at once.
                Ok(()) = self.slot.changed() => {
                    self.slot.mark_changed();
                    return true;
                }
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let r = &self.current.config.retry;
        let cap = r
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(r.max_backoff);
        // Full jitter: anywhere between zero and the cap.
        let nanos = cap.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(rand::random_range(0..=nanos))
    }

    /// Delivers or dead-letters every event of `batch`; false when aborted first. Events are
    /// fitted to the sink in use; when a reload swaps the sink before they are delivered, what
    /// is left is fitted again (from the whole events) for the new one.
    async fn deliver(&mut self, batch: Vec<Record>) -> bool {
        let mut todo = batch;
        loop {
            // The whole events of those sent with raw_data cut, by seq.
            let mut whole = HashMap::new();
            let mut ok = Vec::with_capacity(todo.len());
            for r in todo {
                match self.fit(r) {
                    Fitted::Whole(r) => ok.push(r),
                    Fitted::Cut { sent, whole: w } => {
                        whole.insert(w.seq, w);
                        ok.push(sent);
                    }
                    // The dead letter keeps the event whole, raw_data and all.
                    Fitted::Refused(r, reason) => {
                        if !self.dead_letter(vec![r], &reason, 0).await {
                            return false;
                        }
                    }
                }
            }
            match self.send_all(ok).await {
                Sent::Done => return true,
                Sent::Aborted => return false,
                Sent::Reloaded(rest) => {
                    todo = rest
                        .into_iter()
                        .map(|r| whole.remove(&r.seq).unwrap_or(r))
                        .collect();
                }
            }
        }
    }

    /// Sends `ok` (fitted to the sink in use), splitting and retrying as the answers say.
    async fn send_all(&mut self, ok: Vec<Record>) -> Sent {
        let mut queue = VecDeque::new();
        if !ok.is_empty() {
            queue.push_back(ok);
        }
        while let Some(part) = queue.pop_front() {
            let mut attempt = 0u32;
            loop {
                if self.mode() == Mode::Abort {
                    return Sent::Aborted;
                }
                if self.take_new_settings().await {
                    // Fitted to the old sink: the rest is prepared again for the new one.
                    let rest = std::iter::once(part).chain(queue).flatten().collect();
                    return Sent::Reloaded(rest);
                }
                attempt += 1;
                let started = Instant::now();
                let current = self.current.clone();
                let limit = current.sink.max_send_time(current.config.timeout);
                let result = match tokio::time::timeout(limit, current.sink.send(&part)).await {
                    Ok(d) => d,
                    Err(_) => Delivery::Retry {
                        error: format!("no answer within {limit:?}"),
                        after: None,
                    },
                };
                self.tel
                    .histogram(names::SINK_REQUEST_DURATION, &[("sink", &self.id)])
                    .record(started.elapsed().as_secs_f64());
                self.tel
                    .counter(
                        names::SINK_REQUESTS,
                        &[("sink", &self.id), ("result", result.label())],
                    )
                    .increment(1);
                let n = part.len() as u64;
                let (error, after) = match result {
                    Delivery::Delivered => {
                        self.events("delivered").increment(n);
                        self.health.ok();
                        break;
                    }
                    Delivery::Partial { accepted, error } if accepted < part.len() => {
                        tracing::warn!(sink = %self.id, events = n, accepted, %error, "the sink took part of the batch and refused one event; it is a dead letter, the rest is sent again");
                        self.health.ok();
                        let mut rest = part;
                        let mut refused = rest.split_off(accepted);
                        self.events("delivered").increment(rest.len() as u64);
                        let after = refused.split_off(1);
                        if !self.dead_letter(refused, &error, attempt).await {
                            return Sent::Aborted;
                        }
                        if !after.is_empty() {
                            queue.push_front(after);
                        }
                        break;
                    }
                    Delivery::TooLarge { error } if part.len() > 1 => {
                        tracing::info!(sink = %self.id, events = n, %error, "batch too large for the sink; splitting it");
                        let mut first = part;
                        let second = first.split_off(first.len() / 2);
                        queue.push_front(second);
                        queue.push_front(first);
                        break;
                    }
                    Delivery::TooLarge { error }
                    | Delivery::Rejected { error }
                    | Delivery::Partial { error, .. } => {
                        self.health.ok();
                        if !self.dead_letter(part, &error, attempt).await {
                            return Sent::Aborted;
                        }
                        break;
                    }
                    Delivery::Retry { error, after } => {
                        tracing::warn!(sink = %self.id, events = n, attempts = attempt, %error, "delivery failed; will retry");
                        (error, after)
                    }
                    Delivery::Unauthorized { error } => {
                        tracing::error!(sink = %self.id, events = n, attempts = attempt, %error, "the sink refused siemgate's credentials; events are kept and retried until the credentials are fixed");
                        (error, None)
                    }
                };
                // Kept for another attempt, unless the events are past retry.max_age.
                if !self.retry_or_expire(&part, &error, after, attempt).await {
                    return Sent::Aborted;
                }
                if self.expired(&part) {
                    let why = format!(
                        "undelivered after retry.max_age ({:?}); last error: {error}",
                        self.current.config.retry.max_age
                    );
                    if !self.dead_letter(part, &why, attempt).await {
                        return Sent::Aborted;
                    }
                    break;
                }
            }
        }
        Sent::Done
    }

    /// The event as it can go to the sink in use: whole, with `raw_data` cut to the sink's
    /// per-event limit, or refused (with the reason) when it cannot be sent at all. The sink
    /// builds the event's record once to measure it; cutting `raw_data` does not change what
    /// the sink adds around the event, so the cut event's size is known without building again.
    fn fit(&self, r: Record) -> Fitted {
        let size = match self.current.sink.event_size(&r) {
            Ok(Some(size)) if size.encoded > size.limit => size,
            Ok(_) => return Fitted::Whole(r),
            Err(reason) => return Fitted::Refused(r, reason),
        };
        let around = size.encoded.saturating_sub(r.event.len());
        let cut = super::fit::cut_raw_data(&r.event, size.limit.saturating_sub(around));
        let encoded = cut.as_ref().map_or(size.encoded, |c| around + c.len());
        if let (Some(why), true) = (size.refuse, encoded > size.limit) {
            let reason = format!(
                "the event is {encoded} bytes as the {} sink sends it{}; {why}",
                self.current.sink.type_name(),
                if cut.is_some() {
                    " without raw_data"
                } else {
                    ""
                }
            );
            return Fitted::Refused(r, reason);
        }
        let Some(event) = cut else {
            return Fitted::Whole(r);
        };
        self.tel
            .counter(names::SINK_TRUNCATED_EVENTS, &[("sink", &self.id)])
            .increment(1);
        tracing::info!(sink = %self.id, bytes = r.event.len(), sent = event.len(), "event over the sink's per-event limit; sending it with raw_data cut (unmapped.siemgate.raw_data_truncated)");
        Fitted::Cut {
            sent: Record {
                seq: r.seq,
                received_ms: r.received_ms,
                sinks: r.sinks.clone(),
                head: r.head.clone(),
                event: event.into(),
            },
            whole: r,
        }
    }

    fn expired(&self, part: &[Record]) -> bool {
        let oldest = part.iter().map(|r| r.received_ms).min().unwrap_or(i64::MAX);
        let age_ms = now_ms(self.clock.as_ref()).saturating_sub(oldest);
        age_ms
            > self
                .current
                .config
                .retry
                .max_age
                .as_millis()
                .min(i64::MAX as u128) as i64
    }

    /// Counts the retry and waits before the next attempt (unless the events have expired);
    /// false when aborted.
    async fn retry_or_expire(
        &mut self,
        part: &[Record],
        error: &str,
        after: Option<Duration>,
        attempt: u32,
    ) -> bool {
        self.health.failing(error);
        if self.expired(part) {
            return true;
        }
        self.events("retried").increment(part.len() as u64);
        let r = &self.current.config.retry;
        let wait = match after {
            // The SIEM said how long: that, even past `max_backoff` (it knows its load), up
            // to `max_retry_after`; never sooner than the first backoff (at most a second),
            // so a `Retry-After: 0` answered again and again is not a busy loop.
            Some(a) => a
                .min(r.max_retry_after)
                .max(r.initial_backoff.min(Duration::from_secs(1))),
            None => self.backoff(attempt),
        };
        self.pause(wait).await
    }

    /// Writes dead letters durably; retries the write until it succeeds or the worker aborts.
    /// Every dead letter, whatever the reason, is logged as a warning with the sink and the
    /// reason (never the event).
    async fn dead_letter(&mut self, part: Vec<Record>, error: &str, attempts: u32) -> bool {
        let now = now_ms(self.clock.as_ref());
        let n = part.len() as u64;
        let first_seq = part.first().map_or(0, |r| r.seq);
        tracing::warn!(sink = %self.id, events = n, attempts, first_seq, reason = %error, "events are dead letters now (see GET /v1/dlq)");
        let letters: Arc<Vec<DeadLetter>> = Arc::new(
            part.into_iter()
                .map(|r| DeadLetter {
                    seq: r.seq,
                    received_ms: r.received_ms,
                    dead_lettered_ms: now,
                    attempts,
                    error: error.to_string(),
                    event: r.event.to_vec(),
                })
                .collect(),
        );
        loop {
            let spool = self.spool.clone();
            let id = self.id.clone();
            let l = letters.clone();
            let r = tokio::task::spawn_blocking(move || spool.dead_letter(&id, &l)).await;
            match r {
                Ok(Ok(())) => {
                    self.events("dead_lettered").increment(n);
                    return true;
                }
                Ok(Err(e)) => {
                    tracing::error!(sink = %self.id, error = %e, "cannot write dead letters; the events stay in the spool");
                }
                Err(e) => tracing::error!(sink = %self.id, error = %e, "dead-letter task failed"),
            }
            if !self.pause(Duration::from_secs(1)).await {
                return false;
            }
        }
    }

    /// Persists the cursor past `last`. A failure is logged and retried with the next batch:
    /// until then the events would be sent again after a restart, never lost.
    async fn ack(&mut self, last: u64) {
        let spool = self.spool.clone();
        let id = self.id.clone();
        let done = self.unacked;
        let r = tokio::task::spawn_blocking(move || spool.ack(&id, last, done)).await;
        match r {
            Ok(Ok(())) => self.unacked = 0,
            Ok(Err(e)) => {
                tracing::error!(sink = %self.id, error = %e, "cannot persist the sink's spool cursor")
            }
            Err(e) => tracing::error!(sink = %self.id, error = %e, "cursor task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::BoxFuture;
    use crate::spool::{NewEvent, SpoolConfig};
    use crate::telemetry::Telemetry;
    use crate::verify::ManualClock;
    use std::sync::Mutex;
    use tokio::sync::mpsc::UnboundedReceiver;

    /// What the test sink saw of one send: when, how many events, how many bytes.
    type Sent = (tokio::time::Instant, usize, usize);

    /// A sink that gives the answers it is told, in order (then "delivered"), and hands the
    /// test each send as it comes.
    struct Scripted {
        answers: Mutex<VecDeque<Delivery>>,
        sent: tokio::sync::mpsc::UnboundedSender<Sent>,
    }

    impl Scripted {
        fn new(answers: Vec<Delivery>) -> (Arc<Scripted>, UnboundedReceiver<Sent>) {
            let (sent, rx) = tokio::sync::mpsc::unbounded_channel();
            let answers = Mutex::new(answers.into());
            (Arc::new(Scripted { answers, sent }), rx)
        }
    }

    impl Sink for Scripted {
        fn id(&self) -> &str {
            "s"
        }

        fn type_name(&self) -> &'static str {
            "scripted"
        }

        fn send<'a>(&'a self, events: &'a [Record]) -> BoxFuture<'a, Delivery> {
            let bytes = events.iter().map(|r| r.event.len()).sum();
            let _ = self
                .sent
                .send((tokio::time::Instant::now(), events.len(), bytes));
            let answer = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Delivery::Delivered);
            Box::pin(async move { answer })
        }
    }

    fn sink_config(batch: &str) -> SinkConfig {
        let text = format!(
            "[[sources]]\nid = \"src\"\nvendor = \"github\"\nsecrets = [\"x\"]\nsinks = [\"s\"]\n\
             [[sinks]]\nid = \"s\"\ntype = \"file\"\npath = \"unused.jsonl\"\n{batch}\n\
             retry = {{ initial_backoff = \"1s\", max_backoff = \"60s\", max_age = \"1d\" }}\n"
        );
        let c = crate::config::parse(&text, std::path::Path::new("/tmp"), &|_| None).unwrap();
        c.sinks[0].clone()
    }

    /// A spool in a temporary directory holding `events`, and an engine delivering them to a
    /// [`Scripted`] sink "s" that gives `answers`, batched as `batch` says.
    struct Rig {
        spool: Arc<Spool>,
        engine: Engine,
        /// Each send, as the sink saw it.
        sends: UnboundedReceiver<Sent>,
        _slot: watch::Sender<Arc<SinkSlot>>,
        _dir: tempfile::TempDir,
    }

    async fn rig(events: Vec<NewEvent>, answers: Vec<Delivery>, batch: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let tel = Telemetry::new();
        let spool_cfg = SpoolConfig {
            dir: dir.path().to_path_buf(),
            max_size: 1 << 20,
            flush_timeout: Duration::from_secs(1),
        };
        let spool = Spool::open(
            &spool_cfg,
            &["s".to_string()],
            &tel,
            &mut crate::spool::NoKeys,
        )
        .unwrap();
        spool.append(events).await.unwrap();
        let (sink, sends) = Scripted::new(answers);
        let (slot, rx) = watch::channel(Arc::new(SinkSlot {
            sink,
            config: sink_config(batch),
        }));
        let engine = Engine::start(
            spool.clone(),
            Arc::new(ManualClock::at_unix(1_700_000_000)),
            tel.clone(),
            vec![SinkRuntime {
                slot: rx,
                health: crate::sink::Health::new("s", &tel),
            }],
        );
        Rig {
            spool,
            engine,
            sends,
            _slot: slot,
            _dir: dir,
        }
    }

    fn event(sinks: &[&str], len: usize) -> NewEvent {
        NewEvent {
            sinks: sinks.iter().map(|s| s.to_string()).collect(),
            received_ms: 1_700_000_000_000,
            head: Default::default(),
            event: format!("{{\"x\":\"{}\"}}", "a".repeat(len - 8)).into_bytes(),
        }
    }

    /// A backlog (a sink back after an outage) goes out in full batches, one after another:
    /// a batch that the next event does not fit is full, and is not held for `batch.timeout`
    /// (an hour here) waiting for commits that are not coming. No batch passes `max_bytes`.
    #[tokio::test]
    async fn a_backlog_goes_out_in_full_batches_without_waiting_for_the_batch_timeout() {
        // Nine 1000-byte events; 2500 bytes a batch: four batches of two are full.
        let mut r = rig(
            (0..9).map(|_| event(&["s"], 1000)).collect(),
            Vec::new(),
            "batch = { max_events = 100, max_bytes = 2500, timeout = \"1h\" }",
        )
        .await;
        for i in 0..4 {
            // A bound for a failing run only: the batches come at once or after an hour.
            let b = tokio::time::timeout(Duration::from_secs(60), r.sends.recv())
                .await
                .unwrap_or_else(|_| panic!("batch {i} was held back"));
            assert_eq!(
                b.map(|(_, n, bytes)| (n, bytes)),
                Some((2, 2000)),
                "batch {i}"
            );
        }
        // The last event is a batch being filled: it waits for more or the timeout.
        assert!(r.sends.try_recv().is_err());
        r.engine.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            r.sends.recv().await.map(|(_, n, bytes)| (n, bytes)),
            Some((1, 1000)),
            "flushed at shutdown"
        );
        r.spool.close();
    }

    /// The waits between attempts run on Tokio's clock, paused here: the SIEM's `Retry-After`
    /// is waited exactly, even past `retry.max_backoff`, up to `retry.max_retry_after`, with no
    /// real time passing.
    #[tokio::test(start_paused = true)]
    async fn a_retry_waits_what_the_siem_asks_even_past_max_backoff() {
        let retry = |error: &str, after: u64| Delivery::Retry {
            error: error.into(),
            after: Some(Duration::from_secs(after)),
        };
        let mut r = rig(
            vec![event(&["s"], 8)],
            vec![
                retry("HTTP 429", 30),
                retry("HTTP 503", 600),
                retry("HTTP 503", 86_400),
                retry("HTTP 503", 0),
            ],
            "batch = { timeout = \"1ms\" }",
        )
        .await;
        r.spool.wait_idle().await;
        let mut sent = Vec::new();
        while let Ok((at, _, _)) = r.sends.try_recv() {
            sent.push(at);
        }
        assert_eq!(sent.len(), 5, "four retries, then delivered");
        let waits: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(
            waits,
            [30, 600, 3600, 1].map(Duration::from_secs),
            "Retry-After 30 and 600 waited exactly (600 is past max_backoff = 60s), a day \
             capped at max_retry_after (1h by default), 0 raised to initial_backoff (1s)"
        );
        r.engine.shutdown(Duration::from_secs(1)).await;
        r.spool.close();
    }
}
