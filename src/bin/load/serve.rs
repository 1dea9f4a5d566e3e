//! The load tool's own HTTP servers, the bare baseline and the fake SIEM: hyper 1, HTTP/1.1 and
//! h2 (hyper's defaults), on their own tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Response = hyper::Response<Full<Bytes>>;

/// A JSON answer.
pub fn json(status: StatusCode, body: &'static [u8]) -> Response {
    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Binds `addr` and answers every request of every connection with `handle`. Returns the bound
/// address and the server's task; aborting the task stops accepting and closes the connections.
pub async fn serve<H, F, E>(
    addr: SocketAddr,
    handle: H,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let task = tokio::spawn(async move {
        // Held here, so aborting the server ends its connections too.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(_) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let builder = Arc::clone(&builder);
            let handle = handle.clone();
            conns.spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Ok((addr, task))
}
