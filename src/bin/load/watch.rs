//! `--metrics URL`: the gateway's own figures during a run, read from its Prometheus text on
//! the admin listener: resident memory (and that memory less the replay store's, which has its
//! own documented bound), CPU time, the spool's backlog, and events delivered by its sinks.
//!
//! Sampled every [`EVERY`] while the load runs and once more at its end. A scrape that fails is
//! counted, not fatal: the gateway under load may be slow to answer, and the run's own figures
//! stand without these.

use std::time::{Duration, Instant};

use reqwest::{Client, Url};

/// How often the gateway's metrics are read during a run.
pub const EVERY: Duration = Duration::from_secs(1);
/// How often they are read while a backlog drains.
const DRAIN_EVERY: Duration = Duration::from_millis(200);

/// The series one scrape reads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub rss: Option<f64>,
    pub replay_bytes: Option<f64>,
    pub replay_keys: Option<f64>,
    /// `siemgate_spool_events`, summed over sinks: events not yet delivered.
    pub spool_events: f64,
    pub spool_bytes: Option<f64>,
    /// `siemgate_sink_events_total{outcome="delivered"}`, summed over sinks.
    pub delivered: f64,
    /// `process_cpu_seconds_total`: the gateway's CPU time so far.
    pub cpu_seconds: Option<f64>,
}

/// Reads the series [`Sample`] holds out of Prometheus text.
pub fn parse(text: &str) -> Sample {
    let mut s = Sample::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l),
            None => (series, ""),
        };
        match name {
            "process_resident_memory_bytes" => s.rss = Some(v),
            "process_cpu_seconds_total" => s.cpu_seconds = Some(v),
            "siemgate_replay_bytes" => s.replay_bytes = Some(v),
            "siemgate_replay_keys" => s.replay_keys = Some(v),
            "siemgate_spool_bytes" => s.spool_bytes = Some(v),
            "siemgate_spool_events" => s.spool_events += v,
            "siemgate_sink_events_total" if labels.contains(r#"outcome="delivered""#) => {
                s.delivered += v
            }
            _ => {}
        }
    }
    s
}

/// One gateway's metrics endpoint.
pub struct Gauges {
    client: Client,
    url: Url,
}

impl Gauges {
    pub fn new(url: &str) -> Result<Gauges, String> {
        let url = Url::parse(url).map_err(|e| format!("--metrics {url:?}: {e}"))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("--metrics {url}: expected http:// or https://"));
        }
        let client = Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("--metrics: cannot build a client: {e}"))?;
        Ok(Gauges { client, url })
    }

    pub async fn sample(&self) -> Option<Sample> {
        let resp = self.client.get(self.url.clone()).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        Some(parse(&resp.text().await.ok()?))
    }

    /// Samples every [`EVERY`] until `stop` resolves, then once more.
    pub async fn watch(&self, stop: impl std::future::Future<Output = ()>) -> Watched {
        let mut w = Watched::default();
        let started = Instant::now();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => w.add(self.sample().await),
            }
        }
        w.add(self.sample().await);
        w.seconds = started.elapsed().as_secs_f64();
        w
    }

    /// Samples until the spool holds no undelivered event or `timeout` passes: how fast a
    /// backlog drains. The rate counts from the last sample before deliveries began, so a
    /// sink still waiting out a retry backoff when the SIEM comes back does not lower it.
    /// `None` when the first scrape fails: there is no backlog to watch.
    pub async fn drain(
        &self,
        timeout: Duration,
        siem: Option<&super::siem::Counts>,
    ) -> Option<Drained> {
        let started = Instant::now();
        let siem_before = siem.map(|c| c.events());
        let first = self.sample().await?;
        let mut last = Some(first);
        let mut idle_until = 0.0;
        let mut failed_scrapes = 0u64;
        loop {
            match last {
                Some(s) if s.spool_events == 0.0 => break,
                Some(s) if s.delivered == first.delivered => {
                    idle_until = started.elapsed().as_secs_f64();
                }
                None => failed_scrapes += 1,
                _ => {}
            }
            if started.elapsed() >= timeout {
                break;
            }
            tokio::time::sleep(DRAIN_EVERY).await;
            last = self.sample().await;
        }
        Some(Drained {
            backlog_before: first.spool_events,
            backlog_after: last.map(|s| s.spool_events),
            delivered: last.map(|b| b.delivered - first.delivered),
            siem_events: siem.zip(siem_before).map(|(c, b)| c.events() - b),
            seconds: started.elapsed().as_secs_f64(),
            idle_seconds: idle_until,
            failed_scrapes,
        })
    }
}

/// What the samples of one run showed.
#[derive(Default, Debug)]
pub struct Watched {
    pub samples: u64,
    pub failed_scrapes: u64,
    pub rss_max: Option<f64>,
    /// The largest resident memory less the replay store's bytes in the same sample.
    pub rss_less_replay_max: Option<f64>,
    pub spool_events_max: Option<f64>,
    pub first: Option<Sample>,
    pub last: Option<Sample>,
    pub seconds: f64,
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Watched {
    fn add(&mut self, s: Option<Sample>) {
        let Some(s) = s else {
            self.failed_scrapes += 1;
            return;
        };
        self.samples += 1;
        self.rss_max = max(self.rss_max, s.rss);
        let less = s.rss.map(|r| r - s.replay_bytes.unwrap_or(0.0));
        self.rss_less_replay_max = max(self.rss_less_replay_max, less);
        self.spool_events_max = max(self.spool_events_max, Some(s.spool_events));
        self.first.get_or_insert(s);
        self.last = Some(s);
    }

    pub fn json(&self) -> serde_json::Value {
        let mib = |b: Option<f64>| b.map(|b| (b / 1048576.0 * 10.0).round() / 10.0);
        let delivered = match (self.first, self.last) {
            (Some(a), Some(b)) => Some(b.delivered - a.delivered),
            _ => None,
        };
        let cpu_seconds = self.cpu_seconds().map(super::round3);
        serde_json::json!({
            "samples": self.samples,
            "failed_scrapes": self.failed_scrapes,
            "rss_max_mib": mib(self.rss_max),
            "rss_less_replay_max_mib": mib(self.rss_less_replay_max),
            "rss_end_mib": mib(self.last.and_then(|s| s.rss)),
            "replay_keys_end": self.last.and_then(|s| s.replay_keys),
            "replay_mib_end": mib(self.last.and_then(|s| s.replay_bytes)),
            "spool_events_max": self.spool_events_max,
            "spool_events_end": self.last.map(|s| s.spool_events),
            "spool_mib_end": mib(self.last.and_then(|s| s.spool_bytes)),
            "delivered": delivered,
            "delivered_per_sec": delivered.map(|d| (d / self.seconds.max(1e-9)).round()),
            "cpu_seconds": cpu_seconds,
        })
    }

    /// The gateway's CPU time between the first sample and the last (the run's start and end).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let (a, b) = (self.first?.cpu_seconds?, self.last?.cpu_seconds?);
        Some((b - a).max(0.0))
    }
}

/// How a backlog drained.
#[derive(Debug)]
pub struct Drained {
    pub backlog_before: f64,
    pub backlog_after: Option<f64>,
    pub delivered: Option<f64>,
    pub siem_events: Option<u64>,
    pub seconds: f64,
    /// Seconds before the first delivery (a sink still in a retry backoff).
    pub idle_seconds: f64,
    pub failed_scrapes: u64,
}

impl Drained {
    /// Whether the spool was seen empty at the end.
    pub fn emptied(&self) -> bool {
        self.backlog_after == Some(0.0)
    }

    pub fn json(&self) -> serde_json::Value {
        let busy = (self.seconds - self.idle_seconds).max(1e-9);
        let per_sec = self.delivered.map(|d| (d / busy).round());
        serde_json::json!({
            "backlog_before": self.backlog_before,
            "backlog_after": self.backlog_after,
            "delivered": self.delivered,
            "siem_events": self.siem_events,
            "seconds": super::round3(self.seconds),
            "idle_seconds": super::round3(self.idle_seconds),
            "delivered_per_sec": per_sec,
            "emptied": self.emptied(),
            "failed_scrapes": self.failed_scrapes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP process_resident_memory_bytes Resident memory of the process
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 104857600
# TYPE process_cpu_seconds_total gauge
process_cpu_seconds_total 12.5
siemgate_replay_bytes 41943040
siemgate_replay_keys 2000000
siemgate_spool_events{sink=\"hec\"} 120
siemgate_spool_events{sink=\"file\"} 5
siemgate_spool_bytes 9000
siemgate_sink_events_total{sink=\"hec\",outcome=\"delivered\"} 1000
siemgate_sink_events_total{sink=\"file\",outcome=\"delivered\"} 500
siemgate_sink_events_total{sink=\"hec\",outcome=\"retried\"} 77
siemgate_sink_request_duration_seconds_bucket{sink=\"hec\",le=\"+Inf\"} 3
";

    #[test]
    fn reads_memory_backlog_and_deliveries() {
        let s = parse(TEXT);
        assert_eq!(s.rss, Some(104857600.0));
        assert_eq!(s.replay_bytes, Some(41943040.0));
        assert_eq!(s.replay_keys, Some(2e6));
        assert_eq!(s.spool_events, 125.0);
        assert_eq!(s.spool_bytes, Some(9000.0));
        assert_eq!(s.delivered, 1500.0);
        assert_eq!(s.cpu_seconds, Some(12.5));
        assert_eq!(parse("garbage\nx y z\n"), Sample::default());
    }

    #[test]
    fn samples_give_the_largest_memory_less_replay_and_the_cpu_time_from_first_to_last() {
        let mut w = Watched::default();
        let at = |rss: f64, replay: f64, delivered: f64, cpu: f64| Sample {
            rss: Some(rss),
            replay_bytes: Some(replay),
            delivered,
            cpu_seconds: Some(cpu),
            ..Sample::default()
        };
        assert_eq!(w.cpu_seconds(), None);
        w.add(Some(at(100.0, 10.0, 0.0, 7.25)));
        w.add(None);
        w.add(Some(at(150.0, 90.0, 40.0, 8.0)));
        w.seconds = 2.0;
        assert_eq!(w.cpu_seconds(), Some(0.75));
        assert_eq!(w.json()["cpu_seconds"], 0.75);
        assert_eq!(w.rss_max, Some(150.0));
        assert_eq!(w.rss_less_replay_max, Some(90.0));
        assert_eq!(w.failed_scrapes, 1);
        assert_eq!(w.json()["delivered"], 40.0);
        assert_eq!(w.json()["delivered_per_sec"], 20.0);
    }

    #[test]
    fn a_drain_rate_leaves_out_the_wait_for_the_first_delivery() {
        let d = Drained {
            backlog_before: 1000.0,
            backlog_after: Some(0.0),
            delivered: Some(1000.0),
            siem_events: None,
            seconds: 12.0,
            idle_seconds: 10.0,
            failed_scrapes: 0,
        };
        assert!(d.emptied());
        assert_eq!(d.json()["delivered_per_sec"], 500.0);
        let left = Drained {
            backlog_after: Some(3.0),
            ..d
        };
        assert!(!left.emptied());
    }
}
