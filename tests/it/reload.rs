//! Reload of everything, through one method: a secret file rotated the Kubernetes way (a
//! `..data` symlink swap, no signal), a certificate swapped the same way (new handshakes see
//! the new one, an open connection keeps working, the expiry metric follows), a broken config
//! refused while the old one serves, SIGHUP and `POST /v1/reload` counted alike, and sinks
//! added (events from then on) and removed (their queued events kept until added back).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};
use siemgate::config::{self, Config};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    eventually, free_port, metric, spawn_binary, wait_line, KubeMount, TestGateway,
};

const OLD: &str = "github-secret-old";
const NEW: &str = "github-secret-new";
const WATCH: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(10);
const RELOADS: &str = "siemgate_config_reloads_total";

/// A config with one github source `gh` (the given secret lines) and a file sink.
fn config_text(tls: &str, source_extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"0s\"\ndrain_timeout = \"2s\"\n{tls}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token\"\n\
         [spool]\ndir = \"spool\"\n\
         [[sources]]\nid = \"gh\"\nvendor = \"github\"\nsinks = [\"out\"]\n{source_extra}\n\
         [[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\nbatch = {{ timeout = \"5ms\" }}\n"
    )
}

static IDS: AtomicU64 = AtomicU64::new(0);

/// A github event signed with the secret in `config`, and its headers.
fn signed(gw: &TestGateway, config: &Config) -> (Vec<u8>, Vec<(String, String)>) {
    let id = format!("delivery-{:06}", IDS.fetch_add(1, Ordering::Relaxed));
    let body = serde_json::json!({"action": "created", "id": id})
        .to_string()
        .into_bytes();
    let headers = siemgate::cli::sign_headers(config, "gh", &body, &id, gw.clock_now()).unwrap();
    (body, headers)
}

/// Posts an event signed with the secret in `config` over plain HTTP; returns the status.
async fn post_signed(gw: &TestGateway, config: &Config) -> u16 {
    let (body, headers) = signed(gw, config);
    gw.post(&gw.client(), "gh", &headers, body).await.0
}

async fn reloads(gw: &TestGateway, outcome: &str) -> f64 {
    metric(&gw.metrics().await, RELOADS, &[("outcome", outcome)])
}

#[tokio::test]
async fn a_secret_rotated_the_kubernetes_way_is_applied_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mut mount = KubeMount::new(&dir.path().join("secrets"), &[("gh", OLD.as_bytes())]);
    let cfg = dir.path().join("siemgate.toml");
    std::fs::write(&cfg, config_text("", "secrets_file = \"secrets/gh\"")).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, WATCH).await;
    let old = gw.config.clone();
    assert_eq!(post_signed(&gw, &old).await, 200);

    // The kubelet's swap: a new timestamped directory, `..data` renamed over. No signal.
    mount.swap(&[("gh", NEW.as_bytes())]);
    let new = config::load(&cfg).unwrap();
    let (g, n) = (&gw, &new);
    eventually(
        LIMIT,
        "an event signed with the new secret accepted",
        || async move { post_signed(g, n).await == 200 },
    )
    .await;
    assert_eq!(
        post_signed(&gw, &old).await,
        401,
        "the removed secret no longer verifies"
    );
    assert!(reloads(&gw, "success").await >= 1.0);
    assert_eq!(reloads(&gw, "failure").await, 0.0);
}

struct ServerCert {
    cert_pem: String,
    key_pem: String,
    serial: Vec<u8>,
    not_after: i64,
}

/// A CA and two server certificates for localhost it signed, with their own serials and
/// notAfter dates.
fn two_certs() -> (String, ServerCert, ServerCert) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "siemgate reload test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let make = |serial: Vec<u8>, not_after: i64| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.serial_number = Some(SerialNumber::from(serial.clone()));
        p.not_after = OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
            not_after,
        }
    };
    let first = make(vec![0x11, 0x11, 0x01], 1_950_000_000);
    let second = make(vec![0x22, 0x22, 0x02], 1_960_000_000);
    (ca.pem(), first, second)
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection to the ingest listener, and the serial of the certificate it was shown.
async fn connect(gw: &TestGateway, client: &Arc<rustls::ClientConfig>) -> (Tls, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(gw.handle.ingest_addr)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let serial = cert.raw_serial().to_vec();
    (tls, serial)
}

/// Sends one signed event over `tls` as HTTP/1.1; returns the response's status line.
async fn post_over(gw: &TestGateway, tls: &mut Tls) -> String {
    let (body, headers) = signed(gw, &gw.config);
    let mut req = format!(
        "POST /v1/webhooks/gh HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
    {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(LIMIT, tls.read(&mut buf))
        .await
        .expect("an answer on the open connection")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn a_swapped_certificate_reaches_new_handshakes_while_open_connections_keep_working() {
    let (ca, first, second) = two_certs();
    let dir = tempfile::tempdir().unwrap();
    let mut mount = KubeMount::new(
        &dir.path().join("tls"),
        &[
            ("tls.crt", first.cert_pem.as_bytes()),
            ("tls.key", first.key_pem.as_bytes()),
        ],
    );
    let cfg = dir.path().join("siemgate.toml");
    let tls = "[server.tls]\ncert_file = \"tls/tls.crt\"\nkey_file = \"tls/tls.key\"\n";
    std::fs::write(&cfg, config_text(tls, &format!("secrets = [\"{OLD}\"]"))).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, WATCH).await;
    let client = client_config(&ca);
    let expiry = |m: &str| {
        metric(
            m,
            "siemgate_tls_cert_expiry_seconds",
            &[("listener", "ingest")],
        )
    };
    assert_eq!(expiry(&gw.metrics().await), first.not_after as f64);

    let (mut open, serial) = connect(&gw, &client).await;
    assert_eq!(serial, first.serial);

    mount.swap(&[
        ("tls.crt", second.cert_pem.as_bytes()),
        ("tls.key", second.key_pem.as_bytes()),
    ]);
    let (g, c, want) = (&gw, &client, &second.serial);
    eventually(
        LIMIT,
        "a new handshake shows the new certificate",
        || async move { connect(g, c).await.1 == *want },
    )
    .await;
    assert_eq!(
        post_over(&gw, &mut open).await,
        "HTTP/1.1 200 OK",
        "the connection opened before the swap still completes a request"
    );
    assert_eq!(expiry(&gw.metrics().await), second.not_after as f64);
    assert!(reloads(&gw, "success").await >= 1.0);

    // A broken certificate is refused: counted, and the good one keeps serving.
    mount.swap(&[
        (
            "tls.crt",
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        ),
        ("tls.key", second.key_pem.as_bytes()),
    ]);
    let g = &gw;
    eventually(
        LIMIT,
        "the broken certificate counted as a failure",
        || async move { reloads(g, "failure").await >= 1.0 },
    )
    .await;
    assert_eq!(connect(&gw, &client).await.1, second.serial);
    assert_eq!(expiry(&gw.metrics().await), second.not_after as f64);
}

#[tokio::test]
async fn a_broken_config_written_over_the_file_is_refused_and_the_old_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("siemgate.toml");
    let secrets = format!("secrets = [\"{OLD}\"]");
    std::fs::write(&cfg, config_text("", &secrets)).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, WATCH).await;
    let old = gw.config.clone();

    std::fs::write(
        &cfg,
        config_text("", &format!("{secrets}\ntolerance = \"soon\"")),
    )
    .unwrap();
    let g = &gw;
    eventually(
        LIMIT,
        "the watcher's reload refused and counted",
        || async move { reloads(g, "failure").await >= 1.0 },
    )
    .await;
    let before = reloads(&gw, "failure").await;
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer.to_string().contains("sources[0].tolerance"),
        "the answer names the key: {answer}"
    );
    assert_eq!(reloads(&gw, "failure").await, before + 1.0);
    assert_eq!(reloads(&gw, "success").await, 0.0);
    assert_eq!(post_signed(&gw, &old).await, 200, "the old config serves");

    // Repaired: the watcher applies it by itself.
    std::fs::write(
        &cfg,
        config_text("", &format!("{secrets}\ntolerance = \"10m\"")),
    )
    .unwrap();
    eventually(LIMIT, "the repaired config applied", || async move {
        reloads(g, "success").await >= 1.0
    })
    .await;
    assert_eq!(post_signed(&gw, &old).await, 200);
}

async fn scrape(admin: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn sighup_and_the_reload_api_go_through_the_same_counted_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("siemgate.toml");
    let text = config_text("", &format!("secrets = [\"{OLD}\"]"))
        .replace(
            "127.0.0.1:0\"\nshutdown",
            &format!("127.0.0.1:{port}\"\nshutdown"),
        )
        .replace(
            "127.0.0.1:0\"\ntoken",
            &format!("127.0.0.1:{admin}\"\ntoken"),
        );
    std::fs::write(&cfg, text).unwrap();
    let (mut child, rx) = spawn_binary(&cfg, |_| {});
    let mut lines = Vec::new();
    wait_line(&rx, &mut lines, &["siemgate listening"]);
    let m = scrape(admin).await;
    assert_eq!(metric(&m, RELOADS, &[("outcome", "success")]), 0.0);
    let started = metric(
        &m,
        "siemgate_config_last_reload_success_timestamp_seconds",
        &[],
    );
    assert!(started > 1.7e9, "set at start: {started}");

    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
    };
    kill("-HUP");
    wait_line(
        &rx,
        &mut lines,
        &["config reloaded", "\"trigger\":\"signal\""],
    );
    assert_eq!(
        metric(&scrape(admin).await, RELOADS, &[("outcome", "success")]),
        1.0
    );

    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{admin}/v1/reload"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_line(&rx, &mut lines, &["config reloaded", "\"trigger\":\"api\""]);
    let m = scrape(admin).await;
    assert_eq!(metric(&m, RELOADS, &[("outcome", "success")]), 2.0);
    assert_eq!(metric(&m, RELOADS, &[("outcome", "failure")]), 0.0);
    assert!(
        metric(
            &m,
            "siemgate_config_last_reload_success_timestamp_seconds",
            &[]
        ) >= started
    );

    kill("-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "siemgate did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CA, and a client certificate it signed, as PEM: (ca, client cert + key).
fn client_ca(name: &str) -> (String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["vendor.example".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "vendor.example");
    let cert = p.signed_by(&key, &ca).unwrap();
    (ca.pem(), format!("{}{}", cert.pem(), key.serialize_pem()))
}

#[tokio::test]
async fn a_swapped_client_ca_decides_new_handshakes() {
    let (server_ca, server, _) = two_certs();
    let (ca_a, client_a) = client_ca("vendor CA a");
    let (ca_b, client_b) = client_ca("vendor CA b");
    let dir = tempfile::tempdir().unwrap();
    let files = |ca: &str| {
        [
            ("tls.crt", server.cert_pem.as_bytes().to_vec()),
            ("tls.key", server.key_pem.as_bytes().to_vec()),
            ("ca.crt", ca.as_bytes().to_vec()),
        ]
    };
    let first = files(&ca_a);
    let refs: Vec<(&str, &[u8])> = first.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let mut mount = KubeMount::new(&dir.path().join("tls"), &refs);
    let cfg = dir.path().join("siemgate.toml");
    let tls = "[server.tls]\ncert_file = \"tls/tls.crt\"\nkey_file = \"tls/tls.key\"\nclient_ca_file = \"tls/ca.crt\"\n";
    std::fs::write(&cfg, config_text(tls, &format!("secrets = [\"{OLD}\"]"))).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, WATCH).await;
    let port = gw.handle.ingest_addr.port();
    let post_as = |identity: String| {
        let (body, headers) = signed(&gw, &gw.config);
        let client = reqwest::Client::builder()
            .resolve("localhost", gw.handle.ingest_addr)
            .add_root_certificate(reqwest::Certificate::from_pem(server_ca.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap())
            .build()
            .unwrap();
        let req = headers.iter().fold(
            client
                .post(format!("https://localhost:{port}/v1/webhooks/gh"))
                .body(body),
            |r, (k, v)| r.header(k, v),
        );
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(post_as(client_a.clone()).await, 200);
    assert_eq!(post_as(client_b.clone()).await, 0, "CA b not trusted yet");

    let second = files(&ca_b);
    let refs: Vec<(&str, &[u8])> = second.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    mount.swap(&refs);
    let (p, b) = (&post_as, &client_b);
    eventually(LIMIT, "a client of the new CA accepted", || async move {
        p(b.clone()).await == 200
    })
    .await;
    assert_eq!(post_as(client_a).await, 0, "the old CA's client is refused");
}

/// A gateway started from a config file holding [`config_text`] with the old secret, reloaded
/// only when asked; the file's path and text, to write a changed config over it.
async fn start_reloadable() -> (TestGateway, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("siemgate.toml");
    let good = config_text("", &format!("secrets = [\"{OLD}\"]"));
    std::fs::write(&cfg, &good).unwrap();
    let gw = TestGateway::start_from_file(dir, &cfg, Duration::ZERO).await;
    (gw, cfg, good)
}

#[tokio::test]
async fn a_reload_names_what_it_changed_and_what_waits_for_a_restart() {
    let (gw, cfg, good) = start_reloadable().await;
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["notes"], serde_json::json!([]), "nothing changed");

    let changed = good.replace("timeout = \"5ms\"", "timeout = \"6ms\"")
        + "[[sinks]]\nid = \"more\"\ntype = \"file\"\npath = \"more.jsonl\"\n"
        + "[replay]\nmax_entries = 12345\n";
    std::fs::write(&cfg, changed).unwrap();
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    let notes = answer["notes"].to_string();
    assert!(notes.contains("sinks.out changed"), "{notes}");
    assert!(notes.contains("sinks.more added"), "{notes}");
    assert!(notes.contains("replay.max_entries changed"), "{notes}");
    // The running config keeps what only a start applies: it never claims a bound the
    // running store does not use.
    let running = gw.handle.gateway.config();
    assert_eq!(running.replay.max_entries, 20_000_000);
    assert_eq!(running.fixed(), gw.config.fixed());
    assert_eq!(reloads(&gw, "success").await, 2.0);
}

/// Posts one event signed with the running config's secret; returns its delivery id.
async fn post_one(gw: &TestGateway, config: &Config) -> String {
    let (body, headers) = signed(gw, config);
    let (status, answer) = gw.post(&gw.client(), "gh", &headers, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Writes `text` over the config file and reloads through the API; returns the notes.
async fn reload_to(gw: &TestGateway, cfg: &std::path::Path, text: &str) -> String {
    std::fs::write(cfg, text).unwrap();
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    answer["notes"].to_string()
}

/// The ids of the sinks `/v1/status` lists.
async fn sink_ids(gw: &TestGateway) -> Vec<String> {
    let (_, status) = gw.admin_call(reqwest::Method::GET, "/v1/status").await;
    status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// The lines of a file sink's output (none when it does not exist yet).
fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_sink_added_by_a_reload_gets_events_at_once_and_nothing_old() {
    let (gw, cfg, good) = start_reloadable().await;
    let more = gw.dir.path().join("more.jsonl");
    let config = gw.config.clone();
    let before = post_one(&gw, &config).await;
    gw.delivered().await;

    let added = good.replace("sinks = [\"out\"]", "sinks = [\"out\", \"more\"]")
        + "[[sinks]]\nid = \"more\"\ntype = \"file\"\npath = \"more.jsonl\"\nbatch = { timeout = \"5ms\" }\n";
    let notes = reload_to(&gw, &cfg, &added).await;
    assert!(notes.contains("sinks.more added: applied"), "{notes}");
    let after = post_one(&gw, &config).await;
    gw.delivered().await;
    let got = lines(&more);
    assert_eq!(
        got.len(),
        1,
        "only the event sent after the reload: {got:?}"
    );
    assert!(got[0].contains(&after) && !got[0].contains(&before));
    assert_eq!(lines(&gw.events_path()).len(), 2, "the old sink got both");
    assert_eq!(sink_ids(&gw).await, ["more", "out"]);
}

#[tokio::test]
async fn a_sink_removed_by_a_reload_keeps_its_queued_events_until_it_is_added_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("siemgate.toml");
    // A SIEM that takes connections and never answers: the sink's events queue, and its
    // worker is in the middle of a request when the sink is removed.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = config_text("", &format!("secrets = [\"{OLD}\"]"));
    let with_siem = base.replace("sinks = [\"out\"]", "sinks = [\"out\", \"siem\"]")
        + &format!(
            "[[sinks]]\nid = \"siem\"\ntype = \"http\"\nurl = \"http://{}/in\"\nallow_http = true\ntimeout = \"60s\"\nbatch = {{ timeout = \"5ms\" }}\n",
            silent.local_addr().unwrap()
        );
    std::fs::write(&cfg, &with_siem).unwrap();
    let siem_file = dir.path().join("siem.jsonl");
    let gw = TestGateway::start_from_file(dir, &cfg, Duration::ZERO).await;
    let config = gw.config.clone();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(post_one(&gw, &config).await);
    }
    let (_, status) = gw.admin_call(reqwest::Method::GET, "/v1/status").await;
    let siem = status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "siem")
        .unwrap()
        .clone();
    assert_eq!(siem["queued_events"], 3, "{status}");

    let notes = reload_to(&gw, &cfg, &base).await;
    assert!(
        notes.contains("sinks.siem removed: applied; its 3 queued event(s) stay in the spool"),
        "{notes}"
    );
    let (_, spool) = gw.admin_call(reqwest::Method::GET, "/v1/spool").await;
    assert_eq!(spool["orphaned_sinks"][0]["id"], "siem", "{spool}");
    assert_eq!(spool["orphaned_sinks"][0]["queued_events"], 3, "{spool}");
    // Sent while the sink is gone: not for it.
    let while_removed = post_one(&gw, &config).await;
    gw.delivered().await;
    assert_eq!(lines(&gw.events_path()).len(), 4);

    // Added back (as a file sink now): it delivers exactly the three it had queued.
    let back = base.replace("sinks = [\"out\"]", "sinks = [\"out\", \"siem\"]")
        + "[[sinks]]\nid = \"siem\"\ntype = \"file\"\npath = \"siem.jsonl\"\nbatch = { timeout = \"5ms\" }\n";
    let notes = reload_to(&gw, &cfg, &back).await;
    assert!(notes.contains("sinks.siem added: applied"), "{notes}");
    gw.delivered().await;
    let got = lines(&siem_file);
    assert_eq!(got.len(), 3, "{got:?}");
    for (line, id) in got.iter().zip(&queued) {
        assert!(line.contains(id.as_str()), "{id} in order: {line}");
    }
    assert!(!got.iter().any(|l| l.contains(&while_removed)));
    let (_, spool) = gw.admin_call(reqwest::Method::GET, "/v1/spool").await;
    assert_eq!(spool["orphaned_sinks"], serde_json::json!([]), "{spool}");
    drop(silent);
}

/// A reload refused after its sources and sinks were built (here the spool cannot read the
/// cursor of the sink it adds) leaves the metrics as they were: no zero series for the source
/// it would have added, no health for the sink; the old config serves; and the same reload
/// succeeds once the spool can start the sink, registering both then.
#[tokio::test]
async fn a_reload_refused_late_registers_no_series_for_what_it_would_have_added() {
    let (gw, cfg, good) = start_reloadable().await;
    let cursor = gw.dir.path().join("spool").join("cursors").join("more");
    let config = gw.config.clone();
    // A directory where the new sink's cursor file would be: reading it fails.
    std::fs::create_dir_all(cursor.join("in-the-way")).unwrap();

    let added = good.clone()
        + &format!("[[sources]]\nid = \"gh2\"\nvendor = \"github\"\nsecrets = [\"{NEW}\"]\nsinks = [\"more\"]\n")
        + "[[sinks]]\nid = \"more\"\ntype = \"file\"\npath = \"more.jsonl\"\n";
    std::fs::write(&cfg, &added).unwrap();
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_ne!(status, 200, "{answer}");
    let text = gw.metrics().await;
    assert_eq!(reloads(&gw, "failure").await, 1.0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("source=\"gh2\"") && !line.contains("sink=\"more\""),
            "a refused reload registered {line}"
        );
    }
    // The series of the running source are there, and it still serves.
    assert!(text.contains("siemgate_requests_total{source=\"gh\",outcome=\"accepted\"}"));
    assert_eq!(post_signed(&gw, &config).await, 200);
    assert_eq!(sink_ids(&gw).await, ["out"]);

    // Out of the way, the same reload is applied, and registers them.
    std::fs::remove_dir_all(&cursor).unwrap();
    let (status, answer) = gw.admin_call(reqwest::Method::POST, "/v1/reload").await;
    assert_eq!(status, 200, "{answer}");
    let text = gw.metrics().await;
    assert!(
        text.contains("siemgate_requests_total{source=\"gh2\",outcome=\"accepted\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("siemgate_sink_healthy{sink=\"more\"} 1"),
        "{text}"
    );
}
