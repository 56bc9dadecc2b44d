//! The XML-RPC server's routes beside its calls: GET routes answer under
//! the same server, calls still work, a stray request still gets 404/405,
//! and streams are counted under their own caps (never shed, refused with
//! 503 at the cap, closed at once by their closer, ended at shutdown).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::{Response, StatusCode};
use podium::rpc::route::{self, Closer, RouteBody, RouteRequest, Routes};
use podium::rpc::{serve_with_routes, Client, ClientConfig, Methods, ServerConfig, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A body fed by a channel: what a stream route sends.
struct Fed(mpsc::Receiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// `/hello` says hello; `/stream` opens a stream whose sender and closer
/// it keeps, and sends "first\n" on it.
#[derive(Default)]
struct TestRoutes {
    streams: Mutex<Vec<(mpsc::Sender<Bytes>, Closer)>>,
}

impl Routes for TestRoutes {
    async fn route(&self, req: RouteRequest) -> Option<Response<RouteBody>> {
        match req.uri.path() {
            "/hello" => Some(route::full(
                StatusCode::OK,
                "text/plain",
                Bytes::from_static(b"hello"),
            )),
            "/stream" => {
                let slot = match req.open_stream() {
                    Ok(slot) => slot,
                    Err(_) => return Some(route::unavailable("full\n", "1")),
                };
                let (tx, rx) = mpsc::channel(4);
                tx.try_send(Bytes::from_static(b"first\n")).unwrap();
                self.streams.lock().unwrap().push((tx, slot.closer()));
                Some(Response::new(slot.body(Fed(rx))))
            }
            _ => None,
        }
    }
}

struct Server {
    addr: SocketAddr,
    routes: Arc<TestRoutes>,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(config: ServerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut methods = Methods::new();
    methods.add("echo", &["string", "string"], "echo", |p, _| async move {
        Ok(p.into_inner().remove(0))
    });
    let routes = Arc::new(TestRoutes::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve_with_routes(
        listener,
        methods,
        routes.clone(),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        routes,
        stop: Some(stop),
        served,
    }
}

/// Sends a GET and reads until `want` has arrived (or the connection
/// closed); returns the connection and what was read.
async fn get(addr: SocketAddr, path: &str, want: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the reply came");
    (s, String::from_utf8_lossy(&got).into_owned())
}

/// Reads until the server closes the connection.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&rest).into_owned()
}

fn call(addr: SocketAddr) -> Client {
    Client::new(&format!("http://{addr}/"), ClientConfig::default()).unwrap()
}

#[tokio::test]
async fn routes_answer_beside_calls_and_strays_still_get_404_or_405() {
    let server = start(ServerConfig::default()).await;
    let (_, hello) = get(server.addr, "/hello", "hello").await;
    assert!(hello.starts_with("HTTP/1.1 200"), "{hello}");
    let (_, missing) = get(server.addr, "/nothing", "\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let (_, get_root) = get(server.addr, "/", "\r\n\r\n").await;
    assert!(get_root.starts_with("HTTP/1.1 405"), "{get_root}");
    assert!(get_root.to_ascii_lowercase().contains("allow: post"));
    let echoed = call(server.addr)
        .call("echo", &[Value::from("hi")])
        .await
        .unwrap();
    assert_eq!(echoed, Value::from("hi"));
}

#[tokio::test]
async fn streams_have_their_own_caps_and_never_crowd_out_calls() {
    let server = start(ServerConfig {
        max_connections: 1,
        max_streams: 2,
        max_streams_per_ip: 2,
        ..ServerConfig::default()
    })
    .await;
    let (_a, first) = get(server.addr, "/stream", "first").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.to_ascii_lowercase().contains("connection: close"));
    let (_b, _) = get(server.addr, "/stream", "first").await;
    // The third is over the stream cap.
    let (mut c, refused) = get(server.addr, "/stream", "full").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    read_to_close(&mut c).await;
    // Two streams, and the one connection the cap allows still serves calls.
    for _ in 0..3 {
        let echoed = call(server.addr).call("echo", &[Value::from("x")]).await;
        assert_eq!(echoed.unwrap(), Value::from("x"));
    }
    // The streams were never shed for those calls.
    let streams = server.routes.streams.lock().unwrap().clone();
    for (tx, closer) in &streams {
        assert!(!closer.is_closed());
        tx.try_send(Bytes::from_static(b"more\n"))
            .expect("the stream is still read");
    }
}

#[tokio::test]
async fn a_closer_drops_its_connection_and_shutdown_ends_every_stream() {
    let mut server = start(ServerConfig {
        shutdown_grace: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let (mut closed, _) = get(server.addr, "/stream", "first").await;
    let (mut ended, _) = get(server.addr, "/stream", "first").await;
    let (tx, closer) = server.routes.streams.lock().unwrap()[0].clone();
    closer.close();
    read_to_close(&mut closed).await;
    assert!(tx.is_closed(), "the closed stream's body was dropped");
    // At shutdown the other stream ends cleanly (the last chunk), and the
    // server returns without waiting out its grace.
    server.stop.take().unwrap().send(()).unwrap();
    let rest = read_to_close(&mut ended).await;
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    tokio::time::timeout(Duration::from_secs(20), server.served)
        .await
        .expect("the server stopped within the test's deadline")
        .unwrap()
        .unwrap();
}
