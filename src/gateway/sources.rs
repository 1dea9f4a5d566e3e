//! Sources as the pipeline uses them: a configured source with its vendor's scheme, its
//! prepared keys, its rate limiter and its sinks, all built from the config at start and by
//! every reload (`prepare_sources`, then `register`ed once nothing can fail); the set lives in
//! a [`Runtime`] that a reload swaps whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::limiter::SourceLimiter;
use super::{BuildError, Outcome};
use crate::config::{Config, SourceConfig};
use crate::ocsf::Class;
use crate::telemetry::{names, Telemetry};
use crate::vendors::Vendor;
use crate::verify::{Clock, Key, Reason, Verifier};
use metrics::{Counter, Histogram};
use std::sync::OnceLock;

/// A configured source, ready to verify.
pub struct Source {
    pub config: SourceConfig,
    pub scheme: Box<dyn Vendor>,
    pub keys: Vec<Key>,
    limiter: Option<SourceLimiter>,
    /// The source's sinks, each with its `min_severity`.
    sinks: Vec<(String, Option<u8>)>,
    metrics: SourceMetrics,
}

/// A source's series, registered when the source is built (at start and at every reload), so
/// dashboards see them at zero before traffic, and counting a request builds no label set and
/// looks nothing up in the registry (which took 1.9% of the gateway's CPU at full load,
/// README, Benchmarks).
pub struct SourceMetrics {
    requests: Vec<(&'static str, Counter)>,
    failures: Vec<(Reason, Counter)>,
    duration: Histogram,
    /// Registered at a class's first event: a series appears once the source emits its class.
    events: Vec<(u32, OnceLock<Counter>)>,
}

impl SourceMetrics {
    fn new(tel: &Telemetry, id: &str) -> SourceMetrics {
        SourceMetrics {
            requests: Outcome::SOURCE_LABELS
                .iter()
                .map(|o| {
                    let c = tel.counter(names::REQUESTS, &[("source", id), ("outcome", o)]);
                    (*o, c)
                })
                .collect(),
            failures: Reason::ALL
                .iter()
                .map(|r| {
                    let c = tel.counter(
                        names::VERIFY_FAILURES,
                        &[("source", id), ("reason", r.as_str())],
                    );
                    (*r, c)
                })
                .collect(),
            duration: tel.histogram(names::REQUEST_DURATION, &[("source", id)]),
            events: Class::ALL
                .iter()
                .map(|c| (c.uid(), OnceLock::new()))
                .collect(),
        }
    }
}

impl Source {
    /// Counts a request that ended in `outcome` (and its verification failure, if it was one)
    /// and how long it took.
    pub fn count_request(
        &self,
        tel: &Telemetry,
        outcome: &str,
        failure: Option<Reason>,
        took: f64,
    ) {
        let m = &self.metrics;
        match m.requests.iter().find(|(o, _)| *o == outcome) {
            Some((_, c)) => c.increment(1),
            // Not an outcome a source's request ends in; counted all the same.
            None => tel
                .counter(
                    names::REQUESTS,
                    &[("source", &self.config.id), ("outcome", outcome)],
                )
                .increment(1),
        }
        if let Some((_, c)) = failure.and_then(|r| m.failures.iter().find(|(f, _)| *f == r)) {
            c.increment(1);
        }
        m.duration.record(took);
    }

    /// Counts an event of OCSF class `uid` handed on.
    pub fn count_event(&self, tel: &Telemetry, uid: u32) {
        let register = || {
            let class = uid.to_string();
            tel.counter(
                names::EVENTS,
                &[("source", &self.config.id), ("class", &class)],
            )
        };
        match self.metrics.events.iter().find(|(u, _)| *u == uid) {
            Some((_, c)) => c.get_or_init(register).increment(1),
            None => register().increment(1),
        }
    }

    pub fn verifier(&self) -> Verifier<'_> {
        Verifier {
            source_id: &self.config.id,
            scheme: self.scheme.as_ref(),
            keys: &self.keys,
            tolerance: self.config.tolerance,
        }
    }

    /// The source's rate limit: `Err(wait)` when it is spent.
    pub fn limit(&self) -> Result<(), Duration> {
        self.limiter.as_ref().map_or(Ok(()), SourceLimiter::check)
    }

    /// The sinks an event of `severity` goes to: those whose `min_severity` it meets.
    pub fn sinks_for(&self, severity: u8) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|(_, min)| min.is_none_or(|m| severity >= m))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Everything a reload may change.
pub struct Runtime {
    pub config: Arc<Config>,
    pub sources: HashMap<String, Arc<Source>>,
}

/// Every source of a config, checked and built but with no series registered yet: a reload
/// that is refused after this (a sink it adds cannot be started) leaves no trace in the
/// metrics. [`Prepared::register`] finishes them once nothing can fail any more.
pub(super) struct Prepared(Vec<Draft>);

/// A [`Source`] but for its series.
struct Draft {
    config: SourceConfig,
    scheme: Box<dyn Vendor>,
    keys: Vec<Key>,
    limiter: Option<SourceLimiter>,
    sinks: Vec<(String, Option<u8>)>,
}

/// Builds every source of `config` over the config's sinks (the ones the gateway runs once
/// this config is applied); fails when a secret does not suit its vendor or a source names a
/// sink the config does not have.
pub(super) fn prepare_sources(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> Result<Prepared, BuildError> {
    let mut out = Vec::new();
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
            // A sink of the config, with its (perhaps reloaded) min_severity.
            let Some(min) = config
                .sinks
                .iter()
                .find(|s| &s.id == id)
                .map(|s| s.min_severity)
            else {
                return Err(BuildError::MissingSink {
                    source_id: sc.id.clone(),
                    sink: id.clone(),
                });
            };
            source_sinks.push((id.clone(), min));
        }
        out.push(Draft {
            config: sc.clone(),
            scheme,
            keys,
            limiter: sc
                .rate_limit
                .map(|rl| SourceLimiter::new(rl, clock.clone())),
            sinks: source_sinks,
        });
    }
    Ok(Prepared(out))
}

impl Prepared {
    /// Registers each source's series (at zero until its traffic counts them) and hands the
    /// sources over, by id. Cannot fail: call it once the rest of a (re)load has succeeded.
    pub(super) fn register(self, tel: &Telemetry) -> HashMap<String, Arc<Source>> {
        self.0
            .into_iter()
            .map(|d| {
                let source = Source {
                    metrics: SourceMetrics::new(tel, &d.config.id),
                    config: d.config,
                    scheme: d.scheme,
                    keys: d.keys,
                    limiter: d.limiter,
                    sinks: d.sinks,
                };
                (source.config.id.clone(), Arc::new(source))
            })
            .collect()
    }
}
