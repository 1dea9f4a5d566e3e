//! One listener's accept loop and each connection's life, for the ingest and admin listeners
//! alike:
//!
//! 1. **Cap**: a connection over the listener's cap is closed at once (`server.max_connections`
//!    clamped below the open-file limit, see [`caps`]; `admin.max_connections`). Caps and
//!    timeouts are read from the current config, so a reload applies them to new connections.
//! 2. **TLS** (ingest, when configured) within `server.handshake_timeout`.
//! 3. **HTTP/1.1 or h2** under a watchdog that knows whether a request is in progress (a guard
//!    in the service): the first complete request head must arrive within
//!    `server.header_timeout`, and a connection with no request in progress is closed after
//!    `server.idle_timeout`, however busy it keeps itself with PINGs or half-sent heads.
//!    Closing is graceful (h2 GOAWAY, HTTP/1.1 keep-alive off); a peer that does not finish
//!    closing within [`CLOSE_GRACE`] while no request is in progress is dropped.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{Config, ServerConfig};
use crate::gateway::Gateway;
use crate::telemetry::{names, Telemetry};

/// How long a connection asked to close may take to do so while no request is in progress
/// (an h2 peer acknowledging GOAWAY's PING); then it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// File descriptors kept out of the ingest listener's share besides the admin listener's
/// connections: spool segments and dead-letter files, sink and replay-store connections, the
/// listeners, logs and the runtime's own.
pub const FD_RESERVE: u64 = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ingest,
    Admin,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Ingest => "ingest",
            Kind::Admin => "admin",
        }
    }
}

/// The connection caps a config gives under the process's open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub ingest: usize,
    pub admin: usize,
    /// The soft `RLIMIT_NOFILE`, when the ingest cap had to be lowered below it.
    pub clamped_by: Option<u64>,
}

/// The soft open-file limit (`RLIMIT_NOFILE`); `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `server.max_connections`, lowered so that ingest connections leave `admin.max_connections`
/// plus [`FD_RESERVE`] descriptors under `nofile`; at least 1.
pub fn caps(cfg: &Config, nofile: Option<u64>) -> Caps {
    let admin = cfg.admin.max_connections;
    let wanted = cfg.server.max_connections;
    let room = nofile.map(|n| n.saturating_sub(admin as u64 + FD_RESERVE).max(1));
    match room {
        Some(room) if (wanted as u64) > room => Caps {
            ingest: room as usize,
            admin,
            clamped_by: nofile,
        },
        _ => Caps {
            ingest: wanted,
            admin,
            clamped_by: None,
        },
    }
}

/// Whether a request is in progress on one connection, and since when none has been.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    requests: u64,
    idle_since: Instant,
}

/// A request in progress: from its complete head until its handler has answered.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new(now: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                requests: 0,
                idle_since: now,
            }),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight += 1;
        s.requests += 1;
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight
    }

    /// What the watchdog should do now.
    fn check(&self, now: Instant, accepted: Instant, t: Timeouts) -> Check {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.in_flight > 0 {
            // Look again later; the deadline is set once the request is done.
            return Check::Until(now + t.idle);
        }
        let mut due = (s.idle_since + t.idle, Reason::Idle);
        if s.requests == 0 && accepted + t.header < due.0 {
            due = (accepted + t.header, Reason::HeaderTimeout);
        }
        if now >= due.0 {
            Check::Close(due.1)
        } else {
            Check::Until(due.0)
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight -= 1;
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
    }
}

enum Check {
    Until(Instant),
    Close(Reason),
}

#[derive(Clone, Copy)]
enum Reason {
    HeaderTimeout,
    Idle,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::Idle => "idle",
        }
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// HTTP/1.1 and h2 settings from the current config. There is no HTTP/1.1 header-read timer:
/// the watchdog bounds the first head by `header_timeout`, and the wait for any later one by
/// `idle_timeout`, so a half-sent head holds a connection no longer than silence does.
fn http_builder(cfg: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .max_buf_size(cfg.max_header_size.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.max_header_size as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// An open connection's place under the cap; given back on drop.
struct Slot {
    open: Arc<AtomicUsize>,
    gauge: metrics::Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.decrement(1.0);
    }
}

/// Accepts on `listener` until `stop` says so, then waits up to `server.drain_timeout` for
/// the connections to finish (each is asked to close gracefully). `make` answers a request
/// from `peer`.
pub async fn serve_listener<F, Fut>(
    gw: Arc<Gateway>,
    listener: TcpListener,
    kind: Kind,
    tls: Option<super::tls::Current>,
    mut stop: watch::Receiver<bool>,
    make: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut seen = gw.config();
    let tel = gw.telemetry().clone();
    let listener_label = [("listener", kind.label())];
    let mut settings = Arc::new(Settings::new(&seen, kind, &tel));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = kind.label(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let config = gw.config();
        if !Arc::ptr_eq(&seen, &config) {
            settings = Arc::new(Settings::new(&config, kind, &tel));
            seen = config;
        }
        if open.fetch_add(1, Ordering::AcqRel) >= settings.cap {
            open.fetch_sub(1, Ordering::AcqRel);
            tel.counter(names::CONNECTIONS_REFUSED, &listener_label)
                .increment(1);
            drop(stream);
            continue;
        }
        let gauge = tel.gauge(names::OPEN_CONNECTIONS, &listener_label);
        gauge.increment(1.0);
        let slot = Slot {
            open: open.clone(),
            gauge,
        };
        let _ = stream.set_nodelay(true);
        let settings = settings.clone();
        // The TLS setup in place now: a reload that swaps it affects later connections only.
        let tls = tls
            .as_ref()
            .and_then(|t| t.load_full())
            .map(tokio_rustls::TlsAcceptor::from);
        let stop = stop.clone();
        let make = make.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let svc = move |req| make(peer, req);
            match tls {
                None => serve_connection(stream, &settings, kind, stop, svc).await,
                Some(acceptor) => {
                    match tokio::time::timeout(settings.handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_connection(tls_stream, &settings, kind, stop, svc).await
                        }
                        Ok(Err(e)) => {
                            settings
                                .tel
                                .counter(names::TLS_HANDSHAKE_FAILURES, &[("reason", "error")])
                                .increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            settings
                                .tel
                                .counter(names::TLS_HANDSHAKE_FAILURES, &[("reason", "timeout")])
                                .increment(1);
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
            drop(slot);
            drop(done);
        });
    }
    drop(listener);
    drop(done_tx);
    let drain = gw.config().server.drain_timeout;
    if tokio::time::timeout(drain, done_rx.recv()).await.is_err() {
        tracing::warn!(
            listener = kind.label(),
            "connections still open after the drain timeout; closing them"
        );
    }
}

/// What the connections a listener accepts under one config share: built when the listener
/// first sees that config, not per connection.
struct Settings {
    /// The listener's cap.
    cap: usize,
    handshake: Duration,
    timeouts: Timeouts,
    builder: auto::Builder<TokioExecutor>,
    tel: Arc<Telemetry>,
}

impl Settings {
    fn new(config: &Config, kind: Kind, tel: &Arc<Telemetry>) -> Settings {
        Settings {
            cap: current_cap(config, kind, tel),
            tel: tel.clone(),
            handshake: config.server.handshake_timeout,
            timeouts: Timeouts {
                header: config.server.header_timeout,
                idle: config.server.idle_timeout,
            },
            builder: http_builder(&config.server),
        }
    }
}

/// The listener's cap under `config`, logged (and exported) whenever the config changes.
fn current_cap(config: &Config, kind: Kind, tel: &Telemetry) -> usize {
    let caps = caps(config, open_file_limit());
    let cap = match kind {
        Kind::Ingest => caps.ingest,
        Kind::Admin => caps.admin,
    };
    tel.gauge(names::CONNECTION_LIMIT, &[("listener", kind.label())])
        .set(cap as f64);
    if let (Kind::Ingest, Some(nofile)) = (kind, caps.clamped_by) {
        tracing::warn!(
            configured = config.server.max_connections,
            effective = cap,
            open_file_limit = nofile,
            reserved = config.admin.max_connections as u64 + FD_RESERVE,
            "server.max_connections lowered below the open-file limit (ulimit -n), keeping \
             descriptors for the admin listener, the spool and the sinks; raise the limit to \
             allow more"
        );
    }
    cap
}

/// Serves one connection (after TLS) under the watchdog described in the module docs.
async fn serve_connection<I, F, Fut>(
    io: I,
    settings: &Settings,
    kind: Kind,
    mut stop: watch::Receiver<bool>,
    make: F,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let accepted = Instant::now();
    let timeouts = settings.timeouts;
    let activity = Activity::new(accepted);
    let svc = {
        let activity = activity.clone();
        service_fn(move |req| {
            let in_flight = activity.begin();
            let answer = make(req);
            async move {
                let r = answer.await;
                drop(in_flight);
                r
            }
        })
    };
    let conn = settings.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        let wake = match closing {
            Some(since) if now >= since + CLOSE_GRACE => {
                if activity.in_flight() == 0 {
                    // Asked to close and not closing: drop it.
                    return;
                }
                now + CLOSE_GRACE
            }
            Some(since) => since + CLOSE_GRACE,
            None => match activity.check(now, accepted, timeouts) {
                Check::Until(at) => at,
                Check::Close(reason) => {
                    settings
                        .tel
                        .counter(
                            names::CONNECTIONS_CLOSED,
                            &[("listener", kind.label()), ("reason", reason.label())],
                        )
                        .increment(1);
                    conn.as_mut().graceful_shutdown();
                    closing = Some(now);
                    continue;
                }
            },
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if closing.is_none() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, admin: usize) -> Config {
        let mut c = crate::config::parse(
            "[spool]\ndir = \"/tmp/x\"\n[[sources]]\nid = \"a\"\nvendor = \"github\"\nsecrets = [\"s\"]\nsinks = [\"o\"]\n[[sinks]]\nid = \"o\"\ntype = \"file\"\npath = \"/tmp/x/e.jsonl\"\n",
            std::path::Path::new("."),
            &|_| None,
        )
        .unwrap();
        c.server.max_connections = max;
        c.admin.max_connections = admin;
        c
    }

    #[test]
    fn the_ingest_cap_leaves_the_reserve_under_the_open_file_limit() {
        let c = config(10_000, 64);
        let caps = caps(&c, Some(1024));
        assert_eq!(caps.ingest, 1024 - 64 - FD_RESERVE as usize);
        assert_eq!(caps.admin, 64);
        assert_eq!(caps.clamped_by, Some(1024));
        // a cap already below the limit is kept, and so is any cap without a limit
        assert_eq!(caps_of(&config(100, 64), Some(1024)), (100, None));
        assert_eq!(caps_of(&config(10_000, 64), None), (10_000, None));
        // a limit below the reserve still leaves one connection
        assert_eq!(caps_of(&config(10_000, 64), Some(50)), (1, Some(50)));
    }

    fn caps_of(c: &Config, nofile: Option<u64>) -> (usize, Option<u64>) {
        let x = caps(c, nofile);
        (x.ingest, x.clamped_by)
    }
}
