//! What a reload changes in the gateway: sources, limits, timeouts and sinks; and what it
//! names as needing a restart.

use std::sync::Arc;

use super::sources::{prepare_sources, Runtime};
use super::{BuildError, ClientLimiter, Gateway, SinkChanges, SinkEntry, SinkMap};
use crate::config::Config;
use crate::sink::{self, engine::SinkSlot};

impl Gateway {
    /// Swaps in a new config: sources, limits, timeouts and sinks. The per-client limiter is
    /// rebuilt when its settings changed (its clients start with full buckets); the listeners
    /// read `max_connections`, `admin.max_connections`, the timeouts and the sizes from the
    /// current config for every new connection and request.
    ///
    /// Sinks: a running sink whose settings changed gets a new sink built from them (its worker
    /// takes it and goes on from its cursor); a sink added is known to the spool before any
    /// source can name it, and the returned [`SinkChanges`] lists it for the engine to start;
    /// a sink removed is no longer named by any source once this returns, and is listed for the
    /// engine to stop (then [`crate::spool::Spool::remove_sink`] keeps what it had queued as orphans).
    ///
    /// What only a restart applies (listen addresses, the spool, the replay store) is named in
    /// the returned notes. The TLS setup is not here: [`crate::server::reload::Reloader`]
    /// swaps it beside this. Blocking: builds sinks and reads the added sinks' cursors.
    pub fn reload(&self, config: Config) -> Result<(Vec<String>, SinkChanges), BuildError> {
        let old = self.config();
        // What only a start applies stays as it runs, and each change to it is named: the
        // running config never claims a value the gateway does not use.
        let running = old.fixed();
        let mut notes: Vec<String> = running
            .changes(&config.fixed())
            .into_iter()
            .map(|key| format!("{key} changed: takes effect at the next start"))
            .collect();
        let config = config.with_fixed(running);
        // Everything fallible first: the new and changed sinks, the sources over them, the
        // spool told of the new sinks. Only then is anything registered or swapped in, so a
        // refused reload leaves no series (a source's zeros, a new sink's health) behind.
        let current = self.sinks.load_full();
        let mut next = SinkMap::new();
        let mut swaps = Vec::new();
        let mut built = Vec::new();
        for s in &config.sinks {
            match current.get(&s.id) {
                None => {
                    built.push((sink::build(s, self.clock.clone(), &self.tel)?, s.clone()));
                    notes.push(format!("sinks.{} added: applied", s.id));
                }
                Some(e) => {
                    if e.current().config != *s {
                        swaps.push((
                            e.clone(),
                            sink::build(s, self.clock.clone(), &self.tel)?,
                            s.clone(),
                        ));
                        notes.push(format!(
                            "sinks.{} changed: applied; its queued events go on from where it was",
                            s.id
                        ));
                    }
                    next.insert(s.id.clone(), e.clone());
                }
            }
        }
        let added: Vec<String> = built.iter().map(|(_, s)| s.id.clone()).collect();
        let mut removed: Vec<(String, Arc<crate::sink::Health>)> = current
            .iter()
            .filter(|(id, _)| !next.contains_key(*id))
            .map(|(id, e)| (id.clone(), e.health.clone()))
            .collect();
        removed.sort_by(|a, b| a.0.cmp(&b.0));
        let sources = prepare_sources(&config, &self.clock)?;
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
        // Nothing fails from here on.
        for (sink, s) in built {
            next.insert(s.id.clone(), SinkEntry::new(sink, s, &self.tel));
        }
        let sources = sources.register(&self.tel);
        for (entry, sink, config) in swaps {
            entry.slot.send_replace(Arc::new(SinkSlot { sink, config }));
        }
        // The running limiter was built from the running config's settings.
        let (rate, tracked) = (
            config.server.client_rate_limit,
            config.server.max_tracked_clients,
        );
        if old.server.client_rate_limit != rate || old.server.max_tracked_clients != tracked {
            self.client_limiter.store(Arc::new(ClientLimiter::new(
                rate,
                tracked,
                self.clock.clone(),
            )));
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
        Ok((notes, changes))
    }
}
