//! One connection of the load tool: HTTP/1.1 or HTTP/2, over TCP or TLS, driven by its sender's
//! own task.
//!
//! The tool sent through reqwest until 2026-12-03: each connection then ran as a task of its own
//! behind a channel, so a request and its answer crossed between two tasks (often two threads,
//! each crossing a wake-up), and reqwest's layers (redirects, retries, the URL and the header map
//! built again for every request) were an eighth of the tool's CPU, which it takes from the
//! target on a shared machine. Here the sender polls the connection itself while it waits for its
//! answer, and nothing runs between a request and the socket but hyper.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

/// Where and how each connection is made.
pub struct Dial {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    http2: bool,
    connect_timeout: Duration,
}

impl Dial {
    /// For `url` (http or https, with a host; checked by the caller), with `tls` when it is https.
    pub fn new(
        url: &reqwest::Url,
        tls: Option<Arc<ClientConfig>>,
        http2: bool,
        connect_timeout: Duration,
    ) -> Result<Dial, String> {
        let host = url
            .host_str()
            .ok_or_else(|| format!("{url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("{url}: no port"))?;
        let tls = match (url.scheme(), tls) {
            ("https", Some(cfg)) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("{url}: not a TLS server name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(cfg), name))
            }
            ("https", None) => return Err(format!("{url}: https without a TLS configuration")),
            _ => None,
        };
        Ok(Dial {
            host,
            port,
            tls,
            http2,
            connect_timeout,
        })
    }

    async fn connect(&self) -> Result<Live, Error> {
        let go = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| Error::connect(format!("{}:{}: {e}", self.host, self.port)))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => self.handshake(TokioIo::new(tcp)).await,
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| Error::connect(format!("TLS: {e}")))?;
                    self.handshake(TokioIo::new(tls)).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, go).await {
            Ok(r) => r,
            Err(_) => Err(Error {
                kind: Kind::Connect,
                timeout: true,
                message: format!("connect timed out after {:?}", self.connect_timeout),
            }),
        }
    }

    async fn handshake<I>(&self, io: I) -> Result<Live, Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        if self.http2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| Error::connect(chain(&e)))?;
            Ok(Live {
                sender: Sender::H2(sender),
                driver: Box::pin(conn),
            })
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| Error::connect(chain(&e)))?;
            Ok(Live {
                sender: Sender::H1(sender),
                driver: Box::pin(conn),
            })
        }
    }
}

/// The TLS client configuration: the built-in web roots and the certificates of `ca`, or, with
/// `insecure`, any certificate; ALPN offers only the protocol the run uses.
pub fn tls_config(
    insecure: bool,
    ca: Vec<CertificateDer<'static>>,
    http2: bool,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for c in ca {
            roots
                .add(c)
                .map_err(|e| format!("--ca-file: a certificate is not usable: {e}"))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    cfg.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(cfg))
}

/// `--insecure`: any certificate is taken, but the handshake's signatures are still checked
/// (the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Connect,
    Transport,
}

/// A request that got no answer: the connection could not be made, or failed, or the answer
/// did not come in time.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    timeout: bool,
    message: String,
}

impl Error {
    fn connect(message: String) -> Error {
        Error {
            kind: Kind::Connect,
            timeout: false,
            message,
        }
    }

    fn transport(message: String) -> Error {
        Error {
            kind: Kind::Transport,
            timeout: false,
            message,
        }
    }

    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }

    pub fn is_timeout(&self) -> bool {
        self.timeout
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A made connection: the side requests are sent on, and the connection's own future, which
/// must be polled for anything to move on it.
struct Live {
    sender: Sender,
    driver: Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>,
}

/// One keep-alive connection, made when the first request is sent and again after a failure.
pub struct Conn {
    dial: Arc<Dial>,
    live: Option<Live>,
}

impl Conn {
    pub fn new(dial: Arc<Dial>) -> Conn {
        Conn { dial, live: None }
    }

    /// Sends `req` and reads its whole answer, whatever the status, within `timeout` (making
    /// the connection included). A failure drops the connection: the next request makes a
    /// new one.
    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), Error> {
        let r = match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(Error {
                kind: Kind::Transport,
                timeout: true,
                message: format!("no answer within {timeout:?}"),
            }),
        };
        if r.is_err() {
            self.live = None;
        }
        r
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Error> {
        // A connection the server closed while it was idle is found now, before a request is
        // lost on it.
        if let Some(live) = &mut self.live {
            let ended = std::future::poll_fn(|cx| Poll::Ready(live.driver.as_mut().poll(cx)))
                .await
                .is_ready();
            if ended || live.sender.is_closed() {
                self.live = None;
            }
        }
        let mut req = req;
        // Twice at most: a request the connection ended before it was written (the server
        // closing it as the request was handed over) comes back, and goes on a new connection.
        let mut tries = 0;
        loop {
            tries += 1;
            if self.live.is_none() {
                self.live = Some(self.dial.connect().await?);
            }
            let live = self.live.as_mut().expect("made above");
            let (attempt, ended) = live.exchange(req).await;
            if ended {
                // Its future is done and must not be polled again.
                self.live = None;
            }
            match attempt {
                Attempt::Answered(status, body) => return Ok((status, body)),
                Attempt::Unsent(r, _) if tries < 2 => {
                    self.live = None;
                    req = *r;
                }
                Attempt::Unsent(_, e) | Attempt::Failed(e) => {
                    self.live = None;
                    return Err(e);
                }
            }
        }
    }
}

enum Attempt {
    Answered(StatusCode, Bytes),
    Failed(Error),
    /// The request was never written: it can go on another connection.
    Unsent(Box<Request<Full<Bytes>>>, Error),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

impl Live {
    /// Sends `req` and reads its answer, polling the connection meanwhile. When the
    /// connection ends first, the request is waited for still: hyper hands it back when it was
    /// never written.
    /// Also says whether the connection's future has ended.
    async fn exchange(&mut self, req: Request<Full<Bytes>>) -> (Attempt, bool) {
        let Live { sender, driver } = self;
        let answer = async {
            let sent = match sender {
                Sender::H1(s) => {
                    if s.ready().await.is_err() {
                        return Err((Some(req), "the connection closed".to_string()));
                    }
                    s.try_send_request(req).await
                }
                Sender::H2(s) => {
                    if s.ready().await.is_err() {
                        return Err((Some(req), "the connection closed".to_string()));
                    }
                    s.try_send_request(req).await
                }
            };
            let resp = sent.map_err(|mut e| (e.take_message(), chain(e.error())))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| (None, chain(&e)))?;
            Ok((status, body.to_bytes()))
        };
        let mut answer = std::pin::pin!(answer);
        let mut ended = None;
        let r = loop {
            tokio::select! {
                r = &mut answer => break r,
                r = driver.as_mut(), if ended.is_none() => ended = Some(r),
            }
        };
        let why = |msg: String| match &ended {
            Some(Err(e)) => chain(e),
            Some(Ok(())) => format!("the server closed the connection ({msg})"),
            None => msg,
        };
        let attempt = match r {
            Ok((status, body)) => Attempt::Answered(status, body),
            Err((Some(req), msg)) => Attempt::Unsent(Box::new(req), Error::transport(why(msg))),
            Err((None, msg)) => Attempt::Failed(Error::transport(why(msg))),
        };
        (attempt, ended.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::net::TcpListener;

    const T: Duration = Duration::from_secs(10);

    /// Answers 200 with the request's method, URI, Host and body length; counts connections.
    /// `keep_alive: false` closes each HTTP/1.1 connection after its first answer.
    async fn server(
        tls: Option<Arc<rustls::ServerConfig>>,
        keep_alive: bool,
    ) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .map(|h| h.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let head = format!("{} {} host={host}", req.method(), req.uri());
                        let n = req.into_body().collect().await?.to_bytes().len();
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                            format!("{head} len={n}"),
                        ))))
                    });
                    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    b.http1().keep_alive(keep_alive);
                    match tls {
                        None => {
                            let _ = b.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = b.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    /// A CA and a server configuration for 127.0.0.1 it signed, offering h2 and http/1.1.
    fn pki() -> (CertificateDer<'static>, Arc<rustls::ServerConfig>) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        (ca.der().clone(), Arc::new(cfg))
    }

    fn post(route_uri: &str, host: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = route_uri.parse().unwrap();
        if let Some(h) = host {
            req.headers_mut()
                .insert(http::header::HOST, h.parse().unwrap());
        }
        req
    }

    /// HTTP/1.1 and HTTP/2, over TCP and over TLS trusted through `--ca-file`: each request is
    /// answered on one kept-alive connection, with the path, `Host` and body it was sent with.
    #[tokio::test]
    async fn requests_go_over_one_kept_alive_connection_in_each_protocol() {
        let (ca, server_tls) = pki();
        for tls in [false, true] {
            for h2 in [false, true] {
                let (addr, conns) = server(tls.then(|| server_tls.clone()), true).await;
                let scheme = if tls { "https" } else { "http" };
                let url = reqwest::Url::parse(&format!("{scheme}://{addr}/v1/webhooks/s")).unwrap();
                let client = tls.then(|| tls_config(false, vec![ca.clone()], h2).unwrap());
                let mut c = Conn::new(Arc::new(Dial::new(&url, client, h2, T).unwrap()));
                for _ in 0..3 {
                    let req = if h2 {
                        post(url.as_str(), None, "abcd")
                    } else {
                        post("/v1/webhooks/s", Some(&addr.to_string()), "abcd")
                    };
                    let (status, body) = c.send(req, T).await.unwrap();
                    assert_eq!(status, StatusCode::OK);
                    let body = String::from_utf8(body.to_vec()).unwrap();
                    assert!(body.starts_with("POST "), "{body}");
                    assert!(body.contains("/v1/webhooks/s"), "{body}");
                    assert!(
                        body.ends_with(&format!("host={addr} len=4")) || h2,
                        "{body}"
                    );
                    assert!(body.ends_with("len=4"), "{body}");
                }
                assert_eq!(conns.load(Ordering::SeqCst), 1, "tls {tls} h2 {h2}");
            }
        }
    }

    /// Without the CA the server's certificate is refused, as a connect error; `--insecure`
    /// takes it.
    #[tokio::test]
    async fn an_untrusted_certificate_is_a_connect_error_unless_insecure() {
        let (_, server_tls) = pki();
        let (addr, _) = server(Some(server_tls), true).await;
        let url = reqwest::Url::parse(&format!("https://{addr}/x")).unwrap();
        let strict = tls_config(false, Vec::new(), false).unwrap();
        let mut c = Conn::new(Arc::new(Dial::new(&url, Some(strict), false, T).unwrap()));
        let e = c
            .send(post("/x", Some(&addr.to_string()), ""), T)
            .await
            .unwrap_err();
        assert!(e.is_connect() && !e.is_timeout(), "{e}");
        assert!(e.to_string().contains("TLS"), "{e}");
        let any = tls_config(true, Vec::new(), false).unwrap();
        let mut c = Conn::new(Arc::new(Dial::new(&url, Some(any), false, T).unwrap()));
        let (status, _) = c
            .send(post("/x", Some(&addr.to_string()), ""), T)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }

    /// A server that closes each connection after its answer: every request still gets its
    /// answer, on a new connection, none lost on the closed one.
    #[tokio::test]
    async fn a_connection_the_server_closed_is_made_again_before_the_next_request() {
        let (addr, conns) = server(None, false).await;
        let url = reqwest::Url::parse(&format!("http://{addr}/x")).unwrap();
        let mut c = Conn::new(Arc::new(Dial::new(&url, None, false, T).unwrap()));
        for _ in 0..5 {
            let (status, _) = c
                .send(post("/x", Some(&addr.to_string()), "z"), T)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(conns.load(Ordering::SeqCst), 5);
    }

    /// Nothing listening: a connect error, and the next request tries again.
    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let url = reqwest::Url::parse(&format!("http://{addr}/x")).unwrap();
        let mut c = Conn::new(Arc::new(Dial::new(&url, None, false, T).unwrap()));
        for _ in 0..2 {
            let e = c
                .send(post("/x", Some(&addr.to_string()), ""), T)
                .await
                .unwrap_err();
            assert!(e.is_connect(), "{e}");
        }
    }

    /// A server that never answers: a timeout, not a connect error.
    #[tokio::test]
    async fn no_answer_in_time_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(s);
        });
        let url = reqwest::Url::parse(&format!("http://{addr}/x")).unwrap();
        let mut c = Conn::new(Arc::new(Dial::new(&url, None, false, T).unwrap()));
        let e = c
            .send(
                post("/x", Some(&addr.to_string()), ""),
                Duration::from_millis(100),
            )
            .await
            .unwrap_err();
        assert!(e.is_timeout() && !e.is_connect(), "{e}");
        held.abort();
    }
}
