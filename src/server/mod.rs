//! Listeners: the ingest listener (TLS or plain HTTP, HTTP/1.1 and h2) and the admin listener.
//!
//! [`start`] binds both and returns a [`Handle`] with their addresses; tests bind
//! `127.0.0.1:0` and read the addresses back. Each connection's life (caps, timeouts,
//! draining) is in [`conn`].

pub mod admin;
pub mod conn;
mod dlq;
pub mod ingest;
pub mod reload;
pub mod response;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::gateway::Gateway;
use crate::sink::engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A running gateway: its addresses, and the means to stop it.
pub struct Handle {
    pub ingest_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    stop_ingest: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    ingest_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    /// The file watcher, when the config came from a file.
    watcher: Option<JoinHandle<()>>,
    engine: Arc<Engine>,
    reloader: Arc<reload::Reloader>,
}

/// How [`start_with`] starts: where the config came from, and how often its files are polled.
pub struct Options {
    /// The config file reloads re-read; `None`: reload is not available.
    pub config_path: Option<PathBuf>,
    /// How often the config file and the files it names are checked for a change
    /// (see [`reload`]); zero turns the watcher off.
    pub watch_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_path: None,
            watch_interval: Duration::from_secs(1),
        }
    }
}

impl Handle {
    /// What SIGHUP, `POST /v1/reload` and the file watcher call.
    pub fn reloader(&self) -> &Arc<reload::Reloader> {
        &self.reloader
    }

    /// Shuts down gracefully, with the config's timings: `/readyz` turns 503 at once and
    /// requests are still served for `server.shutdown_grace` (load balancers need that long
    /// to stop sending); then the listener closes and requests in flight get
    /// `server.drain_timeout` to finish; then the sinks get `spool.flush_timeout` to deliver
    /// what is spooled. What is left stays in the spool for the next start. Returns whether
    /// everything spooled was delivered.
    pub async fn shutdown(self) -> bool {
        let config = self.gateway.config();
        self.gateway.set_draining();
        tracing::info!(grace = ?config.server.shutdown_grace, "shutting down: not ready; still serving during the grace period");
        tokio::time::sleep(config.server.shutdown_grace).await;
        tracing::info!("closing the listener; draining requests in flight");
        let _ = self.stop_ingest.send(true);
        let _ = tokio::time::timeout(
            config.server.drain_timeout + Duration::from_secs(1),
            self.ingest_task,
        )
        .await;
        tracing::info!(deadline = ?config.spool.flush_timeout, "flushing the sinks");
        let delivered = self.engine.shutdown(config.spool.flush_timeout).await;
        let spool = self.gateway.spool().clone();
        let _ = tokio::task::spawn_blocking(move || spool.close()).await;
        if delivered {
            tracing::info!("every spooled event was delivered");
        } else {
            let left: Vec<_> = self
                .gateway
                .sinks()
                .keys()
                .map(|s| (s.clone(), self.gateway.spool().pending(s)))
                .filter(|(_, n)| *n > 0)
                .collect();
            tracing::warn!(?left, "events left in the spool for the next start");
        }
        let _ = self.stop_admin.send(true);
        self.sweeper.abort();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        let _ = self.admin_task.await;
        delivered
    }

    /// Stops at once, as a crash would (tests): nothing is flushed; the spool keeps it all.
    pub async fn abort(self) {
        let _ = self.stop_ingest.send(true);
        let _ = self.stop_admin.send(true);
        self.ingest_task.abort();
        self.admin_task.abort();
        self.sweeper.abort();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        let _ = self.engine.shutdown(Duration::ZERO).await;
        let spool = self.gateway.spool().clone();
        let _ = tokio::task::spawn_blocking(move || spool.close()).await;
    }
}

/// Binds the ingest and admin listeners from the gateway's config, starts the delivery engine
/// and starts serving. Reload is not available (no config file): see [`start_with`].
pub async fn start(gateway: Arc<Gateway>) -> Result<Handle, StartError> {
    start_with(gateway, Options::default()).await
}

/// [`start`], with the config file that reloads re-read and the file watcher on it.
pub async fn start_with(gateway: Arc<Gateway>, options: Options) -> Result<Handle, StartError> {
    let config = gateway.config();
    let tls: tls::Current = Arc::new(arc_swap::ArcSwapOption::new(match &config.server.tls {
        Some(t) => Some(tls::server_config(t, gateway.telemetry())?),
        None => None,
    }));
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|error| StartError::Bind { addr, error })
    };
    let ingest = bind(config.server.listen).await?;
    let admin = bind(config.admin.listen).await?;
    let ingest_addr = ingest.local_addr().map_err(|error| StartError::Bind {
        addr: config.server.listen,
        error,
    })?;
    let admin_addr = admin.local_addr().map_err(|error| StartError::Bind {
        addr: config.admin.listen,
        error,
    })?;
    let (stop_ingest, rx) = watch::channel(false);
    let (stop_admin, admin_rx) = watch::channel(false);

    let sweeper = {
        let gw = gateway.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                gw.client_limiter().sweep(gw.telemetry());
                // The replay store's expiry and compaction, off the request path.
                let (store, now) = (gw.replay_store().clone(), gw.clock().now());
                let _ = tokio::task::spawn_blocking(move || store.maintain(now)).await;
            }
        })
    };
    let engine = Arc::new(Engine::start(
        gateway.spool().clone(),
        gateway.clock().clone(),
        gateway.telemetry().clone(),
        gateway.sink_runtimes(),
    ));
    let reloader = Arc::new(reload::Reloader::new(
        options.config_path,
        gateway.clone(),
        tls.clone(),
        engine.clone(),
    ));
    reload::mark_success(gateway.telemetry());
    let watcher = (reloader.path().is_some() && !options.watch_interval.is_zero())
        .then(|| tokio::spawn(reload::watch(reloader.clone(), options.watch_interval)));
    let ingest_task = {
        let gw = gateway.clone();
        tokio::spawn(conn::serve_listener(
            gateway.clone(),
            ingest,
            conn::Kind::Ingest,
            Some(tls),
            rx,
            move |peer, req| ingest::handle(gw.clone(), peer, req),
        ))
    };
    let admin_task = tokio::spawn(admin::serve(
        gateway.clone(),
        reloader.clone(),
        admin,
        admin_rx,
    ));
    tracing::info!(
        ingest = %ingest_addr,
        admin = %admin_addr,
        tls = config.server.tls.is_some(),
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        "siemgate listening"
    );
    Ok(Handle {
        ingest_addr,
        admin_addr,
        gateway,
        stop_ingest,
        stop_admin,
        ingest_task,
        admin_task,
        sweeper,
        watcher,
        engine,
        reloader,
    })
}
