//! Addresses at the command line: `HOST[:PORT]` as the old system's host
//! flags take them (`--dbhost`, `--zhost`, `--xhost`, `--yhost`), and the
//! address a process listens on when no flag says.
//!
//! ```text
//! db.example        host, default port     10.0.0.5:8000   IPv4 and port
//! [::1]:8000        IPv6 and port          ::1             bare IPv6, default port
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _, UdpSocket};

/// A host, and a port when one was given: what an old host flag holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A name or an IP literal, without brackets.
    pub host: String,
    /// `None` when the flag gave only the host; the flag's default applies.
    pub port: Option<u16>,
}

/// Why a `HOST[:PORT]` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("empty address: expected HOST or HOST:PORT")]
    Empty,
    #[error("{0:?} is a URL: expected HOST or HOST:PORT")]
    Url(String),
    #[error("bad port {0:?}: expected a number from 1 to 65535")]
    BadPort(String),
    #[error(
        "{0:?} is not an IPv6 address (a port after an IPv6 address needs brackets: [::1]:8000)"
    )]
    BadIpv6(String),
    #[error("bad host name {0:?}")]
    BadHost(String),
}

impl HostPort {
    /// Parses `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT` or a bare IPv6
    /// literal (`::1`, which then has no port).
    ///
    /// # Errors
    /// An empty string, a URL, a port that is not 1 to 65535, brackets
    /// around something that is not IPv6, or a host name with characters
    /// no host name has.
    pub fn parse(s: &str) -> Result<HostPort, HostPortError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(HostPortError::Empty);
        }
        if s.contains("://") || s.contains('/') {
            return Err(HostPortError::Url(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| HostPortError::BadIpv6(s.to_owned()))?;
            ip.parse::<Ipv6Addr>()
                .map_err(|_| HostPortError::BadIpv6(ip.to_owned()))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(parse_port(port)?),
                None if after.is_empty() => None,
                None => return Err(HostPortError::BadPort(after.to_owned())),
            };
            return Ok(HostPort {
                host: ip.to_owned(),
                port,
            });
        }
        if s.matches(':').count() > 1 {
            s.parse::<Ipv6Addr>()
                .map_err(|_| HostPortError::BadIpv6(s.to_owned()))?;
            return Ok(HostPort {
                host: s.to_owned(),
                port: None,
            });
        }
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (s, None),
        };
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if host.is_empty() || !host.chars().all(name_char) {
            return Err(HostPortError::BadHost(host.to_owned()));
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }

    /// `HOST:PORT` (`[IPV6]:PORT`), with `default_port` when none was given.
    pub fn authority(&self, default_port: u16) -> String {
        authority(&self.host, self.port.unwrap_or(default_port))
    }

    /// `http://HOST:PORT/` (`https` once a CA is installed, see
    /// [`super::client_scheme`]), with `default_port` when none was given.
    pub fn url(&self, default_port: u16) -> String {
        super::host_url(&self.host, self.port.unwrap_or(default_port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => f.write_str(&authority(&self.host, port)),
            None if self.host.contains(':') => write!(f, "[{}]", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl std::str::FromStr for HostPort {
    type Err = HostPortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostPort::parse(s)
    }
}

fn parse_port(s: &str) -> Result<u16, HostPortError> {
    match s.parse::<u16>() {
        Ok(port) if port > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(HostPortError::BadPort(s.to_owned())),
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why no address to listen on could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("peer {0:?} is not a URL or HOST:PORT")]
    Url(String),
    #[error("peer {peer}: cannot resolve it: {source}")]
    Resolve {
        peer: String,
        source: std::io::Error,
    },
    #[error("peer {peer}: no route to it from this host ({source}); give --host")]
    NoRoute {
        peer: String,
        source: std::io::Error,
    },
}

/// The address a process listens on when neither `--host` nor `-l` says:
/// loopback when every peer (`host:port` or URL) is on loopback, or when
/// there are none; otherwise the address this host uses to reach the first
/// peer that is not ([`local_ip_toward`]), which is the address that peer
/// can reach back.
///
/// # Errors
/// A peer's name does not resolve, or no route leads to it.
pub fn default_listen_ip<'a>(
    peers: impl IntoIterator<Item = &'a str>,
) -> Result<IpAddr, BindError> {
    for peer in peers {
        let url = if peer.contains("://") {
            peer.to_owned()
        } else {
            format!("http://{peer}/")
        };
        let uri: http::Uri = url.parse().map_err(|_| BindError::Url(peer.to_owned()))?;
        let host = uri.host().ok_or_else(|| BindError::Url(peer.to_owned()))?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let addrs: Vec<SocketAddr> = authority
            .to_socket_addrs()
            .map_err(|source| BindError::Resolve {
                peer: peer.to_owned(),
                source,
            })?
            .collect();
        if let Some(addr) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return local_ip_toward(*addr).map_err(|source| BindError::NoRoute {
                peer: peer.to_owned(),
                source,
            });
        }
    }
    Ok(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The source address this host's routes give for traffic to `peer`: a UDP
/// socket is connected to it (which sends nothing) and asked its address.
///
/// # Errors
/// No route to `peer`.
pub fn local_ip_toward(peer: SocketAddr) -> std::io::Result<IpAddr> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(peer)?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: Option<u16>) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn parses_hosts_with_and_without_ports() {
        assert_eq!(HostPort::parse("localhost"), Ok(hp("localhost", None)));
        assert_eq!(
            HostPort::parse("localhost:8000"),
            Ok(hp("localhost", Some(8000)))
        );
        assert_eq!(
            HostPort::parse(" 10.77.0.1:8002 "),
            Ok(hp("10.77.0.1", Some(8002)))
        );
        assert_eq!(
            HostPort::parse("db-1.example_net"),
            Ok(hp("db-1.example_net", None))
        );
    }

    #[test]
    fn parses_ipv6_in_brackets_and_bare() {
        assert_eq!(HostPort::parse("[::1]:8003"), Ok(hp("::1", Some(8003))));
        assert_eq!(HostPort::parse("[fd00::2]"), Ok(hp("fd00::2", None)));
        assert_eq!(HostPort::parse("::1"), Ok(hp("::1", None)));
        assert_eq!(HostPort::parse("fd00::2"), Ok(hp("fd00::2", None)));
        assert_eq!(hp("::1", Some(8003)).url(1), "http://[::1]:8003/");
        assert_eq!(hp("::1", None).authority(8000), "[::1]:8000");
        assert_eq!(hp("::1", None).to_string(), "[::1]");
    }

    #[test]
    fn refuses_bad_ports_and_hosts_with_a_reason() {
        let bad_port = |s: &str| HostPortError::BadPort(s.to_owned());
        assert_eq!(HostPort::parse("h:"), Err(bad_port("")));
        assert_eq!(HostPort::parse("h:0"), Err(bad_port("0")));
        assert_eq!(HostPort::parse("h:65536"), Err(bad_port("65536")));
        assert_eq!(HostPort::parse("h:+80"), Err(bad_port("+80")));
        assert_eq!(HostPort::parse("h:http"), Err(bad_port("http")));
        assert_eq!(HostPort::parse("[::1]:x"), Err(bad_port("x")));
        assert_eq!(HostPort::parse("[::1]8000"), Err(bad_port("8000")));
        assert_eq!(HostPort::parse(""), Err(HostPortError::Empty));
        assert!(matches!(
            HostPort::parse("http://h:8000/"),
            Err(HostPortError::Url(_))
        ));
        assert!(matches!(
            HostPort::parse("[::1"),
            Err(HostPortError::BadIpv6(_))
        ));
        assert!(matches!(
            HostPort::parse("[10.0.0.1]:80"),
            Err(HostPortError::BadIpv6(_))
        ));
        // A port after a bare IPv6 address is ambiguous: brackets needed.
        assert!(matches!(
            HostPort::parse("fd00::2:8000:x"),
            Err(HostPortError::BadIpv6(_))
        ));
        assert!(matches!(
            HostPort::parse(":8000"),
            Err(HostPortError::BadHost(_))
        ));
        assert!(matches!(
            HostPort::parse("a b:8000"),
            Err(HostPortError::BadHost(_))
        ));
        let message = HostPort::parse("db:99999").unwrap_err().to_string();
        assert_eq!(
            message,
            "bad port \"99999\": expected a number from 1 to 65535"
        );
    }

    #[test]
    fn listens_on_loopback_when_every_peer_is_local() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(default_listen_ip([]).unwrap(), lo);
        assert_eq!(
            default_listen_ip([
                "127.0.0.1:8000",
                "http://127.0.0.3:8002/",
                "[::1]:8003",
                "http://[::1]/",
                "http://localhost:8001/",
            ])
            .unwrap(),
            lo
        );
        assert!(matches!(
            default_listen_ip(["http://a b/"]),
            Err(BindError::Url(_))
        ));
        // Asking the routes sends nothing; toward loopback they say loopback.
        let toward = local_ip_toward("127.0.0.5:9".parse().unwrap()).unwrap();
        assert!(toward.is_loopback(), "{toward}");
    }
}
