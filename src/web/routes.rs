//! The scoreboard's routes on a server: the page's files and
//! `GET /events` (server-sent events from a [`Hub`]). A front-end serves
//! both from itself; the balancer relays the files and serves the events
//! from its own hub (`balancer::web`).

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response};
use tracing::debug;

use super::assets;
use super::hub::{Hub, FIRST_BOARD_WAIT};
use crate::rpc::route::{self, RouteBody, RouteRequest, Routes};

/// Where the event stream is served.
pub const EVENTS_PATH: &str = "/events";
/// The query parameter a page that opened a new `EventSource` names its
/// last event id with (the browser's own reconnections send the
/// `Last-Event-ID` header, which wins).
pub const LAST_PARAM: &str = "last";
/// What a refused viewer is told to wait, seconds.
const RETRY_AFTER_SECS: &str = "2";

/// True for the methods the routes answer.
pub fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// What [`Routes::allow`] says at `path`: the page at `/` answers GET and
/// HEAD, and a call POST.
pub fn allow(path: &str) -> Option<&'static str> {
    (path == "/").then_some("GET, HEAD, POST")
}

/// The event id a viewer resumes after: its `Last-Event-ID` header, else
/// `?last=`. Anything that is not a version counts as none (a snapshot).
pub fn last_event_id(req: &RouteRequest) -> Option<i64> {
    if let Some(header) = req.header("last-event-id") {
        return header.trim().parse().ok();
    }
    req.uri.query()?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == LAST_PARAM).then(|| value.parse().ok()).flatten()
    })
}

/// `GET /events`: a stream from `hub`, or 503 while it cannot serve one
/// (no board yet after [`FIRST_BOARD_WAIT`], its source lost, or this
/// server at its stream cap).
pub async fn events(hub: &Hub, req: &RouteRequest) -> Response<RouteBody> {
    if req.method == Method::HEAD {
        // The headers a stream would have, without holding one open.
        let mut resp = route::full(
            hyper::StatusCode::OK,
            "text/event-stream",
            bytes::Bytes::new(),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return resp;
    }
    let slot = match req.open_stream() {
        Ok(slot) => slot,
        Err(e) => {
            debug!(peer = %req.peer, error = %e, "event stream refused");
            return route::unavailable("too many event streams; retry shortly\n", RETRY_AFTER_SECS);
        }
    };
    let stream = match hub
        .subscribe_or_wait(last_event_id(req), slot.closer(), FIRST_BOARD_WAIT)
        .await
    {
        Ok(stream) => stream,
        Err(e) => {
            debug!(peer = %req.peer, error = %e, "event stream refused");
            return route::unavailable(
                "the scoreboard is not available here now; retry shortly\n",
                RETRY_AFTER_SECS,
            );
        }
    };
    let mut resp = Response::new(slot.body(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Asks a proxy in front (nginx, say) not to hold events back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// The page and its events, served by this process (a front-end).
#[derive(Debug, Clone)]
pub struct PageRoutes {
    hub: Hub,
}

impl PageRoutes {
    pub fn new(hub: Hub) -> PageRoutes {
        PageRoutes { hub }
    }
}

impl Routes for PageRoutes {
    async fn route(&self, req: RouteRequest) -> Option<Response<RouteBody>> {
        if !is_read(&req.method) {
            return None;
        }
        let path = req.uri.path();
        if path == EVENTS_PATH {
            return Some(events(&self.hub, &req).await);
        }
        assets::find(path).map(assets::reply)
    }

    fn allow(&self, path: &str) -> Option<&'static str> {
        allow(path)
    }
}
