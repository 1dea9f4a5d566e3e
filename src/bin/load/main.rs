//! `siemgate-load`: sends unique, correctly signed events to a running gateway over N keep-alive
//! connections and reports events/s and latency percentiles.
//!
//! Each connection is one hyper connection (HTTP/1.1 unless `--http2`, TLS for https://) driven
//! by one task that sends requests back to back and polls the connection itself (`conn.rs`). Every request gets a unique
//! event id (a random run prefix and a sequence number) that goes into the vendor's sample body
//! and its signature, so the gateway's replay store sees only new events, also across runs.
//!
//! The run ends at `--duration` or after `--requests`, whichever comes first; both are bounded.
//! The last line of output is a one-line JSON summary. The exit code is 0 only when every
//! request was answered `200`; transport errors or any other status make it 1 (usage errors 2).
//!
//! ```text
//! siemgate-load --url http://127.0.0.1:8080 --source github-demo --secret demo-github-secret \
//!     --connections 64 --duration 5 --body-size 1024
//! ```
//!
//! With `--baseline`, the run against `--url` is followed by the identical load (connections,
//! duration or requests, body size, signing, `--http2`, path) against a bare hyper server started
//! in-process on `127.0.0.1:0` (HTTP/1.1 and h2; it reads the whole body and answers `200`
//! `{"status":"accepted","events":1}`): the ceiling of this machine and of the load tool itself.
//! That server shares this process's runtime with the senders, as the gateway shares the
//! machine's cores with them. Each run prints its labelled report (`gateway`, `baseline (bare
//! hyper)`), and the last line is one JSON object `{"gateway": {..}, "baseline": {..}}` holding
//! both summaries, and `"comparison"`: the gateway's events/s as a share of the bare server's
//! (`"ratio"`) and, with `--fsync-probe`, its p99 against the bare server's p99 plus twice the
//! sync p99 (`"p99_target_ms"`, `"p99_within_target"`), the way the project states its targets.
//! The exit code is 0 only when every request of both runs was answered `200`;
//! when Ctrl-C ends the gateway run early, the baseline run is skipped (`"baseline": null`,
//! exit code 1).
//!
//! `--baseline-process` runs the same bare server in a process of its own instead (this program
//! started again as `siemgate-load --serve-baseline 127.0.0.1:0`, ended when the run is done
//! or the tool exits), with its own runtime and threads, as the gateway has them: requests
//! then cross between two processes in both runs. In-process, the bare server and the senders
//! share one runtime and hand work to each other without the kernel waking another process;
//! on the project's 2-core machine that makes the in-process ceiling the higher one (README,
//! Benchmarks). The baseline's summary says which it was (`"server"`).
//!
//! What a request costs its target in CPU time, user and system over all its threads, is
//! `"target_cpu_us_per_request"`: the gateway's from its `process_cpu_seconds_total` (with
//! `--metrics`), the bare server's from its process (with `--baseline-process`). With both,
//! `"comparison"` holds `"cpu_per_request_x"`, how many times the bare server's the gateway's
//! is: the cost of a durable, verified event without the host's noise, which moves every rate.
//! `"tool_cpu_us_per_request"` is this tool's own, which it takes from the target on a shared
//! machine (with `--baseline`, the bare server's is in it too).
//!
//! ```text
//! siemgate-load --url http://127.0.0.1:8080 --source github-demo --secret demo-github-secret \
//!     --connections 64 --duration 10 --body-size 1024 --baseline
//! ```
//!
//! With `--rate R`, requests are offered at R a second in all instead of back to back (each
//! connection sends every `connections / R` seconds, the connections staggered), and a
//! request's latency counts from when it was due, not from when it went out, so a stall counts
//! against every request it held up (no coordinated omission). With `--fsync-probe DIR`, the
//! disk under DIR is measured first for 5 s: 1.5 KB appends each followed by `fdatasync`, the
//! cost of one durable group commit, reported as p50/p99 (`"fsync"` in the JSON). Every run
//! also reports the machine's own stalls while it ran (`"hiccups"`: a thread that sleeps 1 ms
//! at a time and counts how late it wakes, see `hiccup.rs`), so a tail made by a paused
//! virtual machine is told from one made by the target, and how the machine's CPUs spent the
//! run (`"cpu"`: busy, idle, and stolen by the host, see `cpu.rs`).
//!
//! The gateway's side of a run:
//! - `--metrics URL` reads the gateway's Prometheus text every second during each run: its
//!   resident memory (also less the replay store's bytes, which have their own bound), the
//!   spool's backlog and the events its sinks delivered (`"gateway_metrics"`).
//! - `--fake-siem ADDR` serves a SIEM on ADDR that takes what the sinks send (Splunk HEC,
//!   Datadog, Logs Ingestion with its token endpoint, HTTP; gzip or not) and counts the events
//!   (`"siem"`, and `"siem_events_per_sec"` per run). Point a sink's `url` at it.
//! - `--drain` waits after the load until the spool holds no undelivered event and reports the
//!   drain rate; `--requests 0 --drain` only waits (a backlog filled while the sink was down).
//! - `--rounds N` repeats the load N times with fresh event ids, one report each, and the
//!   change from the first round to the last (`"first_to_last"`): filling a spool to 10M events
//!   is `--rounds 10 --requests 1000000`.
//!
//! ```text
//! siemgate-load --url http://127.0.0.1:8080 --source github-demo --secret demo-github-secret \
//!     --duration 30 --metrics http://127.0.0.1:9090/metrics --fake-siem 127.0.0.1:8088 --drain
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use http_body_util::Full;
use reqwest::Url;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use siemgate::config::{Secret, VendorOptions};
use siemgate::vendors::{scheme_for, VendorKind};
use siemgate::verify::Key;

// The gateway's allocator, here too: glibc's malloc and free were a seventh of this tool's CPU,
// taken from the target's on a shared machine, and the bare server it starts should allocate
// as the gateway does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod conn;
mod cpu;
mod hiccup;
mod pace;
mod serve;
mod siem;
mod watch;

const MAX_DURATION_SECS: u64 = 600;
const MAX_CONNECTIONS: usize = 10_000;
const MAX_BODY_SIZE: usize = 64 * 1024 * 1024;
/// Pause after a transport error, so a refused connection does not become a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Extra time, past the deadline and the request timeout, before unfinished tasks are aborted.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(
    name = "siemgate-load",
    version,
    about = "Send unique signed events to a running siemgate and report events/s and latency",
    after_help = "The last line of output is a JSON summary (with --baseline: {\"gateway\": {..}, \"baseline\": {..}}). \
                  Exit code 0: every request of every run was answered 200; \
                  1: transport errors or other statuses occurred, or the baseline run was skipped; 2: usage error."
)]
struct Args {
    /// Base URL of the gateway's ingest listener, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,

    /// Source id: requests go to {url}/v1/webhooks/{source}
    #[arg(long)]
    source: String,

    /// Vendor of the source (how requests are signed)
    #[arg(long, default_value = "github")]
    vendor: String,

    /// The source's (first) secret, as configured
    #[arg(long, env = "SIEMGATE_LOAD_SECRET", hide_env_values = true)]
    secret: String,

    /// Concurrent keep-alive connections, one sender task each
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS as u64))]
    connections: u64,

    /// Run time in seconds (at most 600). Default 10, or 600 when only --requests is given
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_DURATION_SECS))]
    duration: Option<u64>,

    /// Total requests to send; the run ends at this count or the duration, whichever is first.
    /// 0 sends nothing (with --drain: only watch a backlog drain)
    #[arg(long)]
    requests: Option<u64>,

    /// Approximate body size in bytes: the vendor's sample body padded with a filler field
    #[arg(long, default_value_t = 1024)]
    body_size: usize,

    /// Per-request timeout in seconds (connect, send and read the answer)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,

    /// Use HTTP/2 (prior knowledge on http://, ALPN h2 on https://) instead of HTTP/1.1
    #[arg(long)]
    http2: bool,

    /// Accept any TLS certificate (self-signed test gateways)
    #[arg(long)]
    insecure: bool,

    /// PEM file of CA certificates to trust in addition to the built-in roots
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,

    /// Okta: the authentication header; generic vendors: the signature header (as configured)
    #[arg(long)]
    header: Option<String>,

    /// Spectral: the timestamp header (as configured)
    #[arg(long)]
    timestamp_header: Option<String>,

    /// After the run, start a bare hyper server in-process (reads the body, answers 200) and
    /// run the same load against it: the ceiling on this machine
    #[arg(long)]
    baseline: bool,

    /// As --baseline, with the bare server in a process of its own (this program started
    /// again), as the gateway is: its CPU time per request is then reported too
    #[arg(long)]
    baseline_process: bool,

    /// Offer this many requests a second in all (spread evenly over the connections) instead
    /// of sending back to back. Latency then counts from when each request was due, so a
    /// stall delays and counts against every request due during it
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,

    /// Before the load, measure this directory's disk for 5 s: 1.5 KB appends to a
    /// temporary file, each followed by fdatasync (the cost of one durable group commit)
    #[arg(long)]
    fsync_probe: Option<std::path::PathBuf>,

    /// The gateway's metrics URL (admin listener), e.g. http://127.0.0.1:9090/metrics: read
    /// every second during each run for its resident memory (also less the replay store's
    /// bytes), spool backlog and delivered events ("gateway_metrics" in the JSON)
    #[arg(long)]
    metrics: Option<String>,

    /// Serve a fake SIEM on this address during the runs (Splunk HEC, Datadog, the Logs
    /// Ingestion API with its token endpoint, HTTP; gzip or not), counting the events the
    /// gateway's sinks deliver to it ("siem" in the JSON)
    #[arg(long)]
    fake_siem: Option<SocketAddr>,

    /// After the load, wait until the gateway's spool holds no undelivered event (read from
    /// --metrics) and report the drain rate. With --requests 0: only that
    #[arg(long, requires = "metrics")]
    drain: bool,

    /// Give up draining after this many seconds (the run then fails)
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    drain_timeout: u64,

    /// Run the load this many times back to back, each with its own report (e.g. ten rounds
    /// of --requests 1000000 fill a spool to 10M events); the JSON then holds every round and
    /// the change from the first to the last
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
}

impl Args {
    /// Whether a baseline run follows the gateway's (`--baseline` or `--baseline-process`).
    fn wants_baseline(&self) -> bool {
        self.baseline || self.baseline_process
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000_000.0 => Ok(r),
        _ => Err("a number of requests a second, above 0 and at most 10000000".into()),
    }
}

/// Everything the sender tasks share.
struct Plan {
    scheme: Box<dyn siemgate::vendors::Vendor>,
    key: Key,
    endpoint: Url,
    /// How requests reach `endpoint`.
    route: Route,
    /// What a route is made with: TLS for https, the protocol, the timeouts.
    client: ClientOptions,
    body_size: usize,
    filler: String,
    run: u64,
    /// Sequence numbers handed out so far (may overshoot `limit` by up to one per task).
    issued: AtomicU64,
    limit: u64,
    deadline: tokio::time::Instant,
    stop: AtomicBool,
}

impl Plan {
    /// The event id of request `seq`: all of one run's ids have the same length, so a body
    /// made for one can be reused for another by writing the id over it ([`Bodies`]).
    fn event_id(&self, seq: u64) -> String {
        format!("load-{:016x}-{seq:020}", self.run)
    }

    /// The body for event `id` (one of [`Plan::event_id`]) and the time it was made for, from
    /// `cache`, which is made again when the second changes.
    fn body_from(&self, cache: &mut Option<Bodies>, id: &str) -> (OffsetDateTime, Vec<u8>) {
        let now = OffsetDateTime::now_utc();
        let stale = cache
            .as_ref()
            .is_none_or(|b| b.ts.unix_timestamp() != now.unix_timestamp());
        if stale {
            *cache = Some(Bodies::new(self, now));
        }
        let b = cache.as_ref().expect("made above");
        let body = match &b.at {
            Some(at) => stamp(&b.template, at, id),
            None => self.body(b.ts, id).into_bytes(),
        };
        (b.ts, body)
    }

    /// The vendor's sample body for `id` with two fields spliced in: `load_id` (so that even a
    /// vendor whose sample body lacks the id gets unique bytes) and `load_filler`, sized so the
    /// body is `body_size` bytes when the sample is smaller than that.
    fn body(&self, ts: OffsetDateTime, id: &str) -> String {
        let sample = self.scheme.sample_body(ts, id);
        let trimmed = sample.trim_end();
        match trimmed
            .strip_suffix('}')
            .filter(|_| trimmed.starts_with('{'))
        {
            Some(head) => {
                let sep = if head.trim_end().ends_with('{') {
                    ""
                } else {
                    ","
                };
                let fixed =
                    head.len() + sep.len() + r#""load_id":"","load_filler":""}"#.len() + id.len();
                let fill = self.body_size.saturating_sub(fixed).min(self.filler.len());
                format!(
                    r#"{head}{sep}"load_id":"{id}","load_filler":"{}"}}"#,
                    &self.filler[..fill]
                )
            }
            // Not an object (no vendor does this today): wrap it.
            None => {
                let fixed =
                    r#"{"sample":,"load_id":"","load_filler":""}"#.len() + trimmed.len() + id.len();
                let fill = self.body_size.saturating_sub(fixed).min(self.filler.len());
                format!(
                    r#"{{"sample":{trimmed},"load_id":"{id}","load_filler":"{}"}}"#,
                    &self.filler[..fill]
                )
            }
        }
    }

    /// A signed request for sequence number `seq`, and its body length; an error when the
    /// vendor's headers are not valid HTTP (`--header`, say), which a dry run finds first.
    fn request(
        &self,
        bodies: &mut Option<Bodies>,
        seq: u64,
    ) -> Result<(Request<Full<Bytes>>, usize), String> {
        let id = self.event_id(seq);
        let (ts, body) = self.body_from(bodies, &id);
        let headers = self.scheme.sign(&self.key, &body, ts, &id);
        let len = body.len();
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.route.uri.clone();
        let h = req.headers_mut();
        if let Some(host) = &self.route.host {
            h.insert(HOST, host.clone());
        }
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            let v = HeaderValue::from_str(&value)
                .map_err(|_| format!("the value of {name} is not a valid header value"))?;
            h.append(n, v);
        }
        Ok((req, len))
    }

    /// `n` connections to the plan's route, each made when its first request is sent.
    fn connections(&self, n: u64) -> Vec<conn::Conn> {
        (0..n)
            .map(|_| conn::Conn::new(self.route.dial.clone()))
            .collect()
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || tokio::time::Instant::now() >= self.deadline
    }
}

const USER_AGENT_VALUE: &str = concat!("siemgate-load/", env!("CARGO_PKG_VERSION"));

/// What each run's connections are made with.
#[derive(Clone)]
struct ClientOptions {
    /// For https targets.
    tls: Option<Arc<rustls::ClientConfig>>,
    http2: bool,
    /// For each request, making the connection included.
    timeout: Duration,
    connect_timeout: Duration,
}

/// How requests reach an endpoint: where to connect, and the URI and `Host` they carry.
struct Route {
    dial: Arc<conn::Dial>,
    /// HTTP/1.1: the path (origin form), with `host` beside it; HTTP/2: the whole URL, whose
    /// scheme and authority become `:scheme` and `:authority`.
    uri: http::Uri,
    host: Option<HeaderValue>,
}

impl Route {
    fn new(endpoint: &Url, client: &ClientOptions) -> Result<Route, String> {
        let dial = conn::Dial::new(
            endpoint,
            client.tls.clone(),
            client.http2,
            client.connect_timeout,
        )?;
        let bad = |e: &dyn std::fmt::Display| format!("{endpoint}: {e}");
        let (uri, host) = if client.http2 {
            (endpoint.as_str().parse().map_err(|e| bad(&e))?, None)
        } else {
            // `host_str` keeps an IPv6 address's brackets, as `Host` wants them.
            let host = endpoint.host_str().unwrap_or_default();
            let host = match endpoint.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            };
            (
                endpoint.path().parse().map_err(|e| bad(&e))?,
                Some(HeaderValue::from_str(&host).map_err(|e| bad(&e))?),
            )
        };
        Ok(Route {
            dial: Arc::new(dial),
            uri,
            host,
        })
    }
}

/// One sender's bodies: the vendor's sample body is made (JSON built and written) once a second
/// for a stand-in id, and each request's id written over the stand-in where it appears. The
/// stand-in is checked when the template is made: a vendor whose sample does not hold the id
/// as given gets each body made afresh.
struct Bodies {
    ts: OffsetDateTime,
    template: Vec<u8>,
    /// Where the stand-in id begins in `template`.
    at: Option<Vec<usize>>,
}

impl Bodies {
    fn new(plan: &Plan, ts: OffsetDateTime) -> Bodies {
        let stand_in = plan.event_id(u64::MAX);
        let template = plan.body(ts, &stand_in).into_bytes();
        let at: Vec<usize> = template
            .windows(stand_in.len())
            .enumerate()
            .filter(|(_, w)| *w == stand_in.as_bytes())
            .map(|(i, _)| i)
            .collect();
        let probe = plan.event_id(0);
        let holds =
            !at.is_empty() && stamp(&template, &at, &probe) == plan.body(ts, &probe).into_bytes();
        Bodies {
            ts,
            template,
            at: holds.then_some(at),
        }
    }
}

/// `template` with `id` written at each of `at` (over a stand-in of the same length).
fn stamp(template: &[u8], at: &[usize], id: &str) -> Vec<u8> {
    let mut body = template.to_vec();
    for &i in at {
        body[i..i + id.len()].copy_from_slice(id.as_bytes());
    }
    body
}

/// Latency histogram in microseconds: exact below 64 µs, then 64 sub-buckets per power of two
/// (under 1.6 % error), fixed size whatever the run length.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * SUB) as usize;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = exp - SUB_BITS;
        let sub = (v >> shift) - SUB; // 0..SUB
        (SUB + u64::from(shift) * SUB + sub) as usize
    }

    /// The middle of bucket `i`, in microseconds.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let shift = (i - SUB) / SUB;
        let sub = (i - SUB) % SUB;
        let low = (SUB + sub) << shift;
        low + ((1u64 << shift) - 1) / 2
    }

    fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The `q`-quantile (0..=1) in milliseconds; 0 when nothing was recorded.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max_us) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }

    /// How many values were over `d` (to the bucket: under 1.6 % error).
    fn count_over(&self, d: Duration) -> u64 {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us) + 1..].iter().sum()
    }

    fn mean_ms(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64 / 1000.0
        }
    }
}

/// What one sender task saw.
struct Stats {
    /// From when each request was due (paced) or went out (back to back) to its answer.
    latency: Histogram,
    /// From when each request went out to its answer: the target's own time, without the
    /// wait of a paced request whose connection was still busy with the one before.
    service: Histogram,
    /// Paced: how late the load tool itself let a request go, for requests whose connection was
    /// idle when it was due (the pacer's own lateness, counted in `latency` too).
    pacing: Histogram,
    requests: u64,
    body_bytes: u64,
    accepted: u64,
    events: u64,
    duplicates: u64,
    /// 200 whose body was neither accepted nor duplicate.
    other_ok: u64,
    rate_limited: u64,
    unavailable: u64,
    other_status: BTreeMap<u16, u64>,
    errors: u64,
    connect_errors: u64,
    timeouts: u64,
    error_samples: Vec<String>,
}

impl Stats {
    fn new() -> Self {
        Stats {
            latency: Histogram::new(),
            service: Histogram::new(),
            pacing: Histogram::new(),
            requests: 0,
            body_bytes: 0,
            accepted: 0,
            events: 0,
            duplicates: 0,
            other_ok: 0,
            rate_limited: 0,
            unavailable: 0,
            other_status: BTreeMap::new(),
            errors: 0,
            connect_errors: 0,
            timeouts: 0,
            error_samples: Vec::new(),
        }
    }

    fn merge(&mut self, o: Stats) {
        self.latency.merge(&o.latency);
        self.service.merge(&o.service);
        self.pacing.merge(&o.pacing);
        self.requests += o.requests;
        self.body_bytes += o.body_bytes;
        self.accepted += o.accepted;
        self.events += o.events;
        self.duplicates += o.duplicates;
        self.other_ok += o.other_ok;
        self.rate_limited += o.rate_limited;
        self.unavailable += o.unavailable;
        for (k, v) in o.other_status {
            *self.other_status.entry(k).or_default() += v;
        }
        self.errors += o.errors;
        self.connect_errors += o.connect_errors;
        self.timeouts += o.timeouts;
        for e in o.error_samples {
            if self.error_samples.len() < 3 && !self.error_samples.contains(&e) {
                self.error_samples.push(e);
            }
        }
    }

    fn transport_error(&mut self, e: &conn::Error) {
        self.errors += 1;
        if e.is_connect() {
            self.connect_errors += 1;
        }
        if e.is_timeout() {
            self.timeouts += 1;
        }
        if self.error_samples.len() < 3 {
            let msg = e.to_string();
            if !self.error_samples.contains(&msg) {
                self.error_samples.push(msg);
            }
        }
    }

    fn non_200(&self) -> u64 {
        self.rate_limited + self.unavailable + self.other_status.values().sum::<u64>()
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    events: Option<u64>,
}

async fn sender(
    mut conn: conn::Conn,
    plan: Arc<Plan>,
    pace: Option<(pace::Pace, pace::Gate)>,
) -> Stats {
    let mut st = Stats::new();
    let mut bodies = None;
    let mut due = pace.as_ref().map(|(p, _)| p.first);
    while !plan.should_stop() {
        // Paced: wait until the next request is due, and count its latency from then (a
        // request due while the one before was still out is late already).
        let mut went_late = None;
        let started = match (&mut due, &pace) {
            (Some(at), Some((p, gate))) => {
                let idle = Instant::now() < *at;
                gate.until(*at).await;
                if plan.should_stop() {
                    break;
                }
                let scheduled = *at;
                went_late = idle.then(|| scheduled.elapsed());
                *at += p.every;
                scheduled
            }
            _ => Instant::now(),
        };
        let seq = plan.issued.fetch_add(1, Ordering::Relaxed);
        if seq >= plan.limit {
            break;
        }
        if let Some(late) = went_late {
            st.pacing.record(late);
        }
        let (req, len) = match plan.request(&mut bodies, seq) {
            Ok(r) => r,
            // Found by the dry run before the run: not reached.
            Err(e) => {
                st.errors += 1;
                st.error_samples.push(e);
                break;
            }
        };
        st.requests += 1;
        st.body_bytes += len as u64;
        let sent = Instant::now();
        let (status, body) = match conn.send(req, plan.client.timeout).await {
            Ok(a) => a,
            Err(e) => {
                st.transport_error(&e);
                tokio::time::sleep(ERROR_PAUSE).await;
                continue;
            }
        };
        st.latency.record(started.elapsed());
        st.service.record(sent.elapsed());
        match status {
            StatusCode::OK => match serde_json::from_slice::<Answer>(&body) {
                Ok(a) if a.status == "accepted" => {
                    st.accepted += 1;
                    st.events += a.events.unwrap_or(1);
                }
                Ok(a) if a.status == "duplicate" => st.duplicates += 1,
                _ => st.other_ok += 1,
            },
            StatusCode::TOO_MANY_REQUESTS => st.rate_limited += 1,
            StatusCode::SERVICE_UNAVAILABLE => st.unavailable += 1,
            s => *st.other_status.entry(s.as_u16()).or_default() += 1,
        }
    }
    st
}

fn endpoint(base: &str, source: &str) -> Result<Url, String> {
    let mut url = Url::parse(base).map_err(|e| format!("--url {base:?}: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("--url {base:?}: expected http:// or https://"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "--url {base:?}: give the base URL only, without query or fragment"
        ));
    }
    if source.is_empty() {
        return Err("--source must not be empty".into());
    }
    url.path_segments_mut()
        .map_err(|_| format!("--url {base:?}: not a base URL"))?
        .pop_if_empty()
        .extend(["v1", "webhooks", source]);
    Ok(url)
}

/// Checks the arguments and builds the plan.
fn prepare(args: &Args) -> Result<(Plan, Duration), String> {
    let kind = VendorKind::from_name(&args.vendor).ok_or_else(|| {
        format!(
            "--vendor {:?}: unknown; one of {}",
            args.vendor,
            VendorKind::names().join(", ")
        )
    })?;
    if kind == VendorKind::GenericHmac {
        return Err(
            "--vendor generic_hmac is not supported: its signing scheme lives in the gateway's \
                    config, which siemgate-load does not read"
                .into(),
        );
    }
    if args.body_size > MAX_BODY_SIZE {
        return Err(format!(
            "--body-size {}: at most {MAX_BODY_SIZE}",
            args.body_size
        ));
    }
    let opts = VendorOptions {
        header: args.header.clone(),
        timestamp_header: args.timestamp_header.clone(),
        generic: None,
    };
    for h in [&opts.header, &opts.timestamp_header].into_iter().flatten() {
        HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| format!("{h:?} is not a valid header name"))?;
    }
    let scheme = scheme_for(kind, &opts);
    let key = scheme
        .prepare_key(&Secret::new(args.secret.as_bytes()))
        .map_err(|e| format!("--secret is not usable for vendor {}: {e}", kind.name()))?;
    let endpoint = endpoint(&args.url, &args.source)?;

    let ca = match &args.ca_file {
        Some(p) => {
            let pem = std::fs::read(p).map_err(|e| format!("--ca-file {}: {e}", p.display()))?;
            let certs = <rustls_pki_types::CertificateDer as PemObject>::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--ca-file {}: {e}", p.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--ca-file {}: no PEM certificate in it",
                    p.display()
                ));
            }
            certs
        }
        None => Vec::new(),
    };
    let client = ClientOptions {
        tls: match endpoint.scheme() {
            "https" => Some(conn::tls_config(args.insecure, ca, args.http2)?),
            _ => None,
        },
        http2: args.http2,
        timeout: Duration::from_secs(args.timeout),
        connect_timeout: Duration::from_secs(args.timeout.min(10)),
    };
    let route = Route::new(&endpoint, &client)?;

    let secs = match (args.duration, args.requests) {
        (Some(d), _) => d,
        (None, Some(_)) => MAX_DURATION_SECS,
        (None, None) => 10,
    };
    let duration = Duration::from_secs(secs);
    let plan = Plan {
        scheme,
        key,
        endpoint,
        route,
        client,
        body_size: args.body_size,
        filler: "x".repeat(args.body_size),
        run: rand::random(),
        issued: AtomicU64::new(0),
        limit: args.requests.unwrap_or(u64::MAX),
        // Set when the run starts.
        deadline: tokio::time::Instant::now() + duration,
        stop: AtomicBool::new(false),
    };
    // A dry run of the first request: bad header values fail here, not a million times.
    plan.request(&mut None, u64::MAX)
        .map_err(|e| format!("cannot build a request: {e}"))?;
    Ok((plan, duration))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What a run watches besides its own requests: the gateway's metrics, the fake SIEM.
#[derive(Clone, Copy, Default)]
struct Observe<'a> {
    gauges: Option<&'a watch::Gauges>,
    siem: Option<&'a siem::Counts>,
    /// The target's process on this machine, whose CPU time is read before and after the run
    /// (the bare server's own process); without it, the gateway's comes from `gauges`.
    target_pid: Option<u32>,
}

/// What one run produced: its JSON summary, whether it failed (exit code 1), and whether Ctrl-C
/// ended it early (later runs are then skipped).
struct RunOutcome {
    summary: serde_json::Value,
    failed: bool,
    interrupted: bool,
}

/// Runs the load described by `plan`, over `--connections` new connections, until the duration or the request count is
/// reached (or Ctrl-C), prints the human report (headed `siemgate-load report`, plus `: {label}`
/// when given) and returns the JSON summary.
async fn run(
    args: &Args,
    label: Option<&str>,
    mut plan: Plan,
    duration: Duration,
    observe: Observe<'_>,
) -> RunOutcome {
    let sample_len = plan
        .body(OffsetDateTime::now_utc(), &plan.event_id(0))
        .len();
    let proto = if args.http2 { "HTTP/2" } else { "HTTP/1.1" };
    eprintln!(
        "siemgate-load: {} for up to {}s{}, {} connections ({proto}), vendor {}, ~{} byte bodies",
        plan.endpoint,
        duration.as_secs(),
        args.requests
            .map(|n| format!(" or {n} requests"))
            .unwrap_or_default(),
        args.connections,
        args.vendor,
        sample_len,
    );

    let start = Instant::now();
    let hiccups = hiccup::Meter::start();
    let cpu_before = cpu::now();
    let target_cpu_before = observe
        .target_pid
        .and_then(|p| siemgate::telemetry::process_cpu_seconds(Some(p)));
    let tool_cpu_before = siemgate::telemetry::process_cpu_seconds(None);
    let clients = plan.connections(args.connections);
    // The deadline counts from now, not from when the plan was made.
    plan.deadline = tokio::time::Instant::now() + duration;
    let plan = Arc::new(plan);

    // Ctrl-C ends the run early; the report is still printed.
    let plan_for_signal = Arc::clone(&plan);
    let signal_task = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            plan_for_signal.stop.store(true, Ordering::Relaxed);
        }
    });

    let hard_deadline = plan.deadline + Duration::from_secs(args.timeout) + GRACE;
    let n = clients.len() as u32;
    // Paced: each connection sends every n/rate seconds, the connections staggered evenly, each
    // request let go by the pacer thread when due.
    let (pacer, mut paced) = match args.rate {
        Some(r) => {
            let paces = pace::schedules(Instant::now(), r, n);
            let (pacer, gates) = pace::start(&paces);
            (pacer, paces.into_iter().zip(gates).map(Some).collect())
        }
        None => (None, Vec::new()),
    };
    paced.resize_with(clients.len(), || None);
    let tasks: Vec<_> = clients
        .into_iter()
        .zip(paced)
        .map(|(c, pace)| tokio::spawn(sender(c, Arc::clone(&plan), pace)))
        .collect();

    let siem_before = observe.siem.map(|c| c.events());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let join = async {
        let mut total = Stats::new();
        let mut lost_tasks = 0u64;
        for t in tasks {
            let abort = t.abort_handle();
            match tokio::time::timeout_at(hard_deadline, t).await {
                Ok(Ok(st)) => total.merge(st),
                Ok(Err(e)) => {
                    eprintln!("siemgate-load: a sender task failed: {e}");
                    lost_tasks += 1;
                }
                Err(_) => {
                    abort.abort();
                    lost_tasks += 1;
                }
            }
        }
        let _ = done_tx.send(());
        (total, lost_tasks)
    };
    let watching = async {
        match observe.gauges {
            Some(g) => Some(g.watch(async { drop(done_rx.await) }).await),
            None => None,
        }
    };
    let ((total, lost_tasks), watched) = tokio::join!(join, watching);
    drop(pacer);
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let hiccups = hiccups.finish();
    let cpu_share = cpu_before
        .zip(cpu::now())
        .and_then(|(a, b)| cpu::summary(&a, &b));
    let siem_events = observe.siem.zip(siem_before).map(|(c, b)| c.events() - b);
    let target_cpu = match observe.target_pid {
        Some(p) => target_cpu_before
            .zip(siemgate::telemetry::process_cpu_seconds(Some(p)))
            .map(|(a, b)| (b - a).max(0.0)),
        None => watched.as_ref().and_then(watch::Watched::cpu_seconds),
    };
    let tool_cpu = tool_cpu_before
        .zip(siemgate::telemetry::process_cpu_seconds(None))
        .map(|(a, b)| (b - a).max(0.0));
    signal_task.abort();
    let interrupted = plan.stop.load(Ordering::Relaxed);

    let h = &total.latency;
    let other_statuses: u64 = total.other_status.values().sum();
    let failed = total.errors > 0 || total.non_200() > 0 || lost_tasks > 0;

    match label {
        Some(l) => println!("siemgate-load report: {l}"),
        None => println!("siemgate-load report"),
    }
    println!(
        "  target        {} (vendor {}, {proto})",
        plan.endpoint, args.vendor
    );
    println!("  connections   {}", args.connections);
    match args.rate {
        Some(r) => println!("  offered       {r:.1} requests/s (paced; latency from when due)"),
        None => println!("  offered       back to back"),
    }
    println!(
        "  body          {} bytes (mean {:.0})",
        sample_len,
        total.body_bytes as f64 / total.requests.max(1) as f64
    );
    println!("  elapsed       {elapsed:.3} s");
    println!(
        "  requests      {} ({:.1}/s)",
        total.requests,
        total.requests as f64 / elapsed
    );
    println!(
        "  accepted      {} ({:.1} events/s)",
        total.accepted,
        total.accepted as f64 / elapsed
    );
    println!("  duplicates    {}", total.duplicates);
    if total.other_ok > 0 {
        println!(
            "  200 other     {} (body neither accepted nor duplicate)",
            total.other_ok
        );
    }
    println!("  429 limited   {}", total.rate_limited);
    println!("  503 unavail.  {}", total.unavailable);
    if other_statuses > 0 {
        let codes: Vec<String> = total
            .other_status
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        println!("  other status  {other_statuses} ({})", codes.join(", "));
    } else {
        println!("  other status  0");
    }
    println!(
        "  errors        {} (connect {}, timeout {})",
        total.errors, total.connect_errors, total.timeouts
    );
    for e in &total.error_samples {
        println!("    e.g. {e}");
    }
    if lost_tasks > 0 {
        println!(
            "  lost tasks    {lost_tasks} (aborted at the hard deadline; their counts are missing)"
        );
    }
    println!(
        "  latency (ms)  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}  (n={})",
        h.quantile_ms(0.50),
        h.quantile_ms(0.90),
        h.quantile_ms(0.99),
        h.quantile_ms(0.999),
        h.max_us as f64 / 1000.0,
        h.mean_ms(),
        h.total
    );
    let hiccups = hiccup::summary(&hiccups);
    println!(
        "  hiccups       max {} ms, {} over 5 ms, {} over 10 ms (this machine's own stalls: a thread sleeping 1 ms at a time, woken late)",
        hiccups["max_ms"], hiccups["over_5ms"], hiccups["over_10ms"],
    );
    if let Some(c) = &cpu_share {
        println!(
            "  machine CPU   busy {}%, idle {}%, stolen {}% (by the host, from this VM: a share that moves every figure)",
            c["busy_pct"], c["idle_pct"], c["steal_pct"],
        );
    }
    if args.rate.is_some() {
        let sv = &total.service;
        println!(
            "  service (ms)  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (from when each request went out)",
            sv.quantile_ms(0.50),
            sv.quantile_ms(0.90),
            sv.quantile_ms(0.99),
            sv.quantile_ms(0.999),
            sv.max_us as f64 / 1000.0,
        );
        let pc = &total.pacing;
        println!(
            "  pacing (ms)   p50 {:.3}  p99 {:.3}  max {:.3}  (how late this tool let a request go whose connection was idle; counted in the latency above)",
            pc.quantile_ms(0.50),
            pc.quantile_ms(0.99),
            pc.max_us as f64 / 1000.0,
        );
    }
    if let Some(n) = siem_events {
        println!(
            "  fake SIEM     {n} events delivered ({:.1}/s)",
            n as f64 / elapsed
        );
    }
    let gateway_metrics = watched.map(|w| w.json());
    if let Some(g) = &gateway_metrics {
        println!("  gateway       {g}");
    }
    let per_request_us =
        |c: f64| (total.requests > 0).then(|| round3(c * 1e6 / total.requests as f64));
    let target_cpu_us = target_cpu.and_then(per_request_us);
    if let (Some(c), Some(us)) = (target_cpu, target_cpu_us) {
        println!(
            "  target CPU    {c:.2} s: {us:.1} us a request (user and system, all its threads)"
        );
    }
    let tool_cpu_us = tool_cpu.and_then(per_request_us);
    if let Some(us) = tool_cpu_us {
        println!("  this tool CPU {us:.1} us a request (with --baseline, the bare server's too)");
    }

    let mut summary = serde_json::json!({
        "events_per_sec": round3(total.accepted as f64 / elapsed),
        "requests_per_sec": round3(total.requests as f64 / elapsed),
        "p50_ms": round3(h.quantile_ms(0.50)),
        "p90_ms": round3(h.quantile_ms(0.90)),
        "p99_ms": round3(h.quantile_ms(0.99)),
        "max_ms": round3(h.max_us as f64 / 1000.0),
        "service_p50_ms": round3(total.service.quantile_ms(0.50)),
        "service_p99_ms": round3(total.service.quantile_ms(0.99)),
        "requests": total.requests,
        "accepted": total.accepted,
        "duplicates": total.duplicates,
        "rate_limited": total.rate_limited,
        "unavailable": total.unavailable,
        "other_status": other_statuses + total.other_ok,
        "errors": total.errors,
        "connections": args.connections,
        "body_bytes": sample_len,
        "seconds": round3(elapsed),
        "vendor": args.vendor,
        "http2": args.http2,
        "offered_per_sec": args.rate,
        "ok": !failed,
        "hiccups": hiccups,
    });
    if args.rate.is_some() {
        summary["pacing"] = serde_json::json!({
            "late_p50_ms": round3(total.pacing.quantile_ms(0.50)),
            "late_p99_ms": round3(total.pacing.quantile_ms(0.99)),
            "late_max_ms": round3(total.pacing.max_us as f64 / 1000.0),
            "samples": total.pacing.total,
        });
    }
    if let Some(g) = gateway_metrics {
        summary["gateway_metrics"] = g;
    }
    if let Some(c) = cpu_share {
        summary["cpu"] = c;
    }
    if let Some(us) = target_cpu_us {
        summary["target_cpu_us_per_request"] = us.into();
    }
    if let Some(us) = tool_cpu_us {
        summary["tool_cpu_us_per_request"] = us.into();
    }
    if let Some(n) = siem_events {
        summary["siem_events"] = n.into();
        summary["siem_events_per_sec"] = round3(n as f64 / elapsed).into();
    }
    RunOutcome {
        summary,
        failed,
        interrupted,
    }
}

/// How long the fsync probe runs, and what it appends each time: about one spooled 1 KiB event.
const PROBE_TIME: Duration = Duration::from_secs(5);
const PROBE_RECORD: usize = 1536;

/// Appends [`PROBE_RECORD`] bytes to a temporary file in `dir` and `fdatasync`s it, over and
/// over for `for_how_long`; the histogram of each append and sync. The file is removed.
fn fsync_probe(dir: &std::path::Path, for_how_long: Duration) -> Result<Histogram, String> {
    use std::io::Write;
    let path = dir.join(format!(".siemgate-load-fsync-probe-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("--fsync-probe {}: {e}", path.display()))?;
    let record = vec![b'x'; PROBE_RECORD];
    let mut h = Histogram::new();
    let until = Instant::now() + for_how_long;
    let result = loop {
        if Instant::now() >= until {
            break Ok(());
        }
        let started = Instant::now();
        if let Err(e) = f.write_all(&record).and_then(|_| f.sync_data()) {
            break Err(format!("--fsync-probe {}: {e}", path.display()));
        }
        h.record(started.elapsed());
    };
    drop(f);
    let _ = std::fs::remove_file(&path);
    result.map(|_| h)
}

/// Runs the fsync probe (off the runtime's threads), prints it, and returns its JSON summary.
async fn run_fsync_probe(dir: std::path::PathBuf) -> Result<serde_json::Value, String> {
    eprintln!(
        "siemgate-load: fsync probe in {} for {}s",
        dir.display(),
        PROBE_TIME.as_secs()
    );
    let h = tokio::task::spawn_blocking(move || fsync_probe(&dir, PROBE_TIME))
        .await
        .map_err(|e| format!("the fsync probe failed: {e}"))??;
    println!(
        "siemgate-load fsync probe: {PROBE_RECORD}-byte append + fdatasync, p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  over 10 ms: {}  (n={})",
        h.quantile_ms(0.5),
        h.quantile_ms(0.99),
        h.quantile_ms(0.999),
        h.max_us as f64 / 1000.0,
        h.count_over(Duration::from_millis(10)),
        h.total
    );
    // A durable ack waits for a sync, and one sync that stalls holds up every request waiting
    // for it and every one arriving meanwhile: the rare slow syncs (p99.9, over 10 ms) shape a
    // gateway's p99 more than the sync p99 does (README, Benchmarks).
    Ok(serde_json::json!({
        "p50_ms": round3(h.quantile_ms(0.5)),
        "p99_ms": round3(h.quantile_ms(0.99)),
        "p999_ms": round3(h.quantile_ms(0.999)),
        "max_ms": round3(h.max_us as f64 / 1000.0),
        "over_10ms": h.count_over(Duration::from_millis(10)),
        "syncs": h.total,
    }))
}

/// The baseline server's answer: what the gateway answers for one accepted event.
const BASELINE_ANSWER: &[u8] = br#"{"status":"accepted","events":1}"#;

/// The baseline handler: read the whole body, answer `200` with [`BASELINE_ANSWER`]. A body
/// that cannot be read fails the request (hyper then closes the connection).
async fn baseline_handle(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<serve::Response, hyper::Error> {
    let _body = req.into_body().collect().await?;
    Ok(serve::json(StatusCode::OK, BASELINE_ANSWER))
}

/// Starts the bare hyper server on `addr` (127.0.0.1:0 in-process). Returns its address and
/// its task; aborting that task stops it.
async fn start_baseline(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve::serve(addr, baseline_handle).await
}

/// Where the in-process bare server listens.
const LOOPBACK_ANY_PORT: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// The gateway endpoint moved to the baseline server: same path, plain HTTP on `addr`.
fn baseline_endpoint(gateway: &Url, addr: SocketAddr) -> Url {
    let mut url = gateway.clone();
    // `endpoint` only lets http and https through, and both have a host and a port, so none of
    // these setters can fail.
    let _ = url.set_scheme("http");
    let _ = url.set_ip_host(addr.ip());
    let _ = url.set_port(Some(addr.port()));
    url
}

/// The first argument that makes this program the bare server of `--baseline-process`:
/// `siemgate-load --serve-baseline ADDR` serves on ADDR, prints the bound address on a line
/// of its own, and exits when its standard input closes (when the load tool that started it
/// ends, however it ends).
const SERVE_BASELINE: &str = "--serve-baseline";

/// `--serve-baseline ADDR`: see [`SERVE_BASELINE`].
async fn serve_baseline(addr: Option<std::ffi::OsString>) -> ExitCode {
    let addr = match addr
        .as_deref()
        .map(|a| a.to_str().map(str::parse::<SocketAddr>))
    {
        None => Ok(LOOPBACK_ANY_PORT),
        Some(Some(Ok(a))) => Ok(a),
        Some(_) => Err(format!(
            "{SERVE_BASELINE}: expected an address such as 127.0.0.1:0"
        )),
    };
    let served = match addr {
        Ok(a) => start_baseline(a)
            .await
            .map_err(|e| format!("{SERVE_BASELINE}: cannot listen: {e}")),
        Err(e) => Err(e),
    };
    let (addr, _server) = match served {
        Ok(s) => s,
        Err(e) => {
            eprintln!("siemgate-load: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{addr}");
    // Until standard input closes (a thread of its own: reading it blocks).
    let _ = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
    })
    .await;
    ExitCode::SUCCESS
}

/// The bare server of `--baseline-process`: this program started again with
/// [`SERVE_BASELINE`]. [`BareProcess::stop`] ends it by closing its standard input; dropped
/// without that (an error on the way), it is killed. Should this tool itself be killed, the
/// pipe closes and the child ends all the same.
struct BareProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl BareProcess {
    async fn start() -> Result<BareProcess, String> {
        use tokio::io::AsyncBufReadExt;
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to start the bare server: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .args([SERVE_BASELINE, "127.0.0.1:0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the bare server's process: {e}"))?;
        let stdout = child.stdout.take().ok_or("the bare server has no output")?;
        let mut line = String::new();
        let mut lines = tokio::io::BufReader::new(stdout);
        tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut line))
            .await
            .map_err(|_| "the bare server's process did not say where it listens".to_string())?
            .map_err(|e| format!("cannot read the bare server's address: {e}"))?;
        let addr = line
            .trim()
            .parse()
            .map_err(|_| format!("the bare server said {line:?}, not its address"))?;
        Ok(BareProcess { child, addr })
    }

    /// Ends the process (its standard input closes) and waits for it, killing it should it
    /// not end within a second.
    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The bare server of a baseline run: a task of this process, or a process of its own.
enum Bare {
    InProcess(SocketAddr, tokio::task::JoinHandle<()>),
    Process(BareProcess),
}

/// Starts the baseline server (in this process, or in its own with `--baseline-process`) and
/// runs the same load against it, with the same arguments.
async fn run_baseline(args: &Args) -> Result<RunOutcome, String> {
    let (mut plan, duration) = prepare(args)?;
    let bare = if args.baseline_process {
        Bare::Process(BareProcess::start().await?)
    } else {
        let (addr, task) = start_baseline(LOOPBACK_ANY_PORT)
            .await
            .map_err(|e| format!("cannot start the baseline server on 127.0.0.1: {e}"))?;
        Bare::InProcess(addr, task)
    };
    let (addr, label, server, pid) = match &bare {
        Bare::InProcess(addr, _) => (*addr, "baseline (bare hyper)", "in-process", None),
        Bare::Process(p) => (
            p.addr,
            "baseline (bare hyper, own process)",
            "own process",
            p.child.id(),
        ),
    };
    plan.endpoint = baseline_endpoint(&plan.endpoint, addr);
    plan.route = Route::new(&plan.endpoint, &plan.client)?;
    let observe = Observe {
        target_pid: pid,
        ..Observe::default()
    };
    eprintln!("siemgate-load: {label} on {addr}");
    let mut outcome = run(args, Some(label), plan, duration, observe).await;
    outcome.summary["server"] = server.into();
    if let Some(pid) = pid {
        outcome.summary["server_pid"] = pid.into();
    }
    match bare {
        Bare::InProcess(_, task) => task.abort(),
        Bare::Process(p) => p.stop().await,
    }
    Ok(outcome)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|a| a == SERVE_BASELINE) {
        return serve_baseline(argv.next()).await;
    }
    let args = Args::parse();
    match load(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("siemgate-load: {e}");
            ExitCode::from(2)
        }
    }
}

/// The change from `first` to `last` in percent, one decimal.
fn change_pct(first: &serde_json::Value, last: &serde_json::Value) -> Option<f64> {
    let (a, b) = (first.as_f64()?, last.as_f64()?);
    (a > 0.0).then(|| ((b / a - 1.0) * 1000.0).round() / 10.0)
}

/// Everything the arguments ask for, in order: the fsync probe, the rounds of load (watched),
/// the drain, the baseline. Prints the last line's JSON; `Ok(false)` when something failed,
/// `Err` for a usage error found before anything ran.
async fn load(args: &Args) -> Result<bool, String> {
    let send = args.requests != Some(0);
    if !send && !args.drain {
        return Err("--requests 0 sends nothing: give it with --drain".into());
    }
    if !send && args.wants_baseline() {
        return Err("--requests 0 and --baseline: the baseline would send nothing".into());
    }
    // Everything is checked before anything runs.
    let mut first = Some(prepare(args)?);
    let gauges = args
        .metrics
        .as_deref()
        .map(watch::Gauges::new)
        .transpose()?;
    let siem = match args.fake_siem {
        Some(addr) => {
            let s = siem::start(addr)
                .await
                .map_err(|e| format!("--fake-siem {addr}: {e}"))?;
            eprintln!("siemgate-load: fake SIEM on http://{}", s.addr);
            Some(s)
        }
        None => None,
    };
    let fsync = match &args.fsync_probe {
        Some(dir) => Some(run_fsync_probe(dir.clone()).await?),
        None => None,
    };
    let observe = Observe {
        gauges: gauges.as_ref(),
        siem: siem.as_ref().map(|s| &*s.counts),
        target_pid: None,
    };

    let mut ok = true;
    let mut interrupted = false;
    let mut rounds = Vec::new();
    for r in 1..=args.rounds {
        if !send {
            break;
        }
        let (plan, duration) = match first.take() {
            Some(p) => p,
            // A new plan per round: a new run prefix, so no event id repeats.
            None => prepare(args)?,
        };
        let round = (args.rounds > 1).then(|| format!("round {r}/{}", args.rounds));
        let label = match (args.wants_baseline(), round) {
            (true, Some(round)) => Some(format!("gateway, {round}")),
            (true, None) => Some("gateway".to_string()),
            (false, round) => round,
        };
        let o = run(args, label.as_deref(), plan, duration, observe).await;
        ok &= !o.failed;
        rounds.push(o.summary);
        if o.interrupted {
            interrupted = true;
            break;
        }
    }

    let mut drain = None;
    if let Some(g) = gauges.as_ref().filter(|_| args.drain && !interrupted) {
        eprintln!(
            "siemgate-load: waiting for the spool to drain (at most {}s)",
            args.drain_timeout
        );
        match g
            .drain(Duration::from_secs(args.drain_timeout), observe.siem)
            .await
        {
            Some(d) => {
                let j = d.json();
                println!("siemgate-load drain");
                println!("  {j}");
                ok &= d.emptied();
                drain = Some(j);
            }
            None => {
                eprintln!(
                    "siemgate-load: cannot read --metrics {}: no drain to watch",
                    args.metrics.as_deref().unwrap_or_default()
                );
                ok = false;
            }
        }
    }

    let baseline = if !args.wants_baseline() {
        None
    } else if interrupted {
        eprintln!("siemgate-load: interrupted; baseline run skipped");
        ok = false;
        None
    } else {
        match run_baseline(args).await {
            Ok(b) => {
                ok &= !b.failed;
                Some(b.summary)
            }
            Err(e) => {
                eprintln!("siemgate-load: baseline run skipped: {e}");
                ok = false;
                None
            }
        }
    };

    let siem = siem.map(|s| {
        let j = s.counts.json();
        if j["malformed"] != 0 {
            eprintln!("siemgate-load: the fake SIEM refused malformed batches: {j}");
            ok = false;
        }
        j
    });
    let mut out = if rounds.len() > 1 {
        let (f, l) = (&rounds[0], &rounds[rounds.len() - 1]);
        let first_to_last = serde_json::json!({
            "events_per_sec_change_pct": change_pct(&f["events_per_sec"], &l["events_per_sec"]),
            "p99_change_pct": change_pct(&f["p99_ms"], &l["p99_ms"]),
        });
        serde_json::json!({ "rounds": rounds, "first_to_last": first_to_last })
    } else if let Some(one) = rounds.pop() {
        if args.wants_baseline() {
            serde_json::json!({ "gateway": one })
        } else {
            one
        }
    } else {
        serde_json::json!({})
    };
    if args.wants_baseline() {
        // The combined form always carries both, null when not run.
        out["baseline"] = baseline.into();
        out["fsync"] = serde_json::Value::Null;
    }
    for (key, v) in [("fsync", fsync), ("drain", drain), ("siem", siem)] {
        if let Some(v) = v {
            out[key] = v;
        }
    }
    if let Some(c) = comparison(&out) {
        println!("siemgate-load comparison");
        println!(
            "  events/s      gateway {} = {} of the bare server's {}",
            out["gateway"]["events_per_sec"], c["ratio"], out["baseline"]["events_per_sec"]
        );
        if !c["cpu_per_request_x"].is_null() {
            println!(
                "  CPU/request   gateway {} us = {} x the bare server's {} us",
                out["gateway"]["target_cpu_us_per_request"],
                c["cpu_per_request_x"],
                out["baseline"]["target_cpu_us_per_request"]
            );
        }
        if !c["p99_target_ms"].is_null() {
            println!(
                "  p99           gateway {} ms against {} ms (the bare server's p99 + 2 x the sync p99): {}",
                out["gateway"]["p99_ms"],
                c["p99_target_ms"],
                if c["p99_within_target"] == true { "within" } else { "over" }
            );
        }
        out["comparison"] = c;
    }
    println!("{out}");
    Ok(ok)
}

/// The issue's two ratios for a run with `--baseline` (one round): the gateway's events/s as a
/// share of the bare server's, and, when the fsync probe ran, its p99 against the bare server's
/// p99 plus twice the sync p99 (one wait for a group commit being the only cost a durable
/// answer must add). `None` when there is no pair to compare.
fn comparison(out: &serde_json::Value) -> Option<serde_json::Value> {
    let (g, b) = (&out["gateway"], &out["baseline"]);
    let ratio =
        g["events_per_sec"].as_f64()? / b["events_per_sec"].as_f64().filter(|v| *v > 0.0)?;
    let mut c = serde_json::json!({ "ratio": round3(ratio) });
    // What a request cost each in CPU time, when both were measured (the gateway's from its
    // metrics, the bare server's from its own process): the ratio without the host's noise.
    if let (Some(gc), Some(bc)) = (
        g["target_cpu_us_per_request"].as_f64(),
        b["target_cpu_us_per_request"].as_f64().filter(|v| *v > 0.0),
    ) {
        c["cpu_per_request_x"] = round3(gc / bc).into();
    }
    if let (Some(bp), Some(sp), Some(gp)) = (
        b["p99_ms"].as_f64(),
        out["fsync"]["p99_ms"].as_f64(),
        g["p99_ms"].as_f64(),
    ) {
        let target = round3(bp + 2.0 * sp);
        c["p99_target_ms"] = target.into();
        c["p99_within_target"] = (gp <= target).into();
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in (0..1_000_000u64)
            .step_by(7)
            .chain([u32::MAX as u64, u64::MAX / 3])
        {
            let i = Histogram::index(v);
            assert!(i < BUCKETS);
            assert!(i >= last, "index not monotonic at {v}");
            last = i;
            let mid = Histogram::value(i);
            let err = (mid as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 1.0 / SUB as f64, "value {v} bucket {i} mid {mid}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert!((h.quantile_ms(0.5) - 50.0).abs() < 1.0);
        assert!((h.quantile_ms(0.99) - 99.0).abs() < 1.6);
        assert_eq!(h.max_us, 100_000);
        assert_eq!(h.count_over(Duration::from_millis(90)), 10);
        assert_eq!(h.count_over(Duration::from_millis(100)), 0);
        assert_eq!(h.count_over(Duration::ZERO), 100);
    }

    #[test]
    fn bodies_are_valid_unique_json_of_the_requested_size() {
        for &kind in VendorKind::ALL {
            if kind == VendorKind::GenericHmac {
                continue;
            }
            let endpoint = Url::parse("http://127.0.0.1/").unwrap();
            let client = ClientOptions {
                tls: None,
                http2: false,
                timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
            };
            let plan = Plan {
                scheme: scheme_for(kind, &VendorOptions::default()),
                key: Key::plain(b"k"),
                route: Route::new(&endpoint, &client).unwrap(),
                client,
                endpoint,
                body_size: 1024,
                filler: "x".repeat(1024),
                run: 7,
                issued: AtomicU64::new(0),
                limit: 1,
                deadline: tokio::time::Instant::now(),
                stop: AtomicBool::new(false),
            };
            let ts = OffsetDateTime::now_utc();
            let a = plan.body(ts, &plan.event_id(1));
            let b = plan.body(ts, &plan.event_id(123_456));
            assert_ne!(a, b);
            for body in [&a, &b] {
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                assert!(v.get("load_id").is_some(), "{}", kind.name());
                assert_eq!(body.len(), 1024, "{}", kind.name());
            }
            // A body written over the second's template is the body made afresh, byte for byte,
            // and the template is used: every sample holds the id as given, in `load_id` at least.
            let mut cache = None;
            for seq in [0, 9, 123_456, u64::MAX - 1] {
                let (ts, body) = plan.body_from(&mut cache, &plan.event_id(seq));
                assert_eq!(
                    String::from_utf8(body).unwrap(),
                    plan.body(ts, &plan.event_id(seq)),
                    "{}",
                    kind.name()
                );
            }
            let at = cache.unwrap().at;
            assert!(at.is_some_and(|a| !a.is_empty()), "{}", kind.name());
        }
    }

    #[tokio::test]
    async fn baseline_server_answers_200_over_http1_and_h2() {
        let (addr, server) = start_baseline(LOOPBACK_ANY_PORT).await.unwrap();
        let url = format!("http://{addr}/v1/webhooks/x");
        for h2 in [false, true] {
            let b = reqwest::Client::builder().no_proxy();
            let client = if h2 {
                b.http2_prior_knowledge()
            } else {
                b.http1_only()
            }
            .build()
            .unwrap();
            for _ in 0..2 {
                let resp = client
                    .post(&url)
                    .body("x".repeat(100_000))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "h2 {h2}");
                assert_eq!(resp.headers()[CONTENT_TYPE], "application/json", "h2 {h2}");
                assert_eq!(
                    resp.version(),
                    if h2 {
                        reqwest::Version::HTTP_2
                    } else {
                        reqwest::Version::HTTP_11
                    }
                );
                assert_eq!(&resp.bytes().await.unwrap()[..], BASELINE_ANSWER);
            }
        }
        server.abort();
    }

    #[test]
    fn baseline_endpoint_keeps_the_path() {
        let gw = endpoint("https://gw.example:8443/prefix/", "src").unwrap();
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            baseline_endpoint(&gw, addr).as_str(),
            "http://127.0.0.1:4321/prefix/v1/webhooks/src"
        );
    }

    /// Arguments for 20 requests over 2 connections to a (never used) gateway, and `more`.
    fn twenty_requests_over_two_connections(more: &[&str]) -> Result<Args, clap::Error> {
        let base = [
            "siemgate-load",
            "--url",
            "http://127.0.0.1:9",
            "--source",
            "s",
            "--secret",
            "k",
            "--connections",
            "2",
            "--requests",
            "20",
        ];
        Args::try_parse_from(base.iter().chain(more))
    }

    /// Paced: 20 requests at 100/s over 2 connections are due over 190 ms, so the run cannot
    /// end sooner however fast the server answers (a lower bound only: never a flaky upper one).
    #[tokio::test]
    async fn a_paced_run_sends_no_request_before_it_is_due() {
        let args = twenty_requests_over_two_connections(&["--rate", "100"]).unwrap();
        let b = run_baseline(&args).await.unwrap();
        assert!(!b.failed);
        assert_eq!(b.summary["requests"], 20);
        assert_eq!(b.summary["offered_per_sec"], 100.0);
        assert!(
            b.summary["seconds"].as_f64().unwrap() >= 0.19,
            "{}",
            b.summary
        );
        // The target's own time never exceeds the time counted from when each was due.
        let service = b.summary["service_p99_ms"].as_f64().unwrap();
        assert!(service > 0.0 && service <= b.summary["p99_ms"].as_f64().unwrap());
        assert!(b.summary["hiccups"]["samples"].as_u64().unwrap() >= 1);
        // The pacer's own lateness, counted for the requests that found their connection idle
        // (at 50/s a connection, most of them), never for more than were sent.
        let pacing = b.summary["pacing"]["samples"].as_u64().unwrap();
        assert!((1..=20).contains(&pacing), "{}", b.summary);
        // A 0.2 s run on Linux: the machine's CPU shares over it (a mostly idle run may show
        // no busy clock tick at all: the shares, not the busy one, are what is certain).
        let cpu = &b.summary["cpu"];
        let shares: f64 = ["busy_pct", "idle_pct", "steal_pct"]
            .iter()
            .map(|k| cpu[k].as_f64().unwrap())
            .sum();
        assert!((shares - 100.0).abs() <= 0.2, "{cpu}");
        for bad in ["0", "-5", "nan", "x"] {
            assert!(
                twenty_requests_over_two_connections(&["--rate", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_pair_of_runs_is_compared_as_the_issue_states_its_targets() {
        let out = serde_json::json!({
            "gateway": {"events_per_sec": 20000.0, "p99_ms": 3.9},
            "baseline": {"events_per_sec": 50000.0, "p99_ms": 2.5},
            "fsync": {"p99_ms": 0.25},
        });
        let c = comparison(&out).unwrap();
        assert_eq!(c["ratio"], 0.4);
        assert_eq!(c["p99_target_ms"], 3.0);
        assert_eq!(c["p99_within_target"], false);
        let mut within = out.clone();
        within["gateway"]["p99_ms"] = 3.0.into();
        assert_eq!(comparison(&within).unwrap()["p99_within_target"], true);
        // Without the probe, only the ratio; without a baseline, nothing.
        let mut no_probe = out.clone();
        no_probe["fsync"] = serde_json::Value::Null;
        let c = comparison(&no_probe).unwrap();
        assert_eq!(c["ratio"], 0.4);
        assert!(c.get("p99_target_ms").is_none());
        assert!(c.get("cpu_per_request_x").is_none());
        // With both processes' CPU time per request, how many times the bare server's the
        // gateway's is.
        let mut cpu = out.clone();
        cpu["gateway"]["target_cpu_us_per_request"] = 70.0.into();
        cpu["baseline"]["target_cpu_us_per_request"] = 20.0.into();
        assert_eq!(comparison(&cpu).unwrap()["cpu_per_request_x"], 3.5);
        cpu["baseline"]["target_cpu_us_per_request"] = 0.0.into();
        assert!(comparison(&cpu).unwrap().get("cpu_per_request_x").is_none());
        let mut skipped = out;
        skipped["baseline"] = serde_json::Value::Null;
        assert!(comparison(&skipped).is_none());
    }

    #[test]
    fn the_fsync_probe_measures_syncs_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let h = fsync_probe(dir.path(), Duration::from_millis(200)).unwrap();
        assert!(h.total > 0 && h.max_us > 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(fsync_probe(&dir.path().join("missing"), Duration::from_millis(1)).is_err());
    }

    #[tokio::test]
    async fn baseline_run_counts_every_request_as_accepted() {
        let args = twenty_requests_over_two_connections(&["--baseline"]).unwrap();
        let b = run_baseline(&args).await.unwrap();
        assert!(!b.failed);
        assert_eq!(b.summary["requests"], 20);
        assert_eq!(b.summary["accepted"], 20);
        assert_eq!(b.summary["ok"], true);
        // The tool's own CPU a request, the bare server's with it (in-process).
        assert!(b.summary["tool_cpu_us_per_request"].as_f64().is_some());
    }
}
