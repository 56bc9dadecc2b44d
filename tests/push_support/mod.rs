//! Tablets for the push tests, in the test process: callback servers on
//! loopback port 0 that record every push they get, and misbehaving ones
//! (answering faults, gzip, or far too much) for the refusal tests.
//!
//! Use with `mod support; mod push_support;`.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podium::api::callback::{serve_callbacks, Callback};
use podium::rpc::{Fault, Methods, ServerConfig, Value};
use podium::shutdown::Shutdown;

use crate::support::{runtime, wait_until};

/// How a tablet answers pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `true`, as a tablet does.
    Answers,
    /// An XML-RPC fault.
    Faults,
    /// A gzipped reply nobody asked for.
    Gzips,
    /// A reply of many megabytes.
    Floods,
}

/// One tablet's callback server.
#[derive(Debug)]
pub struct Tablet {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Callback>>>,
    stop: Shutdown,
}

impl Tablet {
    /// Starts a tablet on `ip`, port 0.
    pub fn start(ip: &str, behaviour: Behaviour) -> Tablet {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Shutdown::new();
        let addr = match behaviour {
            Behaviour::Answers | Behaviour::Faults => {
                let listener = runtime()
                    .block_on(tokio::net::TcpListener::bind((ip, 0)))
                    .expect("a loopback port");
                let addr = listener.local_addr().expect("its address");
                let mut methods = Methods::new();
                let log = received.clone();
                if behaviour == Behaviour::Answers {
                    serve_callbacks(&mut methods, move |cb| {
                        log.lock().unwrap().push(cb);
                        async {}
                    });
                } else {
                    for name in ["print_score_for_event", "print_medal_tally_for_team"] {
                        let log = log.clone();
                        methods.add(name, &["boolean"], "A broken tablet.", move |p, _| {
                            let cb = Callback::from_call(name, &p);
                            if let Ok(cb) = cb {
                                log.lock().unwrap().push(cb);
                            }
                            async { Err::<Value, _>(Fault::internal("this tablet is broken")) }
                        });
                    }
                }
                let shutdown = stop.clone();
                runtime().spawn(async move {
                    let _ = podium::rpc::serve(
                        listener,
                        methods,
                        ServerConfig::default(),
                        shutdown.triggered(),
                    )
                    .await;
                });
                addr
            }
            Behaviour::Gzips | Behaviour::Floods => raw_server(ip, behaviour, received.clone()),
        };
        Tablet {
            addr,
            received,
            stop,
        }
    }

    /// Its callback URL, as a subscription names it.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every push received, in order.
    pub fn received(&self) -> Vec<Callback> {
        self.received.lock().unwrap().clone()
    }

    /// How many pushes carried `text`.
    pub fn count(&self, text: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|cb| matches!(cb, Callback::Score { text: t, .. } | Callback::Tally { text: t, .. } if t == text))
            .count()
    }

    /// Waits until `done` holds of the pushes received.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&[Callback]) -> bool) -> bool {
        wait_until(timeout, || done(&self.received.lock().unwrap()))
    }
}

impl Drop for Tablet {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

/// A tablet that reads each request and answers with a fixed, unhelpful
/// reply: gzipped, or huge. Serves until the test process ends.
fn raw_server(ip: &str, behaviour: Behaviour, received: Arc<Mutex<Vec<Callback>>>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut stream) = stream else { continue };
            let received = received.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = vec![0u8; 64 * 1024];
                for _ in 0..100 {
                    let n = match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if String::from_utf8_lossy(&buf[..n]).contains("print_") {
                        received.lock().unwrap().push(Callback::Score {
                            text: "(raw)".into(),
                            time: 0.0,
                            version: None,
                        });
                    }
                    let ok = b"<?xml version=\"1.0\"?><methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>";
                    let reply = match behaviour {
                        Behaviour::Gzips => {
                            let mut enc = flate2::write::GzEncoder::new(
                                Vec::new(),
                                flate2::Compression::fast(),
                            );
                            let _ = enc.write_all(ok);
                            let body = enc.finish().unwrap_or_default();
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend(body);
                            r
                        }
                        _ => {
                            let body = vec![b' '; 8 << 20];
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend(body);
                            r
                        }
                    };
                    if stream.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
