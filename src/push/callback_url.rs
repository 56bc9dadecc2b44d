//! Which callback URLs a subscription may name, so that push cannot be
//! turned against anyone: the callback host must be the subscriber's own
//! address as the cluster sees it (or inside a range the operator allows),
//! and never a cluster member's own endpoint. The URL is made canonical
//! (`http://IP:PORT/path`, the address pinned at admission so DNS cannot
//! move it later), which is also what makes "one subscription per URL"
//! hold whatever spelling a tablet used.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hyper::Uri;
use ipnet::IpNet;

use crate::api::faults;
use crate::rpc::Fault;

/// How long a callback host's name may take to resolve.
const RESOLVE_TIMEOUT_MS: u64 = 1_000;
/// Most addresses of one name looked at.
const MAX_ADDRESSES: usize = 16;

/// The operator's rules for callbacks.
#[derive(Debug, Clone, Default)]
pub struct CallbackRules {
    /// Ranges a callback may point into even when they are not the
    /// subscriber's own address (`--push-allow`).
    pub allow: Vec<IpNet>,
    /// The cluster's own endpoints (db, front-ends, balancers): never a
    /// callback.
    pub members: Vec<SocketAddr>,
}

/// `addr` as a plain address: IPv4-mapped IPv6 read as IPv4, so both
/// spellings of one host compare equal.
fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn refuse(why: impl Into<String>) -> Fault {
    Fault::invalid_params(format!("callback refused: {}", why.into()))
}

/// The parts of a callback URL, before its host is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> Result<Parsed, Fault> {
    let uri: Uri = url
        .parse()
        .map_err(|_| refuse(format!("{:?} is not a URL", crate::scoreboard::clip(url))))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s.to_owned(),
        _ => return Err(refuse("only http:// and https:// callbacks are taken")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| refuse("the URL names no host"))?;
    if authority.as_str().contains('@') {
        return Err(refuse("credentials in a callback URL are not taken"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(refuse("the URL names no host"));
    }
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    if port == 0 {
        return Err(refuse("port 0"));
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok(Parsed {
        scheme,
        host,
        port,
        path,
    })
}

/// The addresses of `host`: itself when it is one, else what DNS says
/// (bounded in time and count).
async fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, Fault> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![plain(ip)]);
    }
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(Duration::from_millis(RESOLVE_TIMEOUT_MS), lookup).await {
        Ok(Ok(addrs)) => Ok(addrs.take(MAX_ADDRESSES).map(|a| plain(a.ip())).collect()),
        Ok(Err(e)) => Err(refuse(format!("cannot resolve {host:?}: {e}"))),
        Err(_) => Err(refuse(format!("{host:?} took too long to resolve"))),
    }
}

/// Admits a callback URL for a subscriber at `subscriber`; returns its
/// canonical form. `also_members` are cluster endpoints learnt at run time
/// (the balancer the call came through, the address it reached us on).
///
/// # Errors
/// `-32602` saying why: not a URL, a host that is not the subscriber's
/// (nor allowed), a cluster endpoint, an address nobody can be called at.
pub async fn admit(
    url: &str,
    subscriber: Option<IpAddr>,
    rules: &CallbackRules,
    also_members: &[SocketAddr],
) -> Result<String, Fault> {
    let parsed = parse(url)?;
    let candidates = resolve(&parsed.host, parsed.port).await?;
    let subscriber = subscriber.map(plain);
    let chosen = candidates
        .iter()
        .copied()
        .find(|ip| Some(*ip) == subscriber)
        .or_else(|| {
            candidates
                .iter()
                .copied()
                .find(|ip| rules.allow.iter().any(|net| net.contains(ip)))
        })
        .ok_or_else(|| {
            refuse(match subscriber {
                Some(s) => format!(
                    "{:?} is not your own address ({s}), nor in a range the operator allows",
                    crate::scoreboard::clip(&parsed.host)
                ),
                None => "the subscriber's address is unknown".to_owned(),
            })
        })?;
    if chosen.is_unspecified()
        || chosen.is_multicast()
        || chosen == IpAddr::from([255, 255, 255, 255])
    {
        return Err(refuse(format!("{chosen} cannot be called back")));
    }
    let target = SocketAddr::new(chosen, parsed.port);
    let member = rules
        .members
        .iter()
        .chain(also_members)
        .any(|m| SocketAddr::new(plain(m.ip()), m.port()) == target);
    if member {
        return Err(refuse(format!(
            "{target} is one of the cluster's own endpoints"
        )));
    }
    Ok(canonical(&parsed.scheme, target, &parsed.path))
}

/// The address a canonical callback URL names.
pub fn endpoint_of(canonical: &str) -> Option<SocketAddr> {
    let parsed = parse(canonical).ok()?;
    let ip: IpAddr = parsed.host.parse().ok()?;
    Some(SocketAddr::new(plain(ip), parsed.port))
}

/// The addresses of the cluster members at `urls` (a name resolves to all
/// its addresses; a URL that does not resolve is left out, with a warning).
pub async fn resolve_endpoints(urls: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for url in urls {
        let Ok(parsed) = parse(url) else {
            tracing::warn!(%url, "not a member URL");
            continue;
        };
        match resolve(&parsed.host, parsed.port).await {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, parsed.port))),
            Err(e) => tracing::warn!(%url, error = %e, "cannot resolve a member"),
        }
    }
    out
}

/// `scheme://IP:PORT/path`, IPv6 in brackets.
fn canonical(scheme: &str, target: SocketAddr, path: &str) -> String {
    format!("{scheme}://{target}{path}")
}

/// The canonical form of a URL already admitted once, for finding its
/// subscription again (an unsubscribe names the URL as the tablet spelled
/// it): the same pinning, without the rules.
///
/// # Errors
/// Not a URL, or a host that does not resolve.
pub async fn canonicalize(url: &str, subscriber: Option<IpAddr>) -> Result<String, Fault> {
    let parsed = parse(url)?;
    let candidates = resolve(&parsed.host, parsed.port).await?;
    let subscriber = subscriber.map(plain);
    let ip = candidates
        .iter()
        .copied()
        .find(|ip| Some(*ip) == subscriber)
        .or_else(|| candidates.first().copied())
        .ok_or_else(|| faults::unavailable("the callback host has no address"))?;
    Ok(canonical(
        &parsed.scheme,
        SocketAddr::new(ip, parsed.port),
        &parsed.path,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn rules() -> CallbackRules {
        CallbackRules {
            allow: vec!["10.9.0.0/16".parse().unwrap()],
            members: vec![
                "127.0.0.1:8000".parse().unwrap(),
                "127.0.0.1:8002".parse().unwrap(),
            ],
        }
    }

    #[tokio::test]
    async fn the_subscribers_own_address_is_taken_and_made_canonical() {
        let r = rules();
        assert_eq!(
            admit("http://127.0.0.1:8005", ip("127.0.0.1"), &r, &[])
                .await
                .unwrap(),
            "http://127.0.0.1:8005/"
        );
        assert_eq!(
            admit("http://localhost:8005/RPC2", ip("127.0.0.1"), &r, &[])
                .await
                .unwrap(),
            "http://127.0.0.1:8005/RPC2"
        );
        assert_eq!(
            admit("http://[::1]:9/", ip("::1"), &r, &[]).await.unwrap(),
            "http://[::1]:9/"
        );
        // An IPv4 subscriber seen through an IPv6 socket is the same host.
        assert_eq!(
            admit("http://10.1.2.3:9/", ip("::ffff:10.1.2.3"), &r, &[])
                .await
                .unwrap(),
            "http://10.1.2.3:9/"
        );
        // The operator's ranges.
        assert_eq!(
            admit("http://10.9.4.4:9/", ip("192.0.2.1"), &r, &[])
                .await
                .unwrap(),
            "http://10.9.4.4:9/"
        );
    }

    #[tokio::test]
    async fn anyone_elses_address_and_the_cluster_itself_are_refused() {
        let r = rules();
        for (url, subscriber) in [
            ("http://192.0.2.9:80/", "127.0.0.1"),
            ("http://127.0.0.1:8000/", "127.0.0.1"),
            ("http://localhost:8002/", "127.0.0.1"),
            ("http://[::ffff:127.0.0.1]:8000/", "127.0.0.1"),
            ("http://0.0.0.0:8005/", "0.0.0.0"),
            ("ftp://127.0.0.1:21/", "127.0.0.1"),
            ("http://user:pw@127.0.0.1:8005/", "127.0.0.1"),
            ("http://127.0.0.1:0/", "127.0.0.1"),
            ("not a url", "127.0.0.1"),
        ] {
            let err = admit(url, ip(subscriber), &r, &[]).await.unwrap_err();
            assert_eq!(err.code, crate::rpc::fault::INVALID_PARAMS, "{url}");
        }
        // An endpoint learnt at run time (the balancer the call came through).
        let balancer: SocketAddr = "127.0.0.1:8001".parse().unwrap();
        assert!(
            admit("http://127.0.0.1:8001/", ip("127.0.0.1"), &r, &[balancer])
                .await
                .is_err()
        );
        assert!(admit("http://127.0.0.1:8005/", None, &r, &[])
            .await
            .is_err());
    }
}
