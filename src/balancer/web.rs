//! The scoreboard through the balancer: the page's files are relayed from
//! a healthy front-end as they stream in, and `GET /events` is served from
//! the balancer's own hub, which follows one upstream stream.
//!
//! Why a fan-out, not a relay per viewer: a relayed stream holds two
//! descriptors in the balancer (the viewer's and the front-end's) and one
//! in a front-end, so 10,000 viewers would need 20,000 descriptors in the
//! balancer, the hard limit of our machines, and 10,000 in front-ends that
//! should be serving calls. The balancer instead holds one stream from one
//! healthy front-end (chosen at random, as for calls) and serves its
//! viewers from its hub: the same snapshot, ring and bounded queues as a
//! front-end's, so a viewer costs the balancer one socket and a queue.
//!
//! When that front-end dies, its stream ends (or its health probe fails,
//! or it says it lost its feed), and the balancer resumes from another
//! with `Last-Event-ID` set to the last version it has: the new front-end
//! sends exactly the changes after it (or a snapshot, which the hub passes
//! to every viewer), so viewers miss nothing and see nothing twice, and
//! need not even reconnect. Only when no front-end can be followed are
//! they told `status {"live":false}`, and kept until one can.
//!
//! Only the page's own paths and `/events` are served; everything else
//! gets 404, so nothing internal is reachable through these routes either.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tracing::{debug, info, warn};

use super::frontends::Frontends;
use crate::rpc::route::{self, RouteBody, RouteRequest, Routes};
use crate::shutdown::Shutdown;
use crate::web::routes::{self as web_routes, EVENTS_PATH};
use crate::web::sse::{self, Reader};
use crate::web::wire::{ChangeEvent, Snapshot, Status};
use crate::web::{assets, Board, Hub};

/// First pause after no front-end could be followed...
const MIN_PAUSE: Duration = Duration::from_millis(100);
/// ...doubling up to this.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// How often the followed front-end's health is looked at.
const HEALTH_CHECK: Duration = Duration::from_millis(100);
/// An upstream stream silent this long is given up: the front-end sends a
/// keep-alive every 15 s.
const SILENCE: Duration = Duration::from_secs(2 * crate::web::hub::KEEPALIVE_SECS + 5);
/// The headers of a relayed file that are passed on.
const RELAYED_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    header::CONTENT_SECURITY_POLICY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::REFERRER_POLICY,
];

/// The balancer's routes: the page relayed, the events from its hub.
#[derive(Debug, Clone)]
pub(crate) struct WebRoutes {
    frontends: Frontends,
    hub: Hub,
}

impl WebRoutes {
    pub(crate) fn new(frontends: Frontends, hub: Hub) -> WebRoutes {
        WebRoutes { frontends, hub }
    }
}

impl Routes for WebRoutes {
    async fn route(&self, req: RouteRequest) -> Option<Response<RouteBody>> {
        if !web_routes::is_read(&req.method) {
            return None;
        }
        let path = req.uri.path();
        if path == EVENTS_PATH {
            return Some(web_routes::events(&self.hub, &req).await);
        }
        // Only the page's own files: the asset list is the allow-list.
        let asset = assets::find(path)?;
        Some(relay_file(&self.frontends, asset.path).await)
    }

    fn allow(&self, path: &str) -> Option<&'static str> {
        web_routes::allow(path)
    }
}

/// `path` from a healthy front-end, its body passed on as it arrives.
async fn relay_file(frontends: &Frontends, path: &str) -> Response<RouteBody> {
    let mut tried = Vec::new();
    while let Some(i) = frontends.pick_healthy(&tried) {
        tried.push(i);
        let Some((url, client)) = frontends.backend(i) else {
            break;
        };
        match client.get(path, &[]).await {
            Ok(resp) if resp.status() == StatusCode::OK => {
                let (parts, body) = resp.into_parts();
                let mut out = Response::new(body.map_err(Into::into).boxed_unsync());
                for name in RELAYED_HEADERS {
                    if let Some(v) = parts.headers.get(&name) {
                        out.headers_mut().insert(name, v.clone());
                    }
                }
                return out;
            }
            Ok(resp) => debug!(url, status = %resp.status(), path, "front-end refused a page file"),
            Err(e) => {
                debug!(url, error = %e, path, "page file relay failed");
                if e.is_connect() || e.is_timeout() {
                    frontends.eject(i, &e.to_string());
                }
            }
        }
    }
    route::unavailable("no front-end can serve the page now; retry shortly\n", "2")
}

/// How following one front-end's stream ended.
#[derive(Debug)]
enum Ended {
    /// It closed, broke, went silent or unhealthy, or lost its own feed.
    Gone(String),
    Shutdown,
}

/// Follows one healthy front-end's `/events` at a time into `hub`, until
/// `shutdown` (see the module doc).
pub(crate) async fn follow(frontends: Frontends, hub: Hub, shutdown: Shutdown) {
    let mut pause = MIN_PAUSE;
    // Front-ends tried since the stream was last followed.
    let mut tried: Vec<usize> = Vec::new();
    loop {
        let Some(i) = frontends.pick_healthy(&tried) else {
            if !tried.is_empty() || hub.version().is_some() {
                hub.lost();
            }
            tried.clear();
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.triggered() => return,
            }
            pause = (pause * 2).min(MAX_PAUSE);
            continue;
        };
        tried.push(i);
        let Some((url, client)) = frontends.backend(i) else {
            continue;
        };
        let from = hub.version();
        let headers: Vec<(&'static str, HeaderValue)> = from
            .map(|v| ("last-event-id", HeaderValue::from(v)))
            .into_iter()
            .collect();
        let opened = tokio::select! {
            opened = client.get(EVENTS_PATH, &headers) => opened,
            _ = shutdown.triggered() => return,
        };
        let body = match opened {
            Ok(resp) if resp.status() == StatusCode::OK => resp.into_body(),
            Ok(resp) => {
                debug!(url, status = %resp.status(), "front-end cannot stream now");
                continue;
            }
            Err(e) => {
                debug!(url, error = %e, "cannot open the front-end's stream");
                if e.is_connect() || e.is_timeout() {
                    frontends.eject(i, &e.to_string());
                }
                continue;
            }
        };
        info!(frontend = url, resume_after = ?from, "web stream following");
        pause = MIN_PAUSE;
        // The replay (or a snapshot) comes first on the stream.
        hub.resume();
        match read(body, &hub, &frontends, i, &shutdown).await {
            Ended::Shutdown => return,
            Ended::Gone(why) if !frontends.was_ready(i) => {
                info!(
                    frontend = url,
                    why, "web stream not ready yet: following another front-end"
                );
                tried = vec![i];
            }
            Ended::Gone(why) => {
                warn!(
                    frontend = url,
                    why, "web stream lost: following another front-end"
                );
                // Another first, this one only if no other will do.
                tried = vec![i];
            }
        }
    }
}

/// Reads one upstream stream into `hub` until it ends.
async fn read(
    mut body: Incoming,
    hub: &Hub,
    frontends: &Frontends,
    i: usize,
    shutdown: &Shutdown,
) -> Ended {
    let mut reader = Reader::new();
    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One deadline for the whole silence, pushed back by every frame (a
    // timeout made anew each turn would restart at every health tick).
    let silence = tokio::time::sleep(SILENCE);
    tokio::pin!(silence);
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = &mut silence => return Ended::Gone(format!("silent for {SILENCE:?}")),
            _ = health.tick() => {
                if !frontends.is_healthy(i) {
                    return Ended::Gone("its health probe failed".into());
                }
                continue;
            }
            _ = shutdown.triggered() => return Ended::Shutdown,
        };
        silence
            .as_mut()
            .reset(tokio::time::Instant::now() + SILENCE);
        let data: Bytes = match frame {
            None => return Ended::Gone("the stream ended".into()),
            Some(Err(e)) => return Ended::Gone(e.to_string()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        if let Err(why) = take(&mut reader, &data, hub) {
            return Ended::Gone(why);
        }
    }
}

/// Hands what `data` completes to the hub: changes in one batch per
/// chunk, a snapshot as a reset. An error ends the stream.
fn take(reader: &mut Reader, data: &[u8], hub: &Hub) -> Result<(), String> {
    let mut batch: Vec<ChangeEvent> = Vec::new();
    let mut failure = None;
    let flush = |batch: &mut Vec<ChangeEvent>| {
        if let Some(last) = batch.last().map(|c| c.version) {
            hub.publish(batch, last);
            batch.clear();
        }
    };
    let fed = reader.feed(data, |event| {
        if failure.is_some() {
            return;
        }
        match event.name.as_str() {
            "change" => match serde_json::from_str::<ChangeEvent>(&event.data) {
                Ok(change) => batch.push(change),
                Err(e) => failure = Some(format!("a change that does not parse: {e}")),
            },
            "snapshot" => match serde_json::from_str::<Snapshot>(&event.data) {
                Ok(snapshot) => {
                    flush(&mut batch);
                    hub.reset(Board::from_snapshot(snapshot));
                }
                Err(e) => failure = Some(format!("a snapshot that does not parse: {e}")),
            },
            "status" if serde_json::from_str::<Status>(&event.data).is_ok_and(|s| !s.live) => {
                failure = Some("it lost its own source".into());
            }
            _ => {}
        }
    });
    flush(&mut batch);
    fed.map_err(|e: sse::ReadError| e.to_string())?;
    failure.map_or(Ok(()), Err)
}
