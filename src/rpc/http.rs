//! HTTP body helpers: the server's bounded, timed, budgeted body reads, and
//! gzip in both directions (the client's reads are bounded in
//! [`super::pool`]).

use std::future::Future as _;
use std::io::{Read as _, Write as _};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Body;

use super::budget::{Exhausted, Reservation};

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not received within {0:?}")]
    Timeout(Duration),
    #[error("server busy: {0}")]
    NoBudget(#[from] Exhausted),
    #[error("corrupt gzip body: {0}")]
    BadGzip(String),
    #[error("reading body: {0}")]
    Io(String),
}

/// Reads a whole body, refusing it as soon as it passes `max_bytes` (also for
/// chunked bodies, which have no length up front) or takes longer than
/// `timeout`. The body's bytes come from `reservation`: all of a declared
/// `Content-Length` before reading starts, else as the body grows; when the
/// budget has none to give within its wait, the read stops with
/// [`BodyError::NoBudget`].
///
/// The body is copied into one buffer as it arrives (sized from the
/// declared length, else doubling), so what it holds is what the
/// reservation covers, and hyper's read buffers are reused at once.
pub(crate) async fn read_body<B>(
    body: B,
    declared: Option<u64>,
    max_bytes: usize,
    timeout: Duration,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared > max_bytes {
        return Err(BodyError::TooLarge(max_bytes));
    }
    reservation.grow(declared).await?;
    let mut buf = Vec::with_capacity(declared);
    {
        let mut read = std::pin::pin!(collect(body, &mut buf, max_bytes, reservation));
        // A small body usually came in with the head: then no timer is
        // needed, and setting one up and tearing it down is a measurable
        // share of a cached read.
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(done) => done?,
            Poll::Pending => match tokio::time::timeout(timeout, read).await {
                Ok(done) => done?,
                Err(_) => return Err(BodyError::Timeout(timeout)),
            },
        }
    }
    Ok(Bytes::from(buf))
}

/// Appends every data frame of `body` to `buf`, growing `reservation`
/// ahead of `buf`'s capacity.
async fn collect<B>(
    body: B,
    buf: &mut Vec<u8>,
    max_bytes: usize,
    reservation: &mut Reservation,
) -> Result<(), BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(|e| BodyError::Io(e.into().to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing XML-RPC uses
        };
        let needed = buf.len() + data.len();
        if needed > max_bytes {
            return Err(BodyError::TooLarge(max_bytes));
        }
        if needed > buf.capacity() {
            let capacity = needed.max(buf.capacity() * 2).min(max_bytes);
            reservation.grow(capacity).await?;
            buf.reserve_exact(capacity - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(())
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
