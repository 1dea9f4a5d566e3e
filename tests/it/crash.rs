//! Nothing acknowledged is ever lost: the gateway binary is killed with SIGKILL mid-stream,
//! again and again, while its sink fails on and off; every event it answered 200 must reach
//! the sink in the end (duplicates are allowed, and counted).

use crate::fake::{delivered_uids, FakeServer, Reply};
use crate::support::{free_port, source, spawn_binary};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const N: usize = 400;
const SENDERS: usize = 8;
/// SIGKILL the gateway once this many events are acknowledged.
const KILL_AT: [usize; 4] = [80, 160, 240, 320];
const SOURCE: &str = "crash-gh";

/// Every log line of every gateway run, prefixed with the run's number.
pub(crate) type Log = Arc<Mutex<Vec<String>>>;

/// A running gateway binary; killed (SIGKILL) and reaped when dropped, so a failing test
/// leaks no process.
pub(crate) struct Gateway {
    child: Option<Child>,
}

impl Gateway {
    /// Starts `siemgate run` on `cfg` and returns once it logs "siemgate listening".
    pub(crate) fn start(cfg: &Path, run: usize, log: &Log) -> Gateway {
        let sink = log.clone();
        let (child, rx) = spawn_binary(cfg, move |line| {
            sink.lock().unwrap().push(format!("[run {run}] {line}"));
        });
        let gw = Gateway { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains("siemgate listening") => return gw,
                Ok(_) => {}
                Err(_) => panic!(
                    "run {run}: no \"siemgate listening\" log line; logs:\n{}",
                    tail(log, 40)
                ),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM (through the `kill` command), then waits up to `limit` for the exit.
    pub(crate) async fn terminate(self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {pid} failed");
        self.exit_within(limit).await
    }

    /// Waits up to `limit` for the process to exit by itself.
    async fn exit_within(mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn tail(log: &Log, n: usize) -> String {
    let log = log.lock().unwrap();
    log[log.len().saturating_sub(n)..].join("\n")
}

/// One signed webhook, ready to send again and again.
struct Webhook {
    id: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Acks {
    ids: Mutex<HashSet<String>>,
    count: watch::Sender<usize>,
}

/// Sends events (taken from `next`) one at a time, each until the gateway answers 200.
async fn sender(
    url: String,
    hooks: Arc<Vec<Webhook>>,
    next: Arc<AtomicUsize>,
    acks: Arc<Acks>,
    mut generation: watch::Receiver<usize>,
) -> usize {
    // No pooled connections: after a kill every request dials the gateway that runs now.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut attempts = 0;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(hook) = hooks.get(i) else {
            return attempts;
        };
        let mut backoff = Duration::from_millis(5);
        loop {
            attempts += 1;
            let seen = *generation.borrow_and_update();
            let req = hook
                .headers
                .iter()
                .fold(client.post(&url).body(hook.body.clone()), |r, (k, v)| {
                    r.header(k, v)
                });
            match req.send().await {
                Ok(resp) if resp.status() == 200 => {
                    // 200 is sent only once the event is synced: that is the acknowledgement,
                    // whether or not the rest of the answer arrives.
                    if let Ok(text) = resp.text().await {
                        assert!(
                            text.contains("accepted") || text.contains("duplicate"),
                            "{}: 200 with {text}",
                            hook.id
                        );
                    }
                    if acks.ids.lock().unwrap().insert(hook.id.clone()) {
                        acks.count.send_modify(|n| *n += 1);
                    }
                    break;
                }
                Ok(resp) if resp.status() == 503 || resp.status() == 429 => {
                    // Alive but not taking events right now: retry soon (not its Retry-After).
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    panic!("{}: unexpected answer {status}: {text}", hook.id);
                }
                Err(_) => {
                    // Most likely killed: wait for the next gateway to be listening. Bounded,
                    // in case the error had another cause.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        generation.wait_for(|g| *g != seen),
                    )
                    .await;
                }
            }
        }
    }
}

fn config_text(port: u16, admin: u16, sink_url: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "0s"

[admin]
listen = "127.0.0.1:{admin}"
token = "t"

[spool]
dir = "spool"

{source}
[[sinks]]
id = "out"
type = "http"
url = "{sink_url}"
allow_http = true
timeout = "2s"
batch = {{ max_events = 50, timeout = "20ms" }}
retry = {{ initial_backoff = "10ms", max_backoff = "200ms" }}
"#,
        source = source(SOURCE, "github", &["crash-secret"], ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_the_gateway_is_killed_mid_stream() {
    let started = Instant::now();
    // A sink that fails on and off, the same way on every run.
    let fake = FakeServer::start(|_, idx| match idx % 12 {
        1 | 7 => Reply::status(503),
        3 | 9 => Reply::Drop,
        4 | 10 => Reply::status(429).with_header("retry-after", "0"),
        5 => Reply::CutBody(200),
        _ => Reply::ok(),
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let text = config_text(port, admin, &fake.url("/ingest"));
    let cfg: PathBuf = dir.path().join("gw.toml");
    std::fs::write(&cfg, &text).unwrap();
    let config = siemgate::config::parse(&text, dir.path(), &|_| None).unwrap();

    let scheme =
        siemgate::vendors::scheme_for(siemgate::vendors::VendorKind::Github, &Default::default());
    let now = time::OffsetDateTime::now_utc();
    let hooks: Arc<Vec<Webhook>> = Arc::new(
        (0..N)
            .map(|i| {
                let id = format!("crash-{i}");
                let body = scheme.sample_body(now, &id).into_bytes();
                let headers =
                    siemgate::cli::sign_headers(&config, SOURCE, &body, &id, now).unwrap();
                Webhook { id, headers, body }
            })
            .collect(),
    );

    let log: Log = Arc::default();
    let mut runs = 1;
    let mut gateway = {
        let (cfg, log) = (cfg.clone(), log.clone());
        tokio::task::spawn_blocking(move || Gateway::start(&cfg, 1, &log))
            .await
            .unwrap()
    };

    let (gen_tx, gen_rx) = watch::channel(1usize);
    let acks = Arc::new(Acks {
        ids: Mutex::default(),
        count: watch::channel(0).0,
    });
    let mut acked = acks.count.subscribe();
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("http://127.0.0.1:{port}/v1/webhooks/{SOURCE}");
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            tokio::spawn(sender(
                url.clone(),
                hooks.clone(),
                next.clone(),
                acks.clone(),
                gen_rx.clone(),
            ))
        })
        .collect();

    // The supervisor: SIGKILL at each threshold, restart on the same config and spool.
    let mut acked_at_kill = Vec::new();
    for threshold in KILL_AT {
        let at =
            *tokio::time::timeout(Duration::from_secs(30), acked.wait_for(|n| *n >= threshold))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "fewer than {threshold} events acknowledged in 30 s; logs:\n{}",
                        tail(&log, 40)
                    )
                })
                .unwrap();
        // Acknowledged but not delivered yet: what the spool must carry over the kill.
        let delivered: HashSet<String> = delivered_uids(&fake.requests()).into_iter().collect();
        let backlog = acks
            .ids
            .lock()
            .unwrap()
            .iter()
            .filter(|id| !delivered.contains(*id))
            .count();
        acked_at_kill.push((at, backlog));
        runs += 1;
        let (cfg, log2) = (cfg.clone(), log.clone());
        gateway = tokio::task::spawn_blocking(move || {
            gateway.kill();
            Gateway::start(&cfg, runs, &log2)
        })
        .await
        .unwrap();
        gen_tx.send_modify(|g| *g += 1);
    }
    let kills = KILL_AT.len();

    let mut attempts = 0;
    for s in senders {
        attempts += tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the senders did not get all {N} events acknowledged in 30 s ({} so far); logs:\n{}",
                    *acked.borrow(),
                    tail(&log, 40)
                )
            })
            .unwrap();
    }
    let acked_ids: HashSet<String> = acks.ids.lock().unwrap().clone();
    assert_eq!(acked_ids.len(), N);

    // Every acknowledged event reaches the sink.
    let all_in = |reqs: &[crate::fake::Captured]| {
        let got: HashSet<String> = delivered_uids(reqs).into_iter().collect();
        acked_ids.iter().all(|id| got.contains(id))
    };
    let waited = tokio::time::timeout(
        Duration::from_secs(25),
        fake.wait_until("every acknowledged event delivered", all_in),
    )
    .await;
    if waited.is_err() {
        let got: HashSet<String> = delivered_uids(&fake.requests()).into_iter().collect();
        let mut missing: Vec<&String> = acked_ids.iter().filter(|id| !got.contains(*id)).collect();
        missing.sort();
        panic!(
            "{} acknowledged event(s) never delivered, e.g. {:?}; logs:\n{}",
            missing.len(),
            &missing[..missing.len().min(10)],
            tail(&log, 40)
        );
    }

    // A clean stop of the last run.
    let status = gateway.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "exit status {status:?} after SIGTERM; logs:\n{}",
        tail(&log, 40)
    );

    let reqs = fake.requests();
    let delivered = delivered_uids(&reqs);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for uid in &delivered {
        *per_id.entry(uid.as_str()).or_default() += 1;
    }
    let unknown: Vec<&&str> = per_id
        .keys()
        .filter(|id| !hooks.iter().any(|h| h.id == **id))
        .collect();
    assert!(
        unknown.is_empty(),
        "the sink got events never sent: {unknown:?}"
    );
    let missing: Vec<&String> = acked_ids
        .iter()
        .filter(|id| !per_id.contains_key(id.as_str()))
        .collect();
    let torn = log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("cut a torn tail"))
        .count();
    eprintln!(
        "crash report: acked {} | delivered distinct {} | duplicates {} | kills {kills} (acked, of them undelivered, at each kill: {acked_at_kill:?}) | runs {runs} | fake requests {} (2xx {}) | ingest attempts {attempts} | torn tails cut {torn} | {:.1} s",
        acked_ids.len(),
        per_id.len(),
        delivered.len() - per_id.len(),
        reqs.len(),
        reqs.iter().filter(|r| r.delivered()).count(),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged event(s) lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
