//! The shared replay store against a real redis-server (installed by scripts/test).

use crate::support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        let r = Redis {
            child,
            port,
            _dir: dir,
        };
        // Ready when it answers PING.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis::Client::open(r.url()).and_then(|c| c.get_connection()) {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return r;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn replica(url: &str, id: &str) -> TestGateway {
    TestGateway::start(Options {
        sources: source(id, "github", &["shared-secret"], ""),
        replay: format!("store = \"redis\"\nredis_url = \"{url}\"\nretention = \"1h\""),
        ..Default::default()
    })
    .await
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
    let status: serde_json::Value = serde_json::from_str(
        &reqwest::Client::new()
            .get(a.admin("/v1/status"))
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
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
