//! The page, embedded in the binary: plain HTML, CSS and JavaScript with no
//! build step and nothing fetched at run time (the page's
//! Content-Security-Policy allows only this origin).

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::rpc::route::{self, RouteBody};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file the page is made of, by the path it is served at.
pub const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
];

/// What the page may load: its own files and its own event stream.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The asset served at `path` (`/index.html` is `/`).
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// True for the paths of the page and its files: what a balancer relays.
pub fn is_asset_path(path: &str) -> bool {
    find(path).is_some()
}

/// The reply with `asset`. Browsers revalidate every time (`no-cache`):
/// the files are small, and a new release is picked up at once.
pub fn reply(asset: &Asset) -> Response<RouteBody> {
    let mut resp = route::full(
        StatusCode::OK,
        asset.content_type,
        Bytes::from_static(asset.body.as_bytes()),
    );
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = find("/").unwrap().body;
        for asset in &ASSETS[1..] {
            assert!(page.contains(asset.path), "{} is not linked", asset.path);
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(find("/index.html").is_some());
        assert!(find("/secret").is_none());
    }
}
