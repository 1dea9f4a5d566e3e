//! Test support: a real gateway on 127.0.0.1:0 (plain, TLS or mTLS with certificates made
//! here), a pinned clock, a file sink in a temporary directory, and clients.

#![allow(dead_code)] // each test module uses a different part of the support

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use siemgate::config::{self, Config};
use siemgate::gateway::Gateway;
use siemgate::server::{self, Handle};
use siemgate::vendors::{self, VendorKind};
use siemgate::verify::ManualClock;
use time::OffsetDateTime;

/// The unix time the test clock starts at.
pub const T0: i64 = 1_700_000_000;

/// The server certificate's notAfter (2031-11-15T12:00:00Z), as Unix seconds.
pub const SERVER_CERT_NOT_AFTER: i64 = 1_952_510_400;

pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all made now.
pub fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "siemgate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server_params.not_after = OffsetDateTime::from_unix_timestamp(SERVER_CERT_NOT_AFTER).unwrap();
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["vendor.example".to_string()]).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "vendor.example");
    let client = client_params.signed_by(&client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum Tls {
    #[default]
    Off,
    On,
    Mutual,
}

#[derive(Default)]
pub struct Options {
    pub tls: Tls,
    /// Extra lines for `[server]`.
    pub server: String,
    /// `[[sources]]` tables; each should use `sinks = ["out"]`.
    pub sources: String,
    /// Lines for `[replay]`.
    pub replay: String,
    /// `[[sinks]]` tables replacing the default file sink `out` (events.jsonl).
    pub sinks: Option<String>,
    /// Lines for `[spool]` besides `dir`.
    pub spool: String,
    /// Lines for `[admin]` besides `listen` and `token`.
    pub admin: String,
}

impl Options {
    pub fn new(tls: Tls, server: &str, sources: String) -> Self {
        Options {
            tls,
            server: server.into(),
            sources,
            ..Default::default()
        }
    }
}

pub struct TestGateway {
    pub handle: Handle,
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: Config,
    pub pki: Option<Pki>,
}

impl TestGateway {
    pub async fn start(opts: Options) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let pki = (opts.tls != Tls::Off).then(pki);
        let mut tls = String::new();
        if let Some(p) = &pki {
            std::fs::write(dir.path().join("tls.crt"), &p.server_cert_pem).unwrap();
            std::fs::write(dir.path().join("tls.key"), &p.server_key_pem).unwrap();
            std::fs::write(dir.path().join("ca.crt"), &p.ca_pem).unwrap();
            tls.push_str("[server.tls]\ncert_file = \"tls.crt\"\nkey_file = \"tls.key\"\n");
            if opts.tls == Tls::Mutual {
                tls.push_str("client_ca_file = \"ca.crt\"\n");
            }
        }
        let sinks = opts.sinks.clone().unwrap_or_else(|| {
            "[[sinks]]\nid = \"out\"\ntype = \"file\"\npath = \"events.jsonl\"\nbatch = { timeout = \"5ms\" }\n".into()
        });
        let mut server = opts.server.clone();
        if !server.contains("shutdown_grace") {
            server.push_str("\nshutdown_grace = \"0s\"\n");
        }
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n{}\n{tls}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token\"\n{}\n\n[spool]\ndir = \"spool\"\n{}\n\n[replay]\n{}\n\n{}\n\n{sinks}",
            server, opts.admin, opts.spool, opts.replay, opts.sources
        );
        let config =
            config::parse(&text, dir.path(), &|_| None).unwrap_or_else(|e| panic!("{e}\n{text}"));
        Self::reopen(dir, config, Arc::new(ManualClock::at_unix(T0)), pki).await
    }

    /// Starts a new gateway on the same config, spool and clock, as a restart would (the
    /// running one must have been shut down or aborted). The listeners get new ports.
    async fn reopen(
        dir: tempfile::TempDir,
        config: Config,
        clock: Arc<ManualClock>,
        pki: Option<Pki>,
    ) -> TestGateway {
        let replay = siemgate::replay::from_config(&config.replay).unwrap();
        let gw = Arc::new(Gateway::new(config.clone(), clock.clone(), replay).unwrap());
        let handle = server::start(gw).await.unwrap();
        TestGateway {
            handle,
            dir,
            clock,
            config,
            pki,
        }
    }

    /// Stops the gateway (gracefully, or as a crash would: nothing flushed) and starts it
    /// again on the same spool. Returns whether the stop delivered everything, and the new one.
    pub async fn restart(self, graceful: bool) -> (bool, TestGateway) {
        let TestGateway {
            handle,
            dir,
            clock,
            config,
            pki,
        } = self;
        let flushed = if graceful {
            handle.shutdown().await
        } else {
            handle.abort().await;
            false
        };
        (flushed, Self::reopen(dir, config, clock, pki).await)
    }

    /// Stops the gateway gracefully and starts it again on the same spool, directory and clock
    /// with the config `edit` leaves (a corrected credential, say). The listeners get new ports.
    pub async fn restart_with(self, edit: impl FnOnce(&mut Config)) -> TestGateway {
        let TestGateway {
            handle,
            dir,
            clock,
            mut config,
            pki,
        } = self;
        handle.shutdown().await;
        edit(&mut config);
        Self::reopen(dir, config, clock, pki).await
    }

    pub fn base(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://localhost:{}", self.handle.ingest_addr.port())
    }

    pub fn url(&self, source: &str) -> String {
        format!("{}/v1/webhooks/{source}", self.base())
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.handle.admin_addr)
    }

    /// A client that trusts the test CA (and presents the client certificate under mTLS).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .resolve("localhost", self.handle.ingest_addr);
        if let Some(p) = &self.pki {
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap())
                .tls_built_in_root_certs(false);
        }
        b
    }

    pub fn identity(&self) -> reqwest::Identity {
        let p = self.pki.as_ref().unwrap();
        reqwest::Identity::from_pem(format!("{}{}", p.client_cert_pem, p.client_key_pem).as_bytes())
            .unwrap()
    }

    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// Every event the file sink has written, once the spool has nothing pending, each checked
    /// against the OCSF schema subset (see [`read_lines`]).
    pub async fn events(&self) -> Vec<Value> {
        self.delivered().await;
        read_lines(&self.events_path())
    }

    /// Returns once every sink has taken everything spooled (fails the test after 20 s).
    pub async fn delivered(&self) {
        tokio::time::timeout(
            Duration::from_secs(20),
            self.handle.gateway.spool().wait_idle(),
        )
        .await
        .expect("the sinks did not take every spooled event within 20 s");
    }

    /// A client with the admin token.
    pub async fn admin_call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .request(method, self.admin(path))
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Signs `body` as `source` would, at the clock's current time.
    pub fn sign(&self, source: &str, body: &[u8], id: &str) -> Vec<(String, String)> {
        siemgate::cli::sign_headers(&self.config, source, body, id, self.clock_now()).unwrap()
    }

    pub fn clock_now(&self) -> OffsetDateTime {
        use siemgate::verify::Clock;
        self.clock.now()
    }

    /// A POST of `body` with `headers` to `source`, ready to send.
    pub fn request(
        &self,
        client: &reqwest::Client,
        source: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        headers
            .iter()
            .fold(client.post(self.url(source)).body(body), |req, (k, v)| {
                req.header(k, v)
            })
    }

    /// POSTs `body` with `headers` to `source`; returns status and body.
    pub async fn post(
        &self,
        client: &reqwest::Client,
        source: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let resp = self
            .request(client, source, headers, body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

/// Reads a spawned binary's log lines from `rx` into `lines` until one contains every piece of
/// `what`; panics with the lines read when none has come within 20 s.
pub fn wait_line(rx: &std::sync::mpsc::Receiver<String>, lines: &mut Vec<String>, what: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !lines.iter().any(|l| what.iter().all(|w| l.contains(w))) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no log line with {what:?}; got:\n{}", lines.join("\n")),
        }
    }
}

/// Starts `siemgate run --config cfg --log-format json` as a child process. A thread drains
/// its stderr for as long as it lives (a full pipe would block it), handing every line to
/// `on_line` and to the returned channel.
pub fn spawn_binary(
    cfg: &Path,
    on_line: impl Fn(&str) + Send + 'static,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_siemgate"))
        .args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_line(&line);
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// A loopback port that was free a moment ago (for servers that must be told their port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The events a file sink wrote, one JSON object a line. Every event is checked against the OCSF
/// schema subset (`tests/ocsf/`): a test reading events fails on one that does not conform.
pub fn read_lines(path: &Path) -> Vec<Value> {
    let events: Vec<Value> = match std::fs::read_to_string(path) {
        Ok(s) => s
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    crate::ocsf_schema::assert_conforms(&path.display().to_string(), &events);
    events
}

/// The value of one Prometheus sample, e.g. `metric(&text, "siemgate_requests_total",
/// &[("source","a"),("outcome","accepted")])`; 0 when absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    0.0
}

/// A `[[sources]]` table.
pub fn source(id: &str, vendor: &str, secrets: &[&str], extra: &str) -> String {
    let secrets = secrets
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[[sources]]\nid = \"{id}\"\nvendor = \"{vendor}\"\nsecrets = [{secrets}]\nsinks = [\"out\"]\n{extra}\n")
}

/// A test secret of the form the vendor needs.
pub fn secret_for(kind: VendorKind, n: u8) -> String {
    match kind {
        VendorKind::StandardWebhooks => {
            use base64::Engine;
            format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode([n; 32])
            )
        }
        _ => format!("{}-secret-{n}", kind.name()),
    }
}

/// A body that the vendor would send, carrying `ts` and `id`.
pub fn body_for(kind: VendorKind, ts: OffsetDateTime, id: &str) -> String {
    vendors::scheme_for(kind, &Default::default()).sample_body(ts, id)
}

/// Sends one signed github event with id `id` (and `pad` bytes of filler); returns the status,
/// the body and any Retry-After.
pub async fn send(
    gw: &TestGateway,
    src: &str,
    id: &str,
    pad: usize,
) -> (u16, String, Option<String>) {
    let body = serde_json::json!({"action": "created", "id": id, "pad": "x".repeat(pad)})
        .to_string()
        .into_bytes();
    let headers = gw.sign(src, &body, id);
    let resp = gw
        .request(&gw.client(), src, &headers, body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.text().await.unwrap(), retry_after)
}

impl TestGateway {
    /// Starts a gateway from the config file `cfg` (read as `siemgate run` reads it, relative
    /// paths against its directory), with reload available and the file watcher polling every
    /// `watch` (zero: off). `dir` is kept for the test's lifetime; no test PKI is set up.
    pub async fn start_from_file(
        dir: tempfile::TempDir,
        cfg: &Path,
        watch: Duration,
    ) -> TestGateway {
        let config = config::load(cfg).unwrap_or_else(|e| panic!("{e}"));
        let clock = Arc::new(ManualClock::at_unix(T0));
        let replay = siemgate::replay::from_config(&config.replay).unwrap();
        let gw = Arc::new(Gateway::new(config.clone(), clock.clone(), replay).unwrap());
        let options = server::Options {
            config_path: Some(cfg.to_path_buf()),
            watch_interval: watch,
        };
        let handle = server::start_with(gw, options).await.unwrap();
        TestGateway {
            handle,
            dir,
            clock,
            config,
            pki: None,
        }
    }
}

/// A directory laid out as Kubernetes mounts a ConfigMap or Secret: the files live in a
/// timestamped `..<stamp>` directory, `..data` links to it, and each name links to
/// `..data/<name>`. [`KubeMount::swap`] updates it as the kubelet does: a new timestamped
/// directory, a `..data_tmp` link to it renamed over `..data` (atomic), the old directory removed.
pub struct KubeMount {
    pub dir: PathBuf,
    generation: u32,
}

impl KubeMount {
    pub fn new(dir: &Path, files: &[(&str, &[u8])]) -> KubeMount {
        std::fs::create_dir_all(dir).unwrap();
        let mut m = KubeMount {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        m.swap(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        m
    }

    /// The path a config names: `<dir>/<name>`, the symlink into `..data`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces every file at once, as the kubelet does for an updated Secret.
    pub fn swap(&mut self, files: &[(&str, &[u8])]) {
        let old = format!("..2026_12_02_00_00_00.{}", self.generation);
        self.generation += 1;
        let new = format!("..2026_12_02_00_00_00.{}", self.generation);
        std::fs::create_dir(self.dir.join(&new)).unwrap();
        for (name, bytes) in files {
            std::fs::write(self.dir.join(&new).join(name), bytes).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// Polls `cond` every 20 ms until it holds; fails the test with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
