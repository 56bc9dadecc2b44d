//! The fan-out's simulated tablets: many per listening port, told apart by
//! the path of their callback URL (`http://127.0.0.1:PORT/t/N`), so that
//! 10,000 subscribers need 100 ports and 10,000 connections, not 20,000
//! descriptors. Plain hyper, as a tablet is any XML-RPC server: each push
//! is decoded and handed to `receive` with the tablet's index.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::BenchError;
use crate::api::callback::Callback;
use crate::rpc::codec::{self, Limits};
use crate::rpc::{Params, Value};
use crate::shutdown::Tasks;

/// Tablets per listening port.
pub(super) const TABLETS_PER_PORT: usize = 100;
/// Largest push accepted.
const MAX_PUSH_BYTES: usize = 64 << 10;
/// How long a push's body may take.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a tablet does with a push it got.
pub(super) type Receive = Arc<dyn Fn(usize, Callback) + Send + Sync>;

/// Starts tablets `first..first + count` on one free loopback port, owned
/// by `tasks`; returns their callback URLs.
pub(super) async fn start_port(
    tasks: &Tasks,
    first: usize,
    count: usize,
    receive: Receive,
) -> Result<Vec<String>, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::Bind)?;
    let addr = listener.local_addr().map_err(BenchError::Bind)?;
    let shutdown = tasks.shutdown().clone();
    let connections = tasks.clone();
    tasks.spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.triggered() => return,
            };
            let Ok((stream, _)) = accepted else {
                // Out of descriptors, say: the pushes then show as missing.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let receive = receive.clone();
            let service = service_fn(move |req| answer(req, first, count, receive.clone()));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let stop = shutdown.clone();
            connections.spawn(async move {
                tokio::select! {
                    _ = conn => {}
                    _ = stop.triggered() => {}
                }
            });
        }
    });
    Ok((first..first + count)
        .map(|i| format!("http://{addr}/t/{i}"))
        .collect())
}

/// One push: the tablet it is for comes from the path.
async fn answer(
    req: Request<Incoming>,
    first: usize,
    count: usize,
    receive: Receive,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let index = req
        .uri()
        .path()
        .strip_prefix("/t/")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|i| (first..first + count).contains(i));
    let Some(index) = index else {
        return Ok(status(StatusCode::NOT_FOUND));
    };
    let body = Limited::new(req.into_body(), MAX_PUSH_BYTES).collect();
    let Ok(Ok(body)) = tokio::time::timeout(BODY_TIMEOUT, body).await else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let call = match codec::parse_call(&body.to_bytes(), Limits::default()) {
        Ok(call) => call,
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let reply = match Callback::from_call(&call.method, &Params::new(call.params)) {
        Ok(callback) => {
            receive(index, callback);
            codec::write_response(&Value::Bool(true)).unwrap_or_default()
        }
        Err(fault) => codec::write_fault(&fault),
    };
    Ok(Response::new(Full::new(Bytes::from(reply))))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = code;
    resp
}
