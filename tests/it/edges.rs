//! The edges: connections that send nothing or only keep themselves alive are closed, a slow
//! but active request is not, the open-file limit leaves room for the admin listener, a reload
//! applies the listener's limits, and bodies being read share one budget. Real gateways, real
//! sockets; every wait is a read with an outer deadline.

use crate::support::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GH: &str = "gh-secret";

fn gh(id: &str, server: &str) -> Options {
    Options {
        server: server.into(),
        sources: source(id, "github", &[GH], ""),
        ..Default::default()
    }
}

/// Reads until the peer closes (EOF or reset); `None` if it is still open at `within`.
async fn closed_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(got)
}

fn closed_metric(m: &str, listener: &str, reason: &str) -> f64 {
    metric(
        m,
        "siemgate_connections_closed_total",
        &[("listener", listener), ("reason", reason)],
    )
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_header_timeout() {
    let gw = TestGateway::start(gh("silent-gh", "header_timeout = \"400ms\"")).await;
    let t0 = Instant::now();
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    let got = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("a connection that sends nothing must be closed");
    assert!(got.is_empty(), "nothing is answered: {got:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "not before its time"
    );
    let m = gw.metrics().await;
    assert!(closed_metric(&m, "ingest", "header_timeout") >= 1.0, "{m}");
}

#[tokio::test]
async fn a_silent_tls_connection_is_closed_at_header_timeout() {
    let gw = TestGateway::start(Options {
        tls: Tls::On,
        ..gh("silent-tls-gh", "header_timeout = \"400ms\"")
    })
    .await;
    let pki = gw.pki.as_ref().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::from_pem_slice(
                pki.ca_pem.as_bytes(),
            )
            .expect("CA pem"),
        )
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("the TLS handshake itself succeeds");
    closed_within(&mut tls, Duration::from_secs(10))
        .await
        .expect("a TLS connection that sends no request must be closed");
}

/// A hand-driven h2 client: it answers SETTINGS and PINGs like a live peer, and opens streams
/// only when told.
struct RawH2 {
    s: TcpStream,
    buf: Vec<u8>,
}

struct H2Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header block of literal fields without indexing, no Huffman.
fn hpack(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in headers {
        out.push(0);
        hpack_int(&mut out, 0, 7, k.len());
        out.extend_from_slice(k.as_bytes());
        hpack_int(&mut out, 0, 7, v.len());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

impl RawH2 {
    /// Connects and sends the preface and an empty SETTINGS.
    async fn connect(addr: std::net::SocketAddr) -> RawH2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut h2 = RawH2 { s, buf: Vec::new() };
        h2.send(SETTINGS, 0, 0, &[]).await;
        h2
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        let _ = self.s.write_all(&f).await;
    }

    async fn headers(&mut self, stream: u32, headers: &[(&str, &str)], end_stream: bool) {
        let flags = 0x4 | u8::from(end_stream);
        self.send(HEADERS, flags, stream, &hpack(headers)).await;
    }

    /// The next frame, answering SETTINGS and PINGs on the way; `None` at EOF or reset.
    async fn next(&mut self) -> Option<H2Frame> {
        loop {
            let len = match self.buf.get(..3) {
                Some(l) => (usize::from(l[0]) << 16) | (usize::from(l[1]) << 8) | usize::from(l[2]),
                None => usize::MAX,
            };
            if len != usize::MAX && self.buf.len() >= 9 + len {
                let f = H2Frame {
                    kind: self.buf[3],
                    flags: self.buf[4],
                    stream: u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff,
                    payload: self.buf[9..9 + len].to_vec(),
                };
                self.buf.drain(..9 + len);
                match (f.kind, f.flags & 1) {
                    (SETTINGS, 0) => self.send(SETTINGS, 1, 0, &[]).await,
                    (PING, 0) => self.send(PING, 1, 0, &f.payload.clone()).await,
                    _ => {}
                }
                return Some(f);
            }
            let mut chunk = [0u8; 8192];
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads frames until the peer closes; whether it did within `within`.
    async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async { while self.next().await.is_some() {} })
            .await
            .is_ok()
    }

    /// The DATA of `stream`'s answer, once it ends.
    async fn answer(&mut self, stream: u32, within: Duration) -> String {
        let mut body = Vec::new();
        tokio::time::timeout(within, async {
            loop {
                let f = self
                    .next()
                    .await
                    .expect("connection closed before the answer");
                if f.stream == stream && (f.kind == DATA || f.kind == HEADERS) {
                    if f.kind == DATA {
                        body.extend_from_slice(&f.payload);
                    }
                    if f.flags & 1 == 1 {
                        break;
                    }
                }
            }
        })
        .await
        .expect("no answer in time");
        String::from_utf8_lossy(&body).into_owned()
    }
}

#[tokio::test]
async fn an_h2_connection_that_opens_no_stream_is_closed_though_it_answers_pings() {
    let gw = TestGateway::start(gh("h2-silent-gh", "header_timeout = \"500ms\"")).await;
    let t0 = Instant::now();
    let mut h2 = RawH2::connect(gw.handle.ingest_addr).await;
    // The client keeps pinging too: liveness is not a request.
    h2.send(PING, 0, 0, b"12345678").await;
    assert!(
        h2.closed_within(Duration::from_secs(10)).await,
        "an h2 connection with no stream must be closed"
    );
    assert!(t0.elapsed() >= Duration::from_millis(500));
    let m = gw.metrics().await;
    assert!(closed_metric(&m, "ingest", "header_timeout") >= 1.0, "{m}");
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout_h1_and_h2() {
    let gw = TestGateway::start(gh(
        "idle-gh",
        "header_timeout = \"10s\"\nidle_timeout = \"500ms\"",
    ))
    .await;
    // h2: one request, then only PINGs
    let mut h2 = RawH2::connect(gw.handle.ingest_addr).await;
    h2.headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/nothing-here"),
            (":authority", "localhost"),
        ],
        true,
    )
    .await;
    assert!(h2
        .answer(1, Duration::from_secs(10))
        .await
        .contains("not_found"));
    let t0 = Instant::now();
    h2.send(PING, 0, 0, b"abcdefgh").await;
    assert!(
        h2.closed_within(Duration::from_secs(10)).await,
        "an idle h2 connection must be closed"
    );
    assert!(t0.elapsed() >= Duration::from_millis(400));

    // HTTP/1.1 keep-alive: one request, then nothing
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut s, Duration::from_secs(10))
        .await
        .expect("an idle HTTP/1.1 connection must be closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 404"));
    let m = gw.metrics().await;
    assert!(closed_metric(&m, "ingest", "idle") >= 2.0, "{m}");
}

#[tokio::test]
async fn a_slow_but_active_request_is_not_cut_h1_and_h2() {
    let gw = TestGateway::start(gh(
        "slow-ok-gh",
        "header_timeout = \"300ms\"\nidle_timeout = \"300ms\"\nrequest_timeout = \"20s\"",
    ))
    .await;
    let body = br#"{"action":"created","severity":"high","padding":"0123456789"}"#;
    let pieces: Vec<&[u8]> = body.chunks(8).collect();
    let body2 = br#"{"action":"created","severity":"high","padding":"9876543210"}"#;
    let pieces2: Vec<&[u8]> = body2.chunks(8).collect();

    // HTTP/1.1: the head at once, the body over ~1.5 s (five idle timeouts)
    let headers = gw.sign("slow-ok-gh", body, "slow-h1");
    let mut head = format!(
        "POST /v1/webhooks/slow-ok-gh HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for p in &pieces {
        tokio::time::sleep(Duration::from_millis(1500 / pieces.len() as u64)).await;
        s.write_all(p).await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // h2: the same, on a stream
    let headers = gw.sign("slow-ok-gh", body2, "slow-h2");
    let len = body2.len().to_string();
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1/webhooks/slow-ok-gh"),
        (":authority", "localhost"),
        ("content-length", len.as_str()),
    ];
    fields.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let lower: Vec<(String, &str)> = fields
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    let fields: Vec<(&str, &str)> = lower.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let mut h2 = RawH2::connect(gw.handle.ingest_addr).await;
    h2.headers(1, &fields, false).await;
    for (i, p) in pieces2.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(1500 / pieces2.len() as u64)).await;
        let end = u8::from(i + 1 == pieces2.len());
        h2.send(DATA, end, 1, p).await;
    }
    let answer = h2.answer(1, Duration::from_secs(10)).await;
    assert!(answer.contains("accepted"), "{answer}");
    assert_eq!(gw.events().await.len(), 2);
}

#[tokio::test]
async fn idle_sockets_are_reaped_so_the_next_client_is_served() {
    const N: usize = 4;
    let gw = TestGateway::start(gh(
        "reap-gh",
        &format!("max_connections = {N}\nheader_timeout = \"600ms\""),
    ))
    .await;
    let mut idle = Vec::new();
    for _ in 0..N {
        idle.push(TcpStream::connect(gw.handle.ingest_addr).await.unwrap());
    }
    // Full: the next one is closed unanswered.
    let mut extra = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let got = closed_within(&mut extra, Duration::from_secs(10)).await;
    assert_eq!(got, Some(Vec::new()), "over the cap: closed unanswered");
    for s in &mut idle {
        closed_within(s, Duration::from_secs(10))
            .await
            .expect("the idle sockets are reaped");
    }
    let body = br#"{"action":"created"}"#.to_vec();
    let h = gw.sign("reap-gh", &body, "after-reaping");
    assert_eq!(gw.post(&gw.client(), "reap-gh", &h, body).await.0, 200);
}

#[tokio::test]
async fn the_admin_listener_has_its_own_cap_and_timeouts() {
    let gw = TestGateway::start(Options {
        admin: "max_connections = 2".into(),
        ..gh(
            "admin-cap-gh",
            "max_connections = 2\nheader_timeout = \"500ms\"",
        )
    })
    .await;
    // ingest full: two requests in progress (bodies never finished) hold it
    let mut ingest = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
        s.write_all(
            b"POST /v1/webhooks/admin-cap-gh HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
        )
        .await
        .unwrap();
        ingest.push(s);
    }
    // admin full: two silent sockets hold it, a third is closed unanswered
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(gw.handle.admin_addr).await.unwrap());
    }
    let mut third = TcpStream::connect(gw.handle.admin_addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(
        closed_within(&mut third, Duration::from_secs(10)).await,
        Some(Vec::new())
    );
    for s in &mut held {
        closed_within(s, Duration::from_secs(10))
            .await
            .expect("silent admin connections are closed at header_timeout");
    }
    // and then the admin API answers, while ingest is still full
    let status = reqwest::get(gw.admin("/healthz")).await.unwrap().status();
    assert_eq!(status, 200);
    let mut extra = TcpStream::connect(gw.handle.ingest_addr).await.unwrap();
    assert_eq!(
        closed_within(&mut extra, Duration::from_secs(10)).await,
        Some(Vec::new()),
        "ingest is still full"
    );
    let m = gw.metrics().await;
    assert!(closed_metric(&m, "admin", "header_timeout") >= 2.0, "{m}");
    assert!(
        metric(
            &m,
            "siemgate_connections_refused_total",
            &[("listener", "admin")]
        ) >= 1.0,
        "{m}"
    );
    drop(ingest);
}

/// A gateway binary started under `ulimit -n {nofile}`; killed when dropped.
struct Binary {
    child: Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    fn start(cfg: &Path, nofile: Option<u32>) -> Binary {
        use std::io::{BufRead, BufReader};
        let bin = env!("CARGO_BIN_EXE_siemgate");
        let limit = nofile
            .map(|n| format!("ulimit -n {n} && "))
            .unwrap_or_default();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{limit}exec \"$0\" run --config \"$1\" --log-format json"
            ))
            .arg(bin)
            .arg(cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let b = Binary { child, lines };
        b.wait_for("siemgate listening");
        b
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {what:?}:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary_config(dir: &Path, port: u16, admin: u16, server: &str, admin_extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"0s\"\n{server}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"edge-token\"\n{admin_extra}\n[spool]\ndir = \"{}\"\n{}[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\n",
        dir.join("spool").display(),
        source("bin-edge", "github", &[GH], ""),
    )
}

/// Under a low open-file limit, a flood of idle ingest connections must not take the
/// descriptors the admin listener needs.
#[tokio::test]
async fn the_admin_listener_survives_a_low_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        binary_config(
            dir.path(),
            port,
            admin,
            "header_timeout = \"60s\"",
            "max_connections = 8",
        ),
    )
    .unwrap();
    let gw = Binary::start(&cfg, Some(256));
    let clamped = gw.wait_for("max_connections");
    assert!(clamped.contains("256"), "{clamped}");
    let mut flood = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = c
        .get(format!("http://127.0.0.1:{admin}/healthz"))
        .send()
        .await
        .expect("the admin listener answers under a connection flood");
    assert_eq!(r.status(), 200);
    let m = c
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &m,
            "siemgate_connections_refused_total",
            &[("listener", "ingest")]
        ) >= 1.0,
        "{m}"
    );
    drop(flood);
}

/// The statuses of `n` POSTs to `url` (0: no answer).
async fn statuses(c: &reqwest::Client, url: &str, n: usize) -> Vec<u16> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(match c.post(url).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        });
    }
    v
}

#[tokio::test]
async fn reload_applies_the_client_limit_connection_cap_and_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("gw.toml");
    let write = |server: &str| {
        std::fs::write(&cfg, binary_config(dir.path(), port, admin, server, "")).unwrap();
    };
    write(
        "client_rate_limit = { per_second = 1, burst = 1 }\nmax_connections = 2\nheader_timeout = \"60s\"",
    );
    let _gw = Binary::start(&cfg, None);
    // no pooling: every request is a new connection, so it meets the connection cap too
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ingest = format!("http://127.0.0.1:{port}/v1/webhooks/nope");
    assert!(
        statuses(&c, &ingest, 3).await.contains(&429),
        "the client limit holds"
    );
    // once the server has seen those close, two silent connections fill max_connections = 2
    // and a third is closed unanswered
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = c
            .get(format!("http://127.0.0.1:{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&m, "siemgate_open_connections", &[("listener", "ingest")]) == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "connections stay open:\n{m}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = [
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
    ];
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(
        closed_within(&mut third, Duration::from_secs(10)).await,
        Some(Vec::new())
    );

    write(
        "client_rate_limit = { per_second = 1000, burst = 1000 }\nmax_connections = 10\nheader_timeout = \"400ms\"",
    );
    let r = c
        .post(format!("http://127.0.0.1:{admin}/v1/reload"))
        .bearer_auth("edge-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(answer["notes"], serde_json::json!([]), "{answer}");

    // the new cap admits more connections, and the new client limit lets requests by
    let got = statuses(&c, &ingest, 5).await;
    assert!(got.iter().all(|s| *s == 404), "{got:?}");
    // the new header_timeout closes a new silent connection
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    closed_within(&mut fresh, Duration::from_secs(5))
        .await
        .expect("the reloaded header_timeout applies to new connections");
    drop(held);

    // restart-only settings are named
    let other = free_port();
    std::fs::write(
        &cfg,
        binary_config(dir.path(), other, admin, "", "").replace(
            &format!("127.0.0.1:{admin}\""),
            &format!("127.0.0.1:{}\"", free_port()),
        ),
    )
    .unwrap();
    let answer = c
        .post(format!("http://127.0.0.1:{admin}/v1/reload"))
        .bearer_auth("edge-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let notes = answer["notes"].to_string();
    assert!(
        notes.contains("server.listen") && notes.contains("admin.listen"),
        "{answer}"
    );
}

#[test]
fn check_refuses_a_max_body_the_spool_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        binary_config(dir.path(), 0, 1, "max_body = \"100MiB\"", ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siemgate"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.max_body"), "{err}");
    // and the bound itself is accepted
    std::fs::write(
        &cfg,
        binary_config(dir.path(), 0, 1, "max_body = \"32MiB\"", ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siemgate"))
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a connection and sends a POST head for `source` with `headers` and either a
/// Content-Length or chunked encoding; no body yet.
async fn post_head(
    addr: std::net::SocketAddr,
    source: &str,
    headers: &[(String, String)],
    content_length: Option<usize>,
) -> TcpStream {
    let mut head = format!("POST /v1/webhooks/{source} HTTP/1.1\r\nHost: x\r\n");
    match content_length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// Reads an answer's head (lower-cased), within 10 s.
async fn read_head(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

/// Waits until the gateway's body budget has exactly `want` bytes in use.
async fn budget_in_use(gw: &TestGateway, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = gw.handle.gateway.body_budget().in_use();
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "budget in use stayed {now}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn padded_body(n: usize) -> Vec<u8> {
    let mut b = br#"{"action":"created","pad":""#.to_vec();
    b.resize(n - 2, b'x');
    b.extend_from_slice(b"\"}");
    b
}

#[tokio::test]
async fn bodies_being_read_share_one_budget() {
    const KIB: usize = 1024;
    let gw = TestGateway::start(gh(
        "budget-gh",
        "max_body = \"64KiB\"\nmax_inflight_body_bytes = \"64KiB\"",
    ))
    .await;
    let addr = gw.handle.ingest_addr;
    // A declares 40 KiB and sends half: its reservation is held.
    let a_body = padded_body(40 * KIB);
    let a_sig = gw.sign("budget-gh", &a_body, "budget-a");
    let mut a = post_head(addr, "budget-gh", &a_sig, Some(a_body.len())).await;
    a.write_all(&a_body[..20 * KIB]).await.unwrap();
    budget_in_use(&gw, 40 * KIB as u64).await;

    // B declares 40 KiB: refused before a byte of its body is read, 503 + Retry-After.
    let b_body = padded_body(40 * KIB);
    let b_sig = gw.sign("budget-gh", &b_body, "budget-b");
    let mut b = post_head(addr, "budget-gh", &b_sig, Some(b_body.len())).await;
    let got = read_head(&mut b).await;
    assert!(got.starts_with("http/1.1 503"), "{got}");
    assert!(got.contains("retry-after"), "{got}");

    // C streams without Content-Length: refused once it outgrows what is left (24 KiB).
    let c_body = padded_body(40 * KIB);
    let c_sig = gw.sign("budget-gh", &c_body, "budget-c");
    let mut c = post_head(addr, "budget-gh", &c_sig, None).await;
    for piece in c_body.chunks(8 * KIB).take(4) {
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        if c.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let got = read_head(&mut c).await;
    assert!(got.starts_with("http/1.1 503"), "{got}");
    assert!(got.contains("retry-after"), "{got}");
    budget_in_use(&gw, 40 * KIB as u64).await;

    // A finishes and is accepted; the budget is free again and B's retry goes through.
    a.write_all(&a_body[20 * KIB..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), a.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    budget_in_use(&gw, 0).await;
    let (status, _) = gw.post(&gw.client(), "budget-gh", &b_sig, b_body).await;
    assert_eq!(status, 200);
    let m = gw.metrics().await;
    assert!(
        metric(&m, "siemgate_body_budget_refusals_total", &[]) >= 2.0,
        "{m}"
    );
}
