//! The spool at its edges, against real gateways: events of a sink that was removed are kept
//! until an operator drops them; readiness comes back on its own once a full disk has space;
//! a full memory replay store fails closed; files are private; sink URLs are redacted and
//! `/v1/status` needs the admin token.

use reqwest::Method;
use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fake::{delivered_uids, FakeServer, Reply};
use crate::support::{free_port, metric, send, source, spawn_binary, Options, TestGateway, Tls};
use siemgate::config::Config;

const SECRET: &str = "edge-secret";

/// A github source `src` whose events go to `sinks`.
fn gh(src: &str, sinks: &[&str]) -> String {
    source(src, "github", &[SECRET], "").replace("sinks = [\"out\"]", &format!("sinks = {sinks:?}"))
}

/// An `http` sink pointed at `fake`, retrying fast.
fn http_sink(id: &str, fake: &FakeServer) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\ntimeout = \"1s\"\nbatch = {{ max_events = 100, timeout = \"20ms\" }}\nretry = {{ initial_backoff = \"5ms\", max_backoff = \"50ms\" }}\n",
        fake.url("/ingest")
    )
}

fn file_sink(id: &str, path: &str) -> String {
    format!(
        "[[sinks]]\nid = \"{id}\"\ntype = \"file\"\npath = \"{path}\"\nbatch = {{ timeout = \"5ms\" }}\n"
    )
}

async fn start(sources: String, sinks: String, spool: &str, replay: &str) -> TestGateway {
    TestGateway::start(Options {
        tls: Tls::Off,
        sources,
        sinks: Some(sinks),
        spool: spool.into(),
        replay: replay.into(),
        ..Default::default()
    })
    .await
}

/// Polls `cond` every 20 ms until it holds; fails the test after `limit`.
async fn until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readyz(gw: &TestGateway) -> u16 {
    reqwest::get(gw.admin("/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The config without sink `id` (and without it in every source's list).
fn without_sink(c: &mut Config, id: &str) {
    c.sinks.retain(|s| s.id != id);
    for s in &mut c.sources {
        s.sinks.retain(|x| x != id);
    }
}

fn segment_files(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("segments")).unwrap().count()
}

const ORPHANS: usize = 24;
const PAD: usize = 8 << 10;

/// A gateway with source `{p}-src` feeding `{p}-a` (an http sink whose receiver answers
/// 503, so its events wait) and `{p}-b` (a file sink that takes everything). Sends
/// [`ORPHANS`] events of about 8 KiB, enough for several 64 KiB segments, and returns once
/// `{p}-b` has taken them all.
async fn a_blocked_and_a_working_sink(p: &str) -> (FakeServer, TestGateway, Vec<String>) {
    let fake = FakeServer::start(|_, _| Reply::status(503)).await;
    let gw = start(
        gh(&format!("{p}-src"), &[&format!("{p}-a"), &format!("{p}-b")]),
        format!(
            "{}{}",
            http_sink(&format!("{p}-a"), &fake),
            file_sink(&format!("{p}-b"), "b.jsonl")
        ),
        "max_size = \"1MiB\"\nflush_timeout = \"100ms\"",
        "",
    )
    .await;
    let ids: Vec<String> = (0..ORPHANS).map(|i| format!("{p}-{i}")).collect();
    for id in &ids {
        let (status, body, _) = send(&gw, &format!("{p}-src"), id, PAD).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    let spool = gw.handle.gateway.spool().clone();
    let b = format!("{p}-b");
    until("sink b takes every event", Duration::from_secs(20), || {
        let s = spool.clone();
        let b = b.clone();
        async move { s.pending(&b) == 0 }
    })
    .await;
    assert_eq!(spool.pending(&format!("{p}-a")), ORPHANS as u64);
    fake.wait_until("a delivery attempt to sink a", |r| !r.is_empty())
        .await;
    (fake, gw, ids)
}

#[tokio::test]
async fn a_removed_sink_keeps_its_events_and_gets_them_when_it_is_added_back() {
    let (fake, gw, ids) = a_blocked_and_a_working_sink("orph").await;
    let full = gw.config.clone();
    let gw = gw.restart_with(|c| without_sink(c, "orph-a")).await;
    let spool = gw.handle.gateway.spool().clone();
    let spool_dir = gw.dir.path().join("spool");
    let (status, body) = gw.admin_call(Method::GET, "/v1/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["spool"]["orphaned_sinks"],
        serde_json::json!([{"id": "orph-a", "queued_events": ORPHANS, "dead_letters": 0,
            "drop": "siemgate spool drop --sink orph-a"}]),
        "{body:#}"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric(&m, "siemgate_spool_events", &[("sink", "orph-a")]),
        ORPHANS as f64
    );
    let bytes = spool.bytes();
    let segments = segment_files(&spool_dir);
    assert!(bytes > (ORPHANS * PAD) as u64, "{bytes}");
    assert!(segments >= 3, "{segments} segment(s)");

    // orph-b moves on: its acknowledgement is what deleted the orphans' segments before.
    let (status, body, _) = send(&gw, "orph-src", "orph-after", PAD).await;
    assert_eq!(status, 200, "{body}");
    until(
        "orph-b takes the new event",
        Duration::from_secs(20),
        || {
            let s = spool.clone();
            async move { s.pending("orph-b") == 0 }
        },
    )
    .await;
    assert!(spool.bytes() > bytes, "segments were deleted");
    assert!(segment_files(&spool_dir) >= segments);
    assert_eq!(spool.orphans().get("orph-a"), Some(&(ORPHANS as u64)));

    // A configured sink's events cannot be dropped; nobody's without the token.
    let (status, body) = gw
        .admin_call(Method::POST, "/v1/spool/drop?sink=orph-b")
        .await;
    assert_eq!(status, 409, "{body}");
    let anon = reqwest::Client::new()
        .post(gw.admin("/v1/spool/drop?sink=orph-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    // Added back, the sink gets every event that waited for it.
    fake.set(|_, _| Reply::ok());
    let gw = gw.restart_with(|c| *c = full).await;
    let reqs = fake
        .wait_until("every orphaned event", |r| {
            let got = delivered_uids(r);
            ids.iter().all(|id| got.contains(id))
        })
        .await;
    assert_eq!(delivered_uids(&reqs).len(), ORPHANS, "duplicates delivered");
    gw.delivered().await;
    assert!(gw.handle.gateway.spool().orphans().is_empty());
}

/// Runs the `siemgate` binary with `args`; returns its exit code, stdout and stderr.
async fn siemgate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_siemgate"))
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config for the binary: source `drop-src` to `drop-b` (a file sink), and `extra_sinks`.
fn binary_config(dir: &Path, port: u16, admin: u16, extra_sinks: &str, sinks: &[&str]) -> PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"{token}\"\n\n[spool]\ndir = \"{spool}\"\nmax_size = \"1MiB\"\nflush_timeout = \"100ms\"\n\n{source}\n{b}\n{extra_sinks}",
        token = dir.join("admin-token").display(),
        spool = dir.join("spool").display(),
        source = gh("drop-src", sinks),
        b = file_sink("drop-b", &dir.join("b.jsonl").display().to_string()),
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the binary on `cfg`; returns it and its log lines up to "siemgate listening".
fn start_binary(cfg: &Path) -> (Child, Vec<String>) {
    let (child, rx) = spawn_binary(cfg, |_| {});
    let child = Child(child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("siemgate listening") => return (child, lines),
            Ok(l) => lines.push(l),
            Err(_) => panic!("the gateway did not start; logs:\n{}", lines.join("\n")),
        }
    }
}

/// A gateway process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn admin_get(admin: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{admin}{path}"))
        .bearer_auth("edge-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn the_startup_log_says_how_to_drop_a_removed_sinks_events_and_the_spool_command_does() {
    let (_fake, gw, _ids) = a_blocked_and_a_working_sink("drop").await;
    let TestGateway { handle, dir, .. } = gw;
    handle.shutdown().await;
    let d = dir.path();
    std::fs::write(d.join("admin-token"), "edge-admin-token\n").unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let cfg = binary_config(d, port, admin_port, "", &["drop-b"]);
    let (child, lines) = start_binary(&cfg);
    let line = lines
        .iter()
        .find(|l| l.contains("no longer configured"))
        .unwrap_or_else(|| panic!("no log line about drop-a:\n{}", lines.join("\n")));
    assert!(
        line.contains("siemgate spool drop --sink drop-a")
            && line.contains("POST /v1/spool/drop?sink=drop-a")
            && line.contains(&format!("{ORPHANS} event(s)")),
        "{line}"
    );
    let admin = format!("http://127.0.0.1:{admin_port}");
    let before = admin_get(&admin, "/v1/spool").await;
    assert_eq!(before["orphaned_sinks"][0]["queued_events"], ORPHANS);
    let segments = segment_files(&d.join("spool"));
    let token = d.join("admin-token").display().to_string();
    let common = ["--admin", admin.as_str(), "--token-file", token.as_str()];

    let (code, out, err) = siemgate(&[&["spool", "list"][..], &common].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("drop-a\t24\t0"), "{out}");
    let (code, _, err) =
        siemgate(&[&["spool", "drop", "--sink", "drop-b"][..], &common].concat()).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("409") && err.contains("configured"), "{err}");

    let (code, out, err) =
        siemgate(&[&["spool", "drop", "--sink", "drop-a"][..], &common].concat()).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("dropped {ORPHANS} event(s)")),
        "{out}"
    );
    let after = admin_get(&admin, "/v1/spool").await;
    assert_eq!(after["orphaned_sinks"], serde_json::json!([]));
    let freed = before["bytes"].as_u64().unwrap() - after["bytes"].as_u64().unwrap();
    assert!(
        freed > (ORPHANS * PAD / 2) as u64,
        "before {before}, after {after}"
    );
    assert!(segment_files(&d.join("spool")) < segments);
    let m = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&m, "siemgate_spool_events", &[("sink", "drop-a")]),
        0.0
    );
    let (code, _, err) =
        siemgate(&[&["spool", "drop", "--sink", "drop-a"][..], &common].concat()).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
    drop(child);

    // The drop is durable: with the sink configured again, nothing is queued for it.
    let fake = FakeServer::ok().await;
    let a = http_sink("drop-a", &fake);
    let admin_port = free_port();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let cfg = binary_config(d, free_port(), admin_port, &a, &["drop-a", "drop-b"]);
    let (_child, _) = start_binary(&cfg);
    let status = admin_get(&admin, "/v1/status").await;
    let a = status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "drop-a")
        .unwrap()
        .clone();
    assert_eq!(a["queued_events"], 0, "{status:#}");
}

/// Unmounts a test filesystem when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn readiness_comes_back_without_traffic_once_a_full_disk_has_space_again() {
    let gw = start(
        gh("enospc-src", &["out"]),
        file_sink("out", "events.jsonl"),
        "",
        "",
    )
    .await;
    let mnt = gw.dir.path().join("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED readiness_comes_back_without_traffic_once_a_full_disk_has_space_again: cannot mount a 4 MiB tmpfs here (needs root: {other:?}); readiness_comes_back_without_traffic_after_a_failed_write covers the probe with a test hook"
            );
            return;
        }
    }
    let _unmount = Mount(mnt.clone());
    let gw = gw.restart_with(|c| c.spool.dir = mnt.join("spool")).await;
    assert_eq!(readyz(&gw).await, 200);

    // Fill the filesystem to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        loop {
            if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
                break;
            }
        }
        // The last, partial chunk.
        while f.write_all(&[0u8; 512]).is_ok() {}
    }
    let (status, body, retry_after) = send(&gw, "enospc-src", "enospc-1", 0).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(readyz(&gw).await, 503);
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_spool_write_failures_total", &[]) >= 1.0);

    // Space is freed; no request comes (the load balancer took the pod out).
    std::fs::remove_file(&filler).unwrap();
    until(
        "/readyz 200 with no traffic after space was freed",
        Duration::from_secs(10),
        || readyz_owned(gw.admin("/readyz")),
    )
    .await;
    let (status, body, _) = send(&gw, "enospc-src", "enospc-2", 0).await;
    assert_eq!(status, 200, "{body}");
    gw.delivered().await;
    // The sender's retry of the refused event is not taken for a duplicate.
    let (status, body, _) = send(&gw, "enospc-src", "enospc-1", 0).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("accepted"), "{body}");
}

async fn readyz_owned(url: String) -> bool {
    reqwest::get(url).await.unwrap().status() == 200
}

#[tokio::test]
async fn readiness_comes_back_without_traffic_after_a_failed_write() {
    let gw = start(
        gh("probe-src", &["out"]),
        file_sink("out", "events.jsonl"),
        "",
        "",
    )
    .await;
    gw.handle.gateway.spool().fail_next_write();
    let (status, body, _) = send(&gw, "probe-src", "probe-1", 0).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(readyz(&gw).await, 503);
    until(
        "/readyz 200 with no traffic after a failed write",
        Duration::from_secs(10),
        || readyz_owned(gw.admin("/readyz")),
    )
    .await;
}

#[tokio::test]
async fn a_full_memory_replay_store_refuses_new_events_and_never_forgets_a_live_id() {
    // A github delivery has two replay keys (its id and its body digest): room for two events.
    let gw = start(
        gh("replay-src", &["out"]),
        file_sink("out", "events.jsonl"),
        "",
        "store = \"memory\"\nmax_entries = 4\nretention = \"1h\"",
    )
    .await;
    for id in ["replay-1", "replay-2"] {
        let (status, body, _) = send(&gw, "replay-src", id, 0).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"status":"accepted","events":1}"#)
        );
    }
    let (status, body, retry_after) = send(&gw, "replay-src", "replay-3", 0).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    // The captured first delivery, replayed, is still known.
    let (status, body, _) = send(&gw, "replay-src", "replay-1", 0).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"duplicate"}"#));
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_replay_full_total", &[]) >= 1.0);
    // The gauges are process-wide (another test's store may have set them last): their
    // values are checked in the store's unit tests.
    assert!(m.contains("\nsiemgate_replay_keys "), "{m}");
    assert!(m.contains("\nsiemgate_replay_bytes "), "{m}");

    // Once retention ends the old ids are purged and new events fit again.
    gw.clock.advance(Duration::from_secs(3601));
    let (status, body, _) = send(&gw, "replay-src", "replay-3", 0).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"status":"accepted","events":1}"#)
    );
    assert_eq!(gw.events().await.len(), 3);
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn spool_dead_letter_quarantine_and_file_sink_files_are_private() {
    let fake = FakeServer::start(|_, _| Reply::status(400).with_body("no")).await;
    let gw = start(
        gh("mode-src", &["mode-h", "mode-f"]),
        format!(
            "{}{}",
            http_sink("mode-h", &fake),
            file_sink("mode-f", "private/out/events.jsonl")
        ),
        "",
        "",
    )
    .await;
    let (status, body, _) = send(&gw, "mode-src", "mode-1", 0).await;
    assert_eq!(status, 200, "{body}");
    gw.delivered().await;
    assert_eq!(gw.handle.gateway.spool().dead_letter_counts()["mode-h"], 1);
    let spool = gw.dir.path().join("spool");
    // A torn tail for the next start to quarantine.
    let gw = gw
        .restart_with(|_| {
            let mut segs: Vec<_> = std::fs::read_dir(spool.join("segments"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            segs.sort();
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(segs.last().unwrap())
                .unwrap()
                .write_all(b"\x00\x00\x01torn")
                .unwrap();
        })
        .await;
    let d = gw.dir.path();
    assert_eq!(mode(&spool), 0o700, "spool dir");
    for sub in ["segments", "cursors", "dlq", "quarantine"] {
        let dir = spool.join(sub);
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "nothing in {}", dir.display());
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    assert_eq!(mode(&d.join("private")), 0o700);
    assert_eq!(mode(&d.join("private/out")), 0o700);
    assert_eq!(mode(&d.join("private/out/events.jsonl")), 0o600);
}

#[tokio::test]
async fn sink_urls_are_redacted_and_status_needs_the_admin_token() {
    // Nothing listens there: every attempt fails with an error that quotes the URL.
    let port = free_port();
    let sink = format!(
        "[[sinks]]\nid = \"leaky\"\ntype = \"http\"\nurl = \"http://user:pw-s3cret@127.0.0.1:{port}/hooks/path-s3cret?token=query-s3cret\"\nallow_http = true\ntimeout = \"1s\"\nbatch = {{ timeout = \"5ms\" }}\nretry = {{ initial_backoff = \"5ms\", max_backoff = \"20ms\" }}\n"
    );
    let gw = start(gh("leaky-src", &["leaky"]), sink, "", "").await;
    let (status, body, _) = send(&gw, "leaky-src", "leaky-1", 0).await;
    assert_eq!(status, 200, "{body}");

    for path in ["/v1/status", "/v1/spool"] {
        let anon = reqwest::get(gw.admin(path)).await.unwrap();
        assert_eq!(anon.status(), 401, "{path} without the token");
        let wrong = reqwest::Client::new()
            .get(gw.admin(path))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let (status, body) = gw.admin_call(Method::GET, "/v1/status").await;
        assert_eq!(status, 200);
        if body["sinks"][0]["last_error"].is_string() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt in /v1/status: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = last.to_string();
    assert!(!text.contains("s3cret"), "{last:#}");
    let sink = &last["sinks"][0];
    assert_eq!(
        sink["url"],
        format!("http://REDACTED@127.0.0.1:{port}/REDACTED/REDACTED?token=REDACTED")
    );
    let error = sink["last_error"].as_str().unwrap();
    assert!(error.contains("REDACTED"), "{error}");
}

#[tokio::test]
async fn secrets_in_a_sink_url_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let cfg = d.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"0s\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"edge-admin-token\"\n\n[spool]\ndir = \"{spool}\"\n\n{source}\n[[sinks]]\nid = \"leaky\"\ntype = \"http\"\nurl = \"http://user:pw-s3cret@127.0.0.1:{dead}/hooks/path-s3cret?token=query-s3cret\"\nallow_http = true\ntimeout = \"1s\"\nbatch = {{ timeout = \"5ms\" }}\nretry = {{ initial_backoff = \"5ms\", max_backoff = \"20ms\" }}\n",
            spool = d.join("spool").display(),
            source = gh("leaky-src", &["leaky"]),
        ),
    )
    .unwrap();
    let body = d.join("body.json");
    std::fs::write(&body, br#"{"action":"created","id":"leaky-1"}"#).unwrap();
    let (child, rx) = spawn_binary(&cfg, |_| {});
    let _child = Child(child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no failed delivery logged:\n{}", lines.join("\n")));
        let listening = line.contains("siemgate listening");
        let failed = line.contains("delivery failed");
        lines.push(line);
        if listening && !sent {
            let url = format!("http://127.0.0.1:{port}");
            let (code, out, err) = siemgate(&[
                "send",
                "--config",
                cfg.to_str().unwrap(),
                "--source",
                "leaky-src",
                "--url",
                &url,
                "--body",
                body.to_str().unwrap(),
            ])
            .await;
            assert_eq!(code, Some(0), "{out}{err}");
            sent = true;
        }
        if failed {
            break;
        }
    }
    let failure = lines.last().unwrap();
    assert!(
        failure.contains(&format!(
            "127.0.0.1:{dead}/REDACTED/REDACTED?token=REDACTED"
        )),
        "{failure}"
    );
    let leaked: Vec<_> = lines.iter().filter(|l| l.contains("s3cret")).collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
}
