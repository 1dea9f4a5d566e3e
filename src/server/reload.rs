//! Reload: one method, three triggers. [`Reloader::reload`] re-reads the config file and every
//! file it names (`*_file` secrets, the TLS certificate, key and client CA), builds the new
//! config and TLS setup beside the running ones, and swaps them in only when all of it is
//! good. SIGHUP (`main`), `POST /v1/reload` (the admin API) and the file watcher ([`watch`])
//! all call it. A refused reload is logged (config errors are redacted: no secret in them),
//! counted as `siemgate_config_reloads_total{outcome="failure"}`, and the old config keeps
//! serving; a good one is counted as `outcome="success"` and sets
//! `siemgate_config_last_reload_success_timestamp_seconds` (also set at start).
//!
//! ## Watching files
//!
//! Kubernetes updates a mounted ConfigMap or Secret by writing a new timestamped directory and
//! renaming a `..data` symlink over the old one; the file the config names
//! (`/etc/siemgate/secrets/token` → `..data/token`) keeps its path, and the inode an inotify
//! watch was set on is deleted, not changed. So the watcher polls instead: every interval it
//! takes, for every watched file, the path that all the symlinks resolve to, its size and its
//! modification time. The symlink swap changes the resolved path; an editor's write or rename
//! changes the size or mtime. Polling a handful of files once a second costs a few `stat`s,
//! needs no platform-specific notification API, and sees every way a file can be replaced.
//! A change is applied once it has held still for one interval (a file being written, or
//! several files of one Secret swapped one after another, give one reload, not several), and
//! the watched set is re-read from the config after every reload (a new `*_file` is watched
//! from then on). A change that makes the config invalid is refused and counted once; the
//! next change is tried again.
//!
//! ## Sinks
//!
//! A changed sink is swapped in place (see [`crate::sink::engine`]). An added sink gets a
//! worker, which starts from its cursor: a sink never seen starts at the end of the log; one
//! removed earlier with events still queued delivers them. A removed sink's worker is stopped
//! (after its request in flight, if any) before the reload answers; what it had not delivered
//! stays in the spool as orphaned events, listed by `siemgate spool list` and kept until the
//! sink is added back or they are dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::tls;
use crate::config;
use crate::gateway::{Gateway, SinkChanges};
use crate::sink::engine::Engine;
use crate::telemetry::{names, Telemetry};

/// What asked for a reload (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Signal,
    Api,
    Watch,
}

impl Trigger {
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Signal => "signal",
            Trigger::Api => "api",
            Trigger::Watch => "file_change",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config was not read from a file (tests, an embedded config): nothing to re-read.
    #[error("reload not available: the config was not read from a file")]
    NotAvailable,
    /// The new config or one of its files is broken; the running config stays.
    #[error("{0}")]
    Refused(String),
}

/// Re-reads the config file and applies it to a running gateway and its TLS listener.
pub struct Reloader {
    path: Option<PathBuf>,
    gateway: Arc<Gateway>,
    tls: tls::Current,
    /// Starts and stops the workers of sinks a reload adds or removes.
    engine: Arc<Engine>,
    /// One reload at a time: two triggers at once must not interleave their swaps.
    lock: tokio::sync::Mutex<()>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Records a good (re)load: the gateway started, or a reload was applied.
pub fn mark_success(tel: &Telemetry) {
    tel.gauge(names::CONFIG_LAST_RELOAD_SUCCESS, &[])
        .set(unix_now());
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        gateway: Arc<Gateway>,
        tls: tls::Current,
        engine: Arc<Engine>,
    ) -> Self {
        Reloader {
            path,
            gateway,
            tls,
            engine,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The config file reloads read, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the config file and every file it names, and applies the result; returns the
    /// notes (what changed in the sinks, settings that only a restart applies). File reads and
    /// sink builds run off the async workers.
    pub async fn reload(self: &Arc<Self>, trigger: Trigger) -> Result<Vec<String>, ReloadError> {
        let _one = self.lock.lock().await;
        let Some(path) = self.path.clone() else {
            tracing::warn!(
                trigger = trigger.label(),
                "reload asked for, but the config was not read from a file"
            );
            return Err(ReloadError::NotAvailable);
        };
        let me = self.clone();
        let outcome = match tokio::task::spawn_blocking(move || me.apply(&path)).await {
            Ok(Ok((notes, changes))) => Ok(self.apply_sinks(notes, changes).await),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("reload task failed: {e}")),
        };
        let label = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        let tel = self.gateway.telemetry();
        tel.counter(names::CONFIG_RELOADS, &[("outcome", label)])
            .increment(1);
        match &outcome {
            Ok(notes) => {
                mark_success(tel);
                tracing::info!(trigger = trigger.label(), ?notes, "config reloaded");
            }
            Err(e) => tracing::error!(
                trigger = trigger.label(),
                error = %e,
                "config reload refused; the running config stays"
            ),
        }
        outcome.map_err(ReloadError::Refused)
    }

    /// Everything fallible first (the config, its files, the TLS setup), then the swaps.
    /// Blocking.
    fn apply(&self, path: &Path) -> Result<(Vec<String>, SinkChanges), String> {
        let config = config::load(path).map_err(|e| e.to_string())?;
        let tls = match &config.server.tls {
            Some(t) => Some(tls::build(t).map_err(|e| format!("server.tls: {e}"))?),
            None => None,
        };
        let (mut notes, changes) = self.gateway.reload(config).map_err(|e| e.to_string())?;
        let was_tls = self.tls.load().is_some();
        match tls {
            Some((server_config, expiry)) => {
                self.tls.store(Some(server_config));
                tls::publish_expiry(self.gateway.telemetry(), expiry);
            }
            None => self.tls.store(None),
        }
        if was_tls != self.tls.load().is_some() {
            notes.push(format!(
                "server.tls turned {}: new connections only",
                if was_tls { "off" } else { "on" }
            ));
        }
        Ok((notes, changes))
    }

    /// Starts the workers of added sinks; stops those of removed ones, then has the spool
    /// keep what they had queued as orphans. Cannot fail: the config is already in use.
    async fn apply_sinks(&self, mut notes: Vec<String>, changes: SinkChanges) -> Vec<String> {
        for runtime in changes.added {
            self.engine.add(runtime);
        }
        for (id, health) in changes.removed {
            self.engine.remove(&id).await;
            health.retire();
            let queued = self.gateway.spool().remove_sink(&id);
            notes.push(if queued == 0 {
                format!("sinks.{id} removed: applied; nothing was queued for it")
            } else {
                format!(
                    "sinks.{id} removed: applied; its {queued} queued event(s) stay in the spool (add the sink back to deliver them, or `siemgate spool drop --sink {id}`)"
                )
            });
        }
        notes
    }
}

/// Polls the config file and the files it names every `interval` and reloads once a change
/// has held still for one interval (see the module docs). Takes the files' state now, before
/// returning (a change made after [`super::start_with`] returns is seen); the future runs until
/// aborted.
pub fn watch(
    reloader: Arc<Reloader>,
    interval: Duration,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let path = reloader.path().map(Path::to_path_buf);
    let scan = move || {
        let files = path.as_deref().map(watched_files).unwrap_or_default();
        let print = fingerprint(&files);
        (files, print)
    };
    let (mut files, mut applied) = scan();
    async move {
        if reloader.path().is_none() {
            return;
        }
        tracing::debug!(?files, "watching the config and the files it names");
        let mut pending: Option<Fingerprint> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let f = files.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&f)).await else {
                continue;
            };
            if now == applied {
                pending = None;
                continue;
            }
            if pending.as_ref() != Some(&now) {
                // Changed since the last look: wait until it holds still for one interval.
                pending = Some(now);
                continue;
            }
            pending = None;
            // The set to watch from now on, and its state, taken before the reload reads the
            // files: a change made during the reload is seen at the next tick.
            let Ok((new_files, new_print)) = tokio::task::spawn_blocking(scan.clone()).await else {
                continue;
            };
            (files, applied) = (new_files, new_print);
            let _ = reloader.reload(Trigger::Watch).await;
        }
    }
}

/// What a file looks like from outside: the path its symlinks resolve to, size, mtime; or
/// that it cannot be read (missing: that is a state too).
type Fingerprint = Vec<Option<(PathBuf, u64, Option<SystemTime>)>>;

fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            let target = std::fs::canonicalize(f).ok()?;
            let meta = std::fs::metadata(&target).ok()?;
            Some((target, meta.len(), meta.modified().ok()))
        })
        .collect()
}

/// The config file and every file it names: each `*_file` key's value (a string or a list of
/// them, as `secrets_file`; not `client_assertion_file`, which its sink re-reads), relative paths resolved against the config's directory, as
/// [`config::load`] does. `${NAME}` is replaced from the environment as the loader does. An
/// unreadable or unparsable config gives the config file alone (its repair is the change
/// that will be seen).
pub fn watched_files(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    let Ok(table) = toml::from_str::<toml::Table>(&text) else {
        return out;
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    collect(&toml::Value::Table(table), false, &mut found);
    for f in found {
        let Ok(f) = crate::config::expand(&f, |n| std::env::var(n).ok()) else {
            continue;
        };
        let p = crate::config::resolve_path(base, &f);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn collect(v: &toml::Value, file_key: bool, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) if file_key => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|i| collect(i, file_key, out)),
        toml::Value::Table(t) => {
            for (k, v) in t {
                // The sentinel sink re-reads its federated token for every token request; the
                // kubelet rotates it hourly, which is no reason to reload.
                collect(v, k.ends_with("_file") && k != "client_assertion_file", out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_files_are_the_config_and_every_file_key_resolved_against_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("siemgate.toml");
        std::fs::write(
            &cfg,
            "[server.tls]\ncert_file = \"tls/tls.crt\"\nkey_file = \"/abs/tls.key\"\n\
             [admin]\ntoken_file = \"token\"\n\
             [[sources]]\nid = \"a\"\nsecrets_file = [\"s1\", \"s2\"]\n\
             [[sinks]]\nid = \"x\"\ntls = { ca_file = \"ca.pem\" }\npath = \"not-a-file-key\"\n\
             client_assertion_file = \"re-read-by-the-sink\"\n",
        )
        .unwrap();
        let files = watched_files(&cfg);
        let d = dir.path();
        for f in [
            cfg.clone(),
            d.join("tls/tls.crt"),
            PathBuf::from("/abs/tls.key"),
            d.join("token"),
            d.join("s1"),
            d.join("s2"),
            d.join("ca.pem"),
        ] {
            assert!(files.contains(&f), "{f:?} in {files:?}");
        }
        assert_eq!(files.len(), 7, "{files:?}");
    }

    #[test]
    fn a_broken_config_is_watched_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "[server\n").unwrap();
        assert_eq!(watched_files(&cfg), vec![cfg]);
    }
}
