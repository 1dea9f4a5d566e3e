//! The local replay store (the default) remembers across restarts: every event the gateway
//! binary acknowledged is a duplicate when sent again after a clean stop (SIGTERM) and after a
//! SIGKILL in the middle of a load, and a store at its bound refuses new events with 503
//! rather than forget a live key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::crash::{tail, Gateway, Log};
use crate::support::{free_port, source};

const SOURCE: &str = "replay-gh";

/// One signed GitHub delivery (GitHub signs no timestamp: the replay store is all that stands
/// between a captured delivery and a second alert).
struct Webhook {
    id: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn setup(dir: &Path, replay: &str) -> (PathBuf, String, Vec<Webhook>) {
    let (port, admin) = (free_port(), free_port());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"0s\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t\"\n\
         [spool]\ndir = \"spool\"\n{replay}\n{}\
         [[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\nbatch = {{ timeout = \"5ms\" }}\n",
        source(SOURCE, "github", &["replay-secret"], ""),
    );
    let cfg = dir.join("gw.toml");
    std::fs::write(&cfg, &text).unwrap();
    let config = siemgate::config::parse(&text, dir, &|_| None).unwrap();
    let scheme =
        siemgate::vendors::scheme_for(siemgate::vendors::VendorKind::Github, &Default::default());
    let now = time::OffsetDateTime::now_utc();
    let hooks = (0..300)
        .map(|i| {
            let id = format!("delivery-{i:04}");
            let body = scheme.sample_body(now, &id).into_bytes();
            let headers = siemgate::cli::sign_headers(&config, SOURCE, &body, &id, now).unwrap();
            Webhook { id, headers, body }
        })
        .collect();
    (
        cfg,
        format!("http://127.0.0.1:{port}/v1/webhooks/{SOURCE}"),
        hooks,
    )
}

/// Sends `hook` once; the status and body, or `None` when the gateway did not answer.
async fn send(client: &reqwest::Client, url: &str, hook: &Webhook) -> Option<(u16, String)> {
    let req = hook
        .headers
        .iter()
        .fold(client.post(url).body(hook.body.clone()), |r, (k, v)| {
            r.header(k, v)
        });
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn start(cfg: &Path, run: usize, log: &Log) -> Gateway {
    let (cfg, log) = (cfg.to_path_buf(), log.clone());
    tokio::task::spawn_blocking(move || Gateway::start(&cfg, run, &log))
        .await
        .unwrap()
}

/// Sends every hook in `acked` again: each must be answered `200 duplicate`.
async fn all_duplicates(url: &str, hooks: &[Webhook], acked: &HashSet<String>, log: &Log) {
    let c = client();
    for h in hooks.iter().filter(|h| acked.contains(&h.id)) {
        let got = send(&c, url, h).await;
        assert_eq!(
            got,
            Some((200, r#"{"status":"duplicate"}"#.to_string())),
            "{} sent again after the restart; logs:\n{}",
            h.id,
            tail(log, 30)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_are_duplicates_after_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, url, hooks) = setup(dir.path(), "");
    let log: Log = Arc::default();
    let gw = start(&cfg, 1, &log).await;
    let c = client();
    let mut acked = HashSet::new();
    for h in &hooks[..50] {
        let got = send(&c, &url, h).await;
        assert_eq!(got.as_ref().map(|g| g.0), Some(200), "{got:?}");
        acked.insert(h.id.clone());
    }
    let status = gw.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}; logs:\n{}", tail(&log, 30));
    let gw = start(&cfg, 2, &log).await;
    all_duplicates(&url, &hooks, &acked, &log).await;
    // A delivery never sent before is new.
    assert_eq!(send(&c, &url, &hooks[50]).await.map(|g| g.0), Some(200));
    assert_eq!(
        send(&c, &url, &hooks[50]).await,
        Some((200, r#"{"status":"duplicate"}"#.to_string()))
    );
    drop(gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_are_duplicates_after_a_kill_in_the_middle_of_a_load() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, url, hooks) = setup(dir.path(), "");
    let hooks = Arc::new(hooks);
    let log: Log = Arc::default();
    let gw = start(&cfg, 1, &log).await;
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    // Four senders, each with its own quarter of the hooks, sending each until it is answered
    // 200 (across the kill and the restart).
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (hooks, acked, url, count_tx) =
                (hooks.clone(), acked.clone(), url.clone(), count_tx.clone());
            tokio::spawn(async move {
                let c = client();
                for h in hooks.iter().skip(s).step_by(4) {
                    loop {
                        match send(&c, &url, h).await {
                            Some((200, _)) => break,
                            Some((503 | 429, _)) | None => {
                                tokio::time::sleep(Duration::from_millis(20)).await
                            }
                            Some(other) => panic!("{}: {other:?}", h.id),
                        }
                    }
                    acked.lock().unwrap().insert(h.id.clone());
                    count_tx.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(30), count.wait_for(|n| *n >= 100))
        .await
        .expect("100 events acknowledged within 30 s")
        .unwrap();
    let gw = {
        let (cfg, log) = (cfg.clone(), log.clone());
        tokio::task::spawn_blocking(move || {
            gw.kill();
            Gateway::start(&cfg, 2, &log)
        })
        .await
        .unwrap()
    };
    for s in senders {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("every event acknowledged within 60 s")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), hooks.len());
    let status = gw.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    let _gw = start(&cfg, 3, &log).await;
    all_duplicates(&url, &hooks, &acked, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_store_at_its_bound_refuses_new_events_and_keeps_every_key() {
    let dir = tempfile::tempdir().unwrap();
    // A GitHub delivery takes two keys (the signed-bytes digest and the delivery id).
    let (cfg, url, hooks) = setup(dir.path(), "[replay]\nmax_entries = 10\n");
    let log: Log = Arc::default();
    let gw = start(&cfg, 1, &log).await;
    let c = client();
    for h in &hooks[..5] {
        assert_eq!(send(&c, &url, h).await.map(|g| g.0), Some(200));
    }
    let full = send(&c, &url, &hooks[5]).await;
    assert_eq!(full.as_ref().map(|g| g.0), Some(503), "{full:?}");
    let acked: HashSet<String> = hooks[..5].iter().map(|h| h.id.clone()).collect();
    all_duplicates(&url, &hooks, &acked, &log).await;
    // Still full, and still remembering, after a restart.
    let status = gw.terminate(Duration::from_secs(30)).await;
    assert!(status.success());
    let _gw = start(&cfg, 2, &log).await;
    assert_eq!(send(&c, &url, &hooks[6]).await.map(|g| g.0), Some(503));
    all_duplicates(&url, &hooks, &acked, &log).await;
}
