//! A fake downstream server (a SIEM's ingestion API, or any HTTPS receiver): hyper on
//! 127.0.0.1:0, recording every request whole (gzip bodies decoded) and answering as the test
//! says: any status and headers, a hang, a dropped connection, or a body cut off mid-way.

#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    /// The body, gunzipped when `content-encoding: gzip`.
    pub body: Vec<u8>,
    /// The body's length on the wire.
    pub wire_len: usize,
    pub at: Instant,
    /// The status answered; 0 when the request was not answered (hang, drop).
    pub answered: u16,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn delivered(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

#[derive(Clone, Debug)]
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Never answer.
    Hang,
    /// Close the connection without an answer.
    Drop,
    /// Send the status and part of a body, then close the connection.
    CutBody(u16),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn status(status: u16) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Reply {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }

    pub fn with_body(mut self, b: &str) -> Reply {
        if let Reply::Respond { body, .. } = &mut self {
            *body = b.into();
        }
        self
    }
}

type Handler = Box<dyn FnMut(&Captured, usize) -> Reply + Send>;

struct State {
    requests: Mutex<Vec<Captured>>,
    handler: Mutex<Handler>,
    count: watch::Sender<usize>,
}

pub struct FakeServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A body that yields a few bytes, then an error: the connection is cut mid-body.
struct Cut(u8);

impl hyper::body::Body for Cut {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0 += 1;
        std::task::Poll::Ready(Some(match self.0 {
            1 => Ok(Frame::data(Bytes::from_static(b"{\"partial\":"))),
            _ => Err(std::io::Error::other("cut")),
        }))
    }
}

type RespBody = http_body_util::Either<Full<Bytes>, Cut>;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body that decodes");
    out
}

impl FakeServer {
    /// Starts a server that answers every request with `handler(request, index)`.
    pub async fn start(handler: impl FnMut(&Captured, usize) -> Reply + Send + 'static) -> Self {
        Self::serve(None, handler).await
    }

    /// The same over HTTPS, with the server certificate of `pki` (for localhost/127.0.0.1,
    /// issued by `pki.ca_pem`).
    pub async fn start_tls(
        pki: &crate::support::Pki,
        handler: impl FnMut(&Captured, usize) -> Reply + Send + 'static,
    ) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::serve(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
            handler,
        )
        .await
    }

    async fn serve(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl FnMut(&Captured, usize) -> Reply + Send + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, _) = watch::channel(0);
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            handler: Mutex::new(Box::new(handler)),
            count,
        });
        let st = state.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(st.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        // A client that does not trust the certificate fails here: nothing is
                        // recorded, as with a real server.
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        FakeServer {
            addr,
            state,
            task,
            tls: is_tls,
        }
    }

    /// A server that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(|_, _| Reply::ok()).await
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Replaces how requests from now on are answered.
    pub fn set(&self, handler: impl FnMut(&Captured, usize) -> Reply + Send + 'static) {
        *self.state.handler.lock().unwrap() = Box::new(handler);
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until the requests so far satisfy `pred`; returns them.
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[Captured]) -> bool,
    ) -> Vec<Captured> {
        let mut rx = self.state.count.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reqs = self.requests();
            if pred(&reqs) {
                return reqs;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!(
                    "the fake server never saw {what}; it got {} request(s)",
                    reqs.len()
                );
            }
        }
    }
}

async fn serve(
    st: Arc<State>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<RespBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let raw = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let gz = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let mut cap = Captured {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers.clone(),
        body: if gz { gunzip(&raw) } else { raw.to_vec() },
        wire_len: raw.len(),
        at: Instant::now(),
        answered: 0,
    };
    let reply = {
        let index = st.requests.lock().unwrap().len();
        (st.handler.lock().unwrap())(&cap, index)
    };
    if let Reply::Respond { status, .. } = &reply {
        cap.answered = *status;
    }
    st.requests.lock().unwrap().push(cap);
    st.count.send_modify(|n| *n += 1);
    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut r =
                http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(body))));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                r.headers_mut().insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(&v).unwrap(),
                );
            }
            Ok(r)
        }
        Reply::Hang => std::future::pending().await,
        Reply::Drop => Err(std::io::Error::other("dropped by the test")),
        Reply::CutBody(status) => {
            let mut r = http::Response::new(http_body_util::Either::Right(Cut(0)));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok(r)
        }
    }
}

/// A fake SIEM, as the tests see it: the `[[sinks]]` table that sends to it, and the events
/// read back out of the requests it took. Each fake implements it once (the `http` receiver
/// here, the SIEMs in `siem/`), so no test filters and parses requests by hand.
pub trait Siem {
    /// The sink `id` sending to `fake`, with `batch` and `extra` keys.
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String;
    /// Whether `c` carries events (not a token request, an ack poll or a health check).
    fn is_ingest(c: &Captured) -> bool;
    /// The uids of the events in one such request, each checked as the SIEM would read it.
    fn request_uids(c: &Captured) -> Vec<String>;
    /// The uids of every event the SIEM took: its ingestion requests answered 2xx, in order.
    fn uids(reqs: &[Captured]) -> Vec<String> {
        reqs.iter()
            .filter(|c| Self::is_ingest(c) && c.delivered())
            .flat_map(Self::request_uids)
            .collect()
    }
}

/// Any HTTPS receiver behind an `http` sink: every request is a JSON array of events.
pub struct HttpReceiver;

impl Siem for HttpReceiver {
    fn sink(id: &str, fake: &FakeServer, batch: &str, extra: &str) -> String {
        format!(
            "[[sinks]]\nid = \"{id}\"\ntype = \"http\"\nurl = \"{}\"\nallow_http = true\ntimeout = \"1s\"\n{batch}\n{extra}\n",
            fake.url("")
        )
    }

    fn is_ingest(_: &Captured) -> bool {
        true
    }

    fn request_uids(c: &Captured) -> Vec<String> {
        events_of(c)
            .iter()
            .filter_map(|e| e["metadata"]["uid"].as_str().map(str::to_string))
            .collect()
    }
}

/// The events in an `http` sink request (a JSON array), each checked against the OCSF schema.
pub fn events_of(c: &Captured) -> Vec<Value> {
    match c.json() {
        Value::Array(a) => {
            crate::ocsf_schema::assert_conforms("an http sink request", &a);
            a
        }
        other => panic!("expected a JSON array of events, got {other}"),
    }
}

/// The `metadata.uid`s of the events delivered (answered 2xx) so far.
pub fn delivered_uids(reqs: &[Captured]) -> Vec<String> {
    HttpReceiver::uids(reqs)
}
