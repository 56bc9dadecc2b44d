//! The server's own replies: XML-RPC results, and the plain-text refusals
//! it answers at the HTTP level (and the few it writes without hyper).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::http::gzip;

/// Replies at least this long are gzipped for clients that accept it (the
/// threshold Python's own server uses).
pub const GZIP_MIN_BYTES: usize = 1400;
/// What a refused client is told to wait, in seconds.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

pub(crate) type HttpReply = Response<Full<Bytes>>;

/// A whole closing plain-text response, for the few written without hyper.
pub(crate) fn raw_reply(status: &str, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: close\r\n\
         Retry-After: {RETRY_AFTER_SECS}\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}

pub(crate) fn plain(status: StatusCode, text: &'static str) -> HttpReply {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// A refusal after which the rest of the request is not worth reading.
pub(crate) fn closing(status: StatusCode, text: &'static str) -> HttpReply {
    let mut resp = plain(status, text);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A refusal for want of budget: come back in a moment.
pub(crate) fn busy() -> HttpReply {
    let mut resp = closing(
        StatusCode::SERVICE_UNAVAILABLE,
        "server busy: too many request bodies in flight; retry shortly\n",
    );
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    resp
}

/// A method response, gzipped when long and the client accepts it.
pub(crate) fn xml_reply(xml: Bytes, wants_gzip: bool) -> HttpReply {
    let (body, gzipped) = if wants_gzip && xml.len() >= GZIP_MIN_BYTES {
        (Bytes::from(gzip(&xml)), true)
    } else {
        (xml, false)
    };
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}
