//! HTTP body helpers: the server's bounded, timed body reads, and gzip in
//! both directions (the client's reads are bounded in [`super::pool`]).

use std::future::Future as _;
use std::io::{Read as _, Write as _};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Body;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not received within {0:?}")]
    Timeout(Duration),
    #[error("corrupt gzip body: {0}")]
    BadGzip(String),
    #[error("reading body: {0}")]
    Io(String),
}

/// Reads a whole body, refusing it as soon as it passes `max_bytes` (also for
/// chunked bodies, which have no length up front) or takes longer than
/// `timeout`.
pub(crate) async fn read_body<B>(
    body: B,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut collect = std::pin::pin!(Limited::new(body, max_bytes).collect());
    // A small body usually came in with the head: then no timer is needed,
    // and setting one up and tearing it down is a measurable share of a
    // cached read.
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(collected) => collected,
        Poll::Pending => match tokio::time::timeout(timeout, collect).await {
            Ok(collected) => collected,
            Err(_) => return Err(BodyError::Timeout(timeout)),
        },
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(max_bytes)),
        Err(e) => Err(BodyError::Io(e.to_string())),
    }
}

/// Decompresses a gzip body, stopping as soon as the output passes
/// `max_bytes`: a gzip bomb costs at most that much memory.
pub(crate) fn gunzip(compressed: &[u8], max_bytes: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(max_bytes));
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    flate2::read::GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > max_bytes {
        return Err(BodyError::TooLarge(max_bytes));
    }
    Ok(out)
}

/// Compresses with the fastest level: replies are small and latency matters
/// more than the last few bytes.
pub(crate) fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 3 + 32),
        flate2::Compression::fast(),
    );
    enc.write_all(plain).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// True when an `Accept-Encoding` header value allows gzip.
pub(crate) fn accepts_gzip(header: Option<&hyper::header::HeaderValue>) -> bool {
    header
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| matches!(p.trim().strip_prefix("q="), Some(q) if q.trim().parse::<f32>() == Ok(0.0)));
                coding.eq_ignore_ascii_case("gzip") && !refused
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_bombs_stop_at_the_limit() {
        let data = b"hello hello hello".repeat(100);
        assert_eq!(gunzip(&gzip(&data), 10_000).unwrap(), data);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10_000_000]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(BodyError::TooLarge(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(BodyError::BadGzip(_))
        ));
    }

    #[test]
    fn accept_encoding_parsing() {
        let h = |s: &'static str| Some(hyper::header::HeaderValue::from_static(s));
        assert!(accepts_gzip(h("gzip").as_ref()));
        assert!(accepts_gzip(h("deflate, GZIP;q=0.5").as_ref()));
        assert!(!accepts_gzip(h("gzip;q=0").as_ref()));
        assert!(!accepts_gzip(h("identity").as_ref()));
        assert!(!accepts_gzip(None));
    }
}
