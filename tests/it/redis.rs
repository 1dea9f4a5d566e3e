//! The shared replay store against a real redis-server (installed by scripts/test).

use crate::support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Redis {
    child: Child,
    port: u16,
    /// The CA's PEM when the server speaks TLS only.
    tls_ca: Option<String>,
    _dir: tempfile::TempDir,
}

/// A redis-server speaking TLS only: its certificate, and the CA that signed it.
struct TlsFiles {
    ca_pem: String,
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem).unwrap();
        TlsFiles {
            ca_pem: pki.ca_pem,
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        Self::start(port, None)
    }

    fn start(port: u16, tls: Option<&TlsFiles>) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("redis-server");
        match tls {
            None => cmd.args(["--port", &port.to_string()]),
            Some(t) => cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &t.path("cert.pem"),
                "--tls-key-file",
                &t.path("key.pem"),
                "--tls-ca-cert-file",
                &t.path("ca.pem"),
                "--tls-auth-clients",
                "no",
            ]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        let r = Redis {
            child,
            port,
            tls_ca: tls.map(|t| t.ca_pem.clone()),
            _dir: dir,
        };
        // Ready when it answers PING.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = r.client().get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return r;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        match self.tls_ca {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://127.0.0.1:{}", self.port),
        }
    }

    fn client(&self) -> redis::Client {
        match &self.tls_ca {
            None => redis::Client::open(self.url()).unwrap(),
            Some(ca) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.as_bytes().to_vec()),
                },
            )
            .unwrap(),
        }
    }

    fn conn(&self) -> redis::Connection {
        self.client().get_connection().unwrap()
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.conn())
            .unwrap();
        keys.sort();
        keys
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replica(url: &str, id: &str) -> TestGateway {
    replica_with(url, id, "").await
}

/// A gateway on `url` with extra `[replay]` lines.
async fn replica_with(url: &str, id: &str, replay: &str) -> TestGateway {
    TestGateway::start(Options {
        sources: source(id, "github", &["shared-secret"], ""),
        replay: format!("store = \"redis\"\nredis_url = \"{url}\"\nretention = \"1h\"\n{replay}"),
        ..Default::default()
    })
    .await
}

const ACCEPTED: &str = r#"{"status":"accepted","events":1}"#;
const DUPLICATE: &str = r#"{"status":"duplicate"}"#;

#[tokio::test]
async fn deployments_with_their_own_key_prefix_do_not_de_duplicate_each_other() {
    let redis = tokio::task::spawn_blocking(|| Redis::start_on(free_port()))
        .await
        .unwrap();
    let prod = replica_with(&redis.url(), "gh", "key_prefix = \"prod:\"").await;
    let prod2 = replica_with(&redis.url(), "gh", "key_prefix = \"prod:\"").await;
    let staging = replica_with(&redis.url(), "gh", "key_prefix = \"staging:\"").await;
    let body = br#"{"action":"created"}"#.to_vec();
    let h = prod.sign("gh", &body, "delivery-7");
    assert_eq!(
        prod.post(&prod.client(), "gh", &h, body.clone()).await,
        (200, ACCEPTED.into())
    );
    // The other deployment has its own memory of ids; a replica of the same one shares it.
    assert_eq!(
        staging
            .post(&staging.client(), "gh", &h, body.clone())
            .await,
        (200, ACCEPTED.into())
    );
    assert_eq!(
        prod2.post(&prod2.client(), "gh", &h, body.clone()).await,
        (200, DUPLICATE.into())
    );
    assert_eq!(redis.keys("prod:replay:*").len(), 2);
    assert_eq!(redis.keys("staging:replay:*").len(), 2);
    assert!(redis.keys("siemgate:*").is_empty());
}

#[tokio::test]
async fn rediss_trusts_the_configured_ca_and_nothing_else() {
    let port = free_port();
    let (redis, tls) = tokio::task::spawn_blocking(move || {
        let tls = TlsFiles::new();
        (Redis::start(port, Some(&tls)), tls)
    })
    .await
    .unwrap();
    assert!(redis.url().starts_with("rediss://"));
    let ca = tls.path("ca.pem");
    let a = replica_with(
        &redis.url(),
        "gh",
        &format!("tls = {{ ca_file = \"{ca}\" }}"),
    )
    .await;
    let b = replica_with(
        &redis.url(),
        "gh",
        &format!("tls = {{ ca_file = \"{ca}\" }}"),
    )
    .await;
    let body = br#"{"action":"created"}"#.to_vec();
    let h = a.sign("gh", &body, "delivery-tls");
    assert_eq!(
        a.post(&a.client(), "gh", &h, body.clone()).await,
        (200, ACCEPTED.into())
    );
    assert_eq!(
        b.post(&b.client(), "gh", &h, body.clone()).await,
        (200, DUPLICATE.into())
    );
    assert_eq!(redis.keys("siemgate:replay:*").len(), 2);

    // Without the CA, the test CA is not among the system's roots: the handshake fails, and
    // the gateway fails closed (503) rather than accept without de-duplication.
    let untrusting = replica(&redis.url(), "gh").await;
    let h2 = untrusting.sign("gh", &body, "delivery-tls-2");
    let r = untrusting
        .request(&untrusting.client(), "gh", &h2, body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(untrusting.events().await.is_empty());
}

#[tokio::test]
async fn replicas_sharing_redis_see_each_others_events() {
    let redis = tokio::task::spawn_blocking(|| Redis::start_on(free_port()))
        .await
        .unwrap();
    let a = replica(&redis.url(), "shared").await;
    let b = replica(&redis.url(), "shared").await;
    let (ca, cb) = (a.client(), b.client());
    let body = br#"{"action":"created"}"#.to_vec();
    let h = a.sign("shared", &body, "delivery-42");
    assert_eq!(
        a.post(&ca, "shared", &h, body.clone()).await,
        (200, r#"{"status":"accepted","events":1}"#.into())
    );
    assert_eq!(
        b.post(&cb, "shared", &h, body.clone()).await,
        (200, r#"{"status":"duplicate"}"#.into())
    );
    assert_eq!(a.events().await.len() + b.events().await.len(), 1);

    // What Redis holds: digests under our prefix, expiring after the retention.
    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("siemgate:replay:*")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys.len(), 2, "the delivery id and the signed-bytes digest");
    assert!(
        keys.iter().all(|k| !k.contains("delivery-42")),
        "ids are stored as digests"
    );
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{k}: {ttl}");
    }
    let (_, status) = a.admin_call(reqwest::Method::GET, "/v1/status").await;
    assert_eq!(status["replay_store"], "redis");
}

#[tokio::test]
async fn redis_down_means_503_and_not_ready_then_recovery() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let gw = replica(&url, "redis-down").await;
    let c = gw.client();
    let body = br#"{"n":1}"#.to_vec();
    let h = gw.sign("redis-down", &body, "d-1");
    let req = gw.request(&c, "redis-down", &h, body.clone());
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        reqwest::get(gw.admin("/readyz")).await.unwrap().status(),
        503
    );
    assert!(gw.events().await.is_empty());

    // Redis comes up: the sender's retry is accepted, without restarting the gateway.
    let _redis = tokio::task::spawn_blocking(move || Redis::start_on(port))
        .await
        .unwrap();
    assert_eq!(
        gw.post(&c, "redis-down", &h, body).await,
        (200, r#"{"status":"accepted","events":1}"#.into())
    );
    assert_eq!(
        reqwest::get(gw.admin("/readyz")).await.unwrap().status(),
        200
    );
    let m = gw.metrics().await;
    assert!(metric(&m, "siemgate_replay_store_errors_total", &[]) >= 1.0);
}

/// A replica with `siem` as its only sink (`http`, fast retries), on the shared Redis.
async fn replica_to(url: &str, siem: &crate::fake::FakeServer) -> TestGateway {
    TestGateway::start(Options {
        sources: source("gh", "github", &["shared-secret"], "")
            .replace("sinks = [\"out\"]", "sinks = [\"siem\"]"),
        sinks: Some(format!(
            "[[sinks]]\nid = \"siem\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\n\
             batch = {{ timeout = \"5ms\" }}\n\
             retry = {{ initial_backoff = \"10ms\", max_backoff = \"50ms\" }}\n",
            siem.url("/in")
        )),
        replay: format!("store = \"redis\"\nredis_url = \"{url}\"\nretention = \"1h\""),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_replica_stopped_with_events_spooled_delivers_them_once_when_it_comes_back() {
    use crate::fake::{delivered_uids, FakeServer, Reply};
    let redis = tokio::task::spawn_blocking(|| Redis::start_on(free_port()))
        .await
        .unwrap();
    // The SIEM is down: what replica A accepts waits in A's spool.
    let siem = FakeServer::start(|_, _| Reply::status(503)).await;
    let a = replica_to(&redis.url(), &siem).await;
    let b = replica_to(&redis.url(), &siem).await;
    let ids = ["r-0", "r-1", "r-2"];
    let mut sent = Vec::new();
    for id in ids {
        let body = serde_json::json!({"action": "created", "id": id})
            .to_string()
            .into_bytes();
        let h = a.sign("gh", &body, id);
        assert_eq!(
            a.post(&a.client(), "gh", &h, body.clone()).await,
            (200, ACCEPTED.into())
        );
        sent.push((h, body));
    }
    siem.wait_until("a refused delivery", |r| !r.is_empty())
        .await;

    // A dies with the events spooled; the vendor's retries reach B, which knows them.
    let (_, a) = a.restart(false).await;
    for (h, body) in &sent {
        assert_eq!(
            b.post(&b.client(), "gh", h, body.clone()).await,
            (200, DUPLICATE.into())
        );
    }
    // A is back on its own spool; the SIEM recovers: each event is delivered, once.
    siem.set(|_, _| Reply::ok());
    let reqs = siem
        .wait_until("the spooled events", |r| delivered_uids(r).len() >= 3)
        .await;
    let mut got = delivered_uids(&reqs);
    got.sort();
    assert_eq!(got, ids);
    a.delivered().await;
    assert_eq!(delivered_uids(&siem.requests()).len(), 3, "nothing twice");
}
